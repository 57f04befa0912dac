//! Transport: `virt.network.v1.NetworkService` over the driver. Converts
//! proto to driver types and back, nothing else.

use std::pin::Pin;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use common::daemon::Daemon;
use common::events::Item;
use common::network::update::{UpdateCommand, UpdateSection};
use common::objlist::{ObjRef, format_uuid, parse_uuid};
use common::{ErrorCode, ErrorDomain, VirtError};
use futures::Stream;
use proto::common::v1 as cpb;
use proto::network::v1 as pb;
use proto::network::v1::network_service_server::{NetworkService, NetworkServiceServer};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::driver::{DhcpLease, ListFilter, NetworkDriver, PortInfo, UpdateRequest};
use crate::network_obj::{NetworkEvent, NetworkInfo};

/// The daemon: its driver behind the gRPC service.
#[derive(Clone, Debug)]
pub struct Networkd {
    driver: Arc<NetworkDriver>,
}

impl Networkd {
    /// The service of `driver`.
    pub fn new(driver: Arc<NetworkDriver>) -> Networkd {
        Networkd { driver }
    }

    /// Ends event streams once `stopping` turns true, so that the
    /// graceful stop does not wait for watchers.
    pub fn close_events_on(&self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let driver = self.driver.clone();
        tokio::spawn(async move {
            let _ = stopping.wait_for(|s| *s).await;
            driver.close_events();
        });
    }
}

impl Daemon for Networkd {
    fn routes(&self) -> Routes {
        Routes::new(NetworkServiceServer::new(self.clone()))
    }

    fn service_names(&self) -> Vec<&'static str> {
        vec!["virt.network.v1.NetworkService"]
    }

    fn is_active(&self) -> bool {
        self.driver.any_active()
    }

    async fn reload(&self) -> Result<(), VirtError> {
        self.driver.load_definitions();
        self.driver.autostart_all().await;
        Ok(())
    }

    async fn shutdown(&self) {
        // Networks keep running (bridge, dnsmasq and rules outlive the
        // daemon; the next one adopts them).
        self.driver.close_events();
    }
}

/// Runs a call that changes state to its end even when its client goes
/// away. tonic drops a handler's future when the connection closes (a
/// client killed mid-call, e.g. virtqemud while it takes a port): a
/// driver call dropped between two of its steps (a file written, memory
/// not yet updated) would leave them disagreeing until the next restart
/// brought back what the client believed undone. In a task of its own
/// the call always finishes; only the answer may be lost.
async fn to_completion<T, F>(call: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, VirtError>> + Send + 'static,
{
    common::daemon::completion::to_completion(ErrorDomain::Network, call).await
}

// === conversions ===

fn invalid_arg(msg: impl Into<String>) -> Status {
    VirtError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Network,
        format!("invalid argument: {}", msg.into()),
    )
    .to_status()
}

fn obj_ref(r: Option<&pb::NetworkRef>) -> Result<ObjRef, Status> {
    match r.and_then(|r| r.by.as_ref()) {
        None => Err(invalid_arg("network must be set (name or uuid)")),
        Some(pb::network_ref::By::Name(n)) => Ok(ObjRef::Name(n.clone())),
        Some(pb::network_ref::By::Uuid(u)) => parse_uuid(u).map(ObjRef::Uuid).ok_or_else(|| {
            invalid_arg(format!(
                "uuidstr in virNetworkLookupByUUIDString must be a valid UUID, not '{u}'"
            ))
        }),
    }
}

fn port_ref(r: Option<&pb::PortRef>) -> Result<(ObjRef, String), Status> {
    let r = r.ok_or_else(|| invalid_arg("port must be set"))?;
    Ok((obj_ref(r.network.as_ref())?, r.uuid.clone()))
}

fn network_msg(n: &NetworkInfo) -> pb::Network {
    pb::Network {
        name: n.name.clone(),
        uuid: format_uuid(&n.uuid),
        active: n.active,
        persistent: n.persistent,
        autostart: n.autostart,
        bridge: n.bridge.clone(),
    }
}

fn port_msg(p: &PortInfo) -> pb::Port {
    pb::Port {
        network: p.network.clone(),
        uuid: p.uuid.to_string(),
        xml: p.xml.clone(),
    }
}

fn lease_msg(l: &DhcpLease) -> pb::DhcpLease {
    pb::DhcpLease {
        iface: l.iface.clone(),
        expiry_time: l.expiry_time,
        r#type: if l.ipv6 {
            pb::IpAddrType::Ipv6 as i32
        } else {
            pb::IpAddrType::Ipv4 as i32
        },
        mac: l.mac.clone(),
        iaid: l.iaid.clone(),
        ipaddr: l.ipaddr.clone(),
        prefix: l.prefix,
        hostname: l.hostname.clone(),
        clientid: l.clientid.clone(),
    }
}

fn update_command(v: i32) -> Result<UpdateCommand, Status> {
    match pb::NetworkUpdateCommand::try_from(v) {
        Ok(pb::NetworkUpdateCommand::Modify) => Ok(UpdateCommand::Modify),
        Ok(pb::NetworkUpdateCommand::Delete) => Ok(UpdateCommand::Delete),
        Ok(pb::NetworkUpdateCommand::AddLast) => Ok(UpdateCommand::AddLast),
        Ok(pb::NetworkUpdateCommand::AddFirst) => Ok(UpdateCommand::AddFirst),
        _ => Err(invalid_arg(format!("unknown network update command {v}"))),
    }
}

fn update_section(v: i32) -> Result<UpdateSection, Status> {
    use pb::NetworkSection as S;
    Ok(match S::try_from(v) {
        Ok(S::Bridge) => UpdateSection::Bridge,
        Ok(S::Domain) => UpdateSection::Domain,
        Ok(S::Ip) => UpdateSection::Ip,
        Ok(S::IpDhcpHost) => UpdateSection::IpDhcpHost,
        Ok(S::IpDhcpRange) => UpdateSection::IpDhcpRange,
        Ok(S::Forward) => UpdateSection::Forward,
        Ok(S::ForwardInterface) => UpdateSection::ForwardInterface,
        Ok(S::ForwardPf) => UpdateSection::ForwardPf,
        Ok(S::Portgroup) => UpdateSection::Portgroup,
        Ok(S::DnsHost) => UpdateSection::DnsHost,
        Ok(S::DnsTxt) => UpdateSection::DnsTxt,
        Ok(S::DnsSrv) => UpdateSection::DnsSrv,
        _ => return Err(invalid_arg(format!("unknown network section {v}"))),
    })
}

fn param_value(p: &cpb::TypedParam) -> Result<u64, Status> {
    use cpb::typed_param::Value;
    match &p.value {
        Some(Value::Uint(v)) => Ok(u64::from(*v)),
        Some(Value::Ullong(v)) => Ok(*v),
        Some(Value::Int(v)) => u64::try_from(*v).map_err(|_| invalid_arg("negative value")),
        Some(Value::Llong(v)) => u64::try_from(*v).map_err(|_| invalid_arg("negative value")),
        _ => Err(invalid_arg(format!(
            "parameter '{}' must be an unsigned integer",
            p.field
        ))),
    }
}

fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn event_msg(seq: u64, time: std::time::SystemTime, ev: &NetworkEvent) -> pb::NetworkEvent {
    pb::NetworkEvent {
        seq,
        time: Some(timestamp(time)),
        network: Some(network_msg(&ev.network)),
        event: Some(pb::network_event::Event::Lifecycle(
            pb::network_event::Lifecycle {
                event: ev.event as i32,
                detail: 0,
            },
        )),
    }
}

fn lost_msg(first_available: u64) -> pb::NetworkEvent {
    pb::NetworkEvent {
        seq: first_available.saturating_sub(1),
        time: Some(timestamp(std::time::SystemTime::now())),
        network: None,
        event: Some(pb::network_event::Event::EventsLost(
            pb::network_event::EventsLost {
                first_available_seq: first_available,
            },
        )),
    }
}

fn event_matches(filter: Option<&ObjRef>, ev: &NetworkEvent) -> bool {
    match filter {
        None => true,
        Some(ObjRef::Name(n)) => ev.network.name == *n,
        Some(ObjRef::Uuid(u)) => ev.network.uuid == *u,
        Some(ObjRef::Id(_)) => false,
    }
}

/// The generated service's stream type.
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::NetworkEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl NetworkService for Networkd {
    async fn list_all_networks(
        &self,
        req: Request<pb::ListAllNetworksRequest>,
    ) -> Result<Response<pb::ListAllNetworksResponse>, Status> {
        let f = req.into_inner().filter.unwrap_or_default();
        let nets = self.driver.list_all(ListFilter {
            active: f.active,
            persistent: f.persistent,
            autostart: f.autostart,
        });
        Ok(Response::new(pb::ListAllNetworksResponse {
            networks: nets.iter().map(network_msg).collect(),
        }))
    }

    async fn lookup_network(
        &self,
        req: Request<pb::LookupNetworkRequest>,
    ) -> Result<Response<pb::LookupNetworkResponse>, Status> {
        let r = obj_ref(req.get_ref().network.as_ref())?;
        let n = self.driver.lookup(&r)?;
        Ok(Response::new(pb::LookupNetworkResponse {
            network: Some(network_msg(&n)),
        }))
    }

    async fn define_network(
        &self,
        req: Request<pb::DefineNetworkRequest>,
    ) -> Result<Response<pb::DefineNetworkResponse>, Status> {
        let req = req.into_inner();
        let d = self.driver.clone();
        let n = to_completion(async move { d.define_xml(&req.xml, req.validate).await }).await?;
        Ok(Response::new(pb::DefineNetworkResponse {
            network: Some(network_msg(&n)),
        }))
    }

    async fn create_network(
        &self,
        req: Request<pb::CreateNetworkRequest>,
    ) -> Result<Response<pb::CreateNetworkResponse>, Status> {
        let req = req.into_inner();
        let d = self.driver.clone();
        let n = to_completion(async move { d.create_xml(&req.xml, req.validate).await }).await?;
        Ok(Response::new(pb::CreateNetworkResponse {
            network: Some(network_msg(&n)),
        }))
    }

    async fn undefine_network(
        &self,
        req: Request<pb::UndefineNetworkRequest>,
    ) -> Result<Response<pb::UndefineNetworkResponse>, Status> {
        let r = obj_ref(req.get_ref().network.as_ref())?;
        let d = self.driver.clone();
        to_completion(async move { d.undefine(&r).await }).await?;
        Ok(Response::new(pb::UndefineNetworkResponse {}))
    }

    async fn start_network(
        &self,
        req: Request<pb::StartNetworkRequest>,
    ) -> Result<Response<pb::StartNetworkResponse>, Status> {
        let r = obj_ref(req.get_ref().network.as_ref())?;
        let d = self.driver.clone();
        to_completion(async move { d.start(&r).await }).await?;
        Ok(Response::new(pb::StartNetworkResponse {}))
    }

    async fn destroy_network(
        &self,
        req: Request<pb::DestroyNetworkRequest>,
    ) -> Result<Response<pb::DestroyNetworkResponse>, Status> {
        let r = obj_ref(req.get_ref().network.as_ref())?;
        let d = self.driver.clone();
        to_completion(async move { d.destroy(&r).await }).await?;
        Ok(Response::new(pb::DestroyNetworkResponse {}))
    }

    async fn update_network(
        &self,
        req: Request<pb::UpdateNetworkRequest>,
    ) -> Result<Response<pb::UpdateNetworkResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.network.as_ref())?;
        let u = UpdateRequest {
            command: update_command(req.command)?,
            section: update_section(req.section)?,
            parent_index: req.parent_index,
            xml: req.xml,
            live: req.live,
            config: req.config,
        };
        let d = self.driver.clone();
        to_completion(async move { d.update(&r, &u).await }).await?;
        Ok(Response::new(pb::UpdateNetworkResponse {}))
    }

    async fn set_network_autostart(
        &self,
        req: Request<pb::SetNetworkAutostartRequest>,
    ) -> Result<Response<pb::SetNetworkAutostartResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.network.as_ref())?;
        let d = self.driver.clone();
        to_completion(async move { d.set_autostart(&r, req.autostart).await }).await?;
        Ok(Response::new(pb::SetNetworkAutostartResponse {}))
    }

    async fn get_network_autostart(
        &self,
        req: Request<pb::GetNetworkAutostartRequest>,
    ) -> Result<Response<pb::GetNetworkAutostartResponse>, Status> {
        let r = obj_ref(req.get_ref().network.as_ref())?;
        Ok(Response::new(pb::GetNetworkAutostartResponse {
            autostart: self.driver.get_autostart(&r)?,
        }))
    }

    async fn get_network_bridge_name(
        &self,
        req: Request<pb::GetNetworkBridgeNameRequest>,
    ) -> Result<Response<pb::GetNetworkBridgeNameResponse>, Status> {
        let r = obj_ref(req.get_ref().network.as_ref())?;
        Ok(Response::new(pb::GetNetworkBridgeNameResponse {
            bridge: self.driver.bridge_name(&r)?,
        }))
    }

    async fn get_network_xml(
        &self,
        req: Request<pb::GetNetworkXmlRequest>,
    ) -> Result<Response<pb::GetNetworkXmlResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.network.as_ref())?;
        Ok(Response::new(pb::GetNetworkXmlResponse {
            xml: self.driver.get_xml(&r, req.inactive)?,
        }))
    }

    async fn get_dhcp_leases(
        &self,
        req: Request<pb::GetDhcpLeasesRequest>,
    ) -> Result<Response<pb::GetDhcpLeasesResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.network.as_ref())?;
        let leases = self.driver.dhcp_leases(&r, req.mac.as_deref()).await?;
        Ok(Response::new(pb::GetDhcpLeasesResponse {
            leases: leases.iter().map(lease_msg).collect(),
        }))
    }

    async fn create_port(
        &self,
        req: Request<pb::CreatePortRequest>,
    ) -> Result<Response<pb::CreatePortResponse>, Status> {
        // reclaim: nothing is allocated beyond the registration, so a
        // reclaimed port is registered like a new one.
        let req = req.into_inner();
        let r = obj_ref(req.network.as_ref())?;
        let d = self.driver.clone();
        let p =
            to_completion(async move { d.create_port(&r, &req.xml, req.validate).await }).await?;
        Ok(Response::new(pb::CreatePortResponse {
            port: Some(port_msg(&p)),
        }))
    }

    async fn lookup_port(
        &self,
        req: Request<pb::LookupPortRequest>,
    ) -> Result<Response<pb::LookupPortResponse>, Status> {
        let (r, u) = port_ref(req.get_ref().port.as_ref())?;
        let p = self.driver.lookup_port(&r, &u)?;
        Ok(Response::new(pb::LookupPortResponse {
            port: Some(port_msg(&p)),
        }))
    }

    async fn list_all_ports(
        &self,
        req: Request<pb::ListAllPortsRequest>,
    ) -> Result<Response<pb::ListAllPortsResponse>, Status> {
        let r = obj_ref(req.get_ref().network.as_ref())?;
        let ports = self.driver.list_ports(&r)?;
        Ok(Response::new(pb::ListAllPortsResponse {
            ports: ports.iter().map(port_msg).collect(),
        }))
    }

    async fn get_port_xml(
        &self,
        req: Request<pb::GetPortXmlRequest>,
    ) -> Result<Response<pb::GetPortXmlResponse>, Status> {
        let (r, u) = port_ref(req.get_ref().port.as_ref())?;
        Ok(Response::new(pb::GetPortXmlResponse {
            xml: self.driver.lookup_port(&r, &u)?.xml,
        }))
    }

    async fn delete_port(
        &self,
        req: Request<pb::DeletePortRequest>,
    ) -> Result<Response<pb::DeletePortResponse>, Status> {
        let (r, u) = port_ref(req.get_ref().port.as_ref())?;
        let d = self.driver.clone();
        to_completion(async move { d.delete_port(&r, &u).await }).await?;
        Ok(Response::new(pb::DeletePortResponse {}))
    }

    async fn get_port_parameters(
        &self,
        req: Request<pb::GetPortParametersRequest>,
    ) -> Result<Response<pb::GetPortParametersResponse>, Status> {
        let (r, u) = port_ref(req.get_ref().port.as_ref())?;
        let params = self.driver.port_params(&r, &u)?;
        Ok(Response::new(pb::GetPortParametersResponse {
            params: params
                .into_iter()
                .map(|(field, v)| cpb::TypedParam {
                    field,
                    value: Some(cpb::typed_param::Value::Uint(
                        u32::try_from(v).unwrap_or(u32::MAX),
                    )),
                })
                .collect(),
        }))
    }

    async fn set_port_parameters(
        &self,
        req: Request<pb::SetPortParametersRequest>,
    ) -> Result<Response<pb::SetPortParametersResponse>, Status> {
        let req = req.into_inner();
        let (r, u) = port_ref(req.port.as_ref())?;
        let params = req
            .params
            .iter()
            .map(|p| Ok((p.field.clone(), param_value(p)?)))
            .collect::<Result<Vec<_>, Status>>()?;
        let d = self.driver.clone();
        to_completion(async move { d.set_port_params(&r, &u, &params).await }).await?;
        Ok(Response::new(pb::SetPortParametersResponse {}))
    }

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        let filter = match &req.network {
            Some(n) if n.by.is_some() => Some(obj_ref(Some(n))?),
            _ => None,
        };
        let sub = self.driver.watch(req.resume_after_seq);
        let stream = futures::stream::unfold((sub, filter), |(mut sub, filter)| async move {
            loop {
                match sub.next().await? {
                    Item::Lost { first_available } => {
                        return Some((Ok(lost_msg(first_available)), (sub, filter)));
                    }
                    Item::Event(e) if event_matches(filter.as_ref(), &e.payload) => {
                        let msg = event_msg(e.seq, e.time, &e.payload);
                        return Some((Ok(msg), (sub, filter)));
                    }
                    Item::Event(_) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
