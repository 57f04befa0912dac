//! `<network>` XML → [`NetworkDef`], as libvirt's `virNetworkDefParseXML`.
//!
//! Parsing reads values and refuses what does not parse (addresses,
//! numbers, enums, MAC addresses, UUIDs) or what the model cannot hold
//! (two `<nat>`, `dev=` differing from the first `<interface>`...). Checks
//! across values (ranges inside the network, forward-mode rules...) are in
//! [`validate`](super::validate).

use std::net::IpAddr;
use std::str::FromStr;

use crate::xml::values::str_to_u64p;
use crate::xml::{Element, Node, ParseFlags, XmlError, XmlErrorKind};

use super::addr::{MacAddr, PciAddr, Uuid, parse_ip, parse_ipv4};
use super::def::*;
use super::metadata;

// === helpers ===

/// With the validate flag, refuses attributes and children outside the
/// lists.
fn check(
    flags: ParseFlags,
    n: Node<'_>,
    attrs: &[&str],
    children: &[&str],
) -> Result<(), XmlError> {
    if flags.validate {
        n.check_attrs(attrs)?;
        n.check_children(children)?;
    }
    Ok(())
}

/// An attribute read the way libvirt's XPath `string(@x)` does: empty
/// means absent.
fn xattr<'a>(n: Node<'a>, name: &str) -> Option<&'a str> {
    n.attr(name).filter(|v| !v.is_empty())
}

/// The XPath string value of an element: all descendant text.
fn deep_text(el: &Element) -> String {
    fn walk(el: &Element, out: &mut String) {
        for c in &el.children {
            match c {
                crate::xml::Child::Text(t) => out.push_str(t),
                crate::xml::Child::Element(e) => walk(e, out),
            }
        }
    }
    let mut s = String::new();
    walk(el, &mut s);
    s
}

/// The text of the first child `name`, `None` when missing or empty.
fn child_text(n: Node<'_>, name: &str) -> Option<String> {
    n.el.child(name).map(deep_text).filter(|t| !t.is_empty())
}

fn bad(n: Node<'_>, name: &str, v: &str, reason: &str) -> XmlError {
    XmlError::bad_value(n.attr_path(name), v, reason)
}

fn missing(n: Node<'_>, name: &str) -> XmlError {
    XmlError::new(n.attr_path(name), XmlErrorKind::Missing)
}

/// `yes`/`no` (libvirt's `virXMLPropTristateBool`).
fn yes_no(n: Node<'_>, name: &str) -> Result<Option<bool>, XmlError> {
    match n.attr(name) {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(v) => Err(bad(n, name, v, "expected 'yes' or 'no', got")),
    }
}

/// `yes`/`no`/`default` (`default` is the same as absent).
fn tristate(n: Node<'_>, name: &str) -> Result<Option<bool>, XmlError> {
    match n.attr(name) {
        Some("default") => Ok(None),
        _ => yes_no(n, name),
    }
}

/// An enum attribute.
fn enum_attr<T: FromStr>(n: Node<'_>, name: &str) -> Result<Option<T>, XmlError> {
    n.parse_attr::<T>(name)
}

/// An IP address attribute.
fn ip_attr(n: Node<'_>, name: &str) -> Result<Option<IpAddr>, XmlError> {
    match n.attr(name) {
        None => Ok(None),
        Some(v) => parse_ip(v)
            .map(Some)
            .ok_or_else(|| bad(n, name, v, "invalid IP address")),
    }
}

/// A required IP address attribute.
fn required_ip(n: Node<'_>, name: &str) -> Result<IpAddr, XmlError> {
    ip_attr(n, name)?.ok_or_else(|| missing(n, name))
}

/// An unsigned number attribute (`virStrToLong_ullp` with `base`); empty means
/// absent.
fn num_attr(n: Node<'_>, name: &str, base: u32) -> Result<Option<u64>, XmlError> {
    match xattr(n, name) {
        None => Ok(None),
        Some(v) => str_to_u64p(v, base)
            .map(Some)
            .ok_or_else(|| bad(n, name, v, "expected an unsigned integer, got")),
    }
}

/// An unsigned 32-bit number attribute.
fn u32_attr(n: Node<'_>, name: &str, base: u32) -> Result<Option<u32>, XmlError> {
    match num_attr(n, name, base)? {
        None => Ok(None),
        Some(v) => u32::try_from(v).map(Some).map_err(|_| {
            bad(
                n,
                name,
                n.attr(name).unwrap_or_default(),
                "value out of range",
            )
        }),
    }
}

/// Clamps a parsed number into `u32` (range checks happen in validate).
fn clamp32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

// === network ===

/// The deepest nesting accepted (libxml2's default limit), which keeps the
/// recursive walks over `<metadata>` bounded.
const MAX_DEPTH: usize = 256;

/// The nesting depth of `el` (1 for a leaf), without recursion.
fn depth(el: &Element) -> usize {
    let mut max = 0;
    let mut stack = vec![(el, 1usize)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        if d > MAX_DEPTH {
            break;
        }
        stack.extend(e.elements().map(|c| (c, d + 1)));
    }
    max
}

/// Parses `<network>` (no post-parse, no validation).
pub(super) fn parse_network(n: Node<'_>, flags: ParseFlags) -> Result<NetworkDef, XmlError> {
    if metadata::local_name(&n.el.name) != "network" {
        return Err(XmlError::new(
            n.path(),
            XmlErrorKind::WrongRoot {
                expected: "network".into(),
                found: n.el.name.clone(),
            },
        ));
    }
    if flags.validate {
        n.check_attrs(&["connections", "ipv6", "trustGuestRxFilters"])?;
        const KNOWN: &[&str] = &[
            "name",
            "uuid",
            "title",
            "description",
            "metadata",
            "bridge",
            "mtu",
            "mac",
            "forward",
            "virtualport",
            "portgroup",
            "domain",
            "dns",
            "bandwidth",
            "vlan",
            "port",
            "ip",
            "route",
        ];
        for c in n.all_children() {
            let known = KNOWN.contains(&c.node().el.name.as_str())
                || is_dnsmasq(c.node().el, n.el, "options");
            if !known {
                return Err(XmlError::new(c.node().path(), XmlErrorKind::Unknown));
            }
        }
    }

    if depth(n.el) > MAX_DEPTH {
        return Err(XmlError::invalid(
            n.path(),
            format!("excessive depth in document: more than {MAX_DEPTH} levels"),
        ));
    }

    let mut def = NetworkDef {
        name: child_text(n, "name").ok_or_else(|| XmlError::new("name", XmlErrorKind::Missing))?,
        ..NetworkDef::default()
    };

    if let Some(u) = child_text(n, "uuid") {
        def.uuid = Some(Uuid::parse(&u).ok_or_else(|| {
            XmlError::bad_value(
                n.child_path("uuid", None),
                u.as_str(),
                "malformed uuid element",
            )
        })?);
    }

    match xattr(n, "ipv6") {
        None | Some("no") => {}
        Some("yes") => def.ipv6_no_gateway = true,
        Some(v) => return Err(bad(n, "ipv6", v, "invalid ipv6 setting")),
    }
    def.trust_guest_rx_filters = yes_no(n, "trustGuestRxFilters")?;
    if !flags.inactive {
        def.connections = u32_attr(n, "connections", 10)?.unwrap_or(0);
    }

    def.title = child_text(n, "title");
    def.description = child_text(n, "description");

    if let Some(c) = n.child("domain") {
        let d = c.node();
        check(flags, d, &["name", "localOnly", "register"], &[])?;
        def.domain = Some(DnsDomain {
            name: d.attr("name").map(str::to_owned),
            local_only: yes_no(d, "localOnly")?,
            register: yes_no(d, "register")?,
        });
    }

    if let Some(c) = n.child("bandwidth") {
        def.bandwidth = parse_bandwidth(c.node(), flags)?;
    }
    if let Some(c) = n.child("vlan") {
        def.vlan = Some(parse_vlan(c.node(), flags)?);
    }
    if let Some(c) = n.child("port") {
        check(flags, c.node(), &["isolated"], &[])?;
        def.port_isolated = yes_no(c.node(), "isolated")?;
    }

    if let Some(c) = n.child("bridge") {
        let b = c.node();
        check(
            flags,
            b,
            &["name", "zone", "stp", "delay", "macTableManager"],
            &[],
        )?;
        def.bridge = Bridge {
            name: xattr(b, "name").map(str::to_owned),
            zone: xattr(b, "zone").map(str::to_owned),
            // libvirt: anything but "off" means on (the schema allows on/off).
            stp: match xattr(b, "stp") {
                None => None,
                Some("off") => Some(false),
                Some("on") => Some(true),
                Some(v) if flags.validate => {
                    return Err(bad(b, "stp", v, "expected 'on' or 'off', got"));
                }
                Some(_) => Some(true),
            },
            delay: num_attr(b, "delay", 10)?,
            mac_table_manager: enum_attr(b, "macTableManager")?,
        };
    }

    if let Some(c) = n.child("mac") {
        let m = c.node();
        check(flags, m, &["address"], &[])?;
        if let Some(v) = xattr(m, "address") {
            def.mac = Some(
                MacAddr::parse(v)
                    .ok_or_else(|| bad(m, "address", v, "invalid bridge mac address"))?,
            );
        }
    }

    if let Some(c) = n.child("mtu") {
        check(flags, c.node(), &["size"], &[])?;
        def.mtu = u32_attr(c.node(), "size", 10)?.filter(|m| *m > 0);
    }

    if let Some(c) = n.child("dns") {
        def.dns = parse_dns(c.node(), flags)?;
    }

    if let Some(c) = n.child("virtualport") {
        def.virtualport = Some(parse_virtualport(c.node(), flags)?);
    }

    for c in n.children("ip") {
        def.ips.push(parse_ip_def(c.node(), flags)?);
    }
    for c in n.children("route") {
        def.routes.push(parse_route(c.node(), flags)?);
    }
    for c in n.children("portgroup") {
        def.portgroups.push(parse_portgroup(c.node(), flags)?);
    }

    if let Some(c) = n.child("forward") {
        def.forward = parse_forward(c.node(), flags)?;
    }

    if let Some(md) = n.el.child("metadata") {
        def.metadata = Some(metadata::capture(n.el, md));
    }

    def.dnsmasq_options = parse_dnsmasq(n, flags)?;
    Ok(def)
}

/// Whether `el` (a child of `root`, or a grandchild when `parent` is
/// given) is `<local>` in the dnsmasq namespace.
fn is_dnsmasq(el: &Element, root: &Element, local: &str) -> bool {
    metadata::local_name(&el.name) == local && metadata::element_ns(el, &[root]) == Some(DNSMASQ_NS)
}

/// `<dnsmasq:options><dnsmasq:option value=/>...`: every option with a
/// value, in every options element.
fn parse_dnsmasq(n: Node<'_>, flags: ParseFlags) -> Result<Vec<String>, XmlError> {
    let mut out = Vec::new();
    for c in n.all_children() {
        let opts = c.node();
        if !is_dnsmasq(opts.el, n.el, "options") {
            continue;
        }
        if flags.validate {
            opts.check_attrs(&[])?;
        }
        for o in opts.all_children() {
            let on = o.node();
            let ns = metadata::element_ns(on.el, &[opts.el, n.el]);
            let is_option = metadata::local_name(&on.el.name) == "option" && ns == Some(DNSMASQ_NS);
            if !is_option {
                if flags.validate {
                    return Err(XmlError::new(on.path(), XmlErrorKind::Unknown));
                }
                continue;
            }
            if flags.validate {
                on.check_attrs(&["value"])?;
            }
            if let Some(v) = on.attr("value") {
                out.push(v.to_owned());
            }
        }
    }
    Ok(out)
}

// === forward ===

fn parse_forward(n: Node<'_>, flags: ParseFlags) -> Result<Option<Forward>, XmlError> {
    check(
        flags,
        n,
        &["dev", "mode", "managed"],
        &["interface", "address", "pf", "driver", "nat"],
    )?;
    let mode = match xattr(n, "mode") {
        None => Some(ForwardMode::Nat),
        Some("none") if !flags.validate => None,
        Some(v) => Some(
            v.parse::<ForwardMode>()
                .map_err(|()| bad(n, "mode", v, "unknown forwarding type"))?,
        ),
    };
    let mut fwd = Forward::new(mode.unwrap_or(ForwardMode::Nat));
    if flags.validate {
        yes_no(n, "managed")?;
    }
    fwd.managed = xattr(n, "managed").is_some_and(|v| v.eq_ignore_ascii_case("yes"));

    if let Some(d) = n.child("driver") {
        let dn = d.node();
        check(flags, dn, &["name", "model"], &[])?;
        let name = match dn.attr("name") {
            None => None,
            Some(v) => Some(
                v.parse::<ForwardDriverName>()
                    .map_err(|()| bad(dn, "name", v, "unknown forward driver name"))?,
            ),
        };
        let model = dn.attr("model").map(str::to_owned);
        if name.is_some() || model.is_some() {
            fwd.driver = Some(ForwardDriver { name, model });
        }
    }

    let ifs = n.children("interface");
    let addrs = n.children("address");
    let pfs = n.children("pf");
    let nats = n.children("nat");

    if !ifs.is_empty() && !addrs.is_empty() {
        return Err(XmlError::invalid(
            n.path(),
            "<address> and <interface> elements are mutually exclusive",
        ));
    }
    if pfs.len() > 1 {
        return Err(XmlError::invalid(
            pfs[1].node().path(),
            "only one <pf> element is allowed",
        ));
    }
    if nats.len() > 1 {
        return Err(XmlError::invalid(
            nats[1].node().path(),
            "only one <nat> element is allowed",
        ));
    }
    if let Some(nat) = nats.first() {
        if fwd.mode != ForwardMode::Nat {
            return Err(XmlError::invalid(
                nat.node().path(),
                "the <nat> element can only be used when <forward> 'mode' is 'nat'",
            ));
        }
        fwd.nat = parse_nat(nat.node(), flags)?;
    }

    let dev = xattr(n, "dev");
    if dev.is_some() && (!addrs.is_empty() || !pfs.is_empty()) {
        return Err(XmlError::invalid(
            n.attr_path("dev"),
            "the <forward> 'dev' attribute cannot be used when <address> or <pf> sub-elements are present",
        ));
    }

    if let Some(pf) = pfs.first() {
        let p = pf.node();
        check(flags, p, &["dev"], &[])?;
        fwd.pf = Some(p.required_attr("dev")?.to_owned());
    }

    if !addrs.is_empty() {
        for a in &addrs {
            let an = a.node();
            check(
                flags,
                an,
                &[
                    "type",
                    "domain",
                    "bus",
                    "slot",
                    "function",
                    "multifunction",
                    "connections",
                ],
                &[],
            )?;
            let ty = an.required_attr("type")?;
            if ty != "pci" {
                return Err(bad(an, "type", ty, "unsupported address type"));
            }
            let pci = parse_pci(an)?;
            let connections = if flags.inactive {
                0
            } else {
                u32_attr(an, "connections", 10)?.unwrap_or(0)
            };
            fwd.interfaces.push(ForwardIf {
                device: ForwardDevice::Pci(pci),
                connections,
            });
        }
    } else {
        for (i, f) in ifs.iter().enumerate() {
            let fnode = f.node();
            check(flags, fnode, &["dev", "connections"], &[])?;
            let d = fnode.required_attr("dev")?;
            if i == 0
                && let Some(fd) = dev
                && fd != d
            {
                return Err(XmlError::invalid(
                    fnode.attr_path("dev"),
                    format!("forward dev '{fd}' must match first interface element dev '{d}'"),
                ));
            }
            let connections = if flags.inactive {
                0
            } else {
                u32_attr(fnode, "connections", 10)?.unwrap_or(0)
            };
            fwd.interfaces.push(ForwardIf {
                device: ForwardDevice::Netdev(d.to_owned()),
                connections,
            });
        }
        if ifs.is_empty()
            && let Some(fd) = dev
        {
            fwd.interfaces.push(ForwardIf {
                device: ForwardDevice::Netdev(fd.to_owned()),
                connections: 0,
            });
        }
    }
    Ok(mode.map(|_| fwd))
}

/// `<address type='pci' domain= bus= slot= function=>` (numbers in C
/// notation: `0x` hex, `0` octal, decimal).
fn parse_pci(n: Node<'_>) -> Result<PciAddr, XmlError> {
    let a = PciAddr {
        domain: u32_attr(n, "domain", 0)?.unwrap_or(0),
        bus: u32_attr(n, "bus", 0)?.unwrap_or(0),
        slot: u32_attr(n, "slot", 0)?.unwrap_or(0),
        function: u32_attr(n, "function", 0)?.unwrap_or(0),
        multifunction: match n.attr("multifunction") {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(v) => return Err(bad(n, "multifunction", v, "expected 'on' or 'off', got")),
        },
    };
    if !a.is_empty() {
        if a.bus > 0xff {
            return Err(bad(
                n,
                "bus",
                n.attr("bus").unwrap_or_default(),
                "invalid PCI address bus, must be <= 0xFF:",
            ));
        }
        if a.slot > 0x1f {
            return Err(bad(
                n,
                "slot",
                n.attr("slot").unwrap_or_default(),
                "invalid PCI address slot, must be <= 0x1F:",
            ));
        }
        if a.function > 7 {
            return Err(bad(
                n,
                "function",
                n.attr("function").unwrap_or_default(),
                "invalid PCI address function, must be <= 7:",
            ));
        }
    }
    Ok(a)
}

fn parse_nat(n: Node<'_>, flags: ParseFlags) -> Result<Nat, XmlError> {
    check(flags, n, &["ipv6"], &["address", "port"])?;
    let mut nat = Nat {
        ipv6: yes_no(n, "ipv6")?,
        ..Nat::default()
    };
    let addrs = n.children("address");
    if addrs.len() > 1 {
        return Err(XmlError::invalid(
            addrs[1].node().path(),
            "only one <address> element is allowed in <nat>",
        ));
    }
    if let Some(a) = addrs.first() {
        let an = a.node();
        check(flags, an, &["start", "end"], &[])?;
        let start = an.required_attr("start")?;
        let end = an.required_attr("end")?;
        nat.address_start = Some(
            parse_ipv4(start).ok_or_else(|| bad(an, "start", start, "bad ipv4 start address"))?,
        );
        nat.address_end =
            Some(parse_ipv4(end).ok_or_else(|| bad(an, "end", end, "bad ipv4 end address"))?);
    }
    let ports = n.children("port");
    if ports.len() > 1 {
        return Err(XmlError::invalid(
            ports[1].node().path(),
            "only one <port> element is allowed in <nat>",
        ));
    }
    if let Some(p) = ports.first() {
        let pn = p.node();
        check(flags, pn, &["start", "end"], &[])?;
        let start = num_attr(pn, "start", 10)?.ok_or_else(|| missing(pn, "start"))?;
        let end = num_attr(pn, "end", 10)?.ok_or_else(|| missing(pn, "end"))?;
        nat.port_start = clamp32(start);
        nat.port_end = clamp32(end);
    }
    Ok(nat)
}

// === ip ===

fn parse_ip_def(n: Node<'_>, flags: ParseFlags) -> Result<IpDef, XmlError> {
    check(
        flags,
        n,
        &["address", "netmask", "prefix", "family", "localPtr"],
        &["tftp", "dhcp"],
    )?;
    let family = match xattr(n, "family") {
        None => None,
        Some(v) => Some(
            v.parse::<IpFamily>()
                .map_err(|()| bad(n, "family", v, "unrecognized family"))?,
        ),
    };
    let address = match xattr(n, "address") {
        None => return Err(missing(n, "address")),
        Some(v) => parse_ip(v).ok_or_else(|| bad(n, "address", v, "invalid address"))?,
    };
    let netmask = match xattr(n, "netmask") {
        None => None,
        Some(v) => Some(parse_ip(v).ok_or_else(|| bad(n, "netmask", v, "invalid netmask"))?),
    };
    let prefix = num_attr(n, "prefix", 10)?.map(clamp32).filter(|p| *p > 0);
    let mut ip = IpDef {
        family,
        address,
        netmask,
        prefix,
        local_ptr: yes_no(n, "localPtr")?,
        tftp_root: None,
        dhcp: Dhcp::default(),
    };

    if let Some(d) = n.child("dhcp") {
        ip.dhcp = parse_dhcp(d.node(), flags, &ip)?;
    }
    if let Some(t) = n.child("tftp") {
        let tn = t.node();
        check(flags, tn, &["root"], &[])?;
        if !ip.is_ipv4() {
            return Err(XmlError::unsupported(
                tn.path(),
                "<tftp> is only supported for an IPv4 address",
            ));
        }
        ip.tftp_root = xattr(tn, "root").map(str::to_owned);
    }
    Ok(ip)
}

fn parse_dhcp(n: Node<'_>, flags: ParseFlags, ip: &IpDef) -> Result<Dhcp, XmlError> {
    check(flags, n, &[], &["range", "host", "bootp"])?;
    let mut dhcp = Dhcp::default();
    for c in n.all_children() {
        let cn = c.node();
        match cn.el.name.as_str() {
            "range" => {
                check(flags, cn, &["start", "end"], &["lease"])?;
                let start = required_ip(cn, "start")?;
                let end = required_ip(cn, "end")?;
                let mut lease = None;
                for l in cn.children("lease") {
                    lease = parse_lease(l.node(), flags)?;
                }
                dhcp.ranges.push(DhcpRange { start, end, lease });
            }
            "host" => dhcp.hosts.push(parse_dhcp_host(cn, flags)?),
            "bootp" if ip.is_ipv4() => {
                check(flags, cn, &["file", "server"], &[])?;
                let Some(file) = cn.attr("file") else {
                    continue;
                };
                dhcp.bootp = Some(Bootp {
                    file: file.to_owned(),
                    server: ip_attr(cn, "server")?,
                });
            }
            _ => {}
        }
    }
    Ok(dhcp)
}

/// `<host>` of `<dhcp>` (also used for network updates).
pub(super) fn parse_dhcp_host(n: Node<'_>, flags: ParseFlags) -> Result<DhcpHost, XmlError> {
    check(flags, n, &["mac", "id", "name", "ip"], &["lease"])?;
    let mac = n.attr("mac");
    if let Some(m) = mac
        && MacAddr::parse(m).is_none()
    {
        return Err(bad(n, "mac", m, "cannot parse MAC address"));
    }
    let mut lease = None;
    if let Some(l) = n.child("lease") {
        lease = parse_lease(l.node(), flags)?;
    }
    Ok(DhcpHost {
        mac: mac.map(str::to_owned),
        id: n.attr("id").map(str::to_owned),
        name: n.attr("name").map(str::to_owned),
        ip: ip_attr(n, "ip")?,
        lease,
    })
}

fn parse_lease(n: Node<'_>, flags: ParseFlags) -> Result<Option<Lease>, XmlError> {
    check(flags, n, &["expiry", "unit"], &[])?;
    let Some(e) = n.attr("expiry") else {
        return Ok(None);
    };
    let expiry =
        str_to_u64p(e, 10).ok_or_else(|| bad(n, "expiry", e, "failed to parse expiry value"))?;
    let unit = enum_attr::<LeaseUnit>(n, "unit")?.unwrap_or(LeaseUnit::Minutes);
    Ok(Some(Lease { expiry, unit }))
}

// === route ===

fn parse_route(n: Node<'_>, flags: ParseFlags) -> Result<Route, XmlError> {
    check(
        flags,
        n,
        &[
            "family", "address", "netmask", "prefix", "gateway", "metric",
        ],
        &[],
    )?;
    let family = match xattr(n, "family") {
        None => None,
        Some(v) => Some(
            v.parse::<IpFamily>()
                .map_err(|()| bad(n, "family", v, "unrecognized family"))?,
        ),
    };
    let address = match xattr(n, "address") {
        None => return Err(missing(n, "address")),
        Some(v) => parse_ip(v).ok_or_else(|| bad(n, "address", v, "bad network address"))?,
    };
    let gateway = match xattr(n, "gateway") {
        None => return Err(missing(n, "gateway")),
        Some(v) => parse_ip(v).ok_or_else(|| bad(n, "gateway", v, "bad gateway address"))?,
    };
    let netmask = match xattr(n, "netmask") {
        None => None,
        Some(v) => Some(parse_ip(v).ok_or_else(|| bad(n, "netmask", v, "bad netmask address"))?),
    };
    let prefix = num_attr(n, "prefix", 10)?.map(clamp32);
    let metric = num_attr(n, "metric", 10)?.map(clamp32);
    if metric == Some(0) {
        return Err(bad(n, "metric", "0", "invalid metric value, must be > 0:"));
    }
    Ok(Route {
        family,
        address,
        netmask,
        prefix,
        gateway,
        metric,
    })
}

// === dns ===

fn parse_dns(n: Node<'_>, flags: ParseFlags) -> Result<Dns, XmlError> {
    check(
        flags,
        n,
        &["enable", "forwardPlainNames"],
        &["forwarder", "txt", "srv", "host"],
    )?;
    let mut dns = Dns {
        enable: tristate(n, "enable")?,
        forward_plain_names: tristate(n, "forwardPlainNames")?,
        ..Dns::default()
    };
    for f in n.children("forwarder") {
        let fnode = f.node();
        check(flags, fnode, &["addr", "domain"], &[])?;
        dns.forwarders.push(DnsForwarder {
            addr: ip_attr(fnode, "addr")?,
            domain: fnode.attr("domain").map(str::to_owned),
        });
    }
    for h in n.children("host") {
        dns.hosts.push(parse_dns_host(h.node(), flags)?);
    }
    for s in n.children("srv") {
        dns.srvs.push(parse_dns_srv(s.node(), flags)?);
    }
    for t in n.children("txt") {
        dns.txts.push(parse_dns_txt(t.node(), flags)?);
    }
    Ok(dns)
}

/// `<host ip=><hostname>..</hostname></host>` of `<dns>`.
pub(super) fn parse_dns_host(n: Node<'_>, flags: ParseFlags) -> Result<DnsHost, XmlError> {
    check(flags, n, &["ip"], &["hostname"])?;
    let ip = required_ip(n, "ip")?;
    let mut hostnames = Vec::new();
    for h in n.children("hostname") {
        if flags.validate {
            h.node().check_attrs(&[])?;
        }
        if !h.node().el.children.is_empty() {
            hostnames.push(deep_text(h.node().el));
        }
    }
    if hostnames.is_empty() {
        return Err(XmlError::new(
            n.child_path("hostname", None),
            XmlErrorKind::Missing,
        ));
    }
    Ok(DnsHost { ip, hostnames })
}

/// `<srv>` of `<dns>`.
pub(super) fn parse_dns_srv(n: Node<'_>, flags: ParseFlags) -> Result<DnsSrv, XmlError> {
    check(
        flags,
        n,
        &[
            "service", "protocol", "domain", "target", "port", "priority", "weight",
        ],
        &[],
    )?;
    Ok(DnsSrv {
        service: n.required_attr("service")?.to_owned(),
        protocol: n.required_attr("protocol")?.to_owned(),
        domain: n.attr("domain").map(str::to_owned),
        target: n.attr("target").map(str::to_owned),
        port: num_attr(n, "port", 10)?.map(clamp32),
        priority: num_attr(n, "priority", 10)?.map(clamp32),
        weight: num_attr(n, "weight", 10)?.map(clamp32),
    })
}

/// `<txt>` of `<dns>`.
pub(super) fn parse_dns_txt(n: Node<'_>, flags: ParseFlags) -> Result<DnsTxt, XmlError> {
    check(flags, n, &["name", "value"], &[])?;
    Ok(DnsTxt {
        name: n.required_attr("name")?.to_owned(),
        value: n.required_attr("value")?.to_owned(),
    })
}

// === bandwidth, vlan, virtualport, portgroup ===

fn parse_rate(n: Node<'_>, flags: ParseFlags) -> Result<Rate, XmlError> {
    check(flags, n, &["average", "peak", "floor", "burst"], &[])?;
    Ok(Rate {
        average: num_attr(n, "average", 10)?,
        peak: num_attr(n, "peak", 10)?,
        burst: num_attr(n, "burst", 10)?,
        floor: num_attr(n, "floor", 10)?,
    })
}

/// `<bandwidth>`; `None` when it has neither inbound nor outbound.
pub(super) fn parse_bandwidth(
    n: Node<'_>,
    flags: ParseFlags,
) -> Result<Option<Bandwidth>, XmlError> {
    check(flags, n, &["classID"], &["inbound", "outbound"])?;
    let mut bw = Bandwidth::default();
    let ins = n.children("inbound");
    let outs = n.children("outbound");
    if ins.len() > 1 {
        return Err(XmlError::invalid(
            ins[1].node().path(),
            "only one child <inbound> element allowed",
        ));
    }
    if outs.len() > 1 {
        return Err(XmlError::invalid(
            outs[1].node().path(),
            "only one child <outbound> element allowed",
        ));
    }
    if let Some(i) = ins.first() {
        bw.inbound = Some(parse_rate(i.node(), flags)?);
    }
    if let Some(o) = outs.first() {
        bw.outbound = Some(parse_rate(o.node(), flags)?);
    }
    Ok((bw.inbound.is_some() || bw.outbound.is_some()).then_some(bw))
}

/// `<vlan>`.
pub(super) fn parse_vlan(n: Node<'_>, flags: ParseFlags) -> Result<Vlan, XmlError> {
    check(flags, n, &["trunk"], &["tag"])?;
    let tags = n.children("tag");
    if tags.is_empty() {
        return Err(XmlError::new(
            n.child_path("tag", None),
            XmlErrorKind::Missing,
        ));
    }
    let mut vlan = Vlan::default();
    for t in &tags {
        let tn = t.node();
        check(flags, tn, &["id", "nativeMode"], &[])?;
        let id = num_attr(tn, "id", 10)?.ok_or_else(|| missing(tn, "id"))?;
        let native_mode = match tn.attr("nativeMode") {
            None => None,
            Some(v) => Some(
                v.parse::<NativeVlanMode>()
                    .map_err(|()| bad(tn, "nativeMode", v, "invalid nativeMode"))?,
            ),
        };
        vlan.tags.push(VlanTag {
            id: clamp32(id),
            native_mode,
        });
    }
    vlan.trunk = tags.len() > 1;
    if let Some(t) = xattr(n, "trunk") {
        if t.eq_ignore_ascii_case("yes") {
            vlan.trunk = true;
        } else if tags.len() > 1 {
            return Err(bad(
                n,
                "trunk",
                t,
                "trunk='yes' is required for more than one vlan tag, got",
            ));
        } else if vlan.tags.iter().any(|t| t.native_mode.is_some()) {
            return Err(bad(n, "trunk", t, "not allowed with a native vlan id:"));
        } else if !t.eq_ignore_ascii_case("no") {
            return Err(bad(n, "trunk", t, "expected 'yes' or 'no', got"));
        }
    }
    Ok(vlan)
}

/// `<virtualport>` with `<parameters>`.
pub(super) fn parse_virtualport(n: Node<'_>, flags: ParseFlags) -> Result<VirtualPort, XmlError> {
    check(flags, n, &["type"], &["parameters"])?;
    let mut vp = VirtualPort {
        kind: match n.attr("type") {
            None => None,
            Some(v) => Some(
                v.parse::<VirtualPortType>()
                    .map_err(|()| bad(n, "type", v, "unknown virtualport type"))?,
            ),
        },
        ..VirtualPort::default()
    };
    if let Some(p) = n.child("parameters") {
        let pn = p.node();
        check(
            flags,
            pn,
            &[
                "managerid",
                "typeid",
                "typeidversion",
                "instanceid",
                "profileid",
                "interfaceid",
            ],
            &[],
        )?;
        let small = |name: &str, max: u64| -> Result<Option<u64>, XmlError> {
            match pn.attr(name) {
                None => Ok(None),
                Some(v) => {
                    let x = str_to_u64p(v, 0)
                        .ok_or_else(|| bad(pn, name, v, "cannot parse value of"))?;
                    if x > max {
                        return Err(bad(pn, name, v, "value out of range:"));
                    }
                    Ok(Some(x))
                }
            }
        };
        vp.manager_id = small("managerid", 0xff)?.and_then(|x| u8::try_from(x).ok());
        vp.type_id = small("typeid", 0xff_ffff)?.and_then(|x| u32::try_from(x).ok());
        vp.type_id_version = small("typeidversion", 0xff)?.and_then(|x| u8::try_from(x).ok());
        let uuid = |name: &str| -> Result<Option<Uuid>, XmlError> {
            match pn.attr(name) {
                None => Ok(None),
                Some(v) => Uuid::parse(v)
                    .map(Some)
                    .ok_or_else(|| bad(pn, name, v, "cannot parse as a uuid:")),
            }
        };
        vp.instance_id = uuid("instanceid")?;
        vp.interface_id = uuid("interfaceid")?;
        vp.profile_id = pn.attr("profileid").map(str::to_owned);
    }
    Ok(vp)
}

fn parse_portgroup(n: Node<'_>, flags: ParseFlags) -> Result<PortGroup, XmlError> {
    check(
        flags,
        n,
        &["name", "default", "trustGuestRxFilters"],
        &["virtualport", "bandwidth", "vlan"],
    )?;
    let mut pg = PortGroup {
        name: xattr(n, "name")
            .ok_or_else(|| missing(n, "name"))?
            .to_owned(),
        ..PortGroup::default()
    };
    if flags.validate {
        yes_no(n, "default")?;
    }
    pg.is_default = xattr(n, "default").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    pg.trust_guest_rx_filters = yes_no(n, "trustGuestRxFilters")?;
    if let Some(v) = n.child("virtualport") {
        pg.virtualport = Some(parse_virtualport(v.node(), flags)?);
    }
    if let Some(b) = n.child("bandwidth") {
        pg.bandwidth = parse_bandwidth(b.node(), flags)?;
    }
    if let Some(v) = n.child("vlan") {
        pg.vlan = Some(parse_vlan(v.node(), flags)?);
    }
    Ok(pg)
}
