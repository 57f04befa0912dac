//! Calls the end-to-end tests make in many files, each expecting success
//! (a failure panics with the call's name).

use std::path::Path;

use proto::domain::v1 as dpb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as npb;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1 as spb;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tonic::transport::Channel;

/// Domain `name`, by name.
pub fn domain_ref(name: &str) -> Option<dpb::DomainRef> {
    Some(dpb::DomainRef {
        by: Some(dpb::domain_ref::By::Name(name.to_owned())),
    })
}

/// Pool `name`, by name.
pub fn pool_ref(name: &str) -> Option<spb::PoolRef> {
    Some(spb::PoolRef {
        by: Some(spb::pool_ref::By::Name(name.to_owned())),
    })
}

/// Network `name`, by name.
pub fn network_ref(name: &str) -> Option<npb::NetworkRef> {
    Some(npb::NetworkRef {
        by: Some(npb::network_ref::By::Name(name.to_owned())),
    })
}

/// The XML of domain `name`: live, or with `inactive` the next boot's.
pub async fn domain_xml(
    c: &mut DomainServiceClient<Channel>,
    name: &str,
    inactive: bool,
) -> String {
    c.get_xml(dpb::GetXmlRequest {
        domain: domain_ref(name),
        inactive,
        ..Default::default()
    })
    .await
    .expect("xml")
    .into_inner()
    .xml
}

/// Defines and starts the dir pool `name` on `dir` (made if missing).
pub async fn define_started_pool(c: &mut StorageServiceClient<Channel>, name: &str, dir: &Path) {
    std::fs::create_dir_all(dir).expect("pool dir");
    c.define_pool(spb::DefinePoolRequest {
        xml: format!(
            "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
            dir.display()
        ),
        validate: true,
    })
    .await
    .expect("define pool");
    c.start_pool(spb::StartPoolRequest {
        pool: pool_ref(name),
        ..Default::default()
    })
    .await
    .expect("start pool");
}

/// Defines and starts the isolated network `name` on bridge `bridge`, the
/// host at `address` in a /24.
pub async fn start_isolated_network(
    c: &mut NetworkServiceClient<Channel>,
    name: &str,
    bridge: &str,
    address: &str,
) {
    c.define_network(npb::DefineNetworkRequest {
        xml: format!(
            "<network><name>{name}</name><bridge name='{bridge}'/>\
             <ip address='{address}' prefix='24'/></network>"
        ),
        validate: false,
    })
    .await
    .expect("define network");
    c.start_network(npb::StartNetworkRequest {
        network: network_ref(name),
    })
    .await
    .expect("start network");
}
