//! Connecting to a daemon's Unix socket as a gRPC client.
//!
//! tonic clients want a URI; over a Unix socket the URI is a placeholder and
//! the connector dials the path. The `:authority` is `localhost`, which the
//! HTTP/2 layer accepts (a socket path is not a valid authority).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// Opens a gRPC channel to the Unix socket at `path`.
///
/// The connection is made eagerly, so a missing daemon is reported here
/// with the socket path and the OS error, as virsh reports
/// "Failed to connect socket to '...'".
///
/// # Errors
/// The socket cannot be connected.
pub async fn connect_unix(path: &Path) -> Result<Channel, ConnectError> {
    connect_unix_bounded(path, None).await
}

/// As [`connect_unix`], and every call on the channel that has no answer
/// (its response headers) within `timeout` fails (CANCELLED, "Timeout
/// expired"): for a daemon calling a peer that may hang. Streams are
/// bounded only until they begin.
///
/// # Errors
/// The socket cannot be connected.
pub async fn connect_unix_bounded(
    path: &Path,
    timeout: Option<std::time::Duration>,
) -> Result<Channel, ConnectError> {
    let mut endpoint = Endpoint::from_static("http://localhost");
    if let Some(t) = timeout {
        endpoint = endpoint.timeout(t);
    }
    let owned: PathBuf = path.to_path_buf();
    // Probe once so that the error names the path and the OS reason.
    UnixStream::connect(&owned)
        .await
        .map_err(|source| ConnectError {
            path: owned.clone(),
            source,
        })?;
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let p = owned.clone();
            async move { UnixStream::connect(p).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| ConnectError {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    Ok(channel)
}

/// A Unix socket could not be connected.
#[derive(Debug, thiserror::Error)]
#[error("Failed to connect socket to '{}': {}", path.display(), os_reason(source))]
pub struct ConnectError {
    /// The socket path.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The OS error text without Rust's " (os error N)" suffix, as virsh prints it.
fn os_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
