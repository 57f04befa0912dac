//! Pipeline unit tests.

use crate::xml::{FormatFlags, ParseFlags, XmlError};

use super::*;

const MINIMAL: &str = "<domain type='kvm'>\n  <name>a</name>\n  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>\n  <memory>1024</memory>\n  <os><type>hvm</type></os>\n</domain>";

#[test]
fn minimal_gets_defaults() {
    let d = DomainDef::parse_str(MINIMAL, ParseFlags::default(), &TestHooks).expect("parse");
    assert_eq!(
        d.to_xml(FormatFlags::default()),
        "<domain type='kvm'>\n  <name>a</name>\n  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>\n  <memory unit='KiB'>1024</memory>\n  <currentMemory unit='KiB'>1024</currentMemory>\n  <vcpu placement='static'>1</vcpu>\n  <os>\n    <type arch='x86_64'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n  <clock offset='utc'/>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n  <devices>\n  </devices>\n</domain>\n"
    );
}

struct FailingHooks;

impl DomainDefHooks for FailingHooks {
    fn post_parse(&self, _def: &mut DomainDef) -> Result<(), XmlError> {
        Err(XmlError::invalid("", "driver unavailable"))
    }
}

#[test]
fn allow_post_parse_fail_keeps_the_parsed_definition() {
    let err = DomainDef::parse_str(MINIMAL, ParseFlags::default(), &FailingHooks);
    assert!(err.is_err());
    let flags = ParseFlags {
        allow_post_parse_fail: true,
        ..ParseFlags::default()
    };
    let d = DomainDef::parse_str(MINIMAL, flags, &FailingHooks).expect("kept");
    assert!(d.post_parse_failed);
    // As parsed: no post-parse defaults were applied.
    assert_eq!(d.memory.current, 0);
    assert!(d.os.boot_devs.is_empty());
}

struct CountingHooks(std::cell::Cell<usize>);

impl DomainDefHooks for CountingHooks {
    fn post_parse_device(&self, def: &DomainDef, dev: &mut Device) -> Result<(), XmlError> {
        assert!(!def.devices.is_empty());
        if let Device::Disk(d) = dev {
            d.serial = Some("from-hook".to_owned());
        }
        self.0.set(self.0.get() + 1);
        Ok(())
    }
}

#[test]
fn device_hooks_see_every_device() {
    let xml = MINIMAL.replace(
        "</domain>",
        "<devices><disk type='file'><source file='/a'/><target dev='vda'/></disk><memballoon model='none'/></devices></domain>",
    );
    let hooks = CountingHooks(std::cell::Cell::new(0));
    let d = DomainDef::parse_str(&xml, ParseFlags::default(), &hooks).expect("parse");
    assert_eq!(hooks.0.get(), 2);
    assert_eq!(
        d.disks().next().and_then(|x| x.serial.as_deref()),
        Some("from-hook")
    );
}

#[test]
fn validate_flag_refuses_unknown_and_unmodeled() {
    let flags = ParseFlags {
        validate: true,
        ..ParseFlags::default()
    };
    let bogus = MINIMAL.replace("</domain>", "<bogus/></domain>");
    assert!(DomainDef::parse_str(&bogus, flags, &TestHooks).is_err());
    assert!(DomainDef::parse_str(&bogus, ParseFlags::default(), &TestHooks).is_ok());
    let dev = MINIMAL.replace("</domain>", "<devices><bogus/></devices></domain>");
    let e = DomainDef::parse_str(&dev, flags, &TestHooks).expect_err("unknown");
    assert_eq!(e.path, "devices/bogus[1]");
    assert!(DomainDef::parse_str(&dev, ParseFlags::default(), &TestHooks).is_ok());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bad in [
        "",
        "<domain/>",
        "<network/>",
        "<domain type='kvm'><name>x</name></domain>",
        "<domain type='bogus'><name>x</name></domain>",
        "<domain type='kvm'><name>x</name><memory>-1</memory><os><type>hvm</type></os></domain>",
        "<domain type='kvm'><name>x</name><memory>1</memory><vcpu>99999999999</vcpu><os><type>hvm</type></os></domain>",
    ] {
        assert!(
            DomainDef::parse_str(bad, ParseFlags::default(), &GenericHooks).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn generated_uuid_and_mac_use_the_hooks_random_source() {
    let xml = "<domain type='kvm'><name>x</name><memory>1</memory><os><type>hvm</type></os><devices><interface type='user'/></devices></domain>";
    let d = DomainDef::parse_str(xml, ParseFlags::default(), &TestHooks).expect("parse");
    assert_eq!(d.uuid.to_string(), "00010203-0405-4607-8809-0a0b0c0d0e0f");
    let out = d.to_xml(FormatFlags::default());
    assert!(out.contains("<mac address='52:54:00:00:00:00'/>"), "{out}");
}

#[test]
fn driver_namespaces_are_kept_for_the_driver() {
    let xml = MINIMAL.replace(
        "</domain>",
        "<commandline xmlns='http://libvirt.org/schemas/domain/qemu/1.0'><arg value='-x'/></commandline></domain>",
    );
    let mut d = DomainDef::parse_str(&xml, ParseFlags::default(), &TestHooks).expect("parse");
    assert!(!d.to_xml(FormatFlags::default()).contains("commandline"));
    if let Some(ns) = &mut d.namespace {
        ns.keep = true;
    }
    let out = d.to_xml(FormatFlags::default());
    assert!(out.starts_with(
        "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
    ));
    assert!(
        out.contains("  <qemu:commandline>\n    <qemu:arg value='-x'/>\n  </qemu:commandline>\n")
    );
}

#[test]
fn console_aliases_the_first_serial_port() {
    let xml = MINIMAL.replace(
        "</domain>",
        "<devices><console type='pty'/></devices></domain>",
    );
    let d = DomainDef::parse_str(&xml, ParseFlags::default(), &TestHooks).expect("parse");
    let out = d.to_xml(FormatFlags::default());
    assert!(
        out.contains("    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n"),
        "{out}"
    );
}

#[test]
fn disks_and_controllers_are_ordered_as_libvirt_inserts_them() {
    let xml = MINIMAL.replace(
        "</domain>",
        "<devices>\
         <disk type='file' device='disk'><source file='/b'/><target dev='hdb'/></disk>\
         <disk type='file' device='disk'><source file='/a'/><target dev='hda'/></disk>\
         <controller type='usb' index='1'/><controller type='usb' index='0'/>\
         </devices></domain>",
    );
    let d = DomainDef::parse_str(&xml, ParseFlags::default(), &TestHooks).expect("parse");
    let disks: Vec<&str> = d.disks().map(|x| x.target.dev.as_str()).collect();
    assert_eq!(disks, ["hda", "hdb"]);
    let ctrls: Vec<String> = d
        .controllers()
        .map(|c| format!("{}{}", c.kind, c.index))
        .collect();
    // The IDE controller is implied by the disks' drive addresses.
    assert_eq!(ctrls, ["usb0", "usb1", "ide0"]);
}

#[test]
fn inactive_format_keeps_only_user_aliases() {
    let xml = MINIMAL.replace(
        "</domain>",
        "<devices>\
         <disk type='file' device='disk'><source file='/a'/><target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>\
         <disk type='file' device='disk'><source file='/b'/><target dev='vdb' bus='virtio'/><alias name='ua-data'/></disk>\
         </devices></domain>",
    );
    let d = DomainDef::parse_str(&xml, ParseFlags::default(), &TestHooks).expect("parse");
    let live = d.to_xml(FormatFlags::default());
    assert!(live.contains("<alias name='virtio-disk0'/>"), "{live}");
    assert!(live.contains("<alias name='ua-data'/>"), "{live}");
    let inactive = d.to_xml(FormatFlags {
        inactive: true,
        ..FormatFlags::default()
    });
    assert!(!inactive.contains("virtio-disk0"), "{inactive}");
    assert!(inactive.contains("<alias name='ua-data'/>"), "{inactive}");
}

#[test]
fn console_without_target_type_is_a_serial_console() {
    let xml = "<domain type='lxc'><name>c</name><memory>1024</memory>\
               <os><type>exe</type><init>/sh</init></os>\
               <devices><console type='pty'/></devices></domain>";
    let d = DomainDef::parse_str(xml, ParseFlags::default(), &TestHooks).expect("parse");
    let out = d.to_xml(FormatFlags::default());
    assert!(
        out.contains(
            "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n"
        ),
        "{out}"
    );
}
