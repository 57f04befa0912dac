//! `<rng>`: random number generators.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing};
use super::chardev::{self, ChrSource, ChrType};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<rng model=>`.
    pub enum RngModel {
        Virtio = "virtio", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

/// Where the entropy comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RngBackend {
    /// `<backend model='random'>PATH</backend>`.
    Random(Option<String>),
    /// `<backend model='egd' type=>` with a character device.
    Egd(ChrSource),
    /// `<backend model='builtin'/>`.
    Builtin,
}

/// An RNG device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    /// `model=`.
    pub model: RngModel,
    /// `<rate bytes= period=>`.
    pub rate: Option<(u32, Option<u32>)>,
    /// The backend.
    pub backend: RngBackend,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Rng {
    /// Parses an `<rng>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Rng, XmlError> {
        ctx.check(
            n,
            &["model"],
            &["rate", "backend", "driver", "alias", "address", "acpi"],
        )?;
        let m = n
            .attr("model")
            .ok_or_else(|| missing(n.attr_path("model")))?;
        let model: RngModel = m
            .parse()
            .map_err(|_| XmlError::bad_value(n.attr_path("model"), m, "Unknown RNG model"))?;
        ctx.check_child(n, "rate", &["bytes", "period"], &[])?;
        ctx.check_child(n, "driver", &["iommu", "ats", "packed", "page_per_vq"], &[])?;
        ctx.check_child(
            n,
            "backend",
            &["model", "type"],
            &["source", "protocol", "log"],
        )?;
        if let Some(b) = n.child("backend") {
            chardev::check_source(b.node(), ctx)?;
        }
        let b = n.required_child("backend")?;
        let b = b.node();
        let bm = b.required_attr("model")?;
        let backend = match bm {
            "random" => RngBackend::Random(Some(b.text()).filter(|s| !s.is_empty())),
            "egd" => {
                let t = b.required_attr("type")?;
                let ty: ChrType = t.parse().map_err(|_| {
                    XmlError::bad_value(b.attr_path("type"), t, "unknown backend type")
                })?;
                RngBackend::Egd(chardev::parse_source(b, ty)?)
            }
            "builtin" => RngBackend::Builtin,
            other => {
                return Err(XmlError::bad_value(
                    b.attr_path("model"),
                    other,
                    "unknown backend model",
                ));
            }
        };
        let rate = match n.child("rate") {
            None => None,
            Some(r) => {
                let r = r.node();
                let bytes: u32 = r
                    .uint_attr("bytes")?
                    .ok_or_else(|| missing(r.attr_path("bytes")))?;
                Some((bytes, r.uint_attr("period")?))
            }
        };
        Ok(Rng {
            model,
            rate,
            backend,
            virtio: VirtioOptions::parse_child(n)?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<rng>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("rng").with_attr("model", self.model);
        if let Some((bytes, period)) = self.rate {
            e.push(
                Element::new("rate")
                    .with_attr("bytes", bytes)
                    .with_opt_attr("period", period),
            );
        }
        let b = Element::new("backend");
        e.push(match &self.backend {
            RngBackend::Random(p) => {
                let b = b.with_attr("model", "random");
                match p {
                    Some(p) => b.with_text(p.as_str()),
                    None => b,
                }
            }
            RngBackend::Egd(src) => {
                let mut b = b
                    .with_attr("model", "egd")
                    .with_attr("type", src.backend.chr_type());
                chardev::format_source(src, flags, &mut b);
                b
            }
            RngBackend::Builtin => b.with_attr("model", "builtin"),
        });
        e.push_opt(self.virtio.driver_element());
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
