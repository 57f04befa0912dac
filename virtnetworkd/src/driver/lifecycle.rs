//! Starting and stopping networks; creating transient ones; adopting the
//! running ones after a daemon restart; autostart.

use std::sync::Arc;

use common::VirtError;
use common::network::NetworkDef;
use common::objlist::{Added, ObjRef};
use common::xml::FormatFlags;

use super::{NetworkDriver, blocking, internal, operation_invalid};
use crate::network_obj::{Lifecycle, NetworkInfo, NetworkObj};
use crate::status::{NetworkStatus, Runtime};

impl NetworkDriver {
    /// Runs the host side of a start and writes the status file; on a
    /// status-file failure the host side is undone, so there is never a
    /// running network a restarted daemon would not know about.
    async fn start_host(&self, def: Arc<NetworkDef>) -> Result<Runtime, VirtError> {
        let host = self.host.clone();
        let status = self.status.clone();
        blocking(move || {
            let rt = host.start(&def)?;
            let st = NetworkStatus {
                def: (*def).clone(),
                runtime: rt.clone(),
            };
            if let Err(e) = status.save(&st) {
                host.stop(&def, &rt);
                return Err(super::system_error(e));
            }
            Ok(rt)
        })
        .await
    }

    /// Starts a defined network (libvirt's `networkCreate`): bridge,
    /// addresses, firewall rules, dnsmasq; publishes STARTED.
    ///
    /// # Errors
    /// `NO_NETWORK`; OPERATION_INVALID when it runs; the host refuses
    /// (nothing is left behind).
    pub async fn start(&self, r: &ObjRef) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let def = {
            let mut st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if st.active {
                return Err(operation_invalid("network is already active"));
            }
            // A definition changed while it ran applies now.
            if let Some(n) = st.new_def.take() {
                st.def = n;
            }
            st.def.clone()
        };
        let rt = self.start_host(def).await?;
        let info = {
            let mut st = obj.lock();
            st.active = true;
            st.runtime = Some(rt);
            st.info()
        };
        tracing::info!(network = %info.name, bridge = %info.bridge, "network started");
        self.supervise_dnsmasq(&obj);
        self.publish(&info, Lifecycle::Started);
        Ok(())
    }

    /// Creates and starts a transient network (libvirt's
    /// `networkCreateXML`).
    ///
    /// # Errors
    /// The XML is refused; a duplicate; the start fails (the network is
    /// then gone again).
    pub async fn create_xml(&self, xml: &str, validate: bool) -> Result<NetworkInfo, VirtError> {
        let mut def = Self::parse(xml, validate)?;
        let define = self.define_lock.lock().await;
        self.assign_bridge(&mut def)?;
        self.check_startable(&def)?;
        let name = def.name.clone();
        let uuid = def.uuid.map(|u| u.0).unwrap_or_default();
        let def = Arc::new(def);
        let fresh = Arc::new(NetworkObj::new(def.clone(), false, false));
        let job = fresh
            .job
            .try_lock()
            .map_err(|_| internal("a new network's job lock is taken"))?;
        let obj = match self.networks.add_arc(&name, &uuid, || fresh.clone())? {
            Added::New(o) => o,
            Added::Existing(o) => {
                // libvirt: a defined network of that name and UUID is
                // started as it is defined... only if inactive; we refuse
                // as virNetworkObjAssignDef does for a running one.
                let st = o.lock();
                return Err(if st.active {
                    operation_invalid(format!("network '{name}' is already active"))
                } else {
                    VirtError::new(
                        common::ErrorCode::NetworkExist,
                        common::ErrorDomain::Network,
                        format!(
                            "operation failed: network '{name}' already exists with uuid {}",
                            common::objlist::format_uuid(&uuid)
                        ),
                    )
                });
            }
        };
        drop(define);
        match self.start_host(def).await {
            Ok(rt) => {
                let info = {
                    let mut st = obj.lock();
                    st.active = true;
                    st.runtime = Some(rt);
                    st.info()
                };
                drop(job);
                self.supervise_dnsmasq(&obj);
                self.publish(&info, Lifecycle::Started);
                Ok(info)
            }
            Err(e) => {
                obj.lock().removed = true;
                self.networks.remove(&uuid);
                drop(job);
                Err(e)
            }
        }
    }

    /// Stops a network (libvirt's `networkDestroy`): dnsmasq, firewall
    /// rules, bridge; publishes STOPPED. A transient network disappears.
    ///
    /// # Errors
    /// `NO_NETWORK`; OPERATION_INVALID when it does not run.
    pub async fn destroy(&self, r: &ObjRef) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let (def, rt) = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.active {
                return Err(operation_invalid("network is not active"));
            }
            (st.def.clone(), st.runtime.clone().unwrap_or_default())
        };
        let host = self.host.clone();
        let status = self.status.clone();
        let d = def.clone();
        blocking(move || {
            host.stop(&d, &rt);
            status.remove(&d.name).map_err(super::system_error)
        })
        .await?;
        let (info, transient) = {
            let mut st = obj.lock();
            st.active = false;
            st.runtime = None;
            if let Some(n) = st.new_def.take() {
                st.def = n;
            }
            let transient = !st.persistent;
            if transient {
                st.removed = true;
            }
            (st.info(), transient)
        };
        if transient {
            self.networks.remove(&info.uuid);
            self.forget_files(&def.name, def.bridge.name.as_deref())
                .await;
        }
        tracing::info!(network = %info.name, "network stopped");
        self.publish(&info, Lifecycle::Stopped);
        Ok(())
    }

    /// Reads every status file and adopts what still runs (libvirt's
    /// `networkUpdateState`): bridge, dnsmasq and rules are checked, left
    /// alone when they are there, and put back when one is missing; a
    /// network whose bridge is gone is cleaned up and marked inactive.
    pub async fn adopt_running(&self) {
        let status = self.status.clone();
        let found = match blocking(move || Ok(status.scan())).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("cannot scan network status files: {}", e.message);
                return;
            }
        };
        for (name, st) in found {
            let st = match st {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("{e}; the network is not adopted");
                    continue;
                }
            };
            if st.def.name != name {
                tracing::error!(
                    "status file of '{name}' describes network '{}': not adopted",
                    st.def.name
                );
                continue;
            }
            self.adopt_one(st).await;
        }
    }

    async fn adopt_one(&self, st: NetworkStatus) {
        let name = st.def.name.clone();
        let uuid = st.def.uuid.map(|u| u.0).unwrap_or_default();
        let host = self.host.clone();
        let status = self.status.clone();
        let def = st.def.clone();
        let rt = st.runtime.clone();
        let adopted = blocking(move || {
            let r = host.adopt(&def, &rt);
            match &r {
                None => {
                    let _ = status.remove(&def.name);
                }
                Some((rt, true)) => {
                    let _ = status.save(&NetworkStatus {
                        def: def.clone(),
                        runtime: rt.clone(),
                    });
                }
                Some((_, false)) => {}
            }
            let ports = status.load_ports(&def.name);
            Ok((r, ports))
        })
        .await;
        let (result, ports) = match adopted {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(network = %name, "cannot adopt: {}", e.message);
                return;
            }
        };
        let live = Arc::new(st.def);
        let existing = self.networks.find_by_name(&name).map(|e| e.obj);
        match (result, existing) {
            (None, None) => {
                tracing::info!(network = %name, "transient network gone while the daemon was down");
                self.status.remove_ports(&name);
            }
            (None, Some(_)) => {
                tracing::info!(network = %name, "network no longer active");
            }
            (Some((rt, _)), existing) => {
                let obj = match existing {
                    Some(o) => o,
                    None => {
                        let o = Arc::new(NetworkObj::new(live.clone(), false, false));
                        if let Err(e) = self.networks.insert(&name, &uuid, o.clone()) {
                            tracing::error!(network = %name, "cannot adopt: {}", e.message);
                            return;
                        }
                        o
                    }
                };
                let mut s = obj.lock();
                let persistent_def = s.def.clone();
                if s.persistent
                    && persistent_def.to_xml(FormatFlags::default())
                        != live.to_xml(FormatFlags::default())
                {
                    s.new_def = Some(persistent_def);
                }
                s.def = live;
                s.active = true;
                s.runtime = Some(rt);
                s.ports = ports.into_iter().map(|p| (p.uuid.0, p)).collect();
                tracing::info!(network = %name, ports = s.ports.len(), "running network adopted");
                drop(s);
                self.supervise_dnsmasq(&obj);
            }
        }
    }

    /// Starts the autostart networks that are not running, once per host
    /// boot (marker `<run>/network/autostarted`, as libvirt's
    /// `virDriverShouldAutostart`).
    pub async fn autostart_once(&self) {
        let marker = self.run_dir.join("autostarted");
        if marker.exists() {
            return;
        }
        self.autostart_all().await;
        let _ = std::fs::create_dir_all(&self.run_dir);
        if let Err(e) = std::fs::write(&marker, b"") {
            tracing::warn!("cannot write {}: {e}", marker.display());
        }
    }

    /// Starts every autostart network that is not running.
    pub async fn autostart_all(&self) {
        for e in self.networks.snapshot() {
            let (want, name) = {
                let st = e.obj.lock();
                (
                    st.autostart && !st.active && !st.removed,
                    st.def.name.clone(),
                )
            };
            if want {
                match self.start(&ObjRef::Name(name.clone())).await {
                    Ok(()) => tracing::info!(network = %name, "autostarted"),
                    Err(err) => tracing::error!(
                        network = %name,
                        "Failed to autostart network '{name}': {}",
                        err.message
                    ),
                }
            }
        }
    }
}
