//! `<memballoon>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, on_off};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<memballoon model=>`.
    pub enum BalloonModel {
        Virtio = "virtio", Xen = "xen", None = "none",
        VirtioTransitional = "virtio-transitional", VirtioNonTransitional = "virtio-non-transitional",
    }
}

/// The memory balloon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memballoon {
    /// `model=`.
    pub model: BalloonModel,
    /// `autodeflate=`.
    pub autodeflate: Option<bool>,
    /// `freePageReporting=`.
    pub free_page_reporting: Option<bool>,
    /// `<stats period=>` (seconds).
    pub period: Option<i32>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Memballoon {
    /// Parses a `<memballoon>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Memballoon, XmlError> {
        ctx.check(
            n,
            &["model", "autodeflate", "freePageReporting"],
            &["stats", "driver", "alias", "address", "acpi"],
        )?;
        let m = n
            .attr("model")
            .ok_or_else(|| missing(n.attr_path("model")))?;
        let model: BalloonModel = m.parse().map_err(|_| {
            XmlError::bad_value(n.attr_path("model"), m, "unknown memory balloon model")
        })?;
        ctx.check_child(n, "stats", &["period"], &[])?;
        ctx.check_child(n, "driver", &["iommu", "ats", "packed", "page_per_vq"], &[])?;
        let period = match n.child("stats") {
            None => None,
            Some(s) => {
                let s = s.node();
                Some(s.int_attr::<i32>("period")?.ok_or_else(|| {
                    XmlError::invalid(s.path(), "invalid statistics collection period")
                })?)
            }
        };
        Ok(Memballoon {
            model,
            autodeflate: n.on_off_attr("autodeflate")?,
            free_page_reporting: n.on_off_attr("freePageReporting")?,
            period,
            virtio: VirtioOptions::parse_child(n)?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<memballoon>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("memballoon")
            .with_attr("model", self.model)
            .with_opt_attr("autodeflate", self.autodeflate.map(on_off))
            .with_opt_attr("freePageReporting", self.free_page_reporting.map(on_off));
        if let Some(p) = self.period
            && p != 0
        {
            e.push(Element::new("stats").with_attr("period", p));
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e.push_opt(self.virtio.driver_element());
        e
    }
}
