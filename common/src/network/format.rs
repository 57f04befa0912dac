//! [`NetworkDef`] → XML in the layout of libvirt's `virNetworkDefFormat`:
//! element and attribute order, defaults shown (`stp`/`delay` for managed
//! bridges, `managed` for hostdev), `<ip>` and `<portgroup>` always written
//! with an end tag, live-only data (`connections`) dropped when formatting
//! the inactive definition.

use crate::xml::{FormatFlags, escape};

use super::addr::format_ip;
use super::def::*;
use super::metadata;

/// A line buffer with libvirt's two-space indentation.
struct Buf {
    out: String,
    indent: usize,
}

impl Buf {
    fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.out.push(' ');
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn push(&mut self) {
        self.indent += 2;
    }

    fn pop(&mut self) {
        self.indent = self.indent.saturating_sub(2);
    }
}

/// Appends ` name='value'` (escaped).
fn attr(s: &mut String, name: &str, value: &str) {
    s.push(' ');
    s.push_str(name);
    s.push_str("='");
    s.push_str(&escape(value));
    s.push('\'');
}

fn opt_attr(s: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        attr(s, name, v);
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Formats the network.
pub(super) fn format(def: &NetworkDef, flags: FormatFlags) -> String {
    let mut b = Buf {
        out: String::with_capacity(1024),
        indent: 0,
    };
    let mut s = String::from("<network");
    if !flags.inactive && def.connections > 0 {
        attr(&mut s, "connections", &def.connections.to_string());
    }
    if def.ipv6_no_gateway {
        attr(&mut s, "ipv6", "yes");
    }
    if let Some(t) = def.trust_guest_rx_filters {
        attr(&mut s, "trustGuestRxFilters", yes_no(t));
    }
    if !def.dnsmasq_options.is_empty() {
        attr(&mut s, "xmlns:dnsmasq", DNSMASQ_NS);
    }
    s.push('>');
    b.line(&s);
    b.push();

    b.line(&format!("<name>{}</name>", escape(&def.name)));
    if let Some(u) = &def.uuid {
        b.line(&format!("<uuid>{u}</uuid>"));
    }
    if let Some(t) = &def.title {
        b.line(&format!("<title>{}</title>", escape(t)));
    }
    if let Some(d) = &def.description {
        b.line(&format!("<description>{}</description>", escape(d)));
    }
    if let Some(md) = &def.metadata {
        b.line(&metadata::dump(md, b.indent / 2));
    }

    if let Some(fwd) = &def.forward {
        format_forward(&mut b, fwd, flags);
    }

    let has_bridge = ForwardMode::has_bridge(def.forward_mode());
    let br = &def.bridge;
    if has_bridge || br.name.is_some() || br.mac_table_manager.is_some() {
        let mut s = String::from("<bridge");
        opt_attr(&mut s, "name", br.name.as_deref());
        opt_attr(&mut s, "zone", br.zone.as_deref());
        if has_bridge {
            attr(&mut s, "stp", if br.stp_enabled() { "on" } else { "off" });
            attr(&mut s, "delay", &br.delay_secs().to_string());
        }
        if let Some(m) = br.mac_table_manager {
            attr(&mut s, "macTableManager", m.as_str());
        }
        s.push_str("/>");
        b.line(&s);
    }

    if let Some(mtu) = def.mtu.filter(|m| *m > 0) {
        b.line(&format!("<mtu size='{mtu}'/>"));
    }
    if let Some(mac) = &def.mac {
        b.line(&format!("<mac address='{mac}'/>"));
    }
    if let Some(d) = &def.domain
        && let Some(name) = &d.name
    {
        let mut s = String::from("<domain");
        attr(&mut s, "name", name);
        if let Some(l) = d.local_only {
            attr(&mut s, "localOnly", yes_no(l));
        }
        if let Some(r) = d.register {
            attr(&mut s, "register", yes_no(r));
        }
        s.push_str("/>");
        b.line(&s);
    }

    format_dns(&mut b, &def.dns);
    if let Some(v) = &def.vlan {
        format_vlan(&mut b, v);
    }
    if let Some(bw) = &def.bandwidth {
        format_bandwidth(&mut b, bw);
    }
    if let Some(iso) = def.port_isolated {
        b.line(&format!("<port isolated='{}'/>", yes_no(iso)));
    }
    for ip in &def.ips {
        format_ip_def(&mut b, ip);
    }
    for r in &def.routes {
        format_route(&mut b, r);
    }
    if let Some(vp) = &def.virtualport {
        format_virtualport(&mut b, vp);
    }
    for pg in &def.portgroups {
        format_portgroup(&mut b, pg);
    }
    if !def.dnsmasq_options.is_empty() {
        b.line("<dnsmasq:options>");
        b.push();
        for o in &def.dnsmasq_options {
            let mut s = String::from("<dnsmasq:option");
            attr(&mut s, "value", o);
            s.push_str("/>");
            b.line(&s);
        }
        b.pop();
        b.line("</dnsmasq:options>");
    }

    b.pop();
    b.line("</network>");
    b.out
}

fn format_forward(b: &mut Buf, fwd: &Forward, flags: FormatFlags) {
    let mut s = String::from("<forward");
    if fwd.pf.is_none() {
        opt_attr(&mut s, "dev", fwd.dev());
    }
    attr(&mut s, "mode", fwd.mode.as_str());
    if fwd.mode == ForwardMode::Hostdev {
        attr(&mut s, "managed", yes_no(fwd.managed));
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
        s.push_str("/>");
        b.line(&s);
        return;
    }
    s.push('>');
    b.line(&s);
    b.push();

    if let Some(d) = driver {
        let mut s = String::from("<driver");
        opt_attr(&mut s, "name", d.name.map(ForwardDriverName::as_str));
        opt_attr(&mut s, "model", d.model.as_deref());
        s.push_str("/>");
        b.line(&s);
    }
    if fwd.mode == ForwardMode::Nat && nat.is_set() {
        let mut s = String::from("<nat");
        if let Some(v6) = nat.ipv6 {
            attr(&mut s, "ipv6", yes_no(v6));
        }
        let has_addr = nat.address_start.is_some() || nat.address_end.is_some();
        let has_port = nat.port_start != 0 || nat.port_end != 0;
        if !has_addr && !has_port {
            s.push_str("/>");
            b.line(&s);
        } else {
            s.push('>');
            b.line(&s);
            b.push();
            if let Some(start) = nat.address_start {
                let mut s = format!("<address start='{start}'");
                if let Some(end) = nat.address_end {
                    s.push_str(&format!(" end='{end}'"));
                }
                s.push_str("/>");
                b.line(&s);
            }
            if has_port {
                let mut s = format!("<port start='{}'", nat.port_start);
                if nat.port_end != 0 {
                    s.push_str(&format!(" end='{}'", nat.port_end));
                }
                s.push_str("/>");
                b.line(&s);
            }
            b.pop();
            b.line("</nat>");
        }
    }
    if let Some(pf) = &fwd.pf {
        let mut s = String::from("<pf");
        attr(&mut s, "dev", pf);
        s.push_str("/>");
        b.line(&s);
    }
    if !fwd.interfaces.is_empty() && (fwd.pf.is_none() || !flags.inactive) {
        for i in &fwd.interfaces {
            match &i.device {
                ForwardDevice::Netdev(dev) => {
                    let mut s = String::from("<interface");
                    attr(&mut s, "dev", dev);
                    if !flags.inactive && i.connections > 0 {
                        attr(&mut s, "connections", &i.connections.to_string());
                    }
                    s.push_str("/>");
                    b.line(&s);
                }
                ForwardDevice::Pci(p) => {
                    b.line(&format!(
                        "<address type='pci' domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>",
                        p.domain, p.bus, p.slot, p.function
                    ));
                }
            }
        }
    }
    b.pop();
    b.line("</forward>");
}

fn format_dns(b: &mut Buf, dns: &Dns) {
    if dns.enable.is_none() && dns.forward_plain_names.is_none() && !dns.has_records() {
        return;
    }
    let mut s = String::from("<dns");
    if let Some(e) = dns.enable {
        attr(&mut s, "enable", yes_no(e));
    }
    if let Some(f) = dns.forward_plain_names {
        attr(&mut s, "forwardPlainNames", yes_no(f));
    }
    if !dns.has_records() {
        s.push_str("/>");
        b.line(&s);
        return;
    }
    s.push('>');
    b.line(&s);
    b.push();
    for f in &dns.forwarders {
        let mut s = String::from("<forwarder");
        opt_attr(&mut s, "domain", f.domain.as_deref());
        if let Some(a) = &f.addr {
            attr(&mut s, "addr", &format_ip(a));
        }
        s.push_str("/>");
        b.line(&s);
    }
    for t in &dns.txts {
        let mut s = String::from("<txt");
        attr(&mut s, "name", &t.name);
        attr(&mut s, "value", &t.value);
        s.push_str("/>");
        b.line(&s);
    }
    for srv in &dns.srvs {
        if srv.service.is_empty() && srv.protocol.is_empty() {
            continue;
        }
        let mut s = String::from("<srv");
        attr(&mut s, "service", &srv.service);
        attr(&mut s, "protocol", &srv.protocol);
        opt_attr(&mut s, "domain", srv.domain.as_deref());
        opt_attr(&mut s, "target", srv.target.as_deref());
        for (name, v) in [
            ("port", srv.port),
            ("priority", srv.priority),
            ("weight", srv.weight),
        ] {
            if let Some(v) = v.filter(|v| *v != 0) {
                attr(&mut s, name, &v.to_string());
            }
        }
        s.push_str("/>");
        b.line(&s);
    }
    for h in &dns.hosts {
        b.line(&format!("<host ip='{}'>", format_ip(&h.ip)));
        b.push();
        for n in &h.hostnames {
            b.line(&format!("<hostname>{}</hostname>", escape(n)));
        }
        b.pop();
        b.line("</host>");
    }
    b.pop();
    b.line("</dns>");
}

fn format_vlan(b: &mut Buf, v: &Vlan) {
    if v.tags.is_empty() {
        return;
    }
    b.line(if v.trunk {
        "<vlan trunk='yes'>"
    } else {
        "<vlan>"
    });
    b.push();
    for t in &v.tags {
        match t.native_mode {
            Some(m) => b.line(&format!("<tag id='{}' nativeMode='{m}'/>", t.id)),
            None => b.line(&format!("<tag id='{}'/>", t.id)),
        }
    }
    b.pop();
    b.line("</vlan>");
}

fn format_rate(b: &mut Buf, r: &Rate, name: &str) {
    let nz = |v: Option<u64>| v.filter(|v| *v != 0);
    if nz(r.average).is_none() && nz(r.floor).is_none() {
        return;
    }
    let mut s = format!("<{name}");
    for (a, v) in [
        ("average", r.average),
        ("peak", r.peak),
        ("floor", r.floor),
        ("burst", r.burst),
    ] {
        if let Some(v) = nz(v) {
            s.push_str(&format!(" {a}='{v}'"));
        }
    }
    s.push_str("/>");
    b.line(&s);
}

fn format_bandwidth(b: &mut Buf, bw: &Bandwidth) {
    b.line("<bandwidth>");
    b.push();
    if let Some(r) = &bw.inbound {
        format_rate(b, r, "inbound");
    }
    if let Some(r) = &bw.outbound {
        format_rate(b, r, "outbound");
    }
    b.pop();
    b.line("</bandwidth>");
}

fn format_lease(b: &mut Buf, l: &Lease) {
    if l.expiry > 0 {
        b.line(&format!("<lease expiry='{}' unit='{}'/>", l.expiry, l.unit));
    } else {
        b.line(&format!("<lease expiry='{}'/>", l.expiry));
    }
}

fn format_ip_def(b: &mut Buf, ip: &IpDef) {
    let mut s = String::from("<ip");
    opt_attr(&mut s, "family", ip.family.map(IpFamily::as_str));
    attr(&mut s, "address", &format_ip(&ip.address));
    if let Some(m) = &ip.netmask {
        attr(&mut s, "netmask", &format_ip(m));
    }
    if let Some(p) = ip.prefix.filter(|p| *p > 0) {
        attr(&mut s, "prefix", &p.to_string());
    }
    if let Some(l) = ip.local_ptr {
        attr(&mut s, "localPtr", yes_no(l));
    }
    s.push('>');
    b.line(&s);
    b.push();
    if let Some(root) = &ip.tftp_root {
        let mut s = String::from("<tftp");
        attr(&mut s, "root", root);
        s.push_str("/>");
        b.line(&s);
    }
    if ip.dhcp.is_set() {
        b.line("<dhcp>");
        b.push();
        for r in &ip.dhcp.ranges {
            let s = format!(
                "<range start='{}' end='{}'",
                format_ip(&r.start),
                format_ip(&r.end)
            );
            match &r.lease {
                Some(l) => {
                    b.line(&format!("{s}>"));
                    b.push();
                    format_lease(b, l);
                    b.pop();
                    b.line("</range>");
                }
                None => b.line(&format!("{s}/>")),
            }
        }
        for h in &ip.dhcp.hosts {
            let mut s = String::from("<host");
            opt_attr(&mut s, "mac", h.mac.as_deref());
            opt_attr(&mut s, "id", h.id.as_deref());
            opt_attr(&mut s, "name", h.name.as_deref());
            if let Some(a) = &h.ip {
                attr(&mut s, "ip", &format_ip(a));
            }
            match &h.lease {
                Some(l) => {
                    b.line(&format!("{s}>"));
                    b.push();
                    format_lease(b, l);
                    b.pop();
                    b.line("</host>");
                }
                None => b.line(&format!("{s}/>")),
            }
        }
        if let Some(bp) = &ip.dhcp.bootp {
            let mut s = String::from("<bootp");
            attr(&mut s, "file", &bp.file);
            if let Some(srv) = &bp.server {
                attr(&mut s, "server", &format_ip(srv));
            }
            s.push_str("/>");
            b.line(&s);
        }
        b.pop();
        b.line("</dhcp>");
    }
    b.pop();
    b.line("</ip>");
}

fn format_route(b: &mut Buf, r: &Route) {
    let mut s = String::from("<route");
    opt_attr(&mut s, "family", r.family.map(IpFamily::as_str));
    attr(&mut s, "address", &format_ip(&r.address));
    if let Some(m) = &r.netmask {
        attr(&mut s, "netmask", &format_ip(m));
    }
    if let Some(p) = r.prefix {
        attr(&mut s, "prefix", &p.to_string());
    }
    attr(&mut s, "gateway", &format_ip(&r.gateway));
    if let Some(m) = r.metric.filter(|m| *m > 0) {
        attr(&mut s, "metric", &m.to_string());
    }
    s.push_str("/>");
    b.line(&s);
}

fn format_virtualport(b: &mut Buf, vp: &VirtualPort) {
    let no_params = vp.manager_id.is_none()
        && vp.type_id.is_none()
        && vp.type_id_version.is_none()
        && vp.instance_id.is_none()
        && vp.profile_id.as_deref().is_none_or(str::is_empty)
        && vp.interface_id.is_none();
    match vp.kind {
        None if no_params => return,
        None => b.line("<virtualport>"),
        Some(k) if no_params => {
            b.line(&format!("<virtualport type='{k}'/>"));
            return;
        }
        Some(k) => b.line(&format!("<virtualport type='{k}'>")),
    }
    let k = vp.kind;
    let any = k.is_none();
    let qbg = any || k == Some(VirtualPortType::Qbg);
    let mut s = String::from("<parameters");
    if qbg {
        if let Some(v) = vp.manager_id {
            s.push_str(&format!(" managerid='{v}'"));
        }
        if let Some(v) = vp.type_id {
            s.push_str(&format!(" typeid='{v}'"));
        }
        if let Some(v) = vp.type_id_version {
            s.push_str(&format!(" typeidversion='{v}'"));
        }
        if let Some(v) = vp.instance_id {
            s.push_str(&format!(" instanceid='{v}'"));
        }
    }
    if let Some(v) = vp.interface_id
        && (any
            || matches!(
                k,
                Some(VirtualPortType::OpenVSwitch | VirtualPortType::Midonet)
            ))
    {
        s.push_str(&format!(" interfaceid='{v}'"));
    }
    if let Some(p) = vp.profile_id.as_deref().filter(|p| !p.is_empty())
        && (any || matches!(k, Some(VirtualPortType::OpenVSwitch | VirtualPortType::Qbh)))
    {
        attr(&mut s, "profileid", p);
    }
    s.push_str("/>");
    b.push();
    b.line(&s);
    b.pop();
    b.line("</virtualport>");
}

fn format_portgroup(b: &mut Buf, pg: &PortGroup) {
    let mut s = String::from("<portgroup");
    attr(&mut s, "name", &pg.name);
    if pg.is_default {
        attr(&mut s, "default", "yes");
    }
    if let Some(t) = pg.trust_guest_rx_filters {
        attr(&mut s, "trustGuestRxFilters", yes_no(t));
    }
    s.push('>');
    b.line(&s);
    b.push();
    if let Some(v) = &pg.vlan {
        format_vlan(b, v);
    }
    if let Some(vp) = &pg.virtualport {
        format_virtualport(b, vp);
    }
    if let Some(bw) = &pg.bandwidth {
        format_bandwidth(b, bw);
    }
    b.pop();
    b.line("</portgroup>");
}
