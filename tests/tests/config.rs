//! Config files: libvirt-style files work, mistakes stop the daemon with a
//! message naming the key or the file.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use proto::admin::v1 as pb;
use tests::{Daemon, SocketKind, TestRoot};

/// Spawns `name` with `args`, expects a quick failure, returns its output.
async fn fails(name: &str, root: &TestRoot, args: &[&str]) -> String {
    let mut d = Daemon::builder(name, root).args(args).spawn();
    let st = d.wait_exit(Duration::from_secs(5)).await;
    assert!(!st.success(), "{name} {args:?} exited with {st}");
    assert!(
        !root.socket(name, SocketKind::ReadWrite).exists(),
        "a refused config must not leave sockets"
    );
    d.output()
}

#[tokio::test]
async fn unknown_key_is_refused_by_name() {
    let root = TestRoot::new();
    let path = root.write_config("virtqemud", "max_clientz = 3\n");
    let out = fails("virtqemud", &root, &[]).await;
    assert!(out.contains("max_clientz"), "{out}");
    assert!(out.contains(&path.display().to_string()), "{out}");
}

#[tokio::test]
async fn libvirt_style_file_is_used() {
    let root = TestRoot::new();
    let path = root.write_config(
        "virtqemud",
        r#"# Master configuration file for the QEMU daemon, libvirt style.
#
# unix_sock_group = "libvirt"

# Limits
max_clients = 20          # trailing comment
max_client_requests = 5

unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
log_filters = "1:qemu 3:util"
keepalive_interval = -1
"#,
    );
    let d = Daemon::start("virtqemud", &root).await;
    let info = d.info().await;
    assert_eq!(info.config_file, path.display().to_string());
    let limits = d
        .admin()
        .await
        .get_server_limits(pb::GetServerLimitsRequest { server: None })
        .await
        .expect("GetServerLimits")
        .into_inner()
        .limits
        .expect("limits");
    assert_eq!(limits.max_clients, Some(20));
    assert_eq!(limits.max_client_requests, Some(5));
    let mode = |k| {
        std::fs::metadata(root.socket("virtqemud", k))
            .expect("socket")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(SocketKind::ReadOnly), 0o777);
    assert_eq!(mode(SocketKind::ReadWrite), 0o770);
    assert_eq!(mode(SocketKind::Admin), 0o600, "default admin perms");
}

#[tokio::test]
async fn proxy_only_key_is_refused_outside_virtproxyd() {
    let root = TestRoot::new();
    root.write_config("virtqemud", "listen_tls = 0\n");
    let out = fails("virtqemud", &root, &[]).await;
    assert!(
        out.contains("listen_tls") && out.contains("virtproxyd"),
        "{out}"
    );
    // The same key is fine in virtproxyd.conf.
    root.write_config("virtproxyd", "listen_tls = 0\n");
    let proxy = Daemon::start("virtproxyd", &root).await;
    assert_eq!(
        proxy.info().await.config_file,
        root.config_file("virtproxyd").display().to_string()
    );
}

#[tokio::test]
async fn explicit_config_file_must_exist() {
    let root = TestRoot::new();
    let missing = root.path().join("nonexistent.conf");
    let out = fails(
        "virtstoraged",
        &root,
        &["-f", missing.to_str().expect("utf-8 path")],
    )
    .await;
    assert!(out.contains(&missing.display().to_string()), "{out}");
}

#[tokio::test]
async fn explicit_config_file_is_used() {
    let root = TestRoot::new();
    let file = root.path().join("custom.conf");
    std::fs::write(&file, "max_clients = 7\nadmin_max_clients = 3\n").expect("write");
    let d = Daemon::builder("virtnetworkd", &root)
        .args(["-f", file.to_str().expect("utf-8 path")])
        .start()
        .await;
    assert_eq!(d.info().await.config_file, file.display().to_string());
    let mut admin = d.admin().await;
    let main = admin
        .get_server_limits(pb::GetServerLimitsRequest { server: None })
        .await
        .expect("limits")
        .into_inner();
    assert_eq!(main.limits.expect("limits").max_clients, Some(7));
    let adm = admin
        .get_server_limits(pb::GetServerLimitsRequest {
            server: Some("admin".into()),
        })
        .await
        .expect("admin limits")
        .into_inner();
    assert_eq!(adm.limits.expect("limits").max_clients, Some(3));
}

#[tokio::test]
async fn bad_value_is_refused_by_key() {
    let root = TestRoot::new();
    root.write_config("virtnetworkd", "max_clients = \"many\"\n");
    let out = fails("virtnetworkd", &root, &[]).await;
    assert!(out.contains("max_clients"), "{out}");
}

#[tokio::test]
async fn unix_sock_dir_moves_the_sockets() {
    let root = TestRoot::new();
    let dir = root.path().join("socks");
    root.write_config(
        "virtstoraged",
        &format!("unix_sock_dir = \"{}\"\n", dir.display()),
    );
    let mut d = Daemon::builder("virtstoraged", &root).spawn();
    // The default rw path is not used, so wait on the admin socket.
    let admin_sock = dir.join("virtstoraged-admin-sock");
    let up = tests::wait_until_async(tests::READY_TIMEOUT, || async {
        admin_sock.exists()
            && tests::health_check(tests::channel_to(&admin_sock).await, "")
                .await
                .is_ok()
    })
    .await;
    assert!(up, "not ready:\n{}", d.output());
    let info =
        pb::admin_service_client::AdminServiceClient::new(tests::channel_to(&admin_sock).await)
            .get_daemon_info(pb::GetDaemonInfoRequest {})
            .await
            .expect("GetDaemonInfo")
            .into_inner();
    let mut addrs: Vec<String> = info.sockets.iter().map(|s| s.address.clone()).collect();
    addrs.sort();
    assert_eq!(
        addrs,
        [
            "virtstoraged-admin-sock",
            "virtstoraged-sock",
            "virtstoraged-sock-ro"
        ]
        .map(|n| dir.join(n).display().to_string())
    );
    assert!(!root.socket("virtstoraged", SocketKind::ReadWrite).exists());
    d.sigterm();
    assert!(d.wait_exit(Duration::from_secs(5)).await.success());
    assert!(!admin_sock.exists(), "socket left in unix_sock_dir");
}
