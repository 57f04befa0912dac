//! virtproxyd over its Unix sockets: forwarding to every daemon (calls and
//! streams), read-only and admin access at the proxy and again at the
//! daemons, the per-client call limit, the message size cap, audit records,
//! and a daemon that is not there. TLS and TCP: tests/tests/proxy_tls.rs.

use std::time::{Duration, Instant};
use tests::calls::domain_ref as by_name;

use proto::Access;
use proto::domain::v1 as dom;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as net;
use proto::storage::v1 as sto;
use tests::{Daemon, SocketKind, Stack, TestRoot, channel_to, wait_until};
use tonic::Code;

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
}

/// Sends an empty message to `path`, with `virt-readonly: 1` when `ro`.
async fn call_empty(
    channel: tonic::transport::Channel,
    path: &'static str,
    ro: bool,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(());
    if ro {
        req.metadata_mut().insert(
            "virt-readonly",
            tonic::metadata::MetadataValue::from_static("1"),
        );
    }
    grpc.unary(
        req,
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::<(), ()>::default(),
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn calls_and_streams_reach_every_daemon_through_the_proxy() {
    let stack = Stack::start().await;
    let proxy = stack.daemon("virtproxyd");
    let mut via = proxy.domain(SocketKind::ReadWrite).await;
    let mut direct = stack.qemud().domain(SocketKind::ReadWrite).await;

    // An event stream through the proxy sees a define made through it.
    let mut events = via
        .watch_events(dom::WatchEventsRequest::default())
        .await
        .expect("watch through the proxy")
        .into_inner();
    via.define_xml(dom::DefineXmlRequest {
        xml: domain_xml("px-a"),
        ..Default::default()
    })
    .await
    .expect("define through the proxy");
    let ev = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("an event in time")
        .expect("stream ok")
        .expect("an event");
    assert!(format!("{ev:?}").contains("px-a"), "{ev:?}");

    // The daemon has it; the proxy lists what the daemon lists.
    let names = |r: dom::ListAllDomainsResponse| -> Vec<String> {
        r.domains
            .into_iter()
            .filter_map(|d| d.domain.map(|d| d.name))
            .collect()
    };
    let d = names(
        direct
            .list_all_domains(dom::ListAllDomainsRequest::default())
            .await
            .expect("list direct")
            .into_inner(),
    );
    let p = names(
        via.list_all_domains(dom::ListAllDomainsRequest::default())
            .await
            .expect("list via proxy")
            .into_inner(),
    );
    assert_eq!(d, vec!["px-a".to_owned()]);
    assert_eq!(p, d);

    // Errors come back as the daemon gave them (code and detail).
    let e = via
        .start(dom::StartRequest {
            domain: by_name("no-such"),
            ..Default::default()
        })
        .await
        .expect_err("unknown domain");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("no-such"), "{e:?}");

    // Storage and network answer through the proxy too.
    proxy
        .storage(SocketKind::ReadWrite)
        .await
        .list_all_pools(sto::ListAllPoolsRequest::default())
        .await
        .expect("pools via proxy");
    proxy
        .network(SocketKind::ReadWrite)
        .await
        .list_all_networks(net::ListAllNetworksRequest::default())
        .await
        .expect("networks via proxy");
}

/// Every method of the three services on every proxy socket, and with
/// `virt-readonly: 1` on the read-write one: refused exactly where the
/// method table says, forwarded everywhere else; the daemons' own
/// read-only sockets refuse the same methods.
#[tokio::test]
async fn method_table_holds_at_the_proxy_and_at_the_daemons() {
    let stack = Stack::start().await;
    let proxy = stack.daemon("virtproxyd");
    let mut checked = 0;
    for (path, access) in proto::METHOD_ACCESS {
        let owner = match path.split('.').nth(1) {
            Some("domain") => "virtqemud",
            Some("storage") => "virtstoraged",
            Some("network") => "virtnetworkd",
            _ => continue,
        };
        for (kind, ro_header) in [
            (SocketKind::ReadWrite, false),
            (SocketKind::ReadWrite, true),
            (SocketKind::ReadOnly, false),
            (SocketKind::Admin, false),
        ] {
            let effective_ro = ro_header || kind == SocketKind::ReadOnly;
            let allowed = match kind {
                SocketKind::Admin => false,
                _ if effective_ro => *access == Access::ReadOnly,
                _ => *access != Access::Admin,
            };
            let ch = proxy.channel(kind).await;
            // A refusal comes at once; an allowed event watch stays open,
            // so allowed calls get a short bound (a timeout there means it
            // got through), refusals a generous one.
            let bound = Duration::from_secs(if allowed { 1 } else { 10 });
            let r = tokio::time::timeout(bound, call_empty(ch, path, ro_header)).await;
            match (allowed, r) {
                // A stream that got through stays open.
                (true, Err(_) | Ok(Ok(()))) => {}
                (true, Ok(Err(s))) => assert!(
                    s.code() != Code::PermissionDenied && s.code() != Code::Unavailable,
                    "{path} ({access:?}) not forwarded on {kind:?} ro={ro_header}: {s:?}"
                ),
                (false, Ok(Err(s))) => assert_eq!(
                    s.code(),
                    Code::PermissionDenied,
                    "{path} ({access:?}) on {kind:?} ro={ro_header}: {s:?}"
                ),
                (false, other) => {
                    panic!("{path} ({access:?}) passed on {kind:?} ro={ro_header}: {other:?}")
                }
            }
            checked += 1;
        }
        // The daemon's read-only socket (where the proxy sends read-only
        // clients) refuses it on its own.
        if *access != Access::ReadOnly {
            let ch = stack.daemon(owner).channel(SocketKind::ReadOnly).await;
            let s = call_empty(ch, path, false)
                .await
                .expect_err("refused by the daemon");
            assert_eq!(s.code(), Code::PermissionDenied, "{path} at {owner}: {s:?}");
        }
    }
    assert!(checked > 100, "only {checked} checks");
    // Admin calls on the proxy's admin socket are the proxy's own.
    assert_eq!(proxy.info().await.name, "virtproxyd");
}

#[tokio::test]
async fn mutating_calls_are_audited_with_who_what_and_result() {
    let stack = Stack::start().await;
    let proxy = stack.daemon("virtproxyd");
    let mut via = proxy.domain(SocketKind::ReadWrite).await;
    via.define_xml(dom::DefineXmlRequest {
        xml: domain_xml("audited"),
        ..Default::default()
    })
    .await
    .expect("define");
    let _ = via
        .undefine(dom::UndefineRequest {
            domain: by_name("ghost"),
            ..Default::default()
        })
        .await
        .expect_err("no such domain");
    // Reads are not audited.
    via.list_all_domains(dom::ListAllDomainsRequest::default())
        .await
        .expect("list");
    let log = stack.root().paths().log_dir.join("virtproxyd-audit.log");
    let me = format!("pid={}", std::process::id());
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().count() >= 2
        })
        .await,
        "audit log: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(&me)
            && lines[0].contains("method=virt.domain.v1.DomainService/DefineXml")
            && lines[0].contains("object=\"name=audited\"")
            && lines[0].ends_with("result=\"OK\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("method=virt.domain.v1.DomainService/Undefine")
            && lines[1].contains("object=\"domain=ghost\"")
            && lines[1].contains("result=\"NotFound"),
        "{}",
        lines[1]
    );
}

/// A daemon socket that accepts connections and never answers: the only
/// way to have calls that stay in flight as long as the test wants.
fn silent_socket(path: &std::path::Path) -> std::thread::JoinHandle<()> {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("run dir");
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind silent socket");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            match s {
                Ok(s) => held.push(s),
                Err(_) => return,
            }
        }
    })
}

#[tokio::test]
async fn client_over_its_call_limit_is_refused_and_others_go_on() {
    let root = TestRoot::new();
    root.write_config("virtproxyd", "max_client_requests = 2\n");
    let _silent = silent_socket(&root.socket("virtnetworkd", SocketKind::ReadWrite));
    let _qemud = Daemon::start("virtqemud", &root).await;
    let proxy = Daemon::start("virtproxyd", &root).await;

    // Client A: two calls that hang at the silent daemon, then a third.
    let a = channel_to(&proxy.socket(SocketKind::ReadWrite)).await;
    let mut hanging = Vec::new();
    for _ in 0..2 {
        let mut c =
            proto::network::v1::network_service_client::NetworkServiceClient::new(a.clone());
        hanging.push(tokio::spawn(async move {
            c.list_all_networks(net::ListAllNetworksRequest::default())
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = DomainServiceClient::new(a.clone())
        .list_all_domains(dom::ListAllDomainsRequest::default())
        .await
        .expect_err("third call of client A");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("max_client_requests"), "{e:?}");

    // Client B is not affected, and answers fast.
    let t = Instant::now();
    DomainServiceClient::new(channel_to(&proxy.socket(SocketKind::ReadWrite)).await)
        .list_all_domains(dom::ListAllDomainsRequest::default())
        .await
        .expect("client B");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    for h in &hanging {
        assert!(!h.is_finished(), "the hanging calls are still in flight");
    }
    for h in hanging {
        h.abort();
    }
    // Once A's calls are gone, A may call again.
    drop(a);
}

#[tokio::test]
async fn oversized_request_refused_and_nothing_defined() {
    let root = TestRoot::new();
    root.write_config("virtproxyd", "max_message_size = 2048\n");
    let qemud = Daemon::start("virtqemud", &root).await;
    let proxy = Daemon::start("virtproxyd", &root).await;
    let big = domain_xml("big").replace(
        "<memory",
        &format!("<description>{}</description><memory", "x".repeat(4096)),
    );
    let e = proxy
        .domain(SocketKind::ReadWrite)
        .await
        .define_xml(dom::DefineXmlRequest {
            xml: big,
            ..Default::default()
        })
        .await
        .expect_err("too big");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("max_message_size"), "{e:?}");
    let list = qemud
        .domain(SocketKind::ReadWrite)
        .await
        .list_all_domains(dom::ListAllDomainsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(list.domains.is_empty(), "{list:?}");
}

#[tokio::test]
async fn missing_daemon_is_unavailable_naming_its_socket() {
    let root = TestRoot::new();
    let proxy = Daemon::start("virtproxyd", &root).await;
    let e = proxy
        .storage(SocketKind::ReadWrite)
        .await
        .list_all_pools(sto::ListAllPoolsRequest::default())
        .await
        .expect_err("no virtstoraged");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let sock = root.socket("virtstoraged", SocketKind::ReadWrite);
    assert!(
        e.message().contains("virtstoraged") && e.message().contains(&sock.display().to_string()),
        "{e:?}"
    );
    // Once it is there, the same client gets through.
    let _storaged = Daemon::start("virtstoraged", &root).await;
    let mut c = proxy.storage(SocketKind::ReadWrite).await;
    c.list_all_pools(sto::ListAllPoolsRequest::default())
        .await
        .expect("pools once virtstoraged runs");
}

/// Client and server streams through the proxy: a volume uploaded from a
/// file and downloaded back with virtsh on the proxy's socket, 4 MiB each
/// way, byte for byte.
#[tokio::test]
async fn volume_upload_and_download_stream_through_the_proxy() {
    let root = TestRoot::new();
    let _storaged = Daemon::start("virtstoraged", &root).await;
    let proxy = Daemon::start("virtproxyd", &root).await;
    let uri = format!(
        "qemu+unix:///system?socket={}",
        proxy.socket(SocketKind::ReadWrite).display()
    );
    let target = root.path().join("images");
    let t = target.to_str().expect("utf-8");
    let sh = |args: &[&str]| {
        let mut all = vec!["-c", uri.as_str()];
        all.extend_from_slice(args);
        tests::virtsh::ok(&root, &all)
    };
    sh(&["pool-define-as", "p", "dir", "--target", t]);
    sh(&["pool-build", "p"]);
    sh(&["pool-start", "p"]);
    sh(&["vol-create-as", "p", "r.img", "4M"]);
    let src = root.path().join("src.bin");
    let data: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(&src, &data).expect("src");
    sh(&[
        "vol-upload",
        "r.img",
        src.to_str().expect("utf-8"),
        "--pool",
        "p",
    ]);
    assert_eq!(std::fs::read(target.join("r.img")).expect("volume"), data);
    let back = root.path().join("back.bin");
    sh(&[
        "vol-download",
        "r.img",
        back.to_str().expect("utf-8"),
        "--pool",
        "p",
    ]);
    assert_eq!(std::fs::read(&back).expect("back"), data);
    // The upload is audited with its volume.
    let audit = std::fs::read_to_string(root.paths().log_dir.join("virtproxyd-audit.log"))
        .expect("audit log");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("Upload") && l.contains("r.img") && l.ends_with("result=\"OK\"")),
        "{audit}"
    );
}

/// The client's deadline (`grpc-timeout`) holds through the proxy, also
/// when the daemon never answers.
#[tokio::test]
async fn client_deadline_holds_through_the_proxy() {
    let root = TestRoot::new();
    let _silent = silent_socket(&root.socket("virtnetworkd", SocketKind::ReadWrite));
    let proxy = Daemon::start("virtproxyd", &root).await;
    let mut c = proto::network::v1::network_service_client::NetworkServiceClient::new(
        channel_to(&proxy.socket(SocketKind::ReadWrite)).await,
    );
    let mut req = tonic::Request::new(net::ListAllNetworksRequest::default());
    req.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = c.list_all_networks(req).await.expect_err("deadline");
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// keepalive_interval / keepalive_count: a peer that stops answering the
/// proxy's HTTP/2 pings is disconnected (and leaves the client list).
#[tokio::test]
async fn silent_peer_is_dropped_by_keepalive() {
    use std::io::{Read, Write};
    let root = TestRoot::new();
    root.write_config(
        "virtproxyd",
        "keepalive_interval = 1\nkeepalive_count = 1\n",
    );
    let proxy = Daemon::start("virtproxyd", &root).await;
    let mut s = std::os::unix::net::UnixStream::connect(proxy.socket(SocketKind::ReadWrite))
        .expect("connect");
    // The HTTP/2 preface and an empty SETTINGS frame; then silence: the
    // server's SETTINGS and PINGs are read but never acknowledged.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .expect("preface");
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).expect("settings");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "not closed after {:?}", t.elapsed());
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let mut left = false;
    for _ in 0..50 {
        if proxy.clients().await.len() <= 1 {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "{:?}", proxy.clients().await);
}
