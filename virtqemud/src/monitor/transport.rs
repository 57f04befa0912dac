//! The QMP wire: a tolerant line reader and a writer over a Unix stream.
//!
//! QMP is line-delimited JSON. Every line is parsed as a
//! [`serde_json::Value`] first and then classified: a greeting (`QMP` key),
//! a reply (`return` or `error`, matched to the waiting command by the
//! numeric `id` we sent), or an event (`event`). Events are handed to a
//! caller-supplied decoder; whatever it does not recognise is delivered
//! as [`EventKind::Raw`]. A malformed or unclassifiable line is logged and
//! skipped: only EOF or an I/O error ends the connection, and then every
//! waiting command fails with [`MonitorError::Disconnected`] and the event
//! channel closes.
//!
//! This file knows nothing of the `qapi` crate (typed commands live in
//! `mod.rs`) and refers to no other module of the daemon, so the tests
//! crate can compile it on its own (`#[path]`) without qapi's slow build.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

/// The timeout of a command unless the handle says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a connect is retried while QEMU has not created its socket
/// yet (or does not listen on it yet).
const CONNECT_RETRY: Duration = Duration::from_millis(5);

/// How much of an offending line a log message quotes.
const LOG_EXCERPT: usize = 200;

/// Why a monitor call failed.
#[derive(Debug)]
pub enum MonitorError {
    /// QEMU answered with an error.
    Qmp {
        /// The command.
        command: String,
        /// QMP's error class (`GenericError`, `CommandNotFound`, ...).
        class: String,
        /// QMP's human-readable description.
        desc: String,
    },
    /// No reply within the timeout. QEMU may still carry the command out;
    /// its late reply is dropped.
    Timeout {
        /// The command (or `connect`).
        command: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The connection ended (EOF or an I/O error) before the reply came.
    Disconnected,
    /// Connecting, or the greeting, failed.
    Io(io::Error),
    /// The peer does not speak QMP (e.g. no greeting).
    Protocol(String),
    /// The arguments could not be serialised.
    Encode {
        /// The command.
        command: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The reply did not decode into the expected type (e.g. an enum value
    /// newer than our schema). Fails only this one command.
    Decode {
        /// The command.
        command: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl MonitorError {
    /// QMP's error class, if QEMU answered with an error.
    pub fn qmp_class(&self) -> Option<&str> {
        match self {
            MonitorError::Qmp { class, .. } => Some(class),
            _ => None,
        }
    }

    /// Whether QEMU does not know the command.
    pub fn is_command_not_found(&self) -> bool {
        self.qmp_class() == Some("CommandNotFound")
    }
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorError::Qmp {
                command,
                class,
                desc,
            } => write!(f, "QMP {command}: {class}: {desc}"),
            MonitorError::Timeout { command, after } => {
                write!(f, "QMP {command}: no reply within {after:?}")
            }
            MonitorError::Disconnected => f.write_str("QMP monitor disconnected"),
            MonitorError::Io(e) => write!(f, "QMP monitor: {e}"),
            MonitorError::Protocol(m) => write!(f, "QMP monitor: {m}"),
            MonitorError::Encode { command, source } => {
                write!(f, "QMP {command}: cannot encode arguments: {source}")
            }
            MonitorError::Decode { command, source } => {
                write!(f, "QMP {command}: unexpected reply: {source}")
            }
        }
    }
}

impl std::error::Error for MonitorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MonitorError::Io(e) => Some(e),
            MonitorError::Encode { source, .. } | MonitorError::Decode { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// One QMP event.
#[derive(Debug, Clone)]
pub struct QmpEvent<K> {
    /// The event name (`SHUTDOWN`, ...).
    pub name: String,
    /// QEMU's timestamp: seconds and microseconds since the epoch.
    pub timestamp: (u64, u64),
    /// The decoded event, or its raw `data` when the decoder refused it.
    pub kind: EventKind<K>,
}

/// An event decoded by the decoder, or not.
#[derive(Debug, Clone)]
pub enum EventKind<K> {
    /// The decoder knew it.
    Known(K),
    /// The decoder did not (an unknown event, field or enum value): its
    /// `data` member (an empty object when QEMU sent none).
    Raw(Value),
}

/// Turns a whole event message (`{"event", "data", "timestamp"}`) into
/// `K`, or `None` to deliver it as [`EventKind::Raw`].
pub type EventDecoder<K> = fn(&Value) -> Option<K>;

/// A decoder that knows no event: everything arrives as
/// [`EventKind::Raw`].
// Used by tests/tests/guest.rs, which compiles this file on its own.
#[allow(dead_code)]
pub fn raw_events(_: &Value) -> Option<std::convert::Infallible> {
    None
}

/// What the reader hands a waiting command: the `return` member, or the
/// error's class and description.
type Reply = Result<Value, (String, String)>;

/// Commands waiting for their reply, by id; `None` once the connection
/// has ended (no new command may wait then).
type Pending = Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>;

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, Option<HashMap<u64, oneshot::Sender<Reply>>>> {
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends the connection's bookkeeping: waiting commands fail with
/// [`MonitorError::Disconnected`], new ones are refused.
fn close_pending(p: &Pending) {
    let _dropped = lock(p).take();
}

struct Inner {
    next_id: AtomicU64,
    pending: Arc<Pending>,
    out: mpsc::UnboundedSender<Outgoing>,
    greeting: Value,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: close the socket (both halves live in
        // the tasks) and with it the event channel.
        self.reader.abort();
        self.writer.abort();
    }
}

/// A QMP connection after capability negotiation. Cheap to clone (one
/// `Arc`); all clones share the connection, which closes when the last
/// one is dropped. Commands may be issued concurrently.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
    timeout: Duration,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("timeout", &self.timeout)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Connects to the Unix socket at `path`, retrying while it does not exist
/// or refuses connections, until `timeout` passes.
///
/// # Errors
/// [`MonitorError::Io`] (other connect errors), [`MonitorError::Timeout`].
pub async fn connect_socket(path: &Path, timeout: Duration) -> Result<UnixStream, MonitorError> {
    let deadline = Instant::now() + timeout;
    loop {
        match UnixStream::connect(path).await {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                if Instant::now() >= deadline {
                    return Err(MonitorError::Timeout {
                        command: format!("connect {}", path.display()),
                        after: timeout,
                    });
                }
                tokio::time::sleep(CONNECT_RETRY).await;
            }
            Err(e) => return Err(MonitorError::Io(e)),
        }
    }
}

impl Transport {
    /// Connects to `path` (see [`connect_socket`]) and negotiates, all
    /// within `timeout`. Commands on the returned handle use
    /// [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    /// See [`connect_socket`] and [`Transport::from_stream`].
    pub async fn connect<K: Send + 'static>(
        path: &Path,
        timeout: Duration,
        decode: EventDecoder<K>,
    ) -> Result<(Transport, mpsc::UnboundedReceiver<QmpEvent<K>>), MonitorError> {
        let start = Instant::now();
        let stream = connect_socket(path, timeout).await?;
        let left = timeout.saturating_sub(start.elapsed());
        Transport::from_stream(stream, left, decode).await
    }

    /// Takes over a connected stream: reads the greeting, starts the
    /// reader and writer tasks and sends `qmp_capabilities`, within
    /// `timeout`. Needs a tokio runtime.
    ///
    /// # Errors
    /// [`MonitorError::Timeout`], [`MonitorError::Disconnected`] (EOF before
    /// the greeting), [`MonitorError::Io`], [`MonitorError::Protocol`], or
    /// QEMU's error for `qmp_capabilities`.
    pub async fn from_stream<K: Send + 'static>(
        stream: UnixStream,
        timeout: Duration,
        decode: EventDecoder<K>,
    ) -> Result<(Transport, mpsc::UnboundedReceiver<QmpEvent<K>>), MonitorError> {
        let start = Instant::now();
        let (rd, wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let greeting = match tokio::time::timeout(timeout, read_greeting(&mut rd)).await {
            Ok(g) => g?,
            Err(_) => {
                return Err(MonitorError::Timeout {
                    command: "greeting".into(),
                    after: timeout,
                });
            }
        };
        let pending: Arc<Pending> = Arc::new(Mutex::new(Some(HashMap::new())));
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(rd, Arc::clone(&pending), ev_tx, decode));
        let writer = tokio::spawn(write_loop(wr, out_rx, Arc::clone(&pending)));
        let t = Transport {
            inner: Arc::new(Inner {
                next_id: AtomicU64::new(1),
                pending,
                out: out_tx,
                greeting,
                reader,
                writer,
            }),
            timeout: DEFAULT_TIMEOUT,
        };
        let left = timeout.saturating_sub(start.elapsed());
        t.execute_value_timeout("qmp_capabilities", None, left)
            .await?;
        Ok((t, ev_rx))
    }

    /// The greeting's `QMP` member (`version`, `capabilities`).
    pub fn greeting(&self) -> &Value {
        &self.inner.greeting
    }

    /// QEMU's version from the greeting: (major, minor, micro).
    pub fn qemu_version(&self) -> Option<(u64, u64, u64)> {
        let q = self.inner.greeting.get("version")?.get("qemu")?;
        Some((
            q.get("major")?.as_u64()?,
            q.get("minor")?.as_u64()?,
            q.get("micro")?.as_u64()?,
        ))
    }

    /// The timeout of this handle's calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A handle on the same connection whose calls time out after
    /// `timeout`.
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Transport {
        Transport {
            inner: Arc::clone(&self.inner),
            timeout,
        }
    }

    /// Whether the connection has ended (EOF or I/O error).
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.pending).is_none()
    }

    /// Runs `name` with `arguments` (an object, or `None` for none) and
    /// returns the `return` member.
    ///
    /// # Errors
    /// See [`MonitorError`].
    pub async fn execute_value(
        &self,
        name: &str,
        arguments: Option<Value>,
    ) -> Result<Value, MonitorError> {
        self.execute_value_timeout(name, arguments, self.timeout)
            .await
    }

    /// [`Transport::execute_value`], decoding the reply into `T`.
    ///
    /// # Errors
    /// See [`MonitorError`]; [`MonitorError::Decode`] when the reply does
    /// not fit `T`.
    pub async fn execute_as<T: DeserializeOwned>(
        &self,
        name: &str,
        arguments: Option<Value>,
    ) -> Result<T, MonitorError> {
        let v = self.execute_value(name, arguments).await?;
        serde_json::from_value(v).map_err(|source| MonitorError::Decode {
            command: name.to_owned(),
            source,
        })
    }

    /// Runs command `name` with `fd` passed along (SCM_RIGHTS): `getfd`
    /// names it for later commands (`netdev_add`'s `fd`).
    ///
    /// # Errors
    /// See [`MonitorError`].
    pub async fn execute_with_fd(
        &self,
        name: &str,
        arguments: Option<Value>,
        fd: std::os::fd::OwnedFd,
    ) -> Result<Value, MonitorError> {
        self.execute_inner(name, arguments, self.timeout, Some(fd))
            .await
    }

    async fn execute_value_timeout(
        &self,
        name: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, MonitorError> {
        self.execute_inner(name, arguments, timeout, None).await
    }

    async fn execute_inner(
        &self,
        name: &str,
        arguments: Option<Value>,
        timeout: Duration,
        fd: Option<std::os::fd::OwnedFd>,
    ) -> Result<Value, MonitorError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::String(name.to_owned()));
        if let Some(args) = arguments {
            msg.insert("arguments".into(), args);
        }
        msg.insert("id".into(), Value::from(id));
        let mut line = serde_json::to_vec(&msg).map_err(|source| MonitorError::Encode {
            command: name.to_owned(),
            source,
        })?;
        line.push(b'\n');

        let (tx, rx) = oneshot::channel();
        match lock(&self.inner.pending).as_mut() {
            Some(map) => {
                map.insert(id, tx);
            }
            None => return Err(MonitorError::Disconnected),
        }
        // Forgets the id however this call ends (reply, timeout, or the
        // caller dropping the future).
        let _guard = PendingGuard {
            pending: &self.inner.pending,
            id,
        };
        if self.inner.out.send(Outgoing { line, fd }).is_err() {
            return Err(MonitorError::Disconnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(MonitorError::Timeout {
                command: name.to_owned(),
                after: timeout,
            }),
            Ok(Err(_)) => Err(MonitorError::Disconnected),
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err((class, desc)))) => Err(MonitorError::Qmp {
                command: name.to_owned(),
                class,
                desc,
            }),
        }
    }
}

struct PendingGuard<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(map) = lock(self.pending).as_mut() {
            map.remove(&self.id);
        }
    }
}

/// A printable excerpt of a line for logs.
fn excerpt(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let s = s.trim_end();
    match s.char_indices().nth(LOG_EXCERPT) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// Reads lines until the greeting; skips anything else (logged).
async fn read_greeting(rd: &mut BufReader<OwnedReadHalf>) -> Result<Value, MonitorError> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if rd
            .read_until(b'\n', &mut buf)
            .await
            .map_err(MonitorError::Io)?
            == 0
        {
            return Err(MonitorError::Disconnected);
        }
        match serde_json::from_slice::<Value>(&buf) {
            Ok(Value::Object(mut m)) if m.contains_key("QMP") => {
                return Ok(m.remove("QMP").unwrap_or(Value::Null));
            }
            Ok(_) => warn!(line = %excerpt(&buf), "QMP: expected the greeting; skipped"),
            Err(e) if buf.trim_ascii().is_empty() => {
                debug!("QMP: empty line before the greeting: {e}");
            }
            Err(e) => {
                warn!(line = %excerpt(&buf), "QMP: malformed line before the greeting skipped: {e}");
            }
        }
    }
}

async fn read_loop<K: Send + 'static>(
    mut rd: BufReader<OwnedReadHalf>,
    pending: Arc<Pending>,
    events: mpsc::UnboundedSender<QmpEvent<K>>,
    decode: EventDecoder<K>,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match rd.read_until(b'\n', &mut buf).await {
            Ok(0) => {
                debug!("QMP: end of stream");
                break;
            }
            Ok(_) => handle_line(&buf, &pending, &events, decode),
            Err(e) => {
                warn!("QMP: read failed, closing the monitor: {e}");
                break;
            }
        }
    }
    close_pending(&pending);
}

fn handle_line<K>(
    line: &[u8],
    pending: &Pending,
    events: &mpsc::UnboundedSender<QmpEvent<K>>,
    decode: EventDecoder<K>,
) {
    if line.trim_ascii().is_empty() {
        return;
    }
    let msg = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            warn!(line = %excerpt(line), "QMP: not an object; skipped");
            return;
        }
        Err(e) => {
            warn!(line = %excerpt(line), "QMP: malformed line skipped: {e}");
            return;
        }
    };
    if let Some(name) = msg.get("event").and_then(Value::as_str).map(str::to_owned) {
        let ev = to_event(msg, name, decode);
        // A closed receiver only means nobody listens any more.
        let _ = events.send(ev);
    } else if msg.contains_key("return") || msg.contains_key("error") {
        deliver_reply(msg, pending, line);
    } else if msg.contains_key("QMP") {
        warn!("QMP: second greeting ignored");
    } else {
        warn!(line = %excerpt(line), "QMP: unknown message skipped");
    }
}

fn to_event<K>(msg: Map<String, Value>, name: String, decode: EventDecoder<K>) -> QmpEvent<K> {
    let ts = msg.get("timestamp");
    let field = |k: &str| ts.and_then(|t| t.get(k)).and_then(Value::as_u64);
    let timestamp = (
        field("seconds").unwrap_or(0),
        field("microseconds").unwrap_or(0),
    );
    let whole = Value::Object(msg);
    let kind = match decode(&whole) {
        Some(k) => EventKind::Known(k),
        None => {
            let data = match whole {
                Value::Object(mut m) => m.remove("data"),
                _ => None,
            };
            EventKind::Raw(data.unwrap_or_else(|| Value::Object(Map::new())))
        }
    };
    QmpEvent {
        name,
        timestamp,
        kind,
    }
}

fn deliver_reply(mut msg: Map<String, Value>, pending: &Pending, line: &[u8]) {
    let Some(id) = msg.get("id").and_then(Value::as_u64) else {
        warn!(line = %excerpt(line), "QMP: reply without our id skipped");
        return;
    };
    let reply = match msg.remove("return") {
        Some(v) => Ok(v),
        None => {
            let err = msg.remove("error").unwrap_or(Value::Null);
            let text = |k: &str| {
                err.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Err((text("class"), text("desc")))
        }
    };
    let waiter = lock(pending).as_mut().and_then(|m| m.remove(&id));
    match waiter {
        // The waiter may have given up just now: nothing to do then.
        Some(tx) => drop(tx.send(reply)),
        None => debug!(id, "QMP: reply nobody waits for (timed out?) dropped"),
    }
}

/// A command line for QEMU, with a file descriptor to pass along
/// (SCM_RIGHTS, for `getfd`/`add-fd`).
struct Outgoing {
    line: Vec<u8>,
    fd: Option<std::os::fd::OwnedFd>,
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut lines: mpsc::UnboundedReceiver<Outgoing>,
    pending: Arc<Pending>,
) {
    while let Some(out) = lines.recv().await {
        let r = match &out.fd {
            None => wr.write_all(&out.line).await,
            Some(fd) => send_with_fd(&wr, &out.line, fd).await,
        };
        if let Err(e) = r {
            warn!("QMP: write failed, closing the monitor: {e}");
            close_pending(&pending);
            return;
        }
    }
}

/// Writes `line` with `fd` attached to its first byte (QEMU takes the
/// descriptor with the message it arrives with), the rest as usual.
async fn send_with_fd(
    wr: &OwnedWriteHalf,
    line: &[u8],
    fd: &std::os::fd::OwnedFd,
) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let stream: &UnixStream = wr.as_ref();
    let mut sent = 0;
    while sent < line.len() {
        stream.writable().await?;
        let r = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let iov = [io::IoSlice::new(&line[sent..])];
            let fds = [fd.as_raw_fd()];
            let cmsg = [ControlMessage::ScmRights(&fds)];
            let cmsgs: &[ControlMessage<'_>] = if sent == 0 { &cmsg } else { &[] };
            sendmsg::<()>(
                stream.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(io::Error::from)
        });
        match r {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
