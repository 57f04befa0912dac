//! Memory sizes, `<memtune>`, `<blkiotune>` and `<memoryBacking>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{
    Bitmap, CPUMASK_LEN, Ctx, attr_memory_kib, bitmap_attr, child_memory_kib, child_uint,
    kib_element, memory_kib, on_off,
};

/// libvirt's "unlimited" memory parameter (KiB).
pub const MEMORY_UNLIMITED: u64 = 9_007_199_254_740_991;

/// `<maxMemory>`, `<memory>`, `<currentMemory>`; sizes in KiB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `<maxMemory>`: the hotplug limit.
    pub max_memory: u64,
    /// `<maxMemory slots=>`.
    pub slots: u32,
    /// `<memory>`: the initial size (0 when left to the NUMA cells).
    pub total: u64,
    /// `<currentMemory>`: the balloon target.
    pub current: u64,
    /// `<memory dumpCore=>`.
    pub dump_core: Option<bool>,
}

/// `<memtune>`: limits in KiB; `None` is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemTune {
    /// `<hard_limit>`.
    pub hard_limit: Option<u64>,
    /// `<soft_limit>`.
    pub soft_limit: Option<u64>,
    /// `<min_guarantee>`.
    pub min_guarantee: Option<u64>,
    /// `<swap_hard_limit>`.
    pub swap_hard_limit: Option<u64>,
}

/// `<blkiotune>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlkioTune {
    /// `<weight>`.
    pub weight: Option<u32>,
    /// `<device>` entries.
    pub devices: Vec<BlkioDevice>,
}

/// `<blkiotune><device>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlkioDevice {
    /// `<path>`.
    pub path: String,
    /// `<weight>`.
    pub weight: u32,
    /// `<read_iops_sec>`.
    pub read_iops: u32,
    /// `<write_iops_sec>`.
    pub write_iops: u32,
    /// `<read_bytes_sec>`.
    pub read_bytes: u64,
    /// `<write_bytes_sec>`.
    pub write_bytes: u64,
}

xml_enum! {
    /// `<memoryBacking><source type=>`.
    pub enum MemorySource { None = "none", File = "file", Anonymous = "anonymous", Memfd = "memfd" }
}

xml_enum! {
    /// `<access mode=>`.
    pub enum MemoryAccess { Shared = "shared", Private = "private" }
}

xml_enum! {
    /// `<allocation mode=>`.
    pub enum MemoryAllocation { Immediate = "immediate", Ondemand = "ondemand" }
}

/// `<memoryBacking><hugepages><page>`; `size` 0 is the default size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HugePage {
    /// Page size in KiB.
    pub size: u64,
    /// Guest NUMA nodes it applies to.
    pub nodeset: Option<Bitmap>,
}

/// `<memoryBacking>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryBacking {
    /// `<hugepages>` (empty: no huge pages).
    pub hugepages: Vec<HugePage>,
    /// `<nosharepages/>`.
    pub nosharepages: bool,
    /// `<locked/>`.
    pub locked: bool,
    /// `<source type=>`.
    pub source: Option<MemorySource>,
    /// `<access mode=>`.
    pub access: Option<MemoryAccess>,
    /// `<allocation mode=>`.
    pub allocation: Option<MemoryAllocation>,
    /// `<allocation threads=>`.
    pub allocation_threads: Option<u32>,
    /// `<discard/>`.
    pub discard: Option<bool>,
}

impl MemoryBacking {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == MemoryBacking::default()
    }
}

// === parse ===

pub(crate) fn parse_memory(root: Node<'_>, ctx: &Ctx<'_>) -> Result<Memory, XmlError> {
    ctx.check_child(root, "memory", &["unit", "dumpCore"], &[])?;
    ctx.check_child(root, "maxMemory", &["unit", "slots"], &[])?;
    ctx.check_child(root, "currentMemory", &["unit"], &[])?;
    let mut m = Memory::default();
    if let Some(n) = root.child("memory") {
        let n = n.node();
        m.total = memory_kib(n)?;
        m.dump_core = n.on_off_attr("dumpCore")?;
    }
    if let Some(n) = root.child("maxMemory") {
        let n = n.node();
        m.max_memory = memory_kib(n)?;
        m.slots = n.uint_attr("slots")?.unwrap_or(0);
    }
    if let Some(n) = root.child("currentMemory") {
        m.current = memory_kib(n.node())?;
    }
    Ok(m)
}

fn limit(n: Node<'_>, name: &str) -> Result<Option<u64>, XmlError> {
    Ok(child_memory_kib(n, name)?.filter(|v| *v < MEMORY_UNLIMITED))
}

pub(crate) fn parse_memtune(n: Node<'_>, ctx: &Ctx<'_>) -> Result<MemTune, XmlError> {
    ctx.check(
        n,
        &[],
        &[
            "hard_limit",
            "soft_limit",
            "min_guarantee",
            "swap_hard_limit",
        ],
    )?;
    for c in [
        "hard_limit",
        "soft_limit",
        "min_guarantee",
        "swap_hard_limit",
    ] {
        ctx.check_child(n, c, &["unit"], &[])?;
    }
    Ok(MemTune {
        hard_limit: limit(n, "hard_limit")?,
        soft_limit: limit(n, "soft_limit")?,
        min_guarantee: child_memory_kib(n, "min_guarantee")?.filter(|v| *v > 0),
        swap_hard_limit: limit(n, "swap_hard_limit")?,
    })
}

pub(crate) fn parse_blkiotune(n: Node<'_>, ctx: &Ctx<'_>) -> Result<BlkioTune, XmlError> {
    ctx.check(n, &[], &["weight", "device"])?;
    ctx.check_leaves(n, &["weight"])?;
    const DEVICE: &[&str] = &[
        "path",
        "weight",
        "read_iops_sec",
        "write_iops_sec",
        "read_bytes_sec",
        "write_bytes_sec",
    ];
    ctx.check_child(n, "device", &[], DEVICE)?;
    for d in super::util::named(n, "device") {
        ctx.check_leaves(d.node(), DEVICE)?;
    }
    let mut b = BlkioTune {
        weight: child_uint(n, "weight")?,
        devices: Vec::new(),
    };
    for d in n.children("device") {
        let d = d.node();
        let path = d
            .child("path")
            .map(|p| p.node().text().trim().to_owned())
            .ok_or_else(|| super::util::missing(d.child_path("path", None)))?;
        if b.devices.iter().any(|x| x.path == path) {
            return Err(XmlError::invalid(
                d.path(),
                format!("duplicate blkio device path '{path}'"),
            ));
        }
        b.devices.push(BlkioDevice {
            path,
            weight: child_uint(d, "weight")?.unwrap_or(0),
            read_iops: child_uint(d, "read_iops_sec")?.unwrap_or(0),
            write_iops: child_uint(d, "write_iops_sec")?.unwrap_or(0),
            read_bytes: child_uint(d, "read_bytes_sec")?.unwrap_or(0),
            write_bytes: child_uint(d, "write_bytes_sec")?.unwrap_or(0),
        });
    }
    Ok(b)
}

pub(crate) fn parse_memory_backing(n: Node<'_>, ctx: &Ctx<'_>) -> Result<MemoryBacking, XmlError> {
    ctx.check(
        n,
        &[],
        &[
            "hugepages",
            "nosharepages",
            "locked",
            "source",
            "access",
            "allocation",
            "discard",
        ],
    )?;
    let mut mb = MemoryBacking::default();
    ctx.check_child(n, "hugepages", &[], &["page"])?;
    if let Some(h) = n.child("hugepages") {
        ctx.check_child(h.node(), "page", &["size", "unit", "nodeset"], &[])?;
    }
    ctx.check_leaves(n, &["nosharepages", "locked", "discard"])?;
    ctx.check_child(n, "source", &["type"], &[])?;
    ctx.check_child(n, "access", &["mode"], &[])?;
    ctx.check_child(n, "allocation", &["mode", "threads"], &[])?;
    if let Some(h) = n.child("hugepages") {
        let h = h.node();
        let pages = h.children("page");
        if pages.is_empty() {
            mb.hugepages.push(HugePage::default());
        }
        for p in pages {
            let p = p.node();
            let size = attr_memory_kib(p, "size", "unit")?
                .ok_or_else(|| super::util::missing(p.attr_path("size")))?;
            let nodeset = bitmap_attr(p, "nodeset", CPUMASK_LEN)?;
            let default_dup = nodeset.is_none() && mb.hugepages.iter().any(|x| x.nodeset.is_none());
            if default_dup {
                return Err(XmlError::invalid(
                    p.path(),
                    "duplicate hugepages without nodeset",
                ));
            }
            mb.hugepages.push(HugePage { size, nodeset });
        }
    }
    mb.nosharepages = n.child("nosharepages").is_some();
    mb.locked = n.child("locked").is_some();
    if let Some(s) = n.child("source") {
        mb.source = s.node().parse_attr("type")?;
    }
    if let Some(a) = n.child("access") {
        mb.access = a.node().parse_attr("mode")?;
    }
    if let Some(a) = n.child("allocation") {
        let a = a.node();
        mb.allocation = a.parse_attr("mode")?;
        mb.allocation_threads = a.uint_attr("threads")?;
    }
    if n.child("discard").is_some() {
        mb.discard = Some(true);
    }
    Ok(mb)
}

// === format ===

pub(crate) fn format_memory(m: &Memory, out: &mut Vec<Element>) {
    if m.max_memory > 0 || m.slots > 0 {
        let mut e = Element::new("maxMemory");
        if m.slots > 0 {
            e.set_attr("slots", m.slots);
        }
        out.push(
            e.with_attr("unit", "KiB")
                .with_text(m.max_memory.to_string()),
        );
    }
    let mut mem = Element::new("memory");
    if let Some(d) = m.dump_core {
        mem.set_attr("dumpCore", on_off(d));
    }
    mem.set_attr("unit", "KiB");
    out.push(mem.with_text(m.total.to_string()));
    out.push(kib_element("currentMemory", m.current));
}

pub(crate) fn format_memtune(t: &MemTune) -> Option<Element> {
    let mut e = Element::new("memtune");
    if let Some(v) = t.hard_limit {
        e.push(kib_element("hard_limit", v));
    }
    if let Some(v) = t.soft_limit {
        e.push(kib_element("soft_limit", v));
    }
    if let Some(v) = t.min_guarantee {
        e.push(kib_element("min_guarantee", v));
    }
    if let Some(v) = t.swap_hard_limit {
        e.push(kib_element("swap_hard_limit", v));
    }
    (!e.children.is_empty()).then_some(e)
}

pub(crate) fn format_blkiotune(b: &BlkioTune) -> Option<Element> {
    let mut e = Element::new("blkiotune");
    if let Some(w) = b.weight {
        e.push(Element::text_element("weight", w.to_string()));
    }
    for d in &b.devices {
        if d.weight == 0
            && d.read_iops == 0
            && d.write_iops == 0
            && d.read_bytes == 0
            && d.write_bytes == 0
        {
            continue;
        }
        let mut de = Element::new("device").with_child(Element::text_element("path", &d.path));
        let nums: [(&str, u64); 5] = [
            ("weight", u64::from(d.weight)),
            ("read_iops_sec", u64::from(d.read_iops)),
            ("write_iops_sec", u64::from(d.write_iops)),
            ("read_bytes_sec", d.read_bytes),
            ("write_bytes_sec", d.write_bytes),
        ];
        for (name, v) in nums {
            if v != 0 {
                de.push(Element::text_element(name, v.to_string()));
            }
        }
        e.push(de);
    }
    (!e.children.is_empty()).then_some(e)
}

pub(crate) fn format_memory_backing(mb: &MemoryBacking) -> Option<Element> {
    let mut e = Element::new("memoryBacking");
    if !mb.hugepages.is_empty() {
        let mut h = Element::new("hugepages");
        let default_only = mb.hugepages.len() == 1 && mb.hugepages[0].size == 0;
        if !default_only {
            for p in &mb.hugepages {
                let mut pe = Element::new("page");
                if p.size != 0 {
                    pe.set_attr("size", p.size);
                    pe.set_attr("unit", "KiB");
                }
                if let Some(ns) = &p.nodeset {
                    pe.set_attr("nodeset", ns);
                }
                h.push(pe);
            }
        }
        e.push(h);
    }
    if mb.nosharepages {
        e.push(Element::new("nosharepages"));
    }
    if mb.locked {
        e.push(Element::new("locked"));
    }
    if let Some(s) = mb.source {
        e.push(Element::new("source").with_attr("type", s));
    }
    if let Some(a) = mb.access {
        e.push(Element::new("access").with_attr("mode", a));
    }
    if mb.allocation.is_some() || mb.allocation_threads.is_some() {
        e.push(
            Element::new("allocation")
                .with_opt_attr("mode", mb.allocation)
                .with_opt_attr("threads", mb.allocation_threads),
        );
    }
    if mb.discard == Some(true) {
        e.push(Element::new("discard"));
    }
    (!e.children.is_empty()).then_some(e)
}
