//! `<os>`: guest type, firmware, loader and NVRAM, direct kernel boot,
//! container init, boot order, and `<bootloader>`.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::device::storage::{self, StorageSource, StorageType};
use super::util::{Ctx, Fmt, missing, yes_no};

xml_enum! {
    /// `<os><type>`.
    pub enum OsType { Hvm = "hvm", Xen = "xen", Linux = "linux", Exe = "exe", Uml = "uml", XenPvh = "xenpvh" }
}

xml_enum! {
    /// `<os firmware=>`.
    pub enum Firmware { Bios = "bios", Efi = "efi" }
}

xml_enum! {
    /// `<loader type=>`.
    pub enum LoaderType { Rom = "rom", Pflash = "pflash" }
}

xml_enum! {
    /// `<loader format=>` / `<nvram format=>`.
    pub enum FirmwareFormat { Raw = "raw", Qcow2 = "qcow2" }
}

xml_enum! {
    /// `<boot dev=>`.
    pub enum BootDev { Fd = "fd", Cdrom = "cdrom", Hd = "hd", Network = "network" }
}

xml_enum! {
    /// `<smbios mode=>`.
    pub enum SmbiosMode { Emulate = "emulate", Host = "host", Sysinfo = "sysinfo" }
}

/// The architectures libvirt knows.
pub const ARCHES: &[&str] = &[
    "aarch64",
    "alpha",
    "armv6l",
    "armv7l",
    "armv7b",
    "cris",
    "i686",
    "ia64",
    "lm32",
    "loongarch64",
    "m68k",
    "microblaze",
    "microblazeel",
    "mips",
    "mipsel",
    "mips64",
    "mips64el",
    "openrisc",
    "parisc",
    "parisc64",
    "ppc",
    "ppc64",
    "ppc64le",
    "ppcemb",
    "riscv32",
    "riscv64",
    "s390",
    "s390x",
    "sh4",
    "sh4eb",
    "sparc",
    "sparc64",
    "unicore32",
    "x86_64",
    "xtensa",
    "xtensaeb",
];

/// `<loader>` with its `<nvram>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loader {
    /// The firmware image.
    pub path: Option<String>,
    /// `readonly=`.
    pub readonly: Option<bool>,
    /// `secure=`.
    pub secure: Option<bool>,
    /// `type=`.
    pub kind: Option<LoaderType>,
    /// `stateless=`.
    pub stateless: Option<bool>,
    /// `format=`.
    pub format: Option<FirmwareFormat>,
    /// `<nvram>` storage (a path, or a `<source>` when `nvram_new_style`).
    pub nvram: Option<StorageSource>,
    /// `<nvram format=>`.
    pub nvram_format: Option<FirmwareFormat>,
    /// `<nvram type=>` was given (the storage is written as `<source>`).
    pub nvram_new_style: bool,
    /// `<nvram template=>`.
    pub nvram_template: Option<String>,
    /// `<nvram templateFormat=>`.
    pub nvram_template_format: Option<FirmwareFormat>,
}

/// `<os>` and `<bootloader>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Os {
    /// `<type>`.
    pub os_type: OsType,
    /// `<type arch=>`.
    pub arch: Option<String>,
    /// `<type machine=>`.
    pub machine: Option<String>,
    /// `<os firmware=>`.
    pub firmware: Option<Firmware>,
    /// `<firmware><feature name='enrolled-keys'>`.
    pub fw_enrolled_keys: Option<bool>,
    /// `<firmware><feature name='secure-boot'>`.
    pub fw_secure_boot: Option<bool>,
    /// `<loader>`/`<nvram>`.
    pub loader: Option<Box<Loader>>,
    /// `<init>`.
    pub init: Option<String>,
    /// `<initarg>`s.
    pub init_args: Vec<String>,
    /// `<initenv name=>`s.
    pub init_env: Vec<(String, String)>,
    /// `<initdir>`.
    pub init_dir: Option<String>,
    /// `<inituser>`.
    pub init_user: Option<String>,
    /// `<initgroup>`.
    pub init_group: Option<String>,
    /// `<kernel>`.
    pub kernel: Option<String>,
    /// `<initrd>`.
    pub initrd: Option<String>,
    /// `<cmdline>`.
    pub cmdline: Option<String>,
    /// `<dtb>`.
    pub dtb: Option<String>,
    /// `<root>`.
    pub root: Option<String>,
    /// `<acpi><table type='slic'>`.
    pub slic_table: Option<String>,
    /// `<boot dev=>` in order (at most 4).
    pub boot_devs: Vec<BootDev>,
    /// `<bootmenu enable=>`.
    pub bootmenu: Option<bool>,
    /// `<bootmenu timeout=>` (ms).
    pub bootmenu_timeout: Option<u32>,
    /// `<bios useserial=>`.
    pub bios_useserial: Option<bool>,
    /// `<bios rebootTimeout=>`.
    pub bios_reboot_timeout: Option<i32>,
    /// `<smbios mode=>`.
    pub smbios: Option<SmbiosMode>,
    /// `<bootloader>` (top level).
    pub bootloader: Option<String>,
    /// `<bootloader_args>` (top level).
    pub bootloader_args: Option<String>,
}

impl Default for Os {
    fn default() -> Self {
        Os {
            os_type: OsType::Hvm,
            arch: None,
            machine: None,
            firmware: None,
            fw_enrolled_keys: None,
            fw_secure_boot: None,
            loader: None,
            init: None,
            init_args: Vec::new(),
            init_env: Vec::new(),
            init_dir: None,
            init_user: None,
            init_group: None,
            kernel: None,
            initrd: None,
            cmdline: None,
            dtb: None,
            root: None,
            slic_table: None,
            boot_devs: Vec::new(),
            bootmenu: None,
            bootmenu_timeout: None,
            bios_useserial: None,
            bios_reboot_timeout: None,
            smbios: None,
            bootloader: None,
            bootloader_args: None,
        }
    }
}

fn text_of(n: Node<'_>, name: &str) -> Option<String> {
    n.child(name)
        .map(|c| c.node().text())
        .filter(|s| !s.is_empty())
}

const OS_CHILDREN: &[&str] = &[
    "type",
    "firmware",
    "loader",
    "nvram",
    "kernel",
    "initrd",
    "cmdline",
    "dtb",
    "root",
    "acpi",
    "boot",
    "bootmenu",
    "smbios",
    "bios",
    "init",
    "initarg",
    "initenv",
    "initdir",
    "inituser",
    "initgroup",
];

/// With the validate flag: the children of `<os>`.
fn check_os(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    ctx.check_child(n, "type", &["arch", "machine"], &[])?;
    ctx.check_child(n, "firmware", &[], &["feature"])?;
    if let Some(f) = n.child("firmware") {
        ctx.check_child(f.node(), "feature", &["enabled", "name"], &[])?;
    }
    ctx.check_child(
        n,
        "loader",
        &["readonly", "secure", "type", "stateless", "format"],
        &[],
    )?;
    ctx.check_child(
        n,
        "nvram",
        &["template", "templateFormat", "format", "type"],
        &["source"],
    )?;
    if let Some(nv) = n.child("nvram")
        && let Some(s) = nv.node().child("source")
    {
        storage::check_source(s.node(), nv.node().attr("type"), ctx)?;
    }
    ctx.check_leaves(
        n,
        &[
            "kernel",
            "initrd",
            "cmdline",
            "dtb",
            "root",
            "init",
            "initarg",
            "initdir",
            "inituser",
            "initgroup",
        ],
    )?;
    ctx.check_child(n, "acpi", &[], &["table"])?;
    if let Some(a) = n.child("acpi") {
        ctx.check_child(a.node(), "table", &["type"], &[])?;
    }
    ctx.check_child(n, "boot", &["dev"], &[])?;
    ctx.check_child(n, "bootmenu", &["enable", "timeout"], &[])?;
    ctx.check_child(n, "bios", &["useserial", "rebootTimeout"], &[])?;
    ctx.check_child(n, "smbios", &["mode"], &[])?;
    ctx.check_child(n, "initenv", &["name"], &[])
}

pub(crate) fn parse(root: Node<'_>, ctx: &Ctx<'_>) -> Result<Os, XmlError> {
    let mut os = Os {
        bootloader: text_of(root, "bootloader"),
        bootloader_args: text_of(root, "bootloader_args"),
        ..Os::default()
    };
    let osn = root.child("os");
    let Some(osn) = osn else {
        if os.bootloader.is_some() {
            os.os_type = OsType::Xen;
            return Ok(os);
        }
        return Err(XmlError::invalid("os", "an os <type> must be specified"));
    };
    let n = osn.node();
    ctx.check(n, &["firmware"], OS_CHILDREN)?;
    check_os(n, ctx)?;
    let Some(t) = n.child("type") else {
        if os.bootloader.is_some() {
            os.os_type = OsType::Xen;
            return Ok(os);
        }
        return Err(XmlError::invalid(
            n.child_path("type", None),
            "an os <type> must be specified",
        ));
    };
    let t = t.node();
    let text = t.text();
    os.os_type = text
        .trim()
        .parse()
        .map_err(|_| XmlError::bad_value(t.path(), text.trim(), "unknown OS type"))?;
    if let Some(a) = t.attr("arch") {
        if !ARCHES.contains(&a) {
            return Err(XmlError::bad_value(
                t.attr_path("arch"),
                a,
                "Unknown architecture",
            ));
        }
        os.arch = Some(a.to_owned());
    }
    os.machine = t.attr("machine").map(str::to_owned);

    match os.os_type {
        OsType::Hvm => {
            parse_firmware(n, &mut os)?;
            parse_kernel(n, &mut os);
            if let Some(a) = n.child("acpi") {
                for tb in a.node().children("table") {
                    let tb = tb.node();
                    let ty = tb.required_attr("type")?;
                    if ty != "slic" {
                        return Err(XmlError::bad_value(
                            tb.attr_path("type"),
                            ty,
                            "Unknown acpi table type",
                        ));
                    }
                    if os.slic_table.is_some() {
                        return Err(XmlError::unsupported(
                            tb.path(),
                            "Only one acpi table is supported",
                        ));
                    }
                    os.slic_table = Some(tb.text());
                }
            }
            parse_boot(n, &mut os)?;
        }
        OsType::Xen | OsType::XenPvh | OsType::Linux | OsType::Uml => {
            parse_kernel(n, &mut os);
            if os.os_type != OsType::Uml {
                parse_firmware(n, &mut os)?;
            }
        }
        OsType::Exe => {
            os.init = text_of(n, "init");
            os.init_args = n
                .children("initarg")
                .iter()
                .map(|c| c.node().text())
                .collect();
            for e in n.children("initenv") {
                let e = e.node();
                let name = e.required_attr("name")?;
                os.init_env.push((name.to_owned(), e.text()));
            }
            os.init_dir = text_of(n, "initdir");
            os.init_user = text_of(n, "inituser");
            os.init_group = text_of(n, "initgroup");
        }
    }
    Ok(os)
}

fn parse_kernel(n: Node<'_>, os: &mut Os) {
    os.kernel = text_of(n, "kernel");
    os.initrd = text_of(n, "initrd");
    os.cmdline = text_of(n, "cmdline");
    os.dtb = text_of(n, "dtb");
    os.root = text_of(n, "root");
}

fn parse_firmware(n: Node<'_>, os: &mut Os) -> Result<(), XmlError> {
    os.firmware = n.parse_attr("firmware")?;
    if let Some(fw) = n.child("firmware") {
        let fw = fw.node();
        let feats = fw.children("feature");
        if feats.is_empty() {
            return Err(XmlError::invalid(
                fw.path(),
                "firmware feature list must not be empty",
            ));
        }
        for f in feats {
            let f = f.node();
            let enabled = f
                .yes_no_attr("enabled")?
                .ok_or_else(|| missing(f.attr_path("enabled")))?;
            match f.required_attr("name")? {
                "enrolled-keys" => os.fw_enrolled_keys = Some(enabled),
                "secure-boot" => os.fw_secure_boot = Some(enabled),
                other => {
                    return Err(XmlError::bad_value(
                        f.attr_path("name"),
                        other,
                        "unsupported value",
                    ));
                }
            }
        }
    }
    let loader_n = n.child("loader");
    let nvram_n = n.child("nvram");
    if loader_n.is_none() && nvram_n.is_none() {
        return Ok(());
    }
    let mut l = Loader::default();
    if let Some(ln) = loader_n {
        let ln = ln.node();
        l.path = Some(ln.text()).filter(|s| !s.is_empty());
        l.readonly = ln.yes_no_attr("readonly")?;
        l.secure = ln.yes_no_attr("secure")?;
        l.kind = ln.parse_attr("type")?;
        l.stateless = ln.yes_no_attr("stateless")?;
        l.format = ln.parse_attr("format")?;
    }
    if let Some(nv) = nvram_n {
        let nv = nv.node();
        l.nvram_template = nv.attr("template").map(str::to_owned);
        l.nvram_template_format = nv.parse_attr("templateFormat")?;
        l.nvram_format = nv.parse_attr("format")?;
        if let Some(ty) = nv.attr("type") {
            let kind: StorageType = ty
                .parse()
                .map_err(|_| XmlError::bad_value(nv.attr_path("type"), ty, "unknown disk type"))?;
            let src = nv.required_child("source")?;
            let mut s = storage::parse_source(src.node(), kind)?;
            s.format = None;
            l.nvram = Some(s);
            l.nvram_new_style = true;
        } else {
            let path = nv.text();
            if !path.is_empty() {
                l.nvram = Some(StorageSource {
                    kind: StorageType::File,
                    path: Some(path),
                    ..StorageSource::default()
                });
            }
        }
    }
    os.loader = Some(Box::new(l));
    Ok(())
}

fn parse_boot(n: Node<'_>, os: &mut Os) -> Result<(), XmlError> {
    for b in n.children("boot").iter().take(4) {
        let b = b.node();
        let dev = b.attr("dev").ok_or_else(|| missing(b.attr_path("dev")))?;
        let d: BootDev = dev
            .parse()
            .map_err(|_| XmlError::bad_value(b.attr_path("dev"), dev, "unknown boot device"))?;
        os.boot_devs.push(d);
    }
    if let Some(m) = n.child("bootmenu") {
        let m = m.node();
        os.bootmenu = m.yes_no_attr("enable")?;
        if let Some(t) = m.attr("timeout")
            && os.bootmenu == Some(true)
        {
            let v = crate::xml::parse_uint::<u32>(t)
                .filter(|v| *v <= 65535)
                .ok_or_else(|| {
                    XmlError::unsupported(
                        m.attr_path("timeout"),
                        "invalid value for boot menu timeout, must be in range [0,65535]",
                    )
                })?;
            os.bootmenu_timeout = Some(v);
        }
    }
    if let Some(b) = n.child("bios") {
        let b = b.node();
        os.bios_useserial = b.yes_no_attr("useserial")?;
        if let Some(t) = b.attr("rebootTimeout") {
            let v = t
                .parse::<i32>()
                .ok()
                .filter(|v| (-1..=65535).contains(v))
                .ok_or_else(|| {
                    XmlError::bad_value(
                        b.attr_path("rebootTimeout"),
                        t,
                        "invalid value for rebootTimeout, must be in range [-1,65535]:",
                    )
                })?;
            os.bios_reboot_timeout = Some(v);
        }
    }
    if let Some(s) = n.child("smbios") {
        let s = s.node();
        os.smbios = Some(s.required_parse_attr("mode")?);
    }
    Ok(())
}

// === format ===

pub(crate) fn format_bootloader(os: &Os, out: &mut Vec<Element>) {
    if let Some(b) = &os.bootloader {
        out.push(Element::text_element("bootloader", b));
        if let Some(a) = &os.bootloader_args {
            out.push(Element::text_element("bootloader_args", a));
        }
    }
}

fn format_loader(l: &Loader, flags: &Fmt, e: &mut Element) {
    let mut le = Element::new("loader");
    if let Some(v) = l.readonly {
        le.set_attr("readonly", yes_no(v));
    }
    if let Some(v) = l.secure {
        le.set_attr("secure", yes_no(v));
    }
    le.set_opt_attr("type", l.kind);
    if let Some(v) = l.stateless {
        le.set_attr("stateless", yes_no(v));
    }
    le.set_opt_attr("format", l.format);
    if let Some(p) = &l.path {
        le = le.with_text(p.as_str());
    }
    if !le.is_empty() {
        e.push(le);
    }
    if l.nvram.is_some() || l.nvram_template.is_some() {
        let mut ne = Element::new("nvram")
            .with_opt_attr("template", l.nvram_template.as_deref())
            .with_opt_attr("templateFormat", l.nvram_template_format);
        if let Some(src) = &l.nvram {
            ne.set_opt_attr("format", l.nvram_format);
            if l.nvram_new_style {
                ne.set_attr("type", src.kind);
                ne.push_opt(storage::format_source(src, "source", flags, false));
            } else if let Some(p) = &src.path {
                ne = ne.with_text(p.as_str());
            }
        }
        e.push(ne);
    }
}

pub(crate) fn format(os: &Os, flags: &Fmt) -> Element {
    let mut e = Element::new("os");
    e.set_opt_attr("firmware", os.firmware);
    e.push(
        Element::new("type")
            .with_opt_attr("arch", os.arch.as_deref())
            .with_opt_attr("machine", os.machine.as_deref())
            .with_text(os.os_type.as_str()),
    );
    if os.fw_enrolled_keys.is_some() || os.fw_secure_boot.is_some() {
        let mut f = Element::new("firmware");
        for (name, v) in [
            ("enrolled-keys", os.fw_enrolled_keys),
            ("secure-boot", os.fw_secure_boot),
        ] {
            if let Some(v) = v {
                f.push(
                    Element::new("feature")
                        .with_attr("enabled", yes_no(v))
                        .with_attr("name", name),
                );
            }
        }
        e.push(f);
    }
    if let Some(i) = &os.init {
        e.push(Element::text_element("init", i));
    }
    for a in &os.init_args {
        e.push(Element::text_element("initarg", a));
    }
    for (k, v) in &os.init_env {
        e.push(
            Element::new("initenv")
                .with_attr("name", k)
                .with_text(v.as_str()),
        );
    }
    for (name, v) in [
        ("initdir", &os.init_dir),
        ("inituser", &os.init_user),
        ("initgroup", &os.init_group),
    ] {
        if let Some(v) = v {
            e.push(Element::text_element(name, v));
        }
    }
    if let Some(l) = &os.loader {
        format_loader(l, flags, &mut e);
    }
    for (name, v) in [
        ("kernel", &os.kernel),
        ("initrd", &os.initrd),
        ("cmdline", &os.cmdline),
        ("dtb", &os.dtb),
        ("root", &os.root),
    ] {
        if let Some(v) = v {
            e.push(Element::text_element(name, v));
        }
    }
    if let Some(t) = &os.slic_table {
        e.push(
            Element::new("acpi").with_child(
                Element::new("table")
                    .with_attr("type", "slic")
                    .with_text(t.as_str()),
            ),
        );
    }
    if os.bootloader.is_none() {
        for d in &os.boot_devs {
            e.push(Element::new("boot").with_attr("dev", d));
        }
        if let Some(m) = os.bootmenu {
            e.push(
                Element::new("bootmenu")
                    .with_attr("enable", yes_no(m))
                    .with_opt_attr("timeout", os.bootmenu_timeout),
            );
        }
        if os.bios_useserial.is_some() || os.bios_reboot_timeout.is_some() {
            e.push(
                Element::new("bios")
                    .with_opt_attr("useserial", os.bios_useserial.map(yes_no))
                    .with_opt_attr("rebootTimeout", os.bios_reboot_timeout),
            );
        }
    }
    if let Some(s) = os.smbios {
        e.push(Element::new("smbios").with_attr("mode", s));
    }
    e
}
