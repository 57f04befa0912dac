//! `QemuHooks`: the QEMU driver's part of the definition pipeline
//! (libvirt's `virQEMUDriverDomainDefParserConfig`).
//!
//! ```text
//!   post_parse        emulator, then with caps: machine, implicit devices,
//!                     CPU, audio (postparse.rs)
//!   post_parse_device device models and targets (postparse.rs)
//!   assign_addresses  PCI slots, pcie-root-ports, USB ports (address.rs)
//!   validate[_device] the QEMU driver's refusals (validate.rs)
//! ```
//!
//! Without capabilities (the daemon until the QMP probe exists) only the
//! emulator is filled and checked, as libvirt's `qemuDomainDefPostParse`
//! does through its capabilities cache:
//!
//! - no `<emulator>`: the host's `qemu-system-<arch>` from `PATH`, or
//!   `No emulator found for arch 'X'`;
//! - an `<emulator>` that is not a file: `Cannot check QEMU binary P: No
//!   such file or directory`.
//!
//! A definition stored on disk whose emulator vanished therefore fails
//! post-parse at load; with `allow_post_parse_fail` it is kept, marked and
//! retried later, as libvirt does.

mod address;
mod postparse;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::domain::{Device, DomainDef, DomainDefHooks, host_arch};
use common::xml::XmlError;

use crate::caps::QemuCaps;

/// The namespace of `<qemu:commandline>` and friends, which this driver
/// keeps when formatting.
const QEMU_NAMESPACE: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// The QEMU driver's hooks.
#[derive(Clone, Debug, Default)]
pub struct QemuHooks {
    /// Where to look for `qemu-system-<arch>`; `None`: `PATH`.
    search_path: Option<Vec<PathBuf>>,
    /// The emulator's capabilities; `None` until probed.
    caps: Option<Arc<QemuCaps>>,
    /// libvirt's test world: the emulator is not looked at on disk and
    /// randomness is mocked.
    test_world: bool,
    /// The qemu.conf settings the post-parse rules read.
    conf: QemuConf,
    /// `qemu-system-<arch>` found so far, per arch (shared by clones).
    found: Arc<std::sync::Mutex<Vec<(String, PathBuf)>>>,
}

/// The qemu.conf settings (and environment) post-parse depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuConf {
    /// `nographics_allow_host_audio`: a guest without graphics uses the
    /// host's audio backend.
    pub nographics_allow_host_audio: bool,
    /// `vnc_allow_host_audio`: a VNC guest uses the host's audio backend.
    pub vnc_allow_host_audio: bool,
    /// `QEMU_AUDIO_DRV` of the daemon's environment: the host backend.
    pub audio_env: Option<String>,
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
            ..QemuHooks::default()
        }
    }

    /// Hooks over known capabilities.
    pub fn with_caps(caps: Arc<QemuCaps>) -> QemuHooks {
        QemuHooks {
            caps: Some(caps),
            ..QemuHooks::default()
        }
    }

    /// libvirt's test harness (`qemuxmlconftest`): `caps` for every
    /// emulator, which is not looked up on disk, an x86_64 host and the
    /// mocked random source (bytes `00 01 02 ...`).
    pub fn test_world(caps: Arc<QemuCaps>) -> QemuHooks {
        QemuHooks {
            caps: Some(caps),
            test_world: true,
            ..QemuHooks::default()
        }
    }

    /// The same hooks with these qemu.conf settings.
    pub fn with_conf(mut self, conf: QemuConf) -> QemuHooks {
        self.conf = conf;
        self
    }

    /// The capabilities in use, if any.
    pub fn caps(&self) -> Option<&QemuCaps> {
        self.caps.as_deref()
    }

    /// `qemu-system-<arch>` from the search path. The binary found is
    /// remembered (as libvirt picks its emulators once, at driver start):
    /// later calls check only that it is still a file, instead of looking
    /// in every directory of the path on every definition parsed.
    pub fn default_emulator(&self, arch: &str) -> Option<PathBuf> {
        let mut found = self
            .found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = found.iter().position(|(a, _)| a == arch) {
            if found[i].1.is_file() {
                return Some(found[i].1.clone());
            }
            found.swap_remove(i);
        }
        let path = self.search_emulator(arch)?;
        found.push((arch.to_owned(), path.clone()));
        Some(path)
    }

    fn search_emulator(&self, arch: &str) -> Option<PathBuf> {
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

impl QemuHooks {
    fn emulator_post_parse(&self, def: &mut DomainDef) -> Result<(), XmlError> {
        if let Some(ns) = def.namespace.as_mut()
            && ns.decls.iter().any(|(_, uri)| uri == QEMU_NAMESPACE)
        {
            ns.keep = true;
        }
        if self.test_world {
            if def.emulator.is_none()
                && let Some(c) = &self.caps
            {
                def.emulator = Some(c.emulator.clone());
            }
            return Ok(());
        }
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
        Ok(())
    }
}

impl DomainDefHooks for QemuHooks {
    fn post_parse(&self, def: &mut DomainDef) -> Result<(), XmlError> {
        self.emulator_post_parse(def)?;
        match &self.caps {
            Some(caps) => postparse::domain(caps, &self.conf, def),
            None => Ok(()),
        }
    }

    fn post_parse_device(&self, def: &DomainDef, dev: &mut Device) -> Result<(), XmlError> {
        match &self.caps {
            Some(caps) => postparse::device(caps, def, dev),
            None => Ok(()),
        }
    }

    fn assign_addresses(&self, def: &mut DomainDef) -> Result<(), XmlError> {
        let res = match &self.caps {
            Some(caps) => address::assign(caps, def),
            None => Ok(()),
        };
        // The last change of the definition: it is kept for the domain's
        // life, so give back what the device list grew by (a parsed q35
        // guest: 13 devices of 200 bytes in room for 16).
        def.devices.shrink_to_fit();
        res
    }

    fn validate(&self, def: &DomainDef) -> Result<(), XmlError> {
        match &self.caps {
            Some(caps) => validate::domain(caps, def),
            None => Ok(()),
        }
    }

    fn validate_device(&self, def: &DomainDef, dev: &Device) -> Result<(), XmlError> {
        match &self.caps {
            Some(caps) => validate::device(caps, def, dev),
            None => Ok(()),
        }
    }

    fn default_arch(&self) -> Option<&str> {
        match &self.caps {
            Some(c) if self.test_world => Some(c.arch.as_str()),
            _ => host_arch(),
        }
    }

    fn random_bytes(&self, buf: &mut [u8]) {
        if self.test_world {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (i % 256) as u8;
            }
        } else {
            common::domain::os_random(buf);
        }
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
        // Remembered while it exists; looked for again once it is gone.
        assert_eq!(hooks.default_emulator("x86_64"), Some(bin.clone()));
        std::fs::remove_file(&bin).expect("remove fake qemu");
        assert_eq!(hooks.default_emulator("x86_64"), None);
        std::fs::write(&bin, "").expect("fake qemu again");
        assert_eq!(hooks.default_emulator("x86_64"), Some(bin));
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

#[cfg(test)]
mod caps_tests {
    //! The QEMU rules over a small capability set.

    use common::xml::{FormatFlags, ParseFlags};

    use super::*;

    fn caps() -> Arc<QemuCaps> {
        let mut c = QemuCaps::parse(
            "<qemuCaps><emulator>/usr/bin/qemu-system-x86_64</emulator>\
             <version>9001000</version><arch>x86_64</arch>\
             <flag name='piix3-usb-uhci'/><flag name='qemu-xhci'/><flag name='cirrus-vga'/>\
             <cpu type='tcg' name='qemu64' typename='qemu64-x86_64-cpu' usable='yes'/>\
             <machine type='tcg' name='pc-i440fx-9.1' alias='pc' maxCpus='255' \
               default='yes' defaultCPU='qemu64-x86_64-cpu'/>\
             <machine type='tcg' name='pc-q35-9.1' alias='q35' maxCpus='4096' \
               defaultCPU='qemu64-x86_64-cpu'/></qemuCaps>",
        )
        .expect("caps");
        c.strip_machine_aliases();
        Arc::new(c)
    }

    fn run(machine: &str, devices: &str) -> Result<String, XmlError> {
        let xml = format!(
            "<domain type='qemu'><name>g</name><uuid>1ccfd97d-5eb4-478a-bbe6-88d254c16db7</uuid>\
             <memory>4096</memory><os><type arch='x86_64' machine='{machine}'>hvm</type></os>\
             <devices>{devices}</devices></domain>"
        );
        let hooks = QemuHooks::test_world(caps());
        let def = DomainDef::parse_str(
            &xml,
            ParseFlags {
                inactive: true,
                ..ParseFlags::default()
            },
            &hooks,
        )?;
        Ok(def.to_xml(FormatFlags {
            inactive: true,
            secure: true,
            ..FormatFlags::default()
        }))
    }

    #[test]
    fn pc_gets_piix3_usb_pci_root_and_a_balloon_in_slot_2() {
        let out = run("pc", "").expect("accepted");
        assert!(out.contains("<controller type='usb' index='0' model='piix3-uhci'>"));
        assert!(out.contains("slot='0x01' function='0x2'"));
        assert!(out.contains("<controller type='pci' index='0' model='pci-root'/>"));
        assert!(out.contains("<input type='keyboard' bus='ps2'/>"));
        assert!(out.contains("<audio id='1' type='none'/>"));
        assert!(out.contains("<model fallback='forbid'>qemu64</model>"));
        let balloon = out.split("<memballoon").nth(1).expect("balloon");
        assert!(balloon.contains("bus='0x00' slot='0x02' function='0x0'"));
    }

    #[test]
    fn q35_puts_endpoints_behind_root_ports_with_a_spare() {
        let out = run("q35", "").expect("accepted");
        assert!(out.contains("<controller type='usb' index='0' model='qemu-xhci'>"));
        assert!(out.contains("bus='0x00' slot='0x1f' function='0x2'"));
        for (i, port) in [(1, "0x8"), (2, "0x9"), (3, "0xa")] {
            assert!(
                out.contains(&format!(
                    "<controller type='pci' index='{i}' model='pcie-root-port'>"
                )),
                "{out}"
            );
            assert!(out.contains(&format!("port='{port}'")), "{out}");
        }
        assert!(out.contains("function='0x0' multifunction='on'"));
        assert!(out.contains("<watchdog model='itco' action='reset'/>"));
    }

    #[test]
    fn channels_get_virtio_serial_ports_and_generated_paths_are_dropped() {
        let out = run(
            "pc",
            "<channel type='unix'><source mode='bind' \
               path='/var/lib/libvirt/qemu/channel/target/domain-1-g/org.qemu.guest_agent.0'/>\
               <target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             <channel type='pty'><target type='virtio' name='b'/></channel>",
        )
        .expect("accepted");
        assert!(
            !out.contains("/var/lib/libvirt/qemu/channel/target"),
            "{out}"
        );
        assert!(out.contains("<address type='virtio-serial' controller='0' bus='0' port='1'/>"));
        assert!(out.contains("<address type='virtio-serial' controller='0' bus='0' port='2'/>"));
        // The implicit virtio-serial controller follows the machine's own.
        let usb = out.find("<controller type='usb'").expect("usb");
        let vser = out
            .find("<controller type='virtio-serial'")
            .expect("virtio-serial");
        assert!(usb < vser);
    }

    #[test]
    fn usb_addresses_are_checked() {
        let e = run(
            "pc",
            "<hub type='usb'><address type='usb' bus='0' port='1'/></hub>\
             <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>",
        )
        .expect_err("duplicate");
        assert!(e.to_string().contains("Duplicate USB address bus 0 port 1"));
        let e = run(
            "pc",
            "<hub type='usb'><address type='usb' bus='0' port='1'/></hub>\
             <input type='tablet' bus='usb'><address type='usb' bus='0' port='1.9'/></input>",
        )
        .expect_err("no port 9 on a hub");
        assert!(
            e.to_string()
                .contains("requested USB port 1.9 not present on USB bus 0")
        );
    }

    #[test]
    fn default_machine_and_refusals() {
        let hooks = QemuHooks::test_world(caps());
        let def = DomainDef::parse_str(
            "<domain type='qemu'><name>g</name><memory>4096</memory>\
             <os><type>hvm</type></os></domain>",
            ParseFlags::default(),
            &hooks,
        )
        .expect("accepted");
        assert_eq!(def.os.machine.as_deref(), Some("pc"));
        assert_eq!(def.emulator.as_deref(), Some("/usr/bin/qemu-system-x86_64"));
        let e = run("pc-q35-1.0", "").expect_err("unknown machine");
        assert!(
            e.to_string()
                .contains("does not support machine type 'pc-q35-1.0'")
        );
        let e = run(
            "pc",
            "<controller type='usb' model='none'/><input type='tablet' bus='usb'/>",
        )
        .expect_err("usb disabled");
        assert!(e.to_string().contains("USB bus is disabled"));
        let e = run("pc", "<iommu model='intel'/>").expect_err("intel iommu on pc");
        assert!(e.to_string().contains("only supported with Q35"));
    }
}
