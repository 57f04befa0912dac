//! Reading a qcow2 (or qcow) header: what [`super::probe`] needs to tell
//! the format, size, backing file and features of an image. Only reads;
//! virtstoraged's writer of new images builds on the constants here.
//!
//! Everything is big-endian, as the format says (QEMU's
//! `docs/interop/qcow2.txt`).

/// The qcow2 magic, `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// Header extension: backing file format name.
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;

/// What a qcow2 (or qcow) header says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The version (1 = qcow, 2, 3).
    pub version: u32,
    /// Virtual size.
    pub size: u64,
    /// Cluster size (0 for qcow).
    pub cluster_size: u64,
    /// Encryption method (0 none, 1 AES, 2 LUKS).
    pub crypt_method: u32,
    /// Lazy refcounts (v3 compatible bit 0).
    pub lazy_refcounts: bool,
    /// Extended L2 entries (v3 incompatible bit 4).
    pub extended_l2: bool,
    /// Where the backing file name is, and its length.
    pub backing: Option<(u64, u32)>,
    /// The backing format extension, if present in `buf`.
    pub backing_format: Option<String>,
}

pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the header at the start of `buf` (a prefix of the file; the
/// header extensions are read as far as `buf` goes).
pub fn parse_header(buf: &[u8]) -> Option<Header> {
    if buf.get(0..4)? != MAGIC {
        return None;
    }
    let version = be32(buf, 4)?;
    let backing_off = be64(buf, 8)?;
    let backing_len = be32(buf, 16)?;
    let backing = (backing_off != 0 && backing_len != 0).then_some((backing_off, backing_len));
    if version == 1 {
        return Some(Header {
            version,
            size: be64(buf, 24)?,
            crypt_method: be32(buf, 36).unwrap_or(0),
            backing,
            ..Header::default()
        });
    }
    let cluster_bits = be32(buf, 20)?;
    let mut h = Header {
        version,
        size: be64(buf, 24)?,
        cluster_size: if (9..=21).contains(&cluster_bits) {
            1 << cluster_bits
        } else {
            0
        },
        crypt_method: be32(buf, 32)?,
        backing,
        ..Header::default()
    };
    let mut ext_at = 72usize;
    if version >= 3 {
        let incompatible = be64(buf, 72)?;
        let compatible = be64(buf, 80)?;
        h.lazy_refcounts = compatible & 1 != 0;
        h.extended_l2 = incompatible & (1 << 4) != 0;
        ext_at = usize::try_from(be32(buf, 100)?).ok()?;
    }
    // Header extensions, up to the end marker or the end of `buf`.
    while let (Some(t), Some(len)) = (be32(buf, ext_at), be32(buf, ext_at + 4)) {
        if t == 0 {
            break;
        }
        let len = usize::try_from(len).ok()?;
        if t == EXT_BACKING_FORMAT
            && let Some(data) = buf.get(ext_at + 8..ext_at + 8 + len)
        {
            h.backing_format = Some(String::from_utf8_lossy(data).into_owned());
        }
        ext_at += 8 + len.div_ceil(8) * 8;
    }
    Some(h)
}
