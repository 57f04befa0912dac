//! Storage pool (`<pool>`) and volume (`<volume>`) XML: models, parse → post-parse → validate → format.
//!
//! The models follow libvirt's `storage_conf.c` (v10.7):
//!
//! - [`PoolDef::parse_str`] reads a pool, fills defaults
//!   ([`PoolDef::post_parse`]: source format, names, logical/zfs target
//!   paths, a UUID when missing) and checks it ([`PoolDef::validate`]);
//!   [`PoolDef::to_xml`] writes `virStoragePoolDefFormat`'s layout.
//! - [`VolDef::parse_str`] reads a volume in the context of its pool (the
//!   pool type decides the format table and default);
//!   [`VolDef::to_xml`] writes `virStorageVolDefFormat`'s layout.
//!
//! Sizes accept libvirt's units (`unit='G'`, `KiB`, `MB`, ...) and are
//! written in bytes. With the validate flag, input outside libvirt's RelaxNG
//! schemas is refused ([`schema`]); otherwise unknown elements and
//! attributes are ignored, as libvirt does.
//!
//! Data types live in [`pool`], [`volume`] and [`common`]; parsing and
//! formatting in the `*_parse`/`*_format` modules. [`argv`] holds the pure
//! command-line builders of the storage driver (`mount`, `vgchange`,
//! `qemu-img`), scored by the pool-xml2argv and vol-xml2argv conformance
//! categories. [`probe`] reads what an image file is (format, size,
//! backing file; [`qcow2`] its header), for virtstoraged's volumes and
//! virtqemud's backing-chain check.

pub mod argv;
pub mod common;
mod common_xml;
pub mod pool;
mod pool_format;
mod pool_parse;
pub mod probe;
pub mod qcow2;
pub mod schema;
mod util;
mod vol_format;
mod vol_parse;
pub mod volume;

#[cfg(test)]
mod tests;

pub use crate::xml::ParseFlags;
pub use crate::xml::values::scale_integer;
pub use common::{
    AuthDef, AuthType, Cipher, Encryption, EncryptionEngine, EncryptionFormat, EncryptionSecret,
    EncryptionSecretType, Ivgen, Perms, SecretLookup, Uuid,
};
pub use pool::{
    Adapter, DiskFormat, FcHostAdapter, FreeExtent, FsFormat, LogicalFormat, NetFsFormat,
    ParentAddr, PciAddress, PoolDef, PoolFeatures, PoolFormat, PoolFormatKind, PoolNamespace,
    PoolNamespaceKind, PoolOptions, PoolRefresh, PoolSource, PoolTarget, PoolType, RbdOption,
    RefreshAllocation, ScsiHostAdapter, SourceDevice, SourceHost,
};
pub use pool_parse::valid_wwn;
pub use probe::{ImageInfo, OpenImage, open_image, probe_image};
pub use util::sanitize_path;
pub use volume::{
    FileFeature, FileFormat, Timestamp, Timestamps, VolBackingStore, VolDef, VolDiskFormat,
    VolExtent, VolFormat, VolFormatTable, VolOptions, VolParseFlags, VolTarget, VolType,
};
