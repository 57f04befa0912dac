//! virtstoraged storage benchmark: the RPC floor, qcow2 volume create,
//! list of 100 volumes (and the same list with its reply left undecoded,
//! to split the client's part from the daemon's and the transport's),
//! refresh of a pool of 100 volumes, volume delete,
//! against the release build of virtstoraged on a temporary `VIRT_ROOT`
//! with one `dir` pool.
//!
//! Run with `make bench-storage` (both halves, one table) or
//! `cargo bench -p tests --bench storage [-- --quick]`. Without `--bench`
//! (as under `cargo test --all-targets`) it does nothing. What each metric
//! measures: docs/benchmarks-storage.md. libvirt's half:
//! tests/benches/libvirt_storage.py.
//!
//! Output on stdout: one line per metric, tab-separated,
//! `metric median p90 n unit` (p90 `-` where it has no meaning), and
//! comment lines starting with `#`. Progress goes to stderr.
//!
//! The daemon binary is `virtstoraged` from `VIRT_TEST_BIN_DIR`, else from
//! the profile directory this bench was built into (`target/release` under
//! `cargo bench`); build it first with `cargo build --release -p
//! virtstoraged --bins`. Needs `qemu-img` only for a check of three of the
//! created images (not timed); root is not needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use prost::Message as _;
use proto::storage::v1 as pb;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tests::benchout::{cpu_ms, ms, note, report, report_one};
use tests::{Daemon, SocketKind, TestRoot};
use tonic::transport::Channel;

type Client = StorageServiceClient<Channel>;

/// The pool every metric works on.
const POOL: &str = "bench";
/// Volumes created (and then listed, refreshed, deleted).
const VOLUMES: usize = 100;
/// Capacity of each volume: 1 GiB.
const CAPACITY: u64 = 1 << 30;

/// Round counts (`--quick` divides them).
#[derive(Debug, Clone, Copy)]
struct Rounds {
    /// Pairs of (RPC floor, list) calls.
    list: usize,
    refresh: usize,
}

impl Rounds {
    fn full() -> Rounds {
        Rounds {
            list: 1000,
            refresh: 100,
        }
    }

    fn quick() -> Rounds {
        Rounds {
            list: 200,
            refresh: 20,
        }
    }
}

// ---------------------------------------------------------------------------
// Output (metric lines: tests::benchout)
// ---------------------------------------------------------------------------

fn progress(text: &str) {
    eprintln!("storage bench: {text}");
}

/// Reports the daemon's CPU per call over `calls` calls as `cpu_<metric>`.
fn report_cpu(metric: &str, cpu_before: f64, pid: u32, calls: usize) {
    #[allow(clippy::cast_precision_loss)] // small counts
    let per = (cpu_ms(pid) - cpu_before) / calls as f64;
    report_one(&format!("cpu_{metric}"), per, calls, "ms");
}

// ---------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------

struct Env {
    daemon: Option<Daemon>,
    /// The daemon's pid for the Ctrl-C handler (0: none).
    daemon_pid: Arc<AtomicI32>,
    bin: PathBuf,
    // Last: the directory goes after the daemon is dead.
    root: TestRoot,
}

impl Env {
    fn target(&self) -> PathBuf {
        self.root.path().join("pool")
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").pid()
    }

    /// Spawns virtstoraged and waits until it answers health SERVING on
    /// its read-write socket; returns one connection to it.
    async fn start(&mut self) -> Channel {
        let mut cmd = Command::new(&self.bin);
        cmd.env("VIRT_ROOT", self.root.path())
            .env(
                "RUST_LOG",
                std::env::var("VIRT_BENCH_LOG").unwrap_or("info".into()),
            )
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        let mut d = Daemon::spawn_command("virtstoraged", self.root.path(), cmd);
        self.daemon_pid.store(
            i32::try_from(d.pid()).expect("pid fits i32"),
            Ordering::SeqCst,
        );
        d.wait_ready().await;
        let ch = d.channel_once(SocketKind::ReadWrite).await;
        self.daemon = Some(d);
        ch
    }

    async fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop().await;
        }
    }
}

// ---------------------------------------------------------------------------
// Storage calls
// ---------------------------------------------------------------------------

fn pool_ref() -> Option<pb::PoolRef> {
    Some(pb::PoolRef {
        by: Some(pb::pool_ref::By::Name(POOL.to_owned())),
    })
}

fn vol_ref(name: &str) -> Option<pb::VolumeRef> {
    Some(pb::VolumeRef {
        by: Some(pb::volume_ref::By::PoolVolume(pb::PoolVolume {
            pool: POOL.to_owned(),
            name: name.to_owned(),
        })),
    })
}

/// The volume XML of libvirt_storage.py.
fn vol_xml(name: &str) -> String {
    format!(
        "<volume><name>{name}</name><capacity>{CAPACITY}</capacity>\
         <allocation>0</allocation><target><format type='qcow2'/></target></volume>"
    )
}

fn vol_name(i: usize) -> String {
    format!("v{i:03}.qcow2")
}

async fn define_and_start(c: &mut Client, target: &Path) {
    c.define_pool(pb::DefinePoolRequest {
        xml: format!(
            "<pool type='dir'><name>{POOL}</name><target><path>{}</path></target></pool>",
            target.display()
        ),
        validate: true,
    })
    .await
    .unwrap_or_else(|e| panic!("define pool: {}", e.message()));
    c.build_pool(pb::BuildPoolRequest {
        pool: pool_ref(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("build pool: {}", e.message()));
    c.start_pool(pb::StartPoolRequest {
        pool: pool_ref(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start pool: {}", e.message()));
}

async fn create(c: &mut Client, name: &str) {
    c.create_volume(pb::CreateVolumeRequest {
        pool: pool_ref(),
        xml: vol_xml(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create {name}: {}", e.message()));
}

async fn delete(c: &mut Client, name: &str) {
    c.delete_volume(pb::DeleteVolumeRequest {
        volume: vol_ref(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("delete {name}: {}", e.message()));
}

async fn list(c: &mut Client) -> Vec<pb::Volume> {
    c.list_all_volumes(pb::ListAllVolumesRequest { pool: pool_ref() })
        .await
        .expect("list volumes")
        .into_inner()
        .volumes
}

/// ListAllVolumes on `raw`, its reply taken as bytes and not decoded:
/// the length of the reply message.
async fn list_undecoded(raw: &mut tonic::client::Grpc<Channel>) -> usize {
    raw.ready().await.expect("channel ready");
    raw.unary(
        tonic::Request::new(pb::ListAllVolumesRequest { pool: pool_ref() }),
        http::uri::PathAndQuery::from_static("/virt.storage.v1.StorageService/ListAllVolumes"),
        UndecodedCodec,
    )
    .await
    .expect("list volumes, undecoded")
    .into_inner()
}

/// Encodes the request as the generated client does; takes the reply
/// message's length and skips its bytes.
#[derive(Clone, Copy, Debug)]
struct UndecodedCodec;

impl tonic::codec::Codec for UndecodedCodec {
    type Encode = pb::ListAllVolumesRequest;
    type Decode = usize;
    type Encoder = tonic_prost::ProstEncoder<pb::ListAllVolumesRequest>;
    type Decoder = UndecodedCodec;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<pb::ListAllVolumesRequest, pb::ListAllVolumesResponse>::default()
            .encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        UndecodedCodec
    }
}

impl tonic::codec::Decoder for UndecodedCodec {
    type Item = usize;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<usize>, tonic::Status> {
        use prost::bytes::Buf as _;
        let n = src.remaining();
        src.advance(n);
        Ok(Some(n))
    }
}

async fn floor(c: &mut Client) {
    let a = c
        .get_pool_autostart(pb::GetPoolAutostartRequest { pool: pool_ref() })
        .await
        .expect("autostart")
        .into_inner();
    assert!(!a.autostart);
}

async fn refresh(c: &mut Client) {
    c.refresh_pool(pb::RefreshPoolRequest { pool: pool_ref() })
        .await
        .expect("refresh");
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// `vol_create_qcow2`: [`VOLUMES`] creates, each timed.
async fn bench_create(env: &Env, c: &mut Client) {
    progress(&format!("create {VOLUMES} qcow2 volumes of 1 GiB"));
    // Warm-up: one create and delete (page cache, first allocations).
    for i in 0..3 {
        let n = format!("warm-{i}.qcow2");
        create(c, &n).await;
        delete(c, &n).await;
    }
    let pid = env.pid();
    let mut v = Vec::with_capacity(VOLUMES);
    let cpu = cpu_ms(pid);
    for i in 0..VOLUMES {
        let n = vol_name(i);
        let t0 = Instant::now();
        create(c, &n).await;
        v.push(ms(t0.elapsed()));
    }
    report_cpu("vol_create_qcow2", cpu, pid, v.len());
    report("vol_create_qcow2", &v, "ms");
    // The images are valid (not timed).
    for i in [0, VOLUMES / 2, VOLUMES - 1] {
        let p = env.target().join(vol_name(i));
        match Command::new("qemu-img").arg("check").arg(&p).output() {
            Ok(o) => assert!(
                o.status.success(),
                "qemu-img check {}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => note(&format!("qemu-img check not run: {e}")),
        }
    }
}

/// `rpc_floor`, `list_100` and `list_100_undecoded`: the three calls in
/// turn, each timed, so that all see the same machine; the paired
/// differences split the list's time into what the transport and the
/// daemon add to the floor (`undecoded_minus_floor`) and what this client
/// spends turning the reply into `Volume`s and dropping them
/// (`list_100_minus_undecoded`).
async fn bench_list(env: &Env, c: &mut Client, ch: Channel, r: Rounds) {
    progress(&format!(
        "RPC floor (GetPoolAutostart), list of {VOLUMES} volumes, the list undecoded"
    ));
    let vols = list(c).await;
    assert_eq!(vols.len(), VOLUMES);
    assert!(
        vols.windows(2).all(|w| w[0].name < w[1].name),
        "sorted by name"
    );
    assert!(vols.iter().all(|v| v.pool == POOL && !v.path.is_empty()));
    // The reply as prost encodes it: its length checks the undecoded
    // calls, its bytes feed the client decode timing below.
    let reply = pb::ListAllVolumesResponse { volumes: vols }.encode_to_vec();
    let reply_len = reply.len();
    let mut raw = tonic::client::Grpc::new(ch);
    for _ in 0..20 {
        floor(c).await;
        list(c).await;
        assert_eq!(list_undecoded(&mut raw).await, reply_len);
    }

    let (mut floors, mut lists, mut raws) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..r.list {
        // Rotate which goes first.
        for kind in (0..3).map(|k| (k + i) % 3) {
            let t0 = Instant::now();
            match kind {
                0 => {
                    floor(c).await;
                    floors.push(ms(t0.elapsed()));
                }
                1 => {
                    // The reply is dropped inside the timing, as the
                    // Python half's `len(pool.listAllVolumes())` does.
                    let n = list(c).await.len();
                    lists.push(ms(t0.elapsed()));
                    assert_eq!(n, VOLUMES);
                }
                _ => {
                    let n = list_undecoded(&mut raw).await;
                    raws.push(ms(t0.elapsed()));
                    assert_eq!(n, reply_len);
                }
            }
        }
    }
    let f = report("rpc_floor", &floors, "ms");
    let l = report("list_100", &lists, "ms");
    let u = report("list_100_undecoded", &raws, "ms");
    let diffs: Vec<f64> = lists.iter().zip(&floors).map(|(l, f)| l - f).collect();
    report("list_100_minus_floor", &diffs, "ms");
    let diffs: Vec<f64> = raws.iter().zip(&floors).map(|(u, f)| u - f).collect();
    report("undecoded_minus_floor", &diffs, "ms");
    let diffs: Vec<f64> = lists.iter().zip(&raws).map(|(l, u)| l - u).collect();
    report("list_100_minus_undecoded", &diffs, "ms");
    note(&format!(
        "list minus RPC floor: medians {l:.4} - {f:.4} = {:.4} ms, of which the transport and \
         the daemon {:.4} and the client's decode and drop {:.4}; paired medians above",
        l - f,
        u - f,
        l - u
    ));

    // The daemon's CPU per call, read around each call (another loop, so
    // that reading /proc does not show in the times above).
    let pid = env.pid();
    let (mut floors, mut lists) = (Vec::new(), Vec::new());
    for i in 0..r.list {
        for kind in [i % 2, 1 - i % 2] {
            let c0 = cpu_ms(pid);
            if kind == 0 {
                floor(c).await;
                floors.push(cpu_ms(pid) - c0);
            } else {
                list(c).await;
                lists.push(cpu_ms(pid) - c0);
            }
        }
    }
    report("cpu_rpc_floor", &floors, "ms");
    report("cpu_list_100", &lists, "ms");
    let diffs: Vec<f64> = lists.iter().zip(&floors).map(|(l, f)| l - f).collect();
    report("cpu_list_100_minus_floor", &diffs, "ms");

    // What decoding the reply costs this client (in the list times above).
    let mut v = Vec::with_capacity(r.list);
    for _ in 0..r.list {
        let t0 = Instant::now();
        let d = pb::ListAllVolumesResponse::decode(reply.as_slice()).expect("decode");
        v.push(ms(t0.elapsed()));
        assert_eq!(d.volumes.len(), VOLUMES);
    }
    report("client_decode_100", &v, "ms");
    note(&format!(
        "the reply to a list of {VOLUMES} is {} bytes",
        reply.len()
    ));
}

/// `refresh_100`: refresh of the pool holding [`VOLUMES`] volumes.
async fn bench_refresh(env: &Env, c: &mut Client, r: Rounds) {
    progress(&format!("refresh of a pool of {VOLUMES} volumes"));
    for _ in 0..5 {
        refresh(c).await;
    }
    let pid = env.pid();
    let mut v = Vec::with_capacity(r.refresh);
    let cpu = cpu_ms(pid);
    for _ in 0..r.refresh {
        let t0 = Instant::now();
        refresh(c).await;
        v.push(ms(t0.elapsed()));
    }
    report_cpu("refresh_100", cpu, pid, v.len());
    report("refresh_100", &v, "ms");
    assert_eq!(list(c).await.len(), VOLUMES);
}

/// `vol_delete`: every volume deleted, each timed.
async fn bench_delete(env: &Env, c: &mut Client) {
    progress(&format!("delete {VOLUMES} volumes"));
    let pid = env.pid();
    let mut v = Vec::with_capacity(VOLUMES);
    let cpu = cpu_ms(pid);
    for i in 0..VOLUMES {
        let n = vol_name(i);
        let t0 = Instant::now();
        delete(c, &n).await;
        v.push(ms(t0.elapsed()));
    }
    report_cpu("vol_delete", cpu, pid, v.len());
    report("vol_delete", &v, "ms");
    assert!(list(c).await.is_empty());
    let left: Vec<_> = std::fs::read_dir(env.target())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left in the pool: {left:?}");
}

async fn run(env: &mut Env, r: Rounds) {
    let t0 = Instant::now();
    let ch = env.start().await;
    let mut c = StorageServiceClient::new(ch.clone());
    note(&format!(
        "virtstoraged {} on {} (start until health SERVING: {:.0} ms)",
        env.bin.display(),
        env.root.path().display(),
        ms(t0.elapsed())
    ));
    let target = env.target();
    define_and_start(&mut c, &target).await;
    bench_create(env, &mut c).await;
    bench_list(env, &mut c, ch, r).await;
    bench_refresh(env, &mut c, r).await;
    bench_delete(env, &mut c).await;
    progress("cleaning up");
    drop(c);
    env.stop().await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "storage bench: not run (it needs a release virtstoraged): `make bench-storage` or \
             `cargo bench -p tests --bench storage`"
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if quick {
        Rounds::quick()
    } else {
        Rounds::full()
    };
    let dir = std::env::var_os("VIRT_TEST_BIN_DIR").map_or_else(tests::bin_dir, PathBuf::from);
    let bin = dir.join("virtstoraged");
    if !bin.is_file() {
        eprintln!(
            "storage bench: no {}; build it with `cargo build --release -p virtstoraged --bins`",
            bin.display()
        );
        std::process::exit(2);
    }
    // One thread: a multi-thread runtime adds cross-thread wake-ups to
    // every call, which is the client's cost, not the daemon's.
    // libvirt's half is single-threaded too.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut env = Env {
        daemon: None,
        daemon_pid: Arc::new(AtomicI32::new(0)),
        bin,
        root: TestRoot::new(),
    };
    // Ctrl-C: kill the daemon, remove the root, exit.
    {
        let pid = env.daemon_pid.clone();
        let root = env.root.path().to_path_buf();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let p = pid.load(Ordering::SeqCst);
                if p > 0 {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = std::fs::remove_dir_all(&root);
                eprintln!("storage bench: interrupted; cleaned up");
                std::process::exit(130);
            }
        });
    }
    note(&format!(
        "virtstoraged storage bench: {} rounds, {VOLUMES} volumes",
        if quick { "quick" } else { "full" }
    ));
    rt.block_on(run(&mut env, rounds));
    drop(env);
    drop(rt);
}
