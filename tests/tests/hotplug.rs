//! Devices on running and defined domains through virtqemud, on real QEMU
//! (TCG) with the test kit's tiny guest: attach and detach of devices that
//! unplug without guest help (USB, virtio-serial ports) through the whole
//! path, a PCI disk whose unplug the tiny guest never completes (pending,
//! also across a daemon kill -9), config-only changes on a shut-off
//! domain, a failed attach that leaves everything as it was, and CD-ROM
//! media changes.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tests::calls::domain_ref as by_name;

use common::error::status_detail;
use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use tests::guest::{GuestKind, UP_LINE, build_image};
use tests::{Daemon, SocketKind, TestRoot, wait_until};
use tonic::transport::Channel;

type Client = DomainServiceClient<Channel>;

struct Env {
    root: TestRoot,
    daemon: Daemon,
}

impl Drop for Env {
    fn drop(&mut self) {
        tests::kill_qemus_under(self.root.path());
    }
}

fn flags(live: bool, config: bool) -> Option<pb::DeviceModifyFlags> {
    Some(pb::DeviceModifyFlags {
        live,
        config,
        force: false,
    })
}

impl Env {
    async fn new() -> Env {
        let root = TestRoot::new();
        let daemon = Daemon::builder("virtqemud", &root)
            .env("RUST_LOG", "info,virtqemud=debug")
            .start()
            .await;
        Env { root, daemon }
    }

    async fn client(&self) -> Client {
        self.daemon.domain(SocketKind::ReadWrite).await
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The tiny guest with a USB and a virtio-serial controller; PCIe root
    /// ports up to index 6 (post-parse fills in 1 to 5), so that PCI
    /// devices can be plugged live.
    fn xml(&self, name: &str) -> String {
        let image = self.file(&format!("{name}.img"));
        build_image(&image, GuestKind::IgnoresPowerButton).expect("guest image");
        format!(
            "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci'/>
    <controller type='virtio-serial' index='0'/>
    <controller type='pci' index='6' model='pcie-root-port'/>
    <serial type='file'>
      <source path='{}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
",
            image.display(),
            self.file(&format!("{name}.serial")).display()
        )
    }

    async fn define(&self, c: &mut Client, name: &str) {
        define_xml(c, name, &self.xml(name)).await;
    }

    async fn boot(&self, c: &mut Client, name: &str) {
        self.define(c, name).await;
        start(c, name).await;
        let serial = self.file(&format!("{name}.serial"));
        assert!(
            wait_until(Duration::from_secs(5), || std::fs::read_to_string(&serial)
                .unwrap_or_default()
                .contains(UP_LINE))
            .await,
            "{name} did not boot"
        );
    }

    fn raw_image(&self, name: &str) -> PathBuf {
        let p = self.file(name);
        std::fs::write(&p, vec![0u8; 1 << 20]).expect("image");
        p
    }

    fn status_file(&self, name: &str) -> PathBuf {
        self.root
            .paths()
            .driver_run_dir("qemu")
            .join(format!("{name}.xml"))
    }
}

async fn xml(c: &mut Client, name: &str, inactive: bool) -> String {
    c.get_xml(pb::GetXmlRequest {
        domain: by_name(name),
        inactive,
        ..Default::default()
    })
    .await
    .expect("get xml")
    .into_inner()
    .xml
}

async fn attach(
    c: &mut Client,
    name: &str,
    dev: &str,
    live: bool,
    config: bool,
) -> Result<(), tonic::Status> {
    c.attach_device(pb::AttachDeviceRequest {
        domain: by_name(name),
        xml: dev.to_owned(),
        flags: flags(live, config),
    })
    .await
    .map(|_| ())
}

async fn detach(
    c: &mut Client,
    name: &str,
    dev: &str,
    live: bool,
    config: bool,
) -> Result<(), tonic::Status> {
    c.detach_device(pb::DetachDeviceRequest {
        domain: by_name(name),
        xml: dev.to_owned(),
        flags: flags(live, config),
    })
    .await
    .map(|_| ())
}

async fn define_xml(c: &mut Client, name: &str, xml: &str) {
    c.define_xml(pb::DefineXmlRequest {
        xml: xml.to_owned(),
        validate: true,
    })
    .await
    .unwrap_or_else(|e| panic!("define {name}: {}", e.message()));
}

async fn start(c: &mut Client, name: &str) {
    c.start(pb::StartRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start {name}: {}", e.message()));
}

/// The next device event of `stream`: `("added" | "removed" |
/// "removal failed", alias)`.
async fn device_event(s: &mut tonic::Streaming<pb::DomainEvent>) -> (&'static str, String) {
    use pb::domain_event::Event;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("an event in time")
            .expect("stream")
            .expect("event");
        match ev.event {
            Some(Event::DeviceAdded(e)) => return ("added", e.alias),
            Some(Event::DeviceRemoved(e)) => return ("removed", e.alias),
            Some(Event::DeviceRemovalFailed(e)) => return ("removal failed", e.alias),
            _ => {}
        }
    }
}

#[tokio::test]
async fn config_only_changes_on_a_shut_off_domain() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.define(&mut c, "cfg").await;
    let img = env.raw_image("extra.img");
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        img.display()
    );
    // current = config on an inactive domain.
    attach(&mut c, "cfg", &disk, false, false)
        .await
        .expect("attach");
    let x = xml(&mut c, "cfg", true).await;
    assert!(x.contains("<target dev='vdb' bus='virtio'/>"), "{x}");
    assert!(
        x.contains("type='pci'"),
        "the new disk got a PCI address: {x}"
    );
    // Persisted: the stored definition has it.
    let stored =
        std::fs::read_to_string(env.root.paths().config_dir.join("qemu/cfg.xml")).expect("stored");
    assert!(stored.contains("dev='vdb'"), "{stored}");
    // The same target twice, live on an inactive domain: refused, nothing changes.
    let e = attach(&mut c, "cfg", &disk, false, true)
        .await
        .expect_err("dup");
    assert!(e.message().contains("target vdb already exists"), "{e:?}");
    let e = attach(&mut c, "cfg", &disk, true, false)
        .await
        .expect_err("live");
    assert!(e.message().contains("not running"), "{e:?}");
    let e = attach(&mut c, "cfg", "<domain/>", false, true)
        .await
        .expect_err("not a device");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // Update the CD-ROM's medium in the config.
    let iso = env.raw_image("a.iso");
    let cd = format!(
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='sdb' bus='sata'/><readonly/></disk>",
        iso.display()
    );
    c.update_device(pb::UpdateDeviceRequest {
        domain: by_name("cfg"),
        xml: cd,
        flags: flags(false, true),
    })
    .await
    .expect("update cdrom");
    assert!(
        xml(&mut c, "cfg", true)
            .await
            .contains(&iso.display().to_string())
    );
    // Detach by target; again: no such device.
    detach(
        &mut c,
        "cfg",
        "<disk type='file' device='disk'><target dev='vdb'/></disk>",
        false,
        true,
    )
    .await
    .expect("detach");
    assert!(!xml(&mut c, "cfg", true).await.contains("dev='vdb'"));
    let e = detach(
        &mut c,
        "cfg",
        "<disk type='file' device='disk'><target dev='vdb'/></disk>",
        false,
        true,
    )
    .await
    .expect_err("gone");
    let d = status_detail(&e).expect("detail");
    assert_eq!(d.code_name, "DEVICE_MISSING", "{e:?}");
    // A controller still in use cannot go.
    let e = detach(
        &mut c,
        "cfg",
        "<controller type='sata' index='0'/>",
        false,
        true,
    )
    .await
    .expect_err("in use");
    assert!(e.message().contains("still in use"), "{e:?}");
}

#[tokio::test]
async fn usb_and_virtio_serial_devices_plug_and_unplug_live() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let mut events = c
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    env.boot(&mut c, "live").await;

    // A USB tablet: QEMU removes USB devices without the guest.
    attach(
        &mut c,
        "live",
        "<input type='tablet' bus='usb'/>",
        true,
        false,
    )
    .await
    .expect("attach tablet");
    let (kind, alias) = device_event(&mut events).await;
    assert_eq!(kind, "added");
    assert!(alias.starts_with("input"), "{alias}");
    let x = xml(&mut c, "live", false).await;
    assert!(x.contains(&format!("<alias name='{alias}'/>")), "{x}");
    // The persistent definition is untouched by a live-only change.
    assert!(!xml(&mut c, "live", true).await.contains("tablet"));
    detach(
        &mut c,
        "live",
        "<input type='tablet' bus='usb'/>",
        true,
        false,
    )
    .await
    .expect("detach tablet");
    assert_eq!(device_event(&mut events).await, ("removed", alias.clone()));
    assert!(!xml(&mut c, "live", false).await.contains("tablet"));

    // A virtio-serial port with a pty chardev, then detached by alias.
    attach(
        &mut c,
        "live",
        "<channel type='pty'><target type='virtio' name='org.test.port0'/></channel>",
        true,
        false,
    )
    .await
    .expect("attach channel");
    let (kind, alias) = device_event(&mut events).await;
    assert_eq!(kind, "added");
    assert!(alias.starts_with("channel"), "{alias}");
    c.detach_device_alias(pb::DetachDeviceAliasRequest {
        domain: by_name("live"),
        alias: alias.clone(),
        flags: flags(true, false),
    })
    .await
    .expect("detach by alias");
    assert_eq!(device_event(&mut events).await, ("removed", alias.clone()));
    assert!(!xml(&mut c, "live", false).await.contains("org.test.port0"));
    // Plugged again: the chardev id was released with the port.
    attach(
        &mut c,
        "live",
        "<channel type='pty'><target type='virtio' name='org.test.port0'/></channel>",
        true,
        false,
    )
    .await
    .expect("attach channel again");
}

#[tokio::test]
async fn failed_attach_leaves_qemu_and_definition_as_they_were() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "fail").await;
    let before = xml(&mut c, "fail", false).await;
    let missing = env.file("nope.img");
    let disk = |p: &Path| {
        format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
            p.display()
        )
    };
    let e = attach(&mut c, "fail", &disk(&missing), true, true)
        .await
        .expect_err("missing file");
    assert!(e.message().contains("nope.img"), "{e:?}");
    assert_eq!(xml(&mut c, "fail", false).await, before);
    assert!(!xml(&mut c, "fail", true).await.contains("vdb"));
    // The same device with a real file now works: nothing was left behind
    // in QEMU (node names, ids) by the failed try.
    let img = env.raw_image("real.img");
    attach(&mut c, "fail", &disk(&img), true, true)
        .await
        .expect("attach after failure");
    assert!(xml(&mut c, "fail", false).await.contains("dev='vdb'"));
    assert!(xml(&mut c, "fail", true).await.contains("dev='vdb'"));
}

/// The tiny guest never answers a PCI unplug: the detach reports the
/// request and stays pending, in the status file too, also across a
/// daemon kill -9; then a QMP peer plays the guest: a refusal
/// (DeviceRemovalFailed), and after a second request the late release
/// that completes the removal.
#[tokio::test]
async fn pci_unplug_stays_pending_across_a_daemon_restart() {
    let mut env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "pend").await;
    let img = env.raw_image("p.img");
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        img.display()
    );
    attach(&mut c, "pend", &disk, true, false)
        .await
        .expect("attach");
    let t = std::time::Instant::now();
    detach(
        &mut c,
        "pend",
        "<disk type='file' device='disk'><target dev='vdb'/></disk>",
        true,
        false,
    )
    .await
    .expect("detach request");
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    // Still there, pending.
    assert!(xml(&mut c, "pend", false).await.contains("dev='vdb'"));
    let status = std::fs::read_to_string(env.status_file("pend")).expect("status");
    assert!(
        status.contains("<pendingremoval alias='virtio-disk1'/>"),
        "{status}"
    );
    // A second detach of the same device is refused while pending.
    let e = detach(
        &mut c,
        "pend",
        "<disk type='file' device='disk'><target dev='vdb'/></disk>",
        true,
        false,
    )
    .await
    .expect_err("already pending");
    assert!(e.message().contains("already in progress"), "{e:?}");

    env.daemon.kill9();
    // From now on the daemon reaches QEMU through a QMP peer of ours that
    // passes everything on and can send an event of its own: the late
    // DEVICE_DELETED a real guest would cause.
    let monitor = monitor_path(&std::fs::read_to_string(env.status_file("pend")).expect("status"));
    let peer = QmpPeer::interpose(&monitor);
    env.daemon = Daemon::builder("virtqemud", &env.root).start().await;
    let mut c = env.client().await;
    let mut events = c
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    // QEMU still has the device: still pending, still in the live XML.
    assert!(xml(&mut c, "pend", false).await.contains("dev='vdb'"));
    let status = std::fs::read_to_string(env.status_file("pend")).expect("status");
    assert!(
        status.contains("<pendingremoval alias='virtio-disk1'/>"),
        "{status}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || peer.connected()).await,
        "the daemon reconnected through the peer"
    );
    // The guest refuses first: removal failed, nothing pending any more.
    peer.send_event(
        r#"{"event": "DEVICE_UNPLUG_GUEST_ERROR", "data": {"device": "virtio-disk1", "path": "/machine/peripheral/virtio-disk1"}, "timestamp": {"seconds": 1, "microseconds": 0}}"#,
    );
    assert_eq!(
        device_event(&mut events).await,
        ("removal failed", "virtio-disk1".to_owned())
    );
    let status = std::fs::read_to_string(env.status_file("pend")).expect("status");
    assert!(!status.contains("pendingremoval"), "{status}");
    // Asked again, it is pending again; then the guest lets go (late,
    // after the restart): the removal completes.
    detach(
        &mut c,
        "pend",
        "<disk type='file' device='disk'><target dev='vdb'/></disk>",
        true,
        false,
    )
    .await
    .expect("detach request again");
    peer.send_event(
        r#"{"event": "DEVICE_DELETED", "data": {"device": "virtio-disk1", "path": "/machine/peripheral/virtio-disk1"}, "timestamp": {"seconds": 1, "microseconds": 0}}"#,
    );
    assert_eq!(
        device_event(&mut events).await,
        ("removed", "virtio-disk1".to_owned())
    );
    assert!(!xml(&mut c, "pend", false).await.contains("dev='vdb'"));
    let status = std::fs::read_to_string(env.status_file("pend")).expect("status");
    assert!(!status.contains("pendingremoval"), "{status}");
}

/// The `<monitor path=>` of a status file.
fn monitor_path(status: &str) -> PathBuf {
    let start = status.find("<monitor path='").expect("monitor") + "<monitor path='".len();
    let end = status[start..].find('\'').expect("quote") + start;
    PathBuf::from(&status[start..end])
}

/// A QMP peer between the daemon and QEMU: QEMU's monitor socket moves
/// aside, the peer listens at its path and relays every byte both ways;
/// `send_event` adds a line of its own towards the daemon.
struct QmpPeer {
    to_daemon: std::sync::Arc<std::sync::Mutex<Option<std::os::unix::net::UnixStream>>>,
}

impl QmpPeer {
    fn interpose(path: &Path) -> QmpPeer {
        use std::io::{Read, Write};
        use std::os::unix::net::{UnixListener, UnixStream};
        let real = path.with_extension("real");
        std::fs::rename(path, &real).expect("move QEMU's monitor socket");
        let listener = UnixListener::bind(path).expect("bind the peer");
        let to_daemon = std::sync::Arc::new(std::sync::Mutex::new(None));
        let slot = to_daemon.clone();
        std::thread::spawn(move || {
            for daemon in listener.incoming() {
                let Ok(daemon) = daemon else { return };
                let Ok(qemu) = UnixStream::connect(&real) else {
                    return;
                };
                let (mut d_read, mut q_write) = (
                    daemon.try_clone().expect("clone"),
                    qemu.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = d_read.read(&mut buf) {
                        if n == 0 || q_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                let mut q_read = qemu;
                let d_write = daemon;
                *slot.lock().expect("lock") = Some(d_write.try_clone().expect("clone"));
                let slot2 = slot.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    let mut partial: Vec<u8> = Vec::new();
                    while let Ok(n) = q_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        partial.extend_from_slice(&buf[..n]);
                        // Whole lines only, so an injected line never lands
                        // inside one of QEMU's.
                        let Some(last) = partial.iter().rposition(|b| *b == b'\n') else {
                            continue;
                        };
                        let lines: Vec<u8> = partial.drain(..=last).collect();
                        let mut g = slot2.lock().expect("lock");
                        let Some(w) = g.as_mut() else { break };
                        if w.write_all(&lines).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        QmpPeer { to_daemon }
    }

    fn connected(&self) -> bool {
        self.to_daemon.lock().expect("lock").is_some()
    }

    fn send_event(&self, line: &str) {
        use std::io::Write;
        let mut g = self.to_daemon.lock().expect("lock");
        let w = g.as_mut().expect("daemon connected");
        w.write_all(line.as_bytes()).expect("send");
        w.write_all(b"\n").expect("send");
    }
}

#[tokio::test]
async fn cdrom_media_change_live() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "cd").await;
    let iso = env.raw_image("b.iso");
    let cd = |src: &str| {
        format!(
            "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>{src}\
             <target dev='sdb' bus='sata'/><readonly/></disk>"
        )
    };
    c.update_device(pb::UpdateDeviceRequest {
        domain: by_name("cd"),
        xml: cd(&format!("<source file='{}'/>", iso.display())),
        flags: flags(true, false),
    })
    .await
    .expect("insert");
    assert!(
        xml(&mut c, "cd", false)
            .await
            .contains(&iso.display().to_string())
    );
    c.update_device(pb::UpdateDeviceRequest {
        domain: by_name("cd"),
        xml: cd(""),
        flags: Some(pb::DeviceModifyFlags {
            live: true,
            config: false,
            force: true,
        }),
    })
    .await
    .expect("eject");
    assert!(!xml(&mut c, "cd", false).await.contains("b.iso"));
    // A live change to a hard disk's source is refused.
    let e = c
        .update_device(pb::UpdateDeviceRequest {
            domain: by_name("cd"),
            xml: "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
                  <source file='/x.img'/><target dev='sda' bus='sata'/></disk>"
                .into(),
            flags: flags(true, false),
        })
        .await
        .expect_err("disk source");
    assert!(e.message().contains("CD-ROM"), "{e:?}");
}

/// A NIC attached live: its tap is created on the host and passed to
/// QEMU over the monitor (getfd); a user-mode NIC needs no tap.
#[tokio::test]
async fn nic_attach_live_with_a_tap() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "nic").await;
    let tap = format!("hp{}", std::process::id() % 100_000);
    attach(
        &mut c,
        "nic",
        &format!(
            "<interface type='ethernet'><mac address='52:54:00:12:34:56'/>\
             <target dev='{tap}' managed='yes'/><model type='virtio'/></interface>"
        ),
        true,
        false,
    )
    .await
    .expect("attach ethernet NIC");
    assert!(
        std::path::Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "tap {tap} on the host"
    );
    let x = xml(&mut c, "nic", false).await;
    assert!(
        x.contains("52:54:00:12:34:56") && x.contains("<alias name='net0'/>"),
        "{x}"
    );
    attach(
        &mut c,
        "nic",
        "<interface type='user'><model type='virtio'/></interface>",
        true,
        false,
    )
    .await
    .expect("attach user NIC");
    assert!(
        xml(&mut c, "nic", false)
            .await
            .contains("<alias name='net1'/>")
    );
    // Destroying the domain takes the tap with it.
    c.destroy(pb::DestroyRequest {
        domain: by_name("nic"),
        ..Default::default()
    })
    .await
    .expect("destroy");
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/sys/class/net/{tap}"
        ))
        .exists())
        .await,
        "tap {tap} gone"
    );
}

/// A `type='volume'` disk attached live: virtqemud asks virtstoraged for
/// the volume's path, as at start.
#[tokio::test]
async fn volume_disk_attaches_live() {
    let env = Env::new().await;
    let storaged = Daemon::start("virtstoraged", &env.root).await;
    let dir = env.file("pool");
    std::fs::create_dir_all(&dir).expect("pool dir");
    std::fs::write(dir.join("data.img"), vec![0u8; 1 << 20]).expect("volume");
    let mut s = storaged.storage(SocketKind::ReadWrite).await;
    tests::calls::define_started_pool(&mut s, "hp", &dir).await;
    let mut c = env.client().await;
    env.boot(&mut c, "vol").await;
    attach(
        &mut c,
        "vol",
        "<disk type='volume' device='disk'><driver name='qemu' type='raw'/>\
         <source pool='hp' volume='data.img'/><target dev='vdc' bus='virtio'/></disk>",
        true,
        true,
    )
    .await
    .expect("attach volume disk");
    let live = xml(&mut c, "vol", false).await;
    assert!(
        live.contains("<source pool='hp' volume='data.img' index='3'/>"),
        "{live}"
    );
    assert!(xml(&mut c, "vol", true).await.contains("volume='data.img'"));
}

/// virtsh's device commands on a running domain, end to end.
#[tokio::test]
async fn virtsh_device_commands_on_a_running_domain() {
    use tests::virtsh::{fails, ok};
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "sh").await;
    let tablet = env.file("tablet.xml");
    std::fs::write(&tablet, "<input type='tablet' bus='usb'/>").expect("xml");
    let t = tablet.to_str().expect("utf-8");
    assert_eq!(
        ok(&env.root, &["attach-device", "sh", t, "--live"]),
        "Device attached successfully\n\n"
    );
    assert_eq!(
        ok(&env.root, &["detach-device", "sh", t, "--live"]),
        "Device detached successfully\n\n"
    );
    let img = env.raw_image("sh-extra.img");
    assert_eq!(
        ok(
            &env.root,
            &[
                "attach-disk",
                "sh",
                img.to_str().expect("utf-8"),
                "vdb",
                "--targetbus",
                "virtio",
                "--live"
            ]
        ),
        "Disk attached successfully\n\n"
    );
    let list = ok(&env.root, &["domblklist", "sh"]);
    assert!(
        list.contains("vdb") && list.contains("sh-extra.img"),
        "{list}"
    );
    let iso = env.raw_image("sh.iso");
    let out = ok(
        &env.root,
        &[
            "change-media",
            "sh",
            "sdb",
            iso.to_str().expect("utf-8"),
            "--insert",
            "--live",
        ],
    );
    assert!(out.contains("Successfully inserted media."), "{out}");
    let err = fails(
        &env.root,
        &["detach-device-alias", "sh", "no-such-alias", "--live"],
    );
    assert!(err.contains("no-such-alias"), "{err}");
}

/// More device kinds live: an rng, a watchdog, a SCSI controller plugged
/// and listed; a host device and a SATA disk (plug and unplug) refused
/// with clear errors.
#[tokio::test]
async fn more_device_kinds_live() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "kinds").await;
    for (dev, alias) in [
        (
            "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
            "rng0",
        ),
        ("<watchdog model='i6300esb' action='reset'/>", "watchdog0"),
        (
            "<controller type='scsi' index='0' model='virtio-scsi'/>",
            "scsi0",
        ),
    ] {
        attach(&mut c, "kinds", dev, true, false)
            .await
            .unwrap_or_else(|e| panic!("attach {dev}: {}", e.message()));
        let x = xml(&mut c, "kinds", false).await;
        assert!(
            x.contains(&format!("<alias name='{alias}'/>")),
            "{dev}: {x}"
        );
    }
    let e = attach(
        &mut c,
        "kinds",
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
         <address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/></source></hostdev>",
        true,
        false,
    )
    .await
    .expect_err("hostdev");
    assert!(e.message().contains("host devices"), "{e:?}");
    // What QEMU cannot plug or unplug is refused up front.
    let e = detach(
        &mut c,
        "kinds",
        "<disk type='file' device='disk'><target dev='sda'/></disk>",
        true,
        false,
    )
    .await
    .expect_err("boot disk on SATA");
    assert!(e.message().contains("cannot be hotunplugged"), "{e:?}");
    let img = env.raw_image("k.img");
    let e = attach(
        &mut c,
        "kinds",
        &format!(
            "<disk type='file' device='disk'><source file='{}'/><target dev='sdc' bus='sata'/></disk>",
            img.display()
        ),
        true,
        false,
    )
    .await
    .expect_err("SATA disk");
    assert!(e.message().contains("cannot be hotplugged"), "{e:?}");
    let e = detach(
        &mut c,
        "kinds",
        "<console type='file'><target type='serial' port='0'/></console>",
        true,
        false,
    )
    .await
    .expect_err("serial console");
    assert!(e.message().contains("serial port itself"), "{e:?}");
    assert!(xml(&mut c, "kinds", false).await.contains("dev='sda'"));
}

/// A running domain keeps its last console.
#[tokio::test]
async fn last_console_stays() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let image = env.file("con.img");
    build_image(&image, GuestKind::IgnoresPowerButton).expect("guest image");
    let def = format!(
        "<domain type='qemu'><name>con</name><memory unit='MiB'>32</memory>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sda' bus='sata'/></disk>\
             <controller type='virtio-serial' index='0'/>\
             <console type='pty'><target type='virtio' port='0'/></console>\
             <memballoon model='none'/></devices></domain>",
        image.display()
    );
    define_xml(&mut c, "con", &def).await;
    start(&mut c, "con").await;
    let e = detach(
        &mut c,
        "con",
        "<console type='pty'><target type='virtio' port='0'/></console>",
        true,
        false,
    )
    .await
    .expect_err("last console");
    assert!(e.message().contains("last console"), "{e:?}");
    assert!(
        xml(&mut c, "con", false)
            .await
            .contains("<console type='pty'")
    );
}

/// A floppy's medium changes live like a CD-ROM's.
#[tokio::test]
async fn floppy_media_change_live() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let image = env.file("fd.img");
    build_image(&image, GuestKind::IgnoresPowerButton).expect("guest image");
    let def = format!(
        "<domain type='qemu'><name>fd</name><memory unit='MiB'>32</memory>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sda' bus='sata'/></disk>\
             <disk type='file' device='floppy'><driver name='qemu' type='raw'/>\
             <target dev='fda' bus='fdc'/></disk>\
             <memballoon model='none'/></devices></domain>",
        image.display()
    );
    define_xml(&mut c, "fd", &def).await;
    start(&mut c, "fd").await;
    let media = env.raw_image("a.flp");
    let fd = |src: &str| {
        format!(
            "<disk type='file' device='floppy'><driver name='qemu' type='raw'/>{src}\
             <target dev='fda' bus='fdc'/></disk>"
        )
    };
    c.update_device(pb::UpdateDeviceRequest {
        domain: by_name("fd"),
        xml: fd(&format!("<source file='{}'/>", media.display())),
        flags: flags(true, false),
    })
    .await
    .unwrap_or_else(|e| panic!("insert: {}", e.message()));
    assert!(xml(&mut c, "fd", false).await.contains("a.flp"));
    c.update_device(pb::UpdateDeviceRequest {
        domain: by_name("fd"),
        xml: fd(""),
        flags: Some(pb::DeviceModifyFlags {
            live: true,
            config: false,
            force: true,
        }),
    })
    .await
    .unwrap_or_else(|e| panic!("eject: {}", e.message()));
    assert!(!xml(&mut c, "fd", false).await.contains("a.flp"));
}
