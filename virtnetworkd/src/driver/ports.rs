//! Network ports (libvirt's `virNetworkPort*`: what a guest NIC gets from
//! a network, asked for by virtqemud) and DHCP leases.
//!
//! A port is created on an active network; the network fills in the
//! `<plug>` (its bridge) and, from the portgroup, bandwidth, VLAN and
//! virtual port. Ports are kept in `<run>/network/ports/<network>/` and
//! live as long as the network object: they survive a destroy and start
//! of the network and a daemon restart, and go with a transient network
//! or an undefine.

use std::net::IpAddr;

use common::network::addr::{format_ip, mask_by_prefix};
use common::network::port::{Plug, PortDef};
use common::network::{Bandwidth, MacTableManager, Rate};
use common::objlist::ObjRef;
use common::xml::{MacAddr, ParseFlags, Uuid};
use common::{ErrorCode, ErrorDomain, VirtError};

use super::{NetworkDriver, blocking, operation_invalid, system_error};
use crate::host::{Kind, kind};

/// A port in a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The network's name.
    pub network: String,
    /// The port's UUID.
    pub uuid: Uuid,
    /// Its XML.
    pub xml: String,
}

/// One DHCP lease (libvirt's `virNetworkDHCPLease`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpLease {
    /// The bridge.
    pub iface: String,
    /// Expiry, seconds since the epoch (0: never).
    pub expiry_time: i64,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// The client MAC.
    pub mac: String,
    /// DHCPv6 IAID.
    pub iaid: String,
    /// The address.
    pub ipaddr: String,
    /// The prefix of the network it is in.
    pub prefix: u32,
    /// The client's host name.
    pub hostname: String,
    /// Client id / DUID.
    pub clientid: String,
}

/// The tunables of a port, libvirt's `VIR_NETWORK_PORT_BANDWIDTH_*`.
pub const PORT_PARAMS: [&str; 7] = [
    "inbound.average",
    "inbound.peak",
    "inbound.burst",
    "inbound.floor",
    "outbound.average",
    "outbound.peak",
    "outbound.burst",
];

fn no_port(uuid: &str) -> VirtError {
    VirtError::new(
        ErrorCode::NoNetworkPort,
        ErrorDomain::Network,
        format!("Network port not found: no network port with matching uuid '{uuid}'"),
    )
}

fn port_info(network: &str, p: &PortDef) -> PortInfo {
    PortInfo {
        network: network.to_owned(),
        uuid: p.uuid,
        xml: p.to_xml(),
    }
}

fn parse_port_uuid(s: &str) -> Result<Uuid, VirtError> {
    Uuid::parse(s).ok_or_else(|| {
        VirtError::new(
            ErrorCode::InvalidArg,
            ErrorDomain::Network,
            format!("invalid argument: '{s}' is not a valid port UUID"),
        )
    })
}

fn param_value(bw: Option<&Bandwidth>, name: &str) -> u64 {
    let Some(bw) = bw else { return 0 };
    let (rate, field) = match name.split_once('.') {
        Some(("inbound", f)) => (bw.inbound.as_ref(), f),
        Some(("outbound", f)) => (bw.outbound.as_ref(), f),
        _ => return 0,
    };
    let Some(r) = rate else { return 0 };
    match field {
        "average" => r.average,
        "peak" => r.peak,
        "burst" => r.burst,
        "floor" => r.floor,
        _ => None,
    }
    .unwrap_or(0)
}

impl NetworkDriver {
    /// Creates a port on an active network (libvirt's
    /// `networkPortCreateXML`).
    ///
    /// # Errors
    /// `NO_NETWORK`; OPERATION_INVALID when the network does not run; the
    /// XML is refused; a port of that UUID exists; an unknown portgroup;
    /// the port file cannot be written.
    pub async fn create_port(
        &self,
        r: &ObjRef,
        xml: &str,
        validate: bool,
    ) -> Result<PortInfo, VirtError> {
        let mut port = PortDef::parse_str(
            xml,
            ParseFlags {
                validate,
                ..ParseFlags::default()
            },
        )
        .map_err(|e| e.to_virt_error(ErrorDomain::Network))?;
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let (def, name) = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.active {
                return Err(operation_invalid(format!(
                    "network '{}' is not active",
                    st.def.name
                )));
            }
            if st.ports.contains_key(&port.uuid.0) {
                return Err(VirtError::new(
                    ErrorCode::NetworkPortExist,
                    ErrorDomain::Network,
                    format!("Network port with UUID {} already exists", port.uuid),
                ));
            }
            (st.def.clone(), st.def.name.clone())
        };
        let bridge = def.bridge.name.clone().unwrap_or_default();
        let mtm = def
            .bridge
            .mac_table_manager
            .unwrap_or(MacTableManager::Kernel);
        port.plug = match kind(&def) {
            Kind::Managed => Plug::Network {
                bridge,
                mac_table_manager: mtm,
            },
            Kind::HostBridge => Plug::Bridge {
                bridge,
                mac_table_manager: mtm,
            },
            Kind::Unsupported(m) => {
                return Err(VirtError::new(
                    ErrorCode::ConfigUnsupported,
                    ErrorDomain::Network,
                    format!(
                        "unsupported configuration: ports of forward mode '{m}' networks are not supported"
                    ),
                ));
            }
        };
        let pg = match port.group.as_deref() {
            Some(g) => Some(def.portgroup(Some(g)).ok_or_else(|| {
                VirtError::new(
                    ErrorCode::ConfigUnsupported,
                    ErrorDomain::Network,
                    format!(
                        "unsupported configuration: No network portgroup named '{g}' in network '{name}'"
                    ),
                )
            })?),
            None => def.portgroup(None),
        };
        if port.bandwidth.is_none() {
            port.bandwidth = pg.and_then(|p| p.bandwidth.clone());
        }
        if port.trust_guest_rx_filters.is_none() {
            port.trust_guest_rx_filters = pg
                .and_then(|p| p.trust_guest_rx_filters)
                .or(def.trust_guest_rx_filters);
        }
        if port.isolated.is_none() {
            port.isolated = def.port_isolated;
        }
        let status = self.status.clone();
        let (n, p) = (name.clone(), port.clone());
        blocking(move || status.save_port(&n, &p).map_err(system_error)).await?;
        obj.lock().ports.insert(port.uuid.0, port.clone());
        tracing::info!(
            network = %name,
            port = %port.uuid,
            owner = %port.owner_name,
            mac = %port.mac,
            "port created"
        );
        Ok(port_info(&name, &port))
    }

    /// The port `uuid` of network `r`.
    ///
    /// # Errors
    /// `NO_NETWORK`, `NO_NETWORK_PORT`.
    pub fn lookup_port(&self, r: &ObjRef, uuid: &str) -> Result<PortInfo, VirtError> {
        let u = parse_port_uuid(uuid)?;
        let obj = self.find(r)?;
        let st = obj.lock();
        st.ports
            .get(&u.0)
            .map(|p| port_info(&st.def.name, p))
            .ok_or_else(|| no_port(uuid))
    }

    /// The ports of network `r`, sorted by UUID.
    ///
    /// # Errors
    /// `NO_NETWORK`.
    pub fn list_ports(&self, r: &ObjRef) -> Result<Vec<PortInfo>, VirtError> {
        let obj = self.find(r)?;
        let st = obj.lock();
        Ok(st
            .ports
            .values()
            .map(|p| port_info(&st.def.name, p))
            .collect())
    }

    /// Deletes a port (libvirt's `networkPortDelete`).
    ///
    /// # Errors
    /// `NO_NETWORK`, `NO_NETWORK_PORT`; its file cannot be removed.
    pub async fn delete_port(&self, r: &ObjRef, uuid: &str) -> Result<(), VirtError> {
        let u = parse_port_uuid(uuid)?;
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let name = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            if !st.ports.contains_key(&u.0) {
                return Err(no_port(uuid));
            }
            st.def.name.clone()
        };
        let status = self.status.clone();
        let s = u.to_string();
        let n = name.clone();
        blocking(move || status.remove_port(&n, &s).map_err(system_error)).await?;
        obj.lock().ports.remove(&u.0);
        tracing::info!(network = %name, port = %u, "port deleted");
        Ok(())
    }

    /// A port's bandwidth tunables, every one of [`PORT_PARAMS`] (0 when
    /// unset).
    ///
    /// # Errors
    /// `NO_NETWORK`, `NO_NETWORK_PORT`.
    pub fn port_params(&self, r: &ObjRef, uuid: &str) -> Result<Vec<(String, u64)>, VirtError> {
        let u = parse_port_uuid(uuid)?;
        let obj = self.find(r)?;
        let st = obj.lock();
        let p = st.ports.get(&u.0).ok_or_else(|| no_port(uuid))?;
        Ok(PORT_PARAMS
            .iter()
            .map(|n| ((*n).to_owned(), param_value(p.bandwidth.as_ref(), n)))
            .collect())
    }

    /// Changes a port's bandwidth tunables (others are kept).
    ///
    /// # Errors
    /// `NO_NETWORK`, `NO_NETWORK_PORT`; an unknown parameter; the port
    /// file cannot be written.
    pub async fn set_port_params(
        &self,
        r: &ObjRef,
        uuid: &str,
        params: &[(String, u64)],
    ) -> Result<(), VirtError> {
        let u = parse_port_uuid(uuid)?;
        for (n, _) in params {
            if !PORT_PARAMS.contains(&n.as_str()) {
                return Err(VirtError::new(
                    ErrorCode::InvalidArg,
                    ErrorDomain::Network,
                    format!("argument unsupported: parameter '{n}' not supported"),
                ));
            }
        }
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let (name, port) = {
            let st = obj.lock();
            let mut p = st.ports.get(&u.0).cloned().ok_or_else(|| no_port(uuid))?;
            let mut bw = p.bandwidth.clone().unwrap_or_default();
            for (n, v) in params {
                let (dir, field) = n.split_once('.').unwrap_or_default();
                let rate: &mut Rate = if dir == "inbound" {
                    bw.inbound.get_or_insert_with(Rate::default)
                } else {
                    bw.outbound.get_or_insert_with(Rate::default)
                };
                let slot = match field {
                    "average" => &mut rate.average,
                    "peak" => &mut rate.peak,
                    "burst" => &mut rate.burst,
                    _ => &mut rate.floor,
                };
                *slot = (*v != 0).then_some(*v);
            }
            let empty = |r: &Option<Rate>| r.as_ref().is_none_or(|r| *r == Rate::default());
            if empty(&bw.inbound) {
                bw.inbound = None;
            }
            if empty(&bw.outbound) {
                bw.outbound = None;
            }
            p.bandwidth = (bw.inbound.is_some() || bw.outbound.is_some()).then_some(bw);
            (st.def.name.clone(), p)
        };
        let status = self.status.clone();
        let (n, p) = (name, port.clone());
        blocking(move || status.save_port(&n, &p).map_err(system_error)).await?;
        obj.lock().ports.insert(u.0, port);
        Ok(())
    }

    /// The current DHCP leases of network `r` (libvirt's
    /// `networkGetDHCPLeases`), optionally only those of `mac`.
    ///
    /// # Errors
    /// `NO_NETWORK`; a network without a bridge.
    pub async fn dhcp_leases(
        &self,
        r: &ObjRef,
        mac: Option<&str>,
    ) -> Result<Vec<DhcpLease>, VirtError> {
        let def = self.find(r)?.lock().def.clone();
        let bridge = self.bridge_name(r)?;
        let dir = self.host.dnsmasq.state_dir.clone();
        let b = bridge.clone();
        let leases = blocking(move || Ok(crate::leases::current(&dir, &b))).await?;
        let want = mac.and_then(MacAddr::parse);
        let mut out = Vec::new();
        for l in leases {
            let lmac = l.mac.clone().unwrap_or_default();
            if mac.is_some() && MacAddr::parse(&lmac) != want {
                continue;
            }
            let Some(addr) = common::network::addr::parse_ip(&l.ip) else {
                continue;
            };
            let prefix = def
                .ips
                .iter()
                .filter(|ip| ip.address.is_ipv4() == addr.is_ipv4())
                .find_map(|ip| {
                    let p = ip.effective_prefix()?;
                    (mask_by_prefix(&ip.address, p) == mask_by_prefix(&addr, p)).then_some(p)
                })
                .unwrap_or(0);
            out.push(DhcpLease {
                iface: bridge.clone(),
                expiry_time: l.expiry,
                ipv6: matches!(addr, IpAddr::V6(_)),
                mac: lmac,
                iaid: l.iaid.clone().unwrap_or_default(),
                ipaddr: format_ip(&addr),
                prefix,
                hostname: l.hostname.clone().unwrap_or_default(),
                clientid: l.client_id.clone().unwrap_or_default(),
            });
        }
        Ok(out)
    }
}
