//! virtnetworkd: virtual networks (libvirt's network driver).
//!
//! Layers, as in every daemon:
//! - transport: [`service`] (tonic `NetworkService`, proto ⇄ driver types);
//! - driver: [`driver`] (network objects, definitions, status files,
//!   ports, events; plain types), with [`network_obj`] and [`status`];
//! - mechanisms: [`host`] over [`bridge`] (the bridge over [`netlink`],
//!   sysctls), [`dnsmasq`] (one per network, configured by
//!   `common::network::dnsmasq`), [`firewall`] (nftables rules from
//!   `common::network::firewall`), [`tc`] (a network's `<bandwidth>` on
//!   its bridge, from `common::network::bandwidth`), [`leases`] (the
//!   dnsmasq lease helper this binary also is) and [`pidfd`].
//!
//! A library as well as a binary so that tests and benchmarks drive the
//! same code. What each file is: `docs/network.md`.

pub mod bridge;
pub mod dnsmasq;
pub mod driver;
pub mod firewall;
pub mod host;
pub mod leases;
pub mod netlink;
pub mod network_obj;
pub mod pidfd;
pub mod service;
pub mod status;
pub mod tc;
