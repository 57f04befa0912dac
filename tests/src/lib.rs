//! testkit: real daemon processes on temporary `VIRT_ROOT`s.
//!
//! The end-to-end tests in `tests/tests/` start the daemon binaries as they
//! ship, each stack on its own temporary root, and talk to them over their
//! Unix sockets exactly as clients do. Nothing here touches a system path:
//! every daemon gets `VIRT_ROOT=<tempdir>`, so its sockets, pid file and
//! config live under that directory.
//!
//! - [`TestRoot`]: a temporary directory used as `VIRT_ROOT`, with the paths
//!   a daemon derives from it (kept when `VIRT_TEST_KEEP` is set).
//! - [`Daemon`]: one daemon process. [`Daemon::start`] spawns it with
//!   `VIRT_ROOT` and `RUST_LOG=info`, its stdout and stderr in a log file under
//!   the root, and waits (bounded by [`READY_TIMEOUT`]) until its read-write
//!   socket answers health SERVING. [`Daemon::builder`] adds flags and
//!   environment; [`Daemon::spawn_command`] adopts any command (e.g. a
//!   `systemd-socket-activate` wrapper that execs the daemon). Signals,
//!   bounded waits for exit, channels and typed clients per socket. Dropping
//!   a `Daemon` kills a still-running child, so a failing test never leaves
//!   processes behind.
//! - [`Stack`]: all four daemons on one root, started in the contract order
//!   (virtstoraged, virtnetworkd, then virtqemud, then virtproxyd).
//! - [`wait_until`], [`wait_until_async`], [`wait_until_blocking`]: bounded
//!   polling instead of sleeps.
//! - [`call_empty`]: an empty request to any gRPC path, for access checks.
//! - [`calls`]: calls many test files make (object references, domain
//!   XML, a started pool or isolated network).
//! - [`pki`]: a test PKI (CAs, server and client certificates, CRLs) written
//!   in the layout `common::tls` reads, for the TLS transport.
//!
//! The binaries are taken from the target directory the test itself was
//! built into (`target/debug/deps/..`). If one is missing, `cargo build
//! --bins -p <daemon>` runs once per test process, so `cargo test -p tests`
//! works on its own; after changing a daemon, rebuild it
//! (`cargo build --workspace --bins`, as `make test` does).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use common::paths::SocketKind;
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use proto::admin::v1 as admin_pb;
use proto::admin::v1::admin_service_client::AdminServiceClient;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The four daemons, in the order a stack starts them.
pub const DAEMONS: [&str; 4] = ["virtstoraged", "virtnetworkd", "virtqemud", "virtproxyd"];

/// The three local socket kinds every daemon serves.
pub const SOCKET_KINDS: [SocketKind; 3] = [
    SocketKind::ReadWrite,
    SocketKind::ReadOnly,
    SocketKind::Admin,
];

/// How long a daemon may take to answer health SERVING after its spawn.
/// Generous because the CPU is shared with builds; a healthy start takes
/// well under a second.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a daemon may take to exit after SIGTERM in [`Daemon::stop`].
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC service a daemon registers in health, if any.
pub fn service_name(daemon: &str) -> Option<&'static str> {
    match daemon {
        "virtqemud" => Some("virt.domain.v1.DomainService"),
        "virtstoraged" => Some("virt.storage.v1.StorageService"),
        "virtnetworkd" => Some("virt.network.v1.NetworkService"),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

/// The workspace directory (parent of `tests/`).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The directory of the daemon binaries: the profile directory the running
/// test was built into (`target/debug` for `target/debug/deps/<test>`), or
/// `VIRT_TEST_BIN_DIR` when set.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIRT_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("test binary has a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps/ has a parent");
    }
    dir.to_path_buf()
}

/// Builds the daemon binaries that are missing from [`bin_dir`], once per
/// test process.
fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = bin_dir();
        let missing: Vec<&str> = DAEMONS
            .iter()
            .copied()
            .filter(|d| !dir.join(d).is_file())
            .collect();
        if missing.is_empty() {
            return;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_dir()).args(["build", "--bins"]);
        match dir.file_name().and_then(OsStr::to_str) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
        }
        for m in &missing {
            cmd.args(["-p", m]);
        }
        eprintln!("testkit: building missing daemons {missing:?}: {cmd:?}");
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of {missing:?} failed");
    });
}

/// The path of a daemon binary, built first if missing.
pub fn daemon_bin(name: &str) -> PathBuf {
    ensure_built();
    let p = bin_dir().join(name);
    assert!(p.is_file(), "no binary {}", p.display());
    p
}

// ---------------------------------------------------------------------------
// TestRoot
// ---------------------------------------------------------------------------

/// A temporary directory used as `VIRT_ROOT` by the daemons of one test.
///
/// Removed on drop unless `VIRT_TEST_KEEP` is set (then its path is
/// printed). Declare it before the daemons that use it, so that they are
/// dropped (killed) first.
#[derive(Debug)]
pub struct TestRoot {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Default for TestRoot {
    fn default() -> Self {
        TestRoot::new()
    }
}

impl TestRoot {
    /// A new, empty root under the system temp directory (short, so that
    /// socket paths stay far below the 107-byte limit).
    pub fn new() -> TestRoot {
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("virt-t")
            .tempdir_in(base)
            .expect("create temporary VIRT_ROOT");
        let path = dir.path().to_path_buf();
        TestRoot {
            dir: Some(dir),
            path,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The daemons' path layout under this root.
    pub fn paths(&self) -> common::paths::Paths {
        common::paths::Paths::system(Some(&self.path))
    }

    /// Socket `kind` of `daemon` (`ROOT/run/virt/<daemon>-sock...`).
    pub fn socket(&self, daemon: &str, kind: SocketKind) -> PathBuf {
        self.paths().socket(daemon, kind)
    }

    /// The default pid file of `daemon` (`ROOT/run/<daemon>.pid`).
    pub fn pid_file(&self, daemon: &str) -> PathBuf {
        self.paths().pid_file(daemon)
    }

    /// The default config file of `daemon` (`ROOT/etc/virt/<daemon>.conf`).
    pub fn config_file(&self, daemon: &str) -> PathBuf {
        self.paths().config_file(daemon)
    }

    /// Writes `text` as the default config file of `daemon`; returns its path.
    pub fn write_config(&self, daemon: &str, text: &str) -> PathBuf {
        let p = self.config_file(daemon);
        std::fs::create_dir_all(p.parent().expect("config dir")).expect("create config dir");
        std::fs::write(&p, text).expect("write config file");
        p
    }

    /// Where the daemons' output files go.
    pub fn log_dir(&self) -> PathBuf {
        self.path.join("test-logs")
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if std::env::var_os("VIRT_TEST_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("testkit: kept VIRT_ROOT {}", kept.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

const POLL: Duration = Duration::from_millis(25);

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the async `cond` until it holds or `timeout` passes; returns
/// whether it held. A single evaluation is not cut short.
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Blocking [`wait_until`], for code outside a runtime.
pub fn wait_until_blocking<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------

/// A channel to the Unix socket at `path` (the clients' own connector).
///
/// # Panics
/// The socket cannot be connected.
pub async fn channel_to(path: &Path) -> Channel {
    common::client::connect_unix(path)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A channel over exactly one connection: once that connection is closed,
/// calls fail instead of reconnecting (tonic channels reconnect silently).
/// Unlike [`channel_to`] there is no probe connection before it.
///
/// # Panics
/// The socket cannot be connected.
pub async fn channel_once(path: &Path) -> Channel {
    let used = std::sync::Arc::new(AtomicBool::new(false));
    let owned = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let p = owned.clone();
            let first = !used.swap(true, Ordering::SeqCst);
            async move {
                if first {
                    UnixStream::connect(p).await.map(TokioIo::new)
                } else {
                    Err(std::io::Error::other(
                        "testkit: channel_once does not reconnect",
                    ))
                }
            }
        }))
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", path.display()))
}

/// Sends an empty message to any unary-looking gRPC `path`
/// (`/pkg.Service/Method`) and ignores the reply's content. For access
/// checks: the ACL answers before the request is decoded.
///
/// # Errors
/// The status the daemon (or the transport) answered.
pub async fn call_empty(channel: Channel, path: &'static str) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    grpc.unary(
        tonic::Request::new(()),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(|_| ())
}

/// Health `Check` of `service` ("" = overall) over `channel`.
///
/// # Errors
/// The daemon's status (NOT_FOUND for an unknown service).
pub async fn health_check(channel: Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let resp = HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(ServingStatus::try_from(resp.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

/// One attempt: is the socket at `path` answering health SERVING?
async fn serving(path: &Path) -> bool {
    let attempt = async {
        let ch = common::client::connect_unix(path).await.ok()?;
        health_check(ch, "").await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(ServingStatus::Serving))
    )
}

// ---------------------------------------------------------------------------
// Daemon
// ---------------------------------------------------------------------------

static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// How to start a daemon: extra flags and environment.
#[derive(Debug)]
pub struct DaemonBuilder {
    name: String,
    root: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl DaemonBuilder {
    /// Adds a command-line argument (e.g. `-t`, `2`, `-f`, `FILE`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (after `VIRT_ROOT` and `RUST_LOG`, so it
    /// may override them).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The command this builder runs.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(daemon_bin(&self.name));
        cmd.args(&self.args)
            .env("VIRT_ROOT", &self.root)
            .env("RUST_LOG", "info")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Spawns the daemon without waiting for it (for daemons expected to
    /// fail, or to be waited for later with [`Daemon::wait_ready`]).
    pub fn spawn(self) -> Daemon {
        let cmd = self.command();
        Daemon::spawn_command(&self.name, &self.root, cmd)
    }

    /// Spawns the daemon and waits until it is ready.
    ///
    /// # Panics
    /// It exits or does not answer within [`READY_TIMEOUT`] (the panic
    /// message carries its output).
    pub async fn start(self) -> Daemon {
        let mut d = self.spawn();
        d.wait_ready().await;
        d
    }
}

/// One daemon process on a [`TestRoot`].
#[derive(Debug)]
pub struct Daemon {
    name: String,
    root: PathBuf,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `name` on `root` with no extra flags and waits until ready.
    ///
    /// # Panics
    /// See [`DaemonBuilder::start`].
    pub async fn start(name: &str, root: &TestRoot) -> Daemon {
        Daemon::builder(name, root).start().await
    }

    /// A builder for `name` on `root`.
    pub fn builder(name: &str, root: &TestRoot) -> DaemonBuilder {
        DaemonBuilder {
            name: name.to_owned(),
            root: root.path().to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Spawns `cmd` as daemon `name` of `root`, with stdout and stderr to a
    /// log file under the root. The process must become (or exec) the
    /// daemon: its pid is taken as the daemon's.
    pub fn spawn_command(name: &str, root: &Path, mut cmd: Command) -> Daemon {
        let logs = root.join("test-logs");
        std::fs::create_dir_all(&logs).expect("create log dir");
        let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
        let log = logs.join(format!("{name}.{n}.log"));
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            name: name.to_owned(),
            root: root.to_path_buf(),
            child,
            log,
            status: None,
        }
    }

    /// The daemon's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `VIRT_ROOT`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its socket of `kind`.
    pub fn socket(&self, kind: SocketKind) -> PathBuf {
        common::paths::Paths::system(Some(&self.root)).socket(&self.name, kind)
    }

    /// Its default pid file.
    pub fn pid_file(&self) -> PathBuf {
        common::paths::Paths::system(Some(&self.root)).pid_file(&self.name)
    }

    /// The file with its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What it printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status, if it has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Waits until its read-write socket answers health SERVING.
    ///
    /// # Panics
    /// It exits first, or [`READY_TIMEOUT`] passes; the message carries
    /// its output.
    pub async fn wait_ready(&mut self) {
        let sock = self.socket(SocketKind::ReadWrite);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(st) = self.try_wait() {
                panic!(
                    "{} exited before it was ready ({st}); output:\n{}",
                    self.name,
                    self.output()
                );
            }
            if sock.exists() && serving(&sock).await {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not ready within {READY_TIMEOUT:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (bounded) for the process to exit and returns its status.
    ///
    /// # Panics
    /// Still running after `timeout` (the message carries its output; the
    /// process is killed on drop).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let exited = wait_until(timeout, || self.try_wait().is_some()).await;
        assert!(
            exited,
            "{} still running {timeout:?} later; output:\n{}",
            self.name,
            self.output()
        );
        self.status.expect("exited")
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, sig).unwrap_or_else(|e| panic!("kill {sig}: {e}"));
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Sends SIGINT.
    pub fn sigint(&self) {
        self.signal(Signal::SIGINT);
    }

    /// Sends SIGHUP.
    pub fn sighup(&self) {
        self.signal(Signal::SIGHUP);
    }

    /// Kills it with SIGKILL and reaps it: nothing of its own clean-up runs.
    pub fn kill9(&mut self) -> ExitStatus {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().expect("wait after SIGKILL"));
        }
        self.status.expect("reaped")
    }

    /// SIGTERM, then waits for a clean exit.
    ///
    /// # Panics
    /// It does not exit with status 0 within [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        self.sigterm();
        let st = self.wait_exit(STOP_TIMEOUT).await;
        assert!(
            st.success(),
            "{} exited with {st} on SIGTERM; output:\n{}",
            self.name,
            self.output()
        );
    }

    /// A channel to its socket of `kind`.
    ///
    /// # Panics
    /// The socket cannot be connected.
    pub async fn channel(&self, kind: SocketKind) -> Channel {
        channel_to(&self.socket(kind)).await
    }

    /// A single-connection channel to its socket of `kind` (see [`channel_once`]).
    pub async fn channel_once(&self, kind: SocketKind) -> Channel {
        channel_once(&self.socket(kind)).await
    }

    /// A DomainService client on its socket of `kind`.
    pub async fn domain(&self, kind: SocketKind) -> DomainServiceClient<Channel> {
        DomainServiceClient::new(self.channel(kind).await)
    }

    /// A StorageService client on its socket of `kind`.
    pub async fn storage(&self, kind: SocketKind) -> StorageServiceClient<Channel> {
        StorageServiceClient::new(self.channel(kind).await)
    }

    /// A NetworkService client on its socket of `kind`.
    pub async fn network(&self, kind: SocketKind) -> NetworkServiceClient<Channel> {
        NetworkServiceClient::new(self.channel(kind).await)
    }

    /// An AdminService client on its admin socket.
    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel(SocketKind::Admin).await)
    }

    /// Health `Check` of `service` on its socket of `kind`.
    ///
    /// # Errors
    /// The daemon's status.
    pub async fn health(
        &self,
        kind: SocketKind,
        service: &str,
    ) -> Result<ServingStatus, tonic::Status> {
        health_check(self.channel(kind).await, service).await
    }

    /// Admin `GetDaemonInfo`.
    ///
    /// # Panics
    /// The call fails.
    pub async fn info(&self) -> admin_pb::GetDaemonInfoResponse {
        self.admin()
            .await
            .get_daemon_info(admin_pb::GetDaemonInfoRequest {})
            .await
            .expect("GetDaemonInfo")
            .into_inner()
    }

    /// Admin `ListClients` (all servers).
    ///
    /// # Panics
    /// The call fails.
    pub async fn clients(&self) -> Vec<admin_pb::Client> {
        self.admin()
            .await
            .list_clients(admin_pb::ListClientsRequest { server: None })
            .await
            .expect("ListClients")
            .into_inner()
            .clients
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Stack
// ---------------------------------------------------------------------------

/// All four daemons on one [`TestRoot`].
#[derive(Debug)]
pub struct Stack {
    // Field order: the daemons are dropped (killed) before the root goes.
    daemons: Vec<Daemon>,
    root: TestRoot,
}

impl Stack {
    /// Starts a stack on a new root.
    pub async fn start() -> Stack {
        Stack::start_on(TestRoot::new()).await
    }

    /// Starts the four daemons on `root` in the contract order, each ready
    /// before the next starts.
    pub async fn start_on(root: TestRoot) -> Stack {
        let mut daemons = Vec::new();
        for name in DAEMONS {
            daemons.push(Daemon::start(name, &root).await);
        }
        Stack { daemons, root }
    }

    /// The root.
    pub fn root(&self) -> &TestRoot {
        &self.root
    }

    /// All daemons, in start order.
    pub fn daemons(&self) -> &[Daemon] {
        &self.daemons
    }

    /// The daemon called `name`.
    ///
    /// # Panics
    /// No such daemon in the stack.
    pub fn daemon(&self, name: &str) -> &Daemon {
        self.daemons
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no {name} in the stack"))
    }

    /// virtqemud.
    pub fn qemud(&self) -> &Daemon {
        self.daemon("virtqemud")
    }

    /// virtstoraged.
    pub fn storaged(&self) -> &Daemon {
        self.daemon("virtstoraged")
    }

    /// virtnetworkd.
    pub fn networkd(&self) -> &Daemon {
        self.daemon("virtnetworkd")
    }

    /// virtproxyd.
    pub fn proxyd(&self) -> &Daemon {
        self.daemon("virtproxyd")
    }

    /// Stops the daemons in reverse start order, each with SIGTERM and a
    /// clean exit.
    ///
    /// # Panics
    /// One does not exit with status 0 in time.
    pub async fn stop(&mut self) {
        for d in self.daemons.iter_mut().rev() {
            d.stop().await;
        }
    }
}
pub mod benchout;
pub mod calls;
pub mod conformance;
pub mod fuzz;
pub mod guest;
pub mod load;

/// Kills QEMU processes whose command line names `root` (a failed test
/// must not leave guests behind); for `Drop` guards.
pub fn kill_qemus_under(root: &Path) {
    procs::kill_under(root, &["qemu-system"]);
}

pub mod netns;
pub mod pki;
pub mod procs;
pub mod python;
pub mod soak;
pub mod virtsh;
