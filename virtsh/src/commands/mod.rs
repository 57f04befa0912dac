//! The commands, by virsh group: one module per group (`domain` and
//! `lifecycle` share "Domain Management").
//!
//! Each module exposes `pub const COMMANDS: &[CommandDef]`; [`TABLE`] lists
//! them all. To add a command, add a [`CommandDef`](crate::cli::CommandDef)
//! to its module's `COMMANDS` (or a new module's, then list it in
//! [`TABLE`]).

pub mod device;
pub mod domain;
pub mod events;
pub mod host;
pub mod lifecycle;
pub mod monitor;
pub mod network;
pub mod pool;
pub mod storage;
pub mod virsh;
pub mod volume;

use crate::cli::CommandTable;

/// Every command virtsh knows.
pub static TABLE: CommandTable = CommandTable::new(&[
    domain::COMMANDS,
    lifecycle::COMMANDS,
    device::COMMANDS,
    monitor::COMMANDS,
    events::COMMANDS,
    host::COMMANDS,
    network::COMMANDS,
    pool::COMMANDS,
    volume::COMMANDS,
    virsh::COMMANDS,
]);
