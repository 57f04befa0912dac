//! What a file volume is: its format (by magic, as libvirt's
//! `virStorageFileProbeFormat`), virtual size, backing file and the qcow2
//! details libvirt shows (`compat`, `clusterSize`, `features`), plus the
//! file's sizes, permissions and timestamps.
//!
//! One `pread` of the first 4 KiB answers almost every image (a second
//! one for a backing name beyond it, or the ISO 9660 signature at 32 KiB).
//! [`Stamp`] lets a pool refresh skip files that did not change.

use std::collections::BTreeSet;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use common::storage::{
    Encryption, EncryptionFormat, FileFeature, FileFormat, Perms, Timestamp, Timestamps,
    VolBackingStore, VolDef, VolFormat, VolTarget, VolType,
};

use crate::qcow2;

/// How much of a file the probe reads first.
const PROBE_LEN: usize = 4096;

/// What identifies a file's content version: if none of these changed,
/// an earlier probe still holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    blocks: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Stamp {
    /// The stamp of `m`.
    pub fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            blocks: m.blocks(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }

    /// The stamp of a `stat` result (`fstatat`): equal to [`Stamp::of`]
    /// the `Metadata` of the same file.
    #[allow(clippy::cast_sign_loss)] // sizes and block counts are never negative
    pub fn of_stat(st: &libc::stat) -> Stamp {
        Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }
}

/// The format facts of an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format.
    pub format: Option<FileFormat>,
    /// The virtual size, when the format has one (else the file size).
    pub capacity: Option<u64>,
    /// The backing file (as written in the image) and its format.
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

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads up to `len` bytes at `offset` (fewer at the end of the file).
fn read_at(f: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
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

/// Probes the image in `f` (of `file_size` bytes).
///
/// # Errors
/// The file cannot be read.
pub fn probe_image(f: &File, file_size: u64) -> io::Result<ImageInfo> {
    let head = read_at(f, 0, PROBE_LEN)?;
    let mut info = ImageInfo::default();
    if let Some(h) = qcow2::parse_header(&head) {
        let fmt = if h.version == 1 {
            FileFormat::Qcow
        } else {
            FileFormat::Qcow2
        };
        info.format = Some(fmt);
        info.capacity = Some(h.size);
        if let Some((off, len)) = h.backing {
            let len = usize::try_from(len).unwrap_or(0).min(1023);
            let start = usize::try_from(off).unwrap_or(usize::MAX);
            let name = match head.get(start..start.saturating_add(len)) {
                Some(b) => b.to_vec(),
                None => read_at(f, off, len)?,
            };
            let bfmt = h
                .backing_format
                .as_deref()
                .and_then(|s| s.parse::<FileFormat>().ok());
            info.backing = Some((String::from_utf8_lossy(&name).into_owned(), bfmt));
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
        return Ok(info);
    }
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"QED\0") {
        info.format = Some(FileFormat::Qed);
        info.capacity = le64(&head, 48);
    } else if starts(b"KDMV") {
        info.format = Some(FileFormat::Vmdk);
        info.capacity = le64(&head, 12).map(|s| s.saturating_mul(512));
    } else if starts(b"# Disk DescriptorFile") {
        info.format = Some(FileFormat::Vmdk);
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

fn timestamp(sec: i64, nsec: i64) -> Option<Timestamp> {
    Some(Timestamp {
        sec: u64::try_from(sec).ok()?,
        nsec: u32::try_from(nsec).ok()?,
    })
}

/// The volume definition of the file at `path` named `name`, from its
/// metadata `m` (following symlinks) and, for regular files, its content.
/// Directories are `dir` volumes.
///
/// # Errors
/// The file cannot be opened or read.
pub fn file_volume(name: &str, path: &Path, m: &Metadata) -> io::Result<VolDef> {
    let path_str = path.to_string_lossy().into_owned();
    let mut vol = VolDef {
        name: name.to_owned(),
        key: Some(path_str.clone()),
        vol_type: Some(VolType::File),
        has_allocation: true,
        ..VolDef::default()
    };
    vol.target = VolTarget {
        path: Some(path_str),
        perms: Perms {
            mode: Some(m.mode() & 0o7777),
            uid: Some(m.uid()),
            gid: Some(m.gid()),
            label: None,
        },
        timestamps: Some(Timestamps {
            atime: timestamp(m.atime(), m.atime_nsec()),
            btime: None,
            ctime: timestamp(m.ctime(), m.ctime_nsec()),
            mtime: timestamp(m.mtime(), m.mtime_nsec()),
        }),
        ..VolTarget::default()
    };
    vol.allocation = m.blocks() * 512;
    if m.is_dir() {
        vol.vol_type = Some(VolType::Dir);
        vol.target.format = Some(VolFormat::File(FileFormat::Dir));
        vol.capacity = m.size();
        vol.allocation = m.size();
        return Ok(vol);
    }
    vol.physical = m.size();
    let f = File::open(path)?;
    let info = probe_image(&f, m.size())?;
    apply_info(&mut vol, &info, m.size());
    Ok(vol)
}

/// Fills `vol` from `info` (the file being `file_size` bytes long).
pub fn apply_info(vol: &mut VolDef, info: &ImageInfo, file_size: u64) {
    vol.capacity = info.capacity.unwrap_or(file_size);
    vol.target.format = info.format.map(VolFormat::File);
    vol.target.compat = info.compat.clone();
    vol.target.cluster_size = info.cluster_size;
    vol.target.features = info.features.clone();
    vol.target.encryption = info.encryption.map(|format| Encryption {
        format,
        engine: None,
        secrets: Vec::new(),
        cipher: None,
        ivgen: None,
    });
    vol.backing_store = info.backing.as_ref().map(|(p, f)| VolBackingStore {
        path: p.clone(),
        format: f.map(VolFormat::File),
        perms: Perms::default(),
    });
}

/// The virtual size and format of the image at `path` (a backing file):
/// the header's size for formats that have one, else the file or device
/// size.
///
/// # Errors
/// It cannot be opened or read.
pub fn image_size(path: &Path) -> io::Result<(u64, Option<FileFormat>)> {
    let f = File::open(path)?;
    let m = f.metadata()?;
    let size = if m.file_type().is_file() {
        m.size()
    } else {
        use std::io::Seek;
        let mut f2 = &f;
        f2.seek(io::SeekFrom::End(0))?
    };
    let info = probe_image(&f, size)?;
    Ok((info.capacity.unwrap_or(size), info.format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_of_stat_and_metadata_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), vec![1u8; 5000]).expect("file");
        std::fs::create_dir(dir.path().join("d")).expect("dir");
        let d = File::open(dir.path()).expect("open dir");
        for name in ["f", "d"] {
            let m = std::fs::metadata(dir.path().join(name)).expect("metadata");
            let st =
                nix::sys::stat::fstatat(&d, name, nix::fcntl::AtFlags::empty()).expect("fstatat");
            assert_eq!(Stamp::of(&m), Stamp::of_stat(&st), "{name}");
        }
    }

    #[test]
    fn raw_and_native_qcow2_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = dir.path().join("a.img");
        std::fs::write(&raw, vec![0u8; 8192]).expect("raw");
        let m = std::fs::metadata(&raw).expect("meta");
        let v = file_volume("a.img", &raw, &m).expect("probe");
        assert_eq!(v.target.format, Some(VolFormat::File(FileFormat::Raw)));
        assert_eq!(v.capacity, 8192);
        assert_eq!(v.key.as_deref(), raw.to_str());

        let q = dir.path().join("b.qcow2");
        let f = File::create(&q).expect("create");
        let spec = qcow2::Spec {
            size: 1 << 30,
            cluster_size: 0,
            v3: true,
            lazy_refcounts: true,
            backing_file: Some("a.img".to_owned()),
            backing_format: Some("raw".to_owned()),
        };
        qcow2::write(&f, &spec).expect("write");
        let m = std::fs::metadata(&q).expect("meta");
        let v = file_volume("b.qcow2", &q, &m).expect("probe");
        assert_eq!(v.target.format, Some(VolFormat::File(FileFormat::Qcow2)));
        assert_eq!(v.capacity, 1 << 30);
        assert_eq!(v.target.compat.as_deref(), Some("1.1"));
        assert_eq!(v.target.cluster_size, 65536);
        assert!(
            v.target
                .features
                .as_ref()
                .is_some_and(|f| f.contains(&FileFeature::LazyRefcounts))
        );
        let b = v.backing_store.expect("backing");
        assert_eq!(b.path, "a.img");
        assert_eq!(b.format, Some(VolFormat::File(FileFormat::Raw)));
        assert_eq!(
            image_size(&q).expect("size"),
            (1 << 30, Some(FileFormat::Qcow2))
        );
    }
}
