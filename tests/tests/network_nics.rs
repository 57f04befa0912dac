//! Domain NICs on virtual networks (`<interface type='network'>`):
//! virtqemud takes a port from virtnetworkd, puts the tap on the
//! network's bridge, releases the port when the domain stops, and
//! reclaims it after its own restart; a NIC attached live gets its own.
//! A NIC's `<bandwidth>` goes on its tap (tc), at start and live attach.

use std::time::Duration;

use proto::domain::v1 as pb;
use proto::network::v1 as npb;
use tests::calls::{domain_ref as dom_ref, network_ref as net_ref, start_isolated_network};
use tests::guest::{GuestKind, UP_LINE, build_image};
use tests::{Daemon, SocketKind, TestRoot, wait_until, wait_until_async};

/// Kills QEMUs of the root and removes the bridge when dropped.
struct Cleanup<'a>(&'a TestRoot, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        tests::procs::kill_under(self.0.path(), &["qemu-system", "dnsmasq"]);
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.1])
            .status();
    }
}

async fn ports(netd: &Daemon) -> usize {
    netd.network(SocketKind::ReadWrite)
        .await
        .list_all_ports(npb::ListAllPortsRequest {
            network: net_ref("lan"),
        })
        .await
        .expect("ports")
        .into_inner()
        .ports
        .len()
}

#[tokio::test]
async fn a_network_nic_gets_a_port_and_a_tap_on_the_bridge() {
    let root = TestRoot::new();
    let tag: String = root
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .rev()
        .take(7)
        .collect();
    let bridge = format!("vnn{tag}");
    let _cleanup = Cleanup(&root, bridge.clone());
    let third = 16 + (tag.bytes().map(u32::from).sum::<u32>() % 200);
    let netd = Daemon::start("virtnetworkd", &root).await;
    let mut n = netd.network(SocketKind::ReadWrite).await;
    start_isolated_network(&mut n, "lan", &bridge, &format!("172.30.{third}.1")).await;

    let mut qemud = Daemon::start("virtqemud", &root).await;
    let image = root.path().join("vm.img");
    build_image(&image, GuestKind::IgnoresPowerButton).expect("image");
    let serial = root.path().join("vm.serial");
    let xml = format!(
        "<domain type='qemu'><name>vm</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os><features><acpi/></features>\
         <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/>\
         <target dev='sda' bus='sata'/></disk>\
         <interface type='network'><mac address='52:54:00:aa:cc:01'/><source network='lan'/><model type='virtio'/>\
         <bandwidth><inbound average='1000' peak='2000' burst='256'/></bandwidth></interface>\
         <serial type='file'><source path='{}'/><target port='0'/></serial><memballoon model='none'/></devices></domain>",
        image.display(),
        serial.display()
    );
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    c.define_xml(pb::DefineXmlRequest {
        xml,
        validate: true,
    })
    .await
    .unwrap_or_else(|e| panic!("define: {}", e.message()));
    c.start(pb::StartRequest {
        domain: dom_ref("vm"),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start: {}", e.message()));
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&serial)
            .unwrap_or_default()
            .contains(UP_LINE))
        .await
    );
    let live = c
        .get_xml(pb::GetXmlRequest {
            domain: dom_ref("vm"),
            ..Default::default()
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    let iface = live
        .split("<interface type='network'>")
        .nth(1)
        .expect("nic");
    assert!(iface.contains("portid='"), "{live}");
    let tap = iface
        .split("<target dev='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("tap")
        .to_owned();
    let master = std::fs::read_link(format!("/sys/class/net/{tap}/master")).expect("on a bridge");
    assert_eq!(
        master.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(bridge.clone())
    );
    assert_eq!(ports(&netd).await, 1, "one port while it runs");
    // Its <inbound> is the tap's egress: one flat htb class with the rates.
    let classes = std::process::Command::new("tc")
        .args(["class", "show", "dev", &tap])
        .output()
        .expect("tc");
    let classes = String::from_utf8_lossy(&classes.stdout);
    assert!(
        classes.contains("class htb 1:1 root") && classes.contains("rate 8Mbit ceil 16Mbit"),
        "{classes}"
    );

    // virtqemud restarts: the port is reclaimed, the domain keeps its tap.
    qemud.kill9();
    let qemud = Daemon::start("virtqemud", &root).await;
    assert!(
        wait_until(Duration::from_secs(10), || qemud
            .output()
            .contains("network ports reclaimed"))
        .await,
        "{}",
        qemud.output()
    );
    assert_eq!(ports(&netd).await, 1);

    // The network is destroyed and started again: the running domain's
    // tap joins the new bridge.
    n.destroy_network(npb::DestroyNetworkRequest {
        network: net_ref("lan"),
    })
    .await
    .expect("destroy network");
    // The old bridge is renamed and deleted in the background
    // (bridge::teardown): the tap leaves it with it.
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_link(format!(
            "/sys/class/net/{tap}/master"
        ))
        .is_err())
        .await,
        "off the bridge while the network is down"
    );
    n.start_network(npb::StartNetworkRequest {
        network: net_ref("lan"),
    })
    .await
    .expect("start network again");
    let on_bridge = || {
        std::fs::read_link(format!("/sys/class/net/{tap}/master"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            == Some(bridge.clone())
    };
    assert!(
        wait_until(Duration::from_secs(5), on_bridge).await,
        "the tap is back on the bridge; virtqemud said:\n{}",
        qemud.output()
    );
    let mut c = qemud.domain(SocketKind::ReadWrite).await;

    // A NIC with an <outbound> limit needs tc's police action: refused
    // (no port, no tap left) where this kernel lacks it, else policed on
    // the tap's ingress.
    let police = !common::network::tc::Tc::new()
        .support()
        .missing
        .contains_key(&common::network::bandwidth::TcFeature::Police);
    let taps_before = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| d.count())
        .unwrap_or(0);
    let policed = c
        .attach_device(pb::AttachDeviceRequest {
            domain: dom_ref("vm"),
            xml: "<interface type='network'><mac address='52:54:00:aa:cc:03'/>\
                  <source network='lan'/><model type='virtio'/>\
                  <bandwidth><outbound average='100'/></bandwidth></interface>"
                .into(),
            flags: Some(pb::DeviceModifyFlags {
                live: true,
                config: false,
                force: false,
            }),
        })
        .await;
    let extra = if police {
        policed.unwrap_or_else(|e| panic!("attach policed NIC: {}", e.message()));
        1
    } else {
        let e = policed.expect_err("outbound refused without police");
        assert!(
            e.message()
                .contains("<bandwidth><outbound> of interface '52:54:00:aa:cc:03'")
                && e.message().contains("police"),
            "{}",
            e.message()
        );
        assert!(
            wait_until_async(Duration::from_secs(5), || async { ports(&netd).await == 1 }).await,
            "the refused NIC's port is released"
        );
        assert_eq!(
            std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
                .map(|d| d.count())
                .unwrap_or(0),
            taps_before,
            "no tap left on the bridge"
        );
        0
    };

    // A second NIC on the network, attached live: its own port, its tap
    // on the bridge (passed to QEMU over the monitor).
    c.attach_device(pb::AttachDeviceRequest {
        domain: dom_ref("vm"),
        xml: "<interface type='network'><mac address='52:54:00:aa:cc:02'/>\
              <source network='lan'/><model type='virtio'/></interface>"
            .into(),
        flags: Some(pb::DeviceModifyFlags {
            live: true,
            config: false,
            force: false,
        }),
    })
    .await
    .unwrap_or_else(|e| panic!("attach NIC: {}", e.message()));
    assert_eq!(ports(&netd).await, 2 + extra, "a port for the new NIC");
    let live = c
        .get_xml(pb::GetXmlRequest {
            domain: dom_ref("vm"),
            ..Default::default()
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    let second = live.split("52:54:00:aa:cc:02").nth(1).expect("second NIC");
    let tap2 = second
        .split("<target dev='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("tap")
        .to_owned();
    assert_ne!(tap2, tap);
    let master = std::fs::read_link(format!("/sys/class/net/{tap2}/master")).expect("on a bridge");
    assert_eq!(
        master.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(bridge.clone())
    );

    c.destroy(pb::DestroyRequest {
        domain: dom_ref("vm"),
        ..Default::default()
    })
    .await
    .expect("destroy");
    assert!(
        wait_until_async(Duration::from_secs(5), || async { ports(&netd).await == 0 }).await,
        "the ports are released when the domain stops"
    );
    n.destroy_network(npb::DestroyNetworkRequest {
        network: net_ref("lan"),
    })
    .await
    .expect("destroy network");
}
