//! Per-client call limit that refuses instead of queueing: virtproxyd's
//! `max_client_requests`.
//!
//! A client (one connection, see [`ClientInfo::id`]) with `max` calls in
//! flight gets RESOURCE_EXHAUSTED for the next one; other clients are not
//! affected. A call counts until its response starts (a stream's messages
//! afterwards do not hold a slot), as tower's concurrency limit counts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::clients::ClientInfo;
use crate::error::{ErrorCode, ErrorDomain, VirtError};

#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<u64, u32>>);

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        // Every critical section is one map update: nothing to repair.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for `client` unless it already holds `max`.
    fn acquire(self: &Arc<Self>, client: u64, max: u32) -> Option<Slot> {
        let mut m = self.lock();
        let n = m.entry(client).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: self.clone(),
            client,
        })
    }
}

/// A held call slot; released on drop.
#[derive(Debug)]
struct Slot {
    counts: Arc<Counts>,
    client: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.counts.lock();
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct ClientCallLimitLayer {
    max: u32,
    counts: Arc<Counts>,
}

impl ClientCallLimitLayer {
    /// At most `max` calls in flight per client.
    pub fn new(max: u32) -> ClientCallLimitLayer {
        ClientCallLimitLayer {
            max: max.max(1),
            counts: Arc::default(),
        }
    }
}

impl<S> Layer<S> for ClientCallLimitLayer {
    type Service = ClientCallLimit<S>;

    fn layer(&self, inner: S) -> ClientCallLimit<S> {
        ClientCallLimit {
            max: self.max,
            counts: self.counts.clone(),
            inner,
        }
    }
}

/// See [`ClientCallLimitLayer`].
#[derive(Clone, Debug)]
pub struct ClientCallLimit<S> {
    max: u32,
    counts: Arc<Counts>,
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for ClientCallLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::Either<
        futures::future::Ready<Result<Self::Response, Self::Error>>,
        BoxFuture<Result<Self::Response, Self::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(client) = req.extensions().get::<ClientInfo>().map(|c| c.id) else {
            return futures::future::Either::Right(Box::pin(self.inner.call(req)));
        };
        match self.counts.acquire(client, self.max) {
            Some(slot) => {
                let fut = self.inner.call(req);
                futures::future::Either::Right(Box::pin(async move {
                    let r = fut.await;
                    drop(slot);
                    r
                }))
            }
            None => {
                tracing::debug!(
                    client,
                    max = self.max,
                    path = req.uri().path(),
                    "call refused: client at max_client_requests"
                );
                let e = VirtError::new(
                    ErrorCode::OperationFailed,
                    ErrorDomain::Rpc,
                    format!(
                        "too many calls in flight on this connection (max_client_requests = {})",
                        self.max
                    ),
                );
                let status = tonic::Status::resource_exhausted(e.message.clone());
                futures::future::Either::Left(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_per_client() {
        let c = Arc::new(Counts::default());
        let a1 = c.acquire(1, 2).expect("first");
        let _a2 = c.acquire(1, 2).expect("second");
        assert!(c.acquire(1, 2).is_none(), "third refused");
        let _b1 = c.acquire(2, 2).expect("other client unaffected");
        drop(a1);
        assert!(c.acquire(1, 2).is_some(), "slot released");
    }
}
