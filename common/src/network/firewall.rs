//! The nftables rules of a network, as libvirt's nftables backend
//! (`network_nftables.c`) makes them: a pure function of the
//! [`NetworkDef`].
//!
//! Every network's rules live in one table per family (`ip` and `ip6`),
//! whose name the caller chooses (libvirt: `libvirt_network`;
//! virtnetworkd: `virt_network`). The table has a `forward` base chain
//! jumping to `guest_output`, `guest_input` and `guest_cross`, and a
//! `guest_nat` postrouting chain ([`base_commands`]). A network inserts
//! its rules at the head of those chains ([`network_rules`]) and removes
//! them again by the handles nft reported, so rules of other networks,
//! and of anyone else, are never touched.
//!
//! The rules are given as argument lists; [`NftRule::command`] is the
//! `nft -ae insert rule ...` command libvirt runs (scored by the
//! conformance category `network-xml2firewall`), [`NftRule::script_line`]
//! the same rule for an `nft -f` batch.

use std::fmt;
use std::net::IpAddr;

use super::addr::{format_ip, mask_by_prefix};
use super::def::{ForwardDevice, ForwardMode, IpDef, NetworkDef};
use crate::storage::argv::Command;

/// An nftables address family of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NftFamily {
    /// `ip`.
    Ip,
    /// `ip6`.
    Ip6,
}

impl NftFamily {
    /// `ip` or `ip6`.
    pub fn as_str(self) -> &'static str {
        match self {
            NftFamily::Ip => "ip",
            NftFamily::Ip6 => "ip6",
        }
    }

    /// The family of an address.
    pub fn of(a: &IpAddr) -> NftFamily {
        if a.is_ipv4() {
            NftFamily::Ip
        } else {
            NftFamily::Ip6
        }
    }
}

impl fmt::Display for NftFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The forward base chain.
pub const CHAIN_FORWARD: &str = "forward";
/// Traffic from the guests out.
pub const CHAIN_OUTPUT: &str = "guest_output";
/// Traffic to the guests.
pub const CHAIN_INPUT: &str = "guest_input";
/// Traffic between guests of one bridge.
pub const CHAIN_CROSS: &str = "guest_cross";
/// The NAT postrouting chain.
pub const CHAIN_NAT: &str = "guest_nat";

/// The chains of the table: name, base-chain declaration (`None`: a
/// regular chain jumped to from `forward`).
pub const CHAINS: [(&str, Option<&str>); 5] = [
    (
        CHAIN_FORWARD,
        Some("{ type filter hook forward priority 0; policy accept; }"),
    ),
    (CHAIN_OUTPUT, None),
    (CHAIN_INPUT, None),
    (CHAIN_CROSS, None),
    (
        CHAIN_NAT,
        Some("{ type nat hook postrouting priority 100; policy accept; }"),
    ),
];

/// One rule a network inserts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftRule {
    /// The table family.
    pub family: NftFamily,
    /// The chain (one of the `CHAIN_*`).
    pub chain: &'static str,
    /// The rule's words (matches, statements), unquoted.
    pub expr: Vec<String>,
}

impl NftRule {
    fn new(family: NftFamily, chain: &'static str, expr: &[&str]) -> NftRule {
        NftRule {
            family,
            chain,
            expr: expr.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn push(&mut self, words: &[&str]) {
        self.expr.extend(words.iter().map(|s| (*s).to_owned()));
    }

    /// `nft -ae insert rule FAMILY TABLE CHAIN ...`, as libvirt runs it.
    pub fn command(&self, table: &str) -> Command {
        let mut c = Command::new("nft");
        c.args([
            "-ae",
            "insert",
            "rule",
            self.family.as_str(),
            table,
            self.chain,
        ]);
        c.args(self.expr.iter().cloned());
        c
    }

    /// `insert rule FAMILY TABLE CHAIN ...`, one line of an `nft -f` batch.
    /// Interface names are quoted: nft's grammar takes a bare word only if
    /// it starts with a letter and is no keyword, and Linux allows names
    /// like `-1` or `ip6`.
    pub fn script_line(&self, table: &str) -> String {
        let mut expr = String::new();
        let mut after_ifname_key = false;
        for w in &self.expr {
            if !expr.is_empty() {
                expr.push(' ');
            }
            if after_ifname_key {
                expr.push('"');
                expr.push_str(w);
                expr.push('"');
            } else {
                expr.push_str(w);
            }
            after_ifname_key = matches!(w.as_str(), "iif" | "oif" | "iifname" | "oifname");
        }
        format!("insert rule {} {table} {} {expr}", self.family, self.chain)
    }
}

/// Why no rules could be made. Messages are libvirt's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirewallError {
    /// An `<ip>` without a usable prefix.
    BadPrefix(String),
    /// A NAT port range that is not `start < end < 65536`.
    BadPortRange(u32, u32),
}

impl fmt::Display for FirewallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallError::BadPrefix(b) => {
                write!(f, "internal error: Invalid prefix or netmask for '{b}'")
            }
            FirewallError::BadPortRange(s, e) => {
                write!(f, "internal error: Invalid port range '{s}-{e}'.")
            }
        }
    }
}

impl std::error::Error for FirewallError {}

/// The commands that create the table and its chains (libvirt's
/// `nftablesSetupPrivateChains` on a host without them; the conformance
/// harness's `base.nftables` minus its `list table`).
pub fn base_commands(family: NftFamily, table: &str) -> Vec<Command> {
    let f = family.as_str();
    let mut out = Vec::new();
    let mut c = Command::new("nft");
    c.args(["add", "table", f, table]);
    out.push(c);
    for (chain, decl) in CHAINS {
        let mut c = Command::new("nft");
        c.args(["add", "chain", f, table, chain]);
        if let Some(d) = decl {
            c.arg(d);
        }
        out.push(c);
        if decl.is_none() {
            let mut j = Command::new("nft");
            j.args([
                "insert",
                "rule",
                f,
                table,
                CHAIN_FORWARD,
                "counter",
                "jump",
                chain,
            ]);
            out.push(j);
        }
    }
    out
}

/// [`base_commands`] as an `nft -f` batch (one command per line).
pub fn base_script(family: NftFamily, table: &str) -> String {
    let mut s = String::new();
    for c in base_commands(family, table) {
        s.push_str(&c.args.join(" "));
        s.push('\n');
    }
    s
}

/// Whether a network of this forward mode gets firewall rules at all
/// (nat, route and isolated do; open, bridge and the macvtap/hostdev
/// modes do not).
pub fn wants_rules(def: &NetworkDef) -> bool {
    matches!(
        def.forward_mode(),
        None | Some(ForwardMode::Nat | ForwardMode::Route)
    )
}

fn network_str(ip: &IpDef, bridge: &str) -> Result<String, FirewallError> {
    let prefix = ip
        .effective_prefix()
        .ok_or_else(|| FirewallError::BadPrefix(bridge.to_owned()))?;
    let net = mask_by_prefix(&ip.address, prefix).unwrap_or(ip.address);
    Ok(format!("{}/{prefix}", format_ip(&net)))
}

/// The rules of `def`, in the order libvirt inserts them: the catch-all
/// rules per family, then per `<ip>` the routing or masquerading rules.
/// Empty for modes without rules ([`wants_rules`]).
///
/// # Errors
/// An `<ip>` without a usable prefix, or a bad NAT port range.
pub fn network_rules(def: &NetworkDef) -> Result<Vec<NftRule>, FirewallError> {
    let mut out = Vec::new();
    if !wants_rules(def) {
        return Ok(out);
    }
    let bridge = def.bridge.name.as_deref().unwrap_or_default();
    let general = |out: &mut Vec<NftRule>, fam: NftFamily| {
        out.push(NftRule::new(
            fam,
            CHAIN_OUTPUT,
            &["iif", bridge, "counter", "reject"],
        ));
        out.push(NftRule::new(
            fam,
            CHAIN_INPUT,
            &["oif", bridge, "counter", "reject"],
        ));
        out.push(NftRule::new(
            fam,
            CHAIN_CROSS,
            &["iif", bridge, "oif", bridge, "counter", "accept"],
        ));
    };
    general(&mut out, NftFamily::Ip);
    if def.ips.iter().any(IpDef::is_ipv6) || def.ipv6_no_gateway {
        general(&mut out, NftFamily::Ip6);
    }
    let forward = def.forward.as_ref();
    let physdev = forward.and_then(|f| match f.interfaces.first() {
        Some(i) => match &i.device {
            ForwardDevice::Netdev(d) if !d.is_empty() => Some(d.as_str()),
            _ => None,
        },
        None => None,
    });
    let mode = def.forward_mode();
    for ip in &def.ips {
        let nat_this = mode == Some(ForwardMode::Nat)
            && (ip.is_ipv4() || forward.and_then(|f| f.nat.ipv6) == Some(true));
        let route_this = mode == Some(ForwardMode::Route)
            || (mode == Some(ForwardMode::Nat) && ip.is_ipv6() && !nat_this);
        if nat_this {
            masquerade_rules(&mut out, def, ip, bridge, physdev)?;
        } else if route_this {
            routing_rules(&mut out, ip, bridge, physdev)?;
        }
    }
    Ok(out)
}

fn allow_out(ip: &IpDef, bridge: &str, physdev: Option<&str>) -> Result<NftRule, FirewallError> {
    let fam = NftFamily::of(&ip.address);
    let net = network_str(ip, bridge)?;
    let mut r = NftRule::new(
        fam,
        CHAIN_OUTPUT,
        &[fam.as_str(), "saddr", &net, "iif", bridge],
    );
    if let Some(p) = physdev {
        r.push(&["oifname", p]);
    }
    r.push(&["counter", "accept"]);
    Ok(r)
}

fn routing_rules(
    out: &mut Vec<NftRule>,
    ip: &IpDef,
    bridge: &str,
    physdev: Option<&str>,
) -> Result<(), FirewallError> {
    let fam = NftFamily::of(&ip.address);
    let net = network_str(ip, bridge)?;
    out.push(allow_out(ip, bridge, physdev)?);
    let mut r = NftRule::new(fam, CHAIN_INPUT, &[fam.as_str(), "daddr", &net]);
    if let Some(p) = physdev {
        r.push(&["iifname", p]);
    }
    r.push(&["oif", bridge, "counter", "accept"]);
    out.push(r);
    Ok(())
}

fn masquerade_rules(
    out: &mut Vec<NftRule>,
    def: &NetworkDef,
    ip: &IpDef,
    bridge: &str,
    physdev: Option<&str>,
) -> Result<(), FirewallError> {
    let fam = NftFamily::of(&ip.address);
    let f = fam.as_str();
    let net = network_str(ip, bridge)?;
    out.push(allow_out(ip, bridge, physdev)?);
    let mut r = NftRule::new(fam, CHAIN_INPUT, &[]);
    if let Some(p) = physdev {
        r.push(&["iifname", p]);
    }
    r.push(&[
        "oif",
        bridge,
        f,
        "daddr",
        &net,
        "ct",
        "state",
        "related,established",
        "counter",
        "accept",
    ]);
    out.push(r);

    let nat = def
        .forward
        .as_ref()
        .map(|f| f.nat.clone())
        .unwrap_or_default();
    // The SNAT address range applies to IPv4 only.
    let (addr_start, addr_end) = if ip.is_ipv4() {
        (nat.address_start, nat.address_end)
    } else {
        (None, None)
    };
    let masq = |proto: Option<&str>| -> Result<NftRule, FirewallError> {
        let mut r = NftRule::new(fam, CHAIN_NAT, &[]);
        if let Some(p) = proto {
            r.push(&["meta", "l4proto", p]);
        }
        r.push(&[f, "saddr", &net, f, "daddr", "!=", &net]);
        if let Some(p) = physdev {
            r.push(&["oifname", p]);
        }
        let ports = match proto {
            Some(_) => {
                let (mut s, mut e) = (nat.port_start, nat.port_end);
                if s == 0 && e == 0 {
                    (s, e) = (1024, 65535);
                }
                if !(s < e && e < 65536) {
                    return Err(FirewallError::BadPortRange(s, e));
                }
                Some(format!(":{s}-{e}"))
            }
            None => None,
        };
        match addr_start {
            Some(a) => {
                let mut to = a.to_string();
                if let Some(e) = addr_end {
                    to.push('-');
                    to.push_str(&e.to_string());
                }
                to.push_str(ports.as_deref().unwrap_or_default());
                r.push(&["counter", "snat", "to", &to]);
            }
            None => {
                r.push(&["counter", "masquerade"]);
                if let Some(p) = &ports {
                    r.push(&["to", p]);
                }
            }
        }
        Ok(r)
    };
    out.push(masq(None)?);
    out.push(masq(Some("udp"))?);
    out.push(masq(Some("tcp"))?);
    let dont = |dest: &str| {
        let mut r = NftRule::new(fam, CHAIN_NAT, &[]);
        if let Some(p) = physdev {
            r.push(&["oifname", p]);
        }
        r.push(&[f, "saddr", &net, f, "daddr", dest, "counter", "return"]);
        r
    };
    if ip.is_ipv4() {
        out.push(dont("255.255.255.255/32"));
        out.push(dont("224.0.0.0/24"));
    } else {
        out.push(dont("ff02::/16"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ParseFlags;

    fn rules(xml: &str) -> Vec<String> {
        let def = NetworkDef::parse_str(xml, ParseFlags::default()).expect("parses");
        network_rules(&def)
            .expect("rules")
            .iter()
            .map(|r| r.script_line("t"))
            .collect()
    }

    #[test]
    fn routed_with_physdev_and_snat() {
        let r = rules(
            "<network><name>r</name><bridge name='br9'/><forward mode='route' dev='eth0'/>\
             <ip address='10.9.0.1' prefix='24'/></network>",
        );
        assert_eq!(
            r[3],
            "insert rule ip t guest_output ip saddr 10.9.0.0/24 iif \"br9\" oifname \"eth0\" counter accept"
        );
        assert_eq!(
            r[4],
            "insert rule ip t guest_input ip daddr 10.9.0.0/24 iifname \"eth0\" oif \"br9\" counter accept"
        );
        let r = rules(
            "<network><name>n</name><bridge name='br9'/><forward mode='nat'><nat>\
             <address start='1.2.3.4' end='1.2.3.9'/></nat></forward>\
             <ip address='10.9.0.1' prefix='24'/></network>",
        );
        assert_eq!(
            r[5],
            "insert rule ip t guest_nat ip saddr 10.9.0.0/24 ip daddr != 10.9.0.0/24 counter snat to 1.2.3.4-1.2.3.9"
        );
        assert!(r[6].ends_with("snat to 1.2.3.4-1.2.3.9:1024-65535"));
    }

    #[test]
    fn open_has_none_and_base_has_jumps() {
        assert!(rules("<network><name>o</name><bridge name='b'/><forward mode='open'/><ip address='10.0.0.1' prefix='24'/></network>").is_empty());
        let s = base_script(NftFamily::Ip6, "virt_network");
        assert!(s.starts_with("add table ip6 virt_network\nadd chain ip6 virt_network forward {"));
        assert!(s.contains("insert rule ip6 virt_network forward counter jump guest_cross\n"));
    }
}
