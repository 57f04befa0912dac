//! The load runner: a full stack (virtstoraged, virtnetworkd, virtqemud,
//! virtproxyd) on a temporary `VIRT_ROOT`, and many concurrent clients
//! running a mixed workload through the proxy's Unix socket.
//!
//! Used by the `load` command (`tests/src/bin/load.rs`, `make load`: 64
//! clients for 10 minutes, release builds) and by the short run inside
//! `make test` (`tests/tests/load.rs`).
//!
//! # What the host holds
//!
//! Made through the proxy before the clients start ([`Fixture`]):
//! `domains` defined (inactive) domains, `guests` running tiny guests
//! (`tests::guest`, QEMU under TCG), an active dir pool with `volumes`
//! static volumes and a second pool defined but not started, an isolated
//! network with DHCP running on its own bridge (dnsmasq) and a second
//! network defined but not started.
//!
//! # The workload
//!
//! Each client has its own connection and goes round [`MIX`] (twenty
//! operations, one RPC each), starting at a different place. Reads:
//! list-all of domains, pools, volumes and networks, lookups by name, a
//! lookup of a name that does not exist (the one error the workload expects:
//! NOT_FOUND / NO_DOMAIN), domain XML, info and state, volume info, network
//! XML. Writes, each on objects of that client alone, alternating: define /
//! undefine of its scratch domain, create / delete of its scratch volume
//! (qcow2), add / delete of its DHCP host on the running network (live and
//! config), pool refresh; the client that owns a guest suspends and resumes
//! it (the others read its state). Event watches: each client watches its
//! scratch domain's events for the whole run and opens that watch again
//! every twenty operations (the open is the measured RPC); before the old
//! watch goes, every Defined and Undefined event of the client's own
//! defines and undefines must have arrived on it, once. The runner also
//! holds a storage and a network event watch for the whole run.
//!
//! Every reply is checked (counts within what the clients can have made,
//! every static object present, states as they must be). An unexpected
//! error is a failure; a call without an answer within
//! [`Options::call_bound`] is reported as a deadlock and stops the run.
//!
//! # Memory
//!
//! Each daemon's VmRSS (with RssAnon, threads and VmHWM, from
//! `/proc/PID/status`) is sampled after the first
//! [`Options::first_sample`] calls (1,000), after [`Options::leak_sample`]
//! (100,000), every [`Options::sample_every`] calls and at the end. Before
//! each sample the calls pause: calls already running finish, none starts,
//! then [`Options::settle`] passes (12 s: longer than the 10 s for which
//! tokio keeps an idle blocking-pool thread; the daemons' durable writes
//! start such threads in bursts, and their stacks are not a leak).
//!
//! Two checks ([`Report::baseline_check`], [`Report::steady_check`]): the
//! promise as worded, VmRSS after 100,000 calls within 10 % of VmRSS after
//! 1,000; and the steady state, VmRSS at the end within 10 % of VmRSS
//! after 100,000. Between the first two, per-connection HTTP/2 state fills
//! (measured with heaptrack, nothing else grows): each connection's HPACK
//! tables (4 KiB of entries each way, a new `date` value every second and
//! every error message go in), its read buffer grown to the largest frame,
//! and in virtproxyd hyper's request queue to each daemon (a second
//! 32-slot block after 32 calls). With 64 clients the first 1,000 calls
//! are about 15 per connection, so that growth shows there; it stops once
//! every connection has carried a minute of calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::domain::v1 as dom;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as net;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1 as sto;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::guest::{GuestKind, build_image};
use crate::{Daemon, SocketKind, TestRoot, channel_to};

// ---------------------------------------------------------------------------
// Clients and references
// ---------------------------------------------------------------------------

/// Where a client reaches the proxy.
#[derive(Clone, Debug)]
pub enum ProxyAddr {
    /// The proxy's read-write Unix socket.
    Unix(PathBuf),
}

/// Makes one client connection to the proxy: the single seam for other
/// transports (TLS). The channel dials again by itself after a lost
/// connection, as virtsh's do (`virtsh::connection::open_channel`).
pub async fn dial(addr: &ProxyAddr) -> Channel {
    match addr {
        ProxyAddr::Unix(path) => channel_to(path).await,
    }
}

/// One client: the three services over one connection.
#[derive(Clone, Debug)]
pub struct Client {
    /// DomainService.
    pub dom: DomainServiceClient<Channel>,
    /// StorageService.
    pub sto: StorageServiceClient<Channel>,
    /// NetworkService.
    pub net: NetworkServiceClient<Channel>,
}

impl Client {
    /// A new connection to the proxy at `addr`.
    pub async fn new(addr: &ProxyAddr) -> Client {
        let ch = dial(addr).await;
        Client {
            dom: DomainServiceClient::new(ch.clone()),
            sto: StorageServiceClient::new(ch.clone()),
            net: NetworkServiceClient::new(ch),
        }
    }
}

/// A minimal inactive domain.
pub fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
}

/// The tiny guest `image` (`tests::guest`) as a domain, its COM1 into
/// `serial`.
pub fn guest_xml(name: &str, image: &Path, serial: &Path) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>\
         <features><acpi/></features><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='sda' bus='sata'/></disk>\
         <serial type='file'><source path='{}'/><target port='0'/></serial>\
         <memballoon model='none'/></devices></domain>",
        image.display(),
        serial.display()
    )
}

/// Object references by name, as the soak builds them.
pub use crate::soak::stack::{dom_ref as by_name, net_ref, pool_ref, vol_ref};

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

/// The daemons whose VmRSS in `b` exceeds (1 + `tol`) times their VmRSS
/// in `a`.
fn over(a: &Sample, b: &Sample, tol: f64) -> Vec<String> {
    let mut bad = Vec::new();
    for ((name, m0), (_, m1)) in a.mem.iter().zip(&b.mem) {
        #[allow(clippy::cast_precision_loss)] // KiB counts far below 2^52
        let (r0, r1) = (m0.rss as f64, m1.rss as f64);
        if r1 > r0 * (1.0 + tol) {
            bad.push(format!(
                "{name}: VmRSS {:.2} MiB after {} calls > {:.0} % of {:.2} MiB after {}",
                mib(m1.rss),
                b.calls,
                (1.0 + tol) * 100.0,
                mib(m0.rss),
                a.calls
            ));
        }
    }
    bad
}

/// Nearest-rank percentile `q` (0..=1) of sorted `s`.
///
/// # Panics
/// `s` is empty.
pub fn pct(s: &[Duration], q: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

pub use crate::benchout::ms;

/// One stdout line: `label n=.. p50=.. p90=.. p99=.. max=.. ms`.
///
/// # Panics
/// `samples` is empty.
pub fn print_percentiles(label: &str, samples: &mut [Duration]) {
    println!("{}", percentile_line(label, samples));
}

fn percentile_line(label: &str, samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    format!(
        "{label:<34} n={:<8} p50={:>8.3} p90={:>8.3} p99={:>8.3} max={:>9.3} ms",
        samples.len(),
        ms(pct(samples, 0.50)),
        ms(pct(samples, 0.90)),
        ms(pct(samples, 0.99)),
        ms(*samples.last().expect("samples")),
    )
}

/// CPU time (user + system) of process `pid` so far, in ms: utime and
/// stime of `/proc/PID/stat`, which keep the time of threads that have
/// exited (the daemons' blocking-pool threads come and go), in clock ticks
/// of 10 ms (USER_HZ is 100 on Linux).
pub fn cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is
    // the first, utime the 12th, stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    #[allow(clippy::cast_precision_loss)] // far below 2^52 ticks
    let ms = (tick(11) + tick(12)) as f64 * 10.0;
    ms
}

/// A process's memory, from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mem {
    /// VmRSS: resident set.
    pub rss: u64,
    /// RssAnon: its anonymous part (heap, stacks).
    pub anon: u64,
    /// VmHWM: the resident set's peak.
    pub hwm: u64,
    /// Threads.
    pub threads: u64,
}

/// The memory of process `pid`, if it is alive.
pub fn mem(pid: u32) -> Option<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Mem {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:").unwrap_or(0),
        hwm: field("VmHWM:").unwrap_or(0),
        threads: field("Threads:").unwrap_or(0),
    })
}

#[allow(clippy::cast_precision_loss)] // KiB counts far below 2^52
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------
// Options and report
// ---------------------------------------------------------------------------

/// When the clients stop.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// After this many calls in all.
    Calls(usize),
    /// When this much time has passed since the clients started.
    Time(Duration),
}

/// What a run does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Concurrent clients, each its own connection to the proxy.
    pub clients: usize,
    /// When to stop.
    pub until: Until,
    /// Running tiny guests (each owned, for suspend/resume, by one client).
    pub guests: usize,
    /// Defined, inactive domains.
    pub domains: usize,
    /// Static volumes in the active pool.
    pub volumes: usize,
    /// A call without an answer for this long is a deadlock.
    pub call_bound: Duration,
    /// How long the calls pause before a memory sample: longer than
    /// tokio's 10 s keep-alive of idle blocking-pool threads, which the
    /// daemons' durable writes (`block_in_place`) start in bursts and whose
    /// stacks would otherwise count.
    pub settle: Duration,
    /// The baseline sample: after this many calls.
    pub first_sample: usize,
    /// The sample compared with the baseline: after this many calls.
    pub leak_sample: usize,
    /// More samples: every this many calls.
    pub sample_every: usize,
    /// Allowed growth of VmRSS from the baseline to the `leak_sample`
    /// sample, and from there to every later one (0.10 = 10 %).
    pub leak_tolerance: f64,
    /// Print a line at each sample while running.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clients: 64,
            until: Until::Time(Duration::from_secs(600)),
            guests: 2,
            domains: 16,
            volumes: 8,
            call_bound: Duration::from_secs(30),
            settle: Duration::from_secs(12),
            first_sample: 1_000,
            leak_sample: 100_000,
            sample_every: 250_000,
            leak_tolerance: 0.10,
            progress: true,
        }
    }
}

/// One memory sample of every daemon.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Calls completed when it was taken.
    pub calls: usize,
    /// Time since the clients started.
    pub at: Duration,
    /// Per daemon (in stack order).
    pub mem: Vec<(String, Mem)>,
}

/// What a run did and saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Clients.
    pub clients: usize,
    /// Calls made (answered or not).
    pub calls: usize,
    /// From the clients' start to the last answer (samples' pauses included).
    pub wall: Duration,
    /// The time spent in the pauses before samples.
    pub paused: Duration,
    /// Latency per call kind.
    pub by_kind: BTreeMap<&'static str, Vec<Duration>>,
    /// Errors the workload expects (lookups of missing names), answered so.
    pub expected_errors: usize,
    /// Unexpected errors and wrong answers (the first 200).
    pub failures: Vec<String>,
    /// How many failures there were in all.
    pub failure_count: usize,
    /// Calls without an answer within the bound.
    pub deadlocks: Vec<String>,
    /// Memory samples, in order; the last one is taken at the end.
    pub samples: Vec<Sample>,
    /// Daemon CPU per call (ms), over the whole run.
    pub cpu_per_call: Vec<(String, f64)>,
    /// Events seen on the clients' domain watches, the storage watch and
    /// the network watch.
    pub events: (usize, usize, usize),
    /// Domain watches opened.
    pub watches: usize,
    /// The baseline and leak samples' call counts, and the tolerance.
    pub leak_rule: (usize, usize, f64),
    /// Whether the run was cut short (failures or a deadlock).
    pub stopped_early: bool,
    /// Daemons that did not exit 0 on SIGTERM at the end.
    pub shutdown: Vec<String>,
}

impl Report {
    /// Whether nothing failed and nothing hung.
    pub fn clean(&self) -> bool {
        self.failure_count == 0
            && self.deadlocks.is_empty()
            && !self.stopped_early
            && self.shutdown.is_empty()
    }

    /// The sample taken after exactly `calls` calls, if any.
    pub fn sample_after(&self, calls: usize) -> Option<&Sample> {
        self.samples[..self.samples.len().saturating_sub(1)]
            .iter()
            .find(|s| s.calls == calls)
    }

    /// The baseline check, as the promise words it: every daemon's VmRSS
    /// after `leak_sample` calls within the tolerance of its VmRSS after
    /// `first_sample`. `None` when the run did not reach the later sample;
    /// else the daemons over (empty: passed).
    pub fn baseline_check(&self) -> Option<Vec<String>> {
        let (first, later, tol) = self.leak_rule;
        let a = self.sample_after(first)?;
        let b = self.sample_after(later)?;
        Some(over(a, b, tol))
    }

    /// The steady-state check: every daemon's VmRSS at the end within the
    /// tolerance of its VmRSS after `leak_sample` calls, when the
    /// connections' buffers and tables have filled. `None` when the run
    /// ended at or before that sample; else the daemons over (empty:
    /// passed). Samples in between are in the table: a leak grows to the
    /// end, while a heap's resident size after a trim may swing between
    /// samples with where its live blocks happen to sit.
    pub fn steady_check(&self) -> Option<Vec<String>> {
        let (_, from, tol) = self.leak_rule;
        let a = self.sample_after(from)?;
        let end = self.samples.last().filter(|s| s.calls > from)?;
        Some(over(a, end, tol))
    }

    /// The report as text: totals, percentiles per kind and overall, the
    /// memory table, CPU per call, failures.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let active = self.wall.saturating_sub(self.paused);
        #[allow(clippy::cast_precision_loss)]
        let rate = self.calls as f64 / active.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "load: {} clients, {} calls in {:.1} s ({:.1} s of it paused for samples): {:.0} calls/s; \
             {} expected errors (lookup misses), {} failures, {} deadlocks",
            self.clients,
            self.calls,
            self.wall.as_secs_f64(),
            self.paused.as_secs_f64(),
            rate,
            self.expected_errors,
            self.failure_count,
            self.deadlocks.len()
        );
        let mut all: Vec<Duration> = self.by_kind.values().flatten().copied().collect();
        if !all.is_empty() {
            let _ = writeln!(out, "{}", percentile_line("all calls", &mut all));
        }
        for (kind, v) in &self.by_kind {
            let mut v = v.clone();
            if !v.is_empty() {
                let _ = writeln!(out, "{}", percentile_line(kind, &mut v));
            }
        }
        let _ = writeln!(
            out,
            "events: {} on the clients' {} domain watches, {} storage, {} network",
            self.events.0, self.watches, self.events.1, self.events.2
        );
        let cpu: Vec<String> = self
            .cpu_per_call
            .iter()
            .map(|(n, c)| format!("{n} {c:.3}"))
            .collect();
        let _ = writeln!(out, "daemon CPU per call, ms: {}", cpu.join(", "));
        out.push_str(&self.memory_table());
        let (first, from, tol) = self.leak_rule;
        let verdict = |out: &mut String, what: String, r: Option<Vec<String>>| match r {
            None => {
                let _ = writeln!(out, "{what}: not made (the run ended before its samples)");
            }
            Some(bad) if bad.is_empty() => {
                let _ = writeln!(out, "{what}: passed");
            }
            Some(bad) => {
                let _ = writeln!(out, "{what}: FAILED");
                for b in bad {
                    let _ = writeln!(out, "  {b}");
                }
            }
        };
        verdict(
            &mut out,
            format!(
                "baseline check (VmRSS after {from} calls within {:.0} % of VmRSS after {first})",
                tol * 100.0
            ),
            self.baseline_check(),
        );
        verdict(
            &mut out,
            format!(
                "steady-state check (VmRSS at the end within {:.0} % of VmRSS after {from})",
                tol * 100.0
            ),
            self.steady_check(),
        );
        for s in &self.shutdown {
            let _ = writeln!(out, "shutdown: {s}");
        }
        if !self.deadlocks.is_empty() {
            let _ = writeln!(out, "deadlocks:");
            for d in &self.deadlocks {
                let _ = writeln!(out, "  {d}");
            }
        }
        if self.failure_count > 0 {
            let _ = writeln!(
                out,
                "failures ({} in all, first {} shown):",
                self.failure_count,
                self.failures.len().min(20)
            );
            for f in self.failures.iter().take(20) {
                let _ = writeln!(out, "  {f}");
            }
        }
        out
    }

    /// The memory samples as a table: one row per sample, VmRSS (RssAnon)
    /// per daemon in MiB and its threads; VmHWM at the end.
    pub fn memory_table(&self) -> String {
        let mut out = String::new();
        let Some(first) = self.samples.first() else {
            return out;
        };
        let _ = write!(out, "{:>10} {:>8}", "calls", "time s");
        for (name, _) in &first.mem {
            let _ = write!(out, " {:>28}", format!("{name} RSS (anon) MiB, thr"));
        }
        out.push('\n');
        let n = self.samples.len();
        for (i, s) in self.samples.iter().enumerate() {
            let label = if i + 1 == n {
                format!("end {}", s.calls)
            } else {
                s.calls.to_string()
            };
            let _ = write!(out, "{label:>10} {:>8.1}", s.at.as_secs_f64());
            for (_, m) in &s.mem {
                let _ = write!(
                    out,
                    " {:>28}",
                    format!("{:.2} ({:.2}) {:>2}", mib(m.rss), mib(m.anon), m.threads)
                );
            }
            out.push('\n');
        }
        if let Some(last) = self.samples.last() {
            let _ = write!(out, "{:>10} {:>8}", "VmHWM", "");
            for (_, m) in &last.mem {
                let _ = write!(out, " {:>28}", format!("{:.2}", mib(m.hwm)));
            }
            out.push('\n');
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The host
// ---------------------------------------------------------------------------

/// Removes what the run's network and guests may leave on the host (its
/// dnsmasq, bridges, nftables table, QEMU processes), also when the run
/// panics.
#[derive(Debug)]
struct HostGuard {
    root: PathBuf,
    bridges: Vec<String>,
    table: String,
    pid_dir: PathBuf,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        crate::kill_qemus_under(&self.root);
        if let Ok(rd) = std::fs::read_dir(&self.pid_dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) != Some("pid") {
                    continue;
                }
                if let Some(pid) = std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if String::from_utf8_lossy(&cmd).contains("dnsmasq") {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        for b in &self.bridges {
            crate::netns::ip_quiet(&["link", "del", b]);
        }
        for fam in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", fam, &self.table])
                .output();
        }
    }
}

/// The four daemons on one root.
#[derive(Debug)]
struct Host {
    // Field order: the daemons are killed, then the host is cleaned, then
    // the root goes.
    daemons: Vec<Daemon>,
    _guard: HostGuard,
    root: TestRoot,
    /// Six characters unique to this root (bridge and table names).
    tag: String,
    /// The running network's subnet: 10.a.b.0/24.
    subnet: (u8, u8),
}

impl Host {
    async fn start() -> Host {
        let root = TestRoot::new();
        // dnsmasq re-reads its hosts files as 'nobody': the tree must be
        // searchable, as /var/lib is.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod root");
        let base = root
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("virt-t000000");
        let tag: String = base
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect::<String>()
            .to_ascii_lowercase();
        let h = tag
            .bytes()
            .fold(7u32, |h, c| h.wrapping_mul(33).wrapping_add(u32::from(c)));
        let subnet = (
            100 + u8::try_from(h % 100).unwrap_or(0),
            200 + u8::try_from((h / 100) % 50).unwrap_or(0),
        );
        let table = format!("vl_{tag}");
        let guard = HostGuard {
            root: root.path().to_path_buf(),
            bridges: (0..2).map(|i| format!("vl{tag}{i}")).collect(),
            table: table.clone(),
            pid_dir: root.paths().driver_run_dir("network"),
        };
        let mut daemons = Vec::new();
        for name in crate::DAEMONS {
            let mut b = Daemon::builder(name, &root);
            if name == "virtnetworkd" {
                b = b.env("VIRT_NETWORK_NFT_TABLE", &table);
            }
            daemons.push(b.start().await);
        }
        Host {
            daemons,
            _guard: guard,
            root,
            tag,
            subnet,
        }
    }

    fn addr(&self) -> ProxyAddr {
        ProxyAddr::Unix(
            self.daemons
                .iter()
                .find(|d| d.name() == "virtproxyd")
                .expect("virtproxyd")
                .socket(SocketKind::ReadWrite),
        )
    }

    fn pids(&self) -> Vec<(String, u32)> {
        self.daemons
            .iter()
            .map(|d| (d.name().to_owned(), d.pid()))
            .collect()
    }

    fn bridge(&self, n: u8) -> String {
        format!("vl{}{n}", self.tag)
    }

    fn ip(&self, last: u8) -> String {
        format!("10.{}.{}.{last}", self.subnet.0, self.subnet.1)
    }

    fn sample(&self, calls: usize, at: Duration) -> Sample {
        Sample {
            calls,
            at,
            mem: self
                .daemons
                .iter()
                .map(|d| (d.name().to_owned(), mem(d.pid()).unwrap_or_default()))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------

/// The objects made before the clients start; every reply is checked
/// against them.
#[derive(Debug)]
pub struct Fixture {
    /// Defined, inactive domains.
    pub domains: Vec<String>,
    /// Running guests.
    pub guests: Vec<String>,
    /// The active pool and its static volumes.
    pub pool: String,
    /// Its static volumes.
    pub volumes: Vec<String>,
    /// Every pool's name.
    pub pools: BTreeSet<String>,
    /// The running network.
    pub network: String,
    /// Every network's name.
    pub networks: BTreeSet<String>,
    /// The clients.
    pub clients: usize,
    /// The running network's first three octets.
    pub net_prefix: String,
}

const POOL: &str = "lpool";
const NETWORK: &str = "lnet";

async fn make_fixture(host: &Host, c: &mut Client, opts: &Options) -> Fixture {
    let root = host.root.path();
    let domains: Vec<String> = (0..opts.domains).map(|i| format!("load-{i:02}")).collect();
    for d in &domains {
        c.dom
            .define_xml(dom::DefineXmlRequest {
                xml: domain_xml(d),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("define {d}: {e:?}"));
    }
    let guests: Vec<String> = (0..opts.guests).map(|i| format!("guest-{i}")).collect();
    for g in &guests {
        let image = root.join(format!("{g}.img"));
        build_image(&image, GuestKind::IgnoresPowerButton).expect("guest image");
        c.dom
            .define_xml(dom::DefineXmlRequest {
                xml: guest_xml(g, &image, &root.join(format!("{g}.serial"))),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("define {g}: {e:?}"));
        c.dom
            .start(dom::StartRequest {
                domain: by_name(g),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("start {g}: {e:?}"));
    }

    let pool_xml = |name: &str| {
        format!(
            "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
            root.join(name).display()
        )
    };
    c.sto
        .define_pool(sto::DefinePoolRequest {
            xml: pool_xml(POOL),
            validate: false,
        })
        .await
        .unwrap_or_else(|e| panic!("define pool: {e:?}"));
    c.sto
        .start_pool(sto::StartPoolRequest {
            pool: pool_ref(POOL),
            build: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("start pool: {e:?}"));
    c.sto
        .define_pool(sto::DefinePoolRequest {
            xml: pool_xml("lpool-idle"),
            validate: false,
        })
        .await
        .unwrap_or_else(|e| panic!("define idle pool: {e:?}"));
    let volumes: Vec<String> = (0..opts.volumes)
        .map(|i| format!("static-{i}.img"))
        .collect();
    for v in &volumes {
        c.sto
            .create_volume(sto::CreateVolumeRequest {
                pool: pool_ref(POOL),
                xml: format!(
                    "<volume><name>{v}</name><capacity>1048576</capacity>\
                     <target><format type='raw'/></target></volume>"
                ),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create volume {v}: {e:?}"));
    }

    let ip = |last: u8| host.ip(last);
    c.net
        .define_network(net::DefineNetworkRequest {
            xml: format!(
                "<network><name>{NETWORK}</name><bridge name='{}'/>\
                 <ip address='{}' prefix='24'><dhcp><range start='{}' end='{}'/></dhcp></ip>\
                 </network>",
                host.bridge(0),
                ip(1),
                ip(2),
                ip(60)
            ),
            validate: false,
        })
        .await
        .unwrap_or_else(|e| panic!("define network: {e:?}"));
    c.net
        .start_network(net::StartNetworkRequest {
            network: net_ref(NETWORK),
        })
        .await
        .unwrap_or_else(|e| panic!("start network: {e:?}"));
    c.net
        .define_network(net::DefineNetworkRequest {
            xml: format!(
                "<network><name>lnet-idle</name><bridge name='{}'/></network>",
                host.bridge(1)
            ),
            validate: false,
        })
        .await
        .unwrap_or_else(|e| panic!("define idle network: {e:?}"));

    Fixture {
        domains,
        guests,
        pool: POOL.into(),
        volumes,
        pools: [POOL.to_owned(), "lpool-idle".to_owned()].into(),
        network: NETWORK.into(),
        networks: [NETWORK.to_owned(), "lnet-idle".to_owned()].into(),
        clients: opts.clients,
        net_prefix: format!("10.{}.{}", host.subnet.0, host.subnet.1),
    }
}

// ---------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------

/// One operation of the mix: exactly one RPC each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// ListAllDomains.
    ListDomains,
    /// LookupDomain of a defined domain or guest.
    Lookup,
    /// LookupDomain of a name that does not exist: NOT_FOUND expected.
    LookupMiss,
    /// GetXml of a defined domain or guest.
    GetXml,
    /// GetInfo of a defined domain or guest.
    GetInfo,
    /// DefineXml or Undefine of the client's scratch domain (alternating).
    ScratchDomain,
    /// ListAllPools.
    ListPools,
    /// ListAllVolumes of the active pool.
    ListVolumes,
    /// GetVolumeInfo of a static volume.
    VolumeInfo,
    /// CreateVolume or DeleteVolume of the client's scratch volume.
    ScratchVolume,
    /// RefreshPool of the active pool.
    RefreshPool,
    /// ListAllNetworks.
    ListNetworks,
    /// GetNetworkXml of the running network.
    NetworkXml,
    /// UpdateNetwork: add or delete the client's DHCP host (live+config).
    DhcpHost,
    /// Suspend or Resume of the client's guest; GetState of a guest for
    /// clients that own none.
    GuestPower,
    /// WatchEvents on the client's scratch domain, opened again.
    Rewatch,
}

/// The mix every client goes round (from a different place each).
pub const MIX: [Op; 20] = [
    Op::ListDomains,
    Op::Lookup,
    Op::GetXml,
    Op::GetInfo,
    Op::ScratchDomain,
    Op::ListPools,
    Op::ListVolumes,
    Op::VolumeInfo,
    Op::ScratchVolume,
    Op::LookupMiss,
    Op::ListNetworks,
    Op::NetworkXml,
    Op::DhcpHost,
    Op::GetInfo,
    Op::RefreshPool,
    Op::Lookup,
    Op::GetXml,
    Op::GuestPower,
    Op::Rewatch,
    Op::ListDomains,
];

/// Counts of a client's scratch-domain events seen on its watch.
#[derive(Debug, Default)]
struct WatchTally {
    defined: AtomicUsize,
    undefined: AtomicUsize,
    notify: tokio::sync::Notify,
}

/// What the run's tasks share.
#[derive(Debug)]
struct Shared {
    opts: Options,
    fixture: Fixture,
    /// When the clients started.
    started: std::sync::OnceLock<Instant>,
    /// Time spent in the pauses before samples, in ms: not part of a
    /// timed run's duration.
    paused_ms: std::sync::atomic::AtomicU64,
    /// Tickets handed out: a client runs call `t` only once `t` is below
    /// the gate.
    issued: AtomicUsize,
    completed: AtomicUsize,
    completed_notify: tokio::sync::Notify,
    gate: tokio::sync::watch::Sender<usize>,
    live_clients: AtomicUsize,
    stop: AtomicBool,
    expected_errors: AtomicUsize,
    failure_count: AtomicUsize,
    failures: Mutex<Vec<String>>,
    deadlocks: Mutex<Vec<String>>,
    events: AtomicUsize,
    watches: AtomicUsize,
}

/// Failures after which the run stops.
const MAX_FAILURES: usize = 100;

impl Shared {
    fn fail(&self, what: String) {
        let n = self.failure_count.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut f = self.failures.lock().expect("failures");
            if f.len() < 200 {
                f.push(what);
            }
        }
        if n >= MAX_FAILURES {
            self.stop.store(true, Ordering::Relaxed);
            self.completed_notify.notify_waiters();
        }
    }

    fn deadlock(&self, what: String) {
        self.deadlocks.lock().expect("deadlocks").push(what);
        self.stop.store(true, Ordering::Relaxed);
        self.completed_notify.notify_waiters();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn time_up(&self) -> bool {
        match self.opts.until {
            Until::Calls(_) => false,
            Until::Time(d) => self.started.get().is_some_and(|t0| {
                let paused = Duration::from_millis(self.paused_ms.load(Ordering::Relaxed));
                t0.elapsed().saturating_sub(paused) >= d
            }),
        }
    }

    /// The next ticket, or `None` when the client should stop.
    fn ticket(&self) -> Option<usize> {
        if self.stopped() || self.time_up() {
            return None;
        }
        let t = self.issued.fetch_add(1, Ordering::Relaxed);
        match self.opts.until {
            Until::Calls(n) if t >= n => None,
            _ => Some(t),
        }
    }
}

/// One client's state between its calls.
#[derive(Debug)]
struct Worker {
    k: usize,
    c: Client,
    shared: Arc<Shared>,
    /// Calls made by this client.
    i: usize,
    scratch: String,
    scratch_defined: bool,
    /// Defines and undefines of `scratch` answered OK since its watch
    /// was opened.
    defines: usize,
    undefines: usize,
    scratch_vol: String,
    vol_created: bool,
    /// Its DHCP host (mac, ip), if it may have one.
    dhcp: Option<(String, String)>,
    host_added: bool,
    /// The guest it suspends and resumes.
    guest: Option<String>,
    paused: bool,
    tally: Arc<WatchTally>,
    watch: Option<JoinHandle<()>>,
    samples: Vec<(&'static str, Duration)>,
}

type CallResult = Result<(), String>;

fn st(kind: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |e: tonic::Status| format!("{kind}: {:?} {}", e.code(), e.message())
}

const RUNNING: i32 = dom::DomainState::Running as i32;
const PAUSED: i32 = dom::DomainState::Paused as i32;
const SHUTOFF: i32 = dom::DomainState::Shutoff as i32;

impl Worker {
    fn new(k: usize, c: Client, shared: Arc<Shared>) -> Worker {
        let fx = &shared.fixture;
        // Static DHCP hosts at .100 up to .249 (the range ends at .60).
        let dhcp = (k < 150).then(|| {
            (
                format!("52:54:00:6c:{:02x}:{:02x}", k / 256, k % 256),
                format!("{}.{}", fx.net_prefix, 100 + k),
            )
        });
        let guest = fx.guests.get(k).cloned();
        Worker {
            k,
            c,
            i: 0,
            scratch: format!("scratch-{k:03}"),
            scratch_defined: false,
            defines: 0,
            undefines: 0,
            scratch_vol: format!("scratch-{k:03}.qcow2"),
            vol_created: false,
            dhcp,
            host_added: false,
            guest,
            paused: false,
            tally: Arc::default(),
            watch: None,
            samples: Vec::new(),
            shared,
        }
    }

    /// A static domain or guest, by the call number.
    fn some_domain(&self) -> (&str, bool) {
        let fx = &self.shared.fixture;
        let n = (self.i * 7 + self.k) % (fx.domains.len() + fx.guests.len());
        if n < fx.domains.len() {
            (&fx.domains[n], false)
        } else {
            (&fx.guests[n - fx.domains.len()], true)
        }
    }

    /// Drops the client's watch; the next one counts from zero.
    fn close_watch(&mut self) {
        if let Some(w) = self.watch.take() {
            w.abort();
        }
        self.tally = Arc::default();
        self.defines = 0;
        self.undefines = 0;
    }

    /// Opens the client's scratch-domain watch and starts reading it.
    async fn open_watch(&mut self) -> CallResult {
        let stream = self
            .c
            .dom
            .watch_events(dom::WatchEventsRequest {
                domain: by_name(&self.scratch),
                ..Default::default()
            })
            .await
            .map_err(st("WatchEvents"))?
            .into_inner();
        self.shared.watches.fetch_add(1, Ordering::Relaxed);
        let tally = self.tally.clone();
        let shared = self.shared.clone();
        let (k, scratch) = (self.k, self.scratch.clone());
        self.watch = Some(tokio::spawn(read_watch(stream, tally, shared, k, scratch)));
        Ok(())
    }

    /// Waits until the watch has delivered every event of this client's
    /// defines and undefines, and no more.
    async fn events_arrived(&self) -> CallResult {
        let want = (self.defines, self.undefines);
        let got = || {
            (
                self.tally.defined.load(Ordering::Relaxed),
                self.tally.undefined.load(Ordering::Relaxed),
            )
        };
        let deadline = Instant::now() + self.shared.opts.call_bound;
        loop {
            let notified = self.tally.notify.notified();
            let g = got();
            if g.0 >= want.0 && g.1 >= want.1 {
                return if g == want {
                    Ok(())
                } else {
                    Err(format!(
                        "watch of {}: events (defined, undefined) {g:?}, made {want:?}",
                        self.scratch
                    ))
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "watch of {}: events (defined, undefined) {g:?} within {:?}, made {want:?}",
                    self.scratch, self.shared.opts.call_bound
                ));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// One operation: one RPC, timed; returns the kind and the result.
    async fn call(&mut self, op: Op) -> (&'static str, CallResult) {
        let shared = self.shared.clone();
        let fx = &shared.fixture;
        let base_domains = fx.domains.len() + fx.guests.len();
        match op {
            Op::ListDomains => {
                let r = async {
                    let got = self
                        .c
                        .dom
                        .list_all_domains(dom::ListAllDomainsRequest::default())
                        .await
                        .map_err(st("ListAllDomains"))?
                        .into_inner()
                        .domains;
                    let names: BTreeSet<&str> = got
                        .iter()
                        .filter_map(|d| d.domain.as_ref().map(|d| d.name.as_str()))
                        .collect();
                    let missing: Vec<&String> = fx
                        .domains
                        .iter()
                        .chain(&fx.guests)
                        .filter(|n| !names.contains(n.as_str()))
                        .collect();
                    if !missing.is_empty() || got.len() > base_domains + fx.clients {
                        return Err(format!(
                            "ListAllDomains: {} domains, missing {missing:?}",
                            got.len()
                        ));
                    }
                    Ok(())
                }
                .await;
                ("ListAllDomains", r)
            }
            Op::Lookup => {
                let (name, _) = self.some_domain();
                let name = name.to_owned();
                let r = async {
                    let got = self
                        .c
                        .dom
                        .lookup_domain(dom::LookupDomainRequest {
                            domain: by_name(&name),
                        })
                        .await
                        .map_err(st("LookupDomain"))?
                        .into_inner()
                        .domain
                        .map(|d| d.name);
                    if got.as_deref() != Some(name.as_str()) {
                        return Err(format!("LookupDomain {name}: {got:?}"));
                    }
                    Ok(())
                }
                .await;
                ("LookupDomain", r)
            }
            Op::LookupMiss => {
                let name = format!("missing-{}-{}", self.k, self.i);
                let r = match self
                    .c
                    .dom
                    .lookup_domain(dom::LookupDomainRequest {
                        domain: by_name(&name),
                    })
                    .await
                {
                    Ok(d) => Err(format!("LookupDomain {name}: found {:?}", d.into_inner())),
                    Err(e)
                        if e.code() == tonic::Code::NotFound
                            && common::error::status_detail(&e)
                                .is_some_and(|d| d.code_name == "NO_DOMAIN") =>
                    {
                        self.shared.expected_errors.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => Err(st("LookupDomain (miss)")(e)),
                };
                ("LookupDomain (miss)", r)
            }
            Op::GetXml => {
                let (name, _) = self.some_domain();
                let name = name.to_owned();
                let r = async {
                    let xml = self
                        .c
                        .dom
                        .get_xml(dom::GetXmlRequest {
                            domain: by_name(&name),
                            ..Default::default()
                        })
                        .await
                        .map_err(st("GetXml"))?
                        .into_inner()
                        .xml;
                    if !xml.contains(&format!("<name>{name}</name>")) {
                        return Err(format!("GetXml {name}: {xml}"));
                    }
                    Ok(())
                }
                .await;
                ("GetXml", r)
            }
            Op::GetInfo => {
                let (name, guest) = self.some_domain();
                let name = name.to_owned();
                let r = async {
                    let info = self
                        .c
                        .dom
                        .get_info(dom::GetInfoRequest {
                            domain: by_name(&name),
                        })
                        .await
                        .map_err(st("GetInfo"))?
                        .into_inner();
                    let ok = if guest {
                        info.state == RUNNING || info.state == PAUSED
                    } else {
                        info.state == SHUTOFF
                    };
                    if !ok || info.max_mem_kib != 32 * 1024 {
                        return Err(format!("GetInfo {name}: {info:?}"));
                    }
                    Ok(())
                }
                .await;
                ("GetInfo", r)
            }
            Op::ScratchDomain if !self.scratch_defined => {
                let r = self
                    .c
                    .dom
                    .define_xml(dom::DefineXmlRequest {
                        xml: domain_xml(&self.scratch),
                        ..Default::default()
                    })
                    .await
                    .map_err(st("DefineXml"));
                if r.is_ok() {
                    self.scratch_defined = true;
                    self.defines += 1;
                }
                ("DefineXml", r.map(|_| ()))
            }
            Op::ScratchDomain => {
                let r = self
                    .c
                    .dom
                    .undefine(dom::UndefineRequest {
                        domain: by_name(&self.scratch),
                        ..Default::default()
                    })
                    .await
                    .map_err(st("Undefine"));
                if r.is_ok() {
                    self.scratch_defined = false;
                    self.undefines += 1;
                }
                ("Undefine", r.map(|_| ()))
            }
            Op::ListPools => {
                let r = async {
                    let got: BTreeSet<String> = self
                        .c
                        .sto
                        .list_all_pools(sto::ListAllPoolsRequest::default())
                        .await
                        .map_err(st("ListAllPools"))?
                        .into_inner()
                        .pools
                        .into_iter()
                        .map(|p| p.name)
                        .collect();
                    if got != fx.pools {
                        return Err(format!("ListAllPools: {got:?}"));
                    }
                    Ok(())
                }
                .await;
                ("ListAllPools", r)
            }
            Op::ListVolumes => {
                let r = async {
                    let got = self
                        .c
                        .sto
                        .list_all_volumes(sto::ListAllVolumesRequest {
                            pool: pool_ref(&fx.pool),
                        })
                        .await
                        .map_err(st("ListAllVolumes"))?
                        .into_inner()
                        .volumes;
                    let names: BTreeSet<&str> = got.iter().map(|v| v.name.as_str()).collect();
                    let missing: Vec<&String> = fx
                        .volumes
                        .iter()
                        .filter(|v| !names.contains(v.as_str()))
                        .collect();
                    if !missing.is_empty() || got.len() > fx.volumes.len() + fx.clients {
                        return Err(format!(
                            "ListAllVolumes: {} volumes, missing {missing:?}",
                            got.len()
                        ));
                    }
                    Ok(())
                }
                .await;
                ("ListAllVolumes", r)
            }
            Op::VolumeInfo => {
                let v = fx.volumes[(self.i + self.k) % fx.volumes.len()].clone();
                let r = async {
                    let info = self
                        .c
                        .sto
                        .get_volume_info(sto::GetVolumeInfoRequest {
                            volume: vol_ref(&fx.pool, &v),
                        })
                        .await
                        .map_err(st("GetVolumeInfo"))?
                        .into_inner();
                    if info.capacity != 1_048_576 {
                        return Err(format!("GetVolumeInfo {v}: {info:?}"));
                    }
                    Ok(())
                }
                .await;
                ("GetVolumeInfo", r)
            }
            Op::ScratchVolume if !self.vol_created => {
                let r = self
                    .c
                    .sto
                    .create_volume(sto::CreateVolumeRequest {
                        pool: pool_ref(&fx.pool),
                        xml: format!(
                            "<volume><name>{}</name><capacity>1048576</capacity>\
                             <target><format type='qcow2'/></target></volume>",
                            self.scratch_vol
                        ),
                        ..Default::default()
                    })
                    .await
                    .map_err(st("CreateVolume"));
                if r.is_ok() {
                    self.vol_created = true;
                }
                ("CreateVolume", r.map(|_| ()))
            }
            Op::ScratchVolume => {
                let r = self
                    .c
                    .sto
                    .delete_volume(sto::DeleteVolumeRequest {
                        volume: vol_ref(&fx.pool, &self.scratch_vol),
                        ..Default::default()
                    })
                    .await
                    .map_err(st("DeleteVolume"));
                if r.is_ok() {
                    self.vol_created = false;
                }
                ("DeleteVolume", r.map(|_| ()))
            }
            Op::RefreshPool => {
                let r = self
                    .c
                    .sto
                    .refresh_pool(sto::RefreshPoolRequest {
                        pool: pool_ref(&fx.pool),
                    })
                    .await
                    .map(|_| ())
                    .map_err(st("RefreshPool"));
                ("RefreshPool", r)
            }
            Op::ListNetworks => {
                let r = async {
                    let got = self
                        .c
                        .net
                        .list_all_networks(net::ListAllNetworksRequest::default())
                        .await
                        .map_err(st("ListAllNetworks"))?
                        .into_inner()
                        .networks;
                    let names: BTreeSet<String> = got.iter().map(|n| n.name.clone()).collect();
                    let active = got.iter().any(|n| n.name == fx.network && n.active);
                    if names != fx.networks || !active {
                        return Err(format!("ListAllNetworks: {got:?}"));
                    }
                    Ok(())
                }
                .await;
                ("ListAllNetworks", r)
            }
            Op::NetworkXml => {
                let r = async {
                    let xml = self
                        .c
                        .net
                        .get_network_xml(net::GetNetworkXmlRequest {
                            network: net_ref(&fx.network),
                            inactive: false,
                        })
                        .await
                        .map_err(st("GetNetworkXml"))?
                        .into_inner()
                        .xml;
                    if !xml.contains(&format!("<name>{}</name>", fx.network)) {
                        return Err(format!("GetNetworkXml: {xml}"));
                    }
                    Ok(())
                }
                .await;
                ("GetNetworkXml", r)
            }
            Op::DhcpHost => {
                let Some((mac, ip)) = self.dhcp.clone() else {
                    return self.read_guest_state().await;
                };
                let add = !self.host_added;
                let r = self
                    .c
                    .net
                    .update_network(net::UpdateNetworkRequest {
                        network: net_ref(&fx.network),
                        command: if add {
                            net::NetworkUpdateCommand::AddLast
                        } else {
                            net::NetworkUpdateCommand::Delete
                        } as i32,
                        section: net::NetworkSection::IpDhcpHost as i32,
                        parent_index: -1,
                        xml: format!("<host mac='{mac}' name='lc{}' ip='{ip}'/>", self.k),
                        live: true,
                        config: true,
                    })
                    .await
                    .map(|_| ())
                    .map_err(st("UpdateNetwork"));
                if r.is_ok() {
                    self.host_added = add;
                }
                if add {
                    ("UpdateNetwork (add DHCP host)", r)
                } else {
                    ("UpdateNetwork (delete DHCP host)", r)
                }
            }
            Op::GuestPower => {
                let Some(g) = self.guest.clone() else {
                    return self.read_guest_state().await;
                };
                if self.paused {
                    let r = self
                        .c
                        .dom
                        .resume(dom::ResumeRequest {
                            domain: by_name(&g),
                        })
                        .await
                        .map(|_| ())
                        .map_err(st("Resume"));
                    if r.is_ok() {
                        self.paused = false;
                    }
                    ("Resume", r)
                } else {
                    let r = self
                        .c
                        .dom
                        .suspend(dom::SuspendRequest {
                            domain: by_name(&g),
                        })
                        .await
                        .map(|_| ())
                        .map_err(st("Suspend"));
                    if r.is_ok() {
                        self.paused = true;
                    }
                    ("Suspend", r)
                }
            }
            Op::Rewatch => {
                // The old watch was checked and dropped before the call.
                ("WatchEvents (open)", self.open_watch().await)
            }
        }
    }

    /// GetState of a guest (for clients that own no guest / DHCP host), or
    /// of a defined domain when there are no guests.
    async fn read_guest_state(&mut self) -> (&'static str, CallResult) {
        let shared = self.shared.clone();
        let fx = &shared.fixture;
        let (name, guest) = if fx.guests.is_empty() {
            (fx.domains[self.i % fx.domains.len()].clone(), false)
        } else {
            (fx.guests[(self.i + self.k) % fx.guests.len()].clone(), true)
        };
        let r = async {
            let s = self
                .c
                .dom
                .get_state(dom::GetStateRequest {
                    domain: by_name(&name),
                })
                .await
                .map_err(st("GetState"))?
                .into_inner();
            let ok = if guest {
                s.state == RUNNING || s.state == PAUSED
            } else {
                s.state == SHUTOFF
            };
            if !ok {
                return Err(format!("GetState {name}: {s:?}"));
            }
            Ok(())
        }
        .await;
        ("GetState", r)
    }

    /// The client's loop: tickets, the gate, one timed call each.
    async fn run(mut self) -> Self {
        let shared = self.shared.clone();
        let mut gate = shared.gate.subscribe();
        while let Some(t) = shared.ticket() {
            if gate
                .wait_for(|open| t < *open || shared.stopped())
                .await
                .is_err()
                || shared.stopped()
            {
                break;
            }
            let op = MIX[(self.i + self.k) % MIX.len()];
            if op == Op::Rewatch {
                // Not part of the call: the old watch must have had every
                // event of this client's defines and undefines, once.
                if let Err(e) = self.events_arrived().await {
                    shared.fail(format!("client {}: {e}", self.k));
                }
                self.close_watch();
            }
            let t0 = Instant::now();
            let r = tokio::time::timeout(shared.opts.call_bound, self.call(op)).await;
            let took = t0.elapsed();
            match r {
                Ok((kind, Ok(()))) => self.samples.push((kind, took)),
                Ok((kind, Err(e))) => {
                    self.samples.push((kind, took));
                    shared.fail(format!("client {} call {}: {e}", self.k, self.i));
                }
                Err(_) => shared.deadlock(format!(
                    "client {} call {} ({op:?}): no answer within {:?}",
                    self.k, self.i, shared.opts.call_bound
                )),
            }
            self.i += 1;
            shared.completed.fetch_add(1, Ordering::Relaxed);
            shared.completed_notify.notify_waiters();
            if shared.stopped() {
                break;
            }
        }
        shared.live_clients.fetch_sub(1, Ordering::Relaxed);
        shared.completed_notify.notify_waiters();
        self
    }
}

/// Reads a client's scratch-domain watch: counts its Defined and
/// Undefined events; anything else, an error or an early end is a failure.
async fn read_watch(
    mut stream: tonic::Streaming<dom::DomainEvent>,
    tally: Arc<WatchTally>,
    shared: Arc<Shared>,
    k: usize,
    scratch: String,
) {
    use dom::domain_event::Event;
    loop {
        match stream.message().await {
            Ok(Some(ev)) => {
                let name = ev.domain.as_ref().map(|d| d.name.as_str());
                let lifecycle = match &ev.event {
                    Some(Event::Lifecycle(l)) if name == Some(scratch.as_str()) => {
                        dom::LifecycleEvent::try_from(l.event).ok()
                    }
                    _ => None,
                };
                match lifecycle {
                    Some(dom::LifecycleEvent::Defined) => {
                        tally.defined.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(dom::LifecycleEvent::Undefined) => {
                        tally.undefined.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        shared.fail(format!("client {k}: unexpected event on its watch: {ev:?}"));
                    }
                }
                shared.events.fetch_add(1, Ordering::Relaxed);
                tally.notify.notify_waiters();
            }
            Ok(None) => {
                if !shared.stopped() {
                    shared.fail(format!("client {k}: its domain watch ended"));
                }
                return;
            }
            Err(e) => {
                if !shared.stopped() {
                    shared.fail(format!(
                        "client {k}: its domain watch failed: {:?} {}",
                        e.code(),
                        e.message()
                    ));
                }
                return;
            }
        }
    }
}

/// Drains a watch stream for the whole run, counting its messages.
fn drain<T: Send + 'static>(
    mut stream: tonic::Streaming<T>,
    what: &'static str,
    shared: Arc<Shared>,
    count: Arc<AtomicUsize>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => {
                    if !shared.stopped() {
                        shared.fail(format!("the {what} watch ended"));
                    }
                    return;
                }
                Err(e) => {
                    if !shared.stopped() {
                        shared.fail(format!(
                            "the {what} watch failed: {:?} {}",
                            e.code(),
                            e.message()
                        ));
                    }
                    return;
                }
            }
        }
    })
}

/// The call counts at which memory is sampled (before the end): the
/// baseline, the leak sample, and every multiple of `sample_every`.
fn checkpoints(opts: &Options) -> impl Iterator<Item = usize> + '_ {
    let limit = match opts.until {
        Until::Calls(n) => n,
        Until::Time(_) => usize::MAX,
    };
    let every = opts.sample_every.max(1);
    let fixed = [opts.first_sample, opts.leak_sample];
    let mut last = 0;
    let mut multiples = (1..)
        .map(move |i: usize| i.saturating_mul(every))
        .peekable();
    std::iter::from_fn(move || {
        let next_multiple = loop {
            match multiples.peek() {
                Some(m) if *m <= last => {
                    multiples.next();
                }
                Some(m) => break *m,
                None => break usize::MAX,
            }
        };
        let next_fixed = fixed.iter().copied().filter(|c| *c > last).min();
        let next = next_fixed.map_or(next_multiple, |f| f.min(next_multiple));
        if next >= limit {
            return None;
        }
        last = next;
        Some(next)
    })
}

/// Runs the whole thing: starts the stack, makes the fixture, runs the
/// clients, samples memory, tears down. Panics only when the stack or the
/// fixture cannot be set up; everything the load shows is in the report.
pub async fn run(opts: &Options) -> Report {
    let host = Host::start().await;
    let addr = host.addr();
    let mut setup = Client::new(&addr).await;
    let fixture = make_fixture(&host, &mut setup, opts).await;
    let pids = host.pids();

    // Every client connects and opens its watch first; the gate holds
    // every call from the first checkpoint on.
    let (gate, _) = tokio::sync::watch::channel(checkpoints(opts).next().unwrap_or(usize::MAX));
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        fixture,
        started: std::sync::OnceLock::new(),
        paused_ms: std::sync::atomic::AtomicU64::new(0),
        issued: AtomicUsize::new(0),
        completed: AtomicUsize::new(0),
        completed_notify: tokio::sync::Notify::new(),
        gate,
        live_clients: AtomicUsize::new(opts.clients),
        stop: AtomicBool::new(false),
        expected_errors: AtomicUsize::new(0),
        failure_count: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
        deadlocks: Mutex::new(Vec::new()),
        events: AtomicUsize::new(0),
        watches: AtomicUsize::new(0),
    });
    let mut workers = Vec::with_capacity(opts.clients);
    for k in 0..opts.clients {
        let mut w = Worker::new(k, Client::new(&addr).await, shared.clone());
        if let Err(e) = w.open_watch().await {
            panic!("client {k}: {e}");
        }
        workers.push(w);
    }
    let sto_events = Arc::new(AtomicUsize::new(0));
    let net_events = Arc::new(AtomicUsize::new(0));
    let watcher = Client::new(&addr).await;
    let sto_watch = drain(
        watcher
            .sto
            .clone()
            .watch_events(sto::WatchEventsRequest::default())
            .await
            .expect("storage watch")
            .into_inner(),
        "storage",
        shared.clone(),
        sto_events.clone(),
    );
    let net_watch = drain(
        watcher
            .net
            .clone()
            .watch_events(net::WatchEventsRequest::default())
            .await
            .expect("network watch")
            .into_inner(),
        "network",
        shared.clone(),
        net_events.clone(),
    );

    let cpu0: Vec<f64> = pids.iter().map(|(_, p)| cpu_ms(*p)).collect();
    // The clock starts now (setup excluded).
    let started = Instant::now();
    let _ = shared.started.set(started);
    let tasks: Vec<JoinHandle<Worker>> =
        workers.into_iter().map(|w| tokio::spawn(w.run())).collect();

    // The sampler: at each checkpoint, wait until exactly that many calls
    // are done (the gate holds the rest), settle, sample, open the gate to
    // the next one.
    let mut samples = Vec::new();
    let mut paused = Duration::ZERO;
    let mut marks = checkpoints(opts).peekable();
    while let Some(c) = marks.next() {
        let reached = loop {
            let notified = shared.completed_notify.notified();
            if shared.completed.load(Ordering::Relaxed) >= c {
                break true;
            }
            if shared.stopped() || shared.live_clients.load(Ordering::Relaxed) == 0 {
                break false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        };
        if !reached {
            break;
        }
        let t_pause = Instant::now();
        tokio::time::sleep(opts.settle).await;
        let s = host.sample(c, started.elapsed().saturating_sub(opts.settle));
        paused += t_pause.elapsed();
        shared.paused_ms.store(
            u64::try_from(paused.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if opts.progress {
            let mem: Vec<String> = s
                .mem
                .iter()
                .map(|(n, m)| format!("{n} {:.2}", mib(m.rss)))
                .collect();
            let done = shared.completed.load(Ordering::Relaxed);
            #[allow(clippy::cast_precision_loss)]
            let rate = done as f64 / (started.elapsed() - paused).as_secs_f64().max(1e-9);
            println!(
                "load: {c} calls at {:.1} s ({rate:.0} calls/s, {} failures); VmRSS MiB: {}",
                s.at.as_secs_f64(),
                shared.failure_count.load(Ordering::Relaxed),
                mem.join(", ")
            );
        }
        samples.push(s);
        let next = marks.peek().copied().unwrap_or(usize::MAX);
        shared.gate.send_replace(next);
    }
    shared.gate.send_replace(usize::MAX);

    let mut by_kind: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut finished = Vec::with_capacity(opts.clients);
    for t in tasks {
        let w = t.await.expect("client task");
        finished.push(w);
    }
    let wall = started.elapsed();
    let calls = shared.completed.load(Ordering::Relaxed);
    let cpu_per_call: Vec<(String, f64)> = pids
        .iter()
        .zip(&cpu0)
        .map(|((name, pid), c0)| {
            #[allow(clippy::cast_precision_loss)]
            let per = (cpu_ms(*pid) - c0) / (calls.max(1) as f64);
            (name.clone(), per)
        })
        .collect();

    // Every client's watch has the events of its last defines and undefines.
    if !shared.stopped() {
        for w in &finished {
            if let Err(e) = w.events_arrived().await {
                shared.fail(format!("client {}: {e}", w.k));
            }
        }
    }
    for w in &mut finished {
        for (kind, d) in w.samples.drain(..) {
            by_kind.entry(kind).or_default().push(d);
        }
    }
    // The end sample, after the same pause.
    if opts.progress {
        println!(
            "load: {calls} calls done in {:.1} s; the end sample follows",
            wall.as_secs_f64()
        );
    }
    tokio::time::sleep(opts.settle).await;
    samples.push(host.sample(calls, wall));
    let stopped_early = shared.stopped();
    shared.stop.store(true, Ordering::Relaxed);
    for w in &mut finished {
        if let Some(h) = w.watch.take() {
            h.abort();
        }
    }
    sto_watch.abort();
    net_watch.abort();

    let report = Report {
        clients: opts.clients,
        calls,
        wall,
        paused,
        by_kind,
        expected_errors: shared.expected_errors.load(Ordering::Relaxed),
        failures: shared.failures.lock().expect("failures").clone(),
        failure_count: shared.failure_count.load(Ordering::Relaxed),
        deadlocks: shared.deadlocks.lock().expect("deadlocks").clone(),
        samples,
        cpu_per_call,
        events: (
            shared.events.load(Ordering::Relaxed),
            sto_events.load(Ordering::Relaxed),
            net_events.load(Ordering::Relaxed),
        ),
        watches: shared.watches.load(Ordering::Relaxed),
        leak_rule: (opts.first_sample, opts.leak_sample, opts.leak_tolerance),
        stopped_early,
        shutdown: Vec::new(),
    };
    let mut report = report;
    report.shutdown = teardown(host, &mut setup, &shared.fixture).await;
    report
}

fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().rev().take(n).collect();
    v.reverse();
    v
}

/// Stops the guests and the network, then every daemon with SIGTERM;
/// returns the daemons that did not exit 0.
async fn teardown(mut host: Host, c: &mut Client, fx: &Fixture) -> Vec<String> {
    for g in &fx.guests {
        let _ = c
            .dom
            .destroy(dom::DestroyRequest {
                domain: by_name(g),
                ..Default::default()
            })
            .await;
    }
    let _ = c
        .net
        .destroy_network(net::DestroyNetworkRequest {
            network: net_ref(&fx.network),
        })
        .await;
    let mut bad = Vec::new();
    for d in host.daemons.iter_mut().rev() {
        if let Some(st) = d.try_wait() {
            bad.push(format!(
                "{} exited during the run ({st}); its last lines: {:?}",
                d.name(),
                last_lines(&d.output(), 10)
            ));
            continue;
        }
        d.sigterm();
        let exited = crate::wait_until(crate::STOP_TIMEOUT, || !d.is_running()).await;
        match d.try_wait() {
            Some(st) if exited && st.success() => {}
            st => bad.push(format!(
                "{} on SIGTERM: {st:?}; its last lines: {:?}",
                d.name(),
                last_lines(&d.output(), 10)
            )),
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(until: Until, every: usize, take: usize) -> Vec<usize> {
        let opts = Options {
            until,
            sample_every: every,
            ..Options::default()
        };
        checkpoints(&opts).take(take).collect()
    }

    #[test]
    fn checkpoints_baseline_leak_sample_and_multiples() {
        assert_eq!(marks(Until::Calls(5_000), 100_000, 10), [1_000]);
        assert_eq!(marks(Until::Calls(1_000), 100_000, 10), Vec::<usize>::new());
        assert_eq!(marks(Until::Calls(100_001), 100_000, 10), [1_000, 100_000]);
        assert_eq!(
            marks(Until::Time(Duration::from_secs(1)), 100_000, 4),
            [1_000, 100_000, 200_000, 300_000]
        );
        assert_eq!(
            marks(Until::Calls(35_000), 10_000, 10),
            [1_000, 10_000, 20_000, 30_000]
        );
        assert_eq!(
            marks(Until::Calls(1_000_000), 30_000, 5),
            [1_000, 30_000, 60_000, 90_000, 100_000]
        );
    }
}
