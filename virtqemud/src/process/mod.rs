//! QEMU processes: starting one in phases ([`start`]), watching it by
//! pidfd ([`pidfd`]) and its status file ([`status`]).
//!
//! The start phases are types; each is produced only by the one before it
//! and consumed by the next, so the order cannot be written wrongly:
//!
//! ```text
//!  prepare_domain(def, id, env)  -> PreparedDomain   live definition, id, paths,
//!                                                    master key, command line;
//!                                                    no host changes
//!  PreparedDomain::prepare_host  -> PreparedHost     domain directory, key file,
//!                                                    monitor socket, chardev files,
//!                                                    log file (undone on drop)
//!  PreparedHost::launch          -> Launched         QEMU spawned with -S (killed
//!                                                    and reaped on drop)
//!  Launched::connect             -> Connected        QMP negotiated
//!  Connected::finish(paused)     -> Started          `cont` unless paused; the
//!                                                    guards are disarmed
//! ```
//!
//! A failure in any phase drops what the earlier phases built, in reverse:
//! the process is killed, then the files and sockets are removed. Nothing
//! but the log file stays behind.

pub mod pidfd;
pub mod shaping;
pub mod start;
pub mod status;
pub mod tap;

use std::path::PathBuf;

use crate::command::{CommandContext, Fds, QemuCaps, QemuConf};
use common::domain::DomainDef;

/// Where a driver keeps its per-domain files, and what goes into every
/// command line.
#[derive(Clone, Debug)]
pub struct StartEnv {
    /// libvirt's libDir: `<state>/qemu` (domain directories).
    pub lib_dir: PathBuf,
    /// `<run>/qemu`: status files.
    pub run_dir: PathBuf,
    /// `<log>/qemu`: one log per domain.
    pub log_dir: PathBuf,
    /// The emulator when a definition names none.
    pub emulator: String,
    /// QEMU's capabilities, as the builder needs them.
    pub caps: QemuCaps,
    /// qemu.conf.
    pub conf: QemuConf,
    /// Whether KVM is usable.
    pub kvm: bool,
}

/// The descriptor numbers QEMU gets from us (libvirt's test world uses
/// others; these only need to be distinct and above stdio).
pub const FDS: Fds = Fds {
    monitor: 3,
    chardev_listen: 4,
    add_fd_first: 10,
    tap_first: 100,
    bridge_tap_first: 150,
    vhost_first: 200,
};

/// The host side of one NIC, decided before the start: the tap it gets
/// and the bridge it joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetPlan {
    /// The interface's position among the domain's interfaces.
    pub index: usize,
    /// The tap device's name (`<target dev=>`).
    pub tap: String,
    /// The bridge to attach it to (`None` for `type='ethernet'`).
    pub bridge: Option<String>,
    /// The bandwidth put on the tap: the NIC's own `<bandwidth>`, else
    /// its port's (a network's portgroup).
    pub bandwidth: Option<common::network::Bandwidth>,
}

/// The files of one running domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPaths {
    /// `<lib>/domain-<id>-<name[..20]>`: QEMU's HOME, the master key and
    /// the monitor socket.
    pub domain_dir: PathBuf,
    /// The QMP socket.
    pub monitor: PathBuf,
    /// QEMU's log (stdout and stderr), kept after it stops.
    pub log: PathBuf,
}

impl StartEnv {
    /// The command context of domain `id`.
    pub fn command_context(&self, id: i32) -> CommandContext {
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "root".to_owned());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
            .unwrap_or(0);
        CommandContext {
            emulator: self.emulator.clone(),
            domain_id: id,
            lib_dir: self.lib_dir.display().to_string(),
            channel_dir: self.lib_dir.join("channel/target").display().to_string(),
            path_env: std::env::var("PATH")
                .unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".to_owned()),
            user,
            caps: self.caps.clone(),
            conf: self.conf.clone(),
            fds: FDS,
            kvm: self.kvm,
            vhost_net: false,
            now,
            utc_offset: 0,
            network_addresses: Vec::new(),
            master_key: [0; 32],
            secret_iv: [0; 16],
            secrets: Vec::new(),
        }
    }

    /// The files of domain `def` running as `id`.
    pub fn paths(&self, def: &DomainDef, id: i32) -> DomainPaths {
        let short: String = def.name.chars().take(20).collect();
        let domain_dir = self.lib_dir.join(format!("domain-{id}-{short}"));
        DomainPaths {
            monitor: domain_dir.join("monitor.sock"),
            domain_dir,
            log: self.log_dir.join(format!("{}.log", def.name)),
        }
    }

    /// The status file of domain `name`.
    pub fn status_file(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.xml"))
    }
}
