//! `fs` and `netfs` pools: a file system mounted on the target directory,
//! holding file volumes like a `dir` pool.
//!
//! - fs: the source is a block device (or an image file, which `mount`
//!   attaches to a loop device itself); build makes the directory and,
//!   with a build flag, the file system (`mkfs -t FORMAT`; with
//!   `no_overwrite` only when `blkid` finds no signature).
//! - netfs: NFS (`host:/dir`), CIFS (`//host/dir`) or GlusterFS.
//!
//! Mounting uses libvirt's command line (`common::storage::argv`), with a
//! time limit so a dead NFS server cannot hang the daemon. Whether the
//! pool is mounted is read from `/proc/self/mountinfo`.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::VirtError;
use common::storage::argv::{self, Command};
use common::storage::{PoolDef, PoolFormat, PoolType, VolDef};

use super::dir::{self, statvfs_sizes};
use super::{Backend, BuildFlags, CreateFlags, Refreshed, Resize, is_dir, target_path, vol_path};
use crate::error::{self, blocking, sys};
use crate::exec;
use crate::pool_obj::{PoolSizes, Vol};

/// How long a mount or unmount may take.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `fs` and `netfs` backend.
#[derive(Debug)]
pub struct FsBackend {
    /// `fs` or `netfs`.
    pub pool_type: PoolType,
}

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted file system.
    pub dev: (u32, u32),
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its type.
    pub fstype: String,
    /// Its source (`/dev/loop0`, `host:/dir`).
    pub source: String,
}

/// Undoes the octal escapes of mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo` text.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(devs), Some(mp), Some(fstype), Some(source)) =
            (f.get(2), f.get(4), f.get(sep + 1), f.get(sep + 2))
        else {
            continue;
        };
        let Some((maj, min)) = devs.split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse(), min.parse()) else {
            continue;
        };
        out.push(MountEntry {
            dev: (maj, min),
            mount_point: PathBuf::from(unescape(mp)),
            fstype: (*fstype).to_owned(),
            source: unescape(source),
        });
    }
    out
}

/// The file system mounted on `target` (the last mount there wins).
///
/// # Errors
/// mountinfo cannot be read.
pub fn mounted_at(target: &Path) -> io::Result<Option<MountEntry>> {
    let canon = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text)
        .into_iter()
        .rfind(|m| m.mount_point == canon))
}

fn major_minor(rdev: u64) -> (u32, u32) {
    (
        libc::major(rdev as libc::dev_t),
        libc::minor(rdev as libc::dev_t),
    )
}

/// Whether the mount `m` comes from the pool's source.
fn source_matches(def: &PoolDef, m: &MountEntry) -> bool {
    if def.pool_type == PoolType::NetFs {
        let Ok(src) = argv::pool_mount_source(def) else {
            return false;
        };
        let trim = |s: &str| s.trim_end_matches('/').to_owned();
        return trim(&m.source) == trim(&src);
    }
    let Some(dev) = def.source.devices.first() else {
        return false;
    };
    let Ok(meta) = std::fs::metadata(&dev.path) else {
        return false;
    };
    if meta.file_type().is_block_device() {
        return major_minor(meta.rdev()) == m.dev;
    }
    // An image file: mount put it on a loop device; ask the loop device.
    let backing = std::fs::read_to_string(format!(
        "/sys/dev/block/{}:{}/loop/backing_file",
        m.dev.0, m.dev.1
    ))
    .unwrap_or_default();
    let want = std::fs::canonicalize(&dev.path).unwrap_or_else(|_| PathBuf::from(&dev.path));
    Path::new(backing.trim()) == want
}

/// Whether the pool's source is mounted on its target.
///
/// # Errors
/// mountinfo cannot be read, or the target has another file system.
fn is_mounted(def: &PoolDef) -> Result<bool, VirtError> {
    let target = target_path(def)?;
    match mounted_at(&target).map_err(|e| sys("cannot read /proc/self/mountinfo", &e))? {
        None => Ok(false),
        Some(m) if source_matches(def, &m) => Ok(true),
        Some(m) => Err(error::op_invalid(format!(
            "target '{}' of storage pool '{}' has another file system mounted ({} from {})",
            target.display(),
            def.name,
            m.fstype,
            m.source
        ))),
    }
}

/// Whether the device holds a file system signature (`blkid -p`): the
/// type found, or `None`.
async fn device_signature(device: &str) -> Result<Option<String>, VirtError> {
    let mut cmd = Command::new("blkid");
    cmd.args(["-p", "-o", "value", "-s", "TYPE", device]);
    match exec::run(&cmd).await {
        Ok(out) => {
            let t = out.stdout.trim().to_owned();
            Ok(Some(if t.is_empty() {
                "unknown".to_owned()
            } else {
                t
            }))
        }
        // Exit status 2: nothing found.
        Err(e) if e.message.contains("exit status 2") => Ok(None),
        Err(e) => Err(e),
    }
}

/// `mkfs -t FORMAT [-F|-f|-I] DEVICE`, as libvirt's
/// `virStorageBackendExecuteMKFS`.
pub fn mkfs_command(format: &str, device: &str) -> Command {
    let mut cmd = Command::new("mkfs");
    cmd.args(["-t", format]);
    match format {
        "xfs" => {
            cmd.arg("-f");
        }
        "ext2" | "ext3" | "ext4" => {
            cmd.arg("-F");
        }
        "vfat" => {
            cmd.arg("-I");
        }
        _ => {}
    }
    cmd.arg(device);
    cmd
}

#[tonic::async_trait]
impl Backend for FsBackend {
    async fn check(&self, def: Arc<PoolDef>) -> Result<bool, VirtError> {
        blocking(move || is_mounted(&def)).await
    }

    async fn build(&self, def: Arc<PoolDef>, flags: BuildFlags) -> Result<(), VirtError> {
        let d = def.clone();
        blocking(move || dir::build_dir(&d)).await?;
        if self.pool_type != PoolType::Fs || (!flags.overwrite && !flags.no_overwrite) {
            return Ok(());
        }
        let device = def
            .source
            .devices
            .first()
            .map(|d| d.path.clone())
            .ok_or_else(|| error::invalid_arg("missing source device"))?;
        let format = match def.source.format {
            Some(PoolFormat::Fs(f)) => f.as_str(),
            _ => "auto",
        };
        if format == "auto" {
            return Err(error::config_unsupported(
                "cannot build a file system of format 'auto': name the format",
            ));
        }
        if flags.no_overwrite
            && let Some(found) = device_signature(&device).await?
        {
            return Err(error::op_invalid(format!(
                "Device '{device}' already formatted using '{found}'"
            )));
        }
        exec::run_with(&mkfs_command(format, &device), Duration::from_secs(600)).await?;
        Ok(())
    }

    async fn start(&self, def: Arc<PoolDef>) -> Result<(), VirtError> {
        let d = def.clone();
        if blocking(move || is_mounted(&d)).await? {
            return Ok(());
        }
        let target = target_path(&def)?;
        if !is_dir(&target) {
            return Err(sys(
                format!("cannot mount on '{}'", target.display()),
                &io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        if self.pool_type == PoolType::Fs {
            let src = argv::pool_mount_source(&def).map_err(|e| error::argv(&e))?;
            if std::fs::metadata(&src).is_err() {
                return Err(error::invalid_arg(format!(
                    "Source device does not exist when mounting '{src}'"
                )));
            }
        }
        let cmd = argv::pool_mount_command("mount", &def).map_err(|e| error::argv(&e))?;
        exec::run_with(&cmd, MOUNT_TIMEOUT).await?;
        Ok(())
    }

    async fn stop(&self, def: Arc<PoolDef>) -> Result<(), VirtError> {
        let d = def.clone();
        if !blocking(move || is_mounted(&d)).await? {
            return Ok(());
        }
        let cmd = argv::pool_stop_command(&def).map_err(|e| error::argv(&e))?;
        exec::run_with(&cmd, MOUNT_TIMEOUT).await?;
        Ok(())
    }

    async fn delete(&self, def: Arc<PoolDef>, _zeroed: bool) -> Result<(), VirtError> {
        blocking(move || dir::delete_dir(&def)).await
    }

    async fn refresh(
        &self,
        def: Arc<PoolDef>,
        old: Arc<BTreeMap<String, Vol>>,
    ) -> Result<Refreshed, VirtError> {
        blocking(move || dir::refresh_dir(&def, &old)).await
    }

    async fn cleanup(&self, def: Arc<PoolDef>) {
        dir::cleanup_parts(def).await;
    }

    fn live_sizes(&self, def: &PoolDef) -> Option<io::Result<PoolSizes>> {
        Some(
            target_path(def)
                .map_err(io::Error::other)
                .and_then(|t| statvfs_sizes(&t)),
        )
    }

    fn target_dev(&self, def: &PoolDef) -> Option<u64> {
        dir::target_dev(def)
    }

    fn target_alive(&self, def: &PoolDef, dev: Option<u64>) -> Option<bool> {
        // The mounted file system has its own device: if it was unmounted
        // behind our back, the directory is back on its parent's.
        Some(dir::target_alive(def, dev))
    }

    fn prepare_vol(&self, def: &PoolDef, vol: &mut VolDef) -> Result<(), VirtError> {
        dir::prepare_file_vol(def, vol)
    }

    async fn create_vol(
        &self,
        def: Arc<PoolDef>,
        vol: VolDef,
        flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        dir::create_file_vol(def, vol, flags).await
    }

    async fn create_vol_from(
        &self,
        def: Arc<PoolDef>,
        vol: VolDef,
        input: Arc<VolDef>,
        flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        dir::create_file_vol_from(def, vol, input, flags).await
    }

    async fn delete_vol(
        &self,
        _def: Arc<PoolDef>,
        vol: Arc<VolDef>,
        zeroed: bool,
    ) -> Result<(), VirtError> {
        dir::delete_file_vol(vol, zeroed).await
    }

    async fn resize_vol(
        &self,
        _def: Arc<PoolDef>,
        vol: Arc<VolDef>,
        resize: Resize,
    ) -> Result<(), VirtError> {
        dir::resize_file_vol(vol, resize).await
    }

    async fn refresh_vol(&self, _def: Arc<PoolDef>, vol: Arc<VolDef>) -> Result<Vol, VirtError> {
        let path = vol_path(&vol)?;
        let name = vol.name.clone();
        blocking(move || dir::probe_vol(&name, &path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    40 22 7:0 / /mnt/my\\040pool rw,nodev - ext4 /dev/loop0 rw\n\
                    41 22 0:50 / /mnt/nfs rw - nfs4 host:/export rw,vers=4.2\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/my pool"));
        assert_eq!(m[1].dev, (7, 0));
        assert_eq!(m[1].source, "/dev/loop0");
        assert_eq!(m[2].fstype, "nfs4");
        assert_eq!(m[2].source, "host:/export");
    }

    #[test]
    fn mkfs_lines() {
        assert_eq!(
            mkfs_command("ext4", "/dev/loop0").to_string(),
            "mkfs -t ext4 -F /dev/loop0"
        );
        assert_eq!(
            mkfs_command("xfs", "/dev/sdb").to_string(),
            "mkfs -t xfs -f /dev/sdb"
        );
        assert_eq!(
            mkfs_command("btrfs", "/dev/sdb").to_string(),
            "mkfs -t btrfs /dev/sdb"
        );
    }
}
