//! Low-level helpers of the storage models: C-style number parsing (the
//! semantics of libvirt's `virStrToLong_*`, `virScaleInteger`, XPath
//! `number()`), UUIDs, path sanitising, XPath-like lookups that treat an
//! empty string as absent (as `virXPathString` does), and output helpers.

use std::fmt;
use std::str::FromStr;

use crate::xml::{Child, Element, Node, XmlError};

// === numbers ===

/// C `isspace` in the "C" locale.
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
/// digits of `base` (0 = auto, 16 accepts `0x`).
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

/// `virStrToLong_uip`: an unsigned 32-bit number, no sign allowed.
pub fn str_to_u32p(s: &str, base: u32) -> Option<u32> {
    let n = c_strto(s, base)?;
    if n.overflow || n.neg {
        return None;
    }
    u32::try_from(n.mag).ok()
}

/// `virStrToLong_ullp`: an unsigned 64-bit number, no sign allowed.
pub fn str_to_u64p(s: &str, base: u32) -> Option<u64> {
    let n = c_strto(s, base)?;
    if n.overflow || n.neg {
        return None;
    }
    Some(n.mag)
}

/// `LLONG_MAX`: the largest size a volume may have (`off_t` is signed).
pub const LLONG_MAX: u64 = 0x7fff_ffff_ffff_ffff;

/// `virScaleInteger`: multiplies `value` by the unit (`k`, `KiB` = 1024,
/// `KB` = 1000, ..., `E`, `b`/`byte`/`bytes`; none means `scale`), refusing
/// results above `limit`.
///
/// # Errors
/// Unknown unit ("unknown suffix 'x'") or overflow ("value too large").
pub fn scale_integer(
    value: u64,
    unit: Option<&str>,
    scale: u64,
    limit: u64,
) -> Result<u64, String> {
    let factor = match unit {
        None | Some("") => {
            if scale == 0 {
                return Err(format!("invalid scale {scale}"));
            }
            scale
        }
        Some(u) => {
            let lower = u.to_ascii_lowercase();
            let b = lower.as_bytes();
            if lower == "b" || lower == "byte" || lower == "bytes" {
                1
            } else {
                let base: u64 = if b.len() == 1 || &b[1..] == b"ib" {
                    1024
                } else if b.len() == 2 && b[1] == b'b' {
                    1000
                } else {
                    return Err(format!("unknown suffix '{u}'"));
                };
                let exp = match b[0] {
                    b'k' => 1,
                    b'm' => 2,
                    b'g' => 3,
                    b't' => 4,
                    b'p' => 5,
                    b'e' => 6,
                    _ => return Err(format!("unknown suffix '{u}'")),
                };
                base.pow(exp)
            }
        }
    };
    if value != 0 && value > limit / factor {
        return Err(format!("value too large: {value}{}", unit.unwrap_or("")));
    }
    Ok(value * factor)
}

/// XPath `number()` of a string as libxml2 evaluates it (blanks around,
/// optional `-`, decimals, optional exponent); `NaN` when it is not a
/// number.
pub fn xpath_number(s: &str) -> f64 {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let t = s.trim_matches(blank);
    let b = t.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut ndigits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        ndigits += i - f;
    }
    if ndigits == 0 {
        return f64::NAN;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return f64::NAN;
        }
    }
    if i != b.len() {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// `virXPathLongLong("number(...)")`: an integral XPath number.
pub fn xpath_long_long(s: &str) -> Option<i64> {
    let f = xpath_number(s);
    if !f.is_finite() || !(-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&f) {
        return None;
    }
    if f.fract() != 0.0 {
        return None;
    }
    // In range and integral: the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    Some(f as i64)
}

// === UUIDs ===

/// A UUID, written in libvirt's canonical `8-4-4-4-12` lowercase form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID, as `virUUIDGenerate`.
    pub fn generate() -> Uuid {
        let mut b = random_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }
}

fn random_bytes() -> [u8; 16] {
    use std::io::Read;
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom")
        && f.read_exact(&mut b).is_ok()
    {
        return b;
    }
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    b
}

impl FromStr for Uuid {
    type Err = ();

    /// `virUUIDParse`: leading/trailing blanks, 32 hex digits, `-` or
    /// spaces allowed between digit pairs.
    fn from_str(s: &str) -> Result<Uuid, ()> {
        let b = s
            .trim_start_matches(|c: char| c.is_ascii_whitespace())
            .as_bytes();
        let mut out = [0u8; 16];
        let mut i = 0;
        let hexval = |c: u8| {
            char::from(c)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        for slot in &mut out {
            while i < b.len() && (b[i] == b'-' || b[i] == b' ') {
                i += 1;
            }
            let hi = hexval(*b.get(i).ok_or(())?).ok_or(())?;
            let lo = hexval(*b.get(i + 1).ok_or(())?).ok_or(())?;
            *slot = hi * 16 + lo;
            i += 2;
        }
        if b[i..]
            .iter()
            .all(|c| c.is_ascii_whitespace() || *c == b'\x0b')
        {
            Ok(Uuid(out))
        } else {
            Err(())
        }
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

// === paths ===

/// `virFileSanitizePath`: collapses repeated `/`, drops a trailing `/`,
/// keeps a leading `//` (POSIX), leaves URIs (`scheme://...`) alone.
pub fn sanitize_path(path: &str) -> String {
    if let Some(pos) = path.find("://") {
        let first_slash = path.find('/').unwrap_or(path.len());
        if first_slash > pos {
            return path.to_owned();
        }
    }
    let b = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    if b.len() >= 2 && b[0] == b'/' && b[1] == b'/' && b.get(2) != Some(&b'/') {
        out.extend_from_slice(b"//");
        i = 2;
    }
    while i < b.len() {
        if b[i] != b'/' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        while i < b.len() && b[i] == b'/' {
            i += 1;
        }
        if !out.is_empty() && i == b.len() {
            break;
        }
        out.push(b'/');
    }
    // Only ASCII '/' bytes were removed, so this is still UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| path.to_owned())
}

// === reading ===

/// The XPath string-value of an element: all descendant text, in
/// document order (iterative, so hostile nesting cannot overflow the
/// stack).
pub fn deep_text(el: &Element) -> String {
    let mut s = String::new();
    let mut stack: Vec<std::slice::Iter<'_, Child>> = vec![el.children.iter()];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            None => {
                stack.pop();
            }
            Some(Child::Text(t)) => s.push_str(t),
            Some(Child::Element(e)) => stack.push(e.children.iter()),
        }
    }
    s
}

/// `virXPathString("string(./NAME)")`: the text of the first child
/// `name`; `None` when absent or empty.
pub fn child_string(node: &Node<'_>, name: &str) -> Option<String> {
    node.el.child(name).map(deep_text).filter(|s| !s.is_empty())
}

/// `virXPathString("string(./NAME/@ATTR)")`: the attribute of the first
/// child `name` that has it; `None` when absent or empty.
pub fn child_attr_string(node: &Node<'_>, name: &str, attr: &str) -> Option<String> {
    node.el
        .children_named(name)
        .find_map(|c| c.attr(attr))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `virXPathString("string(./@ATTR)")`: `None` when absent or empty.
pub fn attr_string(node: &Node<'_>, attr: &str) -> Option<String> {
    node.attr(attr).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// libvirt's `VIR_ERR_XML_ERROR` style refusal at `path`.
pub fn invalid(path: impl Into<String>, msg: impl Into<String>) -> XmlError {
    XmlError::invalid(path, msg)
}

/// Resolves the namespace URI of element `el` (its prefix, or the default
/// namespace), looking at the element itself, then its `ancestors` from
/// the nearest outwards.
pub fn namespace_of<'a>(el: &'a Element, ancestors: &[&'a Element]) -> Option<&'a str> {
    let decl = match el.name.split_once(':') {
        Some((prefix, _)) => format!("xmlns:{prefix}"),
        None => "xmlns".to_owned(),
    };
    std::iter::once(el)
        .chain(ancestors.iter().copied())
        .find_map(|e| e.attr(&decl))
        .filter(|s| !s.is_empty())
}

/// The local part of a qualified name.
pub fn local_name(name: &str) -> &str {
    name.split_once(':').map_or(name, |(_, l)| l)
}

// === writing ===

/// An element written as libvirt's literal open/close pair when it has no
/// children (`<source>` newline `</source>`), at `indent` levels.
pub fn open_close(mut el: Element, indent: usize) -> Element {
    if el.children.is_empty() {
        el.children
            .push(Child::Text(format!("\n{}", "  ".repeat(indent))));
    }
    el
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(str_to_u64p("18446744073709551615", 10), Some(u64::MAX));
        assert_eq!(str_to_u64p("18446744073709551616", 10), None);
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
    }

    #[test]
    fn xpath_numbers() {
        assert_eq!(xpath_long_long(" 0744 "), Some(744));
        assert_eq!(xpath_long_long("-1"), Some(-1));
        assert_eq!(xpath_long_long("1.0"), Some(1));
        assert_eq!(xpath_long_long("1.5"), None);
        assert_eq!(xpath_long_long("+1"), None);
        assert_eq!(xpath_long_long(""), None);
        assert_eq!(xpath_long_long("."), None);
        assert_eq!(xpath_long_long("1e400"), None);
    }

    #[test]
    fn uuids() {
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
        let g = Uuid::generate();
        assert_eq!(g.0[6] >> 4, 4);
        assert_ne!(g, Uuid::generate());
    }

    #[test]
    fn string_value() {
        let el = crate::xml::parse("<a>x<b>y<c>z</c></b>w</a>").expect("xml");
        assert_eq!(deep_text(&el), "xyzw");
    }

    #[test]
    fn paths() {
        assert_eq!(
            sanitize_path("///var/////lib/libvirt/images//"),
            "/var/lib/libvirt/images"
        );
        assert_eq!(sanitize_path("/"), "/");
        assert_eq!(sanitize_path("//"), "//");
        assert_eq!(sanitize_path("//foo//bar"), "//foo/bar");
        assert_eq!(sanitize_path("///"), "/");
        assert_eq!(sanitize_path("foo/"), "foo");
        assert_eq!(sanitize_path("gluster://h//x"), "gluster://h//x");
        assert_eq!(sanitize_path("/a://b//c"), "/a:/b/c");
    }
}
