//! Driver tests that touch no host state: definitions, bridge names,
//! autostart, config updates, events. Starting networks is tested end to
//! end in `tests/tests/network.rs`.

use common::events::Item;
use common::network::update::{UpdateCommand, UpdateSection};

use super::*;
use crate::network_obj::Lifecycle;

const U1: &str = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
const U2: &str = "c7a5fdbd-edaf-9455-926a-d65c16db1810";

fn net_xml(name: &str, uuid: &str, bridge: Option<&str>) -> String {
    let b = bridge.map_or_else(String::new, |b| format!("<bridge name='{b}'/>"));
    format!(
        "<network><name>{name}</name><uuid>{uuid}</uuid><forward mode='nat'/>{b}\
         <ip address='10.77.0.1' prefix='24'><dhcp><range start='10.77.0.2' end='10.77.0.9'/></dhcp></ip></network>"
    )
}

fn driver() -> (tempfile::TempDir, NetworkDriver) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = Dirs {
        config: tmp.path().join("etc/network"),
        run: tmp.path().join("run/network"),
        dnsmasq: tmp.path().join("lib/dnsmasq"),
    };
    let d = NetworkDriver::with_dirs(dirs, "virt_network_unit");
    (tmp, d)
}

fn name(n: &str) -> ObjRef {
    ObjRef::Name(n.to_owned())
}

#[tokio::test]
async fn define_assigns_bridge_and_mac_and_undefine_removes() {
    let (tmp, d) = driver();
    let mut sub = d.watch(None);
    let info = d
        .define_xml(&net_xml("n1", U1, None), false)
        .await
        .expect("define");
    assert!(info.bridge.starts_with("virbr"), "{}", info.bridge);
    assert!(!info.active && info.persistent && !info.autostart);
    let xml = d.get_xml(&name("n1"), true).expect("xml");
    assert!(xml.contains(&format!(
        "<bridge name='{}' stp='on' delay='0'/>",
        info.bridge
    )));
    assert!(xml.contains("<mac address='52:54:00:"));
    let file = std::fs::read_to_string(tmp.path().join("etc/network/n1.xml")).expect("file");
    assert!(file.contains("virsh net-edit n1"));
    match sub.next().await {
        Some(Item::Event(e)) => assert_eq!(e.payload.event, Lifecycle::Defined),
        other => panic!("{other:?}"),
    }
    // A second network gets another bridge; a clash is refused.
    let b = d
        .define_xml(&net_xml("n2", U2, None), false)
        .await
        .expect("n2");
    assert_ne!(b.bridge, info.bridge);
    d.undefine(&name("n2")).await.expect("undefine n2");
    let e = d
        .define_xml(&net_xml("n2", U2, Some(&info.bridge)), false)
        .await
        .expect_err("clash");
    assert!(e.message.contains("already in use"), "{}", e.message);

    d.set_autostart(&name("n1"), true).await.expect("autostart");
    assert!(d.get_autostart(&name("n1")).expect("get"));
    assert_eq!(
        d.list_all(ListFilter {
            autostart: Some(true),
            ..ListFilter::default()
        })
        .len(),
        1
    );
    d.undefine(&name("n1")).await.expect("undefine");
    assert!(!tmp.path().join("etc/network/n1.xml").exists());
    assert!(d.lookup(&name("n1")).is_err());
    let e = d.start(&name("n1")).await.expect_err("gone");
    assert_eq!(e.code, ErrorCode::NoNetwork);
    assert_eq!(
        e.message,
        "Network not found: no network with matching name 'n1'"
    );
}

#[tokio::test]
async fn reload_and_config_updates() {
    let (tmp, d) = driver();
    d.define_xml(&net_xml("n1", U1, Some("vbr-unit0")), false)
        .await
        .expect("define");
    let up = UpdateRequest {
        command: UpdateCommand::AddLast,
        section: UpdateSection::IpDhcpHost,
        parent_index: -1,
        xml: "<host mac='52:54:00:00:00:07' name='h7' ip='10.77.0.7'/>".into(),
        live: false,
        config: false,
    };
    d.update(&name("n1"), &up).await.expect("update");
    let e = d
        .update(
            &name("n1"),
            &UpdateRequest {
                live: true,
                ..up.clone()
            },
        )
        .await
        .expect_err("not running");
    assert_eq!(e.code, ErrorCode::OperationInvalid);
    assert!(
        d.get_xml(&name("n1"), false)
            .expect("xml")
            .contains("<host mac='52:54:00:00:00:07' name='h7' ip='10.77.0.7'/>")
    );
    d.set_autostart(&name("n1"), true).await.expect("autostart");

    let dirs = Dirs {
        config: tmp.path().join("etc/network"),
        run: tmp.path().join("run/network"),
        dnsmasq: tmp.path().join("lib/dnsmasq"),
    };
    let d2 = NetworkDriver::with_dirs(dirs, "virt_network_unit");
    assert_eq!(d2.load_definitions(), 1);
    assert!(d2.get_autostart(&name("n1")).expect("autostart"));
    assert!(d2.get_xml(&name("n1"), true).expect("xml").contains("h7"));
    assert_eq!(d2.load_definitions(), 0);
    assert!(!d2.any_active());
    assert_eq!(d2.bridge_name(&name("n1")).expect("bridge"), "vbr-unit0");
}

#[tokio::test]
async fn bad_definitions_write_nothing() {
    let (tmp, d) = driver();
    let e = d
        .define_xml("<network><name>x</name>", false)
        .await
        .expect_err("bad xml");
    assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument);
    // Two IPv4 DHCP sections cannot start: refused at define.
    let e = d
        .define_xml(
            "<network><name>x</name><ip address='10.1.0.1' prefix='24'><dhcp><range start='10.1.0.2' end='10.1.0.3'/></dhcp></ip>\
             <ip address='10.2.0.1' prefix='24'><dhcp><range start='10.2.0.2' end='10.2.0.3'/></dhcp></ip></network>",
            false,
        )
        .await
        .expect_err("two dhcp");
    assert_eq!(e.code, ErrorCode::ConfigUnsupported);
    assert!(!tmp.path().join("etc/network/x.xml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_defines_admit_one_uuid_and_one_bridge() {
    let (tmp, d) = driver();
    let d = Arc::new(d);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let uuid = format!("c7a5fdbd-edaf-9455-926a-d65c16db18{i:02}");
            // Different names, one bridge name: only one may have it.
            let a = d
                .define_xml(&net_xml(&format!("b{i}"), &uuid, Some("vbr-race0")), false)
                .await;
            // One name, different UUIDs.
            let uuid2 = format!("d7a5fdbd-edaf-9455-926a-d65c16db18{i:02}");
            let b = d.define_xml(&net_xml("same", &uuid2, None), false).await;
            (a.is_ok(), b.is_ok())
        }));
    }
    let (mut a, mut b) = (0, 0);
    for t in tasks {
        let (x, y) = t.await.expect("task");
        a += usize::from(x);
        b += usize::from(y);
    }
    assert_eq!((a, b), (1, 1));
    let files = std::fs::read_dir(tmp.path().join("etc/network"))
        .expect("dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some()))
        .count();
    assert_eq!(files, 2);
}
