//! Validation (libvirt's `virDomainDefValidate`): read-only checks, the
//! driver's first, then the generic ones.

use std::collections::HashSet;

use crate::xml::XmlError;

use super::device::Device;
use super::device::address::Address;
use super::device::disk::{Disk, DiskBus, DiskDevice};
use super::device::hostdev::{Hostdev, HostdevSource};
use super::device::storage::{NetProtocol, StartupPolicy, StorageType};
use super::device::video::VideoType;
use super::hooks::DomainDefHooks;
use super::os::{Firmware, LoaderType};
use super::{DomainDef, cpu};

pub(crate) fn run(def: &DomainDef, hooks: &dyn DomainDefHooks) -> Result<(), XmlError> {
    hooks.validate(def)?;
    for (i, dev) in def.devices.iter().enumerate() {
        let path = format!("devices/{}[{}]", dev.element_name(), i + 1);
        hooks.validate_device(def, dev)?;
        device(def, dev, &path)?;
    }
    domain(def)
}

fn disk(d: &Disk, path: &str) -> Result<(), XmlError> {
    let bus = d.bus();
    if let Some(a) = &d.info.address {
        let ok = match bus {
            DiskBus::Ide | DiskBus::Fdc | DiskBus::Scsi | DiskBus::Sata => {
                matches!(a, Address::Drive(_))
            }
            DiskBus::Virtio | DiskBus::Usb => !matches!(a, Address::Drive(_)),
            _ => true,
        };
        if !ok {
            return Err(XmlError::unsupported(
                path,
                format!(
                    "Invalid address type '{}' for the disk '{}' with the bus type '{}'",
                    a.type_name(),
                    d.target.dev,
                    bus
                ),
            ));
        }
    }
    if d.device == DiskDevice::Lun
        && !matches!(
            d.src.kind,
            StorageType::Block | StorageType::Network | StorageType::Volume
        )
    {
        return Err(XmlError::unsupported(
            path,
            "disk device='lun' is only valid for block type disk source",
        ));
    }
    if (d.vendor.is_some() || d.product.is_some()) && bus != DiskBus::Scsi {
        return Err(XmlError::unsupported(
            path,
            "Only scsi disk supports vendor and product",
        ));
    }
    if bus == DiskBus::Usb && d.src.is_empty() {
        return Err(XmlError::unsupported(path, "'usb' disk must not be empty"));
    }
    startup_policy(d, path)?;
    if d.src.is_empty() && matches!(d.device, DiskDevice::Disk | DiskDevice::Lun) {
        return Err(XmlError::invalid(path, "missing disk source"));
    }
    if let Some(enc) = &d.src.encryption
        && enc.format == "luks"
        && (enc.cipher.is_some() || enc.ivgen.is_some())
    {
        return Err(XmlError::unsupported(
            path,
            "supplying <cipher> for domain disk definition is unnecessary",
        ));
    }
    if let Some(auth) = &d.src.auth {
        let want = match d.src.protocol {
            Some(NetProtocol::Iscsi) => Some("iscsi"),
            Some(NetProtocol::Rbd) => Some("ceph"),
            _ => None,
        };
        if let (Some(w), Some(k)) = (want, auth.secret.kind.as_deref())
            && w != k
        {
            return Err(XmlError::unsupported(
                path,
                format!("invalid secret type '{k}'"),
            ));
        }
    }
    Ok(())
}

/// libvirt's rules on a disk's `startupPolicy` (an XML error, as
/// libvirt's): only for a source QEMU opens as a local path (a file, a
/// block device, a directory, or a volume not resolved yet), since only
/// such a source can be found missing at start; `requisite` (which forgives
/// a missing source on restore or migration) only for a CD-ROM or floppy,
/// whose medium can be dropped. The messages are libvirt's, with the disk
/// named.
fn startup_policy(d: &Disk, path: &str) -> Result<(), XmlError> {
    let Some(policy) = d.src.startup_policy else {
        return Ok(());
    };
    let at = format!("{path}/source/@startupPolicy");
    let local = matches!(
        d.src.effective_kind(),
        StorageType::File | StorageType::Block | StorageType::Dir | StorageType::Volume
    );
    if !local {
        return Err(XmlError::invalid(
            at,
            format!(
                "disk startupPolicy '{policy}' is not allowed for disk of '{}' type (disk '{}')",
                d.src.kind, d.target.dev
            ),
        ));
    }
    if policy == StartupPolicy::Requisite
        && !matches!(d.device, DiskDevice::Cdrom | DiskDevice::Floppy)
    {
        return Err(XmlError::invalid(
            at,
            format!(
                "disk startupPolicy 'requisite' is allowed only for cdrom or floppy (disk '{}' is a '{}')",
                d.target.dev, d.device
            ),
        ));
    }
    Ok(())
}

fn device(def: &DomainDef, dev: &Device, path: &str) -> Result<(), XmlError> {
    let _ = def;
    match dev {
        Device::Disk(d) => disk(d, path),
        Device::Serial(c) | Device::Parallel(c) | Device::Console(c) | Device::Channel(c) => {
            c.validate(path)
        }
        Device::Smartcard(s) => s.validate(path),
        Device::Hostdev(h) => hostdev(h, path),
        Device::Redirdev(r) => super::device::chardev::validate_source(&r.source, path, false),
        _ => Ok(()),
    }
}

fn drive_key(d: &Disk) -> Option<(DiskBus, u32, u32, u32, u32)> {
    d.drive_address()
        .map(|a| (d.bus(), a.controller, a.bus, a.target, a.unit))
}

fn domain(def: &DomainDef) -> Result<(), XmlError> {
    if def.name.contains('/') {
        return Err(XmlError::invalid(
            "name",
            format!("name {} cannot contain '/'", def.name),
        ));
    }
    if let Some(why) = crate::configstore::name_too_long(&def.name) {
        return Err(XmlError::invalid("name", why));
    }
    // Disks: unique targets and drive addresses.
    let mut targets: HashSet<&str> = HashSet::new();
    let mut drives = std::collections::HashMap::new();
    for d in def.disks() {
        if !targets.insert(d.target.dev.as_str()) {
            return Err(XmlError::invalid(
                "devices/disk",
                format!("target '{}' duplicated for disk sources", d.target.dev),
            ));
        }
        if let Some(k) = drive_key(d) {
            if let Some(first) = drives.get(&k) {
                return Err(XmlError::unsupported(
                    "devices/disk",
                    format!(
                        "Found duplicate drive address for disk with target name '{first}' controller='{}' bus='{}' target='{}' unit='{}'",
                        k.1, k.2, k.3, k.4
                    ),
                ));
            }
            drives.insert(k, d.target.dev.as_str());
        }
    }
    hostdevs(def)?;
    // A 'none' video must be alone.
    let videos: Vec<VideoType> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Video(v) => Some(v.kind),
            _ => None,
        })
        .collect();
    if videos.len() > 1 && videos.contains(&VideoType::None) {
        return Err(XmlError::unsupported(
            "devices/video",
            "a 'none' video type must be the only video device defined for the domain",
        ));
    }
    // Unique aliases. The first console, when it is the first serial port
    // seen as a console, shares that port's alias (libvirt skips it too).
    let has_serial = def.devices.iter().any(|d| matches!(d, Device::Serial(_)));
    let dup_console = def.devices.iter().position(|d| {
        matches!(d, Device::Console(c) if matches!(
            &c.target,
            crate::domain::device::chr::ChrTarget::Console {
                kind: None | Some(crate::domain::device::chr::ConsoleTargetType::Serial),
                ..
            }
        ))
    });
    let first_console = def
        .devices
        .iter()
        .position(|d| matches!(d, Device::Console(_)));
    let mut aliases = HashSet::new();
    for (i, d) in def.devices.iter().enumerate() {
        if has_serial
            && dup_console.is_some()
            && dup_console == first_console
            && Some(i) == first_console
        {
            continue;
        }
        if let Some(a) = d.info().and_then(|i| i.alias.as_deref())
            && !aliases.insert(a)
        {
            return Err(XmlError::invalid(
                "devices",
                format!("non unique alias detected: {a}"),
            ));
        }
    }
    if let Some(c) = &def.cpu {
        cpu::validate(c)?;
    }
    os(def)
}

/// Whether two host devices are the same host device
/// (`virDomainHostdevMatch`).
fn same_hostdev(a: &HostdevSource, b: &HostdevSource) -> bool {
    use HostdevSource as S;
    match (a, b) {
        (
            S::Usb {
                vendor: va,
                product: pa,
                bus_device: ba,
                ..
            },
            S::Usb {
                vendor: vb,
                product: pb,
                bus_device: bb,
                ..
            },
        ) => {
            let ids = va.is_some() && va == vb && pa == pb;
            let addr = ba.is_some() && ba == bb;
            (ids && (ba.is_none() || bb.is_none() || ba == bb))
                || (addr && (va.is_none() || vb.is_none()))
        }
        (S::Pci { addr: x, .. }, S::Pci { addr: y, .. }) => {
            (x.domain, x.bus, x.slot, x.function) == (y.domain, y.bus, y.slot, y.function)
        }
        (
            S::Scsi {
                adapter: a1,
                bus: b1,
                target: t1,
                unit: u1,
            },
            S::Scsi {
                adapter: a2,
                bus: b2,
                target: t2,
                unit: u2,
            },
        ) => (a1, b1, t1, u1) == (a2, b2, t2, u2),
        (S::ScsiIscsi { name: x, .. }, S::ScsiIscsi { name: y, .. }) => x == y,
        (S::ScsiHost { wwpn: x, .. }, S::ScsiHost { wwpn: y, .. }) => x == y,
        (S::Mdev { uuid: x }, S::Mdev { uuid: y }) => x.eq_ignore_ascii_case(y),
        _ => false,
    }
}

/// `virDomainHostdevDefValidate` / `virDomainMdevDefValidate`.
fn hostdev(h: &Hostdev, path: &str) -> Result<(), XmlError> {
    if h.info.boot.is_some() {
        match h.source {
            HostdevSource::ScsiHost { .. } => {
                return Err(XmlError::unsupported(
                    path,
                    "booting from assigned devices is not supported by vhost SCSI devices",
                ));
            }
            HostdevSource::Mdev { .. } | HostdevSource::Caps { .. } => {
                return Err(XmlError::unsupported(
                    path,
                    "booting from assigned devices is only supported for PCI, USB and SCSI devices",
                ));
            }
            _ => {}
        }
    }
    if let HostdevSource::Mdev { .. } = h.source {
        let model = h.model.as_deref().unwrap_or("");
        if h.display.is_some() && model != "vfio-pci" {
            return Err(XmlError::unsupported(
                path,
                "<hostdev> attribute 'display' is only supported with model='vfio-pci'",
            ));
        }
        if h.ramfb == Some(true) && h.display != Some(true) {
            return Err(XmlError::unsupported(
                path,
                "'ramfb' requires 'display' to be turned on",
            ));
        }
        let ok = matches!(
            (model, &h.info.address),
            (_, None) | ("vfio-pci", Some(Address::Pci(_))) | ("vfio-ccw", Some(Address::Ccw(_)))
        );
        if !ok && let Some(a) = &h.info.address {
            return Err(XmlError::invalid(
                path,
                format!(
                    "Unsupported address type '{}' with mediated device model '{model}'",
                    a.type_name()
                ),
            ));
        }
    }
    Ok(())
}

fn hostdevs(def: &DomainDef) -> Result<(), XmlError> {
    let list: Vec<&Hostdev> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Hostdev(h) => Some(h.as_ref()),
            _ => None,
        })
        .collect();
    for (i, h) in list.iter().enumerate() {
        if list[..i].iter().any(|o| same_hostdev(&o.source, &h.source)) {
            return Err(XmlError::invalid(
                "devices/hostdev",
                "Hostdev already exists in the domain configuration",
            ));
        }
        if let (HostdevSource::Scsi { .. }, Some(Address::Drive(a))) = (&h.source, &h.info.address)
            && list[..i].iter().any(|o| {
                matches!(o.source, HostdevSource::Scsi { .. }) && o.info.address == h.info.address
            })
        {
            return Err(XmlError::unsupported(
                "devices/hostdev",
                format!(
                    "SCSI host address controller='{}' bus='{}' target='{}' unit='{}' in use by another SCSI host device",
                    a.controller, a.bus, a.target, a.unit
                ),
            ));
        }
    }
    Ok(())
}

/// `virDomainDefOSValidate` (the driver-neutral part).
fn os(def: &DomainDef) -> Result<(), XmlError> {
    let os = &def.os;
    if os.firmware.is_some()
        && os.fw_secure_boot == Some(true)
        && os.fw_enrolled_keys == Some(false)
    {
        return Err(XmlError::unsupported(
            "os/firmware",
            "firmware feature 'enrolled-keys' cannot be disabled when firmware feature 'secure-boot' is enabled",
        ));
    }
    let Some(l) = &os.loader else {
        return Ok(());
    };
    if os.firmware.is_none() && l.path.is_none() {
        return Err(XmlError::invalid(
            "os/loader",
            "no loader path specified and firmware auto selection disabled",
        ));
    }
    let has_nvram = l.nvram.is_some();
    if let Some(fw) = os.firmware
        && fw != Firmware::Efi
        && has_nvram
    {
        return Err(XmlError::invalid(
            "os/nvram",
            format!("firmware type '{fw}' does not support nvram"),
        ));
    }
    if l.stateless == Some(true) {
        if l.nvram_template.is_some() {
            return Err(XmlError::invalid(
                "os/nvram",
                "NVRAM template is not permitted when loader is stateless",
            ));
        }
        if has_nvram {
            return Err(XmlError::invalid(
                "os/nvram",
                "NVRAM is not permitted when loader is stateless",
            ));
        }
    }
    if l.kind == Some(LoaderType::Rom) && (has_nvram || l.nvram_template.is_some()) {
        return Err(XmlError::invalid(
            "os/nvram",
            "Only pflash loader type permits NVRAM",
        ));
    }
    if let (Some(a), Some(b)) = (l.format, l.nvram_format)
        && a != b
    {
        return Err(XmlError::invalid(
            "os/nvram",
            format!("Format mismatch: loader.format='{a}' nvram.format='{b}'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::TestHooks;
    use super::*;
    use crate::error::{ErrorCode, ErrorDomain};
    use crate::xml::ParseFlags;

    /// A domain with one `<disk>` of `disk_attrs` holding `inner`.
    fn with_disk(disk_attrs: &str, inner: &str) -> String {
        format!(
            "<domain type='qemu'><name>a</name>\
             <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>\
             <memory>1024</memory><os><type>hvm</type></os><devices>\
             <disk {disk_attrs}>{inner}</disk></devices></domain>"
        )
    }

    fn parse(xml: &str) -> Result<DomainDef, XmlError> {
        DomainDef::parse_str(xml, ParseFlags::default(), &TestHooks)
    }

    /// The error of `xml`: at the startupPolicy attribute, an XML error
    /// (libvirt's VIR_ERR_XML_ERROR), its text containing `want`.
    fn refused(xml: &str, want: &str) {
        let e = parse(xml).expect_err(want);
        assert_eq!(e.path, "devices/disk[1]/source/@startupPolicy", "{e}");
        assert!(
            matches!(e.kind, crate::xml::XmlErrorKind::Invalid(_)),
            "{e}"
        );
        let v = e.to_virt_error(ErrorDomain::Domain);
        assert_eq!(v.code, ErrorCode::XmlDetail, "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }

    #[test]
    fn startup_policy_needs_a_local_source() {
        for policy in ["mandatory", "requisite", "optional"] {
            refused(
                &with_disk(
                    "type='network' device='disk'",
                    &format!(
                        "<source protocol='nbd' name='x' startupPolicy='{policy}'>\
                         <host name='example.org' port='10809'/></source>\
                         <target dev='vda' bus='virtio'/>"
                    ),
                ),
                &format!(
                    "disk startupPolicy '{policy}' is not allowed for disk of 'network' type (disk 'vda')"
                ),
            );
        }
        refused(
            &with_disk(
                "type='network' device='cdrom'",
                "<source protocol='http' name='x.iso' startupPolicy='optional'>\
                 <host name='example.org'/></source><target dev='sda' bus='sata'/><readonly/>",
            ),
            "not allowed for disk of 'network' type (disk 'sda')",
        );
        // Local sources, and a volume not resolved yet, may have any policy
        // their device allows.
        for (attrs, source) in [
            ("type='file' device='disk'", "file='/img/a.qcow2'"),
            ("type='block' device='disk'", "dev='/dev/sdz'"),
            ("type='dir' device='disk'", "dir='/srv/fat'"),
            ("type='volume' device='disk'", "pool='p' volume='v'"),
        ] {
            for policy in ["mandatory", "optional"] {
                let xml = with_disk(
                    attrs,
                    &format!(
                        "<source {source} startupPolicy='{policy}'/>\
                         <target dev='vda' bus='virtio'/>"
                    ),
                );
                let d = parse(&xml).unwrap_or_else(|e| panic!("{attrs} {policy}: {e}"));
                assert_eq!(
                    d.disks().next().and_then(|d| d.src.startup_policy),
                    policy.parse().ok()
                );
            }
        }
        // No policy: nothing to check.
        parse(&with_disk(
            "type='network' device='disk'",
            "<source protocol='nbd' name='x'><host name='example.org'/></source>\
             <target dev='vda' bus='virtio'/>",
        ))
        .expect("no policy");
    }

    #[test]
    fn requisite_is_only_for_cdrom_and_floppy() {
        for (attrs, target) in [
            (
                "type='file' device='disk'",
                "<target dev='vda' bus='virtio'/>",
            ),
            (
                "type='block' device='lun'",
                "<target dev='sda' bus='scsi'/>",
            ),
        ] {
            let source = if attrs.contains("block") {
                "<source dev='/dev/sdz' startupPolicy='requisite'/>"
            } else {
                "<source file='/img/a.raw' startupPolicy='requisite'/>"
            };
            let dev = if attrs.contains("lun") { "lun" } else { "disk" };
            let name = if attrs.contains("lun") { "sda" } else { "vda" };
            refused(
                &with_disk(attrs, &format!("{source}{target}")),
                &format!(
                    "disk startupPolicy 'requisite' is allowed only for cdrom or floppy (disk '{name}' is a '{dev}')"
                ),
            );
        }
        for (attrs, target) in [
            (
                "type='file' device='cdrom'",
                "<target dev='sda' bus='sata'/><readonly/>",
            ),
            (
                "type='file' device='floppy'",
                "<target dev='fda' bus='fdc'/>",
            ),
        ] {
            let xml = with_disk(
                attrs,
                &format!("<source file='/img/m.iso' startupPolicy='requisite'/>{target}"),
            );
            parse(&xml).unwrap_or_else(|e| panic!("{attrs}: {e}"));
        }
    }
}
