//! `<vcpu>`, `<vcpus>`, `<iothreads>`, `<iothreadids>`, `<defaultiothread>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Bitmap, CPUMASK_LEN, Ctx, bitmap_attr, yes_no};

/// The most vCPUs (and iothreads) we accept: keeps per-vCPU tables small
/// whatever the input says.
pub const MAX_VCPUS: u32 = 16384;

xml_enum! {
    /// `<vcpu placement=>` and `<numatune><memory placement=>`.
    pub enum Placement { Static = "static", Auto = "auto" }
}

xml_enum! {
    /// Thread scheduler policy (`vcpusched`, `iothreadsched`, `emulatorsched`).
    pub enum SchedPolicy { Batch = "batch", Idle = "idle", Fifo = "fifo", Rr = "rr" }
}

/// A thread's scheduler: `priority` only for fifo and rr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sched {
    /// The policy.
    pub policy: SchedPolicy,
    /// The real-time priority.
    pub priority: Option<i32>,
}

/// Per-vCPU state (libvirt's `virDomainVcpuDef`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vcpu {
    /// Online at boot.
    pub online: bool,
    /// `<vcpus><vcpu hotpluggable=>`.
    pub hotpluggable: Option<bool>,
    /// `<vcpus><vcpu order=>` (0: unset).
    pub order: u32,
    /// `<cputune><vcpupin>`.
    pub pin: Option<Bitmap>,
    /// `<cputune><vcpusched>`.
    pub sched: Option<Sched>,
}

/// `<vcpu>` and `<vcpus>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vcpus {
    /// `placement=`.
    pub placement: Placement,
    /// `cpuset=`.
    pub cpuset: Option<Bitmap>,
    /// Whether `<vcpus>` listed the vCPUs one by one.
    pub individual: bool,
    /// One entry per possible vCPU (the maximum is the length).
    pub vcpus: Vec<Vcpu>,
}

impl Default for Vcpus {
    fn default() -> Self {
        Vcpus {
            placement: Placement::Static,
            cpuset: None,
            individual: false,
            vcpus: vec![Vcpu {
                online: true,
                ..Vcpu::default()
            }],
        }
    }
}

impl Vcpus {
    /// The maximum number of vCPUs.
    pub fn max(&self) -> u32 {
        u32::try_from(self.vcpus.len()).unwrap_or(u32::MAX)
    }

    /// The number online at boot.
    pub fn current(&self) -> u32 {
        u32::try_from(self.vcpus.iter().filter(|v| v.online).count()).unwrap_or(u32::MAX)
    }

    /// Whether any vCPU is pinned.
    pub fn has_pin(&self) -> bool {
        self.vcpus.iter().any(|v| v.pin.is_some())
    }
}

/// One `<iothreadids><iothread>` (or one implied by `<iothreads>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoThread {
    /// `id=` (from 1).
    pub id: u32,
    /// Added to reach the `<iothreads>` count, not written by the user.
    pub autofill: bool,
    /// `thread_pool_min=`.
    pub thread_pool_min: Option<u32>,
    /// `thread_pool_max=`.
    pub thread_pool_max: Option<u32>,
    /// `<poll max=>`.
    pub poll_max: Option<u64>,
    /// `<poll grow=>`.
    pub poll_grow: Option<u64>,
    /// `<poll shrink=>`.
    pub poll_shrink: Option<u64>,
    /// `<cputune><iothreadpin>`.
    pub pin: Option<Bitmap>,
    /// `<cputune><iothreadsched>`.
    pub sched: Option<Sched>,
}

/// `<defaultiothread>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultIoThread {
    /// `thread_pool_min=`.
    pub thread_pool_min: Option<u32>,
    /// `thread_pool_max=`.
    pub thread_pool_max: Option<u32>,
}

// === parse ===

pub(crate) fn parse_vcpus(root: Node<'_>, ctx: &Ctx<'_>) -> Result<Vcpus, XmlError> {
    ctx.check_child(root, "vcpus", &[], &["vcpu"])?;
    let mut v = Vcpus::default();
    let Some(n) = root.child("vcpu") else {
        return Ok(v);
    };
    let n = n.node();
    ctx.check(n, &["placement", "cpuset", "current"], &[])?;
    let text = n.text();
    let max: u32 = crate::xml::parse_uint(text.trim()).ok_or_else(|| {
        XmlError::bad_value(
            n.path(),
            text.trim(),
            "maximum vcpus count must be an integer",
        )
    })?;
    if max == 0 {
        return Err(XmlError::invalid(
            n.path(),
            "domain config maximum vcpu count must be greater than 0",
        ));
    }
    if max > MAX_VCPUS {
        return Err(XmlError::unsupported(
            n.path(),
            format!("more than {MAX_VCPUS} vcpus are not supported"),
        ));
    }
    let current: u32 = n.uint_attr("current")?.unwrap_or(max);
    if current > max {
        return Err(XmlError::invalid(
            n.attr_path("current"),
            format!("maxvcpus must not be less than current vcpus ({max} < {current})"),
        ));
    }
    v.vcpus = (0..max)
        .map(|i| Vcpu {
            online: i < current,
            ..Vcpu::default()
        })
        .collect();
    v.placement = n.parse_attr("placement")?.unwrap_or(Placement::Static);
    if v.placement != Placement::Auto {
        v.cpuset = bitmap_attr(n, "cpuset", CPUMASK_LEN)?;
        if v.cpuset.as_ref().is_some_and(Bitmap::is_empty) {
            return Err(XmlError::bad_value(
                n.attr_path("cpuset"),
                n.attr("cpuset").unwrap_or(""),
                "Invalid value of 'cpuset':",
            ));
        }
    }
    let vcpus_el = root.child("vcpus");
    let vcpus_node = vcpus_el.as_ref().map(|v| v.node());
    let individual = vcpus_node.map(|v| v.children("vcpu")).unwrap_or_default();
    if !individual.is_empty() {
        v.individual = true;
        let mut seen = vec![false; v.vcpus.len()];
        for e in individual {
            let e = e.node();
            ctx.check(e, &["id", "enabled", "hotpluggable", "order"], &[])?;
            let id: u32 = e
                .uint_attr("id")?
                .ok_or_else(|| super::util::missing(e.attr_path("id")))?;
            let idx = id as usize;
            if idx >= v.vcpus.len() {
                return Err(XmlError::invalid(
                    e.attr_path("id"),
                    format!("vcpu id '{id}' is out of range of maximum vcpu count"),
                ));
            }
            if seen[idx] {
                return Err(XmlError::invalid(
                    e.attr_path("id"),
                    format!("duplicate vcpu id '{id}'"),
                ));
            }
            seen[idx] = true;
            let vc = &mut v.vcpus[idx];
            vc.online = e
                .yes_no_attr("enabled")?
                .ok_or_else(|| super::util::missing(e.attr_path("enabled")))?;
            vc.hotpluggable = e.yes_no_attr("hotpluggable")?;
            vc.order = e.uint_attr("order")?.unwrap_or(0);
        }
    }
    Ok(v)
}

pub(crate) fn parse_iothreads(
    root: Node<'_>,
    ctx: &Ctx<'_>,
) -> Result<(Vec<IoThread>, Option<DefaultIoThread>), XmlError> {
    ctx.check_leaves(root, &["iothreads"])?;
    ctx.check_child(root, "iothreadids", &[], &["iothread"])?;
    ctx.check_child(
        root,
        "defaultiothread",
        &["thread_pool_min", "thread_pool_max"],
        &[],
    )?;
    if let Some(ids) = root.child("iothreadids") {
        for t in super::util::named(ids.node(), "iothread") {
            ctx.check_child(t.node(), "poll", &["max", "grow", "shrink"], &[])?;
        }
    }
    let count: u32 = match root.child("iothreads") {
        None => 0,
        Some(n) => n.node().uint_text()?,
    };
    if count > MAX_VCPUS {
        return Err(XmlError::unsupported(
            "iothreads",
            format!("more than {MAX_VCPUS} iothreads are not supported"),
        ));
    }
    let mut threads: Vec<IoThread> = Vec::new();
    if let Some(ids) = root.child("iothreadids") {
        for t in ids.node().children("iothread") {
            let t = t.node();
            ctx.check(t, &["id", "thread_pool_min", "thread_pool_max"], &["poll"])?;
            let id: u32 = t
                .uint_attr("id")?
                .ok_or_else(|| super::util::missing(t.attr_path("id")))?;
            if id == 0 {
                return Err(XmlError::invalid(
                    t.attr_path("id"),
                    "invalid iothread 'id' value '0'",
                ));
            }
            if threads.iter().any(|x| x.id == id) {
                return Err(XmlError::invalid(
                    t.attr_path("id"),
                    format!("duplicate iothread id '{id}' found"),
                ));
            }
            let (min, max) = pool(t)?;
            let mut th = IoThread {
                id,
                thread_pool_min: min,
                thread_pool_max: max,
                ..IoThread::default()
            };
            if let Some(p) = t.child("poll") {
                let p = p.node();
                th.poll_max = p.uint_attr("max")?;
                th.poll_grow = p.uint_attr("grow")?;
                th.poll_shrink = p.uint_attr("shrink")?;
            }
            threads.push(th);
        }
    }
    // Fill up to <iothreads> with the lowest unused ids.
    let mut next = 1u32;
    while (threads.len() as u64) < u64::from(count) {
        while threads.iter().any(|t| t.id == next) {
            next += 1;
        }
        threads.push(IoThread {
            id: next,
            autofill: true,
            ..IoThread::default()
        });
        next += 1;
    }
    let default = match root.child("defaultiothread") {
        None => None,
        Some(d) => {
            let (min, max) = pool(d.node())?;
            Some(DefaultIoThread {
                thread_pool_min: min,
                thread_pool_max: max,
            })
        }
    };
    Ok((threads, default))
}

fn pool(n: Node<'_>) -> Result<(Option<u32>, Option<u32>), XmlError> {
    let min: Option<u32> = n.uint_attr("thread_pool_min")?;
    let max: Option<u32> = n.uint_attr("thread_pool_max")?;
    if max == Some(0) {
        return Err(XmlError::invalid(
            n.attr_path("thread_pool_max"),
            "thread_pool_max must be a positive integer",
        ));
    }
    if let (Some(a), Some(b)) = (min, max)
        && a > b
    {
        return Err(XmlError::invalid(
            n.path(),
            "thread_pool_min must be smaller or equal to thread_pool_max",
        ));
    }
    Ok((min, max))
}

// === format ===

pub(crate) fn format_vcpus(v: &Vcpus) -> Vec<Element> {
    let mut out = Vec::new();
    let mut e = Element::new("vcpu").with_attr("placement", v.placement);
    if let Some(c) = &v.cpuset {
        e.set_attr("cpuset", c);
    }
    if v.current() != v.max() {
        e.set_attr("current", v.current());
    }
    out.push(e.with_text(v.max().to_string()));
    if v.individual {
        let mut vs = Element::new("vcpus");
        for (i, c) in v.vcpus.iter().enumerate() {
            let mut ve = Element::new("vcpu")
                .with_attr("id", i)
                .with_attr("enabled", yes_no(c.online));
            if let Some(h) = c.hotpluggable {
                ve.set_attr("hotpluggable", yes_no(h));
            }
            if c.order != 0 {
                ve.set_attr("order", c.order);
            }
            vs.push(ve);
        }
        out.push(vs);
    }
    out
}

fn iothread_should_format(t: &IoThread) -> bool {
    !t.autofill
        || t.thread_pool_min.is_some()
        || t.thread_pool_max.is_some()
        || t.poll_max.is_some()
        || t.poll_grow.is_some()
        || t.poll_shrink.is_some()
}

pub(crate) fn format_iothreads(
    threads: &[IoThread],
    default: Option<&DefaultIoThread>,
) -> Vec<Element> {
    let mut out = Vec::new();
    if !threads.is_empty() {
        out.push(Element::text_element(
            "iothreads",
            threads.len().to_string(),
        ));
    }
    if threads.iter().any(iothread_should_format) {
        let mut ids = Element::new("iothreadids");
        for t in threads {
            let mut e = Element::new("iothread")
                .with_attr("id", t.id)
                .with_opt_attr("thread_pool_min", t.thread_pool_min)
                .with_opt_attr("thread_pool_max", t.thread_pool_max);
            if t.poll_max.is_some() || t.poll_grow.is_some() || t.poll_shrink.is_some() {
                e.push(
                    Element::new("poll")
                        .with_opt_attr("max", t.poll_max)
                        .with_opt_attr("grow", t.poll_grow)
                        .with_opt_attr("shrink", t.poll_shrink),
                );
            }
            ids.push(e);
        }
        out.push(ids);
    }
    if let Some(d) = default
        && (d.thread_pool_min.is_some() || d.thread_pool_max.is_some())
    {
        out.push(
            Element::new("defaultiothread")
                .with_opt_attr("thread_pool_min", d.thread_pool_min)
                .with_opt_attr("thread_pool_max", d.thread_pool_max),
        );
    }
    out
}
