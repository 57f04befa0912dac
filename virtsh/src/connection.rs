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
//! the single seam [`open_channel`], where the TCP/TLS transports (through
//! virtproxyd) will be added.

use std::collections::HashMap;
use std::path::PathBuf;

use common::paths::{Paths, SocketKind};
use common::trace::{TracedChannel, traced};
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tonic::transport::Channel;

use crate::uri::{ConnectUri, Transport, UriError};

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
    /// A transport that is parsed but not implemented yet.
    #[error("Operation not supported: transport '{0}' is not supported yet")]
    Unsupported(Transport),
}

/// Where to dial one daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Client-side settings that apply to every channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    /// `-k`: seconds between keepalive probes (`0` disables them).
    pub keepalive_interval: Option<u32>,
    /// `-K`: how many unanswered probes close the connection.
    pub keepalive_count: Option<u32>,
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

/// The one function that turns a target into a connected tonic channel.
///
/// # Errors
/// The socket cannot be connected, or the transport is not implemented.
///
/// `_options` (keepalive) will be applied by the remote transports; over a
/// local socket the peer's death is seen at once.
pub async fn open_channel(
    target: &Target,
    _options: &ChannelOptions,
) -> Result<Channel, ConnectError> {
    match target {
        Target::Unix(path) => Ok(common::client::connect_unix(path).await?),
        Target::Tcp { .. } => Err(ConnectError::Unsupported(Transport::Tcp)),
        Target::Tls { .. } => Err(ConnectError::Unsupported(Transport::Tls)),
    }
}

/// The daemons behind one URI, dialed on first use.
#[derive(Debug)]
pub struct Connection {
    uri: ConnectUri,
    readonly: bool,
    options: ChannelOptions,
    channels: HashMap<Daemon, Channel>,
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

    /// Whether the read-only sockets are used.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The channel to `daemon`, dialing it the first time.
    ///
    /// # Errors
    /// [`ConnectError`] when the daemon cannot be reached.
    pub async fn channel(&mut self, daemon: Daemon) -> Result<Channel, ConnectError> {
        if let Some(ch) = self.channels.get(&daemon) {
            return Ok(ch.clone());
        }
        let ch = open_channel(&target(&self.uri, daemon, self.readonly), &self.options).await?;
        self.channels.insert(daemon, ch.clone());
        Ok(ch)
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
    pub async fn domain(&mut self) -> Result<DomainServiceClient<TracedChannel>, ConnectError> {
        Ok(DomainServiceClient::new(traced(
            self.channel(Daemon::Qemu).await?,
        )))
    }

    /// A client of virtstoraged's `StorageService`.
    ///
    /// # Errors
    /// [`ConnectError`] when virtstoraged cannot be reached.
    pub async fn storage(&mut self) -> Result<StorageServiceClient<TracedChannel>, ConnectError> {
        Ok(StorageServiceClient::new(traced(
            self.channel(Daemon::Storage).await?,
        )))
    }

    /// A client of virtnetworkd's `NetworkService`.
    ///
    /// # Errors
    /// [`ConnectError`] when virtnetworkd cannot be reached.
    pub async fn network(&mut self) -> Result<NetworkServiceClient<TracedChannel>, ConnectError> {
        Ok(NetworkServiceClient::new(traced(
            self.channel(Daemon::Network).await?,
        )))
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

    #[tokio::test]
    async fn remote_transports_are_not_supported_yet() {
        let mut c = Connection::new(uri("qemu+tls://h/system"), false, ChannelOptions::default());
        let e = c.domain().await.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Operation not supported: transport 'tls' is not supported yet")
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
