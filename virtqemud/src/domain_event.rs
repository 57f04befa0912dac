//! Domain events as the driver publishes them on its
//! [`EventBus`](common::events::EventBus). Numbers are libvirt's
//! (`virDomainEventID`, `virDomainEventType` and the detail enums), so the
//! transport maps them to the proto unchanged.

use crate::domain_obj::DomainIdent;

/// virDomainEventType.
// Start/stop, suspend and crash events come with the lifecycle work.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// VIR_DOMAIN_EVENT_DEFINED
    Defined = 0,
    /// VIR_DOMAIN_EVENT_UNDEFINED
    Undefined = 1,
    /// VIR_DOMAIN_EVENT_STARTED
    Started = 2,
    /// VIR_DOMAIN_EVENT_SUSPENDED
    Suspended = 3,
    /// VIR_DOMAIN_EVENT_RESUMED
    Resumed = 4,
    /// VIR_DOMAIN_EVENT_STOPPED
    Stopped = 5,
    /// VIR_DOMAIN_EVENT_SHUTDOWN
    Shutdown = 6,
    /// VIR_DOMAIN_EVENT_PMSUSPENDED
    PmSuspended = 7,
    /// VIR_DOMAIN_EVENT_CRASHED
    Crashed = 8,
}

/// VIR_DOMAIN_EVENT_DEFINED_ADDED
pub const DEFINED_ADDED: i32 = 0;
/// VIR_DOMAIN_EVENT_DEFINED_UPDATED
pub const DEFINED_UPDATED: i32 = 1;
/// VIR_DOMAIN_EVENT_UNDEFINED_REMOVED
pub const UNDEFINED_REMOVED: i32 = 0;

/// What happened.
// Reboot and device events come with the lifecycle and hotplug work.
#[allow(dead_code)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody {
    /// VIR_DOMAIN_EVENT_ID_LIFECYCLE.
    Lifecycle {
        /// The event.
        event: LifecycleEvent,
        /// libvirt's detail number for `event`.
        detail: i32,
    },
    /// VIR_DOMAIN_EVENT_ID_REBOOT.
    Reboot,
    /// VIR_DOMAIN_EVENT_ID_DEVICE_ADDED.
    DeviceAdded {
        /// The device alias.
        alias: String,
    },
    /// VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED.
    DeviceRemoved {
        /// The device alias.
        alias: String,
    },
    /// VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED.
    DeviceRemovalFailed {
        /// The device alias.
        alias: String,
    },
}

impl EventBody {
    /// libvirt's `virDomainEventID` of this kind of event.
    pub fn kind_number(&self) -> i32 {
        match self {
            EventBody::Lifecycle { .. } => 0,
            EventBody::Reboot => 1,
            EventBody::DeviceRemoved { .. } => 15,
            EventBody::DeviceAdded { .. } => 19,
            EventBody::DeviceRemovalFailed { .. } => 22,
        }
    }
}

/// One event: which domain (as it was then) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainEvent {
    /// The domain.
    pub domain: DomainIdent,
    /// What happened.
    pub body: EventBody,
}

impl DomainEvent {
    /// A lifecycle event.
    pub fn lifecycle(domain: DomainIdent, event: LifecycleEvent, detail: i32) -> DomainEvent {
        DomainEvent {
            domain,
            body: EventBody::Lifecycle { event, detail },
        }
    }
}
