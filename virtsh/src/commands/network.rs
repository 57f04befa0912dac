//! "Networking" commands (`tools/virsh-network.c`): `net-define`,
//! `net-create`, `net-start`, `net-destroy`, `net-undefine`,
//! `net-autostart`, `net-list`, `net-info`, `net-dumpxml`, `net-uuid`,
//! `net-name`, `net-update`, `net-dhcp-leases` and the port commands
//! `net-port-create`, `net-port-list`, `net-port-dumpxml`,
//! `net-port-delete`; and `domifaddr` of "Domain Monitoring" ([`ifaddr`]),
//! whose lease source is put together here from virtqemud's domain XML and
//! virtnetworkd's leases.
//!
//! As in virsh, the success lines are `vshPrintExtra` output (silenced by
//! `-q`) naming the network as the user wrote it (except `net-create`,
//! `net-define` and `net-update`, which print the network's real name),
//! and a failed call prints virsh's line first (`error: Failed to start
//! network n`), then the daemon's message.

use proto::network::v1 as pb;
use proto::network::v1::network_service_client::NetworkServiceClient;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{exclusive, print_extra, read_xml_file, string_req};
use crate::commands::storage::{print_xml, sort_by_name};
use crate::connection::VirtChannel;
use crate::ctl::Ctl;
use crate::error::Error;
use crate::table::Table;

pub mod ifaddr;

/// The client every network command uses.
pub(crate) type Client = NetworkServiceClient<VirtChannel>;

/// Look the network up by UUID (virsh's `VIRSH_BYUUID`).
const BY_UUID: u8 = 1;
/// Look the network up by name (virsh's `VIRSH_BYNAME`).
const BY_NAME: u8 = 2;
/// Both, in virsh's order.
const BY_ANY: u8 = BY_UUID | BY_NAME;

/// virsh's `VIRSH_COMMON_OPT_NETWORK_FULL`.
const OPT_NETWORK: OptDef = OptDef::string("network", "network name or uuid")
    .required()
    .positional();
/// `--file` of `net-create` and `net-define`.
const OPT_FILE: OptDef = OptDef::string("file", "file containing an XML network description")
    .required()
    .positional();
/// `--validate` of the commands reading an XML file.
const OPT_VALIDATE: OptDef = OptDef::flag("validate", "validate the XML against the schema");
/// virsh's `VIRSH_COMMON_OPT_NETWORK_PORT`.
const OPT_PORT: OptDef = OptDef::string("port", "port UUID").required().positional();

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "net-autostart",
        Group::Network,
        "autostart a network",
        "Configure a network to be automatically started at boot.",
        cmd_net_autostart,
    )
    .opts(&[OPT_NETWORK, OptDef::flag("disable", "disable autostarting")]),
    CommandDef::new(
        "net-create",
        Group::Network,
        "create a network from an XML file",
        "Create a network.",
        cmd_net_create,
    )
    .opts(&[OPT_FILE, OPT_VALIDATE]),
    CommandDef::new(
        "net-define",
        Group::Network,
        "define an inactive persistent virtual network or modify an existing persistent one from an XML file",
        "Define or modify a persistent virtual network.",
        cmd_net_define,
    )
    .opts(&[OPT_FILE, OPT_VALIDATE]),
    CommandDef::new(
        "net-destroy",
        Group::Network,
        "destroy (stop) a network",
        "Forcefully stop a given network.",
        cmd_net_destroy,
    )
    .opts(&[OPT_NETWORK]),
    CommandDef::new(
        "net-dhcp-leases",
        Group::Network,
        "print lease info for a given network",
        "Print lease info for a given network",
        cmd_net_dhcp_leases,
    )
    .opts(&[OPT_NETWORK, OptDef::string("mac", "MAC address")]),
    CommandDef::new(
        "net-dumpxml",
        Group::Network,
        "network information in XML",
        "Output the network information as an XML dump to stdout.",
        cmd_net_dumpxml,
    )
    .opts(&[
        OPT_NETWORK,
        OptDef::flag("inactive", "show inactive defined XML"),
    ]),
    CommandDef::new(
        "net-info",
        Group::Network,
        "network information",
        "Returns basic information about the network",
        cmd_net_info,
    )
    .opts(&[OPT_NETWORK]),
    CommandDef::new(
        "net-list",
        Group::Network,
        "list networks",
        "Returns list of networks.",
        cmd_net_list,
    )
    .opts(&[
        OptDef::flag("inactive", "list inactive networks"),
        OptDef::flag("all", "list inactive & active networks"),
        OptDef::flag("persistent", "list persistent networks"),
        OptDef::flag("transient", "list transient networks"),
        OptDef::flag("autostart", "list networks with autostart enabled"),
        OptDef::flag("no-autostart", "list networks with autostart disabled"),
        OptDef::flag("uuid", "list uuid's only"),
        OptDef::flag("name", "list network names only"),
        OptDef::flag("table", "list table (default)"),
        OptDef::flag("title", "show network title"),
    ]),
    CommandDef::new(
        "net-name",
        Group::Network,
        "convert a network UUID to network name",
        "",
        cmd_net_name,
    )
    .opts(&[OptDef::string("network", "network uuid")
        .required()
        .positional()]),
    CommandDef::new(
        "net-port-create",
        Group::Network,
        "create a network port from an XML file",
        "Create a network port.",
        cmd_net_port_create,
    )
    .opts(&[
        OPT_NETWORK,
        OptDef::string("file", "file containing an XML network port description")
            .required()
            .positional(),
        OPT_VALIDATE,
    ]),
    CommandDef::new(
        "net-port-delete",
        Group::Network,
        "delete the specified network port",
        "Delete the specified network port.",
        cmd_net_port_delete,
    )
    .opts(&[OPT_NETWORK, OPT_PORT]),
    CommandDef::new(
        "net-port-dumpxml",
        Group::Network,
        "network port information in XML",
        "Output the network port information as an XML dump to stdout.",
        cmd_net_port_dumpxml,
    )
    .opts(&[OPT_NETWORK, OPT_PORT]),
    CommandDef::new(
        "net-port-list",
        Group::Network,
        "list network ports",
        "Returns list of network ports.",
        cmd_net_port_list,
    )
    .opts(&[
        OPT_NETWORK,
        OptDef::flag("uuid", "list uuid's only"),
        OptDef::flag("table", "list table (default)"),
    ]),
    CommandDef::new(
        "net-start",
        Group::Network,
        "start a (previously defined) inactive network",
        "Start a network.",
        cmd_net_start,
    )
    .opts(&[OPT_NETWORK]),
    CommandDef::new(
        "net-undefine",
        Group::Network,
        "undefine a persistent network",
        "Undefine the configuration for a persistent network.",
        cmd_net_undefine,
    )
    .opts(&[OPT_NETWORK]),
    CommandDef::new(
        "net-update",
        Group::Network,
        "update parts of an existing network's configuration",
        "",
        cmd_net_update,
    )
    .opts(&[
        OPT_NETWORK,
        OptDef::string(
            "command",
            "type of update (add-first, add-last (add), delete, or modify)",
        )
        .required()
        .positional(),
        OptDef::string(
            "section",
            "which section of network configuration to update",
        )
        .required()
        .positional(),
        OptDef::string(
            "xml",
            "name of file containing xml (or, if it starts with '<', the complete xml element itself) to add/modify, or to be matched for search",
        )
        .required()
        .positional(),
        OptDef::int("parent-index", "which parent object to search through"),
        OptDef::flag("config", "affect next network startup"),
        OptDef::flag("live", "affect running network"),
        OptDef::flag("current", "affect current state of network"),
    ]),
    CommandDef::new(
        "net-uuid",
        Group::Network,
        "convert a network name to network UUID",
        "",
        cmd_net_uuid,
    )
    .opts(&[OptDef::string("network", "network name")
        .required()
        .positional()]),
    ifaddr::DOMIFADDR,
];

/// A `NetworkRef` naming `n` by UUID (by name if the daemon sent none).
pub(crate) fn net_ref(n: &pb::Network) -> pb::NetworkRef {
    let by = if n.uuid.is_empty() {
        pb::network_ref::By::Name(n.name.clone())
    } else {
        pb::network_ref::By::Uuid(n.uuid.clone())
    };
    pb::NetworkRef { by: Some(by) }
}

/// A `NetworkRef` by name.
pub(crate) fn name_ref(name: &str) -> pb::NetworkRef {
    pb::NetworkRef {
        by: Some(pb::network_ref::By::Name(name.to_owned())),
    }
}

/// Finds the network `arg` names, as virsh's `virshCommandOptNetworkBy`:
/// by UUID if `arg` is UUID-long, then by name, as `by` allows.
///
/// # Errors
/// `failed to get network 'arg'`, then the last lookup's error (if one
/// was made).
pub(crate) async fn lookup_network(
    client: &mut Client,
    arg: &str,
    by: u8,
) -> Result<pb::Network, Error> {
    let mut attempts = Vec::new();
    if by & BY_UUID != 0 && arg.len() == 36 {
        attempts.push(pb::network_ref::By::Uuid(arg.to_owned()));
    }
    if by & BY_NAME != 0 {
        attempts.push(pb::network_ref::By::Name(arg.to_owned()));
    }
    let mut last = None;
    for by in attempts {
        let req = pb::LookupNetworkRequest {
            network: Some(pb::NetworkRef { by: Some(by) }),
        };
        match client.lookup_network(req).await {
            Ok(r) => {
                if let Some(n) = r.into_inner().network {
                    return Ok(n);
                }
            }
            Err(s) => last = Some(Error::from(s)),
        }
    }
    Err(Error::context(
        format!("failed to get network '{arg}'"),
        last,
    ))
}

/// The network of the `network` option, with the client and the option's
/// value (virsh names the network as the user wrote it).
async fn opt_network(
    ctl: &mut Ctl,
    inv: &Invocation,
    by: u8,
) -> Result<(Client, pb::Network, String), Error> {
    let arg = string_req(inv, "network")?.unwrap_or_default().to_owned();
    let mut client = ctl.network().await?;
    let n = lookup_network(&mut client, &arg, by).await?;
    Ok((client, n, arg))
}

/// `yes`/`no`.
fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `net-autostart NETWORK [--disable]`.
fn cmd_net_autostart<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, n, arg) = opt_network(ctl, inv, BY_ANY).await?;
        let on = !inv.flag("disable");
        let req = pb::SetNetworkAutostartRequest {
            network: Some(net_ref(&n)),
            autostart: on,
        };
        client.set_network_autostart(req).await.map_err(|s| {
            let msg = if on {
                format!("failed to mark network {arg} as autostarted")
            } else {
                format!("failed to unmark network {arg} as autostarted")
            };
            Error::context(msg, Some(s.into()))
        })?;
        let line = if on {
            format!("Network {arg} marked as autostarted")
        } else {
            format!("Network {arg} unmarked as autostarted")
        };
        print_extra(ctl, &line)
    })
}

/// `net-create FILE [--validate]`.
fn cmd_net_create<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let file = string_req(inv, "file")?.unwrap_or_default();
        let xml = read_xml_file(file)?;
        let mut client = ctl.network().await?;
        let req = pb::CreateNetworkRequest {
            xml,
            validate: inv.flag("validate"),
        };
        let n = client
            .create_network(req)
            .await
            .map_err(|s| {
                Error::context(
                    format!("Failed to create network from {file}"),
                    Some(s.into()),
                )
            })?
            .into_inner()
            .network
            .unwrap_or_default();
        print_extra(ctl, &format!("Network {} created from {file}", n.name))
    })
}

/// `net-define FILE [--validate]`.
fn cmd_net_define<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let file = string_req(inv, "file")?.unwrap_or_default();
        let xml = read_xml_file(file)?;
        let mut client = ctl.network().await?;
        let req = pb::DefineNetworkRequest {
            xml,
            validate: inv.flag("validate"),
        };
        let n = client
            .define_network(req)
            .await
            .map_err(|s| {
                Error::context(
                    format!("Failed to define network from {file}"),
                    Some(s.into()),
                )
            })?
            .into_inner()
            .network
            .unwrap_or_default();
        print_extra(ctl, &format!("Network {} defined from {file}", n.name))
    })
}

/// One of the simple network operations.
#[derive(Clone, Copy)]
enum NetOp {
    Start,
    Destroy,
    Undefine,
}

/// `net-start`, `net-destroy`, `net-undefine`: look the network up, call,
/// print `Network N <done>` or `Failed to <verb> network N`.
async fn net_op(ctl: &mut Ctl, inv: &Invocation, op: NetOp) -> Result<(), Error> {
    let (mut client, n, arg) = opt_network(ctl, inv, BY_ANY).await?;
    let r = Some(net_ref(&n));
    let (result, verb, done) = match op {
        NetOp::Start => (
            client
                .start_network(pb::StartNetworkRequest { network: r })
                .await
                .map(|_| ()),
            "start",
            "started",
        ),
        NetOp::Destroy => (
            client
                .destroy_network(pb::DestroyNetworkRequest { network: r })
                .await
                .map(|_| ()),
            "destroy",
            "destroyed",
        ),
        NetOp::Undefine => (
            client
                .undefine_network(pb::UndefineNetworkRequest { network: r })
                .await
                .map(|_| ()),
            "undefine",
            "has been undefined",
        ),
    };
    result
        .map_err(|s| Error::context(format!("Failed to {verb} network {arg}"), Some(s.into())))?;
    print_extra(ctl, &format!("Network {arg} {done}"))
}

/// `net-start NETWORK`.
fn cmd_net_start<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(net_op(ctl, inv, NetOp::Start))
}

/// `net-destroy NETWORK`.
fn cmd_net_destroy<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(net_op(ctl, inv, NetOp::Destroy))
}

/// `net-undefine NETWORK`.
fn cmd_net_undefine<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(net_op(ctl, inv, NetOp::Undefine))
}

/// `net-dumpxml NETWORK [--inactive]`.
fn cmd_net_dumpxml<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, n, _) = opt_network(ctl, inv, BY_ANY).await?;
        let req = pb::GetNetworkXmlRequest {
            network: Some(net_ref(&n)),
            inactive: inv.flag("inactive"),
        };
        let xml = client.get_network_xml(req).await?.into_inner().xml;
        print_xml(ctl, &xml)
    })
}

/// The `net-info` lines (`%-15s %s`) of a network.
pub fn net_info_lines(n: &pb::Network) -> String {
    let mut lines = vec![
        ("Name:", n.name.as_str()),
        ("UUID:", n.uuid.as_str()),
        ("Active:", yes_no(n.active)),
        ("Persistent:", yes_no(n.persistent)),
        ("Autostart:", yes_no(n.autostart)),
    ];
    // virsh prints the bridge only when virNetworkGetBridgeName answers.
    if !n.bridge.is_empty() {
        lines.push(("Bridge:", n.bridge.as_str()));
    }
    lines
        .into_iter()
        .map(|(k, v)| format!("{k:<15} {v}\n"))
        .collect()
}

/// `net-info NETWORK`.
fn cmd_net_info<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, n, _) = opt_network(ctl, inv, BY_ANY).await?;
        ctl.out().write_all(net_info_lines(&n).as_bytes())?;
        Ok(())
    })
}

/// A `(with, without)` flag pair as a filter: only one of them filters
/// (both ask for everything, as libvirt's flag pairs do).
fn pair(inv: &Invocation, with: &str, without: &str) -> Option<bool> {
    match (inv.flag(with), inv.flag(without)) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// The filter virsh's `cmdNetworkList` builds from its flags: active
/// networks by default, `--inactive` the others, `--all` (which wins over
/// `--inactive`, virsh does not refuse the pair) both.
pub fn net_list_filter(inv: &Invocation) -> pb::NetworkListFilter {
    let active = if inv.flag("all") {
        None
    } else {
        Some(!inv.flag("inactive"))
    };
    pb::NetworkListFilter {
        active,
        persistent: pair(inv, "persistent", "transient"),
        autostart: pair(inv, "autostart", "no-autostart"),
    }
}

/// The network's `<title>`, as virsh's `virshGetNetworkDescription` reads
/// it from the XML when the daemon has no metadata API (empty when
/// absent).
async fn network_title(client: &mut Client, n: &pb::Network) -> Result<String, Error> {
    let req = pb::GetNetworkXmlRequest {
        network: Some(net_ref(n)),
        inactive: false,
    };
    let xml = client.get_network_xml(req).await?.into_inner().xml;
    Ok(title_of(&xml))
}

/// `string(./title[1])` of a network XML document.
pub fn title_of(xml: &str) -> String {
    common::xml::parse(xml)
        .ok()
        .and_then(|root| root.child("title").map(common::xml::Element::text))
        .unwrap_or_default()
}

/// `net-list [--inactive] [--all] [--persistent] [--transient]
/// [--autostart] [--no-autostart] [--uuid] [--name] [--table] [--title]`.
fn cmd_net_list<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let filter = net_list_filter(inv);
        let (name, uuid) = (inv.flag("name"), inv.flag("uuid"));
        let table = inv.flag("table");
        if u8::from(table) + u8::from(name) + u8::from(uuid) > 1 {
            return Err(Error::msg(
                "Only one argument from --table, --name and --uuid may be specified.",
            ));
        }
        let title = inv.flag("title");
        let mut client = ctl.network().await?;
        let req = pb::ListAllNetworksRequest {
            filter: Some(filter),
        };
        let mut nets = client
            .list_all_networks(req)
            .await
            .map_err(|s| Error::context("Failed to list networks", Some(s.into())))?
            .into_inner()
            .networks;
        sort_by_name(&mut nets, |n| &n.name);

        if uuid || name {
            let mut text = String::new();
            for n in &nets {
                text.push_str(if uuid { &n.uuid } else { &n.name });
                text.push('\n');
            }
            ctl.out().write_all(text.as_bytes())?;
            return Ok(());
        }
        let mut header = vec!["Name", "State", "Autostart", "Persistent"];
        if title {
            header.push("Title");
        }
        let mut t = Table::new(&header);
        for n in &nets {
            let mut row = vec![
                n.name.clone(),
                if n.active { "active" } else { "inactive" }.to_owned(),
                yes_no(n.autostart).to_owned(),
                yes_no(n.persistent).to_owned(),
            ];
            if title {
                row.push(network_title(&mut client, n).await?);
            }
            t.row(row);
        }
        let text = t.render(!ctl.settings.quiet);
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// `net-name NETWORK-UUID`.
fn cmd_net_name<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, n, _) = opt_network(ctl, inv, BY_UUID).await?;
        writeln!(ctl.out(), "{}", n.name)?;
        Ok(())
    })
}

/// `net-uuid NETWORK-NAME`.
fn cmd_net_uuid<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, n, _) = opt_network(ctl, inv, BY_NAME).await?;
        writeln!(ctl.out(), "{}", n.uuid)?;
        Ok(())
    })
}

/// virsh's names of `virNetworkUpdateCommand` (`add` is `add-last`).
pub fn update_command(name: &str) -> Option<pb::NetworkUpdateCommand> {
    use pb::NetworkUpdateCommand as C;
    Some(match name {
        "modify" => C::Modify,
        "delete" => C::Delete,
        "add-last" | "add" => C::AddLast,
        "add-first" => C::AddFirst,
        _ => return None,
    })
}

/// virsh's names of `virNetworkUpdateSection`, in libvirt's order.
pub const SECTIONS: &[(&str, pb::NetworkSection)] = &[
    ("bridge", pb::NetworkSection::Bridge),
    ("domain", pb::NetworkSection::Domain),
    ("ip", pb::NetworkSection::Ip),
    ("ip-dhcp-host", pb::NetworkSection::IpDhcpHost),
    ("ip-dhcp-range", pb::NetworkSection::IpDhcpRange),
    ("forward", pb::NetworkSection::Forward),
    ("forward-interface", pb::NetworkSection::ForwardInterface),
    ("forward-pf", pb::NetworkSection::ForwardPf),
    ("portgroup", pb::NetworkSection::Portgroup),
    ("dns-host", pb::NetworkSection::DnsHost),
    ("dns-txt", pb::NetworkSection::DnsTxt),
    ("dns-srv", pb::NetworkSection::DnsSrv),
];

/// The `net-update` line after success: which of the definitions changed.
/// Without `--live` or `--config` it depends on whether the network runs,
/// as libvirt's "current".
pub fn update_line(name: &str, live: bool, config: bool, active: bool) -> String {
    match (config, live) {
        (true, true) => format!("Updated network {name} persistent config and live state"),
        (true, false) => format!("Updated network {name} persistent config"),
        (false, true) => format!("Updated network {name} live state"),
        (false, false) if active => format!("Updated network {name} live state"),
        (false, false) => format!("Updated network {name} persistent config"),
    }
}

/// `net-update NETWORK COMMAND SECTION XML [--parent-index N] [--config]
/// [--live] [--current]`.
fn cmd_net_update<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        exclusive(inv, "current", "live")?;
        exclusive(inv, "current", "config")?;
        let (live, config) = (inv.flag("live"), inv.flag("config"));
        let (mut client, n, _) = opt_network(ctl, inv, BY_ANY).await?;
        let command_str = string_req(inv, "command")?.unwrap_or_default();
        let Some(command) = update_command(command_str) else {
            return Err(Error::msg(format!(
                "unrecognized command name '{command_str}'"
            )));
        };
        let section_str = string_req(inv, "section")?.unwrap_or_default();
        let Some((_, section)) = SECTIONS.iter().find(|(s, _)| *s == section_str) else {
            return Err(Error::msg(format!(
                "unrecognized section name '{section_str}'"
            )));
        };
        let parent_index = inv.int::<i32>("parent-index")?.unwrap_or(-1);
        // An XML element when it starts with '<', else a file holding one.
        let xml_arg = string_req(inv, "xml")?.unwrap_or_default();
        let xml = if xml_arg.starts_with('<') {
            xml_arg.to_owned()
        } else {
            read_xml_file(xml_arg)?
        };
        let req = pb::UpdateNetworkRequest {
            network: Some(net_ref(&n)),
            command: command as i32,
            section: *section as i32,
            parent_index,
            xml,
            live,
            config,
        };
        client.update_network(req).await.map_err(|s| {
            Error::context(
                format!("Failed to update network {}", n.name),
                Some(s.into()),
            )
        })?;
        // virsh prints this line without a newline: the one after every
        // command ends it (and -q drops both).
        if !ctl.settings.quiet {
            write!(
                ctl.out(),
                "{}",
                update_line(&n.name, live, config, n.active)
            )?;
        }
        Ok(())
    })
}

/// A lease's expiry as virsh prints it: local time, `%Y-%m-%d %H:%M:%S`.
pub fn local_time(secs: i64) -> String {
    let t: libc::time_t = secs;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `t` and `tm` are valid for the call; localtime_r writes the
    // broken-down time into `tm` and touches nothing else.
    let ok = !unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) }.is_null();
    if !ok {
        return secs.to_string();
    }
    // SAFETY: zero-initialised (a valid libc::tm: integers and a nullable
    // pointer) and then filled in by localtime_r.
    let tm = unsafe { tm.assume_init() };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `ipv4`/`ipv6` of a lease or address type (`-` if unknown).
pub fn addr_type_str(t: i32) -> &'static str {
    match pb::IpAddrType::try_from(t) {
        Ok(pb::IpAddrType::Ipv4) => "ipv4",
        Ok(pb::IpAddrType::Ipv6) => "ipv6",
        Err(_) => "-",
    }
}

/// `s`, or `-` when empty (virsh's `NULLSTR_MINUS`).
fn or_minus(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// The `net-dhcp-leases` table, sorted by MAC (case-insensitively), with
/// `expiry` formatting the expiry times.
pub fn leases_table(leases: &[pb::DhcpLease], expiry: impl Fn(i64) -> String) -> Table {
    let mut leases: Vec<&pb::DhcpLease> = leases.iter().collect();
    leases.sort_by_key(|l| l.mac.to_ascii_lowercase());
    let mut t = Table::new(&[
        "Expiry Time",
        "MAC address",
        "Protocol",
        "IP address",
        "Hostname",
        "Client ID or DUID",
    ]);
    for l in leases {
        t.row(vec![
            expiry(l.expiry_time),
            or_minus(&l.mac),
            addr_type_str(l.r#type).to_owned(),
            format!("{}/{}", l.ipaddr, l.prefix),
            or_minus(&l.hostname),
            or_minus(&l.clientid),
        ]);
    }
    t
}

/// `net-dhcp-leases NETWORK [--mac MAC]`.
fn cmd_net_dhcp_leases<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let mac = string_req(inv, "mac")?.map(str::to_owned);
        let (mut client, n, arg) = opt_network(ctl, inv, BY_ANY).await?;
        let req = pb::GetDhcpLeasesRequest {
            network: Some(net_ref(&n)),
            mac,
        };
        let leases = client
            .get_dhcp_leases(req)
            .await
            .map_err(|s| {
                Error::context(
                    format!("Failed to get leases info for {arg}"),
                    Some(s.into()),
                )
            })?
            .into_inner()
            .leases;
        let text = leases_table(&leases, local_time).render(!ctl.settings.quiet);
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// A `PortRef` for the port `uuid` of network `n`.
fn port_ref(n: &pb::Network, uuid: &str) -> pb::PortRef {
    pb::PortRef {
        network: Some(net_ref(n)),
        uuid: uuid.to_owned(),
    }
}

/// The network and the port of the `network` and `port` options, as
/// virsh's `virshCommandOptNetworkPort`.
///
/// # Errors
/// The network's lookup errors; `failed to get network port 'P'` and the
/// daemon's error.
async fn opt_port(
    ctl: &mut Ctl,
    inv: &Invocation,
) -> Result<(Client, pb::Network, pb::Port), Error> {
    let (mut client, n, _) = opt_network(ctl, inv, BY_ANY).await?;
    let arg = string_req(inv, "port")?.unwrap_or_default();
    let req = pb::LookupPortRequest {
        port: Some(port_ref(&n, arg)),
    };
    let ctx = |e: Option<Error>| Error::context(format!("failed to get network port '{arg}'"), e);
    let port = client
        .lookup_port(req)
        .await
        .map_err(|s| ctx(Some(s.into())))?
        .into_inner()
        .port
        .ok_or_else(|| ctx(None))?;
    Ok((client, n, port))
}

/// `net-port-create NETWORK FILE [--validate]`.
fn cmd_net_port_create<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, n, _) = opt_network(ctl, inv, BY_ANY).await?;
        let file = string_req(inv, "file")?.unwrap_or_default();
        let xml = read_xml_file(file)?;
        let req = pb::CreatePortRequest {
            network: Some(net_ref(&n)),
            xml,
            reclaim: false,
            validate: inv.flag("validate"),
        };
        let port = client
            .create_port(req)
            .await
            // virsh's own wording (it says "network", not "network port").
            .map_err(|s| {
                Error::context(
                    format!("Failed to create network from {file}"),
                    Some(s.into()),
                )
            })?
            .into_inner()
            .port
            .unwrap_or_default();
        print_extra(
            ctl,
            &format!("Network port {} created from {file}", port.uuid),
        )
    })
}

/// `net-port-delete NETWORK PORT`.
fn cmd_net_port_delete<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, n, port) = opt_port(ctl, inv).await?;
        let req = pb::DeletePortRequest {
            port: Some(port_ref(&n, &port.uuid)),
        };
        client.delete_port(req).await.map_err(|s| {
            Error::context(
                format!("Failed to delete network port {}", port.uuid),
                Some(s.into()),
            )
        })?;
        print_extra(ctl, &format!("Network port {} deleted", port.uuid))
    })
}

/// `net-port-dumpxml NETWORK PORT`.
fn cmd_net_port_dumpxml<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, n, port) = opt_port(ctl, inv).await?;
        let req = pb::GetPortXmlRequest {
            port: Some(port_ref(&n, &port.uuid)),
        };
        let xml = client.get_port_xml(req).await?.into_inner().xml;
        print_xml(ctl, &xml)
    })
}

/// `net-port-list NETWORK [--uuid] [--table]`.
fn cmd_net_port_list<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (uuid, table) = (inv.flag("uuid"), inv.flag("table"));
        if uuid && table {
            return Err(Error::msg(
                "Only one argument from --table and --uuid may be specified.",
            ));
        }
        let (mut client, n, _) = opt_network(ctl, inv, BY_ANY).await?;
        let req = pb::ListAllPortsRequest {
            network: Some(net_ref(&n)),
        };
        let mut uuids: Vec<String> = client
            .list_all_ports(req)
            .await?
            .into_inner()
            .ports
            .into_iter()
            .map(|p| p.uuid)
            .collect();
        // virsh sorts by the UUIDs' bytes: their canonical hex in order.
        uuids.sort_by_key(|u| u.to_ascii_lowercase());
        let text = if uuid {
            uuids.iter().map(|u| format!("{u}\n")).collect()
        } else {
            let mut t = Table::new(&["UUID"]);
            for u in uuids {
                t.row(vec![u]);
            }
            t.render(!ctl.settings.quiet)
        };
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests;
