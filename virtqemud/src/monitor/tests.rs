//! Monitor tests: a scripted fake QMP peer for the protocol's corners, and
//! real QEMU running the test kit's tiny guest for the real thing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::tests::guest::{GuestKind, TestVm};
use qapi::qmp::{self, Event, RunState};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::*;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "fake"}, "capabilities": ["oob"]}}"#;

// ---------------------------------------------------------------------------
// Fake peer
// ---------------------------------------------------------------------------

/// The QEMU side of one fake QMP connection.
struct Peer {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Peer {
    async fn send(&mut self, line: &str) {
        self.wr
            .write_all(line.as_bytes())
            .await
            .expect("peer write");
        self.wr.write_all(b"\n").await.expect("peer write");
    }

    async fn send_json(&mut self, v: &Value) {
        self.send(&v.to_string()).await;
    }

    /// The next command the client sent.
    async fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.rd.read_line(&mut line).await.expect("peer read");
        assert!(n > 0, "client closed the connection");
        serde_json::from_str(&line).expect("client sent JSON")
    }

    /// Expects command `name`; returns its id.
    async fn expect(&mut self, name: &str) -> Value {
        let cmd = self.recv().await;
        assert_eq!(cmd["execute"], name, "command: {cmd}");
        cmd["id"].clone()
    }

    async fn reply(&mut self, id: &Value, ret: Value) {
        self.send_json(&json!({"return": ret, "id": id})).await;
    }

    /// Greeting and capability negotiation.
    async fn handshake(&mut self) {
        self.send(GREETING).await;
        let id = self.expect("qmp_capabilities").await;
        self.reply(&id, json!({})).await;
    }
}

fn event(name: &str, data: Option<Value>) -> Value {
    let mut v =
        json!({"event": name, "timestamp": {"seconds": 1_700_000_000u64, "microseconds": 42}});
    if let Some(d) = data {
        v["data"] = d;
    }
    v
}

/// A listening socket in a fresh directory and a task running `script`
/// against the first client.
fn fake_qemu<F, Fut>(script: F) -> (tempfile::TempDir, PathBuf, JoinHandle<()>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let task = tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        let (rd, wr) = s.into_split();
        script(Peer {
            rd: BufReader::new(rd),
            wr,
        })
        .await;
    });
    (dir, path, task)
}

async fn connect(path: &Path) -> (Monitor, EventReceiver) {
    Monitor::connect(path, Duration::from_secs(5))
        .await
        .expect("connect")
}

async fn next_event(rx: &mut EventReceiver) -> MonitorEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("monitor still open")
}

#[tokio::test]
async fn unknown_and_malformed_input_does_not_kill_the_reader() {
    let (_dir, path, peer) = fake_qemu(|mut p| async move {
        p.handshake().await;
        // Unknown event.
        p.send_json(&event("SOMETHING_NEW_IN_QEMU_42", Some(json!({"x": 1}))))
            .await;
        // Known event with an extra field.
        p.send_json(&event(
            "SHUTDOWN",
            Some(json!({"guest": true, "reason": "guest-shutdown", "new-field": [1, 2]})),
        ))
        .await;
        // Garbage of every kind.
        p.send(r#"{"event": "STOP", "timestamp": "#).await;
        p.send("not json at all").await;
        p.send("[1, 2, 3]").await;
        p.send("").await;
        p.send(r#"{"something": "else"}"#).await;
        p.send(r#"{"return": {}, "id": 987654}"#).await;
        p.send(r#"{"return": {}}"#).await;
        p.send(GREETING).await;
        // Known event whose enum value is newer than qapi's schema.
        p.send_json(&event(
            "RESET",
            Some(json!({"guest": false, "reason": "reason-from-the-future"})),
        ))
        .await;
        // Known event without data (QEMU leaves `data` out then).
        p.send_json(&event("STOP", None)).await;
        let id = p.expect("query-status").await;
        p.reply(&id, json!({"running": true, "status": "running"}))
            .await;
    });
    let (mon, mut rx) = connect(&path).await;
    assert_eq!(mon.qemu_version(), Some((10, 0, 2)));

    let st = mon
        .execute(qmp::query_status {})
        .await
        .expect("query-status");
    assert!(st.running);
    assert!(matches!(st.status, RunState::running));

    let ev = next_event(&mut rx).await;
    assert_eq!(ev.name, "SOMETHING_NEW_IN_QEMU_42");
    assert_eq!(ev.timestamp, (1_700_000_000, 42));
    assert_eq!(ev.raw(), Some(&json!({"x": 1})));

    let ev = next_event(&mut rx).await;
    assert!(ev.is("SHUTDOWN"));
    match ev.known() {
        Some(Event::SHUTDOWN { data, .. }) => {
            assert!(data.guest);
            assert!(matches!(data.reason, qmp::ShutdownCause::guest_shutdown));
        }
        other => panic!("SHUTDOWN with an extra field should decode: {other:?}"),
    }
    assert_eq!(ev.guest_initiated(), Some(true));
    assert_eq!(ev.reason().as_deref(), Some("guest-shutdown"));

    let ev = next_event(&mut rx).await;
    assert!(ev.is("RESET"));
    assert!(ev.known().is_none(), "unknown enum value: raw");
    assert_eq!(ev.guest_initiated(), Some(false));
    assert_eq!(ev.reason().as_deref(), Some("reason-from-the-future"));

    let ev = next_event(&mut rx).await;
    assert!(matches!(ev.known(), Some(Event::STOP { .. })), "{ev:?}");

    peer.await.expect("peer script");
    assert!(rx.try_recv().is_err(), "nothing else was delivered");
}

#[tokio::test]
async fn unknown_enum_in_a_reply_fails_only_that_command() {
    let (_dir, path, peer) = fake_qemu(|mut p| async move {
        p.handshake().await;
        let id = p.expect("query-status").await;
        p.reply(
            &id,
            json!({"running": false, "status": "hibernating-in-qemu-42"}),
        )
        .await;
        let id = p.expect("query-status").await;
        p.reply(
            &id,
            json!({"running": false, "status": "hibernating-in-qemu-42"}),
        )
        .await;
        let id = p.expect("query-status").await;
        p.reply(&id, json!({"running": false, "status": "paused"}))
            .await;
    });
    let (mon, _rx) = connect(&path).await;
    let err = mon.execute(qmp::query_status {}).await.expect_err("decode");
    assert!(matches!(err, MonitorError::Decode { .. }), "{err}");
    let raw = mon
        .execute_raw("query-status", Value::Null)
        .await
        .expect("raw");
    assert_eq!(raw["status"], "hibernating-in-qemu-42");
    let st = mon.execute(qmp::query_status {}).await.expect("later call");
    assert!(matches!(st.status, RunState::paused));
    peer.await.expect("peer script");
}

#[tokio::test]
async fn replies_are_matched_by_id_and_errors_carry_class() {
    let (_dir, path, peer) = fake_qemu(|mut p| async move {
        p.handshake().await;
        let a = p.recv().await;
        let b = p.recv().await;
        // Answer in reverse order.
        for cmd in [b, a] {
            let id = cmd["id"].clone();
            if cmd["execute"] == "no-such-command" {
                p.send_json(&json!({"error": {"class": "CommandNotFound", "desc": "The command no-such-command has not been found"}, "id": id})).await;
            } else {
                assert_eq!(cmd["arguments"], json!({"x": 7}));
                p.reply(&id, json!({"echo": cmd["arguments"]["x"]})).await;
            }
        }
    });
    let (mon, _rx) = connect(&path).await;
    let m2 = mon.clone();
    let (a, b) = tokio::join!(
        mon.execute_raw("echo", json!({"x": 7})),
        m2.execute_raw("no-such-command", json!({})),
    );
    assert_eq!(a.expect("echo"), json!({"echo": 7}));
    let err = b.expect_err("error reply");
    assert!(err.is_command_not_found(), "{err}");
    assert!(err.to_string().contains("has not been found"));
    peer.await.expect("peer script");
}

#[tokio::test]
async fn timeout_then_eof() {
    let (tx, rx_done) = tokio::sync::oneshot::channel::<()>();
    let (_dir, path, peer) = fake_qemu(|mut p| async move {
        p.handshake().await;
        let id = p.expect("slow").await;
        // Answer only after the client gave up; then hang up.
        let _ = rx_done.await;
        p.reply(&id, json!({})).await;
        p.send_json(&event("STOP", None)).await;
    });
    let (mon, mut rx) = connect(&path).await;
    assert_eq!(mon.timeout(), DEFAULT_TIMEOUT);
    let short = mon.with_timeout(Duration::from_millis(100));
    let t = Instant::now();
    let err = short
        .execute_raw("slow", Value::Null)
        .await
        .expect_err("timeout");
    assert!(matches!(err, MonitorError::Timeout { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2));
    tx.send(()).expect("peer waits");
    peer.await.expect("peer script");
    // The late reply was dropped, the event still arrives, then EOF.
    assert!(next_event(&mut rx).await.is("STOP"));
    let end = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("channel closes");
    assert!(end.is_none());
    assert!(mon.is_closed());
    let err = mon
        .execute_raw("query-status", Value::Null)
        .await
        .expect_err("closed");
    assert!(matches!(err, MonitorError::Disconnected), "{err}");
}

#[tokio::test]
async fn eof_fails_waiting_commands() {
    let (_dir, path, _peer) = fake_qemu(|mut p| async move {
        p.handshake().await;
        p.expect("quit").await;
        // Drop the connection without answering.
    });
    let (mon, _rx) = connect(&path).await;
    let err = mon.execute(qmp::quit {}).await.expect_err("EOF");
    assert!(matches!(err, MonitorError::Disconnected), "{err}");
}

#[tokio::test]
async fn connect_waits_for_the_socket_and_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("late.sock");
    let p2 = path.clone();
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let listener = UnixListener::bind(&p2).expect("bind");
        let (s, _) = listener.accept().await.expect("accept");
        let (rd, wr) = s.into_split();
        let mut p = Peer {
            rd: BufReader::new(rd),
            wr,
        };
        p.handshake().await;
        // Dropping the last handle closes the connection.
        let mut rest = String::new();
        let n = p.rd.read_line(&mut rest).await.expect("read");
        assert_eq!(n, 0, "EOF expected, got {rest:?}");
    });
    let (mon, _rx) = connect(&path).await;
    assert!(!mon.is_closed());
    drop(mon);
    server.await.expect("server");

    // Nobody ever listens.
    let t = Instant::now();
    let err = Monitor::connect(&dir.path().join("never.sock"), Duration::from_millis(100))
        .await
        .expect_err("no socket");
    assert!(matches!(err, MonitorError::Timeout { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2));

    // Someone listens but never greets.
    let mute = dir.path().join("mute.sock");
    let _listener = UnixListener::bind(&mute).expect("bind");
    let err = Monitor::connect(&mute, Duration::from_millis(100))
        .await
        .expect_err("no greeting");
    assert!(matches!(err, MonitorError::Timeout { .. }), "{err}");

    // A peer that hangs up at once.
    let (a, b) = UnixStream::pair().expect("pair");
    drop(b);
    let err = Monitor::from_stream(a, Duration::from_secs(1))
        .await
        .expect_err("EOF");
    assert!(matches!(err, MonitorError::Disconnected), "{err}");
}

// ---------------------------------------------------------------------------
// Real QEMU
// ---------------------------------------------------------------------------

async fn start_vm(kind: GuestKind) -> (TestVm, Monitor, EventReceiver) {
    let vm = TestVm::start(kind).expect("start QEMU");
    let (mon, rx) = Monitor::connect(&vm.qmp_socket(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("QMP connect: {e}; QEMU said:\n{}", vm.qemu_output()));
    assert!(
        vm.wait_boots_async(1, Duration::from_secs(2)).await,
        "guest up within 2 s; serial: {:?}",
        vm.serial()
    );
    (vm, mon, rx)
}

/// Events until (and with) `name`, within `timeout`.
async fn events_until(rx: &mut EventReceiver, name: &str, timeout: Duration) -> Vec<MonitorEvent> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => {
                let done = ev.is(name);
                seen.push(ev);
                if done {
                    return seen;
                }
            }
            Ok(None) => panic!("monitor closed before {name}; saw {seen:?}"),
            Err(_) => panic!("no {name} within {timeout:?}; saw {seen:?}"),
        }
    }
}

async fn status(mon: &Monitor) -> qmp::StatusInfo {
    mon.execute(qmp::query_status {})
        .await
        .expect("query-status")
}

#[tokio::test]
async fn real_qemu_status_stop_cont() {
    let (vm, mon, mut rx) = start_vm(GuestKind::IgnoresPowerButton).await;
    let (major, _, _) = mon.qemu_version().expect("version in greeting");
    assert!(major >= 7);

    let st = status(&mon).await;
    assert!(
        st.running && matches!(st.status, RunState::running),
        "{st:?}"
    );

    mon.execute(qmp::stop {}).await.expect("stop");
    let evs = events_until(&mut rx, "STOP", Duration::from_secs(1)).await;
    assert!(evs.iter().all(|e| e.known().is_some()), "{evs:?}");
    let st = status(&mon).await;
    assert!(
        !st.running && matches!(st.status, RunState::paused),
        "{st:?}"
    );

    mon.execute(qmp::cont {}).await.expect("cont");
    events_until(&mut rx, "RESUME", Duration::from_secs(1)).await;
    assert!(matches!(status(&mon).await.status, RunState::running));

    let err = mon
        .execute_raw("no-such-command", Value::Null)
        .await
        .expect_err("unknown command");
    assert!(err.is_command_not_found(), "{err}");
    drop(vm);
}

#[tokio::test]
async fn real_qemu_powerdown_and_quit() {
    let (vm, mon, mut rx) = start_vm(GuestKind::Cooperative).await;
    let t = Instant::now();
    mon.execute(qmp::system_powerdown {})
        .await
        .expect("system_powerdown");
    let evs = events_until(&mut rx, "STOP", Duration::from_secs(1)).await;
    let names: Vec<&str> = evs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["POWERDOWN", "SHUTDOWN", "STOP"], "{evs:?}");
    match evs[1].known() {
        Some(Event::SHUTDOWN { data, .. }) => {
            assert!(data.guest);
            assert!(matches!(data.reason, qmp::ShutdownCause::guest_shutdown));
        }
        other => panic!("typed SHUTDOWN expected: {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(matches!(status(&mon).await.status, RunState::shutdown));

    // quit: QEMU answers, says SHUTDOWN (host-qmp-quit), exits; the
    // channel closes and later calls fail fast.
    mon.execute(qmp::quit {}).await.expect("quit");
    let evs = events_until(&mut rx, "SHUTDOWN", Duration::from_secs(2)).await;
    assert_eq!(
        evs.last().and_then(MonitorEvent::reason).as_deref(),
        Some("host-qmp-quit")
    );
    let end = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("EOF after quit");
    assert!(end.is_none());
    let err = status_err(&mon).await;
    assert!(matches!(err, MonitorError::Disconnected), "{err}");
    drop(vm);
}

async fn status_err(mon: &Monitor) -> MonitorError {
    mon.execute(qmp::query_status {}).await.expect_err("closed")
}
