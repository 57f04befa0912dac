//! Processes we did not spawn (dnsmasq daemonizes; after a restart of
//! virtnetworkd none of them is our child): a pid plus its start time
//! names one process across pid reuse, and a pidfd sees its exit at once.
//! Blocking: the mechanisms run in `spawn_blocking` (but for
//! [`PidFd::exited`], which the dnsmasq supervisor awaits).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// The start time of `pid` in clock ticks since boot (`/proc/PID/stat`
/// field 22).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is alive (not a zombie) and has `start` as start time.
pub fn is_alive(pid: i32, start: Option<u64>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    let mut f = rest.split_whitespace();
    if matches!(f.next(), Some("Z" | "X")) {
        return false;
    }
    match start {
        None => true,
        Some(s) => f.nth(18).and_then(|v| v.parse::<u64>().ok()) == Some(s),
    }
}

/// The command line of `pid`, arguments split.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An open pidfd.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
}

impl PidFd {
    /// Opens a pidfd for `pid`.
    ///
    /// # Errors
    /// `ESRCH` when no such process exists.
    pub fn open(pid: i32) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or
        // -1; no memory is passed.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = RawFd::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(PidFd { fd })
    }

    /// Sends `sig` (`pidfd_send_signal(2)`).
    ///
    /// # Errors
    /// `ESRCH` once it has exited.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a null siginfo and no flags.
        let r = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as i32,
                std::ptr::null::<nix::libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits, without blocking a thread, until the process has exited (a
    /// zombie counts).
    ///
    /// # Errors
    /// The pidfd cannot be registered with the runtime.
    pub async fn exited(self) -> io::Result<()> {
        // SAFETY: the OwnedFd is valid and owned by the AsyncFd, which
        // neither replaces nor closes it while registered.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                self.fd,
                tokio::io::Interest::READABLE,
            )?
        };
        let _ready = fd.readable().await?;
        Ok(())
    }

    /// Waits until the process has exited (a zombie counts), at most
    /// `timeout`; returns whether it did.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            let mut p = nix::libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: nix::libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { nix::libc::poll(&mut p, 1, ms) };
            if n > 0 {
                return true;
            }
            if n == 0 || Instant::now() >= deadline {
                return false;
            }
            // EINTR: poll again.
        }
    }
}

/// Ends process `pid` if it is still the one started at `start`: SIGTERM,
/// then SIGKILL after `grace`. Returns once it has exited.
///
/// # Errors
/// It could not be signalled for a reason other than being gone.
pub fn terminate(pid: i32, start: Option<u64>, grace: Duration) -> io::Result<()> {
    let fd = match PidFd::open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Checked after the pidfd is open: from here on the pid cannot be
    // reused under us.
    if !is_alive(pid, start) {
        return Ok(());
    }
    match fd.signal(Signal::SIGTERM) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e),
    }
    if fd.wait_exit(grace) {
        return Ok(());
    }
    let _ = fd.signal(Signal::SIGKILL);
    fd.wait_exit(Duration::from_secs(5));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = i32::try_from(child.id()).expect("pid");
        let st = start_time(pid);
        assert!(st.is_some());
        assert!(is_alive(pid, st));
        assert!(!is_alive(pid, st.map(|s| s + 1)));
        // Under load /proc may show the new process's arguments a moment
        // after spawn returns (seen once in a full run): give it a second.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while cmdline(pid).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(cmdline(pid), ["sleep", "30"]);
        terminate(pid, st, Duration::from_secs(2)).expect("terminate");
        assert!(!is_alive(pid, st));
        let _ = child.wait();
    }
}
