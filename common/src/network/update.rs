//! In-place changes of one section of a network definition, as libvirt's
//! `virNetworkDefUpdateSection` (the `virNetworkUpdate` API): add, modify
//! or delete a DHCP host or range, a DNS host, TXT or SRV record, or a
//! portgroup. A pure function of the definition and the request; the
//! driver applies it to the live and/or persistent definition and tells
//! dnsmasq.
//!
//! Messages are libvirt's, so clients print what virsh prints.

use std::fmt;

use crate::xml::{self, Node, ParseFlags, XmlError};

use super::addr::{MacAddr, format_ip};
use super::def::{DhcpHost, DhcpRange, DnsHost, DnsSrv, DnsTxt, IpDef, NetworkDef, PortGroup};
use super::parse::{parse_dhcp_host, parse_dns_host, parse_dns_srv, parse_dns_txt};
use super::validate::{check_range, validate_dhcp_host, validate_dns_srv, validate_dns_txt};

/// What to do (`virNetworkUpdateCommand`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateCommand {
    /// Replace an existing element.
    Modify,
    /// Remove an existing element.
    Delete,
    /// Append.
    AddLast,
    /// Prepend.
    AddFirst,
}

/// Which part of the definition (`virNetworkUpdateSection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateSection {
    /// `<bridge>`.
    Bridge,
    /// `<domain>`.
    Domain,
    /// `<ip>`.
    Ip,
    /// `<ip><dhcp><host>`.
    IpDhcpHost,
    /// `<ip><dhcp><range>`.
    IpDhcpRange,
    /// `<forward>`.
    Forward,
    /// `<forward><interface>`.
    ForwardInterface,
    /// `<forward><pf>`.
    ForwardPf,
    /// `<portgroup>`.
    Portgroup,
    /// `<dns><host>`.
    DnsHost,
    /// `<dns><txt>`.
    DnsTxt,
    /// `<dns><srv>`.
    DnsSrv,
}

impl UpdateSection {
    /// libvirt's name of the section (`ip-dhcp-host`, ...).
    pub fn name(self) -> &'static str {
        match self {
            UpdateSection::Bridge => "bridge",
            UpdateSection::Domain => "domain",
            UpdateSection::Ip => "ip",
            UpdateSection::IpDhcpHost => "ip-dhcp-host",
            UpdateSection::IpDhcpRange => "ip-dhcp-range",
            UpdateSection::Forward => "forward",
            UpdateSection::ForwardInterface => "forward-interface",
            UpdateSection::ForwardPf => "forward-pf",
            UpdateSection::Portgroup => "portgroup",
            UpdateSection::DnsHost => "dns-host",
            UpdateSection::DnsTxt => "dns-txt",
            UpdateSection::DnsSrv => "dns-srv",
        }
    }

    /// Whether a change of this section on a running network only needs
    /// dnsmasq to re-read its hosts files (SIGHUP), not a restart.
    pub fn hup_is_enough(self) -> bool {
        matches!(self, UpdateSection::IpDhcpHost | UpdateSection::DnsHost)
    }

    /// Whether a change of this section matters to dnsmasq at all.
    pub fn affects_dnsmasq(self) -> bool {
        matches!(
            self,
            UpdateSection::IpDhcpHost
                | UpdateSection::IpDhcpRange
                | UpdateSection::DnsHost
                | UpdateSection::DnsTxt
                | UpdateSection::DnsSrv
        )
    }
}

/// Why an update was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateError {
    /// The element does not parse or is not valid here.
    Xml(XmlError),
    /// The request does not fit the definition (libvirt's
    /// `OPERATION_INVALID`).
    Invalid(String),
    /// The section or command cannot be changed (libvirt's `NO_SUPPORT`).
    NoSupport(String),
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::Xml(e) => e.fmt(f),
            UpdateError::Invalid(m) => write!(f, "Requested operation is not valid: {m}"),
            UpdateError::NoSupport(m) => {
                write!(
                    f,
                    "this function is not supported by the connection driver: {m}"
                )
            }
        }
    }
}

impl std::error::Error for UpdateError {}

impl From<XmlError> for UpdateError {
    fn from(e: XmlError) -> UpdateError {
        UpdateError::Xml(e)
    }
}

fn invalid(m: String) -> UpdateError {
    UpdateError::Invalid(m)
}

/// Applies one update to `def`.
///
/// # Errors
/// See [`UpdateError`]; `def` is unchanged on error.
pub fn apply(
    def: &mut NetworkDef,
    command: UpdateCommand,
    section: UpdateSection,
    parent_index: i32,
    text: &str,
) -> Result<(), UpdateError> {
    let root = xml::parse(text)?;
    let node = Node::root(&root);
    let want = match section {
        UpdateSection::IpDhcpHost | UpdateSection::DnsHost => "host",
        UpdateSection::IpDhcpRange => "range",
        UpdateSection::DnsTxt => "txt",
        UpdateSection::DnsSrv => "srv",
        UpdateSection::Portgroup => "portgroup",
        s => {
            return Err(UpdateError::NoSupport(format!(
                "can't update '{}' section of network '{}'",
                s.name(),
                def.name
            )));
        }
    };
    if root.name != want {
        return Err(UpdateError::Xml(XmlError::invalid(
            "",
            format!(
                "unexpected element <{}>, expecting <{want}>, while updating network '{}'",
                root.name, def.name
            ),
        )));
    }
    let mut new = def.clone();
    match section {
        UpdateSection::IpDhcpHost => dhcp_host(&mut new, command, parent_index, node)?,
        UpdateSection::IpDhcpRange => dhcp_range(&mut new, command, parent_index, node)?,
        UpdateSection::DnsHost => dns_host(&mut new, command, node)?,
        UpdateSection::DnsTxt => dns_txt(&mut new, command, node)?,
        UpdateSection::DnsSrv => dns_srv(&mut new, command, node)?,
        UpdateSection::Portgroup => portgroup(&mut new, command, text)?,
        _ => unreachable!("refused above"),
    }
    *def = new;
    Ok(())
}

fn insert<T>(v: &mut Vec<T>, command: UpdateCommand, item: T) {
    if command == UpdateCommand::AddFirst {
        v.insert(0, item);
    } else {
        v.push(item);
    }
}

fn is_add(c: UpdateCommand) -> bool {
    matches!(c, UpdateCommand::AddFirst | UpdateCommand::AddLast)
}

/// The `<ip>` whose `<dhcp>` an update changes (libvirt's
/// `virNetworkIPDefByIndex`): by index, or for -1 the one with DHCP, else
/// the first IPv4, else the first IPv6.
fn ip_index(def: &NetworkDef, parent_index: i32) -> Result<usize, UpdateError> {
    if parent_index >= 0 {
        let i = usize::try_from(parent_index).unwrap_or(usize::MAX);
        if i < def.ips.len() {
            return Ok(i);
        }
        return Err(invalid(format!(
            "couldn't update dhcp host entry - no <ip> element found at index {parent_index} in network '{}'",
            def.name
        )));
    }
    def.ips
        .iter()
        .position(|ip| ip.dhcp.is_set())
        .or_else(|| def.ips.iter().position(IpDef::is_ipv4))
        .or_else(|| def.ips.iter().position(IpDef::is_ipv6))
        .ok_or_else(|| {
            invalid(format!(
                "couldn't update dhcp host entry - no <ip> element found in network '{}'",
                def.name
            ))
        })
}

fn same_mac(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.and_then(MacAddr::parse), b.and_then(MacAddr::parse)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn host_desc(h: &DhcpHost) -> String {
    format!(
        "<host mac='{}' name='{}' ip='{}'/>",
        h.mac.as_deref().unwrap_or("(null)"),
        h.name.as_deref().unwrap_or("(null)"),
        h.ip.as_ref().map_or_else(|| "(null)".to_owned(), format_ip)
    )
}

fn dhcp_host(
    def: &mut NetworkDef,
    command: UpdateCommand,
    parent_index: i32,
    node: Node<'_>,
) -> Result<(), UpdateError> {
    let idx = ip_index(def, parent_index)?;
    let name = def.name.clone();
    let flags = ParseFlags::default();
    let host = parse_dhcp_host(node, flags)?;
    let ip = &mut def.ips[idx];
    if command != UpdateCommand::Delete {
        validate_dhcp_host(&host, ip, "host")?;
    }
    let hosts = &mut ip.dhcp.hosts;
    match command {
        UpdateCommand::Modify => {
            let i = hosts
                .iter()
                .position(|h| {
                    same_mac(host.mac.as_deref(), h.mac.as_deref())
                        || (host.ip.is_some() && host.ip == h.ip)
                        || (host.name.is_some() && host.name == h.name)
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "couldn't locate an existing dhcp host entry with \"mac='{}'\" \"name='{}'\" \"ip='{}'\" in network '{name}'",
                        host.mac.as_deref().unwrap_or("(null)"),
                        host.name.as_deref().unwrap_or("(null)"),
                        host.ip.as_ref().map_or_else(|| "(null)".to_owned(), format_ip)
                    ))
                })?;
            hosts[i] = host;
        }
        UpdateCommand::AddFirst | UpdateCommand::AddLast => {
            if hosts.iter().any(|h| {
                same_mac(host.mac.as_deref(), h.mac.as_deref())
                    || (host.name.is_some() && host.name == h.name)
                    || (host.ip.is_some() && host.ip == h.ip)
            }) {
                return Err(invalid(format!(
                    "there is an existing dhcp host entry in network '{name}' that matches \"{}\"",
                    host_desc(&host)
                )));
            }
            insert(hosts, command, host);
        }
        UpdateCommand::Delete => {
            let i = hosts
                .iter()
                .position(|h| {
                    (host.mac.is_none()
                        || h.mac.is_none()
                        || same_mac(host.mac.as_deref(), h.mac.as_deref()))
                        && (host.name.is_none() || host.name == h.name)
                        && (host.ip.is_none() || host.ip == h.ip)
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "couldn't locate a matching dhcp host entry in network '{name}'"
                    ))
                })?;
            hosts.remove(i);
        }
    }
    Ok(())
}

fn dhcp_range(
    def: &mut NetworkDef,
    command: UpdateCommand,
    parent_index: i32,
    node: Node<'_>,
) -> Result<(), UpdateError> {
    let idx = ip_index(def, parent_index)?;
    let name = def.name.clone();
    let ip = &mut def.ips[idx];
    let parse_addr = |attr: &str| -> Result<std::net::IpAddr, UpdateError> {
        let v = node.required_attr(attr)?;
        super::addr::parse_ip(v).ok_or_else(|| {
            UpdateError::Xml(XmlError::bad_value(
                node.attr_path(attr),
                v,
                "Invalid dhcp range address",
            ))
        })
    };
    let range = DhcpRange {
        start: parse_addr("start")?,
        end: parse_addr("end")?,
        lease: None,
    };
    if range.start.is_ipv4() != ip.is_ipv4() {
        return Err(invalid(format!(
            "the address family of a dhcp range must match the address family of the dhcp element's parent in network '{name}'"
        )));
    }
    let desc = format!(
        "<range start='{}' end='{}'/>",
        format_ip(&range.start),
        format_ip(&range.end)
    );
    let found = ip
        .dhcp
        .ranges
        .iter()
        .position(|r| r.start == range.start && r.end == range.end);
    match command {
        UpdateCommand::Modify => {
            return Err(UpdateError::NoSupport(
                "dhcp ranges cannot be modified, only added or deleted".into(),
            ));
        }
        UpdateCommand::AddFirst | UpdateCommand::AddLast => {
            if found.is_some() {
                return Err(invalid(format!(
                    "there is an existing dhcp range entry in network '{name}' that matches \"{desc}\""
                )));
            }
            check_range(
                &range.start,
                &range.end,
                Some((&ip.address, ip.effective_prefix())),
            )
            .map_err(|m| UpdateError::Xml(XmlError::unsupported("range", m)))?;
            insert(&mut ip.dhcp.ranges, command, range);
        }
        UpdateCommand::Delete => {
            let i = found.ok_or_else(|| {
                invalid(format!(
                    "couldn't locate a matching dhcp range entry in network '{name}'"
                ))
            })?;
            ip.dhcp.ranges.remove(i);
        }
    }
    Ok(())
}

fn dns_host(
    def: &mut NetworkDef,
    command: UpdateCommand,
    node: Node<'_>,
) -> Result<(), UpdateError> {
    let name = def.name.clone();
    let host: DnsHost = parse_dns_host(node, ParseFlags::default())?;
    let matches: Vec<usize> = def
        .dns
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.ip == host.ip || host.hostnames.iter().any(|n| h.hostnames.contains(n)))
        .map(|(i, _)| i)
        .collect();
    if is_add(command) {
        if !matches.is_empty() {
            return Err(invalid(format!(
                "there is already at least one DNS HOST record with a matching field in network {name}"
            )));
        }
        insert(&mut def.dns.hosts, command, host);
    } else if command == UpdateCommand::Delete {
        match matches.as_slice() {
            [] => {
                return Err(invalid(format!(
                    "couldn't locate a matching DNS HOST record in network {name}"
                )));
            }
            [i] => {
                def.dns.hosts.remove(*i);
            }
            _ => {
                return Err(invalid(format!(
                    "multiple matching DNS HOST records were found in network {name}"
                )));
            }
        }
    } else {
        return Err(UpdateError::NoSupport(
            "DNS HOST records cannot be modified, only added or deleted".into(),
        ));
    }
    Ok(())
}

fn dns_txt(
    def: &mut NetworkDef,
    command: UpdateCommand,
    node: Node<'_>,
) -> Result<(), UpdateError> {
    let name = def.name.clone();
    let txt: DnsTxt = parse_dns_txt(node, ParseFlags::default())?;
    let found = def.dns.txts.iter().position(|t| t.name == txt.name);
    if is_add(command) {
        validate_dns_txt(&txt, "txt")?;
        if found.is_some() {
            return Err(invalid(format!(
                "there is already a DNS TXT record with name '{}' in network {name}",
                txt.name
            )));
        }
        insert(&mut def.dns.txts, command, txt);
    } else if command == UpdateCommand::Delete {
        let i = found.ok_or_else(|| {
            invalid(format!(
                "couldn't locate a matching DNS TXT record in network {name}"
            ))
        })?;
        def.dns.txts.remove(i);
    } else {
        return Err(UpdateError::NoSupport(
            "DNS TXT records cannot be modified, only added or deleted".into(),
        ));
    }
    Ok(())
}

fn dns_srv(
    def: &mut NetworkDef,
    command: UpdateCommand,
    node: Node<'_>,
) -> Result<(), UpdateError> {
    let name = def.name.clone();
    let srv: DnsSrv = parse_dns_srv(node, ParseFlags::default())?;
    let opt_eq = |a: &Option<String>, b: &Option<String>| a.is_none() || a == b;
    let num_eq = |a: Option<u32>, b: Option<u32>| a.is_none() || a == b;
    let matches: Vec<usize> = def
        .dns
        .srvs
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.service == srv.service
                && s.protocol == srv.protocol
                && opt_eq(&srv.domain, &s.domain)
                && opt_eq(&srv.target, &s.target)
                && num_eq(srv.port, s.port)
                && num_eq(srv.priority, s.priority)
                && num_eq(srv.weight, s.weight)
        })
        .map(|(i, _)| i)
        .collect();
    if is_add(command) {
        validate_dns_srv(&srv, "srv")?;
        if !matches.is_empty() {
            return Err(invalid(format!(
                "there is already at least one DNS SRV record matching all specified fields in network {name}"
            )));
        }
        insert(&mut def.dns.srvs, command, srv);
    } else if command == UpdateCommand::Delete {
        match matches.as_slice() {
            [] => {
                return Err(invalid(format!(
                    "couldn't locate a matching DNS SRV record in network {name}"
                )));
            }
            [i] => {
                def.dns.srvs.remove(*i);
            }
            _ => {
                return Err(invalid(format!(
                    "multiple DNS SRV records matching all specified fields were found in network {name}"
                )));
            }
        }
    } else {
        return Err(UpdateError::NoSupport(
            "DNS SRV records cannot be modified, only added or deleted".into(),
        ));
    }
    Ok(())
}

fn portgroup(def: &mut NetworkDef, command: UpdateCommand, text: &str) -> Result<(), UpdateError> {
    let name = def.name.clone();
    // Parsed inside a throw-away network so that the portgroup gets the
    // network parser's checks.
    let wrapped = format!("<network><name>x</name>{text}</network>");
    let root = xml::parse(&wrapped)?;
    let tmp = NetworkDef::parse(Node::root(&root), ParseFlags::default())?;
    let pg: PortGroup = tmp
        .portgroups
        .into_iter()
        .next()
        .ok_or_else(|| invalid("no portgroup given".into()))?;
    let found = def.portgroups.iter().position(|p| p.name == pg.name);
    match command {
        UpdateCommand::Modify | UpdateCommand::Delete => {
            let i = found.ok_or_else(|| {
                invalid(format!(
                    "couldn't find a portgroup entry named '{}' in network '{name}'",
                    pg.name
                ))
            })?;
            if command == UpdateCommand::Delete {
                def.portgroups.remove(i);
                return Ok(());
            }
            if pg.is_default
                && def
                    .portgroups
                    .iter()
                    .enumerate()
                    .any(|(j, p)| j != i && p.is_default)
            {
                return Err(invalid(format!(
                    "a different portgroup entry in network '{name}' is already set as the default. Only one default is allowed."
                )));
            }
            def.portgroups[i] = pg;
        }
        UpdateCommand::AddFirst | UpdateCommand::AddLast => {
            if found.is_some() {
                return Err(invalid(format!(
                    "there is already a portgroup named '{}' in network '{name}'",
                    pg.name
                )));
            }
            if pg.is_default && def.portgroups.iter().any(|p| p.is_default) {
                return Err(invalid(format!(
                    "a different portgroup entry in network '{name}' is already set as the default. Only one default is allowed."
                )));
            }
            insert(&mut def.portgroups, command, pg);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> NetworkDef {
        NetworkDef::parse_str(
            "<network><name>n</name><bridge name='b'/><forward/>\
             <ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/>\
             <host mac='52:54:00:00:00:01' name='a' ip='10.0.0.20'/></dhcp></ip></network>",
            ParseFlags::default(),
        )
        .expect("parses")
    }

    #[test]
    fn dhcp_hosts() {
        let mut d = net();
        apply(
            &mut d,
            UpdateCommand::AddFirst,
            UpdateSection::IpDhcpHost,
            -1,
            "<host mac='52:54:00:00:00:02' name='b' ip='10.0.0.21'/>",
        )
        .expect("add");
        assert_eq!(d.ips[0].dhcp.hosts[0].name.as_deref(), Some("b"));
        let e = apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::IpDhcpHost,
            -1,
            "<host mac='52:54:00:00:00:02' name='c' ip='10.0.0.22'/>",
        )
        .expect_err("dup mac");
        assert!(
            e.to_string()
                .contains("there is an existing dhcp host entry"),
            "{e}"
        );
        apply(
            &mut d,
            UpdateCommand::Modify,
            UpdateSection::IpDhcpHost,
            0,
            "<host mac='52:54:00:00:00:02' name='b2' ip='10.0.0.23'/>",
        )
        .expect("modify");
        assert_eq!(d.ips[0].dhcp.hosts[0].name.as_deref(), Some("b2"));
        apply(
            &mut d,
            UpdateCommand::Delete,
            UpdateSection::IpDhcpHost,
            -1,
            "<host mac='52:54:00:00:00:02'/>",
        )
        .expect("delete");
        assert_eq!(d.ips[0].dhcp.hosts.len(), 1);
        let e = apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::IpDhcpHost,
            -1,
            "<host mac='01:54:00:00:00:05' ip='10.0.0.5'/>",
        )
        .expect_err("multicast");
        assert!(matches!(e, UpdateError::Xml(_)), "{e}");
        let e = apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::Bridge,
            -1,
            "<bridge/>",
        )
        .expect_err("no support");
        assert_eq!(
            e.to_string(),
            "this function is not supported by the connection driver: can't update 'bridge' section of network 'n'"
        );
    }

    #[test]
    fn dns_records_and_ranges() {
        let mut d = net();
        apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::DnsHost,
            -1,
            "<host ip='10.0.0.50'><hostname>web</hostname></host>",
        )
        .expect("add");
        let e = apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::DnsHost,
            -1,
            "<host ip='10.0.0.51'><hostname>web</hostname></host>",
        )
        .expect_err("dup name");
        assert!(e.to_string().contains("matching field"));
        apply(
            &mut d,
            UpdateCommand::Delete,
            UpdateSection::DnsHost,
            -1,
            "<host ip='10.0.0.50'><hostname>web</hostname></host>",
        )
        .expect("delete");
        assert!(d.dns.hosts.is_empty());
        apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::DnsTxt,
            -1,
            "<txt name='t' value='v'/>",
        )
        .expect("txt");
        apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::IpDhcpRange,
            -1,
            "<range start='10.0.0.100' end='10.0.0.110'/>",
        )
        .expect("range");
        assert_eq!(d.ips[0].dhcp.ranges.len(), 2);
        apply(
            &mut d,
            UpdateCommand::AddLast,
            UpdateSection::Portgroup,
            -1,
            "<portgroup name='p' default='yes'/>",
        )
        .expect("portgroup");
        assert!(d.portgroups[0].is_default);
    }
}
