//! `<hub>`: USB hubs.

use crate::xml::{Element, Node, XmlError};

use super::super::util::{Ctx, Fmt, missing};
use super::info::{DeviceInfo, InfoOpts};

/// A hub (only `type='usb'` exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hub {
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Hub {
    /// Parses a `<hub>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Hub, XmlError> {
        ctx.check(n, &["type"], &["alias", "address", "acpi"])?;
        let t = n.attr("type").ok_or_else(|| missing(n.attr_path("type")))?;
        if t != "usb" {
            return Err(XmlError::bad_value(
                n.attr_path("type"),
                t,
                "unknown hub device type",
            ));
        }
        Ok(Hub {
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<hub>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("hub").with_attr("type", "usb");
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
