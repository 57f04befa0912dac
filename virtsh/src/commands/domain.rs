//! "Domain Management" commands: `define`, `undefine`, `dumpxml`,
//! `autostart`, `domid`, `domname`, `domuuid`; and the domain lookup every
//! domain command shares (virsh's `virshLookupDomainBy`).

use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::connection::VirtChannel;
use crate::ctl::Ctl;
use crate::error::Error;

/// The client every domain command uses.
pub(crate) type Client = DomainServiceClient<VirtChannel>;

/// Look the domain up by id.
pub(crate) const BY_ID: u8 = 1;
/// Look the domain up by UUID.
pub(crate) const BY_UUID: u8 = 2;
/// Look the domain up by name.
pub(crate) const BY_NAME: u8 = 4;
/// Any of the three, in virsh's order.
pub(crate) const BY_ANY: u8 = BY_ID | BY_UUID | BY_NAME;

/// The `<domain>` option of most commands.
pub(crate) const OPT_DOMAIN: OptDef = OptDef::string("domain", "domain name, id or uuid")
    .required()
    .positional();

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "define",
        Group::Domain,
        "define (but don't start) a domain from an XML file",
        "Define a domain.",
        cmd_define,
    )
    .opts(&[
        OptDef::string("file", "file containing an XML domain description")
            .required()
            .positional(),
        OptDef::flag("validate", "validate the XML against the schema"),
    ]),
    CommandDef::new(
        "undefine",
        Group::Domain,
        "undefine a domain",
        "Undefine an inactive domain, or convert persistent to transient.",
        cmd_undefine,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::flag("managed-save", "remove domain managed state file"),
        OptDef::flag(
            "snapshots-metadata",
            "remove all domain snapshot metadata (vm must be inactive)",
        ),
        OptDef::flag(
            "checkpoints-metadata",
            "remove all domain checkpoint metadata (vm must be inactive)",
        ),
        OptDef::flag("nvram", "remove nvram file"),
        OptDef::flag("keep-nvram", "keep nvram file"),
        OptDef::flag("keep-tpm", "keep TPM state"),
    ]),
    CommandDef::new(
        "dumpxml",
        Group::Domain,
        "domain information in XML",
        "Output the domain information as an XML dump to stdout.",
        cmd_dumpxml,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::flag("inactive", "show inactive defined XML"),
        OptDef::flag(
            "security-info",
            "include security sensitive information in XML dump",
        ),
        OptDef::flag("update-cpu", "update guest CPU according to host CPU"),
        OptDef::flag("migratable", "provide XML suitable for migrations"),
    ]),
    CommandDef::new(
        "autostart",
        Group::Domain,
        "autostart a domain",
        "Configure a domain to be automatically started at boot.",
        cmd_autostart,
    )
    .opts(&[OPT_DOMAIN, OptDef::flag("disable", "disable autostarting")]),
    CommandDef::new(
        "domid",
        Group::Domain,
        "convert a domain name or UUID to domain id",
        "",
        cmd_domid,
    )
    .opts(&[OptDef::string("domain", "domain name or uuid")
        .required()
        .positional()]),
    CommandDef::new(
        "domname",
        Group::Domain,
        "convert a domain id or UUID to domain name",
        "",
        cmd_domname,
    )
    .opts(&[OptDef::string("domain", "domain id or uuid")
        .required()
        .positional()]),
    CommandDef::new(
        "domuuid",
        Group::Domain,
        "convert a domain name or id to domain UUID",
        "",
        cmd_domuuid,
    )
    .opts(&[OptDef::string("domain", "domain id or name")
        .required()
        .positional()]),
];

/// A `DomainRef` naming `d` by UUID (stable across renames and restarts).
pub(crate) fn uuid_ref(d: &pb::Domain) -> pb::DomainRef {
    pb::DomainRef {
        by: Some(pb::domain_ref::By::Uuid(d.uuid.clone())),
    }
}

/// Finds the domain `arg` names, as virsh's `virshLookupDomainBy`: by id
/// if `arg` is a non-negative integer, then by UUID if it is UUID-long,
/// then by name, as `by` allows.
///
/// # Errors
/// `failed to get domain 'arg'`, then the last lookup's error (if one was
/// made).
pub(crate) async fn lookup(client: &mut Client, arg: &str, by: u8) -> Result<pb::Domain, Error> {
    let mut attempts: Vec<pb::domain_ref::By> = Vec::new();
    if by & BY_ID != 0
        && let Ok(id) = arg.trim_start().parse::<i32>()
        && id >= 0
    {
        attempts.push(pb::domain_ref::By::Id(id));
    }
    if by & BY_UUID != 0 && arg.len() == 36 {
        attempts.push(pb::domain_ref::By::Uuid(arg.to_owned()));
    }
    if by & BY_NAME != 0 {
        attempts.push(pb::domain_ref::By::Name(arg.to_owned()));
    }
    let mut last = None;
    for by in attempts {
        let req = pb::LookupDomainRequest {
            domain: Some(pb::DomainRef { by: Some(by) }),
        };
        match client.lookup_domain(req).await {
            Ok(r) => {
                if let Some(d) = r.into_inner().domain {
                    return Ok(d);
                }
            }
            Err(s) => last = Some(Error::from(s)),
        }
    }
    Err(Error::context(
        format!("failed to get domain '{arg}'"),
        last,
    ))
}

/// The domain of the `domain` option, looked up with `by`.
pub(crate) async fn opt_domain(
    ctl: &mut Ctl,
    inv: &Invocation,
    by: u8,
) -> Result<(Client, pb::Domain, String), Error> {
    let arg = string_req(inv, "domain")?.unwrap_or_default().to_owned();
    let mut client = ctl.domain().await?;
    let d = lookup(&mut client, &arg, by).await?;
    Ok((client, d, arg))
}

/// virsh's `vshPrintExtra`: output that `-q` silences.
pub(crate) fn print_extra(ctl: &mut Ctl, line: &str) -> Result<(), Error> {
    if !ctl.settings.quiet {
        writeln!(ctl.out(), "{line}")?;
    }
    Ok(())
}

/// An OS error as libvirt prints it (`strerror`, no "(os error N)").
pub(crate) fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_owned(),
        None => e.to_string(),
    }
}

/// virsh's `vshCommandOptStringReq`: the value of a string option, which
/// must not be empty when given.
///
/// # Errors
/// `Failed to get option 'NAME': Option argument is empty`.
pub(crate) fn string_req<'a>(inv: &'a Invocation, name: &str) -> Result<Option<&'a str>, Error> {
    match inv.string(name) {
        Some("") => Err(Error::msg(format!(
            "Failed to get option '{name}': Option argument is empty"
        ))),
        v => Ok(v),
    }
}

/// virsh's `virFileReadAll` of an XML file.
///
/// # Errors
/// `Failed to open file 'FILE': <strerror>`.
pub(crate) fn read_xml_file(file: &str) -> Result<String, Error> {
    std::fs::read_to_string(file)
        .map_err(|e| Error::msg(format!("Failed to open file '{file}': {}", strerror(&e))))
}

/// virsh's "Options --a and --b are mutually exclusive".
pub(crate) fn exclusive(inv: &Invocation, a: &str, b: &str) -> Result<(), Error> {
    if inv.is_set(a) && inv.is_set(b) {
        return Err(Error::msg(format!(
            "Options --{a} and --{b} are mutually exclusive"
        )));
    }
    Ok(())
}

/// `define FILE [--validate]`.
fn cmd_define<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let file = string_req(inv, "file")?.unwrap_or_default();
        let xml = read_xml_file(file)?;
        let mut client = ctl.domain().await?;
        let req = pb::DefineXmlRequest {
            xml,
            validate: inv.flag("validate"),
        };
        let d = client
            .define_xml(req)
            .await
            .map_err(|s| {
                Error::context(
                    format!("Failed to define domain from {file}"),
                    Some(s.into()),
                )
            })?
            .into_inner()
            .domain
            .unwrap_or_default();
        print_extra(ctl, &format!("Domain '{}' defined from {file}", d.name))
    })
}

/// `undefine DOMAIN [flags]`.
fn cmd_undefine<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        exclusive(inv, "nvram", "keep-nvram")?;
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        let req = pb::UndefineRequest {
            domain: Some(uuid_ref(&d)),
            managed_save: inv.flag("managed-save"),
            snapshots_metadata: inv.flag("snapshots-metadata"),
            checkpoints_metadata: inv.flag("checkpoints-metadata"),
            nvram: inv.flag("nvram"),
            keep_nvram: inv.flag("keep-nvram"),
            keep_tpm: inv.flag("keep-tpm"),
        };
        client.undefine(req).await.map_err(|s| {
            Error::context(format!("Failed to undefine domain '{arg}'"), Some(s.into()))
        })?;
        print_extra(ctl, &format!("Domain '{arg}' has been undefined"))
    })
}

/// `dumpxml DOMAIN [--inactive] [--security-info] [--update-cpu] [--migratable]`.
fn cmd_dumpxml<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let req = pb::GetXmlRequest {
            domain: Some(uuid_ref(&d)),
            inactive: inv.flag("inactive"),
            secure: inv.flag("security-info"),
            update_cpu: inv.flag("update-cpu"),
            migratable: inv.flag("migratable"),
        };
        let xml = client.get_xml(req).await?.into_inner().xml;
        let out = ctl.out();
        out.write_all(xml.as_bytes())?;
        if !xml.ends_with('\n') {
            writeln!(out)?;
        }
        Ok(())
    })
}

/// `autostart DOMAIN [--disable]`.
fn cmd_autostart<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, arg) = opt_domain(ctl, inv, BY_ANY).await?;
        let on = !inv.flag("disable");
        let req = pb::SetAutostartRequest {
            domain: Some(uuid_ref(&d)),
            autostart: on,
        };
        client.set_autostart(req).await.map_err(|s| {
            let msg = if on {
                format!("Failed to mark domain '{arg}' as autostarted")
            } else {
                format!("Failed to unmark domain '{arg}' as autostarted")
            };
            Error::context(msg, Some(s.into()))
        })?;
        let line = if on {
            format!("Domain '{arg}' marked as autostarted")
        } else {
            format!("Domain '{arg}' unmarked as autostarted")
        };
        print_extra(ctl, &line)
    })
}

/// `domid DOMAIN`: `-` for an inactive domain.
fn cmd_domid<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, d, _) = opt_domain(ctl, inv, BY_NAME | BY_UUID).await?;
        if d.id < 0 {
            writeln!(ctl.out(), "-")?;
        } else {
            writeln!(ctl.out(), "{}", d.id)?;
        }
        Ok(())
    })
}

/// `domname DOMAIN`.
fn cmd_domname<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, d, _) = opt_domain(ctl, inv, BY_ID | BY_UUID).await?;
        writeln!(ctl.out(), "{}", d.name)?;
        Ok(())
    })
}

/// `domuuid DOMAIN`.
fn cmd_domuuid<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, d, _) = opt_domain(ctl, inv, BY_ID | BY_NAME).await?;
        writeln!(ctl.out(), "{}", d.uuid)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_has_no_os_error_suffix() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(strerror(&e), "No such file or directory");
    }
}
