//! General metadata: `<name>`, `<uuid>`, `<genid>`, `<title>`,
//! `<description>` and `<metadata>` (kept verbatim).

use crate::xml::{Child, Element, Node, XmlError};

use super::util::{Ctx, Uuid, missing};

/// `<genid>`: the VM generation ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genid {
    /// The value (generated when the element was empty).
    pub uuid: Uuid,
    /// Whether it was generated rather than given.
    pub generated: bool,
}

/// `<metadata>`: application data in their own XML namespaces, kept as
/// written (one element per namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The namespaced children of `<metadata>`, each carrying its own
    /// `xmlns:prefix` declaration.
    pub elements: Vec<Element>,
}

pub(crate) struct General {
    pub name: String,
    pub uuid: Uuid,
    pub genid: Option<Genid>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Metadata>,
}

pub(crate) fn parse(root: Node<'_>, ctx: &Ctx<'_>) -> Result<General, XmlError> {
    let name = root
        .child("name")
        .map(|n| n.node().text())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("name"))?;
    if name.contains('\n') {
        return Err(XmlError::invalid("name", "name can't contain newlines"));
    }
    let uuid = match root.child("uuid") {
        None => ctx.generate_uuid(),
        Some(u) => {
            let t = u.node().text();
            Uuid::parse(&t)
                .ok_or_else(|| XmlError::bad_value("uuid", t, "malformed uuid element"))?
        }
    };
    let genids = root.children("genid");
    if genids.len() > 1 {
        return Err(XmlError::invalid(
            "genid[2]",
            "element 'genid' can only appear once",
        ));
    }
    let genid = match genids.first() {
        None => None,
        Some(g) => {
            let t = g.node().text();
            if t.is_empty() {
                Some(Genid {
                    uuid: ctx.generate_uuid(),
                    generated: true,
                })
            } else {
                Some(Genid {
                    uuid: Uuid::parse(&t).ok_or_else(|| {
                        XmlError::bad_value("genid", t, "malformed genid element")
                    })?,
                    generated: false,
                })
            }
        }
    };
    let title = root.child("title").map(|t| t.node().text());
    if title.as_deref().is_some_and(|t| t.contains('\n')) {
        return Err(XmlError::invalid(
            "title",
            "Domain title can't contain newlines",
        ));
    }
    let description = root.child("description").map(|t| t.node().text());
    let metadata = root
        .child("metadata")
        .map(|m| parse_metadata(m.node(), root));
    Ok(General {
        name,
        uuid,
        genid,
        title,
        description,
        metadata,
    })
}

/// Namespace prefix of a qualified name (`""` for none).
fn prefix(name: &str) -> &str {
    name.split_once(':').map(|(p, _)| p).unwrap_or("")
}

/// Looks up the URI bound to `prefix` on `el` or the given ancestors.
fn ns_uri<'a>(prefix: &str, el: &'a Element, ancestors: &[&'a Element]) -> Option<&'a str> {
    let key = if prefix.is_empty() {
        "xmlns".to_owned()
    } else {
        format!("xmlns:{prefix}")
    };
    std::iter::once(el)
        .chain(ancestors.iter().rev().copied())
        .find_map(|e| e.attr(&key))
}

/// As libvirt's `virXMLNodeSanitizeNamespaces`: keep only children in a
/// namespace, one per namespace, each declaring its namespace itself.
fn parse_metadata(m: Node<'_>, root: Node<'_>) -> Metadata {
    let mut seen: Vec<String> = Vec::new();
    let mut elements = Vec::new();
    for c in m.el.elements() {
        let p = prefix(&c.name);
        let Some(uri) = ns_uri(p, c, &[root.el, m.el]) else {
            continue;
        };
        if seen.iter().any(|s| s == uri) {
            continue;
        }
        seen.push(uri.to_owned());
        let mut el = c.clone();
        let key = if p.is_empty() {
            "xmlns".to_owned()
        } else {
            format!("xmlns:{p}")
        };
        if el.attr(&key).is_none() {
            el.attrs.insert(0, (key, uri.to_owned()));
        }
        elements.push(el);
    }
    Metadata { elements }
}

pub(crate) fn format_head(
    out: &mut Vec<super::format::Part>,
    name: &str,
    uuid: &Uuid,
    genid: Option<&Genid>,
    title: Option<&str>,
    description: Option<&str>,
    metadata: Option<&Metadata>,
) {
    use super::format::Part;
    out.push(Part::El(Element::text_element("name", name)));
    out.push(Part::El(Element::text_element("uuid", uuid.to_string())));
    if let Some(g) = genid {
        out.push(Part::El(Element::text_element("genid", g.uuid.to_string())));
    }
    if let Some(t) = title {
        out.push(Part::El(Element::text_element("title", t)));
    }
    if let Some(d) = description {
        out.push(Part::El(Element::text_element("description", d)));
    }
    if let Some(m) = metadata {
        out.push(Part::Raw(format_metadata(m)));
    }
}

/// libxml2's `xmlNodeDump` layout (double quotes, its escaping), as
/// libvirt writes `<metadata>` at indent level 1.
pub(crate) fn format_metadata(m: &Metadata) -> String {
    let mut s = String::from("  ");
    if m.elements.is_empty() {
        s.push_str("<metadata/>\n");
        return s;
    }
    s.push_str("<metadata>\n");
    for e in &m.elements {
        s.push_str("    ");
        dump(&mut s, e, 2);
        s.push('\n');
    }
    s.push_str("  </metadata>\n");
    s
}

fn esc_text(out: &mut String, t: &str) {
    for c in t.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

fn esc_attr(out: &mut String, t: &str) {
    for c in t.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// One element as `xmlNodeDump(format=1)` writes it: the first line is
/// not indented, children are indented when there is no text among them.
fn dump(out: &mut String, e: &Element, level: usize) {
    out.push('<');
    out.push_str(&e.name);
    let ns = e.attrs.iter().filter(|(k, _)| k.starts_with("xmlns"));
    let plain = e.attrs.iter().filter(|(k, _)| !k.starts_with("xmlns"));
    for (k, v) in ns.chain(plain) {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        esc_attr(out, v);
        out.push('"');
    }
    if e.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    let has_text = e.children.iter().any(|c| matches!(c, Child::Text(_)));
    for c in &e.children {
        match c {
            Child::Text(t) => esc_text(out, t),
            Child::Element(ce) => {
                if !has_text {
                    out.push('\n');
                    for _ in 0..=level {
                        out.push_str("  ");
                    }
                }
                dump(out, ce, if has_text { level } else { level + 1 });
            }
        }
    }
    if !has_text {
        out.push('\n');
        for _ in 0..level {
            out.push_str("  ");
        }
    }
    out.push_str("</");
    out.push_str(&e.name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_dumped_like_libxml() {
        let el = crate::xml::parse(
            "<domain xmlns:a='urn:a'><metadata><a:x k='1'><a:y>t&amp;</a:y></a:x><plain/><a:dup/></metadata></domain>",
        )
        .expect("xml");
        let root = Node::root(&el);
        let md = root.child("metadata").expect("metadata");
        let m = parse_metadata(md.node(), root);
        assert_eq!(m.elements.len(), 1);
        assert_eq!(
            format_metadata(&m),
            "  <metadata>\n    <a:x xmlns:a=\"urn:a\" k=\"1\">\n      <a:y>t&amp;</a:y>\n    </a:x>\n  </metadata>\n"
        );
    }
}
