//! The runtime every daemon shares.
//!
//! A daemon's `main` is one call: [`run`] with the daemon's name and an async
//! `init` that builds its driver (virtproxyd: [`run_with`] and its network
//! listeners, a [`Remote`]). Everything else happens here, in this order:
//!
//! 1. parse libvirt's flags ([`Args`]); `-V` prints the version;
//! 2. resolve paths ([`crate::paths`]) and load the config file
//!    ([`crate::config`]); errors name the key and file, exit status 1;
//! 3. take socket-activated fds (before any thread exists: it touches the
//!    environment), then detach with `-d`;
//! 4. start tokio, logging and tracing ([`logging`]); take SIGTERM, SIGINT
//!    and SIGHUP (handled from step 8 on, never the default action);
//! 5. lock the pid file, then bind the sockets that were not activated
//!    (stale ones removed only under the lock: [`sockets`]), and the
//!    network listeners of a [`Remote`] (TLS/TCP with `--listen`);
//! 6. run the daemon's `init` (sockets already listen, so clients that
//!    connect meanwhile wait in the backlog instead of failing);
//! 7. serve: per socket one tonic server over the same services, behind the
//!    trace layer, the socket's access layer ([`acl`]) and, for virtproxyd,
//!    the per-client call limit ([`limits`]); the service sockets carry the
//!    daemon's services, the admin socket the admin service; health and
//!    reflection answer everywhere;
//! 8. notify systemd READY; then wait for SIGTERM/SIGINT (stop), SIGHUP or
//!    admin Reload (reload), or the idle timeout;
//! 9. stop: STOPPING, stop accepting, let in-flight calls finish (bounded),
//!    the driver's shutdown hook, remove the sockets we bound, release the
//!    pid file.

pub mod acl;
pub mod activation;
pub mod admin;
pub mod args;
pub mod clients;
pub mod completion;
pub mod limits;
pub mod logging;
#[cfg(feature = "tls")]
pub mod remote;
pub mod serve;
pub mod sockets;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use futures::StreamExt;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tonic::service::Routes;

pub use self::args::Args;
use self::clients::ClientRegistry;
use crate::config::DaemonConfig;
use crate::error::VirtError;
use crate::paths::{Mode, Paths, SocketKind};

/// How long in-flight calls may run after a stop was requested.
pub const GRACEFUL_STOP: Duration = Duration::from_secs(10);

/// What every daemon gives the runtime.
pub trait Daemon: Send + Sync + 'static {
    /// The daemon's gRPC services, served on its read-write and read-only
    /// sockets (the access layer filters per method).
    fn routes(&self) -> Routes;

    /// Fully qualified names of those services, for the health service.
    fn service_names(&self) -> Vec<&'static str>;

    /// Whether the daemon has running objects (VMs, networks, pools). An
    /// active daemon never exits on the idle timeout.
    fn is_active(&self) -> bool {
        false
    }

    /// Re-read definitions, as on SIGHUP or admin Reload.
    fn reload(&self) -> impl Future<Output = Result<(), VirtError>> + Send {
        async { Ok(()) }
    }

    /// Last words before exit (save state, release what is not meant to
    /// outlive the daemon). Running VMs are never stopped here.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What `init` gets to build its driver with.
#[derive(Clone, Debug)]
pub struct Context {
    /// The daemon's name (`virtqemud`).
    pub name: &'static str,
    /// Resolved paths.
    pub paths: Paths,
    /// The loaded config.
    pub config: DaemonConfig,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// Becomes true when the daemon is stopping.
    pub stopping: watch::Receiver<bool>,
}

/// A daemon's socket as it is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedSocket {
    /// Its kind.
    pub kind: SocketKind,
    /// Its path (Unix) or address.
    pub address: String,
    /// Whether systemd handed it to us.
    pub activated: bool,
}

/// Version string of the daemons and tools: the workspace version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs daemon `name`: see the module docs for the sequence.
pub fn run<D, F, Fut>(name: &'static str, init: F) -> ExitCode
where
    D: Daemon,
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<D, Box<dyn std::error::Error + Send + Sync>>>,
{
    run_with(name, init, None)
}

/// Network listeners a daemon serves besides its Unix sockets: only
/// virtproxyd has them (`remote::TlsRemote`). The other daemons pass none,
/// so none of the TLS code ends up in their binaries.
pub trait Remote: Send {
    /// Before `init`: binds (or takes from systemd's `activated`) the
    /// listeners the config and `listen` (`--listen`) ask for; returns
    /// what it will serve, for the admin service.
    ///
    /// # Errors
    /// A port cannot be bound, or the TLS set-up fails.
    fn bind(
        &mut self,
        config: &DaemonConfig,
        paths: &Paths,
        activated: &mut Vec<activation::ActivatedSocket>,
        listen: bool,
    ) -> Result<Vec<ServedSocket>, BoxError>;

    /// Serves the bound listeners with `routes` until the daemon stops.
    fn serve(self: Box<Self>, s: RemoteServe<'_>);
}

/// What [`Remote::serve`] gets from the runtime.
#[allow(missing_debug_implementations)]
pub struct RemoteServe<'a> {
    /// Where the servers run.
    pub servers: &'a mut tokio::task::JoinSet<ServerResult>,
    /// The settings of a socket kind's server.
    pub settings: &'a dyn Fn(SocketKind) -> ServerSettings,
    /// The daemon's routes (as on the read-write socket).
    pub routes: Routes,
    /// Whether one more client may connect on the main server.
    pub admit: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// `tls_allowed_dn_list`.
    pub dn_list: Option<Arc<[String]>>,
    /// Becomes true when the daemon stops.
    pub stop: watch::Receiver<bool>,
}

/// [`run`] with network listeners (virtproxyd).
pub fn run_with<D, F, Fut>(name: &'static str, init: F, remote: Option<Box<dyn Remote>>) -> ExitCode
where
    D: Daemon,
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<D, Box<dyn std::error::Error + Send + Sync>>>,
{
    // First of all: the process may be replaced (see `memory`).
    memory::without_thread_caches();
    let args = Args::parse();
    if args.version {
        println!("{name} (virt) {VERSION}");
        return ExitCode::SUCCESS;
    }
    let mode = Mode::detect();
    let paths = Paths::from_env(mode);
    let (config_path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (paths.config_file(name), false),
    };
    let config = match DaemonConfig::load(name, &config_path, required) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Before any thread exists: reads and clears LISTEN_* from the environment.
    let activated = match activation::take_activated(name) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Before any thread exists: one malloc arena (see `memory`).
    memory::limit_arenas();
    if args.daemon
        && let Err(e) = nix::unistd::daemon(false, false)
    {
        eprintln!("{name}: error: Failed to detach: {e}");
        return ExitCode::FAILURE;
    }
    // Worker threads: one per core, at most four. Each is a stack and
    // per-thread state that stays resident; the daemons' calls are short
    // and the blocking work (file writes) leaves the workers anyway.
    //
    // virtproxyd runs on one thread (tokio's current-thread runtime): a
    // forwarded call is a chain of small tasks (the client's connection,
    // the call, the daemon's connection) waking each other, and on a
    // multi-thread runtime most of those wakes cross to another worker
    // (futex and eventfd system calls, context switches) at a cost larger
    // than the forwarding itself. Its work is pass-through; the daemons
    // do the heavy lifting on their own threads.
    let mut builder = if name == crate::config::PROXY_DAEMON {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let rt = match builder.enable_all().thread_name(name).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: error: Failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let setup = Setup {
        name,
        args,
        paths,
        config,
        config_path,
        activated,
    };
    let result = rt.block_on(serve(setup, init, remote));
    // Dropping the runtime waits for blocking tasks; do it with a bound.
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(log) => {
            log.shutdown();
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Setup {
    name: &'static str,
    args: Args,
    paths: Paths,
    config: DaemonConfig,
    config_path: PathBuf,
    activated: Vec<activation::ActivatedSocket>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sockets we bound ourselves are removed at exit; activated ones are systemd's.
struct OwnedSockets(Vec<PathBuf>);

impl Drop for OwnedSockets {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn listener_from_fd(fd: std::os::fd::OwnedFd) -> std::io::Result<UnixListener> {
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    std_listener.set_nonblocking(true)?;
    UnixListener::from_std(std_listener)
}

fn chown_group(path: &std::path::Path, group: &str) -> Result<(), BoxError> {
    if group.is_empty() {
        return Ok(());
    }
    let gid = match nix::unistd::Group::from_name(group)? {
        Some(g) => g.gid,
        None => match group.parse::<u32>() {
            Ok(n) => nix::unistd::Gid::from_raw(n),
            Err(_) => {
                return Err(
                    format!("Setting 'unix_sock_group': group '{group}' does not exist").into(),
                );
            }
        },
    };
    nix::unistd::chown(path, None, Some(gid))?;
    Ok(())
}

async fn serve<D, F, Fut>(
    setup: Setup,
    init: F,
    mut remote: Option<Box<dyn Remote>>,
) -> Result<logging::LogHandle, BoxError>
where
    D: Daemon,
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<D, BoxError>>,
{
    let Setup {
        name,
        args,
        paths,
        config,
        config_path,
        activated,
    } = setup;
    let log = logging::init(
        name,
        args.verbose,
        config.log_level,
        &config.log_filters,
        &config.log_outputs,
    )?;
    let started_at = SystemTime::now();
    // Take the signals before anything is reachable: a SIGTERM that comes
    // as soon as the sockets answer must stop the daemon cleanly, not kill
    // it with the default action (leaving sockets and pid file behind).
    // Signals that arrive before the main loop wait here until it runs.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let pid_path = args
        .pid_file
        .clone()
        .unwrap_or_else(|| paths.pid_file(name));
    let pid_file = sockets::PidFile::acquire(name, &pid_path)?;

    // === sockets ===
    let sock_dir = if config.unix_sock_dir.is_empty() {
        paths.run_dir.clone()
    } else {
        PathBuf::from(&config.unix_sock_dir)
    };
    let mut activated = activated;
    let mut listeners: Vec<(SocketKind, UnixListener)> = Vec::new();
    let mut served = Vec::new();
    let mut owned = OwnedSockets(Vec::new());
    for kind in [
        SocketKind::ReadWrite,
        SocketKind::ReadOnly,
        SocketKind::Admin,
    ] {
        let path = {
            let default = paths.socket(name, kind);
            sock_dir.join(default.file_name().unwrap_or_default())
        };
        if let Some(pos) = activated.iter().position(|a| a.kind == kind) {
            let a = activated.swap_remove(pos);
            tracing::info!(socket = kind.as_str(), fd_name = %a.name, "using activated socket");
            listeners.push((kind, listener_from_fd(a.fd)?));
            served.push(ServedSocket {
                kind,
                address: path.display().to_string(),
                activated: true,
            });
            continue;
        }
        let mode = match paths.mode {
            Mode::System => config.socket_mode(kind),
            Mode::Session => 0o600,
        };
        let std_listener = sockets::bind_unix(&path, mode)?;
        owned.0.push(path.clone());
        if paths.mode == Mode::System && kind != SocketKind::ReadOnly {
            chown_group(&path, &config.unix_sock_group)?;
        }
        listeners.push((kind, UnixListener::from_std(std_listener)?));
        served.push(ServedSocket {
            kind,
            address: path.display().to_string(),
            activated: false,
        });
    }
    // TCP/TLS: virtproxyd's alone (activated, or bound with --listen).
    match remote.as_mut() {
        Some(r) => served.extend(r.bind(&config, &paths, &mut activated, args.listen)?),
        None if args.listen => {
            return Err(format!("{name}: --listen: only virtproxyd listens on TCP").into());
        }
        None => {}
    }
    // Any activated socket left is one this daemon does not serve.
    for a in &activated {
        tracing::warn!(fd_name = %a.name, "ignoring activated socket this daemon does not serve");
    }
    let _ = std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o755));

    // === driver ===
    let clients = ClientRegistry::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Context {
        name,
        paths: paths.clone(),
        config: config.clone(),
        clients: clients.clone(),
        stopping: stop_rx.clone(),
    };
    let daemon = Arc::new(init(ctx).await?);
    // What init parsed and threw away (capabilities, definitions) goes
    // back to the system before the daemon settles.
    memory::trim();

    // === services ===
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for svc in daemon.service_names() {
        health_reporter
            .set_service_status(svc, tonic_health::ServingStatus::Serving)
            .await;
    }
    health_reporter
        .set_service_status(
            "virt.admin.v1.AdminService",
            tonic_health::ServingStatus::Serving,
        )
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = LazyReflection::default();

    let (reload_tx, mut reload_rx) = mpsc::channel::<()>(4);
    let daemon_for_probe = daemon.clone();
    let admin_state = Arc::new(admin::AdminState {
        name,
        version: VERSION,
        pid: std::process::id(),
        started_at,
        mode: paths.mode,
        config_file: config_path.clone(),
        sockets: served.clone(),
        clients: clients.clone(),
        log: log.clone(),
        reload: reload_tx,
        limits: std::sync::Mutex::new(admin::Limits::from_config(&config)),
        active: Box::new(move || daemon_for_probe.is_active()),
    });

    let service_routes = daemon
        .routes()
        .add_service(health_service.clone())
        .add_service(reflection.clone());
    let admin_routes = Routes::new(admin::admin_service(admin_state.clone()))
        .add_service(health_service)
        .add_service(reflection);

    let mut servers = tokio::task::JoinSet::new();
    let main_clients_admit = {
        let (clients, state) = (clients.clone(), admin_state.clone());
        move |admin_socket: bool| {
            // max_clients is per server, as in libvirt: the rw, ro, tcp
            // and tls sockets share the main server's limit, and
            // SetServerLimits changes it live.
            let max_clients = {
                let limits = state
                    .limits
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let l = if admin_socket {
                    &limits.admin
                } else {
                    &limits.main
                };
                l.max_clients.unwrap_or(u32::MAX)
            };
            let on_server = clients
                .list()
                .iter()
                .filter(|c| (c.socket == SocketKind::Admin) == admin_socket)
                .count();
            on_server < max_clients as usize
        }
    };
    let settings = |kind: SocketKind| ServerSettings {
        name,
        kind,
        max_requests: if kind == SocketKind::Admin {
            config.admin_max_client_requests
        } else {
            config.max_client_requests
        },
        reject_over_limit: name == crate::config::PROXY_DAEMON && kind != SocketKind::Admin,
        keepalive: keepalive(if kind == SocketKind::Admin {
            (
                config.admin_keepalive_interval,
                config.admin_keepalive_count,
            )
        } else {
            (config.keepalive_interval, config.keepalive_count)
        }),
    };
    for (kind, listener) in listeners {
        let routes = if kind == SocketKind::Admin {
            admin_routes.clone()
        } else {
            service_routes.clone()
        };
        let clients = clients.clone();
        let admit = main_clients_admit.clone();
        let incoming = futures::stream::unfold(listener, move |listener| {
            let clients = clients.clone();
            let admit = admit.clone();
            async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            if !admit(kind == SocketKind::Admin) {
                                tracing::warn!(
                                    socket = kind.as_str(),
                                    "client limit reached, refusing connection"
                                );
                                drop(stream);
                                continue;
                            }
                            let tracked = clients.track_unix(stream, kind);
                            return Some((Ok::<_, std::io::Error>(tracked), listener));
                        }
                        Err(e) => {
                            tracing::warn!(socket = kind.as_str(), "accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        })
        .boxed();
        spawn_server(
            &mut servers,
            settings(kind),
            routes,
            incoming,
            stop_rx.clone(),
        );
    }
    if let Some(r) = remote {
        let admit = main_clients_admit.clone();
        r.serve(RemoteServe {
            servers: &mut servers,
            settings: &settings,
            routes: service_routes.clone(),
            admit: Arc::new(move || admit(false)),
            clients: clients.clone(),
            dn_list: config.tls_allowed_dn_list.clone().map(Arc::from),
            stop: stop_rx.clone(),
        });
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(
        version = VERSION,
        mode = paths.mode.as_str(),
        run_dir = %paths.run_dir.display(),
        "{name} ready"
    );

    // === main loop ===
    let timeout = args.timeout.filter(|t| *t > 0).map(Duration::from_secs);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut idle_trim = memory::IdleTrim::default();
    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = sighup.recv() => reload(name, &config_path, &log, daemon.as_ref()).await,
            Some(()) = reload_rx.recv() => reload(name, &config_path, &log, daemon.as_ref()).await,
            Some(done) = servers.join_next() => {
                match done {
                    Ok(kind) => return Err(format!("{} socket server ended unexpectedly", kind.as_str()).into()),
                    Err(e) => return Err(format!("socket server task failed: {e}").into()),
                }
            }
            _ = tick.tick() => {
                idle_trim.tick();
                if let Some(limit) = timeout {
                    if daemon.is_active() {
                        clients.touch();
                    } else if clients.idle_for().is_some_and(|idle| idle >= limit) {
                        tracing::info!(timeout_secs = limit.as_secs(), "idle timeout: stopping");
                        break;
                    }
                }
            }
        }
    }

    // === stop ===
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(GRACEFUL_STOP, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight calls did not finish within {GRACEFUL_STOP:?}; closing them");
        servers.abort_all();
    }
    daemon.shutdown().await;
    drop(owned);
    drop(pid_file);
    tracing::info!("{name} stopped");
    Ok(log)
}

/// How one socket's server behaves.
#[derive(Clone, Copy, Debug)]
pub struct ServerSettings {
    name: &'static str,
    kind: SocketKind,
    /// `max_client_requests` (or the admin one).
    max_requests: u32,
    /// Refuse calls beyond `max_requests` with RESOURCE_EXHAUSTED (the
    /// proxy) instead of queueing them (the daemons, as libvirt).
    reject_over_limit: bool,
    /// HTTP/2 PING interval and how long an unanswered one may take.
    keepalive: Option<(Duration, Duration)>,
}

/// `keepalive_interval` / `keepalive_count` as HTTP/2 pings: a ping every
/// interval, the connection closed when none is answered for interval ×
/// count (libvirt's rule); an interval of -1 (or 0) disables them.
fn keepalive((interval, count): (i32, u32)) -> Option<(Duration, Duration)> {
    let secs = u64::try_from(interval).ok().filter(|s| *s > 0)?;
    let every = Duration::from_secs(secs);
    Some((every, every * count.max(1)))
}

/// How one socket's server ended: it serves until stopped, so only a
/// failure of its task ends it early.
pub type ServerResult = SocketKind;

/// Serves `routes` on the connections of `incoming` until `stop` turns
/// true: the trace layer, the access layer, the per-client call limit
/// (`serve`).
pub fn spawn_server<IO, S>(
    servers: &mut tokio::task::JoinSet<ServerResult>,
    s: ServerSettings,
    routes: Routes,
    incoming: S,
    stop: watch::Receiver<bool>,
) where
    S: futures::Stream<Item = std::io::Result<clients::TrackedStream<IO>>> + Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limit = s
        .reject_over_limit
        .then(|| limits::ClientCallLimitLayer::new(s.max_requests));
    let svc = tower::ServiceBuilder::new()
        .layer(crate::trace::TraceLayer::new(s.name))
        .layer(acl::AclLayer::new(s.kind))
        .option_layer(limit)
        .service(routes.prepare());
    let settings = serve::ConnSettings {
        keepalive: s.keepalive,
        queue_over: (!s.reject_over_limit).then_some(s.max_requests as usize),
    };
    let kind = s.kind;
    servers.spawn(async move {
        serve::serve(incoming, svc, settings, stop).await;
        kind
    });
}

async fn reload<D: Daemon>(
    name: &str,
    config_path: &std::path::Path,
    log: &logging::LogHandle,
    daemon: &D,
) {
    tracing::info!("reloading");
    match DaemonConfig::load(name, config_path, false) {
        Ok(c) => {
            if std::env::var_os("RUST_LOG").is_none()
                && !c.log_filters.is_empty()
                && let Err(e) = log.set_filters(&c.log_filters)
            {
                tracing::warn!("keeping log filters: {e}");
            }
            if let Err(e) = log.set_outputs(&c.log_outputs) {
                tracing::warn!("keeping log outputs: {e}");
            }
        }
        Err(e) => tracing::warn!("keeping the current config: {e}"),
    }
    if let Err(e) = daemon.reload().await {
        tracing::warn!("reload failed: {e}");
    }
    memory::trim();
}

/// The daemon's heap (glibc malloc).
///
/// The daemons hold little but allocate in bursts: init parses the QEMU
/// capabilities and every definition, throwing the XML trees away. glibc
/// gives each thread that allocates an arena of its own (up to 8 per
/// core), each keeping freed memory, so a daemon with a handful of
/// threads holds several partly used heaps. One arena (calls are short;
/// measured: no loss in per-call time on two cores) and a trim after the
/// bursts keep the resident set to what is live.
mod memory {
    /// The glibc tunable that turns malloc's per-thread caches off.
    const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";

    /// Runs the daemon without glibc's per-thread malloc caches: executes
    /// its own binary again (same pid, arguments and inherited file
    /// descriptors, so socket activation is unaffected) with
    /// `GLIBC_TUNABLES` naming [`NO_TCACHE`], which glibc reads only when a
    /// process starts. Nothing happens when the tunable is already set (by
    /// this or by the user, who may set another count) or outside glibc;
    /// when the exec fails the daemon goes on with the caches.
    ///
    /// Why: each thread's cache keeps up to seven freed chunks of every
    /// small size, out of reach of `malloc_trim`. Over a long run they fill
    /// for every size a call ever used, pinning heap pages: in the
    /// 100,000-call load (tests/src/load.rs) this was most of the daemons'
    /// resident growth after the first 1,000 calls (virtqemud +4..+17 %
    /// with the caches, −2..+2 % without). Throughput stayed within the
    /// load's run-to-run spread (3,860–3,920 calls/s without the caches,
    /// 3,930–4,640 with them, one arena: see [`limit_arenas`]).
    pub fn without_thread_caches() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            use std::os::unix::process::CommandExt as _;
            let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
            if current
                .split(':')
                .any(|t| t.starts_with("glibc.malloc.tcache_count="))
            {
                return;
            }
            let tunables = if current.is_empty() {
                NO_TCACHE.to_owned()
            } else {
                format!("{current}:{NO_TCACHE}")
            };
            let mut args = std::env::args_os();
            let Some(arg0) = args.next() else {
                return;
            };
            // The binary's own path rather than /proc/self/exe, which
            // would name the process "exe" (its comm is the file's name).
            let Ok(exe) = std::env::current_exe() else {
                return;
            };
            let e = std::process::Command::new(exe)
                .arg0(arg0)
                .args(args)
                .env("GLIBC_TUNABLES", tunables)
                .exec();
            eprintln!("warning: cannot run again without malloc's thread caches: {e}");
        }
    }

    /// One malloc arena. Call before any thread is started.
    pub fn limit_arenas() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets a malloc parameter; no thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }

    /// Trims the heap once calls stop: after a tick with calls, the first
    /// tick without any (see [`crate::trace::requests`]).
    #[derive(Debug, Default)]
    pub struct IdleTrim {
        seen: u64,
        busy: bool,
    }

    impl IdleTrim {
        /// Called every main-loop tick.
        pub fn tick(&mut self) {
            let now = crate::trace::requests();
            if now != self.seen {
                self.seen = now;
                self.busy = true;
            } else if self.busy {
                self.busy = false;
                trim();
            }
        }
    }

    /// Returns free heap pages to the system.
    pub fn trim() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim takes malloc's own lock; no pointers are passed.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// The gRPC reflection service, built on its first call: its state (the
/// decoded descriptors of every service, ~250 KB) is seldom needed, and
/// never by the daemons' own clients.
#[derive(Clone, Debug, Default)]
struct LazyReflection {
    inner: Arc<std::sync::OnceLock<Option<ReflectionService>>>,
}

type ReflectionService = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

impl tonic::server::NamedService for LazyReflection {
    const NAME: &'static str = "grpc.reflection.v1.ServerReflection";
}

impl tower::Service<http::Request<tonic::body::Body>> for LazyReflection {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        use tower::ServiceExt;
        let svc = self.inner.get_or_init(|| {
            match tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .build_v1()
            {
                Ok(s) => Some(ReflectionService::new(s)),
                Err(e) => {
                    tracing::error!("cannot build the reflection service: {e}");
                    None
                }
            }
        });
        match svc.clone() {
            Some(s) => Box::pin(s.oneshot(req)),
            None => Box::pin(futures::future::ready(Ok(tonic::Status::unavailable(
                "reflection is not available",
            )
            .into_http()))),
        }
    }
}
