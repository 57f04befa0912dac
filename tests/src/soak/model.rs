//! What the soak expects: a model of the stack's state, updated only by
//! acknowledged operations, and the operations themselves (chosen so
//! that each is valid for the model, then sent as one gRPC call).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proto::domain::v1 as dpb;
use proto::network::v1 as npb;
use proto::storage::v1 as spb;

use super::rng::Rng;
use super::stack::{
    self, Ctx, DHCP_HOSTS, MAIN_DOMAINS, NET, POOL, SPARES, TMP_DOMAINS, dom_ref, net_ref,
    pool_ref, vol_ref,
};

/// At most this many domains run at once.
pub const MAX_RUNNING: usize = 4;

/// Scratch volume slots (`s<i>.raw` / `s<i>.qcow2`).
pub const SCRATCH: u8 = 6;

/// A domain's state as the soak cares about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum St {
    /// Shut off.
    Off,
    /// Running.
    Running,
    /// Paused.
    Paused,
}

impl St {
    /// Whether QEMU runs.
    pub fn active(self) -> bool {
        self != St::Off
    }
}

/// An expected domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomExp {
    /// Its state.
    pub state: St,
    /// QEMU's pid while active; `None` = any (a start the model has not
    /// seen the result of yet).
    pub pid: Option<i32>,
    /// The generation in its persistent definition's description.
    pub generation: u32,
}

/// A volume's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmt {
    /// raw, fully allocated.
    Raw,
    /// qcow2.
    Qcow2,
}

impl Fmt {
    /// qemu-img's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Fmt::Raw => "raw",
            Fmt::Qcow2 => "qcow2",
        }
    }
}

/// An expected volume of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolExp {
    /// Virtual size in bytes.
    pub capacity: u64,
    /// Its format.
    pub format: Fmt,
}

/// The expected state of the stack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    /// Persistent domains by name.
    pub domains: BTreeMap<String, DomExp>,
    /// The pool's volumes by name.
    pub volumes: BTreeMap<String, VolExp>,
    /// Spare pools defined (never started).
    pub spare_pools: BTreeSet<u8>,
    /// Spare networks defined (never started).
    pub spare_nets: BTreeSet<u8>,
    /// Static DHCP hosts of the network (live and config).
    pub hosts: BTreeSet<u8>,
}

impl Model {
    /// Names of active domains.
    pub fn running_count(&self) -> usize {
        self.domains.values().filter(|d| d.state.active()).count()
    }

    /// The model after `op` succeeded.
    pub fn apply(&self, op: &Op) -> Model {
        let mut m = self.clone();
        match op {
            Op::Start(n) => {
                if let Some(d) = m.domains.get_mut(n) {
                    d.state = St::Running;
                    d.pid = None;
                }
            }
            Op::Destroy(n) => {
                if let Some(d) = m.domains.get_mut(n) {
                    d.state = St::Off;
                    d.pid = None;
                }
            }
            Op::Suspend(n) => {
                if let Some(d) = m.domains.get_mut(n) {
                    d.state = St::Paused;
                }
            }
            Op::Resume(n) => {
                if let Some(d) = m.domains.get_mut(n) {
                    d.state = St::Running;
                }
            }
            Op::Define(n, g) => {
                m.domains.insert(
                    n.clone(),
                    DomExp {
                        state: St::Off,
                        pid: None,
                        generation: *g,
                    },
                );
            }
            Op::Redefine(n, g) => {
                if let Some(d) = m.domains.get_mut(n) {
                    d.generation = *g;
                }
            }
            Op::Undefine(n) => {
                m.domains.remove(n);
            }
            Op::VolCreate(n, v) => {
                m.volumes.insert(n.clone(), *v);
            }
            Op::VolDelete(n) => {
                m.volumes.remove(n);
            }
            Op::PoolDefine(i) => {
                m.spare_pools.insert(*i);
            }
            Op::PoolUndefine(i) => {
                m.spare_pools.remove(i);
            }
            Op::NetDefine(i) => {
                m.spare_nets.insert(*i);
            }
            Op::NetUndefine(i) => {
                m.spare_nets.remove(i);
            }
            Op::HostAdd(i) => {
                m.hosts.insert(*i);
            }
            Op::HostDelete(i) => {
                m.hosts.remove(i);
            }
        }
        m
    }
}

/// One operation of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Start a shut-off domain.
    Start(String),
    /// Destroy an active domain.
    Destroy(String),
    /// Pause a running domain.
    Suspend(String),
    /// Resume a paused domain.
    Resume(String),
    /// Define a new domain (a tmp one) at a generation.
    Define(String, u32),
    /// Undefine a shut-off tmp domain.
    Undefine(String),
    /// Define a defined domain again with a new generation.
    Redefine(String, u32),
    /// Create a scratch volume.
    VolCreate(String, VolExp),
    /// Delete a scratch volume.
    VolDelete(String),
    /// Define spare pool `i`.
    PoolDefine(u8),
    /// Undefine spare pool `i`.
    PoolUndefine(u8),
    /// Define spare network `i`.
    NetDefine(u8),
    /// Undefine spare network `i`.
    NetUndefine(u8),
    /// net-update add-last of DHCP host `i` (live and config).
    HostAdd(u8),
    /// net-update delete of DHCP host `i` (live and config).
    HostDelete(u8),
}

/// The kinds of operations, for the figures.
pub const KINDS: [&str; 14] = [
    "start",
    "destroy",
    "suspend",
    "resume",
    "define",
    "undefine",
    "redefine",
    "vol-create",
    "vol-delete",
    "pool-define",
    "pool-undefine",
    "net-define",
    "net-undefine",
    "net-update",
];

impl Op {
    /// Its kind (one of [`KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Start(_) => "start",
            Op::Destroy(_) => "destroy",
            Op::Suspend(_) => "suspend",
            Op::Resume(_) => "resume",
            Op::Define(..) => "define",
            Op::Undefine(_) => "undefine",
            Op::Redefine(..) => "redefine",
            Op::VolCreate(..) => "vol-create",
            Op::VolDelete(_) => "vol-delete",
            Op::PoolDefine(_) => "pool-define",
            Op::PoolUndefine(_) => "pool-undefine",
            Op::NetDefine(_) => "net-define",
            Op::NetUndefine(_) => "net-undefine",
            Op::HostAdd(_) | Op::HostDelete(_) => "net-update",
        }
    }

    /// The daemon that serves it.
    pub fn owner(&self) -> &'static str {
        match self {
            Op::Start(_)
            | Op::Destroy(_)
            | Op::Suspend(_)
            | Op::Resume(_)
            | Op::Define(..)
            | Op::Undefine(_)
            | Op::Redefine(..) => "virtqemud",
            Op::VolCreate(..) | Op::VolDelete(_) | Op::PoolDefine(_) | Op::PoolUndefine(_) => {
                "virtstoraged"
            }
            Op::NetDefine(_) | Op::NetUndefine(_) | Op::HostAdd(_) | Op::HostDelete(_) => {
                "virtnetworkd"
            }
        }
    }

    /// Chooses an operation valid for `m`.
    pub fn choose(rng: &mut Rng, m: &Model) -> Op {
        // (kind, weight)
        const WEIGHTS: [(&str, u64); 14] = [
            ("start", 12),
            ("destroy", 9),
            ("suspend", 7),
            ("resume", 7),
            ("define", 6),
            ("undefine", 6),
            ("redefine", 8),
            ("vol-create", 9),
            ("vol-delete", 8),
            ("pool-define", 5),
            ("pool-undefine", 5),
            ("net-define", 5),
            ("net-undefine", 5),
            ("net-update", 10),
        ];
        let total: u64 = WEIGHTS.iter().map(|(_, w)| w).sum();
        loop {
            let mut x = rng.below(total);
            let mut kind = WEIGHTS[0].0;
            for (k, w) in WEIGHTS {
                if x < w {
                    kind = k;
                    break;
                }
                x -= w;
            }
            if let Some(op) = Op::try_kind(rng, m, kind) {
                return op;
            }
        }
    }

    fn try_kind(rng: &mut Rng, m: &Model, kind: &str) -> Option<Op> {
        let doms = |pred: &dyn Fn(&str, &DomExp) -> bool| -> Vec<String> {
            m.domains
                .iter()
                .filter(|(n, d)| pred(n, d))
                .map(|(n, _)| n.clone())
                .collect()
        };
        let pick = |rng: &mut Rng, v: Vec<String>| -> Option<String> {
            (!v.is_empty()).then(|| rng.pick(&v).clone())
        };
        let is_main = |n: &str| MAIN_DOMAINS.iter().any(|(m, _, _)| *m == n);
        let generation = u32::try_from(rng.below(1_000_000)).unwrap_or(0) + 1;
        match kind {
            "start" => {
                if m.running_count() >= MAX_RUNNING {
                    return None;
                }
                pick(rng, doms(&|n, d| is_main(n) && d.state == St::Off)).map(Op::Start)
            }
            "destroy" => pick(rng, doms(&|_, d| d.state.active())).map(Op::Destroy),
            "suspend" => pick(rng, doms(&|_, d| d.state == St::Running)).map(Op::Suspend),
            "resume" => pick(rng, doms(&|_, d| d.state == St::Paused)).map(Op::Resume),
            "define" => {
                let free: Vec<String> = TMP_DOMAINS
                    .iter()
                    .filter(|n| !m.domains.contains_key(**n))
                    .map(|n| (*n).to_owned())
                    .collect();
                pick(rng, free).map(|n| Op::Define(n, generation))
            }
            "undefine" => pick(
                rng,
                doms(&|n, d| n.starts_with("tmp-") && d.state == St::Off),
            )
            .map(Op::Undefine),
            "redefine" => pick(rng, doms(&|_, _| true)).map(|n| Op::Redefine(n, generation)),
            "vol-create" => {
                let free: Vec<u8> = (0..SCRATCH)
                    .filter(|i| {
                        !m.volumes.contains_key(&format!("s{i}.raw"))
                            && !m.volumes.contains_key(&format!("s{i}.qcow2"))
                    })
                    .collect();
                if free.is_empty() {
                    return None;
                }
                let i = *rng.pick(&free);
                let mib = 1u64 << rng.below(6); // 1..32 MiB
                let format = if rng.chance(1, 2) {
                    Fmt::Raw
                } else {
                    Fmt::Qcow2
                };
                Some(Op::VolCreate(
                    format!("s{i}.{}", format.as_str()),
                    VolExp {
                        capacity: mib << 20,
                        format,
                    },
                ))
            }
            "vol-delete" => {
                let v: Vec<String> = m
                    .volumes
                    .keys()
                    .filter(|n| n.starts_with('s'))
                    .cloned()
                    .collect();
                pick(rng, v).map(Op::VolDelete)
            }
            "pool-define" => free_index(rng, &m.spare_pools, SPARES).map(Op::PoolDefine),
            "pool-undefine" => used_index(rng, &m.spare_pools).map(Op::PoolUndefine),
            "net-define" => free_index(rng, &m.spare_nets, SPARES).map(Op::NetDefine),
            "net-undefine" => used_index(rng, &m.spare_nets).map(Op::NetUndefine),
            "net-update" => {
                if rng.chance(1, 2) {
                    free_index(rng, &m.hosts, DHCP_HOSTS).map(Op::HostAdd)
                } else {
                    used_index(rng, &m.hosts).map(Op::HostDelete)
                }
            }
            _ => None,
        }
    }

    /// Sends it as one call on a new connection to its owner.
    ///
    /// # Errors
    /// The status of the call, or of the connection (UNAVAILABLE).
    pub async fn send_ctx(&self, st: &Ctx) -> Result<(), tonic::Status> {
        let unavailable = tonic::Status::unavailable;
        match self {
            Op::Start(_)
            | Op::Destroy(_)
            | Op::Suspend(_)
            | Op::Resume(_)
            | Op::Define(..)
            | Op::Undefine(_)
            | Op::Redefine(..) => {
                let mut c = st.domain().await.map_err(unavailable)?;
                match self {
                    Op::Start(n) => c
                        .start(dpb::StartRequest {
                            domain: dom_ref(n),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    Op::Destroy(n) => c
                        .destroy(dpb::DestroyRequest {
                            domain: dom_ref(n),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    Op::Suspend(n) => c
                        .suspend(dpb::SuspendRequest { domain: dom_ref(n) })
                        .await
                        .map(drop),
                    Op::Resume(n) => c
                        .resume(dpb::ResumeRequest { domain: dom_ref(n) })
                        .await
                        .map(drop),
                    Op::Define(n, g) | Op::Redefine(n, g) => c
                        .define_xml(dpb::DefineXmlRequest {
                            xml: st.domain_xml(n, *g),
                            validate: true,
                        })
                        .await
                        .map(drop),
                    Op::Undefine(n) => c
                        .undefine(dpb::UndefineRequest {
                            domain: dom_ref(n),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    _ => unreachable!("a domain operation"),
                }
            }
            Op::VolCreate(..) | Op::VolDelete(_) | Op::PoolDefine(_) | Op::PoolUndefine(_) => {
                let mut c = st.storage().await.map_err(unavailable)?;
                match self {
                    Op::VolCreate(n, v) => {
                        let alloc = match v.format {
                            Fmt::Raw => v.capacity,
                            Fmt::Qcow2 => 0,
                        };
                        c.create_volume(spb::CreateVolumeRequest {
                            pool: pool_ref(POOL),
                            xml: format!(
                                "<volume><name>{n}</name><capacity unit='bytes'>{}</capacity>\
                                 <allocation unit='bytes'>{alloc}</allocation>\
                                 <target><format type='{}'/></target></volume>",
                                v.capacity,
                                v.format.as_str()
                            ),
                            ..Default::default()
                        })
                        .await
                        .map(drop)
                    }
                    Op::VolDelete(n) => c
                        .delete_volume(spb::DeleteVolumeRequest {
                            volume: vol_ref(POOL, n),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    Op::PoolDefine(i) => c
                        .define_pool(spb::DefinePoolRequest {
                            xml: st.spare_pool_xml(*i),
                            validate: false,
                        })
                        .await
                        .map(drop),
                    Op::PoolUndefine(i) => c
                        .undefine_pool(spb::UndefinePoolRequest {
                            pool: pool_ref(&format!("spare{i}")),
                        })
                        .await
                        .map(drop),
                    _ => unreachable!("a storage operation"),
                }
            }
            Op::NetDefine(_) | Op::NetUndefine(_) | Op::HostAdd(_) | Op::HostDelete(_) => {
                let mut c = st.network().await.map_err(unavailable)?;
                match self {
                    Op::NetDefine(i) => c
                        .define_network(npb::DefineNetworkRequest {
                            xml: st.spare_net_xml(*i),
                            validate: false,
                        })
                        .await
                        .map(drop),
                    Op::NetUndefine(i) => c
                        .undefine_network(npb::UndefineNetworkRequest {
                            network: net_ref(&format!("sparenet{i}")),
                        })
                        .await
                        .map(drop),
                    Op::HostAdd(i) | Op::HostDelete(i) => {
                        let command = if matches!(self, Op::HostAdd(_)) {
                            npb::NetworkUpdateCommand::AddLast
                        } else {
                            npb::NetworkUpdateCommand::Delete
                        };
                        c.update_network(npb::UpdateNetworkRequest {
                            network: net_ref(NET),
                            command: command as i32,
                            section: npb::NetworkSection::IpDhcpHost as i32,
                            parent_index: -1,
                            xml: stack::host_xml(st.names(), *i),
                            live: true,
                            config: true,
                        })
                        .await
                        .map(drop)
                    }
                    _ => unreachable!("a network operation"),
                }
            }
        }
    }
}

fn free_index(rng: &mut Rng, used: &BTreeSet<u8>, n: u8) -> Option<u8> {
    let free: Vec<u8> = (0..n).filter(|i| !used.contains(i)).collect();
    (!free.is_empty()).then(|| *rng.pick(&free))
}

fn used_index(rng: &mut Rng, used: &BTreeSet<u8>) -> Option<u8> {
    let v: Vec<u8> = used.iter().copied().collect();
    (!v.is_empty()).then(|| *rng.pick(&v))
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Start(n) => write!(f, "start {n}"),
            Op::Destroy(n) => write!(f, "destroy {n}"),
            Op::Suspend(n) => write!(f, "suspend {n}"),
            Op::Resume(n) => write!(f, "resume {n}"),
            Op::Define(n, g) => write!(f, "define {n} gen {g}"),
            Op::Undefine(n) => write!(f, "undefine {n}"),
            Op::Redefine(n, g) => write!(f, "redefine {n} gen {g}"),
            Op::VolCreate(n, v) => write!(f, "vol-create {n} {} MiB", v.capacity >> 20),
            Op::VolDelete(n) => write!(f, "vol-delete {n}"),
            Op::PoolDefine(i) => write!(f, "pool-define spare{i}"),
            Op::PoolUndefine(i) => write!(f, "pool-undefine spare{i}"),
            Op::NetDefine(i) => write!(f, "net-define sparenet{i}"),
            Op::NetUndefine(i) => write!(f, "net-undefine sparenet{i}"),
            Op::HostAdd(i) => write!(f, "net-update add dhcp host {i}"),
            Op::HostDelete(i) => write!(f, "net-update delete dhcp host {i}"),
        }
    }
}
