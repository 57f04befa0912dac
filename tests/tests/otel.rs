//! One trace spans virtsh and the daemons: each exports to an in-process
//! OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and each
//! daemon's request span is a child of its caller's span: virtsh →
//! virtqemud directly, and virtsh → virtproxyd → virtqemud → virtstoraged
//! for the start of a domain with a volume disk.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tests::calls::pool_ref;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use proto::domain::v1 as dom;
use proto::storage::v1 as sto;
use tests::{Daemon, SocketKind, TestRoot, bin_dir, wait_until};
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

impl Collector {
    /// Serves an OTLP trace collector on a local TCP port: its endpoint
    /// and the server's task.
    async fn serve(
        &self,
    ) -> (
        String,
        tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener));
        (endpoint, tokio::spawn(server))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_virtsh_and_virtqemud() {
    let collector = Collector::default();
    let (endpoint, server) = collector.serve().await;

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

/// The spans of one call chain: virtsh's command span, virtproxyd's span
/// of the Start call (child of virtsh's), virtqemud's span of it (child of
/// the proxy's), and a virtstoraged span below virtqemud's.
#[derive(Debug)]
struct Chain {
    virtsh: SeenSpan,
    proxy: SeenSpan,
    qemud: SeenSpan,
    storaged: SeenSpan,
}

const START: &str = "/virt.domain.v1.DomainService/Start";

/// Whether `ancestor` is `span`'s parent, grandparent, ... in `seen`.
fn descends_from(seen: &[SeenSpan], span: &SeenSpan, ancestor: &SeenSpan) -> bool {
    let mut cur = span;
    // Bounded: a malformed report cannot loop.
    for _ in 0..seen.len() {
        if cur.trace_id != ancestor.trace_id || cur.parent_span_id.is_empty() {
            return false;
        }
        if cur.parent_span_id == ancestor.span_id {
            return true;
        }
        match seen
            .iter()
            .find(|s| s.trace_id == cur.trace_id && s.span_id == cur.parent_span_id)
        {
            Some(p) => cur = p,
            None => return false,
        }
    }
    false
}

fn is_child(span: &SeenSpan, parent: &SeenSpan) -> bool {
    span.trace_id == parent.trace_id && span.parent_span_id == parent.span_id
}

fn find_chain(seen: &[SeenSpan]) -> Option<Chain> {
    let of = |service: &'static str| seen.iter().filter(move |s| s.service == service);
    for qemud in of("virtqemud").filter(|s| s.name == START) {
        let Some(proxy) = of("virtproxyd").find(|p| p.name == START && is_child(qemud, p)) else {
            continue;
        };
        let Some(virtsh) = of("virtsh").find(|c| is_child(proxy, c)) else {
            continue;
        };
        let Some(storaged) = of("virtstoraged").find(|s| descends_from(seen, s, qemud)) else {
            continue;
        };
        return Some(Chain {
            virtsh: virtsh.clone(),
            proxy: proxy.clone(),
            qemud: qemud.clone(),
            storaged: storaged.clone(),
        });
    }
    None
}

/// Kills the QEMUs a test leaves.
struct KillQemus<'a>(&'a TestRoot);

impl Drop for KillQemus<'_> {
    fn drop(&mut self) {
        tests::kill_qemus_under(self.0.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_virtsh_the_proxy_virtqemud_and_virtstoraged() {
    let collector = Collector::default();
    let (endpoint, server) = collector.serve().await;
    let root = TestRoot::new();
    let _qemus = KillQemus(&root);
    let start = |name: &str| {
        Daemon::builder(name, &root)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .start()
    };
    let mut storaged = start("virtstoraged").await;
    let mut qemud = start("virtqemud").await;
    let mut proxy = start("virtproxyd").await;

    // A dir pool with a raw volume, and a domain whose disk is the volume.
    let dir = root.path().join("pool");
    let mut st = storaged.storage(SocketKind::ReadWrite).await;
    tests::calls::define_started_pool(&mut st, "guests", &dir).await;
    st.create_volume(sto::CreateVolumeRequest {
        pool: pool_ref("guests"),
        xml: "<volume><name>disk.img</name><capacity unit='MiB'>1</capacity>\
              <target><format type='raw'/></target></volume>"
            .into(),
        ..Default::default()
    })
    .await
    .expect("create volume");
    let xml = "<domain type='qemu'>
  <name>traced</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='guests' volume='disk.img'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
";
    let mut dc = qemud.domain(SocketKind::ReadWrite).await;
    dc.define_xml(dom::DefineXmlRequest {
        xml: xml.into(),
        validate: true,
    })
    .await
    .expect("define domain");

    // virtsh starts it through the proxy's socket.
    let uri = format!(
        "qemu+unix:///system?socket={}",
        proxy.socket(SocketKind::ReadWrite).display()
    );
    let out = tokio::process::Command::new(bin_dir().join("virtsh"))
        .args(["-c", &uri, "start", "traced"])
        .env("VIRT_ROOT", root.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .output()
        .await
        .expect("run virtsh");
    assert!(
        out.status.success(),
        "virtsh start failed: {}\nvirtqemud:\n{}",
        String::from_utf8_lossy(&out.stderr),
        qemud.output()
    );

    let spans = collector.spans.clone();
    let found = wait_until(Duration::from_secs(15), || {
        find_chain(&spans.lock().expect("collector lock")).is_some()
    })
    .await;
    let seen = spans.lock().expect("collector lock").clone();
    assert!(
        found,
        "no virtsh → virtproxyd → virtqemud → virtstoraged chain; spans seen: {seen:#?}"
    );
    let chain = find_chain(&seen).expect("chain");
    assert_eq!(chain.virtsh.name, "start", "{chain:#?}");
    assert_eq!(
        chain.storaged.name, "/virt.storage.v1.StorageService/GetVolumeXml",
        "{chain:#?}"
    );
    assert!(
        [&chain.proxy, &chain.qemud, &chain.storaged]
            .iter()
            .all(|s| s.trace_id == chain.virtsh.trace_id),
        "one trace: {chain:#?}"
    );

    dc.destroy(dom::DestroyRequest {
        domain: Some(dom::DomainRef {
            by: Some(dom::domain_ref::By::Name("traced".into())),
        }),
        ..Default::default()
    })
    .await
    .expect("destroy");
    for d in [&mut proxy, &mut qemud, &mut storaged] {
        d.stop().await;
    }
    server.abort();
}
