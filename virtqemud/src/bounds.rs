//! How long virtqemud waits for a QEMU that does not answer, and for a
//! domain that another call is changing.
//!
//! One bound, libvirt's 30 seconds unless `VIRT_QEMU_MONITOR_TIMEOUT`
//! (seconds, fractions allowed) says otherwise:
//! - a QMP command without a reply fails after it (OPERATION_TIMEOUT);
//! - connecting to a monitor (the greeting) gives up after it, and a
//!   reconnect retries in the background;
//! - a call that needs a monitor still being connected waits at most that
//!   long;
//! - a call that changes a domain waits at most that long for the change
//!   another call is making (libvirt's "cannot acquire state change
//!   lock").
//!
//! So a QEMU that hangs (or was stopped with SIGSTOP) costs the calls on
//! that one domain at most the bound each, and nothing else waits for it.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that sets the bound, in seconds.
pub const MONITOR_TIMEOUT_ENV: &str = "VIRT_QEMU_MONITOR_TIMEOUT";

/// libvirt's job wait time (`QEMU_JOB_WAIT_TIME`).
const DEFAULT: Duration = Duration::from_secs(30);

/// The bound (read once).
pub fn monitor() -> Duration {
    static BOUND: OnceLock<Duration> = OnceLock::new();
    *BOUND.get_or_init(|| match std::env::var(MONITOR_TIMEOUT_ENV) {
        Ok(v) => match parse(&v) {
            Some(d) => d,
            None => {
                tracing::warn!(
                    "{MONITOR_TIMEOUT_ENV}='{v}' is not a positive number of seconds; using {}s",
                    DEFAULT.as_secs()
                );
                DEFAULT
            }
        },
        Err(_) => DEFAULT,
    })
}

/// `v` as a positive duration in seconds.
fn parse(v: &str) -> Option<Duration> {
    let s: f64 = v.trim().parse().ok()?;
    (s.is_finite() && s > 0.0 && s < 86_400.0).then(|| Duration::from_secs_f64(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds() {
        assert_eq!(parse("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("inf"), None);
        assert_eq!(parse("soon"), None);
    }
}
