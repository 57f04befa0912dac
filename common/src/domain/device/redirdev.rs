//! `<redirdev>` (USB redirection) and `<redirfilter>`.

use crate::xml::{Element, Node, XmlError};

use super::super::util::{Ctx, Fmt, yes_no};
use super::chardev::{self, ChrSource, ChrType};
use super::info::{DeviceInfo, InfoOpts};

/// A redirected USB device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirdev {
    /// The character device carrying it.
    pub source: ChrSource,
    /// Address, alias, boot order.
    pub info: DeviceInfo,
}

/// One `<usbdev>` rule; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsbFilterRule {
    /// `class=`.
    pub class: Option<u32>,
    /// `vendor=`.
    pub vendor: Option<u32>,
    /// `product=`.
    pub product: Option<u32>,
    /// `version=` (major, minor).
    pub version: Option<(u32, u32)>,
    /// `allow=`.
    pub allow: bool,
}

/// `<redirfilter>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirFilter {
    /// The rules in order.
    pub rules: Vec<UsbFilterRule>,
}

impl Redirdev {
    /// Parses a `<redirdev>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Redirdev, XmlError> {
        if let Some(b) = n.attr("bus")
            && b != "usb"
        {
            return Err(XmlError::bad_value(
                n.attr_path("bus"),
                b,
                "unknown redirdev bus",
            ));
        }
        ctx.check(
            n,
            &["bus", "type"],
            &[
                "source", "protocol", "log", "boot", "alias", "address", "acpi",
            ],
        )?;
        chardev::check_source(n, ctx)?;
        let t = n.attr("type").unwrap_or("pty");
        let ty: ChrType = t.parse().map_err(|_| {
            XmlError::bad_value(
                n.attr_path("type"),
                t,
                "unknown redirdev character device type",
            )
        })?;
        Ok(Redirdev {
            source: chardev::parse_source(n, ty)?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::BOOT)?,
        })
    }

    /// Formats the `<redirdev>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("redirdev")
            .with_attr("bus", "usb")
            .with_attr("type", self.source.backend.chr_type());
        chardev::format_source(&self.source, flags, &mut e);
        self.info.format(flags, InfoOpts::BOOT, &mut e);
        e
    }
}

fn hex_or_any(n: Node<'_>, a: &str, max: u32) -> Result<Option<u32>, XmlError> {
    match n.attr(a) {
        None | Some("-1") => Ok(None),
        Some(v) => super::address::parse_base0(v)
            .and_then(|x| u32::try_from(x).ok())
            .filter(|x| *x <= max)
            .map(Some)
            .ok_or_else(|| XmlError::bad_value(n.attr_path(a), v, "Cannot parse USB")),
    }
}

impl RedirFilter {
    /// Parses a `<redirfilter>`.
    pub(crate) fn parse(n: Node<'_>) -> Result<RedirFilter, XmlError> {
        let mut f = RedirFilter::default();
        for u in n.children("usbdev") {
            let u = u.node();
            let version = match u.attr("version") {
                None | Some("-1") => None,
                Some(v) => {
                    // "1.1" means 1.10 (BCD device version), not 1.01.
                    let parsed = v.split_once('.').and_then(|(a, b)| {
                        let minor = crate::xml::parse_uint::<u32>(b)?;
                        Some((
                            crate::xml::parse_uint::<u32>(a)?,
                            if b.len() < 2 { minor * 10 } else { minor },
                        ))
                    });
                    Some(
                        parsed
                            .filter(|(a, b)| *a < 100 && *b < 100)
                            .ok_or_else(|| {
                                XmlError::bad_value(
                                    u.attr_path("version"),
                                    v,
                                    "Cannot parse USB device version",
                                )
                            })?,
                    )
                }
            };
            f.rules.push(UsbFilterRule {
                class: hex_or_any(u, "class", 0xff)?,
                vendor: hex_or_any(u, "vendor", 0xffff)?,
                product: hex_or_any(u, "product", 0xffff)?,
                version,
                allow: u.yes_no_attr("allow")?.unwrap_or(false),
            });
        }
        Ok(f)
    }

    /// Formats the `<redirfilter>`.
    pub(crate) fn format(&self) -> Element {
        let mut e = Element::new("redirfilter");
        for r in &self.rules {
            e.push(
                Element::new("usbdev")
                    .with_opt_attr("class", r.class.map(|v| format!("0x{v:02X}")))
                    .with_opt_attr("vendor", r.vendor.map(|v| format!("0x{v:04X}")))
                    .with_opt_attr("product", r.product.map(|v| format!("0x{v:04X}")))
                    .with_opt_attr("version", r.version.map(|(a, b)| format!("{a}.{b:02}")))
                    .with_attr("allow", yes_no(r.allow)),
            );
        }
        e
    }
}
