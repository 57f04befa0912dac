//! Transport: `virt.network.v1.NetworkService`. Every RPC answers with the generated
//! stub (UNIMPLEMENTED naming the method) until its issue fills it.

use proto::network::v1::network_service_server::{NetworkService, NetworkServiceServer};
use tonic::service::Routes;

/// The daemon's service.
#[derive(Clone, Copy, Debug)]
pub struct Daemon;

impl common::daemon::Daemon for Daemon {
    fn routes(&self) -> Routes {
        Routes::new(NetworkServiceServer::new(*self))
    }

    fn service_names(&self) -> Vec<&'static str> {
        vec!["virt.network.v1.NetworkService"]
    }
}

#[tonic::async_trait]
impl NetworkService for Daemon {}
