//! Domain `<seclabel>`s, `<keywrap>` and `<launchSecurity>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Ctx, Fmt, child_text, child_uint, missing, on_off, yes_no};

xml_enum! {
    /// `<seclabel type=>`.
    pub enum SeclabelType { None = "none", Dynamic = "dynamic", Static = "static" }
}

/// A domain security label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seclabel {
    /// `type=`.
    pub kind: SeclabelType,
    /// `model=`.
    pub model: Option<String>,
    /// `relabel=`.
    pub relabel: bool,
    /// `<label>`.
    pub label: Option<String>,
    /// `<imagelabel>`.
    pub imagelabel: Option<String>,
    /// `<baselabel>` (dynamic).
    pub baselabel: Option<String>,
}

/// `<keywrap>`: `<cipher name='aes'|'dea' state=>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keywrap {
    /// AES wrapping.
    pub aes: Option<bool>,
    /// DEA wrapping.
    pub dea: Option<bool>,
}

/// AMD SEV / SEV-SNP parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sev {
    /// `kernelHashes=`.
    pub kernel_hashes: Option<bool>,
    /// `authorKey=` (SNP).
    pub author_key: Option<bool>,
    /// `vcek=` (SNP).
    pub vcek: Option<bool>,
    /// `<cbitpos>`.
    pub cbitpos: Option<u32>,
    /// `<reducedPhysBits>`.
    pub reduced_phys_bits: Option<u32>,
    /// `<policy>`.
    pub policy: u64,
    /// `<dhCert>`.
    pub dh_cert: Option<String>,
    /// `<session>`.
    pub session: Option<String>,
    /// SNP `<guestVisibleWorkarounds>`, `<idBlock>`, `<idAuth>`, `<hostData>`.
    pub snp_extra: Vec<(String, String)>,
}

/// `<launchSecurity>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchSecurity {
    /// `type='sev'`.
    Sev(Sev),
    /// `type='sev-snp'`.
    SevSnp(Sev),
    /// `type='s390-pv'`.
    S390Pv,
}

pub(crate) fn parse_seclabels(root: Node<'_>, ctx: &Ctx<'_>) -> Result<Vec<Seclabel>, XmlError> {
    let list = root.children("seclabel");
    let mut out: Vec<Seclabel> = Vec::new();
    for s in &list {
        let s = s.node();
        ctx.check(
            s,
            &["type", "model", "relabel"],
            &["label", "imagelabel", "baselabel"],
        )?;
        ctx.check_leaves(s, &["label", "imagelabel", "baselabel"])?;
        let kind: SeclabelType = match s.attr("type") {
            None => SeclabelType::Dynamic,
            Some(t) => t.parse().map_err(|_| {
                XmlError::bad_value(s.attr_path("type"), t, "invalid security type")
            })?,
        };
        let relabel = match s.yes_no_attr("relabel")? {
            Some(r) => {
                if kind == SeclabelType::Dynamic && !r {
                    return Err(XmlError::invalid(
                        s.path(),
                        "dynamic label type must use resource relabeling",
                    ));
                }
                if kind == SeclabelType::None && r {
                    return Err(XmlError::invalid(
                        s.path(),
                        "resource relabeling is not compatible with 'none' label type",
                    ));
                }
                r
            }
            None => kind == SeclabelType::Dynamic,
        };
        let live_or_static = kind == SeclabelType::Static || !ctx.inactive();
        let label = if live_or_static && kind != SeclabelType::None {
            child_text(s, "label")
        } else {
            None
        };
        if kind == SeclabelType::Static && label.is_none() {
            return Err(XmlError::invalid(s.path(), "security label is missing"));
        }
        let imagelabel = if relabel && live_or_static && kind != SeclabelType::None {
            child_text(s, "imagelabel")
        } else {
            None
        };
        let baselabel = if kind == SeclabelType::Dynamic {
            child_text(s, "baselabel")
        } else {
            None
        };
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
        out.push(Seclabel {
            kind,
            model,
            relabel,
            label,
            imagelabel,
            baselabel,
        });
    }
    if out.len() > 1 && out.iter().any(|s| s.model.is_none()) {
        return Err(XmlError::invalid(
            "seclabel",
            "missing security model when using multiple labels",
        ));
    }
    Ok(out)
}

pub(crate) fn format_seclabel(s: &Seclabel, flags: &Fmt) -> Element {
    let mut e = Element::new("seclabel")
        .with_attr("type", s.kind)
        .with_opt_attr("model", s.model.as_deref());
    if s.kind == SeclabelType::None {
        return e;
    }
    e.set_attr("relabel", yes_no(s.relabel));
    let skip_live = flags.inactive && s.kind == SeclabelType::Dynamic;
    if let Some(l) = &s.label
        && !skip_live
    {
        e.push(Element::text_element("label", l));
    }
    if s.relabel
        && !skip_live
        && let Some(l) = &s.imagelabel
    {
        e.push(Element::text_element("imagelabel", l));
    }
    if s.kind == SeclabelType::Dynamic
        && let Some(l) = &s.baselabel
    {
        e.push(Element::text_element("baselabel", l));
    }
    e
}

pub(crate) fn parse_keywrap(n: Node<'_>) -> Result<Keywrap, XmlError> {
    let mut k = Keywrap::default();
    for c in n.children("cipher") {
        let c = c.node();
        let name = c.required_attr("name")?;
        let state = c
            .on_off_attr("state")?
            .ok_or_else(|| missing(c.attr_path("state")))?;
        let slot = match name {
            "aes" => &mut k.aes,
            "dea" => &mut k.dea,
            other => {
                return Err(XmlError::bad_value(
                    c.attr_path("name"),
                    other,
                    "cipher name is not supported:",
                ));
            }
        };
        if slot.is_some() {
            return Err(XmlError::invalid(
                c.path(),
                format!(
                    "A domain definition can have no more than one cipher node with name {name}"
                ),
            ));
        }
        *slot = Some(state);
    }
    Ok(k)
}

pub(crate) fn format_keywrap(k: &Keywrap) -> Option<Element> {
    let mut e = Element::new("keywrap");
    for (name, v) in [("aes", k.aes), ("dea", k.dea)] {
        if let Some(v) = v {
            e.push(
                Element::new("cipher")
                    .with_attr("name", name)
                    .with_attr("state", on_off(v)),
            );
        }
    }
    (!e.children.is_empty()).then_some(e)
}

fn parse_hex_u64(s: &str) -> Option<u64> {
    let h = s.trim();
    let h = h
        .strip_prefix("0x")
        .or_else(|| h.strip_prefix("0X"))
        .unwrap_or(h);
    if h.is_empty() {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

const SNP_EXTRA: &[&str] = &["guestVisibleWorkarounds", "idBlock", "idAuth", "hostData"];

/// With the validate flag: `<keywrap>` and `<launchSecurity>` under `root`.
pub(crate) fn check(root: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    ctx.check_child(root, "keywrap", &[], &["cipher"])?;
    if let Some(k) = root.child("keywrap") {
        ctx.check_child(k.node(), "cipher", &["name", "state"], &[])?;
    }
    let mut children = vec!["policy", "cbitpos", "reducedPhysBits", "dhCert", "session"];
    children.extend(SNP_EXTRA);
    ctx.check_child(
        root,
        "launchSecurity",
        &["type", "kernelHashes", "authorKey", "vcek"],
        &children,
    )?;
    if let Some(l) = root.child("launchSecurity") {
        ctx.check_leaves(l.node(), &children)?;
    }
    Ok(())
}

pub(crate) fn parse_launch_security(n: Node<'_>) -> Result<LaunchSecurity, XmlError> {
    let t = n.attr("type").ok_or_else(|| missing(n.attr_path("type")))?;
    let snp = match t {
        "sev" => false,
        "sev-snp" => true,
        "s390-pv" => return Ok(LaunchSecurity::S390Pv),
        other => {
            return Err(XmlError::bad_value(
                n.attr_path("type"),
                other,
                "unsupported launch security type",
            ));
        }
    };
    let policy = match child_text(n, "policy") {
        None if snp => 0x30000,
        None => {
            return Err(XmlError::invalid(
                n.path(),
                "failed to get launch security policy",
            ));
        }
        Some(p) => parse_hex_u64(&p).ok_or_else(|| {
            XmlError::bad_value(
                n.child_path("policy", None),
                p,
                "Invalid launch security policy",
            )
        })?,
    };
    let mut sev = Sev {
        kernel_hashes: n.yes_no_attr("kernelHashes")?,
        author_key: if snp {
            n.yes_no_attr("authorKey")?
        } else {
            None
        },
        vcek: if snp { n.yes_no_attr("vcek")? } else { None },
        cbitpos: child_uint(n, "cbitpos")?,
        reduced_phys_bits: child_uint(n, "reducedPhysBits")?,
        policy,
        ..Sev::default()
    };
    if snp {
        for name in SNP_EXTRA {
            if let Some(v) = child_text(n, name) {
                sev.snp_extra.push(((*name).to_owned(), v));
            }
        }
        Ok(LaunchSecurity::SevSnp(sev))
    } else {
        sev.dh_cert = child_text(n, "dhCert");
        sev.session = child_text(n, "session");
        Ok(LaunchSecurity::Sev(sev))
    }
}

pub(crate) fn format_launch_security(ls: &LaunchSecurity) -> Element {
    let (ty, sev, snp) = match ls {
        LaunchSecurity::S390Pv => {
            return Element::new("launchSecurity").with_attr("type", "s390-pv");
        }
        LaunchSecurity::Sev(s) => ("sev", s, false),
        LaunchSecurity::SevSnp(s) => ("sev-snp", s, true),
    };
    let mut e = Element::new("launchSecurity").with_attr("type", ty);
    if snp {
        e.set_opt_attr("authorKey", sev.author_key.map(yes_no));
        e.set_opt_attr("vcek", sev.vcek.map(yes_no));
    }
    e.set_opt_attr("kernelHashes", sev.kernel_hashes.map(yes_no));
    if let Some(v) = sev.cbitpos {
        e.push(Element::text_element("cbitpos", v.to_string()));
    }
    if let Some(v) = sev.reduced_phys_bits {
        e.push(Element::text_element("reducedPhysBits", v.to_string()));
    }
    let policy = if snp {
        format!("0x{:016x}", sev.policy)
    } else {
        format!("0x{:04x}", sev.policy)
    };
    e.push(Element::text_element("policy", policy));
    for (name, v) in &sev.snp_extra {
        e.push(Element::text_element(name, v));
    }
    if let Some(v) = &sev.dh_cert {
        e.push(Element::text_element("dhCert", v));
    }
    if let Some(v) = &sev.session {
        e.push(Element::text_element("session", v));
    }
    e
}
