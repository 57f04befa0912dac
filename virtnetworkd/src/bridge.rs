//! The host side of a network with a bridge of its own (forward modes
//! nat, route, open and isolated), as libvirt's
//! `networkStartNetworkVirtual`: the bridge (with its MAC, MTU, STP and
//! forward delay) created over netlink, IPv6 sysctls, its addresses, up,
//! static routes, and IP forwarding when the network routes.
//!
//! Blocking; the driver calls these from `spawn_blocking`.

use std::net::IpAddr;

use common::network::addr::{broadcast_v4, format_ip, mask_by_prefix};
use common::network::{ForwardMode, NetworkDef};

use crate::netlink::{self, BridgeSpec};

/// A failure on the host.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The network has no bridge name (cannot happen after define).
    #[error("internal error: network '{0}' has no bridge name")]
    NoName(String),
    /// A link of that name exists already.
    #[error("internal error: Network is already in use by interface {0}")]
    InUse(String),
    /// Another interface routes the network's subnet.
    #[error("internal error: Network is already in use by interface {0}")]
    RouteCollision(String),
    /// The host bridge of a `forward mode='bridge'` network is missing.
    #[error("Cannot get interface MTU on '{0}': No such device")]
    Missing(String),
    /// A netlink request failed.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A sysctl could not be written.
    #[error("cannot write {path}: {source}")]
    Sysctl {
        /// The file under /proc/sys.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn nl(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BridgeError {
    let what = what.into();
    move |source| BridgeError::Netlink { what, source }
}

fn sysctl(path: &str, value: &str) -> Result<(), BridgeError> {
    std::fs::write(path, value).map_err(|source| BridgeError::Sysctl {
        path: path.to_owned(),
        source,
    })
}

fn sysctl_read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The bridge name of `def`.
///
/// # Errors
/// It has none.
pub fn bridge_name(def: &NetworkDef) -> Result<&str, BridgeError> {
    def.bridge
        .name
        .as_deref()
        .ok_or_else(|| BridgeError::NoName(def.name.clone()))
}

/// The IPv4 routing table as `(interface, destination, mask)`, from
/// `/proc/net/route`.
fn ipv4_routes() -> Vec<(String, u32, u32)> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The file has the addresses in host byte order of a
            // little-endian read of network-order bytes.
            Some((
                (*f.first()?).to_owned(),
                u32::from_be(dest.to_le()),
                u32::from_be(mask.to_le()),
            ))
        })
        .collect()
}

/// libvirt's `networkCheckRouteCollision`: refuses a network whose IPv4
/// subnet another interface already routes (same destination and mask).
///
/// # Errors
/// [`BridgeError::RouteCollision`] naming that interface.
pub fn check_route_collision(def: &NetworkDef) -> Result<(), BridgeError> {
    let own = def.bridge.name.as_deref().unwrap_or_default();
    let routes = ipv4_routes();
    for ip in def.ips.iter().filter(|i| i.is_ipv4()) {
        let Some(prefix) = ip.effective_prefix() else {
            continue;
        };
        let Some(IpAddr::V4(net)) = mask_by_prefix(&ip.address, prefix) else {
            continue;
        };
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        for (iface, dest, m) in &routes {
            if iface != own && *dest == u32::from(net) && *m == mask {
                return Err(BridgeError::RouteCollision(iface.clone()));
            }
        }
    }
    Ok(())
}

/// Creates and configures the bridge of `def`, brings it up, adds its
/// routes and turns on forwarding as needed. On failure everything done
/// is undone (the bridge deleted).
///
/// # Errors
/// See [`BridgeError`].
pub fn setup(def: &NetworkDef) -> Result<(), BridgeError> {
    let name = bridge_name(def)?;
    if netlink::link_exists(name) {
        return Err(BridgeError::InUse(name.to_owned()));
    }
    check_route_collision(def)?;
    let spec = BridgeSpec {
        name: name.to_owned(),
        mac: def.mac.map(|m| m.0),
        mtu: def.mtu.filter(|m| *m > 0),
        stp: def.bridge.stp_enabled(),
        delay_secs: def.bridge.delay_secs(),
    };
    netlink::create_bridge(&spec).map_err(nl(format!("Unable to create bridge {name}")))?;
    let r = configure(def, name);
    if r.is_err()
        && let Some(i) = netlink::ifindex(name)
    {
        let _ = netlink::delete_link(i);
    }
    r
}

fn configure(def: &NetworkDef, name: &str) -> Result<(), BridgeError> {
    let index = netlink::ifindex(name).ok_or_else(|| BridgeError::Netlink {
        what: format!("Unable to find bridge {name}"),
        source: std::io::Error::from_raw_os_error(nix::libc::ENODEV),
    })?;
    set_ipv6_sysctls(def, name);
    for ip in &def.ips {
        let prefix = ip
            .effective_prefix()
            .unwrap_or(if ip.is_ipv4() { 24 } else { 64 });
        let bcast = match ip.address {
            IpAddr::V4(a) => broadcast_v4(&a, prefix).map(IpAddr::V4),
            IpAddr::V6(_) => None,
        };
        netlink::add_address(index, &ip.address, u8::try_from(prefix).unwrap_or(0), bcast)
            .map_err(nl(format!(
                "Failed to add IP address {}/{prefix} to {name}",
                format_ip(&ip.address)
            )))?;
    }
    netlink::set_up(index).map_err(nl(format!("Failed to set bridge {name} up")))?;
    for r in &def.routes {
        let prefix = r
            .prefix
            .or_else(|| {
                r.netmask
                    .as_ref()
                    .and_then(common::network::addr::netmask_bits)
            })
            .unwrap_or(if r.address.is_ipv4() { 32 } else { 128 });
        netlink::add_route(
            index,
            &r.address,
            u8::try_from(prefix).unwrap_or(0),
            &r.gateway,
            r.metric,
        )
        .map_err(nl(format!(
            "Failed to add route {}/{prefix} via {} on {name}",
            format_ip(&r.address),
            format_ip(&r.gateway)
        )))?;
    }
    enable_forwarding(def)?;
    Ok(())
}

/// libvirt's `networkSetIPv6Sysctls`: without IPv6 on the network the
/// bridge gets none at all; with it, no autoconfiguration from router
/// advertisements (dnsmasq sends them).
fn set_ipv6_sysctls(def: &NetworkDef, name: &str) {
    let base = format!("/proc/sys/net/ipv6/conf/{name}");
    if !std::path::Path::new(&base).exists() {
        return;
    }
    let has_v6 = def.ips.iter().any(|i| i.is_ipv6()) || def.ipv6_no_gateway;
    if has_v6 {
        let _ = sysctl(&format!("{base}/disable_ipv6"), "0");
        let _ = sysctl(&format!("{base}/accept_ra"), "0");
        let _ = sysctl(&format!("{base}/autoconf"), "0");
    } else {
        let _ = sysctl(&format!("{base}/disable_ipv6"), "1");
    }
}

/// `net.ipv4.ip_forward` (and IPv6 forwarding) for networks that route:
/// nat and route (libvirt's `networkEnableIPForwarding`).
fn enable_forwarding(def: &NetworkDef) -> Result<(), BridgeError> {
    if !matches!(
        def.forward_mode(),
        Some(ForwardMode::Nat | ForwardMode::Route)
    ) {
        return Ok(());
    }
    if def.ips.iter().any(|i| i.is_ipv4())
        && sysctl_read("/proc/sys/net/ipv4/ip_forward").as_deref() != Some("1")
    {
        sysctl("/proc/sys/net/ipv4/ip_forward", "1\n")?;
    }
    if def.ips.iter().any(|i| i.is_ipv6())
        && sysctl_read("/proc/sys/net/ipv6/conf/all/forwarding").as_deref() != Some("1")
    {
        sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1\n")?;
    }
    Ok(())
}

/// The prefix of bridges being deleted in the background.
pub const DELETING_PREFIX: &str = "virtdel";

/// Takes the bridge of `def` away: down, renamed to `virtdelXXXXXXXX`
/// (its name is free again at once), then deleted on a thread of its
/// own. Deleting a link waits for the kernel's RCU barrier (about 40 ms
/// here), most of a network's destroy time otherwise; down, the bridge
/// carries no traffic and routes nothing meanwhile. A bridge that is
/// already gone is not an error.
///
/// # Errors
/// The kernel refuses to take it down or rename it.
pub fn teardown(def: &NetworkDef) -> Result<(), BridgeError> {
    let name = bridge_name(def)?;
    let Some(index) = netlink::ifindex(name) else {
        return Ok(());
    };
    let gone = |e: &std::io::Error| e.raw_os_error() == Some(nix::libc::ENODEV);
    match netlink::set_down(index) {
        Ok(()) => {}
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(nl(format!("Unable to set bridge {name} down"))(e)),
    }
    let mut r = [0u8; 4];
    common::xml::values::os_random(&mut r);
    let tmp = format!("{DELETING_PREFIX}{:08x}", u32::from_ne_bytes(r));
    if let Err(e) = netlink::rename(index, &tmp) {
        if gone(&e) {
            return Ok(());
        }
        // Not renamed: delete it here and now.
        tracing::debug!(bridge = name, "cannot rename for deletion: {e}");
        return delete_now(index, name);
    }
    std::thread::spawn(move || {
        if let Err(e) = delete_now(index, &tmp) {
            tracing::error!("{e}");
        }
    });
    Ok(())
}

fn delete_now(index: i32, name: &str) -> Result<(), BridgeError> {
    match netlink::delete_link(index) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(()),
        Err(e) => Err(BridgeError::Netlink {
            what: format!("Unable to delete bridge {name}"),
            source: e,
        }),
    }
}

/// Deletes bridges a previous daemon left half-deleted (renamed by
/// [`teardown`], killed before the deletion finished).
pub fn sweep_deleting() {
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for e in rd.flatten() {
        let Some(n) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(hex) = n.strip_prefix(DELETING_PREFIX)
            && hex.len() == 8
            && hex.chars().all(|c| c.is_ascii_hexdigit())
            && let Some(i) = netlink::ifindex(&n)
        {
            std::thread::spawn(move || {
                let _ = delete_now(i, &n);
            });
        }
    }
}

/// A network of `forward mode='bridge'` with a bridge: it must exist.
///
/// # Errors
/// It does not.
pub fn check_host_bridge(def: &NetworkDef) -> Result<(), BridgeError> {
    let name = bridge_name(def)?;
    if netlink::link_exists(name) {
        Ok(())
    } else {
        Err(BridgeError::Missing(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        // The loopback route may be absent in a container; the parser must
        // not panic and must give network-order values.
        for (iface, dest, mask) in ipv4_routes() {
            assert!(!iface.is_empty());
            assert_eq!(dest & mask, dest);
        }
    }
}
