//! `<vsock>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, yes_no};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<vsock model=>`.
    pub enum VsockModel {
        Virtio = "virtio", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

/// A vsock device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vsock {
    /// `model=`.
    pub model: Option<VsockModel>,
    /// `<cid auto=>`.
    pub auto_cid: Option<bool>,
    /// `<cid address=>` (0: unset).
    pub cid: u32,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Vsock {
    /// Parses a `<vsock>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Vsock, XmlError> {
        ctx.check(
            n,
            &["model"],
            &["cid", "driver", "alias", "address", "acpi"],
        )?;
        ctx.check_child(n, "cid", &["address", "auto"], &[])?;
        ctx.check_child(n, "driver", &["iommu", "ats", "packed", "page_per_vq"], &[])?;
        let (auto_cid, cid) = match n.child("cid") {
            None => (None, 0),
            Some(c) => {
                let c = c.node();
                let cid: u32 = c.uint_attr("address")?.unwrap_or(0);
                if cid != 0 && cid < 3 {
                    return Err(XmlError::invalid(
                        c.attr_path("address"),
                        "guest CIDs must be >= 3",
                    ));
                }
                (c.yes_no_attr("auto")?, cid)
            }
        };
        Ok(Vsock {
            model: n.parse_attr("model")?,
            auto_cid,
            cid,
            virtio: VirtioOptions::parse_child(n)?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<vsock>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("vsock").with_opt_attr("model", self.model);
        let c = Element::new("cid")
            .with_opt_attr("auto", self.auto_cid.map(yes_no))
            .with_opt_attr("address", (self.cid != 0).then_some(self.cid));
        if !c.is_empty() {
            e.push(c);
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e.push_opt(self.virtio.driver_element());
        e
    }
}
