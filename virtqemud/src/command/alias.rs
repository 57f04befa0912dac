//! Device aliases of a running domain (libvirt's
//! `qemuAssignDeviceAliases`): the QEMU ids the command line gives each
//! device, written into the live definition by the prepare-domain phase so
//! that the live XML shows them and hotplug can name devices.
//!
//! They follow the same rules as the builder's ids; the corpus test below
//! checks that every alias assigned appears as an id in the command built
//! from the same definition. User aliases (`ua-...`) are kept.

use common::domain::device::chr::{ChrTarget, ConsoleTargetType};
use common::domain::device::controller::{ControllerModel, PciModel, ScsiModel, UsbModel};
use common::domain::device::disk::{DiskBus, disk_name_to_index};
use common::domain::device::memballoon::BalloonModel;
use common::domain::device::{ControllerType, address::Address};
use common::domain::{Device, DomainDef};

/// Gives every device the builder knows an alias, unless it has one.
pub fn assign(def: &mut DomainDef) {
    let q35 = def.os.machine.as_deref().is_some_and(|m| m.contains("q35"));
    // The builder names disks on LSI controllers without the target.
    let lsi: Vec<u32> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Controller(c)
                if c.kind == ControllerType::Scsi
                    && matches!(
                        c.model,
                        None | Some(ControllerModel::Scsi(ScsiModel::Lsilogic))
                    ) =>
            {
                Some(c.index)
            }
            _ => None,
        })
        .collect();
    let mut n = Counters::default();
    for dev in &mut def.devices {
        let alias = match dev {
            Device::Disk(d) => disk_alias(d, &lsi),
            Device::Controller(c) => controller_alias(c, q35),
            Device::Interface(_) => Some(n.next(Kind::Net, "net")),
            Device::Input(_) => Some(n.next(Kind::Input, "input")),
            Device::Video(_) => Some(n.next(Kind::Video, "video")),
            Device::Serial(_) => Some(n.next(Kind::Serial, "serial")),
            Device::Channel(_) => Some(n.next(Kind::Channel, "channel")),
            Device::Console(c) => {
                let i = n.take(Kind::Console);
                match &c.target {
                    ChrTarget::Console {
                        kind: Some(ConsoleTargetType::Virtio),
                        ..
                    } => Some(format!("console{i}")),
                    // The first serial console is the serial port itself.
                    _ if i == 0 => Some("serial0".to_owned()),
                    _ => Some(format!("console{i}")),
                }
            }
            Device::Watchdog(_) => Some(n.next(Kind::Watchdog, "watchdog")),
            Device::Memballoon(b) if b.model != BalloonModel::None => Some("balloon0".to_owned()),
            Device::Rng(_) => Some(n.next(Kind::Rng, "rng")),
            Device::Sound(_) => Some(n.next(Kind::Sound, "sound")),
            Device::Hostdev(_) => Some(n.next(Kind::Hostdev, "hostdev")),
            Device::Redirdev(_) => Some(n.next(Kind::Redir, "redir")),
            Device::Smartcard(_) => Some(n.next(Kind::Smartcard, "smartcard")),
            Device::Tpm(_) => Some(n.next(Kind::Tpm, "tpm")),
            Device::Filesystem(_) => Some(n.next(Kind::Fs, "fs")),
            Device::Shmem(_) => Some(n.next(Kind::Shmem, "shmem")),
            Device::Memory(_) => Some(n.next(Kind::Dimm, "dimm")),
            _ => None,
        };
        if let (Some(a), Some(info)) = (alias, dev.info_mut())
            && info.alias.is_none()
        {
            info.alias = Some(a);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Net,
    Input,
    Video,
    Serial,
    Channel,
    Console,
    Watchdog,
    Rng,
    Sound,
    Hostdev,
    Redir,
    Smartcard,
    Tpm,
    Fs,
    Shmem,
    Dimm,
}

#[derive(Default)]
struct Counters(Vec<(Kind, u32)>);

impl Counters {
    fn take(&mut self, k: Kind) -> u32 {
        match self.0.iter_mut().find(|(kk, _)| *kk == k) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                self.0.push((k, 1));
                0
            }
        }
    }

    fn next(&mut self, k: Kind, prefix: &str) -> String {
        format!("{prefix}{}", self.take(k))
    }
}

fn disk_alias(d: &common::domain::device::Disk, lsi: &[u32]) -> Option<String> {
    let drive = match &d.info.address {
        Some(Address::Drive(a)) => Some(a),
        _ => None,
    };
    Some(match d.target.bus {
        Some(DiskBus::Ide) => {
            let a = drive?;
            format!("ide{}-{}-{}", a.controller, a.bus, a.unit)
        }
        Some(DiskBus::Sata) => {
            let a = drive?;
            format!("sata{}-{}-{}", a.controller, a.bus, a.unit)
        }
        Some(DiskBus::Fdc) => {
            let a = drive?;
            format!("fdc{}-{}-{}", a.controller, a.bus, a.unit)
        }
        Some(DiskBus::Scsi) => {
            let a = drive?;
            if lsi.contains(&a.controller) {
                format!("scsi{}-{}-{}", a.controller, a.bus, a.unit)
            } else {
                format!("scsi{}-{}-{}-{}", a.controller, a.bus, a.target, a.unit)
            }
        }
        Some(DiskBus::Virtio) => format!("virtio-disk{}", disk_name_to_index(&d.target.dev)?),
        Some(DiskBus::Usb) => format!("usb-disk{}", disk_name_to_index(&d.target.dev)?),
        _ => return None,
    })
}

fn controller_alias(c: &common::domain::device::Controller, q35: bool) -> Option<String> {
    let i = c.index;
    Some(match c.kind {
        ControllerType::Pci => match c.model {
            Some(ControllerModel::Pci(PciModel::PciRoot)) => format!("pci.{i}"),
            Some(ControllerModel::Pci(PciModel::PcieRoot)) => format!("pcie.{i}"),
            _ => format!("pci.{i}"),
        },
        // The implicit IDE of i440fx and SATA of q35 are QEMU's "ide".
        ControllerType::Ide if i == 0 => "ide".to_owned(),
        ControllerType::Sata if i == 0 && q35 => "ide".to_owned(),
        // No controller, nothing to name.
        ControllerType::Usb if c.model == Some(ControllerModel::Usb(UsbModel::None)) => {
            return None;
        }
        ControllerType::Usb if i == 0 => "usb".to_owned(),
        ControllerType::Usb => format!("usb{i}"),
        other => format!("{}{i}", other.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use common::domain::TestHooks;
    use common::xml::ParseFlags;

    use super::*;
    use crate::command::{CommandContext, args_to_string, build};

    /// Every alias we assign is an id in the command built from the same
    /// definition (or an implicit bus QEMU names itself), over the corpus.
    #[test]
    fn aliases_are_the_command_line_ids() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/domain-xml2argv");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("corpus absent: skipped");
            return;
        };
        let mut checked = 0;
        let mut wrong = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".x86_64-latest.xml") {
                continue;
            }
            let Ok(xml) = std::fs::read_to_string(&p) else {
                continue;
            };
            let flags = ParseFlags {
                inactive: false,
                ..ParseFlags::default()
            };
            let Ok(mut def) = DomainDef::parse_str(&xml, flags, &TestHooks) else {
                continue;
            };
            let Ok(cmd) = build(&def, &CommandContext::test()) else {
                continue;
            };
            let argv = args_to_string(&cmd);
            let before: Vec<Option<String>> = def
                .devices
                .iter()
                .map(|d| d.info().and_then(|i| i.alias.clone()))
                .collect();
            assign(&mut def);
            for (d, old) in def.devices.iter().zip(before) {
                let Some(a) = d.info().and_then(|i| i.alias.clone()) else {
                    continue;
                };
                if old.is_some() {
                    continue;
                }
                // Built into the machine (libvirt names them all the
                // same): buses, the floppy controller, q35's iTCO
                // watchdog, PS/2 mouse and keyboard.
                let implicit = ["ide", "pci.0", "pcie.0", "fdc0"].contains(&a.as_str())
                    || matches!(d, Device::Input(i) if i.bus == common::domain::device::input::InputBus::Ps2)
                    || matches!(d, Device::Watchdog(w) if w.model == common::domain::device::watchdog::WatchdogModel::Itco);
                let found = argv.contains(&format!("\"id\":\"{a}\""))
                    || argv.contains(&format!("id={a},"))
                    || argv.contains(&format!("id={a} "))
                    || argv.contains(&format!("id={a}\n"))
                    || argv.contains(&format!("\"bus\":\"{a}.0\""))
                    || argv.contains(&format!("\"bus\":\"{a}\""));
                if !found && !implicit {
                    wrong.push(format!("{name}: {a}"));
                }
                checked += 1;
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {checked} aliases not in the command: {wrong:#?}",
            wrong.len()
        );
        assert!(checked > 100, "only {checked} aliases checked");
    }
}
