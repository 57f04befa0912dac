//! Kill-anywhere soak: one stack (virtstoraged, virtnetworkd, virtqemud)
//! with a dir pool and volumes, an isolated DHCP network and tiny-guest
//! domains (plain, with a volume disk, with a network NIC), some running.
//!
//! Each round sends one random operation (start, destroy, suspend,
//! resume, define/undefine, redefine, vol-create/vol-delete, pool
//! define/undefine, net define/undefine, net-update of DHCP hosts) as a
//! gRPC call in its own task; after a random 0–300 ms (a third of the
//! rounds uniform over 0–300 ms, a third over 0–30, a third over 0–3, so
//! that the kill often lands inside the call) it sends SIGKILL to
//! a random daemon (the operation's owner half of the time), restarts
//! it, waits until every daemon answers (health and a list call) and for
//! the call's end, and then checks against the real host:
//!
//! - every definition the operation did not target still exists, as the
//!   model says (generation of domains, spare pools and networks, DHCP
//!   hosts in the live XML, the persistent XML and dnsmasq's hosts file);
//! - every domain that ran and was not destroyed still runs (or is still
//!   paused) with the same QEMU pid;
//! - no QEMU without its active domain, no active domain without its
//!   QEMU, never two QEMUs for one domain, status file pid = QEMU pid;
//! - no file in the pool's directory that the pool does not list, no
//!   listed volume without its file, no torn volume (`qemu-img info`,
//!   `check` for qcow2, the size asked for);
//! - every acknowledged operation is reflected; a call that failed before
//!   the kill changed nothing; the cut-off call ended either way, but
//!   consistently (its target is entirely the before or the after);
//! - the pool and the network are active, the bridge is there, dnsmasq
//!   runs (exactly one), one port and one bridge port per active NIC domain.
//!
//! The model the next round starts from is then read from the real state.
//! A violation stops the soak (all details and the daemons' log tails are
//! printed) unless `keep_going` is set: then violations are counted by
//! kind, each counted once while it persists.
//!
//! The `soak` command (`cargo run -p tests --bin soak -- --rounds 1000`,
//! `make soak`) and the short `soak` test (`SOAK_ROUNDS`, `SOAK_SEED`)
//! run it.

pub mod model;
pub mod observe;
pub mod rng;
pub mod stack;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use model::{KINDS, Model, Op};
use observe::{Obs, Violation, check, observe};
use proto::network::v1 as npb;
use proto::storage::v1 as spb;
use rng::Rng;
use stack::{NET, POOL, SOAK_DAEMONS, SoakStack, net_ref, pool_ref};

/// After a virtqemud restart, the invariants are checked again this much
/// later.
const RECHECK: Duration = Duration::from_millis(300);

/// A restart refused for a locked pid file longer than this is a
/// violation (shorter: counted in the figures).
const BLOCKED_LIMIT: Duration = Duration::from_secs(1);

/// The domains running when the soak begins.
pub const INITIAL_RUNNING: [&str; 3] = ["plain-0", "vol-0", "nic-0"];

/// How the soak runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds to run.
    pub rounds: u64,
    /// The seed of every random choice.
    pub seed: u64,
    /// Count violations and go on instead of stopping at the first.
    pub keep_going: bool,
    /// The kill comes 0..=this many ms after the call is sent.
    pub max_delay_ms: u64,
    /// How long the state may take to settle after a restart before a
    /// broken invariant counts (reconnects run in the background).
    pub settle: Duration,
    /// How long the cut-off call may take to end after the restart.
    pub call_timeout: Duration,
    /// Print one line per round.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 20,
            seed: 1,
            keep_going: false,
            max_delay_ms: 300,
            settle: Duration::from_secs(20),
            call_timeout: Duration::from_secs(90),
            verbose: true,
        }
    }
}

/// How the round's call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Ok: must be reflected.
    Acked,
    /// An error before the kill: must have changed nothing.
    Failed,
    /// An error (or none yet) after the kill: either way, consistently.
    CutOff,
}

/// Per kind of operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpFigures {
    /// Sent.
    pub sent: u64,
    /// Answered Ok.
    pub acked: u64,
    /// Answered with an error before the kill.
    pub failed: u64,
    /// Cut off by the kill, found done afterwards.
    pub cut_completed: u64,
    /// Cut off by the kill, found not done afterwards.
    pub cut_not_completed: u64,
}

/// The soak's figures.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The seed.
    pub seed: u64,
    /// Rounds run.
    pub rounds: u64,
    /// SIGKILLs per daemon.
    pub kills: BTreeMap<&'static str, u64>,
    /// Per kind of operation.
    pub ops: BTreeMap<&'static str, OpFigures>,
    /// Violations per kind (each counted once while it persists).
    pub violations: BTreeMap<&'static str, u64>,
    /// Rounds with at least one new violation.
    pub violation_rounds: Vec<u64>,
    /// The first violating round's report.
    pub first_violation: Option<String>,
    /// Wall time.
    pub duration: Duration,
    /// The slowest restart (kill to every daemon answering).
    pub max_restart: Duration,
    /// The slowest settle (call's end to every invariant holding).
    pub max_settle: Duration,
    /// Restarts refused at first because the killed daemon's pid file
    /// was still locked (by a child it had forked), then retried.
    pub restart_retries: u64,
}

impl Figures {
    /// Total violations.
    pub fn violation_count(&self) -> u64 {
        self.violations.values().sum()
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "soak figures (seed {})", self.seed)?;
        writeln!(f, "  rounds: {}", self.rounds)?;
        writeln!(
            f,
            "  duration: {:.1} s ({:.2} s per round)",
            self.duration.as_secs_f64(),
            self.duration.as_secs_f64() / self.rounds.max(1) as f64
        )?;
        writeln!(
            f,
            "  slowest restart {} ms, slowest settle {} ms",
            self.max_restart.as_millis(),
            self.max_settle.as_millis()
        )?;
        let kills: Vec<String> = self.kills.iter().map(|(d, n)| format!("{d} {n}")).collect();
        writeln!(f, "  kills: {}", kills.join(", "))?;
        writeln!(
            f,
            "  restarts retried (pid file still locked): {}",
            self.restart_retries
        )?;
        writeln!(
            f,
            "  {:<14} {:>5} {:>6} {:>7} {:>14} {:>18}",
            "operation", "sent", "acked", "failed", "cut: completed", "cut: not completed"
        )?;
        let mut total = OpFigures::default();
        for k in KINDS {
            let o = self.ops.get(k).cloned().unwrap_or_default();
            writeln!(
                f,
                "  {k:<14} {:>5} {:>6} {:>7} {:>14} {:>18}",
                o.sent, o.acked, o.failed, o.cut_completed, o.cut_not_completed
            )?;
            total.sent += o.sent;
            total.acked += o.acked;
            total.failed += o.failed;
            total.cut_completed += o.cut_completed;
            total.cut_not_completed += o.cut_not_completed;
        }
        writeln!(
            f,
            "  {:<14} {:>5} {:>6} {:>7} {:>14} {:>18}",
            "all",
            total.sent,
            total.acked,
            total.failed,
            total.cut_completed,
            total.cut_not_completed
        )?;
        if self.violations.is_empty() {
            writeln!(f, "  invariant violations: 0")?;
        } else {
            let v: Vec<String> = self
                .violations
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(
                f,
                "  invariant violations: {} ({}) in rounds {:?}",
                self.violation_count(),
                v.join(", "),
                self.violation_rounds
            )?;
        }
        Ok(())
    }
}

/// Settles: observes until every invariant holds against `allowed` or
/// `settle` passes; returns the last observation and its violations.
async fn settle(st: &SoakStack, allowed: &[&Model], settle: Duration) -> (Obs, Vec<Violation>) {
    let deadline = Instant::now() + settle;
    loop {
        let obs = observe(st).await;
        let v = check(&obs, allowed);
        if v.is_empty() || Instant::now() >= deadline {
            return (obs, v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Removes what a violation left that would otherwise break every later
/// round (keep-going mode): QEMUs no domain owns, ports no active NIC
/// domain owns, files the pool does not list.
async fn repair(st: &SoakStack, obs: &Obs) {
    for q in &obs.qemus {
        let owned = obs
            .domains
            .get(&q.name)
            .is_some_and(|d| d.st().is_some_and(model::St::active) && d.status_pid == Some(q.pid));
        if !owned {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(q.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    if let Ok(mut c) = st.network().await
        && let Ok(r) = c
            .list_all_ports(npb::ListAllPortsRequest {
                network: net_ref(NET),
            })
            .await
    {
        for p in r.into_inner().ports {
            let owner = p
                .xml
                .split("<name>")
                .nth(1)
                .and_then(|r| r.split('<').next())
                .unwrap_or("?")
                .to_owned();
            let active = obs
                .domains
                .get(&owner)
                .is_some_and(|d| d.st().is_some_and(model::St::active));
            if !active {
                let _ = c
                    .delete_port(npb::DeletePortRequest {
                        port: Some(npb::PortRef {
                            network: net_ref(NET),
                            uuid: p.uuid,
                        }),
                    })
                    .await;
            }
        }
    }
    // DHCP hosts where the live and the persistent definition disagree:
    // the persistent one follows the live one.
    if let Ok(mut c) = st.network().await {
        for i in 0..stack::DHCP_HOSTS {
            let live = obs.hosts_live.contains(&i);
            if live == obs.hosts_config.contains(&i) {
                continue;
            }
            let command = if live {
                npb::NetworkUpdateCommand::AddLast
            } else {
                npb::NetworkUpdateCommand::Delete
            };
            let _ = c
                .update_network(npb::UpdateNetworkRequest {
                    network: net_ref(NET),
                    command: command as i32,
                    section: npb::NetworkSection::IpDhcpHost as i32,
                    parent_index: -1,
                    xml: stack::host_xml(st.names(), i),
                    live: false,
                    config: true,
                })
                .await;
        }
    }
    if let Ok(mut c) = st.storage().await {
        let _ = c
            .refresh_pool(spb::RefreshPoolRequest {
                pool: pool_ref(POOL),
            })
            .await;
    }
    for (n, vo) in &obs.volumes {
        if !vo.listed && vo.file_size.is_some() {
            let _ = std::fs::remove_file(st.pool_dir().join(n));
        }
    }
}

/// Runs the soak on a new stack; `Err` only when the stack cannot be set
/// up. Violations are in the figures.
///
/// # Errors
/// The set-up failed.
pub async fn run(opts: &Options) -> Result<Figures, String> {
    let began = Instant::now();
    let mut figs = Figures {
        seed: opts.seed,
        ..Figures::default()
    };
    println!("soak: seed {} rounds {}", opts.seed, opts.rounds);
    let mut st = SoakStack::start(&INITIAL_RUNNING).await?;
    println!(
        "soak: root {} bridge {} (keep it with VIRT_TEST_KEEP=1)",
        st.root().path().display(),
        st.names().bridge
    );
    let mut rng = Rng::new(opts.seed);
    // The first model: what the set-up made, once its invariants hold.
    let (obs, v) = {
        let o = observe(&st).await;
        let m = Model::from_obs(&o);
        settle(&st, &[&m], opts.settle).await
    };
    if !v.is_empty() {
        let text: Vec<String> = v.iter().map(ToString::to_string).collect();
        return Err(format!(
            "the set-up breaks invariants:\n{}",
            text.join("\n")
        ));
    }
    let mut model = Model::from_obs(&obs);
    let mut previous: BTreeSet<(String, String)> = BTreeSet::new();

    for round in 1..=opts.rounds {
        let op = Op::choose(&mut rng, &model);
        // Uniform over 0..=max a third of the time, else over its tenth or
        // hundredth: most calls take a few ms, and the kill should often
        // land inside them.
        let max_us = opts.max_delay_ms * 1000;
        let delay = Duration::from_micros(match rng.below(3) {
            0 => rng.below(max_us + 1),
            1 => rng.below(max_us / 10 + 1),
            _ => rng.below(max_us / 100 + 1),
        });
        let owner = op.owner();
        let victim = if rng.chance(1, 2) {
            owner
        } else {
            let others: Vec<&'static str> = SOAK_DAEMONS
                .iter()
                .copied()
                .filter(|d| *d != owner)
                .collect();
            *rng.pick(&others)
        };
        let after = model.apply(&op);

        let ctx = st.ctx();
        let call_op = op.clone();
        let sent = Instant::now();
        let call = tokio::spawn(async move {
            let r = call_op.send_ctx(&ctx).await;
            (r, sent.elapsed())
        });
        tokio::time::sleep(delay).await;
        let killed_pid = st.daemon_pid(victim);
        let kill_at = sent.elapsed();
        st.kill9(victim).await;
        *figs.kills.entry(victim).or_default() += 1;
        let restart_began = Instant::now();
        let mut blocked = None;
        let restarted = match st.restart(victim).await {
            Ok(b) => {
                blocked = b;
                st.wait_answering(stack::RESTART_TIMEOUT).await
            }
            Err(e) => Err(e),
        };
        let restart_took = restart_began.elapsed();
        figs.max_restart = figs.max_restart.max(restart_took);
        let header = format!(
            "round {round} (seed {}): {op} [owner {owner}], kill -9 {victim} (pid {killed_pid}) {:.1} ms after the call",
            opts.seed,
            ms(kill_at)
        );
        if let Err(e) = restarted {
            figs.rounds = round;
            *figs.violations.entry("daemon-restart").or_default() += 1;
            figs.violation_rounds.push(round);
            let report = format!(
                "{header}\n[daemon-restart] {e}\n{}",
                logs(&st, victim, owner)
            );
            println!("VIOLATION {report}");
            figs.first_violation.get_or_insert(report);
            break; // nothing to soak without the stack
        }

        let waited = tokio::time::timeout(opts.call_timeout, call).await;
        let hung = waited.is_err();
        let (outcome, result_text) = match waited {
            Ok(Ok((Ok(()), _))) => (Outcome::Acked, "acked".to_owned()),
            Ok(Ok((Err(s), at))) if at < kill_at => (
                Outcome::Failed,
                format!("failed before the kill ({:?}: {})", s.code(), s.message()),
            ),
            Ok(Ok((Err(s), at))) => (
                Outcome::CutOff,
                format!(
                    "cut off ({:?} at {:.1} ms: {})",
                    s.code(),
                    ms(at),
                    first_line(s.message())
                ),
            ),
            Ok(Err(join)) => (Outcome::CutOff, format!("call task failed: {join}")),
            Err(_) => (
                Outcome::CutOff,
                format!("no answer {:?} after the restart", opts.call_timeout),
            ),
        };
        let settle_began = Instant::now();
        let allowed: Vec<&Model> = match outcome {
            Outcome::Acked => vec![&after],
            Outcome::Failed => vec![&model],
            Outcome::CutOff => vec![&model, &after],
        };
        let (mut obs, mut violations) = settle(&st, &allowed, opts.settle).await;
        if violations.is_empty() && victim == "virtqemud" {
            // virtqemud reconciles the states of the QEMUs it adopts in
            // the background: what it answers must not change afterwards
            // without a call.
            tokio::time::sleep(RECHECK).await;
            obs = observe(&st).await;
            violations = check(&obs, &allowed);
        }
        let settle_took = settle_began.elapsed();
        figs.max_settle = figs.max_settle.max(settle_took);
        if hung {
            violations.push(Violation {
                kind: "call-hung",
                subject: op.to_string(),
                detail: result_text.clone(),
            });
        }
        // A killed daemon's child that had forked but not yet exec'd holds
        // its pid file lock for a moment; a service manager retries such a
        // start. Counted; a violation when it lasts.
        let mut blocked_note = String::new();
        if let Some(b) = blocked {
            figs.restart_retries += 1;
            blocked_note = format!(
                "  (restart retried for {} ms: {})",
                b.for_.as_millis(),
                b.who
            );
            if b.for_ > BLOCKED_LIMIT {
                violations.push(Violation {
                    kind: "restart-blocked",
                    subject: victim.to_owned(),
                    detail: format!("for {} ms: {}", b.for_.as_millis(), b.who),
                });
            }
        }
        if outcome == Outcome::Failed {
            violations.push(Violation {
                kind: "call-refused",
                subject: op.to_string(),
                detail: format!("a valid {op} {result_text}"),
            });
        }
        let o = figs.ops.entry(op.kind()).or_default();
        o.sent += 1;
        let ended = match outcome {
            Outcome::Acked => {
                o.acked += 1;
                String::new()
            }
            Outcome::Failed => {
                o.failed += 1;
                String::new()
            }
            Outcome::CutOff => {
                // The before and after models differ only in the target:
                // the one that explains more of what is seen is how it ended.
                if check(&obs, &[&after]).len() < check(&obs, &[&model]).len() {
                    o.cut_completed += 1;
                    " -> completed".to_owned()
                } else {
                    o.cut_not_completed += 1;
                    " -> not completed".to_owned()
                }
            }
        };
        figs.rounds = round;
        if opts.verbose {
            println!(
                "r{round:>5} {:<34} kill {victim:<12} @{:>5.1} ms  {result_text}{ended}  restart {} ms, settle {} ms{blocked_note}",
                op.to_string(),
                ms(kill_at),
                restart_took.as_millis(),
                settle_took.as_millis()
            );
        }

        // A violation is new when its kind and subject were not broken in
        // the round before (one that persists is counted once).
        let now: BTreeSet<(String, String)> = violations
            .iter()
            .map(|v| (v.kind.to_owned(), v.subject.clone()))
            .collect();
        let fresh: Vec<&Violation> = violations
            .iter()
            .filter(|v| !previous.contains(&(v.kind.to_owned(), v.subject.clone())))
            .collect();
        previous = now;
        if !fresh.is_empty() {
            for v in &fresh {
                *figs.violations.entry(v.kind).or_default() += 1;
            }
            figs.violation_rounds.push(round);
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let report = format!(
                "{header}; call: {result_text}{ended}\nmodel before: {model:?}\nallowed after: {allowed:?}\nobserved: {obs:?}\nviolations:\n  {}\n{}",
                list.join("\n  "),
                logs(&st, victim, owner)
            );
            println!("VIOLATION {report}");
            figs.first_violation.get_or_insert(report);
            if !opts.keep_going {
                break;
            }
        }
        if !violations.is_empty() && opts.keep_going {
            repair(&st, &obs).await;
            let obs = observe(&st).await;
            model = Model::from_obs(&obs);
        } else {
            model = Model::from_obs(&obs);
        }
        if round % 50 == 0 {
            st.prune_logs();
        }
    }
    figs.duration = began.elapsed();
    Ok(figs)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn logs(st: &SoakStack, victim: &str, owner: &str) -> String {
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    for d in [victim, owner, "virtqemud"] {
        if seen.insert(d) {
            out.push_str(&format!("== {d} log tail ==\n{}", st.log_tail(d, 30)));
        }
    }
    out
}
