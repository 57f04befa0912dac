//! `QemuCaps`: what one QEMU binary offers (libvirt's `virQEMUCaps`), in
//! libvirt's capability cache format (`<qemuCaps>`, the files under
//! `/var/cache/libvirt/qemu/capabilities/` and the test fixtures): read by
//! [`QemuCaps::parse`], written by [`QemuCaps::to_xml`] (same layout,
//! `parse(to_xml(c)) == c`).
//!
//! ```text
//!   caps XML ─QemuCaps::parse─▶ QemuCaps { version, flags, machines, cpus, host CPU }
//!   QemuCaps ─to_xml─▶ caps XML;  ─command_caps─▶ command::QemuCaps
//!   emulator ─probe()─▶ QemuCaps            (QMP, see caps::probe)
//!   emulator ─CapsCache::get─▶ memory ─▶ disk file ─▶ probe()   (see caps::cache)
//! ```
//!
//! A binary is identified by its [`BinaryKey`] (path, size, mtime).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::xml::{Element, XmlError};

pub use super::cache::CapsCache;
pub use super::probe::probe;

/// The accelerator a set of machine types / CPU models belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accel {
    /// KVM (`type='kvm'` domains).
    Kvm,
    /// TCG (`type='qemu'` domains).
    Tcg,
}

impl Accel {
    fn parse(s: &str) -> Option<Accel> {
        match s {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }

    /// The `type=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One `<machine>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineType {
    /// `name=`, e.g. `pc-i440fx-9.1`.
    pub name: String,
    /// `alias=`, e.g. `pc`.
    pub alias: Option<String>,
    /// `maxCpus=`.
    pub max_cpus: u32,
    /// `hotplugCpus='yes'`.
    pub hotplug_cpus: bool,
    /// `default='yes'`: the machine used when the XML names none.
    pub default: bool,
    /// `defaultCPU=` (a QOM type name, e.g. `qemu64-x86_64-cpu`).
    pub default_cpu: Option<String>,
    /// `defaultRAMid=`.
    pub default_ram_id: Option<String>,
    /// `numaMemSupported='yes'`.
    pub numa_mem_supported: bool,
    /// `deprecated='yes'`.
    pub deprecated: bool,
    /// `acpi=`: `None` when unknown.
    pub acpi: Option<bool>,
}

/// One `<cpu>` model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuModel {
    /// `name=`.
    pub name: String,
    /// `typename=` (QOM type).
    pub typename: Option<String>,
    /// `usable=`: `None` when unknown.
    pub usable: Option<bool>,
    /// `<blocker>` features that make it unusable.
    pub blockers: Vec<String>,
    /// `deprecated='yes'`.
    pub deprecated: bool,
}

/// One `<property>` of the probed host CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuProperty {
    /// `name=`.
    pub name: String,
    /// `type=` (`boolean`, `string`, `number`).
    pub kind: String,
    /// `value=`.
    pub value: String,
    /// `migratable='yes'`.
    pub migratable: bool,
}

/// `<hostCPU>`: the CPU `host-model` expands to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCpu {
    /// `model=`.
    pub model: String,
    /// `migratability='yes'`.
    pub migratability: bool,
    /// The properties.
    pub props: Vec<CpuProperty>,
}

/// What QEMU offers for one accelerator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccelCaps {
    /// Machine types, in the file's order.
    pub machines: Vec<MachineType>,
    /// CPU models, in the file's order.
    pub cpus: Vec<CpuModel>,
    /// The host CPU, if probed.
    pub host_cpu: Option<HostCpu>,
}

/// The capabilities of one QEMU binary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuCaps {
    /// `<emulator>`.
    pub emulator: String,
    /// `<version>`, packed (major * 1,000,000 + minor * 1,000 + micro).
    pub version: u64,
    /// `<package>`.
    pub package: Option<String>,
    /// `<arch>`.
    pub arch: String,
    /// `<flag name=>`s.
    pub flags: BTreeSet<String>,
    /// KVM machine types and CPUs.
    pub kvm: AccelCaps,
    /// TCG machine types and CPUs.
    pub tcg: AccelCaps,
    /// `<hypervCapabilities>` names, when supported.
    pub hyperv: Vec<String>,
}

impl QemuCaps {
    /// Parses the `<qemuCaps>` document.
    ///
    /// # Errors
    /// Malformed XML, a wrong root element or a missing mandatory value.
    pub fn parse(text: &str) -> Result<QemuCaps, XmlError> {
        QemuCaps::from_element(&common::xml::parse(text)?)
    }

    /// [`QemuCaps::parse`] on an already parsed root element.
    ///
    /// # Errors
    /// A wrong root element or a missing mandatory value.
    pub fn from_element(root: &Element) -> Result<QemuCaps, XmlError> {
        if root.name != "qemuCaps" {
            return Err(XmlError::invalid(
                "/",
                format!("expected <qemuCaps>, found <{}>", root.name),
            ));
        }
        let text_of = |name: &str| root.child(name).map(|e| e.text().trim().to_owned());
        let version = text_of("version")
            .ok_or_else(|| XmlError::invalid("qemuCaps/version", "missing version"))?
            .parse::<u64>()
            .map_err(|_| XmlError::invalid("qemuCaps/version", "malformed version"))?;
        let mut caps = QemuCaps {
            emulator: text_of("emulator").unwrap_or_default(),
            version,
            package: text_of("package"),
            arch: text_of("arch")
                .ok_or_else(|| XmlError::invalid("qemuCaps/arch", "missing arch"))?,
            ..QemuCaps::default()
        };
        for el in root.elements() {
            let accel = || {
                el.attr("type").and_then(Accel::parse).ok_or_else(|| {
                    XmlError::invalid(
                        format!("qemuCaps/{}", el.name),
                        "missing or unknown accelerator type",
                    )
                })
            };
            match el.name.as_str() {
                "flag" => {
                    if let Some(n) = el.attr("name") {
                        caps.flags.insert(n.to_owned());
                    }
                }
                "machine" => {
                    let m = parse_machine(el)?;
                    caps.accel_mut(accel()?).machines.push(m);
                }
                "cpu" => {
                    let c = CpuModel {
                        name: el.attr("name").unwrap_or_default().to_owned(),
                        typename: el.attr("typename").map(str::to_owned),
                        usable: el.attr("usable").map(|u| u == "yes"),
                        blockers: el
                            .children_named("blocker")
                            .filter_map(|b| b.attr("name").map(str::to_owned))
                            .collect(),
                        deprecated: el.attr("deprecated") == Some("yes"),
                    };
                    caps.accel_mut(accel()?).cpus.push(c);
                }
                "hostCPU" => {
                    let h = HostCpu {
                        model: el.attr("model").unwrap_or_default().to_owned(),
                        migratability: el.attr("migratability") == Some("yes"),
                        props: el
                            .children_named("property")
                            .map(|p| CpuProperty {
                                name: p.attr("name").unwrap_or_default().to_owned(),
                                kind: p.attr("type").unwrap_or_default().to_owned(),
                                value: p.attr("value").unwrap_or_default().to_owned(),
                                migratable: p.attr("migratable") == Some("yes"),
                            })
                            .collect(),
                    };
                    caps.accel_mut(accel()?).host_cpu = Some(h);
                }
                "hypervCapabilities" if el.attr("supported") == Some("yes") => {
                    caps.hyperv = el
                        .children_named("cap")
                        .filter_map(|c| c.attr("name").map(str::to_owned))
                        .collect();
                }
                _ => {}
            }
        }
        Ok(caps)
    }

    /// Reads and parses a capability file.
    ///
    /// # Errors
    /// The file cannot be read or parsed.
    pub fn load(path: &Path) -> Result<QemuCaps, XmlError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            XmlError::invalid(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        QemuCaps::parse(&text)
    }

    /// The `<qemuCaps>` document, in the layout [`QemuCaps::parse`] reads
    /// (libvirt's order: emulator, flags, version, package, arch, then per
    /// accelerator the host CPU, CPU models and machine types).
    pub fn to_xml(&self) -> String {
        self.to_element().to_xml()
    }

    /// The `<qemuCaps>` element of [`QemuCaps::to_xml`].
    pub fn to_element(&self) -> Element {
        let mut root = Element::new("qemuCaps");
        root.push(Element::text_element("emulator", self.emulator.clone()));
        for f in &self.flags {
            root.push(Element::new("flag").with_attr("name", f));
        }
        root.push(Element::text_element("version", self.version.to_string()));
        if let Some(p) = &self.package {
            root.push(Element::text_element("package", p.clone()));
        }
        root.push(Element::text_element("arch", self.arch.clone()));
        let yes = |b: bool| b.then_some("yes");
        for accel in [Accel::Kvm, Accel::Tcg] {
            let acc = self.accel(accel);
            let ty = accel.as_str();
            if let Some(h) = &acc.host_cpu {
                let mut el = Element::open("hostCPU")
                    .with_attr("type", ty)
                    .with_attr("model", &h.model)
                    .with_attr("migratability", if h.migratability { "yes" } else { "no" });
                for p in &h.props {
                    el.push(
                        Element::new("property")
                            .with_attr("name", &p.name)
                            .with_attr("type", &p.kind)
                            .with_attr("value", &p.value)
                            .with_opt_attr("migratable", yes(p.migratable)),
                    );
                }
                root.push(el);
            }
            for c in &acc.cpus {
                let mut el = Element::new("cpu")
                    .with_attr("type", ty)
                    .with_attr("name", &c.name)
                    .with_opt_attr("typename", c.typename.as_ref())
                    .with_opt_attr("usable", c.usable.map(|u| if u { "yes" } else { "no" }))
                    .with_opt_attr("deprecated", yes(c.deprecated));
                for b in &c.blockers {
                    el.push(Element::new("blocker").with_attr("name", b));
                }
                root.push(el);
            }
            for m in &acc.machines {
                root.push(
                    Element::new("machine")
                        .with_attr("type", ty)
                        .with_attr("name", &m.name)
                        .with_opt_attr("alias", m.alias.as_ref())
                        .with_opt_attr("hotplugCpus", yes(m.hotplug_cpus))
                        .with_attr("maxCpus", m.max_cpus)
                        .with_opt_attr("default", yes(m.default))
                        .with_opt_attr("defaultCPU", m.default_cpu.as_ref())
                        .with_opt_attr("numaMemSupported", yes(m.numa_mem_supported))
                        .with_opt_attr("defaultRAMid", m.default_ram_id.as_ref())
                        .with_opt_attr("deprecated", yes(m.deprecated))
                        .with_opt_attr("acpi", m.acpi.map(|a| if a { "yes" } else { "no" })),
                );
            }
        }
        if !self.hyperv.is_empty() {
            let mut el = Element::new("hypervCapabilities").with_attr("supported", "yes");
            for c in &self.hyperv {
                el.push(Element::new("cap").with_attr("name", c));
            }
            root.push(el);
        }
        root
    }

    /// What the command-line builder needs: the version unpacked and, when
    /// a KVM host CPU is known (only from libvirt-made caps files: our
    /// probe does not expand the host CPU), the `-cpu` value `host-model`
    /// becomes: the model, then each property (booleans as `on`/`off`,
    /// only the migratable ones when migratability was probed; commas in
    /// values doubled).
    pub fn command_caps(&self) -> crate::command::QemuCaps {
        let part = |n: u64| u32::try_from(n % 1000).unwrap_or(0);
        let major = u32::try_from(self.version / 1_000_000).unwrap_or(u32::MAX);
        crate::command::QemuCaps {
            version: (major, part(self.version / 1000), part(self.version)),
            host_model_cpu: self.kvm.host_cpu.as_ref().map(host_model_cpu),
        }
    }

    /// libvirt's test harness removes machine aliases from "latest" caps:
    /// each alias becomes a machine of its own (taking over `default`), so
    /// `pc` and `q35` stay as written instead of being expanded.
    pub fn strip_machine_aliases(&mut self) {
        for acc in [&mut self.kvm, &mut self.tcg] {
            let mut out = Vec::with_capacity(acc.machines.len());
            for mut m in acc.machines.drain(..) {
                if let Some(alias) = m.alias.take() {
                    out.push(MachineType {
                        name: alias,
                        ..m.clone()
                    });
                    m.default = false;
                }
                out.push(m);
            }
            acc.machines = out;
        }
    }

    fn accel_mut(&mut self, a: Accel) -> &mut AccelCaps {
        match a {
            Accel::Kvm => &mut self.kvm,
            Accel::Tcg => &mut self.tcg,
        }
    }

    /// The capabilities for one accelerator.
    pub fn accel(&self, a: Accel) -> &AccelCaps {
        match a {
            Accel::Kvm => &self.kvm,
            Accel::Tcg => &self.tcg,
        }
    }

    /// Whether QEMU has the capability `flag` (libvirt's `QEMU_CAPS_*`
    /// name in lower case with dashes, e.g. `pcie-root-port`).
    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// The default machine type for `accel`.
    pub fn default_machine(&self, accel: Accel) -> Option<&MachineType> {
        self.accel(accel).machines.iter().find(|m| m.default)
    }

    /// A machine type by name or alias.
    pub fn machine(&self, accel: Accel, name: &str) -> Option<&MachineType> {
        let ms = &self.accel(accel).machines;
        ms.iter()
            .find(|m| m.name == name)
            .or_else(|| ms.iter().find(|m| m.alias.as_deref() == Some(name)))
    }

    /// The canonical name of `name` (an alias expands to its machine).
    pub fn canonical_machine<'a>(&'a self, accel: Accel, name: &'a str) -> &'a str {
        self.accel(accel)
            .machines
            .iter()
            .find(|m| m.alias.as_deref() == Some(name))
            .map_or(name, |m| m.name.as_str())
    }

    /// A CPU model by name.
    pub fn cpu_model(&self, accel: Accel, name: &str) -> Option<&CpuModel> {
        self.accel(accel).cpus.iter().find(|c| c.name == name)
    }
}

fn parse_machine(el: &Element) -> Result<MachineType, XmlError> {
    let name = el
        .attr("name")
        .ok_or_else(|| XmlError::invalid("qemuCaps/machine", "missing machine name"))?;
    let yes = |a: &str| el.attr(a) == Some("yes");
    Ok(MachineType {
        name: name.to_owned(),
        alias: el.attr("alias").map(str::to_owned),
        max_cpus: el.attr("maxCpus").and_then(|v| v.parse().ok()).unwrap_or(0),
        hotplug_cpus: yes("hotplugCpus"),
        default: yes("default"),
        default_cpu: el.attr("defaultCPU").map(str::to_owned),
        default_ram_id: el.attr("defaultRAMid").map(str::to_owned),
        numa_mem_supported: yes("numaMemSupported"),
        deprecated: yes("deprecated"),
        acpi: el.attr("acpi").map(|v| v == "yes"),
    })
}

/// The identity of an emulator binary: a changed binary is probed again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BinaryKey {
    /// The path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time.
    pub mtime: Option<SystemTime>,
}

impl BinaryKey {
    /// Stats `path`.
    ///
    /// # Errors
    /// The binary cannot be stat'ed (`Cannot check QEMU binary ...`).
    pub fn of(path: &Path) -> Result<BinaryKey, XmlError> {
        let md = std::fs::metadata(path).map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "No such file or directory".to_owned(),
                _ => e.to_string(),
            };
            XmlError::invalid(
                "devices/emulator",
                format!("Cannot check QEMU binary {}: {reason}", path.display()),
            )
        })?;
        Ok(BinaryKey {
            path: path.to_path_buf(),
            size: md.len(),
            mtime: md.modified().ok(),
        })
    }
}

fn host_model_cpu(h: &HostCpu) -> String {
    let mut s = h.model.clone();
    for p in &h.props {
        let value = match p.kind.as_str() {
            "boolean" => {
                let on = p.value == "true";
                // Off is the base model's default; a feature that cannot
                // migrate stays off in a migratable host-model CPU.
                if !on || (h.migratability && !p.migratable) {
                    continue;
                }
                "on".to_owned()
            }
            _ => p.value.replace(',', ",,"),
        };
        s.push(',');
        s.push_str(&p.name);
        s.push('=');
        s.push_str(&value);
    }
    s
}

/// The fixture that libvirt's tests call "x86_64-latest" (QEMU 9.1.0),
/// relative to the repository's sibling `shared/conformance` folder.
pub const LATEST_X86_64_FIXTURE: &str = "fixtures/qemucaps/caps_9.1.0_x86_64.xml";

/// The parsed [`LATEST_X86_64_FIXTURE`], when the corpus is present.
#[cfg(test)]
pub(crate) fn tests_fixture() -> Option<QemuCaps> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance")
        .join(LATEST_X86_64_FIXTURE);
    p.is_file()
        .then(|| QemuCaps::load(&p).expect("fixture parses"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Option<QemuCaps> {
        tests_fixture()
    }

    #[test]
    fn parses_a_small_document() {
        let caps = QemuCaps::parse(
            "<qemuCaps><emulator>/usr/bin/qemu-system-x86_64</emulator>\
             <version>9000090</version><arch>x86_64</arch>\
             <flag name='pcie-root-port'/>\
             <hostCPU type='kvm' model='base' migratability='yes'>\
               <property name='cmov' type='boolean' value='true' migratable='yes'/></hostCPU>\
             <cpu type='kvm' name='n270' typename='n270-x86_64-cpu' usable='no'>\
               <blocker name='movbe'/></cpu>\
             <machine type='kvm' name='pc-i440fx-9.1' alias='pc' hotplugCpus='yes' \
               maxCpus='255' default='yes' acpi='yes'/>\
             <machine type='tcg' name='isapc' maxCpus='1'/></qemuCaps>",
        )
        .expect("parses");
        assert_eq!(caps.version, 9_000_090);
        assert!(caps.has("pcie-root-port") && !caps.has("nope"));
        let m = caps.default_machine(Accel::Kvm).expect("default");
        assert_eq!(
            (m.name.as_str(), m.max_cpus, m.hotplug_cpus),
            ("pc-i440fx-9.1", 255, true)
        );
        assert_eq!(caps.canonical_machine(Accel::Kvm, "pc"), "pc-i440fx-9.1");
        assert!(caps.default_machine(Accel::Tcg).is_none());
        let cpu = caps.cpu_model(Accel::Kvm, "n270").expect("cpu");
        assert_eq!((cpu.usable, cpu.blockers.len()), (Some(false), 1));
        let host = caps.kvm.host_cpu.as_ref().expect("host cpu");
        assert!(host.props[0].migratable);
        assert!(QemuCaps::parse("<domain/>").is_err());
        assert!(QemuCaps::parse("<qemuCaps><arch>x</arch></qemuCaps>").is_err());
    }

    #[test]
    fn parses_the_latest_fixture() {
        let Some(mut caps) = fixture() else { return };
        assert_eq!(caps.arch, "x86_64");
        assert!(caps.has("pcie-root-port"));
        assert_eq!(
            caps.default_machine(Accel::Kvm).map(|m| m.name.as_str()),
            Some("pc-i440fx-9.1")
        );
        let q35 = caps.machine(Accel::Tcg, "q35").expect("q35 alias");
        assert_eq!(q35.name, "pc-q35-9.1");
        assert_eq!(q35.max_cpus, 4096);
        caps.strip_machine_aliases();
        let q35 = caps.machine(Accel::Kvm, "q35").expect("q35 machine");
        assert!(q35.alias.is_none());
        assert_eq!(caps.canonical_machine(Accel::Kvm, "q35"), "q35");
        assert_eq!(
            caps.default_machine(Accel::Kvm).map(|m| m.name.as_str()),
            Some("pc")
        );
        assert!(caps.kvm.host_cpu.is_some() && caps.tcg.host_cpu.is_some());
        assert!(!caps.hyperv.is_empty());
    }

    #[test]
    fn to_xml_round_trips() {
        let mut caps = QemuCaps::parse(
            "<qemuCaps><emulator>/usr/bin/qemu-system-x86_64</emulator>\
             <version>10000002</version><package>Debian 1:10.0.2 &amp; &lt;x&gt;</package>\
             <arch>x86_64</arch><flag name='qemu-xhci'/><flag name='kvm'/>\
             <hostCPU type='kvm' model='base' migratability='yes'>\
               <property name='cmov' type='boolean' value='true' migratable='yes'/>\
               <property name='vmx' type='boolean' value='true'/>\
               <property name='fpu' type='boolean' value='false'/>\
               <property name='family' type='number' value='23'/>\
               <property name='model-id' type='string' value='AMD, Ryzen  '/></hostCPU>\
             <cpu type='kvm' name='n270' typename='n270-x86_64-cpu' usable='no' deprecated='yes'>\
               <blocker name='movbe'/><blocker name='x'/></cpu>\
             <cpu type='tcg' name='odd'/>\
             <machine type='tcg' name='pc-i440fx-9.1' alias='pc' hotplugCpus='yes' \
               maxCpus='255' default='yes' defaultCPU='qemu64-x86_64-cpu' \
               numaMemSupported='yes' defaultRAMid='pc.ram' deprecated='yes' acpi='no'/>\
             <machine type='kvm' name='isapc'/>\
             <hypervCapabilities supported='yes'><cap name='relaxed'/></hypervCapabilities>\
             </qemuCaps>",
        )
        .expect("parses");
        let xml = caps.to_xml();
        assert!(
            xml.starts_with("<qemuCaps>\n  <emulator>/usr/bin/qemu-system-x86_64</emulator>\n")
        );
        assert_eq!(QemuCaps::parse(&xml).expect("reparse"), caps);
        caps.package = None;
        caps.kvm.host_cpu.as_mut().expect("host").migratability = false;
        assert_eq!(QemuCaps::parse(&caps.to_xml()).expect("reparse"), caps);
        assert_eq!(
            QemuCaps::parse(&QemuCaps::default().to_xml()).expect("empty"),
            QemuCaps::default()
        );
        if let Some(f) = fixture() {
            assert_eq!(QemuCaps::parse(&f.to_xml()).expect("fixture reparse"), f);
        }
    }

    #[test]
    fn command_caps_unpack_the_version_and_host_model() {
        let mut caps = QemuCaps {
            version: 10_000_002,
            ..QemuCaps::default()
        };
        let c = caps.command_caps();
        assert_eq!((c.version, c.host_model_cpu), ((10, 0, 2), None));
        caps.version = 7_002_019;
        caps.kvm.host_cpu = Some(HostCpu {
            model: "base".to_owned(),
            migratability: true,
            props: vec![
                CpuProperty {
                    name: "cmov".to_owned(),
                    kind: "boolean".to_owned(),
                    value: "true".to_owned(),
                    migratable: true,
                },
                CpuProperty {
                    name: "invtsc".to_owned(),
                    kind: "boolean".to_owned(),
                    value: "true".to_owned(),
                    migratable: false,
                },
                CpuProperty {
                    name: "fpu".to_owned(),
                    kind: "boolean".to_owned(),
                    value: "false".to_owned(),
                    migratable: false,
                },
                CpuProperty {
                    name: "model-id".to_owned(),
                    kind: "string".to_owned(),
                    value: "A, B".to_owned(),
                    migratable: false,
                },
            ],
        });
        let c = caps.command_caps();
        assert_eq!(c.version, (7, 2, 19));
        assert_eq!(
            c.host_model_cpu.as_deref(),
            Some("base,cmov=on,model-id=A,, B")
        );
        if let Some(f) = fixture() {
            let c = f.command_caps();
            assert_eq!(c.version, (9, 0, 90));
            assert!(c.host_model_cpu.expect("host model").starts_with("base,"));
        }
    }
}
