//! virtproxyd on the network: mutual TLS with the test PKI (`tests::pki`),
//! the DN allow-list, a certificate of another CA, plain TCP, and virtsh
//! reaching the daemons through it with `qemu+tls://` and `qemu+tcp://`.

use std::path::Path;

use tests::pki::{self, Ca, DEFAULT_CLIENT_DN};
use tests::{Daemon, SocketKind, TestRoot, virtsh};

/// A TCP port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

const DOMAIN: &str = "<domain type='qemu'><name>NAME</name><memory unit='MiB'>32</memory>\
     <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>";

/// The PKI of one test: CA, server certificate, the default client.
fn write_pki(root: &Path) -> Ca {
    let ca = Ca::new("Proxy Test CA");
    pki::write_ca(root, &ca);
    pki::write_server(root, &ca.server(&[]));
    pki::write_client(root, &ca.client(DEFAULT_CLIENT_DN));
    ca
}

/// virtqemud and a listening virtproxyd (`extra` config lines) on `root`.
async fn stack(root: &TestRoot, extra: &str) -> (Daemon, Daemon, u16) {
    let port = free_port();
    root.write_config(
        "virtproxyd",
        &format!("listen_addr = \"127.0.0.1\"\ntls_port = \"{port}\"\n{extra}"),
    );
    let qemud = Daemon::start("virtqemud", root).await;
    let proxy = Daemon::builder("virtproxyd", root)
        .arg("--listen")
        .start()
        .await;
    (qemud, proxy, port)
}

fn tls_uri(port: u16) -> String {
    format!("qemu+tls://localhost:{port}/system")
}

#[tokio::test]
async fn virtsh_over_tls_reaches_the_daemons_and_is_audited_by_dn() {
    let root = TestRoot::new();
    write_pki(root.path());
    let (_qemud, proxy, port) = stack(&root, "").await;
    let uri = tls_uri(port);

    let xml = root.path().join("d.xml");
    std::fs::write(&xml, DOMAIN.replace("NAME", "over-tls")).expect("xml");
    let out = virtsh::ok(&root, &["-c", &uri, "define", xml.to_str().expect("utf8")]);
    assert!(out.contains("Domain 'over-tls' defined"), "{out}");
    let out = virtsh::ok(&root, &["-c", &uri, "list", "--all"]);
    assert!(out.contains("over-tls"), "{out}");
    // Storage goes through the same connection (no virtstoraged here: the
    // proxy names the socket it could not reach).
    let err = virtsh::fails(&root, &["-c", &uri, "pool-list"]);
    assert!(err.contains("virtstoraged"), "{err}");

    // Read-only over TLS: reads work, changes are refused by the proxy.
    let out = virtsh::ok(&root, &["-r", "-c", &uri, "dominfo", "over-tls"]);
    assert!(out.contains("over-tls"), "{out}");
    let err = virtsh::fails(&root, &["-r", "-c", &uri, "undefine", "over-tls"]);
    assert!(err.contains("read only"), "{err}");

    // The audit names the certificate's DN.
    let log = root.paths().log_dir.join("virtproxyd-audit.log");
    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(
        text.lines()
            .any(|l| l.contains("client=\"C=GB,O=Test,CN=client1\"")
                && l.contains("DefineXml")
                && l.contains("name=over-tls")),
        "{text}"
    );
    // virtsh has gone: the proxy lists no TLS client any more.
    let clients = proxy.clients().await;
    assert!(
        clients
            .iter()
            .all(|c| c.transport != proto::admin::v1::Transport::Tls as i32),
        "{clients:?}"
    );
}

#[tokio::test]
async fn certificate_of_another_ca_is_refused() {
    let root = TestRoot::new();
    write_pki(root.path());
    let (_qemud, _proxy, port) = stack(&root, "").await;
    // A client whose certificate another CA signed (it trusts our CA, so
    // only the server's check can refuse it).
    let ours = Ca::new("Proxy Test CA (client side copy)");
    let other = Ca::new("Some Other CA");
    let dir = root.path().join("otherpki");
    pki::write_pkipath(&dir, &ours, &other.client(DEFAULT_CLIENT_DN));
    std::fs::copy(
        pki::RootFiles::new(root.path()).ca_cert,
        dir.join("cacert.pem"),
    )
    .expect("trust the real CA");
    let uri = format!(
        "qemu+tls://localhost:{port}/system?pkipath={}",
        dir.display()
    );
    let err = virtsh::fails(&root, &["-c", &uri, "list", "--all"]);
    assert!(
        err.contains("certificate") || err.contains("verification"),
        "{err}"
    );
}

#[tokio::test]
async fn dn_allow_list_admits_matches_only() {
    let root = TestRoot::new();
    let ca = write_pki(root.path());
    let (_qemud, _proxy, port) =
        stack(&root, "tls_allowed_dn_list = [\"C=GB,O=Test,CN=admin*\"]\n").await;

    // client1 (the default client) is not on the list.
    let err = virtsh::fails(&root, &["-c", &tls_uri(port), "list", "--all"]);
    assert!(
        err.contains("C=GB,O=Test,CN=client1") && err.contains("tls_allowed_dn_list"),
        "{err}"
    );

    // admin7 is.
    let dir = root.path().join("adminpki");
    pki::write_pkipath(
        &dir,
        &ca,
        &ca.client(&[("C", "GB"), ("O", "Test"), ("CN", "admin7")]),
    );
    let uri = format!(
        "qemu+tls://localhost:{port}/system?pkipath={}",
        dir.display()
    );
    let out = virtsh::ok(&root, &["-c", &uri, "list", "--all"]);
    assert!(out.contains("Name"), "{out}");
}

#[tokio::test]
async fn empty_dn_allow_list_admits_nobody() {
    let root = TestRoot::new();
    write_pki(root.path());
    let (_qemud, _proxy, port) = stack(&root, "tls_allowed_dn_list = []\n").await;
    let err = virtsh::fails(&root, &["-c", &tls_uri(port), "list", "--all"]);
    assert!(err.contains("tls_allowed_dn_list"), "{err}");
}

#[tokio::test]
async fn plain_tcp_when_enabled() {
    let root = TestRoot::new();
    let port = free_port();
    root.write_config(
        "virtproxyd",
        &format!(
            "listen_tls = 0\nlisten_tcp = 1\nlisten_addr = \"127.0.0.1\"\ntcp_port = \"{port}\"\n"
        ),
    );
    let _qemud = Daemon::start("virtqemud", &root).await;
    let _proxy = Daemon::builder("virtproxyd", &root)
        .arg("--listen")
        .start()
        .await;
    let out = virtsh::ok(
        &root,
        &[
            "-c",
            &format!("qemu+tcp://127.0.0.1:{port}/system"),
            "list",
            "--all",
        ],
    );
    assert!(out.contains("Name"), "{out}");
}

#[tokio::test]
async fn no_network_listener_without_listen() {
    let root = TestRoot::new();
    write_pki(root.path());
    let port = free_port();
    root.write_config(
        "virtproxyd",
        &format!("listen_addr = \"127.0.0.1\"\ntls_port = \"{port}\"\n"),
    );
    let proxy = Daemon::start("virtproxyd", &root).await;
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // Its Unix sockets serve as always.
    assert!(proxy.socket(SocketKind::ReadWrite).exists());
}

#[tokio::test]
async fn broken_pki_stops_the_start_naming_the_file() {
    let root = TestRoot::new();
    let port = free_port();
    root.write_config(
        "virtproxyd",
        &format!("listen_addr = \"127.0.0.1\"\ntls_port = \"{port}\"\n"),
    );
    let mut proxy = Daemon::builder("virtproxyd", &root).arg("--listen").spawn();
    let status = proxy.wait_exit(std::time::Duration::from_secs(10)).await;
    assert!(!status.success());
    let out = proxy.output();
    let cert = pki::RootFiles::new(root.path()).server_cert;
    assert!(out.contains(&cert.display().to_string()), "{out}");
}

#[tokio::test]
async fn python_grpcio_client_over_tls() {
    let python = tests::python::venv_python();
    let root = TestRoot::new();
    let gen_dir = root.path().join("pygen");
    tests::python::generate(&python, &gen_dir);
    write_pki(root.path());
    let (qemud, _proxy, port) = stack(&root, "").await;
    let files = pki::RootFiles::new(root.path());
    let script = tests::workspace_dir().join("tests/python/tls_client.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .arg("--gen")
        .arg(&gen_dir)
        .arg("--target")
        .arg(format!("localhost:{port}"))
        .arg("--ca")
        .arg(&files.ca_cert)
        .arg("--cert")
        .arg(&files.client_cert)
        .arg("--key")
        .arg(&files.client_key);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run tls_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tls_client.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // The definition made over TLS is virtqemud's.
    let list = qemud
        .domain(SocketKind::ReadWrite)
        .await
        .list_all_domains(proto::domain::v1::ListAllDomainsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.domains.len(), 1, "{list:?}");
}
