//! `<memory>` devices: DIMMs, NVDIMMs, virtio-pmem, virtio-mem, SGX EPC.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{
    Bitmap, CPUMASK_LEN, Ctx, Fmt, Uuid, bitmap_attr, child_memory_kib, kib_element, missing,
    yes_no,
};
use super::address::parse_base0;
use super::info::{DeviceInfo, InfoOpts};

xml_enum! {
    /// `<memory model=>`.
    pub enum MemoryModel {
        Dimm = "dimm", Nvdimm = "nvdimm", VirtioPmem = "virtio-pmem", VirtioMem = "virtio-mem",
        SgxEpc = "sgx-epc",
    }
}

xml_enum! {
    /// `<memory access=>`.
    pub enum MemoryDevAccess { Shared = "shared", Private = "private" }
}

/// A memory device; sizes in KiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryDevice {
    /// `model=`.
    pub model: MemoryModel,
    /// `access=`.
    pub access: Option<MemoryDevAccess>,
    /// `discard=`.
    pub discard: Option<bool>,
    /// `<uuid>` (NVDIMM on ppc64).
    pub uuid: Option<Uuid>,
    /// `<source><nodemask>`.
    pub nodemask: Option<Bitmap>,
    /// `<source><pagesize>`.
    pub pagesize: Option<u64>,
    /// `<source><path>`.
    pub path: Option<String>,
    /// `<source><alignsize>`.
    pub alignsize: Option<u64>,
    /// `<source><pmem/>`.
    pub pmem: bool,
    /// `<target dynamicMemslots=>`.
    pub dynamic_memslots: Option<bool>,
    /// `<target><size>`.
    pub size: u64,
    /// `<target><node>`.
    pub node: Option<u32>,
    /// `<target><label><size>` (NVDIMM).
    pub label_size: Option<u64>,
    /// `<target><readonly/>` (NVDIMM).
    pub readonly: bool,
    /// `<target><block>` (virtio-mem).
    pub block: Option<u64>,
    /// `<target><requested>` (virtio-mem).
    pub requested: Option<u64>,
    /// `<target><current>` (virtio-mem, live).
    pub current: Option<u64>,
    /// `<target><address base=>`.
    pub base: Option<u64>,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl MemoryDevice {
    /// Parses a `<memory>` device.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<MemoryDevice, XmlError> {
        ctx.check(
            n,
            &["model", "access", "discard"],
            &["uuid", "source", "target", "alias", "address", "acpi"],
        )?;
        ctx.check_leaves(n, &["uuid"])?;
        ctx.check_child(
            n,
            "source",
            &[],
            &["nodemask", "pagesize", "path", "alignsize", "pmem"],
        )?;
        if let Some(s) = n.child("source") {
            let s = s.node();
            ctx.check_leaves(s, &["nodemask", "path", "pmem"])?;
            ctx.check_child(s, "pagesize", &["unit"], &[])?;
            ctx.check_child(s, "alignsize", &["unit"], &[])?;
        }
        ctx.check_child(
            n,
            "target",
            &["dynamicMemslots"],
            &[
                "size",
                "node",
                "label",
                "readonly",
                "block",
                "requested",
                "current",
                "address",
            ],
        )?;
        if let Some(t) = n.child("target") {
            let t = t.node();
            ctx.check_leaves(t, &["node", "readonly"])?;
            for k in ["size", "block", "requested", "current"] {
                ctx.check_child(t, k, &["unit"], &[])?;
            }
            ctx.check_child(t, "label", &[], &["size"])?;
            if let Some(l) = t.child("label") {
                ctx.check_child(l.node(), "size", &["unit"], &[])?;
            }
            ctx.check_child(t, "address", &["base"], &[])?;
        }
        let m = n
            .attr("model")
            .ok_or_else(|| missing(n.attr_path("model")))?;
        let model: MemoryModel = m
            .parse()
            .map_err(|_| XmlError::bad_value(n.attr_path("model"), m, "unknown memory model"))?;
        let t = n.required_child("target")?;
        let t = t.node();
        let mut d = MemoryDevice {
            model,
            access: n.parse_attr("access")?,
            discard: n.yes_no_attr("discard")?,
            uuid: match n.child("uuid") {
                None => None,
                Some(u) => {
                    let u = u.node();
                    let txt = u.text();
                    Some(Uuid::parse(&txt).ok_or_else(|| {
                        XmlError::bad_value(u.path(), txt.clone(), "malformed uuid element")
                    })?)
                }
            },
            nodemask: None,
            pagesize: None,
            path: None,
            alignsize: None,
            pmem: false,
            dynamic_memslots: t.yes_no_attr("dynamicMemslots")?,
            size: child_memory_kib(t, "size")?
                .ok_or_else(|| missing(t.child_path("size", None)))?,
            node: super::super::util::child_uint(t, "node")?,
            label_size: match t.child("label") {
                Some(l) => child_memory_kib(l.node(), "size")?,
                None => None,
            },
            readonly: t.child("readonly").is_some(),
            block: child_memory_kib(t, "block")?,
            requested: child_memory_kib(t, "requested")?,
            current: if ctx.inactive() {
                None
            } else {
                child_memory_kib(t, "current")?
            },
            base: match t.child("address") {
                None => None,
                Some(a) => {
                    let a = a.node();
                    match a.attr("base") {
                        None => None,
                        Some(b) => Some(parse_base0(b).ok_or_else(|| {
                            XmlError::bad_value(a.attr_path("base"), b, "Cannot parse base")
                        })?),
                    }
                }
            },
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        };
        if let Some(s) = n.child("source") {
            let s = s.node();
            d.nodemask = match s.child("nodemask") {
                None => None,
                Some(nm) => {
                    let nm = nm.node();
                    let txt = nm.text();
                    Some(Bitmap::parse(&txt, CPUMASK_LEN).ok_or_else(|| {
                        XmlError::bad_value(nm.path(), txt.clone(), "Failed to parse bitmap")
                    })?)
                }
            };
            d.pagesize = child_memory_kib(s, "pagesize")?;
            d.path = s.child("path").map(|p| p.node().text());
            d.alignsize = child_memory_kib(s, "alignsize")?;
            d.pmem = s.child("pmem").is_some();
        }
        let _ = bitmap_attr;
        Ok(d)
    }

    /// Formats the `<memory>` device.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("memory")
            .with_attr("model", self.model)
            .with_opt_attr("access", self.access)
            .with_opt_attr("discard", self.discard.map(yes_no));
        if let Some(u) = &self.uuid {
            e.push(Element::text_element("uuid", u.to_string()));
        }
        let mut s = Element::new("source");
        if let Some(nm) = &self.nodemask {
            s.push(Element::text_element("nodemask", nm.to_string()));
        }
        if let Some(p) = self.pagesize {
            s.push(kib_element("pagesize", p));
        }
        if let Some(p) = &self.path {
            s.push(Element::text_element("path", p));
        }
        if let Some(a) = self.alignsize {
            s.push(kib_element("alignsize", a));
        }
        if self.pmem {
            s.push(Element::new("pmem"));
        }
        if !s.children.is_empty() {
            e.push(s);
        }
        let mut t = Element::new("target")
            .with_opt_attr("dynamicMemslots", self.dynamic_memslots.map(yes_no));
        t.push(kib_element("size", self.size));
        if let Some(n) = self.node {
            t.push(Element::text_element("node", n.to_string()));
        }
        if let Some(l) = self.label_size {
            t.push(Element::new("label").with_child(kib_element("size", l)));
        }
        if self.readonly {
            t.push(Element::new("readonly"));
        }
        if let Some(b) = self.block {
            t.push(kib_element("block", b));
        }
        if let Some(r) = self.requested {
            t.push(kib_element("requested", r));
        }
        if !flags.inactive
            && let Some(c) = self.current
        {
            t.push(kib_element("current", c));
        }
        if let Some(b) = self.base {
            t.push(Element::new("address").with_attr("base", format!("0x{b:x}")));
        }
        e.push(t);
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
