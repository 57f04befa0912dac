//! `<crypto>`: virtio crypto devices.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<backend model=>`.
    pub enum CryptoBackend { Builtin = "builtin", Lkcf = "lkcf" }
}

/// A crypto device (`model='virtio' type='qemu'`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// `<backend model=>`.
    pub backend: CryptoBackend,
    /// `<backend queues=>`.
    pub queues: Option<u32>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Crypto {
    /// Parses a `<crypto>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Crypto, XmlError> {
        ctx.check(
            n,
            &["model", "type"],
            &["backend", "driver", "alias", "address", "acpi"],
        )?;
        ctx.check_child(n, "backend", &["model", "queues"], &[])?;
        ctx.check_child(n, "driver", &["iommu", "ats", "packed", "page_per_vq"], &[])?;
        for (a, v) in [("model", "virtio"), ("type", "qemu")] {
            let got = n.attr(a).ok_or_else(|| missing(n.attr_path(a)))?;
            if got != v {
                return Err(XmlError::bad_value(
                    n.attr_path(a),
                    got,
                    "unsupported value",
                ));
            }
        }
        let b = n.required_child("backend")?;
        let b = b.node();
        Ok(Crypto {
            backend: b.required_parse_attr("model")?,
            queues: b.uint_attr("queues")?,
            virtio: VirtioOptions::parse_child(n)?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<crypto>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("crypto")
            .with_attr("model", "virtio")
            .with_attr("type", "qemu");
        e.push(
            Element::new("backend")
                .with_attr("model", self.backend)
                .with_opt_attr("queues", self.queues),
        );
        e.push_opt(self.virtio.driver_element());
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
