//! Each daemon starts on a temporary root, answers health and admin
//! GetDaemonInfo, and stops cleanly on SIGTERM and SIGINT; `-V`; a whole
//! stack starts in the contract order and stops.

use std::time::Duration;

use nix::sys::signal::Signal;
use proto::admin::v1 as pb;
use tests::{DAEMONS, Daemon, SOCKET_KINDS, SocketKind, Stack, TestRoot, daemon_bin, service_name};
use tonic_health::pb::health_check_response::ServingStatus;

/// How long a daemon may take to exit after SIGTERM/SIGINT here: "a few
/// seconds", with a client still connected.
const EXIT_BOUND: Duration = Duration::from_secs(5);

fn kind_of(k: SocketKind) -> pb::SocketKind {
    match k {
        SocketKind::ReadWrite => pb::SocketKind::Rw,
        SocketKind::ReadOnly => pb::SocketKind::Ro,
        _ => pb::SocketKind::Admin,
    }
}

async fn lifecycle(name: &str, sig: Signal) {
    let root = TestRoot::new();
    let mut d = Daemon::start(name, &root).await;

    // Health: overall and per service, on every socket.
    for kind in SOCKET_KINDS {
        assert_eq!(
            d.health(kind, "").await.expect("health \"\""),
            ServingStatus::Serving,
            "{name} {kind:?}"
        );
        assert_eq!(
            d.health(kind, "virt.admin.v1.AdminService")
                .await
                .expect("health admin"),
            ServingStatus::Serving
        );
        if let Some(svc) = service_name(name) {
            assert_eq!(
                d.health(kind, svc).await.expect("health service"),
                ServingStatus::Serving,
                "{name} {kind:?} {svc}"
            );
        }
        let unknown = d
            .health(kind, "no.such.Service")
            .await
            .expect_err("unknown service");
        assert_eq!(unknown.code(), tonic::Code::NotFound);
    }

    // Admin GetDaemonInfo.
    let info = d.info().await;
    assert_eq!(info.name, name);
    assert_eq!(info.version, common::daemon::VERSION);
    assert_eq!(info.pid, d.pid(), "admin pid is the child's pid");
    assert_eq!(info.mode, pb::DaemonMode::System as i32);
    assert_eq!(info.config_file, "", "runs on defaults");
    assert!(info.client_count >= 1, "at least our admin connection");
    assert!(!info.active);
    assert_eq!(info.sockets.len(), 3, "{:?}", info.sockets);
    for kind in SOCKET_KINDS {
        let s = info
            .sockets
            .iter()
            .find(|s| s.kind == kind_of(kind) as i32)
            .unwrap_or_else(|| panic!("no {kind:?} socket in {:?}", info.sockets));
        assert_eq!(s.address, root.socket(name, kind).display().to_string());
        assert!(!s.activated);
        let server = if kind == SocketKind::Admin {
            "admin"
        } else {
            name
        };
        assert_eq!(s.server, server);
        assert!(root.socket(name, kind).exists());
    }
    let pid_text = std::fs::read_to_string(root.pid_file(name)).expect("pid file");
    assert_eq!(pid_text.trim(), d.pid().to_string());

    // Stop with a client still connected: the daemon must not wait for it.
    let held = d.channel(SocketKind::ReadOnly).await;
    tests::health_check(held.clone(), "")
        .await
        .expect("held client works");
    d.signal(sig);
    let status = d.wait_exit(EXIT_BOUND).await;
    assert!(
        status.success(),
        "{name} exited with {status} on {sig}; output:\n{}",
        d.output()
    );
    for kind in SOCKET_KINDS {
        assert!(
            !root.socket(name, kind).exists(),
            "{name}: {kind:?} socket left behind"
        );
    }
    assert!(
        !root.pid_file(name).exists(),
        "{name}: pid file left behind"
    );
    drop(held);
}

#[tokio::test]
async fn virtqemud_starts_reports_and_stops_on_sigterm() {
    lifecycle("virtqemud", Signal::SIGTERM).await;
}

#[tokio::test]
async fn virtstoraged_starts_reports_and_stops_on_sigterm() {
    lifecycle("virtstoraged", Signal::SIGTERM).await;
}

#[tokio::test]
async fn virtnetworkd_starts_reports_and_stops_on_sigterm() {
    lifecycle("virtnetworkd", Signal::SIGTERM).await;
}

#[tokio::test]
async fn virtproxyd_starts_reports_and_stops_on_sigterm() {
    lifecycle("virtproxyd", Signal::SIGTERM).await;
}

#[tokio::test]
async fn every_daemon_stops_on_sigint() {
    for name in DAEMONS {
        lifecycle(name, Signal::SIGINT).await;
    }
}

#[test]
fn version_flag_prints_version_and_exits_0() {
    for name in DAEMONS {
        let root = TestRoot::new();
        let out = std::process::Command::new(daemon_bin(name))
            .arg("-V")
            .env("VIRT_ROOT", root.path())
            .output()
            .expect("run -V");
        assert!(out.status.success(), "{name} -V: {}", out.status);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            format!("{name} (virt) {}", common::daemon::VERSION)
        );
        assert_eq!(common::daemon::VERSION, "0.1.0");
        // -V only prints: nothing is created under the root.
        assert!(!root.socket(name, SocketKind::ReadWrite).exists());
    }
}

#[tokio::test]
async fn stack_starts_in_order_and_stops() {
    let mut stack = Stack::start().await;
    let names: Vec<&str> = stack.daemons().iter().map(Daemon::name).collect();
    assert_eq!(names, DAEMONS);
    for d in stack.daemons() {
        assert_eq!(
            d.health(SocketKind::ReadWrite, "").await.expect("health"),
            ServingStatus::Serving
        );
        let info = d.info().await;
        assert_eq!(info.name, d.name());
        assert_eq!(info.pid, d.pid());
    }
    let root = stack.root().path().to_path_buf();
    stack.stop().await;
    // Sockets and pid files go. The drivers' run directories stay (state
    // that lives until a host reboot empties the run directory, such as
    // virtqemud's once-per-boot autostart marker), without sockets.
    let mut left = Vec::new();
    for e in std::fs::read_dir(root.join("run/virt"))
        .expect("run dir")
        .filter_map(Result::ok)
    {
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir {
            left.push(e.file_name());
        }
    }
    assert!(left.is_empty(), "left in run/virt: {left:?}");
    let qemu: Vec<_> = std::fs::read_dir(root.join("run/virt/qemu"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(qemu, ["autostarted"], "left in run/virt/qemu");
}

#[tokio::test]
async fn pid_file_flag_is_used_and_removed() {
    let root = TestRoot::new();
    let pid_file = root.path().join("custom/qemud.pid");
    let mut d = Daemon::builder("virtqemud", &root)
        .arg("-p")
        .arg(&pid_file)
        .start()
        .await;
    let text = std::fs::read_to_string(&pid_file).expect("custom pid file");
    assert_eq!(text.trim(), d.pid().to_string());
    assert!(!root.pid_file("virtqemud").exists());
    d.stop().await;
    assert!(!pid_file.exists());
}

/// Kills a pid on drop (a daemon that detached from its test child).
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

#[tokio::test]
async fn daemon_flag_detaches() {
    let root = TestRoot::new();
    let mut launcher = Daemon::builder("virtnetworkd", &root).arg("-d").spawn();
    let st = launcher.wait_exit(Duration::from_secs(5)).await;
    assert!(
        st.success(),
        "-d parent exited with {st}:\n{}",
        launcher.output()
    );
    let pid_file = root.pid_file("virtnetworkd");
    let read_pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
    };
    assert!(
        tests::wait_until(tests::READY_TIMEOUT, || read_pid().is_some()).await,
        "no pid file from the detached daemon"
    );
    let pid = read_pid().expect("pid");
    let _guard = KillOnDrop(pid);
    assert_ne!(u32::try_from(pid).expect("pid"), launcher.pid());
    let admin = root.socket("virtnetworkd", SocketKind::Admin);
    let up = tests::wait_until_async(tests::READY_TIMEOUT, || async {
        admin.exists()
            && tests::health_check(tests::channel_to(&admin).await, "")
                .await
                .is_ok()
    })
    .await;
    assert!(up, "detached daemon not serving");
    let info = proto::admin::v1::admin_service_client::AdminServiceClient::new(
        tests::channel_to(&admin).await,
    )
    .get_daemon_info(pb::GetDaemonInfoRequest {})
    .await
    .expect("GetDaemonInfo")
    .into_inner();
    assert_eq!(i32::try_from(info.pid).expect("pid"), pid);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM");
    let gone = tests::wait_until(Duration::from_secs(5), || {
        !admin.exists() && !pid_file.exists()
    })
    .await;
    assert!(gone, "detached daemon did not clean up on SIGTERM");
}

/// A SIGTERM as soon as the sockets answer stops the daemon cleanly (the
/// handlers are in place before anything is reachable).
#[tokio::test]
async fn sigterm_right_after_ready_is_clean() {
    for _ in 0..10 {
        let root = TestRoot::new();
        let mut d = Daemon::start("virtproxyd", &root).await;
        d.sigterm();
        let st = d.wait_exit(EXIT_BOUND).await;
        assert!(st.success(), "exited with {st}; output:\n{}", d.output());
        assert!(!root.socket("virtproxyd", SocketKind::ReadWrite).exists());
        assert!(!root.pid_file("virtproxyd").exists());
    }
}
