//! Small value types shared by every section: CPU bitmaps, scaled sizes,
//! and the parse/format context (UUIDs and MAC addresses are
//! [`crate::xml::values`]').

use std::fmt;

use crate::xml::values::{LLONG_MAX, ScaleError, scale_integer};
use crate::xml::{Element, FormatFlags, Node, ParseFlags, XmlError, XmlErrorKind};

use super::hooks::DomainDefHooks;

/// What every parse function gets: the flags and the driver hooks (for
/// random numbers, e.g. generated MAC addresses).
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub flags: ParseFlags,
    pub hooks: &'a dyn DomainDefHooks,
}

impl Ctx<'_> {
    /// Whether live-only data is ignored.
    pub fn inactive(&self) -> bool {
        self.flags.inactive
    }

    /// With the validate flag, refuses attributes and children outside
    /// the lists.
    pub fn check(&self, n: Node<'_>, attrs: &[&str], children: &[&str]) -> Result<(), XmlError> {
        if self.flags.validate {
            n.check_attrs(attrs)?;
            n.check_children(children)?;
        }
        Ok(())
    }

    /// With the validate flag, checks every child of `n` called `name`
    /// as [`Ctx::check`] does.
    pub fn check_child(
        &self,
        n: Node<'_>,
        name: &'static str,
        attrs: &[&str],
        children: &[&str],
    ) -> Result<(), XmlError> {
        // Paths are built only when a child breaks the rules.
        if self.flags.validate
            && !n
                .el
                .children_named(name)
                .all(|el| Node::root(el).conforms(attrs, children))
        {
            for c in named(n, name) {
                self.check(c.node(), attrs, children)?;
            }
        }
        Ok(())
    }

    /// With the validate flag, checks that the children of `n` called
    /// `names` carry neither attributes nor child elements (text-only
    /// or empty elements).
    pub fn check_leaves(&self, n: Node<'_>, names: &[&'static str]) -> Result<(), XmlError> {
        for name in names {
            self.check_child(n, name, &[], &[])?;
        }
        Ok(())
    }
}

/// The children of `n` called `name`; a single one is named without an
/// index, as [`Node::child`] names it.
pub(crate) fn named<'a>(n: Node<'a>, name: &'static str) -> Vec<crate::xml::NodeBuf<'a>> {
    if n.el.children_named(name).nth(1).is_none() {
        n.child(name).into_iter().collect()
    } else {
        n.children(name)
    }
}

/// Format flags, passed down to every section.
pub(crate) type Fmt = FormatFlags;

// === UUID, MAC address ===

pub use crate::xml::values::{MacAddr, Uuid};

impl Ctx<'_> {
    /// A random (version 4) UUID from the hooks' random source.
    pub(crate) fn generate_uuid(&self) -> Uuid {
        Uuid::generate_from(|b| self.hooks.random_bytes(b))
    }

    /// A random MAC address (prefix 52:54:00) from the hooks' random
    /// source.
    pub(crate) fn generate_mac(&self) -> MacAddr {
        MacAddr::generate_from(|b| self.hooks.random_bytes(b))
    }
}

// === Bitmap ===

/// A set of CPU (or node, vcpu, iothread) numbers, as libvirt's
/// `virBitmap`: parsed from `0-3,^2,8`, formatted as ranges `0-1,3,8`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bitmap {
    bits: Vec<u64>,
}

/// The largest bitmap libvirt accepts for CPU masks.
pub const CPUMASK_LEN: u32 = 1 << 16;

impl Bitmap {
    /// An empty set.
    pub fn new() -> Bitmap {
        Bitmap::default()
    }

    /// Parses the libvirt syntax; every number must be below `max`.
    pub fn parse(s: &str, max: u32) -> Option<Bitmap> {
        let mut bm = Bitmap::new();
        let b = s.as_bytes();
        let mut i = 0;
        let skip = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        let num = |i: &mut usize| -> Option<u32> {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            if start == *i {
                return None;
            }
            s[start..*i].parse::<u32>().ok()
        };
        if s.trim().is_empty() {
            return None;
        }
        while i < b.len() {
            skip(&mut i);
            let neg = if b.get(i) == Some(&b'^') {
                i += 1;
                true
            } else {
                false
            };
            let start = num(&mut i)?;
            if start >= max {
                return None;
            }
            skip(&mut i);
            match b.get(i) {
                None | Some(b',') => {
                    if neg {
                        bm.clear(start);
                    } else {
                        bm.set(start);
                    }
                }
                Some(b'-') => {
                    if neg {
                        return None;
                    }
                    i += 1;
                    skip(&mut i);
                    let last = num(&mut i)?;
                    if last < start || last >= max {
                        return None;
                    }
                    for n in start..=last {
                        bm.set(n);
                    }
                    skip(&mut i);
                }
                Some(_) => return None,
            }
            match b.get(i) {
                None => break,
                Some(b',') => {
                    i += 1;
                    skip(&mut i);
                    if i >= b.len() {
                        return None;
                    }
                }
                Some(_) => return None,
            }
        }
        Some(bm)
    }

    /// Adds `n`.
    pub fn set(&mut self, n: u32) {
        let w = (n / 64) as usize;
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        self.bits[w] |= 1u64 << (n % 64);
    }

    /// Removes `n`.
    pub fn clear(&mut self, n: u32) {
        let w = (n / 64) as usize;
        if let Some(word) = self.bits.get_mut(w) {
            *word &= !(1u64 << (n % 64));
        }
    }

    /// Whether `n` is in the set.
    pub fn contains(&self, n: u32) -> bool {
        self.bits
            .get((n / 64) as usize)
            .is_some_and(|w| w & (1u64 << (n % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// The numbers in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter().enumerate().flat_map(|(wi, w)| {
            (0..64u32).filter_map(move |b| {
                if w & (1u64 << b) != 0 {
                    u32::try_from(wi).ok().map(|wi| wi * 64 + b)
                } else {
                    None
                }
            })
        })
    }

    /// How many numbers are set.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The largest number, if any.
    pub fn last(&self) -> Option<u32> {
        self.iter().last()
    }

    /// Whether the two sets share a number.
    pub fn intersects(&self, other: &Bitmap) -> bool {
        self.bits.iter().zip(&other.bits).any(|(a, b)| a & b != 0)
    }

    /// Whether every number of `self` is in `other`.
    pub fn is_subset(&self, other: &Bitmap) -> bool {
        self.iter().all(|n| other.contains(n))
    }

    /// A set holding only `n`.
    pub fn single(n: u32) -> Bitmap {
        let mut b = Bitmap::new();
        b.set(n);
        b
    }

    /// Removes every number `>= len`.
    pub fn truncate(&mut self, len: u32) {
        let over: Vec<u32> = self.iter().filter(|n| *n >= len).collect();
        for n in over {
            self.clear(n);
        }
    }
}

impl fmt::Display for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut run: Option<(u32, u32)> = None;
        let mut flush = |f: &mut fmt::Formatter<'_>, r: (u32, u32)| -> fmt::Result {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if r.0 == r.1 {
                write!(f, "{}", r.0)
            } else {
                write!(f, "{}-{}", r.0, r.1)
            }
        };
        for n in self.iter() {
            run = match run {
                Some((a, b)) if b + 1 == n => Some((a, n)),
                Some(r) => {
                    flush(f, r)?;
                    Some((n, n))
                }
                None => Some((n, n)),
            };
        }
        if let Some(r) = run {
            flush(f, r)?;
        }
        Ok(())
    }
}

/// Parses a bitmap attribute (`cpuset='0-3'`), refusing an empty set when
/// `allow_empty` is false.
pub(crate) fn bitmap_attr(n: Node<'_>, name: &str, max: u32) -> Result<Option<Bitmap>, XmlError> {
    match n.attr(name) {
        None => Ok(None),
        Some(v) => Bitmap::parse(v, max)
            .map(Some)
            .ok_or_else(|| XmlError::bad_value(n.attr_path(name), v, "Failed to parse bitmap")),
    }
}

// === scaled sizes ===

pub use crate::xml::values::unit_scale;

/// Reads a scaled integer: the element text (or attribute `value_attr`)
/// with its `unit` attribute, in bytes, at most `max` bytes.
pub(crate) fn scaled_bytes(
    path: &str,
    value: &str,
    unit: Option<&str>,
    default_scale: u64,
    max: u64,
) -> Result<u64, XmlError> {
    let v: u64 = crate::xml::parse_uint(value.trim()).ok_or_else(|| {
        XmlError::bad_value(
            path,
            value.trim(),
            "Invalid value for number, expected integer, got",
        )
    })?;
    scale_integer(v, unit, default_scale, max).map_err(|e| match e {
        ScaleError::TooLarge { .. } => XmlError::bad_value(path, value, "value too large"),
        ScaleError::UnknownSuffix(u) => XmlError::bad_value(path, u, "unknown suffix"),
        ScaleError::InvalidScale(_) => XmlError::invalid(path, e.to_string()),
    })
}

/// The largest memory size libvirt accepts, in bytes (capped values).
pub const MEMORY_MAX_BYTES: u64 = LLONG_MAX;

/// Reads `<NAME unit='..'>N</NAME>` as KiB (rounded up), or `None` when
/// the element is missing.
pub(crate) fn memory_kib(n: Node<'_>) -> Result<u64, XmlError> {
    let text = n.text();
    let bytes = scaled_bytes(n.path(), &text, n.attr("unit"), 1024, MEMORY_MAX_BYTES)?;
    Ok(bytes.div_ceil(1024))
}

/// Reads a child `<NAME unit='..'>N</NAME>` as KiB.
pub(crate) fn child_memory_kib(n: Node<'_>, name: &str) -> Result<Option<u64>, XmlError> {
    match n.child(name) {
        None => Ok(None),
        Some(c) => memory_kib(c.node()).map(Some),
    }
}

/// Reads an attribute pair (`size='..' unit='..'`) as KiB.
pub(crate) fn attr_memory_kib(
    n: Node<'_>,
    value_attr: &str,
    unit_attr: &str,
) -> Result<Option<u64>, XmlError> {
    match n.attr(value_attr) {
        None => Ok(None),
        Some(v) => {
            let bytes = scaled_bytes(
                &n.attr_path(value_attr),
                v,
                n.attr(unit_attr),
                1024,
                MEMORY_MAX_BYTES,
            )?;
            Ok(Some(bytes.div_ceil(1024)))
        }
    }
}

/// `<NAME unit='KiB'>N</NAME>`.
pub(crate) fn kib_element(name: &str, kib: u64) -> Element {
    Element::new(name)
        .with_attr("unit", "KiB")
        .with_text(kib.to_string())
}

// === small helpers ===

/// `yes`/`no`.
pub(crate) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `on`/`off`.
pub(crate) fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// A required text child's content.
pub(crate) fn child_text(n: Node<'_>, name: &str) -> Option<String> {
    n.child(name).map(|c| c.node().text())
}

/// A child's text parsed as an unsigned number.
pub(crate) fn child_uint<T: TryFrom<u64>>(n: Node<'_>, name: &str) -> Result<Option<T>, XmlError> {
    match n.child(name) {
        None => Ok(None),
        Some(c) => {
            let c = c.node();
            let t = c.text();
            crate::xml::parse_uint::<T>(t.trim())
                .map(Some)
                .ok_or_else(|| {
                    XmlError::bad_value(c.path(), t.trim(), "expected an unsigned integer, got")
                })
        }
    }
}

/// A child's text parsed as a signed number.
pub(crate) fn child_int<T: TryFrom<i64>>(n: Node<'_>, name: &str) -> Result<Option<T>, XmlError> {
    match n.child(name) {
        None => Ok(None),
        Some(c) => {
            let c = c.node();
            let t = c.text();
            t.trim()
                .parse::<i64>()
                .ok()
                .and_then(|v| T::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| XmlError::bad_value(c.path(), t.trim(), "expected an integer, got"))
        }
    }
}

/// Attribute `name` parsed as `T`, where `default` means unset (libvirt
/// enums whose value 0 is spelled "default").
pub(crate) fn attr_or_default<T: std::str::FromStr>(
    n: Node<'_>,
    name: &str,
) -> Result<Option<T>, XmlError> {
    if n.attr(name) == Some("default") {
        return Ok(None);
    }
    n.parse_attr(name)
}

/// libvirt's `virFormatIntPretty`: the largest binary unit that divides.
pub(crate) fn format_int_pretty(bytes: u64) -> (u64, &'static str) {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut i = 0;
    while i + 1 < units.len() && v != 0 && v.is_multiple_of(1024) {
        v /= 1024;
        i += 1;
    }
    (v, units[i])
}

/// A missing-element error.
pub(crate) fn missing(path: impl Into<String>) -> XmlError {
    XmlError::new(path, XmlErrorKind::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_parse_format() {
        let b = Bitmap::parse("1-3,^1, 5", 64).expect("bitmap");
        assert_eq!(b.to_string(), "2-3,5");
        assert_eq!(b.count(), 3);
        assert!(Bitmap::parse("aaa", 64).is_none());
        assert!(Bitmap::parse("3-1", 64).is_none());
        assert!(Bitmap::parse("64", 64).is_none());
        assert!(Bitmap::parse("1,", 64).is_none());
        assert!(Bitmap::parse("", 64).is_none());
        let mut b = Bitmap::parse("0-3,100", 8192).expect("bitmap");
        b.truncate(2);
        assert_eq!(b.to_string(), "0-1");
    }

    #[test]
    fn units() {
        assert!(scaled_bytes("p", "99999999999999999", Some("EiB"), 1, u64::MAX).is_err());
    }
}
