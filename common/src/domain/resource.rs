//! `<resource>` (cgroup partition, fibre channel app id) and `<idmap>`.

use crate::xml::{Element, Node, XmlError};

use super::util::{Ctx, missing};

/// `<resource>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// `<partition>`.
    pub partition: Option<String>,
    /// `<fibrechannel appid=>`.
    pub appid: Option<String>,
}

/// One `<uid>`/`<gid>` mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMapEntry {
    /// `start=`.
    pub start: u32,
    /// `target=`.
    pub target: u32,
    /// `count=`.
    pub count: u32,
}

/// `<idmap>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    /// `<uid>`s.
    pub uids: Vec<IdMapEntry>,
    /// `<gid>`s.
    pub gids: Vec<IdMapEntry>,
}

pub(crate) fn parse_resource(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Resource, XmlError> {
    ctx.check(n, &[], &["partition", "fibrechannel"])?;
    ctx.check_leaves(n, &["partition"])?;
    ctx.check_child(n, "fibrechannel", &["appid"], &[])?;
    let partition = n.child("partition").map(|p| p.node().text());
    if let Some(p) = &partition
        && !p.starts_with('/')
    {
        return Err(XmlError::bad_value(
            n.child_path("partition", None),
            p,
            "resource partition must start with '/':",
        ));
    }
    let appid = match n.child("fibrechannel") {
        None => None,
        Some(f) => {
            let f = f.node();
            let a = f.required_attr("appid")?;
            if a.is_empty() || a.len() > 128 || !a.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(XmlError::bad_value(
                    f.attr_path("appid"),
                    a,
                    "Wrong format for appid value",
                ));
            }
            Some(a.to_owned())
        }
    };
    Ok(Resource { partition, appid })
}

pub(crate) fn format_resource(r: &Resource) -> Option<Element> {
    let mut e = Element::new("resource");
    if let Some(p) = &r.partition {
        e.push(Element::text_element("partition", p));
    }
    if let Some(a) = &r.appid {
        e.push(Element::new("fibrechannel").with_attr("appid", a));
    }
    (!e.children.is_empty()).then_some(e)
}

fn entries(n: Node<'_>, name: &'static str) -> Result<Vec<IdMapEntry>, XmlError> {
    let mut out = Vec::new();
    for c in n.children(name) {
        let c = c.node();
        let req = |a: &str| -> Result<u32, XmlError> {
            c.uint_attr(a)?.ok_or_else(|| missing(c.attr_path(a)))
        };
        out.push(IdMapEntry {
            start: req("start")?,
            target: req("target")?,
            count: req("count")?,
        });
    }
    out.sort_by_key(|e| e.start);
    if out.first().is_some_and(|e| e.start != 0) {
        return Err(XmlError::invalid(
            n.path(),
            "You must map the root user of container",
        ));
    }
    Ok(out)
}

pub(crate) fn parse_idmap(n: Node<'_>) -> Result<IdMap, XmlError> {
    Ok(IdMap {
        uids: entries(n, "uid")?,
        gids: entries(n, "gid")?,
    })
}

pub(crate) fn format_idmap(m: &IdMap) -> Option<Element> {
    let mut e = Element::new("idmap");
    for (name, list) in [("uid", &m.uids), ("gid", &m.gids)] {
        for x in list {
            e.push(
                Element::new(name)
                    .with_attr("start", x.start)
                    .with_attr("target", x.target)
                    .with_attr("count", x.count),
            );
        }
    }
    (!e.children.is_empty()).then_some(e)
}
