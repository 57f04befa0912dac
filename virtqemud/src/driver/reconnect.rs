//! After a daemon (re)start: reconnecting every QEMU that a status file
//! names, and autostart once per host boot.
//!
//! A status file whose process is gone (or is another process now: the
//! start time differs) means QEMU died while the daemon was down: the
//! domain is shut off (reason daemon), its files removed, a transient one
//! dropped. A live process is adopted by pidfd; its monitor is connected
//! in the background, and its state reconciled with `query-status`. A
//! monitor that cannot be reached never kills the VM: the domain stays
//! running, marked, and the connect is retried.

use std::sync::Arc;
use std::time::Duration;

use common::domain::DomainDef;
use common::xml::ParseFlags;

use super::QemuDriver;
use crate::domain_obj::{DomainObj, DomainState, MonitorState, Runtime, StopReason, reason};
use crate::monitor::EventReceiver;
use crate::process::pidfd::{self, PidFd};
use crate::process::{start, status};

/// How long `reconnect_all` waits for the monitors before it lets the
/// daemon serve (the rest continues in the background).
const RECONNECT_WAIT: Duration = Duration::from_secs(3);
/// How long the resolution of an adopted domain's volumes waits for
/// virtstoraged to answer its health check before it tries anyway.
const STORAGE_WAIT: Duration = Duration::from_secs(5);
/// The first retry delay of a failed monitor connect (doubles, up to 30 s).
const RETRY_FIRST: Duration = Duration::from_millis(500);

impl QemuDriver {
    /// Adopts every running QEMU from the status files.
    pub(super) async fn reconnect_all(self: &Arc<Self>) {
        let Some(env) = self.env.as_ref() else {
            return;
        };
        let mut tasks = Vec::new();
        let mut max_id = 0;
        let mut adopted = Vec::new();
        for (name, path, parsed) in status::scan(&env.run_dir) {
            let st = match parsed {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(file = %path.display(), "unreadable status file of '{name}': {e}; left alone");
                    continue;
                }
            };
            if let Some(obj) = self.adopt(&name, &st) {
                adopted.push(st.pid);
                if !crate::network::network_nics(&obj.lock().def).is_empty() {
                    self.watch_network_starts();
                    tokio::spawn(self.clone().reclaim_ports(obj.clone()));
                }
                if !crate::storage::volumes_of(&obj.lock().def).is_empty() {
                    obj.lock().volumes_unresolved = true;
                    tokio::spawn(self.clone().resolve_adopted(obj.clone()));
                }
                if let Some(id) = obj.lock().id {
                    max_id = max_id.max(id);
                }
                let d = self.clone();
                tasks.push(tokio::spawn(async move { d.connect_adopted(obj).await }));
            }
        }
        self.next_id
            .fetch_max(max_id + 1, std::sync::atomic::Ordering::Relaxed);
        kill_orphans(&env.lib_dir, &adopted);
        if tasks.is_empty() {
            return;
        }
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(RECONNECT_WAIT, all).await.is_err() {
            tracing::warn!("some monitors are still connecting; continuing in the background");
        }
    }

    /// Puts the domain of one status file back in the list, running with
    /// its process, or shut off when the process is gone. Returns the
    /// object when there is a process to connect to.
    fn adopt(self: &Arc<Self>, name: &str, st: &status::Status) -> Option<Arc<DomainObj>> {
        let env = self.env.as_ref()?;
        let file = env.status_file(name);
        let flags = ParseFlags {
            inactive: false,
            validate: false,
            allow_post_parse_fail: true,
        };
        let live = match DomainDef::parse_str(&st.domain_xml, flags, &self.hooks) {
            Ok(d) => d,
            Err(e) => {
                // The process must not go unmanaged: fall back to the
                // persistent definition, with the id from the file.
                let fallback = self.domains.find_by_name(name).map(|e| {
                    let mut d = (*e.obj.lock().def).clone();
                    d.id = status_id(&st.domain_xml);
                    d
                });
                match fallback {
                    Some(d) => {
                        tracing::error!(file = %file.display(), "the live definition of '{name}' does not parse: {e}; using its persistent definition");
                        d
                    }
                    None => {
                        tracing::error!(file = %file.display(), "the live definition of '{name}' does not parse: {e}; left alone");
                        return None;
                    }
                }
            }
        };
        // A zombie (exited, not yet reaped by PID 1) is dead too.
        let alive = PidFd::open(st.pid).ok().filter(|fd| {
            !fd.has_exited()
                && match st.start_time {
                    Some(t) => pidfd::start_time(st.pid) == Some(t),
                    None => true,
                }
        });
        let existing = self.domains.find_by_name(name).map(|e| e.obj);
        let Some(pidfd) = alive else {
            tracing::warn!(
                domain = name,
                pid = st.pid,
                "QEMU died while the daemon was down"
            );
            start::cleanup_host(&st.paths);
            start::log_line(
                &st.paths,
                "shutting down, reason=daemon (QEMU exited while the daemon was down)",
            );
            status::remove(&file);
            if let Some(obj) = existing {
                let ident = {
                    let mut s = obj.lock();
                    s.state = DomainState::Shutoff;
                    s.reason = StopReason::Daemon.shutoff_reason();
                    let mut ident = s.ident();
                    ident.id = live.id;
                    ident
                };
                self.publish(crate::domain_event::DomainEvent::lifecycle(
                    ident,
                    crate::domain_event::LifecycleEvent::Stopped,
                    StopReason::Daemon.stopped_detail(),
                ));
            }
            return None;
        };
        let id = live.id;
        let rt = Arc::new(Runtime::new(
            st.pid,
            st.start_time,
            pidfd,
            None,
            st.paths.clone(),
            MonitorState::Connecting,
        ));
        let live = Arc::new(live);
        let obj = match existing {
            Some(obj) => obj,
            None => {
                let obj = Arc::new(DomainObj::new_inactive(live.clone(), false, false));
                if let Err(e) = self.domains.insert(name, &live.uuid.0, obj.clone()) {
                    tracing::error!("cannot restore running domain '{name}': {}", e.message);
                    return None;
                }
                obj
            }
        };
        {
            let mut s = obj.lock();
            if s.persistent {
                s.new_def = Some(s.def.clone());
            }
            s.def = live;
            s.id = id;
            s.state = DomainState::from_number(st.state).unwrap_or(DomainState::Running);
            s.reason = st.reason;
            s.fake_reboot = st.fake_reboot;
            s.pending_removals = st.pending_removals.clone();
            s.runtime = Some(rt);
        }
        Some(obj)
    }

    /// Connects the monitor of an adopted QEMU (retrying in the
    /// background when it fails), reconciles the state and starts the
    /// watcher.
    async fn connect_adopted(self: Arc<Self>, obj: Arc<DomainObj>) {
        let Some(rt) = obj.lock().runtime.clone() else {
            return;
        };
        let mut delay = RETRY_FIRST;
        loop {
            if rt.pidfd.has_exited() {
                // Died before we got to it: a crash.
                let _job = obj.job.lock().await;
                self.process_stopped(&obj, &rt);
                return;
            }
            let res = {
                let _job = obj.job.lock().await;
                match Self::connect_monitor(&rt.paths.monitor).await {
                    Ok((mon, events)) => {
                        rt.set_monitor(MonitorState::Connected(mon.clone()));
                        Ok((mon, events))
                    }
                    Err(e) => {
                        rt.set_monitor(MonitorState::Failed(e.message.clone()));
                        Err(e)
                    }
                }
            };
            match res {
                Ok((mon, events)) => {
                    self.reconcile(&obj, &rt, &mon, events).await;
                    return;
                }
                Err(e) => {
                    tracing::error!(
                        pid = rt.pid,
                        "cannot reconnect to QEMU's monitor: {}; the domain keeps running, retrying in {:?}",
                        e.message,
                        delay
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = rt.pidfd.exited() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Brings the state in line with QEMU's `query-status` and starts the
    /// watcher.
    async fn reconcile(
        self: &Arc<Self>,
        obj: &Arc<DomainObj>,
        rt: &Arc<Runtime>,
        mon: &crate::monitor::Monitor,
        events: EventReceiver,
    ) {
        let status = mon
            .execute_raw("query-status", serde_json::Value::Null)
            .await
            .ok()
            .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned))
            .unwrap_or_default();
        tracing::info!(pid = rt.pid, status = %status, "reconnected to QEMU");
        self.spawn_watcher(obj.clone(), rt.clone(), events);
        // Unplugs QEMU completed while we were away finish now; the others
        // wait for their DEVICE_DELETED as before.
        self.finish_removals_after_reconnect(obj, rt, mon).await;
        match status.as_str() {
            "running" => self.mark_running(obj, reason::RUNNING_UNKNOWN),
            "shutdown" => {
                let reboot = obj.lock().fake_reboot;
                if reboot {
                    // The guest shut down while we were away, in the middle
                    // of a fake reboot: finish it.
                    self.spawn_fake_reboot(obj.clone(), rt.clone());
                } else {
                    self.on_shutdown(obj, rt, None);
                }
            }
            "guest-panicked" => self.on_panic(obj, rt),
            "" => {}
            _ => self.mark_paused(obj, reason::PAUSED_UNKNOWN),
        }
    }

    /// Resolves the volume disks of an adopted domain through virtstoraged:
    /// first waits (at most [`STORAGE_WAIT`]) until it answers its health
    /// check, then resolves, retrying with back-off while it fails. The
    /// running guest never depends on this (QEMU has its files open); the
    /// live definition gets the paths back for later changes.
    async fn resolve_adopted(self: Arc<Self>, obj: Arc<DomainObj>) {
        let Some(storage) = self.storage.as_ref() else {
            return;
        };
        if !storage.wait_ready(STORAGE_WAIT).await {
            tracing::warn!(
                "virtstoraged did not answer within {:?}; resolving volumes anyway",
                STORAGE_WAIT
            );
        }
        let mut delay = RETRY_FIRST;
        loop {
            let def = {
                let st = obj.lock();
                if st.runtime.is_none() {
                    return;
                }
                st.def.clone()
            };
            match storage.resolve_all(&def).await {
                Ok(vols) => {
                    let mut st = obj.lock();
                    if st.runtime.is_none() {
                        return;
                    }
                    let mut d = (*st.def).clone();
                    crate::storage::apply(&mut d, &vols);
                    st.def = Arc::new(d);
                    st.volumes_unresolved = false;
                    tracing::info!(domain = %st.def.name, "volumes resolved after reconnect");
                    return;
                }
                Err(e) => {
                    let name = {
                        let mut st = obj.lock();
                        st.volumes_unresolved = true;
                        st.def.name.clone()
                    };
                    tracing::warn!(
                        domain = %name,
                        "cannot resolve the volumes of running domain '{name}': {}; it keeps running, retrying in {delay:?}",
                        e.message
                    );
                    let stopped = obj.lock().runtime.clone();
                    let Some(rt) = stopped else { return };
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = rt.pidfd.exited() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Registers the ports of an adopted domain's network NICs again
    /// (`reclaim`) once virtnetworkd answers (bounded wait): a port it
    /// still has is kept, one it lost (the network was destroyed and
    /// started, or its state lost) is created anew with the same UUID.
    /// Failures are logged and retried; the guest is never touched.
    async fn reclaim_ports(self: Arc<Self>, obj: Arc<DomainObj>) {
        let Some(client) = self.network.clone() else {
            return;
        };
        if !client.wait_ready(STORAGE_WAIT).await {
            tracing::warn!(
                "virtnetworkd did not answer within {STORAGE_WAIT:?}; reclaiming ports anyway"
            );
        }
        let mut delay = RETRY_FIRST;
        loop {
            let def = {
                let st = obj.lock();
                if st.runtime.is_none() {
                    return;
                }
                st.def.clone()
            };
            let mut failed = None;
            for (index, network, mac, portid) in crate::network::network_nics(&def) {
                let r = client
                    .create_port(&def, index, &network, &mac, portid.as_deref(), true)
                    .await;
                match r {
                    Ok(_) => {}
                    Err(e) if e.code == common::ErrorCode::NetworkPortExist => {}
                    Err(e) => failed = Some(e),
                }
            }
            let Some(e) = failed else {
                tracing::info!(domain = %def.name, "network ports reclaimed after reconnect");
                return;
            };
            tracing::warn!(
                domain = %def.name,
                "cannot reclaim the network ports of running domain '{}': {}; it keeps running, retrying in {delay:?}",
                def.name,
                e.message
            );
            let Some(rt) = obj.lock().runtime.clone() else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = rt.pidfd.exited() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// Autostarts domains once per host boot: the marker file
    /// `<run>/qemu/autostarted` lives on the run directory (a tmpfs), so it
    /// is gone after a reboot, as libvirt's is.
    pub(super) fn autostart_once(self: &Arc<Self>) {
        let Some(env) = self.env.as_ref() else {
            return;
        };
        let marker = env.run_dir.join("autostarted");
        if marker.exists() {
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&env.run_dir)
            .and_then(|()| common::fsutil::write_atomic(&marker, b""))
        {
            tracing::error!(file = %marker.display(), "cannot write the autostart marker: {e}; not autostarting");
            return;
        }
        for e in self.domains.snapshot() {
            let (want, name) = {
                let st = e.obj.lock();
                (
                    st.autostart && !st.is_active() && !st.removed,
                    st.def.name.clone(),
                )
            };
            if !want {
                continue;
            }
            let d = self.clone();
            tokio::spawn(async move {
                match d
                    .start(&common::objlist::ObjRef::Name(name.clone()), false)
                    .await
                {
                    Ok(_) => tracing::info!(domain = %name, "autostarted"),
                    Err(e) => tracing::error!(domain = %name, "autostart failed: {}", e.message),
                }
            });
        }
    }
}

/// Kills QEMU processes of a start that the previous daemon did not finish
/// (killed between spawn and the status write): their command line names
/// a master key under our `lib_dir`, and no status file names them. Their
/// domain directories go with them.
fn kill_orphans(lib_dir: &std::path::Path, adopted: &[i32]) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let marker = format!("{}/domain-", lib_dir.display());
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if adopted.contains(&pid) {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_ours = args.iter().any(|a| *a == b"-no-shutdown")
            && args.iter().any(|a| {
                let a = String::from_utf8_lossy(a);
                a.contains(&marker) && a.contains("master-key.aes")
            });
        if !is_ours {
            continue;
        }
        tracing::warn!(pid, "killing a QEMU left by an unfinished start");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        // Its domain directory: the one its master key lives in.
        for a in &args {
            let a = String::from_utf8_lossy(a);
            if let Some(at) = a.find(&marker) {
                let rest = &a[at..];
                if let Some(end) = rest.find("/master-key.aes") {
                    let _ = std::fs::remove_dir_all(&rest[..end]);
                }
            }
        }
    }
}

/// The `id` attribute of the live `<domain>` in a status file.
fn status_id(domain_xml: &str) -> Option<i32> {
    let root = common::xml::parse(domain_xml).ok()?;
    root.attr("id")?.parse().ok()
}
