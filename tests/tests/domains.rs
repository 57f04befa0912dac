//! Persistent domain definitions in virtqemud, end to end: define, list,
//! XML, undefine; duplicates and bad XML; what survives a restart or a
//! `kill -9`; definitions that fail post-parse; the read-only socket;
//! events with resume; and virtsh's output for all of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tests::calls::domain_ref as by_name;

use common::error::status_detail;
use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use tests::{Daemon, SocketKind, TestRoot, bin_dir, wait_until_async};
use tonic::Code;
use tonic::transport::Channel;

const U1: &str = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
const U2: &str = "b3f27a4e-5d1c-4c8a-9e2f-0a1b2c3d4e5f";

/// A small valid domain: qemu, q35, 64 MiB, one file-backed disk.
fn domain_xml(name: &str, uuid: &str, disk: &Path) -> String {
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
",
        disk.display()
    )
}

fn disk(root: &TestRoot) -> PathBuf {
    let p = root.path().join("disk.img");
    if !p.exists() {
        std::fs::write(&p, vec![0u8; 4096]).expect("disk image");
    }
    p
}

fn config_dir(root: &TestRoot) -> PathBuf {
    root.paths().driver_config_dir("qemu")
}

fn by_uuid(u: &str) -> Option<pb::DomainRef> {
    Some(pb::DomainRef {
        by: Some(pb::domain_ref::By::Uuid(u.to_owned())),
    })
}

async fn define(
    c: &mut DomainServiceClient<Channel>,
    xml: &str,
) -> Result<pb::Domain, tonic::Status> {
    c.define_xml(pb::DefineXmlRequest {
        xml: xml.to_owned(),
        validate: false,
    })
    .await
    .map(|r| r.into_inner().domain.unwrap_or_default())
}

async fn names(c: &mut DomainServiceClient<Channel>) -> Vec<String> {
    c.list_all_domains(pb::ListAllDomainsRequest { filter: None })
        .await
        .expect("ListAllDomains")
        .into_inner()
        .domains
        .into_iter()
        .map(|s| s.domain.unwrap_or_default().name)
        .collect()
}

async fn xml_of(c: &mut DomainServiceClient<Channel>, name: &str) -> String {
    c.get_xml(pb::GetXmlRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .expect("GetXml")
    .into_inner()
    .xml
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn libvirt_code(s: &tonic::Status) -> i32 {
    status_detail(s).map_or(-1, |d| d.code)
}

#[tokio::test]
async fn define_list_dumpxml_undefine() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    assert!(names(&mut c).await.is_empty());

    let d = define(&mut c, &domain_xml("vm1", U1, &disk(&root)))
        .await
        .expect("define");
    assert_eq!((d.name.as_str(), d.uuid.as_str(), d.id), ("vm1", U1, -1));
    assert_eq!(names(&mut c).await, ["vm1"]);
    assert!(config_dir(&root).join("vm1.xml").is_file());

    // Every way to name it finds it.
    for r in [by_name("vm1"), by_uuid(U1), by_uuid(&U1.to_uppercase())] {
        let found = c
            .lookup_domain(pb::LookupDomainRequest { domain: r })
            .await
            .expect("lookup")
            .into_inner()
            .domain
            .unwrap_or_default();
        assert_eq!(found.uuid, U1);
    }
    let s = c
        .lookup_domain(pb::LookupDomainRequest {
            domain: Some(pb::DomainRef {
                by: Some(pb::domain_ref::By::Id(1)),
            }),
        })
        .await
        .expect_err("inactive domains have no id");
    assert_eq!(s.code(), Code::NotFound);
    assert_eq!(
        s.message(),
        "Domain not found: no domain with matching id 1"
    );

    let st = c
        .get_state(pb::GetStateRequest {
            domain: by_name("vm1"),
        })
        .await
        .expect("state")
        .into_inner();
    assert_eq!(
        (st.state, st.reason),
        (
            pb::DomainState::Shutoff as i32,
            pb::ShutoffReason::Unknown as i32
        )
    );
    let info = c
        .get_info(pb::GetInfoRequest {
            domain: by_name("vm1"),
        })
        .await
        .expect("info")
        .into_inner();
    assert_eq!(
        (
            info.max_mem_kib,
            info.memory_kib,
            info.nr_virt_cpu,
            info.cpu_time_ns
        ),
        (65536, 65536, 1, 0)
    );

    // Round trip: the XML served defines the same domain and reads back
    // identically.
    let xml = xml_of(&mut c, "vm1").await;
    assert!(
        xml.contains("<name>vm1</name>") && xml.contains(U1),
        "{xml}"
    );
    assert!(
        xml.contains("<emulator>"),
        "post-parse filled the emulator: {xml}"
    );
    define(&mut c, &xml).await.expect("redefine from dumpxml");
    assert_eq!(xml_of(&mut c, "vm1").await, xml);
    let inactive = c
        .get_xml(pb::GetXmlRequest {
            domain: by_name("vm1"),
            inactive: true,
            ..Default::default()
        })
        .await
        .expect("inactive xml")
        .into_inner()
        .xml;
    assert_eq!(inactive, xml);

    c.undefine(pb::UndefineRequest {
        domain: by_name("vm1"),
        ..Default::default()
    })
    .await
    .expect("undefine");
    assert!(names(&mut c).await.is_empty());
    assert_eq!(files_in(&config_dir(&root)), Vec::<String>::new());
    let s = c
        .undefine(pb::UndefineRequest {
            domain: by_name("vm1"),
            ..Default::default()
        })
        .await
        .expect_err("gone");
    assert_eq!(s.code(), Code::NotFound);
    assert_eq!(libvirt_code(&s), 42);
    assert_eq!(
        s.message(),
        "Domain not found: no domain with matching name 'vm1'"
    );
}

#[tokio::test]
async fn redefine_updates_and_duplicates_are_refused() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    let img = disk(&root);
    define(&mut c, &domain_xml("vm1", U1, &img))
        .await
        .expect("define");
    let file = config_dir(&root).join("vm1.xml");

    let bigger = domain_xml("vm1", U1, &img).replace(">64<", ">128<");
    define(&mut c, &bigger).await.expect("redefine");
    assert!(
        xml_of(&mut c, "vm1")
            .await
            .contains("<memory unit='KiB'>131072</memory>")
    );
    assert!(
        std::fs::read_to_string(&file)
            .expect("file")
            .contains("131072")
    );
    let before = std::fs::read(&file).expect("file");

    // Same name, other UUID.
    let s = define(&mut c, &domain_xml("vm1", U2, &img))
        .await
        .expect_err("same name");
    assert_eq!(s.code(), Code::AlreadyExists);
    assert_eq!(libvirt_code(&s), 28);
    assert_eq!(
        s.message(),
        format!("operation failed: domain 'vm1' already exists with uuid {U1}")
    );
    // Same UUID, other name.
    let s = define(&mut c, &domain_xml("vm2", U1, &img))
        .await
        .expect_err("same uuid");
    assert_eq!(s.code(), Code::AlreadyExists);
    assert_eq!(
        s.message(),
        format!("operation failed: domain 'vm1' is already defined with uuid {U1}")
    );
    assert_eq!(names(&mut c).await, ["vm1"]);
    assert_eq!(files_in(&config_dir(&root)), ["vm1.xml"]);
    assert_eq!(std::fs::read(&file).expect("file"), before);
}

#[tokio::test]
async fn bad_xml_is_refused_and_nothing_is_written() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    let good = domain_xml("vm1", U1, &disk(&root));
    let cases = [
        "<domain type='qemu'><name>x</name>".to_owned(),
        "not xml at all".to_owned(),
        good.replace("<memory unit='MiB'>64", "<memory unit='MiB'>lots"),
        good.replace("<name>vm1</name>", ""),
        good.replace("<emulator", "<x").replace(
            "<devices>",
            "<devices>\n    <emulator>/nonexistent/qemu-system-x86_64</emulator>",
        ),
    ];
    for xml in &cases {
        let s = define(&mut c, xml).await.expect_err("refused");
        assert_eq!(s.code(), Code::InvalidArgument, "{xml}: {s:?}");
        assert!(!s.message().is_empty());
    }
    // The failing emulator names its path.
    let s = define(&mut c, &cases[4]).await.expect_err("emulator");
    assert!(
        s.message()
            .contains("Cannot check QEMU binary /nonexistent/qemu-system-x86_64"),
        "{}",
        s.message()
    );
    // The bad value names where it is.
    let s = define(&mut c, &cases[2]).await.expect_err("memory");
    assert!(s.message().contains("memory"), "{}", s.message());
    assert!(names(&mut c).await.is_empty());
    assert_eq!(files_in(&config_dir(&root)), Vec::<String>::new());
}

#[tokio::test]
async fn definitions_survive_restart_and_kill9() {
    let root = TestRoot::new();
    let img = disk(&root);
    let mut qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    define(&mut c, &domain_xml("vm1", U1, &img))
        .await
        .expect("vm1");
    define(&mut c, &domain_xml("vm2", U2, &img))
        .await
        .expect("vm2");
    c.set_autostart(pb::SetAutostartRequest {
        domain: by_name("vm2"),
        autostart: true,
    })
    .await
    .expect("autostart");
    let xml1 = xml_of(&mut c, "vm1").await;
    drop(c);
    qemud.stop().await;

    let mut qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    assert_eq!(names(&mut c).await, ["vm1", "vm2"]);
    assert_eq!(xml_of(&mut c, "vm1").await, xml1);
    let auto = |n: &'static str| {
        let mut c = c.clone();
        async move {
            c.get_autostart(pb::GetAutostartRequest { domain: by_name(n) })
                .await
                .expect("autostart")
                .into_inner()
                .autostart
        }
    };
    assert!(auto("vm2").await);
    assert!(!auto("vm1").await);

    // kill -9 right after DefineXml returns: the definition is on disk.
    let u3 = "0d6c1e8f-3a2b-4c5d-8e9f-a0b1c2d3e4f5";
    define(&mut c, &domain_xml("vm3", u3, &img))
        .await
        .expect("vm3");
    c.undefine(pb::UndefineRequest {
        domain: by_name("vm1"),
        ..Default::default()
    })
    .await
    .expect("undefine vm1");
    qemud.kill9();
    drop(c);

    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    assert_eq!(names(&mut c).await, ["vm2", "vm3"]);
    assert_eq!(
        files_in(&config_dir(&root)),
        ["autostart", "vm2.xml", "vm3.xml"]
    );

    // A definition dropped in by hand is picked up on SIGHUP.
    let u4 = "7e1f3a5c-9b2d-4e6f-8a0c-1d3e5f7a9b0c";
    std::fs::write(
        config_dir(&root).join("vm4.xml"),
        domain_xml("vm4", u4, &img),
    )
    .expect("vm4");
    qemud.sighup();
    let found = wait_until_async(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move { names(&mut c).await.contains(&"vm4".to_owned()) }
    })
    .await;
    assert!(found, "vm4 loaded on reload:\n{}", qemud.output());
}

#[tokio::test]
async fn broken_definitions_are_kept_and_never_rewritten() {
    let root = TestRoot::new();
    let dir = config_dir(&root);
    std::fs::create_dir_all(&dir).expect("config dir");
    // Fails post-parse (its emulator does not exist): kept and served.
    let xml = domain_xml("stale", U1, &disk(&root)).replace(
        "<devices>",
        "<devices>\n    <emulator>/nonexistent/qemu-system-x86_64</emulator>",
    );
    let stale = dir.join("stale.xml");
    std::fs::write(&stale, &xml).expect("stale");
    // Does not parse at all: logged and left alone.
    let garbage = dir.join("garbage.xml");
    std::fs::write(&garbage, "<domain type='qemu'><name>garbage").expect("garbage");
    let before = (
        std::fs::read(&stale).expect("read"),
        std::fs::read(&garbage).expect("read"),
    );

    let mut qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    assert_eq!(names(&mut c).await, ["stale"]);
    let served = xml_of(&mut c, "stale").await;
    assert!(
        served.contains("<emulator>/nonexistent/qemu-system-x86_64</emulator>"),
        "{served}"
    );
    let st = c
        .get_state(pb::GetStateRequest {
            domain: by_name("stale"),
        })
        .await
        .expect("state")
        .into_inner();
    assert_eq!(st.state, pb::DomainState::Shutoff as i32);
    assert!(
        qemud.output().contains("garbage"),
        "the unparsable file is logged:\n{}",
        qemud.output()
    );
    drop(c);
    qemud.stop().await;

    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    assert_eq!(names(&mut c).await, ["stale"]);
    let after = (
        std::fs::read(&stale).expect("read"),
        std::fs::read(&garbage).expect("read"),
    );
    assert_eq!(after, before, "neither file was rewritten");
    assert_eq!(files_in(&dir), ["garbage.xml", "stale.xml"]);
}

#[tokio::test]
async fn read_only_socket_reads_but_does_not_change() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let xml = domain_xml("vm1", U1, &disk(&root));
    define(&mut qemud.domain(SocketKind::ReadWrite).await, &xml)
        .await
        .expect("define");
    let mut ro = qemud.domain(SocketKind::ReadOnly).await;
    assert_eq!(names(&mut ro).await, ["vm1"]);
    assert!(xml_of(&mut ro, "vm1").await.contains("<name>vm1</name>"));
    let s = ro
        .get_xml(pb::GetXmlRequest {
            domain: by_name("vm1"),
            secure: true,
            ..Default::default()
        })
        .await
        .expect_err("secure on ro");
    assert_eq!(s.code(), Code::PermissionDenied);
    assert_eq!(libvirt_code(&s), 29);
    assert_eq!(
        s.message(),
        "operation forbidden: virDomainGetXMLDesc with secure flag"
    );
    let s = define(&mut ro, &xml).await.expect_err("define on ro");
    assert_eq!(s.code(), Code::PermissionDenied);
    assert_eq!(libvirt_code(&s), 29);
    let s = ro
        .undefine(pb::UndefineRequest {
            domain: by_name("vm1"),
            ..Default::default()
        })
        .await
        .expect_err("undefine on ro");
    assert_eq!(s.code(), Code::PermissionDenied);
    // The rw socket may ask for secure XML.
    qemud
        .domain(SocketKind::ReadWrite)
        .await
        .get_xml(pb::GetXmlRequest {
            domain: by_name("vm1"),
            secure: true,
            ..Default::default()
        })
        .await
        .expect("secure on rw");
}

async fn next_event(s: &mut tonic::Streaming<pb::DomainEvent>) -> pb::DomainEvent {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

fn lifecycle(ev: &pb::DomainEvent) -> (String, i32, i32) {
    let name = ev.domain.clone().unwrap_or_default().name;
    match &ev.event {
        Some(pb::domain_event::Event::Lifecycle(l)) => (name, l.event, l.detail),
        other => panic!("not a lifecycle event: {other:?}"),
    }
}

#[tokio::test]
async fn events_are_numbered_filtered_and_resumable() {
    use pb::LifecycleEvent as L;
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    let img = disk(&root);
    let mut all = qemud
        .domain(SocketKind::ReadOnly)
        .await
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let mut only_vm2 = c
        .watch_events(pb::WatchEventsRequest {
            domain: by_name("vm2"),
            ..Default::default()
        })
        .await
        .expect("watch vm2 (not defined yet)")
        .into_inner();

    define(&mut c, &domain_xml("vm1", U1, &img))
        .await
        .expect("vm1");
    define(&mut c, &domain_xml("vm1", U1, &img))
        .await
        .expect("vm1 again");
    define(&mut c, &domain_xml("vm2", U2, &img))
        .await
        .expect("vm2");
    c.undefine(pb::UndefineRequest {
        domain: by_name("vm1"),
        ..Default::default()
    })
    .await
    .expect("undefine");

    let expected = [
        (1, "vm1", L::Defined as i32, pb::DefinedDetail::Added as i32),
        (
            2,
            "vm1",
            L::Defined as i32,
            pb::DefinedDetail::Updated as i32,
        ),
        (3, "vm2", L::Defined as i32, pb::DefinedDetail::Added as i32),
        (
            4,
            "vm1",
            L::Undefined as i32,
            pb::UndefinedDetail::Removed as i32,
        ),
    ];
    for (seq, name, event, detail) in expected {
        let ev = next_event(&mut all).await;
        assert_eq!(ev.seq, seq);
        assert!(ev.time.is_some());
        assert_eq!(lifecycle(&ev), (name.to_owned(), event, detail));
    }
    let ev = next_event(&mut only_vm2).await;
    assert_eq!(ev.seq, 3, "filtered streams see gaps, not renumbering");
    assert_eq!(ev.domain.clone().unwrap_or_default().uuid, U2);

    // Resume after 2: the missed events 3 and 4, then live ones.
    let mut resumed = c
        .watch_events(pb::WatchEventsRequest {
            resume_after_seq: Some(2),
            ..Default::default()
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(next_event(&mut resumed).await.seq, 3);
    assert_eq!(next_event(&mut resumed).await.seq, 4);
    define(&mut c, &domain_xml("vm1", U1, &img))
        .await
        .expect("vm1 back");
    let ev = next_event(&mut resumed).await;
    assert_eq!(ev.seq, 5);
    assert_eq!(lifecycle(&ev).2, pb::DefinedDetail::Added as i32);
    // Kind filters: a reboot-only watch resumed from the start sees nothing.
    let mut reboots = c
        .watch_events(pb::WatchEventsRequest {
            resume_after_seq: Some(0),
            kinds: vec![pb::DomainEventKind::Reboot as i32],
            ..Default::default()
        })
        .await
        .expect("reboot watch")
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), reboots.message())
            .await
            .is_err()
    );

    // Open watches do not hold up a stop: their streams end.
    let mut qemud = qemud;
    let started = std::time::Instant::now();
    qemud.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    // What was sent before the stop is still delivered, then the end.
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        let mut seqs = Vec::new();
        while let Ok(Some(ev)) = all.message().await {
            seqs.push(ev.seq);
        }
        seqs
    })
    .await
    .expect("the stream ends");
    assert_eq!(drained, [5]);
}

#[tokio::test]
async fn too_old_resume_reports_events_lost() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    let xml = domain_xml("vm1", U1, &disk(&root));
    // One more event than the daemon buffers, and a few to spare.
    let kept = common::events::DEFAULT_CAPACITY as u64;
    let total = kept + 6;
    for _ in 0..total {
        define(&mut c, &xml).await.expect("define");
    }
    let mut s = c
        .watch_events(pb::WatchEventsRequest {
            resume_after_seq: Some(1),
            ..Default::default()
        })
        .await
        .expect("resume")
        .into_inner();
    let first_available = total - kept + 1;
    let lost = next_event(&mut s).await;
    assert_eq!(lost.seq, first_available - 1);
    assert!(lost.domain.is_none());
    match lost.event {
        Some(pb::domain_event::Event::EventsLost(l)) => {
            assert_eq!(l.first_available_seq, first_available);
        }
        other => panic!("expected EventsLost, got {other:?}"),
    }
    assert_eq!(next_event(&mut s).await.seq, first_available);
    // Resuming from a buffered point loses nothing.
    let mut s = c
        .watch_events(pb::WatchEventsRequest {
            resume_after_seq: Some(total - 1),
            ..Default::default()
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(next_event(&mut s).await.seq, total);
}

// === virtsh ===

fn virtsh(root: &TestRoot, args: &[&str]) -> Output {
    Command::new(bin_dir().join("virtsh"))
        .args(args)
        .env("VIRT_ROOT", root.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .output()
        .expect("run virtsh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs virtsh and returns stdout; panics unless it succeeded.
fn ok(root: &TestRoot, args: &[&str]) -> String {
    let out = virtsh(root, args);
    assert!(
        out.status.success(),
        "virtsh {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "virtsh {args:?}");
    text(&out.stdout)
}

/// Runs virtsh and returns stderr; panics unless it failed with status 1.
fn fails(root: &TestRoot, args: &[&str]) -> String {
    let out = virtsh(root, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "virtsh {args:?}: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[tokio::test]
async fn virtsh_define_list_info_state_undefine() {
    let root = TestRoot::new();
    let _qemud = Daemon::start("virtqemud", &root).await;
    let file = root.path().join("vm1.xml");
    std::fs::write(&file, domain_xml("vm1", U1, &disk(&root))).expect("xml");
    let f = file.to_str().expect("utf-8 path");

    assert_eq!(
        ok(&root, &["define", f]),
        format!("Domain 'vm1' defined from {f}\n\n")
    );
    assert_eq!(ok(&root, &["-q", "define", "--validate", f]), "");
    assert_eq!(
        ok(&root, &["list"]),
        " Id   Name   State\n--------------------\n\n"
    );
    let table = " Id   Name   State\n-----------------------\n -    vm1    shut off\n\n";
    assert_eq!(ok(&root, &["list", "--all"]), table);
    assert_eq!(ok(&root, &["list", "--inactive", "--persistent"]), table);
    assert_eq!(ok(&root, &["list", "--state-shutoff"]), table);
    assert_eq!(
        ok(&root, &["list", "--all", "--transient"]),
        " Id   Name   State\n--------------------\n\n"
    );
    assert_eq!(ok(&root, &["list", "--all", "--name"]), "vm1\n\n");
    assert_eq!(ok(&root, &["list", "--all", "--uuid"]), format!("{U1}\n\n"));
    assert_eq!(ok(&root, &["-q", "list", "--all"]), " -   vm1   shut off\n");
    assert_eq!(
        fails(&root, &["list", "--table", "--name"]),
        "error: Options --table and --name are mutually exclusive\n"
    );

    let info = format!(
        "Id:             -\n\
         Name:           vm1\n\
         UUID:           {U1}\n\
         OS Type:        hvm\n\
         State:          shut off\n\
         CPU(s):         1\n\
         Max memory:     65536 KiB\n\
         Used memory:    65536 KiB\n\
         Persistent:     yes\n\
         Autostart:      disable\n\
         Managed save:   no\n\
         Security model: none\n\
         Security DOI:   0\n\n"
    );
    assert_eq!(ok(&root, &["dominfo", "vm1"]), info);
    assert_eq!(ok(&root, &["dominfo", U1]), info);
    assert_eq!(ok(&root, &["domstate", "vm1"]), "shut off\n\n");
    assert_eq!(
        ok(&root, &["domstate", "vm1", "--reason"]),
        "shut off (unknown)\n\n"
    );
    assert_eq!(ok(&root, &["domid", "vm1"]), "-\n\n");
    assert_eq!(ok(&root, &["domuuid", "vm1"]), format!("{U1}\n\n"));
    assert_eq!(ok(&root, &["domname", U1]), "vm1\n\n");
    let xml = ok(&root, &["dumpxml", "vm1"]);
    assert!(
        xml.starts_with("<domain type='qemu'>\n") && xml.ends_with("</domain>\n\n"),
        "{xml}"
    );
    assert_eq!(ok(&root, &["-r", "dumpxml", "--inactive", "vm1"]), xml);

    assert_eq!(
        ok(&root, &["autostart", "vm1"]),
        "Domain 'vm1' marked as autostarted\n\n"
    );
    assert!(ok(&root, &["dominfo", "vm1"]).contains("Autostart:      enable\n"));
    assert_eq!(
        ok(&root, &["list", "--all", "--autostart", "--name"]),
        "vm1\n\n"
    );
    assert_eq!(
        ok(&root, &["list", "--all", "--no-autostart", "--name"]),
        "\n"
    );
    assert_eq!(
        ok(&root, &["autostart", "--disable", U1]),
        format!("Domain '{U1}' unmarked as autostarted\n\n")
    );

    // Errors, as virsh prints them.
    assert_eq!(
        fails(&root, &["dominfo", "nosuch"]),
        "error: failed to get domain 'nosuch'\n\
         error: Domain not found: no domain with matching name 'nosuch'\n"
    );
    assert_eq!(
        fails(&root, &["-r", "dumpxml", "--security-info", "vm1"]),
        "error: operation forbidden: virDomainGetXMLDesc with secure flag\n"
    );
    let stderr = fails(&root, &["-r", "define", f]);
    assert!(
        stderr.starts_with(&format!("error: Failed to define domain from {f}\nerror: ")),
        "{stderr}"
    );
    let other = root.path().join("dup.xml");
    std::fs::write(&other, domain_xml("vm1", U2, &disk(&root))).expect("xml");
    let o = other.to_str().expect("utf-8 path");
    assert_eq!(
        fails(&root, &["define", o]),
        format!(
            "error: Failed to define domain from {o}\n\
             error: operation failed: domain 'vm1' already exists with uuid {U1}\n"
        )
    );
    assert_eq!(
        fails(&root, &["define", "/nonexistent/vm.xml"]),
        "error: Failed to open file '/nonexistent/vm.xml': No such file or directory\n"
    );

    assert_eq!(
        ok(&root, &["undefine", "vm1"]),
        "Domain 'vm1' has been undefined\n\n"
    );
    assert_eq!(
        fails(&root, &["undefine", "vm1"]),
        "error: failed to get domain 'vm1'\n\
         error: Domain not found: no domain with matching name 'vm1'\n"
    );
    assert_eq!(
        ok(&root, &["list", "--all"]),
        " Id   Name   State\n--------------------\n\n"
    );
}

#[tokio::test]
async fn virtsh_event_prints_libvirt_lines() {
    let root = TestRoot::new();
    let qemud = Daemon::start("virtqemud", &root).await;
    assert_eq!(
        ok(&root, &["event", "--list"])
            .lines()
            .take(2)
            .collect::<Vec<_>>(),
        ["lifecycle", "reboot"]
    );
    assert_eq!(
        fails(&root, &["event"]),
        "error: one of --list, --all, or --event <type> is required\n"
    );
    assert_eq!(
        fails(&root, &["event", "--event", "nosuch"]),
        "error: unknown event type nosuch\n"
    );

    let child = Command::new(bin_dir().join("virtsh"))
        .args(["event", "--all", "--timeout", "30"])
        .env("VIRT_ROOT", root.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn virtsh event");
    let pid = i32::try_from(child.id()).expect("pid");
    // Wait until virtsh is connected (and so about to watch).
    let connected = wait_until_async(Duration::from_secs(10), || async {
        qemud.clients().await.iter().any(|c| c.pid == Some(pid))
    })
    .await;
    assert!(connected, "virtsh event never connected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    define(&mut c, &domain_xml("vm1", U1, &disk(&root)))
        .await
        .expect("define");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("virtsh event output");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "event 'lifecycle' for domain 'vm1': Defined Added\nevents received: 1\n\n"
    );

    let out = virtsh(&root, &["event", "--all", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "event loop timed out\nevents received: 0\n\n"
    );
    assert_eq!(text(&out.stderr), "");
}
