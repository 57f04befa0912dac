//! The tiny test guest under real QEMU (q35, TCG), watched over QMP.
//!
//! Each kind boots and prints its line within 2 s, then behaves as
//! `tests::guest::GuestKind` promises. QMP goes through virtqemud's own
//! transport, compiled in here from its source (virtqemud is a binary, and
//! the typed layer on top needs the `qapi` crate, which stays in
//! virtqemud): events arrive raw, which is all these checks need. Every
//! `TestVm` kills its QEMU when dropped.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::guest::{GuestKind, TestVm, UP_LINE};
use tokio::sync::mpsc::UnboundedReceiver;

// Only part of the transport's API is used here.
#[allow(dead_code)]
#[path = "../../virtqemud/src/monitor/transport.rs"]
mod transport;

use transport::{EventKind, QmpEvent, Transport, raw_events};

type Event = QmpEvent<Infallible>;
type Events = UnboundedReceiver<Event>;

/// Starts QEMU on `kind`, connects QMP and waits for the first boot line
/// (at most 2 s after QEMU's start).
async fn boot(kind: GuestKind) -> (TestVm, Transport, Events) {
    let t0 = Instant::now();
    let vm = TestVm::start(kind).expect("start QEMU");
    let (qmp, events) = Transport::connect(&vm.qmp_socket(), Duration::from_secs(2), raw_events)
        .await
        .unwrap_or_else(|e| panic!("QMP: {e}; QEMU said:\n{}", vm.qemu_output()));
    let left = Duration::from_secs(2).saturating_sub(t0.elapsed());
    assert!(
        vm.wait_boots_async(1, left).await,
        "{kind:?}: no {UP_LINE:?} within 2 s; serial {:?}; QEMU said:\n{}",
        vm.serial(),
        vm.qemu_output()
    );
    (vm, qmp.with_timeout(Duration::from_secs(2)), events)
}

async fn exec(qmp: &Transport, name: &str) -> Value {
    qmp.execute_value(name, None)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn status(qmp: &Transport) -> String {
    exec(qmp, "query-status").await["status"]
        .as_str()
        .expect("status is a string")
        .to_owned()
}

fn data(ev: &Event) -> &Value {
    match &ev.kind {
        EventKind::Raw(v) => v,
        EventKind::Known(never) => match *never {},
    }
}

/// Events up to and including the first `name`, within `timeout`.
async fn until(events: &mut Events, name: &str, timeout: Duration) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => {
                let last = ev.name == name;
                seen.push(ev);
                if last {
                    return seen;
                }
            }
            Ok(None) => panic!("QMP closed before {name}; saw {:?}", names(&seen)),
            Err(_) => panic!("no {name} within {timeout:?}; saw {:?}", names(&seen)),
        }
    }
}

/// All events during `period`.
async fn during(events: &mut Events, period: Duration) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + period;
    let mut seen = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        seen.push(ev);
    }
    seen
}

fn names(evs: &[Event]) -> Vec<&str> {
    evs.iter().map(|e| e.name.as_str()).collect()
}

#[tokio::test]
async fn cooperative_shuts_down_on_powerdown_and_fake_reboots() {
    let (vm, qmp, mut events) = boot(GuestKind::Cooperative).await;
    assert_eq!(status(&qmp).await, "running");
    for cycle in 1..=3 {
        let t = Instant::now();
        exec(&qmp, "system_powerdown").await;
        let evs = until(&mut events, "STOP", Duration::from_secs(1)).await;
        // SeaBIOS's own RESET after a reset may still trickle in: ignore it.
        let evs: Vec<Event> = evs.into_iter().filter(|e| e.name != "RESET").collect();
        assert_eq!(
            names(&evs),
            ["POWERDOWN", "SHUTDOWN", "STOP"],
            "cycle {cycle}"
        );
        assert_eq!(
            data(&evs[1]),
            &json!({"guest": true, "reason": "guest-shutdown"}),
            "cycle {cycle}"
        );
        assert!(t.elapsed() < Duration::from_secs(1), "cycle {cycle}");
        assert_eq!(status(&qmp).await, "shutdown");

        // Fake reboot.
        exec(&qmp, "system_reset").await;
        exec(&qmp, "cont").await;
        until(&mut events, "RESUME", Duration::from_secs(1)).await;
        assert!(
            vm.wait_boots_async(cycle + 1, Duration::from_secs(2)).await,
            "cycle {cycle}: no boot line after reset; serial {:?}",
            vm.serial()
        );
        assert_eq!(status(&qmp).await, "running");
    }
}

#[tokio::test]
async fn ignoring_guest_gets_powerdown_only() {
    let (_vm, qmp, mut events) = boot(GuestKind::IgnoresPowerButton).await;
    exec(&qmp, "system_powerdown").await;
    until(&mut events, "POWERDOWN", Duration::from_secs(1)).await;
    let later = during(&mut events, Duration::from_secs(1)).await;
    assert!(
        !later.iter().any(|e| e.name == "SHUTDOWN"),
        "{:?}",
        names(&later)
    );
    assert_eq!(status(&qmp).await, "running");
}

#[tokio::test]
async fn resetting_guest_resets_itself_and_boots_again() {
    let (vm, _qmp, mut events) = boot(GuestKind::ResetsItself).await;
    let evs = until(&mut events, "RESET", Duration::from_secs(1)).await;
    let reset = evs.last().expect("RESET");
    assert_eq!(data(reset)["guest"], true);
    assert_eq!(data(reset)["reason"], "guest-reset");
    assert!(reset.timestamp.0 > 0);
    assert!(
        vm.wait_boots_async(2, Duration::from_secs(2)).await,
        "boots again; serial {:?}",
        vm.serial()
    );
}

#[tokio::test]
async fn panicking_guest_reports_guest_panicked() {
    let (_vm, qmp, mut events) = boot(GuestKind::Panics).await;
    let evs = until(&mut events, "GUEST_PANICKED", Duration::from_secs(1)).await;
    let panicked = evs.last().expect("GUEST_PANICKED");
    assert_eq!(data(panicked)["action"], "pause");
    until(&mut events, "STOP", Duration::from_secs(1)).await;
    assert_eq!(status(&qmp).await, "guest-panicked");
}
