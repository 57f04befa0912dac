//! Storage pool definition (`<pool>`): data types and the per-type
//! options table (libvirt's `poolTypeInfo`).
//!
//! Parsing is in `pool_parse`, formatting in
//! `pool_format`.

use super::common::{AuthDef, Perms, Uuid};

crate::xml_enum! {
    /// `<pool type=...>`.
    pub enum PoolType {
        /// A directory.
        Dir = "dir",
        /// A local filesystem (mounted block device).
        Fs = "fs",
        /// A network filesystem.
        NetFs = "netfs",
        /// An LVM volume group.
        Logical = "logical",
        /// A partitioned disk.
        Disk = "disk",
        /// An iSCSI target (via the host initiator).
        Iscsi = "iscsi",
        /// An iSCSI target (via libiscsi).
        IscsiDirect = "iscsi-direct",
        /// A SCSI host adapter.
        Scsi = "scsi",
        /// Multipath devices.
        Mpath = "mpath",
        /// A Ceph RBD pool.
        Rbd = "rbd",
        /// A Sheepdog cluster.
        Sheepdog = "sheepdog",
        /// A Gluster volume.
        Gluster = "gluster",
        /// A ZFS pool.
        Zfs = "zfs",
        /// A Virtuozzo storage cluster.
        Vstorage = "vstorage",
    }
}

crate::xml_enum! {
    /// `<format type=...>` of an `fs` pool.
    pub enum FsFormat {
        /// Probe.
        Auto = "auto",
        /// ext2.
        Ext2 = "ext2",
        /// ext3.
        Ext3 = "ext3",
        /// ext4.
        Ext4 = "ext4",
        /// UFS.
        Ufs = "ufs",
        /// ISO 9660.
        Iso9660 = "iso9660",
        /// UDF.
        Udf = "udf",
        /// GFS.
        Gfs = "gfs",
        /// GFS2.
        Gfs2 = "gfs2",
        /// VFAT.
        Vfat = "vfat",
        /// HFS+.
        HfsPlus = "hfs+",
        /// XFS.
        Xfs = "xfs",
        /// OCFS2.
        Ocfs2 = "ocfs2",
        /// VMFS.
        Vmfs = "vmfs",
    }
}

crate::xml_enum! {
    /// `<format type=...>` of a `netfs` pool.
    pub enum NetFsFormat {
        /// Probe.
        Auto = "auto",
        /// NFS.
        Nfs = "nfs",
        /// GlusterFS (FUSE).
        GlusterFs = "glusterfs",
        /// CIFS/SMB.
        Cifs = "cifs",
    }
}

crate::xml_enum! {
    /// `<format type=...>` of a `disk` pool (partition table), also the
    /// volume format name of iSCSI/SCSI/mpath pools.
    pub enum DiskFormat {
        /// Unknown.
        Unknown = "unknown",
        /// DOS/MBR.
        Dos = "dos",
        /// DVH.
        Dvh = "dvh",
        /// GPT.
        Gpt = "gpt",
        /// Mac.
        Mac = "mac",
        /// BSD.
        Bsd = "bsd",
        /// PC98.
        Pc98 = "pc98",
        /// Sun.
        Sun = "sun",
        /// LVM2 physical volume.
        Lvm2 = "lvm2",
    }
}

crate::xml_enum! {
    /// `<format type=...>` of a `logical` pool.
    pub enum LogicalFormat {
        /// Unknown.
        Unknown = "unknown",
        /// LVM2.
        Lvm2 = "lvm2",
    }
}

/// A pool source format, typed by the pool type it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolFormat {
    /// `fs` pools.
    Fs(FsFormat),
    /// `netfs` pools.
    NetFs(NetFsFormat),
    /// `disk` pools.
    Disk(DiskFormat),
    /// `logical` pools.
    Logical(LogicalFormat),
}

impl PoolFormat {
    /// The XML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolFormat::Fs(f) => f.as_str(),
            PoolFormat::NetFs(f) => f.as_str(),
            PoolFormat::Disk(f) => f.as_str(),
            PoolFormat::Logical(f) => f.as_str(),
        }
    }

    /// libvirt's enum number (position in its table).
    pub fn index(self) -> usize {
        fn pos<T: PartialEq>(all: &[T], v: &T) -> usize {
            all.iter().position(|x| x == v).unwrap_or(0)
        }
        match self {
            PoolFormat::Fs(f) => pos(FsFormat::ALL, &f),
            PoolFormat::NetFs(f) => pos(NetFsFormat::ALL, &f),
            PoolFormat::Disk(f) => pos(DiskFormat::ALL, &f),
            PoolFormat::Logical(f) => pos(LogicalFormat::ALL, &f),
        }
    }
}

impl std::fmt::Display for PoolFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which format table a pool type uses for its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolFormatKind {
    /// [`FsFormat`].
    Fs,
    /// [`NetFsFormat`].
    NetFs,
    /// [`DiskFormat`].
    Disk,
    /// [`LogicalFormat`].
    Logical,
}

impl PoolFormatKind {
    /// Parses a format name of this table.
    pub fn parse(self, s: &str) -> Option<PoolFormat> {
        match self {
            PoolFormatKind::Fs => s.parse().ok().map(PoolFormat::Fs),
            PoolFormatKind::NetFs => s.parse().ok().map(PoolFormat::NetFs),
            PoolFormatKind::Disk => s.parse().ok().map(PoolFormat::Disk),
            PoolFormatKind::Logical => s.parse().ok().map(PoolFormat::Logical),
        }
    }

    /// The default format (libvirt's `defaultFormat`).
    pub fn default_format(self) -> PoolFormat {
        match self {
            PoolFormatKind::Fs => PoolFormat::Fs(FsFormat::Auto),
            PoolFormatKind::NetFs => PoolFormat::NetFs(NetFsFormat::Auto),
            PoolFormatKind::Disk => PoolFormat::Disk(DiskFormat::Unknown),
            PoolFormatKind::Logical => PoolFormat::Logical(LogicalFormat::Lvm2),
        }
    }

    /// Whether `f` belongs to this table.
    pub fn owns(self, f: PoolFormat) -> bool {
        matches!(
            (self, f),
            (PoolFormatKind::Fs, PoolFormat::Fs(_))
                | (PoolFormatKind::NetFs, PoolFormat::NetFs(_))
                | (PoolFormatKind::Disk, PoolFormat::Disk(_))
                | (PoolFormatKind::Logical, PoolFormat::Logical(_))
        )
    }
}

/// What a pool type's `<source>` holds (libvirt's
/// `VIR_STORAGE_POOL_SOURCE_*` flags) and how its format is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolOptions {
    /// `<host>` (required when set).
    pub host: bool,
    /// `<device>`.
    pub device: bool,
    /// `<dir>` (required when set).
    pub dir: bool,
    /// `<adapter>` (required when set).
    pub adapter: bool,
    /// `<name>` (defaults to the pool name; gives the pool name).
    pub name: bool,
    /// `<initiator><iqn>`.
    pub initiator_iqn: bool,
    /// A network pool: no `<target>`.
    pub network: bool,
    /// The format table, if the pool type has one.
    pub format: Option<PoolFormatKind>,
}

impl PoolOptions {
    /// Whether `<device>` is the only source item ("then it is required").
    pub fn device_only(&self) -> bool {
        self.device
            && !self.host
            && !self.dir
            && !self.adapter
            && !self.name
            && !self.initiator_iqn
            && !self.network
    }
}

impl PoolType {
    /// The source options of this pool type.
    pub fn options(self) -> PoolOptions {
        let o = PoolOptions::default();
        match self {
            PoolType::Dir | PoolType::Mpath => o,
            PoolType::Logical => PoolOptions {
                name: true,
                device: true,
                format: Some(PoolFormatKind::Logical),
                ..o
            },
            PoolType::Fs => PoolOptions {
                device: true,
                format: Some(PoolFormatKind::Fs),
                ..o
            },
            PoolType::NetFs => PoolOptions {
                host: true,
                dir: true,
                format: Some(PoolFormatKind::NetFs),
                ..o
            },
            PoolType::Iscsi => PoolOptions {
                host: true,
                device: true,
                initiator_iqn: true,
                ..o
            },
            PoolType::IscsiDirect => PoolOptions {
                host: true,
                device: true,
                network: true,
                initiator_iqn: true,
                ..o
            },
            PoolType::Scsi => PoolOptions { adapter: true, ..o },
            PoolType::Rbd | PoolType::Sheepdog => PoolOptions {
                host: true,
                network: true,
                name: true,
                ..o
            },
            PoolType::Gluster => PoolOptions {
                host: true,
                network: true,
                name: true,
                dir: true,
                ..o
            },
            PoolType::Disk => PoolOptions {
                device: true,
                format: Some(PoolFormatKind::Disk),
                ..o
            },
            PoolType::Zfs => PoolOptions {
                name: true,
                device: true,
                ..o
            },
            PoolType::Vstorage => PoolOptions { name: true, ..o },
        }
    }

    /// Whether the pool has a `<target>` in its XML (libvirt writes none
    /// for RBD, Sheepdog, Gluster and iSCSI-direct).
    pub fn has_target(self) -> bool {
        !matches!(
            self,
            PoolType::Rbd | PoolType::Sheepdog | PoolType::Gluster | PoolType::IscsiDirect
        )
    }

    /// The namespace of this pool type's extension elements, if any.
    pub fn namespace(self) -> Option<PoolNamespaceKind> {
        match self {
            PoolType::Fs | PoolType::NetFs => Some(PoolNamespaceKind::Fs),
            PoolType::Rbd => Some(PoolNamespaceKind::Rbd),
            _ => None,
        }
    }
}

/// `<host name= port=/>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceHost {
    /// Host name or address.
    pub name: String,
    /// Port; 0 means not given (not written).
    pub port: i32,
}

/// `<freeExtent start= end=/>` of a disk pool device (filled by refresh).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FreeExtent {
    /// First byte.
    pub start: u64,
    /// End byte.
    pub end: u64,
}

/// `<device path= part_separator=>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceDevice {
    /// Path (or IQN for iSCSI).
    pub path: String,
    /// `part_separator` (`None`: not given).
    pub part_separator: Option<bool>,
    /// Free extents (live data; never parsed).
    pub free_extents: Vec<FreeExtent>,
}

/// A PCI address (`<address domain= bus= slot= function=/>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciAddress {
    /// Domain.
    pub domain: u32,
    /// Bus.
    pub bus: u32,
    /// Slot.
    pub slot: u32,
    /// Function.
    pub function: u32,
    /// `multifunction` (parsed, not written back, as libvirt).
    pub multifunction: Option<bool>,
}

/// `<parentaddr unique_id=><address/></parentaddr>` of a `scsi_host`
/// adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParentAddr {
    /// `unique_id`.
    pub unique_id: i32,
    /// The parent's PCI address.
    pub address: PciAddress,
}

/// `<adapter type='scsi_host'>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScsiHostAdapter {
    /// `name` (e.g. `host0`).
    pub name: Option<String>,
    /// `<parentaddr>` (instead of a name).
    pub parent_addr: Option<ParentAddr>,
}

/// `<adapter type='fc_host'>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FcHostAdapter {
    /// `parent`.
    pub parent: Option<String>,
    /// `parent_wwnn`.
    pub parent_wwnn: Option<String>,
    /// `parent_wwpn`.
    pub parent_wwpn: Option<String>,
    /// `parent_fabric_wwn`.
    pub parent_fabric_wwn: Option<String>,
    /// `managed` (`None`: not given).
    pub managed: Option<bool>,
    /// `wwnn` (required by validation).
    pub wwnn: Option<String>,
    /// `wwpn` (required by validation).
    pub wwpn: Option<String>,
}

/// `<adapter>` of a SCSI pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adapter {
    /// `scsi_host` (also the legacy form with only `name`).
    ScsiHost(ScsiHostAdapter),
    /// `fc_host`.
    FcHost(FcHostAdapter),
}

/// `<source>` of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolSource {
    /// `<host>`s.
    pub hosts: Vec<SourceHost>,
    /// `<device>`s.
    pub devices: Vec<SourceDevice>,
    /// `<dir path=>` (sanitised).
    pub dir: Option<String>,
    /// `<adapter>` (`None`: absent or libvirt's "default" type).
    pub adapter: Option<Adapter>,
    /// `<name>`.
    pub name: Option<String>,
    /// `<format type=>` (`None` until post-parse for types with a table).
    pub format: Option<PoolFormat>,
    /// `<auth>`.
    pub auth: Option<AuthDef>,
    /// `<initiator><iqn name=>`.
    pub initiator_iqn: Option<String>,
    /// `<protocol ver=>` (NFS).
    pub protocol_ver: Option<String>,
    /// `<vendor name=>`.
    pub vendor: Option<String>,
    /// `<product name=>`.
    pub product: Option<String>,
}

/// `<target>` of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolTarget {
    /// `<path>` (sanitised; computed for logical and zfs pools).
    pub path: Option<String>,
    /// `<permissions>`.
    pub perms: Perms,
}

/// `<features>` of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolFeatures {
    /// `<cow state=>` (`None`: not given).
    pub cow: Option<bool>,
}

crate::xml_enum! {
    /// `<refresh><volume allocation=...>`.
    pub enum RefreshAllocation {
        /// Backend default.
        Default = "default",
        /// Report capacity as allocation.
        Capacity = "capacity",
    }
}

/// `<refresh>` of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRefresh {
    /// `<volume allocation=>`.
    pub volume_allocation: RefreshAllocation,
}

/// Which extension namespace a pool type accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolNamespaceKind {
    /// `fs:` (fs, netfs): mount options.
    Fs,
    /// `rbd:`: RADOS config options.
    Rbd,
}

impl PoolNamespaceKind {
    /// The namespace URI.
    pub fn href(self) -> &'static str {
        match self {
            PoolNamespaceKind::Fs => FS_NAMESPACE_HREF,
            PoolNamespaceKind::Rbd => RBD_NAMESPACE_HREF,
        }
    }

    /// The prefix libvirt writes.
    pub fn prefix(self) -> &'static str {
        match self {
            PoolNamespaceKind::Fs => "fs",
            PoolNamespaceKind::Rbd => "rbd",
        }
    }
}

/// The `fs:` namespace URI.
pub const FS_NAMESPACE_HREF: &str = "http://libvirt.org/schemas/storagepool/fs/1.0";
/// The `rbd:` namespace URI.
pub const RBD_NAMESPACE_HREF: &str = "http://libvirt.org/schemas/storagepool/rbd/1.0";

/// One `<rbd:option name= value=/>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RbdOption {
    /// Option name.
    pub name: String,
    /// Option value.
    pub value: String,
}

/// Extension data in a pool's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolNamespace {
    /// `<fs:mount_opts><fs:option name=/>...`.
    FsMountOpts(Vec<String>),
    /// `<rbd:config_opts><rbd:option name= value=/>...`.
    RbdConfigOpts(Vec<RbdOption>),
}

/// A storage pool definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDef {
    /// Pool type.
    pub pool_type: PoolType,
    /// Name (may come from the source name).
    pub name: String,
    /// UUID (generated by post-parse when missing).
    pub uuid: Option<Uuid>,
    /// Capacity in bytes (live data; never parsed).
    pub capacity: u64,
    /// Allocation in bytes (live data; never parsed).
    pub allocation: u64,
    /// Available bytes (live data; never parsed).
    pub available: u64,
    /// `<features>`.
    pub features: PoolFeatures,
    /// `<source>`.
    pub source: PoolSource,
    /// `<target>` (unused by network pools).
    pub target: PoolTarget,
    /// `<refresh>`.
    pub refresh: Option<PoolRefresh>,
    /// Namespace extension data.
    pub namespace: Option<PoolNamespace>,
}

impl PoolDef {
    /// An empty definition of type `pool_type`.
    pub fn new(pool_type: PoolType, name: impl Into<String>) -> PoolDef {
        PoolDef {
            pool_type,
            name: name.into(),
            uuid: None,
            capacity: 0,
            allocation: 0,
            available: 0,
            features: PoolFeatures::default(),
            source: PoolSource::default(),
            target: PoolTarget::default(),
            refresh: None,
            namespace: None,
        }
    }
}
