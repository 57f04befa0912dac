//! virtstoraged: storage pools and volumes.
//!
//! Layers, as in every daemon:
//! - transport: [`service`] (tonic `StorageService`, proto ⇄ driver types,
//!   streams);
//! - driver: [`driver`] (pools and their volumes, definition and state
//!   files, events; plain types), with [`pool_obj`], [`event`] and
//!   [`names`] (what a name may be);
//! - mechanisms: [`backend`] (dir, fs/netfs, logical), [`qcow2`] (the
//!   native qcow2 writer), [`probe`] (image formats), [`wipe`], [`exec`]
//!   (running host tools). The command lines are the pure builders of
//!   `common::storage::argv`.
//!
//! How it behaves — pool types, files, start-up order, safety rules — is
//! in `docs/storage.md`.

pub mod backend;
pub mod driver;
pub mod error;
pub mod event;
pub mod exec;
pub mod names;
pub mod pool_obj;
pub mod probe;
pub mod qcow2;
pub mod service;
pub mod wipe;
