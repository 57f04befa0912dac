//! Per-socket access control: a tower layer that refuses, with
//! PERMISSION_DENIED, any method the socket's kind may not call.
//!
//! The decision uses [`proto::METHOD_ACCESS`], generated from the
//! `(virt.common.v1.access)` option of every RPC. The standard health and
//! reflection services are read-only. Anything else is refused.
//!
//! A client may restrict itself to read-only calls on any service socket
//! with the metadata `virt-readonly: 1` ([`READONLY_HEADER`]): that is how
//! `virsh -r` over TCP/TLS reaches virtproxyd, which then forwards the
//! calls to the daemons' read-only sockets. A TLS client refused by
//! `tls_allowed_dn_list` has every call refused here.

use std::task::{Context, Poll};

use proto::Access;
use tower::{Layer, Service};

use crate::error::{ErrorCode, ErrorDomain, VirtError};
use crate::paths::SocketKind;

/// The metadata key a client sets (to `1`) to be treated as read-only.
pub const READONLY_HEADER: &str = "virt-readonly";

/// The socket kind a request is judged as: `socket`, or ReadOnly when a
/// service-socket client asked for read-only access.
pub fn effective_socket(socket: SocketKind, headers: &http::HeaderMap) -> SocketKind {
    if socket != SocketKind::Admin
        && headers
            .get(READONLY_HEADER)
            .is_some_and(|v| v.as_bytes() == b"1")
    {
        SocketKind::ReadOnly
    } else {
        socket
    }
}

/// Whether `socket` may call a method of class `access`.
pub fn allowed(socket: SocketKind, access: Access) -> bool {
    match socket {
        SocketKind::ReadWrite | SocketKind::Tcp | SocketKind::Tls => {
            matches!(access, Access::ReadOnly | Access::ReadWrite)
        }
        SocketKind::ReadOnly => access == Access::ReadOnly,
        SocketKind::Admin => access == Access::Admin,
    }
}

/// The access class of a gRPC path, including the standard services.
pub fn access_of(path: &str) -> Option<Access> {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.v1") {
        return Some(Access::ReadOnly);
    }
    proto::method_access(path)
}

/// Checks `path` against `socket`; the error says why.
///
/// # Errors
/// The method is not allowed on this socket, or not a method at all.
pub fn check(socket: SocketKind, path: &str) -> Result<(), VirtError> {
    let denied = |msg: String| {
        Err(VirtError::new(
            ErrorCode::OperationDenied,
            ErrorDomain::Rpc,
            msg,
        ))
    };
    // Standard services answer on every socket, admin included.
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.v1") {
        return Ok(());
    }
    match access_of(path) {
        None => denied(format!("operation forbidden: unknown method {path}")),
        Some(access) if allowed(socket, access) => Ok(()),
        Some(Access::ReadWrite) => denied(format!(
            "operation forbidden: read only access prevents {}",
            path.trim_start_matches('/')
        )),
        Some(Access::Admin) => denied(format!(
            "operation forbidden: {} is only available on the admin socket",
            path.trim_start_matches('/')
        )),
        Some(Access::ReadOnly) => denied(format!(
            "operation forbidden: {} is not available on the admin socket",
            path.trim_start_matches('/')
        )),
    }
}

/// Layer that enforces [`check`] for one socket kind.
#[derive(Clone, Copy, Debug)]
pub struct AclLayer {
    socket: SocketKind,
}

impl AclLayer {
    /// For sockets of `socket` kind.
    pub fn new(socket: SocketKind) -> AclLayer {
        AclLayer { socket }
    }
}

impl<S> Layer<S> for AclLayer {
    type Service = Acl<S>;

    fn layer(&self, inner: S) -> Acl<S> {
        Acl {
            socket: self.socket,
            inner,
        }
    }
}

/// See [`AclLayer`].
#[derive(Clone, Debug)]
pub struct Acl<S> {
    socket: SocketKind,
    inner: S,
}

impl<S, B> Service<http::Request<B>> for Acl<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::Either<
        futures::future::Ready<Result<Self::Response, Self::Error>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let client = req.extensions().get::<crate::daemon::clients::ClientInfo>();
        if let Some(why) = client.and_then(|c| c.denied.as_ref()) {
            let e = VirtError::new(ErrorCode::AccessDenied, ErrorDomain::Rpc, why.clone());
            return futures::future::Either::Left(futures::future::ready(Ok(e
                .to_status()
                .into_http())));
        }
        let socket = effective_socket(self.socket, req.headers());
        if socket != self.socket {
            // The services' own checks (GetXml's secure flag) see the
            // caller as read-only too.
            if let Some(c) = req
                .extensions_mut()
                .get_mut::<crate::daemon::clients::ClientInfo>()
            {
                c.socket = socket;
            }
        }
        match check(socket, req.uri().path()) {
            Ok(()) => futures::future::Either::Right(self.inner.call(req)),
            Err(e) => {
                tracing::debug!(path = req.uri().path(), socket = socket.as_str(), "denied");
                futures::future::Either::Left(futures::future::ready(Ok(e.to_status().into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix() {
        use SocketKind as S;
        use proto::Access as A;
        assert!(allowed(S::ReadWrite, A::ReadOnly));
        assert!(allowed(S::ReadWrite, A::ReadWrite));
        assert!(!allowed(S::ReadWrite, A::Admin));
        assert!(allowed(S::ReadOnly, A::ReadOnly));
        assert!(!allowed(S::ReadOnly, A::ReadWrite));
        assert!(!allowed(S::ReadOnly, A::Admin));
        assert!(allowed(S::Admin, A::Admin));
        assert!(!allowed(S::Admin, A::ReadOnly));
        assert!(!allowed(S::Admin, A::ReadWrite));
        assert!(allowed(S::Tls, A::ReadWrite));
    }

    #[test]
    fn health_answers_everywhere_unknown_nowhere() {
        for s in [
            SocketKind::ReadWrite,
            SocketKind::ReadOnly,
            SocketKind::Admin,
        ] {
            assert!(check(s, "/grpc.health.v1.Health/Check").is_ok());
            let e = check(s, "/no.such.Service/Method").unwrap_err();
            assert_eq!(e.code, ErrorCode::OperationDenied);
        }
    }

    #[test]
    fn every_table_entry_is_reachable_somewhere() {
        assert!(!proto::METHOD_ACCESS.is_empty());
        for (path, access) in proto::METHOD_ACCESS {
            let reachable = [
                SocketKind::ReadWrite,
                SocketKind::ReadOnly,
                SocketKind::Admin,
            ]
            .iter()
            .any(|s| check(*s, path).is_ok());
            assert!(reachable, "{path} ({access:?}) is reachable on no socket");
        }
    }
}
