//! `<disk>`: driver, source (see [`storage`]), backing
//! chain, target, I/O tuning, geometry and identification.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, attr_or_default, missing, on_off, yes_no};
use super::address::{Address, DriveAddress};
use super::info::{DeviceInfo, InfoOpts};
use super::storage::{self, ImageFormat, StorageSource, StorageType};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<disk device=>`.
    pub enum DiskDevice { Disk = "disk", Cdrom = "cdrom", Floppy = "floppy", Lun = "lun" }
}

xml_enum! {
    /// `<target bus=>`.
    pub enum DiskBus {
        Ide = "ide", Fdc = "fdc", Scsi = "scsi", Virtio = "virtio", Xen = "xen", Usb = "usb",
        Uml = "uml", Sata = "sata", Sd = "sd",
    }
}

xml_enum! {
    /// `<disk model=>`.
    pub enum DiskModel {
        Virtio = "virtio", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional", Usb = "usb-storage", UsbBot = "usb-bot", UsbUas = "usb-uas",
    }
}

xml_enum! {
    /// `<driver cache=>`.
    pub enum CacheMode {
        None = "none", Writethrough = "writethrough", Writeback = "writeback",
        Directsync = "directsync", Unsafe = "unsafe",
    }
}

xml_enum! {
    /// `<driver error_policy=>` / `rerror_policy=`.
    pub enum ErrorPolicy { Stop = "stop", Report = "report", Ignore = "ignore", Enospace = "enospace" }
}

xml_enum! {
    /// `<driver io=>`.
    pub enum IoMode { Native = "native", Threads = "threads", IoUring = "io_uring" }
}

xml_enum! {
    /// `<driver discard=>`.
    pub enum Discard { Unmap = "unmap", Ignore = "ignore" }
}

xml_enum! {
    /// `<driver detect_zeroes=>`.
    pub enum DetectZeroes { Off = "off", On = "on", Unmap = "unmap" }
}

xml_enum! {
    /// `<disk snapshot=>`.
    pub enum SnapshotMode { No = "no", Internal = "internal", External = "external", Manual = "manual" }
}

xml_enum! {
    /// `<disk sgio=>`.
    pub enum Sgio { Filtered = "filtered", Unfiltered = "unfiltered" }
}

xml_enum! {
    /// `<target tray=>`.
    pub enum Tray { Closed = "closed", Open = "open" }
}

xml_enum! {
    /// `<geometry trans=>`.
    pub enum GeometryTrans { None = "none", Auto = "auto", Lba = "lba" }
}

/// `<driver>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskDriver {
    /// `name=` (`qemu`, ...).
    pub name: Option<String>,
    /// `cache=`.
    pub cache: Option<CacheMode>,
    /// `error_policy=`.
    pub error_policy: Option<ErrorPolicy>,
    /// `rerror_policy=`.
    pub rerror_policy: Option<ErrorPolicy>,
    /// `io=`.
    pub io: Option<IoMode>,
    /// `ioeventfd=`.
    pub ioeventfd: Option<bool>,
    /// `event_idx=`.
    pub event_idx: Option<bool>,
    /// `copy_on_read=`.
    pub copy_on_read: Option<bool>,
    /// `discard=`.
    pub discard: Option<Discard>,
    /// `iothread=`.
    pub iothread: Option<u32>,
    /// `detect_zeroes=`.
    pub detect_zeroes: Option<DetectZeroes>,
    /// `discard_no_unref=`.
    pub discard_no_unref: Option<bool>,
    /// `queues=`.
    pub queues: Option<u32>,
    /// `queue_size=`.
    pub queue_size: Option<u32>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// `<iothreads>` mapping, kept as written.
    pub iothreads: Option<Element>,
}

/// `<target>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskTarget {
    /// `dev=` (`vda`, `hdc`...).
    pub dev: String,
    /// `bus=` (defaulted from the name when missing).
    pub bus: Option<DiskBus>,
    /// `tray=`.
    pub tray: Option<Tray>,
    /// `removable=`.
    pub removable: Option<bool>,
    /// `rotation_rate=`.
    pub rotation_rate: Option<u32>,
}

/// `<iotune>`: every value 0 is unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoTune {
    /// The numeric limits in libvirt's order (see [`IOTUNE_FIELDS`]).
    pub values: [u64; 19],
    /// `<group_name>`.
    pub group_name: Option<String>,
}

/// `<iotune>` children in format order; `group_name` sits after index 12.
pub const IOTUNE_FIELDS: [&str; 19] = [
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
    "total_bytes_sec_max",
    "read_bytes_sec_max",
    "write_bytes_sec_max",
    "total_iops_sec_max",
    "read_iops_sec_max",
    "write_iops_sec_max",
    "size_iops_sec",
    "total_bytes_sec_max_length",
    "read_bytes_sec_max_length",
    "write_bytes_sec_max_length",
    "total_iops_sec_max_length",
    "read_iops_sec_max_length",
    "write_iops_sec_max_length",
];

/// `<geometry>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Geometry {
    /// `cyls=`.
    pub cylinders: u32,
    /// `heads=`.
    pub heads: u32,
    /// `secs=`.
    pub sectors: u32,
    /// `trans=`.
    pub trans: Option<GeometryTrans>,
}

/// `<blockio>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockIo {
    /// `logical_block_size=`.
    pub logical: Option<u32>,
    /// `physical_block_size=`.
    pub physical: Option<u32>,
    /// `discard_granularity=`.
    pub discard_granularity: Option<u32>,
}

/// A disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// `device=`.
    pub device: DiskDevice,
    /// `model=`.
    pub model: Option<DiskModel>,
    /// `rawio=`.
    pub rawio: Option<bool>,
    /// `sgio=`.
    pub sgio: Option<Sgio>,
    /// `snapshot=`.
    pub snapshot: Option<SnapshotMode>,
    /// `<driver>` (the image format is `src.format`).
    pub driver: DiskDriver,
    /// The medium (with its backing chain).
    pub src: StorageSource,
    /// `<auth>` was written on `<disk>` rather than on `<source>`.
    pub auth_on_disk: bool,
    /// `<encryption>` was written on `<disk>`.
    pub encryption_on_disk: bool,
    /// `<backenddomain name=>`.
    pub backend_domain: Option<String>,
    /// `<geometry>`.
    pub geometry: Option<Geometry>,
    /// `<blockio>`.
    pub blockio: Option<BlockIo>,
    /// `<mirror>` of a running block job (live only, kept as written).
    pub mirror: Option<Element>,
    /// `<target>`.
    pub target: DiskTarget,
    /// `<iotune>`.
    pub iotune: Option<IoTune>,
    /// `<readonly/>`.
    pub readonly: bool,
    /// `<shareable/>`.
    pub shareable: bool,
    /// `<transient shareBacking=>`: `Some(None)` is a bare `<transient/>`.
    pub transient: Option<Option<bool>>,
    /// `<serial>`.
    pub serial: Option<String>,
    /// `<wwn>`.
    pub wwn: Option<String>,
    /// `<vendor>`.
    pub vendor: Option<String>,
    /// `<product>`.
    pub product: Option<String>,
    /// Address, alias, boot order.
    pub info: DeviceInfo,
}

const DISK_CHILDREN: &[&str] = &[
    "driver",
    "source",
    "backingStore",
    "mirror",
    "auth",
    "target",
    "boot",
    "backenddomain",
    "readonly",
    "shareable",
    "transient",
    "serial",
    "encryption",
    "iotune",
    "alias",
    "acpi",
    "address",
    "geometry",
    "blockio",
    "wwn",
    "vendor",
    "product",
];

/// With the validate flag: everything under a `<disk>` the model reads
/// (`<mirror>` and `<driver><iothreads>` are kept as they are).
fn check_disk(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    ctx.check_child(
        n,
        "driver",
        &[
            "name",
            "type",
            "cache",
            "error_policy",
            "rerror_policy",
            "io",
            "ioeventfd",
            "event_idx",
            "copy_on_read",
            "discard",
            "iothread",
            "detect_zeroes",
            "discard_no_unref",
            "queues",
            "queue_size",
            "iommu",
            "ats",
            "packed",
            "page_per_vq",
        ],
        &["metadata_cache", "iothreads"],
    )?;
    if let Some(d) = n.child("driver") {
        storage::check_metadata_cache(d.node(), ctx)?;
    }
    if let Some(s) = n.child("source") {
        storage::check_source(s.node(), n.attr("type"), ctx)?;
    }
    storage::check_backing(n, ctx)?;
    for a in n.children("auth") {
        storage::check_auth(a.node(), ctx)?;
    }
    for e in n.children("encryption") {
        storage::check_encryption(e.node(), ctx)?;
    }
    ctx.check_child(
        n,
        "target",
        &["dev", "bus", "tray", "removable", "rotation_rate"],
        &[],
    )?;
    ctx.check_child(n, "backenddomain", &["name"], &[])?;
    ctx.check_child(n, "geometry", &["cyls", "heads", "secs", "trans"], &[])?;
    ctx.check_child(
        n,
        "blockio",
        &[
            "logical_block_size",
            "physical_block_size",
            "discard_granularity",
        ],
        &[],
    )?;
    let mut iotune: Vec<&str> = IOTUNE_FIELDS.to_vec();
    iotune.push("group_name");
    ctx.check_child(n, "iotune", &[], &iotune)?;
    if let Some(i) = n.child("iotune") {
        ctx.check_leaves(i.node(), &IOTUNE_FIELDS)?;
        ctx.check_leaves(i.node(), &["group_name"])?;
    }
    ctx.check_child(n, "transient", &["shareBacking"], &[])?;
    ctx.check_leaves(
        n,
        &[
            "readonly",
            "shareable",
            "serial",
            "wwn",
            "vendor",
            "product",
        ],
    )
}

fn parse_driver(d: Node<'_>, disk: &mut Disk) -> Result<(), XmlError> {
    let dr = &mut disk.driver;
    dr.name = d.attr("name").map(str::to_owned);
    disk.src.format = storage::parse_format(d, "type")?;
    dr.cache = attr_or_default(d, "cache")?;
    dr.error_policy = attr_or_default(d, "error_policy")?;
    dr.rerror_policy = attr_or_default(d, "rerror_policy")?;
    if dr.rerror_policy == Some(ErrorPolicy::Enospace) {
        return Err(XmlError::bad_value(
            d.attr_path("rerror_policy"),
            "enospace",
            "unknown disk read error policy",
        ));
    }
    dr.io = attr_or_default(d, "io")?;
    dr.ioeventfd = d.on_off_attr("ioeventfd")?;
    dr.event_idx = d.on_off_attr("event_idx")?;
    dr.copy_on_read = d.on_off_attr("copy_on_read")?;
    dr.discard = attr_or_default(d, "discard")?;
    dr.iothread = d.uint_attr("iothread")?;
    dr.detect_zeroes = attr_or_default(d, "detect_zeroes")?;
    dr.discard_no_unref = d.on_off_attr("discard_no_unref")?;
    dr.queues = d.uint_attr("queues")?;
    dr.queue_size = d.uint_attr("queue_size")?;
    dr.virtio = VirtioOptions::parse(d)?;
    disk.src.metadata_cache_max = storage::metadata_cache(d)?;
    dr.iothreads = d.child("iothreads").map(|c| c.node().el.clone());
    Ok(())
}

fn parse_iotune(n: Node<'_>) -> Result<IoTune, XmlError> {
    let mut t = IoTune::default();
    for (i, name) in IOTUNE_FIELDS.iter().enumerate() {
        t.values[i] = super::super::util::child_uint(n, name)?.unwrap_or(0);
    }
    t.group_name = n.child("group_name").map(|g| g.node().text());
    let v = &t.values;
    let pairs = [
        (0, 1, 2, "bytes_sec"),
        (3, 4, 5, "iops_sec"),
        (6, 7, 8, "bytes_sec_max"),
        (9, 10, 11, "iops_sec_max"),
        (13, 14, 15, "bytes_sec_max_length"),
        (16, 17, 18, "iops_sec_max_length"),
    ];
    for (tot, r, w, what) in pairs {
        if v[tot] != 0 && (v[r] != 0 || v[w] != 0) {
            return Err(XmlError::invalid(
                n.path(),
                format!("total and read/write {what} cannot be set at the same time"),
            ));
        }
    }
    Ok(t)
}

/// Default bus from the target name, as libvirt's parser does.
fn default_bus(dev: &str, device: DiskDevice) -> DiskBus {
    if device == DiskDevice::Floppy {
        DiskBus::Fdc
    } else if dev.starts_with("hd") {
        DiskBus::Ide
    } else if dev.starts_with("sd") {
        DiskBus::Scsi
    } else if dev.starts_with("vd") {
        DiskBus::Virtio
    } else if dev.starts_with("xvd") {
        DiskBus::Xen
    } else if dev.starts_with("ubd") {
        DiskBus::Uml
    } else {
        DiskBus::Ide
    }
}

fn text(n: Node<'_>, name: &str) -> Option<String> {
    n.child(name).map(|c| c.node().text())
}

impl Disk {
    /// Parses a `<disk>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Disk, XmlError> {
        ctx.check(
            n,
            &["type", "device", "model", "rawio", "sgio", "snapshot"],
            DISK_CHILDREN,
        )?;
        check_disk(n, ctx)?;
        let kind: StorageType = match n.attr("type") {
            None => StorageType::File,
            Some(v) => v
                .parse()
                .ok()
                .filter(|k| *k != StorageType::None)
                .ok_or_else(|| XmlError::bad_value(n.attr_path("type"), v, "unknown disk type"))?,
        };
        let mut device: DiskDevice = n.parse_attr("device")?.unwrap_or(DiskDevice::Disk);
        let mut src = match n.child("source") {
            Some(s) => {
                let s = s.node();
                let mut src = storage::parse_source(s, kind)?;
                storage::parse_source_attrs(s, &mut src, ctx.inactive())?;
                src
            }
            None => StorageSource {
                kind,
                ..StorageSource::default()
            },
        };
        let mut auth_on_disk = false;
        if let Some(a) = n.child("auth") {
            if src.auth.is_some() {
                return Err(XmlError::unsupported(
                    a.node().path(),
                    "an <auth> definition already found for disk source",
                ));
            }
            src.auth = Some(storage::parse_auth(a.node())?);
            auth_on_disk = true;
        }
        let mut encryption_on_disk = false;
        if let Some(e) = n.child("encryption") {
            if src.encryption.is_some() {
                return Err(XmlError::unsupported(
                    e.node().path(),
                    "an <encryption> definition already found for disk source",
                ));
            }
            src.encryption = Some(storage::parse_encryption(e.node())?);
            encryption_on_disk = true;
        }
        storage::parse_backing(n, &mut src, ctx.inactive(), 0)?;

        let t = n
            .child("target")
            .ok_or_else(|| missing(n.child_path("target", None)))?;
        let t = t.node();
        let mut dev = t
            .attr("dev")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| missing(t.attr_path("dev")))?
            .to_owned();
        if let Some(rest) = dev.strip_prefix("ioemu:") {
            dev = rest.to_owned();
        }
        if let Some(rest) = dev.strip_suffix(":cdrom") {
            dev = rest.to_owned();
            device = DiskDevice::Cdrom;
        }
        let bus: DiskBus = match t.parse_attr("bus")? {
            Some(b) => b,
            None => default_bus(&dev, device),
        };
        let target = DiskTarget {
            dev,
            bus: Some(bus),
            tray: t.parse_attr("tray")?,
            removable: if bus == DiskBus::Usb {
                t.on_off_attr("removable")?
            } else {
                None
            },
            rotation_rate: t.uint_attr("rotation_rate")?,
        };
        let mut disk = Disk {
            device,
            model: n.parse_attr("model")?,
            rawio: n.yes_no_attr("rawio")?,
            sgio: n.parse_attr("sgio")?,
            snapshot: n.parse_attr("snapshot")?,
            driver: DiskDriver::default(),
            src,
            auth_on_disk,
            encryption_on_disk,
            backend_domain: n
                .child("backenddomain")
                .and_then(|b| b.node().attr("name").map(str::to_owned)),
            geometry: None,
            blockio: None,
            mirror: if ctx.inactive() {
                None
            } else {
                n.child("mirror").map(|m| m.node().el.clone())
            },
            target,
            iotune: None,
            readonly: n.child("readonly").is_some(),
            shareable: n.child("shareable").is_some(),
            transient: match n.child("transient") {
                None => None,
                Some(t) => Some(t.node().yes_no_attr("shareBacking")?),
            },
            serial: text(n, "serial"),
            wwn: text(n, "wwn"),
            vendor: text(n, "vendor"),
            product: text(n, "product"),
            info: DeviceInfo::parse(n, ctx, InfoOpts::BOOT)?,
        };
        if let Some(d) = n.child("driver") {
            parse_driver(d.node(), &mut disk)?;
        }
        if let Some(g) = n.child("geometry") {
            let g = g.node();
            let req = |a: &str| -> Result<u32, XmlError> {
                g.uint_attr(a)?.ok_or_else(|| missing(g.attr_path(a)))
            };
            disk.geometry = Some(Geometry {
                cylinders: req("cyls")?,
                heads: req("heads")?,
                sectors: req("secs")?,
                trans: g.parse_attr("trans")?,
            });
        }
        if let Some(b) = n.child("blockio") {
            let b = b.node();
            disk.blockio = Some(BlockIo {
                logical: b.uint_attr("logical_block_size")?,
                physical: b.uint_attr("physical_block_size")?,
                discard_granularity: b.uint_attr("discard_granularity")?,
            });
        }
        if let Some(i) = n.child("iotune") {
            disk.iotune = Some(parse_iotune(i.node())?);
        }
        if let Some(w) = &disk.wwn
            && !valid_wwn(w)
        {
            return Err(XmlError::bad_value(
                n.child_path("wwn", None),
                w,
                "Malformed wwn:",
            ));
        }
        Ok(disk)
    }

    fn format_driver(&self) -> Option<Element> {
        let d = &self.driver;
        let mut e = Element::new("driver")
            .with_opt_attr("name", d.name.as_deref())
            .with_opt_attr("type", self.src.format)
            .with_opt_attr("cache", d.cache)
            .with_opt_attr("error_policy", d.error_policy)
            .with_opt_attr("rerror_policy", d.rerror_policy)
            .with_opt_attr("io", d.io)
            .with_opt_attr("ioeventfd", d.ioeventfd.map(on_off))
            .with_opt_attr("event_idx", d.event_idx.map(on_off))
            .with_opt_attr("copy_on_read", d.copy_on_read.map(on_off))
            .with_opt_attr("discard", d.discard)
            .with_opt_attr("iothread", d.iothread)
            .with_opt_attr("detect_zeroes", d.detect_zeroes)
            .with_opt_attr("discard_no_unref", d.discard_no_unref.map(on_off))
            .with_opt_attr("queues", d.queues)
            .with_opt_attr("queue_size", d.queue_size);
        d.virtio.format(&mut e);
        if let Some(m) = self.src.metadata_cache_max {
            e.push(storage::metadata_cache_el(m));
        }
        e.push_opt(d.iothreads.clone());
        (!e.is_empty()).then_some(e)
    }

    /// Formats the `<disk>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("disk")
            .with_attr("type", self.src.kind)
            .with_attr("device", self.device)
            .with_opt_attr("model", self.model)
            .with_opt_attr("rawio", self.rawio.map(yes_no))
            .with_opt_attr("sgio", self.sgio)
            .with_opt_attr(
                "snapshot",
                self.snapshot
                    .filter(|s| !(*s == SnapshotMode::No && self.readonly)),
            );
        e.push_opt(self.format_driver());
        if self.auth_on_disk
            && let Some(a) = &self.src.auth
        {
            e.push(storage::format_auth(a));
        }
        e.push_opt(storage::format_source_ext(
            &self.src,
            "source",
            flags,
            true,
            self.auth_on_disk,
            self.encryption_on_disk,
        ));
        e.push_opt(storage::format_backing(&self.src, flags));
        if let Some(b) = &self.backend_domain {
            e.push(Element::new("backenddomain").with_attr("name", b));
        }
        if let Some(g) = &self.geometry {
            e.push(
                Element::new("geometry")
                    .with_attr("cyls", g.cylinders)
                    .with_attr("heads", g.heads)
                    .with_attr("secs", g.sectors)
                    .with_opt_attr("trans", g.trans),
            );
        }
        if let Some(b) = &self.blockio {
            let be = Element::new("blockio")
                .with_opt_attr("logical_block_size", b.logical)
                .with_opt_attr("physical_block_size", b.physical)
                .with_opt_attr("discard_granularity", b.discard_granularity);
            if !be.is_empty() {
                e.push(be);
            }
        }
        if !flags.inactive {
            e.push_opt(self.mirror.clone());
        }
        let t = &self.target;
        let mut te = Element::new("target")
            .with_attr("dev", &t.dev)
            .with_opt_attr("bus", t.bus);
        if matches!(self.device, DiskDevice::Cdrom | DiskDevice::Floppy)
            && t.tray == Some(Tray::Open)
        {
            te.set_attr("tray", "open");
        }
        te.set_opt_attr("removable", t.removable.map(on_off));
        te.set_opt_attr("rotation_rate", t.rotation_rate);
        e.push(te);
        if let Some(io) = &self.iotune {
            let mut ie = Element::new("iotune");
            for (i, name) in IOTUNE_FIELDS.iter().enumerate() {
                if io.values[i] != 0 {
                    ie.push(Element::text_element(name, io.values[i].to_string()));
                }
                if i == 12
                    && let Some(g) = &io.group_name
                {
                    ie.push(Element::text_element("group_name", g));
                }
            }
            if !ie.children.is_empty() {
                e.push(ie);
            }
        }
        if self.readonly {
            e.push(Element::new("readonly"));
        }
        if self.shareable {
            e.push(Element::new("shareable"));
        }
        if let Some(sb) = self.transient {
            e.push(Element::new("transient").with_opt_attr("shareBacking", sb.map(yes_no)));
        }
        for (name, v) in [
            ("serial", &self.serial),
            ("wwn", &self.wwn),
            ("vendor", &self.vendor),
            ("product", &self.product),
        ] {
            if let Some(v) = v {
                e.push(Element::text_element(name, v));
            }
        }
        if self.encryption_on_disk
            && let Some(enc) = &self.src.encryption
        {
            e.push(storage::format_encryption(enc));
        }
        self.info.format(flags, InfoOpts::BOOT, &mut e);
        e
    }

    /// The bus (after parsing it is always set).
    pub fn bus(&self) -> DiskBus {
        self.target
            .bus
            .unwrap_or_else(|| default_bus(&self.target.dev, self.device))
    }

    /// The drive address, if any.
    pub fn drive_address(&self) -> Option<&DriveAddress> {
        match &self.info.address {
            Some(Address::Drive(d)) => Some(d),
            _ => None,
        }
    }

    /// Whether the image format is known to libvirt's generic code as a
    /// "cow"-style format.
    pub fn format_is(&self, f: ImageFormat) -> bool {
        self.src.format == Some(f)
    }
}

fn valid_wwn(w: &str) -> bool {
    let h = w.strip_prefix("0x").unwrap_or(w);
    h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// libvirt's `virDiskNameToIndex`: `sda` → 0, `hdc` → 2, `vdaa` → 26.
pub fn disk_name_to_index(name: &str) -> Option<u32> {
    let rest = ["fd", "hd", "vd", "sd", "xvd", "ubd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let letters: &str = &rest[..rest.bytes().take_while(u8::is_ascii_lowercase).count()];
    let digits = &rest[letters.len()..];
    if letters.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut idx: u64 = 0;
    for (i, c) in letters.bytes().enumerate() {
        idx = (idx + u64::from(i > 0)) * 26;
        idx += u64::from(c - b'a');
        if idx > u64::from(u32::MAX) {
            return None;
        }
    }
    u32::try_from(idx).ok()
}

/// The drive address libvirt assigns from the target name
/// (`virDomainDiskDefAssignAddress`), for buses that use one.
pub fn assign_drive_address(disk: &Disk) -> Result<Option<DriveAddress>, XmlError> {
    let bus = disk.bus();
    if !matches!(
        bus,
        DiskBus::Ide | DiskBus::Fdc | DiskBus::Scsi | DiskBus::Sata
    ) {
        return Ok(None);
    }
    let idx = disk_name_to_index(&disk.target.dev).ok_or_else(|| {
        XmlError::invalid(
            "",
            format!(
                "Unknown disk name '{}' and no address specified",
                disk.target.dev
            ),
        )
    })?;
    let (per, buses, units) = match bus {
        DiskBus::Ide => (4, 2, 2),
        DiskBus::Fdc => (2, 1, 2),
        DiskBus::Sata => (6, 1, 6),
        _ => (7, 1, 7),
    };
    let _ = buses;
    let a = match bus {
        DiskBus::Ide => DriveAddress {
            controller: idx / per,
            bus: (idx % per) / units,
            target: 0,
            unit: idx % units,
        },
        _ => DriveAddress {
            controller: idx / per,
            bus: 0,
            target: 0,
            unit: idx % per,
        },
    };
    Ok(Some(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names() {
        assert_eq!(disk_name_to_index("sda"), Some(0));
        assert_eq!(disk_name_to_index("hdc"), Some(2));
        assert_eq!(disk_name_to_index("vdz"), Some(25));
        assert_eq!(disk_name_to_index("vdaa"), Some(26));
        assert_eq!(disk_name_to_index("sda1"), Some(0));
        assert_eq!(disk_name_to_index("sd"), None);
        assert_eq!(disk_name_to_index("foo"), None);
        assert_eq!(disk_name_to_index("sdA"), None);
    }
}
