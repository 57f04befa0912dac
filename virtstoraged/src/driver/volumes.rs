//! Volume operations of the driver: the `virStorageVol*` APIs.

use std::sync::Arc;

use common::objlist::ObjRef;
use common::storage::{VolDef, VolParseFlags, VolType, sanitize_path};
use common::{ErrorCode, ErrorDomain, VirtError};

use super::{StorageDriver, backend_of};
use crate::backend::{CreateFlags, MAX_FILE_SIZE, Resize};
use crate::error;
use crate::names;
use crate::pool_obj::{PoolObj, Vol};
use crate::wipe;

/// How a caller names a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolRef {
    /// Pool name and volume name.
    Name {
        /// The pool.
        pool: String,
        /// The volume.
        name: String,
    },
    /// The key.
    Key(String),
    /// The path.
    Path(String),
}

/// A volume as replies name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolIdent {
    /// Its name.
    pub name: String,
    /// Its key.
    pub key: String,
    /// Its path.
    pub path: String,
    /// Its pool's name.
    pub pool: String,
}

impl VolIdent {
    fn of(pool: &str, v: &VolDef) -> VolIdent {
        VolIdent {
            name: v.name.clone(),
            key: v.key.clone().unwrap_or_default(),
            path: v.target.path.clone().unwrap_or_default(),
            pool: pool.to_owned(),
        }
    }
}

/// libvirt's `virStorageVolInfo` (with the physical size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolInfo {
    /// The type.
    pub vol_type: VolType,
    /// Logical size.
    pub capacity: u64,
    /// Allocated bytes.
    pub allocation: u64,
    /// Size of the container.
    pub physical: u64,
}

/// A name reserved in a pool while a create or delete works on it;
/// released on drop (also when the caller gives up).
#[derive(Debug)]
struct Reservation {
    obj: Arc<PoolObj>,
    name: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.obj.lock().reserved.remove(&self.name);
    }
}

/// A volume marked in use; released on drop.
#[derive(Debug)]
pub(crate) struct InUse {
    obj: Arc<PoolObj>,
    name: String,
    writer: bool,
    async_job: bool,
}

impl InUse {
    /// Marks `name` of `obj` in use (`writer`: exclusively); `async_job`
    /// counts it as a long job that keeps the pool from being destroyed.
    pub(crate) fn acquire(
        obj: &Arc<PoolObj>,
        name: &str,
        writer: bool,
        async_job: bool,
    ) -> Result<InUse, VirtError> {
        let mut st = obj.lock();
        if !st.active {
            return Err(error::not_active(&st.def.name));
        }
        if let Err(why) = st.acquire(name, writer) {
            return Err(error::op_invalid(format!("volume '{name}' {why}")));
        }
        if async_job {
            st.async_jobs += 1;
        }
        Ok(InUse {
            obj: obj.clone(),
            name: name.to_owned(),
            writer,
            async_job,
        })
    }
}

impl InUse {
    /// The pool holding the volume.
    pub(crate) fn pool(&self) -> &Arc<PoolObj> {
        &self.obj
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut st = self.obj.lock();
        st.release(&self.name, self.writer);
        if self.async_job {
            st.async_jobs = st.async_jobs.saturating_sub(1);
        }
    }
}

impl StorageDriver {
    /// The volumes of an active pool, sorted by name.
    ///
    /// # Errors
    /// NO_STORAGE_POOL; not active.
    pub fn list_volumes(&self, r: &ObjRef) -> Result<Vec<VolIdent>, VirtError> {
        let obj = self.find_active(r)?;
        let st = obj.lock();
        let pool = &st.def.name;
        Ok(st
            .vols
            .values()
            .map(|v| VolIdent::of(pool, &v.def))
            .collect())
    }

    /// The volumes of an active pool, sorted by name, as `render` turns
    /// them into bytes (the transport's encoded reply). The rendering is
    /// kept with the pool until its volumes change, so listing an
    /// unchanged pool again renders nothing and copies nothing.
    ///
    /// # Errors
    /// NO_STORAGE_POOL; not active.
    pub fn list_volumes_rendered(
        &self,
        r: &ObjRef,
        render: impl FnOnce(Vec<VolIdent>) -> Arc<[u8]>,
    ) -> Result<Arc<[u8]>, VirtError> {
        let obj = self.find_active(r)?;
        let (generation, idents) = {
            let st = obj.lock();
            if !st.active {
                return Err(error::not_active(&st.def.name));
            }
            if let Some(l) = st.vols.listing() {
                return Ok(l);
            }
            let pool = &st.def.name;
            let idents = st
                .vols
                .values()
                .map(|v| VolIdent::of(pool, &v.def))
                .collect();
            (st.vols.generation(), idents)
        };
        // Rendered outside the lock; kept only if nothing changed meanwhile.
        let listing = render(idents);
        obj.lock().vols.set_listing(generation, listing.clone());
        Ok(listing)
    }

    /// Finds a volume: its pool and its entry.
    pub(crate) fn resolve(&self, r: &VolRef) -> Result<(Arc<PoolObj>, Vol), VirtError> {
        match r {
            VolRef::Name { pool, name } => {
                let obj = self.find_active(&ObjRef::Name(pool.clone()))?;
                let v = obj.lock().vols.get(name).cloned();
                match v {
                    Some(v) => Ok((obj, v)),
                    None => Err(error::no_vol(format!(
                        "no storage vol with matching name '{name}'"
                    ))),
                }
            }
            VolRef::Key(key) => {
                for e in self.pools.snapshot() {
                    if !self.check_alive(&e.obj) {
                        continue;
                    }
                    let found = {
                        let st = e.obj.lock();
                        st.vols
                            .values()
                            .find(|v| v.def.key.as_deref() == Some(key.as_str()))
                            .cloned()
                    };
                    if let Some(v) = found {
                        return Ok((e.obj, v));
                    }
                }
                Err(error::no_vol(format!(
                    "no storage vol with matching key {key}"
                )))
            }
            VolRef::Path(path) => {
                let clean = sanitize_path(path);
                let (dir, base) = match clean.rsplit_once('/') {
                    Some((d, b)) => (if d.is_empty() { "/" } else { d }, b),
                    None => ("", clean.as_str()),
                };
                for e in self.pools.snapshot() {
                    if !self.check_alive(&e.obj) {
                        continue;
                    }
                    let found = {
                        let st = e.obj.lock();
                        let in_target = st.def.target.path.as_deref().map(sanitize_path).as_deref()
                            == Some(dir);
                        let by_name = if in_target {
                            st.vols.get(base).cloned()
                        } else {
                            None
                        };
                        by_name.or_else(|| {
                            st.vols
                                .values()
                                .find(|v| v.def.target.path.as_deref() == Some(clean.as_str()))
                                .cloned()
                        })
                    };
                    if let Some(v) = found {
                        return Ok((e.obj, v));
                    }
                }
                Err(error::no_vol(format!(
                    "no storage vol with matching path '{path}'"
                )))
            }
        }
    }

    /// The volume `r` names.
    ///
    /// # Errors
    /// NO_STORAGE_VOL; NO_STORAGE_POOL or not active (by name).
    pub fn lookup_volume(&self, r: &VolRef) -> Result<VolIdent, VirtError> {
        let (obj, v) = self.resolve(r)?;
        let pool = obj.lock().def.name.clone();
        Ok(VolIdent::of(&pool, &v.def))
    }

    /// The pool holding the volume `r` names.
    ///
    /// # Errors
    /// See [`StorageDriver::lookup_volume`].
    pub fn pool_of_volume(&self, r: &VolRef) -> Result<crate::pool_obj::PoolIdent, VirtError> {
        let (obj, _) = self.resolve(r)?;
        Ok(obj.lock().ident())
    }

    /// The volume, re-read first where that is cheap (file volumes), as
    /// libvirt refreshes a volume before its info or XML.
    async fn fresh_vol(&self, r: &VolRef) -> Result<(Arc<PoolObj>, Vol), VirtError> {
        let (obj, v) = self.resolve(r)?;
        let def = obj.lock().def.clone();
        if v.stamp.is_none() {
            return Ok((obj, v));
        }
        let Some(path) = v.def.target.path.clone() else {
            return Ok((obj, v));
        };
        let stamp = v.stamp;
        let unchanged = tokio::task::spawn_blocking(move || {
            std::fs::metadata(&path)
                .ok()
                .map(|m| crate::probe::Stamp::of(&m))
                == stamp
        })
        .await
        .unwrap_or(false);
        if unchanged {
            return Ok((obj, v));
        }
        let backend = backend_of(def.pool_type)?;
        match backend.refresh_vol(def, v.def.clone()).await {
            Ok(nv) => {
                obj.lock()
                    .vols
                    .update_if_same(&v.def.name, &v.def, nv.clone());
                Ok((obj, nv))
            }
            Err(_) => Ok((obj, v)),
        }
    }

    /// Type and sizes.
    ///
    /// # Errors
    /// See [`StorageDriver::lookup_volume`].
    pub async fn volume_info(&self, r: &VolRef) -> Result<VolInfo, VirtError> {
        let (_, v) = self.fresh_vol(r).await?;
        Ok(VolInfo {
            vol_type: v.def.vol_type.unwrap_or(VolType::File),
            capacity: v.def.capacity,
            allocation: v.def.allocation,
            physical: if v.def.physical == 0 {
                v.def.allocation.max(v.def.capacity)
            } else {
                v.def.physical
            },
        })
    }

    /// The volume's XML.
    ///
    /// # Errors
    /// See [`StorageDriver::lookup_volume`].
    pub async fn volume_xml(&self, r: &VolRef) -> Result<String, VirtError> {
        let (obj, v) = self.fresh_vol(r).await?;
        let def = obj.lock().def.clone();
        Ok(v.def.to_xml(&def))
    }

    /// The volume's path.
    ///
    /// # Errors
    /// See [`StorageDriver::lookup_volume`].
    pub fn volume_path(&self, r: &VolRef) -> Result<String, VirtError> {
        Ok(self.lookup_volume(r)?.path)
    }

    /// Marks the volume `r` names in use (`writer`: exclusively) as an
    /// asynchronous job of its pool, taking the pool's job shared while
    /// marking, so no pool change is under way.
    pub(crate) async fn use_volume(
        &self,
        r: &VolRef,
        writer: bool,
    ) -> Result<(Vol, InUse), VirtError> {
        let (obj, _) = self.resolve(r)?;
        let _job = obj.job.read().await;
        // Looked up again: it may have changed while we waited.
        let (now, v) = self.resolve(r)?;
        if !Arc::ptr_eq(&now, &obj) {
            return Err(error::op_invalid("the volume moved while it was looked up"));
        }
        let guard = InUse::acquire(&obj, &v.def.name, writer, true)?;
        Ok((v, guard))
    }

    /// Creates a volume in an active pool (optionally filled from
    /// `source`). Exactly one of concurrent creates of a name wins; a
    /// failed create leaves nothing behind.
    ///
    /// # Errors
    /// NO_STORAGE_POOL; not active; the XML or name is refused; the name
    /// exists (STORAGE_VOL_EXIST); the backend failed.
    pub async fn create_volume(
        &self,
        pool: &ObjRef,
        xml: &str,
        source: Option<&VolRef>,
        flags: CreateFlags,
        validate: bool,
    ) -> Result<VolIdent, VirtError> {
        // The source first, marked in use under its pool's job (never
        // holding two pools' jobs at once), so neither a pool change nor a
        // delete of it can run while it is copied.
        let source = match source {
            Some(s) => Some(self.use_volume(s, false).await?),
            None => None,
        };
        let obj = self.find_active(pool)?;
        let _job = obj.job.read().await;
        let def = {
            let st = obj.lock();
            if st.removed || !st.active {
                return Err(error::not_active(&st.def.name));
            }
            st.def.clone()
        };
        let backend = backend_of(def.pool_type)?;
        let parse_flags = VolParseFlags {
            validate,
            no_capacity: source.is_some(),
        };
        // libvirt's VolCreateXML: capacity may be left out with a backing
        // store (VIR_VOL_XML_PARSE_OPT_CAPACITY).
        let mut vol = VolDef::parse_str_opt_capacity(xml, &def, parse_flags, true)
            .map_err(|e| e.to_virt_error(ErrorDomain::Storage))?;
        names::check_vol_name(&vol.name)?;
        backend.prepare_vol(&def, &mut vol)?;
        // The source: marked in use while it is copied.
        let input = match source {
            Some((src, guard)) => {
                if vol.capacity < src.def.capacity {
                    vol.capacity = src.def.capacity;
                }
                if !vol.has_allocation {
                    vol.allocation = vol.capacity;
                }
                Some((src.def, guard))
            }
            None => None,
        };
        let name = vol.name.clone();
        let _reservation = {
            let mut st = obj.lock();
            if st.vols.contains_key(&name) || st.reserved.contains(&name) {
                return Err(error::vol_exists(&name));
            }
            st.reserved.insert(name.clone());
            Reservation {
                obj: obj.clone(),
                name: name.clone(),
            }
        };
        let created = match &input {
            Some((src, _)) => {
                backend
                    .create_vol_from(def.clone(), vol, src.clone(), flags)
                    .await?
            }
            None => backend.create_vol(def.clone(), vol, flags).await?,
        };
        let ident = VolIdent::of(&def.name, &created.def);
        let mut st = obj.lock();
        if st.active {
            st.vols.insert(name, created);
        }
        Ok(ident)
    }

    /// Deletes a volume.
    ///
    /// # Errors
    /// NO_STORAGE_VOL; in use; flags the backend does not support; the
    /// backend failed.
    pub async fn delete_volume(
        &self,
        r: &VolRef,
        zeroed: bool,
        with_snapshots: bool,
    ) -> Result<(), VirtError> {
        if with_snapshots {
            return Err(VirtError::new(
                ErrorCode::ArgumentUnsupported,
                ErrorDomain::Storage,
                "argument unsupported: deleting snapshots is not supported for this volume",
            ));
        }
        let (obj, v) = self.resolve(r)?;
        let _job = obj.job.read().await;
        let (def, v, _reservation) = {
            let mut st = obj.lock();
            if !st.active {
                return Err(error::not_active(&st.def.name));
            }
            let name = v.def.name.clone();
            let Some(cur) = st.vols.get(&name).cloned() else {
                return Err(error::no_vol(format!(
                    "no storage vol with matching name '{name}'"
                )));
            };
            if st.reserved.contains(&name) {
                return Err(error::op_invalid(format!(
                    "volume '{name}' is still being allocated."
                )));
            }
            if st.busy.contains_key(&name) {
                return Err(error::op_invalid(format!(
                    "volume '{name}' is still in use."
                )));
            }
            st.reserved.insert(name.clone());
            (
                st.def.clone(),
                cur,
                Reservation {
                    obj: obj.clone(),
                    name,
                },
            )
        };
        backend_of(def.pool_type)?
            .delete_vol(def, v.def.clone(), zeroed)
            .await?;
        obj.lock().vols.remove(&v.def.name);
        Ok(())
    }

    /// Runs `f` on a volume held exclusively, then re-reads it.
    async fn change_volume<F, Fut>(&self, r: &VolRef, f: F) -> Result<(), VirtError>
    where
        F: FnOnce(Arc<common::storage::PoolDef>, Vol) -> Fut,
        Fut: Future<Output = Result<(), VirtError>>,
    {
        let (obj, v) = self.resolve(r)?;
        let _job = obj.job.read().await;
        let def = {
            let st = obj.lock();
            if !st.active {
                return Err(error::not_active(&st.def.name));
            }
            st.def.clone()
        };
        let name = v.def.name.clone();
        let _use = InUse::acquire(&obj, &name, true, false)?;
        let cur =
            obj.lock().vols.get(&name).cloned().ok_or_else(|| {
                error::no_vol(format!("no storage vol with matching name '{name}'"))
            })?;
        let result = f(def.clone(), cur.clone()).await;
        let backend = backend_of(def.pool_type)?;
        if let Ok(nv) = backend.refresh_vol(def, cur.def).await {
            let mut st = obj.lock();
            if st.active && st.vols.contains_key(&name) {
                st.vols.insert(name, nv);
            }
        }
        result
    }

    /// Overwrites a volume's data.
    ///
    /// # Errors
    /// NO_STORAGE_VOL; in use; the backend failed.
    pub async fn wipe_volume(&self, r: &VolRef, alg: wipe::Algorithm) -> Result<(), VirtError> {
        self.change_volume(r, |def, v| async move {
            backend_of(def.pool_type)?.wipe_vol(def, v.def, alg).await
        })
        .await
    }

    /// Changes a volume's capacity with libvirt's rules: `delta` adds (or
    /// with `shrink` subtracts); shrinking needs `shrink`; never below the
    /// allocation; never above the largest file size; growing needs the
    /// space in the pool.
    ///
    /// # Errors
    /// INVALID_ARG for the rules above; NO_STORAGE_VOL; the backend failed.
    pub async fn resize_volume(
        &self,
        r: &VolRef,
        capacity: u64,
        allocate: bool,
        delta: bool,
        shrink: bool,
    ) -> Result<(), VirtError> {
        self.change_volume(r, |def, v| async move {
            let cur = v.def.capacity;
            let abs = if delta {
                if shrink {
                    Some(cur - capacity.min(cur))
                } else {
                    cur.checked_add(capacity)
                }
            } else {
                Some(capacity)
            };
            // No volume is larger than the largest file (libvirt's limit on
            // a capacity it parses): refused before any backend is asked.
            let Some(abs) = abs.filter(|a| *a <= MAX_FILE_SIZE) else {
                let value = if delta {
                    format!("{cur} + {capacity}")
                } else {
                    capacity.to_string()
                };
                return Err(error::too_large(
                    "capacity",
                    value,
                    format_args!("{MAX_FILE_SIZE} bytes, the largest volume size"),
                ));
            };
            if abs < v.def.allocation {
                return Err(error::invalid_arg(
                    "can't shrink capacity below existing allocation",
                ));
            }
            if abs < cur && !shrink {
                return Err(error::invalid_arg(
                    "Can't shrink capacity below current capacity unless shrink flag explicitly specified",
                ));
            }
            let backend = backend_of(def.pool_type)?;
            if abs > cur && allocate {
                let available = match backend.live_sizes(&def) {
                    Some(Ok(s)) => s.available,
                    _ => u64::MAX,
                };
                if abs - cur > available {
                    // libvirt's code and words; the caller asked for more
                    // than there is: RESOURCE_EXHAUSTED, not INTERNAL.
                    return Err(error::op_failed(format!(
                        "Not enough space left in storage pool ({} bytes asked, {available} available)",
                        abs - cur
                    ))
                    .with_grpc_code(tonic::Code::ResourceExhausted));
                }
            }
            backend
                .resize_vol(
                    def,
                    v.def,
                    Resize {
                        capacity: abs,
                        allocate,
                        shrink,
                    },
                )
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resize_refuses_a_capacity_past_the_largest_volume() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (conf, state, target) = (
            tmp.path().join("etc"),
            tmp.path().join("run"),
            tmp.path().join("pool"),
        );
        std::fs::create_dir(&target).expect("target");
        let d = StorageDriver::with_dirs(conf, state);
        let pool_xml = format!(
            "<pool type='dir'><name>p</name><target><path>{}</path></target></pool>",
            target.display()
        );
        d.create_pool(&pool_xml, None).await.expect("pool");
        let pool = ObjRef::Name("p".into());
        d.create_volume(
            &pool,
            "<volume><name>v.img</name><capacity>1048576</capacity></volume>",
            None,
            CreateFlags::default(),
            false,
        )
        .await
        .expect("volume");
        let v = VolRef::Name {
            pool: "p".into(),
            name: "v.img".into(),
        };
        // (capacity, allocate, delta, the value the error names)
        let cases = [
            (u64::MAX, false, false, u64::MAX.to_string()),
            (u64::MAX, true, false, u64::MAX.to_string()),
            (
                MAX_FILE_SIZE + 1,
                false,
                false,
                (MAX_FILE_SIZE + 1).to_string(),
            ),
            (u64::MAX, false, true, format!("1048576 + {}", u64::MAX)),
            (
                MAX_FILE_SIZE,
                true,
                true,
                format!("1048576 + {MAX_FILE_SIZE}"),
            ),
        ];
        for (capacity, allocate, delta, value) in cases {
            let e = d
                .resize_volume(&v, capacity, allocate, delta, false)
                .await
                .expect_err("too large");
            assert_eq!(e.code, ErrorCode::InvalidArg, "{}", e.message);
            assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument);
            assert!(
                e.message
                    .contains(&format!("capacity value too large: {value} (")),
                "{}",
                e.message
            );
        }
        assert_eq!(d.volume_info(&v).await.expect("info").capacity, 1 << 20);
        d.resize_volume(&v, 1 << 20, false, true, false)
            .await
            .expect("a possible delta");
        assert_eq!(d.volume_info(&v).await.expect("info").capacity, 2 << 20);
    }
}
