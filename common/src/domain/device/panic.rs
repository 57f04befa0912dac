//! `<panic>`: guest panic notification devices.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt};
use super::info::{DeviceInfo, InfoOpts};

xml_enum! {
    /// `<panic model=>`.
    pub enum PanicModel { Isa = "isa", Pseries = "pseries", Hyperv = "hyperv", S390 = "s390", Pvpanic = "pvpanic" }
}

/// A panic device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panic {
    /// `model=` (`None`: the driver's default).
    pub model: Option<PanicModel>,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Panic {
    /// Parses a `<panic>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Panic, XmlError> {
        ctx.check(n, &["model"], &["alias", "address", "acpi"])?;
        Ok(Panic {
            model: n.parse_attr("model")?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<panic>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("panic").with_opt_attr("model", self.model);
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
