//! `DomainObj`: one domain's runtime state next to its definitions, after
//! libvirt's `virDomainObj`.
//!
//! Two locks, taken in this order (see `docs/locking.md`):
//!
//! 1. [`DomainObj::job`], a `tokio::sync::Mutex`: serialises every change
//!    of the domain (define, undefine, autostart, later start/stop). It is
//!    held across `.await`s, e.g. while the definition file is written.
//! 2. [`DomainObj::state`], a `std::sync::Mutex` around [`DomainObjState`]:
//!    held only to read or swap fields, never across an `.await` or I/O.
//!    Readers (lookups, listing, XML) take only this one, so they never
//!    wait for a job.

use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use common::domain::DomainDef;
use common::objlist::{RawUuid, UuidStr};
use common::xml::FormatFlags;
use common::{ErrorCode, ErrorDomain, VirtError};
use tokio::sync::watch;

use crate::monitor::Monitor;
use crate::process::DomainPaths;
use crate::process::pidfd::PidFd;

/// libvirt's `virDomainState`, with its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainState {
    /// VIR_DOMAIN_NOSTATE
    NoState = 0,
    /// VIR_DOMAIN_RUNNING
    Running = 1,
    /// VIR_DOMAIN_BLOCKED
    Blocked = 2,
    /// VIR_DOMAIN_PAUSED
    Paused = 3,
    /// VIR_DOMAIN_SHUTDOWN
    Shutdown = 4,
    /// VIR_DOMAIN_SHUTOFF
    Shutoff = 5,
    /// VIR_DOMAIN_CRASHED
    Crashed = 6,
    /// VIR_DOMAIN_PMSUSPENDED
    PmSuspended = 7,
}

impl DomainState {
    /// libvirt's number.
    pub fn number(self) -> i32 {
        self as i32
    }

    /// The state with libvirt's number `n`.
    pub fn from_number(n: i32) -> Option<DomainState> {
        Some(match n {
            0 => DomainState::NoState,
            1 => DomainState::Running,
            2 => DomainState::Blocked,
            3 => DomainState::Paused,
            4 => DomainState::Shutdown,
            5 => DomainState::Shutoff,
            6 => DomainState::Crashed,
            7 => DomainState::PmSuspended,
            _ => return None,
        })
    }
}

/// VIR_DOMAIN_SHUTOFF_UNKNOWN: the reason of a domain that never ran.
pub const SHUTOFF_UNKNOWN: i32 = 0;

/// Name, UUID and id: how a domain is named in replies and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainIdent {
    /// The name.
    pub name: String,
    /// The UUID.
    pub uuid: RawUuid,
    /// The id while active.
    pub id: Option<i32>,
}

/// The mutable part of a domain, behind [`DomainObj::state`].
#[derive(Debug)]
pub struct DomainObjState {
    /// The definition in effect: the live one while active, else the
    /// persistent one.
    pub def: Arc<DomainDef>,
    /// The persistent definition for the next boot, when it was changed
    /// while the domain runs (libvirt's `newDef`).
    pub new_def: Option<Arc<DomainDef>>,
    /// The state.
    pub state: DomainState,
    /// The state's reason (libvirt's per-state reason number).
    pub reason: i32,
    /// The runtime id while active.
    pub id: Option<i32>,
    /// Whether the domain starts with the daemon.
    pub autostart: bool,
    /// Whether a definition file exists.
    pub persistent: bool,
    /// The stored definition failed the driver's post-parse at load; it is
    /// kept as parsed and must be completed before use.
    pub post_parse_failed: bool,
    /// Removed from the list; a job that waited for this object must look
    /// it up again.
    pub removed: bool,
    /// The QEMU process while active.
    pub runtime: Option<Arc<Runtime>>,
    /// A fake reboot is under way (persisted in the status file): the
    /// guest's SHUTDOWN means `system_reset` + `cont`, and the state stays
    /// running throughout.
    pub fake_reboot: bool,
    /// Why QEMU is being stopped, decided before it exits (destroy, guest
    /// shutdown, panic); an exit without one is a crash.
    pub stop_reason: Option<StopReason>,
    /// The reason for the next STOP event (a `stop` we sent).
    pub pause_reason: Option<i32>,
    /// A SHUTDOWN (or panic) that is turned into a reset was seen; the
    /// STOP QEMU sends after it is still to come and means nothing.
    pub stop_pending: bool,
    /// After a reconnect: volume disks not resolved yet (virtstoraged did
    /// not answer); retried in the background. The guest is unaffected.
    pub volumes_unresolved: bool,
    /// Aliases of devices whose unplug was requested (`device_del`) and
    /// not yet completed by QEMU's DEVICE_DELETED (persisted in the status
    /// file: a removal finishes also after a daemon restart).
    pub pending_removals: Vec<String>,
    /// The alias a detach call is waiting for right now: its
    /// DEVICE_DELETED wakes that call (through `changed`) instead of
    /// completing the removal on its own.
    pub removal_waiter: Option<String>,
    /// Aliases whose DEVICE_DELETED came while a detach call waited.
    pub removals_seen: Vec<String>,
    /// Re-adopted from what the host still showed (its status file was
    /// damaged) without a definition to go by: why. It runs, and can be
    /// stopped, paused and resumed; changes of its devices are refused.
    pub unmanaged: Option<String>,
    /// The XML last formatted for GetXml, see [`DomainObjState::cached_xml`].
    xml_cache: Option<XmlCache>,
}

/// A definition's formatted XML, valid while that very definition (the
/// same allocation) is in place: definitions are immutable behind their
/// `Arc`, so a changed domain has a new `Arc` and misses the cache. The
/// `Weak` keeps the old allocation from being reused while the entry
/// lives, so a pointer match always means the same definition.
#[derive(Debug)]
struct XmlCache {
    def: std::sync::Weak<DomainDef>,
    flags: FormatFlags,
    xml: Arc<str>,
}

/// Why a domain stopped: libvirt's shut-off reason and STOPPED detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest shut down (SHUTOFF_SHUTDOWN / STOPPED_SHUTDOWN).
    Shutdown,
    /// Destroyed by a request (SHUTOFF_DESTROYED / STOPPED_DESTROYED).
    Destroyed,
    /// QEMU died or the guest crashed (SHUTOFF_CRASHED / STOPPED_CRASHED).
    Crashed,
    /// The start failed after QEMU ran (SHUTOFF_FAILED / STOPPED_FAILED).
    Failed,
    /// QEMU died while the daemon was down (SHUTOFF_DAEMON /
    /// STOPPED_CRASHED).
    Daemon,
}

impl StopReason {
    /// libvirt's `virDomainShutoffReason`.
    pub fn shutoff_reason(self) -> i32 {
        match self {
            StopReason::Shutdown => reason::SHUTOFF_SHUTDOWN,
            StopReason::Destroyed => reason::SHUTOFF_DESTROYED,
            StopReason::Crashed => reason::SHUTOFF_CRASHED,
            StopReason::Failed => reason::SHUTOFF_FAILED,
            StopReason::Daemon => reason::SHUTOFF_DAEMON,
        }
    }

    /// libvirt's `VIR_DOMAIN_EVENT_STOPPED_*` detail.
    pub fn stopped_detail(self) -> i32 {
        match self {
            StopReason::Shutdown => 0,
            StopReason::Destroyed => 1,
            StopReason::Crashed | StopReason::Daemon => 2,
            StopReason::Failed => 5,
        }
    }
}

/// libvirt's state reasons this driver sets.
pub mod reason {
    /// VIR_DOMAIN_RUNNING_UNKNOWN
    pub const RUNNING_UNKNOWN: i32 = 0;
    /// VIR_DOMAIN_RUNNING_BOOTED
    pub const RUNNING_BOOTED: i32 = 1;
    /// VIR_DOMAIN_RUNNING_UNPAUSED
    pub const RUNNING_UNPAUSED: i32 = 5;
    /// VIR_DOMAIN_PAUSED_UNKNOWN
    pub const PAUSED_UNKNOWN: i32 = 0;
    /// VIR_DOMAIN_PAUSED_USER
    pub const PAUSED_USER: i32 = 1;
    /// VIR_DOMAIN_SHUTDOWN_USER
    pub const SHUTDOWN_USER: i32 = 1;
    /// VIR_DOMAIN_SHUTOFF_SHUTDOWN
    pub const SHUTOFF_SHUTDOWN: i32 = 1;
    /// VIR_DOMAIN_SHUTOFF_DESTROYED
    pub const SHUTOFF_DESTROYED: i32 = 2;
    /// VIR_DOMAIN_SHUTOFF_CRASHED
    pub const SHUTOFF_CRASHED: i32 = 3;
    /// VIR_DOMAIN_SHUTOFF_FAILED
    pub const SHUTOFF_FAILED: i32 = 6;
    /// VIR_DOMAIN_SHUTOFF_DAEMON
    pub const SHUTOFF_DAEMON: i32 = 8;
    /// VIR_DOMAIN_CRASHED_PANICKED
    pub const CRASHED_PANICKED: i32 = 1;
}

/// The monitor of a running domain as the reconnect left it.
#[derive(Clone, Debug)]
pub enum MonitorState {
    /// Connecting (after a daemon restart).
    Connecting,
    /// Connected.
    Connected(Monitor),
    /// The connection failed (the error); retried in the background.
    Failed(VirtError),
}

/// A running QEMU: what the driver holds while the domain is active.
#[derive(Debug)]
pub struct Runtime {
    /// QEMU's pid.
    pub pid: i32,
    /// Its start time (`/proc/PID/stat`).
    pub start_time: Option<u64>,
    /// Its pidfd.
    pub pidfd: PidFd,
    /// The process, when this daemon spawned it (to reap it).
    child: Mutex<Option<Child>>,
    /// Its files.
    pub paths: DomainPaths,
    monitor: watch::Sender<MonitorState>,
    /// Counts completed fake reboots (reboot requests wait on it).
    pub reboots: watch::Sender<u64>,
    /// Turns true once the stop is processed (state, files, events).
    pub stopped: watch::Sender<bool>,
}

impl Runtime {
    /// A runtime for a process, its monitor connected (or not yet).
    pub fn new(
        pid: i32,
        start_time: Option<u64>,
        pidfd: PidFd,
        child: Option<Child>,
        paths: DomainPaths,
        monitor: MonitorState,
    ) -> Runtime {
        Runtime {
            pid,
            start_time,
            pidfd,
            child: Mutex::new(child),
            paths,
            monitor: watch::Sender::new(monitor),
            reboots: watch::Sender::new(0),
            stopped: watch::Sender::new(false),
        }
    }

    /// The monitor; while a reconnect is still connecting, waits for it
    /// (bounded).
    ///
    /// # Errors
    /// OPERATION_FAILED when the monitor is not connected.
    pub async fn monitor(&self) -> Result<Monitor, VirtError> {
        let mut rx = self.monitor.subscribe();
        let wait = rx.wait_for(|m| !matches!(m, MonitorState::Connecting));
        let res = tokio::time::timeout(crate::bounds::monitor(), wait).await;
        let not_connected = |why: &str| {
            VirtError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                format!("operation failed: QEMU monitor is not connected: {why}"),
            )
        };
        match res {
            Ok(Ok(m)) => match &*m {
                MonitorState::Connected(m) => Ok(m.clone()),
                // Keeps the error's code: a QEMU that did not answer in
                // time is OPERATION_TIMEOUT.
                MonitorState::Failed(e) => Err(VirtError::new(
                    e.code,
                    ErrorDomain::Qemu,
                    format!("QEMU monitor is not connected: {}", e.message),
                )),
                MonitorState::Connecting => Err(not_connected("still connecting")),
            },
            _ => Err(not_connected("still connecting")),
        }
    }

    /// Sets the monitor state.
    pub fn set_monitor(&self, m: MonitorState) {
        self.monitor.send_replace(m);
    }

    /// Reaps the process if it is our child and has exited.
    pub fn reap(&self) {
        let mut c = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = c.as_mut()
            && matches!(child.try_wait(), Ok(Some(_)))
        {
            *c = None;
        }
    }
}

impl DomainObjState {
    /// Whether a QEMU process exists for it.
    pub fn is_active(&self) -> bool {
        self.id.is_some()
    }

    /// The persistent definition (the next-boot one if there is one).
    pub fn persistent_def(&self) -> &Arc<DomainDef> {
        self.new_def.as_ref().unwrap_or(&self.def)
    }

    /// The XML of `def` formatted with `flags`, if it is the one cached.
    pub fn cached_xml(&self, def: &Arc<DomainDef>, flags: FormatFlags) -> Option<Arc<str>> {
        self.xml_cache
            .as_ref()
            .filter(|c| c.flags == flags && std::ptr::eq(c.def.as_ptr(), Arc::as_ptr(def)))
            .map(|c| Arc::clone(&c.xml))
    }

    /// Remembers `xml` as `def` formatted with `flags` (one entry per
    /// domain: the last one wins).
    pub fn cache_xml(&mut self, def: &Arc<DomainDef>, flags: FormatFlags, xml: Arc<str>) {
        self.xml_cache = Some(XmlCache {
            def: Arc::downgrade(def),
            flags,
            xml,
        });
    }

    /// Name, UUID and id.
    pub fn ident(&self) -> DomainIdent {
        DomainIdent {
            name: self.def.name.clone(),
            uuid: self.def.uuid.0,
            id: self.id,
        }
    }
}

/// One domain. Shared as `Arc<DomainObj>` by the list and the callers.
#[derive(Debug)]
pub struct DomainObj {
    /// Serialises changes of this domain; held across `.await`.
    pub job: tokio::sync::Mutex<()>,
    /// Woken after the watcher changed the state from a QMP event (a job
    /// waits here for the event its command causes).
    pub changed: tokio::sync::Notify,
    /// Serialises writing and removing the status file (held across that
    /// blocking I/O, never across an `.await`), so that a write that
    /// raced with the stop cannot leave a file behind.
    pub status_io: Mutex<()>,
    /// The UUID, formatted once (it never changes for an object).
    pub uuid_str: UuidStr,
    state: Mutex<DomainObjState>,
}

impl DomainObj {
    /// An inactive domain with definition `def`, shut off for an unknown
    /// reason (never started), as libvirt's `virDomainObjNew`.
    pub fn new_inactive(def: Arc<DomainDef>, persistent: bool, autostart: bool) -> DomainObj {
        let post_parse_failed = def.post_parse_failed;
        DomainObj {
            job: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            status_io: Mutex::new(()),
            uuid_str: UuidStr::new(&def.uuid.0),
            state: Mutex::new(DomainObjState {
                def,
                new_def: None,
                state: DomainState::Shutoff,
                reason: SHUTOFF_UNKNOWN,
                id: None,
                autostart,
                persistent,
                post_parse_failed,
                removed: false,
                runtime: None,
                fake_reboot: false,
                stop_reason: None,
                pause_reason: None,
                stop_pending: false,
                volumes_unresolved: false,
                pending_removals: Vec::new(),
                removal_waiter: None,
                removals_seen: Vec::new(),
                unmanaged: None,
                xml_cache: None,
            }),
        }
    }

    /// The job, for a call that changes this domain: waits at most
    /// [`crate::bounds::monitor`] for the change another call is making
    /// (which may be waiting for a QEMU that does not answer).
    ///
    /// # Errors
    /// OPERATION_TIMEOUT, libvirt's "cannot acquire state change lock".
    pub async fn begin_job(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, VirtError> {
        let bound = crate::bounds::monitor();
        match tokio::time::timeout(bound, self.job.lock()).await {
            Ok(g) => Ok(g),
            Err(_) => Err(VirtError::new(
                ErrorCode::OperationTimeout,
                ErrorDomain::Qemu,
                format!(
                    "Timed out during operation: cannot acquire state change lock: another \
                     operation on domain '{}' has been running for more than {:?}",
                    self.lock_to_read().def.name,
                    bound
                ),
            )),
        }
    }

    /// The state, locked. Keep the guard short: no `.await`, no I/O.
    ///
    /// Every call counts as a possible change of the state (see
    /// [`state_generation`]).
    // Every update under this lock is a handful of field assignments that
    // cannot panic halfway, so a poisoned lock still guards a consistent
    // state.
    pub fn lock(&self) -> MutexGuard<'_, DomainObjState> {
        let guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted with the lock held, before any change: whoever reads the
        // new count and then takes this lock sees the change.
        STATE_GENERATION.fetch_add(1, Ordering::Release);
        guard
    }

    /// The state, locked, for a reader that changes nothing and so does
    /// not count as a change (listings). Never change the state through
    /// it: cached listings would not notice.
    pub(crate) fn lock_to_read(&self) -> MutexGuard<'_, DomainObjState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts [`DomainObj::lock`] calls of every domain of the process.
static STATE_GENERATION: AtomicU64 = AtomicU64::new(0);

/// A number that changes whenever any domain's state may have changed: a
/// listing made after reading it (taking each domain's lock with
/// [`DomainObj::lock_to_read`]) stays true while it stays the same. Lookups
/// and other readers count too, so it changes more often than needed,
/// never less.
pub fn state_generation() -> u64 {
    STATE_GENERATION.load(Ordering::Acquire)
}
