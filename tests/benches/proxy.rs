//! virtproxyd benchmark: what the proxy adds to a call. The same calls
//! (the RPC floor `GetVersion` and `ListAllDomains` with 200 defined) go
//! to virtqemud's own socket ("direct"), through virtproxyd's Unix socket
//! ("proxy") and, unless `--no-tcp`, through virtproxyd's plain TCP
//! listener ("proxy_tcp"),
//! interleaved call by call (the order rotates every round), so that all
//! three see the same machine and each proxied call can be paired with
//! the direct call next to it.
//!
//! Run with `make bench-proxy` (both halves, one table) or
//! `cargo bench -p tests --bench proxy [-- --quick]`. Without `--bench`
//! (as under `cargo test --all-targets`) it does nothing. What each metric
//! measures: docs/benchmarks-proxy.md. libvirt's half:
//! tests/benches/libvirt_proxy.py.
//!
//! Output on stdout: one line per metric, tab-separated,
//! `metric median p90 n unit` (p90 `-` where it has no meaning), and
//! comment lines starting with `#`. Progress goes to stderr.
//!
//! The daemons are `virtqemud` and `virtproxyd` from `VIRT_TEST_BIN_DIR`,
//! else from the profile directory this bench was built into
//! (`target/release` under `cargo bench`); build them first with `cargo
//! build --release -p virtqemud -p virtproxyd --bins`. Root is not needed.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use tests::benchout::{cpu_ms, ms, note, report_one, stats_with_p99};
use tests::{Daemon, SocketKind, TestRoot};
use tonic::transport::{Channel, Endpoint};

type Client = DomainServiceClient<Channel>;

/// Domains defined (not running) for the list-all metric.
const DEFINED: usize = 200;

/// Rounds (each: one call on every path, per operation).
fn rounds(quick: bool) -> usize {
    if quick { 300 } else { 2000 }
}

// ---------------------------------------------------------------------------
// Output (metric lines: tests::benchout; this bench's `report` adds p99)
// ---------------------------------------------------------------------------

/// Prints one metric line (milliseconds); returns (median, p99).
fn report(metric: &str, samples: &[f64]) -> (f64, f64) {
    let (median, p90, p99) = stats_with_p99(samples);
    println!("{metric}\t{median:.4}\t{p90:.4}\t{}\tms", samples.len());
    eprintln!(
        "  {metric:<22} median {median:>9.4} ms  p90 {p90:>9.4}  p99 {p99:>9.4}  n {}",
        samples.len()
    );
    let _ = std::io::stdout().flush();
    (median, p99)
}

fn progress(text: &str) {
    eprintln!("proxy bench: {text}");
}

// ---------------------------------------------------------------------------
// The daemons
// ---------------------------------------------------------------------------

struct Env {
    qemud: Option<Daemon>,
    proxy: Option<Daemon>,
    /// The daemons' pids for the Ctrl-C handler (0: none).
    pids: Arc<[AtomicI32; 2]>,
    dir: PathBuf,
    // Last: the directory goes after the daemons are dead.
    root: TestRoot,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Env {
    async fn spawn(&self, name: &str, args: &[&str]) -> Daemon {
        let mut cmd = std::process::Command::new(self.dir.join(name));
        cmd.args(args)
            .env("VIRT_ROOT", self.root.path())
            .env(
                "RUST_LOG",
                std::env::var("VIRT_BENCH_LOG").unwrap_or("info".into()),
            )
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        let mut d = Daemon::spawn_command(name, self.root.path(), cmd);
        let slot = usize::from(name == "virtproxyd");
        self.pids[slot].store(
            i32::try_from(d.pid()).expect("pid fits i32"),
            Ordering::SeqCst,
        );
        d.wait_ready().await;
        d
    }

    async fn stop(&mut self) {
        for d in [self.proxy.take(), self.qemud.take()].into_iter().flatten() {
            let mut d = d;
            d.stop().await;
        }
    }
}

// ---------------------------------------------------------------------------
// The calls
// ---------------------------------------------------------------------------

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `GetVersion`: the round trip with no work behind it.
    Floor,
    /// `ListAllDomains`, unfiltered, 200 defined.
    List,
}

/// One call of `op` on `c`.
async fn call(c: &mut Client, op: Op) -> Result<(), tonic::Status> {
    match op {
        Op::Floor => {
            let v = c
                .get_version(pb::GetVersionRequest::default())
                .await?
                .into_inner();
            std::hint::black_box(v);
        }
        Op::List => {
            let n = c
                .list_all_domains(pb::ListAllDomainsRequest::default())
                .await?
                .into_inner()
                .domains
                .len();
            assert_eq!(n, DEFINED);
        }
    }
    Ok(())
}

/// Calls of a proxied path that failed (and were made again), and the
/// first error: a guard that should stay at zero (docs/benchmarks-proxy.md,
/// "Proxied calls that failed").
#[derive(Default)]
struct Failed {
    count: usize,
    first: Option<String>,
}

/// One call on path `p`; a failure on a proxied path (the proxy's daemon
/// connection closed under it) is counted and the call made again (timed
/// from the new attempt); on the direct path it ends the bench.
async fn call_on(c: &mut Client, op: Op, p: usize, failed: &mut Failed) -> Duration {
    for _ in 0..3 {
        let t0 = Instant::now();
        match call(c, op).await {
            Ok(()) => return t0.elapsed(),
            Err(e) if p > 0 && e.code() == tonic::Code::Unavailable => {
                failed.count += 1;
                failed
                    .first
                    .get_or_insert_with(|| format!("{op:?} on {}: {}", PATHS[p], e.message()));
            }
            Err(e) => panic!(
                "{op:?} on path {}: {:?}: {}",
                PATHS[p],
                e.code(),
                e.message()
            ),
        }
    }
    panic!("{op:?} on path {}: failed three times in a row", PATHS[p]);
}

/// The paths a call takes, in the order of the clients array.
const PATHS: [&str; 3] = ["direct", "proxy", "proxy_tcp"];

/// `rounds` rounds of `op` on every client, the order rotating each round;
/// returns the samples per path (ms) and the proxy's CPU per proxied call
/// (ms, over both proxied paths).
async fn measure(
    clients: &mut [Client],
    op: Op,
    rounds: usize,
    proxy_pid: u32,
) -> (Vec<Vec<f64>>, f64) {
    let mut failed = Failed::default();
    for _ in 0..50 {
        for (p, c) in clients.iter_mut().enumerate() {
            call_on(c, op, p, &mut failed).await;
        }
    }
    let n = clients.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); n];
    let cpu0 = cpu_ms(proxy_pid);
    for i in 0..rounds {
        for k in 0..n {
            let p = (i + k) % n;
            let d = call_on(&mut clients[p], op, p, &mut failed).await;
            samples[p].push(ms(d));
        }
    }
    #[allow(clippy::cast_precision_loss)] // small counts
    let cpu = (cpu_ms(proxy_pid) - cpu0) / ((n - 1) * rounds) as f64;
    #[allow(clippy::cast_precision_loss)] // small counts
    report_one(
        &format!(
            "failed_{}",
            match op {
                Op::Floor => "floor",
                Op::List => "list",
            }
        ),
        failed.count as f64,
        (n - 1) * (rounds + 50),
        "calls",
    );
    if let Some(first) = failed.first {
        note(&format!(
            "{} proxied {op:?} calls failed and were made again; the first: {first}",
            failed.count
        ));
    }
    (samples, cpu)
}

/// Reports `<key>_direct`, `<key>_proxy`, `<key>_proxy_tcp`, and for each
/// proxied path the paired difference to the direct call of the same round
/// (`<key>_added`, `<key>_tcp_added`, their p99 as `..._p99`) and the ratio
/// of medians (`<key>_ratio`, `<key>_tcp_ratio`).
fn report_op(key: &str, samples: &[Vec<f64>], cpu: f64) {
    let mut med = [0.0; 3];
    for (p, s) in samples.iter().enumerate() {
        med[p] = report(&format!("{key}_{}", PATHS[p]), s).0;
    }
    for (p, infix) in [(1, ""), (2, "_tcp")].into_iter().take(samples.len() - 1) {
        let diffs: Vec<f64> = samples[p]
            .iter()
            .zip(&samples[0])
            .map(|(v, d)| v - d)
            .collect();
        let (_, p99) = report(&format!("{key}{infix}_added"), &diffs);
        report_one(&format!("{key}{infix}_added_p99"), p99, diffs.len(), "ms");
        report_one(
            &format!("{key}{infix}_ratio"),
            med[p] / med[0],
            diffs.len(),
            "x",
        );
    }
    report_one(
        &format!("cpu_proxy_{key}"),
        cpu,
        (samples.len() - 1) * samples[1].len(),
        "ms",
    );
}

async fn run(env: &mut Env, rounds: usize, with_tcp: bool) {
    let port = free_port();
    env.root.write_config(
        "virtproxyd",
        &format!(
            "listen_tls = 0\nlisten_tcp = 1\nlisten_addr = \"127.0.0.1\"\ntcp_port = \"{port}\"\n"
        ),
    );
    let t0 = Instant::now();
    let qemud = env.spawn("virtqemud", &[]).await;
    let proxy = env.spawn("virtproxyd", &["--listen"]).await;
    note(&format!(
        "virtqemud and virtproxyd from {} on {} (both ready in {:.0} ms); \
         proxy TCP on 127.0.0.1:{port}",
        env.dir.display(),
        env.root.path().display(),
        ms(t0.elapsed())
    ));
    let proxy_pid = proxy.pid();
    let direct = Client::new(qemud.channel_once(SocketKind::ReadWrite).await);
    let via = Client::new(proxy.channel_once(SocketKind::ReadWrite).await);
    let mut clients = vec![direct, via];
    if with_tcp {
        clients.push(Client::new(
            Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect to the proxy's TCP port"),
        ));
    } else {
        note("proxy_tcp not measured (--no-tcp)");
    }
    env.qemud = Some(qemud);
    env.proxy = Some(proxy);

    progress(&format!("define {DEFINED} domains"));
    for i in 0..DEFINED {
        clients[0]
            .define_xml(pb::DefineXmlRequest {
                xml: domain_xml(&format!("def-{i:03}")),
                validate: true,
            })
            .await
            .expect("define");
    }

    progress(&format!("RPC floor (GetVersion), {rounds} rounds"));
    let (s, cpu) = measure(&mut clients, Op::Floor, rounds, proxy_pid).await;
    report_op("floor", &s, cpu);
    progress(&format!(
        "list-all with {DEFINED} defined (ListAllDomains), {rounds} rounds"
    ));
    let (s, cpu) = measure(&mut clients, Op::List, rounds, proxy_pid).await;
    report_op("list", &s, cpu);

    progress("cleaning up");
    drop(clients);
    env.stop().await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "proxy bench: not run (it needs release daemons): `make bench-proxy` or \
             `cargo bench -p tests --bench proxy`"
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let with_tcp = !args.iter().any(|a| a == "--no-tcp");
    let dir = std::env::var_os("VIRT_TEST_BIN_DIR").map_or_else(tests::bin_dir, PathBuf::from);
    for name in ["virtqemud", "virtproxyd"] {
        if !dir.join(name).is_file() {
            eprintln!(
                "proxy bench: no {}; build it with `cargo build --release -p virtqemud -p \
                 virtproxyd --bins`",
                dir.join(name).display()
            );
            std::process::exit(2);
        }
    }
    // One thread: a multi-thread runtime adds cross-thread wake-ups to
    // every call, which is the client's cost, not the daemons'.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut env = Env {
        qemud: None,
        proxy: None,
        pids: Arc::new([AtomicI32::new(0), AtomicI32::new(0)]),
        dir,
        root: TestRoot::new(),
    };
    // Ctrl-C: kill the daemons, remove the root, exit.
    {
        let pids = env.pids.clone();
        let root = env.root.path().to_path_buf();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                for p in pids.iter() {
                    let p = p.load(Ordering::SeqCst);
                    if p > 0 {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                let _ = std::fs::remove_dir_all(&root);
                eprintln!("proxy bench: interrupted; cleaned up");
                std::process::exit(130);
            }
        });
    }
    let r = rounds(quick);
    note(&format!(
        "virtproxyd bench: {} rounds ({r}), {DEFINED} domains defined",
        if quick { "quick" } else { "full" }
    ));
    rt.block_on(run(&mut env, r, with_tcp));
    drop(env);
    drop(rt);
}
