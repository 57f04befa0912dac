//! Top-level parse of `<domain>` (libvirt's `virDomainDefParseXML`): the
//! sections in dependency order, with the parse-time defaults.

use crate::xml::{Element, Node, XmlError, XmlErrorKind};

use super::device::input::{Input, InputBus, InputEnv, InputType};
use super::device::{self, DevEnv, Device};
use super::os::OsType;
use super::util::{Ctx, missing};
use super::vcpu::Placement;
use super::{
    DomainDef, NamespaceData, VirtType, clock, cpu, cputune, features, general, lifecycle, memory,
    numatune, os, resource, security, sysinfo, vcpu,
};

/// Children `<domain>` may have (with the validate flag, others are refused).
const DOMAIN_CHILDREN: &[&str] = &[
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "defaultiothread",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
    "seclabel",
    "keywrap",
    "launchSecurity",
];

fn check_children(root: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    root.check_attrs(&["type", "id"])?;
    // `<metadata>` holds other applications' markup: not looked into.
    ctx.check_leaves(
        root,
        &[
            "name",
            "uuid",
            "genid",
            "title",
            "description",
            "bootloader",
            "bootloader_args",
            "on_poweroff",
            "on_reboot",
            "on_crash",
            "on_lockfailure",
        ],
    )?;
    ctx.check_child(root, "idmap", &[], &["uid", "gid"])?;
    if let Some(m) = root.child("idmap") {
        ctx.check_child(m.node(), "uid", &["start", "target", "count"], &[])?;
        ctx.check_child(m.node(), "gid", &["start", "target", "count"], &[])?;
    }
    super::security::check(root, ctx)?;
    if let Some(d) = root.child("devices") {
        ctx.check_leaves(d.node(), &["emulator"])?;
    }
    for el in root.el.elements() {
        let foreign = namespace_of(el, root.el).is_some();
        if !foreign && !DOMAIN_CHILDREN.contains(&el.name.as_str()) {
            // The path (with its index) only for the error.
            let path = root
                .all_children()
                .into_iter()
                .find(|c| std::ptr::eq(c.el, el))
                .map(|c| c.node().path().to_owned())
                .unwrap_or_default();
            return Err(XmlError::new(path, XmlErrorKind::Unknown));
        }
    }
    Ok(())
}

/// Namespaces of libvirt's driver-specific extensions, with the prefix
/// libvirt writes them with.
const KNOWN_NAMESPACES: &[(&str, &str)] = &[
    ("qemu", "http://libvirt.org/schemas/domain/qemu/1.0"),
    ("lxc", "http://libvirt.org/schemas/domain/lxc/1.0"),
    ("bhyve", "http://libvirt.org/schemas/domain/bhyve/1.0"),
    ("vmware", "http://libvirt.org/schemas/domain/vmware/1.0"),
    ("xen", "http://libvirt.org/schemas/domain/xen/1.0"),
];

/// The namespace URI of a top-level element (declared on itself or on
/// `<domain>`).
fn namespace_of<'a>(e: &'a Element, root: &'a Element) -> Option<&'a str> {
    let key = match e.name.split_once(':') {
        Some((p, _)) => format!("xmlns:{p}"),
        None => "xmlns".to_owned(),
    };
    e.attr(&key).or_else(|| root.attr(&key))
}

/// Renames `e` and its descendants in the same namespace to `prefix`,
/// dropping namespace declarations.
fn canonicalize(e: &Element, prefix: &str) -> Element {
    let local = e.name.split_once(':').map_or(e.name.as_str(), |(_, l)| l);
    let mut out = Element::new(format!("{prefix}:{local}"));
    out.attrs = e
        .attrs
        .iter()
        .filter(|(k, _)| !k.starts_with("xmlns"))
        .cloned()
        .collect();
    for c in &e.children {
        match c {
            crate::xml::Child::Element(ce) => out.push(canonicalize(ce, prefix)),
            crate::xml::Child::Text(t) => out.children.push(crate::xml::Child::Text(t.clone())),
        }
    }
    out
}

fn parse_namespace(root: Node<'_>) -> Option<NamespaceData> {
    let mut data = NamespaceData::default();
    for e in root.el.elements() {
        let Some(uri) = namespace_of(e, root.el) else {
            continue;
        };
        let Some((prefix, uri)) = KNOWN_NAMESPACES.iter().find(|(_, u)| *u == uri) else {
            continue;
        };
        if !data.decls.iter().any(|(p, _)| p == prefix) {
            data.decls.push(((*prefix).to_owned(), (*uri).to_owned()));
        }
        data.elements.push(canonicalize(e, prefix));
    }
    (!data.elements.is_empty()).then_some(data)
}

pub(crate) fn parse_domain(root: Node<'_>, ctx: &Ctx<'_>) -> Result<DomainDef, XmlError> {
    if root.el.name != "domain" {
        return Err(XmlError::new(
            "",
            XmlErrorKind::WrongRoot {
                expected: "domain".to_owned(),
                found: root.el.name.clone(),
            },
        ));
    }
    let t = root
        .attr("type")
        .ok_or_else(|| XmlError::invalid("@type", "missing domain type attribute"))?;
    let virt_type: VirtType = t
        .parse()
        .map_err(|_| XmlError::bad_value("@type", t, "invalid domain type"))?;
    check_children(root, ctx)?;
    let id = if ctx.inactive() {
        None
    } else {
        root.int_attr::<i32>("id")?.filter(|i| *i != -1)
    };
    let g = general::parse(root, ctx)?;
    let mut def = DomainDef::new(virt_type, &g.name, g.uuid);
    def.id = id;
    def.genid = g.genid;
    def.title = g.title;
    def.description = g.description;
    def.metadata = g.metadata;

    def.memory = memory::parse_memory(root, ctx)?;
    if let Some(n) = root.child("memtune") {
        def.memtune = Some(memory::parse_memtune(n.node(), ctx)?);
    }
    if let Some(n) = root.child("blkiotune") {
        def.blkiotune = Some(memory::parse_blkiotune(n.node(), ctx)?);
    }
    if let Some(n) = root.child("memoryBacking") {
        def.memory_backing = memory::parse_memory_backing(n.node(), ctx)?;
    }
    def.vcpus = vcpu::parse_vcpus(root, ctx)?;
    let (threads, default) = vcpu::parse_iothreads(root, ctx)?;
    def.iothreads = threads;
    def.default_iothread = default;
    if let Some(n) = root.child("cpu") {
        def.cpu = Some(cpu::parse(n.node(), ctx)?);
    }
    if let Some(n) = root.child("cputune") {
        let (t, r) = cputune::parse(n.node(), ctx, &mut def.vcpus, &mut def.iothreads)?;
        def.cputune = t;
        def.resctrls = r;
    }
    let ncells = def
        .cpu
        .as_ref()
        .and_then(|c| c.numa.as_ref())
        .map_or(0, |n| n.cells.len());
    if let Some(n) = root.child("numatune") {
        def.numatune = Some(numatune::parse(n.node(), ctx, def.vcpus.placement, ncells)?);
    }
    let numa_auto = def
        .numatune
        .as_ref()
        .and_then(|t| t.memory.as_ref())
        .is_some_and(|m| m.placement == Placement::Auto);
    if numa_auto
        && root
            .child("vcpu")
            .and_then(|v| v.node().attr("placement").map(str::to_owned))
            .is_none()
        && def.vcpus.cpuset.is_none()
        && !def.vcpus.has_pin()
        && def.cputune.emulatorpin.is_none()
        && !def.iothreads.iter().any(|t| t.pin.is_some())
    {
        def.vcpus.placement = Placement::Auto;
    }
    if let Some(n) = root.child("resource") {
        def.resource = Some(resource::parse_resource(n.node(), ctx)?);
    }
    let uuid_given = root.child("uuid").is_some();
    for s in root.children("sysinfo") {
        let si = sysinfo::parse(s.node(), ctx, &mut def.uuid, uuid_given)?;
        def.sysinfo.push(si);
    }
    def.os = os::parse(root, ctx)?;
    if let Some(n) = root.child("idmap") {
        def.idmap = Some(resource::parse_idmap(n.node())?);
    }
    if let Some(n) = root.child("features") {
        def.features = features::parse(n.node(), ctx)?;
    }
    if let Some(n) = root.child("clock") {
        def.clock = clock::parse(n.node(), ctx)?;
    }
    def.lifecycle = lifecycle::parse_lifecycle(root)?;
    if let Some(n) = root.child("pm") {
        def.pm = lifecycle::parse_pm(n.node(), ctx)?;
    }
    if let Some(n) = root.child("perf") {
        def.perf = lifecycle::parse_perf(n.node(), ctx)?;
    }
    // Security labels come before devices, as in libvirt.
    def.seclabels = security::parse_seclabels(root, ctx)?;
    if let Some(d) = root.child("devices") {
        let d = d.node();
        def.emulator = d
            .child("emulator")
            .map(|e| e.node().text())
            .filter(|s| !s.is_empty());
        let env = DevEnv {
            input: InputEnv {
                hvm: def.os.os_type == OsType::Hvm,
                xen: matches!(def.os.os_type, OsType::Xen | OsType::XenPvh | OsType::Linux),
                arch: def.os.arch.as_deref(),
                parallels: matches!(def.virt_type, VirtType::Vz | VirtType::Parallels),
            },
            running: def.id.is_some(),
        };
        def.devices = device::parse_devices(d, ctx, &env)?;
    }
    add_implicit_inputs(&mut def);
    if let Some(n) = root.child("keywrap") {
        def.keywrap = Some(security::parse_keywrap(n.node())?);
    }
    if let Some(n) = root.child("launchSecurity") {
        def.launch_security = Some(security::parse_launch_security(n.node())?);
    }
    def.namespace = parse_namespace(root);
    if def.name.is_empty() {
        return Err(missing("name"));
    }
    Ok(def)
}

/// With graphics on x86, libvirt adds a mouse and a keyboard (PS/2 for
/// HVM guests) unless present (`virDomainDefMaybeAddInput`).
fn add_implicit_inputs(def: &mut DomainDef) {
    let has_graphics = def.devices.iter().any(|d| matches!(d, Device::Graphics(_)));
    let x86 = matches!(def.os.arch.as_deref(), None | Some("i686" | "x86_64"));
    if !has_graphics || !x86 {
        return;
    }
    let bus = if def.os.os_type == OsType::Hvm {
        InputBus::Ps2
    } else if matches!(def.virt_type, VirtType::Vz | VirtType::Parallels) {
        InputBus::Parallels
    } else {
        InputBus::Xen
    };
    for kind in [InputType::Mouse, InputType::Keyboard] {
        let present = def
            .devices
            .iter()
            .any(|d| matches!(d, Device::Input(i) if i.kind == kind && i.bus == bus));
        if !present {
            def.add_device(Device::Input(Box::new(Input::new(kind, bus))));
        }
    }
}
