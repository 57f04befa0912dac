//! Transport: `virt.domain.v1.DomainService` over the driver. Converts
//! proto to driver types and back, nothing else, except the one check
//! that depends on the caller: `secure` XML on a read-only socket. RPCs a
//! later change fills keep the generated stub (UNIMPLEMENTED naming the
//! method).

use std::pin::Pin;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use common::daemon::Daemon;
use common::daemon::clients::ClientInfo;
use common::events::Item;
use common::objlist::{ObjRef, format_uuid, parse_uuid};
use common::xml::FormatFlags;
use common::{ErrorCode, ErrorDomain, VirtError};
use futures::Stream;
use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_server::{DomainService, DomainServiceServer};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::domain_event::{DomainEvent, EventBody};
use crate::domain_obj::{DomainIdent, DomainState};
use crate::driver::{DomainSummary, ListFilter, QemuDriver, REBOOT_TIMEOUT, ShutdownModes};

/// The daemon: its driver behind the gRPC service.
#[derive(Clone, Debug)]
pub struct Qemud {
    driver: Arc<QemuDriver>,
}

impl Qemud {
    pub fn new(driver: Arc<QemuDriver>) -> Qemud {
        Qemud { driver }
    }

    /// Ends event streams once `stopping` turns true, so that the graceful
    /// stop does not wait for watchers.
    pub fn close_events_on(&self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let driver = self.driver.clone();
        tokio::spawn(async move {
            let _ = stopping.wait_for(|s| *s).await;
            driver.close_events();
        });
    }
}

impl Daemon for Qemud {
    fn routes(&self) -> Routes {
        Routes::new(fast::FastPaths::new(self.clone()))
    }

    fn service_names(&self) -> Vec<&'static str> {
        vec!["virt.domain.v1.DomainService"]
    }

    fn is_active(&self) -> bool {
        self.driver.any_active()
    }

    async fn reload(&self) -> Result<(), VirtError> {
        self.driver.load_definitions();
        Ok(())
    }

    async fn shutdown(&self) {
        self.driver.close_events();
    }
}

// === conversions ===

fn invalid_arg(msg: impl Into<String>) -> Status {
    VirtError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Qemu,
        format!("invalid argument: {}", msg.into()),
    )
    .to_status()
}

/// Runs a call that changes state in a task of its own, so that it
/// finishes even when the client goes away (`common::daemon::completion`).
async fn done<T, F>(call: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, VirtError>> + Send + 'static,
{
    common::daemon::completion::to_completion(ErrorDomain::Qemu, call).await
}

fn obj_ref(r: Option<&pb::DomainRef>) -> Result<ObjRef, Status> {
    match r.and_then(|r| r.by.as_ref()) {
        None => Err(invalid_arg("domain must be set (name, uuid or id)")),
        Some(pb::domain_ref::By::Name(n)) => Ok(ObjRef::Name(n.clone())),
        Some(pb::domain_ref::By::Uuid(u)) => parse_uuid(u).map(ObjRef::Uuid).ok_or_else(|| {
            invalid_arg(format!(
                "uuidstr in virDomainLookupByUUIDString must be a valid UUID, not '{u}'"
            ))
        }),
        Some(pb::domain_ref::By::Id(i)) => Ok(ObjRef::Id(*i)),
    }
}

fn unsupported_flag(flag: &str) -> Status {
    VirtError::new(
        ErrorCode::ArgumentUnsupported,
        ErrorDomain::Qemu,
        format!("argument unsupported: {flag} is not supported yet"),
    )
    .to_status()
}

/// libvirt's shutdown/reboot flag bits from the proto's mode list; an
/// empty list (or DEFAULT alone) is the ACPI power button.
fn shutdown_modes(modes: &[i32]) -> Result<ShutdownModes, Status> {
    let mut m = ShutdownModes::default();
    for &v in modes {
        match pb::ShutdownMode::try_from(v) {
            Ok(pb::ShutdownMode::Default) => {}
            Ok(pb::ShutdownMode::AcpiPowerBtn) => m.acpi = true,
            Ok(pb::ShutdownMode::GuestAgent) => m.agent = true,
            Ok(pb::ShutdownMode::Initctl) => m.initctl = true,
            Ok(pb::ShutdownMode::Signal) => m.signal = true,
            Ok(pb::ShutdownMode::Paravirt) => m.paravirt = true,
            Err(_) => return Err(invalid_arg(format!("unknown shutdown mode {v}"))),
        }
    }
    if m == ShutdownModes::default() {
        m.acpi = true;
    }
    Ok(m)
}

fn domain_msg(d: &DomainIdent) -> pb::Domain {
    pb::Domain {
        name: d.name.clone(),
        uuid: format_uuid(&d.uuid),
        id: d.id.unwrap_or(-1),
    }
}

fn state_msg(s: DomainState) -> i32 {
    pb::DomainState::try_from(s.number()).map_or(0, |s| s as i32)
}

fn summary_msg(s: &DomainSummary) -> pb::DomainSummary {
    pb::DomainSummary {
        domain: Some(pb::Domain {
            name: s.name().to_owned(),
            uuid: s.uuid.as_str().to_owned(),
            id: s.id.unwrap_or(-1),
        }),
        state: state_msg(s.state),
        reason: s.reason,
        persistent: s.persistent,
        autostart: s.autostart,
        has_managed_save: s.has_managed_save,
        title: s.title().to_owned(),
    }
}

fn list_filter(f: Option<&pb::DomainListFilter>) -> ListFilter {
    let Some(f) = f else {
        return ListFilter::default();
    };
    ListFilter {
        active: f.active,
        persistent: f.persistent,
        autostart: f.autostart,
        managed_save: f.managed_save,
        has_snapshot: f.has_snapshot,
        has_checkpoint: f.has_checkpoint,
        states: f
            .states
            .iter()
            .filter_map(|s| DomainState::from_number(*s))
            .collect(),
    }
}

fn event_msg(seq: u64, time: std::time::SystemTime, ev: &DomainEvent) -> pb::DomainEvent {
    use pb::domain_event::Event;
    let event = match &ev.body {
        EventBody::Lifecycle { event, detail } => Event::Lifecycle(pb::domain_event::Lifecycle {
            event: *event as i32,
            detail: *detail,
        }),
        EventBody::Reboot => Event::Reboot(pb::domain_event::Reboot {}),
        EventBody::DeviceAdded { alias } => Event::DeviceAdded(pb::domain_event::DeviceAdded {
            alias: alias.clone(),
        }),
        EventBody::DeviceRemoved { alias } => {
            Event::DeviceRemoved(pb::domain_event::DeviceRemoved {
                alias: alias.clone(),
            })
        }
        EventBody::DeviceRemovalFailed { alias } => {
            Event::DeviceRemovalFailed(pb::domain_event::DeviceRemovalFailed {
                alias: alias.clone(),
            })
        }
    };
    pb::DomainEvent {
        seq,
        time: Some(timestamp(time)),
        domain: Some(domain_msg(&ev.domain)),
        event: Some(event),
    }
}

fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn lost_msg(first_available: u64) -> pb::DomainEvent {
    pb::DomainEvent {
        seq: first_available.saturating_sub(1),
        time: Some(timestamp(std::time::SystemTime::now())),
        domain: None,
        event: Some(pb::domain_event::Event::EventsLost(
            pb::domain_event::EventsLost {
                first_available_seq: first_available,
            },
        )),
    }
}

/// Which events a watch shows.
#[derive(Debug)]
struct WatchFilter {
    domain: Option<ObjRef>,
    kinds: Vec<i32>,
}

impl WatchFilter {
    fn matches(&self, ev: &DomainEvent) -> bool {
        let domain_ok = match &self.domain {
            None => true,
            Some(ObjRef::Name(n)) => ev.domain.name == *n,
            Some(ObjRef::Uuid(u)) => ev.domain.uuid == *u,
            Some(ObjRef::Id(i)) => ev.domain.id == Some(*i),
        };
        domain_ok && (self.kinds.is_empty() || self.kinds.contains(&ev.body.kind_number()))
    }
}

/// Whether the caller came in on a read-only socket (or from nowhere we
/// know, which gets no more than read-only).
fn readonly<T>(req: &Request<T>) -> bool {
    req.extensions()
        .get::<ClientInfo>()
        .is_none_or(ClientInfo::readonly)
}

/// The generated service's stream type (`tonic::codegen::BoxStream`).
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::DomainEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl DomainService for Qemud {
    async fn get_version(
        &self,
        _req: Request<pb::GetVersionRequest>,
    ) -> Result<Response<pb::GetVersionResponse>, Status> {
        let v = self.driver.version().await?;
        Ok(Response::new(pb::GetVersionResponse {
            hypervisor_type: "QEMU".to_owned(),
            hypervisor_version: v.hypervisor.to_string(),
            hypervisor_version_number: v.hypervisor.packed(),
            daemon_name: "virtqemud".to_owned(),
            daemon_version: v.daemon.to_string(),
            daemon_version_number: v.daemon.packed(),
        }))
    }

    async fn get_hostname(
        &self,
        _req: Request<pb::GetHostnameRequest>,
    ) -> Result<Response<pb::GetHostnameResponse>, Status> {
        Ok(Response::new(pb::GetHostnameResponse {
            hostname: self.driver.hostname()?,
        }))
    }

    async fn node_get_info(
        &self,
        _req: Request<pb::NodeGetInfoRequest>,
    ) -> Result<Response<pb::NodeGetInfoResponse>, Status> {
        let n = self.driver.node_info()?;
        Ok(Response::new(pb::NodeGetInfoResponse {
            model: n.model,
            memory_kib: n.memory_kib,
            cpus: n.cpus,
            mhz: n.mhz,
            nodes: n.nodes,
            sockets: n.sockets,
            cores: n.cores,
            threads: n.threads,
        }))
    }

    async fn define_xml(
        &self,
        req: Request<pb::DefineXmlRequest>,
    ) -> Result<Response<pb::DefineXmlResponse>, Status> {
        let req = req.into_inner();
        let drv = self.driver.clone();
        let d = done(async move { drv.define_xml(&req.xml, req.validate).await }).await?;
        Ok(Response::new(pb::DefineXmlResponse {
            domain: Some(domain_msg(&d)),
        }))
    }

    async fn undefine(
        &self,
        req: Request<pb::UndefineRequest>,
    ) -> Result<Response<pb::UndefineResponse>, Status> {
        // No managed save, snapshot, checkpoint, NVRAM or TPM state exists
        // yet, so the flags that remove or keep them change nothing.
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let drv = self.driver.clone();
        done(async move { drv.undefine(&r).await }).await?;
        Ok(Response::new(pb::UndefineResponse {}))
    }

    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        let req = req.into_inner();
        if req.autodestroy {
            return Err(unsupported_flag("autodestroy"));
        }
        if req.reset_nvram {
            return Err(unsupported_flag("reset-nvram"));
        }
        let drv = self.driver.clone();
        let d = done(async move {
            drv.create_xml(&req.xml, req.start_paused, req.validate)
                .await
        })
        .await?;
        Ok(Response::new(pb::CreateResponse {
            domain: Some(domain_msg(&d)),
        }))
    }

    async fn start(
        &self,
        req: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        if req.autodestroy {
            return Err(unsupported_flag("autodestroy"));
        }
        if req.reset_nvram {
            return Err(unsupported_flag("reset-nvram"));
        }
        // No managed save exists yet: bypass_cache and force_boot change
        // nothing.
        let drv = self.driver.clone();
        let d = done(async move { drv.start(&r, req.paused).await }).await?;
        Ok(Response::new(pb::StartResponse {
            domain: Some(domain_msg(&d)),
        }))
    }

    async fn shutdown(
        &self,
        req: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let modes = shutdown_modes(&req.modes)?;
        let drv = self.driver.clone();
        done(async move { drv.shutdown(&r, modes).await }).await?;
        Ok(Response::new(pb::ShutdownResponse {}))
    }

    async fn reboot(
        &self,
        req: Request<pb::RebootRequest>,
    ) -> Result<Response<pb::RebootResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let modes = shutdown_modes(&req.modes)?;
        let timeout = match req.timeout_ms {
            0 => REBOOT_TIMEOUT,
            ms => std::time::Duration::from_millis(u64::from(ms)),
        };
        let drv = self.driver.clone();
        done(async move { drv.reboot(&r, modes, timeout).await }).await?;
        Ok(Response::new(pb::RebootResponse {}))
    }

    async fn attach_device(
        &self,
        req: Request<pb::AttachDeviceRequest>,
    ) -> Result<Response<pb::AttachDeviceResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let f = req.flags.unwrap_or_default();
        let drv = self.driver.clone();
        done(async move { drv.attach_device(&r, &req.xml, f.live, f.config).await }).await?;
        Ok(Response::new(pb::AttachDeviceResponse {}))
    }

    async fn detach_device(
        &self,
        req: Request<pb::DetachDeviceRequest>,
    ) -> Result<Response<pb::DetachDeviceResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let f = req.flags.unwrap_or_default();
        // A removal the guest has not completed yet is not an error (as
        // libvirt): it completes later, with a DeviceRemoved event.
        let drv = self.driver.clone();
        done(async move { drv.detach_device(&r, &req.xml, f.live, f.config).await }).await?;
        Ok(Response::new(pb::DetachDeviceResponse {}))
    }

    async fn detach_device_alias(
        &self,
        req: Request<pb::DetachDeviceAliasRequest>,
    ) -> Result<Response<pb::DetachDeviceAliasResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let f = req.flags.unwrap_or_default();
        let drv = self.driver.clone();
        done(async move {
            drv.detach_device_alias(&r, &req.alias, f.live, f.config)
                .await
        })
        .await?;
        Ok(Response::new(pb::DetachDeviceAliasResponse {}))
    }

    async fn update_device(
        &self,
        req: Request<pb::UpdateDeviceRequest>,
    ) -> Result<Response<pb::UpdateDeviceResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let f = req.flags.unwrap_or_default();
        let drv = self.driver.clone();
        done(async move {
            drv.update_device(&r, &req.xml, f.live, f.config, f.force)
                .await
        })
        .await?;
        Ok(Response::new(pb::UpdateDeviceResponse {}))
    }

    async fn reset(
        &self,
        req: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::ResetResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let drv = self.driver.clone();
        done(async move { drv.reset(&r).await }).await?;
        Ok(Response::new(pb::ResetResponse {}))
    }

    async fn destroy(
        &self,
        req: Request<pb::DestroyRequest>,
    ) -> Result<Response<pb::DestroyResponse>, Status> {
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let drv = self.driver.clone();
        done(async move {
            drv.destroy(&r, req.graceful).await?;
            if req.remove_logs {
                drv.remove_logs(&r);
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(pb::DestroyResponse {}))
    }

    async fn suspend(
        &self,
        req: Request<pb::SuspendRequest>,
    ) -> Result<Response<pb::SuspendResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let drv = self.driver.clone();
        done(async move { drv.suspend(&r).await }).await?;
        Ok(Response::new(pb::SuspendResponse {}))
    }

    async fn resume(
        &self,
        req: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let drv = self.driver.clone();
        done(async move { drv.resume(&r).await }).await?;
        Ok(Response::new(pb::ResumeResponse {}))
    }

    async fn domain_xml_to_native(
        &self,
        req: Request<pb::DomainXmlToNativeRequest>,
    ) -> Result<Response<pb::DomainXmlToNativeResponse>, Status> {
        let req = req.into_inner();
        let native_config = self.driver.xml_to_native(&req.native_format, &req.xml)?;
        Ok(Response::new(pb::DomainXmlToNativeResponse {
            native_config,
        }))
    }

    async fn lookup_domain(
        &self,
        req: Request<pb::LookupDomainRequest>,
    ) -> Result<Response<pb::LookupDomainResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let d = self.driver.lookup(&r)?;
        Ok(Response::new(pb::LookupDomainResponse {
            domain: Some(domain_msg(&d)),
        }))
    }

    async fn list_all_domains(
        &self,
        req: Request<pb::ListAllDomainsRequest>,
    ) -> Result<Response<pb::ListAllDomainsResponse>, Status> {
        let filter = list_filter(req.get_ref().filter.as_ref());
        let domains = self
            .driver
            .list_all(&filter)
            .iter()
            .map(summary_msg)
            .collect();
        Ok(Response::new(pb::ListAllDomainsResponse { domains }))
    }

    async fn get_xml(
        &self,
        req: Request<pb::GetXmlRequest>,
    ) -> Result<Response<pb::GetXmlResponse>, Status> {
        if req.get_ref().secure && readonly(&req) {
            return Err(VirtError::new(
                ErrorCode::OperationDenied,
                ErrorDomain::Qemu,
                "operation forbidden: virDomainGetXMLDesc with secure flag",
            )
            .into());
        }
        let req = req.into_inner();
        let r = obj_ref(req.domain.as_ref())?;
        let flags = FormatFlags {
            inactive: req.inactive,
            secure: req.secure,
            migratable: req.migratable,
        };
        Ok(Response::new(pb::GetXmlResponse {
            xml: self.driver.get_xml(&r, flags)?.to_string(),
        }))
    }

    async fn get_state(
        &self,
        req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let (state, reason) = self.driver.get_state(&r)?;
        Ok(Response::new(pb::GetStateResponse {
            state: state_msg(state),
            reason,
        }))
    }

    async fn get_info(
        &self,
        req: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::GetInfoResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let i = self.driver.get_info(&r)?;
        Ok(Response::new(pb::GetInfoResponse {
            state: state_msg(i.state),
            max_mem_kib: i.max_mem_kib,
            memory_kib: i.memory_kib,
            nr_virt_cpu: i.nr_virt_cpu,
            cpu_time_ns: i.cpu_time_ns,
        }))
    }

    async fn set_autostart(
        &self,
        req: Request<pb::SetAutostartRequest>,
    ) -> Result<Response<pb::SetAutostartResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        let (drv, on) = (self.driver.clone(), req.get_ref().autostart);
        done(async move { drv.set_autostart(&r, on).await }).await?;
        Ok(Response::new(pb::SetAutostartResponse {}))
    }

    async fn get_autostart(
        &self,
        req: Request<pb::GetAutostartRequest>,
    ) -> Result<Response<pb::GetAutostartResponse>, Status> {
        let r = obj_ref(req.get_ref().domain.as_ref())?;
        Ok(Response::new(pb::GetAutostartResponse {
            autostart: self.driver.get_autostart(&r)?,
        }))
    }

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        let domain = match &req.domain {
            Some(d) if d.by.is_some() => Some(obj_ref(Some(d))?),
            _ => None,
        };
        let filter = WatchFilter {
            domain,
            kinds: req.kinds,
        };
        let sub = self.driver.watch(req.resume_after_seq);
        let stream = futures::stream::unfold((sub, filter), |(mut sub, filter)| async move {
            loop {
                match sub.next().await? {
                    Item::Lost { first_available } => {
                        return Some((Ok(lost_msg(first_available)), (sub, filter)));
                    }
                    Item::Event(e) if filter.matches(&e.payload) => {
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

/// The generated `DomainServiceServer` with one method answered by hand:
/// ListAllDomains, whose reply is encoded straight from the domains (names
/// and titles read from the shared definitions under each domain's state
/// lock, UUIDs formatted once per domain) into one buffer. The generated
/// path would build a `pb::DomainSummary` with three `String`s per domain,
/// sort and encode them and free it all again. The bytes are the same
/// (`tests::fast_list_encodes_as_prost`). The unfiltered reply is kept and
/// sent again until the driver's list stamp changes
/// (`tests::cached_list_follows_changes`).
mod fast {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use std::sync::{Arc, Mutex, PoisonError};

    use prost::bytes::{BufMut, Bytes};
    use proto::codec::VirtDecoder;
    use proto::domain::v1 as pb;
    use tonic::body::Body;
    use tonic::codec::{Codec, EncodeBuf, Encoder};
    use tonic::server::NamedService;
    use tonic::{Request, Response, Status};

    use super::{DomainServiceServer, Qemud, list_filter, state_msg};
    use crate::driver::{ListFilter, ListStamp, Listed};

    const LIST_ALL: &str = "/virt.domain.v1.DomainService/ListAllDomains";

    /// See the module docs.
    #[derive(Clone, Debug)]
    pub struct FastPaths {
        qemud: Qemud,
        inner: DomainServiceServer<Qemud>,
        /// The last unfiltered listing, with the driver's stamp from
        /// before it was made: answered again as long as the stamp is the
        /// same (nothing was added, removed or locked for a change).
        cache: Arc<Mutex<Option<(ListStamp, Bytes)>>>,
    }

    impl FastPaths {
        pub fn new(qemud: Qemud) -> FastPaths {
            FastPaths {
                inner: DomainServiceServer::new(qemud.clone()),
                qemud,
                cache: Arc::default(),
            }
        }

        /// The encoded reply to a listing with `filter`.
        pub fn list(&self, filter: &ListFilter) -> Bytes {
            let driver = &self.qemud.driver;
            let unfiltered = *filter == ListFilter::default();
            let stamp = driver.list_stamp();
            if unfiltered
                && let Some((s, b)) = &*self.cache.lock().unwrap_or_else(PoisonError::into_inner)
                && *s == stamp
            {
                return b.clone();
            }
            let mut out = Vec::with_capacity(driver.domain_count() * 96);
            driver.for_each_listed(filter, |d| encode_listed(d, &mut out));
            let out = Bytes::from(out);
            if unfiltered {
                *self.cache.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((stamp, out.clone()));
            }
            out
        }
    }

    impl NamedService for FastPaths {
        const NAME: &'static str = <DomainServiceServer<Qemud> as NamedService>::NAME;
    }

    type BoxFuture = std::pin::Pin<
        Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static>,
    >;

    impl tower::Service<http::Request<Body>> for FastPaths {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<Body>) -> BoxFuture {
            if req.uri().path() != LIST_ALL {
                return self.inner.call(req);
            }
            let this = self.clone();
            Box::pin(async move {
                let method = tower::service_fn(move |r: Request<pb::ListAllDomainsRequest>| {
                    let filter = list_filter(r.get_ref().filter.as_ref());
                    let out = this.list(&filter);
                    std::future::ready(Ok::<_, Status>(Response::new(Encoded(out))))
                });
                let mut grpc = tonic::server::Grpc::new(ListCodec);
                Ok(grpc.unary(method, req).await)
            })
        }
    }

    /// A reply message, already encoded.
    #[derive(Debug)]
    pub struct Encoded(pub Bytes);

    #[derive(Debug, Default)]
    struct ListCodec;

    impl Codec for ListCodec {
        type Encode = Encoded;
        type Decode = pb::ListAllDomainsRequest;
        type Encoder = CopyEncoder;
        type Decoder = VirtDecoder<pb::ListAllDomainsRequest>;

        fn encoder(&mut self) -> CopyEncoder {
            CopyEncoder
        }

        fn decoder(&mut self) -> Self::Decoder {
            VirtDecoder::default()
        }
    }

    #[derive(Debug)]
    struct CopyEncoder;

    impl Encoder for CopyEncoder {
        type Item = Encoded;
        type Error = Status;

        fn encode(&mut self, item: Encoded, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.reserve(item.0.len());
            dst.put_slice(&item.0);
            Ok(())
        }
    }

    fn varint_len(v: u64) -> usize {
        // 7 bits per byte; 0 still takes one.
        (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Length of a string field (tag < 16), 0 when empty (left out).
    fn str_len(s: &[u8]) -> usize {
        if s.is_empty() {
            0
        } else {
            1 + varint_len(s.len() as u64) + s.len()
        }
    }

    /// int32 is sign-extended to 64 bits on the wire; 0 is left out.
    fn wire_i32(v: i32) -> u64 {
        i64::from(v) as u64
    }

    fn int32_len(v: i32) -> usize {
        if v == 0 {
            0
        } else {
            1 + varint_len(wire_i32(v))
        }
    }

    fn put_str(out: &mut Vec<u8>, key: u8, s: &[u8]) {
        if !s.is_empty() {
            out.push(key);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s);
        }
    }

    fn put_int32(out: &mut Vec<u8>, key: u8, v: i32) {
        if v != 0 {
            out.push(key);
            put_varint(out, wire_i32(v));
        }
    }

    fn put_bool(out: &mut Vec<u8>, key: u8, v: bool) {
        if v {
            out.push(key);
            out.push(1);
        }
    }

    /// Appends one `ListAllDomainsResponse.domains` entry (field 1): a
    /// `DomainSummary` whose fields are written in tag order with defaults
    /// left out, as prost does. Keys are `tag << 3 | wire type`.
    pub fn encode_listed(d: &Listed<'_>, out: &mut Vec<u8>) {
        let (name, uuid, title) = (d.name().as_bytes(), d.uuid.as_bytes(), d.title().as_bytes());
        let id = d.id.unwrap_or(-1);
        let state = state_msg(d.state);
        let dom_len = str_len(name) + str_len(uuid) + int32_len(id);
        let len = 1
            + varint_len(dom_len as u64)
            + dom_len
            + int32_len(state)
            + int32_len(d.reason)
            + 2 * (usize::from(d.persistent)
                + usize::from(d.autostart)
                + usize::from(d.has_managed_save))
            + str_len(title);
        out.push(1 << 3 | 2);
        put_varint(out, len as u64);
        let at = out.len();
        // DomainSummary.domain = 1: Domain { name = 1, uuid = 2, id = 3 }
        out.push(1 << 3 | 2);
        put_varint(out, dom_len as u64);
        put_str(out, 1 << 3 | 2, name);
        put_str(out, 2 << 3 | 2, uuid);
        put_int32(out, 3 << 3, id);
        put_int32(out, 2 << 3, state);
        put_int32(out, 3 << 3, d.reason);
        put_bool(out, 4 << 3, d.persistent);
        put_bool(out, 5 << 3, d.autostart);
        put_bool(out, 6 << 3, d.has_managed_save);
        put_str(out, 7 << 3 | 2, title);
        debug_assert_eq!(out.len() - at, len, "DomainSummary length");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::domain::{DomainDef, Uuid, VirtType};
    use common::objlist::UuidStr;
    use prost::Message;

    use super::*;
    use crate::driver::Listed;

    fn row(name: &str, title: Option<&str>, id: Option<i32>, state: DomainState) -> DomainSummary {
        let mut def = DomainDef::new(VirtType::Qemu, name, Uuid([0xa5; 16]));
        def.title = title.map(str::to_owned);
        DomainSummary {
            uuid: UuidStr::new(&def.uuid.0),
            def: Arc::new(def),
            id,
            state,
            reason: 0,
            persistent: true,
            autostart: false,
            has_managed_save: false,
        }
    }

    #[tokio::test]
    async fn cached_list_follows_changes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let driver = Arc::new(QemuDriver::with_config_dir(tmp.path().join("qemu")));
        let fast = fast::FastPaths::new(Qemud::new(driver.clone()));
        let list = || {
            pb::ListAllDomainsResponse::decode(fast.list(&ListFilter::default()))
                .expect("decodes")
                .domains
                .into_iter()
                .map(|d| (d.domain.expect("domain").name, d.autostart))
                .collect::<Vec<_>>()
        };
        let xml = |n: &str, u: &str| {
            format!(
                "<domain type='qemu'><name>{n}</name><uuid>{u}</uuid><memory>4096</memory>\
                 <os><type arch='x86_64'>hvm</type></os>\
                 <devices><emulator>/bin/sh</emulator></devices></domain>"
            )
        };
        assert!(list().is_empty());
        driver
            .define_xml(&xml("b", "c7a5fdbd-edaf-9455-926a-d65c16db1801"), false)
            .await
            .expect("b");
        assert_eq!(list(), [("b".to_owned(), false)]);
        assert_eq!(list(), [("b".to_owned(), false)]);
        driver
            .define_xml(&xml("a", "c7a5fdbd-edaf-9455-926a-d65c16db1802"), false)
            .await
            .expect("a");
        assert_eq!(list(), [("a".to_owned(), false), ("b".to_owned(), false)]);
        let b = ObjRef::Name("b".to_owned());
        driver.set_autostart(&b, true).await.expect("autostart");
        assert_eq!(list(), [("a".to_owned(), false), ("b".to_owned(), true)]);
        driver.undefine(&b).await.expect("undefine");
        assert_eq!(list(), [("a".to_owned(), false)]);
        // A filtered listing is never served from the cache.
        let only_autostart = ListFilter {
            autostart: Some(true),
            ..ListFilter::default()
        };
        assert!(fast.list(&only_autostart).is_empty());
    }

    #[test]
    fn fast_list_encodes_as_prost() {
        let mut rows = [
            row("a", None, None, DomainState::Shutoff),
            row("bé", Some("a title"), Some(7), DomainState::Running),
            row(&"n".repeat(300), Some(""), Some(0), DomainState::NoState),
            row("p", None, Some(i32::MAX), DomainState::Paused),
        ];
        rows[1].reason = -3;
        rows[1].autostart = true;
        rows[2].persistent = false;
        rows[3].has_managed_save = true;
        rows[3].reason = 1;
        for n in [0, 1, rows.len()] {
            let want = pb::ListAllDomainsResponse {
                domains: rows[..n].iter().map(summary_msg).collect(),
            }
            .encode_to_vec();
            let mut got = Vec::new();
            for s in &rows[..n] {
                fast::encode_listed(
                    &Listed {
                        def: &s.def,
                        uuid: &s.uuid,
                        id: s.id,
                        state: s.state,
                        reason: s.reason,
                        persistent: s.persistent,
                        autostart: s.autostart,
                        has_managed_save: s.has_managed_save,
                    },
                    &mut got,
                );
            }
            assert_eq!(got, want, "{n} rows");
        }
    }
}
