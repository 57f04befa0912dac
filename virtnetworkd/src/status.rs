//! Live state on disk: `<run>/network/<name>.xml` for every active
//! network, and `<run>/network/ports/<name>/<port-uuid>.xml` for its
//! ports. A restarted daemon reads them to adopt what is running.
//!
//! ```xml
//! <networkstatus>
//!   <dnsmasq pid='4242' starttime='123456'/>
//!   <firewall table='virt_network'>
//!     <rule family='ip' chain='guest_output' handle='5'/>
//!   </firewall>
//!   <network>
//!     ...the live definition...
//!   </network>
//! </networkstatus>
//! ```
//!
//! Written atomically before a start reports success and after every live
//! change (a temporary file renamed over the old one, so a killed daemon
//! leaves the old or the new file, never a mix); removed when the network
//! stops. Not `fsync`ed: the run directory is a tmpfs that a power loss
//! empties anyway, and on a disk the syncs would cost a start several
//! milliseconds for nothing. Blocking file I/O.

use std::path::{Path, PathBuf};

use common::fsutil;
use common::network::NetworkDef;
use common::network::firewall::NftFamily;
use common::network::port::PortDef;
use common::xml::{self, Element, FormatFlags, Node, ParseFlags};

use crate::dnsmasq::DnsmasqProc;
use crate::firewall::RuleHandle;

/// What a running network holds on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runtime {
    /// Its dnsmasq, if it needs one.
    pub dnsmasq: Option<DnsmasqProc>,
    /// The nftables table its rules are in.
    pub table: String,
    /// Its rules.
    pub rules: Vec<RuleHandle>,
}

/// One status file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkStatus {
    /// The live definition.
    pub def: NetworkDef,
    /// The host side.
    pub runtime: Runtime,
}

/// A status file or port file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Writing or removing failed.
    #[error("cannot write status file '{}': {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("cannot parse status file '{}': {msg}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Replaces `path` with `bytes` (temporary file `.<name>.<pid>.<n>.tmp`,
/// which `fsutil::remove_stale_temps` cleans up, renamed over it).
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("status file without a name"))?;
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{n}{}",
        std::process::id(),
        fsutil::TEMP_SUFFIX
    ));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The directory of the status files.
#[derive(Clone, Debug)]
pub struct StatusStore {
    dir: PathBuf,
}

fn indent(text: &str, by: &str) -> String {
    let mut s = String::with_capacity(text.len() + 256);
    for l in text.lines() {
        if !l.is_empty() {
            s.push_str(by);
        }
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Formats a status file.
pub fn format(st: &NetworkStatus) -> String {
    let mut root = Element::open("networkstatus");
    if let Some(d) = &st.runtime.dnsmasq {
        root.push(
            Element::new("dnsmasq")
                .with_attr("pid", d.pid)
                .with_opt_attr("starttime", d.start_time),
        );
    }
    if !st.runtime.rules.is_empty() {
        let mut fw = Element::open("firewall").with_attr("table", &st.runtime.table);
        for r in &st.runtime.rules {
            fw.push(
                Element::new("rule")
                    .with_attr("family", r.family.as_str())
                    .with_attr("chain", &r.chain)
                    .with_attr("handle", r.handle),
            );
        }
        root.push(fw);
    }
    let head = root.to_xml();
    let head = head.trim_end_matches("</networkstatus>\n");
    let def = st.def.to_xml(FormatFlags::default());
    format!("{head}{}</networkstatus>\n", indent(&def, "  "))
}

/// Parses a status file.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse(text: &str) -> Result<NetworkStatus, String> {
    let root = xml::parse(text).map_err(|e| e.to_string())?;
    if root.name != "networkstatus" {
        return Err(format!("unexpected root <{}>", root.name));
    }
    let net = root.child("network").ok_or("no <network>")?;
    let def =
        NetworkDef::parse(Node::root(net), ParseFlags::default()).map_err(|e| e.to_string())?;
    if def.uuid.is_none() {
        return Err("the network has no uuid".into());
    }
    let mut rt = Runtime::default();
    if let Some(d) = root.child("dnsmasq") {
        let pid = d
            .attr("pid")
            .and_then(|p| p.parse().ok())
            .ok_or("bad dnsmasq pid")?;
        rt.dnsmasq = Some(DnsmasqProc {
            pid,
            start_time: d.attr("starttime").and_then(|t| t.parse().ok()),
        });
    }
    if let Some(fw) = root.child("firewall") {
        rt.table = fw.attr("table").unwrap_or_default().to_owned();
        for r in fw.children_named("rule") {
            let family = match r.attr("family") {
                Some("ip") => NftFamily::Ip,
                Some("ip6") => NftFamily::Ip6,
                other => return Err(format!("bad rule family {other:?}")),
            };
            rt.rules.push(RuleHandle {
                family,
                chain: r.attr("chain").ok_or("rule without chain")?.to_owned(),
                handle: r
                    .attr("handle")
                    .and_then(|h| h.parse().ok())
                    .ok_or("bad rule handle")?,
            });
        }
    }
    Ok(NetworkStatus { def, runtime: rt })
}

impl StatusStore {
    /// The store in `dir` (`<run>/network`).
    pub fn new(dir: PathBuf) -> StatusStore {
        StatusStore { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<name>.xml`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.xml"))
    }

    fn ports_dir(&self, net: &str) -> PathBuf {
        self.dir.join("ports").join(net)
    }

    /// Writes the status of `st` atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, st: &NetworkStatus) -> Result<(), StatusError> {
        let path = self.file(&st.def.name);
        let err = |source| StatusError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        replace_file(&path, format(st).as_bytes()).map_err(err)
    }

    /// Removes the status file of `name` (missing is fine).
    ///
    /// # Errors
    /// It exists but cannot be removed.
    pub fn remove(&self, name: &str) -> Result<(), StatusError> {
        let path = self.file(name);
        remove_file(&path).map_err(|source| StatusError::Write { path, source })
    }

    /// Every status file: name from the file name, and its content or
    /// why it could not be read.
    pub fn scan(&self) -> Vec<(String, Result<NetworkStatus, StatusError>)> {
        let _ = fsutil::remove_stale_temps(&self.dir);
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let path = e.path();
            let Some(name) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".xml"))
                .map(str::to_owned)
            else {
                continue;
            };
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let r = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse(&t))
                .map_err(|msg| StatusError::Parse {
                    path: path.clone(),
                    msg,
                });
            out.push((name, r));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Writes a port of network `net`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save_port(&self, net: &str, port: &PortDef) -> Result<(), StatusError> {
        let dir = self.ports_dir(net);
        let path = dir.join(format!("{}.xml", port.uuid));
        let err = |source| StatusError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        replace_file(&path, port.to_xml().as_bytes()).map_err(err)
    }

    /// Removes a port file.
    ///
    /// # Errors
    /// It exists but cannot be removed.
    pub fn remove_port(&self, net: &str, uuid: &str) -> Result<(), StatusError> {
        let path = self.ports_dir(net).join(format!("{uuid}.xml"));
        remove_file(&path).map_err(|source| StatusError::Write { path, source })
    }

    /// Removes every port of `net`.
    pub fn remove_ports(&self, net: &str) {
        let _ = std::fs::remove_dir_all(self.ports_dir(net));
    }

    /// The ports of `net` (unreadable files are logged and skipped).
    pub fn load_ports(&self, net: &str) -> Vec<PortDef> {
        let dir = self.ports_dir(net);
        let _ = fsutil::remove_stale_temps(&dir);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("xml") {
                continue;
            }
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    PortDef::parse_str(&t, ParseFlags::default()).map_err(|e| e.to_string())
                }) {
                Ok(p) => out.push(p),
                Err(e) => tracing::error!(file = %path.display(), "cannot load network port: {e}"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let def = NetworkDef::parse_str(
            "<network><name>n</name><uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid>\
             <forward/><bridge name='vbr0'/><ip address='10.0.0.1' prefix='24'/></network>",
            ParseFlags::default(),
        )
        .expect("parses");
        let st = NetworkStatus {
            def,
            runtime: Runtime {
                dnsmasq: Some(DnsmasqProc {
                    pid: 42,
                    start_time: Some(7),
                }),
                table: "virt_network".into(),
                rules: vec![RuleHandle {
                    family: NftFamily::Ip6,
                    chain: "guest_input".into(),
                    handle: 9,
                }],
            },
        };
        let text = format(&st);
        assert!(text.starts_with("<networkstatus>\n  <dnsmasq pid='42' starttime='7'/>\n"));
        assert!(text.contains("\n  <network>\n    <name>n</name>\n"));
        let back = parse(&text).expect("parses");
        assert_eq!(back.runtime, st.runtime);
        assert_eq!(format(&back), text);

        let tmp = tempfile::tempdir().expect("tmp");
        let store = StatusStore::new(tmp.path().join("network"));
        store.save(&st).expect("save");
        let scanned = store.scan();
        assert_eq!(scanned.len(), 1);
        assert_eq!(scanned[0].1.as_ref().expect("ok"), &back);
        store.remove("n").expect("remove");
        assert!(store.scan().is_empty());
    }
}
