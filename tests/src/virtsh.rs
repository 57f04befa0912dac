//! Running the `virtsh` binary against a test root, as the end-to-end
//! tests of its commands do.

use std::process::{Command, Output};

use crate::{TestRoot, bin_dir};

/// Runs `virtsh ARGS` with `VIRT_ROOT` set to `root` and no default URI
/// from the environment.
pub fn run(root: &TestRoot, args: &[&str]) -> Output {
    Command::new(bin_dir().join("virtsh"))
        .args(args)
        .env("VIRT_ROOT", root.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .output()
        .expect("run virtsh")
}

/// stdout of a run that must succeed with nothing on stderr.
///
/// # Panics
/// It failed or wrote to stderr.
pub fn ok(root: &TestRoot, args: &[&str]) -> String {
    let out = run(root, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success() && e.is_empty(),
        "virtsh {args:?}: {o}{e}"
    );
    o
}

/// stderr of a run that must fail with status 1.
///
/// # Panics
/// It did not exit with 1.
pub fn fails(root: &TestRoot, args: &[&str]) -> String {
    let out = run(root, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "virtsh {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
