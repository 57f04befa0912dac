//! virtnetworkd network benchmark: the RPC floor, start and destroy of a
//! NAT network with DHCP (bridge, addresses, nftables rules, dnsmasq), the
//! time until a destroyed network's bridge and dnsmasq are really gone,
//! the daemon's CPU per start and destroy, and its idle RSS, against the
//! release build of virtnetworkd on a temporary `VIRT_ROOT`.
//!
//! Run with `make bench-network` (both halves, one table) or
//! `cargo bench -p tests --bench network [-- --quick]`, as root. Without
//! `--bench` (as under `cargo test --all-targets`) it does nothing. What
//! each metric measures: docs/benchmarks-network.md. libvirt's half:
//! tests/benches/libvirt_network.py.
//!
//! Output on stdout: one line per metric, tab-separated,
//! `metric median p90 n unit` (p90 `-` where it has no meaning), and
//! comment lines starting with `#`. Progress goes to stderr.
//!
//! The daemon binary is `virtnetworkd` from `VIRT_TEST_BIN_DIR`, else from
//! the profile directory this bench was built into (`target/release` under
//! `cargo bench`); build it first with `cargo build --release -p
//! virtnetworkd --bins`. The bridge name, the subnet (a free
//! 10.200-249.x.0/24) and the nftables table (`VIRT_NETWORK_NFT_TABLE`)
//! are unique to the run; the bridge (also under the name a destroy gives
//! it while it is deleted), every dnsmasq started from the temporary root
//! and the table are removed at the end, also after a panic or Ctrl-C.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::network::v1 as pb;
use proto::network::v1::network_service_client::NetworkServiceClient;
use tests::benchout::{cpu_ms, ms, note, report, report_one, stats};
use tests::{Daemon, SocketKind, TestRoot};
use tonic::transport::Channel;

type Client = NetworkServiceClient<Channel>;

/// The network every metric works on.
const NET: &str = "bench";
/// How fast waits poll.
const POLL: Duration = Duration::from_millis(1);
/// Bound of every wait.
const WAIT: Duration = Duration::from_secs(20);
/// Pause before each start and before each destroy: the previous step's
/// tail (a bridge being deleted in the background holds the RTNL lock now
/// and then; dnsmasq settling) stays out of the next measurement. The same
/// in libvirt_network.py.
const PAUSE: Duration = Duration::from_millis(150);
/// Untimed start/destroy rounds first (the nftables table and chains are
/// created on the first start).
const WARMUP: usize = 2;

/// Round counts (`--quick` divides them).
#[derive(Debug, Clone, Copy)]
struct Rounds {
    /// Start/destroy rounds.
    rounds: usize,
    /// RPC-floor calls.
    floor: usize,
}

impl Rounds {
    fn full() -> Rounds {
        Rounds {
            rounds: 30,
            floor: 1000,
        }
    }

    fn quick() -> Rounds {
        Rounds {
            rounds: 8,
            floor: 200,
        }
    }
}

// ---------------------------------------------------------------------------
// Output (metric lines: tests::benchout)
// ---------------------------------------------------------------------------

fn progress(text: &str) {
    eprintln!("network bench: {text}");
}

#[allow(clippy::cast_precision_loss)] // small counts
fn per(total: f64, n: usize) -> f64 {
    total / n as f64
}

// ---------------------------------------------------------------------------
// /proc and /sys
// ---------------------------------------------------------------------------

/// `(own, children)` CPU of `pid` in ms from `/proc/PID/stat`: utime +
/// stime (every thread, exited ones included: a destroy's threads are
/// gone when it returns) and cutime + cstime (children it waited for:
/// `nft`, dnsmasq's first process). Clock-tick resolution (10 ms): the
/// per-call figures are sums over the loop divided by the calls.
fn cpu_ticks(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let w: Vec<u64> = rest
        .split_whitespace()
        .skip(11) // state .. majflt: utime is field 14
        .take(4)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    if w.len() < 4 {
        return (0.0, 0.0);
    }
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    #[allow(clippy::cast_precision_loss)] // small tick counts
    let to_ms = |t: u64| t as f64 * 1e3 / tck.max(1) as f64;
    (to_ms(w[0] + w[1]), to_ms(w[2] + w[3]))
}

/// `VmRSS`, `RssAnon` and `RssFile` of `pid` in MiB.
fn rss(pid: u32) -> (f64, f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// Whether `pid` exists and is not a zombie (a dnsmasq that exited waits
/// for PID 1, which reaps only every ~2 s here).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

fn link_index(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// The name of the link with index `index`, if there is one.
fn link_by_index(index: u32) -> Option<String> {
    std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| link_index(n) == Some(index))
}

/// The IPv4 networks of the host's routing table, as (address, mask).
fn routes() -> Vec<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(w.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(w.get(7)?, 16).ok()?;
            // /proc/net/route prints the network-order bytes as a native u32.
            Some((
                u32::from_be_bytes(dest.to_ne_bytes()),
                u32::from_be_bytes(mask.to_ne_bytes()),
            ))
        })
        .collect()
}

/// A free 10.200-249.x.0/24 (no route overlaps it), from `seed`; its host
/// address `.1`.
fn pick_subnet(seed: u32) -> Ipv4Addr {
    let taken = routes();
    let mut h = seed;
    for _ in 0..1000 {
        h = h.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let a = 200 + u8::try_from((h >> 8) % 50).unwrap_or(0);
        let b = u8::try_from((h >> 16) % 256).unwrap_or(0);
        let net = u32::from(Ipv4Addr::new(10, a, b, 0));
        let free = taken.iter().all(|&(dest, mask)| {
            mask == 0 || {
                let m = mask & 0xffff_ff00;
                (net & m) != (dest & m)
            }
        });
        if free {
            return Ipv4Addr::new(10, a, b, 1);
        }
    }
    panic!("no free 10.200-249.x.0/24 subnet");
}

// ---------------------------------------------------------------------------
// What the bench leaves on the host
// ---------------------------------------------------------------------------

/// Bridge, dnsmasq processes and nftables table of the run. [`clean`]
/// removes them; it runs on drop (also while unwinding from a panic) and
/// from the Ctrl-C handler.
#[derive(Debug, Clone)]
struct Host {
    root: PathBuf,
    bridge: String,
    table: String,
    /// Every index the bridge had: a destroyed bridge is renamed
    /// (`virtdel…`) before its deletion.
    indexes: Arc<Mutex<Vec<u32>>>,
}

impl Host {
    fn clean(&self) {
        // dnsmasq: its --conf-file is under the root.
        let needle = self.root.display().to_string();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd);
                if cmd.contains("dnsmasq") && cmd.contains(&needle) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    eprintln!("network bench: killed dnsmasq {pid} left behind");
                }
            }
        }
        let mut links: Vec<String> = self
            .indexes
            .lock()
            .map(|v| v.iter().filter_map(|&i| link_by_index(i)).collect())
            .unwrap_or_default();
        if link_index(&self.bridge).is_some() {
            links.push(self.bridge.clone());
        }
        links.dedup();
        for l in links {
            let _ = Command::new("ip").args(["link", "del", &l]).output();
            eprintln!("network bench: deleted link {l} left behind");
        }
        for fam in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", fam, &self.table])
                .output();
        }
    }
}

// ---------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------

/// The bench's world. Dropping it (also while unwinding) kills the daemon,
/// removes what it left on the host, then the root.
struct Env {
    daemon: Option<Daemon>,
    /// The daemon's pid for the Ctrl-C handler (0: none).
    daemon_pid: Arc<AtomicI32>,
    bin: PathBuf,
    host: Host,
    net: Ipv4Addr,
    // Last: the directory goes after the daemon is dead.
    root: TestRoot,
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.daemon.take());
        self.host.clean();
    }
}

impl Env {
    fn new(bin: PathBuf) -> Env {
        let root = TestRoot::new();
        // dnsmasq re-reads its hosts files as 'nobody': the tree must be
        // searchable, as /var/lib is.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod root");
        let base = root
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("virt-t000000")
            .to_owned();
        let tag: String = base
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect::<String>()
            .to_ascii_lowercase();
        let seed = tag.bytes().fold(std::process::id(), |h, c| {
            h.wrapping_mul(31).wrapping_add(u32::from(c))
        });
        Env {
            daemon: None,
            daemon_pid: Arc::new(AtomicI32::new(0)),
            bin,
            host: Host {
                root: root.path().to_path_buf(),
                bridge: format!("vnb{tag}0"),
                table: format!("vnb_{tag}"),
                indexes: Arc::new(Mutex::new(Vec::new())),
            },
            net: pick_subnet(seed),
            root,
        }
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").pid()
    }

    /// dnsmasq's pid for network `name`, from its pid file.
    fn dnsmasq_pid(&self, name: &str) -> Option<i32> {
        let p = self
            .root
            .paths()
            .driver_run_dir("network")
            .join(format!("{name}.pid"));
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// Spawns virtnetworkd and waits until it answers health SERVING on its
    /// read-write socket; returns a client over one connection.
    async fn start(&mut self) -> Client {
        let mut cmd = Command::new(&self.bin);
        // libvirt's half gives libvirtd this PATH too: nft, dnsmasq and
        // tc are found at the first or second try, not after the long
        // PATH of a cargo and pyenv shell.
        cmd.env("VIRT_ROOT", self.root.path())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("VIRT_NETWORK_NFT_TABLE", &self.host.table)
            .env(
                "RUST_LOG",
                std::env::var("VIRT_BENCH_LOG").unwrap_or("info,virtnetworkd::host=debug".into()),
            )
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        let mut d = Daemon::spawn_command("virtnetworkd", self.root.path(), cmd);
        self.daemon_pid.store(
            i32::try_from(d.pid()).expect("pid fits i32"),
            Ordering::SeqCst,
        );
        d.wait_ready().await;
        let ch = d.channel_once(SocketKind::ReadWrite).await;
        self.daemon = Some(d);
        NetworkServiceClient::new(ch)
    }

    async fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop().await;
        }
        self.daemon_pid.store(0, Ordering::SeqCst);
    }

    fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::output).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// Network calls
// ---------------------------------------------------------------------------

fn by_name(n: &str) -> Option<pb::NetworkRef> {
    Some(pb::NetworkRef {
        by: Some(pb::network_ref::By::Name(n.to_owned())),
    })
}

/// The NAT network of tests/tests/network.rs (`nat_xml`): DNS host, TXT
/// and SRV records, MTU, a DHCP range and a static host. libvirt's half
/// defines the same.
fn net_xml(name: &str, bridge: &str, ip: Ipv4Addr) -> String {
    let o = ip.octets();
    let p = |last: u8| Ipv4Addr::new(o[0], o[1], o[2], last);
    format!(
        "<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}'/>
  <domain name='test.lan'/>
  <dns>
    <host ip='{}'><hostname>web</hostname></host>
    <txt name='t' value='v'/>
    <srv service='http' protocol='tcp' target='web.test.lan' port='80'/>
  </dns>
  <mtu size='1400'/>
  <ip address='{ip}' prefix='24'>
    <dhcp>
      <range start='{}' end='{}'/>
      <host mac='52:54:00:77:00:01' name='guest1' ip='{}'/>
    </dhcp>
  </ip>
</network>
",
        p(50),
        p(100),
        p(150),
        p(10)
    )
}

async fn start_net(c: &mut Client) {
    c.start_network(pb::StartNetworkRequest {
        network: by_name(NET),
    })
    .await
    .unwrap_or_else(|e| panic!("start {NET}: {}", e.message()));
}

async fn destroy_net(c: &mut Client) {
    c.destroy_network(pb::DestroyNetworkRequest {
        network: by_name(NET),
    })
    .await
    .unwrap_or_else(|e| panic!("destroy {NET}: {}", e.message()));
}

async fn active(c: &mut Client) -> bool {
    c.lookup_network(pb::LookupNetworkRequest {
        network: by_name(NET),
    })
    .await
    .unwrap_or_else(|e| panic!("lookup {NET}: {}", e.message()))
    .into_inner()
    .network
    .is_some_and(|n| n.active)
}

async fn autostart(c: &mut Client) -> bool {
    c.get_network_autostart(pb::GetNetworkAutostartRequest {
        network: by_name(NET),
    })
    .await
    .unwrap_or_else(|e| panic!("autostart {NET}: {}", e.message()))
    .into_inner()
    .autostart
}

// ---------------------------------------------------------------------------
// The metrics
// ---------------------------------------------------------------------------

async fn bench_floor(env: &Env, c: &mut Client, r: Rounds) {
    progress(&format!("RPC floor: {} GetNetworkAutostart calls", r.floor));
    for _ in 0..50 {
        autostart(c).await;
    }
    let mut v = Vec::with_capacity(r.floor);
    let cpu = cpu_ms(env.pid());
    for _ in 0..r.floor {
        let t0 = Instant::now();
        assert!(!autostart(c).await);
        v.push(ms(t0.elapsed()));
    }
    let used = cpu_ms(env.pid()) - cpu;
    report("rpc_floor", &v, "ms");
    report_one("cpu_rpc_floor", per(used, r.floor), r.floor, "ms");
}

/// Polls until the link `index` (whatever its name now) and dnsmasq `dns`
/// are gone; returns the time since `t0`.
async fn wait_settled(index: u32, dns: i32, t0: Instant) -> Duration {
    let deadline = Instant::now() + WAIT;
    while link_by_index(index).is_some() || alive(dns) {
        assert!(
            Instant::now() < deadline,
            "bridge (index {index}) or dnsmasq {dns} still there after destroy"
        );
        tokio::time::sleep(POLL).await;
    }
    t0.elapsed()
}

async fn bench_start_destroy(env: &Env, c: &mut Client, r: Rounds) {
    progress(&format!(
        "start/destroy: {WARMUP} warm-up + {} rounds",
        r.rounds
    ));
    let pid = env.pid();
    let bridge = env.host.bridge.clone();
    let (mut up, mut down, mut settled) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_up, mut cpu_down) = ((0.0, 0.0), (0.0, 0.0));
    for round in 0..WARMUP + r.rounds {
        tokio::time::sleep(PAUSE).await;
        let c0 = cpu_ticks(pid);
        let t0 = Instant::now();
        start_net(c).await;
        let t_up = t0.elapsed();
        let c1 = cpu_ticks(pid);
        let index = link_index(&bridge).expect("bridge after start");
        if let Ok(mut v) = env.host.indexes.lock() {
            v.push(index);
        }
        let dns = env.dnsmasq_pid(NET).expect("dnsmasq pid file after start");
        assert!(alive(dns), "dnsmasq {dns} not running after start");
        assert!(active(c).await, "not active after start");
        tokio::time::sleep(PAUSE).await;
        let c2 = cpu_ticks(pid);
        let t0 = Instant::now();
        destroy_net(c).await;
        let t_down = t0.elapsed();
        let c3 = cpu_ticks(pid);
        let t_settled = wait_settled(index, dns, t0).await;
        assert!(link_index(&bridge).is_none(), "bridge still there");
        assert!(!active(c).await, "still active after destroy");
        if round >= WARMUP {
            up.push(ms(t_up));
            down.push(ms(t_down));
            settled.push(ms(t_settled));
            cpu_up.0 += c1.0 - c0.0;
            cpu_up.1 += c1.1 - c0.1;
            cpu_down.0 += c3.0 - c2.0;
            cpu_down.1 += c3.1 - c2.1;
        }
    }
    let n = r.rounds;
    report("start", &up, "ms");
    report_one("cpu_start", per(cpu_up.0, n), n, "ms");
    report_one("cpu_children_start", per(cpu_up.1, n), n, "ms");
    report("destroy", &down, "ms");
    report_one("cpu_destroy", per(cpu_down.0, n), n, "ms");
    report_one("cpu_children_destroy", per(cpu_down.1, n), n, "ms");
    report("destroy_settled", &settled, "ms");
    breakdown(&env.log(), n);
}

/// The daemon's own timing of its host side (`virtnetworkd::host` debug
/// lines "host side started" / "host side stopped"): medians over the
/// last `n` of each, as a `#` note.
fn breakdown(log: &str, n: usize) {
    let field = |line: &str, key: &str| -> Option<f64> {
        let i = line.find(&format!("{key}="))? + key.len() + 1;
        let v: String = line[i..].chars().take_while(char::is_ascii_digit).collect();
        v.parse::<f64>().ok().map(|us| us / 1e3)
    };
    let medians = |what: &str, keys: &[&str]| -> Option<String> {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(what)).collect();
        let lines = &lines[lines.len().saturating_sub(n)..];
        if lines.is_empty() {
            return None;
        }
        let parts: Vec<String> = keys
            .iter()
            .filter_map(|k| {
                let v: Vec<f64> = lines.iter().filter_map(|l| field(l, k)).collect();
                (!v.is_empty()).then(|| format!("{} {:.2}", k.trim_end_matches("_us"), stats(&v).0))
            })
            .collect();
        Some(parts.join(", "))
    };
    if let Some(s) = medians(
        "host side started",
        &["bridge_us", "spawn_us", "rules_us", "dnsmasq_us"],
    ) {
        note(&format!(
            "daemon's host side of a start, ms since its first step (medians): {s} \
             (bridge set up; dnsmasq spawned; rules in; dnsmasq up = host side done)"
        ));
    }
    if let Some(s) = medians(
        "host side stopped",
        &["bridge_us", "dnsmasq_us", "rules_us"],
    ) {
        note(&format!(
            "daemon's host side of a destroy, ms since its start (medians): {s} \
             (bridge down and renamed; dnsmasq gone; rules deleted; the three run at once)"
        ));
    }
}

/// Idle RSS, 1 s after the last call, with the network defined (inactive).
async fn bench_rss(env: &Env) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut v = Vec::new();
    for _ in 0..5 {
        v.push(rss(env.pid()).0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report("rss_idle", &v, "MiB");
    let (_, anon, file) = rss(env.pid());
    note(&format!(
        "rss_idle: RssAnon {anon:.2} MiB + RssFile {file:.2} MiB (the binary and libraries)"
    ));
}

async fn run(env: &mut Env, r: Rounds) {
    let t0 = Instant::now();
    let mut c = env.start().await;
    note(&format!(
        "virtnetworkd {} on {}, serving {:.0} ms after the spawn",
        env.bin.display(),
        env.root.path().display(),
        ms(t0.elapsed())
    ));
    note(&format!(
        "network '{NET}': NAT, DHCP, bridge {}, {}/24; nftables table {}",
        env.host.bridge, env.net, env.host.table
    ));
    c.define_network(pb::DefineNetworkRequest {
        xml: net_xml(NET, &env.host.bridge, env.net),
        validate: true,
    })
    .await
    .unwrap_or_else(|e| panic!("define: {}", e.message()));
    bench_floor(env, &mut c, r).await;
    bench_start_destroy(env, &mut c, r).await;
    bench_rss(env).await;
    c.undefine_network(pb::UndefineNetworkRequest {
        network: by_name(NET),
    })
    .await
    .unwrap_or_else(|e| panic!("undefine: {}", e.message()));
    drop(c);
    env.stop().await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "network bench: not run (it needs root and a release virtnetworkd): \
             `make bench-network` or `cargo bench -p tests --bench network`"
        );
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("network bench: run as root (bridges, dnsmasq, nftables)");
        std::process::exit(2);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if quick {
        Rounds::quick()
    } else {
        Rounds::full()
    };
    let dir = std::env::var_os("VIRT_TEST_BIN_DIR").map_or_else(tests::bin_dir, PathBuf::from);
    let bin = dir.join("virtnetworkd");
    if !bin.is_file() {
        eprintln!(
            "network bench: no {}; build it with `cargo build --release -p virtnetworkd --bins`",
            bin.display()
        );
        std::process::exit(2);
    }
    // One thread, as the other benches (and libvirt's single-threaded
    // Python half).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut env = Env::new(bin);
    // Ctrl-C: kill the daemon, clean the host, remove the root, exit.
    {
        let pid = env.daemon_pid.clone();
        let host = env.host.clone();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let p = pid.load(Ordering::SeqCst);
                if p > 0 {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                host.clean();
                let _ = std::fs::remove_dir_all(&host.root);
                eprintln!("network bench: interrupted; cleaned up");
                std::process::exit(130);
            }
        });
    }
    note(&format!(
        "virtnetworkd network bench: {} rounds",
        if quick { "quick" } else { "full" }
    ));
    rt.block_on(run(&mut env, rounds));
    drop(env);
    drop(rt);
}
