//! Virtual network XML (`<network>`): model, parse → post-parse → validate → format.
//!
//! ```text
//!   text ──xml::parse──▶ Element ──parse──▶ NetworkDef ──post_parse──▶ (uuid)
//!        ──validate──▶ Ok ──to_xml──▶ text (virNetworkDefFormat layout)
//! ```
//!
//! - [`def`]: the data types ([`NetworkDef`] and its parts);
//! - `parse`: reading values, as libvirt's `virNetworkDefParseXML`;
//! - `validate`: checks across values (read-only);
//! - `format`: libvirt's element and attribute order and defaults;
//! - [`addr`]: IP/MAC/UUID/PCI values with libvirt's spellings;
//! - [`dnsmasq`], [`firewall`], [`bandwidth`]: what virtnetworkd runs for
//!   a network (the dnsmasq config, the nftables rules, the `tc` commands of
//!   its `<bandwidth>`), pure functions of the definition;
//! - [`update`]: `virNetworkUpdate` section changes; [`port`]: `<networkport>`.

pub mod addr;
pub mod bandwidth;
pub mod def;
pub mod dnsmasq;
pub mod firewall;
mod format;
mod metadata;
mod parse;
pub mod port;
pub mod tc;
pub mod update;
mod validate;

#[cfg(test)]
mod conformance;

pub use def::*;
pub use validate::check_range;

use crate::xml::{self, FormatFlags, Node, ParseFlags, XmlError};

impl NetworkDef {
    /// Parses a `<network>` document: parse → post-parse (a UUID is
    /// generated when missing) → validate.
    ///
    /// # Errors
    /// Malformed XML, a wrong root, a value that does not parse, or a
    /// definition libvirt refuses.
    pub fn parse_str(text: &str, flags: ParseFlags) -> Result<NetworkDef, XmlError> {
        let root = xml::parse(text)?;
        let mut def = NetworkDef::parse(Node::root(&root), flags)?;
        def.post_parse();
        def.validate()?;
        Ok(def)
    }

    /// Reads the model from `<network>` (no defaults, no cross checks).
    /// With `flags.validate`, elements and attributes outside the model
    /// are refused; without it they are ignored. With `flags.inactive`,
    /// live-only data (`connections`) is ignored.
    ///
    /// # Errors
    /// A wrong root, a missing required value, or a value that does not
    /// parse.
    pub fn parse(node: Node<'_>, flags: ParseFlags) -> Result<NetworkDef, XmlError> {
        parse::parse_network(node, flags)
    }

    /// Fills in what libvirt's parser adds: a random UUID when none was
    /// given. (MAC address and bridge name are the driver's business.)
    pub fn post_parse(&mut self) {
        if self.uuid.is_none() {
            self.uuid = Some(Uuid::generate());
        }
    }

    /// Checks the definition as libvirt's parser does (read-only).
    ///
    /// # Errors
    /// The first problem found, with the path of the element concerned.
    pub fn validate(&self) -> Result<(), XmlError> {
        validate::validate(self)
    }

    /// Formats as libvirt's `virNetworkDefFormat`.
    pub fn to_xml(&self, flags: FormatFlags) -> String {
        format::format(self, flags)
    }
}

/// Parses a single DHCP `<host>` element (network update of `ip-dhcp-host`)
/// and checks it against `ip`.
///
/// # Errors
/// The element does not parse, or the host is not valid for `ip`.
pub fn parse_dhcp_host(text: &str, ip: &IpDef, flags: ParseFlags) -> Result<DhcpHost, XmlError> {
    let root = xml::parse(text)?;
    let h = parse::parse_dhcp_host(Node::root(&root), flags)?;
    validate::validate_dhcp_host(&h, ip, "host")?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NetworkDef, XmlError> {
        NetworkDef::parse_str(text, ParseFlags::default())
    }

    fn round(text: &str) -> String {
        parse(text).expect("parses").to_xml(FormatFlags::default())
    }

    #[test]
    fn minimal_isolated_network_gets_uuid_and_bridge_defaults() {
        let d = parse("<network><name>n</name></network>").expect("parses");
        assert!(d.uuid.is_some());
        let out = d.to_xml(FormatFlags::default());
        assert!(out.starts_with("<network>\n  <name>n</name>\n  <uuid>"));
        assert!(out.ends_with("  <bridge stp='on' delay='0'/>\n</network>\n"));
    }

    #[test]
    fn refusals() {
        let bad = [
            "<network/>",
            "<domain><name>x</name></domain>",
            "<network><name>a/b</name></network>",
            "<network><name>x</name><uuid>zz</uuid></network>",
            "<network><name>x</name><ip address='1.2.3.999'/></network>",
            "<network><name>x</name><ip address='10.0.0.1' prefix='33'/></network>",
            "<network><name>x</name><ip address='10.0.0.1' prefix='24' netmask='255.0.0.0'/></network>",
            "<network><name>x</name><ip family='ipv6' address='10.0.0.1'/></network>",
            "<network><name>x</name><ip address='::1'/></network>",
            "<network><name>x</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip></network>",
            "<network><name>x</name><ip address='10.0.0.1' prefix='24'><dhcp><host ip='10.0.0.3'/></dhcp></ip></network>",
            "<network><name>x</name><ip family='ipv6' address='fd00::1' prefix='64'><dhcp><host mac='52:54:00:00:00:01' ip='fd00::3'/></dhcp></ip></network>",
            "<network><name>x</name><ip address='10.0.0.1' prefix='24'><dhcp><host mac='01:54:00:00:00:01' ip='10.0.0.3'/></dhcp></ip></network>",
            "<network><name>x</name><forward mode='nat'/></network>",
            "<network><name>x</name><forward mode='bogus'/></network>",
            "<network><name>x</name><forward mode='bridge'><interface dev='a'/><interface dev='a'/></forward></network>",
            "<network><name>x</name><forward mode='bridge' dev='b'><interface dev='a'/></forward></network>",
            "<network><name>x</name><forward mode='route'><nat/></forward><ip address='10.0.0.1' prefix='8'/></network>",
            "<network><name>x</name><forward mode='vepa'/><bridge name='br0'/></network>",
            "<network><name>x</name><forward mode='bridge'/><bridge name='br0' stp='on'/></network>",
            "<network><name>x</name><forward mode='bridge'/><mtu size='9000'/></network>",
            "<network><name>x</name><dns enable='no'><txt name='a' value='b'/></dns></network>",
            "<network><name>x</name><dns><srv service='a b' protocol='tcp'/></dns></network>",
            "<network><name>x</name><dns><srv service='a' protocol='tcp' port='5'/></dns></network>",
            "<network><name>x</name><dns><host ip='10.0.0.1'/></dns></network>",
            "<network><name>x</name><ip address='10.0.0.1' prefix='24'/><route address='10.1.0.0' prefix='16' gateway='10.2.0.1'/></network>",
            "<network><name>x</name><ip address='10.0.0.1' prefix='24'/><route address='10.1.0.1' prefix='16' gateway='10.0.0.2'/></network>",
            "<network><name>x</name><portgroup name='a' default='yes'/><portgroup name='b' default='yes'/></network>",
            "<network><name>x</name><portgroup name='a'/><portgroup name='a'/></network>",
            "<network><name>x</name><vlan><tag id='5000'/></vlan></network>",
            "<network><name>x</name><virtualport><parameters/></virtualport></network>",
            "<network><name>x</name><virtualport type='802.1Qbh'><parameters managerid='1'/></virtualport></network>",
            "<network><name>x</name><bandwidth><inbound peak='5'/></bandwidth></network>",
            "<network><name>x</name><mac address='01:00:00:00:00:01'/></network>",
        ];
        for b in bad {
            assert!(parse(b).is_err(), "should refuse: {b}");
        }
    }

    #[test]
    fn validate_flag_refuses_unknown() {
        let flags = ParseFlags {
            validate: true,
            ..ParseFlags::default()
        };
        let unknown_el = "<network><name>x</name><bogus/></network>";
        let unknown_attr = "<network><name>x</name><bridge name='b' foo='1'/></network>";
        assert!(parse(unknown_el).is_ok());
        assert!(parse(unknown_attr).is_ok());
        let e = NetworkDef::parse_str(unknown_el, flags).expect_err("refused");
        assert_eq!(e.to_string(), "bogus[1]: not allowed here");
        let e = NetworkDef::parse_str(unknown_attr, flags).expect_err("refused");
        assert_eq!(e.to_string(), "bridge/@foo: not allowed here");
    }

    #[test]
    fn error_names_the_place() {
        let e = parse(
            "<network><name>x</name><ip address='10.0.0.1' prefix='24'/><ip address='10.1.0.1' prefix='24'>\
             <dhcp><range start='10.1.0.2' end='10.1.0.9'/><range start='10.1.0.20' end='10.1.0.10'/></dhcp></ip></network>",
        )
        .expect_err("reversed");
        assert_eq!(
            e.to_string(),
            "ip[2]/dhcp/range[2]: unsupported configuration: range 10.1.0.20 - 10.1.0.10 is reversed"
        );
    }

    #[test]
    fn live_and_inactive() {
        let x = "<network connections='3'><name>x</name><uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid>\
                 <forward mode='bridge'><interface dev='eth0' connections='2'/></forward></network>";
        let d = parse(x).expect("parses");
        let live = d.to_xml(FormatFlags::default());
        assert!(live.starts_with("<network connections='3'>"));
        assert!(live.contains("<interface dev='eth0' connections='2'/>"));
        let inactive = d.to_xml(FormatFlags {
            inactive: true,
            ..FormatFlags::default()
        });
        assert!(inactive.starts_with("<network>"));
        assert!(inactive.contains("<interface dev='eth0'/>"));
        let d = NetworkDef::parse_str(
            x,
            ParseFlags {
                inactive: true,
                ..ParseFlags::default()
            },
        )
        .expect("parses");
        assert_eq!(d.connections, 0);
    }

    #[test]
    fn full_round_trip_is_stable() {
        let x = "<network ipv6='yes' trustGuestRxFilters='yes'>
  <name>full</name>
  <uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid>
  <title>T</title>
  <description>D &amp; d</description>
  <forward dev='eth0' mode='nat'>
    <nat ipv6='no'>
      <address start='1.2.3.4' end='1.2.3.9'/>
      <port start='1024' end='2048'/>
    </nat>
    <interface dev='eth0'/>
  </forward>
  <bridge name='virbr9' zone='z' stp='off' delay='2' macTableManager='libvirt'/>
  <mtu size='9000'/>
  <mac address='52:54:00:00:00:01'/>
  <domain name='example.com' localOnly='yes' register='no'/>
  <dns enable='yes' forwardPlainNames='no'>
    <forwarder domain='a.b' addr='8.8.8.8'/>
    <txt name='t' value='v'/>
    <srv service='s' protocol='udp' domain='d' target='t' port='1' priority='2' weight='3'/>
    <host ip='10.0.0.9'>
      <hostname>h1</hostname>
      <hostname>h2</hostname>
    </host>
  </dns>
  <vlan trunk='yes'>
    <tag id='1' nativeMode='untagged'/>
    <tag id='2'/>
  </vlan>
  <bandwidth>
    <inbound average='1' peak='2' burst='3'/>
  </bandwidth>
  <port isolated='yes'/>
  <ip address='10.0.0.1' prefix='24' localPtr='yes'>
    <tftp root='/srv'/>
    <dhcp>
      <range start='10.0.0.2' end='10.0.0.8'>
        <lease expiry='5' unit='minutes'/>
      </range>
      <host mac='52:54:00:00:00:02' name='h' ip='10.0.0.3'/>
      <bootp file='pxe' server='10.0.0.2'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='fd00::1' prefix='64'>
  </ip>
  <route address='10.9.0.0' prefix='16' gateway='10.0.0.5' metric='2'/>
  <portgroup name='p' default='yes'>
    <vlan>
      <tag id='7'/>
    </vlan>
    <virtualport type='openvswitch'>
      <parameters interfaceid='81ff0d90-c91e-6742-64da-4a736edb9a9c' profileid='prof'/>
    </virtualport>
    <bandwidth>
      <outbound average='9'/>
    </bandwidth>
  </portgroup>
</network>
";
        assert_eq!(round(x), x);
    }
}
