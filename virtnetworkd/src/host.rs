//! The mechanisms together: what starting, stopping, adopting and
//! refreshing a network does on the host. Blocking; the driver runs it
//! in `spawn_blocking`.
//!
//! Start of a network with its own bridge (nat, route, open, isolated):
//!
//! 1. bridge created over netlink, sysctls, addresses, up, routes,
//!    forwarding ([`bridge::setup`]);
//! 2. dnsmasq spawned (files written first), and while it starts up,
//! 3. the firewall rules inserted in one nft batch and, at the same time,
//!    the `<bandwidth>` put on the bridge in one tc batch ([`Tc`]);
//! 4. dnsmasq's first process reaped, pid file read.
//!
//! A bandwidth setting this kernel cannot apply is refused before step 1.
//! Any failure undoes the steps done, in reverse. Stop is the reverse
//! (dnsmasq, rules by handle, bridge; the bridge's qdiscs go with it) and
//! never fails: what cannot be undone is logged. A `forward mode='bridge'`
//! network only checks that its host bridge exists.

use std::path::PathBuf;

use common::network::dnsmasq::needs_dnsmasq;
use common::network::firewall as rules;
use common::network::{ForwardMode, NetworkDef};
use common::{ErrorCode, ErrorDomain, VirtError};

use crate::bridge;
use crate::dnsmasq::{DnsmasqDirs, DnsmasqProc};
use crate::driver::Dirs;
use crate::firewall::Firewall;
use crate::status::Runtime;
use crate::tc::{PlanNetwork as _, Tc};

/// How a network is realised on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A bridge of its own (no forward, nat, route, open).
    Managed,
    /// An existing host bridge (`forward mode='bridge'` with `<bridge>`).
    HostBridge,
    /// macvtap or hostdev modes: not supported here.
    Unsupported(ForwardMode),
}

/// The kind of `def`.
pub fn kind(def: &NetworkDef) -> Kind {
    match def.forward_mode() {
        None | Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open) => Kind::Managed,
        Some(ForwardMode::Bridge) if def.bridge.name.is_some() => Kind::HostBridge,
        Some(m) => Kind::Unsupported(m),
    }
}

fn host_error(e: impl std::fmt::Display) -> VirtError {
    VirtError::new(ErrorCode::SystemError, ErrorDomain::Network, e.to_string())
}

/// The host side of the driver.
#[derive(Debug)]
pub struct Host {
    /// dnsmasq's files and binary.
    pub dnsmasq: DnsmasqDirs,
    /// Our nftables tables.
    pub firewall: Firewall,
    /// tc, for bandwidth.
    pub tc: Tc,
}

impl Host {
    /// The host side on `dirs`, with the leases helper at `helper` and
    /// nftables table `table`.
    pub fn new(dirs: &Dirs, helper: PathBuf, table: &str) -> Host {
        Host {
            dnsmasq: DnsmasqDirs {
                state_dir: dirs.dnsmasq.clone(),
                pid_dir: dirs.run.clone(),
                helper,
                binary: crate::dnsmasq::find_binary(),
            },
            firewall: Firewall::new(table),
            tc: Tc::new(),
        }
    }

    /// Starts `def` on the host.
    ///
    /// # Errors
    /// The first step that failed; everything before it is undone.
    pub fn start(&self, def: &NetworkDef) -> Result<Runtime, VirtError> {
        let mut rt = Runtime {
            table: self.firewall.table().to_owned(),
            ..Runtime::default()
        };
        match kind(def) {
            Kind::HostBridge => {
                bridge::check_host_bridge(def).map_err(host_error)?;
                return Ok(rt);
            }
            Kind::Unsupported(m) => {
                return Err(VirtError::new(
                    ErrorCode::ConfigUnsupported,
                    ErrorDomain::Network,
                    format!("unsupported configuration: forward mode '{m}' is not supported"),
                ));
            }
            Kind::Managed => {}
        }
        let wanted_rules = if rules::wants_rules(def) {
            rules::network_rules(def).map_err(host_error)?
        } else {
            Vec::new()
        };
        let shaping = self.tc.plan(def)?;
        let t0 = std::time::Instant::now();
        bridge::setup(def).map_err(host_error)?;
        let t_bridge = t0.elapsed();
        let child = if needs_dnsmasq(def) {
            match self.dnsmasq.spawn(def) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.undo(def, &rt);
                    return Err(host_error(e));
                }
            }
        } else {
            None
        };
        // The rules and the bandwidth go in while dnsmasq starts up.
        let t_spawn = t0.elapsed();
        let (fw, shaped) = std::thread::scope(|s| {
            let shaped = (!shaping.is_empty()).then(|| s.spawn(|| self.tc.apply(&shaping)));
            let fw = self.firewall.add(&wanted_rules);
            let shaped = shaped.map_or(Ok(()), |h| {
                h.join()
                    .unwrap_or_else(|_| Err("tc thread panicked".to_owned()))
            });
            (fw, shaped)
        });
        let t_fw = t0.elapsed();
        let dns = child.map(|c| self.dnsmasq.finish_start(def, c));
        tracing::debug!(
            network = %def.name,
            bridge_us = t_bridge.as_micros(),
            spawn_us = t_spawn.as_micros(),
            rules_us = t_fw.as_micros(),
            dnsmasq_us = t0.elapsed().as_micros(),
            "host side started"
        );
        let failed = match (&fw, shaped) {
            (Err(e), _) => Some(format!(
                "Failed to add firewall rules for network '{}': {e}",
                def.name
            )),
            (Ok(_), Err(e)) => Some(format!(
                "Failed to set bandwidth on bridge '{}' of network '{}': {e}",
                def.bridge.name.as_deref().unwrap_or_default(),
                def.name
            )),
            (Ok(_), Ok(())) => None,
        };
        if let Ok(h) = fw {
            rt.rules = h;
        }
        if let Some(msg) = failed {
            if let Some(Ok(p)) = dns {
                rt.dnsmasq = Some(p);
            }
            self.undo(def, &rt);
            return Err(host_error(msg));
        }
        match dns {
            None => {}
            Some(Ok(p)) => rt.dnsmasq = Some(p),
            Some(Err(e)) => {
                self.undo(def, &rt);
                return Err(host_error(e));
            }
        }
        Ok(rt)
    }

    fn undo(&self, def: &NetworkDef, rt: &Runtime) {
        self.stop(def, rt);
    }

    /// Stops `def` on the host: dnsmasq, rules and bridge, the three at
    /// once (none needs another gone first). Never fails; problems are
    /// logged.
    pub fn stop(&self, def: &NetworkDef, rt: &Runtime) {
        if kind(def) != Kind::Managed {
            return;
        }
        let t0 = std::time::Instant::now();
        std::thread::scope(|s| {
            let dns = rt.dnsmasq.as_ref().map(|p| {
                s.spawn(move || {
                    if let Err(e) = self.dnsmasq.stop(&def.name, p) {
                        tracing::error!(network = %def.name, "cannot stop dnsmasq: {e}");
                    }
                    t0.elapsed()
                })
            });
            let fw = (!rt.rules.is_empty()).then(|| {
                s.spawn(move || {
                    if let Err(e) = self.firewall.remove(&rt.rules) {
                        tracing::error!(network = %def.name, "cannot remove firewall rules: {e}");
                    }
                    t0.elapsed()
                })
            });
            if let Err(e) = bridge::teardown(def) {
                tracing::error!(network = %def.name, "{e}");
            }
            let t_bridge = t0.elapsed();
            let t_dns = dns.and_then(|h| h.join().ok());
            let t_fw = fw.and_then(|h| h.join().ok());
            tracing::debug!(
                network = %def.name,
                bridge_us = t_bridge.as_micros(),
                dnsmasq_us = t_dns.map(|t| t.as_micros()),
                rules_us = t_fw.map(|t| t.as_micros()),
                "host side stopped"
            );
        });
    }

    /// Checks what a status file says runs, after a daemon restart:
    /// `None` when the network is gone (its bridge vanished; whatever is
    /// left of it is cleaned up), else its runtime, repaired where needed
    /// (a dead dnsmasq restarted, missing rules put back) and whether it
    /// changed.
    pub fn adopt(&self, def: &NetworkDef, rt: &Runtime) -> Option<(Runtime, bool)> {
        match kind(def) {
            Kind::HostBridge => {
                return bridge::check_host_bridge(def)
                    .ok()
                    .map(|()| (rt.clone(), false));
            }
            Kind::Unsupported(_) => return None,
            Kind::Managed => {}
        }
        let name = def.bridge.name.as_deref().unwrap_or_default();
        if !crate::netlink::link_exists(name) {
            tracing::warn!(network = %def.name, bridge = name, "bridge gone: the network is no longer active");
            let mut left = rt.clone();
            if let Some(p) = &rt.dnsmasq
                && !self.dnsmasq.is_ours(&def.name, p)
            {
                left.dnsmasq = None;
            }
            if rt.table != self.firewall.table() {
                left.rules.clear();
            }
            self.stop(def, &left);
            return None;
        }
        let mut out = rt.clone();
        let mut changed = false;
        // dnsmasq: ours and alive, else the one its pid file names (started
        // again by the supervisor just before the daemon died, not yet in
        // the status file), else started again.
        let mut alive = rt
            .dnsmasq
            .as_ref()
            .is_some_and(|p| self.dnsmasq.is_ours(&def.name, p));
        if needs_dnsmasq(def)
            && !alive
            && let Some(p) = self.dnsmasq.from_pid_file(&def.name)
        {
            tracing::info!(network = %def.name, pid = p.pid, "adopting the dnsmasq its pid file names");
            out.dnsmasq = Some(p);
            changed = true;
            alive = true;
        }
        if needs_dnsmasq(def) && !alive {
            tracing::warn!(network = %def.name, "dnsmasq is not running: starting it again");
            out.dnsmasq = match self.dnsmasq.start(def) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(network = %def.name, "cannot start dnsmasq: {e}");
                    None
                }
            };
            changed = true;
        }
        // Rules: every recorded handle still there, else put back.
        if rules::wants_rules(def) {
            let present = if rt.table == self.firewall.table() {
                self.firewall.present(&rt.rules)
            } else {
                Default::default()
            };
            if rt.rules.is_empty() || present.len() != rt.rules.len() {
                tracing::warn!(network = %def.name, "firewall rules missing: adding them again");
                let still: Vec<_> = rt
                    .rules
                    .iter()
                    .filter(|h| present.contains(*h))
                    .cloned()
                    .collect();
                let _ = self.firewall.remove(&still);
                out.table = self.firewall.table().to_owned();
                out.rules = match rules::network_rules(def)
                    .map_err(|e| e.to_string())
                    .and_then(|r| self.firewall.add(&r).map_err(|e| e.to_string()))
                {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::error!(network = %def.name, "cannot add firewall rules: {e}");
                        Vec::new()
                    }
                };
                changed = true;
            }
        }
        // Bandwidth: the qdiscs still on the bridge, else put back.
        match self.tc.plan(def) {
            Ok(cmds) if !cmds.is_empty() && !self.tc.present(name, &cmds) => {
                tracing::warn!(network = %def.name, "bandwidth missing on the bridge: setting it again");
                self.tc.clear(name);
                if let Err(e) = self.tc.apply(&cmds) {
                    tracing::error!(network = %def.name, "cannot set bandwidth: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(network = %def.name, "{}", e.message),
        }
        Some((out, changed))
    }

    /// Applies a live definition change to dnsmasq: SIGHUP when only the
    /// hosts files changed (`restart` false), else a restart. Returns the
    /// (possibly new) dnsmasq.
    ///
    /// # Errors
    /// dnsmasq could not be refreshed or restarted.
    pub fn refresh_dnsmasq(
        &self,
        def: &NetworkDef,
        current: Option<DnsmasqProc>,
        restart: bool,
    ) -> Result<Option<DnsmasqProc>, VirtError> {
        if kind(def) != Kind::Managed {
            return Ok(current);
        }
        let alive = current.filter(|p| self.dnsmasq.is_ours(&def.name, p));
        match alive {
            Some(p) if !restart => {
                self.dnsmasq.refresh(def, &p).map_err(host_error)?;
                Ok(Some(p))
            }
            other => {
                if let Some(p) = other {
                    self.dnsmasq.stop(&def.name, &p).map_err(host_error)?;
                }
                if needs_dnsmasq(def) {
                    Ok(Some(self.dnsmasq.start(def).map_err(host_error)?))
                } else {
                    Ok(None)
                }
            }
        }
    }
}
