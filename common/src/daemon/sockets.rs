//! Binding the daemon's Unix sockets safely, and the pid file lock.
//!
//! Rule: a socket path is only removed by the daemon that holds the pid file
//! lock of its name. A second instance fails on the lock before it touches a
//! socket, so a live daemon's socket is never unlinked. A socket left behind
//! by a dead daemon is probed (connect) before removal as a second guard.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why a socket or pid file could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another instance holds the pid file.
    #[error("Another {daemon} is already running (pid file '{}' is locked)", path.display())]
    AlreadyRunning {
        /// The daemon.
        daemon: String,
        /// The pid file.
        path: PathBuf,
    },
    /// A live daemon answers on the socket path.
    #[error("Socket '{}' is served by a running daemon", path.display())]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// The path is too long for a Unix socket address.
    #[error("Socket path '{}' is longer than the {max} bytes a Unix socket allows", path.display())]
    PathTooLong {
        /// The socket.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
    /// A system call failed.
    #[error("Failed to {what} '{}'", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// How long a pid file lock may stay held after the daemon it names has
/// died (by a child of it that has forked but not yet exec'd).
const STALE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the pid written in the pid file at `path` runs (exists and is
/// not a zombie). An empty or unreadable file names nobody.
fn recorded_pid_runs(path: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
    else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        !st.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// The held pid file: locked for the daemon's life, removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidFile {
    /// Creates (or reuses) `path`, takes an exclusive lock on it and writes
    /// our pid.
    ///
    /// # Errors
    /// [`SocketError::AlreadyRunning`] when another process holds the lock.
    pub fn acquire(daemon: &str, path: &Path) -> Result<PidFile, SocketError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(io("open pid file", path))?;
        // A daemon killed while it forked (a QEMU, dnsmasq, qemu-img)
        // leaves a child that holds the lock through the inherited
        // descriptor until it execs, a moment later: while the pid the
        // file names is dead, wait for that instead of refusing.
        let deadline = std::time::Instant::now() + STALE_LOCK_WAIT;
        let mut file = file;
        let locked = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Err((f, nix::errno::Errno::EWOULDBLOCK))
                    if !recorded_pid_runs(path) && std::time::Instant::now() < deadline =>
                {
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r,
            }
        };
        let mut lock = locked.map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                SocketError::AlreadyRunning {
                    daemon: daemon.to_owned(),
                    path: path.to_path_buf(),
                }
            } else {
                SocketError::Io {
                    what: "lock pid file",
                    path: path.to_path_buf(),
                    source: errno.into(),
                }
            }
        })?;
        lock.set_len(0).map_err(io("truncate pid file", path))?;
        writeln!(&mut *lock, "{}", std::process::id()).map_err(io("write pid file", path))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Longest path a `sockaddr_un` holds (108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Binds a Unix listening socket at `path` with permission `mode`,
/// removing a stale socket left by a dead daemon. Must be called with the
/// pid file held.
///
/// # Errors
/// The path is too long, a live daemon answers on it, or a system call failed.
pub fn bind_unix(path: &Path, mode: u32) -> Result<std::os::unix::net::UnixListener, SocketError> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().len() > MAX_SOCKET_PATH {
        return Err(SocketError::PathTooLong {
            path: path.to_path_buf(),
            max: MAX_SOCKET_PATH,
        });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io("remove stale socket", path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(SocketError::Io {
                what: "inspect",
                path: path.to_path_buf(),
                source: e,
            });
        }
    }
    // Create with the final mode: bind under a restrictive umask, then chmod.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let listener = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(io("bind socket", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("chmod socket", path))?;
    listener
        .set_nonblocking(true)
        .map_err(io("set non-blocking", path))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_pid_file_lock_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d.pid");
        let first = PidFile::acquire("d", &p).expect("first");
        assert!(matches!(
            PidFile::acquire("d", &p),
            Err(SocketError::AlreadyRunning { .. })
        ));
        let pid: u32 = std::fs::read_to_string(&p)
            .expect("read")
            .trim()
            .parse()
            .expect("pid");
        assert_eq!(pid, std::process::id());
        drop(first);
        assert!(!p.exists());
    }

    #[test]
    fn a_lock_left_by_a_dead_daemons_child_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d.pid");
        // The "child" holding the lock: another open file description.
        let holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .expect("open");
        let held = Flock::lock(holder, FlockArg::LockExclusiveNonblock).expect("lock");
        // The file names a pid that does not run (pid_max is below this).
        std::fs::write(&p, "2147483646\n").expect("write");
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = released.clone();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(held);
        });
        let pf = PidFile::acquire("d", &p).expect("acquired once the holder let go");
        assert!(
            released.load(std::sync::atomic::Ordering::SeqCst),
            "it waited for the holder"
        );
        release.join().expect("join");
        drop(pf);
        // A live pid in the file (ours): refused.
        let first = PidFile::acquire("d", &p).expect("first");
        assert!(matches!(
            PidFile::acquire("d", &p),
            Err(SocketError::AlreadyRunning { .. })
        ));
        drop(first);
    }

    #[test]
    fn stale_socket_is_replaced_live_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s");
        let live = bind_unix(&p, 0o600).expect("bind");
        assert!(matches!(
            bind_unix(&p, 0o600),
            Err(SocketError::InUse { .. })
        ));
        drop(live); // the path stays, nobody listens: stale
        assert!(p.exists());
        let again = bind_unix(&p, 0o666).expect("rebind over stale socket");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        drop(again);
    }

    #[test]
    fn too_long_path_is_refused() {
        let p = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        assert!(matches!(
            bind_unix(&p, 0o600),
            Err(SocketError::PathTooLong { .. })
        ));
    }
}
