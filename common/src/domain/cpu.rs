//! `<cpu>`: the guest CPU model, topology, features, cache and the guest
//! NUMA cells (`<cpu><numa>`).

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Bitmap, CPUMASK_LEN, Ctx, attr_memory_kib, missing, on_off, yes_no};

xml_enum! {
    /// `<cpu mode=>`.
    pub enum CpuMode { Custom = "custom", HostModel = "host-model", HostPassthrough = "host-passthrough", Maximum = "maximum" }
}

xml_enum! {
    /// `<cpu match=>`.
    pub enum CpuMatch { Minimum = "minimum", Exact = "exact", Strict = "strict" }
}

xml_enum! {
    /// `<cpu check=>`.
    pub enum CpuCheck { None = "none", Partial = "partial", Full = "full" }
}

xml_enum! {
    /// `<model fallback=>`.
    pub enum CpuFallback { Allow = "allow", Forbid = "forbid" }
}

xml_enum! {
    /// `<feature policy=>`.
    pub enum FeaturePolicy { Force = "force", Require = "require", Optional = "optional", Disable = "disable", Forbid = "forbid" }
}

xml_enum! {
    /// `<cache mode=>`.
    pub enum CpuCacheMode { Emulate = "emulate", Passthrough = "passthrough", Disable = "disable" }
}

xml_enum! {
    /// `<maxphysaddr mode=>`.
    pub enum PhysAddrMode { Emulate = "emulate", Passthrough = "passthrough" }
}

xml_enum! {
    /// `<cell memAccess=>`.
    pub enum MemAccess { Shared = "shared", Private = "private" }
}

/// `<topology>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// `sockets=`.
    pub sockets: u32,
    /// `dies=`.
    pub dies: u32,
    /// `clusters=`.
    pub clusters: u32,
    /// `cores=`.
    pub cores: u32,
    /// `threads=`.
    pub threads: u32,
}

/// A guest NUMA cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumaCell {
    /// `cpus=`.
    pub cpus: Option<Bitmap>,
    /// `memory=` in KiB.
    pub memory: u64,
    /// `memAccess=`.
    pub mem_access: Option<MemAccess>,
    /// `discard=`.
    pub discard: Option<bool>,
    /// `<distances><sibling id= value=>`.
    pub distances: Vec<(u32, u32)>,
    /// `<cache>` elements, kept as written.
    pub caches: Vec<Element>,
}

/// `<cpu><numa>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Numa {
    /// Cells, by id.
    pub cells: Vec<NumaCell>,
    /// `<interconnects>`, kept as written.
    pub interconnects: Option<Element>,
}

impl Numa {
    /// Total memory of the cells (KiB).
    pub fn total_memory(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |a, c| a.saturating_add(c.memory))
    }
}

/// The guest CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// `mode=`.
    pub mode: Option<CpuMode>,
    /// `match=`.
    pub match_: Option<CpuMatch>,
    /// `check=`.
    pub check: Option<CpuCheck>,
    /// `migratable=`.
    pub migratable: Option<bool>,
    /// `deprecated_features=`.
    pub deprecated_features: Option<bool>,
    /// `<model>` text.
    pub model: Option<String>,
    /// `<model fallback=>`.
    pub fallback: Option<CpuFallback>,
    /// `<model vendor_id=>`.
    pub vendor_id: Option<String>,
    /// `<vendor>`.
    pub vendor: Option<String>,
    /// `<topology>`.
    pub topology: Option<Topology>,
    /// `<cache level= mode=>`.
    pub cache: Option<(Option<u32>, CpuCacheMode)>,
    /// `<maxphysaddr mode= bits= limit=>`.
    pub maxphysaddr: Option<(PhysAddrMode, Option<u32>, Option<u32>)>,
    /// `<feature policy= name=>`s.
    pub features: Vec<(FeaturePolicy, String)>,
    /// `<numa>`.
    pub numa: Option<Numa>,
}

impl Cpu {
    /// The mode (custom when not written).
    pub fn mode(&self) -> CpuMode {
        self.mode.unwrap_or(CpuMode::Custom)
    }
}

fn parse_numa(n: Node<'_>) -> Result<Numa, XmlError> {
    let cells = n.children("cell");
    let mut out: Vec<Option<NumaCell>> = vec![None; cells.len()];
    for c in &cells {
        let c = c.node();
        let id: usize = match c.uint_attr::<u64>("id")? {
            Some(v) => usize::try_from(v).unwrap_or(usize::MAX),
            None => out.iter().position(Option::is_none).unwrap_or(usize::MAX),
        };
        if id >= out.len() || out[id].is_some() {
            return Err(XmlError::invalid(
                c.path(),
                "Exactly one 'cell' element per guest NUMA cell allowed, non-contiguous ranges or ranges not starting from 0 are not allowed",
            ));
        }
        let cpus = match c.attr("cpus") {
            None => None,
            Some(v) => Some(Bitmap::parse(v, CPUMASK_LEN).ok_or_else(|| {
                XmlError::bad_value(c.attr_path("cpus"), v, "Failed to parse bitmap")
            })?),
        };
        let memory =
            attr_memory_kib(c, "memory", "unit")?.ok_or_else(|| missing(c.attr_path("memory")))?;
        let mem_access = match c.attr("memAccess") {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| {
                XmlError::invalid(
                    c.attr_path("memAccess"),
                    format!("Invalid value for attribute 'memAccess' in element 'cell': '{v}'."),
                )
            })?),
        };
        let mut distances = Vec::new();
        if let Some(d) = c.child("distances") {
            for s in d.node().children("sibling") {
                let s = s.node();
                let sid: u32 = s
                    .uint_attr("id")?
                    .ok_or_else(|| missing(s.attr_path("id")))?;
                let value: u32 = s
                    .uint_attr("value")?
                    .ok_or_else(|| missing(s.attr_path("value")))?;
                if sid as usize >= cells.len() {
                    return Err(XmlError::invalid(
                        s.path(),
                        format!(
                            "'sibling_id {sid}' does not refer to a valid cell within NUMA 'cell id {id}'"
                        ),
                    ));
                }
                distances.push((sid, value));
            }
        }
        out[id] = Some(NumaCell {
            cpus,
            memory,
            mem_access,
            discard: c.yes_no_attr("discard")?,
            distances,
            caches: c
                .children("cache")
                .iter()
                .map(|x| x.node().el.clone())
                .collect(),
        });
    }
    Ok(Numa {
        cells: out.into_iter().flatten().collect(),
        interconnects: n.child("interconnects").map(|i| i.node().el.clone()),
    })
}

/// With the validate flag: the children of `<cpu>` (a NUMA cell's
/// `<cache>` and `<interconnects>` are kept as they are).
fn check_children(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    ctx.check_child(n, "model", &["fallback", "vendor_id"], &[])?;
    ctx.check_leaves(n, &["vendor"])?;
    ctx.check_child(
        n,
        "topology",
        &["sockets", "dies", "clusters", "cores", "threads"],
        &[],
    )?;
    ctx.check_child(n, "cache", &["level", "mode"], &[])?;
    ctx.check_child(n, "maxphysaddr", &["mode", "bits", "limit"], &[])?;
    ctx.check_child(n, "feature", &["policy", "name"], &[])?;
    ctx.check_child(n, "numa", &[], &["cell", "interconnects"])?;
    if let Some(numa) = n.child("numa") {
        let numa = numa.node();
        ctx.check_child(
            numa,
            "cell",
            &["id", "cpus", "memory", "unit", "memAccess", "discard"],
            &["distances", "cache"],
        )?;
        for c in super::util::named(numa, "cell") {
            let c = c.node();
            ctx.check_child(c, "distances", &[], &["sibling"])?;
            if let Some(d) = c.child("distances") {
                ctx.check_child(d.node(), "sibling", &["id", "value"], &[])?;
            }
        }
    }
    Ok(())
}

pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Cpu, XmlError> {
    ctx.check(
        n,
        &[
            "mode",
            "match",
            "check",
            "migratable",
            "deprecated_features",
        ],
        &[
            "model",
            "vendor",
            "topology",
            "cache",
            "maxphysaddr",
            "feature",
            "numa",
        ],
    )?;
    check_children(n, ctx)?;
    let mut cpu = Cpu {
        mode: n.parse_attr("mode")?,
        check: n.parse_attr("check")?,
        migratable: n.on_off_attr("migratable")?,
        deprecated_features: n.on_off_attr("deprecated_features")?,
        ..Cpu::default()
    };
    if cpu.mode() == CpuMode::Custom {
        cpu.match_ = Some(n.parse_attr("match")?.unwrap_or(CpuMatch::Exact));
    }
    if let Some(m) = n.child("model") {
        let m = m.node();
        let t = m.text();
        cpu.model = Some(t).filter(|s| !s.is_empty());
        cpu.fallback = m.parse_attr("fallback")?;
        if let Some(v) = m.attr("vendor_id") {
            if v.len() != 12 {
                return Err(XmlError::bad_value(
                    m.attr_path("vendor_id"),
                    v,
                    "vendor_id must be exactly 12 characters long:",
                ));
            }
            cpu.vendor_id = Some(v.to_owned());
        }
    }
    cpu.vendor = n.child("vendor").map(|v| v.node().text());
    if cpu.vendor.is_some() && cpu.model.is_none() {
        return Err(XmlError::invalid(
            n.path(),
            "CPU vendor specified without CPU model",
        ));
    }
    if let Some(t) = n.child("topology") {
        let t = t.node();
        let req = |a: &str| -> Result<u32, XmlError> {
            let v: u32 = t.uint_attr(a)?.ok_or_else(|| missing(t.attr_path(a)))?;
            if v == 0 {
                return Err(XmlError::bad_value(t.attr_path(a), "0", "Invalid value"));
            }
            Ok(v)
        };
        cpu.topology = Some(Topology {
            sockets: req("sockets")?,
            dies: t.uint_attr("dies")?.unwrap_or(1),
            clusters: t.uint_attr("clusters")?.unwrap_or(1),
            cores: req("cores")?,
            threads: req("threads")?,
        });
    }
    if let Some(c) = n.child("cache") {
        let c = c.node();
        cpu.cache = Some((c.uint_attr("level")?, c.required_parse_attr("mode")?));
    }
    if let Some(a) = n.child("maxphysaddr") {
        let a = a.node();
        cpu.maxphysaddr = Some((
            a.required_parse_attr("mode")?,
            a.uint_attr("bits")?,
            a.uint_attr("limit")?,
        ));
    }
    for f in n.children("feature") {
        let f = f.node();
        let policy = f.parse_attr("policy")?.unwrap_or(FeaturePolicy::Require);
        let name = f.required_attr("name")?.to_owned();
        if cpu.features.iter().any(|(_, x)| *x == name) {
            return Err(XmlError::invalid(
                f.path(),
                format!("CPU feature '{name}' specified more than once"),
            ));
        }
        cpu.features.push((policy, name));
    }
    if !cpu.features.is_empty() && cpu.model.is_none() && cpu.mode() == CpuMode::Custom {
        return Err(XmlError::invalid(
            n.path(),
            "Non-empty feature list specified without CPU model",
        ));
    }
    if let Some(numa) = n.child("numa") {
        cpu.numa = Some(parse_numa(numa.node())?);
    }
    Ok(cpu)
}

fn format_numa(numa: &Numa) -> Element {
    let mut e = Element::new("numa");
    for (i, c) in numa.cells.iter().enumerate() {
        let mut ce = Element::new("cell").with_attr("id", i);
        if let Some(cpus) = c.cpus.as_ref().filter(|b| !b.is_empty()) {
            ce.set_attr("cpus", cpus);
        }
        ce.set_attr("memory", c.memory);
        ce.set_attr("unit", "KiB");
        ce.set_opt_attr("memAccess", c.mem_access);
        ce.set_opt_attr("discard", c.discard.map(yes_no));
        if !c.distances.is_empty() {
            let mut d = Element::new("distances");
            for (id, v) in &c.distances {
                d.push(
                    Element::new("sibling")
                        .with_attr("id", id)
                        .with_attr("value", v),
                );
            }
            ce.push(d);
        }
        for cache in &c.caches {
            ce.push(cache.clone());
        }
        e.push(ce);
    }
    e.push_opt(numa.interconnects.clone());
    e
}

/// Formats `<cpu>`; `None` when there is nothing to say.
pub(crate) fn format(cpu: &Cpu) -> Option<Element> {
    let mode = cpu.mode();
    let mut e = Element::new("cpu");
    if mode != CpuMode::Custom || cpu.model.is_some() {
        e.set_attr("mode", mode);
    }
    if cpu.model.is_some() && mode == CpuMode::Custom {
        e.set_attr("match", cpu.match_.unwrap_or(CpuMatch::Exact));
    }
    e.set_opt_attr("check", cpu.check);
    if matches!(mode, CpuMode::HostPassthrough | CpuMode::Maximum) {
        e.set_opt_attr("migratable", cpu.migratable.map(on_off));
    }
    e.set_opt_attr("deprecated_features", cpu.deprecated_features.map(on_off));
    let format_model = matches!(mode, CpuMode::Custom | CpuMode::HostModel);
    let format_fallback = mode == CpuMode::Custom && cpu.model.is_some();
    if (format_model && cpu.model.is_some()) || format_fallback {
        let mut m = Element::new("model");
        if format_fallback {
            m.set_attr("fallback", cpu.fallback.unwrap_or(CpuFallback::Allow));
            m.set_opt_attr("vendor_id", cpu.vendor_id.as_deref());
        }
        if format_model && let Some(name) = &cpu.model {
            m = m.with_text(name.as_str());
        }
        e.push(m);
    }
    if format_model && let Some(v) = &cpu.vendor {
        e.push(Element::text_element("vendor", v));
    }
    if let Some(t) = &cpu.topology {
        e.push(
            Element::new("topology")
                .with_attr("sockets", t.sockets)
                .with_attr("dies", t.dies)
                .with_attr("clusters", t.clusters)
                .with_attr("cores", t.cores)
                .with_attr("threads", t.threads),
        );
    }
    if let Some((level, m)) = &cpu.cache {
        e.push(
            Element::new("cache")
                .with_opt_attr("level", *level)
                .with_attr("mode", m),
        );
    }
    if let Some((m, bits, limit)) = &cpu.maxphysaddr {
        e.push(
            Element::new("maxphysaddr")
                .with_attr("mode", m)
                .with_opt_attr("bits", *bits)
                .with_opt_attr("limit", *limit),
        );
    }
    for (p, name) in &cpu.features {
        e.push(
            Element::new("feature")
                .with_attr("policy", p)
                .with_attr("name", name),
        );
    }
    if let Some(n) = &cpu.numa {
        e.push(format_numa(n));
    }
    (!e.is_empty()).then_some(e)
}

/// Generic CPU checks (`virCPUDefValidate` style).
pub(crate) fn validate(cpu: &Cpu) -> Result<(), XmlError> {
    let mode = cpu.mode();
    if let Some((level, m)) = cpu.cache {
        match m {
            CpuCacheMode::Emulate if level != Some(3) => {
                return Err(XmlError::unsupported(
                    "cpu/cache",
                    "CPU cache mode 'emulate' can only be used with level='3'",
                ));
            }
            CpuCacheMode::Passthrough => {
                if level.is_some() {
                    return Err(XmlError::unsupported(
                        "cpu/cache",
                        "unsupported CPU cache level for mode 'passthrough'",
                    ));
                }
                if !matches!(mode, CpuMode::HostPassthrough | CpuMode::Maximum) {
                    return Err(XmlError::unsupported(
                        "cpu/cache",
                        "CPU cache mode 'passthrough' can only be used with 'host-passthrough' / 'maximum' CPUs",
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some((PhysAddrMode::Passthrough, Some(_), _)) = cpu.maxphysaddr {
        return Err(XmlError::unsupported(
            "cpu/maxphysaddr",
            "CPU maximum physical address bits number specification cannot be used with mode='passthrough'",
        ));
    }
    Ok(())
}
