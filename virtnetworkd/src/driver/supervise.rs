//! dnsmasq supervision: a running network's dnsmasq that dies on its own
//! (crash, OOM kill, `kill -9`) is started again at once, with a back-off
//! against a crash loop.
//!
//! One task per active network that needs dnsmasq. It watches the
//! process by pidfd (dnsmasq is not our child: it daemonizes, and after a
//! daemon restart it is adopted), so an exit is seen the moment it
//! happens. Then, under the network's job (so that no start, destroy or
//! update is half done), it looks at the network again:
//!
//! - inactive or gone: the exit was a destroy's; the task ends;
//! - another dnsmasq recorded: an update restarted it; that one is watched;
//! - the same one recorded: it died on its own, and is started again with
//!   the same configuration, after [`Backoff::next_delay`]; the status file
//!   gets the new pid. A failed start is tried again after the next delay.
//!
//! The leases survive: they live in the lease helper's status file, which
//! a new dnsmasq reads back through the helper's `init` when it starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::network::dnsmasq::needs_dnsmasq;

use super::NetworkDriver;
use crate::dnsmasq::DnsmasqProc;
use crate::host::{Host, Kind, kind};
use crate::network_obj::NetworkObj;
use crate::pidfd::PidFd;
use crate::status::{NetworkStatus, StatusStore};

/// A dnsmasq that ran at least this long before it died is not in a
/// crash loop: the next restart is immediate again.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// The first delay of a crash loop (the second quick death in a row).
pub const FIRST_DELAY: Duration = Duration::from_millis(500);

/// The longest delay between two restarts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The restart delays of one network's dnsmasq.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// How many times in a row it died before [`STABLE_AFTER`].
    quick_deaths: u32,
}

impl Backoff {
    /// The delay before the next start of a dnsmasq that died after
    /// running for `ran`: none after a stable run or for the first quick
    /// death, then [`FIRST_DELAY`] doubling up to [`MAX_DELAY`].
    pub fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= STABLE_AFTER {
            self.quick_deaths = 0;
        }
        let delay = match self.quick_deaths {
            0 => Duration::ZERO,
            n => FIRST_DELAY
                .saturating_mul(1u32 << (n - 1).min(16))
                .min(MAX_DELAY),
        };
        self.quick_deaths = self.quick_deaths.saturating_add(1);
        delay
    }
}

/// What the task watches next.
enum Next {
    /// This process (watched since that instant).
    Watch(DnsmasqProc, Instant),
    /// No dnsmasq runs although the network needs one: start it after the
    /// delay.
    Start(Duration),
    /// Nothing to supervise any more.
    Done,
}

impl NetworkDriver {
    /// Makes sure the dnsmasq of active network `obj` is supervised (one
    /// task per network; a second call while it runs does nothing).
    pub(crate) fn supervise_dnsmasq(&self, obj: &Arc<NetworkObj>) {
        {
            let mut st = obj.lock();
            if st.supervised
                || !st.active
                || st.removed
                || kind(&st.def) != Kind::Managed
                || !needs_dnsmasq(&st.def)
            {
                return;
            }
            st.supervised = true;
        }
        let obj = obj.clone();
        let host = self.host.clone();
        let status = self.status.clone();
        tokio::spawn(async move { supervise(obj, host, status).await });
    }
}

/// The task: see the module docs.
async fn supervise(obj: Arc<NetworkObj>, host: Arc<Host>, status: StatusStore) {
    let mut backoff = Backoff::default();
    let mut next = current(&obj, Instant::now());
    loop {
        match next {
            Next::Done => return,
            Next::Watch(p, since) => {
                wait_exit(&p).await;
                let _job = obj.job.lock().await;
                next = {
                    let mut st = obj.lock();
                    match st.runtime.as_ref().and_then(|r| r.dnsmasq) {
                        _ if !st.active || st.removed => finish(&mut st),
                        Some(cur) if cur != p => Next::Watch(cur, Instant::now()),
                        None => finish(&mut st),
                        Some(_) => {
                            let ran = since.elapsed();
                            let delay = backoff.next_delay(ran);
                            tracing::warn!(
                                network = %st.def.name,
                                pid = p.pid,
                                ran_ms = ran.as_millis(),
                                "dnsmasq exited on its own: restarting it{}",
                                if delay.is_zero() {
                                    String::new()
                                } else {
                                    format!(" in {} ms (it keeps dying)", delay.as_millis())
                                }
                            );
                            if let Some(r) = st.runtime.as_mut() {
                                r.dnsmasq = None;
                            }
                            Next::Start(delay)
                        }
                    }
                };
            }
            Next::Start(delay) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                next = restart(&obj, &host, &status, &mut backoff).await;
            }
        }
    }
}

/// What to watch now, from the network's state; marks the task gone when
/// there is nothing (under the state lock, so that a start that comes
/// next spawns a new task).
fn current(obj: &NetworkObj, since: Instant) -> Next {
    let mut st = obj.lock();
    if !st.active || st.removed {
        return finish(&mut st);
    }
    match st.runtime.as_ref().and_then(|r| r.dnsmasq) {
        Some(p) => Next::Watch(p, since),
        None => Next::Start(Duration::ZERO),
    }
}

fn finish(st: &mut crate::network_obj::NetworkState) -> Next {
    st.supervised = false;
    Next::Done
}

/// Waits until `p` has exited (at once when it is gone already).
async fn wait_exit(p: &DnsmasqProc) {
    let fd = match PidFd::open(p.pid) {
        Ok(fd) => fd,
        // ESRCH: gone already.
        Err(_) => return,
    };
    // Checked with the pidfd open: the pid cannot be reused under us now.
    if !crate::pidfd::is_alive(p.pid, p.start_time) {
        return;
    }
    if let Err(e) = fd.exited().await {
        tracing::error!(pid = p.pid, "cannot watch dnsmasq: {e}");
        // Fall back to polling rather than give up supervising.
        while crate::pidfd::is_alive(p.pid, p.start_time) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Starts the network's dnsmasq again, under its job, if it still needs
/// one; records it in the status file.
async fn restart(
    obj: &Arc<NetworkObj>,
    host: &Arc<Host>,
    status: &StatusStore,
    backoff: &mut Backoff,
) -> Next {
    let _job = obj.job.lock().await;
    let (def, rt) = {
        let mut st = obj.lock();
        if !st.active || st.removed || !needs_dnsmasq(&st.def) {
            return finish(&mut st);
        }
        let rt = st.runtime.clone().unwrap_or_default();
        if let Some(p) = rt.dnsmasq {
            // Someone (an update) started one meanwhile.
            return Next::Watch(p, Instant::now());
        }
        (st.def.clone(), rt)
    };
    let (h, s, d) = (host.clone(), status.clone(), def.clone());
    let started = tokio::task::spawn_blocking(move || {
        let p = h.dnsmasq.start(&d).map_err(|e| e.to_string())?;
        let mut rt = rt;
        rt.dnsmasq = Some(p);
        if let Err(e) = s.save(&NetworkStatus {
            def: (*d).clone(),
            runtime: rt.clone(),
        }) {
            // It runs and is ours; a restarted daemon that finds the old
            // pid dead starts yet another one and the old one stays: say so.
            tracing::error!(network = %d.name, pid = p.pid, "dnsmasq restarted but {e}");
        }
        Ok::<_, String>(p)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the start task failed: {e}")));
    let mut st = obj.lock();
    match started {
        Ok(p) => {
            tracing::info!(network = %def.name, pid = p.pid, "dnsmasq restarted");
            if let Some(r) = st.runtime.as_mut() {
                r.dnsmasq = Some(p);
            }
            Next::Watch(p, Instant::now())
        }
        Err(e) => {
            let delay = backoff.next_delay(Duration::ZERO);
            tracing::error!(
                network = %def.name,
                "cannot restart dnsmasq: {e}; trying again in {} ms",
                delay.as_millis()
            );
            Next::Start(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_at_once_then_back_off_and_reset_after_a_stable_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(100);
        assert_eq!(b.next_delay(quick), Duration::ZERO);
        assert_eq!(b.next_delay(quick), FIRST_DELAY);
        assert_eq!(b.next_delay(quick), FIRST_DELAY * 2);
        assert_eq!(b.next_delay(quick), FIRST_DELAY * 4);
        for _ in 0..20 {
            b.next_delay(quick);
        }
        assert_eq!(b.next_delay(quick), MAX_DELAY);
        // A dnsmasq that ran long enough is not in a loop.
        assert_eq!(b.next_delay(STABLE_AFTER), Duration::ZERO);
        assert_eq!(b.next_delay(quick), FIRST_DELAY);
    }
}
