//! What an image file is: its format (by magic, as libvirt's
//! `virStorageFileProbeFormat`), virtual size, backing file and the qcow2
//! details libvirt shows (`compat`, `clusterSize`, `features`). Only reads.
//!
//! One `pread` of the first 4 KiB answers almost every image (a second
//! one for a backing name or VMDK descriptor beyond it, or the ISO 9660
//! signature at 32 KiB). virtstoraged builds its volumes on it;
//! virtqemud walks a disk's backing chain with it before QEMU runs.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::qcow2::{self, be32, be64};
use super::{EncryptionFormat, FileFeature, FileFormat};

/// How much of a file the probe reads first.
const PROBE_LEN: usize = 4096;

/// QEMU's limit on a backing file name (1023 bytes).
const MAX_BACKING_NAME: usize = 1023;

/// The most of a VMDK descriptor read for its parent's name.
const MAX_VMDK_DESCRIPTOR: usize = 64 * 1024;

/// The format facts of an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format.
    pub format: Option<FileFormat>,
    /// The virtual size, when the format has one (else the file size).
    pub capacity: Option<u64>,
    /// The backing file (as written in the image) and its format, when
    /// the image says (else QEMU probes it).
    pub backing: Option<(String, Option<FileFormat>)>,
    /// qcow2 compat level (`0.10`, `1.1`).
    pub compat: Option<String>,
    /// qcow2 cluster size.
    pub cluster_size: u64,
    /// qcow2 features (only for version 3, as libvirt).
    pub features: Option<BTreeSet<FileFeature>>,
    /// Encryption format, if the image is encrypted.
    pub encryption: Option<EncryptionFormat>,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads up to `len` bytes at `offset` (fewer at the end of the file).
///
/// # Errors
/// A read failed.
pub fn read_at(f: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The `len` bytes at `off` of the file whose first bytes are `head`:
/// from `head` when they are in it, else read.
fn bytes_at(f: &File, head: &[u8], off: u64, len: usize) -> io::Result<Vec<u8>> {
    let start = usize::try_from(off).unwrap_or(usize::MAX);
    match head.get(start..start.saturating_add(len)) {
        Some(b) => Ok(b.to_vec()),
        None => read_at(f, off, len),
    }
}

/// The backing file name stored at `off` (`len` bytes, at most QEMU's
/// limit).
fn backing_name(f: &File, head: &[u8], off: u64, len: u32) -> io::Result<String> {
    let len = usize::try_from(len).unwrap_or(0).min(MAX_BACKING_NAME);
    let name = bytes_at(f, head, off, len)?;
    Ok(String::from_utf8_lossy(&name).into_owned())
}

/// The parent a VMDK descriptor names (`parentFileNameHint="..."`).
fn vmdk_parent(descriptor: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"parentFileNameHint=\"";
    let at = descriptor.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &descriptor[at..];
    let end = rest.iter().position(|&c| c == b'"' || c == b'\n')?;
    (end > 0).then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Fills in what a qcow2 (or qcow) header `h` says.
fn qcow2_info(f: &File, head: &[u8], h: &qcow2::Header) -> io::Result<ImageInfo> {
    let mut info = ImageInfo::default();
    let fmt = if h.version == 1 {
        FileFormat::Qcow
    } else {
        FileFormat::Qcow2
    };
    info.format = Some(fmt);
    info.capacity = Some(h.size);
    if let Some((off, len)) = h.backing {
        let bfmt = h
            .backing_format
            .as_deref()
            .and_then(|s| s.parse::<FileFormat>().ok());
        info.backing = Some((backing_name(f, head, off, len)?, bfmt));
    }
    if fmt == FileFormat::Qcow2 {
        info.cluster_size = h.cluster_size;
        if h.version >= 3 {
            info.compat = Some("1.1".to_owned());
            let mut feats = BTreeSet::new();
            if h.lazy_refcounts {
                feats.insert(FileFeature::LazyRefcounts);
            }
            if h.extended_l2 {
                feats.insert(FileFeature::ExtendedL2);
            }
            info.features = Some(feats);
        } else {
            info.compat = Some("0.10".to_owned());
        }
    }
    info.encryption = match h.crypt_method {
        1 => Some(EncryptionFormat::Qcow),
        2 => Some(EncryptionFormat::Luks),
        _ => None,
    };
    Ok(info)
}

/// Probes the image in `f` (of `file_size` bytes).
///
/// # Errors
/// The file cannot be read.
pub fn probe_image(f: &File, file_size: u64) -> io::Result<ImageInfo> {
    let head = read_at(f, 0, PROBE_LEN)?;
    if let Some(h) = qcow2::parse_header(&head) {
        return qcow2_info(f, &head, &h);
    }
    let mut info = ImageInfo::default();
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"QED\0") {
        info.format = Some(FileFormat::Qed);
        info.capacity = le64(&head, 48);
        // Feature bit 0: a backing file; bit 2: it is raw (no probing).
        let features = le64(&head, 16).unwrap_or(0);
        if features & 1 != 0
            && let (Some(off), Some(len)) = (le32(&head, 56), le32(&head, 60))
            && len != 0
        {
            let bfmt = (features & 4 != 0).then_some(FileFormat::Raw);
            info.backing = Some((backing_name(f, &head, u64::from(off), len)?, bfmt));
        }
    } else if starts(b"KDMV") {
        info.format = Some(FileFormat::Vmdk);
        info.capacity = le64(&head, 12).map(|s| s.saturating_mul(512));
        // The embedded descriptor: offset and size in sectors.
        if let (Some(off), Some(len)) = (le64(&head, 28), le64(&head, 36))
            && off != 0
            && len != 0
        {
            let len = usize::try_from(len.saturating_mul(512))
                .unwrap_or(usize::MAX)
                .min(MAX_VMDK_DESCRIPTOR);
            let desc = bytes_at(f, &head, off.saturating_mul(512), len)?;
            info.backing = vmdk_parent(&desc).map(|p| (p, Some(FileFormat::Vmdk)));
        }
    } else if starts(b"# Disk DescriptorFile") {
        info.format = Some(FileFormat::Vmdk);
        info.backing = vmdk_parent(&head).map(|p| (p, Some(FileFormat::Vmdk)));
    } else if le32(&head, 0x40) == Some(0xbeda_107f) {
        info.format = Some(FileFormat::Vdi);
        info.capacity = le64(&head, 0x170);
    } else if starts(b"conectix") {
        info.format = Some(FileFormat::Vpc);
        info.capacity = be64(&head, 48);
    } else if starts(b"LUKS\xba\xbe") {
        info.format = Some(FileFormat::Luks);
        let payload = u64::from(be32(&head, 104).unwrap_or(0)) * 512;
        info.capacity = Some(file_size.saturating_sub(payload));
        info.encryption = Some(EncryptionFormat::Luks);
    } else if starts(b"Bochs Virtual HD Image") {
        info.format = Some(FileFormat::Bochs);
    } else if file_size >= 0x8006 && read_at(f, 0x8001, 5)? == b"CD001" {
        info.format = Some(FileFormat::Iso);
    } else {
        info.format = Some(FileFormat::Raw);
    }
    Ok(info)
}

/// An image opened for reading: the open file, its size (a device's
/// too) and what [`probe_image`] makes of it.
#[derive(Debug)]
pub struct OpenImage {
    /// The file, open read-only.
    pub file: File,
    /// Its size in bytes: the file's length, or where a device ends.
    pub size: u64,
    /// Its probe.
    pub info: ImageInfo,
}

/// Opens `path` (following symlinks) read-only and probes it.
///
/// # Errors
/// It cannot be opened or read.
pub fn open_image(path: &Path) -> io::Result<OpenImage> {
    use std::io::Seek as _;
    use std::os::unix::fs::MetadataExt as _;
    let file = File::open(path)?;
    let m = file.metadata()?;
    let size = if m.file_type().is_file() {
        m.size()
    } else {
        (&file).seek(io::SeekFrom::End(0))?
    };
    let info = probe_image(&file, size)?;
    Ok(OpenImage { file, size, info })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str]) -> bool {
        match Command::new("qemu-img").args(args).output() {
            Ok(o) => {
                assert!(
                    o.status.success(),
                    "qemu-img {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                true
            }
            Err(_) => {
                println!("note: no qemu-img; skipping");
                false
            }
        }
    }

    #[test]
    fn backing_files_of_qcow2_qed_and_vmdk_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(p("base.raw"), vec![0u8; 1 << 20]).expect("base");
        let raw = open_image(Path::new(&p("base.raw"))).expect("raw");
        assert_eq!(raw.info.format, Some(FileFormat::Raw));
        assert_eq!((raw.size, raw.info.backing), (1 << 20, None));
        for (fmt, want_fmt, backing_fmt) in [
            ("qcow2", FileFormat::Qcow2, Some(FileFormat::Raw)),
            ("qed", FileFormat::Qed, Some(FileFormat::Raw)),
            ("vmdk", FileFormat::Vmdk, Some(FileFormat::Vmdk)),
        ] {
            let top = p(&format!("top.{fmt}"));
            // A VMDK's parent is a VMDK.
            let (base, base_fmt) = if fmt == "vmdk" {
                if !qemu_img(&["create", "-q", "-f", "vmdk", &p("base.vmdk"), "1M"]) {
                    return;
                }
                ("base.vmdk", "vmdk")
            } else {
                ("base.raw", "raw")
            };
            if !qemu_img(&["create", "-q", "-f", fmt, "-b", base, "-F", base_fmt, &top]) {
                return;
            }
            let im = open_image(Path::new(&top)).expect("probe");
            assert_eq!(im.info.format, Some(want_fmt), "{fmt}");
            assert_eq!(im.info.capacity, Some(1 << 20), "{fmt}");
            assert_eq!(
                im.info.backing,
                Some((base.to_owned(), backing_fmt)),
                "{fmt}"
            );
        }
    }

    #[test]
    fn a_vmdk_descriptor_names_its_parent_or_none() {
        assert_eq!(
            vmdk_parent(b"CID=1\nparentCID=2\nparentFileNameHint=\"/a/b.vmdk\"\n"),
            Some("/a/b.vmdk".to_owned())
        );
        assert_eq!(vmdk_parent(b"CID=1\nparentCID=ffffffff\n"), None);
        assert_eq!(vmdk_parent(b"parentFileNameHint=\"\"\n"), None);
        assert_eq!(vmdk_parent(b"parentFileNameHint=\"cut"), None);
    }
}
