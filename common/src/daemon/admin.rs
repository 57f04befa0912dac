//! The admin service every daemon serves on its admin socket
//! (`virt.admin.v1.AdminService`, libvirt's virt-admin API).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use proto::admin::v1 as pb;
use proto::admin::v1::admin_service_server::{AdminService, AdminServiceServer};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::ServedSocket;
use super::clients::{ClientInfo, ClientRegistry};
use super::logging::LogHandle;
use crate::config::DaemonConfig;
use crate::error::{ErrorCode, ErrorDomain, VirtError};
use crate::paths::{Mode, SocketKind};

/// The server name of the admin socket, as libvirt names it.
pub const ADMIN_SERVER: &str = "admin";

/// Limits of the main and admin servers, changeable at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Main server.
    pub main: pb::ServerLimits,
    /// Admin server.
    pub admin: pb::ServerLimits,
}

impl Limits {
    /// The limits the config file sets.
    pub fn from_config(c: &DaemonConfig) -> Limits {
        Limits {
            main: pb::ServerLimits {
                max_clients: Some(c.max_clients),
                // libvirt keeps the unauthenticated limit within the overall one.
                max_anonymous_clients: Some(c.max_anonymous_clients.min(c.max_clients)),
                max_client_requests: Some(c.max_client_requests),
                min_workers: Some(c.min_workers),
                max_workers: Some(c.max_workers),
                prio_workers: Some(c.prio_workers),
            },
            admin: pb::ServerLimits {
                max_clients: Some(c.admin_max_clients),
                max_anonymous_clients: Some(0),
                max_client_requests: Some(c.admin_max_client_requests),
                min_workers: Some(c.admin_min_workers),
                max_workers: Some(c.admin_max_workers),
                prio_workers: Some(0),
            },
        }
    }
}

/// What the admin service reports and controls.
pub struct AdminState {
    /// Daemon name.
    pub name: &'static str,
    /// Version.
    pub version: &'static str,
    /// Our pid.
    pub pid: u32,
    /// Start time.
    pub started_at: SystemTime,
    /// System or session.
    pub mode: Mode,
    /// The config file path.
    pub config_file: PathBuf,
    /// Sockets we serve.
    pub sockets: Vec<ServedSocket>,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// Log control.
    pub log: LogHandle,
    /// Asks the main loop to reload.
    pub reload: mpsc::Sender<()>,
    /// Server limits.
    pub limits: Mutex<Limits>,
    /// Whether the daemon has running objects.
    pub active: Box<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish()
    }
}

/// The tonic service over `state`.
pub fn admin_service(state: Arc<AdminState>) -> AdminServiceServer<Admin> {
    AdminServiceServer::new(Admin { state })
}

/// Implements `virt.admin.v1.AdminService`.
#[derive(Debug, Clone)]
pub struct Admin {
    state: Arc<AdminState>,
}

fn err(code: ErrorCode, msg: String) -> Status {
    VirtError::new(code, ErrorDomain::Admin, msg).to_status()
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn socket_kind(k: SocketKind) -> pb::SocketKind {
    match k {
        SocketKind::ReadWrite => pb::SocketKind::Rw,
        SocketKind::ReadOnly => pb::SocketKind::Ro,
        SocketKind::Admin => pb::SocketKind::Admin,
        SocketKind::Tcp => pb::SocketKind::Tcp,
        SocketKind::Tls => pb::SocketKind::Tls,
    }
}

impl Admin {
    fn server_of(&self, kind: SocketKind) -> &'static str {
        if kind == SocketKind::Admin {
            ADMIN_SERVER
        } else {
            self.state.name
        }
    }

    fn check_server(&self, server: Option<&str>) -> Result<&'static str, Status> {
        match server {
            None => Ok(self.state.name),
            Some(s) if s == self.state.name => Ok(self.state.name),
            Some(ADMIN_SERVER) => Ok(ADMIN_SERVER),
            Some(other) => Err(err(
                ErrorCode::NoServer,
                format!("no server with matching name '{other}'"),
            )),
        }
    }

    fn client(&self, c: &ClientInfo) -> pb::Client {
        let transport = match c.socket {
            SocketKind::Tcp => pb::Transport::Tcp,
            SocketKind::Tls => pb::Transport::Tls,
            _ => pb::Transport::Unix,
        };
        pb::Client {
            id: c.id,
            server: self.server_of(c.socket).to_owned(),
            socket: socket_kind(c.socket).into(),
            transport: transport.into(),
            connected_at: Some(timestamp(c.connected_at)),
            uid: c.uid,
            gid: c.gid,
            pid: c.pid,
            identity: c.identity.clone(),
            readonly: c.readonly(),
            remote_address: c.remote_addr.clone().unwrap_or_default(),
        }
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.state
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn get_daemon_info(
        &self,
        _req: Request<pb::GetDaemonInfoRequest>,
    ) -> Result<Response<pb::GetDaemonInfoResponse>, Status> {
        let s = &self.state;
        let uptime = s.started_at.elapsed().unwrap_or_default().as_secs();
        Ok(Response::new(pb::GetDaemonInfoResponse {
            name: s.name.to_owned(),
            version: s.version.to_owned(),
            pid: s.pid,
            started_at: Some(timestamp(s.started_at)),
            uptime_seconds: uptime,
            mode: match s.mode {
                Mode::System => pb::DaemonMode::System,
                Mode::Session => pb::DaemonMode::Session,
            }
            .into(),
            config_file: if s.config_file.exists() {
                s.config_file.display().to_string()
            } else {
                String::new()
            },
            sockets: s
                .sockets
                .iter()
                .map(|sock| pb::SocketInfo {
                    kind: socket_kind(sock.kind).into(),
                    address: sock.address.clone(),
                    activated: sock.activated,
                    server: self.server_of(sock.kind).to_owned(),
                })
                .collect(),
            client_count: u32::try_from(s.clients.count()).unwrap_or(u32::MAX),
            active: (s.active)(),
        }))
    }

    async fn list_servers(
        &self,
        _req: Request<pb::ListServersRequest>,
    ) -> Result<Response<pb::ListServersResponse>, Status> {
        Ok(Response::new(pb::ListServersResponse {
            names: vec![self.state.name.to_owned(), ADMIN_SERVER.to_owned()],
        }))
    }

    async fn get_server_limits(
        &self,
        req: Request<pb::GetServerLimitsRequest>,
    ) -> Result<Response<pb::GetServerLimitsResponse>, Status> {
        let server = self.check_server(req.get_ref().server.as_deref())?;
        let admin = server == ADMIN_SERVER;
        let limits = if admin {
            self.limits().admin
        } else {
            self.limits().main
        };
        let current = self
            .state
            .clients
            .list()
            .iter()
            .filter(|c| (c.socket == SocketKind::Admin) == admin)
            .count();
        Ok(Response::new(pb::GetServerLimitsResponse {
            current_workers: limits.max_workers.unwrap_or(0),
            free_workers: limits.max_workers.unwrap_or(0),
            limits: Some(limits),
            current_clients: u32::try_from(current).unwrap_or(u32::MAX),
            current_anonymous_clients: 0,
            job_queue_depth: 0,
        }))
    }

    async fn set_server_limits(
        &self,
        req: Request<pb::SetServerLimitsRequest>,
    ) -> Result<Response<pb::SetServerLimitsResponse>, Status> {
        let req = req.into_inner();
        let server = self.check_server(req.server.as_deref())?;
        let new = req.limits.unwrap_or_default();
        // Calls per connection are fixed when a connection's server is
        // built; say so instead of reporting a change that has no effect.
        if new.max_client_requests.is_some() {
            return Err(err(
                ErrorCode::OperationUnsupported,
                "max_client_requests can only be changed in the config file (takes effect at restart)".into(),
            ));
        }
        let mut all = self.limits();
        let cur = if server == ADMIN_SERVER {
            &mut all.admin
        } else {
            &mut all.main
        };
        let mut next = *cur;
        macro_rules! take {
            ($($f:ident),*) => { $( if new.$f.is_some() { next.$f = new.$f; } )* };
        }
        take!(
            max_clients,
            max_anonymous_clients,
            min_workers,
            max_workers,
            prio_workers
        );
        let v = |o: Option<u32>| o.unwrap_or(0);
        if v(next.min_workers) > v(next.max_workers) {
            return Err(err(
                ErrorCode::InvalidArg,
                format!(
                    "min_workers {} must not exceed max_workers {}",
                    v(next.min_workers),
                    v(next.max_workers)
                ),
            ));
        }
        if v(next.max_anonymous_clients) > v(next.max_clients) {
            return Err(err(
                ErrorCode::InvalidArg,
                format!(
                    "max_anonymous_clients {} must not exceed max_clients {}",
                    v(next.max_anonymous_clients),
                    v(next.max_clients)
                ),
            ));
        }
        if v(next.max_clients) == 0 {
            return Err(err(
                ErrorCode::InvalidArg,
                "max_clients must be at least 1".into(),
            ));
        }
        *cur = next;
        Ok(Response::new(pb::SetServerLimitsResponse {
            limits: Some(next),
        }))
    }

    async fn list_clients(
        &self,
        req: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        let filter = match req.get_ref().server.as_deref() {
            None => None,
            Some(s) => Some(self.check_server(Some(s))?),
        };
        let clients = self
            .state
            .clients
            .list()
            .iter()
            .filter(|c| filter.is_none_or(|f| self.server_of(c.socket) == f))
            .map(|c| self.client(c))
            .collect();
        Ok(Response::new(pb::ListClientsResponse { clients }))
    }

    async fn get_client_info(
        &self,
        req: Request<pb::GetClientInfoRequest>,
    ) -> Result<Response<pb::GetClientInfoResponse>, Status> {
        let id = req.get_ref().id;
        match self.state.clients.get(id) {
            Some(c) => Ok(Response::new(pb::GetClientInfoResponse {
                client: Some(self.client(&c)),
            })),
            None => Err(err(
                ErrorCode::NoClient,
                format!("no client with matching id '{id}'"),
            )),
        }
    }

    async fn close_client(
        &self,
        req: Request<pb::CloseClientRequest>,
    ) -> Result<Response<pb::CloseClientResponse>, Status> {
        let id = req.get_ref().id;
        if self.state.clients.close(id) {
            Ok(Response::new(pb::CloseClientResponse {}))
        } else {
            Err(err(
                ErrorCode::NoClient,
                format!("no client with matching id '{id}'"),
            ))
        }
    }

    async fn get_log_filters(
        &self,
        _req: Request<pb::GetLogFiltersRequest>,
    ) -> Result<Response<pb::GetLogFiltersResponse>, Status> {
        Ok(Response::new(pb::GetLogFiltersResponse {
            filters: self.state.log.filters(),
        }))
    }

    async fn set_log_filters(
        &self,
        req: Request<pb::SetLogFiltersRequest>,
    ) -> Result<Response<pb::SetLogFiltersResponse>, Status> {
        self.state
            .log
            .set_filters(&req.get_ref().filters)
            .map_err(|e| err(ErrorCode::InvalidArg, e.to_string()))?;
        Ok(Response::new(pb::SetLogFiltersResponse {}))
    }

    async fn get_log_outputs(
        &self,
        _req: Request<pb::GetLogOutputsRequest>,
    ) -> Result<Response<pb::GetLogOutputsResponse>, Status> {
        Ok(Response::new(pb::GetLogOutputsResponse {
            outputs: self.state.log.outputs(),
        }))
    }

    async fn set_log_outputs(
        &self,
        req: Request<pb::SetLogOutputsRequest>,
    ) -> Result<Response<pb::SetLogOutputsResponse>, Status> {
        self.state
            .log
            .set_outputs(&req.get_ref().outputs)
            .map_err(|e| err(ErrorCode::InvalidArg, e.to_string()))?;
        Ok(Response::new(pb::SetLogOutputsResponse {}))
    }

    async fn reload(
        &self,
        _req: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadResponse>, Status> {
        self.state
            .reload
            .send(())
            .await
            .map_err(|_| err(ErrorCode::OperationInvalid, "the daemon is stopping".into()))?;
        Ok(Response::new(pb::ReloadResponse {
            restart_required: Vec::new(),
        }))
    }

    async fn update_tls_files(
        &self,
        req: Request<pb::UpdateTlsFilesRequest>,
    ) -> Result<Response<pb::UpdateTlsFilesResponse>, Status> {
        let server = self.check_server(req.get_ref().server.as_deref())?;
        if !self.state.sockets.iter().any(|s| s.kind == SocketKind::Tls) {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!("server '{server}' has no TLS socket"),
            ));
        }
        Err(VirtError::unimplemented("virt.admin.v1.AdminService/UpdateTlsFiles").to_status())
    }
}
