//! The HTTP/2 server under every socket of every daemon: accepts the
//! connections of one socket and serves gRPC calls on each, until stopped.
//!
//! It does what tonic's `Server` did for us, with the HTTP/2 settings that
//! server does not expose, and fewer layers per call:
//!
//! - **No HPACK dynamic table** (`SETTINGS_HEADER_TABLE_SIZE = 0`): on a
//!   local socket the bytes it saves cost nothing, and every connection
//!   would keep up to 4 KiB of varying headers (paths, timeouts, error
//!   messages) per direction for its lifetime, filling in over the first
//!   few hundred calls: 64 clients made each daemon grow by ~0.5 MiB after
//!   its first 1,000 calls (docs/reliability.md, "Load and leaks").
//! - Per call: the client's identity ([`ClientInfo`]) as a request
//!   extension, `grpc-timeout` honoured (CANCELLED "Timeout expired", as
//!   tonic), a failing layer's error answered as a gRPC status, and the
//!   per-connection call limit when calls queue instead of being refused.
//! - HTTP/2 keepalive pings when configured.
//! - Stopping: each connection is told to go away (GOAWAY), its calls in
//!   flight finish, and the server's future ends when all its connections
//!   have closed (the caller bounds that wait).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch};
use tonic::body::Body;
use tower::{Service, ServiceExt};

use super::clients::{ClientInfo, TrackedStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the connections of one socket are served.
#[derive(Clone, Copy, Debug)]
pub struct ConnSettings {
    /// HTTP/2 PING interval and how long an unanswered one may take.
    pub keepalive: Option<(Duration, Duration)>,
    /// Calls of one connection run at most this many at a time; more wait.
    pub queue_over: Option<usize>,
}

/// Serves the connections of `incoming` with `svc` (cloned per connection,
/// and per call) until `stop` turns true, then lets every connection finish
/// its calls and returns once they have all closed.
pub async fn serve<IO, I, S, B>(
    incoming: I,
    svc: S,
    settings: ConnSettings,
    mut stop: watch::Receiver<bool>,
) where
    I: Stream<Item = std::io::Result<TrackedStream<IO>>> + Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new()).header_table_size(0);
    if let Some((every, timeout)) = settings.keepalive {
        builder
            .keep_alive_interval(Some(every))
            .keep_alive_timeout(timeout);
    }
    // Every connection task holds a sender: when the last one is gone after
    // the stop, all connections have closed.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    // Boxed, so that dropping it closes the listening socket before the
    // wait for the open connections.
    let mut incoming = Box::pin(incoming);
    loop {
        let io = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            io = incoming.next() => match io {
                Some(Ok(io)) => io,
                Some(Err(e)) => {
                    tracing::debug!("accept failed: {e}");
                    continue;
                }
                None => break,
            },
        };
        let info = tonic::transport::server::Connected::connect_info(&io);
        let conn_svc = ConnService {
            svc: match settings.queue_over {
                Some(n) => {
                    tower::util::Either::Left(tower::limit::ConcurrencyLimit::new(svc.clone(), n))
                }
                None => tower::util::Either::Right(svc.clone()),
            },
            info,
        };
        let conn = builder.serve_connection(TokioIo::new(io), conn_svc);
        let mut stop = stop.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection ended: {e}");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(incoming);
    drop(open_tx);
    let _ = open_rx.recv().await;
}

/// One connection's service: the layered routes, called per request with
/// the connection's [`ClientInfo`].
#[derive(Clone)]
struct ConnService<S> {
    svc: S,
    info: ClientInfo,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for ConnService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(self.info.clone());
        let timeout = grpc_timeout(req.headers());
        let svc = self.svc.clone();
        Box::pin(async move {
            let call = svc.oneshot(req);
            let r = match timeout {
                Some(t) => match tokio::time::timeout(t, call).await {
                    Ok(r) => r.map_err(Into::into),
                    Err(_) => Err(tonic::Status::cancelled("Timeout expired").into()),
                },
                None => call.await.map_err(Into::into),
            };
            let mut resp = match r {
                Ok(resp) => resp.map(|b| {
                    use http_body_util::BodyExt as _;
                    Body::new(
                        b.map_frame(|f| match f.into_trailers() {
                            Ok(mut t) => {
                                never_index(&mut t);
                                http_body::Frame::trailers(t)
                            }
                            Err(f) => f,
                        })
                        .map_err(Into::into),
                    )
                }),
                Err(e) => tonic::Status::from_error(e).into_http(),
            };
            never_index(resp.headers_mut());
            Ok(resp)
        })
    }
}

/// Marks every value of a response's headers or trailers as never to be
/// indexed by HPACK. The client's decoder table (4 KiB by default) would
/// otherwise fill per connection with the varying values of `grpc-message`
/// and the like: memory each of many long-lived connections gains over its
/// first hundreds of calls, for no gain on a local socket.
fn never_index(headers: &mut http::HeaderMap) {
    for v in headers.values_mut() {
        v.set_sensitive(true);
    }
}

/// The call's deadline from its `grpc-timeout` header (gRPC over HTTP/2:
/// at most 8 digits and a unit H, M, S, m, u or n); none when absent or
/// malformed, as tonic.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        m.insert("grpc-timeout", v.parse().expect("value"));
        m
    }

    #[test]
    fn grpc_timeouts() {
        assert_eq!(grpc_timeout(&h("3S")), Some(Duration::from_secs(3)));
        assert_eq!(grpc_timeout(&h("2H")), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout(&h("5M")), Some(Duration::from_secs(300)));
        assert_eq!(grpc_timeout(&h("250m")), Some(Duration::from_millis(250)));
        assert_eq!(
            grpc_timeout(&h("99999999u")),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(grpc_timeout(&h("7n")), Some(Duration::from_nanos(7)));
        assert_eq!(grpc_timeout(&h("123456789S")), None);
        assert_eq!(grpc_timeout(&h("S")), None);
        assert_eq!(grpc_timeout(&h("1x")), None);
        assert_eq!(grpc_timeout(&h("-1S")), None);
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    /// A layer that fails with a status (the per-client call limit) is
    /// answered with that status, anything else as UNKNOWN: what the loop
    /// relies on from `Status::from_error`.
    #[test]
    fn layer_errors_become_statuses() {
        let s = tonic::Status::from_error(Box::new(tonic::Status::resource_exhausted("too many")));
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(s.message(), "too many");
        let s = tonic::Status::from_error("boom".into());
        assert_eq!(s.code(), tonic::Code::Unknown);
    }
}
