//! dnsmasq per network, started as libvirt starts it:
//! `dnsmasq --conf-file=<dir>/<net>.conf --leasefile-ro
//! --dhcp-script=<leases helper>` with `VIR_BRIDGE_NAME` in its
//! environment. The configuration is `common::network::dnsmasq`'s; the
//! pid file is `<run>/network/<net>.pid` (the conf's `pid-file=`).
//!
//! dnsmasq daemonizes, and its first process exits only once the daemon
//! has bound its sockets and written the pid file, so when the command
//! returns success the pid file names the running dnsmasq. It survives
//! virtnetworkd (restarts adopt it by pid, start time and command line).
//!
//! dnsmasq drops its privileges (to `nobody`) and re-reads the hosts
//! files on SIGHUP as that user: they are written 0644, in directories
//! made 0755.
//!
//! Blocking; the driver calls these from `spawn_blocking`.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::network::NetworkDef;
use common::network::dnsmasq::{self as conf, DnsmasqPaths};
use nix::sys::signal::Signal;

use crate::leases;
use crate::pidfd;

/// A failure around dnsmasq.
#[derive(Debug, thiserror::Error)]
pub enum DnsmasqError {
    /// The configuration could not be made.
    #[error("{0}")]
    Config(#[from] conf::DnsmasqError),
    /// A file could not be written.
    #[error("couldn't write dnsmasq file '{}': {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// dnsmasq could not be run.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        source: std::io::Error,
    },
    /// dnsmasq exited with an error.
    #[error("dnsmasq failed to start: {0}")]
    Failed(String),
    /// dnsmasq started but left no readable pid file.
    #[error("cannot read dnsmasq pid file '{}'", .0.display())]
    PidFile(PathBuf),
    /// It could not be signalled.
    #[error("cannot signal dnsmasq (pid {pid}): {source}")]
    Signal {
        /// Its pid.
        pid: i32,
        /// Why.
        source: std::io::Error,
    },
}

/// What dnsmasq prints when an interface vanished while it listed them.
const INTERFACE_RACE: &str = "failed to find list of interfaces: No such device";
/// How often a start that lost that race is tried in all.
const RACE_TRIES: u64 = 4;

/// Where a network's dnsmasq files are.
#[derive(Clone, Debug)]
pub struct DnsmasqDirs {
    /// `<state>/dnsmasq`: conf, hosts files, lease files.
    pub state_dir: PathBuf,
    /// `<run>/network`: pid files.
    pub pid_dir: PathBuf,
    /// The leases helper (a symlink to our binary).
    pub helper: PathBuf,
    /// The dnsmasq binary.
    pub binary: String,
}

/// A running dnsmasq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsmasqProc {
    /// Its pid.
    pub pid: i32,
    /// Its start time (`/proc/PID/stat`), naming it across pid reuse.
    pub start_time: Option<u64>,
}

/// The dnsmasq binary: `/usr/sbin/dnsmasq` if present, else from `PATH`.
pub fn find_binary() -> String {
    for p in ["/usr/sbin/dnsmasq", "/sbin/dnsmasq", "/usr/bin/dnsmasq"] {
        if Path::new(p).is_file() {
            return p.to_owned();
        }
    }
    "dnsmasq".to_owned()
}

impl DnsmasqDirs {
    /// `<state_dir>/<net>.conf`.
    pub fn conf_file(&self, net: &str) -> PathBuf {
        self.state_dir.join(format!("{net}.conf"))
    }

    /// `<pid_dir>/<net>.pid`.
    pub fn pid_file(&self, net: &str) -> PathBuf {
        self.pid_dir.join(format!("{net}.pid"))
    }

    fn mkdirs(&self) -> Result<(), DnsmasqError> {
        for d in [&self.state_dir, &self.pid_dir] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(d)
                .map_err(|source| DnsmasqError::Write {
                    path: d.clone(),
                    source,
                })?;
        }
        // dnsmasq re-reads the hosts files as an unprivileged user.
        let _ = std::fs::set_permissions(&self.state_dir, std::fs::Permissions::from_mode(0o755));
        Ok(())
    }

    fn paths(&self, net: &str) -> (String, String) {
        (
            self.state_dir.display().to_string(),
            self.pid_file(net).display().to_string(),
        )
    }

    /// The generated files of `def` (nothing written).
    ///
    /// # Errors
    /// The configuration cannot be made.
    pub fn config(&self, def: &NetworkDef) -> Result<conf::DnsmasqConfig, DnsmasqError> {
        let (state, pid) = self.paths(&def.name);
        Ok(conf::dnsmasq_config(
            def,
            DnsmasqPaths {
                state_dir: &state,
                pid_file: Some(&pid),
            },
        )?)
    }

    /// Writes conf, hosts file and addn-hosts file of `def`.
    ///
    /// # Errors
    /// The configuration cannot be made or a file cannot be written.
    pub fn write_files(&self, def: &NetworkDef) -> Result<(), DnsmasqError> {
        self.mkdirs()?;
        let cfg = self.config(def)?;
        let (state, _) = self.paths(&def.name);
        write_file(&self.conf_file(&def.name), &cfg.conf, 0o600)?;
        write_file(
            Path::new(&conf::hostsfile_path(&state, &def.name)),
            &cfg.hostsfile,
            0o644,
        )?;
        write_file(
            Path::new(&conf::addnhosts_path(&state, &def.name)),
            &cfg.addnhosts,
            0o644,
        )?;
        Ok(())
    }

    /// Writes the files and starts dnsmasq for `def`.
    ///
    /// # Errors
    /// A file cannot be written, dnsmasq fails, or leaves no pid file.
    pub fn start(&self, def: &NetworkDef) -> Result<DnsmasqProc, DnsmasqError> {
        let child = self.spawn(def)?;
        self.finish_start(def, child)
    }

    /// The first half of [`DnsmasqDirs::start`]: files written, dnsmasq
    /// spawned (so other work can overlap its start-up).
    ///
    /// # Errors
    /// A file cannot be written or dnsmasq cannot be run.
    pub fn spawn(&self, def: &NetworkDef) -> Result<std::process::Child, DnsmasqError> {
        self.write_files(def)?;
        let pid_file = self.pid_file(&def.name);
        let _ = std::fs::remove_file(&pid_file);
        let bridge = def.bridge.name.clone().unwrap_or_default();
        let mut cmd = Command::new(&self.binary);
        cmd.arg(format!(
            "--conf-file={}",
            self.conf_file(&def.name).display()
        ))
        .arg("--leasefile-ro")
        .arg(format!("--dhcp-script={}", self.helper.display()))
        .env(leases::ENV_BRIDGE, &bridge)
        .env(leases::ENV_LEASES_DIR, &self.state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        cmd.spawn().map_err(|source| DnsmasqError::Spawn {
            binary: self.binary.clone(),
            source,
        })
    }

    /// The second half: waits for dnsmasq's first process and reads the
    /// pid file.
    ///
    /// # Errors
    /// dnsmasq failed, or left no pid file.
    pub fn finish_start(
        &self,
        def: &NetworkDef,
        mut child: std::process::Child,
    ) -> Result<DnsmasqProc, DnsmasqError> {
        let mut tries = 1;
        loop {
            match self.wait_started(def, child) {
                Err(DnsmasqError::Failed(why))
                    if tries < RACE_TRIES && why.contains(INTERFACE_RACE) =>
                {
                    // dnsmasq lists the host's interfaces and then asks
                    // about each; one removed in between (a VM's tap going
                    // away) makes it exit. That says nothing about this
                    // network: run it again.
                    tracing::info!(network = %def.name, "{why}; starting dnsmasq again");
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20 * tries));
                    child = self.spawn(def)?;
                }
                r => return r,
            }
        }
    }

    fn wait_started(
        &self,
        def: &NetworkDef,
        mut child: std::process::Child,
    ) -> Result<DnsmasqProc, DnsmasqError> {
        let status = child.wait().map_err(|source| DnsmasqError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        if !status.success() {
            // Only the first process writes here; it has exited.
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            // A dnsmasq that could not write its pid file (disk full)
            // leaves it created and empty.
            let _ = std::fs::remove_file(self.pid_file(&def.name));
            return Err(DnsmasqError::Failed(format!("{status}: {}", err.trim())));
        }
        drop(child.stderr.take());
        let pid_file = self.pid_file(&def.name);
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .ok_or_else(|| DnsmasqError::PidFile(pid_file.clone()))?;
        Ok(DnsmasqProc {
            pid,
            start_time: pidfd::start_time(pid),
        })
    }

    /// Whether `p` is still the dnsmasq of network `net` (alive, same
    /// start time, our conf file on its command line).
    pub fn is_ours(&self, net: &str, p: &DnsmasqProc) -> bool {
        if !pidfd::is_alive(p.pid, p.start_time) {
            return false;
        }
        let want = format!("--conf-file={}", self.conf_file(net).display());
        pidfd::cmdline(p.pid).contains(&want)
    }

    /// The dnsmasq of network `net` its pid file names, if it runs and is
    /// ours (see [`DnsmasqDirs::is_ours`]): one started just before the
    /// daemon died, that no status file records yet.
    pub fn from_pid_file(&self, net: &str) -> Option<DnsmasqProc> {
        let pid = std::fs::read_to_string(self.pid_file(net))
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()?;
        let p = DnsmasqProc {
            pid,
            start_time: pidfd::start_time(pid),
        };
        self.is_ours(net, &p).then_some(p)
    }

    /// Re-writes the hosts files and tells dnsmasq to re-read them
    /// (SIGHUP), as libvirt's `networkRefreshDhcpDaemon`.
    ///
    /// # Errors
    /// A file cannot be written or dnsmasq cannot be signalled.
    pub fn refresh(&self, def: &NetworkDef, p: &DnsmasqProc) -> Result<(), DnsmasqError> {
        self.write_files(def)?;
        let fd = pidfd::PidFd::open(p.pid)
            .map_err(|source| DnsmasqError::Signal { pid: p.pid, source })?;
        if !pidfd::is_alive(p.pid, p.start_time) {
            return Err(DnsmasqError::Signal {
                pid: p.pid,
                source: std::io::Error::from_raw_os_error(nix::libc::ESRCH),
            });
        }
        fd.signal(Signal::SIGHUP)
            .map_err(|source| DnsmasqError::Signal { pid: p.pid, source })
    }

    /// Stops dnsmasq (SIGTERM, SIGKILL after 3 s) and removes its pid
    /// file.
    ///
    /// # Errors
    /// It cannot be signalled.
    pub fn stop(&self, net: &str, p: &DnsmasqProc) -> Result<(), DnsmasqError> {
        pidfd::terminate(p.pid, p.start_time, Duration::from_secs(3))
            .map_err(|source| DnsmasqError::Signal { pid: p.pid, source })?;
        let _ = std::fs::remove_file(self.pid_file(net));
        Ok(())
    }

    /// Removes the files of a network that is gone (undefined): conf,
    /// hosts files, and the lease file of `bridge`.
    pub fn remove_files(&self, net: &str, bridge: Option<&str>) {
        let state = self.state_dir.display().to_string();
        for p in [
            self.conf_file(net),
            PathBuf::from(conf::hostsfile_path(&state, net)),
            PathBuf::from(conf::addnhosts_path(&state, net)),
            self.pid_file(net),
        ] {
            let _ = std::fs::remove_file(p);
        }
        if let Some(b) = bridge {
            let f = leases::status_file(&self.state_dir, b);
            let _ = std::fs::remove_file(f.with_extension("status.lock"));
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Writes `text` to `path` (temporary file renamed over it, so dnsmasq
/// never reads half a file), mode `mode`.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), DnsmasqError> {
    let err = |source| DnsmasqError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("new");
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        // No half-written file left (a full disk).
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::network::NetworkDef;
    use common::xml::ParseFlags;

    /// A stand-in dnsmasq that loses the interface race `fails` times,
    /// then starts: writes its pid file (from the conf) and exits 0.
    fn fake_dnsmasq(dir: &Path, fails: u32) -> String {
        let bin = dir.join("dnsmasq");
        let count = dir.join("runs");
        let script = format!(
            "#!/bin/sh\n\
             n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}\n\
             if [ $n -le {fails} ]; then\n\
               echo 'dnsmasq: {INTERFACE_RACE}' >&2; exit 5\n\
             fi\n\
             conf=${{1#--conf-file=}}\n\
             pidf=$(sed -n 's/^pid-file=//p' \"$conf\")\n\
             echo $$ > \"$pidf\"\n",
            count = count.display()
        );
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin.display().to_string()
    }

    fn setup(fails: u32) -> (tempfile::TempDir, DnsmasqDirs, NetworkDef) {
        let t = tempfile::tempdir().unwrap();
        let dirs = DnsmasqDirs {
            state_dir: t.path().join("state"),
            pid_dir: t.path().join("run"),
            helper: t.path().join("helper"),
            binary: fake_dnsmasq(t.path(), fails),
        };
        let def = NetworkDef::parse_str(
            "<network><name>race</name><bridge name='vtest0'/>\
             <ip address='192.168.250.1' prefix='24'>\
             <dhcp><range start='192.168.250.2' end='192.168.250.9'/></dhcp></ip></network>",
            ParseFlags::default(),
        )
        .unwrap();
        (t, dirs, def)
    }

    fn runs(t: &tempfile::TempDir) -> u32 {
        std::fs::read_to_string(t.path().join("runs"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_start_that_lost_the_interface_race_is_run_again() {
        let (t, dirs, def) = setup(2);
        let p = dirs.start(&def).expect("third run starts");
        assert!(p.pid > 0);
        assert_eq!(runs(&t), 3);
    }

    #[test]
    fn the_race_is_retried_a_bounded_number_of_times() {
        let (t, dirs, def) = setup(100);
        let e = dirs.start(&def).expect_err("never starts");
        assert!(e.to_string().contains(INTERFACE_RACE), "{e}");
        assert_eq!(u64::from(runs(&t)), RACE_TRIES);
        assert!(!dirs.pid_file("race").exists());
    }
}
