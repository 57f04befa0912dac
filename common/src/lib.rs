//! Shared ground of the virt daemons and tools.
//!
//! # Architecture
//!
//! Four daemons (virtqemud, virtstoraged, virtnetworkd, virtproxyd) each
//! serve a gRPC API (crate `proto`) on their own Unix sockets. Every daemon
//! has the same three layers: a thin **transport** (the tonic service, proto
//! ⇄ driver types), a **driver** (plain Rust types, owns the objects), and
//! **mechanisms** (QEMU processes and QMP, storage backends, bridges,
//! dnsmasq and nftables). This crate holds what they share:
//!
//! - [`paths`]: system/session path layout, relocated by `VIRT_ROOT`;
//! - [`config`]: daemon config files with libvirt's key names;
//! - [`daemon`]: the runtime: flags, sockets, socket activation, access
//!   control per socket, client registry, idle timeout, signals, admin
//!   service, logging and OpenTelemetry;
//! - [`error`]: libvirt-style error codes and the one mapping to
//!   `tonic::Status`;
//! - [`objlist`]: objects by UUID, name and id (libvirt's `virDomainObjList`),
//!   shared by domains, networks and pools;
//! - [`events`]: the numbered event bus with replay and resume;
//! - [`fsutil`]: crash-safe writes of definition files;
//! - [`configstore`]: a driver's definition files and autostart links;
//! - [`trace`]: trace context across gRPC hops;
//! - [`client`]: connecting to a daemon's socket;
//! - [`xml`]: the XML tree, canonical writer and path-naming errors that
//!   the models [`domain`], [`network`] and [`storage`] are built on.

pub mod client;
pub mod config;
pub mod configstore;
pub mod daemon;
pub mod domain;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod network;
pub mod objlist;
pub mod paths;
pub mod storage;
pub mod timefmt;
#[cfg(feature = "tls")]
pub mod tls;
pub mod trace;
pub mod xml;

pub use error::{ErrorCode, ErrorDomain, Result, VirtError};
