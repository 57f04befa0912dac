//! Logging and tracing for the daemons.
//!
//! - Filters in `RUST_LOG` syntax (EnvFilter), changeable at run time by
//!   admin SetLogFilters and SIGHUP; libvirt's `"N:name ..."` filter syntax in
//!   the config file is translated (level N applies to targets starting with
//!   `name`).
//! - Outputs to stderr by default, or to a file (`log_outputs = "N:file:PATH"`),
//!   switchable at run time.
//! - OpenTelemetry OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//!   (standard OTel variables configure it further). The SDK's batch
//!   processor exports from its own thread; the tonic exporter needs a tokio
//!   reactor there, so the exporter gets a one-thread runtime of its own.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

/// Where log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Standard error.
    Stderr,
    /// Appended to a file.
    File(std::path::PathBuf),
}

/// A `log_outputs` or `log_filters` value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogConfigError {
    /// Unparseable filter.
    #[error("Invalid log filter '{0}': {1}")]
    Filter(String, String),
    /// Unparseable or unsupported output.
    #[error("Invalid log output '{0}': {1}")]
    Output(String, String),
}

/// Translates a filter string to EnvFilter syntax. libvirt syntax
/// (`"1:qemu 3:util"`, level 1 debug .. 4 error, optional `+` prefix) becomes
/// `qemu=debug,util=warn`; anything else is taken as EnvFilter syntax.
pub fn translate_filters(filters: &str, default_level: u8) -> String {
    let words: Vec<&str> = filters.split_whitespace().collect();
    let libvirt_style = !words.is_empty()
        && words.iter().all(|w| {
            let mut it = w.splitn(2, ':');
            matches!(it.next(), Some("1" | "2" | "3" | "4"))
                && it.next().is_some_and(|n| !n.is_empty())
        });
    let mut directives = vec![level_name(default_level).to_owned()];
    if libvirt_style {
        for w in words {
            let (lvl, name) = w.split_once(':').unwrap_or(("3", w));
            let lvl = lvl.parse().unwrap_or(3);
            directives.push(format!(
                "{}={}",
                name.trim_start_matches('+'),
                level_name(lvl)
            ));
        }
    } else if !filters.trim().is_empty() {
        directives = vec![filters.trim().to_owned()];
    }
    directives.join(",")
}

fn level_name(level: u8) -> &'static str {
    match level {
        1 => "debug",
        2 => "info",
        3 => "warn",
        _ => "error",
    }
}

/// Parses a libvirt `log_outputs` value; the first usable output wins.
/// Supported: `N:stderr`, `N:file:PATH`; empty means stderr.
///
/// # Errors
/// An output kind we do not support (journald, syslog).
pub fn parse_outputs(outputs: &str) -> Result<Output, LogConfigError> {
    let Some(first) = outputs.split_whitespace().next() else {
        return Ok(Output::Stderr);
    };
    let rest = first.split_once(':').map(|(_, r)| r).unwrap_or(first);
    if rest == "stderr" {
        Ok(Output::Stderr)
    } else if let Some(path) = rest.strip_prefix("file:") {
        if path.is_empty() {
            return Err(LogConfigError::Output(
                first.into(),
                "missing file path".into(),
            ));
        }
        Ok(Output::File(path.into()))
    } else {
        Err(LogConfigError::Output(
            first.into(),
            "only 'stderr' and 'file:PATH' outputs are supported".into(),
        ))
    }
}

#[derive(Debug)]
enum Sink {
    Stderr,
    File(std::fs::File),
}

/// The switchable writer behind the fmt layer.
#[derive(Clone, Debug)]
struct SharedSink(Arc<Mutex<Sink>>);

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *s {
            Sink::Stderr => std::io::stderr().write(buf),
            Sink::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *s {
            Sink::Stderr => std::io::stderr().flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

/// Handle for changing filters and outputs at run time, and flushing traces
/// at exit.
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    filter_text: Arc<Mutex<String>>,
    output_text: Arc<Mutex<String>>,
    sink: SharedSink,
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle")
            .field("filters", &self.filters())
            .field("outputs", &self.outputs())
            .finish()
    }
}

impl LogHandle {
    /// The current filters, in EnvFilter syntax.
    pub fn filters(&self) -> String {
        self.filter_text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the filters (EnvFilter or libvirt syntax).
    ///
    /// # Errors
    /// The filter does not parse.
    pub fn set_filters(&self, filters: &str) -> Result<(), LogConfigError> {
        let text = translate_filters(filters, 3);
        let text = if filters.trim().is_empty() {
            "info".to_owned()
        } else {
            text
        };
        let f = EnvFilter::try_new(&text)
            .map_err(|e| LogConfigError::Filter(filters.into(), e.to_string()))?;
        self.filter
            .reload(f)
            .map_err(|e| LogConfigError::Filter(filters.into(), e.to_string()))?;
        *self
            .filter_text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = text;
        Ok(())
    }

    /// The current output, in libvirt syntax.
    pub fn outputs(&self) -> String {
        self.output_text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the output (libvirt `log_outputs` syntax).
    ///
    /// # Errors
    /// Unsupported output, or the file cannot be opened.
    pub fn set_outputs(&self, outputs: &str) -> Result<(), LogConfigError> {
        let sink = match parse_outputs(outputs)? {
            Output::Stderr => Sink::Stderr,
            Output::File(path) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| LogConfigError::Output(outputs.into(), e.to_string()))?;
                Sink::File(f)
            }
        };
        *self
            .sink
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sink;
        let text = if outputs.trim().is_empty() {
            "2:stderr".to_owned()
        } else {
            outputs.trim().to_owned()
        };
        *self
            .output_text
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = text;
        Ok(())
    }

    /// Flushes and stops trace export. Call once at exit, outside async code.
    pub fn shutdown(&self) {
        if let Some(p) = &self.provider {
            let _ = p.shutdown();
        }
    }
}

/// Runs OTLP exports on a runtime of its own, because the SDK's batch
/// processor calls the exporter from a plain thread.
#[derive(Debug)]
struct OwnRuntimeExporter {
    inner: opentelemetry_otlp::SpanExporter,
    rt: tokio::runtime::Runtime,
}

impl SpanExporter for OwnRuntimeExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => self.inner.export(batch).await,
            Err(_) => self.rt.block_on(self.inner.export(batch)),
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

pub(crate) fn otel_provider(service: &str) -> Option<SdkTracerProvider> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())?;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-export")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{service}: cannot start the trace export runtime: {e}");
            return None;
        }
    };
    let exporter = {
        let _enter = rt.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
    };
    let inner = match exporter {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{service}: cannot export traces to {endpoint}: {e}");
            return None;
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(OwnRuntimeExporter { inner, rt })
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    crate::trace::set_exporting();
    Some(provider)
}

/// Installs the global subscriber for `service`.
///
/// Filter precedence: `RUST_LOG`, then the config's `log_filters` (with
/// `log_level` as the default level), then `debug` with `verbose`, else `info`.
///
/// # Errors
/// The filters or outputs do not parse.
pub fn init(
    service: &str,
    verbose: bool,
    log_level: u8,
    log_filters: &str,
    log_outputs: &str,
) -> Result<LogHandle, LogConfigError> {
    let filter_text = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ if !log_filters.trim().is_empty() => translate_filters(log_filters, log_level),
        _ if verbose => "debug".to_owned(),
        _ => "info".to_owned(),
    };
    let filter = EnvFilter::try_new(&filter_text)
        .map_err(|e| LogConfigError::Filter(filter_text.clone(), e.to_string()))?;
    let (filter_layer, filter_handle) = reload::Layer::new(filter);
    let sink = SharedSink(Arc::new(Mutex::new(Sink::Stderr)));
    let writer_sink = sink.clone();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(move || writer_sink.clone())
        .with_ansi(false)
        .with_target(true);
    let provider = otel_provider(service);
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service.to_owned())));
    // A second init in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter_layer)
        .with(fmt)
        .with(otel)
        .try_init();
    let handle = LogHandle {
        filter: filter_handle,
        filter_text: Arc::new(Mutex::new(filter_text)),
        output_text: Arc::new(Mutex::new(String::new())),
        sink,
        provider,
    };
    handle.set_outputs(log_outputs)?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_filters_translate() {
        assert_eq!(
            translate_filters("1:qemu 3:util", 3),
            "warn,qemu=debug,util=warn"
        );
        assert_eq!(translate_filters("virtqemud=trace", 3), "virtqemud=trace");
        assert_eq!(translate_filters("", 2), "info");
    }

    #[test]
    fn outputs_parse() {
        assert_eq!(parse_outputs("").expect("ok"), Output::Stderr);
        assert_eq!(parse_outputs("1:stderr").expect("ok"), Output::Stderr);
        assert_eq!(
            parse_outputs("3:file:/tmp/x.log").expect("ok"),
            Output::File("/tmp/x.log".into())
        );
        assert!(parse_outputs("1:journald").is_err());
    }
}
