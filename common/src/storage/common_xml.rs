//! Parsing and formatting of the shared types in [`super::common`].

use crate::xml::values::{Uuid, str_to_i32, str_to_u32p};
use crate::xml::{Element, Node, XmlError, XmlErrorKind};

use super::common::{
    AuthDef, AuthType, Cipher, Encryption, EncryptionEngine, EncryptionFormat, EncryptionSecret,
    EncryptionSecretType, Ivgen, Perms, SecretLookup,
};
use super::util::{attr_string, child_string, deep_text, invalid, xpath_long_long};

// === permissions ===

/// `virStorageDefParsePerms` on a `<permissions>` element (`None`: the
/// element is absent, every field unset).
///
/// # Errors
/// Malformed mode (not octal, or above `0777`), owner or group.
pub fn parse_perms(node: Option<&Node<'_>>) -> Result<Perms, XmlError> {
    let Some(node) = node else {
        return Ok(Perms::default());
    };
    let mut perms = Perms::default();
    if let Some(mode) = child_string(node, "mode") {
        match str_to_i32(&mode, 8) {
            Some(m) if m & !0o777 == 0 => perms.mode = u32::try_from(m).ok(),
            _ => {
                return Err(XmlError::bad_value(
                    node.child_path("mode", None),
                    mode,
                    "malformed octal mode",
                ));
            }
        }
    }
    perms.uid = parse_id(node, "owner")?;
    perms.gid = parse_id(node, "group")?;
    perms.label = child_string(node, "label");
    Ok(perms)
}

/// An `<owner>`/`<group>`: an XPath number that fits `uid_t`, or `-1`.
fn parse_id(node: &Node<'_>, name: &str) -> Result<Option<u32>, XmlError> {
    let Some(el) = node.el.child(name) else {
        return Ok(None);
    };
    let text = deep_text(el);
    let what = if name == "owner" { "owner" } else { "group" };
    let bad = || {
        XmlError::bad_value(
            node.child_path(name, None),
            text.trim(),
            format!("malformed {what} element"),
        )
    };
    let val = xpath_long_long(&text).ok_or_else(bad)?;
    if val == -1 {
        return Ok(None);
    }
    let id = u32::try_from(val).map_err(|_| bad())?;
    // (uid_t)-1 written as 4294967295 is "unset" too.
    Ok((id != u32::MAX).then_some(id))
}

/// `<permissions>` as libvirt writes it, or `None` when nothing is set.
pub fn format_perms(perms: &Perms) -> Option<Element> {
    if !perms.is_set() {
        return None;
    }
    let mut el = Element::new("permissions");
    if let Some(mode) = perms.mode {
        el.push(Element::text_element("mode", format!("0{mode:o}")));
    }
    if let Some(uid) = perms.uid {
        el.push(Element::text_element(
            "owner",
            uid.cast_signed().to_string(),
        ));
    }
    if let Some(gid) = perms.gid {
        el.push(Element::text_element(
            "group",
            gid.cast_signed().to_string(),
        ));
    }
    if let Some(label) = &perms.label {
        el.push(Element::text_element("label", label.clone()));
    }
    Some(el)
}

// === secrets and auth ===

/// `virSecretLookupParseSecret`: exactly one of `uuid` and `usage`.
///
/// # Errors
/// Neither or both, or a malformed UUID.
pub fn parse_secret_lookup(node: &Node<'_>) -> Result<SecretLookup, XmlError> {
    match (node.attr("uuid"), node.attr("usage")) {
        (None, None) => Err(invalid(
            node.path(),
            "missing secret uuid or usage attribute",
        )),
        (Some(_), Some(_)) => Err(invalid(node.path(), "either secret uuid or usage expected")),
        (Some(u), None) => u
            .parse::<Uuid>()
            .map(SecretLookup::Uuid)
            .map_err(|()| XmlError::bad_value(node.attr_path("uuid"), u, "invalid secret uuid")),
        (None, Some(usage)) => Ok(SecretLookup::Usage(usage.to_owned())),
    }
}

/// Adds `uuid=`/`usage=` to a `<secret>` element.
pub fn format_secret_lookup(el: Element, lookup: &SecretLookup) -> Element {
    match lookup {
        SecretLookup::Uuid(u) => el.with_attr("uuid", u),
        SecretLookup::Usage(s) => el.with_attr("usage", s),
    }
}

/// `virStorageAuthDefParse` on an `<auth>` element.
///
/// # Errors
/// Missing username or `<secret>`, unknown type, bad secret.
pub fn parse_auth(node: &Node<'_>) -> Result<AuthDef, XmlError> {
    let username = attr_string(node, "username")
        .ok_or_else(|| XmlError::new(node.attr_path("username"), XmlErrorKind::Missing))?;
    let auth_type = match attr_string(node, "type") {
        None => AuthType::None,
        Some(t) => t.parse::<AuthType>().map_err(|()| {
            XmlError::bad_value(node.attr_path("type"), t.as_str(), "unknown auth type")
        })?,
    };
    let secret = node.required_child("secret")?;
    let secret = secret.node();
    Ok(AuthDef {
        auth_type,
        username,
        secret_type: secret.attr("type").map(str::to_owned),
        secret: parse_secret_lookup(&secret)?,
    })
}

/// `<auth>` as `virStorageAuthDefFormat` writes it.
pub fn format_auth(auth: &AuthDef) -> Element {
    let mut el = Element::new("auth");
    if auth.auth_type != AuthType::None {
        el.set_attr("type", auth.auth_type);
    }
    el.set_attr("username", &auth.username);
    let secret = Element::new("secret").with_opt_attr("type", auth.secret_type.as_deref());
    el.with_child(format_secret_lookup(secret, &auth.secret))
}

// === encryption ===

/// `virStorageEncryptionParseNode` on an `<encryption>` element.
///
/// # Errors
/// Unknown format/engine/secret type, bad secrets, bad cipher or ivgen.
pub fn parse_encryption(node: &Node<'_>) -> Result<Encryption, XmlError> {
    let format = match attr_string(node, "format") {
        None => {
            return Err(invalid(
                node.attr_path("format"),
                "unknown volume encryption format",
            ));
        }
        Some(f) => f.parse::<EncryptionFormat>().map_err(|()| {
            XmlError::bad_value(
                node.attr_path("format"),
                f.as_str(),
                "unknown volume encryption format type",
            )
        })?,
    };
    let engine = node.parse_attr::<EncryptionEngine>("engine")?;
    let mut secrets = Vec::new();
    for s in node.children("secret") {
        let s = s.node();
        let secret_type = match attr_string(&s, "type") {
            None => {
                return Err(invalid(
                    s.attr_path("type"),
                    "unknown volume encryption secret type",
                ));
            }
            Some(t) => t.parse::<EncryptionSecretType>().map_err(|()| {
                XmlError::bad_value(
                    s.attr_path("type"),
                    t.as_str(),
                    "unknown volume encryption secret type",
                )
            })?,
        };
        secrets.push(EncryptionSecret {
            secret_type,
            lookup: parse_secret_lookup(&s)?,
        });
    }
    let mut cipher = None;
    let mut ivgen = None;
    if format == EncryptionFormat::Luks {
        if let Some(c) = node.child("cipher") {
            let c = c.node();
            let name = c.required_attr("name")?.to_owned();
            let size = c.required_attr("size")?;
            let size = str_to_u32p(size, 10).ok_or_else(|| {
                XmlError::bad_value(c.attr_path("size"), size, "cannot parse cipher size:")
            })?;
            cipher = Some(Cipher {
                name,
                size,
                mode: c.attr("mode").map(str::to_owned),
                hash: c.attr("hash").map(str::to_owned),
            });
        }
        if let Some(i) = node.child("ivgen") {
            let i = i.node();
            if cipher.is_none() {
                return Err(invalid(
                    i.path(),
                    "ivgen element found, but cipher is missing",
                ));
            }
            ivgen = Some(Ivgen {
                name: i.required_attr("name")?.to_owned(),
                hash: i.attr("hash").map(str::to_owned),
            });
        }
    }
    Ok(Encryption {
        format,
        engine,
        secrets,
        cipher,
        ivgen,
    })
}

/// `<encryption>` as `virStorageEncryptionFormat` writes it (open and
/// close tags even when empty).
pub fn format_encryption(enc: &Encryption) -> Element {
    let mut el = Element::open("encryption")
        .with_attr("format", enc.format)
        .with_opt_attr("engine", enc.engine);
    for s in &enc.secrets {
        let secret = Element::new("secret").with_attr("type", s.secret_type);
        el.push(format_secret_lookup(secret, &s.lookup));
    }
    if enc.format == EncryptionFormat::Luks && (enc.cipher.is_some() || enc.ivgen.is_some()) {
        if let Some(c) = &enc.cipher {
            el.push(
                Element::new("cipher")
                    .with_attr("name", &c.name)
                    .with_attr("size", c.size)
                    .with_opt_attr("mode", c.mode.as_deref())
                    .with_opt_attr("hash", c.hash.as_deref()),
            );
        }
        if let Some(i) = &enc.ivgen {
            el.push(
                Element::new("ivgen")
                    .with_attr("name", &i.name)
                    .with_opt_attr("hash", i.hash.as_deref()),
            );
        }
    }
    el
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    fn perms(xml: &str) -> Result<Perms, XmlError> {
        let el = parse(xml).expect("xml");
        parse_perms(Some(&Node::root(&el)))
    }

    #[test]
    fn permissions() {
        let p = perms("<permissions><mode>0700</mode><owner>-1</owner><group>4294967295</group><label>x</label></permissions>")
            .expect("ok");
        assert_eq!(p.mode, Some(0o700));
        assert_eq!(p.uid, None);
        assert_eq!(p.gid, None);
        let p =
            perms("<permissions><owner>0744</owner><group>12</group></permissions>").expect("ok");
        assert_eq!(p.uid, Some(744));
        assert_eq!(p.gid, Some(12));
        assert!(perms("<permissions><mode>1777</mode></permissions>").is_err());
        assert!(perms("<permissions><mode>abc</mode></permissions>").is_err());
        assert!(perms("<permissions><mode>-1</mode></permissions>").is_err());
        assert!(perms("<permissions><owner>x</owner></permissions>").is_err());
        assert!(perms("<permissions><owner>-2</owner></permissions>").is_err());
        assert!(perms("<permissions><owner>4294967296</owner></permissions>").is_err());
        let el = format_perms(&Perms {
            mode: Some(0),
            uid: Some(4_294_967_294),
            gid: None,
            label: None,
        })
        .expect("set");
        assert_eq!(
            el.to_xml(),
            "<permissions>\n  <mode>00</mode>\n  <owner>-2</owner>\n</permissions>\n"
        );
    }

    #[test]
    fn auth() {
        let el = parse("<auth username='u' type='ceph'><secret usage='x'/></auth>").expect("xml");
        let a = parse_auth(&Node::root(&el)).expect("auth");
        assert_eq!(
            format_auth(&a).to_xml(),
            "<auth type='ceph' username='u'>\n  <secret usage='x'/>\n</auth>\n"
        );
        for bad in [
            "<auth type='ceph'><secret usage='x'/></auth>",
            "<auth username='u' type='foo'><secret usage='x'/></auth>",
            "<auth username='u'/>",
            "<auth username='u'><secret/></auth>",
            "<auth username='u'><secret usage='x' uuid='y'/></auth>",
            "<auth username='u'><secret uuid='y'/></auth>",
        ] {
            let el = parse(bad).expect("xml");
            assert!(parse_auth(&Node::root(&el)).is_err(), "{bad}");
        }
    }

    #[test]
    fn encryption() {
        let el = parse("<encryption format='qcow'/>").expect("xml");
        let e = parse_encryption(&Node::root(&el)).expect("enc");
        assert_eq!(
            format_encryption(&e).to_xml(),
            "<encryption format='qcow'>\n</encryption>\n"
        );
        for bad in [
            "<encryption/>",
            "<encryption format='foo'/>",
            "<encryption format='luks' engine='default'/>",
            "<encryption format='luks'><secret uuid='f52a81b2-424e-490c-823d-6bd4235bc572'/></encryption>",
            "<encryption format='luks'><ivgen name='x'/></encryption>",
            "<encryption format='luks'><cipher name='x'/></encryption>",
            "<encryption format='luks'><cipher name='x' size='-1'/></encryption>",
        ] {
            let el = parse(bad).expect("xml");
            assert!(parse_encryption(&Node::root(&el)).is_err(), "{bad}");
        }
    }
}
