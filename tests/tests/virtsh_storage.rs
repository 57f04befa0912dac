//! virtsh's pool and volume commands against a real virtstoraged: the
//! lines virsh prints, an upload/download round trip through files, and
//! a clone.

use std::process::Output;

use tests::{Daemon, TestRoot, bin_dir};

fn virtsh(root: &TestRoot, args: &[&str]) -> Output {
    std::process::Command::new(bin_dir().join("virtsh"))
        .args(args)
        .env("VIRT_ROOT", root.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .output()
        .expect("run virtsh")
}

fn ok(root: &TestRoot, args: &[&str]) -> String {
    let out = virtsh(root, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success() && e.is_empty(),
        "virtsh {args:?}: {o}{e}"
    );
    o
}

fn fails(root: &TestRoot, args: &[&str]) -> String {
    let out = virtsh(root, args);
    assert_eq!(out.status.code(), Some(1), "virtsh {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
