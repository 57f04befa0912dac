//! "Storage Pool" commands (`tools/virsh-pool.c`): `pool-define`,
//! `pool-define-as`, `pool-create`, `pool-create-as`, `pool-build`,
//! `pool-start`, `pool-destroy`, `pool-delete`, `pool-undefine`,
//! `pool-refresh`, `pool-autostart`, `pool-list`, `pool-info`,
//! `pool-dumpxml`, `pool-uuid`, `pool-name`.
//!
//! As in virsh, the success lines are `vshPrintExtra` output (silenced by
//! `-q`) naming the pool as the user wrote it (except `pool-create` and
//! `pool-define`, which print the pool's real name), and a failed call
//! prints virsh's line first (`error: Failed to start pool p`), then the
//! daemon's message.

use proto::storage::v1 as pb;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{exclusive, print_extra, read_xml_file, string_req};
use crate::commands::storage::{
    BY_ANY, BY_NAME, BY_UUID, esc, exclusive_flags, format_capacity, opt_pool, pool_ref,
    sort_by_name,
};
use crate::ctl::Ctl;
use crate::error::Error;
use crate::table::Table;

/// The `<pool>` option of most commands.
const OPT_POOL: OptDef = OptDef::string("pool", "pool name or uuid")
    .required()
    .positional();
/// `--build` of `pool-create`, `pool-create-as` and `pool-start`.
const OPT_BUILD: OptDef = OptDef::flag("build", "build the pool as normal");
/// `--no-overwrite` of the build-capable commands.
const OPT_NO_OVERWRITE: OptDef = OptDef::flag("no-overwrite", "do not overwrite any existing data");
/// `--overwrite` of the build-capable commands.
const OPT_OVERWRITE: OptDef = OptDef::flag("overwrite", "overwrite any existing data");
/// `--file` of `pool-create` and `pool-define`.
const OPT_FILE: OptDef = OptDef::string("file", "file containing an XML pool description")
    .required()
    .positional();

/// virsh's `VIRSH_COMMON_OPT_POOL_X_AS`: the options `pool-define-as` and
/// `pool-create-as` build the XML from. `source-host` ... `target` may be
/// given positionally, as virsh has always accepted
/// (`pool-define-as p dir - - - - /var/lib/images`).
macro_rules! pool_x_as_opts {
    ($($extra:expr),* $(,)?) => {
        &[
            OptDef::string("name", "name of the pool").required().positional(),
            OptDef::string("type", "type of the pool").required().positional(),
            OptDef::flag("print-xml", "print XML document, but don't define/create"),
            OptDef::string("source-host", "source-host for underlying storage").positional(),
            OptDef::string("source-path", "source path for underlying storage").positional(),
            OptDef::string("source-dev", "source device for underlying storage").positional(),
            OptDef::string("source-name", "source name for underlying storage").positional(),
            OptDef::string("target", "target for underlying storage").positional(),
            OptDef::string("source-format", "format for underlying storage"),
            OptDef::string("auth-type", "auth type to be used for underlying storage"),
            OptDef::string("auth-username", "auth username to be used for underlying storage"),
            OptDef::string("secret-usage", "auth secret usage to be used for underlying storage"),
            OptDef::string("secret-uuid", "auth secret UUID to be used for underlying storage"),
            OptDef::string("adapter-name", "adapter name to be used for underlying storage"),
            OptDef::string("adapter-wwnn", "adapter wwnn to be used for underlying storage"),
            OptDef::string("adapter-wwpn", "adapter wwpn to be used for underlying storage"),
            OptDef::string(
                "adapter-parent",
                "adapter parent scsi_hostN to be used for underlying vHBA storage",
            ),
            OptDef::string(
                "adapter-parent-wwnn",
                "adapter parent scsi_hostN wwnn to be used for underlying vHBA storage",
            ),
            OptDef::string(
                "adapter-parent-wwpn",
                "adapter parent scsi_hostN wwpn to be used for underlying vHBA storage",
            ),
            OptDef::string(
                "adapter-parent-fabric-wwn",
                "adapter parent scsi_hostN fabric_wwn to be used for underlying vHBA storage",
            ),
            OptDef::string("source-protocol-ver", "nfsvers value for NFS pool mount option"),
            OptDef::string("source-initiator", "initiator iqn for underlying storage"),
            $($extra,)*
        ]
    };
}

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "pool-autostart",
        Group::Pool,
        "autostart a pool",
        "Configure a pool to be automatically started at boot.",
        cmd_pool_autostart,
    )
    .opts(&[OPT_POOL, OptDef::flag("disable", "disable autostarting")]),
    CommandDef::new(
        "pool-build",
        Group::Pool,
        "build a pool",
        "Build a given pool.",
        cmd_pool_build,
    )
    .opts(&[OPT_POOL, OPT_NO_OVERWRITE, OPT_OVERWRITE]),
    CommandDef::new(
        "pool-create",
        Group::Pool,
        "create a pool from an XML file",
        "Create a pool.",
        cmd_pool_create,
    )
    .opts(&[OPT_FILE, OPT_BUILD, OPT_NO_OVERWRITE, OPT_OVERWRITE]),
    CommandDef::new(
        "pool-create-as",
        Group::Pool,
        "create a pool from a set of args",
        "Create a pool.",
        cmd_pool_create_as,
    )
    .opts(pool_x_as_opts!(OPT_BUILD, OPT_NO_OVERWRITE, OPT_OVERWRITE)),
    CommandDef::new(
        "pool-define",
        Group::Pool,
        "define an inactive persistent storage pool or modify an existing persistent one from an XML file",
        "Define or modify a persistent storage pool.",
        cmd_pool_define,
    )
    .opts(&[
        OPT_FILE,
        OptDef::flag("validate", "validate the XML against the schema"),
    ]),
    CommandDef::new(
        "pool-define-as",
        Group::Pool,
        "define a pool from a set of args",
        "Define a pool.",
        cmd_pool_define_as,
    )
    .opts(pool_x_as_opts!()),
    CommandDef::new(
        "pool-delete",
        Group::Pool,
        "delete a pool",
        "Delete a given pool.",
        cmd_pool_delete,
    )
    .opts(&[OPT_POOL]),
    CommandDef::new(
        "pool-destroy",
        Group::Pool,
        "destroy (stop) a pool",
        "Forcefully stop a given pool. Raw data in the pool is untouched",
        cmd_pool_destroy,
    )
    .opts(&[OPT_POOL]),
    CommandDef::new(
        "pool-dumpxml",
        Group::Pool,
        "pool information in XML",
        "Output the pool information as an XML dump to stdout.",
        cmd_pool_dumpxml,
    )
    .opts(&[OPT_POOL, OptDef::flag("inactive", "show inactive defined XML")]),
    CommandDef::new(
        "pool-info",
        Group::Pool,
        "storage pool information",
        "Returns basic information about the storage pool.",
        cmd_pool_info,
    )
    .opts(&[OPT_POOL, OptDef::flag("bytes", "Return pool info in bytes")]),
    CommandDef::new(
        "pool-list",
        Group::Pool,
        "list pools",
        "Returns list of pools.",
        cmd_pool_list,
    )
    .opts(&[
        OptDef::flag("inactive", "list inactive pools"),
        OptDef::flag("all", "list inactive & active pools"),
        OptDef::flag("transient", "list transient pools"),
        OptDef::flag("persistent", "list persistent pools"),
        OptDef::flag("autostart", "list pools with autostart enabled"),
        OptDef::flag("no-autostart", "list pools with autostart disabled"),
        OptDef::string("type", "only list pool of specified type(s) (if supported)"),
        OptDef::flag("details", "display extended details for pools"),
        OptDef::flag("uuid", "list UUID of active pools only"),
        OptDef::flag("name", "list name of active pools only"),
    ]),
    CommandDef::new(
        "pool-name",
        Group::Pool,
        "convert a pool UUID to pool name",
        "",
        cmd_pool_name,
    )
    .opts(&[OPT_POOL]),
    CommandDef::new(
        "pool-refresh",
        Group::Pool,
        "refresh a pool",
        "Refresh a given pool.",
        cmd_pool_refresh,
    )
    .opts(&[OPT_POOL]),
    CommandDef::new(
        "pool-start",
        Group::Pool,
        "start a (previously defined) inactive pool",
        "Start a pool.",
        cmd_pool_start,
    )
    .opts(&[OPT_POOL, OPT_BUILD, OPT_NO_OVERWRITE, OPT_OVERWRITE]),
    CommandDef::new(
        "pool-undefine",
        Group::Pool,
        "undefine an inactive pool",
        "Undefine the configuration for an inactive pool.",
        cmd_pool_undefine,
    )
    .opts(&[OPT_POOL]),
    CommandDef::new(
        "pool-uuid",
        Group::Pool,
        "convert a pool name to pool UUID",
        "",
        cmd_pool_uuid,
    )
    .opts(&[OPT_POOL]),
];

/// The pool type names (`<pool type=...>`) and their proto types, in
/// libvirt's `virStoragePoolType` order.
pub const POOL_TYPES: &[(&str, pb::PoolType)] = &[
    ("dir", pb::PoolType::Dir),
    ("fs", pb::PoolType::Fs),
    ("netfs", pb::PoolType::Netfs),
    ("logical", pb::PoolType::Logical),
    ("disk", pb::PoolType::Disk),
    ("iscsi", pb::PoolType::Iscsi),
    ("iscsi-direct", pb::PoolType::IscsiDirect),
    ("scsi", pb::PoolType::Scsi),
    ("mpath", pb::PoolType::Mpath),
    ("rbd", pb::PoolType::Rbd),
    ("sheepdog", pb::PoolType::Sheepdog),
    ("gluster", pb::PoolType::Gluster),
    ("zfs", pb::PoolType::Zfs),
    ("vstorage", pb::PoolType::Vstorage),
];

/// virsh's `vshStringToArray`: `,`-separated words, `,,` standing for a
/// literal comma.
pub fn split_commas(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
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

/// The filter virsh's `cmdPoolList` builds from its flags: active pools by
/// default, `--inactive` the others, `--all` both.
///
/// # Errors
/// `Options --all and --inactive are mutually exclusive`, an empty
/// `--type`, `Invalid pool type 'X'`.
pub fn pool_list_filter(inv: &Invocation) -> Result<pb::PoolListFilter, Error> {
    let (all, inactive) = (inv.flag("all"), inv.flag("inactive"));
    exclusive_flags(("all", all), ("inactive", inactive))?;
    let active = if all { None } else { Some(!inactive) };
    let mut types = Vec::new();
    if let Some(t) = string_req(inv, "type")? {
        for name in split_commas(t) {
            let Some((_, ty)) = POOL_TYPES.iter().find(|(n, _)| *n == name) else {
                return Err(Error::msg(format!("Invalid pool type '{name}'")));
            };
            if !types.contains(&(*ty as i32)) {
                types.push(*ty as i32);
            }
        }
    }
    Ok(pb::PoolListFilter {
        active,
        persistent: pair(inv, "persistent", "transient"),
        autostart: pair(inv, "autostart", "no-autostart"),
        types,
    })
}

/// The values of `pool-define-as`/`pool-create-as`, as virsh's
/// `virshBuildPoolXML` reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolXmlArgs {
    /// `name`.
    pub name: String,
    /// `type`.
    pub pool_type: String,
    /// The other options, by option name (only those given).
    pub opts: Vec<(&'static str, String)>,
}

/// The string options of [`PoolXmlArgs::opts`], in virsh's order.
const POOL_XML_OPTS: &[&str] = &[
    "source-host",
    "source-path",
    "source-dev",
    "source-name",
    "source-format",
    "target",
    "auth-type",
    "auth-username",
    "secret-usage",
    "secret-uuid",
    "adapter-name",
    "adapter-wwnn",
    "adapter-wwpn",
    "adapter-parent",
    "adapter-parent-wwnn",
    "adapter-parent-wwpn",
    "adapter-parent-fabric-wwn",
    "source-protocol-ver",
    "source-initiator",
];

impl PoolXmlArgs {
    /// Reads the options of an invocation.
    ///
    /// # Errors
    /// `Options --secret-usage and --secret-uuid are mutually exclusive`;
    /// an empty option value.
    pub fn from_invocation(inv: &Invocation) -> Result<PoolXmlArgs, Error> {
        exclusive(inv, "secret-usage", "secret-uuid")?;
        let name = string_req(inv, "name")?.unwrap_or_default().to_owned();
        let pool_type = string_req(inv, "type")?.unwrap_or_default().to_owned();
        let mut opts = Vec::new();
        for opt in POOL_XML_OPTS {
            if let Some(v) = string_req(inv, opt)? {
                opts.push((*opt, v.to_owned()));
            }
        }
        Ok(PoolXmlArgs {
            name,
            pool_type,
            opts,
        })
    }

    fn get(&self, opt: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(n, _)| *n == opt)
            .map(|(_, v)| v.as_str())
    }

    /// The pool XML, as virsh's `virshBuildPoolXML` lays it out (values
    /// are XML-escaped).
    pub fn to_xml(&self) -> String {
        let g = |o: &str| self.get(o).map(esc);
        let (host, path, dev, src_name, format, target) = (
            g("source-host"),
            g("source-path"),
            g("source-dev"),
            g("source-name"),
            g("source-format"),
            g("target"),
        );
        let (auth_type, auth_user, secret_usage, secret_uuid) = (
            g("auth-type"),
            g("auth-username"),
            g("secret-usage"),
            g("secret-uuid"),
        );
        let (adapter_name, wwnn, wwpn) = (g("adapter-name"), g("adapter-wwnn"), g("adapter-wwpn"));
        let (parent, parent_wwnn, parent_wwpn, parent_fabric) = (
            g("adapter-parent"),
            g("adapter-parent-wwnn"),
            g("adapter-parent-wwpn"),
            g("adapter-parent-fabric-wwn"),
        );
        let (proto_ver, initiator) = (g("source-protocol-ver"), g("source-initiator"));

        let mut x = format!("<pool type='{}'>\n", esc(&self.pool_type));
        x.push_str(&format!("  <name>{}</name>\n", esc(&self.name)));
        let fc = wwnn.is_some() && wwpn.is_some();
        if host.is_some()
            || path.is_some()
            || dev.is_some()
            || initiator.is_some()
            || format.is_some()
            || src_name.is_some()
            || fc
            || adapter_name.is_some()
        {
            x.push_str("  <source>\n");
            if let Some(h) = &host {
                x.push_str(&format!("    <host name='{h}'/>\n"));
            }
            if let Some(p) = &path {
                x.push_str(&format!("    <dir path='{p}'/>\n"));
            }
            if let Some(d) = &dev {
                x.push_str(&format!("    <device path='{d}'/>\n"));
            }
            if let Some(i) = &initiator {
                x.push_str("    <initiator>\n");
                x.push_str(&format!("      <iqn name='{i}'/>\n"));
                x.push_str("    </initiator>\n");
            }
            if let (true, Some(wwnn), Some(wwpn)) = (fc, &wwnn, &wwpn) {
                x.push_str("    <adapter type='fc_host'");
                if let Some(p) = &parent {
                    x.push_str(&format!(" parent='{p}'"));
                } else if let (Some(n), Some(p)) = (&parent_wwnn, &parent_wwpn) {
                    x.push_str(&format!(" parent_wwnn='{n}' parent_wwpn='{p}'"));
                } else if let Some(f) = &parent_fabric {
                    x.push_str(&format!(" parent_fabric_wwn='{f}'"));
                }
                x.push_str(&format!(" wwnn='{wwnn}' wwpn='{wwpn}'/>\n"));
            } else if let Some(a) = &adapter_name {
                x.push_str(&format!("    <adapter type='scsi_host' name='{a}'/>\n"));
            }
            if let (Some(t), Some(u)) = (&auth_type, &auth_user)
                && (secret_usage.is_some() || secret_uuid.is_some())
            {
                x.push_str(&format!("    <auth type='{t}' username='{u}'>\n"));
                if let Some(s) = &secret_usage {
                    x.push_str(&format!("      <secret usage='{s}'/>\n"));
                } else if let Some(s) = &secret_uuid {
                    x.push_str(&format!("      <secret uuid='{s}'/>\n"));
                }
                x.push_str("    </auth>\n");
            }
            if let Some(f) = &format {
                x.push_str(&format!("    <format type='{f}'/>\n"));
            }
            if let Some(n) = &src_name {
                x.push_str(&format!("    <name>{n}</name>\n"));
            }
            if let Some(v) = &proto_ver {
                x.push_str(&format!("    <protocol ver='{v}'/>\n"));
            }
            x.push_str("  </source>\n");
        }
        if let Some(t) = &target {
            x.push_str("  <target>\n");
            x.push_str(&format!("    <path>{t}</path>\n"));
            x.push_str("  </target>\n");
        }
        x.push_str("</pool>\n");
        x
    }
}

/// The build flags of `pool-create`, `pool-create-as` and `pool-start`:
/// `(build, overwrite, no_overwrite)`.
///
/// # Errors
/// `Options --overwrite and --no-overwrite are mutually exclusive`.
pub fn build_flags(inv: &Invocation) -> Result<(bool, bool, bool), Error> {
    let (build, overwrite, no_overwrite) = (
        inv.flag("build"),
        inv.flag("overwrite"),
        inv.flag("no-overwrite"),
    );
    exclusive_flags(("overwrite", overwrite), ("no-overwrite", no_overwrite))?;
    Ok((build, overwrite, no_overwrite))
}

/// virsh's `virshStoragePoolStateToString`.
pub fn pool_state_str(state: i32) -> &'static str {
    match pb::PoolState::try_from(state) {
        Ok(pb::PoolState::Inactive) => "inactive",
        Ok(pb::PoolState::Building) => "building",
        Ok(pb::PoolState::Running) => "running",
        Ok(pb::PoolState::Degraded) => "degraded",
        Ok(pb::PoolState::Inaccessible) => "inaccessible",
        Err(_) => "unknown",
    }
}

/// Whether sizes are shown for a pool in this state (running or degraded).
fn has_sizes(state: i32) -> bool {
    state == pb::PoolState::Running as i32 || state == pb::PoolState::Degraded as i32
}

/// `yes`/`no`.
fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `pool-autostart POOL [--disable]`.
fn cmd_pool_autostart<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, arg) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let on = !inv.flag("disable");
        let req = pb::SetPoolAutostartRequest {
            pool: Some(pool_ref(&p)),
            autostart: on,
        };
        client.set_pool_autostart(req).await.map_err(|s| {
            let msg = if on {
                format!("failed to mark pool {arg} as autostarted")
            } else {
                format!("failed to unmark pool {arg} as autostarted")
            };
            Error::context(msg, Some(s.into()))
        })?;
        let line = if on {
            format!("Pool {arg} marked as autostarted")
        } else {
            format!("Pool {arg} unmarked as autostarted")
        };
        print_extra(ctl, &line)
    })
}

/// `pool-build POOL [--no-overwrite] [--overwrite]`.
fn cmd_pool_build<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, arg) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let req = pb::BuildPoolRequest {
            pool: Some(pool_ref(&p)),
            overwrite: inv.flag("overwrite"),
            no_overwrite: inv.flag("no-overwrite"),
        };
        client
            .build_pool(req)
            .await
            .map_err(|s| Error::context(format!("Failed to build pool {arg}"), Some(s.into())))?;
        print_extra(ctl, &format!("Pool {arg} built"))
    })
}

/// The `CreatePoolRequest` of an XML and the build flags.
fn create_request(xml: String, flags: (bool, bool, bool)) -> pb::CreatePoolRequest {
    pb::CreatePoolRequest {
        xml,
        build: flags.0,
        build_overwrite: flags.1,
        build_no_overwrite: flags.2,
    }
}

/// `pool-create FILE [--build] [--no-overwrite] [--overwrite]`.
fn cmd_pool_create<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let file = string_req(inv, "file")?.unwrap_or_default();
        let flags = build_flags(inv)?;
        let xml = read_xml_file(file)?;
        let mut client = ctl.storage().await?;
        let p = client
            .create_pool(create_request(xml, flags))
            .await
            .map_err(|s| {
                Error::context(format!("Failed to create pool from {file}"), Some(s.into()))
            })?
            .into_inner()
            .pool
            .unwrap_or_default();
        print_extra(ctl, &format!("Pool {} created from {file}", p.name))
    })
}

/// `pool-create-as NAME TYPE [source and target options] [--print-xml]
/// [--build] [--no-overwrite] [--overwrite]`.
fn cmd_pool_create_as<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let flags = build_flags(inv)?;
        let args = PoolXmlArgs::from_invocation(inv)?;
        let xml = args.to_xml();
        if inv.flag("print-xml") {
            ctl.out().write_all(xml.as_bytes())?;
            return Ok(());
        }
        let mut client = ctl.storage().await?;
        client
            .create_pool(create_request(xml, flags))
            .await
            .map_err(|s| {
                Error::context(
                    format!("Failed to create pool {}", args.name),
                    Some(s.into()),
                )
            })?;
        print_extra(ctl, &format!("Pool {} created", args.name))
    })
}

/// `pool-define FILE [--validate]`.
fn cmd_pool_define<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let file = string_req(inv, "file")?.unwrap_or_default();
        let xml = read_xml_file(file)?;
        let mut client = ctl.storage().await?;
        let req = pb::DefinePoolRequest {
            xml,
            validate: inv.flag("validate"),
        };
        let p = client
            .define_pool(req)
            .await
            .map_err(|s| {
                Error::context(format!("Failed to define pool from {file}"), Some(s.into()))
            })?
            .into_inner()
            .pool
            .unwrap_or_default();
        print_extra(ctl, &format!("Pool {} defined from {file}", p.name))
    })
}

/// `pool-define-as NAME TYPE [source and target options] [--print-xml]`.
fn cmd_pool_define_as<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let args = PoolXmlArgs::from_invocation(inv)?;
        let xml = args.to_xml();
        if inv.flag("print-xml") {
            ctl.out().write_all(xml.as_bytes())?;
            return Ok(());
        }
        let mut client = ctl.storage().await?;
        let req = pb::DefinePoolRequest {
            xml,
            validate: false,
        };
        client.define_pool(req).await.map_err(|s| {
            Error::context(
                format!("Failed to define pool {}", args.name),
                Some(s.into()),
            )
        })?;
        print_extra(ctl, &format!("Pool {} defined", args.name))
    })
}

/// One of the simple pool operations: which RPC, and virsh's lines.
#[derive(Clone, Copy)]
enum PoolOp {
    Delete,
    Destroy,
    Refresh,
    Undefine,
}

/// `pool-delete`, `pool-destroy`, `pool-refresh`, `pool-undefine`: look the
/// pool up, call, print `Pool P <done>` or `Failed to <verb> pool P`.
async fn pool_op(ctl: &mut Ctl, inv: &Invocation, op: PoolOp) -> Result<(), Error> {
    let (mut client, p, arg) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
    let r = Some(pool_ref(&p));
    let (result, verb, done) = match op {
        PoolOp::Delete => (
            client
                .delete_pool(pb::DeletePoolRequest {
                    pool: r,
                    zeroed: false,
                })
                .await
                .map(|_| ()),
            "delete",
            "deleted",
        ),
        PoolOp::Destroy => (
            client
                .destroy_pool(pb::DestroyPoolRequest { pool: r })
                .await
                .map(|_| ()),
            "destroy",
            "destroyed",
        ),
        PoolOp::Refresh => (
            client
                .refresh_pool(pb::RefreshPoolRequest { pool: r })
                .await
                .map(|_| ()),
            "refresh",
            "refreshed",
        ),
        PoolOp::Undefine => (
            client
                .undefine_pool(pb::UndefinePoolRequest { pool: r })
                .await
                .map(|_| ()),
            "undefine",
            "has been undefined",
        ),
    };
    result.map_err(|s| Error::context(format!("Failed to {verb} pool {arg}"), Some(s.into())))?;
    print_extra(ctl, &format!("Pool {arg} {done}"))
}

/// `pool-delete POOL`.
fn cmd_pool_delete<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(pool_op(ctl, inv, PoolOp::Delete))
}

/// `pool-destroy POOL`.
fn cmd_pool_destroy<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(pool_op(ctl, inv, PoolOp::Destroy))
}

/// `pool-refresh POOL`.
fn cmd_pool_refresh<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(pool_op(ctl, inv, PoolOp::Refresh))
}

/// `pool-undefine POOL`.
fn cmd_pool_undefine<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(pool_op(ctl, inv, PoolOp::Undefine))
}

/// `pool-dumpxml POOL [--inactive]`.
fn cmd_pool_dumpxml<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, _) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let req = pb::GetPoolXmlRequest {
            pool: Some(pool_ref(&p)),
            inactive: inv.flag("inactive"),
        };
        let xml = client.get_pool_xml(req).await?.into_inner().xml;
        crate::commands::storage::print_xml(ctl, &xml)
    })
}

/// The `pool-info` lines (`%-15s %s`) of a pool and its info.
pub fn pool_info_lines(p: &pb::Pool, info: &pb::GetPoolInfoResponse, bytes: bool) -> String {
    let mut lines = vec![
        ("State:", pool_state_str(info.state).to_owned()),
        ("Persistent:", yes_no(p.persistent).to_owned()),
        ("Autostart:", yes_no(p.autostart).to_owned()),
    ];
    if has_sizes(info.state) {
        let size = |v: u64| {
            if bytes {
                v.to_string()
            } else {
                format_capacity(v)
            }
        };
        lines.push(("Capacity:", size(info.capacity)));
        lines.push(("Allocation:", size(info.allocation)));
        lines.push(("Available:", size(info.available)));
    }
    lines
        .into_iter()
        .map(|(k, v)| format!("{k:<15} {v}\n"))
        .collect()
}

/// `pool-info POOL [--bytes]`.
fn cmd_pool_info<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, _) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        write!(
            ctl.out(),
            "{:<15} {}\n{:<15} {}\n",
            "Name:",
            p.name,
            "UUID:",
            p.uuid
        )?;
        let req = pb::GetPoolInfoRequest {
            pool: Some(pool_ref(&p)),
        };
        let info = client.get_pool_info(req).await?.into_inner();
        let text = pool_info_lines(&p, &info, inv.flag("bytes"));
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// `pool-list [--inactive | --all] [--persistent] [--transient]
/// [--autostart] [--no-autostart] [--type TYPES] [--details] [--uuid]
/// [--name]`.
fn cmd_pool_list<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let filter = pool_list_filter(inv)?;
        exclusive(inv, "details", "uuid")?;
        exclusive(inv, "details", "name")?;
        let (details, uuid, name) = (inv.flag("details"), inv.flag("uuid"), inv.flag("name"));
        let mut client = ctl.storage().await?;
        let req = pb::ListAllPoolsRequest {
            filter: Some(filter),
        };
        let mut pools = client
            .list_all_pools(req)
            .await
            .map_err(|s| Error::context("Failed to list pools", Some(s.into())))?
            .into_inner()
            .pools;
        sort_by_name(&mut pools, |p| &p.name);

        if !details && (uuid || name) {
            let mut text = String::new();
            for p in &pools {
                if uuid {
                    // "%-36s%c"
                    text.push_str(&pad(&p.uuid, 36));
                    text.push(if name { ' ' } else { '\n' });
                }
                if name {
                    // "%-20s\n"
                    text.push_str(&pad(&p.name, 20));
                    text.push('\n');
                }
            }
            ctl.out().write_all(text.as_bytes())?;
            return Ok(());
        }

        let table = if details {
            let mut t = Table::new(&[
                "Name",
                "State",
                "Autostart",
                "Persistent",
                "Capacity",
                "Allocation",
                "Available",
            ]);
            for p in &pools {
                let req = pb::GetPoolInfoRequest {
                    pool: Some(pool_ref(p)),
                };
                let (state, sizes) = match client.get_pool_info(req).await {
                    Ok(info) => {
                        let info = info.into_inner();
                        let sizes = if has_sizes(info.state) {
                            [info.capacity, info.allocation, info.available].map(format_capacity)
                        } else {
                            ["-", "-", "-"].map(str::to_owned)
                        };
                        (pool_state_str(info.state).to_owned(), sizes)
                    }
                    Err(_) => {
                        // virsh reports it and goes on with the others.
                        ctl.report(&Error::msg("Could not retrieve pool information"));
                        (
                            "unknown".to_owned(),
                            ["unknown", "unknown", "unknown"].map(str::to_owned),
                        )
                    }
                };
                let [cap, alloc, avail] = sizes;
                t.row(vec![
                    p.name.clone(),
                    state,
                    yes_no(p.autostart).to_owned(),
                    yes_no(p.persistent).to_owned(),
                    cap,
                    alloc,
                    avail,
                ]);
            }
            t
        } else {
            let mut t = Table::new(&["Name", "State", "Autostart"]);
            for p in &pools {
                let state = if p.active { "active" } else { "inactive" };
                t.row(vec![
                    p.name.clone(),
                    state.to_owned(),
                    yes_no(p.autostart).to_owned(),
                ]);
            }
            t
        };
        let text = table.render(!ctl.settings.quiet);
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// `s` padded with spaces to `width` bytes, as printf's `%-Ns`.
fn pad(s: &str, width: usize) -> String {
    let mut out = s.to_owned();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(s.len())));
    out
}

/// `pool-name POOL-UUID`.
fn cmd_pool_name<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, p, _) = opt_pool(ctl, inv, "pool", BY_UUID).await?;
        writeln!(ctl.out(), "{}", p.name)?;
        Ok(())
    })
}

/// `pool-uuid POOL-NAME`.
fn cmd_pool_uuid<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, p, _) = opt_pool(ctl, inv, "pool", BY_NAME).await?;
        writeln!(ctl.out(), "{}", p.uuid)?;
        Ok(())
    })
}

/// `pool-start POOL [--build] [--no-overwrite] [--overwrite]`.
fn cmd_pool_start<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, arg) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let (build, overwrite, no_overwrite) = build_flags(inv)?;
        let req = pb::StartPoolRequest {
            pool: Some(pool_ref(&p)),
            build,
            build_overwrite: overwrite,
            build_no_overwrite: no_overwrite,
        };
        client
            .start_pool(req)
            .await
            .map_err(|s| Error::context(format!("Failed to start pool {arg}"), Some(s.into())))?;
        print_extra(ctl, &format!("Pool {arg} started"))
    })
}

#[cfg(test)]
mod tests;
