//! Tests of the volume commands: option parsing, the XML of
//! `vol-create-as` and `vol-clone`, sizes, help, the exact lines against
//! the fake `StorageService`, and the upload/download streams (chunk
//! sizes, checksums, holes, aborts).

use std::io::Write as _;

use super::stream::{Progress, download_total, length_opt, progress_line};
use super::*;
use crate::cli::{command_help, parse_command};
use crate::commands::storage::fake::{DOWNLOAD_CHUNK, Harness, U_DEFAULT};

fn parse(words: &[&str]) -> Result<Invocation, String> {
    let words: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
    parse_command(&crate::commands::TABLE, &words).map_err(|e| e.to_string())
}

fn inv(words: &[&str]) -> Invocation {
    match parse(words) {
        Ok(i) => i,
        Err(e) => panic!("{words:?}: {e}"),
    }
}

#[test]
fn create_as_xml() {
    let a = VolXmlArgs {
        name: "v".into(),
        capacity: 10 << 30,
        ..Default::default()
    };
    assert_eq!(
        a.to_xml(),
        "<volume>\n  <name>v</name>\n  <capacity>10737418240</capacity>\n</volume>\n"
    );
    let a = VolXmlArgs {
        name: "v&1".into(),
        capacity: 1,
        allocation: Some(0),
        format: Some("qcow2".into()),
        backing_path: Some("/var/lib/virt/default/base.img".into()),
        backing_format: Some("raw".into()),
    };
    assert_eq!(
        a.to_xml(),
        "<volume>\n  <name>v&amp;1</name>\n  <capacity>1</capacity>\n  <allocation>0</allocation>\n  \
         <target>\n    <format type='qcow2'/>\n  </target>\n  \
         <backingStore>\n    <path>/var/lib/virt/default/base.img</path>\n    <format type='raw'/>\n  </backingStore>\n\
         </volume>\n"
    );
}

#[test]
fn create_as_options() {
    let i = inv(&["vol-create-as", "default", "v", "10G", "--format", "qcow2"]);
    assert_eq!(i.string("pool"), Some("default"));
    assert_eq!(i.string("name"), Some("v"));
    assert_eq!(i.string("capacity"), Some("10G"));
    assert_eq!(i.string("format"), Some("qcow2"));
    assert_eq!(
        parse(&["vol-create-as", "default", "v"]).err().as_deref(),
        Some("command 'vol-create-as' requires <capacity> option")
    );
    assert_eq!(
        parse(&["vol-create-as", "default", "v", "1", "qcow2"])
            .err()
            .as_deref(),
        Some("unexpected data 'qcow2'")
    );
    // The optional pool of the volume commands may come positionally.
    let i = inv(&["vol-info", "a.img", "default", "--bytes"]);
    assert_eq!(i.string("pool"), Some("default"));
    let i = inv(&["vol-upload", "a.img", "/tmp/f", "default", "--offset", "5"]);
    assert_eq!(
        (i.string("file"), i.string("pool")),
        (Some("/tmp/f"), Some("default"))
    );
    let i = inv(&["vol-resize", "a.img", "2G", "default", "--shrink"]);
    assert_eq!(i.string("capacity"), Some("2G"));
    let i = inv(&[
        "vol-create-from",
        "default",
        "f.xml",
        "a.img",
        "--inputpool",
        "p",
    ]);
    assert_eq!(i.string("vol"), Some("a.img"));
}

#[test]
fn clone_xml_replaces_the_name_only() {
    let orig = "<volume type='file'>\n  <name>a.img</name>\n  <key>/k/a.img</key>\n  <target>\n    <path>/k/a.img</path>\n  </target>\n  <backingStore>\n    <name>x</name>\n  </backingStore>\n</volume>\n";
    assert_eq!(
        clone_xml(orig, "b<1>.img").ok(),
        Some(orig.replace("<name>a.img</name>", "<name>b&lt;1&gt;.img</name>"))
    );
    let nested_first =
        "<volume>\n  <source>\n    <name>inner</name>\n  </source>\n  <name>a</name>\n</volume>\n";
    assert_eq!(
        clone_xml(nested_first, "b").ok(),
        Some(nested_first.replace("<name>a</name>", "<name>b</name>"))
    );
    let empty = "<?xml version='1.0'?>\n<!-- c -->\n<volume><name/><capacity>1</capacity></volume>";
    assert_eq!(
        clone_xml(empty, "n").ok().as_deref(),
        Some(
            "<?xml version='1.0'?>\n<!-- c -->\n<volume><name>n</name><capacity>1</capacity></volume>"
        )
    );
    assert!(clone_xml("<volume><capacity>1</capacity></volume>", "n").is_err());
    assert!(clone_xml("<pool><name>x</name></pool>", "n").is_err());
    assert!(clone_xml("not xml <", "n").is_err());
}

#[test]
fn wipe_algorithms() {
    assert_eq!(wipe_algorithm(None).ok(), Some(pb::WipeAlgorithm::Zero));
    for (name, alg) in WIPE_ALGORITHMS {
        assert_eq!(wipe_algorithm(Some(name)).ok(), Some(*alg));
    }
    assert_eq!(pb::WipeAlgorithm::Trim as i32, 9);
    assert_eq!(
        wipe_algorithm(Some("shred"))
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("Unsupported algorithm 'shred'")
    );
}

#[test]
fn resize_sizes() {
    assert_eq!(
        resize_args("10G", false, false).ok(),
        Some(Resize {
            capacity: 10 << 30,
            delta: false,
            text: "10G".into()
        })
    );
    assert_eq!(
        resize_args("  -1M", false, true).ok(),
        Some(Resize {
            capacity: 1 << 20,
            delta: true,
            text: "1M".into()
        })
    );
    assert_eq!(
        resize_args("+5", true, false).map(|r| r.delta).ok(),
        Some(true)
    );
    assert_eq!(
        resize_args("-1M", false, false)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("negative size requires --shrink")
    );
    assert_eq!(
        resize_args("1Q", false, false).err().map(|e| e.lines()),
        Some(vec![
            "Malformed size 1Q".to_owned(),
            "invalid argument: unknown suffix 'Q'".to_owned()
        ])
    );
}

#[test]
fn info_lines_and_types() {
    let info = pb::GetVolumeInfoResponse {
        r#type: pb::VolumeType::Block as i32,
        capacity: 10 << 30,
        allocation: 1536,
        physical: 2048,
    };
    assert_eq!(
        vol_info_lines(&info, false, false),
        "Type:           block\nCapacity:       10.00 GiB\nAllocation:     1.50 KiB\n"
    );
    assert_eq!(
        vol_info_lines(&info, true, true),
        "Type:           block\nCapacity:       10737418240 bytes\nPhysical:       2048 bytes\n"
    );
    assert_eq!(vol_type_str(5), "ploop");
    assert_eq!(vol_type_str(4), "netdir");
    assert_eq!(vol_type_str(42), "unknown");
}

#[test]
fn progress_lines() {
    assert_eq!(progress_line("Upload", 0, 100), "\rUpload: [ 0.00 %]");
    assert_eq!(progress_line("Upload", 45, 100), "\rUpload: [45.00 %]");
    assert_eq!(progress_line("Upload", 1, 3), "\rUpload: [33.33 %]");
    // Truncated, never 100 before the end.
    assert_eq!(progress_line("Download", 2, 3), "\rDownload: [66.66 %]");
    assert_eq!(
        progress_line("Upload", 999_999_999, 1_000_000_000),
        "\rUpload: [99.99 %]"
    );
    assert_eq!(progress_line("Upload", 100, 100), "\rUpload: [100.00 %]");
    assert_eq!(progress_line("Upload", 200, 100), "\rUpload: [100.00 %]");
}

/// A progress sink shared with the test.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn progress_draws_and_ends_the_line() {
    let sink = Shared::default();
    let mut p = Progress::new("Upload", 200, Some(Box::new(sink.clone())));
    p.advance(50);
    p.advance(50); // within the redraw interval: not drawn
    p.finish(true);
    let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
    assert_eq!(text, "\rUpload: [25.00 %]\rUpload: [100.00 %]\n");

    let sink = Shared::default();
    let mut p = Progress::new("Download", 200, Some(Box::new(sink.clone())));
    p.advance(150);
    p.finish(false);
    let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
    assert_eq!(text, "\rDownload: [75.00 %]\n");

    // Nothing at all without a total, or when nothing was drawn.
    let sink = Shared::default();
    let mut p = Progress::new("Upload", 0, Some(Box::new(sink.clone())));
    p.advance(10);
    p.finish(true);
    let mut q = Progress::new("Upload", 10, Some(Box::new(sink.clone())));
    q.finish(false);
    assert!(sink.0.lock().expect("lock").is_empty());
    assert_eq!(p.done(), 10);
}

#[test]
fn lengths_wrap_and_totals() {
    assert_eq!(length_opt(&inv(&["vol-upload", "v", "f"])).ok(), Some(0));
    assert_eq!(
        length_opt(&inv(&["vol-upload", "v", "f", "--length", "-1"])).ok(),
        Some(u64::MAX)
    );
    assert_eq!(
        length_opt(&inv(&["vol-upload", "v", "f", "--length", "x"]))
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("Numeric value 'x' for <length> option is malformed or out of range")
    );
    let info = pb::GetVolumeInfoResponse {
        capacity: 1000,
        physical: 600,
        ..Default::default()
    };
    assert_eq!(download_total(&info, 0, 0), 600);
    assert_eq!(download_total(&info, 100, 0), 500);
    assert_eq!(download_total(&info, 100, 50), 50);
    assert_eq!(download_total(&info, 700, 0), 0);
    let info = pb::GetVolumeInfoResponse {
        capacity: 1000,
        ..Default::default()
    };
    assert_eq!(download_total(&info, 0, 0), 1000);
}

#[test]
fn help_of_volume_commands() {
    let def = crate::commands::TABLE
        .lookup("vol-resize")
        .expect("defined");
    assert_eq!(
        command_help(def),
        "  NAME\n\
         \x20   vol-resize - resize a vol\n\
         \n  SYNOPSIS\n\
         \x20   vol-resize [--vol] <string> [--capacity] <string> [[--pool] <string>] [--allocate] [--delta] [--shrink]\n\
         \n  DESCRIPTION\n\
         \x20   Resizes a storage volume. This is safe only for storage volumes not in use by an active guest.\n\
         See blockresize for live resizing.\n\
         \n  OPTIONS\n\
         \x20   [--vol] <string>  vol name, key or path\n\
         \x20   [--capacity] <string>  new capacity for the vol, as scaled integer (default bytes)\n\
         \x20   [--pool] <string>  pool name or uuid\n\
         \x20   --allocate       allocate the new capacity, rather than leaving it sparse\n\
         \x20   --delta          use capacity as a delta to current size, rather than the new size\n\
         \x20   --shrink         allow the resize to shrink the volume\n\
         \n"
    );
    let text = crate::cli::group_help(&crate::commands::TABLE, Group::Volume);
    for name in [
        "vol-clone",
        "vol-create",
        "vol-create-as",
        "vol-create-from",
        "vol-delete",
        "vol-download",
        "vol-dumpxml",
        "vol-info",
        "vol-key",
        "vol-list",
        "vol-name",
        "vol-path",
        "vol-pool",
        "vol-resize",
        "vol-upload",
        "vol-wipe",
    ] {
        assert!(
            text.contains(&format!("    {name} ")),
            "{name} not in\n{text}"
        );
    }
}

// ---- Against the fake daemon ----

const A_IMG: &str = "/var/lib/virt/default/a.img";

#[tokio::test]
async fn list_tables() {
    let mut h = Harness::new();
    h.ok(
        "vol-list default",
        " Name        Path\n\
         ----------------------------------------------\n \
         a.img       /var/lib/virt/default/a.img\n \
         B.qcow2     /var/lib/virt/default/B.qcow2\n \
         flaky.img   /var/lib/virt/default/flaky.img\n \
         ro.img      /var/lib/virt/default/ro.img\n",
    )
    .await;
    h.ok(
        "vol-list --pool scratch --details",
        " Name    Path                          Type   Capacity   Allocation\n\
         ---------------------------------------------------------------------\n \
         s.raw   /var/lib/virt/scratch/s.raw   file   100.00 B   0.00 B\n",
    )
    .await;
    let (ok, out, err, _) = h.run("vol-list default --details").await;
    assert!(ok, "{err}");
    assert!(
        out.contains(
            " a.img       /var/lib/virt/default/a.img       file      1.00 GiB    512.00 MiB\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            " flaky.img   /var/lib/virt/default/flaky.img   unknown   unknown     unknown\n"
        ),
        "{out}"
    );
    h.fails(
        "vol-list images",
        "error: Failed to list volumes\n\
         error: Requested operation is not valid: storage pool 'images' is not active\n",
    )
    .await;
    h.fails(
        "vol-list nosuch",
        "error: failed to get pool 'nosuch'\n\
         error: Storage pool not found: no storage pool with matching name 'nosuch'\n",
    )
    .await;
}

#[tokio::test]
async fn lookups_as_virsh() {
    let mut h = Harness::new();
    // By name with --pool (by name or UUID), by key, by path.
    h.ok("vol-key a.img default", &format!("{A_IMG}\n")).await;
    h.ok(
        &format!("vol-key a.img --pool {U_DEFAULT}"),
        &format!("{A_IMG}\n"),
    )
    .await;
    h.ok(&format!("vol-path {A_IMG}"), &format!("{A_IMG}\n"))
        .await;
    h.ok(&format!("vol-name {A_IMG}"), "a.img\n").await;
    h.ok(&format!("vol-pool {A_IMG}"), "default\n").await;
    h.ok(
        &format!("vol-pool {A_IMG} --uuid"),
        &format!("{U_DEFAULT}\n"),
    )
    .await;
    h.fails(
        "vol-info a.img",
        "error: failed to get vol 'a.img', specifying --pool might help\n\
         error: Storage volume not found: no storage vol with matching path 'a.img'\n",
    )
    .await;
    h.fails(
        "vol-info nosuch default",
        "error: failed to get vol 'nosuch'\n\
         error: Storage volume not found: no storage vol with matching path 'nosuch'\n",
    )
    .await;
    h.fails(
        "vol-name a.img",
        "error: failed to get vol 'a.img'\n\
         error: Storage volume not found: no storage vol with matching path 'a.img'\n",
    )
    .await;
    h.fails(
        "vol-info a.img images",
        "error: pool 'images' is not active\n",
    )
    .await;
    h.fails(
        "vol-info a.img nosuch",
        "error: failed to get pool 'nosuch'\n\
         error: Storage pool not found: no storage pool with matching name 'nosuch'\n",
    )
    .await;
    // Found by path, but in another pool than the one given.
    h.fails(
        &format!("vol-info {A_IMG} scratch"),
        &format!("error: Requested volume '{A_IMG}' is not in pool 'scratch'\n"),
    )
    .await;
    h.fails(
        "vol-key '' default",
        "error: Failed to get option 'vol': Option argument is empty\n",
    )
    .await;
}

#[tokio::test]
async fn info_and_dumpxml() {
    let mut h = Harness::new();
    h.ok(
        "vol-info a.img default",
        "Name:           a.img\n\
         Type:           file\n\
         Capacity:       1.00 GiB\n\
         Allocation:     512.00 MiB\n",
    )
    .await;
    h.ok(
        &format!("vol-info {A_IMG} --bytes --physical"),
        "Name:           a.img\n\
         Type:           file\n\
         Capacity:       1073741824 bytes\n\
         Physical:       5 bytes\n",
    )
    .await;
    h.fails_after(
        "vol-info flaky.img default",
        "Name:           flaky.img\n",
        "error: operation failed: no info\n",
    )
    .await;
    h.ok(
        "vol-dumpxml a.img default",
        &format!(
            "<volume type='file'>\n  <name>a.img</name>\n  <key>{A_IMG}</key>\n  <capacity unit='bytes'>1073741824</capacity>\n  <target>\n    <path>{A_IMG}</path>\n    <format type='raw'/>\n  </target>\n</volume>\n"
        ),
    )
    .await;
}

#[tokio::test]
async fn create_commands() {
    let mut h = Harness::new();
    let calls = h
        .ok(
            "vol-create-as default new.qcow2 10G --format qcow2 --allocation 1M --prealloc-metadata",
            "Vol new.qcow2 created\n",
        )
        .await;
    assert!(calls[0].contains("prealloc_metadata: true"), "{calls:?}");
    assert!(
        calls[0].contains(r"<name>new.qcow2</name>\n  <capacity>10737418240</capacity>\n  <allocation>1048576</allocation>\n  <target>\n    <format type='qcow2'/>"),
        "{calls:?}"
    );
    h.fails(
        "vol-create-as default new.qcow2 1G",
        "error: Failed to create vol new.qcow2\nerror: storage volume 'new.qcow2' exists already\n",
    )
    .await;
    let calls = h
        .fails(
            "vol-create-as default x 10Q",
            "error: Malformed size 10Q\nerror: invalid argument: unknown suffix 'Q'\n",
        )
        .await;
    assert!(calls.is_empty());
    h.fails(
        "vol-create-as default x 1 --allocation nope",
        "error: Malformed size nope\n",
    )
    .await;
    // The backing volume is looked up (name in the pool, key, path) and
    // written by path.
    let (ok, out, err, _) = h
        .run("vol-create-as default snap 1G --format qcow2 --backing-vol a.img --backing-vol-format raw --print-xml")
        .await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(
            "<volume>\n  <name>snap</name>\n  <capacity>1073741824</capacity>\n  <target>\n    <format type='qcow2'/>\n  </target>\n  <backingStore>\n    <path>{A_IMG}</path>\n    <format type='raw'/>\n  </backingStore>\n</volume>\n\n"
        )
    );
    h.fails(
        "vol-create-as default snap 1G --backing-vol nosuch",
        "error: failed to get vol 'nosuch'\n\
         error: Storage volume not found: no storage vol with matching path 'nosuch'\n",
    )
    .await;

    let xml = h.file(
        "v.xml",
        b"<volume><name>fromfile</name><capacity>1</capacity></volume>",
    );
    let calls = h
        .ok(
            &format!("vol-create default {xml} --validate"),
            &format!("Vol fromfile created from {xml}\n"),
        )
        .await;
    assert!(calls[0].contains("validate: true"), "{calls:?}");
    h.fails(
        &format!("vol-create default {xml}"),
        &format!("error: Failed to create vol from {xml}\nerror: storage volume 'fromfile' exists already\n"),
    )
    .await;
    h.fails(
        "vol-create default /nonexistent.xml",
        "error: Failed to open file '/nonexistent.xml': No such file or directory\n",
    )
    .await;

    let xml2 = h.file(
        "c.xml",
        b"<volume><name>copy</name><capacity>1</capacity></volume>",
    );
    let calls = h
        .ok(
            &format!("vol-create-from scratch {xml2} a.img --inputpool default --reflink"),
            "Vol copy created from input vol a.img\n",
        )
        .await;
    assert!(calls[0].contains("reflink: true"), "{calls:?}");
    h.fails(
        &format!("vol-create-from scratch {xml2} a.img"),
        "error: failed to get vol 'a.img', specifying --inputpool might help\n\
         error: Storage volume not found: no storage vol with matching path 'a.img'\n",
    )
    .await;
}

#[tokio::test]
async fn clone_lines() {
    let mut h = Harness::new();
    let calls = h
        .ok(
            "vol-clone a.img a2.img default --prealloc-metadata",
            "Vol a2.img cloned from a.img\n",
        )
        .await;
    assert!(
        calls[0].contains("prealloc_metadata: true") && calls[0].contains("<name>a2.img</name>"),
        "{calls:?}"
    );
    assert_eq!(
        h.st()
            .vols
            .iter()
            .find(|v| v.name == "a2.img")
            .map(|v| v.data.clone()),
        Some(b"hello".to_vec())
    );
    h.fails(
        "vol-clone a.img a2.img --pool default",
        "error: Failed to clone vol from a.img\nerror: storage volume 'a2.img' exists already\n",
    )
    .await;
    let (ok, out, _, calls) = h.run(&format!("vol-clone {A_IMG} x --print-xml")).await;
    assert!(ok);
    assert!(calls.is_empty());
    assert!(
        out.starts_with("<volume type='file'>\n  <name>x</name>\n  <key>"),
        "{out}"
    );
}

#[tokio::test]
async fn delete_wipe_resize() {
    let mut h = Harness::new();
    let calls = h
        .ok(
            "vol-wipe a.img default --algorithm gutmann",
            "Vol a.img wiped\n",
        )
        .await;
    assert!(calls[0].contains("algorithm: Gutmann"), "{calls:?}");
    h.fails(
        "vol-wipe a.img default --algorithm shred",
        "error: Unsupported algorithm 'shred'\n",
    )
    .await;
    h.fails(
        "vol-wipe ro.img default",
        "error: Failed to wipe vol ro.img\n\
         error: operation failed: cannot wipe read-only volume 'ro.img'\n",
    )
    .await;
    let calls = h
        .ok(
            "vol-resize a.img 2G default",
            "Size of volume 'a.img' successfully changed to 2G\n",
        )
        .await;
    assert!(
        calls[0].contains("capacity: 2147483648, allocate: false, delta: false, shrink: false"),
        "{calls:?}"
    );
    let calls = h
        .ok(
            &format!("vol-resize {A_IMG} -100M --shrink"),
            "Size of volume 'a.img' successfully changed by 100M\n",
        )
        .await;
    assert!(
        calls[0].contains("capacity: 104857600, allocate: false, delta: true, shrink: true"),
        "{calls:?}"
    );
    let calls = h
        .ok(
            "vol-resize a.img 1G --pool default --delta --allocate",
            "Size of volume 'a.img' successfully changed by 1G\n",
        )
        .await;
    assert!(
        calls[0].contains("capacity: 1073741824, allocate: true, delta: true, shrink: false"),
        "{calls:?}"
    );
    h.fails(
        "vol-resize ro.img 1G default --delta",
        "error: Failed to change size of volume 'ro.img' by 1G\n\
         error: operation failed: cannot resize read-only volume 'ro.img'\n",
    )
    .await;
    h.fails(
        "vol-resize a.img -1G default",
        "error: negative size requires --shrink\n",
    )
    .await;
    h.ok(
        "vol-delete a.img default --delete-snapshots",
        "Vol a.img deleted\n",
    )
    .await;
    assert!(!h.st().vols.iter().any(|v| v.name == "a.img"));
    h.fails(
        "vol-delete ro.img default",
        "error: Failed to delete vol ro.img\n\
         error: operation failed: cannot delete read-only volume 'ro.img'\n",
    )
    .await;
}

/// A deterministic pseudo-random buffer.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// FNV-1a, as a checksum of the bytes moved.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn vol_data(h: &Harness, name: &str) -> Vec<u8> {
    h.st()
        .vols
        .iter()
        .find(|v| v.name == name)
        .map(|v| v.data.clone())
        .expect("volume")
}

#[tokio::test]
async fn upload_in_bounded_chunks() {
    let mut h = Harness::new();
    let data = noise((3 << 20) + 12345, 7);
    let file = h.file("up.bin", &data);
    h.ok(&format!("vol-upload a.img {file} default"), "").await;
    {
        let st = h.st();
        assert_eq!(st.max_upload_chunk, super::stream::CHUNK);
        assert_eq!(st.upload_data_msgs, 4);
    }
    assert_eq!(fnv(&vol_data(&h, "a.img")), fnv(&data));

    // --offset and --length: the file's first bytes, written at the offset.
    let calls = h
        .ok(
            &format!("vol-upload --vol {A_IMG} --file {file} --offset 10 --length 100"),
            "",
        )
        .await;
    assert_eq!(calls, ["UploadVolume: offset 10 length 100 sparse false"]);
    let got = vol_data(&h, "a.img");
    assert_eq!(&got[..10], &data[..10]);
    assert_eq!(&got[10..110], &data[..100]);
    assert_eq!(&got[110..], &data[110..]);
}

#[tokio::test]
async fn upload_errors() {
    let mut h = Harness::new();
    let file = h.file("small.bin", b"abc");
    h.fails(
        &format!("vol-upload ro.img {file} default"),
        "error: cannot upload to volume ro.img\n\
         error: operation failed: cannot upload to read-only volume 'ro.img'\n",
    )
    .await;
    h.fails(
        &format!("vol-upload a.img {file} default --offset 99999999999"),
        "error: cannot upload to volume a.img\n\
         error: invalid argument: offset 99999999999 is past the end of volume 'a.img'\n",
    )
    .await;
    let calls = h
        .fails(
            "vol-upload a.img /nonexistent/f default",
            "error: cannot read /nonexistent/f\n",
        )
        .await;
    assert!(calls.is_empty());
    h.fails(
        &format!("vol-upload a.img {file} default --offset -1"),
        "error: Numeric value '-1' for <offset> option is malformed or out of range\n",
    )
    .await;
    // A file that cannot be read: the call is cancelled, nothing is
    // committed.
    let dir = h.dir.display().to_string();
    let before = vol_data(&h, "a.img");
    h.fails(
        &format!("vol-upload a.img {dir} default"),
        &format!(
            "error: cannot send data to volume a.img\n\
             error: Unable to read from '{dir}': Is a directory\n"
        ),
    )
    .await;
    assert_eq!(vol_data(&h, "a.img"), before);
}

#[tokio::test]
async fn failed_reads_cancel_the_upload() {
    let h = Harness::new();
    let data = noise(3 << 20, 9);
    let path = h.file("big.bin", &data);
    let before = vol_data(&h, "a.img");
    let mut ctl = h.ctl_clone_for_client();
    let channel = ctl
        .connection()
        .expect("connection")
        .channel(crate::connection::Daemon::Storage)
        .await
        .expect("channel");
    let header = pb::UploadHeader {
        volume: Some(vol_ref(&pb::Volume {
            name: "a.img".into(),
            pool: "default".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let src = super::stream::Source {
        file: std::fs::File::open(&path).expect("open"),
        sparse: false,
        is_block: false,
        limit: 0,
        fail_after: Some(2 << 20),
    };
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        super::stream::upload(channel, header, src, Progress::new("Upload", 0, None)),
    )
    .await
    .expect("no hang");
    match r {
        Err(super::stream::TransferError::Local(e)) => {
            assert_eq!(e.raw_os_error(), Some(libc::EIO));
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..100 {
        if h.st().aborted_uploads > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The daemon saw a broken stream, not an end: nothing was committed.
    assert_eq!(h.st().aborted_uploads, 1);
    assert_eq!(vol_data(&h, "a.img"), before);
}

#[tokio::test]
async fn sparse_upload_keeps_the_content() {
    let mut h = Harness::new();
    let path = h.path("sparse.bin");
    {
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&noise(4096, 3)).expect("write");
        // A hole of 8 MiB, data, and a trailing hole.
        f.set_len((8 << 20) + 4096).expect("extend");
        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).expect("seek");
        f.write_all(&noise(5000, 5)).expect("write");
        f.set_len((12 << 20) + 9096).expect("extend");
    }
    let expected = std::fs::read(&path).expect("read");
    let calls = h
        .ok(&format!("vol-upload a.img {path} default --sparse"), "")
        .await;
    assert_eq!(calls, ["UploadVolume: offset 0 length 0 sparse true"]);
    let got = vol_data(&h, "a.img");
    assert_eq!(got.len(), expected.len());
    assert_eq!(fnv(&got), fnv(&expected));
    let st = h.st();
    assert!(st.max_upload_chunk <= super::stream::CHUNK);
    // Where the file system reports holes, they travel as holes.
    if st.upload_hole_bytes > 0 {
        assert!(st.upload_hole_bytes >= 8 << 20, "{}", st.upload_hole_bytes);
    }
}

#[tokio::test]
async fn download_checksums() {
    let mut h = Harness::new();
    let data = noise((2 << 20) + 777, 11);
    let up = h.file("up.bin", &data);
    h.ok(&format!("vol-upload a.img {up} default"), "").await;
    let out = h.path("down.bin");
    let calls = h.ok(&format!("vol-download a.img {out} default"), "").await;
    assert_eq!(calls, ["DownloadVolume: offset 0 length 0 sparse false"]);
    let got = std::fs::read(&out).expect("read");
    assert_eq!(fnv(&got), fnv(&data));

    // Into an existing file: truncated first. With --offset/--length.
    std::fs::write(&out, vec![0xffu8; 5 << 20]).expect("write");
    h.ok(
        &format!("vol-download {A_IMG} {out} --offset 1000 --length 300000"),
        "",
    )
    .await;
    assert_eq!(std::fs::read(&out).expect("read"), &data[1000..301_000]);
}

#[tokio::test]
async fn sparse_download_skips_holes() {
    let mut h = Harness::new();
    // data, 3 zero chunks, data, 1 zero chunk at the end
    let mut data = noise(DOWNLOAD_CHUNK, 1);
    data.extend(vec![0u8; 3 * DOWNLOAD_CHUNK]);
    data.extend(noise(DOWNLOAD_CHUNK / 2, 2));
    data.extend(vec![0u8; DOWNLOAD_CHUNK / 2]);
    data.extend(vec![0u8; DOWNLOAD_CHUNK]);
    let up = h.file("up.bin", &data);
    h.ok(&format!("vol-upload a.img {up} default"), "").await;
    let out = h.path("sparse-down.bin");
    h.ok(&format!("vol-download a.img {out} default --sparse"), "")
        .await;
    let got = std::fs::read(&out).expect("read");
    assert_eq!(got.len(), data.len());
    assert_eq!(fnv(&got), fnv(&data));
}

#[tokio::test]
async fn download_errors() {
    let mut h = Harness::new();
    let out = h.path("x.bin");
    h.fails(
        &format!("vol-download ro.img {out} default"),
        "error: cannot download from volume ro.img\n\
         error: operation failed: cannot download read-only volume 'ro.img'\n",
    )
    .await;
    // The file virtsh created is removed again.
    assert!(!std::path::Path::new(&out).exists());
    h.fails(
        &format!("vol-download flaky.img {out} default"),
        "error: cannot receive data from volume flaky.img\n\
         error: operation failed: read error on 'flaky.img'\n",
    )
    .await;
    assert!(!std::path::Path::new(&out).exists());
    // An existing file is kept (truncated), as virsh does.
    let existing = h.file("existing.bin", b"old");
    h.fails(
        &format!("vol-download flaky.img {existing} default"),
        "error: cannot receive data from volume flaky.img\n\
         error: operation failed: read error on 'flaky.img'\n",
    )
    .await;
    assert!(std::path::Path::new(&existing).exists());
    h.fails(
        "vol-download a.img /nonexistent/dir/x default",
        "error: cannot create /nonexistent/dir/x\n",
    )
    .await;
    h.fails(
        &format!("vol-download nosuch {out}"),
        "error: failed to get vol 'nosuch', specifying --pool might help\n\
         error: Storage volume not found: no storage vol with matching path 'nosuch'\n",
    )
    .await;
}
