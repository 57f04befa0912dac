//! `domifaddr` (`tools/virsh-domain-monitor.c`): a running domain's
//! interface addresses.
//!
//! libvirt answers `virDomainInterfaceAddresses` in the hypervisor driver;
//! here the lease source (the only one there is) is put together on the
//! client, as the QEMU driver does it: the domain's live XML from
//! virtqemud gives its `<interface type='network'>` NICs (MAC, network,
//! target device), and virtnetworkd's DHCP leases of each network,
//! filtered by the NIC's MAC, give the addresses. A NIC without a lease is
//! left out, as in libvirt.

use proto::domain::v1 as dpb;
use proto::network::v1 as pb;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{BY_ANY, OPT_DOMAIN, opt_domain, string_req, uuid_ref};
use crate::commands::network::{addr_type_str, name_ref};
use crate::ctl::Ctl;
use crate::error::Error;

/// The `domifaddr` command (listed in "Domain Monitoring").
pub const DOMIFADDR: CommandDef = CommandDef::new(
    "domifaddr",
    Group::Monitor,
    "Get network interfaces' addresses for a running domain",
    "Get network interfaces' addresses for a running domain",
    cmd_domifaddr,
)
.opts(&[
    OPT_DOMAIN,
    OptDef::string("interface", "network interface name"),
    OptDef::flag("full", "always display names and MACs of interfaces"),
    OptDef::string("source", "address source: 'lease', 'agent', or 'arp'"),
]);

/// Where the addresses come from (`virDomainInterfaceAddressesSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The DHCP leases of the domain's virtual networks.
    Lease,
    /// The guest agent (not available here).
    Agent,
    /// The host's ARP table (not available here).
    Arp,
}

impl Source {
    /// The source named `s`.
    ///
    /// # Errors
    /// virsh's `Unknown data source 'X'`.
    pub fn parse(s: &str) -> Result<Source, Error> {
        match s {
            "lease" => Ok(Source::Lease),
            "agent" => Ok(Source::Agent),
            "arp" => Ok(Source::Arp),
            _ => Err(Error::msg(format!("Unknown data source '{s}'"))),
        }
    }
}

/// A NIC of the domain on a virtual network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetNic {
    /// The host-side device (`<target dev>`), empty if none.
    pub dev: String,
    /// The MAC address, lower case.
    pub mac: String,
    /// The network's name.
    pub network: String,
}

/// The `<interface type='network'>` NICs of a domain XML, in order.
///
/// # Errors
/// The XML does not parse.
pub fn network_nics(xml: &str) -> Result<Vec<NetNic>, Error> {
    let root = common::xml::parse(xml)
        .map_err(|e| Error::msg(format!("internal error: cannot parse the domain XML: {e}")))?;
    let Some(devices) = root.child("devices") else {
        return Ok(Vec::new());
    };
    let mut nics = Vec::new();
    for iface in devices.children_named("interface") {
        if iface.attr("type") != Some("network") {
            continue;
        }
        let mac = iface.child("mac").and_then(|m| m.attr("address"));
        let network = iface.child("source").and_then(|s| s.attr("network"));
        let (Some(mac), Some(network)) = (mac, network) else {
            continue;
        };
        let dev = iface
            .child("target")
            .and_then(|t| t.attr("dev"))
            .unwrap_or_default();
        nics.push(NetNic {
            dev: dev.to_owned(),
            mac: mac.to_ascii_lowercase(),
            network: network.to_owned(),
        });
    }
    Ok(nics)
}

/// One interface with its addresses (`virDomainInterface`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iface {
    /// The interface name.
    pub name: String,
    /// The MAC address.
    pub hwaddr: String,
    /// `(type, address, prefix)`.
    pub addrs: Vec<(i32, String, u32)>,
}

/// The dashes under the `domifaddr` header.
const DASHES: &str =
    "-------------------------------------------------------------------------------";

/// The `domifaddr` header, as virsh prints it (`vshPrintExtra`).
pub fn header() -> String {
    format!(
        " {:<10} {:<20} {:<8}     {}\n{DASHES}\n",
        "Name", "MAC address", "Protocol", "Address"
    )
}

/// The `domifaddr` lines of `ifaces`: only `interface` when given; the
/// name and MAC only on an interface's first address unless `full`.
pub fn rows(ifaces: &[Iface], interface: Option<&str>, full: bool) -> String {
    let mut out = String::new();
    for iface in ifaces {
        if interface.is_some_and(|i| i != iface.name) {
            continue;
        }
        let hwaddr = if iface.hwaddr.is_empty() {
            "N/A"
        } else {
            iface.hwaddr.as_str()
        };
        if iface.addrs.is_empty() {
            out.push_str(&format!(
                " {:<10} {:<17}    {:<12} {}\n",
                iface.name, hwaddr, "N/A", "N/A"
            ));
            continue;
        }
        for (j, (ty, addr, prefix)) in iface.addrs.iter().enumerate() {
            let ip = format!("{:<12} {addr}/{prefix}", addr_type_str(*ty));
            if full || j == 0 {
                out.push_str(&format!(
                    " {:<10} {:<17}    {ip}\n",
                    iface.name, iface.hwaddr
                ));
            } else {
                out.push_str(&format!(" {:<10} {:<17}    {ip}\n", "-", "-"));
            }
        }
    }
    out
}

/// The interfaces of a running domain from its leases (libvirt's
/// `qemuGetDHCPInterfaces`): for every NIC on a virtual network, the
/// network's leases for its MAC.
async fn lease_ifaces(ctl: &mut Ctl, d: &dpb::Domain) -> Result<Vec<Iface>, Error> {
    let mut dom = ctl.domain().await?;
    let req = dpb::GetXmlRequest {
        domain: Some(uuid_ref(d)),
        ..Default::default()
    };
    let xml = dom.get_xml(req).await?.into_inner().xml;
    let nics = network_nics(&xml)?;
    let mut net = ctl.network().await?;
    let mut ifaces = Vec::new();
    for nic in nics {
        let req = pb::GetDhcpLeasesRequest {
            network: Some(name_ref(&nic.network)),
            mac: Some(nic.mac.clone()),
        };
        let leases = net.get_dhcp_leases(req).await?.into_inner().leases;
        if leases.is_empty() {
            continue;
        }
        ifaces.push(Iface {
            name: if nic.dev.is_empty() {
                "-".to_owned()
            } else {
                nic.dev
            },
            hwaddr: nic.mac,
            addrs: leases
                .into_iter()
                .map(|l| (l.r#type, l.ipaddr, l.prefix))
                .collect(),
        });
    }
    Ok(ifaces)
}

/// `domifaddr DOMAIN [--interface NAME] [--full] [--source lease]`.
fn cmd_domifaddr<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let interface = string_req(inv, "interface")?;
        let source = match string_req(inv, "source")? {
            Some(s) => Source::parse(s)?,
            None => Source::Lease,
        };
        let full = inv.flag("full");
        let (_, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let failed = |e: Error| Error::context("Failed to query for interfaces addresses", Some(e));
        let ifaces = match source {
            Source::Agent | Source::Arp => {
                let name = if source == Source::Agent {
                    "agent"
                } else {
                    "arp"
                };
                return Err(failed(Error::msg(format!(
                    "Operation not supported: address source '{name}' is not supported"
                ))));
            }
            Source::Lease if d.id < 0 => {
                return Err(failed(Error::msg(
                    "Requested operation is not valid: domain is not running",
                )));
            }
            Source::Lease => lease_ifaces(ctl, &d).await.map_err(failed)?,
        };
        let mut text = String::new();
        if !ctl.settings.quiet {
            text.push_str(&header());
        }
        text.push_str(&rows(&ifaces, interface, full));
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}
