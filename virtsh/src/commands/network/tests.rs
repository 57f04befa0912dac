//! Tests of the network commands and `domifaddr`: option parsing, help,
//! the list filter, the pure formatting helpers, and the exact lines
//! against the fake `NetworkService` and `DomainService`.

use super::fake::{EXPIRY, Harness, PORTS, U_BAD, U_DEFAULT, U_ISOLATED, U_TMP, U_VM1};
use super::ifaddr::{Iface, NetNic, Source, header, network_nics, rows};
use super::*;
use crate::cli::{command_help, group_help, parse_command};

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
fn list_flags_become_filters() {
    let f = |w: &[&str]| net_list_filter(&inv(w));
    assert_eq!(
        f(&["net-list"]),
        pb::NetworkListFilter {
            active: Some(true),
            ..Default::default()
        }
    );
    assert_eq!(f(&["net-list", "--inactive"]).active, Some(false));
    assert_eq!(f(&["net-list", "--all"]).active, None);
    // virsh lets --all win over --inactive.
    assert_eq!(f(&["net-list", "--all", "--inactive"]).active, None);
    let x = f(&["net-list", "--persistent", "--no-autostart"]);
    assert_eq!((x.persistent, x.autostart), (Some(true), Some(false)));
    let x = f(&["net-list", "--transient", "--autostart"]);
    assert_eq!((x.persistent, x.autostart), (Some(false), Some(true)));
    let x = f(&["net-list", "--transient", "--persistent"]);
    assert_eq!(x.persistent, None);
}

#[test]
fn update_names_are_libvirts() {
    use pb::NetworkUpdateCommand as C;
    assert_eq!(update_command("add"), Some(C::AddLast));
    assert_eq!(update_command("add-last"), Some(C::AddLast));
    assert_eq!(update_command("add-first"), Some(C::AddFirst));
    assert_eq!(update_command("delete"), Some(C::Delete));
    assert_eq!(update_command("modify"), Some(C::Modify));
    assert_eq!(update_command("none"), None);
    // Every section name maps to libvirt's number (1..=12, in order).
    for (i, (_, s)) in SECTIONS.iter().enumerate() {
        assert_eq!(*s as usize, i + 1);
    }
    assert_eq!(
        update_line("n", true, true, false),
        "Updated network n persistent config and live state"
    );
    assert_eq!(
        update_line("n", false, true, true),
        "Updated network n persistent config"
    );
    assert_eq!(
        update_line("n", true, false, false),
        "Updated network n live state"
    );
    assert_eq!(
        update_line("n", false, false, true),
        "Updated network n live state"
    );
    assert_eq!(
        update_line("n", false, false, false),
        "Updated network n persistent config"
    );
}

#[test]
fn info_lines_and_titles() {
    let n = pb::Network {
        name: "default".into(),
        uuid: U_DEFAULT.into(),
        active: true,
        persistent: true,
        autostart: false,
        bridge: "virbr0".into(),
    };
    assert_eq!(
        net_info_lines(&n),
        format!(
            "Name:           default\n\
             UUID:           {U_DEFAULT}\n\
             Active:         yes\n\
             Persistent:     yes\n\
             Autostart:      no\n\
             Bridge:         virbr0\n"
        )
    );
    let n = pb::Network {
        bridge: String::new(),
        ..n
    };
    assert!(net_info_lines(&n).ends_with("Autostart:      no\n"));
    assert_eq!(
        title_of("<network><name>a</name><title>T &amp; t</title></network>"),
        "T & t"
    );
    assert_eq!(title_of("<network><name>a</name></network>"), "");
    assert_eq!(title_of("not xml"), "");
}

#[test]
fn expiry_is_local_time_without_zone() {
    let s = local_time(EXPIRY);
    let b = s.as_bytes();
    assert_eq!(b.len(), 19, "{s}");
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16]),
        (b'-', b'-', b' ', b':', b':')
    );
    assert!(s.starts_with("2023-11-1"), "{s}");
}

#[test]
fn leases_sort_by_mac_and_fill_blanks() {
    let t = leases_table(&fake::leases(), |_| "T".to_owned());
    assert_eq!(
        t.render(true),
        " Expiry Time   MAC address         Protocol   IP address          Hostname   Client ID or DUID\n\
         ---------------------------------------------------------------------------------------------------\n \
         T             52:54:00:AA:00:01   ipv4       192.168.122.10/24   guest1     01:52:54:00:aa:00:01\n \
         T             52:54:00:aa:00:01   ipv6       fd00::10/64         guest1     00:04:aa\n \
         T             52:54:00:bb:00:02   ipv4       192.168.122.20/24   -          -\n"
    );
    assert_eq!(addr_type_str(7), "-");
}

#[test]
fn nics_on_networks_from_the_domain_xml() {
    let xml = "<domain><name>d</name><devices>\
        <interface type='network'><mac address='52:54:00:AB:CD:EF'/><source network='n1'/><target dev='vnet4'/></interface>\
        <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/></interface>\
        <interface type='network'><mac address='52:54:00:00:00:02'/><source network='n2'/></interface>\
        <interface type='network'><source network='n3'/></interface>\
        <disk type='file'/></devices></domain>";
    assert_eq!(
        network_nics(xml).expect("parses"),
        vec![
            NetNic {
                dev: "vnet4".into(),
                mac: "52:54:00:ab:cd:ef".into(),
                network: "n1".into()
            },
            NetNic {
                dev: String::new(),
                mac: "52:54:00:00:00:02".into(),
                network: "n2".into()
            },
        ]
    );
    assert_eq!(network_nics("<domain/>").expect("parses"), vec![]);
    assert!(network_nics("<domain>").is_err());
}

#[test]
fn domifaddr_layout() {
    assert_eq!(
        header(),
        format!(
            " Name       MAC address          Protocol     Address\n{}\n",
            "-".repeat(79)
        )
    );
    let ifaces = vec![
        Iface {
            name: "vnet0".into(),
            hwaddr: "52:54:00:aa:00:01".into(),
            addrs: vec![(0, "192.168.122.10".into(), 24), (1, "fd00::10".into(), 64)],
        },
        Iface {
            name: "vnet1".into(),
            hwaddr: String::new(),
            addrs: vec![],
        },
    ];
    assert_eq!(
        rows(&ifaces, None, false),
        " vnet0      52:54:00:aa:00:01    ipv4         192.168.122.10/24\n \
         -          -                    ipv6         fd00::10/64\n \
         vnet1      N/A                  N/A          N/A\n"
    );
    assert_eq!(
        rows(&ifaces, Some("vnet0"), true),
        " vnet0      52:54:00:aa:00:01    ipv4         192.168.122.10/24\n \
         vnet0      52:54:00:aa:00:01    ipv6         fd00::10/64\n"
    );
    assert_eq!(rows(&ifaces, Some("eth0"), true), "");
    assert_eq!(Source::parse("arp").ok(), Some(Source::Arp));
    assert_eq!(
        Source::parse("dhcp")
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("Unknown data source 'dhcp'")
    );
}

#[test]
fn help_of_network_commands() {
    let def = crate::commands::TABLE
        .lookup("net-update")
        .expect("defined");
    assert_eq!(
        command_help(def),
        "  NAME\n\
         \x20   net-update - update parts of an existing network's configuration\n\
         \n  SYNOPSIS\n\
         \x20   net-update [--network] <string> [--command] <string> [--section] <string> [--xml] <string> [--parent-index <number>] [--config] [--live] [--current]\n\
         \n  OPTIONS\n\
         \x20   [--network] <string>  network name or uuid\n\
         \x20   [--command] <string>  type of update (add-first, add-last (add), delete, or modify)\n\
         \x20   [--section] <string>  which section of network configuration to update\n\
         \x20   [--xml] <string>  name of file containing xml (or, if it starts with '<', the complete xml element itself) to add/modify, or to be matched for search\n\
         \x20   --parent-index <number>  which parent object to search through\n\
         \x20   --config         affect next network startup\n\
         \x20   --live           affect running network\n\
         \x20   --current        affect current state of network\n\
         \n"
    );
    let text = group_help(&crate::commands::TABLE, Group::Network);
    assert!(
        text.starts_with(" Networking (help keyword 'network'):\n    net-autostart "),
        "{text}"
    );
    assert!(
        text.contains("    net-list                       list networks\n"),
        "{text}"
    );
    let monitor = group_help(&crate::commands::TABLE, Group::Monitor);
    assert!(
        monitor.contains(
            "    domifaddr                      Get network interfaces' addresses for a running domain\n"
        ),
        "{monitor}"
    );
    assert_eq!(
        parse(&["net-update", "n", "add"]).err().as_deref(),
        Some("command 'net-update' requires <section> option")
    );
    assert_eq!(
        parse(&["net-port-delete", "n"]).err().as_deref(),
        Some("command 'net-port-delete' requires <port> option")
    );
}

// ---- Against the fakes ----

#[tokio::test]
async fn list_tables() {
    let mut h = Harness::new();
    h.ok(
        "net-list",
        " Name      State    Autostart   Persistent\n\
         --------------------------------------------\n \
         bad       active   no          yes\n \
         default   active   yes         yes\n \
         tmp       active   no          no\n",
    )
    .await;
    h.ok(
        "net-list --all --table",
        " Name       State      Autostart   Persistent\n\
         -----------------------------------------------\n \
         bad        active     no          yes\n \
         default    active     yes         yes\n \
         isolated   inactive   no          yes\n \
         tmp        active     no          no\n",
    )
    .await;
    h.ok(
        "net-list --inactive",
        " Name       State      Autostart   Persistent\n\
         -----------------------------------------------\n \
         isolated   inactive   no          yes\n",
    )
    .await;
    let calls = h
        .ok(
            "net-list --all --transient",
            " Name   State    Autostart   Persistent\n\
             -----------------------------------------\n \
             tmp    active   no          no\n",
        )
        .await;
    assert!(calls[0].contains("persistent: Some(false)"), "{calls:?}");
    h.ok(
        "net-list --autostart --inactive",
        " Name   State   Autostart   Persistent\n\
         ----------------------------------------\n",
    )
    .await;
    h.ok(
        "net-list --all --title --persistent",
        " Name       State      Autostart   Persistent   Title\n\
         -----------------------------------------------------------------\n \
         bad        active     no          yes\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\n \
         default    active     yes         yes          Default network\n \
         isolated   inactive   no          yes\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\n",
    )
    .await;
    h.ctl.settings.quiet = true;
    let (ok, out, _, _) = h.run("net-list --inactive").await;
    assert!(ok);
    assert_eq!(out, " isolated   inactive   no   yes\n");
}

#[tokio::test]
async fn list_names_and_uuids() {
    let mut h = Harness::new();
    h.ok("net-list --name --all", "bad\ndefault\nisolated\ntmp\n")
        .await;
    h.ok(
        "net-list --uuid",
        &format!("{U_BAD}\n{U_DEFAULT}\n{U_TMP}\n"),
    )
    .await;
    let calls = h
        .fails(
            "net-list --uuid --name",
            "error: Only one argument from --table, --name and --uuid may be specified.\n",
        )
        .await;
    assert!(calls.is_empty());
    h.fails(
        "net-list --table --name",
        "error: Only one argument from --table, --name and --uuid may be specified.\n",
    )
    .await;
}

#[tokio::test]
async fn info_and_lookups() {
    let mut h = Harness::new();
    h.ok(
        "net-info default",
        &format!(
            "Name:           default\n\
             UUID:           {U_DEFAULT}\n\
             Active:         yes\n\
             Persistent:     yes\n\
             Autostart:      yes\n\
             Bridge:         virbr0\n"
        ),
    )
    .await;
    h.ok(
        &format!("net-info {U_BAD}"),
        &format!(
            "Name:           bad\n\
             UUID:           {U_BAD}\n\
             Active:         yes\n\
             Persistent:     yes\n\
             Autostart:      no\n"
        ),
    )
    .await;
    h.fails(
        "net-info nosuch",
        "error: failed to get network 'nosuch'\n\
         error: Network not found: no network with matching name 'nosuch'\n",
    )
    .await;
    h.ok(&format!("net-name {U_ISOLATED}"), "isolated\n").await;
    h.ok("net-uuid isolated", &format!("{U_ISOLATED}\n")).await;
    // net-name takes UUIDs only, net-uuid names only.
    h.fails(
        "net-name isolated",
        "error: failed to get network 'isolated'\n",
    )
    .await;
    h.fails(
        &format!("net-uuid {U_TMP}"),
        &format!(
            "error: failed to get network '{U_TMP}'\n\
             error: Network not found: no network with matching name '{U_TMP}'\n"
        ),
    )
    .await;
    h.fails(
        "net-info ''",
        "error: Failed to get option 'network': Option argument is empty\n",
    )
    .await;
}

#[tokio::test]
async fn operations_print_virsh_lines() {
    let mut h = Harness::new();
    for (cmd, line) in [
        ("net-start isolated", "Network isolated started\n"),
        ("net-destroy isolated", "Network isolated destroyed\n"),
        (
            "net-undefine isolated",
            "Network isolated has been undefined\n",
        ),
        (
            "net-autostart isolated",
            "Network isolated marked as autostarted\n",
        ),
        (
            "net-autostart isolated --disable",
            "Network isolated unmarked as autostarted\n",
        ),
    ] {
        let calls = h.ok(cmd, line).await;
        assert_eq!(calls.len(), 1, "{cmd}: {calls:?}");
        assert!(calls[0].contains(U_ISOLATED), "{cmd}: {calls:?}");
    }
    // Named as given: here by UUID.
    h.ok(
        &format!("net-start {U_ISOLATED}"),
        &format!("Network {U_ISOLATED} started\n"),
    )
    .await;
    for (cmd, first, verb) in [
        ("net-start bad", "Failed to start network bad", "start"),
        (
            "net-destroy bad",
            "Failed to destroy network bad",
            "destroy",
        ),
        (
            "net-undefine bad",
            "Failed to undefine network bad",
            "undefine",
        ),
        (
            "net-autostart bad",
            "failed to mark network bad as autostarted",
            "set autostart of",
        ),
        (
            "net-autostart bad --disable",
            "failed to unmark network bad as autostarted",
            "set autostart of",
        ),
    ] {
        h.fails(
            cmd,
            &format!("error: {first}\nerror: operation failed: cannot {verb} network 'bad'\n"),
        )
        .await;
    }
    h.ctl.settings.quiet = true;
    let (ok, out, err, _) = h.run("net-destroy tmp").await;
    assert!(ok, "{err}");
    assert_eq!(out, "");
}

#[tokio::test]
async fn define_create_and_dumpxml() {
    let mut h = Harness::new();
    let good = h.file("n.xml", "<network><name>newnet</name></network>");
    let calls = h
        .ok(
            &format!("net-define {good} --validate"),
            &format!("Network newnet defined from {good}\n"),
        )
        .await;
    assert!(calls[0].contains("validate: true"), "{calls:?}");
    let calls = h
        .ok(
            &format!("net-create --file {good}"),
            &format!("Network newnet created from {good}\n"),
        )
        .await;
    assert!(calls[0].contains("validate: false"), "{calls:?}");
    let bad = h.file("bad.xml", "<network><name>bad</name></network>");
    for (cmd, verb) in [("net-define", "define"), ("net-create", "create")] {
        h.fails(
            &format!("{cmd} {bad}"),
            &format!(
                "error: Failed to {verb} network from {bad}\n\
                 error: operation failed: network 'bad' already exists with uuid {U_BAD}\n"
            ),
        )
        .await;
    }
    h.fails(
        "net-define /nonexistent/n.xml",
        "error: Failed to open file '/nonexistent/n.xml': No such file or directory\n",
    )
    .await;

    let calls = h
        .ok(
            "net-dumpxml default --inactive",
            &format!(
                "<network>\n  <name>default</name>\n  <uuid>{U_DEFAULT}</uuid>\n  <title>Default network</title>\n</network>\n"
            ),
        )
        .await;
    assert!(calls[0].contains("inactive: true"), "{calls:?}");
    h.ok(
        "net-dumpxml tmp",
        &format!(
            "<network connections='1'>\n  <name>tmp</name>\n  <uuid>{U_TMP}</uuid>\n</network>\n"
        ),
    )
    .await;
}

#[tokio::test]
async fn update_sections_and_lines() {
    let mut h = Harness::new();
    let host = "<host mac='52:54:00:00:00:07' name='h7' ip='192.168.122.7'/>";
    let calls = h
        .ok(
            &format!("net-update default add ip-dhcp-host \"{host}\" --live --config"),
            "Updated network default persistent config and live state",
        )
        .await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    for part in [
        "command: AddLast,",
        "section: IpDhcpHost,",
        "parent_index: -1,",
        "live: true, config: true",
        "h7",
        U_DEFAULT,
    ] {
        assert!(calls[0].contains(part), "{part}: {calls:?}");
    }
    // From a file; the current state (the network runs).
    let f = h.file("srv.xml", "<srv service='http' protocol='tcp'/>");
    let calls = h
        .ok(
            &format!("net-update default add-first dns-srv {f} --parent-index 2"),
            "Updated network default live state",
        )
        .await;
    assert!(
        calls[0].contains("command: AddFirst, section: DnsSrv, parent_index: 2,"),
        "{calls:?}"
    );
    assert!(calls[0].contains("live: false, config: false"), "{calls:?}");
    // Current state of an inactive network: its persistent config.
    h.ok(
        "net-update isolated delete dns-host '<host ip=\"10.0.0.1\"/>' --current",
        "Updated network isolated persistent config",
    )
    .await;
    h.ok(
        &format!("net-update {U_ISOLATED} modify portgroup '<portgroup name=\"p\"/>' --config"),
        "Updated network isolated persistent config",
    )
    .await;
    h.ok(
        "net-update tmp modify ip-dhcp-range '<range/>' --live",
        "Updated network tmp live state",
    )
    .await;

    for (cmd, err) in [
        (
            "net-update default insert dns-host '<host/>'",
            "error: unrecognized command name 'insert'\n",
        ),
        (
            "net-update default none dns-host '<host/>'",
            "error: unrecognized command name 'none'\n",
        ),
        (
            "net-update default add dns '<host/>'",
            "error: unrecognized section name 'dns'\n",
        ),
        (
            "net-update default add dns-host '<host/>' --current --live",
            "error: Options --current and --live are mutually exclusive\n",
        ),
        (
            "net-update default add dns-host '<host/>' --config --current",
            "error: Options --current and --config are mutually exclusive\n",
        ),
        (
            "net-update default add dns-host '<host/>' --parent-index x",
            "error: Numeric value 'x' for <parent-index> option is malformed or out of range\n",
        ),
        (
            "net-update default add dns-host /nonexistent/h.xml",
            "error: Failed to open file '/nonexistent/h.xml': No such file or directory\n",
        ),
        (
            "net-update bad add dns-host '<host/>'",
            "error: Failed to update network bad\n\
             error: operation failed: cannot update network 'bad'\n",
        ),
        (
            "net-update nosuch add dns-host '<host/>'",
            "error: failed to get network 'nosuch'\n\
             error: Network not found: no network with matching name 'nosuch'\n",
        ),
    ] {
        h.fails(cmd, err).await;
    }
    h.ctl.settings.quiet = true;
    let (ok, out, err, _) = h.run("net-update default add dns-host '<host/>'").await;
    assert!(ok, "{err}");
    assert_eq!(out, "");
}

#[tokio::test]
async fn dhcp_leases() {
    let mut h = Harness::new();
    let t = local_time(EXPIRY);
    let calls = h
        .ok(
            "net-dhcp-leases default",
            &format!(
                " Expiry Time           MAC address         Protocol   IP address          Hostname   Client ID or DUID\n\
                 -----------------------------------------------------------------------------------------------------------\n \
                 {t}   52:54:00:AA:00:01   ipv4       192.168.122.10/24   guest1     01:52:54:00:aa:00:01\n \
                 {t}   52:54:00:aa:00:01   ipv6       fd00::10/64         guest1     00:04:aa\n \
                 {t}   52:54:00:bb:00:02   ipv4       192.168.122.20/24   -          -\n"
            ),
        )
        .await;
    assert!(calls[0].contains("mac: None"), "{calls:?}");
    let calls = h
        .ok(
            "net-dhcp-leases default --mac 52:54:00:BB:00:02",
            &format!(
                " Expiry Time           MAC address         Protocol   IP address          Hostname   Client ID or DUID\n\
                 --------------------------------------------------------------------------------------------------------\n \
                 {t}   52:54:00:bb:00:02   ipv4       192.168.122.20/24   -          -\n"
            ),
        )
        .await;
    assert!(
        calls[0].contains("mac: Some(\"52:54:00:BB:00:02\")"),
        "{calls:?}"
    );
    h.ok(
        "net-dhcp-leases tmp",
        " Expiry Time   MAC address   Protocol   IP address   Hostname   Client ID or DUID\n\
         -----------------------------------------------------------------------------------\n",
    )
    .await;
    h.fails(
        "net-dhcp-leases bad",
        "error: Failed to get leases info for bad\n\
         error: operation failed: cannot read leases of network 'bad'\n",
    )
    .await;
    h.fails(
        "net-dhcp-leases default --mac ''",
        "error: Failed to get option 'mac': Option argument is empty\n",
    )
    .await;
}

#[tokio::test]
async fn ports() {
    let mut h = Harness::new();
    let (p2, p1) = (PORTS[0], PORTS[1]);
    h.ok(
        "net-port-list default",
        &format!(
            " UUID\n\
             ---------------------------------------\n \
             {p1}\n \
             {p2}\n"
        ),
    )
    .await;
    h.ok("net-port-list default --uuid", &format!("{p1}\n{p2}\n"))
        .await;
    h.fails(
        "net-port-list default --uuid --table",
        "error: Only one argument from --table and --uuid may be specified.\n",
    )
    .await;
    h.ok(
        &format!("net-port-dumpxml default {p1}"),
        &format!("<networkport>\n  <uuid>{p1}</uuid>\n</networkport>\n"),
    )
    .await;
    h.fails(
        &format!("net-port-dumpxml tmp {p1}"),
        &format!(
            "error: failed to get network port '{p1}'\n\
             error: network port not found: no network port with matching uuid '{p1}'\n"
        ),
    )
    .await;
    h.ok(
        &format!("net-port-delete default {p1}"),
        &format!("Network port {p1} deleted\n"),
    )
    .await;
    h.fails(
        &format!("net-port-delete default {p2}"),
        &format!(
            "error: Failed to delete network port {p2}\n\
             error: Requested operation is not valid: port is in use\n"
        ),
    )
    .await;
    let f = h.file("port.xml", "<networkport/>");
    h.ok(
        &format!("net-port-create default {f} --validate"),
        &format!("Network port eeeeeeee-0000-0000-0000-000000000003 created from {f}\n"),
    )
    .await;
    h.fails(
        &format!("net-port-create bad {f}"),
        &format!(
            "error: Failed to create network from {f}\n\
             error: operation failed: cannot create a port on network 'bad'\n"
        ),
    )
    .await;
}

#[tokio::test]
async fn domifaddr_from_leases() {
    let mut h = Harness::new();
    let head = header();
    let calls = h
        .ok(
            "domifaddr vm1",
            &format!(
                "{head} \
                 vnet0      52:54:00:aa:00:01    ipv4         192.168.122.10/24\n \
                 -          -                    ipv6         fd00::10/64\n \
                 vnet3      52:54:00:bb:00:02    ipv4         192.168.122.20/24\n"
            ),
        )
        .await;
    // One leases call per NIC on a network, by network name and MAC.
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls[0].contains("Name(\"default\")") && calls[0].contains("52:54:00:aa:00:01"),
        "{calls:?}"
    );
    assert!(calls[1].contains("Name(\"isolated\")"), "{calls:?}");
    h.ok(
        &format!("domifaddr {U_VM1} --interface vnet0 --full --source lease"),
        &format!(
            "{head} \
             vnet0      52:54:00:aa:00:01    ipv4         192.168.122.10/24\n \
             vnet0      52:54:00:aa:00:01    ipv6         fd00::10/64\n"
        ),
    )
    .await;
    h.ok("domifaddr vm1 --interface vnet2", &head).await;
    for (cmd, err) in [
        (
            "domifaddr off",
            "error: Failed to query for interfaces addresses\n\
             error: Requested operation is not valid: domain is not running\n",
        ),
        (
            "domifaddr vm1 --source agent",
            "error: Failed to query for interfaces addresses\n\
             error: Operation not supported: address source 'agent' is not supported\n",
        ),
        (
            "domifaddr vm1 --source arp",
            "error: Failed to query for interfaces addresses\n\
             error: Operation not supported: address source 'arp' is not supported\n",
        ),
        (
            "domifaddr vm1 --source dhcp",
            "error: Unknown data source 'dhcp'\n",
        ),
        (
            "domifaddr lost",
            "error: Failed to query for interfaces addresses\n\
             error: Network not found: no network with matching name 'gone'\n",
        ),
        (
            "domifaddr nosuch",
            "error: failed to get domain 'nosuch'\n\
             error: Domain not found: no domain with matching name 'nosuch'\n",
        ),
    ] {
        h.fails(cmd, err).await;
    }
    h.ctl.settings.quiet = true;
    let (ok, out, err, _) = h.run("domifaddr vm1 --interface vnet3").await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        " vnet3      52:54:00:bb:00:02    ipv4         192.168.122.20/24\n"
    );
}
