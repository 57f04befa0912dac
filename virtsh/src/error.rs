//! Errors of virtsh commands and how they are reported.
//!
//! Every error is printed as one or more `error: <message>` lines on stderr
//! ([`Error::lines`]). gRPC statuses are turned into messages in exactly
//! one place, [`status_message`].

use proto::common::v1::ErrorDetail;
use tonic::{Code, Status};

use crate::connection::ConnectError;

/// A failed command (or a failed command-line parse).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plain message, printed as `error: <message>`.
    #[error("{0}")]
    Message(String),
    /// The hypervisor could not be reached; printed as
    /// `error: failed to connect to the hypervisor` and then the reason.
    #[error("failed to connect to the hypervisor")]
    Connect(#[source] ConnectError),
    /// A failed RPC; printed with [`status_message`].
    #[error("{}", status_message(.0))]
    Rpc(Box<Status>),
    /// virsh's own line, then the error that caused it (if any), as
    /// `error: failed to get domain 'x'` + `error: Domain not found: ...`.
    #[error("{msg}")]
    Context {
        /// The command's line.
        msg: String,
        /// What the daemon (or the system) said.
        cause: Option<Box<Error>>,
    },
    /// The command failed with nothing more to say (virsh's `event` that
    /// timed out without events): no `error:` line, exit status 1.
    #[error("")]
    Silent,
}

impl Error {
    /// A plain message error.
    pub fn msg(message: impl Into<String>) -> Error {
        Error::Message(message.into())
    }

    /// `msg`, followed by `cause`'s lines.
    pub fn context(msg: impl Into<String>, cause: Option<Error>) -> Error {
        Error::Context {
            msg: msg.into(),
            cause: cause.map(Box::new),
        }
    }

    /// The lines to print, each to be prefixed with `error: `.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Connect(cause) => vec![self.to_string(), cause.to_string()],
            Error::Context { msg, cause } => {
                let mut v = vec![msg.clone()];
                if let Some(c) = cause {
                    v.extend(c.lines());
                }
                v
            }
            Error::Silent => Vec::new(),
            _ => vec![self.to_string()],
        }
    }

    /// Whether the daemon became unreachable (a transport failure rather
    /// than an error the daemon returned), so its channel should be dialed
    /// again.
    pub fn is_disconnect(&self) -> bool {
        match self {
            Error::Rpc(s) => s.code() == Code::Unavailable && error_detail(s).is_none(),
            Error::Context { cause: Some(c), .. } => c.is_disconnect(),
            _ => false,
        }
    }

    /// The libvirt error detail of a failed RPC, if the daemon sent one.
    pub fn detail(&self) -> Option<ErrorDetail> {
        match self {
            Error::Rpc(status) => error_detail(status),
            Error::Context { cause: Some(c), .. } => c.detail(),
            _ => None,
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        Error::Rpc(Box::new(status))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Message(e.to_string())
    }
}

impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Error {
        Error::Connect(e)
    }
}

/// The message virtsh prints for a failed RPC: the daemon's own message
/// (which already reads like libvirt's, e.g. `Domain not found: ...`), or
/// a libvirt-like text for statuses produced by the transport itself.
pub fn status_message(status: &Status) -> String {
    let msg = status.message().trim();
    let from_daemon = error_detail(status).is_some();
    match status.code() {
        Code::Unimplemented if !from_daemon && (msg.is_empty() || msg == "Unimplemented") => {
            "this function is not supported by the connection driver".to_owned()
        }
        Code::Unavailable if !from_daemon => {
            let msg = msg.find(" (os error").map_or(msg, |i| &msg[..i]);
            if msg.is_empty() {
                "Cannot recv data: Connection reset by peer".to_owned()
            } else {
                format!("Cannot recv data: {msg}")
            }
        }
        _ if msg.is_empty() => status.code().description().to_owned(),
        _ => msg.to_owned(),
    }
}

/// Decodes the `virt.common.v1.ErrorDetail` the daemons put in the details
/// of every failed call, if present.
pub fn error_detail(status: &Status) -> Option<ErrorDetail> {
    common::error::status_detail(status)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn daemon_status_keeps_its_message_and_detail() {
        let detail = ErrorDetail {
            code: 42,
            code_name: "NO_DOMAIN".into(),
            domain: 10,
            domain_name: "QEMU".into(),
        };
        let s = Status::with_details(
            Code::NotFound,
            "Domain not found: no domain with matching name 'x'",
            detail.encode_to_vec().into(),
        );
        let e = Error::from(s);
        assert_eq!(
            e.lines(),
            vec!["Domain not found: no domain with matching name 'x'"]
        );
        assert_eq!(e.detail().map(|d| d.code), Some(42));
    }

    #[test]
    fn context_lines_come_first() {
        let cause = Error::from(Status::not_found(
            "Domain not found: no domain with matching name 'x'",
        ));
        let e = Error::context("failed to get domain 'x'", Some(cause));
        assert_eq!(
            e.lines(),
            vec![
                "failed to get domain 'x'",
                "Domain not found: no domain with matching name 'x'"
            ]
        );
        assert_eq!(Error::context("only", None).lines(), vec!["only"]);
        assert!(Error::Silent.lines().is_empty());
        let gone = Error::context("x", Some(Error::from(Status::unavailable("reset"))));
        assert!(gone.is_disconnect());
    }

    #[test]
    fn transport_statuses_get_libvirt_text() {
        assert_eq!(
            status_message(&Status::new(Code::Unimplemented, "")),
            "this function is not supported by the connection driver"
        );
        assert_eq!(
            status_message(&Status::new(Code::Unavailable, "")),
            "Cannot recv data: Connection reset by peer"
        );
        assert_eq!(
            status_message(&Status::new(Code::Unavailable, "Broken pipe (os error 32)")),
            "Cannot recv data: Broken pipe"
        );
        assert!(Error::from(Status::new(Code::Unavailable, "x")).is_disconnect());
        assert_eq!(
            status_message(&Status::new(Code::PermissionDenied, "")),
            Code::PermissionDenied.description()
        );
    }
}
