//! After a daemon (re)start: reconnecting every QEMU that a status file
//! names, and autostart once per host boot.
//!
//! A status file whose process is gone (or is another process now: the
//! start time differs) means QEMU died while the daemon was down: the
//! domain is shut off (reason daemon), its files removed, its ports
//! released, a transient one dropped. A live process is adopted by pidfd;
//! its monitor is connected in the background, and its state reconciled
//! with `query-status`. A monitor that cannot be reached never kills the
//! VM: the domain stays running, marked, and the connect is retried.
//!
//! A start record (`job='start'`) means a start was cut off: whatever it
//! launched is killed and what it took is released. A status file that
//! cannot be read (truncated, empty, corrupt) never orphans a QEMU: the
//! domain is re-adopted from what the host still shows, the QEMU process
//! carrying the domain's `-name guest=NAME` and `-uuid` whose master key
//! lies under our domain directories, its monitor at the known path, and
//! the persistent definition; without one it runs unmanaged, with the
//! reason. The damaged file is kept beside as `<name>.xml.damaged`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::domain::DomainDef;
use common::xml::ParseFlags;

use super::QemuDriver;
use crate::domain_obj::{DomainObj, DomainState, MonitorState, Runtime, StopReason, reason};
use crate::monitor::EventReceiver;
use crate::process::pidfd::{self, PidFd};
use crate::process::{DomainPaths, start, status};

/// How long the work after a restart that needs a peer daemon (resolving
/// an adopted domain's volumes, reclaiming or collecting network ports)
/// waits for it to answer its health check before it tries anyway.
pub(super) const PEER_WAIT: Duration = Duration::from_secs(5);
/// The first retry delay of a failed monitor connect (doubles, up to 30 s).
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// A QEMU process of ours, as `/proc` shows it: its command line names a
/// master key under our domain directories.
#[derive(Debug)]
struct QemuProc {
    pid: i32,
    args: Vec<String>,
}

impl QemuProc {
    /// The value after option `opt`.
    fn opt(&self, opt: &str) -> Option<&str> {
        let i = self.args.iter().position(|a| a == opt)?;
        self.args.get(i + 1).map(String::as_str)
    }

    /// The guest name of `-name guest=NAME,...` (commas undoubled).
    fn guest_name(&self) -> Option<String> {
        let v = self.opt("-name")?.strip_prefix("guest=")?;
        // Up to the first single comma: ",," is an escaped comma.
        let mut out = String::new();
        let mut chars = v.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ',' {
                if chars.peek() == Some(&',') {
                    chars.next();
                    out.push(',');
                    continue;
                }
                break;
            }
            out.push(c);
        }
        Some(out)
    }

    /// The domain directory its master key lies in.
    fn domain_dir(&self, marker: &str) -> Option<PathBuf> {
        self.args.iter().find_map(|a| {
            let at = a.find(marker)?;
            let rest = &a[at..];
            let end = rest.find("/master-key.aes")?;
            Some(PathBuf::from(&rest[..end]))
        })
    }
}

/// Our QEMU processes (`-no-shutdown`, a master key under
/// `<lib_dir>/domain-*`), alive and not zombies.
fn qemu_processes(lib_dir: &Path) -> Vec<QemuProc> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = marker(lib_dir);
    let mut out = Vec::new();
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ours = args.iter().any(|a| a == "-no-shutdown")
            && args
                .iter()
                .any(|a| a.contains(&marker) && a.contains("master-key.aes"));
        if ours {
            out.push(QemuProc { pid, args });
        }
    }
    out
}

fn marker(lib_dir: &Path) -> String {
    format!("{}/domain-", lib_dir.display())
}

/// The id in a domain directory's name, `domain-<id>-<name>`.
fn dir_id(dir: &Path) -> Option<i32> {
    let n = dir.file_name()?.to_str()?.strip_prefix("domain-")?;
    n.split('-').next()?.parse().ok()
}

/// Moves a damaged status file aside (kept for the administrator; never
/// read again).
fn set_aside(file: &Path) {
    let mut to = file.as_os_str().to_owned();
    to.push(".damaged");
    if let Err(e) = std::fs::rename(file, &to) {
        tracing::warn!(file = %file.display(), "cannot move the damaged status file aside: {e}");
        status::remove(file);
    }
}

impl QemuDriver {
    /// Adopts every running QEMU from the status files.
    pub(super) async fn reconnect_all(self: &Arc<Self>) {
        let Some(env) = self.env.as_ref() else {
            return;
        };
        let procs = qemu_processes(&env.lib_dir);
        let mut max_id = 0;
        let mut adopted = Vec::new();
        let mut jobs_held = Vec::new();
        for (name, path, parsed) in status::scan(&env.run_dir) {
            let obj = match parsed {
                Ok(st) if st.starting => {
                    self.undo_start(&name, &path, &st, &procs).await;
                    continue;
                }
                Ok(st) => self.adopt(&name, &st, &procs),
                Err(e) => {
                    tracing::error!(file = %path.display(), "the status file of '{name}' is damaged: {e}; re-adopting from the host");
                    self.recover(
                        &name,
                        &path,
                        &format!("its status file was damaged ({e})"),
                        &procs,
                    )
                }
            };
            let Some(obj) = obj else { continue };
            let Some(rt) = obj.lock().runtime.clone() else {
                continue;
            };
            adopted.push(rt.pid);
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
            let (held, job_held) = tokio::sync::oneshot::channel();
            jobs_held.push(job_held);
            tokio::spawn(async move { d.connect_adopted(obj, held).await });
        }
        // Each connect holds its domain's job before any call is served: a
        // call that needs the monitor holds the job while it waits for the
        // monitor, so a connect queued behind it could not finish before
        // that wait's bound. (Immediate: nothing else holds these jobs.)
        for h in jobs_held {
            let _ = h.await;
        }
        self.next_id
            .fetch_max(max_id + 1, std::sync::atomic::Ordering::Relaxed);
        kill_orphans(&env.lib_dir, &procs, &adopted).await;
        // Ports that stops before the restart left to release, and ports
        // no domain of ours holds any more.
        self.run_releaser();
        tokio::spawn(self.clone().collect_stale_ports());
        // The monitors connect in the background: a call that needs one
        // waits for it (bounded, `Runtime::monitor`), the others are
        // served at once, so one QEMU that does not answer delays nobody.
    }

    /// Undoes a start a previous daemon did not finish: kills what it
    /// launched, removes its files, releases its ports. The domain stays
    /// (or, transient, never was) shut off.
    async fn undo_start(&self, name: &str, file: &Path, st: &status::Status, procs: &[QemuProc]) {
        let Some(env) = self.env.as_ref() else {
            return;
        };
        tracing::warn!(
            domain = name,
            "a start was cut off by a daemon restart; undoing it"
        );
        let m = marker(&env.lib_dir);
        for p in procs {
            if p.domain_dir(&m).as_deref() == Some(st.paths.domain_dir.as_path()) {
                kill_now(p.pid).await;
            }
        }
        start::cleanup_host(&st.paths);
        start::log_line(
            &st.paths,
            "start interrupted by a daemon restart; everything it took released",
        );
        self.release_ports_of(&st.ports);
        status::remove(file);
        if let Some(e) = self.domains.find_by_name(name) {
            let mut s = e.obj.lock();
            if s.runtime.is_none() {
                s.state = DomainState::Shutoff;
                s.reason = StopReason::Daemon.shutoff_reason();
            }
        }
    }

    /// Puts the domain of one status file back in the list, running with
    /// its process, or shut off when the process is gone. Returns the
    /// object when there is a process to connect to.
    fn adopt(
        self: &Arc<Self>,
        name: &str,
        st: &status::Status,
        procs: &[QemuProc],
    ) -> Option<Arc<DomainObj>> {
        let env = self.env.as_ref()?;
        let file = env.status_file(name);
        let flags = ParseFlags {
            inactive: false,
            validate: false,
            allow_post_parse_fail: true,
        };
        // A zombie (exited, not yet reaped by PID 1) is dead too.
        let alive = PidFd::open(st.pid).ok().filter(|fd| {
            !fd.has_exited()
                && match st.start_time {
                    Some(t) => pidfd::start_time(st.pid) == Some(t),
                    None => true,
                }
        });
        let Some(pidfd) = alive else {
            if procs
                .iter()
                .any(|p| p.guest_name().as_deref() == Some(name))
            {
                // The file names another process than the QEMU of this
                // domain that runs: it lies.
                tracing::error!(file = %file.display(), pid = st.pid, "the status file of '{name}' names a process that is not its QEMU; re-adopting from the host");
                return self.recover(
                    name,
                    &file,
                    &format!("its status file named pid {} which is not its QEMU", st.pid),
                    procs,
                );
            }
            tracing::warn!(
                domain = name,
                pid = st.pid,
                "QEMU died while the daemon was down"
            );
            let live = DomainDef::parse_str(&st.domain_xml, flags, &self.hooks).ok();
            start::cleanup_host(&st.paths);
            start::log_line(
                &st.paths,
                "shutting down, reason=daemon (QEMU exited while the daemon was down)",
            );
            if let Some(d) = &live {
                let ports: Vec<(String, String)> = crate::network::network_nics(d)
                    .into_iter()
                    .filter_map(|(_, net, _, p)| Some((net, p?)))
                    .collect();
                self.release_ports_of(&ports);
            }
            status::remove(&file);
            if let Some(obj) = self.domains.find_by_name(name).map(|e| e.obj) {
                let ident = {
                    let mut s = obj.lock();
                    s.state = DomainState::Shutoff;
                    s.reason = StopReason::Daemon.shutoff_reason();
                    let mut ident = s.ident();
                    ident.id = live.as_ref().and_then(|d| d.id);
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
        let live = match DomainDef::parse_str(&st.domain_xml, flags, &self.hooks) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(file = %file.display(), "the live definition of '{name}' does not parse: {e}; re-adopting from the host");
                drop(pidfd);
                return self.recover(
                    name,
                    &file,
                    &format!("the live definition in its status file does not parse ({e})"),
                    procs,
                );
            }
        };
        let rt = Arc::new(Runtime::new(
            st.pid,
            st.start_time,
            pidfd,
            None,
            st.paths.clone(),
            MonitorState::Connecting,
        ));
        let obj = self.install(name, live, rt, None)?;
        {
            let mut s = obj.lock();
            s.state = DomainState::from_number(st.state).unwrap_or(DomainState::Running);
            s.reason = st.reason;
            s.fake_reboot = st.fake_reboot;
            s.pending_removals = st.pending_removals.clone();
        }
        Some(obj)
    }

    /// Puts a running domain in the list with its live definition and
    /// process: the existing object (a persistent domain) or a new one.
    fn install(
        &self,
        name: &str,
        live: DomainDef,
        rt: Arc<Runtime>,
        unmanaged: Option<String>,
    ) -> Option<Arc<DomainObj>> {
        let id = live.id;
        let live = Arc::new(live);
        let obj = match self.domains.find_by_name(name).map(|e| e.obj) {
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
        let mut s = obj.lock();
        if s.persistent {
            s.new_def = Some(s.def.clone());
        }
        s.def = live;
        s.id = id;
        s.state = DomainState::Running;
        s.reason = reason::RUNNING_UNKNOWN;
        s.runtime = Some(rt);
        s.unmanaged = unmanaged;
        drop(s);
        Some(obj)
    }

    /// Re-adopts domain `name` from the host when its status file cannot
    /// be trusted (`why`): its QEMU among `procs`, the monitor at the
    /// known path, the persistent definition (or, without one, a minimal
    /// one from the command line: unmanaged). The status file is then
    /// written anew. Without a QEMU the domain is not running: the file
    /// goes aside and the domain stays shut off.
    fn recover(
        self: &Arc<Self>,
        name: &str,
        file: &Path,
        why: &str,
        procs: &[QemuProc],
    ) -> Option<Arc<DomainObj>> {
        let env = self.env.as_ref()?;
        let m = marker(&env.lib_dir);
        let mut found = procs
            .iter()
            .filter(|p| p.guest_name().as_deref() == Some(name));
        let Some(p) = found.next() else {
            tracing::warn!(domain = name, "no QEMU runs for '{name}'; it is shut off");
            set_aside(file);
            return None;
        };
        if let Some(other) = found.next() {
            tracing::error!(
                domain = name,
                "two QEMUs carry '{name}' (pids {} and {}); adopting the first",
                p.pid,
                other.pid
            );
        }
        let domain_dir = p.domain_dir(&m)?;
        let id = dir_id(&domain_dir);
        let uuid = p.opt("-uuid").and_then(common::xml::values::Uuid::parse);
        let Ok(pidfd) = PidFd::open(p.pid) else {
            set_aside(file);
            return None;
        };
        let paths = DomainPaths {
            monitor: domain_dir.join("monitor.sock"),
            log: env.log_dir.join(format!("{name}.log")),
            domain_dir,
        };
        let persistent = self
            .domains
            .find_by_name(name)
            .map(|e| e.obj.lock().def.clone())
            .filter(|d| Some(d.uuid) == uuid);
        let (live, unmanaged) = match persistent {
            Some(d) => {
                // What the start gave it: the same aliases and disk nodes.
                let mut d = (*d).clone();
                d.id = id;
                crate::command::alias::assign(&mut d);
                crate::command::disk::assign_indices(&mut d);
                (d, None)
            }
            None => match minimal_def(name, uuid, id, p, &self.hooks) {
                Some(d) => (d, Some(why.to_owned())),
                None => {
                    tracing::error!(
                        domain = name,
                        "cannot describe the QEMU of '{name}' (pid {}); left running unadopted",
                        p.pid
                    );
                    return None;
                }
            },
        };
        let rt = Arc::new(Runtime::new(
            p.pid,
            pidfd::start_time(p.pid),
            pidfd,
            None,
            paths,
            MonitorState::Connecting,
        ));
        let obj = self.install(name, live, rt, unmanaged.clone())?;
        set_aside(file);
        if let Err(e) = self.save_status(&obj) {
            tracing::error!(domain = name, "{}", e.message);
        }
        match unmanaged {
            Some(u) => tracing::error!(
                domain = name,
                pid = p.pid,
                "re-adopted '{name}' unmanaged: {u}; it has no persistent definition"
            ),
            None => tracing::warn!(
                domain = name,
                pid = p.pid,
                "re-adopted '{name}' from its QEMU and persistent definition ({why})"
            ),
        }
        Some(obj)
    }

    /// Connects the monitor of an adopted QEMU (retrying in the
    /// background when it fails), reconciles the state and starts the
    /// watcher.
    ///
    /// `held` is told once the first attempt holds the domain's job (see
    /// `reconnect_all`).
    async fn connect_adopted(
        self: Arc<Self>,
        obj: Arc<DomainObj>,
        held: tokio::sync::oneshot::Sender<()>,
    ) {
        let Some(rt) = obj.lock().runtime.clone() else {
            return;
        };
        let mut held = Some(held);
        let mut delay = RETRY_FIRST;
        loop {
            let job = obj.job.lock().await;
            if let Some(h) = held.take() {
                let _ = h.send(());
            }
            if rt.pidfd.has_exited() {
                // Died before we got to it: a crash.
                self.process_stopped(&obj, &rt);
                drop(job);
                return;
            }
            let res = {
                let _job = job;
                match Self::connect_monitor(&rt.paths.monitor).await {
                    Ok((mon, events)) => {
                        rt.set_monitor(MonitorState::Connected(mon.clone()));
                        Ok((mon, events))
                    }
                    Err(e) => {
                        rt.set_monitor(MonitorState::Failed(e.clone()));
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
    /// first waits (at most [`PEER_WAIT`]) until it answers its health
    /// check, then resolves, retrying with back-off while it fails. The
    /// running guest never depends on this (QEMU has its files open); the
    /// live definition gets the paths back for later changes.
    async fn resolve_adopted(self: Arc<Self>, obj: Arc<DomainObj>) {
        let Some(storage) = self.storage.as_ref() else {
            return;
        };
        if !storage.wait_ready(PEER_WAIT).await {
            tracing::warn!(
                "virtstoraged did not answer within {:?}; resolving volumes anyway",
                PEER_WAIT
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
        if !client.wait_ready(PEER_WAIT).await {
            tracing::warn!(
                "virtnetworkd did not answer within {PEER_WAIT:?}; reclaiming ports anyway"
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

/// Kills QEMU processes that no status file (or start record) explains:
/// left by a daemon killed between spawning QEMU and writing the start
/// record, which cannot happen any more, or by hand-removed files. Their
/// domain directories go with them.
async fn kill_orphans(lib_dir: &Path, procs: &[QemuProc], adopted: &[i32]) {
    let m = marker(lib_dir);
    for p in procs {
        if adopted.contains(&p.pid) {
            continue;
        }
        tracing::warn!(pid = p.pid, "killing a QEMU that no status file names");
        kill_now(p.pid).await;
        if let Some(dir) = p.domain_dir(&m) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How long [`kill_now`] waits for a killed QEMU to be gone.
const KILL_NOW_WAIT: Duration = Duration::from_secs(2);

/// SIGKILL to `pid`, then a short wait for it to go (it is not our child:
/// PID 1 reaps it), awaiting its pidfd so that no runtime worker blocks.
async fn kill_now(pid: i32) {
    let fd = PidFd::open(pid).ok();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    if let Some(fd) = fd
        && tokio::time::timeout(KILL_NOW_WAIT, fd.exited())
            .await
            .is_err()
    {
        tracing::warn!(pid, "a killed QEMU is still there after {KILL_NOW_WAIT:?}");
    }
}

/// A definition for a QEMU whose domain we know nothing else of: its name,
/// UUID, id, memory and vCPUs from the command line.
fn minimal_def(
    name: &str,
    uuid: Option<common::xml::values::Uuid>,
    id: Option<i32>,
    p: &QemuProc,
    hooks: &crate::hooks::QemuHooks,
) -> Option<DomainDef> {
    let uuid = uuid?;
    // `-m size=65536k` or `-m 64` (MiB).
    let kib = p
        .opt("-m")
        .map(|m| m.strip_prefix("size=").unwrap_or(m))
        .map(|m| m.split(',').next().unwrap_or(m))
        .and_then(|m| match m.strip_suffix('k') {
            Some(k) => k.parse::<u64>().ok(),
            None => m
                .strip_suffix('M')
                .unwrap_or(m)
                .parse::<u64>()
                .ok()
                .map(|v| v * 1024),
        })
        .unwrap_or(1024);
    let vcpus = p
        .opt("-smp")
        .and_then(|s| s.split(',').next()?.parse::<u32>().ok())
        .unwrap_or(1);
    let id_attr = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    let xml = format!(
        "<domain type='qemu'{id_attr}><name>{}</name><uuid>{uuid}</uuid><memory unit='KiB'>{kib}</memory><vcpu>{vcpus}</vcpu><os><type>hvm</type></os></domain>",
        common::xml::escape(name)
    );
    let flags = ParseFlags {
        inactive: false,
        validate: false,
        allow_post_parse_fail: true,
    };
    DomainDef::parse_str(&xml, flags, hooks).ok()
}
