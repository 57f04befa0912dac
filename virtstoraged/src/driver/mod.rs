//! The storage driver: plain Rust types, no gRPC.
//!
//! It owns the pools ([`ObjList`] of [`PoolObj`], each with its volumes),
//! their definition files (`<config>/storage`, [`ConfigStore`]), the state
//! files of active pools (`<run>/storage`) and the event bus. Mechanisms
//! are the backends ([`crate::backend`]).
//!
//! Initialisation ([`StorageDriver::init`]) loads the definitions, brings
//! back the pools a previous daemon left active (their state file exists
//! and their storage is still there: refreshed; otherwise inactive), then
//! autostarts pools once per host boot. `common::daemon::run` serves the
//! sockets only after `init` returns, and binds them before: a client that
//! connects meanwhile waits in the listen backlog, so no call ever sees a
//! half-initialised driver.
//!
//! Locking: see [`crate::pool_obj`] and `docs/storage.md`.

mod pools;
mod stream;
mod volumes;

pub use stream::{Chunk, Download, Upload};
pub use volumes::{VolIdent, VolInfo, VolRef};

use std::path::PathBuf;
use std::sync::Arc;

use common::VirtError;
use common::configstore::ConfigStore;
use common::daemon::Context;
use common::events::{EventBus, Subscription};
use common::objlist::{ObjKind, ObjList, ObjRef, format_uuid};
use common::storage::{ParseFlags, PoolDef, PoolType};

use crate::backend::{self, Backend};
use crate::error::{self, blocking};
use crate::event::{EventBody, Lifecycle, PoolEvent};
use crate::pool_obj::{PoolIdent, PoolObj, PoolObjState, PoolSizes};

/// The header's editing command of pool definition files.
const EDIT_COMMAND: &str = "pool-edit";

/// The marker that autostart ran in this host boot (the run directory is
/// a tmpfs).
const AUTOSTARTED: &str = "autostarted";

/// Which pools [`StorageDriver::list_pools`] returns; `None`/empty: any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolFilter {
    /// Active (true) or inactive (false).
    pub active: Option<bool>,
    /// Persistent (true) or transient (false).
    pub persistent: Option<bool>,
    /// With (true) or without (false) autostart.
    pub autostart: Option<bool>,
    /// Of one of these types.
    pub types: Vec<PoolType>,
}

/// libvirt's `virStoragePoolState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolState {
    /// VIR_STORAGE_POOL_INACTIVE
    Inactive = 0,
    /// VIR_STORAGE_POOL_RUNNING
    Running = 2,
}

/// libvirt's `virStoragePoolInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolInfo {
    /// The state.
    pub state: PoolState,
    /// Sizes.
    pub sizes: PoolSizes,
}

/// The driver.
#[derive(Debug)]
pub struct StorageDriver {
    store: ConfigStore,
    states: ConfigStore,
    state_dir: PathBuf,
    pools: ObjList<PoolObj>,
    events: EventBus<PoolEvent>,
}

/// The backend of a pool type.
///
/// # Errors
/// NO_SUPPORT for types this daemon has no backend for.
pub fn backend_of(t: PoolType) -> Result<&'static dyn Backend, VirtError> {
    backend::for_type(t).ok_or_else(|| {
        error::no_support(format!(
            "missing backend for pool type '{t}' (supported: dir, fs, netfs, logical)"
        ))
    })
}

// === impl StorageDriver ===

impl StorageDriver {
    /// The driver of daemon `ctx`, initialised (see the module docs).
    pub async fn new(ctx: &Context) -> Arc<StorageDriver> {
        let d = Arc::new(StorageDriver::with_dirs(
            ctx.paths.driver_config_dir("storage"),
            ctx.paths.driver_run_dir("storage"),
        ));
        d.init().await;
        d
    }

    /// A driver keeping definitions in `config_dir` and state files in
    /// `state_dir`; nothing loaded yet.
    pub fn with_dirs(config_dir: PathBuf, state_dir: PathBuf) -> StorageDriver {
        StorageDriver {
            store: ConfigStore::new(config_dir, EDIT_COMMAND),
            states: ConfigStore::new(state_dir.clone(), EDIT_COMMAND),
            state_dir,
            pools: ObjList::new(ObjKind::STORAGE_POOL),
            events: EventBus::default(),
        }
    }

    /// Loads definitions, restores the pools that were active, autostarts
    /// (once per host boot).
    pub async fn init(self: &Arc<Self>) {
        let t0 = std::time::Instant::now();
        self.load_definitions();
        self.restore_states().await;
        self.autostart_once().await;
        tracing::info!(
            pools = self.pools.len(),
            elapsed_ms = t0.elapsed().as_millis(),
            "storage driver initialised"
        );
    }

    // === loading ===

    /// Loads every stored definition not loaded yet (at start and on
    /// reload). A file that does not parse, or names another pool, is
    /// logged and left untouched.
    pub fn load_definitions(&self) -> usize {
        let (stored, unreadable) = match self.store.scan() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return 0;
            }
        };
        for u in unreadable {
            tracing::error!(file = %u.path.display(), "Failed to load config file: {}", u.error);
        }
        let flags = ParseFlags {
            inactive: true,
            ..ParseFlags::default()
        };
        let mut loaded = 0;
        for sd in stored {
            if self.pools.find_by_name(&sd.name).is_some() {
                continue;
            }
            let def = match PoolDef::parse_str(&sd.xml, flags) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(file = %sd.path.display(), "Failed to load config for storage pool '{}': {e}; the file is left untouched", sd.name);
                    continue;
                }
            };
            if def.name != sd.name {
                tracing::error!(file = %sd.path.display(), "Failed to load config for storage pool '{}': it defines pool '{}'", sd.name, def.name);
                continue;
            }
            let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
            let obj = Arc::new(PoolObj::new(Arc::new(def), true, sd.autostart));
            match self.pools.insert(&sd.name, &uuid, obj) {
                Ok(()) => loaded += 1,
                Err(e) => tracing::error!(
                    "Failed to load config for storage pool '{}': {}",
                    sd.name,
                    e.message
                ),
            }
        }
        loaded
    }

    /// Brings back the pools whose state file says they were active: those
    /// whose storage is still there stay active (stale partial volumes
    /// removed, refreshed); the others become inactive and their state
    /// file goes. Pools are checked in parallel.
    async fn restore_states(self: &Arc<Self>) {
        let (stored, _) = match self.states.scan() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        for sd in stored {
            let def = match parse_state(&sd.xml) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(file = %sd.path.display(), "Failed to load state of storage pool '{}': {e}", sd.name);
                    continue;
                }
            };
            if def.name != sd.name {
                continue;
            }
            let this = self.clone();
            tasks.spawn(async move { this.restore_one(def).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn restore_one(&self, def: PoolDef) {
        let name = def.name.clone();
        let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
        let def = Arc::new(def);
        let obj = match self.pools.find_by_name(&name) {
            Some(e) if e.uuid == uuid => e.obj,
            Some(_) => {
                tracing::error!(pool = %name, "state file names another UUID than the definition; ignored");
                let _ = self.remove_state(&name).await;
                return;
            }
            None => {
                let obj = Arc::new(PoolObj::new(def.clone(), false, false));
                if self.pools.insert(&name, &uuid, obj.clone()).is_err() {
                    return;
                }
                obj
            }
        };
        let _job = obj.job.write().await;
        let backend = match backend_of(def.pool_type) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(pool = %name, "{e}");
                return;
            }
        };
        let alive = backend.check(def.clone()).await.unwrap_or_else(|e| {
            tracing::warn!(pool = %name, "checking the pool failed: {e}");
            false
        });
        if alive {
            backend.cleanup(def.clone()).await;
            match backend.refresh(def.clone(), Default::default()).await {
                Ok(r) => {
                    let mut st = obj.lock();
                    if *st.def != *def {
                        // The live definition differs from the stored
                        // one, which becomes the next one.
                        st.new_def = Some(st.def.clone());
                        st.def = def.clone();
                    }
                    st.active = true;
                    st.sizes = r.sizes;
                    st.vols.replace(r.vols);
                    st.target_dev = backend.target_dev(&st.def);
                    tracing::info!(pool = %name, volumes = st.vols.len(), "pool still active");
                    return;
                }
                Err(e) => tracing::warn!(pool = %name, "refresh failed, pool is now inactive: {e}"),
            }
        } else {
            tracing::info!(pool = %name, "pool storage is gone; the pool is inactive");
        }
        let _ = self.remove_state(&name).await;
        let transient = {
            let mut st = obj.lock();
            st.deactivate();
            if st.persistent {
                false
            } else {
                st.removed = true;
                true
            }
        };
        if transient {
            self.pools.remove(&uuid);
        }
    }

    /// Starts every inactive autostart pool, once per host boot (the
    /// marker is written once something was started).
    async fn autostart_once(self: &Arc<Self>) {
        let marker = self.state_dir.join(AUTOSTARTED);
        if marker.exists() {
            tracing::debug!("autostart already ran in this boot");
            return;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for e in self.pools.snapshot() {
            let (auto, active) = {
                let st = e.obj.lock();
                (st.autostart, st.active)
            };
            if auto && !active {
                let this = self.clone();
                let name = e.name.clone();
                tasks.spawn(async move {
                    if let Err(err) = this
                        .start_pool(&ObjRef::Name(name.clone()), backend::BuildFlags::default(), false)
                        .await
                    {
                        tracing::error!(pool = %name, "Failed to autostart storage pool '{name}': {err}");
                    }
                });
            }
        }
        if tasks.is_empty() {
            // Nothing to start: no marker, so pools marked for autostart
            // later in this boot still start with the next daemon.
            return;
        }
        while tasks.join_next().await.is_some() {}
        let dir = self.state_dir.clone();
        let _ = blocking(move || {
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join(AUTOSTARTED), b""))
                .map_err(|e| error::sys("cannot write the autostart marker", &e))
        })
        .await;
    }

    // === lookups ===

    fn not_found(&self, r: &ObjRef) -> VirtError {
        let kind = self.pools.kind();
        match r {
            ObjRef::Name(n) => kind.no_name(n),
            ObjRef::Uuid(u) => kind.no_uuid(&format_uuid(u)),
            ObjRef::Id(i) => kind.no_id(*i),
        }
    }

    /// The pool `r` names.
    fn find(&self, r: &ObjRef) -> Result<Arc<PoolObj>, VirtError> {
        let obj = self.pools.lookup(r)?.obj;
        if obj.lock().removed {
            return Err(self.not_found(r));
        }
        Ok(obj)
    }

    /// Whether an active pool's storage is still there; a pool whose
    /// target vanished becomes inactive here (STOPPED is published), so it
    /// reports inactive instead of failing every call.
    fn check_alive(&self, obj: &Arc<PoolObj>) -> bool {
        let (def, dev) = {
            let st = obj.lock();
            if !st.active {
                return false;
            }
            (st.def.clone(), st.target_dev)
        };
        let Some(b) = backend::for_type(def.pool_type) else {
            return true;
        };
        if b.target_alive(&def, dev) != Some(false) {
            return true;
        }
        self.deactivate_vanished(obj, &def);
        false
    }

    fn deactivate_vanished(&self, obj: &Arc<PoolObj>, def: &Arc<PoolDef>) {
        let (ident, transient) = {
            let mut st = obj.lock();
            if !st.active || !Arc::ptr_eq(&st.def, def) {
                return;
            }
            st.deactivate();
            let transient = !st.persistent;
            if transient {
                st.removed = true;
            }
            (st.ident(), transient)
        };
        tracing::warn!(pool = %ident.name, "the target of storage pool '{}' vanished; the pool is now inactive", ident.name);
        if transient {
            self.pools.remove(&ident.uuid);
        }
        let states = self.states.clone();
        let name = ident.name.clone();
        tokio::task::spawn_blocking(move || {
            let _ = states.delete(&name);
        });
        self.publish(ident, EventBody::Lifecycle(Lifecycle::Stopped));
    }

    /// The active pool `r` names, checked alive.
    fn find_active(&self, r: &ObjRef) -> Result<Arc<PoolObj>, VirtError> {
        let obj = self.find(r)?;
        if !self.check_alive(&obj) {
            let name = obj.lock().def.name.clone();
            return Err(error::not_active(&name));
        }
        Ok(obj)
    }

    // === state files ===

    async fn save_state(&self, def: &PoolDef) -> Result<(), VirtError> {
        let xml = common::xml::Element::new("poolstate")
            .with_child(def.to_element())
            .to_xml();
        let states = self.states.clone();
        let name = def.name.clone();
        blocking(move || {
            states.save(&name, &xml).map_err(|e| {
                error::sys(
                    "cannot write the pool state file",
                    &std::io::Error::other(e),
                )
            })
        })
        .await
    }

    async fn remove_state(&self, name: &str) -> Result<(), VirtError> {
        let states = self.states.clone();
        let name = name.to_owned();
        blocking(move || {
            states.delete(&name).map_err(|e| {
                error::sys(
                    "cannot remove the pool state file",
                    &std::io::Error::other(e),
                )
            })
        })
        .await
    }

    // === events ===

    fn publish(&self, pool: PoolIdent, body: EventBody) {
        let seq = self.events.publish(PoolEvent { pool, body });
        tracing::debug!(seq, "storage pool event published");
    }

    /// Subscribes to pool events (see [`EventBus::subscribe`]).
    pub fn watch(&self, resume_after: Option<u64>) -> Subscription<PoolEvent> {
        self.events.subscribe(resume_after)
    }

    /// Ends every event stream (the daemon is stopping).
    pub fn close_events(&self) {
        self.events.close();
    }

    /// Whether any pool is active. Active pools need no running daemon
    /// (nothing of theirs lives in it), so this does not keep the daemon
    /// from its idle timeout; it is informational.
    pub fn any_active(&self) -> bool {
        self.pools.snapshot().iter().any(|e| e.obj.lock().active)
    }
}

/// Parses a state file: `<poolstate><pool .../></poolstate>`.
fn parse_state(xml: &str) -> Result<PoolDef, String> {
    let root = common::xml::parse(xml).map_err(|e| e.to_string())?;
    if root.name != "poolstate" {
        return Err(format!("unexpected root element <{}>", root.name));
    }
    let pool = root
        .child("pool")
        .ok_or_else(|| "no <pool> in the state file".to_owned())?;
    PoolDef::parse_element(pool, ParseFlags::default()).map_err(|e| e.to_string())
}

/// Clones `st`'s definition with sizes filled in, for formatting.
fn def_with_sizes(st: &PoolObjState, inactive: bool, live: Option<PoolSizes>) -> PoolDef {
    let (mut def, sizes) = if inactive && st.new_def.is_some() {
        (PoolDef::clone(st.persistent_def()), PoolSizes::default())
    } else {
        (PoolDef::clone(&st.def), live.unwrap_or(st.sizes))
    };
    def.capacity = sizes.capacity;
    def.allocation = sizes.allocation;
    def.available = sizes.available;
    def
}
