//! One network: its definitions, state and ports (libvirt's
//! `virNetworkObj`), and the events about it.
//!
//! Locks (`docs/network.md`): `job` serialises changes and is the only
//! lock held across an `.await`; the state mutex is held for field access
//! only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use common::network::NetworkDef;
use common::network::port::PortDef;
use common::objlist::RawUuid;

use crate::status::Runtime;

/// What a listing or an event shows of a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The name.
    pub name: String,
    /// The UUID.
    pub uuid: RawUuid,
    /// Started.
    pub active: bool,
    /// Has a definition file.
    pub persistent: bool,
    /// Starts with the daemon.
    pub autostart: bool,
    /// The bridge name, empty without one.
    pub bridge: String,
}

/// The mutable part of a network.
#[derive(Debug)]
pub struct NetworkState {
    /// The current definition: the live one while active.
    pub def: Arc<NetworkDef>,
    /// The persistent definition to use at the next start, when it was
    /// changed while the network runs (libvirt's `newDef`).
    pub new_def: Option<Arc<NetworkDef>>,
    /// Whether it runs.
    pub active: bool,
    /// Whether it has a definition file.
    pub persistent: bool,
    /// Whether its autostart link exists.
    pub autostart: bool,
    /// Set once it left the list (undefined, or a transient one stopped):
    /// a job that waited for it must not act on it.
    pub removed: bool,
    /// The host side while active.
    pub runtime: Option<Runtime>,
    /// Its ports by UUID.
    pub ports: BTreeMap<[u8; 16], PortDef>,
    /// Whether a task supervises its dnsmasq (`driver::supervise`).
    pub supervised: bool,
}

impl NetworkState {
    /// The persistent definition (for `inactive` XML and define).
    pub fn persistent_def(&self) -> Arc<NetworkDef> {
        self.new_def.clone().unwrap_or_else(|| self.def.clone())
    }

    /// What listings show.
    pub fn info(&self) -> NetworkInfo {
        NetworkInfo {
            name: self.def.name.clone(),
            uuid: self.def.uuid.map(|u| u.0).unwrap_or_default(),
            active: self.active,
            persistent: self.persistent,
            autostart: self.autostart,
            bridge: self.def.bridge.name.clone().unwrap_or_default(),
        }
    }
}

/// A network.
#[derive(Debug)]
pub struct NetworkObj {
    /// The right to change it; held across awaits.
    pub job: tokio::sync::Mutex<()>,
    state: Mutex<NetworkState>,
}

impl NetworkObj {
    /// A network with definition `def`, not running.
    pub fn new(def: Arc<NetworkDef>, persistent: bool, autostart: bool) -> NetworkObj {
        NetworkObj {
            job: tokio::sync::Mutex::new(()),
            state: Mutex::new(NetworkState {
                def,
                new_def: None,
                active: false,
                persistent,
                autostart,
                removed: false,
                runtime: None,
                ports: BTreeMap::new(),
                supervised: false,
            }),
        }
    }

    /// The state, locked (for field access only; never across I/O).
    pub fn lock(&self) -> MutexGuard<'_, NetworkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// libvirt's network lifecycle events (`virNetworkEventLifecycleType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Defined.
    Defined = 0,
    /// Undefined.
    Undefined = 1,
    /// Started.
    Started = 2,
    /// Stopped.
    Stopped = 3,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkEvent {
    /// The network as it was.
    pub network: NetworkInfo,
    /// What happened.
    pub event: Lifecycle,
}
