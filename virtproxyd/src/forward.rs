//! Forwarding: every call of the daemons' services goes, as the HTTP/2
//! request it is (headers, body frames, trailers; streams included), to the
//! daemon that owns its package, over that daemon's Unix socket. Messages
//! are never decoded and re-encoded; only the first message of a mutating
//! call is read (not changed) for the audit record.
//!
//! | package            | daemon       |
//! |--------------------|--------------|
//! | `virt.domain.v1`   | virtqemud    |
//! | `virt.storage.v1`  | virtstoraged |
//! | `virt.network.v1`  | virtnetworkd |
//!
//! Each client connection of the proxy gets its own connection to each
//! daemon it uses (libvirt's virtproxyd does the same), on the daemon's
//! read-only socket when the client is read-only (its socket, or
//! `virt-readonly: 1`), so the daemon checks the method again. The daemon
//! sees the proxy as its peer; the caller is named in the
//! `virt-forwarded-for` metadata (any such header from the client is
//! dropped first).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use common::daemon::acl;
use common::daemon::clients::{ClientInfo, ClientRegistry};
use common::paths::{Paths, SocketKind};
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::Service;

use crate::audit::{Audit, AuditRecord};

/// The metadata key naming the original caller on a forwarded call.
pub const FORWARDED_FOR: &str = "virt-forwarded-for";

/// How long connecting to a daemon's socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A daemon the proxy forwards to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// virtqemud.
    Qemu,
    /// virtstoraged.
    Storage,
    /// virtnetworkd.
    Network,
}

impl Backend {
    /// The daemon that owns gRPC `path`, if any.
    pub fn of(path: &str) -> Option<Backend> {
        let package = path.strip_prefix('/')?.split('/').next()?;
        if package.starts_with("virt.domain.v1.") {
            Some(Backend::Qemu)
        } else if package.starts_with("virt.storage.v1.") {
            Some(Backend::Storage)
        } else if package.starts_with("virt.network.v1.") {
            Some(Backend::Network)
        } else {
            None
        }
    }

    /// The daemon's name.
    pub fn daemon(self) -> &'static str {
        match self {
            Backend::Qemu => "virtqemud",
            Backend::Storage => "virtstoraged",
            Backend::Network => "virtnetworkd",
        }
    }
}

type Key = (u64, Backend, bool);

#[derive(Debug)]
struct Inner {
    paths: Paths,
    clients: ClientRegistry,
    channels: Mutex<HashMap<Key, Channel>>,
    max_message: usize,
    audit: Audit,
}

/// The forwarding service (the router's fallback).
#[derive(Clone, Debug)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

impl Forwarder {
    /// Forwards to the daemons' sockets under `paths`; requests whose first
    /// message is larger than `max_message` bytes are refused.
    pub fn new(paths: Paths, clients: ClientRegistry, max_message: usize, audit: Audit) -> Self {
        let inner = Arc::new(Inner {
            paths,
            clients,
            channels: Mutex::new(HashMap::new()),
            max_message,
            audit,
        });
        // Connections of clients that left are closed every few seconds.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => inner.sweep(),
                    None => return,
                }
            }
        });
        Forwarder { inner }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Channel>> {
        // Each critical section is one map operation: nothing to repair.
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops the channels of clients that are gone.
    fn sweep(&self) {
        let live: std::collections::HashSet<u64> =
            self.clients.list().iter().map(|c| c.id).collect();
        self.lock().retain(|(id, _, _), _| live.contains(id));
    }

    fn socket(&self, backend: Backend, readonly: bool) -> PathBuf {
        let kind = if readonly {
            SocketKind::ReadOnly
        } else {
            SocketKind::ReadWrite
        };
        self.paths.socket(backend.daemon(), kind)
    }

    fn channel(&self, client: u64, backend: Backend, readonly: bool) -> Channel {
        let key = (client, backend, readonly);
        if let Some(ch) = self.lock().get(&key) {
            return ch.clone();
        }
        let path = self.socket(backend, readonly);
        let ch = Endpoint::from_static("http://localhost")
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                let p = path.clone();
                async move { UnixStream::connect(p).await.map(TokioIo::new) }
            }));
        self.lock().entry(key).or_insert(ch).clone()
    }

    async fn forward(
        self: Arc<Self>,
        req: http::Request<axum::body::Body>,
    ) -> http::Response<Body> {
        let path = req.uri().path().to_owned();
        let Some(backend) = Backend::of(&path) else {
            return tonic::Status::unimplemented(format!("unknown service of method {path}"))
                .into_http();
        };
        let client = req.extensions().get::<ClientInfo>().cloned();
        let socket = client.as_ref().map_or(SocketKind::ReadWrite, |c| c.socket);
        let readonly = acl::effective_socket(socket, req.headers()) == SocketKind::ReadOnly;
        let (mut parts, body) = req.into_parts();
        parts.headers.remove(FORWARDED_FOR);
        if let Some(c) = &client
            && let Ok(v) = http::HeaderValue::from_str(&c.who())
        {
            parts.headers.insert(FORWARDED_FOR, v);
        }
        common::trace::inject_headers(&mut parts.headers);
        let mutating = proto::method_access(&path) == Some(proto::Access::ReadWrite);

        // The first message: its size is checked, and for a mutating call
        // it names the object in the audit record.
        let (first, rest) = match first_message(body, self.max_message).await {
            Ok(v) => v,
            Err(status) => {
                if mutating {
                    self.audit
                        .record(&AuditRecord::new(client.as_ref(), &path, None).result(&status));
                }
                return status.into_http();
            }
        };
        let record = mutating.then(|| {
            let object = first
                .as_ref()
                .and_then(|m| crate::audit::object_of(&path, m));
            AuditRecord::new(client.as_ref(), &path, object)
        });
        let body = forward_body(first, rest);
        let req = http::Request::from_parts(parts, body);
        let client_id = client.as_ref().map_or(0, |c| c.id);
        let mut ch = self.channel(client_id, backend, readonly);
        let sent = match tower::ServiceExt::ready(&mut ch).await {
            Ok(ch) => ch.call(req).await,
            Err(e) => Err(e),
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // The channel is broken (daemon gone or restarted): the next
                // call of this client dials again.
                self.lock().remove(&(client_id, backend, readonly));
                let why = match UnixStream::connect(self.socket(backend, readonly)).await {
                    Err(io) => format!(
                        "Failed to connect socket to '{}': {}",
                        self.socket(backend, readonly).display(),
                        io
                    ),
                    Ok(_) => e.to_string(),
                };
                let status =
                    tonic::Status::unavailable(format!("cannot reach {}: {why}", backend.daemon()));
                if let Some(r) = record {
                    self.audit.record(&r.result(&status));
                }
                return status.into_http();
            }
        };
        match record {
            Some(r) => self.audit.watch(r, resp),
            None => resp,
        }
    }
}

/// The body sent on to the daemon: the first message (as read) and the
/// rest of the client's body.
///
/// A call whose body has ended with its first message (every unary call)
/// goes as one DATA frame that ends the stream. Otherwise the rest follows
/// frame by frame, without empty DATA frames: the daemon's HTTP/2 layer
/// allows only 100 empty frames that do not end their stream per
/// connection (h2's guard against framing floods), and one client's
/// connection to the daemon carries all its calls.
fn forward_body(first: Option<Bytes>, rest: axum::body::Body) -> Body {
    use http_body::Body as _;
    match first {
        Some(frame) if rest.is_end_stream() => {
            Body::new(http_body_util::Full::new(frame).map_err(|never: Infallible| match never {}))
        }
        Some(frame) => Body::new(http_body_util::StreamBody::new(
            futures::stream::once(
                async move { Ok::<_, axum::Error>(http_body::Frame::data(frame)) },
            )
            .chain(http_body_util::BodyStream::new(rest))
            .filter(|f| {
                let empty = matches!(f, Ok(f) if f.data_ref().is_some_and(Bytes::is_empty));
                std::future::ready(!empty)
            }),
        )),
        None => Body::new(http_body_util::StreamBody::new(
            http_body_util::BodyStream::new(rest).filter(|f| {
                let empty = matches!(f, Ok(f) if f.data_ref().is_some_and(Bytes::is_empty));
                std::future::ready(!empty)
            }),
        )),
    }
}

/// Reads the body until its first gRPC message is complete: returns that
/// message's frame (5-byte prefix and payload, as received) and the rest of
/// the body. An empty body gives `None`.
///
/// # Errors
/// RESOURCE_EXHAUSTED when the message announces more than `max` bytes;
/// CANCELLED when the client's body fails.
async fn first_message(
    mut body: axum::body::Body,
    max: usize,
) -> Result<(Option<Bytes>, axum::body::Body), tonic::Status> {
    let mut buf = BytesMut::new();
    loop {
        if buf.len() >= 5 {
            let len = (&buf[1..5]).get_u32() as usize;
            if len > max {
                return Err(tonic::Status::resource_exhausted(format!(
                    "message of {len} bytes is larger than the limit of {max} bytes (max_message_size)"
                )));
            }
            if buf.len() >= 5 + len {
                return Ok((Some(buf.freeze()), body));
            }
        }
        match body.frame().await {
            None => {
                return Ok(((!buf.is_empty()).then(|| buf.freeze()), body));
            }
            Some(Err(e)) => {
                return Err(tonic::Status::cancelled(format!(
                    "the request body failed: {e}"
                )));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => buf.extend_from_slice(&d),
                // Request trailers before the first message: pass nothing
                // more (gRPC clients send none).
                Err(_) => return Ok(((!buf.is_empty()).then(|| buf.freeze()), body)),
            },
        }
    }
}

impl Service<http::Request<axum::body::Body>> for Forwarder {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<axum::body::Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_by_package() {
        assert_eq!(
            Backend::of("/virt.domain.v1.DomainService/ListAllDomains"),
            Some(Backend::Qemu)
        );
        assert_eq!(
            Backend::of("/virt.storage.v1.StorageService/CreateVolume"),
            Some(Backend::Storage)
        );
        assert_eq!(
            Backend::of("/virt.network.v1.NetworkService/Start"),
            Some(Backend::Network)
        );
        assert_eq!(Backend::of("/virt.admin.v1.AdminService/GetInfo"), None);
        assert_eq!(Backend::of("/virt.domainx/Y"), None);
        assert_eq!(Backend::of("nonsense"), None);
    }

    #[tokio::test]
    async fn first_message_split_across_frames() {
        let mut msg = vec![0u8, 0, 0, 0, 3];
        msg.extend_from_slice(b"abc");
        let chunks: Vec<Result<http_body::Frame<Bytes>, Infallible>> = vec![
            Ok(http_body::Frame::data(Bytes::copy_from_slice(&msg[..2]))),
            Ok(http_body::Frame::data(Bytes::copy_from_slice(&msg[2..6]))),
            Ok(http_body::Frame::data(Bytes::copy_from_slice(&msg[6..]))),
            Ok(http_body::Frame::data(Bytes::from_static(b"next"))),
        ];
        let body = axum::body::Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            chunks,
        )));
        let (first, rest) = first_message(body, 100).await.expect("read");
        assert_eq!(first.as_deref(), Some(&msg[..]));
        let rest = rest.collect().await.expect("rest").to_bytes();
        assert_eq!(&rest[..], b"next");
    }

    #[tokio::test]
    async fn oversized_message_refused_before_it_is_read() {
        let header = vec![0u8, 0, 0x10, 0, 0]; // 1 MiB announced
        let body = axum::body::Body::from(header);
        let e = first_message(body, 1000).await.expect_err("refused");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("max_message_size"), "{}", e.message());
    }
}
