//! One instance per root, recovery from a killed daemon, and whole stacks
//! side by side on different roots.

use std::time::Duration;

use proto::admin::v1 as pb;
use proto::domain::v1 as dom;
use tests::{DAEMONS, Daemon, SOCKET_KINDS, SocketKind, Stack, TestRoot};
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn second_instance_on_same_root_fails_fast() {
    let root = TestRoot::new();
    let first = Daemon::start("virtnetworkd", &root).await;
    let mut second = Daemon::builder("virtnetworkd", &root).spawn();
    let st = second.wait_exit(Duration::from_secs(5)).await;
    assert!(!st.success(), "second instance exited with {st}");
    let out = second.output();
    assert!(out.contains("already running"), "{out}");
    // The first one's sockets and pid file are untouched and serve.
    for kind in SOCKET_KINDS {
        assert_eq!(
            first.health(kind, "").await.expect("first still serves"),
            ServingStatus::Serving
        );
    }
    let pid = std::fs::read_to_string(root.pid_file("virtnetworkd")).expect("pid file");
    assert_eq!(pid.trim(), first.pid().to_string());
    assert_eq!(first.info().await.pid, first.pid());
}

#[tokio::test]
async fn restart_after_kill_9_reuses_stale_sockets() {
    let root = TestRoot::new();
    let mut first = Daemon::start("virtqemud", &root).await;
    first.kill9();
    for kind in SOCKET_KINDS {
        assert!(
            root.socket("virtqemud", kind).exists(),
            "{kind:?} socket should be left behind by kill -9"
        );
    }
    assert!(root.pid_file("virtqemud").exists());

    let second = Daemon::start("virtqemud", &root).await;
    let info = second.info().await;
    assert_eq!(info.pid, second.pid());
    assert_ne!(info.pid, first.pid());
    second
        .domain(SocketKind::ReadWrite)
        .await
        .get_hostname(dom::GetHostnameRequest {})
        .await
        .expect("new instance serves on the old paths");
    let pid = std::fs::read_to_string(root.pid_file("virtqemud")).expect("pid file");
    assert_eq!(pid.trim(), second.pid().to_string());
}

/// The clients of virtqemud's main server (rw and ro sockets).
async fn main_clients(d: &Daemon) -> Vec<pb::Client> {
    d.admin()
        .await
        .list_clients(pb::ListClientsRequest {
            server: Some("virtqemud".into()),
        })
        .await
        .expect("ListClients")
        .into_inner()
        .clients
}

#[tokio::test]
async fn two_stacks_side_by_side() {
    let a = Stack::start().await;
    let b = Stack::start().await;
    assert_ne!(a.root().path(), b.root().path());

    for stack in [&a, &b] {
        for d in stack.daemons() {
            let info = d.info().await;
            assert_eq!(info.pid, d.pid(), "{}", d.name());
            for s in &info.sockets {
                assert!(
                    s.address
                        .starts_with(&stack.root().path().display().to_string()),
                    "{} socket {} outside its root",
                    d.name(),
                    s.address
                );
            }
        }
    }
    for name in DAEMONS {
        assert_ne!(a.daemon(name).pid(), b.daemon(name).pid());
    }

    // A client of stack A's virtqemud shows in A's list only.
    let mut held = a.qemud().domain(SocketKind::ReadOnly).await;
    held.get_hostname(dom::GetHostnameRequest {})
        .await
        .expect("call on A");
    let in_a = main_clients(a.qemud()).await;
    assert!(
        in_a.iter().any(|c| c.readonly),
        "A lists our ro client: {in_a:?}"
    );
    let settled = tests::wait_until_async(Duration::from_secs(5), || async {
        main_clients(b.qemud()).await.is_empty()
    })
    .await;
    assert!(
        settled,
        "B lists clients of A: {:?}",
        main_clients(b.qemud()).await
    );

    // Stopping A leaves B serving.
    let mut a = a;
    a.stop().await;
    for d in b.daemons() {
        assert_eq!(
            d.health(SocketKind::ReadWrite, "").await.expect("B serves"),
            ServingStatus::Serving
        );
    }
}
