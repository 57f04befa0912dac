//! `<controller>`: buses disks and other devices plug into.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, attr_memory_kib, child_int, on_off};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<controller type=>`.
    pub enum ControllerType {
        Ide = "ide", Fdc = "fdc", Scsi = "scsi", Sata = "sata", VirtioSerial = "virtio-serial",
        Ccid = "ccid", Usb = "usb", Pci = "pci", Xenbus = "xenbus", Isa = "isa",
    }
}

xml_enum! {
    /// SCSI controller models.
    pub enum ScsiModel {
        Auto = "auto", Buslogic = "buslogic", Lsilogic = "lsilogic", Lsisas1068 = "lsisas1068",
        Vmpvscsi = "vmpvscsi", Ibmvscsi = "ibmvscsi", VirtioScsi = "virtio-scsi",
        Lsisas1078 = "lsisas1078", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional", Ncr53c90 = "ncr53c90",
        Am53c974 = "am53c974", Dc390 = "dc390",
    }
}

xml_enum! {
    /// USB controller models.
    pub enum UsbModel {
        Piix3Uhci = "piix3-uhci", Piix4Uhci = "piix4-uhci", Ehci = "ehci",
        Ich9Ehci1 = "ich9-ehci1", Ich9Uhci1 = "ich9-uhci1", Ich9Uhci2 = "ich9-uhci2",
        Ich9Uhci3 = "ich9-uhci3", Vt82c686bUhci = "vt82c686b-uhci", PciOhci = "pci-ohci",
        NecXhci = "nec-xhci", Qusb1 = "qusb1", Qusb2 = "qusb2", QemuXhci = "qemu-xhci", None = "none",
    }
}

xml_enum! {
    /// PCI controller models.
    pub enum PciModel {
        PciRoot = "pci-root", PcieRoot = "pcie-root", PciBridge = "pci-bridge",
        DmiToPciBridge = "dmi-to-pci-bridge", PcieRootPort = "pcie-root-port",
        PcieSwitchUpstreamPort = "pcie-switch-upstream-port",
        PcieSwitchDownstreamPort = "pcie-switch-downstream-port",
        PciExpanderBus = "pci-expander-bus", PcieExpanderBus = "pcie-expander-bus",
        PcieToPciBridge = "pcie-to-pci-bridge",
    }
}

xml_enum! {
    /// IDE controller models.
    pub enum IdeModel { Piix3 = "piix3", Piix4 = "piix4", Ich6 = "ich6" }
}

xml_enum! {
    /// virtio-serial controller models.
    pub enum VirtioSerialModel {
        Virtio = "virtio", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

xml_enum! {
    /// ISA controller models (none defined).
    pub enum IsaModel { None = "none" }
}

/// A controller model, typed by controller type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControllerModel {
    /// SCSI.
    Scsi(ScsiModel),
    /// USB.
    Usb(UsbModel),
    /// PCI.
    Pci(PciModel),
    /// IDE.
    Ide(IdeModel),
    /// virtio-serial.
    VirtioSerial(VirtioSerialModel),
}

impl ControllerModel {
    /// The XML spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ControllerModel::Scsi(m) => m.as_str(),
            ControllerModel::Usb(m) => m.as_str(),
            ControllerModel::Pci(m) => m.as_str(),
            ControllerModel::Ide(m) => m.as_str(),
            ControllerModel::VirtioSerial(m) => m.as_str(),
        }
    }
}

/// `<controller type='pci'><target>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciTarget {
    /// `chassisNr=`.
    pub chassis_nr: Option<i32>,
    /// `chassis=`.
    pub chassis: Option<i32>,
    /// `port=`.
    pub port: Option<i32>,
    /// `busNr=`.
    pub bus_nr: Option<i32>,
    /// `index=`.
    pub index: Option<i32>,
    /// `hotplug=`.
    pub hotplug: Option<bool>,
    /// `memReserve=` (KiB).
    pub mem_reserve: Option<u64>,
    /// `<node>`.
    pub numa_node: Option<i32>,
}

/// `<controller><driver>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerDriver {
    /// `queues=`.
    pub queues: Option<u32>,
    /// `cmd_per_lun=`.
    pub cmd_per_lun: Option<u32>,
    /// `max_sectors=`.
    pub max_sectors: Option<u32>,
    /// `ioeventfd=`.
    pub ioeventfd: Option<bool>,
    /// `iothread=`.
    pub iothread: Option<u32>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// `<iothreads>` mapping, kept as written.
    pub iothreads: Option<Element>,
}

/// A controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller {
    /// `type=`.
    pub kind: ControllerType,
    /// `index=`.
    pub index: u32,
    /// `model=`.
    pub model: Option<ControllerModel>,
    /// `ports=` (usb, virtio-serial).
    pub ports: Option<u32>,
    /// `vectors=` (virtio-serial).
    pub vectors: Option<u32>,
    /// `maxGrantFrames=` (xenbus).
    pub max_grant_frames: Option<u32>,
    /// `maxEventChannels=` (xenbus).
    pub max_event_channels: Option<u32>,
    /// `<model name=>` (pci).
    pub pci_model_name: Option<String>,
    /// `<target>` (pci).
    pub pci_target: PciTarget,
    /// `<pcihole64>` in KiB (pci root).
    pub pcihole64: Option<u64>,
    /// `<driver>`.
    pub driver: ControllerDriver,
    /// Address, alias, USB master.
    pub info: DeviceInfo,
}

fn parse_model(n: Node<'_>, kind: ControllerType) -> Result<Option<ControllerModel>, XmlError> {
    let Some(m) = n.attr("model") else {
        return Ok(None);
    };
    let bad = || XmlError::bad_value(n.attr_path("model"), m, "Unknown model type");
    Ok(Some(match kind {
        ControllerType::Scsi => ControllerModel::Scsi(m.parse().map_err(|_| bad())?),
        ControllerType::Usb => ControllerModel::Usb(m.parse().map_err(|_| bad())?),
        ControllerType::Pci => ControllerModel::Pci(m.parse().map_err(|_| bad())?),
        ControllerType::Ide => ControllerModel::Ide(m.parse().map_err(|_| bad())?),
        ControllerType::VirtioSerial => {
            ControllerModel::VirtioSerial(m.parse().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    }))
}

fn int_attr(n: Node<'_>, a: &str) -> Result<Option<i32>, XmlError> {
    match n.attr(a) {
        None => Ok(None),
        Some(v) => super::address::parse_base0(v)
            .and_then(|x| i32::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| XmlError::bad_value(n.attr_path(a), v, "Invalid value for attribute")),
    }
}

impl Controller {
    /// A controller of `kind` with `index` and nothing else.
    pub fn new(kind: ControllerType, index: u32) -> Controller {
        Controller {
            kind,
            index,
            model: None,
            ports: None,
            vectors: None,
            max_grant_frames: None,
            max_event_channels: None,
            pci_model_name: None,
            pci_target: PciTarget::default(),
            pcihole64: None,
            driver: ControllerDriver::default(),
            info: DeviceInfo::default(),
        }
    }

    /// Parses a `<controller>`; `index` is `None` when not given.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(Controller, bool), XmlError> {
        ctx.check(
            n,
            &[
                "type",
                "index",
                "model",
                "ports",
                "vectors",
                "maxGrantFrames",
                "maxEventChannels",
            ],
            &[
                "driver",
                "model",
                "target",
                "pcihole64",
                "alias",
                "address",
                "master",
                "acpi",
            ],
        )?;
        ctx.check_child(
            n,
            "driver",
            &[
                "queues",
                "cmd_per_lun",
                "max_sectors",
                "ioeventfd",
                "iothread",
                "iommu",
                "ats",
                "packed",
                "page_per_vq",
            ],
            &["iothreads"],
        )?;
        ctx.check_child(n, "model", &["name"], &[])?;
        ctx.check_child(
            n,
            "target",
            &[
                "chassisNr",
                "chassis",
                "port",
                "busNr",
                "index",
                "hotplug",
                "memReserve",
                "unit",
            ],
            &["node"],
        )?;
        if let Some(t) = n.child("target") {
            ctx.check_leaves(t.node(), &["node"])?;
        }
        ctx.check_child(n, "pcihole64", &["unit"], &[])?;
        let kind: ControllerType = match n.attr("type") {
            None => ControllerType::Ide,
            Some(v) => v.parse().map_err(|_| {
                XmlError::bad_value(n.attr_path("type"), v, "Unknown controller type")
            })?,
        };
        let (index, has_index) = match n.attr("index") {
            None => (0, false),
            Some(v) => {
                let i: i64 = v.trim().parse().map_err(|_| {
                    XmlError::bad_value(
                        n.attr_path("index"),
                        v,
                        "Invalid value for attribute 'index' in element 'controller':",
                    )
                })?;
                let i = u32::try_from(i).map_err(|_| {
                    XmlError::invalid(
                        n.attr_path("index"),
                        format!(
                            "Invalid value for attribute 'index' in element 'controller': '{v}'. Expected non-negative value"
                        ),
                    )
                })?;
                (i, true)
            }
        };
        let mut c = Controller::new(kind, index);
        c.model = parse_model(n, kind)?;
        if matches!(kind, ControllerType::Usb | ControllerType::VirtioSerial) {
            c.ports = n.uint_attr("ports")?;
        }
        if kind == ControllerType::VirtioSerial {
            c.vectors = n.uint_attr("vectors")?;
        }
        if kind == ControllerType::Xenbus {
            c.max_grant_frames = n.uint_attr("maxGrantFrames")?;
            c.max_event_channels = n.uint_attr("maxEventChannels")?;
        }
        if let Some(d) = n.child("driver") {
            let d = d.node();
            c.driver = ControllerDriver {
                queues: d.uint_attr("queues")?,
                cmd_per_lun: d.uint_attr("cmd_per_lun")?,
                max_sectors: d.uint_attr("max_sectors")?,
                ioeventfd: d.on_off_attr("ioeventfd")?,
                iothread: d.uint_attr("iothread")?,
                virtio: VirtioOptions::parse(d)?,
                iothreads: d.child("iothreads").map(|c| c.node().el.clone()),
            };
        }
        if kind == ControllerType::Pci {
            c.pci_model_name = n
                .child("model")
                .and_then(|m| m.node().attr("name").map(str::to_owned));
            if let Some(t) = n.child("target") {
                let t = t.node();
                c.pci_target = PciTarget {
                    chassis_nr: int_attr(t, "chassisNr")?,
                    chassis: int_attr(t, "chassis")?,
                    port: int_attr(t, "port")?,
                    bus_nr: int_attr(t, "busNr")?,
                    index: int_attr(t, "index")?,
                    hotplug: t.on_off_attr("hotplug")?,
                    mem_reserve: attr_memory_kib(t, "memReserve", "unit")?,
                    numa_node: child_int(t, "node")?,
                };
            }
            if let Some(h) = n.child("pcihole64") {
                let h = h.node();
                c.pcihole64 = Some(super::super::util::memory_kib(h)?);
            }
        }
        c.info = DeviceInfo::parse(n, ctx, InfoOpts::NONE)?;
        // An ICH9 UHCI companion is known as one when it is inserted (so
        // its EHCI master goes before it), with its usual start port.
        if c.info.master_startport.is_none()
            && let Some(ControllerModel::Usb(m)) = c.model
        {
            c.info.master_startport = match m {
                UsbModel::Ich9Uhci1 => Some(0),
                UsbModel::Ich9Uhci2 => Some(2),
                UsbModel::Ich9Uhci3 => Some(4),
                _ => None,
            };
        }
        Ok((c, has_index))
    }

    /// Formats the `<controller>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("controller")
            .with_attr("type", self.kind)
            .with_attr("index", self.index)
            .with_opt_attr("model", self.model.map(|m| m.as_str()))
            .with_opt_attr("ports", self.ports)
            .with_opt_attr("vectors", self.vectors)
            .with_opt_attr("maxGrantFrames", self.max_grant_frames)
            .with_opt_attr("maxEventChannels", self.max_event_channels);
        if self.kind == ControllerType::Pci {
            if let Some(m) = &self.pci_model_name {
                e.push(Element::new("model").with_attr("name", m));
            }
            let t = &self.pci_target;
            let mut te = Element::new("target")
                .with_opt_attr("chassisNr", t.chassis_nr)
                .with_opt_attr("chassis", t.chassis)
                .with_opt_attr("port", t.port.map(|p| format!("0x{p:x}")))
                .with_opt_attr("busNr", t.bus_nr)
                .with_opt_attr("index", t.index)
                .with_opt_attr("hotplug", t.hotplug.map(on_off));
            if let Some(m) = t.mem_reserve {
                te.set_attr("memReserve", m);
            }
            if let Some(node) = t.numa_node {
                te.push(Element::text_element("node", node.to_string()));
            }
            if !te.is_empty() {
                e.push(te);
            }
        }
        let d = &self.driver;
        let mut de = Element::new("driver")
            .with_opt_attr("queues", d.queues)
            .with_opt_attr("cmd_per_lun", d.cmd_per_lun)
            .with_opt_attr("max_sectors", d.max_sectors)
            .with_opt_attr("ioeventfd", d.ioeventfd.map(on_off))
            .with_opt_attr("iothread", d.iothread);
        d.virtio.format(&mut de);
        de.push_opt(d.iothreads.clone());
        if !de.is_empty() {
            e.push(de);
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        if let Some(h) = self.pcihole64 {
            e.push(
                Element::new("pcihole64")
                    .with_attr("unit", "KiB")
                    .with_text(h.to_string()),
            );
        }
        e
    }
}
