//! `QemuCaps`: what one QEMU binary offers (libvirt's `virQEMUCaps`), read
//! from libvirt's capability cache format (`<qemuCaps>`, the files under
//! `/var/cache/libvirt/qemu/capabilities/` and the test fixtures), plus a
//! cache keyed by the binary's identity.
//!
//! ```text
//!   caps XML ─QemuCaps::parse─▶ QemuCaps { version, flags, machines, cpus, host CPU }
//!   emulator ─CapsCache::get─▶ (path, size, mtime) hit? ─no─▶ probe() (not yet: QMP)
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use common::xml::{Element, XmlError};

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
        let root = common::xml::parse(text)?;
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

/// Probes an emulator's capabilities over QMP.
///
/// # Errors
/// Always for now: the QMP probe is not written yet.
pub fn probe(emulator: &Path) -> Result<QemuCaps, XmlError> {
    Err(XmlError::invalid(
        "devices/emulator",
        format!(
            "capabilities of QEMU binary {} are not yet probed",
            emulator.display()
        ),
    ))
}

/// Capabilities per emulator binary, refreshed when the binary changes.
#[derive(Debug, Default)]
pub struct CapsCache {
    entries: Mutex<HashMap<PathBuf, (BinaryKey, Arc<QemuCaps>)>>,
}

impl CapsCache {
    /// An empty cache.
    pub fn new() -> CapsCache {
        CapsCache::default()
    }

    /// Seeds the cache (tests, or caps loaded from disk).
    pub fn insert(&self, key: BinaryKey, caps: QemuCaps) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.insert(key.path.clone(), (key, Arc::new(caps)));
    }

    /// The capabilities of `emulator`, probing it when it is new or changed.
    ///
    /// # Errors
    /// The binary cannot be stat'ed or probed.
    pub fn get(&self, emulator: &Path) -> Result<Arc<QemuCaps>, XmlError> {
        let key = BinaryKey::of(emulator)?;
        {
            let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((k, caps)) = e.get(emulator)
                && *k == key
            {
                return Ok(Arc::clone(caps));
            }
        }
        let caps = probe(emulator)?;
        let caps = Arc::new(caps);
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.insert(emulator.to_path_buf(), (key, Arc::clone(&caps)));
        Ok(caps)
    }
}

/// The fixture that libvirt's tests call "x86_64-latest" (QEMU 9.1.0),
/// relative to the repository's sibling `shared/conformance` folder.
pub const LATEST_X86_64_FIXTURE: &str = "fixtures/qemucaps/caps_9.1.0_x86_64.xml";

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Option<QemuCaps> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance")
            .join(LATEST_X86_64_FIXTURE);
        p.is_file()
            .then(|| QemuCaps::load(&p).expect("fixture parses"))
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
    fn cache_probes_unknown_binaries_and_reuses_known_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("qemu-system-x86_64");
        std::fs::write(&bin, "x").expect("bin");
        let cache = CapsCache::new();
        let e = cache.get(&bin).expect_err("not probed");
        assert!(e.to_string().contains("not yet probed"));
        cache.insert(BinaryKey::of(&bin).expect("stat"), QemuCaps::default());
        assert!(cache.get(&bin).is_ok());
        std::fs::write(&bin, "changed").expect("bin");
        assert!(cache.get(&bin).is_err());
        assert!(cache.get(&tmp.path().join("none")).is_err());
    }
}
