//! Pool events as the driver publishes them on its
//! [`EventBus`](common::events::EventBus). Numbers are libvirt's
//! (`virStoragePoolEventID`, `virStoragePoolEventLifecycleType`), so the
//! transport maps them to the proto unchanged.

use crate::pool_obj::PoolIdent;

/// virStoragePoolEventLifecycleType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// VIR_STORAGE_POOL_EVENT_DEFINED
    Defined = 0,
    /// VIR_STORAGE_POOL_EVENT_UNDEFINED
    Undefined = 1,
    /// VIR_STORAGE_POOL_EVENT_STARTED
    Started = 2,
    /// VIR_STORAGE_POOL_EVENT_STOPPED
    Stopped = 3,
    /// VIR_STORAGE_POOL_EVENT_CREATED (the pool was built)
    Created = 4,
    /// VIR_STORAGE_POOL_EVENT_DELETED (its storage was deleted)
    Deleted = 5,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventBody {
    /// VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE.
    Lifecycle(Lifecycle),
    /// VIR_STORAGE_POOL_EVENT_ID_REFRESH.
    Refresh,
}

impl EventBody {
    /// libvirt's `virStoragePoolEventID` of this kind of event.
    pub fn kind_number(self) -> i32 {
        match self {
            EventBody::Lifecycle(_) => 0,
            EventBody::Refresh => 1,
        }
    }
}

/// One event: which pool (as it was then) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolEvent {
    /// The pool.
    pub pool: PoolIdent,
    /// What happened.
    pub body: EventBody,
}
