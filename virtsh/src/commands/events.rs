//! "Domain Events": `event`, with virsh's lines
//! (`tools/virsh-domain-event.c`), e.g.
//! `event 'lifecycle' for domain 'vm1': Defined Added`.

use std::time::{Duration, SystemTime};

use proto::domain::v1 as pb;
use proto::domain::v1::domain_event::Event;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{BY_ANY, exclusive, lookup, uuid_ref};
use crate::ctl::Ctl;
use crate::error::Error;

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[CommandDef::new(
    "event",
    Group::Events,
    "Domain Events",
    "List event types, or wait for domain events to occur",
    cmd_event,
)
.opts(&[
    OptDef::string("domain", "filter by domain name, id or uuid").positional(),
    OptDef::string("event", "which event type to wait for").positional(),
    OptDef::flag("all", "wait for all events instead of just one type"),
    OptDef::flag(
        "loop",
        "loop until timeout or interrupt, rather than one-shot",
    ),
    OptDef::int("timeout", "timeout seconds").positional(),
    OptDef::flag("list", "list valid event types"),
    OptDef::flag("timestamp", "show timestamp for each printed event"),
])];

/// virsh's event names, in `virDomainEventID` order.
pub const EVENT_NAMES: &[&str] = &[
    "lifecycle",
    "reboot",
    "rtc-change",
    "watchdog",
    "io-error",
    "graphics",
    "io-error-reason",
    "control-error",
    "block-job",
    "disk-change",
    "tray-change",
    "pm-wakeup",
    "pm-suspend",
    "balloon-change",
    "pm-suspend-disk",
    "device-removed",
    "block-job-2",
    "tunable",
    "agent-lifecycle",
    "device-added",
    "migration-iteration",
    "job-completed",
    "device-removal-failed",
    "metadata-change",
    "block-threshold",
    "memory-failure",
    "memory-device-size-change",
    "nic-mac-change",
];

const EVENTS: &[&str] = &[
    "Defined",
    "Undefined",
    "Started",
    "Suspended",
    "Resumed",
    "Stopped",
    "Shutdown",
    "PMSuspended",
    "Crashed",
];

fn detail_str(event: i32, detail: i32) -> &'static str {
    let table: &[&str] = match event {
        0 => &["Added", "Updated", "Renamed", "Snapshot"],
        1 => &["Removed", "Renamed"],
        2 => &["Booted", "Migrated", "Restored", "Snapshot", "Event wakeup"],
        3 => &[
            "Paused",
            "Migrated",
            "I/O Error",
            "Watchdog",
            "Restored",
            "Snapshot",
            "API error",
            "Post-copy",
            "Post-copy Error",
        ],
        4 => &[
            "Unpaused",
            "Migrated",
            "Snapshot",
            "Post-copy",
            "Post-copy Error",
        ],
        5 => &[
            "Shutdown",
            "Destroyed",
            "Crashed",
            "Migrated",
            "Saved",
            "Failed",
            "Snapshot",
        ],
        6 => &[
            "Finished",
            "Finished after guest request",
            "Finished after host request",
        ],
        7 => &["Memory", "Disk"],
        8 => &["Panicked", "Crashloaded"],
        _ => &[],
    };
    usize::try_from(detail)
        .ok()
        .and_then(|d| table.get(d).copied())
        .unwrap_or("unknown")
}

/// The virsh name of an event's kind, and its line (with the newline).
pub fn event_line(ev: &pb::DomainEvent) -> Option<(&'static str, String)> {
    let name = ev.domain.as_ref().map(|d| d.name.as_str()).unwrap_or("");
    Some(match ev.event.as_ref()? {
        Event::Lifecycle(l) => {
            let event = usize::try_from(l.event)
                .ok()
                .and_then(|e| EVENTS.get(e).copied())
                .unwrap_or("unknown");
            (
                "lifecycle",
                format!(
                    "event 'lifecycle' for domain '{name}': {event} {}\n",
                    detail_str(l.event, l.detail)
                ),
            )
        }
        Event::Reboot(_) => ("reboot", format!("event 'reboot' for domain '{name}'\n")),
        Event::DeviceAdded(d) => (
            "device-added",
            format!("event 'device-added' for domain '{name}': {}\n", d.alias),
        ),
        Event::DeviceRemoved(d) => (
            "device-removed",
            format!("event 'device-removed' for domain '{name}': {}\n", d.alias),
        ),
        Event::DeviceRemovalFailed(d) => (
            "device-removal-failed",
            format!(
                "event 'device-removal-failed' for domain '{name}': {}\n",
                d.alias
            ),
        ),
        Event::EventsLost(_) => return None,
    })
}

/// The proto kind that carries virsh's event `name`, if we stream it.
fn kind_of(name: &str) -> Option<pb::DomainEventKind> {
    Some(match name {
        "lifecycle" => pb::DomainEventKind::Lifecycle,
        "reboot" => pb::DomainEventKind::Reboot,
        "device-removed" => pb::DomainEventKind::DeviceRemoved,
        "device-added" => pb::DomainEventKind::DeviceAdded,
        "device-removal-failed" => pb::DomainEventKind::DeviceRemovalFailed,
        _ => return None,
    })
}

pub use common::timefmt::timestamp;

enum Outcome {
    Done,
    Timeout,
    Interrupt,
}

/// `event [--domain D] [--event E | --all | --list] [--loop] [--timeout N] [--timestamp]`.
fn cmd_event<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        exclusive(inv, "all", "event")?;
        exclusive(inv, "list", "all")?;
        exclusive(inv, "list", "event")?;
        if inv.flag("list") {
            let out = ctl.out();
            for n in EVENT_NAMES {
                writeln!(out, "{n}")?;
            }
            return Ok(());
        }
        let wanted = inv.string("event");
        if wanted.is_none() && !inv.flag("all") {
            return Err(Error::msg(
                "one of --list, --all, or --event <type> is required",
            ));
        }
        if let Some(w) = wanted
            && !EVENT_NAMES.contains(&w)
        {
            return Err(Error::msg(format!("unknown event type {w}")));
        }
        let timeout = match inv.int::<u32>("timeout")? {
            Some(t) if t == 0 || t > i32::MAX as u32 / 1000 => {
                return Err(Error::msg(format!(
                    "Numeric value '{t}' for <timeout> option is malformed or out of range"
                )));
            }
            t => t.map(|t| Duration::from_secs(u64::from(t))),
        };
        let mut client = ctl.domain().await?;
        let domain = match inv.string("domain") {
            Some(arg) => Some(uuid_ref(&lookup(&mut client, arg, BY_ANY).await?)),
            None => None,
        };
        let kinds = match wanted.map(kind_of) {
            Some(Some(k)) => vec![k as i32],
            _ => Vec::new(),
        };
        let req = pb::WatchEventsRequest {
            resume_after_seq: None,
            domain,
            kinds,
        };
        let mut stream = client.watch_events(req).await?.into_inner();
        let looping = inv.flag("loop");
        let stamp = inv.flag("timestamp");
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut count = 0u64;
        let outcome = loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let msg = tokio::select! {
                m = stream.message() => m,
                () = sleep => break Outcome::Timeout,
                _ = tokio::signal::ctrl_c() => break Outcome::Interrupt,
            };
            let Some(ev) = msg? else {
                break Outcome::Done;
            };
            let Some((name, line)) = event_line(&ev) else {
                continue;
            };
            if wanted.is_some_and(|w| w != name) {
                continue;
            }
            let out = ctl.out();
            if stamp {
                write!(out, "{}: ", timestamp(SystemTime::now()))?;
            }
            out.write_all(line.as_bytes())?;
            out.flush()?;
            count += 1;
            if !looping {
                break Outcome::Done;
            }
        };
        let out = ctl.out();
        match outcome {
            Outcome::Timeout => writeln!(out, "event loop timed out")?,
            Outcome::Interrupt => writeln!(out, "event loop interrupted")?,
            Outcome::Done => {}
        }
        writeln!(out, "events received: {count}")?;
        if count == 0 {
            return Err(Error::Silent);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn lifecycle(name: &str, event: i32, detail: i32) -> pb::DomainEvent {
        pb::DomainEvent {
            seq: 1,
            time: None,
            domain: Some(pb::Domain {
                name: name.into(),
                uuid: String::new(),
                id: -1,
            }),
            event: Some(Event::Lifecycle(pb::domain_event::Lifecycle {
                event,
                detail,
            })),
        }
    }

    #[test]
    fn lifecycle_lines_are_virsh_lines() {
        assert_eq!(
            event_line(&lifecycle("vm1", 0, 0)).map(|x| x.1).as_deref(),
            Some("event 'lifecycle' for domain 'vm1': Defined Added\n")
        );
        assert_eq!(
            event_line(&lifecycle("vm1", 1, 0)).map(|x| x.1).as_deref(),
            Some("event 'lifecycle' for domain 'vm1': Undefined Removed\n")
        );
        assert_eq!(
            event_line(&lifecycle("vm1", 5, 1)).map(|x| x.1).as_deref(),
            Some("event 'lifecycle' for domain 'vm1': Stopped Destroyed\n")
        );
        assert_eq!(
            event_line(&lifecycle("x", 42, 0)).map(|x| x.1).as_deref(),
            Some("event 'lifecycle' for domain 'x': unknown unknown\n")
        );
    }

    #[test]
    fn timestamps_are_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(t), "2023-11-14 22:13:20.123+0000");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00.000+0000");
    }
}
