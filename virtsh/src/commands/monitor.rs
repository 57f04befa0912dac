//! "Domain Monitoring" commands: `list`, `dominfo`, `domstate`, with
//! virsh's output (`tools/virsh-domain-monitor.c`).

use proto::domain::v1 as pb;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{BY_ANY, OPT_DOMAIN, exclusive, opt_domain, uuid_ref};
use crate::ctl::Ctl;
use crate::error::Error;
use crate::table::Table;

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "list",
        Group::Monitor,
        "list domains",
        "Returns list of domains.",
        cmd_list,
    )
    .opts(&[
        OptDef::flag("inactive", "list inactive domains"),
        OptDef::flag("all", "list inactive & active domains"),
        OptDef::flag("transient", "list transient domains"),
        OptDef::flag("persistent", "list persistent domains"),
        OptDef::flag("with-snapshot", "list domains with existing snapshot"),
        OptDef::flag("without-snapshot", "list domains without a snapshot"),
        OptDef::flag("with-checkpoint", "list domains with existing checkpoint"),
        OptDef::flag("without-checkpoint", "list domains without a checkpoint"),
        OptDef::flag("state-running", "list domains in running state"),
        OptDef::flag("state-paused", "list domains in paused state"),
        OptDef::flag("state-shutoff", "list domains in shutoff state"),
        OptDef::flag("state-other", "list domains in other states"),
        OptDef::flag("autostart", "list domains with autostart enabled"),
        OptDef::flag("no-autostart", "list domains with autostart disabled"),
        OptDef::flag("with-managed-save", "list domains with managed save state"),
        OptDef::flag("without-managed-save", "list domains without managed save"),
        OptDef::flag("uuid", "list uuid's only"),
        OptDef::flag("name", "list domain names only"),
        OptDef::flag("id", "list domain IDs only"),
        OptDef::flag("table", "list table (default)"),
        OptDef::flag(
            "managed-save",
            "mark inactive domains with managed save state",
        ),
        OptDef::flag("title", "show domain title"),
    ]),
    CommandDef::new(
        "dominfo",
        Group::Monitor,
        "domain information",
        "Returns basic information about the domain.",
        cmd_dominfo,
    )
    .opts(&[OPT_DOMAIN]),
    CommandDef::new(
        "domstate",
        Group::Monitor,
        "domain state",
        "Returns state about a domain.",
        cmd_domstate,
    )
    .opts(&[
        OPT_DOMAIN,
        OptDef::flag("reason", "also print reason for the state"),
    ]),
];

/// virsh's `virshDomainStateToString`.
pub fn state_str(state: i32) -> &'static str {
    match state {
        1 => "running",
        2 => "idle",
        3 => "paused",
        4 => "in shutdown",
        5 => "shut off",
        6 => "crashed",
        7 => "pmsuspended",
        _ => "no state",
    }
}

/// virsh's `virshDomainStateReasonToString`.
pub fn reason_str(state: i32, reason: i32) -> &'static str {
    let table: &[&str] = match state {
        0 | 2 | 7 => &["unknown"],
        1 => &[
            "unknown",
            "booted",
            "migrated",
            "restored",
            "from snapshot",
            "unpaused",
            "migration canceled",
            "save canceled",
            "event wakeup",
            "crashed",
            "post-copy",
            "post-copy failed",
        ],
        3 => &[
            "unknown",
            "user",
            "migrating",
            "saving",
            "dumping",
            "I/O error",
            "watchdog",
            "from snapshot",
            "shutting down",
            "creating snapshot",
            "crashed",
            "starting up",
            "post-copy",
            "post-copy failed",
            "api error",
        ],
        4 => &["unknown", "user"],
        5 => &[
            "unknown",
            "shutdown",
            "destroyed",
            "crashed",
            "migrated",
            "saved",
            "failed",
            "from snapshot",
            "daemon",
        ],
        6 => &["unknown", "panicked"],
        _ => &[],
    };
    usize::try_from(reason)
        .ok()
        .and_then(|r| table.get(r).copied())
        .unwrap_or("unknown")
}

/// A `(with, without)` flag pair as a filter: only one of them filters.
fn pair(inv: &Invocation, with: &str, without: &str) -> Option<bool> {
    match (inv.flag(with), inv.flag(without)) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// The filter virsh's `cmdList` builds from its flags.
pub fn list_filter(inv: &Invocation) -> pb::DomainListFilter {
    use pb::DomainState as S;
    // Default: active domains; --inactive (or --state-shutoff): inactive;
    // --all: both.
    let mut active = Some(true);
    if inv.flag("inactive") || inv.flag("state-shutoff") {
        active = Some(false);
    }
    if inv.flag("all") {
        active = None;
    }
    let mut states = Vec::new();
    if inv.flag("state-running") {
        states.push(S::Running as i32);
    }
    if inv.flag("state-paused") {
        states.push(S::Paused as i32);
    }
    if inv.flag("state-shutoff") {
        states.push(S::Shutoff as i32);
    }
    if inv.flag("state-other") {
        for s in [
            S::Nostate,
            S::Blocked,
            S::Shutdown,
            S::Crashed,
            S::Pmsuspended,
        ] {
            states.push(s as i32);
        }
    }
    pb::DomainListFilter {
        active,
        persistent: pair(inv, "persistent", "transient"),
        autostart: pair(inv, "autostart", "no-autostart"),
        managed_save: pair(inv, "with-managed-save", "without-managed-save"),
        has_snapshot: pair(inv, "with-snapshot", "without-snapshot"),
        has_checkpoint: pair(inv, "with-checkpoint", "without-checkpoint"),
        states,
    }
}

/// virsh's `virshDomainSorter`: running domains by id, then the others by
/// name, case-insensitively.
pub fn sort_domains(v: &mut [pb::DomainSummary]) {
    v.sort_by(|a, b| {
        let (da, db) = (
            a.domain.clone().unwrap_or_default(),
            b.domain.clone().unwrap_or_default(),
        );
        match (da.id >= 0, db.id >= 0) {
            (true, true) => da.id.cmp(&db.id),
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (false, false) => da
                .name
                .to_ascii_lowercase()
                .cmp(&db.name.to_ascii_lowercase()),
        }
    });
}

/// `list [filters] [--name|--uuid|--id|--table] [--title] [--managed-save]`.
fn cmd_list<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        exclusive(inv, "table", "name")?;
        exclusive(inv, "table", "id")?;
        let (opt_uuid, opt_name, opt_id, opt_title) = (
            inv.flag("uuid"),
            inv.flag("name"),
            inv.flag("id"),
            inv.flag("title"),
        );
        let opt_table = inv.flag("table") || (!opt_uuid && !opt_name && !opt_id);
        let managed = inv.flag("managed-save");
        let mut client = ctl.domain().await?;
        let req = pb::ListAllDomainsRequest {
            filter: Some(list_filter(inv)),
        };
        let mut domains = client
            .list_all_domains(req)
            .await
            .map_err(|s| Error::context("Failed to list domains", Some(s.into())))?
            .into_inner()
            .domains;
        sort_domains(&mut domains);
        let mut header = vec!["Id", "Name", "State"];
        if opt_title {
            header.push("Title");
        }
        if opt_uuid {
            header.push("UUID");
        }
        let mut table = Table::new(&header);
        let mut text = String::new();
        for s in &domains {
            let d = s.domain.clone().unwrap_or_default();
            let id = if d.id >= 0 {
                d.id.to_string()
            } else {
                "-".to_owned()
            };
            if opt_table {
                let state = if managed
                    && s.state == pb::DomainState::Shutoff as i32
                    && s.has_managed_save
                {
                    "saved"
                } else {
                    state_str(s.state)
                };
                let mut row = vec![id, d.name.clone(), state.to_owned()];
                if opt_title {
                    row.push(s.title.clone());
                }
                if opt_uuid {
                    row.push(d.uuid.clone());
                }
                table.row(row);
                continue;
            }
            let mut fields: Vec<&str> = Vec::new();
            if opt_uuid {
                fields.push(&d.uuid);
            }
            if opt_id {
                // Ids only for running domains, unless more is printed.
                if d.id < 0 && !opt_uuid && !opt_name {
                    continue;
                }
                fields.push(&id);
            }
            if opt_name {
                fields.push(&d.name);
            }
            text.push_str(&fields.join(" "));
            text.push('\n');
        }
        if opt_table {
            text = table.render(!ctl.settings.quiet);
        }
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// The `<os><type>` of a domain XML.
fn os_type(xml: &str) -> Option<String> {
    let root = common::xml::parse(xml).ok()?;
    Some(root.child("os")?.child("type")?.text())
}

/// `dominfo DOMAIN`.
fn cmd_dominfo<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let r = uuid_ref(&d);
        let mut lines: Vec<(&str, String)> = Vec::new();
        let id = if d.id >= 0 {
            d.id.to_string()
        } else {
            "-".to_owned()
        };
        lines.push(("Id:", id));
        lines.push(("Name:", d.name.clone()));
        lines.push(("UUID:", d.uuid.clone()));
        let xml = client
            .get_xml(pb::GetXmlRequest {
                domain: Some(r.clone()),
                ..Default::default()
            })
            .await;
        if let Some(t) = xml.ok().and_then(|x| os_type(&x.into_inner().xml)) {
            lines.push(("OS Type:", t));
        }
        let mut failed = None;
        match client
            .get_info(pb::GetInfoRequest {
                domain: Some(r.clone()),
            })
            .await
        {
            Ok(info) => {
                let info = info.into_inner();
                lines.push(("State:", state_str(info.state).to_owned()));
                lines.push(("CPU(s):", info.nr_virt_cpu.to_string()));
                if info.cpu_time_ns != 0 {
                    // Precision loss is irrelevant at 0.1 s.
                    #[allow(clippy::cast_precision_loss)]
                    let secs = info.cpu_time_ns as f64 / 1e9;
                    lines.push(("CPU time:", format!("{secs:.1}s")));
                }
                lines.push(("Max memory:", format!("{} KiB", info.max_mem_kib)));
                lines.push(("Used memory:", format!("{} KiB", info.memory_kib)));
            }
            Err(s) => failed = Some(Error::from(s)),
        }
        let summary = client
            .list_all_domains(pb::ListAllDomainsRequest { filter: None })
            .await
            .ok()
            .and_then(|l| {
                l.into_inner()
                    .domains
                    .into_iter()
                    .find(|s| s.domain.as_ref().is_some_and(|x| x.uuid == d.uuid))
            });
        let persistent = match &summary {
            Some(s) if s.persistent => "yes",
            Some(_) => "no",
            None => "unknown",
        };
        lines.push(("Persistent:", persistent.to_owned()));
        if let Ok(a) = client
            .get_autostart(pb::GetAutostartRequest {
                domain: Some(r.clone()),
            })
            .await
        {
            let a = if a.into_inner().autostart {
                "enable"
            } else {
                "disable"
            };
            lines.push(("Autostart:", a.to_owned()));
        }
        let saved = match &summary {
            Some(s) if s.has_managed_save => "yes",
            Some(_) => "no",
            None => "unknown",
        };
        lines.push(("Managed save:", saved.to_owned()));
        // virtqemud runs without a security driver: libvirt's "none" model.
        lines.push(("Security model:", "none".to_owned()));
        lines.push(("Security DOI:", "0".to_owned()));
        let out = ctl.out();
        for (k, v) in lines {
            writeln!(out, "{k:<15} {v}")?;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

/// `domstate DOMAIN [--reason]`.
fn cmd_domstate<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, d, _) = opt_domain(ctl, inv, BY_ANY).await?;
        let st = client
            .get_state(pb::GetStateRequest {
                domain: Some(uuid_ref(&d)),
            })
            .await?
            .into_inner();
        let line = domstate_line(st.state, st.reason, inv.flag("reason"));
        writeln!(ctl.out(), "{line}")?;
        Ok(())
    })
}

/// The line of `domstate`: `running`, or with `--reason` `running (booted)`.
pub fn domstate_line(state: i32, reason: i32, with_reason: bool) -> String {
    if with_reason {
        format!("{} ({})", state_str(state), reason_str(state, reason))
    } else {
        state_str(state).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_command;

    fn inv(words: &[&str]) -> Invocation {
        let words: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
        parse_command(&crate::commands::TABLE, &words).expect("parses")
    }

    #[test]
    fn state_and_reason_strings() {
        assert_eq!(state_str(5), "shut off");
        assert_eq!(reason_str(5, 0), "unknown");
        assert_eq!(reason_str(5, 2), "destroyed");
        assert_eq!(reason_str(1, 1), "booted");
        assert_eq!(reason_str(3, 99), "unknown");
        assert_eq!(state_str(42), "no state");
    }

    #[test]
    fn domstate_lines() {
        use pb::DomainState as S;
        let cases = [
            (S::Running, 1, "running (booted)"),
            (S::Running, 5, "running (unpaused)"),
            (S::Running, 9, "running (crashed)"),
            (S::Running, 11, "running (post-copy failed)"),
            (S::Blocked, 0, "idle (unknown)"),
            (S::Paused, 1, "paused (user)"),
            (S::Paused, 5, "paused (I/O error)"),
            (S::Paused, 11, "paused (starting up)"),
            (S::Paused, 14, "paused (api error)"),
            (S::Shutdown, 1, "in shutdown (user)"),
            (S::Shutoff, 0, "shut off (unknown)"),
            (S::Shutoff, 1, "shut off (shutdown)"),
            (S::Shutoff, 2, "shut off (destroyed)"),
            (S::Shutoff, 3, "shut off (crashed)"),
            (S::Shutoff, 5, "shut off (saved)"),
            (S::Shutoff, 6, "shut off (failed)"),
            (S::Shutoff, 8, "shut off (daemon)"),
            (S::Crashed, 1, "crashed (panicked)"),
            (S::Pmsuspended, 0, "pmsuspended (unknown)"),
            (S::Nostate, 0, "no state (unknown)"),
            (S::Running, 42, "running (unknown)"),
        ];
        for (state, reason, line) in cases {
            assert_eq!(domstate_line(state as i32, reason, true), line);
        }
        assert_eq!(domstate_line(S::Shutoff as i32, 3, false), "shut off");
        assert_eq!(domstate_line(S::Paused as i32, 1, false), "paused");
    }

    #[test]
    fn list_flags_become_filters() {
        let f = list_filter(&inv(&["list"]));
        assert_eq!(f.active, Some(true));
        let f = list_filter(&inv(&["list", "--inactive"]));
        assert_eq!(f.active, Some(false));
        let f = list_filter(&inv(&["list", "--all", "--persistent", "--autostart"]));
        assert_eq!(
            (f.active, f.persistent, f.autostart),
            (None, Some(true), Some(true))
        );
        let f = list_filter(&inv(&["list", "--persistent", "--transient"]));
        assert_eq!(f.persistent, None);
        let f = list_filter(&inv(&["list", "--state-shutoff", "--no-autostart"]));
        assert_eq!(f.active, Some(false));
        assert_eq!(f.states, [pb::DomainState::Shutoff as i32]);
        assert_eq!(f.autostart, Some(false));
        let f = list_filter(&inv(&["list", "--all", "--state-other"]));
        assert_eq!(f.states.len(), 5);
    }

    #[test]
    fn running_first_by_id_then_names_ignoring_case() {
        let s = |name: &str, id: i32| pb::DomainSummary {
            domain: Some(pb::Domain {
                name: name.into(),
                uuid: String::new(),
                id,
            }),
            ..Default::default()
        };
        let mut v = vec![s("b", -1), s("z", 7), s("A", -1), s("c", 3)];
        sort_domains(&mut v);
        let names: Vec<String> = v
            .iter()
            .map(|x| x.domain.clone().unwrap_or_default().name)
            .collect();
        assert_eq!(names, ["c", "z", "A", "b"]);
    }

    #[test]
    fn os_type_from_xml() {
        assert_eq!(
            os_type("<domain><os><type arch='x86_64'>hvm</type></os></domain>").as_deref(),
            Some("hvm")
        );
        assert_eq!(os_type("<domain/>"), None);
    }
}
