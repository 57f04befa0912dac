//! Python grpcio clients for the tests: a venv with pinned grpcio and
//! grpcio-tools, and Python modules generated from proto/.
//!
//! The venv lives in `target/pyvenv` and is reused while its marker file
//! names the same pinned packages; creating it is serialized by a file lock
//! (`target/pyvenv.lock`), so parallel test processes do not race.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::{bin_dir, workspace_dir};

/// Pinned: both have CPython 3.11 manylinux wheels.
const REQUIREMENTS: [&str; 2] = ["grpcio==1.85.1", "grpcio-tools==1.85.1"];
const MARKER: &str = ".virt-tests-ready";

/// Runs `cmd`, panicking with its output unless it succeeds; returns
/// stdout and stderr.
pub fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n{text}",
        out.status
    );
    text
}

/// The venv's python, creating the venv and installing the pinned packages
/// first when needed.
pub fn venv_python() -> PathBuf {
    let version = match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => panic!(
            "python3 --version failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "python3 is missing ({e}): the Python client test needs python3 with the venv \
             module (Debian: apt-get install python3 python3-venv; `make setup` does it)"
        ),
    };
    let target = bin_dir().parent().expect("target directory").to_path_buf();
    std::fs::create_dir_all(&target).expect("target dir");
    let venv = target.join("pyvenv");
    let python = venv.join("bin/python");
    let want = format!("{version}\n{}\n", REQUIREMENTS.join("\n"));

    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target.join("pyvenv.lock"))
        .expect("open pyvenv.lock");
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock pyvenv.lock");

    let marker = venv.join(MARKER);
    if python.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == want) {
        return python;
    }
    eprintln!(
        "creating {} with {REQUIREMENTS:?} (first run only)",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv).expect("remove stale venv");
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .args(REQUIREMENTS)
            .env("PIP_NO_INPUT", "1"),
        "pip install grpcio grpcio-tools",
    );
    std::fs::write(&marker, &want).expect("write venv marker");
    python
}

/// Every .proto under `dir`, relative to `base`.
fn protos(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read proto dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            protos(base, &p, out);
        } else if p.extension().is_some_and(|x| x == "proto") {
            out.push(p.strip_prefix(base).expect("under proto/").to_path_buf());
        }
    }
}

/// Generates Python modules for all of proto/virt into `out`.
pub fn generate(python: &Path, out: &Path) {
    let proto = workspace_dir().join("proto");
    let mut files = Vec::new();
    protos(&proto, &proto.join("virt"), &mut files);
    files.sort();
    assert!(files.len() >= 5, "protos: {files:?}");
    std::fs::create_dir_all(out).expect("gen dir");
    run(
        Command::new(python)
            .current_dir(&proto)
            .args(["-m", "grpc_tools.protoc", "-I", "."])
            .arg(format!("--python_out={}", out.display()))
            .arg(format!("--grpc_python_out={}", out.display()))
            .args(&files),
        "grpc_tools.protoc",
    );
    assert!(out.join("virt/domain/v1/domain_pb2_grpc.py").is_file());
}
