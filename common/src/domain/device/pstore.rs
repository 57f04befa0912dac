//! `<pstore>`: persistent storage for guest crash logs.

use crate::xml::{Element, Node, XmlError};

use super::super::util::{Ctx, Fmt, child_memory_kib, kib_element, missing};
use super::info::{DeviceInfo, InfoOpts};

/// A pstore device (`backend='acpi-erst'`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pstore {
    /// `<path>`.
    pub path: String,
    /// `<size>` in KiB.
    pub size: u64,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Pstore {
    /// Parses a `<pstore>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Pstore, XmlError> {
        ctx.check(
            n,
            &["backend"],
            &["path", "size", "alias", "address", "acpi"],
        )?;
        ctx.check_leaves(n, &["path"])?;
        ctx.check_child(n, "size", &["unit"], &[])?;
        let b = n.required_attr("backend")?;
        if b != "acpi-erst" {
            return Err(XmlError::bad_value(
                n.attr_path("backend"),
                b,
                "unknown pstore backend",
            ));
        }
        Ok(Pstore {
            path: n
                .child("path")
                .map(|p| p.node().text())
                .ok_or_else(|| missing(n.child_path("path", None)))?,
            size: child_memory_kib(n, "size")?
                .ok_or_else(|| missing(n.child_path("size", None)))?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<pstore>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("pstore")
            .with_attr("backend", "acpi-erst")
            .with_child(Element::text_element("path", &self.path))
            .with_child(kib_element("size", self.size));
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
