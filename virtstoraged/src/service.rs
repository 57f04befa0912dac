//! Transport: `virt.storage.v1.StorageService` over the driver. Converts
//! proto to driver types and back, nothing else. Calls that change
//! something run in a task of their own, so a client that hangs up
//! mid-call cannot leave a change half done.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use common::daemon::Daemon;
use common::events::Item;
use common::objlist::{ObjRef, format_uuid, parse_uuid};
use common::storage::PoolType;
use common::{ErrorCode, ErrorDomain, VirtError};
use futures::Stream;
use prost::Message as _;
use prost::bytes::BufMut as _;
use proto::codec::VirtDecoder;
use proto::storage::v1 as pb;
use proto::storage::v1::storage_service_server::{StorageService, StorageServiceServer};
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use crate::backend::{BuildFlags, CreateFlags};
use crate::driver::{PoolFilter, StorageDriver, VolIdent, VolRef};
use crate::event::{EventBody, PoolEvent};
use crate::pool_obj::PoolIdent;
use crate::wipe::Algorithm;

/// The daemon: its driver behind the gRPC service.
#[derive(Clone, Debug)]
pub struct Storaged {
    driver: Arc<StorageDriver>,
}

impl Storaged {
    /// The service of `driver`.
    pub fn new(driver: Arc<StorageDriver>) -> Storaged {
        Storaged { driver }
    }

    /// Ends event streams once `stopping` turns true.
    pub fn close_events_on(&self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let driver = self.driver.clone();
        tokio::spawn(async move {
            let _ = stopping.wait_for(|s| *s).await;
            driver.close_events();
        });
    }
}

impl Daemon for Storaged {
    fn routes(&self) -> Routes {
        Routes::new(Router {
            generated: StorageServiceServer::new(self.clone()),
            storaged: self.clone(),
        })
    }

    fn service_names(&self) -> Vec<&'static str> {
        vec!["virt.storage.v1.StorageService"]
    }

    async fn reload(&self) -> Result<(), VirtError> {
        self.driver.load_definitions();
        Ok(())
    }

    async fn shutdown(&self) {
        self.driver.close_events();
    }
}

// === the router: ListAllVolumes from the pool's kept listing ===

/// The gRPC path of ListAllVolumes.
const LIST_ALL_VOLUMES: &str = "/virt.storage.v1.StorageService/ListAllVolumes";

/// `StorageService` as generated, except ListAllVolumes: its reply is
/// encoded once per change of the pool's volumes and kept with the pool
/// ([`StorageDriver::list_volumes_rendered`]), so listing an unchanged pool
/// copies the kept bytes into the reply and does no per-volume work. The
/// bytes are exactly what prost would encode for the same reply. The ACL and
/// trace layers around the routes see the same path as before.
#[derive(Clone, Debug)]
struct Router {
    generated: StorageServiceServer<Storaged>,
    storaged: Storaged,
}

impl tonic::server::NamedService for Router {
    const NAME: &'static str =
        <StorageServiceServer<Storaged> as tonic::server::NamedService>::NAME;
}

impl Service<http::Request<tonic::body::Body>> for Router {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() != LIST_ALL_VOLUMES {
            return self.generated.call(req);
        }
        let svc = ListVolumes(self.storaged.driver.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ListCodec);
            Ok(grpc.unary(svc, req).await)
        })
    }
}

/// ListAllVolumes over the kept listing.
struct ListVolumes(Arc<StorageDriver>);

impl tonic::server::UnaryService<pb::ListAllVolumesRequest> for ListVolumes {
    type Response = Encoded;
    type Future = BoxFuture<Response<Encoded>, Status>;

    fn call(&mut self, req: Request<pb::ListAllVolumesRequest>) -> Self::Future {
        let driver = self.0.clone();
        Box::pin(async move {
            let r = pool_ref(req.get_ref().pool.as_ref())?;
            let bytes = driver.list_volumes_rendered(&r, |vols| {
                pb::ListAllVolumesResponse {
                    volumes: vols.into_iter().map(vol_msg).collect(),
                }
                .encode_to_vec()
                .into()
            })?;
            Ok(Response::new(Encoded(bytes)))
        })
    }
}

/// A reply message already encoded.
#[derive(Debug)]
struct Encoded(Arc<[u8]>);

/// Decodes requests as every generated server does (an undecodable one is
/// INVALID_ARGUMENT), sends [`Encoded`] replies as they are.
struct ListCodec;

impl Codec for ListCodec {
    type Encode = Encoded;
    type Decode = pb::ListAllVolumesRequest;
    type Encoder = RawEncoder;
    type Decoder = VirtDecoder<pb::ListAllVolumesRequest>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        VirtDecoder::default()
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

// === conversions ===

fn invalid_arg(msg: impl Into<String>) -> Status {
    VirtError::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Storage,
        format!("invalid argument: {}", msg.into()),
    )
    .to_status()
}

fn pool_ref(r: Option<&pb::PoolRef>) -> Result<ObjRef, Status> {
    match r.and_then(|r| r.by.as_ref()) {
        None => Err(invalid_arg("pool must be set (name or uuid)")),
        Some(pb::pool_ref::By::Name(n)) => Ok(ObjRef::Name(n.clone())),
        Some(pb::pool_ref::By::Uuid(u)) => parse_uuid(u).map(ObjRef::Uuid).ok_or_else(|| {
            invalid_arg(format!(
                "uuidstr in virStoragePoolLookupByUUIDString must be a valid UUID, not '{u}'"
            ))
        }),
    }
}

fn vol_ref(r: Option<&pb::VolumeRef>) -> Result<VolRef, Status> {
    match r.and_then(|r| r.by.as_ref()) {
        None => Err(invalid_arg("volume must be set (pool_volume, key or path)")),
        Some(pb::volume_ref::By::PoolVolume(pv)) => Ok(VolRef::Name {
            pool: pv.pool.clone(),
            name: pv.name.clone(),
        }),
        Some(pb::volume_ref::By::Key(k)) => Ok(VolRef::Key(k.clone())),
        Some(pb::volume_ref::By::Path(p)) => Ok(VolRef::Path(p.clone())),
    }
}

fn pool_msg(p: &PoolIdent) -> pb::Pool {
    pb::Pool {
        name: p.name.clone(),
        uuid: format_uuid(&p.uuid),
        active: p.active,
        persistent: p.persistent,
        autostart: p.autostart,
    }
}

fn vol_msg(v: VolIdent) -> pb::Volume {
    pb::Volume {
        name: v.name,
        key: v.key,
        path: v.path,
        pool: v.pool,
    }
}

fn pool_type(t: i32) -> Result<PoolType, Status> {
    Ok(match pb::PoolType::try_from(t) {
        Ok(pb::PoolType::Dir) => PoolType::Dir,
        Ok(pb::PoolType::Fs) => PoolType::Fs,
        Ok(pb::PoolType::Netfs) => PoolType::NetFs,
        Ok(pb::PoolType::Logical) => PoolType::Logical,
        Ok(pb::PoolType::Disk) => PoolType::Disk,
        Ok(pb::PoolType::Iscsi) => PoolType::Iscsi,
        Ok(pb::PoolType::Scsi) => PoolType::Scsi,
        Ok(pb::PoolType::Mpath) => PoolType::Mpath,
        Ok(pb::PoolType::Rbd) => PoolType::Rbd,
        Ok(pb::PoolType::Sheepdog) => PoolType::Sheepdog,
        Ok(pb::PoolType::Gluster) => PoolType::Gluster,
        Ok(pb::PoolType::Zfs) => PoolType::Zfs,
        Ok(pb::PoolType::Vstorage) => PoolType::Vstorage,
        Ok(pb::PoolType::IscsiDirect) => PoolType::IscsiDirect,
        Ok(pb::PoolType::Unspecified) | Err(_) => {
            return Err(invalid_arg(format!("unknown pool type {t}")));
        }
    })
}

fn wipe_algorithm(a: i32) -> Result<Algorithm, Status> {
    Ok(match pb::WipeAlgorithm::try_from(a) {
        Ok(pb::WipeAlgorithm::Zero) => Algorithm::Zero,
        Ok(pb::WipeAlgorithm::Nnsa) => Algorithm::Nnsa,
        Ok(pb::WipeAlgorithm::Dod) => Algorithm::Dod,
        Ok(pb::WipeAlgorithm::Bsi) => Algorithm::Bsi,
        Ok(pb::WipeAlgorithm::Gutmann) => Algorithm::Gutmann,
        Ok(pb::WipeAlgorithm::Schneier) => Algorithm::Schneier,
        Ok(pb::WipeAlgorithm::Pfitzner7) => Algorithm::Pfitzner7,
        Ok(pb::WipeAlgorithm::Pfitzner33) => Algorithm::Pfitzner33,
        Ok(pb::WipeAlgorithm::Random) => Algorithm::Random,
        Ok(pb::WipeAlgorithm::Trim) => Algorithm::Trim,
        Err(_) => return Err(invalid_arg(format!("unknown wipe algorithm {a}"))),
    })
}

/// The build flags of a create/start: `None` without a build.
fn create_build(
    build: bool,
    overwrite: bool,
    no_overwrite: bool,
) -> Result<Option<BuildFlags>, Status> {
    let n = usize::from(build) + usize::from(overwrite) + usize::from(no_overwrite);
    if n > 1 {
        return Err(invalid_arg(
            "at most one of build, build_overwrite and build_no_overwrite may be set",
        ));
    }
    Ok((n == 1).then_some(BuildFlags {
        overwrite,
        no_overwrite,
    }))
}

fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn event_msg(seq: u64, time: std::time::SystemTime, ev: &PoolEvent) -> pb::StorageEvent {
    use pb::storage_event::Event;
    let event = match ev.body {
        EventBody::Lifecycle(l) => Event::Lifecycle(pb::storage_event::Lifecycle {
            event: l as i32,
            detail: 0,
        }),
        EventBody::Refresh => Event::Refresh(pb::storage_event::Refresh {}),
    };
    pb::StorageEvent {
        seq,
        time: Some(timestamp(time)),
        pool: Some(pool_msg(&ev.pool)),
        event: Some(event),
    }
}

fn lost_msg(first_available: u64) -> pb::StorageEvent {
    pb::StorageEvent {
        seq: first_available.saturating_sub(1),
        time: Some(timestamp(std::time::SystemTime::now())),
        pool: None,
        event: Some(pb::storage_event::Event::EventsLost(
            pb::storage_event::EventsLost {
                first_available_seq: first_available,
            },
        )),
    }
}

/// Which events a watch shows.
#[derive(Debug)]
struct WatchFilter {
    pool: Option<ObjRef>,
    kinds: Vec<i32>,
}

impl WatchFilter {
    fn matches(&self, ev: &PoolEvent) -> bool {
        let pool_ok = match &self.pool {
            None => true,
            Some(ObjRef::Name(n)) => ev.pool.name == *n,
            Some(ObjRef::Uuid(u)) => ev.pool.uuid == *u,
            Some(ObjRef::Id(_)) => false,
        };
        pool_ok && (self.kinds.is_empty() || self.kinds.contains(&ev.body.kind_number()))
    }
}

/// Runs a change in a task of its own: it completes even if the client
/// goes away.
async fn detached<T, F>(f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: Future<Output = Result<T, VirtError>> + Send + 'static,
{
    common::daemon::completion::to_completion(ErrorDomain::Storage, f).await
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl StorageService for Storaged {
    async fn list_all_pools(
        &self,
        req: Request<pb::ListAllPoolsRequest>,
    ) -> Result<Response<pb::ListAllPoolsResponse>, Status> {
        let filter = match &req.get_ref().filter {
            None => PoolFilter::default(),
            Some(f) => PoolFilter {
                active: f.active,
                persistent: f.persistent,
                autostart: f.autostart,
                types: f
                    .types
                    .iter()
                    .map(|t| pool_type(*t))
                    .collect::<Result<_, _>>()?,
            },
        };
        let pools = self
            .driver
            .list_pools(&filter)
            .iter()
            .map(pool_msg)
            .collect();
        Ok(Response::new(pb::ListAllPoolsResponse { pools }))
    }

    async fn lookup_pool(
        &self,
        req: Request<pb::LookupPoolRequest>,
    ) -> Result<Response<pb::LookupPoolResponse>, Status> {
        let p = match &req.get_ref().by {
            None => return Err(invalid_arg("pool, volume or target_path must be set")),
            Some(pb::lookup_pool_request::By::Pool(p)) => {
                self.driver.lookup_pool(&pool_ref(Some(p))?)?
            }
            Some(pb::lookup_pool_request::By::Volume(v)) => {
                self.driver.pool_of_volume(&vol_ref(Some(v))?)?
            }
            Some(pb::lookup_pool_request::By::TargetPath(t)) => {
                self.driver.lookup_pool_by_target(t)?
            }
        };
        Ok(Response::new(pb::LookupPoolResponse {
            pool: Some(pool_msg(&p)),
        }))
    }

    async fn define_pool(
        &self,
        req: Request<pb::DefinePoolRequest>,
    ) -> Result<Response<pb::DefinePoolResponse>, Status> {
        let req = req.into_inner();
        let d = self.driver.clone();
        let p = detached(async move { d.define_pool(&req.xml, req.validate).await }).await?;
        Ok(Response::new(pb::DefinePoolResponse {
            pool: Some(pool_msg(&p)),
        }))
    }

    async fn create_pool(
        &self,
        req: Request<pb::CreatePoolRequest>,
    ) -> Result<Response<pb::CreatePoolResponse>, Status> {
        let req = req.into_inner();
        let build = create_build(req.build, req.build_overwrite, req.build_no_overwrite)?;
        let d = self.driver.clone();
        let p = detached(async move { d.create_pool(&req.xml, build).await }).await?;
        Ok(Response::new(pb::CreatePoolResponse {
            pool: Some(pool_msg(&p)),
        }))
    }

    async fn undefine_pool(
        &self,
        req: Request<pb::UndefinePoolRequest>,
    ) -> Result<Response<pb::UndefinePoolResponse>, Status> {
        let r = pool_ref(req.get_ref().pool.as_ref())?;
        let d = self.driver.clone();
        detached(async move { d.undefine_pool(&r).await }).await?;
        Ok(Response::new(pb::UndefinePoolResponse {}))
    }

    async fn build_pool(
        &self,
        req: Request<pb::BuildPoolRequest>,
    ) -> Result<Response<pb::BuildPoolResponse>, Status> {
        let req = req.into_inner();
        let r = pool_ref(req.pool.as_ref())?;
        let flags = BuildFlags {
            overwrite: req.overwrite,
            no_overwrite: req.no_overwrite,
        };
        let d = self.driver.clone();
        detached(async move { d.build_pool(&r, flags).await }).await?;
        Ok(Response::new(pb::BuildPoolResponse {}))
    }

    async fn start_pool(
        &self,
        req: Request<pb::StartPoolRequest>,
    ) -> Result<Response<pb::StartPoolResponse>, Status> {
        let req = req.into_inner();
        let r = pool_ref(req.pool.as_ref())?;
        let build = create_build(req.build, req.build_overwrite, req.build_no_overwrite)?;
        let d = self.driver.clone();
        detached(async move {
            d.start_pool(&r, build.unwrap_or_default(), build.is_some())
                .await
        })
        .await?;
        Ok(Response::new(pb::StartPoolResponse {}))
    }

    async fn destroy_pool(
        &self,
        req: Request<pb::DestroyPoolRequest>,
    ) -> Result<Response<pb::DestroyPoolResponse>, Status> {
        let r = pool_ref(req.get_ref().pool.as_ref())?;
        let d = self.driver.clone();
        detached(async move { d.destroy_pool(&r).await }).await?;
        Ok(Response::new(pb::DestroyPoolResponse {}))
    }

    async fn delete_pool(
        &self,
        req: Request<pb::DeletePoolRequest>,
    ) -> Result<Response<pb::DeletePoolResponse>, Status> {
        let req = req.into_inner();
        let r = pool_ref(req.pool.as_ref())?;
        let d = self.driver.clone();
        detached(async move { d.delete_pool(&r, req.zeroed).await }).await?;
        Ok(Response::new(pb::DeletePoolResponse {}))
    }

    async fn refresh_pool(
        &self,
        req: Request<pb::RefreshPoolRequest>,
    ) -> Result<Response<pb::RefreshPoolResponse>, Status> {
        let r = pool_ref(req.get_ref().pool.as_ref())?;
        let d = self.driver.clone();
        detached(async move { d.refresh_pool(&r).await }).await?;
        Ok(Response::new(pb::RefreshPoolResponse {}))
    }

    async fn set_pool_autostart(
        &self,
        req: Request<pb::SetPoolAutostartRequest>,
    ) -> Result<Response<pb::SetPoolAutostartResponse>, Status> {
        let req = req.into_inner();
        let r = pool_ref(req.pool.as_ref())?;
        let d = self.driver.clone();
        detached(async move { d.set_autostart(&r, req.autostart).await }).await?;
        Ok(Response::new(pb::SetPoolAutostartResponse {}))
    }

    async fn get_pool_autostart(
        &self,
        req: Request<pb::GetPoolAutostartRequest>,
    ) -> Result<Response<pb::GetPoolAutostartResponse>, Status> {
        let r = pool_ref(req.get_ref().pool.as_ref())?;
        Ok(Response::new(pb::GetPoolAutostartResponse {
            autostart: self.driver.get_autostart(&r)?,
        }))
    }

    async fn get_pool_info(
        &self,
        req: Request<pb::GetPoolInfoRequest>,
    ) -> Result<Response<pb::GetPoolInfoResponse>, Status> {
        let r = pool_ref(req.get_ref().pool.as_ref())?;
        let i = self.driver.pool_info(&r)?;
        Ok(Response::new(pb::GetPoolInfoResponse {
            state: i.state as i32,
            capacity: i.sizes.capacity,
            allocation: i.sizes.allocation,
            available: i.sizes.available,
        }))
    }

    async fn get_pool_xml(
        &self,
        req: Request<pb::GetPoolXmlRequest>,
    ) -> Result<Response<pb::GetPoolXmlResponse>, Status> {
        let r = pool_ref(req.get_ref().pool.as_ref())?;
        Ok(Response::new(pb::GetPoolXmlResponse {
            xml: self.driver.pool_xml(&r, req.get_ref().inactive)?,
        }))
    }

    async fn find_pool_sources(
        &self,
        req: Request<pb::FindPoolSourcesRequest>,
    ) -> Result<Response<pb::FindPoolSourcesResponse>, Status> {
        let req = req.into_inner();
        let t = pool_type(req.r#type)?;
        let d = self.driver.clone();
        let xml = detached(async move { d.find_sources(t, &req.src_spec).await }).await?;
        Ok(Response::new(pb::FindPoolSourcesResponse { xml }))
    }

    async fn get_pool_capabilities(
        &self,
        _req: Request<pb::GetPoolCapabilitiesRequest>,
    ) -> Result<Response<pb::GetPoolCapabilitiesResponse>, Status> {
        Ok(Response::new(pb::GetPoolCapabilitiesResponse {
            xml: self.driver.capabilities(),
        }))
    }

    /// Not reached through the daemon's routes ([`Router`] answers
    /// ListAllVolumes from the kept listing); the same reply, built anew.
    async fn list_all_volumes(
        &self,
        req: Request<pb::ListAllVolumesRequest>,
    ) -> Result<Response<pb::ListAllVolumesResponse>, Status> {
        let r = pool_ref(req.get_ref().pool.as_ref())?;
        let volumes = self
            .driver
            .list_volumes(&r)?
            .into_iter()
            .map(vol_msg)
            .collect();
        Ok(Response::new(pb::ListAllVolumesResponse { volumes }))
    }

    async fn lookup_volume(
        &self,
        req: Request<pb::LookupVolumeRequest>,
    ) -> Result<Response<pb::LookupVolumeResponse>, Status> {
        let r = vol_ref(req.get_ref().volume.as_ref())?;
        Ok(Response::new(pb::LookupVolumeResponse {
            volume: Some(vol_msg(self.driver.lookup_volume(&r)?)),
        }))
    }

    async fn create_volume(
        &self,
        req: Request<pb::CreateVolumeRequest>,
    ) -> Result<Response<pb::CreateVolumeResponse>, Status> {
        let req = req.into_inner();
        let r = pool_ref(req.pool.as_ref())?;
        let flags = CreateFlags {
            prealloc_metadata: req.prealloc_metadata,
            reflink: false,
        };
        let d = self.driver.clone();
        let v = detached(async move {
            d.create_volume(&r, &req.xml, None, flags, req.validate)
                .await
        })
        .await?;
        Ok(Response::new(pb::CreateVolumeResponse {
            volume: Some(vol_msg(v)),
        }))
    }

    async fn create_volume_from(
        &self,
        req: Request<pb::CreateVolumeFromRequest>,
    ) -> Result<Response<pb::CreateVolumeFromResponse>, Status> {
        let req = req.into_inner();
        let r = pool_ref(req.pool.as_ref())?;
        let src = vol_ref(req.source.as_ref())?;
        let flags = CreateFlags {
            prealloc_metadata: req.prealloc_metadata,
            reflink: req.reflink,
        };
        let d = self.driver.clone();
        let v = detached(async move {
            d.create_volume(&r, &req.xml, Some(&src), flags, req.validate)
                .await
        })
        .await?;
        Ok(Response::new(pb::CreateVolumeFromResponse {
            volume: Some(vol_msg(v)),
        }))
    }

    async fn delete_volume(
        &self,
        req: Request<pb::DeleteVolumeRequest>,
    ) -> Result<Response<pb::DeleteVolumeResponse>, Status> {
        let req = req.into_inner();
        let r = vol_ref(req.volume.as_ref())?;
        let d = self.driver.clone();
        detached(async move { d.delete_volume(&r, req.zeroed, req.with_snapshots).await }).await?;
        Ok(Response::new(pb::DeleteVolumeResponse {}))
    }

    async fn wipe_volume(
        &self,
        req: Request<pb::WipeVolumeRequest>,
    ) -> Result<Response<pb::WipeVolumeResponse>, Status> {
        let req = req.into_inner();
        let r = vol_ref(req.volume.as_ref())?;
        let alg = wipe_algorithm(req.algorithm)?;
        let d = self.driver.clone();
        detached(async move { d.wipe_volume(&r, alg).await }).await?;
        Ok(Response::new(pb::WipeVolumeResponse {}))
    }

    async fn resize_volume(
        &self,
        req: Request<pb::ResizeVolumeRequest>,
    ) -> Result<Response<pb::ResizeVolumeResponse>, Status> {
        let req = req.into_inner();
        let r = vol_ref(req.volume.as_ref())?;
        let d = self.driver.clone();
        detached(async move {
            d.resize_volume(&r, req.capacity, req.allocate, req.delta, req.shrink)
                .await
        })
        .await?;
        Ok(Response::new(pb::ResizeVolumeResponse {}))
    }

    async fn get_volume_info(
        &self,
        req: Request<pb::GetVolumeInfoRequest>,
    ) -> Result<Response<pb::GetVolumeInfoResponse>, Status> {
        let r = vol_ref(req.get_ref().volume.as_ref())?;
        let i = self.driver.volume_info(&r).await?;
        Ok(Response::new(pb::GetVolumeInfoResponse {
            r#type: i.vol_type as i32,
            capacity: i.capacity,
            allocation: i.allocation,
            physical: i.physical,
        }))
    }

    async fn get_volume_xml(
        &self,
        req: Request<pb::GetVolumeXmlRequest>,
    ) -> Result<Response<pb::GetVolumeXmlResponse>, Status> {
        let r = vol_ref(req.get_ref().volume.as_ref())?;
        Ok(Response::new(pb::GetVolumeXmlResponse {
            xml: self.driver.volume_xml(&r).await?,
        }))
    }

    async fn get_volume_path(
        &self,
        req: Request<pb::GetVolumePathRequest>,
    ) -> Result<Response<pb::GetVolumePathResponse>, Status> {
        let r = vol_ref(req.get_ref().volume.as_ref())?;
        Ok(Response::new(pb::GetVolumePathResponse {
            path: self.driver.volume_path(&r)?,
        }))
    }

    async fn upload_volume(
        &self,
        req: Request<Streaming<pb::UploadVolumeRequest>>,
    ) -> Result<Response<pb::UploadVolumeResponse>, Status> {
        use pb::upload_volume_request::Msg;
        let mut stream = req.into_inner();
        let header = match stream.message().await?.and_then(|m| m.msg) {
            Some(Msg::Header(h)) => h,
            _ => return Err(invalid_arg("an upload starts with its header")),
        };
        let r = vol_ref(header.volume.as_ref())?;
        let mut up = self
            .driver
            .upload_begin(&r, header.offset, header.length, header.sparse)
            .await?;
        let mut ended = false;
        let streamed: Result<(), Status> = async {
            while let Some(m) = stream.message().await? {
                if ended {
                    return Err(invalid_arg("nothing may follow the end of an upload"));
                }
                match m.msg {
                    Some(Msg::Data(d)) => up.write(d).await?,
                    Some(Msg::Hole(n)) => up.hole(n).await?,
                    Some(Msg::End(_)) => ended = true,
                    Some(Msg::Header(_)) => {
                        return Err(invalid_arg("an upload has one header, first"));
                    }
                    None => {}
                }
            }
            Ok(())
        }
        .await;
        if let Err(s) = streamed {
            // Data goes into the volume as it arrives (as libvirt's
            // streams): a stream that fails after some was written says so.
            return Err(match up.progress() {
                (_, false) => s,
                (n, true) => Status::with_details(
                    s.code(),
                    format!(
                        "{}; the volume keeps what was written before this error ({n} bytes)",
                        s.message()
                    ),
                    s.details().to_vec().into(),
                ),
            });
        }
        if !ended {
            // A cancelled client looks like an end of stream to the server.
            return Err(VirtError::new(
                ErrorCode::OperationAborted,
                ErrorDomain::Storage,
                "operation aborted: the upload ended without its end message (cancelled); the data written so far stays in the volume",
            )
            .into());
        }
        let d = self.driver.clone();
        let bytes_written = detached(async move { d.upload_finish(up).await }).await?;
        Ok(Response::new(pb::UploadVolumeResponse { bytes_written }))
    }

    async fn download_volume(
        &self,
        req: Request<pb::DownloadVolumeRequest>,
    ) -> Result<Response<BoxStream<pb::DownloadVolumeChunk>>, Status> {
        use crate::driver::Chunk;
        use pb::download_volume_chunk::Chunk as PbChunk;
        let req = req.into_inner();
        let r = vol_ref(req.volume.as_ref())?;
        let dl = self
            .driver
            .download_begin(&r, req.offset, req.length, req.sparse)
            .await?;
        let stream = futures::stream::unfold(dl, |mut dl| async move {
            let item = match dl.next_chunk().await? {
                Ok(Chunk::Data(d)) => Ok(pb::DownloadVolumeChunk {
                    chunk: Some(PbChunk::Data(d)),
                }),
                Ok(Chunk::Hole(n)) => Ok(pb::DownloadVolumeChunk {
                    chunk: Some(PbChunk::Hole(n)),
                }),
                Err(e) => Err(Status::from(e)),
            };
            Some((item, dl))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<BoxStream<pb::StorageEvent>>, Status> {
        let req = req.into_inner();
        let pool = match &req.pool {
            Some(p) if p.by.is_some() => Some(pool_ref(Some(p))?),
            _ => None,
        };
        let filter = WatchFilter {
            pool,
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
