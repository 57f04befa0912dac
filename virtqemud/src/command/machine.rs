//! The head of the command: identity, machine, accelerator, CPU, memory,
//! vCPUs, monitor, clock, power management and boot options.

use common::domain::VirtType;
use common::domain::clock::{ClockBasis, ClockOffset, TickPolicy, TimerName, TimerTrack};
use common::domain::cpu::{CpuMode, FeaturePolicy};

use super::{Args, Builder, Props, Result, on_off, qemu_escape};

/// Everything before the devices.
///
/// # Errors
/// Unsupported CPU or clock configurations.
pub fn build_head(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let def = b.def;
    let dir = b.domain_dir();
    args.opt(
        "-name",
        format!("guest={},debug-threads=on", qemu_escape(&def.name)),
    );
    args.flag("-S");
    args.object(
        &Props::new()
            .s("qom-type", "secret")
            .s("id", "masterKey0")
            .s("format", "raw")
            .s("file", format!("{dir}/master-key.aes")),
    );
    args.opt("-machine", machine_value(b));
    args.opt(
        "-accel",
        match def.virt_type {
            VirtType::Kvm => "kvm",
            _ => "tcg",
        },
    );
    args.opt("-cpu", cpu_value(b)?);
    build_memory(b, args);
    args.opt("-overcommit", "mem-lock=off");
    args.opt("-smp", smp_value(b));
    args.opt("-uuid", def.uuid.to_string());
    if !def
        .devices
        .iter()
        .any(|d| matches!(d, common::domain::Device::Graphics(_)))
    {
        args.opt("-display", "none");
    }
    args.flag("-no-user-config");
    args.flag("-nodefaults");
    args.opt(
        "-chardev",
        format!(
            "socket,id=charmonitor,fd={},server=on,wait=off",
            b.ctx.fds.monitor
        ),
    );
    args.fd(super::FdRequest::Monitor {
        fd: b.ctx.fds.monitor,
    });
    args.opt("-mon", "chardev=charmonitor,id=monitor,mode=control");
    build_clock(b, args)?;
    args.flag("-no-shutdown");
    build_boot(b, args);
    Ok(())
}

fn machine_value(b: &Builder<'_>) -> String {
    let def = b.def;
    let mut s = b.machine().to_owned();
    s.push_str(",usb=off");
    if let Some(v) = def.features.vmport {
        s.push_str(",vmport=");
        s.push_str(on_off(v));
    }
    let dump = def.memory.dump_core.unwrap_or(b.ctx.conf.dump_guest_core);
    s.push_str(",dump-guest-core=");
    s.push_str(on_off(dump));
    s.push_str(",memory-backend=pc.ram");
    let hpet = def
        .clock
        .timers
        .iter()
        .find(|t| t.name == TimerName::Hpet)
        .and_then(|t| t.present);
    if let Some(p) = hpet {
        s.push_str(",hpet=");
        s.push_str(on_off(p));
    }
    s.push_str(",acpi=");
    s.push_str(on_off(def.features.acpi));
    s
}

fn cpu_value(b: &Builder<'_>) -> Result<String> {
    let def = b.def;
    let mut s = match &def.cpu {
        Some(cpu) => match cpu.mode.unwrap_or(CpuMode::Custom) {
            CpuMode::HostPassthrough => {
                format!("host,migratable={}", on_off(cpu.migratable.unwrap_or(true)))
            }
            CpuMode::HostModel => (def.virt_type == VirtType::Kvm)
                .then(|| b.ctx.caps.host_model_cpu.clone())
                .flatten()
                .ok_or_else(|| {
                    super::BuildError::Unsupported("host-model CPU is not known".to_owned())
                })?,
            CpuMode::Maximum => "max".to_owned(),
            CpuMode::Custom => {
                let mut s = cpu.model.clone().unwrap_or_else(|| "qemu64".to_owned());
                for (policy, name) in &cpu.features {
                    let on = matches!(policy, FeaturePolicy::Force | FeaturePolicy::Require);
                    s.push_str(&format!(",{name}={}", on_off(on)));
                }
                s
            }
        },
        None => "qemu64".to_owned(),
    };
    for t in &def.clock.timers {
        if t.name == TimerName::Kvmclock
            && let Some(p) = t.present
        {
            s.push_str(&format!(",kvmclock={}", on_off(p)));
        }
    }
    for t in &def.clock.timers {
        if t.name == TimerName::Tsc
            && let Some(f) = t.frequency
        {
            s.push_str(&format!(",tsc-frequency={f}"));
        }
    }
    if let Some(eoi) = def.features.apic_eoi {
        s.push_str(&format!(",kvm-pv-eoi={}", on_off(eoi)));
    }
    Ok(s)
}

fn build_memory(b: &Builder<'_>, args: &mut Args) {
    let def = b.def;
    // x86 guests get whole MiB (libvirt's qemuDomainAlignMemorySizes).
    let kib = def.total_memory().div_ceil(1024) * 1024;
    let mut m = format!("size={kib}k");
    if def.memory.max_memory > 0 {
        m.push_str(&format!(
            ",slots={},maxmem={}k",
            def.memory.slots, def.memory.max_memory
        ));
    }
    args.opt("-m", m);
    args.object(
        &Props::new()
            .s("qom-type", "memory-backend-ram")
            .s("id", "pc.ram")
            .u("size", kib * 1024),
    );
}

fn smp_value(b: &Builder<'_>) -> String {
    let v = &b.def.vcpus;
    let (max, cur) = (v.max(), v.current());
    let mut s = cur.to_string();
    if max != cur {
        s.push_str(&format!(",maxcpus={max}"));
    }
    match b.def.cpu.as_ref().and_then(|c| c.topology.as_ref()) {
        Some(t) => s.push_str(&format!(
            ",sockets={},dies={},clusters={},cores={},threads={}",
            t.sockets, t.dies, t.clusters, t.cores, t.threads
        )),
        None => s.push_str(&format!(",sockets={max},cores=1,threads=1")),
    }
    s
}

fn build_clock(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let clock = &b.def.clock;
    let mut s = match &clock.offset {
        ClockOffset::Utc { .. } => "base=utc".to_owned(),
        ClockOffset::Localtime { .. } => "base=localtime".to_owned(),
        ClockOffset::Variable { adjustment, basis } => {
            let local = if *basis == ClockBasis::Localtime {
                b.ctx.utc_offset
            } else {
                0
            };
            format!("base={}", iso_datetime(b.ctx.now + adjustment + local))
        }
        ClockOffset::Absolute(start) => {
            format!("base={}", iso_datetime(i64::try_from(*start).unwrap_or(0)))
        }
        ClockOffset::Timezone(_) => "base=localtime".to_owned(),
    };
    let mut globals = Vec::new();
    for t in &clock.timers {
        match t.name {
            TimerName::Rtc | TimerName::Platform => {
                match t.track {
                    Some(TimerTrack::Guest) => s.push_str(",clock=vm"),
                    Some(TimerTrack::Wall) => s.push_str(",clock=host"),
                    Some(TimerTrack::Realtime) => s.push_str(",clock=rt"),
                    _ => {}
                }
                match t.tickpolicy {
                    Some(TickPolicy::Catchup) => s.push_str(",driftfix=slew"),
                    Some(TickPolicy::Merge | TickPolicy::Discard) => {
                        return Err(super::BuildError::Unsupported(
                            "unsupported rtc timer tickpolicy".to_owned(),
                        ));
                    }
                    _ => {}
                }
            }
            TimerName::Pit => match t.tickpolicy {
                Some(TickPolicy::Delay) => globals.push("kvm-pit.lost_tick_policy=delay"),
                Some(TickPolicy::Discard) => globals.push("kvm-pit.lost_tick_policy=discard"),
                _ => {}
            },
            _ => {}
        }
    }
    args.opt("-rtc", s);
    for g in globals {
        args.opt("-global", g);
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix time.
pub fn iso_datetime(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn build_boot(b: &Builder<'_>, args: &mut Args) {
    let os = &b.def.os;
    let mut s = String::new();
    if let Some(menu) = os.bootmenu {
        s.push_str(&format!("menu={},", on_off(menu)));
    }
    if let Some(t) = os.bios_reboot_timeout {
        s.push_str(&format!("reboot-timeout={t},"));
    }
    if let Some(t) = os.bootmenu_timeout {
        s.push_str(&format!("splash-time={t},"));
    }
    s.push_str("strict=on");
    args.opt("-boot", s);
    if let Some(k) = &os.kernel {
        args.opt("-kernel", k.clone());
    }
    if let Some(i) = &os.initrd {
        args.opt("-initrd", i.clone());
    }
    if let Some(c) = &os.cmdline {
        args.opt("-append", c.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime() {
        assert_eq!(iso_datetime(1_234_567_890), "2009-02-13T23:31:30");
        assert_eq!(iso_datetime(0), "1970-01-01T00:00:00");
    }
}
