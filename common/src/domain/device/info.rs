//! What every device carries (libvirt's `virDomainDeviceInfo`): `<alias>`,
//! `<boot order>`, `<acpi index>`, `<rom>`, `<master>` and `<address>`.

use crate::xml::{Element, Node, XmlError};

use super::super::util::{Ctx, Fmt, missing, on_off, yes_no};
use super::address::Address;

/// `<boot order= loadparm=>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// `order=` (from 1).
    pub order: u32,
    /// `loadparm=` (s390, upper-cased).
    pub loadparm: Option<String>,
}

/// `<rom>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rom {
    /// `enabled=`.
    pub enabled: Option<bool>,
    /// `bar=`.
    pub bar: Option<bool>,
    /// `file=`.
    pub file: Option<String>,
}

/// The common device information.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `<alias name=>`.
    pub alias: Option<String>,
    /// `<address>`.
    pub address: Option<Address>,
    /// `<boot>` (disks, interfaces, host devices, redirdevs).
    pub boot: Option<Box<Boot>>,
    /// `<acpi index=>`.
    pub acpi_index: Option<u32>,
    /// `<rom>` (interfaces, host devices).
    pub rom: Option<Box<Rom>>,
    /// `<master startport=>` (USB companion controllers).
    pub master_startport: Option<u32>,
}

/// Which optional parts a device kind accepts.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InfoOpts {
    pub boot: bool,
    pub rom: bool,
}

impl InfoOpts {
    pub const NONE: InfoOpts = InfoOpts {
        boot: false,
        rom: false,
    };
    pub const BOOT: InfoOpts = InfoOpts {
        boot: true,
        rom: false,
    };
    pub const BOOT_ROM: InfoOpts = InfoOpts {
        boot: true,
        rom: true,
    };
}

/// Whether `alias` was given by the user (libvirt's `ua-` prefix) rather
/// than assigned by the driver.
pub fn is_user_alias(alias: &str) -> bool {
    alias.starts_with("ua-")
}

fn valid_loadparm(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 8
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b' ')
}

/// With the validate flag: the attributes `<address type=...>` knows.
pub(crate) fn check_address(a: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    let attrs: &[&str] = match a.attr("type").unwrap_or_default() {
        "pci" => &["type", "domain", "bus", "slot", "function", "multifunction"],
        "drive" => &["type", "controller", "bus", "target", "unit"],
        "virtio-serial" => &["type", "controller", "bus", "port"],
        "ccid" => &["type", "controller", "slot"],
        "usb" => &["type", "bus", "port"],
        "spapr-vio" => &["type", "reg"],
        "ccw" => &["type", "cssid", "ssid", "devno"],
        "isa" => &["type", "iobase", "irq"],
        "dimm" => &["type", "slot", "base"],
        _ => &["type"],
    };
    let pci = a.attr("type") == Some("pci");
    ctx.check(a, attrs, if pci { &["zpci"] } else { &[] })?;
    ctx.check_child(a, "zpci", &["uid", "fid"], &[])
}

impl DeviceInfo {
    /// Parses the info children of a device element.
    pub(crate) fn parse(
        n: Node<'_>,
        ctx: &Ctx<'_>,
        opts: InfoOpts,
    ) -> Result<DeviceInfo, XmlError> {
        let mut info = DeviceInfo::default();
        ctx.check_child(n, "alias", &["name"], &[])?;
        ctx.check_child(n, "boot", &["order", "loadparm"], &[])?;
        ctx.check_child(n, "acpi", &["index"], &[])?;
        ctx.check_child(n, "rom", &["enabled", "bar", "file"], &[])?;
        ctx.check_child(n, "master", &["startport"], &[])?;
        if ctx.flags.validate
            && let Some(a) = n.child("address")
        {
            check_address(a.node(), ctx)?;
        }
        if let Some(a) = n.child("alias") {
            let a = a.node();
            if let Some(name) = a.attr("name") {
                let user = is_user_alias(name);
                if user
                    && !name[3..]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(XmlError::bad_value(
                        a.attr_path("name"),
                        name,
                        "Invalid alias name",
                    ));
                }
                if !ctx.inactive() || user {
                    info.alias = Some(name.to_owned());
                }
            }
        }
        if opts.boot
            && let Some(b) = n.child("boot")
        {
            let b = b.node();
            let o = b
                .attr("order")
                .ok_or_else(|| missing(b.attr_path("order")))?;
            let order = crate::xml::parse_uint::<u32>(o)
                .filter(|v| *v > 0)
                .ok_or_else(|| {
                    XmlError::bad_value(
                        b.attr_path("order"),
                        o,
                        "incorrect boot order, expecting positive integer:",
                    )
                })?;
            let loadparm = match b.attr("loadparm") {
                None => None,
                Some(lp) => {
                    let up = lp.to_ascii_uppercase();
                    if !valid_loadparm(&up) {
                        return Err(XmlError::invalid(
                            b.attr_path("loadparm"),
                            format!(
                                "invalid loadparm value '{up}', expecting chars in set of [a-zA-Z0-9.] and blank spaces"
                            ),
                        ));
                    }
                    Some(up)
                }
            };
            info.boot = Some(Box::new(Boot { order, loadparm }));
        }
        if let Some(a) = n.child("acpi") {
            info.acpi_index = a.node().uint_attr("index")?;
        }
        if opts.rom
            && let Some(r) = n.child("rom")
        {
            let r = r.node();
            info.rom = Some(Box::new(Rom {
                enabled: r.yes_no_attr("enabled")?,
                bar: r.on_off_attr("bar")?,
                file: r.attr("file").map(str::to_owned),
            }));
        }
        if let Some(m) = n.child("master") {
            info.master_startport = m.node().uint_attr("startport")?;
        }
        if let Some(a) = n.child("address") {
            info.address = Some(Address::parse(a.node())?);
        }
        Ok(info)
    }

    /// Appends the info children to a device element.
    pub(crate) fn format(&self, flags: &Fmt, opts: InfoOpts, e: &mut Element) {
        if opts.boot
            && let Some(b) = &self.boot
        {
            e.push(
                Element::new("boot")
                    .with_attr("order", b.order)
                    .with_opt_attr("loadparm", b.loadparm.as_deref()),
            );
        }
        // Aliases are live data, except user aliases (`ua-`), which the
        // inactive definition keeps (virDomainDeviceInfoFormat).
        if let Some(a) = &self.alias
            && (!flags.inactive || is_user_alias(a))
        {
            e.push(Element::new("alias").with_attr("name", a));
        }
        if let Some(p) = self.master_startport {
            e.push(Element::new("master").with_attr("startport", p));
        }
        if opts.rom
            && let Some(r) = &self.rom
        {
            e.push(
                Element::new("rom")
                    .with_opt_attr("enabled", r.enabled.map(yes_no))
                    .with_opt_attr("bar", r.bar.map(on_off))
                    .with_opt_attr("file", r.file.as_deref()),
            );
        }
        if let Some(i) = self.acpi_index {
            e.push(Element::new("acpi").with_attr("index", i));
        }
        if let Some(a) = &self.address {
            e.push(a.format());
        }
    }

    /// The PCI address, if any.
    pub fn pci(&self) -> Option<&super::address::PciAddress> {
        match &self.address {
            Some(Address::Pci(p)) => Some(p),
            _ => None,
        }
    }
}
