//! The admin service: clients, log filters, limits, reload and SIGHUP.

use std::time::Duration;

use common::error::status_detail;
use proto::admin::v1 as pb;
use proto::domain::v1 as dom;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use tests::{Daemon, SocketKind, TestRoot, wait_until, wait_until_async};
use tonic::Code;

fn our_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn our_pid() -> i32 {
    i32::try_from(std::process::id()).expect("pid fits i32")
}

/// The clients on socket `kind`.
async fn clients_on(d: &Daemon, kind: pb::SocketKind) -> Vec<pb::Client> {
    d.clients()
        .await
        .into_iter()
        .filter(|c| c.socket == kind as i32)
        .collect()
}

#[tokio::test]
async fn list_clients_shows_our_connections() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut rw = DomainServiceClient::new(qemud.channel_once(SocketKind::ReadWrite).await);
    let mut ro = DomainServiceClient::new(qemud.channel_once(SocketKind::ReadOnly).await);
    rw.get_hostname(dom::GetHostnameRequest {})
        .await
        .expect("rw call");
    ro.get_hostname(dom::GetHostnameRequest {})
        .await
        .expect("ro call");

    // Earlier probe/readiness connections go away on their own; wait for
    // exactly our two.
    let settled = wait_until_async(Duration::from_secs(5), || async {
        clients_on(&qemud, pb::SocketKind::Rw).await.len() == 1
            && clients_on(&qemud, pb::SocketKind::Ro).await.len() == 1
    })
    .await;
    assert!(settled, "clients: {:?}", qemud.clients().await);

    let all = qemud.clients().await;
    let rw_c = &clients_on(&qemud, pb::SocketKind::Rw).await[0];
    let ro_c = &clients_on(&qemud, pb::SocketKind::Ro).await[0];
    for c in [rw_c, ro_c] {
        assert_eq!(c.uid, Some(our_uid()), "{c:?}");
        assert_eq!(c.uid, Some(0), "the tests run as root");
        assert_eq!(c.pid, Some(our_pid()), "{c:?}");
        assert_eq!(c.transport, pb::Transport::Unix as i32);
        assert_eq!(c.server, "virtqemud");
        assert!(c.connected_at.is_some());
        assert!(c.remote_address.is_empty() && c.identity.is_empty());
    }
    assert!(!rw_c.readonly, "{rw_c:?}");
    assert!(ro_c.readonly, "{ro_c:?}");
    // Our admin connection is listed too, on the admin server.
    assert!(
        all.iter()
            .any(|c| c.socket == pb::SocketKind::Admin as i32 && c.server == "admin"),
        "{all:?}"
    );
    // Ids are unique and sorted.
    let ids: Vec<u64> = all.iter().map(|c| c.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted);

    // Filter by server.
    let mut admin = qemud.admin().await;
    let main_only = admin
        .list_clients(pb::ListClientsRequest {
            server: Some("virtqemud".into()),
        })
        .await
        .expect("ListClients main")
        .into_inner()
        .clients;
    assert_eq!(main_only.len(), 2, "{main_only:?}");
    let s = admin
        .list_clients(pb::ListClientsRequest {
            server: Some("nope".into()),
        })
        .await
        .expect_err("unknown server");
    assert_eq!(s.code(), Code::NotFound);

    // GetClientInfo agrees with the listing.
    let one = admin
        .get_client_info(pb::GetClientInfoRequest { id: ro_c.id })
        .await
        .expect("GetClientInfo")
        .into_inner()
        .client
        .expect("client");
    assert_eq!(&one, ro_c);
}

#[tokio::test]
async fn close_client_ends_its_connection() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut victim = DomainServiceClient::new(qemud.channel_once(SocketKind::ReadWrite).await);
    victim
        .get_hostname(dom::GetHostnameRequest {})
        .await
        .expect("call before close");
    let settled = wait_until_async(Duration::from_secs(5), || async {
        clients_on(&qemud, pb::SocketKind::Rw).await.len() == 1
    })
    .await;
    assert!(settled, "clients: {:?}", qemud.clients().await);
    let id = clients_on(&qemud, pb::SocketKind::Rw).await[0].id;

    let mut admin = qemud.admin().await;
    admin
        .close_client(pb::CloseClientRequest { id })
        .await
        .expect("CloseClient");
    let gone = wait_until_async(Duration::from_secs(5), || async {
        !qemud.clients().await.iter().any(|c| c.id == id)
    })
    .await;
    assert!(gone, "client {id} still listed");

    let s = victim
        .get_hostname(dom::GetHostnameRequest {})
        .await
        .expect_err("call after CloseClient");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");

    // Closing an unknown client is NOT_FOUND / NO_CLIENT.
    let s = admin
        .close_client(pb::CloseClientRequest { id })
        .await
        .expect_err("already closed");
    assert_eq!(s.code(), Code::NotFound);
    let d = status_detail(&s).expect("detail");
    assert_eq!(d.code_name, "NO_CLIENT");
    // The daemon serves on.
    assert!(
        qemud
            .domain(SocketKind::ReadWrite)
            .await
            .get_hostname(dom::GetHostnameRequest {})
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn log_filters_round_trip_and_bad_filter_is_invalid_argument() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut admin = qemud.admin().await;
    let f = "info,virtqemud=debug,tonic=warn";
    admin
        .set_log_filters(pb::SetLogFiltersRequest { filters: f.into() })
        .await
        .expect("SetLogFilters");
    let got = admin
        .get_log_filters(pb::GetLogFiltersRequest {})
        .await
        .expect("GetLogFilters")
        .into_inner()
        .filters;
    assert_eq!(got, f);

    let s = admin
        .set_log_filters(pb::SetLogFiltersRequest {
            filters: "virtqemud=notalevel".into(),
        })
        .await
        .expect_err("bad filter");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    let got = admin
        .get_log_filters(pb::GetLogFiltersRequest {})
        .await
        .expect("GetLogFilters")
        .into_inner()
        .filters;
    assert_eq!(got, f, "a bad filter leaves the filter unchanged");
}

#[tokio::test]
async fn server_limits_and_servers() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut admin = qemud.admin().await;
    let names = admin
        .list_servers(pb::ListServersRequest {})
        .await
        .expect("ListServers")
        .into_inner()
        .names;
    assert_eq!(names, ["virtqemud", "admin"]);
    let limits = admin
        .get_server_limits(pb::GetServerLimitsRequest { server: None })
        .await
        .expect("GetServerLimits")
        .into_inner()
        .limits
        .expect("limits");
    assert_eq!(limits.max_clients, Some(5000));
    let set = admin
        .set_server_limits(pb::SetServerLimitsRequest {
            server: None,
            limits: Some(pb::ServerLimits {
                max_clients: Some(42),
                ..Default::default()
            }),
        })
        .await
        .expect("SetServerLimits")
        .into_inner()
        .limits
        .expect("limits");
    assert_eq!(set.max_clients, Some(42));
    let s = admin
        .set_server_limits(pb::SetServerLimitsRequest {
            server: None,
            limits: Some(pb::ServerLimits {
                max_clients: Some(0),
                ..Default::default()
            }),
        })
        .await
        .expect_err("max_clients 0");
    assert_eq!(s.code(), Code::InvalidArgument);
    // Calls per connection cannot change live: refused, not silently kept.
    let s = admin
        .set_server_limits(pb::SetServerLimitsRequest {
            server: None,
            limits: Some(pb::ServerLimits {
                max_client_requests: Some(9),
                ..Default::default()
            }),
        })
        .await
        .expect_err("max_client_requests is not live");
    assert_eq!(s.code(), Code::Unimplemented);
    assert!(
        s.message().contains("max_client_requests"),
        "{}",
        s.message()
    );
}

#[tokio::test]
async fn reload_and_sighup_keep_the_daemon_running() {
    let root = TestRoot::new();
    let mut qemud = Daemon::start("virtqemud", &root).await;
    let pid = qemud.pid();
    let reply = qemud
        .admin()
        .await
        .reload(pb::ReloadRequest {})
        .await
        .expect("Reload")
        .into_inner();
    assert!(reply.restart_required.is_empty());
    let reloads = |d: &Daemon| d.output().matches("reloading").count();
    assert!(
        wait_until(Duration::from_secs(5), || reloads(&qemud) == 1).await,
        "admin Reload not logged:\n{}",
        qemud.output()
    );
    assert_eq!(qemud.info().await.pid, pid);

    qemud.sighup();
    assert!(
        wait_until(Duration::from_secs(5), || reloads(&qemud) == 2).await,
        "SIGHUP reload not logged:\n{}",
        qemud.output()
    );
    assert!(qemud.is_running(), "exited on SIGHUP:\n{}", qemud.output());
    assert_eq!(qemud.info().await.pid, pid);
    assert!(
        qemud
            .domain(SocketKind::ReadWrite)
            .await
            .get_hostname(dom::GetHostnameRequest {})
            .await
            .is_ok()
    );
    qemud.stop().await;
}

/// One call over a fresh single connection to `kind`: whether the daemon
/// served it (a refused connection fails the connect or the call).
async fn one_call(d: &Daemon, kind: SocketKind) -> Result<(), String> {
    let attempt = async {
        let ch = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn({
                let p = d.socket(kind);
                move |_: http::Uri| {
                    let p = p.clone();
                    async move {
                        tokio::net::UnixStream::connect(p)
                            .await
                            .map(hyper_util::rt::TokioIo::new)
                    }
                }
            }))
            .await
            .map_err(|e| e.to_string())?;
        tests::health_check(ch, "")
            .await
            .map(|_| ())
            .map_err(|s| s.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| "timed out".to_owned())?
}

#[tokio::test]
async fn max_clients_counts_the_main_server_and_follows_set_server_limits() {
    let root = TestRoot::new();
    root.write_config("virtqemud", "max_clients = 1\n");
    let qemud = Daemon::start("virtqemud", &root).await;
    let main_count = || async {
        qemud
            .admin()
            .await
            .get_server_limits(pb::GetServerLimitsRequest { server: None })
            .await
            .expect("GetServerLimits")
            .into_inner()
            .current_clients
    };
    assert!(
        wait_until_async(Duration::from_secs(5), || async { main_count().await == 0 }).await,
        "readiness connections linger"
    );
    let held = qemud.channel_once(SocketKind::ReadWrite).await;
    tests::health_check(held.clone(), "")
        .await
        .expect("first client served");
    assert_eq!(main_count().await, 1);
    // rw and ro sockets form one server: max_clients = 1 is reached.
    let refused = one_call(&qemud, SocketKind::ReadOnly).await;
    assert!(refused.is_err(), "second main-server client was served");
    // The admin server has its own limit.
    assert!(one_call(&qemud, SocketKind::Admin).await.is_ok());

    // Raising the limit at run time admits the next client.
    qemud
        .admin()
        .await
        .set_server_limits(pb::SetServerLimitsRequest {
            server: None,
            limits: Some(pb::ServerLimits {
                max_clients: Some(2),
                // The default (20) would exceed max_clients.
                max_anonymous_clients: Some(2),
                ..Default::default()
            }),
        })
        .await
        .expect("SetServerLimits");
    one_call(&qemud, SocketKind::ReadOnly)
        .await
        .expect("served after SetServerLimits");
    drop(held);
}

#[tokio::test]
async fn log_outputs_switch_to_a_file() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut admin = qemud.admin().await;
    let file = root.path().join("var/log/virt/qemud-test.log");
    let outputs = format!("1:file:{}", file.display());
    admin
        .set_log_outputs(pb::SetLogOutputsRequest {
            outputs: outputs.clone(),
        })
        .await
        .expect("SetLogOutputs");
    let got = admin
        .get_log_outputs(pb::GetLogOutputsRequest {})
        .await
        .expect("GetLogOutputs")
        .into_inner()
        .outputs;
    assert_eq!(got, outputs);
    admin
        .set_log_filters(pb::SetLogFiltersRequest {
            filters: "debug".into(),
        })
        .await
        .expect("SetLogFilters");
    // A denied call logs at debug level.
    let _ = qemud
        .domain(SocketKind::ReadOnly)
        .await
        .define_xml(dom::DefineXmlRequest::default())
        .await;
    let logged = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("denied"))
    })
    .await;
    assert!(logged, "no debug line in {}", file.display());

    let s = admin
        .set_log_outputs(pb::SetLogOutputsRequest {
            outputs: "1:journald".into(),
        })
        .await
        .expect_err("journald is not supported");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    let got = admin
        .get_log_outputs(pb::GetLogOutputsRequest {})
        .await
        .expect("GetLogOutputs")
        .into_inner()
        .outputs;
    assert_eq!(got, outputs, "a bad output leaves the outputs unchanged");
}
