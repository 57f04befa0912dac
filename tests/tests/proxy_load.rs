//! virtproxyd under load, with real daemons behind it: a client that
//! never reads its streams while others call, the proxy restarted
//! (SIGTERM, then kill -9) while clients call in a loop, and many calls of
//! one TCP client. The 64-client mixed workload through the proxy (with
//! its no-error, no-deadlock and memory checks) is `tests/tests/load.rs`,
//! on the runner in `tests::load`.
//!
//! The clients reach the proxy through `tests::load::dial`, the one
//! function that makes a client connection (today the proxy's read-write
//! Unix socket; a TLS variant of `ProxyAddr` can take its place). Latency
//! percentiles are printed to stdout (`cargo test -p tests --test
//! proxy_load -- --nocapture`); nothing here asserts a speed: `make
//! bench-proxy` measures that (docs/benchmarks-proxy.md).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proto::domain::v1 as dom;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as net;
use proto::storage::v1 as sto;
use tests::load::{
    Client, ProxyAddr, by_name, domain_xml, ms, pool_ref, print_percentiles, vol_ref,
};
use tests::{Daemon, SocketKind, TestRoot, wait_until};

// ---------------------------------------------------------------------------
// The host: the four daemons, each kept so the proxy can be restarted
// ---------------------------------------------------------------------------

/// virtstoraged, virtnetworkd and virtqemud, and virtproxyd in front.
struct Host {
    // Field order: the daemons are killed before the root goes.
    owners: Vec<Daemon>,
    proxy: Daemon,
    root: TestRoot,
}

impl Host {
    async fn start() -> Host {
        let root = TestRoot::new();
        let mut owners = Vec::new();
        for name in ["virtstoraged", "virtnetworkd", "virtqemud"] {
            owners.push(Daemon::start(name, &root).await);
        }
        let proxy = Daemon::start("virtproxyd", &root).await;
        Host {
            owners,
            proxy,
            root,
        }
    }

    fn addr(&self) -> ProxyAddr {
        ProxyAddr::Unix(self.proxy.socket(SocketKind::ReadWrite))
    }

    fn qemud(&self) -> &Daemon {
        &self.owners[2]
    }
}

// ---------------------------------------------------------------------------
// The simple mix
// ---------------------------------------------------------------------------

/// What the host holds: `domains` domains, `pools` dir pools (defined,
/// not started) and `networks` isolated networks (defined, not started),
/// all made through the proxy.
async fn define_objects(
    c: &mut Client,
    root: &Path,
    domains: usize,
    pools: usize,
    networks: usize,
) {
    for i in 0..domains {
        c.dom
            .define_xml(dom::DefineXmlRequest {
                xml: domain_xml(&format!("load-{i:02}")),
                ..Default::default()
            })
            .await
            .expect("define domain");
    }
    for i in 0..pools {
        c.sto
            .define_pool(sto::DefinePoolRequest {
                xml: format!(
                    "<pool type='dir'><name>lpool{i}</name><target><path>{}</path></target></pool>",
                    root.join(format!("lpool{i}")).display()
                ),
                validate: false,
            })
            .await
            .expect("define pool");
    }
    for i in 0..networks {
        c.net
            .define_network(net::DefineNetworkRequest {
                xml: format!("<network><name>lnet{i}</name><bridge name='vlnet{i}'/></network>"),
                validate: false,
            })
            .await
            .expect("define network");
    }
}

/// The counts the host holds: (domains, pools, networks).
async fn counts(c: &mut Client) -> Result<(usize, usize, usize), tonic::Status> {
    let d = c
        .dom
        .list_all_domains(dom::ListAllDomainsRequest::default())
        .await?
        .into_inner()
        .domains
        .len();
    let p = c
        .sto
        .list_all_pools(sto::ListAllPoolsRequest::default())
        .await?
        .into_inner()
        .pools
        .len();
    let n = c
        .net
        .list_all_networks(net::ListAllNetworksRequest::default())
        .await?
        .into_inner()
        .networks
        .len();
    Ok((d, p, n))
}

/// The call mix: call `i` of a client is, by `i % 5`, ListAllDomains,
/// LookupDomain (by name), GetXml, ListAllPools, ListAllNetworks; each
/// reply is checked against what is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ListDomains,
    Lookup,
    GetXml,
    ListPools,
    ListNetworks,
}

const KINDS: [Kind; 5] = [
    Kind::ListDomains,
    Kind::Lookup,
    Kind::GetXml,
    Kind::ListPools,
    Kind::ListNetworks,
];

/// What every reply is checked against.
#[derive(Clone, Copy, Debug)]
struct Expect {
    domains: usize,
    pools: usize,
    networks: usize,
}

async fn one_call(c: &mut Client, kind: Kind, n: usize, want: Expect) -> Result<(), String> {
    let name = format!("load-{:02}", n % want.domains);
    let st = |e: tonic::Status| format!("{kind:?}: {:?} {}", e.code(), e.message());
    match kind {
        Kind::ListDomains => {
            let got = c
                .dom
                .list_all_domains(dom::ListAllDomainsRequest::default())
                .await
                .map_err(st)?
                .into_inner()
                .domains
                .len();
            if got != want.domains {
                return Err(format!("listed {got} domains, not {}", want.domains));
            }
        }
        Kind::Lookup => {
            let d = c
                .dom
                .lookup_domain(dom::LookupDomainRequest {
                    domain: by_name(&name),
                })
                .await
                .map_err(st)?
                .into_inner()
                .domain
                .map(|d| d.name);
            if d.as_deref() != Some(name.as_str()) {
                return Err(format!("lookup of {name} gave {d:?}"));
            }
        }
        Kind::GetXml => {
            let xml = c
                .dom
                .get_xml(dom::GetXmlRequest {
                    domain: by_name(&name),
                    ..Default::default()
                })
                .await
                .map_err(st)?
                .into_inner()
                .xml;
            if !xml.contains(&format!("<name>{name}</name>")) {
                return Err(format!("XML of {name}: {xml}"));
            }
        }
        Kind::ListPools => {
            let got = c
                .sto
                .list_all_pools(sto::ListAllPoolsRequest::default())
                .await
                .map_err(st)?
                .into_inner()
                .pools
                .len();
            if got != want.pools {
                return Err(format!("listed {got} pools, not {}", want.pools));
            }
        }
        Kind::ListNetworks => {
            let got = c
                .net
                .list_all_networks(net::ListAllNetworksRequest::default())
                .await
                .map_err(st)?
                .into_inner()
                .networks
                .len();
            if got != want.networks {
                return Err(format!("listed {got} networks, not {}", want.networks));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A client that never reads its streams
// ---------------------------------------------------------------------------

/// Bound on each call of the other clients: generous (two shared cores,
/// debug builds); a stall shows as a timeout here, never as a slow pass.
const CALL_BOUND: Duration = Duration::from_secs(10);

/// Domains defined for the simple mix.
const DOMAINS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_its_streams_does_not_stall_the_others() {
    let host = Host::start().await;
    let addr = host.addr();
    let mut setup = Client::new(&addr).await;
    define_objects(&mut setup, host.root.path(), DOMAINS, 0, 0).await;
    // A started dir pool with a 256 MiB raw volume (sparse on disk).
    let target = host.root.path().join("slow");
    setup
        .sto
        .define_pool(sto::DefinePoolRequest {
            xml: format!(
                "<pool type='dir'><name>slow</name><target><path>{}</path></target></pool>",
                target.display()
            ),
            validate: false,
        })
        .await
        .expect("define pool");
    setup
        .sto
        .build_pool(sto::BuildPoolRequest {
            pool: pool_ref("slow"),
            ..Default::default()
        })
        .await
        .expect("build pool");
    setup
        .sto
        .start_pool(sto::StartPoolRequest {
            pool: pool_ref("slow"),
            ..Default::default()
        })
        .await
        .expect("start pool");
    const BIG: u64 = 256 << 20;
    setup
        .sto
        .create_volume(sto::CreateVolumeRequest {
            pool: pool_ref("slow"),
            xml: format!(
                "<volume><name>big.img</name><capacity>{BIG}</capacity><allocation>0</allocation>\
                 <target><format type='raw'/></target></volume>"
            ),
            ..Default::default()
        })
        .await
        .expect("create volume");

    // The slow client: an event watch and a download of the whole volume
    // (not sparse: 256 MiB of data chunks), both on its one connection,
    // neither ever polled while the others run.
    let mut slow = Client::new(&addr).await;
    let mut watch = slow
        .dom
        .watch_events(dom::WatchEventsRequest::default())
        .await
        .expect("watch through the proxy")
        .into_inner();
    let mut download = slow
        .sto
        .download_volume(sto::DownloadVolumeRequest {
            volume: vol_ref("slow", "big.img"),
            offset: 0,
            length: 0,
            sparse: false,
        })
        .await
        .expect("download through the proxy")
        .into_inner();
    // A second slow client, with only a download.
    let mut slow2 = Client::new(&addr).await;
    let download2 = slow2
        .sto
        .download_volume(sto::DownloadVolumeRequest {
            volume: vol_ref("slow", "big.img"),
            offset: 0,
            length: 0,
            sparse: false,
        })
        .await
        .expect("second download through the proxy")
        .into_inner();

    // The others: 16 clients, 40 calls each, mutating ones among them
    // (each define and undefine is an event for the unread watch).
    const OTHERS: usize = 16;
    const ROUNDS: usize = 40;
    let mut tasks = Vec::new();
    for k in 0..OTHERS {
        let mut c = Client::new(&addr).await;
        tasks.push(tokio::spawn(async move {
            let want = Expect {
                domains: DOMAINS,
                pools: 1,
                networks: 0,
            };
            let mut samples = Vec::with_capacity(ROUNDS);
            for i in 0..ROUNDS {
                let t = Instant::now();
                let r = tokio::time::timeout(CALL_BOUND, async {
                    match i % 4 {
                        // Define and undefine a domain of its own.
                        0 => {
                            let name = format!("other-{k}-{i}");
                            c.dom
                                .define_xml(dom::DefineXmlRequest {
                                    xml: domain_xml(&name),
                                    ..Default::default()
                                })
                                .await
                                .map_err(|e| format!("define: {e:?}"))?;
                            c.dom
                                .undefine(dom::UndefineRequest {
                                    domain: by_name(&name),
                                    ..Default::default()
                                })
                                .await
                                .map_err(|e| format!("undefine: {e:?}"))?;
                            Ok(())
                        }
                        1 => c
                            .sto
                            .get_volume_info(sto::GetVolumeInfoRequest {
                                volume: vol_ref("slow", "big.img"),
                            })
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("volume info: {e:?}")),
                        2 => one_call(&mut c, Kind::GetXml, i + k, want).await,
                        _ => one_call(&mut c, Kind::ListPools, i, want).await,
                    }
                })
                .await;
                match r {
                    Ok(Ok(())) => samples.push(t.elapsed()),
                    Ok(Err(e)) => return Err(format!("client {k} call {i}: {e}")),
                    Err(_) => {
                        return Err(format!(
                            "client {k} call {i}: no answer within {CALL_BOUND:?}"
                        ));
                    }
                }
            }
            Ok(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        match t.await.expect("client task") {
            Ok(s) => all.extend(s),
            Err(e) => panic!("{e}"),
        }
    }
    print_percentiles("others beside a slow reader", &mut all);

    // The slow client's streams were held, not dropped: they still deliver.
    let first = tokio::time::timeout(CALL_BOUND, download.message())
        .await
        .expect("the download answers once read")
        .expect("download chunk")
        .expect("a chunk");
    assert!(first.chunk.is_some(), "{first:?}");
    let ev = tokio::time::timeout(CALL_BOUND, watch.message())
        .await
        .expect("the watch answers once read")
        .expect("watch stream ok")
        .expect("an event");
    assert!(format!("{ev:?}").contains("other-"), "{ev:?}");
    // And the slow client itself can still call on its connection.
    one_call(
        &mut slow,
        Kind::ListDomains,
        0,
        Expect {
            domains: DOMAINS,
            pools: 1,
            networks: 0,
        },
    )
    .await
    .expect("the slow client's own call");
    drop((watch, download, download2, slow2));
}

// ---------------------------------------------------------------------------
// The proxy restarted under load
// ---------------------------------------------------------------------------

/// Per-client tallies of the loop.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

/// How the proxy goes away.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Term,
    Kill,
}

const LOOPERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_restarted_under_load_loses_nothing_and_clients_recover() {
    let mut host = Host::start().await;
    let addr = host.addr();
    let mut setup = Client::new(&addr).await;
    const DEFINED: usize = 20;
    define_objects(&mut setup, host.root.path(), DEFINED, 2, 2).await;
    let before = counts(&mut setup).await.expect("counts");
    assert_eq!(before, (DEFINED, 2, 2));
    let want = Expect {
        domains: DEFINED,
        pools: 2,
        networks: 2,
    };

    // Clients calling in a loop, each on one client object (one channel)
    // for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Vec<Arc<Tally>> = (0..LOOPERS).map(|_| Arc::default()).collect();
    let errors = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let mut tasks = Vec::new();
    for (k, tally) in tallies.iter().enumerate() {
        let mut c = Client::new(&addr).await;
        let (stop, tally, errors) = (stop.clone(), tally.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                let kind = KINDS[i % KINDS.len()];
                i += 1;
                match tokio::time::timeout(CALL_BOUND, one_call(&mut c, kind, i, want)).await {
                    Ok(Ok(())) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        // Wrong content would be lost state: fail at once.
                        // Transport failures are expected while the proxy
                        // is away. A stream the client opened just after a
                        // SIGTERM'd proxy's final GOAWAY(NO_ERROR) is
                        // refused by h2 with that frame's reason, which
                        // tonic maps to Internal ("h2 protocol error"):
                        // still the connection going away, not an answer.
                        assert!(
                            e.contains("Unavailable")
                                || e.contains("Unknown")
                                || e.contains("Cancelled")
                                || e.contains("h2 protocol error"),
                            "client {k}: {e}"
                        );
                        let class = e.split(": ").take(2).collect::<Vec<_>>().join(": ");
                        *errors
                            .lock()
                            .expect("errors")
                            .entry(class.chars().take(120).collect())
                            .or_default() += 1;
                        // Not a busy loop while the proxy is away.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(_) => panic!("client {k}: a call hung for {CALL_BOUND:?}"),
                }
            }
        }));
    }
    let oks = |t: &[Arc<Tally>]| -> Vec<usize> {
        t.iter().map(|t| t.ok.load(Ordering::Relaxed)).collect()
    };
    let fails = |t: &[Arc<Tally>]| -> Vec<usize> {
        t.iter().map(|t| t.failed.load(Ordering::Relaxed)).collect()
    };
    // Every client is calling successfully.
    assert!(
        wait_until(Duration::from_secs(20), || oks(&tallies)
            .iter()
            .all(|n| *n >= 20))
        .await,
        "clients not all calling: {:?} ok, {:?} failed",
        oks(&tallies),
        fails(&tallies)
    );

    for how in [Stop::Term, Stop::Kill] {
        let ok0 = oks(&tallies);
        let fail0 = fails(&tallies);
        let t_stop = Instant::now();
        match how {
            Stop::Term => {
                host.proxy.sigterm();
                let st = host.proxy.wait_exit(Duration::from_secs(15)).await;
                assert!(
                    st.success(),
                    "virtproxyd exited with {st} on SIGTERM under load; output:\n{}",
                    host.proxy.output()
                );
            }
            Stop::Kill => {
                host.proxy.kill9();
            }
        }
        let down = t_stop.elapsed();
        // While it is away, every client's calls fail.
        assert!(
            wait_until(Duration::from_secs(10), || {
                fails(&tallies).iter().zip(&fail0).all(|(n, f)| n > f)
            })
            .await,
            "calls did not fail with the proxy gone ({how:?}): {:?} failed before, {:?} now",
            fail0,
            fails(&tallies)
        );
        let t_start = Instant::now();
        host.proxy = Daemon::start("virtproxyd", &host.root).await;
        let ready = t_start.elapsed();
        let ok1 = oks(&tallies);
        // The same client objects get through again.
        assert!(
            wait_until(Duration::from_secs(20), || {
                oks(&tallies).iter().zip(&ok1).all(|(n, o)| *n >= o + 20)
            })
            .await,
            "clients did not recover after the restart ({how:?}): {:?} ok at restart, {:?} now; \
             errors: {:?}",
            ok1,
            oks(&tallies),
            errors.lock().expect("errors")
        );
        let recovered = t_start.elapsed();
        let failed: usize = fails(&tallies).iter().zip(&fail0).map(|(n, f)| n - f).sum();
        let ok_during: usize = ok1.iter().zip(&ok0).map(|(n, o)| n - o).sum();
        println!(
            "proxy restart ({how:?}): stopped in {:.0} ms, {failed} calls failed meanwhile \
             ({ok_during} succeeded before the stop took), new proxy ready in {:.0} ms, \
             all {LOOPERS} clients through again {:.0} ms after the spawn",
            ms(down),
            ms(ready),
            ms(recovered)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    println!("errors seen by the clients while the proxy was away:");
    for (e, n) in errors.lock().expect("errors").iter() {
        println!("  {n:>5}  {e}");
    }

    // No state lost: the counts through the new proxy and at the owners.
    let mut fresh = Client::new(&host.addr()).await;
    assert_eq!(counts(&mut fresh).await.expect("counts"), before);
    let mut direct = host.qemud().domain(SocketKind::ReadWrite).await;
    let names: Vec<String> = direct
        .list_all_domains(dom::ListAllDomainsRequest::default())
        .await
        .expect("list direct")
        .into_inner()
        .domains
        .into_iter()
        .filter_map(|d| d.domain.map(|d| d.name))
        .collect();
    let want_names: Vec<String> = (0..DEFINED).map(|i| format!("load-{i:02}")).collect();
    assert_eq!(names, want_names);
    // The old setup client (made before both restarts) works too.
    assert_eq!(counts(&mut setup).await.expect("counts"), before);

    // The killed proxy's daemon connections are gone at the daemon: only
    // the new proxy's (one per client that called) and ours remain.
    let qemud = host.qemud();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = qemud.clients().await.len();
        if seen <= LOOPERS + 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "virtqemud still has {seen} clients"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// Many calls of one TCP client
// ---------------------------------------------------------------------------

/// One client on the proxy's plain TCP listener making 300 small calls on
/// one connection. Guards against the proxy sending DATA frames that the
/// daemon's HTTP/2 layer counts against a per-connection budget (h2 allows
/// 100 empty DATA frames that do not end their stream per connection, then
/// GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames"): a unary call now goes
/// on as one DATA frame that ends the stream, and streams drop empty
/// frames. Before that fix this failed at call 100.
#[tokio::test]
async fn one_tcp_client_makes_three_hundred_calls() {
    let root = TestRoot::new();
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    root.write_config(
        "virtproxyd",
        &format!(
            "listen_tls = 0\nlisten_tcp = 1\nlisten_addr = \"127.0.0.1\"\ntcp_port = \"{port}\"\n"
        ),
    );
    let _qemud = Daemon::start("virtqemud", &root).await;
    let _proxy = Daemon::builder("virtproxyd", &root)
        .arg("--listen")
        .start()
        .await;
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the proxy's TCP port");
    let mut c = DomainServiceClient::new(ch);
    for i in 0..300 {
        c.get_version(dom::GetVersionRequest::default())
            .await
            .unwrap_or_else(|e| panic!("call {i}: {:?} {}", e.code(), e.message()));
    }
}
