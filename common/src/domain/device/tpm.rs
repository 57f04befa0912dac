//! `<tpm>`: TPM devices with passthrough, emulator or external backends.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, yes_no};
use super::info::{DeviceInfo, InfoOpts};

xml_enum! {
    /// `<tpm model=>`.
    pub enum TpmModel {
        Tis = "tpm-tis", Crb = "tpm-crb", Spapr = "tpm-spapr", SpaprProxy = "spapr-tpm-proxy",
    }
}

xml_enum! {
    /// `<backend version=>`.
    pub enum TpmVersion { V1_2 = "1.2", V2_0 = "2.0" }
}

/// The TPM backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmBackend {
    /// Host TPM: `<device path=>`.
    Passthrough {
        /// `<device path=>`.
        path: Option<String>,
    },
    /// swtpm.
    Emulator {
        /// `version=`.
        version: Option<TpmVersion>,
        /// `persistent_state=`.
        persistent_state: Option<bool>,
        /// `debug=`.
        debug: Option<u32>,
        /// `<encryption secret=>`.
        secret: Option<String>,
        /// `<source type= path=>`.
        source: Option<(String, String)>,
        /// `<active_pcr_banks>` children in order.
        pcr_banks: Vec<String>,
        /// `<profile>` kept as written.
        profile: Option<Element>,
    },
    /// An external swtpm: `<source type='unix' mode='connect' path=>`.
    External {
        /// `path=`.
        path: Option<String>,
    },
}

/// A TPM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tpm {
    /// `model=`.
    pub model: Option<TpmModel>,
    /// The backend.
    pub backend: TpmBackend,
    /// Address, alias.
    pub info: DeviceInfo,
}

const PCR_BANKS: &[&str] = &["sha1", "sha256", "sha384", "sha512"];

impl Tpm {
    /// Parses a `<tpm>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Tpm, XmlError> {
        ctx.check(n, &["model"], &["backend", "alias", "address", "acpi"])?;
        ctx.check_child(
            n,
            "backend",
            &["type", "version", "persistent_state", "debug"],
            &[
                "device",
                "active_pcr_banks",
                "encryption",
                "source",
                "profile",
            ],
        )?;
        if let Some(b) = n.child("backend") {
            let b = b.node();
            ctx.check_child(b, "device", &["path"], &[])?;
            ctx.check_child(b, "encryption", &["secret"], &[])?;
            ctx.check_child(b, "source", &["type", "path", "mode"], &[])?;
            if let Some(p) = b.child("active_pcr_banks") {
                ctx.check_leaves(p.node(), PCR_BANKS)?;
            }
        }
        let b = n.required_child("backend")?;
        let b = b.node();
        let t = b.attr("type").ok_or_else(|| missing(b.attr_path("type")))?;
        let backend = match t {
            "passthrough" => TpmBackend::Passthrough {
                path: b
                    .child("device")
                    .and_then(|d| d.node().attr("path").map(str::to_owned)),
            },
            "emulator" => {
                let mut pcr_banks = Vec::new();
                if let Some(p) = b.child("active_pcr_banks") {
                    for c in p.node().el.elements() {
                        if !PCR_BANKS.contains(&c.name.as_str()) {
                            return Err(XmlError::bad_value(
                                p.node().path(),
                                c.name.clone(),
                                "Unsupported PCR banks",
                            ));
                        }
                        pcr_banks.push(c.name.clone());
                    }
                    pcr_banks.sort_by_key(|x| PCR_BANKS.iter().position(|p| p == x));
                }
                TpmBackend::Emulator {
                    version: b.parse_attr("version")?,
                    persistent_state: b.yes_no_attr("persistent_state")?,
                    debug: b.uint_attr("debug")?,
                    secret: b
                        .child("encryption")
                        .and_then(|e| e.node().attr("secret").map(str::to_owned)),
                    source: b.child("source").and_then(|s| {
                        let s = s.node();
                        Some((s.attr("type")?.to_owned(), s.attr("path")?.to_owned()))
                    }),
                    pcr_banks,
                    profile: b.child("profile").map(|p| p.node().el.clone()),
                }
            }
            "external" => TpmBackend::External {
                path: b
                    .child("source")
                    .and_then(|s| s.node().attr("path").map(str::to_owned)),
            },
            other => {
                return Err(XmlError::bad_value(
                    b.attr_path("type"),
                    other,
                    "Unknown TPM backend type",
                ));
            }
        };
        Ok(Tpm {
            model: n.parse_attr("model")?,
            backend,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<tpm>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("tpm").with_opt_attr("model", self.model);
        let b = Element::new("backend");
        e.push(match &self.backend {
            TpmBackend::Passthrough { path } => {
                let mut b = b.with_attr("type", "passthrough");
                if let Some(p) = path {
                    b.push(Element::new("device").with_attr("path", p));
                }
                b
            }
            TpmBackend::Emulator {
                version,
                persistent_state,
                debug,
                secret,
                source,
                pcr_banks,
                profile,
            } => {
                let mut b = b
                    .with_attr("type", "emulator")
                    .with_opt_attr("version", *version)
                    .with_opt_attr("persistent_state", persistent_state.map(yes_no))
                    .with_opt_attr("debug", *debug);
                if let Some(s) = secret {
                    b.push(Element::new("encryption").with_attr("secret", s));
                }
                if let Some((t, p)) = source {
                    b.push(
                        Element::new("source")
                            .with_attr("type", t)
                            .with_attr("path", p),
                    );
                }
                if !pcr_banks.is_empty() {
                    let mut p = Element::new("active_pcr_banks");
                    for bank in pcr_banks {
                        p.push(Element::new(bank));
                    }
                    b.push(p);
                }
                b.push_opt(profile.clone());
                b
            }
            TpmBackend::External { path } => {
                let mut b = b.with_attr("type", "external");
                if let Some(p) = path {
                    b.push(
                        Element::new("source")
                            .with_attr("type", "unix")
                            .with_attr("mode", "connect")
                            .with_attr("path", p),
                    );
                }
                b
            }
        });
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
