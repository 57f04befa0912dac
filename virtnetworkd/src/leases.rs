//! DHCP leases, as libvirt keeps them: dnsmasq runs with `--leasefile-ro`
//! and `--dhcp-script=<helper>`, and the helper (this binary, started
//! under the name [`HELPER_NAME`]) keeps `<dir>/<bridge>.status`, a JSON
//! array of leases in libvirt's `virLease` layout:
//!
//! ```json
//! [ { "ip-address": "10.0.0.5", "mac-address": "52:54:00:..", "hostname": "h",
//!     "client-id": "01:52:..", "expiry-time": 1700000000 } ]
//! ```
//!
//! dnsmasq calls the helper with `init` at start (the helper prints the
//! leases in dnsmasq's lease-file format, so a restarted dnsmasq keeps
//! them), and with `add`, `old` or `del` and `MAC IP [HOSTNAME]` on every
//! change, details in `DNSMASQ_*` variables. The file is replaced
//! atomically under a lock (`<file>.lock`); the leases API reads it.
//!
//! dnsmasq passes its environment on to the helper: virtnetworkd starts
//! it with `VIR_BRIDGE_NAME` (as libvirt) and [`ENV_LEASES_DIR`].

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The name the helper runs under (a symlink to the daemon binary).
pub const HELPER_NAME: &str = "virt_leaseshelper";

/// The variable naming the directory of the lease files.
pub const ENV_LEASES_DIR: &str = "VIRT_LEASES_DIR";

/// The bridge variable (libvirt's).
pub const ENV_BRIDGE: &str = "VIR_BRIDGE_NAME";

/// One lease, in libvirt's custom lease-file layout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The leased address.
    #[serde(rename = "ip-address")]
    pub ip: String,
    /// The client's MAC (IPv6: when dnsmasq knows it).
    #[serde(
        rename = "mac-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac: Option<String>,
    /// The client's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The client id (IPv4) or DUID (IPv6).
    #[serde(rename = "client-id", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Expiry in seconds since the epoch; 0 = never.
    #[serde(rename = "expiry-time", default)]
    pub expiry: i64,
    /// The DHCPv6 IAID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iaid: Option<String>,
    /// The server's DUID (DHCPv6).
    #[serde(
        rename = "server-duid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub server_duid: Option<String>,
}

impl Lease {
    /// Whether the lease is still valid at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        self.expiry == 0 || self.expiry > now
    }

    /// Whether this is a DHCPv6 lease.
    pub fn is_ipv6(&self) -> bool {
        self.ip.contains(':')
    }
}

/// `<dir>/<bridge>.status`.
pub fn status_file(dir: &Path, bridge: &str) -> PathBuf {
    dir.join(format!("{bridge}.status"))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The leases in `file` (missing or unreadable: none).
pub fn read(file: &Path) -> Vec<Lease> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The unexpired leases of `bridge`.
pub fn current(dir: &Path, bridge: &str) -> Vec<Lease> {
    let t = now();
    read(&status_file(dir, bridge))
        .into_iter()
        .filter(|l| l.valid_at(t))
        .collect()
}

fn write(file: &Path, leases: &[Lease]) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(leases).map_err(std::io::Error::other)?;
    let tmp = file.with_extension("status.new");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&text)?;
    f.write_all(b"\n")?;
    drop(f);
    std::fs::rename(&tmp, file)
}

/// An exclusive lock on `<file>.lock`, released on drop.
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    fn take(file: &Path) -> std::io::Result<FileLock> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(file.with_extension("status.lock"))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { nix::libc::flock(f.as_raw_fd(), nix::libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock { _file: f })
    }
}

/// dnsmasq's lease-file lines for `leases` (libvirt's
/// `virLeasePrintLeases`): IPv4 first, then `duid SERVER` and IPv6.
pub fn dnsmasq_lines(leases: &[Lease]) -> String {
    let star = |o: &Option<String>| o.clone().unwrap_or_else(|| "*".to_owned());
    let mut s = String::new();
    for l in leases.iter().filter(|l| !l.is_ipv6()) {
        s.push_str(&format!(
            "{} {} {} {} {}\n",
            l.expiry,
            star(&l.mac),
            l.ip,
            star(&l.hostname),
            star(&l.client_id)
        ));
    }
    let v6: Vec<&Lease> = leases.iter().filter(|l| l.is_ipv6()).collect();
    if let Some(duid) = v6.iter().find_map(|l| l.server_duid.clone()) {
        s.push_str(&format!("duid {duid}\n"));
        for l in v6 {
            s.push_str(&format!(
                "{} {} {} {} {}\n",
                l.expiry,
                star(&l.iaid),
                l.ip,
                star(&l.hostname),
                star(&l.client_id)
            ));
        }
    }
    s
}

/// What dnsmasq tells the helper.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelperCall {
    /// `init`, `add`, `old`, `del` (others are ignored).
    pub action: String,
    /// `MAC` (IPv4) or DUID (IPv6).
    pub id: String,
    /// The address.
    pub ip: String,
    /// The host name argument.
    pub hostname: Option<String>,
    /// `DNSMASQ_*` and our variables.
    pub env: BTreeMap<String, String>,
}

/// Applies one call to the lease list; returns the text to print (for
/// `init`).
pub fn apply(leases: &mut Vec<Lease>, call: &HelperCall, now: i64) -> Option<String> {
    let env = |k: &str| call.env.get(k).filter(|v| !v.is_empty()).cloned();
    leases.retain(|l| l.valid_at(now));
    match call.action.as_str() {
        "init" => return Some(dnsmasq_lines(leases)),
        "add" | "old" => {
            let ipv6 = call.ip.contains(':');
            let expiry = match env("DNSMASQ_LEASE_EXPIRES").and_then(|v| v.parse::<i64>().ok()) {
                Some(e) => e,
                None => match env("DNSMASQ_TIME_REMAINING").and_then(|v| v.parse::<i64>().ok()) {
                    Some(0) => 0,
                    Some(r) => now + r,
                    None => 0,
                },
            };
            let lease = Lease {
                ip: call.ip.clone(),
                mac: if ipv6 {
                    env("DNSMASQ_MAC")
                } else {
                    Some(call.id.clone())
                },
                hostname: call
                    .hostname
                    .clone()
                    .filter(|h| !h.is_empty())
                    .or_else(|| env("DNSMASQ_SUPPLIED_HOSTNAME")),
                client_id: if ipv6 {
                    Some(call.id.clone())
                } else {
                    env("DNSMASQ_CLIENT_ID")
                },
                expiry,
                iaid: if ipv6 { env("DNSMASQ_IAID") } else { None },
                server_duid: if ipv6 {
                    env("DNSMASQ_SERVER_DUID")
                } else {
                    None
                },
            };
            leases.retain(|l| l.ip != lease.ip);
            leases.push(lease);
        }
        "del" => leases.retain(|l| l.ip != call.ip),
        _ => {}
    }
    None
}

/// The helper's `main`: `args` are dnsmasq's arguments after the program
/// name. Returns the exit code.
pub fn helper_main(args: &[String]) -> i32 {
    let call = HelperCall {
        action: args.first().cloned().unwrap_or_default(),
        id: args.get(1).cloned().unwrap_or_default(),
        ip: args.get(2).cloned().unwrap_or_default(),
        hostname: args.get(3).cloned(),
        env: std::env::vars()
            .filter(|(k, _)| k.starts_with("DNSMASQ_") || k.starts_with("VIR"))
            .collect(),
    };
    let (Some(dir), Some(bridge)) = (
        call.env.get(ENV_LEASES_DIR).cloned(),
        call.env.get(ENV_BRIDGE).cloned(),
    ) else {
        eprintln!("{HELPER_NAME}: {ENV_LEASES_DIR} and {ENV_BRIDGE} must be set");
        return 1;
    };
    let file = status_file(Path::new(&dir), &bridge);
    let _lock = match FileLock::take(&file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{HELPER_NAME}: cannot lock {}: {e}", file.display());
            return 1;
        }
    };
    let mut leases = read(&file);
    let before = leases.clone();
    if let Some(text) = apply(&mut leases, &call, now()) {
        print!("{text}");
        return 0;
    }
    if leases != before
        && let Err(e) = write(&file, &leases)
    {
        eprintln!("{HELPER_NAME}: cannot write {}: {e}", file.display());
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(action: &str, id: &str, ip: &str, env: &[(&str, &str)]) -> HelperCall {
        HelperCall {
            action: action.into(),
            id: id.into(),
            ip: ip.into(),
            hostname: Some("h1".into()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn add_old_del_init() {
        let mut l = Vec::new();
        apply(
            &mut l,
            &call(
                "add",
                "52:54:00:00:00:01",
                "10.0.0.5",
                &[("DNSMASQ_LEASE_EXPIRES", "2000")],
            ),
            1000,
        );
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].mac.as_deref(), Some("52:54:00:00:00:01"));
        apply(
            &mut l,
            &call(
                "old",
                "52:54:00:00:00:01",
                "10.0.0.5",
                &[("DNSMASQ_TIME_REMAINING", "3600")],
            ),
            1000,
        );
        assert_eq!(l[0].expiry, 4600);
        apply(
            &mut l,
            &call(
                "add",
                "00:01:00:01:aa",
                "fd00::5",
                &[
                    ("DNSMASQ_IAID", "7"),
                    ("DNSMASQ_SERVER_DUID", "00:01:x"),
                    ("DNSMASQ_LEASE_EXPIRES", "0"),
                ],
            ),
            1000,
        );
        let text = apply(&mut l, &call("init", "", "", &[]), 1000).expect("init prints");
        assert_eq!(
            text,
            "4600 52:54:00:00:00:01 10.0.0.5 h1 *\nduid 00:01:x\n0 7 fd00::5 h1 00:01:00:01:aa\n"
        );
        apply(
            &mut l,
            &call("del", "52:54:00:00:00:01", "10.0.0.5", &[]),
            1000,
        );
        assert_eq!(l.len(), 1);
        // Expired leases go.
        apply(
            &mut l,
            &call(
                "add",
                "52:54:00:00:00:02",
                "10.0.0.6",
                &[("DNSMASQ_LEASE_EXPIRES", "1500")],
            ),
            1000,
        );
        apply(
            &mut l,
            &call("old", "x", "10.0.0.9", &[("DNSMASQ_LEASE_EXPIRES", "9000")]),
            2000,
        );
        assert!(l.iter().all(|x| x.ip != "10.0.0.6"));
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = status_file(dir.path(), "br0");
        assert!(read(&f).is_empty());
        let l = vec![Lease {
            ip: "10.0.0.5".into(),
            mac: Some("52:54:00:00:00:01".into()),
            expiry: 0,
            ..Lease::default()
        }];
        write(&f, &l).expect("write");
        assert_eq!(read(&f), l);
        assert_eq!(current(dir.path(), "br0"), l);
    }
}
