//! Tests of the pool commands: option parsing, the XML of
//! `pool-define-as`, the `pool-list` filter, help, and the exact lines
//! against the fake `StorageService`.

use super::*;
use crate::cli::{command_help, group_help, parse_command};
use crate::commands::storage::fake::{Harness, U_BAD, U_DEFAULT, U_IMAGES, U_SCRATCH};

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

fn xml(words: &[&str]) -> Result<String, String> {
    PoolXmlArgs::from_invocation(&inv(words))
        .map(|a| a.to_xml())
        .map_err(|e| e.to_string())
}

#[test]
fn define_as_minimal_xml() {
    assert_eq!(
        xml(&["pool-define-as", "p", "dir"]),
        Ok("<pool type='dir'>\n  <name>p</name>\n</pool>\n".to_owned())
    );
    assert_eq!(
        xml(&["pool-define-as", "--name", "p", "--type", "dir", "--target", "/var/lib/images"]),
        Ok("<pool type='dir'>\n  <name>p</name>\n  <target>\n    <path>/var/lib/images</path>\n  </target>\n</pool>\n".to_owned())
    );
}

#[test]
fn define_as_positional_sources() {
    // The classic form: host, path, dev, name and target in order.
    let i = inv(&[
        "pool-define-as",
        "p",
        "dir",
        "h",
        "/src",
        "/dev/sdb",
        "vg",
        "/tgt",
    ]);
    assert_eq!(i.string("source-host"), Some("h"));
    assert_eq!(i.string("source-path"), Some("/src"));
    assert_eq!(i.string("source-dev"), Some("/dev/sdb"));
    assert_eq!(i.string("source-name"), Some("vg"));
    assert_eq!(i.string("target"), Some("/tgt"));
    assert_eq!(
        parse(&["pool-define-as", "p", "dir", "1", "2", "3", "4", "5", "6"])
            .err()
            .as_deref(),
        Some("unexpected data '6'")
    );
    assert_eq!(
        parse(&["pool-define-as", "p"]).err().as_deref(),
        Some("command 'pool-define-as' requires <type> option")
    );
}

#[test]
fn define_as_full_source_xml() {
    assert_eq!(
        xml(&[
            "pool-create-as",
            "nfs1",
            "netfs",
            "--source-host",
            "nfs.example.com",
            "--source-path",
            "/export",
            "--source-format",
            "nfs",
            "--source-protocol-ver",
            "4",
            "--target",
            "/mnt/nfs",
        ]),
        Ok("<pool type='netfs'>\n  <name>nfs1</name>\n  <source>\n    <host name='nfs.example.com'/>\n    <dir path='/export'/>\n    <format type='nfs'/>\n    <protocol ver='4'/>\n  </source>\n  <target>\n    <path>/mnt/nfs</path>\n  </target>\n</pool>\n".to_owned())
    );
    assert_eq!(
        xml(&[
            "pool-define-as",
            "iscsi1",
            "iscsi",
            "--source-host",
            "h",
            "--source-dev",
            "iqn.2013-06.com.example:iscsi-pool",
            "--source-initiator",
            "iqn.2013-06.com.example:client",
            "--auth-type",
            "chap",
            "--auth-username",
            "u",
            "--secret-usage",
            "libvirtiscsi",
            "--source-name",
            "n",
        ]),
        Ok("<pool type='iscsi'>\n  <name>iscsi1</name>\n  <source>\n    <host name='h'/>\n    <device path='iqn.2013-06.com.example:iscsi-pool'/>\n    <initiator>\n      <iqn name='iqn.2013-06.com.example:client'/>\n    </initiator>\n    <auth type='chap' username='u'>\n      <secret usage='libvirtiscsi'/>\n    </auth>\n    <name>n</name>\n  </source>\n</pool>\n".to_owned())
    );
}

#[test]
fn define_as_adapters_and_auth_rules() {
    assert_eq!(
        xml(&[
            "pool-define-as",
            "fc",
            "scsi",
            "--adapter-wwnn",
            "20000000c9831b4b",
            "--adapter-wwpn",
            "10000000c9831b4b",
            "--adapter-parent-wwnn",
            "pn",
            "--adapter-parent-wwpn",
            "pp",
            "--adapter-name",
            "ignored",
        ]),
        Ok("<pool type='scsi'>\n  <name>fc</name>\n  <source>\n    <adapter type='fc_host' parent_wwnn='pn' parent_wwpn='pp' wwnn='20000000c9831b4b' wwpn='10000000c9831b4b'/>\n  </source>\n</pool>\n".to_owned())
    );
    assert_eq!(
        xml(&["pool-define-as", "s", "scsi", "--adapter-name", "host0"]),
        Ok("<pool type='scsi'>\n  <name>s</name>\n  <source>\n    <adapter type='scsi_host' name='host0'/>\n  </source>\n</pool>\n".to_owned())
    );
    // A lone wwnn makes no adapter (and no <source> at all).
    assert_eq!(
        xml(&["pool-define-as", "s", "scsi", "--adapter-wwnn", "x"]),
        Ok("<pool type='scsi'>\n  <name>s</name>\n</pool>\n".to_owned())
    );
    // Auth needs a type, a user and a secret.
    assert_eq!(
        xml(&["pool-define-as", "r", "rbd", "--source-name", "rbd", "--auth-type", "ceph", "--secret-uuid", "u"]),
        Ok("<pool type='rbd'>\n  <name>r</name>\n  <source>\n    <name>rbd</name>\n  </source>\n</pool>\n".to_owned())
    );
    assert_eq!(
        xml(&[
            "pool-define-as",
            "r",
            "rbd",
            "--secret-usage",
            "a",
            "--secret-uuid",
            "b"
        ]),
        Err("Options --secret-usage and --secret-uuid are mutually exclusive".to_owned())
    );
    assert_eq!(
        xml(&["pool-define-as", "r", "rbd", "--target", ""]),
        Err("Failed to get option 'target': Option argument is empty".to_owned())
    );
}

#[test]
fn define_as_escapes_values() {
    assert_eq!(
        xml(&["pool-define-as", "a&b", "dir", "--target", "/x<y>'"]),
        Ok("<pool type='dir'>\n  <name>a&amp;b</name>\n  <target>\n    <path>/x&lt;y&gt;&apos;</path>\n  </target>\n</pool>\n".to_owned())
    );
}

fn filter(words: &[&str]) -> Result<pb::PoolListFilter, String> {
    pool_list_filter(&inv(words)).map_err(|e| e.to_string())
}

#[test]
fn list_flags_become_filters() {
    assert_eq!(
        filter(&["pool-list"]),
        Ok(pb::PoolListFilter {
            active: Some(true),
            ..Default::default()
        })
    );
    assert_eq!(
        filter(&["pool-list", "--inactive"]).map(|f| f.active),
        Ok(Some(false))
    );
    assert_eq!(filter(&["pool-list", "--all"]).map(|f| f.active), Ok(None));
    let f = filter(&["pool-list", "--all", "--persistent", "--no-autostart"]).expect("filter");
    assert_eq!((f.persistent, f.autostart), (Some(true), Some(false)));
    let f = filter(&["pool-list", "--transient", "--autostart"]).expect("filter");
    assert_eq!((f.persistent, f.autostart), (Some(false), Some(true)));
    let f = filter(&["pool-list", "--persistent", "--transient"]).expect("filter");
    assert_eq!(f.persistent, None);
    let f = filter(&["pool-list", "--type", "dir,iscsi-direct,dir,netfs"]).expect("filter");
    assert_eq!(
        f.types,
        vec![
            pb::PoolType::Dir as i32,
            pb::PoolType::IscsiDirect as i32,
            pb::PoolType::Netfs as i32
        ]
    );
    assert_eq!(
        filter(&["pool-list", "--all", "--inactive"]),
        Err("Options --all and --inactive are mutually exclusive".to_owned())
    );
    assert_eq!(
        filter(&["pool-list", "--type", "dir,nope"]),
        Err("Invalid pool type 'nope'".to_owned())
    );
    assert_eq!(
        filter(&["pool-list", "--type", "dir,"]),
        Err("Invalid pool type ''".to_owned())
    );
    assert_eq!(split_commas("a,,b,c"), ["a,b", "c"]);
}

#[test]
fn build_flags_are_exclusive() {
    assert_eq!(
        build_flags(&inv(&["pool-start", "p", "--build", "--overwrite"])).ok(),
        Some((true, true, false))
    );
    assert_eq!(
        build_flags(&inv(&["pool-create", "f", "--no-overwrite"])).ok(),
        Some((false, false, true))
    );
    assert_eq!(
        build_flags(&inv(&["pool-start", "p", "--overwrite", "--no-overwrite"]))
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("Options --overwrite and --no-overwrite are mutually exclusive")
    );
}

#[test]
fn info_lines() {
    let p = pb::Pool {
        name: "default".into(),
        uuid: U_DEFAULT.into(),
        active: true,
        persistent: true,
        autostart: false,
    };
    let info = pb::GetPoolInfoResponse {
        state: pb::PoolState::Running as i32,
        capacity: 10 << 30,
        allocation: 5 << 29,
        available: 1536,
    };
    assert_eq!(
        pool_info_lines(&p, &info, false),
        "State:          running\n\
         Persistent:     yes\n\
         Autostart:      no\n\
         Capacity:       10.00 GiB\n\
         Allocation:     2.50 GiB\n\
         Available:      1.50 KiB\n"
    );
    assert!(pool_info_lines(&p, &info, true).ends_with(
        "Capacity:       10737418240\nAllocation:     2684354560\nAvailable:      1536\n"
    ));
    let off = pb::GetPoolInfoResponse::default();
    assert_eq!(
        pool_info_lines(&p, &off, false),
        "State:          inactive\nPersistent:     yes\nAutostart:      no\n"
    );
    assert_eq!(pool_state_str(3), "degraded");
    assert_eq!(pool_state_str(4), "inaccessible");
    assert_eq!(pool_state_str(17), "unknown");
}

#[test]
fn help_of_pool_commands() {
    let def = crate::commands::TABLE
        .lookup("pool-start")
        .expect("defined");
    assert_eq!(
        command_help(def),
        "  NAME\n\
         \x20   pool-start - start a (previously defined) inactive pool\n\
         \n  SYNOPSIS\n\
         \x20   pool-start [--pool] <string> [--build] [--no-overwrite] [--overwrite]\n\
         \n  DESCRIPTION\n\
         \x20   Start a pool.\n\
         \n  OPTIONS\n\
         \x20   [--pool] <string>  pool name or uuid\n\
         \x20   --build          build the pool as normal\n\
         \x20   --no-overwrite   do not overwrite any existing data\n\
         \x20   --overwrite      overwrite any existing data\n\
         \n"
    );
    let text = group_help(&crate::commands::TABLE, Group::Pool);
    assert!(text.starts_with(" Storage Pool (help keyword 'pool'):\n    pool-autostart "));
    assert!(
        text.contains("    pool-list                      list pools\n"),
        "{text}"
    );
    let def = crate::commands::TABLE.lookup("pool-name").expect("defined");
    assert!(!command_help(def).contains("DESCRIPTION"));
}

// ---- Against the fake daemon ----

const LIST_ALL: &str = " Name      State      Autostart\n\
---------------------------------\n \
bad       active     no\n \
default   active     yes\n \
images    inactive   no\n \
scratch   active     no\n";

#[tokio::test]
async fn list_tables() {
    let mut h = Harness::new();
    h.ok("pool-list --all", LIST_ALL).await;
    h.ok(
        "pool-list",
        " Name      State    Autostart\n\
         -------------------------------\n \
         bad       active   no\n \
         default   active   yes\n \
         scratch   active   no\n",
    )
    .await;
    h.ok(
        "pool-list --inactive",
        " Name     State      Autostart\n\
         --------------------------------\n \
         images   inactive   no\n",
    )
    .await;
    let calls = h
        .ok(
            "pool-list --all --type fs,dir --transient",
            " Name      State    Autostart\n\
             -------------------------------\n \
             scratch   active   no\n",
        )
        .await;
    assert!(calls[0].contains("persistent: Some(false)"), "{calls:?}");
    h.ok(
        "pool-list --autostart --type logical",
        " Name   State   Autostart\n---------------------------\n",
    )
    .await;
    h.ctl.settings.quiet = true;
    let (ok, out, _, _) = h.run("pool-list --inactive").await;
    assert!(ok);
    assert_eq!(out, " images   inactive   no\n");
}

#[tokio::test]
async fn list_details() {
    let mut h = Harness::new();
    let (ok, out, err, _) = h.run("pool-list --all --details").await;
    assert!(ok, "{err}");
    // `bad` has no info: virsh says so and goes on.
    assert_eq!(err, "error: Could not retrieve pool information\n");
    assert_eq!(
        out,
        " Name      State      Autostart   Persistent   Capacity    Allocation   Available\n\
         -----------------------------------------------------------------------------------\n \
         bad       unknown    no          yes          unknown     unknown      unknown\n \
         default   running    yes         yes          10.00 GiB   2.50 GiB     7.50 GiB\n \
         images    inactive   no          yes          -           -            -\n \
         scratch   running    no          no           1000.00 B   0.00 B       1000.00 B\n\n"
    );
    h.fails(
        "pool-list --details --name",
        "error: Options --details and --name are mutually exclusive\n",
    )
    .await;
}

#[tokio::test]
async fn list_names_and_uuids() {
    let mut h = Harness::new();
    h.ok(
        "pool-list --name --all",
        "bad                 \ndefault             \nimages              \nscratch             \n",
    )
    .await;
    h.ok(
        "pool-list --uuid",
        &format!("{U_BAD}\n{U_DEFAULT}\n{U_SCRATCH}\n"),
    )
    .await;
    h.ok(
        "pool-list --uuid --name --inactive",
        &format!("{U_IMAGES} images              \n"),
    )
    .await;
}

#[tokio::test]
async fn info_and_lookups() {
    let mut h = Harness::new();
    h.ok(
        "pool-info default",
        &format!(
            "Name:           default\n\
             UUID:           {U_DEFAULT}\n\
             State:          running\n\
             Persistent:     yes\n\
             Autostart:      yes\n\
             Capacity:       10.00 GiB\n\
             Allocation:     2.50 GiB\n\
             Available:      7.50 GiB\n"
        ),
    )
    .await;
    h.ok(
        &format!("pool-info {U_IMAGES} --bytes"),
        &format!(
            "Name:           images\n\
             UUID:           {U_IMAGES}\n\
             State:          inactive\n\
             Persistent:     yes\n\
             Autostart:      no\n"
        ),
    )
    .await;
    h.fails_after(
        "pool-info bad",
        &format!("Name:           bad\nUUID:           {U_BAD}\n"),
        "error: operation failed: cannot read pool 'bad'\n",
    )
    .await;
    h.fails(
        "pool-info nosuch",
        "error: failed to get pool 'nosuch'\n\
         error: Storage pool not found: no storage pool with matching name 'nosuch'\n",
    )
    .await;
    h.ok(&format!("pool-name {U_SCRATCH}"), "scratch\n").await;
    h.ok("pool-uuid scratch", &format!("{U_SCRATCH}\n")).await;
    // pool-name takes UUIDs only, pool-uuid names only.
    h.fails("pool-name scratch", "error: failed to get pool 'scratch'\n")
        .await;
    h.fails(
        &format!("pool-uuid {U_SCRATCH}"),
        &format!(
            "error: failed to get pool '{U_SCRATCH}'\n\
             error: Storage pool not found: no storage pool with matching name '{U_SCRATCH}'\n"
        ),
    )
    .await;
    h.fails(
        "pool-info ''",
        "error: Failed to get option 'pool': Option argument is empty\n",
    )
    .await;
}

#[tokio::test]
async fn operations_print_virsh_lines() {
    let mut h = Harness::new();
    for (cmd, line) in [
        ("pool-build images --overwrite", "Pool images built\n"),
        ("pool-start images", "Pool images started\n"),
        ("pool-refresh images", "Pool images refreshed\n"),
        ("pool-destroy images", "Pool images destroyed\n"),
        ("pool-delete images", "Pool images deleted\n"),
        ("pool-undefine images", "Pool images has been undefined\n"),
        (
            "pool-autostart images",
            "Pool images marked as autostarted\n",
        ),
        (
            "pool-autostart images --disable",
            "Pool images unmarked as autostarted\n",
        ),
    ] {
        let calls = h.ok(cmd, line).await;
        assert_eq!(calls.len(), 1, "{cmd}: {calls:?}");
        assert!(calls[0].contains(U_IMAGES), "{cmd}: {calls:?}");
    }
    // Named as given: here by UUID.
    h.ok(
        &format!("pool-refresh {U_DEFAULT}"),
        &format!("Pool {U_DEFAULT} refreshed\n"),
    )
    .await;
    let calls = h
        .ok(
            "pool-start images --build --no-overwrite",
            "Pool images started\n",
        )
        .await;
    assert!(
        calls[0].contains("build: true, build_overwrite: false, build_no_overwrite: true"),
        "{calls:?}"
    );
    for (cmd, first, verb) in [
        ("pool-build bad", "Failed to build pool bad", "build"),
        ("pool-start bad", "Failed to start pool bad", "start"),
        ("pool-refresh bad", "Failed to refresh pool bad", "refresh"),
        ("pool-destroy bad", "Failed to destroy pool bad", "destroy"),
        ("pool-delete bad", "Failed to delete pool bad", "delete"),
        (
            "pool-undefine bad",
            "Failed to undefine pool bad",
            "undefine",
        ),
        (
            "pool-autostart bad",
            "failed to mark pool bad as autostarted",
            "set autostart of",
        ),
        (
            "pool-autostart bad --disable",
            "failed to unmark pool bad as autostarted",
            "set autostart of",
        ),
    ] {
        h.fails(
            cmd,
            &format!("error: {first}\nerror: operation failed: cannot {verb} pool 'bad'\n"),
        )
        .await;
    }
    let calls = h
        .fails(
            "pool-start images --overwrite --no-overwrite",
            "error: Options --overwrite and --no-overwrite are mutually exclusive\n",
        )
        .await;
    assert!(calls.is_empty());
    h.ctl.settings.quiet = true;
    let (ok, out, err, _) = h.run("pool-refresh default").await;
    assert!(ok, "{err}");
    assert_eq!(out, "");
}

#[tokio::test]
async fn define_and_create() {
    let mut h = Harness::new();
    let good = h.file("p.xml", b"<pool type='dir'><name>newpool</name></pool>");
    let calls = h
        .ok(
            &format!("pool-define {good} --validate"),
            &format!("Pool newpool defined from {good}\n"),
        )
        .await;
    assert!(calls[0].contains("validate: true"), "{calls:?}");
    let calls = h
        .ok(
            &format!("pool-create {good} --build --overwrite"),
            &format!("Pool newpool created from {good}\n"),
        )
        .await;
    assert!(
        calls[0].contains("build: true, build_overwrite: true, build_no_overwrite: false"),
        "{calls:?}"
    );
    let bad = h.file("bad.xml", b"<pool type='dir'><name>bad</name></pool>");
    h.fails(
        &format!("pool-define {bad}"),
        &format!(
            "error: Failed to define pool from {bad}\n\
             error: operation failed: pool 'bad' already exists with uuid {U_BAD}\n"
        ),
    )
    .await;
    h.fails(
        &format!("pool-create {bad}"),
        &format!(
            "error: Failed to create pool from {bad}\n\
             error: operation failed: pool 'bad' already exists with uuid {U_BAD}\n"
        ),
    )
    .await;
    h.fails(
        "pool-define /nonexistent/p.xml",
        "error: Failed to open file '/nonexistent/p.xml': No such file or directory\n",
    )
    .await;

    let calls = h
        .ok(
            "pool-define-as p2 dir --target /srv/p2",
            "Pool p2 defined\n",
        )
        .await;
    assert!(
        calls[0].contains(
            r#"xml: "<pool type='dir'>\n  <name>p2</name>\n  <target>\n    <path>/srv/p2</path>"#
        ),
        "{calls:?}"
    );
    h.ok("pool-create-as p3 dir --build", "Pool p3 created\n")
        .await;
    h.fails(
        "pool-define-as bad dir",
        &format!(
            "error: Failed to define pool bad\n\
             error: operation failed: pool 'bad' already exists with uuid {U_BAD}\n"
        ),
    )
    .await;
    h.fails(
        "pool-create-as bad dir",
        &format!(
            "error: Failed to create pool bad\n\
             error: operation failed: pool 'bad' already exists with uuid {U_BAD}\n"
        ),
    )
    .await;
    // --print-xml prints (even with -q) and calls nothing.
    h.ctl.settings.quiet = true;
    let (ok, out, _, calls) = h
        .run("pool-define-as p dir - - - - /images --print-xml")
        .await;
    assert!(ok);
    assert!(calls.is_empty());
    assert_eq!(
        out,
        "<pool type='dir'>\n  <name>p</name>\n  <source>\n    <host name='-'/>\n    <dir path='-'/>\n    <device path='-'/>\n    <name>-</name>\n  </source>\n  <target>\n    <path>/images</path>\n  </target>\n</pool>\n"
    );
}

#[tokio::test]
async fn dumpxml() {
    let mut h = Harness::new();
    let calls = h
        .ok(
            "pool-dumpxml default --inactive",
            &format!(
                "<pool type='dir'>\n  <name>default</name>\n  <uuid>{U_DEFAULT}</uuid>\n</pool>\n"
            ),
        )
        .await;
    assert!(calls[0].contains("inactive: true"), "{calls:?}");
}
