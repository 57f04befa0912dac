//! Processes on the host, as `/proc` shows them: for tests that look for
//! (or clean up) the QEMUs and dnsmasqs a test root's daemons started.

use std::path::Path;

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The NUL-separated command line of `pid`.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every live process whose program (first argument) contains `prog`
/// and one of whose arguments contains `needle`.
pub fn processes(prog: &str, needle: &str) -> Vec<(i32, Vec<String>)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let args = cmdline(pid);
        let Some(first) = args.first() else {
            continue;
        };
        if first.contains(prog) && args.iter().any(|a| a.contains(needle)) && alive(pid) {
            out.push((pid, args));
        }
    }
    out
}

/// SIGKILL to every process of the programs `progs` whose command line
/// names `root` (a failed test must not leave guests or dnsmasqs behind);
/// stopped ones are continued first, so that they die at once.
pub fn kill_under(root: &Path, progs: &[&str]) {
    let needle = root.display().to_string();
    for prog in progs {
        for (pid, _) in processes(prog, &needle) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}
