//! virtsh's network commands against a real virtnetworkd, as root: an
//! isolated network (real bridge, dnsmasq, nftables rules) defined,
//! listed, started, inspected, updated live with a DHCP host, destroyed
//! and undefined, with the lines virsh prints.
//!
//! The bridge name, the 172.29.X.0/24 subnet and the nftables table are
//! derived from the test root's random name; a [`HostGuard`] removes the
//! bridge, the table and dnsmasq even when the test fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tests::{Daemon, TestRoot, bin_dir};

/// Names unique to one test root.
struct Names {
    bridge: String,
    table: String,
    /// The third octet of 172.29.X.0/24.
    x: u8,
}

impl Names {
    fn of(root: &TestRoot) -> Names {
        let base = root
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("virt-t000000");
        let tag: String = base
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect::<String>()
            .to_ascii_lowercase();
        let h = tag
            .bytes()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
        Names {
            // "vs" + 6 characters: far below the 15 of IFNAMSIZ.
            bridge: format!("vs{tag}"),
            table: format!("vs_{tag}"),
            x: 1 + u8::try_from(h % 250).unwrap_or(0),
        }
    }
}

/// Removes the network's traces from the host: dnsmasq (by the pid files
/// of the root), the bridge and the nftables tables.
struct HostGuard {
    bridge: String,
    table: String,
    pid_dir: PathBuf,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(&self.pid_dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) != Some("pid") {
                    continue;
                }
                let Some(pid) = std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                else {
                    continue;
                };
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains("dnsmasq") {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        for fam in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", fam, &self.table])
                .output();
        }
    }
}

fn virtsh(root: &TestRoot, args: &[&str]) -> Output {
    let bin = bin_dir().join("virtsh");
    assert!(
        bin.is_file(),
        "{} missing: build it first (cargo build -p virtsh)",
        bin.display()
    );
    Command::new(bin)
        .args(args)
        .env("VIRT_ROOT", root.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .output()
        .expect("run virtsh")
}

fn ok(root: &TestRoot, args: &[&str]) -> String {
    let out = virtsh(root, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success() && e.is_empty(),
        "virtsh {args:?}: {o}{e}"
    );
    o
}

fn fails(root: &TestRoot, args: &[&str]) -> String {
    let out = virtsh(root, args);
    assert_eq!(out.status.code(), Some(1), "virtsh {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn network_commands_print_virsh_lines() {
    let root = TestRoot::new();
    // dnsmasq reads its hosts file as 'nobody': the tree must be
    // searchable, as /var/lib is.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod root");
    let names = Names::of(&root);
    let _guard = HostGuard {
        bridge: names.bridge.clone(),
        table: names.table.clone(),
        pid_dir: root.paths().driver_run_dir("network"),
    };
    let _d = Daemon::builder("virtnetworkd", &root)
        .env("VIRT_NETWORK_NFT_TABLE", &names.table)
        .start()
        .await;
    let (br, x) = (names.bridge.as_str(), names.x);
    let xml = root.path().join("vsnet.xml");
    std::fs::write(
        &xml,
        format!(
            "<network>\n  <name>vsnet</name>\n  <bridge name='{br}'/>\n  \
             <ip address='172.29.{x}.1' prefix='24'>\n    <dhcp>\n      \
             <range start='172.29.{x}.100' end='172.29.{x}.150'/>\n    </dhcp>\n  </ip>\n</network>\n"
        ),
    )
    .expect("write xml");
    let file = path_str(&xml);

    assert_eq!(
        ok(&root, &["net-define", file, "--validate"]),
        format!("Network vsnet defined from {file}\n\n")
    );
    assert_eq!(
        ok(&root, &["net-list", "--all"]),
        format!(
            " Name    State      Autostart   Persistent\n{}\n \
             vsnet   inactive   no          yes\n\n",
            "-".repeat(44)
        )
    );
    assert_eq!(ok(&root, &["net-list", "--name"]), "\n");
    let uuid = ok(&root, &["net-uuid", "vsnet"]);
    let uuid = uuid.trim_end();
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(ok(&root, &["net-name", uuid]), "vsnet\n\n");

    assert_eq!(
        ok(&root, &["net-start", "vsnet"]),
        "Network vsnet started\n\n"
    );
    assert!(link_exists(br), "bridge {br} after net-start");
    assert_eq!(
        ok(&root, &["net-info", "vsnet"]),
        format!(
            "Name:           vsnet\n\
             UUID:           {uuid}\n\
             Active:         yes\n\
             Persistent:     yes\n\
             Autostart:      no\n\
             Bridge:         {br}\n\n"
        )
    );
    let live = ok(&root, &["net-dumpxml", "vsnet"]);
    assert!(live.contains("<name>vsnet</name>"), "{live}");
    assert!(live.contains(&format!("<uuid>{uuid}</uuid>")), "{live}");
    assert!(live.contains(&format!("<bridge name='{br}'")), "{live}");
    assert!(live.ends_with(">\n\n"), "{live}");

    // A static DHCP host, live and in the definition.
    let host = format!("<host mac='52:54:00:29:00:07' name='h7' ip='172.29.{x}.7'/>");
    assert_eq!(
        ok(
            &root,
            &[
                "net-update",
                "vsnet",
                "add",
                "ip-dhcp-host",
                &host,
                "--live",
                "--config"
            ]
        ),
        "Updated network vsnet persistent config and live state\n"
    );
    for args in [
        &["net-dumpxml", "vsnet"][..],
        &["net-dumpxml", "vsnet", "--inactive"],
    ] {
        let text = ok(&root, args);
        assert!(text.contains(&host), "{args:?}: {text}");
    }
    // ... and out again, from a file, in the current (live) state only.
    let host_file = root.path().join("host.xml");
    std::fs::write(&host_file, &host).expect("host xml");
    assert_eq!(
        ok(
            &root,
            &[
                "net-update",
                "vsnet",
                "delete",
                "ip-dhcp-host",
                path_str(&host_file)
            ]
        ),
        "Updated network vsnet live state\n"
    );
    assert!(!ok(&root, &["net-dumpxml", "vsnet"]).contains(&host));
    assert!(ok(&root, &["net-dumpxml", "vsnet", "--inactive"]).contains(&host));
    let e = fails(
        &root,
        &["net-update", "vsnet", "add", "dns-bogus", "<host/>"],
    );
    assert_eq!(e, "error: unrecognized section name 'dns-bogus'\n");

    // No guest, no lease: the header alone.
    assert_eq!(
        ok(&root, &["net-dhcp-leases", "vsnet"]),
        format!(
            " Expiry Time   MAC address   Protocol   IP address   Hostname   Client ID or DUID\n{}\n\n",
            "-".repeat(83)
        )
    );

    assert_eq!(
        ok(&root, &["net-autostart", "vsnet"]),
        "Network vsnet marked as autostarted\n\n"
    );
    assert_eq!(
        ok(&root, &["net-list", "--autostart", "--name"]),
        "vsnet\n\n"
    );
    assert_eq!(
        ok(&root, &["net-autostart", "--disable", "vsnet"]),
        "Network vsnet unmarked as autostarted\n\n"
    );

    assert_eq!(
        ok(&root, &["net-destroy", "vsnet"]),
        "Network vsnet destroyed\n\n"
    );
    assert!(!link_exists(br), "bridge {br} after net-destroy");
    let e = fails(&root, &["net-destroy", "vsnet"]);
    assert!(
        e.starts_with("error: Failed to destroy network vsnet\nerror: "),
        "{e}"
    );
    assert_eq!(
        ok(&root, &["net-undefine", "vsnet"]),
        "Network vsnet has been undefined\n\n"
    );
    assert_eq!(
        fails(&root, &["net-info", "vsnet"]),
        "error: failed to get network 'vsnet'\n\
         error: Network not found: no network with matching name 'vsnet'\n"
    );

    // A transient network: created running, gone once destroyed.
    assert_eq!(
        ok(&root, &["net-create", file]),
        format!("Network vsnet created from {file}\n\n")
    );
    assert!(link_exists(br), "bridge {br} after net-create");
    assert_eq!(
        ok(&root, &["-q", "net-list", "--transient"]),
        " vsnet   active   no   no\n"
    );
    // Named as given: by UUID here.
    let t_uuid = ok(&root, &["net-uuid", "vsnet"]);
    let t_uuid = t_uuid.trim_end();
    assert_eq!(
        ok(&root, &["net-destroy", t_uuid]),
        format!("Network {t_uuid} destroyed\n\n")
    );
    assert!(
        !link_exists(br),
        "bridge {br} after destroying the transient"
    );
    assert_eq!(ok(&root, &["net-list", "--all", "--name"]), "\n");
}
