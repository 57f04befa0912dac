//! Secrets of storage sources: `<auth>`, `<encryption>` and per-device
//! `<seclabel>`s (also used by character devices).

use crate::xml::{Element, Node, XmlError};

use super::super::util::{missing, yes_no};

/// `<secret>` reference: by UUID or usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretRef {
    /// `type=` as written (`iscsi`, `ceph`, `passphrase`, ...).
    pub kind: Option<String>,
    /// `uuid=`.
    pub uuid: Option<String>,
    /// `usage=`.
    pub usage: Option<String>,
}

/// `<auth>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// `type=` (`chap` for iSCSI pools; rarely on disks).
    pub kind: Option<String>,
    /// `username=`.
    pub username: String,
    /// The secret.
    pub secret: SecretRef,
}

/// `<encryption>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encryption {
    /// `format=`.
    pub format: String,
    /// `engine=`.
    pub engine: Option<String>,
    /// `<secret>`s.
    pub secrets: Vec<SecretRef>,
    /// `<cipher name= size= mode= hash=>` attributes in order.
    pub cipher: Option<Vec<(String, String)>>,
    /// `<ivgen name= hash=>` attributes in order.
    pub ivgen: Option<Vec<(String, String)>>,
}

/// A per-device `<seclabel>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceSeclabel {
    /// `model=`.
    pub model: Option<String>,
    /// `relabel=` (default yes).
    pub relabel: bool,
    /// `labelskip=` (live only).
    pub labelskip: bool,
    /// `<label>`.
    pub label: Option<String>,
}

// === parse ===

pub(crate) fn attrs_of(n: Node<'_>) -> Vec<(String, String)> {
    n.el.attrs.clone()
}

pub(crate) fn parse_secret(n: Node<'_>) -> SecretRef {
    SecretRef {
        kind: n.attr("type").map(str::to_owned),
        uuid: n.attr("uuid").map(str::to_owned),
        usage: n.attr("usage").map(str::to_owned),
    }
}

pub(crate) fn parse_auth(n: Node<'_>) -> Result<Auth, XmlError> {
    let username = n
        .attr("username")
        .ok_or_else(|| missing(n.attr_path("username")))?
        .to_owned();
    let s = n.required_child("secret")?;
    let s = s.node();
    let secret = parse_secret(s);
    if secret.uuid.is_some() == secret.usage.is_some() {
        return Err(XmlError::invalid(
            s.path(),
            "either secret uuid or usage expected",
        ));
    }
    if let Some(u) = &secret.uuid
        && super::super::util::Uuid::parse(u).is_none()
    {
        return Err(XmlError::bad_value(
            s.attr_path("uuid"),
            u,
            "malformed uuid element",
        ));
    }
    Ok(Auth {
        kind: n.attr("type").map(str::to_owned),
        username,
        secret,
    })
}

pub(crate) fn parse_encryption(n: Node<'_>) -> Result<Encryption, XmlError> {
    let format = n.required_attr("format")?;
    if !["default", "qcow", "luks", "luks2", "luks-any"].contains(&format) {
        return Err(XmlError::bad_value(
            n.attr_path("format"),
            format,
            "unknown volume encryption format type",
        ));
    }
    let mut e = Encryption {
        format: format.to_owned(),
        engine: n.attr("engine").map(str::to_owned),
        ..Encryption::default()
    };
    if let Some(eng) = &e.engine
        && !["qemu", "librbd"].contains(&eng.as_str())
    {
        return Err(XmlError::bad_value(
            n.attr_path("engine"),
            eng,
            "unknown volume encryption engine type",
        ));
    }
    for s in n.children("secret") {
        let s = s.node();
        let sec = parse_secret(s);
        if sec.kind.as_deref() != Some("passphrase") {
            return Err(XmlError::bad_value(
                s.attr_path("type"),
                sec.kind.unwrap_or_default(),
                "unknown volume encryption secret type",
            ));
        }
        e.secrets.push(sec);
    }
    e.cipher = n.child("cipher").map(|c| attrs_of(c.node()));
    e.ivgen = n.child("ivgen").map(|c| attrs_of(c.node()));
    Ok(e)
}

pub(crate) fn parse_device_seclabels(n: Node<'_>) -> Result<Vec<DeviceSeclabel>, XmlError> {
    let mut out: Vec<DeviceSeclabel> = Vec::new();
    let list = n.children("seclabel");
    for s in &list {
        let s = s.node();
        let model = s.attr("model").map(str::to_owned);
        if model.is_some() && out.iter().any(|o| o.model == model) {
            return Err(XmlError::invalid(
                s.path(),
                format!(
                    "seclabel for model {} is already provided",
                    model.as_deref().unwrap_or("")
                ),
            ));
        }
        let explicit = s.yes_no_attr("relabel")?;
        let relabel = explicit.unwrap_or(true);
        let label = s
            .child("label")
            .map(|l| l.node().text())
            .filter(|t| !t.is_empty());
        let m = model.as_deref().unwrap_or("(null)");
        if label.is_some() && !relabel {
            return Err(XmlError::invalid(
                s.path(),
                format!("Cannot specify a label if relabelling is turned off. model={m}"),
            ));
        }
        if label.is_none() && explicit == Some(true) {
            return Err(XmlError::invalid(
                s.path(),
                format!("Cannot specify relabel if label is missing. model={m}"),
            ));
        }
        out.push(DeviceSeclabel {
            model,
            relabel,
            labelskip: false,
            label,
        });
    }
    if out.len() > 1 && out.iter().any(|s| s.model.is_none()) {
        return Err(XmlError::invalid(
            n.path(),
            "missing security model when using multiple labels",
        ));
    }
    Ok(out)
}

// === format ===

pub(crate) fn format_secret(s: &SecretRef) -> Element {
    Element::new("secret")
        .with_opt_attr("type", s.kind.as_deref())
        .with_opt_attr("uuid", s.uuid.as_deref())
        .with_opt_attr("usage", s.usage.as_deref())
}

pub(crate) fn format_auth(a: &Auth) -> Element {
    Element::new("auth")
        .with_opt_attr("type", a.kind.as_deref())
        .with_attr("username", &a.username)
        .with_child(format_secret(&a.secret))
}

pub(crate) fn format_encryption(e: &Encryption) -> Element {
    let mut el = Element::new("encryption")
        .with_attr("format", &e.format)
        .with_opt_attr("engine", e.engine.as_deref());
    for s in &e.secrets {
        el.push(format_secret(s));
    }
    if let Some(c) = &e.cipher {
        let mut ce = Element::new("cipher");
        ce.attrs.clone_from(c);
        el.push(ce);
    }
    if let Some(c) = &e.ivgen {
        let mut ce = Element::new("ivgen");
        ce.attrs.clone_from(c);
        el.push(ce);
    }
    el
}

pub(crate) fn format_device_seclabels(list: &[DeviceSeclabel], out: &mut Element) {
    for s in list {
        let mut e = Element::new("seclabel").with_opt_attr("model", s.model.as_deref());
        if s.labelskip {
            e.set_attr("labelskip", "yes");
        } else {
            e.set_attr("relabel", yes_no(s.relabel));
        }
        if let Some(l) = &s.label {
            e.push(Element::text_element("label", l));
        }
        out.push(e);
    }
}
