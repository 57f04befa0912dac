//! Controllers: PCI bridges and ports, USB, SCSI, SATA, virtio-serial.

use common::domain::device::Controller;
use common::domain::device::ControllerType;
use common::domain::device::controller::{
    ControllerModel, PciModel, ScsiModel, UsbModel, VirtioSerialModel,
};
use common::domain::device::virtio::VirtioOptions;

use super::{Args, BuildError, Builder, Props, Result, usb_alias};

/// The controller types in the order libvirt emits them.
const ORDER: &[ControllerType] = &[
    ControllerType::Pci,
    ControllerType::Usb,
    ControllerType::Scsi,
    ControllerType::Ide,
    ControllerType::Sata,
    ControllerType::VirtioSerial,
];

/// All controllers QEMU does not create on its own.
///
/// # Errors
/// Unsupported controller models.
pub fn build(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    for kind in ORDER {
        for c in b.def.controllers().filter(|c| c.kind == *kind) {
            if let Some(p) = controller_props(b, c)? {
                args.device(&p);
            }
        }
    }
    Ok(())
}

/// The virtio options common to virtio devices.
pub fn virtio_props(v: &VirtioOptions) -> Props {
    Props::new()
        .b_opt("iommu_platform", v.iommu)
        .b_opt("ats", v.ats)
        .b_opt("packed", v.packed)
        .b_opt("page-per-vq", v.page_per_vq)
}

fn controller_props(b: &Builder<'_>, c: &Controller) -> Result<Option<Props>> {
    let addr = b.address_props(&c.info);
    let p = match c.kind {
        ControllerType::Pci => {
            let Some(ControllerModel::Pci(model)) = c.model else {
                return Ok(None);
            };
            let t = &c.pci_target;
            let name = |default: &str| c.pci_model_name.clone().unwrap_or(default.to_owned());
            let id = format!("pci.{}", c.index);
            let hotplug = |p: Props| p.b_opt("hotplug", t.hotplug);
            match model {
                PciModel::PciRoot | PciModel::PcieRoot => return Ok(None),
                PciModel::PciBridge => Props::new()
                    .s("driver", name("pci-bridge"))
                    .i("chassis_nr", i64::from(t.chassis_nr.unwrap_or(0)))
                    .s("id", id),
                PciModel::DmiToPciBridge => Props::new()
                    .s("driver", name("i82801b11-bridge"))
                    .s("id", id),
                PciModel::PcieRootPort => hotplug(
                    Props::new()
                        .s("driver", name("pcie-root-port"))
                        .i("port", i64::from(t.port.unwrap_or(0)))
                        .i("chassis", i64::from(t.chassis.unwrap_or(0)))
                        .s("id", id),
                ),
                PciModel::PcieSwitchUpstreamPort => {
                    Props::new().s("driver", name("x3130-upstream")).s("id", id)
                }
                PciModel::PcieSwitchDownstreamPort => hotplug(
                    Props::new()
                        .s("driver", name("xio3130-downstream"))
                        .i("port", i64::from(t.port.unwrap_or(0)))
                        .i("chassis", i64::from(t.chassis.unwrap_or(0)))
                        .s("id", id),
                ),
                PciModel::PcieToPciBridge => Props::new()
                    .s("driver", name("pcie-pci-bridge"))
                    .s("id", id),
                PciModel::PciExpanderBus | PciModel::PcieExpanderBus => {
                    let default = if model == PciModel::PciExpanderBus {
                        "pxb"
                    } else {
                        "pxb-pcie"
                    };
                    let mut p = Props::new()
                        .s("driver", name(default))
                        .i("bus_nr", i64::from(t.bus_nr.unwrap_or(0)))
                        .s("id", id);
                    if let Some(n) = t.numa_node.filter(|n| *n >= 0) {
                        p = p.i("numa_node", i64::from(n));
                    }
                    p
                }
            }
        }
        ControllerType::Usb => {
            let model = match c.model {
                Some(ControllerModel::Usb(m)) => m,
                _ => UsbModel::Piix3Uhci,
            };
            let driver = match model {
                UsbModel::None => return Ok(None),
                UsbModel::Piix3Uhci => "piix3-usb-uhci",
                UsbModel::Piix4Uhci => "piix4-usb-uhci",
                UsbModel::Ehci => "usb-ehci",
                UsbModel::Ich9Ehci1 => "ich9-usb-ehci1",
                UsbModel::Ich9Uhci1 => "ich9-usb-uhci1",
                UsbModel::Ich9Uhci2 => "ich9-usb-uhci2",
                UsbModel::Ich9Uhci3 => "ich9-usb-uhci3",
                UsbModel::Vt82c686bUhci => "vt82c686b-usb-uhci",
                UsbModel::PciOhci => "pci-ohci",
                UsbModel::NecXhci => "nec-usb-xhci",
                UsbModel::QemuXhci => "qemu-xhci",
                other => {
                    return Err(BuildError::Unsupported(format!(
                        "USB controller model '{}'",
                        other.as_str()
                    )));
                }
            };
            let mut p = Props::new().s("driver", driver);
            if let Some(start) = c.info.master_startport {
                p = p
                    .s("masterbus", format!("{}.0", usb_alias(c.index)))
                    .u("firstport", u64::from(start));
            } else {
                if let Some(ports) = c.ports
                    && matches!(model, UsbModel::NecXhci | UsbModel::QemuXhci)
                {
                    p = p.u("p2", u64::from(ports)).u("p3", u64::from(ports));
                }
                p = p.s("id", usb_alias(c.index));
            }
            p
        }
        ControllerType::Scsi => {
            let model = match c.model {
                Some(ControllerModel::Scsi(m)) => m,
                _ => ScsiModel::Lsilogic,
            };
            let driver = match model {
                ScsiModel::Lsilogic | ScsiModel::Auto => "lsi",
                ScsiModel::VirtioScsi => "virtio-scsi-pci",
                ScsiModel::VirtioTransitional => "virtio-scsi-pci-transitional",
                ScsiModel::VirtioNonTransitional => "virtio-scsi-pci-non-transitional",
                ScsiModel::Lsisas1068 => "mptsas1068",
                ScsiModel::Lsisas1078 => "megasas",
                ScsiModel::Vmpvscsi => "pvscsi",
                ScsiModel::Am53c974 => "am53c974",
                ScsiModel::Dc390 => "dc-390",
                other => {
                    return Err(BuildError::Unsupported(format!(
                        "SCSI controller model '{}'",
                        other.as_str()
                    )));
                }
            };
            let mut p = Props::new().s("driver", driver);
            if driver.starts_with("virtio") {
                p = p.extend(virtio_props(&c.driver.virtio)).s_opt(
                    "iothread",
                    c.driver.iothread.map(|t| format!("iothread{t}")),
                );
            }
            p = p.s("id", format!("scsi{}", c.index));
            if driver.starts_with("virtio") {
                p = p
                    .u_opt("num_queues", c.driver.queues.map(u64::from))
                    .u_opt("cmd_per_lun", c.driver.cmd_per_lun.map(u64::from))
                    .u_opt("max_sectors", c.driver.max_sectors.map(u64::from))
                    .b_opt("ioeventfd", c.driver.ioeventfd);
            }
            p
        }
        ControllerType::Ide => {
            // The i440fx IDE controller is built in.
            if c.index == 0 && !b.is_q35() {
                return Ok(None);
            }
            return Err(BuildError::Unsupported(
                "additional IDE controllers".to_owned(),
            ));
        }
        ControllerType::Sata => {
            if c.index == 0 && b.is_q35() {
                return Ok(None);
            }
            Props::new()
                .s("driver", "ahci")
                .s("id", format!("sata{}", c.index))
        }
        ControllerType::VirtioSerial => Props::new()
            .s(
                "driver",
                match c.model {
                    Some(ControllerModel::VirtioSerial(VirtioSerialModel::VirtioTransitional)) => {
                        "virtio-serial-pci-transitional"
                    }
                    Some(ControllerModel::VirtioSerial(
                        VirtioSerialModel::VirtioNonTransitional,
                    )) => "virtio-serial-pci-non-transitional",
                    _ => "virtio-serial-pci",
                },
            )
            .extend(virtio_props(&c.driver.virtio))
            .s("id", format!("virtio-serial{}", c.index))
            .u_opt("max_ports", c.ports.map(u64::from))
            .u_opt("vectors", c.vectors.map(u64::from)),
        _ => return Ok(None),
    };
    Ok(Some(p.extend(addr)))
}
