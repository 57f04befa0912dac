//! `<features>`: hypervisor features, Hyper-V and KVM enlightenments.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Ctx, missing, on_off, scaled_bytes, yes_no};

xml_enum! {
    /// `<ioapic driver=>`.
    pub enum IoapicDriver { Qemu = "qemu", Kvm = "kvm" }
}

xml_enum! {
    /// `<hpt resizing=>`.
    pub enum HptResizing { Enabled = "enabled", Disabled = "disabled", Required = "required" }
}

xml_enum! {
    /// `<hyperv mode=>`.
    pub enum HypervMode { Custom = "custom", Passthrough = "passthrough" }
}

xml_enum! {
    /// `<capabilities policy=>`.
    pub enum CapsPolicy { Default = "default", Allow = "allow", Deny = "deny" }
}

xml_enum! {
    /// `<msrs unknown=>`.
    pub enum MsrsUnknown { Ignore = "ignore", Fault = "fault" }
}

xml_enum! {
    /// `<xen><passthrough mode=>`.
    pub enum XenPassthroughMode { SyncPt = "sync_pt", SharePt = "share_pt" }
}

/// Hyper-V enlightenments in libvirt's order.
pub const HYPERV_FEATURES: &[&str] = &[
    "relaxed",
    "vapic",
    "spinlocks",
    "vpindex",
    "runtime",
    "synic",
    "stimer",
    "reset",
    "vendor_id",
    "frequencies",
    "reenlightenment",
    "tlbflush",
    "ipi",
    "evmcs",
    "avic",
    "emsr_bitmap",
    "xmm_input",
];

/// KVM features in libvirt's order.
pub const KVM_FEATURES: &[&str] = &[
    "hidden",
    "hint-dedicated",
    "poll-control",
    "pv-ipi",
    "dirty-ring",
];

/// Container capabilities in libvirt's order.
pub const CAPS_FEATURES: &[&str] = &[
    "audit_control",
    "audit_write",
    "block_suspend",
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "ipc_lock",
    "ipc_owner",
    "kill",
    "lease",
    "linux_immutable",
    "mac_admin",
    "mac_override",
    "mknod",
    "net_admin",
    "net_bind_service",
    "net_broadcast",
    "net_raw",
    "setgid",
    "setfcap",
    "setpcap",
    "setuid",
    "sys_admin",
    "sys_boot",
    "sys_chroot",
    "sys_module",
    "sys_nice",
    "sys_pacct",
    "sys_ptrace",
    "sys_rawio",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "syslog",
    "wake_alarm",
];

/// `<hyperv>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HyperV {
    /// `mode=`.
    pub mode: Option<HypervMode>,
    /// State per [`HYPERV_FEATURES`] entry.
    pub states: [Option<bool>; 17],
    /// `<spinlocks retries=>`.
    pub spinlock_retries: Option<u32>,
    /// `<vendor_id value=>`.
    pub vendor_id: Option<String>,
    /// `<stimer><direct state=>`.
    pub stimer_direct: Option<bool>,
    /// `<tlbflush><direct state=>`.
    pub tlbflush_direct: Option<bool>,
    /// `<tlbflush><extended state=>`.
    pub tlbflush_extended: Option<bool>,
}

/// `<kvm>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvmFeatures {
    /// State per [`KVM_FEATURES`] entry.
    pub states: [Option<bool>; 5],
    /// `<dirty-ring size=>`.
    pub dirty_ring_size: Option<u32>,
}

/// `<features>`; `None`/`false` is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `<acpi/>`.
    pub acpi: bool,
    /// `<apic/>`.
    pub apic: bool,
    /// `<apic eoi=>`.
    pub apic_eoi: Option<bool>,
    /// `<pae/>`.
    pub pae: bool,
    /// `<hap state=>`.
    pub hap: Option<bool>,
    /// `<viridian/>`.
    pub viridian: bool,
    /// `<privnet/>`.
    pub privnet: bool,
    /// `<hyperv>`.
    pub hyperv: Option<HyperV>,
    /// `<kvm>`.
    pub kvm: Option<KvmFeatures>,
    /// `<pvspinlock state=>`.
    pub pvspinlock: Option<bool>,
    /// `<capabilities policy=>` and its per-capability states.
    pub capabilities: Option<(CapsPolicy, Vec<(String, bool)>)>,
    /// `<pmu state=>`.
    pub pmu: Option<bool>,
    /// `<vmport state=>`.
    pub vmport: Option<bool>,
    /// `<gic version=>` (`Some(None)`: no version).
    pub gic: Option<Option<String>>,
    /// `<smm state=>`.
    pub smm: Option<bool>,
    /// `<smm><tseg>` in bytes.
    pub tseg: Option<u64>,
    /// `<ioapic driver=>`.
    pub ioapic: Option<IoapicDriver>,
    /// `<hpt resizing=>` and `<maxpagesize>` (KiB).
    pub hpt: Option<(Option<HptResizing>, Option<u64>)>,
    /// `<vmcoreinfo state=>`.
    pub vmcoreinfo: Option<bool>,
    /// `<htm state=>`.
    pub htm: Option<bool>,
    /// `<nested-hv state=>`.
    pub nested_hv: Option<bool>,
    /// `<msrs unknown=>`.
    pub msrs: Option<MsrsUnknown>,
    /// `<ccf-assist state=>`.
    pub ccf_assist: Option<bool>,
    /// `<xen>`: `<e820_host state=>`, `<passthrough state= mode=>`.
    pub xen: Option<(Option<bool>, Option<bool>, Option<XenPassthroughMode>)>,
    /// `<cfpc value=>`.
    pub cfpc: Option<String>,
    /// `<sbbc value=>`.
    pub sbbc: Option<String>,
    /// `<ibs value=>`.
    pub ibs: Option<String>,
    /// `<tcg><tb-cache>` in KiB.
    pub tcg_tb_cache: Option<u64>,
    /// `<async-teardown enabled=>`.
    pub async_teardown: Option<bool>,
    /// `<ras state=>`.
    pub ras: Option<bool>,
    /// `<ps2 state=>`.
    pub ps2: Option<bool>,
}

fn state(n: Node<'_>) -> Result<bool, XmlError> {
    Ok(n.on_off_attr("state")?.unwrap_or(true))
}

fn opt_state(f: Node<'_>, name: &str) -> Result<Option<bool>, XmlError> {
    match f.child(name) {
        None => Ok(None),
        Some(c) => state(c.node()).map(Some),
    }
}

fn required_state(n: Node<'_>) -> Result<bool, XmlError> {
    n.on_off_attr("state")?
        .ok_or_else(|| missing(n.attr_path("state")))
}

fn value_attr(f: Node<'_>, name: &str, allowed: &[&str]) -> Result<Option<String>, XmlError> {
    let Some(c) = f.child(name) else {
        return Ok(None);
    };
    let c = c.node();
    let v = c.required_attr("value")?;
    if !allowed.contains(&v) {
        return Err(XmlError::bad_value(
            c.attr_path("value"),
            v,
            "unsupported value",
        ));
    }
    Ok(Some(v.to_owned()))
}

fn parse_hyperv(h: Node<'_>) -> Result<HyperV, XmlError> {
    let mut hv = HyperV {
        mode: Some(h.parse_attr("mode")?.unwrap_or(HypervMode::Custom)),
        ..HyperV::default()
    };
    for c in h.all_children() {
        let c = c.node();
        let Some(idx) = HYPERV_FEATURES.iter().position(|f| *f == c.el.name) else {
            return Err(XmlError::bad_value(
                c.path(),
                c.el.name.clone(),
                "unsupported HyperV Enlightenment feature:",
            ));
        };
        let on = required_state(c)?;
        hv.states[idx] = Some(on);
        match HYPERV_FEATURES[idx] {
            "spinlocks" if on => {
                let r: u32 = c
                    .uint_attr("retries")?
                    .ok_or_else(|| missing(c.attr_path("retries")))?;
                if r < 0xFFF {
                    return Err(XmlError::invalid(
                        c.attr_path("retries"),
                        "HyperV spinlock retry count must be at least 4095",
                    ));
                }
                hv.spinlock_retries = Some(r);
            }
            "vendor_id" if on => {
                let v = c.required_attr("value")?;
                if v.len() > 12 {
                    return Err(XmlError::invalid(
                        c.attr_path("value"),
                        "HyperV vendor_id value must not be more than 12 characters.",
                    ));
                }
                if !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(XmlError::invalid(
                        c.attr_path("value"),
                        "HyperV vendor_id value must only contain alphanumeric characters",
                    ));
                }
                hv.vendor_id = Some(v.to_owned());
            }
            "stimer" if on => hv.stimer_direct = opt_direct(c, "direct")?,
            "tlbflush" if on => {
                hv.tlbflush_direct = opt_direct(c, "direct")?;
                hv.tlbflush_extended = opt_direct(c, "extended")?;
            }
            _ => {}
        }
    }
    Ok(hv)
}

fn opt_direct(n: Node<'_>, name: &str) -> Result<Option<bool>, XmlError> {
    match n.child(name) {
        None => Ok(None),
        Some(c) => required_state(c.node()).map(Some),
    }
}

fn parse_kvm(k: Node<'_>) -> Result<KvmFeatures, XmlError> {
    let mut kv = KvmFeatures::default();
    for c in k.all_children() {
        let c = c.node();
        let Some(idx) = KVM_FEATURES.iter().position(|f| *f == c.el.name) else {
            return Err(XmlError::bad_value(
                c.path(),
                c.el.name.clone(),
                "unsupported KVM feature:",
            ));
        };
        let on = required_state(c)?;
        kv.states[idx] = Some(on);
        if idx == 4 && on {
            let size: u32 = c
                .uint_attr("size")?
                .ok_or_else(|| missing(c.attr_path("size")))?;
            if !size.is_power_of_two() || !(4096..=65536).contains(&size) {
                return Err(XmlError::invalid(
                    c.attr_path("size"),
                    "dirty ring must be power of 2 and ranges [1024, 65536]",
                ));
            }
            kv.dirty_ring_size = Some(size);
        }
    }
    Ok(kv)
}

/// With the validate flag: what `<features>` and its children may carry.
fn check(f: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    const PLAIN: &[&str] = &["acpi", "pae", "viridian", "privnet"];
    const STATES: &[&str] = &[
        "hap",
        "pvspinlock",
        "pmu",
        "vmport",
        "vmcoreinfo",
        "htm",
        "nested-hv",
        "ccf-assist",
        "ras",
        "ps2",
    ];
    const VALUES: &[&str] = &["cfpc", "sbbc", "ibs"];
    const OTHERS: &[&str] = &[
        "apic",
        "smm",
        "gic",
        "ioapic",
        "hpt",
        "hyperv",
        "kvm",
        "xen",
        "capabilities",
        "msrs",
        "tcg",
        "async-teardown",
    ];
    let all: Vec<&str> = [PLAIN, STATES, VALUES, OTHERS].concat();
    ctx.check(f, &[], &all)?;
    ctx.check_leaves(f, PLAIN)?;
    for s in STATES {
        ctx.check_child(f, s, &["state"], &[])?;
    }
    for v in VALUES {
        ctx.check_child(f, v, &["value"], &[])?;
    }
    ctx.check_child(f, "apic", &["eoi"], &[])?;
    ctx.check_child(f, "smm", &["state"], &["tseg"])?;
    if let Some(s) = f.child("smm") {
        ctx.check_child(s.node(), "tseg", &["unit"], &[])?;
    }
    ctx.check_child(f, "gic", &["version"], &[])?;
    ctx.check_child(f, "ioapic", &["driver"], &[])?;
    ctx.check_child(f, "hpt", &["resizing"], &["maxpagesize"])?;
    if let Some(h) = f.child("hpt") {
        ctx.check_child(h.node(), "maxpagesize", &["unit"], &[])?;
    }
    // The names under <hyperv>, <kvm> and <capabilities> are checked by
    // their parsers.
    ctx.check_child(f, "hyperv", &["mode"], HYPERV_FEATURES)?;
    if let Some(h) = f.child("hyperv") {
        let h = h.node();
        for name in HYPERV_FEATURES {
            let attrs: &[&str] = match *name {
                "spinlocks" => &["state", "retries"],
                "vendor_id" => &["state", "value"],
                _ => &["state"],
            };
            let children: &[&str] = match *name {
                "stimer" => &["direct"],
                "tlbflush" => &["direct", "extended"],
                _ => &[],
            };
            ctx.check_child(h, name, attrs, children)?;
            for c in super::util::named(h, name) {
                for d in children {
                    ctx.check_child(c.node(), d, &["state"], &[])?;
                }
            }
        }
    }
    ctx.check_child(f, "kvm", &[], KVM_FEATURES)?;
    if let Some(k) = f.child("kvm") {
        for name in KVM_FEATURES {
            let attrs: &[&str] = if *name == "dirty-ring" {
                &["state", "size"]
            } else {
                &["state"]
            };
            ctx.check_child(k.node(), name, attrs, &[])?;
        }
    }
    ctx.check_child(f, "xen", &[], &["e820_host", "passthrough"])?;
    if let Some(x) = f.child("xen") {
        ctx.check_child(x.node(), "e820_host", &["state"], &[])?;
        ctx.check_child(x.node(), "passthrough", &["state", "mode"], &[])?;
    }
    ctx.check_child(f, "capabilities", &["policy"], CAPS_FEATURES)?;
    if let Some(c) = f.child("capabilities") {
        for name in CAPS_FEATURES {
            ctx.check_child(c.node(), name, &["state"], &[])?;
        }
    }
    ctx.check_child(f, "msrs", &["unknown"], &[])?;
    ctx.check_child(f, "tcg", &[], &["tb-cache"])?;
    if let Some(t) = f.child("tcg") {
        ctx.check_child(t.node(), "tb-cache", &["unit"], &[])?;
    }
    ctx.check_child(f, "async-teardown", &["enabled"], &[])
}

pub(crate) fn parse(f: Node<'_>, ctx: &Ctx<'_>) -> Result<Features, XmlError> {
    check(f, ctx)?;
    let has = |n: &str| f.child(n).is_some();
    let mut ft = Features {
        acpi: has("acpi"),
        pae: has("pae"),
        viridian: has("viridian"),
        privnet: has("privnet"),
        hap: opt_state(f, "hap")?,
        pvspinlock: opt_state(f, "pvspinlock")?,
        pmu: opt_state(f, "pmu")?,
        vmport: opt_state(f, "vmport")?,
        smm: opt_state(f, "smm")?,
        vmcoreinfo: opt_state(f, "vmcoreinfo")?,
        htm: opt_state(f, "htm")?,
        nested_hv: opt_state(f, "nested-hv")?,
        ccf_assist: opt_state(f, "ccf-assist")?,
        ras: opt_state(f, "ras")?,
        ps2: opt_state(f, "ps2")?,
        cfpc: value_attr(f, "cfpc", &["broken", "workaround", "fixed"])?,
        sbbc: value_attr(f, "sbbc", &["broken", "workaround", "fixed"])?,
        ibs: value_attr(
            f,
            "ibs",
            &["broken", "workaround", "fixed-ibs", "fixed-ccd", "fixed-na"],
        )?,
        ..Features::default()
    };
    if let Some(a) = f.child("apic") {
        ft.apic = true;
        ft.apic_eoi = a.node().on_off_attr("eoi")?;
    }
    if let Some(s) = f.child("smm")
        && let Some(t) = s.node().child("tseg")
    {
        let t = t.node();
        ft.tseg = Some(scaled_bytes(
            t.path(),
            &t.text(),
            t.attr("unit"),
            1024 * 1024,
            u64::MAX,
        )?);
    }
    if let Some(g) = f.child("gic") {
        ft.gic = Some(g.node().attr("version").map(str::to_owned));
    }
    if let Some(i) = f.child("ioapic") {
        ft.ioapic = Some(i.node().required_parse_attr("driver")?);
    }
    if let Some(h) = f.child("hpt") {
        let h = h.node();
        let max = match h.child("maxpagesize") {
            None => None,
            Some(m) => Some(super::util::memory_kib(m.node())?),
        };
        ft.hpt = Some((h.parse_attr("resizing")?, max));
    }
    if let Some(h) = f.child("hyperv") {
        ft.hyperv = Some(parse_hyperv(h.node())?);
    }
    if let Some(k) = f.child("kvm") {
        ft.kvm = Some(parse_kvm(k.node())?);
    }
    if let Some(x) = f.child("xen") {
        let x = x.node();
        let e820 = match x.child("e820_host") {
            Some(c) => Some(required_state(c.node())?),
            None => None,
        };
        let (pt, mode) = match x.child("passthrough") {
            Some(c) => {
                let c = c.node();
                (Some(required_state(c)?), c.parse_attr("mode")?)
            }
            None => (None, None),
        };
        ft.xen = Some((e820, pt, mode));
    }
    if let Some(c) = f.child("capabilities") {
        let c = c.node();
        let policy = c.parse_attr("policy")?.unwrap_or(CapsPolicy::Default);
        let mut list: Vec<(String, bool)> = Vec::new();
        for cap in c.all_children() {
            let cap = cap.node();
            if !CAPS_FEATURES.contains(&cap.el.name.as_str()) {
                return Err(XmlError::bad_value(
                    cap.path(),
                    cap.el.name.clone(),
                    "unexpected capability feature",
                ));
            }
            list.push((cap.el.name.clone(), state(cap)?));
        }
        list.sort_by_key(|(n, _)| CAPS_FEATURES.iter().position(|c| c == n));
        ft.capabilities = Some((policy, list));
    }
    if let Some(m) = f.child("msrs") {
        ft.msrs = Some(m.node().required_parse_attr("unknown")?);
    }
    if let Some(t) = f.child("tcg")
        && let Some(c) = t.node().child("tb-cache")
    {
        ft.tcg_tb_cache = Some(super::util::memory_kib(c.node())?);
    }
    if let Some(a) = f.child("async-teardown") {
        ft.async_teardown = Some(a.node().yes_no_attr("enabled")?.unwrap_or(true));
    }
    Ok(ft)
}

fn state_el(name: &str, on: bool) -> Element {
    Element::new(name).with_attr("state", on_off(on))
}

pub(crate) fn format(ft: &Features) -> Option<Element> {
    let mut e = Element::new("features");
    let flag = |e: &mut Element, name: &str, v: bool| {
        if v {
            e.push(Element::new(name));
        }
    };
    let st = |e: &mut Element, name: &str, v: Option<bool>| {
        if let Some(v) = v {
            e.push(state_el(name, v));
        }
    };
    flag(&mut e, "acpi", ft.acpi);
    if ft.apic {
        e.push(Element::new("apic").with_opt_attr("eoi", ft.apic_eoi.map(on_off)));
    }
    flag(&mut e, "pae", ft.pae);
    st(&mut e, "hap", ft.hap);
    flag(&mut e, "viridian", ft.viridian);
    flag(&mut e, "privnet", ft.privnet);
    if let Some(hv) = &ft.hyperv {
        let mut h =
            Element::open("hyperv").with_attr("mode", hv.mode.unwrap_or(HypervMode::Custom));
        for (i, name) in HYPERV_FEATURES.iter().enumerate() {
            let Some(on) = hv.states[i] else { continue };
            let mut c = state_el(name, on);
            match *name {
                "spinlocks" if on => c.set_opt_attr("retries", hv.spinlock_retries),
                "vendor_id" if on => c.set_opt_attr("value", hv.vendor_id.as_deref()),
                "stimer" if hv.stimer_direct == Some(true) => {
                    c.push(state_el("direct", true));
                }
                "tlbflush" if on => {
                    if hv.tlbflush_direct == Some(true) {
                        c.push(state_el("direct", true));
                    }
                    if hv.tlbflush_extended == Some(true) {
                        c.push(state_el("extended", true));
                    }
                }
                _ => {}
            }
            h.push(c);
        }
        e.push(h);
    }
    if let Some(k) = &ft.kvm {
        let mut ke = Element::new("kvm");
        for (i, name) in KVM_FEATURES.iter().enumerate() {
            if let Some(on) = k.states[i] {
                let mut c = state_el(name, on);
                if i == 4 && on {
                    c.set_opt_attr("size", k.dirty_ring_size);
                }
                ke.push(c);
            }
        }
        e.push(ke);
    }
    st(&mut e, "pvspinlock", ft.pvspinlock);
    if let Some((policy, list)) = &ft.capabilities {
        let mut c = Element::new("capabilities");
        if *policy != CapsPolicy::Default {
            c.set_attr("policy", policy);
        }
        for (n, v) in list {
            c.push(state_el(n, *v));
        }
        e.push(c);
    }
    st(&mut e, "pmu", ft.pmu);
    st(&mut e, "vmport", ft.vmport);
    if let Some(v) = &ft.gic {
        e.push(Element::new("gic").with_opt_attr("version", v.as_deref()));
    }
    if let Some(on) = ft.smm {
        let mut s = state_el("smm", on);
        if on && let Some(t) = ft.tseg {
            let (v, unit) = super::util::format_int_pretty(t);
            s.push(
                Element::new("tseg")
                    .with_attr("unit", unit)
                    .with_text(v.to_string()),
            );
        }
        e.push(s);
    }
    if let Some(d) = ft.ioapic {
        e.push(Element::new("ioapic").with_attr("driver", d));
    }
    if let Some((r, max)) = &ft.hpt {
        let mut h = Element::new("hpt").with_opt_attr("resizing", *r);
        if let Some(m) = max {
            h.push(
                Element::new("maxpagesize")
                    .with_attr("unit", "KiB")
                    .with_text(m.to_string()),
            );
        }
        e.push(h);
    }
    st(&mut e, "vmcoreinfo", ft.vmcoreinfo);
    st(&mut e, "htm", ft.htm);
    st(&mut e, "nested-hv", ft.nested_hv);
    if let Some(m) = ft.msrs {
        e.push(Element::new("msrs").with_attr("unknown", m));
    }
    st(&mut e, "ccf-assist", ft.ccf_assist);
    if let Some((e820, pt, mode)) = &ft.xen {
        let mut x = Element::new("xen");
        if let Some(v) = e820 {
            x.push(state_el("e820_host", *v));
        }
        if let Some(v) = pt {
            x.push(state_el("passthrough", *v).with_opt_attr("mode", *mode));
        }
        e.push(x);
    }
    for (name, v) in [("cfpc", &ft.cfpc), ("sbbc", &ft.sbbc), ("ibs", &ft.ibs)] {
        if let Some(v) = v {
            e.push(Element::new(name).with_attr("value", v));
        }
    }
    if let Some(c) = ft.tcg_tb_cache {
        e.push(
            Element::new("tcg").with_child(
                Element::new("tb-cache")
                    .with_attr("unit", "KiB")
                    .with_text(c.to_string()),
            ),
        );
    }
    if let Some(a) = ft.async_teardown {
        e.push(Element::new("async-teardown").with_attr("enabled", yes_no(a)));
    }
    st(&mut e, "ras", ft.ras);
    st(&mut e, "ps2", ft.ps2);
    (!e.children.is_empty()).then_some(e)
}
