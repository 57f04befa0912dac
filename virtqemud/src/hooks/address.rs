//! Address assignment (libvirt's `qemuDomainAssignAddresses` for x86):
//!
//! ```text
//!   chipset slots   pc: 0:1.1 IDE, 0:1.2 USB, 0:2.0 primary video
//!                   q35: 0:1f.2 SATA, 0:1d.x ICH9 USB, 0:1.0 primary video
//!   q35 only        enough pcie-root-ports (one spare), 8 functions a slot
//!   devices         in libvirt's order: PCI controllers, filesystems,
//!                   interfaces, sound, other controllers, disks, hostdevs,
//!                   balloon, rng, watchdog, video, shmem, input, serial,
//!                   vsock, crypto; first free slot after the last one
//!   then            controller model names, chassis/port numbers
//! ```

use std::collections::BTreeSet;

use common::domain::device::address::{Address, PciAddress};
use common::domain::device::chr::{ChrTarget, SerialTargetType};
use common::domain::device::controller::{
    Controller, ControllerModel, ControllerType, PciModel, UsbModel,
};
use common::domain::device::disk::DiskBus;
use common::domain::device::input::InputBus;
use common::domain::device::memballoon::BalloonModel;
use common::domain::device::video::VideoType;
use common::domain::device::watchdog::WatchdogModel;
use common::domain::{Device, DomainDef};
use common::xml::XmlError;

use super::postparse::{Machine, machine_of};
use crate::caps::QemuCaps;

/// `qemuDomainAssignAddresses`.
pub(super) fn assign(caps: &QemuCaps, def: &mut DomainDef) -> Result<(), XmlError> {
    let machine = machine_of(def);
    // Controllers the generic step added after the device hooks ran.
    for i in 0..def.devices.len() {
        if matches!(def.devices[i], Device::Controller(_)) {
            let mut dev = def.devices[i].clone();
            super::postparse::device(caps, def, &mut dev)?;
            def.devices[i] = dev;
        }
    }
    assign_spapr_vio(def);
    assign_virtio_serial(def);
    assign_ccid(def);
    number_virtio_consoles(def);
    if machine != Machine::Q35
        && def
            .controllers()
            .any(|c| pci_model(c) == Some(PciModel::PcieExpanderBus))
    {
        return Err(XmlError::unsupported(
            "devices/controller",
            "pcie-expander-bus controllers are not supported with this machine type",
        ));
    }
    match machine {
        Machine::I440fx | Machine::Q35 => assign_pci(def, machine == Machine::Q35)?,
        Machine::Isapc if def.devices.iter().any(|d| conn(d, false).is_some()) => {
            return Err(XmlError::invalid("devices", "No PCI buses available"));
        }
        _ => {}
    }
    set_pci_controller_defaults(def);
    check_usb(def)?;
    Ok(())
}

/// How a device connects to a PCI bus (libvirt's `VIR_PCI_CONNECT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// A conventional PCI endpoint.
    Pci,
    /// A PCI Express endpoint.
    Pcie,
    /// pcie-root-port.
    RootPort,
    /// pcie-switch-upstream-port.
    Upstream,
    /// pcie-switch-downstream-port.
    Downstream,
    /// pci-bridge.
    PciBridge,
    /// dmi-to-pci-bridge.
    Dmi,
    /// pcie-to-pci-bridge.
    PcieToPci,
    /// pci-expander-bus / pcie-expander-bus.
    Expander(bool),
    /// A device that must sit on the root bus (virtio-iommu).
    Integrated,
}

/// What a PCI controller provides to the devices behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BusKind {
    PciRoot,
    PcieRoot,
    Port,
    Upstream,
    PciBridge,
    Dmi,
    Pxb,
    PxbPcie,
}

impl BusKind {
    fn of(m: PciModel) -> BusKind {
        match m {
            PciModel::PciRoot => BusKind::PciRoot,
            PciModel::PcieRoot => BusKind::PcieRoot,
            PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort => BusKind::Port,
            PciModel::PcieSwitchUpstreamPort => BusKind::Upstream,
            PciModel::PciBridge | PciModel::PcieToPciBridge => BusKind::PciBridge,
            PciModel::DmiToPciBridge => BusKind::Dmi,
            PciModel::PciExpanderBus => BusKind::Pxb,
            PciModel::PcieExpanderBus => BusKind::PxbPcie,
        }
    }

    fn slots(self) -> (u32, u32) {
        match self {
            BusKind::PciRoot | BusKind::PcieRoot | BusKind::PciBridge => (1, 31),
            BusKind::Port | BusKind::PxbPcie => (0, 0),
            BusKind::Upstream | BusKind::Dmi | BusKind::Pxb => (0, 31),
        }
    }

    fn accepts(self, c: Conn) -> bool {
        match self {
            BusKind::PciRoot => matches!(
                c,
                Conn::Pci | Conn::Pcie | Conn::PciBridge | Conn::Expander(false) | Conn::Integrated
            ),
            BusKind::PcieRoot => matches!(
                c,
                Conn::RootPort | Conn::Dmi | Conn::Expander(true) | Conn::Integrated
            ),
            BusKind::Port => matches!(c, Conn::Pcie | Conn::Upstream | Conn::PcieToPci),
            BusKind::Upstream => c == Conn::Downstream,
            // dmi-to-pci-bridge has no hotplug: only bridges go there.
            BusKind::Dmi => c == Conn::PciBridge,
            BusKind::PciBridge | BusKind::Pxb => matches!(c, Conn::Pci | Conn::PciBridge),
            BusKind::PxbPcie => c == Conn::RootPort,
        }
    }
}

fn unaddressed(info: &common::domain::device::DeviceInfo) -> bool {
    match &info.address {
        None => true,
        Some(Address::Pci(p)) => p.is_empty(),
        _ => false,
    }
}

fn pci_model(c: &Controller) -> Option<PciModel> {
    match c.model {
        Some(ControllerModel::Pci(m)) => Some(m),
        _ => None,
    }
}

fn is_ich9_usb(c: &Controller) -> bool {
    matches!(
        c.model,
        Some(ControllerModel::Usb(
            UsbModel::Ich9Ehci1 | UsbModel::Ich9Uhci1 | UsbModel::Ich9Uhci2 | UsbModel::Ich9Uhci3
        ))
    )
}

/// How `dev` connects, if it needs a PCI address (`None`: not on PCI or
/// already placed). On a conventional-PCI machine everything is PCI.
fn conn(dev: &Device, q35: bool) -> Option<Conn> {
    let info = dev.info()?;
    if !unaddressed(info) {
        return None;
    }
    let pcie = |b: bool| Some(if b && q35 { Conn::Pcie } else { Conn::Pci });
    let virtio_model = |m: &str| m == "virtio" || m == "virtio-non-transitional";
    match dev {
        Device::Controller(c) => match c.kind {
            ControllerType::Pci => match pci_model(c)? {
                PciModel::PciRoot | PciModel::PcieRoot => None,
                PciModel::PcieRootPort => Some(Conn::RootPort),
                PciModel::PcieSwitchUpstreamPort => Some(Conn::Upstream),
                PciModel::PcieSwitchDownstreamPort => Some(Conn::Downstream),
                PciModel::PciBridge => Some(Conn::PciBridge),
                PciModel::DmiToPciBridge => Some(Conn::Dmi),
                PciModel::PcieToPciBridge => Some(Conn::PcieToPci),
                PciModel::PciExpanderBus => Some(Conn::Expander(false)),
                PciModel::PcieExpanderBus => Some(Conn::Expander(true)),
            },
            ControllerType::Usb => match c.model {
                Some(ControllerModel::Usb(UsbModel::None)) => None,
                Some(ControllerModel::Usb(UsbModel::QemuXhci | UsbModel::NecXhci)) => pcie(true),
                _ => pcie(false),
            },
            ControllerType::Ide => {
                if c.index == 0 && !q35 {
                    None
                } else {
                    pcie(false)
                }
            }
            ControllerType::Sata => {
                if c.index == 0 && q35 {
                    None
                } else {
                    pcie(true)
                }
            }
            ControllerType::Scsi
                if c.model
                    == Some(ControllerModel::Scsi(
                        common::domain::device::controller::ScsiModel::Ibmvscsi,
                    )) =>
            {
                None
            }
            ControllerType::Scsi => pcie(matches!(
                c.model,
                Some(ControllerModel::Scsi(
                    common::domain::device::controller::ScsiModel::VirtioScsi
                        | common::domain::device::controller::ScsiModel::VirtioNonTransitional
                ))
            )),
            ControllerType::VirtioSerial => pcie(!matches!(
                c.model,
                Some(ControllerModel::VirtioSerial(
                    common::domain::device::controller::VirtioSerialModel::VirtioTransitional
                ))
            )),
            _ => None,
        },
        Device::Interface(i) => match i.model.as_deref() {
            Some("usb-net" | "spapr-vlan") => None,
            Some(m) => pcie(virtio_model(m) || m == "e1000e" || m == "igb"),
            None => pcie(false),
        },
        Device::Sound(s) => match s.model.as_str() {
            "pcspk" | "usb" | "sb16" => None,
            "virtio" => pcie(true),
            _ => pcie(false),
        },
        Device::Disk(d) => {
            if d.bus() == DiskBus::Virtio {
                pcie(!matches!(
                    d.model,
                    Some(common::domain::device::disk::DiskModel::VirtioTransitional)
                ))
            } else {
                None
            }
        }
        Device::Hostdev(h) => match h.source {
            common::domain::device::hostdev::HostdevSource::Pci { .. }
            | common::domain::device::hostdev::HostdevSource::Mdev { .. }
            | common::domain::device::hostdev::HostdevSource::ScsiHost { .. } => pcie(true),
            _ => None,
        },
        Device::Memballoon(m) => match m.model {
            BalloonModel::None | BalloonModel::Xen => None,
            BalloonModel::VirtioTransitional => pcie(false),
            _ => pcie(true),
        },
        Device::Rng(r) => {
            pcie(r.model != common::domain::device::rng::RngModel::VirtioTransitional)
        }
        Device::Vsock(_) | Device::Crypto(_) => pcie(true),
        Device::Shmem(_) => pcie(false),
        Device::Watchdog(w) => {
            if w.model == WatchdogModel::I6300esb {
                pcie(false)
            } else {
                None
            }
        }
        Device::Video(v) => match v.kind {
            VideoType::None | VideoType::Ramfb => None,
            VideoType::Virtio => pcie(true),
            _ => pcie(false),
        },
        Device::Input(i) => {
            if i.bus == InputBus::Virtio {
                pcie(true)
            } else {
                None
            }
        }
        Device::Serial(c) => {
            if matches!(
                c.target,
                ChrTarget::Serial {
                    kind: Some(SerialTargetType::PciSerial),
                    ..
                }
            ) {
                pcie(false)
            } else {
                None
            }
        }
        Device::Iommu(io) => {
            if io.model == common::domain::device::iommu::IommuModel::Virtio {
                Some(Conn::Integrated)
            } else {
                None
            }
        }
        Device::Memory(m) => {
            use common::domain::device::memorydev::MemoryModel;
            if matches!(m.model, MemoryModel::VirtioPmem | MemoryModel::VirtioMem) {
                pcie(true)
            } else {
                None
            }
        }
        Device::Filesystem(f) => {
            use common::domain::device::filesystem::{FsDriverType, FsType};
            if f.driver.kind == Some(FsDriverType::Mtp) || f.kind == FsType::Ram {
                None
            } else {
                pcie(true)
            }
        }
        _ => None,
    }
}

/// libvirt's assignment order of device kinds.
fn order(dev: &Device) -> usize {
    match dev {
        Device::Controller(c) if c.kind == ControllerType::Pci => 0,
        Device::Filesystem(_) => 1,
        Device::Interface(_) => 2,
        Device::Sound(_) => 3,
        Device::Controller(_) => 4,
        Device::Disk(_) => 5,
        Device::Hostdev(_) => 6,
        Device::Memballoon(_) => 7,
        Device::Rng(_) => 8,
        Device::Watchdog(_) => 9,
        Device::Video(_) => 10,
        Device::Shmem(_) => 11,
        Device::Input(_) => 12,
        Device::Serial(_) => 13,
        Device::Vsock(_) => 14,
        Device::Crypto(_) => 15,
        Device::Memory(_) => 16,
        Device::Iommu(_) => 17,
        _ => 18,
    }
}

/// The PCI buses and their used `(bus, slot, function)`s.
#[derive(Default)]
struct Slots {
    used: BTreeSet<(u32, u32, u32)>,
    /// Slots on bus 0 that hold aggregated root ports.
    aggregate: BTreeSet<u32>,
    /// `(index, kind)` in index order.
    buses: Vec<(u32, BusKind)>,
}

impl Slots {
    fn slot_used(&self, bus: u32, slot: u32) -> bool {
        self.used
            .range((bus, slot, 0)..=(bus, slot, 7))
            .next()
            .is_some()
    }

    fn take(&mut self, bus: u32, slot: u32, function: u32) -> PciAddress {
        self.used.insert((bus, slot, function));
        PciAddress {
            domain: 0,
            bus,
            slot,
            function,
            multifunction: None,
            zpci: None,
        }
    }

    fn add_bus(&mut self, index: u32, kind: BusKind) {
        self.buses.push((index, kind));
        self.buses.sort_by_key(|b| b.0);
    }

    /// The first free slot of a bus accepting `c`; root ports fill the
    /// functions of their slot first.
    fn find(&mut self, c: Conn) -> Option<PciAddress> {
        let buses = self.buses.clone();
        for (bus, kind) in buses {
            if !kind.accepts(c) {
                continue;
            }
            let (lo, hi) = kind.slots();
            if c == Conn::RootPort && kind == BusKind::PcieRoot {
                for slot in lo..=hi {
                    if self.aggregate.contains(&slot) {
                        if let Some(f) = (0..8).find(|f| !self.used.contains(&(bus, slot, *f))) {
                            return Some(self.take(bus, slot, f));
                        }
                    } else if !self.slot_used(bus, slot) {
                        self.aggregate.insert(slot);
                        return Some(self.take(bus, slot, 0));
                    }
                }
                continue;
            }
            if let Some(slot) = (lo..=hi).find(|s| !self.slot_used(bus, *s)) {
                return Some(self.take(bus, slot, 0));
            }
        }
        None
    }
}

fn set_pci(dev: &mut Device, a: PciAddress) {
    if let Some(info) = dev.info_mut() {
        info.address = Some(Address::Pci(a));
    }
}

fn next_pci_index(def: &DomainDef) -> u32 {
    def.controllers()
        .filter(|c| c.kind == ControllerType::Pci)
        .map(|c| c.index.saturating_add(1))
        .max()
        .unwrap_or(1)
}

/// Adds a PCI controller of `model`, places it, and registers its bus.
fn grow(def: &mut DomainDef, slots: &mut Slots, model: PciModel, conn: Conn) -> Option<()> {
    let index = next_pci_index(def);
    let mut c = Controller::new(ControllerType::Pci, index);
    c.model = Some(ControllerModel::Pci(model));
    let a = slots.find(conn)?;
    c.info.address = Some(Address::Pci(a));
    slots.add_bus(index, BusKind::of(model));
    def.add_device(Device::Controller(Box::new(c)));
    Some(())
}

/// Finds a slot for `c`, adding root ports and bridges when none is free.
fn place(
    def: &mut DomainDef,
    slots: &mut Slots,
    c: Conn,
    q35: bool,
    grew: &mut bool,
) -> Option<PciAddress> {
    if let Some(a) = slots.find(c) {
        return Some(a);
    }
    match (q35, c) {
        (true, Conn::Pcie | Conn::Upstream | Conn::PcieToPci) => {
            grow(def, slots, PciModel::PcieRootPort, Conn::RootPort)?;
        }
        (true, Conn::Pci | Conn::PciBridge) => {
            if slots.find_probe(Conn::PcieToPci) {
                grow(def, slots, PciModel::PcieToPciBridge, Conn::PcieToPci)?;
            } else {
                grow(def, slots, PciModel::PcieRootPort, Conn::RootPort)?;
                grow(def, slots, PciModel::PcieToPciBridge, Conn::PcieToPci)?;
            }
        }
        (false, Conn::Pci | Conn::Pcie | Conn::PciBridge) => {
            grow(def, slots, PciModel::PciBridge, Conn::PciBridge)?;
        }
        _ => return None,
    }
    *grew = true;
    slots.find(c)
}

impl Slots {
    /// Whether a slot for `c` is free (without taking it).
    fn find_probe(&mut self, c: Conn) -> bool {
        let (used, agg) = (self.used.clone(), self.aggregate.clone());
        let found = self.find(c).is_some();
        self.used = used;
        self.aggregate = agg;
        found
    }
}

/// The chipset's fixed slots, then everything else.
fn assign_pci(def: &mut DomainDef, q35: bool) -> Result<(), XmlError> {
    let mut slots = Slots::default();
    // A console aliasing a serial port shares its address.
    for d in def
        .devices
        .iter()
        .filter(|d| !matches!(d, Device::Console(_)))
    {
        if let Some(Address::Pci(p)) = d.info().and_then(|i| i.address.as_ref())
            && !p.is_empty()
            && !slots.used.insert((p.bus, p.slot, p.function))
        {
            return Err(XmlError::invalid(
                "devices/address",
                format!(
                    "Attempted double use of PCI Address {:04x}:{:02x}:{:02x}.{:x}",
                    p.domain, p.bus, p.slot, p.function
                ),
            ));
        }
    }
    for c in def.controllers() {
        if c.kind == ControllerType::Pci
            && let Some(m) = pci_model(c)
        {
            slots.buses.push((c.index, BusKind::of(m)));
        }
    }
    // Expander buses plug into the root bus only.
    for c in def.controllers() {
        if let Some(m @ (PciModel::PciExpanderBus | PciModel::PcieExpanderBus)) = pci_model(c)
            && let Some(Address::Pci(p)) = &c.info.address
            && !p.is_empty()
            && p.bus != 0
        {
            return Err(XmlError::invalid(
                "devices/controller/address",
                format!(
                    "The device at PCI address {:04x}:{:02x}:{:02x}.{:x} cannot be plugged into the PCI controller with index='{}'. It requires a controller that accepts a {}.",
                    p.domain,
                    p.bus,
                    p.slot,
                    p.function,
                    p.bus,
                    m.as_str()
                ),
            ));
        }
    }
    // Missing PCI controllers below the highest index (libvirt adds them
    // with the machine's default model).
    let max = def
        .controllers()
        .filter(|c| c.kind == ControllerType::Pci)
        .map(|c| c.index)
        .max()
        .unwrap_or(0);
    for index in 1..max {
        if !def
            .controllers()
            .any(|c| c.kind == ControllerType::Pci && c.index == index)
        {
            let model = if q35 {
                PciModel::PcieRootPort
            } else {
                PciModel::PciBridge
            };
            let mut c = Controller::new(ControllerType::Pci, index);
            c.model = Some(ControllerModel::Pci(model));
            slots.add_bus(index, BusKind::of(model));
            def.add_device(Device::Controller(Box::new(c)));
        }
    }
    // Slots on bus 0 holding only explicitly placed root ports take more.
    let mut others: BTreeSet<u32> = BTreeSet::new();
    for d in &def.devices {
        if let Some(Address::Pci(p)) = d.info().and_then(|i| i.address.as_ref())
            && !p.is_empty()
            && p.bus == 0
        {
            let root_port = matches!(d, Device::Controller(c)
                if pci_model(c) == Some(PciModel::PcieRootPort));
            if root_port {
                slots.aggregate.insert(p.slot);
            } else {
                others.insert(p.slot);
            }
        }
    }
    for s in others {
        slots.aggregate.remove(&s);
    }
    slots.buses.sort_by_key(|b| b.0);
    // Chipset devices.
    if q35 {
        slots.used.insert((0, 0x1f, 0));
        slots.used.insert((0, 0x1f, 3));
        for d in &mut def.devices {
            let Device::Controller(c) = d else { continue };
            if c.kind == ControllerType::Sata && c.index == 0 && unaddressed(&c.info) {
                c.info.address = Some(Address::Pci(slots.take(0, 0x1f, 2)));
            }
            if pci_model(c) == Some(PciModel::DmiToPciBridge)
                && unaddressed(&c.info)
                && !slots.slot_used(0, 0x1e)
            {
                c.info.address = Some(Address::Pci(slots.take(0, 0x1e, 0)));
            }
        }
    } else {
        slots.used.insert((0, 1, 0));
        slots.used.insert((0, 1, 3));
        for d in &mut def.devices {
            if let Device::Controller(c) = d
                && c.index == 0
                && unaddressed(&c.info)
            {
                match (c.kind, c.model) {
                    (ControllerType::Ide, _) => {
                        c.info.address = Some(Address::Pci(slots.take(0, 1, 1)));
                    }
                    (ControllerType::Usb, Some(ControllerModel::Usb(UsbModel::Piix3Uhci))) => {
                        c.info.address = Some(Address::Pci(slots.take(0, 1, 2)));
                    }
                    _ => {}
                }
            }
        }
    }
    // The primary video.
    let primary_slot = if q35 { 1 } else { 2 };
    if let Some(d) = def
        .devices
        .iter_mut()
        .find(|d| matches!(d, Device::Video(_)))
        && conn(d, q35).is_some()
        && !slots.slot_used(0, primary_slot)
    {
        let a = slots.take(0, primary_slot, 0);
        set_pci(d, a);
    }
    if q35 {
        assign_ich9_chipset_usb(def, &mut slots);
        if let Some(d) = def.devices.iter_mut().find(
            |d| matches!(d, Device::Sound(s) if s.model.as_str() == "ich9" && unaddressed(&s.info)),
        ) && !slots.slot_used(0, 0x1b)
        {
            let a = slots.take(0, 0x1b, 0);
            set_pci(d, a);
        }
    }

    let mut grew = false;
    let had_pci_controllers = def
        .controllers()
        .any(|c| c.kind == ControllerType::Pci && c.index > 0);
    // Each round places one device, so this ends; the bound is a guard.
    for _ in 0..def.devices.len().saturating_mul(2).saturating_add(64) {
        // Devices still to place, in libvirt's order (indices shift as
        // controllers are added, so look again after each one).
        let mut todo: Vec<usize> = (0..def.devices.len())
            .filter(|&i| conn(&def.devices[i], q35).is_some())
            .collect();
        todo.sort_by_key(|&i| order(&def.devices[i]));
        let Some(&i) = todo.first() else { break };
        let c = conn(&def.devices[i], q35).ok_or_else(no_slots)?;
        let ich9 = matches!(&def.devices[i], Device::Controller(x) if is_ich9_usb(x));
        let a = place(def, &mut slots, c, q35, &mut grew).ok_or_else(no_slots)?;
        // The device may have moved when a controller was added.
        let i = (0..def.devices.len())
            .filter(|&i| conn(&def.devices[i], q35).is_some())
            .min_by_key(|&i| (order(&def.devices[i]), i))
            .ok_or_else(no_slots)?;
        if ich9 {
            place_ich9_group(def, i, &a, &mut slots);
        } else {
            if let Device::Controller(x) = &def.devices[i]
                && let Some(m) = pci_model(x)
            {
                slots.add_bus(x.index, BusKind::of(m));
            }
            set_pci(&mut def.devices[i], a);
        }
    }
    // One spare hotpluggable root port when the definition had no PCI
    // controllers of its own and ports had to be added.
    if q35 && grew && !had_pci_controllers {
        grow(def, &mut slots, PciModel::PcieRootPort, Conn::RootPort).ok_or_else(no_slots)?;
    }
    // Function 0 of a slot with other functions in use is multifunction.
    let multi: BTreeSet<(u32, u32)> = slots
        .used
        .iter()
        .filter(|(_, _, f)| *f != 0)
        .map(|(b, s, _)| (*b, *s))
        .collect();
    for d in &mut def.devices {
        if let Some(info) = d.info_mut()
            && let Some(Address::Pci(p)) = &mut info.address
            && p.function == 0
            && p.multifunction.is_none()
            && multi.contains(&(p.bus, p.slot))
        {
            p.multifunction = Some(true);
        }
    }
    Ok(())
}

fn no_slots() -> XmlError {
    XmlError::invalid("devices", "No more available PCI slots")
}

/// The function of an ICH9 USB controller in its slot.
fn ich9_function(c: &Controller) -> u32 {
    match c.model {
        Some(ControllerModel::Usb(UsbModel::Ich9Uhci2)) => 1,
        Some(ControllerModel::Usb(UsbModel::Ich9Uhci3)) => 2,
        Some(ControllerModel::Usb(UsbModel::Ich9Ehci1)) => 7,
        _ => 0,
    }
}

/// Puts every unplaced ICH9 USB controller with the index of device `i`
/// in the slot of `a`, at its model's function.
fn place_ich9_group(def: &mut DomainDef, i: usize, a: &PciAddress, slots: &mut Slots) {
    let Device::Controller(first) = &def.devices[i] else {
        return;
    };
    let index = first.index;
    slots.used.remove(&(a.bus, a.slot, a.function));
    let group: Vec<usize> = (0..def.devices.len())
        .filter(|&j| {
            matches!(&def.devices[j], Device::Controller(c)
                if c.kind == ControllerType::Usb && c.index == index && is_ich9_usb(c) && unaddressed(&c.info))
        })
        .collect();
    let multi = group.len() > 1;
    for j in group {
        let Device::Controller(c) = &mut def.devices[j] else {
            continue;
        };
        let f = ich9_function(c);
        let mut addr = slots.take(a.bus, a.slot, f);
        if f == 0 && multi {
            addr.multifunction = Some(true);
        }
        c.info.address = Some(Address::Pci(addr));
    }
}

/// On q35, ICH9 USB controllers 0 and 1 sit in the chipset's slots 0x1d
/// and 0x1a.
fn assign_ich9_chipset_usb(def: &mut DomainDef, slots: &mut Slots) {
    for (index, slot) in [(0u32, 0x1du32), (1, 0x1a)] {
        let first = def.devices.iter().position(|d| {
            matches!(d, Device::Controller(c)
                if c.kind == ControllerType::Usb && c.index == index && is_ich9_usb(c) && unaddressed(&c.info))
        });
        if let Some(i) = first
            && !slots.slot_used(0, slot)
        {
            let a = slots.take(0, slot, 0);
            place_ich9_group(def, i, &a, slots);
        }
    }
}

/// Model names and chassis/port numbers of PCI controllers
/// (`qemuDomainPCIControllerSetDefaultModelName` and friends).
fn set_pci_controller_defaults(def: &mut DomainDef) {
    for d in &mut def.devices {
        let Device::Controller(c) = d else { continue };
        if c.kind != ControllerType::Pci {
            continue;
        }
        let Some(model) = pci_model(c) else { continue };
        let name = match model {
            PciModel::PciBridge => Some("pci-bridge"),
            PciModel::DmiToPciBridge => Some("i82801b11-bridge"),
            PciModel::PcieRootPort => Some("pcie-root-port"),
            PciModel::PcieSwitchUpstreamPort => Some("x3130-upstream"),
            PciModel::PcieSwitchDownstreamPort => Some("xio3130-downstream"),
            PciModel::PciExpanderBus => Some("pxb"),
            PciModel::PcieExpanderBus => Some("pxb-pcie"),
            PciModel::PcieToPciBridge => Some("pcie-pci-bridge"),
            PciModel::PciRoot | PciModel::PcieRoot => None,
        };
        if c.pci_model_name.is_none()
            && let Some(n) = name
        {
            c.pci_model_name = Some(n.to_owned());
        }
        let idx = i32::try_from(c.index).unwrap_or(i32::MAX);
        match model {
            PciModel::PciBridge if c.pci_target.chassis_nr.is_none() => {
                c.pci_target.chassis_nr = Some(idx);
            }
            PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort => {
                if c.pci_target.chassis.is_none() {
                    c.pci_target.chassis = Some(idx);
                }
                if c.pci_target.port.is_none()
                    && let Some(Address::Pci(p)) = &c.info.address
                {
                    let port = if model == PciModel::PcieRootPort {
                        (p.slot << 3) + p.function
                    } else {
                        p.slot
                    };
                    c.pci_target.port = i32::try_from(port).ok();
                }
            }
            _ => {}
        }
    }
}

/// ibmvscsi controllers sit on the sPAPR VIO bus from `reg` 0x2000.
fn assign_spapr_vio(def: &mut DomainDef) {
    let mut used: BTreeSet<u64> = def
        .devices
        .iter()
        .filter_map(|d| match d.info().and_then(|i| i.address.as_ref()) {
            Some(Address::SpaprVio { reg: Some(r) }) => Some(*r),
            _ => None,
        })
        .collect();
    for d in &mut def.devices {
        if let Device::Controller(c) = d
            && c.model
                == Some(ControllerModel::Scsi(
                    common::domain::device::controller::ScsiModel::Ibmvscsi,
                ))
            && c.info.address.is_none()
        {
            let mut reg = 0x2000u64;
            while used.contains(&reg) {
                reg += 0x1000;
            }
            used.insert(reg);
            c.info.address = Some(Address::SpaprVio { reg: Some(reg) });
        }
    }
}

/// Console `i` (after the serial alias at 0) is virtio console port `i`.
fn number_virtio_consoles(def: &mut DomainDef) {
    use common::domain::device::chr::ConsoleTargetType;
    let mut i = 0u32;
    for d in &mut def.devices {
        if let Device::Console(c) = d {
            if i > 0
                && let ChrTarget::Console {
                    kind: Some(ConsoleTargetType::Virtio),
                    port,
                } = &mut c.target
            {
                *port = Some(i);
            }
            i += 1;
        }
    }
}

/// Smartcards without an address get the next slot of CCID controller 0.
fn assign_ccid(def: &mut DomainDef) {
    let mut used: BTreeSet<(u32, u32)> = BTreeSet::new();
    for d in &def.devices {
        if let Some(Address::Ccid { controller, slot }) = d.info().and_then(|i| i.address.as_ref())
        {
            used.insert((*controller, *slot));
        }
    }
    for d in &mut def.devices {
        if let Device::Smartcard(s) = d
            && s.info.address.is_none()
            && let Some(slot) = (0..32).find(|s| !used.contains(&(0, *s)))
        {
            used.insert((0, slot));
            s.info.address = Some(Address::Ccid {
                controller: 0,
                slot,
            });
        }
    }
}

/// virtio channels without a port get the next free port (from 1) of
/// the controller they name, or of the first controller with one.
fn assign_virtio_serial(def: &mut DomainDef) {
    let mut ctrls: Vec<(u32, u32)> = def
        .controllers()
        .filter(|c| c.kind == ControllerType::VirtioSerial)
        .map(|c| (c.index, c.ports.unwrap_or(31)))
        .collect();
    ctrls.sort_unstable();
    let mut used: BTreeSet<(u32, u32)> = BTreeSet::new();
    for d in &def.devices {
        if let Some(Address::VirtioSerial {
            controller, port, ..
        }) = d.info().and_then(|i| i.address.as_ref())
            && *port != 0
        {
            used.insert((*controller, *port));
        }
    }
    for d in &mut def.devices {
        let Device::Channel(c) = d else { continue };
        if !matches!(c.target, ChrTarget::Virtio { .. }) {
            continue;
        }
        let wanted = match &c.info.address {
            None => None,
            Some(Address::VirtioSerial {
                controller,
                port: 0,
                ..
            }) => Some(*controller),
            Some(_) => continue,
        };
        let free = ctrls
            .iter()
            .filter(|(ctl, _)| wanted.is_none_or(|w| w == *ctl))
            .find_map(|&(ctl, n)| (1..n).map(|p| (ctl, p)).find(|k| !used.contains(k)));
        if let Some((controller, port)) = free {
            used.insert((controller, port));
            c.info.address = Some(Address::VirtioSerial {
                controller,
                bus: 0,
                port,
            });
        }
    }
}

/// Root hub ports of a USB controller model.
fn usb_ports(c: &Controller) -> u32 {
    if let Some(p) = c.ports {
        return p;
    }
    match c.model {
        Some(ControllerModel::Usb(m)) => match m {
            UsbModel::Ehci | UsbModel::Ich9Ehci1 => 6,
            UsbModel::NecXhci | UsbModel::QemuXhci => 4,
            UsbModel::PciOhci => 3,
            UsbModel::None => 0,
            _ => 2,
        },
        _ => 2,
    }
}

fn usb_path(port: &[u32]) -> String {
    port.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Explicit USB addresses: on an existing port (hubs have 8) and not
/// taken twice. Hubs are placed first, as libvirt does.
fn check_usb(def: &DomainDef) -> Result<(), XmlError> {
    // With USB disabled, validation refuses USB devices instead.
    if def
        .controllers()
        .any(|c| c.model == Some(ControllerModel::Usb(UsbModel::None)))
    {
        return Ok(());
    }
    let mut roots: Vec<(u32, u32)> = Vec::new();
    for c in def.controllers() {
        if c.kind == ControllerType::Usb && c.info.master_startport.is_none() {
            roots.push((c.index, usb_ports(c)));
        }
    }
    let mut hubs: BTreeSet<(u32, Vec<u32>)> = BTreeSet::new();
    let mut used: BTreeSet<(u32, Vec<u32>)> = BTreeSet::new();
    let addrs = |hub: bool| {
        def.devices.iter().filter_map(move |d| {
            if matches!(d, Device::Hub(_)) != hub {
                return None;
            }
            match d.info().and_then(|i| i.address.as_ref()) {
                Some(Address::Usb { bus, port }) if !port.is_empty() => Some((*bus, port.clone())),
                _ => None,
            }
        })
    };
    for (hub, (bus, port)) in addrs(true)
        .map(|a| (true, a))
        .chain(addrs(false).map(|a| (false, a)))
    {
        let missing = || {
            XmlError::invalid(
                "devices/address",
                format!(
                    "requested USB port {} not present on USB bus {bus}",
                    usb_path(&port)
                ),
            )
        };
        let Some(&(_, n)) = roots.iter().find(|(i, _)| *i == bus) else {
            return Err(XmlError::invalid(
                "devices/address",
                format!("Could not find USB controller on bus '{bus}'"),
            ));
        };
        if port[0] > n {
            return Err(missing());
        }
        for depth in 1..port.len() {
            if !hubs.contains(&(bus, port[..depth].to_vec())) || port[depth] > 8 {
                return Err(missing());
            }
        }
        if !used.insert((bus, port.clone())) {
            return Err(XmlError::invalid(
                "devices/address",
                format!("Duplicate USB address bus {bus} port {}", usb_path(&port)),
            ));
        }
        if hub {
            hubs.insert((bus, port));
        }
    }
    Ok(())
}
