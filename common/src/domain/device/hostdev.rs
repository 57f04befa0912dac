//! `<hostdev>`: host devices assigned to the guest (USB, PCI, SCSI,
//! vhost-scsi, mediated devices, and container capabilities).

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, on_off, yes_no};
use super::address::{PciAddress, parse_base0};
use super::info::{DeviceInfo, InfoOpts};
use super::interface::TeamingType;
use super::storage::{Auth, NetHost, format_auth, parse_auth};

xml_enum! {
    /// `<hostdev type=>` in subsystem mode.
    pub enum SubsysType { Usb = "usb", Pci = "pci", Scsi = "scsi", ScsiHost = "scsi_host", Mdev = "mdev" }
}

xml_enum! {
    /// `<source guestReset=>` (USB).
    pub enum GuestReset { Off = "off", Uninitialized = "uninitialized", On = "on" }
}

/// Where the host device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostdevSource {
    /// USB by vendor/product and/or bus/device.
    Usb {
        /// `<vendor id=>`.
        vendor: Option<u32>,
        /// `<product id=>`.
        product: Option<u32>,
        /// `<address bus= device=>`.
        bus_device: Option<(u32, u32)>,
        /// `startupPolicy=`.
        startup_policy: Option<String>,
        /// `guestReset=`.
        guest_reset: Option<GuestReset>,
    },
    /// A PCI device.
    Pci {
        /// `<address>`.
        addr: PciAddress,
        /// `<driver name=>` (`vfio`...).
        driver: Option<String>,
        /// `writeFiltering=`.
        write_filtering: Option<bool>,
    },
    /// A SCSI LUN behind a host adapter.
    Scsi {
        /// `<adapter name=>`.
        adapter: String,
        /// `<address bus= target= unit=>`.
        bus: u32,
        /// target.
        target: u32,
        /// unit.
        unit: u64,
    },
    /// A SCSI LUN on an iSCSI target.
    ScsiIscsi {
        /// `name=` (IQN/LUN).
        name: String,
        /// `<host>`s.
        hosts: Vec<NetHost>,
        /// `<auth>`.
        auth: Option<Auth>,
        /// `<initiator><iqn name=>`.
        initiator_iqn: Option<String>,
    },
    /// vhost-scsi: `protocol=` and `wwpn=`.
    ScsiHost {
        /// `protocol=`.
        protocol: String,
        /// `wwpn=`.
        wwpn: String,
    },
    /// A mediated device by UUID.
    Mdev {
        /// `<address uuid=>`.
        uuid: String,
    },
    /// Capabilities mode: `<source><block>`, `<char>` or `<interface>`.
    Caps {
        /// `type=` (`storage`, `misc`, `net`).
        kind: String,
        /// The `<source>` element as written.
        source: Element,
    },
}

/// A host device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostdev {
    /// Where it is.
    pub source: HostdevSource,
    /// `managed=`.
    pub managed: bool,
    /// `sgio=` (SCSI).
    pub sgio: Option<String>,
    /// `rawio=` (SCSI).
    pub rawio: Option<bool>,
    /// `model=` (mdev, scsi_host).
    pub model: Option<String>,
    /// `display=` (mdev).
    pub display: Option<bool>,
    /// `ramfb=` (mdev).
    pub ramfb: Option<bool>,
    /// `<readonly/>`.
    pub readonly: bool,
    /// `<shareable/>`.
    pub shareable: bool,
    /// `<teaming>`.
    pub teaming: Option<(TeamingType, Option<String>)>,
    /// Address, alias, boot order, ROM.
    pub info: DeviceInfo,
}

fn hex_id(n: Node<'_>) -> Result<u32, XmlError> {
    let v = n.attr("id").ok_or_else(|| missing(n.attr_path("id")))?;
    parse_base0(v)
        .and_then(|x| u32::try_from(x).ok())
        .filter(|x| *x <= 0xffff)
        .ok_or_else(|| XmlError::bad_value(n.attr_path("id"), v, "cannot parse id"))
}

fn parse_subsys(n: Node<'_>, kind: SubsysType) -> Result<HostdevSource, XmlError> {
    let src = n.required_child("source")?;
    let s = src.node();
    Ok(match kind {
        SubsysType::Usb => {
            let vendor = match s.child("vendor") {
                Some(v) => Some(hex_id(v.node())?),
                None => None,
            };
            let product = match s.child("product") {
                Some(v) => Some(hex_id(v.node())?),
                None => None,
            };
            if vendor.is_some() != product.is_some() {
                return Err(XmlError::invalid(
                    s.path(),
                    "usb vendor needs product and vice versa",
                ));
            }
            let bus_device = match s.child("address") {
                None => None,
                Some(a) => {
                    let a = a.node();
                    let get = |k: &str| -> Result<u32, XmlError> {
                        let v = a.attr(k).ok_or_else(|| missing(a.attr_path(k)))?;
                        parse_base0(v)
                            .and_then(|x| u32::try_from(x).ok())
                            .ok_or_else(|| XmlError::bad_value(a.attr_path(k), v, "cannot parse"))
                    };
                    Some((get("bus")?, get("device")?))
                }
            };
            HostdevSource::Usb {
                vendor,
                product,
                bus_device,
                startup_policy: s.attr("startupPolicy").map(str::to_owned),
                guest_reset: s.parse_attr("guestReset")?,
            }
        }
        SubsysType::Pci => HostdevSource::Pci {
            addr: match s.child("address") {
                Some(a) => PciAddress::parse(a.node())?,
                None => return Err(missing(s.child_path("address", None))),
            },
            driver: n
                .child("driver")
                .and_then(|d| d.node().attr("name").map(str::to_owned)),
            write_filtering: s.yes_no_attr("writeFiltering")?,
        },
        SubsysType::Scsi => match s.attr("protocol") {
            Some("iscsi") => HostdevSource::ScsiIscsi {
                name: s.required_attr("name")?.to_owned(),
                hosts: s
                    .children("host")
                    .iter()
                    .map(|h| {
                        let h = h.node();
                        Ok(NetHost {
                            name: h.attr("name").map(str::to_owned),
                            port: h.uint_attr("port")?,
                            transport: None,
                            socket: None,
                        })
                    })
                    .collect::<Result<_, XmlError>>()?,
                auth: match s.child("auth") {
                    Some(a) => Some(parse_auth(a.node())?),
                    None => None,
                },
                initiator_iqn: s.child("initiator").and_then(|i| {
                    i.node()
                        .child("iqn")
                        .and_then(|q| q.node().attr("name").map(str::to_owned))
                }),
            },
            None | Some("adapter") => {
                let adapter = s
                    .child("adapter")
                    .and_then(|a| a.node().attr("name").map(str::to_owned))
                    .ok_or_else(|| missing(s.child_path("adapter", None)))?;
                let a = s.required_child("address")?;
                let a = a.node();
                HostdevSource::Scsi {
                    adapter,
                    bus: a
                        .uint_attr("bus")?
                        .ok_or_else(|| missing(a.attr_path("bus")))?,
                    target: a
                        .uint_attr("target")?
                        .ok_or_else(|| missing(a.attr_path("target")))?,
                    unit: a
                        .uint_attr("unit")?
                        .ok_or_else(|| missing(a.attr_path("unit")))?,
                }
            }
            Some(other) => {
                return Err(XmlError::bad_value(
                    s.attr_path("protocol"),
                    other,
                    "Unknown SCSI subsystem protocol",
                ));
            }
        },
        SubsysType::ScsiHost => HostdevSource::ScsiHost {
            protocol: s.required_attr("protocol")?.to_owned(),
            wwpn: s.required_attr("wwpn")?.to_owned(),
        },
        SubsysType::Mdev => HostdevSource::Mdev {
            uuid: s
                .child("address")
                .and_then(|a| a.node().attr("uuid").map(str::to_owned))
                .ok_or_else(|| missing(s.child_path("address", None)))?,
        },
    })
}

/// With the validate flag: everything under a `<hostdev>` the model reads
/// (the `<source>` of a capabilities hostdev is kept as it is).
fn check_hostdev(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    ctx.check(
        n,
        &[
            "mode", "type", "managed", "sgio", "rawio", "model", "display", "ramfb",
        ],
        &[
            "source",
            "driver",
            "readonly",
            "shareable",
            "teaming",
            "alias",
            "boot",
            "rom",
            "acpi",
            "address",
        ],
    )?;
    ctx.check_child(n, "driver", &["name"], &[])?;
    ctx.check_leaves(n, &["readonly", "shareable"])?;
    ctx.check_child(n, "teaming", &["type", "persistent"], &[])?;
    if n.attr("mode") == Some("capabilities") {
        return Ok(());
    }
    ctx.check_child(
        n,
        "source",
        &[
            "startupPolicy",
            "guestReset",
            "writeFiltering",
            "protocol",
            "name",
            "wwpn",
        ],
        &[
            "vendor",
            "product",
            "address",
            "host",
            "auth",
            "initiator",
            "adapter",
        ],
    )?;
    if let Some(s) = n.child("source") {
        let s = s.node();
        ctx.check_child(s, "vendor", &["id"], &[])?;
        ctx.check_child(s, "product", &["id"], &[])?;
        ctx.check_child(
            s,
            "address",
            &[
                "type", "bus", "device", "domain", "slot", "function", "target", "unit", "uuid",
            ],
            &[],
        )?;
        ctx.check_child(s, "host", &["name", "port"], &[])?;
        for a in s.children("auth") {
            super::storage::check_auth(a.node(), ctx)?;
        }
        ctx.check_child(s, "initiator", &[], &["iqn"])?;
        if let Some(i) = s.child("initiator") {
            ctx.check_child(i.node(), "iqn", &["name"], &[])?;
        }
        ctx.check_child(s, "adapter", &["name"], &[])?;
    }
    Ok(())
}

impl Hostdev {
    /// Parses a `<hostdev>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Hostdev, XmlError> {
        let t = n.attr("type").ok_or_else(|| missing(n.attr_path("type")))?;
        check_hostdev(n, ctx)?;
        let source = match n.attr("mode").unwrap_or("subsystem") {
            "subsystem" => {
                let kind: SubsysType = t.parse().map_err(|_| {
                    XmlError::bad_value(
                        n.attr_path("type"),
                        t,
                        "unknown host device source address type",
                    )
                })?;
                parse_subsys(n, kind)?
            }
            "capabilities" => {
                if !["storage", "misc", "net"].contains(&t) {
                    return Err(XmlError::bad_value(
                        n.attr_path("type"),
                        t,
                        "unknown host device capability type",
                    ));
                }
                HostdevSource::Caps {
                    kind: t.to_owned(),
                    source: n.required_child("source")?.node().el.clone(),
                }
            }
            other => {
                return Err(XmlError::bad_value(
                    n.attr_path("mode"),
                    other,
                    "unknown hostdev mode",
                ));
            }
        };
        Ok(Hostdev {
            source,
            managed: n.yes_no_attr("managed")?.unwrap_or(false),
            sgio: n.attr("sgio").map(str::to_owned),
            rawio: n.yes_no_attr("rawio")?,
            model: n.attr("model").map(str::to_owned),
            display: n.on_off_attr("display")?,
            ramfb: n.on_off_attr("ramfb")?,
            readonly: n.child("readonly").is_some(),
            shareable: n.child("shareable").is_some(),
            teaming: match n.child("teaming") {
                None => None,
                Some(t) => {
                    let t = t.node();
                    Some((
                        t.required_parse_attr("type")?,
                        t.attr("persistent").map(str::to_owned),
                    ))
                }
            },
            info: DeviceInfo::parse(n, ctx, InfoOpts::BOOT_ROM)?,
        })
    }

    /// The subsystem type (`None` in capabilities mode).
    pub fn subsys_type(&self) -> Option<SubsysType> {
        Some(match self.source {
            HostdevSource::Usb { .. } => SubsysType::Usb,
            HostdevSource::Pci { .. } => SubsysType::Pci,
            HostdevSource::Scsi { .. } | HostdevSource::ScsiIscsi { .. } => SubsysType::Scsi,
            HostdevSource::ScsiHost { .. } => SubsysType::ScsiHost,
            HostdevSource::Mdev { .. } => SubsysType::Mdev,
            HostdevSource::Caps { .. } => return None,
        })
    }

    fn format_source(&self) -> Vec<Element> {
        let mut out = Vec::new();
        let mut s = Element::new("source");
        match &self.source {
            HostdevSource::Usb {
                vendor,
                product,
                bus_device,
                startup_policy,
                guest_reset,
            } => {
                s.set_opt_attr("startupPolicy", startup_policy.as_deref());
                s.set_opt_attr("guestReset", *guest_reset);
                if let (Some(v), Some(p)) = (vendor, product) {
                    s.push(Element::new("vendor").with_attr("id", format!("0x{v:04x}")));
                    s.push(Element::new("product").with_attr("id", format!("0x{p:04x}")));
                }
                if let Some((b, d)) = bus_device {
                    s.push(
                        Element::new("address")
                            .with_attr("bus", b)
                            .with_attr("device", d),
                    );
                }
            }
            HostdevSource::Pci {
                addr,
                driver,
                write_filtering,
            } => {
                if let Some(d) = driver {
                    out.push(Element::new("driver").with_attr("name", d));
                }
                s.set_opt_attr("writeFiltering", write_filtering.map(yes_no));
                s.push(addr.format_host());
            }
            HostdevSource::Scsi {
                adapter,
                bus,
                target,
                unit,
            } => {
                s.push(Element::new("adapter").with_attr("name", adapter));
                s.push(
                    Element::new("address")
                        .with_attr("bus", bus)
                        .with_attr("target", target)
                        .with_attr("unit", unit),
                );
            }
            HostdevSource::ScsiIscsi {
                name,
                hosts,
                auth,
                initiator_iqn,
            } => {
                s.set_attr("protocol", "iscsi");
                s.set_attr("name", name);
                for h in hosts {
                    s.push(
                        Element::new("host")
                            .with_opt_attr("name", h.name.as_deref())
                            .with_opt_attr("port", h.port),
                    );
                }
                if let Some(a) = auth {
                    s.push(format_auth(a));
                }
                if let Some(i) = initiator_iqn {
                    s.push(
                        Element::new("initiator")
                            .with_child(Element::new("iqn").with_attr("name", i)),
                    );
                }
            }
            HostdevSource::ScsiHost { protocol, wwpn } => {
                s.set_attr("protocol", protocol);
                s.set_attr("wwpn", wwpn);
            }
            HostdevSource::Mdev { uuid } => {
                s.push(Element::new("address").with_attr("uuid", uuid));
            }
            HostdevSource::Caps { source, .. } => s = source.clone(),
        }
        out.push(s);
        out
    }

    /// Formats the `<hostdev>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("hostdev");
        match (&self.source, self.subsys_type()) {
            (HostdevSource::Caps { kind, .. }, _) => {
                e.set_attr("mode", "capabilities");
                e.set_attr("type", kind);
            }
            (_, Some(t)) => {
                e.set_attr("mode", "subsystem");
                e.set_attr("type", t);
                e.set_attr("managed", yes_no(self.managed));
                if t == SubsysType::Scsi {
                    e.set_opt_attr("sgio", self.sgio.as_deref());
                    e.set_opt_attr("rawio", self.rawio.map(yes_no));
                }
                if matches!(t, SubsysType::Mdev | SubsysType::ScsiHost) {
                    e.set_opt_attr("model", self.model.as_deref());
                }
                if t == SubsysType::Mdev {
                    e.set_opt_attr("display", self.display.map(on_off));
                    e.set_opt_attr("ramfb", self.ramfb.map(on_off));
                }
            }
            _ => {}
        }
        for c in self.format_source() {
            e.push(c);
        }
        if self.readonly {
            e.push(Element::new("readonly"));
        }
        if self.shareable {
            e.push(Element::new("shareable"));
        }
        if let Some((t, p)) = &self.teaming {
            e.push(
                Element::new("teaming")
                    .with_attr("type", t)
                    .with_opt_attr("persistent", p.as_deref()),
            );
        }
        self.info.format(flags, InfoOpts::BOOT_ROM, &mut e);
        e
    }
}
