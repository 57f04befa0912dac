//! `dir` pools, and the file volumes every directory-backed pool (dir, fs,
//! netfs) holds.
//!
//! A volume is the file `<target>/<name>`. It is created under the
//! temporary name `.<name>.virt-part` in the same directory and renamed
//! into place (without replacing anything) only when complete, so a failed
//! create leaves nothing and a daemon killed mid-create leaves only a
//! `.virt-part` file, removed when the pool is next started or restored.
//!
//! Plain raw volumes (and directories) are made with a few syscalls; plain
//! qcow2 volumes (with or without backing file, lazy refcounts, any
//! cluster size) by the native writer in [`crate::qcow2`]; everything else
//! (preallocated or encrypted qcow2, extended L2, other formats,
//! conversions) by `qemu-img` with libvirt's command line.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::VirtError;
use common::storage::argv::{self, QemuImgOptions};
use common::storage::{FileFeature, FileFormat, PoolDef, VolDef, VolFormat, VolType};

use super::{
    Backend, BuildFlags, CreateFlags, QEMU_MAX_LENGTH, Refreshed, Resize, file_size, is_dir,
    target_path, vol_path,
};
use crate::error::{self, blocking, sys};
use crate::names::{is_part_name, part_name};
use crate::pool_obj::{PoolSizes, Vol};
use crate::probe::{self, Stamp};
use crate::{exec, qcow2, wipe};

/// libvirt's default mode of a pool directory it creates.
pub const DEFAULT_POOL_DIR_MODE: u32 = 0o711;

/// libvirt's default mode of a new volume file.
pub const DEFAULT_VOL_MODE: u32 = 0o600;

/// The `dir` backend.
#[derive(Debug)]
pub struct DirBackend;

#[tonic::async_trait]
impl Backend for DirBackend {
    async fn check(&self, def: Arc<PoolDef>) -> Result<bool, VirtError> {
        Ok(is_dir(&target_path(&def)?))
    }

    async fn build(&self, def: Arc<PoolDef>, _flags: BuildFlags) -> Result<(), VirtError> {
        // libvirt accepts both flags for directories and ignores them.
        blocking(move || build_dir(&def)).await
    }

    async fn start(&self, def: Arc<PoolDef>) -> Result<(), VirtError> {
        let target = target_path(&def)?;
        if is_dir(&target) {
            Ok(())
        } else {
            Err(sys(
                format!("cannot open directory '{}'", target.display()),
                &io::Error::from_raw_os_error(libc::ENOENT),
            ))
        }
    }

    async fn delete(&self, def: Arc<PoolDef>, _zeroed: bool) -> Result<(), VirtError> {
        blocking(move || delete_dir(&def)).await
    }

    async fn refresh(
        &self,
        def: Arc<PoolDef>,
        old: Arc<BTreeMap<String, Vol>>,
    ) -> Result<Refreshed, VirtError> {
        blocking(move || refresh_dir(&def, &old)).await
    }

    async fn cleanup(&self, def: Arc<PoolDef>) {
        cleanup_parts(def).await;
    }

    fn live_sizes(&self, def: &PoolDef) -> Option<io::Result<PoolSizes>> {
        Some(
            target_path(def)
                .map_err(io::Error::other)
                .and_then(|t| statvfs_sizes(&t)),
        )
    }

    fn target_dev(&self, def: &PoolDef) -> Option<u64> {
        target_dev(def)
    }

    fn target_alive(&self, def: &PoolDef, dev: Option<u64>) -> Option<bool> {
        Some(target_alive(def, dev))
    }

    fn prepare_vol(&self, def: &PoolDef, vol: &mut VolDef) -> Result<(), VirtError> {
        prepare_file_vol(def, vol)
    }

    async fn create_vol(
        &self,
        def: Arc<PoolDef>,
        vol: VolDef,
        flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        create_file_vol(def, vol, flags).await
    }

    async fn create_vol_from(
        &self,
        def: Arc<PoolDef>,
        vol: VolDef,
        input: Arc<VolDef>,
        flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        create_file_vol_from(def, vol, input, flags).await
    }

    async fn delete_vol(
        &self,
        _def: Arc<PoolDef>,
        vol: Arc<VolDef>,
        zeroed: bool,
    ) -> Result<(), VirtError> {
        delete_file_vol(vol, zeroed).await
    }

    async fn resize_vol(
        &self,
        _def: Arc<PoolDef>,
        vol: Arc<VolDef>,
        resize: Resize,
    ) -> Result<(), VirtError> {
        resize_file_vol(vol, resize).await
    }

    async fn refresh_vol(&self, _def: Arc<PoolDef>, vol: Arc<VolDef>) -> Result<Vol, VirtError> {
        let path = vol_path(&vol)?;
        let name = vol.name.clone();
        blocking(move || probe_vol(&name, &path)).await
    }
}

// === pools ===

/// `statvfs` of `target` as libvirt reports a directory pool.
///
/// # Errors
/// `statvfs` failed (the directory is gone, ...).
pub fn statvfs_sizes(target: &Path) -> io::Result<PoolSizes> {
    let s = nix::sys::statvfs::statvfs(target).map_err(io::Error::from)?;
    Ok(sizes_of(&s))
}

/// [`statvfs_sizes`] of an open directory.
fn fstatvfs_sizes(dir: &File) -> io::Result<PoolSizes> {
    let s = nix::sys::statvfs::fstatvfs(dir).map_err(io::Error::from)?;
    Ok(sizes_of(&s))
}

fn sizes_of(s: &nix::sys::statvfs::Statvfs) -> PoolSizes {
    let frsize = s.fragment_size();
    let capacity = s.blocks().saturating_mul(frsize);
    let available = s.blocks_free().saturating_mul(frsize);
    PoolSizes {
        capacity,
        allocation: capacity.saturating_sub(available),
        available,
    }
}

/// The device of the target directory.
pub fn target_dev(def: &PoolDef) -> Option<u64> {
    let (is_dir, dev) = quick_stat(def.target.path.as_deref()?)?;
    is_dir.then_some(dev)
}

/// Whether the target is still a directory (on device `dev`, when given).
///
/// Called by every call that looks at an active pool, so it is the
/// cheapest stat there is: `statx` asking for the type only, with
/// `AT_STATX_DONT_SYNC` (a network file system answers from its cache
/// rather than asking its server; the device of a mount point is local).
pub fn target_alive(def: &PoolDef, dev: Option<u64>) -> bool {
    let Some(t) = def.target.path.as_deref() else {
        return false;
    };
    match quick_stat(t) {
        Some((is_dir, d)) => is_dir && dev.is_none_or(|want| want == d),
        None => false,
    }
}

/// Whether `path` (symlinks followed) is a directory, and its device
/// (as `MetadataExt::dev`); `None` when it cannot be stat'ed.
fn quick_stat(path: &str) -> Option<(bool, u64)> {
    let c = std::ffi::CString::new(path).ok()?;
    let mut sx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `sx` a writable statx
    // buffer, both alive for the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_STATX_DONT_SYNC,
            libc::STATX_TYPE,
            sx.as_mut_ptr(),
        )
    };
    if rc != 0 {
        // No statx (very old kernels): the full stat.
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            return std::fs::metadata(path).ok().map(|m| (m.is_dir(), m.dev()));
        }
        return None;
    }
    // SAFETY: statx succeeded and filled the buffer (zeroed before).
    let sx = unsafe { sx.assume_init() };
    let is_dir = u32::from(sx.stx_mode) & libc::S_IFMT == libc::S_IFDIR;
    Some((is_dir, libc::makedev(sx.stx_dev_major, sx.stx_dev_minor)))
}

/// Creates the target directory (libvirt's `virStorageBackendBuildLocal`):
/// mode from the definition or 0711, owner when given.
///
/// # Errors
/// It cannot be created or its permissions set.
pub fn build_dir(def: &PoolDef) -> Result<(), VirtError> {
    let target = target_path(def)?;
    let perms = &def.target.perms;
    let existed = is_dir(&target);
    if !existed {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(perms.mode.unwrap_or(DEFAULT_POOL_DIR_MODE))
            .create(&target)
            .map_err(|e| sys(format!("cannot create path '{}'", target.display()), &e))?;
    }
    let mode = match (perms.mode, existed) {
        (Some(m), _) => Some(m),
        (None, false) => Some(DEFAULT_POOL_DIR_MODE),
        (None, true) => None,
    };
    if let Some(m) = mode {
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(m)).map_err(|e| {
            sys(
                format!("cannot set mode of '{}' to {m:04o}", target.display()),
                &e,
            )
        })?;
    }
    if perms.uid.is_some() || perms.gid.is_some() {
        std::os::unix::fs::chown(&target, perms.uid, perms.gid)
            .map_err(|e| sys(format!("cannot chown '{}'", target.display()), &e))?;
    }
    Ok(())
}

/// Removes the (empty) target directory.
///
/// # Errors
/// It cannot be removed (for instance, it still holds volumes).
pub fn delete_dir(def: &PoolDef) -> Result<(), VirtError> {
    let target = target_path(def)?;
    match std::fs::remove_dir(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(sys(
            format!("failed to remove pool '{}'", target.display()),
            &e,
        )),
    }
}

/// Scans the target directory: every regular file and directory is a
/// volume (symlinks followed; our temporary files, names with control
/// characters and what cannot be read are left out). Files whose stamp
/// did not change since `old` are not probed again.
///
/// # Errors
/// The directory cannot be read.
pub fn refresh_dir(def: &PoolDef, old: &BTreeMap<String, Vol>) -> Result<Refreshed, VirtError> {
    let target = target_path(def)?;
    let cannot_open =
        |e: &io::Error| sys(format!("cannot open directory '{}'", target.display()), e);
    // Each entry is stat'ed relative to the directory (no walk of the
    // target's path per file), and only a changed one is opened and probed.
    let dir = File::open(&target).map_err(|e| cannot_open(&e))?;
    let entries = std::fs::read_dir(&target).map_err(|e| cannot_open(&e))?;
    let mut vols = BTreeMap::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if is_part_name(name) || name.chars().any(char::is_control) {
            continue;
        }
        // Symlinks followed, as `metadata` does.
        let Ok(st) = nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::empty()) else {
            continue;
        };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt != libc::S_IFREG && fmt != libc::S_IFDIR {
            continue;
        }
        let stamp = Stamp::of_stat(&st);
        if let Some(prev) = old.get(name)
            && prev.stamp == Some(stamp)
        {
            vols.insert(name.to_owned(), prev.clone());
            continue;
        }
        let path = target.join(name);
        let probed = std::fs::metadata(&path).and_then(|m| {
            probe::file_volume(name, &path, &m).map(|def| Vol {
                def: Arc::new(def),
                stamp: Some(Stamp::of(&m)),
            })
        });
        match probed {
            Ok(v) => {
                vols.insert(name.to_owned(), v);
            }
            Err(e) => tracing::debug!(path = %path.display(), "skipping unreadable volume: {e}"),
        }
    }
    let sizes = fstatvfs_sizes(&dir)
        .map_err(|e| sys(format!("cannot statvfs path '{}'", target.display()), &e))?;
    Ok(Refreshed { sizes, vols })
}

/// Removes `.*.virt-part` files an interrupted create left in the target.
pub async fn cleanup_parts(def: Arc<PoolDef>) {
    let Some(t) = def.target.path.clone() else {
        return;
    };
    let r = blocking(move || {
        let mut n = 0;
        if let Ok(entries) = std::fs::read_dir(&t) {
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_str().is_some_and(is_part_name) {
                    let p = e.path();
                    let removed = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    if removed.is_ok() {
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    })
    .await;
    if let Ok(n @ 1..) = r {
        tracing::info!(pool = %def.name, "removed {n} partial volume file(s) of interrupted creates");
    }
}

// === volumes ===

/// The path, key and type of a new file volume: `<target>/<name>`; the
/// `<target><path>` of the XML is ignored, as libvirt does. A missing
/// format is raw.
///
/// # Errors
/// The pool has no target path.
pub fn prepare_file_vol(def: &PoolDef, vol: &mut VolDef) -> Result<(), VirtError> {
    let path = target_path(def)?.join(&vol.name);
    let p = path.to_string_lossy().into_owned();
    vol.target.path = Some(p.clone());
    vol.key = Some(p);
    vol.vol_type = Some(
        if vol.target.format == Some(VolFormat::File(FileFormat::Dir)) {
            VolType::Dir
        } else {
            VolType::File
        },
    );
    if vol.target.format.is_none() || vol.target.format == Some(VolFormat::File(FileFormat::None)) {
        vol.target.format = Some(VolFormat::File(FileFormat::Raw));
    }
    Ok(())
}

/// Probes the volume at `path` named `name`.
///
/// # Errors
/// It cannot be read.
pub fn probe_vol(name: &str, path: &Path) -> Result<Vol, VirtError> {
    let m = std::fs::metadata(path)
        .map_err(|e| sys(format!("cannot stat file '{}'", path.display()), &e))?;
    let def = probe::file_volume(name, path, &m)
        .map_err(|e| sys(format!("cannot read volume '{}'", path.display()), &e))?;
    Ok(Vol {
        def: Arc::new(def),
        stamp: Some(Stamp::of(&m)),
    })
}

/// A partial volume file: removed on drop unless published.
#[derive(Debug)]
struct Part {
    part: PathBuf,
    dir: bool,
    done: bool,
}

impl Part {
    fn new(final_path: &Path, name: &str) -> Part {
        let part = final_path.parent().map_or_else(
            || PathBuf::from(part_name(name)),
            |d| d.join(part_name(name)),
        );
        Part {
            part,
            dir: false,
            done: false,
        }
    }

    /// Creates the partial file (removing a stale one first), mode `mode`.
    fn create(&self, mode: u32) -> Result<File, VirtError> {
        let _ = std::fs::remove_file(&self.part);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&self.part)
            .map_err(|e| {
                sys(
                    format!("cannot create volume file '{}'", self.part.display()),
                    &e,
                )
            })
    }

    /// Renames the finished file to `to`, never replacing anything there.
    fn publish(mut self, to: &Path, name: &str) -> Result<(), VirtError> {
        match rename_noreplace(&self.part, to) {
            Ok(()) => {
                self.done = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(error::vol_exists(name)),
            Err(e) => Err(sys(
                format!(
                    "cannot rename '{}' to '{}'",
                    self.part.display(),
                    to.display()
                ),
                &e,
            )),
        }
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.done {
            let _ = if self.dir {
                std::fs::remove_dir_all(&self.part)
            } else {
                std::fs::remove_file(&self.part)
            };
        }
    }
}

/// `renameat2(RENAME_NOREPLACE)`, or `link` + `unlink` where the file
/// system does not support it (NFS).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let f = CString::new(from.as_os_str().as_bytes())?;
    let t = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both strings are NUL-terminated and live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
        std::fs::hard_link(from, to)?;
        std::fs::remove_file(from)?;
        return Ok(());
    }
    Err(e)
}

/// `chown` the new file when the definition asks for an owner.
fn apply_owner(f: &File, vol: &VolDef, path: &Path) -> Result<(), VirtError> {
    let p = &vol.target.perms;
    if p.uid.is_some() || p.gid.is_some() {
        std::os::unix::fs::fchown(f, p.uid, p.gid)
            .map_err(|e| sys(format!("cannot chown '{}'", path.display()), &e))?;
    }
    Ok(())
}

/// Sets the no-copy-on-write attribute (btrfs); other file systems
/// ignore the request, as libvirt's `virFileSetCOW` does.
fn set_nocow(f: &File) {
    const FS_NOCOW_FL: libc::c_long = 0x0080_0000;
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read/write one long at the pointer,
    // which lives across the calls.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0 {
            flags |= FS_NOCOW_FL;
            let _ = libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
        }
    }
}

/// Whether `vol` is a plain raw file (no encryption).
fn is_plain_raw(vol: &VolDef) -> bool {
    matches!(
        vol.target.format,
        None | Some(VolFormat::File(
            FileFormat::Raw | FileFormat::None | FileFormat::Iso
        ))
    ) && vol.target.encryption.is_none()
}

/// Whether the native qcow2 writer makes `vol`.
fn native_qcow2(vol: &VolDef, flags: CreateFlags) -> bool {
    vol.target.format == Some(VolFormat::File(FileFormat::Qcow2))
        && vol.target.encryption.is_none()
        && !flags.prealloc_metadata
        && !vol.target.nocow
        && !vol
            .target
            .features
            .as_ref()
            .is_some_and(|f| f.contains(&FileFeature::ExtendedL2))
        && matches!(vol.target.compat.as_deref(), None | Some("0.10" | "1.1"))
}

/// The backing file as seen from the pool directory.
fn resolve_backing(target: &Path, backing: &str) -> PathBuf {
    let b = Path::new(backing);
    if b.is_absolute() {
        b.to_path_buf()
    } else {
        target.join(b)
    }
}

fn refuse_encryption(vol: &VolDef) -> Result<(), VirtError> {
    if vol.target.encryption.is_some() {
        return Err(error::config_unsupported(
            "encrypted volumes need the secret driver, which is not available",
        ));
    }
    Ok(())
}

/// Refuses a `capacity` (of field `field`) that no file of `vol`'s format
/// can have, before anything is touched: past the largest file size (raw
/// files, made here), past the largest image QEMU handles (every other
/// format goes through `qemu-img`), past what the L1 table of a qcow2
/// image of `vol`'s cluster size maps (QEMU would refuse it only after
/// starting).
///
/// # Errors
/// INVALID_ARG naming the field, the value and the limit.
fn check_capacity(vol: &VolDef, field: &str, capacity: u64) -> Result<(), VirtError> {
    if is_plain_raw(vol) {
        return file_size(field, capacity).map(|_| ());
    }
    if capacity > QEMU_MAX_LENGTH {
        return Err(error::too_large(
            field,
            capacity,
            format_args!("{QEMU_MAX_LENGTH} bytes, the largest image QEMU handles"),
        ));
    }
    if vol.target.format == Some(VolFormat::File(FileFormat::Qcow2)) {
        let extended_l2 = vol
            .target
            .features
            .as_ref()
            .is_some_and(|f| f.contains(&FileFeature::ExtendedL2));
        let cs = vol.target.cluster_size;
        if let Some(max) = qcow2::max_size(cs, extended_l2)
            && capacity > max
        {
            let cs = if cs == 0 {
                qcow2::DEFAULT_CLUSTER_SIZE
            } else {
                cs
            };
            let l2 = if extended_l2 { ", extended L2" } else { "" };
            return Err(error::too_large(
                field,
                capacity,
                format_args!("{max} bytes for a qcow2 image with {cs}-byte clusters{l2}"),
            ));
        }
    }
    Ok(())
}

fn validate_argv(
    vol: &VolDef,
    input: Option<&VolDef>,
    flags: CreateFlags,
) -> Result<Vec<argv::Command>, VirtError> {
    let opts = QemuImgOptions {
        prealloc_metadata: flags.prealloc_metadata,
        // Never used: encryption is refused before anything runs.
        secret_path: Some("/dev/null"),
        input_secret_path: Some("/dev/null"),
    };
    argv::qemu_img_commands(vol, input, &opts).map_err(|e| error::argv(&e))
}

async fn run_all(cmds: &[argv::Command]) -> Result<(), VirtError> {
    for c in cmds {
        exec::run_with(c, std::time::Duration::from_secs(3600)).await?;
    }
    Ok(())
}

/// Creates a file volume: see the module docs for which way.
///
/// # Errors
/// What libvirt refuses (see `common::storage::argv`), a file that exists
/// already (STORAGE_VOL_EXIST), an inaccessible backing file, I/O errors.
/// Nothing is left behind on failure.
pub async fn create_file_vol(
    def: Arc<PoolDef>,
    vol: VolDef,
    flags: CreateFlags,
) -> Result<Vol, VirtError> {
    let path = vol_path(&vol)?;
    let target = target_path(&def)?;
    if vol.vol_type == Some(VolType::Dir) {
        return blocking(move || create_dir_vol(&vol, &path)).await;
    }
    // libvirt's checks (formats, options, lazy refcounts, preallocation)
    // apply whichever way the volume is made.
    let cmds = validate_argv(&vol, None, flags)?;
    refuse_encryption(&vol)?;
    check_capacity(&vol, "capacity", vol.capacity)?;
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(error::vol_exists(&vol.name));
    }
    if let Some(b) = &vol.backing_store {
        let resolved = resolve_backing(&target, &b.path);
        if let Err(e) = File::open(&resolved) {
            return Err(sys(
                format!("inaccessible backing store volume {}", b.path),
                &e,
            ));
        }
    }
    if is_plain_raw(&vol) {
        return blocking(move || create_raw(&vol, &path)).await;
    }
    if native_qcow2(&vol, flags) {
        return blocking(move || create_qcow2(&vol, &path, &target)).await;
    }
    // qemu-img writes the partial file; we publish it.
    let part = Part::new(&path, &vol.name);
    let mut tmp = vol.clone();
    tmp.target.path = Some(part.part.to_string_lossy().into_owned());
    let cmds = if cmds.is_empty() {
        cmds
    } else {
        validate_argv(&tmp, None, flags)?
    };
    let _ = std::fs::remove_file(&part.part);
    run_all(&cmds).await?;
    blocking(move || {
        let f = OpenOptions::new()
            .read(true)
            .open(&part.part)
            .map_err(|e| sys(format!("cannot open '{}'", part.part.display()), &e))?;
        let mode = vol.target.perms.mode.unwrap_or(DEFAULT_VOL_MODE);
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| sys(format!("cannot set mode of '{}'", part.part.display()), &e))?;
        apply_owner(&f, &vol, &path)?;
        part.publish(&path, &vol.name)?;
        probe_vol(&vol.name, &path)
    })
    .await
}

fn create_dir_vol(vol: &VolDef, path: &Path) -> Result<Vol, VirtError> {
    let mode = vol.target.perms.mode.unwrap_or(0o755);
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(error::vol_exists(&vol.name));
        }
        Err(e) => return Err(sys(format!("cannot create path '{}'", path.display()), &e)),
    }
    let p = &vol.target.perms;
    if p.uid.is_some() || p.gid.is_some() {
        std::os::unix::fs::chown(path, p.uid, p.gid)
            .map_err(|e| sys(format!("cannot chown '{}'", path.display()), &e))?;
    }
    probe_vol(&vol.name, path)
}

/// A raw file: `allocation` bytes allocated, `capacity` long.
fn create_raw(vol: &VolDef, path: &Path) -> Result<Vol, VirtError> {
    file_size("capacity", vol.capacity)?;
    let alloc = vol.allocation.min(vol.capacity);
    let len = file_size("allocation", alloc)?;
    let part = Part::new(path, &vol.name);
    let f = part.create(vol.target.perms.mode.unwrap_or(DEFAULT_VOL_MODE))?;
    if vol.target.nocow {
        set_nocow(&f);
    }
    if alloc > 0 {
        // SAFETY: posix_fallocate on a descriptor we own; no memory passed.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) };
        if rc != 0 {
            return Err(sys(
                format!("cannot allocate {alloc} bytes in file '{}'", path.display()),
                &io::Error::from_raw_os_error(rc),
            ));
        }
    }
    f.set_len(vol.capacity)
        .map_err(|e| sys(format!("cannot extend file '{}'", path.display()), &e))?;
    apply_owner(&f, vol, path)?;
    drop(f);
    part.publish(path, &vol.name)?;
    probe_vol(&vol.name, path)
}

/// A qcow2 image by the native writer.
fn create_qcow2(vol: &VolDef, path: &Path, target: &Path) -> Result<Vol, VirtError> {
    let mut capacity = vol.capacity;
    let backing = vol.backing_store.as_ref();
    if capacity == 0
        && let Some(b) = backing
    {
        // As qemu-img: no size given, the backing image's size.
        capacity = probe::image_size(&resolve_backing(target, &b.path))
            .map_err(|e| sys(format!("inaccessible backing store volume {}", b.path), &e))?
            .0;
    }
    let spec = qcow2::Spec {
        // libvirt passes the size in KiB, rounded up.
        size: capacity.div_ceil(1024) * 1024,
        cluster_size: vol.target.cluster_size,
        v3: vol.target.compat.as_deref() != Some("0.10"),
        lazy_refcounts: vol
            .target
            .features
            .as_ref()
            .is_some_and(|f| f.contains(&FileFeature::LazyRefcounts)),
        backing_file: backing.map(|b| b.path.clone()),
        backing_format: backing
            .and_then(|b| b.format)
            .map(|f| f.as_str().to_owned()),
    };
    let part = Part::new(path, &vol.name);
    let f = part.create(vol.target.perms.mode.unwrap_or(DEFAULT_VOL_MODE))?;
    qcow2::write(&f, &spec).map_err(|e| match e {
        qcow2::Error::Io(io) => sys(format!("cannot write '{}'", path.display()), &io),
        other => error::invalid_arg(other),
    })?;
    apply_owner(&f, vol, path)?;
    drop(f);
    part.publish(path, &vol.name)?;
    probe_vol(&vol.name, path)
}

/// Creates a file volume filled from `input` (any pool's volume): a
/// sparse (or reflinked) copy when both are raw, else `qemu-img convert`.
///
/// # Errors
/// See [`create_file_vol`]; the input cannot be read.
pub async fn create_file_vol_from(
    _def: Arc<PoolDef>,
    vol: VolDef,
    input: Arc<VolDef>,
    flags: CreateFlags,
) -> Result<Vol, VirtError> {
    let path = vol_path(&vol)?;
    let cmds = validate_argv(&vol, Some(&input), flags)?;
    refuse_encryption(&vol)?;
    refuse_encryption(&input)?;
    check_capacity(&vol, "capacity", vol.capacity)?;
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(error::vol_exists(&vol.name));
    }
    let input_raw = input.vol_type == Some(VolType::Block) || is_plain_raw(&input);
    if is_plain_raw(&vol) && input_raw {
        return blocking(move || copy_raw(&vol, &input, &path, flags.reflink)).await;
    }
    if flags.reflink {
        return Err(error::config_unsupported(
            "reflink copies are only possible between raw volumes",
        ));
    }
    let part = Part::new(&path, &vol.name);
    let mut tmp = vol.clone();
    tmp.target.path = Some(part.part.to_string_lossy().into_owned());
    let cmds = if cmds.is_empty() {
        cmds
    } else {
        validate_argv(&tmp, Some(&input), flags)?
    };
    let _ = std::fs::remove_file(&part.part);
    run_all(&cmds).await?;
    blocking(move || {
        let f = File::open(&part.part)
            .map_err(|e| sys(format!("cannot open '{}'", part.part.display()), &e))?;
        let mode = vol.target.perms.mode.unwrap_or(DEFAULT_VOL_MODE);
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| sys(format!("cannot set mode of '{}'", part.part.display()), &e))?;
        apply_owner(&f, &vol, &path)?;
        part.publish(&path, &vol.name)?;
        probe_vol(&vol.name, &path)
    })
    .await
}

/// `FICLONE`: share `src`'s extents with `dst`.
fn reflink(dst: &File, src: &File) -> io::Result<()> {
    // FICLONE = _IOW(0x94, 9, int)
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: FICLONE takes the source descriptor as its argument.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE, src.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Copies `len` bytes of `src` into `dst` at the same offsets, skipping
/// holes (regular files: `SEEK_DATA`/`SEEK_HOLE`) and all-zero chunks, so
/// the copy stays sparse.
pub fn sparse_copy(src: &File, dst: &File, len: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    let seekable = src.metadata()?.is_file();
    while pos < len {
        let (data_start, data_end) = if seekable {
            match seek_data(src, pos)? {
                None => break,
                Some(d) => (d, seek_hole(src, d)?.min(len)),
            }
        } else {
            (pos, len)
        };
        let mut off = data_start;
        while off < data_end {
            let n = usize::try_from((data_end - off).min(CHUNK as u64)).unwrap_or(CHUNK);
            let got = src.read_at(&mut buf[..n], off)?;
            if got == 0 {
                return Ok(());
            }
            if buf[..got].iter().any(|b| *b != 0) {
                dst.write_all_at(&buf[..got], off)?;
            }
            off += got as u64;
        }
        pos = data_end;
    }
    Ok(())
}

fn lseek(f: &File, pos: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let off =
        libc::off_t::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: lseek on a descriptor we own.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(u64::try_from(r).ok())
}

/// The next data offset at or after `pos` (`None`: only a hole follows).
pub fn seek_data(f: &File, pos: u64) -> io::Result<Option<u64>> {
    lseek(f, pos, libc::SEEK_DATA)
}

/// The next hole at or after `pos` (the end of the file at the latest).
pub fn seek_hole(f: &File, pos: u64) -> io::Result<u64> {
    Ok(lseek(f, pos, libc::SEEK_HOLE)?.unwrap_or(u64::MAX))
}

fn copy_raw(
    vol: &VolDef,
    input: &VolDef,
    path: &Path,
    reflink_only: bool,
) -> Result<Vol, VirtError> {
    let in_path = vol_path(input)?;
    let src = File::open(&in_path).map_err(|e| {
        sys(
            format!("could not open input path '{}'", in_path.display()),
            &e,
        )
    })?;
    let mut s = &src;
    let in_len = s
        .seek(SeekFrom::End(0))
        .map_err(|e| sys(format!("cannot seek '{}'", in_path.display()), &e))?;
    let part = Part::new(path, &vol.name);
    let dst = part.create(vol.target.perms.mode.unwrap_or(DEFAULT_VOL_MODE))?;
    if vol.target.nocow {
        set_nocow(&dst);
    }
    if reflink_only {
        reflink(&dst, &src).map_err(|e| {
            sys(
                format!("failed to clone files from '{}'", in_path.display()),
                &e,
            )
        })?;
    } else {
        sparse_copy(&src, &dst, in_len)
            .map_err(|e| sys(format!("failed writing '{}'", path.display()), &e))?;
    }
    dst.set_len(vol.capacity.max(in_len))
        .map_err(|e| sys(format!("cannot extend file '{}'", path.display()), &e))?;
    dst.sync_data()
        .map_err(|e| sys(format!("cannot sync data to file '{}'", path.display()), &e))?;
    apply_owner(&dst, vol, path)?;
    drop(dst);
    part.publish(path, &vol.name)?;
    probe_vol(&vol.name, path)
}

/// Deletes a file (or directory) volume, zeroing it first when asked.
///
/// # Errors
/// It cannot be removed.
pub async fn delete_file_vol(vol: Arc<VolDef>, zeroed: bool) -> Result<(), VirtError> {
    let path = vol_path(&vol)?;
    if zeroed && vol.vol_type != Some(VolType::Dir) {
        super::wipe_local(path.clone(), wipe::Algorithm::Zero).await?;
    }
    blocking(move || {
        let r = if vol.vol_type == Some(VolType::Dir) {
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(sys(format!("cannot unlink file '{}'", path.display()), &e)),
        }
    })
    .await
}

/// Resizes a file volume: raw files are truncated (or allocated), other
/// formats go through `qemu-img resize`.
///
/// # Errors
/// Allocation asked for a non-raw volume; I/O or `qemu-img` errors.
pub async fn resize_file_vol(vol: Arc<VolDef>, r: Resize) -> Result<(), VirtError> {
    let path = vol_path(&vol)?;
    if vol.vol_type == Some(VolType::Dir) {
        return Err(error::no_support("directory volumes cannot be resized"));
    }
    check_capacity(&vol, "capacity", r.capacity)?;
    if is_plain_raw(&vol) {
        return blocking(move || {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| sys(format!("Unable to open '{}'", path.display()), &e))?;
            let cur = f
                .metadata()
                .map_err(|e| sys(format!("cannot stat '{}'", path.display()), &e))?
                .len();
            if r.allocate && r.capacity > cur {
                let off = file_size("current size", cur)?;
                let len = file_size("capacity", r.capacity)? - off;
                // SAFETY: fallocate on a descriptor we own; no memory passed.
                let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, off, len) };
                if rc != 0 {
                    return Err(sys(
                        format!("Failed to pre-allocate space for file '{}'", path.display()),
                        &io::Error::last_os_error(),
                    ));
                }
            }
            f.set_len(r.capacity)
                .map_err(|e| sys(format!("Failed to truncate file '{}'", path.display()), &e))
        })
        .await;
    }
    if r.allocate {
        return Err(error::op_invalid(
            "preallocate is only supported for raw type volume",
        ));
    }
    refuse_encryption(&vol)?;
    let mut cmd = argv::Command::new("qemu-img");
    cmd.arg("resize");
    if r.shrink {
        cmd.arg("--shrink");
    }
    cmd.args([path.to_string_lossy().into_owned(), r.capacity.to_string()]);
    exec::run(&cmd).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use common::storage::{ParseFlags, VolParseFlags};

    use super::super::MAX_FILE_SIZE;
    use super::*;

    fn pool(dir: &Path) -> Arc<PoolDef> {
        Arc::new(
            PoolDef::parse_str(
                &format!(
                    "<pool type='dir'><name>p</name><target><path>{}</path></target></pool>",
                    dir.display()
                ),
                ParseFlags::default(),
            )
            .expect("pool"),
        )
    }

    fn vol(pool: &PoolDef, xml: &str) -> VolDef {
        let mut v =
            VolDef::parse_str_opt_capacity(xml, pool, VolParseFlags::default(), true).expect("vol");
        prepare_file_vol(pool, &mut v).expect("prepare");
        v
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn raw_and_qcow2_volumes_are_created_in_place() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = pool(tmp.path());
        let raw = vol(
            &p,
            "<volume><name>a.img</name><capacity>1048576</capacity><allocation>0</allocation></volume>",
        );
        let v = create_file_vol(p.clone(), raw, CreateFlags::default())
            .await
            .expect("raw");
        assert_eq!(v.def.capacity, 1 << 20);
        assert_eq!(v.def.target.format, Some(VolFormat::File(FileFormat::Raw)));
        let mode = std::fs::metadata(tmp.path().join("a.img"))
            .expect("meta")
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);

        let q = vol(
            &p,
            "<volume><name>b.qcow2</name><capacity unit='G'>1</capacity>\
             <target><format type='qcow2'/></target>\
             <backingStore><path>a.img</path><format type='raw'/></backingStore></volume>",
        );
        let v = create_file_vol(p.clone(), q, CreateFlags::default())
            .await
            .expect("qcow2");
        assert_eq!(v.def.capacity, 1 << 30);
        assert_eq!(
            v.def.backing_store.as_ref().map(|b| b.path.as_str()),
            Some("a.img")
        );

        // An existing file is not replaced.
        let again = vol(
            &p,
            "<volume><name>a.img</name><capacity>1</capacity></volume>",
        );
        let e = create_file_vol(p.clone(), again, CreateFlags::default())
            .await
            .expect_err("exists");
        assert_eq!(e.code, common::ErrorCode::StorageVolExist);
        // A refused create leaves nothing.
        let bad = vol(
            &p,
            "<volume><name>c.qcow2</name><capacity>1</capacity>\
             <target><format type='qcow2'/><compat>0.10</compat>\
             <features><lazy_refcounts/></features></target></volume>",
        );
        create_file_vol(p.clone(), bad, CreateFlags::default())
            .await
            .expect_err("0.10 lazy");
        let missing = vol(
            &p,
            "<volume><name>d.qcow2</name><capacity>1</capacity>\
             <target><format type='qcow2'/></target>\
             <backingStore><path>/nonexistent</path></backingStore></volume>",
        );
        let e = create_file_vol(p.clone(), missing, CreateFlags::default())
            .await
            .expect_err("backing");
        assert!(
            e.message.contains("inaccessible backing store"),
            "{}",
            e.message
        );
        assert_eq!(names(tmp.path()), ["a.img", "b.qcow2"]);

        let r = refresh_dir(&p, &BTreeMap::new()).expect("refresh");
        assert_eq!(r.vols.len(), 2);
        let again = refresh_dir(&p, &r.vols).expect("refresh again");
        assert!(Arc::ptr_eq(&again.vols["a.img"].def, &r.vols["a.img"].def));
    }

    /// An INVALID_ARGUMENT naming the capacity and `value`.
    fn assert_too_large(e: &VirtError, value: &str) {
        assert_eq!(e.code, common::ErrorCode::InvalidArg, "{}", e.message);
        assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument);
        assert!(
            e.message
                .contains(&format!("capacity value too large: {value} ")),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn impossible_capacities_are_refused_before_the_file_is_touched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = pool(tmp.path());
        let raw = create_file_vol(
            p.clone(),
            vol(
                &p,
                "<volume><name>a.img</name><capacity>1048576</capacity></volume>",
            ),
            CreateFlags::default(),
        )
        .await
        .expect("raw");
        let qcow = create_file_vol(
            p.clone(),
            vol(
                &p,
                "<volume><name>b.qcow2</name><capacity>1048576</capacity>\
                 <target><format type='qcow2'/></target></volume>",
            ),
            CreateFlags::default(),
        )
        .await
        .expect("qcow2");
        let before = |name: &str| std::fs::read(tmp.path().join(name)).expect("read");
        let (raw_data, qcow_data) = (before("a.img"), before("b.qcow2"));
        let past_off_t = MAX_FILE_SIZE + 1;
        // Raw: truncated (sparse) or allocated, the largest off_t at most.
        for (capacity, allocate) in [
            (u64::MAX, false),
            (u64::MAX, true),
            (past_off_t, false),
            (past_off_t, true),
        ] {
            let r = Resize {
                capacity,
                allocate,
                shrink: false,
            };
            let e = resize_file_vol(raw.def.clone(), r)
                .await
                .expect_err("too large");
            assert_too_large(&e, &capacity.to_string());
            assert!(e.message.contains("the largest file size"), "{}", e.message);
        }
        // qcow2 (qemu-img resize): what QEMU handles, and what an L1 table
        // of the image's cluster size maps.
        for (capacity, limit) in [
            (past_off_t, "the largest image QEMU handles"),
            (QEMU_MAX_LENGTH + 1, "the largest image QEMU handles"),
            (
                (1 << 51) + 512,
                "2251799813685248 bytes for a qcow2 image with 65536-byte clusters",
            ),
        ] {
            let r = Resize {
                capacity,
                allocate: false,
                shrink: false,
            };
            let e = resize_file_vol(qcow.def.clone(), r)
                .await
                .expect_err("too large");
            assert_too_large(&e, &capacity.to_string());
            assert!(e.message.contains(limit), "{}", e.message);
        }
        assert_eq!(before("a.img"), raw_data);
        assert_eq!(before("b.qcow2"), qcow_data);
        // A possible size still works.
        let r = Resize {
            capacity: 2 << 20,
            allocate: true,
            shrink: false,
        };
        resize_file_vol(raw.def.clone(), r).await.expect("grow");
        let m = std::fs::metadata(tmp.path().join("a.img")).expect("meta");
        assert_eq!(m.len(), 2 << 20);

        // Creates: a raw file past the largest file size (the XML parser
        // stops at it; a definition built otherwise must not get past),
        // a preallocated qcow2 (qemu-img) past its L1 table.
        let mut huge = vol(
            &p,
            "<volume><name>c.img</name><capacity>1</capacity></volume>",
        );
        huge.capacity = u64::MAX;
        huge.allocation = u64::MAX;
        let e = create_file_vol(p.clone(), huge, CreateFlags::default())
            .await
            .expect_err("raw too large");
        assert_too_large(&e, &u64::MAX.to_string());
        let pre = vol(
            &p,
            "<volume><name>d.qcow2</name><capacity unit='EiB'>1</capacity>\
             <target><format type='qcow2'/></target></volume>",
        );
        let flags = CreateFlags {
            prealloc_metadata: true,
            ..CreateFlags::default()
        };
        let e = create_file_vol(p.clone(), pre, flags)
            .await
            .expect_err("qcow2 too large");
        assert_too_large(&e, &(1u64 << 60).to_string());
        assert!(e.message.contains("qcow2 image"), "{}", e.message);
        assert_eq!(names(tmp.path()), ["a.img", "b.qcow2"]);
    }

    #[test]
    fn target_alive_follows_the_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path().join("t");
        std::fs::create_dir(&t).expect("mkdir");
        let p = pool(&t);
        let dev = target_dev(&p).expect("dev");
        assert_eq!(dev, std::fs::metadata(&t).expect("metadata").dev());
        assert!(target_alive(&p, Some(dev)));
        assert!(!target_alive(&p, Some(dev + 1)), "another device");
        std::fs::remove_dir(&t).expect("rmdir");
        assert!(!target_alive(&p, Some(dev)));
        assert_eq!(target_dev(&p), None);
        std::fs::write(&t, b"a file").expect("file");
        assert!(!target_alive(&p, None), "not a directory");
    }

    #[tokio::test]
    async fn stale_parts_are_hidden_and_cleaned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = pool(tmp.path());
        std::fs::write(tmp.path().join(".x.img.virt-part"), b"half").expect("part");
        std::fs::write(tmp.path().join("y.img"), b"data").expect("vol");
        let r = refresh_dir(&p, &BTreeMap::new()).expect("refresh");
        assert_eq!(r.vols.keys().collect::<Vec<_>>(), ["y.img"]);
        cleanup_parts(p).await;
        assert_eq!(names(tmp.path()), ["y.img"]);
    }

    #[test]
    fn sparse_copy_keeps_holes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = tmp.path().join("a");
        let f = File::create(&a).expect("a");
        f.set_len(64 << 20).expect("len");
        f.write_all_at(b"hello", 10 << 20).expect("write");
        let b = tmp.path().join("b");
        let g = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&b)
            .expect("b");
        sparse_copy(&File::open(&a).expect("open"), &g, 64 << 20).expect("copy");
        g.set_len(64 << 20).expect("len");
        let mut buf = [0u8; 5];
        g.read_exact_at(&mut buf, 10 << 20).expect("read");
        assert_eq!(&buf, b"hello");
        assert!(g.metadata().expect("meta").blocks() * 512 < 8 << 20);
    }
}
