//! What the host and its QEMU offer: emulator discovery, version probing,
//! node info from /proc; [`qemu`]: the capabilities of one QEMU binary;
//! [`probe`]: probing them over QMP; [`cache`]: caching them per binary in
//! memory and on disk.

pub mod cache;
pub mod probe;
pub mod qemu;

pub use qemu::{Accel, CapsCache, QemuCaps};

use std::path::{Path, PathBuf};

use common::{ErrorCode, ErrorDomain, VirtError};

/// A `major.minor.micro` version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub micro: u64,
}

impl Version {
    /// Parses `"7.2.0"`, `"10.0.2"`, `"7.2"` (micro 0); trailing text after the
    /// numbers (`"7.2.19 (Debian ...)"`) is ignored.
    pub fn parse(s: &str) -> Option<Version> {
        let head = s.split_whitespace().next()?;
        let mut nums = head.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        });
        let major = nums.next()??;
        let minor = nums.next()??;
        let micro = nums.next().flatten().unwrap_or(0);
        Some(Version {
            major,
            minor,
            micro,
        })
    }

    /// libvirt's packed form: major * 1,000,000 + minor * 1,000 + micro.
    pub fn packed(self) -> u64 {
        self.major * 1_000_000 + self.minor * 1_000 + self.micro
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// The QEMU system emulator for this host's architecture, from `PATH`.
pub fn find_emulator() -> Option<PathBuf> {
    let name = format!("qemu-system-{}", std::env::consts::ARCH);
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

/// Runs `emulator --version` and parses "QEMU emulator version X.Y.Z".
pub async fn probe_version(emulator: &Path) -> Result<Version, VirtError> {
    let fail = |msg: String| VirtError::new(ErrorCode::InternalError, ErrorDomain::Qemu, msg);
    let out = tokio::process::Command::new(emulator)
        .arg("--version")
        .output()
        .await
        .map_err(|e| {
            fail(format!(
                "Cannot run '{} --version': {e}",
                emulator.display()
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_qemu_version(&text).ok_or_else(|| {
        fail(format!(
            "Cannot parse the version of '{}': {}",
            emulator.display(),
            text.trim()
        ))
    })
}

fn parse_qemu_version(text: &str) -> Option<Version> {
    let rest = text.split("version ").nth(1)?;
    Version::parse(rest)
}

/// Host facts for NodeGetInfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub model: String,
    pub memory_kib: u64,
    pub cpus: u32,
    pub mhz: u32,
    pub nodes: u32,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
}

/// Reads /proc/meminfo and /proc/cpuinfo.
pub fn node_info() -> Result<NodeInfo, VirtError> {
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|e| {
            VirtError::new(
                ErrorCode::SystemError,
                ErrorDomain::Qemu,
                format!("Cannot read '{p}': {e}"),
            )
        })
    };
    Ok(parse_node_info(
        &read("/proc/meminfo")?,
        &read("/proc/cpuinfo")?,
    ))
}

fn parse_node_info(meminfo: &str, cpuinfo: &str) -> NodeInfo {
    let memory_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let mut cpus = 0u32;
    let mut mhz = 0u32;
    let mut sockets = std::collections::BTreeSet::new();
    let mut cores_per_socket = 0u32;
    let mut siblings = 0u32;
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => cpus += 1,
            "cpu MHz" if mhz == 0 => mhz = v.parse::<f64>().map(|f| f as u32).unwrap_or(0),
            "physical id" => {
                sockets.insert(v.to_owned());
            }
            "cpu cores" => cores_per_socket = v.parse().unwrap_or(0),
            "siblings" => siblings = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let sockets = u32::try_from(sockets.len()).unwrap_or(1).max(1);
    let cores = if cores_per_socket > 0 {
        cores_per_socket
    } else {
        (cpus / sockets).max(1)
    };
    let threads = if siblings > 0 && cores > 0 {
        (siblings / cores).max(1)
    } else {
        1
    };
    NodeInfo {
        model: std::env::consts::ARCH.to_owned(),
        memory_kib,
        cpus,
        mhz,
        nodes: 1,
        sockets,
        cores,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_pack() {
        let v = parse_qemu_version(
            "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright",
        )
        .expect("v");
        assert_eq!(
            v,
            Version {
                major: 7,
                minor: 2,
                micro: 19
            }
        );
        assert_eq!(v.packed(), 7_002_019);
        let v =
            parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)").expect("v");
        assert_eq!(v.to_string(), "10.0.2");
        assert_eq!(Version::parse("0.1.0").expect("v").packed(), 1000);
        assert!(parse_qemu_version("garbage").is_none());
    }

    #[test]
    fn node_info_from_proc() {
        let mem = "MemTotal:       24610500 kB\nMemFree: 1 kB\n";
        let cpu = "processor\t: 0\ncpu MHz\t\t: 2999.998\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\n\n\
                   processor\t: 1\ncpu MHz\t\t: 2999.998\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\n";
        let n = parse_node_info(mem, cpu);
        assert_eq!(
            (n.memory_kib, n.cpus, n.mhz, n.sockets, n.cores, n.threads),
            (24_610_500, 2, 2999, 1, 2, 1)
        );
    }
}
