//! Lifecycle actions (`<on_poweroff>`...), `<pm>` and `<perf>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Ctx, yes_no};

xml_enum! {
    /// `<on_poweroff>`, `<on_reboot>` and `<on_crash>` values.
    pub enum LifecycleAction {
        Destroy = "destroy", Restart = "restart", RenameRestart = "rename-restart",
        Preserve = "preserve", CoredumpDestroy = "coredump-destroy", CoredumpRestart = "coredump-restart",
    }
}

xml_enum! {
    /// `<on_lockfailure>` values.
    pub enum LockFailureAction { Poweroff = "poweroff", Restart = "restart", Pause = "pause", Ignore = "ignore" }
}

/// Perf events in libvirt's order.
pub const PERF_EVENTS: &[&str] = &[
    "cmt",
    "mbmt",
    "mbml",
    "cpu_cycles",
    "instructions",
    "cache_references",
    "cache_misses",
    "branch_instructions",
    "branch_misses",
    "bus_cycles",
    "stalled_cycles_frontend",
    "stalled_cycles_backend",
    "ref_cpu_cycles",
    "cpu_clock",
    "task_clock",
    "page_faults",
    "context_switches",
    "cpu_migrations",
    "page_faults_min",
    "page_faults_maj",
    "alignment_faults",
    "emulation_faults",
];

/// Lifecycle actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// `<on_poweroff>` (default destroy).
    pub on_poweroff: LifecycleAction,
    /// `<on_reboot>` (default restart).
    pub on_reboot: LifecycleAction,
    /// `<on_crash>` (default destroy).
    pub on_crash: LifecycleAction,
    /// `<on_lockfailure>`.
    pub on_lockfailure: Option<LockFailureAction>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            on_poweroff: LifecycleAction::Destroy,
            on_reboot: LifecycleAction::Restart,
            on_crash: LifecycleAction::Destroy,
            on_lockfailure: None,
        }
    }
}

/// `<pm>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pm {
    /// `<suspend-to-mem enabled=>`.
    pub suspend_to_mem: Option<bool>,
    /// `<suspend-to-disk enabled=>`.
    pub suspend_to_disk: Option<bool>,
}

/// `<perf>`: state per [`PERF_EVENTS`] entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Perf {
    /// Enabled/disabled per event.
    pub events: [Option<bool>; 22],
}

fn action<T: std::str::FromStr>(root: Node<'_>, name: &str) -> Result<Option<T>, XmlError> {
    match root.child(name) {
        None => Ok(None),
        Some(c) => {
            let c = c.node();
            let t = c.text();
            let t = t.trim();
            t.parse()
                .map(Some)
                .map_err(|_| XmlError::bad_value(c.path(), t, format!("unknown {name} action:")))
        }
    }
}

pub(crate) fn parse_lifecycle(root: Node<'_>) -> Result<Lifecycle, XmlError> {
    let d = Lifecycle::default();
    let lc = Lifecycle {
        on_poweroff: action(root, "on_poweroff")?.unwrap_or(d.on_poweroff),
        on_reboot: action(root, "on_reboot")?.unwrap_or(d.on_reboot),
        on_crash: action(root, "on_crash")?.unwrap_or(d.on_crash),
        on_lockfailure: action(root, "on_lockfailure")?,
    };
    for (name, a) in [("on_poweroff", lc.on_poweroff), ("on_reboot", lc.on_reboot)] {
        if matches!(
            a,
            LifecycleAction::CoredumpDestroy | LifecycleAction::CoredumpRestart
        ) {
            return Err(XmlError::bad_value(
                name,
                a.as_str(),
                format!("unknown {name} action:"),
            ));
        }
    }
    Ok(lc)
}

pub(crate) fn format_lifecycle(lc: &Lifecycle, out: &mut Vec<Element>) {
    out.push(Element::text_element(
        "on_poweroff",
        lc.on_poweroff.as_str(),
    ));
    out.push(Element::text_element("on_reboot", lc.on_reboot.as_str()));
    out.push(Element::text_element("on_crash", lc.on_crash.as_str()));
    if let Some(l) = lc.on_lockfailure {
        out.push(Element::text_element("on_lockfailure", l.as_str()));
    }
}

pub(crate) fn parse_pm(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Pm, XmlError> {
    ctx.check(n, &[], &["suspend-to-mem", "suspend-to-disk"])?;
    ctx.check_child(n, "suspend-to-mem", &["enabled"], &[])?;
    ctx.check_child(n, "suspend-to-disk", &["enabled"], &[])?;
    let get = |name: &str| -> Result<Option<bool>, XmlError> {
        match n.child(name) {
            None => Ok(None),
            Some(c) => c.node().yes_no_attr("enabled"),
        }
    };
    Ok(Pm {
        suspend_to_mem: get("suspend-to-mem")?,
        suspend_to_disk: get("suspend-to-disk")?,
    })
}

pub(crate) fn format_pm(pm: &Pm) -> Option<Element> {
    let mut e = Element::new("pm");
    if let Some(v) = pm.suspend_to_mem {
        e.push(Element::new("suspend-to-mem").with_attr("enabled", yes_no(v)));
    }
    if let Some(v) = pm.suspend_to_disk {
        e.push(Element::new("suspend-to-disk").with_attr("enabled", yes_no(v)));
    }
    (!e.children.is_empty()).then_some(e)
}

pub(crate) fn parse_perf(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Perf, XmlError> {
    ctx.check(n, &[], &["event"])?;
    ctx.check_child(n, "event", &["name", "enabled"], &[])?;
    let mut p = Perf::default();
    for ev in n.children("event") {
        let ev = ev.node();
        let name = ev.required_attr("name")?;
        let idx = PERF_EVENTS
            .iter()
            .position(|e| *e == name)
            .ok_or_else(|| XmlError::bad_value(ev.attr_path("name"), name, "unknown perf event"))?;
        let enabled = ev
            .yes_no_attr("enabled")?
            .ok_or_else(|| super::util::missing(ev.attr_path("enabled")))?;
        if p.events[idx].is_none() {
            p.events[idx] = Some(enabled);
        }
    }
    Ok(p)
}

pub(crate) fn format_perf(p: &Perf) -> Option<Element> {
    let mut e = Element::new("perf");
    for (i, name) in PERF_EVENTS.iter().enumerate() {
        if let Some(v) = p.events[i] {
            e.push(
                Element::new("event")
                    .with_attr("name", name)
                    .with_attr("enabled", yes_no(v)),
            );
        }
    }
    (!e.children.is_empty()).then_some(e)
}
