//! The transport's floor on this machine: what one call costs before any
//! daemon work, measured on the stack the daemons are built from, side by
//! side with the daemon, calls interleaved so that all see the same
//! machine:
//!
//! - `unix_echo`: 100 bytes written and read back over a Unix socket,
//!   tokio on both sides (no HTTP/2, no gRPC);
//! - `tonic_noop`: a bare tonic server (`tonic::transport::Server` with
//!   only the standard health service, no layers) answering `Health/Check`;
//! - `tonic_noop_forwarded`: the same call through a bare HTTP/2 forwarder
//!   (hyper's server and client, one backend connection, bodies passed
//!   through undecoded: what any gRPC proxy must do at least);
//! - `virtqemud_floor` and `virtqemud_get_xml`: `GetVersion` and `GetXml`
//!   on the release virtqemud (when built).
//!
//! Servers run in child processes (this binary again, with `--serve-*`),
//! on a runtime like the daemons' (multi-thread, one worker per core, at
//! most four); the client is one current-thread runtime, as in the other
//! benches, over the clients' own Unix connector. Each server's CPU per
//! call is reported as `cpu_<metric>`.
//!
//! Run with `make bench-floor` or `cargo bench -p tests --bench floor`.
//! Without `--bench` (as under `cargo test --all-targets`) it does nothing.
//! What it is for: docs/benchmarks.md, "The transport's floor".

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use tests::benchout::{cpu_ms, ms, note, report, report_one};
use tests::{Daemon, SocketKind, TestRoot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Bytes of each echo round trip.
const ECHO_BYTES: usize = 100;

/// A domain like the lifecycle bench's guest (q35, disk, serial), so that
/// `GetXml` formats a definition of the same size.
const DOMAIN_XML: &str = "<domain type='qemu'>
  <name>floor</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/floor.img'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <serial type='file'><source path='/var/lib/floor.serial'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>";

fn server_runtime() -> tokio::runtime::Runtime {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bind(sock: &Path) -> UnixListener {
    let _ = std::fs::remove_file(sock);
    UnixListener::bind(sock).unwrap_or_else(|e| panic!("bind {}: {e}", sock.display()))
}

/// `--serve-echo SOCK`: echoes every byte back.
async fn serve_echo(sock: PathBuf) {
    let l = bind(&sock);
    loop {
        let (mut s, _) = l.accept().await.expect("accept");
        tokio::spawn(async move {
            let mut b = [0u8; 4096];
            loop {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => {
                        if s.write_all(&b[..k]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// `--serve-tonic SOCK`: tonic's own server with the health service only.
async fn serve_tonic(sock: PathBuf) {
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(bind(&sock)))
        .await
        .expect("tonic server");
}

/// `--serve-forward SOCK BACKEND`: every HTTP/2 request on SOCK is sent
/// on over one HTTP/2 connection to BACKEND, bodies and answers passed
/// through as they come.
async fn serve_forward(sock: PathBuf, backend: PathBuf) {
    let io = UnixStream::connect(&backend).await.expect("backend");
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Incoming>(TokioIo::new(io))
        .await
        .expect("backend handshake");
    tokio::spawn(conn);
    let l = bind(&sock);
    loop {
        let (io, _) = l.accept().await.expect("accept");
        let send = send.clone();
        let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let mut send = send.clone();
            async move { send.send_request(req).await }
        });
        tokio::spawn(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), svc),
        );
    }
}

/// A child server process; killed when dropped.
struct Server(Child);

impl Server {
    fn spawn(args: &[&std::ffi::OsStr], sock: &Path) -> Server {
        let exe = std::env::current_exe().expect("current_exe");
        let child = Command::new(exe).args(args).spawn().expect("spawn server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(sock).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} never listened",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Server(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One kind of call under measurement.
enum Target {
    Echo(UnixStream),
    Health(HealthClient<tonic::transport::Channel>),
    Version(DomainServiceClient<tonic::transport::Channel>),
    GetXml(DomainServiceClient<tonic::transport::Channel>),
}

impl Target {
    async fn call(&mut self) {
        match self {
            Target::Echo(s) => {
                s.write_all(&[7u8; ECHO_BYTES]).await.expect("echo write");
                let mut b = [0u8; ECHO_BYTES];
                s.read_exact(&mut b).await.expect("echo read");
            }
            Target::Health(c) => {
                c.check(HealthCheckRequest::default())
                    .await
                    .expect("health check");
            }
            Target::Version(c) => {
                c.get_version(pb::GetVersionRequest {})
                    .await
                    .expect("GetVersion");
            }
            Target::GetXml(c) => {
                c.get_xml(pb::GetXmlRequest {
                    domain: tests::calls::domain_ref("floor"),
                    ..Default::default()
                })
                .await
                .expect("GetXml");
            }
        }
    }
}

struct Measured {
    metric: &'static str,
    target: Target,
    server_pid: u32,
    times: Vec<f64>,
    cpu: Vec<f64>,
}

async fn run(calls: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let echo_sock = dir.path().join("echo.sock");
    let tonic_sock = dir.path().join("tonic.sock");
    let fwd_sock = dir.path().join("forward.sock");
    let echo = Server::spawn(
        &["--serve-echo".as_ref(), echo_sock.as_os_str()],
        &echo_sock,
    );
    let tonic = Server::spawn(
        &["--serve-tonic".as_ref(), tonic_sock.as_os_str()],
        &tonic_sock,
    );
    let fwd = Server::spawn(
        &[
            "--serve-forward".as_ref(),
            fwd_sock.as_os_str(),
            tonic_sock.as_os_str(),
        ],
        &fwd_sock,
    );
    let mut targets = vec![
        Measured {
            metric: "unix_echo",
            target: Target::Echo(UnixStream::connect(&echo_sock).await.expect("echo")),
            server_pid: echo.pid(),
            times: Vec::new(),
            cpu: Vec::new(),
        },
        Measured {
            metric: "tonic_noop",
            target: Target::Health(HealthClient::new(tests::channel_to(&tonic_sock).await)),
            server_pid: tonic.pid(),
            times: Vec::new(),
            cpu: Vec::new(),
        },
        Measured {
            metric: "tonic_noop_forwarded",
            target: Target::Health(HealthClient::new(tests::channel_to(&fwd_sock).await)),
            server_pid: fwd.pid(),
            times: Vec::new(),
            cpu: Vec::new(),
        },
    ];

    let bin_dir = std::env::var_os("VIRT_TEST_BIN_DIR").map_or_else(tests::bin_dir, PathBuf::from);
    let root = TestRoot::new();
    let mut daemon = None;
    if bin_dir.join("virtqemud").is_file() {
        let mut d = Daemon::builder("virtqemud", &root).spawn();
        d.wait_ready().await;
        let ch = tests::channel_to(&d.socket(SocketKind::ReadWrite)).await;
        let mut c = DomainServiceClient::new(ch.clone());
        c.define_xml(pb::DefineXmlRequest {
            xml: DOMAIN_XML.to_owned(),
            validate: true,
        })
        .await
        .expect("define");
        for (metric, target) in [
            ("virtqemud_floor", Target::Version(c)),
            (
                "virtqemud_get_xml",
                Target::GetXml(DomainServiceClient::new(ch)),
            ),
        ] {
            targets.push(Measured {
                metric,
                target,
                server_pid: d.pid(),
                times: Vec::new(),
                cpu: Vec::new(),
            });
        }
        daemon = Some(d);
    } else {
        note(&format!(
            "no {}: the virtqemud rows are left out (cargo build --release -p virtqemud --bins)",
            bin_dir.join("virtqemud").display()
        ));
    }

    for t in &mut targets {
        for _ in 0..50 {
            t.target.call().await;
        }
    }
    // Round-robin, starting with a different target each round; the CPU
    // of the server is read around each call in a second pass, so that
    // reading /proc does not show in the times.
    let n = targets.len();
    for i in 0..calls {
        for k in 0..n {
            let t = &mut targets[(i + k) % n];
            let t0 = Instant::now();
            t.target.call().await;
            t.times.push(ms(t0.elapsed()));
        }
    }
    for i in 0..calls.min(1000) {
        for k in 0..n {
            let t = &mut targets[(i + k) % n];
            let c0 = cpu_ms(t.server_pid);
            t.target.call().await;
            t.cpu.push(cpu_ms(t.server_pid) - c0);
        }
    }
    for t in &targets {
        report(t.metric, &t.times, "ms");
    }
    for t in &targets {
        report(&format!("cpu_{}", t.metric), &t.cpu, "ms");
    }
    #[allow(clippy::cast_precision_loss)] // small counts
    let client = cpu_ms(std::process::id()) / (calls * n) as f64;
    report_one("cpu_client_mean", client, calls * n, "ms");
    drop(daemon);
    drop((echo, tonic, fwd));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| PathBuf::from(args.get(i).expect("socket path argument"));
    match args.get(1).map(String::as_str) {
        Some("--serve-echo") => return server_runtime().block_on(serve_echo(arg(2))),
        Some("--serve-tonic") => return server_runtime().block_on(serve_tonic(arg(2))),
        Some("--serve-forward") => {
            return server_runtime().block_on(serve_forward(arg(2), arg(3)));
        }
        _ => {}
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "floor bench: not run: `make bench-floor` or `cargo bench -p tests --bench floor`"
        );
        return;
    }
    let calls = if args.iter().any(|a| a == "--quick") {
        500
    } else {
        5000
    };
    eprintln!("floor bench: {calls} calls of each kind, interleaved");
    println!("# transport floor bench: {calls} calls of each kind, interleaved");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(calls));
}
