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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use common::daemon::acl;
use common::daemon::clients::{ClientInfo, ClientRegistry};
use common::paths::{Paths, SocketKind};
use http_body_util::BodyExt;
use tokio::net::UnixStream;
use tonic::body::Body;
use tower::Service;

use crate::audit::{Audit, AuditRecord};

/// The metadata key naming the original caller on a forwarded call.
pub const FORWARDED_FOR: &str = "virt-forwarded-for";

/// How long connecting to a daemon's socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 receive windows of a connection to a daemon (hyper's client's).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONN_WINDOW: u32 = 5 * 1024 * 1024;

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

/// One client's HTTP/2 connection to one daemon socket: h2's handle,
/// called directly (no hyper dispatch queue, task or tower `Buffer` in
/// front of it: each per-client connection of hyper's client kept a queue
/// of request slots that grew with its first calls), and whether its
/// connection task has ended. Made on the client's first call to that
/// daemon; the cell lets concurrent first calls share one dial.
#[derive(Clone, Debug)]
struct Sender {
    send: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Slot {
    conn: tokio::sync::OnceCell<Sender>,
    /// The client's `virt-forwarded-for` value, formatted once.
    forwarded_for: Option<http::HeaderValue>,
}

#[derive(Debug)]
struct Inner {
    paths: Paths,
    clients: ClientRegistry,
    channels: Mutex<HashMap<Key, Arc<Slot>>>,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
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

    /// The slot of `key`, made (not yet dialled) if the client has none.
    fn slot(&self, key: Key, client: Option<&ClientInfo>) -> Arc<Slot> {
        let mut map = self.lock();
        map.entry(key)
            .or_insert_with(|| {
                Arc::new(Slot {
                    conn: tokio::sync::OnceCell::new(),
                    forwarded_for: client.and_then(|c| http::HeaderValue::from_str(&c.who()).ok()),
                })
            })
            .clone()
    }

    /// Forgets `slot` (a broken or failed connection) unless it was
    /// replaced meanwhile: the client's next call dials again.
    fn forget(&self, key: Key, slot: &Arc<Slot>) {
        let mut map = self.lock();
        if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(&key);
        }
    }

    /// Connects to `path` and starts the HTTP/2 connection's task.
    async fn dial(path: PathBuf) -> Result<Sender, String> {
        let connect = async {
            let stream = UnixStream::connect(&path)
                .await
                .map_err(|io| format!("Failed to connect socket to '{}': {io}", path.display()))?;
            let (send, conn) = h2::client::Builder::new()
                // No HPACK dynamic table: on a Unix socket the bytes it
                // saves cost nothing, and each of the per-client
                // connections would keep up to 4 KiB of varying headers
                // (error messages, timeouts) on both ends for its lifetime.
                .header_table_size(0)
                // hyper's client windows: a download is not held back by
                // the 64 KiB default.
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONN_WINDOW)
                .handshake::<_, Bytes>(stream)
                .await
                .map_err(|e| e.to_string())?;
            let closed = Arc::new(AtomicBool::new(false));
            let ended = closed.clone();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("daemon connection ended: {e}");
                }
                ended.store(true, Ordering::Relaxed);
            });
            Ok(Sender { send, closed })
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "Failed to connect socket to '{}': timed out after {CONNECT_TIMEOUT:?}",
                path.display()
            )),
        }
    }

    /// A ready handle on the client's connection to the daemon: dialled
    /// on first use, dialled again (once) when the one held has closed.
    async fn sender(
        &self,
        key: Key,
        client: Option<&ClientInfo>,
    ) -> Result<(Arc<Slot>, Sender), String> {
        let mut redialled = false;
        loop {
            let slot = self.slot(key, client);
            let got = slot
                .conn
                .get_or_try_init(|| Self::dial(self.socket(key.1, key.2)))
                .await;
            let sender = match got {
                Ok(s) => s.clone(),
                Err(why) => {
                    self.forget(key, &slot);
                    return Err(why);
                }
            };
            match sender.send.ready().await {
                Ok(send) => {
                    return Ok((
                        slot,
                        Sender {
                            send,
                            closed: sender.closed,
                        },
                    ));
                }
                Err(e) => {
                    self.forget(key, &slot);
                    if redialled {
                        return Err(e.to_string());
                    }
                    redialled = true;
                }
            }
        }
    }

    /// Answers `status` without forwarding, audited when `record` is given.
    fn refuse(&self, record: Option<AuditRecord>, status: tonic::Status) -> http::Response<Body> {
        if let Some(r) = record {
            self.audit.record(&r.result(&status));
        }
        status.into_http()
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
        let (mut parts, body) = req.into_parts();
        // The daemon gets the caller's identity as metadata, not as this
        // extension: take it rather than copy it.
        let client = parts.extensions.remove::<ClientInfo>();
        let socket = client.as_ref().map_or(SocketKind::ReadWrite, |c| c.socket);
        let readonly = acl::effective_socket(socket, &parts.headers) == SocketKind::ReadOnly;
        let mutating = proto::method_access(&path) == Some(proto::Access::ReadWrite);

        // The first message: its size is checked, and for a mutating call
        // it names the object in the audit record.
        let (first, rest) = match first_message(body, self.max_message).await {
            Ok(v) => v,
            Err(status) => {
                let record = mutating.then(|| AuditRecord::new(client.as_ref(), &path, None));
                return self.refuse(record, status);
            }
        };
        let record = mutating.then(|| {
            let object = first
                .as_ref()
                .and_then(|m| crate::audit::object_of(&path, m));
            AuditRecord::new(client.as_ref(), &path, object)
        });

        let key = (client.as_ref().map_or(0, |c| c.id), backend, readonly);
        let (slot, mut sender) = match self.sender(key, client.as_ref()).await {
            Ok(v) => v,
            Err(why) => {
                let status =
                    tonic::Status::unavailable(format!("cannot reach {}: {why}", backend.daemon()));
                return self.refuse(record, status);
            }
        };
        parts.headers.remove(FORWARDED_FOR);
        if let Some(v) = &slot.forwarded_for {
            parts.headers.insert(FORWARDED_FOR, v.clone());
        }
        common::trace::inject_headers(&mut parts.headers);
        set_origin(&mut parts.uri);
        let req = http::Request::from_parts(parts, ());
        let sent = send_call(&mut sender.send, req, first, rest).await;
        match sent {
            Ok(resp) => {
                let resp = resp.map(|recv| {
                    Body::new(RecvBody {
                        recv,
                        data_done: false,
                    })
                });
                match record {
                    Some(r) => self.audit.watch(r, resp),
                    None => resp,
                }
            }
            Err(e) => {
                // The connection broke under the call (daemon gone or
                // restarted): the next call of this client dials again.
                if sender.closed.load(Ordering::Relaxed) || e.is_io() || e.is_go_away() {
                    self.forget(key, &slot);
                }
                let status =
                    tonic::Status::unavailable(format!("cannot reach {}: {e}", backend.daemon()));
                self.refuse(record, status)
            }
        }
    }
}

/// Sends the call: its headers, then the first message (as read) and the
/// rest of the client's body, and waits for the daemon's response head.
///
/// A call whose body has ended with its first message (every unary call)
/// goes as one DATA frame that ends the stream, sent here. Otherwise a task
/// pipes the rest frame by frame as the daemon's flow control allows
/// (bounded memory for uploads), without empty DATA frames: the daemon's
/// HTTP/2 layer allows only 100 empty frames that do not end their stream
/// per connection (h2's guard against framing floods), and one client's
/// connection to the daemon carries all its calls.
async fn send_call(
    send: &mut h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
    first: Option<Bytes>,
    rest: axum::body::Body,
) -> Result<http::Response<h2::RecvStream>, h2::Error> {
    use http_body::Body as _;
    let ended = rest.is_end_stream();
    let (response, mut stream) = send.send_request(req, ended && first.is_none())?;
    match first {
        Some(frame) if ended => stream.send_data(frame, true)?,
        None if ended => {}
        first => {
            tokio::spawn(async move {
                if let Err(e) = pipe(&mut stream, first, rest).await {
                    tracing::debug!("request body not forwarded: {e}");
                    stream.send_reset(h2::Reason::CANCEL);
                }
            });
        }
    }
    response.await
}

/// Sends `first` and then the frames of `rest` on `stream`, ending it with
/// the body's end or its trailers.
async fn pipe(
    stream: &mut h2::SendStream<Bytes>,
    first: Option<Bytes>,
    mut rest: axum::body::Body,
) -> Result<(), String> {
    if let Some(d) = first {
        send_data(stream, d).await?;
    }
    loop {
        match rest.frame().await {
            None => {
                return stream
                    .send_data(Bytes::new(), true)
                    .map_err(|e| e.to_string());
            }
            Some(Err(e)) => return Err(format!("the client's body failed: {e}")),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => send_data(stream, d).await?,
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        return stream.send_trailers(t).map_err(|e| e.to_string());
                    }
                }
            },
        }
    }
}

/// Sends `data` as the daemon's window allows (never an empty frame).
async fn send_data(stream: &mut h2::SendStream<Bytes>, mut data: Bytes) -> Result<(), String> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let n = match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the daemon closed the stream".to_owned()),
        };
        if n == 0 {
            continue;
        }
        let chunk = data.split_to(n.min(data.len()));
        stream.send_data(chunk, false).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The daemon's response body as the client's: DATA as it comes (the
/// window given back as each frame is passed on), then the trailers.
struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
}

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match std::task::ready!(self.recv.poll_data(cx)) {
                Some(Ok(d)) => {
                    let _ = self.recv.flow_control().release_capacity(d.len());
                    return Poll::Ready(Some(Ok(http_body::Frame::data(d))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.data_done = true,
            }
        }
        match std::task::ready!(self.recv.poll_trailers(cx)) {
            Ok(Some(t)) => Poll::Ready(Some(Ok(http_body::Frame::trailers(t)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

/// The request's URI as the daemon's connection needs it: scheme `http`
/// (a TLS client's `https` means nothing on the daemon's Unix socket) and
/// an authority (`localhost` when the client sent none).
fn set_origin(uri: &mut http::Uri) {
    if uri.scheme() == Some(&http::uri::Scheme::HTTP) && uri.authority().is_some() {
        return;
    }
    let mut p = std::mem::take(uri).into_parts();
    p.scheme = Some(http::uri::Scheme::HTTP);
    if p.authority.is_none() {
        p.authority = Some(http::uri::Authority::from_static("localhost"));
    }
    if p.path_and_query.is_none() {
        p.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(u) = http::Uri::from_parts(p) {
        *uri = u;
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
                return Err(too_large(len, max));
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
                // The usual case: the whole message in one frame, passed on
                // as it is (no copy).
                Ok(d) if buf.is_empty() && complete(&d) => {
                    let len = (&d[1..5]).get_u32() as usize;
                    if len > max {
                        return Err(too_large(len, max));
                    }
                    return Ok((Some(d), body));
                }
                Ok(d) => buf.extend_from_slice(&d),
                // Request trailers before the first message: pass nothing
                // more (gRPC clients send none).
                Err(_) => return Ok(((!buf.is_empty()).then(|| buf.freeze()), body)),
            },
        }
    }
}

/// Whether `data` holds at least one whole gRPC message.
fn complete(data: &[u8]) -> bool {
    data.len() >= 5 && data.len() - 5 >= (&data[1..5]).get_u32() as usize
}

fn too_large(len: usize, max: usize) -> tonic::Status {
    tonic::Status::resource_exhausted(format!(
        "message of {len} bytes is larger than the limit of {max} bytes (max_message_size)"
    ))
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
