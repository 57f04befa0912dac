//! The element tree: parsing with quick-xml and libvirt's canonical output.

use quick_xml::events::Event;

use super::error::{XmlError, XmlErrorKind};

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Child {
    /// A nested element.
    Element(Element),
    /// Character data (entities resolved, CDATA included).
    Text(String),
}

/// An XML element: name, attributes in document order, children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// The qualified name as written (`metadata` children keep prefixes).
    pub name: String,
    /// Attributes in order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Children in order. Whitespace-only text between elements is dropped.
    pub children: Vec<Child>,
    /// Output only: write an open and a close tag on their own lines even
    /// when there are no children (`<devices>` newline `</devices>`), as
    /// libvirt does for elements it writes by hand. Never set by [`parse`].
    pub force_open: bool,
}

impl Element {
    /// A new empty element.
    pub fn new(name: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            ..Element::default()
        }
    }

    /// A new element written with open and close tags even when empty
    /// (see [`Element::force_open`]).
    pub fn open(name: impl Into<String>) -> Element {
        Element {
            force_open: true,
            ..Element::new(name)
        }
    }

    // === reading ===

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Child::Element(e) => Some(e),
            Child::Text(_) => None,
        })
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Child elements called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    /// The concatenated text content of this element (not of descendants).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            if let Child::Text(t) = c {
                s.push_str(t);
            }
        }
        s
    }

    /// Whether the element has no attributes and no children.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.children.is_empty()
    }

    // === building ===

    /// Adds an attribute (builder style).
    #[must_use]
    #[allow(clippy::needless_pass_by_value)] // numbers and strings alike, by value
    pub fn with_attr(mut self, name: &str, value: impl ToString) -> Element {
        self.attrs.push((name.to_owned(), value.to_string()));
        self
    }

    /// Adds an attribute when `value` is `Some`.
    #[must_use]
    pub fn with_opt_attr<T: ToString>(mut self, name: &str, value: Option<T>) -> Element {
        if let Some(v) = value {
            self.attrs.push((name.to_owned(), v.to_string()));
        }
        self
    }

    /// Adds a child element.
    #[must_use]
    pub fn with_child(mut self, child: Element) -> Element {
        self.children.push(Child::Element(child));
        self
    }

    /// Adds a child element when `Some`.
    #[must_use]
    pub fn with_opt_child(mut self, child: Option<Element>) -> Element {
        if let Some(c) = child {
            self.children.push(Child::Element(c));
        }
        self
    }

    /// Adds text content.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Element {
        self.children.push(Child::Text(text.into()));
        self
    }

    /// Adds an attribute in place.
    #[allow(clippy::needless_pass_by_value)] // numbers and strings alike, by value
    pub fn set_attr(&mut self, name: &str, value: impl ToString) {
        self.attrs.push((name.to_owned(), value.to_string()));
    }

    /// Adds an attribute in place when `Some`.
    pub fn set_opt_attr<T: ToString>(&mut self, name: &str, value: Option<T>) {
        if let Some(v) = value {
            self.attrs.push((name.to_owned(), v.to_string()));
        }
    }

    /// Adds a child in place.
    pub fn push(&mut self, child: Element) {
        self.children.push(Child::Element(child));
    }

    /// Adds a child in place when `Some`.
    pub fn push_opt(&mut self, child: Option<Element>) {
        if let Some(c) = child {
            self.children.push(Child::Element(c));
        }
    }

    /// `<name>text</name>`.
    pub fn text_element(name: &str, text: impl Into<String>) -> Element {
        Element::new(name).with_text(text)
    }

    // === output ===

    /// libvirt's canonical layout, starting at `indent` levels, with a
    /// trailing newline.
    pub fn write(&self, out: &mut String, indent: usize) {
        for _ in 0..indent {
            out.push_str("  ");
        }
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("='");
            escape_attr_into(out, v);
            out.push('\'');
        }
        let has_elements = self.children.iter().any(|c| matches!(c, Child::Element(_)));
        if self.children.is_empty() && !self.force_open {
            out.push_str("/>\n");
        } else if !has_elements && !self.children.is_empty() {
            out.push('>');
            for c in &self.children {
                if let Child::Text(t) = c {
                    escape_into(out, t);
                }
            }
            out.push_str("</");
            out.push_str(&self.name);
            out.push_str(">\n");
        } else {
            out.push_str(">\n");
            for c in &self.children {
                match c {
                    Child::Element(e) => e.write(out, indent + 1),
                    Child::Text(t) => {
                        // Mixed content is rare (metadata): keep it on its own line.
                        if !t.trim().is_empty() {
                            for _ in 0..=indent {
                                out.push_str("  ");
                            }
                            escape_into(out, t.trim());
                            out.push('\n');
                        }
                    }
                }
            }
            for _ in 0..indent {
                out.push_str("  ");
            }
            out.push_str("</");
            out.push_str(&self.name);
            out.push_str(">\n");
        }
    }

    /// The element as a document in libvirt's layout.
    pub fn to_xml(&self) -> String {
        let mut s = String::with_capacity(1024);
        self.write(&mut s, 0);
        s
    }
}

/// Whether `s` is written as it is by [`escape_into`] and
/// [`escape_attr_into`] (no specials, no control characters): most values.
fn plain(s: &str) -> bool {
    !s.bytes()
        .any(|b| b < 0x20 || matches!(b, b'<' | b'>' | b'&' | b'"' | b'\''))
}

/// Appends `s` escaped as libvirt's `virBufferEscapeString` does: the five
/// XML specials become entities; control characters other than tab,
/// newline and carriage return are dropped. A carriage return (only a
/// character reference can carry one into a value) is written as `&#13;`
/// so that the parser's line-end normalisation does not turn it into a
/// newline: parse → format stays a fixed point.
pub fn escape_into(out: &mut String, s: &str) {
    if plain(s) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
}

/// Appends an attribute value: as [`escape_into`], and tab and newline as
/// character references, which attribute-value normalisation would
/// otherwise turn into spaces on the next parse.
pub fn escape_attr_into(out: &mut String, s: &str) {
    if plain(s) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            c => {
                let mut b = [0u8; 4];
                escape_into(out, c.encode_utf8(&mut b));
            }
        }
    }
}

/// `s` escaped as [`escape_into`] does.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

fn syntax(msg: impl std::fmt::Display) -> XmlError {
    XmlError::new("", XmlErrorKind::Syntax(msg.to_string()))
}

fn start(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, XmlError> {
    let qname = e.name();
    let name: &str = qname.as_ref();
    let name = name.to_owned();
    check_name(&name)?;
    check_attr_syntax(e.attributes_raw())?;
    let mut el = Element::new(name);
    for a in e.attributes() {
        let a = a.map_err(syntax)?;
        let key: &str = a.key.as_ref();
        let key = key.to_owned();
        check_name(&key)?;
        if key == "xmlns" || key.starts_with("xmlns:") {
            // Namespace declarations matter only inside <metadata>; keep them
            // as attributes so those children format back as written.
        }
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(syntax)?
            .into_owned();
        check_chars(&value)?;
        if el.attrs.iter().any(|(k, _)| *k == key) {
            return Err(syntax(format!("attribute '{key}' redefined")));
        }
        el.attrs.push((key, value));
    }
    Ok(el)
}

/// Whether `s` is an XML name (letters, digits and `_:.-`, non-ASCII
/// allowed, not starting with a digit, `.` or `-`). quick-xml is lenient
/// here; libxml2 (so libvirt) is not, and `b'c'` must not become a name.
fn check_name(s: &str) -> Result<(), XmlError> {
    let ok_start = |c: char| c.is_alphabetic() || c == '_' || c == ':' || !c.is_ascii();
    let ok = |c: char| ok_start(c) || c.is_ascii_digit() || c == '.' || c == '-';
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if ok_start(c) && chars.all(ok) => Ok(()),
        _ => Err(syntax(format!("invalid name '{s}'"))),
    }
}

/// Attributes must be separated by white space (`a='1'b='2'` is an error
/// in XML, and in libxml2).
fn check_attr_syntax(raw: &str) -> Result<(), XmlError> {
    let mut quote: Option<char> = None;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                if let Some(&next) = chars.peek()
                    && !next.is_whitespace()
                    && next != '/'
                {
                    return Err(syntax(
                        "attributes construct error: white space required between attributes",
                    ));
                }
            }
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {}
        }
    }
    Ok(())
}

/// XML 1.0 forbids control characters other than tab, newline and carriage
/// return, raw or as character references; libxml2 (so libvirt) refuses
/// them. Accepting them would lose data: the writer drops them.
fn check_chars(s: &str) -> Result<(), XmlError> {
    match s
        .chars()
        .find(|&c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(syntax(format!("invalid character value 0x{:x}", c as u32))),
        None => Ok(()),
    }
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(top) = stack.last_mut() {
        if let Some(Child::Text(t)) = top.children.last_mut() {
            t.push_str(text);
        } else {
            top.children.push(Child::Text(text.to_owned()));
        }
    }
}

/// The deepest nesting accepted, as libxml2's default limit: models recurse
/// over the tree, so hostile input must not reach them unbounded.
pub const MAX_DEPTH: usize = 256;

/// Parses a document into its root element.
///
/// # Errors
/// The text is not well-formed XML, or has no (or more than one) root.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| syntax(format!("{e} at byte {}", reader.error_position())))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() && stack.is_empty() {
                    return Err(syntax("extra content at the end of the document"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(format!("excessive depth in document: {MAX_DEPTH}")));
                }
                stack.push(start(&e)?);
            }
            Event::Empty(e) => {
                let el = start(&e)?;
                match stack.last_mut() {
                    Some(top) => top.children.push(Child::Element(el)),
                    None if root.is_none() => root = Some(el),
                    None => return Err(syntax("extra content at the end of the document")),
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().ok_or_else(|| syntax("unexpected end tag"))?;
                normalize_whitespace(&mut el);
                match stack.last_mut() {
                    Some(top) => top.children.push(Child::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.xml10_content();
                check_chars(&s)?;
                if stack.is_empty() {
                    if !s.trim().is_empty() {
                        return Err(syntax("text outside the root element"));
                    }
                } else {
                    push_text(&mut stack, &s);
                }
            }
            Event::CData(c) => {
                // Line ends are normalised in CDATA as everywhere else
                // (XML 1.0 §2.11), so a formatted `\r` cannot reappear as `\n`.
                let s = c.xml10_content().into_owned();
                check_chars(&s)?;
                push_text(&mut stack, &s);
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(syntax)?.map(String::from)
                } else {
                    let name: &str = r.as_ref();
                    match name {
                        "lt" => Some("<".to_owned()),
                        "gt" => Some(">".to_owned()),
                        "amp" => Some("&".to_owned()),
                        "apos" => Some("'".to_owned()),
                        "quot" => Some("\"".to_owned()),
                        other => return Err(syntax(format!("Entity '{other}' not defined"))),
                    }
                };
                if let Some(s) = resolved {
                    check_chars(&s)?;
                    if stack.is_empty() {
                        return Err(syntax("text outside the root element"));
                    }
                    push_text(&mut stack, &s);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(syntax(format!(
            "premature end of data in tag {}",
            stack.last().map(|e| e.name.as_str()).unwrap_or("")
        )));
    }
    root.ok_or_else(|| syntax("document is empty"))
}

/// Drops whitespace-only text next to child elements (formatting between
/// elements), keeping text of text-only elements exactly as written.
fn normalize_whitespace(el: &mut Element) {
    if el.children.iter().any(|c| matches!(c, Child::Element(_))) {
        el.children.retain(|c| match c {
            Child::Text(t) => !t.trim().is_empty(),
            Child::Element(_) => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_canonical_layout() {
        let text = "<domain type='kvm'>\n  <name>a&amp;b</name>\n  <devices>\n    <disk type='file' device='disk'>\n      <source file='/x&apos;y'/>\n    </disk>\n  </devices>\n</domain>\n";
        let el = parse(text).expect("parses");
        assert_eq!(el.child("name").expect("name").text(), "a&b");
        assert_eq!(el.to_xml(), text);
    }

    #[test]
    fn double_quotes_and_entities_normalise() {
        let el = parse(r#"<a x="1 &quot;2&quot;"><!-- c --><b>&#65;&lt;</b></a>"#).expect("parses");
        assert_eq!(
            el.to_xml(),
            "<a x='1 &quot;2&quot;'>\n  <b>A&lt;</b>\n</a>\n"
        );
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text",
            "<a x='1' x='2'/>",
            "<a>&bogus;</a>",
            "<a><b></a>",
            "<a>\u{1}</a>",
            "<a>&#1;</a>",
            "<a><![CDATA[\u{2}]]></a>",
            "<a x='&#2;'/>",
            "<a x='a\u{1}'/>",
            "<a b'c'='1'/>",
            "<a [b='1'/>",
            "<a b='c'd='e'/>",
            "<a b=\"c\"d=\"e\"></a>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&deep).is_err());
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn forced_open_elements() {
        let el = Element::new("domain")
            .with_child(Element::open("devices"))
            .with_child(Element::open("hyperv").with_attr("mode", "custom"))
            .with_child(Element::open("name").with_text("x"))
            .with_child(Element::open("ip").with_child(Element::new("dhcp")));
        assert_eq!(
            el.to_xml(),
            "<domain>\n  <devices>\n  </devices>\n  <hyperv mode='custom'>\n  </hyperv>\n  \
             <name>x</name>\n  <ip>\n    <dhcp/>\n  </ip>\n</domain>\n"
        );
        assert!(!parse("<a></a>").expect("xml").force_open);
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(escape("a\u{1}b\tc"), "ab\tc");
    }

    #[test]
    fn carriage_returns_and_attribute_whitespace_survive_a_round_trip() {
        // CDATA is line-end normalised like text; a `\r` that only a
        // character reference can bring in is written back as one.
        for doc in [
            "<a>x<![CDATA[1\r\r2]]>y</a>",
            "<a>x&#13;y</a>",
            "<a b='x&#10;y&#9;z&#13;w'/>",
        ] {
            let once = parse(doc).unwrap().to_xml();
            let twice = parse(&once).unwrap().to_xml();
            assert_eq!(once, twice, "{doc}");
        }
        assert_eq!(
            parse("<a>1<![CDATA[\r\n]]>2</a>").unwrap().to_xml(),
            "<a>1\n2</a>\n"
        );
        assert_eq!(
            parse("<a b='x&#10;y'/>").unwrap().to_xml(),
            "<a b='x&#10;y'/>\n"
        );
    }
}
