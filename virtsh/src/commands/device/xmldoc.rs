//! A small XML tree that keeps every text node (whitespace included) and
//! writes an element back as libxml2's `xmlNodeDump` does without
//! formatting: the form in which virsh sends, and with `--print-xml`
//! prints, an element it took from a domain's XML (`detach-disk`,
//! `detach-interface`, `change-media`).
//!
//! libxml2 keeps the indentation found inside the element, writes
//! attributes in double quotes, empty elements as `<x/>`, and leaves the
//! text nodes around a removed child in place; so does this module.

/// A node of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// An element.
    Element(Elem),
    /// Character data, entities resolved.
    Text(String),
    /// A CDATA section.
    CData(String),
    /// A comment.
    Comment(String),
    /// A processing instruction (`target data`).
    Pi(String),
}

/// An element: name, attributes in document order, children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Elem {
    /// The name as written.
    pub name: String,
    /// Attributes, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Elem {
    /// A new empty element.
    pub fn new(name: &str) -> Elem {
        Elem {
            name: name.to_owned(),
            ..Elem::default()
        }
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets attribute `name`, in place when it exists (as `xmlSetProp`),
    /// else at the end.
    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => value.clone_into(v),
            None => self.attrs.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Elem> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Elem> {
        self.elements().find(|e| e.name == name)
    }

    /// Child elements called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Elem> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    /// Removes the first child element called `name` (as `xmlUnlinkNode`:
    /// the text around it stays) and returns it.
    pub fn remove_child(&mut self, name: &str) -> Option<Elem> {
        let i = self
            .children
            .iter()
            .position(|c| matches!(c, Node::Element(e) if e.name == name))?;
        match self.children.remove(i) {
            Node::Element(e) => Some(e),
            _ => None,
        }
    }

    /// Appends a child element after every existing child (`xmlAddChild`).
    pub fn push(&mut self, child: Elem) {
        self.children.push(Node::Element(child));
    }

    /// The element as libxml2's `xmlNodeDump(buf, doc, node, 0, 0)`
    /// writes it (no trailing newline).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        self.dump_into(&mut out);
        out
    }

    fn dump_into(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            escape_attr(out, v);
            out.push('"');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for c in &self.children {
            match c {
                Node::Element(e) => e.dump_into(out),
                Node::Text(t) => escape_text(out, t),
                Node::CData(t) => {
                    out.push_str("<![CDATA[");
                    out.push_str(t);
                    out.push_str("]]>");
                }
                Node::Comment(t) => {
                    out.push_str("<!--");
                    out.push_str(t);
                    out.push_str("-->");
                }
                Node::Pi(t) => {
                    out.push_str("<?");
                    out.push_str(t);
                    out.push_str("?>");
                }
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// libxml2's escaping of text content.
fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// libxml2's escaping of attribute values in a document without a
/// declared encoding (non-ASCII characters become character references).
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
            c if !c.is_ascii() => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
}

/// Parses a document and returns its root element.
///
/// # Errors
/// A short description of the first problem found.
pub fn parse(text: &str) -> Result<Elem, String> {
    // XML line-end normalisation.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut p = Parser {
        s: text.as_bytes(),
        text: &text,
        i: 0,
    };
    // Prolog: declaration, comments, PIs, doctype, whitespace.
    loop {
        p.skip_ws();
        if p.eat("<?") {
            p.until("?>")?;
        } else if p.eat("<!--") {
            p.until("-->")?;
        } else if p.eat("<!DOCTYPE") {
            p.until(">")?;
        } else {
            break;
        }
    }
    if !p.eat("<") {
        return Err("no root element".into());
    }
    let root = p.element()?;
    // Trailing misc.
    loop {
        p.skip_ws();
        if p.eat("<?") {
            p.until("?>")?;
        } else if p.eat("<!--") {
            p.until("-->")?;
        } else {
            break;
        }
    }
    if p.i != p.s.len() {
        return Err("extra content at the end of the document".into());
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    /// The text up to `end`, consuming `end`.
    fn until(&mut self, end: &str) -> Result<String, String> {
        let rest = &self.text[self.i..];
        let n = rest.find(end).ok_or_else(|| format!("'{end}' expected"))?;
        let s = rest[..n].to_owned();
        self.i += n + end.len();
        Ok(s)
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while self.i < self.s.len() {
            let b = self.s[self.i];
            if b.is_ascii_whitespace() || matches!(b, b'=' | b'>' | b'/' | b'<' | b'"' | b'\'') {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            return Err("name expected".into());
        }
        Ok(self.text[start..self.i].to_owned())
    }

    /// An element, after its `<`.
    fn element(&mut self) -> Result<Elem, String> {
        let mut e = Elem::new(&self.name()?);
        loop {
            self.skip_ws();
            if self.eat("/>") {
                return Ok(e);
            }
            if self.eat(">") {
                break;
            }
            let k = self.name()?;
            self.skip_ws();
            if !self.eat("=") {
                return Err(format!("'=' expected after attribute {k}"));
            }
            self.skip_ws();
            let q = match self.s.get(self.i) {
                Some(b'"') => "\"",
                Some(b'\'') => "'",
                _ => return Err(format!("quote expected for attribute {k}")),
            };
            self.i += 1;
            let raw = self.until(q)?;
            if raw.contains('<') {
                return Err(format!("'<' in attribute {k}"));
            }
            // Attribute-value normalisation of literal whitespace.
            let raw = raw.replace(['\t', '\n'], " ");
            e.attrs.push((k, unescape(&raw)?));
        }
        loop {
            if self.i >= self.s.len() {
                return Err(format!("premature end of data in tag {}", e.name));
            }
            if self.eat("</") {
                let n = self.name()?;
                if n != e.name {
                    return Err(format!(
                        "Opening and ending tag mismatch: {} and {n}",
                        e.name
                    ));
                }
                self.skip_ws();
                if !self.eat(">") {
                    return Err("'>' expected".into());
                }
                return Ok(e);
            }
            if self.eat("<!--") {
                let t = self.until("-->")?;
                e.children.push(Node::Comment(t));
            } else if self.eat("<![CDATA[") {
                let t = self.until("]]>")?;
                e.children.push(Node::CData(t));
            } else if self.eat("<?") {
                let t = self.until("?>")?;
                e.children.push(Node::Pi(t));
            } else if self.eat("<") {
                let child = self.element()?;
                e.children.push(Node::Element(child));
            } else {
                let rest = &self.text[self.i..];
                let n = rest.find('<').unwrap_or(rest.len());
                let t = unescape(&rest[..n])?;
                self.i += n;
                match e.children.last_mut() {
                    Some(Node::Text(prev)) => prev.push_str(&t),
                    _ => e.children.push(Node::Text(t)),
                }
            }
        }
    }
}

/// Resolves the predefined entities and character references.
fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('&') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let end = rest
            .find(';')
            .ok_or_else(|| "unterminated entity reference".to_owned())?;
        let ent = &rest[..end];
        let c = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(h) = ent.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse::<u32>().ok()
                } else {
                    None
                };
                n.and_then(char::from_u32)
                    .ok_or_else(|| format!("Entity '{ent}' not defined"))?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISK: &str = "<domain type='kvm'>\n  <name>vm</name>\n  <devices>\n    \
        <disk type='file' device='disk'>\n      \
        <driver name='qemu' type='qcow2'/>\n      \
        <source file='/var/lib/a&apos;b.qcow2' index='1'/>\n      \
        <backingStore/>\n      \
        <target dev='vda' bus='virtio'/>\n    \
        </disk>\n  </devices>\n</domain>\n";

    #[test]
    fn dump_keeps_inner_whitespace_and_uses_double_quotes() {
        let root = parse(DISK).expect("parses");
        let disk = root
            .child("devices")
            .and_then(|d| d.child("disk"))
            .expect("disk");
        assert_eq!(disk.attr("device"), Some("disk"));
        assert_eq!(
            disk.dump(),
            "<disk type=\"file\" device=\"disk\">\n      \
             <driver name=\"qemu\" type=\"qcow2\"/>\n      \
             <source file=\"/var/lib/a'b.qcow2\" index=\"1\"/>\n      \
             <backingStore/>\n      \
             <target dev=\"vda\" bus=\"virtio\"/>\n    \
             </disk>"
        );
        let mut d = disk.clone();
        assert!(d.remove_child("backingStore").is_some());
        // The text on both sides of the removed element stays.
        assert!(
            d.dump().contains("index=\"1\"/>\n      \n      <target"),
            "{}",
            d.dump()
        );
        d.set_attr("type", "block");
        d.set_attr("x", "\"<&>\n\u{e9}");
        assert!(
            d.dump().starts_with(
                "<disk type=\"block\" device=\"disk\" x=\"&quot;&lt;&amp;&gt;&#10;&#xE9;\">"
            ),
            "{}",
            d.dump()
        );
    }

    #[test]
    fn text_comments_and_references() {
        let root =
            parse("<?xml version='1.0'?>\n<!-- c -->\n<a x=\"1\n2\"><b>&lt;&#65;&#x42;</b><!--k--><![CDATA[<z>]]></a>")
                .expect("parses");
        assert_eq!(root.attr("x"), Some("1 2"));
        assert_eq!(
            root.dump(),
            "<a x=\"1 2\"><b>&lt;AB</b><!--k--><![CDATA[<z>]]></a>"
        );
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a x='&nope;'/>").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("").is_err());
    }
}
