//! virtqemud: domains on QEMU.
//!
//! Layers, as in every daemon:
//! - transport: [`service`] (tonic `DomainService`, proto ⇄ driver types);
//! - driver: [`driver`] (domain objects, definitions, events; plain types),
//!   with [`domain_obj`], [`domain_event`], [`persist`] and the QEMU
//!   post-parse/validate rules in [`hooks`];
//! - mechanisms: [`caps`] (emulator discovery, versions, host facts),
//!   [`monitor`] (QMP behind a tolerant reader).
//!
//! A library as well as a binary so that the conformance runner and the
//! benchmarks use the same hooks and (later) command-line builder as the
//! daemon.

pub mod bounds;
pub mod caps;
pub mod command;
pub mod domain_event;
pub mod domain_obj;
pub mod driver;
pub mod hooks;
pub mod monitor;
pub mod network;
pub mod persist;
pub mod process;
pub mod service;
pub mod storage;
