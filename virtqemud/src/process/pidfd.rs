//! A process handle by pidfd (`pidfd_open(2)`): exits are seen at once
//! whether or not QEMU is our child (after a daemon restart it is not),
//! and signals never reach a recycled pid.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::signal::Signal;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An open pidfd.
#[derive(Debug)]
pub struct PidFd {
    pid: i32,
    fd: AsyncFd<OwnedFd>,
}

impl PidFd {
    /// Opens a pidfd for `pid`. Needs a tokio runtime.
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
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd is valid and owned by the AsyncFd, which
        // neither replaces nor closes it while registered.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE)? };
        Ok(PidFd { pid, fd })
    }

    /// The pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process has exited (a zombie counts as exited).
    pub fn has_exited(&self) -> bool {
        let mut p = nix::libc::pollfd {
            fd: self.fd.get_ref().as_raw_fd(),
            events: nix::libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { nix::libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & nix::libc::POLLIN != 0
    }

    /// Waits until the process has exited.
    pub async fn exited(&self) {
        loop {
            if self.has_exited() {
                return;
            }
            match self.fd.readable().await {
                Ok(mut g) => {
                    if self.has_exited() {
                        return;
                    }
                    g.clear_ready();
                }
                // The reactor is gone (runtime shutting down): nothing to
                // wait for any more.
                Err(_) => return,
            }
        }
    }

    /// Sends `sig` to the process (`pidfd_send_signal(2)`).
    ///
    /// # Errors
    /// `ESRCH` once it has exited.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a null siginfo and no flags.
        let r = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
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
}

/// The start time of `pid` in clock ticks since boot (`/proc/PID/stat`
/// field 22): with the pid, it names one process across pid reuse.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: the
    // fields after it start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sees_a_child_exit_and_signals_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = i32::try_from(child.id()).expect("pid");
        let fd = PidFd::open(pid).expect("pidfd");
        assert!(!fd.has_exited());
        assert!(start_time(pid).is_some());
        fd.signal(Signal::SIGTERM).expect("signal");
        tokio::time::timeout(std::time::Duration::from_secs(5), fd.exited())
            .await
            .expect("exit seen");
        // Seen before reaping (a zombie has exited).
        assert!(fd.has_exited());
        child.wait().expect("reap");
        assert!(PidFd::open(pid).is_err());
    }
}
