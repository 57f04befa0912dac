//! virtqemud lifecycle benchmark: define, list, get XML, start, destroy,
//! suspend+resume, ACPI shutdown, fake reboot, daemon restart, idle RSS and
//! a 10,000-domain list, against the release build of virtqemud on a
//! temporary `VIRT_ROOT` with the test kit's tiny guest (q35, TCG, 32 MiB).
//!
//! Run with `make bench` (both halves, one table) or
//! `cargo bench -p tests --bench lifecycle [-- --quick] [--calls-only]` (`--calls-only`:
//! idle RSS, define, list and get XML only, for quick looks at per-call costs).
//! Without `--bench` (as under `cargo test --all-targets`) it does nothing. What each metric
//! measures: docs/benchmarks.md. libvirt's half: tests/benches/libvirt_lifecycle.py.
//!
//! Output on stdout: one line per metric, tab-separated,
//! `metric median p90 n unit` (p90 `-` where it has no meaning), and
//! comment lines starting with `#`. Progress goes to stderr.
//!
//! The daemon binary is `virtqemud` from `VIRT_TEST_BIN_DIR`, else from the
//! profile directory this bench was built into (`target/release` under
//! `cargo bench`); build it first with `cargo build --release -p virtqemud
//! --bins`. Every QEMU whose command line names the temporary root is
//! killed at the end, also after a panic or Ctrl-C.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hyper_util::rt::TokioIo;
use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use tests::benchout::{cpu_ms, ms, note, report, report_one};
use tests::guest::{GuestKind, UP_LINE, build_image};
use tests::{Daemon, SocketKind, TestRoot};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

type Client = DomainServiceClient<Channel>;

const RUNNING: i32 = pb::DomainState::Running as i32;
const PAUSED: i32 = pb::DomainState::Paused as i32;
const SHUTOFF: i32 = pb::DomainState::Shutoff as i32;

/// Defined domains for the list, restart and RSS figures.
const DEFINED: usize = 200;
/// Running domains for the restart and RSS figures.
const RUNNING_VMS: usize = 10;
/// How fast waits poll (serial file, state, socket).
const POLL: Duration = Duration::from_millis(1);
/// Bound of every wait for a guest or a state.
const WAIT: Duration = Duration::from_secs(20);

/// Round counts (`--quick` divides them).
#[derive(Debug, Clone, Copy)]
struct Rounds {
    list: usize,
    get_xml: usize,
    start: usize,
    suspend: usize,
    shutdown: usize,
    reboot: usize,
    restart: usize,
    big: usize,
    list_big: usize,
}

impl Rounds {
    fn full() -> Rounds {
        Rounds {
            list: 500,
            get_xml: 1000,
            start: 20,
            suspend: 50,
            shutdown: 10,
            reboot: 10,
            restart: 10,
            big: 10_000,
            list_big: 20,
        }
    }

    fn quick() -> Rounds {
        Rounds {
            list: 100,
            get_xml: 200,
            start: 5,
            suspend: 10,
            shutdown: 3,
            reboot: 3,
            restart: 3,
            big: 2_000,
            list_big: 5,
        }
    }
}

// ---------------------------------------------------------------------------
// Output (metric lines: tests::benchout)
// ---------------------------------------------------------------------------

fn progress(text: &str) {
    eprintln!("lifecycle bench: {text}");
}

// ---------------------------------------------------------------------------
// Processes: the daemon, and the QEMUs that must never outlive the bench
// ---------------------------------------------------------------------------

/// Kills every QEMU whose command line names `root`; returns how many.
fn kill_qemus_under(root: &Path) -> usize {
    let needle = root.display().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if (cmd.starts_with("qemu-system") || cmd.contains("/qemu-system")) && cmd.contains(&needle)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed += 1;
        }
    }
    killed
}

/// `RssAnon` and `RssFile` of `pid` in MiB.
fn rss_split(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// Reports the daemon's CPU per call over `calls` calls as `cpu_<metric>`.
fn report_cpu(metric: &str, cpu_before: f64, pid: u32, calls: usize) {
    #[allow(clippy::cast_precision_loss)] // small counts
    let per = (cpu_ms(pid) - cpu_before) / calls as f64;
    report_one(&format!("cpu_{metric}"), per, calls, "ms");
}

/// VmRSS of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line");
    kib / 1024.0
}

/// The bench's world: the root, the daemon and the pid the Ctrl-C handler
/// must kill. Dropping it (also while unwinding from a panic) kills the
/// daemon and every QEMU under the root, then removes the root.
struct Env {
    daemon: Option<Daemon>,
    daemon_pid: Arc<AtomicI32>,
    bin: PathBuf,
    // Last: the directory goes after the processes are dead.
    root: TestRoot,
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let n = kill_qemus_under(self.root.path());
        if n > 0 {
            eprintln!("lifecycle bench: killed {n} QEMU process(es) left under the root");
        }
    }
}

impl Env {
    fn socket(&self) -> PathBuf {
        self.root.socket("virtqemud", SocketKind::ReadWrite)
    }

    fn config_dir(&self) -> PathBuf {
        self.root.paths().driver_config_dir("qemu")
    }

    fn image(&self, name: &str, kind: GuestKind) -> PathBuf {
        let p = self.root.path().join("img").join(format!("{name}.img"));
        std::fs::create_dir_all(p.parent().expect("img dir")).expect("create img dir");
        build_image(&p, kind).expect("guest image");
        p
    }

    fn serial(&self, name: &str) -> PathBuf {
        self.root.path().join("img").join(format!("{name}.serial"))
    }

    fn boots(&self, name: &str) -> usize {
        std::fs::read_to_string(self.serial(name))
            .unwrap_or_default()
            .matches(UP_LINE)
            .count()
    }

    /// Polls the serial file until `name` has booted `n` times.
    async fn wait_boots(&self, name: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.boots(name) < n {
            assert!(
                Instant::now() < deadline,
                "{name}: {n} boot(s) expected, saw {}",
                self.boots(name)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Spawns virtqemud (not waiting for it).
    fn spawn(&mut self) {
        assert!(self.daemon.is_none(), "one daemon at a time");
        let mut cmd = Command::new(&self.bin);
        cmd.env("VIRT_ROOT", self.root.path())
            .env(
                "RUST_LOG",
                std::env::var("VIRT_BENCH_LOG").unwrap_or("info".into()),
            )
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        let d = Daemon::spawn_command("virtqemud", self.root.path(), cmd);
        self.daemon_pid.store(
            i32::try_from(d.pid()).expect("pid fits i32"),
            Ordering::SeqCst,
        );
        self.daemon = Some(d);
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("daemon running")
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").pid()
    }

    /// Polls (every [`POLL`]) until a fresh connection to the read-write
    /// socket answers a call; returns the client.
    async fn ready(&mut self) -> Client {
        let sock = self.socket();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.daemon().try_wait() {
                panic!(
                    "virtqemud exited ({st}); output:\n{}",
                    self.daemon().output()
                );
            }
            if let Ok(ch) = connect_once(&sock).await {
                let mut c = client(ch);
                if c.get_version(pb::GetVersionRequest {}).await.is_ok() {
                    return c;
                }
            }
            assert!(
                Instant::now() < deadline,
                "virtqemud not ready; output:\n{}",
                self.daemon().output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM and wait (polling every [`POLL`]) for the exit.
    async fn stop(&mut self) {
        let d = self.daemon();
        d.sigterm();
        let deadline = Instant::now() + WAIT;
        while d.try_wait().is_none() {
            assert!(
                Instant::now() < deadline,
                "virtqemud did not exit on SIGTERM"
            );
            tokio::time::sleep(POLL).await;
        }
        self.daemon = None;
    }
}

/// One connection to `path`, no probe and no reconnect (a connect that
/// fails is an error, not a panic).
async fn connect_once(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let owned = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let p = owned.clone();
            async move { UnixStream::connect(p).await.map(TokioIo::new) }
        }))
        .await
}

fn client(ch: Channel) -> Client {
    DomainServiceClient::new(ch)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20)
}

// ---------------------------------------------------------------------------
// Domain calls
// ---------------------------------------------------------------------------

/// The guest XML of tests/tests/lifecycle.rs.
fn guest_xml(name: &str, image: &Path, serial: &Path) -> String {
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
  </features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <serial type='file'>
      <source path='{}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
",
        image.display(),
        serial.display()
    )
}

fn by_name(n: &str) -> Option<pb::DomainRef> {
    Some(pb::DomainRef {
        by: Some(pb::domain_ref::By::Name(n.to_owned())),
    })
}

async fn define(c: &mut Client, xml: String) {
    c.define_xml(pb::DefineXmlRequest {
        xml,
        validate: true,
    })
    .await
    .unwrap_or_else(|e| panic!("define: {}", e.message()));
}

async fn undefine(c: &mut Client, name: &str) {
    c.undefine(pb::UndefineRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("undefine {name}: {}", e.message()));
}

async fn start(c: &mut Client, name: &str) {
    c.start(pb::StartRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start {name}: {}", e.message()));
}

async fn destroy(c: &mut Client, name: &str) {
    c.destroy(pb::DestroyRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("destroy {name}: {}", e.message()));
}

async fn suspend(c: &mut Client, name: &str) -> Result<(), tonic::Status> {
    c.suspend(pb::SuspendRequest {
        domain: by_name(name),
    })
    .await
    .map(|_| ())
}

async fn resume(c: &mut Client, name: &str) {
    c.resume(pb::ResumeRequest {
        domain: by_name(name),
    })
    .await
    .unwrap_or_else(|e| panic!("resume {name}: {}", e.message()));
}

async fn state(c: &mut Client, name: &str) -> i32 {
    c.get_state(pb::GetStateRequest {
        domain: by_name(name),
    })
    .await
    .unwrap_or_else(|e| panic!("state {name}: {}", e.message()))
    .into_inner()
    .state
}

async fn wait_state(c: &mut Client, name: &str, want: i32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = state(c, name).await;
        if s == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: state {want} expected, still {s}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn list_all(c: &mut Client) -> usize {
    c.list_all_domains(pb::ListAllDomainsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .domains
        .len()
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// The durable write of a definition, done by hand: a temporary file,
/// fsync, rename, fsync of the directory. Names the daemon does not load
/// (no `.xml`), removed by the caller.
fn durable_write(dir: &Path, bytes: &[u8]) -> Duration {
    let tmp = dir.join(".bench-durable.tmp");
    let dst = dir.join(".bench-durable");
    let t0 = Instant::now();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .expect("open temp file");
    f.write_all(bytes).expect("write temp file");
    f.sync_all().expect("fsync temp file");
    drop(f);
    std::fs::rename(&tmp, &dst).expect("rename");
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
    t0.elapsed()
}

/// Metric 1: define, interleaved with the durable write in the
/// definitions' directory; leaves [`DEFINED`] domains `def-NNN` defined.
async fn bench_define(env: &Env, c: &mut Client) {
    progress("define (and the disk's durable write)");
    let image = env.image("shared", GuestKind::IgnoresPowerButton);
    let xml = |name: &str| guest_xml(name, &image, &env.serial(name));
    // Warm-up: the first define creates the directory.
    for i in 0..5 {
        let name = format!("warm-{i}");
        define(c, xml(&name)).await;
        undefine(c, &name).await;
    }
    let dir = env.config_dir();
    let payload = vec![b'x'; 2048];
    let (mut defs, mut writes) = (Vec::new(), Vec::new());
    let pid = env.pid();
    let cpu = cpu_ms(pid);
    for i in 0..DEFINED {
        let name = format!("def-{i:03}");
        let x = xml(&name);
        // Alternate which goes first, so neither always follows the other.
        if i % 2 == 0 {
            writes.push(ms(durable_write(&dir, &payload)));
        }
        let t0 = Instant::now();
        define(c, x).await;
        defs.push(ms(t0.elapsed()));
        if i % 2 == 1 {
            writes.push(ms(durable_write(&dir, &payload)));
        }
    }
    // The daemon's CPU per define, its file write included.
    report_cpu("define", cpu, pid, DEFINED);
    let _ = std::fs::remove_file(dir.join(".bench-durable"));
    let file_size = std::fs::metadata(dir.join("def-000.xml")).map_or(0, |m| m.len());
    let w = report("durable_write", &writes, "ms");
    let d = report("define", &defs, "ms");
    // Each define against the write sampled next to it: robust to the
    // disk's speed drifting during the loop.
    let diffs: Vec<f64> = defs.iter().zip(&writes).map(|(d, w)| d - w).collect();
    report("define_minus_write", &diffs, "ms");
    note(&format!(
        "define minus durable write: medians {:.3} - {:.3} = {:.3} ms; paired median above",
        d,
        w,
        d - w
    ));
    note(&format!(
        "durable write: 2048 bytes in {}; a stored definition is {file_size} bytes",
        dir.display()
    ));
}

/// Metrics 2 and 3: list-all with [`DEFINED`] defined, get XML; and the
/// RPC floor (GetVersion) for reference.
async fn bench_list_get(env: &Env, c: &mut Client, r: Rounds) {
    let pid = env.pid();
    progress("rpc floor, list-all (200 defined), get XML");
    // The round trip with (nearly) no work behind it: GetVersion.
    for _ in 0..20 {
        c.get_version(pb::GetVersionRequest {})
            .await
            .expect("version");
    }
    let mut v = Vec::with_capacity(r.get_xml);
    let cpu = cpu_ms(pid);
    for _ in 0..r.get_xml {
        let t0 = Instant::now();
        c.get_version(pb::GetVersionRequest {})
            .await
            .expect("version");
        v.push(ms(t0.elapsed()));
    }
    report_cpu("rpc_floor", cpu, pid, v.len());
    report("rpc_floor", &v, "ms");
    assert_eq!(list_all(c).await, DEFINED);
    for _ in 0..20 {
        list_all(c).await;
    }
    let mut v = Vec::with_capacity(r.list);
    let cpu = cpu_ms(pid);
    for _ in 0..r.list {
        let t0 = Instant::now();
        let n = list_all(c).await;
        v.push(ms(t0.elapsed()));
        assert_eq!(n, DEFINED);
    }
    report_cpu("list_200", cpu, pid, v.len());
    report("list_200", &v, "ms");

    let req = || pb::GetXmlRequest {
        domain: by_name("def-100"),
        ..Default::default()
    };
    for _ in 0..20 {
        c.get_xml(req()).await.expect("xml");
    }
    let mut v = Vec::with_capacity(r.get_xml);
    let cpu = cpu_ms(pid);
    for _ in 0..r.get_xml {
        let t0 = Instant::now();
        let x = c.get_xml(req()).await.expect("xml").into_inner().xml;
        v.push(ms(t0.elapsed()));
        assert!(x.starts_with("<domain"));
    }
    report_cpu("get_xml", cpu, pid, v.len());
    report("get_xml", &v, "ms");
}

/// Metrics 4 to 6: start, guest up, destroy, suspend+resume of `life`.
async fn bench_start_destroy(env: &Env, c: &mut Client, r: Rounds) {
    progress("start, guest up, destroy, suspend+resume");
    let name = "life";
    define(
        c,
        guest_xml(
            name,
            &env.image(name, GuestKind::IgnoresPowerButton),
            &env.serial(name),
        ),
    )
    .await;
    // Warm-up round (page cache of QEMU and its firmware).
    start(c, name).await;
    env.wait_boots(name, 1).await;
    destroy(c, name).await;

    let (mut starts, mut ups, mut destroys) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..r.start {
        let t0 = Instant::now();
        start(c, name).await;
        starts.push(ms(t0.elapsed()));
        assert_eq!(state(c, name).await, RUNNING, "running after Start");
        // The start truncates the serial file: one boot line.
        env.wait_boots(name, 1).await;
        ups.push(ms(t0.elapsed()));
        let t1 = Instant::now();
        destroy(c, name).await;
        destroys.push(ms(t1.elapsed()));
        assert_eq!(state(c, name).await, SHUTOFF, "shut off after Destroy");
    }
    report("start", &starts, "ms");
    report("guest_up", &ups, "ms");
    report("destroy", &destroys, "ms");

    start(c, name).await;
    env.wait_boots(name, 1).await;
    for _ in 0..3 {
        suspend(c, name).await.expect("suspend");
        resume(c, name).await;
    }
    let mut v = Vec::with_capacity(r.suspend);
    for _ in 0..r.suspend {
        let t0 = Instant::now();
        suspend(c, name).await.expect("suspend");
        resume(c, name).await;
        v.push(ms(t0.elapsed()));
    }
    assert_eq!(state(c, name).await, RUNNING);
    report("suspend_resume", &v, "ms");
    destroy(c, name).await;
    undefine(c, name).await;
}

/// Metric 7: ACPI shutdown to shut off, fake reboot to guest up, of `coop`.
async fn bench_shutdown_reboot(env: &Env, c: &mut Client, r: Rounds) {
    progress("ACPI shutdown, fake reboot");
    let name = "coop";
    define(
        c,
        guest_xml(
            name,
            &env.image(name, GuestKind::Cooperative),
            &env.serial(name),
        ),
    )
    .await;
    let mut v = Vec::with_capacity(r.shutdown);
    for _ in 0..r.shutdown {
        start(c, name).await;
        env.wait_boots(name, 1).await;
        let t0 = Instant::now();
        c.shutdown(pb::ShutdownRequest {
            domain: by_name(name),
            modes: vec![],
        })
        .await
        .expect("shutdown");
        wait_state(c, name, SHUTOFF).await;
        v.push(ms(t0.elapsed()));
    }
    report("shutdown", &v, "ms");

    start(c, name).await;
    env.wait_boots(name, 1).await;
    let mut v = Vec::with_capacity(r.reboot);
    for round in 0..r.reboot {
        let before = env.boots(name);
        let t0 = Instant::now();
        c.reboot(pb::RebootRequest {
            domain: by_name(name),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("reboot {round}: {}", e.message()));
        env.wait_boots(name, before + 1).await;
        v.push(ms(t0.elapsed()));
        assert_eq!(state(c, name).await, RUNNING);
    }
    report("reboot", &v, "ms");
    destroy(c, name).await;
    undefine(c, name).await;
}

/// Metric 8: daemon restart with [`RUNNING_VMS`] running + [`DEFINED`]
/// defined: from the spawn until every running domain's Suspend succeeded
/// (its monitor answered); also until the first one did, and the daemon's
/// CPU time over that span.
async fn bench_restart(env: &mut Env, mut c: Client, r: Rounds) -> Client {
    progress("daemon restart with 10 running + 200 defined");
    let names: Vec<String> = (0..RUNNING_VMS).map(|i| format!("run-{i}")).collect();
    for n in &names {
        define(
            &mut c,
            guest_xml(
                n,
                &env.image(n, GuestKind::IgnoresPowerButton),
                &env.serial(n),
            ),
        )
        .await;
        start(&mut c, n).await;
    }
    for n in &names {
        env.wait_boots(n, 1).await;
    }
    assert_eq!(list_all(&mut c).await, DEFINED + RUNNING_VMS);
    let sock = env.socket();
    let (mut all, mut first, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
    // One warm-up restart, then the measured ones.
    for round in 0..=r.restart {
        drop(c);
        env.stop().await;
        let t0 = Instant::now();
        env.spawn();
        let pid = env.pid();
        // Every domain: Suspend until it succeeds (the monitor answered).
        let mut tasks = Vec::new();
        for n in &names {
            let n = n.clone();
            let sock = sock.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + WAIT;
                loop {
                    if let Ok(ch) = connect_once(&sock).await {
                        let mut c = client(ch);
                        loop {
                            match suspend(&mut c, &n).await {
                                Ok(()) => return t0.elapsed(),
                                Err(e) => {
                                    assert!(
                                        Instant::now() < deadline,
                                        "suspend {n} after restart: {}",
                                        e.message()
                                    );
                                    if e.code() == tonic::Code::Unavailable
                                        || e.code() == tonic::Code::Unknown
                                    {
                                        break; // reconnect
                                    }
                                }
                            }
                            tokio::time::sleep(POLL).await;
                        }
                    }
                    assert!(Instant::now() < deadline, "no socket after restart");
                    tokio::time::sleep(POLL).await;
                }
            }));
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.expect("suspend task"));
        }
        let slowest = done.iter().max().copied().unwrap_or_default();
        let cpu = cpu_ms(pid);
        let fastest = done.iter().min().copied().unwrap_or_default();
        if round > 0 {
            all.push(ms(slowest));
            cpus.push(cpu);
            first.push(ms(fastest));
        }
        c = env.ready().await;
        for n in &names {
            assert_eq!(state(&mut c, n).await, PAUSED, "{n} paused");
            resume(&mut c, n).await;
        }
    }
    report("restart", &all, "ms");
    report("restart_first_domain", &first, "ms");
    report("cpu_restart", &cpus, "ms");
    c
}

/// Metric 9: idle RSS, a few samples one second after the last call.
async fn bench_rss(env: &Env, metric: &str) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut v = Vec::new();
    for _ in 0..5 {
        v.push(rss_mib(env.pid()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report(metric, &v, "MiB");
    let (anon, file) = rss_split(env.pid());
    note(&format!(
        "{metric}: RssAnon {anon:.2} MiB + RssFile {file:.2} MiB (the binary and libraries)"
    ));
}

/// Metric 10: list-all with `r.big` defined. Defines the missing ones
/// concurrently (timed), then lists.
async fn bench_big_list(env: &Env, c: &mut Client, r: Rounds) {
    let have = list_all(c).await;
    let missing = r.big.saturating_sub(have);
    progress(&format!("defining {missing} more domains concurrently"));
    let image = env.root.path().join("img").join("shared.img");
    let serial = env.root.path().join("img").join("big.serial");
    let t0 = Instant::now();
    let results: Vec<Result<(), tonic::Status>> = futures::stream::iter(0..missing)
        .map(|i| {
            let mut c = c.clone();
            let xml = guest_xml(&format!("big-{i:05}"), &image, &serial);
            async move {
                c.define_xml(pb::DefineXmlRequest {
                    xml,
                    validate: true,
                })
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let took = t0.elapsed();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        panic!("bulk define: {}", e.message());
    }
    report_one(&format!("define_bulk_{}", r.big), ms(took), missing, "ms");
    #[allow(clippy::cast_precision_loss)] // small counts
    let rate = missing as f64 / took.as_secs_f64();
    note(&format!(
        "bulk define: {missing} domains, 32 in flight on one connection, in {:.2} s ({rate:.0}/s)",
        took.as_secs_f64()
    ));
    progress(&format!("list-all with {} defined", r.big));
    for _ in 0..2 {
        list_all(c).await;
    }
    let mut v = Vec::with_capacity(r.list_big);
    let cpu = cpu_ms(env.pid());
    for _ in 0..r.list_big {
        let t0 = Instant::now();
        let n = list_all(c).await;
        v.push(ms(t0.elapsed()));
        assert_eq!(n, r.big);
    }
    report_cpu(&format!("list_{}", r.big), cpu, env.pid(), v.len());
    report(&format!("list_{}", r.big), &v, "ms");
}

async fn run(env: &mut Env, r: Rounds, calls_only: bool) {
    let t_spawn = Instant::now();
    env.spawn();
    let mut c = env.ready().await;
    note(&format!(
        "virtqemud {} on {} (first start, with the QEMU probe: {:.0} ms)",
        env.bin.display(),
        env.root.path().display(),
        ms(t_spawn.elapsed())
    ));
    let v = c
        .get_version(pb::GetVersionRequest {})
        .await
        .expect("version")
        .into_inner();
    note(&format!("versions: {v:?}"));
    bench_rss(env, "rss_empty").await;
    bench_define(env, &mut c).await;
    bench_list_get(env, &mut c, r).await;
    if calls_only {
        drop(c);
        env.stop().await;
        return;
    }
    bench_start_destroy(env, &mut c, r).await;
    bench_shutdown_reboot(env, &mut c, r).await;
    let mut c = bench_restart(env, c, r).await;
    bench_rss(env, "rss_loaded").await;
    bench_big_list(env, &mut c, r).await;

    progress("cleaning up");
    for i in 0..RUNNING_VMS {
        destroy(&mut c, &format!("run-{i}")).await;
    }
    drop(c);
    env.stop().await;
}

/// `--write-images DIR`: writes the guest images libvirt's half boots
/// (`ignores.img`, `coop.img`), so both halves run the same bytes.
fn write_images(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create image dir");
    for (file, kind) in [
        ("ignores.img", GuestKind::IgnoresPowerButton),
        ("coop.img", GuestKind::Cooperative),
    ] {
        build_image(&dir.join(file), kind).expect("write image");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--write-images") {
        let dir = args.get(i + 1).expect("--write-images DIR");
        write_images(Path::new(dir));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "lifecycle bench: not run (it needs root, QEMU and a release virtqemud): `make bench` or \
             `cargo bench -p tests --bench lifecycle`"
        );
        return;
    }
    let rounds = if args.iter().any(|a| a == "--quick") {
        Rounds::quick()
    } else {
        Rounds::full()
    };
    let dir = std::env::var_os("VIRT_TEST_BIN_DIR").map_or_else(tests::bin_dir, PathBuf::from);
    let bin = dir.join("virtqemud");
    if !bin.is_file() {
        eprintln!(
            "lifecycle bench: no {}; build it with `cargo build --release -p virtqemud --bins`",
            bin.display()
        );
        std::process::exit(2);
    }
    // One thread: a multi-thread runtime adds cross-thread wake-ups to
    // every call (about 45 µs per round trip here), which is the client's
    // cost, not the daemon's. libvirt's half is single-threaded too.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut env = Env {
        daemon: None,
        daemon_pid: Arc::new(AtomicI32::new(0)),
        bin,
        root: TestRoot::new(),
    };
    // Ctrl-C: kill the daemon and the QEMUs, remove the root, exit.
    {
        let pid = env.daemon_pid.clone();
        let root = env.root.path().to_path_buf();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let p = pid.load(Ordering::SeqCst);
                if p > 0 {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                kill_qemus_under(&root);
                let _ = std::fs::remove_dir_all(&root);
                eprintln!("lifecycle bench: interrupted; cleaned up");
                std::process::exit(130);
            }
        });
    }
    let quick = args.iter().any(|a| a == "--quick");
    note(&format!(
        "virtqemud lifecycle bench: {} rounds",
        if quick { "quick" } else { "full" }
    ));
    let calls_only = args.iter().any(|a| a == "--calls-only");
    rt.block_on(run(&mut env, rounds, calls_only));
    drop(env);
    drop(rt);
}
