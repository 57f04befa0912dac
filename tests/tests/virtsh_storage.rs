//! virtsh's pool and volume commands against a real virtstoraged: the
//! lines virsh prints, an upload/download round trip through files, and
//! a clone.

use tests::virtsh::{fails, ok};
use tests::{Daemon, TestRoot};

#[tokio::test]
async fn pool_and_volume_commands_print_virsh_lines() {
    let root = TestRoot::new();
    let _d = Daemon::start("virtstoraged", &root).await;
    let target = root.path().join("images");
    let t = target.to_str().expect("utf-8");
    assert_eq!(
        ok(&root, &["pool-define-as", "p", "dir", "--target", t]),
        "Pool p defined\n\n"
    );
    assert_eq!(ok(&root, &["pool-build", "p"]), "Pool p built\n\n");
    assert_eq!(ok(&root, &["pool-start", "p"]), "Pool p started\n\n");
    assert_eq!(
        ok(&root, &["pool-autostart", "p"]),
        "Pool p marked as autostarted\n\n"
    );
    let list = ok(&root, &["pool-list"]);
    assert!(list.contains(" p      active   yes"), "{list}");
    assert_eq!(
        ok(
            &root,
            &["vol-create-as", "p", "a.qcow2", "10M", "--format", "qcow2"]
        ),
        "Vol a.qcow2 created\n\n"
    );
    assert_eq!(
        ok(&root, &["vol-path", "a.qcow2", "--pool", "p"]),
        format!("{t}/a.qcow2\n\n")
    );
    let info = ok(&root, &["vol-info", "a.qcow2", "--pool", "p"]);
    assert!(info.contains("Capacity:       10.00 MiB"), "{info}");

    // A raw volume filled from a file and read back.
    ok(&root, &["vol-create-as", "p", "r.img", "1M"]);
    let src = root.path().join("src.bin");
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).expect("src");
    ok(
        &root,
        &[
            "vol-upload",
            "r.img",
            src.to_str().expect("utf-8"),
            "--pool",
            "p",
        ],
    );
    let back = root.path().join("back.bin");
    ok(
        &root,
        &[
            "vol-download",
            "r.img",
            back.to_str().expect("utf-8"),
            "--pool",
            "p",
        ],
    );
    assert_eq!(std::fs::read(&back).expect("back"), data);

    assert_eq!(
        ok(&root, &["vol-clone", "r.img", "c.img", "--pool", "p"]),
        "Vol c.img cloned from r.img\n\n"
    );
    assert_eq!(std::fs::read(target.join("c.img")).expect("clone"), data);
    let names = ok(&root, &["vol-list", "p"]);
    for n in ["a.qcow2", "c.img", "r.img"] {
        assert!(names.contains(n), "{names}");
    }
    assert_eq!(
        ok(&root, &["vol-delete", "c.img", "--pool", "p"]),
        "Vol c.img deleted\n\n"
    );
    let e = fails(&root, &["vol-create-as", "p", "../x", "1M"]);
    assert!(e.contains("../x"), "{e}");
    assert_eq!(ok(&root, &["pool-destroy", "p"]), "Pool p destroyed\n\n");
    assert_eq!(
        ok(&root, &["pool-undefine", "p"]),
        "Pool p has been undefined\n\n"
    );
}
