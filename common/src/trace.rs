//! Trace context across gRPC hops.
//!
//! Servers take the W3C `traceparent` header from each request and make the
//! request's span a child of it ([`TraceLayer`]); clients put the current
//! span's context into outgoing metadata ([`inject`], usable as a tonic
//! interceptor). One trace then spans virtsh → virtproxyd → virtqemud →
//! virtstoraged. Without OTel export configured the propagator is a no-op.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, Injector};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Adds the current span's trace context to a request's metadata. Use as a
/// tonic interceptor: `Client::with_interceptor(channel, common::trace::inject)`.
///
/// # Errors
/// Never; the signature is the interceptor's.
#[allow(clippy::result_large_err)]
pub fn inject<T>(mut req: tonic::Request<T>) -> Result<tonic::Request<T>, tonic::Status> {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut MetadataInjector(req.metadata_mut()))
    });
    Ok(req)
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Puts the current span's trace context into `headers` (replacing the
/// caller's `traceparent`): for a hop that forwards raw HTTP/2 requests,
/// such as virtproxyd. Without export there is no context and nothing is
/// written, so the caller's own `traceparent` passes through.
pub fn inject_headers(headers: &mut http::HeaderMap) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

/// Whether spans are exported (an OTLP provider was installed): set once
/// by the logging set-up, read by [`TraceLayer`] on every request.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Calls served so far (all sockets), for the daemon's idle housekeeping.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// How many calls the [`TraceLayer`]s of this process have taken.
pub fn requests() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

/// Records that spans are exported from now on.
pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Server layer: one span per request, child of the caller's trace.
///
/// The span costs on every call (the registry stores it, the fmt layer
/// formats its fields even when nothing is logged), so it is only made
/// when something uses it: with OTLP export it is an INFO span whose
/// parent is the caller's trace context (taken from the `traceparent`
/// header); without export there is no trace to join, and the span is a
/// DEBUG one: present in the log lines of a daemon run at debug level,
/// free (disabled at its call site) at the default info level.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer {
    service: &'static str,
}

impl TraceLayer {
    /// For daemon `service`.
    pub fn new(service: &'static str) -> TraceLayer {
        TraceLayer { service }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            service: self.service,
            inner,
        }
    }
}

/// See [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct Traced<S> {
    service: &'static str,
    inner: S,
}

impl<S, B> Service<http::Request<B>> for Traced<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        let path = req.uri().path();
        let span = if EXPORTING.load(Ordering::Relaxed) {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&HeaderExtractor(req.headers()))
            });
            let span = tracing::info_span!(
                "grpc.request",
                otel.name = path,
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.method = path,
                daemon = self.service,
            );
            let _ = span.set_parent(parent);
            span
        } else {
            tracing::debug_span!("grpc.request", rpc.method = path, daemon = self.service)
        };
        self.inner.call(req).instrument(span)
    }
}

/// Tracing for a client program (virtsh, tools): logs to stderr only when
/// `RUST_LOG` asks, and OTLP export when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Keep the guard alive for the
/// program's life; dropping it flushes the spans.
pub fn init_client(service: &'static str) -> ClientTracing {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    // The program's own output stays clean: stderr logging only with
    // RUST_LOG. Spans go to the exporter whatever RUST_LOG says.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let provider = crate::daemon::logging::otel_provider(service);
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(filter);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    ClientTracing { provider }
}

/// See [`init_client`].
#[derive(Debug)]
pub struct ClientTracing {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl ClientTracing {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for ClientTracing {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// The interceptor type of [`TracedChannel`].
pub type InjectFn = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// A channel whose every call carries the caller's trace context.
pub type TracedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, InjectFn>;

/// Wraps `channel` so that each call carries the current span's trace
/// context: `DomainServiceClient::new(common::trace::traced(channel))`.
pub fn traced(channel: tonic::transport::Channel) -> TracedChannel {
    tonic::service::interceptor::InterceptedService::new(channel, inject::<()> as InjectFn)
}
