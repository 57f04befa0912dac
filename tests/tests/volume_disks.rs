//! Domains whose disk is a storage volume (`<disk type='volume'>`):
//! virtqemud resolves it through virtstoraged at start, starts virtstoraged
//! itself when it is not running (or reaches it through socket
//! activation), and keeps the domain running across its own restart while
//! virtstoraged is down.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use proto::domain::v1 as pb;
use proto::storage::v1 as sto;
use tests::calls::{define_started_pool, domain_ref as by_name, pool_ref};
use tests::guest::{GuestKind, UP_LINE, build_image};
use tests::{Daemon, SOCKET_KINDS, SocketKind, TestRoot, daemon_bin, wait_until};

const RUNNING: i32 = pb::DomainState::Running as i32;
const SHUTOFF: i32 = pb::DomainState::Shutoff as i32;

/// Kills what a test leaves: QEMUs and daemons started from its root.
struct Cleanup<'a>(&'a TestRoot);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        tests::kill_qemus_under(self.0.path());
        // A virtstoraged that virtqemud started: its pid file.
        if let Ok(p) = std::fs::read_to_string(self.0.pid_file("virtstoraged"))
            && let Ok(pid) = p.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A dir pool `guests` (autostart) holding the tiny guest as `vm.img`.
async fn pool_with_guest(storage: &Daemon, root: &TestRoot) {
    let dir = root.path().join("pool");
    std::fs::create_dir_all(&dir).expect("pool dir");
    build_image(&dir.join("vm.img"), GuestKind::IgnoresPowerButton).expect("image");
    let mut c = storage.storage(SocketKind::ReadWrite).await;
    define_started_pool(&mut c, "guests", &dir).await;
    c.set_pool_autostart(sto::SetPoolAutostartRequest {
        pool: pool_ref("guests"),
        autostart: true,
    })
    .await
    .expect("autostart");
}

fn domain_xml(root: &TestRoot) -> String {
    format!(
        "<domain type='qemu'>
  <name>vm</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='guests' volume='vm.img'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <serial type='file'><source path='{}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
",
        root.path().join("vm.serial").display()
    )
}

fn boots(root: &TestRoot) -> usize {
    std::fs::read_to_string(root.path().join("vm.serial"))
        .unwrap_or_default()
        .matches(UP_LINE)
        .count()
}

async fn define_and_start(qemud: &Daemon, root: &TestRoot) -> Result<(), tonic::Status> {
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    c.define_xml(pb::DefineXmlRequest {
        xml: domain_xml(root),
        validate: true,
    })
    .await?;
    c.start(pb::StartRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await?;
    Ok(())
}

async fn state(qemud: &Daemon) -> (i32, i32) {
    let r = qemud
        .domain(SocketKind::ReadWrite)
        .await
        .get_state(pb::GetStateRequest {
            domain: by_name("vm"),
        })
        .await
        .expect("state")
        .into_inner();
    (r.state, r.reason)
}

#[tokio::test]
async fn a_volume_disk_boots_and_the_domain_outlives_a_storage_outage() {
    let root = TestRoot::new();
    let _cleanup = Cleanup(&root);
    let mut storage = Daemon::start("virtstoraged", &root).await;
    let mut qemud = Daemon::start("virtqemud", &root).await;
    pool_with_guest(&storage, &root).await;
    define_and_start(&qemud, &root)
        .await
        .unwrap_or_else(|e| panic!("start: {}", e.message()));
    assert!(
        wait_until(Duration::from_secs(5), || boots(&root) >= 1).await,
        "the guest boots from the volume"
    );
    // The live XML keeps the pool and volume.
    let live = qemud
        .domain(SocketKind::ReadWrite)
        .await
        .get_xml(pb::GetXmlRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    assert!(
        // The live source carries its node number, as libvirt's does.
        live.contains("<source pool='guests' volume='vm.img' index='1'/>"),
        "{live}"
    );

    // Both daemons die; virtqemud comes back first, storage still down.
    qemud.kill9();
    storage.kill9();
    let qemud = Daemon::start("virtqemud", &root).await;
    assert_eq!(state(&qemud).await, (RUNNING, 1), "still running");
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    c.suspend(pb::SuspendRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("controllable while storage is down");
    c.resume(pb::ResumeRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("resume");
    // Storage comes back; the volumes of the running domain resolve.
    let _storage = Daemon::start("virtstoraged", &root).await;
    assert!(
        wait_until(Duration::from_secs(10), || qemud
            .output()
            .contains("volumes resolved after reconnect"))
        .await,
        "virtqemud resolved the volumes; it said:\n{}",
        qemud.output()
    );
    assert_eq!(state(&qemud).await.0, RUNNING);
    c.destroy(pb::DestroyRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await
    .expect("destroy");
}

#[tokio::test]
async fn a_volume_whose_file_went_missing_is_refused_before_qemu_runs() {
    let root = TestRoot::new();
    let _cleanup = Cleanup(&root);
    let storage = Daemon::start("virtstoraged", &root).await;
    let qemud = Daemon::start("virtqemud", &root).await;
    pool_with_guest(&storage, &root).await;
    // The pool still lists the volume (no refresh), but its file is gone.
    let image = root.path().join("pool/vm.img");
    let aside = root.path().join("vm.img.aside");
    std::fs::rename(&image, &aside).expect("move the image away");
    let e = define_and_start(&qemud, &root)
        .await
        .expect_err("the resolved file is missing");
    assert_eq!(e.code(), tonic::Code::NotFound, "{}", e.message());
    assert_eq!(
        e.message(),
        format!(
            "Cannot access storage file '{}' of disk 'sda': No such file or directory",
            image.display()
        )
    );
    assert_eq!(state(&qemud).await, (SHUTOFF, 0));
    assert!(tests::procs::processes("qemu-system", &root.path().display().to_string()).is_empty());
    std::fs::rename(&aside, &image).expect("put the image back");
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    c.start(pb::StartRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start: {}", e.message()));
    assert!(wait_until(Duration::from_secs(5), || boots(&root) >= 1).await);
    c.destroy(pb::DestroyRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await
    .expect("destroy");
}

/// An optional CD-ROM whose volume does not exist (libvirt drops the
/// source of a disk whose pool and volume cannot be translated when its
/// `startupPolicy` allows): the domain starts and boots with the drive
/// empty; the definition keeps the volume; the same volume as a plain disk
/// fails the start naming it.
#[tokio::test]
async fn an_optional_cdrom_volume_that_does_not_exist_starts_empty() {
    let root = TestRoot::new();
    let _cleanup = Cleanup(&root);
    let storage = Daemon::start("virtstoraged", &root).await;
    let qemud = Daemon::start("virtqemud", &root).await;
    pool_with_guest(&storage, &root).await;
    let cdrom = "<disk type='volume' device='cdrom'>\
                 <source pool='guests' volume='absent.iso' startupPolicy='optional'/>\
                 <target dev='sdb' bus='sata'/><readonly/></disk>\
                 <serial type='file'>";
    let mut c = qemud.domain(SocketKind::ReadWrite).await;
    c.define_xml(pb::DefineXmlRequest {
        xml: domain_xml(&root).replacen("<serial type='file'>", cdrom, 1),
        validate: true,
    })
    .await
    .expect("define");
    c.start(pb::StartRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start: {}\n{}", e.message(), qemud.output()));
    assert!(wait_until(Duration::from_secs(5), || boots(&root) >= 1).await);
    let xml = |inactive| {
        let mut c = c.clone();
        async move { tests::calls::domain_xml(&mut c, "vm", inactive).await }
    };
    let live = xml(false).await;
    let drive = live
        .split("<disk ")
        .find(|d| d.contains("device='cdrom'"))
        .unwrap_or_else(|| panic!("no cdrom: {live}"));
    assert!(!drive.contains("absent.iso"), "{drive}");
    assert!(
        xml(true)
            .await
            .contains("volume='absent.iso' startupPolicy='optional'")
    );
    c.destroy(pb::DestroyRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await
    .expect("destroy");

    // Without the policy the start fails on the volume.
    c.undefine(pb::UndefineRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await
    .expect("undefine");
    let mandatory = cdrom.replace(" startupPolicy='optional'", "");
    c.define_xml(pb::DefineXmlRequest {
        xml: domain_xml(&root).replacen("<serial type='file'>", &mandatory, 1),
        validate: true,
    })
    .await
    .expect("redefine");
    let e = c
        .start(pb::StartRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
        .expect_err("the volume does not exist");
    assert!(e.message().contains("absent.iso"), "{}", e.message());
    assert_eq!(state(&qemud).await, (SHUTOFF, 0));
}

#[tokio::test]
async fn virtqemud_starts_virtstoraged_when_a_volume_needs_it() {
    let root = TestRoot::new();
    let _cleanup = Cleanup(&root);
    let mut storage = Daemon::start("virtstoraged", &root).await;
    pool_with_guest(&storage, &root).await;
    storage.stop().await;
    assert!(!root.socket("virtstoraged", SocketKind::ReadWrite).exists());
    let qemud = Daemon::start("virtqemud", &root).await;
    define_and_start(&qemud, &root)
        .await
        .unwrap_or_else(|e| panic!("start: {}\n{}", e.message(), qemud.output()));
    assert!(wait_until(Duration::from_secs(5), || boots(&root) >= 1).await);
    assert!(
        qemud.output().contains("started virtstoraged"),
        "{}",
        qemud.output()
    );
    assert!(root.pid_file("virtstoraged").exists(), "virtstoraged runs");
    qemud
        .domain(SocketKind::ReadWrite)
        .await
        .destroy(pb::DestroyRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
        .expect("destroy");
}

/// `systemd-socket-activate` on virtstoraged's sockets, as systemd would.
fn activated_storage(root: &TestRoot) -> Daemon {
    const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";
    assert!(Path::new(ACTIVATE).is_file(), "{ACTIVATE} is missing");
    std::fs::create_dir_all(root.path().join("run/virt")).expect("run dir");
    let mut cmd = Command::new(ACTIVATE);
    for kind in SOCKET_KINDS {
        cmd.arg("-l").arg(root.socket("virtstoraged", kind));
    }
    cmd.arg("--fdname=virtstoraged.socket:virtstoraged-ro.socket:virtstoraged-admin.socket")
        .arg("-E")
        .arg(format!("VIRT_ROOT={}", root.path().display()))
        .args(["-E", "RUST_LOG=info"]);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.arg("-E")
            .arg(format!("PATH={}", path.to_string_lossy()));
    }
    cmd.arg(daemon_bin("virtstoraged")).env_remove("LISTEN_FDS");
    Daemon::spawn_command("virtstoraged", root.path(), cmd)
}

#[tokio::test]
async fn a_socket_activated_virtstoraged_serves_volume_disks() {
    let root = TestRoot::new();
    let _cleanup = Cleanup(&root);
    {
        let mut storage = Daemon::start("virtstoraged", &root).await;
        pool_with_guest(&storage, &root).await;
        storage.stop().await;
    }
    // Only the sockets exist; the first connection (virtqemud's) starts it.
    let mut storage = activated_storage(&root);
    let qemud = Daemon::start("virtqemud", &root).await;
    define_and_start(&qemud, &root)
        .await
        .unwrap_or_else(|e| panic!("start: {}\n{}", e.message(), qemud.output()));
    assert!(wait_until(Duration::from_secs(5), || boots(&root) >= 1).await);
    assert!(
        !qemud.output().contains("started virtstoraged"),
        "activation, not a spawn"
    );
    storage.wait_ready().await;
    qemud
        .domain(SocketKind::ReadWrite)
        .await
        .destroy(pb::DestroyRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
        .expect("destroy");
}
