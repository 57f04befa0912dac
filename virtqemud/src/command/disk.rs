//! Disks: one `-blockdev` per storage layer (`libvirt-N-storage`, plus
//! `libvirt-N-format` for non-raw images) and the frontend `-device`.

use common::domain::Device;
use common::domain::device::controller::{ControllerModel, ScsiModel};
use common::domain::device::disk::{
    CacheMode, DetectZeroes, Discard, DiskBus, DiskDevice, DiskModel, ErrorPolicy, IoMode,
    disk_name_to_index,
};
use common::domain::device::storage::{ImageFormat, StorageType};
use common::domain::device::{ControllerType, Disk};
use common::domain::os::BootDev;
use common::storage::FileFormat;

use super::controllers::virtio_props;
use super::{Args, BuildError, Builder, Props, Result};

/// Boot indexes derived from `<os><boot dev=>` when no device has its
/// own `<boot order=>` (libvirt's effective boot index).
#[derive(Debug, Default)]
pub struct BootPlan {
    /// One entry per disk, in definition order.
    pub disks: Vec<Option<u32>>,
    /// One entry per interface, in definition order.
    pub nets: Vec<Option<u32>>,
}

/// Computes the boot index of every disk and interface.
pub fn boot_plan(b: &Builder<'_>) -> BootPlan {
    let def = b.def;
    let disks: Vec<&Disk> = def.disks().collect();
    let nets: Vec<_> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Interface(i) => Some(i.as_ref()),
            _ => None,
        })
        .collect();
    let per_device = def
        .devices
        .iter()
        .any(|d| d.info().is_some_and(|i| i.boot.is_some()));
    if per_device {
        return BootPlan {
            disks: disks
                .iter()
                .map(|d| d.info.boot.as_ref().map(|x| x.order))
                .collect(),
            nets: nets
                .iter()
                .map(|n| n.info.boot.as_ref().map(|x| x.order))
                .collect(),
        };
    }
    let pos = |dev: BootDev| {
        def.os
            .boot_devs
            .iter()
            .position(|d| *d == dev)
            .and_then(|p| u32::try_from(p + 1).ok())
    };
    let (mut cd, mut fd, mut hd, mut net) = (
        pos(BootDev::Cdrom),
        pos(BootDev::Fd),
        pos(BootDev::Hd),
        pos(BootDev::Network),
    );
    let disks = disks
        .iter()
        .map(|d| match d.device {
            DiskDevice::Cdrom => cd.take(),
            DiskDevice::Floppy => fd.take(),
            DiskDevice::Disk | DiskDevice::Lun => hd.take(),
        })
        .collect();
    let nets = nets.iter().map(|_| net.take()).collect();
    BootPlan { disks, nets }
}

/// All disks.
///
/// # Errors
/// Unsupported storage or buses.
pub fn build(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let plan = boot_plan(b);
    let disks: Vec<&Disk> = b.def.disks().collect();
    // Floppy boot indexes belong to the controller: the built-in one of
    // i440fx machines takes them as globals, Q35 needs an explicit one.
    let mut fdc = Props::new().s("driver", "isa-fdc");
    for (d, boot) in disks.iter().zip(&plan.disks) {
        if d.bus() == DiskBus::Fdc
            && let Some(i) = boot
        {
            let unit = d.drive_address().map_or(0, |a| a.unit);
            let letter = if unit == 0 { 'A' } else { 'B' };
            if b.is_q35() {
                fdc = fdc.u(&format!("bootindex{letter}"), u64::from(*i));
            } else {
                args.opt("-global", format!("isa-fdc.bootindex{letter}={i}"));
            }
        }
    }
    if b.is_q35() && disks.iter().any(|d| d.bus() == DiskBus::Fdc) {
        args.device(&fdc);
    }
    // Node names count down from the number of disks; empty drives use
    // up their number too, SD cards (plain `-drive`) do not.
    let mut n = disks.iter().filter(|d| d.bus() != DiskBus::Sd).count();
    for (d, boot) in disks.iter().zip(&plan.disks) {
        if d.bus() == DiskBus::Sd {
            args.opt("-drive", sd_drive(d)?);
            continue;
        }
        // A running domain's disks keep the numbers they got at start
        // (`index=` of the live source), so a hotplugged one changes no
        // other node name.
        let num = d.src.index.map_or(n, |i| i as usize);
        let node = if has_source(d) {
            Some(build_blockdev(d, num, args)?)
        } else {
            None
        };
        n -= 1;
        let boot = if d.bus() == DiskBus::Fdc { None } else { *boot };
        args.device(&disk_device(b, d, node.as_deref(), boot)?);
    }
    Ok(())
}

/// An SD card: no `-blockdev` support, so the legacy `-drive`.
fn sd_drive(d: &Disk) -> Result<String> {
    let Some(path) = d.src.path.as_deref().filter(|_| has_source(d)) else {
        return Err(BuildError::Unsupported("empty SD card".to_owned()));
    };
    let format = d.src.format.unwrap_or(ImageFormat::Raw);
    Ok(format!(
        "file={},format={},if=sd,index={}",
        super::qemu_escape(path),
        format.as_str(),
        disk_name_to_index(&d.target.dev).unwrap_or(0)
    ))
}

/// Gives every disk of a live definition its node number (`index=` of its
/// source): the numbers the builder counts down from the number of disks.
/// Disks that have one keep it.
pub fn assign_indices(def: &mut common::domain::DomainDef) {
    let mut n = def.disks().filter(|d| d.bus() != DiskBus::Sd).count();
    for dev in &mut def.devices {
        if let common::domain::Device::Disk(d) = dev {
            if d.bus() == DiskBus::Sd {
                continue;
            }
            if d.src.index.is_none() {
                d.src.index = u32::try_from(n).ok();
            }
            n = n.saturating_sub(1);
        }
    }
}

fn has_source(d: &Disk) -> bool {
    d.src.effective_kind() != StorageType::None
        && d.src.effective_kind() != StorageType::Volume
        && d.src.path.is_some()
}

/// Writable shared disks default to `cache='none'`: the host page cache
/// must not hide one guest's writes from another.
fn effective_cache(d: &Disk) -> Option<CacheMode> {
    match d.driver.cache {
        None if d.shareable && !d.readonly => Some(CacheMode::None),
        c => c,
    }
}

fn cache_props(mode: CacheMode) -> Props {
    let (direct, no_flush) = match mode {
        CacheMode::None | CacheMode::Directsync => (true, false),
        CacheMode::Writethrough | CacheMode::Writeback => (false, false),
        CacheMode::Unsafe => (false, true),
    };
    Props::new().b("direct", direct).b("no-flush", no_flush)
}

/// Emits the blockdev layers of a disk; returns the top node name.
fn build_blockdev(d: &Disk, n: usize, args: &mut Args) -> Result<String> {
    let path = d.src.path.clone().unwrap_or_default();
    let driver = match d.src.effective_kind() {
        StorageType::File => "file",
        StorageType::Block => {
            if d.device == DiskDevice::Cdrom && path == "/dev/cdrom" {
                "host_cdrom"
            } else {
                "host_device"
            }
        }
        other => {
            return Err(BuildError::Unsupported(format!(
                "disk source type '{}'",
                other.as_str()
            )));
        }
    };
    let format = d.src.format.unwrap_or(ImageFormat::Raw);
    let layered = format != ImageFormat::Raw;
    let storage = format!("libvirt-{n}-storage");
    let mut p = Props::new()
        .s("driver", driver)
        .s("filename", path)
        .s_opt(
            "aio",
            d.driver.io.map(|io| match io {
                IoMode::Native => "native",
                IoMode::Threads => "threads",
                IoMode::IoUring => "io_uring",
            }),
        )
        .s("node-name", storage.clone());
    if layered {
        p = p.b("auto-read-only", true).s("discard", "unmap");
    } else {
        p = p.b("read-only", d.readonly).extend(top_props(d));
    }
    if let Some(c) = effective_cache(d) {
        p = p.obj("cache", cache_props(c));
    }
    args.opt("-blockdev", p.to_json());
    let top = if layered {
        let fmt = format!("libvirt-{n}-format");
        let mut f = Props::new()
            .s("node-name", fmt.clone())
            .b("read-only", d.readonly)
            .extend(top_props(d));
        if let Some(c) = effective_cache(d) {
            f = f.obj("cache", cache_props(c));
        }
        f = f.s("driver", format.as_str()).s("file", storage);
        if ends_chain(d, format) {
            f = f.null("backing");
        }
        args.opt("-blockdev", f.to_json());
        fmt
    } else {
        storage
    };
    if d.driver.copy_on_read == Some(true) {
        let cor = format!("libvirt-CoR-{}", d.target.dev);
        args.opt(
            "-blockdev",
            Props::new()
                .s("driver", "copy-on-read")
                .s("node-name", cor.clone())
                .s("file", top)
                .s("discard", "unmap")
                .to_json(),
        );
        return Ok(cor);
    }
    Ok(top)
}

/// Whether the format node must name no backing (`"backing":null`, as
/// libvirt): the definition ends the chain with an empty `<backingStore/>`
/// and the format could name a backing file in its header, which QEMU
/// would otherwise open.
fn ends_chain(d: &Disk, format: ImageFormat) -> bool {
    let terminated = d
        .src
        .backing
        .as_ref()
        .is_some_and(|b| b.kind == StorageType::None);
    terminated
        && format
            .as_str()
            .parse::<FileFormat>()
            .is_ok_and(FileFormat::has_backing)
}

/// `discard`/`detect-zeroes` of the node the guest sees.
fn top_props(d: &Disk) -> Props {
    let discard = d.driver.discard == Some(Discard::Unmap);
    let dz = d.driver.detect_zeroes.map(|z| match z {
        DetectZeroes::Unmap if !discard => "on",
        other => other.as_str(),
    });
    Props::new()
        .s_opt("discard", discard.then_some("unmap"))
        .s_opt("detect-zeroes", dz)
}

fn scsi_model(b: &Builder<'_>, controller: u32) -> Option<ScsiModel> {
    b.def
        .controllers()
        .find(|c| c.kind == ControllerType::Scsi && c.index == controller)
        .and_then(|c| match c.model {
            Some(ControllerModel::Scsi(m)) => Some(m),
            _ => None,
        })
}

fn disk_device(b: &Builder<'_>, d: &Disk, node: Option<&str>, boot: Option<u32>) -> Result<Props> {
    let addr = d.drive_address().copied().unwrap_or_default();
    let cd = d.device == DiskDevice::Cdrom;
    let (mut p, id) = match d.bus() {
        DiskBus::Ide => (
            Props::new()
                .s("driver", if cd { "ide-cd" } else { "ide-hd" })
                .s(
                    "bus",
                    format!("{}.{}", ide_alias(addr.controller), addr.bus),
                )
                .u("unit", u64::from(addr.unit)),
            format!("ide{}-{}-{}", addr.controller, addr.bus, addr.unit),
        ),
        DiskBus::Sata => {
            let bus = if addr.controller == 0 && b.is_q35() {
                "ide".to_owned()
            } else {
                format!("sata{}", addr.controller)
            };
            (
                Props::new()
                    .s("driver", if cd { "ide-cd" } else { "ide-hd" })
                    .s("bus", format!("{bus}.{}", addr.unit)),
                format!("sata{}-{}-{}", addr.controller, addr.bus, addr.unit),
            )
        }
        DiskBus::Fdc => (
            Props::new()
                .s("driver", "floppy")
                .u("unit", u64::from(addr.unit)),
            format!("fdc{}-{}-{}", addr.controller, addr.bus, addr.unit),
        ),
        DiskBus::Scsi => {
            let driver = if cd { "scsi-cd" } else { "scsi-hd" };
            let lsi = matches!(
                scsi_model(b, addr.controller),
                Some(ScsiModel::Lsilogic) | None
            );
            if lsi {
                let id = format!("scsi{}-{}-{}", addr.controller, addr.bus, addr.unit);
                (
                    Props::new()
                        .s("driver", driver)
                        .s("bus", format!("scsi{}.{}", addr.controller, addr.bus))
                        .u("scsi-id", u64::from(addr.unit))
                        .s("device_id", format!("drive-{id}")),
                    id,
                )
            } else {
                let id = format!(
                    "scsi{}-{}-{}-{}",
                    addr.controller, addr.bus, addr.target, addr.unit
                );
                (
                    Props::new()
                        .s("driver", driver)
                        .s("bus", format!("scsi{}.0", addr.controller))
                        .u("channel", u64::from(addr.bus))
                        .u("scsi-id", u64::from(addr.target))
                        .u("lun", u64::from(addr.unit))
                        .s("device_id", format!("drive-{id}")),
                    id,
                )
            }
        }
        DiskBus::Virtio => {
            let n = disk_name_to_index(&d.target.dev).unwrap_or(0);
            (
                Props::new()
                    .s(
                        "driver",
                        match d.model {
                            Some(DiskModel::VirtioTransitional) => "virtio-blk-pci-transitional",
                            Some(DiskModel::VirtioNonTransitional) => {
                                "virtio-blk-pci-non-transitional"
                            }
                            _ => "virtio-blk-pci",
                        },
                    )
                    .extend(virtio_props(&d.driver.virtio))
                    .s_opt(
                        "iothread",
                        d.driver.iothread.map(|t| format!("iothread{t}")),
                    )
                    .b_opt("ioeventfd", d.driver.ioeventfd)
                    .b_opt("event_idx", d.driver.event_idx)
                    .u_opt("num-queues", d.driver.queues.map(u64::from))
                    .u_opt("queue-size", d.driver.queue_size.map(u64::from))
                    .extend(b.address_props(&d.info)),
                format!("virtio-disk{n}"),
            )
        }
        DiskBus::Usb => {
            let n = disk_name_to_index(&d.target.dev).unwrap_or(0);
            (
                Props::new()
                    .s("driver", "usb-storage")
                    .extend(b.usb_props(&d.info)),
                format!("usb-disk{n}"),
            )
        }
        other => {
            return Err(BuildError::Unsupported(format!(
                "disk bus '{}'",
                other.as_str()
            )));
        }
    };
    if d.shareable {
        p = p.b("share-rw", true);
    }
    p = p
        .s_opt("drive", node)
        .s("id", id)
        .u_opt("bootindex", boot.map(u64::from));
    if let Some(bio) = &d.blockio {
        p = p
            .u_opt("logical_block_size", bio.logical.map(u64::from))
            .u_opt("physical_block_size", bio.physical.map(u64::from));
    }
    if let Some(bio) = &d.blockio {
        p = p.u_opt(
            "discard_granularity",
            bio.discard_granularity.map(u64::from),
        );
    }
    if let Some(w) = &d.wwn {
        let h = w.strip_prefix("0x").unwrap_or(w);
        if let Ok(v) = u64::from_str_radix(h, 16) {
            p = p.u("wwn", v);
        }
    }
    p = p
        .u_opt("rotation_rate", d.target.rotation_rate.map(u64::from))
        .s_opt("vendor", d.vendor.clone())
        .s_opt("product", d.product.clone());
    if d.bus() == DiskBus::Usb {
        p = p.b("removable", d.target.removable.unwrap_or(false));
    } else {
        p = p.b_opt("removable", d.target.removable);
    }
    if let Some(c) = effective_cache(d) {
        let wc = matches!(
            c,
            CacheMode::None | CacheMode::Writeback | CacheMode::Unsafe
        );
        p = p.s("write-cache", if wc { "on" } else { "off" });
    }
    if let Some(g) = &d.geometry {
        p = p
            .u("cyls", u64::from(g.cylinders))
            .u("heads", u64::from(g.heads))
            .u("secs", u64::from(g.sectors))
            .s_opt("bios-chs-trans", g.trans.map(|t| t.as_str()));
    }
    if let Some(s) = &d.serial {
        p = p.s("serial", s.replace('\\', "\\\\").replace(' ', "\\ "));
    }
    let policy = |e: ErrorPolicy| e.as_str();
    let mut wpolicy = d.driver.error_policy.map(policy);
    let mut rpolicy = d.driver.rerror_policy.map(policy);
    if d.driver.error_policy == Some(ErrorPolicy::Enospace) {
        wpolicy = Some("enospc");
    } else if rpolicy.is_none() {
        rpolicy = wpolicy;
    }
    Ok(p.s_opt("werror", wpolicy).s_opt("rerror", rpolicy))
}

fn ide_alias(controller: u32) -> String {
    if controller == 0 {
        "ide".to_owned()
    } else {
        format!("ide{controller}")
    }
}
