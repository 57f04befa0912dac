//! Checks across values of a [`NetworkDef`], as libvirt's network parser
//! makes them: address families, DHCP ranges inside their network, static
//! hosts, routes and their gateways, forward-mode rules, DNS records,
//! bandwidth, VLANs, virtual ports and portgroups. Read-only.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::xml::XmlError;

use super::addr::{MacAddr, broadcast_v4, format_ip, mask_by_netmask, mask_by_prefix};
use super::def::*;

fn ip_path(i: usize) -> String {
    format!("ip[{}]", i + 1)
}

/// libvirt's `virSocketAddrGetRange`: `start`..=`end` must be one family,
/// inside `network` (address and prefix) when given, not start on the
/// network address nor end on the broadcast address (IPv4), not reversed,
/// and differ only in the last 16 bits.
pub fn check_range(
    start: &IpAddr,
    end: &IpAddr,
    network: Option<(&IpAddr, Option<u32>)>,
) -> Result<(), String> {
    let (s, e) = (format_ip(start), format_ip(end));
    if start.is_ipv4() != end.is_ipv4() {
        return Err(format!("mismatch of address family in range {s} - {e}"));
    }
    if let Some((net, prefix)) = network {
        let n = format_ip(net);
        let Some(p) = prefix.filter(|p| *p <= if net.is_ipv4() { 32 } else { 128 }) else {
            return Err(format!(
                "bad prefix {} for network {n} when checking range {s} - {e}",
                prefix.map_or(-1, i64::from)
            ));
        };
        let inside = |a: &IpAddr| {
            a.is_ipv4() == net.is_ipv4() && mask_by_prefix(a, p) == mask_by_prefix(net, p)
        };
        if !inside(start) || !inside(end) {
            return Err(format!(
                "range {s} - {e} is not entirely within network {n}/{p}"
            ));
        }
        if let (IpAddr::V4(net4), IpAddr::V4(s4), IpAddr::V4(e4)) = (net, start, end) {
            if mask_by_prefix(net, p) == Some(IpAddr::V4(*s4)) {
                return Err(format!(
                    "start of range {s} - {e} in network {n}/{p} is the network address"
                ));
            }
            if broadcast_v4(net4, p) == Some(*e4) {
                return Err(format!(
                    "end of range {s} - {e} in network {n}/{p} is the broadcast address"
                ));
            }
        }
    }
    match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let (a, b) = (a.octets(), b.octets());
            if a[..2] != b[..2] {
                return Err(format!("range {s} - {e} is too large (> 65535)"));
            }
            let diff =
                (i32::from(b[2]) - i32::from(a[2])) * 256 + (i32::from(b[3]) - i32::from(a[3]));
            if diff < 0 {
                return Err(format!("range {s} - {e} is reversed"));
            }
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (a.segments(), b.segments());
            if a[..7] != b[..7] {
                return Err(format!("range {s} - {e} is too large (> 65535)"));
            }
            if b[7] < a[7] {
                return Err(format!("range {s} - {e} is reversed"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The longest interface name Linux takes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// Checks a host interface name as the kernel's `dev_valid_name` does: not
/// empty, `.` or `..`, at most [`MAX_IFNAME`] bytes, no `/`, `:` or white
/// space. A `%d` (the driver numbers the interface) counts as up to three
/// digits.
fn check_ifname(path: &str, name: &str) -> Result<(), XmlError> {
    let bad = |why: &str| Err(XmlError::bad_value(path, name, why));
    if name.is_empty() || name == "." || name == ".." {
        return bad("invalid interface name");
    }
    // '"' too: the firewall rules quote interface names for nftables.
    if name
        .chars()
        .any(|c| matches!(c, '/' | ':' | '"') || c.is_whitespace() || c.is_control())
    {
        return bad(
            "interface name may not contain '/', ':', '\"', white space or control characters:",
        );
    }
    if name.replacen("%d", "255", 1).len() > MAX_IFNAME {
        return bad(&format!(
            "interface name is longer than {MAX_IFNAME} bytes:"
        ));
    }
    Ok(())
}

/// Validates everything (see the module documentation).
pub(super) fn validate(def: &NetworkDef) -> Result<(), XmlError> {
    if def.name.is_empty() {
        return Err(XmlError::invalid("name", "network name must not be empty"));
    }
    if def.name.contains('/') {
        return Err(XmlError::bad_value(
            "name",
            def.name.as_str(),
            "invalid char in name: '/' in",
        ));
    }
    if let Some(why) = crate::configstore::name_too_long(&def.name) {
        return Err(XmlError::invalid("name", why));
    }
    if def.title.as_deref().is_some_and(|t| t.contains('\n')) {
        return Err(XmlError::invalid(
            "title",
            "network title can't contain newlines",
        ));
    }
    if let Some(m) = &def.mac
        && m.is_multicast()
    {
        return Err(XmlError::bad_value(
            "mac/@address",
            m.to_string(),
            "invalid multicast bridge mac address",
        ));
    }

    if let Some(b) = &def.bridge.name {
        check_ifname("bridge/@name", b)?;
    }
    for (i, ip) in def.ips.iter().enumerate() {
        validate_ip(ip, &ip_path(i))?;
    }
    validate_routes(def)?;
    validate_forward(def)?;
    validate_dns(&def.dns)?;
    if let Some(bw) = &def.bandwidth {
        validate_bandwidth(bw, "bandwidth")?;
    }
    if let Some(v) = &def.vlan {
        validate_vlan(v, "vlan")?;
    }
    if let Some(vp) = &def.virtualport {
        if vp.kind.is_none() {
            return Err(XmlError::new(
                "virtualport/@type",
                crate::xml::XmlErrorKind::Missing,
            ));
        }
        validate_virtualport(vp, "virtualport")?;
    }
    validate_portgroups(def)?;
    Ok(())
}

fn validate_ip(ip: &IpDef, path: &str) -> Result<(), XmlError> {
    let addr = format_ip(&ip.address);
    match ip.family {
        None | Some(IpFamily::Ipv4) => {
            if !ip.is_ipv4() {
                let which = if ip.family.is_none() { "no" } else { "ipv4" };
                return Err(XmlError::unsupported(
                    format!("{path}/@address"),
                    format!("{which} family specified for non-IPv4 address '{addr}'"),
                ));
            }
            if let Some(m) = &ip.netmask {
                if !m.is_ipv4() {
                    return Err(XmlError::unsupported(
                        format!("{path}/@netmask"),
                        format!(
                            "invalid netmask '{}' for address '{addr}' (both must be IPv4)",
                            format_ip(m)
                        ),
                    ));
                }
                if ip.prefix.is_some_and(|p| p > 0) {
                    return Err(XmlError::unsupported(
                        path,
                        "IP address cannot have both a prefix and a netmask",
                    ));
                }
            }
            if let Some(p) = ip.prefix
                && p > 32
            {
                return Err(XmlError::bad_value(
                    format!("{path}/@prefix"),
                    p.to_string(),
                    "invalid IPv4 prefix",
                ));
            }
        }
        Some(IpFamily::Ipv6) => {
            if !ip.is_ipv6() {
                return Err(XmlError::unsupported(
                    format!("{path}/@address"),
                    format!("family 'ipv6' specified for non-IPv6 address '{addr}'"),
                ));
            }
            if ip.netmask.is_some() {
                return Err(XmlError::unsupported(
                    format!("{path}/@netmask"),
                    format!("netmask not allowed for IPv6 address '{addr}'"),
                ));
            }
            if let Some(p) = ip.prefix
                && p > 128
            {
                return Err(XmlError::bad_value(
                    format!("{path}/@prefix"),
                    p.to_string(),
                    "invalid IPv6 prefix",
                ));
            }
        }
    }
    if ip.tftp_root.is_some() && !ip.is_ipv4() {
        return Err(XmlError::unsupported(
            format!("{path}/tftp"),
            "<tftp> is only supported for an IPv4 address",
        ));
    }
    let prefix = ip.effective_prefix();
    for (j, r) in ip.dhcp.ranges.iter().enumerate() {
        let rpath = format!("{path}/dhcp/range[{}]", j + 1);
        check_range(&r.start, &r.end, Some((&ip.address, prefix)))
            .map_err(|m| XmlError::unsupported(rpath.as_str(), m))?;
        if let Some(l) = &r.lease {
            validate_lease(l, &format!("{rpath}/lease"))?;
        }
    }
    for (j, h) in ip.dhcp.hosts.iter().enumerate() {
        validate_dhcp_host(h, ip, &format!("{path}/dhcp/host[{}]", j + 1))?;
    }
    Ok(())
}

fn validate_lease(l: &Lease, path: &str) -> Result<(), XmlError> {
    let too_short = l.expiry > 0
        && match l.unit {
            LeaseUnit::Seconds => l.expiry < 120,
            LeaseUnit::Minutes => l.expiry < 2,
            LeaseUnit::Hours => false,
        };
    if too_short {
        return Err(XmlError::unsupported(
            path,
            "the minimum lease time should be greater than 2 minutes",
        ));
    }
    Ok(())
}

/// Checks a static DHCP host of `ip` (also used for network updates).
pub(super) fn validate_dhcp_host(h: &DhcpHost, ip: &IpDef, path: &str) -> Result<(), XmlError> {
    if let Some(m) = &h.mac {
        if ip.is_ipv6() {
            return Err(XmlError::bad_value(
                format!("{path}/@mac"),
                m.as_str(),
                "invalid to specify a MAC address in an IPv6 static host definition:",
            ));
        }
        match MacAddr::parse(m) {
            None => {
                return Err(XmlError::bad_value(
                    format!("{path}/@mac"),
                    m.as_str(),
                    "cannot parse MAC address",
                ));
            }
            Some(mac) if mac.is_multicast() => {
                return Err(XmlError::bad_value(
                    format!("{path}/@mac"),
                    m.as_str(),
                    "expected unicast mac address, found multicast",
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(id) = &h.id
        && let Some(c) = id.chars().find(|c| !(c.is_ascii_hexdigit() || *c == ':'))
    {
        return Err(XmlError::bad_value(
            format!("{path}/@id"),
            id.as_str(),
            format!("invalid character '{c}' in id"),
        ));
    }
    if let Some(name) = &h.name
        && !name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(XmlError::bad_value(
            format!("{path}/@name"),
            name.as_str(),
            "cannot use host name",
        ));
    }
    if ip.is_ipv6() {
        if h.id.is_none() && h.name.is_none() {
            return Err(XmlError::invalid(
                path,
                "static host definition in an IPv6 network must have id or name attribute",
            ));
        }
    } else if h.mac.is_none() && h.name.is_none() {
        return Err(XmlError::invalid(
            path,
            "static host definition in an IPv4 network must have mac or name attribute",
        ));
    }
    if h.ip.is_none() {
        return Err(XmlError::new(
            format!("{path}/@ip"),
            crate::xml::XmlErrorKind::Missing,
        ));
    }
    if let Some(l) = &h.lease {
        validate_lease(l, &format!("{path}/lease"))?;
    }
    Ok(())
}

fn validate_routes(def: &NetworkDef) -> Result<(), XmlError> {
    for (i, r) in def.routes.iter().enumerate() {
        let path = format!("route[{}]", i + 1);
        let addr = format_ip(&r.address);
        let err = |m: String| XmlError::invalid(path.as_str(), m);
        match r.family {
            None | Some(IpFamily::Ipv4) => {
                let fam = if r.family.is_none() { "no" } else { "IPv4" };
                if !r.address.is_ipv4() {
                    return Err(err(format!(
                        "{fam} family specified for non-IPv4 address '{addr}' in route definition"
                    )));
                }
                if !r.gateway.is_ipv4() {
                    return Err(err(format!(
                        "{fam} family specified for non-IPv4 gateway '{}' in route definition",
                        format_ip(&r.gateway)
                    )));
                }
                if let Some(m) = &r.netmask {
                    if !m.is_ipv4() {
                        return Err(err(format!(
                            "invalid netmask '{}' for address '{addr}' (both must be IPv4)",
                            format_ip(m)
                        )));
                    }
                    if r.prefix.is_some() {
                        return Err(err(
                            "route definition cannot have both a prefix and a netmask".into(),
                        ));
                    }
                }
                if let Some(p) = r.prefix
                    && p > 32
                {
                    return Err(err(format!(
                        "invalid prefix {p} specified in route definition, must be 0 - 32"
                    )));
                }
            }
            Some(IpFamily::Ipv6) => {
                if !r.address.is_ipv6() {
                    return Err(err(format!(
                        "ipv6 family specified for non-IPv6 address '{addr}' in route definition"
                    )));
                }
                if r.netmask.is_some() {
                    return Err(err(format!(
                        "specifying netmask invalid for IPv6 address '{addr}' in route definition"
                    )));
                }
                if !r.gateway.is_ipv6() {
                    return Err(err(format!(
                        "ipv6 specified for non-IPv6 gateway address '{}' in route definition",
                        format_ip(&r.gateway)
                    )));
                }
                if let Some(p) = r.prefix
                    && p > 128
                {
                    return Err(err(format!(
                        "invalid prefix {p} specified in route definition, must be 0 - 128"
                    )));
                }
            }
        }
        let masked = match &r.netmask {
            Some(m) => mask_by_netmask(&r.address, m),
            None => mask_by_prefix(&r.address, r.prefix.unwrap_or(0)),
        };
        if masked != Some(r.address) {
            return Err(err(format!(
                "address '{addr}' in route definition is not a network address"
            )));
        }
    }

    // Every gateway must be directly reachable through one of our ips.
    for (i, r) in def.routes.iter().enumerate() {
        let mut reachable = false;
        for (j, ip) in def.ips.iter().enumerate() {
            if ip.address.is_ipv4() != r.gateway.is_ipv4() {
                continue;
            }
            let Some(p) = ip.effective_prefix() else {
                return Err(XmlError::invalid(ip_path(j), "invalid prefix for network"));
            };
            let a = mask_by_prefix(&ip.address, p);
            if a.is_some() && a == mask_by_prefix(&r.gateway, p) {
                reachable = true;
                break;
            }
        }
        if !reachable {
            return Err(XmlError::bad_value(
                format!("route[{}]/@gateway", i + 1),
                format_ip(&r.gateway),
                "unreachable static route gateway",
            ));
        }
    }
    Ok(())
}

fn validate_forward(def: &NetworkDef) -> Result<(), XmlError> {
    let mode = def.forward_mode();
    if let Some(fwd) = &def.forward {
        let m = fwd.mode.as_str();
        // Each interface and PCI device once.
        let mut seen = HashSet::new();
        for a in &fwd.interfaces {
            if let ForwardDevice::Netdev(d) = &a.device {
                check_ifname("forward/interface/@dev", d)?;
            }
            if !seen.insert(&a.device) {
                let what = match &a.device {
                    ForwardDevice::Netdev(d) => format!("interface '{d}'"),
                    ForwardDevice::Pci(p) => format!("PCI device '{}'", p.short()),
                };
                return Err(XmlError::invalid(
                    "forward",
                    format!("{what} can only be listed once"),
                ));
            }
        }
        let nat = &fwd.nat;
        if nat.is_set() && fwd.mode != ForwardMode::Nat {
            return Err(XmlError::invalid(
                "forward/nat",
                "the <nat> element can only be used when <forward> 'mode' is 'nat'",
            ));
        }
        if let (Some(s), Some(e)) = (nat.address_start, nat.address_end) {
            check_range(&IpAddr::V4(s), &IpAddr::V4(e), None)
                .map_err(|msg| XmlError::invalid("forward/nat/address", msg))?;
        }
        if nat.port_start > 65535 {
            return Err(XmlError::bad_value(
                "forward/nat/port/@start",
                nat.port_start.to_string(),
                "invalid port",
            ));
        }
        if nat.port_end > 65535 || nat.port_end < nat.port_start {
            return Err(XmlError::bad_value(
                "forward/nat/port/@end",
                nat.port_end.to_string(),
                "invalid port",
            ));
        }

        match fwd.mode {
            ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open => {
                if def.ips.is_empty() {
                    return Err(XmlError::invalid(
                        "forward",
                        format!("{m} forwarding requested, but no IP address provided"),
                    ));
                }
                if fwd.interfaces.len() > 1 {
                    return Err(XmlError::invalid(
                        "forward",
                        "multiple forwarding interfaces specified, only one is supported",
                    ));
                }
                if fwd.mode == ForwardMode::Open && !fwd.interfaces.is_empty() {
                    return Err(XmlError::invalid(
                        "forward",
                        "forward dev not allowed with forward mode='open'",
                    ));
                }
            }
            ForwardMode::Bridge
            | ForwardMode::Private
            | ForwardMode::Vepa
            | ForwardMode::Passthrough
            | ForwardMode::Hostdev => {
                let b = &def.bridge;
                if fwd.mode != ForwardMode::Bridge {
                    if b.name.is_some() {
                        return Err(XmlError::invalid(
                            "bridge/@name",
                            format!("bridge name not allowed in {m} mode"),
                        ));
                    }
                    if b.mac_table_manager.is_some() {
                        return Err(XmlError::invalid(
                            "bridge/@macTableManager",
                            format!("bridge macTableManager setting not allowed in {m} mode"),
                        ));
                    }
                }
                if b.zone.is_some() {
                    return Err(XmlError::invalid(
                        "bridge/@zone",
                        format!("bridge zone not allowed in {m} mode"),
                    ));
                }
                if b.delay.is_some_and(|d| d != 0) || b.stp.is_some() {
                    return Err(XmlError::invalid(
                        "bridge",
                        format!(
                            "bridge delay/stp options only allowed in route, nat, and isolated mode, not in {m}"
                        ),
                    ));
                }
                if b.name.is_some() && (!fwd.interfaces.is_empty() || fwd.pf.is_some()) {
                    return Err(XmlError::invalid(
                        "forward",
                        format!(
                            "a network with forward mode='{m}' can specify a bridge name or a forward dev, but not both"
                        ),
                    ));
                }
            }
        }
    }
    if def.mtu.is_some() && !ForwardMode::has_bridge(mode) {
        let m = mode.map_or("none", ForwardMode::as_str);
        return Err(XmlError::invalid(
            "mtu",
            format!("mtu size only allowed in open, route, nat, and isolated mode, not in {m}"),
        ));
    }
    Ok(())
}

const SERVICE_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/*";
const PROTOCOL_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+/";
/// dnsmasq's limit for SRV records, minus overhead (RFC 2782).
const DNS_RECORD_LENGTH_SRV: usize = 512 - 30;

fn validate_dns(dns: &Dns) -> Result<(), XmlError> {
    for (i, f) in dns.forwarders.iter().enumerate() {
        if f.addr.is_none() && f.domain.is_none() {
            return Err(XmlError::invalid(
                format!("dns/forwarder[{}]", i + 1),
                "invalid forwarder element, must contain at least one of addr or domain",
            ));
        }
    }
    for (i, t) in dns.txts.iter().enumerate() {
        validate_dns_txt(t, &format!("dns/txt[{}]", i + 1))?;
    }
    for (i, s) in dns.srvs.iter().enumerate() {
        validate_dns_srv(s, &format!("dns/srv[{}]", i + 1))?;
    }
    for (i, h) in dns.hosts.iter().enumerate() {
        if h.hostnames.is_empty() {
            return Err(XmlError::new(
                format!("dns/host[{}]/hostname", i + 1),
                crate::xml::XmlErrorKind::Missing,
            ));
        }
    }
    if dns.enable == Some(false) && dns.has_records() {
        return Err(XmlError::invalid(
            "dns",
            "extra data in disabled network DNS (enable='no')",
        ));
    }
    Ok(())
}

/// Checks a DNS TXT record.
pub(super) fn validate_dns_txt(t: &DnsTxt, path: &str) -> Result<(), XmlError> {
    if t.name.contains(' ') {
        return Err(XmlError::bad_value(
            format!("{path}/@name"),
            t.name.as_str(),
            "prohibited space character in DNS TXT record name",
        ));
    }
    Ok(())
}

/// Checks a DNS SRV record.
pub(super) fn validate_dns_srv(s: &DnsSrv, path: &str) -> Result<(), XmlError> {
    if s.service.len() > DNS_RECORD_LENGTH_SRV {
        return Err(XmlError::invalid(
            format!("{path}/@service"),
            format!("service attribute is too long, limit is {DNS_RECORD_LENGTH_SRV} bytes"),
        ));
    }
    if !s.service.chars().all(|c| SERVICE_CHARS.contains(c)) {
        return Err(XmlError::bad_value(
            format!("{path}/@service"),
            s.service.as_str(),
            "invalid character in service attribute",
        ));
    }
    if !s.protocol.chars().all(|c| PROTOCOL_CHARS.contains(c)) {
        return Err(XmlError::bad_value(
            format!("{path}/@protocol"),
            s.protocol.as_str(),
            "invalid character in protocol attribute",
        ));
    }
    for (name, v, min) in [
        ("port", s.port, 1),
        ("priority", s.priority, 0),
        ("weight", s.weight, 0),
    ] {
        if let Some(v) = v {
            if s.target.is_none() {
                return Err(XmlError::invalid(
                    format!("{path}/@{name}"),
                    format!("DNS SRV {name} attribute not permitted without target"),
                ));
            }
            if v < min || v > 65535 {
                return Err(XmlError::bad_value(
                    format!("{path}/@{name}"),
                    v.to_string(),
                    format!("invalid DNS SRV {name} attribute"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_rate(r: &Rate, path: &str, inbound: bool) -> Result<(), XmlError> {
    if r.average.is_none() && r.floor.is_none() {
        return Err(XmlError::invalid(
            path,
            "missing mandatory average or floor attributes",
        ));
    }
    if (r.peak.is_some() || r.burst.is_some()) && r.average.is_none() {
        return Err(XmlError::invalid(
            path,
            "'peak' and 'burst' require 'average' attribute",
        ));
    }
    if r.floor.is_some_and(|f| f != 0) {
        let msg = if inbound {
            "floor attribute is supported only for interfaces of type network"
        } else {
            "'floor' attribute allowed only in <inbound> element"
        };
        return Err(XmlError::unsupported(format!("{path}/@floor"), msg));
    }
    Ok(())
}

fn validate_bandwidth(bw: &Bandwidth, path: &str) -> Result<(), XmlError> {
    if let Some(r) = &bw.inbound {
        validate_rate(r, &format!("{path}/inbound"), true)?;
    }
    if let Some(r) = &bw.outbound {
        validate_rate(r, &format!("{path}/outbound"), false)?;
    }
    Ok(())
}

fn validate_vlan(v: &Vlan, path: &str) -> Result<(), XmlError> {
    if v.tags.is_empty() {
        return Err(XmlError::new(
            format!("{path}/tag"),
            crate::xml::XmlErrorKind::Missing,
        ));
    }
    let mut natives = 0;
    for (i, t) in v.tags.iter().enumerate() {
        if t.id > 4095 {
            return Err(XmlError::bad_value(
                format!("{path}/tag[{}]/@id", i + 1),
                t.id.to_string(),
                "vlan tag id too large (maximum 4095):",
            ));
        }
        if t.native_mode.is_some() {
            natives += 1;
            if natives > 1 {
                return Err(XmlError::invalid(
                    format!("{path}/tag[{}]", i + 1),
                    "duplicate native vlan setting",
                ));
            }
        }
    }
    if v.tags.len() > 1 && !v.trunk {
        return Err(XmlError::invalid(
            path,
            "trunk='yes' is required for more than one vlan tag",
        ));
    }
    Ok(())
}

fn validate_virtualport(vp: &VirtualPort, path: &str) -> Result<(), XmlError> {
    if let Some(p) = &vp.profile_id
        && p.len() >= 40
    {
        return Err(XmlError::bad_value(
            format!("{path}/parameters/@profileid"),
            p.as_str(),
            "profileid parameter too long:",
        ));
    }
    let Some(kind) = vp.kind else {
        return Ok(());
    };
    let extras: Vec<&str> = [
        (
            "managerid",
            vp.manager_id.is_some(),
            kind == VirtualPortType::Qbg,
        ),
        ("typeid", vp.type_id.is_some(), kind == VirtualPortType::Qbg),
        (
            "typeidversion",
            vp.type_id_version.is_some(),
            kind == VirtualPortType::Qbg,
        ),
        (
            "instanceid",
            vp.instance_id.is_some(),
            kind == VirtualPortType::Qbg,
        ),
        (
            "profileid",
            vp.profile_id.is_some(),
            matches!(kind, VirtualPortType::Qbh | VirtualPortType::OpenVSwitch),
        ),
        (
            "interfaceid",
            vp.interface_id.is_some(),
            matches!(
                kind,
                VirtualPortType::OpenVSwitch | VirtualPortType::Midonet
            ),
        ),
    ]
    .iter()
    .filter(|(_, set, allowed)| *set && !*allowed)
    .map(|(n, _, _)| *n)
    .collect();
    if let Some(first) = extras.first() {
        return Err(XmlError::invalid(
            format!("{path}/parameters/@{first}"),
            format!(
                "extra {} {} in <virtualport type='{kind}'>",
                if extras.len() > 1 {
                    "attributes"
                } else {
                    "attribute"
                },
                extras.join(", ")
            ),
        ));
    }
    Ok(())
}

fn validate_portgroups(def: &NetworkDef) -> Result<(), XmlError> {
    let mut default: Option<&str> = None;
    let mut names = HashSet::new();
    for (i, pg) in def.portgroups.iter().enumerate() {
        let path = format!("portgroup[{}]", i + 1);
        if pg.name.is_empty() {
            return Err(XmlError::new(
                format!("{path}/@name"),
                crate::xml::XmlErrorKind::Missing,
            ));
        }
        if !names.insert(pg.name.as_str()) {
            return Err(XmlError::bad_value(
                format!("{path}/@name"),
                pg.name.as_str(),
                "duplicate portgroup name",
            ));
        }
        if pg.is_default {
            if let Some(d) = default {
                return Err(XmlError::invalid(
                    format!("{path}/@default"),
                    format!(
                        "multiple default <portgroup> elements ({d} and {}), but only one default is allowed",
                        pg.name
                    ),
                ));
            }
            default = Some(&pg.name);
        }
        if let Some(vp) = &pg.virtualport {
            validate_virtualport(vp, &format!("{path}/virtualport"))?;
        }
        if let Some(bw) = &pg.bandwidth {
            validate_bandwidth(bw, &format!("{path}/bandwidth"))?;
        }
        if let Some(v) = &pg.vlan {
            validate_vlan(v, &format!("{path}/vlan"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::addr::parse_ip;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).expect("ip")
    }

    #[test]
    fn bridge_names_are_interface_names() {
        for ok in ["virbr0", "virbr%d", "br-x_y.z", "abcdefghijklmno"] {
            assert!(check_ifname("bridge/@name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\"b",
            "abcdefghijklmnop",
            "virbrtoolong1%d",
        ] {
            let e = check_ifname("bridge/@name", bad).expect_err(bad);
            assert!(e.to_string().contains("bridge/@name"), "{e}");
        }
    }

    #[test]
    fn ranges() {
        let net = ip("192.168.122.1");
        let ok = |a: &str, b: &str| check_range(&ip(a), &ip(b), Some((&net, Some(24))));
        assert!(ok("192.168.122.2", "192.168.122.254").is_ok());
        assert!(ok("192.168.122.0", "192.168.122.254").is_err());
        assert!(ok("192.168.122.2", "192.168.122.255").is_err());
        assert!(ok("192.168.122.20", "192.168.122.10").is_err());
        assert!(ok("192.168.123.2", "192.168.123.20").is_err());
        assert!(ok("192.168.122.2", "::1").is_err());
        assert!(check_range(&ip("10.0.0.1"), &ip("10.1.0.1"), None).is_err());
        let net6 = ip("2001:db8::1");
        assert!(
            check_range(
                &ip("2001:db8::10"),
                &ip("2001:db8::ff"),
                Some((&net6, Some(64)))
            )
            .is_ok()
        );
        assert!(
            check_range(
                &ip("2001:db8::1:10"),
                &ip("2001:db8::2:ff"),
                Some((&net6, Some(64)))
            )
            .is_err()
        );
        assert!(
            check_range(
                &ip("2001:db9::10"),
                &ip("2001:db9::ff"),
                Some((&net6, Some(64)))
            )
            .is_err()
        );
    }
}
