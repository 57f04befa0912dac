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

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use common::domain::DomainDef;
use common::objlist::RawUuid;

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
    state: Mutex<DomainObjState>,
}

impl DomainObj {
    /// An inactive domain with definition `def`, shut off for an unknown
    /// reason (never started), as libvirt's `virDomainObjNew`.
    pub fn new_inactive(def: Arc<DomainDef>, persistent: bool, autostart: bool) -> DomainObj {
        let post_parse_failed = def.post_parse_failed;
        DomainObj {
            job: tokio::sync::Mutex::new(()),
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
            }),
        }
    }

    /// The state, locked. Keep the guard short: no `.await`, no I/O.
    // Every update under this lock is a handful of field assignments that
    // cannot panic halfway, so a poisoned lock still guards a consistent
    // state.
    pub fn lock(&self) -> MutexGuard<'_, DomainObjState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
