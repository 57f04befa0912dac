//! NICs on virtual networks (`<interface type='network'>`), through
//! virtnetworkd's ports (libvirt's `virNetworkPort*`): at start a port is
//! created for each such NIC (owner, MAC) and its `<plug>` names the
//! bridge the tap joins; the port's UUID goes into the live definition
//! (`portid`); at stop the port is deleted; after a virtqemud restart the
//! ports of adopted domains are looked up again (and re-created with
//! `reclaim` when the network lost them). virtnetworkd is reached lazily
//! and started next to virtqemud when it does not answer, as virtstoraged.

use std::path::PathBuf;
use std::time::Duration;

use common::domain::device::interface::NetSource;
use common::domain::{Device, DomainDef};
use common::paths::{Paths, SocketKind};
use common::trace::{TracedChannel, traced};
use common::{ErrorCode, ErrorDomain, VirtError};
use proto::network::v1 as npb;
use proto::network::v1::network_service_client::NetworkServiceClient;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// A port a NIC holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicPort {
    /// The NIC's position among the domain's interfaces.
    pub index: usize,
    /// The network.
    pub network: String,
    /// The port's UUID.
    pub uuid: String,
    /// The bridge the tap joins.
    pub bridge: String,
    /// The bandwidth the network gives the port (its named or default
    /// portgroup's), for a NIC without a `<bandwidth>` of its own.
    pub bandwidth: Option<common::network::Bandwidth>,
}

/// virtnetworkd, as a client of it. Clones share the connection.
#[derive(Clone, Debug)]
pub struct NetworkClient {
    socket: PathBuf,
    peer: crate::storage::Peer,
    channel: std::sync::Arc<Mutex<Option<Channel>>>,
    watching: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn err(code: ErrorCode, msg: String) -> VirtError {
    VirtError::new(code, ErrorDomain::Network, msg)
}

fn status_err(what: &str, s: &tonic::Status) -> VirtError {
    with_context(what, VirtError::from_status(s))
}

fn with_context(what: &str, mut e: VirtError) -> VirtError {
    e.message = format!("{what}: {}", e.message);
    e
}

impl NetworkClient {
    /// A client of the virtnetworkd of `paths`; `spawn`: start it when it
    /// does not answer.
    pub fn new(paths: &Paths, spawn: bool) -> NetworkClient {
        NetworkClient {
            socket: paths.socket("virtnetworkd", SocketKind::ReadWrite),
            peer: crate::storage::Peer::new(
                paths,
                "virtnetworkd",
                "network daemon",
                ErrorDomain::Network,
                spawn,
            ),
            channel: std::sync::Arc::new(Mutex::new(None)),
            watching: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// A client whose calls carry the current span's trace context, so
    /// that virtnetworkd's request span joins the caller's trace.
    async fn client(&self) -> Result<NetworkServiceClient<TracedChannel>, VirtError> {
        let mut ch = self.channel.lock().await;
        if let Some(c) = ch.as_ref() {
            return Ok(NetworkServiceClient::new(traced(c.clone())));
        }
        let c = self.peer.connect(Duration::from_secs(5)).await?;
        *ch = Some(c.clone());
        Ok(NetworkServiceClient::new(traced(c)))
    }

    async fn reset(&self) {
        *self.channel.lock().await = None;
    }

    /// Creates a port on `network` for NIC `index` of `def` (owner: the
    /// domain, MAC: the NIC's); `reclaim` re-registers an existing one.
    ///
    /// # Errors
    /// virtnetworkd cannot be reached; the network is unknown or inactive.
    pub async fn create_port(
        &self,
        def: &DomainDef,
        index: usize,
        network: &str,
        mac: &str,
        portid: Option<&str>,
        reclaim: bool,
    ) -> Result<NicPort, VirtError> {
        let mut c = self
            .client()
            .await
            .map_err(|e| with_context(&format!("cannot get a port on network '{network}'"), e))?;
        let uuid = portid
            .map(|u| format!("<uuid>{u}</uuid>"))
            .unwrap_or_default();
        let xml = format!(
            "<networkport>{uuid}<owner><name>{}</name><uuid>{}</uuid></owner><mac address='{mac}'/></networkport>",
            common::xml::escape(&def.name),
            def.uuid
        );
        let req = npb::CreatePortRequest {
            network: Some(npb::NetworkRef {
                by: Some(npb::network_ref::By::Name(network.to_owned())),
            }),
            xml,
            reclaim,
            validate: false,
        };
        // A start gives every port its UUID: then a try cut off by a broken
        // connection (virtnetworkd died or restarted under it) can be made
        // again, and a port the first try made is found as ours.
        let what = format!("cannot get a port on network '{network}'");
        let mut retry = crate::storage::Retry::default();
        let port = loop {
            match c.create_port(req.clone()).await {
                Ok(r) => break r.into_inner().port.unwrap_or_default(),
                Err(s) if retry.retried() && s.code() == tonic::Code::AlreadyExists => {
                    break self
                        .port_of(
                            &mut c,
                            network,
                            portid.unwrap_or_default(),
                            &def.uuid.to_string(),
                        )
                        .await
                        .map_err(|e| with_context(&what, e))?;
                }
                Err(s) if crate::storage::retryable(&s) => {
                    self.reset().await;
                    let broken = self.peer.unavailable(format!("{what}: {}", s.message()));
                    if portid.is_none() {
                        return Err(broken);
                    }
                    if !retry.retried() {
                        tracing::warn!(network, "{}: trying again", broken.message);
                    }
                    if !retry.again().await {
                        return Err(broken);
                    }
                    c = self.client().await.map_err(|e| with_context(&what, e))?;
                }
                Err(s) => return Err(status_err(&what, &s)),
            }
        };
        let bridge = plug_bridge(&port.xml).ok_or_else(|| {
            err(
                ErrorCode::ConfigUnsupported,
                format!("unsupported configuration: network '{network}' gives its ports no bridge"),
            )
        })?;
        let bandwidth = common::network::port::PortDef::parse_str(
            &port.xml,
            common::xml::ParseFlags::default(),
        )
        .ok()
        .and_then(|p| p.bandwidth);
        Ok(NicPort {
            index,
            network: network.to_owned(),
            uuid: port.uuid,
            bridge,
            bandwidth,
        })
    }

    /// Port `uuid` of `network`, which must be owned by domain `owner`.
    async fn port_of(
        &self,
        c: &mut NetworkServiceClient<TracedChannel>,
        network: &str,
        uuid: &str,
        owner: &str,
    ) -> Result<npb::Port, VirtError> {
        let req = npb::LookupPortRequest {
            port: Some(npb::PortRef {
                network: Some(npb::NetworkRef {
                    by: Some(npb::network_ref::By::Name(network.to_owned())),
                }),
                uuid: uuid.to_owned(),
            }),
        };
        let port = c
            .lookup_port(req)
            .await
            .map_err(|s| VirtError::from_status(&s))?
            .into_inner()
            .port
            .unwrap_or_default();
        let theirs = common::xml::parse(&port.xml)
            .ok()
            .and_then(|r| r.child("owner")?.child("uuid").map(|u| u.text()))
            .unwrap_or_default();
        if theirs.trim() != owner {
            return Err(err(
                ErrorCode::NetworkPortExist,
                format!("Network port with UUID {uuid} already exists"),
            ));
        }
        Ok(port)
    }

    /// Deletes a port of `network`; an unknown one (or network) is fine.
    /// Deleting is idempotent: a try cut off by a broken connection is
    /// made again on a new one (for at most `storage::RETRY_BOUND`).
    ///
    /// # Errors
    /// virtnetworkd cannot be reached (NO_CONNECT naming it) or refuses.
    pub async fn delete_port(&self, network: &str, port_uuid: &str) -> Result<(), VirtError> {
        let what = format!("cannot release port {port_uuid} of network '{network}'");
        let req = npb::DeletePortRequest {
            port: Some(npb::PortRef {
                network: Some(npb::NetworkRef {
                    by: Some(npb::network_ref::By::Name(network.to_owned())),
                }),
                uuid: port_uuid.to_owned(),
            }),
        };
        let mut retry = crate::storage::Retry::default();
        loop {
            let mut c = self.client().await.map_err(|e| with_context(&what, e))?;
            match c.delete_port(req.clone()).await {
                Ok(_) => return Ok(()),
                Err(s) if s.code() == tonic::Code::NotFound => return Ok(()),
                Err(s) if crate::storage::retryable(&s) => {
                    self.reset().await;
                    if !retry.again().await {
                        return Err(self.peer.unavailable(format!("{what}: {}", s.message())));
                    }
                }
                Err(s) => return Err(status_err(&what, &s)),
            }
        }
    }

    /// Every port of every active network: (network, port UUID, owner
    /// domain UUID).
    ///
    /// # Errors
    /// virtnetworkd cannot be reached or refuses.
    pub async fn all_ports(&self) -> Result<Vec<(String, String, String)>, VirtError> {
        let mut c = self.client().await?;
        let fail = |s: &tonic::Status| status_err("cannot list network ports", s);
        let nets = c
            .list_all_networks(npb::ListAllNetworksRequest::default())
            .await
            .map_err(|s| fail(&s))?
            .into_inner()
            .networks;
        let mut out = Vec::new();
        for n in nets {
            let req = npb::ListAllPortsRequest {
                network: Some(npb::NetworkRef {
                    by: Some(npb::network_ref::By::Name(n.name.clone())),
                }),
            };
            let ports = match c.list_all_ports(req).await {
                Ok(r) => r.into_inner().ports,
                // Inactive or gone meanwhile: it has no ports.
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::NotFound | tonic::Code::FailedPrecondition
                    ) =>
                {
                    continue;
                }
                Err(s) => return Err(fail(&s)),
            };
            for p in ports {
                let owner = common::xml::parse(&p.xml)
                    .ok()
                    .and_then(|r| r.child("owner")?.child("uuid").map(|u| u.text()))
                    .unwrap_or_default();
                out.push((n.name.clone(), p.uuid, owner.trim().to_owned()));
            }
        }
        Ok(out)
    }

    /// Waits, at most `bound`, until virtnetworkd answers its health check.
    pub async fn wait_ready(&self, bound: Duration) -> bool {
        crate::storage::wait_healthy(&self.socket, bound).await
    }
}

/// What to do when a network starts: `(network name, its bridge)`.
pub type OnNetworkStart = Box<dyn Fn(&str, &str) + Send + Sync>;

impl NetworkClient {
    /// Starts, once, a task that follows virtnetworkd's events and calls
    /// `on_start` for every network that starts (so that the taps of
    /// running domains join its new bridge). It never starts virtnetworkd
    /// itself; while virtnetworkd is away it retries every 2 s.
    pub fn watch_starts(&self, on_start: OnNetworkStart) {
        if self
            .watching
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let socket = self.socket.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(ch) = common::client::connect_unix(&socket).await {
                    let mut c = NetworkServiceClient::new(ch);
                    if let Ok(r) = c.watch_events(npb::WatchEventsRequest::default()).await {
                        let mut stream = r.into_inner();
                        while let Ok(Some(ev)) = stream.message().await {
                            let started = matches!(
                                &ev.event,
                                Some(npb::network_event::Event::Lifecycle(l))
                                    if l.event == npb::NetworkLifecycleEvent::Started as i32
                            );
                            if started && let Some(n) = &ev.network {
                                on_start(&n.name, &n.bridge);
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
}

/// The bridge of a port's `<plug type='network' bridge=...>`.
fn plug_bridge(xml: &str) -> Option<String> {
    let root = common::xml::parse(xml).ok()?;
    root.child("plug")?.attr("bridge").map(str::to_owned)
}

/// The `type='network'` NICs of `def`: (index, network, MAC, portid).
pub fn network_nics(def: &DomainDef) -> Vec<(usize, String, String, Option<String>)> {
    def.devices
        .iter()
        .filter_map(|d| match d {
            Device::Interface(n) => Some(n),
            _ => None,
        })
        .enumerate()
        .filter_map(|(i, n)| match &n.source {
            NetSource::Network {
                network, portid, ..
            } => Some((i, network.clone(), n.mac.to_string(), portid.clone())),
            _ => None,
        })
        .collect()
}

/// Writes the ports' UUIDs into the NICs of `def` (`portid`, live XML).
pub fn apply(def: &mut DomainDef, ports: &[NicPort]) {
    let nics = def.devices.iter_mut().filter_map(|d| match d {
        Device::Interface(n) => Some(n),
        _ => None,
    });
    for (i, n) in nics.enumerate() {
        if let Some(p) = ports.iter().find(|p| p.index == i)
            && let NetSource::Network { portid, .. } = &mut n.source
        {
            *portid = Some(p.uuid.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plug_names_the_bridge() {
        let xml = "<networkport><uuid>u</uuid><owner><name>vm</name></owner><mac address='52:54:00:00:00:01'/><plug type='network' bridge='virbr9' macTableManager='kernel'/></networkport>";
        assert_eq!(plug_bridge(xml).as_deref(), Some("virbr9"));
        assert_eq!(plug_bridge("<networkport/>"), None);
    }
}
