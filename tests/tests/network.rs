//! virtnetworkd end to end, on the host as root: real bridges, dnsmasq
//! and nftables rules. Every test uses its own bridge names, subnet and
//! nftables table (`VIRT_NETWORK_NFT_TABLE`), derived from its test
//! root's random suffix, and a [`HostGuard`] removes bridges, dnsmasq
//! processes and tables even when the test fails.
//!
//! A "guest" is a network namespace with a veth into the bridge
//! (`tests::netns`): it gets a DHCP lease from dnsmasq, reaches the host,
//! and its lease shows in the leases API.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use proto::network::v1 as pb;
use proto::network::v1::network_service_client::NetworkServiceClient;
use tests::netns::{self, NetNs, Veth};
use tests::{Daemon, SocketKind, TestRoot, wait_until};
use tonic::Code;
use tonic::transport::Channel;

type Client = NetworkServiceClient<Channel>;

/// Names and addresses unique to one test root.
#[derive(Debug)]
struct Names {
    /// 6 characters from the root's random suffix.
    tag: String,
    /// The nftables table.
    table: String,
    /// Third and second octet of the test's 10.x.y.0/24 subnets.
    a: u8,
    b: u8,
}

impl Names {
    fn of(root: &TestRoot) -> Names {
        let base = root
            .path()
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
        let a = 100 + u8::try_from(h % 100).unwrap_or(0);
        let b = u8::try_from((h / 100) % 200).unwrap_or(0);
        Names {
            table: format!("vt_{tag}"),
            tag,
            a,
            b,
        }
    }

    /// A bridge name (at most 15 bytes).
    fn bridge(&self, n: u8) -> String {
        format!("vb{}{n}", self.tag)
    }

    /// The host address of subnet `n`: 10.a.(b+n).1.
    fn net(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.a, self.b.wrapping_add(n), 1)
    }

    fn host(&self, n: u8, last: u8) -> Ipv4Addr {
        let o = self.net(n).octets();
        Ipv4Addr::new(o[0], o[1], o[2], last)
    }
}

/// Removes what the networks of a test may have left on the host.
struct HostGuard {
    bridges: Vec<String>,
    table: String,
    pid_dir: PathBuf,
    netns: Vec<String>,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(&self.pid_dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) != Some("pid") {
                    continue;
                }
                if let Some(pid) = std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if String::from_utf8_lossy(&cmd).contains("dnsmasq") {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        for n in &self.netns {
            netns::ip_quiet(&["netns", "del", n]);
        }
        for b in &self.bridges {
            netns::ip_quiet(&["link", "del", b]);
        }
        for fam in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", fam, &self.table])
                .output();
        }
    }
}

struct Env {
    names: Names,
    _guard: HostGuard,
    root: TestRoot,
}

impl Env {
    fn new() -> Env {
        let root = TestRoot::new();
        // dnsmasq re-reads its hosts files as 'nobody': the tree must be
        // searchable, as /var/lib is.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod root");
        let names = Names::of(&root);
        let guard = HostGuard {
            bridges: (0..4).map(|i| names.bridge(i)).collect(),
            table: names.table.clone(),
            pid_dir: root.paths().driver_run_dir("network"),
            netns: (0..4).map(|i| format!("vn{}{i}", names.tag)).collect(),
        };
        Env {
            names,
            _guard: guard,
            root,
        }
    }

    async fn daemon(&self) -> Daemon {
        Daemon::builder("virtnetworkd", &self.root)
            .env("VIRT_NETWORK_NFT_TABLE", &self.names.table)
            .start()
            .await
    }

    fn netns(&self, i: u8) -> NetNs {
        NetNs::new(&format!("vn{}{i}", self.names.tag))
    }

    fn pid_file(&self, net: &str) -> PathBuf {
        self.root
            .paths()
            .driver_run_dir("network")
            .join(format!("{net}.pid"))
    }

    fn dnsmasq_pid(&self, net: &str) -> Option<i32> {
        std::fs::read_to_string(self.pid_file(net))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    fn table_text(&self) -> String {
        let out = Command::new("nft")
            .args(["-a", "list", "table", "ip", &self.names.table])
            .output()
            .expect("nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn by_name(n: &str) -> Option<pb::NetworkRef> {
    Some(pb::NetworkRef {
        by: Some(pb::network_ref::By::Name(n.to_owned())),
    })
}

fn nat_xml(name: &str, bridge: &str, ip: Ipv4Addr, static_mac: &str) -> String {
    let o = ip.octets();
    let p = |last: u8| Ipv4Addr::new(o[0], o[1], o[2], last);
    format!(
        "<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}'/>
  <domain name='test.lan'/>
  <dns>
    <host ip='{}'><hostname>web</hostname></host>
    <txt name='t' value='v'/>
    <srv service='http' protocol='tcp' target='web.test.lan' port='80'/>
  </dns>
  <mtu size='1400'/>
  <ip address='{ip}' prefix='24'>
    <dhcp>
      <range start='{}' end='{}'/>
      <host mac='{static_mac}' name='guest1' ip='{}'/>
    </dhcp>
  </ip>
</network>
",
        p(50),
        p(100),
        p(150),
        p(10)
    )
}

async fn define(c: &mut Client, xml: &str) -> pb::Network {
    c.define_network(pb::DefineNetworkRequest {
        xml: xml.to_owned(),
        validate: false,
    })
    .await
    .expect("define")
    .into_inner()
    .network
    .expect("network")
}

async fn start(c: &mut Client, name: &str) {
    c.start_network(pb::StartNetworkRequest {
        network: by_name(name),
    })
    .await
    .unwrap_or_else(|e| panic!("start {name}: {e:?}"));
}

async fn destroy(c: &mut Client, name: &str) {
    c.destroy_network(pb::DestroyNetworkRequest {
        network: by_name(name),
    })
    .await
    .unwrap_or_else(|e| panic!("destroy {name}: {e:?}"));
}

async fn lookup(c: &mut Client, name: &str) -> Result<pb::Network, tonic::Status> {
    c.lookup_network(pb::LookupNetworkRequest {
        network: by_name(name),
    })
    .await
    .map(|r| r.into_inner().network.expect("network"))
}

async fn leases(c: &mut Client, name: &str, mac: Option<&str>) -> Vec<pb::DhcpLease> {
    c.get_dhcp_leases(pb::GetDhcpLeasesRequest {
        network: by_name(name),
        mac: mac.map(str::to_owned),
    })
    .await
    .expect("leases")
    .into_inner()
    .leases
}

fn lease_in_blocking(ns: &NetNs, mac: &str, host: &str) -> netns::Lease {
    netns::dhcp_lease(ns, "eth0", mac, Some(host), Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("DHCP for {mac}: {e}"))
}

/// The whole life of a NAT network with a guest: bridge, dnsmasq and NAT
/// rules while active; a static and a dynamic lease; the guest reaches
/// the host; leases in the API; live DHCP host update; all gone after
/// destroy; started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_network_serves_dhcp_and_cleans_up() {
    let env = Env::new();
    let d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    let br = env.names.bridge(0);
    let gw = env.names.net(0);
    let mac1 = "52:54:00:11:22:01";
    let mac2 = "52:54:00:11:22:02";
    let n = define(&mut c, &nat_xml("nat0", &br, gw, mac1)).await;
    assert_eq!(
        (n.active, n.persistent, n.bridge.as_str()),
        (false, true, br.as_str())
    );
    start(&mut c, "nat0").await;
    assert!(lookup(&mut c, "nat0").await.expect("lookup").active);
    assert!(netns::link_exists(&br), "bridge {br} exists");
    let pid = env.dnsmasq_pid("nat0").expect("dnsmasq pid file");
    assert!(alive(pid));
    let rules = env.table_text();
    assert!(rules.contains(&format!("iif \"{br}\"")), "{rules}");
    assert!(
        rules.contains(&format!("ip saddr {}/24", env.names.host(0, 0))),
        "{rules}"
    );
    assert!(rules.contains("masquerade"), "{rules}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .expect("ip_forward")
            .trim(),
        "1"
    );

    // Two guests: the static host gets its address, the other one from
    // the range (after dnsmasq's ping check).
    let ns1 = env.netns(0);
    let _v1 = Veth::into_bridge(&ns1, &format!("vh{}0", env.names.tag), "eth0", mac1, &br);
    let ns2 = env.netns(1);
    let _v2 = Veth::into_bridge(&ns2, &format!("vh{}1", env.names.tag), "eth0", mac2, &br);
    let (l1, l2) = std::thread::scope(|s| {
        let a = s.spawn(|| lease_in_blocking(&ns1, mac1, "guest1"));
        let b = s.spawn(|| lease_in_blocking(&ns2, mac2, "guest2"));
        (a.join().expect("guest 1"), b.join().expect("guest 2"))
    });
    assert_eq!(l1.ip, env.names.host(0, 10));
    assert_eq!((l1.server, l1.prefix, l1.router), (gw, 24, Some(gw)));
    assert_eq!(l1.mtu, Some(1400));
    let o2 = l2.ip.octets();
    assert!(
        (100..=150).contains(&o2[3]) && l2.ip.octets()[..3] == gw.octets()[..3],
        "{l2:?}"
    );

    // The guest reaches the host: dnsmasq's DNS port on the bridge.
    ns1.ip(&["addr", "add", &format!("{}/24", l1.ip), "dev", "eth0"]);
    netns::tcp_connect(&ns1, SocketAddr::from((gw, 53)), Duration::from_secs(5))
        .expect("guest reaches the host");

    // The leases API shows both (dnsmasq runs the lease helper just
    // after its ACK), and filters by MAC.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut all = leases(&mut c, "nat0", None).await;
    while all.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        all = leases(&mut c, "nat0", None).await;
    }
    assert_eq!(all.len(), 2, "{all:?}");
    let one = leases(&mut c, "nat0", Some("52:54:00:11:22:01")).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].ipaddr, l1.ip.to_string());
    assert_eq!((one[0].iface.as_str(), one[0].prefix), (br.as_str(), 24));
    assert_eq!(one[0].hostname, "guest1");

    // A static host added live: hosts file rewritten, dnsmasq kept.
    c.update_network(pb::UpdateNetworkRequest {
        network: by_name("nat0"),
        command: pb::NetworkUpdateCommand::AddLast as i32,
        section: pb::NetworkSection::IpDhcpHost as i32,
        parent_index: -1,
        xml: format!(
            "<host mac='52:54:00:11:22:03' name='guest3' ip='{}'/>",
            env.names.host(0, 11)
        ),
        live: true,
        config: true,
    })
    .await
    .expect("update");
    assert_eq!(env.dnsmasq_pid("nat0"), Some(pid));
    let hosts = std::fs::read_to_string(
        env.root
            .paths()
            .driver_state_dir("dnsmasq")
            .join("nat0.hostsfile"),
    )
    .expect("hostsfile");
    assert!(hosts.contains("52:54:00:11:22:03"), "{hosts}");
    let live = c
        .get_network_xml(pb::GetNetworkXmlRequest {
            network: by_name("nat0"),
            inactive: true,
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    assert!(live.contains("guest3"));

    // Destroy: everything of it is gone, the guests' veths are unplugged.
    destroy(&mut c, "nat0").await;
    assert!(!netns::link_exists(&br));
    assert!(wait_until(Duration::from_secs(3), || !alive(pid)).await);
    let rules = env.table_text();
    assert!(!rules.contains(&format!("\"{br}\"")), "{rules}");
    assert!(!rules.contains("masquerade"), "{rules}");
    assert!(!lookup(&mut c, "nat0").await.expect("lookup").active);
    let e = c
        .destroy_network(pb::DestroyNetworkRequest {
            network: by_name("nat0"),
        })
        .await
        .expect_err("not active");
    assert_eq!(e.code(), Code::FailedPrecondition);

    // And up again.
    start(&mut c, "nat0").await;
    assert!(netns::link_exists(&br));
    destroy(&mut c, "nat0").await;
    c.undefine_network(pb::UndefineNetworkRequest {
        network: by_name("nat0"),
    })
    .await
    .expect("undefine");
    assert_eq!(
        lookup(&mut c, "nat0").await.expect_err("gone").code(),
        Code::NotFound
    );
}
