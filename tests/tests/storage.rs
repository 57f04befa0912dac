//! virtstoraged end to end: real daemons on temporary roots, real files,
//! loop devices, file systems and LVM.
//!
//! Tests that need root (loop devices, mount, LVM) skip themselves
//! without it. Every host resource a test makes (loop device, volume
//! group, mount) is released by a guard, also when the test fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tests::calls::pool_ref;

use common::error::status_detail;
use proto::storage::v1 as sto;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tests::{Daemon, SocketKind, TestRoot};
use tonic::Code;
use tonic::transport::Channel;

type Client = StorageServiceClient<Channel>;

// === helpers ===

fn vol_ref(pool: &str, name: &str) -> Option<sto::VolumeRef> {
    Some(sto::VolumeRef {
        by: Some(sto::volume_ref::By::PoolVolume(sto::PoolVolume {
            pool: pool.to_owned(),
            name: name.to_owned(),
        })),
    })
}

fn dir_pool_xml(name: &str, target: &Path) -> String {
    format!(
        "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
        target.display()
    )
}

fn vol_xml(name: &str, capacity: u64, format: &str) -> String {
    format!(
        "<volume><name>{name}</name><capacity>{capacity}</capacity>\
         <allocation>0</allocation><target><format type='{format}'/></target></volume>"
    )
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn define_and_start(c: &mut Client, name: &str, target: &Path) {
    c.define_pool(sto::DefinePoolRequest {
        xml: dir_pool_xml(name, target),
        validate: true,
    })
    .await
    .expect("define");
    c.build_pool(sto::BuildPoolRequest {
        pool: pool_ref(name),
        ..Default::default()
    })
    .await
    .expect("build");
    c.start_pool(sto::StartPoolRequest {
        pool: pool_ref(name),
        ..Default::default()
    })
    .await
    .expect("start");
}

async fn create_vol(c: &mut Client, pool: &str, xml: String) -> Result<sto::Volume, tonic::Status> {
    c.create_volume(sto::CreateVolumeRequest {
        pool: pool_ref(pool),
        xml,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().volume.expect("volume"))
}

async fn vol_names(c: &mut Client, pool: &str) -> Vec<String> {
    c.list_all_volumes(sto::ListAllVolumesRequest {
        pool: pool_ref(pool),
    })
    .await
    .expect("list volumes")
    .into_inner()
    .volumes
    .into_iter()
    .map(|v| v.name)
    .collect()
}

async fn pool_info(c: &mut Client, pool: &str) -> sto::GetPoolInfoResponse {
    c.get_pool_info(sto::GetPoolInfoRequest {
        pool: pool_ref(pool),
    })
    .await
    .expect("pool info")
    .into_inner()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn qemu_img_info(path: &str) -> String {
    run("qemu-img", &["info", "--output=json", path])
}

/// A loop device on a sparse image file; detached on drop.
struct Loop {
    dev: String,
    _img: tempfile::NamedTempFile,
}

impl Loop {
    fn new(size: u64) -> Loop {
        let img = tempfile::NamedTempFile::new().expect("image");
        img.as_file().set_len(size).expect("size");
        let dev = run(
            "losetup",
            &["-f", "--show", img.path().to_str().expect("utf-8")],
        )
        .trim()
        .to_owned();
        Loop { dev, _img: img }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Unmounts `target` on drop if something is mounted there.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let t = self.0.to_string_lossy().into_owned();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(t.as_str()))
        {
            let _ = Command::new("umount").args(["-l", &t]).status();
        }
    }
}

/// Removes volume group `vg` and the physical volume `pv` on drop.
struct RemoveVg {
    vg: String,
    pv: String,
}

impl Drop for RemoveVg {
    fn drop(&mut self) {
        let env = [("LVM_SUPPRESS_FD_WARNINGS", "1")];
        let _ = Command::new("vgremove")
            .args(["--driverloaded", "n", "-f", &self.vg])
            .envs(env)
            .output();
        let _ = Command::new("pvremove")
            .args(["-ff", "-y", &self.pv])
            .envs(env)
            .output();
    }
}

/// Whether this kernel has device-mapper (LVM can activate volumes).
fn have_device_mapper() -> bool {
    std::fs::File::open("/dev/mapper/control").is_ok()
}

// === tests ===

#[tokio::test]
async fn dir_pool_lifecycle_with_events_and_filters() {
    let root = TestRoot::new();
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let mut ro = d.storage(SocketKind::ReadOnly).await;
    let mut events = ro
        .watch_events(sto::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let target = root.path().join("images");

    let p = c
        .define_pool(sto::DefinePoolRequest {
            xml: dir_pool_xml("images", &target),
            validate: true,
        })
        .await
        .expect("define")
        .into_inner()
        .pool
        .expect("pool");
    assert_eq!(
        (p.name.as_str(), p.active, p.persistent),
        ("images", false, true)
    );
    let config = root.path().join("etc/virt/storage/images.xml");
    let text = std::fs::read_to_string(&config).expect("definition file");
    assert!(text.contains("virsh pool-edit images"), "{text}");
    // The same storage cannot be defined twice.
    let dup = c
        .define_pool(sto::DefinePoolRequest {
            xml: dir_pool_xml("other", &target),
            validate: false,
        })
        .await
        .expect_err("source conflict");
    assert!(
        dup.message()
            .contains("Storage source conflict with pool: 'images'"),
        "{dup:?}"
    );

    // Starting a pool whose directory does not exist fails.
    let e = c
        .start_pool(sto::StartPoolRequest {
            pool: pool_ref("images"),
            ..Default::default()
        })
        .await
        .expect_err("no directory");
    assert!(e.message().contains("cannot open directory"), "{e:?}");
    c.start_pool(sto::StartPoolRequest {
        pool: pool_ref("images"),
        build: true,
        ..Default::default()
    })
    .await
    .expect("start with build");
    assert!(target.is_dir());
    let info = pool_info(&mut c, "images").await;
    assert_eq!(info.state, sto::PoolState::Running as i32);
    assert!(info.capacity > 0 && info.available > 0 && info.allocation <= info.capacity);
    assert!(root.path().join("run/virt/storage/images.xml").is_file());

    let xml = c
        .get_pool_xml(sto::GetPoolXmlRequest {
            pool: pool_ref("images"),
            inactive: false,
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    assert!(xml.starts_with("<pool type='dir'>"), "{xml}");
    assert!(
        !xml.contains("<capacity unit='bytes'>0</capacity>"),
        "{xml}"
    );

    c.set_pool_autostart(sto::SetPoolAutostartRequest {
        pool: pool_ref("images"),
        autostart: true,
    })
    .await
    .expect("autostart");
    assert!(
        root.path()
            .join("etc/virt/storage/autostart/images.xml")
            .exists()
    );

    // A second, transient pool.
    let t2 = root.path().join("scratch");
    std::fs::create_dir(&t2).expect("mkdir");
    c.create_pool(sto::CreatePoolRequest {
        xml: dir_pool_xml("scratch", &t2),
        ..Default::default()
    })
    .await
    .expect("create transient");
    let list = |filter: sto::PoolListFilter| {
        let mut ro = ro.clone();
        async move {
            ro.list_all_pools(sto::ListAllPoolsRequest {
                filter: Some(filter),
            })
            .await
            .expect("list")
            .into_inner()
            .pools
            .into_iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Default::default()).await, ["images", "scratch"]);
    let persistent = sto::PoolListFilter {
        persistent: Some(false),
        ..Default::default()
    };
    assert_eq!(list(persistent).await, ["scratch"]);
    let autostart = sto::PoolListFilter {
        autostart: Some(true),
        ..Default::default()
    };
    assert_eq!(list(autostart).await, ["images"]);
    let typed = sto::PoolListFilter {
        types: vec![sto::PoolType::Logical as i32],
        ..Default::default()
    };
    assert!(list(typed).await.is_empty());

    c.refresh_pool(sto::RefreshPoolRequest {
        pool: pool_ref("images"),
    })
    .await
    .expect("refresh");
    let by_path = c
        .lookup_pool(sto::LookupPoolRequest {
            by: Some(sto::lookup_pool_request::By::TargetPath(format!(
                "{}/",
                target.display()
            ))),
        })
        .await
        .expect("by target")
        .into_inner();
    assert_eq!(by_path.pool.expect("pool").name, "images");

    c.destroy_pool(sto::DestroyPoolRequest {
        pool: pool_ref("scratch"),
    })
    .await
    .expect("destroy transient");
    assert_eq!(list(Default::default()).await, ["images"]);
    let e = c
        .undefine_pool(sto::UndefinePoolRequest {
            pool: pool_ref("images"),
        })
        .await
        .expect_err("undefine active");
    assert_eq!(e.code(), Code::FailedPrecondition);
    c.destroy_pool(sto::DestroyPoolRequest {
        pool: pool_ref("images"),
    })
    .await
    .expect("destroy");
    assert!(!root.path().join("run/virt/storage/images.xml").exists());
    let info = pool_info(&mut c, "images").await;
    assert_eq!(info.state, sto::PoolState::Inactive as i32);
    let inactive_xml = c
        .get_pool_xml(sto::GetPoolXmlRequest {
            pool: pool_ref("images"),
            inactive: true,
        })
        .await
        .expect("inactive xml")
        .into_inner()
        .xml;
    assert!(inactive_xml.contains(&target.display().to_string()));
    c.delete_pool(sto::DeletePoolRequest {
        pool: pool_ref("images"),
        zeroed: false,
    })
    .await
    .expect("delete");
    assert!(!target.exists());
    c.undefine_pool(sto::UndefinePoolRequest {
        pool: pool_ref("images"),
    })
    .await
    .expect("undefine");
    assert!(!config.exists());
    let e = c
        .lookup_pool(sto::LookupPoolRequest {
            by: Some(sto::lookup_pool_request::By::Pool(sto::PoolRef {
                by: Some(sto::pool_ref::By::Name("images".to_owned())),
            })),
        })
        .await
        .expect_err("gone");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(status_detail(&e).expect("detail").code, 49);

    // Events, in order, numbered 1, 2, 3, ...
    use sto::PoolLifecycleEvent as L;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 9 && Instant::now() < deadline {
        let Ok(Ok(Some(ev))) = tokio::time::timeout(Duration::from_secs(2), events.message()).await
        else {
            break;
        };
        let what = match ev.event.expect("payload") {
            sto::storage_event::Event::Lifecycle(l) => {
                format!("{:?}", L::try_from(l.event).expect("known"))
            }
            sto::storage_event::Event::Refresh(_) => "Refresh".to_owned(),
            sto::storage_event::Event::EventsLost(_) => "Lost".to_owned(),
        };
        got.push((ev.seq, ev.pool.expect("pool").name, what));
    }
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>(), "{got:?}");
    let kinds: Vec<(&str, &str)> = got.iter().map(|g| (g.1.as_str(), g.2.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("images", "Defined"),
            ("images", "Created"),
            ("images", "Started"),
            ("scratch", "Started"),
            ("images", "Refresh"),
            ("scratch", "Stopped"),
            ("images", "Stopped"),
            ("images", "Deleted"),
            ("images", "Undefined"),
        ]
    );
    // Resuming replays what came after a seq, filtered by pool.
    let mut resumed = ro
        .watch_events(sto::WatchEventsRequest {
            resume_after_seq: Some(5),
            pool: pool_ref("images"),
            kinds: vec![],
        })
        .await
        .expect("watch")
        .into_inner();
    let ev = resumed.message().await.expect("stream").expect("event");
    assert_eq!(ev.seq, 7);
}

#[tokio::test]
async fn volumes_create_clone_resize_wipe_lookup() {
    let root = TestRoot::new();
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let target = root.path().join("pool");
    define_and_start(&mut c, "p", &target).await;

    let raw = create_vol(&mut c, "p", vol_xml("disk.raw", 8 << 20, "raw"))
        .await
        .expect("raw");
    assert_eq!(raw.path, target.join("disk.raw").display().to_string());
    assert_eq!(raw.key, raw.path);
    assert_eq!(raw.pool, "p");

    // qcow2 with the options libvirt knows, written natively.
    let q = create_vol(
        &mut c,
        "p",
        "<volume><name>disk.qcow2</name><capacity unit='G'>2</capacity>\
         <target><format type='qcow2'/><compat>1.1</compat>\
         <clusterSize unit='KiB'>128</clusterSize><features><lazy_refcounts/></features></target>\
         <backingStore><path>disk.raw</path><format type='raw'/></backingStore></volume>"
            .to_owned(),
    )
    .await
    .expect("qcow2");
    let info = qemu_img_info(&q.path);
    assert!(info.contains("\"virtual-size\": 2147483648"), "{info}");
    assert!(info.contains("\"cluster-size\": 131072"), "{info}");
    assert!(info.contains("\"lazy-refcounts\": true"), "{info}");
    assert!(
        info.contains("\"backing-filename\": \"disk.raw\""),
        "{info}"
    );
    run("qemu-img", &["check", &q.path]);
    let xml = c
        .get_volume_xml(sto::GetVolumeXmlRequest {
            volume: vol_ref("p", "disk.qcow2"),
        })
        .await
        .expect("vol xml")
        .into_inner()
        .xml;
    assert!(xml.contains("<format type='qcow2'/>"), "{xml}");
    assert!(xml.contains("<compat>1.1</compat>"), "{xml}");
    assert!(xml.contains("<lazy_refcounts/>"), "{xml}");
    assert!(xml.contains("<backingStore>"), "{xml}");

    // Preallocated qcow2 goes through qemu-img.
    c.create_volume(sto::CreateVolumeRequest {
        pool: pool_ref("p"),
        xml: vol_xml("pre.qcow2", 64 << 20, "qcow2"),
        prealloc_metadata: true,
        validate: true,
    })
    .await
    .expect("preallocated qcow2");
    assert!(
        qemu_img_info(&target.join("pre.qcow2").display().to_string())
            .contains("\"virtual-size\": 67108864")
    );
    // compat 0.10 with lazy refcounts is refused, as libvirt does, and
    // leaves nothing.
    let e = create_vol(
        &mut c,
        "p",
        "<volume><name>bad.qcow2</name><capacity>1048576</capacity>\
         <target><format type='qcow2'/><compat>0.10</compat>\
         <features><lazy_refcounts/></features></target></volume>"
            .to_owned(),
    )
    .await
    .expect_err("0.10 lazy");
    assert!(
        e.message().contains("lazy_refcounts not supported"),
        "{e:?}"
    );
    assert_eq!(files(&target), ["disk.qcow2", "disk.raw", "pre.qcow2"]);

    // Lookups by key and by path.
    let by_key = c
        .lookup_volume(sto::LookupVolumeRequest {
            volume: Some(sto::VolumeRef {
                by: Some(sto::volume_ref::By::Key(q.key.clone())),
            }),
        })
        .await
        .expect("by key")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(by_key.name, "disk.qcow2");
    let by_path = c
        .lookup_volume(sto::LookupVolumeRequest {
            volume: Some(sto::VolumeRef {
                by: Some(sto::volume_ref::By::Path(format!(
                    "{}//disk.raw",
                    target.display()
                ))),
            }),
        })
        .await
        .expect("by path")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(by_path.name, "disk.raw");
    let pool_of = c
        .lookup_pool(sto::LookupPoolRequest {
            by: Some(sto::lookup_pool_request::By::Volume(sto::VolumeRef {
                by: Some(sto::volume_ref::By::Path(raw.path.clone())),
            })),
        })
        .await
        .expect("pool by volume")
        .into_inner();
    assert_eq!(pool_of.pool.expect("pool").name, "p");

    // Clone raw → raw keeps the data; qcow2 → raw converts.
    std::fs::write(&raw.path, b"hello, volume").expect("write data");
    c.create_volume_from(sto::CreateVolumeFromRequest {
        pool: pool_ref("p"),
        xml: "<volume><name>copy.raw</name><capacity>0</capacity></volume>".to_owned(),
        source: vol_ref("p", "disk.raw"),
        ..Default::default()
    })
    .await
    .expect("clone");
    let copy = std::fs::read(target.join("copy.raw")).expect("copy");
    assert_eq!(&copy[..13], b"hello, volume");
    c.create_volume_from(sto::CreateVolumeFromRequest {
        pool: pool_ref("p"),
        xml: vol_xml("flat.raw", 0, "raw"),
        source: vol_ref("p", "disk.qcow2"),
        ..Default::default()
    })
    .await
    .expect("convert");
    let flat = qemu_img_info(&target.join("flat.raw").display().to_string());
    assert!(
        flat.contains("\"format\": \"raw\"") && flat.contains("2147483648"),
        "{flat}"
    );

    // Resize: grow; shrinking needs the flag.
    c.resize_volume(sto::ResizeVolumeRequest {
        volume: vol_ref("p", "copy.raw"),
        capacity: 16 << 20,
        ..Default::default()
    })
    .await
    .expect("grow");
    let info = c
        .get_volume_info(sto::GetVolumeInfoRequest {
            volume: vol_ref("p", "copy.raw"),
        })
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.capacity, 16 << 20);
    assert_eq!(info.r#type, sto::VolumeType::File as i32);
    let e = c
        .resize_volume(sto::ResizeVolumeRequest {
            volume: vol_ref("p", "copy.raw"),
            capacity: 1 << 20,
            ..Default::default()
        })
        .await
        .expect_err("shrink without flag");
    assert!(e.message().contains("shrink flag"), "{e:?}");
    c.resize_volume(sto::ResizeVolumeRequest {
        volume: vol_ref("p", "copy.raw"),
        capacity: 1 << 20,
        shrink: true,
        ..Default::default()
    })
    .await
    .expect("shrink");
    c.resize_volume(sto::ResizeVolumeRequest {
        volume: vol_ref("p", "disk.qcow2"),
        capacity: 1 << 30,
        delta: true,
        ..Default::default()
    })
    .await
    .expect("grow qcow2 by delta");
    assert!(qemu_img_info(&q.path).contains("\"virtual-size\": 3221225472"));

    // Wipe: zeroes (and another algorithm).
    c.wipe_volume(sto::WipeVolumeRequest {
        volume: vol_ref("p", "copy.raw"),
        algorithm: sto::WipeAlgorithm::Zero as i32,
    })
    .await
    .expect("wipe");
    assert!(
        std::fs::read(target.join("copy.raw"))
            .expect("read")
            .iter()
            .all(|b| *b == 0)
    );
    c.wipe_volume(sto::WipeVolumeRequest {
        volume: vol_ref("p", "copy.raw"),
        algorithm: sto::WipeAlgorithm::Bsi as i32,
    })
    .await
    .expect("wipe bsi");
    assert!(
        std::fs::read(target.join("copy.raw"))
            .expect("read")
            .iter()
            .all(|b| *b == 0x7f)
    );

    // Delete.
    for v in [
        "copy.raw",
        "flat.raw",
        "pre.qcow2",
        "disk.qcow2",
        "disk.raw",
    ] {
        c.delete_volume(sto::DeleteVolumeRequest {
            volume: vol_ref("p", v),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("delete {v}: {e:?}"));
    }
    assert!(files(&target).is_empty());
    let e = c
        .get_volume_info(sto::GetVolumeInfoRequest {
            volume: vol_ref("p", "disk.raw"),
        })
        .await
        .expect_err("deleted");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(status_detail(&e).expect("detail").code, 50);
}

#[tokio::test]
async fn hundred_qcow2_volumes_created_listed_refreshed_deleted() {
    let root = TestRoot::new();
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let target = root.path().join("many");
    define_and_start(&mut c, "many", &target).await;

    for i in 0..100 {
        create_vol(
            &mut c,
            "many",
            vol_xml(&format!("v{i:03}.qcow2"), 1 << 30, "qcow2"),
        )
        .await
        .expect("create");
    }
    let names = vol_names(&mut c, "many").await;
    assert_eq!(names.len(), 100);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted");
    // Listed again: the same (the daemon keeps the encoded listing).
    assert_eq!(vol_names(&mut c, "many").await, names);
    c.refresh_pool(sto::RefreshPoolRequest {
        pool: pool_ref("many"),
    })
    .await
    .expect("refresh");
    assert_eq!(vol_names(&mut c, "many").await, names);
    // Every image is valid for qemu-img.
    for n in ["v000.qcow2", "v050.qcow2", "v099.qcow2"] {
        run(
            "qemu-img",
            &["check", &target.join(n).display().to_string()],
        );
    }
    // A file put there behind the daemon's back shows after a refresh.
    std::fs::write(target.join("extra.img"), b"x").expect("extra file");
    c.refresh_pool(sto::RefreshPoolRequest {
        pool: pool_ref("many"),
    })
    .await
    .expect("refresh");
    let with_extra = vol_names(&mut c, "many").await;
    assert_eq!(with_extra.len(), 101);
    assert!(with_extra.contains(&"extra.img".to_owned()));
    std::fs::remove_file(target.join("extra.img")).expect("rm extra");
    c.refresh_pool(sto::RefreshPoolRequest {
        pool: pool_ref("many"),
    })
    .await
    .expect("refresh");
    assert_eq!(vol_names(&mut c, "many").await, names);
    for n in &names {
        c.delete_volume(sto::DeleteVolumeRequest {
            volume: vol_ref("many", n),
            ..Default::default()
        })
        .await
        .expect("delete");
    }
    assert!(vol_names(&mut c, "many").await.is_empty());
    assert!(files(&target).is_empty());
}

#[tokio::test]
async fn upload_and_download_match_by_checksum() {
    let root = TestRoot::new();
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let target = root.path().join("up");
    define_and_start(&mut c, "up", &target).await;
    create_vol(&mut c, "up", vol_xml("blob", 0, "raw"))
        .await
        .expect("volume");

    // 5.5 MiB of pseudo-random data, sent in 1 MiB chunks.
    let mut data = vec![0u8; 5 * (1 << 20) + (1 << 19)];
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for b in &mut data {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let sum = |d: &[u8]| -> u64 {
        d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let mut msgs = vec![sto::UploadVolumeRequest {
        msg: Some(sto::upload_volume_request::Msg::Header(sto::UploadHeader {
            volume: vol_ref("up", "blob"),
            offset: 0,
            length: 0,
            sparse: true,
        })),
    }];
    for chunk in data.chunks(1 << 20) {
        msgs.push(sto::UploadVolumeRequest {
            msg: Some(sto::upload_volume_request::Msg::Data(chunk.to_vec())),
        });
    }
    // A 3 MiB hole at the end.
    msgs.push(sto::UploadVolumeRequest {
        msg: Some(sto::upload_volume_request::Msg::Hole(3 << 20)),
    });
    // A stream that stops without its end message was cancelled.
    let e = c
        .upload_volume(futures::stream::iter(msgs.clone()))
        .await
        .expect_err("no end message");
    assert_eq!(e.code(), Code::Aborted, "{}", e.message());
    msgs.push(sto::UploadVolumeRequest {
        msg: Some(sto::upload_volume_request::Msg::End(sto::UploadEnd {})),
    });
    let written = c
        .upload_volume(futures::stream::iter(msgs))
        .await
        .expect("upload")
        .into_inner()
        .bytes_written;
    assert_eq!(written, data.len() as u64 + (3 << 20));
    let info = c
        .get_volume_info(sto::GetVolumeInfoRequest {
            volume: vol_ref("up", "blob"),
        })
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.capacity, written);

    for sparse in [false, true] {
        let mut stream = c
            .download_volume(sto::DownloadVolumeRequest {
                volume: vol_ref("up", "blob"),
                offset: 0,
                length: 0,
                sparse,
            })
            .await
            .expect("download")
            .into_inner();
        let mut got = Vec::new();
        let mut holes = 0;
        let mut max_chunk = 0;
        while let Some(ch) = stream.message().await.expect("chunk") {
            match ch.chunk.expect("chunk") {
                sto::download_volume_chunk::Chunk::Data(d) => {
                    max_chunk = max_chunk.max(d.len());
                    got.extend_from_slice(&d);
                }
                sto::download_volume_chunk::Chunk::Hole(n) => {
                    holes += n;
                    got.resize(got.len() + usize::try_from(n).expect("fits"), 0);
                }
            }
        }
        assert!(max_chunk <= 1 << 20, "chunks of at most 1 MiB");
        assert_eq!(got.len() as u64, written);
        assert_eq!(sum(&got[..data.len()]), sum(&data), "sparse={sparse}");
        assert!(got[data.len()..].iter().all(|b| *b == 0));
        if sparse {
            assert!(holes >= 3 << 20, "the hole comes back as a hole: {holes}");
        }
    }
    // A range.
    let mut stream = c
        .download_volume(sto::DownloadVolumeRequest {
            volume: vol_ref("up", "blob"),
            offset: 100,
            length: 50,
            sparse: false,
        })
        .await
        .expect("range")
        .into_inner();
    let mut got = Vec::new();
    while let Some(ch) = stream.message().await.expect("chunk") {
        if let Some(sto::download_volume_chunk::Chunk::Data(d)) = ch.chunk {
            got.extend(d);
        }
    }
    assert_eq!(got, &data[100..150]);
    // An offset past the end of the volume is refused.
    let e = c
        .upload_volume(futures::stream::iter(vec![
            sto::UploadVolumeRequest {
                msg: Some(sto::upload_volume_request::Msg::Header(sto::UploadHeader {
                    volume: vol_ref("up", "blob"),
                    offset: 99_999_999_999,
                    length: 0,
                    sparse: false,
                })),
            },
            sto::UploadVolumeRequest {
                msg: Some(sto::upload_volume_request::Msg::End(sto::UploadEnd {})),
            },
        ]))
        .await
        .expect_err("offset past the end");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    // An upload that does not start with its header is refused.
    let e = c
        .upload_volume(futures::stream::iter(vec![sto::UploadVolumeRequest {
            msg: Some(sto::upload_volume_request::Msg::Data(vec![1])),
        }]))
        .await
        .expect_err("no header");
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn bad_volume_names_are_refused_and_leave_nothing() {
    let root = TestRoot::new();
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let target = root.path().join("safe");
    define_and_start(&mut c, "safe", &target).await;
    let long = "n".repeat(300);
    for bad in [
        "..",
        ".",
        "../escape",
        "a/b",
        "/etc/x",
        ".hidden",
        long.as_str(),
    ] {
        let e = create_vol(&mut c, "safe", vol_xml(bad, 1024, "raw"))
            .await
            .expect_err(bad);
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
        assert!(
            e.message().contains("volume name '"),
            "{bad}: {}",
            e.message()
        );
    }
    // A NUL cannot even be written in XML; a character reference to one
    // is refused by the parser.
    let e = create_vol(&mut c, "safe", vol_xml("a&#0;b", 1024, "raw"))
        .await
        .expect_err("NUL");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(files(&target).is_empty());
    assert!(files(root.path()).iter().all(|f| !f.contains("escape")));
    // Pool names are file names too.
    let e = c
        .define_pool(sto::DefinePoolRequest {
            xml: dir_pool_xml("..", &root.path().join("x")),
            validate: false,
        })
        .await
        .expect_err("pool name");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_admit_one() {
    let root = TestRoot::new();
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let target = root.path().join("race");
    define_and_start(&mut c, "race", &target).await;
    for (round, format) in ["qcow2", "raw"].iter().enumerate() {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let mut c = c.clone();
            let xml = vol_xml(&format!("same{round}"), 1 << 20, format);
            tasks.push(tokio::spawn(async move {
                create_vol(&mut c, "race", xml).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(e.code(), Code::AlreadyExists, "{e:?}"),
            }
        }
        assert_eq!(ok, 1, "{format}");
    }
    assert_eq!(files(&target), ["same0", "same1"]);
}

#[tokio::test]
async fn kill9_mid_create_loses_no_pool_and_leaves_no_half_volume() {
    let root = TestRoot::new();
    let mut d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let target = root.path().join("k");
    define_and_start(&mut c, "k", &target).await;
    for extra in ["k2", "k3"] {
        c.define_pool(sto::DefinePoolRequest {
            xml: dir_pool_xml(extra, &root.path().join(extra)),
            validate: false,
        })
        .await
        .expect("define");
    }
    // A source worth copying: 256 MiB of non-zero data.
    let src = target.join("src.raw");
    {
        let f = std::fs::File::create(&src).expect("src");
        let chunk = vec![0x5au8; 1 << 20];
        for i in 0..256u64 {
            std::os::unix::fs::FileExt::write_all_at(&f, &chunk, i << 20).expect("fill");
        }
    }
    c.refresh_pool(sto::RefreshPoolRequest {
        pool: pool_ref("k"),
    })
    .await
    .expect("refresh");
    let mut c2 = c.clone();
    let clone = tokio::spawn(async move {
        c2.create_volume_from(sto::CreateVolumeFromRequest {
            pool: pool_ref("k"),
            xml: vol_xml("copy.raw", 0, "raw"),
            source: vol_ref("k", "src.raw"),
            ..Default::default()
        })
        .await
    });
    // Kill the daemon while the partial file is being written.
    let part = target.join(".copy.raw.virt-part");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while Instant::now() < deadline {
        if part.exists() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(seen, "the copy never started");
    d.kill9();
    let _ = clone.await;
    assert!(
        !target.join("copy.raw").exists(),
        "no half volume under its name"
    );

    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let pools: Vec<(String, bool)> = c
        .list_all_pools(sto::ListAllPoolsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .pools
        .into_iter()
        .map(|p| (p.name, p.active))
        .collect();
    assert_eq!(
        pools,
        [
            ("k".to_owned(), true),
            ("k2".to_owned(), false),
            ("k3".to_owned(), false)
        ]
    );
    assert_eq!(vol_names(&mut c, "k").await, ["src.raw"]);
    assert_eq!(files(&target), ["src.raw"], "the partial file is gone");
}

#[tokio::test]
async fn restart_keeps_active_pools_active_and_vanished_ones_inactive() {
    let root = TestRoot::new();
    let mut d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let a = root.path().join("a");
    let b = root.path().join("b");
    let t = root.path().join("t");
    define_and_start(&mut c, "a", &a).await;
    define_and_start(&mut c, "b", &b).await;
    std::fs::create_dir(&t).expect("mkdir");
    c.create_pool(sto::CreatePoolRequest {
        xml: dir_pool_xml("t", &t),
        ..Default::default()
    })
    .await
    .expect("transient");
    create_vol(&mut c, "a", vol_xml("x.qcow2", 1 << 20, "qcow2"))
        .await
        .expect("volume");

    // A clean stop and a kill -9 both keep the pools active.
    d.stop().await;
    let mut d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let active = |c: &mut Client| {
        let mut c = c.clone();
        async move {
            c.list_all_pools(sto::ListAllPoolsRequest {
                filter: Some(sto::PoolListFilter {
                    active: Some(true),
                    ..Default::default()
                }),
            })
            .await
            .expect("list")
            .into_inner()
            .pools
            .into_iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(active(&mut c).await, ["a", "b", "t"]);
    assert_eq!(vol_names(&mut c, "a").await, ["x.qcow2"]);
    d.kill9();
    // While the daemon is down, b's directory goes away.
    std::fs::remove_dir_all(&b).expect("rm b");
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    assert_eq!(active(&mut c).await, ["a", "t"]);
    assert!(!root.path().join("run/virt/storage/b.xml").exists());
    let info = pool_info(&mut c, "b").await;
    assert_eq!(info.state, sto::PoolState::Inactive as i32);

    // While it runs, a's directory goes away: a reports inactive, and
    // calls on it say so instead of failing some other way.
    std::fs::remove_dir_all(&a).expect("rm a");
    let info = pool_info(&mut c, "a").await;
    assert_eq!(info.state, sto::PoolState::Inactive as i32);
    let e = c
        .list_all_volumes(sto::ListAllVolumesRequest {
            pool: pool_ref("a"),
        })
        .await
        .expect_err("inactive");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("is not active"), "{e:?}");
    // The transient pool's directory vanishing removes the pool.
    std::fs::remove_dir_all(&t).expect("rm t");
    let names: BTreeSet<String> = c
        .list_all_pools(sto::ListAllPoolsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .pools
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    // And it can be started again once the directory is back.
    std::fs::create_dir(&a).expect("mkdir");
    c.start_pool(sto::StartPoolRequest {
        pool: pool_ref("a"),
        ..Default::default()
    })
    .await
    .expect("restart a");
}

#[tokio::test]
async fn autostart_runs_during_init_and_calls_wait_for_it() {
    let root = TestRoot::new();
    // Many autostart pools make initialisation take a while.
    let store = root.path().join("etc/virt/storage");
    std::fs::create_dir_all(store.join("autostart")).expect("dirs");
    for i in 0..150 {
        let name = format!("auto{i:03}");
        let dir = root.path().join("pools").join(&name);
        std::fs::create_dir_all(&dir).expect("pool dir");
        std::fs::write(store.join(format!("{name}.xml")), dir_pool_xml(&name, &dir))
            .expect("definition");
        std::os::unix::fs::symlink(
            store.join(format!("{name}.xml")),
            store.join(format!("autostart/{name}.xml")),
        )
        .expect("link");
    }
    let mut d = Daemon::builder("virtstoraged", &root).spawn();
    let sock = d.socket(SocketKind::ReadWrite);
    assert!(tests::wait_until(Duration::from_secs(20), || sock.exists()).await);
    // The socket exists before initialisation ends: this call may arrive
    // while pools are still being started, and must wait, not fail.
    let mut c = StorageServiceClient::new(tests::channel_to(&sock).await);
    let p = c
        .lookup_pool(sto::LookupPoolRequest {
            by: Some(sto::lookup_pool_request::By::Pool(sto::PoolRef {
                by: Some(sto::pool_ref::By::Name("auto149".to_owned())),
            })),
        })
        .await
        .expect("lookup during init")
        .into_inner()
        .pool
        .expect("pool");
    assert!(p.active && p.autostart, "{p:?}");
    d.wait_ready().await;
    let all = c
        .list_all_pools(sto::ListAllPoolsRequest {
            filter: Some(sto::PoolListFilter {
                active: Some(true),
                ..Default::default()
            }),
        })
        .await
        .expect("list")
        .into_inner()
        .pools;
    assert_eq!(all.len(), 150);
    assert!(root.path().join("run/virt/storage/autostarted").exists());
}

#[tokio::test]
async fn fs_pool_on_a_loop_device_and_on_an_image_file() {
    if !is_root() || !have("mkfs.ext4") || !have("losetup") {
        eprintln!("skipping: needs root, losetup and mkfs.ext4");
        return;
    }
    let root = TestRoot::new();
    let dev = Loop::new(64 << 20);
    let target = root.path().join("mnt");
    let _umount = Unmount(target.clone());
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let xml = format!(
        "<pool type='fs'><name>fsp</name><source><device path='{}'/><format type='ext4'/></source>\
         <target><path>{}</path></target></pool>",
        dev.dev,
        target.display()
    );
    c.define_pool(sto::DefinePoolRequest {
        xml,
        validate: true,
    })
    .await
    .expect("define");
    c.build_pool(sto::BuildPoolRequest {
        pool: pool_ref("fsp"),
        no_overwrite: true,
        ..Default::default()
    })
    .await
    .expect("build: mkfs on an empty device");
    // Now the device has a file system: no_overwrite refuses, overwrite
    // would go ahead.
    let e = c
        .build_pool(sto::BuildPoolRequest {
            pool: pool_ref("fsp"),
            no_overwrite: true,
            ..Default::default()
        })
        .await
        .expect_err("no overwrite");
    assert!(
        e.message().contains("already formatted using 'ext4'"),
        "{e:?}"
    );
    c.start_pool(sto::StartPoolRequest {
        pool: pool_ref("fsp"),
        ..Default::default()
    })
    .await
    .expect("start: mount");
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        mounts.contains(&format!("{} {} ext4", dev.dev, target.display())),
        "{mounts}"
    );
    let info = pool_info(&mut c, "fsp").await;
    assert!(
        info.capacity > 40 << 20 && info.capacity < 64 << 20,
        "{info:?}"
    );
    create_vol(&mut c, "fsp", vol_xml("on-ext4.qcow2", 1 << 30, "qcow2"))
        .await
        .expect("volume");
    assert!(target.join("on-ext4.qcow2").is_file());
    c.destroy_pool(sto::DestroyPoolRequest {
        pool: pool_ref("fsp"),
    })
    .await
    .expect("destroy: umount");
    assert!(!target.join("on-ext4.qcow2").exists(), "unmounted");
    // Starting again mounts again and finds the volume.
    c.start_pool(sto::StartPoolRequest {
        pool: pool_ref("fsp"),
        ..Default::default()
    })
    .await
    .expect("start again");
    assert_eq!(
        vol_names(&mut c, "fsp").await,
        ["lost+found", "on-ext4.qcow2"]
    );
    c.destroy_pool(sto::DestroyPoolRequest {
        pool: pool_ref("fsp"),
    })
    .await
    .expect("destroy");
    c.delete_pool(sto::DeletePoolRequest {
        pool: pool_ref("fsp"),
        zeroed: false,
    })
    .await
    .expect("delete: rmdir");
    assert!(!target.exists());

    // The source may also be an image file: mount attaches it itself.
    let img = root.path().join("fs.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(32 << 20))
        .expect("image");
    run("mkfs.ext4", &["-q", "-F", img.to_str().expect("utf-8")]);
    let target2 = root.path().join("mnt2");
    let _umount2 = Unmount(target2.clone());
    let xml = format!(
        "<pool type='fs'><name>imgp</name><source><device path='{}'/><format type='ext4'/></source>\
         <target><path>{}</path></target></pool>",
        img.display(),
        target2.display()
    );
    c.create_pool(sto::CreatePoolRequest {
        xml,
        build: true,
        ..Default::default()
    })
    .await
    .expect("create with build (mkdir only)");
    let info = pool_info(&mut c, "imgp").await;
    assert_eq!(info.state, sto::PoolState::Running as i32);
    assert!(info.capacity > 20 << 20, "{info:?}");
    // The mount is recognised as the pool's after a daemon restart too.
    drop(c);
    drop(d);
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    assert_eq!(
        pool_info(&mut c, "imgp").await.state,
        sto::PoolState::Running as i32
    );
    c.destroy_pool(sto::DestroyPoolRequest {
        pool: pool_ref("imgp"),
    })
    .await
    .expect("destroy transient fs pool");
}

#[tokio::test]
async fn logical_pool_on_a_loop_device() {
    if !is_root() || !have("vgcreate") || !have("losetup") {
        eprintln!("skipping: needs root, losetup and LVM");
        return;
    }
    let root = TestRoot::new();
    let dev = Loop::new(128 << 20);
    let vg = format!("virttest{}", std::process::id());
    let _vg = RemoveVg {
        vg: vg.clone(),
        pv: dev.dev.clone(),
    };
    let mut b = Daemon::builder("virtstoraged", &root);
    let dm = have_device_mapper();
    if !dm {
        // No device-mapper in this kernel: LVM metadata only.
        b = b.env("VIRT_STORAGE_LVM_NO_DM", "1");
    }
    let d = b.start().await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let xml = format!(
        "<pool type='logical'><name>{vg}</name><source><device path='{}'/></source>\
         <target><path>/dev/{vg}</path></target></pool>",
        dev.dev
    );
    c.define_pool(sto::DefinePoolRequest {
        xml,
        validate: true,
    })
    .await
    .expect("define");
    c.build_pool(sto::BuildPoolRequest {
        pool: pool_ref(&vg),
        ..Default::default()
    })
    .await
    .expect("build: pvcreate + vgcreate");
    c.start_pool(sto::StartPoolRequest {
        pool: pool_ref(&vg),
        ..Default::default()
    })
    .await
    .expect("start: vgchange -aly");
    let info = pool_info(&mut c, &vg).await;
    assert!(
        info.capacity >= 120 << 20 && info.capacity <= 128 << 20,
        "{info:?}"
    );
    assert_eq!(info.available, info.capacity);

    let v = create_vol(
        &mut c,
        &vg,
        "<volume><name>lv1</name><capacity unit='MiB'>16</capacity></volume>".to_owned(),
    )
    .await
    .expect("lvcreate");
    assert_eq!(v.path, format!("/dev/{vg}/lv1"));
    assert!(v.key.len() > 30, "the LV UUID: {}", v.key);
    let info = c
        .get_volume_info(sto::GetVolumeInfoRequest {
            volume: vol_ref(&vg, "lv1"),
        })
        .await
        .expect("vol info")
        .into_inner();
    assert_eq!(info.r#type, sto::VolumeType::Block as i32);
    assert_eq!(info.capacity, 16 << 20);
    let e = create_vol(
        &mut c,
        &vg,
        "<volume><name>lv1</name><capacity unit='MiB'>4</capacity></volume>".to_owned(),
    )
    .await
    .expect_err("exists");
    assert_eq!(e.code(), Code::AlreadyExists);
    c.resize_volume(sto::ResizeVolumeRequest {
        volume: vol_ref(&vg, "lv1"),
        capacity: 24 << 20,
        ..Default::default()
    })
    .await
    .expect("lvresize");
    c.refresh_pool(sto::RefreshPoolRequest {
        pool: pool_ref(&vg),
    })
    .await
    .expect("refresh");
    let info = pool_info(&mut c, &vg).await;
    assert_eq!(info.allocation, 24 << 20);
    let by_key = c
        .lookup_volume(sto::LookupVolumeRequest {
            volume: Some(sto::VolumeRef {
                by: Some(sto::volume_ref::By::Key(v.key.clone())),
            }),
        })
        .await
        .expect("by key")
        .into_inner();
    assert_eq!(by_key.volume.expect("volume").name, "lv1");
    c.delete_volume(sto::DeleteVolumeRequest {
        volume: vol_ref(&vg, "lv1"),
        ..Default::default()
    })
    .await
    .expect("lvremove");
    assert!(vol_names(&mut c, &vg).await.is_empty());
    c.destroy_pool(sto::DestroyPoolRequest {
        pool: pool_ref(&vg),
    })
    .await
    .expect("destroy: vgchange -aln");
    c.delete_pool(sto::DeletePoolRequest {
        pool: pool_ref(&vg),
        zeroed: false,
    })
    .await
    .expect("delete: vgremove + pvremove");
    let out = Command::new("vgs")
        .arg(&vg)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .expect("vgs");
    assert!(!out.status.success(), "the volume group is gone");
}

#[tokio::test]
async fn netfs_start_failure_leaves_the_pool_inactive() {
    // No NFS server runs here; the mount command line itself is scored by
    // the pool-xml2argv conformance category. Starting must fail cleanly
    // (within the mount time limit) and leave the pool inactive.
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let root = TestRoot::new();
    let d = Daemon::start("virtstoraged", &root).await;
    let mut c = d.storage(SocketKind::ReadWrite).await;
    let target = root.path().join("nfs");
    std::fs::create_dir(&target).expect("mkdir");
    c.define_pool(sto::DefinePoolRequest {
        xml: format!(
            "<pool type='netfs'><name>n</name><source><host name='127.0.0.1'/>\
             <dir path='/nowhere'/><format type='nfs'/></source>\
             <target><path>{}</path></target></pool>",
            target.display()
        ),
        validate: true,
    })
    .await
    .expect("define");
    let t = Instant::now();
    let e = c
        .start_pool(sto::StartPoolRequest {
            pool: pool_ref("n"),
            ..Default::default()
        })
        .await
        .expect_err("no NFS here");
    assert!(t.elapsed() < Duration::from_secs(40));
    assert!(e.message().contains("mount"), "{e:?}");
    assert_eq!(
        pool_info(&mut c, "n").await.state,
        sto::PoolState::Inactive as i32
    );
}
