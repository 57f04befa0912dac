//! Pure command-line builders of the storage driver, after libvirt's
//! `storage_util.c` and `storage_backend_{fs,logical}.c`:
//!
//! - [`pool_start_command`]: the command that starts a pool (`mount` for
//!   fs/netfs pools, `vgchange -aly` for logical pools), as
//!   `virStorageBackendFileSystemMountCmd` and
//!   `virStorageBackendLogicalChangeCmd` build it;
//! - [`pool_stop_command`]: its inverse (`umount`, `vgchange -aln`);
//! - [`qemu_img_commands`]: the `qemu-img create`/`convert` command(s) of a
//!   volume, as `virStorageBackendCreateQemuImgCmdFromVol` builds them
//!   (two commands when an encrypted volume is converted: `create`, then
//!   `convert --image-opts`).
//!
//! Nothing here touches the host: the same functions feed the daemon (which
//! runs the commands) and the conformance runner (which prints them with
//! [`Command::to_libvirt_string`] and compares with libvirt's test data).

use std::fmt;

use super::common::{Encryption, EncryptionFormat};
use super::pool::{NetFsFormat, PoolDef, PoolFormat, PoolNamespace, PoolType};
use super::volume::{FileFeature, FileFormat, VolDef, VolFormat, VolType};

/// The mount options libvirt always passes on Linux.
pub const DEFAULT_MOUNT_OPTS: &str = "nodev,nosuid,noexec";

/// A command: program and arguments (no shell involved).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The program (a bare name, found on `PATH`).
    pub program: String,
    /// The arguments.
    pub args: Vec<String>,
}

impl Command {
    /// A command running `program` with no arguments yet.
    pub fn new(program: impl Into<String>) -> Command {
        Command {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Appends one argument.
    pub fn arg(&mut self, a: impl Into<String>) -> &mut Command {
        self.args.push(a.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command in libvirt's `virCommandToString` layout (without a
    /// final newline): a ` \` + newline before every option, before
    /// anything that precedes the first option, and before a trailing
    /// non-option that follows a non-option; otherwise an option's value
    /// stays on its line. Words are shell-quoted as libvirt quotes them.
    ///
    /// # Examples
    /// ```
    /// use common::storage::argv::Command;
    /// let mut c = Command::new("vgchange");
    /// c.args(["-aly", "vg0"]);
    /// assert_eq!(c.to_libvirt_string(), "vgchange \\\n-aly vg0");
    /// ```
    pub fn to_libvirt_string(&self) -> String {
        let mut s = shell_quote(&self.program);
        let args = &self.args;
        let mut seen_option = false;
        for (i, a) in args.iter().enumerate() {
            let is_opt = a.starts_with('-');
            let brk = is_opt || !seen_option || {
                let prev_is_opt = i > 0 && args[i - 1].starts_with('-');
                let later_opt = args[i + 1..].iter().any(|x| x.starts_with('-'));
                !prev_is_opt && !later_opt
            };
            if is_opt {
                seen_option = true;
            }
            s.push_str(if brk { " \\\n" } else { " " });
            s.push_str(&shell_quote(a));
        }
        s
    }
}

impl fmt::Display for Command {
    /// Program and arguments on one line, shell-quoted (for logs and
    /// error messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        Ok(())
    }
}

const SHELL_SPECIAL: &str = "\r\t\n !\"#$&'()*;<>?[\\]^`{|}~";

/// Quotes one word as libvirt's `virBufferEscapeShell` does.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_owned();
    }
    if !s.chars().any(|c| SHELL_SPECIAL.contains(c)) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Commands joined as libvirt's storage tests print a multi-step build:
/// one after the other, separated by a newline.
pub fn commands_to_libvirt_string(cmds: &[Command]) -> String {
    cmds.iter()
        .map(Command::to_libvirt_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why no command could be built. The message is libvirt's where libvirt
/// has one, prefixed with its error class.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    /// The pool type is started without a command.
    #[error("operation not supported: pool type '{0}' has no start command")]
    NoPoolCommand(PoolType),
    /// A required source item is missing.
    #[error("XML error: {0}")]
    MissingSource(&'static str),
    /// The configuration cannot be expressed (`unsupported configuration`).
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// The request contradicts itself (`invalid argument`).
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// The operation is not supported (`operation not supported`).
    #[error("operation not supported: {0}")]
    OperationUnsupported(String),
    /// Something libvirt reports as an internal error.
    #[error("internal error: {0}")]
    Internal(String),
}

// === pools ===

/// The `mount` source of an fs or netfs pool, as
/// `virStorageBackendFileSystemGetPoolSource`: `//HOST/DIR` for CIFS,
/// `HOST:DIR` for other network file systems, the device path for fs.
///
/// # Errors
/// The host, directory or device is missing.
pub fn pool_mount_source(def: &PoolDef) -> Result<String, ArgvError> {
    if def.pool_type == PoolType::NetFs {
        let host = def
            .source
            .hosts
            .first()
            .ok_or(ArgvError::MissingSource("missing source host"))?;
        let dir = def
            .source
            .dir
            .as_deref()
            .ok_or(ArgvError::MissingSource("missing source path"))?;
        if def.source.format == Some(PoolFormat::NetFs(NetFsFormat::Cifs)) {
            Ok(format!("//{}/{}", host.name, dir))
        } else {
            Ok(format!("{}:{}", host.name, dir))
        }
    } else {
        def.source
            .devices
            .first()
            .map(|d| d.path.clone())
            .ok_or(ArgvError::MissingSource("missing source device"))
    }
}

fn target_path(def: &PoolDef) -> Result<&str, ArgvError> {
    def.target
        .path
        .as_deref()
        .ok_or(ArgvError::MissingSource("missing storage pool target path"))
}

/// `-o OPTS` of a mount: libvirt's defaults, the type's own option, then
/// the `fs:mount_opts` of the definition.
fn push_mount_options(cmd: &mut Command, def: &PoolDef, provided: Option<&str>) {
    let mut opts: Vec<&str> = vec![DEFAULT_MOUNT_OPTS];
    if let Some(p) = provided {
        opts.push(p);
    }
    if let Some(PoolNamespace::FsMountOpts(extra)) = &def.namespace {
        opts.extend(extra.iter().map(String::as_str));
    }
    let joined = opts
        .iter()
        .filter(|o| !o.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    if !joined.is_empty() {
        cmd.args(["-o", joined.as_str()]);
    }
}

/// The `mount` command of an fs or netfs pool, as libvirt's
/// `virStorageBackendFileSystemMountCmd` with program `mount`.
///
/// # Errors
/// Not an fs/netfs pool, or its source or target is missing.
pub fn pool_mount_command(program: &str, def: &PoolDef) -> Result<Command, ArgvError> {
    if !matches!(def.pool_type, PoolType::Fs | PoolType::NetFs) {
        return Err(ArgvError::NoPoolCommand(def.pool_type));
    }
    let src = pool_mount_source(def)?;
    let target = target_path(def)?;
    let netfs = |f: NetFsFormat| {
        def.pool_type == PoolType::NetFs && def.source.format == Some(PoolFormat::NetFs(f))
    };
    let nfs_vers = match (&def.source.protocol_ver, def.pool_type) {
        (Some(v), PoolType::NetFs) => Some(format!("nfsvers={v}")),
        _ => None,
    };
    let mut cmd = Command::new(program);
    if netfs(NetFsFormat::Auto) {
        // `mount -t auto` does not detect NFS or CIFS; plain `mount` does.
        push_mount_options(&mut cmd, def, nfs_vers.as_deref());
        cmd.args([src.as_str(), target]);
        return Ok(cmd);
    }
    let provided = if netfs(NetFsFormat::GlusterFs) {
        Some("direct-io-mode=1".to_owned())
    } else if netfs(NetFsFormat::Cifs) {
        Some("guest".to_owned())
    } else {
        nfs_vers
    };
    push_mount_options(&mut cmd, def, provided.as_deref());
    let fmt = def.source.format.map_or("auto", PoolFormat::as_str);
    cmd.args(["-t", fmt, src.as_str(), target]);
    Ok(cmd)
}

/// `vgchange -aly NAME` (or `-aln` with `on == false`), as
/// `virStorageBackendLogicalChangeCmd`.
///
/// # Errors
/// Not a logical pool, or it has no source name.
pub fn vgchange_command(program: &str, def: &PoolDef, on: bool) -> Result<Command, ArgvError> {
    if def.pool_type != PoolType::Logical {
        return Err(ArgvError::NoPoolCommand(def.pool_type));
    }
    let name = def
        .source
        .name
        .as_deref()
        .ok_or(ArgvError::MissingSource("missing source name"))?;
    let mut cmd = Command::new(program);
    cmd.args([if on { "-aly" } else { "-aln" }, name]);
    Ok(cmd)
}

/// The command that starts `def`: `mount ...` for fs and netfs pools,
/// `vgchange -aly NAME` for logical ones (libvirt's test harness builds
/// these for `storagepoolxml2argvtest`).
///
/// # Errors
/// Other pool types have no start command; missing source items.
///
/// # Examples
/// ```
/// use common::storage::{PoolDef, ParseFlags};
/// let xml = "<pool type='logical'><name>vg0</name>\
///            <target><path>/dev/vg0</path></target></pool>";
/// let def = PoolDef::parse_str(xml, ParseFlags::default()).expect("pool");
/// let cmd = common::storage::argv::pool_start_command(&def).expect("argv");
/// assert_eq!(cmd.to_string(), "vgchange -aly vg0");
/// ```
pub fn pool_start_command(def: &PoolDef) -> Result<Command, ArgvError> {
    match def.pool_type {
        PoolType::Fs | PoolType::NetFs => pool_mount_command("mount", def),
        PoolType::Logical => vgchange_command("vgchange", def, true),
        t => Err(ArgvError::NoPoolCommand(t)),
    }
}

/// The command that stops `def`: `umount TARGET` or `vgchange -aln NAME`.
///
/// # Errors
/// Other pool types have no stop command; missing items.
pub fn pool_stop_command(def: &PoolDef) -> Result<Command, ArgvError> {
    match def.pool_type {
        PoolType::Fs | PoolType::NetFs => {
            let mut cmd = Command::new("umount");
            cmd.arg(target_path(def)?);
            Ok(cmd)
        }
        PoolType::Logical => vgchange_command("vgchange", def, false),
        t => Err(ArgvError::NoPoolCommand(t)),
    }
}

// === volumes ===

/// Which step of an encrypted conversion a command is for
/// (`virStorageVolEncryptConvertStep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertStep {
    /// A plain create or convert.
    None,
    /// Create the (encrypted) target image first.
    Create,
    /// Then convert the data into it, with `--image-opts`.
    Convert,
}

/// What a `qemu-img` build needs besides the volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuImgOptions<'a> {
    /// `VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA`.
    pub prealloc_metadata: bool,
    /// The file holding the new volume's secret (encrypted volumes).
    pub secret_path: Option<&'a str>,
    /// The file holding the input volume's secret.
    pub input_secret_path: Option<&'a str>,
}

/// libvirt's `_virStorageBackendQemuImgInfo`, resolved.
#[derive(Debug)]
struct ImgInfo<'a> {
    format: FileFormat,
    /// `-f`/`-O` type: the format name, `luks` for encrypted raw.
    img_type: &'static str,
    path: &'a str,
    size_kib: u64,
    allocation_kib: u64,
    preallocate: bool,
    compat: Option<&'a str>,
    lazy_refcounts: bool,
    extended_l2: bool,
    nocow: bool,
    cluster_size: u64,
    backing: Option<(&'a str, &'static str)>,
    input: Option<Input<'a>>,
}

#[derive(Debug)]
struct Input<'a> {
    path: &'a str,
    format: FileFormat,
    /// The `driver=` of `--image-opts` (`luks` for encrypted raw).
    driver: &'static str,
    alias: Option<String>,
}

/// The file format of a volume as `qemu-img` sees it: block volumes and
/// ISO images are raw.
fn img_format(vol: &VolDef) -> Result<FileFormat, ArgvError> {
    if vol.vol_type == Some(VolType::Block) {
        return Ok(FileFormat::Raw);
    }
    match vol.target.format {
        Some(VolFormat::File(FileFormat::Iso)) => Ok(FileFormat::Raw),
        Some(VolFormat::File(FileFormat::None)) | None => Ok(FileFormat::Raw),
        Some(VolFormat::File(f)) => Ok(f),
        Some(VolFormat::Disk(d)) => Err(ArgvError::Internal(format!(
            "unknown storage vol type {}",
            d.as_str()
        ))),
    }
}

/// Whether `enc` is LUKS, the only encryption `qemu-img` create supports.
fn check_luks(enc: &Encryption) -> Result<(), ArgvError> {
    if enc.format != EncryptionFormat::Luks {
        return Err(ArgvError::Unsupported(format!(
            "unsupported volume encryption format {}",
            encryption_format_number(enc.format)
        )));
    }
    Ok(())
}

/// libvirt's `virStorageEncryptionFormatType` number (in its messages).
fn encryption_format_number(f: EncryptionFormat) -> u32 {
    match f {
        EncryptionFormat::Default => 0,
        EncryptionFormat::Qcow => 1,
        EncryptionFormat::Luks => 2,
        EncryptionFormat::Luks2 => 3,
        EncryptionFormat::LuksAny => 4,
    }
}

fn escape_comma(s: &str) -> String {
    s.replace(',', ",,")
}

/// `storageBackendCreateQemuImgSecretOpts`: the encryption options.
fn secret_opts(out: &mut Vec<String>, format: FileFormat, enc: &Encryption, alias: &str) {
    let prefix = if format == FileFormat::Raw {
        ""
    } else {
        "encrypt."
    };
    if format == FileFormat::Qcow2 {
        out.push(format!("{prefix}format=luks"));
    }
    out.push(format!("{prefix}key-secret={alias}"));
    let Some(c) = &enc.cipher else { return };
    out.push(format!(
        "{prefix}cipher-alg={}-{}",
        escape_comma(&c.name),
        c.size
    ));
    if let Some(m) = &c.mode {
        out.push(format!("{prefix}cipher-mode={}", escape_comma(m)));
    }
    if let Some(h) = &c.hash {
        out.push(format!("{prefix}hash-alg={}", escape_comma(h)));
    }
    let Some(iv) = &enc.ivgen else { return };
    out.push(format!("{prefix}ivgen-alg={}", escape_comma(&iv.name)));
    if let Some(h) = &iv.hash {
        out.push(format!("{prefix}ivgen-hash-alg={}", escape_comma(h)));
    }
}

/// `storageBackendCreateQemuImgOpts`: the `-o` value, or `None`.
fn create_opts(
    info: &ImgInfo<'_>,
    enc: Option<(&Encryption, &str)>,
) -> Result<Option<String>, ArgvError> {
    let mut o: Vec<String> = Vec::new();
    if let Some((_, fmt)) = info.backing {
        o.push(format!("backing_fmt={fmt}"));
    }
    if let Some((enc, alias)) = enc {
        secret_opts(&mut o, info.format, enc, alias);
    }
    if info.preallocate {
        if info.size_kib > info.allocation_kib {
            o.push("preallocation=metadata".to_owned());
        } else {
            o.push("preallocation=falloc".to_owned());
        }
    }
    if info.nocow {
        o.push("nocow=on".to_owned());
    }
    if let Some(c) = info.compat {
        o.push(format!("compat={c}"));
    } else if info.format == FileFormat::Qcow2 {
        o.push("compat=1.1".to_owned());
    }
    if info.cluster_size > 0 {
        o.push(format!("cluster_size={}", info.cluster_size));
    }
    if info.format == FileFormat::Qcow2 {
        if info.lazy_refcounts {
            if info.compat == Some("0.10") {
                return Err(ArgvError::Unsupported(
                    "lazy_refcounts not supported with compat level 0.10".to_owned(),
                ));
            }
            o.push("lazy_refcounts".to_owned());
        }
        if info.extended_l2 {
            if info.compat == Some("0.10") {
                return Err(ArgvError::Unsupported(
                    "extended_l2 not supported with compat level 0.10".to_owned(),
                ));
            }
            o.push("extended_l2=on".to_owned());
        }
    }
    Ok((!o.is_empty()).then(|| o.join(",")))
}

/// `--object secret,id=ALIAS,file=PATH`.
fn push_secret_object(cmd: &mut Command, alias: &str, file: &str) {
    cmd.args([
        "--object".to_owned(),
        format!("secret,id={alias},file={}", escape_comma(file)),
    ]);
}

/// `driver=D,file.filename=P[,<prefix>key-secret=A]` of `--image-opts`.
fn image_opts(driver: &str, path: &str, alias: Option<&str>) -> String {
    let mut s = format!("driver={driver},file.filename={}", escape_comma(path));
    if let Some(a) = alias {
        let prefix = if driver == "qcow2" { "encrypt." } else { "" };
        s.push_str(&format!(",{prefix}key-secret={a}"));
    }
    s
}

/// The `qemu-img` command of one step of creating `vol` (optionally from
/// `input`), as libvirt's `virStorageBackendCreateQemuImgCmdFromVol`.
/// `vol.vol_type` says whether the target is a file or a block device
/// (block targets are written raw); the paths are the volumes'
/// `target.path`.
///
/// # Errors
/// What libvirt refuses: unknown formats, encryption other than LUKS,
/// options of qcow2 on other formats, lazy refcounts with compat 0.10,
/// metadata preallocation with a backing store or without qcow2, a
/// backing store on a raw volume, a missing path or secret.
pub fn qemu_img_command(
    vol: &VolDef,
    input: Option<&VolDef>,
    opts: &QemuImgOptions<'_>,
    step: ConvertStep,
) -> Result<Command, ArgvError> {
    let format = img_format(vol)?;
    let path = vol
        .target
        .path
        .as_deref()
        .ok_or_else(|| ArgvError::InvalidArg("missing volume target path".to_owned()))?;
    let features = vol.target.features.as_ref();
    let has = |f: FileFeature| features.is_some_and(|s| s.contains(&f));
    let mut info = ImgInfo {
        format,
        img_type: format.as_str(),
        path,
        size_kib: vol.capacity.div_ceil(1024),
        allocation_kib: vol.allocation.div_ceil(1024),
        preallocate: opts.prealloc_metadata,
        compat: vol.target.compat.as_deref(),
        lazy_refcounts: has(FileFeature::LazyRefcounts),
        extended_l2: has(FileFeature::ExtendedL2),
        nocow: vol.target.nocow,
        cluster_size: vol.target.cluster_size,
        backing: None,
        input: None,
    };
    if info.preallocate && format != FileFormat::Qcow2 {
        return Err(ArgvError::OperationUnsupported(
            "metadata preallocation only available with qcow2".to_owned(),
        ));
    }
    if info.compat.is_some() && format != FileFormat::Qcow2 {
        return Err(ArgvError::Unsupported(
            "compatibility option only available with qcow2".to_owned(),
        ));
    }
    if features.is_some_and(|f| !f.is_empty()) && format != FileFormat::Qcow2 {
        return Err(ArgvError::Unsupported(
            "format features only available with qcow2".to_owned(),
        ));
    }
    let enc = vol.target.encryption.as_ref();
    if let Some(e) = enc {
        match format {
            FileFormat::Raw => {
                check_luks(e)?;
                info.img_type = "luks";
            }
            FileFormat::Qcow2 => check_luks(e)?,
            other => {
                return Err(ArgvError::Unsupported(format!(
                    "volume encryption unsupported with format {}",
                    other.as_str()
                )));
            }
        }
        if e.secrets.len() > 1 {
            return Err(ArgvError::Unsupported(
                "too many secrets for luks encryption".to_owned(),
            ));
        }
        if e.secrets.is_empty() {
            return Err(ArgvError::Unsupported(
                "no secret provided for luks encryption".to_owned(),
            ));
        }
    }
    let input_enc = input.and_then(|i| i.target.encryption.as_ref());
    if let Some(inp) = input {
        let ipath =
            inp.target.path.as_deref().ok_or_else(|| {
                ArgvError::InvalidArg("missing input volume target path".to_owned())
            })?;
        let iformat = img_format(inp)?;
        let driver = if iformat == FileFormat::Raw && input_enc.is_some() {
            "luks"
        } else {
            iformat.as_str()
        };
        if let Some(e) = input_enc {
            check_luks(e)?;
        }
        info.input = Some(Input {
            path: ipath,
            format: iformat,
            driver,
            alias: input_enc.map(|_| format!("{}_encrypt0", inp.name)),
        });
    }
    if let Some(b) = &vol.backing_store {
        if format == FileFormat::Raw {
            return Err(ArgvError::InvalidArg(
                "cannot set backing store for raw volume".to_owned(),
            ));
        }
        if info.preallocate {
            return Err(ArgvError::InvalidArg(
                "metadata preallocation conflicts with backing store".to_owned(),
            ));
        }
        if let Some(ib) = input.and_then(|i| i.backing_store.as_ref())
            && ib.path != b.path
        {
            return Err(ArgvError::Internal(
                "a different backing store cannot be specified.".to_owned(),
            ));
        }
        let bfmt = match b.format {
            Some(VolFormat::File(f)) if f != FileFormat::None => f.as_str(),
            _ => {
                return Err(ArgvError::Internal(
                    "unknown storage vol backing store type 0".to_owned(),
                ));
            }
        };
        info.backing = Some((b.path.as_str(), bfmt));
    }
    // The backing store is ignored when converting, and in the create step
    // of a two-step encrypted conversion.
    if info.input.is_some() || step == ConvertStep::Create {
        info.backing = None;
    }
    let alias = enc.map(|_| format!("{}_encrypt0", vol.name));
    let mut cmd = Command::new("qemu-img");
    match (step, &info.input) {
        (ConvertStep::Convert, _) => {
            cmd.args(["convert", "--image-opts", "-n", "--target-image-opts"]);
        }
        (ConvertStep::None, Some(i)) => {
            cmd.args(["convert", "-f", i.format.as_str(), "-O", info.img_type]);
        }
        _ => {
            cmd.args(["create", "-f", info.img_type]);
        }
    }
    if let Some((b, _)) = info.backing {
        cmd.args(["-b", b]);
    }
    if let Some(a) = &alias {
        let file = opts.secret_path.ok_or_else(|| {
            ArgvError::InvalidArg("path to secret data file is required".to_owned())
        })?;
        push_secret_object(&mut cmd, a, file);
    }
    if step == ConvertStep::Convert {
        let input = info
            .input
            .as_ref()
            .ok_or_else(|| ArgvError::InvalidArg("missing input volume".to_owned()))?;
        if let Some(a) = &input.alias {
            let file = opts.input_secret_path.ok_or_else(|| {
                ArgvError::InvalidArg("path to inputvol secret data file is required".to_owned())
            })?;
            push_secret_object(&mut cmd, a, file);
        }
        cmd.arg(image_opts(input.driver, input.path, input.alias.as_deref()));
        let out_driver = if enc.is_some() && format == FileFormat::Raw {
            "luks"
        } else {
            format.as_str()
        };
        cmd.arg(image_opts(out_driver, info.path, alias.as_deref()));
        return Ok(cmd);
    }
    let create_only = step == ConvertStep::Create;
    let o = create_opts(&info, enc.zip(alias.as_deref()))?;
    if let Some(o) = o {
        cmd.args(["-o".to_owned(), o]);
    }
    match &info.input {
        Some(i) if !create_only => {
            cmd.arg(i.path);
            cmd.arg(info.path);
        }
        _ => {
            cmd.arg(info.path);
            if info.size_kib > 0 || info.backing.is_none() {
                cmd.arg(format!("{}K", info.size_kib));
            }
        }
    }
    Ok(cmd)
}

/// Every `qemu-img` command creating `vol` (optionally from `input`): one,
/// or two (create, then convert) when an input is converted into or out of
/// an encrypted volume, as libvirt's `storageBackendCreateQemuImg`.
///
/// # Errors
/// See [`qemu_img_command`].
///
/// # Examples
/// ```
/// use common::storage::{PoolDef, VolDef, VolParseFlags, ParseFlags};
/// use common::storage::argv::{qemu_img_commands, QemuImgOptions};
/// let pool = PoolDef::parse_str(
///     "<pool type='dir'><name>p</name><target><path>/images</path></target></pool>",
///     ParseFlags::default(),
/// ).expect("pool");
/// let mut vol = VolDef::parse_str(
///     "<volume><name>a.qcow2</name><capacity unit='M'>1</capacity>\
///      <target><format type='qcow2'/></target></volume>",
///     &pool,
///     VolParseFlags::default(),
/// ).expect("vol");
/// vol.target.path = Some("/images/a.qcow2".to_owned());
/// let cmds = qemu_img_commands(&vol, None, &QemuImgOptions::default()).expect("argv");
/// assert_eq!(cmds[0].to_string(), "qemu-img create -f qcow2 -o compat=1.1 /images/a.qcow2 1024K");
/// ```
pub fn qemu_img_commands(
    vol: &VolDef,
    input: Option<&VolDef>,
    opts: &QemuImgOptions<'_>,
) -> Result<Vec<Command>, ArgvError> {
    let encrypted =
        vol.target.encryption.is_some() || input.is_some_and(|i| i.target.encryption.is_some());
    if input.is_some() && encrypted {
        Ok(vec![
            qemu_img_command(vol, input, opts, ConvertStep::Create)?,
            qemu_img_command(vol, input, opts, ConvertStep::Convert)?,
        ])
    } else {
        Ok(vec![qemu_img_command(vol, input, opts, ConvertStep::None)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ParseFlags, VolParseFlags};

    fn pool(xml: &str) -> PoolDef {
        PoolDef::parse_str(xml, ParseFlags::default()).expect("pool")
    }

    fn dir_pool() -> PoolDef {
        pool("<pool type='dir'><name>p</name><target><path>/i</path></target></pool>")
    }

    fn vol(xml: &str) -> VolDef {
        let mut v = VolDef::parse_str(xml, &dir_pool(), VolParseFlags::default()).expect("vol");
        v.target.path = Some(format!("/i/{}", v.name));
        v.vol_type = Some(VolType::File);
        v
    }

    #[test]
    fn layout_keeps_option_values_on_their_line() {
        let mut c = Command::new("qemu-img");
        c.args(["convert", "-f", "raw", "-O", "qcow2", "/a", "/b"]);
        assert_eq!(
            c.to_libvirt_string(),
            "qemu-img \\\nconvert \\\n-f raw \\\n-O qcow2 \\\n/a \\\n/b"
        );
        let mut c = Command::new("mount");
        c.args(["-o", "x", "h:/d", "/m"]);
        assert_eq!(c.to_libvirt_string(), "mount \\\n-o x \\\nh:/d \\\n/m");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn mount_commands() {
        let fs = pool(
            "<pool type='fs'><name>f</name><source><device path='/dev/loop0'/>\
             <format type='ext4'/></source><target><path>/mnt/f</path></target></pool>",
        );
        assert_eq!(
            pool_start_command(&fs).expect("fs").to_string(),
            "mount -o nodev,nosuid,noexec -t ext4 /dev/loop0 /mnt/f"
        );
        assert_eq!(
            pool_stop_command(&fs).expect("umount").to_string(),
            "umount /mnt/f"
        );
        let ns = pool(
            "<pool type='netfs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'>\
             <name>n</name><source><host name='h'/><dir path='/e'/><format type='nfs'/>\
             </source><target><path>/mnt/n</path></target>\
             <fs:mount_opts><fs:option name='sync'/><fs:option name='lazytime'/></fs:mount_opts>\
             </pool>",
        );
        assert_eq!(
            pool_start_command(&ns).expect("netfs").to_string(),
            "mount -o nodev,nosuid,noexec,sync,lazytime -t nfs h:/e /mnt/n"
        );
        assert!(matches!(
            pool_start_command(&dir_pool()),
            Err(ArgvError::NoPoolCommand(PoolType::Dir))
        ));
    }

    #[test]
    fn qcow2_create_options() {
        let v = vol("<volume><name>a</name><capacity>1025</capacity>\
             <target><format type='qcow2'/><compat>1.1</compat>\
             <features><lazy_refcounts/></features></target></volume>");
        let c = qemu_img_commands(&v, None, &QemuImgOptions::default()).expect("cmd");
        assert_eq!(
            c[0].to_string(),
            "qemu-img create -f qcow2 -o compat=1.1,lazy_refcounts /i/a 2K"
        );
        let raw = vol("<volume><name>r</name><capacity>1024</capacity></volume>");
        let c = qemu_img_commands(&raw, None, &QemuImgOptions::default()).expect("raw");
        assert_eq!(c[0].to_string(), "qemu-img create -f raw /i/r 1K");
        let opts = QemuImgOptions {
            prealloc_metadata: true,
            ..QemuImgOptions::default()
        };
        assert!(matches!(
            qemu_img_commands(&raw, None, &opts),
            Err(ArgvError::OperationUnsupported(_))
        ));
        let c = qemu_img_commands(&v, Some(&raw), &opts).expect("convert");
        assert_eq!(
            c[0].to_string(),
            // Allocation defaults to the capacity: fully allocated.
            "qemu-img convert -f raw -O qcow2 -o preallocation=falloc,compat=1.1,lazy_refcounts /i/r /i/a"
        );
    }
}
