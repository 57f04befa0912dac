//! Post-parse (libvirt's `virDomainDefPostParse`): generic defaults and
//! implicit devices around the driver's [`DomainDefHooks`].

use crate::xml::{ParseFlags, XmlError};

use super::device::address::Address;
use super::device::chardev::ChrSource;
use super::device::chr::{ChrTarget, ConsoleTargetType};
use super::device::controller::{Controller, ControllerType};
use super::device::disk::{self, DiskBus};
use super::device::graphics::{GraphicsType, ListenType};
use super::device::video::{self, Video, VideoType};
use super::device::{Chardev, Device, DeviceInfo};
use super::hooks::DomainDefHooks;
use super::os::{BootDev, LoaderType, OsType};
use super::{DomainDef, device};

/// A post-parse failure: generic ones are always fatal; hook ones may be
/// tolerated with [`ParseFlags::allow_post_parse_fail`].
pub(crate) enum Failure {
    Generic(XmlError),
    Hook(XmlError),
}

impl Failure {
    pub(crate) fn into_error(self) -> XmlError {
        match self {
            Failure::Generic(e) | Failure::Hook(e) => e,
        }
    }
}

fn generic<T>(r: Result<T, XmlError>) -> Result<T, Failure> {
    r.map_err(Failure::Generic)
}

fn hook<T>(r: Result<T, XmlError>) -> Result<T, Failure> {
    r.map_err(Failure::Hook)
}

pub(crate) fn run(
    def: &mut DomainDef,
    hooks: &dyn DomainDefHooks,
    flags: ParseFlags,
) -> Result<(), Failure> {
    let _ = flags;
    // The "basic" step: the architecture from the driver's capabilities.
    if def.os.arch.is_none()
        && let Some(a) = hooks.default_arch()
    {
        def.os.arch = Some(a.to_owned());
    }
    // The driver's defaults first: libvirt adds implicit controllers
    // after them (the QEMU driver's USB and PCI roots precede an implicit
    // IDE or virtio-serial controller).
    hook(hooks.post_parse(def))?;
    generic(add_implicit_devices(def))?;
    for i in 0..def.devices.len() {
        let mut dev = def.devices[i].clone();
        generic(device_post_parse(def, &mut dev))?;
        hook(hooks.post_parse_device(def, &mut dev))?;
        def.devices[i] = dev;
    }
    generic(post_parse_common(def))?;
    hook(hooks.assign_addresses(def))?;
    Ok(())
}

/// `virDomainDeviceDefPostParseCommon`.
fn device_post_parse(def: &DomainDef, dev: &mut Device) -> Result<(), XmlError> {
    // virDomainChrDefPostParse: a console without a target type is a
    // serial console. (libvirt runs the driver's device callback first, so
    // LXC, Xen and OpenVZ can pick their own type; here a driver does that
    // in its domain-wide `post_parse`, which runs before this.)
    if let Device::Console(c) = dev
        && let ChrTarget::Console { kind, .. } = &mut c.target
        && kind.is_none()
    {
        *kind = Some(ConsoleTargetType::Serial);
    }
    match dev {
        Device::Serial(c) | Device::Parallel(c) | Device::Console(c)
            if c.target.port().is_none() =>
        {
            let kind = c_kind(&c.target);
            let max = def
                .devices
                .iter()
                .filter(|d| d.element_name() == kind)
                .filter_map(|d| match d {
                    Device::Serial(x) | Device::Parallel(x) | Device::Console(x) => x.target.port(),
                    _ => None,
                })
                .max();
            c.target.set_port(max.map_or(0, |m| m.saturating_add(1)));
        }
        Device::Disk(d) => {
            // An empty network CD-ROM/floppy is a file one without medium.
            if d.src.kind == device::storage::StorageType::Network
                && d.src.is_empty()
                && matches!(d.device, disk::DiskDevice::Cdrom | disk::DiskDevice::Floppy)
            {
                d.src.kind = device::storage::StorageType::File;
            }
            if d.info.address.is_none()
                && let Some(a) = disk::assign_drive_address(d)?
            {
                d.info.address = Some(Address::Drive(a));
            }
            let src = &d.src;
            if src.protocol != Some(device::storage::NetProtocol::Rbd) {
                if src.snapshot.is_some() {
                    return Err(XmlError::unsupported(
                        "devices/disk",
                        "<snapshot> element is currently supported only with 'rbd' disks",
                    ));
                }
                if src.config_file.is_some() {
                    return Err(XmlError::unsupported(
                        "devices/disk",
                        "<config> element is currently supported only with 'rbd' disks",
                    ));
                }
            }
        }
        Device::Hostdev(h)
            if h.info.address.is_none()
                && matches!(h.source, device::hostdev::HostdevSource::Scsi { .. }) =>
        {
            h.info.address = Some(Address::Drive(next_scsi_unit(def)));
        }
        Device::Video(v) => {
            if v.ram == 0 && v.kind == VideoType::Qxl {
                v.ram = video::default_vram(v.kind, def.virt_type.as_str());
            }
            if v.vram == 0 {
                v.vram = video::default_vram(v.kind, def.virt_type.as_str());
            }
        }
        _ => {}
    }
    Ok(())
}

/// The first free unit on a narrow SCSI bus, controller by controller
/// (`virDomainHostdevAssignAddress`).
fn next_scsi_unit(def: &DomainDef) -> device::DriveAddress {
    let used = |a: &device::DriveAddress| {
        def.devices.iter().any(|d| {
            let scsi = match d {
                Device::Disk(x) => x.bus() == DiskBus::Scsi,
                Device::Hostdev(h) => {
                    matches!(
                        h.source,
                        device::hostdev::HostdevSource::Scsi { .. }
                            | device::hostdev::HostdevSource::ScsiIscsi { .. }
                    )
                }
                _ => false,
            };
            scsi && d.info().and_then(|i| i.address.as_ref()) == Some(&Address::Drive(*a))
        })
    };
    let mut controller = 0u32;
    loop {
        for unit in 0..7 {
            let a = device::DriveAddress {
                controller,
                bus: 0,
                target: 0,
                unit,
            };
            if !used(&a) {
                return a;
            }
        }
        controller = controller.saturating_add(1);
        if controller == u32::MAX {
            return device::DriveAddress::default();
        }
    }
}

fn c_kind(t: &ChrTarget) -> &'static str {
    match t {
        ChrTarget::Serial { .. } => "serial",
        ChrTarget::Parallel { .. } => "parallel",
        ChrTarget::Console { .. } => "console",
        _ => "channel",
    }
}

/// `virDomainDefAddConsoleCompat`: the first console of an HVM guest is
/// an alias of the first serial port.
fn console_compat(def: &mut DomainDef) -> Result<(), XmlError> {
    let consoles: Vec<usize> = (0..def.devices.len())
        .filter(|i| matches!(def.devices[*i], Device::Console(_)))
        .collect();
    for &i in consoles.iter().skip(1) {
        if let Device::Console(c) = &def.devices[i]
            && matches!(
                c.target,
                ChrTarget::Console {
                    kind: Some(ConsoleTargetType::Serial),
                    ..
                }
            )
        {
            return Err(XmlError::unsupported(
                "devices/console",
                "Only the first console can be a serial port",
            ));
        }
    }
    if def.os.os_type != OsType::Hvm {
        return Ok(());
    }
    let first_serial = def
        .devices
        .iter()
        .position(|d| matches!(d, Device::Serial(_)));
    let stub = || Chardev {
        source: ChrSource {
            backend: device::chardev::ChrBackend::Null,
            seclabels: Vec::new(),
            log: None,
        },
        target: ChrTarget::Console {
            kind: Some(ConsoleTargetType::Serial),
            port: None,
        },
        info: DeviceInfo::default(),
    };
    if let Some(&ci) = consoles.first() {
        let Device::Console(c) = &def.devices[ci] else {
            return Ok(());
        };
        let is_serialish = matches!(
            c.target,
            ChrTarget::Console {
                kind: None | Some(ConsoleTargetType::Serial),
                ..
            }
        );
        if !is_serialish {
            return add_stub_for_isa_serial(def, first_serial, stub);
        }
        match first_serial {
            None => {
                let mut serial = c.as_ref().clone();
                serial.target = ChrTarget::Serial {
                    kind: None,
                    port: Some(0),
                    model: None,
                };
                def.devices[ci] = Device::Console(Box::new(stub()));
                def.add_device(Device::Serial(Box::new(serial)));
            }
            Some(si) => {
                let same = match &def.devices[si] {
                    Device::Serial(s) => super::device::chardev::source_equal(&s.source, &c.source),
                    _ => true,
                };
                if !same {
                    def.devices[ci] = Device::Console(Box::new(stub()));
                } else if let Device::Console(c) = &mut def.devices[ci] {
                    c.target = ChrTarget::Console {
                        kind: Some(ConsoleTargetType::Serial),
                        port: c.target.port(),
                    };
                }
            }
        }
        return Ok(());
    }
    add_stub_for_isa_serial(def, first_serial, stub)
}

fn add_stub_for_isa_serial(
    def: &mut DomainDef,
    first_serial: Option<usize>,
    stub: impl Fn() -> Chardev,
) -> Result<(), XmlError> {
    let Some(si) = first_serial else {
        return Ok(());
    };
    let isa = matches!(
        &def.devices[si],
        Device::Serial(s) if matches!(s.target, ChrTarget::Serial {
            kind: Some(device::chr::SerialTargetType::IsaSerial),
            ..
        })
    );
    if isa {
        let at = def
            .devices
            .iter()
            .position(|d| matches!(d, Device::Console(_)))
            .unwrap_or_else(|| {
                def.devices
                    .iter()
                    .position(|d| d.rank() > Device::Console(Box::new(stub())).rank())
                    .unwrap_or(def.devices.len())
            });
        def.devices.insert(at, Device::Console(Box::new(stub())));
    }
    Ok(())
}

fn maybe_add_controller(def: &mut DomainDef, kind: ControllerType, index: u32) {
    if def
        .controllers()
        .any(|c| c.kind == kind && c.index == index)
    {
        return;
    }
    def.add_device(Device::Controller(Box::new(Controller::new(kind, index))));
}

/// `virDomainDefAddImplicitControllers` and `virDomainDefAddImplicitVideo`.
fn add_implicit_devices(def: &mut DomainDef) -> Result<(), XmlError> {
    console_compat(def)?;
    for (bus, kind) in [
        (DiskBus::Scsi, ControllerType::Scsi),
        (DiskBus::Fdc, ControllerType::Fdc),
        (DiskBus::Ide, ControllerType::Ide),
        (DiskBus::Sata, ControllerType::Sata),
    ] {
        let max = def
            .disks()
            .filter(|d| d.bus() == bus)
            .filter_map(|d| d.drive_address().map(|a| a.controller))
            .max();
        if let Some(max) = max {
            for i in 0..=max.min(1024) {
                maybe_add_controller(def, kind, i);
            }
        }
    }
    let scsi_hostdev_max = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Hostdev(h) => match (&h.source, &h.info.address) {
                (
                    device::hostdev::HostdevSource::Scsi { .. }
                    | device::hostdev::HostdevSource::ScsiIscsi { .. },
                    Some(Address::Drive(a)),
                ) => Some(a.controller),
                _ => None,
            },
            _ => None,
        })
        .max();
    if let Some(max) = scsi_hostdev_max {
        for i in 0..=max.min(1024) {
            maybe_add_controller(def, ControllerType::Scsi, i);
        }
    }
    let mut vioserial: Vec<u32> = Vec::new();
    for d in &def.devices {
        if let Device::Channel(c) | Device::Console(c) = d {
            let virtio = matches!(
                c.target,
                ChrTarget::Virtio { .. }
                    | ChrTarget::Console {
                        kind: Some(ConsoleTargetType::Virtio),
                        ..
                    }
            );
            if virtio {
                let idx = match &c.info.address {
                    Some(Address::VirtioSerial { controller, .. }) => *controller,
                    _ => 0,
                };
                vioserial.push(idx);
            }
        }
    }
    for idx in vioserial {
        maybe_add_controller(def, ControllerType::VirtioSerial, idx);
    }
    let mut ccid: Vec<u32> = Vec::new();
    for d in &def.devices {
        if let Device::Smartcard(s) = d {
            let idx = match &s.info.address {
                Some(Address::Ccid { controller, .. }) => *controller,
                _ => 0,
            };
            ccid.push(idx);
        }
    }
    for idx in ccid {
        maybe_add_controller(def, ControllerType::Ccid, idx);
    }
    let has_graphics = def.devices.iter().any(|d| matches!(d, Device::Graphics(_)));
    let has_video = def.devices.iter().any(|d| matches!(d, Device::Video(_)));
    if has_graphics && !has_video {
        def.add_device(Device::Video(Box::new(Video::new(VideoType::Default))));
    }
    Ok(())
}

/// `virDomainDefPostParseCommon`.
fn post_parse_common(def: &mut DomainDef) -> Result<(), XmlError> {
    if def.os.os_type == OsType::Exe && def.os.init.is_none() {
        return Err(XmlError::invalid(
            "os/init",
            "init binary must be specified",
        ));
    }
    // Memory.
    let numa_mem = def
        .cpu
        .as_ref()
        .and_then(|c| c.numa.as_ref())
        .map_or(0, |n| n.total_memory());
    let hotplug: u64 = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Memory(m) => Some(m.size),
            _ => None,
        })
        .fold(0u64, u64::saturating_add);
    if numa_mem > 0 && def.memory.total == 0 {
        def.memory.total = numa_mem.saturating_add(hotplug);
    } else if def.memory.total > 0 && def.memory.total < hotplug {
        return Err(XmlError::invalid(
            "memory",
            "Total size of memory devices exceeds the total memory size",
        ));
    }
    if def.memory.total == 0 {
        return Err(XmlError::invalid(
            "memory",
            "Memory size must be specified via <memory> or in the <numa> configuration",
        ));
    }
    if def.memory.current == 0 || def.memory.current > def.memory.total {
        def.memory.current = def.memory.total;
    }
    if def.memory.max_memory > 0 && def.memory.max_memory < def.memory.total {
        return Err(XmlError::invalid(
            "maxMemory",
            "maximum memory size must be equal or greater than the actual size",
        ));
    }
    // Loader type defaults to rom when a path is given.
    if let Some(l) = &mut def.os.loader
        && l.path.is_some()
        && l.kind.is_none()
    {
        l.kind = Some(LoaderType::Rom);
    }
    // Duplicate controllers.
    // USB companion controllers (with <master>) share their master's index.
    let ctrls: Vec<(ControllerType, u32)> = def
        .controllers()
        .filter(|c| {
            use super::device::controller::{ControllerModel, UsbModel};
            c.info.master_startport.is_none()
                && !matches!(
                    c.model,
                    Some(ControllerModel::Usb(
                        UsbModel::Ich9Uhci1 | UsbModel::Ich9Uhci2 | UsbModel::Ich9Uhci3
                    ))
                )
        })
        .map(|c| (c.kind, c.index))
        .collect();
    for (i, a) in ctrls.iter().enumerate() {
        if ctrls[..i].contains(a) {
            return Err(XmlError::invalid(
                "devices/controller",
                format!("Multiple '{}' controllers with index '{}'", a.0, a.1),
            ));
        }
    }
    // Duplicate panics.
    let panics: Vec<_> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Panic(p) => Some(p.model),
            _ => None,
        })
        .collect();
    for (i, m) in panics.iter().enumerate() {
        if panics[..i].contains(m) {
            return Err(XmlError::invalid(
                "devices/panic",
                "Multiple panic devices with model",
            ));
        }
    }
    // Boot order.
    if def.os.os_type == OsType::Hvm {
        let device_boot = def
            .devices
            .iter()
            .any(|d| d.info().is_some_and(|i| i.boot.is_some()));
        if device_boot && !def.os.boot_devs.is_empty() {
            return Err(XmlError::invalid(
                "os/boot",
                "per-device boot elements cannot be used together with os/boot elements",
            ));
        }
        if !device_boot && def.os.boot_devs.is_empty() {
            def.os.boot_devs.push(BootDev::Hd);
        }
    }
    add_implicit_devices(def)?;
    // The first video is the primary one.
    let vids: Vec<usize> = (0..def.devices.len())
        .filter(|i| matches!(def.devices[*i], Device::Video(_)))
        .collect();
    if let Some(&first) = vids.first() {
        let mut dev = def.devices[first].clone();
        if let Device::Video(v) = &mut dev {
            v.primary = true;
        }
        device_post_parse(def, &mut dev)?;
        def.devices[first] = dev;
    }
    // SPICE without ports and autoport listens nowhere.
    for d in &mut def.devices {
        if let Device::Graphics(g) = d
            && g.kind == Some(GraphicsType::Spice)
            && g.port == 0
            && g.tls_port == 0
            && !g.autoport
            && let Some(l) = g.listens.first_mut()
            && l.kind == ListenType::Address
        {
            l.kind = ListenType::None;
            l.address = None;
        }
    }
    Ok(())
}
