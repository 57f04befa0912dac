//! nftables: our own tables (`ip <table>` and `ip6 <table>`, by default
//! `virt_network`), laid out as libvirt's `libvirt_network`
//! (`common::network::firewall`). A network's rules are inserted in one
//! `nft -ae -f -` batch (atomic: all or none), and the handles nft echoes
//! are kept in the network's status file; destroy deletes exactly those
//! handles in one batch. Rules in other tables, and other networks' rules
//! in ours, are never touched.
//!
//! Blocking (runs `nft`); the driver calls it from `spawn_blocking`. The
//! base chains are checked once per daemon and created when missing; a
//! mutex serialises this check with rule changes.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::network::firewall::{self, CHAIN_FORWARD, CHAINS, NftFamily, NftRule};

/// The default table name.
pub const DEFAULT_TABLE: &str = "virt_network";

/// A failed nft run.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// nft could not be run.
    #[error("cannot run nft: {0}")]
    Spawn(std::io::Error),
    /// nft refused the batch.
    #[error("nft failed: {0}")]
    Nft(String),
    /// nft's echo did not name a handle for every rule.
    #[error("nft did not report the handles of the added rules")]
    NoHandles,
    /// The rules could not be built.
    #[error("{0}")]
    Rules(#[from] firewall::FirewallError),
}

/// One rule we added, as nft reported it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RuleHandle {
    /// The table family.
    pub family: NftFamily,
    /// The chain.
    pub chain: String,
    /// nft's handle.
    pub handle: u64,
}

/// The firewall of the daemon.
#[derive(Debug)]
pub struct Firewall {
    table: String,
    /// Families whose table and chains are known to exist.
    ready: Mutex<HashSet<NftFamily>>,
}

fn run_nft(args: &[&str], stdin: Option<&str>) -> Result<String, FirewallError> {
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(FirewallError::Spawn)?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(text.as_bytes())
            .map_err(FirewallError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(FirewallError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(FirewallError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// What `nft -a list table` shows: chains, the chains `forward` jumps to,
/// and every rule handle per chain.
#[derive(Debug, Default)]
struct Listing {
    chains: HashSet<String>,
    jumps: HashSet<String>,
    handles: HashSet<(String, u64)>,
}

fn parse_listing(text: &str) -> Listing {
    let mut l = Listing::default();
    let mut chain: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("chain ") {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            l.chains.insert(name.clone());
            chain = Some(name);
            continue;
        }
        let Some(c) = &chain else { continue };
        if let Some(pos) = t.find("jump ")
            && c == CHAIN_FORWARD
        {
            let target = t[pos + 5..].split_whitespace().next().unwrap_or_default();
            l.jumps.insert(target.to_owned());
        }
        if let Some(pos) = t.rfind("# handle ")
            && let Ok(h) = t[pos + 9..].trim().parse::<u64>()
        {
            l.handles.insert((c.clone(), h));
        }
    }
    l
}

impl Firewall {
    /// The firewall using tables named `table`.
    pub fn new(table: impl Into<String>) -> Firewall {
        Firewall {
            table: table.into(),
            ready: Mutex::new(HashSet::new()),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn list(&self, family: NftFamily) -> Option<Listing> {
        run_nft(&["-a", "list", "table", family.as_str(), &self.table], None)
            .ok()
            .map(|t| parse_listing(&t))
    }

    /// Creates the table and whatever chain or jump is missing (libvirt's
    /// `nftablesSetupPrivateChains`).
    fn ensure_base(
        &self,
        ready: &mut HashSet<NftFamily>,
        family: NftFamily,
    ) -> Result<(), FirewallError> {
        if ready.contains(&family) {
            return Ok(());
        }
        let listing = self.list(family);
        let script = match &listing {
            None => firewall::base_script(family, &self.table),
            Some(l) => {
                let f = family.as_str();
                let t = &self.table;
                let mut s = String::new();
                for (chain, decl) in CHAINS {
                    if !l.chains.contains(chain) {
                        s.push_str(&format!(
                            "add chain {f} {t} {chain} {}\n",
                            decl.unwrap_or("")
                        ));
                    }
                    if decl.is_none() && !l.jumps.contains(chain) {
                        s.push_str(&format!(
                            "insert rule {f} {t} {CHAIN_FORWARD} counter jump {chain}\n"
                        ));
                    }
                }
                s
            }
        };
        if !script.is_empty() {
            run_nft(&["-f", "-"], Some(&script))?;
        }
        ready.insert(family);
        Ok(())
    }

    /// Inserts `rules` (in one atomic batch) and returns their handles, in
    /// order.
    ///
    /// # Errors
    /// nft fails (nothing was added) or reports no handles.
    pub fn add(&self, rules: &[NftRule]) -> Result<Vec<RuleHandle>, FirewallError> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let mut ready = self
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let families: HashSet<NftFamily> = rules.iter().map(|r| r.family).collect();
        for f in &families {
            self.ensure_base(&mut ready, *f)?;
        }
        let mut script = String::new();
        for r in rules {
            script.push_str(&r.script_line(&self.table));
            script.push('\n');
        }
        let out = match run_nft(&["-ae", "-f", "-"], Some(&script)) {
            Ok(o) => o,
            Err(_) => {
                // Someone may have deleted our table: check again, retry once.
                ready.clear();
                for f in &families {
                    self.ensure_base(&mut ready, *f)?;
                }
                run_nft(&["-ae", "-f", "-"], Some(&script))?
            }
        };
        let handles: Vec<u64> = out
            .lines()
            .filter(|l| l.trim_start().starts_with("insert rule"))
            .filter_map(|l| {
                l.rfind("# handle ")
                    .and_then(|p| l[p + 9..].trim().parse().ok())
            })
            .collect();
        if handles.len() != rules.len() {
            return Err(FirewallError::NoHandles);
        }
        Ok(rules
            .iter()
            .zip(handles)
            .map(|(r, handle)| RuleHandle {
                family: r.family,
                chain: r.chain.to_owned(),
                handle,
            })
            .collect())
    }

    /// Deletes the rules `handles` name. Rules already gone are skipped.
    ///
    /// # Errors
    /// A rule that exists could not be deleted.
    pub fn remove(&self, handles: &[RuleHandle]) -> Result<(), FirewallError> {
        if handles.is_empty() {
            return Ok(());
        }
        let _ready = self
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let script = self.delete_script(handles);
        if run_nft(&["-f", "-"], Some(&script)).is_ok() {
            return Ok(());
        }
        // Some handle is gone (the batch is all or nothing): delete those
        // that are still there.
        let present = self.present(handles);
        let left: Vec<RuleHandle> = handles
            .iter()
            .filter(|h| present.contains(*h))
            .cloned()
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        run_nft(&["-f", "-"], Some(&self.delete_script(&left))).map(|_| ())
    }

    fn delete_script(&self, handles: &[RuleHandle]) -> String {
        let mut s = String::new();
        for h in handles {
            s.push_str(&format!(
                "delete rule {} {} {} handle {}\n",
                h.family, self.table, h.chain, h.handle
            ));
        }
        s
    }

    /// Which of `handles` exist.
    pub fn present(&self, handles: &[RuleHandle]) -> HashSet<RuleHandle> {
        let mut listings: HashMap<NftFamily, Option<Listing>> = HashMap::new();
        handles
            .iter()
            .filter(|h| {
                listings
                    .entry(h.family)
                    .or_insert_with(|| self.list(h.family))
                    .as_ref()
                    .is_some_and(|l| l.handles.contains(&(h.chain.clone(), h.handle)))
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing() {
        let l = parse_listing(
            "table ip t { # handle 1\n\tchain forward { # handle 1\n\t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tcounter packets 0 bytes 0 jump guest_output # handle 3\n\t}\n\n\tchain guest_output { # handle 2\n\
             \t\tiif \"br\" counter packets 0 bytes 0 reject # handle 4\n\t}\n}\n",
        );
        assert!(l.chains.contains("forward") && l.chains.contains("guest_output"));
        assert!(l.jumps.contains("guest_output"));
        assert!(l.handles.contains(&("guest_output".to_owned(), 4)));
        assert!(l.handles.contains(&("forward".to_owned(), 3)));
    }
}
