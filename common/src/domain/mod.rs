//! Domain XML (`<domain>`): model, parse → post-parse (driver hooks) → validate → format.
//!
//! ```text
//!   text ─xml::parse─▶ Element ─parse.rs─▶ DomainDef (as written, parse-time defaults)
//!        ─postparse.rs + DomainDefHooks─▶ DomainDef (defaults, implicit devices, addresses)
//!        ─validate.rs + DomainDefHooks (read-only)─▶ accepted
//!   DomainDef ─format.rs─▶ libvirt's canonical XML (virDomainDefFormat)
//! ```
//!
//! One file per section holds its data types followed by its `parse`/
//! `format` functions (`memory.rs`, `cpu.rs`, `os.rs`, ...); devices live
//! in [`device`], one file per kind. Drivers plug in through
//! [`DomainDefHooks`]; [`GenericHooks`] is libvirt's driver-neutral
//! behaviour and [`TestHooks`] the same in libvirt's test world
//! (x86_64 host, mocked random numbers).
//!
//! Conventions a new section or device follows:
//!
//! - `parse(node, &Ctx)` reads only what libvirt's parser reads and
//!   applies only its *parse-time* defaults; everything libvirt does in
//!   `virDomainDefPostParse` goes to `postparse.rs` (or to a driver hook),
//!   every refusal of `virDomainDefValidate` to `validate.rs`.
//! - `format` returns an [`Element`] (or `None` when libvirt writes
//!   nothing) with attributes in libvirt's order; `Option` fields are
//!   "absent" (libvirt's `ABSENT`/0), so a round trip writes back exactly
//!   what was set. Element order is checked against the corpus.
//! - With [`ParseFlags::validate`], `Ctx::check` refuses attributes and
//!   children outside the schema for the elements that call it.
//! - Live-only data (`id`, aliases, pty paths, `index=`...) is dropped by
//!   an inactive parse and not written by an inactive format.
//! - Rarely used sub-elements whose exact format is not modelled yet are
//!   kept as written ([`Element`] fields: disk `<mirror>`, NUMA cell
//!   `<cache>`, interface `<portForward>`, filesystem `<binary>`, ...).
//! - Randomness (UUIDs, MACs) comes from [`DomainDefHooks::random_bytes`].

pub mod clock;
pub mod cpu;
pub mod cputune;
pub mod device;
pub mod features;
mod format;
pub mod general;
mod hooks;
pub mod lifecycle;
pub mod memory;
pub mod numatune;
pub mod os;
mod parse;
mod postparse;
pub mod resctrl;
pub mod resource;
pub mod security;
pub mod sysinfo;
pub mod util;
mod validate;
pub mod vcpu;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_corpus;
#[cfg(test)]
mod tests_fuzz;

use crate::xml::{Element, FormatFlags, Node, ParseFlags, XmlError};
use crate::xml_enum;

pub use device::Device;
pub use hooks::{DomainDefHooks, GenericHooks, TestHooks, host_arch, os_random};
pub use util::{Bitmap, MacAddr, Uuid};

xml_enum! {
    /// `<domain type=>`: the hypervisor.
    pub enum VirtType {
        Qemu = "qemu", Kqemu = "kqemu", Kvm = "kvm", Xen = "xen", Lxc = "lxc", Uml = "uml",
        Openvz = "openvz", Test = "test", Vmware = "vmware", Hyperv = "hyperv", Vbox = "vbox",
        Phyp = "phyp", Parallels = "parallels", Bhyve = "bhyve", Vz = "vz", Hvf = "hvf",
    }
}

/// Elements in a foreign XML namespace at the top level of `<domain>`
/// (`<qemu:commandline>`...), kept as written for the driver that owns
/// the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceData {
    /// `(prefix, uri)` declarations from `<domain>`.
    pub decls: Vec<(String, String)>,
    /// The elements, in order.
    pub elements: Vec<Element>,
    /// Whether formatting writes them back (set by the owning driver in
    /// its post-parse hook; libvirt drops data of unknown namespaces).
    pub keep: bool,
}

/// A domain definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainDef {
    /// `type=`.
    pub virt_type: VirtType,
    /// `id=` of a running domain (live XML only).
    pub id: Option<i32>,
    /// `<name>`.
    pub name: String,
    /// `<uuid>` (generated when missing).
    pub uuid: Uuid,
    /// `<genid>`.
    pub genid: Option<general::Genid>,
    /// `<title>`.
    pub title: Option<String>,
    /// `<description>`.
    pub description: Option<String>,
    /// `<metadata>`.
    pub metadata: Option<general::Metadata>,
    /// `<maxMemory>`, `<memory>`, `<currentMemory>`.
    pub memory: memory::Memory,
    /// `<blkiotune>`.
    pub blkiotune: Option<memory::BlkioTune>,
    /// `<memtune>`.
    pub memtune: Option<memory::MemTune>,
    /// `<memoryBacking>`.
    pub memory_backing: memory::MemoryBacking,
    /// `<vcpu>`, `<vcpus>` (and per-vCPU pins and schedulers).
    pub vcpus: vcpu::Vcpus,
    /// `<iothreads>`/`<iothreadids>` (and their pins and schedulers).
    pub iothreads: Vec<vcpu::IoThread>,
    /// `<defaultiothread>`.
    pub default_iothread: Option<vcpu::DefaultIoThread>,
    /// `<cputune>` scalars, emulator pin and scheduler.
    pub cputune: cputune::CpuTune,
    /// `<cachetune>`/`<memorytune>` groups.
    pub resctrls: Vec<resctrl::Resctrl>,
    /// `<numatune>`.
    pub numatune: Option<numatune::NumaTune>,
    /// `<resource>`.
    pub resource: Option<resource::Resource>,
    /// `<sysinfo>`s.
    pub sysinfo: Vec<sysinfo::Sysinfo>,
    /// `<os>` and `<bootloader>`.
    pub os: os::Os,
    /// `<idmap>`.
    pub idmap: Option<resource::IdMap>,
    /// `<features>`.
    pub features: features::Features,
    /// `<cpu>` (with the guest NUMA topology).
    pub cpu: Option<cpu::Cpu>,
    /// `<clock>`.
    pub clock: clock::Clock,
    /// `<on_poweroff>`, `<on_reboot>`, `<on_crash>`, `<on_lockfailure>`.
    pub lifecycle: lifecycle::Lifecycle,
    /// `<pm>`.
    pub pm: lifecycle::Pm,
    /// `<perf>`.
    pub perf: lifecycle::Perf,
    /// `<devices><emulator>`.
    pub emulator: Option<String>,
    /// `<devices>` in libvirt's format order.
    pub devices: Vec<Device>,
    /// `<seclabel>`s.
    pub seclabels: Vec<security::Seclabel>,
    /// `<keywrap>`.
    pub keywrap: Option<security::Keywrap>,
    /// `<launchSecurity>`.
    pub launch_security: Option<security::LaunchSecurity>,
    /// Foreign-namespace elements.
    pub namespace: Option<NamespaceData>,
    /// A post-parse hook failed while parsing with
    /// [`ParseFlags::allow_post_parse_fail`]: the definition is as parsed
    /// and post-parse must be retried.
    pub post_parse_failed: bool,
}

impl DomainDef {
    /// A minimal definition (used by tests and by drivers building
    /// definitions in code).
    pub fn new(virt_type: VirtType, name: &str, uuid: Uuid) -> DomainDef {
        DomainDef {
            virt_type,
            id: None,
            name: name.to_owned(),
            uuid,
            genid: None,
            title: None,
            description: None,
            metadata: None,
            memory: memory::Memory::default(),
            blkiotune: None,
            memtune: None,
            memory_backing: memory::MemoryBacking::default(),
            vcpus: vcpu::Vcpus::default(),
            iothreads: Vec::new(),
            default_iothread: None,
            cputune: cputune::CpuTune::default(),
            resctrls: Vec::new(),
            numatune: None,
            resource: None,
            sysinfo: Vec::new(),
            os: os::Os::default(),
            idmap: None,
            features: features::Features::default(),
            cpu: None,
            clock: clock::Clock::default(),
            lifecycle: lifecycle::Lifecycle::default(),
            pm: lifecycle::Pm::default(),
            perf: lifecycle::Perf::default(),
            emulator: None,
            devices: Vec::new(),
            seclabels: Vec::new(),
            keywrap: None,
            launch_security: None,
            namespace: None,
            post_parse_failed: false,
        }
    }

    /// Parses, post-parses and validates a definition: the full pipeline
    /// of libvirt's `virDomainDefParseString`.
    ///
    /// # Errors
    /// Malformed XML, a value or combination libvirt refuses, or a hook
    /// failure (unless `flags.allow_post_parse_fail`, which instead sets
    /// [`DomainDef::post_parse_failed`] and returns the definition as
    /// parsed).
    pub fn parse_str(
        xml: &str,
        flags: ParseFlags,
        hooks: &dyn DomainDefHooks,
    ) -> Result<DomainDef, XmlError> {
        let root = crate::xml::parse(xml)?;
        let mut def = DomainDef::parse_node(Node::root(&root), flags, hooks)?;
        match postparse::run(&mut def, hooks, flags) {
            Ok(()) => {}
            Err(postparse::Failure::Generic(e)) => return Err(e),
            Err(postparse::Failure::Hook(e)) => {
                if !flags.allow_post_parse_fail {
                    return Err(e);
                }
                // Keep the definition as parsed; the driver retries later.
                def = DomainDef::parse_node(Node::root(&root), flags, hooks)?;
                def.post_parse_failed = true;
                return Ok(def);
            }
        }
        def.validate(hooks)?;
        Ok(def)
    }

    /// Parses only (no post-parse, no validation): the definition as
    /// written plus libvirt's parse-time defaults.
    ///
    /// # Errors
    /// A value or structure libvirt's parser refuses.
    pub fn parse_node(
        root: Node<'_>,
        flags: ParseFlags,
        hooks: &dyn DomainDefHooks,
    ) -> Result<DomainDef, XmlError> {
        let ctx = util::Ctx { flags, hooks };
        parse::parse_domain(root, &ctx)
    }

    /// Runs post-parse: generic defaults and the driver's hooks.
    ///
    /// # Errors
    /// A generic or hook failure.
    pub fn post_parse(&mut self, hooks: &dyn DomainDefHooks) -> Result<(), XmlError> {
        postparse::run(self, hooks, ParseFlags::default()).map_err(postparse::Failure::into_error)
    }

    /// Validates (generic checks, then the driver's); never modifies.
    ///
    /// # Errors
    /// The definition is refused.
    pub fn validate(&self, hooks: &dyn DomainDefHooks) -> Result<(), XmlError> {
        validate::run(self, hooks)
    }

    /// Formats as libvirt's `virDomainDefFormat`.
    pub fn to_xml(&self, flags: FormatFlags) -> String {
        format::to_xml(self, flags)
    }

    /// The devices of one kind, e.g. `def.devices_of(|d| matches!(d, Device::Disk(_)))`.
    pub fn devices_of<'a>(
        &'a self,
        pred: impl Fn(&Device) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Device> + 'a {
        self.devices.iter().filter(move |d| pred(d))
    }

    /// The disks.
    pub fn disks(&self) -> impl Iterator<Item = &device::Disk> {
        self.devices.iter().filter_map(|d| match d {
            Device::Disk(x) => Some(x.as_ref()),
            _ => None,
        })
    }

    /// The controllers.
    pub fn controllers(&self) -> impl Iterator<Item = &device::Controller> {
        self.devices.iter().filter_map(|d| match d {
            Device::Controller(x) => Some(x.as_ref()),
            _ => None,
        })
    }

    /// Adds a device at its place in libvirt's order (after the last
    /// device of the same kind; controllers sorted by type and index).
    pub fn add_device(&mut self, dev: Device) {
        let rank = dev.rank();
        if let Device::Controller(c) = &dev {
            let start = self.devices.iter().position(|d| d.rank() >= rank);
            let start = start.unwrap_or(self.devices.len());
            let end = self.devices[start..]
                .iter()
                .position(|d| !matches!(d, Device::Controller(_)))
                .map_or(self.devices.len(), |p| start + p);
            let at = device::controller_slot(
                &self.devices[start..end],
                |d| match d {
                    Device::Controller(x) => Some(x.as_ref()),
                    _ => None,
                },
                c,
            );
            self.devices.insert(start + at, dev);
            return;
        }
        let at = self
            .devices
            .iter()
            .position(|d| d.rank() > rank)
            .unwrap_or(self.devices.len());
        self.devices.insert(at, dev);
    }

    /// Total guest memory in KiB (`<memory>`, or the sum of NUMA cells).
    pub fn total_memory(&self) -> u64 {
        match self.cpu.as_ref().and_then(|c| c.numa.as_ref()) {
            Some(n) if !n.cells.is_empty() => n.total_memory(),
            _ => self.memory.total,
        }
    }
}
