//! A connection to the daemons behind one URI.
//!
//! Like libvirt's modular daemons, each API family lives in its own daemon:
//! domains and the host in virtqemud, storage in virtstoraged, networks in
//! virtnetworkd ([`Daemon`]). A [`Connection`] dials each of them lazily,
//! the first time a command needs it, and keeps the channel for the
//! following commands.
//!
//! Where a daemon is reached is decided by [`target`] (from the URI, the
//! read-only flag and the daemon); turning a target into a tonic channel is
//! the single seam [`open_channel`]:
//!
//! - `unix`: the daemon's own socket (`-sock`, or `-sock-ro` when
//!   read-only), or the one `socket=` given;
//! - `tcp`: plain TCP to virtproxyd (default port 16509);
//! - `tls`: TLS to virtproxyd (default port 16514), with the client files
//!   chosen by [`client_files`], the handshake done by
//!   [`common::tls::client`] inside the channel's connector.
//!
//! Over `tcp`/`tls` every daemon is behind the same proxy, so one channel
//! serves the three services; channels are kept per [`Target`]. Remote
//! channels send HTTP/2 keepalive pings ([`keepalive`], virsh's `-k`/`-K`).
//!
//! Every call goes through one interceptor, [`CallMeta`]: it adds the trace
//! context and, on a read-only remote connection (`-r`, `connect
//! --readonly`), the metadata [`READONLY_HEADER`]` = 1`, which makes
//! virtproxyd treat the caller as read-only (locally the `-sock-ro` sockets
//! do that).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

pub use common::daemon::acl::READONLY_HEADER;
use common::paths::{Mode, Paths, SocketKind};
use common::tls::TlsError;
use common::tls::client::ClientFiles;
use hyper_util::rt::TokioIo;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::uri::{ConnectUri, Transport, UriError};

/// virsh's default keepalive interval (seconds) when `-k` is not given
/// (`virshConnect`: `interval = 5`).
pub const DEFAULT_KEEPALIVE_INTERVAL: u32 = 5;

/// virsh's default keepalive count when `-K` is not given
/// (`virshConnect`: `count = 6`).
pub const DEFAULT_KEEPALIVE_COUNT: u32 = 6;

/// A daemon serving one family of APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Daemon {
    /// virtqemud: domains, host and hypervisor.
    Qemu,
    /// virtstoraged: storage pools and volumes.
    Storage,
    /// virtnetworkd: virtual networks.
    Network,
}

impl Daemon {
    /// The daemon's program (and socket) name.
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Qemu => "virtqemud",
            Daemon::Storage => "virtstoraged",
            Daemon::Network => "virtnetworkd",
        }
    }
}

/// Why a daemon could not be reached. Printed after
/// `error: failed to connect to the hypervisor`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI was rejected.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The Unix socket could not be connected.
    #[error(transparent)]
    Socket(#[from] common::client::ConnectError),
    /// The remote host name does not resolve.
    #[error("unable to resolve '{host}' service '{port}': {reason}")]
    Resolve {
        /// Host name.
        host: String,
        /// Port.
        port: u16,
        /// The resolver's message.
        reason: String,
    },
    /// No TCP connection to the remote host.
    #[error("unable to connect to server at '{host}:{port}': {}", strerror(source))]
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS client file is missing or unusable (the message names it).
    #[error("{}", tls_file_message(.0))]
    TlsFiles(#[from] TlsError),
    /// The server's certificate was refused.
    #[error("authentication failed: Failed to verify peer's certificate ({0})")]
    PeerCertificate(String),
    /// The server refused our certificate (TLS 1.3 tells the client after
    /// its side of the handshake, with the server's first bytes).
    #[error("server verification (of our certificate or IP address) failed ({0})")]
    ServerRefused(String),
    /// The TLS handshake failed otherwise.
    #[error("TLS handshake failed with server at '{host}:{port}': {reason}")]
    Handshake {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// The HTTP/2 channel could not be set up on the connection.
    #[error("unable to open a channel to server at '{host}:{port}': {reason}")]
    Channel {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        reason: String,
    },
}

/// An OS error without Rust's " (os error N)" suffix, as libvirt prints it.
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn tls_file_message(e: &TlsError) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Where to dial one daemon.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A local Unix socket.
    Unix(PathBuf),
    /// Plain TCP to virtproxyd.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// TLS to virtproxyd.
    Tls {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Directory of `cacert.pem`, `clientcert.pem`, `clientkey.pem`.
        pkipath: Option<PathBuf>,
        /// Skip the verification of the server's certificate.
        no_verify: bool,
    },
}

impl Target {
    /// Whether the target is virtproxyd over the network.
    pub fn is_remote(&self) -> bool {
        !matches!(self, Target::Unix(_))
    }
}

/// Client-side settings that apply to every channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    /// `-k`: seconds between keepalive probes (`0` disables them).
    pub keepalive_interval: Option<u32>,
    /// `-K`: how many unanswered probes close the connection.
    pub keepalive_count: Option<u32>,
}

/// The HTTP/2 keepalive of a remote channel: the ping interval and how
/// long to wait for its answer, or `None` when disabled (`-k 0`).
///
/// virsh's keepalive (default interval 5 s, count 6) declares the
/// connection dead after `count` unanswered probes sent `interval` apart;
/// over HTTP/2 that is one ping every `interval` while idle, whose answer
/// may take `interval × count` (at least one interval: with `-K 0`,
/// libvirt closes after one silent interval).
pub fn keepalive(options: &ChannelOptions) -> Option<(Duration, Duration)> {
    let interval = options
        .keepalive_interval
        .unwrap_or(DEFAULT_KEEPALIVE_INTERVAL);
    if interval == 0 {
        return None;
    }
    let count = options
        .keepalive_count
        .unwrap_or(DEFAULT_KEEPALIVE_COUNT)
        .max(1);
    let interval = Duration::from_secs(u64::from(interval));
    Some((interval, interval.saturating_mul(count)))
}

/// Where `daemon` is reached for `uri`: its `-sock` (or `-sock-ro` when
/// `readonly`) in the URI's mode, the single `socket=` when given, or the
/// remote host for `tcp`/`tls`.
pub fn target(uri: &ConnectUri, daemon: Daemon, readonly: bool) -> Target {
    match uri.transport() {
        Transport::Unix => match &uri.socket {
            Some(path) => Target::Unix(path.clone()),
            None => {
                let kind = if readonly {
                    SocketKind::ReadOnly
                } else {
                    SocketKind::ReadWrite
                };
                Target::Unix(Paths::from_env(uri.mode).socket(daemon.name(), kind))
            }
        },
        Transport::Tcp => Target::Tcp {
            host: uri.remote_host().to_owned(),
            port: uri.remote_port(),
        },
        Transport::Tls => Target::Tls {
            host: uri.remote_host().to_owned(),
            port: uri.remote_port(),
            pkipath: uri.pkipath.clone(),
            no_verify: uri.no_verify,
        },
    }
}

/// The TLS client files for `pkipath=` (or its absence), as libvirt's
/// remote driver locates them: the three files of `pkipath` when given;
/// else, for root (or when `VIRT_ROOT` is set), the system files
/// (`<ca_dir>/cacert.pem`, `<pki_dir>/clientcert.pem`,
/// `<pki_dir>/private/clientkey.pem`, under `VIRT_ROOT`); else the user's
/// `~/.pki/virt/{cacert,clientcert,clientkey}.pem`, where a missing CA
/// falls back to the system CA and a missing certificate or key to the
/// system certificate and key.
pub fn client_files(pkipath: Option<&Path>) -> ClientFiles {
    client_files_from(
        pkipath,
        Mode::detect() == Mode::System,
        &Paths::from_env(Mode::Session).pki_dir,
        &Paths::from_env(Mode::System),
    )
}

/// [`client_files`] with the privilege, the user's pki directory and the
/// system layout given, for tests.
pub fn client_files_from(
    pkipath: Option<&Path>,
    privileged: bool,
    user_dir: &Path,
    system: &Paths,
) -> ClientFiles {
    if let Some(dir) = pkipath {
        return ClientFiles::in_dir(dir);
    }
    let sys = ClientFiles::system(system);
    if privileged {
        return sys;
    }
    let user = ClientFiles::in_dir(user_dir);
    let ca_file = if user.ca_file.exists() {
        user.ca_file
    } else {
        sys.ca_file
    };
    let (cert_file, key_file) = if user.cert_file.exists() && user.key_file.exists() {
        (user.cert_file, user.key_file)
    } else {
        (sys.cert_file, sys.key_file)
    };
    ClientFiles {
        ca_file,
        cert_file,
        key_file,
    }
}

/// The one function that turns a target into a connected tonic channel.
///
/// The first connection is made here, so that what fails (the socket, the
/// name, the TCP connection, a TLS file, the server's certificate) is
/// reported with libvirt's words; the channel dials again by itself
/// after a lost connection. Remote channels get the keepalive of
/// `options`; over a local socket the peer's death is seen at once.
///
/// # Errors
/// See [`ConnectError`].
pub async fn open_channel(
    target: &Target,
    options: &ChannelOptions,
) -> Result<Channel, ConnectError> {
    match target {
        Target::Unix(path) => Ok(common::client::connect_unix(path).await?),
        Target::Tcp { host, port } => {
            let port = *port;
            let first = dial_tcp(host, port).await?;
            let h = host.clone();
            let dial = move || {
                let h = h.clone();
                async move {
                    let s = TcpStream::connect((bare_host(&h), port)).await?;
                    s.set_nodelay(true)?;
                    Ok(s)
                }
            };
            remote_channel(host, port, options, first, dial).await
        }
        Target::Tls {
            host,
            port,
            pkipath,
            no_verify,
        } => {
            let port = *port;
            let files = client_files(pkipath.as_deref());
            let config = common::tls::client::client_config(&files, !no_verify)?;
            // Resolve first, so that an unknown name is told apart from a
            // refused connection (the connector resolves again: cheap).
            resolve(host, port).await?;
            let first = common::tls::client::connect(config.clone(), host, port)
                .await
                .map_err(|e| handshake_error(host, port, e))?;
            let first = confirmed(first).await?;
            let h = host.clone();
            let dial = move || {
                let (h, config) = (h.clone(), config.clone());
                async move {
                    let s = common::tls::client::connect(config, &h, port).await?;
                    Ok(Prefixed::new(Vec::new(), s))
                }
            };
            remote_channel(host, port, options, first, dial).await
        }
    }
}

/// A host as dialed: without the brackets of an IPv6 literal.
fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The host as it goes into a URI authority (IPv6 literals bracketed).
fn uri_host(host: &str) -> String {
    let bare = bare_host(host);
    if bare.contains(':') {
        format!("[{bare}]")
    } else {
        bare.to_owned()
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare_host(host), port))
        .await
        .map_err(|e| ConnectError::Resolve {
            host: host.to_owned(),
            port,
            reason: resolver_reason(&e),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ConnectError::Resolve {
            host: host.to_owned(),
            port,
            reason: "No address associated with hostname".to_owned(),
        });
    }
    Ok(addrs)
}

/// The resolver's own text, without the prefix Rust's standard library adds.
fn resolver_reason(e: &std::io::Error) -> String {
    let s = strerror(e);
    s.strip_prefix("failed to lookup address information: ")
        .map_or(s.clone(), str::to_owned)
}

/// The first TCP connection: every resolved address in turn, the last
/// error reported as libvirt does.
async fn dial_tcp(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in resolve(host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true).ok();
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError::Tcp {
        host: host.to_owned(),
        port,
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })
}

/// Sorts a failed TLS connection into a refused connection, a refused
/// server certificate, or another handshake failure.
fn handshake_error(host: &str, port: u16, e: std::io::Error) -> ConnectError {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(_) => ConnectError::PeerCertificate(tls.to_string()),
            other => ConnectError::Handshake {
                host: host.to_owned(),
                port,
                reason: other.to_string(),
            },
        };
    }
    if e.raw_os_error().is_some() {
        return ConnectError::Tcp {
            host: host.to_owned(),
            port,
            source: e,
        };
    }
    ConnectError::Handshake {
        host: host.to_owned(),
        port,
        reason: strerror(&e),
    }
}

/// How long [`confirmed`] waits for the server's first bytes.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for the server's first bytes on a new TLS connection, as
/// libvirt's client waits for the server's confirmation byte: with TLS
/// 1.3 a server that refuses the client's certificate (unknown CA,
/// revoked) says so only after the client's handshake has completed, in
/// place of the HTTP/2 settings it sends first otherwise. The bytes read
/// are replayed to the channel. A server silent for [`CONFIRM_TIMEOUT`]
/// is let through (the calls will tell).
async fn confirmed<S>(mut stream: S) -> Result<Prefixed<S>, ConnectError>
where
    S: AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 256];
    match tokio::time::timeout(CONFIRM_TIMEOUT, stream.read(&mut buf)).await {
        Err(_) => Ok(Prefixed::new(Vec::new(), stream)),
        Ok(Ok(0)) => Err(ConnectError::ServerRefused(
            "the server closed the connection".to_owned(),
        )),
        Ok(Ok(n)) => {
            buf.truncate(n);
            Ok(Prefixed::new(buf, stream))
        }
        Ok(Err(e)) => Err(ConnectError::ServerRefused(strerror(&e))),
    }
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A channel to virtproxyd whose connector hands out `first` (already
/// connected) once and dials with `dial` after that.
async fn remote_channel<S, D, F>(
    host: &str,
    port: u16,
    options: &ChannelOptions,
    first: S,
    dial: D,
) -> Result<Channel, ConnectError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    D: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = std::io::Result<S>> + Send + 'static,
{
    let channel_error = |reason: String| ConnectError::Channel {
        host: host.to_owned(),
        port,
        reason,
    };
    let mut endpoint = Endpoint::from_shared(format!("http://{}:{port}", uri_host(host)))
        .map_err(|e| channel_error(e.to_string()))?;
    if let Some((interval, timeout)) = keepalive(options) {
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
    }
    let first = Arc::new(Mutex::new(Some(first)));
    let dial = Arc::new(dial);
    let connector = tower::service_fn(move |_: http::Uri| {
        let taken = first.lock().ok().and_then(|mut f| f.take());
        let dial = dial.clone();
        async move {
            let stream = match taken {
                Some(s) => s,
                None => dial().await?,
            };
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| channel_error(error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The interceptor every call of a [`Connection`] goes through: trace
/// context, and [`READONLY_HEADER`] on read-only remote connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallMeta {
    /// Send `virt-readonly: 1` with every call.
    pub readonly: bool,
}

impl Interceptor for CallMeta {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut req = common::trace::inject(req)?;
        if self.readonly {
            req.metadata_mut()
                .insert(READONLY_HEADER, MetadataValue::from_static("1"));
        }
        Ok(req)
    }
}

/// A channel with the [`CallMeta`] interceptor: what every client of a
/// [`Connection`] is built on.
pub type VirtChannel = InterceptedService<Channel, CallMeta>;

/// Wraps `channel` in the [`CallMeta`] interceptor.
pub fn intercepted(channel: Channel, meta: CallMeta) -> VirtChannel {
    InterceptedService::new(channel, meta)
}

/// The daemons behind one URI, dialed on first use.
#[derive(Debug)]
pub struct Connection {
    uri: ConnectUri,
    readonly: bool,
    options: ChannelOptions,
    channels: HashMap<Target, Channel>,
}

impl Connection {
    /// A connection that has not dialed anything yet.
    pub fn new(uri: ConnectUri, readonly: bool, options: ChannelOptions) -> Connection {
        Connection {
            uri,
            readonly,
            options,
            channels: HashMap::new(),
        }
    }

    /// The URI this connection was opened with.
    pub fn uri(&self) -> &ConnectUri {
        &self.uri
    }

    /// Whether the connection is read-only (the `-sock-ro` sockets locally,
    /// [`READONLY_HEADER`] remotely).
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The interceptor of this connection's calls.
    pub fn call_meta(&self) -> CallMeta {
        CallMeta {
            readonly: self.readonly && self.uri.transport() != Transport::Unix,
        }
    }

    /// The channel to `daemon`, dialing it the first time (one channel per
    /// target: over `tcp`/`tls` the three daemons share one).
    ///
    /// # Errors
    /// [`ConnectError`] when the daemon cannot be reached.
    pub async fn channel(&mut self, daemon: Daemon) -> Result<VirtChannel, ConnectError> {
        let target = target(&self.uri, daemon, self.readonly);
        let ch = match self.channels.get(&target) {
            Some(ch) => ch.clone(),
            None => {
                let ch = open_channel(&target, &self.options).await?;
                self.channels.insert(target, ch.clone());
                ch
            }
        };
        Ok(intercepted(ch, self.call_meta()))
    }

    /// Forgets every channel, so that the next call dials again (after a
    /// daemon restart, for instance).
    pub fn reset(&mut self) {
        self.channels.clear();
    }

    /// A client of virtqemud's `DomainService` (domains and the host).
    ///
    /// # Errors
    /// [`ConnectError`] when virtqemud cannot be reached.
    pub async fn domain(&mut self) -> Result<DomainServiceClient<VirtChannel>, ConnectError> {
        Ok(DomainServiceClient::new(self.channel(Daemon::Qemu).await?))
    }

    /// A client of virtstoraged's `StorageService`.
    ///
    /// # Errors
    /// [`ConnectError`] when virtstoraged cannot be reached.
    pub async fn storage(&mut self) -> Result<StorageServiceClient<VirtChannel>, ConnectError> {
        Ok(StorageServiceClient::new(
            self.channel(Daemon::Storage).await?,
        ))
    }

    /// A client of virtnetworkd's `NetworkService`.
    ///
    /// # Errors
    /// [`ConnectError`] when virtnetworkd cannot be reached.
    pub async fn network(&mut self) -> Result<NetworkServiceClient<VirtChannel>, ConnectError> {
        Ok(NetworkServiceClient::new(
            self.channel(Daemon::Network).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> ConnectUri {
        match ConnectUri::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn socket_param_routes_everything_to_one_socket() {
        let u = uri("qemu+unix:///system?socket=/tmp/one");
        for d in [Daemon::Qemu, Daemon::Storage, Daemon::Network] {
            assert_eq!(target(&u, d, true), Target::Unix(PathBuf::from("/tmp/one")));
        }
    }

    #[test]
    fn local_targets_use_daemon_sockets() {
        let u = uri("qemu:///system");
        let Target::Unix(p) = target(&u, Daemon::Storage, false) else {
            panic!("not unix");
        };
        assert!(p.ends_with("run/virt/virtstoraged-sock"), "{}", p.display());
        let Target::Unix(p) = target(&u, Daemon::Qemu, true) else {
            panic!("not unix");
        };
        assert!(p.ends_with("virtqemud-sock-ro"), "{}", p.display());
    }

    #[test]
    fn remote_targets() {
        let u = uri("qemu+tls://h/system?pkipath=/p&no_verify=1");
        assert_eq!(
            target(&u, Daemon::Qemu, false),
            Target::Tls {
                host: "h".into(),
                port: 16514,
                pkipath: Some(PathBuf::from("/p")),
                no_verify: true
            }
        );
        let u = uri("qemu+tcp://h:1/session");
        assert_eq!(
            target(&u, Daemon::Network, false),
            Target::Tcp {
                host: "h".into(),
                port: 1
            }
        );
    }

    #[test]
    fn keepalive_follows_virsh() {
        let secs = Duration::from_secs;
        assert_eq!(
            keepalive(&ChannelOptions::default()),
            Some((secs(5), secs(30)))
        );
        let o = |i, c| ChannelOptions {
            keepalive_interval: i,
            keepalive_count: c,
        };
        assert_eq!(keepalive(&o(Some(2), Some(3))), Some((secs(2), secs(6))));
        assert_eq!(keepalive(&o(Some(10), None)), Some((secs(10), secs(60))));
        assert_eq!(keepalive(&o(None, Some(0))), Some((secs(5), secs(5))));
        assert_eq!(keepalive(&o(Some(0), Some(3))), None);
    }

    #[test]
    fn client_files_as_libvirt_locates_them() {
        let tmp = std::env::temp_dir().join(format!("virtsh-pki-{}", std::process::id()));
        let user = tmp.join("user");
        let system = Paths::system(Some(&tmp.join("root")));
        let sys = ClientFiles::system(&system);
        assert_eq!(
            sys.key_file,
            tmp.join("root/etc/pki/virt/private/clientkey.pem")
        );
        assert_eq!(sys.ca_file, tmp.join("root/etc/pki/CA/cacert.pem"));

        // pkipath wins, whatever exists.
        let p = Path::new("/some/dir");
        assert_eq!(
            client_files_from(Some(p), true, &user, &system),
            ClientFiles::in_dir(p)
        );
        // Root: the system files.
        assert_eq!(client_files_from(None, true, &user, &system), sys);
        // A user without files: the system files.
        assert_eq!(client_files_from(None, false, &user, &system), sys);

        // The user's CA alone; then the certificate without its key; then both.
        std::fs::create_dir_all(&user).expect("mkdir");
        let mine = ClientFiles::in_dir(&user);
        std::fs::write(&mine.ca_file, "x").expect("write");
        let f = client_files_from(None, false, &user, &system);
        assert_eq!(f.ca_file, mine.ca_file);
        assert_eq!(f.cert_file, sys.cert_file);
        std::fs::write(&mine.cert_file, "x").expect("write");
        let f = client_files_from(None, false, &user, &system);
        assert_eq!((&f.cert_file, &f.key_file), (&sys.cert_file, &sys.key_file));
        std::fs::write(&mine.key_file, "x").expect("write");
        assert_eq!(client_files_from(None, false, &user, &system), mine);
        std::fs::remove_dir_all(&tmp).ok();
    }

    #[test]
    fn readonly_metadata_only_on_remote_connections() {
        let meta = |u: &str, ro| Connection::new(uri(u), ro, ChannelOptions::default()).call_meta();
        assert!(meta("qemu+tls://h/system", true).readonly);
        assert!(meta("qemu+tcp://h/system", true).readonly);
        assert!(!meta("qemu+tcp://h/system", false).readonly);
        assert!(!meta("qemu:///system", true).readonly);

        let mut m = CallMeta { readonly: true };
        let req = m.call(tonic::Request::new(())).expect("intercept");
        assert_eq!(
            req.metadata()
                .get(READONLY_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let mut m = CallMeta { readonly: false };
        let req = m.call(tonic::Request::new(())).expect("intercept");
        assert!(req.metadata().get(READONLY_HEADER).is_none());
    }

    #[tokio::test]
    async fn refused_tcp_connection_is_reported_as_libvirt_does() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut c = Connection::new(
            uri(&format!("qemu+tcp://127.0.0.1:{port}/system")),
            false,
            ChannelOptions::default(),
        );
        let e = c.domain().await.err().map(|e| e.to_string());
        assert_eq!(
            e,
            Some(format!(
                "unable to connect to server at '127.0.0.1:{port}': Connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn missing_tls_file_is_named() {
        let mut c = Connection::new(
            uri("qemu+tls://127.0.0.1:1/system?pkipath=/nonexistent/pki"),
            false,
            ChannelOptions::default(),
        );
        let e = c.domain().await.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "Cannot read client certificate '/nonexistent/pki/clientcert.pem': No such file or directory"
            )
        );
    }

    #[tokio::test]
    async fn unknown_host_is_a_resolver_error() {
        let mut c = Connection::new(
            uri("qemu+tcp://no-such-host.invalid/system"),
            false,
            ChannelOptions::default(),
        );
        let e = c
            .domain()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("unable to resolve 'no-such-host.invalid' service '16509': "),
            "{e}"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_reported_with_its_path() {
        let mut c = Connection::new(
            uri("qemu+unix:///system?socket=/nonexistent/virtqemud-sock"),
            false,
            ChannelOptions::default(),
        );
        let e = c.domain().await.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "Failed to connect socket to '/nonexistent/virtqemud-sock': No such file or directory"
            )
        );
    }
}
