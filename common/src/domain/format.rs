//! Top-level format (libvirt's `virDomainDefFormatInternal`): section
//! order, and the console that aliases the first serial port.

use crate::xml::{Element, FormatFlags, escape};

use super::device::chr::{ChrTarget, ConsoleTargetType};
use super::device::{Chardev, Device};
use super::os::OsType;
use super::{
    DomainDef, clock, cpu, cputune, features, general, lifecycle, memory, numatune, os, resource,
    security, sysinfo, vcpu,
};

/// A top-level child: an element, or text already laid out (metadata).
pub(crate) enum Part {
    El(Element),
    Raw(String),
}

fn devices(def: &DomainDef, flags: &FormatFlags) -> Element {
    let mut e = Element::open("devices");
    if let Some(em) = &def.emulator {
        e.push(Element::text_element("emulator", em));
    }
    let running = def.id.is_some() && !flags.inactive;
    let serials: Vec<&Chardev> = def
        .devices
        .iter()
        .filter_map(|d| match d {
            Device::Serial(c) => Some(c.as_ref()),
            _ => None,
        })
        .collect();
    let mut console_idx = 0;
    for d in &def.devices {
        if let Device::Console(c) = d {
            let n = console_idx;
            console_idx += 1;
            let serial_alias = def.os.os_type == OsType::Hvm
                && matches!(
                    c.target,
                    ChrTarget::Console {
                        kind: None | Some(ConsoleTargetType::Serial),
                        ..
                    }
                );
            if serial_alias && let Some(s) = serials.get(n) {
                let alias = Chardev {
                    source: s.source.clone(),
                    target: ChrTarget::Console {
                        kind: Some(ConsoleTargetType::Serial),
                        port: s.target.port(),
                    },
                    info: s.info.clone(),
                };
                e.push(alias.format("console", flags));
                continue;
            }
        }
        e.push(d.format(flags, running));
    }
    e
}

fn parts(def: &DomainDef, flags: &FormatFlags) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    general::format_head(
        &mut out,
        &def.name,
        &def.uuid,
        def.genid.as_ref(),
        def.title.as_deref(),
        def.description.as_deref(),
        def.metadata.as_ref(),
    );
    let mut els: Vec<Element> = Vec::new();
    memory::format_memory(&def.memory, &mut els);
    if let Some(b) = &def.blkiotune {
        els.extend(memory::format_blkiotune(b));
    }
    if let Some(t) = &def.memtune {
        els.extend(memory::format_memtune(t));
    }
    els.extend(memory::format_memory_backing(&def.memory_backing));
    els.extend(vcpu::format_vcpus(&def.vcpus));
    els.extend(vcpu::format_iothreads(
        &def.iothreads,
        def.default_iothread.as_ref(),
    ));
    els.extend(cputune::format(
        &def.cputune,
        &def.vcpus,
        &def.iothreads,
        &def.resctrls,
        flags,
    ));
    if let Some(t) = &def.numatune {
        els.extend(numatune::format(t));
    }
    if let Some(r) = &def.resource {
        els.extend(resource::format_resource(r));
    }
    for s in &def.sysinfo {
        els.push(sysinfo::format(s));
    }
    os::format_bootloader(&def.os, &mut els);
    els.push(os::format(&def.os, flags));
    if let Some(m) = &def.idmap {
        els.extend(resource::format_idmap(m));
    }
    els.extend(features::format(&def.features));
    if let Some(c) = &def.cpu {
        els.extend(cpu::format(c));
    }
    els.push(clock::format(&def.clock));
    lifecycle::format_lifecycle(&def.lifecycle, &mut els);
    els.extend(lifecycle::format_pm(&def.pm));
    els.extend(lifecycle::format_perf(&def.perf));
    els.push(devices(def, flags));
    for s in &def.seclabels {
        els.push(security::format_seclabel(s, flags));
    }
    if let Some(k) = &def.keywrap {
        els.extend(security::format_keywrap(k));
    }
    if let Some(l) = &def.launch_security {
        els.push(security::format_launch_security(l));
    }
    if let Some(ns) = def.namespace.as_ref().filter(|n| n.keep) {
        els.extend(ns.elements.iter().cloned());
    }
    out.extend(els.into_iter().map(Part::El));
    out
}

pub(crate) fn to_xml(def: &DomainDef, flags: FormatFlags) -> String {
    let mut s = String::with_capacity(4096);
    s.push_str("<domain type='");
    s.push_str(def.virt_type.as_str());
    s.push('\'');
    if !flags.inactive
        && let Some(id) = def.id
    {
        s.push_str(&format!(" id='{id}'"));
    }
    if let Some(ns) = def.namespace.as_ref().filter(|n| n.keep) {
        for (p, uri) in &ns.decls {
            s.push_str(&format!(" xmlns:{p}='{}'", escape(uri)));
        }
    }
    s.push_str(">\n");
    for p in parts(def, &flags) {
        match p {
            Part::El(e) => e.write(&mut s, 1),
            Part::Raw(r) => s.push_str(&r),
        }
    }
    s.push_str("</domain>\n");
    s
}
