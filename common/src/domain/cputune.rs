//! `<cputune>`: CPU shares/periods/quotas, pinning and schedulers. Pins
//! and schedulers of vCPUs and iothreads live on [`Vcpu`](super::vcpu::Vcpu)
//! and [`IoThread`], as in libvirt; cache and
//! memory-bandwidth tuning are in [`resctrl`].

use crate::xml::{Element, Node, XmlError};

use super::resctrl::{self, Resctrl};
use super::util::{Bitmap, CPUMASK_LEN, Ctx, child_int, child_uint, missing};
use super::vcpu::{IoThread, Sched, SchedPolicy, Vcpus};

/// The scalar part of `<cputune>`; zero values are unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTune {
    /// `<shares>`.
    pub shares: Option<u64>,
    /// `<global_period>`.
    pub global_period: Option<u64>,
    /// `<global_quota>`.
    pub global_quota: Option<i64>,
    /// `<period>`.
    pub period: Option<u64>,
    /// `<quota>`.
    pub quota: Option<i64>,
    /// `<emulator_period>`.
    pub emulator_period: Option<u64>,
    /// `<emulator_quota>`.
    pub emulator_quota: Option<i64>,
    /// `<iothread_period>`.
    pub iothread_period: Option<u64>,
    /// `<iothread_quota>`.
    pub iothread_quota: Option<i64>,
    /// `<emulatorpin cpuset=>`.
    pub emulatorpin: Option<Bitmap>,
    /// `<emulatorsched>`.
    pub emulatorsched: Option<Sched>,
}

const CHILDREN: &[&str] = &[
    "shares",
    "global_period",
    "global_quota",
    "period",
    "quota",
    "emulator_period",
    "emulator_quota",
    "iothread_period",
    "iothread_quota",
    "vcpupin",
    "emulatorpin",
    "iothreadpin",
    "vcpusched",
    "iothreadsched",
    "emulatorsched",
    "cachetune",
    "memorytune",
];

fn nonzero_u(n: Node<'_>, name: &str) -> Result<Option<u64>, XmlError> {
    Ok(child_uint::<u64>(n, name)?.filter(|v| *v != 0))
}

fn nonzero_i(n: Node<'_>, name: &str) -> Result<Option<i64>, XmlError> {
    Ok(child_int::<i64>(n, name)?.filter(|v| *v != 0))
}

fn cpuset(n: Node<'_>, attr: &str) -> Result<Bitmap, XmlError> {
    let v = n.attr(attr).ok_or_else(|| missing(n.attr_path(attr)))?;
    let b = Bitmap::parse(v, CPUMASK_LEN)
        .ok_or_else(|| XmlError::bad_value(n.attr_path(attr), v, "Failed to parse bitmap"))?;
    if b.is_empty() {
        return Err(XmlError::bad_value(
            n.attr_path(attr),
            v,
            format!("Invalid value of '{attr}':"),
        ));
    }
    Ok(b)
}

pub(crate) fn parse_sched(n: Node<'_>) -> Result<Sched, XmlError> {
    let policy: SchedPolicy = n.required_parse_attr("scheduler")?;
    let priority = match policy {
        SchedPolicy::Fifo | SchedPolicy::Rr => Some(
            n.int_attr::<i32>("priority")?
                .ok_or_else(|| missing(n.attr_path("priority")))?,
        ),
        SchedPolicy::Batch | SchedPolicy::Idle => None,
    };
    Ok(Sched { policy, priority })
}

/// Parses `<cputune>` (and its `<cachetune>`/`<memorytune>`), setting pins
/// and schedulers on `vcpus` and `iothreads`.
pub(crate) fn parse(
    n: Node<'_>,
    ctx: &Ctx<'_>,
    vcpus: &mut Vcpus,
    iothreads: &mut [IoThread],
) -> Result<(CpuTune, Vec<Resctrl>), XmlError> {
    ctx.check(n, &[], CHILDREN)?;
    ctx.check_leaves(
        n,
        &[
            "shares",
            "global_period",
            "global_quota",
            "period",
            "quota",
            "emulator_period",
            "emulator_quota",
            "iothread_period",
            "iothread_quota",
        ],
    )?;
    ctx.check_child(n, "vcpupin", &["vcpu", "cpuset"], &[])?;
    ctx.check_child(n, "emulatorpin", &["cpuset"], &[])?;
    ctx.check_child(n, "iothreadpin", &["iothread", "cpuset"], &[])?;
    ctx.check_child(n, "vcpusched", &["vcpus", "scheduler", "priority"], &[])?;
    ctx.check_child(
        n,
        "iothreadsched",
        &["iothreads", "scheduler", "priority"],
        &[],
    )?;
    ctx.check_child(n, "emulatorsched", &["scheduler", "priority"], &[])?;
    let mut t = CpuTune {
        shares: child_uint(n, "shares")?,
        global_period: nonzero_u(n, "global_period")?,
        global_quota: nonzero_i(n, "global_quota")?,
        period: nonzero_u(n, "period")?,
        quota: nonzero_i(n, "quota")?,
        emulator_period: nonzero_u(n, "emulator_period")?,
        emulator_quota: nonzero_i(n, "emulator_quota")?,
        iothread_period: nonzero_u(n, "iothread_period")?,
        iothread_quota: nonzero_i(n, "iothread_quota")?,
        ..CpuTune::default()
    };
    for p in n.children("vcpupin") {
        let p = p.node();
        let id: u32 = p
            .uint_attr("vcpu")?
            .ok_or_else(|| missing(p.attr_path("vcpu")))?;
        let set = cpuset(p, "cpuset")?;
        // libvirt ignores pins of vCPUs that do not exist.
        if let Some(v) = vcpus.vcpus.get_mut(id as usize) {
            if v.pin.is_some() {
                return Err(XmlError::invalid(
                    p.path(),
                    format!("duplicate vcpupin for vcpu '{id}'"),
                ));
            }
            v.pin = Some(set);
        }
    }
    let pins = n.children("emulatorpin");
    if pins.len() > 1 {
        return Err(XmlError::unsupported(
            pins[1].node().path(),
            "only one emulatorpin is supported",
        ));
    }
    if let Some(p) = pins.first() {
        t.emulatorpin = Some(cpuset(p.node(), "cpuset")?);
    }
    for p in n.children("iothreadpin") {
        let p = p.node();
        let id: u32 = p
            .uint_attr("iothread")?
            .ok_or_else(|| missing(p.attr_path("iothread")))?;
        let set = cpuset(p, "cpuset")?;
        let th = iothreads
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| XmlError::invalid(p.path(), format!("Cannot find 'iothread' : {id}")))?;
        if th.pin.is_some() {
            return Err(XmlError::invalid(
                p.path(),
                format!("Duplicate iothreadpin for same iothread '{id}'"),
            ));
        }
        th.pin = Some(set);
    }
    for s in n.children("vcpusched") {
        let s = s.node();
        let set = cpuset(s, "vcpus")?;
        let sched = parse_sched(s)?;
        for id in set.iter() {
            let v = vcpus
                .vcpus
                .get_mut(id as usize)
                .ok_or_else(|| XmlError::invalid(s.path(), format!("Invalid vcpu '{id}'")))?;
            if v.sched.is_some() {
                return Err(XmlError::invalid(
                    s.path(),
                    "vcpusched attributes 'vcpus' must not overlap",
                ));
            }
            v.sched = Some(sched);
        }
    }
    for s in n.children("iothreadsched") {
        let s = s.node();
        let set = cpuset(s, "iothreads")?;
        let sched = parse_sched(s)?;
        for id in set.iter() {
            let th = iothreads.iter_mut().find(|t| t.id == id).ok_or_else(|| {
                XmlError::invalid(s.path(), format!("Cannot find 'iothread' : {id}"))
            })?;
            if th.sched.is_some() {
                return Err(XmlError::invalid(
                    s.path(),
                    "iothreadsched attributes 'iothreads' must not overlap",
                ));
            }
            th.sched = Some(sched);
        }
    }
    let scheds = n.children("emulatorsched");
    if scheds.len() > 1 {
        return Err(XmlError::unsupported(
            scheds[1].node().path(),
            "only one emulatorsched is supported",
        ));
    }
    if let Some(s) = scheds.first() {
        t.emulatorsched = Some(parse_sched(s.node())?);
    }
    let resctrls = resctrl::parse(n, ctx, vcpus.max())?;
    Ok((t, resctrls))
}

fn sched_element(name: &str, id: Option<(&str, u32)>, s: &Sched) -> Element {
    let mut e = Element::new(name);
    if let Some((attr, v)) = id {
        e.set_attr(attr, v);
    }
    e.set_attr("scheduler", s.policy);
    e.set_opt_attr("priority", s.priority);
    e
}

pub(crate) fn format(
    t: &CpuTune,
    vcpus: &Vcpus,
    iothreads: &[IoThread],
    resctrls: &[Resctrl],
    flags: &super::util::Fmt,
) -> Option<Element> {
    let mut e = Element::new("cputune");
    if let Some(v) = t.shares {
        e.push(Element::text_element("shares", v.to_string()));
    }
    let scalars: [(&str, Option<String>); 8] = [
        ("global_period", t.global_period.map(|v| v.to_string())),
        ("global_quota", t.global_quota.map(|v| v.to_string())),
        ("period", t.period.map(|v| v.to_string())),
        ("quota", t.quota.map(|v| v.to_string())),
        ("emulator_period", t.emulator_period.map(|v| v.to_string())),
        ("emulator_quota", t.emulator_quota.map(|v| v.to_string())),
        ("iothread_period", t.iothread_period.map(|v| v.to_string())),
        ("iothread_quota", t.iothread_quota.map(|v| v.to_string())),
    ];
    for (name, v) in scalars {
        if let Some(v) = v {
            e.push(Element::text_element(name, v));
        }
    }
    for (i, v) in vcpus.vcpus.iter().enumerate() {
        if let Some(p) = &v.pin {
            e.push(
                Element::new("vcpupin")
                    .with_attr("vcpu", i)
                    .with_attr("cpuset", p),
            );
        }
    }
    if let Some(p) = &t.emulatorpin {
        e.push(Element::new("emulatorpin").with_attr("cpuset", p));
    }
    for th in iothreads {
        if let Some(p) = &th.pin {
            e.push(
                Element::new("iothreadpin")
                    .with_attr("iothread", th.id)
                    .with_attr("cpuset", p),
            );
        }
    }
    if let Some(s) = &t.emulatorsched {
        e.push(sched_element("emulatorsched", None, s));
    }
    for (i, v) in vcpus.vcpus.iter().enumerate() {
        if let Some(s) = &v.sched {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            e.push(sched_element("vcpusched", Some(("vcpus", id)), s));
        }
    }
    for th in iothreads {
        if let Some(s) = &th.sched {
            e.push(sched_element(
                "iothreadsched",
                Some(("iothreads", th.id)),
                s,
            ));
        }
    }
    resctrl::format(resctrls, flags, &mut e);
    (!e.children.is_empty()).then_some(e)
}
