//! The dnsmasq configuration of a network, as libvirt's
//! `networkDnsmasqConfContents` writes it: a pure function of the
//! [`NetworkDef`] and where the files live.
//!
//! ```text
//!   NetworkDef ──dnsmasq_config──▶ DnsmasqConfig { conf, hostsfile, addnhosts }
//! ```
//!
//! - `conf`: the `--conf-file` text (header, DNS options, the interface,
//!   DHCP ranges, file names, RA, `<dnsmasq:options>` last);
//! - `hostsfile`: `dhcp-hostsfile` lines (`mac,ip,name[,lease]`,
//!   `id:DUID,name,[ipv6]`), re-read by dnsmasq on SIGHUP, so static
//!   DHCP hosts change without a restart;
//! - `addnhosts`: `addn-hosts` lines (`ip\tname\t...`), the `<dns><host>`
//!   records, also re-read on SIGHUP.
//!
//! virtnetworkd writes these files and starts dnsmasq with them; the
//! conformance runner scores `conf` and `hostsfile` against libvirt's
//! `networkxml2confdata` (category `network-xml2conf`).

use std::fmt;
use std::net::IpAddr;

use super::addr::{format_ip, mask_by_prefix};
use super::def::{DnsHost, ForwardMode, IpDef, Lease, LeaseUnit, NetworkDef};

/// Where the generated files live, as the conf names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsmasqPaths<'a> {
    /// The directory of the hosts files (libvirt:
    /// `/var/lib/libvirt/dnsmasq`): `<dir>/<network>.hostsfile` and
    /// `<dir>/<network>.addnhosts`.
    pub state_dir: &'a str,
    /// The pid file dnsmasq writes (`pid-file=`); `None` writes no line.
    pub pid_file: Option<&'a str>,
}

/// The generated files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsmasqConfig {
    /// The configuration file.
    pub conf: String,
    /// The DHCP hosts file (`dhcp-hostsfile`).
    pub hostsfile: String,
    /// The extra hosts file (`addn-hosts`).
    pub addnhosts: String,
}

/// Why no configuration could be made. Messages are libvirt's, with its
/// error-class prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsmasqError {
    /// The network has no bridge name.
    NoBridge(String),
    /// More than one `<ip>` of a family has DHCP.
    MultipleDhcp {
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// An `<ip>` without a usable prefix.
    BadPrefix {
        /// The bridge.
        bridge: String,
    },
    /// A `localPtr='yes'` network whose prefix is not on a label boundary.
    PtrDomain {
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The prefix.
        prefix: u32,
    },
    /// A DHCP range libvirt cannot count.
    BadRange(String),
}

impl fmt::Display for DnsmasqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsmasqError::NoBridge(n) => {
                write!(f, "internal error: network '{n}' has no bridge name")
            }
            DnsmasqError::MultipleDhcp { family } => write!(
                f,
                "unsupported configuration: For {family}, multiple DHCP definitions cannot be specified."
            ),
            DnsmasqError::BadPrefix { bridge } => {
                write!(f, "internal error: bridge '{bridge}' has an invalid prefix")
            }
            DnsmasqError::PtrDomain { family, prefix } => write!(
                f,
                "unsupported configuration: PTR domain for {family} network with prefix {prefix} cannot be automatically created"
            ),
            DnsmasqError::BadRange(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for DnsmasqError {}

/// `<dir>/<network>.hostsfile`.
pub fn hostsfile_path(state_dir: &str, network: &str) -> String {
    format!("{state_dir}/{network}.hostsfile")
}

/// `<dir>/<network>.addnhosts`.
pub fn addnhosts_path(state_dir: &str, network: &str) -> String {
    format!("{state_dir}/{network}.addnhosts")
}

/// Whether the network needs dnsmasq at all (libvirt's
/// `networkStartDhcpDaemon`): it has an `<ip>`, and either DHCP on one of
/// them or DNS not disabled.
pub fn needs_dnsmasq(def: &NetworkDef) -> bool {
    if def.ips.is_empty() {
        return false;
    }
    let dhcp = def.ips.iter().any(|ip| ip.dhcp.is_set());
    dhcp || def.dns.enable != Some(false)
}

/// The lease time as dnsmasq spells it (`infinite`, `5m`, `2h`, `30s`).
fn lease_time(l: Option<&Lease>) -> Option<String> {
    let l = l?;
    if l.expiry == 0 {
        return Some("infinite".to_owned());
    }
    let unit = match l.unit {
        LeaseUnit::Seconds => 's',
        LeaseUnit::Minutes => 'm',
        LeaseUnit::Hours => 'h',
    };
    Some(format!("{}{unit}", l.expiry))
}

/// libvirt's `virSocketAddrPTRDomain`.
fn ptr_domain(ip: &IpAddr, prefix: u32) -> Result<String, DnsmasqError> {
    match ip {
        IpAddr::V4(a) => {
            if prefix == 0 || prefix >= 32 || !prefix.is_multiple_of(8) {
                return Err(DnsmasqError::PtrDomain {
                    family: "IPv4",
                    prefix,
                });
            }
            let o = a.octets();
            let mut s = String::new();
            for i in (0..(prefix / 8) as usize).rev() {
                s.push_str(&format!("{}.", o[i]));
            }
            s.push_str("in-addr.arpa");
            Ok(s)
        }
        IpAddr::V6(a) => {
            if prefix == 0 || prefix >= 128 || !prefix.is_multiple_of(4) {
                return Err(DnsmasqError::PtrDomain {
                    family: "IPv6",
                    prefix,
                });
            }
            let bits = u128::from(*a);
            let mut s = String::new();
            for i in (0..prefix / 4).rev() {
                let nibble = (bits >> (124 - 4 * i)) & 0xf;
                s.push_str(&format!("{nibble:x}."));
            }
            s.push_str("ip6.arpa");
            Ok(s)
        }
    }
}

/// The number of addresses of a range, as `virSocketAddrGetRange`.
fn range_size(start: &IpAddr, end: &IpAddr) -> Result<u32, DnsmasqError> {
    let bad = || {
        DnsmasqError::BadRange(format!(
            "range {} - {} cannot be counted",
            format_ip(start),
            format_ip(end)
        ))
    };
    match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let (a, b) = (a.octets(), b.octets());
            let diff =
                (i64::from(b[2]) - i64::from(a[2])) * 256 + (i64::from(b[3]) - i64::from(a[3]));
            u32::try_from(diff + 1).map_err(|_| bad())
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (a.segments(), b.segments());
            if a[..7] != b[..7] || b[7] < a[7] {
                return Err(bad());
            }
            Ok(u32::from(b[7] - a[7]) + 1)
        }
        _ => Err(bad()),
    }
}

/// The IPv4 netmask of a prefix length.
fn netmask_v4(prefix: u32) -> String {
    let m = u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0);
    std::net::Ipv4Addr::from(m).to_string()
}

/// One `dhcp-hostsfile` line of a static host (libvirt's `hostsfileAdd`);
/// `None` for a host without an address.
fn dhcp_host_line(h: &super::def::DhcpHost, ipv6: bool) -> Option<String> {
    let ip = format_ip(h.ip.as_ref()?);
    let mut s = if ipv6 {
        match (&h.name, &h.id) {
            (Some(n), Some(id)) => format!("id:{id},{n},[{ip}]"),
            (Some(n), None) => format!("{n},[{ip}]"),
            (None, Some(id)) => format!("id:{id},[{ip}]"),
            (None, None) => match &h.mac {
                Some(m) => format!("{m},[{ip}]"),
                None => return None,
            },
        }
    } else {
        match (&h.name, &h.mac) {
            (Some(n), Some(m)) => format!("{m},{ip},{n}"),
            (Some(n), None) => format!("{n},{ip}"),
            (None, Some(m)) => format!("{m},{ip}"),
            (None, None) => return None,
        }
    };
    if let Some(l) = lease_time(h.lease.as_ref()) {
        s.push(',');
        s.push_str(&l);
    }
    Some(s)
}

/// The `dhcp-hostsfile` content of the network: the static hosts of the
/// first IPv4 and the first IPv6 `<ip>` with DHCP, one per line.
pub fn hostsfile(def: &NetworkDef) -> String {
    let mut out = String::new();
    for ip in dhcp_ips(def).into_iter().flatten() {
        for h in &ip.dhcp.hosts {
            if let Some(line) = dhcp_host_line(h, ip.is_ipv6()) {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

/// The `addn-hosts` content: one line per address, its names after it
/// (libvirt's `addnhostsWrite`: tab after each word).
pub fn addnhosts(hosts: &[DnsHost]) -> String {
    // Names of one address are grouped, in first-seen order of addresses.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for h in hosts {
        let ip = format_ip(&h.ip);
        let idx = match groups.iter().position(|(a, _)| *a == ip) {
            Some(i) => i,
            None => {
                groups.push((ip, Vec::new()));
                groups.len() - 1
            }
        };
        groups[idx].1.extend(h.hostnames.iter().map(String::as_str));
    }
    let mut out = String::new();
    for (ip, names) in groups {
        out.push_str(&ip);
        out.push('\t');
        for n in names {
            out.push_str(n);
            out.push('\t');
        }
        out.push('\n');
    }
    out
}

/// The first IPv4 and the first IPv6 `<ip>` with DHCP (ranges or hosts).
fn dhcp_ips(def: &NetworkDef) -> [Option<&IpDef>; 2] {
    let v4 = def.ips.iter().find(|i| i.is_ipv4() && i.dhcp.is_set());
    let v6 = def.ips.iter().find(|i| i.is_ipv6() && i.dhcp.is_set());
    [v4, v6]
}

/// The `dhcp-range`/boot lines of one `<ip>` with DHCP (libvirt's
/// `networkDnsmasqConfDHCP`); adds its leases to `leases`.
fn conf_dhcp(
    out: &mut String,
    ip: &IpDef,
    bridge: &str,
    leases: &mut u32,
) -> Result<(), DnsmasqError> {
    let prefix = ip
        .effective_prefix()
        .ok_or_else(|| DnsmasqError::BadPrefix {
            bridge: bridge.to_owned(),
        })?;
    for r in &ip.dhcp.ranges {
        let (s, e) = (format_ip(&r.start), format_ip(&r.end));
        if ip.is_ipv6() {
            out.push_str(&format!("dhcp-range={s},{e},{prefix}"));
        } else {
            out.push_str(&format!("dhcp-range={s},{e},{}", netmask_v4(prefix)));
        }
        if let Some(l) = lease_time(r.lease.as_ref()) {
            out.push(',');
            out.push_str(&l);
        }
        out.push('\n');
        *leases = leases.saturating_add(range_size(&r.start, &r.end)?);
    }
    if ip.dhcp.ranges.is_empty() && !ip.dhcp.hosts.is_empty() {
        out.push_str(&format!("dhcp-range={},static", format_ip(&ip.address)));
        if ip.is_ipv6() {
            out.push_str(&format!(",{prefix}"));
        }
        out.push('\n');
    }
    if ip.is_ipv4() {
        if ip.dhcp.is_set() {
            out.push_str("dhcp-no-override\ndhcp-authoritative\n");
        }
        if let Some(b) = &ip.dhcp.bootp {
            match &b.server {
                Some(srv) => out.push_str(&format!("dhcp-boot={},,{}\n", b.file, format_ip(srv))),
                None => out.push_str(&format!("dhcp-boot={}\n", b.file)),
            }
        }
    }
    Ok(())
}

/// The dnsmasq files of `def` (see the module documentation).
///
/// # Errors
/// No bridge name, more than one DHCP `<ip>` per family, an unusable
/// prefix, or a PTR domain that cannot be derived.
pub fn dnsmasq_config(
    def: &NetworkDef,
    paths: DnsmasqPaths<'_>,
) -> Result<DnsmasqConfig, DnsmasqError> {
    let bridge = def
        .bridge
        .name
        .as_deref()
        .ok_or_else(|| DnsmasqError::NoBridge(def.name.clone()))?;
    let dns = &def.dns;
    let want_dns = dns.enable != Some(false);
    let mut c = String::with_capacity(1024);
    c.push_str(&format!(
        "##WARNING:  THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
         ##OVERWRITTEN AND LOST.  Changes to this configuration should be made using:\n\
         ##    virsh net-edit {}\n\
         ## or other application using the libvirt API.\n\
         ##\n## dnsmasq conf file created by libvirt\n\
         strict-order\n",
        def.name
    ));
    if !want_dns {
        c.push_str("port=0\n");
    }
    if want_dns && !dns.forwarders.is_empty() {
        let mut no_resolv = false;
        for f in &dns.forwarders {
            c.push_str("server=");
            if let Some(d) = &f.domain {
                c.push_str(&format!("/{d}/"));
            }
            match &f.addr {
                Some(a) => {
                    c.push_str(&format_ip(a));
                    c.push('\n');
                    if f.domain.is_none() {
                        no_resolv = true;
                    }
                }
                None => c.push_str("#\n"),
            }
        }
        if no_resolv {
            c.push_str("no-resolv\n");
        }
    }
    if let Some(domain) = def.domain.as_ref().and_then(|d| d.name.as_deref()) {
        if def.domain.as_ref().and_then(|d| d.local_only) == Some(true) {
            c.push_str(&format!("local=/{domain}/\n"));
        }
        c.push_str(&format!("domain={domain}\nexpand-hosts\n"));
    }
    if want_dns {
        for ip in def.ips.iter().filter(|ip| ip.local_ptr == Some(true)) {
            let prefix = ip.effective_prefix().unwrap_or(0);
            let net = mask_by_prefix(&ip.address, prefix).unwrap_or(ip.address);
            c.push_str(&format!("local=/{}/\n", ptr_domain(&net, prefix)?));
        }
    }
    if want_dns && dns.forward_plain_names == Some(false) {
        c.push_str("domain-needed\nlocal=//\n");
    }
    if let Some(p) = paths.pid_file {
        c.push_str(&format!("pid-file={p}\n"));
    }
    c.push_str("except-interface=lo\n");
    c.push_str(&format!("bind-dynamic\ninterface={bridge}\n"));
    if def.forward.is_none() {
        c.push_str("dhcp-option=3\nno-resolv\nra-param=*,0,0\n");
    }
    if want_dns {
        for t in &dns.txts {
            c.push_str(&format!("txt-record={},{}\n", t.name, t.value));
        }
        for s in &dns.srvs {
            c.push_str(&format!("srv-host=_{}._{}", s.service, s.protocol));
            if let Some(d) = &s.domain {
                c.push_str(&format!(".{d}"));
            }
            if let Some(t) = s.target.as_deref().filter(|t| *t != ".") {
                c.push_str(&format!(",{t}"));
                let (port, prio, weight) = (
                    s.port.unwrap_or(0),
                    s.priority.unwrap_or(0),
                    s.weight.unwrap_or(0),
                );
                if port != 0 || prio != 0 || weight != 0 {
                    c.push_str(&format!(",{}", if port != 0 { port } else { 1 }));
                }
                if prio != 0 || weight != 0 {
                    c.push_str(&format!(",{prio}"));
                }
                if weight != 0 {
                    c.push_str(&format!(",{weight}"));
                }
            }
            c.push('\n');
        }
    }

    // The first DHCP <ip> of each family; TFTP of every IPv4 <ip>.
    let mut v4: Option<&IpDef> = None;
    let mut v6: Option<&IpDef> = None;
    let mut tftp = false;
    for ip in &def.ips {
        if ip.is_ipv4() {
            if ip.dhcp.is_set() {
                if v4.is_some() {
                    return Err(DnsmasqError::MultipleDhcp { family: "IPv4" });
                }
                v4 = Some(ip);
            }
            if let Some(root) = &ip.tftp_root {
                if !tftp {
                    c.push_str("enable-tftp\n");
                    tftp = true;
                }
                c.push_str(&format!("tftp-root={root}\n"));
            }
        } else if ip.dhcp.is_set() {
            if v6.is_some() {
                return Err(DnsmasqError::MultipleDhcp { family: "IPv6" });
            }
            v6 = Some(ip);
        }
    }
    let mut leases = 0u32;
    for ip in [v4, v6].into_iter().flatten() {
        conf_dhcp(&mut c, ip, bridge, &mut leases)?;
    }
    if leases > 0 {
        c.push_str(&format!("dhcp-lease-max={leases}\n"));
    }
    if v4.is_some() || v6.is_some() {
        c.push_str(&format!(
            "dhcp-hostsfile={}\n",
            hostsfile_path(paths.state_dir, &def.name)
        ));
    }
    if want_dns {
        c.push_str(&format!(
            "addn-hosts={}\n",
            addnhosts_path(paths.state_dir, &def.name)
        ));
    }
    if let Some(mtu) = def.mtu.filter(|m| *m > 0) {
        c.push_str(&format!("dhcp-option=option:mtu,{mtu}\n"));
    }
    if v6.is_some() {
        c.push_str("enable-ra\n");
    } else {
        for ip in def.ips.iter().filter(|i| i.is_ipv6() && !i.dhcp.is_set()) {
            c.push_str(&format!("dhcp-range={},ra-only\n", format_ip(&ip.address)));
        }
    }
    for o in &def.dnsmasq_options {
        c.push_str(o);
        c.push('\n');
    }
    Ok(DnsmasqConfig {
        conf: c,
        hostsfile: hostsfile(def),
        addnhosts: if want_dns {
            addnhosts(&dns.hosts)
        } else {
            String::new()
        },
    })
}

/// Whether the forward mode has a bridge libvirt manages (and so a
/// dnsmasq of its own).
pub fn has_managed_bridge(def: &NetworkDef) -> bool {
    ForwardMode::has_bridge(def.forward_mode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ParseFlags;

    fn conf(xml: &str) -> DnsmasqConfig {
        let def = NetworkDef::parse_str(xml, ParseFlags::default()).expect("parses");
        dnsmasq_config(
            &def,
            DnsmasqPaths {
                state_dir: "/var/lib/libvirt/dnsmasq",
                pid_file: None,
            },
        )
        .expect("conf")
    }

    #[test]
    fn isolated_network_has_no_default_route() {
        let c = conf(
            "<network><name>iso</name><bridge name='virbr9'/>\
             <ip address='10.9.0.1' prefix='24'><dhcp><range start='10.9.0.2' end='10.9.0.9'/></dhcp></ip></network>",
        );
        assert!(
            c.conf
                .contains("interface=virbr9\ndhcp-option=3\nno-resolv\nra-param=*,0,0\n")
        );
        assert!(c.conf.contains("dhcp-lease-max=8\n"));
    }

    #[test]
    fn ptr_domains_and_plain_names() {
        let c = conf(
            "<network><name>p</name><bridge name='virbr9'/><forward/>\
             <dns forwardPlainNames='no'><host ip='10.9.0.5'><hostname>a</hostname><hostname>b</hostname></host></dns>\
             <ip address='10.9.0.1' prefix='24' localPtr='yes'/>\
             <ip family='ipv6' address='fd00:1:2:3::1' prefix='64' localPtr='yes'/></network>",
        );
        assert!(c.conf.contains(
            "local=/0.9.10.in-addr.arpa/\nlocal=/3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa/\ndomain-needed\nlocal=//\n"
        ));
        assert_eq!(c.addnhosts, "10.9.0.5\ta\tb\t\n");
        let def = NetworkDef::parse_str(
            "<network><name>p</name><bridge name='b'/><ip address='10.9.0.1' prefix='20' localPtr='yes'/></network>",
            ParseFlags::default(),
        )
        .expect("parses");
        let e = dnsmasq_config(
            &def,
            DnsmasqPaths {
                state_dir: "/x",
                pid_file: Some("/run/p.pid"),
            },
        )
        .expect_err("prefix 20");
        assert_eq!(
            e.to_string(),
            "unsupported configuration: PTR domain for IPv4 network with prefix 20 cannot be automatically created"
        );
    }

    #[test]
    fn boot_and_needs() {
        let c = conf(
            "<network><name>n</name><bridge name='b'/><forward/>\
             <ip address='10.9.0.1' prefix='24'><tftp root='/t'/><dhcp><range start='10.9.0.2' end='10.9.0.9'/>\
             <bootp file='pxe.0' server='10.9.0.7'/></dhcp></ip></network>",
        );
        assert!(c.conf.contains("enable-tftp\ntftp-root=/t\ndhcp-range="));
        assert!(
            c.conf
                .contains("dhcp-authoritative\ndhcp-boot=pxe.0,,10.9.0.7\n")
        );
        let def = NetworkDef::parse_str(
            "<network><name>n</name><dns enable='no'/><ip address='10.0.0.1' prefix='24'/></network>",
            ParseFlags::default(),
        )
        .expect("parses");
        assert!(!needs_dnsmasq(&def));
    }
}
