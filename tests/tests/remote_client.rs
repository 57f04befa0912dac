//! virtsh's remote transports (`qemu+tls://`, `qemu+tcp://`) against a
//! small in-test gRPC server (the health service) instead of virtproxyd:
//! the TLS handshake with certificates of [`tests::pki`], the client DN the
//! server sees, wrong CAs, `no_verify=1`, missing files, revocation, the
//! `virt-readonly` metadata, keepalive, and the virtsh binary finding the
//! system client files under `VIRT_ROOT`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::tls::server::{ServerFiles, server_config};
use common::tls::subject_dn;
use tests::TestRoot;
use tests::pki::{self, Ca, DEFAULT_CLIENT_DN, Issued, RootFiles};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Server;
use tonic::transport::server::Connected;
use tonic::transport::server::Router;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::layer::util::{Identity, Stack};
use tower::{Layer, Service};
use virtsh::connection::{ChannelOptions, Connection, Daemon, READONLY_HEADER};
use virtsh::uri::ConnectUri;

/// One call as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    path: String,
    /// The client certificate's DN (TLS only).
    dn: Option<String>,
    /// The `virt-readonly` metadata, if sent.
    readonly: Option<String>,
}

/// What the server knows of a TLS connection.
#[derive(Clone, Debug)]
struct Peer {
    dn: Option<String>,
}

/// A server-side TLS stream that tells tonic its peer's DN.
struct PeerStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    dn: Option<String>,
}

impl Connected for PeerStream {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        Peer {
            dn: self.dn.clone(),
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A health server on 127.0.0.1 recording the calls it serves and the
/// handshakes it refuses. Stops when dropped.
struct TestServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    refused: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TestServer {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn refused(&self) -> Vec<String> {
        self.refused.lock().expect("lock").clone()
    }
}

/// A layer recording each request's path, peer DN and read-only metadata.
#[derive(Clone)]
struct RecordLayer(Arc<Mutex<Vec<Seen>>>);

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            seen: self.0.clone(),
        }
    }
}

/// See [`RecordLayer`].
#[derive(Clone)]
struct Record<S> {
    inner: S,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl<S, B> Service<http::Request<B>> for Record<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> S::Future {
        let s = Seen {
            path: req.uri().path().to_owned(),
            dn: req.extensions().get::<Peer>().and_then(|p| p.dn.clone()),
            readonly: req
                .headers()
                .get(READONLY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        self.seen.lock().expect("lock").push(s);
        self.inner.call(req)
    }
}

/// The router every test server runs: health behind a [`RecordLayer`].
fn router(seen: Arc<Mutex<Vec<Seen>>>) -> Router<Stack<RecordLayer, Identity>> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    Server::builder()
        .layer(RecordLayer(seen))
        .add_service(health)
}

/// A TLS server with `files`, verifying clients against `files.ca_file`.
async fn tls_server(files: &ServerFiles) -> TestServer {
    let config = server_config(files, true).expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel::<Result<PeerStream, std::io::Error>>(16);
    let refused = Arc::new(Mutex::new(Vec::new()));
    let acceptor = TlsAcceptor::from(config);
    let refused_log = refused.clone();
    let accept = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx, refused) = (acceptor.clone(), tx.clone(), refused_log.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        let dn = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| subject_dn(c).expect("client DN"));
                        let _ = tx.send(Ok(PeerStream { inner: tls, dn })).await;
                    }
                    Err(e) => refused.lock().expect("lock").push(e.to_string()),
                }
            });
        }
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let serve = router(seen.clone()).serve_with_incoming(ReceiverStream::new(rx));
    let serve = tokio::spawn(async move {
        let _ = serve.await;
    });
    TestServer {
        port,
        seen,
        refused,
        tasks: vec![accept, serve],
    }
}

/// A plain TCP server.
async fn tcp_server() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let serve = router(seen.clone()).serve_with_incoming(TcpListenerStream::new(listener));
    let serve = tokio::spawn(async move {
        let _ = serve.await;
    });
    TestServer {
        port,
        seen,
        refused: Arc::new(Mutex::new(Vec::new())),
        tasks: vec![serve],
    }
}

/// A CA, its server certificate (default names) and client1, with the
/// server files under `root` and the client files in `root/pki`.
struct Setup {
    root: TestRoot,
    ca: Ca,
    client: Issued,
}

impl Setup {
    fn new() -> Setup {
        let root = TestRoot::new();
        let ca = Ca::new("Test CA");
        let client = ca.client(DEFAULT_CLIENT_DN);
        pki::write_ca(root.path(), &ca);
        pki::write_server(root.path(), &ca.server(&[]));
        pki::write_pkipath(&root.path().join("pki"), &ca, &client);
        Setup { root, ca, client }
    }

    fn server_files(&self) -> ServerFiles {
        let f = RootFiles::new(self.root.path());
        ServerFiles {
            ca_file: f.ca_cert,
            cert_file: f.server_cert,
            key_file: f.server_key,
            crl_file: None,
        }
    }

    fn pkipath(&self) -> String {
        self.root.path().join("pki").display().to_string()
    }
}

fn connection(uri: &str, readonly: bool) -> Connection {
    let uri = ConnectUri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    Connection::new(uri, readonly, ChannelOptions::default())
}

/// One health check over `conn`.
async fn health(conn: &mut Connection) -> Result<ServingStatus, String> {
    let ch = conn
        .channel(Daemon::Qemu)
        .await
        .map_err(|e| e.to_string())?;
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        HealthClient::new(ch).check(HealthCheckRequest::default()),
    )
    .await
    .map_err(|_| "health check timed out".to_owned())?
    .map_err(|s| s.to_string())?;
    Ok(ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

#[tokio::test]
async fn tls_with_a_client_certificate_of_the_ca() {
    let s = Setup::new();
    let server = tls_server(&s.server_files()).await;
    for host in ["127.0.0.1", "localhost"] {
        let mut conn = connection(
            &format!(
                "qemu+tls://{host}:{}/system?pkipath={}",
                server.port,
                s.pkipath()
            ),
            false,
        );
        assert_eq!(
            health(&mut conn).await,
            Ok(ServingStatus::Serving),
            "{host}"
        );
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for call in &seen {
        assert_eq!(call.path, "/grpc.health.v1.Health/Check");
        // The DN the server reads is the one the CA issued, in order.
        assert_eq!(call.dn.as_deref(), Some("C=GB,O=Test,CN=client1"));
        assert_eq!(call.dn.as_deref(), Some(s.client.dn.as_str()));
        assert_eq!(call.readonly, None);
    }
    assert!(server.refused().is_empty(), "{:?}", server.refused());
}

#[tokio::test]
async fn one_channel_serves_every_daemon() {
    let s = Setup::new();
    let server = tls_server(&s.server_files()).await;
    let mut conn = connection(
        &format!(
            "qemu+tls://127.0.0.1:{}/system?pkipath={}",
            server.port,
            s.pkipath()
        ),
        false,
    );
    for d in [Daemon::Qemu, Daemon::Storage, Daemon::Network] {
        let ch = conn.channel(d).await.expect("channel");
        HealthClient::new(ch)
            .check(HealthCheckRequest::default())
            .await
            .expect("check");
    }
    assert_eq!(server.seen().len(), 3);
    // One TLS connection: one handshake accepted, none refused.
    assert!(server.refused().is_empty());
}

#[tokio::test]
async fn subject_dn_keeps_certificate_order_and_escapes() {
    let ca = Ca::new("Test CA");
    let c = ca.client(&[
        ("C", "GB"),
        ("ST", "London"),
        ("L", "London"),
        ("O", "Red Hat, Inc."),
        ("OU", "a+b"),
        ("CN", "#client 1 "),
    ]);
    assert_eq!(
        subject_dn(&c.cert_der).as_deref(),
        Ok("C=GB,ST=London,L=London,O=Red Hat\\, Inc.,OU=a\\+b,CN=\\#client 1\\ ")
    );
    assert_eq!(subject_dn(&c.cert_der).as_deref(), Ok(c.dn.as_str()));
    let reversed = ca.client(&[("CN", "client1"), ("O", "Test"), ("C", "GB")]);
    assert_eq!(
        subject_dn(&reversed.cert_der).as_deref(),
        Ok("CN=client1,O=Test,C=GB")
    );
}

#[tokio::test]
async fn server_certificate_of_another_ca_is_refused_unless_no_verify() {
    let s = Setup::new();
    let other = Ca::new("Other CA");
    let dir = s.root.path().join("other");
    let bad = other.server(&[]);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("cert.pem"), &bad.cert_pem).expect("write");
    std::fs::write(dir.join("key.pem"), &bad.key_pem).expect("write");
    let files = ServerFiles {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
        ..s.server_files()
    };
    let server = tls_server(&files).await;
    let uri = format!(
        "qemu+tls://127.0.0.1:{}/system?pkipath={}",
        server.port,
        s.pkipath()
    );
    let e = health(&mut connection(&uri, false)).await;
    assert_eq!(
        e,
        Err(
            "authentication failed: Failed to verify peer's certificate \
             (invalid peer certificate: UnknownIssuer)"
                .to_owned()
        )
    );
    assert!(server.seen().is_empty());

    let mut conn = connection(&format!("{uri}&no_verify=1"), false);
    assert_eq!(health(&mut conn).await, Ok(ServingStatus::Serving));
    // The client still authenticates itself with its certificate.
    assert_eq!(
        server.seen()[0].dn.as_deref(),
        Some("C=GB,O=Test,CN=client1")
    );
}

#[tokio::test]
async fn server_name_must_match_the_certificate() {
    let s = Setup::new();
    let dir = s.root.path().join("named");
    let named = s.ca.server(&["server.example"]);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("cert.pem"), &named.cert_pem).expect("write");
    std::fs::write(dir.join("key.pem"), &named.key_pem).expect("write");
    let files = ServerFiles {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
        ..s.server_files()
    };
    let server = tls_server(&files).await;
    let uri = format!(
        "qemu+tls://127.0.0.1:{}/system?pkipath={}",
        server.port,
        s.pkipath()
    );
    let e = health(&mut connection(&uri, false))
        .await
        .expect_err("name mismatch");
    assert!(
        e.starts_with("authentication failed: Failed to verify peer's certificate (")
            && e.contains("not valid for name \"127.0.0.1\""),
        "{e}"
    );
}

#[tokio::test]
async fn missing_client_certificate_is_named() {
    let s = Setup::new();
    let server = tls_server(&s.server_files()).await;
    let dir = s.root.path().join("pki");
    std::fs::remove_file(dir.join("clientcert.pem")).expect("rm");
    let uri = format!(
        "qemu+tls://127.0.0.1:{}/system?pkipath={}",
        server.port,
        s.pkipath()
    );
    assert_eq!(
        health(&mut connection(&uri, false)).await,
        Err(format!(
            "Cannot read client certificate '{}': No such file or directory",
            dir.join("clientcert.pem").display()
        ))
    );
    std::fs::write(dir.join("clientcert.pem"), &s.client.cert_pem).expect("write");
    std::fs::remove_file(dir.join("cacert.pem")).expect("rm");
    assert_eq!(
        health(&mut connection(&uri, false)).await,
        Err(format!(
            "Cannot read CA certificate '{}': No such file or directory",
            dir.join("cacert.pem").display()
        ))
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn client_of_another_ca_or_revoked_is_refused_by_the_server() {
    let s = Setup::new();
    let revoked = s.ca.client(&[("O", "Test"), ("CN", "revoked")]);
    let crl = pki::write_crl(s.root.path(), &s.ca.crl(&[&revoked]));
    let files = ServerFiles {
        crl_file: Some(crl),
        ..s.server_files()
    };
    let server = tls_server(&files).await;

    // client1 is not revoked.
    let uri = format!(
        "qemu+tls://127.0.0.1:{}/system?pkipath={}",
        server.port,
        s.pkipath()
    );
    assert_eq!(
        health(&mut connection(&uri, false)).await,
        Ok(ServingStatus::Serving)
    );

    // The revoked one is refused by the server's verifier.
    let dir = s.root.path().join("revoked");
    pki::write_pkipath(&dir, &s.ca, &revoked);
    let uri = format!(
        "qemu+tls://127.0.0.1:{}/system?pkipath={}",
        server.port,
        dir.display()
    );
    assert_eq!(
        health(&mut connection(&uri, false)).await,
        Err(
            "server verification (of our certificate or IP address) failed \
             (received fatal alert: CertificateRevoked)"
                .to_owned()
        )
    );

    // So is a client of another CA.
    let other = Ca::new("Other CA");
    let dir = s.root.path().join("stranger");
    pki::write_pkipath(&dir, &s.ca, &other.client(DEFAULT_CLIENT_DN));
    let uri = format!(
        "qemu+tls://127.0.0.1:{}/system?pkipath={}",
        server.port,
        dir.display()
    );
    assert_eq!(
        health(&mut connection(&uri, false)).await,
        Err(
            "server verification (of our certificate or IP address) failed \
             (received fatal alert: UnknownCA)"
                .to_owned()
        )
    );

    let refused = server.refused();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].contains("Revoked"), "{refused:?}");
    assert!(refused[1].contains("UnknownIssuer"), "{refused:?}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn read_only_connections_send_the_metadata() {
    let s = Setup::new();
    let tls = tls_server(&s.server_files()).await;
    let tcp = tcp_server().await;
    let tls_uri = format!(
        "qemu+tls://127.0.0.1:{}/system?pkipath={}",
        tls.port,
        s.pkipath()
    );
    let tcp_uri = format!("qemu+tcp://127.0.0.1:{}/system", tcp.port);
    for (uri, server) in [(&tls_uri, &tls), (&tcp_uri, &tcp)] {
        for readonly in [true, false] {
            let mut conn = connection(uri, readonly);
            for d in [Daemon::Qemu, Daemon::Storage, Daemon::Network] {
                let ch = conn.channel(d).await.expect("channel");
                HealthClient::new(ch)
                    .check(HealthCheckRequest::default())
                    .await
                    .expect("check");
            }
        }
        let seen: Vec<Option<String>> = server.seen().into_iter().map(|c| c.readonly).collect();
        let one = Some("1".to_owned());
        assert_eq!(
            seen,
            vec![one.clone(), one.clone(), one, None, None, None],
            "{uri}"
        );
    }
}

#[tokio::test]
async fn plain_tcp_works_and_refusals_read_as_libvirt() {
    let server = tcp_server().await;
    let mut conn = connection(
        &format!("qemu+tcp://127.0.0.1:{}/system", server.port),
        false,
    );
    assert_eq!(health(&mut conn).await, Ok(ServingStatus::Serving));
    assert_eq!(
        server.seen(),
        vec![Seen {
            path: "/grpc.health.v1.Health/Check".into(),
            dn: None,
            readonly: None
        }]
    );

    let port = server.port;
    drop(server);
    // Nothing listens on the port once the server is gone.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    assert_ne!(port, 0);
    let e = health(&mut connection(
        &format!("qemu+tcp://127.0.0.1:{closed_port}/system"),
        false,
    ))
    .await;
    assert_eq!(
        e,
        Err(format!(
            "unable to connect to server at '127.0.0.1:{closed_port}': Connection refused"
        ))
    );
    let e = health(&mut connection(
        &format!("qemu+tls://127.0.0.1:{closed_port}/system?no_verify=1&pkipath=/nonexistent"),
        false,
    ))
    .await;
    // The files are read before dialing, as libvirt does.
    assert!(
        e.as_ref()
            .is_err_and(|e| e.contains("/nonexistent/clientcert.pem")),
        "{e:?}"
    );
}

#[tokio::test]
async fn keepalive_notices_a_silent_server() {
    // A server that accepts and reads but never answers, not even pings.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.flush().await;
            held.push(s);
        }
    });
    let uri = ConnectUri::parse(&format!("qemu+tcp://127.0.0.1:{port}/system")).expect("uri");
    let mut conn = Connection::new(
        uri,
        false,
        ChannelOptions {
            keepalive_interval: Some(1),
            keepalive_count: Some(1),
        },
    );
    let ch = conn.channel(Daemon::Qemu).await.expect("channel");
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        HealthClient::new(ch).check(HealthCheckRequest::default()),
    )
    .await
    .expect("keepalive ends the call well before 15 s");
    assert!(r.is_err());
    silent.abort();
}

#[tokio::test]
async fn virtsh_uses_the_system_files_under_virt_root() {
    // The binary, `-r`, client files from VIRT_ROOT (no pkipath).
    let s = Setup::new();
    pki::write_client(s.root.path(), &s.client);
    let server = tls_server(&s.server_files()).await;
    let uri = format!("qemu+tls://127.0.0.1:{}/system", server.port);
    let root = s.root.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(tests::bin_dir().join("virtsh"))
            .args(["-r", "-c", &uri, "hostname"])
            .env("VIRT_ROOT", &root)
            .env_remove("LIBVIRT_DEFAULT_URI")
            .env_remove("VIRSH_DEFAULT_CONNECT_URI")
            .output()
            .expect("run virtsh")
    })
    .await
    .expect("join");
    let err = String::from_utf8_lossy(&out.stderr);
    // The test server has no DomainService: the call reaches it and is
    // unimplemented there.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("this function is not supported by the connection driver"),
        "{err}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].path.starts_with("/virt.domain.v1.DomainService/"),
        "{seen:?}"
    );
    assert_eq!(seen[0].dn.as_deref(), Some("C=GB,O=Test,CN=client1"));
    assert_eq!(seen[0].readonly.as_deref(), Some("1"));
}
