//! A short run of the kill-anywhere soak (`tests::soak`): random
//! operations on a stack with a pool, a DHCP network and running tiny
//! guests, each cut by a kill -9 of a random daemon, every invariant
//! checked against the real host after each restart. `make soak` runs
//! the long one.
//!
//! `SOAK_ROUNDS` (default 25) and `SOAK_SEED` (default: from the clock,
//! printed) override the run.

use std::time::{SystemTime, UNIX_EPOCH};

use tests::soak::{self, Options};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}='{v}' is not a number")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_anywhere_soak_keeps_every_invariant() {
    let seed = env_u64("SOAK_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
            .unwrap_or(1)
    });
    let opts = Options {
        rounds: env_u64("SOAK_ROUNDS").unwrap_or(25),
        seed,
        ..Options::default()
    };
    let figs = soak::run(&opts)
        .await
        .unwrap_or_else(|e| panic!("soak set-up (seed {seed}): {e}"));
    println!("{figs}");
    assert_eq!(figs.rounds, opts.rounds, "every round ran (seed {seed})");
    assert_eq!(
        figs.violation_count(),
        0,
        "seed {seed}: {figs}\n{}",
        figs.first_violation.as_deref().unwrap_or_default()
    );
    // The kills reached more than one daemon (each round picks one at
    // random: all three over 25 rounds, except by a ~0.2 % chance).
    assert!(figs.kills.len() >= 2 || opts.rounds < 10, "{figs}");
    assert_eq!(figs.kills.values().sum::<u64>(), opts.rounds, "{figs}");
}
