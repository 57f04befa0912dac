//! [`NetworkDef`] → XML in the layout of libvirt's `virNetworkDefFormat`:
//! element and attribute order, defaults shown (`stp`/`delay` for managed
//! bridges, `managed` for hostdev), `<ip>` and `<portgroup>` (and every
//! other element libvirt opens by hand) written with an end tag even when
//! empty ([`Element::open`]), live-only data (`connections`) dropped when
//! formatting the inactive definition.

use crate::xml::{Element, FormatFlags, escape_attr_into};

use super::addr::format_ip;
use super::def::*;
use super::metadata;

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Formats the network.
pub(super) fn format(def: &NetworkDef, flags: FormatFlags) -> String {
    let mut root = Element::new("network");
    if !flags.inactive && def.connections > 0 {
        root.set_attr("connections", def.connections);
    }
    if def.ipv6_no_gateway {
        root.set_attr("ipv6", "yes");
    }
    root.set_opt_attr(
        "trustGuestRxFilters",
        def.trust_guest_rx_filters.map(yes_no),
    );
    if !def.dnsmasq_options.is_empty() {
        root.set_attr("xmlns:dnsmasq", DNSMASQ_NS);
    }

    // Up to <description>, then <metadata> (libxml2's dump, kept as text),
    // then the rest.
    let mut head = vec![Element::text_element("name", def.name.as_str())];
    head.extend(
        def.uuid
            .map(|u| Element::text_element("uuid", u.to_string())),
    );
    head.extend(
        def.title
            .as_deref()
            .map(|t| Element::text_element("title", t)),
    );
    head.extend(
        def.description
            .as_deref()
            .map(|d| Element::text_element("description", d)),
    );
    let mut out = String::with_capacity(1024);
    out.push('<');
    out.push_str(&root.name);
    for (k, v) in &root.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        escape_attr_into(&mut out, v);
        out.push('\'');
    }
    out.push_str(">\n");
    for e in &head {
        e.write(&mut out, 1);
    }
    if let Some(md) = &def.metadata {
        out.push_str("  ");
        out.push_str(&metadata::dump(md, 1));
        out.push('\n');
    }
    for e in &body(def, flags) {
        e.write(&mut out, 1);
    }
    out.push_str("</network>\n");
    out
}

/// The children after `<metadata>`.
fn body(def: &NetworkDef, flags: FormatFlags) -> Vec<Element> {
    let mut els = Vec::new();
    els.extend(def.forward.as_ref().map(|f| format_forward(f, flags)));

    let has_bridge = ForwardMode::has_bridge(def.forward_mode());
    let br = &def.bridge;
    if has_bridge || br.name.is_some() || br.mac_table_manager.is_some() {
        let mut e = Element::new("bridge")
            .with_opt_attr("name", br.name.as_deref())
            .with_opt_attr("zone", br.zone.as_deref());
        if has_bridge {
            e.set_attr("stp", if br.stp_enabled() { "on" } else { "off" });
            e.set_attr("delay", br.delay_secs());
        }
        e.set_opt_attr("macTableManager", br.mac_table_manager.map(|m| m.as_str()));
        els.push(e);
    }

    if let Some(mtu) = def.mtu.filter(|m| *m > 0) {
        els.push(Element::new("mtu").with_attr("size", mtu));
    }
    if let Some(mac) = &def.mac {
        els.push(Element::new("mac").with_attr("address", mac));
    }
    if let Some(d) = &def.domain
        && let Some(name) = &d.name
    {
        els.push(
            Element::new("domain")
                .with_attr("name", name)
                .with_opt_attr("localOnly", d.local_only.map(yes_no))
                .with_opt_attr("register", d.register.map(yes_no)),
        );
    }

    els.extend(format_dns(&def.dns));
    els.extend(def.vlan.as_ref().and_then(format_vlan));
    els.extend(def.bandwidth.as_ref().map(format_bandwidth));
    if let Some(iso) = def.port_isolated {
        els.push(Element::new("port").with_attr("isolated", yes_no(iso)));
    }
    els.extend(def.ips.iter().map(format_ip_def));
    els.extend(def.routes.iter().map(format_route));
    els.extend(def.virtualport.as_ref().and_then(format_virtualport));
    els.extend(def.portgroups.iter().map(format_portgroup));
    if !def.dnsmasq_options.is_empty() {
        let mut e = Element::open("dnsmasq:options");
        for o in &def.dnsmasq_options {
            e.push(Element::new("dnsmasq:option").with_attr("value", o));
        }
        els.push(e);
    }
    els
}

fn format_forward(fwd: &Forward, flags: FormatFlags) -> Element {
    let mut e = Element::new("forward");
    if fwd.pf.is_none() {
        e.set_opt_attr("dev", fwd.dev());
    }
    e.set_attr("mode", fwd.mode.as_str());
    if fwd.mode == ForwardMode::Hostdev {
        e.set_attr("managed", yes_no(fwd.managed));
    }
    let driver = fwd
        .driver
        .as_ref()
        .filter(|d| d.name.is_some() || d.model.is_some());
    let nat = &fwd.nat;
    let short = fwd.interfaces.is_empty()
        && fwd.pf.is_none()
        && nat.address_start.is_none()
        && nat.address_end.is_none()
        && nat.port_start == 0
        && nat.port_end == 0
        && driver.is_none()
        && nat.ipv6.is_none();
    if short {
        return e;
    }
    e.force_open = true;

    if let Some(d) = driver {
        e.push(
            Element::new("driver")
                .with_opt_attr("name", d.name.map(ForwardDriverName::as_str))
                .with_opt_attr("model", d.model.as_deref()),
        );
    }
    if fwd.mode == ForwardMode::Nat && nat.is_set() {
        let mut n = Element::new("nat").with_opt_attr("ipv6", nat.ipv6.map(yes_no));
        let has_addr = nat.address_start.is_some() || nat.address_end.is_some();
        let has_port = nat.port_start != 0 || nat.port_end != 0;
        if has_addr || has_port {
            n.force_open = true;
            if let Some(start) = nat.address_start {
                n.push(
                    Element::new("address")
                        .with_attr("start", start)
                        .with_opt_attr("end", nat.address_end),
                );
            }
            if has_port {
                n.push(
                    Element::new("port")
                        .with_attr("start", nat.port_start)
                        .with_opt_attr("end", Some(nat.port_end).filter(|p| *p != 0)),
                );
            }
        }
        e.push(n);
    }
    if let Some(pf) = &fwd.pf {
        e.push(Element::new("pf").with_attr("dev", pf));
    }
    if !fwd.interfaces.is_empty() && (fwd.pf.is_none() || !flags.inactive) {
        for i in &fwd.interfaces {
            match &i.device {
                ForwardDevice::Netdev(dev) => {
                    let connections = Some(i.connections).filter(|c| !flags.inactive && *c > 0);
                    e.push(
                        Element::new("interface")
                            .with_attr("dev", dev)
                            .with_opt_attr("connections", connections),
                    );
                }
                ForwardDevice::Pci(p) => e.push(
                    Element::new("address")
                        .with_attr("type", "pci")
                        .with_attr("domain", format!("0x{:04x}", p.domain))
                        .with_attr("bus", format!("0x{:02x}", p.bus))
                        .with_attr("slot", format!("0x{:02x}", p.slot))
                        .with_attr("function", format!("0x{:x}", p.function)),
                ),
            }
        }
    }
    e
}

fn format_dns(dns: &Dns) -> Option<Element> {
    if dns.enable.is_none() && dns.forward_plain_names.is_none() && !dns.has_records() {
        return None;
    }
    let mut e = Element::new("dns")
        .with_opt_attr("enable", dns.enable.map(yes_no))
        .with_opt_attr("forwardPlainNames", dns.forward_plain_names.map(yes_no));
    if !dns.has_records() {
        return Some(e);
    }
    e.force_open = true;
    for f in &dns.forwarders {
        e.push(
            Element::new("forwarder")
                .with_opt_attr("domain", f.domain.as_deref())
                .with_opt_attr("addr", f.addr.as_ref().map(format_ip)),
        );
    }
    for t in &dns.txts {
        e.push(
            Element::new("txt")
                .with_attr("name", &t.name)
                .with_attr("value", &t.value),
        );
    }
    for srv in &dns.srvs {
        if srv.service.is_empty() && srv.protocol.is_empty() {
            continue;
        }
        let nz = |v: Option<u32>| v.filter(|v| *v != 0);
        e.push(
            Element::new("srv")
                .with_attr("service", &srv.service)
                .with_attr("protocol", &srv.protocol)
                .with_opt_attr("domain", srv.domain.as_deref())
                .with_opt_attr("target", srv.target.as_deref())
                .with_opt_attr("port", nz(srv.port))
                .with_opt_attr("priority", nz(srv.priority))
                .with_opt_attr("weight", nz(srv.weight)),
        );
    }
    for h in &dns.hosts {
        let mut he = Element::open("host").with_attr("ip", format_ip(&h.ip));
        for n in &h.hostnames {
            he.push(Element::text_element("hostname", n.as_str()));
        }
        e.push(he);
    }
    Some(e)
}

fn format_vlan(v: &Vlan) -> Option<Element> {
    if v.tags.is_empty() {
        return None;
    }
    let mut e = Element::open("vlan");
    if v.trunk {
        e.set_attr("trunk", "yes");
    }
    for t in &v.tags {
        e.push(
            Element::new("tag")
                .with_attr("id", t.id)
                .with_opt_attr("nativeMode", t.native_mode),
        );
    }
    Some(e)
}

fn format_rate(r: &Rate, name: &str) -> Option<Element> {
    let nz = |v: Option<u64>| v.filter(|v| *v != 0);
    if nz(r.average).is_none() && nz(r.floor).is_none() {
        return None;
    }
    Some(
        Element::new(name)
            .with_opt_attr("average", nz(r.average))
            .with_opt_attr("peak", nz(r.peak))
            .with_opt_attr("floor", nz(r.floor))
            .with_opt_attr("burst", nz(r.burst)),
    )
}

fn format_bandwidth(bw: &Bandwidth) -> Element {
    let mut e = Element::open("bandwidth");
    e.push_opt(bw.inbound.as_ref().and_then(|r| format_rate(r, "inbound")));
    e.push_opt(
        bw.outbound
            .as_ref()
            .and_then(|r| format_rate(r, "outbound")),
    );
    e
}

fn format_lease(l: &Lease) -> Element {
    Element::new("lease")
        .with_attr("expiry", l.expiry)
        .with_opt_attr("unit", (l.expiry > 0).then_some(l.unit))
}

fn format_ip_def(ip: &IpDef) -> Element {
    let mut e = Element::open("ip")
        .with_opt_attr("family", ip.family.map(IpFamily::as_str))
        .with_attr("address", format_ip(&ip.address))
        .with_opt_attr("netmask", ip.netmask.as_ref().map(format_ip))
        .with_opt_attr("prefix", ip.prefix.filter(|p| *p > 0))
        .with_opt_attr("localPtr", ip.local_ptr.map(yes_no));
    if let Some(root) = &ip.tftp_root {
        e.push(Element::new("tftp").with_attr("root", root));
    }
    if ip.dhcp.is_set() {
        let mut d = Element::open("dhcp");
        for r in &ip.dhcp.ranges {
            d.push(
                Element::new("range")
                    .with_attr("start", format_ip(&r.start))
                    .with_attr("end", format_ip(&r.end))
                    .with_opt_child(r.lease.as_ref().map(format_lease)),
            );
        }
        for h in &ip.dhcp.hosts {
            d.push(
                Element::new("host")
                    .with_opt_attr("mac", h.mac.as_deref())
                    .with_opt_attr("id", h.id.as_deref())
                    .with_opt_attr("name", h.name.as_deref())
                    .with_opt_attr("ip", h.ip.as_ref().map(format_ip))
                    .with_opt_child(h.lease.as_ref().map(format_lease)),
            );
        }
        if let Some(bp) = &ip.dhcp.bootp {
            d.push(
                Element::new("bootp")
                    .with_attr("file", &bp.file)
                    .with_opt_attr("server", bp.server.as_ref().map(format_ip)),
            );
        }
        e.push(d);
    }
    e
}

fn format_route(r: &Route) -> Element {
    Element::new("route")
        .with_opt_attr("family", r.family.map(IpFamily::as_str))
        .with_attr("address", format_ip(&r.address))
        .with_opt_attr("netmask", r.netmask.as_ref().map(format_ip))
        .with_opt_attr("prefix", r.prefix)
        .with_attr("gateway", format_ip(&r.gateway))
        .with_opt_attr("metric", r.metric.filter(|m| *m > 0))
}

fn format_virtualport(vp: &VirtualPort) -> Option<Element> {
    let no_params = vp.manager_id.is_none()
        && vp.type_id.is_none()
        && vp.type_id_version.is_none()
        && vp.instance_id.is_none()
        && vp.profile_id.as_deref().is_none_or(str::is_empty)
        && vp.interface_id.is_none();
    let k = vp.kind;
    if k.is_none() && no_params {
        return None;
    }
    let e = Element::new("virtualport").with_opt_attr("type", k);
    if no_params {
        return Some(e);
    }
    let any = k.is_none();
    let mut p = Element::new("parameters");
    if any || k == Some(VirtualPortType::Qbg) {
        p.set_opt_attr("managerid", vp.manager_id);
        p.set_opt_attr("typeid", vp.type_id);
        p.set_opt_attr("typeidversion", vp.type_id_version);
        p.set_opt_attr("instanceid", vp.instance_id);
    }
    if any
        || matches!(
            k,
            Some(VirtualPortType::OpenVSwitch | VirtualPortType::Midonet)
        )
    {
        p.set_opt_attr("interfaceid", vp.interface_id);
    }
    if any || matches!(k, Some(VirtualPortType::OpenVSwitch | VirtualPortType::Qbh)) {
        p.set_opt_attr(
            "profileid",
            vp.profile_id.as_deref().filter(|p| !p.is_empty()),
        );
    }
    Some(e.with_child(p))
}

fn format_portgroup(pg: &PortGroup) -> Element {
    let mut e = Element::open("portgroup")
        .with_attr("name", &pg.name)
        .with_opt_attr("default", pg.is_default.then_some("yes"))
        .with_opt_attr("trustGuestRxFilters", pg.trust_guest_rx_filters.map(yes_no));
    e.push_opt(pg.vlan.as_ref().and_then(format_vlan));
    e.push_opt(pg.virtualport.as_ref().and_then(format_virtualport));
    e.push_opt(pg.bandwidth.as_ref().map(format_bandwidth));
    e
}
