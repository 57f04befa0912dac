//! The load runner's short run inside `make test`: 64 clients, each on
//! its own connection to virtproxyd, 5,000 calls of the mixed workload of
//! `tests::load` (reads and writes of domains, volumes, pools, networks,
//! DHCP hosts, suspend/resume of running tiny guests, event watches) on a
//! full stack. No call may fail (other than the lookup misses the
//! workload makes on purpose), none may go unanswered for 30 s (a
//! deadlock), every client's watch must deliver its own events once, and
//! every daemon must exit 0 on SIGTERM afterwards.
//!
//! The memory check of the long run (`make load`: every daemon's VmRSS
//! after 100,000 calls within 10 % of its VmRSS after 1,000) needs those
//! 100,000 calls; here memory is only printed.
//!
//! The report (calls/s, p50/p90/p99/max per call kind) goes to stdout:
//! `cargo test -p tests --test load -- --nocapture`.

use std::time::Duration;

use tests::load::{Options, Until, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_mixed_workload_without_error_or_deadlock() {
    let opts = Options {
        clients: 64,
        until: Until::Calls(5_000),
        guests: 2,
        settle: Duration::from_millis(500),
        progress: false,
        ..Options::default()
    };
    let report = run(&opts).await;
    println!("{}", report.render());
    assert_eq!(report.calls, 5_000, "{}", report.render());
    assert!(report.clean(), "{}", report.render());
    // Every kind of call was made, the deliberate misses answered as such.
    for kind in [
        "ListAllDomains",
        "LookupDomain",
        "LookupDomain (miss)",
        "GetXml",
        "GetInfo",
        "GetState",
        "DefineXml",
        "Undefine",
        "ListAllPools",
        "ListAllVolumes",
        "GetVolumeInfo",
        "CreateVolume",
        "DeleteVolume",
        "RefreshPool",
        "ListAllNetworks",
        "GetNetworkXml",
        "UpdateNetwork (add DHCP host)",
        "UpdateNetwork (delete DHCP host)",
        "Suspend",
        "Resume",
        "WatchEvents (open)",
    ] {
        assert!(
            report.by_kind.get(kind).is_some_and(|v| !v.is_empty()),
            "no {kind} call made:\n{}",
            report.render()
        );
    }
    assert_eq!(
        report.expected_errors,
        report.by_kind["LookupDomain (miss)"].len()
    );
    // The events of the clients' own defines and undefines reached them.
    assert!(report.events.0 > 0, "{}", report.render());
}
