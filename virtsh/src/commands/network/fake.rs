//! An in-process fake `NetworkService` and a small fake `DomainService`
//! (for `domifaddr`) on one Unix socket, and a `Ctl` talking to them: what
//! the network command tests run against.
//!
//! Networks: `default` (running, persistent, autostart, bridge `virbr0`,
//! titled), `isolated` (inactive, persistent, bridge `virbr1`), `tmp`
//! (running, transient, bridge `virbr2`) and `bad` (running, persistent,
//! no bridge; every operation on it fails). `default` has leases for
//! three MACs and two ports.
//!
//! Domains: `vm1` (running: two NICs on `default`, one on `isolated`
//! without a lease, one bridged NIC), `off` (inactive) and `lost`
//! (running, its NIC on a network that does not exist).

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use common::error::{ErrorCode, ErrorDomain, VirtError};
use proto::domain::v1 as dpb;
use proto::domain::v1::domain_service_server::{DomainService, DomainServiceServer};
use proto::network::v1 as pb;
use proto::network::v1::network_service_server::{NetworkService, NetworkServiceServer};
use tonic::codegen::tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::ctl::{Ctl, Settings};

/// UUID of `default`.
pub const U_DEFAULT: &str = "11111111-1111-1111-1111-111111111111";
/// UUID of `isolated`.
pub const U_ISOLATED: &str = "22222222-2222-2222-2222-222222222222";
/// UUID of `tmp`.
pub const U_TMP: &str = "33333333-3333-3333-3333-333333333333";
/// UUID of `bad`.
pub const U_BAD: &str = "44444444-4444-4444-4444-444444444444";
/// The ports of `default`, in the fake's (unsorted) order.
pub const PORTS: [&str; 2] = [
    "dddddddd-0000-0000-0000-000000000002",
    "aaaaaaaa-0000-0000-0000-000000000001",
];
/// Expiry time of the fake's leases.
pub const EXPIRY: i64 = 1_700_000_000;

/// UUID of the domain `vm1`.
pub const U_VM1: &str = "99999999-0000-0000-0000-000000000001";

/// What the fake holds and saw.
#[derive(Debug, Default)]
pub struct State {
    pub nets: Vec<pb::Network>,
    pub ports: Vec<pb::Port>,
    /// One line per mutating call (and the leases reads), `Method: request`.
    pub calls: Vec<String>,
}

fn net(name: &str, uuid: &str, flags: (bool, bool, bool), bridge: &str) -> pb::Network {
    let (active, persistent, autostart) = flags;
    pb::Network {
        name: name.into(),
        uuid: uuid.into(),
        active,
        persistent,
        autostart,
        bridge: bridge.into(),
    }
}

impl State {
    fn initial() -> State {
        State {
            nets: vec![
                net("default", U_DEFAULT, (true, true, true), "virbr0"),
                net("isolated", U_ISOLATED, (false, true, false), "virbr1"),
                net("tmp", U_TMP, (true, false, false), "virbr2"),
                net("bad", U_BAD, (true, true, false), ""),
            ],
            ports: PORTS
                .iter()
                .map(|u| pb::Port {
                    network: "default".into(),
                    uuid: (*u).into(),
                    xml: format!("<networkport>\n  <uuid>{u}</uuid>\n</networkport>\n"),
                })
                .collect(),
            calls: Vec::new(),
        }
    }
}

/// The leases of `default`, unsorted.
pub fn leases() -> Vec<pb::DhcpLease> {
    let lease = |mac: &str, v6: bool, ip: &str, prefix: u32, host: &str, cid: &str| pb::DhcpLease {
        iface: "virbr0".into(),
        expiry_time: EXPIRY,
        r#type: if v6 {
            pb::IpAddrType::Ipv6 as i32
        } else {
            pb::IpAddrType::Ipv4 as i32
        },
        mac: mac.into(),
        iaid: String::new(),
        ipaddr: ip.into(),
        prefix,
        hostname: host.into(),
        clientid: cid.into(),
    };
    vec![
        lease("52:54:00:bb:00:02", false, "192.168.122.20", 24, "", ""),
        lease(
            "52:54:00:AA:00:01",
            false,
            "192.168.122.10",
            24,
            "guest1",
            "01:52:54:00:aa:00:01",
        ),
        lease(
            "52:54:00:aa:00:01",
            true,
            "fd00::10",
            64,
            "guest1",
            "00:04:aa",
        ),
    ]
}

fn err(code: ErrorCode, msg: impl Into<String>) -> Status {
    VirtError::new(code, ErrorDomain::Network, msg).to_status()
}

/// The fake network service; clones share the state.
#[derive(Clone, Debug)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    fn record(&self, line: String) {
        self.st().calls.push(line);
    }

    fn find(&self, r: Option<&pb::NetworkRef>) -> Result<pb::Network, Status> {
        use pb::network_ref::By;
        let by = r.and_then(|r| r.by.clone());
        let st = self.st();
        let found = st.nets.iter().find(|n| match &by {
            Some(By::Name(x)) => *x == n.name,
            Some(By::Uuid(u)) => *u == n.uuid,
            None => false,
        });
        found.cloned().ok_or_else(|| {
            let what = match by {
                Some(By::Name(x)) => format!("name '{x}'"),
                Some(By::Uuid(u)) => format!("uuid '{u}'"),
                None => return Status::invalid_argument("no network"),
            };
            err(
                ErrorCode::NoNetwork,
                format!("Network not found: no network with matching {what}"),
            )
        })
    }

    /// Records `call` and fails when `r` is the `bad` network.
    fn op(
        &self,
        call: String,
        r: Option<&pb::NetworkRef>,
        verb: &str,
    ) -> Result<pb::Network, Status> {
        self.record(call);
        let n = self.find(r)?;
        if n.name == "bad" {
            return Err(err(
                ErrorCode::OperationFailed,
                format!("operation failed: cannot {verb} network 'bad'"),
            ));
        }
        Ok(n)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut pb::Network)) {
        if let Some(n) = self.st().nets.iter_mut().find(|n| n.name == name) {
            f(n);
        }
    }

    /// The network of a new definition: its `<name>` (`bad` exists).
    fn new_network(xml: &str) -> Result<pb::Network, Status> {
        let name = common::xml::parse(xml)
            .ok()
            .and_then(|r| r.child("name").map(common::xml::Element::text))
            .ok_or_else(|| {
                err(
                    ErrorCode::XmlError,
                    "XML error: missing network name".to_owned(),
                )
            })?;
        if name == "bad" {
            return Err(err(
                ErrorCode::OperationFailed,
                format!("operation failed: network 'bad' already exists with uuid {U_BAD}"),
            ));
        }
        Ok(net(
            &name,
            "55555555-5555-5555-5555-555555555555",
            (false, true, false),
            "virbr9",
        ))
    }
}

#[tonic::async_trait]
impl NetworkService for Fake {
    async fn list_all_networks(
        &self,
        r: Request<pb::ListAllNetworksRequest>,
    ) -> Result<Response<pb::ListAllNetworksResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("ListAllNetworks: {r:?}"));
        let f = r.filter.unwrap_or_default();
        let networks = self
            .st()
            .nets
            .iter()
            .filter(|n| f.active.is_none_or(|a| a == n.active))
            .filter(|n| f.persistent.is_none_or(|p| p == n.persistent))
            .filter(|n| f.autostart.is_none_or(|a| a == n.autostart))
            .cloned()
            .collect();
        Ok(Response::new(pb::ListAllNetworksResponse { networks }))
    }

    async fn lookup_network(
        &self,
        r: Request<pb::LookupNetworkRequest>,
    ) -> Result<Response<pb::LookupNetworkResponse>, Status> {
        let n = self.find(r.get_ref().network.as_ref())?;
        Ok(Response::new(pb::LookupNetworkResponse {
            network: Some(n),
        }))
    }

    async fn define_network(
        &self,
        r: Request<pb::DefineNetworkRequest>,
    ) -> Result<Response<pb::DefineNetworkResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("DefineNetwork: {r:?}"));
        let n = Fake::new_network(&r.xml)?;
        Ok(Response::new(pb::DefineNetworkResponse {
            network: Some(n),
        }))
    }

    async fn create_network(
        &self,
        r: Request<pb::CreateNetworkRequest>,
    ) -> Result<Response<pb::CreateNetworkResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("CreateNetwork: {r:?}"));
        let mut n = Fake::new_network(&r.xml)?;
        n.active = true;
        n.persistent = false;
        Ok(Response::new(pb::CreateNetworkResponse {
            network: Some(n),
        }))
    }

    async fn undefine_network(
        &self,
        r: Request<pb::UndefineNetworkRequest>,
    ) -> Result<Response<pb::UndefineNetworkResponse>, Status> {
        let r = r.into_inner();
        self.op(
            format!("UndefineNetwork: {r:?}"),
            r.network.as_ref(),
            "undefine",
        )?;
        Ok(Response::new(pb::UndefineNetworkResponse {}))
    }

    async fn start_network(
        &self,
        r: Request<pb::StartNetworkRequest>,
    ) -> Result<Response<pb::StartNetworkResponse>, Status> {
        let r = r.into_inner();
        let n = self.op(format!("StartNetwork: {r:?}"), r.network.as_ref(), "start")?;
        self.update(&n.name, |n| n.active = true);
        Ok(Response::new(pb::StartNetworkResponse {}))
    }

    async fn destroy_network(
        &self,
        r: Request<pb::DestroyNetworkRequest>,
    ) -> Result<Response<pb::DestroyNetworkResponse>, Status> {
        let r = r.into_inner();
        let n = self.op(
            format!("DestroyNetwork: {r:?}"),
            r.network.as_ref(),
            "destroy",
        )?;
        self.update(&n.name, |n| n.active = false);
        Ok(Response::new(pb::DestroyNetworkResponse {}))
    }

    async fn update_network(
        &self,
        r: Request<pb::UpdateNetworkRequest>,
    ) -> Result<Response<pb::UpdateNetworkResponse>, Status> {
        let r = r.into_inner();
        self.op(
            format!("UpdateNetwork: {r:?}"),
            r.network.as_ref(),
            "update",
        )?;
        Ok(Response::new(pb::UpdateNetworkResponse {}))
    }

    async fn set_network_autostart(
        &self,
        r: Request<pb::SetNetworkAutostartRequest>,
    ) -> Result<Response<pb::SetNetworkAutostartResponse>, Status> {
        let r = r.into_inner();
        let n = self.op(
            format!("SetNetworkAutostart: {r:?}"),
            r.network.as_ref(),
            "set autostart of",
        )?;
        self.update(&n.name, |n| n.autostart = r.autostart);
        Ok(Response::new(pb::SetNetworkAutostartResponse {}))
    }

    async fn get_network_xml(
        &self,
        r: Request<pb::GetNetworkXmlRequest>,
    ) -> Result<Response<pb::GetNetworkXmlResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("GetNetworkXml: {r:?}"));
        let n = self.find(r.network.as_ref())?;
        let title = if n.name == "default" {
            "  <title>Default network</title>\n"
        } else {
            ""
        };
        let state = if r.inactive { "" } else { " connections='1'" };
        Ok(Response::new(pb::GetNetworkXmlResponse {
            xml: format!(
                "<network{state}>\n  <name>{}</name>\n  <uuid>{}</uuid>\n{title}</network>",
                n.name, n.uuid
            ),
        }))
    }

    async fn get_dhcp_leases(
        &self,
        r: Request<pb::GetDhcpLeasesRequest>,
    ) -> Result<Response<pb::GetDhcpLeasesResponse>, Status> {
        let r = r.into_inner();
        let n = self.op(
            format!("GetDhcpLeases: {r:?}"),
            r.network.as_ref(),
            "read leases of",
        )?;
        let leases = if n.name == "default" {
            leases()
                .into_iter()
                .filter(|l| {
                    r.mac
                        .as_ref()
                        .is_none_or(|m| m.eq_ignore_ascii_case(&l.mac))
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::GetDhcpLeasesResponse { leases }))
    }

    async fn create_port(
        &self,
        r: Request<pb::CreatePortRequest>,
    ) -> Result<Response<pb::CreatePortResponse>, Status> {
        let r = r.into_inner();
        let n = self.op(
            format!("CreatePort: {r:?}"),
            r.network.as_ref(),
            "create a port on",
        )?;
        let port = pb::Port {
            network: n.name,
            uuid: "eeeeeeee-0000-0000-0000-000000000003".into(),
            xml: r.xml,
        };
        self.st().ports.push(port.clone());
        Ok(Response::new(pb::CreatePortResponse { port: Some(port) }))
    }

    async fn lookup_port(
        &self,
        r: Request<pb::LookupPortRequest>,
    ) -> Result<Response<pb::LookupPortResponse>, Status> {
        let r = r.into_inner().port.unwrap_or_default();
        let n = self.find(r.network.as_ref())?;
        let found = self
            .st()
            .ports
            .iter()
            .find(|p| p.network == n.name && p.uuid == r.uuid)
            .cloned();
        let port = found.ok_or_else(|| {
            err(
                ErrorCode::NoNetworkPort,
                format!(
                    "network port not found: no network port with matching uuid '{}'",
                    r.uuid
                ),
            )
        })?;
        Ok(Response::new(pb::LookupPortResponse { port: Some(port) }))
    }

    async fn list_all_ports(
        &self,
        r: Request<pb::ListAllPortsRequest>,
    ) -> Result<Response<pb::ListAllPortsResponse>, Status> {
        let n = self.find(r.get_ref().network.as_ref())?;
        let ports = self
            .st()
            .ports
            .iter()
            .filter(|p| p.network == n.name)
            .cloned()
            .collect();
        Ok(Response::new(pb::ListAllPortsResponse { ports }))
    }

    async fn get_port_xml(
        &self,
        r: Request<pb::GetPortXmlRequest>,
    ) -> Result<Response<pb::GetPortXmlResponse>, Status> {
        let uuid = r.into_inner().port.unwrap_or_default().uuid;
        let xml = self
            .st()
            .ports
            .iter()
            .find(|p| p.uuid == uuid)
            .map(|p| p.xml.clone())
            .unwrap_or_default();
        Ok(Response::new(pb::GetPortXmlResponse { xml }))
    }

    async fn delete_port(
        &self,
        r: Request<pb::DeletePortRequest>,
    ) -> Result<Response<pb::DeletePortResponse>, Status> {
        let r = r.into_inner();
        self.record(format!("DeletePort: {r:?}"));
        let uuid = r.port.unwrap_or_default().uuid;
        if uuid == PORTS[0] {
            return Err(err(
                ErrorCode::OperationInvalid,
                "Requested operation is not valid: port is in use",
            ));
        }
        self.st().ports.retain(|p| p.uuid != uuid);
        Ok(Response::new(pb::DeletePortResponse {}))
    }
}

/// The fake domain service of `domifaddr`.
#[derive(Clone, Debug, Default)]
pub struct FakeDomains;

fn domains() -> Vec<(dpb::Domain, &'static str)> {
    let vm1 = "<domain type='kvm' id='1'>
  <name>vm1</name>
  <devices>
    <interface type='network'>
      <mac address='52:54:00:AA:00:01'/>
      <source network='default' portid='aaaaaaaa-0000-0000-0000-000000000001'/>
      <target dev='vnet0'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:cc:00:09'/>
      <source bridge='br0'/>
      <target dev='vnet1'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:dd:00:03'/>
      <source network='isolated'/>
      <target dev='vnet2'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:bb:00:02'/>
      <source network='default'/>
      <target dev='vnet3'/>
    </interface>
  </devices>
</domain>
";
    let lost = "<domain type='kvm' id='3'>
  <name>lost</name>
  <devices>
    <interface type='network'>
      <mac address='52:54:00:ee:00:01'/>
      <source network='gone'/>
      <target dev='vnet9'/>
    </interface>
  </devices>
</domain>
";
    let dom = |name: &str, uuid: &str, id: i32| dpb::Domain {
        name: name.into(),
        uuid: uuid.into(),
        id,
    };
    vec![
        (dom("vm1", U_VM1, 1), vm1),
        (
            dom("off", "99999999-0000-0000-0000-000000000002", -1),
            "<domain><name>off</name></domain>",
        ),
        (dom("lost", "99999999-0000-0000-0000-000000000003", 3), lost),
    ]
}

impl FakeDomains {
    fn find(r: Option<&dpb::DomainRef>) -> Result<(dpb::Domain, &'static str), Status> {
        use dpb::domain_ref::By;
        let by = r.and_then(|r| r.by.clone());
        let found = domains().into_iter().find(|(d, _)| match &by {
            Some(By::Name(n)) => *n == d.name,
            Some(By::Uuid(u)) => *u == d.uuid,
            Some(By::Id(i)) => *i == d.id,
            None => false,
        });
        found.ok_or_else(|| {
            let what = match by {
                Some(By::Name(n)) => format!("name '{n}'"),
                Some(By::Uuid(u)) => format!("uuid '{u}'"),
                Some(By::Id(i)) => format!("id {i}"),
                None => String::new(),
            };
            VirtError::new(
                ErrorCode::NoDomain,
                ErrorDomain::Qemu,
                format!("Domain not found: no domain with matching {what}"),
            )
            .to_status()
        })
    }
}

#[tonic::async_trait]
impl DomainService for FakeDomains {
    async fn lookup_domain(
        &self,
        r: Request<dpb::LookupDomainRequest>,
    ) -> Result<Response<dpb::LookupDomainResponse>, Status> {
        let (d, _) = FakeDomains::find(r.get_ref().domain.as_ref())?;
        Ok(Response::new(dpb::LookupDomainResponse { domain: Some(d) }))
    }

    async fn get_xml(
        &self,
        r: Request<dpb::GetXmlRequest>,
    ) -> Result<Response<dpb::GetXmlResponse>, Status> {
        let (_, xml) = FakeDomains::find(r.get_ref().domain.as_ref())?;
        Ok(Response::new(dpb::GetXmlResponse { xml: xml.into() }))
    }
}

/// Output captured from a `Ctl`.
#[derive(Clone, Default)]
pub struct Buf(Rc<RefCell<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn take(&self) -> String {
        let text = String::from_utf8_lossy(&self.0.borrow()).into_owned();
        self.0.borrow_mut().clear();
        text
    }
}

/// The fakes on a fresh socket, and a `Ctl` talking to them.
pub struct Harness {
    pub ctl: Ctl,
    out: Buf,
    err: Buf,
    pub state: Arc<Mutex<State>>,
    pub dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Harness {
    /// Starts the fakes (inside the current tokio runtime).
    pub fn new() -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "virtsh-net-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let fake = Fake {
            state: Arc::new(Mutex::new(State::initial())),
        };
        let state = fake.state.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(NetworkServiceServer::new(fake))
                .add_service(DomainServiceServer::new(FakeDomains))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        let (out, err) = (Buf::default(), Buf::default());
        let uri = format!("qemu+unix:///system?socket={}", sock.display());
        let ctl = Ctl::new(&crate::commands::TABLE, Settings::default(), Some(uri))
            .with_output(Box::new(out.clone()), Box::new(err.clone()));
        Harness {
            ctl,
            out,
            err,
            state,
            dir,
        }
    }

    /// The fake's state.
    pub fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    /// Writes `data` to a file in the harness directory; returns its path.
    pub fn file(&self, name: &str, data: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, data).expect("write");
        p.display().to_string()
    }

    /// Runs one command line: (success, stdout, stderr, calls recorded).
    pub async fn run(&mut self, line: &str) -> (bool, String, String, Vec<String>) {
        let cmds = match self.ctl.parse_line(line) {
            Ok(c) => c,
            Err(e) => panic!("{line}: {e}"),
        };
        let ok = self.ctl.run(&cmds).await;
        let calls = std::mem::take(&mut self.st().calls);
        (ok, self.out.take(), self.err.take(), calls)
    }

    /// Runs `line`, expecting success and exactly `stdout` (before the
    /// blank line virsh prints after each command).
    pub async fn ok(&mut self, line: &str, stdout: &str) -> Vec<String> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(ok, "{line}: {err}");
        assert_eq!(out, format!("{stdout}\n"), "{line}");
        assert_eq!(err, "", "{line}");
        calls
    }

    /// Runs `line`, expecting failure with exactly `stderr` (and `stdout`
    /// printed before the failure).
    pub async fn fails_after(&mut self, line: &str, stdout: &str, stderr: &str) -> Vec<String> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(!ok, "{line}: {out}");
        assert_eq!(err, stderr, "{line}");
        assert_eq!(out, format!("{stdout}\n"), "{line}");
        calls
    }

    /// Runs `line`, expecting failure with exactly `stderr` and no output.
    pub async fn fails(&mut self, line: &str, stderr: &str) -> Vec<String> {
        self.fails_after(line, "", stderr).await
    }
}
