//! Per-socket access: read-only, read-write and admin sockets against the
//! method table, unfilled RPCs, socket permissions, reflection.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::error::status_detail;
use proto::Access;
use proto::admin::v1 as admin_pb;
use proto::admin::v1::admin_service_client::AdminServiceClient;
use proto::domain::v1 as dom;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as net;
use proto::storage::v1 as sto;
use tests::{Daemon, SOCKET_KINDS, SocketKind, Stack, TestRoot, call_empty};
use tonic::Code;

fn qemu_on_path() -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|d| d.join("qemu-system-x86_64").is_file())
}

/// Asserts a PERMISSION_DENIED from the access layer (OPERATION_DENIED).
fn assert_denied(r: Result<impl std::fmt::Debug, tonic::Status>, what: &str) {
    let s = r.expect_err(what);
    assert_eq!(s.code(), Code::PermissionDenied, "{what}: {s:?}");
    let d = status_detail(&s).unwrap_or_else(|| panic!("{what}: no error detail"));
    assert_eq!((d.code, d.code_name.as_str()), (29, "OPERATION_DENIED"));
}

#[tokio::test]
async fn read_only_socket_refuses_mutating_calls() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let storaged = Daemon::start("virtstoraged", &root).await;
    let networkd = Daemon::start("virtnetworkd", &root).await;

    let r = qemud
        .domain(SocketKind::ReadOnly)
        .await
        .define_xml(dom::DefineXmlRequest::default())
        .await;
    let s = r.as_ref().expect_err("DefineXml on ro");
    assert!(
        s.message().contains("read only") && s.message().contains("DefineXml"),
        "{s:?}"
    );
    assert_denied(r, "DefineXml on ro");
    assert_denied(
        storaged
            .storage(SocketKind::ReadOnly)
            .await
            .define_pool(sto::DefinePoolRequest::default())
            .await,
        "DefinePool on ro",
    );
    assert_denied(
        networkd
            .network(SocketKind::ReadOnly)
            .await
            .define_network(net::DefineNetworkRequest::default())
            .await,
        "DefineNetwork on ro",
    );
}

#[tokio::test]
async fn read_only_socket_passes_read_only_calls() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut ro = qemud.domain(SocketKind::ReadOnly).await;

    let v = ro.get_version(dom::GetVersionRequest {}).await;
    if qemu_on_path() {
        let v = v.expect("GetVersion on ro").into_inner();
        assert_eq!(v.hypervisor_type, "QEMU");
        assert_eq!(v.daemon_name, "virtqemud");
        assert_eq!(v.daemon_version, common::daemon::VERSION);
        assert!(v.hypervisor_version_number > 1_000_000, "{v:?}");
    } else {
        let s = v.expect_err("no QEMU on PATH");
        assert_ne!(s.code(), Code::PermissionDenied, "{s:?}");
    }
    let host = ro
        .get_hostname(dom::GetHostnameRequest {})
        .await
        .expect("GetHostname on ro")
        .into_inner();
    assert!(!host.hostname.is_empty());
    let node = ro
        .node_get_info(dom::NodeGetInfoRequest {})
        .await
        .expect("NodeGetInfo on ro")
        .into_inner();
    assert!(node.cpus >= 1 && node.memory_kib > 0, "{node:?}");

    let s = ro
        .get_capabilities(dom::GetCapabilitiesRequest {})
        .await
        .expect_err("GetCapabilities is not filled yet");
    assert_eq!(s.code(), Code::Unimplemented, "{s:?}");
}

#[tokio::test]
async fn unfilled_rpc_is_unimplemented_with_no_support_detail() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let s = qemud
        .domain(SocketKind::ReadWrite)
        .await
        .get_capabilities(dom::GetCapabilitiesRequest {})
        .await
        .expect_err("GetCapabilities is not filled yet");
    assert_eq!(s.code(), Code::Unimplemented);
    assert_eq!(
        s.message(),
        "this function is not supported by the connection driver: virt.domain.v1.DomainService/GetCapabilities"
    );
    let d = status_detail(&s).expect("detail decodes");
    assert_eq!((d.code, d.code_name.as_str()), (3, "NO_SUPPORT"));
    let e = common::VirtError::from_status(&s);
    assert_eq!(e.code, common::ErrorCode::NoSupport);
}

#[tokio::test]
async fn admin_methods_only_on_the_admin_socket() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    for kind in [SocketKind::ReadWrite, SocketKind::ReadOnly] {
        let mut a = AdminServiceClient::new(qemud.channel(kind).await);
        let r = a.get_daemon_info(admin_pb::GetDaemonInfoRequest {}).await;
        let s = r.as_ref().expect_err("admin on service socket");
        assert!(s.message().contains("admin socket"), "{s:?}");
        assert_denied(r, "GetDaemonInfo on service socket");
        assert_denied(
            a.reload(admin_pb::ReloadRequest {}).await,
            "Reload on service socket",
        );
    }
    let mut d = DomainServiceClient::new(qemud.channel(SocketKind::Admin).await);
    assert_denied(
        d.get_version(dom::GetVersionRequest {}).await,
        "GetVersion on admin",
    );
    assert_denied(
        d.define_xml(dom::DefineXmlRequest::default()).await,
        "DefineXml on admin",
    );
    // Unknown paths are refused everywhere.
    for kind in SOCKET_KINDS {
        assert_denied(
            call_empty(qemud.channel(kind).await, "/no.such.Service/Method").await,
            "unknown method",
        );
    }
}

/// Every entry of `proto::METHOD_ACCESS` on every socket of the daemon that
/// serves its package (admin: virtproxyd), with an empty request.
#[tokio::test]
async fn method_table_matches_socket_matrix() {
    let stack = Stack::start().await;
    let mut channels = Vec::new();
    for d in stack.daemons() {
        for kind in SOCKET_KINDS {
            channels.push((d.name().to_owned(), kind, d.channel(kind).await));
        }
    }
    let mut checked = 0;
    for (path, access) in proto::METHOD_ACCESS {
        let daemon = match path.split('.').nth(1) {
            Some("domain") => "virtqemud",
            Some("storage") => "virtstoraged",
            Some("network") => "virtnetworkd",
            Some("admin") => "virtproxyd",
            other => panic!("{path}: unexpected package {other:?}"),
        };
        for (name, kind, ch) in &channels {
            if name != daemon {
                continue;
            }
            let allowed = match kind {
                SocketKind::ReadWrite => *access != Access::Admin,
                SocketKind::ReadOnly => *access == Access::ReadOnly,
                _ => *access == Access::Admin,
            };
            // A streaming method that passes the ACL may keep the call open
            // (events): a timeout means it got past the ACL.
            let r =
                tokio::time::timeout(Duration::from_secs(5), call_empty(ch.clone(), path)).await;
            match (allowed, r) {
                (true, Err(_)) => {}
                (true, Ok(Ok(()))) => {}
                (true, Ok(Err(s))) => assert_ne!(
                    s.code(),
                    Code::PermissionDenied,
                    "{path} ({access:?}) denied on {kind:?}: {s:?}"
                ),
                (false, Ok(Err(s))) => assert_eq!(
                    s.code(),
                    Code::PermissionDenied,
                    "{path} ({access:?}) on {kind:?}: {s:?}"
                ),
                (false, other) => panic!("{path} ({access:?}) passed on {kind:?}: {other:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, proto::METHOD_ACCESS.len() * 3);
    // The daemons are still fine after all that.
    for d in stack.daemons() {
        assert_eq!(d.info().await.name, d.name());
    }
}

#[tokio::test]
async fn socket_permissions() {
    let root = TestRoot::new();
    let _qemud = Daemon::start("virtqemud", &root).await;
    let mode = |k| {
        std::fs::metadata(root.socket("virtqemud", k))
            .expect("socket")
            .permissions()
            .mode()
            & 0o777
    };
    // The code's defaults (config.rs): rw 0600, ro 0666, admin 0600.
    assert_eq!(mode(SocketKind::ReadWrite), 0o600);
    assert_eq!(mode(SocketKind::ReadOnly), 0o666);
    assert_eq!(mode(SocketKind::Admin), 0o600);
    // What matters: ro is world-accessible, rw and admin are not.
    assert_eq!(mode(SocketKind::ReadOnly) & 0o006, 0o006);
    assert_eq!(mode(SocketKind::ReadWrite) & 0o077, 0);
    assert_eq!(mode(SocketKind::Admin) & 0o077, 0);
    let dir = std::fs::metadata(root.path().join("run/virt"))
        .expect("run dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir, 0o755, "others can reach the ro socket");
}

#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    for kind in SOCKET_KINDS {
        let mut c = ServerReflectionClient::new(qemud.channel(kind).await);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = c
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .expect("reflection")
            .into_inner();
        let resp = stream
            .message()
            .await
            .expect("reflection answer")
            .expect("one response");
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected reflection answer {resp:?}");
        };
        let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names.contains(&"virt.domain.v1.DomainService"),
            "{kind:?}: {names:?}"
        );
    }
}
