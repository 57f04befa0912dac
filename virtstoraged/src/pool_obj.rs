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
use std::ops::Deref;
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

/// The volumes of an active pool, by name (sorted, as listings want
/// them), with a rendering of the listing kept until they change.
///
/// Reads go through `Deref` to the map; every change goes through a method
/// here, which bumps [`Vols::generation`] and so drops the kept listing. The
/// map is shared (`Arc`) so a refresh can take the previous one without
/// copying it.
#[derive(Debug, Default)]
pub struct Vols {
    map: Arc<BTreeMap<String, Vol>>,
    /// Bumped by every change.
    generation: u64,
    /// The listing rendered by the transport (its encoded reply) for
    /// `generation`: listing the volumes again costs one reference count.
    listing: Option<(u64, Arc<[u8]>)>,
}

impl Deref for Vols {
    type Target = BTreeMap<String, Vol>;

    fn deref(&self) -> &BTreeMap<String, Vol> {
        &self.map
    }
}

impl Vols {
    fn changed(&mut self) {
        self.generation += 1;
        self.listing = None;
    }

    /// Adds or replaces a volume.
    pub fn insert(&mut self, name: String, vol: Vol) -> Option<Vol> {
        self.changed();
        Arc::make_mut(&mut self.map).insert(name, vol)
    }

    /// Removes a volume.
    pub fn remove(&mut self, name: &str) -> Option<Vol> {
        if !self.map.contains_key(name) {
            return None;
        }
        self.changed();
        Arc::make_mut(&mut self.map).remove(name)
    }

    /// Forgets every volume.
    pub fn clear(&mut self) {
        if !self.map.is_empty() {
            self.changed();
            self.map = Arc::default();
        }
    }

    /// Replaces `name`'s entry with `vol` if it still holds `def` (a
    /// re-read of a volume that nothing changed meanwhile).
    pub fn update_if_same(&mut self, name: &str, def: &Arc<VolDef>, vol: Vol) {
        if self
            .map
            .get(name)
            .is_some_and(|cur| Arc::ptr_eq(&cur.def, def))
        {
            self.changed();
            Arc::make_mut(&mut self.map).insert(name.to_owned(), vol);
        }
    }

    /// Replaces every volume with `map` (a refresh). When each entry is
    /// the one held already (same definition and stamp: the refresh found
    /// nothing changed) the generation stays, and so does the listing.
    pub fn replace(&mut self, map: BTreeMap<String, Vol>) {
        let same = map.len() == self.map.len()
            && map.iter().zip(self.map.iter()).all(|((k, v), (ok, ov))| {
                k == ok && Arc::ptr_eq(&v.def, &ov.def) && v.stamp == ov.stamp
            });
        if !same {
            self.changed();
            self.map = Arc::new(map);
        }
    }

    /// The volumes as they are now, shared (for a refresh to compare with).
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Vol>> {
        self.map.clone()
    }

    /// Bumped by every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The listing kept for the current generation, if any.
    pub fn listing(&self) -> Option<Arc<[u8]>> {
        match &self.listing {
            Some((g, l)) if *g == self.generation => Some(l.clone()),
            _ => None,
        }
    }

    /// Keeps `listing`, rendered from generation `generation`, unless the
    /// volumes changed since.
    pub fn set_listing(&mut self, generation: u64, listing: Arc<[u8]>) {
        if generation == self.generation {
            self.listing = Some((generation, listing));
        }
    }
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
    pub vols: Vols,
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
                vols: Vols::default(),
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
    use common::storage::{ParseFlags, PoolDef, VolDef};

    use super::*;

    fn vol(name: &str) -> Vol {
        Vol {
            def: Arc::new(VolDef {
                name: name.to_owned(),
                ..VolDef::default()
            }),
            stamp: None,
        }
    }

    #[test]
    fn a_kept_listing_lasts_until_the_volumes_change() {
        let mut v = Vols::default();
        let listing = |s: &str| -> Arc<[u8]> { s.as_bytes().into() };
        v.insert("a".to_owned(), vol("a"));
        let g = v.generation();
        v.set_listing(g, listing("a"));
        assert_eq!(v.listing().as_deref(), Some(&b"a"[..]));
        // A refresh that found the same volumes keeps it.
        let same: BTreeMap<String, Vol> = v.iter().map(|(k, x)| (k.clone(), x.clone())).collect();
        v.replace(same);
        assert_eq!(v.generation(), g);
        assert!(v.listing().is_some());
        // Every change drops it.
        v.insert("b".to_owned(), vol("b"));
        assert!(v.listing().is_none());
        // A listing rendered before a change is not kept.
        let g = v.generation();
        v.remove("a");
        v.set_listing(g, listing("a b"));
        assert!(v.listing().is_none());
        let g = v.generation();
        v.set_listing(g, listing("b"));
        let b = v["b"].def.clone();
        v.update_if_same("b", &b, vol("b"));
        assert!(v.listing().is_none());
        let g = v.generation();
        v.set_listing(g, listing("b"));
        v.replace(BTreeMap::from([("b".to_owned(), vol("b"))]));
        assert!(v.listing().is_none(), "a new definition is a change");
        v.remove("nothing");
        v.clear();
        assert!(v.is_empty());
        assert!(v.listing().is_none());
    }

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
