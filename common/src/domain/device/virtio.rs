//! Options shared by virtio devices (`<driver iommu= ats= packed= page_per_vq=>`).

use crate::xml::{Element, Node, XmlError};

use super::super::util::on_off;

/// virtio transport options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioOptions {
    /// `iommu=`.
    pub iommu: Option<bool>,
    /// `ats=`.
    pub ats: Option<bool>,
    /// `packed=`.
    pub packed: Option<bool>,
    /// `page_per_vq=`.
    pub page_per_vq: Option<bool>,
}

impl VirtioOptions {
    /// Reads the attributes of a `<driver>` element.
    pub(crate) fn parse(n: Node<'_>) -> Result<VirtioOptions, XmlError> {
        Ok(VirtioOptions {
            iommu: n.on_off_attr("iommu")?,
            ats: n.on_off_attr("ats")?,
            packed: n.on_off_attr("packed")?,
            page_per_vq: n.on_off_attr("page_per_vq")?,
        })
    }

    /// Reads them from an optional `<driver>` child.
    pub(crate) fn parse_child(n: Node<'_>) -> Result<VirtioOptions, XmlError> {
        match n.child("driver") {
            Some(d) => VirtioOptions::parse(d.node()),
            None => Ok(VirtioOptions::default()),
        }
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == VirtioOptions::default()
    }

    /// Appends the attributes.
    pub(crate) fn format(&self, e: &mut Element) {
        e.set_opt_attr("iommu", self.iommu.map(on_off));
        e.set_opt_attr("ats", self.ats.map(on_off));
        e.set_opt_attr("packed", self.packed.map(on_off));
        e.set_opt_attr("page_per_vq", self.page_per_vq.map(on_off));
    }

    /// A `<driver>` element with only these options, if any is set.
    pub(crate) fn driver_element(&self) -> Option<Element> {
        if self.is_empty() {
            return None;
        }
        let mut d = Element::new("driver");
        self.format(&mut d);
        Some(d)
    }
}
