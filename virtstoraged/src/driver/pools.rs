//! Pool operations of the driver: the `virStoragePool*` APIs.

use std::sync::Arc;

use common::objlist::{Added, ObjRef};
use common::storage::{PoolDef, PoolFormatKind, PoolType, sanitize_path};
use common::xml::{Element, ParseFlags};
use common::{ErrorDomain, VirtError};
use tokio::sync::OwnedRwLockWriteGuard;

use super::{PoolFilter, PoolInfo, PoolState, StorageDriver, backend_of, def_with_sizes};
use crate::backend::{self, BuildFlags};
use crate::error::{self, blocking};
use crate::event::{EventBody, Lifecycle};
use crate::names;
use crate::pool_obj::{PoolIdent, PoolObj};

fn check_build_flags(f: BuildFlags) -> Result<(), VirtError> {
    if f.overwrite && f.no_overwrite {
        return Err(error::invalid_arg(
            "Overwrite and no overwrite flags are mutually exclusive",
        ));
    }
    Ok(())
}

/// Whether two definitions name the same storage (libvirt's
/// `virStoragePoolObjSourceFindDuplicate`, for our pool types).
fn same_source(a: &PoolDef, b: &PoolDef) -> bool {
    let target = |d: &PoolDef| d.target.path.as_deref().map(sanitize_path);
    let local = |d: &PoolDef| matches!(d.pool_type, PoolType::Dir | PoolType::Fs | PoolType::NetFs);
    if local(a) && local(b) && target(a).is_some() && target(a) == target(b) {
        return true;
    }
    if a.pool_type != b.pool_type {
        return false;
    }
    match a.pool_type {
        PoolType::Fs => a
            .source
            .devices
            .iter()
            .any(|d| b.source.devices.iter().any(|e| e.path == d.path)),
        PoolType::NetFs => {
            a.source.hosts.first().map(|h| &h.name) == b.source.hosts.first().map(|h| &h.name)
                && a.source.dir == b.source.dir
        }
        PoolType::Logical => {
            a.source.name == b.source.name
                || a.source
                    .devices
                    .iter()
                    .any(|d| b.source.devices.iter().any(|e| e.path == d.path))
        }
        _ => false,
    }
}

impl StorageDriver {
    /// Parses a pool definition and applies the driver's rules: a name
    /// that is a safe file name, a backend for its type.
    fn parse_pool(xml: &str, validate: bool) -> Result<PoolDef, VirtError> {
        let flags = ParseFlags {
            inactive: true,
            validate,
            allow_post_parse_fail: false,
        };
        let def =
            PoolDef::parse_str(xml, flags).map_err(|e| e.to_virt_error(ErrorDomain::Storage))?;
        names::check_pool_name(&def.name)?;
        backend_of(def.pool_type)?;
        if def.pool_type.has_target() && def.target.path.is_none() {
            return Err(error::invalid_arg(format!(
                "storage pool '{}' needs a target path",
                def.name
            )));
        }
        Ok(def)
    }

    /// Refuses a definition whose storage another pool already uses.
    fn check_source_conflict(&self, def: &PoolDef) -> Result<(), VirtError> {
        let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
        for e in self.pools.snapshot() {
            if e.uuid == uuid {
                continue;
            }
            let other = e.obj.lock().def.clone();
            if same_source(def, &other) {
                return Err(error::op_failed(format!(
                    "Storage source conflict with pool: '{}'",
                    other.name
                )));
            }
        }
        Ok(())
    }

    /// Defines (or redefines) a persistent pool: parse, refuse duplicates
    /// and source conflicts, write the file atomically, publish DEFINED.
    ///
    /// # Errors
    /// The XML is refused (nothing written); a duplicate name/UUID; the
    /// file cannot be written.
    pub async fn define_pool(&self, xml: &str, validate: bool) -> Result<PoolIdent, VirtError> {
        let def = Self::parse_pool(xml, validate)?;
        self.check_source_conflict(&def)?;
        let name = def.name.clone();
        let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
        let text = def.to_xml();
        let def = Arc::new(def);
        loop {
            let fresh = Arc::new(PoolObj::new(def.clone(), true, false));
            let fresh_job = fresh
                .job
                .clone()
                .try_write_owned()
                .map_err(|_| error::internal("a new pool's job lock is taken"))?;
            let obj = match self.pools.add_arc(&name, &uuid, || fresh.clone())? {
                Added::New(obj) => {
                    if let Err(e) = self.save_config(&name, &text).await {
                        obj.lock().removed = true;
                        self.pools.remove(&uuid);
                        return Err(e);
                    }
                    let ident = obj.lock().ident();
                    drop(fresh_job);
                    self.publish(ident.clone(), EventBody::Lifecycle(Lifecycle::Defined));
                    return Ok(ident);
                }
                Added::Existing(obj) => obj,
            };
            drop(fresh_job);
            let _job = obj.job.write().await;
            if obj.lock().removed {
                continue;
            }
            self.save_config(&name, &text).await?;
            let ident = {
                let mut st = obj.lock();
                if st.active {
                    st.new_def = Some(def.clone());
                } else {
                    st.def = def.clone();
                }
                st.persistent = true;
                st.ident()
            };
            self.publish(ident.clone(), EventBody::Lifecycle(Lifecycle::Defined));
            return Ok(ident);
        }
    }

    async fn save_config(&self, name: &str, xml: &str) -> Result<(), VirtError> {
        let store = self.store.clone();
        let (n, x) = (name.to_owned(), xml.to_owned());
        blocking(move || {
            store.save(&n, &x).map_err(|e| {
                error::sys("cannot save the pool definition", &std::io::Error::other(e))
            })
        })
        .await
    }

    /// Creates and starts a transient pool (optionally building it first).
    ///
    /// # Errors
    /// As [`StorageDriver::define_pool`]; the pool exists already; the
    /// build or start failed (nothing is left then).
    pub async fn create_pool(
        &self,
        xml: &str,
        build: Option<BuildFlags>,
    ) -> Result<PoolIdent, VirtError> {
        if let Some(f) = build {
            check_build_flags(f)?;
        }
        let def = Self::parse_pool(xml, false)?;
        self.check_source_conflict(&def)?;
        let name = def.name.clone();
        let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
        let def = Arc::new(def);
        let fresh = Arc::new(PoolObj::new(def.clone(), false, false));
        // Published with its job taken: nobody acts on it before it runs.
        let _job = fresh
            .job
            .clone()
            .try_write_owned()
            .map_err(|_| error::internal("a new pool's job lock is taken"))?;
        if let Added::Existing(obj) = self.pools.add_arc(&name, &uuid, || fresh.clone())? {
            let active = obj.lock().active;
            return Err(if active {
                error::op_invalid(format!("storage pool '{name}' is already active"))
            } else {
                error::op_invalid(format!("storage pool '{name}' already exists"))
            });
        }
        match self.activate(&fresh, &def, build).await {
            Ok(ident) => Ok(ident),
            Err(e) => {
                fresh.lock().removed = true;
                self.pools.remove(&uuid);
                Err(e)
            }
        }
    }

    /// Builds (optionally), starts, refreshes and records an inactive pool
    /// whose job the caller holds; publishes STARTED.
    async fn activate(
        &self,
        obj: &Arc<PoolObj>,
        def: &Arc<PoolDef>,
        build: Option<BuildFlags>,
    ) -> Result<PoolIdent, VirtError> {
        let backend = backend_of(def.pool_type)?;
        if let Some(f) = build {
            backend.build(def.clone(), f).await?;
            let ident = obj.lock().ident();
            self.publish(ident, EventBody::Lifecycle(Lifecycle::Created));
        }
        backend.start(def.clone()).await?;
        backend.cleanup(def.clone()).await;
        let refreshed = match backend.refresh(def.clone(), Default::default()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = backend.stop(def.clone()).await;
                return Err(e);
            }
        };
        if let Err(e) = self.save_state(def).await {
            let _ = backend.stop(def.clone()).await;
            return Err(e);
        }
        let ident = {
            let mut st = obj.lock();
            st.def = def.clone();
            st.active = true;
            st.sizes = refreshed.sizes;
            st.vols.replace(refreshed.vols);
            st.target_dev = backend.target_dev(def);
            st.ident()
        };
        self.publish(ident.clone(), EventBody::Lifecycle(Lifecycle::Started));
        Ok(ident)
    }

    /// Starts a defined pool (libvirt's `virStoragePoolCreate`).
    ///
    /// # Errors
    /// NO_STORAGE_POOL; already active; the build, start or refresh failed.
    pub async fn start_pool(
        &self,
        r: &ObjRef,
        build: BuildFlags,
        do_build: bool,
    ) -> Result<(), VirtError> {
        if do_build {
            check_build_flags(build)?;
        }
        let obj = self.find(r)?;
        let _job = obj.job.write().await;
        let def = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if st.active {
                return Err(error::op_invalid(format!(
                    "storage pool '{}' is already active",
                    st.def.name
                )));
            }
            st.def.clone()
        };
        self.activate(&obj, &def, do_build.then_some(build))
            .await
            .map(|_| ())
    }

    /// Stops a pool; a transient pool disappears. Refused while streams or
    /// clones use it.
    ///
    /// # Errors
    /// NO_STORAGE_POOL; not active; jobs running; the backend's stop failed.
    pub async fn destroy_pool(&self, r: &ObjRef) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.job.write().await;
        let def = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.active {
                return Err(error::not_active(&st.def.name));
            }
            if st.async_jobs > 0 {
                return Err(error::op_invalid(format!(
                    "pool '{}' has asynchronous jobs running.",
                    st.def.name
                )));
            }
            st.def.clone()
        };
        backend_of(def.pool_type)?.stop(def.clone()).await?;
        self.remove_state(&def.name).await?;
        let (ident, transient) = {
            let mut st = obj.lock();
            st.deactivate();
            let transient = !st.persistent;
            if transient {
                st.removed = true;
            }
            (st.ident(), transient)
        };
        if transient {
            self.pools.remove(&ident.uuid);
        }
        self.publish(ident, EventBody::Lifecycle(Lifecycle::Stopped));
        Ok(())
    }

    /// An inactive pool with its job held.
    async fn lock_inactive(
        &self,
        r: &ObjRef,
    ) -> Result<(Arc<PoolObj>, OwnedRwLockWriteGuard<()>, Arc<PoolDef>), VirtError> {
        let obj = self.find(r)?;
        let job = obj.job.clone().write_owned().await;
        let def = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if st.active {
                return Err(error::op_invalid(format!(
                    "storage pool '{}' is still active",
                    st.def.name
                )));
            }
            st.def.clone()
        };
        Ok((obj, job, def))
    }

    /// Removes an inactive pool's definition; publishes UNDEFINED.
    ///
    /// # Errors
    /// NO_STORAGE_POOL; active; transient; the files cannot be removed.
    pub async fn undefine_pool(&self, r: &ObjRef) -> Result<(), VirtError> {
        let (obj, _job, def) = self.lock_inactive(r).await?;
        {
            if !obj.lock().persistent {
                return Err(error::op_invalid("cannot undefine transient storage pool"));
            }
            let store = self.store.clone();
            let name = def.name.clone();
            blocking(move || {
                store.delete(&name).map_err(|e| {
                    error::sys(
                        "cannot remove the pool definition",
                        &std::io::Error::other(e),
                    )
                })
            })
            .await?;
            let ident = {
                let mut st = obj.lock();
                st.removed = true;
                st.persistent = false;
                st.autostart = false;
                st.ident()
            };
            self.pools.remove(&ident.uuid);
            self.publish(ident, EventBody::Lifecycle(Lifecycle::Undefined));
            Ok(())
        }
    }

    /// Builds an inactive pool's storage; publishes CREATED.
    ///
    /// # Errors
    /// Both flags; NO_STORAGE_POOL; active; the backend failed.
    pub async fn build_pool(&self, r: &ObjRef, flags: BuildFlags) -> Result<(), VirtError> {
        check_build_flags(flags)?;
        let (obj, _job, def) = self.lock_inactive(r).await?;
        backend_of(def.pool_type)?.build(def, flags).await?;
        let ident = obj.lock().ident();
        self.publish(ident, EventBody::Lifecycle(Lifecycle::Created));
        Ok(())
    }

    /// Deletes an inactive pool's storage; publishes DELETED.
    ///
    /// # Errors
    /// NO_STORAGE_POOL; active; the backend failed.
    pub async fn delete_pool(&self, r: &ObjRef, zeroed: bool) -> Result<(), VirtError> {
        let (obj, _job, def) = self.lock_inactive(r).await?;
        backend_of(def.pool_type)?.delete(def, zeroed).await?;
        let ident = obj.lock().ident();
        self.publish(ident, EventBody::Lifecycle(Lifecycle::Deleted));
        Ok(())
    }

    /// Rescans an active pool; publishes REFRESH. A pool whose storage is
    /// gone becomes inactive (STOPPED) and the call fails.
    ///
    /// # Errors
    /// NO_STORAGE_POOL; not active; jobs running; the scan failed.
    pub async fn refresh_pool(&self, r: &ObjRef) -> Result<(), VirtError> {
        let obj = self.find_active(r)?;
        let _job = obj.job.write().await;
        let (def, old) = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.active {
                return Err(error::not_active(&st.def.name));
            }
            if st.async_jobs > 0 {
                return Err(error::op_invalid(format!(
                    "pool '{}' has asynchronous jobs running.",
                    st.def.name
                )));
            }
            (st.def.clone(), st.vols.snapshot())
        };
        let backend = backend_of(def.pool_type)?;
        match backend.refresh(def.clone(), old).await {
            Ok(refreshed) => {
                let ident = {
                    let mut st = obj.lock();
                    if !st.active {
                        return Err(error::not_active(&def.name));
                    }
                    st.sizes = refreshed.sizes;
                    st.vols.replace(refreshed.vols);
                    st.ident()
                };
                self.publish(ident, EventBody::Refresh);
                Ok(())
            }
            Err(e) => {
                // libvirt stops a pool whose refresh fails.
                if backend.check(def.clone()).await.is_ok_and(|alive| !alive) {
                    self.deactivate_vanished(&obj, &def);
                    let _ = self.remove_state(&def.name).await;
                }
                Err(e)
            }
        }
    }

    /// Turns autostart on or off (the link).
    ///
    /// # Errors
    /// NO_STORAGE_POOL; transient; the link cannot be changed.
    pub async fn set_autostart(&self, r: &ObjRef, on: bool) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.job.write().await;
        let name = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.persistent {
                return Err(error::op_invalid("cannot set autostart for transient pool"));
            }
            if st.autostart == on {
                return Ok(());
            }
            st.def.name.clone()
        };
        let store = self.store.clone();
        blocking(move || {
            store
                .set_autostart(&name, on)
                .map_err(|e| error::sys("cannot change autostart", &std::io::Error::other(e)))
        })
        .await?;
        obj.lock().autostart = on;
        Ok(())
    }

    /// Whether the pool autostarts.
    ///
    /// # Errors
    /// NO_STORAGE_POOL.
    pub fn get_autostart(&self, r: &ObjRef) -> Result<bool, VirtError> {
        Ok(self.find(r)?.lock().autostart)
    }

    /// The pool named by `r`.
    ///
    /// # Errors
    /// NO_STORAGE_POOL.
    pub fn lookup_pool(&self, r: &ObjRef) -> Result<PoolIdent, VirtError> {
        let obj = self.find(r)?;
        self.check_alive(&obj);
        Ok(obj.lock().ident())
    }

    /// The pool whose target path is `path`.
    ///
    /// # Errors
    /// NO_STORAGE_POOL.
    pub fn lookup_pool_by_target(&self, path: &str) -> Result<PoolIdent, VirtError> {
        let want = sanitize_path(path);
        for e in self.pools.snapshot() {
            let st = e.obj.lock();
            if !st.removed && st.def.target.path.as_deref().map(sanitize_path) == Some(want.clone())
            {
                return Ok(st.ident());
            }
        }
        Err(VirtError::new(
            common::ErrorCode::NoStoragePool,
            ErrorDomain::Storage,
            format!("Storage pool not found: no storage pool with matching target path '{path}'"),
        ))
    }

    /// The pools matching `filter`, sorted by name.
    pub fn list_pools(&self, filter: &PoolFilter) -> Vec<PoolIdent> {
        fn want(f: Option<bool>, v: bool) -> bool {
            f.is_none_or(|f| f == v)
        }
        let mut out: Vec<PoolIdent> = self
            .pools
            .snapshot()
            .into_iter()
            .filter_map(|e| {
                self.check_alive(&e.obj);
                let st = e.obj.lock();
                if st.removed {
                    return None;
                }
                let keep = want(filter.active, st.active)
                    && want(filter.persistent, st.persistent)
                    && want(filter.autostart, st.autostart)
                    && (filter.types.is_empty() || filter.types.contains(&st.def.pool_type));
                keep.then(|| st.ident())
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// State and sizes; live sizes for directory-backed pools.
    ///
    /// # Errors
    /// NO_STORAGE_POOL.
    pub fn pool_info(&self, r: &ObjRef) -> Result<PoolInfo, VirtError> {
        let obj = self.find(r)?;
        let active = self.check_alive(&obj);
        let (def, sizes) = {
            let st = obj.lock();
            (st.def.clone(), st.sizes)
        };
        if !active {
            return Ok(PoolInfo {
                state: PoolState::Inactive,
                sizes: Default::default(),
            });
        }
        let sizes = match backend::for_type(def.pool_type).and_then(|b| b.live_sizes(&def)) {
            Some(Ok(s)) => s,
            _ => sizes,
        };
        Ok(PoolInfo {
            state: PoolState::Running,
            sizes,
        })
    }

    /// The pool's XML (the persistent definition with `inactive`).
    ///
    /// # Errors
    /// NO_STORAGE_POOL.
    pub fn pool_xml(&self, r: &ObjRef, inactive: bool) -> Result<String, VirtError> {
        let obj = self.find(r)?;
        let active = self.check_alive(&obj);
        let live = if active && !inactive {
            let def = obj.lock().def.clone();
            match backend::for_type(def.pool_type).and_then(|b| b.live_sizes(&def)) {
                Some(Ok(s)) => Some(s),
                _ => None,
            }
        } else {
            None
        };
        let def = {
            let st = obj.lock();
            def_with_sizes(&st, inactive, live)
        };
        Ok(def.to_xml())
    }

    /// `<storagepoolCapabilities>`: which pool types this daemon supports,
    /// with their source and volume formats.
    pub fn capabilities(&self) -> String {
        let mut root = Element::new("storagepoolCapabilities");
        for t in PoolType::ALL {
            let supported = backend::SUPPORTED.contains(t);
            let mut pool = Element::new("pool")
                .with_attr("type", t.as_str())
                .with_attr("supported", if supported { "yes" } else { "no" });
            if supported {
                if let Some(kind) = t.options().format {
                    let mut opts = Element::new("poolOptions").with_child(
                        Element::new("defaultFormat").with_attr("type", kind.default_format()),
                    );
                    let mut e = Element::new("enum").with_attr("name", "sourceFormatType");
                    let values: Vec<&str> = match kind {
                        PoolFormatKind::Fs => common::storage::FsFormat::ALL
                            .iter()
                            .map(|f| f.as_str())
                            .collect(),
                        PoolFormatKind::NetFs => common::storage::NetFsFormat::ALL
                            .iter()
                            .map(|f| f.as_str())
                            .collect(),
                        PoolFormatKind::Disk => common::storage::DiskFormat::ALL
                            .iter()
                            .map(|f| f.as_str())
                            .collect(),
                        PoolFormatKind::Logical => common::storage::LogicalFormat::ALL
                            .iter()
                            .map(|f| f.as_str())
                            .collect(),
                    };
                    for v in values {
                        e.push(Element::text_element("value", v));
                    }
                    opts.push(e);
                    pool.push(opts);
                }
                let vo = t.vol_options();
                if let Some(d) = vo.default {
                    let mut opts = Element::new("volOptions")
                        .with_child(Element::new("defaultFormat").with_attr("type", d.as_str()));
                    let mut e = Element::new("enum").with_attr("name", "targetFormatType");
                    for f in common::storage::FileFormat::ALL {
                        e.push(Element::text_element("value", f.as_str()));
                    }
                    opts.push(e);
                    pool.push(opts);
                }
            }
            root.push(pool);
        }
        root.to_xml()
    }

    /// `<sources>` found for a pool type: LVM volume groups (`pvs`), NFS
    /// exports of the host in `spec` (`showmount`).
    ///
    /// # Errors
    /// Other types; the tools fail or are missing.
    pub async fn find_sources(&self, t: PoolType, spec: &str) -> Result<String, VirtError> {
        use common::storage::argv::Command;
        let mut root = Element::open("sources");
        match t {
            PoolType::Logical => {
                let mut c = Command::new("pvs");
                c.args(["--noheadings", "--separator", ",", "-o", "pv_name,vg_name"]);
                let out = crate::exec::run(&c).await?;
                let mut by_vg: std::collections::BTreeMap<String, Vec<String>> = Default::default();
                for line in out.stdout.lines() {
                    let mut f = line.trim().split(',');
                    let (Some(pv), Some(vg)) = (f.next(), f.next()) else {
                        continue;
                    };
                    if !vg.is_empty() {
                        by_vg.entry(vg.to_owned()).or_default().push(pv.to_owned());
                    }
                }
                for (vg, pvs) in by_vg {
                    let mut s = Element::new("source");
                    for pv in pvs {
                        s.push(Element::new("device").with_attr("path", pv));
                    }
                    s.push(Element::text_element("name", vg));
                    s.push(Element::new("format").with_attr("type", "lvm2"));
                    root.push(s);
                }
            }
            PoolType::NetFs => {
                let spec_el = common::xml::parse(spec)
                    .map_err(|e| error::invalid_arg(format!("bad source spec: {e}")))?;
                let host = spec_el
                    .child("host")
                    .and_then(|h| h.attr("name"))
                    .ok_or_else(|| {
                        error::invalid_arg("hostname must be specified for netfs sources")
                    })?
                    .to_owned();
                if !crate::exec::have_program("showmount") {
                    return Err(error::no_support(
                        "finding NFS exports needs showmount (nfs-common)",
                    ));
                }
                let mut c = Command::new("showmount");
                c.args(["--no-headers", "--exports", host.as_str()]);
                let out = crate::exec::run(&c).await?;
                for line in out.stdout.lines() {
                    let Some(dir) = line.split_whitespace().next() else {
                        continue;
                    };
                    root.push(
                        Element::new("source")
                            .with_child(Element::new("host").with_attr("name", &host))
                            .with_child(Element::new("dir").with_attr("path", dir))
                            .with_child(Element::new("format").with_attr("type", "nfs")),
                    );
                }
            }
            other => {
                return Err(error::no_support(format!(
                    "finding sources of '{other}' pools"
                )));
            }
        }
        Ok(root.to_xml())
    }
}
