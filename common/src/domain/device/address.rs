//! The `<address>` family: where a device sits on its bus.

use crate::xml::values::str_to_u64p;
use crate::xml::{Element, Node, XmlError};

/// An unsigned number as libvirt's `virXMLPropUInt` with base 0
/// (`virStrToLong_uip`): `0x` hex, leading `0` octal, else decimal.
pub(crate) fn parse_base0(s: &str) -> Option<u64> {
    str_to_u64p(s, 0)
}

/// An unsigned number in base 16, `0x` optional (`virStrToLong_uip`).
fn parse_hex(s: &str) -> Option<u64> {
    str_to_u64p(s, 16)
}

fn num<T: TryFrom<u64>>(
    n: Node<'_>,
    attr: &str,
    parse: fn(&str) -> Option<u64>,
) -> Result<Option<T>, XmlError> {
    match n.attr(attr) {
        None => Ok(None),
        Some(v) => parse(v)
            .and_then(|x| T::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| {
                XmlError::invalid(
                    n.attr_path(attr),
                    format!("Cannot parse <address> '{attr}' attribute"),
                )
            }),
    }
}

fn dec(s: &str) -> Option<u64> {
    crate::xml::parse_uint(s)
}

/// A PCI address; all zero is "unset" (let the driver choose).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PciAddress {
    /// `domain=`.
    pub domain: u32,
    /// `bus=`.
    pub bus: u32,
    /// `slot=`.
    pub slot: u32,
    /// `function=`.
    pub function: u32,
    /// `multifunction=` on/off.
    pub multifunction: Option<bool>,
    /// `<zpci uid= fid=>` (s390).
    pub zpci: Option<(u32, u32)>,
}

impl PciAddress {
    /// Whether domain, bus, slot and function are all zero.
    pub fn is_empty(&self) -> bool {
        self.domain == 0 && self.bus == 0 && self.slot == 0 && self.function == 0
    }

    /// Parses the attributes of `n` (an `<address>`).
    pub(crate) fn parse(n: Node<'_>) -> Result<PciAddress, XmlError> {
        let a = PciAddress {
            domain: num(n, "domain", parse_base0)?.unwrap_or(0),
            bus: num(n, "bus", parse_base0)?.unwrap_or(0),
            slot: num(n, "slot", parse_base0)?.unwrap_or(0),
            function: num(n, "function", parse_base0)?.unwrap_or(0),
            multifunction: n.on_off_attr("multifunction")?,
            zpci: match n.child("zpci") {
                None => None,
                Some(z) => {
                    let z = z.node();
                    Some((
                        num(z, "uid", parse_base0)?.unwrap_or(0),
                        num(z, "fid", parse_base0)?.unwrap_or(0),
                    ))
                }
            },
        };
        if !a.is_empty() {
            let checks = [
                ("domain", a.domain, 0xFFFF, "0xFFFF"),
                ("bus", a.bus, 0xFF, "0xFF"),
                ("slot", a.slot, 0x1F, "0x1F"),
                ("function", a.function, 7, "7"),
            ];
            for (name, v, max, maxs) in checks {
                if v > max {
                    return Err(XmlError::invalid(
                        n.attr_path(name),
                        format!("Invalid PCI address {name}='0x{v:x}', must be <= {maxs}"),
                    ));
                }
            }
        }
        Ok(a)
    }

    /// Formats a host-side address (`<source><address>` of host devices
    /// and NVMe disks): all four numbers, no `type=`.
    pub(crate) fn format_host(&self) -> Element {
        Element::new("address")
            .with_attr("domain", format!("0x{:04x}", self.domain))
            .with_attr("bus", format!("0x{:02x}", self.bus))
            .with_attr("slot", format!("0x{:02x}", self.slot))
            .with_attr("function", format!("0x{:x}", self.function))
    }

    fn format_attrs(&self, e: &mut Element) {
        if !self.is_empty() {
            e.set_attr("domain", format!("0x{:04x}", self.domain));
            e.set_attr("bus", format!("0x{:02x}", self.bus));
            e.set_attr("slot", format!("0x{:02x}", self.slot));
            e.set_attr("function", format!("0x{:x}", self.function));
        }
        if let Some(m) = self.multifunction {
            e.set_attr("multifunction", super::super::util::on_off(m));
        }
        if let Some((uid, fid)) = self.zpci {
            e.push(
                Element::new("zpci")
                    .with_attr("uid", format!("0x{uid:04x}"))
                    .with_attr("fid", format!("0x{fid:08x}")),
            );
        }
    }
}

/// `<address type='drive'>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DriveAddress {
    /// `controller=`.
    pub controller: u32,
    /// `bus=`.
    pub bus: u32,
    /// `target=`.
    pub target: u32,
    /// `unit=`.
    pub unit: u32,
}

/// A device address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// `type='pci'`.
    Pci(PciAddress),
    /// `type='drive'`.
    Drive(DriveAddress),
    /// `type='virtio-serial'`: controller, bus, port.
    VirtioSerial {
        /// `controller=`.
        controller: u32,
        /// `bus=`.
        bus: u32,
        /// `port=`.
        port: u32,
    },
    /// `type='ccid'`: controller, slot.
    Ccid {
        /// `controller=`.
        controller: u32,
        /// `slot=`.
        slot: u32,
    },
    /// `type='usb'`: bus and port path (`1.2`).
    Usb {
        /// `bus=`.
        bus: u32,
        /// `port=` split at dots (at most 4 levels).
        port: Vec<u32>,
    },
    /// `type='spapr-vio'`.
    SpaprVio {
        /// `reg=`.
        reg: Option<u64>,
    },
    /// `type='ccw'`: all or nothing.
    Ccw(Option<(u32, u32, u32)>),
    /// `type='virtio-s390'`.
    VirtioS390,
    /// `type='isa'`.
    Isa {
        /// `iobase=`.
        iobase: u32,
        /// `irq=`.
        irq: u32,
    },
    /// `type='dimm'`.
    Dimm {
        /// `slot=`.
        slot: u32,
        /// `base=`.
        base: u64,
    },
    /// `type='virtio-mmio'`.
    VirtioMmio,
    /// `type='unassigned'` (host devices kept off the guest's buses).
    Unassigned,
}

impl Address {
    /// The `type=` spelling.
    pub fn type_name(&self) -> &'static str {
        match self {
            Address::Pci(_) => "pci",
            Address::Drive(_) => "drive",
            Address::VirtioSerial { .. } => "virtio-serial",
            Address::Ccid { .. } => "ccid",
            Address::Usb { .. } => "usb",
            Address::SpaprVio { .. } => "spapr-vio",
            Address::Ccw(_) => "ccw",
            Address::VirtioS390 => "virtio-s390",
            Address::Isa { .. } => "isa",
            Address::Dimm { .. } => "dimm",
            Address::VirtioMmio => "virtio-mmio",
            Address::Unassigned => "unassigned",
        }
    }

    /// Parses an `<address>` element.
    pub(crate) fn parse(n: Node<'_>) -> Result<Address, XmlError> {
        let ty = n.attr("type").ok_or_else(|| {
            XmlError::invalid(n.attr_path("type"), "No type specified for device address")
        })?;
        let u = |a: &str| -> Result<u32, XmlError> { Ok(num(n, a, dec)?.unwrap_or(0)) };
        Ok(match ty {
            "pci" => Address::Pci(PciAddress::parse(n)?),
            "drive" => Address::Drive(DriveAddress {
                controller: u("controller")?,
                bus: u("bus")?,
                target: u("target")?,
                unit: u("unit")?,
            }),
            "virtio-serial" => Address::VirtioSerial {
                controller: u("controller")?,
                bus: u("bus")?,
                port: u("port")?,
            },
            "ccid" => Address::Ccid {
                controller: u("controller")?,
                slot: u("slot")?,
            },
            "usb" => {
                let mut port = Vec::new();
                if let Some(p) = n.attr("port") {
                    for part in p.split('.') {
                        let v = dec(part).and_then(|v| u32::try_from(v).ok());
                        match v {
                            Some(v) if port.len() < 4 => port.push(v),
                            _ => {
                                return Err(XmlError::invalid(
                                    n.attr_path("port"),
                                    "Cannot parse <address> 'port' attribute",
                                ));
                            }
                        }
                    }
                }
                Address::Usb {
                    bus: u("bus")?,
                    port,
                }
            }
            "spapr-vio" => Address::SpaprVio {
                reg: num(n, "reg", parse_hex)?,
            },
            "ccw" => {
                let c: Option<u32> = num(n, "cssid", parse_base0)?;
                let s: Option<u32> = num(n, "ssid", parse_base0)?;
                let d: Option<u32> = num(n, "devno", parse_base0)?;
                match (c, s, d) {
                    (None, None, None) => Address::Ccw(None),
                    (Some(c), Some(s), Some(d)) => {
                        if c > 0xfe || s > 3 || d > 0xffff {
                            return Err(XmlError::invalid(
                                n.path(),
                                "Invalid specification for virtio ccw address",
                            ));
                        }
                        Address::Ccw(Some((c, s, d)))
                    }
                    _ => {
                        return Err(XmlError::invalid(
                            n.path(),
                            "Invalid partial specification for virtio ccw address",
                        ));
                    }
                }
            }
            "virtio-s390" => Address::VirtioS390,
            "isa" => Address::Isa {
                iobase: num(n, "iobase", parse_base0)?.unwrap_or(0),
                irq: num(n, "irq", parse_base0)?.unwrap_or(0),
            },
            "dimm" => Address::Dimm {
                slot: u("slot")?,
                base: num(n, "base", parse_base0)?.unwrap_or(0),
            },
            "virtio-mmio" => Address::VirtioMmio,
            "unassigned" => Address::Unassigned,
            "none" => {
                return Err(XmlError::bad_value(
                    n.attr_path("type"),
                    ty,
                    "unknown address type",
                ));
            }
            other => {
                return Err(XmlError::bad_value(
                    n.attr_path("type"),
                    other,
                    "unknown address type",
                ));
            }
        })
    }

    /// Formats as `<address type=...>`.
    pub(crate) fn format(&self) -> Element {
        let mut e = Element::new("address").with_attr("type", self.type_name());
        match self {
            Address::Pci(p) => p.format_attrs(&mut e),
            Address::Drive(d) => {
                e.set_attr("controller", d.controller);
                e.set_attr("bus", d.bus);
                e.set_attr("target", d.target);
                e.set_attr("unit", d.unit);
            }
            Address::VirtioSerial {
                controller,
                bus,
                port,
            } => {
                e.set_attr("controller", controller);
                e.set_attr("bus", bus);
                e.set_attr("port", port);
            }
            Address::Ccid { controller, slot } => {
                e.set_attr("controller", controller);
                e.set_attr("slot", slot);
            }
            Address::Usb { bus, port } => {
                e.set_attr("bus", bus);
                if !port.is_empty() {
                    let p: Vec<String> = port.iter().map(u32::to_string).collect();
                    e.set_attr("port", p.join("."));
                }
            }
            Address::SpaprVio { reg } => {
                if let Some(r) = reg {
                    e.set_attr("reg", format!("0x{r:08x}"));
                }
            }
            Address::Ccw(Some((c, s, d))) => {
                e.set_attr("cssid", format!("0x{c:x}"));
                e.set_attr("ssid", format!("0x{s:x}"));
                e.set_attr("devno", format!("0x{d:04x}"));
            }
            Address::Isa { iobase, irq } => {
                if *iobase > 0 {
                    e.set_attr("iobase", format!("0x{iobase:x}"));
                }
                if *irq > 0 {
                    e.set_attr("irq", format!("0x{irq:x}"));
                }
            }
            Address::Dimm { slot, base } => {
                e.set_attr("slot", slot);
                if *base > 0 {
                    e.set_attr("base", format!("0x{base:x}"));
                }
            }
            Address::Ccw(None)
            | Address::VirtioS390
            | Address::VirtioMmio
            | Address::Unassigned => {}
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(xml: &str) -> Result<Address, XmlError> {
        let el = crate::xml::parse(xml).expect("xml");
        Address::parse(Node::root(&el))
    }

    #[test]
    fn pci_round_trip_and_limits() {
        let a = addr(
            "<address type='pci' domain='0' bus='0x01' slot='3' function='00' multifunction='on'/>",
        )
        .expect("pci");
        assert_eq!(
            a.format().to_xml(),
            "<address type='pci' domain='0x0000' bus='0x01' slot='0x03' function='0x0' multifunction='on'/>\n"
        );
        let e = addr("<address type='pci' bus='0x100'/>").expect_err("bus");
        assert!(e.to_string().contains("must be <= 0xFF"));
        assert!(addr("<address type='pci' slot='0x20'/>").is_err());
        assert!(addr("<address type='bogus'/>").is_err());
        assert!(addr("<address/>").is_err());
    }

    #[test]
    fn usb_port_depth() {
        assert!(addr("<address type='usb' bus='0' port='1.2.3.4'/>").is_ok());
        assert!(addr("<address type='usb' bus='0' port='1.2.3.4.5'/>").is_err());
        assert!(addr("<address type='usb' bus='0' port='1..2'/>").is_err());
    }
}
