//! One trace spans virtsh and virtqemud: both export to an in-process OTLP
//! collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and the daemon's
//! request span is a child of virtsh's command span.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tests::{Daemon, TestRoot, bin_dir, wait_until};
use tokio_stream::wrappers::TcpListenerStream;

/// A span as the collector saw it.
#[derive(Clone, Debug)]
struct SeenSpan {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<SeenSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = self.spans.lock().expect("collector lock");
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    seen.push(SeenSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_virtsh_and_virtqemud() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind collector");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let root = TestRoot::new();
    let mut qemud = Daemon::builder("virtqemud", &root)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start()
        .await;

    let virtsh = bin_dir().join("virtsh");
    let out = tokio::process::Command::new(&virtsh)
        .args(["-c", "qemu:///system", "hostname"])
        .env("VIRT_ROOT", root.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .output()
        .await
        .expect("run virtsh");
    assert!(
        out.status.success(),
        "virtsh hostname failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // virtsh flushes at exit; the daemon flushes on its batch schedule.
    let spans = collector.spans.clone();
    let linked = wait_until(Duration::from_secs(15), || {
        let seen = spans.lock().expect("collector lock");
        seen.iter().filter(|s| s.service == "virtqemud").any(|d| {
            seen.iter().any(|c| {
                c.service == "virtsh" && c.trace_id == d.trace_id && c.span_id == d.parent_span_id
            })
        })
    })
    .await;
    let seen = spans.lock().expect("collector lock").clone();
    assert!(
        linked,
        "no virtqemud span was a child of a virtsh span; spans seen: {:#?}\ndaemon log:\n{}",
        seen,
        qemud.output()
    );
    let child = seen
        .iter()
        .filter(|s| s.service == "virtqemud")
        .find(|d| {
            seen.iter()
                .any(|c| c.service == "virtsh" && c.span_id == d.parent_span_id)
        })
        .expect("linked daemon span");
    assert_eq!(child.name, "/virt.domain.v1.DomainService/GetHostname");

    qemud.sigterm();
    assert!(qemud.wait_exit(Duration::from_secs(10)).await.success());
    server.abort();
}
