//! The QEMU command-line builder: [`DomainDef`] + [`CommandContext`] →
//! [`QemuCommand`] (environment, program, arguments).
//!
//! Pure: no I/O, and the definition is never modified. Everything that
//! does not come from the definition (paths, fd numbers handed over by the
//! launcher, qemu.conf switches, QEMU capabilities, the identity of the
//! process) comes from the context, so the daemon and the conformance
//! harness (libvirt's fake world, [`CommandContext::test`]) share the code.
//!
//! Modern syntax only (`-blockdev`, JSON `-device`/`-object`/`-netdev`),
//! which QEMU 7.2 to 10 all accept. Arguments are emitted in the order of
//! libvirt's `qemuBuildCommandLine`, one file per area:
//! [`machine`] (name, machine, accel, cpu, memory, smp, clock, boot),
//! [`controllers`], [`disk`], [`net`], [`chardev`] (serial, console,
//! channel), [`input`], [`graphics`] (VNC, video), [`misc`] (audio,
//! watchdog, balloon, rng, sandbox); [`secret`] encrypts secrets with the
//! master key, [`json`] keeps JSON keys in libvirt's order and [`argv`]
//! prints a command as libvirt's `virCommandToString` does.
//!
//! Definitions that use something the builder cannot express are refused
//! with [`BuildError::Unsupported`] instead of starting a guest without it.
//! The builder expects a definition that went through the QEMU post-parse
//! (PCI/drive addresses, implicit controllers, defaults); USB ports and
//! boot indexes, which libvirt assigns only at start-up, are derived here
//! without touching the definition.

pub mod alias;
pub mod argv;
pub mod chardev;
pub mod controllers;
pub mod disk;
pub mod graphics;
pub mod input;
pub mod json;
pub mod machine;
pub mod misc;
pub mod net;
pub mod secret;

use common::domain::device::address::{Address, PciAddress};
use common::domain::device::controller::{ControllerModel, PciModel};
use common::domain::device::{ControllerType, DeviceInfo};
use common::domain::{Device, DomainDef};

pub use argv::args_to_string;
pub use json::Props;

/// What the command needs to know about the QEMU binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCaps {
    /// `(major, minor, micro)`.
    pub version: (u32, u32, u32),
    /// The CPU definition `host-model` expands to under KVM (`-cpu`
    /// value), when the capabilities name one.
    pub host_model_cpu: Option<String>,
}

impl Default for QemuCaps {
    fn default() -> Self {
        QemuCaps {
            version: (9, 1, 0),
            host_model_cpu: None,
        }
    }
}

/// The qemu.conf switches the command depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConf {
    /// `vnc_listen`.
    pub vnc_listen: String,
    /// `vnc_tls`.
    pub vnc_tls: bool,
    /// `vnc_tls_x509_verify`.
    pub vnc_tls_x509_verify: bool,
    /// `vnc_tls_x509_secret_uuid`.
    pub vnc_tls_x509_secret_uuid: Option<String>,
    /// `vnc_tls_x509_cert_dir`.
    pub vnc_tls_x509_cert_dir: String,
    /// `vnc_sasl`.
    pub vnc_sasl: bool,
    /// `vnc_auto_unix_socket`.
    pub vnc_auto_unix_socket: bool,
    /// `dump_guest_core`.
    pub dump_guest_core: bool,
    /// `seccomp_sandbox` (`-sandbox on,...` when set).
    pub seccomp_sandbox: bool,
    /// The SASL configuration folder (`SASL_CONF_PATH` with VNC SASL).
    pub sasl_dir: String,
    /// `chardev_tls`: TLS for TCP character devices by default.
    pub chardev_tls: bool,
    /// `chardev_tls_x509_verify`.
    pub chardev_tls_x509_verify: bool,
    /// `chardev_tls_x509_secret_uuid`.
    pub chardev_tls_x509_secret_uuid: Option<String>,
    /// `chardev_tls_x509_cert_dir`.
    pub chardev_tls_x509_cert_dir: String,
}

impl Default for QemuConf {
    fn default() -> Self {
        QemuConf {
            vnc_listen: "127.0.0.1".to_owned(),
            vnc_tls: false,
            vnc_tls_x509_verify: false,
            vnc_tls_x509_secret_uuid: None,
            vnc_tls_x509_cert_dir: "/etc/pki/libvirt-vnc".to_owned(),
            vnc_sasl: false,
            vnc_auto_unix_socket: false,
            dump_guest_core: false,
            seccomp_sandbox: true,
            sasl_dir: "/etc/sasl2".to_owned(),
            chardev_tls: false,
            chardev_tls_x509_verify: false,
            chardev_tls_x509_secret_uuid: None,
            chardev_tls_x509_cert_dir: "/etc/pki/libvirt-chardev".to_owned(),
        }
    }
}

/// File descriptors the launcher opened for QEMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fds {
    /// The QMP monitor's listening socket.
    pub monitor: i32,
    /// Listening UNIX sockets of chardevs.
    pub chardev_listen: i32,
    /// First tap fd for `ethernet` interfaces (then +1 per interface).
    pub tap_first: i32,
    /// First tap fd for `bridge` interfaces.
    pub bridge_tap_first: i32,
    /// First vhost-net fd.
    pub vhost_first: i32,
    /// First fd passed with `-add-fd` (file chardevs).
    pub add_fd_first: i32,
}

impl Default for Fds {
    fn default() -> Self {
        Fds {
            monitor: 1729,
            chardev_listen: 1729,
            tap_first: 3,
            bridge_tap_first: 102,
            vhost_first: 44,
            add_fd_first: 1750,
        }
    }
}

/// Everything outside the definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandContext {
    /// The emulator when the definition names none.
    pub emulator: String,
    /// The running domain's id (`-1` in libvirt's test world).
    pub domain_id: i32,
    /// libDir (`/var/lib/libvirt/qemu`).
    pub lib_dir: String,
    /// The channel socket directory.
    pub channel_dir: String,
    /// Environment: `PATH`.
    pub path_env: String,
    /// Environment: `USER` and `LOGNAME`.
    pub user: String,
    /// QEMU capabilities.
    pub caps: QemuCaps,
    /// qemu.conf.
    pub conf: QemuConf,
    /// Pre-opened fds.
    pub fds: Fds,
    /// Whether KVM is usable on the host.
    pub kvm: bool,
    /// Whether `/dev/vhost-net` is usable (virtio NICs then get a vhost
    /// descriptor).
    pub vhost_net: bool,
    /// The current time (Unix seconds), for `<clock offset='variable'>`.
    pub now: i64,
    /// The host's local time minus UTC, in seconds.
    pub utc_offset: i64,
    /// Listen addresses of virtual networks (`<listen type='network'>`),
    /// resolved by the network driver: `(network name, address)`.
    pub network_addresses: Vec<(String, String)>,
    /// The domain's master key (`masterKey0`), which encrypts secrets.
    pub master_key: [u8; 32],
    /// The IV for secrets encrypted with the master key.
    pub secret_iv: [u8; 16],
    /// Secret values by UUID, looked up by the daemon beforehand.
    pub secrets: Vec<(String, Vec<u8>)>,
}

impl CommandContext {
    /// libvirt's `qemuxmlconftest` world: QEMU 9.1, domain id -1, fixed
    /// fds, user `test`.
    pub fn test() -> CommandContext {
        CommandContext {
            emulator: "/usr/bin/qemu-system-x86_64".to_owned(),
            domain_id: -1,
            lib_dir: "/var/lib/libvirt/qemu".to_owned(),
            channel_dir: "/var/run/libvirt/qemu/channel".to_owned(),
            path_env: "/bin".to_owned(),
            user: "test".to_owned(),
            caps: QemuCaps {
                version: (9, 1, 0),
                host_model_cpu: Some(TEST_HOST_MODEL.to_owned()),
            },
            conf: QemuConf::default(),
            fds: Fds::default(),
            kvm: true,
            vhost_net: true,
            now: 1_234_567_890,
            // TZ=VIR00:30: local time is 30 minutes behind UTC.
            utc_offset: -1800,
            network_addresses: Vec::new(),
            // libvirt's mocked random bytes are 00 01 02 ...
            master_key: std::array::from_fn(|i| u8::try_from(i).unwrap_or(0)),
            secret_iv: std::array::from_fn(|i| u8::try_from(i).unwrap_or(0)),
            secrets: Vec::new(),
        }
    }

    /// A secret encrypted for QEMU: `-object secret` props with `id`.
    ///
    /// # Errors
    /// When the secret is unknown.
    pub fn secret_object(&self, id: &str, uuid: &str) -> Result<Props> {
        let value = self
            .secrets
            .iter()
            .find(|(u, _)| u == uuid)
            .map(|(_, v)| v)
            .ok_or_else(|| BuildError::Unsupported(format!("secret '{uuid}' is not known")))?;
        let data = secret::aes256_cbc_encrypt(&self.master_key, &self.secret_iv, value);
        Ok(Props::new()
            .s("qom-type", "secret")
            .s("id", id)
            .s("data", secret::base64(&data))
            .s("keyid", "masterKey0")
            .s("iv", secret::base64(&self.secret_iv))
            .s("format", "base64"))
    }

    /// `-object tls-creds-x509` with `id` (and its password secret, when
    /// qemu.conf names one).
    ///
    /// # Errors
    /// An unknown secret.
    pub fn tls_objects(
        &self,
        args: &mut Args,
        id: &str,
        dir: &str,
        listen: bool,
        verify: bool,
        secret: Option<&str>,
    ) -> Result<()> {
        let mut creds = Props::new()
            .s("qom-type", "tls-creds-x509")
            .s("id", id)
            .s("dir", dir)
            .s("endpoint", if listen { "server" } else { "client" })
            .b("verify-peer", verify);
        if let Some(uuid) = secret {
            let sid = format!("{id}-secret0");
            args.object(&self.secret_object(&sid, uuid)?);
            creds = creds.s("passwordid", sid);
        }
        args.object(&creds);
        Ok(())
    }

    /// The per-domain directory `<libDir>/domain-<id>-<name[..20]>`.
    pub fn domain_dir(&self, def: &DomainDef) -> String {
        let short: String = def.name.chars().take(20).collect();
        format!("{}/domain-{}-{}", self.lib_dir, self.domain_id, short)
    }
}

/// The CPU that `host-model` means with the corpus capabilities (QEMU
/// 9.1.0 on the fake AMD host of `caps_9.1.0_x86_64.xml`).
const TEST_HOST_MODEL: &str = "EPYC-Rome,x2apic=on,tsc-deadline=on,hypervisor=on,tsc-adjust=on,stibp=on,arch-capabilities=on,ssbd=on,cmp-legacy=on,overflow-recov=on,succor=on,amd-ssbd=on,virt-ssbd=on,lbrv=on,tsc-scale=on,vmcb-clean=on,flushbyasid=on,pause-filter=on,pfthreshold=on,v-vmsave-vmload=on,vgif=on,svme-addr-chk=on,lfence-always-serializing=on,null-sel-clr-base=on,rdctl-no=on,skip-l1dfl-vmentry=on,mds-no=on,pschange-mc-no=on,gds-no=on,rfds-no=on,xsaves=off";

/// A built command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCommand {
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// The emulator.
    pub program: String,
    /// The arguments.
    pub args: Vec<String>,
    /// The descriptors the arguments name, which the launcher must open
    /// and hand to QEMU at these numbers.
    pub fds: Vec<FdRequest>,
}

/// A file descriptor the command refers to by number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdRequest {
    /// The QMP monitor's listening socket (`-chardev socket,fd=N`).
    Monitor {
        /// Its number in QEMU.
        fd: i32,
    },
    /// A file of a `file` character device (`-add-fd`), opened for
    /// writing, appending or truncating.
    ChardevFile {
        /// Its number in QEMU.
        fd: i32,
        /// The file.
        path: String,
        /// Append (`append='on'`) instead of truncating.
        append: bool,
    },
    /// A listening UNIX socket of a character device.
    ChardevListen {
        /// Its number in QEMU.
        fd: i32,
        /// Where to bind it, when the definition says.
        path: Option<String>,
    },
    /// A tap device of the `index`-th interface.
    Tap {
        /// Its number in QEMU.
        fd: i32,
        /// The interface's position among the interfaces.
        index: usize,
    },
    /// A vhost-net descriptor of the `index`-th interface.
    Vhost {
        /// Its number in QEMU.
        fd: i32,
        /// The interface's position among the interfaces.
        index: usize,
    },
}

/// Why no command could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The definition uses something the builder does not support.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// The definition is inconsistent (e.g. a device without the address
    /// post-parse should have given it).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of the builders.
pub type Result<T> = std::result::Result<T, BuildError>;

/// Builds the command line for `def`.
///
/// # Errors
/// [`BuildError::Unsupported`] for configurations the builder does not
/// handle yet; [`BuildError::Internal`] for definitions that did not go
/// through post-parse.
pub fn build(def: &DomainDef, ctx: &CommandContext) -> Result<QemuCommand> {
    check_supported(def)?;
    let b = Builder::new(def, ctx);
    let mut args = Args::default();
    machine::build_head(&b, &mut args)?;
    controllers::build(&b, &mut args)?;
    disk::build(&b, &mut args)?;
    net::build(&b, &mut args)?;
    chardev::build(&b, &mut args)?;
    input::build(&b, &mut args)?;
    misc::build_audio(&b, &mut args)?;
    graphics::build_graphics(&b, &mut args)?;
    graphics::build_video(&b, &mut args)?;
    misc::build_tail(&b, &mut args)?;
    Ok(QemuCommand {
        env: env(def, ctx),
        program: def.emulator.clone().unwrap_or_else(|| ctx.emulator.clone()),
        args: args.args,
        fds: args.fds,
    })
}

/// Refuses what the builder cannot express yet, rather than starting a
/// guest without it.
fn check_supported(def: &DomainDef) -> Result<()> {
    let unsupported = |what: &str| {
        Err(BuildError::Unsupported(format!(
            "{what} is not supported yet"
        )))
    };
    for d in &def.devices {
        match d {
            Device::Disk(disk) => {
                let src = &disk.src;
                if src.encryption.is_some() || src.slice.is_some() || src.auth.is_some() {
                    return unsupported("encrypted, sliced or authenticated disk storage");
                }
                if src
                    .backing
                    .as_ref()
                    .is_some_and(|b| b.kind != common::domain::device::storage::StorageType::None)
                {
                    return unsupported("disk backing chains");
                }
            }
            Device::Controller(_)
            | Device::Interface(_)
            | Device::Input(_)
            | Device::Audio(_)
            | Device::Graphics(_)
            | Device::Video(_)
            | Device::Serial(_)
            | Device::Console(_)
            | Device::Channel(_)
            | Device::Watchdog(_)
            | Device::Memballoon(_)
            | Device::Rng(_) => {}
            Device::Panic(p)
                if matches!(
                    p.model,
                    None | Some(common::domain::device::panic::PanicModel::Isa)
                ) => {}
            other => return unsupported(&format!("<{}>", other.element_name())),
        }
    }
    if def.os.loader.is_some() || def.os.firmware.is_some() {
        return unsupported("firmware selection");
    }
    if def.cpu.as_ref().is_some_and(|c| c.numa.is_some()) {
        return unsupported("guest NUMA topology");
    }
    if !def.memory_backing.hugepages.is_empty() || def.memory_backing.source.is_some() {
        return unsupported("memory backing");
    }
    if !def.iothreads.is_empty() {
        return unsupported("I/O threads");
    }
    if !def.sysinfo.is_empty() || def.os.smbios.is_some() {
        return unsupported("SMBIOS");
    }
    if def.memory.max_memory > 0 {
        return unsupported("memory hotplug");
    }
    Ok(())
}

fn env(def: &DomainDef, ctx: &CommandContext) -> Vec<(String, String)> {
    let dir = ctx.domain_dir(def);
    let mut env = vec![
        ("LC_ALL".to_owned(), "C".to_owned()),
        ("PATH".to_owned(), ctx.path_env.clone()),
        ("HOME".to_owned(), dir.clone()),
        ("USER".to_owned(), ctx.user.clone()),
        ("LOGNAME".to_owned(), ctx.user.clone()),
        ("XDG_DATA_HOME".to_owned(), format!("{dir}/.local/share")),
        ("XDG_CACHE_HOME".to_owned(), format!("{dir}/.cache")),
        ("XDG_CONFIG_HOME".to_owned(), format!("{dir}/.config")),
    ];
    if let common::domain::clock::ClockOffset::Timezone(tz) = &def.clock.offset {
        env.push(("TZ".to_owned(), tz.clone()));
    }
    let vnc = def.devices.iter().any(|d| {
        matches!(d, Device::Graphics(g) if g.kind == Some(common::domain::device::graphics::GraphicsType::Vnc))
    });
    if vnc && ctx.conf.vnc_sasl {
        env.push(("SASL_CONF_PATH".to_owned(), ctx.conf.sasl_dir.clone()));
    }
    env
}

// === shared helpers ===

/// The argument list under construction, and the descriptors it names.
#[derive(Debug, Default)]
pub struct Args {
    args: Vec<String>,
    fds: Vec<FdRequest>,
}

impl Args {
    /// Adds an option and its value.
    pub fn opt(&mut self, name: &str, value: impl Into<String>) {
        self.args.push(name.to_owned());
        self.args.push(value.into());
    }

    /// Adds a flag.
    pub fn flag(&mut self, name: &str) {
        self.args.push(name.to_owned());
    }

    /// Records a descriptor the arguments refer to.
    pub fn fd(&mut self, req: FdRequest) {
        self.fds.push(req);
    }

    /// Adds `-device JSON`.
    pub fn device(&mut self, p: &Props) {
        self.opt("-device", p.to_json());
    }

    /// Adds `-object JSON`.
    pub fn object(&mut self, p: &Props) {
        self.opt("-object", p.to_json());
    }
}

/// The definition with what the builders derive from it.
#[derive(Debug)]
pub struct Builder<'a> {
    /// The definition.
    pub def: &'a DomainDef,
    /// The context.
    pub ctx: &'a CommandContext,
    /// Ports on USB bus 0 for USB devices without an address.
    usb_ports: Vec<(*const DeviceInfo, (u32, u32))>,
}

impl<'a> Builder<'a> {
    fn new(def: &'a DomainDef, ctx: &'a CommandContext) -> Builder<'a> {
        Builder {
            def,
            ctx,
            usb_ports: assign_usb_ports(def),
        }
    }

    /// `"bus"`/`"port"` of a USB device: its own address, or the port
    /// libvirt would assign at start-up.
    pub fn usb_props(&self, info: &DeviceInfo) -> Props {
        if matches!(info.address, Some(Address::Usb { .. })) {
            return self.address_props(info);
        }
        let key: *const DeviceInfo = info;
        match self.usb_ports.iter().find(|(k, _)| std::ptr::eq(*k, key)) {
            Some((_, (bus, port))) => Props::new()
                .s("bus", format!("{}.0", usb_alias(*bus)))
                .s("port", port.to_string()),
            None => Props::new(),
        }
    }

    /// The machine type as written.
    pub fn machine(&self) -> &str {
        self.def.os.machine.as_deref().unwrap_or("pc")
    }

    /// Whether the machine is a Q35 one.
    pub fn is_q35(&self) -> bool {
        let m = self.machine();
        m == "q35" || m.starts_with("pc-q35")
    }

    /// The per-domain directory.
    pub fn domain_dir(&self) -> String {
        self.ctx.domain_dir(self.def)
    }

    /// The QEMU bus id of PCI bus `index`.
    pub fn pci_bus_name(&self, index: u32) -> String {
        let root_is_pcie = self.def.controllers().any(|c| {
            c.kind == ControllerType::Pci
                && c.index == index
                && matches!(c.model, Some(ControllerModel::Pci(PciModel::PcieRoot)))
        });
        if index == 0 && (root_is_pcie || (self.is_q35() && !self.has_pci_root())) {
            "pcie.0".to_owned()
        } else {
            format!("pci.{index}")
        }
    }

    fn has_pci_root(&self) -> bool {
        self.def.controllers().any(|c| {
            c.kind == ControllerType::Pci
                && c.index == 0
                && matches!(c.model, Some(ControllerModel::Pci(PciModel::PciRoot)))
        })
    }

    /// `"bus"`, `"multifunction"`, `"addr"` (and `"port"` for USB) of a
    /// device address.
    pub fn address_props(&self, info: &DeviceInfo) -> Props {
        match &info.address {
            Some(Address::Pci(a)) => self.pci_props(a),
            Some(Address::Usb { bus, port }) => {
                let ports: Vec<String> = port.iter().map(u32::to_string).collect();
                Props::new()
                    .s("bus", format!("{}.0", usb_alias(*bus)))
                    .s("port", ports.join("."))
            }
            _ => Props::new(),
        }
    }

    /// The props of a PCI address.
    pub fn pci_props(&self, a: &PciAddress) -> Props {
        let mut p = Props::new().s("bus", self.pci_bus_name(a.bus));
        if let Some(m) = a.multifunction {
            p = p.b("multifunction", m);
        }
        p.s("addr", pci_addr(a))
    }

    /// The devices in definition order.
    pub fn devices(&self) -> impl Iterator<Item = &'a Device> {
        self.def.devices.iter()
    }
}

/// Gives every USB device without an address the first free port,
/// controller by controller (libvirt assigns them at start-up, disks
/// before inputs before serial ports; the definition is not changed).
fn assign_usb_ports(def: &DomainDef) -> Vec<(*const DeviceInfo, (u32, u32))> {
    use common::domain::device::chr::{ChrTarget, SerialTargetType};
    use common::domain::device::controller::UsbModel;
    use common::domain::device::disk::DiskBus;
    use common::domain::device::input::InputBus;
    // (bus index, port count) of every root USB controller.
    let mut buses: Vec<(u32, u32)> = def
        .controllers()
        .filter(|c| c.kind == ControllerType::Usb && c.info.master_startport.is_none())
        .filter_map(|c| {
            let model = match c.model {
                Some(ControllerModel::Usb(m)) => m,
                _ => UsbModel::Piix3Uhci,
            };
            let ports = match model {
                UsbModel::None => return None,
                UsbModel::Ehci | UsbModel::Ich9Ehci1 => 6,
                UsbModel::PciOhci => 3,
                UsbModel::NecXhci | UsbModel::QemuXhci => c.ports.unwrap_or(4),
                _ => 2,
            };
            Some((c.index, ports))
        })
        .collect();
    buses.sort_unstable();
    buses.dedup_by_key(|b| b.0);
    let usb_infos = |pass: u8| -> Vec<&DeviceInfo> {
        def.devices
            .iter()
            .filter_map(|d| match (pass, d) {
                (0, Device::Disk(x)) if x.bus() == DiskBus::Usb => Some(&x.info),
                (1, Device::Input(x)) if x.bus == InputBus::Usb => Some(&x.info),
                (2, Device::Serial(x))
                    if matches!(
                        x.target,
                        ChrTarget::Serial {
                            kind: Some(SerialTargetType::UsbSerial),
                            ..
                        }
                    ) =>
                {
                    Some(&x.info)
                }
                _ => None,
            })
            .collect()
    };
    let infos: Vec<&DeviceInfo> = (0..3).flat_map(usb_infos).collect();
    let mut used: Vec<(u32, u32)> = infos
        .iter()
        .filter_map(|i| match &i.address {
            Some(Address::Usb { bus, port }) => port.first().map(|p| (*bus, *p)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for info in infos.into_iter().filter(|i| i.address.is_none()) {
        let free = buses.iter().find_map(|&(bus, n)| {
            (1..=n)
                .find(|p| !used.contains(&(bus, *p)))
                .map(|p| (bus, p))
        });
        if let Some(slot) = free {
            used.push(slot);
            out.push((std::ptr::from_ref(info), slot));
        }
    }
    out
}

/// `0xS` or `0xS.0xF`.
pub fn pci_addr(a: &PciAddress) -> String {
    if a.function == 0 {
        format!("0x{:x}", a.slot)
    } else {
        format!("0x{:x}.0x{:x}", a.slot, a.function)
    }
}

/// The alias of USB controller `index`.
pub fn usb_alias(index: u32) -> String {
    if index == 0 {
        "usb".to_owned()
    } else {
        format!("usb{index}")
    }
}

/// Escapes commas for QEMU's `key=value,...` syntax.
pub fn qemu_escape(s: &str) -> String {
    s.replace(',', ",,")
}

/// `on`/`off`.
pub fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use common::domain::TestHooks;
    use common::xml::ParseFlags;

    use super::*;

    const XML: &str = "<domain type='kvm'>
  <name>demo,1</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <memory unit='KiB'>219100</memory>
  <vcpu placement='static' current='1'>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <clock offset='variable' adjustment='100' basis='utc'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/img/a b.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </disk>
    <controller type='usb' index='0' model='none'/>
    <controller type='pci' index='0' model='pci-root'/>
    <memballoon model='none'/>
  </devices>
</domain>";

    fn build_test() -> QemuCommand {
        let def = DomainDef::parse_str(XML, ParseFlags::default(), &TestHooks).expect("valid XML");
        build(&def, &CommandContext::test()).expect("buildable")
    }

    fn value_of<'a>(cmd: &'a QemuCommand, opt: &str) -> Vec<&'a str> {
        cmd.args
            .windows(2)
            .filter(|w| w[0] == opt)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn head_and_identity() {
        let cmd = build_test();
        assert_eq!(cmd.program, "/usr/bin/qemu-system-x86_64");
        assert_eq!(cmd.env[2].1, "/var/lib/libvirt/qemu/domain--1-demo,1");
        assert_eq!(value_of(&cmd, "-name"), ["guest=demo,,1,debug-threads=on"]);
        assert_eq!(value_of(&cmd, "-accel"), ["kvm"]);
        // Memory is rounded up to whole MiB.
        assert_eq!(value_of(&cmd, "-m"), ["size=219136k"]);
        assert_eq!(
            value_of(&cmd, "-smp"),
            ["1,maxcpus=2,sockets=2,cores=1,threads=1"]
        );
        assert_eq!(value_of(&cmd, "-rtc"), ["base=2009-02-13T23:33:10"]);
        assert_eq!(cmd.args.last().map(String::as_str), Some("timestamp=on"));
    }

    #[test]
    fn qcow2_disk_has_format_layer() {
        let cmd = build_test();
        let bd = value_of(&cmd, "-blockdev");
        assert_eq!(
            bd,
            [
                r#"{"driver":"file","filename":"/img/a b.qcow2","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap","cache":{"direct":true,"no-flush":false}}"#,
                r#"{"node-name":"libvirt-1-format","read-only":false,"cache":{"direct":true,"no-flush":false},"driver":"qcow2","file":"libvirt-1-storage"}"#,
            ]
        );
        let dev = value_of(&cmd, "-device");
        assert_eq!(
            dev,
            [
                r#"{"driver":"virtio-blk-pci","bus":"pci.0","addr":"0x3","drive":"libvirt-1-format","id":"virtio-disk0","bootindex":1,"write-cache":"on"}"#
            ]
        );
    }

    #[test]
    fn an_empty_backing_store_ends_the_chain_on_the_format_node() {
        let build_with = |xml: &str| {
            let def = DomainDef::parse_str(xml, ParseFlags::default(), &TestHooks).expect("valid");
            build(&def, &CommandContext::test()).expect("buildable")
        };
        let xml = XML.replace(
            "<target dev='vda' bus='virtio'/>",
            "<backingStore/><target dev='vda' bus='virtio'/>",
        );
        let cmd = build_with(&xml);
        assert_eq!(
            value_of(&cmd, "-blockdev")[1],
            r#"{"node-name":"libvirt-1-format","read-only":false,"cache":{"direct":true,"no-flush":false},"driver":"qcow2","file":"libvirt-1-storage","backing":null}"#
        );
        // Without the terminator QEMU follows the image's own backing.
        assert!(!value_of(&build_test(), "-blockdev")[1].contains("backing"));
        // A raw image has no format node and no backing to end.
        let raw = build_with(&xml.replace("type='qcow2'", "type='raw'"));
        assert!(
            value_of(&raw, "-blockdev")
                .iter()
                .all(|b| !b.contains("backing")),
            "{:?}",
            value_of(&raw, "-blockdev")
        );
    }

    #[test]
    fn usb_ports_disks_before_inputs() {
        let xml = XML
            .replace(
                "<controller type='usb' index='0' model='none'/>",
                "<controller type='usb' index='0' model='piix3-uhci'>\
                 <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>\
                 </controller><input type='tablet' bus='usb'/>",
            )
            .replace(
                "<memballoon",
                "<disk type='file' device='disk'><source file='/u.img'/>\
                 <target dev='sda' bus='usb'/></disk><memballoon",
            );
        let def = DomainDef::parse_str(&xml, ParseFlags::default(), &TestHooks).expect("valid XML");
        let cmd = build(&def, &CommandContext::test()).expect("buildable");
        let dev = value_of(&cmd, "-device");
        assert!(
            dev.iter()
                .any(|d| d.contains(r#""usb-storage","bus":"usb.0","port":"1""#))
        );
        assert!(
            dev.iter()
                .any(|d| d.contains(r#""id":"input0","bus":"usb.0","port":"2""#))
        );
    }

    #[test]
    fn builder_does_not_touch_the_definition() {
        let def = DomainDef::parse_str(XML, ParseFlags::default(), &TestHooks).expect("valid XML");
        let before = def.clone();
        let _ = build(&def, &CommandContext::test());
        assert_eq!(def, before);
    }
}
