//! Devices on defined and running domains: attach, detach (by XML or by
//! alias) and update, with libvirt's live / config / current flags.
//!
//! The persistent definition (config) and the live one are changed the
//! same way: the device joins or leaves the definition, which then runs
//! post-parse and validation again, so defaults and addresses come from
//! the same code as at define time. A call that affects both checks both
//! before changing either.
//!
//! Live changes go through the command builder: the command lines of the
//! live definition before and after the change are built with the same
//! context, and what the new one has in addition (`-blockdev`, `-chardev`,
//! `-netdev`, `-object`, `-device`) is what QEMU gets, in that order, by
//! `blockdev-add`, `chardev-add`, `netdev_add`, `object-add` and
//! `device_add`. A failure takes out again, in reverse, what was added.
//! A change that would alter anything else of the command line is refused.
//!
//! Detach: a per-kind prepare step ([`find_device`]) finds the one device
//! the request names (alias always works) and checks that it may go; then
//! one shared path ([`QemuDriver::unplug`]) sends `device_del`, waits for
//! DEVICE_DELETED up to [`UNPLUG_WAIT`], and completes the removal
//! ([`QemuDriver::complete_removal`]: the definition loses the device, and
//! what the command line had for it only is released). When the guest has
//! not released the device in time, the alias stays pending (in the status
//! file) and the removal completes whenever the event arrives, also after
//! a daemon restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::domain::device::{ControllerType, Device};
use common::domain::{DomainDef, DomainDefHooks};
use common::objlist::ObjRef;
use common::xml::{FormatFlags, ParseFlags};
use common::{ErrorCode, ErrorDomain, VirtError};
use serde_json::Value;

use super::lifecycle::{host_bridge, not_running, tap_name};
use super::{QemuDriver, internal};
use crate::domain_event::{DomainEvent, EventBody};
use crate::domain_obj::{DomainObj, Runtime};
use crate::monitor::{Monitor, MonitorEvent};

/// How long a live detach waits for the guest to release the device.
pub const UNPLUG_WAIT: Duration = Duration::from_secs(5);

/// Where a change applies, resolved from the caller's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affect {
    /// The running domain.
    pub live: bool,
    /// The persistent definition.
    pub config: bool,
}

/// `(network, port uuid)` of a port, to release it.
fn port_of(p: Option<&crate::network::NicPort>) -> Vec<(String, String)> {
    p.map(|p| vec![(p.network.clone(), p.uuid.clone())])
        .unwrap_or_default()
}

/// The host side of a NIC attached live.
struct NicHost {
    port: Option<crate::network::NicPort>,
    tap: std::os::fd::OwnedFd,
}

/// How a detach ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detached {
    /// The device is gone (from every place the call affected).
    Done,
    /// The guest has not released it yet: the removal completes when it
    /// does (DEVICE_REMOVED event).
    Pending,
}

fn invalid(msg: impl Into<String>) -> VirtError {
    VirtError::new(ErrorCode::OperationInvalid, ErrorDomain::Domain, msg)
}

fn xml_error(msg: impl Into<String>) -> VirtError {
    VirtError::new(ErrorCode::XmlError, ErrorDomain::Domain, msg)
}

fn unsupported(msg: impl Into<String>) -> VirtError {
    VirtError::new(ErrorCode::ConfigUnsupported, ErrorDomain::Qemu, msg)
}

fn no_host_devices() -> VirtError {
    unsupported("unsupported configuration: host devices are not supported on this host")
}

fn qemu_failed(what: &str, e: crate::monitor::MonitorError) -> VirtError {
    e.to_virt_error(Some(what))
}

/// Parses one device element (as written, plus parse-time defaults) in the
/// context of no particular domain.
///
/// # Errors
/// Not exactly one device, or a device the parser refuses.
pub fn parse_device(xml: &str, hooks: &dyn DomainDefHooks) -> Result<Device, VirtError> {
    let t = xml.trim();
    if !t.starts_with('<')
        || t.starts_with("<domain")
        || t.starts_with("<?xml") && t.contains("<domain")
    {
        return Err(xml_error(
            "XML error: the device XML must be one device element, e.g. <disk> or <interface>",
        ));
    }
    let shell = format!(
        "<domain type='qemu'><name>device</name><memory>1024</memory>\
         <os><type>hvm</type></os><devices>{t}</devices></domain>"
    );
    let root = common::xml::parse(&shell).map_err(|e| xml_error(format!("XML error: {e}")))?;
    let flags = ParseFlags {
        inactive: false,
        validate: true,
        allow_post_parse_fail: false,
    };
    let def = DomainDef::parse_node(common::xml::Node::root(&root), flags, hooks)
        .map_err(|e| e.to_virt_error(ErrorDomain::Domain))?;
    let mut devices = def.devices.into_iter();
    match (devices.next(), devices.next()) {
        (Some(d), None) => Ok(d),
        (None, _) => Err(xml_error("XML error: no device found in the device XML")),
        (Some(_), Some(_)) => Err(xml_error(
            "XML error: the device XML must hold exactly one device",
        )),
    }
}

/// The alias a request names (`<alias name='...'/>`), if any.
fn alias_of(d: &Device) -> Option<&str> {
    d.info().and_then(|i| i.alias.as_deref())
}

/// Prepare step of a detach: the index of the one device of `def` that
/// `want` names, per kind (disk by target, interface by MAC and alias,
/// controller by type and index, ...; the alias always works), after
/// checking that it may be removed.
///
/// # Errors
/// No device matches, several do, or the device may not go.
pub fn find_device(def: &DomainDef, want: &Device) -> Result<usize, VirtError> {
    let matches: Vec<usize> = def
        .devices
        .iter()
        .enumerate()
        .filter(|(_, have)| same_device(have, want))
        .map(|(i, _)| i)
        .collect();
    let describe = || describe(want);
    let i = match matches.as_slice() {
        [i] => *i,
        [] => {
            return Err(VirtError::new(
                ErrorCode::DeviceMissing,
                ErrorDomain::Domain,
                format!(
                    "device not found: no {} found matching {}",
                    want.element_name(),
                    describe()
                ),
            ));
        }
        _ => {
            return Err(invalid(format!(
                "operation failed: multiple {} devices match {}; name one by its alias",
                want.element_name(),
                describe()
            )));
        }
    };
    may_remove(def, &def.devices[i])?;
    Ok(i)
}

/// The first console of a domain with a serial port is that serial port
/// (libvirt's compat console, written out from the `<serial>`): it is not
/// a device of its own, so it cannot be detached on its own.
fn refuse_console_detach(want: &Device) -> Result<(), VirtError> {
    use common::domain::device::chr::{ChrTarget, ConsoleTargetType};
    match want {
        Device::Console(c)
            if matches!(
                c.target,
                ChrTarget::Console {
                    kind: None | Some(ConsoleTargetType::Serial),
                    ..
                }
            ) =>
        {
            Err(invalid(
                "Requested operation is not valid: a serial console is the serial port itself; \
                 detach the <serial> instead",
            ))
        }
        _ => Ok(()),
    }
}

/// The last console of a running domain stays (a guest whose console
/// vanishes loses its log and login).
fn refuse_last_console(def: &DomainDef, i: usize) -> Result<(), VirtError> {
    let consoles = def
        .devices
        .iter()
        .filter(|d| matches!(d, Device::Console(_) | Device::Serial(_)))
        .count();
    if matches!(def.devices[i], Device::Console(_)) && consoles == 1 {
        return Err(invalid(
            "Requested operation is not valid: cannot detach the last console of a running domain",
        ));
    }
    Ok(())
}

/// The bus of a disk QEMU can neither plug nor unplug (IDE, SATA, floppy).
fn fixed_bus(d: &common::domain::device::Disk) -> Option<&'static str> {
    use common::domain::device::disk::DiskBus;
    d.target
        .bus
        .filter(|b| matches!(b, DiskBus::Ide | DiskBus::Sata | DiskBus::Fdc))
        .map(|b| b.as_str())
}

/// The checks a live removal adds: what QEMU cannot unplug.
fn may_unplug(def: &DomainDef, i: usize) -> Result<(), VirtError> {
    match &def.devices[i] {
        Device::Disk(d) if let Some(bus) = fixed_bus(d) => Err(unsupported(format!(
            "unsupported configuration: disk bus '{bus}' cannot be hotunplugged"
        ))),
        _ => Ok(()),
    }
}

/// The checks a live attach adds: what QEMU cannot plug.
fn may_plug(dev: &Device) -> Result<(), VirtError> {
    use common::domain::device::disk::DiskDevice;
    match dev {
        Device::Disk(d)
            if d.device == DiskDevice::Disk
                && let Some(bus) = fixed_bus(d) =>
        {
            Err(unsupported(format!(
                "unsupported configuration: disk bus '{bus}' cannot be hotplugged"
            )))
        }
        Device::Memballoon(_) => Err(unsupported(
            "unsupported configuration: live attach of a memory balloon is not supported",
        )),
        _ => Ok(()),
    }
}

/// What a detach request identifies, for messages.
fn describe(d: &Device) -> String {
    if let Some(a) = alias_of(d) {
        return format!("alias '{a}'");
    }
    match d {
        Device::Disk(x) => format!("target '{}'", x.target.dev),
        Device::Interface(x) if !x.mac_generated => format!("MAC address '{}'", x.mac),
        Device::Interface(_) => "the interface".to_owned(),
        Device::Controller(c) => format!("type '{}' index '{}'", c.kind.as_str(), c.index),
        _ => "the given XML".to_owned(),
    }
}

/// Whether `have` is the device `want` names.
fn same_device(have: &Device, want: &Device) -> bool {
    if std::mem::discriminant(have) != std::mem::discriminant(want) {
        return false;
    }
    if let Some(a) = alias_of(want) {
        return alias_of(have) == Some(a);
    }
    match (have, want) {
        (Device::Disk(h), Device::Disk(w)) => h.target.dev == w.target.dev,
        (Device::Interface(h), Device::Interface(w)) => w.mac_generated || h.mac == w.mac,
        (Device::Controller(h), Device::Controller(w)) => h.kind == w.kind && h.index == w.index,
        (Device::Input(h), Device::Input(w)) => h.kind == w.kind && h.bus == w.bus,
        (Device::Serial(h), Device::Serial(w))
        | (Device::Console(h), Device::Console(w))
        | (Device::Channel(h), Device::Channel(w))
        | (Device::Parallel(h), Device::Parallel(w)) => h.target == w.target,
        (Device::Watchdog(h), Device::Watchdog(w)) => h.model == w.model,
        (Device::Memballoon(_), Device::Memballoon(_)) => true,
        (Device::Rng(h), Device::Rng(w)) => h.model == w.model && h.backend == w.backend,
        _ => without_info(have) == without_info(want),
    }
}

/// A device with its address and alias cleared, for whole-device matches.
fn without_info(d: &Device) -> Device {
    let mut d = d.clone();
    if let Some(i) = d.info_mut() {
        i.alias = None;
        i.address = None;
    }
    d
}

/// The checks of the prepare step that do not depend on the kind's match.
fn may_remove(def: &DomainDef, d: &Device) -> Result<(), VirtError> {
    if let Device::Controller(c) = d {
        let in_use = def
            .devices
            .iter()
            .filter(|other| !std::ptr::eq(*other, d))
            .any(|other| uses_controller(other, c.kind, c.index));
        if in_use {
            return Err(invalid(format!(
                "operation failed: device cannot be detached: controller type '{}' index '{}' is still in use",
                c.kind.as_str(),
                c.index
            )));
        }
        if c.kind == ControllerType::Pci && c.index == 0 {
            return Err(invalid(
                "operation failed: the PCI root controller cannot be detached",
            ));
        }
    }
    if let Device::Hostdev(_) = d {
        return Err(no_host_devices());
    }
    Ok(())
}

/// Whether device `d` sits on controller `kind` `index`.
fn uses_controller(d: &Device, kind: ControllerType, index: u32) -> bool {
    use common::domain::device::Address;
    use common::domain::device::disk::DiskBus;
    let Some(addr) = d.info().and_then(|i| i.address.as_ref()) else {
        return false;
    };
    match (kind, addr) {
        (ControllerType::Pci, Address::Pci(p)) => p.bus == index,
        (ControllerType::VirtioSerial, Address::VirtioSerial { controller, .. }) => {
            *controller == index
        }
        (ControllerType::Ccid, Address::Ccid { controller, .. }) => *controller == index,
        (ControllerType::Usb, Address::Usb { bus, .. }) => *bus == index,
        (
            ControllerType::Scsi | ControllerType::Sata | ControllerType::Ide | ControllerType::Fdc,
            Address::Drive(a),
        ) => {
            let bus = match d {
                Device::Disk(x) => x.target.bus,
                _ => Some(DiskBus::Scsi),
            };
            let on = match kind {
                ControllerType::Scsi => bus == Some(DiskBus::Scsi),
                ControllerType::Sata => bus == Some(DiskBus::Sata),
                ControllerType::Ide => bus == Some(DiskBus::Ide),
                _ => bus == Some(DiskBus::Fdc),
            };
            on && a.controller == index
        }
        _ => false,
    }
}

/// Refuses an attach that would collide with what `def` has.
fn check_unique(def: &DomainDef, dev: &Device) -> Result<(), VirtError> {
    if let Some(a) = alias_of(dev)
        && def.devices.iter().any(|d| alias_of(d) == Some(a))
    {
        return Err(invalid(format!(
            "operation failed: non unique alias detected: {a}"
        )));
    }
    match dev {
        Device::Disk(d) if def.disks().any(|x| x.target.dev == d.target.dev) => Err(invalid(
            format!("operation failed: target {} already exists", d.target.dev),
        )),
        Device::Controller(c)
            if def
                .controllers()
                .any(|x| x.kind == c.kind && x.index == c.index) =>
        {
            Err(invalid(format!(
                "operation failed: controller index={} already exists",
                c.index
            )))
        }
        Device::Hostdev(_) => Err(no_host_devices()),
        _ => Ok(()),
    }
}

// === command-line differences ===

/// One piece of a command line that QEMU can take while running.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Part {
    Blockdev(String),
    Chardev(String),
    Netdev(String),
    Object(String),
    Device(String),
    Other(String),
}

fn parts(args: &[String]) -> Vec<Part> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let with_value = |make: fn(String) -> Part, it: &mut std::slice::Iter<'_, String>| {
            make(it.next().cloned().unwrap_or_default())
        };
        out.push(match a.as_str() {
            "-blockdev" => with_value(Part::Blockdev, &mut it),
            "-chardev" => with_value(Part::Chardev, &mut it),
            "-netdev" => with_value(Part::Netdev, &mut it),
            "-object" => with_value(Part::Object, &mut it),
            "-device" => with_value(Part::Device, &mut it),
            other => Part::Other(other.to_owned()),
        });
    }
    out
}

/// `(in b but not a, in a but not b)`, as multisets, in the order of `b`
/// and of `a`.
fn diff(a: &[Part], b: &[Part]) -> (Vec<Part>, Vec<Part>) {
    (minus(b, a), minus(a, b))
}

/// The parts of `a` that `b` does not have (as multisets), in `a`'s order.
fn minus(a: &[Part], b: &[Part]) -> Vec<Part> {
    let mut left: HashMap<&Part, usize> = HashMap::new();
    for p in b {
        *left.entry(p).or_default() += 1;
    }
    a.iter()
        .filter(|p| match left.get_mut(p) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .cloned()
        .collect()
}

fn json(s: &str) -> Result<Value, VirtError> {
    serde_json::from_str(s).map_err(|e| internal(format!("bad JSON in the command line: {e}")))
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The `id=` of a `-chardev TYPE,id=X,...` spec.
fn chardev_id(spec: &str) -> Result<String, VirtError> {
    spec.split(',')
        .find_map(|kv| kv.strip_prefix("id="))
        .map(str::to_owned)
        .ok_or_else(|| internal(format!("chardev without id: {spec}")))
}

/// `-chardev TYPE,id=X,k=v,...` as chardev-add's arguments.
fn chardev_args(spec: &str) -> Result<Value, VirtError> {
    let id = chardev_id(spec)?;
    let mut it = spec.split(',');
    let kind = it.next().unwrap_or_default();
    let kv: HashMap<&str, &str> = it.filter_map(|p| p.split_once('=')).collect();
    let on = |k: &str| kv.get(k).map(|v| *v == "on");
    let backend = match kind {
        "pty" => serde_json::json!({"type": "pty", "data": {}}),
        "null" => serde_json::json!({"type": "null", "data": {}}),
        "file" => {
            let path = kv.get("path").copied().unwrap_or_default();
            let mut data = serde_json::json!({ "out": path });
            if let Some(a) = on("append") {
                data["append"] = Value::Bool(a);
            }
            serde_json::json!({"type": "file", "data": data})
        }
        "socket" if kv.contains_key("path") || kv.contains_key("host") => {
            let addr = match kv.get("path") {
                Some(path) => serde_json::json!({"type": "unix", "data": {"path": path}}),
                None => serde_json::json!({"type": "inet", "data": {
                    "host": kv["host"],
                    "port": kv.get("port").copied().unwrap_or("0"),
                }}),
            };
            let mut data = serde_json::json!({ "addr": addr });
            for flag in ["server", "wait"] {
                if let Some(v) = on(flag) {
                    data[flag] = Value::Bool(v);
                }
            }
            serde_json::json!({"type": "socket", "data": data})
        }
        other => {
            return Err(unsupported(format!(
                "unsupported configuration: hotplug of '{other}' character devices is not supported yet"
            )));
        }
    };
    Ok(serde_json::json!({"id": id, "backend": backend}))
}

/// What was added to QEMU, to take it out again.
#[derive(Debug)]
enum Added {
    Blockdev(String),
    Chardev(String),
    Netdev(String),
    Object(String),
    Device(String),
}

/// What takes `p` out of QEMU again: its node name or id.
fn handle_of(p: &Part) -> Result<Added, VirtError> {
    let id = |s: &str, key: &str| Ok::<_, VirtError>(str_field(&json(s)?, key).unwrap_or_default());
    Ok(match p {
        Part::Blockdev(s) => Added::Blockdev(id(s, "node-name")?),
        Part::Chardev(s) => Added::Chardev(chardev_id(s)?),
        Part::Netdev(s) => Added::Netdev(id(s, "id")?),
        Part::Object(s) => Added::Object(id(s, "id")?),
        Part::Device(s) => Added::Device(id(s, "id")?),
        Part::Other(o) => return Err(internal(format!("cannot hotplug command-line part {o}"))),
    })
}

/// Adds `parts` to QEMU in order; on a failure takes out what was added.
/// A tap-backed `-netdev` gets `tap` (see [`add_one`]).
async fn plug(
    mon: &Monitor,
    parts: &[Part],
    mut tap: Option<std::os::fd::OwnedFd>,
) -> Result<(), VirtError> {
    let mut done: Vec<Added> = Vec::new();
    for p in parts {
        match add_one(mon, p, &mut tap).await {
            Ok(a) => done.push(a),
            Err(e) => {
                for a in done.into_iter().rev() {
                    unplug_backend(mon, &a).await;
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Adds one part. A `-netdev` that names a tap fd gets `tap`, passed with
/// `getfd` under `fd-<netdev id>`, which replaces the command line's fd
/// number (and is closed again when netdev_add fails).
async fn add_one(
    mon: &Monitor,
    p: &Part,
    tap: &mut Option<std::os::fd::OwnedFd>,
) -> Result<Added, VirtError> {
    let handle = handle_of(p)?;
    let (cmd, args) = match p {
        Part::Blockdev(s) => ("blockdev-add", json(s)?),
        Part::Chardev(s) => ("chardev-add", chardev_args(s)?),
        Part::Object(s) => ("object-add", json(s)?),
        Part::Device(s) => ("device_add", json(s)?),
        Part::Netdev(s) => {
            let mut v = json(s)?;
            if v.get("fd").is_none() {
                ("netdev_add", v)
            } else {
                let fd = tap
                    .take()
                    .ok_or_else(|| internal("a tap netdev without its tap"))?;
                let Added::Netdev(id) = &handle else {
                    unreachable!("handle_of gives a netdev its id")
                };
                let fdname = format!("fd-{id}");
                mon.pass_fd(&fdname, fd)
                    .await
                    .map_err(|e| qemu_failed("getfd", e))?;
                v["fd"] = Value::String(fdname.clone());
                if let Err(e) = mon.execute_raw("netdev_add", v).await {
                    let _ = mon
                        .execute_raw("closefd", serde_json::json!({ "fdname": fdname }))
                        .await;
                    return Err(qemu_failed("netdev_add", e));
                }
                return Ok(handle);
            }
        }
        Part::Other(_) => unreachable!("handle_of refuses it"),
    };
    mon.execute_raw(cmd, args)
        .await
        .map_err(|e| qemu_failed(cmd, e))?;
    Ok(handle)
}

/// Takes out one added part, logging (not failing) when QEMU refuses.
async fn unplug_backend(mon: &Monitor, a: &Added) {
    let (cmd, args) = match a {
        Added::Blockdev(n) => ("blockdev-del", serde_json::json!({"node-name": n})),
        Added::Chardev(id) => ("chardev-remove", serde_json::json!({"id": id})),
        Added::Netdev(id) => ("netdev_del", serde_json::json!({"id": id})),
        Added::Object(id) => ("object-del", serde_json::json!({"id": id})),
        Added::Device(id) => ("device_del", serde_json::json!({"id": id})),
    };
    if let Err(e) = mon.execute_raw(cmd, args).await {
        tracing::warn!("{cmd} while undoing a hotplug: {e}");
    }
}

/// The backends of removed parts, to release after the device is gone:
/// in reverse command-line order (a format node before its storage node).
fn backends_of(removed: &[Part]) -> Result<Vec<Added>, VirtError> {
    removed
        .iter()
        .rev()
        .filter(|p| !matches!(p, Part::Device(_) | Part::Other(_)))
        .map(handle_of)
        .collect()
}

impl QemuDriver {
    /// Resolves libvirt's flags against the domain's state: `current`
    /// (neither flag) means live when running, config otherwise; `live`
    /// on an inactive domain and `config` on a transient one are refused.
    fn affect(&self, obj: &DomainObj, live: bool, config: bool) -> Result<Affect, VirtError> {
        let st = obj.lock();
        let active = st.runtime.is_some();
        let a = if live || config {
            Affect { live, config }
        } else {
            Affect {
                live: active,
                config: !active,
            }
        };
        if a.live && !active {
            return Err(invalid(
                "Requested operation is not valid: domain is not running",
            ));
        }
        if a.config && !st.persistent {
            return Err(invalid(
                "Requested operation is not valid: cannot change persistent config of a transient domain",
            ));
        }
        if a.live
            && let Some(why) = &st.unmanaged
        {
            return Err(invalid(format!(
                "Requested operation is not valid: domain '{}' runs unmanaged ({why}); its devices cannot be changed until it is restarted",
                st.def.name
            )));
        }
        Ok(a)
    }

    /// The definition a config change starts from: the next-boot one.
    fn config_def(obj: &DomainObj) -> Arc<DomainDef> {
        let st = obj.lock();
        st.new_def.clone().unwrap_or_else(|| st.def.clone())
    }

    /// `def` with its defaults and addresses filled again after a change.
    fn refresh(&self, mut def: DomainDef) -> Result<DomainDef, VirtError> {
        def.post_parse(&self.hooks)
            .map_err(|e| e.to_virt_error(ErrorDomain::Domain))?;
        def.validate(&self.hooks)
            .map_err(|e| e.to_virt_error(ErrorDomain::Domain))?;
        Ok(def)
    }

    /// Writes the persistent definition and puts it in place.
    async fn save_config(&self, obj: &DomainObj, def: DomainDef) -> Result<(), VirtError> {
        let text = def.to_xml(FormatFlags {
            inactive: true,
            secure: true,
            migratable: false,
        });
        let store = self.store.clone();
        let name = def.name.clone();
        super::blocking(move || store.save(&name, &text)).await?;
        let mut st = obj.lock();
        if st.runtime.is_some() {
            st.new_def = Some(Arc::new(def));
        } else {
            st.def = Arc::new(def);
        }
        Ok(())
    }

    /// Writes the new persistent definition (when the call changes it)
    /// before the live change: it can be put back if the live change
    /// fails, while a live change cannot always be taken back. Returns the
    /// definition it replaced.
    async fn config_first(
        &self,
        obj: &DomainObj,
        new: Option<DomainDef>,
    ) -> Result<Option<Arc<DomainDef>>, VirtError> {
        let Some(d) = new else {
            return Ok(None);
        };
        let old = Self::config_def(obj);
        self.save_config(obj, d).await?;
        Ok(Some(old))
    }

    /// Puts back the persistent definition [`QemuDriver::config_first`]
    /// replaced when the live change failed.
    async fn undo_config<T>(
        &self,
        obj: &DomainObj,
        old: Option<Arc<DomainDef>>,
        live: &Result<T, VirtError>,
    ) {
        if live.is_err()
            && let Some(old) = old
            && let Err(e) = self.save_config(obj, (*old).clone()).await
        {
            tracing::error!(
                "cannot put the persistent definition back after a failed live change: {}",
                e.message
            );
        }
    }

    /// The command lines of two live definitions of a running domain,
    /// split into parts.
    fn command_parts(
        &self,
        old: &DomainDef,
        new: &DomainDef,
    ) -> Result<(Vec<Part>, Vec<Part>), VirtError> {
        let env = self
            .env
            .as_ref()
            .ok_or_else(|| internal("no usable QEMU emulator on this host"))?;
        let ctx = env.command_context(old.id.unwrap_or(0));
        let build = |d: &DomainDef| {
            crate::command::build(d, &ctx)
                .map(|c| parts(&c.args))
                .map_err(|e| match e {
                    crate::command::BuildError::Unsupported(m) => {
                        unsupported(format!("unsupported configuration: {m}"))
                    }
                    crate::command::BuildError::Internal(m) => internal(m),
                })
        };
        Ok((build(old)?, build(new)?))
    }

    /// Adds a device (AttachDevice).
    ///
    /// # Errors
    /// Bad XML, a collision, flags that do not fit the domain, QEMU's
    /// refusal (then QEMU and both definitions are as before).
    pub async fn attach_device(
        self: &Arc<Self>,
        r: &ObjRef,
        xml: &str,
        live: bool,
        config: bool,
    ) -> Result<(), VirtError> {
        let dev = parse_device(xml, &self.hooks)?;
        let obj = self.find(r)?;
        let _job = obj.begin_job().await?;
        let a = self.affect(&obj, live, config)?;
        // Check both before changing either.
        let new_config = if a.config {
            let mut d = (*Self::config_def(&obj)).clone();
            check_unique(&d, &dev)?;
            d.add_device(without_live_alias(&dev));
            Some(self.refresh(d)?)
        } else {
            None
        };
        let restore = self.config_first(&obj, new_config).await?;
        let live_result: Result<(), VirtError> = async {
            if !a.live {
                return Ok(());
            }
            let (old, rt) = live_def(&obj)?;
            check_unique(&old, &dev)?;
            may_plug(&dev)?;
            let user_alias = alias_of(&dev)
                .filter(|a| a.starts_with("ua-"))
                .map(str::to_owned);
            let mut marked = dev.clone();
            if let Some(i) = marked.info_mut() {
                i.alias = Some(NEW_MARK.to_owned());
            }
            let mut new = (*old).clone();
            new.add_device(marked);
            let mut new = self.refresh(new)?;
            let alias = assign_new_alias(&old, &mut new, user_alias.as_deref());
            refuse_unpluggable_slot(&new, alias.as_deref())?;
            self.resolve_new_volume(&mut new, alias.as_deref()).await?;
            let (port, tap) = match self.nic_host_side(&mut new, alias.as_deref()).await? {
                Some(n) => (n.port, Some(n.tap)),
                None => (None, None),
            };
            if let Err(e) = self.plug_new(&old, &new, &dev, &rt, tap).await {
                // The tap went with its descriptor; the port goes here.
                self.release_ports_of(&port_of(port.as_ref()));
                return Err(e);
            }
            let ident = {
                let mut st = obj.lock();
                st.def = Arc::new(new);
                st.ident()
            };
            self.save_status_logged(&obj);
            if let Some(alias) = alias {
                self.publish(DomainEvent {
                    domain: ident,
                    body: EventBody::DeviceAdded { alias },
                });
            }
            Ok(())
        }
        .await;
        self.undo_config(&obj, restore, &live_result).await;
        live_result
    }

    /// Changes a device in place (UpdateDevice): any device in the
    /// persistent definition; live, the medium of a CD-ROM or floppy
    /// (insert, change, eject with `force` for a locked tray).
    ///
    /// # Errors
    /// No such device, a live change QEMU cannot make, QEMU's refusal.
    pub async fn update_device(
        self: &Arc<Self>,
        r: &ObjRef,
        xml: &str,
        live: bool,
        config: bool,
        force: bool,
    ) -> Result<(), VirtError> {
        let new_dev = parse_device(xml, &self.hooks)?;
        let obj = self.find(r)?;
        let _job = obj.begin_job().await?;
        let a = self.affect(&obj, live, config)?;
        let new_config = if a.config {
            let d = Self::config_def(&obj);
            let i = find_device(&d, &new_dev)?;
            let mut d = (*d).clone();
            d.devices[i] = keep_info(&d.devices[i], &without_live_alias(&new_dev));
            Some(self.refresh(d)?)
        } else {
            None
        };
        let restore = self.config_first(&obj, new_config).await?;
        let live_result: Result<(), VirtError> = async {
            if !a.live {
                return Ok(());
            }
            let (def, rt) = live_def(&obj)?;
            let i = find_device(&def, &new_dev)?;
            let old_dev = &def.devices[i];
            let updated = keep_info(old_dev, &new_dev);
            if updated != *old_dev {
                let (Device::Disk(old), Device::Disk(new)) = (old_dev, &updated) else {
                    return Err(unsupported(format!(
                        "unsupported configuration: live update of <{}> devices \
                             is not supported",
                        old_dev.element_name()
                    )));
                };
                let removable = matches!(
                    old.device,
                    common::domain::device::disk::DiskDevice::Cdrom
                        | common::domain::device::disk::DiskDevice::Floppy
                );
                let mut same_but_medium = (**new).clone();
                same_but_medium.src = old.src.clone();
                same_but_medium.driver = old.driver.clone();
                if !removable || same_but_medium != **old {
                    return Err(unsupported(
                        "unsupported configuration: only the medium of a CD-ROM or floppy \
                         can be changed live",
                    ));
                }
                let alias = alias_of(old_dev)
                    .map(str::to_owned)
                    .ok_or_else(|| internal("the disk has no alias"))?;
                let mon = rt.monitor().await?;
                match new.src.path.as_deref() {
                    None | Some("") => mon
                        .execute_raw("eject", serde_json::json!({"id": alias, "force": force}))
                        .await
                        .map_err(|e| qemu_failed("eject", e))?,
                    Some(path) => {
                        let format = new
                            .src
                            .format
                            .map_or_else(|| "raw".to_owned(), |f| f.as_str().to_owned());
                        mon.execute_raw(
                            "blockdev-change-medium",
                            serde_json::json!({
                                "id": alias,
                                "filename": path,
                                "format": format,
                                "read-only-mode": "read-only",
                            }),
                        )
                        .await
                        .map_err(|e| qemu_failed("blockdev-change-medium", e))?
                    }
                };
                let mut nd = (*def).clone();
                nd.devices[i] = updated;
                obj.lock().def = Arc::new(nd);
                self.save_status_logged(&obj);
            }
            Ok(())
        }
        .await;
        self.undo_config(&obj, restore, &live_result).await;
        live_result
    }

    /// Plugs what `new` has beyond `old` in the command line into QEMU.
    async fn plug_new(
        &self,
        old: &DomainDef,
        new: &DomainDef,
        dev: &Device,
        rt: &Runtime,
        tap: Option<std::os::fd::OwnedFd>,
    ) -> Result<(), VirtError> {
        let (before, after) = self.command_parts(old, new)?;
        let (added, removed) = diff(&before, &after);
        if !removed.is_empty() || added.iter().any(|p| matches!(p, Part::Other(_))) {
            tracing::debug!(?added, ?removed, "live attach refused");
            return Err(unsupported(format!(
                "unsupported configuration: this <{}> cannot be attached live: \
                 it would change other parts of the command line",
                dev.element_name()
            )));
        }
        if added.is_empty() {
            return Err(unsupported(format!(
                "unsupported configuration: <{}> devices cannot be attached live",
                dev.element_name()
            )));
        }
        plug(&rt.monitor().await?, &added, tap).await
    }

    /// A `type='volume'` disk being attached live gets its volume's path
    /// and format from virtstoraged, as at start.
    async fn resolve_new_volume(
        &self,
        new: &mut DomainDef,
        alias: Option<&str>,
    ) -> Result<(), VirtError> {
        let Some(dev) = alias.and_then(|a| new.devices.iter().find(|d| alias_of(d) == Some(a)))
        else {
            return Ok(());
        };
        let mut one = new.clone();
        one.devices = vec![dev.clone()];
        if crate::storage::volumes_of(&one).is_empty() {
            return Ok(());
        }
        let storage = self
            .storage
            .as_ref()
            .ok_or_else(|| internal("no storage driver to resolve the volume"))?;
        let volumes = storage.resolve_all(&one).await?;
        crate::storage::apply(new, &volumes);
        Ok(())
    }

    /// The host side of a NIC being attached live (the marked device of
    /// `new`, now named `alias`): a port on its network, a tap on the
    /// bridge; the NIC's `portid` and `<target dev>` are written into
    /// `new`. `None` for NICs that need no tap.
    async fn nic_host_side(
        &self,
        new: &mut DomainDef,
        alias: Option<&str>,
    ) -> Result<Option<NicHost>, VirtError> {
        use common::domain::device::interface::NetSource;
        let Some(alias) = alias else {
            return Ok(None);
        };
        let Some((index, n)) = new
            .devices
            .iter()
            .filter_map(|d| match d {
                Device::Interface(n) => Some(n),
                _ => None,
            })
            .enumerate()
            .find(|(_, n)| n.info.alias.as_deref() == Some(alias))
        else {
            return Ok(None);
        };
        let (port, bridge) = match &n.source {
            NetSource::Network { .. } => {
                let mut one = new.clone();
                one.devices = vec![Device::Interface(n.clone())];
                let mut ports = self.create_ports(&one, &[]).await?;
                let mut p = ports
                    .pop()
                    .ok_or_else(|| internal("no port for the interface"))?;
                p.index = index;
                let bridge = p.bridge.clone();
                (Some(p), Some(bridge))
            }
            NetSource::Bridge { bridge } => (None, Some(host_bridge(bridge.as_ref())?)),
            NetSource::Ethernet => (None, None),
            _ => return Ok(None),
        };
        let name = tap_name(n);
        let (mac, virtio) = (n.mac.0, n.is_virtio());
        let tap = crate::process::tap::create(&name, mac, bridge.as_deref(), virtio)
            .map_err(|e| {
                VirtError::new(
                    ErrorCode::SystemError,
                    ErrorDomain::Qemu,
                    format!("Unable to create tap device {name}: {e}"),
                )
            })
            .and_then(|tap| {
                match crate::process::shaping::effective(n, port.as_ref()) {
                    // On failure the tap goes with its descriptor.
                    Some(bw) => crate::process::shaping::apply(&name, mac, &bw).map(|()| tap),
                    None => Ok(tap),
                }
            });
        let tap = match tap {
            Ok(t) => t,
            Err(e) => {
                self.release_ports_of(&port_of(port.as_ref()));
                return Err(e);
            }
        };
        if let Some(p) = &port {
            crate::network::apply(new, std::slice::from_ref(p));
        }
        if let Some(Device::Interface(n)) =
            new.devices.iter_mut().find(|d| alias_of(d) == Some(alias))
        {
            n.target_dev = Some(name);
        }
        Ok(Some(NicHost { port, tap: tap.fd }))
    }

    /// Removes the device `xml` names (DetachDevice).
    ///
    /// # Errors
    /// No such device or several, one that may not go, QEMU's refusal.
    pub async fn detach_device(
        self: &Arc<Self>,
        r: &ObjRef,
        xml: &str,
        live: bool,
        config: bool,
    ) -> Result<Detached, VirtError> {
        let want = parse_device(xml, &self.hooks)?;
        self.detach(r, &want, live, config).await
    }

    /// Removes the device with alias `alias` (DetachDeviceAlias).
    ///
    /// # Errors
    /// As [`QemuDriver::detach_device`].
    pub async fn detach_device_alias(
        self: &Arc<Self>,
        r: &ObjRef,
        alias: &str,
        live: bool,
        config: bool,
    ) -> Result<Detached, VirtError> {
        let obj = self.find(r)?;
        let a = self.affect(&obj, live, config)?;
        let (live_def, config_def) = {
            let st = obj.lock();
            (
                st.def.clone(),
                st.new_def.clone().unwrap_or_else(|| st.def.clone()),
            )
        };
        let def = if a.live { &live_def } else { &config_def };
        let found = def
            .devices
            .iter()
            .find(|d| alias_of(d) == Some(alias))
            .cloned()
            .ok_or_else(|| {
                VirtError::new(
                    ErrorCode::DeviceMissing,
                    ErrorDomain::Domain,
                    format!("device not found: no device found with alias {alias}"),
                )
            })?;
        if a.live && a.config && !alias.starts_with("ua-") {
            // The config copy of a live device has no alias (unless a user
            // one): the live one goes by alias, the config one by its kind.
            let res = self.detach(r, &found, true, false).await?;
            self.detach(r, &without_info(&found), false, true).await?;
            return Ok(res);
        }
        self.detach(r, &found, a.live, a.config).await
    }

    async fn detach(
        self: &Arc<Self>,
        r: &ObjRef,
        want: &Device,
        live: bool,
        config: bool,
    ) -> Result<Detached, VirtError> {
        refuse_console_detach(want)?;
        let obj = self.find(r)?;
        let _job = obj.begin_job().await?;
        let a = self.affect(&obj, live, config)?;
        // Prepare both before changing either.
        let new_config = if a.config {
            let d = Self::config_def(&obj);
            let i = find_device(&d, want)?;
            let mut d = (*d).clone();
            d.devices.remove(i);
            Some(d)
        } else {
            None
        };
        let restore = self.config_first(&obj, new_config).await?;
        let live_result: Result<Detached, VirtError> = async {
            if !a.live {
                return Ok(Detached::Done);
            }
            let (def, rt) = live_def(&obj)?;
            let i = find_device(&def, want)?;
            may_unplug(&def, i)?;
            refuse_last_console(&def, i)?;
            let alias = alias_of(&def.devices[i])
                .map(str::to_owned)
                .ok_or_else(|| internal("the device has no alias"))?;
            self.unplug(&obj, &rt, &alias).await
        }
        .await;
        self.undo_config(&obj, restore, &live_result).await;
        live_result
    }

    /// The shared path of every live detach: `device_del`, wait for the
    /// guest (bounded), complete or leave pending. The caller holds the job.
    async fn unplug(
        self: &Arc<Self>,
        obj: &Arc<DomainObj>,
        rt: &Arc<Runtime>,
        alias: &str,
    ) -> Result<Detached, VirtError> {
        if obj.lock().pending_removals.iter().any(|a| a == alias) {
            return Err(invalid(format!(
                "Requested operation is not valid: unplug of device '{alias}' is already in progress"
            )));
        }
        let mon = rt.monitor().await?;
        {
            let mut st = obj.lock();
            st.pending_removals.push(alias.to_owned());
            st.removal_waiter = Some(alias.to_owned());
            st.removals_seen.clear();
        }
        self.save_status_logged(obj);
        if let Err(e) = mon
            .execute_raw("device_del", serde_json::json!({ "id": alias }))
            .await
        {
            let mut st = obj.lock();
            st.pending_removals.retain(|a| a != alias);
            st.removal_waiter = None;
            drop(st);
            self.save_status_logged(obj);
            return Err(qemu_failed("device_del", e));
        }
        let deadline = tokio::time::Instant::now() + UNPLUG_WAIT;
        let released = loop {
            let notified = obj.changed.notified();
            if obj.lock().removals_seen.iter().any(|a| a == alias) {
                break true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break obj.lock().removals_seen.iter().any(|a| a == alias);
            }
        };
        {
            let mut st = obj.lock();
            st.removal_waiter = None;
            st.removals_seen.clear();
        }
        if released {
            self.complete_removal(obj, rt, alias).await;
            Ok(Detached::Done)
        } else {
            tracing::info!(
                alias,
                "the guest has not released the device yet; its removal stays pending"
            );
            Ok(Detached::Pending)
        }
    }

    /// QEMU has removed device `alias`: the live definition loses it, its
    /// backends go, DEVICE_REMOVED is published. The caller holds the job.
    pub(super) async fn complete_removal(&self, obj: &DomainObj, rt: &Arc<Runtime>, alias: &str) {
        let old = obj.lock().def.clone();
        let Some(i) = old.devices.iter().position(|d| alias_of(d) == Some(alias)) else {
            let mut st = obj.lock();
            st.pending_removals.retain(|a| a != alias);
            drop(st);
            self.save_status_logged(obj);
            return;
        };
        let mut new = (*old).clone();
        new.devices.remove(i);
        match self.command_parts(&old, &new) {
            Ok((before, after)) => {
                let (_, removed) = diff(&before, &after);
                match (backends_of(&removed), rt.monitor().await) {
                    (Ok(backends), Ok(mon)) => {
                        for b in &backends {
                            unplug_backend(&mon, b).await;
                        }
                    }
                    (Err(e), _) => {
                        tracing::warn!(alias, "backends of the removed device: {}", e.message)
                    }
                    (_, Err(e)) => tracing::warn!(alias, "monitor: {}", e.message),
                }
            }
            Err(e) => tracing::warn!(alias, "command line of the removed device: {}", e.message),
        }
        // A NIC's port on its network goes with it (its tap went with
        // QEMU's netdev).
        if let Device::Interface(n) = &old.devices[i]
            && let common::domain::device::interface::NetSource::Network {
                network,
                portid: Some(portid),
                ..
            } = &n.source
        {
            self.release_ports_of(&[(network.clone(), portid.clone())]);
        }
        let ident = {
            let mut st = obj.lock();
            st.def = Arc::new(new);
            st.pending_removals.retain(|a| a != alias);
            st.ident()
        };
        self.save_status_logged(obj);
        tracing::info!(alias, "device removed");
        self.publish(DomainEvent {
            domain: ident,
            body: EventBody::DeviceRemoved {
                alias: alias.to_owned(),
            },
        });
    }

    /// DEVICE_DELETED: wakes the detach waiting for it, or completes the
    /// removal in a task of its own (a pending one, or one the guest made).
    pub(super) fn on_device_deleted(
        self: &Arc<Self>,
        obj: &Arc<DomainObj>,
        rt: &Arc<Runtime>,
        ev: &MonitorEvent,
    ) {
        let Some(alias) = event_device(ev) else {
            return;
        };
        {
            let mut st = obj.lock();
            if st.removal_waiter.as_deref() == Some(alias.as_str()) {
                st.removals_seen.push(alias);
                drop(st);
                obj.changed.notify_waiters();
                return;
            }
            if !st
                .def
                .devices
                .iter()
                .any(|d| alias_of(d) == Some(alias.as_str()))
            {
                return;
            }
        }
        let (driver, obj, rt) = (self.clone(), obj.clone(), rt.clone());
        tokio::spawn(async move {
            let _job = obj.job.lock().await;
            if obj
                .lock()
                .runtime
                .as_ref()
                .is_some_and(|cur| Arc::ptr_eq(cur, &rt))
            {
                driver.complete_removal(&obj, &rt, &alias).await;
            }
        });
    }

    /// DEVICE_UNPLUG_GUEST_ERROR: the guest refused; the device stays.
    pub(super) fn on_unplug_error(&self, obj: &Arc<DomainObj>, ev: &MonitorEvent) {
        let Some(alias) = event_device(ev) else {
            return;
        };
        let ident = {
            let mut st = obj.lock();
            st.pending_removals.retain(|a| a != &alias);
            st.ident()
        };
        self.save_status_logged(obj);
        self.publish(DomainEvent {
            domain: ident,
            body: EventBody::DeviceRemovalFailed { alias },
        });
    }

    /// After a reconnect: pending removals whose device QEMU no longer has
    /// complete now.
    pub(super) async fn finish_removals_after_reconnect(
        &self,
        obj: &Arc<DomainObj>,
        rt: &Arc<Runtime>,
        mon: &Monitor,
    ) {
        let pending = obj.lock().pending_removals.clone();
        if pending.is_empty() {
            return;
        }
        let present: Vec<String> = match mon
            .execute_raw(
                "qom-list",
                serde_json::json!({"path": "/machine/peripheral"}),
            )
            .await
        {
            Ok(Value::Array(items)) => items.iter().filter_map(|i| str_field(i, "name")).collect(),
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(
                    "qom-list after reconnect: {e}; pending removals wait for their events"
                );
                return;
            }
        };
        let _job = obj.job.lock().await;
        for alias in pending {
            if !present.contains(&alias) {
                self.complete_removal(obj, rt, &alias).await;
            }
        }
    }
}

/// The `device` of a DEVICE_DELETED or DEVICE_UNPLUG_GUEST_ERROR event.
fn event_device(ev: &MonitorEvent) -> Option<String> {
    use qapi::qmp::Event;
    match ev.known() {
        Some(Event::DEVICE_DELETED { data, .. }) => data.device.clone(),
        Some(Event::DEVICE_UNPLUG_GUEST_ERROR { data, .. }) => data.device.clone(),
        Some(_) => None,
        None => ev.raw().and_then(|v| str_field(v, "device")),
    }
}

/// `new` with `old`'s address and alias where `new` names none.
fn keep_info(old: &Device, new: &Device) -> Device {
    let mut d = new.clone();
    if let (Some(o), Some(n)) = (old.info(), d.info_mut()) {
        if n.address.is_none() {
            n.address = o.address.clone();
        }
        if n.alias.is_none() {
            n.alias = o.alias.clone();
        }
    }
    d
}

/// The live definition of a running domain and its process.
fn live_def(obj: &DomainObj) -> Result<(Arc<DomainDef>, Arc<Runtime>), VirtError> {
    let st = obj.lock();
    Ok((st.def.clone(), st.runtime.clone().ok_or_else(not_running)?))
}

/// A device for the persistent definition: a live alias (not `ua-`) is
/// not kept there.
fn without_live_alias(d: &Device) -> Device {
    let mut d = d.clone();
    if let Some(i) = d.info_mut()
        && i.alias.as_deref().is_some_and(|a| !a.starts_with("ua-"))
    {
        i.alias = None;
    }
    d
}

/// A live PCI device on q35 needs a PCIe root port: post-parse puts it on
/// the root bus (where QEMU cannot plug it) when no free port is left.
fn refuse_unpluggable_slot(new: &DomainDef, alias: Option<&str>) -> Result<(), VirtError> {
    use common::domain::device::Address;
    let q35 = new.os.machine.as_deref().is_some_and(|m| m.contains("q35"));
    let Some(dev) = alias.and_then(|a| new.devices.iter().find(|d| alias_of(d) == Some(a))) else {
        return Ok(());
    };
    match dev.info().and_then(|i| i.address.as_ref()) {
        Some(Address::Pci(p)) if q35 && p.bus == 0 => Err(unsupported(format!(
            "unsupported configuration: no free hot-pluggable PCI slot for the <{}>: \
             add a <controller type='pci' model='pcie-root-port'/> to the definition",
            dev.element_name()
        ))),
        _ => Ok(()),
    }
}

/// The temporary alias that marks the device being attached while the
/// definition runs post-parse (a user alias, which post-parse keeps).
const NEW_MARK: &str = "ua-virt-hotplug-new";

/// Gives the marked device of `new` (see [`NEW_MARK`]) the alias it would
/// get at start, unique among the others, and a disk its node number;
/// returns the alias.
fn assign_new_alias(
    old: &DomainDef,
    new: &mut DomainDef,
    user_alias: Option<&str>,
) -> Option<String> {
    let idx = new
        .devices
        .iter()
        .position(|d| alias_of(d) == Some(NEW_MARK))?;
    let taken: std::collections::HashSet<String> = old
        .devices
        .iter()
        .filter_map(|d| alias_of(d).map(str::to_owned))
        .collect();
    let alias = match user_alias {
        Some(a) => a.to_owned(),
        None => {
            let mut probe = new.clone();
            if let Some(i) = probe.devices[idx].info_mut() {
                i.alias = None;
            }
            crate::command::alias::assign(&mut probe);
            let mut alias = alias_of(&probe.devices[idx])?.to_owned();
            if taken.contains(&alias) {
                // One of the same kind was unplugged earlier: the next free
                // number with the same prefix.
                let prefix = alias
                    .trim_end_matches(|c: char| c.is_ascii_digit())
                    .to_owned();
                let mut n = 0u32;
                while taken.contains(&format!("{prefix}{n}")) {
                    n += 1;
                }
                alias = format!("{prefix}{n}");
            }
            alias
        }
    };
    let next_index = old.disks().filter_map(|d| d.src.index).max().unwrap_or(0) + 1;
    let dev = &mut new.devices[idx];
    if let Device::Disk(d) = dev
        && d.src.index.is_none()
    {
        d.src.index = Some(next_index);
    }
    if let Some(i) = dev.info_mut() {
        i.alias = Some(alias.clone());
    }
    Some(alias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_diff() {
        let a: Vec<String> = ["-S", "-device", "{\"id\":\"a\"}", "-chardev", "pty,id=c0"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut b = a.clone();
        b.extend(
            [
                "-blockdev",
                "{\"node-name\":\"n\"}",
                "-device",
                "{\"id\":\"b\"}",
            ]
            .map(str::to_owned),
        );
        let (pa, pb) = (parts(&a), parts(&b));
        let (added, removed) = diff(&pa, &pb);
        assert_eq!(
            added,
            vec![
                Part::Blockdev("{\"node-name\":\"n\"}".into()),
                Part::Device("{\"id\":\"b\"}".into())
            ]
        );
        assert!(removed.is_empty());
        let (added, removed) = diff(&pb, &pa);
        assert!(added.is_empty());
        assert_eq!(removed.len(), 2);
        let backends = backends_of(&removed).expect("backends");
        assert!(matches!(&backends[..], [Added::Blockdev(n)] if n == "n"));
    }

    #[test]
    fn chardev_specs_become_chardev_add() {
        let v = chardev_args("pty,id=charchannel0").expect("pty");
        assert_eq!(
            chardev_id("pty,id=charchannel0").expect("id"),
            "charchannel0"
        );
        assert_eq!(v["id"], "charchannel0");
        assert_eq!(v["backend"]["type"], "pty");
        let v = chardev_args("socket,id=c1,path=/run/x.sock,server=on,wait=off").expect("socket");
        assert_eq!(v["backend"]["data"]["addr"]["data"]["path"], "/run/x.sock");
        assert_eq!(v["backend"]["data"]["server"], true);
        assert_eq!(v["backend"]["data"]["wait"], false);
        let v = chardev_args("file,id=c2,path=/l/f.log,append=on").expect("file");
        assert_eq!(v["backend"]["data"]["out"], "/l/f.log");
        assert!(chardev_args("spicevmc,id=c3,name=vdagent").is_err());
        let v =
            chardev_args("socket,id=c4,host=127.0.0.1,port=4555,server=on,wait=off").expect("tcp");
        assert_eq!(v["backend"]["data"]["addr"]["type"], "inet");
        assert_eq!(v["backend"]["data"]["addr"]["data"]["port"], "4555");
        assert_eq!(v["backend"]["data"]["wait"], false);
    }
}
