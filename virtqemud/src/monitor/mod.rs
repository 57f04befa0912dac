//! The QMP monitor client: one connection per running QEMU.
//!
//! Built on our own tolerant transport ([`transport`]), not on qapi's
//! stream: qapi 0.15's event stream dies on the first event its schema
//! (QEMU 9.1) does not know, and every later command then fails. From qapi
//! we take only the types: commands are serialised from its structs,
//! replies decoded into their `Ok` types, events into its `Event` where it
//! can (see [`events`]). An unknown event arrives raw; an unknown enum
//! value in a reply fails only that command; a malformed line is logged
//! and skipped. Only EOF or an I/O error ends a monitor.
//!
//! [`Monitor`] is a cheap `Clone` handle (an `Arc` inside), so the driver
//! can issue commands without holding any domain lock; commands may run
//! concurrently (replies are matched by id). Every call has a timeout
//! ([`DEFAULT_TIMEOUT`] unless [`Monitor::with_timeout`] says otherwise).
//! Events come through the [`EventReceiver`] returned by
//! [`Monitor::connect`]; it yields `None` once the connection has ended
//! (QEMU exited or closed the socket), which is how QEMU's death shows.

mod events;
mod transport;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

pub use events::MonitorEvent;
use transport::Transport;
pub use transport::{DEFAULT_TIMEOUT, EventKind, MonitorError, QmpEvent};

/// Where a monitor's events arrive, in QEMU's order. Unbounded: the reader
/// never waits for the consumer (replies must not queue behind events).
pub type EventReceiver = mpsc::UnboundedReceiver<MonitorEvent>;

/// A connected, negotiated QMP monitor. Clones share the connection, which
/// closes when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Monitor {
    transport: Transport,
}

impl Monitor {
    /// Connects to QEMU's QMP socket at `path` and negotiates capabilities,
    /// all within `timeout`. While the socket does not exist yet or refuses
    /// connections (QEMU still starting), the connect is retried.
    ///
    /// # Errors
    /// [`MonitorError::Timeout`], [`MonitorError::Io`],
    /// [`MonitorError::Disconnected`], [`MonitorError::Protocol`].
    pub async fn connect(
        path: &Path,
        timeout: Duration,
    ) -> Result<(Monitor, EventReceiver), MonitorError> {
        let (transport, events) = Transport::connect(path, timeout, events::decode).await?;
        Ok((Monitor { transport }, events))
    }

    /// Takes over an already connected stream (e.g. one end of a socket
    /// pair handed to QEMU) and negotiates within `timeout`.
    ///
    /// # Errors
    /// As [`Monitor::connect`].
    pub async fn from_stream(
        stream: UnixStream,
        timeout: Duration,
    ) -> Result<(Monitor, EventReceiver), MonitorError> {
        let (transport, events) = Transport::from_stream(stream, timeout, events::decode).await?;
        Ok((Monitor { transport }, events))
    }

    /// A handle on the same connection whose calls time out after
    /// `timeout`.
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Monitor {
        Monitor {
            transport: self.transport.with_timeout(timeout),
        }
    }

    /// The timeout of this handle's calls.
    pub fn timeout(&self) -> Duration {
        self.transport.timeout()
    }

    /// QEMU's version from the greeting: (major, minor, micro).
    pub fn qemu_version(&self) -> Option<(u64, u64, u64)> {
        self.transport.qemu_version()
    }

    /// The greeting's `QMP` member as QEMU sent it.
    pub fn greeting(&self) -> &Value {
        self.transport.greeting()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.transport.is_closed()
    }

    /// Runs a qapi command, e.g. `monitor.execute(qmp::query_status {})`.
    ///
    /// # Errors
    /// QEMU's error ([`MonitorError::Qmp`]), [`MonitorError::Timeout`],
    /// [`MonitorError::Disconnected`], or [`MonitorError::Decode`] when the
    /// reply does not fit qapi's type (only this call fails).
    pub async fn execute<C: qapi::Command>(&self, command: C) -> Result<C::Ok, MonitorError> {
        let args = serde_json::to_value(&command).map_err(|source| MonitorError::Encode {
            command: C::NAME.to_owned(),
            source,
        })?;
        self.transport
            .execute_as::<C::Ok>(C::NAME, non_empty(args))
            .await
    }

    /// Runs any command by name with JSON `arguments` (an object; `null`
    /// or `{}` for none) and returns the `return` member untouched. For
    /// commands or fields qapi does not know.
    ///
    /// # Errors
    /// As [`Monitor::execute`], without `Decode`.
    pub async fn execute_raw(&self, name: &str, arguments: Value) -> Result<Value, MonitorError> {
        self.transport
            .execute_value(name, non_empty(arguments))
            .await
    }

    /// Passes `fd` to QEMU under `fdname` (`getfd`), for a later command
    /// that names it (`netdev_add {"fd": fdname}`).
    ///
    /// # Errors
    /// As [`Monitor::execute_raw`].
    pub async fn pass_fd(
        &self,
        fdname: &str,
        fd: std::os::fd::OwnedFd,
    ) -> Result<(), MonitorError> {
        self.transport
            .execute_with_fd("getfd", Some(serde_json::json!({ "fdname": fdname })), fd)
            .await
            .map(|_| ())
    }
}

impl MonitorError {
    /// The driver's error for a failed command (`what` says which step
    /// it was, when the command alone does not): OPERATION_TIMEOUT when
    /// QEMU did not answer within the bound, OPERATION_FAILED otherwise.
    pub fn to_virt_error(self, what: Option<&str>) -> common::VirtError {
        let (code, prefix) = match &self {
            MonitorError::Timeout { .. } => (
                common::ErrorCode::OperationTimeout,
                "Timed out during operation",
            ),
            _ => (common::ErrorCode::OperationFailed, "operation failed"),
        };
        let msg = match what {
            Some(w) => format!("{prefix}: {w}: {self}"),
            None => format!("{prefix}: {self}"),
        };
        common::VirtError::new(code, common::ErrorDomain::Qemu, msg)
    }
}

/// `arguments` of a command: left out when there are none.
fn non_empty(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) if m.is_empty() => None,
        v => Some(v),
    }
}
