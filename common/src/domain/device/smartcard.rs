//! `<smartcard>`: CCID smartcard readers.

use crate::xml::{Element, Node, XmlError};

use super::super::util::{Ctx, Fmt, missing};
use super::address::Address;
use super::chardev::{self, ChrSource, ChrType};
use super::info::{DeviceInfo, InfoOpts};

/// What backs the card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmartcardMode {
    /// `mode='host'`: the host's reader.
    Host,
    /// `mode='host-certificates'`: three certificates and an NSS database.
    HostCertificates {
        /// The three `<certificate>`s.
        certificates: Vec<String>,
        /// `<database>`.
        database: Option<String>,
    },
    /// `mode='passthrough'`: a character device.
    Passthrough(ChrSource),
}

/// A smartcard reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smartcard {
    /// The mode.
    pub mode: SmartcardMode,
    /// Address (ccid), alias.
    pub info: DeviceInfo,
}

impl Smartcard {
    /// Parses a `<smartcard>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Smartcard, XmlError> {
        let m = n.attr("mode").ok_or_else(|| missing(n.attr_path("mode")))?;
        ctx.check(
            n,
            &["mode", "type"],
            &[
                "certificate",
                "database",
                "source",
                "protocol",
                "log",
                "alias",
                "address",
                "acpi",
            ],
        )?;
        ctx.check_leaves(n, &["certificate", "database"])?;
        chardev::check_source(n, ctx)?;
        let mode = match m {
            "host" => SmartcardMode::Host,
            "host-certificates" => {
                let certificates: Vec<String> = n
                    .children("certificate")
                    .iter()
                    .map(|c| c.node().text())
                    .collect();
                if certificates.len() != 3 {
                    return Err(XmlError::invalid(
                        n.path(),
                        "host-certificates mode needs exactly three certificates",
                    ));
                }
                let database = n.child("database").map(|d| d.node().text());
                if let Some(d) = &database
                    && !d.starts_with('/')
                {
                    return Err(XmlError::bad_value(
                        n.child_path("database", None),
                        d,
                        "expecting absolute path:",
                    ));
                }
                SmartcardMode::HostCertificates {
                    certificates,
                    database,
                }
            }
            "passthrough" => {
                let t = n.attr("type").ok_or_else(|| {
                    XmlError::invalid(
                        n.path(),
                        "passthrough mode requires a character device type attribute",
                    )
                })?;
                let ty: ChrType = t.parse().map_err(|_| {
                    XmlError::bad_value(
                        n.attr_path("type"),
                        t,
                        "unknown type presented to host for character device:",
                    )
                })?;
                SmartcardMode::Passthrough(chardev::parse_source(n, ty)?)
            }
            other => {
                return Err(XmlError::bad_value(
                    n.attr_path("mode"),
                    other,
                    "unknown smartcard mode",
                ));
            }
        };
        let info = DeviceInfo::parse(n, ctx, InfoOpts::NONE)?;
        if info
            .address
            .as_ref()
            .is_some_and(|a| !matches!(a, Address::Ccid { .. }))
        {
            return Err(XmlError::invalid(
                n.path(),
                "Controllers must use the 'ccid' address type",
            ));
        }
        Ok(Smartcard { mode, info })
    }

    /// Formats the `<smartcard>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("smartcard");
        match &self.mode {
            SmartcardMode::Host => e.set_attr("mode", "host"),
            SmartcardMode::HostCertificates {
                certificates,
                database,
            } => {
                e.set_attr("mode", "host-certificates");
                for c in certificates {
                    e.push(Element::text_element("certificate", c));
                }
                if let Some(d) = database {
                    e.push(Element::text_element("database", d));
                }
            }
            SmartcardMode::Passthrough(src) => {
                e.set_attr("mode", "passthrough");
                e.set_attr("type", src.backend.chr_type());
                chardev::format_source(src, flags, &mut e);
            }
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }

    /// Generic checks.
    pub(crate) fn validate(&self, path: &str) -> Result<(), XmlError> {
        if let SmartcardMode::Passthrough(src) = &self.mode {
            chardev::validate_source(src, path, false)?;
        }
        Ok(())
    }
}
