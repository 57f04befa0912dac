//! The public gRPC contract of the virt daemons.
//!
//! Every `.proto` file under `proto/virt/` is compiled at build time with
//! protox (no `protoc` needed). One Rust module per proto package:
//!
//! | package          | served by      | what                                      |
//! |------------------|----------------|-------------------------------------------|
//! | `virt.domain.v1` | virtqemud      | domains on QEMU, host info, domain events |
//! | `virt.storage.v1`| virtstoraged   | storage pools and volumes                 |
//! | `virt.network.v1`| virtnetworkd   | virtual networks, DHCP leases, ports      |
//! | `virt.admin.v1`  | every daemon   | daemon info, clients, log filters, reload |
//! | `virt.common.v1` | (types only)   | access annotation, error detail, params   |
//!
//! Each RPC carries a `(virt.common.v1.access)` option; the build turns those
//! into [`METHOD_ACCESS`], the one table every daemon and the proxy consult to
//! decide whether a socket may call a method.
//!
//! Every generated client and server uses [`codec::VirtCodec`]: prost's
//! codec, except that a request that cannot be decoded is INVALID_ARGUMENT
//! naming the message and field (tonic's own answer is INTERNAL).

#![allow(clippy::all, missing_docs, missing_debug_implementations)]

pub mod codec;

/// `virt.common.v1`: access annotation, error detail, typed parameters.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("virt.common.v1");
    }
}

/// `virt.domain.v1`: domains on QEMU.
pub mod domain {
    pub mod v1 {
        tonic::include_proto!("virt.domain.v1");
    }
}

/// `virt.storage.v1`: storage pools and volumes.
pub mod storage {
    pub mod v1 {
        tonic::include_proto!("virt.storage.v1");
    }
}

/// `virt.network.v1`: virtual networks.
pub mod network {
    pub mod v1 {
        tonic::include_proto!("virt.network.v1");
    }
}

/// `virt.admin.v1`: daemon administration.
pub mod admin {
    pub mod v1 {
        tonic::include_proto!("virt.admin.v1");
    }
}

/// The encoded `FileDescriptorSet` of the whole API (with imports), for gRPC
/// server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/virt_descriptor.bin"));

/// Who may call an RPC: the `(virt.common.v1.access)` option of the method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read-only and read-write sockets.
    ReadOnly,
    /// Read-write sockets only.
    ReadWrite,
    /// Admin sockets only.
    Admin,
}

include!(concat!(env!("OUT_DIR"), "/access_table.rs"));

/// The access class of a gRPC path such as `/virt.domain.v1.DomainService/Create`,
/// or `None` if the path is not a virt RPC.
pub fn method_access(path: &str) -> Option<Access> {
    METHOD_ACCESS
        .binary_search_by(|(p, _)| (*p).cmp(path))
        .ok()
        .map(|i| METHOD_ACCESS[i].1)
}

/// The status of an RPC whose body a later change fills: UNIMPLEMENTED,
/// naming the method, with libvirt's NO_SUPPORT code in the details. The
/// generated default stubs of every service call this.
pub fn unimplemented_status(path: &str) -> tonic::Status {
    use prost::Message;
    let detail = common::v1::ErrorDetail {
        code: 3,
        code_name: "NO_SUPPORT".to_owned(),
        domain: 7,
        domain_name: "RPC".to_owned(),
    };
    tonic::Status::with_details(
        tonic::Code::Unimplemented,
        unimplemented_message(path),
        detail.encode_to_vec().into(),
    )
}

/// The message of [`unimplemented_status`].
pub fn unimplemented_message(path: &str) -> String {
    format!(
        "this function is not supported by the connection driver: {}",
        path.trim_start_matches('/')
    )
}
