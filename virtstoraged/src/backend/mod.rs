//! Storage backends: what touches the host for each pool type, behind one
//! trait (libvirt's `virStorageBackend`).
//!
//! `refresh`, `check` and the volume create are required; everything else
//! has a default (starting and stopping do nothing, the rest is
//! NO_SUPPORT). Backends:
//!
//! - [`dir::DirBackend`]: a directory (`dir`);
//! - [`fs::FsBackend`]: a mounted file system (`fs`: a block device or an
//!   image file; `netfs`: NFS, CIFS, GlusterFS), with the directory's
//!   volume handling;
//! - [`logical::LogicalBackend`]: an LVM volume group (`logical`).
//!
//! The command lines come from the pure builders in
//! `common::storage::argv`; [`crate::exec`] runs them.

pub mod dir;
pub mod fs;
pub mod logical;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::VirtError;
use common::storage::{PoolDef, PoolType, VolDef};

use crate::error::{self, blocking, no_support};
use crate::pool_obj::{PoolSizes, Vol};
use crate::wipe;

/// `VIR_STORAGE_POOL_BUILD_*`: what a build may do to existing data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildFlags {
    /// Overwrite existing data (`OVERWRITE`).
    pub overwrite: bool,
    /// Refuse when the target holds data (`NO_OVERWRITE`).
    pub no_overwrite: bool,
}

/// Options of a volume create.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateFlags {
    /// `VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA`.
    pub prealloc_metadata: bool,
    /// `VIR_STORAGE_VOL_CREATE_REFLINK`.
    pub reflink: bool,
}

/// What a refresh found.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// The pool's sizes.
    pub sizes: PoolSizes,
    /// Its volumes.
    pub vols: BTreeMap<String, Vol>,
}

/// The largest size a file (or any volume) can have: the largest `off_t`,
/// and libvirt's limit on a volume's capacity and allocation
/// (`LLONG_MAX`).
pub const MAX_FILE_SIZE: u64 = i64::MAX.unsigned_abs();

/// The largest image QEMU (`qemu-img`) handles: `BDRV_MAX_LENGTH`, the
/// largest `int64_t` rounded down to 1 GiB.
pub const QEMU_MAX_LENGTH: u64 = MAX_FILE_SIZE & !((1 << 30) - 1);

/// `value` of `field` as a file offset or length (`off_t`).
///
/// # Errors
/// INVALID_ARG naming the field and the value when it does not fit.
pub fn file_size(field: &str, value: u64) -> Result<libc::off_t, VirtError> {
    libc::off_t::try_from(value).map_err(|_| {
        error::too_large(
            field,
            value,
            format_args!("{MAX_FILE_SIZE} bytes, the largest file size"),
        )
    })
}

/// How a resize is asked for (absolute capacity, already resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize {
    /// The new capacity in bytes.
    pub capacity: u64,
    /// Allocate the new space.
    pub allocate: bool,
    /// Shrinking was allowed.
    pub shrink: bool,
}

/// A pool type's mechanisms.
#[tonic::async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Whether the pool's storage is present and started (used after a
    /// daemon restart for pools that were active).
    async fn check(&self, def: Arc<PoolDef>) -> Result<bool, VirtError>;

    /// Creates the pool's storage (directory, file system, volume group).
    async fn build(&self, _def: Arc<PoolDef>, _flags: BuildFlags) -> Result<(), VirtError> {
        Err(no_support("storage pool does not support pool build"))
    }

    /// Starts the pool (mount, activate).
    async fn start(&self, _def: Arc<PoolDef>) -> Result<(), VirtError> {
        Ok(())
    }

    /// Stops the pool (unmount, deactivate).
    async fn stop(&self, _def: Arc<PoolDef>) -> Result<(), VirtError> {
        Ok(())
    }

    /// Deletes the pool's storage (the inverse of build).
    async fn delete(&self, _def: Arc<PoolDef>, _zeroed: bool) -> Result<(), VirtError> {
        Err(no_support("pool does not support pool deletion"))
    }

    /// Lists the volumes and sizes; `old` is the previous list (unchanged
    /// entries may be reused).
    async fn refresh(
        &self,
        def: Arc<PoolDef>,
        old: Arc<BTreeMap<String, Vol>>,
    ) -> Result<Refreshed, VirtError>;

    /// Removes what an interrupted volume create left (called when no
    /// create can be running: at start).
    async fn cleanup(&self, _def: Arc<PoolDef>) {}

    /// The live sizes, when they are cheap to get (`statvfs`); `None`:
    /// the refreshed ones stand.
    fn live_sizes(&self, _def: &PoolDef) -> Option<std::io::Result<PoolSizes>> {
        None
    }

    /// The target's device id now (recorded at start); `None` when the
    /// backend has no cheap liveness check.
    fn target_dev(&self, _def: &PoolDef) -> Option<u64> {
        None
    }

    /// Whether the pool's target is still what was started (`dev` from
    /// [`Backend::target_dev`] at start): `None` when not checked cheaply.
    fn target_alive(&self, _def: &PoolDef, _dev: Option<u64>) -> Option<bool> {
        None
    }

    /// Fills in what the pool decides for a new volume: its path, key and
    /// type.
    fn prepare_vol(&self, def: &PoolDef, vol: &mut VolDef) -> Result<(), VirtError>;

    /// Creates `vol` (prepared) and returns it as refreshed.
    async fn create_vol(
        &self,
        _def: Arc<PoolDef>,
        _vol: VolDef,
        _flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        Err(no_support("storage pool does not support volume creation"))
    }

    /// Creates `vol` (prepared) filled from `input`.
    async fn create_vol_from(
        &self,
        _def: Arc<PoolDef>,
        _vol: VolDef,
        _input: Arc<VolDef>,
        _flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        Err(no_support(
            "storage pool does not support volume creation from an existing volume",
        ))
    }

    /// Deletes a volume.
    async fn delete_vol(
        &self,
        _def: Arc<PoolDef>,
        _vol: Arc<VolDef>,
        _zeroed: bool,
    ) -> Result<(), VirtError> {
        Err(no_support("storage pool does not support vol deletion"))
    }

    /// Changes a volume's capacity.
    async fn resize_vol(
        &self,
        _def: Arc<PoolDef>,
        _vol: Arc<VolDef>,
        _resize: Resize,
    ) -> Result<(), VirtError> {
        Err(no_support(
            "storage pool does not support changing of volume capacity",
        ))
    }

    /// Overwrites a volume's data.
    async fn wipe_vol(
        &self,
        _def: Arc<PoolDef>,
        vol: Arc<VolDef>,
        alg: wipe::Algorithm,
    ) -> Result<(), VirtError> {
        wipe_local(vol_path(&vol)?, alg).await
    }

    /// Reads one volume again (after it changed).
    async fn refresh_vol(&self, def: Arc<PoolDef>, vol: Arc<VolDef>) -> Result<Vol, VirtError>;
}

/// The backend of pool type `t`, if this daemon has one.
pub fn for_type(t: PoolType) -> Option<&'static dyn Backend> {
    static DIR: dir::DirBackend = dir::DirBackend;
    static FS: fs::FsBackend = fs::FsBackend {
        pool_type: PoolType::Fs,
    };
    static NETFS: fs::FsBackend = fs::FsBackend {
        pool_type: PoolType::NetFs,
    };
    static LOGICAL: logical::LogicalBackend = logical::LogicalBackend;
    match t {
        PoolType::Dir => Some(&DIR),
        PoolType::Fs => Some(&FS),
        PoolType::NetFs => Some(&NETFS),
        PoolType::Logical => Some(&LOGICAL),
        _ => None,
    }
}

/// The pool types with a backend.
pub const SUPPORTED: [PoolType; 4] = [
    PoolType::Dir,
    PoolType::Fs,
    PoolType::NetFs,
    PoolType::Logical,
];

/// The target directory of a pool.
///
/// # Errors
/// The definition has none.
pub fn target_path(def: &PoolDef) -> Result<PathBuf, VirtError> {
    def.target
        .path
        .as_deref()
        .map(PathBuf::from)
        .ok_or_else(|| {
            error::invalid_arg(format!("storage pool '{}' has no target path", def.name))
        })
}

/// A volume's path.
///
/// # Errors
/// It has none.
pub fn vol_path(vol: &VolDef) -> Result<PathBuf, VirtError> {
    vol.target
        .path
        .as_deref()
        .map(PathBuf::from)
        .ok_or_else(|| error::internal(format!("volume '{}' has no path", vol.name)))
}

/// The size of what `f` holds: the file size, or the device size.
pub fn content_len(f: &std::fs::File) -> std::io::Result<(u64, bool)> {
    use std::io::Seek;
    use std::os::unix::fs::FileTypeExt;
    let m = f.metadata()?;
    if m.file_type().is_block_device() {
        let mut r = f;
        Ok((r.seek(std::io::SeekFrom::End(0))?, true))
    } else {
        Ok((m.len(), false))
    }
}

/// Wipes the file or block device at `path`.
///
/// # Errors
/// It cannot be opened or written.
pub async fn wipe_local(path: PathBuf, alg: wipe::Algorithm) -> Result<(), VirtError> {
    blocking(move || {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| {
                error::sys(
                    format!(
                        "Failed to open storage volume with path '{}'",
                        path.display()
                    ),
                    &e,
                )
            })?;
        let (len, block) = content_len(&f)
            .map_err(|e| error::sys(format!("cannot stat '{}'", path.display()), &e))?;
        wipe::wipe(&f, len, alg, block).map_err(|e| {
            error::sys(
                format!("Failed to wipe volume with path '{}'", path.display()),
                &e,
            )
        })
    })
    .await
}

/// Whether `path` exists as a directory.
pub fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}
