//! "Domain Management" lifecycle commands: `start`, `create`, `shutdown`,
//! `reboot`, `reset`, `destroy`, `suspend`, `resume`, and
//! `domxml-to-native`, with virsh's options, lines and errors
//! (`tools/virsh-domain.c`).
//!
//! Like virsh, the success lines are `vshPrintExtra` output (silenced by
//! `-q`) and a failed call prints virsh's own line first, e.g.
//! `error: Failed to start domain 'vm1'`, then the daemon's message.
//! Commands that take a domain name the domain as the user wrote it
//! (virsh's `virshCommandOptDomain` name), except `start` and `create`,
//! which print the domain's real name (`virDomainGetName`).

use common::error::ErrorCode;
use proto::domain::v1 as pb;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{
    BY_ANY, BY_NAME, BY_UUID, OPT_DOMAIN, exclusive, lookup, opt_domain, print_extra,
    read_xml_file, string_req, uuid_ref,
};
use crate::ctl::Ctl;
use crate::error::Error;

/// `--reset-nvram` of `start` and `create`.
const OPT_RESET_NVRAM: OptDef = OptDef::flag(
    "reset-nvram",
    "re-initialize NVRAM from its pristine template",
);
/// `--paused` of `start` and `create`.
const OPT_PAUSED: OptDef = OptDef::flag("paused", "leave the guest paused after creation");
/// `--autodestroy` of `start` and `create`.
const OPT_AUTODESTROY: OptDef = OptDef::flag(
    "autodestroy",
    "automatically destroy the guest when virsh disconnects",
);
/// `--mode` of `shutdown` and `reboot`.
const OPT_MODE: OptDef =
    OptDef::string("mode", "shutdown mode: acpi|agent|initctl|signal|paravirt");

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "start",
        Group::Domain,
        "start a (previously defined) inactive domain",
        "Start a domain, either from the last managedsave\n    state, or via a fresh boot if no managedsave state\n    is present.",
        cmd_start,
    )
    .opts(&[
        OptDef::string("domain", "name of the inactive domain")
            .required()
            .positional(),
        OPT_PAUSED,
        OPT_AUTODESTROY,
        OptDef::flag("bypass-cache", "avoid file system cache when loading"),
        OptDef::flag(
            "force-boot",
            "force fresh boot by discarding any managed save",
        ),
        OPT_RESET_NVRAM,
    ]),
    CommandDef::new(
        "create",
        Group::Domain,
        "create a domain from an XML file",
        "Create a domain.",
        cmd_create,
    )
    .opts(&[
        OptDef::string("file", "file containing an XML domain description")
            .required()
            .positional(),
        OPT_PAUSED,
        OPT_AUTODESTROY,
        OptDef::flag("validate", "validate the XML against the schema"),
        OPT_RESET_NVRAM,
    ]),
    CommandDef::new(
        "shutdown",
        Group::Domain,
        "gracefully shutdown a domain",
        "Run shutdown in the target domain.",
        cmd_shutdown,
    )
    .opts(&[OPT_DOMAIN, OPT_MODE]),
    CommandDef::new(
        "reboot",
        Group::Domain,
        "reboot a domain",
        "Run a reboot command in the target domain.",
        cmd_reboot,
    )
    .opts(&[OPT_DOMAIN, OPT_MODE]),
    CommandDef::new(
        "reset",
        Group::Domain,
        "reset a domain",
        "Reset the target domain as if by power button",
        cmd_reset,
    )
    .opts(&[OPT_DOMAIN]),
    CommandDef::new(
        "destroy",
        Group::Domain,
        "destroy (stop) a domain",
        "Forcefully stop a given domain, but leave its resources intact.",
        cmd_destroy,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::flag("graceful", "terminate gracefully"),
        OptDef::flag("remove-logs", "remove domain logs"),
    ]),
    CommandDef::new(
        "suspend",
        Group::Domain,
        "suspend a domain",
        "Suspend a running domain.",
        cmd_suspend,
    )
    .opts(&[OPT_DOMAIN]),
    CommandDef::new(
        "resume",
        Group::Domain,
        "resume a domain",
        "Resume a previously suspended domain.",
        cmd_resume,
    )
    .opts(&[OPT_DOMAIN]),
    CommandDef::new(
        "domxml-to-native",
        Group::Domain,
        "Convert domain XML to native config",
        "Convert domain XML config to a native guest configuration format.",
        cmd_domxml_to_native,
    )
    .opts(&[
        OptDef::string("format", "target config data type format")
            .required()
            .positional(),
        // virsh: `--domain` only by name; the XML file may come second
        // without `--xml` (the old syntax).
        OptDef::string("domain", "domain name, id or uuid"),
        OptDef::string("xml", "xml data file to export from").positional(),
    ]),
];

/// Which command parses a `--mode` list: their mode names are the same, the
/// wording of the error differs (as in virsh).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeCommand {
    /// `shutdown`.
    Shutdown,
    /// `reboot`.
    Reboot,
}

/// One virsh mode name as the proto enum.
fn mode_of(name: &str) -> Option<pb::ShutdownMode> {
    Some(match name {
        "acpi" => pb::ShutdownMode::AcpiPowerBtn,
        "agent" => pb::ShutdownMode::GuestAgent,
        "initctl" => pb::ShutdownMode::Initctl,
        "signal" => pb::ShutdownMode::Signal,
        "paravirt" => pb::ShutdownMode::Paravirt,
        _ => return None,
    })
}

/// The `--mode` list of `shutdown`/`reboot` (comma-separated, as virsh's
/// `g_strsplit`), as proto modes. virsh ORs them into a flag set, so the
/// result is deduplicated and in enum order; no mode gives an empty list
/// (the hypervisor's default).
///
/// # Errors
/// virsh's `Unknown mode X value, expecting ...`, or the empty-argument
/// error for `--mode ''`.
pub fn parse_modes(mode: Option<&str>, which: ModeCommand) -> Result<Vec<pb::ShutdownMode>, Error> {
    let Some(mode) = mode else {
        return Ok(Vec::new());
    };
    if mode.is_empty() {
        return Err(Error::msg(
            "Failed to get option 'mode': Option argument is empty",
        ));
    }
    let mut modes = Vec::new();
    for name in mode.split(',') {
        let Some(m) = mode_of(name) else {
            let expecting = match which {
                ModeCommand::Shutdown => "'acpi', 'agent', 'initctl', 'signal', or 'paravirt'",
                ModeCommand::Reboot => "'acpi', 'agent', 'initctl', 'signal' or 'paravirt'",
            };
            return Err(Error::msg(format!(
                "Unknown mode {name} value, expecting {expecting}"
            )));
        };
        modes.push(m);
    }
    modes.sort_by_key(|m| *m as i32);
    modes.dedup();
    Ok(modes)
}

/// The `StartRequest` of `start`'s flags.
pub fn start_request(inv: &Invocation, d: &pb::Domain) -> pb::StartRequest {
    pb::StartRequest {
        domain: Some(uuid_ref(d)),
        paused: inv.flag("paused"),
        autodestroy: inv.flag("autodestroy"),
        bypass_cache: inv.flag("bypass-cache"),
        force_boot: inv.flag("force-boot"),
        reset_nvram: inv.flag("reset-nvram"),
    }
}

/// The `CreateRequest` of `create`'s flags.
pub fn create_request(inv: &Invocation, xml: String) -> pb::CreateRequest {
    pb::CreateRequest {
        xml,
        start_paused: inv.flag("paused"),
        autodestroy: inv.flag("autodestroy"),
        validate: inv.flag("validate"),
        reset_nvram: inv.flag("reset-nvram"),
    }
}

/// The `DestroyRequest` of `destroy`'s flags.
pub fn destroy_request(inv: &Invocation, d: &pb::Domain) -> pb::DestroyRequest {
    pb::DestroyRequest {
        domain: Some(uuid_ref(d)),
        graceful: inv.flag("graceful"),
        remove_logs: inv.flag("remove-logs"),
    }
}

/// Whether a failed call is one virsh treats as "not supported by this
/// server" (`VIR_ERR_NO_SUPPORT` or `VIR_ERR_INVALID_ARG`, or a method the
/// daemon does not know at all).
fn unsupported(e: &Error) -> bool {
    match e.detail() {
        Some(d) => {
            d.code == ErrorCode::NoSupport.number() || d.code == ErrorCode::InvalidArg.number()
        }
        None => matches!(e, Error::Rpc(s) if s.code() == tonic::Code::Unimplemented),
    }
}

/// How a failed start is reported. virsh prints
/// `Failed to start domain 'NAME'` and the daemon's error; but a
/// `--force-boot` start that fails for another reason than "unsupported"
/// (on which virsh falls back to an ordinary start) is reported with the
/// daemon's error alone.
pub fn start_error(force_boot: bool, name: &str, e: Error) -> Error {
    if force_boot && !unsupported(&e) {
        return e;
    }
    Error::context(format!("Failed to start domain '{name}'"), Some(e))
}

/// `start DOMAIN [--paused] [--autodestroy] [--bypass-cache] [--force-boot] [--reset-nvram]`.
fn cmd_start<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, _) = opt_domain(ctl, inv, BY_NAME | BY_UUID).await?;
        if d.id >= 0 {
            return Err(Error::msg("Domain is already active"));
        }
        client
            .start(start_request(inv, &d))
            .await
            .map_err(|s| start_error(inv.flag("force-boot"), &d.name, s.into()))?;
        print_extra(ctl, &format!("Domain '{}' started", d.name))
    })
}

/// `create FILE [--paused] [--autodestroy] [--validate] [--reset-nvram]`.
fn cmd_create<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let file = string_req(inv, "file")?.unwrap_or_default();
        let xml = read_xml_file(file)?;
        let mut client = ctl.domain().await?;
        let d = client
            .create(create_request(inv, xml))
            .await
            .map_err(|s| {
                Error::context(
                    format!("Failed to create domain from {file}"),
                    Some(s.into()),
                )
            })?
            .into_inner()
            .domain
            .unwrap_or_default();
        print_extra(ctl, &format!("Domain '{}' created from {file}", d.name))
    })
}

/// `shutdown DOMAIN [--mode acpi|agent|initctl|signal|paravirt[,...]]`.
fn cmd_shutdown<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let modes = parse_modes(string_req(inv, "mode")?, ModeCommand::Shutdown)?;
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        let req = pb::ShutdownRequest {
            domain: Some(uuid_ref(&d)),
            modes: modes.into_iter().map(|m| m as i32).collect(),
        };
        client.shutdown(req).await.map_err(|s| {
            Error::context(format!("Failed to shutdown domain '{arg}'"), Some(s.into()))
        })?;
        print_extra(ctl, &format!("Domain '{arg}' is being shutdown"))
    })
}

/// `reboot DOMAIN [--mode acpi|agent|initctl|signal|paravirt[,...]]`.
fn cmd_reboot<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let modes = parse_modes(string_req(inv, "mode")?, ModeCommand::Reboot)?;
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        let req = pb::RebootRequest {
            domain: Some(uuid_ref(&d)),
            modes: modes.into_iter().map(|m| m as i32).collect(),
            timeout_ms: 0,
        };
        client.reboot(req).await.map_err(|s| {
            Error::context(format!("Failed to reboot domain '{arg}'"), Some(s.into()))
        })?;
        print_extra(ctl, &format!("Domain '{arg}' is being rebooted"))
    })
}

/// `reset DOMAIN`.
fn cmd_reset<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        let req = pb::ResetRequest {
            domain: Some(uuid_ref(&d)),
        };
        client.reset(req).await.map_err(|s| {
            Error::context(format!("Failed to reset domain '{arg}'"), Some(s.into()))
        })?;
        print_extra(ctl, &format!("Domain '{arg}' was reset"))
    })
}

/// `destroy DOMAIN [--graceful] [--remove-logs]`.
fn cmd_destroy<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        client
            .destroy(destroy_request(inv, &d))
            .await
            .map_err(|s| {
                Error::context(format!("Failed to destroy domain '{arg}'"), Some(s.into()))
            })?;
        print_extra(ctl, &format!("Domain '{arg}' destroyed"))
    })
}

/// `suspend DOMAIN`.
fn cmd_suspend<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        let req = pb::SuspendRequest {
            domain: Some(uuid_ref(&d)),
        };
        client.suspend(req).await.map_err(|s| {
            Error::context(format!("Failed to suspend domain '{arg}'"), Some(s.into()))
        })?;
        print_extra(ctl, &format!("Domain '{arg}' suspended"))
    })
}

/// `resume DOMAIN`.
fn cmd_resume<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        let req = pb::ResumeRequest {
            domain: Some(uuid_ref(&d)),
        };
        client.resume(req).await.map_err(|s| {
            Error::context(format!("Failed to resume domain '{arg}'"), Some(s.into()))
        })?;
        print_extra(ctl, &format!("Domain '{arg}' resumed"))
    })
}

/// `domxml-to-native FORMAT { [--xml] FILE | --domain DOMAIN }`: the native
/// configuration, printed as the daemon returns it (virsh adds no newline).
fn cmd_domxml_to_native<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let format = string_req(inv, "format")?.unwrap_or_default().to_owned();
        let file = string_req(inv, "xml")?;
        exclusive(inv, "domain", "xml")?;
        let domain = string_req(inv, "domain")?;
        if domain.is_none() && file.is_none() {
            return Err(Error::msg("need either domain or domain XML"));
        }
        let mut client = ctl.domain().await?;
        let xml = if let Some(arg) = domain {
            let d = lookup(&mut client, arg, BY_ANY).await?;
            let req = pb::GetXmlRequest {
                domain: Some(uuid_ref(&d)),
                ..Default::default()
            };
            client
                .get_xml(req)
                .await
                .map_err(|s| Error::context("failed to retrieve XML", Some(s.into())))?
                .into_inner()
                .xml
        } else {
            read_xml_file(file.unwrap_or_default())?
        };
        let req = pb::DomainXmlToNativeRequest {
            native_format: format,
            xml,
        };
        let native = client.domain_xml_to_native(req).await?.into_inner();
        ctl.out().write_all(native.native_config.as_bytes())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
