//! Running domains: start (through the phases of [`crate::process`]),
//! shutdown, reboot (fake reboot), reset, destroy, suspend/resume, the
//! per-domain watcher of QMP events and process exit, and the stop that
//! releases what the start took.
//!
//! Locking (docs/locking.md): every change takes the domain's job; the
//! state lock is held only to read or swap fields; no lock is held across
//! a monitor call except the job. Destroy kills before it takes the job,
//! so a stuck job cannot keep a domain from being destroyed. The watcher
//! takes the job only to finish a stop or a fake reboot, in tasks of
//! their own, so it keeps reading events meanwhile.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use common::domain::DomainDef;
use common::domain::lifecycle::LifecycleAction;
use common::objlist::ObjRef;
use common::xml::{FormatFlags, ParseFlags};
use common::{ErrorCode, ErrorDomain, VirtError};
use nix::sys::signal::Signal;

use super::{QemuDriver, internal, operation_invalid};
use crate::domain_event::{DomainEvent, EventBody, LifecycleEvent};
use crate::domain_obj::{
    DomainIdent, DomainObj, DomainState, MonitorState, Runtime, StopReason, reason,
};
use crate::monitor::{EventReceiver, Monitor, MonitorEvent};
use crate::process::{start, status};

/// How long QEMU has to answer its monitor after it was spawned.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long QEMU has to exit on SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long a killed QEMU has to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The default bound of a reboot: the guest must act on the power button
/// within it.
pub const REBOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// libvirt's detail numbers of the lifecycle events this file emits.
mod detail {
    pub const STARTED_BOOTED: i32 = 0;
    pub const SUSPENDED_PAUSED: i32 = 0;
    pub const RESUMED_UNPAUSED: i32 = 0;
    pub const SHUTDOWN_FINISHED: i32 = 0;
    pub const SHUTDOWN_GUEST: i32 = 1;
    pub const SHUTDOWN_HOST: i32 = 2;
    pub const CRASHED_PANICKED: i32 = 0;
}

/// How to ask for a shutdown or reboot (libvirt's flag bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownModes {
    /// ACPI power button.
    pub acpi: bool,
    /// Guest agent.
    pub agent: bool,
    /// initctl (containers).
    pub initctl: bool,
    /// A signal (containers).
    pub signal: bool,
    /// Paravirt (Xen).
    pub paravirt: bool,
}

impl ShutdownModes {
    fn check(self) -> Result<(), VirtError> {
        if self.initctl || self.signal || self.paravirt {
            return Err(VirtError::new(
                ErrorCode::ArgumentUnsupported,
                ErrorDomain::Qemu,
                "argument unsupported: only the ACPI power button and the guest agent are supported",
            ));
        }
        if self.agent && !self.acpi {
            return Err(VirtError::new(
                ErrorCode::ArgumentUnsupported,
                ErrorDomain::Qemu,
                "argument unsupported: QEMU guest agent is not configured",
            ));
        }
        Ok(())
    }
}

pub(super) fn not_running() -> VirtError {
    operation_invalid("domain is not running")
}

fn monitor_error(e: crate::monitor::MonitorError) -> VirtError {
    e.to_virt_error(None)
}

impl QemuDriver {
    // === start ===

    /// Starts a defined domain, running or `paused`.
    ///
    /// # Errors
    /// `NO_DOMAIN`; OPERATION_INVALID when it is active; whatever a start
    /// phase reports (nothing stays behind then).
    pub async fn start(
        self: &Arc<Self>,
        r: &ObjRef,
        paused: bool,
    ) -> Result<DomainIdent, VirtError> {
        let obj = self.find(r)?;
        let _job = obj.begin_job().await?;
        let def = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if st.is_active() {
                return Err(operation_invalid("domain is already running"));
            }
            st.def.clone()
        };
        let def = self.complete_post_parse(&obj, def)?;
        self.start_locked(&obj, &def, paused).await
    }

    /// Creates and starts a transient domain from `xml`; it disappears
    /// when it stops. A persistent domain of that name and UUID that is
    /// inactive is started with this definition instead (libvirt's
    /// behaviour).
    ///
    /// # Errors
    /// Bad XML (nothing changed), a duplicate, or a failed start (the
    /// domain is gone again).
    pub async fn create_xml(
        self: &Arc<Self>,
        xml: &str,
        paused: bool,
        validate: bool,
    ) -> Result<DomainIdent, VirtError> {
        let flags = ParseFlags {
            inactive: true,
            validate,
            allow_post_parse_fail: false,
        };
        let def = DomainDef::parse_str(xml, flags, &self.hooks)
            .map_err(|e| e.to_virt_error(ErrorDomain::Domain))?;
        let name = def.name.clone();
        let uuid = def.uuid.0;
        let def = Arc::new(def);
        let fresh = Arc::new(DomainObj::new_inactive(def.clone(), false, false));
        let fresh_job = fresh
            .job
            .try_lock()
            .map_err(|_| internal("a new domain's job lock is taken"))?;
        match self.domains.add_arc(&name, &uuid, || fresh.clone())? {
            common::objlist::Added::New(obj) => {
                let res = self.start_locked(&obj, &def, paused).await;
                if res.is_err() {
                    obj.lock().removed = true;
                    self.domains.remove(&uuid);
                }
                drop(fresh_job);
                res
            }
            common::objlist::Added::Existing(obj) => {
                drop(fresh_job);
                let _job = obj.begin_job().await?;
                {
                    let st = obj.lock();
                    if st.removed {
                        return Err(self.not_found(&ObjRef::Name(name)));
                    }
                    if st.is_active() {
                        return Err(VirtError::new(
                            ErrorCode::OperationInvalid,
                            ErrorDomain::Qemu,
                            format!(
                                "Requested operation is not valid: domain '{name}' is already active"
                            ),
                        ));
                    }
                }
                self.start_locked(&obj, &def, paused).await
            }
        }
    }

    /// A definition that failed post-parse at load gets it again before it
    /// starts; on success the completed definition replaces it.
    fn complete_post_parse(
        &self,
        obj: &DomainObj,
        def: Arc<DomainDef>,
    ) -> Result<Arc<DomainDef>, VirtError> {
        if !def.post_parse_failed {
            return Ok(def);
        }
        let xml = def.to_xml(FormatFlags {
            inactive: true,
            secure: false,
            migratable: false,
        });
        let flags = ParseFlags {
            inactive: true,
            validate: false,
            allow_post_parse_fail: false,
        };
        let fixed = DomainDef::parse_str(&xml, flags, &self.hooks)
            .map_err(|e| e.to_virt_error(ErrorDomain::Domain))?;
        let fixed = Arc::new(fixed);
        let mut st = obj.lock();
        st.def = fixed.clone();
        st.post_parse_failed = false;
        Ok(fixed)
    }

    /// The start itself; the caller holds the job and checked that the
    /// domain is inactive.
    async fn start_locked(
        self: &Arc<Self>,
        obj: &Arc<DomainObj>,
        def: &Arc<DomainDef>,
        paused: bool,
    ) -> Result<DomainIdent, VirtError> {
        let env = self.env.as_ref().ok_or_else(|| {
            VirtError::new(
                ErrorCode::InternalError,
                ErrorDomain::Qemu,
                format!(
                    "internal error: cannot start domain '{}': no usable QEMU emulator on this host",
                    def.name
                ),
            )
        })?;
        let volumes = match &self.storage {
            Some(s) if !crate::storage::volumes_of(def).is_empty() => {
                s.resolve_for_start(def).await?
            }
            _ => Vec::new(),
        };
        // The start record: written before anything on the host changes,
        // so that a daemon killed at any moment of the start finds what to
        // undo (docs/state-files.md).
        let id = self.next_id();
        let port_ids: Vec<(String, String)> = crate::network::network_nics(def)
            .into_iter()
            .map(|(_, network, _, _)| (network, common::xml::values::Uuid::generate().to_string()))
            .collect();
        let record_file = env.status_file(&def.name);
        let record = status::Status {
            state: 0,
            reason: 0,
            pid: 0,
            start_time: None,
            paths: env.paths(def, id),
            fake_reboot: false,
            pending_removals: Vec::new(),
            domain_xml: format!(
                "<domain><name>{}</name><uuid>{}</uuid></domain>",
                common::xml::escape(&def.name),
                def.uuid
            ),
            starting: true,
            ports: port_ids.clone(),
        };
        {
            let _io = obj.status_io.lock().unwrap_or_else(PoisonError::into_inner);
            write_status(&record_file, &record)?;
        }
        let launched = async {
            let ports = self.create_ports(def, &port_ids).await?;
            if !ports.is_empty() {
                self.watch_network_starts();
            }
            let launched = async {
                let mut with_ports = (**def).clone();
                crate::network::apply(&mut with_ports, &ports);
                let nets = plan_nets(&with_ports, &ports)?;
                let prepared = start::prepare_domain(&with_ports, id, env, &volumes, &nets)?;
                let host = prepared.prepare_host()?;
                let launched = host.launch()?;
                let connected = launched.connect(MONITOR_TIMEOUT).await?;
                connected.finish(paused).await
            }
            .await;
            if launched.is_err() {
                self.release_ports(&ports);
            }
            launched
        }
        .await;
        let started = match launched {
            Ok(s) => s,
            Err(e) => {
                // Every port the record names, also one whose creation
                // timed out after virtnetworkd made it.
                self.release_ports_of(&port_ids);
                let _io = obj.status_io.lock().unwrap_or_else(PoisonError::into_inner);
                status::remove(&record_file);
                return Err(e);
            }
        };
        let start::Started {
            def: live,
            id,
            paths,
            child,
            pidfd,
            start_time,
            monitor,
            events,
        } = started;
        let pid = pidfd.pid();
        let rt = Arc::new(Runtime::new(
            pid,
            start_time,
            pidfd,
            Some(child),
            paths,
            MonitorState::Connected(monitor.with_timeout(crate::bounds::monitor())),
        ));
        let (state, why) = if paused {
            (DomainState::Paused, reason::PAUSED_USER)
        } else {
            (DomainState::Running, reason::RUNNING_BOOTED)
        };
        let ident = {
            let mut st = obj.lock();
            if st.persistent {
                st.new_def = Some(st.def.clone());
            }
            st.def = Arc::new(live);
            st.id = Some(id);
            st.state = state;
            st.reason = why;
            st.runtime = Some(rt.clone());
            st.fake_reboot = false;
            st.stop_reason = None;
            st.pause_reason = None;
            st.stop_pending = false;
            st.ident()
        };
        if let Err(e) = self.save_status(obj) {
            // Not recorded means not recoverable after a restart: undo.
            obj.lock().stop_reason = Some(StopReason::Failed);
            let _ = kill(&rt, false).await;
            self.process_stopped(obj, &rt);
            return Err(e);
        }
        tracing::info!(domain = %ident.name, id, pid, "domain started");
        self.publish(DomainEvent::lifecycle(
            ident.clone(),
            LifecycleEvent::Started,
            detail::STARTED_BOOTED,
        ));
        if paused {
            self.publish(DomainEvent::lifecycle(
                ident.clone(),
                LifecycleEvent::Suspended,
                detail::SUSPENDED_PAUSED,
            ));
        }
        self.spawn_watcher(obj.clone(), rt, events);
        Ok(ident)
    }

    /// Follows virtnetworkd's events from now on (once): when a network
    /// starts again, the taps of running domains on it join its new bridge.
    pub(super) fn watch_network_starts(self: &Arc<Self>) {
        let Some(client) = self.network.as_ref() else {
            return;
        };
        let weak = Arc::downgrade(self);
        client.watch_starts(Box::new(move |network, bridge| {
            if let Some(d) = weak.upgrade() {
                d.reattach_taps(network, bridge);
            }
        }));
    }

    /// Puts the taps of running domains' NICs on `network` onto `bridge`.
    fn reattach_taps(&self, network: &str, bridge: &str) {
        use common::domain::Device;
        use common::domain::device::interface::NetSource;
        if bridge.is_empty() {
            return;
        }
        for e in self.domains.snapshot() {
            let def = {
                let st = e.obj.lock();
                if st.runtime.is_none() {
                    continue;
                }
                st.def.clone()
            };
            for d in &def.devices {
                let Device::Interface(n) = d else { continue };
                let NetSource::Network { network: net, .. } = &n.source else {
                    continue;
                };
                let Some(tap) = n.target_dev.as_deref() else {
                    continue;
                };
                if net != network {
                    continue;
                }
                match crate::process::tap::attach(tap, bridge) {
                    Ok(()) => tracing::info!(
                        domain = %def.name,
                        "tap {tap} reattached to bridge {bridge} of network {network}"
                    ),
                    Err(e) => tracing::warn!(
                        domain = %def.name,
                        "cannot reattach tap {tap} to bridge {bridge}: {e}"
                    ),
                }
            }
        }
    }

    /// A port on its network for each `type='network'` NIC of `def`; on
    /// failure the ones created are released.
    pub(super) async fn create_ports(
        &self,
        def: &DomainDef,
        port_ids: &[(String, String)],
    ) -> Result<Vec<crate::network::NicPort>, VirtError> {
        let nics = crate::network::network_nics(def);
        if nics.is_empty() {
            return Ok(Vec::new());
        }
        let Some(client) = self.network.as_ref() else {
            return Err(internal("no network driver"));
        };
        let mut ports = Vec::new();
        for (k, (index, network, mac, _)) in nics.into_iter().enumerate() {
            let id = port_ids.get(k).map(|(_, u)| u.as_str());
            match client
                .create_port(def, index, &network, &mac, id, false)
                .await
            {
                Ok(p) => ports.push(p),
                Err(e) => {
                    self.release_ports(&ports);
                    return Err(e);
                }
            }
        }
        Ok(ports)
    }

    /// Releases ports a failed start or attach created (journaled, see
    /// [`super::ports`]).
    fn release_ports(&self, ports: &[crate::network::NicPort]) {
        let ids: Vec<(String, String)> = ports
            .iter()
            .map(|p| (p.network.clone(), p.uuid.clone()))
            .collect();
        self.release_ports_of(&ids);
    }

    fn next_id(&self) -> i32 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes the status file of an active domain.
    pub(super) fn save_status(&self, obj: &DomainObj) -> Result<(), VirtError> {
        let Some(env) = self.env.as_ref() else {
            return Ok(());
        };
        // Held from the check that the domain runs to the end of the write:
        // a stop removes the file under the same lock.
        let _io = obj.status_io.lock().unwrap_or_else(PoisonError::into_inner);
        let (file, st) = {
            let st = obj.lock();
            let Some(rt) = st.runtime.as_ref() else {
                return Ok(());
            };
            let xml = st.def.to_xml(FormatFlags {
                inactive: false,
                secure: false,
                migratable: false,
            });
            (
                env.status_file(&st.def.name),
                status::Status {
                    state: st.state.number(),
                    reason: st.reason,
                    pid: rt.pid,
                    start_time: rt.start_time,
                    paths: rt.paths.clone(),
                    fake_reboot: st.fake_reboot,
                    pending_removals: st.pending_removals.clone(),
                    domain_xml: xml,
                    starting: false,
                    ports: Vec::new(),
                },
            )
        };
        write_status(&file, &st)
    }

    pub(super) fn save_status_logged(&self, obj: &DomainObj) {
        if let Err(e) = self.save_status(obj) {
            tracing::error!("{}", e.message);
        }
    }

    /// The runtime of an active domain `r`.
    fn active(&self, r: &ObjRef) -> Result<(Arc<DomainObj>, Arc<Runtime>), VirtError> {
        let obj = self.find(r)?;
        let rt = obj.lock().runtime.clone().ok_or_else(not_running)?;
        Ok((obj, rt))
    }

    /// Re-checks under the job that `rt` is still the domain's process.
    fn still(&self, obj: &DomainObj, rt: &Arc<Runtime>) -> Result<(), VirtError> {
        match &obj.lock().runtime {
            Some(cur) if Arc::ptr_eq(cur, rt) => Ok(()),
            _ => Err(not_running()),
        }
    }

    // === stop ===

    /// Destroys a domain: SIGTERM, and SIGKILL after a bound unless
    /// `graceful`. Returns once the stop is processed.
    ///
    /// # Errors
    /// `NO_DOMAIN`, OPERATION_INVALID when inactive; with `graceful`,
    /// SYSTEM_ERROR when QEMU outlives SIGTERM (it keeps running).
    pub async fn destroy(&self, r: &ObjRef, graceful: bool) -> Result<(), VirtError> {
        let (obj, rt) = self.active(r)?;
        let previous = obj.lock().stop_reason.replace(StopReason::Destroyed);
        if let Err(e) = kill(&rt, graceful).await {
            obj.lock().stop_reason = previous;
            return Err(e);
        }
        let _job = obj.job.lock().await;
        self.process_stopped(&obj, &rt);
        Ok(())
    }

    /// Everything after QEMU has exited: state shut off with the decided
    /// reason, files removed, transient domain dropped, STOPPED published.
    /// Runs once per process: later calls for the same runtime do nothing.
    /// The caller holds the job.
    pub(super) fn process_stopped(&self, obj: &DomainObj, rt: &Arc<Runtime>) {
        let (ident, why, transient, uuid, name, ports) = {
            let mut st = obj.lock();
            let ports = live_ports(&st.def);
            match &st.runtime {
                Some(cur) if Arc::ptr_eq(cur, rt) => {}
                _ => return,
            }
            st.runtime = None;
            let why = st.stop_reason.take().unwrap_or(StopReason::Crashed);
            let ident = st.ident();
            st.id = None;
            st.state = DomainState::Shutoff;
            st.reason = why.shutoff_reason();
            st.fake_reboot = false;
            st.pause_reason = None;
            st.unmanaged = None;
            if let Some(d) = st.new_def.take() {
                st.def = d;
            }
            let transient = !st.persistent;
            if transient {
                st.removed = true;
            }
            self.publish(DomainEvent::lifecycle(
                ident.clone(),
                LifecycleEvent::Stopped,
                why.stopped_detail(),
            ));
            (
                ident,
                why,
                transient,
                st.def.uuid.0,
                st.def.name.clone(),
                ports,
            )
        };
        rt.reap();
        start::cleanup_host(&rt.paths);
        self.release_ports_of(&ports);
        if let Some(env) = &self.env {
            let _io = obj.status_io.lock().unwrap_or_else(PoisonError::into_inner);
            status::remove(&env.status_file(&name));
        }
        start::log_line(&rt.paths, &format!("shutting down, reason={why:?}"));
        if transient {
            self.domains.remove(&uuid);
        }
        tracing::info!(domain = %ident.name, reason = ?why, "domain stopped");
        obj.changed.notify_waiters();
        rt.stopped.send_replace(true);
    }

    /// Asks the guest to shut down (ACPI power button); returns once asked.
    ///
    /// # Errors
    /// Inactive, unsupported modes, a monitor failure.
    pub async fn shutdown(&self, r: &ObjRef, modes: ShutdownModes) -> Result<(), VirtError> {
        modes.check()?;
        let (obj, rt) = self.active(r)?;
        let _job = obj.begin_job().await?;
        self.still(&obj, &rt)?;
        let was_rebooting = std::mem::replace(&mut obj.lock().fake_reboot, false);
        if was_rebooting {
            self.save_status_logged(&obj);
        }
        let mon = rt.monitor().await?;
        mon.execute(qapi::qmp::system_powerdown {})
            .await
            .map_err(monitor_error)?;
        Ok(())
    }

    /// Reboots the guest as libvirt's fake reboot: ACPI power button, and
    /// on the guest's SHUTDOWN `system_reset` + `cont`. Waits until the
    /// guest is running again, at most `timeout`.
    ///
    /// # Errors
    /// Inactive, unsupported modes, a monitor failure; OPERATION_TIMEOUT
    /// when the guest did not act on the button (it keeps running, and a
    /// later shutdown of its own is a real shutdown).
    pub async fn reboot(
        &self,
        r: &ObjRef,
        modes: ShutdownModes,
        timeout: Duration,
    ) -> Result<(), VirtError> {
        modes.check()?;
        let (obj, rt) = self.active(r)?;
        let mut reboots = rt.reboots.subscribe();
        let mut stopped = rt.stopped.subscribe();
        {
            let _job = obj.begin_job().await?;
            self.still(&obj, &rt)?;
            obj.lock().fake_reboot = true;
            self.save_status(&obj)?;
            let mon = rt.monitor().await?;
            reboots.borrow_and_update();
            if let Err(e) = mon.execute(qapi::qmp::system_powerdown {}).await {
                obj.lock().fake_reboot = false;
                self.save_status_logged(&obj);
                return Err(monitor_error(e));
            }
        }
        let done = tokio::time::timeout(timeout, async {
            tokio::select! {
                r = reboots.changed() => r.is_ok(),
                _ = stopped.wait_for(|s| *s) => false,
            }
        })
        .await;
        match done {
            Ok(true) => Ok(()),
            Ok(false) => Err(VirtError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                "operation failed: the domain stopped during the reboot",
            )),
            Err(_) => {
                let _job = obj.job.lock().await;
                let name = {
                    let mut st = obj.lock();
                    let ours = st.runtime.as_ref().is_some_and(|c| Arc::ptr_eq(c, &rt));
                    if ours && st.fake_reboot {
                        st.fake_reboot = false;
                    } else if ours || !st.is_active() {
                        // It completed just now, or stopped.
                        drop(st);
                        return if *rt.reboots.borrow() > 0 {
                            Ok(())
                        } else {
                            Err(not_running())
                        };
                    }
                    st.def.name.clone()
                };
                self.save_status_logged(&obj);
                Err(VirtError::new(
                    ErrorCode::OperationTimeout,
                    ErrorDomain::Qemu,
                    format!(
                        "Timed out during operation: domain '{name}' did not act on the ACPI power button within {} ms; it keeps running",
                        timeout.as_millis()
                    ),
                ))
            }
        }
    }

    /// Resets the guest (`system_reset`), like pressing the reset button.
    ///
    /// # Errors
    /// Inactive, a monitor failure.
    pub async fn reset(&self, r: &ObjRef) -> Result<(), VirtError> {
        let (obj, rt) = self.active(r)?;
        let _job = obj.begin_job().await?;
        self.still(&obj, &rt)?;
        let mon = rt.monitor().await?;
        mon.execute(qapi::qmp::system_reset {})
            .await
            .map_err(monitor_error)?;
        Ok(())
    }

    /// Pauses the vCPUs (`stop`): paused (user), SUSPENDED.
    ///
    /// # Errors
    /// Inactive, a monitor failure.
    pub async fn suspend(&self, r: &ObjRef) -> Result<(), VirtError> {
        let (obj, rt) = self.active(r)?;
        let _job = obj.begin_job().await?;
        self.still(&obj, &rt)?;
        let was = {
            let mut st = obj.lock();
            if st.state == DomainState::Paused {
                return Ok(());
            }
            st.pause_reason = Some(reason::PAUSED_USER);
            st.reason
        };
        let mon = rt.monitor().await?;
        if let Err(e) = mon.execute(qapi::qmp::stop {}).await {
            obj.lock().pause_reason = None;
            return Err(monitor_error(e));
        }
        // The STOP event makes the change, in order with the events before
        // it; if it does not come, make it here.
        wait_for_state(&obj, |s| s != DomainState::Running).await;
        self.mark_paused(&obj, reason::PAUSED_USER);
        // The watcher may still be writing the change: the reply must not
        // come before the status file has it. When the file cannot say
        // "paused" (disk full), the pause is undone: QEMU, the state and
        // the file agree again, and the call fails (docs/state-files.md).
        if let Err(e) = self.save_status(&obj) {
            let undone = mon.execute(qapi::qmp::cont {}).await.is_ok();
            if undone {
                wait_for_state(&obj, |s| s != DomainState::Paused).await;
                self.mark_running(&obj, was);
                // As before, also when QEMU's RESUME made the change.
                let mut st = obj.lock();
                if st.state == DomainState::Running {
                    st.reason = was;
                }
            }
            let now = if undone {
                "the domain keeps running"
            } else {
                "the domain is paused, its status file says running"
            };
            return Err(VirtError::new(
                e.code,
                e.domain,
                format!("{}; {now}", e.message),
            ));
        }
        Ok(())
    }

    /// Resumes paused vCPUs (`cont`): running (unpaused), RESUMED.
    ///
    /// # Errors
    /// Inactive, a monitor failure; a status file that cannot say
    /// "running" (the resume is then undone: paused with the earlier
    /// reason, RESUMED followed by SUSPENDED).
    pub async fn resume(&self, r: &ObjRef) -> Result<(), VirtError> {
        let (obj, rt) = self.active(r)?;
        let _job = obj.begin_job().await?;
        self.still(&obj, &rt)?;
        let was = {
            let st = obj.lock();
            if st.state == DomainState::Running {
                return Ok(());
            }
            st.reason
        };
        let mon = rt.monitor().await?;
        mon.execute(qapi::qmp::cont {})
            .await
            .map_err(monitor_error)?;
        wait_for_state(&obj, |s| s != DomainState::Paused).await;
        self.mark_running(&obj, reason::RUNNING_UNPAUSED);
        // As in a suspend: when the file cannot say "running" (disk full),
        // the resume is undone, so that QEMU, the state and the file (which
        // still says paused) agree again, and the call fails.
        if let Err(e) = self.save_status(&obj) {
            // The STOP event's change takes the earlier reason, not
            // "paused (unknown)".
            obj.lock().pause_reason = Some(was);
            let undone = mon.execute(qapi::qmp::stop {}).await.is_ok();
            if undone {
                wait_for_state(&obj, |s| s != DomainState::Running).await;
                self.mark_paused(&obj, was);
                let mut st = obj.lock();
                if st.state == DomainState::Paused {
                    st.reason = was;
                }
            }
            obj.lock().pause_reason = None;
            let now = if undone {
                "the domain stays paused"
            } else {
                "the domain runs, its status file says paused"
            };
            return Err(VirtError::new(
                e.code,
                e.domain,
                format!("{}; {now}", e.message),
            ));
        }
        Ok(())
    }

    /// running → paused with `why`, once (our `stop` and its STOP event
    /// both land here). The event is published under the state lock, so
    /// events come in the order of the changes; the status file is written
    /// before waiting jobs are woken, so a reply never precedes it.
    pub(super) fn mark_paused(&self, obj: &DomainObj, why: i32) {
        {
            let mut st = obj.lock();
            if st.state != DomainState::Running || st.fake_reboot {
                return;
            }
            st.state = DomainState::Paused;
            st.reason = st.pause_reason.take().unwrap_or(why);
            self.publish(DomainEvent::lifecycle(
                st.ident(),
                LifecycleEvent::Suspended,
                detail::SUSPENDED_PAUSED,
            ));
        }
        self.save_status_logged(obj);
        obj.changed.notify_waiters();
    }

    /// paused → running with `why`, once.
    pub(super) fn mark_running(&self, obj: &DomainObj, why: i32) {
        {
            let mut st = obj.lock();
            if st.state != DomainState::Paused {
                return;
            }
            st.state = DomainState::Running;
            st.reason = why;
            self.publish(DomainEvent::lifecycle(
                st.ident(),
                LifecycleEvent::Resumed,
                detail::RESUMED_UNPAUSED,
            ));
        }
        self.save_status_logged(obj);
        obj.changed.notify_waiters();
    }

    // === the watcher ===

    /// Watches one QEMU: its events in order, then its exit.
    pub(super) fn spawn_watcher(
        self: &Arc<Self>,
        obj: Arc<DomainObj>,
        rt: Arc<Runtime>,
        mut events: EventReceiver,
    ) {
        let driver = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    ev = events.recv() => match ev {
                        Some(ev) => driver.on_event(&obj, &rt, &ev),
                        None => break,
                    },
                    () = rt.pidfd.exited() => {
                        while let Ok(ev) = events.try_recv() {
                            driver.on_event(&obj, &rt, &ev);
                        }
                        break;
                    }
                }
            }
            driver.on_monitor_closed(&obj, &rt).await;
        });
    }

    /// The monitor ended: QEMU exited (or is about to). Makes sure it is
    /// gone, then processes the stop.
    async fn on_monitor_closed(&self, obj: &Arc<DomainObj>, rt: &Arc<Runtime>) {
        if tokio::time::timeout(Duration::from_secs(2), rt.pidfd.exited())
            .await
            .is_err()
        {
            tracing::warn!(
                pid = rt.pid,
                "QEMU closed its monitor but still runs; killing it"
            );
            let _ = kill(rt, false).await;
        }
        let _job = obj.job.lock().await;
        self.process_stopped(obj, rt);
    }

    /// One QMP event.
    fn on_event(self: &Arc<Self>, obj: &Arc<DomainObj>, rt: &Arc<Runtime>, ev: &MonitorEvent) {
        tracing::debug!(event = %ev.name, pid = rt.pid, "QMP event");
        match ev.name.as_str() {
            "SHUTDOWN" => self.on_shutdown(obj, rt, ev.guest_initiated()),
            "STOP" => self.on_stop(obj),
            "RESUME" => self.mark_running(obj, reason::RUNNING_UNPAUSED),
            "RESET" => self.on_reset(obj, rt, ev.guest_initiated()),
            "GUEST_PANICKED" => self.on_panic(obj, rt),
            "DEVICE_DELETED" => self.on_device_deleted(obj, rt, ev),
            "DEVICE_UNPLUG_GUEST_ERROR" => self.on_unplug_error(obj, ev),
            _ => {}
        }
    }

    fn on_stop(&self, obj: &DomainObj) {
        {
            let mut st = obj.lock();
            if st.stop_pending {
                // The stop of a guest shutdown that becomes a reset.
                st.stop_pending = false;
                drop(st);
                obj.changed.notify_waiters();
                return;
            }
        }
        self.mark_paused(obj, reason::PAUSED_UNKNOWN);
    }

    pub(super) fn on_shutdown(
        self: &Arc<Self>,
        obj: &Arc<DomainObj>,
        rt: &Arc<Runtime>,
        guest: Option<bool>,
    ) {
        let (ident, reboot) = {
            let mut st = obj.lock();
            if !st.runtime.as_ref().is_some_and(|c| Arc::ptr_eq(c, rt)) {
                return;
            }
            if st.stop_reason.is_some() {
                // Already being stopped (destroy, guest shutdown, panic):
                // this is our own SIGTERM (host-signal); the stop reports it.
                return;
            }
            let restart = guest == Some(true)
                && matches!(
                    st.def.lifecycle.on_poweroff,
                    LifecycleAction::Restart | LifecycleAction::RenameRestart
                );
            if st.fake_reboot || restart {
                st.fake_reboot = true;
                // QEMU (-no-shutdown) follows SHUTDOWN with STOP.
                st.stop_pending = guest.is_some();
                (st.ident(), true)
            } else {
                st.state = DomainState::Shutdown;
                st.reason = reason::SHUTDOWN_USER;
                st.stop_reason.get_or_insert(StopReason::Shutdown);
                let d = match guest {
                    Some(true) => detail::SHUTDOWN_GUEST,
                    Some(false) => detail::SHUTDOWN_HOST,
                    None => detail::SHUTDOWN_FINISHED,
                };
                self.publish(DomainEvent::lifecycle(
                    st.ident(),
                    LifecycleEvent::Shutdown,
                    d,
                ));
                (st.ident(), false)
            }
        };
        if reboot {
            self.spawn_fake_reboot(obj.clone(), rt.clone());
            return;
        }
        let _ = ident;
        self.save_status_logged(obj);
        // With -no-shutdown QEMU stays; end it (its exit ends the watcher).
        let rt = rt.clone();
        tokio::spawn(async move {
            let _ = kill(&rt, false).await;
        });
    }

    fn on_reset(self: &Arc<Self>, obj: &Arc<DomainObj>, rt: &Arc<Runtime>, guest: Option<bool>) {
        let ident = {
            let mut st = obj.lock();
            if !st.runtime.as_ref().is_some_and(|c| Arc::ptr_eq(c, rt)) {
                return;
            }
            if guest == Some(true) && st.def.lifecycle.on_reboot == LifecycleAction::Destroy {
                st.stop_reason.get_or_insert(StopReason::Shutdown);
                let rt = rt.clone();
                tokio::spawn(async move {
                    let _ = kill(&rt, false).await;
                });
            }
            st.ident()
        };
        self.publish(DomainEvent {
            domain: ident,
            body: EventBody::Reboot,
        });
    }

    pub(super) fn on_panic(self: &Arc<Self>, obj: &Arc<DomainObj>, rt: &Arc<Runtime>) {
        let (ident, action) = {
            let mut st = obj.lock();
            if !st.runtime.as_ref().is_some_and(|c| Arc::ptr_eq(c, rt)) {
                return;
            }
            let action = st.def.lifecycle.on_crash;
            st.state = DomainState::Crashed;
            st.reason = reason::CRASHED_PANICKED;
            self.publish(DomainEvent::lifecycle(
                st.ident(),
                LifecycleEvent::Crashed,
                detail::CRASHED_PANICKED,
            ));
            (st.ident(), action)
        };
        let _ = ident;
        self.save_status_logged(obj);
        match action {
            LifecycleAction::Preserve => {}
            LifecycleAction::Restart
            | LifecycleAction::RenameRestart
            | LifecycleAction::CoredumpRestart => {
                {
                    let mut st = obj.lock();
                    st.state = DomainState::Running;
                    st.reason = reason::RUNNING_BOOTED;
                    st.fake_reboot = true;
                    // QEMU follows GUEST_PANICKED with STOP.
                    st.stop_pending = true;
                }
                self.spawn_fake_reboot(obj.clone(), rt.clone());
            }
            LifecycleAction::Destroy | LifecycleAction::CoredumpDestroy => {
                obj.lock().stop_reason.get_or_insert(StopReason::Crashed);
                let rt = rt.clone();
                tokio::spawn(async move {
                    let _ = kill(&rt, false).await;
                });
            }
        }
    }

    /// The second half of a fake reboot: `system_reset` + `cont`, under
    /// the job. The state stays running; REBOOT comes with QEMU's RESET.
    pub(super) fn spawn_fake_reboot(self: &Arc<Self>, obj: Arc<DomainObj>, rt: Arc<Runtime>) {
        let driver = self.clone();
        tokio::spawn(async move {
            let _job = obj.job.lock().await;
            if driver.still(&obj, &rt).is_err() {
                return;
            }
            // Let the watcher take the STOP that goes with the shutdown
            // first, so that it cannot land after the `cont` below.
            let _ = tokio::time::timeout(EVENT_WAIT, async {
                loop {
                    let woken = obj.changed.notified();
                    tokio::pin!(woken);
                    woken.as_mut().enable();
                    if !obj.lock().stop_pending {
                        return;
                    }
                    woken.await;
                }
            })
            .await;
            obj.lock().stop_pending = false;
            let res = async {
                let mon = rt.monitor().await?;
                mon.execute(qapi::qmp::system_reset {})
                    .await
                    .map_err(monitor_error)?;
                mon.execute(qapi::qmp::cont {})
                    .await
                    .map_err(monitor_error)?;
                Ok::<(), VirtError>(())
            }
            .await;
            match res {
                Ok(()) => {
                    {
                        let mut st = obj.lock();
                        st.fake_reboot = false;
                        st.state = DomainState::Running;
                        st.reason = reason::RUNNING_BOOTED;
                    }
                    driver.save_status_logged(&obj);
                    rt.reboots.send_modify(|n| *n += 1);
                    tracing::info!(pid = rt.pid, "fake reboot done");
                }
                Err(e) => {
                    tracing::error!(pid = rt.pid, "fake reboot failed: {}", e.message);
                    obj.lock().stop_reason.get_or_insert(StopReason::Crashed);
                    let _ = kill(&rt, false).await;
                }
            }
        });
    }

    /// Removes a domain's QEMU log (destroy with `remove_logs`).
    pub fn remove_logs(&self, r: &ObjRef) {
        let (Some(env), Ok(obj)) = (self.env.as_ref(), self.find(r)) else {
            return;
        };
        let name = obj.lock().def.name.clone();
        let _ = std::fs::remove_file(env.log_dir.join(format!("{name}.log")));
    }

    /// The QEMU command line `xml` would start with (libvirt's
    /// `virConnectDomainXMLToNative`, format `qemu-argv`), as a shell
    /// line, for a domain with id -1.
    ///
    /// # Errors
    /// Another format; bad XML; a definition the builder cannot express.
    pub fn xml_to_native(&self, format: &str, xml: &str) -> Result<String, VirtError> {
        if format != "qemu-argv" {
            return Err(VirtError::new(
                ErrorCode::InvalidArg,
                ErrorDomain::Qemu,
                format!("invalid argument: unsupported config type {format}"),
            ));
        }
        let env = self.env.as_ref().ok_or_else(|| {
            internal("no usable QEMU emulator on this host: cannot build a command line")
        })?;
        let flags = ParseFlags {
            inactive: true,
            validate: false,
            allow_post_parse_fail: false,
        };
        let def = DomainDef::parse_str(xml, flags, &self.hooks)
            .map_err(|e| e.to_virt_error(ErrorDomain::Domain))?;
        let ctx = env.command_context(-1);
        let cmd = crate::command::build(&def, &ctx).map_err(|e| {
            VirtError::new(
                ErrorCode::ConfigUnsupported,
                ErrorDomain::Qemu,
                e.to_string(),
            )
        })?;
        Ok(crate::command::args_to_string(&cmd))
    }

    /// The monitor of a reconnected domain (used by the reconnect).
    pub(super) async fn connect_monitor(
        path: &std::path::Path,
    ) -> Result<(Monitor, EventReceiver), VirtError> {
        let bound = crate::bounds::monitor();
        Monitor::connect(path, bound.min(Duration::from_secs(5)))
            .await
            .map(|(m, ev)| (m.with_timeout(bound), ev))
            .map_err(monitor_error)
    }
}

/// Writes a status file (or start record) atomically.
///
/// # Errors
/// SYSTEM_ERROR naming the file; the old one is then unchanged.
fn write_status(file: &std::path::Path, st: &status::Status) -> Result<(), VirtError> {
    status::save(file, st).map_err(|e| {
        VirtError::new(
            ErrorCode::SystemError,
            ErrorDomain::Qemu,
            format!("cannot write status file '{}': {e}", file.display()),
        )
    })
}

/// The (network, port UUID) of the NICs of a live definition.
fn live_ports(def: &DomainDef) -> Vec<(String, String)> {
    crate::network::network_nics(def)
        .into_iter()
        .filter_map(|(_, net, _, portid)| portid.map(|p| (net, p)))
        .collect()
}

/// Where automatic tap names (`vnetN`) continue from.
static TAP_HINT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The tap of NIC `n`: its `<target dev>`, or the next free `vnetN`.
pub(super) fn tap_name(n: &common::domain::device::Interface) -> String {
    match &n.target_dev {
        Some(t) if !t.is_empty() => t.clone(),
        _ => {
            let mut hint = TAP_HINT.load(std::sync::atomic::Ordering::Relaxed);
            let name = crate::process::tap::free_name(&mut hint);
            TAP_HINT.store(hint, std::sync::atomic::Ordering::Relaxed);
            name
        }
    }
}

/// The host bridge a `type='bridge'` NIC names, which must exist.
///
/// # Errors
/// No such interface (libvirt's message: it asks the bridge's MTU first).
pub(super) fn host_bridge(bridge: Option<&String>) -> Result<String, VirtError> {
    let b = bridge.cloned().unwrap_or_default();
    if !crate::process::tap::exists(&b) {
        return Err(VirtError::new(
            ErrorCode::SystemError,
            ErrorDomain::Qemu,
            format!("Cannot get interface MTU on '{b}': No such device"),
        ));
    }
    Ok(b)
}

/// The host side of each NIC that needs a tap: `type='bridge'` joins its
/// bridge, `type='ethernet'` stands alone. Names come from `<target dev>`
/// or the next free `vnetN`.
///
/// # Errors
/// A bridge that does not exist; a `type='network'` NIC (needs a port
/// from virtnetworkd).
fn plan_nets(
    def: &DomainDef,
    ports: &[crate::network::NicPort],
) -> Result<Vec<crate::process::NetPlan>, VirtError> {
    use common::domain::Device;
    use common::domain::device::interface::NetSource;
    let mut out = Vec::new();
    let nics = def.devices.iter().filter_map(|d| match d {
        Device::Interface(n) => Some(n),
        _ => None,
    });
    for (index, n) in nics.enumerate() {
        let bridge = match &n.source {
            NetSource::Bridge { bridge } => Some(host_bridge(bridge.as_ref())?),
            NetSource::Ethernet => None,
            NetSource::Network { .. } => match ports.iter().find(|p| p.index == index) {
                Some(p) => Some(p.bridge.clone()),
                None => return Err(internal(format!("no port for interface {index}"))),
            },
            _ => continue,
        };
        let tap = tap_name(n);
        let bandwidth =
            crate::process::shaping::effective(n, ports.iter().find(|p| p.index == index));
        out.push(crate::process::NetPlan {
            index,
            tap,
            bridge,
            bandwidth,
        });
    }
    Ok(out)
}

/// How long a job waits for the QMP event its command causes.
const EVENT_WAIT: Duration = Duration::from_secs(2);

/// Waits (at most [`EVENT_WAIT`]) until the domain's state satisfies
/// `done`. QEMU sends the event before the command's reply, so the watcher
/// normally has it already; it applies it in order with earlier events
/// (e.g. the RESUME of a start), which keeps stale events from undoing
/// the change.
async fn wait_for_state(obj: &DomainObj, done: impl Fn(DomainState) -> bool) {
    let _ = tokio::time::timeout(EVENT_WAIT, async {
        loop {
            let woken = obj.changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if done(obj.lock().state) {
                return;
            }
            woken.await;
        }
    })
    .await;
}

/// Ends a QEMU: SIGTERM, and SIGKILL after [`TERM_GRACE`] unless
/// `graceful`. Returns once it has exited.
///
/// # Errors
/// With `graceful`, when it outlived SIGTERM; otherwise when even SIGKILL
/// did not end it within [`KILL_WAIT`].
pub(super) async fn kill(rt: &Runtime, graceful: bool) -> Result<(), VirtError> {
    if rt.pidfd.has_exited() {
        return Ok(());
    }
    let _ = rt.pidfd.signal(Signal::SIGTERM);
    if tokio::time::timeout(TERM_GRACE, rt.pidfd.exited())
        .await
        .is_ok()
    {
        return Ok(());
    }
    if graceful {
        return Err(VirtError::new(
            ErrorCode::SystemError,
            ErrorDomain::Qemu,
            format!(
                "Failed to terminate process {} with SIGTERM: Device or resource busy",
                rt.pid
            ),
        ));
    }
    let _ = rt.pidfd.signal(Signal::SIGKILL);
    tokio::time::timeout(KILL_WAIT, rt.pidfd.exited())
        .await
        .map_err(|_| {
            VirtError::new(
                ErrorCode::SystemError,
                ErrorDomain::Qemu,
                format!("Failed to kill process {} with SIGKILL", rt.pid),
            )
        })
}
