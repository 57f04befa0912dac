//! Running the `tc` commands of [`super::bandwidth`]: a one-off probe of
//! which [`TcFeature`]s the kernel has, and `tc -batch` execution. Shared
//! by virtnetworkd (a network's bridge) and virtqemud (a NIC's tap).
//!
//! Kernels differ in which qdiscs, classifiers and actions they have. So
//! the first device with a `<bandwidth>` makes the daemon probe its
//! kernel once: every command the builder can make is run on the loopback
//! device of a network namespace of its own (a child that `unshare`s
//! before it execs `tc`, so nothing on the host is touched), as one
//! `tc -force -batch`, and each failed line names a missing feature
//! ([`Support`]); [`super::bandwidth::plan`] then leaves out or refuses.
//!
//! Blocking; callers run it on blocking threads.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::bandwidth::{self, TcCommand, TcFeature};

/// What the kernel lacks: feature → tc's complaint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Support {
    /// The missing features, with why (tc's message).
    pub missing: HashMap<TcFeature, String>,
}

/// Runs `tc -batch -` (with `-force` when `force`) on `lines`, in a
/// network namespace of its own when `private_netns`. Returns the exit
/// success and stderr.
fn run_batch(
    lines: &[String],
    force: bool,
    private_netns: bool,
) -> std::io::Result<(bool, String)> {
    let mut cmd = Command::new("tc");
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"])
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if private_netns {
        // SAFETY: only the unshare syscall between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if nix::libc::unshare(nix::libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = cmd.spawn()?;
    if let Some(mut input) = child.stdin.take() {
        let mut text = lines.join("\n");
        text.push('\n');
        input.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The failed lines of a `tc -force -batch` run, from its stderr: every
/// `Command failed -:N` closes the messages printed since the previous
/// one. Returns line number (1-based) → the first message, without
/// tc's `Error: ` prefix.
fn failed_lines(stderr: &str) -> HashMap<usize, String> {
    let mut out = HashMap::new();
    let mut msgs: Vec<&str> = Vec::new();
    for line in stderr.lines() {
        let t = line.trim();
        if let Some(n) = t
            .strip_prefix("Command failed -:")
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            let first = msgs
                .iter()
                .find(|m| !m.is_empty())
                .map(|m| m.strip_prefix("Error: ").unwrap_or(m).to_owned())
                .unwrap_or_else(|| "failed".to_owned());
            out.insert(n, first);
            msgs.clear();
        } else {
            msgs.push(t);
        }
    }
    out
}

/// What `stderr` of a `tc -force -batch` of `cmds` (the probe) says is
/// missing.
pub fn support_from(cmds: &[TcCommand], stderr: &str) -> Support {
    let mut missing = HashMap::new();
    for (n, why) in failed_lines(stderr) {
        if let Some(c) = n.checked_sub(1).and_then(|i| cmds.get(i)) {
            missing.entry(c.needs).or_insert(why);
        }
    }
    Support { missing }
}

/// Probes the kernel (see the module documentation). When the probe
/// cannot run at all, nothing is known to be missing: every command is
/// tried, and a start fails (and is undone) where tc fails.
fn probe() -> Support {
    let cmds = bandwidth::probe_commands();
    let lines: Vec<String> = cmds.iter().map(TcCommand::batch_line).collect();
    match run_batch(&lines, true, true) {
        Ok((_, stderr)) => {
            let s = support_from(&cmds, &stderr);
            let mut missing: Vec<String> = s
                .missing
                .iter()
                .map(|(f, why)| format!("{} ({why})", f.describe()))
                .collect();
            missing.sort();
            tracing::info!(missing = ?missing, "tc probed");
            s
        }
        Err(e) => {
            tracing::warn!("cannot probe tc features: {e}");
            Support::default()
        }
    }
}

/// The daemon's tc: the probe's result, once.
#[derive(Debug, Default)]
pub struct Tc {
    support: OnceLock<Support>,
}

impl Tc {
    /// A tc whose kernel features are probed when first needed.
    pub fn new() -> Tc {
        Tc::default()
    }

    /// A tc that takes `support` as the probe's result (tests).
    pub fn with_support(support: Support) -> Tc {
        let tc = Tc::default();
        let _ = tc.support.set(support);
        tc
    }

    /// What the kernel lacks (probed on first use).
    pub fn support(&self) -> &Support {
        self.support.get_or_init(probe)
    }

    /// Runs `cmds` on the host, in one batch.
    ///
    /// # Errors
    /// tc could not be run or failed (what ran before stays: the caller
    /// removes the bridge, or [`Tc::clear`]s it).
    pub fn apply(&self, cmds: &[TcCommand]) -> Result<(), String> {
        if cmds.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = cmds.iter().map(TcCommand::batch_line).collect();
        match run_batch(&lines, false, false) {
            Ok((true, _)) => Ok(()),
            Ok((false, stderr)) => Err(format!("tc failed: {}", one_line(&stderr))),
            Err(e) => Err(format!("cannot run tc: {e}")),
        }
    }

    /// Removes the root and ingress qdiscs of `bridge` (libvirt's
    /// `virNetDevBandwidthClear`); either may be absent.
    pub fn clear(&self, bridge: &str) {
        let lines: Vec<String> = bandwidth::clear_commands(bridge)
            .iter()
            .map(|c| c.args.join(" "))
            .collect();
        if let Err(e) = run_batch(&lines, true, false) {
            tracing::warn!(bridge, "cannot run tc: {e}");
        }
    }

    /// Whether the qdiscs `cmds` add are on `bridge` (`tc qdisc show`).
    pub fn present(&self, bridge: &str, cmds: &[TcCommand]) -> bool {
        let Ok(out) = Command::new("tc")
            .args(["qdisc", "show", "dev", bridge])
            .env("LC_ALL", "C")
            .output()
        else {
            return false;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let has = |needle: &str| text.lines().any(|l| l.starts_with(needle));
        cmds.iter().all(|c| match c.needs {
            TcFeature::Htb => has("qdisc htb 1: root"),
            TcFeature::Ingress => has("qdisc ingress ffff:"),
            TcFeature::Sfq => has("qdisc sfq 2: parent 1:2"),
            TcFeature::Fw | TcFeature::Police => true,
        })
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE_STDERR: &str = "Error: Specified qdisc kind is unknown.\nCommand failed -:4\n\
        Error: TC classifier not found.\nWe have an error talking to the kernel\nCommand failed -:5\n\
        Error: Failed to load TC action module.\nWe have an error talking to the kernel\nCommand failed -:7\n";

    #[test]
    fn probe_output_names_the_missing_features() {
        let s = support_from(&bandwidth::probe_commands(), PROBE_STDERR);
        assert_eq!(s.missing.len(), 3);
        assert_eq!(
            s.missing[&TcFeature::Sfq],
            "Specified qdisc kind is unknown."
        );
        assert_eq!(s.missing[&TcFeature::Fw], "TC classifier not found.");
        assert_eq!(
            s.missing[&TcFeature::Police],
            "Failed to load TC action module."
        );
        assert!(
            support_from(&bandwidth::probe_commands(), "")
                .missing
                .is_empty()
        );
    }
}
