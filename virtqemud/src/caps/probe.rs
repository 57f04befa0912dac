//! Probing one QEMU binary over QMP (libvirt's `virQEMUCapsInitQMP`).
//!
//! [`probe`] runs the binary as a child of ours, never daemonized:
//!
//! ```text
//!   EMULATOR -machine none -accel tcg -qmp unix:DIR/qmp.sock,server=on,wait=off
//!            -display none -S -no-user-config -nodefaults
//! ```
//!
//! with `DIR` a private directory (mode 0700) under the temporary directory,
//! removed afterwards, and QEMU's stderr in `DIR/stderr` (quoted in errors).
//! It connects to the socket (retrying until it appears, at most
//! [`CONNECT_TIMEOUT`]; a child that exits first fails at once), reads the
//! greeting, sends `qmp_capabilities`, then asks:
//!
//! | command                 | fills                                                      |
//! |-------------------------|------------------------------------------------------------|
//! | `query-version`         | `version` (packed), `package`                              |
//! | `query-target`          | `arch`                                                     |
//! | `query-machines`        | the TCG machine types (`none` skipped, the default first)  |
//! | `query-cpu-definitions` | the TCG CPU models (`unavailable-features` = blockers)     |
//! | `qom-list-types`        | `flags`: every non-abstract QOM type name, plus `tcg`, `kvm` |
//! | `query-kvm`             | whether KVM is compiled in                                 |
//!
//! then `quit` (waiting for its reply: QEMU drops a command still queued
//! when the client hangs up), and reaps the child (killed if it has not
//! exited after [`EXIT_TIMEOUT`]; at once if the conversation failed). The
//! whole QMP conversation is bounded by [`SESSION_TIMEOUT`]. As libvirt
//! does, the default machine is libvirt's preferred one for the arch (`pc`
//! on x86) if QEMU has it, else QEMU's `is-default` one. Replies are read as line-delimited JSON with
//! `serde_json`: events are skipped and unknown fields ignored, so QEMU 7.2
//! and 10.x both work. About 0.1 s with QEMU 10.0.2.
//!
//! **KVM.** The probe always runs under TCG: this host's KVM is nested and
//! slow, and a probe must not depend on it. When QEMU has KVM compiled in
//! (`query-kvm` says `present`) and `/dev/kvm` opens read-write for us, the
//! machine types are copied to the KVM accelerator too (QEMU's machine list
//! does not depend on the accelerator), the CPU models are copied with their
//! usability unknown (`usable: None`, no blockers: TCG's blockers say
//! nothing about KVM), and the flag `kvm` is set. Otherwise the KVM side
//! stays empty. No host CPU is probed (no `query-cpu-model-expansion`), so
//! `host_cpu` is `None` on both sides.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::xml::XmlError;
use serde_json::{Value, json};

use super::qemu::{AccelCaps, CpuModel, MachineType, QemuCaps};

/// How long to wait for QEMU's QMP socket to accept.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the whole QMP conversation may take once connected.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long QEMU may take to exit after `quit` before it is killed.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(2);

/// The machine type libvirt prefers as default, per architecture (its
/// `preferredMachines`); QEMU's own default otherwise.
fn preferred_machine(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" | "i386" | "i686" => Some("pc"),
        _ => None,
    }
}

/// Probes the capabilities of the QEMU binary `emulator` over QMP (see the
/// module docs). Blocking: run it with `spawn_blocking` from async code.
///
/// # Errors
/// The binary is missing, cannot be run, exits or stays silent (bounded by
/// [`CONNECT_TIMEOUT`] / [`SESSION_TIMEOUT`]), or answers a mandatory query
/// with an error. The message names the binary.
pub fn probe(emulator: &Path) -> Result<QemuCaps, XmlError> {
    probe_bounded(emulator, CONNECT_TIMEOUT)
}

/// [`probe`] with another bound on waiting for the QMP socket (tests).
pub(crate) fn probe_bounded(emulator: &Path, connect: Duration) -> Result<QemuCaps, XmlError> {
    let fail = |msg: String| {
        XmlError::invalid(
            "devices/emulator",
            format!(
                "Failed to probe capabilities of QEMU binary {}: {msg}",
                emulator.display()
            ),
        )
    };
    let md = std::fs::metadata(emulator).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "No such file or directory".to_owned(),
            _ => e.to_string(),
        };
        XmlError::invalid(
            "devices/emulator",
            format!("Cannot check QEMU binary {}: {reason}", emulator.display()),
        )
    })?;
    if !md.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    let dir = ProbeDir::new().map_err(|e| fail(format!("cannot create a temporary dir: {e}")))?;
    let sock = dir.path.join("qmp.sock");
    let stderr_path = dir.path.join("stderr");
    let mut child = spawn(emulator, &sock, &stderr_path).map_err(fail)?;
    let stderr_tail = || {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let text = text.trim();
        let start = text.len().saturating_sub(500);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        if text.is_empty() {
            String::new()
        } else {
            format!(": {}", &text[start..])
        }
    };
    let stream = match child.connect(&sock, connect) {
        Ok(s) => s,
        Err(e) => return Err(fail(format!("{e}{}", stderr_tail()))),
    };
    let result = Qmp::new(stream, SESSION_TIMEOUT).and_then(|mut qmp| {
        let caps = query_all(&mut qmp, emulator);
        // Whatever the queries gave, ask QEMU to leave, and wait for the
        // reply: QEMU drops commands still queued when the client hangs up.
        let _ = qmp.execute("quit", None);
        caps
    });
    if result.is_ok() {
        child.finish(EXIT_TIMEOUT);
    } else {
        // It may be hung: no point waiting for it (the drop kills it).
        drop(child);
    }
    result.map_err(|e| fail(format!("{e}{}", stderr_tail())))
}

/// Starts the emulator; retries briefly on ETXTBSY (a binary or script
/// just written while another thread forked).
fn spawn(emulator: &Path, sock: &Path, stderr: &Path) -> Result<ProbeChild, String> {
    let mut qmp = std::ffi::OsString::from("unix:");
    qmp.push(sock);
    qmp.push(",server=on,wait=off");
    let mut tries = 0;
    loop {
        let err =
            File::create(stderr).map_err(|e| format!("cannot create {}: {e}", stderr.display()))?;
        let spawned = Command::new(emulator)
            .args(["-machine", "none", "-accel", "tcg", "-qmp"])
            .arg(&qmp)
            .args(["-display", "none", "-S", "-no-user-config", "-nodefaults"])
            .env("LC_ALL", "C")
            // Our own socket activation and notification are not QEMU's.
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn();
        match spawned {
            Ok(c) => return Ok(ProbeChild(Some(c))),
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("cannot execute it: {e}")),
        }
    }
}

/// The QEMU child: killed and reaped when dropped, so no error path leaves
/// it running or a zombie.
struct ProbeChild(Option<Child>);

impl ProbeChild {
    /// Connects to `sock`, retrying until it accepts, the child exits or
    /// `bound` passes.
    fn connect(&mut self, sock: &Path, bound: Duration) -> Result<UnixStream, String> {
        let deadline = Instant::now() + bound;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("QEMU exited before QMP was ready ({status})"));
            }
            match UnixStream::connect(sock) {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "QMP socket not ready after {:.1} s ({e})",
                        bound.as_secs_f64()
                    ));
                }
                Err(_) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `bound` for the child to exit, then kills and reaps it.
    fn finish(&mut self, bound: Duration) {
        let Some(mut c) = self.0.take() else { return };
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for ProbeChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A private directory for the probe's socket and log, removed on drop.
struct ProbeDir {
    path: PathBuf,
}

impl ProbeDir {
    fn new() -> std::io::Result<ProbeDir> {
        static N: AtomicU64 = AtomicU64::new(0);
        let mut base = std::env::temp_dir();
        // A Unix socket path must fit in sun_path (108 bytes).
        if base.as_os_str().len() > 60 {
            base = PathBuf::from("/tmp");
        }
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("virtqemud-probe.{}.{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(ProbeDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for ProbeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A minimal, tolerant QMP client over a blocking socket.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    deadline: Instant,
    next_id: u64,
}

impl Qmp {
    /// Reads the greeting and negotiates capabilities.
    fn new(stream: UnixStream, bound: Duration) -> Result<Qmp, String> {
        let writer = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            deadline: Instant::now() + bound,
            next_id: 0,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("unexpected QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// The next message that is not an event.
    fn read_message(&mut self) -> Result<Value, String> {
        loop {
            let left = self
                .deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or("QMP timed out")?;
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| format!("QMP socket: {e}"))?;
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err("QMP connection closed".to_owned()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("QMP timed out".to_owned());
                }
                Err(e) => return Err(format!("QMP read: {e}")),
            }
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| format!("malformed QMP message ({e}): {}", line.trim()))?;
            if v.get("event").is_some() {
                continue;
            }
            return Ok(v);
        }
    }

    fn send(&mut self, cmd: &str, args: Option<Value>) -> Result<u64, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "execute": cmd, "id": id });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        self.writer
            .write_all(&bytes)
            .map_err(|e| format!("QMP write ({cmd}): {e}"))?;
        Ok(id)
    }

    /// Runs `cmd`; its `return` value, or its error's description.
    fn execute(&mut self, cmd: &str, args: Option<Value>) -> Result<Value, String> {
        let id = self.send(cmd, args)?;
        loop {
            let mut v = self.read_message()?;
            if v.get("id").is_some_and(|i| i.as_u64() != Some(id)) {
                continue;
            }
            if let Some(r) = v.get_mut("return") {
                return Ok(r.take());
            }
            if let Some(e) = v.get("error") {
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("unknown");
                return Err(format!("{cmd}: {desc}"));
            }
            return Err(format!("unexpected reply to {cmd}: {v}"));
        }
    }
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn bool_of(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn query_all(qmp: &mut Qmp, emulator: &Path) -> Result<QemuCaps, String> {
    let version = qmp.execute("query-version", None)?;
    let target = qmp.execute("query-target", None)?;
    let machines = qmp.execute("query-machines", None)?;
    // Not every target has CPU definitions: an error means none.
    let cpus = qmp
        .execute("query-cpu-definitions", None)
        .unwrap_or(Value::Null);
    let types = qmp.execute("qom-list-types", Some(json!({ "abstract": false })))?;
    let kvm = qmp.execute("query-kvm", None).unwrap_or(Value::Null);
    Ok(caps_from_replies(
        emulator,
        &Replies {
            version: &version,
            target: &target,
            machines: &machines,
            cpus: &cpus,
            types: &types,
            kvm: &kvm,
        },
        kvm_usable(),
    ))
}

/// The `return` values of the probe's queries.
pub(crate) struct Replies<'a> {
    pub version: &'a Value,
    pub target: &'a Value,
    pub machines: &'a Value,
    pub cpus: &'a Value,
    pub types: &'a Value,
    pub kvm: &'a Value,
}

/// Whether `/dev/kvm` opens read-write for this process.
pub(crate) fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Builds the capabilities from the replies; `dev_kvm` says whether
/// `/dev/kvm` is usable (see the module docs for what KVM gets).
pub(crate) fn caps_from_replies(emulator: &Path, r: &Replies<'_>, dev_kvm: bool) -> QemuCaps {
    let q = &r.version["qemu"];
    let num = |k: &str| q.get(k).and_then(Value::as_u64).unwrap_or(0);
    let packed = num("major") * 1_000_000 + num("minor") * 1_000 + num("micro");
    let arch = str_of(r.target, "arch").unwrap_or_default();

    let mut machines: Vec<MachineType> = r
        .machines
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let name = str_of(m, "name")?;
            (name != "none").then(|| MachineType {
                name,
                alias: str_of(m, "alias"),
                max_cpus: m
                    .get("cpu-max")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
                hotplug_cpus: bool_of(m, "hotpluggable-cpus"),
                default: bool_of(m, "is-default"),
                default_cpu: str_of(m, "default-cpu-type"),
                default_ram_id: str_of(m, "default-ram-id"),
                numa_mem_supported: bool_of(m, "numa-mem-supported"),
                deprecated: bool_of(m, "deprecated"),
                acpi: m.get("acpi").and_then(Value::as_bool),
            })
        })
        .collect();
    // libvirt's rule: its preferred machine (by alias or name) is the
    // default, else QEMU's; the default goes first.
    let preferred = preferred_machine(&arch).and_then(|p| {
        machines
            .iter()
            .position(|m| m.alias.as_deref() == Some(p) || m.name == p)
    });
    if let Some(i) = preferred.or_else(|| machines.iter().position(|m| m.default)) {
        for m in &mut machines {
            m.default = false;
        }
        let mut m = machines.remove(i);
        m.default = true;
        machines.insert(0, m);
    }

    let cpus: Vec<CpuModel> = r
        .cpus
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let blockers: Option<Vec<String>> = c
                .get("unavailable-features")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                });
            Some(CpuModel {
                name: str_of(c, "name")?,
                typename: str_of(c, "typename"),
                usable: blockers.as_ref().map(Vec::is_empty),
                blockers: blockers.unwrap_or_default(),
                deprecated: bool_of(c, "deprecated"),
            })
        })
        .collect();

    let mut flags: std::collections::BTreeSet<String> = r
        .types
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| str_of(t, "name"))
        .collect();
    if flags.contains("tcg-accel") {
        flags.insert("tcg".to_owned());
    }
    let kvm_on = bool_of(r.kvm, "present") && dev_kvm;
    let kvm = if kvm_on {
        flags.insert("kvm".to_owned());
        AccelCaps {
            machines: machines.clone(),
            cpus: cpus
                .iter()
                .map(|c| CpuModel {
                    usable: None,
                    blockers: Vec::new(),
                    ..c.clone()
                })
                .collect(),
            host_cpu: None,
        }
    } else {
        AccelCaps::default()
    };

    QemuCaps {
        emulator: emulator.display().to_string(),
        version: packed,
        package: str_of(r.version, "package")
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty()),
        arch,
        flags,
        kvm,
        tcg: AccelCaps {
            machines,
            cpus,
            host_cpu: None,
        },
        hyperv: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::Accel;

    const QEMU: &str = "/usr/bin/qemu-system-x86_64";

    fn qemu() -> Option<&'static Path> {
        let p = Path::new(QEMU);
        if p.is_file() {
            Some(p)
        } else {
            println!("skipped: {QEMU} is not installed");
            None
        }
    }

    #[test]
    fn probes_the_real_qemu() {
        let Some(bin) = qemu() else { return };
        let out = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .expect("--version");
        let want = crate::caps::parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
            .expect("version");
        let t = Instant::now();
        let caps = probe(bin).expect("probe");
        let took = t.elapsed();
        println!("probe of {QEMU} took {took:?}");
        assert!(took < Duration::from_millis(1500), "probe took {took:?}");
        assert_eq!(caps.version, want.packed());
        assert_eq!(caps.emulator, QEMU);
        assert_eq!(caps.arch, "x86_64");
        assert!(caps.package.is_some());
        let def = caps.default_machine(Accel::Tcg).expect("default machine");
        assert!(def.name.starts_with("pc-i440fx-"), "{}", def.name);
        assert_eq!(def.alias.as_deref(), Some("pc"));
        assert_eq!(caps.tcg.machines[0].name, def.name);
        assert_eq!(caps.tcg.machines.iter().filter(|m| m.default).count(), 1);
        let q35 = caps.machine(Accel::Tcg, "q35").expect("q35");
        assert!(q35.name.starts_with("pc-q35-") && q35.max_cpus >= 288);
        assert!(caps.machine(Accel::Tcg, "none").is_none());
        for f in [
            "pcie-root-port",
            "qemu-xhci",
            "piix3-usb-uhci",
            "cirrus-vga",
            "ich9-usb-ehci1",
            "nec-usb-xhci",
            "tcg",
        ] {
            assert!(caps.has(f), "flag {f}");
        }
        let qemu64 = caps.cpu_model(Accel::Tcg, "qemu64").expect("qemu64");
        assert_eq!(qemu64.usable, Some(true));
        let host = caps.cpu_model(Accel::Tcg, "host").expect("host cpu model");
        assert_eq!(host.usable, Some(false));
        if kvm_usable() {
            assert!(caps.has("kvm"));
            assert_eq!(caps.kvm.machines, caps.tcg.machines);
            assert_eq!(caps.kvm.cpus.len(), caps.tcg.cpus.len());
            assert!(caps.kvm.cpus.iter().all(|c| c.usable.is_none()));
        } else {
            assert!(!caps.has("kvm") && caps.kvm.machines.is_empty());
        }
        assert!(caps.kvm.host_cpu.is_none() && caps.tcg.host_cpu.is_none());
        // What we write, we read back.
        assert_eq!(QemuCaps::parse(&caps.to_xml()).expect("reparse"), caps);
        let v = |n: u64| u32::try_from(n).expect("u32");
        assert_eq!(
            caps.command_caps().version,
            (v(want.major), v(want.minor), v(want.micro))
        );
    }

    fn assert_fast_error(bin: &Path, bound: Duration) -> String {
        let t = Instant::now();
        let e = probe_bounded(bin, bound).expect_err("probe must fail");
        let took = t.elapsed();
        let msg = e.to_string();
        assert!(took < bound + Duration::from_secs(2), "{took:?}: {msg}");
        assert!(msg.contains(&bin.display().to_string()), "{msg}");
        msg
    }

    #[test]
    fn bad_binaries_fail_quickly_naming_the_binary() {
        let msg = assert_fast_error(Path::new("/nonexistent/qemu-kvm"), CONNECT_TIMEOUT);
        assert!(msg.contains("No such file"), "{msg}");
        let msg = assert_fast_error(Path::new("/bin/false"), CONNECT_TIMEOUT);
        assert!(msg.contains("exited"), "{msg}");

        let tmp = tempfile::tempdir().expect("tempdir");
        let write_script = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = tmp.path().join(name);
            std::fs::write(&p, body).expect("script");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            p
        };
        let talker = write_script("not-qemu", "#!/bin/sh\necho 'I am not QEMU' >&2\nexit 3\n");
        let msg = assert_fast_error(&talker, CONNECT_TIMEOUT);
        assert!(msg.contains("I am not QEMU"), "{msg}");
        // A binary that never opens the socket: bounded, and killed.
        let sleeper = write_script("sleeper", "#!/bin/sh\nexec sleep 30\n");
        let msg = assert_fast_error(&sleeper, Duration::from_millis(300));
        assert!(msg.contains("not ready"), "{msg}");
    }

    /// The replies libvirt recorded from QEMU 9.1 (the conformance
    /// corpus), read as a stream of JSON documents.
    fn corpus_replies() -> Option<Vec<Value>> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance")
            .join(crate::caps::qemu::LATEST_X86_64_FIXTURE.replace(".xml", ".replies"));
        let text = std::fs::read_to_string(p).ok()?;
        Some(
            serde_json::Deserializer::from_str(&text)
                .into_iter::<Value>()
                .map(|v| v.expect("replies parse"))
                .collect(),
        )
    }

    #[test]
    fn corpus_replies_give_libvirts_machines_and_cpus() {
        let (Some(msgs), Some(want)) = (corpus_replies(), crate::caps::qemu::tests_fixture())
        else {
            return;
        };
        // Each command is followed by its reply; libvirt probes KVM first,
        // then TCG: take the last reply of each command.
        let mut replies: std::collections::HashMap<String, Value> = Default::default();
        for pair in msgs.windows(2) {
            if let (Some(cmd), Some(ret)) = (pair[0].get("execute"), pair[1].get("return")) {
                replies.insert(cmd.as_str().expect("cmd").to_owned(), ret.clone());
            }
        }
        let r = |k: &str| replies.get(k).expect(k);
        let caps = caps_from_replies(
            Path::new("/usr/bin/qemu-system-x86_64"),
            &Replies {
                version: r("query-version"),
                target: r("query-target"),
                machines: r("query-machines"),
                cpus: r("query-cpu-definitions"),
                types: r("qom-list-types"),
                kvm: r("query-kvm"),
            },
            true,
        );
        assert_eq!(caps.version, want.version);
        assert_eq!(caps.package, want.package);
        assert_eq!(caps.arch, want.arch);
        assert_eq!(caps.tcg.machines, want.tcg.machines);
        assert_eq!(caps.kvm.machines, want.kvm.machines);
        assert_eq!(caps.tcg.cpus, want.tcg.cpus);
        let names = |c: &[CpuModel]| c.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&caps.kvm.cpus), names(&want.kvm.cpus));
        for f in [
            "pcie-root-port",
            "qemu-xhci",
            "piix3-usb-uhci",
            "cirrus-vga",
            "kvm",
            "tcg",
        ] {
            assert!(caps.has(f) && want.has(f), "{f}");
        }
    }

    #[test]
    fn replies_of_qemu_7_2_shape_parse() {
        // QEMU 7.2 has no `acpi` in query-machines; unknown fields are ignored.
        let version = json!({"qemu": {"major": 7, "minor": 2, "micro": 19}, "package": "Debian"});
        let target = json!({"arch": "x86_64"});
        let machines = json!([
            {"name": "pc-q35-7.2", "alias": "q35", "cpu-max": 288, "hotpluggable-cpus": true,
             "numa-mem-supported": false, "deprecated": false, "default-ram-id": "pc.ram",
             "default-cpu-type": "qemu64-x86_64-cpu", "future-field": 1},
            {"name": "none", "cpu-max": 1},
            {"name": "pc-i440fx-7.2", "alias": "pc", "is-default": true, "cpu-max": 255}
        ]);
        let cpus = json!([{"name": "qemu64", "typename": "qemu64-x86_64-cpu",
                           "unavailable-features": [], "static": false},
                          {"name": "Opteron_G5", "unavailable-features": ["fma4"]},
                          {"name": "odd"}]);
        let types = json!([{"name": "qemu-xhci", "parent": "x"}, {"name": "tcg-accel"}]);
        let kvm = json!({"enabled": false, "present": true});
        let r = Replies {
            version: &version,
            target: &target,
            machines: &machines,
            cpus: &cpus,
            types: &types,
            kvm: &kvm,
        };
        let caps = caps_from_replies(Path::new("/q"), &r, false);
        assert_eq!(caps.version, 7_002_019);
        assert_eq!(caps.tcg.machines.len(), 2);
        assert_eq!(caps.tcg.machines[0].name, "pc-i440fx-7.2");
        assert!(caps.tcg.machines[0].default && !caps.tcg.machines[1].default);
        assert_eq!(caps.tcg.machines[1].acpi, None);
        let g5 = caps.cpu_model(Accel::Tcg, "Opteron_G5").expect("g5");
        assert_eq!((g5.usable, g5.blockers.len()), (Some(false), 1));
        assert_eq!(caps.cpu_model(Accel::Tcg, "odd").expect("odd").usable, None);
        assert!(caps.has("qemu-xhci") && caps.has("tcg") && !caps.has("kvm"));
        assert!(caps.kvm.machines.is_empty());
        let caps = caps_from_replies(Path::new("/q"), &r, true);
        assert!(caps.has("kvm"));
        assert_eq!(caps.kvm.machines, caps.tcg.machines);
        assert_eq!(
            caps.cpu_model(Accel::Kvm, "Opteron_G5").expect("g5").usable,
            None
        );
        assert_eq!(QemuCaps::parse(&caps.to_xml()).expect("reparse"), caps);
    }
}
