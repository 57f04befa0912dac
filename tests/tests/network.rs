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
use tests::calls::network_ref as by_name;

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
            .env("RUST_LOG", "info,virtnetworkd=debug")
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

fn rule_lines(text: &str, bridge: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(&format!("\"{bridge}\"")))
        .map(|l| {
            // Counters change with traffic; the rule and its handle do not.
            let mut words: Vec<&str> = l.split_whitespace().collect();
            while let Some(i) = words.iter().position(|w| *w == "packets") {
                words.drain(i..(i + 4).min(words.len()));
            }
            words.join(" ")
        })
        .collect();
    v.sort();
    v
}

/// kill -9 of virtnetworkd with an active network: the restarted daemon
/// adopts bridge, dnsmasq and rules untouched (same pid, same handles),
/// and destroy then removes all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_restart_adopts_running_network() {
    let env = Env::new();
    let br = env.names.bridge(1);
    let mut d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    define(
        &mut c,
        &nat_xml("adopt", &br, env.names.net(1), "52:54:00:33:00:01"),
    )
    .await;
    start(&mut c, "adopt").await;
    // A transient one too.
    let br2 = env.names.bridge(2);
    c.create_network(pb::CreateNetworkRequest {
        xml: format!(
            "<network><name>trans</name><bridge name='{br2}'/>\
             <ip address='{}' prefix='24'><dhcp><range start='{}' end='{}'/></dhcp></ip></network>",
            env.names.net(2),
            env.names.host(2, 20),
            env.names.host(2, 30)
        ),
        validate: false,
    })
    .await
    .expect("create transient");
    let pid = env.dnsmasq_pid("adopt").expect("pid");
    let pid2 = env.dnsmasq_pid("trans").expect("pid");
    let before = rule_lines(&env.table_text(), &br);
    assert!(!before.is_empty());

    d.kill9();
    drop(c);
    let d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    let n = lookup(&mut c, "adopt").await.expect("adopted");
    assert!(n.active && n.persistent);
    let t = lookup(&mut c, "trans").await.expect("adopted transient");
    assert!(t.active && !t.persistent);
    assert!(netns::link_exists(&br) && netns::link_exists(&br2));
    assert_eq!(env.dnsmasq_pid("adopt"), Some(pid));
    assert!(alive(pid) && alive(pid2));
    assert_eq!(
        rule_lines(&env.table_text(), &br),
        before,
        "rules untouched"
    );

    // Managed: destroy removes everything; the transient one disappears.
    destroy(&mut c, "adopt").await;
    destroy(&mut c, "trans").await;
    assert!(!netns::link_exists(&br) && !netns::link_exists(&br2));
    assert!(wait_until(Duration::from_secs(3), || !alive(pid) && !alive(pid2)).await);
    assert!(rule_lines(&env.table_text(), &br).is_empty());
    assert!(rule_lines(&env.table_text(), &br2).is_empty());
    assert_eq!(
        lookup(&mut c, "trans").await.expect_err("gone").code(),
        Code::NotFound
    );
    // And it starts again.
    start(&mut c, "adopt").await;
    destroy(&mut c, "adopt").await;
}

/// After a restart, what vanished while the daemon was down is put back
/// (a killed dnsmasq, deleted rules), and a network whose bridge was
/// deleted is marked inactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_repairs_or_drops_what_vanished() {
    let env = Env::new();
    let (br0, br1) = (env.names.bridge(0), env.names.bridge(1));
    let mut d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    define(
        &mut c,
        &nat_xml("fix", &br0, env.names.net(0), "52:54:00:44:00:01"),
    )
    .await;
    define(
        &mut c,
        &nat_xml("lost", &br1, env.names.net(1), "52:54:00:44:00:02"),
    )
    .await;
    start(&mut c, "fix").await;
    start(&mut c, "lost").await;
    let old = env.dnsmasq_pid("fix").expect("pid");
    d.kill9();
    drop(c);
    // While the daemon is down: dnsmasq of "fix" killed, all rules
    // flushed; the bridge of "lost" deleted.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    );
    for chain in ["guest_output", "guest_input", "guest_cross", "guest_nat"] {
        let _ = Command::new("nft")
            .args(["flush", "chain", "ip", &env.names.table, chain])
            .output();
    }
    netns::ip(&["link", "del", &br1]);
    assert!(wait_until(Duration::from_secs(3), || !alive(old)).await);

    let d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    assert!(lookup(&mut c, "fix").await.expect("fix").active);
    let new = env.dnsmasq_pid("fix").expect("dnsmasq restarted");
    assert!(new != old && alive(new));
    assert!(
        !rule_lines(&env.table_text(), &br0).is_empty(),
        "rules back"
    );
    assert!(!lookup(&mut c, "lost").await.expect("lost").active);
    assert!(rule_lines(&env.table_text(), &br1).is_empty());
    destroy(&mut c, "fix").await;
    start(&mut c, "lost").await;
    destroy(&mut c, "lost").await;
}

/// Isolated (with IPv6 and DHCPv6), routed and open networks: the rules
/// each mode gets, dnsmasq with IPv6, and transient networks that vanish
/// on destroy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_routed_open_and_ipv6() {
    let env = Env::new();
    let d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    let (b0, b1, b2) = (
        env.names.bridge(0),
        env.names.bridge(1),
        env.names.bridge(2),
    );
    let v6 = format!("fd{:02x}:{:02x}{:02x}::", env.names.a, env.names.b, 7);
    c.create_network(pb::CreateNetworkRequest {
        xml: format!(
            "<network><name>iso</name><bridge name='{b0}'/>\
             <ip address='{}' prefix='24'><dhcp><range start='{}' end='{}'/></dhcp></ip>\
             <ip family='ipv6' address='{v6}1' prefix='64'><dhcp><range start='{v6}100' end='{v6}1ff'/></dhcp></ip>\
             </network>",
            env.names.net(0),
            env.names.host(0, 2),
            env.names.host(0, 9)
        ),
        validate: true,
    })
    .await
    .expect("isolated with IPv6");
    let iso = lookup(&mut c, "iso").await.expect("iso");
    assert!(iso.active && !iso.persistent);
    let pid = env.dnsmasq_pid("iso").expect("dnsmasq with IPv6");
    assert!(alive(pid));
    let conf = std::fs::read_to_string(
        env.root
            .paths()
            .driver_state_dir("dnsmasq")
            .join("iso.conf"),
    )
    .expect("conf");
    assert!(
        conf.contains("dhcp-option=3\nno-resolv\nra-param=*,0,0\n"),
        "{conf}"
    );
    assert!(conf.contains("enable-ra"), "{conf}");
    let v4 = rule_lines(&env.table_text(), &b0);
    assert_eq!(v4.len(), 3, "reject out, reject in, allow cross: {v4:?}");
    assert!(v4.iter().all(|l| !l.contains("saddr")));
    let v6rules = Command::new("nft")
        .args(["list", "table", "ip6", &env.names.table])
        .output()
        .expect("nft");
    assert!(String::from_utf8_lossy(&v6rules.stdout).contains(&format!("\"{b0}\"")));

    define(
        &mut c,
        &format!(
            "<network><name>routed</name><forward mode='route'/><bridge name='{b1}'/>\
             <ip address='{}' prefix='24'/></network>",
            env.names.net(1)
        ),
    )
    .await;
    start(&mut c, "routed").await;
    let r = rule_lines(&env.table_text(), &b1);
    assert!(
        r.iter()
            .any(|l| l.contains("daddr") && l.contains("accept")),
        "{r:?}"
    );
    assert!(!r.iter().any(|l| l.contains("masquerade")));
    // DNS only, no DHCP: dnsmasq all the same.
    let routed_pid = env.dnsmasq_pid("routed").expect("dnsmasq for DNS");
    // A DNS host added live: the hosts file is re-read (same dnsmasq);
    // a TXT record needs a restart (a new dnsmasq).
    let update = |section: pb::NetworkSection, xml: &str| pb::UpdateNetworkRequest {
        network: by_name("routed"),
        command: pb::NetworkUpdateCommand::AddLast as i32,
        section: section as i32,
        parent_index: -1,
        xml: xml.to_owned(),
        live: true,
        config: false,
    };
    c.update_network(update(
        pb::NetworkSection::DnsHost,
        &format!(
            "<host ip='{}'><hostname>db</hostname></host>",
            env.names.host(1, 9)
        ),
    ))
    .await
    .expect("dns host");
    assert_eq!(env.dnsmasq_pid("routed"), Some(routed_pid));
    let addn = std::fs::read_to_string(
        env.root
            .paths()
            .driver_state_dir("dnsmasq")
            .join("routed.addnhosts"),
    )
    .expect("addnhosts");
    assert_eq!(addn, format!("{}\tdb\t\n", env.names.host(1, 9)));
    c.update_network(update(
        pb::NetworkSection::DnsTxt,
        "<txt name='k' value='v'/>",
    ))
    .await
    .expect("txt");
    let new_pid = env.dnsmasq_pid("routed").expect("dnsmasq");
    assert_ne!(new_pid, routed_pid);
    assert!(wait_until(Duration::from_secs(3), || !alive(routed_pid)).await);
    // Live only: the definition file does not have it.
    let inactive = c
        .get_network_xml(pb::GetNetworkXmlRequest {
            network: by_name("routed"),
            inactive: true,
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    assert!(!inactive.contains("<txt"), "{inactive}");

    define(
        &mut c,
        &format!(
            "<network><name>open</name><forward mode='open'/><bridge name='{b2}'/>\
             <dns enable='no'/><ip address='{}' prefix='24'/></network>",
            env.names.net(2)
        ),
    )
    .await;
    start(&mut c, "open").await;
    assert!(netns::link_exists(&b2));
    assert!(
        rule_lines(&env.table_text(), &b2).is_empty(),
        "open: no rules"
    );
    assert!(
        env.dnsmasq_pid("open").is_none(),
        "no DHCP, no DNS: no dnsmasq"
    );

    let active: Vec<String> = c
        .list_all_networks(pb::ListAllNetworksRequest {
            filter: Some(pb::NetworkListFilter {
                active: Some(true),
                persistent: Some(true),
                autostart: None,
            }),
        })
        .await
        .expect("list")
        .into_inner()
        .networks
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(active, ["open", "routed"]);

    for n in ["iso", "routed", "open"] {
        destroy(&mut c, n).await;
    }
    assert!(wait_until(Duration::from_secs(3), || !alive(pid)).await);
    assert_eq!(
        lookup(&mut c, "iso").await.expect_err("gone").code(),
        Code::NotFound
    );
    for b in [&b0, &b1, &b2] {
        assert!(!netns::link_exists(b));
        assert!(rule_lines(&env.table_text(), b).is_empty());
    }
}

/// A `forward mode='bridge'` network on an existing host bridge, and the
/// port API a NIC uses: the plug names the bridge, the portgroup gives
/// the bandwidth, parameters change it, ports survive a daemon restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_bridge_network_and_ports() {
    let env = Env::new();
    let host_br = env.names.bridge(3);
    netns::ip(&["link", "add", &host_br, "type", "bridge"]);
    let mut d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    define(
        &mut c,
        &format!(
            "<network><name>hostbr</name><forward mode='bridge'/><bridge name='{host_br}'/>\
             <portgroup name='fast' default='yes'><bandwidth><inbound average='1000' peak='2000'/></bandwidth></portgroup>\
             </network>"
        ),
    )
    .await;
    let port_xml = "<networkport><owner><name>vm1</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>\
                    <mac address='52:54:00:55:00:01'/></networkport>";
    let e = c
        .create_port(pb::CreatePortRequest {
            network: by_name("hostbr"),
            xml: port_xml.to_owned(),
            reclaim: false,
            validate: false,
        })
        .await
        .expect_err("inactive network");
    assert_eq!(e.code(), Code::FailedPrecondition);
    start(&mut c, "hostbr").await;
    let port = c
        .create_port(pb::CreatePortRequest {
            network: by_name("hostbr"),
            xml: port_xml.to_owned(),
            reclaim: false,
            validate: true,
        })
        .await
        .expect("port")
        .into_inner()
        .port
        .expect("port");
    assert!(
        port.xml.contains(&format!(
            "<plug type='bridge' bridge='{host_br}' macTableManager='kernel'/>"
        )),
        "{}",
        port.xml
    );
    assert!(port.xml.contains("<inbound average='1000' peak='2000'/>"));
    let pref = || {
        Some(pb::PortRef {
            network: by_name("hostbr"),
            uuid: port.uuid.clone(),
        })
    };
    c.set_port_parameters(pb::SetPortParametersRequest {
        port: pref(),
        params: vec![proto::common::v1::TypedParam {
            field: "outbound.average".into(),
            value: Some(proto::common::v1::typed_param::Value::Uint(500)),
        }],
    })
    .await
    .expect("set params");
    let params = c
        .get_port_parameters(pb::GetPortParametersRequest { port: pref() })
        .await
        .expect("params")
        .into_inner()
        .params;
    let get = |n: &str| {
        params
            .iter()
            .find(|p| p.field == n)
            .and_then(|p| match p.value {
                Some(proto::common::v1::typed_param::Value::Uint(v)) => Some(v),
                _ => None,
            })
    };
    assert_eq!(
        (get("inbound.average"), get("outbound.average")),
        (Some(1000), Some(500))
    );
    let live = c
        .get_network_xml(pb::GetNetworkXmlRequest {
            network: by_name("hostbr"),
            inactive: false,
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    assert!(live.starts_with("<network connections='1'>"), "{live}");

    // Ports survive a restart of the daemon.
    d.kill9();
    drop(c);
    let d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    let ports = c
        .list_all_ports(pb::ListAllPortsRequest {
            network: by_name("hostbr"),
        })
        .await
        .expect("ports")
        .into_inner()
        .ports;
    assert_eq!(ports.len(), 1);
    assert!(
        ports[0].xml.contains("<outbound average='500'/>"),
        "{}",
        ports[0].xml
    );
    // The read-only socket may look, not change.
    let mut ro = d.network(SocketKind::ReadOnly).await;
    ro.get_port_xml(pb::GetPortXmlRequest { port: pref() })
        .await
        .expect("ro port xml");
    let e = ro
        .delete_port(pb::DeletePortRequest { port: pref() })
        .await
        .expect_err("read-only");
    assert_eq!(e.code(), Code::PermissionDenied);
    c.delete_port(pb::DeletePortRequest { port: pref() })
        .await
        .expect("delete");
    let e = c
        .lookup_port(pb::LookupPortRequest { port: pref() })
        .await
        .expect_err("gone");
    assert_eq!(e.code(), Code::NotFound);
    destroy(&mut c, "hostbr").await;
    assert!(
        netns::link_exists(&host_br),
        "the host bridge is not ours to delete"
    );
}

/// Autostart networks come up while the daemon initialises; a call made
/// meanwhile waits for it instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autostart_before_serving() {
    let env = Env::new();
    let br = env.names.bridge(0);
    let mut d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    define(
        &mut c,
        &nat_xml("auto", &br, env.names.net(0), "52:54:00:66:00:01"),
    )
    .await;
    c.set_network_autostart(pb::SetNetworkAutostartRequest {
        network: by_name("auto"),
        autostart: true,
    })
    .await
    .expect("autostart");
    d.stop().await;
    drop(c);
    // A new boot: the marker of this boot's autostart is gone.
    let _ = std::fs::remove_file(
        env.root
            .paths()
            .driver_run_dir("network")
            .join("autostarted"),
    );
    let mut d = Daemon::builder("virtnetworkd", &env.root)
        .env("VIRT_NETWORK_NFT_TABLE", &env.names.table)
        .spawn();
    // Ask as soon as the socket exists, before the daemon serves.
    let sock = d.socket(SocketKind::ReadWrite);
    assert!(wait_until(Duration::from_secs(20), || sock.exists()).await);
    let mut c = NetworkServiceClient::new(tests::channel_to(&sock).await);
    let n = lookup(&mut c, "auto").await.expect("answered after init");
    assert!(n.active && n.autostart, "{n:?}");
    assert!(netns::link_exists(&br));
    d.wait_ready().await;
    destroy(&mut c, "auto").await;
}

/// Start and destroy of a NAT network with DHCP, again and again, back to
/// back: each start brings up the bridge, dnsmasq and the rules; each
/// destroy takes all three away, and its bridge name is free at once for
/// the next start (the old bridge is deleted in the background). The
/// timings are a benchmark: `make bench-network`
/// (docs/benchmarks-network.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_destroy_repeatedly() {
    let env = Env::new();
    let br = env.names.bridge(0);
    let d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    define(
        &mut c,
        &nat_xml("bench", &br, env.names.net(0), "52:54:00:77:00:01"),
    )
    .await;
    for round in 0..5 {
        start(&mut c, "bench").await;
        assert!(netns::link_exists(&br), "round {round}: no bridge");
        let pid = env.dnsmasq_pid("bench").expect("dnsmasq pid file");
        assert!(alive(pid), "round {round}: dnsmasq not running");
        assert!(
            !rule_lines(&env.table_text(), &br).is_empty(),
            "round {round}: no rules"
        );
        assert!(lookup(&mut c, "bench").await.expect("lookup").active);
        destroy(&mut c, "bench").await;
        assert!(!netns::link_exists(&br), "round {round}: bridge left");
        assert!(
            wait_until(Duration::from_secs(3), || !alive(pid)).await,
            "round {round}: dnsmasq left"
        );
        assert!(
            rule_lines(&env.table_text(), &br).is_empty(),
            "round {round}: rules left"
        );
        assert!(!lookup(&mut c, "bench").await.expect("lookup").active);
    }
}

/// `tc` output for `what` (`qdisc`, `class`, `filter`) of `dev`, with
/// `extra` words after the device; empty when tc fails (no device).
fn tc_show(what: &str, dev: &str, extra: &[&str]) -> String {
    let out = Command::new("tc")
        .args([what, "show", "dev", dev])
        .args(extra)
        .output()
        .expect("tc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether this kernel has what an outbound limit needs (the ingress
/// qdisc, the u32 classifier and the police action), tried as the daemon
/// probes it: on the loopback device of a network namespace of its own.
fn police_works() -> bool {
    Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "tc qdisc add dev lo ingress && tc filter add dev lo parent ffff: protocol all \
             u32 match u32 0 0 police rate 1kbps burst 1kb mtu 64kb drop flowid :1",
        ])
        .output()
        .expect("unshare")
        .status
        .success()
}

fn bandwidth_xml(name: &str, bridge: &str, ip: Ipv4Addr, bandwidth: &str) -> String {
    format!(
        "<network><name>{name}</name><bridge name='{bridge}'/>\
         <bandwidth>{bandwidth}</bandwidth><ip address='{ip}' prefix='24'/></network>"
    )
}

/// A network's `<bandwidth>` on its bridge: the inbound limit is an HTB
/// tree with libvirt's rates, gone with the bridge on destroy and put
/// back by a restarted daemon when it vanished; an outbound limit gets
/// the ingress police filter where the kernel has the police action, and
/// is refused with nothing left behind where it has not; a start whose
/// tc commands fail is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_on_the_bridge() {
    let env = Env::new();
    let (br0, br1, br2) = (
        env.names.bridge(0),
        env.names.bridge(1),
        env.names.bridge(2),
    );
    let mut d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;

    // Inbound: libvirt's hierarchical HTB classes, in its units
    // (1000 kilobytes/s = 8 Mbit, burst 256 KiB, quantum 1000*1024/8/1500).
    define(
        &mut c,
        &bandwidth_xml(
            "bwin",
            &br0,
            env.names.net(0),
            "<inbound average='1000' peak='2000' burst='256'/>",
        ),
    )
    .await;
    start(&mut c, "bwin").await;
    let qdiscs = tc_show("qdisc", &br0, &[]);
    assert!(
        qdiscs.contains("qdisc htb 1: root") && qdiscs.contains("default 0x2"),
        "{qdiscs}"
    );
    let classes = tc_show("class", &br0, &[]);
    assert!(
        classes.contains("class htb 1:1 root rate 8Mbit ceil 16Mbit burst 256Kb"),
        "{classes}"
    );
    assert!(
        classes.contains("class htb 1:2 parent 1:1 prio 0 rate 8Mbit ceil 16Mbit burst 256Kb"),
        "{classes}"
    );
    let detail = Command::new("tc")
        .args(["-d", "class", "show", "dev", &br0])
        .output()
        .expect("tc");
    let detail = String::from_utf8_lossy(&detail.stdout);
    assert!(detail.contains("quantum 85"), "{detail}");

    // A restarted daemon puts back what vanished, and leaves alone what
    // is there.
    d.kill9();
    drop(c);
    let _ = Command::new("tc")
        .args(["qdisc", "del", "dev", &br0, "root"])
        .output();
    assert!(!tc_show("qdisc", &br0, &[]).contains("htb"));
    let d = env.daemon().await;
    let mut c = d.network(SocketKind::ReadWrite).await;
    assert!(lookup(&mut c, "bwin").await.expect("bwin").active);
    assert!(
        tc_show("class", &br0, &[]).contains("class htb 1:2 parent 1:1"),
        "classes back after restart"
    );

    // Destroy: the bridge goes, and its qdiscs with it.
    destroy(&mut c, "bwin").await;
    assert!(!netns::link_exists(&br0));
    assert!(tc_show("qdisc", &br0, &[]).is_empty());

    // Outbound: police on the ingress where the kernel allows it, else
    // refused up front.
    define(
        &mut c,
        &bandwidth_xml(
            "bwout",
            &br1,
            env.names.net(1),
            "<inbound average='1000'/><outbound average='500' burst='64'/>",
        ),
    )
    .await;
    let r = c
        .start_network(pb::StartNetworkRequest {
            network: by_name("bwout"),
        })
        .await;
    if police_works() {
        r.expect("outbound limit applied");
        let qdiscs = tc_show("qdisc", &br1, &[]);
        assert!(qdiscs.contains("qdisc ingress ffff:"), "{qdiscs}");
        let filters = tc_show("filter", &br1, &["ingress"]);
        assert!(filters.contains("police"), "{filters}");
        destroy(&mut c, "bwout").await;
    } else {
        let e = r.expect_err("outbound limit refused");
        assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
        assert!(
            e.message().contains("<bandwidth><outbound>")
                && e.message().contains("police action")
                && e.message().contains("'bwout'"),
            "{}",
            e.message()
        );
        assert!(!lookup(&mut c, "bwout").await.expect("bwout").active);
        assert!(env.dnsmasq_pid("bwout").is_none(), "no dnsmasq started");
    }
    assert!(!netns::link_exists(&br1), "no bridge left");
    assert!(
        rule_lines(&env.table_text(), &br1).is_empty(),
        "no rules left"
    );

    // A rate tc cannot take: the start fails after the bridge, dnsmasq
    // and rules were made, and all three are undone.
    define(
        &mut c,
        &bandwidth_xml(
            "bwbad",
            &br2,
            env.names.net(2),
            "<inbound average='100000000000000000'/>",
        ),
    )
    .await;
    let e = c
        .start_network(pb::StartNetworkRequest {
            network: by_name("bwbad"),
        })
        .await
        .expect_err("tc refuses the rate");
    assert!(
        e.message().contains("Failed to set bandwidth on bridge"),
        "{}",
        e.message()
    );
    assert!(!netns::link_exists(&br2), "no bridge left");
    assert!(
        rule_lines(&env.table_text(), &br2).is_empty(),
        "no rules left"
    );
    assert!(!lookup(&mut c, "bwbad").await.expect("bwbad").active);
    let pid_file = env.pid_file("bwbad");
    assert!(
        wait_until(Duration::from_secs(3), || env
            .dnsmasq_pid("bwbad")
            .is_none_or(|p| !alive(p)))
        .await,
        "dnsmasq left ({})",
        pid_file.display()
    );
}
