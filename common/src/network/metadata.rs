//! `<metadata>`: kept as written, with libvirt's clean-up on parse and
//! libxml2's serialisation on format.
//!
//! On parse libvirt copies the element (`xmlCopyNode`), which declares on
//! `<metadata>` itself any namespace its content uses but that was declared
//! further up, then drops children without a namespace, text, and every
//! child after the first one of each namespace. On format it writes the
//! element with `xmlNodeDump`: double-quoted attributes, namespace
//! declarations first, two-space indentation unless an element holds text.

use std::collections::HashSet;

use crate::xml::{Child, Element};

/// The prefix of a qualified name (`None` for an unprefixed name).
fn prefix_of(name: &str) -> Option<&str> {
    name.split_once(':').map(|(p, _)| p)
}

/// The local part of a qualified name.
pub(super) fn local_name(name: &str) -> &str {
    name.split_once(':').map_or(name, |(_, l)| l)
}

/// The attribute that declares `prefix` (`xmlns:p`, or `xmlns` for the
/// default namespace).
fn decl_name(prefix: Option<&str>) -> String {
    match prefix {
        Some(p) => format!("xmlns:{p}"),
        None => "xmlns".to_owned(),
    }
}

/// The namespace URI bound to `prefix` in `scopes` (innermost first).
pub(super) fn resolve<'a>(prefix: Option<&str>, scopes: &[&'a Element]) -> Option<&'a str> {
    if prefix == Some("xml") {
        return Some("http://www.w3.org/XML/1998/namespace");
    }
    let decl = decl_name(prefix);
    for el in scopes {
        if let Some(v) = el.attr(&decl) {
            // xmlns="" undeclares the default namespace.
            return (!v.is_empty()).then_some(v);
        }
    }
    None
}

/// The namespace URI of element `el` given its ancestors (innermost first).
pub(super) fn element_ns<'a>(el: &'a Element, ancestors: &[&'a Element]) -> Option<&'a str> {
    let mut scopes: Vec<&Element> = Vec::with_capacity(ancestors.len() + 1);
    scopes.push(el);
    scopes.extend_from_slice(ancestors);
    resolve(prefix_of(&el.name), &scopes)
}

/// Collects the declarations `el`'s subtree needs from outside it: every
/// prefix used by an element or attribute that no ancestor within the
/// subtree declares, resolved against `outer` (innermost first).
fn missing_decls(
    el: &Element,
    inner_els: &mut Vec<Element>,
    outer: &[&Element],
    out: &mut Vec<(String, String)>,
) {
    // `inner_els` mirrors the chain of ancestors inside the subtree (as
    // shallow copies holding only their attributes) for lookups.
    let shallow = Element {
        name: el.name.clone(),
        attrs: el.attrs.clone(),
        ..Element::default()
    };
    inner_els.push(shallow);
    let mut uses: Vec<Option<&str>> = vec![prefix_of(&el.name)];
    for (k, _) in &el.attrs {
        if k == "xmlns" || k.starts_with("xmlns:") {
            continue;
        }
        if let Some(p) = prefix_of(k) {
            uses.push(Some(p));
        }
    }
    for p in uses {
        if p == Some("xml") {
            continue;
        }
        let decl = decl_name(p);
        let declared_inside = inner_els.iter().any(|e| e.attr(&decl).is_some());
        if declared_inside || out.iter().any(|(k, _)| *k == decl) {
            continue;
        }
        if let Some(uri) = resolve(p, outer) {
            out.push((decl, uri.to_owned()));
        }
    }
    for c in el.elements() {
        missing_decls(c, inner_els, outer, out);
    }
    inner_els.pop();
}

/// libvirt's copy and clean-up of `<metadata>` (`md`), a child of `root`.
pub(super) fn capture(root: &Element, md: &Element) -> Element {
    let mut copy = md.clone();
    // Namespaces declared above <metadata> are declared on the copy.
    let mut added = Vec::new();
    missing_decls(md, &mut Vec::new(), &[root], &mut added);
    copy.attrs.extend(added);

    // Keep the first element child of each namespace; drop the rest.
    let mut seen: HashSet<String> = HashSet::new();
    let scope = Element {
        name: copy.name.clone(),
        attrs: copy.attrs.clone(),
        ..Element::default()
    };
    let mut kept = Vec::new();
    for c in std::mem::take(&mut copy.children) {
        if let Child::Element(e) = c {
            let ns = element_ns(&e, &[&scope]).map(str::to_owned);
            if let Some(ns) = ns
                && seen.insert(ns)
            {
                kept.push(Child::Element(e));
            }
        }
    }
    copy.children = kept;
    copy
}

/// libxml2's escaping of attribute values without an output encoding.
fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if u32::from(c) >= 0x80 => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
}

/// libxml2's escaping of text without an output encoding.
fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            c if u32::from(c) >= 0x80 => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level.min(50) {
        out.push_str("  ");
    }
}

fn dump_el(out: &mut String, el: &Element, level: usize, format: bool) {
    out.push('<');
    out.push_str(&el.name);
    let is_decl = |k: &str| k == "xmlns" || k.starts_with("xmlns:");
    for (k, v) in el.attrs.iter().filter(|(k, _)| is_decl(k)) {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_attr(out, v);
        out.push('"');
    }
    for (k, v) in el.attrs.iter().filter(|(k, _)| !is_decl(k)) {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_attr(out, v);
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    let format = format && el.children.iter().all(|c| matches!(c, Child::Element(_)));
    out.push('>');
    if format {
        out.push('\n');
    }
    for c in &el.children {
        match c {
            Child::Text(t) => escape_text(out, t),
            Child::Element(e) => {
                if format {
                    indent(out, level + 1);
                }
                dump_el(out, e, level + 1, format);
                if format {
                    out.push('\n');
                }
            }
        }
    }
    if format {
        indent(out, level);
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

/// `xmlNodeDump(el, level, format=1)` with tree indentation: the element
/// itself is not indented and gets no trailing newline.
pub(super) fn dump(el: &Element, level: usize) -> String {
    let mut out = String::new();
    dump_el(&mut out, el, level, true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn sanitizes_and_dumps() {
        let root = parse(
            "<network xmlns:up='http://up/'><metadata>text<plain/><a:x xmlns:a='http://a/'>1</a:x>\
             <a:y xmlns:a='http://a/'/><up:z k='v&quot;'><up:w/></up:z></metadata></network>",
        )
        .expect("xml");
        let md = root.child("metadata").expect("md");
        let c = capture(&root, md);
        assert_eq!(
            dump(&c, 1),
            "<metadata xmlns:up=\"http://up/\">\n    <a:x xmlns:a=\"http://a/\">1</a:x>\n    \
             <up:z k=\"v&quot;\">\n      <up:w/>\n    </up:z>\n  </metadata>"
        );
    }

    #[test]
    fn mixed_content_is_not_indented() {
        let el = parse("<m><a:b xmlns:a='u'>x<c/>y</a:b></m>").expect("xml");
        assert_eq!(dump(&el, 0), "<m>\n  <a:b xmlns:a=\"u\">x<c/>y</a:b>\n</m>");
    }
}
