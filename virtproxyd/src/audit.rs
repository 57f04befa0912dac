//! Audit records: one line per mutating call that passes through the
//! proxy: who, which method, on which object, with what result.
//!
//! ```text
//! 2026-11-23 01:02:03.456+0000: client="C=GB,O=Test,CN=client1" method=virt.domain.v1.DomainService/Start object="domain=web1" result=OK
//! ```
//!
//! Lines go to `<log_dir>/virtproxyd-audit.log` when `audit_level` is at
//! least 1 (the default), and also into the daemon's log when
//! `audit_logging = 1` (libvirt's meaning of that key). The object is read
//! from the call's first message (never changed): the fields that name a
//! domain, pool, volume, network or port, or the `<name>` of a definition's
//! XML. The result is the gRPC status the daemon answered (from the
//! response headers or trailers), or how the proxy refused the call.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use common::daemon::clients::ClientInfo;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use tonic::body::Body;

/// Where audit records go.
#[derive(Clone, Debug, Default)]
pub struct Audit {
    file: Option<Arc<Mutex<std::fs::File>>>,
    path: Option<PathBuf>,
    to_log: bool,
}

impl Audit {
    /// Appends to `file` (created 0600 if missing) when given; copies each
    /// record into the daemon log when `to_log`.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(file: Option<PathBuf>, to_log: bool) -> std::io::Result<Audit> {
        let handle = match &file {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                use std::os::unix::fs::OpenOptionsExt;
                Some(Arc::new(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(p)?,
                )))
            }
            None => None,
        };
        Ok(Audit {
            file: handle,
            path: file,
            to_log,
        })
    }

    /// Writes one record.
    pub fn record(&self, r: &AuditRecord) {
        let line = r.line();
        if self.to_log {
            tracing::info!(target: "virt::audit", "{line}");
        }
        if let Some(f) = &self.file {
            let text = format!(
                "{}: {line}\n",
                common::timefmt::timestamp(SystemTime::now())
            );
            let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // One write of the whole line with O_APPEND: lines never interleave.
            if let Err(e) = f.write_all(text.as_bytes()) {
                tracing::warn!(
                    path = ?self.path,
                    "cannot write audit record: {e}; record was: {line}"
                );
            }
        }
    }

    /// Records `r` with the result of `resp`: at once for a trailers-only
    /// answer (errors), when the trailers arrive otherwise.
    pub fn watch(&self, r: AuditRecord, resp: http::Response<Body>) -> http::Response<Body> {
        if let Some(status) = tonic::Status::from_header_map(resp.headers()) {
            self.record(&r.result(&status));
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let body = Body::new(AuditBody {
            inner: body,
            pending: Some(r),
            audit: self.clone(),
        });
        http::Response::from_parts(parts, body)
    }
}

/// One audit line, filled as the call goes.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    who: String,
    method: String,
    object: Option<String>,
    result: String,
}

impl AuditRecord {
    /// A call of `path` by `client` on `object`, result not known yet.
    pub fn new(client: Option<&ClientInfo>, path: &str, object: Option<String>) -> AuditRecord {
        AuditRecord {
            who: client.map_or_else(|| "unknown".to_owned(), ClientInfo::who),
            method: path.trim_start_matches('/').to_owned(),
            object,
            result: "incomplete".to_owned(),
        }
    }

    /// With the result of a status.
    pub fn result(mut self, s: &tonic::Status) -> AuditRecord {
        self.result = if s.code() == tonic::Code::Ok {
            "OK".to_owned()
        } else {
            format!("{:?}: {}", s.code(), s.message())
        };
        self
    }

    fn line(&self) -> String {
        format!(
            "client={:?} method={} object={:?} result={:?}",
            self.who,
            self.method,
            self.object.as_deref().unwrap_or("-"),
            self.result
        )
    }
}

/// The response body, watched for the trailers that carry the status.
struct AuditBody {
    inner: Body,
    pending: Option<AuditRecord>,
    audit: Audit,
}

impl http_body::Body for AuditBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = frame.trailers_ref()
                    && let Some(status) = tonic::Status::from_header_map(t)
                    && let Some(rec) = this.pending.take()
                {
                    this.audit.record(&rec.result(&status));
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(rec) = this.pending.take() {
                    this.audit.record(&rec.result(e));
                }
            }
            Poll::Ready(None) => {
                if let Some(rec) = this.pending.take() {
                    this.audit.record(&rec);
                }
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditBody {
    fn drop(&mut self) {
        if let Some(mut rec) = self.pending.take() {
            rec.result = "cancelled by the client".to_owned();
            self.audit.record(&rec);
        }
    }
}

fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).ok())
        .as_ref()
}

/// The request message type of gRPC `path` (`/pkg.Service/Method`).
fn input_of(path: &str) -> Option<MessageDescriptor> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    let s = pool()?.get_service_by_name(service)?;
    s.methods().find(|m| m.name() == method).map(|m| m.input())
}

/// What object the first message of a call of `path` names, e.g.
/// `domain=web1`, `pool=default volume=disk.qcow2`, or `None`. `frame` is
/// the message as framed on the wire (5-byte prefix).
pub fn object_of(path: &str, frame: &[u8]) -> Option<String> {
    if frame.len() < 5 || frame[0] != 0 {
        return None; // too short, or compressed
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let payload = frame.get(5..5 + len)?;
    let msg = DynamicMessage::decode(input_of(path)?, payload).ok()?;
    let mut parts = Vec::new();
    describe_fields(&msg, 0, &mut parts);
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The naming fields of `msg` (and of the messages it holds, such as an
/// upload's header, up to two levels down) as `key=value` parts.
fn describe_fields(msg: &DynamicMessage, depth: usize, parts: &mut Vec<String>) {
    for (field, value) in msg.fields() {
        match value {
            Value::Message(m) if m.descriptor().name().ends_with("Ref") => {
                if let Some(v) = describe_ref(m) {
                    parts.push(format!("{}={v}", field.name()));
                }
            }
            Value::String(s) if field.name() == "name" && !s.is_empty() => {
                parts.push(format!("name={s}"));
            }
            Value::String(s) if field.name() == "xml" => {
                if let Some(n) = xml_name(s) {
                    parts.push(format!("name={n}"));
                }
            }
            Value::Message(m) if depth < 2 => describe_fields(m, depth + 1, parts),
            _ => {}
        }
    }
}

/// A `*Ref` message: its one set field (`name`, `uuid`, `id`, `key`,
/// `path`, or a nested pool + volume).
fn describe_ref(m: &DynamicMessage) -> Option<String> {
    let (field, value) = m.fields().next()?;
    Some(match value {
        Value::String(s) => s.clone(),
        Value::I32(n) => format!("id:{n}"),
        Value::U32(n) => format!("id:{n}"),
        Value::I64(n) => format!("id:{n}"),
        Value::Message(inner) => inner
            .fields()
            .filter_map(|(_, v)| v.as_str().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("/"),
        _ => format!("{}?", field.name()),
    })
}

/// The text of the first `<name>` element of a definition.
fn xml_name(xml: &str) -> Option<String> {
    let start = xml.find("<name>")? + "<name>".len();
    let end = xml[start..].find("</name>")? + start;
    let n = xml[start..end].trim();
    (!n.is_empty() && n.len() <= 256).then(|| n.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn framed(m: &impl Message) -> Vec<u8> {
        let payload = m.encode_to_vec();
        let mut f = vec![0u8];
        f.extend_from_slice(&u32::try_from(payload.len()).expect("len").to_be_bytes());
        f.extend_from_slice(&payload);
        f
    }

    #[test]
    fn objects_named_from_requests() {
        use proto::domain::v1 as d;
        let start = d::StartRequest {
            domain: Some(d::DomainRef {
                by: Some(d::domain_ref::By::Name("web1".into())),
            }),
            ..Default::default()
        };
        assert_eq!(
            object_of("/virt.domain.v1.DomainService/Start", &framed(&start)).as_deref(),
            Some("domain=web1")
        );
        let define = d::DefineXmlRequest {
            xml: "<domain type='qemu'><name>db</name></domain>".into(),
            ..Default::default()
        };
        assert_eq!(
            object_of("/virt.domain.v1.DomainService/DefineXml", &framed(&define)).as_deref(),
            Some("name=db")
        );
        assert_eq!(object_of("/no.Such/Method", &framed(&define)), None);
        assert_eq!(
            object_of("/virt.domain.v1.DomainService/Start", &[1, 0]),
            None
        );
    }

    #[test]
    fn lines_quote_fields() {
        let r = AuditRecord::new(
            None,
            "/virt.domain.v1.DomainService/Start",
            Some("domain=a b".into()),
        )
        .result(&tonic::Status::not_found("no domain"));
        assert_eq!(
            r.line(),
            "client=\"unknown\" method=virt.domain.v1.DomainService/Start object=\"domain=a b\" result=\"NotFound: no domain\""
        );
    }

    /// The status of a trailers-only answer is read from its headers,
    /// `grpc-message` percent-decoded (tonic's reading of them).
    #[test]
    fn results_from_response_headers() {
        let file = std::env::temp_dir().join(format!("virt-audit-test-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let audit = Audit::open(Some(file.clone()), false).expect("open");
        let resp = http::Response::builder()
            .header("grpc-status", "5")
            .header("grpc-message", "no%20domain%20'a%25b'")
            .body(Body::empty())
            .expect("response");
        let _ = audit.watch(
            AuditRecord::new(None, "/virt.domain.v1.DomainService/Start", None),
            resp,
        );
        let text = std::fs::read_to_string(&file).expect("audit file");
        let _ = std::fs::remove_file(&file);
        assert!(
            text.ends_with("result=\"NotFound: no domain 'a%b'\"\n"),
            "{text}"
        );
    }
}
