//! `<watchdog>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing};
use super::info::{DeviceInfo, InfoOpts};

xml_enum! {
    /// `<watchdog model=>`.
    pub enum WatchdogModel { I6300esb = "i6300esb", Ib700 = "ib700", Diag288 = "diag288", Itco = "itco" }
}

xml_enum! {
    /// `<watchdog action=>`.
    pub enum WatchdogAction {
        Reset = "reset", Shutdown = "shutdown", Poweroff = "poweroff", Pause = "pause",
        Dump = "dump", None = "none", InjectNmi = "inject-nmi",
    }
}

/// A watchdog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watchdog {
    /// `model=`.
    pub model: WatchdogModel,
    /// `action=` (default reset).
    pub action: WatchdogAction,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Watchdog {
    /// Parses a `<watchdog>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Watchdog, XmlError> {
        ctx.check(n, &["model", "action"], &["alias", "address", "acpi"])?;
        let m = n
            .attr("model")
            .ok_or_else(|| missing(n.attr_path("model")))?;
        let model = m
            .parse()
            .map_err(|_| XmlError::bad_value(n.attr_path("model"), m, "unknown watchdog model"))?;
        let action = match n.attr("action") {
            None => WatchdogAction::Reset,
            Some(a) => a.parse().map_err(|_| {
                XmlError::bad_value(n.attr_path("action"), a, "unknown watchdog action")
            })?,
        };
        Ok(Watchdog {
            model,
            action,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<watchdog>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("watchdog")
            .with_attr("model", self.model)
            .with_attr("action", self.action);
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
