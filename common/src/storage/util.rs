//! Low-level helpers of the storage models: XPath `number()` (C-style
//! numbers, scaling and UUIDs are the shared [`crate::xml::values`]),
//! path sanitising, and XPath-like lookups that treat an empty string as
//! absent (as `virXPathString` does).

use crate::xml::{Child, Element, Node, XmlError};

// === numbers ===

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

#[cfg(test)]
mod tests {
    use super::*;

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
