//! Who is connected: one entry per accepted connection, with its socket
//! kind and peer credentials.
//!
//! Every accepted stream is wrapped in a [`TrackedStream`] that registers on
//! accept and deregisters when the connection is dropped. Its
//! [`ClientInfo`] is the connection's tonic `ConnectInfo`, so handlers read
//! the caller's identity with `request.extensions().get::<ClientInfo>()`.
//! The registry also drives the idle timeout (no clients for N seconds) and
//! admin's ListClients/CloseClient.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::transport::server::Connected;

use crate::paths::SocketKind;

/// What a handler knows about its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// Registry id, unique for the daemon's life.
    pub id: u64,
    /// Which socket it came in on.
    pub socket: SocketKind,
    /// Peer uid (Unix sockets).
    pub uid: Option<u32>,
    /// Peer gid (Unix sockets).
    pub gid: Option<u32>,
    /// Peer pid (Unix sockets).
    pub pid: Option<i32>,
    /// Certificate subject DN (TLS), or empty.
    pub identity: String,
    /// The peer's `host:port` (TCP and TLS).
    pub remote_addr: Option<String>,
    /// Why every call of this client is refused (a TLS client whose DN is
    /// not on `tls_allowed_dn_list`), if it is.
    pub denied: Option<String>,
    /// When it connected.
    pub connected_at: SystemTime,
}

impl ClientInfo {
    /// Whether the caller is restricted to read-only methods.
    pub fn readonly(&self) -> bool {
        self.socket == SocketKind::ReadOnly
    }

    /// Who the caller is, for logs and audit records: `uid=U pid=P` on a
    /// Unix socket, the certificate DN on TLS, `tcp:ADDR` otherwise.
    pub fn who(&self) -> String {
        if !self.identity.is_empty() {
            return self.identity.clone();
        }
        if let Some(a) = &self.remote_addr {
            return format!("{}:{a}", self.socket.as_str());
        }
        match (self.uid, self.pid) {
            (Some(u), Some(p)) => format!("uid={u} pid={p}"),
            (Some(u), None) => format!("uid={u}"),
            _ => format!("client {}", self.id),
        }
    }
}

#[derive(Debug)]
struct Entry {
    info: ClientInfo,
    fd: RawFd,
}

#[derive(Debug)]
struct Inner {
    clients: BTreeMap<u64, Entry>,
    /// When the client count last changed to zero (or the registry was made).
    idle_since: Instant,
}

/// The connected clients of one daemon.
#[derive(Clone, Debug)]
pub struct ClientRegistry {
    inner: Arc<Mutex<Inner>>,
    next_id: Arc<AtomicU64>,
}

impl Default for ClientRegistry {
    fn default() -> Self {
        ClientRegistry {
            inner: Arc::new(Mutex::new(Inner {
                clients: BTreeMap::new(),
                idle_since: Instant::now(),
            })),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl ClientRegistry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert/remove/read).
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers an accepted Unix connection.
    pub fn track_unix(&self, stream: UnixStream, socket: SocketKind) -> TrackedStream<UnixStream> {
        let cred = stream.peer_cred().ok();
        let fd = stream.as_raw_fd();
        self.track(
            stream,
            fd,
            socket,
            cred.map(|c| (c.uid(), c.gid(), c.pid())),
            String::new(),
        )
    }

    /// Registers any accepted connection.
    pub fn track<S>(
        &self,
        stream: S,
        fd: RawFd,
        socket: SocketKind,
        cred: Option<(u32, u32, Option<i32>)>,
        identity: String,
    ) -> TrackedStream<S> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = ClientInfo {
            id,
            socket,
            uid: cred.map(|c| c.0),
            gid: cred.map(|c| c.1),
            pid: cred.and_then(|c| c.2),
            identity,
            remote_addr: None,
            denied: None,
            connected_at: SystemTime::now(),
        };
        self.lock().clients.insert(
            id,
            Entry {
                info: info.clone(),
                fd,
            },
        );
        TrackedStream {
            guard: ClientGuard {
                registry: self.clone(),
                id,
            },
            info,
            inner: stream,
        }
    }

    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        if inner.clients.remove(&id).is_some() && inner.clients.is_empty() {
            inner.idle_since = Instant::now();
        }
    }

    /// Number of connected clients.
    pub fn count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Number of connected clients on sockets of `kind`.
    pub fn count_on(&self, kind: SocketKind) -> usize {
        self.lock()
            .clients
            .values()
            .filter(|e| e.info.socket == kind)
            .count()
    }

    /// All connected clients, by id.
    pub fn list(&self) -> Vec<ClientInfo> {
        self.lock()
            .clients
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    /// One client.
    pub fn get(&self, id: u64) -> Option<ClientInfo> {
        self.lock().clients.get(&id).map(|e| e.info.clone())
    }

    /// How long there has been no client, or `None` while one is connected.
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        let inner = self.lock();
        inner.clients.is_empty().then(|| inner.idle_since.elapsed())
    }

    /// Restarts the idle clock (something happened that is not a client).
    pub fn touch(&self) {
        self.lock().idle_since = Instant::now();
    }

    /// Disconnects a client: shuts its socket down, which ends the
    /// connection's reads and so the connection. Returns false if no such
    /// client is connected.
    pub fn close(&self, id: u64) -> bool {
        let inner = self.lock();
        match inner.clients.get(&id) {
            Some(entry) => {
                // SAFETY: the fd belongs to a stream still registered; its
                // guard deregisters under this same lock before the stream
                // (and so the fd) is dropped, so the fd is open here.
                let fd = unsafe { BorrowedFd::borrow_raw(entry.fd) };
                let _ =
                    nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Both);
                true
            }
            None => false,
        }
    }
}

#[derive(Debug)]
struct ClientGuard {
    registry: ClientRegistry,
    id: u64,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// An accepted connection that stays registered while it lives.
#[derive(Debug)]
pub struct TrackedStream<S> {
    // Field order matters: the guard is dropped (deregistered) before the
    // stream closes its fd; see `ClientRegistry::close`.
    guard: ClientGuard,
    info: ClientInfo,
    inner: S,
}

impl<S> TrackedStream<S> {
    /// The client's info.
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// The registry id.
    pub fn id(&self) -> u64 {
        self.guard.id
    }

    /// Marks the connection refused: every call on it fails with
    /// PERMISSION_DENIED and `why` (see [`crate::daemon::acl`]).
    pub fn set_denied(&mut self, why: Option<String>) {
        self.info.denied = why;
    }

    /// Records the peer's network address (TCP and TLS), also in the
    /// registry (admin ListClients shows it).
    pub fn set_remote_addr(&mut self, addr: String) {
        if let Some(e) = self.guard.registry.lock().clients.get_mut(&self.guard.id) {
            e.info.remote_addr = Some(addr.clone());
        }
        self.info.remote_addr = Some(addr);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S> Connected for TrackedStream<S>
where
    S: Send + 'static,
{
    type ConnectInfo = ClientInfo;

    fn connect_info(&self) -> ClientInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registry_tracks_and_closes() {
        let reg = ClientRegistry::default();
        let (a, _b) = UnixStream::pair().expect("pair");
        assert!(reg.idle_for().is_some());
        let t = reg.track_unix(a, SocketKind::ReadOnly);
        assert_eq!(reg.count(), 1);
        assert!(reg.idle_for().is_none());
        let info = reg.get(t.id()).expect("registered");
        assert!(info.readonly());
        assert_eq!(info.uid, Some(nix::unistd::geteuid().as_raw()));
        assert!(reg.close(t.id()));
        drop(t);
        assert_eq!(reg.count(), 0);
        assert!(!reg.close(12345));
    }
}
