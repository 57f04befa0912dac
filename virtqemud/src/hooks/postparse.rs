//! The QEMU driver's post-parse (libvirt's `qemuDomainDefPostParse` and
//! `qemuDomainDeviceDefPostParse`): the machine type, the devices every
//! x86 machine has, the default CPU and audio backend, and device models.

use common::domain::cpu::{Cpu, CpuCheck, CpuFallback, CpuMatch, CpuMode};
use common::domain::device::DeviceInfo;
use common::domain::device::chr::{
    ChrTarget, ConsoleTargetType, SerialTargetModel, SerialTargetType,
};
use common::domain::device::controller::{
    Controller, ControllerModel, ControllerType, PciModel, ScsiModel, UsbModel,
};
use common::domain::device::input::{Input, InputBus, InputType};
use common::domain::device::memballoon::{BalloonModel, Memballoon};
use common::domain::device::sound::{Audio, AudioType};
use common::domain::device::storage::{ImageFormat, StorageType};
use common::domain::device::video::{self, VideoType};
use common::domain::device::watchdog::{Watchdog, WatchdogAction, WatchdogModel};
use common::domain::os::OsType;
use common::domain::{Device, DomainDef, VirtType};
use common::xml::XmlError;

use super::QemuConf;
use crate::caps::{Accel, QemuCaps};

/// The accelerator a domain type runs on.
pub(super) fn accel_of(def: &DomainDef) -> Accel {
    match def.virt_type {
        VirtType::Kvm => Accel::Kvm,
        _ => Accel::Tcg,
    }
}

/// The machine type's family, as libvirt's `qemuDomainIsI440FX` & co.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Machine {
    /// `pc`, `pc-i440fx-*`, `pc-0.*`, `pc-1.*`.
    I440fx,
    /// `q35`, `pc-q35-*`.
    Q35,
    /// `isapc`.
    Isapc,
    /// `microvm`.
    Microvm,
    /// Anything else.
    Other,
}

pub(super) fn machine_of(def: &DomainDef) -> Machine {
    let m = def.os.machine.as_deref().unwrap_or_default();
    if m == "q35" || m.starts_with("pc-q35") {
        Machine::Q35
    } else if m == "pc"
        || m.starts_with("pc-i440fx-")
        || m.starts_with("pc-0.")
        || m.starts_with("pc-1.")
    {
        Machine::I440fx
    } else if m == "isapc" {
        Machine::Isapc
    } else if m == "microvm" {
        Machine::Microvm
    } else {
        Machine::Other
    }
}

fn is_x86(def: &DomainDef) -> bool {
    matches!(def.os.arch.as_deref(), Some("x86_64" | "i686"))
}

/// `qemuDomainDefPostParse`.
pub(super) fn domain(
    caps: &QemuCaps,
    conf: &QemuConf,
    def: &mut DomainDef,
) -> Result<(), XmlError> {
    let accel = accel_of(def);
    if def.os.machine.is_none() {
        let m = caps.default_machine(accel).ok_or_else(|| {
            XmlError::invalid(
                "os/type",
                format!(
                    "could not find a default machine type for arch '{}'",
                    def.os.arch.as_deref().unwrap_or_default()
                ),
            )
        })?;
        def.os.machine = Some(m.name.clone());
    } else if let Some(alias) = def.os.machine.as_deref() {
        // An alias (`pc`, `q35`) names the newest machine of its family
        // now; the definition keeps the one it got, so a QEMU upgrade does
        // not change its guest hardware (libvirt's canonical machine).
        let canonical = caps.canonical_machine(accel, alias).to_owned();
        def.os.machine = Some(canonical);
    }
    nvram_path(def);
    if def.os.os_type != OsType::Hvm || !is_x86(def) {
        return Ok(());
    }
    usb_companions(def);
    add_default_devices(caps, def);
    add_implicit_inputs(def);
    add_default_audio(conf, def);
    set_default_cpu(caps, def);
    cpu_post_parse(def);
    numa_cpus(def);
    Ok(())
}

/// `qemuDomainNVRAMPathGenerate`: a read-only pflash loader keeps its
/// variables in `<nvram dir>/NAME_VARS.fd` unless told otherwise.
fn nvram_path(def: &mut DomainDef) {
    use common::domain::device::storage::StorageSource;
    use common::domain::os::LoaderType;
    let name = def.name.clone();
    if let Some(l) = def.os.loader.as_mut()
        && l.kind == Some(LoaderType::Pflash)
        && l.readonly == Some(true)
        && l.stateless != Some(true)
        && l.nvram.is_none()
    {
        l.nvram = Some(StorageSource {
            kind: StorageType::File,
            path: Some(format!("/var/lib/libvirt/qemu/nvram/{name}_VARS.fd")),
            ..StorageSource::default()
        });
    }
}

/// `qemuDomainDefNumaCPUsPostParse`: vCPUs no NUMA cell lists go to
/// cell 0.
fn numa_cpus(def: &mut DomainDef) {
    let max = def.vcpus.max();
    let Some(numa) = def.cpu.as_mut().and_then(|c| c.numa.as_mut()) else {
        return;
    };
    if numa.cells.is_empty() {
        return;
    }
    let missing: Vec<u32> = (0..max)
        .filter(|v| {
            !numa
                .cells
                .iter()
                .any(|c| c.cpus.as_ref().is_some_and(|b| b.contains(*v)))
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    if let Some(cpus) = numa.cells[0].cpus.as_mut() {
        for v in missing {
            cpus.set(v);
        }
    }
}

/// `qemuDomainDefCPUPostParse`: the default `check=` per mode.
fn cpu_post_parse(def: &mut DomainDef) {
    let Some(cpu) = def.cpu.as_mut() else { return };
    match cpu.mode() {
        CpuMode::HostPassthrough | CpuMode::Maximum => {
            cpu.check.get_or_insert(CpuCheck::None);
            cpu.migratable.get_or_insert(true);
        }
        CpuMode::HostModel => {
            cpu.check.get_or_insert(CpuCheck::Partial);
            if cpu.model.is_none() {
                cpu.fallback = None;
            }
        }
        CpuMode::Custom => {
            if cpu.model.is_some() {
                cpu.check.get_or_insert(CpuCheck::None);
            }
        }
    }
}

/// ICH9 UHCI companions without `<master>` get their start port (the
/// parser already does so for parsed ones; this covers built ones).
fn usb_companions(def: &mut DomainDef) {
    for d in &mut def.devices {
        if let Device::Controller(c) = d
            && c.info.master_startport.is_none()
        {
            c.info.master_startport = match c.model {
                Some(ControllerModel::Usb(UsbModel::Ich9Uhci1)) => Some(0),
                Some(ControllerModel::Usb(UsbModel::Ich9Uhci2)) => Some(2),
                Some(ControllerModel::Usb(UsbModel::Ich9Uhci3)) => Some(4),
                _ => None,
            };
        }
    }
}

/// `qemuDomainDefAddDefaultDevices` for x86.
fn add_default_devices(caps: &QemuCaps, def: &mut DomainDef) {
    let machine = machine_of(def);
    let (usb, sata, pci_root, itco) = match machine {
        Machine::Q35 => (true, true, Some(PciModel::PcieRoot), true),
        Machine::I440fx => (true, false, Some(PciModel::PciRoot), false),
        Machine::Isapc | Machine::Microvm => (false, false, None, false),
        Machine::Other => (true, false, None, false),
    };
    if usb && !def.controllers().any(|c| c.kind == ControllerType::Usb) {
        let mut c = Controller::new(ControllerType::Usb, 0);
        c.model = default_usb_model(caps, machine).map(ControllerModel::Usb);
        def.add_device(Device::Controller(Box::new(c)));
    }
    if sata
        && !def
            .controllers()
            .any(|c| c.kind == ControllerType::Sata && c.index == 0)
    {
        def.add_device(Device::Controller(Box::new(Controller::new(
            ControllerType::Sata,
            0,
        ))));
    }
    if let Some(model) = pci_root
        && !def
            .controllers()
            .any(|c| c.kind == ControllerType::Pci && c.index == 0)
    {
        let mut c = Controller::new(ControllerType::Pci, 0);
        c.model = Some(ControllerModel::Pci(model));
        def.add_device(Device::Controller(Box::new(c)));
    }
    if machine != Machine::Microvm
        && !def
            .devices
            .iter()
            .any(|d| matches!(d, Device::Memballoon(_)))
    {
        def.add_device(Device::Memballoon(Box::new(Memballoon {
            model: BalloonModel::Virtio,
            autodeflate: None,
            free_page_reporting: None,
            period: None,
            virtio: Default::default(),
            info: DeviceInfo::default(),
        })));
    }
    if itco
        && !def
            .devices
            .iter()
            .any(|d| matches!(d, Device::Watchdog(w) if w.model == WatchdogModel::Itco))
    {
        let action = def
            .devices
            .iter()
            .find_map(|d| match d {
                Device::Watchdog(w) => Some(w.action),
                _ => None,
            })
            .unwrap_or(WatchdogAction::Reset);
        def.add_device(Device::Watchdog(Box::new(Watchdog {
            model: WatchdogModel::Itco,
            action,
            info: DeviceInfo::default(),
        })));
    }
}

/// `qemuDomainDefaultUSBControllerModel` for x86.
fn default_usb_model(caps: &QemuCaps, machine: Machine) -> Option<UsbModel> {
    if machine == Machine::Q35 {
        if caps.has("qemu-xhci") {
            return Some(UsbModel::QemuXhci);
        }
        if caps.has("nec-usb-xhci") {
            return Some(UsbModel::NecXhci);
        }
        if caps.has("ich9-usb-ehci1") {
            return Some(UsbModel::Ich9Ehci1);
        }
    }
    if caps.has("piix3-usb-uhci") {
        return Some(UsbModel::Piix3Uhci);
    }
    None
}

/// The PS/2 mouse and keyboard of machines with an i8042 controller.
fn add_implicit_inputs(def: &mut DomainDef) {
    if !matches!(
        machine_of(def),
        Machine::I440fx | Machine::Q35 | Machine::Isapc
    ) {
        return;
    }
    if def.features.ps2 == Some(false) {
        return;
    }
    for kind in [InputType::Mouse, InputType::Keyboard] {
        let has = def
            .devices
            .iter()
            .any(|d| matches!(d, Device::Input(i) if i.kind == kind && i.bus == InputBus::Ps2));
        if !has {
            def.add_device(Device::Input(Box::new(Input::new(kind, InputBus::Ps2))));
        }
    }
}

/// `qemuDomainDefAddDefaultAudioBackend`: with no `<audio>`, SPICE gets
/// its own backend; SDL, D-Bus, VNC with `vnc_allow_host_audio` and no
/// graphics with `nographics_allow_host_audio` get the host's backend
/// (`QEMU_AUDIO_DRV`, none added when unset); anything else `none`.
fn add_default_audio(conf: &QemuConf, def: &mut DomainDef) {
    if def.devices.iter().any(|d| matches!(d, Device::Audio(_))) {
        return;
    }
    use common::domain::device::graphics::GraphicsType;
    let graphics: Vec<Option<GraphicsType>> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Graphics(g) => Some(g.kind),
            _ => None,
        })
        .collect();
    let host = || -> Option<AudioType> {
        let drv = conf.audio_env.as_deref()?;
        let drv = match drv {
            "pa" => "pulseaudio",
            "wav" => "file",
            d => d,
        };
        drv.parse().ok()
    };
    let kind = if graphics.contains(&Some(GraphicsType::Spice)) {
        Some(AudioType::Spice)
    } else if graphics
        .iter()
        .any(|g| matches!(g, Some(GraphicsType::Sdl | GraphicsType::Dbus)))
    {
        host()
    } else if graphics.contains(&Some(GraphicsType::Vnc)) {
        if conf.vnc_allow_host_audio {
            host()
        } else {
            Some(AudioType::None)
        }
    } else if graphics.is_empty() && conf.nographics_allow_host_audio {
        host()
    } else {
        Some(AudioType::None)
    };
    let Some(kind) = kind else { return };
    def.add_device(Device::Audio(Box::new(Audio {
        id: 1,
        kind,
        attrs: Vec::new(),
        input: None,
        output: None,
    })));
}

/// `qemuDomainDefSetDefaultCPU`: a custom CPU without a model gets the
/// machine type's default model.
fn set_default_cpu(caps: &QemuCaps, def: &mut DomainDef) {
    if let Some(cpu) = &def.cpu
        && (cpu.model.is_some() || cpu.mode() != CpuMode::Custom)
    {
        return;
    }
    let accel = accel_of(def);
    let machine = def.os.machine.as_deref().unwrap_or_default();
    let Some(typename) = caps
        .machine(accel, machine)
        .and_then(|m| m.default_cpu.clone())
    else {
        return;
    };
    let model = caps
        .accel(accel)
        .cpus
        .iter()
        .find(|c| c.typename.as_deref() == Some(typename.as_str()))
        .map(|c| c.name.clone())
        .or_else(|| typename.strip_suffix("-x86_64-cpu").map(str::to_owned));
    let Some(model) = model else { return };
    if model == "host" {
        return;
    }
    let cpu = def.cpu.get_or_insert_with(Cpu::default);
    cpu.mode = Some(CpuMode::Custom);
    cpu.match_ = Some(CpuMatch::Exact);
    cpu.check = Some(CpuCheck::None);
    cpu.model = Some(model);
    cpu.fallback = Some(CpuFallback::Forbid);
}

/// `qemuDomainChrDefDropDefaultPath`: a virtio channel's UNIX socket in
/// one of the places libvirt generates them is forgotten (and generated
/// again at start): `<channel dir>/target/NAME.TARGET`,
/// `<channel dir>/target/domain-*/TARGET`, or `<channel
/// dir>/ID-NAME/TARGET` under `/var/lib` or `/var/run`.
fn drop_generated_channel_path(c: &mut common::domain::device::Chardev) {
    use common::domain::device::chardev::ChrBackend;
    let ChrTarget::Virtio {
        name: Some(target), ..
    } = &c.target
    else {
        return;
    };
    let ChrBackend::Unix { listen, path, .. } = &mut c.source.backend else {
        return;
    };
    let Some(p) = path.as_deref() else { return };
    let generated = |rest: &str| -> bool {
        if let Some(r) = rest.strip_prefix("target/") {
            if let Some(d) = r.strip_prefix("domain-")
                && let Some((dir, file)) = d.split_once('/')
            {
                return !dir.is_empty() && file == target;
            }
            return r
                .strip_suffix(target.as_str())
                .and_then(|x| x.strip_suffix('.'))
                .is_some_and(|x| !x.is_empty() && !x.contains('/'));
        }
        if let Some((dir, file)) = rest.split_once('/')
            && let Some((id, name)) = dir.split_once('-')
        {
            return !id.is_empty()
                && id.chars().all(|ch| ch.is_ascii_digit())
                && !name.is_empty()
                && file == target;
        }
        false
    };
    let drop = [
        "/var/lib/libvirt/qemu/channel/",
        "/var/run/libvirt/qemu/channel/",
    ]
    .iter()
    .any(|dir| p.strip_prefix(dir).is_some_and(generated));
    if drop {
        *path = None;
        *listen = true;
    }
}

/// `virStorageSourceNetworkAssignDefaultPorts`: TCP hosts of a network
/// source get their protocol's port.
fn default_ports(src: &mut common::domain::device::storage::StorageSource) {
    use common::domain::device::storage::NetProtocol;
    let Some(proto) = src.protocol else { return };
    let port = match proto {
        NetProtocol::Nbd => 10809,
        NetProtocol::Rbd => 6789,
        NetProtocol::Sheepdog => 7000,
        NetProtocol::Gluster => 24007,
        NetProtocol::Iscsi => 3260,
        NetProtocol::Http => 80,
        NetProtocol::Https => 443,
        NetProtocol::Ftp => 21,
        NetProtocol::Ftps => 990,
        NetProtocol::Tftp => 69,
        NetProtocol::Ssh => 22,
        NetProtocol::Vxhs => 9999,
        NetProtocol::Nfs => return,
    };
    for h in &mut src.hosts {
        if h.port.is_none() && h.socket.is_none() && h.name.is_some() {
            h.port = Some(port);
        }
    }
}

/// `qemuDomainDeviceDefPostParse`.
pub(super) fn device(caps: &QemuCaps, def: &DomainDef, dev: &mut Device) -> Result<(), XmlError> {
    if !is_x86(def) {
        return Ok(());
    }
    let machine = machine_of(def);
    match dev {
        Device::Disk(d) => {
            if d.device == common::domain::device::disk::DiskDevice::Cdrom {
                d.readonly = true;
            }
            if d.driver.name.is_none() {
                d.driver.name = Some("qemu".to_owned());
            }
            let mut src = Some(&mut d.src);
            while let Some(s) = src {
                default_ports(s);
                if let Some(enc) = s.encryption.as_mut()
                    && enc.engine.is_none()
                {
                    enc.engine = Some("qemu".to_owned());
                }
                src = s.backing.as_deref_mut();
            }
            if d.src.kind == StorageType::VhostUser && d.snapshot.is_none() {
                d.snapshot = Some(common::domain::device::disk::SnapshotMode::No);
            }
            if d.src.format.is_none()
                && d.src.kind != StorageType::Volume
                && !(d.src.kind == StorageType::Network && d.src.is_empty())
            {
                d.src.format = Some(ImageFormat::Raw);
            }
        }
        Device::Controller(c) => match c.kind {
            ControllerType::Usb if c.model.is_none() && caps.has("piix3-usb-uhci") => {
                c.model = Some(ControllerModel::Usb(UsbModel::Piix3Uhci));
            }
            ControllerType::Scsi
                if c.model.is_none() || c.model == Some(ControllerModel::Scsi(ScsiModel::Auto)) =>
            {
                c.model = Some(ControllerModel::Scsi(ScsiModel::Lsilogic));
            }
            ControllerType::Pci if c.model.is_none() && c.index == 0 => {
                c.model = Some(ControllerModel::Pci(if machine == Machine::Q35 {
                    PciModel::PcieRoot
                } else {
                    PciModel::PciRoot
                }));
            }
            _ => {}
        },
        Device::Serial(c) => {
            if let ChrTarget::Serial { kind, model, .. } = &mut c.target {
                if kind.is_none() {
                    *kind = Some(SerialTargetType::IsaSerial);
                }
                if model.is_none() {
                    *model = match kind {
                        Some(SerialTargetType::IsaSerial) => Some(SerialTargetModel::IsaSerial),
                        Some(SerialTargetType::UsbSerial) => Some(SerialTargetModel::UsbSerial),
                        Some(SerialTargetType::PciSerial) => Some(SerialTargetModel::PciSerial),
                        Some(SerialTargetType::IsaDebug) => Some(SerialTargetModel::IsaDebugcon),
                        Some(SerialTargetType::SpaprVioSerial) => Some(SerialTargetModel::SpaprVty),
                        Some(SerialTargetType::SclpSerial) => Some(SerialTargetModel::SclpConsole),
                        _ => None,
                    };
                }
            }
        }
        Device::Channel(c) => drop_generated_channel_path(c),
        Device::Sound(snd) if snd.model.as_str() == "virtio" && snd.streams.is_none() => {
            snd.streams = Some(2);
        }
        Device::Interface(i)
            if i.model.is_none()
                && i.net_type() != common::domain::device::interface::NetType::Hostdev =>
        {
            i.model = Some(
                if i.net_type() == common::domain::device::interface::NetType::Vdpa {
                    "virtio"
                } else {
                    "rtl8139"
                }
                .to_owned(),
            );
        }
        Device::Graphics(g)
            if g.kind == Some(common::domain::device::graphics::GraphicsType::Vnc) =>
        {
            // A socket in a per-domain directory was generated for a
            // running domain: the inactive definition listens again.
            use common::domain::device::graphics::ListenType;
            if let Some(l) = g.listens.first_mut()
                && l.kind == ListenType::Socket
                && l.socket
                    .as_deref()
                    .is_some_and(|s| s.starts_with("/var/lib/libvirt/qemu/domain-"))
            {
                l.kind = ListenType::Address;
                l.socket = None;
                l.address = None;
                g.autoport = true;
                g.port = -1;
            }
        }
        Device::Tpm(t) => {
            use common::domain::device::tpm::{TpmBackend, TpmModel, TpmVersion};
            let model = *t.model.get_or_insert(TpmModel::Tis);
            if let TpmBackend::Emulator { version, .. } = &mut t.backend
                && version.is_none()
            {
                *version = Some(match model {
                    TpmModel::Crb | TpmModel::Spapr => TpmVersion::V2_0,
                    _ => TpmVersion::V1_2,
                });
            }
        }
        Device::Panic(p) if p.model.is_none() => {
            p.model = Some(common::domain::device::panic::PanicModel::Isa);
        }
        Device::Vsock(v) if v.model.is_none() => {
            v.model = Some(common::domain::device::vsock::VsockModel::Virtio);
        }
        Device::Console(c) => {
            if let ChrTarget::Console { kind, .. } = &mut c.target
                && kind.is_none()
            {
                *kind = Some(ConsoleTargetType::Serial);
            }
        }
        Device::Video(v) => {
            if v.kind == VideoType::Default {
                v.kind = if caps.has("cirrus-vga") {
                    VideoType::Cirrus
                } else {
                    VideoType::Vga
                };
            }
            if v.vram == 0 {
                v.vram = video::default_vram(v.kind, def.virt_type.as_str());
            }
            if v.kind == VideoType::Qxl && v.vgamem == 0 {
                v.vgamem = 16 * 1024;
            }
        }
        _ => {}
    }
    Ok(())
}
