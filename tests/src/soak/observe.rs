//! What the stack really is after a round, read from the daemons and
//! from the host (`/proc`, the pool's directory, `qemu-img`, `/sys`),
//! and the invariants checked against it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use proto::domain::v1 as dpb;
use proto::network::v1 as npb;
use proto::storage::v1 as spb;

use super::model::{DomExp, Fmt, Model, St, VolExp};
use super::stack::{
    self, BASE_VOLUMES, DHCP_HOSTS, MAIN_DOMAINS, NET, POOL, SPARES, SoakStack, dom_ref, net_ref,
    pool_ref,
};

/// One QEMU process of the stack's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    /// Its pid.
    pub pid: i32,
    /// `-name guest=NAME`.
    pub name: String,
    /// `-uuid`.
    pub uuid: String,
}

/// A domain as virtqemud lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomObs {
    /// The listed state (libvirt numbering).
    pub state: i32,
    /// Whether it is persistent.
    pub persistent: bool,
    /// Its UUID.
    pub uuid: String,
    /// The generation in its inactive definition, if found.
    pub generation: Option<u32>,
    /// The pid its status file names, if any.
    pub status_pid: Option<i32>,
}

impl DomObs {
    /// Its state in the model's terms (`None`: a state the soak never
    /// expects, e.g. crashed).
    pub fn st(&self) -> Option<St> {
        match dpb::DomainState::try_from(self.state) {
            Ok(dpb::DomainState::Running) => Some(St::Running),
            Ok(dpb::DomainState::Paused) => Some(St::Paused),
            Ok(dpb::DomainState::Shutoff) => Some(St::Off),
            _ => None,
        }
    }
}

/// A volume of the pool, as listed and as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolObs {
    /// ListAllVolumes names it.
    pub listed: bool,
    /// The file's size, if there is a file.
    pub file_size: Option<u64>,
    /// `qemu-img info` (and `check` for qcow2): format and virtual size,
    /// or why it failed.
    pub image: Option<Result<(String, u64), String>>,
}

/// The observed stack.
#[derive(Debug, Clone, Default)]
pub struct Obs {
    /// Domains by name.
    pub domains: BTreeMap<String, DomObs>,
    /// QEMU processes of the root.
    pub qemus: Vec<Qemu>,
    /// Pools by name: active.
    pub pools: BTreeMap<String, bool>,
    /// The pool's volumes by name (listed or present as a file).
    pub volumes: BTreeMap<String, VolObs>,
    /// Networks by name: active.
    pub nets: BTreeMap<String, bool>,
    /// The bridge exists.
    pub bridge: bool,
    /// The pid in dnsmasq's pid file, if it names a live dnsmasq.
    pub dnsmasq_pid: Option<i32>,
    /// dnsmasq processes of the root's network.
    pub dnsmasqs: Vec<i32>,
    /// DHCP hosts in the live XML, the persistent XML, dnsmasq's hosts file.
    pub hosts_live: BTreeSet<u8>,
    /// See `hosts_live`.
    pub hosts_config: BTreeSet<u8>,
    /// See `hosts_live`.
    pub hosts_file: BTreeSet<u8>,
    /// The network's ports: their owners' names.
    pub port_owners: Vec<String>,
    /// Interfaces enslaved to the bridge.
    pub bridge_ports: Vec<String>,
    /// Calls that failed while observing.
    pub errors: Vec<String>,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A short class name (the figures count by it).
    pub kind: &'static str,
    /// What it is about (a domain, a volume...): with the kind, what
    /// tells one violation from another.
    pub subject: String,
    /// What was wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind, self.detail)
    }
}

fn v(kind: &'static str, subject: impl Into<String>, detail: String) -> Violation {
    Violation {
        kind,
        subject: subject.into(),
        detail,
    }
}

/// The QEMU processes whose command line names `root`.
pub fn qemus(root: &Path) -> Vec<Qemu> {
    let needle = root.display().to_string();
    let mut out = Vec::new();
    for (pid, args) in stack::processes("qemu-system", &needle) {
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let Some(name) = after("-name") else {
            continue; // a capabilities probe
        };
        let name = name
            .strip_prefix("guest=")
            .unwrap_or(&name)
            .split(",debug-threads")
            .next()
            .unwrap_or_default()
            .replace(",,", ",");
        out.push(Qemu {
            pid,
            name,
            uuid: after("-uuid").unwrap_or_default(),
        });
    }
    out.sort_by_key(|q| q.pid);
    out
}

fn attr_num(text: &str, attr: &str) -> Option<i32> {
    let key = format!(" {attr}='");
    let rest = &text[text.find(&key)? + key.len()..];
    rest.split('\'').next()?.parse().ok()
}

fn generation_of(xml: &str) -> Option<u32> {
    let rest = &xml[xml.find("soak gen ")? + "soak gen ".len()..];
    rest.split('<').next()?.trim().parse().ok()
}

fn hosts_in(text: &str) -> BTreeSet<u8> {
    (0..DHCP_HOSTS)
        .filter(|i| text.contains(&stack::host_mac(*i)))
        .collect()
}

/// `qemu-img info` (and `check` for qcow2) of `path`.
fn image_info(path: &Path, name: &str) -> Result<(String, u64), String> {
    let fmt = if name.ends_with(".qcow2") {
        "qcow2"
    } else {
        "raw"
    };
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "-f", fmt])
        .arg(path)
        .output()
        .map_err(|e| format!("qemu-img: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "qemu-img info: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("qemu-img info output: {e}"))?;
    let size = json
        .get("virtual-size")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("qemu-img info without virtual-size: {json}"))?;
    if fmt == "qcow2" {
        let out = std::process::Command::new("qemu-img")
            .args(["check", "-U", "-f", "qcow2"])
            .arg(path)
            .output()
            .map_err(|e| format!("qemu-img: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "qemu-img check: {}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok((fmt.to_owned(), size))
}

/// Reads everything the checks need.
pub async fn observe(st: &SoakStack) -> Obs {
    let mut o = Obs::default();
    let root = st.root().path().to_path_buf();
    let paths = st.root().paths();

    // Domains.
    match st.domain().await {
        Ok(mut c) => match c
            .list_all_domains(dpb::ListAllDomainsRequest::default())
            .await
        {
            Ok(r) => {
                for d in r.into_inner().domains {
                    let Some(dom) = d.domain else { continue };
                    let generation = match c
                        .get_xml(dpb::GetXmlRequest {
                            domain: dom_ref(&dom.name),
                            inactive: true,
                            ..Default::default()
                        })
                        .await
                    {
                        Ok(x) => generation_of(&x.into_inner().xml),
                        Err(e) => {
                            o.errors
                                .push(format!("GetXml {}: {}", dom.name, e.message()));
                            None
                        }
                    };
                    let status = paths
                        .driver_run_dir("qemu")
                        .join(format!("{}.xml", dom.name));
                    let status_pid = std::fs::read_to_string(status)
                        .ok()
                        .and_then(|t| attr_num(&t, "pid"));
                    o.domains.insert(
                        dom.name.clone(),
                        DomObs {
                            state: d.state,
                            persistent: d.persistent,
                            uuid: dom.uuid,
                            generation,
                            status_pid,
                        },
                    );
                }
            }
            Err(e) => o.errors.push(format!("ListAllDomains: {}", e.message())),
        },
        Err(e) => o.errors.push(format!("virtqemud: {e}")),
    }
    o.qemus = qemus(&root);

    // Storage.
    let mut listed: BTreeSet<String> = BTreeSet::new();
    match st.storage().await {
        Ok(mut c) => {
            match c.list_all_pools(spb::ListAllPoolsRequest::default()).await {
                Ok(r) => {
                    for p in r.into_inner().pools {
                        o.pools.insert(p.name, p.active);
                    }
                }
                Err(e) => o.errors.push(format!("ListAllPools: {}", e.message())),
            }
            match c
                .list_all_volumes(spb::ListAllVolumesRequest {
                    pool: pool_ref(POOL),
                })
                .await
            {
                Ok(r) => listed.extend(r.into_inner().volumes.into_iter().map(|v| v.name)),
                Err(e) => o.errors.push(format!("ListAllVolumes: {}", e.message())),
            }
        }
        Err(e) => o.errors.push(format!("virtstoraged: {e}")),
    }
    let mut files: BTreeMap<String, u64> = BTreeMap::new();
    for e in std::fs::read_dir(st.pool_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
        files.insert(e.file_name().to_string_lossy().into_owned(), size);
    }
    for name in listed.iter().chain(files.keys()) {
        if o.volumes.contains_key(name) {
            continue;
        }
        let file_size = files.get(name).copied();
        let image = file_size.map(|_| image_info(&st.pool_dir().join(name), name));
        o.volumes.insert(
            name.clone(),
            VolObs {
                listed: listed.contains(name),
                file_size,
                image,
            },
        );
    }

    // Network.
    match st.network().await {
        Ok(mut c) => {
            match c
                .list_all_networks(npb::ListAllNetworksRequest::default())
                .await
            {
                Ok(r) => {
                    for n in r.into_inner().networks {
                        o.nets.insert(n.name, n.active);
                    }
                }
                Err(e) => o.errors.push(format!("ListAllNetworks: {}", e.message())),
            }
            for (inactive, set) in [(false, &mut o.hosts_live), (true, &mut o.hosts_config)] {
                match c
                    .get_network_xml(npb::GetNetworkXmlRequest {
                        network: net_ref(NET),
                        inactive,
                    })
                    .await
                {
                    Ok(x) => *set = hosts_in(&x.into_inner().xml),
                    Err(e) => o.errors.push(format!("GetNetworkXml: {}", e.message())),
                }
            }
            match c
                .list_all_ports(npb::ListAllPortsRequest {
                    network: net_ref(NET),
                })
                .await
            {
                Ok(r) => {
                    o.port_owners = r
                        .into_inner()
                        .ports
                        .iter()
                        .map(|p| {
                            p.xml
                                .split("<name>")
                                .nth(1)
                                .and_then(|r| r.split('<').next())
                                .unwrap_or("?")
                                .to_owned()
                        })
                        .collect();
                }
                Err(e) => o.errors.push(format!("ListAllPorts: {}", e.message())),
            }
        }
        Err(e) => o.errors.push(format!("virtnetworkd: {e}")),
    }
    let bridge = &st.names().bridge;
    o.bridge = Path::new("/sys/class/net").join(bridge).exists();
    o.bridge_ports = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    o.bridge_ports.sort();
    let net_run = paths.driver_run_dir("network");
    o.dnsmasq_pid = std::fs::read_to_string(net_run.join(format!("{NET}.pid")))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| {
            stack::alive(*p)
                && stack::cmdline(*p)
                    .first()
                    .is_some_and(|a| a.contains("dnsmasq"))
        });
    let conf = paths
        .driver_state_dir("dnsmasq")
        .join(format!("{NET}.conf"))
        .display()
        .to_string();
    o.dnsmasqs = stack::processes("dnsmasq", &conf)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    o.hosts_file = std::fs::read_to_string(
        paths
            .driver_state_dir("dnsmasq")
            .join(format!("{NET}.hostsfile")),
    )
    .map(|t| hosts_in(&t))
    .unwrap_or_default();
    o
}

impl Model {
    /// The model the observation shows (after a round's checks: the next
    /// round starts from what is really there).
    pub fn from_obs(o: &Obs) -> Model {
        let mut m = Model::default();
        for (n, d) in &o.domains {
            let state = d.st().unwrap_or(St::Off);
            m.domains.insert(
                n.clone(),
                DomExp {
                    state,
                    pid: if state.active() { d.status_pid } else { None },
                    generation: d.generation.unwrap_or(0),
                },
            );
        }
        for (n, vo) in &o.volumes {
            if let (true, Some(Ok((fmt, size)))) = (vo.listed, &vo.image) {
                m.volumes.insert(
                    n.clone(),
                    VolExp {
                        capacity: *size,
                        format: if fmt == "qcow2" { Fmt::Qcow2 } else { Fmt::Raw },
                    },
                );
            }
        }
        for i in 0..SPARES {
            if o.pools.contains_key(&format!("spare{i}")) {
                m.spare_pools.insert(i);
            }
            if o.nets.contains_key(&format!("sparenet{i}")) {
                m.spare_nets.insert(i);
            }
        }
        m.hosts = o.hosts_live.clone();
        m
    }
}

fn dom_matches(e: Option<&DomExp>, o: Option<&DomObs>) -> bool {
    match (e, o) {
        (None, None) => true,
        (Some(e), Some(o)) => {
            o.persistent
                && o.st() == Some(e.state)
                && o.generation == Some(e.generation)
                && (!e.state.active() || e.pid.is_none() || e.pid == o.status_pid)
        }
        _ => false,
    }
}

fn dom_kind(e: Option<&DomExp>, o: Option<&DomObs>) -> &'static str {
    match (e, o) {
        (Some(e), Some(o)) => {
            if !o.persistent {
                "domain-definition"
            } else if o.st() != Some(e.state) {
                "domain-state"
            } else if o.generation != Some(e.generation) {
                "domain-generation"
            } else {
                "domain-pid"
            }
        }
        _ => "domain-definition",
    }
}

fn vol_matches(e: Option<&VolExp>, o: Option<&VolObs>) -> bool {
    let present = o.filter(|o| o.listed || o.file_size.is_some());
    match (e, present) {
        (None, None) => true,
        (Some(e), Some(o)) => {
            o.listed
                && matches!(&o.image, Some(Ok((f, size))) if f == e.format.as_str() && *size == e.capacity)
                && (e.format != Fmt::Raw || o.file_size == Some(e.capacity))
        }
        _ => false,
    }
}

/// Every invariant: the state matches one of the `allowed` models (the
/// model before the round, after it, or either for a cut-off operation),
/// and the host agrees with what the daemons say.
pub fn check(o: &Obs, allowed: &[&Model]) -> Vec<Violation> {
    let mut out = Vec::new();
    for e in &o.errors {
        out.push(v("call-failed", e.clone(), e.clone()));
    }

    // Domains against the model.
    let mut names: BTreeSet<&String> = o.domains.keys().collect();
    for m in allowed {
        names.extend(m.domains.keys());
    }
    for n in names {
        let obs = o.domains.get(n);
        if !allowed.iter().any(|m| dom_matches(m.domains.get(n), obs)) {
            let exp: Vec<String> = allowed
                .iter()
                .map(|m| format!("{:?}", m.domains.get(n)))
                .collect();
            out.push(v(
                dom_kind(allowed[0].domains.get(n), obs),
                format!("domain {n}"),
                format!("domain {n}: expected {}, seen {obs:?}", exp.join(" or ")),
            ));
        }
    }
    // Domains against QEMU.
    let mut by_name: BTreeMap<&str, Vec<&Qemu>> = BTreeMap::new();
    for q in &o.qemus {
        by_name.entry(q.name.as_str()).or_default().push(q);
    }
    for (n, qs) in &by_name {
        if qs.len() > 1 {
            out.push(v(
                "qemu-duplicate",
                format!("domain {n}"),
                format!("domain {n} has {} QEMUs: {qs:?}", qs.len()),
            ));
        }
        let dom = o.domains.get(*n);
        for q in qs {
            let owned = dom.is_some_and(|d| {
                d.st().is_some_and(St::active) && d.uuid == q.uuid && d.status_pid == Some(q.pid)
            });
            if !owned && qs.len() == 1 {
                out.push(v(
                    "qemu-orphan",
                    format!("domain {n}"),
                    format!("QEMU {q:?} without its active domain (domain: {dom:?})"),
                ));
            }
        }
    }
    for (n, d) in &o.domains {
        if d.st().is_some_and(St::active) || d.st().is_none() {
            match by_name.get(n.as_str()) {
                None => out.push(v(
                    "qemu-missing",
                    format!("domain {n}"),
                    format!("domain {n} listed {:?} without a QEMU", d.state),
                )),
                Some(qs) if qs.len() == 1 && d.status_pid != Some(qs[0].pid) => out.push(v(
                    "status-pid",
                    format!("domain {n}"),
                    format!(
                        "domain {n}: status file pid {:?}, QEMU pid {}",
                        d.status_pid, qs[0].pid
                    ),
                )),
                _ => {}
            }
        }
    }

    // Storage.
    if o.pools.get(POOL) != Some(&true) {
        out.push(v(
            "pool-down",
            POOL,
            format!("pool {POOL}: {:?}", o.pools.get(POOL)),
        ));
    }
    for (p, _) in o
        .pools
        .iter()
        .filter(|(p, _)| p.as_str() != POOL && !(0..SPARES).any(|i| **p == format!("spare{i}")))
    {
        out.push(v("pool-definition", p.clone(), format!("unknown pool {p}")));
    }
    for i in 0..SPARES {
        let seen = o.pools.contains_key(&format!("spare{i}"));
        if !allowed.iter().any(|m| m.spare_pools.contains(&i) == seen) {
            out.push(v(
                "pool-definition",
                format!("spare{i}"),
                format!("pool spare{i}: defined {seen}, expected the opposite"),
            ));
        }
    }
    let mut vols: BTreeSet<&String> = o.volumes.keys().collect();
    for m in allowed {
        vols.extend(m.volumes.keys());
    }
    for n in vols {
        let obs = o.volumes.get(n);
        if let Some(vo) = obs {
            if vo.listed && vo.file_size.is_none() {
                out.push(v(
                    "volume-without-file",
                    n.clone(),
                    format!("volume {n} listed, no file"),
                ));
            }
            if !vo.listed && vo.file_size.is_some() {
                out.push(v(
                    "file-not-listed",
                    n.clone(),
                    format!(
                        "file {n} ({:?} bytes) in the pool's directory, not listed",
                        vo.file_size
                    ),
                ));
            }
            if let Some(Err(e)) = &vo.image {
                out.push(v("volume-torn", n.clone(), format!("volume {n}: {e}")));
            }
        }
        if !allowed.iter().any(|m| vol_matches(m.volumes.get(n), obs)) {
            let exp: Vec<String> = allowed
                .iter()
                .map(|m| format!("{:?}", m.volumes.get(n)))
                .collect();
            out.push(v(
                "volume-model",
                n.clone(),
                format!("volume {n}: expected {}, seen {obs:?}", exp.join(" or ")),
            ));
        }
    }
    for b in BASE_VOLUMES {
        if !o.volumes.get(b).is_some_and(|x| x.listed) {
            out.push(v("volume-model", b, format!("base volume {b} is gone")));
        }
    }

    // Network.
    if o.nets.get(NET) != Some(&true) {
        out.push(v(
            "net-down",
            NET,
            format!("network {NET}: {:?}", o.nets.get(NET)),
        ));
    }
    if !o.bridge {
        out.push(v(
            "bridge-missing",
            NET,
            "the network's bridge is gone".into(),
        ));
    }
    if o.dnsmasq_pid.is_none() {
        out.push(v(
            "dnsmasq-dead",
            NET,
            "the pid file names no live dnsmasq".into(),
        ));
    }
    // dnsmasq forks a helper for its --dhcp-script: the pid file's
    // process and its children, nothing else.
    let strays: Vec<i32> = o
        .dnsmasqs
        .iter()
        .copied()
        .filter(|p| Some(*p) != o.dnsmasq_pid && o.dnsmasq_pid != stack::ppid(*p))
        .collect();
    if !strays.is_empty() {
        out.push(v(
            "dnsmasq-count",
            NET,
            format!(
                "dnsmasq processes {:?}, pid file {:?}",
                o.dnsmasqs, o.dnsmasq_pid
            ),
        ));
    }
    for (n, _) in o
        .nets
        .iter()
        .filter(|(n, _)| n.as_str() != NET && !(0..SPARES).any(|i| **n == format!("sparenet{i}")))
    {
        out.push(v(
            "net-definition",
            n.clone(),
            format!("unknown network {n}"),
        ));
    }
    for i in 0..SPARES {
        let seen = o.nets.contains_key(&format!("sparenet{i}"));
        if !allowed.iter().any(|m| m.spare_nets.contains(&i) == seen) {
            out.push(v(
                "net-definition",
                format!("sparenet{i}"),
                format!("network sparenet{i}: defined {seen}, expected the opposite"),
            ));
        }
    }
    for i in 0..DHCP_HOSTS {
        let seen = (
            o.hosts_live.contains(&i),
            o.hosts_config.contains(&i),
            o.hosts_file.contains(&i),
        );
        if !allowed.iter().any(|m| {
            let b = m.hosts.contains(&i);
            seen == (b, b, b)
        }) {
            out.push(v(
                "dhcp-hosts",
                format!("host {i}"),
                format!(
                    "DHCP host {i}: (live, config, hosts file) = {seen:?}, expected all {}",
                    allowed
                        .iter()
                        .map(|m| m.hosts.contains(&i).to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ));
        }
    }
    // Ports and taps: one each per active NIC domain.
    let nic_active: BTreeSet<&str> = MAIN_DOMAINS
        .iter()
        .filter(|(_, _, nic)| *nic)
        .map(|(n, _, _)| *n)
        .filter(|n| {
            o.domains
                .get(*n)
                .is_some_and(|d| d.st().is_some_and(St::active))
        })
        .collect();
    let mut owners: Vec<&str> = o.port_owners.iter().map(String::as_str).collect();
    owners.sort_unstable();
    let expected: Vec<&str> = nic_active.iter().copied().collect();
    if owners != expected {
        out.push(v(
            "ports",
            NET,
            format!("ports owned by {owners:?}, active NIC domains {expected:?}"),
        ));
    }
    if o.bridge_ports.len() != nic_active.len() {
        out.push(v(
            "taps",
            NET,
            format!(
                "bridge ports {:?}, active NIC domains {expected:?}",
                o.bridge_ports
            ),
        ));
    }
    out
}
