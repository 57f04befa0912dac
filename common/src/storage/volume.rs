//! Storage volume definition (`<volume>`): data types, and the volume
//! options each pool type gives (format table and default).
//!
//! Parsing is in `vol_parse`, formatting in
//! `vol_format`.

use std::collections::BTreeSet;

use super::common::{Encryption, Perms};
use super::pool::{DiskFormat, PoolType};

crate::xml_enum! {
    /// `<volume type=...>`.
    pub enum VolType {
        /// A regular file.
        File = "file",
        /// A block device.
        Block = "block",
        /// A directory.
        Dir = "dir",
        /// A network volume.
        Network = "network",
        /// A network directory.
        NetDir = "netdir",
        /// A ploop directory.
        Ploop = "ploop",
    }
}

crate::xml_enum! {
    /// File formats (libvirt's `virStorageFileFormat`).
    pub enum FileFormat {
        /// No format (refused on input).
        None = "none",
        /// Raw.
        Raw = "raw",
        /// A directory.
        Dir = "dir",
        /// Bochs.
        Bochs = "bochs",
        /// cloop.
        Cloop = "cloop",
        /// Apple DMG.
        Dmg = "dmg",
        /// ISO image.
        Iso = "iso",
        /// VirtualPC.
        Vpc = "vpc",
        /// VirtualBox VDI.
        Vdi = "vdi",
        /// FAT directory.
        Fat = "fat",
        /// VHD.
        Vhd = "vhd",
        /// ploop.
        Ploop = "ploop",
        /// LUKS.
        Luks = "luks",
        /// cow.
        Cow = "cow",
        /// qcow.
        Qcow = "qcow",
        /// qcow2.
        Qcow2 = "qcow2",
        /// QED.
        Qed = "qed",
        /// VMDK.
        Vmdk = "vmdk",
    }
}

impl FileFormat {
    /// Whether an image of this format may name a backing file in its
    /// header, which QEMU opens unless told otherwise.
    pub fn has_backing(self) -> bool {
        matches!(
            self,
            FileFormat::Qcow | FileFormat::Qcow2 | FileFormat::Qed | FileFormat::Vmdk
        )
    }
}

crate::xml_enum! {
    /// Partition types of volumes in a `disk` pool.
    pub enum VolDiskFormat {
        /// None.
        None = "none",
        /// Linux.
        Linux = "linux",
        /// FAT16.
        Fat16 = "fat16",
        /// FAT32.
        Fat32 = "fat32",
        /// Linux swap.
        LinuxSwap = "linux-swap",
        /// Linux LVM.
        LinuxLvm = "linux-lvm",
        /// Linux RAID.
        LinuxRaid = "linux-raid",
        /// Extended partition.
        Extended = "extended",
    }
}

/// A volume format, typed by the table it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolFormat {
    /// File-based pools.
    File(FileFormat),
    /// `disk` pools.
    Disk(VolDiskFormat),
}

impl VolFormat {
    /// The XML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VolFormat::File(f) => f.as_str(),
            VolFormat::Disk(f) => f.as_str(),
        }
    }
}

impl std::fmt::Display for VolFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The format tables of libvirt's per-pool `volOptions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolFormatTable {
    /// [`FileFormat`].
    File,
    /// [`VolDiskFormat`].
    VolDisk,
    /// [`DiskFormat`] (output only: iSCSI, SCSI, mpath volumes).
    PoolDisk,
}

/// How volumes of a pool type read and write `<format>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolOptions {
    /// Table used to parse `<format type=>` (`None`: not parsed).
    pub parse: Option<VolFormatTable>,
    /// Table used to write `<format type=>` (`None`: not written).
    pub write: Option<VolFormatTable>,
    /// Default when parsing and no format is given.
    pub default: Option<VolFormat>,
}

impl VolOptions {
    /// Parses a format name with this pool's parse table.
    pub fn parse_format(&self, s: &str) -> Option<VolFormat> {
        match self.parse? {
            VolFormatTable::File => match s.parse::<FileFormat>().ok()? {
                FileFormat::None => None,
                f => Some(VolFormat::File(f)),
            },
            VolFormatTable::VolDisk => s.parse().ok().map(VolFormat::Disk),
            VolFormatTable::PoolDisk => None,
        }
    }

    /// The name written for `format` (`None` meaning libvirt's 0), or
    /// `None` when this pool writes no format.
    pub fn format_name(&self, format: Option<VolFormat>) -> Option<&'static str> {
        let table = self.write?;
        Some(match (table, format) {
            (_, Some(f)) if table != VolFormatTable::PoolDisk => f.as_str(),
            (VolFormatTable::File, _) => FileFormat::None.as_str(),
            (VolFormatTable::VolDisk, _) => VolDiskFormat::None.as_str(),
            (VolFormatTable::PoolDisk, _) => DiskFormat::Unknown.as_str(),
        })
    }
}

impl PoolType {
    /// The volume options of this pool type (libvirt's `volOptions`).
    pub fn vol_options(self) -> VolOptions {
        let file = VolOptions {
            parse: Some(VolFormatTable::File),
            write: Some(VolFormatTable::File),
            default: Some(VolFormat::File(FileFormat::Raw)),
        };
        match self {
            PoolType::Dir
            | PoolType::Fs
            | PoolType::NetFs
            | PoolType::Rbd
            | PoolType::Gluster
            | PoolType::Vstorage => file,
            PoolType::Sheepdog => VolOptions {
                parse: None,
                ..file
            },
            PoolType::Iscsi | PoolType::IscsiDirect | PoolType::Scsi | PoolType::Mpath => {
                VolOptions {
                    parse: None,
                    write: Some(VolFormatTable::PoolDisk),
                    default: None,
                }
            }
            PoolType::Disk => VolOptions {
                parse: Some(VolFormatTable::VolDisk),
                write: Some(VolFormatTable::VolDisk),
                default: Some(VolFormat::Disk(VolDiskFormat::None)),
            },
            PoolType::Logical | PoolType::Zfs => VolOptions::default(),
        }
    }

    /// The volume type the pool's backend gives its volumes (dir, fs and
    /// netfs: file; logical, disk, iscsi, scsi, mpath, zfs: block; RBD,
    /// Sheepdog, Gluster, iscsi-direct: network; vstorage: file).
    pub fn default_vol_type(self) -> VolType {
        match self {
            PoolType::Dir | PoolType::Fs | PoolType::NetFs | PoolType::Vstorage => VolType::File,
            PoolType::Logical
            | PoolType::Disk
            | PoolType::Iscsi
            | PoolType::Scsi
            | PoolType::Mpath
            | PoolType::Zfs => VolType::Block,
            PoolType::Rbd | PoolType::Sheepdog | PoolType::Gluster | PoolType::IscsiDirect => {
                VolType::Network
            }
        }
    }
}

crate::xml_enum! {
    /// Features of a qcow2 image (`<features>` children).
    pub enum FileFeature {
        /// `<lazy_refcounts/>`.
        LazyRefcounts = "lazy_refcounts",
        /// `<extended_l2/>`.
        ExtendedL2 = "extended_l2",
    }
}

/// A timestamp (seconds and nanoseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub sec: u64,
    /// Nanoseconds (0..1e9).
    pub nsec: u32,
}

/// `<timestamps>` (live data; never parsed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// Access time.
    pub atime: Option<Timestamp>,
    /// Birth time.
    pub btime: Option<Timestamp>,
    /// Change time.
    pub ctime: Option<Timestamp>,
    /// Modification time.
    pub mtime: Option<Timestamp>,
}

/// `<target>` of a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolTarget {
    /// `<path>`.
    pub path: Option<String>,
    /// `<format type=>` (`None`: libvirt's 0 for pools without a parse
    /// table).
    pub format: Option<VolFormat>,
    /// `<permissions>`.
    pub perms: Perms,
    /// `<timestamps>`.
    pub timestamps: Option<Timestamps>,
    /// `<encryption>`.
    pub encryption: Option<Encryption>,
    /// `<compat>` (qcow2 version, e.g. `1.1`).
    pub compat: Option<String>,
    /// `<nocow/>` (creation hint; not written back, as libvirt).
    pub nocow: bool,
    /// `<clusterSize>` in bytes (0: not set).
    pub cluster_size: u64,
    /// `<features>` (`Some(empty)` writes `<features/>`).
    pub features: Option<BTreeSet<FileFeature>>,
}

/// `<backingStore>` of a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolBackingStore {
    /// `<path>`.
    pub path: String,
    /// `<format type=>`.
    pub format: Option<VolFormat>,
    /// `<permissions>`.
    pub perms: Perms,
}

/// One extent of a volume source (live data; never parsed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolExtent {
    /// The device holding the extent.
    pub path: String,
    /// First byte.
    pub start: u64,
    /// End byte.
    pub end: u64,
}

/// A storage volume definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolDef {
    /// Name.
    pub name: String,
    /// Key (set by the pool refresh; parsed for tests).
    pub key: Option<String>,
    /// `type=` attribute (`None`: not given; written as `file`).
    pub vol_type: Option<VolType>,
    /// `<source>` extents.
    pub extents: Vec<VolExtent>,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Allocation in bytes.
    pub allocation: u64,
    /// Whether `<allocation>` was given (else it equals capacity).
    pub has_allocation: bool,
    /// Physical size in bytes (live data; written when non-zero).
    pub physical: u64,
    /// `<target>`.
    pub target: VolTarget,
    /// `<backingStore>`.
    pub backing_store: Option<VolBackingStore>,
}

/// Flags for parsing a volume (libvirt's `VIR_VOL_XML_PARSE_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolParseFlags {
    /// Refuse elements, attributes and values outside the schema.
    pub validate: bool,
    /// `<capacity>` is not required (cloning from an input volume).
    pub no_capacity: bool,
}
