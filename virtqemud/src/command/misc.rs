//! Audio backends, watchdogs, the memory balloon, RNGs and the trailing
//! sandbox/message options.

use common::domain::Device;
use common::domain::device::address::Address;
use common::domain::device::memballoon::BalloonModel;
use common::domain::device::rng::{RngBackend, RngModel};
use common::domain::device::sound::AudioType;
use common::domain::device::watchdog::{WatchdogAction, WatchdogModel};

use super::{Args, BuildError, Builder, Props, Result};

/// `-audiodev` per `<audio>`.
///
/// # Errors
/// Audio backends other than `none`.
pub fn build_audio(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    for d in &b.def.devices {
        let Device::Audio(a) = d else { continue };
        if a.kind != AudioType::None {
            return Err(BuildError::Unsupported(format!(
                "audio backend '{}'",
                a.kind.as_str()
            )));
        }
        args.opt(
            "-audiodev",
            Props::new()
                .s("id", format!("audio{}", a.id))
                .s("driver", "none")
                .to_json(),
        );
    }
    Ok(())
}

/// Watchdogs, balloon, RNGs, sandbox, `-msg`.
///
/// # Errors
/// Unsupported models.
pub fn build_tail(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let watchdogs: Vec<_> = b
        .def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Watchdog(w) => Some(w),
            _ => None,
        })
        .collect();
    for (i, w) in watchdogs.iter().enumerate() {
        match w.model {
            WatchdogModel::Itco => args.opt("-global", "ICH9-LPC.noreboot=off"),
            WatchdogModel::I6300esb | WatchdogModel::Ib700 => {
                let p = Props::new()
                    .s("driver", w.model.as_str())
                    .s("id", format!("watchdog{i}"))
                    .extend(b.address_props(&w.info));
                args.device(&p);
            }
            WatchdogModel::Diag288 => {
                return Err(BuildError::Unsupported("diag288 watchdog".to_owned()));
            }
        }
    }
    if let Some(w) = watchdogs.first() {
        let action = match w.action {
            WatchdogAction::Dump => "pause",
            other => other.as_str(),
        };
        args.opt("-watchdog-action", action);
    }
    for d in &b.def.devices {
        let Device::Memballoon(m) = d else { continue };
        let driver = match m.model {
            BalloonModel::None | BalloonModel::Xen => continue,
            BalloonModel::Virtio => "virtio-balloon-pci",
            BalloonModel::VirtioTransitional => "virtio-balloon-pci-transitional",
            BalloonModel::VirtioNonTransitional => "virtio-balloon-pci-non-transitional",
        };
        let p = Props::new()
            .s("driver", driver)
            .extend(super::controllers::virtio_props(&m.virtio))
            .s("id", "balloon0")
            .b_opt("deflate-on-oom", m.autodeflate)
            .b_opt("free-page-reporting", m.free_page_reporting)
            .extend(b.address_props(&m.info));
        args.device(&p);
    }
    let rngs = b.def.devices.iter().filter_map(|d| match d {
        Device::Rng(r) => Some(r.as_ref()),
        _ => None,
    });
    for (i, r) in rngs.enumerate() {
        let obj = format!("objrng{i}");
        let o = match &r.backend {
            RngBackend::Builtin => Props::new()
                .s("qom-type", "rng-builtin")
                .s("id", obj.clone()),
            RngBackend::Random(path) => Props::new()
                .s("qom-type", "rng-random")
                .s("id", obj.clone())
                .s(
                    "filename",
                    path.clone().unwrap_or_else(|| "/dev/urandom".to_owned()),
                ),
            RngBackend::Egd(src) => {
                let alias = format!("rng{i}");
                let mut fdset = 0;
                super::chardev::chardev(b, args, &src.backend, &alias, &mut fdset)?;
                Props::new()
                    .s("qom-type", "rng-egd")
                    .s("id", obj.clone())
                    .s("chardev", format!("char{alias}"))
            }
        };
        args.object(&o);
        let mut p = Props::new()
            .s(
                "driver",
                match r.model {
                    RngModel::Virtio => "virtio-rng-pci",
                    RngModel::VirtioTransitional => "virtio-rng-pci-transitional",
                    RngModel::VirtioNonTransitional => "virtio-rng-pci-non-transitional",
                },
            )
            .extend(super::controllers::virtio_props(&r.virtio))
            .s("rng", obj)
            .s("id", format!("rng{i}"));
        if let Some((bytes, period)) = r.rate {
            p = p
                .u("max-bytes", u64::from(bytes))
                .u("period", u64::from(period.unwrap_or(1000)));
        }
        p = p.extend(b.address_props(&r.info));
        args.device(&p);
    }
    build_panic(b, args);
    if b.ctx.conf.seccomp_sandbox {
        args.opt(
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        );
    }
    args.opt("-msg", "timestamp=on");
    Ok(())
}

/// `<panic model='isa'>`: the ISA pvpanic device, at its `iobase` when the
/// address names one.
fn build_panic(b: &Builder<'_>, args: &mut Args) {
    for d in &b.def.devices {
        let Device::Panic(p) = d else {
            continue;
        };
        let mut props = Props::new().s("driver", "pvpanic");
        if let Some(Address::Isa { iobase, .. }) = &p.info.address
            && *iobase != 0
        {
            props = props.u("ioport", u64::from(*iobase));
        }
        args.device(&props);
    }
}
