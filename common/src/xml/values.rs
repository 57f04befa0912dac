//! Value types and number readers every model shares, with libvirt's
//! semantics: UUIDs (`virUUIDParse`/`virUUIDFormat`/`virUUIDGenerate`),
//! MAC addresses (`virMacAddrParse`/`virMacAddrFormat`), C-style integers
//! (`virStrToLong_*`) and scaled sizes (`virScaleInteger`).
//!
//! Randomness is the caller's: [`Uuid::generate_from`] and
//! [`MacAddr::generate_from`] take a filler (the domain passes its
//! `DomainDefHooks::random_bytes`, so tests get libvirt's mocked bytes);
//! [`Uuid::generate`] uses [`os_random`].

use std::fmt;
use std::str::FromStr;

// === randomness ===

/// Fills `buf` from the kernel's random source (`getrandom(2)`, one system
/// call instead of opening `/dev/urandom`); falls back to a clock and
/// counter mix if the kernel refuses.
pub fn os_random(buf: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
            }
            Err(_) => break,
        }
    }
    if filled == buf.len() {
        return;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_u128(nanos);
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

// === UUID ===

/// A 16-byte UUID, formatted lowercase `8-4-4-4-12` (`virUUIDFormat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses as libvirt's `virUUIDParse`: 32 hex digits in pairs, `-` and
    /// spaces allowed anywhere between pairs, ASCII white space
    /// (`g_ascii_isspace`: space, tab, newline, form feed, carriage return;
    /// not vertical tab) around. No braces, no `urn:uuid:` prefix.
    pub fn parse(s: &str) -> Option<Uuid> {
        let b = s
            .trim_start_matches(|c: char| c.is_ascii_whitespace())
            .as_bytes();
        let mut out = [0u8; 16];
        let mut i = 0;
        let mut pos = 0;
        while i < 16 {
            let c = *b.get(pos)?;
            if c == b'-' || c == b' ' {
                pos += 1;
                continue;
            }
            let hi = char::from(c).to_digit(16)?;
            let lo = char::from(*b.get(pos + 1)?).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
            i += 1;
            pos += 2;
        }
        b.get(pos..)?
            .iter()
            .all(u8::is_ascii_whitespace)
            .then_some(Uuid(out))
    }

    /// A random (version 4) UUID from the kernel's random source.
    pub fn generate() -> Uuid {
        Uuid::generate_from(os_random)
    }

    /// A random (version 4) UUID, as `virUUIDGenerate`, with 16 bytes from
    /// `fill` (one request).
    pub fn generate_from(fill: impl FnOnce(&mut [u8])) -> Uuid {
        let mut b = [0u8; 16];
        fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }
}

impl FromStr for Uuid {
    type Err = ();

    /// [`Uuid::parse`].
    fn from_str(s: &str) -> Result<Uuid, ()> {
        Uuid::parse(s).ok_or(())
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

// === MAC address ===

/// An Ethernet MAC address, formatted lowercase `xx:xx:xx:xx:xx:xx`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

/// libvirt's default prefix for generated addresses (QEMU's `52:54:00`).
pub const MAC_PREFIX_DEFAULT: [u8; 3] = [0x52, 0x54, 0x00];

impl MacAddr {
    /// Parses as libvirt's `virMacAddrParse`: six groups of one or two hex
    /// digits separated by `:`; anything after the last group must be a
    /// space or an ASCII control character. (libvirt compares a signed
    /// `char`, so on x86 it also lets non-ASCII bytes through there; we
    /// do not.)
    pub fn parse(s: &str) -> Option<MacAddr> {
        let b = s.as_bytes();
        let mut out = [0u8; 6];
        let mut pos = 0;
        for (i, byte) in out.iter_mut().enumerate() {
            let start = pos;
            while pos < b.len() && pos - start < 3 && b[pos].is_ascii_hexdigit() {
                pos += 1;
            }
            let n = pos - start;
            if n == 0 || n > 2 {
                return None;
            }
            *byte = u8::from_str_radix(s.get(start..pos)?, 16).ok()?;
            if i == 5 {
                return match b.get(pos) {
                    None => Some(MacAddr(out)),
                    Some(c) if *c <= b' ' => Some(MacAddr(out)),
                    Some(_) => None,
                };
            }
            if b.get(pos) != Some(&b':') {
                return None;
            }
            pos += 1;
        }
        None
    }

    /// Whether the group (multicast) bit is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// All zeroes.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// A random address with [`MAC_PREFIX_DEFAULT`], as `virMacAddrGenerate`:
    /// each of the last three bytes is `virRandomBits(8)`, the low byte of
    /// one 8-byte request to `fill`.
    pub fn generate_from(mut fill: impl FnMut(&mut [u8])) -> MacAddr {
        let p = MAC_PREFIX_DEFAULT;
        let mut m = [p[0], p[1], p[2], 0, 0, 0];
        for b in &mut m[3..] {
            let mut r = [0u8; 8];
            fill(&mut r);
            *b = r[0];
        }
        MacAddr(m)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

// === C-style integers ===

/// C `isspace` in the "C" locale (what `strtol` skips).
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// The result of a `strtol`/`strtoul` scan: sign, magnitude, overflow.
#[derive(Clone, Copy, Debug)]
struct CNum {
    neg: bool,
    mag: u64,
    overflow: bool,
}

/// The core of C's `strtol`/`strtoul` with libvirt's `end_ptr == NULL`
/// rule: leading blanks and a sign are accepted, the whole rest must be
/// digits of `base` (0 = auto: `0x` hex, leading `0` octal, else decimal;
/// 16 also accepts `0x`).
fn c_strto(s: &str, base: u32) -> Option<CNum> {
    let t = s.trim_start_matches(is_c_space);
    let (neg, t) = if let Some(r) = t.strip_prefix('-') {
        (true, r)
    } else if let Some(r) = t.strip_prefix('+') {
        (false, r)
    } else {
        (false, t)
    };
    let mut base = base;
    let mut digits = t;
    let hex = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .filter(|r| r.chars().next().is_some_and(|c| c.is_ascii_hexdigit()));
    if (base == 16 || base == 0)
        && let Some(r) = hex
    {
        digits = r;
        base = 16;
    } else if base == 0 {
        base = if digits.starts_with('0') { 8 } else { 10 };
    }
    if digits.is_empty() {
        return None;
    }
    let mut mag: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let d = c.to_digit(base)?;
        match mag
            .checked_mul(u64::from(base))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => mag = m,
            None => overflow = true,
        }
    }
    Some(CNum { neg, mag, overflow })
}

/// `virStrToLong_ll`: a signed 64-bit number.
pub fn str_to_i64(s: &str, base: u32) -> Option<i64> {
    let n = c_strto(s, base)?;
    if n.overflow {
        return None;
    }
    let v = i128::from(n.mag);
    i64::try_from(if n.neg { -v } else { v }).ok()
}

/// `virStrToLong_i`: a signed 32-bit number.
pub fn str_to_i32(s: &str, base: u32) -> Option<i32> {
    str_to_i64(s, base).and_then(|v| i32::try_from(v).ok())
}

/// `virStrToLong_ui`: an unsigned 32-bit number, where `-N` wraps (so
/// `-1` is `UINT_MAX`) as libvirt allows.
pub fn str_to_u32(s: &str, base: u32) -> Option<u32> {
    let n = c_strto(s, base)?;
    if n.overflow {
        return None;
    }
    let v = u32::try_from(n.mag).ok()?;
    Some(if n.neg { v.wrapping_neg() } else { v })
}

/// `virStrToLong_uip`: an unsigned 32-bit number, no `-` sign allowed.
pub fn str_to_u32p(s: &str, base: u32) -> Option<u32> {
    str_to_u64p(s, base).and_then(|v| u32::try_from(v).ok())
}

/// `virStrToLong_ullp`: an unsigned 64-bit number, no `-` sign allowed.
pub fn str_to_u64p(s: &str, base: u32) -> Option<u64> {
    let n = c_strto(s, base)?;
    if n.overflow || n.neg {
        return None;
    }
    Some(n.mag)
}

// === scaled sizes ===

/// `LLONG_MAX`: the usual cap of a size in bytes (`off_t` is signed).
pub const LLONG_MAX: u64 = 0x7fff_ffff_ffff_ffff;

/// Multiplier of a libvirt size unit: `b`/`byte`/`bytes` = 1; `k`, `KiB`
/// = 1024; `KB` = 1000; and so on with `M`, `G`, `T`, `P`, `E` (case
/// ignored). An empty unit means `default`; `None` if the unit is unknown.
pub fn unit_scale(unit: &str, default: u64) -> Option<u64> {
    if unit.is_empty() {
        return Some(default);
    }
    let lower = unit.to_ascii_lowercase();
    if matches!(lower.as_str(), "b" | "byte" | "bytes") {
        return Some(1);
    }
    let b = lower.as_bytes();
    let base: u64 = if b.len() == 1 || &b[1..] == b"ib" {
        1024
    } else if b.len() == 2 && b[1] == b'b' {
        1000
    } else {
        return None;
    };
    let power = match b[0] {
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        b'p' => 5,
        b'e' => 6,
        _ => return None,
    };
    Some(base.pow(power))
}

/// Why [`scale_integer`] refused, displayed as libvirt's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleError {
    /// No unit and a zero default scale (a caller bug).
    InvalidScale(u64),
    /// The unit is not one libvirt knows.
    UnknownSuffix(String),
    /// The scaled value exceeds the limit.
    TooLarge {
        /// The value before scaling.
        value: u64,
        /// The unit as written.
        unit: String,
    },
}

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaleError::InvalidScale(s) => write!(f, "invalid scale {s}"),
            ScaleError::UnknownSuffix(u) => write!(f, "unknown suffix '{u}'"),
            ScaleError::TooLarge { value, unit } => write!(f, "value too large: {value}{unit}"),
        }
    }
}

impl std::error::Error for ScaleError {}

/// `virScaleInteger`: multiplies `value` by the unit ([`unit_scale`]; none
/// means `scale`), refusing results above `limit`.
///
/// # Errors
/// Unknown unit, zero default scale, or a result above `limit`.
pub fn scale_integer(
    value: u64,
    unit: Option<&str>,
    scale: u64,
    limit: u64,
) -> Result<u64, ScaleError> {
    let unit = unit.unwrap_or("");
    if unit.is_empty() && scale == 0 {
        return Err(ScaleError::InvalidScale(scale));
    }
    let factor = unit_scale(unit, scale).ok_or_else(|| ScaleError::UnknownSuffix(unit.into()))?;
    if value != 0 && value > limit / factor {
        return Err(ScaleError::TooLarge {
            value,
            unit: unit.into(),
        });
    }
    Ok(value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_parse_format() {
        let u = Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db1809").expect("uuid");
        assert_eq!(u.to_string(), "c7a5fdbd-edaf-9455-926a-d65c16db1809");
        let u2 = Uuid::parse(" c7a5fdbdedaf9455926ad65c16db1809 ").expect("no dashes");
        assert_eq!(u, u2);
        assert!(Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db180").is_none());
        assert!(Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db1809x").is_none());
        assert!(Uuid::parse("").is_none());
        let u = Uuid::parse(" 81ff0d90c91e674264da4a736edb9a9b ").expect("uuid");
        assert_eq!(u.to_string(), "81ff0d90-c91e-6742-64da-4a736edb9a9b");
        assert!(Uuid::parse("81ff0d90-c91e-6742-64da-4a736edb9a9").is_none());
        let u: Uuid = "70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2"
            .parse()
            .expect("uuid");
        assert_eq!(u.to_string(), "70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2");
        let v: Uuid = " 70A7EB156C34EE9CBF5769E8E5FF3FB2 ".parse().expect("uuid");
        assert_eq!(u, v);
        assert!("70a7eb15".parse::<Uuid>().is_err());
        assert!(
            "70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2x"
                .parse::<Uuid>()
                .is_err()
        );
        assert!(
            "é0a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2"
                .parse::<Uuid>()
                .is_err()
        );
        // Dashes and spaces anywhere between pairs, as libvirt.
        assert_eq!(Uuid::parse("70a7-eb156c34 ee9cbf57-69e8e5ff3f-b2"), Some(u));
        // Not between the digits of a pair; no braces; no vertical tab
        // (g_ascii_isspace); no non-ASCII space.
        assert!(Uuid::parse("7-0a7eb156c34ee9cbf5769e8e5ff3fb2").is_none());
        assert!(Uuid::parse("{70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2}").is_none());
        assert!(Uuid::parse("70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2\u{b}").is_none());
        assert!(Uuid::parse("\u{a0}70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2").is_none());
        assert!(Uuid::parse("70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2\t\n").is_some());
    }

    #[test]
    fn uuid_generate() {
        let g = Uuid::generate();
        assert_eq!(g.0[6] >> 4, 4);
        assert_ne!(g, Uuid::generate());
        let fixed = Uuid::generate_from(|b| {
            for (i, x) in b.iter_mut().enumerate() {
                *x = u8::try_from(i).unwrap_or(0);
            }
        });
        assert_eq!(fixed.to_string(), "00010203-0405-4607-8809-0a0b0c0d0e0f");
    }

    #[test]
    fn mac_parse_format() {
        let m = MacAddr::parse("52:54:0:a:BB:cc").expect("mac");
        assert_eq!(m.to_string(), "52:54:00:0a:bb:cc");
        assert!(MacAddr::parse("52:54:00:0a:bb").is_none());
        assert!(MacAddr::parse("52:54:00:0a:bb:cc:dd").is_none());
        assert!(MacAddr::parse("52:54:00:0a:bb:ccc").is_none());
        let m = MacAddr::parse("12:34:56:78:9A:BC").expect("mac");
        assert_eq!(m.to_string(), "12:34:56:78:9a:bc");
        assert!(MacAddr::parse("1:2:3:4:5:6").is_some());
        for bad in [
            "",
            "12:34:56:78:9a",
            "12:34:56:78:9a:bc:de",
            "123:4:5:6:7:8",
            "+1:2:3:4:5:6",
            " 1:2:3:4:5:6",
            "12:34:56:78:9a:bcx",
            "0x1:2:3:4:5:6",
        ] {
            assert!(MacAddr::parse(bad).is_none(), "{bad}");
        }
        // virMacAddrParse stops at a space or control character.
        assert!(MacAddr::parse("12:34:56:78:9a:bc ").is_some());
        assert!(MacAddr::parse("12:34:56:78:9a:bc\n").is_some());
        assert!(!m.is_multicast() && !m.is_zero());
        assert!(MacAddr::default().is_zero());
        let g = MacAddr::generate_from(|b| {
            for (i, x) in b.iter_mut().enumerate() {
                *x = u8::try_from(i + 7).unwrap_or(0);
            }
        });
        assert_eq!(g.to_string(), "52:54:00:07:07:07");
    }

    #[test]
    fn c_numbers() {
        assert_eq!(str_to_i32(" 42", 10), Some(42));
        assert_eq!(str_to_i32("42 ", 10), None);
        assert_eq!(str_to_i32("-7", 10), Some(-7));
        assert_eq!(str_to_i32("0700", 8), Some(0o700));
        assert_eq!(str_to_i32("8", 8), None);
        assert_eq!(str_to_i32("", 10), None);
        assert_eq!(str_to_i32("99999999999", 10), None);
        assert_eq!(str_to_u32("-1", 10), Some(u32::MAX));
        assert_eq!(str_to_u32p("-1", 10), None);
        assert_eq!(str_to_u32p("0x1f", 0), Some(31));
        assert_eq!(str_to_u32p("010", 0), Some(8));
        assert_eq!(str_to_u32p("0x", 0), None);
        assert_eq!(str_to_u32p("0x1f", 16), Some(31));
        assert_eq!(str_to_u64p("18446744073709551615", 10), Some(u64::MAX));
        assert_eq!(str_to_u64p("18446744073709551616", 10), None);
        assert_eq!(str_to_u64p("42", 10), Some(42));
        assert_eq!(str_to_u64p(" +42", 10), Some(42));
        assert_eq!(str_to_u64p("\u{b}42", 10), Some(42));
        assert_eq!(str_to_u64p("0x1f", 0), Some(31));
        assert_eq!(str_to_u64p("0x1f", 10), None);
        assert_eq!(str_to_u64p("010", 0), Some(8));
        assert_eq!(str_to_u64p("0", 0), Some(0));
        assert_eq!(str_to_u64p("08", 0), None);
        assert_eq!(str_to_u64p("-1", 10), None);
        assert_eq!(str_to_u64p("-0", 10), None);
        assert_eq!(str_to_u64p("", 10), None);
        assert_eq!(str_to_u64p("1 ", 10), None);
        assert_eq!(str_to_u64p("99999999999999999999999", 10), None);
        assert_eq!(str_to_i64("-9223372036854775808", 10), Some(i64::MIN));
        assert_eq!(str_to_i64("9223372036854775808", 10), None);
    }

    #[test]
    fn units() {
        assert_eq!(unit_scale("KiB", 1), Some(1024));
        assert_eq!(unit_scale("k", 1), Some(1024));
        assert_eq!(unit_scale("MB", 1), Some(1_000_000));
        assert_eq!(unit_scale("bytes", 1024), Some(1));
        assert_eq!(unit_scale("", 1024), Some(1024));
        assert_eq!(unit_scale("xb", 1), None);
        assert_eq!(unit_scale("é", 1), None);
        assert_eq!(unit_scale("éb", 1), None);
    }

    #[test]
    fn scaling() {
        assert_eq!(
            scale_integer(10, Some("GB"), 1, LLONG_MAX),
            Ok(10_000_000_000)
        );
        assert_eq!(scale_integer(1, Some("TiB"), 1, LLONG_MAX), Ok(1 << 40));
        assert_eq!(scale_integer(5, Some("G"), 1, LLONG_MAX), Ok(5 << 30));
        assert_eq!(scale_integer(5, Some("bytes"), 1, LLONG_MAX), Ok(5));
        assert_eq!(scale_integer(5, None, 1, LLONG_MAX), Ok(5));
        assert!(scale_integer(5, Some("x"), 1, LLONG_MAX).is_err());
        assert!(scale_integer(5, Some("kiB2"), 1, LLONG_MAX).is_err());
        assert!(scale_integer(5, Some("é"), 1, LLONG_MAX).is_err());
        assert!(scale_integer(u64::MAX, Some("k"), 1, LLONG_MAX).is_err());
        assert_eq!(scale_integer(0, Some("E"), 1, LLONG_MAX), Ok(0));
        assert_eq!(
            scale_integer(5, Some("x"), 1, LLONG_MAX)
                .expect_err("unknown")
                .to_string(),
            "unknown suffix 'x'"
        );
        assert_eq!(
            scale_integer(8, Some("EiB"), 1, LLONG_MAX)
                .expect_err("too large")
                .to_string(),
            "value too large: 8EiB"
        );
        assert_eq!(
            scale_integer(5, None, 0, LLONG_MAX)
                .expect_err("scale")
                .to_string(),
            "invalid scale 0"
        );
    }
}
