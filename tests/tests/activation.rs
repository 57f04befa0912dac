//! Socket activation through `systemd-socket-activate`: the daemon serves
//! the inherited fds, reports them as activated, and leaves them in place
//! when it stops.

use std::path::Path;
use std::process::Command;

use proto::admin::v1 as pb;
use proto::domain::v1 as dom;
use tests::{Daemon, SOCKET_KINDS, SocketKind, TestRoot, daemon_bin};
use tonic_health::pb::health_check_response::ServingStatus;

const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// `systemd-socket-activate` listening on the daemon's three socket paths,
/// with `fdnames`, exec'ing the daemon on the first connection.
fn activated(name: &str, root: &TestRoot, fdnames: &str) -> Daemon {
    assert!(
        Path::new(ACTIVATE).is_file(),
        "{ACTIVATE} is missing: install the systemd package"
    );
    std::fs::create_dir_all(root.path().join("run/virt")).expect("run dir");
    let mut cmd = Command::new(ACTIVATE);
    for kind in SOCKET_KINDS {
        cmd.arg("-l").arg(root.socket(name, kind));
    }
    cmd.arg(format!("--fdname={fdnames}"))
        .arg("-E")
        .arg(format!("VIRT_ROOT={}", root.path().display()))
        .args(["-E", "RUST_LOG=info"]);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.arg("-E")
            .arg(format!("PATH={}", path.to_string_lossy()));
    }
    cmd.arg(daemon_bin(name)).env_remove("LISTEN_FDS");
    Daemon::spawn_command(name, root.path(), cmd)
}

async fn check_activated(name: &str, fdnames: &str) {
    let root = TestRoot::new();
    let mut d = activated(name, &root, fdnames);
    // The sockets exist before the daemon runs: systemd-socket-activate
    // made them, and the first connection (the readiness probe) execs it.
    d.wait_ready().await;

    let info = d.info().await;
    assert_eq!(info.name, name);
    assert_eq!(
        info.pid,
        d.pid(),
        "systemd-socket-activate execs the daemon"
    );
    assert_eq!(info.sockets.len(), 3, "{:?}", info.sockets);
    for s in &info.sockets {
        assert!(s.activated, "{s:?}");
    }
    for (kind, pbk) in [
        (SocketKind::ReadWrite, pb::SocketKind::Rw),
        (SocketKind::ReadOnly, pb::SocketKind::Ro),
        (SocketKind::Admin, pb::SocketKind::Admin),
    ] {
        let s = info
            .sockets
            .iter()
            .find(|s| s.kind == pbk as i32)
            .expect("socket kind reported");
        assert_eq!(s.address, root.socket(name, kind).display().to_string());
        assert_eq!(
            d.health(kind, "").await.expect("health"),
            ServingStatus::Serving
        );
    }
    let out = d.output();
    assert!(out.contains("using activated socket"), "{out}");

    // Each fd keeps its kind: admin calls only on the admin fd, and the
    // read-only fd stays read-only.
    let clients = d.clients().await;
    assert!(
        clients
            .iter()
            .any(|c| c.socket == pb::SocketKind::Admin as i32)
    );
    if name == "virtqemud" {
        let mut ro = d.domain(SocketKind::ReadOnly).await;
        ro.get_hostname(dom::GetHostnameRequest {})
            .await
            .expect("GetHostname on activated ro");
        let s = ro
            .define_xml(dom::DefineXmlRequest::default())
            .await
            .expect_err("DefineXml on activated ro");
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        d.domain(SocketKind::ReadWrite)
            .await
            .get_hostname(dom::GetHostnameRequest {})
            .await
            .expect("GetHostname on activated rw");
    }

    d.sigterm();
    let st = d.wait_exit(std::time::Duration::from_secs(5)).await;
    assert!(st.success(), "{st}; output:\n{}", d.output());
    for kind in SOCKET_KINDS {
        assert!(
            root.socket(name, kind).exists(),
            "activated {kind:?} socket was unlinked"
        );
    }
    assert!(!root.pid_file(name).exists(), "pid file left behind");

    // Nobody listens on them now; a normal start replaces them.
    let mut again = Daemon::start(name, &root).await;
    let info = again.info().await;
    assert!(info.sockets.iter().all(|s| !s.activated), "{info:?}");
    again.stop().await;
}

#[tokio::test]
async fn virtqemud_serves_activated_sockets() {
    check_activated(
        "virtqemud",
        "virtqemud.socket:virtqemud-ro.socket:virtqemud-admin.socket",
    )
    .await;
}

#[tokio::test]
async fn short_fd_names_are_understood() {
    check_activated("virtstoraged", "rw:ro:admin").await;
}
