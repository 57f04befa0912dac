//! An in-process fake `StorageService` (the real virtstoraged side is
//! being written) on a Unix socket, and a `Ctl` talking to it: what the
//! pool and volume command tests run against.
//!
//! Pools: `default` (dir, running, persistent, autostart), `images` (fs,
//! inactive, persistent), `scratch` (dir, running, transient) and `bad`
//! (logical, running, persistent; every operation on it fails). Volumes:
//! `a.img`, `B.qcow2`, `ro.img` (refuses writes) and `flaky.img` (a
//! download breaks after the first chunk) in `default`; `s.raw` in
//! `scratch`.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use common::error::{ErrorCode, ErrorDomain, VirtError};
use proto::storage::v1 as pb;
use proto::storage::v1::storage_service_server::{StorageService, StorageServiceServer};
use tonic::codegen::tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::ctl::{Ctl, Settings};

/// UUID of `default`.
pub const U_DEFAULT: &str = "11111111-1111-1111-1111-111111111111";
/// UUID of `images`.
pub const U_IMAGES: &str = "22222222-2222-2222-2222-222222222222";
/// UUID of `scratch`.
pub const U_SCRATCH: &str = "33333333-3333-3333-3333-333333333333";
/// UUID of `bad`.
pub const U_BAD: &str = "44444444-4444-4444-4444-444444444444";

/// The chunk size of the fake's downloads.
pub const DOWNLOAD_CHUNK: usize = 256 << 10;

/// A pool of the fake.
#[derive(Clone, Debug)]
pub struct FakePool {
    pub name: String,
    pub uuid: String,
    pub ty: pb::PoolType,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub state: pb::PoolState,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

impl FakePool {
    fn proto(&self) -> pb::Pool {
        pb::Pool {
            name: self.name.clone(),
            uuid: self.uuid.clone(),
            active: self.active,
            persistent: self.persistent,
            autostart: self.autostart,
        }
    }
}

/// A volume of the fake.
#[derive(Clone, Debug)]
pub struct FakeVol {
    pub pool: String,
    pub name: String,
    pub ty: pb::VolumeType,
    pub capacity: u64,
    pub allocation: u64,
    pub physical: u64,
    pub data: Vec<u8>,
}

impl FakeVol {
    /// Key and path.
    pub fn path(&self) -> String {
        format!("/var/lib/virt/{}/{}", self.pool, self.name)
    }

    fn proto(&self) -> pb::Volume {
        pb::Volume {
            name: self.name.clone(),
            key: self.path(),
            path: self.path(),
            pool: self.pool.clone(),
        }
    }
}

/// What the fake holds and saw.
#[derive(Debug, Default)]
pub struct State {
    pub pools: Vec<FakePool>,
    pub vols: Vec<FakeVol>,
    /// One line per mutating call (and a few reads), `Method: request`.
    pub calls: Vec<String>,
    /// The largest `data` message of the uploads.
    pub max_upload_chunk: usize,
    /// `data` messages received.
    pub upload_data_msgs: usize,
    /// Bytes received as `hole` messages.
    pub upload_hole_bytes: u64,
    /// Uploads that ended with a broken stream or were dropped (never
    /// committed).
    pub aborted_uploads: usize,
}

fn pool(name: &str, uuid: &str, ty: pb::PoolType, flags: (bool, bool, bool)) -> FakePool {
    let (active, persistent, autostart) = flags;
    FakePool {
        name: name.into(),
        uuid: uuid.into(),
        ty,
        active,
        persistent,
        autostart,
        state: if active {
            pb::PoolState::Running
        } else {
            pb::PoolState::Inactive
        },
        capacity: 10 << 30,
        allocation: 5 << 29,
        available: 15 << 29,
    }
}

fn vol(pool: &str, name: &str, capacity: u64, allocation: u64, data: Vec<u8>) -> FakeVol {
    FakeVol {
        pool: pool.into(),
        name: name.into(),
        ty: pb::VolumeType::File,
        capacity,
        allocation,
        physical: data.len() as u64,
        data,
    }
}

impl State {
    fn initial() -> State {
        let mut scratch = pool(
            "scratch",
            U_SCRATCH,
            pb::PoolType::Dir,
            (true, false, false),
        );
        scratch.capacity = 1000;
        scratch.allocation = 0;
        scratch.available = 1000;
        State {
            pools: vec![
                pool("default", U_DEFAULT, pb::PoolType::Dir, (true, true, true)),
                pool("images", U_IMAGES, pb::PoolType::Fs, (false, true, false)),
                scratch,
                pool("bad", U_BAD, pb::PoolType::Logical, (true, true, false)),
            ],
            vols: vec![
                vol("default", "a.img", 1 << 30, 512 << 20, b"hello".to_vec()),
                vol("default", "B.qcow2", 20 << 30, 196_608, vec![7u8; 1000]),
                vol("default", "ro.img", 1024, 1024, vec![1u8; 1024]),
                vol("default", "flaky.img", 1 << 20, 1 << 20, vec![9u8; 1 << 20]),
                vol("scratch", "s.raw", 100, 0, Vec::new()),
            ],
            ..State::default()
        }
    }
}

fn err(code: ErrorCode, msg: impl Into<String>) -> Status {
    VirtError::new(code, ErrorDomain::Storage, msg).to_status()
}

/// The fake service; clones share the state.
#[derive(Clone, Debug)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    fn record(&self, line: String) {
        self.st().calls.push(line);
    }

    fn find_pool(&self, r: Option<&pb::PoolRef>) -> Result<FakePool, Status> {
        use pb::pool_ref::By;
        let by = r.and_then(|r| r.by.clone());
        let st = self.st();
        let found = st.pools.iter().find(|p| match &by {
            Some(By::Name(n)) => *n == p.name,
            Some(By::Uuid(u)) => *u == p.uuid,
            None => false,
        });
        found.cloned().ok_or_else(|| {
            let what = match by {
                Some(By::Name(n)) => format!("name '{n}'"),
                Some(By::Uuid(u)) => format!("uuid '{u}'"),
                None => return Status::invalid_argument("no pool"),
            };
            err(
                ErrorCode::NoStoragePool,
                format!("Storage pool not found: no storage pool with matching {what}"),
            )
        })
    }

    fn find_vol(&self, r: Option<&pb::VolumeRef>) -> Result<FakeVol, Status> {
        use pb::volume_ref::By;
        let by = r.and_then(|r| r.by.clone());
        if let Some(By::PoolVolume(pv)) = &by {
            let p = self.find_pool(Some(&pb::PoolRef {
                by: Some(pb::pool_ref::By::Name(pv.pool.clone())),
            }))?;
            if !p.active {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    format!(
                        "Requested operation is not valid: storage pool '{}' is not active",
                        p.name
                    ),
                ));
            }
        }
        let st = self.st();
        let found = st.vols.iter().find(|v| match &by {
            Some(By::PoolVolume(pv)) => pv.pool == v.pool && pv.name == v.name,
            Some(By::Key(k)) | Some(By::Path(k)) => *k == v.path(),
            None => false,
        });
        found.cloned().ok_or_else(|| {
            let what = match by {
                Some(By::PoolVolume(pv)) => format!("name '{}'", pv.name),
                Some(By::Key(k)) => format!("key '{k}'"),
                Some(By::Path(p)) => format!("path '{p}'"),
                None => return Status::invalid_argument("no volume"),
            };
            err(
                ErrorCode::NoStorageVol,
                format!("Storage volume not found: no storage vol with matching {what}"),
            )
        })
    }

    /// Records `call` and fails when `p` is the `bad` pool.
    fn pool_op(
        &self,
        call: String,
        p: Option<&pb::PoolRef>,
        verb: &str,
    ) -> Result<FakePool, Status> {
        self.record(call);
        let p = self.find_pool(p)?;
        if p.name == "bad" {
            return Err(err(
                ErrorCode::OperationFailed,
                format!("operation failed: cannot {verb} pool 'bad'"),
            ));
        }
        Ok(p)
    }

    fn update_pool(&self, name: &str, f: impl FnOnce(&mut FakePool)) {
        if let Some(p) = self.st().pools.iter_mut().find(|p| p.name == name) {
            f(p);
        }
    }

    /// Records `call` and fails for `ro.img`.
    fn vol_op(
        &self,
        call: String,
        v: Option<&pb::VolumeRef>,
        verb: &str,
    ) -> Result<FakeVol, Status> {
        self.record(call);
        let v = self.find_vol(v)?;
        if v.name == "ro.img" {
            return Err(err(
                ErrorCode::OperationFailed,
                format!("operation failed: cannot {verb} read-only volume 'ro.img'"),
            ));
        }
        Ok(v)
    }
}

/// Counts an upload that did not finish (see `upload_volume`).
struct Unfinished {
    state: Arc<Mutex<State>>,
    done: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.done
            && let Ok(mut st) = self.state.lock()
        {
            st.aborted_uploads += 1;
        }
    }
}

/// The `<name>` of a pool or volume XML.
fn xml_name(xml: &str) -> Result<String, Status> {
    let root =
        common::xml::parse(xml).map_err(|e| err(ErrorCode::XmlError, format!("XML error: {e}")))?;
    root.child("name")
        .map(common::xml::Element::text)
        .ok_or_else(|| err(ErrorCode::XmlError, "XML error: missing name"))
}

#[tonic::async_trait]
impl StorageService for Fake {
    async fn list_all_pools(
        &self,
        r: Request<pb::ListAllPoolsRequest>,
    ) -> Result<Response<pb::ListAllPoolsResponse>, Status> {
        let f = r.into_inner().filter.unwrap_or_default();
        self.record(format!("ListAllPools: {f:?}"));
        let mut pools: Vec<pb::Pool> = self
            .st()
            .pools
            .iter()
            .filter(|p| {
                f.active.is_none_or(|a| a == p.active)
                    && f.persistent.is_none_or(|x| x == p.persistent)
                    && f.autostart.is_none_or(|x| x == p.autostart)
                    && (f.types.is_empty() || f.types.contains(&(p.ty as i32)))
            })
            .map(FakePool::proto)
            .collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::ListAllPoolsResponse { pools }))
    }

    async fn lookup_pool(
        &self,
        r: Request<pb::LookupPoolRequest>,
    ) -> Result<Response<pb::LookupPoolResponse>, Status> {
        use pb::lookup_pool_request::By;
        let p = match r.into_inner().by {
            Some(By::Pool(p)) => self.find_pool(Some(&p))?,
            Some(By::Volume(v)) => {
                let v = self.find_vol(Some(&v))?;
                self.find_pool(Some(&pb::PoolRef {
                    by: Some(pb::pool_ref::By::Name(v.pool)),
                }))?
            }
            _ => return Err(Status::invalid_argument("lookup")),
        };
        Ok(Response::new(pb::LookupPoolResponse {
            pool: Some(p.proto()),
        }))
    }

    async fn define_pool(
        &self,
        r: Request<pb::DefinePoolRequest>,
    ) -> Result<Response<pb::DefinePoolResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("DefinePool: {r:?}"));
        let name = xml_name(&r.xml)?;
        if name == "bad" {
            return Err(err(
                ErrorCode::OperationFailed,
                format!("operation failed: pool '{name}' already exists with uuid {U_BAD}"),
            ));
        }
        let p = pool(
            &name,
            "55555555-5555-5555-5555-555555555555",
            pb::PoolType::Dir,
            (false, true, false),
        );
        self.st().pools.push(p.clone());
        Ok(Response::new(pb::DefinePoolResponse {
            pool: Some(p.proto()),
        }))
    }

    async fn create_pool(
        &self,
        r: Request<pb::CreatePoolRequest>,
    ) -> Result<Response<pb::CreatePoolResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("CreatePool: {r:?}"));
        let name = xml_name(&r.xml)?;
        if name == "bad" {
            return Err(err(
                ErrorCode::OperationFailed,
                format!("operation failed: pool '{name}' already exists with uuid {U_BAD}"),
            ));
        }
        let p = pool(
            &name,
            "66666666-6666-6666-6666-666666666666",
            pb::PoolType::Dir,
            (true, false, false),
        );
        self.st().pools.push(p.clone());
        Ok(Response::new(pb::CreatePoolResponse {
            pool: Some(p.proto()),
        }))
    }

    async fn undefine_pool(
        &self,
        r: Request<pb::UndefinePoolRequest>,
    ) -> Result<Response<pb::UndefinePoolResponse>, Status> {
        let r = r.into_inner();
        self.pool_op(format!("UndefinePool: {r:?}"), r.pool.as_ref(), "undefine")?;
        Ok(Response::new(pb::UndefinePoolResponse {}))
    }

    async fn build_pool(
        &self,
        r: Request<pb::BuildPoolRequest>,
    ) -> Result<Response<pb::BuildPoolResponse>, Status> {
        let r = r.into_inner();
        self.pool_op(format!("BuildPool: {r:?}"), r.pool.as_ref(), "build")?;
        Ok(Response::new(pb::BuildPoolResponse {}))
    }

    async fn start_pool(
        &self,
        r: Request<pb::StartPoolRequest>,
    ) -> Result<Response<pb::StartPoolResponse>, Status> {
        let r = r.into_inner();
        let p = self.pool_op(format!("StartPool: {r:?}"), r.pool.as_ref(), "start")?;
        if p.active {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!(
                    "Requested operation is not valid: storage pool '{}' is already active",
                    p.name
                ),
            ));
        }
        self.update_pool(&p.name, |p| {
            p.active = true;
            p.state = pb::PoolState::Running;
        });
        Ok(Response::new(pb::StartPoolResponse {}))
    }

    async fn destroy_pool(
        &self,
        r: Request<pb::DestroyPoolRequest>,
    ) -> Result<Response<pb::DestroyPoolResponse>, Status> {
        let r = r.into_inner();
        let p = self.pool_op(format!("DestroyPool: {r:?}"), r.pool.as_ref(), "destroy")?;
        self.update_pool(&p.name, |p| {
            p.active = false;
            p.state = pb::PoolState::Inactive;
        });
        Ok(Response::new(pb::DestroyPoolResponse {}))
    }

    async fn delete_pool(
        &self,
        r: Request<pb::DeletePoolRequest>,
    ) -> Result<Response<pb::DeletePoolResponse>, Status> {
        let r = r.into_inner();
        self.pool_op(format!("DeletePool: {r:?}"), r.pool.as_ref(), "delete")?;
        Ok(Response::new(pb::DeletePoolResponse {}))
    }

    async fn refresh_pool(
        &self,
        r: Request<pb::RefreshPoolRequest>,
    ) -> Result<Response<pb::RefreshPoolResponse>, Status> {
        let r = r.into_inner();
        self.pool_op(format!("RefreshPool: {r:?}"), r.pool.as_ref(), "refresh")?;
        Ok(Response::new(pb::RefreshPoolResponse {}))
    }

    async fn set_pool_autostart(
        &self,
        r: Request<pb::SetPoolAutostartRequest>,
    ) -> Result<Response<pb::SetPoolAutostartResponse>, Status> {
        let r = r.into_inner();
        let p = self.pool_op(
            format!("SetPoolAutostart: {r:?}"),
            r.pool.as_ref(),
            "set autostart of",
        )?;
        self.update_pool(&p.name, |p| p.autostart = r.autostart);
        Ok(Response::new(pb::SetPoolAutostartResponse {}))
    }

    async fn get_pool_info(
        &self,
        r: Request<pb::GetPoolInfoRequest>,
    ) -> Result<Response<pb::GetPoolInfoResponse>, Status> {
        let p = self.find_pool(r.get_ref().pool.as_ref())?;
        if p.name == "bad" {
            return Err(err(
                ErrorCode::OperationFailed,
                "operation failed: cannot read pool 'bad'",
            ));
        }
        Ok(Response::new(pb::GetPoolInfoResponse {
            state: p.state as i32,
            capacity: p.capacity,
            allocation: p.allocation,
            available: p.available,
        }))
    }

    async fn get_pool_xml(
        &self,
        r: Request<pb::GetPoolXmlRequest>,
    ) -> Result<Response<pb::GetPoolXmlResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("GetPoolXml: {r:?}"));
        let p = self.find_pool(r.pool.as_ref())?;
        Ok(Response::new(pb::GetPoolXmlResponse {
            xml: format!(
                "<pool type='dir'>\n  <name>{}</name>\n  <uuid>{}</uuid>\n</pool>\n",
                p.name, p.uuid
            ),
        }))
    }

    async fn list_all_volumes(
        &self,
        r: Request<pb::ListAllVolumesRequest>,
    ) -> Result<Response<pb::ListAllVolumesResponse>, Status> {
        let p = self.find_pool(r.get_ref().pool.as_ref())?;
        if !p.active {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!(
                    "Requested operation is not valid: storage pool '{}' is not active",
                    p.name
                ),
            ));
        }
        let mut volumes: Vec<pb::Volume> = self
            .st()
            .vols
            .iter()
            .filter(|v| v.pool == p.name)
            .map(FakeVol::proto)
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::ListAllVolumesResponse { volumes }))
    }

    async fn lookup_volume(
        &self,
        r: Request<pb::LookupVolumeRequest>,
    ) -> Result<Response<pb::LookupVolumeResponse>, Status> {
        let v = self.find_vol(r.get_ref().volume.as_ref())?;
        Ok(Response::new(pb::LookupVolumeResponse {
            volume: Some(v.proto()),
        }))
    }

    async fn create_volume(
        &self,
        r: Request<pb::CreateVolumeRequest>,
    ) -> Result<Response<pb::CreateVolumeResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("CreateVolume: {r:?}"));
        let p = self.find_pool(r.pool.as_ref())?;
        let name = xml_name(&r.xml)?;
        if self
            .st()
            .vols
            .iter()
            .any(|v| v.pool == p.name && v.name == name)
        {
            return Err(err(
                ErrorCode::StorageVolExist,
                format!("storage volume '{name}' exists already"),
            ));
        }
        let v = vol(&p.name, &name, 0, 0, Vec::new());
        self.st().vols.push(v.clone());
        Ok(Response::new(pb::CreateVolumeResponse {
            volume: Some(v.proto()),
        }))
    }

    async fn create_volume_from(
        &self,
        r: Request<pb::CreateVolumeFromRequest>,
    ) -> Result<Response<pb::CreateVolumeFromResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("CreateVolumeFrom: {r:?}"));
        let p = self.find_pool(r.pool.as_ref())?;
        let src = self.find_vol(r.source.as_ref())?;
        let name = xml_name(&r.xml)?;
        if self
            .st()
            .vols
            .iter()
            .any(|v| v.pool == p.name && v.name == name)
        {
            return Err(err(
                ErrorCode::StorageVolExist,
                format!("storage volume '{name}' exists already"),
            ));
        }
        let mut v = src.clone();
        v.pool = p.name;
        v.name = name;
        self.st().vols.push(v.clone());
        Ok(Response::new(pb::CreateVolumeFromResponse {
            volume: Some(v.proto()),
        }))
    }

    async fn delete_volume(
        &self,
        r: Request<pb::DeleteVolumeRequest>,
    ) -> Result<Response<pb::DeleteVolumeResponse>, Status> {
        let r = r.into_inner();
        let v = self.vol_op(format!("DeleteVolume: {r:?}"), r.volume.as_ref(), "delete")?;
        self.st()
            .vols
            .retain(|x| !(x.pool == v.pool && x.name == v.name));
        Ok(Response::new(pb::DeleteVolumeResponse {}))
    }

    async fn wipe_volume(
        &self,
        r: Request<pb::WipeVolumeRequest>,
    ) -> Result<Response<pb::WipeVolumeResponse>, Status> {
        let r = r.into_inner();
        self.vol_op(format!("WipeVolume: {r:?}"), r.volume.as_ref(), "wipe")?;
        Ok(Response::new(pb::WipeVolumeResponse {}))
    }

    async fn resize_volume(
        &self,
        r: Request<pb::ResizeVolumeRequest>,
    ) -> Result<Response<pb::ResizeVolumeResponse>, Status> {
        let r = r.into_inner();
        self.vol_op(format!("ResizeVolume: {r:?}"), r.volume.as_ref(), "resize")?;
        Ok(Response::new(pb::ResizeVolumeResponse {}))
    }

    async fn get_volume_info(
        &self,
        r: Request<pb::GetVolumeInfoRequest>,
    ) -> Result<Response<pb::GetVolumeInfoResponse>, Status> {
        let v = self.find_vol(r.get_ref().volume.as_ref())?;
        if v.name == "flaky.img" {
            return Err(err(ErrorCode::OperationFailed, "operation failed: no info"));
        }
        Ok(Response::new(pb::GetVolumeInfoResponse {
            r#type: v.ty as i32,
            capacity: v.capacity,
            allocation: v.allocation,
            physical: v.physical,
        }))
    }

    async fn get_volume_xml(
        &self,
        r: Request<pb::GetVolumeXmlRequest>,
    ) -> Result<Response<pb::GetVolumeXmlResponse>, Status> {
        let v = self.find_vol(r.get_ref().volume.as_ref())?;
        Ok(Response::new(pb::GetVolumeXmlResponse {
            xml: format!(
                "<volume type='file'>\n  <name>{}</name>\n  <key>{}</key>\n  <capacity unit='bytes'>{}</capacity>\n  <target>\n    <path>{}</path>\n    <format type='raw'/>\n  </target>\n</volume>\n",
                v.name,
                v.path(),
                v.capacity,
                v.path()
            ),
        }))
    }

    async fn get_volume_path(
        &self,
        r: Request<pb::GetVolumePathRequest>,
    ) -> Result<Response<pb::GetVolumePathResponse>, Status> {
        let v = self.find_vol(r.get_ref().volume.as_ref())?;
        Ok(Response::new(pb::GetVolumePathResponse { path: v.path() }))
    }

    async fn upload_volume(
        &self,
        r: Request<Streaming<pb::UploadVolumeRequest>>,
    ) -> Result<Response<pb::UploadVolumeResponse>, Status> {
        use pb::upload_volume_request::Msg;
        let mut stream = r.into_inner();
        let header = match stream.message().await {
            Ok(Some(pb::UploadVolumeRequest {
                msg: Some(Msg::Header(h)),
            })) => h,
            Ok(_) => return Err(Status::invalid_argument("the header must come first")),
            Err(e) => {
                self.st().aborted_uploads += 1;
                return Err(e);
            }
        };
        self.record(format!(
            "UploadVolume: offset {} length {} sparse {}",
            header.offset, header.length, header.sparse
        ));
        // Counts the upload as aborted unless it ends through a return
        // below that is not a broken stream (tonic drops the handler when
        // the client resets the stream).
        let mut guard = Unfinished {
            state: self.state.clone(),
            done: false,
        };
        guard.done = true;
        let v = self.find_vol(header.volume.as_ref())?;
        if v.name == "ro.img" {
            return Err(err(
                ErrorCode::OperationFailed,
                "operation failed: cannot upload to read-only volume 'ro.img'",
            ));
        }
        guard.done = false;
        if header.offset > v.capacity {
            return Err(err(
                ErrorCode::InvalidArg,
                format!(
                    "invalid argument: offset {} is past the end of volume '{}'",
                    header.offset, v.name
                ),
            ));
        }
        // Written into a copy, committed only when the stream ends well.
        let mut data = v.data.clone();
        let mut at = usize::try_from(header.offset).map_err(|_| Status::out_of_range("offset"))?;
        let mut written = 0u64;
        let mut ended = false;
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Err(e),
            };
            let n = match msg.msg {
                Some(Msg::End(_)) if !ended => {
                    ended = true;
                    0
                }
                Some(Msg::Data(d)) => {
                    {
                        let mut st = self.st();
                        st.max_upload_chunk = st.max_upload_chunk.max(d.len());
                        st.upload_data_msgs += 1;
                    }
                    if data.len() < at + d.len() {
                        data.resize(at + d.len(), 0);
                    }
                    data[at..at + d.len()].copy_from_slice(&d);
                    d.len()
                }
                Some(Msg::Hole(h)) if header.sparse => {
                    self.st().upload_hole_bytes += h;
                    let h = usize::try_from(h).map_err(|_| Status::out_of_range("hole"))?;
                    if data.len() < at + h {
                        data.resize(at + h, 0);
                    } else {
                        data[at..at + h].fill(0);
                    }
                    h
                }
                _ => {
                    guard.done = true;
                    return Err(Status::invalid_argument("unexpected message"));
                }
            };
            at += n;
            written += n as u64;
            if header.length > 0 && written > header.length {
                guard.done = true;
                return Err(err(
                    ErrorCode::InvalidArg,
                    "invalid argument: more data than the length given",
                ));
            }
        }
        guard.done = true;
        if !ended {
            // As the daemon: no end message means the client cancelled.
            return Err(err(
                ErrorCode::OperationAborted,
                "operation aborted: the upload ended without its end message",
            ));
        }
        let mut st = self.st();
        if let Some(x) = st
            .vols
            .iter_mut()
            .find(|x| x.pool == v.pool && x.name == v.name)
        {
            x.physical = data.len() as u64;
            x.data = data;
        }
        Ok(Response::new(pb::UploadVolumeResponse {
            bytes_written: written,
        }))
    }

    async fn download_volume(
        &self,
        r: Request<pb::DownloadVolumeRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::DownloadVolumeChunk>>, Status> {
        use pb::download_volume_chunk::Chunk;
        let r = r.into_inner();
        self.record(format!(
            "DownloadVolume: offset {} length {} sparse {}",
            r.offset, r.length, r.sparse
        ));
        let v = self.find_vol(r.volume.as_ref())?;
        if v.name == "ro.img" {
            return Err(err(
                ErrorCode::OperationFailed,
                "operation failed: cannot download read-only volume 'ro.img'",
            ));
        }
        let start = usize::try_from(r.offset)
            .unwrap_or(usize::MAX)
            .min(v.data.len());
        let end = if r.length == 0 {
            v.data.len()
        } else {
            start
                .saturating_add(usize::try_from(r.length).unwrap_or(usize::MAX))
                .min(v.data.len())
        };
        let mut items: Vec<Result<pb::DownloadVolumeChunk, Status>> = Vec::new();
        for piece in v.data[start..end].chunks(DOWNLOAD_CHUNK) {
            let chunk = if r.sparse && piece.iter().all(|b| *b == 0) {
                Chunk::Hole(piece.len() as u64)
            } else {
                Chunk::Data(piece.to_vec())
            };
            items.push(Ok(pb::DownloadVolumeChunk { chunk: Some(chunk) }));
            if v.name == "flaky.img" {
                items.push(Err(err(
                    ErrorCode::OperationFailed,
                    "operation failed: read error on 'flaky.img'",
                )));
                break;
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            for item in items {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Output captured from a `Ctl`.
#[derive(Clone, Default)]
pub struct Buf(Rc<RefCell<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn take(&self) -> String {
        let text = String::from_utf8_lossy(&self.0.borrow()).into_owned();
        self.0.borrow_mut().clear();
        text
    }
}

/// The fake on a fresh socket, and a `Ctl` talking to it.
pub struct Harness {
    pub ctl: Ctl,
    out: Buf,
    err: Buf,
    pub state: Arc<Mutex<State>>,
    pub dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Harness {
    /// Starts the fake (inside the current tokio runtime).
    pub fn new() -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "virtsh-storage-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let fake = Fake {
            state: Arc::new(Mutex::new(State::initial())),
        };
        let state = fake.state.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(StorageServiceServer::new(fake))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        let (out, err) = (Buf::default(), Buf::default());
        let uri = format!("qemu+unix:///system?socket={}", sock.display());
        let ctl = Ctl::new(&crate::commands::TABLE, Settings::default(), Some(uri))
            .with_output(Box::new(out.clone()), Box::new(err.clone()));
        Harness {
            ctl,
            out,
            err,
            state,
            dir,
        }
    }

    /// Another `Ctl` on the same fake (for calling clients directly).
    pub fn ctl_clone_for_client(&self) -> Ctl {
        let uri = format!(
            "qemu+unix:///system?socket={}",
            self.dir.join("sock").display()
        );
        Ctl::new(&crate::commands::TABLE, Settings::default(), Some(uri))
    }

    /// The fake's state.
    pub fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    /// A path in the harness directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Writes `data` to a file in the harness directory; returns its path.
    pub fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, data).expect("write");
        p
    }

    /// Runs one command line: (success, stdout, stderr, calls recorded).
    pub async fn run(&mut self, line: &str) -> (bool, String, String, Vec<String>) {
        let cmds = match self.ctl.parse_line(line) {
            Ok(c) => c,
            Err(e) => panic!("{line}: {e}"),
        };
        let ok = self.ctl.run(&cmds).await;
        let calls = std::mem::take(&mut self.st().calls);
        (ok, self.out.take(), self.err.take(), calls)
    }

    /// Runs `line`, expecting success and exactly `stdout` (before the
    /// blank line virsh prints after each command).
    pub async fn ok(&mut self, line: &str, stdout: &str) -> Vec<String> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(ok, "{line}: {err}");
        assert_eq!(out, format!("{stdout}\n"), "{line}");
        assert_eq!(err, "", "{line}");
        calls
    }

    /// Runs `line`, expecting failure with exactly `stderr` (and `stdout`
    /// printed before the failure).
    pub async fn fails_after(&mut self, line: &str, stdout: &str, stderr: &str) -> Vec<String> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(!ok, "{line}: {out}");
        assert_eq!(err, stderr, "{line}");
        assert_eq!(out, format!("{stdout}\n"), "{line}");
        calls
    }

    /// Runs `line`, expecting failure with exactly `stderr` and no output.
    pub async fn fails(&mut self, line: &str, stderr: &str) -> Vec<String> {
        self.fails_after(line, "", stderr).await
    }
}
