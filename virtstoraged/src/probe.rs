//! What a file volume is: the image facts [`common::storage::probe`]
//! reads (format, virtual size, backing file, the qcow2 details libvirt
//! shows), plus the file's sizes, permissions and timestamps.
//!
//! [`Stamp`] lets a pool refresh skip files that did not change.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::storage::probe::{ImageInfo, probe_image};
use common::storage::{
    Encryption, FileFormat, Perms, Timestamp, Timestamps, VolBackingStore, VolDef, VolFormat,
    VolTarget, VolType,
};

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
    let im = common::storage::open_image(path)?;
    Ok((im.info.capacity.unwrap_or(im.size), im.info.format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qcow2;
    use common::storage::FileFeature;

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
