//! A Python grpcio client (tests/python/client.py) against a running
//! virtqemud, with modules generated from proto/ by grpc_tools.protoc
//! (venv and generation: `tests::python`).

use std::process::Command;

use tests::python::{generate, venv_python};
use tests::{Daemon, SocketKind, TestRoot, workspace_dir};

fn qemu_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").is_file()))
}

#[tokio::test]
async fn python_grpcio_client_talks_to_virtqemud() {
    let python = venv_python();
    let root = TestRoot::new();
    let gen_dir = root.path().join("pygen");
    generate(&python, &gen_dir);

    let qemud = Daemon::start("virtqemud", &root).await;
    let script = workspace_dir().join("tests/python/client.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .arg("--gen")
        .arg(&gen_dir)
        .arg("--rw")
        .arg(qemud.socket(SocketKind::ReadWrite))
        .arg("--ro")
        .arg(qemud.socket(SocketKind::ReadOnly))
        .arg("--admin")
        .arg(qemud.socket(SocketKind::Admin))
        .arg("--pid")
        .arg(qemud.pid().to_string());
    if qemu_on_path() {
        cmd.arg("--qemu");
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client.py failed ({}):\n{stdout}\n{stderr}\ndaemon output:\n{}",
        out.status,
        qemud.output()
    );
    eprintln!("client.py:\n{stdout}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
