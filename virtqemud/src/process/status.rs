//! Status files: `<run>/qemu/<name>.xml`, one per running domain, written
//! atomically whenever its live state changes and removed when it stops
//! (libvirt's `<domstatus>`). A restarted daemon reconnects from them.
//!
//! ```xml
//! <domstatus state='1' reason='1' pid='4242' starttime='123456'>
//!   <monitor path='/var/lib/virt/qemu/domain-1-vm/monitor.sock'/>
//!   <domaindir path='/var/lib/virt/qemu/domain-1-vm'/>
//!   <log path='/var/log/virt/qemu/vm.log'/>
//!   <fakereboot/>
//!   <domain type='qemu' id='1'>... the live definition ...</domain>
//! </domstatus>
//! ```
//!
//! `state`/`reason` are libvirt's numbers; `starttime` is the process's
//! start time from `/proc/PID/stat`, so that a recycled pid is never taken
//! for the QEMU it was.

use std::path::{Path, PathBuf};

use common::xml::{Element, escape_attr_into};

use super::DomainPaths;

/// What a status file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// libvirt's state number.
    pub state: i32,
    /// Its reason number.
    pub reason: i32,
    /// QEMU's pid.
    pub pid: i32,
    /// QEMU's start time, when known.
    pub start_time: Option<u64>,
    /// The domain's files.
    pub paths: DomainPaths,
    /// A fake reboot is under way: the guest's next SHUTDOWN means reset
    /// and continue.
    pub fake_reboot: bool,
    /// Devices whose unplug QEMU has not completed yet (aliases).
    pub pending_removals: Vec<String>,
    /// The live definition, as XML (with its `id`). In a start record,
    /// only the domain's name and UUID.
    pub domain_xml: String,
    /// A start under way (libvirt's job in the status): the record a
    /// start writes before it changes anything on the host, replaced by
    /// the real status when the start completes and removed when it
    /// fails. A restarted daemon that finds one undoes the start.
    pub starting: bool,
    /// In a start record: the network ports (network, port UUID) the
    /// start creates, so that an interrupted one can release them.
    pub ports: Vec<(String, String)>,
}

impl Status {
    /// The file's text.
    pub fn to_xml(&self) -> String {
        let mut s = String::with_capacity(self.domain_xml.len() + 512);
        s.push_str(&format!(
            "<domstatus state='{}' reason='{}' pid='{}'",
            self.state, self.reason, self.pid
        ));
        if let Some(t) = self.start_time {
            s.push_str(&format!(" starttime='{t}'"));
        }
        if self.starting {
            s.push_str(" job='start'");
        }
        s.push_str(">\n");
        for (name, p) in [
            ("monitor", &self.paths.monitor),
            ("domaindir", &self.paths.domain_dir),
            ("log", &self.paths.log),
        ] {
            s.push_str("  <");
            s.push_str(name);
            s.push_str(" path='");
            escape_attr_into(&mut s, &p.display().to_string());
            s.push_str("'/>\n");
        }
        if self.fake_reboot {
            s.push_str("  <fakereboot/>\n");
        }
        for (network, uuid) in &self.ports {
            s.push_str("  <port network='");
            escape_attr_into(&mut s, network);
            s.push_str("' uuid='");
            escape_attr_into(&mut s, uuid);
            s.push_str("'/>\n");
        }
        for alias in &self.pending_removals {
            s.push_str("  <pendingremoval alias='");
            escape_attr_into(&mut s, alias);
            s.push_str("'/>\n");
        }
        s.push_str(&self.domain_xml);
        if !self.domain_xml.ends_with('\n') {
            s.push('\n');
        }
        s.push_str("</domstatus>\n");
        s
    }

    /// Parses a status file's text.
    ///
    /// # Errors
    /// A message naming what is missing or malformed.
    pub fn parse(text: &str) -> Result<Status, String> {
        let root = common::xml::parse(text).map_err(|e| e.to_string())?;
        if root.name != "domstatus" {
            return Err(format!("expected <domstatus>, found <{}>", root.name));
        }
        let num = |name: &str| -> Result<i64, String> {
            root.attr(name)
                .ok_or_else(|| format!("missing {name}"))?
                .parse::<i64>()
                .map_err(|_| format!("malformed {name}"))
        };
        let to_i32 = |v: i64, name: &str| i32::try_from(v).map_err(|_| format!("malformed {name}"));
        let path = |name: &str| -> Result<PathBuf, String> {
            root.child(name)
                .and_then(|e| e.attr("path"))
                .map(PathBuf::from)
                .ok_or_else(|| format!("missing <{name} path=>"))
        };
        let domain: &Element = root.child("domain").ok_or("missing <domain>")?;
        Ok(Status {
            state: to_i32(num("state")?, "state")?,
            reason: to_i32(num("reason")?, "reason")?,
            pid: to_i32(num("pid")?, "pid")?,
            start_time: root.attr("starttime").and_then(|t| t.parse().ok()),
            paths: DomainPaths {
                monitor: path("monitor")?,
                domain_dir: path("domaindir")?,
                log: path("log")?,
            },
            fake_reboot: root.child("fakereboot").is_some(),
            pending_removals: root
                .children_named("pendingremoval")
                .filter_map(|e| e.attr("alias").map(str::to_owned))
                .collect(),
            domain_xml: domain.to_xml(),
            starting: match root.attr("job") {
                None => false,
                Some("start") => true,
                Some(other) => return Err(format!("unknown job '{other}'")),
            },
            ports: root
                .children_named("port")
                .filter_map(|e| Some((e.attr("network")?.to_owned(), e.attr("uuid")?.to_owned())))
                .collect(),
        })
    }
}

/// Writes `status` to `file` atomically.
///
/// # Errors
/// The file cannot be written; the old one (if any) is then unchanged.
pub fn save(file: &Path, status: &Status) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    common::fsutil::write_atomic(file, status.to_xml().as_bytes())
}

/// Removes a status file; a missing one is fine.
pub fn remove(file: &Path) {
    match std::fs::remove_file(file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %file.display(), "cannot remove status file: {e}"),
    }
}

/// Every status file in `dir`: `(name, path, parsed or why not)`.
pub fn scan(dir: &Path) -> Vec<(String, PathBuf, Result<Status, String>)> {
    let _ = common::fsutil::remove_stale_temps(dir);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".xml"))
            .map(str::to_owned)
        else {
            continue;
        };
        if name.is_empty() || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| Status::parse(&t));
        out.push((name, path, parsed));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let st = Status {
            state: 1,
            reason: 1,
            pid: 42,
            start_time: Some(99),
            paths: DomainPaths {
                monitor: "/r/d/monitor.sock".into(),
                domain_dir: "/r/d".into(),
                log: "/l/vm'1.log".into(),
            },
            fake_reboot: true,
            pending_removals: vec!["virtio-disk1".into(), "a'b".into()],
            domain_xml: "<domain type='qemu' id='1'>\n  <name>vm</name>\n</domain>\n".into(),
            starting: false,
            ports: Vec::new(),
        };
        let text = st.to_xml();
        assert_eq!(Status::parse(&text).expect("parse"), st);
        let tmp = tempfile::tempdir().expect("tmp");
        save(&tmp.path().join("vm.xml"), &st).expect("save");
        let all = scan(tmp.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, "vm");
        assert_eq!(all[0].2.as_ref().expect("parsed"), &st);
        remove(&tmp.path().join("vm.xml"));
        assert!(scan(tmp.path()).is_empty());
        assert!(Status::parse("<domstatus state='1'/>").is_err());
        let rec = Status {
            starting: true,
            ports: vec![(
                "default".into(),
                "c0ffee00-0000-4000-8000-000000000001".into(),
            )],
            pid: 0,
            start_time: None,
            ..st
        };
        assert_eq!(Status::parse(&rec.to_xml()).expect("parse record"), rec);
    }
}
