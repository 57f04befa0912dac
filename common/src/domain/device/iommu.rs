//! `<iommu>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, on_off};
use super::info::{DeviceInfo, InfoOpts};

xml_enum! {
    /// `<iommu model=>`.
    pub enum IommuModel { Intel = "intel", Smmuv3 = "smmuv3", Virtio = "virtio" }
}

/// An IOMMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iommu {
    /// `model=`.
    pub model: IommuModel,
    /// `<driver intremap=>`.
    pub intremap: Option<bool>,
    /// `<driver caching_mode=>`.
    pub caching_mode: Option<bool>,
    /// `<driver eim=>`.
    pub eim: Option<bool>,
    /// `<driver iotlb=>`.
    pub iotlb: Option<bool>,
    /// `<driver aw_bits=>`.
    pub aw_bits: Option<u32>,
    /// `<driver dma_translation=>`.
    pub dma_translation: Option<bool>,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Iommu {
    /// Parses an `<iommu>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Iommu, XmlError> {
        ctx.check(n, &["model"], &["driver", "alias", "address", "acpi"])?;
        ctx.check_child(
            n,
            "driver",
            &[
                "intremap",
                "caching_mode",
                "eim",
                "iotlb",
                "aw_bits",
                "dma_translation",
            ],
            &[],
        )?;
        let m = n
            .attr("model")
            .ok_or_else(|| missing(n.attr_path("model")))?;
        let model = m
            .parse()
            .map_err(|_| XmlError::bad_value(n.attr_path("model"), m, "unknown IOMMU model"))?;
        let mut i = Iommu {
            model,
            intremap: None,
            caching_mode: None,
            eim: None,
            iotlb: None,
            aw_bits: None,
            dma_translation: None,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        };
        if let Some(d) = n.child("driver") {
            let d = d.node();
            i.intremap = d.on_off_attr("intremap")?;
            i.caching_mode = d.on_off_attr("caching_mode")?;
            i.eim = d.on_off_attr("eim")?;
            i.iotlb = d.on_off_attr("iotlb")?;
            i.aw_bits = d.uint_attr("aw_bits")?;
            i.dma_translation = d.on_off_attr("dma_translation")?;
        }
        Ok(i)
    }

    /// Formats the `<iommu>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("iommu").with_attr("model", self.model);
        let d = Element::new("driver")
            .with_opt_attr("intremap", self.intremap.map(on_off))
            .with_opt_attr("caching_mode", self.caching_mode.map(on_off))
            .with_opt_attr("eim", self.eim.map(on_off))
            .with_opt_attr("iotlb", self.iotlb.map(on_off))
            .with_opt_attr("aw_bits", self.aw_bits)
            .with_opt_attr("dma_translation", self.dma_translation.map(on_off));
        if !d.is_empty() {
            e.push(d);
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
