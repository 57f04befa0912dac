//! Bad requests: every RPC of every service, fuzzed against a real stack.
//!
//! The promise: a request with random or boundary values (empty, huge,
//! NUL, path traversal, invalid UTF-8, unknown enum numbers, UUIDs nobody
//! has, malformed UUIDs, absent or empty messages, long repeated fields,
//! undecodable bytes) gets a deliberate gRPC status or succeeds; no daemon
//! panics, hangs or dies; and a call that fails changes nothing.
//!
//! The RPCs come from the API's descriptor set (`tests::fuzz::methods`), so
//! a new RPC is fuzzed without a change here; the test also checks that
//! this list is exactly `proto::METHOD_ACCESS`. Requests are wire bytes
//! generated from each request's descriptor (`tests::fuzz::Gen`), sent with
//! tonic's client and a pass-through codec.
//!
//! The stack: virtqemud, virtstoraged, virtnetworkd and virtproxyd on one
//! root, with an inactive domain, an active dir pool holding a volume and
//! an inactive network, whose names, UUIDs and paths are used now and then
//! so that lookups hit. Service calls go to the daemon's socket, every
//! fourth through virtproxyd; admin calls rotate over the four daemons.
//!
//! After every call:
//! - the status code is one of the deliberate ones (not UNKNOWN, not
//!   INTERNAL, not UNAVAILABLE) with a message;
//! - every daemon still runs, and none printed "panicked";
//! - a snapshot of the state (domains, pools, volumes, networks and ports
//!   with their XML; admin limits and log settings; the files under the
//!   root's etc/ and the pool directory with their contents; anything new
//!   elsewhere under the root) equals the one before the call. A call that
//!   failed must not change it; one that succeeded may only if it is a
//!   mutating RPC (a lookup never changes state), and the fixtures are then
//!   put back.
//!
//! Two allowances, both printed at the end: an upload that fails after it
//! has written may leave that data in its volume, when its error says so
//! (the data goes in as it arrives, as libvirt's streams); and [`KNOWN`]
//! lists failures whose fix belongs to files this test's change left alone.
//!
//! The pool lives on a 64 MiB tmpfs of its own, so that a daemon writing
//! without bound cannot fill the machine's disk; XML templates only name
//! paths under the test's root (or relative ones, which the daemons must
//! refuse).
//!
//! `FUZZ_SEED` replays a run (the seed is printed); `FUZZ_ITERS` sets the
//! calls per RPC (default [`DEFAULT_ITERS`]); `FUZZ_VERBOSE=1` prints the
//! codes of every RPC; `FUZZ_TRACE=Method` prints each call of the RPCs
//! whose path contains it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tests::calls::pool_ref;

use common::error::status_detail;
use prost::Message;
use proto::admin::v1 as adm;
use proto::admin::v1::admin_service_client::AdminServiceClient;
use proto::domain::v1 as dom;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as net;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1 as sto;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tests::fuzz::{self, Gen, Method, Rng, StreamEnd};
use tests::{Daemon, SocketKind, TestRoot, channel_to};
use tonic::Code;
use tonic::transport::Channel;

/// Calls per RPC in `make test` (FUZZ_ITERS overrides).
const DEFAULT_ITERS: usize = 16;

/// A call that takes longer than this is a hang. Generous: the machine is
/// shared with builds; a QEMU start under load takes seconds at most.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an event stream is read before it is dropped.
const WATCH_READ: Duration = Duration::from_millis(20);

const DOM: &str = "fz-dom";
const DOM_UUID: &str = "6f1c2a4e-8b3d-4c5e-9f60-7a8b9c0d1e2f";
const POOL: &str = "fz-pool";
const POOL_UUID: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const VOL: &str = "fz-vol.img";
const NET: &str = "fz-net";
const NET_UUID: &str = "9e8d7c6b-5a49-4838-a726-150f4e3d2c1b";

// ---------------------------------------------------------------------------
// The stack and its fixtures
// ---------------------------------------------------------------------------

/// A tmpfs mounted for the test's data (the pool and the scratch
/// directory): a bug that writes without bound fills 64 MiB, not the
/// machine's disk. Unmounted on drop.
struct DataMount(PathBuf);

impl DataMount {
    fn new(dir: &Path) -> DataMount {
        std::fs::create_dir_all(dir).expect("data dir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m,mode=0755", "fz-data"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        DataMount(dir.to_path_buf())
    }
}

impl Drop for DataMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The four daemons (start order) and the fixtures' texts.
struct Env {
    // Field order: the daemons are dropped (killed) first, then the data
    // mount, then the root.
    daemons: Vec<Daemon>,
    _data: DataMount,
    root: TestRoot,
    pool_dir: PathBuf,
    bridge: String,
    dom_xml: String,
    pool_xml: String,
    vol_xml: String,
    net_xml: String,
    /// Output bytes of each daemon already checked for "panicked".
    seen_output: Vec<usize>,
    /// Each daemon's servers and their limits at the start.
    limits: Vec<Vec<(String, adm::ServerLimits)>>,
}

/// Channels to every socket the fuzzer uses; rebuilt after CloseClient.
struct Channels {
    qemud: Channel,
    storaged: Channel,
    networkd: Channel,
    proxy: Channel,
    /// Admin sockets, in `Env::daemons` order.
    admin: Vec<Channel>,
}

impl Env {
    async fn start() -> Env {
        let root = TestRoot::new();
        // The daemons' working directory sits deep under the root, so that
        // a relative path a daemon wrongly accepted stays inside the root.
        let cwd = root.path().join("cwd/a/b/c");
        std::fs::create_dir_all(&cwd).expect("cwd");
        let mut daemons = Vec::new();
        for name in tests::DAEMONS {
            let mut cmd = Daemon::builder(name, &root).command();
            cmd.current_dir(&cwd);
            let mut d = Daemon::spawn_command(name, root.path(), cmd);
            d.wait_ready().await;
            daemons.push(d);
        }
        let data = DataMount::new(&root.path().join("data"));
        let pool_dir = root.path().join("data/pools/fz");
        std::fs::create_dir_all(&pool_dir).expect("pool dir");
        std::fs::create_dir_all(root.path().join("data/scratch")).expect("scratch dir");
        let tag = std::process::id() % 100_000;
        let bridge = format!("vfz{tag}");
        let subnet = 1 + tag % 250;
        let dom_xml = format!(
            "<domain type='qemu'>
  <name>{DOM}</name>
  <uuid>{DOM_UUID}</uuid>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='{POOL}' volume='{VOL}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:f2:00:01'/><source network='{NET}'/><model type='virtio'/>
    </interface>
  </devices>
</domain>
"
        );
        let pool_xml = format!(
            "<pool type='dir'><name>{POOL}</name><uuid>{POOL_UUID}</uuid>\
             <target><path>{}</path></target></pool>",
            pool_dir.display()
        );
        let vol_xml = format!(
            "<volume><name>{VOL}</name><capacity unit='KiB'>64</capacity>\
             <target><format type='raw'/></target></volume>"
        );
        let net_xml = format!(
            "<network><name>{NET}</name><uuid>{NET_UUID}</uuid><bridge name='{bridge}'/>\
             <mac address='52:54:00:f2:00:02'/>\
             <ip address='10.251.{subnet}.1' netmask='255.255.255.0'>\
             <dhcp><range start='10.251.{subnet}.10' end='10.251.{subnet}.20'/></dhcp></ip>\
             </network>"
        );
        let n = daemons.len();
        let env = Env {
            daemons,
            _data: data,
            root,
            pool_dir,
            bridge,
            dom_xml,
            pool_xml,
            vol_xml,
            net_xml,
            seen_output: vec![0; n],
            limits: Vec::new(),
        };
        let ch = env.channels().await;
        let mut env = env;
        for c in &ch.admin {
            let mut a = AdminServiceClient::new(c.clone());
            let servers = a
                .list_servers(adm::ListServersRequest {})
                .await
                .expect("ListServers")
                .into_inner()
                .names;
            let mut limits = Vec::new();
            for s in servers {
                let l = a
                    .get_server_limits(adm::GetServerLimitsRequest {
                        server: Some(s.clone()),
                    })
                    .await
                    .expect("GetServerLimits")
                    .into_inner()
                    .limits
                    .expect("limits");
                limits.push((s, l));
            }
            env.limits.push(limits);
        }
        env.restore(&ch).await;
        env.warm_up(&ch).await;
        env
    }

    /// Each fixture through the changes a fuzzed call may legitimately
    /// make once (autostart on and off, network and domain started and
    /// stopped): what those leave behind for good (autostart directories,
    /// dnsmasq files, per-domain directories) is then part of the state
    /// from the start. It also shows the fixtures work.
    async fn warm_up(&self, ch: &Channels) {
        let mut d = DomainServiceClient::new(ch.qemud.clone());
        let mut n = NetworkServiceClient::new(ch.networkd.clone());
        let dref = Some(dom::DomainRef {
            by: Some(dom::domain_ref::By::Name(DOM.into())),
        });
        n.start_network(net::StartNetworkRequest {
            network: net_ref(NET),
        })
        .await
        .expect("start network");
        d.start(dom::StartRequest {
            domain: dref.clone(),
            paused: true,
            ..Default::default()
        })
        .await
        .expect("start domain");
        self.restore(ch).await;
        // Defined afresh: its state reason is then "unknown" as after any
        // redefinition, not "destroyed".
        d.undefine(dom::UndefineRequest {
            domain: dref,
            ..Default::default()
        })
        .await
        .expect("undefine domain");
        self.restore(ch).await;
        self.autostart_dirs(ch).await;
    }

    /// Autostart on and off once for each fixture: the autostart
    /// directories then exist from the start (they stay once made).
    async fn autostart_dirs(&self, ch: &Channels) {
        let mut d = DomainServiceClient::new(ch.qemud.clone());
        let mut s = StorageServiceClient::new(ch.storaged.clone());
        let mut n = NetworkServiceClient::new(ch.networkd.clone());
        for on in [true, false] {
            d.set_autostart(dom::SetAutostartRequest {
                domain: Some(dom::DomainRef {
                    by: Some(dom::domain_ref::By::Name(DOM.into())),
                }),
                autostart: on,
            })
            .await
            .expect("domain autostart");
            s.set_pool_autostart(sto::SetPoolAutostartRequest {
                pool: pool_ref(POOL),
                autostart: on,
            })
            .await
            .expect("pool autostart");
            n.set_network_autostart(net::SetNetworkAutostartRequest {
                network: net_ref(NET),
                autostart: on,
            })
            .await
            .expect("network autostart");
        }
    }

    fn daemon(&self, name: &str) -> &Daemon {
        self.daemons
            .iter()
            .find(|d| d.name() == name)
            .expect("daemon in the stack")
    }

    async fn channels(&self) -> Channels {
        let rw = |n: &str| self.daemon(n).socket(SocketKind::ReadWrite);
        let mut admin = Vec::new();
        for d in &self.daemons {
            admin.push(channel_to(&d.socket(SocketKind::Admin)).await);
        }
        Channels {
            qemud: channel_to(&rw("virtqemud")).await,
            storaged: channel_to(&rw("virtstoraged")).await,
            networkd: channel_to(&rw("virtnetworkd")).await,
            proxy: channel_to(&rw("virtproxyd")).await,
            admin,
        }
    }

    /// Strings of the real objects, for lookups that hit.
    fn hits(&self) -> Vec<String> {
        let vol_path = self.pool_dir.join(VOL).display().to_string();
        vec![
            DOM.into(),
            DOM_UUID.into(),
            POOL.into(),
            POOL_UUID.into(),
            VOL.into(),
            vol_path.clone(),
            self.pool_dir.display().to_string(),
            NET.into(),
            NET_UUID.into(),
            self.bridge.clone(),
            format!("{POOL}/{VOL}"),
            self.scratch(),
        ]
    }

    /// The directory the XML templates may name as a path.
    fn scratch(&self) -> String {
        self.root.path().join("data/scratch").display().to_string()
    }

    /// Puts the fixtures back as `start` made them: anything else the
    /// fuzzer created goes (stopped, undefined; never deleted from disk),
    /// changed fixtures are redefined, and the daemons' admin settings are
    /// set back. Idempotent.
    async fn restore(&self, ch: &Channels) {
        self.restore_parts(ch, Parts::ALL).await;
    }

    /// [`Env::restore`] of some parts only (the ones a call changed).
    async fn restore_parts(&self, ch: &Channels, parts: Parts) {
        if parts.domains {
            self.restore_domains(ch).await;
        }
        if parts.storage {
            self.restore_storage(ch).await;
        }
        if parts.networks {
            self.restore_networks(ch).await;
        }
        if parts.admin {
            self.restore_admin(ch).await;
        }
    }

    async fn restore_domains(&self, ch: &Channels) {
        let mut d = DomainServiceClient::new(ch.qemud.clone());
        let doms = d
            .list_all_domains(dom::ListAllDomainsRequest::default())
            .await
            .expect("ListAllDomains")
            .into_inner()
            .domains;
        let mut have_dom = false;
        for s in doms {
            let name = s.domain.map(|x| x.name).unwrap_or_default();
            let r = Some(dom::DomainRef {
                by: Some(dom::domain_ref::By::Name(name.clone())),
            });
            if s.state != dom::DomainState::Shutoff as i32 {
                d.destroy(dom::DestroyRequest {
                    domain: r.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("restore: destroy {name}: {e:?}"));
            }
            if name == DOM {
                have_dom = true;
                if s.autostart {
                    d.set_autostart(dom::SetAutostartRequest {
                        domain: r,
                        autostart: false,
                    })
                    .await
                    .expect("restore: autostart");
                }
            } else if s.persistent {
                d.undefine(dom::UndefineRequest {
                    domain: r,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("restore: undefine {name}: {e:?}"));
            }
        }
        let xml_now = if have_dom {
            d.get_xml(dom::GetXmlRequest {
                domain: Some(dom::DomainRef {
                    by: Some(dom::domain_ref::By::Name(DOM.into())),
                }),
                inactive: true,
                ..Default::default()
            })
            .await
            .ok()
            .map(|r| r.into_inner().xml)
        } else {
            None
        };
        let define = d
            .define_xml(dom::DefineXmlRequest {
                xml: self.dom_xml.clone(),
                validate: false,
            })
            .await;
        // Defining the same text again gives the same definition.
        define.unwrap_or_else(|e| panic!("restore: define {DOM} (was {xml_now:?}): {e:?}"));
    }

    async fn restore_storage(&self, ch: &Channels) {
        // What fuzzed pools built in the scratch directory (it is ours).
        let scratch = PathBuf::from(self.scratch());
        for e in std::fs::read_dir(&scratch).into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
        let mut s = StorageServiceClient::new(ch.storaged.clone());
        let pools = s
            .list_all_pools(sto::ListAllPoolsRequest::default())
            .await
            .expect("ListAllPools")
            .into_inner()
            .pools;
        let mut have_pool = false;
        for p in pools {
            let r = pool_ref(&p.name);
            if p.name == POOL {
                have_pool = true;
                if p.autostart {
                    s.set_pool_autostart(sto::SetPoolAutostartRequest {
                        pool: r.clone(),
                        autostart: false,
                    })
                    .await
                    .expect("restore: pool autostart");
                }
                continue;
            }
            if p.active {
                s.destroy_pool(sto::DestroyPoolRequest { pool: r.clone() })
                    .await
                    .unwrap_or_else(|e| panic!("restore: destroy pool {}: {e:?}", p.name));
            }
            if p.persistent {
                s.undefine_pool(sto::UndefinePoolRequest { pool: r })
                    .await
                    .unwrap_or_else(|e| panic!("restore: undefine pool {}: {e:?}", p.name));
            }
        }
        let current_pool_xml = if have_pool {
            s.get_pool_xml(sto::GetPoolXmlRequest {
                pool: pool_ref(POOL),
                inactive: true,
            })
            .await
            .ok()
            .map(|r| strip_pool_sizes(&r.into_inner().xml))
        } else {
            None
        };
        let want_pool_xml =
            current_pool_xml.is_some_and(|x| x.contains(&*self.pool_dir.display().to_string()));
        if !want_pool_xml {
            if have_pool {
                let _ = s
                    .destroy_pool(sto::DestroyPoolRequest {
                        pool: pool_ref(POOL),
                    })
                    .await;
            }
            s.define_pool(sto::DefinePoolRequest {
                xml: self.pool_xml.clone(),
                validate: false,
            })
            .await
            .expect("restore: define pool");
        }
        std::fs::create_dir_all(&self.pool_dir).expect("pool dir");
        let active = s
            .list_all_pools(sto::ListAllPoolsRequest::default())
            .await
            .expect("ListAllPools")
            .into_inner()
            .pools
            .iter()
            .any(|p| p.name == POOL && p.active);
        if !active {
            s.start_pool(sto::StartPoolRequest {
                pool: pool_ref(POOL),
                ..Default::default()
            })
            .await
            .expect("restore: start pool");
        } else {
            s.refresh_pool(sto::RefreshPoolRequest {
                pool: pool_ref(POOL),
            })
            .await
            .expect("restore: refresh pool");
        }
        let vols = s
            .list_all_volumes(sto::ListAllVolumesRequest {
                pool: pool_ref(POOL),
            })
            .await
            .expect("ListAllVolumes")
            .into_inner()
            .volumes;
        for v in vols {
            // Every volume is recreated: a fuzzed call may have resized,
            // wiped or written to the fixture.
            s.delete_volume(sto::DeleteVolumeRequest {
                volume: vol_ref(&v.name),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("restore: delete volume {}: {e:?}", v.name));
        }
        s.create_volume(sto::CreateVolumeRequest {
            pool: pool_ref(POOL),
            xml: self.vol_xml.clone(),
            ..Default::default()
        })
        .await
        .expect("restore: create volume");
    }

    async fn restore_networks(&self, ch: &Channels) {
        let mut n = NetworkServiceClient::new(ch.networkd.clone());
        let nets = n
            .list_all_networks(net::ListAllNetworksRequest::default())
            .await
            .expect("ListAllNetworks")
            .into_inner()
            .networks;
        for x in nets {
            let r = net_ref(&x.name);
            if x.active {
                n.destroy_network(net::DestroyNetworkRequest { network: r.clone() })
                    .await
                    .unwrap_or_else(|e| panic!("restore: destroy network {}: {e:?}", x.name));
            }
            if x.name == NET {
                if x.autostart {
                    n.set_network_autostart(net::SetNetworkAutostartRequest {
                        network: r,
                        autostart: false,
                    })
                    .await
                    .expect("restore: network autostart");
                }
            } else if x.persistent {
                n.undefine_network(net::UndefineNetworkRequest { network: r })
                    .await
                    .unwrap_or_else(|e| panic!("restore: undefine network {}: {e:?}", x.name));
            }
        }
        n.define_network(net::DefineNetworkRequest {
            xml: self.net_xml.clone(),
            validate: false,
        })
        .await
        .expect("restore: define network");
    }

    /// Admin settings: the ones the daemons started with.
    async fn restore_admin(&self, ch: &Channels) {
        for (i, c) in ch.admin.iter().enumerate() {
            let mut a = AdminServiceClient::new(c.clone());
            for (server, l) in self.limits.get(i).into_iter().flatten() {
                a.set_server_limits(adm::SetServerLimitsRequest {
                    server: Some(server.clone()),
                    limits: Some(adm::ServerLimits {
                        max_client_requests: None,
                        ..*l
                    }),
                })
                .await
                .expect("restore: server limits");
            }
            a.set_log_filters(adm::SetLogFiltersRequest {
                filters: String::new(),
            })
            .await
            .expect("restore: log filters");
            a.set_log_outputs(adm::SetLogOutputsRequest {
                outputs: String::new(),
            })
            .await
            .expect("restore: log outputs");
        }
    }

    /// A check of every daemon: still running, no new "panicked" in its
    /// output. Returns what is wrong.
    fn check_daemons(&mut self) -> Vec<String> {
        let mut bad = Vec::new();
        for (i, d) in self.daemons.iter_mut().enumerate() {
            // Only what was written since the last look.
            let mut new = Vec::new();
            if let Ok(mut f) = std::fs::File::open(d.log_path()) {
                use std::io::{Read, Seek, SeekFrom};
                let _ = f.seek(SeekFrom::Start(self.seen_output[i] as u64));
                let _ = f.read_to_end(&mut new);
            }
            self.seen_output[i] += new.len();
            let new = String::from_utf8_lossy(&new);
            if new.contains("panicked") {
                bad.push(format!("{} panicked:\n{new}", d.name()));
            }
            if !d.is_running() {
                bad.push(format!("{} is no longer running:\n{new}", d.name()));
            }
        }
        bad
    }
}

/// Which parts of the state to put back.
#[derive(Clone, Copy, Debug, Default)]
struct Parts {
    domains: bool,
    storage: bool,
    networks: bool,
    admin: bool,
}

impl Parts {
    const ALL: Parts = Parts {
        domains: true,
        storage: true,
        networks: true,
        admin: true,
    };

    /// The parts the keys of a snapshot difference belong to (all of them
    /// for a key of no known part).
    fn of(keys: &[&String]) -> Parts {
        let mut p = Parts::default();
        for k in keys {
            let k = k.as_str();
            let has = |prefixes: &[&str]| prefixes.iter().any(|x| k.starts_with(x));
            if has(&[
                "domain ",
                "file etc/virt/qemu",
                "file run/virt/qemu",
                "file var/lib/virt/qemu",
            ]) {
                p.domains = true;
            } else if has(&[
                "pool",
                "volume ",
                "file etc/virt/storage",
                "file run/virt/storage",
                "file data/",
            ]) {
                p.storage = true;
            } else if has(&[
                "network",
                "file etc/virt/network",
                "file run/virt/network",
                "file var/lib/virt/dnsmasq",
            ]) {
                p.networks = true;
            } else if has(&["admin "]) {
                p.admin = true;
            } else {
                return Parts::ALL;
            }
        }
        p
    }
}

impl Drop for Env {
    /// A test that fails half-way may leave a started fixture behind:
    /// QEMU and dnsmasq (they outlive their daemon, as in libvirt) and the
    /// bridges of started networks (fixture and fuzzed ones, named `vfz…`,
    /// `fzb…` or `fz-…`).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        tests::procs::kill_under(self.root.path(), &["qemu-system", "dnsmasq"]);
        for e in std::fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == self.bridge || name.starts_with("fzb") || name.starts_with("fz-") {
                tests::netns::ip_quiet(&["link", "del", &name]);
            }
        }
    }
}

fn vol_ref(name: &str) -> Option<sto::VolumeRef> {
    Some(sto::VolumeRef {
        by: Some(sto::volume_ref::By::PoolVolume(sto::PoolVolume {
            pool: POOL.into(),
            name: name.into(),
        })),
    })
}

fn net_ref(name: &str) -> Option<net::NetworkRef> {
    Some(net::NetworkRef {
        by: Some(net::network_ref::By::Name(name.into())),
    })
}

/// A pool's XML without the numbers of the file system it lives on (other
/// processes write to it).
fn strip_pool_sizes(xml: &str) -> String {
    xml.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("<capacity")
                || t.starts_with("<allocation")
                || t.starts_with("<available"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A volume's XML without its file times (a read changes the access
/// time; the contents are compared through the pool directory's files).
fn strip_timestamps(xml: &str) -> String {
    match (xml.find("<timestamps>"), xml.find("</timestamps>")) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{}", &xml[..a], &xml[b + "</timestamps>".len()..])
        }
        _ => xml.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------

type Snapshot = BTreeMap<String, String>;

fn dbg<T: std::fmt::Debug>(v: T) -> String {
    format!("{v:?}")
}

/// What a snapshot asks the daemons again; the rest is copied from the
/// previous snapshot.
#[derive(Clone, Copy, Debug)]
struct Scope {
    domains: bool,
    storage: bool,
    networks: bool,
    /// The admin settings of these daemons (indexes into `Env::daemons`).
    admin: Option<usize>,
    all_admin: bool,
}

impl Scope {
    const ALL: Scope = Scope {
        domains: true,
        storage: true,
        networks: true,
        admin: None,
        all_admin: true,
    };

    /// What a call of `m` over `route` can change. virtqemud calls
    /// virtstoraged and virtnetworkd (volumes, ports); those two call no
    /// other daemon. Admin settings change only through the admin service;
    /// an admin Reload re-reads that daemon's definitions.
    fn of(env: &Env, m: &Method, route: Route) -> Scope {
        let none = Scope {
            domains: false,
            storage: false,
            networks: false,
            admin: None,
            all_admin: false,
        };
        match route {
            Route::Admin(d) => Scope {
                domains: env.daemons[d].name() == "virtqemud",
                storage: env.daemons[d].name() == "virtstoraged",
                networks: env.daemons[d].name() == "virtnetworkd",
                admin: Some(d),
                ..none
            },
            _ => match owner(&m.service) {
                "virtqemud" => Scope {
                    domains: true,
                    storage: true,
                    networks: true,
                    ..none
                },
                "virtstoraged" => Scope {
                    storage: true,
                    ..none
                },
                _ => Scope {
                    networks: true,
                    ..none
                },
            },
        }
    }
}

/// Everything a call could change, as comparable text: the parts in
/// `scope` asked again, the others taken from `prev` (all asked without
/// one). The files are always looked at.
async fn snapshot(env: &Env, ch: &Channels, prev: Option<&Snapshot>, scope: Scope) -> Snapshot {
    let scope = if prev.is_none() { Scope::ALL } else { scope };
    let mut snap = Snapshot::new();
    let (a, b, c) = tokio::join!(
        async {
            if scope.domains {
                Some(snap_domains(ch.qemud.clone()).await)
            } else {
                None
            }
        },
        async {
            if scope.storage {
                Some(snap_storage(ch.storaged.clone()).await)
            } else {
                None
            }
        },
        async {
            if scope.networks {
                Some(snap_networks(ch.networkd.clone()).await)
            } else {
                None
            }
        },
    );
    let admin_of = |i: usize| scope.all_admin || scope.admin == Some(i);
    let fresh = futures::future::join_all(
        ch.admin
            .iter()
            .enumerate()
            .filter(|(i, _)| admin_of(*i))
            .map(|(i, c)| snap_admin(env.daemons[i].name(), c.clone())),
    )
    .await;
    for part in [a, b, c].into_iter().flatten().chain(fresh) {
        snap.extend(part);
    }
    if let Some(p) = prev {
        let kept = |k: &str| {
            let is = |prefixes: &[&str]| prefixes.iter().any(|x| k.starts_with(x));
            if is(&["domain"]) {
                !scope.domains
            } else if is(&["pool", "volume"]) {
                !scope.storage
            } else if is(&["network"]) {
                !scope.networks
            } else if let Some(rest) = k.strip_prefix("admin ") {
                !env.daemons
                    .iter()
                    .enumerate()
                    .any(|(i, d)| admin_of(i) && rest.starts_with(&format!("{} ", d.name())))
            } else {
                false
            }
        };
        snap.extend(
            p.iter()
                .filter(|(k, _)| kept(k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    snap_files(env, &mut snap);
    snap
}

async fn snap_domains(ch: Channel) -> Snapshot {
    let mut out = Snapshot::new();
    let mut d = DomainServiceClient::new(ch);
    let list = d
        .list_all_domains(dom::ListAllDomainsRequest::default())
        .await
        .map(|r| r.into_inner().domains);
    let list = match list {
        Ok(l) => l,
        Err(e) => {
            out.insert("domains".into(), dbg(e.code()));
            return out;
        }
    };
    for s in list {
        let name = s
            .domain
            .as_ref()
            .map(|x| x.name.clone())
            .unwrap_or_default();
        let r = Some(dom::DomainRef {
            by: Some(dom::domain_ref::By::Name(name.clone())),
        });
        let (mut d1, mut d2) = (d.clone(), d.clone());
        let (mut live, inactive) = tokio::join!(
            async {
                d1.get_xml(dom::GetXmlRequest {
                    domain: r.clone(),
                    ..Default::default()
                })
                .await
                .map(|x| x.into_inner().xml)
                .map_err(|e| e.code())
            },
            async {
                d2.get_xml(dom::GetXmlRequest {
                    domain: r.clone(),
                    inactive: true,
                    ..Default::default()
                })
                .await
                .map(|x| x.into_inner().xml)
                .map_err(|e| e.code())
            }
        );
        if live == inactive {
            live = Ok("(same)".into());
        }
        out.insert(format!("domain {name}"), dbg(&s));
        out.insert(format!("domain {name} xml"), dbg(live));
        out.insert(format!("domain {name} inactive xml"), dbg(inactive));
    }
    out
}

async fn snap_storage(ch: Channel) -> Snapshot {
    let mut out = Snapshot::new();
    let mut s = StorageServiceClient::new(ch);
    let pools = match s.list_all_pools(sto::ListAllPoolsRequest::default()).await {
        Ok(r) => r.into_inner().pools,
        Err(e) => {
            out.insert("pools".into(), dbg(e.code()));
            return out;
        }
    };
    for p in pools {
        let (mut s1, mut s2) = (s.clone(), s.clone());
        let (xml, vols) = tokio::join!(
            async {
                s1.get_pool_xml(sto::GetPoolXmlRequest {
                    pool: pool_ref(&p.name),
                    inactive: false,
                })
                .await
                .map(|x| strip_pool_sizes(&x.into_inner().xml))
                .map_err(|e| e.code())
            },
            async {
                if !p.active {
                    return Vec::new();
                }
                s2.list_all_volumes(sto::ListAllVolumesRequest {
                    pool: pool_ref(&p.name),
                })
                .await
                .map(|r| r.into_inner().volumes)
                .unwrap_or_default()
            }
        );
        out.insert(format!("pool {}", p.name), dbg(&p));
        out.insert(format!("pool {} xml", p.name), dbg(xml));
        for v in vols {
            let xml = s
                .get_volume_xml(sto::GetVolumeXmlRequest {
                    volume: Some(sto::VolumeRef {
                        by: Some(sto::volume_ref::By::PoolVolume(sto::PoolVolume {
                            pool: p.name.clone(),
                            name: v.name.clone(),
                        })),
                    }),
                })
                .await
                .map(|x| strip_timestamps(&x.into_inner().xml))
                .map_err(|e| e.code());
            out.insert(format!("volume {}/{}", p.name, v.name), dbg((&v, xml)));
        }
    }
    out
}

async fn snap_networks(ch: Channel) -> Snapshot {
    let mut out = Snapshot::new();
    let mut n = NetworkServiceClient::new(ch);
    let nets = match n
        .list_all_networks(net::ListAllNetworksRequest::default())
        .await
    {
        Ok(r) => r.into_inner().networks,
        Err(e) => {
            out.insert("networks".into(), dbg(e.code()));
            return out;
        }
    };
    for x in nets {
        let (mut n1, mut n2) = (n.clone(), n.clone());
        let (xml, ports) = tokio::join!(
            async {
                n1.get_network_xml(net::GetNetworkXmlRequest {
                    network: net_ref(&x.name),
                    inactive: false,
                })
                .await
                .map(|r| r.into_inner().xml)
                .map_err(|e| e.code())
            },
            async {
                n2.list_all_ports(net::ListAllPortsRequest {
                    network: net_ref(&x.name),
                })
                .await
                .map(|r| r.into_inner().ports)
                .map_err(|e| e.code())
            }
        );
        out.insert(format!("network {}", x.name), dbg(&x));
        out.insert(format!("network {} xml", x.name), dbg(xml));
        out.insert(format!("network {} ports", x.name), dbg(ports));
    }
    out
}

async fn snap_admin(daemon: &str, ch: Channel) -> Snapshot {
    let mut out = Snapshot::new();
    let mut a = AdminServiceClient::new(ch);
    let servers = a
        .list_servers(adm::ListServersRequest {})
        .await
        .map(|r| r.into_inner().names)
        .unwrap_or_default();
    for s in &servers {
        let limits = a
            .get_server_limits(adm::GetServerLimitsRequest {
                server: Some(s.clone()),
            })
            .await
            .map(|r| r.into_inner().limits)
            .map_err(|e| e.code());
        out.insert(format!("admin {daemon} {s} limits"), dbg(limits));
    }
    let filters = a
        .get_log_filters(adm::GetLogFiltersRequest {})
        .await
        .map(|r| r.into_inner().filters)
        .map_err(|e| e.code());
    let outputs = a
        .get_log_outputs(adm::GetLogOutputsRequest {})
        .await
        .map(|r| r.into_inner().outputs)
        .map_err(|e| e.code());
    out.insert(format!("admin {daemon} servers"), dbg(servers));
    out.insert(format!("admin {daemon} log"), dbg((filters, outputs)));
    out
}

/// Files: everything under etc/ and the pool directory with a hash of
/// its contents; elsewhere under the root, which paths exist (logs,
/// sockets and runtime files come and go with the daemons' own work).
fn snap_files(env: &Env, snap: &mut Snapshot) {
    let root = env.root.path();
    let mut content_dirs = vec![root.join("etc"), env.pool_dir.clone()];
    content_dirs.retain(|d| d.exists());
    walk(root, root, &content_dirs, snap);
}

fn walk(root: &Path, dir: &Path, content_dirs: &[PathBuf], snap: &mut Snapshot) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        // The daemons' own output and logs, QEMU's logs and per-boot
        // runtime files change with every call or start.
        if rel.starts_with("test-logs")
            || rel.starts_with("var/log")
            || rel.starts_with("var/cache")
        {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let with_content = content_dirs.iter().any(|d| p.starts_with(d));
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).unwrap_or_default();
            snap.insert(format!("file {rel}"), format!("-> {}", target.display()));
        } else if meta.is_dir() {
            snap.insert(format!("file {rel}"), "dir".into());
            walk(root, &p, content_dirs, snap);
        } else if with_content && meta.len() <= 16 << 20 {
            let data = std::fs::read(&p).unwrap_or_default();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            data.hash(&mut h);
            snap.insert(
                format!("file {rel}"),
                format!("{} bytes, hash {:016x}", data.len(), h.finish()),
            );
        } else if with_content {
            snap.insert(format!("file {rel}"), format!("{} bytes", meta.len()));
        } else {
            snap.insert(format!("file {rel}"), "file".into());
        }
    }
}

/// A snapshot without the daemons' derived runtime files.
fn primary(s: &Snapshot) -> Snapshot {
    s.iter()
        .filter(|(k, _)| !k.starts_with("file run/") && !k.starts_with("file var/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The differences between two snapshots, one line each.
fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (before.get(k), after.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => out.push(format!(
                "changed {k}:\n    was {}\n    now {}",
                clip(a),
                clip(b)
            )),
            (Some(a), None) => out.push(format!("gone {k} (was {})", clip(a))),
            (None, Some(b)) => out.push(format!("new {k}: {}", clip(b))),
            (None, None) => {}
        }
    }
    out
}

fn clip(s: &str) -> String {
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_owned()
    }
}

// ---------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------

/// How one call ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    /// A stream that was still open, without error, when we stopped reading.
    Open,
    Failed(tonic::Status),
    Hang,
}

/// Where a call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Direct,
    Proxy,
    Admin(usize),
}

/// The daemon that serves a service.
fn owner(service: &str) -> &'static str {
    match service {
        s if s.starts_with("virt.domain.") => "virtqemud",
        s if s.starts_with("virt.storage.") => "virtstoraged",
        s if s.starts_with("virt.network.") => "virtnetworkd",
        s => panic!("no daemon serves {s}: teach the fuzz test which one"),
    }
}

fn channel_for(ch: &Channels, m: &Method, route: Route) -> Channel {
    match route {
        Route::Admin(i) => ch.admin[i].clone(),
        Route::Proxy => ch.proxy.clone(),
        Route::Direct => match owner(&m.service) {
            "virtqemud" => ch.qemud.clone(),
            "virtstoraged" => ch.storaged.clone(),
            _ => ch.networkd.clone(),
        },
    }
}

/// A first message of an upload naming the real volume, with fuzzed
/// offset, length and flags: the stream then goes on with fuzzed messages.
fn upload_header(rng: &mut Rng) -> Vec<u8> {
    let big = [0u64, 1, 4096, 65_536, 1 << 20, 1 << 40, u64::MAX];
    sto::UploadVolumeRequest {
        msg: Some(sto::upload_volume_request::Msg::Header(sto::UploadHeader {
            volume: vol_ref(VOL),
            offset: *rng.pick(&big),
            length: *rng.pick(&big),
            sparse: rng.chance(1, 2),
        })),
    }
    .encode_to_vec()
}

/// One fuzzed call of `m`: the request, its outcome and a description.
async fn call(
    ch: &Channels,
    m: &Method,
    route: Route,
    g: &mut Gen<'_>,
    blob: bool,
) -> (Outcome, String, Vec<u8>) {
    let channel = channel_for(ch, m, route);
    let fut = async {
        if m.client_streaming {
            let mut msgs = Vec::new();
            if g.rng.chance(1, 3) {
                msgs.push(upload_header(g.rng));
            }
            for _ in 0..g.rng.below(4) {
                msgs.push(g.request(&m.input));
            }
            let desc = format!(
                "{} messages: {}",
                msgs.len(),
                msgs.iter().map(|b| show(b)).collect::<Vec<_>>().join(", ")
            );
            let r = fuzz::client_streaming(channel, &m.path, msgs).await;
            (r.map(|_| Outcome::Ok), desc, Vec::new())
        } else {
            let body = if blob { g.blob() } else { g.request(&m.input) };
            let desc = show(&body);
            let sent = body.clone();
            if m.server_streaming {
                let read_for = if m.name == "WatchEvents" {
                    WATCH_READ
                } else {
                    CALL_TIMEOUT
                };
                let r = fuzz::server_streaming(channel, &m.path, body, read_for).await;
                let r = r.map(|e| match e {
                    StreamEnd::Finished(_) => Outcome::Ok,
                    StreamEnd::Open(_) if m.name == "WatchEvents" => Outcome::Open,
                    StreamEnd::Open(_) => Outcome::Hang,
                });
                (r, desc, sent)
            } else {
                let r = fuzz::unary(channel, &m.path, body).await;
                (r.map(|_| Outcome::Ok), desc, sent)
            }
        }
    };
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Err(_) => (Outcome::Hang, "(timed out)".into(), Vec::new()),
        Ok((Ok(o), desc, sent)) => (o, desc, sent),
        Ok((Err(s), desc, sent)) => (Outcome::Failed(s), desc, sent),
    }
}

/// A request for a report: its size and first bytes.
fn show(b: &[u8]) -> String {
    let head: String = b.iter().take(48).map(|x| format!("{x:02x}")).collect();
    format!(
        "[{} bytes {}{}]",
        b.len(),
        head,
        if b.len() > 48 { "..." } else { "" }
    )
}

/// How many more descriptors than at the start a daemon may hold at the
/// end (the test's own connections are closed by then).
const FD_SLACK: usize = 8;

/// The number of open file descriptors of a daemon.
fn open_fds(d: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// An upload that failed after writing: it may change its volume (the
/// data goes in as it arrives, as libvirt's streams), only that volume, and
/// only if its error says so.
fn kept_upload(
    m: &Method,
    outcome: &Outcome,
    before: &Snapshot,
    after: &Snapshot,
    env: &Env,
) -> bool {
    let Outcome::Failed(s) = outcome else {
        return false;
    };
    let says_so = s.message().contains("the volume keeps what was written")
        || s.message()
            .contains("the data written so far stays in the volume");
    if m.name != "UploadVolume" || !says_so {
        return false;
    }
    let root = env.root.path();
    let file = format!(
        "file {}",
        env.pool_dir
            .join(VOL)
            .strip_prefix(root)
            .unwrap_or(root)
            .display()
    );
    let vol = format!("volume {POOL}/{VOL}");
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .all(|k| before.get(k) == after.get(k) || *k == file || *k == vol)
}

/// Failures with a code the test would refuse, known and left for a fix in
/// files this test's change did not touch: (method path, code, words of
/// the message, where the fix belongs). Each one seen is printed.
const KNOWN: &[(&str, Code, &str, &str)] = &[];

fn known(m: &Method, s: &tonic::Status) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(p, c, words, _)| *p == m.path && *c == s.code() && s.message().contains(words))
        .map(|k| k.3)
}

/// The codes a bad request may get. INTERNAL, UNKNOWN and UNAVAILABLE are
/// the daemon's failure, not the caller's.
fn deliberate(code: Code) -> bool {
    matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unimplemented
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

// ---------------------------------------------------------------------------
// Requests that found bugs
// ---------------------------------------------------------------------------

/// A request the fuzzer once found a bug with, sent as it was: its code,
/// and that it changed nothing. They run before the random ones, so each
/// stays checked whatever the seed.
struct Regression {
    what: &'static str,
    path: &'static str,
    /// One message for a unary call, several for an upload.
    messages: Vec<Vec<u8>>,
    code: Code,
}

fn regression_list(env: &Env) -> Vec<Regression> {
    let huge = "a".repeat(fuzz::HUGE);
    let long = "n".repeat(201);
    let not_utf8 = vec![0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe];
    let upload = |msg| sto::UploadVolumeRequest { msg: Some(msg) }.encode_to_vec();
    use sto::upload_volume_request::Msg;
    vec![
        Regression {
            what: "a hole of 2^64-1 bytes in a sparse upload (wrote zeroes until the disk was full)",
            path: "/virt.storage.v1.StorageService/UploadVolume",
            messages: vec![
                upload(Msg::Header(sto::UploadHeader {
                    volume: vol_ref(VOL),
                    offset: 0,
                    length: u64::MAX,
                    sparse: true,
                })),
                upload(Msg::Hole(u64::MAX)),
                upload(Msg::End(sto::UploadEnd {})),
            ],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a 1 MiB name quoted in the error (the reply's headers broke the connection)",
            path: "/virt.storage.v1.StorageService/DownloadVolume",
            messages: vec![
                sto::DownloadVolumeRequest {
                    volume: Some(sto::VolumeRef {
                        by: Some(sto::volume_ref::By::Path(huge.clone())),
                    }),
                    ..Default::default()
                }
                .encode_to_vec(),
            ],
            code: Code::NotFound,
        },
        Regression {
            what: "a request cut short, on a hand-written fast path (was INTERNAL)",
            path: "/virt.domain.v1.DomainService/ListAllDomains",
            messages: vec![vec![0x0a, 0x02, 0x3a, 0x80]],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a string that is not UTF-8, on a hand-written fast path (was INTERNAL)",
            path: "/virt.storage.v1.StorageService/ListAllVolumes",
            messages: vec![not_utf8],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a pool with a relative target path, built (made directories in the daemon's cwd)",
            path: "/virt.storage.v1.StorageService/CreatePool",
            messages: vec![
                sto::CreatePoolRequest {
                    xml: "<pool type='dir'><name>fz-rel</name>\
                          <target><path>../../etc/passwd</path></target></pool>"
                        .into(),
                    build: true,
                    ..Default::default()
                }
                .encode_to_vec(),
            ],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a pool whose target directory does not exist (was INTERNAL)",
            path: "/virt.storage.v1.StorageService/CreatePool",
            messages: vec![
                sto::CreatePoolRequest {
                    xml: format!(
                        "<pool type='dir'><name>fz-nodir</name>\
                         <target><path>{}/missing</path></target></pool>",
                        env.scratch()
                    ),
                    ..Default::default()
                }
                .encode_to_vec(),
            ],
            code: Code::NotFound,
        },
        Regression {
            what: "a pool name that is taken, with another UUID (was INTERNAL)",
            path: "/virt.storage.v1.StorageService/DefinePool",
            messages: vec![
                sto::DefinePoolRequest {
                    xml: format!(
                        "<pool type='dir'><name>{POOL}</name><target><path>{}</path></target></pool>",
                        env.scratch()
                    ),
                    validate: false,
                }
                .encode_to_vec(),
            ],
            code: Code::AlreadyExists,
        },
        Regression {
            what: "a pool name too long for its files (failed at the write, INTERNAL)",
            path: "/virt.storage.v1.StorageService/DefinePool",
            messages: vec![
                sto::DefinePoolRequest {
                    xml: format!(
                        "<pool type='dir'><name>{}</name><target><path>{}</path></target></pool>",
                        "p".repeat(240),
                        env.scratch()
                    ),
                    validate: false,
                }
                .encode_to_vec(),
            ],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a domain name too long for its files (failed at the write)",
            path: "/virt.domain.v1.DomainService/DefineXml",
            messages: vec![
                dom::DefineXmlRequest {
                    xml: format!(
                        "<domain type='qemu'><name>{long}</name><memory unit='MiB'>64</memory>\
                         <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
                    ),
                    validate: false,
                }
                .encode_to_vec(),
            ],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a network name too long for its files (failed at the status write, INTERNAL)",
            path: "/virt.network.v1.NetworkService/CreateNetwork",
            messages: vec![
                net::CreateNetworkRequest {
                    xml: format!("<network><name>{long}</name><bridge name='fzblong'/></network>"),
                    validate: false,
                }
                .encode_to_vec(),
            ],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a bridge name longer than an interface name may be (was defined)",
            path: "/virt.network.v1.NetworkService/DefineNetwork",
            messages: vec![
                net::DefineNetworkRequest {
                    xml: format!(
                        "<network><name>fz-br</name><bridge name='{NET_UUID}'/></network>"
                    ),
                    validate: false,
                }
                .encode_to_vec(),
            ],
            code: Code::InvalidArgument,
        },
        Regression {
            what: "a network whose bridge name nft does not take bare (its rules failed, INTERNAL)",
            path: "/virt.network.v1.NetworkService/CreateNetwork",
            messages: vec![
                net::CreateNetworkRequest {
                    xml: "<network><name>fz-dash</name><bridge name='-1'/></network>".into(),
                    validate: false,
                }
                .encode_to_vec(),
            ],
            code: Code::Ok,
        },
        Regression {
            what: "a resize past the pool's free space, allocated (was INTERNAL)",
            path: "/virt.storage.v1.StorageService/ResizeVolume",
            messages: vec![
                sto::ResizeVolumeRequest {
                    volume: vol_ref(VOL),
                    capacity: 1 << 40,
                    allocate: true,
                    ..Default::default()
                }
                .encode_to_vec(),
            ],
            code: Code::ResourceExhausted,
        },
    ]
}

/// Sends every [`regression_list`] request: each must get its code and
/// change nothing (one expected to succeed is undone by the restore).
async fn regressions(env: &Env, ch: &Channels, sch: &Channels, original: &Snapshot) {
    for r in regression_list(env) {
        let m = fuzz::methods()
            .into_iter()
            .find(|m| m.path == r.path)
            .unwrap_or_else(|| panic!("{} is not an RPC any more", r.path));
        let channel = channel_for(ch, &m, Route::Direct);
        let result = if m.client_streaming {
            fuzz::client_streaming(channel, r.path, r.messages)
                .await
                .map(|_| ())
        } else if m.server_streaming {
            let body = r.messages.into_iter().next().expect("one message");
            fuzz::server_streaming(channel, r.path, body, CALL_TIMEOUT)
                .await
                .map(|_| ())
        } else {
            let body = r.messages.into_iter().next().expect("one message");
            fuzz::unary(channel, r.path, body).await.map(|_| ())
        };
        if r.code == Code::Ok {
            result.unwrap_or_else(|e| panic!("{}: {} {e:?}", r.what, r.path));
            env.restore(sch).await;
            let after = snapshot(env, sch, None, Scope::ALL).await;
            let d = diff(&primary(original), &primary(&after));
            assert!(
                d.is_empty(),
                "{}: not undone:\n  {}",
                r.what,
                d.join("\n  ")
            );
            continue;
        }
        let s = result.expect_err(r.what);
        assert_eq!(s.code(), r.code, "{}: {} {s:?}", r.what, r.path);
        assert!(
            std::error::Error::source(&s).is_none(),
            "{}: the connection broke: {s:?}",
            r.what
        );
        assert!(
            s.message().len() <= common::error::MAX_STATUS_MESSAGE + 100,
            "{}: a message of {} bytes",
            r.what,
            s.message().len()
        );
        let after = snapshot(env, sch, None, Scope::ALL).await;
        let d = diff(original, &after);
        assert!(
            d.is_empty(),
            "{}: the state changed:\n  {}",
            r.what,
            d.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    calls: usize,
    /// (service, code) → count.
    codes: BTreeMap<(String, String), usize>,
    /// (method, code) → count, printed with FUZZ_VERBOSE=1.
    method_codes: BTreeMap<(String, String), usize>,
    /// Time in the fuzzed calls and in the snapshots after them.
    call_time: Duration,
    snapshot_time: Duration,
    /// Known failures seen (see [`KNOWN`]).
    known: BTreeMap<String, usize>,
    /// Failures without an ErrorDetail: "code message" → count.
    no_detail: BTreeMap<String, usize>,
    /// Successful calls that changed state (method, what changed).
    changes: Vec<String>,
    violations: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_bad_requests_cleanly() {
    let seed = fuzz::seed_from_env();
    let iters = fuzz::env_number("FUZZ_ITERS", DEFAULT_ITERS);
    let started = Instant::now();
    let mut env = Env::start().await;
    // The fuzzed calls and the snapshots go over connections of their own:
    // a call that breaks its connection does not hide in a failed snapshot.
    let mut ch = env.channels().await;
    let mut sch = env.channels().await;
    let hits = env.hits();
    let scratch = env.scratch();
    let methods = fuzz::methods();

    // Every RPC of the access table is fuzzed, and every service has a daemon.
    let paths: Vec<&str> = methods.iter().map(|m| m.path.as_str()).collect();
    let table: Vec<&str> = proto::METHOD_ACCESS.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        paths, table,
        "the fuzzed RPCs are exactly proto::METHOD_ACCESS"
    );
    for m in &methods {
        if !m.service.starts_with("virt.admin.") {
            owner(&m.service);
        }
    }

    // FUZZ_TRACE=Start prints every call of the methods whose path contains it.
    let trace = std::env::var("FUZZ_TRACE").ok();
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let mut time_per_method: Vec<(Duration, &str)> = Vec::new();
    let original = snapshot(&env, &sch, None, Scope::ALL).await;
    regressions(&env, &ch, &sch, &original).await;
    // Taken again: a restore may leave the daemons' derived files otherwise.
    let mut before = snapshot(&env, &sch, None, Scope::ALL).await;
    let fds_at_start: Vec<usize> = env.daemons.iter().map(open_fds).collect();
    for m in &methods {
        let method_started = Instant::now();
        for i in 0..iters {
            let route = if m.service.starts_with("virt.admin.") {
                Route::Admin(i % env.daemons.len())
            } else if i % 4 == 3 {
                Route::Proxy
            } else {
                Route::Direct
            };
            let target = match route {
                Route::Admin(d) => env.daemons[d].name().to_owned(),
                Route::Proxy => format!("virtproxyd→{}", owner(&m.service)),
                Route::Direct => owner(&m.service).to_owned(),
            };
            let mut g = Gen::new(&mut rng, &hits, &scratch);
            // CloseClient may close one of our own connections: note which
            // ids are ours (the peer pid is ours) before the call.
            let ours: Vec<u64> = if m.name == "CloseClient" {
                let Route::Admin(d) = route else {
                    unreachable!()
                };
                AdminServiceClient::new(ch.admin[d].clone())
                    .list_clients(adm::ListClientsRequest { server: None })
                    .await
                    .map(|r| r.into_inner().clients)
                    .unwrap_or_default()
                    .iter()
                    .filter(|c| c.pid == i32::try_from(std::process::id()).ok())
                    .map(|c| c.id)
                    .collect()
            } else {
                Vec::new()
            };
            let t_call = Instant::now();
            // Every eighth request is a random blob, whatever the method.
            let (outcome, desc, sent) = call(&ch, m, route, &mut g, i % 8 == 0).await;
            stats.call_time += t_call.elapsed();
            stats.calls += 1;
            let what = format!("{} via {target} with {desc}", m.path);
            if trace.as_deref().is_some_and(|t| m.path.contains(t)) {
                let shown = match &outcome {
                    Outcome::Failed(s) => format!("{:?} {}", s.code(), s.message()),
                    o => format!("{o:?}"),
                };
                println!("trace: {what}\n    -> {shown}");
            }
            let (code, failed) = match &outcome {
                Outcome::Ok | Outcome::Open => (Code::Ok, false),
                Outcome::Failed(s) => (s.code(), true),
                Outcome::Hang => {
                    stats.violations.push(format!("HANG: {what}"));
                    (Code::DeadlineExceeded, true)
                }
            };
            let short = m
                .service
                .rsplit('.')
                .next()
                .unwrap_or(&m.service)
                .to_owned();
            *stats.codes.entry((short, format!("{code:?}"))).or_default() += 1;
            *stats
                .method_codes
                .entry((m.path.clone(), format!("{code:?}")))
                .or_default() += 1;
            if let Outcome::Failed(s) = &outcome
                && std::error::Error::source(s).is_none()
                && status_detail(s).is_none()
            {
                let head: String = s.message().chars().take(40).collect();
                *stats
                    .no_detail
                    .entry(format!("{:?} {head}", s.code()))
                    .or_default() += 1;
            }
            if let Outcome::Failed(s) = &outcome {
                let own_connection = m.name == "CloseClient"
                    && matches!(s.code(), Code::Unavailable | Code::Unknown | Code::Internal)
                    && adm::CloseClientRequest::decode(&sent[..])
                        .is_ok_and(|r| ours.contains(&r.id));
                if !own_connection && std::error::Error::source(s).is_some() {
                    stats.violations.push(format!(
                        "CONNECTION broken ({:?} \"{}\", {:?}): {what}",
                        s.code(),
                        s.message(),
                        std::error::Error::source(s)
                    ));
                } else if let Some(why) = known(m, s) {
                    *stats
                        .known
                        .entry(format!("{} {:?}: {why}", m.path, s.code()))
                        .or_default() += 1;
                } else if !own_connection && !deliberate(s.code()) {
                    stats.violations.push(format!(
                        "CODE {:?} \"{}\" (detail {:?}): {what}",
                        s.code(),
                        s.message(),
                        status_detail(s).map(|d| d.code_name)
                    ));
                } else if s.message().trim().is_empty() {
                    stats
                        .violations
                        .push(format!("EMPTY MESSAGE {:?}: {what}", s.code()));
                }
            }
            for bad in env.check_daemons() {
                stats.violations.push(format!("DAEMON after {what}: {bad}"));
            }
            let closed_ours = m.name == "CloseClient"
                && adm::CloseClientRequest::decode(&sent[..]).is_ok_and(|r| ours.contains(&r.id));
            if closed_ours {
                // One of our connections is gone: fresh ones for everything
                // (the old ones closed first: the admin servers admit few).
                drop((ch, sch));
                ch = env.channels().await;
                sch = env.channels().await;
            }
            let t_snap = Instant::now();
            let after = snapshot(&env, &sch, Some(&before), Scope::of(&env, m, route)).await;
            stats.snapshot_time += t_snap.elapsed();
            if after != before {
                let d = diff(&before, &after);
                if failed && kept_upload(m, &outcome, &before, &after, &env) {
                    stats.changes.push(format!(
                        "{} failed mid-stream, keeping the data written before, as it says ({} lines)",
                        m.path,
                        d.len()
                    ));
                } else if failed {
                    stats.violations.push(format!(
                        "STATE CHANGED by a failed call {what} ({:?}):\n  {}",
                        outcome,
                        d.join("\n  ")
                    ));
                } else if m.access == proto::Access::ReadOnly {
                    stats.violations.push(format!(
                        "STATE CHANGED by a read-only call {what}:\n  {}",
                        d.join("\n  ")
                    ));
                } else {
                    stats.changes.push(format!(
                        "{} ({} lines: {})",
                        m.path,
                        d.len(),
                        clip(&d.join("; "))
                    ));
                }
                let keys: Vec<&String> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|k| before.get(*k) != after.get(*k))
                    .collect();
                env.restore_parts(&sch, Parts::of(&keys)).await;
                before = snapshot(&env, &sch, None, Scope::ALL).await;
                // The daemons' derived runtime files (dnsmasq's, per-object
                // run directories) follow the objects' history: compared
                // between calls, not with the start.
                let left = diff(&primary(&original), &primary(&before));
                assert!(
                    left.is_empty(),
                    "the fixtures could not be put back after {what}:\n  {}",
                    left.join("\n  ")
                );
            }
            if stats.violations.len() > 50 {
                break;
            }
        }
        time_per_method.push((method_started.elapsed(), &m.path));
    }
    time_per_method.sort();
    time_per_method.reverse();

    // Nothing a call opened stays open: with our connections closed, every
    // daemon is back to (at most a few above) its descriptors at the start.
    drop((ch, sch));
    let settled = tests::wait_until(Duration::from_secs(20), || {
        env.daemons
            .iter()
            .zip(&fds_at_start)
            .all(|(d, n)| open_fds(d) <= n + FD_SLACK)
    })
    .await;
    let fds_at_end: Vec<usize> = env.daemons.iter().map(open_fds).collect();
    if !settled {
        stats.violations.push(format!(
            "FDS: open descriptors went from {fds_at_start:?} to {fds_at_end:?} ({:?})",
            env.daemons.iter().map(Daemon::name).collect::<Vec<_>>()
        ));
    }

    let elapsed = started.elapsed();
    println!(
        "fuzz: {} calls over {} RPCs ({} per RPC), seed {seed}, {:.1} s",
        stats.calls,
        methods.len(),
        iters,
        elapsed.as_secs_f64()
    );
    let mut by_service: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((svc, code), n) in &stats.codes {
        by_service
            .entry(svc)
            .or_default()
            .push(format!("{code} {n}"));
    }
    for (svc, codes) in by_service {
        println!("  {svc}: {}", codes.join(", "));
    }
    println!("open descriptors per daemon, start and end: {fds_at_start:?} {fds_at_end:?}");
    println!(
        "time: calls {:.1} s, snapshots {:.1} s",
        stats.call_time.as_secs_f64(),
        stats.snapshot_time.as_secs_f64()
    );
    if std::env::var_os("FUZZ_VERBOSE").is_some() {
        let mut per: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((p, code), n) in &stats.method_codes {
            per.entry(p).or_default().push(format!("{code} {n}"));
        }
        for (p, codes) in per {
            println!("  {p}: {}", codes.join(", "));
        }
    }
    println!("slowest RPCs (their calls, snapshots and restores):");
    for (t, p) in time_per_method.iter().take(6) {
        println!("  {p}: {:.2} s", t.as_secs_f64());
    }
    if !stats.no_detail.is_empty() {
        println!("statuses without the libvirt error detail (tonic's own):");
        for (k, n) in &stats.no_detail {
            println!("  {k}: {n}");
        }
    }
    for (k, n) in &stats.known {
        println!("known issue, seen {n} times: {k}");
    }
    println!(
        "successful calls that changed state ({}):",
        stats.changes.len()
    );
    for c in &stats.changes {
        println!("  {c}");
    }
    assert!(
        stats.violations.is_empty(),
        "{} problems (seed {seed}):\n{}",
        stats.violations.len(),
        stats.violations.join("\n\n")
    );
}
