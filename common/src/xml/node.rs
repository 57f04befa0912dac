//! [`Node`]: an element with its path, and typed accessors whose errors
//! name the path and the value.
//!
//! A child found by [`Node::child`] owns its path ([`NodeBuf`]), and has
//! the same accessors, whose results borrow the document rather than the
//! child, so calls chain:
//! `n.child("driver").and_then(|d| d.attr("cache"))`.

use std::str::FromStr;

use super::error::{XmlError, XmlErrorKind};
use super::tree::Element;

/// An element together with where it is: `devices/disk[2]/driver`.
///
/// `P` holds the path: borrowed (`Node<'a>`, which is `Copy`) or owned
/// ([`NodeBuf`], what child lookups return).
#[derive(Clone, Copy, Debug)]
pub struct Node<'a, P = &'a str> {
    /// The element.
    pub el: &'a Element,
    path: P,
}

/// A node that owns its path: what [`Node::child`] and friends return.
/// Every accessor of [`Node`] is available on it directly.
pub type NodeBuf<'a> = Node<'a, String>;

impl<'a> NodeBuf<'a> {
    /// Borrows as a [`Node`] (to pass to functions taking `Node<'_>`).
    pub fn node(&self) -> Node<'_> {
        Node {
            el: self.el,
            path: &self.path,
        }
    }
}

impl<'a> Node<'a> {
    /// The root of a document: its path is empty (errors name children
    /// relative to it, like libvirt's `./devices/disk`).
    pub fn root(el: &'a Element) -> Node<'a> {
        Node { el, path: "" }
    }
}

impl<'a, P: AsRef<str>> Node<'a, P> {
    /// The element's path.
    pub fn path(&self) -> &str {
        self.path.as_ref()
    }

    /// The path of attribute `name`.
    pub fn attr_path(&self, name: &str) -> String {
        let path = self.path();
        if path.is_empty() {
            format!("@{name}")
        } else {
            format!("{path}/@{name}")
        }
    }

    /// The path of child `name` (with its 1-based index among same-named
    /// siblings when `index` is given).
    pub fn child_path(&self, name: &str, index: Option<usize>) -> String {
        use std::fmt::Write as _;
        // Every child looked up gets its path: one allocation, no
        // formatting machinery unless there is an index.
        let path = self.path();
        let mut s = String::with_capacity(path.len() + name.len() + 8);
        if !path.is_empty() {
            s.push_str(path);
            s.push('/');
        }
        s.push_str(name);
        if let Some(i) = index {
            let _ = write!(s, "[{i}]");
        }
        s
    }

    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<NodeBuf<'a>> {
        self.el.child(name).map(|el| Node {
            el,
            path: self.child_path(name, None),
        })
    }

    /// The child called `name`, which must exist.
    ///
    /// # Errors
    /// The child is missing.
    pub fn required_child(&self, name: &str) -> Result<NodeBuf<'a>, XmlError> {
        self.child(name)
            .ok_or_else(|| XmlError::new(self.child_path(name, None), XmlErrorKind::Missing))
    }

    /// Every child called `name`, with indexed paths (`disk[1]`, `disk[2]`...).
    pub fn children(&self, name: &'a str) -> Vec<NodeBuf<'a>> {
        self.el
            .children_named(name)
            .enumerate()
            .map(|(i, el)| Node {
                el,
                path: self.child_path(name, Some(i + 1)),
            })
            .collect()
    }

    /// Every child element, with indexed paths per name.
    pub fn all_children(&self) -> Vec<NodeBuf<'a>> {
        // Few distinct names per element: a list beats hashing each name.
        let mut counts: Vec<(&str, usize)> = Vec::new();
        self.el
            .elements()
            .map(|el| {
                let name = el.name.as_str();
                let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        counts.push((name, 1));
                        1
                    }
                };
                Node {
                    el,
                    path: self.child_path(name, Some(n)),
                }
            })
            .collect()
    }

    /// Attribute `name` as written.
    pub fn attr(&self, name: &str) -> Option<&'a str> {
        self.el.attr(name)
    }

    /// Attribute `name`, which must exist.
    ///
    /// # Errors
    /// The attribute is missing.
    pub fn required_attr(&self, name: &str) -> Result<&'a str, XmlError> {
        self.attr(name)
            .ok_or_else(|| XmlError::new(self.attr_path(name), XmlErrorKind::Missing))
    }

    /// Attribute `name` parsed as `T` (an [`xml_enum!`](crate::xml_enum) or
    /// anything with `FromStr`).
    ///
    /// # Errors
    /// The value does not parse: "unsupported value 'x'".
    pub fn parse_attr<T: FromStr>(&self, name: &str) -> Result<Option<T>, XmlError> {
        match self.attr(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| XmlError::bad_value(self.attr_path(name), v, "unsupported value")),
        }
    }

    /// Attribute `name` parsed as `T`, which must exist.
    ///
    /// # Errors
    /// Missing, or does not parse.
    pub fn required_parse_attr<T: FromStr>(&self, name: &str) -> Result<T, XmlError> {
        self.parse_attr(name)?
            .ok_or_else(|| XmlError::new(self.attr_path(name), XmlErrorKind::Missing))
    }

    /// Attribute `name` as an unsigned number: decimal, or hex with `0x`.
    ///
    /// # Errors
    /// Not a number, or out of range.
    pub fn uint_attr<T: TryFrom<u64>>(&self, name: &str) -> Result<Option<T>, XmlError> {
        match self.attr(name) {
            None => Ok(None),
            Some(v) => parse_uint::<T>(v).map(Some).ok_or_else(|| {
                XmlError::bad_value(self.attr_path(name), v, "expected an unsigned integer, got")
            }),
        }
    }

    /// Attribute `name` as a signed number.
    ///
    /// # Errors
    /// Not a number, or out of range.
    pub fn int_attr<T: TryFrom<i64>>(&self, name: &str) -> Result<Option<T>, XmlError> {
        match self.attr(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    XmlError::bad_value(self.attr_path(name), v, "expected an integer, got")
                }),
        }
    }

    /// Attribute `name` as libvirt's yes/no (also on/off where libvirt
    /// accepts it is the caller's business).
    ///
    /// # Errors
    /// Neither `yes` nor `no`.
    pub fn yes_no_attr(&self, name: &str) -> Result<Option<bool>, XmlError> {
        match self.attr(name) {
            None => Ok(None),
            Some("yes") => Ok(Some(true)),
            Some("no") => Ok(Some(false)),
            Some(v) => Err(XmlError::bad_value(
                self.attr_path(name),
                v,
                "expected 'yes' or 'no', got",
            )),
        }
    }

    /// Attribute `name` as on/off.
    ///
    /// # Errors
    /// Neither `on` nor `off`.
    pub fn on_off_attr(&self, name: &str) -> Result<Option<bool>, XmlError> {
        match self.attr(name) {
            None => Ok(None),
            Some("on") => Ok(Some(true)),
            Some("off") => Ok(Some(false)),
            Some(v) => Err(XmlError::bad_value(
                self.attr_path(name),
                v,
                "expected 'on' or 'off', got",
            )),
        }
    }

    /// The element's text.
    pub fn text(&self) -> String {
        self.el.text()
    }

    /// The element's text parsed as an unsigned number.
    ///
    /// # Errors
    /// Not a number.
    pub fn uint_text<T: TryFrom<u64>>(&self) -> Result<T, XmlError> {
        let t = self.text();
        parse_uint::<T>(&t).ok_or_else(|| {
            XmlError::bad_value(self.path(), t.trim(), "expected an unsigned integer, got")
        })
    }

    /// Whether every attribute is in `attrs` and every child element in
    /// `children`: [`Node::check_attrs`] and [`Node::check_children`]
    /// would both pass.
    pub fn conforms(&self, attrs: &[&str], children: &[&str]) -> bool {
        self.el.attrs.iter().all(|(k, _)| known_attr(k, attrs))
            && self
                .el
                .elements()
                .all(|c| children.contains(&c.name.as_str()))
    }

    /// With the validate flag: every attribute of this element must be in
    /// `known`.
    ///
    /// # Errors
    /// An attribute outside `known`.
    pub fn check_attrs(&self, known: &[&str]) -> Result<(), XmlError> {
        for (k, _) in &self.el.attrs {
            if !known_attr(k, known) {
                return Err(XmlError::new(self.attr_path(k), XmlErrorKind::Unknown));
            }
        }
        Ok(())
    }

    /// With the validate flag: every child element must be in `known`.
    ///
    /// # Errors
    /// A child outside `known`.
    pub fn check_children(&self, known: &[&str]) -> Result<(), XmlError> {
        // The path (with the index among same-named siblings) is built
        // only for the error.
        for el in self.el.elements() {
            if !known.contains(&el.name.as_str()) {
                let index = self
                    .el
                    .children_named(&el.name)
                    .position(|e| std::ptr::eq(e, el))
                    .map_or(1, |i| i + 1);
                return Err(XmlError::new(
                    self.child_path(&el.name, Some(index)),
                    XmlErrorKind::Unknown,
                ));
            }
        }
        Ok(())
    }
}

/// Whether attribute `k` is allowed by `known` (namespace declarations
/// always are).
fn known_attr(k: &str, known: &[&str]) -> bool {
    known.contains(&k) || k.starts_with("xmlns")
}

/// Parses an unsigned integer as libvirt's `virStrToLong_ui` family with
/// base 10 or `0x` hex (leading/trailing spaces refused, `+` refused).
pub fn parse_uint<T: TryFrom<u64>>(s: &str) -> Option<T> {
    let n = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok()?
    };
    T::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    crate::xml_enum! {
        enum Cache { None = "none", WriteBack = "writeback" }
    }

    #[test]
    fn errors_name_path_and_value() {
        let el =
            parse("<domain><devices><disk/><disk><driver cache='fast'/></disk></devices></domain>")
                .expect("xml");
        let root = Node::root(&el);
        let devices = root.required_child("devices").expect("devices");
        let disks = devices.node().children("disk");
        let driver = disks[1].node().required_child("driver").expect("driver");
        let err = driver
            .node()
            .parse_attr::<Cache>("cache")
            .expect_err("bad value");
        assert_eq!(
            err.to_string(),
            "devices/disk[2]/driver/@cache: unsupported value 'fast'"
        );
        let err = root.required_child("name").expect_err("missing");
        assert_eq!(err.to_string(), "name: missing");
    }

    #[test]
    fn child_lookups_chain() {
        let el = parse("<i><tune><sndbuf>7</sndbuf></tune><c><rx><frames max='3'/></rx></c></i>")
            .expect("xml");
        let n = Node::root(&el);
        let max = n
            .child("c")
            .and_then(|c| c.child("rx"))
            .and_then(|r| r.child("frames"))
            .and_then(|f| f.attr("max"));
        assert_eq!(max, Some("3"));
        let sndbuf: Option<u32> = n
            .child("tune")
            .and_then(|t| t.child("sndbuf"))
            .map(|s| s.uint_text())
            .transpose()
            .expect("number");
        assert_eq!(sndbuf, Some(7));
        let err = n
            .child("c")
            .and_then(|c| c.child("rx"))
            .map(|r| r.required_attr("x"))
            .expect("rx")
            .expect_err("missing");
        assert_eq!(err.to_string(), "c/rx/@x: missing");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_uint::<u32>("0x1f"), Some(31));
        assert_eq!(parse_uint::<u8>("256"), None);
        assert_eq!(parse_uint::<u32>(" 1"), None);
        assert_eq!(parse_uint::<u32>("-1"), None);
    }
}
