//! Volumes of domain disks, resolved through virtstoraged (libvirt's
//! `virDomainDiskTranslateSourcePool`).
//!
//! A `<disk type='volume'><source pool='P' volume='V'/>` is looked up with
//! GetVolumeXml on virtstoraged's read-write socket; its type (`file` or
//! `block`), path and format go into the live definition's source
//! ([`StorageSource::actual`](common::domain::device::storage::StorageSource)),
//! which the command line uses. The XML keeps the pool and volume.
//!
//! virtstoraged is reached lazily: only domains with volume disks need it.
//! When its socket does not answer and we may spawn it (no systemd socket
//! activation to do it for us), virtqemud starts the `virtstoraged` next
//! to its own binary, with the same `VIRT_ROOT`, and waits for its health.
//!
//! [`Peer`] is that way of reaching a peer daemon, shared with
//! virtnetworkd's client (`crate::network`): a peer that cannot be reached
//! gives NO_CONNECT (gRPC UNAVAILABLE) naming the daemon and its socket;
//! one virtqemud started and that exited at once fails the call at once,
//! with its exit status and last line of output (it writes to
//! `<log_dir>/<daemon>.log`). A lookup that fails because the connection
//! broke (the peer died or restarted under the call) is read-only and is
//! tried again on a new connection, for at most [`RETRY_BOUND`]
//! ([`retryable`], [`Retry`]); so are virtnetworkd's port calls, which are
//! made safe to repeat (`crate::network`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::domain::Device;
use common::domain::DomainDef;
use common::domain::device::storage::{ImageFormat, StorageType};
use common::paths::{Paths, SocketKind};
use common::trace::{TracedChannel, traced};
use common::{ErrorCode, ErrorDomain, VirtError};
use proto::storage::v1 as spb;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// What a volume turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedVolume {
    /// The pool.
    pub pool: String,
    /// The volume.
    pub volume: String,
    /// `file` or `block`.
    pub kind: StorageType,
    /// Its path on the host.
    pub path: String,
    /// Its format, when the volume says.
    pub format: Option<ImageFormat>,
}

/// The volumes (pool, volume) the disks of `def` name.
pub fn volumes_of(def: &DomainDef) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in &def.devices {
        if let Device::Disk(disk) = d
            && disk.src.kind == StorageType::Volume
            && let Some((pool, vol, _)) = &disk.src.pool
            && !out.iter().any(|(p, v)| p == pool && v == vol)
        {
            out.push((pool.clone(), vol.clone()));
        }
    }
    out
}

/// Fills the resolved volumes into the disks of `def` (path, actual type,
/// and the format when the disk names none).
pub fn apply(def: &mut DomainDef, resolved: &[ResolvedVolume]) {
    for d in &mut def.devices {
        let Device::Disk(disk) = d else { continue };
        if disk.src.kind != StorageType::Volume {
            continue;
        }
        let Some((pool, vol, _)) = &disk.src.pool else {
            continue;
        };
        if let Some(r) = resolved
            .iter()
            .find(|r| &r.pool == pool && &r.volume == vol)
        {
            disk.src.path = Some(r.path.clone());
            disk.src.actual = Some(r.kind);
            if disk.src.format.is_none() {
                disk.src.format = r.format;
            }
        }
    }
}

fn err(code: ErrorCode, msg: String) -> VirtError {
    VirtError::new(code, ErrorDomain::Storage, msg)
}

/// A peer daemon virtqemud calls (virtstoraged, virtnetworkd): how to
/// reach it, and whether to start it when it does not answer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The daemon, e.g. `virtstoraged`.
    pub name: &'static str,
    /// What it is, for messages: `storage daemon`.
    pub what: &'static str,
    /// The error domain of its failures.
    pub domain: ErrorDomain,
    /// Its read-write socket.
    pub socket: PathBuf,
    /// Whether virtqemud may start it.
    pub spawn: bool,
    /// Where a daemon virtqemud starts writes its output.
    pub log_dir: PathBuf,
}

impl Peer {
    /// Peer `name` of the daemons of `paths`.
    pub fn new(
        paths: &Paths,
        name: &'static str,
        what: &'static str,
        domain: ErrorDomain,
        spawn: bool,
    ) -> Peer {
        Peer {
            name,
            what,
            domain,
            socket: paths.socket(name, SocketKind::ReadWrite),
            spawn,
            log_dir: paths.log_dir.clone(),
        }
    }

    /// NO_CONNECT (gRPC UNAVAILABLE): the peer cannot be reached.
    pub fn unavailable(&self, why: impl std::fmt::Display) -> VirtError {
        VirtError::new(
            ErrorCode::NoConnect,
            self.domain,
            format!(
                "cannot reach the {} {} at '{}': {why}",
                self.what,
                self.name,
                self.socket.display()
            ),
        )
    }

    /// A connection to the peer: at once when it answers; else, when we
    /// may, it is started and waited for, at most `wait` (less when it
    /// exits first).
    ///
    /// # Errors
    /// NO_CONNECT naming the daemon, its socket and why.
    pub async fn connect(&self, wait: Duration) -> Result<Channel, VirtError> {
        // A peer that accepts but does not answer (stopped, wedged) costs
        // a call at most the bound.
        let bounded = Some(crate::bounds::monitor());
        let first = match common::client::connect_unix_bounded(&self.socket, bounded).await {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        let started = if self.spawn {
            spawn_peer(self.name, &self.log_dir)
        } else {
            None
        };
        let deadline = Instant::now() + wait;
        loop {
            let last = match common::client::connect_unix_bounded(&self.socket, bounded).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            if let Some(s) = &started
                && let Some(status) = s.exited()
            {
                return Err(self.unavailable(format!(
                    "{first}; it was not running, virtqemud started it and it exited ({status}){}",
                    s.last_line().map(|l| format!(": {l}")).unwrap_or_default()
                )));
            }
            if Instant::now() >= deadline {
                let tried = if started.is_some() {
                    "; virtqemud started it"
                } else if self.spawn {
                    "; it could not be started"
                } else {
                    ""
                };
                return Err(self.unavailable(format!(
                    "{first}{tried}; still not answering after {} ms: {last}",
                    wait.as_millis()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether a failed call of a peer failed in the transport (the
/// connection broke or could not be made: the peer died or restarted),
/// not in the peer's own handling, which always names its error.
pub fn retryable(s: &tonic::Status) -> bool {
    common::error::status_detail(s).is_none()
        && matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        )
}

/// How long a call that is safe to repeat is tried again after its
/// connection broke (the peer died or is restarting).
pub const RETRY_BOUND: Duration = Duration::from_secs(5);

/// The tries of a call that is safe to repeat: again after a broken
/// connection, with growing pauses (0.1 s doubling up to 1 s), until
/// [`RETRY_BOUND`] has passed.
#[derive(Debug)]
pub struct Retry {
    deadline: Instant,
    tries: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            deadline: Instant::now() + RETRY_BOUND,
            tries: 0,
        }
    }
}

impl Retry {
    /// After a broken try: waits and says whether to try again.
    pub async fn again(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        let pause = Duration::from_millis(100)
            .saturating_mul(1 << self.tries.min(4))
            .min(Duration::from_secs(1));
        self.tries += 1;
        tokio::time::sleep(pause).await;
        true
    }

    /// Whether a try broke already.
    pub fn retried(&self) -> bool {
        self.tries > 0
    }
}

/// virtstoraged, as a client of it.
#[derive(Debug)]
pub struct StorageClient {
    peer: Peer,
    channel: Mutex<Option<Channel>>,
}

/// How long a call waits for virtstoraged to answer (when virtqemud
/// starts it, or it is just restarting).
const CONNECT_WAIT: Duration = Duration::from_secs(5);

impl StorageClient {
    /// A client of the virtstoraged of `paths`; `spawn`: start it when it
    /// does not answer.
    pub fn new(paths: &Paths, spawn: bool) -> StorageClient {
        StorageClient {
            peer: Peer::new(
                paths,
                "virtstoraged",
                "storage daemon",
                ErrorDomain::Storage,
                spawn,
            ),
            channel: Mutex::new(None),
        }
    }

    /// A client whose calls carry the current span's trace context, so
    /// that virtstoraged's request span joins the caller's trace.
    async fn client(
        &self,
        wait: Duration,
    ) -> Result<StorageServiceClient<TracedChannel>, VirtError> {
        let mut ch = self.channel.lock().await;
        if let Some(c) = ch.as_ref() {
            return Ok(StorageServiceClient::new(traced(c.clone())));
        }
        let c = self.peer.connect(wait).await?;
        *ch = Some(c.clone());
        Ok(StorageServiceClient::new(traced(c)))
    }

    /// Forgets the connection (after an error, the daemon may have
    /// restarted).
    async fn reset(&self) {
        *self.channel.lock().await = None;
    }

    /// Waits, at most `bound`, until virtstoraged answers its health
    /// check (it has finished initialising and autostarting pools).
    pub async fn wait_ready(&self, bound: Duration) -> bool {
        wait_healthy(&self.peer.socket, bound).await
    }

    /// Resolves volume `vol` of pool `pool`. The lookup is read-only: when
    /// the connection breaks under it (virtstoraged died or restarted), it
    /// is tried once more on a new connection (which starts virtstoraged
    /// again when we may).
    ///
    /// # Errors
    /// virtstoraged cannot be reached (NO_CONNECT naming it), or does not
    /// know the volume.
    pub async fn resolve(&self, pool: &str, vol: &str) -> Result<ResolvedVolume, VirtError> {
        let req = spb::GetVolumeXmlRequest {
            volume: Some(spb::VolumeRef {
                by: Some(spb::volume_ref::By::PoolVolume(spb::PoolVolume {
                    pool: pool.to_owned(),
                    name: vol.to_owned(),
                })),
            }),
        };
        let fail = |e: VirtError| {
            VirtError::new(
                e.code,
                e.domain,
                format!(
                    "cannot resolve volume '{vol}' in pool '{pool}': {}",
                    e.message
                ),
            )
        };
        let mut retry = Retry::default();
        let xml = loop {
            let mut c = self.client(CONNECT_WAIT).await.map_err(fail)?;
            match c.get_volume_xml(req.clone()).await {
                Ok(r) => break r.into_inner().xml,
                Err(s) if retryable(&s) => {
                    self.reset().await;
                    if !retry.retried() {
                        tracing::warn!(
                            pool,
                            volume = vol,
                            "virtstoraged went away during a volume lookup ({}): trying again",
                            s.message()
                        );
                    }
                    if !retry.again().await {
                        return Err(fail(self.peer.unavailable(format!(
                            "the connection kept breaking for {} s: {}",
                            RETRY_BOUND.as_secs(),
                            s.message()
                        ))));
                    }
                }
                Err(s) => return Err(fail(VirtError::from_status(&s))),
            }
        };
        parse_volume(pool, vol, &xml)
    }

    /// Resolves the volumes of `def` for its start: a volume that cannot be
    /// resolved is left out when every disk using it may start without its
    /// source (`startupPolicy='optional'`), as libvirt drops such a disk's
    /// source when it cannot translate its pool and volume; the start's
    /// check of the disks' sources then empties or drops those disks.
    ///
    /// # Errors
    /// The first volume that cannot be resolved and is not optional.
    pub async fn resolve_for_start(
        &self,
        def: &DomainDef,
    ) -> Result<Vec<ResolvedVolume>, VirtError> {
        let mut out = Vec::new();
        for (pool, vol) in volumes_of(def) {
            match self.resolve(&pool, &vol).await {
                Ok(r) => out.push(r),
                Err(e) if crate::process::start::volume_may_be_missing(def, &pool, &vol) => {
                    tracing::warn!(
                        pool,
                        volume = vol,
                        "optional volume left out of this start: {}",
                        e.message
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Resolves every volume of `def`.
    ///
    /// # Errors
    /// The first volume that cannot be resolved.
    pub async fn resolve_all(&self, def: &DomainDef) -> Result<Vec<ResolvedVolume>, VirtError> {
        let mut out = Vec::new();
        for (pool, vol) in volumes_of(def) {
            out.push(self.resolve(&pool, &vol).await?);
        }
        Ok(out)
    }
}

/// Type, path and format from a volume's XML.
fn parse_volume(pool: &str, vol: &str, xml: &str) -> Result<ResolvedVolume, VirtError> {
    let bad = |why: &str| {
        err(
            ErrorCode::InternalError,
            format!("internal error: volume '{vol}' in pool '{pool}': {why}"),
        )
    };
    let root = common::xml::parse(xml).map_err(|e| bad(&e.to_string()))?;
    let target = root.child("target").ok_or_else(|| bad("no <target>"))?;
    let path = target
        .child("path")
        .map(|p| p.text().trim().to_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("no target path"))?;
    let kind = match root.attr("type").unwrap_or("file") {
        "file" => StorageType::File,
        "block" => StorageType::Block,
        other => {
            return Err(err(
                ErrorCode::ConfigUnsupported,
                format!(
                    "unsupported configuration: volume '{vol}' in pool '{pool}' is of type '{other}'"
                ),
            ));
        }
    };
    let format = target
        .child("format")
        .and_then(|f| f.attr("type"))
        .and_then(|t| t.parse::<ImageFormat>().ok());
    Ok(ResolvedVolume {
        pool: pool.to_owned(),
        volume: vol.to_owned(),
        kind,
        path,
        format,
    })
}

/// Waits, at most `bound`, until the daemon on `socket` answers its
/// health check as serving.
pub async fn wait_healthy(socket: &Path, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(c) = common::client::connect_unix(socket).await {
            let mut h = tonic_health::pb::health_client::HealthClient::new(c);
            let req = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(Ok(r)) = tokio::time::timeout(left, h.check(req)).await
                && r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts daemon `name` (`virtstoraged`, `virtnetworkd`) from our own
/// directory, detached (its own session), with our environment (so the
/// same `VIRT_ROOT`), its output to `<log dir>/<name>.log` of `paths`.
pub fn spawn_sibling(name: &str, paths: &Paths) {
    spawn_peer(name, &paths.log_dir);
}

/// A daemon virtqemud started.
#[derive(Debug)]
pub struct Started {
    status: Arc<OnceLock<std::process::ExitStatus>>,
    log: Option<PathBuf>,
    log_start: u64,
}

impl Started {
    /// Its exit status once it has exited.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.status.get().copied()
    }

    /// The last line it wrote since it was started.
    pub fn last_line(&self) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.log.as_ref()?).ok()?;
        let len = f.metadata().ok()?.len();
        let from = self.log_start.max(len.saturating_sub(4096));
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut text = String::new();
        f.take(4096).read_to_string(&mut text).ok()?;
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    }
}

fn spawn_peer(name: &str, log_dir: &Path) -> Option<Started> {
    let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
    else {
        tracing::warn!("{name} is not next to virtqemud: not starting it");
        return None;
    };
    start_detached(&bin, name, log_dir)
}

fn start_detached(bin: &Path, name: &str, log_dir: &Path) -> Option<Started> {
    use std::os::unix::process::CommandExt;
    let log = log_dir.join(format!("{name}.log"));
    let out = std::fs::create_dir_all(log_dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
        })
        .map_err(|e| {
            tracing::warn!(
                "cannot open {}: {e}; {name}'s output is lost",
                log.display()
            )
        })
        .ok();
    let log_start = out
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    let (stdout, stderr) = match out.as_ref().map(|f| (f.try_clone(), f.try_clone())) {
        Some((Ok(a), Ok(b))) => (a.into(), b.into()),
        _ => (std::process::Stdio::null(), std::process::Stdio::null()),
    };
    let mut c = std::process::Command::new(bin);
    c.stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: only setsid between fork and exec.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    match c.spawn() {
        Ok(mut child) => {
            tracing::info!(pid = child.id(), log = %log.display(), "started {name}");
            let status = Arc::new(OnceLock::new());
            let seen = status.clone();
            // Reap it when it exits (it may idle out, or fail at once).
            std::thread::spawn(move || {
                if let Ok(st) = child.wait() {
                    let _ = seen.set(st);
                }
            });
            Some(Started {
                status,
                log: out.map(|_| log),
                log_start,
            })
        }
        Err(e) => {
            tracing::error!("cannot start {}: {e}", bin.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_xml_gives_type_path_and_format() {
        let xml = "<volume type='file'><name>a.qcow2</name><target><path>/p/a.qcow2</path><format type='qcow2'/></target></volume>";
        let r = parse_volume("p", "a.qcow2", xml).expect("parse");
        assert_eq!(
            r,
            ResolvedVolume {
                pool: "p".into(),
                volume: "a.qcow2".into(),
                kind: StorageType::File,
                path: "/p/a.qcow2".into(),
                format: Some(ImageFormat::Qcow2),
            }
        );
        let lv =
            "<volume type='block'><name>lv</name><target><path>/dev/vg/lv</path></target></volume>";
        assert_eq!(
            parse_volume("vg", "lv", lv).expect("lv").kind,
            StorageType::Block
        );
        assert!(
            parse_volume(
                "p",
                "x",
                "<volume type='network'><target><path>x</path></target></volume>"
            )
            .is_err()
        );
    }
}
