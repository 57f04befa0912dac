//! The network driver: plain Rust types, no gRPC.
//!
//! It owns the networks ([`ObjList`] of [`NetworkObj`]), their definition
//! files (`common::configstore`, `<config>/network`), their status files
//! ([`StatusStore`], `<run>/network`), and the event bus. Starting and
//! stopping a network runs the mechanisms ([`crate::host`]) in
//! `spawn_blocking`.
//!
//! Locking (`docs/network.md`): the list's lock and a network's state
//! lock are held for map and field operations only; a network's job lock
//! serialises its changes and is the only lock held across an `.await`.
//! `define_lock` serialises the choice of bridge names across define and
//! create (taken before any job).

mod journal;
mod lifecycle;
mod ports;
mod supervise;
mod update;

pub use ports::{DhcpLease, PortInfo};
pub use supervise::Backoff;
pub use update::UpdateRequest;

use std::path::PathBuf;
use std::sync::Arc;

use common::configstore::{ConfigStore, PersistError};
use common::daemon::Context;
use common::events::{EventBus, Subscription};
use common::network::NetworkDef;
use common::network::dnsmasq::has_managed_bridge;
use common::objlist::{ObjKind, ObjList, ObjRef, format_uuid};
use common::xml::values::os_random;
use common::xml::{FormatFlags, MacAddr, ParseFlags};
use common::{ErrorCode, ErrorDomain, VirtError};

use crate::host::Host;
use crate::network_obj::{Lifecycle, NetworkEvent, NetworkInfo, NetworkObj};
use crate::status::StatusStore;

/// Which networks [`NetworkDriver::list_all`] returns; `None`: any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Active (true) or inactive (false).
    pub active: Option<bool>,
    /// Persistent (true) or transient (false).
    pub persistent: Option<bool>,
    /// With (true) or without (false) autostart.
    pub autostart: Option<bool>,
}

/// Where the driver keeps its files.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// Definitions: `<config>/network`.
    pub config: PathBuf,
    /// Status files, pid files, ports: `<run>/network`.
    pub run: PathBuf,
    /// dnsmasq's files and the lease files: `<state>/dnsmasq`.
    pub dnsmasq: PathBuf,
}

/// The driver.
#[derive(Debug)]
pub struct NetworkDriver {
    store: ConfigStore,
    status: StatusStore,
    host: Arc<Host>,
    networks: ObjList<NetworkObj>,
    events: EventBus<NetworkEvent>,
    define_lock: tokio::sync::Mutex<()>,
    run_dir: PathBuf,
}

pub(crate) fn internal(msg: impl std::fmt::Display) -> VirtError {
    VirtError::new(
        ErrorCode::InternalError,
        ErrorDomain::Network,
        format!("internal error: {msg}"),
    )
}

pub(crate) fn operation_invalid(msg: impl std::fmt::Display) -> VirtError {
    VirtError::new(
        ErrorCode::OperationInvalid,
        ErrorDomain::Network,
        format!("Requested operation is not valid: {msg}"),
    )
}

pub(crate) fn system_error(msg: impl std::fmt::Display) -> VirtError {
    VirtError::new(
        ErrorCode::SystemError,
        ErrorDomain::Network,
        msg.to_string(),
    )
}

fn persist_error(e: &PersistError) -> VirtError {
    system_error(e)
}

/// Runs blocking work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, VirtError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, VirtError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(internal(format!("blocking task failed: {e}"))),
    }
}

/// The leases helper: a symlink to this binary under [`crate::leases::HELPER_NAME`].
fn install_helper(run_dir: &std::path::Path) -> PathBuf {
    let link = run_dir.join(crate::leases::HELPER_NAME);
    let exe = std::env::current_exe()
        .map(|p| {
            // A binary replaced on disk since we started shows as
            // "path (deleted)"; the path is what dnsmasq should run.
            let s = p.display().to_string();
            PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s))
        })
        .unwrap_or_else(|_| PathBuf::from("virtnetworkd"));
    let _ = std::fs::create_dir_all(run_dir);
    if std::fs::read_link(&link).ok().as_deref() != Some(exe.as_path())
        && let Err(e) = common::fsutil::symlink_durable(&exe, &link)
    {
        tracing::error!(
            "cannot create the leases helper link {}: {e}",
            link.display()
        );
    }
    link
}

// === impl NetworkDriver ===

impl NetworkDriver {
    /// The driver of daemon `ctx`: definitions loaded, running networks
    /// adopted, autostart networks started (once per host boot).
    pub async fn new(ctx: &Context) -> Arc<NetworkDriver> {
        let p = &ctx.paths;
        let dirs = Dirs {
            config: p.driver_config_dir("network"),
            run: p.driver_run_dir("network"),
            dnsmasq: p.driver_state_dir("dnsmasq"),
        };
        let table = std::env::var("VIRT_NETWORK_NFT_TABLE")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| crate::firewall::DEFAULT_TABLE.to_owned());
        let driver = Arc::new(NetworkDriver::with_dirs(dirs, &table));
        crate::bridge::sweep_deleting();
        let updates = driver.roll_forward_files();
        driver.load_definitions();
        driver.adopt_running().await;
        driver.finish_updates(updates).await;
        driver.autostart_once().await;
        driver
    }

    /// A driver on `dirs` with nftables table `table`; nothing loaded.
    pub fn with_dirs(dirs: Dirs, table: &str) -> NetworkDriver {
        let helper = install_helper(&dirs.run);
        let host = Arc::new(Host::new(&dirs, helper, table));
        NetworkDriver {
            store: ConfigStore::new(dirs.config, "net-edit"),
            status: StatusStore::new(dirs.run.clone()),
            host,
            networks: ObjList::new(ObjKind::NETWORK),
            events: EventBus::default(),
            define_lock: tokio::sync::Mutex::new(()),
            run_dir: dirs.run,
        }
    }

    // === loading ===

    /// Loads every definition not loaded yet (at start and on reload). A
    /// file that does not parse, or defines another name, is logged and
    /// left untouched.
    pub fn load_definitions(&self) -> usize {
        let (stored, unreadable) = match self.store.scan() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return 0;
            }
        };
        for u in unreadable {
            tracing::error!(
                "Failed to load config file '{}': {}; left untouched",
                u.path.display(),
                u.error
            );
        }
        let flags = ParseFlags {
            inactive: true,
            ..ParseFlags::default()
        };
        let mut loaded = 0;
        for sd in stored {
            if self.networks.find_by_name(&sd.name).is_some() {
                continue;
            }
            let def = match NetworkDef::parse_str(&sd.xml, flags) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(
                        file = %sd.path.display(),
                        "Failed to load config for network '{}': {e}; the file is left untouched",
                        sd.name
                    );
                    continue;
                }
            };
            if def.name != sd.name {
                tracing::error!(
                    file = %sd.path.display(),
                    "Failed to load config for network '{}': it defines network '{}'",
                    sd.name,
                    def.name
                );
                continue;
            }
            let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
            let name = def.name.clone();
            let obj = Arc::new(NetworkObj::new(Arc::new(def), true, sd.autostart));
            match self.networks.insert(&name, &uuid, obj) {
                Ok(()) => loaded += 1,
                Err(e) => {
                    tracing::error!("Failed to load config for network '{name}': {}", e.message)
                }
            }
        }
        tracing::info!(
            dir = %self.store.dir().display(),
            loaded,
            total = self.networks.len(),
            "network definitions loaded"
        );
        loaded
    }

    // === lookups ===

    fn not_found(&self, r: &ObjRef) -> VirtError {
        let kind = self.networks.kind();
        match r {
            ObjRef::Name(n) => kind.no_name(n),
            ObjRef::Uuid(u) => kind.no_uuid(&format_uuid(u)),
            ObjRef::Id(i) => kind.no_id(*i),
        }
    }

    pub(crate) fn find(&self, r: &ObjRef) -> Result<Arc<NetworkObj>, VirtError> {
        let obj = self.networks.lookup(r)?.obj;
        if obj.lock().removed {
            return Err(self.not_found(r));
        }
        Ok(obj)
    }

    /// The network `r` names.
    ///
    /// # Errors
    /// `NO_NETWORK`.
    pub fn lookup(&self, r: &ObjRef) -> Result<NetworkInfo, VirtError> {
        Ok(self.find(r)?.lock().info())
    }

    /// The networks matching `filter`, sorted by name.
    pub fn list_all(&self, filter: ListFilter) -> Vec<NetworkInfo> {
        fn want(f: Option<bool>, v: bool) -> bool {
            f.is_none_or(|f| f == v)
        }
        let mut out: Vec<NetworkInfo> = self
            .networks
            .snapshot()
            .into_iter()
            .filter_map(|e| {
                let st = e.obj.lock();
                if st.removed {
                    return None;
                }
                let i = st.info();
                (want(filter.active, i.active)
                    && want(filter.persistent, i.persistent)
                    && want(filter.autostart, i.autostart))
                .then_some(i)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The network's XML: the persistent definition with `inactive`, else
    /// the current one (live while it runs, with its `connections`).
    ///
    /// # Errors
    /// `NO_NETWORK`.
    pub fn get_xml(&self, r: &ObjRef, inactive: bool) -> Result<String, VirtError> {
        let (def, connections) = {
            let obj = self.find(r)?;
            let st = obj.lock();
            if inactive {
                (st.persistent_def(), 0)
            } else {
                let n = if st.active { st.ports.len() } else { 0 };
                (st.def.clone(), u32::try_from(n).unwrap_or(u32::MAX))
            }
        };
        let flags = FormatFlags {
            inactive,
            ..FormatFlags::default()
        };
        if connections > 0 {
            let mut d = (*def).clone();
            d.connections = connections;
            return Ok(d.to_xml(flags));
        }
        Ok(def.to_xml(flags))
    }

    /// The bridge name.
    ///
    /// # Errors
    /// `NO_NETWORK`; a network without a bridge.
    pub fn bridge_name(&self, r: &ObjRef) -> Result<String, VirtError> {
        let obj = self.find(r)?;
        let st = obj.lock();
        st.def.bridge.name.clone().ok_or_else(|| {
            internal(format!(
                "network '{}' does not have a bridge name.",
                st.def.name
            ))
        })
    }

    /// Whether the network autostarts.
    ///
    /// # Errors
    /// `NO_NETWORK`.
    pub fn get_autostart(&self, r: &ObjRef) -> Result<bool, VirtError> {
        Ok(self.find(r)?.lock().autostart)
    }

    /// Whether any network runs (keeps the daemon from its idle timeout).
    pub fn any_active(&self) -> bool {
        self.networks.snapshot().iter().any(|e| e.obj.lock().active)
    }

    // === defining ===

    /// Parses network XML for define or create.
    fn parse(xml: &str, validate: bool) -> Result<NetworkDef, VirtError> {
        let flags = ParseFlags {
            inactive: true,
            validate,
            allow_post_parse_fail: false,
        };
        NetworkDef::parse_str(xml, flags).map_err(|e| e.to_virt_error(ErrorDomain::Network))
    }

    /// Fills in the bridge name (`virbrN`, or a `%d` template) and the
    /// bridge MAC of a network with a managed bridge, and refuses a bridge
    /// name another network uses (libvirt's `networkValidate`). Runs
    /// under `define_lock`.
    fn assign_bridge(&self, def: &mut NetworkDef) -> Result<(), VirtError> {
        if !has_managed_bridge(def) {
            return Ok(());
        }
        let used: std::collections::HashSet<String> = self
            .networks
            .snapshot()
            .into_iter()
            .filter_map(|e| {
                let st = e.obj.lock();
                if st.removed || st.def.name == def.name {
                    return None;
                }
                let mut v: Vec<String> = st.def.bridge.name.iter().cloned().collect();
                if let Some(n) = &st.new_def {
                    v.extend(n.bridge.name.iter().cloned());
                }
                Some(v)
            })
            .flatten()
            .collect();
        let template = match def.bridge.name.as_deref() {
            Some(n) if !n.contains("%d") => {
                if used.contains(n) {
                    return Err(VirtError::new(
                        ErrorCode::OperationFailed,
                        ErrorDomain::Network,
                        format!("operation failed: bridge name '{n}' already in use."),
                    )
                    .with_grpc_code(tonic::Code::AlreadyExists));
                }
                None
            }
            Some(t) => Some(t.to_owned()),
            None => Some("virbr%d".to_owned()),
        };
        if let Some(t) = template {
            let pick = (0..256)
                .map(|i| t.replacen("%d", &i.to_string(), 1))
                .find(|n| !used.contains(n) && !crate::netlink::link_exists(n))
                .ok_or_else(|| internal(format!("Bridge generation exceeded max id {}", 256)))?;
            def.bridge.name = Some(pick);
        }
        if def.mac.is_none() {
            def.mac = Some(MacAddr::generate_from(os_random));
        }
        Ok(())
    }

    /// Dry run of what a start will build, so that define refuses what
    /// could never start (multiple DHCP ranges per family, bad PTR
    /// prefixes, bad NAT port ranges).
    fn check_startable(&self, def: &NetworkDef) -> Result<(), VirtError> {
        let unsupported =
            |m: String| VirtError::new(ErrorCode::ConfigUnsupported, ErrorDomain::Network, m);
        if has_managed_bridge(def) {
            self.host
                .dnsmasq
                .config(def)
                .map_err(|e| unsupported(e.to_string()))?;
            common::network::firewall::network_rules(def)
                .map_err(|e| unsupported(e.to_string()))?;
        }
        Ok(())
    }

    /// Defines (or redefines) a persistent network, as libvirt's
    /// `networkDefineXML`: parse, fill in bridge name and MAC, refuse
    /// duplicates, write the file atomically, publish DEFINED. Redefining
    /// a running network keeps the change for its next start.
    ///
    /// # Errors
    /// The XML is refused (nothing written); a duplicate name or UUID; a
    /// bridge name in use; the file cannot be written.
    pub async fn define_xml(&self, xml: &str, validate: bool) -> Result<NetworkInfo, VirtError> {
        let mut def = Self::parse(xml, validate)?;
        let _define = self.define_lock.lock().await;
        self.assign_bridge(&mut def)?;
        self.check_startable(&def)?;
        let name = def.name.clone();
        let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
        let text = def.to_xml(FormatFlags {
            inactive: true,
            ..FormatFlags::default()
        });
        let def = Arc::new(def);
        loop {
            let fresh = Arc::new(NetworkObj::new(def.clone(), true, false));
            let fresh_job = fresh
                .job
                .try_lock()
                .map_err(|_| internal("a new network's job lock is taken"))?;
            let obj = match self.networks.add_arc(&name, &uuid, || fresh.clone())? {
                common::objlist::Added::New(obj) => {
                    let (store, n, t) = (self.store.clone(), name.clone(), text.clone());
                    if let Err(e) =
                        blocking(move || store.save(&n, &t).map_err(|e| persist_error(&e))).await
                    {
                        obj.lock().removed = true;
                        self.networks.remove(&uuid);
                        return Err(e);
                    }
                    let info = obj.lock().info();
                    drop(fresh_job);
                    self.publish(&info, Lifecycle::Defined);
                    return Ok(info);
                }
                common::objlist::Added::Existing(obj) => obj,
            };
            drop(fresh_job);
            let _job = obj.job.lock().await;
            if obj.lock().removed {
                continue;
            }
            let (store, n, t) = (self.store.clone(), name.clone(), text.clone());
            blocking(move || store.save(&n, &t).map_err(|e| persist_error(&e))).await?;
            let info = {
                let mut st = obj.lock();
                if st.active {
                    st.new_def = Some(def.clone());
                } else {
                    st.def = def.clone();
                }
                st.persistent = true;
                st.info()
            };
            self.publish(&info, Lifecycle::Defined);
            return Ok(info);
        }
    }

    /// Removes a network's definition (file and autostart link); an
    /// inactive network disappears, a running one becomes transient.
    /// Publishes UNDEFINED.
    ///
    /// # Errors
    /// `NO_NETWORK`; OPERATION_INVALID for a transient network; the files
    /// cannot be removed.
    pub async fn undefine(&self, r: &ObjRef) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let (name, uuid, bridge) = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.persistent {
                return Err(operation_invalid("network is not persistent"));
            }
            (
                st.def.name.clone(),
                st.def.uuid.map(|u| u.0).unwrap_or_default(),
                st.def.bridge.name.clone(),
            )
        };
        let store = self.store.clone();
        let n = name.clone();
        blocking(move || store.delete(&n).map_err(|e| persist_error(&e))).await?;
        let (info, active) = {
            let mut st = obj.lock();
            st.autostart = false;
            st.persistent = false;
            st.new_def = None;
            let active = st.active;
            if !active {
                st.removed = true;
            }
            (st.info(), active)
        };
        if !active {
            self.networks.remove(&uuid);
            self.forget_files(&name, bridge.as_deref()).await;
        }
        self.publish(&info, Lifecycle::Undefined);
        Ok(())
    }

    /// Removes what an inactive network that is gone leaves: dnsmasq
    /// files, lease file, ports.
    async fn forget_files(&self, name: &str, bridge: Option<&str>) {
        let host = self.host.clone();
        let status = self.status.clone();
        let (n, b) = (name.to_owned(), bridge.map(str::to_owned));
        let _ = blocking(move || {
            host.dnsmasq.remove_files(&n, b.as_deref());
            status.remove_ports(&n);
            Ok(())
        })
        .await;
    }

    /// Marks or unmarks the network for autostart (the symlink).
    ///
    /// # Errors
    /// `NO_NETWORK`; OPERATION_INVALID for a transient network.
    pub async fn set_autostart(&self, r: &ObjRef, on: bool) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let name = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.persistent {
                return Err(operation_invalid(
                    "cannot set autostart for transient network",
                ));
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
                .map_err(|e| persist_error(&e))
        })
        .await?;
        obj.lock().autostart = on;
        Ok(())
    }

    // === events ===

    fn publish(&self, info: &NetworkInfo, event: Lifecycle) {
        let seq = self.events.publish(NetworkEvent {
            network: info.clone(),
            event,
        });
        tracing::debug!(seq, network = %info.name, ?event, "network event published");
    }

    /// Subscribes to network events.
    pub fn watch(&self, resume_after: Option<u64>) -> Subscription<NetworkEvent> {
        self.events.subscribe(resume_after)
    }

    /// Ends every event stream (the daemon is stopping).
    pub fn close_events(&self) {
        self.events.close();
    }
}

#[cfg(test)]
mod tests;
