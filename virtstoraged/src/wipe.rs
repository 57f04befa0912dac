//! Wiping a volume's data (`virStorageVolWipePattern`).
//!
//! libvirt hands every algorithm but `zero` and `trim` to `scrub(1)`; here
//! the passes are written natively, with scrub's pass lists (verify passes
//! are not repeated). `zero` on a regular file punches a hole over the
//! whole file when the file system can (the result reads as zeroes and
//! frees the space, as libvirt's sparse-file path does), else writes
//! zeroes; `trim` punches the hole (files) or discards (block devices).
//! Random passes use a xorshift generator seeded from the kernel: good
//! enough to overwrite data, not meant as cryptography.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// How a wipe overwrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// 1 pass of zeroes.
    Zero,
    /// NNSA NAP-14.1-C: random, random, zeroes.
    Nnsa,
    /// DoD 5220.22-M: zeroes, ones, random.
    Dod,
    /// BSI: 0xff, 0xfe, 0xfd, 0xfb, 0xf7, 0xef, 0xdf, 0xbf, 0x7f.
    Bsi,
    /// Gutmann's 35 passes.
    Gutmann,
    /// Schneier: ones, zeroes, five random.
    Schneier,
    /// 7 random passes.
    Pfitzner7,
    /// 33 random passes.
    Pfitzner33,
    /// 1 random pass.
    Random,
    /// Discard the data.
    Trim,
}

/// One pass: a repeating byte pattern or random data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The pattern, repeated.
    Pattern(Vec<u8>),
    /// Random bytes.
    Random,
}

fn pat(b: &[u8]) -> Pass {
    Pass::Pattern(b.to_vec())
}

/// The passes of `alg` (empty for `Trim`, which discards instead).
pub fn passes(alg: Algorithm) -> Vec<Pass> {
    match alg {
        Algorithm::Zero => vec![pat(&[0])],
        Algorithm::Random => vec![Pass::Random],
        Algorithm::Nnsa => vec![Pass::Random, Pass::Random, pat(&[0])],
        Algorithm::Dod => vec![pat(&[0]), pat(&[0xff]), Pass::Random],
        Algorithm::Bsi => [0xff, 0xfe, 0xfd, 0xfb, 0xf7, 0xef, 0xdf, 0xbf, 0x7f]
            .iter()
            .map(|b| pat(&[*b]))
            .collect(),
        Algorithm::Schneier => {
            let mut v = vec![pat(&[0xff]), pat(&[0])];
            v.extend(std::iter::repeat_n(Pass::Random, 5));
            v
        }
        Algorithm::Pfitzner7 => vec![Pass::Random; 7],
        Algorithm::Pfitzner33 => vec![Pass::Random; 33],
        Algorithm::Gutmann => {
            let mut v = vec![Pass::Random; 4];
            v.extend([
                pat(&[0x55]),
                pat(&[0xaa]),
                pat(&[0x92, 0x49, 0x24]),
                pat(&[0x49, 0x24, 0x92]),
                pat(&[0x24, 0x92, 0x49]),
            ]);
            for b in 0..16u8 {
                v.push(pat(&[b * 0x11]));
            }
            v.extend([
                pat(&[0x92, 0x49, 0x24]),
                pat(&[0x49, 0x24, 0x92]),
                pat(&[0x24, 0x92, 0x49]),
                pat(&[0x6d, 0xb6, 0xdb]),
                pat(&[0xb6, 0xdb, 0x6d]),
                pat(&[0xdb, 0x6d, 0xb6]),
            ]);
            v.extend(std::iter::repeat_n(Pass::Random, 4));
            v
        }
        Algorithm::Trim => Vec::new(),
    }
}

/// A xorshift64* generator.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let mut seed = [0u8; 8];
        let from_kernel = File::open("/dev/urandom")
            .and_then(|f| f.read_exact_at(&mut seed, 0))
            .is_ok();
        let mut s = u64::from_ne_bytes(seed);
        if !from_kernel || s == 0 {
            s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9_7f4a_7c15, |d| {
                    u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
                })
                | 1;
        }
        Rng(s)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Punches a hole over `[offset, offset+len)` keeping the size.
pub fn punch_hole(f: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(off), Ok(l)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            l,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `BLKDISCARD` over `[0, len)` of a block device.
fn discard_block(f: &File, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [0, len];
    // BLKDISCARD = _IO(0x12, 119)
    const BLKDISCARD: libc::c_ulong = 0x1277;
    // SAFETY: the ioctl reads two u64 from `range`, which lives across the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKDISCARD, range.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Size of the buffer one write uses.
const CHUNK: usize = 1 << 20;

fn write_pass(f: &File, len: u64, pass: &Pass, rng: &mut Rng) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    if let Pass::Pattern(p) = pass {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = p[i % p.len()];
        }
    }
    let mut off = 0u64;
    while off < len {
        let n = usize::try_from((len - off).min(CHUNK as u64)).unwrap_or(CHUNK);
        if *pass == Pass::Random {
            rng.fill(&mut buf[..n]);
        }
        // Patterns of 3 bytes must continue across chunks.
        let start = if let Pass::Pattern(p) = pass {
            usize::try_from(off % p.len() as u64).unwrap_or(0)
        } else {
            0
        };
        if start == 0 {
            f.write_all_at(&buf[..n], off)?;
        } else {
            let mut shifted = buf[start..].to_vec();
            shifted.extend_from_slice(&buf[..start]);
            f.write_all_at(&shifted[..n], off)?;
        }
        off += n as u64;
    }
    f.sync_data()
}

/// Overwrites the first `len` bytes of `f` with `alg`. `block` says `f`
/// is a block device.
///
/// # Errors
/// A write, sync or discard failed.
pub fn wipe(f: &File, len: u64, alg: Algorithm, block: bool) -> io::Result<()> {
    match alg {
        Algorithm::Trim => {
            if block {
                discard_block(f, len)
            } else {
                punch_hole(f, 0, len)
            }
        }
        Algorithm::Zero if !block && punch_hole(f, 0, len).is_ok() => f.sync_data(),
        _ => {
            let mut rng = Rng::seeded();
            for p in passes(alg) {
                write_pass(f, len, &p, &mut rng)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_counts_follow_scrub() {
        assert_eq!(passes(Algorithm::Gutmann).len(), 35);
        assert_eq!(passes(Algorithm::Bsi).len(), 9);
        assert_eq!(passes(Algorithm::Schneier).len(), 7);
        assert_eq!(passes(Algorithm::Pfitzner33).len(), 33);
        assert_eq!(passes(Algorithm::Nnsa).len(), 3);
    }

    #[test]
    fn wipes_leave_the_last_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("v");
        std::fs::write(&p, vec![7u8; 3 * CHUNK + 5]).expect("fill");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open");
        let len = (3 * CHUNK + 5) as u64;
        wipe(&f, len, Algorithm::Zero, false).expect("zero");
        assert!(std::fs::read(&p).expect("read").iter().all(|b| *b == 0));
        wipe(&f, len, Algorithm::Bsi, false).expect("bsi");
        assert!(std::fs::read(&p).expect("read").iter().all(|b| *b == 0x7f));
        wipe(&f, len, Algorithm::Random, false).expect("random");
        let data = std::fs::read(&p).expect("read");
        assert_eq!(data.len(), 3 * CHUNK + 5);
        assert!(data.iter().filter(|b| **b == 0).count() < data.len() / 100);
        wipe(&f, len, Algorithm::Trim, false).expect("trim");
        assert!(std::fs::read(&p).expect("read").iter().all(|b| *b == 0));
    }

    #[test]
    fn three_byte_patterns_continue_across_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("v");
        std::fs::write(&p, vec![0u8; CHUNK + 7]).expect("fill");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open");
        let mut rng = Rng::seeded();
        let pass = pat(&[1, 2, 3]);
        write_pass(&f, (CHUNK + 7) as u64, &pass, &mut rng).expect("write");
        let data = std::fs::read(&p).expect("read");
        for (i, b) in data.iter().enumerate() {
            assert_eq!(*b, [1u8, 2, 3][i % 3], "at {i}");
        }
    }
}
