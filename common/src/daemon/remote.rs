//! virtproxyd's network listeners: TLS (`listen_tls`, port `tls_port`) and
//! plain TCP (`listen_tcp`, port `tcp_port`), on `listen_addr`.
//!
//! As in libvirt, they exist only when the daemon runs with `--listen` or
//! systemd hands it the `virtproxyd-tls.socket` / `virtproxyd-tcp.socket`
//! listeners. TLS is mutual: the client's certificate must chain to the CA
//! (and not be revoked) unless `tls_no_verify_certificate = 1`, and its
//! subject DN must match `tls_allowed_dn_list` when that is set. A client
//! whose DN is refused keeps its connection, and every call on it fails
//! with PERMISSION_DENIED naming the DN (clearer for the user than a
//! closed connection); a client whose certificate fails verification never
//! gets past the handshake.
//!
//! Handshakes run in their own tasks (bounded by [`HANDSHAKE_TIMEOUT`]), so
//! a slow or silent client never holds up the accept loop.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::activation::ActivatedSocket;
use super::clients::{ClientRegistry, TrackedStream};
use crate::config::DaemonConfig;
use crate::paths::{Paths, SocketKind};
use crate::tls;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A network listener, ready to accept.
pub struct RemoteListener {
    /// Tcp or Tls.
    pub kind: SocketKind,
    /// The bound (or activated) listener.
    pub listener: TcpListener,
    /// The TLS acceptor (Tls only).
    pub acceptor: Option<TlsAcceptor>,
    /// Whether systemd handed it to us.
    pub activated: bool,
}

impl std::fmt::Debug for RemoteListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteListener")
            .field("kind", &self.kind)
            .field("listener", &self.listener)
            .field("tls", &self.acceptor.is_some())
            .field("activated", &self.activated)
            .finish()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The network listeners to serve: the activated tcp/tls sockets taken from
/// `activated`, plus, with `listen`, those the config enables that were not
/// activated. TLS files are loaded here, so a broken pki stops the start
/// with a message naming the file.
///
/// # Errors
/// A port cannot be bound or the TLS set-up fails.
pub fn setup(
    config: &DaemonConfig,
    paths: &Paths,
    activated: &mut Vec<ActivatedSocket>,
    listen: bool,
) -> Result<Vec<RemoteListener>, BoxError> {
    let mut out = Vec::new();
    for kind in [SocketKind::Tls, SocketKind::Tcp] {
        let from_systemd = activated
            .iter()
            .position(|a| a.kind == kind)
            .map(|i| activated.swap_remove(i));
        let enabled = match kind {
            SocketKind::Tls => config.listen_tls != 0,
            _ => config.listen_tcp != 0,
        };
        let (listener, is_activated) = match from_systemd {
            Some(a) => {
                let std = std::net::TcpListener::from(a.fd);
                std.set_nonblocking(true)?;
                (TcpListener::from_std(std)?, true)
            }
            None if listen && enabled => {
                let port = match kind {
                    SocketKind::Tls => &config.tls_port,
                    _ => &config.tcp_port,
                };
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("'{port}' is not a port number"))?;
                (bind(&config.listen_addr, port)?, false)
            }
            None => continue,
        };
        let acceptor = if kind == SocketKind::Tls {
            let files = tls::server::ServerFiles::from_config(config, paths);
            let cfg = tls::server::server_config(&files, config.tls_no_verify_certificate == 0)?;
            Some(TlsAcceptor::from(cfg))
        } else {
            if config.auth_tcp == "none" {
                tracing::warn!(
                    "listening on plain TCP without authentication: anyone who reaches the port has read-write access"
                );
            }
            None
        };
        out.push(RemoteListener {
            kind,
            listener,
            acceptor,
            activated: is_activated,
        });
    }
    Ok(out)
}

/// Binds `addr:port`; an empty `addr` means every address (IPv6 and IPv4
/// where the host has IPv6, else IPv4).
fn bind(addr: &str, port: u16) -> Result<TcpListener, BoxError> {
    let candidates: Vec<SocketAddr> = if addr.is_empty() {
        vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]
    } else {
        let host = addr.trim_start_matches('[').trim_end_matches(']');
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("listen_addr '{addr}': {e}"))?
            .collect()
    };
    let mut last = None;
    for a in candidates {
        let socket = match a {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let r = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(a)?;
            s.listen(1024)
        });
        match r {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(format!("Unable to bind to {a}: {e}")),
        }
    }
    Err(last
        .unwrap_or_else(|| format!("listen_addr '{addr}' names no address"))
        .into())
}

/// A network connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum RemoteIo {
    /// `listen_tcp`.
    Tcp(TcpStream),
    /// `listen_tls`.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for RemoteIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RemoteIo::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            RemoteIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RemoteIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RemoteIo::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            RemoteIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RemoteIo::Tcp(s) => Pin::new(s).poll_flush(cx),
            RemoteIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RemoteIo::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            RemoteIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RemoteIo::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            RemoteIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            RemoteIo::Tcp(s) => s.is_write_vectored(),
            RemoteIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What the accept loop needs besides the listener.
#[derive(Clone)]
pub struct AcceptContext {
    /// Where connections register.
    pub clients: ClientRegistry,
    /// `tls_allowed_dn_list`.
    pub dn_list: Option<Arc<[String]>>,
    /// Whether one more client may connect on the main server.
    pub admit: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for AcceptContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptContext")
            .field("dn_list", &self.dn_list)
            .finish_non_exhaustive()
    }
}

/// The accepted (and, for TLS, handshaken) connections of `l`, as a stream
/// for tonic's `serve_with_incoming`.
pub fn incoming(
    l: RemoteListener,
    cx: AcceptContext,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<TrackedStream<RemoteIo>>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match l.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(socket = l.kind.as_str(), "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            if !(cx.admit)() {
                tracing::warn!(socket = l.kind.as_str(), %peer, "client limit reached, refusing connection");
                continue;
            }
            let _ = tcp.set_nodelay(true);
            let (tx, cx, acceptor, kind) = (tx.clone(), cx.clone(), l.acceptor.clone(), l.kind);
            tokio::spawn(async move {
                let fd = tcp.as_raw_fd();
                let mut tracked = match acceptor {
                    None => cx
                        .clients
                        .track(RemoteIo::Tcp(tcp), fd, kind, None, String::new()),
                    Some(acceptor) => {
                        let tls =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::warn!(%peer, "TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::warn!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let dn = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(tls::subject_dn)
                            .transpose()
                            .unwrap_or_else(|e| {
                                tracing::warn!(%peer, "client certificate: {e}");
                                None
                            });
                        let denied = match (&dn, cx.dn_list.as_deref()) {
                            (_, None) => None,
                            (Some(dn), Some(list)) if tls::dn_allowed(dn, Some(list)) => None,
                            (Some(dn), Some(_)) => Some(format!(
                                "Client's x509 Distinguished Name '{dn}' is not on the list of allowed clients (tls_allowed_dn_list)"
                            )),
                            (None, Some(_)) => Some(
                                "Client presented no x509 certificate and tls_allowed_dn_list is set".to_owned(),
                            ),
                        };
                        if let Some(why) = &denied {
                            tracing::warn!(%peer, "{why}");
                        }
                        let mut t = cx.clients.track(
                            RemoteIo::Tls(Box::new(tls)),
                            fd,
                            kind,
                            None,
                            dn.unwrap_or_default(),
                        );
                        t.set_denied(denied);
                        t
                    }
                };
                tracked.set_remote_addr(peer.to_string());
                let _ = tx.send(Ok(tracked)).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// virtproxyd's [`super::Remote`]: the TLS and TCP listeners above.
#[derive(Debug, Default)]
pub struct TlsRemote {
    listeners: Vec<RemoteListener>,
}

impl super::Remote for TlsRemote {
    fn bind(
        &mut self,
        config: &DaemonConfig,
        paths: &Paths,
        activated: &mut Vec<ActivatedSocket>,
        listen: bool,
    ) -> Result<Vec<super::ServedSocket>, BoxError> {
        self.listeners = setup(config, paths, activated, listen)?;
        Ok(self
            .listeners
            .iter()
            .map(|l| {
                let address = l
                    .listener
                    .local_addr()
                    .map_or_else(|_| "?".to_owned(), |a| a.to_string());
                tracing::info!(socket = l.kind.as_str(), %address, "listening");
                super::ServedSocket {
                    kind: l.kind,
                    address,
                    activated: l.activated,
                }
            })
            .collect())
    }

    fn serve(self: Box<Self>, s: super::RemoteServe<'_>) {
        for l in self.listeners {
            let kind = l.kind;
            let cx = AcceptContext {
                clients: s.clients.clone(),
                dn_list: s.dn_list.clone(),
                admit: s.admit.clone(),
            };
            super::spawn_server(
                s.servers,
                (s.settings)(kind),
                s.routes.clone(),
                incoming(l, cx),
                s.stop.clone(),
            );
        }
    }
}
