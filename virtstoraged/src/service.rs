//! Transport: `virt.storage.v1.StorageService`. Every RPC answers with the generated
//! stub (UNIMPLEMENTED naming the method) until its issue fills it.

use proto::storage::v1::storage_service_server::{StorageService, StorageServiceServer};
use tonic::service::Routes;

/// The daemon's service.
#[derive(Clone, Copy, Debug)]
pub struct Daemon;

impl common::daemon::Daemon for Daemon {
    fn routes(&self) -> Routes {
        Routes::new(StorageServiceServer::new(*self))
    }

    fn service_names(&self) -> Vec<&'static str> {
        vec!["virt.storage.v1.StorageService"]
    }
}

#[tonic::async_trait]
impl StorageService for Daemon {}
