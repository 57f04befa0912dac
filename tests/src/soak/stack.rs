//! The soak's stack: virtstoraged, virtnetworkd and virtqemud on one
//! temporary root, with a dir pool, an isolated DHCP network and the
//! tiny-guest domains. Daemons are killed with SIGKILL and restarted;
//! everything the stack put on the host (QEMUs, dnsmasq, the bridge, the
//! nftables table) is removed when it is dropped.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto::domain::v1 as dpb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use proto::network::v1 as npb;
use proto::network::v1::network_service_client::NetworkServiceClient;
use proto::storage::v1 as spb;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

pub use crate::calls::{domain_ref as dom_ref, network_ref as net_ref, pool_ref};
use crate::guest::{GuestKind, build_image};
use crate::{Daemon, SocketKind, TestRoot, health_check};

/// The three daemons of the soak, in start order.
pub const SOAK_DAEMONS: [&str; 3] = ["virtstoraged", "virtnetworkd", "virtqemud"];

/// The dir pool holding the volume disks and the scratch volumes.
pub const POOL: &str = "soakpool";
/// The isolated DHCP network of the NIC domains.
pub const NET: &str = "soaknet";

/// The domains that exist for the whole soak: (name, disk, NIC).
pub const MAIN_DOMAINS: [(&str, Disk, bool); 7] = [
    ("plain-0", Disk::File, false),
    ("plain-1", Disk::File, false),
    ("plain-2", Disk::File, false),
    ("vol-0", Disk::Volume, false),
    ("vol-1", Disk::Volume, false),
    ("nic-0", Disk::File, true),
    ("nic-1", Disk::File, true),
];

/// The domains defined and undefined by the soak (never started).
pub const TMP_DOMAINS: [&str; 4] = ["tmp-0", "tmp-1", "tmp-2", "tmp-3"];

/// How many spare pools and networks define/undefine may target.
pub const SPARES: u8 = 4;

/// How many static DHCP hosts net-update may add or delete.
pub const DHCP_HOSTS: u8 = 8;

/// The pool's volumes that back the volume-disk domains (never deleted).
pub const BASE_VOLUMES: [&str; 2] = ["vol-0.img", "vol-1.img"];

/// How long a restarted daemon may take to answer.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// A domain's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// A raw image file of its own.
    File,
    /// A raw volume of [`POOL`] (`<disk type='volume'>`).
    Volume,
}

/// Names on the host that must not collide with other tests.
#[derive(Debug, Clone)]
pub struct HostNames {
    /// Six characters from the root's name.
    pub tag: String,
    /// The network's bridge.
    pub bridge: String,
    /// virtnetworkd's nftables table.
    pub table: String,
    /// The third octet of 172.29.X.0/24.
    pub octet: u8,
}

impl HostNames {
    fn of(root: &Path) -> HostNames {
        let base = root
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("virt-t000000");
        let tag: String = base
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect::<String>()
            .to_ascii_lowercase();
        let h = tag
            .bytes()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
        HostNames {
            bridge: format!("vs{tag}"),
            table: format!("vs_{tag}"),
            octet: u8::try_from(h % 250).unwrap_or(0) + 1,
            tag,
        }
    }

    /// The network's host address.
    pub fn gateway(&self) -> String {
        format!("172.29.{}.1", self.octet)
    }

    /// The static DHCP host `i`'s address.
    pub fn host_ip(&self, i: u8) -> String {
        format!("172.29.{}.{}", self.octet, 10 + i)
    }

    /// The bridge of spare network `i` (never started).
    pub fn spare_bridge(&self, i: u8) -> String {
        format!("vs{}n{i}", self.tag)
    }
}

/// The MAC of static DHCP host `i`.
pub fn host_mac(i: u8) -> String {
    format!("52:54:00:5a:00:{i:02x}")
}

/// The `<host>` element of static DHCP host `i`.
pub fn host_xml(names: &HostNames, i: u8) -> String {
    format!(
        "<host mac='{}' name='soakh{i}' ip='{}'/>",
        host_mac(i),
        names.host_ip(i)
    )
}

/// The MAC of NIC domain `name`.
pub fn nic_mac(name: &str) -> String {
    let n = name.bytes().last().map_or(0, |b| b.wrapping_sub(b'0'));
    format!("52:54:00:5b:00:{n:02x}")
}

/// A stable UUID for a domain name.
pub fn domain_uuid(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    });
    format!(
        "5a0a{:04x}-0000-4000-8000-{:012x}",
        h >> 48,
        h & 0xffff_ffff_ffff
    )
}

/// The description that carries a definition's generation.
pub fn gen_text(generation: u32) -> String {
    format!("soak gen {generation}")
}

/// A restart that found the pid file still locked.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// What the refused daemon said and who held the lock.
    pub who: String,
    /// From the first refusal to the successful start.
    pub for_: Duration,
}

/// One daemon of the stack: a child of ours, or one that another daemon
/// started (virtqemud starts virtstoraged or virtnetworkd when it needs
/// one that is down) and that we found by its pid file.
#[derive(Debug)]
pub enum Handle {
    /// Spawned by us.
    Owned(Daemon),
    /// Found running, by pid.
    Adopted(i32),
}

impl Handle {
    /// Its pid.
    pub fn pid(&self) -> i32 {
        match self {
            Handle::Owned(d) => i32::try_from(d.pid()).unwrap_or(0),
            Handle::Adopted(p) => *p,
        }
    }
}

/// The stack of the soak.
#[derive(Debug)]
pub struct SoakStack {
    // Field order: daemons are dropped (killed) before the root goes.
    daemons: BTreeMap<&'static str, Handle>,
    ctx: Ctx,
    root: TestRoot,
}

/// What a call needs of the stack (cheap to clone into a task): the
/// root's path and host names.
#[derive(Debug, Clone)]
pub struct Ctx {
    root: PathBuf,
    names: HostNames,
}

impl std::ops::Deref for SoakStack {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

/// The parent of `pid`.
pub fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub use crate::procs::{alive, cmdline, processes};

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn status_err(what: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |e| format!("{what}: {:?} {}", e.code(), e.message())
}

impl SoakStack {
    /// Builds the root's files, starts the three daemons, the pool, the
    /// network and the main domains, and starts `running` of them.
    ///
    /// # Errors
    /// A step of the set-up failed (the message says which).
    pub async fn start(running: &[&str]) -> Result<SoakStack, String> {
        let root = TestRoot::new();
        // dnsmasq re-reads its hosts file as 'nobody': the tree must be
        // searchable, as /var/lib is.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod root: {e}"))?;
        let ctx = Ctx {
            root: root.path().to_path_buf(),
            names: HostNames::of(root.path()),
        };
        let mut stack = SoakStack {
            daemons: BTreeMap::new(),
            ctx,
            root,
        };
        stack.prepare_files()?;
        for d in SOAK_DAEMONS {
            stack.restart(d).await?;
        }
        stack.setup_pool().await?;
        // Another stack (a test, a second soak) may have the subnet: the
        // next ones are tried.
        let mut tries = 0;
        while let Err(e) = stack.setup_network().await {
            tries += 1;
            if !e.contains("already in use") || tries >= 16 {
                return Err(e);
            }
            let mut c = stack.network().await?;
            let _ = c
                .undefine_network(npb::UndefineNetworkRequest {
                    network: net_ref(NET),
                })
                .await;
            println!(
                "soak: 172.29.{}.0/24 is in use ({e}); trying the next subnet",
                stack.ctx.names.octet
            );
            stack.ctx.names.octet = stack.ctx.names.octet % 250 + 1;
        }
        let mut dom = stack.domain().await?;
        for (name, _, _) in MAIN_DOMAINS {
            dom.define_xml(dpb::DefineXmlRequest {
                xml: stack.domain_xml(name, 0),
                validate: true,
            })
            .await
            .map_err(status_err(name))?;
        }
        for name in running {
            dom.start(dpb::StartRequest {
                domain: dom_ref(name),
                ..Default::default()
            })
            .await
            .map_err(status_err(name))?;
        }
        Ok(stack)
    }

    fn prepare_files(&self) -> Result<(), String> {
        let images = self.images_dir();
        let pool = self.pool_dir();
        for d in [&images, &pool] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut files: Vec<PathBuf> = MAIN_DOMAINS
            .iter()
            .filter(|(_, disk, _)| *disk == Disk::File)
            .map(|(n, _, _)| images.join(format!("{n}.img")))
            .collect();
        files.push(images.join("tmp.img"));
        files.extend(BASE_VOLUMES.iter().map(|v| pool.join(v)));
        for f in files {
            build_image(&f, GuestKind::IgnoresPowerButton)
                .map_err(|e| format!("{}: {e}", f.display()))?;
        }
        Ok(())
    }

    async fn setup_pool(&self) -> Result<(), String> {
        let mut c = self.storage().await?;
        c.define_pool(spb::DefinePoolRequest {
            xml: format!(
                "<pool type='dir'><name>{POOL}</name><target><path>{}</path></target></pool>",
                self.pool_dir().display()
            ),
            validate: true,
        })
        .await
        .map_err(status_err("define pool"))?;
        c.start_pool(spb::StartPoolRequest {
            pool: pool_ref(POOL),
            ..Default::default()
        })
        .await
        .map_err(status_err("start pool"))?;
        Ok(())
    }

    async fn setup_network(&self) -> Result<(), String> {
        let mut c = self.network().await?;
        let n = &self.names;
        c.define_network(npb::DefineNetworkRequest {
            xml: format!(
                "<network><name>{NET}</name><bridge name='{}'/>\
                 <ip address='{}' prefix='24'><dhcp>\
                 <range start='172.29.{o}.100' end='172.29.{o}.200'/></dhcp></ip></network>",
                n.bridge,
                n.gateway(),
                o = n.octet
            ),
            validate: false,
        })
        .await
        .map_err(status_err("define network"))?;
        c.start_network(npb::StartNetworkRequest {
            network: net_ref(NET),
        })
        .await
        .map_err(status_err("start network"))?;
        Ok(())
    }

    /// The root.
    pub fn root(&self) -> &TestRoot {
        &self.root
    }

    /// What a call needs, for a task.
    pub fn ctx(&self) -> Ctx {
        self.ctx.clone()
    }

    /// The pid of `daemon` (0 when it has none).
    pub fn daemon_pid(&self, daemon: &str) -> i32 {
        self.daemons.get(daemon).map_or(0, Handle::pid)
    }

    /// SIGKILL to `daemon`, reaped (or, for one we did not spawn, gone or a
    /// zombie). Nothing of its own clean-up runs.
    pub async fn kill9(&mut self, daemon: &str) {
        match self.daemons.remove(daemon) {
            Some(Handle::Owned(mut d)) => {
                d.kill9();
            }
            Some(Handle::Adopted(pid)) => {
                sigkill(pid);
                crate::wait_until(Duration::from_secs(10), || !alive(pid)).await;
            }
            None => {}
        }
    }

    /// Starts `daemon` (again) and waits until it answers health SERVING.
    /// If another instance runs already (virtqemud started it), that one
    /// is adopted. If the new one exits because its pid file is still
    /// locked by a process that is not that daemon (a child forked by the
    /// killed one that has not exec'd, say), it is spawned again until the
    /// lock is free; the answer then says who held it and for how long.
    ///
    /// # Errors
    /// It neither came up nor is another instance running, within
    /// [`RESTART_TIMEOUT`]; the message carries its output and the pid
    /// file's holders.
    pub async fn restart(&mut self, daemon: &'static str) -> Result<Option<Blocked>, String> {
        let spawn = |me: &SoakStack| {
            let mut b = Daemon::builder(daemon, &me.root).env("RUST_LOG", "info");
            if daemon == "virtnetworkd" {
                b = b.env("VIRT_NETWORK_NFT_TABLE", &me.ctx.names.table);
            }
            b.spawn()
        };
        let mut d = spawn(self);
        let mut blocked: Option<(String, Instant)> = None;
        let answer = |b: Option<(String, Instant)>| {
            b.map(|(who, since)| Blocked {
                who,
                for_: since.elapsed(),
            })
        };
        let sock = self.socket(daemon);
        let pid_file = self.root.pid_file(daemon);
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            if d.try_wait().is_some() {
                // Lost the pid file to an instance virtqemud started?
                let other = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                    .filter(|p| {
                        alive(*p) && cmdline(*p).first().is_some_and(|a| a.contains(daemon))
                    });
                if let Some(pid) = other
                    && serving(&sock).await
                {
                    self.daemons.insert(daemon, Handle::Adopted(pid));
                    return Ok(answer(blocked));
                }
                let holders = lock_holders(&pid_file);
                if blocked.is_none() {
                    blocked = Some((
                        format!(
                            "{daemon} refused to start: {}; pid file held by {}",
                            tail(&d.output(), 1).trim(),
                            if holders.is_empty() {
                                "nobody (now)".to_owned()
                            } else {
                                holders.join("; ")
                            }
                        ),
                        Instant::now(),
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "{daemon} exited at restart; output:\n{}pid file held by: {holders:?}",
                        tail(&d.output(), 40)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                d = spawn(self);
                continue;
            }
            if sock.exists() && serving(&sock).await {
                self.daemons.insert(daemon, Handle::Owned(d));
                return Ok(answer(blocked));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{daemon} not serving {RESTART_TIMEOUT:?} after its restart; output:\n{}",
                    tail(&d.output(), 40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until each daemon answers health SERVING and a list call.
    ///
    /// # Errors
    /// Which daemon did not, and its last error.
    pub async fn wait_answering(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        for d in SOAK_DAEMONS {
            loop {
                let r = self.answers(d).await;
                match r {
                    Ok(()) => break,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("{d} does not answer: {e}"));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        Ok(())
    }

    async fn answers(&self, daemon: &str) -> Result<(), String> {
        let ch = self.channel(daemon).await?;
        match health_check(ch.clone(), "").await {
            Ok(ServingStatus::Serving) => {}
            Ok(s) => return Err(format!("health {s:?}")),
            Err(e) => return Err(format!("health: {}", e.message())),
        }
        let r = match daemon {
            "virtqemud" => DomainServiceClient::new(ch)
                .list_all_domains(dpb::ListAllDomainsRequest::default())
                .await
                .map(|_| ()),
            "virtstoraged" => StorageServiceClient::new(ch)
                .list_all_pools(spb::ListAllPoolsRequest::default())
                .await
                .map(|_| ()),
            _ => NetworkServiceClient::new(ch)
                .list_all_networks(npb::ListAllNetworksRequest::default())
                .await
                .map(|_| ()),
        };
        r.map_err(|e| format!("list: {:?} {}", e.code(), e.message()))
    }

    /// The last `lines` lines of every log file of `daemon` this stack
    /// wrote, the newest last (at most the last two files).
    pub fn log_tail(&self, daemon: &str, lines: usize) -> String {
        let mut logs: Vec<(u64, PathBuf)> = std::fs::read_dir(self.root.log_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name
                    .strip_prefix(&format!("{daemon}."))?
                    .strip_suffix(".log")?
                    .parse::<u64>()
                    .ok()?;
                Some((n, e.path()))
            })
            .collect();
        logs.sort();
        let mut out = String::new();
        for (_, p) in logs.iter().rev().take(2).rev() {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            out.push_str(&format!("--- {} ---\n{}", p.display(), tail(&text, lines)));
        }
        out
    }

    /// Removes the log files of daemons no longer running except the
    /// newest two per daemon (a long soak restarts thousands of times).
    pub fn prune_logs(&self) {
        for d in SOAK_DAEMONS {
            let mut logs: Vec<(u64, PathBuf)> = std::fs::read_dir(self.root.log_dir())
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name
                        .strip_prefix(&format!("{d}."))?
                        .strip_suffix(".log")?
                        .parse::<u64>()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect();
            logs.sort();
            let keep = logs.len().saturating_sub(3);
            for (_, p) in logs.into_iter().take(keep) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Ctx {
    /// The host names.
    pub fn names(&self) -> &HostNames {
        &self.names
    }

    /// Where the plain domains' images are.
    pub fn images_dir(&self) -> PathBuf {
        self.root.as_path().join("images")
    }

    /// The pool's directory.
    pub fn pool_dir(&self) -> PathBuf {
        self.root.as_path().join("pool")
    }

    /// Where spare pool `i` would live (never started).
    pub fn spare_pool_dir(&self, i: u8) -> PathBuf {
        self.root.as_path().join(format!("spare{i}"))
    }

    /// The inactive XML of domain `name` at generation `generation`.
    pub fn domain_xml(&self, name: &str, generation: u32) -> String {
        let (disk, nic) = MAIN_DOMAINS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or((Disk::File, false), |(_, d, n)| (*d, *n));
        let image = if name.starts_with("tmp-") {
            self.images_dir().join("tmp.img")
        } else {
            self.images_dir().join(format!("{name}.img"))
        };
        let disk_xml = match disk {
            Disk::File => format!(
                "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
                 <source file='{}'/><target dev='sda' bus='sata'/></disk>",
                image.display()
            ),
            Disk::Volume => format!(
                "<disk type='volume' device='disk'><driver name='qemu' type='raw'/>\
                 <source pool='{POOL}' volume='{name}.img'/><target dev='sda' bus='sata'/></disk>"
            ),
        };
        let nic_xml = if nic {
            format!(
                "<interface type='network'><mac address='{}'/><source network='{NET}'/>\
                 <model type='virtio'/></interface>",
                nic_mac(name)
            )
        } else {
            String::new()
        };
        format!(
            "<domain type='qemu'><name>{name}</name><uuid>{}</uuid>\
             <description>{}</description>\
             <memory unit='MiB'>32</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>\
             <features><acpi/></features>\
             <devices>{disk_xml}{nic_xml}<memballoon model='none'/></devices></domain>",
            domain_uuid(name),
            gen_text(generation)
        )
    }

    /// The XML of spare pool `i`.
    pub fn spare_pool_xml(&self, i: u8) -> String {
        format!(
            "<pool type='dir'><name>spare{i}</name><target><path>{}</path></target></pool>",
            self.spare_pool_dir(i).display()
        )
    }

    /// The XML of spare network `i`.
    pub fn spare_net_xml(&self, i: u8) -> String {
        format!(
            "<network><name>sparenet{i}</name><bridge name='{}'/>\
             <ip address='172.28.{}.{}' prefix='28'/></network>",
            self.names.spare_bridge(i),
            self.names.octet,
            16 * (u32::from(i) + 1) + 1
        )
    }

    /// The read-write socket of `daemon`.
    pub fn socket(&self, daemon: &str) -> PathBuf {
        common::paths::Paths::system(Some(&self.root)).socket(daemon, SocketKind::ReadWrite)
    }

    async fn channel(&self, daemon: &str) -> Result<Channel, String> {
        common::client::connect_unix(&self.socket(daemon))
            .await
            .map_err(|e| e.to_string())
    }

    /// A DomainService client on a new connection.
    ///
    /// # Errors
    /// The socket does not answer.
    pub async fn domain(&self) -> Result<DomainServiceClient<Channel>, String> {
        Ok(DomainServiceClient::new(self.channel("virtqemud").await?))
    }

    /// A StorageService client on a new connection.
    ///
    /// # Errors
    /// The socket does not answer.
    pub async fn storage(&self) -> Result<StorageServiceClient<Channel>, String> {
        Ok(StorageServiceClient::new(
            self.channel("virtstoraged").await?,
        ))
    }

    /// A NetworkService client on a new connection.
    ///
    /// # Errors
    /// The socket does not answer.
    pub async fn network(&self) -> Result<NetworkServiceClient<Channel>, String> {
        Ok(NetworkServiceClient::new(
            self.channel("virtnetworkd").await?,
        ))
    }
}

async fn serving(sock: &Path) -> bool {
    let attempt = async {
        let ch = common::client::connect_unix(sock).await.ok()?;
        health_check(ch, "").await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(ServingStatus::Serving))
    )
}

/// The processes with `path` open, each as "pid (state, parent) cmdline"
/// (who holds a pid file's lock).
pub fn lock_holders(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path));
        if holds {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.split_whitespace().next().unwrap_or("?").to_owned())
                })
                .unwrap_or_default();
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            out.push(format!(
                "{pid} (state {state}, wchan {wchan}, parent {:?}) {:?}",
                ppid(pid),
                cmdline(pid)
            ));
        }
    }
    out
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}

impl Drop for SoakStack {
    fn drop(&mut self) {
        let root = self.root.path().display().to_string();
        for (_, h) in std::mem::take(&mut self.daemons) {
            match h {
                Handle::Owned(mut d) => {
                    d.kill9();
                }
                Handle::Adopted(pid) => sigkill(pid),
            }
        }
        for prog in ["qemu-system", "dnsmasq"] {
            for (pid, _) in processes(prog, &root) {
                sigkill(pid);
            }
        }
        // A daemon virtqemud started and we never adopted.
        for d in SOAK_DAEMONS {
            if let Some(pid) = std::fs::read_to_string(self.root.pid_file(d))
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .filter(|p| alive(*p) && cmdline(*p).first().is_some_and(|a| a.contains(d)))
            {
                sigkill(pid);
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.ctx.names.bridge])
            .output();
        for fam in ["ip", "ip6", "inet"] {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", fam, &self.ctx.names.table])
                .output();
        }
    }
}

/// A VolumeRef by pool and name.
pub fn vol_ref(pool: &str, name: &str) -> Option<spb::VolumeRef> {
    Some(spb::VolumeRef {
        by: Some(spb::volume_ref::By::PoolVolume(spb::PoolVolume {
            pool: pool.to_owned(),
            name: name.to_owned(),
        })),
    })
}
