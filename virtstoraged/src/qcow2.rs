//! A native writer of empty qcow2 images, so that creating a plain qcow2
//! volume costs a few syscalls instead of a `qemu-img` process (which
//! alone takes longer than libvirt's whole create).
//!
//! The image is what `qemu-img create -f qcow2` writes, minus optional
//! extras (the feature name table):
//!
//! ```text
//! cluster 0        header (v2: 72 bytes, v3: 112 bytes), header extensions
//!                  (backing format, end marker), backing file name
//! cluster 1..      refcount table (one entry per refcount block)
//! next clusters    refcount blocks (16-bit refcounts: 1 for every cluster
//!                  above, including the L1 table)
//! next clusters    L1 table, all zero (nothing allocated); the file ends
//!                  right after its last entry
//! ```
//!
//! Everything is big-endian, as the format says (QEMU's
//! `docs/interop/qcow2.txt`). Reading a header is
//! [`common::storage::qcow2`]'s. Supported: compat 0.10 (version 2) and 1.1
//! (version 3), any cluster size from 512 bytes to 2 MiB, lazy refcounts
//! (v3), a backing file with its format. Not supported (the caller uses
//! `qemu-img` then): encryption, extended L2 entries, preallocation,
//! external data files, compression types other than zlib.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use common::storage::qcow2::{EXT_BACKING_FORMAT, MAGIC};

/// QEMU's limit on the L1 table (`QCOW_MAX_L1_SIZE`).
const MAX_L1_BYTES: u64 = 32 * 1024 * 1024;

/// QEMU's limit on the backing file name (`1023` bytes).
const MAX_BACKING_NAME: usize = 1023;

/// Default cluster size.
pub const DEFAULT_CLUSTER_SIZE: u64 = 65536;

/// What to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The virtual size in bytes (rounded up to 512 as QEMU does).
    pub size: u64,
    /// Cluster size in bytes; 0 means [`DEFAULT_CLUSTER_SIZE`].
    pub cluster_size: u64,
    /// `false`: compat 0.10 (version 2); `true`: compat 1.1 (version 3).
    pub v3: bool,
    /// Lazy refcounts (compatible feature bit 0; version 3 only).
    pub lazy_refcounts: bool,
    /// The backing file name, as written into the image.
    pub backing_file: Option<String>,
    /// The backing file's format (`raw`, `qcow2`, ...).
    pub backing_format: Option<String>,
}

/// Why the native writer cannot make this image (the caller may fall back
/// to `qemu-img`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a power of two in 512..=2 MiB.
    #[error("Cluster size must be a power of two between 512 and 2048k, not {0}")]
    ClusterSize(u64),
    /// Lazy refcounts need version 3.
    #[error("Lazy refcounts only supported with compatibility level 1.1 and above")]
    LazyRefcountsV2,
    /// The virtual size needs a larger L1 table than QEMU allows.
    #[error("The image size {0} is too large for the cluster size")]
    TooLarge(u64),
    /// The header, extensions and backing name do not fit in cluster 0.
    #[error("The backing file name is too long ({0} bytes)")]
    BackingName(usize),
    /// Writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The largest virtual size of a qcow2 image with `cluster_size`-byte
/// clusters (0: the default), as QEMU allows it: what the largest L1 table
/// maps, each L2 table being one cluster of 8-byte entries (16-byte with
/// `extended_l2`). `None` for a cluster size QEMU refuses anyway.
pub fn max_size(cluster_size: u64, extended_l2: bool) -> Option<u64> {
    let cs = if cluster_size == 0 {
        DEFAULT_CLUSTER_SIZE
    } else {
        cluster_size
    };
    if !cs.is_power_of_two() || !(512..=2 * 1024 * 1024).contains(&cs) {
        return None;
    }
    let entry = if extended_l2 { 16 } else { 8 };
    Some((MAX_L1_BYTES / 8) * cs * (cs / entry))
}

/// Where everything goes; computed by [`Layout::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Cluster size.
    pub cluster_size: u64,
    /// `log2(cluster_size)`.
    pub cluster_bits: u32,
    /// Entries of the L1 table.
    pub l1_size: u64,
    /// Clusters of the refcount table.
    pub reftable_clusters: u64,
    /// Refcount blocks.
    pub refblocks: u64,
    /// Clusters of the L1 table.
    pub l1_clusters: u64,
}

impl Layout {
    /// The layout of `spec`.
    ///
    /// # Errors
    /// A bad cluster size, or a size too large for it.
    pub fn of(spec: &Spec) -> Result<Layout, Error> {
        let cs = if spec.cluster_size == 0 {
            DEFAULT_CLUSTER_SIZE
        } else {
            spec.cluster_size
        };
        if !cs.is_power_of_two() || !(512..=2 * 1024 * 1024).contains(&cs) {
            return Err(Error::ClusterSize(cs));
        }
        let size = spec.size.div_ceil(512) * 512;
        // One L2 table maps cs/8 clusters.
        let per_l2 = cs * (cs / 8);
        let l1_size = size.div_ceil(per_l2);
        if l1_size * 8 > MAX_L1_BYTES {
            return Err(Error::TooLarge(spec.size));
        }
        let l1_clusters = (l1_size * 8).div_ceil(cs);
        // 16-bit refcounts: cs/2 per block. The metadata must cover itself.
        let per_block = cs / 2;
        let (mut rt, mut rb) = (1u64, 1u64);
        loop {
            let total = 1 + rt + rb + l1_clusters;
            let need_rb = total.div_ceil(per_block);
            let need_rt = (need_rb * 8).div_ceil(cs);
            if need_rb == rb && need_rt == rt {
                break;
            }
            rb = need_rb.max(rb);
            rt = need_rt.max(rt);
        }
        Ok(Layout {
            cluster_size: cs,
            cluster_bits: cs.trailing_zeros(),
            l1_size,
            reftable_clusters: rt,
            refblocks: rb,
            l1_clusters,
        })
    }

    /// Offset of the refcount table.
    pub fn reftable_offset(&self) -> u64 {
        self.cluster_size
    }

    /// Offset of the first refcount block.
    pub fn refblock_offset(&self) -> u64 {
        self.cluster_size * (1 + self.reftable_clusters)
    }

    /// Offset of the L1 table.
    pub fn l1_offset(&self) -> u64 {
        self.cluster_size * (1 + self.reftable_clusters + self.refblocks)
    }

    /// Clusters in use (all with refcount 1).
    pub fn used_clusters(&self) -> u64 {
        1 + self.reftable_clusters + self.refblocks + self.l1_clusters
    }

    /// The file length: up to the end of the L1 table, as QEMU leaves it.
    pub fn file_len(&self) -> u64 {
        self.l1_offset() + self.l1_size * 8
    }
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// The bytes of cluster 0 that are not zero: header, extensions, backing
/// file name.
///
/// # Errors
/// See [`Error`].
pub fn header_bytes(spec: &Spec, layout: &Layout) -> Result<Vec<u8>, Error> {
    if spec.lazy_refcounts && !spec.v3 {
        return Err(Error::LazyRefcountsV2);
    }
    let header_len: usize = if spec.v3 { 112 } else { 72 };
    let mut h = vec![0u8; header_len];
    h[0..4].copy_from_slice(&MAGIC);
    put_u32(&mut h, 4, if spec.v3 { 3 } else { 2 });
    put_u32(&mut h, 20, layout.cluster_bits);
    put_u64(&mut h, 24, spec.size.div_ceil(512) * 512);
    // crypt_method 0; l1_size fits: at most 4 Mi entries.
    put_u32(
        &mut h,
        36,
        u32::try_from(layout.l1_size).map_err(|_| Error::TooLarge(spec.size))?,
    );
    put_u64(&mut h, 40, layout.l1_offset());
    put_u64(&mut h, 48, layout.reftable_offset());
    put_u32(
        &mut h,
        56,
        u32::try_from(layout.reftable_clusters).map_err(|_| Error::TooLarge(spec.size))?,
    );
    if spec.v3 {
        // incompatible 0, compatible (lazy refcounts), autoclear 0.
        put_u64(&mut h, 80, u64::from(spec.lazy_refcounts));
        put_u32(&mut h, 96, 4); // refcount_order: 16-bit refcounts
        put_u32(&mut h, 100, 112); // header_length (compression type zlib)
    }
    if let Some(fmt) = &spec.backing_format {
        let data = fmt.as_bytes();
        let mut ext = vec![0u8; 8 + data.len().div_ceil(8) * 8];
        put_u32(&mut ext, 0, EXT_BACKING_FORMAT);
        put_u32(
            &mut ext,
            4,
            u32::try_from(data.len()).map_err(|_| Error::BackingName(data.len()))?,
        );
        ext[8..8 + data.len()].copy_from_slice(data);
        h.extend_from_slice(&ext);
    }
    // End of extensions.
    h.extend_from_slice(&[0u8; 8]);
    if let Some(name) = &spec.backing_file {
        let len = name.len();
        if len == 0 || len > MAX_BACKING_NAME {
            return Err(Error::BackingName(len));
        }
        let at = h.len() as u64;
        put_u64(&mut h, 8, at);
        put_u32(
            &mut h,
            16,
            u32::try_from(len).map_err(|_| Error::BackingName(len))?,
        );
        h.extend_from_slice(name.as_bytes());
    }
    if h.len() as u64 > layout.cluster_size {
        return Err(Error::BackingName(
            spec.backing_file.as_ref().map_or(0, String::len),
        ));
    }
    Ok(h)
}

/// Writes an empty image of `spec` into `file` (which should be empty):
/// three small writes and a truncate, leaving the rest sparse. Returns the
/// file length.
///
/// # Errors
/// See [`Error`]; the file may then hold a partial image (the caller
/// removes it).
pub fn write(file: &File, spec: &Spec) -> Result<u64, Error> {
    let layout = Layout::of(spec)?;
    let header = header_bytes(spec, &layout)?;
    let cs = layout.cluster_size;
    // Refcount table: one entry per refcount block.
    let mut table = vec![0u8; usize::try_from(layout.refblocks * 8).map_err(io::Error::other)?];
    for i in 0..layout.refblocks {
        let at = usize::try_from(i * 8).map_err(io::Error::other)?;
        put_u64(&mut table, at, layout.refblock_offset() + i * cs);
    }
    // Refcount blocks: 1 for every used cluster.
    let used = layout.used_clusters();
    let mut blocks = vec![0u8; usize::try_from(used * 2).map_err(io::Error::other)?];
    for pair in blocks.chunks_exact_mut(2) {
        pair.copy_from_slice(&1u16.to_be_bytes());
    }
    let len = layout.file_len();
    file.set_len(len)?;
    file.write_all_at(&header, 0)?;
    file.write_all_at(&table, layout.reftable_offset())?;
    file.write_all_at(&blocks, layout.refblock_offset())?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::storage::qcow2::parse_header;

    fn spec(size: u64) -> Spec {
        Spec {
            size,
            cluster_size: 0,
            v3: true,
            lazy_refcounts: false,
            backing_file: None,
            backing_format: None,
        }
    }

    #[test]
    fn layout_matches_qemu_img_for_the_common_case() {
        // qemu-img create -f qcow2 x 5G: refcount table at 0x10000, block at
        // 0x20000, L1 (10 entries) at 0x30000, file length 0x30050.
        let l = Layout::of(&spec(5 << 30)).expect("layout");
        assert_eq!(l.cluster_bits, 16);
        assert_eq!(l.l1_size, 10);
        assert_eq!(
            (l.reftable_offset(), l.refblock_offset(), l.l1_offset()),
            (0x10000, 0x20000, 0x30000)
        );
        assert_eq!(l.file_len(), 0x30050);
        assert_eq!(l.used_clusters(), 4);
        let l = Layout::of(&spec(0)).expect("empty");
        assert_eq!(
            (l.l1_size, l.file_len(), l.used_clusters()),
            (0, 0x30000, 3)
        );
    }

    #[test]
    fn max_size_is_where_the_l1_table_ends() {
        // Measured with qemu-img resize: 2 PiB fits 64 KiB clusters, 512
        // bytes more do not; extended L2 entries halve it.
        assert_eq!(max_size(0, false), Some(1 << 51));
        assert_eq!(max_size(65536, true), Some(1 << 50));
        assert_eq!(max_size(2 << 20, false), Some(1 << 61));
        assert_eq!(max_size(1000, false), None);
        for cs in [512, 65536, 2 << 20] {
            let max = max_size(cs, false).expect("valid");
            let at = |size| {
                Layout::of(&Spec {
                    cluster_size: cs,
                    ..spec(size)
                })
            };
            assert!(at(max).is_ok(), "{cs}");
            assert!(matches!(at(max + 512), Err(Error::TooLarge(_))), "{cs}");
        }
    }

    #[test]
    fn small_clusters_need_more_metadata() {
        let s = Spec {
            cluster_size: 512,
            ..spec(5 << 30)
        };
        let l = Layout::of(&s).expect("layout");
        // 5 GiB / 32 KiB per L2 = 163840 L1 entries = 2560 clusters.
        assert_eq!(l.l1_size, 163_840);
        assert_eq!(l.l1_clusters, 2560);
        assert!(l.refblocks * 256 >= l.used_clusters());
        assert!(l.reftable_clusters * 64 >= l.refblocks);
        assert!(matches!(
            Layout::of(&Spec {
                cluster_size: 1000,
                ..spec(1)
            }),
            Err(Error::ClusterSize(1000))
        ));
    }

    #[test]
    fn header_round_trip() {
        let s = Spec {
            lazy_refcounts: true,
            backing_file: Some("/images/base.img".to_owned()),
            backing_format: Some("raw".to_owned()),
            ..spec(1 << 30)
        };
        let l = Layout::of(&s).expect("layout");
        let h = header_bytes(&s, &l).expect("header");
        let p = parse_header(&h).expect("parse");
        assert_eq!(p.version, 3);
        assert_eq!(p.size, 1 << 30);
        assert_eq!(p.cluster_size, 65536);
        assert!(p.lazy_refcounts);
        assert_eq!(p.backing_format.as_deref(), Some("raw"));
        let (off, len) = p.backing.expect("backing");
        let off = usize::try_from(off).expect("small");
        assert_eq!(&h[off..off + len as usize], b"/images/base.img");
        let v2 = Spec {
            v3: false,
            ..s.clone()
        };
        assert!(matches!(header_bytes(&v2, &l), Err(Error::LazyRefcountsV2)));
    }

    /// Every image the writer makes passes `qemu-img check` and reads back
    /// with the size, cluster size, compat level, lazy refcounts and
    /// backing file it was made with.
    #[test]
    fn qemu_img_accepts_native_images() {
        use std::process::Command;
        if Command::new("qemu-img").arg("--version").output().is_err() {
            println!("note: no qemu-img; skipping");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("base.raw");
        std::fs::write(&base, vec![0u8; 1 << 20]).expect("base");
        let mut n = 0;
        for v3 in [true, false] {
            for cluster_size in [0, 512, 4096, 2 << 20] {
                for size in [0u64, 1, 5 << 30, 1 << 40] {
                    for backing in [false, true] {
                        let lazy = v3 && size == 5 << 30;
                        if cluster_size == 512 && size == 1 << 40 {
                            continue; // more L1 entries than QEMU allows
                        }
                        let spec = Spec {
                            size,
                            cluster_size,
                            v3,
                            lazy_refcounts: lazy,
                            backing_file: backing.then(|| base.display().to_string()),
                            backing_format: backing.then(|| "raw".to_owned()),
                        };
                        n += 1;
                        let p = dir.path().join(format!("img{n}.qcow2"));
                        let f = File::create(&p).expect("create");
                        write(&f, &spec).expect("write");
                        drop(f);
                        let check = Command::new("qemu-img")
                            .args(["check", "-f", "qcow2"])
                            .arg(&p)
                            .output()
                            .expect("qemu-img check");
                        assert!(
                            check.status.success(),
                            "{spec:?}: {}{}",
                            String::from_utf8_lossy(&check.stdout),
                            String::from_utf8_lossy(&check.stderr)
                        );
                        let info = Command::new("qemu-img")
                            .args(["info", "--output=json", "-f", "qcow2"])
                            .arg(&p)
                            .output()
                            .expect("qemu-img info");
                        assert!(info.status.success(), "{spec:?}");
                        let j: serde_json::Value =
                            serde_json::from_slice(&info.stdout).expect("json");
                        assert_eq!(j["virtual-size"], size.div_ceil(512) * 512, "{spec:?}");
                        let cs = if cluster_size == 0 {
                            65536
                        } else {
                            cluster_size
                        };
                        assert_eq!(j["cluster-size"], cs, "{spec:?}");
                        let fs = &j["format-specific"]["data"];
                        assert_eq!(fs["compat"], if v3 { "1.1" } else { "0.10" }, "{spec:?}");
                        if v3 {
                            assert_eq!(fs["lazy-refcounts"], lazy, "{spec:?}");
                        }
                        if backing {
                            assert_eq!(j["backing-filename"], base.display().to_string());
                            assert_eq!(j["backing-filename-format"], "raw");
                        } else {
                            assert!(j.get("backing-filename").is_none(), "{spec:?}");
                        }
                    }
                }
            }
        }
    }
}
