//! `<devices>`: the [`Device`] enum, one module per device kind, and the
//! shared `<address>`/`<alias>`/`<boot>` information.
//!
//! Devices are kept in one list, sorted in the order libvirt formats them
//! (all disks, then controllers, ...); within a kind the document order
//! is kept, except controllers (sorted by type then index, as libvirt
//! inserts them) and a `primary='yes'` video (moved first).
//!
//! To add a device kind: write `device/<kind>.rs` with the type and its
//! `parse`/`format`, add a [`Device`] variant, its element name and rank
//! in [`Device::element_name`]/[`RANKS`], and dispatch it in
//! `parse_devices` (then remove it from [`UNMODELED`]).

pub mod address;
pub mod chardev;
pub mod chr;
pub mod controller;
pub mod crypto;
pub mod disk;
pub mod filesystem;
pub mod graphics;
pub mod hostdev;
pub mod hub;
pub mod info;
pub mod input;
pub mod interface;
mod interface_xml;
pub mod iommu;
pub mod lease;
pub mod memballoon;
pub mod memorydev;
pub mod panic;
pub mod pstore;
pub mod redirdev;
pub mod rng;
pub mod shmem;
pub mod smartcard;
pub mod sound;
pub mod storage;
pub mod storage_sec;
pub mod tpm;
pub mod video;
pub mod virtio;
pub mod vsock;
pub mod watchdog;

use crate::xml::{Element, Node, XmlError, XmlErrorKind};

use super::util::{Ctx, Fmt};

pub use address::{Address, DriveAddress, PciAddress};
pub use chr::{Chardev, ChrKind, ChrTarget};
pub use controller::{Controller, ControllerType};
pub use crypto::Crypto;
pub use disk::Disk;
pub use filesystem::Filesystem;
pub use graphics::Graphics;
pub use hostdev::Hostdev;
pub use hub::Hub;
pub use info::DeviceInfo;
pub use input::Input;
pub use interface::Interface;
pub use iommu::Iommu;
pub use lease::Lease;
pub use memballoon::Memballoon;
pub use memorydev::MemoryDevice;
pub use panic::Panic;
pub use pstore::Pstore;
pub use redirdev::{RedirFilter, Redirdev};
pub use rng::Rng;
pub use shmem::Shmem;
pub use smartcard::Smartcard;
pub use sound::{Audio, Sound};
pub use tpm::Tpm;
pub use video::Video;
pub use vsock::Vsock;
pub use watchdog::Watchdog;

/// A device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// `<disk>`.
    Disk(Box<Disk>),
    /// `<controller>`.
    Controller(Box<Controller>),
    /// `<lease>`.
    Lease(Box<Lease>),
    /// `<filesystem>`.
    Filesystem(Box<Filesystem>),
    /// `<interface>`.
    Interface(Box<Interface>),
    /// `<input>`.
    Input(Box<Input>),
    /// `<sound>`.
    Sound(Box<Sound>),
    /// `<audio>`.
    Audio(Box<Audio>),
    /// `<graphics>`.
    Graphics(Box<Graphics>),
    /// `<video>`.
    Video(Box<Video>),
    /// `<hostdev>`.
    Hostdev(Box<Hostdev>),
    /// `<serial>`.
    Serial(Box<Chardev>),
    /// `<parallel>`.
    Parallel(Box<Chardev>),
    /// `<console>`.
    Console(Box<Chardev>),
    /// `<channel>`.
    Channel(Box<Chardev>),
    /// `<smartcard>`.
    Smartcard(Box<Smartcard>),
    /// `<redirdev>`.
    Redirdev(Box<Redirdev>),
    /// `<redirfilter>`.
    RedirFilter(Box<RedirFilter>),
    /// `<hub>`.
    Hub(Box<Hub>),
    /// `<watchdog>`.
    Watchdog(Box<Watchdog>),
    /// `<memballoon>`.
    Memballoon(Box<Memballoon>),
    /// `<rng>`.
    Rng(Box<Rng>),
    /// `<tpm>`.
    Tpm(Box<Tpm>),
    /// `<panic>`.
    Panic(Box<Panic>),
    /// `<shmem>`.
    Shmem(Box<Shmem>),
    /// `<memory>`.
    Memory(Box<MemoryDevice>),
    /// `<iommu>`.
    Iommu(Box<Iommu>),
    /// `<vsock>`.
    Vsock(Box<Vsock>),
    /// `<crypto>`.
    Crypto(Box<Crypto>),
    /// `<pstore>`.
    Pstore(Box<Pstore>),
    /// `<nvram>` (pSeries NVRAM; only an address).
    Nvram(Box<DeviceInfo>),
}

/// Element names in libvirt's format order (`virDomainDefFormatInternal`).
pub const RANKS: &[&str] = &[
    "disk",
    "controller",
    "lease",
    "filesystem",
    "interface",
    "smartcard",
    "serial",
    "parallel",
    "console",
    "channel",
    "input",
    "tpm",
    "graphics",
    "sound",
    "audio",
    "video",
    "hostdev",
    "redirdev",
    "redirfilter",
    "hub",
    "watchdog",
    "memballoon",
    "rng",
    "nvram",
    "panic",
    "shmem",
    "memory",
    "iommu",
    "vsock",
    "crypto",
    "pstore",
];

/// Device elements libvirt knows that are not modelled yet: dropped when
/// parsing (refused with the validate flag).
pub const UNMODELED: &[&str] = &[];

impl Device {
    /// The element name.
    pub fn element_name(&self) -> &'static str {
        match self {
            Device::Disk(_) => "disk",
            Device::Controller(_) => "controller",
            Device::Interface(_) => "interface",
            Device::Input(_) => "input",
            Device::Sound(_) => "sound",
            Device::Audio(_) => "audio",
            Device::Graphics(_) => "graphics",
            Device::Video(_) => "video",
            Device::Serial(_) => "serial",
            Device::Parallel(_) => "parallel",
            Device::Console(_) => "console",
            Device::Channel(_) => "channel",
            Device::Smartcard(_) => "smartcard",
            Device::Redirdev(_) => "redirdev",
            Device::RedirFilter(_) => "redirfilter",
            Device::Hub(_) => "hub",
            Device::Watchdog(_) => "watchdog",
            Device::Memballoon(_) => "memballoon",
            Device::Rng(_) => "rng",
            Device::Tpm(_) => "tpm",
            Device::Panic(_) => "panic",
            Device::Lease(_) => "lease",
            Device::Filesystem(_) => "filesystem",
            Device::Hostdev(_) => "hostdev",
            Device::Shmem(_) => "shmem",
            Device::Memory(_) => "memory",
            Device::Iommu(_) => "iommu",
            Device::Vsock(_) => "vsock",
            Device::Crypto(_) => "crypto",
            Device::Pstore(_) => "pstore",
            Device::Nvram(_) => "nvram",
        }
    }

    /// Position in libvirt's format order.
    pub fn rank(&self) -> usize {
        let name = self.element_name();
        RANKS.iter().position(|r| *r == name).unwrap_or(RANKS.len())
    }

    /// The common device information, if the kind has one.
    pub fn info(&self) -> Option<&DeviceInfo> {
        Some(match self {
            Device::Disk(d) => &d.info,
            Device::Controller(d) => &d.info,
            Device::Interface(d) => &d.info,
            Device::Input(d) => &d.info,
            Device::Sound(d) => &d.info,
            Device::Graphics(_) | Device::Audio(_) | Device::RedirFilter(_) | Device::Lease(_) => {
                return None;
            }
            Device::Video(d) => &d.info,
            Device::Serial(d) | Device::Parallel(d) | Device::Console(d) | Device::Channel(d) => {
                &d.info
            }
            Device::Smartcard(d) => &d.info,
            Device::Redirdev(d) => &d.info,
            Device::Hub(d) => &d.info,
            Device::Watchdog(d) => &d.info,
            Device::Memballoon(d) => &d.info,
            Device::Rng(d) => &d.info,
            Device::Tpm(d) => &d.info,
            Device::Panic(d) => &d.info,
            Device::Shmem(d) => &d.info,
            Device::Filesystem(d) => &d.info,
            Device::Hostdev(d) => &d.info,
            Device::Memory(d) => &d.info,
            Device::Iommu(d) => &d.info,
            Device::Vsock(d) => &d.info,
            Device::Crypto(d) => &d.info,
            Device::Pstore(d) => &d.info,
            Device::Nvram(i) => i,
        })
    }

    /// Mutable access to the common device information.
    pub fn info_mut(&mut self) -> Option<&mut DeviceInfo> {
        Some(match self {
            Device::Disk(d) => &mut d.info,
            Device::Controller(d) => &mut d.info,
            Device::Interface(d) => &mut d.info,
            Device::Input(d) => &mut d.info,
            Device::Sound(d) => &mut d.info,
            Device::Graphics(_) | Device::Audio(_) | Device::RedirFilter(_) | Device::Lease(_) => {
                return None;
            }
            Device::Video(d) => &mut d.info,
            Device::Serial(d) | Device::Parallel(d) | Device::Console(d) | Device::Channel(d) => {
                &mut d.info
            }
            Device::Smartcard(d) => &mut d.info,
            Device::Redirdev(d) => &mut d.info,
            Device::Hub(d) => &mut d.info,
            Device::Watchdog(d) => &mut d.info,
            Device::Memballoon(d) => &mut d.info,
            Device::Rng(d) => &mut d.info,
            Device::Tpm(d) => &mut d.info,
            Device::Panic(d) => &mut d.info,
            Device::Shmem(d) => &mut d.info,
            Device::Filesystem(d) => &mut d.info,
            Device::Hostdev(d) => &mut d.info,
            Device::Memory(d) => &mut d.info,
            Device::Iommu(d) => &mut d.info,
            Device::Vsock(d) => &mut d.info,
            Device::Crypto(d) => &mut d.info,
            Device::Pstore(d) => &mut d.info,
            Device::Nvram(i) => i,
        })
    }

    /// Formats the device (consoles aliasing a serial port are handled by
    /// the caller).
    pub(crate) fn format(&self, flags: &Fmt, running: bool) -> Element {
        match self {
            Device::Disk(d) => d.format(flags),
            Device::Controller(d) => d.format(flags),
            Device::Interface(d) => d.format(flags),
            Device::Input(d) => d.format(flags),
            Device::Sound(d) => d.format(flags),
            Device::Audio(d) => d.format(),
            Device::Graphics(d) => d.format(flags, running),
            Device::Video(d) => d.format(flags),
            Device::Serial(d) => d.format("serial", flags),
            Device::Parallel(d) => d.format("parallel", flags),
            Device::Console(d) => d.format("console", flags),
            Device::Channel(d) => d.format("channel", flags),
            Device::Smartcard(d) => d.format(flags),
            Device::Redirdev(d) => d.format(flags),
            Device::RedirFilter(d) => d.format(),
            Device::Hub(d) => d.format(flags),
            Device::Watchdog(d) => d.format(flags),
            Device::Memballoon(d) => d.format(flags),
            Device::Rng(d) => d.format(flags),
            Device::Tpm(d) => d.format(flags),
            Device::Panic(d) => d.format(flags),
            Device::Lease(d) => d.format(),
            Device::Filesystem(d) => d.format(flags),
            Device::Hostdev(d) => d.format(flags),
            Device::Shmem(d) => d.format(flags),
            Device::Memory(d) => d.format(flags),
            Device::Iommu(d) => d.format(flags),
            Device::Vsock(d) => d.format(flags),
            Device::Crypto(d) => d.format(flags),
            Device::Pstore(d) => d.format(flags),
            Device::Nvram(i) => {
                let mut e = Element::new("nvram");
                i.format(flags, info::InfoOpts::NONE, &mut e);
                e
            }
        }
    }
}

/// What device parsing needs to know about the domain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DevEnv<'a> {
    pub input: input::InputEnv<'a>,
    /// The domain has a live `id` (automatic ports are kept).
    pub running: bool,
}

/// Inserts a controller as libvirt's `virDomainControllerInsertPreAlloced`:
/// after the last controller of the same type with a lower index, or
/// before the first of that type with a higher one.
pub(crate) fn insert_controller(list: &mut Vec<Controller>, c: Controller) {
    let at = controller_slot(list, |x| Some(x), &c);
    list.insert(at, c);
}

/// Where [`insert_controller`] puts `c` in `list`; `ctl` gives an item's
/// controller (items without one are passed over).
pub(crate) fn controller_slot<T>(
    list: &[T],
    ctl: impl Fn(&T) -> Option<&Controller>,
    c: &Controller,
) -> usize {
    let mut at: Option<usize> = None;
    for i in (0..list.len()).rev() {
        let Some(cur) = ctl(&list[i]) else {
            continue;
        };
        if cur.kind != c.kind {
            continue;
        }
        if cur.index > c.index {
            at = Some(i);
        } else if c.info.master_startport.is_none()
            && cur.info.master_startport.is_some()
            && cur.index == c.index
        {
            // A master goes before its companions.
            at = Some(i);
        } else if at.is_none() {
            at = Some(i + 1);
        }
    }
    at.unwrap_or(list.len())
}

/// Inserts a disk as libvirt's `virDomainDiskInsertPreAlloced`: ordered
/// by target name index among disks on the same bus.
pub(crate) fn insert_disk(list: &mut Vec<Disk>, d: Disk) {
    let idx = |x: &Disk| disk::disk_name_to_index(&x.target.dev).map_or(-1, i64::from);
    let new_idx = idx(&d);
    let mut at: Option<usize> = None;
    for i in (0..list.len()).rev() {
        let cur = &list[i];
        if cur.bus() != d.bus() {
            continue;
        }
        if idx(cur) > new_idx {
            at = Some(i);
        } else if at.is_none() {
            at = Some(i + 1);
        }
    }
    match at {
        Some(i) => list.insert(i, d),
        None => list.push(d),
    }
}

/// Parses the children of `<devices>` (except `<emulator>`).
pub(crate) fn parse_devices(
    n: Node<'_>,
    ctx: &Ctx<'_>,
    env: &DevEnv<'_>,
) -> Result<Vec<Device>, XmlError> {
    let mut out: Vec<Device> = Vec::new();
    let mut controllers: Vec<Controller> = Vec::new();
    let mut disks: Vec<Disk> = Vec::new();
    let mut videos: Vec<Video> = Vec::new();
    for c in n.all_children() {
        let c = c.node();
        let name = c.el.name.as_str();
        let dev = match name {
            "emulator" => continue,
            "disk" => {
                insert_disk(&mut disks, Disk::parse(c, ctx)?);
                continue;
            }
            "controller" => {
                let (mut ctl, has_index) = Controller::parse(c, ctx)?;
                if !has_index {
                    ctl.index = controllers
                        .iter()
                        .filter(|x| x.kind == ctl.kind)
                        .map(|x| x.index.saturating_add(1))
                        .max()
                        .unwrap_or(0);
                }
                insert_controller(&mut controllers, ctl);
                continue;
            }
            "interface" => Device::Interface(Box::new(Interface::parse(c, ctx)?)),
            "input" => Device::Input(Box::new(Input::parse(c, ctx, &env.input)?)),
            "sound" => Device::Sound(Box::new(Sound::parse(c, ctx)?)),
            "audio" => Device::Audio(Box::new(Audio::parse(c)?)),
            "graphics" => Device::Graphics(Box::new(Graphics::parse(c, ctx, env.running)?)),
            "video" => {
                let v = Video::parse(c, ctx)?;
                if v.primary {
                    if videos.first().is_some_and(|f| f.primary) {
                        return Err(XmlError::invalid(
                            c.path(),
                            "Only one primary video device is supported",
                        ));
                    }
                    videos.insert(0, v);
                } else {
                    videos.push(v);
                }
                continue;
            }
            "serial" => Device::Serial(Box::new(Chardev::parse(c, ctx, ChrKind::Serial)?)),
            "parallel" => Device::Parallel(Box::new(Chardev::parse(c, ctx, ChrKind::Parallel)?)),
            "console" => Device::Console(Box::new(Chardev::parse(c, ctx, ChrKind::Console)?)),
            "channel" => Device::Channel(Box::new(Chardev::parse(c, ctx, ChrKind::Channel)?)),
            "smartcard" => Device::Smartcard(Box::new(Smartcard::parse(c, ctx)?)),
            "redirdev" => Device::Redirdev(Box::new(Redirdev::parse(c, ctx)?)),
            "redirfilter" => {
                if out.iter().any(|d| matches!(d, Device::RedirFilter(_))) {
                    return Err(XmlError::unsupported(
                        c.path(),
                        "only one set of redirection filter rule is supported",
                    ));
                }
                ctx.check(c, &[], &["usbdev"])?;
                ctx.check_child(
                    c,
                    "usbdev",
                    &["class", "vendor", "product", "version", "allow"],
                    &[],
                )?;
                Device::RedirFilter(Box::new(RedirFilter::parse(c)?))
            }
            "hub" => Device::Hub(Box::new(Hub::parse(c, ctx)?)),
            "watchdog" => Device::Watchdog(Box::new(Watchdog::parse(c, ctx)?)),
            "memballoon" => {
                if out.iter().any(|d| matches!(d, Device::Memballoon(_))) {
                    return Err(XmlError::unsupported(
                        c.path(),
                        "only a single memory balloon device is supported",
                    ));
                }
                Device::Memballoon(Box::new(Memballoon::parse(c, ctx)?))
            }
            "rng" => Device::Rng(Box::new(Rng::parse(c, ctx)?)),
            "tpm" => Device::Tpm(Box::new(Tpm::parse(c, ctx)?)),
            "panic" => Device::Panic(Box::new(Panic::parse(c, ctx)?)),
            "lease" => Device::Lease(Box::new(Lease::parse(c, ctx)?)),
            "filesystem" => Device::Filesystem(Box::new(Filesystem::parse(c, ctx)?)),
            "hostdev" => Device::Hostdev(Box::new(Hostdev::parse(c, ctx)?)),
            "shmem" => Device::Shmem(Box::new(Shmem::parse(c, ctx)?)),
            "memory" => Device::Memory(Box::new(MemoryDevice::parse(c, ctx)?)),
            "iommu" => {
                if out.iter().any(|d| matches!(d, Device::Iommu(_))) {
                    return Err(XmlError::unsupported(
                        c.path(),
                        "only a single IOMMU device is supported",
                    ));
                }
                Device::Iommu(Box::new(Iommu::parse(c, ctx)?))
            }
            "vsock" => {
                if out.iter().any(|d| matches!(d, Device::Vsock(_))) {
                    return Err(XmlError::unsupported(
                        c.path(),
                        "only a single vsock device is supported",
                    ));
                }
                Device::Vsock(Box::new(Vsock::parse(c, ctx)?))
            }
            "crypto" => Device::Crypto(Box::new(Crypto::parse(c, ctx)?)),
            "pstore" => {
                if out.iter().any(|d| matches!(d, Device::Pstore(_))) {
                    return Err(XmlError::unsupported(
                        c.path(),
                        "only a single pstore device is supported",
                    ));
                }
                Device::Pstore(Box::new(Pstore::parse(c, ctx)?))
            }
            "nvram" => {
                ctx.check(c, &[], &["alias", "address", "acpi"])?;
                Device::Nvram(Box::new(DeviceInfo::parse(c, ctx, info::InfoOpts::NONE)?))
            }
            other if UNMODELED.contains(&other) => {
                if ctx.flags.validate {
                    return Err(XmlError::unsupported(
                        c.path(),
                        format!("device <{other}> is not supported yet"),
                    ));
                }
                continue;
            }
            _ => {
                if ctx.flags.validate {
                    return Err(XmlError::new(c.path(), XmlErrorKind::Unknown));
                }
                continue;
            }
        };
        out.push(dev);
    }
    out.extend(disks.into_iter().map(|d| Device::Disk(Box::new(d))));
    out.extend(
        controllers
            .into_iter()
            .map(|c| Device::Controller(Box::new(c))),
    );
    out.extend(videos.into_iter().map(|v| Device::Video(Box::new(v))));
    sort_devices(&mut out);
    Ok(out)
}

/// Stable sort into libvirt's format order.
pub(crate) fn sort_devices(list: &mut [Device]) {
    list.sort_by_key(Device::rank);
}
