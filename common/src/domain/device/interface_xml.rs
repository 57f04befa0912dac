//! Parsing and formatting of [`Interface`].

use crate::xml::{Element, Node, XmlError};

use super::super::util::{Ctx, Fmt, MacAddr, missing, on_off, yes_no};
use super::address::Address;
use super::chardev::Reconnect;
use super::info::{DeviceInfo, InfoOpts};
use super::interface::{
    Bandwidth, BandwidthRate, Interface, MacvtapMode, NetBackend, NetDriver, NetIp, NetSource,
    NetType, SocketKind, VirtualPort, Vlan,
};
use super::virtio::VirtioOptions;

const HOST_OFFLOADS: &[&str] = &["csum", "gso", "tso4", "tso6", "ecn", "ufo", "mrg_rxbuf"];
const GUEST_OFFLOADS: &[&str] = &["csum", "tso4", "tso6", "ecn", "ufo"];
const VPORT_PARAMS: &[&str] = &[
    "managerid",
    "typeid",
    "typeidversion",
    "instanceid",
    "interfaceid",
    "profileid",
];
/// Prefixes of generated tap names, dropped from inactive XML.
const GENERATED_IFNAMES: &[&str] = &["vnet", "macvtap", "macvlan"];

fn s(n: Node<'_>, a: &str) -> Option<String> {
    n.attr(a).map(str::to_owned)
}

fn parse_ip(n: Node<'_>) -> Result<NetIp, XmlError> {
    Ok(NetIp {
        address: n
            .attr("address")
            .ok_or_else(|| missing(n.attr_path("address")))?
            .to_owned(),
        family: s(n, "family"),
        prefix: n.uint_attr("prefix")?,
        peer: s(n, "peer"),
    })
}

fn format_ip(ip: &NetIp) -> Element {
    Element::new("ip")
        .with_attr("address", &ip.address)
        .with_opt_attr("family", ip.family.as_deref())
        .with_opt_attr("prefix", ip.prefix)
        .with_opt_attr("peer", ip.peer.as_deref())
}

fn parse_rate(n: Node<'_>, inbound: bool) -> Result<BandwidthRate, XmlError> {
    let r = BandwidthRate {
        average: n.uint_attr("average")?,
        peak: n.uint_attr("peak")?,
        floor: if inbound { n.uint_attr("floor")? } else { None },
        burst: n.uint_attr("burst")?,
    };
    if r.average.is_none() && r.floor.is_none() {
        return Err(XmlError::invalid(
            n.path(),
            "Missing mandatory average or floor attributes",
        ));
    }
    Ok(r)
}

pub(crate) fn parse_bandwidth(n: Node<'_>) -> Result<Bandwidth, XmlError> {
    let one = |name: &str| -> Result<Option<BandwidthRate>, XmlError> {
        let list = n.children(if name == "inbound" {
            "inbound"
        } else {
            "outbound"
        });
        if list.len() > 1 {
            return Err(XmlError::invalid(
                n.path(),
                format!("Only one child <{name}> element allowed"),
            ));
        }
        match list.first() {
            None => Ok(None),
            Some(c) => parse_rate(c.node(), name == "inbound").map(Some),
        }
    };
    Ok(Bandwidth {
        inbound: one("inbound")?,
        outbound: one("outbound")?,
    })
}

pub(crate) fn format_bandwidth(b: &Bandwidth) -> Option<Element> {
    let mut e = Element::new("bandwidth");
    for (name, r) in [("inbound", &b.inbound), ("outbound", &b.outbound)] {
        if let Some(r) = r {
            e.push(
                Element::new(name)
                    .with_opt_attr("average", r.average)
                    .with_opt_attr("peak", r.peak)
                    .with_opt_attr("floor", r.floor)
                    .with_opt_attr("burst", r.burst),
            );
        }
    }
    (!e.children.is_empty()).then_some(e)
}

pub(crate) fn parse_vlan(n: Node<'_>) -> Result<Vlan, XmlError> {
    let mut v = Vlan::default();
    for t in n.children("tag") {
        let t = t.node();
        let id: u32 = t
            .uint_attr("id")?
            .ok_or_else(|| missing(t.attr_path("id")))?;
        if id > 4095 {
            return Err(XmlError::invalid(
                t.attr_path("id"),
                format!("vlan tag id {id} too large (maximum 4095)"),
            ));
        }
        v.tags.push((id, t.parse_attr("nativeMode")?));
    }
    if v.tags.is_empty() {
        return Err(XmlError::invalid(
            n.path(),
            "missing tag id - each <vlan> must have at least one <tag id='n'/> subelement",
        ));
    }
    let multi = v.tags.len() > 1;
    match n.attr("trunk") {
        None => v.trunk = Some(multi),
        Some(t) => {
            let yes = t.eq_ignore_ascii_case("yes");
            if !yes && multi {
                return Err(XmlError::invalid(
                    n.attr_path("trunk"),
                    "trunk='yes' is required for more than one vlan tag",
                ));
            }
            v.trunk = Some(yes);
        }
    }
    if v.trunk != Some(true) && v.tags.iter().any(|(_, m)| m.is_some()) {
        return Err(XmlError::invalid(
            n.path(),
            "nativeMode can only be used with trunk='yes'",
        ));
    }
    Ok(v)
}

pub(crate) fn format_vlan(v: &Vlan) -> Option<Element> {
    if v.tags.is_empty() {
        return None;
    }
    let mut e = Element::new("vlan");
    if v.trunk == Some(true) {
        e.set_attr("trunk", "yes");
    }
    for (id, m) in &v.tags {
        e.push(
            Element::new("tag")
                .with_attr("id", id)
                .with_opt_attr("nativeMode", *m),
        );
    }
    Some(e)
}

pub(crate) fn parse_virtualport(n: Node<'_>) -> VirtualPort {
    let mut params: Vec<(String, String)> = n
        .child("parameters")
        .map(|p| p.node().el.attrs.clone())
        .unwrap_or_default();
    params.sort_by_key(|(k, _)| {
        VPORT_PARAMS
            .iter()
            .position(|p| p == k)
            .unwrap_or(VPORT_PARAMS.len())
    });
    VirtualPort {
        kind: s(n, "type"),
        parameters: params,
    }
}

pub(crate) fn format_virtualport(v: &VirtualPort) -> Element {
    let mut e = Element::new("virtualport").with_opt_attr("type", v.kind.as_deref());
    if !v.parameters.is_empty() {
        let mut p = Element::new("parameters");
        p.attrs.clone_from(&v.parameters);
        e.push(p);
    }
    e
}

fn parse_reconnect(n: Node<'_>) -> Result<Option<Reconnect>, XmlError> {
    let Some(r) = n.child("reconnect") else {
        return Ok(None);
    };
    let r = r.node();
    let Some(enabled) = r.yes_no_attr("enabled")? else {
        return Ok(None);
    };
    let timeout = if enabled {
        Some(
            r.uint_attr("timeout")?
                .ok_or_else(|| missing(r.attr_path("timeout")))?,
        )
    } else {
        None
    };
    Ok(Some(Reconnect { enabled, timeout }))
}

fn parse_source(n: Node<'_>, ty: NetType) -> Result<NetSource, XmlError> {
    let src = n.child("source");
    let sn = src.as_ref().map(|s| s.node());
    let attr = |a: &str| sn.and_then(|s| s.attr(a)).map(str::to_owned);
    let sock = |kind: SocketKind| -> Result<NetSource, XmlError> {
        let sn = sn.ok_or_else(|| missing(n.child_path("source", None)))?;
        let port: u32 = sn.uint_attr("port")?.ok_or_else(|| {
            XmlError::invalid(
                sn.path(),
                "No <source> 'port' attribute specified with socket interface",
            )
        })?;
        let local = match sn.child("local") {
            Some(l) if kind == SocketKind::Udp => {
                let l = l.node();
                Some((s(l, "address"), l.uint_attr("port")?.unwrap_or(0)))
            }
            _ => None,
        };
        Ok(NetSource::Socket {
            kind,
            address: s(sn, "address"),
            port,
            local,
        })
    };
    Ok(match ty {
        NetType::User => NetSource::User { dev: attr("dev") },
        NetType::Ethernet => NetSource::Ethernet,
        NetType::VhostUser => {
            let Some(sn) = sn else {
                return Err(XmlError::invalid(
                    n.path(),
                    "Missing <source> element for vhostuser interface",
                ));
            };
            let t = sn.attr("type").unwrap_or("");
            if t != "unix" {
                return Err(XmlError::bad_value(
                    sn.attr_path("type"),
                    t,
                    "Type of vhostuser interface must be 'unix', got",
                ));
            }
            let server = match sn.attr("mode") {
                Some("server") => true,
                Some("client") => false,
                other => {
                    return Err(XmlError::bad_value(
                        sn.attr_path("mode"),
                        other.unwrap_or(""),
                        "Unknown vhostuser mode",
                    ));
                }
            };
            NetSource::VhostUser {
                path: s(sn, "path"),
                server,
                reconnect: parse_reconnect(sn)?,
            }
        }
        NetType::Server => sock(SocketKind::Server)?,
        NetType::Client => sock(SocketKind::Client)?,
        NetType::Mcast => sock(SocketKind::Mcast)?,
        NetType::Udp => sock(SocketKind::Udp)?,
        NetType::Network => NetSource::Network {
            network: attr("network").ok_or_else(|| {
                XmlError::invalid(
                    n.path(),
                    "No <source> 'network' attribute specified with <interface type='network'/>",
                )
            })?,
            portgroup: attr("portgroup"),
            portid: attr("portid"),
        },
        NetType::Bridge => NetSource::Bridge {
            bridge: attr("bridge"),
        },
        NetType::Internal => NetSource::Internal { name: attr("name") },
        NetType::Direct => {
            let dev = attr("dev").ok_or_else(|| {
                XmlError::invalid(
                    n.path(),
                    "No <source> 'dev' attribute specified with <interface type='direct'/>",
                )
            })?;
            let mode = match sn {
                Some(sn) => sn.parse_attr("mode")?.unwrap_or(MacvtapMode::Vepa),
                None => MacvtapMode::Vepa,
            };
            NetSource::Direct { dev, mode }
        }
        NetType::Hostdev => NetSource::Hostdev {
            managed: n.yes_no_attr("managed")?.unwrap_or(false),
            address: match sn.and_then(|s| s.child("address")) {
                Some(a) => Some(Address::parse(a.node())?),
                None => None,
            },
        },
        NetType::Vdpa => NetSource::Vdpa { dev: attr("dev") },
        NetType::Null => NetSource::Null,
        NetType::Vds => NetSource::Vds {
            attrs: sn.map(|s| s.el.attrs.clone()).unwrap_or_default(),
        },
    })
}

fn parse_driver(d: Node<'_>) -> Result<NetDriver, XmlError> {
    let offl = |name: &str, list: &[&str]| -> Result<Vec<(String, bool)>, XmlError> {
        let mut out = Vec::new();
        if let Some(h) = d.child(name) {
            let h = h.node();
            for k in list {
                if let Some(v) = h.on_off_attr(k)? {
                    out.push(((*k).to_owned(), v));
                }
            }
        }
        Ok(out)
    };
    Ok(NetDriver {
        name: d.parse_attr("name")?,
        txmode: d.parse_attr("txmode")?,
        ioeventfd: d.on_off_attr("ioeventfd")?,
        event_idx: d.on_off_attr("event_idx")?,
        queues: d.uint_attr("queues")?,
        rx_queue_size: d.uint_attr("rx_queue_size")?,
        tx_queue_size: d.uint_attr("tx_queue_size")?,
        rss: d.on_off_attr("rss")?,
        rss_hash_report: d.on_off_attr("rss_hash_report")?,
        virtio: VirtioOptions::parse(d)?,
        host: offl("host", HOST_OFFLOADS)?,
        guest: offl("guest", GUEST_OFFLOADS)?,
    })
}

/// With the validate flag: everything under an `<interface>` the model
/// reads (`<portForward>`, `<route>`, `<virtualport><parameters>` and a
/// vds `<source>` keep their attributes as they are).
fn check_interface(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    ctx.check(
        n,
        &["type", "trustGuestRxFilters", "managed"],
        &[
            "source",
            "mac",
            "ip",
            "route",
            "target",
            "guest",
            "model",
            "vlan",
            "virtualport",
            "bandwidth",
            "port",
            "portForward",
            "script",
            "downscript",
            "backenddomain",
            "driver",
            "backend",
            "filterref",
            "tune",
            "teaming",
            "link",
            "mtu",
            "coalesce",
            "alias",
            "boot",
            "rom",
            "acpi",
            "address",
        ],
    )?;
    let source_children = &["local", "reconnect", "address", "ip", "route"];
    if n.attr("type") == Some("vds") {
        for c in n.children("source") {
            c.node().check_children(source_children)?;
        }
    } else {
        ctx.check_child(
            n,
            "source",
            &[
                "dev",
                "type",
                "mode",
                "path",
                "port",
                "address",
                "network",
                "portgroup",
                "portid",
                "bridge",
                "name",
            ],
            source_children,
        )?;
    }
    for sn in n.children("source") {
        let sn = sn.node();
        ctx.check_child(sn, "local", &["address", "port"], &[])?;
        ctx.check_child(sn, "reconnect", &["enabled", "timeout"], &[])?;
        ctx.check_child(sn, "ip", &["address", "family", "prefix", "peer"], &[])?;
        if let Some(a) = sn.child("address") {
            super::info::check_address(a.node(), ctx)?;
        }
    }
    ctx.check_child(n, "mac", &["address", "type", "check"], &[])?;
    ctx.check_child(n, "ip", &["address", "family", "prefix", "peer"], &[])?;
    ctx.check_child(n, "target", &["dev", "managed"], &[])?;
    ctx.check_child(n, "guest", &["dev", "actual"], &[])?;
    ctx.check_child(n, "model", &["type"], &[])?;
    ctx.check_child(n, "vlan", &["trunk"], &["tag"])?;
    if let Some(v) = n.child("vlan") {
        ctx.check_child(v.node(), "tag", &["id", "nativeMode"], &[])?;
    }
    ctx.check_child(n, "virtualport", &["type"], &["parameters"])?;
    if let Some(v) = n.child("virtualport") {
        for p in v.node().children("parameters") {
            p.node().check_children(&[])?;
        }
    }
    ctx.check_child(n, "bandwidth", &[], &["inbound", "outbound"])?;
    if let Some(b) = n.child("bandwidth") {
        let b = b.node();
        ctx.check_child(b, "inbound", &["average", "peak", "floor", "burst"], &[])?;
        ctx.check_child(b, "outbound", &["average", "peak", "burst"], &[])?;
    }
    ctx.check_child(n, "port", &["isolated"], &[])?;
    ctx.check_child(n, "script", &["path"], &[])?;
    ctx.check_child(n, "downscript", &["path"], &[])?;
    ctx.check_child(n, "backenddomain", &["name"], &[])?;
    ctx.check_child(
        n,
        "driver",
        &[
            "name",
            "txmode",
            "ioeventfd",
            "event_idx",
            "queues",
            "rx_queue_size",
            "tx_queue_size",
            "rss",
            "rss_hash_report",
            "iommu",
            "ats",
            "packed",
            "page_per_vq",
        ],
        &["host", "guest"],
    )?;
    if let Some(d) = n.child("driver") {
        ctx.check_child(d.node(), "host", HOST_OFFLOADS, &[])?;
        ctx.check_child(d.node(), "guest", GUEST_OFFLOADS, &[])?;
    }
    ctx.check_child(n, "backend", &["type", "tap", "vhost", "logFile"], &[])?;
    ctx.check_child(n, "filterref", &["filter"], &["parameter"])?;
    if let Some(f) = n.child("filterref") {
        ctx.check_child(f.node(), "parameter", &["name", "value"], &[])?;
    }
    ctx.check_child(n, "tune", &[], &["sndbuf"])?;
    if let Some(t) = n.child("tune") {
        ctx.check_leaves(t.node(), &["sndbuf"])?;
    }
    ctx.check_child(n, "teaming", &["type", "persistent"], &[])?;
    ctx.check_child(n, "link", &["state"], &[])?;
    ctx.check_child(n, "mtu", &["size"], &[])?;
    ctx.check_child(n, "coalesce", &[], &["rx"])?;
    if let Some(c) = n.child("coalesce") {
        ctx.check_child(c.node(), "rx", &[], &["frames"])?;
        if let Some(r) = c.node().child("rx") {
            ctx.check_child(r.node(), "frames", &["max"], &[])?;
        }
    }
    for r in n.children("route") {
        r.node().check_children(&[])?;
    }
    Ok(())
}

fn routes(n: Option<Node<'_>>) -> Vec<Vec<(String, String)>> {
    n.map(|n| {
        n.children("route")
            .iter()
            .map(|r| r.node().el.attrs.clone())
            .collect()
    })
    .unwrap_or_default()
}

impl Interface {
    /// Parses an `<interface>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Interface, XmlError> {
        check_interface(n, ctx)?;
        let ty: NetType = match n.attr("type") {
            None => NetType::User,
            Some(v) => v.parse().map_err(|_| {
                XmlError::bad_value(n.attr_path("type"), v, "unknown interface type")
            })?,
        };
        let source = parse_source(n, ty)?;
        let (mut mac, mut mac_generated, mut mac_type, mut mac_check) =
            (MacAddr::default(), true, None, None);
        if let Some(m) = n.child("mac") {
            let m = m.node();
            if let Some(a) = m.attr("address") {
                mac = MacAddr::parse(a).ok_or_else(|| {
                    XmlError::bad_value(m.attr_path("address"), a, "unable to parse mac address")
                })?;
                if mac.is_multicast() {
                    return Err(XmlError::bad_value(
                        m.attr_path("address"),
                        a,
                        "expected unicast mac address, found multicast",
                    ));
                }
                mac_generated = false;
            }
            mac_type = m.parse_attr("type")?;
            mac_check = m.yes_no_attr("check")?;
        }
        if mac_generated || mac.is_zero() {
            mac = ctx.generate_mac();
            mac_generated = true;
        }
        let sn = n.child("source");
        let sn = sn.as_ref().map(|s| s.node());
        let mut host_ips = Vec::new();
        if let Some(sn) = sn {
            for ip in sn.children("ip") {
                host_ips.push(parse_ip(ip.node())?);
            }
        }
        let mut guest_ips = Vec::new();
        for ip in n.children("ip") {
            guest_ips.push(parse_ip(ip.node())?);
        }
        let target = n.child("target");
        let target = target.as_ref().map(|t| t.node());
        let mut target_dev = target.and_then(|t| s(t, "dev"));
        if ctx.inactive()
            && target_dev
                .as_deref()
                .is_some_and(|d| GENERATED_IFNAMES.iter().any(|p| d.starts_with(p)))
        {
            target_dev = None;
        }
        let guest = n.child("guest");
        let guest = guest.as_ref().map(|g| g.node());
        let model = n.child("model").and_then(|m| s(m.node(), "type"));
        if let Some(m) = &model
            && !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(XmlError::bad_value(
                n.child_path("model", None),
                m,
                "Model name contains invalid characters",
            ));
        }
        let mut iface = Interface {
            source,
            mac,
            mac_generated,
            mac_type,
            mac_check,
            trust_guest_rx_filters: n.yes_no_attr("trustGuestRxFilters")?,
            host_ips,
            host_routes: routes(sn),
            vlan: match n.child("vlan") {
                Some(v) => Some(parse_vlan(v.node())?),
                None => None,
            },
            virtualport: n.child("virtualport").map(|v| parse_virtualport(v.node())),
            bandwidth: match n.child("bandwidth") {
                Some(b) => Some(parse_bandwidth(b.node())?),
                None => None,
            },
            isolated: match n.child("port") {
                Some(p) => p.node().yes_no_attr("isolated")?,
                None => None,
            },
            guest_ips,
            guest_routes: routes(Some(n)),
            port_forwards: n
                .children("portForward")
                .iter()
                .map(|p| p.node().el.clone())
                .collect(),
            script: n.child("script").and_then(|c| s(c.node(), "path")),
            downscript: n.child("downscript").and_then(|c| s(c.node(), "path")),
            backend_domain: n.child("backenddomain").and_then(|c| s(c.node(), "name")),
            target_dev,
            target_managed: match target {
                Some(t) => t.yes_no_attr("managed")?,
                None => None,
            },
            guest_dev: guest.and_then(|g| s(g, "dev")),
            guest_actual: if ctx.inactive() {
                None
            } else {
                guest.and_then(|g| s(g, "actual"))
            },
            model,
            driver: match n.child("driver") {
                Some(d) => parse_driver(d.node())?,
                None => NetDriver::default(),
            },
            backend: match n.child("backend") {
                Some(b) => {
                    let b = b.node();
                    NetBackend {
                        kind: b.parse_attr("type")?,
                        tap: s(b, "tap"),
                        vhost: s(b, "vhost"),
                        log_file: s(b, "logFile"),
                    }
                }
                None => NetBackend::default(),
            },
            filterref: match n.child("filterref") {
                None => None,
                Some(f) => {
                    let f = f.node();
                    let name = f.required_attr("filter")?.to_owned();
                    let mut params = Vec::new();
                    for p in f.children("parameter") {
                        let p = p.node();
                        params.push((
                            p.required_attr("name")?.to_owned(),
                            p.required_attr("value")?.to_owned(),
                        ));
                    }
                    Some((name, params))
                }
            },
            sndbuf: n
                .child("tune")
                .and_then(|t| t.child("sndbuf"))
                .map(|s| s.uint_text())
                .transpose()?,
            teaming: match n.child("teaming") {
                None => None,
                Some(t) => {
                    let t = t.node();
                    Some((t.required_parse_attr("type")?, s(t, "persistent")))
                }
            },
            link_state: match n.child("link") {
                Some(l) => l.parse_attr("state")?,
                None => None,
            },
            mtu: match n.child("mtu") {
                Some(m) => m.uint_attr("size")?,
                None => None,
            },
            coalesce_rx_frames: match n
                .child("coalesce")
                .and_then(|c| c.child("rx"))
                .and_then(|r| r.child("frames"))
            {
                Some(f) => f.uint_attr("max")?,
                None => None,
            },
            info: DeviceInfo::parse(n, ctx, InfoOpts::BOOT_ROM)?,
        };
        if let Some((kind, persistent)) = &iface.teaming
            && *kind == super::interface::TeamingType::Persistent
            && persistent.is_some()
        {
            iface.teaming = Some((*kind, None));
        }
        Ok(iface)
    }

    fn format_source(&self, flags: &Fmt) -> Option<Element> {
        let mut e = Element::new("source");
        match &self.source {
            NetSource::Network {
                network,
                portgroup,
                portid,
            } => {
                e.set_attr("network", network);
                e.set_opt_attr("portgroup", portgroup.as_deref());
                if !flags.inactive {
                    e.set_opt_attr("portid", portid.as_deref());
                }
            }
            NetSource::VhostUser {
                path,
                server,
                reconnect,
            } => {
                e.set_attr("type", "unix");
                e.set_opt_attr("path", path.as_deref());
                e.set_attr("mode", if *server { "server" } else { "client" });
                if let Some(r) = reconnect {
                    let mut re = Element::new("reconnect").with_attr("enabled", yes_no(r.enabled));
                    if r.enabled {
                        re.set_opt_attr("timeout", r.timeout);
                    }
                    e.push(re);
                }
            }
            NetSource::Bridge { bridge } => e.set_opt_attr("bridge", bridge.as_deref()),
            NetSource::Socket {
                kind,
                address,
                port,
                local,
            } => {
                e.set_opt_attr("address", address.as_deref());
                e.set_attr("port", port);
                if *kind == SocketKind::Udp {
                    let (la, lp) = local.clone().unwrap_or((None, 0));
                    e.push(
                        Element::new("local")
                            .with_attr("address", la.unwrap_or_else(|| "(null)".to_owned()))
                            .with_attr("port", lp),
                    );
                }
            }
            NetSource::Internal { name } => e.set_opt_attr("name", name.as_deref()),
            NetSource::Direct { dev, mode } => {
                e.set_attr("dev", dev);
                e.set_attr("mode", mode);
            }
            NetSource::Hostdev { address, .. } => {
                if let Some(a) = address {
                    e.push(a.format());
                }
            }
            NetSource::Vdpa { dev } => e.set_opt_attr("dev", dev.as_deref()),
            NetSource::User { dev } => {
                if self.backend.kind == Some(super::interface::NetBackendType::Passt) {
                    e.set_opt_attr("dev", dev.as_deref());
                }
            }
            NetSource::Vds { attrs } => e.attrs.clone_from(attrs),
            NetSource::Ethernet | NetSource::Null => {}
        }
        for ip in &self.host_ips {
            e.push(format_ip(ip));
        }
        for r in &self.host_routes {
            let mut re = Element::new("route");
            re.attrs.clone_from(r);
            e.push(re);
        }
        (!e.is_empty()).then_some(e)
    }

    fn format_driver(&self) -> Option<Element> {
        let d = &self.driver;
        let mut e = Element::new("driver")
            .with_opt_attr("name", d.name)
            .with_opt_attr("txmode", d.txmode)
            .with_opt_attr("ioeventfd", d.ioeventfd.map(on_off))
            .with_opt_attr("event_idx", d.event_idx.map(on_off))
            .with_opt_attr("queues", d.queues)
            .with_opt_attr("rx_queue_size", d.rx_queue_size)
            .with_opt_attr("tx_queue_size", d.tx_queue_size)
            .with_opt_attr("rss", d.rss.map(on_off))
            .with_opt_attr("rss_hash_report", d.rss_hash_report.map(on_off));
        d.virtio.format(&mut e);
        for (name, list) in [("host", &d.host), ("guest", &d.guest)] {
            if !list.is_empty() {
                let mut h = Element::new(name);
                for (k, v) in list {
                    h.set_attr(k, on_off(*v));
                }
                e.push(h);
            }
        }
        (!e.is_empty()).then_some(e)
    }

    /// Formats the `<interface>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("interface").with_attr("type", self.net_type());
        if let NetSource::Hostdev { managed: true, .. } = self.source {
            e.set_attr("managed", "yes");
        }
        e.set_opt_attr(
            "trustGuestRxFilters",
            self.trust_guest_rx_filters.map(yes_no),
        );
        e.push(
            Element::new("mac")
                .with_attr("address", self.mac)
                .with_opt_attr("type", self.mac_type)
                .with_opt_attr("check", self.mac_check.map(yes_no)),
        );
        e.push_opt(self.format_source(flags));
        if let Some(v) = &self.vlan {
            e.push_opt(format_vlan(v));
        }
        if let Some(v) = &self.virtualport {
            e.push(format_virtualport(v));
        }
        if let Some(b) = &self.bandwidth {
            e.push_opt(format_bandwidth(b));
        }
        if let Some(i) = self.isolated {
            e.push(Element::new("port").with_attr("isolated", yes_no(i)));
        }
        for ip in &self.guest_ips {
            e.push(format_ip(ip));
        }
        for r in &self.guest_routes {
            let mut re = Element::new("route");
            re.attrs.clone_from(r);
            e.push(re);
        }
        for p in &self.port_forwards {
            e.push(p.clone());
        }
        if let Some(v) = &self.script {
            e.push(Element::new("script").with_attr("path", v));
        }
        if let Some(v) = &self.downscript {
            e.push(Element::new("downscript").with_attr("path", v));
        }
        if let Some(v) = &self.backend_domain {
            e.push(Element::new("backenddomain").with_attr("name", v));
        }
        let mut dev = self.target_dev.as_deref();
        if flags.inactive
            && self.target_managed != Some(false)
            && dev.is_some_and(|d| GENERATED_IFNAMES.iter().any(|p| d.starts_with(p)))
        {
            dev = None;
        }
        let te = Element::new("target")
            .with_opt_attr("dev", dev)
            .with_opt_attr("managed", self.target_managed.map(yes_no));
        if !te.is_empty() {
            e.push(te);
        }
        if self.guest_dev.is_some() || self.guest_actual.is_some() {
            e.push(
                Element::new("guest")
                    .with_opt_attr("dev", self.guest_dev.as_deref())
                    .with_opt_attr("actual", self.guest_actual.as_deref()),
            );
        }
        if let Some(m) = &self.model {
            e.push(Element::new("model").with_attr("type", m));
        }
        if self.is_virtio() || self.driver.name.is_some() {
            e.push_opt(self.format_driver());
        }
        let b = &self.backend;
        let be = Element::new("backend")
            .with_opt_attr("type", b.kind)
            .with_opt_attr("tap", b.tap.as_deref())
            .with_opt_attr("vhost", b.vhost.as_deref())
            .with_opt_attr("logFile", b.log_file.as_deref());
        if !be.is_empty() {
            e.push(be);
        }
        if let Some((f, params)) = &self.filterref {
            let mut fe = Element::new("filterref").with_attr("filter", f);
            for (k, v) in params {
                fe.push(
                    Element::new("parameter")
                        .with_attr("name", k)
                        .with_attr("value", v),
                );
            }
            e.push(fe);
        }
        if let Some(sb) = self.sndbuf {
            e.push(
                Element::new("tune").with_child(Element::text_element("sndbuf", sb.to_string())),
            );
        }
        if let Some((t, p)) = &self.teaming {
            e.push(
                Element::new("teaming")
                    .with_attr("type", t)
                    .with_opt_attr("persistent", p.as_deref()),
            );
        }
        if let Some(l) = self.link_state {
            e.push(Element::new("link").with_attr("state", l));
        }
        if let Some(m) = self.mtu {
            e.push(Element::new("mtu").with_attr("size", m));
        }
        if let Some(f) = self.coalesce_rx_frames.filter(|f| *f != 0) {
            e.push(Element::new("coalesce").with_child(
                Element::new("rx").with_child(Element::new("frames").with_attr("max", f)),
            ));
        }
        self.info.format(flags, InfoOpts::BOOT_ROM, &mut e);
        e
    }
}
