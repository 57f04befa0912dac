//! Faults, end to end on real parts (issue 9, item 5): a full disk under
//! definitions, status files and a pool; `qemu-img` failing; QEMU killed
//! while a device is being plugged; dnsmasq killed under a running
//! network; a peer daemon down during a call. Each fault must give a
//! clear error, leave the earlier state intact and nothing half written,
//! and the same operation must work once the fault is gone.
//!
//! - a full disk: definitions of domains, pools and networks
//!   (`a_full_disk_refuses_definitions_and_keeps_the_old_ones`), status
//!   files of a start, a suspend and a resume
//!   (`a_full_run_dir_fails_a_start_cleanly_and_undoes_suspend_and_resume`),
//!   of a network start
//!   (`a_full_run_dir_fails_a_network_start_and_leaves_nothing`) and of a
//!   start with a network NIC
//!   (`a_full_run_dir_fails_a_nic_start_and_releases_its_port`), volumes
//!   (`volume_creates_in_a_full_pool_leave_no_partial_file`);
//! - `qemu-img` refusing a volume
//!   (`qemu_img_failing_is_reported_with_its_stderr_and_leaves_nothing`);
//! - QEMU killed while its `device_add` is unanswered
//!   (`qemu_killed_during_a_nic_hotplug_releases_everything`, through a
//!   QMP relay that holds QEMU's replies);
//! - dnsmasq killed (`dnsmasq_killed_is_restarted_and_leases_survive`);
//! - a peer daemon down or dying under a call
//!   (`a_peer_daemon_down_fails_a_start_cleanly_and_a_lookup_is_retried`,
//!   `proxy_backend_dying_under_a_call_is_unavailable_then_back`).
//!
//! Full disks are small tmpfs mounts over parts of a test root
//! ([`Tmpfs`]), filled with a file and freed again; they are unmounted
//! when the guard drops, also when a test fails. Host leftovers (QEMUs,
//! dnsmasqs, daemons virtqemud started, bridges, namespaces, nftables
//! tables) go with [`HostGuard`].

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as npb;
use proto::storage::v1 as spb;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tests::calls::{
    define_started_pool, domain_ref as dom, domain_xml, network_ref as net_ref, pool_ref,
    start_isolated_network,
};
use tests::guest::{GuestKind, UP_LINE, build_image};
use tests::netns::{self, NetNs, Veth};
use tests::{Daemon, SocketKind, TestRoot, wait_until, wait_until_async};
use tonic::Code;
use tonic::transport::Channel;

type Dom = DomainServiceClient<Channel>;
type Sto = StorageServiceClient<Channel>;

const SHUTOFF: i32 = pb::DomainState::Shutoff as i32;
const RUNNING: i32 = pb::DomainState::Running as i32;
const PAUSED: i32 = pb::DomainState::Paused as i32;
/// VIR_DOMAIN_PAUSED_USER.
const PAUSED_USER: i32 = 1;
/// VIR_DOMAIN_RUNNING_UNPAUSED.
const RUNNING_UNPAUSED: i32 = 5;
/// VIR_DOMAIN_SHUTOFF_CRASHED.
const SHUTOFF_CRASHED: i32 = 3;

// ---------------------------------------------------------------------------
// A small file system that fills up
// ---------------------------------------------------------------------------

/// A tmpfs of a few pages mounted over `dir` (made if missing), which
/// [`Tmpfs::fill`] fills up; unmounted (lazily, should a daemon still
/// hold it) on drop.
struct Tmpfs {
    dir: PathBuf,
    filler: PathBuf,
}

const PAGE: u64 = 4096;

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        Tmpfs {
            dir: dir.to_path_buf(),
            filler: dir.join(".filler"),
        }
    }

    /// Fills the file system until only `pages` pages are free.
    fn fill(&self, pages: u64) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("filler");
        let chunk = vec![0xa5u8; PAGE as usize];
        loop {
            match f.write(&chunk) {
                Ok(n) if n == chunk.len() => {}
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", self.dir.display()),
            }
        }
        let len = f.metadata().expect("filler size").len();
        let keep = (len / PAGE).saturating_sub(pages) * PAGE;
        f.set_len(keep).expect("free pages");
        assert_eq!(
            self.free_pages(),
            pages,
            "free pages in {}",
            self.dir.display()
        );
    }

    /// Frees what [`Tmpfs::fill`] took.
    fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }

    fn free_pages(&self) -> u64 {
        nix::sys::statvfs::statvfs(&self.dir)
            .map(|s| s.blocks_available())
            .expect("statvfs")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The names in `dir` (sorted), the filler left out.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".filler")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn no_space(e: &tonic::Status) -> bool {
    e.message().contains("No space left on device")
}

// ---------------------------------------------------------------------------
// Host clean-up and unique names for network tests
// ---------------------------------------------------------------------------

/// A tag unique to `root` (6 characters of its random suffix).
fn tag_of(root: &TestRoot) -> String {
    root.path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("virt-t000000")
        .chars()
        .rev()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A 10.x.y.0/24 subnet of the test: `(x, y)`.
fn subnet_of(tag: &str) -> (u8, u8) {
    let h = tag
        .bytes()
        .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
    (
        100 + u8::try_from(h % 100).unwrap_or(0),
        u8::try_from((h / 100) % 250).unwrap_or(0),
    )
}

/// virtnetworkd with the isolated network `lan` started on the bridge
/// `<prefix><tag>0`, its rules in the nftables table `<prefix>_<tag>`; what
/// it leaves on the host goes with the guard, dropped last.
struct Lan {
    bridge: String,
    table: String,
    /// virtnetworkd's read-write socket.
    socket: PathBuf,
    netd: Daemon,
    _guard: HostGuard,
}

impl Lan {
    async fn start(root: &TestRoot, prefix: &str) -> Lan {
        let tag = tag_of(root);
        let (a, b) = subnet_of(&tag);
        let bridge = format!("{prefix}{tag}0");
        let table = format!("{prefix}_{tag}");
        let guard = HostGuard {
            root: root.path().to_path_buf(),
            links: vec![bridge.clone()],
            netns: Vec::new(),
            table: table.clone(),
        };
        let netd = Daemon::builder("virtnetworkd", root)
            .env("VIRT_NETWORK_NFT_TABLE", &table)
            .start()
            .await;
        let mut n = netd.network(SocketKind::ReadWrite).await;
        start_isolated_network(&mut n, "lan", &bridge, &format!("10.{a}.{b}.1")).await;
        Lan {
            bridge,
            table,
            socket: root.socket("virtnetworkd", SocketKind::ReadWrite),
            netd,
            _guard: guard,
        }
    }

    /// How many ports of `lan` virtnetworkd holds, asked on a new
    /// connection (virtnetworkd may have been restarted).
    async fn ports(&self) -> usize {
        npb::network_service_client::NetworkServiceClient::new(
            tests::channel_to(&self.socket).await,
        )
        .list_all_ports(npb::ListAllPortsRequest {
            network: net_ref("lan"),
        })
        .await
        .expect("ports")
        .into_inner()
        .ports
        .len()
    }
}

/// Removes what a test's networks and guests may leave on the host:
/// QEMUs and dnsmasqs of its root, bridges, taps, namespaces, its
/// nftables table, daemons started by virtqemud.
struct HostGuard {
    root: PathBuf,
    links: Vec<String>,
    netns: Vec<String>,
    table: String,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        let needle = self.root.display().to_string();
        // Daemons virtqemud started first: a virtnetworkd still running
        // would start the dnsmasq killed below again.
        for d in ["virtstoraged", "virtnetworkd"] {
            if let Some(pid) = std::fs::read_to_string(self.root.join(format!("run/{d}.pid")))
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                if String::from_utf8_lossy(&env).contains(&needle) {
                    kill9(pid);
                    let _ = wait_gone(pid);
                }
            }
        }
        tests::procs::kill_under(&self.root, &["qemu-system", "dnsmasq"]);
        for n in &self.netns {
            netns::ip_quiet(&["netns", "del", n]);
        }
        for l in &self.links {
            netns::ip_quiet(&["link", "del", l]);
        }
        for fam in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", fam, &self.table])
                .output();
        }
    }
}

/// Waits until `pid` is stopped (SIGSTOP took effect).
async fn stopped(pid: i32) {
    let is_stopped = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with(['T', 't']))
            })
            .unwrap_or(false)
    };
    assert!(
        wait_until(Duration::from_secs(5), is_stopped).await,
        "{pid} stopped"
    );
}

/// Waits (bounded, blocking) until `pid` has exited; whether it did.
fn wait_gone(pid: i32) -> bool {
    tests::wait_until_blocking(Duration::from_secs(5), || !tests::procs::alive(pid))
}

// ---------------------------------------------------------------------------
// dnsmasq killed
// ---------------------------------------------------------------------------

/// The live dnsmasq of network `net` per its pid file, if any.
fn dnsmasq_of(root: &TestRoot, net: &str) -> Option<i32> {
    std::fs::read_to_string(
        root.paths()
            .driver_run_dir("network")
            .join(format!("{net}.pid")),
    )
    .ok()
    .and_then(|t| t.trim().parse().ok())
    .filter(|p| tests::procs::alive(*p))
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Waits until network `net` has a live dnsmasq other than `old`.
async fn new_dnsmasq(root: &TestRoot, net: &str, old: i32, within: Duration) -> Option<i32> {
    let mut found = None;
    wait_until(within, || {
        found = dnsmasq_of(root, net).filter(|p| *p != old);
        found.is_some()
    })
    .await;
    found
}

/// dnsmasq killed with SIGKILL under a running network: virtnetworkd
/// sees it die (pidfd) and starts it again at once; a second and third
/// death in a row are restarted after a back-off; the lease a guest had
/// is still listed, the new dnsmasq knows it (the guest's renewal is
/// acknowledged, another client asking for that address is refused), and
/// after a kill -9 of virtnetworkd the adopted dnsmasq is supervised too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_killed_is_restarted_and_leases_survive() {
    let root = TestRoot::new();
    // dnsmasq re-reads its hosts files as 'nobody'.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod root");
    let tag = tag_of(&root);
    let (a, b) = subnet_of(&tag);
    let bridge = format!("vf{tag}0");
    let ns_name = format!("vf{tag}n");
    let host_if = format!("vf{tag}h");
    let table = format!("vf_{tag}");
    let _guard = HostGuard {
        root: root.path().to_path_buf(),
        links: vec![bridge.clone(), host_if.clone()],
        netns: vec![ns_name.clone()],
        table: table.clone(),
    };
    let netd = |root: &TestRoot| {
        Daemon::builder("virtnetworkd", root)
            .env("VIRT_NETWORK_NFT_TABLE", &table)
            .env("RUST_LOG", "info,virtnetworkd=debug")
            .start()
    };
    let mut d = netd(&root).await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    let gw = Ipv4Addr::new(10, a, b, 1);
    let at = |last: u8| Ipv4Addr::new(10, a, b, last);
    c.define_network(npb::DefineNetworkRequest {
        xml: format!(
            "<network><name>lan</name><forward mode='nat'/><bridge name='{bridge}'/>\
             <ip address='{gw}' prefix='24'><dhcp><range start='{}' end='{}'/></dhcp></ip></network>",
            at(100),
            at(150)
        ),
        validate: false,
    })
    .await
    .expect("define");
    c.start_network(npb::StartNetworkRequest {
        network: net_ref("lan"),
    })
    .await
    .expect("start");
    let first = dnsmasq_of(&root, "lan").expect("dnsmasq runs");

    // A guest takes a dynamic lease (dnsmasq's ping check: ~3 s).
    let mac = "52:54:00:f0:0d:01";
    let ns = NetNs::new(&ns_name);
    let _veth = Veth::into_bridge(&ns, &host_if, "eth0", mac, &bridge);
    let lease = tokio::task::block_in_place(|| {
        netns::dhcp_lease(&ns, "eth0", mac, Some("guest"), Duration::from_secs(20))
    })
    .expect("lease");
    let listed = |c: npb::network_service_client::NetworkServiceClient<_>| async move {
        let mut c = c;
        c.get_dhcp_leases(npb::GetDhcpLeasesRequest {
            network: net_ref("lan"),
            mac: None,
        })
        .await
        .expect("leases")
        .into_inner()
        .leases
    };
    assert!(
        wait_until_async(Duration::from_secs(5), || {
            let c = c.clone();
            let ip = lease.ip.to_string();
            async move { listed(c).await.iter().any(|l| l.ipaddr == ip) }
        })
        .await,
        "the lease is listed"
    );
    let expiry_before = listed(c.clone()).await[0].expiry_time;

    // Killed: a new dnsmasq within about a second (bounded generously:
    // the machine is shared).
    let t = Instant::now();
    kill9(first);
    let second = new_dnsmasq(&root, "lan", first, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("dnsmasq not restarted; virtnetworkd said:\n{}", d.output()));
    let restart_ms = t.elapsed().as_millis();
    // The status file names it (a restarted daemon adopts that one).
    let status_file = root.paths().driver_run_dir("network").join("lan.xml");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(
            &status_file
        )
        .unwrap_or_default()
        .contains(&format!("pid='{second}'")))
        .await,
        "{:?}",
        std::fs::read_to_string(&status_file)
    );
    // The lease is still listed, and the new dnsmasq serves it: the
    // guest renews from its address, and the address is not given to
    // another client.
    let now = listed(c.clone()).await;
    assert!(
        now.iter()
            .any(|l| l.ipaddr == lease.ip.to_string() && l.mac == mac),
        "{now:?}"
    );
    ns.ip(&["addr", "add", &format!("{}/24", lease.ip), "dev", "eth0"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = tokio::task::block_in_place(|| {
        netns::dhcp_request(
            &ns,
            "eth0",
            mac,
            lease.ip,
            netns::Request::Renew,
            Duration::from_secs(10),
        )
    })
    .expect("an answer to the renewal")
    .expect("the renewal is acknowledged, not refused");
    assert_eq!(renewed.ip, lease.ip);
    // dnsmasq runs the lease helper for the renewal: the listed expiry
    // moves on (the renewal came at least a second after the lease).
    assert!(
        wait_until_async(Duration::from_secs(5), || {
            let c = c.clone();
            async move {
                listed(c)
                    .await
                    .iter()
                    .any(|l| l.mac == mac && l.expiry_time > expiry_before)
            }
        })
        .await,
        "the renewal went through the new dnsmasq's lease helper: {:?}",
        listed(c.clone()).await
    );
    ns.ip(&["addr", "flush", "dev", "eth0"]);
    let other = tokio::task::block_in_place(|| {
        netns::dhcp_request(
            &ns,
            "eth0",
            "52:54:00:f0:0d:02",
            lease.ip,
            netns::Request::InitReboot,
            Duration::from_secs(10),
        )
    });
    assert!(
        matches!(other, Ok(None)),
        "another client asking for the guest's address: {other:?}"
    );

    // Dying again right away: restarted after a back-off, and again.
    let mut prev = second;
    for round in 0..2 {
        kill9(prev);
        prev = new_dnsmasq(&root, "lan", prev, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: dnsmasq not restarted; virtnetworkd said:\n{}",
                    d.output()
                )
            });
    }
    let out = d.output();
    assert!(
        out.contains("restarting it in 500 ms") && out.contains("restarting it in 1000 ms"),
        "the quick deaths are backed off:\n{out}"
    );

    // A kill -9 of virtnetworkd: the restarted daemon adopts this dnsmasq
    // and supervises it too.
    d.kill9();
    d = netd(&root).await;
    let c = d.network(SocketKind::ReadWrite).await;
    assert_eq!(dnsmasq_of(&root, "lan"), Some(prev), "adopted as it was");
    kill9(prev);
    assert!(
        new_dnsmasq(&root, "lan", prev, Duration::from_secs(10))
            .await
            .is_some(),
        "the adopted dnsmasq is supervised; virtnetworkd said:\n{}",
        d.output()
    );
    assert!(
        listed(c.clone())
            .await
            .iter()
            .any(|l| l.ipaddr == lease.ip.to_string())
    );

    // Destroy ends it for good: nothing restarts it.
    let last = dnsmasq_of(&root, "lan").expect("dnsmasq");
    let mut c = c;
    c.destroy_network(npb::DestroyNetworkRequest {
        network: net_ref("lan"),
    })
    .await
    .expect("destroy");
    assert!(wait_until(Duration::from_secs(5), || !tests::procs::alive(last)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dnsmasq_of(&root, "lan"), None, "no dnsmasq after destroy");
    eprintln!("faults: dnsmasq restarted {restart_ms} ms after SIGKILL");
}

// ---------------------------------------------------------------------------
// Domains: helpers
// ---------------------------------------------------------------------------

async fn state(c: &mut Dom, name: &str) -> (i32, i32) {
    let r = c
        .get_state(pb::GetStateRequest { domain: dom(name) })
        .await
        .expect("state")
        .into_inner();
    (r.state, r.reason)
}

async fn start(c: &mut Dom, name: &str) -> Result<(), tonic::Status> {
    c.start(pb::StartRequest {
        domain: dom(name),
        ..Default::default()
    })
    .await
    .map(|_| ())
}

async fn destroy(c: &mut Dom, name: &str) {
    c.destroy(pb::DestroyRequest {
        domain: dom(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("destroy {name}: {}", e.message()));
}

/// The QEMU processes whose command line names `root` and guest `name`.
fn qemus(root: &Path, name: &str) -> Vec<i32> {
    let guest = format!("guest={name},");
    tests::procs::processes("qemu-system", &root.display().to_string())
        .into_iter()
        .filter(|(_, args)| args.iter().any(|a| a.contains(&guest)))
        .map(|(pid, _)| pid)
        .collect()
}

/// Nothing of a start is left for domain `name`: no QEMU, no status file
/// (nor temporary one), no domain directory.
fn nothing_left(root: &TestRoot, name: &str) {
    let p = root.paths();
    assert!(qemus(root.path(), name).is_empty(), "a QEMU of {name} runs");
    let run = names_in(&p.driver_run_dir("qemu"));
    assert!(
        !run.iter().any(|n| n.contains(&format!("{name}.xml"))),
        "status files left: {run:?}"
    );
    let dirs = names_in(&p.driver_state_dir("qemu"));
    assert!(
        !dirs.iter().any(|n| n.starts_with("domain-")),
        "domain directories left: {dirs:?}"
    );
}

// ---------------------------------------------------------------------------
// Peer daemons down
// ---------------------------------------------------------------------------

/// A broken configuration file keeps daemon `name` from starting (it
/// exits at once with a clear message): a peer that is down and cannot be
/// brought up.
fn break_config(root: &TestRoot, name: &str) {
    root.write_config(name, "max_clients = \"broken\n");
}

fn mend_config(root: &TestRoot, name: &str) {
    let _ = std::fs::remove_file(root.config_file(name));
}

/// virtstoraged and then virtnetworkd down (stopped, and unable to start
/// when virtqemud tries): a start of a domain with a volume disk and a
/// network NIC fails at once with UNAVAILABLE naming the daemon, its
/// socket and why it would not start, and leaves nothing behind; once the
/// daemon can run, the same start works (virtqemud starts it). Then
/// virtstoraged dies in the middle of the start's volume lookup: the
/// lookup is read-only, virtqemud tries it again on a new virtstoraged,
/// and the start succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_daemon_down_fails_a_start_cleanly_and_a_lookup_is_retried() {
    let root = TestRoot::new();
    // The network and the storage pool with the guest (autostart).
    let mut lan = Lan::start(&root, "vp").await;
    let table = lan.table.clone();
    let mut storaged = Daemon::start("virtstoraged", &root).await;
    let pool_dir = root.path().join("pool");
    std::fs::create_dir_all(&pool_dir).expect("pool dir");
    build_image(&pool_dir.join("vm.img"), GuestKind::IgnoresPowerButton).expect("image");
    let mut s = storaged.storage(SocketKind::ReadWrite).await;
    define_started_pool(&mut s, "guests", &pool_dir).await;
    s.set_pool_autostart(spb::SetPoolAutostartRequest {
        pool: pool_ref("guests"),
        autostart: true,
    })
    .await
    .expect("autostart");

    let qemud = Daemon::builder("virtqemud", &root)
        .env("VIRT_NETWORK_NFT_TABLE", &table)
        .start()
        .await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    let serial = root.path().join("vm.serial");
    c.define_xml(pb::DefineXmlRequest {
        xml: format!(
            "<domain type='qemu'><name>vm</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>\
             <features><acpi/></features><devices>\
             <disk type='volume' device='disk'><driver name='qemu' type='raw'/>\
             <source pool='guests' volume='vm.img'/><target dev='sda' bus='sata'/></disk>\
             <interface type='network'><mac address='52:54:00:ee:00:01'/><source network='lan'/>\
             <model type='virtio'/></interface>\
             <serial type='file'><source path='{}'/><target port='0'/></serial>\
             <memballoon model='none'/></devices></domain>",
            serial.display()
        ),
        validate: true,
    })
    .await
    .unwrap_or_else(|e| panic!("define: {}", e.message()));

    // 1. virtstoraged down and unable to start.
    storaged.stop().await;
    break_config(&root, "virtstoraged");
    let e = start(&mut c, "vm").await.expect_err("storage is down");
    let sock = root.socket("virtstoraged", SocketKind::ReadWrite);
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("storage daemon virtstoraged")
            && e.message().contains(&sock.display().to_string())
            && e.message().contains("exited")
            && e.message().contains("syntax error"),
        "{e:?}"
    );
    assert_eq!(state(&mut c, "vm").await.0, SHUTOFF);
    nothing_left(&root, "vm");
    assert_eq!(lan.ports().await, 0, "no port taken");
    // Back: virtqemud starts it and the start works.
    mend_config(&root, "virtstoraged");
    start(&mut c, "vm")
        .await
        .unwrap_or_else(|e| panic!("start with storage back: {}", e.message()));
    assert!(
        qemud.output().contains("started virtstoraged"),
        "{}",
        qemud.output()
    );
    assert_eq!(lan.ports().await, 1);
    destroy(&mut c, "vm").await;
    assert!(wait_until_async(Duration::from_secs(5), || async { lan.ports().await == 0 }).await);

    // 2. virtnetworkd down and unable to start.
    lan.netd.stop().await;
    break_config(&root, "virtnetworkd");
    let e = start(&mut c, "vm").await.expect_err("network is down");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("network daemon virtnetworkd")
            && e.message().contains("exited")
            && e.message().contains("syntax error"),
        "{e:?}"
    );
    assert_eq!(state(&mut c, "vm").await.0, SHUTOFF);
    nothing_left(&root, "vm");
    mend_config(&root, "virtnetworkd");
    start(&mut c, "vm")
        .await
        .unwrap_or_else(|e| panic!("start with the network back: {}", e.message()));
    assert_eq!(state(&mut c, "vm").await.0, RUNNING);
    assert_eq!(lan.ports().await, 1, "the network was adopted, one port");
    destroy(&mut c, "vm").await;

    // 3. virtstoraged dies while it has the start's volume lookup.
    let storage_pid = std::fs::read_to_string(root.pid_file("virtstoraged"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .expect("virtqemud's virtstoraged runs");
    let signal = |sig| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(storage_pid), sig).expect("signal");
    };
    signal(nix::sys::signal::Signal::SIGSTOP);
    stopped(storage_pid).await;
    let mut c2 = c.clone();
    let call = tokio::spawn(async move { start(&mut c2, "vm").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!call.is_finished(), "the start waits for virtstoraged");
    signal(nix::sys::signal::Signal::SIGKILL);
    let r = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the start ends")
        .expect("task");
    r.unwrap_or_else(|e| {
        panic!(
            "the start after the retried lookup: {}\n{}",
            e.message(),
            qemud.output()
        )
    });
    assert!(
        qemud
            .output()
            .contains("virtstoraged went away during a volume lookup"),
        "{}",
        qemud.output()
    );
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&serial)
            .unwrap_or_default()
            .contains(UP_LINE))
        .await
    );
    destroy(&mut c, "vm").await;
}

/// The proxy's backend dies under a call: the call ends at once with
/// UNAVAILABLE naming the daemon (no hang), so do calls while it is down
/// (naming its socket too), and the same client connection gets through
/// once the daemon is back.
#[tokio::test]
async fn proxy_backend_dying_under_a_call_is_unavailable_then_back() {
    let root = TestRoot::new();
    let mut netd = Daemon::start("virtnetworkd", &root).await;
    let proxy = Daemon::start("virtproxyd", &root).await;
    let mut c = proxy.network(SocketKind::ReadWrite).await;
    let list = |mut c: npb::network_service_client::NetworkServiceClient<Channel>| async move {
        c.list_all_networks(npb::ListAllNetworksRequest::default())
            .await
            .map(|_| ())
    };
    list(c.clone()).await.expect("through the proxy");
    netd.signal(nix::sys::signal::Signal::SIGSTOP);
    stopped(i32::try_from(netd.pid()).expect("pid")).await;
    let call = tokio::spawn(list(c.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    if call.is_finished() {
        panic!(
            "the call did not wait for the stopped daemon: {:?}",
            call.await
        );
    }
    netd.kill9();
    let e = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("no hang")
        .expect("task")
        .expect_err("the daemon died");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("virtnetworkd"), "{e:?}");
    let e = list(c.clone()).await.expect_err("still down");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let sock = root.socket("virtnetworkd", SocketKind::ReadWrite);
    assert!(
        e.message().contains("cannot reach virtnetworkd")
            && e.message().contains(&sock.display().to_string()),
        "{e:?}"
    );
    let _netd = Daemon::start("virtnetworkd", &root).await;
    c.list_all_networks(npb::ListAllNetworksRequest::default())
        .await
        .expect("the same client once the daemon is back");
}

// ---------------------------------------------------------------------------
// Disk full: definitions
// ---------------------------------------------------------------------------

const KEEP_UUID: &str = "<uuid>6f0c2a55-0b5e-4c1d-9d2e-4a7f3c9b1e01</uuid>";

fn tiny_domain(root: &TestRoot, name: &str, extra: &str) -> String {
    tiny_domain_with(root, name, extra, GuestKind::IgnoresPowerButton, "")
}

/// A tiny domain running guest `kind`, with `devices` added (a NIC).
fn tiny_domain_with(
    root: &TestRoot,
    name: &str,
    extra: &str,
    kind: GuestKind,
    devices: &str,
) -> String {
    let image = root.path().join(format!("{name}.img"));
    if !image.exists() {
        build_image(&image, kind).expect("guest image");
    }
    format!(
        "<domain type='qemu'><name>{name}</name>{extra}<memory unit='MiB'>32</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>\
         <features><acpi/></features><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='sda' bus='sata'/></disk>{devices}\
         <serial type='file'><source path='{}'/><target port='0'/></serial>\
         <memballoon model='none'/></devices></domain>",
        image.display(),
        root.path().join(format!("{name}.serial")).display()
    )
}

/// The definitions of all three daemons on a full disk (a tmpfs over the
/// root's `/etc/virt`): a new domain, pool or network is refused with an
/// error naming its file and ENOSPC, and is not listed; a redefinition is
/// refused and the stored file stays byte for byte what it was, the
/// definition served unchanged; no temporary file is left. With space
/// again, both work.
#[tokio::test]
async fn a_full_disk_refuses_definitions_and_keeps_the_old_ones() {
    let root = TestRoot::new();
    let etc = Tmpfs::mount(&root.paths().config_dir, "256k");
    let qemud = Daemon::start("virtqemud", &root).await;
    let storaged = Daemon::start("virtstoraged", &root).await;
    let netd = Daemon::start("virtnetworkd", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    let mut s = storaged.storage(SocketKind::ReadWrite).await;
    let mut n = netd.network(SocketKind::ReadWrite).await;
    let uuid_of = |name: &str| if name == "keep" { KEEP_UUID } else { "" };
    let pool_xml = |name: &str, dir: &str| {
        format!(
            "<pool type='dir'><name>{name}</name>{}<target><path>{}</path></target></pool>",
            uuid_of(name),
            root.path().join(dir).display()
        )
    };
    let tag = tag_of(&root);
    let net_xml = |name: &str, i: u8, extra: &str| {
        format!(
            "<network><name>{name}</name>{}<bridge name='vd{tag}{i}'/>{extra}\
             <ip address='10.250.{i}.1' prefix='24'/></network>",
            uuid_of(name)
        )
    };
    c.define_xml(pb::DefineXmlRequest {
        xml: tiny_domain(&root, "keep", KEEP_UUID),
        validate: true,
    })
    .await
    .expect("define domain");
    s.define_pool(spb::DefinePoolRequest {
        xml: pool_xml("keep", "p1"),
        validate: true,
    })
    .await
    .expect("define pool");
    n.define_network(npb::DefineNetworkRequest {
        xml: net_xml("keep", 1, ""),
        validate: false,
    })
    .await
    .expect("define network");
    let dirs = ["qemu", "storage", "network"].map(|d| root.paths().driver_config_dir(d));
    let stored: Vec<Vec<u8>> = dirs
        .iter()
        .map(|d| std::fs::read(d.join("keep.xml")).expect("stored definition"))
        .collect();
    let served_domain = domain_xml(&mut c, "keep", true).await;
    let pool_of = |mut s: proto::storage::v1::storage_service_client::StorageServiceClient<
        Channel,
    >| async move {
        s.get_pool_xml(spb::GetPoolXmlRequest {
            pool: pool_ref("keep"),
            inactive: true,
        })
        .await
        .expect("pool xml")
        .into_inner()
        .xml
    };
    let net_of = |mut n: npb::network_service_client::NetworkServiceClient<Channel>| async move {
        n.get_network_xml(npb::GetNetworkXmlRequest {
            network: net_ref("keep"),
            inactive: true,
        })
        .await
        .expect("network xml")
        .into_inner()
        .xml
    };
    let served_pool = pool_of(s.clone()).await;
    let served_net = net_of(n.clone()).await;
    let listed_before = names_in(&dirs[0]);

    etc.fill(0);
    let refused = |e: &tonic::Status, file: &Path| {
        assert!(
            no_space(e) && e.message().contains(&file.display().to_string()),
            "{e:?}"
        );
    };
    // Domains.
    let e = c
        .define_xml(pb::DefineXmlRequest {
            xml: tiny_domain(&root, "new", ""),
            validate: true,
        })
        .await
        .expect_err("new domain on a full disk");
    refused(&e, &dirs[0].join("new.xml"));
    let e = c
        .get_xml(pb::GetXmlRequest {
            domain: dom("new"),
            ..Default::default()
        })
        .await
        .expect_err("not defined");
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .define_xml(pb::DefineXmlRequest {
            xml: tiny_domain(
                &root,
                "keep",
                &format!("{KEEP_UUID}<description>changed</description>"),
            ),
            validate: true,
        })
        .await
        .expect_err("redefine on a full disk");
    refused(&e, &dirs[0].join("keep.xml"));
    assert_eq!(domain_xml(&mut c, "keep", true).await, served_domain);
    // Pools.
    let e = s
        .define_pool(spb::DefinePoolRequest {
            xml: pool_xml("new", "p2"),
            validate: true,
        })
        .await
        .expect_err("new pool on a full disk");
    refused(&e, &dirs[1].join("new.xml"));
    let e = s
        .define_pool(spb::DefinePoolRequest {
            xml: pool_xml("keep", "p3"),
            validate: true,
        })
        .await
        .expect_err("redefine pool on a full disk");
    refused(&e, &dirs[1].join("keep.xml"));
    assert_eq!(pool_of(s.clone()).await, served_pool);
    let pools = s
        .list_all_pools(spb::ListAllPoolsRequest::default())
        .await
        .expect("pools")
        .into_inner()
        .pools;
    assert_eq!(pools.len(), 1, "{pools:?}");
    // Networks.
    let e = n
        .define_network(npb::DefineNetworkRequest {
            xml: net_xml("new", 2, ""),
            validate: false,
        })
        .await
        .expect_err("new network on a full disk");
    refused(&e, &dirs[2].join("new.xml"));
    let e = n
        .define_network(npb::DefineNetworkRequest {
            xml: net_xml("keep", 1, "<domain name='changed.lan'/>"),
            validate: false,
        })
        .await
        .expect_err("redefine network on a full disk");
    refused(&e, &dirs[2].join("keep.xml"));
    assert_eq!(net_of(n.clone()).await, served_net);
    let nets = n
        .list_all_networks(npb::ListAllNetworksRequest::default())
        .await
        .expect("networks")
        .into_inner()
        .networks;
    assert_eq!(nets.len(), 1, "{nets:?}");

    // Byte for byte as before, nothing else in the directories.
    for (d, bytes) in dirs.iter().zip(&stored) {
        assert_eq!(&std::fs::read(d.join("keep.xml")).expect("stored"), bytes);
        let left = names_in(d);
        assert!(
            left.iter().all(|f| f == "keep.xml" || f == "autostart"),
            "{}: {left:?}",
            d.display()
        );
    }
    assert_eq!(names_in(&dirs[0]), listed_before);

    // Space again: both kinds of define work.
    etc.free();
    c.define_xml(pb::DefineXmlRequest {
        xml: tiny_domain(&root, "new", ""),
        validate: true,
    })
    .await
    .expect("new domain with space");
    c.define_xml(pb::DefineXmlRequest {
        xml: tiny_domain(
            &root,
            "keep",
            &format!("{KEEP_UUID}<description>changed</description>"),
        ),
        validate: true,
    })
    .await
    .expect("redefine with space");
    assert!(domain_xml(&mut c, "keep", true).await.contains("changed"));
    s.define_pool(spb::DefinePoolRequest {
        xml: pool_xml("new", "p2"),
        validate: true,
    })
    .await
    .expect("new pool with space");
    n.define_network(npb::DefineNetworkRequest {
        xml: net_xml("new", 2, ""),
        validate: false,
    })
    .await
    .expect("new network with space");
}

// ---------------------------------------------------------------------------
// Disk full: status files
// ---------------------------------------------------------------------------

/// How many times the guest whose serial file is `serial` has booted.
fn boots(serial: &Path) -> usize {
    std::fs::read_to_string(serial)
        .unwrap_or_default()
        .matches(UP_LINE)
        .count()
}

/// The run directory of virtqemud full (a tmpfs over `/run/virt/qemu`):
/// a start whose status file cannot be written fails with an error naming
/// the file and ENOSPC, its QEMU (launched, as the domain log shows) is
/// killed and nothing of it is left; a suspend whose status file cannot
/// say "paused" is undone and fails, the domain keeps running and its
/// status file is untouched; a resume whose status file cannot say
/// "running" is undone and fails the same way: the domain stays paused
/// with its reason, the guest (one that resets itself, printing a line at
/// each boot) prints nothing more, the status file still says paused.
/// With space again, all three work.
#[tokio::test]
async fn a_full_run_dir_fails_a_start_cleanly_and_undoes_suspend_and_resume() {
    let root = TestRoot::new();
    let _cleanup = HostGuard {
        root: root.path().to_path_buf(),
        links: Vec::new(),
        netns: Vec::new(),
        table: format!("vr_{}", tag_of(&root)),
    };
    let run = Tmpfs::mount(&root.paths().driver_run_dir("qemu"), "64k");
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    // A live definition larger than one page, so that its status file
    // needs two: with one page free, whatever small record a start writes
    // first fits, and the status of the running domain does not.
    let big = format!("<description>{}</description>", "x".repeat(6000));
    // A guest that keeps printing (a boot line every ~0.3 s) while its
    // vCPUs run.
    c.define_xml(pb::DefineXmlRequest {
        xml: tiny_domain_with(&root, "vm", &big, GuestKind::ResetsItself, ""),
        validate: true,
    })
    .await
    .expect("define");
    let persistent = domain_xml(&mut c, "vm", true).await;
    let log = root.paths().driver_log_dir("qemu").join("vm.log");

    run.fill(1);
    let e = start(&mut c, "vm")
        .await
        .expect_err("start on a full run dir");
    let file = root.paths().driver_run_dir("qemu").join("vm.xml");
    assert!(
        no_space(&e) && e.message().contains(&file.display().to_string()),
        "{e:?}"
    );
    assert_eq!(state(&mut c, "vm").await.0, SHUTOFF);
    nothing_left(&root, "vm");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("qemu-system") && text.contains("shutting down"),
        "QEMU was launched, then stopped: {text}"
    );
    assert_eq!(domain_xml(&mut c, "vm", true).await, persistent);

    run.free();
    start(&mut c, "vm")
        .await
        .unwrap_or_else(|e| panic!("start with space: {}", e.message()));
    let serial = root.path().join("vm.serial");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&serial)
            .unwrap_or_default()
            .contains(UP_LINE))
        .await
    );
    let status = std::fs::read(&file).expect("status file");

    run.fill(0);
    let e = c
        .suspend(pb::SuspendRequest { domain: dom("vm") })
        .await
        .expect_err("suspend on a full run dir");
    assert!(
        no_space(&e)
            && e.message().contains(&file.display().to_string())
            && e.message().contains("keeps running"),
        "{e:?}"
    );
    assert_eq!(state(&mut c, "vm").await, (RUNNING, 1), "running (booted)");
    assert_eq!(std::fs::read(&file).expect("status file"), status);
    assert_eq!(names_in(&root.paths().driver_run_dir("qemu")), {
        let mut v = vec!["autostarted".to_owned(), "vm.xml".to_owned()];
        v.sort();
        v
    });
    run.free();
    c.suspend(pb::SuspendRequest { domain: dom("vm") })
        .await
        .expect("suspend with space");
    assert_eq!(state(&mut c, "vm").await, (PAUSED, PAUSED_USER));
    let status = std::fs::read(&file).expect("status file");
    assert!(
        String::from_utf8_lossy(&status)
            .contains(&format!("state='{PAUSED}' reason='{PAUSED_USER}'")),
        "{}",
        String::from_utf8_lossy(&status)
    );

    // A resume that cannot be recorded is undone.
    run.fill(0);
    let e = c
        .resume(pb::ResumeRequest { domain: dom("vm") })
        .await
        .expect_err("resume on a full run dir");
    assert!(
        no_space(&e)
            && e.message().contains(&file.display().to_string())
            && e.message().contains("the domain stays paused"),
        "{e:?}"
    );
    assert_eq!(
        state(&mut c, "vm").await,
        (PAUSED, PAUSED_USER),
        "paused (user), as before"
    );
    assert_eq!(std::fs::read(&file).expect("status file"), status);
    assert_eq!(names_in(&root.paths().driver_run_dir("qemu")), {
        let mut v = vec!["autostarted".to_owned(), "vm.xml".to_owned()];
        v.sort();
        v
    });
    // QEMU's vCPUs are stopped: the guest prints nothing more.
    let printed = boots(&serial);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(boots(&serial), printed, "the guest ran while paused");
    assert_eq!(state(&mut c, "vm").await, (PAUSED, PAUSED_USER));

    run.free();
    c.resume(pb::ResumeRequest { domain: dom("vm") })
        .await
        .expect("resume with space");
    assert_eq!(state(&mut c, "vm").await, (RUNNING, RUNNING_UNPAUSED));
    assert!(
        wait_until(Duration::from_secs(10), || boots(&serial) > printed).await,
        "the guest runs again"
    );
    let text = std::fs::read_to_string(&file).expect("status file");
    assert!(
        text.contains(&format!("state='{RUNNING}' reason='{RUNNING_UNPAUSED}'")),
        "{text}"
    );
    destroy(&mut c, "vm").await;
    nothing_left(&root, "vm");
}

type Net = npb::network_service_client::NetworkServiceClient<Channel>;

/// Whether a link `name` exists (in this namespace).
fn link_exists(name: &str) -> bool {
    Path::new(&format!("/sys/class/net/{name}")).exists()
}

/// The rules of nftables table `table` (both families) that mention
/// `word`.
fn nft_rules_naming(table: &str, word: &str) -> Vec<String> {
    let mut out = Vec::new();
    for fam in ["ip", "ip6"] {
        let o = Command::new("nft")
            .args(["list", "table", fam, table])
            .output()
            .expect("run nft");
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.contains(word))
                .map(|l| format!("{fam}: {}", l.trim())),
        );
    }
    out
}

/// The dnsmasq processes whose command line names `root`.
fn dnsmasqs(root: &TestRoot) -> Vec<i32> {
    tests::procs::processes("dnsmasq", &root.path().display().to_string())
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

async fn network_active(n: &mut Net, name: &str) -> bool {
    n.lookup_network(npb::LookupNetworkRequest {
        network: net_ref(name),
    })
    .await
    .expect("lookup network")
    .into_inner()
    .network
    .expect("network")
    .active
}

/// Nothing of a failed start of network `lan` is left: inactive, no
/// bridge, no dnsmasq, no rule naming the bridge in `table`, the run
/// directory holding just `files`.
async fn no_network_left(
    n: &mut Net,
    root: &TestRoot,
    bridge: &str,
    table: &str,
    files: &[String],
) {
    assert!(!network_active(n, "lan").await, "the network is inactive");
    assert!(!link_exists(bridge), "bridge {bridge} left");
    assert!(
        wait_until(Duration::from_secs(5), || dnsmasqs(root).is_empty()).await,
        "dnsmasq left: {:?}",
        dnsmasqs(root)
    );
    let rules = nft_rules_naming(table, bridge);
    assert!(rules.is_empty(), "rules left: {rules:?}");
    assert_eq!(
        names_in(&root.paths().driver_run_dir("network")),
        files,
        "files in the run directory"
    );
}

/// The run directory of virtnetworkd full (a tmpfs over
/// `/run/virt/network`) under the start of a defined NAT network with
/// DHCP: the start fails with an error naming the file that could not be
/// written and ENOSPC: dnsmasq's pid file when nothing is free, the
/// status file when dnsmasq's pid file took the last page (dnsmasq then
/// ran and is stopped again); and, with dnsmasq's state directory
/// (`/var/lib/virt/dnsmasq`) full instead, its configuration file. Each
/// time nothing is left: the network is inactive, no bridge, no dnsmasq,
/// no rule of the network in our nftables table, no file (dnsmasq's empty
/// pid file, a temporary status or configuration file). With space again,
/// the start works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_dir_fails_a_network_start_and_leaves_nothing() {
    let root = TestRoot::new();
    // dnsmasq reads its hosts files as 'nobody'.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod root");
    let tag = tag_of(&root);
    let (a, b) = subnet_of(&tag);
    let bridge = format!("vn{tag}0");
    let table = format!("vn_{tag}");
    let _guard = HostGuard {
        root: root.path().to_path_buf(),
        links: vec![bridge.clone()],
        netns: Vec::new(),
        table: table.clone(),
    };
    let run_dir = root.paths().driver_run_dir("network");
    let run = Tmpfs::mount(&run_dir, "64k");
    let dns_dir = root.paths().driver_state_dir("dnsmasq");
    let dns = Tmpfs::mount(&dns_dir, "64k");
    let d = Daemon::builder("virtnetworkd", &root)
        .env("VIRT_NETWORK_NFT_TABLE", &table)
        .start()
        .await;
    let mut n = d.network(SocketKind::ReadWrite).await;
    n.define_network(npb::DefineNetworkRequest {
        xml: format!(
            "<network><name>lan</name><forward mode='nat'/><bridge name='{bridge}'/>\
             <ip address='10.{a}.{b}.1' prefix='24'><dhcp>\
             <range start='10.{a}.{b}.100' end='10.{a}.{b}.150'/></dhcp></ip></network>"
        ),
        validate: false,
    })
    .await
    .expect("define network");
    let files = names_in(&run_dir);
    let pid_file = run_dir.join("lan.pid");
    let status_file = run_dir.join("lan.xml");

    // dnsmasq's directory full: its configuration cannot be written.
    dns.fill(0);
    let e = n
        .start_network(npb::StartNetworkRequest {
            network: net_ref("lan"),
        })
        .await
        .expect_err("start with dnsmasq's directory full");
    assert!(
        no_space(&e)
            && e.message()
                .contains(&dns_dir.join("lan.conf").display().to_string()),
        "{e:?}"
    );
    no_network_left(&mut n, &root, &bridge, &table, &files).await;
    assert_eq!(
        names_in(&dns_dir),
        Vec::<String>::new(),
        "no half-written file"
    );
    dns.free();

    // Nothing free: dnsmasq cannot write its pid file.
    run.fill(0);
    let e = n
        .start_network(npb::StartNetworkRequest {
            network: net_ref("lan"),
        })
        .await
        .expect_err("start on a full run dir");
    assert!(
        no_space(&e) && e.message().contains(&pid_file.display().to_string()),
        "{e:?}"
    );
    no_network_left(&mut n, &root, &bridge, &table, &files).await;

    // One page: dnsmasq's pid file fits, the status file does not.
    run.fill(1);
    let e = n
        .start_network(npb::StartNetworkRequest {
            network: net_ref("lan"),
        })
        .await
        .expect_err("start with one free page");
    assert!(
        no_space(&e) && e.message().contains(&status_file.display().to_string()),
        "{e:?}"
    );
    no_network_left(&mut n, &root, &bridge, &table, &files).await;
    assert_eq!(run.free_pages(), 1, "everything the start wrote is gone");

    // Space again.
    run.free();
    n.start_network(npb::StartNetworkRequest {
        network: net_ref("lan"),
    })
    .await
    .unwrap_or_else(|e| panic!("start with space: {}", e.message()));
    assert!(network_active(&mut n, "lan").await);
    assert!(link_exists(&bridge));
    assert!(dnsmasq_of(&root, "lan").is_some(), "dnsmasq runs");
    assert!(!nft_rules_naming(&table, &bridge).is_empty(), "the rules");
    assert!(status_file.exists());
    n.destroy_network(npb::DestroyNetworkRequest {
        network: net_ref("lan"),
    })
    .await
    .expect("destroy network");
    no_network_left(&mut n, &root, &bridge, &table, &files).await;
    assert!(!d.output().contains("panicked"), "{}", d.output());
}

/// virtqemud's run directory full under the start of a domain with a
/// `type='network'` NIC: the start record fits, the status file does not.
/// The start fails naming the status file and ENOSPC; QEMU is killed, its
/// tap is gone, and the port the start took from virtnetworkd is released
/// (the release cannot be journaled in the full directory: it is made at
/// once); nothing of the start is left. With space again, the start works
/// and holds one port, which its destroy releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_dir_fails_a_nic_start_and_releases_its_port() {
    let root = TestRoot::new();
    let lan = Lan::start(&root, "vq").await;
    let (bridge, table) = (lan.bridge.clone(), lan.table.clone());
    let ports = || lan.ports();

    let run_dir = root.paths().driver_run_dir("qemu");
    let run = Tmpfs::mount(&run_dir, "64k");
    let qemud = Daemon::builder("virtqemud", &root)
        .env("VIRT_NETWORK_NFT_TABLE", &table)
        .env("RUST_LOG", "info,virtqemud=debug")
        .start()
        .await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    // As in the test above: the start record fits in the one free page,
    // the status file of the running domain does not.
    let big = format!("<description>{}</description>", "x".repeat(6000));
    let nic = "<interface type='network'><mac address='52:54:00:ee:00:0a'/>\
               <source network='lan'/><model type='virtio'/></interface>";
    c.define_xml(pb::DefineXmlRequest {
        xml: tiny_domain_with(&root, "nic", &big, GuestKind::IgnoresPowerButton, nic),
        validate: true,
    })
    .await
    .expect("define");
    let persistent = domain_xml(&mut c, "nic", true).await;
    let log = root.paths().driver_log_dir("qemu").join("nic.log");

    run.fill(1);
    let e = start(&mut c, "nic")
        .await
        .expect_err("start on a full run dir");
    let file = run_dir.join("nic.xml");
    assert!(
        no_space(&e) && e.message().contains(&file.display().to_string()),
        "{e:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("qemu-system") && text.contains("shutting down"),
        "QEMU was launched (with its NIC), then stopped: {text}"
    );
    assert_eq!(state(&mut c, "nic").await.0, SHUTOFF);
    assert!(
        wait_until_async(Duration::from_secs(10), || async { ports().await == 0 }).await,
        "the port is released; virtqemud said:\n{}",
        qemud.output()
    );
    assert!(
        bridge_ports(&bridge).is_empty(),
        "taps left on the bridge: {:?}",
        bridge_ports(&bridge)
    );
    assert_eq!(tun_fds(qemud.pid()), 0, "virtqemud holds no tap");
    nothing_left(&root, "nic");
    assert!(
        wait_until(Duration::from_secs(10), || names_in(
            &run_dir.join("port-release")
        )
        .is_empty())
        .await,
        "port releases still journaled: {:?}",
        names_in(&run_dir.join("port-release"))
    );
    assert!(
        qemud
            .output()
            .contains("cannot journal the release of port"),
        "the release went around the full journal: {}",
        qemud.output()
    );
    assert_eq!(domain_xml(&mut c, "nic", true).await, persistent);

    run.free();
    start(&mut c, "nic")
        .await
        .unwrap_or_else(|e| panic!("start with space: {}", e.message()));
    assert_eq!(state(&mut c, "nic").await.0, RUNNING);
    assert_eq!(ports().await, 1, "the NIC's port");
    assert_eq!(bridge_ports(&bridge).len(), 1, "the NIC's tap");
    destroy(&mut c, "nic").await;
    assert!(
        wait_until_async(Duration::from_secs(10), || async { ports().await == 0 }).await,
        "the port is released after the destroy"
    );
    nothing_left(&root, "nic");
    assert!(!qemud.output().contains("panicked"), "{}", qemud.output());
}

// ---------------------------------------------------------------------------
// Disk full: volumes; qemu-img failing
// ---------------------------------------------------------------------------

async fn volumes(s: &mut Sto, pool: &str) -> Vec<String> {
    s.refresh_pool(spb::RefreshPoolRequest {
        pool: pool_ref(pool),
    })
    .await
    .expect("refresh");
    s.list_all_volumes(spb::ListAllVolumesRequest {
        pool: pool_ref(pool),
    })
    .await
    .expect("volumes")
    .into_inner()
    .volumes
    .into_iter()
    .map(|v| v.name)
    .collect()
}

async fn create_volume(s: &mut Sto, pool: &str, xml: &str) -> Result<(), tonic::Status> {
    s.create_volume(spb::CreateVolumeRequest {
        pool: pool_ref(pool),
        xml: xml.to_owned(),
        ..Default::default()
    })
    .await
    .map(|_| ())
}

/// Volumes created in a full pool (a tmpfs target): a raw volume whose
/// allocation does not fit, a qcow2 image by the native writer, and a
/// qcow2 copy that `qemu-img convert` writes until the disk is full. Each
/// fails with ENOSPC (the copy with qemu-img's own words), leaves no
/// partial file (`.<name>.virt-part`), and the pool lists what it had.
#[tokio::test]
async fn volume_creates_in_a_full_pool_leave_no_partial_file() {
    let root = TestRoot::new();
    let storaged = Daemon::start("virtstoraged", &root).await;
    let mut s = storaged.storage(SocketKind::ReadWrite).await;
    // The filler lies next to the pool's directory, not in it.
    let fs = root.path().join("fullfs");
    let full = Tmpfs::mount(&fs, "8m");
    let full_dir = fs.join("pool");
    define_started_pool(&mut s, "full", &full_dir).await;
    let src_dir = root.path().join("src");
    std::fs::create_dir_all(&src_dir).expect("src");
    // 6 MiB that do not compress or skip: a sparse copy needs them all.
    let mut data = vec![0u8; 6 << 20];
    common::xml::values::os_random(&mut data);
    std::fs::write(src_dir.join("data.raw"), &data).expect("source data");
    define_started_pool(&mut s, "src", &src_dir).await;
    create_volume(
        &mut s,
        "full",
        "<volume><name>keep.raw</name><capacity unit='KiB'>64</capacity>\
         <allocation unit='KiB'>64</allocation><target><format type='raw'/></target></volume>",
    )
    .await
    .expect("a volume with space");
    let before = volumes(&mut s, "full").await;
    assert_eq!(before, ["keep.raw"]);
    let clean = |what: &str| {
        let left = names_in(&full_dir);
        assert_eq!(left, ["keep.raw"], "{what}: files left in the pool");
    };

    // Raw, allocated: fallocate refuses.
    full.fill(16);
    let e = create_volume(
        &mut s,
        "full",
        "<volume><name>big.raw</name><capacity unit='MiB'>1</capacity>\
         <allocation unit='MiB'>1</allocation><target><format type='raw'/></target></volume>",
    )
    .await
    .expect_err("no room for 1 MiB");
    assert!(no_space(&e) && e.message().contains("big.raw"), "{e:?}");
    clean("raw");
    assert_eq!(volumes(&mut s, "full").await, before);

    // qcow2 by the native writer, not a page free.
    full.free();
    full.fill(0);
    let e = create_volume(
        &mut s,
        "full",
        "<volume><name>img.qcow2</name><capacity unit='GiB'>1</capacity>\
         <target><format type='qcow2'/></target></volume>",
    )
    .await
    .expect_err("no room for a qcow2 header");
    assert!(no_space(&e) && e.message().contains("img.qcow2"), "{e:?}");
    clean("qcow2");
    assert_eq!(volumes(&mut s, "full").await, before);

    // A qcow2 copy of 6 MiB of data into 1 MiB: qemu-img convert fails
    // part way.
    full.free();
    full.fill(256);
    let e = s
        .create_volume_from(spb::CreateVolumeFromRequest {
            pool: pool_ref("full"),
            xml: "<volume><name>copy.qcow2</name><capacity unit='MiB'>6</capacity>\
                  <target><format type='qcow2'/></target></volume>"
                .into(),
            source: Some(spb::VolumeRef {
                by: Some(spb::volume_ref::By::PoolVolume(spb::PoolVolume {
                    pool: "src".into(),
                    name: "data.raw".into(),
                })),
            }),
            ..Default::default()
        })
        .await
        .expect_err("no room for the copy");
    assert!(
        e.message().contains("qemu-img") && e.message().contains("convert") && no_space(&e),
        "qemu-img's own words: {e:?}"
    );
    clean("convert");
    assert_eq!(volumes(&mut s, "full").await, before);

    // With space, the same copy works.
    full.free();
    s.create_volume_from(spb::CreateVolumeFromRequest {
        pool: pool_ref("full"),
        xml: "<volume><name>copy.qcow2</name><capacity unit='MiB'>6</capacity>\
              <target><format type='qcow2'/></target></volume>"
            .into(),
        source: Some(spb::VolumeRef {
            by: Some(spb::volume_ref::By::PoolVolume(spb::PoolVolume {
                pool: "src".into(),
                name: "data.raw".into(),
            })),
        }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the copy with space: {}", e.message()));
    assert_eq!(volumes(&mut s, "full").await, ["copy.qcow2", "keep.raw"]);
}

/// `qemu-img` refusing a volume (real qemu-img: a qcow2 image whose
/// backing file is declared qcow2 but is not an image; `nocow` makes the
/// volume a qemu-img one): the error carries qemu-img's command and its
/// stderr, no file is left, and the pool is unchanged.
#[tokio::test]
async fn qemu_img_failing_is_reported_with_its_stderr_and_leaves_nothing() {
    let root = TestRoot::new();
    let storaged = Daemon::start("virtstoraged", &root).await;
    let mut s = storaged.storage(SocketKind::ReadWrite).await;
    let dir = root.path().join("pool");
    std::fs::create_dir_all(&dir).expect("pool dir");
    std::fs::write(dir.join("plain.raw"), vec![0u8; 1 << 20]).expect("raw file");
    define_started_pool(&mut s, "p", &dir).await;
    let before = volumes(&mut s, "p").await;
    let e = create_volume(
        &mut s,
        "p",
        &format!(
            "<volume><name>child.qcow2</name><capacity unit='MiB'>1</capacity>\
             <target><format type='qcow2'/><nocow/></target>\
             <backingStore><path>{}</path><format type='qcow2'/></backingStore></volume>",
            dir.join("plain.raw").display()
        ),
    )
    .await
    .expect_err("qemu-img refuses the backing file");
    assert!(
        e.message().contains("qemu-img create")
            && e.message().contains("unexpected exit status 1")
            && e.message().contains("qcow2 format"),
        "qemu-img's command and stderr: {e:?}"
    );
    assert_eq!(names_in(&dir), ["plain.raw"], "nothing left");
    assert_eq!(volumes(&mut s, "p").await, before);
}

// ---------------------------------------------------------------------------
// QEMU crashing during a hotplug
// ---------------------------------------------------------------------------

/// A QMP relay between virtqemud and QEMU: QEMU's monitor socket moves
/// aside and the relay listens at its path, passing every byte both ways,
/// as a socket would: QEMU's end closing closes the daemon's. Once the
/// daemon has sent `device_add`, QEMU's lines (its reply among them) are
/// held back instead of passed on.
struct HoldingRelay {
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
    device_add_sent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HoldingRelay {
    fn interpose(path: &Path) -> HoldingRelay {
        use std::io::{Read, Write};
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let real = path.with_extension("real");
        std::fs::rename(path, &real).expect("move QEMU's monitor socket");
        let listener = UnixListener::bind(path).expect("bind the relay");
        let connected = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicBool::new(false));
        let (conn, sent2) = (connected.clone(), sent.clone());
        std::thread::spawn(move || {
            for daemon in listener.incoming() {
                let Ok(daemon) = daemon else { return };
                let Ok(qemu) = UnixStream::connect(&real) else {
                    return;
                };
                let (d_read, mut q_write) = (
                    daemon.try_clone().expect("clone"),
                    qemu.try_clone().expect("clone"),
                );
                let seen = sent2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    let mut text = Vec::new();
                    // Descriptors (a tap's, with getfd) pass on with their bytes.
                    while let Ok((n, fds)) = recv_with_fds(&d_read, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        // Held before QEMU can answer it.
                        text.extend_from_slice(&buf[..n]);
                        if String::from_utf8_lossy(&text).contains("\"device_add\"") {
                            seen.store(true, Ordering::SeqCst);
                        }
                        if send_with_fds(&mut q_write, &buf[..n], &fds).is_err() {
                            break;
                        }
                    }
                    let _ = q_write.shutdown(std::net::Shutdown::Write);
                });
                conn.store(true, Ordering::SeqCst);
                let hold = sent2.clone();
                std::thread::spawn(move || {
                    let (mut q_read, mut d_write) = (qemu, daemon);
                    let mut buf = [0u8; 8192];
                    let mut partial: Vec<u8> = Vec::new();
                    while let Ok(n) = q_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        partial.extend_from_slice(&buf[..n]);
                        let Some(last) = partial.iter().rposition(|b| *b == b'\n') else {
                            continue;
                        };
                        let lines: Vec<u8> = partial.drain(..=last).collect();
                        if hold.load(Ordering::SeqCst) {
                            continue;
                        }
                        if d_write.write_all(&lines).is_err() {
                            break;
                        }
                    }
                    let _ = d_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        HoldingRelay {
            connected,
            device_add_sent: sent,
        }
    }

    fn connected(&self) -> bool {
        self.connected.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn device_add_sent(&self) -> bool {
        self.device_add_sent
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Reads bytes and the descriptors sent with them (SCM_RIGHTS).
fn recv_with_fds(
    s: &std::os::unix::net::UnixStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just gave us these descriptors; nothing
            // else owns them.
            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    Ok((msg.bytes, fds))
}

/// Writes `bytes`, the descriptors with the first of them.
fn send_with_fds(
    s: &mut std::os::unix::net::UnixStream,
    bytes: &[u8],
    fds: &[std::os::fd::OwnedFd],
) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::io::Write;
    use std::os::fd::{AsRawFd, RawFd};
    if fds.is_empty() {
        return s.write_all(bytes);
    }
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let n = sendmsg::<()>(
        s.as_raw_fd(),
        &[std::io::IoSlice::new(bytes)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    s.write_all(&bytes[n..])
}

/// The `<monitor path=>` and `pid=` of a status file.
fn monitor_and_pid(status: &str) -> (PathBuf, i32) {
    let attr = |start: &str| {
        let s = status.find(start).expect(start) + start.len();
        let e = status[s..].find('\'').expect("quote") + s;
        status[s..e].to_owned()
    };
    (
        PathBuf::from(attr("<monitor path='")),
        attr(" pid='").parse().expect("pid"),
    )
}

/// The descriptors of process `pid` open on `/dev/net/tun`.
fn tun_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|t| t == Path::new("/dev/net/tun"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// The interfaces on bridge `br`.
fn bridge_ports(br: &str) -> Vec<String> {
    names_in(Path::new(&format!("/sys/class/net/{br}/brif")))
}

/// QEMU killed (SIGKILL) while a NIC on a virtual network is being
/// attached (live and config), its `device_add` unanswered: the attach
/// returns an error instead of hanging, the domain is shut off (crashed),
/// the persistent definition is as before, the tap, the network port and
/// the daemon's descriptors are released, and the domain starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_killed_during_a_nic_hotplug_releases_everything() {
    let root = TestRoot::new();
    let lan = Lan::start(&root, "vh").await;
    let (bridge, table) = (lan.bridge.clone(), lan.table.clone());
    let ports = || lan.ports();

    let qemud = |root: &TestRoot| {
        Daemon::builder("virtqemud", root)
            .env("VIRT_NETWORK_NFT_TABLE", &table)
            .env("RUST_LOG", "info,virtqemud=debug")
            .start()
    };
    let mut d = qemud(&root).await;
    let mut c = d.domain(SocketKind::ReadWrite).await;
    c.define_xml(pb::DefineXmlRequest {
        xml: tiny_domain(&root, "hp", ""),
        validate: true,
    })
    .await
    .expect("define");
    start(&mut c, "hp").await.expect("start");
    let persistent = domain_xml(&mut c, "hp", true).await;
    let status_file = root.paths().driver_run_dir("qemu").join("hp.xml");
    let (monitor, qemu_pid) =
        monitor_and_pid(&std::fs::read_to_string(&status_file).expect("status"));

    // From now on virtqemud reaches QEMU through the relay.
    d.kill9();
    let relay = HoldingRelay::interpose(&monitor);
    d = qemud(&root).await;
    let mut c = d.domain(SocketKind::ReadWrite).await;
    assert!(
        wait_until(Duration::from_secs(10), || relay.connected()).await,
        "virtqemud reconnected through the relay"
    );
    assert_eq!(state(&mut c, "hp").await.0, RUNNING);
    assert!(bridge_ports(&bridge).is_empty());

    let nic = "<interface type='network'><mac address='52:54:00:ee:00:09'/>\
               <source network='lan'/><model type='virtio'/></interface>";
    let mut c2 = c.clone();
    let attach = tokio::spawn(async move {
        c2.attach_device(pb::AttachDeviceRequest {
            domain: dom("hp"),
            xml: nic.to_owned(),
            flags: Some(pb::DeviceModifyFlags {
                live: true,
                config: true,
                force: false,
            }),
        })
        .await
    });
    if !wait_until(Duration::from_secs(15), || relay.device_add_sent()).await {
        let r = if attach.is_finished() {
            format!("{:?}", attach.await)
        } else {
            "still running".to_owned()
        };
        panic!(
            "the attach did not reach device_add ({r}); virtqemud said:\n{}",
            d.output()
        );
    }
    // Mid-plug: the tap is on the bridge, the port taken, the new
    // definition written.
    assert_eq!(bridge_ports(&bridge).len(), 1, "the new tap");
    assert_eq!(ports().await, 1, "the NIC's port");
    assert!(!attach.is_finished(), "device_add has no answer yet");

    kill9(qemu_pid);
    let r = tokio::time::timeout(Duration::from_secs(20), attach)
        .await
        .unwrap_or_else(|_| panic!("the attach hangs; virtqemud said:\n{}", d.output()))
        .expect("task");
    let e = r.expect_err("the attach cannot succeed");
    assert!(
        e.message().contains("device_add"),
        "the error says which step: {e:?}"
    );
    assert!(
        wait_until_async(Duration::from_secs(10), || {
            let mut c = c.clone();
            async move { state(&mut c, "hp").await == (SHUTOFF, SHUTOFF_CRASHED) }
        })
        .await,
        "shut off (crashed)"
    );
    assert_eq!(
        domain_xml(&mut c, "hp", true).await,
        persistent,
        "definition as before"
    );
    assert!(
        wait_until(Duration::from_secs(5), || bridge_ports(&bridge).is_empty()).await,
        "the tap is gone: {:?}",
        bridge_ports(&bridge)
    );
    assert!(
        wait_until_async(Duration::from_secs(5), || async { ports().await == 0 }).await,
        "the port is released"
    );
    assert_eq!(tun_fds(d.pid()), 0, "virtqemud holds no tap");
    nothing_left(&root, "hp");

    start(&mut c, "hp")
        .await
        .unwrap_or_else(|e| panic!("start again: {}", e.message()));
    assert_eq!(state(&mut c, "hp").await.0, RUNNING);
    destroy(&mut c, "hp").await;
}
