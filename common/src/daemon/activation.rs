//! systemd socket activation: the listening sockets handed over in
//! `LISTEN_FDS` / `LISTEN_FDNAMES`, matched to socket kinds by name.
//!
//! Must be called before the tokio runtime starts threads: it reads and
//! clears the environment.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::paths::SocketKind;

/// A listening socket inherited from systemd.
#[derive(Debug)]
pub struct ActivatedSocket {
    /// What it is for.
    pub kind: SocketKind,
    /// The fd name (`virtqemud-ro.socket`, ...).
    pub name: String,
    /// The socket.
    pub fd: OwnedFd,
}

/// An inherited fd whose name we cannot place.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("Socket activation passed fd {fd} named '{name}', which {daemon} does not know")]
pub struct UnknownFdName {
    /// The fd number.
    pub fd: RawFd,
    /// Its name.
    pub name: String,
    /// This daemon.
    pub daemon: String,
}

/// The kind of socket an fd name stands for. systemd names fds after their
/// socket unit by default (`virtqemud.socket`); short names (`rw`, `ro`,
/// `admin`, `tcp`, `tls`) are accepted too, for hand-made activation.
pub fn kind_for_name(daemon: &str, name: &str) -> Option<SocketKind> {
    let base = name.strip_suffix(".socket").unwrap_or(name);
    let suffix = base.strip_prefix(daemon).unwrap_or(base);
    match suffix {
        "" | "rw" | "-rw" => Some(SocketKind::ReadWrite),
        "ro" | "-ro" => Some(SocketKind::ReadOnly),
        "admin" | "-admin" => Some(SocketKind::Admin),
        "tcp" | "-tcp" => Some(SocketKind::Tcp),
        "tls" | "-tls" => Some(SocketKind::Tls),
        _ => None,
    }
}

/// Takes the activated sockets, if any. An fd without a name (`LISTEN_FDNAMES`
/// unset) is taken as the read-write socket when it is the only one.
///
/// # Errors
/// An fd whose name matches no socket kind of this daemon.
pub fn take_activated(daemon: &str) -> Result<Vec<ActivatedSocket>, UnknownFdName> {
    let fds = match sd_notify::listen_fds_with_names() {
        Ok(fds) => fds.collect::<Vec<_>>(),
        Err(_) => return Ok(Vec::new()),
    };
    let single = fds.len() == 1;
    let mut out = Vec::new();
    for (fd, name) in fds {
        // SAFETY: systemd passed us this fd (LISTEN_PID matched our pid), we
        // are its only owner and nothing else in the process has wrapped it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let kind = match kind_for_name(daemon, &name) {
            Some(k) => k,
            None if single && (name.is_empty() || name == "unknown") => SocketKind::ReadWrite,
            None => {
                return Err(UnknownFdName {
                    fd,
                    name,
                    daemon: daemon.to_owned(),
                });
            }
        };
        out.push(ActivatedSocket {
            kind,
            name,
            fd: owned,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_map_to_kinds() {
        assert_eq!(
            kind_for_name("virtqemud", "virtqemud.socket"),
            Some(SocketKind::ReadWrite)
        );
        assert_eq!(
            kind_for_name("virtqemud", "virtqemud-ro.socket"),
            Some(SocketKind::ReadOnly)
        );
        assert_eq!(
            kind_for_name("virtqemud", "virtqemud-admin.socket"),
            Some(SocketKind::Admin)
        );
        assert_eq!(
            kind_for_name("virtproxyd", "virtproxyd-tls.socket"),
            Some(SocketKind::Tls)
        );
        assert_eq!(kind_for_name("virtqemud", "ro"), Some(SocketKind::ReadOnly));
        assert_eq!(
            kind_for_name("virtqemud", "virtstoraged-bogus.socket"),
            None
        );
    }
}
