//! Network ports (`<networkport>`), after libvirt's `virNetworkPortDef`:
//! what a guest NIC gets from a network. The client (virtqemud) gives the
//! owner (domain name and UUID), the MAC address and optionally a
//! portgroup and bandwidth; the network fills in the `<plug>` (which
//! bridge to attach the tap to) and the bandwidth of the portgroup.
//!
//! ```xml
//! <networkport>
//!   <uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>
//!   <owner>
//!     <name>guest</name>
//!     <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
//!   </owner>
//!   <mac address='52:54:00:7b:35:93'/>
//!   <bandwidth>
//!     <inbound average='1000'/>
//!   </bandwidth>
//!   <plug type='network' bridge='virbr0' macTableManager='kernel'/>
//! </networkport>
//! ```
//!
//! `<virtualport>` and `<vlan>` are kept as written (they pass through
//! to the NIC unchanged); bandwidth is typed because its values are the
//! port's tunables (`inbound.average`, ...).

use crate::xml::{self, Element, Node, ParseFlags, XmlError};

use super::addr::{MacAddr, Uuid};
use super::def::{Bandwidth, MacTableManager, Rate};
use super::parse::parse_bandwidth;

/// How the port is plugged into the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Plug {
    /// Not plugged (as given by a client, before the network fills it).
    #[default]
    None,
    /// Into the network's own (libvirt-managed) bridge.
    Network {
        /// The bridge.
        bridge: String,
        /// Who manages its forwarding table.
        mac_table_manager: MacTableManager,
    },
    /// Into an existing host bridge (`<forward mode='bridge'>`).
    Bridge {
        /// The bridge.
        bridge: String,
        /// Who manages its forwarding table.
        mac_table_manager: MacTableManager,
    },
    /// macvtap on a host device.
    Direct {
        /// The device.
        dev: String,
        /// The macvtap mode (`bridge`, `vepa`, `private`, `passthrough`).
        mode: String,
    },
}

/// A network port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortDef {
    /// `<uuid>` (generated when missing).
    pub uuid: Uuid,
    /// `<owner><name>`: the domain.
    pub owner_name: String,
    /// `<owner><uuid>`.
    pub owner_uuid: Uuid,
    /// `<group>`: the portgroup.
    pub group: Option<String>,
    /// `<mac address=>`.
    pub mac: MacAddr,
    /// `<virtualport>` as written.
    pub virtualport: Option<Element>,
    /// `<bandwidth>`.
    pub bandwidth: Option<Bandwidth>,
    /// `<bandwidth classID=>` (set by the network for QoS floors).
    pub class_id: Option<u32>,
    /// `<vlan>` as written.
    pub vlan: Option<Element>,
    /// `<port isolated=>`.
    pub isolated: Option<bool>,
    /// `<rxfilters trust=>`.
    pub trust_guest_rx_filters: Option<bool>,
    /// `<plug>`.
    pub plug: Plug,
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl PortDef {
    /// Parses a `<networkport>` document, as `virNetworkPortDefParseString`.
    ///
    /// # Errors
    /// Malformed XML, a wrong root, a missing owner or MAC, or a value that
    /// does not parse.
    pub fn parse_str(text: &str, flags: ParseFlags) -> Result<PortDef, XmlError> {
        let root = xml::parse(text)?;
        let n = Node::root(&root);
        if root.name != "networkport" {
            return Err(XmlError::new(
                "",
                xml::XmlErrorKind::WrongRoot {
                    expected: "networkport".into(),
                    found: root.name.clone(),
                },
            ));
        }
        if flags.validate {
            n.check_children(&[
                "uuid",
                "owner",
                "group",
                "mac",
                "virtualport",
                "bandwidth",
                "vlan",
                "port",
                "rxfilters",
                "plug",
            ])?;
        }
        let uuid = match n.child("uuid") {
            Some(u) => {
                let t = u.text();
                Uuid::parse(t.trim()).ok_or_else(|| {
                    XmlError::bad_value(u.path(), t.clone(), "unable to parse uuid")
                })?
            }
            None => Uuid::generate(),
        };
        let owner = n
            .child("owner")
            .ok_or_else(|| XmlError::invalid("owner", "network port has no owner"))?;
        let owner_name = owner
            .child("name")
            .map(|c| c.text())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| XmlError::invalid("owner/name", "network port has no owner name"))?;
        let ou = owner
            .child("uuid")
            .ok_or_else(|| XmlError::invalid("owner/uuid", "network port has no owner UUID"))?;
        let ou_text = ou.text();
        let owner_uuid = Uuid::parse(ou_text.trim()).ok_or_else(|| {
            XmlError::bad_value(ou.path(), ou_text.clone(), "unable to parse UUID")
        })?;
        let group = n.child("group").map(|g| g.text()).filter(|s| !s.is_empty());
        let mac_node = n
            .child("mac")
            .ok_or_else(|| XmlError::invalid("mac", "network port has no mac"))?;
        let mac_text = mac_node.required_attr("address")?;
        let mac = MacAddr::parse(mac_text).ok_or_else(|| {
            XmlError::bad_value(
                mac_node.attr_path("address"),
                mac_text,
                "unable to parse MAC",
            )
        })?;
        let (bandwidth, class_id) = match n.child("bandwidth") {
            Some(b) => {
                let class_id = b.uint_attr::<u32>("classID")?;
                (parse_bandwidth(b.node(), flags)?, class_id)
            }
            None => (None, None),
        };
        let isolated = match n.child("port") {
            Some(p) => p.yes_no_attr("isolated")?,
            None => None,
        };
        let trust_guest_rx_filters = match n.child("rxfilters") {
            Some(r) => r.yes_no_attr("trust")?,
            None => None,
        };
        let plug = match n.child("plug") {
            None => Plug::None,
            Some(p) => {
                let mtm = || -> Result<MacTableManager, XmlError> {
                    Ok(p.parse_attr::<MacTableManager>("macTableManager")?
                        .unwrap_or(MacTableManager::Kernel))
                };
                match p.attr("type") {
                    None | Some("none") => Plug::None,
                    Some("network") => Plug::Network {
                        bridge: p.required_attr("bridge")?.to_owned(),
                        mac_table_manager: mtm()?,
                    },
                    Some("bridge") => Plug::Bridge {
                        bridge: p.required_attr("bridge")?.to_owned(),
                        mac_table_manager: mtm()?,
                    },
                    Some("direct") => Plug::Direct {
                        dev: p.required_attr("dev")?.to_owned(),
                        mode: p.attr("mode").unwrap_or("vepa").to_owned(),
                    },
                    Some(t) => {
                        return Err(XmlError::bad_value(
                            p.attr_path("type"),
                            t,
                            "unsupported plug type",
                        ));
                    }
                }
            }
        };
        Ok(PortDef {
            uuid,
            owner_name,
            owner_uuid,
            group,
            mac,
            virtualport: n.child("virtualport").map(|v| v.el.clone()),
            bandwidth,
            class_id,
            vlan: n.child("vlan").map(|v| v.el.clone()),
            isolated,
            trust_guest_rx_filters,
            plug,
        })
    }

    /// Formats as libvirt's `virNetworkPortDefFormat`.
    pub fn to_xml(&self) -> String {
        let mut root = Element::open("networkport");
        root.push(Element::text_element("uuid", self.uuid.to_string()));
        root.push(
            Element::open("owner")
                .with_child(Element::text_element("name", self.owner_name.as_str()))
                .with_child(Element::text_element("uuid", self.owner_uuid.to_string())),
        );
        if let Some(g) = &self.group {
            root.push(Element::text_element("group", g.as_str()));
        }
        root.push(Element::new("mac").with_attr("address", self.mac));
        root.push_opt(self.virtualport.clone());
        if let Some(bw) = &self.bandwidth {
            let mut e = format_bandwidth(bw);
            e.set_opt_attr("classID", self.class_id);
            root.push(e);
        }
        root.push_opt(self.vlan.clone());
        if let Some(i) = self.isolated {
            root.push(Element::new("port").with_attr("isolated", yes_no(i)));
        }
        if let Some(t) = self.trust_guest_rx_filters {
            root.push(Element::new("rxfilters").with_attr("trust", yes_no(t)));
        }
        match &self.plug {
            Plug::None => {}
            Plug::Network {
                bridge,
                mac_table_manager,
            } => root.push(
                Element::new("plug")
                    .with_attr("type", "network")
                    .with_attr("bridge", bridge)
                    .with_attr("macTableManager", mac_table_manager),
            ),
            Plug::Bridge {
                bridge,
                mac_table_manager,
            } => root.push(
                Element::new("plug")
                    .with_attr("type", "bridge")
                    .with_attr("bridge", bridge)
                    .with_attr("macTableManager", mac_table_manager),
            ),
            Plug::Direct { dev, mode } => root.push(
                Element::new("plug")
                    .with_attr("type", "direct")
                    .with_attr("dev", dev)
                    .with_attr("mode", mode),
            ),
        }
        root.to_xml()
    }

    /// The bridge the port plugs into, if it plugs into one.
    pub fn bridge(&self) -> Option<&str> {
        match &self.plug {
            Plug::Network { bridge, .. } | Plug::Bridge { bridge, .. } => Some(bridge),
            _ => None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: &str = "<networkport>
  <uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>
  <owner>
    <name>guest</name>
    <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  </owner>
  <group>web</group>
  <mac address='52:54:00:7b:35:93'/>
  <bandwidth classID='3'>
    <inbound average='1000' peak='2000' burst='64'/>
  </bandwidth>
  <rxfilters trust='yes'/>
  <plug type='network' bridge='virbr0' macTableManager='kernel'/>
</networkport>
";

    #[test]
    fn round_trip() {
        let p = PortDef::parse_str(PORT, ParseFlags::default()).expect("parses");
        assert_eq!(p.bridge(), Some("virbr0"));
        assert_eq!(p.to_xml(), PORT);
    }

    #[test]
    fn refusals_and_defaults() {
        let e = PortDef::parse_str(
            "<networkport><mac address='52:54:00:00:00:01'/></networkport>",
            ParseFlags::default(),
        )
        .expect_err("no owner");
        assert!(e.to_string().contains("no owner"), "{e}");
        let p = PortDef::parse_str(
            "<networkport><owner><name>g</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>\
             <mac address='52:54:00:00:00:01'/></networkport>",
            ParseFlags::default(),
        )
        .expect("parses");
        assert_eq!(p.plug, Plug::None);
        assert!(p.to_xml().contains("<uuid>"));
    }
}
