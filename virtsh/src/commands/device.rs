//! Device commands (`tools/virsh-domain.c`, `tools/virsh-domain-monitor.c`):
//! `attach-device`, `detach-device`, `detach-device-alias`,
//! `update-device`, `attach-disk`, `detach-disk`, `attach-interface`,
//! `detach-interface`, `change-media` ("Domain Management"), and
//! `domblklist`, `domiflist` ("Domain Monitoring").
//!
//! The `--persistent`, `--config`, `--live` and `--current` options map
//! onto [`pb::DeviceModifyFlags`] as virsh maps them onto
//! `VIR_DOMAIN_AFFECT_*` ([`Affect`]): `--config` and `--persistent` set
//! `config`, `--live` sets `live`, `--persistent` also sets `live` when the
//! domain is running, and none of them is `--current` (neither flag).
//!
//! `attach-disk` and `attach-interface` build the device XML from their
//! options, as virsh writes it; `detach-disk`, `detach-interface` and
//! `change-media` take the element out of the domain's XML (`GetXml`) and
//! send it as libxml2 would dump it ([`xmldoc`]). With `--print-xml` the
//! XML is printed instead of sent.

mod xmldoc;

use proto::domain::v1 as pb;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{
    BY_ANY, Client, OPT_DOMAIN, exclusive, opt_domain, print_extra, read_xml_file, string_req,
    uuid_ref,
};
use crate::ctl::Ctl;
use crate::error::Error;
use crate::table::Table;

use self::xmldoc::Elem;

const OPT_PERSISTENT: OptDef = OptDef::flag("persistent", "make live change persistent");
const OPT_CONFIG: OptDef = OptDef::flag("config", "affect next boot");
const OPT_LIVE: OptDef = OptDef::flag("live", "affect running domain");
const OPT_CURRENT: OptDef = OptDef::flag("current", "affect current domain");
const OPT_FILE: OptDef = OptDef::string("file", "XML file").required().positional();
const OPT_INACTIVE: OptDef =
    OptDef::flag("inactive", "get inactive rather than running configuration");

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "attach-device",
        Group::Domain,
        "attach device from an XML file",
        "Attach device from an XML <file>.",
        cmd_attach_device,
    )
    .opts(&[
        OPT_DOMAIN,
        OPT_FILE,
        OPT_PERSISTENT,
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
    ]),
    CommandDef::new(
        "attach-disk",
        Group::Domain,
        "attach disk device",
        "Attach new disk device.",
        cmd_attach_disk,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::string("source", "source of disk device or name of network disk")
            .required()
            .positional(),
        OptDef::string("target", "target of disk device")
            .required()
            .positional(),
        OptDef::string("targetbus", "target bus of disk device"),
        OptDef::string("driver", "driver of disk device"),
        OptDef::string("subdriver", "subdriver of disk device"),
        OptDef::string("iothread", "IOThread to be used by supported device"),
        OptDef::string("cache", "cache mode of disk device"),
        OptDef::string("io", "io policy of disk device"),
        OptDef::string("type", "target device type"),
        OptDef::string("mode", "mode of device reading and writing")
            .aliases(&["shareable=shareable"]),
        OptDef::string("sourcetype", "type of source (block|file|network)"),
        OptDef::string("serial", "serial of disk device"),
        OptDef::string("wwn", "wwn of disk device"),
        OptDef::string("alias", "custom alias name of disk device"),
        OptDef::flag("rawio", "needs rawio capability"),
        OptDef::string("address", "address of disk device"),
        OptDef::flag(
            "multifunction",
            "use multifunction pci under specified address",
        ),
        OptDef::flag(
            "print-xml",
            "print XML document rather than attach the disk",
        ),
        OptDef::string("source-protocol", "protocol used by disk device source"),
        OptDef::string("source-host-name", "host name for source of disk device"),
        OptDef::string(
            "source-host-transport",
            "host transport for source of disk device",
        ),
        OptDef::string("source-host-socket", "host socket for source of disk device"),
        OPT_PERSISTENT,
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
    ]),
    CommandDef::new(
        "attach-interface",
        Group::Domain,
        "attach network interface",
        "Attach new network interface.",
        cmd_attach_interface,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::string("type", "network interface type")
            .required()
            .positional(),
        OptDef::string("source", "source of network interface")
            .required()
            .positional(),
        OptDef::string("target", "target network name"),
        OptDef::string("mac", "MAC address"),
        OptDef::string("script", "script used to bridge network interface"),
        OptDef::string("model", "model type"),
        OptDef::string("alias", "custom alias name of interface device"),
        OptDef::string("inbound", "control domain's incoming traffics"),
        OptDef::string("outbound", "control domain's outgoing traffics"),
        OPT_PERSISTENT,
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
        OptDef::flag(
            "print-xml",
            "print XML document rather than attach the interface",
        ),
        OptDef::flag(
            "managed",
            "libvirt will automatically detach/attach the device from/to host",
        ),
        OptDef::string("source-mode", "mode attribute of <source/> element"),
    ]),
    CommandDef::new(
        "detach-device",
        Group::Domain,
        "detach device from an XML file",
        "Detach device from an XML <file>",
        cmd_detach_device,
    )
    .opts(&[
        OPT_DOMAIN,
        OPT_FILE,
        OPT_PERSISTENT,
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
    ]),
    CommandDef::new(
        "detach-device-alias",
        Group::Domain,
        "detach device from an alias",
        "Detach device identified by the given alias from a domain",
        cmd_detach_device_alias,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::string("alias", "device alias")
            .required()
            .positional(),
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
    ]),
    CommandDef::new(
        "update-device",
        Group::Domain,
        "update device from an XML file",
        "Update device from an XML <file>.",
        cmd_update_device,
    )
    .opts(&[
        OPT_DOMAIN,
        OPT_FILE,
        OPT_PERSISTENT,
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
        OptDef::flag("force", "force device update"),
    ]),
    CommandDef::new(
        "detach-interface",
        Group::Domain,
        "detach network interface",
        "Detach network interface.",
        cmd_detach_interface,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::string("type", "network interface type")
            .required()
            .positional(),
        OptDef::string("mac", "MAC address"),
        OPT_PERSISTENT,
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
        OptDef::flag(
            "print-xml",
            "print XML document rather than detach the interface",
        ),
    ]),
    CommandDef::new(
        "detach-disk",
        Group::Domain,
        "detach disk device",
        "Detach disk device.",
        cmd_detach_disk,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::string("target", "target of disk device")
            .required()
            .positional(),
        OPT_PERSISTENT,
        OPT_CONFIG,
        OPT_LIVE,
        OPT_CURRENT,
        OptDef::flag(
            "print-xml",
            "print XML document rather than detach the disk",
        ),
    ]),
    CommandDef::new(
        "change-media",
        Group::Domain,
        "Change media of CD or floppy drive",
        "Change media of CD or floppy drive.",
        cmd_change_media,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::string("path", "Fully-qualified path or target of disk device")
            .required()
            .positional(),
        OptDef::string("source", "source of the media").positional(),
        OptDef::flag("eject", "Eject the media"),
        OptDef::flag("insert", "Insert the media"),
        OptDef::flag("update", "Update the media"),
        OptDef::flag(
            "current",
            "can be either or both of --live and --config, depends on implementation hypervisor driver",
        ),
        OptDef::flag("live", "alter live configuration of running domain"),
        OptDef::flag(
            "config",
            "alter persistent configuration, effect observed on next boot",
        ),
        OptDef::flag("force", "force media changing"),
        OptDef::flag(
            "print-xml",
            "print XML document rather than change media",
        ),
        OptDef::flag("block", "source media is a block device"),
    ]),
    CommandDef::new(
        "domblklist",
        Group::Monitor,
        "list all domain blocks",
        "Get the summary of block devices for a domain.",
        cmd_domblklist,
    )
    .opts(&[
        OPT_DOMAIN,
        OPT_INACTIVE,
        OptDef::flag("details", "additionally display the type and device value"),
    ]),
    CommandDef::new(
        "domiflist",
        Group::Monitor,
        "list all domain virtual interfaces",
        "Get the summary of virtual interfaces for a domain.",
        cmd_domiflist,
    )
    .opts(&[OPT_DOMAIN, OPT_INACTIVE]),
];

// ---- Flags ----

/// The `--persistent`/`--config`/`--live`/`--current` options of a device
/// command, checked as virsh checks them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Affect {
    /// `--persistent`: config, and live when the domain runs.
    pub persistent: bool,
    /// `--config`.
    pub config: bool,
    /// `--live`.
    pub live: bool,
    /// `--current`.
    pub current: bool,
}

impl Affect {
    /// The options of `inv`; `with_persistent` for the commands that have
    /// `--persistent`.
    ///
    /// # Errors
    /// virsh's `Options --persistent and --current are mutually exclusive`,
    /// and the same for `--current` with `--live` or `--config`.
    pub fn of(inv: &Invocation, with_persistent: bool) -> Result<Affect, Error> {
        if with_persistent {
            exclusive(inv, "persistent", "current")?;
        }
        exclusive(inv, "current", "live")?;
        exclusive(inv, "current", "config")?;
        Ok(Affect {
            persistent: with_persistent && inv.flag("persistent"),
            config: inv.flag("config"),
            live: inv.flag("live"),
            current: inv.flag("current"),
        })
    }

    /// The flags sent for a domain that is running (`active`) or not.
    pub fn flags(self, active: bool) -> pb::DeviceModifyFlags {
        pb::DeviceModifyFlags {
            live: self.live || (self.persistent && active),
            config: self.config || self.persistent,
            force: false,
        }
    }

    /// The flags virsh has before it looks at the domain's state
    /// (`--persistent` counts as config only).
    pub fn initial(self) -> pb::DeviceModifyFlags {
        self.flags(false)
    }
}

/// Errors as virsh prints them: its own lines at once, in order, then
/// the library's error (`last`) when the command ends.
fn errors(lines: &[&str], last: Option<Error>) -> Error {
    let mut e = last;
    for l in lines.iter().rev() {
        e = Some(Error::context(*l, e));
    }
    e.unwrap_or(Error::Silent)
}

/// Which RPC a device XML goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Attach,
    Detach,
    Update,
}

/// Sends `xml` to the domain with `op`.
async fn send(
    client: &mut Client,
    op: Op,
    d: &pb::Domain,
    xml: String,
    flags: pb::DeviceModifyFlags,
) -> Result<(), Error> {
    let domain = Some(uuid_ref(d));
    let flags = Some(flags);
    let r = match op {
        Op::Attach => client
            .attach_device(pb::AttachDeviceRequest { domain, xml, flags })
            .await
            .map(|_| ()),
        Op::Detach => client
            .detach_device(pb::DetachDeviceRequest { domain, xml, flags })
            .await
            .map(|_| ()),
        Op::Update => client
            .update_device(pb::UpdateDeviceRequest { domain, xml, flags })
            .await
            .map(|_| ()),
    };
    r.map_err(Error::from)
}

/// The domain's XML, live or inactive.
async fn domain_xml(client: &mut Client, d: &pb::Domain, inactive: bool) -> Result<String, Error> {
    let req = pb::GetXmlRequest {
        domain: Some(uuid_ref(d)),
        inactive,
        ..Default::default()
    };
    Ok(client.get_xml(req).await?.into_inner().xml)
}

// ---- attach-device, detach-device, update-device, detach-device-alias ----

/// `attach-device`, `detach-device` and `update-device`: the device XML
/// of `--file` sent with `op`.
async fn device_from_file(ctl: &mut Ctl, inv: &Invocation, op: Op) -> Result<(), Error> {
    let affect = Affect::of(inv, true)?;
    let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
    let file = string_req(inv, "file")?.unwrap_or_default();
    let mut flags = affect.flags(d.id >= 0);
    let xml = read_xml_file(file)?;
    if op == Op::Update {
        flags.force = inv.flag("force");
    }
    let (failed, done) = match op {
        Op::Attach => (
            "Failed to attach device from",
            "Device attached successfully",
        ),
        Op::Detach => (
            "Failed to detach device from",
            "Device detached successfully",
        ),
        Op::Update => (
            "Failed to update device from",
            "Device updated successfully",
        ),
    };
    send(&mut client, op, &d, xml, flags)
        .await
        .map_err(|e| Error::context(format!("{failed} {file}"), Some(e)))?;
    print_extra(ctl, done)
}

/// `attach-device DOMAIN FILE [--persistent] [--config] [--live] [--current]`.
fn cmd_attach_device<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(device_from_file(ctl, inv, Op::Attach))
}

/// `detach-device DOMAIN FILE [--persistent] [--config] [--live] [--current]`.
fn cmd_detach_device<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(device_from_file(ctl, inv, Op::Detach))
}

/// `update-device DOMAIN FILE [--persistent] [--config] [--live] [--current] [--force]`.
fn cmd_update_device<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(device_from_file(ctl, inv, Op::Update))
}

/// `detach-device-alias DOMAIN ALIAS [--config] [--live] [--current]`.
fn cmd_detach_device_alias<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let affect = Affect::of(inv, false)?;
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let alias = string_req(inv, "alias")?.unwrap_or_default();
        let req = pb::DetachDeviceAliasRequest {
            domain: Some(uuid_ref(&d)),
            alias: alias.to_owned(),
            flags: Some(affect.initial()),
        };
        client.detach_device_alias(req).await.map_err(|s| {
            Error::context(
                format!("Failed to detach device with alias {alias}"),
                Some(s.into()),
            )
        })?;
        print_extra(ctl, "Device detach request sent successfully")
    })
}

// ---- Building XML as virsh does ----

/// libvirt's `virBufferEscapeString` of an attribute or text value: as it
/// is unless it holds a character to escape; then the five XML specials
/// become entities and control characters other than tab, newline and
/// carriage return are dropped.
pub fn escape(s: &str) -> String {
    const FORBIDDEN: &[u8] = b"\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\"&'<>";
    if !s.bytes().any(|b| FORBIDDEN.contains(&b)) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// ` name='value'` (escaped) when `value` is given.
fn esc_attr(out: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.push_str(&format!(" {name}='{}'", escape(v)));
    }
}

/// libvirt's `virXMLFormatElement`: `<name attrs/>`, or with children
/// `<name attrs>` + children + `</name>`, at `indent`; nothing when both
/// are empty.
fn format_element(out: &mut String, indent: usize, name: &str, attrs: &str, children: &str) {
    if attrs.is_empty() && children.is_empty() {
        return;
    }
    let pad = " ".repeat(indent);
    out.push_str(&format!("{pad}<{name}{attrs}"));
    if children.is_empty() {
        out.push_str("/>\n");
    } else {
        out.push_str(">\n");
        out.push_str(children);
        out.push_str(&format!("{pad}</{name}>\n"));
    }
}

/// C's `strtoul` as libvirt's `virStrToLong_*p` use it: leading blanks,
/// an optional `+`, the base's digits (base 16 takes `0x`, base 0 picks
/// the base from the prefix); a `-`, no digits or an overflow are
/// refused. Returns the value and the rest of the string.
pub fn strtoul(s: &str, base: u32) -> Option<(u64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.starts_with('-') {
        return None;
    }
    let has_hex_prefix = |t: &str| {
        (t.starts_with("0x") || t.starts_with("0X"))
            && t[2..].starts_with(|c: char| c.is_ascii_hexdigit())
    };
    let (base, digits) = match base {
        16 if has_hex_prefix(t) => (16, &t[2..]),
        0 if has_hex_prefix(t) => (16, &t[2..]),
        0 if t.starts_with('0') => (8, t),
        0 => (10, t),
        b => (b, t),
    };
    let n = digits
        .find(|c: char| !c.is_digit(base))
        .unwrap_or(digits.len());
    if n == 0 {
        return None;
    }
    let v = u64::from_str_radix(&digits[..n], base).ok()?;
    Some((v, &digits[n..]))
}

/// `virStrToLong_uip`/`_ullp` with no rest allowed.
fn strtoul_all(s: &str, base: u32) -> Option<u64> {
    match strtoul(s, base)? {
        (v, "") => Some(v),
        _ => None,
    }
}

/// A device address of `attach-disk --address` (and of `attach-interface
/// hostdev`'s source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address {
    /// `pci:DOMAIN.BUS.SLOT.FUNCTION` (hex).
    Pci {
        /// PCI domain.
        domain: u32,
        /// Bus.
        bus: u32,
        /// Slot.
        slot: u32,
        /// Function.
        function: u32,
        /// `--multifunction`.
        multifunction: bool,
    },
    /// `scsi:`, `ide:` or `sata:CONTROLLER.BUS.UNIT` (decimal).
    Drive {
        /// `scsi`, `ide` or `sata`.
        kind: &'static str,
        /// Controller.
        controller: u32,
        /// Bus.
        bus: u32,
        /// Unit.
        unit: u64,
    },
    /// `ccw:CSSID.SSID.DEVNO` (hex).
    Ccw {
        /// Channel subsystem id.
        cssid: u32,
        /// Subchannel set id.
        ssid: u32,
        /// Device number.
        devno: u32,
    },
    /// `usb:BUS.PORT` (decimal).
    Usb {
        /// Bus.
        bus: u32,
        /// Port.
        port: u32,
    },
}

/// Parses virsh's address syntax (`virshAddressParse`): a type, `:`, then
/// numbers each followed by one separator character of any kind.
pub fn parse_address(s: &str, multifunction: bool) -> Option<Address> {
    let (kind, mut rest) = s.split_once(':')?;
    let mut first = true;
    let mut next = |base: u32, max: u64| -> Option<u64> {
        if !first {
            // Skip the separator after the previous number.
            let mut chars = rest.chars();
            chars.next()?;
            rest = chars.as_str();
        }
        first = false;
        let (v, r) = strtoul(rest, base)?;
        rest = r;
        (v <= max).then_some(v)
    };
    let u32max = u64::from(u32::MAX);
    let narrow = |v: u64| u32::try_from(v).ok();
    Some(match kind {
        "pci" => Address::Pci {
            domain: narrow(next(16, u32max)?)?,
            bus: narrow(next(16, u32max)?)?,
            slot: narrow(next(16, u32max)?)?,
            function: narrow(next(16, u32max)?)?,
            multifunction,
        },
        "scsi" | "ide" | "sata" => Address::Drive {
            kind: match kind {
                "scsi" => "scsi",
                "ide" => "ide",
                _ => "sata",
            },
            controller: narrow(next(10, u32max)?)?,
            bus: narrow(next(10, u32max)?)?,
            unit: next(10, u64::MAX)?,
        },
        "ccw" => Address::Ccw {
            cssid: narrow(next(16, u32max)?)?,
            ssid: narrow(next(16, u32max)?)?,
            devno: narrow(next(16, u32max)?)?,
        },
        "usb" => Address::Usb {
            bus: narrow(next(10, u32max)?)?,
            port: narrow(next(10, u32max)?)?,
        },
        _ => return None,
    })
}

impl Address {
    /// The `<address .../>` line virsh writes for it (with newline).
    pub fn xml(&self) -> String {
        match *self {
            Address::Pci {
                domain,
                bus,
                slot,
                function,
                multifunction,
            } => format!(
                "<address type='pci' domain='0x{domain:04x}' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x{function:x}'{}/>\n",
                if multifunction {
                    " multifunction='on'"
                } else {
                    ""
                }
            ),
            Address::Drive {
                controller,
                bus,
                unit,
                ..
            } => format!(
                "<address type='drive' controller='{controller}' bus='{bus}' unit='{unit}'/>\n"
            ),
            Address::Ccw { cssid, ssid, devno } => format!(
                "<address type='ccw' cssid='0x{cssid:02x}' ssid='0x{ssid:x}' devno='0x{devno:04x}'/>\n"
            ),
            Address::Usb { bus, port } => {
                format!("<address type='usb' bus='{bus}' port='{port}'/>\n")
            }
        }
    }
}

/// libvirt's `virValidateWWN`: 16 hex digits, optionally after `0x`.
fn valid_wwn(wwn: &str) -> bool {
    let p = wwn.strip_prefix("0x").unwrap_or(wwn);
    p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit())
}

/// virsh's `Option --B is required by option --A` check.
fn require(inv: &Invocation, a: &str, b: &str) -> Result<(), Error> {
    if inv.is_set(a) && !inv.is_set(b) {
        return Err(Error::msg(format!(
            "Option --{b} is required by option --{a}"
        )));
    }
    Ok(())
}

/// Whether `path` names a block device.
fn is_block_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// The `<disk>` XML of `attach-disk`'s options, with the option checks
/// virsh makes before it (those after the flag checks).
///
/// # Errors
/// virsh's messages for bad option values.
pub fn attach_disk_xml(inv: &Invocation) -> Result<String, Error> {
    for (a, b) in [
        ("source-host-name", "source-protocol"),
        ("source-host-transport", "source-protocol"),
        ("source-host-socket", "source-protocol"),
        ("source-host-socket", "source-host-transport"),
    ] {
        require(inv, a, b)?;
    }
    exclusive(inv, "source-host-name", "source-host-socket")?;
    // `source` may be empty (an empty CD-ROM drive).
    let source = inv.string("source");
    let target = string_req(inv, "target")?.unwrap_or_default();
    let driver = string_req(inv, "driver")?;
    let subdriver = string_req(inv, "subdriver")?;
    let device = string_req(inv, "type")?;
    let mode = string_req(inv, "mode")?;
    let iothread = string_req(inv, "iothread")?;
    let cache = string_req(inv, "cache")?;
    let io = string_req(inv, "io")?;
    let serial = string_req(inv, "serial")?;
    let wwn = string_req(inv, "wwn")?;
    let address = string_req(inv, "address")?;
    let targetbus = string_req(inv, "targetbus")?;
    let alias = string_req(inv, "alias")?;
    let stype = string_req(inv, "sourcetype")?;
    let protocol = string_req(inv, "source-protocol")?;
    let host_name = string_req(inv, "source-host-name")?;
    let host_transport = string_req(inv, "source-host-transport")?;
    let host_socket = string_req(inv, "source-host-socket")?;

    let mut kind = match stype {
        None => "",
        Some(t @ ("file" | "block" | "network")) => t,
        Some(t) => return Err(Error::msg(format!("Unknown source type: '{t}'"))),
    };
    if kind.is_empty() {
        kind = if protocol.is_some() {
            "network"
        } else if driver != Some("file")
            && driver != Some("tap")
            && source.is_some_and(is_block_device)
        {
            "block"
        } else {
            "file"
        };
    }
    if (kind == "network") != protocol.is_some() {
        return Err(Error::msg(
            "--source-protocol option requires --sourcetype network",
        ));
    }
    if let Some(m) = mode
        && m != "readonly"
        && m != "shareable"
    {
        return Err(Error::msg(format!(
            "No support for {m} in command 'attach-disk'"
        )));
    }
    if let Some(w) = wwn
        && !valid_wwn(w)
    {
        return Err(Error::msg(format!("XML error: Malformed wwn: {w}")));
    }

    let mut disk_attrs = format!(" type='{kind}'");
    esc_attr(&mut disk_attrs, "device", device);
    if inv.flag("rawio") {
        disk_attrs.push_str(" rawio='yes'");
    }
    let mut children = String::new();
    let mut driver_attrs = String::new();
    esc_attr(&mut driver_attrs, "name", driver);
    esc_attr(&mut driver_attrs, "type", subdriver);
    esc_attr(&mut driver_attrs, "iothread", iothread);
    esc_attr(&mut driver_attrs, "cache", cache);
    esc_attr(&mut driver_attrs, "io", io);
    format_element(&mut children, 2, "driver", &driver_attrs, "");

    let mut source_attrs = String::new();
    let mut source_children = String::new();
    match kind {
        "file" => esc_attr(&mut source_attrs, "file", source),
        "block" => esc_attr(&mut source_attrs, "dev", source),
        _ => {
            esc_attr(&mut source_attrs, "protocol", protocol);
            esc_attr(&mut source_attrs, "name", source);
            let mut host_attrs = String::new();
            esc_attr(&mut host_attrs, "transport", host_transport);
            esc_attr(&mut host_attrs, "socket", host_socket);
            if let Some(h) = host_name {
                let (name, port) = match h.split_once(':') {
                    Some((n, p)) => (n, Some(p)),
                    None => (h, None),
                };
                esc_attr(&mut host_attrs, "name", Some(name));
                esc_attr(&mut host_attrs, "port", port);
            }
            format_element(&mut source_children, 4, "host", &host_attrs, "");
        }
    }
    format_element(&mut children, 2, "source", &source_attrs, &source_children);
    children.push_str(&format!("  <target dev='{target}'"));
    if let Some(bus) = targetbus {
        children.push_str(&format!(" bus='{bus}'"));
    }
    children.push_str("/>\n");
    if let Some(m) = mode {
        children.push_str(&format!("  <{m}/>\n"));
    }
    if let Some(s) = serial {
        children.push_str(&format!("  <serial>{s}</serial>\n"));
    }
    if let Some(a) = alias {
        children.push_str(&format!("  <alias name='{a}'/>\n"));
    }
    if let Some(w) = wwn {
        children.push_str(&format!("  <wwn>{w}</wwn>\n"));
    }
    if let Some(a) = address {
        let addr = parse_address(a, inv.flag("multifunction"))
            .ok_or_else(|| Error::msg("Invalid address."))?;
        let fits = if target.starts_with("vd") {
            matches!(addr, Address::Pci { .. } | Address::Ccw { .. })
                .then_some(())
                .ok_or("expecting a pci:0000.00.00.00 or ccw:00.0.0000 address.")
        } else if target.starts_with("sd") {
            matches!(
                addr,
                Address::Drive {
                    kind: "scsi" | "sata",
                    ..
                } | Address::Usb { .. }
            )
            .then_some(())
            .ok_or("expecting a scsi:00.00.00 or usb:00.00 or sata:00.00.00 address.")
        } else if target.starts_with("hd") {
            matches!(addr, Address::Drive { kind: "ide", .. })
                .then_some(())
                .ok_or("expecting an ide:00.00.00 address.")
        } else {
            Ok(())
        };
        fits.map_err(Error::msg)?;
        children.push_str("  ");
        children.push_str(&addr.xml());
    }
    let mut xml = String::new();
    format_element(&mut xml, 0, "disk", &disk_attrs, &children);
    Ok(xml)
}

/// `attach-disk DOMAIN SOURCE TARGET [options]`.
fn cmd_attach_disk<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let affect = Affect::of(inv, true)?;
        let xml = attach_disk_xml(inv)?;
        if inv.flag("print-xml") {
            ctl.out().write_all(xml.as_bytes())?;
            return Ok(());
        }
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        send(&mut client, Op::Attach, &d, xml, affect.flags(d.id >= 0))
            .await
            .map_err(|e| errors(&["Failed to attach disk"], Some(e)))?;
        print_extra(ctl, "Disk attached successfully")
    })
}

/// The interface types libvirt knows (`virDomainNetType`).
const NET_TYPES: &[&str] = &[
    "user",
    "ethernet",
    "vhostuser",
    "server",
    "client",
    "mcast",
    "network",
    "bridge",
    "internal",
    "direct",
    "hostdev",
    "udp",
    "vdpa",
    "null",
    "vds",
];

/// A bandwidth rate of `--inbound`/`--outbound`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    /// Average (KiB/s).
    pub average: u64,
    /// Peak (KiB/s).
    pub peak: u64,
    /// Burst (KiB).
    pub burst: u64,
    /// Floor (KiB/s).
    pub floor: u64,
}

/// virsh's `average,peak,burst,floor` (empty or missing fields are 0).
///
/// # Errors
/// `Rate string 'S' has too many fields`, `field 'NAME' is malformed`.
pub fn parse_rate(s: &str) -> Result<Rate, Error> {
    let toks: Vec<&str> = if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').collect()
    };
    if toks.len() > 4 {
        return Err(Error::msg(format!("Rate string '{s}' has too many fields")));
    }
    let mut v = [0u64; 4];
    for (i, name) in ["average", "peak", "burst", "floor"].iter().enumerate() {
        if let Some(t) = toks.get(i)
            && !t.is_empty()
        {
            v[i] = strtoul_all(t, 10)
                .ok_or_else(|| Error::msg(format!("field '{name}' is malformed")))?;
        }
    }
    Ok(Rate {
        average: v[0],
        peak: v[1],
        burst: v[2],
        floor: v[3],
    })
}

/// The `<interface>` XML of `attach-interface`'s options, with virsh's
/// checks (those after the flag checks).
///
/// # Errors
/// virsh's messages for bad option values.
pub fn attach_interface_xml(inv: &Invocation) -> Result<String, Error> {
    let ty = string_req(inv, "type")?.unwrap_or_default();
    let source = string_req(inv, "source")?.unwrap_or_default();
    let target = string_req(inv, "target")?;
    let mac = string_req(inv, "mac")?;
    let script = string_req(inv, "script")?;
    let model = string_req(inv, "model")?;
    let alias = string_req(inv, "alias")?;
    let inbound_str = string_req(inv, "inbound")?;
    let outbound_str = string_req(inv, "outbound")?;
    let source_mode = string_req(inv, "source-mode")?;
    let unsupported = || Error::msg(format!("No support for {ty} in command 'attach-interface'"));
    if !NET_TYPES.contains(&ty) {
        return Err(unsupported());
    }
    if let Some(m) = source_mode
        && m != "server"
        && m != "client"
    {
        return Err(Error::msg(format!("Invalid source mode: {m}")));
    }
    let mut inbound = Rate::default();
    if let Some(s) = inbound_str {
        inbound = parse_rate(s)?;
        if inbound.average == 0 && inbound.floor == 0 {
            return Err(Error::msg("either inbound average or floor is mandatory"));
        }
    }
    let mut outbound = Rate::default();
    if let Some(s) = outbound_str {
        outbound = parse_rate(s)?;
        if outbound.average == 0 {
            return Err(Error::msg("outbound average is mandatory"));
        }
        if outbound.floor != 0 {
            return Err(Error::msg("outbound floor is unsupported yet"));
        }
    }

    let mut xml = format!("<interface type='{ty}'");
    xml.push_str(if inv.flag("managed") {
        " managed='yes'>\n"
    } else {
        ">\n"
    });
    match ty {
        "network" | "bridge" => xml.push_str(&format!("  <source {ty}='{source}'/>\n")),
        "direct" => xml.push_str(&format!("  <source dev='{source}'/>\n")),
        "hostdev" => {
            let addr = match parse_address(&format!("pci:{source}"), false) {
                Some(a @ Address::Pci { .. }) => a,
                _ => {
                    return Err(Error::msg(format!(
                        "cannot parse pci address '{source}' for network interface"
                    )));
                }
            };
            xml.push_str("  <source>\n    ");
            xml.push_str(&addr.xml());
            xml.push_str("  </source>\n");
        }
        "vhostuser" => {
            let Some(m) = source_mode else {
                return Err(Error::msg("source-mode is mandatory"));
            };
            xml.push_str(&format!(
                "  <source type='unix' path='{source}' mode='{m}'/>\n"
            ));
        }
        _ => return Err(unsupported()),
    }
    for (el, attr, v) in [
        ("target", "dev", target),
        ("mac", "address", mac),
        ("script", "path", script),
        ("model", "type", model),
        ("alias", "name", alias),
    ] {
        if let Some(v) = v {
            xml.push_str(&format!("  <{el} {attr}='{v}'/>\n"));
        }
    }
    if inbound_str.is_some() || outbound_str.is_some() {
        xml.push_str("  <bandwidth>\n");
        if inbound_str.is_some() && (inbound.average > 0 || inbound.floor > 0) {
            xml.push_str("    <inbound");
            for (k, v) in [
                ("average", inbound.average),
                ("peak", inbound.peak),
                ("burst", inbound.burst),
                ("floor", inbound.floor),
            ] {
                if v > 0 {
                    xml.push_str(&format!(" {k}='{v}'"));
                }
            }
            xml.push_str("/>\n");
        }
        if outbound_str.is_some() && outbound.average > 0 {
            xml.push_str(&format!("    <outbound average='{}'", outbound.average));
            for (k, v) in [("peak", outbound.peak), ("burst", outbound.burst)] {
                if v > 0 {
                    xml.push_str(&format!(" {k}='{v}'"));
                }
            }
            xml.push_str("/>\n");
        }
        xml.push_str("  </bandwidth>\n");
    }
    xml.push_str("</interface>\n");
    Ok(xml)
}

/// `attach-interface DOMAIN TYPE SOURCE [options]`.
fn cmd_attach_interface<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let affect = Affect::of(inv, true)?;
        let xml = attach_interface_xml(inv)?;
        if inv.flag("print-xml") {
            ctl.out().write_all(xml.as_bytes())?;
            return Ok(());
        }
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        send(&mut client, Op::Attach, &d, xml, affect.flags(d.id >= 0))
            .await
            .map_err(|e| errors(&["Failed to attach interface"], Some(e)))?;
        print_extra(ctl, "Interface attached successfully")
    })
}

// ---- Elements taken from the domain XML ----

/// The `<devices>` children called `name` of a domain document
/// (`/domain/devices/NAME`).
fn devices_named<'a>(root: &'a Elem, name: &'a str) -> Vec<&'a Elem> {
    if root.name != "domain" {
        return Vec::new();
    }
    root.children_named("devices")
        .flat_map(|d| d.children_named(name))
        .collect()
}

/// XPath `string(./child/@attr)`, which virsh reads as absent when empty.
fn child_attr<'a>(e: &'a Elem, child: &str, attr: &str) -> Option<&'a str> {
    e.child(child)?.attr(attr).filter(|v| !v.is_empty())
}

/// XPath `string(./source/@a|./source/@b|...)`: the first of these
/// attributes in document order, absent when empty.
fn source_attr<'a>(e: &'a Elem, names: &[&str]) -> Option<&'a str> {
    e.children_named("source")
        .flat_map(|s| s.attrs.iter())
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// virsh's `virshFindDisk`: the `<disk>` whose target or source is
/// `path` (with `changeable`, only CD-ROMs and floppies), without its
/// `<backingStore>`.
///
/// # Errors
/// `Failed to get disk information` (no disks),
/// `No disk found whose source path or target is PATH`.
pub fn find_disk(doc: &str, path: &str, changeable: bool) -> Result<Elem, Error> {
    let no_info = || Error::msg("Failed to get disk information");
    let root = xmldoc::parse(doc).map_err(|_| no_info())?;
    let disks = devices_named(&root, "disk");
    if disks.is_empty() {
        return Err(no_info());
    }
    for disk in disks {
        if changeable
            && let Some(dev) = disk.attr("device")
            && dev != "cdrom"
            && dev != "floppy"
        {
            continue;
        }
        let target = child_attr(disk, "target", "dev");
        let source = disk.child("source");
        let matches = target == Some(path)
            || ["file", "dev", "dir", "name"]
                .iter()
                .any(|a| source.and_then(|s| s.attr(a)) == Some(path));
        if matches {
            let mut found = disk.clone();
            found.remove_child("backingStore");
            return Ok(found);
        }
    }
    Err(Error::msg(format!(
        "No disk found whose source path or target is {path}"
    )))
}

/// What `change-media` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `--eject`.
    Eject,
    /// `--insert`.
    Insert,
    /// `--update` (the default).
    Update,
}

/// virsh's `virshUpdateDiskXML`: the disk with its medium ejected,
/// inserted or replaced, dumped as libxml2 does.
///
/// # Errors
/// virsh's messages: not removable, no media, already has media, no new
/// source.
pub fn update_disk_xml(
    mut disk: Elem,
    new_source: Option<&str>,
    block: bool,
    target: &str,
    what: Media,
) -> Result<String, Error> {
    let device = disk.attr("device");
    if !matches!(device, Some("cdrom" | "floppy")) {
        return Err(Error::msg(format!(
            "The disk device '{target}' is not removable"
        )));
    }
    let has_source = disk.child("source").is_some();
    let (block, new_source) = if what == Media::Eject {
        if !has_source {
            return Err(Error::msg(format!(
                "The disk device '{target}' doesn't have media"
            )));
        }
        (false, None)
    } else if new_source.is_none() {
        return Err(Error::msg("New disk media source was not specified"));
    } else {
        (block, new_source)
    };
    let mut startup_policy = None;
    if let Some(source) = disk.remove_child("source") {
        let path = ["file", "dev", "dir", "pool", "name"]
            .iter()
            .find_map(|a| source.attr(a));
        if path.is_some() && what == Media::Insert {
            return Err(Error::msg(format!(
                "The disk device '{target}' already has media"
            )));
        }
        startup_policy = source.attr("startupPolicy").map(str::to_owned);
    }
    disk.set_attr("type", if block { "block" } else { "file" });
    if let Some(src) = new_source {
        let mut s = Elem::new("source");
        s.set_attr(if block { "dev" } else { "file" }, src);
        if let Some(p) = startup_policy {
            s.set_attr("startupPolicy", &p);
        }
        disk.push(s);
    }
    Ok(disk.dump())
}

/// `detach-disk DOMAIN TARGET [flags] [--print-xml]`.
fn cmd_detach_disk<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let affect = Affect::of(inv, true)?;
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let target = string_req(inv, "target")?.unwrap_or_default();
        let initial = affect.initial();
        // Only a config-only change looks at the inactive definition.
        let doc = domain_xml(&mut client, &d, initial.config && !initial.live).await?;
        let flags = affect.flags(d.id >= 0);
        let xml = find_disk(&doc, target, false)?.dump();
        if inv.flag("print-xml") {
            ctl.out().write_all(xml.as_bytes())?;
            return Ok(());
        }
        send(&mut client, Op::Detach, &d, xml, flags)
            .await
            .map_err(|e| errors(&["Failed to detach disk"], Some(e)))?;
        print_extra(ctl, "Disk detached successfully")
    })
}

/// libvirt's `virMacAddrCompare`: case-insensitive, leading zeros of each
/// byte ignored.
pub fn mac_compare(p: &str, q: &str) -> std::cmp::Ordering {
    let (p, q) = (p.as_bytes(), q.as_bytes());
    let (mut i, mut j) = (0, 0);
    let at = |s: &[u8], k: usize| s.get(k).copied().unwrap_or(0);
    loop {
        while at(p, i) == b'0' && at(p, i + 1).is_ascii_hexdigit() {
            i += 1;
        }
        while at(q, j) == b'0' && at(q, j + 1).is_ascii_hexdigit() {
            j += 1;
        }
        let c = at(p, i).to_ascii_uppercase();
        let d = at(q, j).to_ascii_uppercase();
        if c == 0 || d == 0 || c != d {
            return c.cmp(&d);
        }
        i += 1;
        j += 1;
    }
}

/// virsh's `virshDomainDetachInterface` choice: the one `<interface>` of
/// `type` (with `mac`, the one with that MAC), dumped as libxml2 does.
///
/// # Errors
/// virsh's messages for no match, several interfaces without `--mac`, and
/// several matching the MAC.
pub fn find_interface(doc: &str, ty: &str, mac: Option<&str>) -> Result<String, Error> {
    let root = xmldoc::parse(doc).map_err(|_| Error::msg("Failed to get interface information"))?;
    let nodes: Vec<&Elem> = devices_named(&root, "interface")
        .into_iter()
        .filter(|e| e.attr("type") == Some(ty))
        .collect();
    if nodes.is_empty() {
        return Err(Error::msg(format!("No interface found whose type is {ty}")));
    }
    let found = match mac {
        Some(mac) => {
            let mut found = None;
            for n in &nodes {
                if let Some(m) = child_attr(n, "mac", "address")
                    && mac_compare(m, mac).is_eq()
                {
                    if found.is_some() {
                        return Err(Error::msg(format!(
                            "Domain has multiple interfaces matching MAC address {mac}. You must use detach-device and specify the device pci address to remove it."
                        )));
                    }
                    found = Some(*n);
                }
            }
            found.ok_or_else(|| {
                Error::msg(format!("No interface with MAC address {mac} was found"))
            })?
        }
        None if nodes.len() > 1 => {
            return Err(Error::msg(format!(
                "Domain has {} interfaces. Please specify which one to detach using --mac",
                nodes.len()
            )));
        }
        None => nodes[0],
    };
    Ok(found.dump())
}

/// `detach-interface DOMAIN TYPE [--mac MAC] [flags] [--print-xml]`: with
/// `--config` (or `--persistent`) the interface is found in the inactive
/// XML and detached from the config, then (for `--live`, a running
/// domain with `--persistent`, or no flag at all) found in the live XML
/// and detached with the live flag or none, as virsh does.
fn cmd_detach_interface<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        const FAILED: &str = "Failed to detach interface";
        let affect = Affect::of(inv, true)?;
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let ty = string_req(inv, "type")
            .map_err(|e| errors(&[&e.to_string(), FAILED], None))?
            .unwrap_or_default();
        let mac = string_req(inv, "mac").map_err(|e| errors(&[&e.to_string(), FAILED], None))?;
        let print_xml = inv.flag("print-xml");
        let affect_config = affect.config || affect.persistent;
        if affect_config {
            let doc = domain_xml(&mut client, &d, true)
                .await
                .map_err(|e| errors(&[FAILED], Some(e)))?;
            let xml = find_interface(&doc, ty, mac)
                .map_err(|e| errors(&[&e.to_string(), FAILED], None))?;
            if print_xml {
                ctl.out().write_all(xml.as_bytes())?;
            } else {
                let flags = pb::DeviceModifyFlags {
                    config: true,
                    ..Default::default()
                };
                send(&mut client, Op::Detach, &d, xml, flags)
                    .await
                    .map_err(|e| errors(&[FAILED], Some(e)))?;
            }
        }
        let affect_live = affect.live || (affect.persistent && d.id >= 0);
        if affect_live || !affect_config {
            let doc = domain_xml(&mut client, &d, false)
                .await
                .map_err(|e| errors(&[FAILED], Some(e)))?;
            let found = find_interface(&doc, ty, mac);
            let xml = match found {
                Ok(x) => x,
                // virsh returns before its "Failed" line here.
                Err(e) if print_xml => return Err(e),
                Err(e) => return Err(errors(&[&e.to_string(), FAILED], None)),
            };
            if print_xml {
                ctl.out().write_all(xml.as_bytes())?;
                return Ok(());
            }
            let flags = pb::DeviceModifyFlags {
                live: affect_live,
                ..Default::default()
            };
            send(&mut client, Op::Detach, &d, xml, flags)
                .await
                .map_err(|e| errors(&[FAILED], Some(e)))?;
        }
        if print_xml {
            return Ok(());
        }
        print_extra(ctl, "Interface detached successfully")
    })
}

/// `change-media DOMAIN PATH [SOURCE] [--eject|--insert|--update] [flags]
/// [--force] [--print-xml] [--block]`.
fn cmd_change_media<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        exclusive(inv, "eject", "insert")?;
        exclusive(inv, "eject", "update")?;
        exclusive(inv, "insert", "update")?;
        exclusive(inv, "eject", "block")?;
        let source = string_req(inv, "source")?;
        let mut eject = inv.flag("eject");
        let insert = inv.flag("insert");
        let mut update = inv.flag("update");
        // virsh: --update without a source is an eject.
        if update && source.is_none() {
            update = false;
            eject = true;
        }
        let (what, action, done) = if update || (!eject && !insert) {
            (Media::Update, "update", "Successfully updated media.")
        } else if insert {
            (Media::Insert, "insert", "Successfully inserted media.")
        } else {
            (Media::Eject, "eject", "Successfully ejected media.")
        };
        exclusive(inv, "current", "live")?;
        exclusive(inv, "current", "config")?;
        let flags = pb::DeviceModifyFlags {
            live: inv.flag("live"),
            config: inv.flag("config"),
            force: inv.flag("force"),
        };
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let path = string_req(inv, "path")?.unwrap_or_default();
        let doc = domain_xml(&mut client, &d, flags.config).await?;
        let disk = find_disk(&doc, path, true)?;
        let xml = update_disk_xml(disk, source, inv.flag("block"), path, what)?;
        if inv.flag("print-xml") {
            ctl.out().write_all(xml.as_bytes())?;
            return Ok(());
        }
        send(&mut client, Op::Update, &d, xml, flags)
            .await
            .map_err(|e| {
                errors(
                    &[&format!("Failed to complete action {action} on media")],
                    Some(e),
                )
            })?;
        // vshPrint, not vshPrintExtra: no newline, not silenced by -q.
        ctl.out().write_all(done.as_bytes())?;
        Ok(())
    })
}

// ---- domblklist, domiflist ----

/// The table of `domblklist` for a domain document.
///
/// # Errors
/// virsh's `unable to query block list` (a disk without target), and
/// `Unable to query NVMe disk address`.
pub fn blklist_table(doc: &str, details: bool) -> Result<Table, Error> {
    let root = xmldoc::parse(doc).map_err(|e| Error::msg(format!("XML error: {e}")))?;
    let mut table = if details {
        Table::new(&["Type", "Device", "Target", "Source"])
    } else {
        Table::new(&["Target", "Source"])
    };
    for disk in devices_named(&root, "disk") {
        let ty = disk.attr("type").filter(|t| !t.is_empty());
        let device = disk.attr("device").filter(|t| !t.is_empty());
        if details && (ty.is_none() || device.is_none()) {
            return Err(Error::msg("unable to query block list details"));
        }
        let target = child_attr(disk, "target", "dev")
            .ok_or_else(|| Error::msg("unable to query block list"))?;
        let source = if ty == Some("nvme") {
            Some(nvme_source(disk).ok_or_else(|| Error::msg("Unable to query NVMe disk address"))?)
        } else {
            source_attr(disk, &["file", "dev", "dir", "name", "volume", "path"]).map(str::to_owned)
        };
        let source = source.unwrap_or_else(|| "-".to_owned());
        if details {
            table.row(vec![
                ty.unwrap_or_default().to_owned(),
                device.unwrap_or_default().to_owned(),
                target.to_owned(),
                source,
            ]);
        } else {
            table.row(vec![target.to_owned(), source]);
        }
    }
    Ok(table)
}

/// `nvme://DDDD:BB:SS.F/NAMESPACE` of an NVMe disk's source.
fn nvme_source(disk: &Elem) -> Option<String> {
    let source = disk.child("source")?;
    let namespace = source.attr("namespace").filter(|n| !n.is_empty())?;
    let addr = source.child("address")?;
    let num = |a: &str| -> Option<u64> {
        match addr.attr(a) {
            None => Some(0),
            Some(v) => strtoul_all(v, 0),
        }
    };
    Some(format!(
        "nvme://{:04x}:{:02x}:{:02x}.{}/{namespace}",
        num("domain")?,
        num("bus")?,
        num("slot")?,
        num("function")?
    ))
}

/// The table of `domiflist` for a domain document.
///
/// # Errors
/// The document does not parse.
pub fn iflist_table(doc: &str) -> Result<Table, Error> {
    let root = xmldoc::parse(doc).map_err(|e| Error::msg(format!("XML error: {e}")))?;
    let mut table = Table::new(&["Interface", "Type", "Source", "Model", "MAC"]);
    let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    for nic in devices_named(&root, "interface") {
        table.row(vec![
            dash(child_attr(nic, "target", "dev")),
            nic.attr("type").unwrap_or_default().to_owned(),
            dash(source_attr(
                nic,
                &["bridge", "dev", "network", "name", "path"],
            )),
            dash(child_attr(nic, "model", "type")),
            dash(child_attr(nic, "mac", "address")),
        ]);
    }
    Ok(table)
}

/// `domblklist DOMAIN [--inactive] [--details]`.
fn cmd_domblklist<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let doc = domain_xml(&mut client, &d, inv.flag("inactive")).await?;
        let table = match blklist_table(&doc, inv.flag("details")) {
            Ok(t) => t,
            Err(e) if e.to_string() == "unable to query block list details" => {
                // virsh prints this one on stdout, without newline.
                ctl.out().write_all(e.to_string().as_bytes())?;
                return Err(Error::Silent);
            }
            Err(e) => return Err(e),
        };
        let text = table.render(!ctl.settings.quiet);
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// `domiflist DOMAIN [--inactive]`.
fn cmd_domiflist<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let doc = domain_xml(&mut client, &d, inv.flag("inactive")).await?;
        let text = iflist_table(&doc)?.render(!ctl.settings.quiet);
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
