//! `PoolObj`: one pool's runtime state next to its definitions, after
//! libvirt's `virStoragePoolObj`, with the volumes it holds.
//!
//! Two locks, in this order (`docs/storage.md`):
//!
//! 1. [`PoolObj::job`], a `tokio::sync::RwLock`: pool changes (define over
//!    it, undefine, build, start, destroy, delete, refresh, autostart)
//!    take it exclusively; volume changes (create, clone, delete, wipe,
//!    resize) take it shared, so they run side by side but never during a
//!    pool change. Held across `.await`.
//! 2. [`PoolObj::lock`], a `std::sync::Mutex` around [`PoolObjState`]:
//!    held only to read or swap fields (no I/O, no `.await`). Lookups and
//!    listings take only this one.
//!
//! Volumes a change is working on are marked in the state
//! ([`PoolObjState::reserved`] for names being created or deleted,
//! [`PoolObjState::busy`] for volumes streamed, cloned from, wiped or
//! resized), so conflicting changes are refused at once instead of
//! waiting.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use common::objlist::RawUuid;
use common::storage::{PoolDef, VolDef};

use crate::probe::Stamp;

/// Capacity, allocation and available bytes of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSizes {
    /// Total bytes.
    pub capacity: u64,
    /// Bytes in use.
    pub allocation: u64,
    /// Bytes free.
    pub available: u64,
}

/// One volume of an active pool.
#[derive(Clone, Debug)]
pub struct Vol {
    /// Its definition as the last refresh saw it (name, key, path,
    /// sizes, format, ...).
    pub def: Arc<VolDef>,
    /// The file stamp that refresh probed (file volumes), so an unchanged
    /// file is not probed again.
    pub stamp: Option<Stamp>,
}

/// How a volume is in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Busy {
    /// Readers (downloads, clone sources).
    pub readers: u32,
    /// A writer (upload, wipe, resize, delete) has it.
    pub writer: bool,
}

/// Name, UUID and flags: how a pool is named in replies and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolIdent {
    /// The name.
    pub name: String,
    /// The UUID.
    pub uuid: RawUuid,
    /// Whether it is active.
    pub active: bool,
    /// Whether it has a definition file.
    pub persistent: bool,
    /// Whether it autostarts.
    pub autostart: bool,
}

/// The mutable part of a pool, behind [`PoolObj::lock`].
#[derive(Debug)]
pub struct PoolObjState {
    /// The definition in effect: the live one while active, else the
    /// persistent one.
    pub def: Arc<PoolDef>,
    /// The persistent definition, when it was redefined while active
    /// (libvirt's `newDef`).
    pub new_def: Option<Arc<PoolDef>>,
    /// Whether the pool is started.
    pub active: bool,
    /// Whether it starts with the daemon.
    pub autostart: bool,
    /// Whether a definition file exists.
    pub persistent: bool,
    /// Removed from the list; a job that waited for it must stop.
    pub removed: bool,
    /// Sizes as last seen.
    pub sizes: PoolSizes,
    /// The volumes, by name (sorted, as listings want them).
    pub vols: BTreeMap<String, Vol>,
    /// Names a create or delete is working on.
    pub reserved: HashSet<String>,
    /// Volumes in use.
    pub busy: HashMap<String, Busy>,
    /// Streams and clones running from or into this pool (a destroy must
    /// wait for none).
    pub async_jobs: u32,
    /// `st_dev` of the target directory when the pool started (fs and
    /// netfs: the mounted file system), to notice it vanish.
    pub target_dev: Option<u64>,
}

impl PoolObjState {
    /// Name, UUID and flags.
    pub fn ident(&self) -> PoolIdent {
        PoolIdent {
            name: self.def.name.clone(),
            uuid: self.def.uuid.map(|u| u.0).unwrap_or_default(),
            active: self.active,
            persistent: self.persistent,
            autostart: self.autostart,
        }
    }

    /// The persistent definition.
    pub fn persistent_def(&self) -> &Arc<PoolDef> {
        self.new_def.as_ref().unwrap_or(&self.def)
    }

    /// Becomes inactive: volumes forgotten, the persistent definition back
    /// in effect.
    pub fn deactivate(&mut self) {
        self.active = false;
        self.vols.clear();
        self.busy.clear();
        self.target_dev = None;
        if let Some(d) = self.new_def.take() {
            self.def = d;
        }
    }

    /// Marks `name` in use; `writer` for exclusive use.
    ///
    /// # Errors
    /// The conflicting use, in words.
    pub fn acquire(&mut self, name: &str, writer: bool) -> Result<(), &'static str> {
        if self.reserved.contains(name) {
            return Err("is being created or deleted");
        }
        let b = self.busy.entry(name.to_owned()).or_default();
        if b.writer || (writer && b.readers > 0) {
            return Err("is in use");
        }
        if writer {
            b.writer = true;
        } else {
            b.readers += 1;
        }
        Ok(())
    }

    /// Undoes [`PoolObjState::acquire`].
    pub fn release(&mut self, name: &str, writer: bool) {
        if let Some(b) = self.busy.get_mut(name) {
            if writer {
                b.writer = false;
            } else {
                b.readers = b.readers.saturating_sub(1);
            }
            if !b.writer && b.readers == 0 {
                self.busy.remove(name);
            }
        }
    }
}

/// One pool. Shared as `Arc<PoolObj>` by the list and the callers.
#[derive(Debug)]
pub struct PoolObj {
    /// Pool changes exclusive, volume changes shared; see the module docs.
    pub job: Arc<tokio::sync::RwLock<()>>,
    state: Mutex<PoolObjState>,
}

impl PoolObj {
    /// An inactive pool with definition `def`.
    pub fn new(def: Arc<PoolDef>, persistent: bool, autostart: bool) -> PoolObj {
        PoolObj {
            job: Arc::new(tokio::sync::RwLock::new(())),
            state: Mutex::new(PoolObjState {
                def,
                new_def: None,
                active: false,
                autostart,
                persistent,
                removed: false,
                sizes: PoolSizes::default(),
                vols: BTreeMap::new(),
                reserved: HashSet::new(),
                busy: HashMap::new(),
                async_jobs: 0,
                target_dev: None,
            }),
        }
    }

    /// The state, locked. Keep the guard short: no `.await`, no I/O.
    // Every update under this lock is a handful of field assignments and
    // map operations that cannot panic halfway, so a poisoned lock still
    // guards a consistent state.
    pub fn lock(&self) -> MutexGuard<'_, PoolObjState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use common::storage::{ParseFlags, PoolDef};

    use super::*;

    #[test]
    fn readers_share_writers_exclude() {
        let def = PoolDef::parse_str(
            "<pool type='dir'><name>p</name><target><path>/x</path></target></pool>",
            ParseFlags::default(),
        )
        .expect("pool");
        let obj = PoolObj::new(Arc::new(def), true, false);
        let mut st = obj.lock();
        st.acquire("v", false).expect("reader");
        st.acquire("v", false).expect("second reader");
        assert!(st.acquire("v", true).is_err());
        st.release("v", false);
        st.release("v", false);
        st.acquire("v", true).expect("writer");
        assert!(st.acquire("v", false).is_err());
        st.release("v", true);
        assert!(st.busy.is_empty());
        st.reserved.insert("n".to_owned());
        assert!(st.acquire("n", false).is_err());
    }
}
