//! virtsh as a virsh user meets it: the real binary against real daemons,
//! checking output and exit codes.

use std::process::Output;

use tests::{Daemon, TestRoot, bin_dir};

fn virtsh(root: &TestRoot, args: &[&str]) -> Output {
    std::process::Command::new(bin_dir().join("virtsh"))
        .args(args)
        .env("VIRT_ROOT", root.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .output()
        .expect("run virtsh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn version_prints_virsh_layout() {
    let root = TestRoot::new();
    let _qemud = Daemon::start("virtqemud", &root).await;
    for args in [
        &["version"][..],
        &["-r", "version"],
        &["-c", "qemu:///system", "version"],
    ] {
        let out = virtsh(&root, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "Compiled against library: virt 0.1.0", "{stdout}");
        assert_eq!(lines[1], "Using library: virt 0.1.0");
        assert_eq!(lines[2], "Using API: QEMU 0.1.0");
        assert!(
            lines[3].starts_with("Running hypervisor: QEMU "),
            "{stdout}"
        );
        // virsh ends every command with an empty line.
        assert_eq!(lines.get(4), Some(&""), "{stdout:?}");
        assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    }
    let out = virtsh(&root, &["-q", "version", "--daemon"]);
    assert!(
        text(&out.stdout).contains("Running against daemon: 0.1.0"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn unknown_command_and_missing_daemon_fail_like_virsh() {
    let root = TestRoot::new();
    let out = virtsh(&root, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: unknown command: 'frobnicate'\n");

    // Nothing listens on the root: virsh's two error lines, exit 1.
    let out = virtsh(&root, &["version"]);
    assert_eq!(out.status.code(), Some(1));
    let sock = root.path().join("run/virt/virtqemud-sock");
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '{}': No such file or directory\n",
            sock.display()
        )
    );

    // Commands that need no daemon work without one.
    let out = virtsh(&root, &["uri"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "qemu:///system\n\n");
    let out = virtsh(&root, &["help", "version"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("version - show version"),
        "{}",
        text(&out.stdout)
    );
    let out = virtsh(&root, &["help", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: command or command group 'nosuch' doesn't exist\n"
    );
}

#[tokio::test]
async fn shell_reads_commands_from_stdin() {
    use std::io::Write;
    let root = TestRoot::new();
    let _qemud = Daemon::start("virtqemud", &root).await;
    let mut child = std::process::Command::new(bin_dir().join("virtsh"))
        .env("VIRT_ROOT", root.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn virtsh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"uri\nnosuch\nhostname\nquit\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("qemu:///system"), "{stdout}");
    let host = nix::unistd::gethostname()
        .expect("hostname")
        .into_string()
        .expect("utf8");
    assert!(stdout.contains(&host), "{stdout}");
    assert!(text(&out.stderr).contains("error: unknown command: 'nosuch'"));
}
