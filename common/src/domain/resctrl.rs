//! `<cputune><cachetune>` and `<memorytune>`: resource-control groups
//! (libvirt's `virDomainResctrlDef`). A cachetune and a memorytune with
//! the same vCPUs share one group.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Bitmap, CPUMASK_LEN, Ctx, Fmt, missing, scaled_bytes};

xml_enum! {
    /// `<cache type=>`.
    pub enum CacheType { Both = "both", Code = "code", Data = "data" }
}

/// One `<cachetune><cache>`; `size` in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheAlloc {
    /// Cache level.
    pub level: u32,
    /// Code, data or both.
    pub kind: CacheType,
    /// Host cache id.
    pub id: u32,
    /// Size in bytes.
    pub size: u64,
}

/// A `<monitor>` of a cachetune (`level` set) or memorytune.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    /// `level=` (cache monitors only).
    pub level: Option<u32>,
    /// `vcpus=`.
    pub vcpus: Bitmap,
}

/// A resource-control group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resctrl {
    /// The vCPUs (clipped to the vCPU count).
    pub vcpus: Bitmap,
    /// `id=` (live only).
    pub id: Option<String>,
    /// Cache allocations, sorted by level, type, cache id.
    pub caches: Vec<CacheAlloc>,
    /// Cache monitors.
    pub cache_monitors: Vec<Monitor>,
    /// Memory bandwidth per host node: (node id, percent), sorted.
    pub bandwidth: Vec<(u32, u32)>,
    /// Memory bandwidth monitors.
    pub memory_monitors: Vec<Monitor>,
}

fn parse_vcpus(n: Node<'_>, max_vcpus: u32) -> Result<Bitmap, XmlError> {
    let v = n
        .attr("vcpus")
        .ok_or_else(|| missing(n.attr_path("vcpus")))?;
    let mut b = Bitmap::parse(v, CPUMASK_LEN)
        .ok_or_else(|| XmlError::bad_value(n.attr_path("vcpus"), v, "Failed to parse bitmap"))?;
    b.truncate(max_vcpus);
    Ok(b)
}

/// Finds the group with exactly these vCPUs; overlapping ones are an error.
fn vcpu_match(groups: &[Resctrl], vcpus: &Bitmap, path: &str) -> Result<Option<usize>, XmlError> {
    for (i, g) in groups.iter().enumerate() {
        if g.vcpus == *vcpus {
            return Ok(Some(i));
        }
        if g.vcpus.intersects(vcpus) {
            return Err(XmlError::invalid(path, "Overlapping vcpus in resctrls"));
        }
    }
    Ok(None)
}

fn parse_monitors(
    n: Node<'_>,
    group_vcpus: &Bitmap,
    cache: bool,
    max_vcpus: u32,
    out: &mut Vec<Monitor>,
) -> Result<(), XmlError> {
    for m in n.children("monitor") {
        let m = m.node();
        let level = if cache {
            let l: u32 = m
                .uint_attr("level")?
                .ok_or_else(|| missing(m.attr_path("level")))?;
            if l != 3 {
                return Err(XmlError::invalid(
                    m.attr_path("level"),
                    format!("Invalid monitor cache level '{l}'"),
                ));
            }
            Some(l)
        } else {
            None
        };
        let vcpus = parse_vcpus(m, max_vcpus)?;
        if vcpus.is_empty() {
            return Err(XmlError::invalid(m.path(), "vcpus is empty"));
        }
        if !vcpus.is_subset(group_vcpus) {
            return Err(XmlError::invalid(
                m.path(),
                "Monitor vcpus conflicts with allocation",
            ));
        }
        for other in out.iter() {
            if other.vcpus == vcpus {
                return Err(XmlError::invalid(
                    m.path(),
                    "Identical vcpus found in same type monitors",
                ));
            }
            if other.vcpus.intersects(&vcpus)
                && other.vcpus != *group_vcpus
                && vcpus != *group_vcpus
            {
                return Err(XmlError::invalid(
                    m.path(),
                    "vcpus overlaps in resctrl groups",
                ));
            }
        }
        out.push(Monitor { level, vcpus });
    }
    Ok(())
}

fn parse_cache(c: Node<'_>) -> Result<CacheAlloc, XmlError> {
    let id: u32 = c
        .uint_attr("id")?
        .ok_or_else(|| missing(c.attr_path("id")))?;
    let level: u32 = c
        .uint_attr("level")?
        .ok_or_else(|| missing(c.attr_path("level")))?;
    let size_s = c.attr("size").ok_or_else(|| missing(c.attr_path("size")))?;
    let size = scaled_bytes(&c.attr_path("size"), size_s, c.attr("unit"), 1024, u64::MAX)?;
    let kind: CacheType = c.required_parse_attr("type")?;
    Ok(CacheAlloc {
        level,
        kind,
        id,
        size,
    })
}

fn add_cache(caches: &mut Vec<CacheAlloc>, a: CacheAlloc, path: &str) -> Result<(), XmlError> {
    let same = |k: CacheType| {
        caches
            .iter()
            .any(|x| x.level == a.level && x.id == a.id && x.kind == k)
    };
    let collision = same(CacheType::Both)
        || (a.kind == CacheType::Both && (same(CacheType::Code) || same(CacheType::Data)))
        || same(a.kind);
    if collision {
        return Err(XmlError::invalid(
            path,
            format!(
                "Colliding cache allocations for cache level '{}' id '{}', type '{}'",
                a.level, a.id, a.kind
            ),
        ));
    }
    caches.push(a);
    caches.sort_by_key(|x| (x.level, x.kind, x.id));
    Ok(())
}

pub(crate) fn parse(
    cputune: Node<'_>,
    ctx: &Ctx<'_>,
    max_vcpus: u32,
) -> Result<Vec<Resctrl>, XmlError> {
    let mut groups: Vec<Resctrl> = Vec::new();
    for ct in cputune.children("cachetune") {
        let ct = ct.node();
        ctx.check(ct, &["vcpus", "id"], &["cache", "monitor"])?;
        ctx.check_child(ct, "cache", &["id", "level", "type", "size", "unit"], &[])?;
        ctx.check_child(ct, "monitor", &["level", "vcpus"], &[])?;
        let vcpus = parse_vcpus(ct, max_vcpus)?;
        if vcpus.is_empty() {
            continue;
        }
        if vcpu_match(&groups, &vcpus, ct.path())?.is_some() {
            return Err(XmlError::invalid(
                ct.path(),
                "Identical vcpus in cachetunes found",
            ));
        }
        let mut g = Resctrl {
            vcpus,
            id: if ctx.inactive() {
                None
            } else {
                ct.attr("id").map(str::to_owned)
            },
            ..Resctrl::default()
        };
        for c in ct.children("cache") {
            let c = c.node();
            let a = parse_cache(c)?;
            add_cache(&mut g.caches, a, c.path())?;
        }
        let gv = g.vcpus.clone();
        parse_monitors(ct, &gv, true, max_vcpus, &mut g.cache_monitors)?;
        if g.caches.is_empty() && g.cache_monitors.is_empty() {
            continue;
        }
        groups.push(g);
    }
    for mt in cputune.children("memorytune") {
        let mt = mt.node();
        ctx.check(mt, &["vcpus", "id"], &["node", "monitor"])?;
        ctx.check_child(mt, "node", &["id", "bandwidth"], &[])?;
        ctx.check_child(mt, "monitor", &["vcpus"], &[])?;
        let vcpus = parse_vcpus(mt, max_vcpus)?;
        if vcpus.is_empty() {
            continue;
        }
        let existing = vcpu_match(&groups, &vcpus, mt.path())?;
        let mut g = match existing {
            Some(i) => groups[i].clone(),
            None => Resctrl {
                vcpus: vcpus.clone(),
                id: if ctx.inactive() {
                    None
                } else {
                    mt.attr("id").map(str::to_owned)
                },
                ..Resctrl::default()
            },
        };
        for nd in mt.children("node") {
            let nd = nd.node();
            let id: u32 = nd
                .uint_attr("id")?
                .ok_or_else(|| missing(nd.attr_path("id")))?;
            let bw: u32 = nd
                .uint_attr("bandwidth")?
                .ok_or_else(|| missing(nd.attr_path("bandwidth")))?;
            if bw > 100 {
                return Err(XmlError::invalid(
                    nd.path(),
                    "Memory Bandwidth value exceeding 100 is invalid.",
                ));
            }
            if g.bandwidth.iter().any(|(i, _)| *i == id) {
                return Err(XmlError::invalid(
                    nd.path(),
                    format!("Memory Bandwidth already defined for node {id}"),
                ));
            }
            g.bandwidth.push((id, bw));
            g.bandwidth.sort_unstable();
        }
        parse_monitors(mt, &vcpus, false, max_vcpus, &mut g.memory_monitors)?;
        match existing {
            Some(i) => groups[i] = g,
            None => {
                if !g.bandwidth.is_empty() || !g.memory_monitors.is_empty() {
                    groups.push(g);
                }
            }
        }
    }
    Ok(groups)
}

fn monitor_el(m: &Monitor) -> Element {
    Element::new("monitor")
        .with_opt_attr("level", m.level)
        .with_attr("vcpus", &m.vcpus)
}

pub(crate) fn format(groups: &[Resctrl], flags: &Fmt, out: &mut Element) {
    let open = |name: &str, g: &Resctrl| {
        let mut e = Element::new(name).with_attr("vcpus", &g.vcpus);
        if !flags.inactive
            && let Some(id) = &g.id
        {
            e.set_attr("id", id);
        }
        e
    };
    for g in groups {
        let mut e = open("cachetune", g);
        for c in &g.caches {
            let (v, unit) = super::util::format_int_pretty(c.size);
            e.push(
                Element::new("cache")
                    .with_attr("id", c.id)
                    .with_attr("level", c.level)
                    .with_attr("type", c.kind)
                    .with_attr("size", v)
                    .with_attr("unit", unit),
            );
        }
        for m in &g.cache_monitors {
            e.push(monitor_el(m));
        }
        if !e.children.is_empty() {
            out.push(e);
        }
    }
    for g in groups {
        let mut e = open("memorytune", g);
        for (id, bw) in &g.bandwidth {
            e.push(
                Element::new("node")
                    .with_attr("id", id)
                    .with_attr("bandwidth", bw),
            );
        }
        for m in &g.memory_monitors {
            e.push(monitor_el(m));
        }
        if !e.children.is_empty() {
            out.push(e);
        }
    }
}
