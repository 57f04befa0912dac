//! Where everything lives: the system and session path layouts.
//!
//! The layout mirrors libvirt's, under our own `virt` directory names so that
//! a host can run libvirt and these daemons side by side:
//!
//! | what            | system mode (root)            | session mode                       |
//! |-----------------|-------------------------------|------------------------------------|
//! | config          | `/etc/virt`                   | `$XDG_CONFIG_HOME/virt` (`~/.config/virt`) |
//! | runtime, sockets| `/run/virt`                   | `$XDG_RUNTIME_DIR/virt`            |
//! | state           | `/var/lib/virt`               | `$XDG_DATA_HOME/virt` (`~/.local/share/virt`) |
//! | logs            | `/var/log/virt`               | `$XDG_CACHE_HOME/virt/log` (`~/.cache/virt/log`) |
//! | pid file        | `/run/<daemon>.pid`           | `$XDG_RUNTIME_DIR/virt/<daemon>.pid` |
//! | client/server PKI | `/etc/pki/CA`, `/etc/pki/virt` | `~/.pki/virt`                    |
//!
//! Sockets of daemon `D` are `<run>/D-sock` (read-write), `<run>/D-sock-ro`
//! (read-only) and `<run>/D-admin-sock` (admin), as libvirt names them.
//!
//! `VIRT_ROOT=DIR` moves every system-mode path under `DIR` (so
//! `/run/virt` becomes `DIR/run/virt`), which lets several whole stacks run
//! side by side; tests always use it. When `VIRT_ROOT` is set the system
//! layout is used whatever the caller's uid.

use std::path::{Path, PathBuf};

/// The environment variable that relocates every system-mode path.
pub const VIRT_ROOT_ENV: &str = "VIRT_ROOT";

/// System (privileged) or session (per-user) mode, as libvirt's
/// `qemu:///system` and `qemu:///session`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Privileged daemons managing the host.
    System,
    /// Per-user daemons.
    Session,
}

impl Mode {
    /// The mode a daemon runs in by default: system when running as root or
    /// when `VIRT_ROOT` is set, session otherwise.
    pub fn detect() -> Mode {
        if std::env::var_os(VIRT_ROOT_ENV).is_some() || nix::unistd::geteuid().is_root() {
            Mode::System
        } else {
            Mode::Session
        }
    }

    /// `"system"` or `"session"`, as in a connection URI path.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::System => "system",
            Mode::Session => "session",
        }
    }
}

/// The kind of a listening socket, which decides what may be called on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// Full access to the daemon's service (`D-sock`).
    ReadWrite,
    /// Read-only methods only (`D-sock-ro`).
    ReadOnly,
    /// The admin service only (`D-admin-sock`).
    Admin,
    /// TCP (virtproxyd only), access as read-write.
    Tcp,
    /// TLS (virtproxyd only), access as read-write.
    Tls,
}

impl SocketKind {
    /// Short name used in logs and admin output.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketKind::ReadWrite => "rw",
            SocketKind::ReadOnly => "ro",
            SocketKind::Admin => "admin",
            SocketKind::Tcp => "tcp",
            SocketKind::Tls => "tls",
        }
    }
}

/// Every directory a daemon or client needs, resolved once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// System or session.
    pub mode: Mode,
    /// `VIRT_ROOT` (system mode only), if set.
    pub root: Option<PathBuf>,
    /// Configuration files and persistent definitions.
    pub config_dir: PathBuf,
    /// Sockets, pid files and live status.
    pub run_dir: PathBuf,
    /// Persistent state (images, leases, ...).
    pub state_dir: PathBuf,
    /// Log files.
    pub log_dir: PathBuf,
    /// Where the CA certificate lives (`cacert.pem`, `cacrl.pem`).
    pub ca_dir: PathBuf,
    /// Where certificates and keys of the daemons/clients live.
    pub pki_dir: PathBuf,
    /// Directory of daemon pid files.
    pub pid_dir: PathBuf,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

/// Joins an absolute system path under an optional root.
fn rooted(root: Option<&Path>, abs: &str) -> PathBuf {
    match root {
        Some(r) => r.join(abs.trim_start_matches('/')),
        None => PathBuf::from(abs),
    }
}

impl Paths {
    /// Paths for `mode`, reading `VIRT_ROOT`, `HOME` and the XDG variables
    /// from the environment.
    pub fn from_env(mode: Mode) -> Paths {
        let root = std::env::var_os(VIRT_ROOT_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        match mode {
            Mode::System => Paths::system(root.as_deref()),
            Mode::Session => {
                let run = match std::env::var_os("XDG_RUNTIME_DIR") {
                    Some(v) if !v.is_empty() => PathBuf::from(v).join("virt"),
                    _ => xdg("XDG_CACHE_HOME", ".cache").join("virt").join("run"),
                };
                Paths {
                    mode,
                    root: None,
                    config_dir: xdg("XDG_CONFIG_HOME", ".config").join("virt"),
                    pid_dir: run.clone(),
                    run_dir: run,
                    state_dir: xdg("XDG_DATA_HOME", ".local/share").join("virt"),
                    log_dir: xdg("XDG_CACHE_HOME", ".cache").join("virt").join("log"),
                    ca_dir: home().join(".pki").join("virt"),
                    pki_dir: home().join(".pki").join("virt"),
                }
            }
        }
    }

    /// The system layout, under `root` when given.
    pub fn system(root: Option<&Path>) -> Paths {
        Paths {
            mode: Mode::System,
            root: root.map(Path::to_path_buf),
            config_dir: rooted(root, "/etc/virt"),
            run_dir: rooted(root, "/run/virt"),
            state_dir: rooted(root, "/var/lib/virt"),
            log_dir: rooted(root, "/var/log/virt"),
            ca_dir: rooted(root, "/etc/pki/CA"),
            pki_dir: rooted(root, "/etc/pki/virt"),
            pid_dir: rooted(root, "/run"),
        }
    }

    /// The socket of `daemon` (e.g. `"virtqemud"`) of the given kind.
    ///
    /// # Examples
    /// ```
    /// use common::paths::{Paths, SocketKind};
    /// let p = Paths::system(Some(std::path::Path::new("/tmp/r")));
    /// assert_eq!(
    ///     p.socket("virtqemud", SocketKind::ReadOnly),
    ///     std::path::PathBuf::from("/tmp/r/run/virt/virtqemud-sock-ro")
    /// );
    /// ```
    pub fn socket(&self, daemon: &str, kind: SocketKind) -> PathBuf {
        let name = match kind {
            SocketKind::ReadWrite | SocketKind::Tcp | SocketKind::Tls => format!("{daemon}-sock"),
            SocketKind::ReadOnly => format!("{daemon}-sock-ro"),
            SocketKind::Admin => format!("{daemon}-admin-sock"),
        };
        self.run_dir.join(name)
    }

    /// The default pid file of `daemon`.
    pub fn pid_file(&self, daemon: &str) -> PathBuf {
        self.pid_dir.join(format!("{daemon}.pid"))
    }

    /// The default config file of `daemon`, e.g. `/etc/virt/virtqemud.conf`.
    pub fn config_file(&self, daemon: &str) -> PathBuf {
        self.config_dir.join(format!("{daemon}.conf"))
    }

    /// A driver's directory of persistent definitions, e.g. `/etc/virt/qemu`.
    pub fn driver_config_dir(&self, driver: &str) -> PathBuf {
        self.config_dir.join(driver)
    }

    /// A driver's runtime directory (status files, monitor sockets), e.g. `/run/virt/qemu`.
    pub fn driver_run_dir(&self, driver: &str) -> PathBuf {
        self.run_dir.join(driver)
    }

    /// A driver's state directory, e.g. `/var/lib/virt/qemu`.
    pub fn driver_state_dir(&self, driver: &str) -> PathBuf {
        self.state_dir.join(driver)
    }

    /// A driver's log directory, e.g. `/var/log/virt/qemu`.
    pub fn driver_log_dir(&self, driver: &str) -> PathBuf {
        self.log_dir.join(driver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_paths_move_under_root() {
        let p = Paths::system(Some(Path::new("/tmp/x")));
        assert_eq!(p.config_dir, PathBuf::from("/tmp/x/etc/virt"));
        assert_eq!(p.run_dir, PathBuf::from("/tmp/x/run/virt"));
        assert_eq!(p.state_dir, PathBuf::from("/tmp/x/var/lib/virt"));
        assert_eq!(p.log_dir, PathBuf::from("/tmp/x/var/log/virt"));
        assert_eq!(
            p.pid_file("virtqemud"),
            PathBuf::from("/tmp/x/run/virtqemud.pid")
        );
        assert_eq!(
            p.socket("virtstoraged", SocketKind::Admin),
            PathBuf::from("/tmp/x/run/virt/virtstoraged-admin-sock")
        );
    }

    #[test]
    fn system_paths_without_root_are_absolute() {
        let p = Paths::system(None);
        assert_eq!(
            p.socket("virtqemud", SocketKind::ReadWrite),
            PathBuf::from("/run/virt/virtqemud-sock")
        );
        assert_eq!(
            p.config_file("virtproxyd"),
            PathBuf::from("/etc/virt/virtproxyd.conf")
        );
    }
}
