//! Typed QMP events: qapi's schema first, raw JSON for the rest.
//!
//! qapi 0.15 carries QEMU 9.1's schema. An event it does not know (newer
//! QEMU), an enum value it does not know, or a missing required field makes
//! its `Event` refuse the message; such an event is delivered as
//! [`EventKind::Raw`] with its `data` instead (logged at debug). Extra
//! fields are fine: qapi ignores them.

use qapi::qmp::Event;
use serde::Deserialize;
use serde_json::Value;
use tracing::debug;

use super::transport::{EventKind, QmpEvent};

/// A monitor event: [`EventKind::Known`] with qapi's typed event, or
/// [`EventKind::Raw`] with the `data` member.
pub type MonitorEvent = QmpEvent<Event>;

/// The decoder the monitor gives its transport.
pub(super) fn decode(msg: &Value) -> Option<Event> {
    match Event::deserialize(msg) {
        Ok(ev) => Some(ev),
        Err(e) => {
            let name = msg.get("event").and_then(Value::as_str).unwrap_or("?");
            debug!(
                event = name,
                "QMP event outside qapi's schema, passed on raw: {e}"
            );
            None
        }
    }
}

impl MonitorEvent {
    /// Whether this is event `name` (e.g. `"SHUTDOWN"`).
    pub fn is(&self, name: &str) -> bool {
        self.name == name
    }

    /// The typed event, if qapi knew it.
    pub fn known(&self) -> Option<&Event> {
        match &self.kind {
            EventKind::Known(ev) => Some(ev),
            EventKind::Raw(_) => None,
        }
    }

    /// The `data` member of an event that arrived raw.
    pub fn raw(&self) -> Option<&Value> {
        match &self.kind {
            EventKind::Known(_) => None,
            EventKind::Raw(v) => Some(v),
        }
    }

    /// For SHUTDOWN and RESET: whether the guest asked for it (`guest`),
    /// typed or raw alike.
    pub fn guest_initiated(&self) -> Option<bool> {
        match &self.kind {
            EventKind::Known(Event::SHUTDOWN { data, .. }) => Some(data.guest),
            EventKind::Known(Event::RESET { data, .. }) => Some(data.guest),
            EventKind::Known(_) => None,
            EventKind::Raw(v) => v.get("guest").and_then(Value::as_bool),
        }
    }

    /// For SHUTDOWN and RESET: QEMU's `reason` (`guest-shutdown`,
    /// `host-qmp-quit`, ...), typed or raw alike.
    pub fn reason(&self) -> Option<String> {
        use qapi::Enum as _;
        match &self.kind {
            EventKind::Known(Event::SHUTDOWN { data, .. }) => Some(data.reason.name().to_owned()),
            EventKind::Known(Event::RESET { data, .. }) => Some(data.reason.name().to_owned()),
            EventKind::Known(_) => None,
            EventKind::Raw(v) => v.get("reason").and_then(Value::as_str).map(str::to_owned),
        }
    }
}
