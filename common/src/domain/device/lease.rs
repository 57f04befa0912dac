//! `<lease>`: lock manager leases.

use crate::xml::{Element, Node, XmlError};

use super::super::util::{Ctx, missing};

/// A lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// `<lockspace>`.
    pub lockspace: Option<String>,
    /// `<key>`.
    pub key: String,
    /// `<target path=>`.
    pub path: String,
    /// `<target offset=>`.
    pub offset: Option<u64>,
}

impl Lease {
    /// Parses a `<lease>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Lease, XmlError> {
        ctx.check(n, &[], &["lockspace", "key", "target"])?;
        ctx.check_leaves(n, &["lockspace", "key"])?;
        ctx.check_child(n, "target", &["path", "offset"], &[])?;
        let t = n.required_child("target")?;
        let t = t.node();
        Ok(Lease {
            lockspace: n.child("lockspace").map(|c| c.node().text()),
            key: n
                .child("key")
                .map(|c| c.node().text())
                .ok_or_else(|| missing(n.child_path("key", None)))?,
            path: t.required_attr("path")?.to_owned(),
            offset: t.uint_attr("offset")?,
        })
    }

    /// Formats the `<lease>`.
    pub(crate) fn format(&self) -> Element {
        let mut e = Element::new("lease");
        if let Some(l) = &self.lockspace {
            e.push(Element::text_element("lockspace", l));
        }
        e.push(Element::text_element("key", &self.key));
        e.push(
            Element::new("target")
                .with_attr("path", &self.path)
                .with_opt_attr("offset", self.offset),
        );
        e
    }
}
