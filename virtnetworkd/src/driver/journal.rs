//! Crash safety of a live `net-update`: its result is written down
//! before anything changes, so a daemon killed half-way finishes it at
//! its next start instead of leaving the definition file, the status
//! file and dnsmasq's hosts files disagreeing.
//!
//! A live update changes up to three places one after the other: the
//! definition file (with `config`), dnsmasq's files (then a SIGHUP or a
//! restart), and the status file. Each write is atomic, the sequence is
//! not. So before the first of them the final definitions go to
//! `<run>/network/<name>.update`:
//!
//! ```xml
//! <networkupdate restart='no'>
//!   <config>
//!     <network>...the new persistent definition (with config)...</network>
//!   </config>
//!   <live>
//!     <network>...the new live definition...</network>
//!   </live>
//! </networkupdate>
//! ```
//!
//! and it is removed when the status file has the new live definition.
//! A daemon that starts and finds one rolls the update forward: before
//! the definitions load, the definition file and the status file get the
//! journal's definitions; once the running networks are adopted, dnsmasq
//! is refreshed from the live one (SIGHUP, or a restart when `restart`
//! says so) and the journal is removed. A daemon killed before the
//! journal was written (it is written atomically) changed nothing.
//! Config-only updates are one atomic write and need no journal. An
//! update whose live part fails puts the old definition file back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::fsutil;
use common::network::NetworkDef;
use common::objlist::ObjRef;
use common::xml::{self, FormatFlags, Node, ParseFlags};

use super::{NetworkDriver, blocking};
use crate::status::NetworkStatus;

/// The suffix of journal files in the run directory.
const SUFFIX: &str = ".update";

/// One journalled update: the definitions it ends with.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Journal {
    /// The new persistent definition, with `config`.
    pub config: Option<NetworkDef>,
    /// The new live definition.
    pub live: Option<NetworkDef>,
    /// dnsmasq must be restarted (not only sent SIGHUP).
    pub restart: bool,
}

/// `<run>/<name>.update`.
pub(super) fn path(run: &Path, name: &str) -> PathBuf {
    run.join(format!("{name}{SUFFIX}"))
}

fn indent(text: &str, by: &str) -> String {
    let mut s = String::with_capacity(text.len() + 128);
    for l in text.lines() {
        if !l.is_empty() {
            s.push_str(by);
        }
        s.push_str(l);
        s.push('\n');
    }
    s
}

impl Journal {
    /// Its file content.
    pub fn format(&self) -> String {
        let mut s = format!(
            "<networkupdate restart='{}'>\n",
            if self.restart { "yes" } else { "no" }
        );
        if let Some(c) = &self.config {
            let x = c.to_xml(FormatFlags {
                inactive: true,
                ..FormatFlags::default()
            });
            s.push_str(&format!("  <config>\n{}  </config>\n", indent(&x, "    ")));
        }
        if let Some(l) = &self.live {
            let x = l.to_xml(FormatFlags::default());
            s.push_str(&format!("  <live>\n{}  </live>\n", indent(&x, "    ")));
        }
        s.push_str("</networkupdate>\n");
        s
    }

    /// Parses a journal file.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<Journal, String> {
        let root = xml::parse(text).map_err(|e| e.to_string())?;
        if root.name != "networkupdate" {
            return Err(format!("unexpected root <{}>", root.name));
        }
        let def = |part: &str, flags: ParseFlags| -> Result<Option<NetworkDef>, String> {
            let Some(p) = root.child(part) else {
                return Ok(None);
            };
            let net = p
                .child("network")
                .ok_or_else(|| format!("<{part}> without <network>"))?;
            NetworkDef::parse(Node::root(net), flags)
                .map(Some)
                .map_err(|e| format!("<{part}>: {e}"))
        };
        Ok(Journal {
            config: def(
                "config",
                ParseFlags {
                    inactive: true,
                    ..ParseFlags::default()
                },
            )?,
            live: def("live", ParseFlags::default())?,
            restart: root.attr("restart") == Some("yes"),
        })
    }
}

/// Writes the journal of network `name` (atomically: the old one or the
/// new one, never a mix).
///
/// # Errors
/// It cannot be written.
pub(super) fn write(run: &Path, name: &str, j: &Journal) -> std::io::Result<()> {
    std::fs::create_dir_all(run)?;
    fsutil::write_atomic(&path(run, name), j.format().as_bytes())
}

/// Removes the journal of `name` (missing is fine).
pub(super) fn remove(run: &Path, name: &str) {
    match std::fs::remove_file(path(run, name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::error!(network = name, "cannot remove the update journal: {e}");
        }
        _ => {}
    }
}

/// Every journal in `run`: network name and content (or why it cannot be
/// read).
fn scan(run: &Path) -> Vec<(String, Result<Journal, String>)> {
    let Ok(rd) = std::fs::read_dir(run) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Some(name) = e
            .file_name()
            .to_str()
            .filter(|n| !n.starts_with('.'))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .map(str::to_owned)
        else {
            continue;
        };
        let j = std::fs::read_to_string(e.path())
            .map_err(|e| e.to_string())
            .and_then(|t| Journal::parse(&t));
        out.push((name, j));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

impl NetworkDriver {
    /// First half of the roll-forward, before the definitions load and
    /// the running networks are adopted: every journalled update's
    /// definition file and status file get its definitions. Returns the
    /// networks whose dnsmasq [`NetworkDriver::finish_updates`] must
    /// refresh; their journals stay until then.
    pub(super) fn roll_forward_files(&self) -> Vec<(String, bool)> {
        let mut pending = Vec::new();
        for (name, j) in scan(&self.run_dir) {
            let j = match j {
                Ok(j) => j,
                Err(e) => {
                    // Written atomically: an unreadable one is not ours to
                    // guess at. Nothing was changed before it was written.
                    tracing::error!(
                        network = %name,
                        "unreadable update journal ({e}): the update is dropped"
                    );
                    remove(&self.run_dir, &name);
                    continue;
                }
            };
            if j.config.as_ref().is_some_and(|c| c.name != name)
                || j.live.as_ref().is_some_and(|l| l.name != name)
            {
                tracing::error!(network = %name, "update journal names another network: dropped");
                remove(&self.run_dir, &name);
                continue;
            }
            if let Some(c) = &j.config {
                let text = c.to_xml(FormatFlags {
                    inactive: true,
                    ..FormatFlags::default()
                });
                if let Err(e) = self.store.save(&name, &text) {
                    tracing::error!(network = %name, "cannot finish an update's definition: {e}");
                }
            }
            if let Some(l) = j.live {
                // Only a network that ran at the update has a status file;
                // without one there is nothing live to finish.
                let current = std::fs::read_to_string(self.status.file(&name))
                    .ok()
                    .and_then(|t| crate::status::parse(&t).ok());
                if let Some(cur) = current {
                    if let Err(e) = self.status.save(&NetworkStatus {
                        def: l,
                        runtime: cur.runtime,
                    }) {
                        tracing::error!(network = %name, "cannot finish an update's status: {e}");
                    }
                    pending.push((name, j.restart));
                    continue;
                }
            }
            remove(&self.run_dir, &name);
            tracing::info!(network = %name, "interrupted update finished");
        }
        pending
    }

    /// Second half, once the running networks are adopted: dnsmasq of
    /// each rolled-forward network re-reads its files (or restarts), the
    /// status file records it, and the journal goes.
    pub(super) async fn finish_updates(&self, pending: Vec<(String, bool)>) {
        for (name, restart) in pending {
            let Ok(obj) = self.find(&ObjRef::Name(name.clone())) else {
                remove(&self.run_dir, &name);
                continue;
            };
            let _job = obj.job.lock().await;
            let (def, rt, active) = {
                let st = obj.lock();
                (st.def.clone(), st.runtime.clone(), st.active)
            };
            if active {
                let host = self.host.clone();
                let status = self.status.clone();
                let def2: Arc<NetworkDef> = def.clone();
                let r = blocking(move || {
                    let mut rt = rt.unwrap_or_default();
                    rt.dnsmasq = host.refresh_dnsmasq(&def2, rt.dnsmasq, restart)?;
                    status
                        .save(&NetworkStatus {
                            def: (*def2).clone(),
                            runtime: rt.clone(),
                        })
                        .map_err(super::system_error)?;
                    Ok(rt)
                })
                .await;
                match r {
                    Ok(rt) => obj.lock().runtime = Some(rt),
                    Err(e) => {
                        tracing::error!(network = %name, "cannot refresh dnsmasq after an interrupted update: {}", e.message);
                    }
                }
            }
            remove(&self.run_dir, &name);
            tracing::info!(network = %name, "interrupted update finished");
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn net(xml: &str, inactive: bool) -> NetworkDef {
        NetworkDef::parse_str(
            xml,
            ParseFlags {
                inactive,
                ..ParseFlags::default()
            },
        )
        .expect("network")
    }

    #[test]
    fn journal_round_trips() {
        let x = "<network><name>n</name><uuid>81ff0d90-c91e-6742-64da-4a736edb9a9c</uuid>\
                 <bridge name='vb0'/><ip address='10.0.0.1' prefix='24'><dhcp>\
                 <range start='10.0.0.10' end='10.0.0.20'/>\
                 <host mac='52:54:00:00:00:01' ip='10.0.0.11'/></dhcp></ip></network>";
        let j = Journal {
            config: Some(net(x, true)),
            live: Some(net(x, false)),
            restart: true,
        };
        // What is written reads back as the same definitions (the
        // format fills defaults, so compare what is written).
        let back = Journal::parse(&j.format()).expect("parse");
        assert_eq!(back.format(), j.format());
        assert!(back.restart);
        assert_eq!(
            back.config.as_ref().map(|c| c.ips[0].dhcp.hosts.len()),
            Some(1)
        );
        let live_only = Journal { config: None, ..j };
        let back = Journal::parse(&live_only.format()).expect("parse");
        assert!(back.config.is_none());
        assert_eq!(back.format(), live_only.format());
        assert!(Journal::parse("<networkstatus/>").is_err());
        assert!(Journal::parse("<networkupdate><live/></networkupdate>").is_err());
    }

    #[test]
    fn scan_finds_journals_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal {
            config: None,
            live: Some(net(
                "<network><name>a</name><uuid>81ff0d90-c91e-6742-64da-4a736edb9a9c</uuid></network>",
                false,
            )),
            restart: false,
        };
        write(dir.path(), "a", &j).expect("write");
        std::fs::write(dir.path().join("a.xml"), "status").expect("status");
        std::fs::write(dir.path().join("b.update"), "garbage").expect("garbage");
        let found = scan(dir.path());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "a");
        assert_eq!(found[0].1.as_ref().expect("a parses").format(), j.format());
        assert!(found[1].1.is_err());
        remove(dir.path(), "a");
        remove(dir.path(), "a");
        assert!(!path(dir.path(), "a").exists());
    }
}
