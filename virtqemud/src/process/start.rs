//! The start phases (see the module docs of [`crate::process`]). Each
//! phase's type has private fields and is only returned by the phase
//! before it, so `launch` cannot run before `prepare_host`, nor that
//! before `prepare_domain`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use common::domain::device::disk::{Disk, DiskDevice};
use common::domain::device::storage::{StartupPolicy, StorageSource, StorageType};
use common::domain::{Device, DomainDef};
use common::storage::{FileFormat, ImageInfo};
use common::{ErrorCode, ErrorDomain, VirtError};

use super::pidfd::{self, PidFd};
use super::{DomainPaths, NetPlan, StartEnv};
use crate::command::{self, FdRequest, QemuCommand};
use crate::monitor::{EventReceiver, Monitor, MonitorError};
use crate::storage::ResolvedVolume;

fn err(code: ErrorCode, msg: impl Into<String>) -> VirtError {
    VirtError::new(code, ErrorDomain::Qemu, msg.into())
}

fn sys(what: impl std::fmt::Display, e: &std::io::Error) -> VirtError {
    err(ErrorCode::SystemError, format!("{what}: {e}"))
}

/// Phase 1: the live definition, its id, paths, private data and command
/// line. Nothing on the host has changed.
#[derive(Debug)]
pub struct PreparedDomain {
    def: DomainDef,
    id: i32,
    paths: DomainPaths,
    master_key: [u8; 32],
    command: QemuCommand,
    nets: Vec<NetPlan>,
}

/// Prepares domain `persistent` to run as `id`: copies it into the live
/// definition (aliases, the `volumes` its disks name, resolved by the
/// caller through the storage driver), checks that its local disk sources
/// and their backing chains can be accessed (see `check_disk_sources`:
/// the only look at the host here, and only a read), picks its paths and
/// master key and builds its command line.
///
/// # Errors
/// SYSTEM_ERROR when a disk source cannot be accessed and its disk is not
/// optional, or a backing file of one cannot be; CONFIG_UNSUPPORTED when
/// the builder cannot express the definition.
pub fn prepare_domain(
    persistent: &DomainDef,
    id: i32,
    env: &StartEnv,
    volumes: &[ResolvedVolume],
    nets: &[NetPlan],
) -> Result<PreparedDomain, VirtError> {
    let mut def = persistent.clone();
    def.id = Some(id);
    command::alias::assign(&mut def);
    let mut i = 0;
    for d in &mut def.devices {
        if let common::domain::Device::Interface(net) = d {
            if let Some(p) = nets.iter().find(|p| p.index == i) {
                net.target_dev = Some(p.tap.clone());
            }
            i += 1;
        }
    }
    crate::storage::apply(&mut def, volumes);
    drop_unresolved_volumes(&mut def, volumes)?;
    // Before the node numbers: a disk dropped here gets none.
    check_disk_sources(
        &mut def,
        &|p| std::fs::metadata(p).map(|m| m.file_type()),
        &read_layer,
    )?;
    command::disk::assign_indices(&mut def);
    let paths = env.paths(&def, id);
    let mut master_key = [0u8; 32];
    common::domain::os_random(&mut master_key);
    let mut ctx = env.command_context(id);
    ctx.master_key = master_key;
    common::domain::os_random(&mut ctx.secret_iv);
    let command = command::build(&def, &ctx).map_err(|e| match e {
        command::BuildError::Unsupported(m) => err(
            ErrorCode::ConfigUnsupported,
            format!("unsupported configuration: {m}"),
        ),
        command::BuildError::Internal(m) => {
            err(ErrorCode::InternalError, format!("internal error: {m}"))
        }
    })?;
    Ok(PreparedDomain {
        def,
        id,
        paths,
        master_key,
        command,
        nets: nets.to_vec(),
    })
}

/// What a start does with a disk whose local source cannot be accessed
/// (libvirt's qemuDomainCheckDiskStartupPolicy, for a cold boot: there is
/// no restore or migration here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// The start fails: `mandatory`, `requisite` (which only forgives a
    /// missing source on restore or migration) or no policy.
    Fail,
    /// An `optional` CD-ROM or floppy stays, without its medium.
    EmptySource,
    /// An `optional` disk of another kind is left out of this run.
    DropDisk,
}

fn on_missing(device: DiskDevice, policy: Option<StartupPolicy>) -> Missing {
    match policy {
        Some(StartupPolicy::Optional) => match device {
            DiskDevice::Cdrom | DiskDevice::Floppy => Missing::EmptySource,
            DiskDevice::Disk | DiskDevice::Lun => Missing::DropDisk,
        },
        Some(StartupPolicy::Mandatory | StartupPolicy::Requisite) | None => Missing::Fail,
    }
}

/// Whether every disk of `def` using volume `vol` of pool `pool` may start
/// without it (see [`on_missing`]).
pub(crate) fn volume_may_be_missing(def: &DomainDef, pool: &str, vol: &str) -> bool {
    let mut users = def
        .disks()
        .filter(|disk| {
            disk.src.kind == StorageType::Volume
                && disk
                    .src
                    .pool
                    .as_ref()
                    .is_some_and(|(p, v, _)| p == pool && v == vol)
        })
        .map(|disk| on_missing(disk.device, disk.src.startup_policy))
        .peekable();
    users.peek().is_some() && users.all(|m| m != Missing::Fail)
}

/// The volume disks of the live definition whose volume was left out of
/// the start (see `Storage::resolve_for_start`): an optional CD-ROM or
/// floppy starts empty, another optional disk is left out of this run.
///
/// # Errors
/// A volume disk that was not resolved and may not start without it
/// (the resolution should have failed the start before).
fn drop_unresolved_volumes(
    def: &mut DomainDef,
    volumes: &[ResolvedVolume],
) -> Result<(), VirtError> {
    settle_missing(def, |disk| match &disk.src.pool {
        Some((pool, vol, _))
            if disk.src.kind == StorageType::Volume
                && !volumes.iter().any(|r| &r.pool == pool && &r.volume == vol) =>
        {
            Some(err(
                ErrorCode::InternalError,
                format!("internal error: volume '{vol}' in pool '{pool}' was not resolved"),
            ))
        }
        _ => None,
    })
}

/// Settles the disks of `def` whose source is missing: `missing` gives,
/// for such a disk, the error that fails the start; by the disk's
/// `startupPolicy` (see [`on_missing`]) the start fails with it, a CD-ROM
/// or floppy starts empty, or the disk is left out of this run.
///
/// # Errors
/// The error of the first missing source whose disk is not optional.
fn settle_missing(
    def: &mut DomainDef,
    mut missing: impl FnMut(&Disk) -> Option<VirtError>,
) -> Result<(), VirtError> {
    let mut i = 0;
    while i < def.devices.len() {
        let Device::Disk(disk) = &mut def.devices[i] else {
            i += 1;
            continue;
        };
        let Some(e) = missing(disk) else {
            i += 1;
            continue;
        };
        match on_missing(disk.device, disk.src.startup_policy) {
            Missing::Fail => return Err(e),
            Missing::EmptySource => {
                tracing::info!(
                    disk = %disk.target.dev,
                    "optional medium missing ({}): the drive starts empty",
                    e.message
                );
                // As libvirt: an empty source of type file, and no policy
                // left over for the next medium.
                disk.src = StorageSource::default();
                i += 1;
            }
            Missing::DropDisk => {
                tracing::info!(
                    disk = %disk.target.dev,
                    "optional disk missing ({}): left out of this run",
                    e.message
                );
                def.devices.remove(i);
            }
        }
    }
    Ok(())
}

/// The host path QEMU would open for a disk's source, when the source is
/// local (a file, a block device or a directory; a volume as the storage
/// driver resolved it). Relative paths are QEMU's: it runs in `/`.
fn local_source(src: &StorageSource) -> Option<PathBuf> {
    match src.effective_kind() {
        StorageType::File | StorageType::Block | StorageType::Dir => {}
        _ => return None,
    }
    let path = src.path.as_deref()?;
    if path.is_empty() {
        // Never the root directory that joining would make of it.
        return Some(PathBuf::new());
    }
    Some(Path::new("/").join(path))
}

/// Checks that the local source of every disk of the live definition
/// `def` can be accessed (`access` is `stat` outside the tests) before
/// QEMU is asked to open it, as libvirt's qemuProcessPrepareHostStorage:
/// a disk without a medium and network disks are not looked at. A source
/// that cannot be accessed fails the start, naming the path and the
/// disk, unless the disk's `startupPolicy` is `optional`: then a CD-ROM
/// or floppy starts empty, and another disk is left out of the live
/// definition. A source that is there has its backing chain checked
/// (see [`check_chain`]; `read` is [`read_layer`] outside the tests).
/// Only reads the host.
///
/// # Errors
/// SYSTEM_ERROR "Cannot access storage file": NOT_FOUND when the file does
/// not exist, PERMISSION_DENIED when it may not be reached,
/// INVALID_ARGUMENT when its name is too long, FAILED_PRECONDITION when
/// something on its way is not a directory or symlinks loop; the errors
/// of [`check_chain`].
fn check_disk_sources(
    def: &mut DomainDef,
    access: &dyn Fn(&Path) -> std::io::Result<std::fs::FileType>,
    read: ReadLayer<'_>,
) -> Result<(), VirtError> {
    // The first error that no startup policy forgives.
    let mut hard = None;
    settle_missing(def, |disk| {
        let full = local_source(&disk.src)?;
        let path = disk.src.path.as_deref().unwrap_or_default();
        match access(&full) {
            Err(e) => Some(inaccessible(path, &disk.target.dev, &e)),
            Ok(found) => {
                if hard.is_none() {
                    hard = wrong_kind(disk, path, found)
                        .or_else(|| check_chain(disk, &full, read).err());
                }
                None
            }
        }
    })?;
    hard.map_or(Ok(()), Err)
}

/// One image of a backing chain as [`check_chain`] sees it.
#[derive(Clone, Debug)]
struct Layer {
    /// What the file is on the host (device, inode): the same file under
    /// another name is the same layer.
    id: (u64, u64),
    /// What its header says.
    info: ImageInfo,
}

/// How [`check_chain`] reads an image: [`read_layer`] outside the tests.
type ReadLayer<'a> = &'a dyn Fn(&Path) -> std::io::Result<Layer>;

/// Opens the image at `path` read-only, as QEMU will, and reads its
/// header.
fn read_layer(path: &Path) -> std::io::Result<Layer> {
    use std::os::unix::fs::MetadataExt as _;
    let image = common::storage::open_image(path)?;
    let m = image.file.metadata()?;
    Ok(Layer {
        id: (m.dev(), m.ino()),
        info: image.info,
    })
}

/// The most layers (the disk's image and its backing files) a chain may
/// have, as libvirt's limit.
const MAX_CHAIN_LAYERS: usize = 200;

/// Whether a backing file name is a path on this host: not a protocol
/// (`nbd://`, `nbd:host:port`, `rbd:...`) nor QEMU's `json:{...}`, that
/// is no colon before the first slash (`./a:b` is a file).
fn is_local_backing(name: &str) -> bool {
    match name.find(':') {
        None => true,
        Some(colon) => name.find('/').is_some_and(|slash| slash < colon),
    }
}

/// Walks the backing chain of `disk`, whose local source exists at
/// `top`, the way QEMU will open it, so that a missing backing file
/// fails the start before QEMU runs, as libvirt's
/// qemuDomainDetermineDiskChain does.
///
/// Only files and block devices hold images. The top image is read only
/// when the disk's format (`<driver type=>`, or the resolved volume's) is
/// one whose header names a backing file
/// (qcow, qcow2, qed, vmdk): a raw image is never probed, as libvirt.
/// Each backing file is opened where QEMU looks for it (an absolute
/// name as is, a relative one in the directory of the image naming it)
/// and read as the format its parent's header gives, or, when the header
/// gives none, as the format it probes to (which QEMU does too). The walk
/// ends at a raw layer, at an image that is not what its format says
/// (QEMU reports that itself), and at a backing that is not a local path.
/// A disk with an explicit `<backingStore>` is trusted and not walked,
/// as libvirt does.
///
/// The disk's `startupPolicy` is not applied to the chain: libvirt
/// applies `optional` to a missing top image only, and a broken chain
/// under a present image fails the start whatever the policy.
///
/// # Errors
/// SYSTEM_ERROR "Cannot access backing file ... of storage file ..." with
/// the codes of [`inaccessible`]; INVALID_ARG for a chain that loops;
/// CONFIG_UNSUPPORTED beyond [`MAX_CHAIN_LAYERS`]; SYSTEM_ERROR "Cannot
/// access storage file" when the top image cannot be read.
fn check_chain(disk: &Disk, top: &Path, read: ReadLayer<'_>) -> Result<(), VirtError> {
    let Some(declared) = disk.src.format else {
        return Ok(());
    };
    let declared = declared.as_str().parse::<FileFormat>().ok();
    let image = matches!(
        disk.src.effective_kind(),
        StorageType::File | StorageType::Block
    );
    if !image || disk.src.backing.is_some() || !declared.is_some_and(FileFormat::has_backing) {
        return Ok(());
    }
    let written = disk.src.path.as_deref().unwrap_or_default();
    let mut layer = read(top).map_err(|e| inaccessible(written, &disk.target.dev, &e))?;
    // The image being looked at: its path for messages, where it is, and
    // the format QEMU opens it as (`None`: it probes).
    let mut name = written.to_owned();
    let mut at = top.to_path_buf();
    let mut format = declared;
    let mut seen = vec![(layer.id, name.clone())];
    loop {
        let opened_as = format.or(layer.info.format);
        if !opened_as.is_some_and(FileFormat::has_backing) || layer.info.format != opened_as {
            return Ok(());
        }
        let Some((backing, backing_format)) = layer.info.backing.clone() else {
            return Ok(());
        };
        if !is_local_backing(&backing) {
            return Ok(());
        }
        let next = match at.parent() {
            Some(dir) if Path::new(&backing).is_relative() => dir.join(&backing),
            _ => PathBuf::from(&backing),
        };
        let next_layer = read(&next).map_err(|e| broken_backing(&backing, &name, &e))?;
        let next_name = next.display().to_string();
        if let Some((_, again)) = seen.iter().find(|(id, _)| *id == next_layer.id) {
            return Err(VirtError::new(
                ErrorCode::InvalidArg,
                ErrorDomain::Storage,
                format!(
                    "invalid argument: the backing chain of disk '{}' loops: backing file \
                     '{backing}' of storage file '{name}' is storage file '{again}' again",
                    disk.target.dev
                ),
            ));
        }
        if seen.len() >= MAX_CHAIN_LAYERS {
            return Err(VirtError::new(
                ErrorCode::ConfigUnsupported,
                ErrorDomain::Storage,
                format!(
                    "unsupported configuration: the backing chain of disk '{}' is more than \
                     {MAX_CHAIN_LAYERS} layers deep (at backing file '{backing}' of storage \
                     file '{name}')",
                    disk.target.dev
                ),
            ));
        }
        seen.push((next_layer.id, next_name.clone()));
        name = next_name;
        at = next;
        format = backing_format;
        layer = next_layer;
    }
}

/// libvirt's "Cannot access backing file" (virStorageSourceReportBrokenChain
/// for a layer below the top): the backing `name` as written in the
/// image `image` that names it, the user QEMU runs as, and the reason,
/// with the codes of [`inaccessible`].
fn broken_backing(name: &str, image: &str, e: &std::io::Error) -> VirtError {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    storage_access_error(
        &format!(
            "Cannot access backing file '{name}' of storage file '{image}' (as uid:{uid}, gid:{gid})"
        ),
        e,
    )
}

/// A source that exists but is not what its disk type makes QEMU open
/// (the `file` driver wants a regular file, `host_device` a block or
/// character device, `vvfat` a directory): refused before QEMU refuses
/// it, whatever the startup policy (that is for missing media).
fn wrong_kind(disk: &Disk, path: &str, found: std::fs::FileType) -> Option<VirtError> {
    use std::os::unix::fs::FileTypeExt as _;
    let (fits, wants) = match disk.src.effective_kind() {
        StorageType::File => (found.is_file(), "a regular file"),
        StorageType::Block => (
            found.is_block_device() || found.is_char_device(),
            "a block device",
        ),
        StorageType::Dir => (found.is_dir(), "a directory"),
        _ => return None,
    };
    if fits {
        return None;
    }
    let is = if found.is_dir() {
        "a directory"
    } else if found.is_block_device() {
        "a block device"
    } else if found.is_char_device() {
        "a character device"
    } else if found.is_fifo() {
        "a FIFO"
    } else if found.is_socket() {
        "a socket"
    } else {
        "a regular file"
    };
    let kind = match disk.src.kind {
        StorageType::Volume => format!("the volume's type '{}'", disk.src.effective_kind()),
        k => format!("<disk type='{k}'>"),
    };
    Some(err(
        ErrorCode::InvalidArg,
        format!(
            "invalid argument: source '{path}' of disk '{}' is {is}, but {kind} needs {wants}",
            disk.target.dev
        ),
    ))
}

/// libvirt's "Cannot access storage file" (virStorageSourceReportBrokenChain),
/// naming the disk too, with the codes of [`storage_access_error`].
fn inaccessible(path: &str, target: &str, e: &std::io::Error) -> VirtError {
    storage_access_error(
        &format!("Cannot access storage file '{path}' of disk '{target}'"),
        e,
    )
}

/// SYSTEM_ERROR `what: <reason>` in the storage domain, with a gRPC code
/// that says what is wrong with the caller's path rather than INTERNAL.
fn storage_access_error(what: &str, e: &std::io::Error) -> VirtError {
    use std::io::ErrorKind as K;
    let reason = e.to_string();
    let reason = reason
        .find(" (os error")
        .map_or(reason.as_str(), |i| &reason[..i]);
    let v = VirtError::new(
        ErrorCode::SystemError,
        ErrorDomain::Storage,
        format!("{what}: {reason}"),
    );
    match e.kind() {
        K::NotFound => v.with_grpc_code(tonic::Code::NotFound),
        K::PermissionDenied => v.with_grpc_code(tonic::Code::PermissionDenied),
        K::InvalidFilename => v.with_grpc_code(tonic::Code::InvalidArgument),
        K::NotADirectory => v.with_grpc_code(tonic::Code::FailedPrecondition),
        _ if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            v.with_grpc_code(tonic::Code::FailedPrecondition)
        }
        _ => v,
    }
}

impl PreparedDomain {
    /// The live definition.
    pub fn def(&self) -> &DomainDef {
        &self.def
    }

    /// The command line.
    pub fn command(&self) -> &QemuCommand {
        &self.command
    }

    /// Phase 2: creates the files and sockets at the prepared paths. They
    /// are removed again when the result is dropped before the start
    /// completes.
    ///
    /// # Errors
    /// A file or socket cannot be created; everything created so far is
    /// removed.
    pub fn prepare_host(self) -> Result<PreparedHost, VirtError> {
        let mut guard = HostGuard {
            dir: None,
            sockets: Vec::new(),
            armed: true,
        };
        let dir = &self.paths.domain_dir;
        if dir.exists() {
            // Left by a QEMU that died with a daemon that was down; no
            // running domain has this id, so nothing uses it.
            std::fs::remove_dir_all(dir)
                .map_err(|e| sys(format_args!("cannot remove '{}'", dir.display()), &e))?;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| sys(format_args!("cannot create '{}'", dir.display()), &e))?;
        guard.dir = Some(dir.clone());
        let key = dir.join("master-key.aes");
        write_private(&key, &self.master_key)
            .map_err(|e| sys(format_args!("cannot write '{}'", key.display()), &e))?;

        let mut fds: Vec<(i32, OwnedFd)> = Vec::new();
        for req in &self.command.fds {
            match req {
                FdRequest::Monitor { fd } => {
                    let l = bind(&self.paths.monitor, &mut guard)?;
                    fds.push((*fd, l.into()));
                }
                FdRequest::ChardevFile { fd, path, append } => {
                    let mut o = OpenOptions::new();
                    o.write(true).create(true).mode(0o600);
                    if *append {
                        o.append(true);
                    } else {
                        o.truncate(true);
                    }
                    let f = o
                        .open(path)
                        .map_err(|e| sys(format_args!("cannot open '{path}'"), &e))?;
                    fds.push((*fd, f.into()));
                }
                FdRequest::ChardevListen { fd, path } => {
                    let p = path.as_ref().map(PathBuf::from).ok_or_else(|| {
                        err(
                            ErrorCode::ConfigUnsupported,
                            "unsupported configuration: UNIX socket character device without a path",
                        )
                    })?;
                    let l = bind(&p, &mut guard)?;
                    fds.push((*fd, l.into()));
                }
                FdRequest::Tap { fd, index } => {
                    let plan = self
                        .nets
                        .iter()
                        .find(|p| p.index == *index)
                        .ok_or_else(|| {
                            err(
                                ErrorCode::InternalError,
                                format!(
                                    "internal error: no host side planned for interface {index}"
                                ),
                            )
                        })?;
                    let (mac, virtio) = self
                        .def
                        .devices
                        .iter()
                        .filter_map(|d| match d {
                            common::domain::Device::Interface(n) => Some(n),
                            _ => None,
                        })
                        .nth(*index)
                        .map(|n| (n.mac.0, n.is_virtio()))
                        .unwrap_or_default();
                    let t = super::tap::create(&plan.tap, mac, plan.bridge.as_deref(), virtio)
                        .map_err(|e| {
                            sys(format_args!("Unable to create tap device {}", plan.tap), &e)
                        })?;
                    // The tap goes with `t` when this fails.
                    if let Some(bw) = &plan.bandwidth {
                        super::shaping::apply(&plan.tap, mac, bw)?;
                    }
                    fds.push((*fd, t.fd));
                }
                FdRequest::Vhost { .. } => {
                    return Err(err(
                        ErrorCode::ConfigUnsupported,
                        "unsupported configuration: vhost-net is not available",
                    ));
                }
            }
        }
        let log = open_log(&self.paths.log, &self.command)?;
        Ok(PreparedHost {
            dom: self,
            fds,
            log,
            guard,
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

fn bind(path: &Path, guard: &mut HostGuard) -> Result<UnixListener, VirtError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(sys(format_args!("cannot remove '{}'", path.display()), &e)),
    }
    let l = UnixListener::bind(path).map_err(|e| {
        sys(
            format_args!("Failed to bind socket to '{}'", path.display()),
            &e,
        )
    })?;
    guard.sockets.push(path.to_path_buf());
    Ok(l)
}

/// Opens QEMU's log for appending and writes libvirt's header: the time
/// and the command as a shell line.
fn open_log(path: &Path, cmd: &QemuCommand) -> Result<File, VirtError> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| sys(format_args!("cannot create '{}'", dir.display()), &e))?;
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| sys(format_args!("cannot open log '{}'", path.display()), &e))?;
    let header = format!(
        "{}: starting up\n{}\n",
        common::timefmt::timestamp(SystemTime::now()),
        command::args_to_string(cmd)
    );
    f.write_all(header.as_bytes())
        .map_err(|e| sys(format_args!("cannot write log '{}'", path.display()), &e))?;
    Ok(f)
}

/// Removes what `prepare_host` created unless disarmed.
#[derive(Debug)]
struct HostGuard {
    dir: Option<PathBuf>,
    sockets: Vec<PathBuf>,
    armed: bool,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Phase 2 done: files and sockets exist.
#[derive(Debug)]
pub struct PreparedHost {
    dom: PreparedDomain,
    fds: Vec<(i32, OwnedFd)>,
    log: File,
    guard: HostGuard,
}

impl PreparedHost {
    /// Phase 3: spawns QEMU (still paused by `-S`) as our child in its own
    /// session, with the prepared descriptors at their numbers and its
    /// output in the log. Our copies of the descriptors are closed, so
    /// QEMU's exit closes the monitor.
    ///
    /// # Errors
    /// The process cannot be spawned; everything is undone.
    pub fn launch(self) -> Result<Launched, VirtError> {
        let PreparedHost {
            dom,
            fds,
            log,
            guard,
        } = self;
        let cmd = &dom.command;
        let out = log
            .try_clone()
            .map_err(|e| sys("cannot duplicate the log descriptor", &e))?;
        let errf = log
            .try_clone()
            .map_err(|e| sys("cannot duplicate the log descriptor", &e))?;
        let mut c = std::process::Command::new(&cmd.program);
        c.args(&cmd.args)
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(errf);
        let plan: Vec<(i32, i32)> = fds.iter().map(|(n, fd)| (fd.as_raw_fd(), *n)).collect();
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made (fcntl, dup2, setsid) on descriptors this process owns.
        unsafe {
            c.pre_exec(move || place_fds(&plan));
        }
        let child = c
            .spawn()
            .map_err(|e| sys(format_args!("Cannot run QEMU binary '{}'", cmd.program), &e))?;
        drop(fds);
        let pid = i32::try_from(child.id()).map_err(|_| err(ErrorCode::InternalError, "pid"))?;
        let mut launched = Launched {
            dom,
            log,
            guard,
            child: Some(child),
            pidfd: None,
            start_time: None,
        };
        launched.pidfd =
            Some(PidFd::open(pid).map_err(|e| sys("cannot open a pidfd for QEMU", &e))?);
        launched.start_time = pidfd::start_time(pid);
        Ok(launched)
    }
}

/// In the child: moves each `(from, to)` descriptor to `to`, without
/// close-on-exec, then starts a new session so that signals meant for the
/// daemon's process group never reach QEMU.
fn place_fds(plan: &[(i32, i32)]) -> std::io::Result<()> {
    use nix::libc;
    // First out of the way (above every target), then into place, so that
    // no source is overwritten by another's target.
    let mut high = [0i32; 64];
    if plan.len() > high.len() {
        return Err(std::io::Error::other("too many descriptors"));
    }
    for (i, (from, _)) in plan.iter().enumerate() {
        // SAFETY: fcntl on an open descriptor.
        let n = unsafe { libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, 1000) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        high[i] = n;
    }
    for (i, (_, to)) in plan.iter().enumerate() {
        // SAFETY: dup2 between descriptors of this process; the target
        // loses close-on-exec.
        if unsafe { libc::dup2(high[i], *to) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: setsid has no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Phase 3 done: QEMU runs, paused. Dropped before the start completes,
/// it is killed and reaped (then the files go).
#[derive(Debug)]
pub struct Launched {
    dom: PreparedDomain,
    log: File,
    // Declared after `child`'s owner fields so the process dies before the
    // files are removed: see `Drop`.
    guard: HostGuard,
    child: Option<Child>,
    pidfd: Option<PidFd>,
    start_time: Option<u64>,
}

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `guard` (dropped after this) removes the files.
    }
}

impl Launched {
    /// The pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Phase 4: connects to QMP and negotiates, within `timeout`. QEMU
    /// exiting first is an error carrying the end of its log.
    ///
    /// # Errors
    /// QEMU exited or did not answer; it is killed and everything undone.
    pub async fn connect(mut self, timeout: Duration) -> Result<Connected, VirtError> {
        let connect = Monitor::connect(&self.dom.paths.monitor, timeout);
        let exited = async {
            match &self.pidfd {
                Some(p) => p.exited().await,
                None => std::future::pending().await,
            }
        };
        let res = tokio::select! {
            r = connect => r,
            () = exited => Err(MonitorError::Disconnected),
        };
        match res {
            Ok((monitor, events)) => Ok(Connected {
                launched: self,
                monitor,
                events,
            }),
            Err(e) => {
                // Let QEMU finish writing why it failed.
                if let Some(p) = &self.pidfd {
                    let _ = tokio::time::timeout(Duration::from_millis(500), p.exited()).await;
                }
                let tail = self.log_tail();
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                Err(err(
                    ErrorCode::InternalError,
                    match e {
                        MonitorError::Timeout { .. } => format!(
                            "internal error: QEMU did not answer on its monitor within {} ms: {tail}",
                            timeout.as_millis()
                        ),
                        _ => {
                            format!("internal error: QEMU unexpectedly closed the monitor: {tail}")
                        }
                    },
                ))
            }
        }
    }

    /// QEMU's own lines from the log since the header (the last 1 KiB).
    fn log_tail(&mut self) -> String {
        let mut f = match File::open(&self.dom.paths.log) {
            Ok(f) => f,
            Err(_) => return String::new(),
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(1024);
        let _ = f.seek(SeekFrom::Start(from));
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        let _ = &self.log;
        // Drop the header (everything up to the command line).
        let body = s
            .rsplit_once(": starting up\n")
            .map(|(_, b)| b.split_once('\n').map_or("", |(_, rest)| rest))
            .unwrap_or(&s);
        body.trim().to_owned()
    }
}

/// Phase 4 done: QMP answers; the guest has not run yet.
#[derive(Debug)]
pub struct Connected {
    launched: Launched,
    monitor: Monitor,
    events: EventReceiver,
}

/// A started domain: everything the driver keeps while it runs. Nothing
/// is undone any more when this is dropped.
#[derive(Debug)]
pub struct Started {
    /// The live definition.
    pub def: DomainDef,
    /// The id.
    pub id: i32,
    /// Its files.
    pub paths: DomainPaths,
    /// QEMU, our child.
    pub child: Child,
    /// QEMU's pidfd.
    pub pidfd: PidFd,
    /// QEMU's start time (`/proc/PID/stat`), to recognise it later.
    pub start_time: Option<u64>,
    /// The monitor.
    pub monitor: Monitor,
    /// Its events.
    pub events: EventReceiver,
}

impl Connected {
    /// The monitor, for set-up commands before the guest runs.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Phase 5: lets the guest run (`cont`) unless `paused`, and hands
    /// everything over to the caller.
    ///
    /// # Errors
    /// `cont` fails; QEMU is killed and everything undone.
    pub async fn finish(mut self, paused: bool) -> Result<Started, VirtError> {
        if !paused {
            self.monitor
                .execute(qapi::qmp::cont {})
                .await
                .map_err(|e| {
                    err(
                        ErrorCode::InternalError,
                        format!("internal error: cannot start the guest CPUs: {e}"),
                    )
                })?;
        }
        let l = &mut self.launched;
        let (Some(child), Some(pidfd)) = (l.child.take(), l.pidfd.take()) else {
            return Err(err(
                ErrorCode::InternalError,
                "internal error: lost the QEMU process",
            ));
        };
        l.guard.armed = false;
        Ok(Started {
            def: l.dom.def.clone(),
            id: l.dom.id,
            paths: l.dom.paths.clone(),
            child,
            pidfd,
            start_time: l.start_time,
            monitor: self.monitor,
            events: self.events,
        })
    }
}

/// Removes what a start created for a domain that has stopped: the
/// domain directory (key, monitor socket). The log stays.
pub fn cleanup_host(paths: &DomainPaths) {
    let _ = std::fs::remove_file(&paths.monitor);
    match std::fs::remove_dir_all(&paths.domain_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            dir = %paths.domain_dir.display(),
            "cannot remove the domain directory: {e}"
        ),
    }
}

/// Appends a line to a domain's log (stops and reasons, as libvirt does).
pub fn log_line(paths: &DomainPaths, line: &str) {
    if let Ok(mut f) = OpenOptions::new().append(true).open(&paths.log) {
        let _ = writeln!(
            f,
            "{}: {line}",
            common::timefmt::timestamp(SystemTime::now())
        );
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use ::tests::guest::create_overlay;
    use common::domain::GenericHooks;
    use common::xml::{FormatFlags, ParseFlags};

    fn def(disks: &str) -> DomainDef {
        DomainDef::parse_str(
            &format!(
                "<domain type='qemu'><name>g</name><memory>4096</memory>\
                 <os><type arch='x86_64' machine='q35'>hvm</type></os>\
                 <devices>{disks}</devices></domain>"
            ),
            ParseFlags::default(),
            &GenericHooks,
        )
        .expect("parsed")
    }

    /// `access` over a host where only `existing` exist; records what
    /// was looked at.
    fn check(d: &mut DomainDef, existing: &[&str]) -> (Result<(), VirtError>, Vec<PathBuf>) {
        let seen = RefCell::new(Vec::new());
        let access = |p: &Path| {
            seen.borrow_mut().push(p.to_path_buf());
            if existing.iter().any(|e| Path::new(e) == p) {
                // Something of the kind the disk wants, found on the host.
                Ok(std::fs::metadata(kind_like(p)).expect("stat").file_type())
            } else {
                Err(std::io::Error::from_raw_os_error(nix::libc::ENOENT))
            }
        };
        let r = check_disk_sources(d, &access, &no_images);
        (r, seen.into_inner())
    }

    /// For the tests whose images are raw: never read one.
    fn no_images(p: &Path) -> std::io::Result<Layer> {
        panic!("{} read, but a raw image is never probed", p.display())
    }

    /// A host path of the kind these tests' names suggest: `/dev/...` a
    /// device (`host_device` takes character devices too), `...dir...` a
    /// directory, else a regular file.
    fn kind_like(p: &Path) -> &'static Path {
        let s = p.to_string_lossy();
        if s.starts_with("/dev/") {
            Path::new("/dev/null")
        } else if s.contains("dir") {
            Path::new("/")
        } else {
            Path::new("/etc/hostname")
        }
    }

    fn wrong(d: &mut DomainDef, found: &'static str) -> Result<(), VirtError> {
        check_disk_sources(
            d,
            &|_| std::fs::metadata(found).map(|m| m.file_type()),
            &no_images,
        )
    }

    #[test]
    fn a_source_of_the_wrong_kind_is_refused_whatever_the_policy() {
        let mut d = def(
            "<disk type='file' device='cdrom'><source file='/dev/null' startupPolicy='optional'/>\
             <target dev='sda' bus='sata'/></disk>",
        );
        let before = d.clone();
        let e = wrong(&mut d, "/dev/null").expect_err("a char device is no file");
        assert_eq!(
            e.message,
            "invalid argument: source '/dev/null' of disk 'sda' is a character device, \
             but <disk type='file'> needs a regular file"
        );
        assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument);
        assert_eq!(d, before);

        let mut d = def(
            "<disk type='block' device='disk'><source dev='/srv/a.img'/>\
             <target dev='vda' bus='virtio'/></disk>",
        );
        let e = wrong(&mut d, "/etc/hostname").expect_err("a file is no device");
        assert!(
            e.message
                .contains("is a regular file, but <disk type='block'> needs a block device"),
            "{e}"
        );
        wrong(&mut d, "/dev/null").expect("host_device takes character devices too");

        let mut d = def("<disk type='dir' device='disk'><source dir='/srv/d'/>\
             <target dev='hda' bus='ide'/></disk>");
        let e = wrong(&mut d, "/etc/hostname").expect_err("a file is no directory");
        assert!(e.message.contains("needs a directory"), "{e}");
        wrong(&mut d, "/").expect("a directory");

        let mut d = def(VDA);
        let e = wrong(&mut d, "/").expect_err("a directory is no file");
        assert!(e.message.contains("is a directory"), "{e}");
    }

    fn targets(d: &DomainDef) -> Vec<String> {
        d.disks().map(|x| x.target.dev.clone()).collect()
    }

    const VDA: &str = "<disk type='file' device='disk'><source file='/img/a.raw'/>\
                       <target dev='vda' bus='virtio'/></disk>";

    #[test]
    fn a_missing_file_fails_naming_path_and_disk() {
        let mut d = def(VDA);
        let before = d.clone();
        let (r, seen) = check(&mut d, &[]);
        let e = r.expect_err("refused");
        assert_eq!(
            e.message,
            "Cannot access storage file '/img/a.raw' of disk 'vda': No such file or directory"
        );
        assert_eq!(e.code, ErrorCode::SystemError);
        assert_eq!(e.to_status().code(), tonic::Code::NotFound);
        assert_eq!(seen, [PathBuf::from("/img/a.raw")]);
        assert_eq!(d, before);
    }

    #[test]
    fn present_sources_pass_unchanged() {
        let mut d = def(VDA);
        let before = d.clone();
        let (r, _) = check(&mut d, &["/img/a.raw"]);
        r.expect("accepted");
        assert_eq!(d, before);
    }

    #[test]
    fn mandatory_and_requisite_fail_a_start() {
        for policy in ["mandatory", "requisite"] {
            let mut d = def(&format!(
                "<disk type='block' device='cdrom'>\
                 <source dev='/dev/nope' startupPolicy='{policy}'/>\
                 <target dev='sda' bus='sata'/></disk>"
            ));
            let (r, _) = check(&mut d, &[]);
            let e = r.expect_err(policy);
            assert!(e.message.contains("'/dev/nope' of disk 'sda'"), "{e}");
        }
    }

    #[test]
    fn unresolved_optional_volumes_are_emptied_or_left_out() {
        let cd = "<disk type='volume' device='cdrom'>\
                  <source pool='p' volume='iso' startupPolicy='optional'/>\
                  <target dev='sdb' bus='sata'/></disk>";
        let data = "<disk type='volume' device='disk'>\
                    <source pool='p' volume='data' startupPolicy='optional'/>\
                    <target dev='vdb' bus='virtio'/></disk>";
        let root = "<disk type='volume' device='disk'>\
                    <source pool='p' volume='root'/>\
                    <target dev='vda' bus='virtio'/></disk>";
        let mut d = def(&format!("{root}{cd}{data}"));
        assert!(volume_may_be_missing(&d, "p", "iso"));
        assert!(volume_may_be_missing(&d, "p", "data"));
        assert!(!volume_may_be_missing(&d, "p", "root"));
        assert!(!volume_may_be_missing(&d, "p", "nobody"), "no disk uses it");
        // One mandatory user is enough to need the volume.
        let mut shared = d.clone();
        let mandatory = data
            .replace(" startupPolicy='optional'", "")
            .replace("vdb", "vdc");
        shared.devices.push(def(&mandatory).devices.remove(0));
        assert!(!volume_may_be_missing(&shared, "p", "data"));

        let resolved = ResolvedVolume {
            pool: "p".into(),
            volume: "root".into(),
            kind: StorageType::File,
            path: "/img/root.qcow2".into(),
            format: None,
        };
        drop_unresolved_volumes(&mut d, std::slice::from_ref(&resolved)).expect("optional");
        assert_eq!(targets(&d), ["vda", "sdb"]);
        let cdrom = d.disks().find(|x| x.target.dev == "sdb").expect("cdrom");
        assert_eq!(cdrom.src, StorageSource::default());

        let mut d = def(root);
        let e = drop_unresolved_volumes(&mut d, &[]).expect_err("mandatory");
        assert!(
            e.message
                .contains("volume 'root' in pool 'p' was not resolved"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_optional_cdrom_starts_empty() {
        let mut d = def(
            "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
             <source file='/isos/gone.iso' startupPolicy='optional'/>\
             <target dev='sda' bus='sata'/><readonly/></disk>",
        );
        let (r, _) = check(&mut d, &[]);
        r.expect("started");
        let cd = d.disks().next().expect("the drive stays");
        assert!(cd.src.is_empty());
        assert_eq!(cd.src.startup_policy, None);
        assert!(cd.readonly);
        let xml = d.to_xml(FormatFlags::default());
        assert!(!xml.contains("gone.iso"), "{xml}");
        assert!(!xml.contains("<source"), "{xml}");
    }

    #[test]
    fn an_optional_disk_is_left_out() {
        let mut d = def(&format!(
            "<disk type='file' device='disk'><source file='/img/gone.raw' startupPolicy='optional'/>\
             <target dev='vdb' bus='virtio'/></disk>{VDA}"
        ));
        let (r, _) = check(&mut d, &["/img/a.raw"]);
        r.expect("started");
        assert_eq!(targets(&d), ["vda"]);
    }

    #[test]
    fn empty_and_network_sources_are_not_looked_at() {
        let mut d = def(
            "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>\
             <disk type='network' device='disk'>\
             <source protocol='nbd' name='x'><host name='h' port='1'/></source>\
             <target dev='vdb' bus='virtio'/></disk>",
        );
        let (r, seen) = check(&mut d, &[]);
        r.expect("nothing local");
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(targets(&d), ["sda", "vdb"]);
    }

    #[test]
    fn a_resolved_volume_and_relative_paths_are_checked_where_qemu_opens_them() {
        let mut d = def(
            "<disk type='volume' device='disk'><source pool='p' volume='v'/>\
             <target dev='vda' bus='virtio'/></disk>\
             <disk type='dir' device='disk'><source dir='rel/dir'/>\
             <target dev='hda' bus='ide'/></disk>",
        );
        // An unresolved volume is the storage driver's business.
        let (r, seen) = check(&mut d.clone(), &[]);
        let e = r.expect_err("relative dir missing");
        assert!(e.message.contains("'rel/dir' of disk 'hda'"), "{e}");
        assert_eq!(seen, [PathBuf::from("/rel/dir")]);
        crate::storage::apply(
            &mut d,
            &[ResolvedVolume {
                pool: "p".into(),
                volume: "v".into(),
                kind: StorageType::Block,
                path: "/dev/vg/v".into(),
                format: None,
            }],
        );
        let (r, seen) = check(&mut d, &["/rel/dir"]);
        let e = r.expect_err("volume missing");
        assert!(e.message.contains("'/dev/vg/v' of disk 'vda'"), "{e}");
        assert_eq!(seen, [PathBuf::from("/dev/vg/v")]);
    }

    #[test]
    fn an_empty_path_is_not_the_root() {
        let mut src = StorageSource {
            path: Some(String::new()),
            ..StorageSource::default()
        };
        assert_eq!(local_source(&src), Some(PathBuf::new()));
        src.kind = StorageType::Network;
        assert_eq!(local_source(&src), None);
    }

    #[test]
    fn os_reasons_get_codes_about_the_path() {
        let e = |n| inaccessible("/p", "vda", &std::io::Error::from_raw_os_error(n));
        assert_eq!(
            e(nix::libc::EACCES).to_status().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            e(nix::libc::ENOTDIR).to_status().code(),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            e(nix::libc::ELOOP).to_status().code(),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            e(nix::libc::ENAMETOOLONG).to_status().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(e(nix::libc::EIO).to_status().code(), tonic::Code::Internal);
    }

    // === backing chains, on real files ===

    /// Writes at `path` the smallest qcow2 (v2) header naming `backing`,
    /// with its format when `format` is given (else QEMU probes it).
    fn qcow2_naming(path: &Path, backing: Option<&str>, format: Option<&str>) {
        use common::storage::qcow2::{EXT_BACKING_FORMAT, MAGIC};
        let mut h = vec![0u8; 72];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        if let Some(f) = format {
            h.extend_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
            h.extend_from_slice(&u32::try_from(f.len()).expect("short").to_be_bytes());
            h.extend_from_slice(f.as_bytes());
            h.resize(h.len().div_ceil(8) * 8, 0);
        }
        h.extend_from_slice(&[0u8; 8]);
        if let Some(b) = backing {
            let at = h.len() as u64;
            h[8..16].copy_from_slice(&at.to_be_bytes());
            h[16..20].copy_from_slice(&u32::try_from(b.len()).expect("short").to_be_bytes());
            h.extend_from_slice(b.as_bytes());
        }
        std::fs::write(path, h).expect("image");
    }

    /// A domain whose disk `vda` is `path` of format `format`, with `more`
    /// inside the `<disk>`.
    fn disk_on(path: &Path, format: &str, more: &str) -> DomainDef {
        def(&format!(
            "<disk type='file' device='disk'><driver name='qemu' type='{format}'/>\
             <source file='{}'/>{more}<target dev='vda' bus='virtio'/></disk>",
            path.display()
        ))
    }

    /// Checks `d` against the host; also gives the images read.
    fn check_host(d: &mut DomainDef) -> (Result<(), VirtError>, Vec<PathBuf>) {
        let seen = RefCell::new(Vec::new());
        let read = |p: &Path| {
            seen.borrow_mut().push(p.to_path_buf());
            read_layer(p)
        };
        let r = check_disk_sources(d, &|p| std::fs::metadata(p).map(|m| m.file_type()), &read);
        (r, seen.into_inner())
    }

    fn as_user() -> String {
        format!(
            "(as uid:{}, gid:{})",
            nix::unistd::geteuid(),
            nix::unistd::getegid()
        )
    }

    /// `dir/base.raw` ← `dir/sub/mid.qcow2` (naming `../base.raw`, raw)
    /// ← `dir/sub/top.qcow2` (naming mid by its absolute path, qcow2).
    fn two_layers(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let base = dir.join("base.raw");
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).expect("sub");
        let (mid, top) = (sub.join("mid.qcow2"), sub.join("top.qcow2"));
        std::fs::write(&base, vec![0u8; 1 << 20]).expect("base");
        create_overlay(&mid, "../base.raw", "raw").expect("mid");
        create_overlay(&top, &mid.display().to_string(), "qcow2").expect("top");
        (base, mid, top)
    }

    #[test]
    fn a_whole_chain_passes_read_where_qemu_opens_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, mid, top) = two_layers(dir.path());
        let mut d = disk_on(&top, "qcow2", "");
        let before = d.clone();
        let (r, seen) = check_host(&mut d);
        r.expect("the chain is whole");
        assert_eq!(seen, [top, mid, dir.path().join("sub/../base.raw")]);
        assert_eq!(d, before);
    }

    #[test]
    fn a_missing_backing_file_fails_naming_it_and_the_image_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (base, mid, top) = two_layers(dir.path());
        std::fs::remove_file(&base).expect("rm base");
        // Relative: named as written, below the image that names it.
        let mut d = disk_on(&top, "qcow2", "");
        let before = d.clone();
        let missing = |name: &str, image: &Path| {
            format!(
                "Cannot access backing file '{name}' of storage file '{}' {}: \
                 No such file or directory",
                image.display(),
                as_user()
            )
        };
        let e = check_host(&mut d).0.expect_err("no base");
        assert_eq!(e.message, missing("../base.raw", &mid));
        assert_eq!(
            (e.code, e.domain),
            (ErrorCode::SystemError, ErrorDomain::Storage)
        );
        assert_eq!(e.to_status().code(), tonic::Code::NotFound);
        assert_eq!(d, before);
        // Absolute, named by the disk's own image.
        std::fs::remove_file(&mid).expect("rm mid");
        let e = check_host(&mut d).0.expect_err("no mid");
        assert_eq!(e.message, missing(&mid.display().to_string(), &top));
        assert_eq!(e.to_status().code(), tonic::Code::NotFound);
        // No startup policy forgives a broken chain under a present image.
        let Some(Device::Disk(disk)) = d.devices.first_mut() else {
            panic!("one disk");
        };
        disk.src.startup_policy = Some(StartupPolicy::Optional);
        let e = check_host(&mut d).0.expect_err("optional too");
        assert!(e.message.contains("Cannot access backing file"), "{e}");
        assert_eq!(targets(&d), ["vda"]);
    }

    #[test]
    fn a_volume_is_walked_as_its_format_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (base, _, top) = two_layers(dir.path());
        std::fs::remove_file(&base).expect("rm base");
        let mut d = def(
            "<disk type='volume' device='disk'><source pool='p' volume='v'/>\
             <target dev='vda' bus='virtio'/></disk>",
        );
        crate::storage::apply(
            &mut d,
            &[ResolvedVolume {
                pool: "p".into(),
                volume: "v".into(),
                kind: StorageType::File,
                path: top.display().to_string(),
                format: Some(common::domain::device::storage::ImageFormat::Qcow2),
            }],
        );
        let e = check_host(&mut d).0.expect_err("no base");
        assert!(
            e.message
                .starts_with("Cannot access backing file '../base.raw' of storage file"),
            "{e}"
        );
    }

    #[test]
    fn a_chain_that_loops_is_refused_naming_the_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);
        // An image that is its own backing file.
        qcow2_naming(&p("self.qcow2"), Some("self.qcow2"), Some("qcow2"));
        let e = check_host(&mut disk_on(&p("self.qcow2"), "qcow2", ""))
            .0
            .expect_err("loop");
        assert_eq!(
            e.message,
            format!(
                "invalid argument: the backing chain of disk 'vda' loops: backing file \
                 'self.qcow2' of storage file '{0}' is storage file '{0}' again",
                p("self.qcow2").display()
            )
        );
        assert_eq!(
            (e.code, e.domain),
            (ErrorCode::InvalidArg, ErrorDomain::Storage)
        );
        assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument);
        // a → b → a, the formats probed; and c → a link to c.
        qcow2_naming(&p("a.qcow2"), Some("b.qcow2"), None);
        qcow2_naming(&p("b.qcow2"), Some("a.qcow2"), None);
        let (r, seen) = check_host(&mut disk_on(&p("a.qcow2"), "qcow2", ""));
        let e = r.expect_err("loop");
        assert!(
            e.message.ends_with(&format!(
                "backing file 'a.qcow2' of storage file '{}' is storage file '{}' again",
                p("b.qcow2").display(),
                p("a.qcow2").display()
            )),
            "{e}"
        );
        assert_eq!(seen.len(), 3, "{seen:?}");
        qcow2_naming(&p("c.qcow2"), Some("link"), Some("qcow2"));
        std::os::unix::fs::symlink("c.qcow2", p("link")).expect("symlink");
        let e = check_host(&mut disk_on(&p("c.qcow2"), "qcow2", ""))
            .0
            .expect_err("loop through a link");
        assert!(e.message.contains("loops: backing file 'link'"), "{e}");
    }

    #[test]
    fn a_chain_deeper_than_libvirt_allows_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layer = |i: usize| dir.path().join(format!("l{i}.qcow2"));
        let last = MAX_CHAIN_LAYERS - 1;
        for i in 0..last {
            qcow2_naming(&layer(i), Some(&format!("l{}.qcow2", i + 1)), Some("qcow2"));
        }
        qcow2_naming(&layer(last), None, None);
        let (r, seen) = check_host(&mut disk_on(&layer(0), "qcow2", ""));
        r.expect("as deep as allowed");
        assert_eq!(seen.len(), MAX_CHAIN_LAYERS);
        std::fs::write(dir.path().join("raw"), [0u8; 512]).expect("raw");
        qcow2_naming(&layer(last), Some("raw"), Some("raw"));
        let e = check_host(&mut disk_on(&layer(0), "qcow2", ""))
            .0
            .expect_err("one layer more");
        assert_eq!(
            e.message,
            format!(
                "unsupported configuration: the backing chain of disk 'vda' is more than \
                 200 layers deep (at backing file 'raw' of storage file '{}')",
                layer(last).display()
            )
        );
    }

    #[test]
    fn raw_tops_and_explicit_backing_stores_are_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path().join("top.qcow2");
        qcow2_naming(&top, Some("gone.raw"), Some("raw"));
        let mut bad = disk_on(&top, "qcow2", "");
        let e = check_host(&mut bad).0.expect_err("gone");
        assert!(e.message.contains("'gone.raw'"), "{e}");
        // Raw as declared (or by default): QEMU opens no backing file.
        for mut d in [
            disk_on(&top, "raw", ""),
            def(&format!(
                "<disk type='file' device='disk'><source file='{}'/>\
                 <target dev='vda' bus='virtio'/></disk>",
                top.display()
            )),
        ] {
            let (r, seen) = check_host(&mut d);
            r.expect("raw");
            assert!(seen.is_empty(), "{seen:?}");
        }
        // An explicit <backingStore/> is trusted, as libvirt does.
        let (r, seen) = check_host(&mut disk_on(&top, "qcow2", "<backingStore/>"));
        r.expect("trusted");
        assert!(seen.is_empty(), "{seen:?}");
        // A qcow2 disk whose file is no qcow2: QEMU says so itself.
        let raw = dir.path().join("plain.raw");
        std::fs::write(&raw, [0u8; 4096]).expect("raw");
        let (r, seen) = check_host(&mut disk_on(&raw, "qcow2", ""));
        r.expect("left to QEMU");
        assert_eq!(seen, [raw]);
    }

    #[test]
    fn backing_files_that_are_no_local_path_end_the_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path().join("top.qcow2");
        for backing in [
            "nbd://server:10809/export",
            "nbd:localhost:10809",
            r#"json:{"driver":"raw","file":{"driver":"file","filename":"/gone"}}"#,
        ] {
            qcow2_naming(&top, Some(backing), Some("raw"));
            let (r, seen) = check_host(&mut disk_on(&top, "qcow2", ""));
            r.unwrap_or_else(|e| panic!("{backing}: {e}"));
            assert_eq!(seen, std::slice::from_ref(&top), "{backing}");
        }
        // A slash before the colon makes a file name.
        qcow2_naming(&top, Some("./a:b.raw"), Some("raw"));
        let e = check_host(&mut disk_on(&top, "qcow2", ""))
            .0
            .expect_err("a file");
        assert!(e.message.contains("backing file './a:b.raw'"), "{e}");
        assert!(is_local_backing("/srv/x:y") && is_local_backing("base.qcow2"));
        assert!(!is_local_backing("rbd:pool/image") && !is_local_backing("file:x"));
    }
}
