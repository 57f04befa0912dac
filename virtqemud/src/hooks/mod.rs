//! `QemuHooks`: the QEMU driver's part of the definition pipeline
//! (libvirt's `virQEMUDriverDomainDefParserConfig`).
//!
//! For now, post-parse fills the emulator and checks that it exists, as
//! libvirt's `qemuDomainDefPostParse` does through its capabilities cache:
//!
//! - no `<emulator>`: the host's `qemu-system-<arch>` from `PATH`, or
//!   `No emulator found for arch 'X'`;
//! - an `<emulator>` that is not a file: `Cannot check QEMU binary P: No
//!   such file or directory`.
//!
//! A definition stored on disk whose emulator vanished therefore fails
//! post-parse at load; with `allow_post_parse_fail` it is kept, marked and
//! retried later, as libvirt does.

use std::path::{Path, PathBuf};

use common::domain::{DomainDef, DomainDefHooks, host_arch};
use common::xml::XmlError;

/// The namespace of `<qemu:commandline>` and friends, which this driver
/// keeps when formatting.
const QEMU_NAMESPACE: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// The QEMU driver's hooks.
#[derive(Clone, Debug, Default)]
pub struct QemuHooks {
    /// Where to look for `qemu-system-<arch>`; `None`: `PATH`.
    search_path: Option<Vec<PathBuf>>,
}

impl QemuHooks {
    /// Hooks that look for emulators in `PATH`.
    pub fn new() -> QemuHooks {
        QemuHooks::default()
    }

    /// Hooks that look for emulators in `dirs` only (tests).
    #[cfg(test)]
    pub fn with_search_path(dirs: Vec<PathBuf>) -> QemuHooks {
        QemuHooks {
            search_path: Some(dirs),
        }
    }

    /// `qemu-system-<arch>` from the search path.
    pub fn default_emulator(&self, arch: &str) -> Option<PathBuf> {
        let name = format!("qemu-system-{arch}");
        let dirs: Vec<PathBuf> = match &self.search_path {
            Some(d) => d.clone(),
            None => std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        };
        dirs.into_iter()
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    }
}

impl DomainDefHooks for QemuHooks {
    fn post_parse(&self, def: &mut DomainDef) -> Result<(), XmlError> {
        match &def.emulator {
            None => {
                let arch = def
                    .os
                    .arch
                    .clone()
                    .or_else(|| host_arch().map(str::to_owned))
                    .unwrap_or_default();
                let found = self.default_emulator(&arch).ok_or_else(|| {
                    XmlError::invalid(
                        "devices/emulator",
                        format!("No emulator found for arch '{arch}'"),
                    )
                })?;
                def.emulator = Some(found.display().to_string());
            }
            Some(path) => {
                if let Err(e) = std::fs::metadata(Path::new(path)) {
                    let reason = match e.kind() {
                        std::io::ErrorKind::NotFound => "No such file or directory".to_owned(),
                        _ => e.to_string(),
                    };
                    return Err(XmlError::invalid(
                        "devices/emulator",
                        format!("Cannot check QEMU binary {path}: {reason}"),
                    ));
                }
            }
        }
        if let Some(ns) = def.namespace.as_mut()
            && ns.decls.iter().any(|(_, uri)| uri == QEMU_NAMESPACE)
        {
            ns.keep = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use common::domain::{Uuid, VirtType};

    use super::*;

    #[test]
    fn missing_emulator_is_filled_from_the_search_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("qemu-system-x86_64");
        std::fs::write(&bin, "").expect("fake qemu");
        let hooks = QemuHooks::with_search_path(vec![tmp.path().to_path_buf()]);
        let mut def = DomainDef::new(VirtType::Qemu, "vm", Uuid([1; 16]));
        def.os.arch = Some("x86_64".into());
        hooks.post_parse(&mut def).expect("post-parse");
        assert_eq!(def.emulator.as_deref(), Some(bin.to_str().expect("utf-8")));
        // Found: kept as it is.
        hooks.post_parse(&mut def).expect("again");
    }

    #[test]
    fn no_emulator_or_a_missing_one_fails() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let hooks = QemuHooks::with_search_path(vec![tmp.path().to_path_buf()]);
        let mut def = DomainDef::new(VirtType::Qemu, "vm", Uuid([1; 16]));
        def.os.arch = Some("riscv64".into());
        let e = hooks.post_parse(&mut def).expect_err("none");
        assert_eq!(
            e.to_string(),
            "devices/emulator: No emulator found for arch 'riscv64'"
        );
        def.emulator = Some("/nonexistent/qemu".into());
        let e = hooks.post_parse(&mut def).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "devices/emulator: Cannot check QEMU binary /nonexistent/qemu: No such file or directory"
        );
    }
}
