//! The QEMU driver: plain Rust types, no gRPC.
//!
//! It owns the domains ([`ObjList`] of [`DomainObj`]), their definition
//! files ([`ConfigStore`]) and the event bus. Domains are only defined for
//! now (persistent and inactive); starting them comes with the lifecycle
//! work.
//!
//! Locking (`docs/locking.md`): the list's lock and a domain's state lock
//! are held for map and field operations only; a domain's job lock
//! serialises its changes and is the only lock held across an `.await`
//! (the definition file write, in `spawn_blocking`).

mod hotplug;
mod lifecycle;
mod ports;
mod reconnect;

pub use lifecycle::{REBOOT_TIMEOUT, ShutdownModes};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI32;

use common::daemon::Context;
use common::domain::DomainDef;
use common::events::{EventBus, Subscription};
use common::objlist::{Added, ObjKind, ObjList, ObjRef, UuidStr, format_uuid};
use common::xml::{FormatFlags, ParseFlags};
use common::{ErrorCode, ErrorDomain, VirtError};
use tokio::sync::OnceCell;

use crate::caps::{self, NodeInfo, Version};
use crate::domain_event::{
    DEFINED_ADDED, DEFINED_UPDATED, DomainEvent, LifecycleEvent, UNDEFINED_REMOVED,
};
use crate::domain_obj::{DomainIdent, DomainObj, DomainState};
use crate::hooks::QemuHooks;
use crate::persist::{ConfigStore, PersistError};
use crate::process::StartEnv;

/// Versions reported by GetVersion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    /// The QEMU binary's version.
    pub hypervisor: Version,
    /// Ours.
    pub daemon: Version,
}

/// Which domains [`QemuDriver::list_all`] returns; `None`/empty: any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Active (true) or inactive (false).
    pub active: Option<bool>,
    /// Persistent (true) or transient (false).
    pub persistent: Option<bool>,
    /// With (true) or without (false) autostart.
    pub autostart: Option<bool>,
    /// With or without a managed save image.
    pub managed_save: Option<bool>,
    /// With or without snapshots.
    pub has_snapshot: Option<bool>,
    /// With or without checkpoints.
    pub has_checkpoint: Option<bool>,
    /// In one of these states.
    pub states: Vec<DomainState>,
}

/// One domain in a listing: copied under the domain's state lock, with
/// the definition shared (its name and title are read from it) and the
/// UUID formatted once per domain, so a listing allocates no strings.
#[derive(Clone, Debug)]
pub struct DomainSummary {
    /// The definition in effect (name, title).
    pub def: Arc<DomainDef>,
    /// The UUID, formatted.
    pub uuid: UuidStr,
    /// The id while active.
    pub id: Option<i32>,
    /// The state.
    pub state: DomainState,
    /// Its reason.
    pub reason: i32,
    /// Whether it has a definition file.
    pub persistent: bool,
    /// Whether it autostarts.
    pub autostart: bool,
    /// Whether a managed save image exists (never, yet).
    pub has_managed_save: bool,
}

/// See [`QemuDriver::list_stamp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListStamp(u64, u64);

/// One domain as [`QemuDriver::for_each_listed`] shows it: borrowed from
/// the domain while its state lock is held.
#[derive(Debug)]
pub struct Listed<'a> {
    /// The definition in effect (name, title).
    pub def: &'a Arc<DomainDef>,
    /// The UUID, formatted.
    pub uuid: &'a UuidStr,
    /// The id while active.
    pub id: Option<i32>,
    /// The state.
    pub state: DomainState,
    /// Its reason.
    pub reason: i32,
    /// Whether it has a definition file.
    pub persistent: bool,
    /// Whether it autostarts.
    pub autostart: bool,
    /// Whether a managed save image exists (never, yet).
    pub has_managed_save: bool,
}

impl Listed<'_> {
    /// The name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The `<title>`, or empty.
    pub fn title(&self) -> &str {
        self.def.title.as_deref().unwrap_or_default()
    }
}

impl DomainSummary {
    /// The name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The `<title>`, or empty.
    pub fn title(&self) -> &str {
        self.def.title.as_deref().unwrap_or_default()
    }
}

/// libvirt's `virDomainInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// The state.
    pub state: DomainState,
    /// Maximum memory in KiB.
    pub max_mem_kib: u64,
    /// Current memory in KiB.
    pub memory_kib: u64,
    /// vCPUs.
    pub nr_virt_cpu: u32,
    /// CPU time used, ns.
    pub cpu_time_ns: u64,
}

/// The driver.
#[derive(Debug)]
pub struct QemuDriver {
    emulator: Option<PathBuf>,
    qemu_version: OnceCell<Version>,
    hooks: QemuHooks,
    store: ConfigStore,
    domains: ObjList<DomainObj>,
    events: EventBus<DomainEvent>,
    /// Where running domains live and what their commands need; `None`
    /// without a usable emulator (or in unit tests): starts are refused.
    env: Option<StartEnv>,
    /// The next domain id.
    next_id: AtomicI32,
    /// virtstoraged, for volume disks (`None` in unit tests).
    storage: Option<crate::storage::StorageClient>,
    /// virtnetworkd, for NICs on networks (`None` in unit tests).
    network: Option<crate::network::NetworkClient>,
    /// The task that releases journaled network ports.
    releaser: ports::Releaser,
}

fn internal(msg: impl std::fmt::Display) -> VirtError {
    VirtError::new(
        ErrorCode::InternalError,
        ErrorDomain::Qemu,
        format!("internal error: {msg}"),
    )
}

fn persist_error(e: &PersistError) -> VirtError {
    VirtError::new(ErrorCode::SystemError, ErrorDomain::Qemu, e.to_string())
}

fn operation_invalid(msg: &str) -> VirtError {
    VirtError::new(
        ErrorCode::OperationInvalid,
        ErrorDomain::Qemu,
        format!("Requested operation is not valid: {msg}"),
    )
}

/// Runs blocking file work (a durable write: ~1 ms of waiting for the
/// disk) without stalling the runtime. On the daemon's multi-thread
/// runtime the calling task keeps its thread and the runtime moves its
/// other work to another one (`block_in_place`), so the caller continues
/// right after the write, with no hand-over to a pool thread and back
/// (two cross-thread wake-ups on the call's path). Elsewhere (a
/// current-thread runtime, as in unit tests) the work goes to the blocking
/// pool.
async fn blocking<T, F>(f: F) -> Result<T, VirtError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PersistError> + Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(f).map_err(|e| persist_error(&e));
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| persist_error(&e)),
        Err(e) => Err(internal(format!("file task failed: {e}"))),
    }
}

/// CPU time (user + system) of process `pid`, from `/proc/PID/stat`, as
/// libvirt's `virProcessGetStatInfo`; 0 when unreadable.
fn process_cpu_time_ns(pid: i32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory arguments.
    let hz = u64::try_from(unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    (ticks(11) + ticks(12)) * (1_000_000_000 / hz)
}

/// Why a stored definition was not loaded.
#[derive(Debug)]
enum LoadError {
    Read(std::io::Error),
    Parse(common::xml::XmlError),
}

/// Reads and parses `files` (as stored: inactive, no validation, post-parse
/// failures kept), one at a time; results in the order of `files`. (Parsing
/// on more threads gains nothing with the daemon's single malloc arena:
/// measured 23 ms for 210 definitions on one thread and on two.)
fn parse_stored(
    files: &[crate::persist::Listed],
    hooks: &QemuHooks,
) -> Vec<Result<DomainDef, LoadError>> {
    let flags = ParseFlags {
        inactive: true,
        validate: false,
        allow_post_parse_fail: true,
    };
    files
        .iter()
        .map(|l| {
            let xml = std::fs::read_to_string(&l.path).map_err(LoadError::Read)?;
            DomainDef::parse_str(&xml, flags, hooks).map_err(LoadError::Parse)
        })
        .collect()
}

// === impl QemuDriver ===

impl QemuDriver {
    /// The driver of daemon `ctx`: the default emulator's capabilities
    /// (probed once, then cached on disk), every stored definition loaded,
    /// running domains reconnected, autostart domains started (once per
    /// host boot).
    pub async fn new(ctx: &Context) -> Arc<QemuDriver> {
        let paths = &ctx.paths;
        let emulator = caps::find_emulator();
        let cache_dir = paths.driver_state_dir("qemu").join("capabilities");
        let caps = match emulator.clone() {
            Some(bin) => {
                let cache = caps::qemu::CapsCache::with_dir(cache_dir);
                match tokio::task::spawn_blocking(move || cache.get(&bin)).await {
                    Ok(Ok(c)) => Some(c),
                    Ok(Err(e)) => {
                        tracing::error!("cannot probe QEMU: {e}; domains cannot start");
                        None
                    }
                    Err(e) => {
                        tracing::error!("QEMU probe task failed: {e}");
                        None
                    }
                }
            }
            None => {
                tracing::warn!("no qemu-system binary found: domains cannot start");
                None
            }
        };
        let hooks = match &caps {
            Some(c) => QemuHooks::with_caps(c.clone()),
            None => QemuHooks::new(),
        };
        let env = match (&emulator, &caps) {
            (Some(bin), Some(c)) => Some(StartEnv {
                lib_dir: paths.driver_state_dir("qemu"),
                run_dir: paths.driver_run_dir("qemu"),
                log_dir: paths.driver_log_dir("qemu"),
                emulator: bin.display().to_string(),
                caps: c.command_caps(),
                conf: crate::command::QemuConf::default(),
                kvm: std::path::Path::new("/dev/kvm").exists(),
            }),
            _ => None,
        };
        let mut driver = QemuDriver::with_config_dir(paths.driver_config_dir("qemu"));
        driver.hooks = hooks;
        driver.env = env;
        driver.storage = Some(crate::storage::StorageClient::new(paths, true));
        driver.network = Some(crate::network::NetworkClient::new(paths, true));
        let driver = Arc::new(driver);
        driver.load_definitions();
        driver.reconnect_all().await;
        driver.autostart_once();
        driver
    }

    /// A driver keeping its definitions in `dir`, nothing loaded yet.
    pub fn with_config_dir(dir: PathBuf) -> QemuDriver {
        QemuDriver {
            emulator: caps::find_emulator(),
            qemu_version: OnceCell::new(),
            hooks: QemuHooks::new(),
            store: ConfigStore::new(dir),
            domains: ObjList::new(ObjKind::DOMAIN),
            events: EventBus::default(),
            env: None,
            next_id: AtomicI32::new(1),
            storage: None,
            network: None,
            releaser: ports::Releaser::default(),
        }
    }

    /// QEMU's and our versions; QEMU's is probed once.
    pub async fn version(&self) -> Result<Versions, VirtError> {
        let daemon = Version::parse(common::daemon::VERSION).unwrap_or_default();
        let emulator = self.emulator.as_deref().ok_or_else(|| {
            VirtError::new(
                ErrorCode::InternalError,
                ErrorDomain::Qemu,
                "Cannot find QEMU binary qemu-system-x86_64: No such file or directory",
            )
        })?;
        let hypervisor = *self
            .qemu_version
            .get_or_try_init(|| caps::probe_version(emulator))
            .await?;
        Ok(Versions { hypervisor, daemon })
    }

    pub fn hostname(&self) -> Result<String, VirtError> {
        nix::unistd::gethostname()
            .map_err(|e| {
                VirtError::new(
                    ErrorCode::SystemError,
                    ErrorDomain::Qemu,
                    format!("Cannot get host name: {e}"),
                )
            })?
            .into_string()
            .map_err(|_| {
                VirtError::new(
                    ErrorCode::InternalError,
                    ErrorDomain::Qemu,
                    "Host name is not UTF-8",
                )
            })
    }

    pub fn node_info(&self) -> Result<NodeInfo, VirtError> {
        caps::node_info()
    }

    // === loading ===

    /// Loads every stored definition not loaded yet (at start, and on
    /// reload). A file that does not parse is logged and left untouched; a
    /// definition that fails the driver's post-parse is kept as written and
    /// marked (libvirt's `VIR_DOMAIN_DEF_PARSE_ALLOW_POST_PARSE_FAIL`).
    /// Nothing is ever written here.
    ///
    /// Each file is read just before it is parsed, never all texts at
    /// once.
    pub fn load_definitions(&self) -> usize {
        let listed = match self.store.list() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return 0;
            }
        };
        let todo: Vec<crate::persist::Listed> = listed
            .into_iter()
            .filter(|l| self.domains.find_by_name(&l.name).is_none())
            .collect();
        let parsed = parse_stored(&todo, &self.hooks);
        let mut loaded = 0;
        for (sd, res) in todo.iter().zip(parsed) {
            let def = match res {
                Ok(d) => d,
                Err(LoadError::Read(e)) => {
                    tracing::error!(
                        file = %sd.path.display(),
                        "Failed to load config file '{}': {e}; left untouched",
                        sd.path.display(),
                    );
                    continue;
                }
                Err(LoadError::Parse(e)) => {
                    tracing::error!(
                        file = %sd.path.display(),
                        "Failed to load config for domain '{}': {e}; the file is left untouched",
                        sd.name
                    );
                    continue;
                }
            };
            if def.name != sd.name {
                tracing::error!(
                    file = %sd.path.display(),
                    "Failed to load config for domain '{}': it defines domain '{}'; the file is left untouched",
                    sd.name,
                    def.name
                );
                continue;
            }
            if def.post_parse_failed {
                tracing::warn!(
                    domain = %def.name,
                    "the definition of domain '{}' failed post-parse; kept as written",
                    def.name
                );
            }
            let uuid = def.uuid.0;
            let name = def.name.clone();
            let obj = Arc::new(DomainObj::new_inactive(Arc::new(def), true, sd.autostart));
            match self.domains.insert(&name, &uuid, obj) {
                Ok(()) => loaded += 1,
                Err(e) => tracing::error!(
                    file = %sd.path.display(),
                    "Failed to load config for domain '{name}': {}",
                    e.message
                ),
            }
        }
        tracing::info!(
            dir = %self.store.dir().display(),
            loaded,
            total = self.domains.len(),
            "domain definitions loaded"
        );
        loaded
    }

    // === lookups ===

    fn not_found(&self, r: &ObjRef) -> VirtError {
        let kind = self.domains.kind();
        match r {
            ObjRef::Name(n) => kind.no_name(n),
            ObjRef::Uuid(u) => kind.no_uuid(&format_uuid(u)),
            ObjRef::Id(i) => kind.no_id(*i),
        }
    }

    fn find(&self, r: &ObjRef) -> Result<Arc<DomainObj>, VirtError> {
        let obj = self.domains.lookup_obj(r)?;
        if obj.lock().removed {
            return Err(self.not_found(r));
        }
        Ok(obj)
    }

    /// The domain `r` names.
    ///
    /// # Errors
    /// `NO_DOMAIN` with libvirt's message.
    pub fn lookup(&self, r: &ObjRef) -> Result<DomainIdent, VirtError> {
        Ok(self.find(r)?.lock().ident())
    }

    /// The domains matching `filter`, sorted by name.
    pub fn list_all(&self, filter: &ListFilter) -> Vec<DomainSummary> {
        let mut out = Vec::new();
        self.for_each_listed(filter, |d| {
            out.push(DomainSummary {
                def: Arc::clone(d.def),
                uuid: *d.uuid,
                id: d.id,
                state: d.state,
                reason: d.reason,
                persistent: d.persistent,
                autostart: d.autostart,
                has_managed_save: d.has_managed_save,
            });
        });
        out
    }

    /// Calls `f` for each domain matching `filter`, in name order, with
    /// the domain's state lock held: `f` must be short (copy or encode a
    /// few fields; no I/O, no `.await`, no other lock). The order comes
    /// from the list's sorted snapshot, kept until a domain is added or
    /// removed, so a listing neither sorts nor allocates per domain.
    pub fn for_each_listed(&self, filter: &ListFilter, mut f: impl FnMut(&Listed<'_>)) {
        fn want(f: Option<bool>, v: bool) -> bool {
            f.is_none_or(|f| f == v)
        }
        let sorted = self.domains.sorted_by_name();
        for obj in sorted.iter() {
            let st = obj.lock_to_read();
            if st.removed {
                continue;
            }
            let keep = want(filter.active, st.is_active())
                && want(filter.persistent, st.persistent)
                && want(filter.autostart, st.autostart)
                && want(filter.managed_save, false)
                && want(filter.has_snapshot, false)
                && want(filter.has_checkpoint, false)
                && (filter.states.is_empty() || filter.states.contains(&st.state));
            if keep {
                f(&Listed {
                    def: &st.def,
                    uuid: &obj.uuid_str,
                    id: st.id,
                    state: st.state,
                    reason: st.reason,
                    persistent: st.persistent,
                    autostart: st.autostart,
                    has_managed_save: false,
                });
            }
        }
    }

    /// The domain's XML: the persistent definition with `flags.inactive`,
    /// else the current one. The text is cached per domain for the
    /// definition it was formatted from (definitions never change in
    /// place), so repeated calls copy it instead of formatting again.
    ///
    /// # Errors
    /// `NO_DOMAIN`.
    pub fn get_xml(&self, r: &ObjRef, flags: FormatFlags) -> Result<Arc<str>, VirtError> {
        let obj = self.find(r)?;
        let def = {
            let st = obj.lock();
            let def = if flags.inactive {
                st.persistent_def().clone()
            } else {
                st.def.clone()
            };
            if let Some(xml) = st.cached_xml(&def, flags) {
                return Ok(xml);
            }
            def
        };
        // Formatting happens outside the state lock.
        let xml: Arc<str> = def.to_xml(flags).into();
        obj.lock().cache_xml(&def, flags, Arc::clone(&xml));
        Ok(xml)
    }

    /// State and reason.
    ///
    /// # Errors
    /// `NO_DOMAIN`.
    pub fn get_state(&self, r: &ObjRef) -> Result<(DomainState, i32), VirtError> {
        let obj = self.find(r)?;
        let st = obj.lock();
        Ok((st.state, st.reason))
    }

    /// libvirt's `virDomainGetInfo`.
    ///
    /// # Errors
    /// `NO_DOMAIN`.
    pub fn get_info(&self, r: &ObjRef) -> Result<DomainInfo, VirtError> {
        let obj = self.find(r)?;
        let (mut info, pid) = {
            let st = obj.lock();
            (
                DomainInfo {
                    state: st.state,
                    max_mem_kib: st.def.total_memory(),
                    memory_kib: st.def.memory.current,
                    nr_virt_cpu: st.def.vcpus.current(),
                    cpu_time_ns: 0,
                },
                st.runtime.as_ref().map(|rt| rt.pid),
            )
        };
        if let Some(pid) = pid {
            info.cpu_time_ns = process_cpu_time_ns(pid);
        }
        Ok(info)
    }

    /// Whether the domain autostarts.
    ///
    /// # Errors
    /// `NO_DOMAIN`.
    pub fn get_autostart(&self, r: &ObjRef) -> Result<bool, VirtError> {
        Ok(self.find(r)?.lock().autostart)
    }

    /// Changes whenever what [`QemuDriver::for_each_listed`] shows may
    /// have changed (a domain added or removed, any domain's state locked
    /// for a change): a listing made after reading it is still true while
    /// it is the same.
    pub fn list_stamp(&self) -> ListStamp {
        // Both read before the listing they stamp.
        ListStamp(
            self.domains.version(),
            crate::domain_obj::state_generation(),
        )
    }

    /// How many domains are listed.
    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    /// Whether any domain runs (keeps the daemon from its idle timeout).
    pub fn any_active(&self) -> bool {
        self.domains
            .snapshot()
            .iter()
            .any(|e| e.obj.lock().is_active())
    }

    // === changes ===

    /// Defines (or redefines) a persistent domain, as libvirt's
    /// `qemuDomainDefineXMLFlags`: parse, refuse duplicates, write the file
    /// atomically, then publish DEFINED (ADDED or UPDATED).
    ///
    /// # Errors
    /// The XML is refused (INVALID_ARGUMENT with the path-naming message,
    /// nothing written); a duplicate name or UUID (DOM_EXIST); the file
    /// cannot be written (nothing changed).
    pub async fn define_xml(&self, xml: &str, validate: bool) -> Result<DomainIdent, VirtError> {
        let flags = ParseFlags {
            inactive: true,
            validate,
            allow_post_parse_fail: false,
        };
        let def = DomainDef::parse_str(xml, flags, &self.hooks)
            .map_err(|e| e.to_virt_error(ErrorDomain::Domain))?;
        if def.name.is_empty() || def.name.contains('/') {
            return Err(VirtError::new(
                ErrorCode::XmlDetail,
                ErrorDomain::Domain,
                format!("name: name {} cannot contain '/'", def.name),
            ));
        }
        let name = def.name.clone();
        let uuid = def.uuid.0;
        let text = def.to_xml(FormatFlags {
            inactive: true,
            secure: true,
            migratable: false,
        });
        let def = Arc::new(def);
        loop {
            // A new object is published with its job already taken, so no
            // other change of it can start before its file exists.
            let fresh = Arc::new(DomainObj::new_inactive(def.clone(), true, false));
            let fresh_job = fresh
                .job
                .try_lock()
                .map_err(|_| internal("a new domain's job lock is taken"))?;
            let obj = match self.domains.add_arc(&name, &uuid, || fresh.clone())? {
                Added::New(obj) => {
                    let (store, n, t) = (self.store.clone(), name.clone(), text.clone());
                    if let Err(e) = blocking(move || store.save(&n, &t)).await {
                        obj.lock().removed = true;
                        self.domains.remove(&uuid);
                        return Err(e);
                    }
                    let ident = obj.lock().ident();
                    drop(fresh_job);
                    self.publish(DomainEvent::lifecycle(
                        ident.clone(),
                        LifecycleEvent::Defined,
                        DEFINED_ADDED,
                    ));
                    return Ok(ident);
                }
                Added::Existing(obj) => obj,
            };
            drop(fresh_job);
            let _job = obj.begin_job().await?;
            if obj.lock().removed {
                // Undefined while we waited: define it anew.
                continue;
            }
            let (store, n, t) = (self.store.clone(), name.clone(), text.clone());
            blocking(move || store.save(&n, &t)).await?;
            let (ident, detail) = {
                let mut st = obj.lock();
                let detail = if st.persistent {
                    DEFINED_UPDATED
                } else {
                    DEFINED_ADDED
                };
                if st.is_active() {
                    st.new_def = Some(def.clone());
                } else {
                    st.def = def.clone();
                }
                st.persistent = true;
                st.post_parse_failed = false;
                (st.ident(), detail)
            };
            self.publish(DomainEvent::lifecycle(
                ident.clone(),
                LifecycleEvent::Defined,
                detail,
            ));
            return Ok(ident);
        }
    }

    /// Removes a domain's definition (file and autostart link); an inactive
    /// domain disappears, a running one would become transient. Publishes
    /// UNDEFINED REMOVED.
    ///
    /// # Errors
    /// `NO_DOMAIN`; OPERATION_INVALID for a transient domain; the files
    /// cannot be removed.
    pub async fn undefine(&self, r: &ObjRef) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.begin_job().await?;
        let (name, uuid) = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.persistent {
                return Err(operation_invalid("cannot undefine transient domain"));
            }
            (st.def.name.clone(), st.def.uuid.0)
        };
        let store = self.store.clone();
        let n = name.clone();
        blocking(move || store.delete(&n)).await?;
        let (ident, active) = {
            let mut st = obj.lock();
            st.autostart = false;
            st.persistent = false;
            st.new_def = None;
            let active = st.is_active();
            if !active {
                st.removed = true;
            }
            (st.ident(), active)
        };
        if !active {
            self.domains.remove(&uuid);
        }
        self.publish(DomainEvent::lifecycle(
            ident,
            LifecycleEvent::Undefined,
            UNDEFINED_REMOVED,
        ));
        Ok(())
    }

    /// Marks or unmarks the domain for autostart (the symlink).
    ///
    /// # Errors
    /// `NO_DOMAIN`; OPERATION_INVALID for a transient domain; the link
    /// cannot be changed.
    pub async fn set_autostart(&self, r: &ObjRef, on: bool) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.begin_job().await?;
        let name = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.persistent {
                return Err(operation_invalid(
                    "cannot set autostart for transient domain",
                ));
            }
            if st.autostart == on {
                return Ok(());
            }
            st.def.name.clone()
        };
        let store = self.store.clone();
        blocking(move || store.set_autostart(&name, on)).await?;
        obj.lock().autostart = on;
        Ok(())
    }

    // === events ===

    fn publish(&self, ev: DomainEvent) {
        let seq = self.events.publish(ev);
        tracing::debug!(seq, "domain event published");
    }

    /// Subscribes to domain events (see [`EventBus::subscribe`]).
    pub fn watch(&self, resume_after: Option<u64>) -> Subscription<DomainEvent> {
        self.events.subscribe(resume_after)
    }

    /// Ends every event stream (the daemon is stopping).
    pub fn close_events(&self) {
        self.events.close();
    }
}

#[cfg(test)]
mod tests {
    use common::events::Item;

    use super::*;

    fn domain_xml(name: &str, uuid: &str) -> String {
        format!(
            "<domain type='qemu'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  \
             <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  \
             <os><type arch='x86_64' machine='q35'>hvm</type></os>\n  \
             <devices><emulator>/bin/sh</emulator></devices>\n</domain>\n"
        )
    }

    const U1: &str = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
    const U2: &str = "c7a5fdbd-edaf-9455-926a-d65c16db1810";

    fn driver() -> (tempfile::TempDir, QemuDriver) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = QemuDriver::with_config_dir(tmp.path().join("qemu"));
        (tmp, d)
    }

    fn name(n: &str) -> ObjRef {
        ObjRef::Name(n.to_owned())
    }

    #[tokio::test]
    async fn define_lookup_undefine() {
        let (tmp, d) = driver();
        let mut sub = d.watch(None);
        let id = d
            .define_xml(&domain_xml("vm1", U1), false)
            .await
            .expect("define");
        assert_eq!(id.name, "vm1");
        assert_eq!(format_uuid(&id.uuid), U1);
        assert!(tmp.path().join("qemu/vm1.xml").is_file());
        assert_eq!(
            d.get_state(&name("vm1")).expect("state"),
            (DomainState::Shutoff, 0)
        );
        let info = d.get_info(&name("vm1")).expect("info");
        assert_eq!((info.max_mem_kib, info.nr_virt_cpu), (65536, 1));
        match sub.next().await {
            Some(Item::Event(e)) => {
                assert_eq!(e.seq, 1);
                assert_eq!(
                    e.payload,
                    DomainEvent::lifecycle(id.clone(), LifecycleEvent::Defined, DEFINED_ADDED)
                );
            }
            other => panic!("{other:?}"),
        }
        d.define_xml(&domain_xml("vm1", U1), false)
            .await
            .expect("redefine");
        match sub.next().await {
            Some(Item::Event(e)) => assert_eq!(
                e.payload,
                DomainEvent::lifecycle(id.clone(), LifecycleEvent::Defined, DEFINED_UPDATED)
            ),
            other => panic!("{other:?}"),
        }
        d.set_autostart(&name("vm1"), true)
            .await
            .expect("autostart");
        assert!(d.get_autostart(&name("vm1")).expect("get"));
        assert!(tmp.path().join("qemu/autostart/vm1.xml").exists());
        d.undefine(&name("vm1")).await.expect("undefine");
        assert!(!tmp.path().join("qemu/vm1.xml").exists());
        assert!(std::fs::symlink_metadata(tmp.path().join("qemu/autostart/vm1.xml")).is_err());
        let e = d.lookup(&name("vm1")).expect_err("gone");
        assert_eq!(
            e.message,
            "Domain not found: no domain with matching name 'vm1'"
        );
        match sub.next().await {
            Some(Item::Event(e)) => assert_eq!(
                e.payload,
                DomainEvent::lifecycle(id, LifecycleEvent::Undefined, UNDEFINED_REMOVED)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn duplicates_and_bad_xml_write_nothing() {
        let (tmp, d) = driver();
        d.define_xml(&domain_xml("vm1", U1), false)
            .await
            .expect("define");
        let e = d
            .define_xml(&domain_xml("vm1", U2), false)
            .await
            .expect_err("dup name");
        assert_eq!(e.code, ErrorCode::DomExist);
        let e = d
            .define_xml(&domain_xml("vm2", U1), false)
            .await
            .expect_err("dup uuid");
        assert_eq!(e.code, ErrorCode::DomExist);
        let e = d
            .define_xml("<domain type='qemu'><name>x</name>", false)
            .await
            .expect_err("bad");
        assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument);
        let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("qemu"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["vm1.xml"]);
        assert_eq!(d.list_all(&ListFilter::default()).len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_defines_of_one_name_admit_one_uuid() {
        let (tmp, d) = driver();
        let d = Arc::new(d);
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                let uuid = format!("c7a5fdbd-edaf-9455-926a-d65c16db18{i:02}");
                d.define_xml(&domain_xml("race", &uuid), false).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(e.code, ErrorCode::DomExist, "{e:?}"),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(d.list_all(&ListFilter::default()).len(), 1);
        let files: Vec<_> = std::fs::read_dir(tmp.path().join("qemu"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(files, ["race.xml"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn define_and_undefine_race_stays_consistent() {
        let (tmp, d) = driver();
        let d = Arc::new(d);
        for _ in 0..20 {
            let a = {
                let d = d.clone();
                tokio::spawn(async move { d.define_xml(&domain_xml("vm", U1), false).await })
            };
            let b = {
                let d = d.clone();
                tokio::spawn(async move { d.undefine(&name("vm")).await })
            };
            a.await.expect("define task").expect("define");
            let _ = b.await.expect("undefine task");
            // Listed if and only if its file exists.
            let listed = d.lookup(&name("vm")).is_ok();
            assert_eq!(listed, tmp.path().join("qemu/vm.xml").exists());
        }
    }

    #[tokio::test]
    async fn filters_and_reload() {
        let (tmp, d) = driver();
        d.define_xml(&domain_xml("b", U1), false).await.expect("b");
        d.define_xml(&domain_xml("a", U2), false).await.expect("a");
        d.set_autostart(&name("b"), true).await.expect("autostart");
        let names = |f: &ListFilter| -> Vec<String> {
            d.list_all(f).iter().map(|s| s.name().to_owned()).collect()
        };
        assert_eq!(names(&ListFilter::default()), ["a", "b"]);
        let f = ListFilter {
            autostart: Some(true),
            ..ListFilter::default()
        };
        assert_eq!(names(&f), ["b"]);
        let f = ListFilter {
            active: Some(true),
            ..ListFilter::default()
        };
        assert!(names(&f).is_empty());
        let f = ListFilter {
            states: vec![DomainState::Shutoff],
            persistent: Some(true),
            ..ListFilter::default()
        };
        assert_eq!(names(&f), ["a", "b"]);

        // A second driver on the same directory loads both, with autostart.
        let d2 = QemuDriver::with_config_dir(tmp.path().join("qemu"));
        assert_eq!(d2.load_definitions(), 2);
        assert!(d2.get_autostart(&name("b")).expect("b"));
        assert!(!d2.get_autostart(&name("a")).expect("a"));
        assert_eq!(d2.load_definitions(), 0);
    }
}
