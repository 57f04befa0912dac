//! The QEMU driver's refusals (libvirt's `qemuValidateDomainDef` and
//! `qemuValidateDomainDeviceDef`), over the emulator's capabilities.
//! Read-only: nothing here changes the definition.

use common::domain::device::address::Address;
use common::domain::device::chr::{ChrTarget, SerialTargetType};
use common::domain::device::controller::{ControllerModel, ControllerType, PciModel, UsbModel};
use common::domain::device::disk::DiskBus;
use common::domain::device::input::InputBus;
use common::domain::device::iommu::IommuModel;
use common::domain::device::memorydev::MemoryDevice;
use common::domain::device::storage::ImageFormat;
use common::domain::{Device, DomainDef, VirtType};
use common::xml::XmlError;

use super::postparse::{Machine, accel_of, machine_of};
use crate::caps::QemuCaps;

fn unsupported(path: &str, msg: impl Into<String>) -> XmlError {
    XmlError::unsupported(path, msg)
}

/// `qemuValidateDomainDef`.
pub(super) fn domain(caps: &QemuCaps, def: &DomainDef) -> Result<(), XmlError> {
    let emulator = def.emulator.as_deref().unwrap_or_default();
    if !matches!(def.virt_type, VirtType::Qemu | VirtType::Kvm) {
        return Err(unsupported(
            "@type",
            format!(
                "Emulator '{emulator}' does not support virt type '{}'",
                def.virt_type.as_str()
            ),
        ));
    }
    let arch = def.os.arch.as_deref().unwrap_or_default();
    let arch_ok = arch == caps.arch || (caps.arch == "x86_64" && arch == "i686");
    if !arch_ok {
        return Err(unsupported(
            "os/type/@arch",
            format!("Emulator '{emulator}' does not support arch '{arch}'"),
        ));
    }
    if let Some(m) = def.os.machine.as_deref()
        && caps.machine(accel_of(def), m).is_none()
    {
        return Err(unsupported(
            "os/type",
            format!("Emulator '{emulator}' does not support machine type '{m}'"),
        ));
    }
    let machine = machine_of(def);
    firmware(def)?;
    if let Some(mt) = def
        .os
        .machine
        .as_deref()
        .and_then(|m| caps.machine(accel_of(def), m))
        && mt.max_cpus > 0
        && def.vcpus.max() > mt.max_cpus
    {
        return Err(unsupported(
            "vcpu",
            format!(
                "Maximum CPUs greater than specified machine type limit {}",
                mt.max_cpus
            ),
        ));
    }
    let f = &def.features;
    if f.tseg.is_some() && machine != Machine::Q35 {
        return Err(unsupported(
            "features/smm",
            "SMM TSEG is only supported with q35 machine type",
        ));
    }
    if f.hpt.is_some() {
        return Err(unsupported(
            "features/hpt",
            format!(
                "The 'hpt' feature is not supported for architecture '{}' or machine type '{}'",
                def.os.arch.as_deref().unwrap_or_default(),
                def.os.machine.as_deref().unwrap_or_default()
            ),
        ));
    }
    if f.ps2 == Some(false) {
        if f.vmport == Some(true) {
            return Err(unsupported(
                "features/vmport",
                "vmport feature requires the ps2 feature not to be disabled",
            ));
        }
        if def
            .devices
            .iter()
            .any(|d| matches!(d, Device::Input(i) if i.bus == InputBus::Ps2))
        {
            return Err(unsupported(
                "devices/input",
                "ps2 bus inputs require the ps2 feature not to be disabled",
            ));
        }
    }
    use common::domain::device::graphics::GraphicsType;
    let graphics: Vec<_> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Graphics(g) => Some(g.as_ref()),
            _ => None,
        })
        .collect();
    let gl_displays = graphics
        .iter()
        .filter(|g| {
            g.kind == Some(GraphicsType::EglHeadless)
                || (matches!(
                    g.kind,
                    Some(GraphicsType::Spice | GraphicsType::Sdl | GraphicsType::Dbus)
                ) && g.gl.as_ref().is_some_and(|(e, _)| *e == Some(true)))
        })
        .count();
    if gl_displays > 1 {
        return Err(unsupported(
            "devices/graphics",
            "multiple OpenGL displays are not supported by QEMU",
        ));
    }
    let mut ramfb = 0;
    for d in &def.devices {
        if let Device::Hostdev(h) = d {
            if h.display == Some(true) && graphics.is_empty() {
                return Err(unsupported(
                    "devices/hostdev",
                    "graphics device is needed for attribute value 'display=on' in <hostdev>",
                ));
            }
            if h.ramfb == Some(true) {
                ramfb += 1;
            }
        }
    }
    if ramfb > 1 {
        return Err(unsupported(
            "devices/hostdev",
            "Only one vgpu device can have 'ramfb' enabled",
        ));
    }
    if def.memory.max_memory > 0 {
        let cells = def
            .cpu
            .as_ref()
            .and_then(|c| c.numa.as_ref())
            .map_or(0, |n| n.cells.len());
        if cells == 0 {
            return Err(unsupported(
                "maxMemory",
                "At least one numa node has to be configured when enabling memory hotplug",
            ));
        }
    }
    if let Some(Device::Controller(_)) = def.devices.iter().find(|d| {
        matches!(d, Device::Controller(c) if c.kind == ControllerType::Pci
            && c.index == 0
            && c.model != Some(ControllerModel::Pci(PciModel::PcieRoot)))
    }) && machine == Machine::Q35
    {
        let found = def
            .controllers()
            .find(|c| c.kind == ControllerType::Pci && c.index == 0)
            .and_then(|c| c.model)
            .map_or("", |m| m.as_str());
        return Err(XmlError::invalid(
            "devices/controller",
            format!(
                "The PCI controller with index='0' must be model='pcie-root' for this machine type, but model='{found}' was found instead"
            ),
        ));
    }
    if machine == Machine::I440fx
        && let Some(c) = def.controllers().find(|c| {
            c.kind == ControllerType::Pci
                && c.index == 0
                && c.model == Some(ControllerModel::Pci(PciModel::PcieRoot))
        })
    {
        return Err(XmlError::invalid(
            "devices/controller",
            format!(
                "The PCI controller with index='0' must be model='pci-root' for this machine type, but model='{}' was found instead",
                c.model.map_or("", |m| m.as_str())
            ),
        ));
    }
    let ides = def
        .controllers()
        .filter(|c| c.kind == ControllerType::Ide)
        .count();
    if ides > 0 && matches!(machine, Machine::Q35 | Machine::Microvm) {
        return Err(unsupported(
            "devices/controller",
            "IDE controllers are unsupported for this QEMU binary or machine type",
        ));
    }
    if ides > 1 && machine == Machine::I440fx {
        return Err(unsupported(
            "devices/controller",
            "Only a single IDE controller is supported for this machine type",
        ));
    }
    Ok(())
}

/// Loader and NVRAM combinations (`qemuValidateDomainDefBoot`).
fn firmware(def: &DomainDef) -> Result<(), XmlError> {
    use common::domain::os::{Firmware, LoaderType};
    let Some(l) = def.os.loader.as_ref() else {
        return Ok(());
    };
    let wants_nvram = l.stateless == Some(false) || l.nvram.is_some();
    if wants_nvram {
        if def.os.firmware == Some(Firmware::Bios) {
            return Err(unsupported("os/nvram", "Only EFI firmware permits NVRAM"));
        }
        if def.os.firmware.is_none() && l.kind != Some(LoaderType::Pflash) {
            return Err(unsupported(
                "os/nvram",
                "Only pflash loader type permits NVRAM",
            ));
        }
    }
    let efi = def.os.firmware == Some(Firmware::Efi)
        || (def.os.firmware.is_none() && l.kind == Some(LoaderType::Pflash));
    if efi && !def.features.acpi && matches!(def.os.arch.as_deref(), Some("x86_64" | "i686")) {
        return Err(unsupported(
            "features/acpi",
            "UEFI requires ACPI on this architecture",
        ));
    }
    Ok(())
}

/// Where a memory device sits in guest memory, in bytes: an explicit
/// base (`<target><address base=>` for virtio-mem and virtio-pmem,
/// `<address type='dimm' base=>` for DIMMs) and the device's size.
fn memory_range(m: &MemoryDevice) -> Option<(u64, u64)> {
    let base = match (m.base, &m.info.address) {
        (Some(b), _) => b,
        (None, Some(Address::Dimm { base, .. })) => *base,
        _ => 0,
    };
    (base > 0).then(|| (base, base.saturating_add(m.size.saturating_mul(1024))))
}

/// Memory devices whose explicit ranges overlap
/// (`virDomainMemoryDefCheckConflict`): refused when another device
/// starts inside this one's range.
fn memory_overlap(def: &DomainDef, mem: &MemoryDevice) -> Result<(), XmlError> {
    let Some((start, end)) = memory_range(mem) else {
        return Ok(());
    };
    for d in &def.devices {
        let Device::Memory(other) = d else { continue };
        if std::ptr::eq(other.as_ref(), mem) {
            continue;
        }
        if let Some((other_start, _)) = memory_range(other)
            && start <= other_start
            && end > other_start
        {
            return Err(unsupported(
                "devices/memory/target/address",
                format!(
                    "memory device address [0x{start:x}:0x{end:x}] overlaps with other memory device (0x{other_start:x})"
                ),
            ));
        }
    }
    Ok(())
}

/// `qemuValidateDomainDeviceDef`.
pub(super) fn device(caps: &QemuCaps, def: &DomainDef, dev: &Device) -> Result<(), XmlError> {
    let _ = caps;
    let machine = machine_of(def);
    if let Some(Address::Pci(p)) = dev.info().and_then(|i| i.address.as_ref())
        && p.zpci.is_some()
    {
        return Err(unsupported(
            "devices/address/zpci",
            "This QEMU binary doesn't support zPCI",
        ));
    }
    let usb_disabled = def.controllers().any(|c| {
        c.kind == ControllerType::Usb && c.model == Some(ControllerModel::Usb(UsbModel::None))
    });
    match dev {
        Device::Disk(d) => {
            if d.src.format == Some(ImageFormat::Cow) {
                return Err(unsupported(
                    "devices/disk/driver",
                    "'cow' storage format is not supported",
                ));
            }
            if d.shareable && !d.readonly && d.src.format.is_some_and(|f| f != ImageFormat::Raw) {
                return Err(unsupported(
                    "devices/disk/shareable",
                    format!(
                        "shared access for disk '{}' requires use of supported storage format",
                        d.target.dev
                    ),
                ));
            }
            if d.bus() == DiskBus::Usb && matches!(d.info.address, Some(Address::Pci(_))) {
                return Err(XmlError::invalid(
                    "devices/disk/address",
                    "unexpected address type for usb disk",
                ));
            }
        }
        Device::Controller(c) => {
            if c.kind == ControllerType::Usb
                && c.info.master_startport.is_some()
                && !def.controllers().any(|m| {
                    m.kind == ControllerType::Usb
                        && m.index == c.index
                        && m.info.master_startport.is_none()
                })
            {
                return Err(XmlError::invalid(
                    "devices/controller/master",
                    "No master USB controller specified",
                ));
            }
            if c.kind == ControllerType::Usb
                && let Some(ControllerModel::Usb(m @ (UsbModel::NecXhci | UsbModel::QemuXhci))) =
                    c.model
                && c.ports.is_some_and(|p| p > 15)
            {
                return Err(unsupported(
                    "devices/controller/@ports",
                    format!("'{}' controller only supports up to '15' ports", m.as_str()),
                ));
            }
            if c.kind == ControllerType::Pci
                && c.model == Some(ControllerModel::Pci(PciModel::PcieExpanderBus))
                && machine != Machine::Q35
            {
                return Err(unsupported(
                    "devices/controller",
                    "pcie-expander-bus controllers are not supported with this machine type",
                ));
            }
        }
        Device::Channel(c) | Device::Serial(c) | Device::Console(c) | Device::Parallel(c)
            if matches!(
                &c.source.backend,
                common::domain::device::chardev::ChrBackend::Unix {
                    listen: true,
                    reconnect: Some(r),
                    ..
                } | common::domain::device::chardev::ChrBackend::Tcp {
                    listen: true,
                    reconnect: Some(r),
                    ..
                } if r.enabled
            ) =>
        {
            return Err(XmlError::invalid(
                "devices/source/reconnect",
                "chardev reconnect is possible only for connect mode",
            ));
        }
        Device::Video(v)
            if !v.primary
                && !matches!(
                    v.kind,
                    common::domain::device::video::VideoType::Qxl
                        | common::domain::device::video::VideoType::Virtio
                        | common::domain::device::video::VideoType::None
                ) =>
        {
            return Err(unsupported(
                "devices/video/model",
                format!(
                    "video type '{}' is only valid as primary video device",
                    v.kind.as_str()
                ),
            ));
        }
        Device::Input(i) if i.bus == InputBus::Usb && usb_disabled => {
            return Err(unsupported(
                "devices/input",
                "Can't add USB input device. USB bus is disabled",
            ));
        }
        Device::Serial(c) => {
            if let ChrTarget::Serial {
                kind: Some(SerialTargetType::SpaprVioSerial | SerialTargetType::SclpSerial),
                model,
                ..
            } = &c.target
            {
                let (t, m) = match &c.target {
                    ChrTarget::Serial { kind: Some(k), .. } => (k.as_str(), model),
                    _ => ("", model),
                };
                return Err(unsupported(
                    "devices/serial/target",
                    format!(
                        "Serial device with target type '{t}' and target model '{}' not compatible with guest architecture or machine type",
                        m.map_or("none", |m| m.as_str())
                    ),
                ));
            }
        }
        Device::Memory(m) => memory_overlap(def, m)?,
        Device::Iommu(io) => match io.model {
            IommuModel::Intel => {
                if machine != Machine::Q35 {
                    return Err(unsupported(
                        "devices/iommu",
                        "IOMMU device: 'intel' is only supported with Q35 machines",
                    ));
                }
                if io.intremap == Some(true)
                    && def.features.ioapic != Some(common::domain::features::IoapicDriver::Qemu)
                {
                    return Err(unsupported(
                        "devices/iommu/driver",
                        "IOMMU interrupt remapping requires split I/O APIC (ioapic driver='qemu')",
                    ));
                }
                if io.eim == Some(true) && io.intremap != Some(true) {
                    return Err(unsupported(
                        "devices/iommu/driver",
                        "IOMMU eim requires interrupt remapping to be enabled",
                    ));
                }
            }
            IommuModel::Virtio => {
                if machine != Machine::Q35 {
                    return Err(unsupported(
                        "devices/iommu",
                        "IOMMU device: 'virtio' is only supported with Q35 and ARM Virt machines",
                    ));
                }
                if !def.features.acpi {
                    return Err(unsupported(
                        "devices/iommu",
                        "IOMMU device: 'virtio' requires ACPI",
                    ));
                }
                match &io.info.address {
                    Some(Address::Pci(p)) if !p.is_empty() && p.bus != 0 => {
                        return Err(XmlError::invalid(
                            "devices/iommu/address",
                            format!(
                                "The device at PCI address {:04x}:{:02x}:{:02x}.{:x} needs to be an integrated device (bus=0)",
                                p.domain, p.bus, p.slot, p.function
                            ),
                        ));
                    }
                    None | Some(Address::Pci(_)) => {}
                    Some(_) => {
                        return Err(unsupported(
                            "devices/iommu",
                            "IOMMU device: 'virtio' needs a PCI address",
                        ));
                    }
                }
            }
            _ => {}
        },
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use common::domain::GenericHooks;
    use common::xml::ParseFlags;

    use super::*;

    fn def(mems: &str) -> DomainDef {
        DomainDef::parse_str(
            &format!(
                "<domain type='kvm'><name>g</name><memory>4194304</memory>\
                 <os><type>hvm</type></os><devices>{mems}</devices></domain>"
            ),
            ParseFlags::default(),
            &GenericHooks,
        )
        .expect("parsed")
    }

    fn check(d: &DomainDef) -> Result<(), XmlError> {
        d.devices.iter().try_for_each(|dev| match dev {
            Device::Memory(m) => memory_overlap(d, m),
            _ => Ok(()),
        })
    }

    fn virtio_mem(base: &str, kib: u64) -> String {
        format!(
            "<memory model='virtio-mem'><target><size unit='KiB'>{kib}</size><node>0</node>\
             <block unit='KiB'>2048</block><requested unit='KiB'>0</requested>\
             <address base='{base}'/></target></memory>"
        )
    }

    #[test]
    fn overlapping_memory_device_ranges_are_refused() {
        // 1 GiB at 5 GiB reaches past 5.75 GiB, where the second starts.
        let d = def(&format!(
            "{}{}",
            virtio_mem("0x140000000", 1048576),
            virtio_mem("0x170000000", 2097152)
        ));
        let e = check(&d).expect_err("overlap");
        assert!(
            e.to_string().ends_with(
                "memory device address [0x140000000:0x180000000] overlaps with other memory device (0x170000000)"
            ),
            "{e}"
        );
        // The same, listed the other way round, and against a DIMM.
        let d = def(&format!(
            "{}<memory model='dimm'><target><size unit='KiB'>1048576</size><node>0</node>\
             </target><address type='dimm' slot='0' base='0x140000000'/></memory>",
            virtio_mem("0x170000000", 2097152)
        ));
        assert!(check(&d).is_err());
        // Adjacent ranges, and devices without a base, are fine.
        let d = def(&format!(
            "{}{}{}",
            virtio_mem("0x140000000", 1048576),
            virtio_mem("0x180000000", 1048576),
            "<memory model='dimm'><target><size unit='KiB'>1048576</size></target></memory>"
        ));
        check(&d).expect("adjacent");
    }
}
