//! The idle timeout (`-t SECS`): exit when no client is connected, never
//! while one is.

use std::time::{Duration, Instant};

use proto::domain::v1 as dom;
use tests::{Daemon, SOCKET_KINDS, SocketKind, TestRoot};

#[tokio::test]
async fn exits_after_timeout_without_clients() {
    let root = TestRoot::new();
    let mut d = Daemon::builder("virtqemud", &root)
        .args(["-t", "2"])
        .start()
        .await;
    // The readiness probe was the last client; the clock runs from its end.
    let since = Instant::now();
    let st = d.wait_exit(Duration::from_secs(6)).await;
    let took = since.elapsed();
    assert!(st.success(), "{st}; output:\n{}", d.output());
    assert!(
        took >= Duration::from_millis(1500),
        "exited after {took:?}, before the 2 s timeout"
    );
    let out = d.output();
    assert!(out.contains("idle timeout"), "{out}");
    for kind in SOCKET_KINDS {
        assert!(!root.socket("virtqemud", kind).exists());
    }
    assert!(!root.pid_file("virtqemud").exists());
}

#[tokio::test]
async fn connected_client_keeps_it_alive_until_it_leaves() {
    let root = TestRoot::new();
    let mut d = Daemon::builder("virtstoraged", &root)
        .args(["-t", "2"])
        .start()
        .await;
    let channel = d.channel(SocketKind::ReadOnly).await;
    tests::health_check(channel.clone(), "")
        .await
        .expect("a call on the held connection");
    // Well past the timeout: still running because we are connected.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        d.is_running(),
        "exited with a client connected:\n{}",
        d.output()
    );
    tests::health_check(channel.clone(), "")
        .await
        .expect("held connection still served");

    drop(channel);
    let since = Instant::now();
    let st = d.wait_exit(Duration::from_secs(6)).await;
    assert!(st.success(), "{st}; output:\n{}", d.output());
    assert!(
        since.elapsed() >= Duration::from_millis(1500),
        "exited {:?} after the client left",
        since.elapsed()
    );
}

#[tokio::test]
async fn qemud_client_on_admin_socket_counts_too() {
    let root = TestRoot::new();
    let mut d = Daemon::builder("virtqemud", &root)
        .args(["-t", "1"])
        .start()
        .await;
    let mut admin = d.admin().await;
    let mut rw = d.domain(SocketKind::ReadWrite).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        rw.get_hostname(dom::GetHostnameRequest {})
            .await
            .expect("call");
        admin
            .get_daemon_info(proto::admin::v1::GetDaemonInfoRequest {})
            .await
            .expect("admin call");
    }
    drop(rw);
    // Only the admin client is left; it still holds the daemon.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(d.is_running(), "exited with an admin client connected");
    drop(admin);
    let st = d.wait_exit(Duration::from_secs(5)).await;
    assert!(st.success());
}
