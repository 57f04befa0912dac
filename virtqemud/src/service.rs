//! Transport: `virt.domain.v1.DomainService` over the driver. Converts
//! proto to driver types and back, nothing else. RPCs a later change fills
//! keep the generated stub (UNIMPLEMENTED naming the method).

use std::sync::Arc;

use common::daemon::Daemon;
use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_server::{DomainService, DomainServiceServer};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::driver::QemuDriver;

/// The daemon: its driver behind the gRPC service.
#[derive(Clone, Debug)]
pub struct Qemud {
    driver: Arc<QemuDriver>,
}

impl Qemud {
    pub fn new(driver: QemuDriver) -> Qemud {
        Qemud {
            driver: Arc::new(driver),
        }
    }
}

impl Daemon for Qemud {
    fn routes(&self) -> Routes {
        Routes::new(DomainServiceServer::new(self.clone()))
    }

    fn service_names(&self) -> Vec<&'static str> {
        vec!["virt.domain.v1.DomainService"]
    }
}

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
}
