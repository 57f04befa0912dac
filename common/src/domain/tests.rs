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

#[test]
fn validate_flag_checks_every_level_of_the_devices() {
    let flags = ParseFlags {
        validate: true,
        ..ParseFlags::default()
    };
    let cases = [
        (
            "<disk type='file' device='disk'><driver name='qemu' bogus='1'/>\
             <source file='/a'/><target dev='vda' bus='virtio'/></disk>",
            "devices/disk[1]/driver/@bogus",
        ),
        (
            "<disk type='network'><source protocol='nbd' name='x'>\
             <host name='h' port='1' bogus='1'/></source><target dev='vda'/></disk>",
            "devices/disk[1]/source/host/@bogus",
        ),
        (
            "<disk type='file'><source file='/a'/><target dev='vda'/>\
             <backingStore type='file'><format type='raw'/><source file='/b'><bogus/></source>\
             </backingStore></disk>",
            "devices/disk[1]/backingStore/source/bogus[1]",
        ),
        (
            "<disk type='file'><source file='/a'/><target dev='sda' bus='scsi'/>\
             <address type='drive' controller='0' bus='0' unit='0' slot='3'/></disk>",
            "devices/disk[1]/address/@slot",
        ),
        (
            "<interface type='network'><source network='default'/>\
             <bandwidth><inbound average='1' bogus='2'/></bandwidth></interface>",
            "devices/interface[1]/bandwidth/inbound/@bogus",
        ),
        (
            "<controller type='pci' index='1' model='pci-bridge'><target chassisNr='1'>\
             <bogus/></target></controller>",
            "devices/controller[1]/target/bogus[1]",
        ),
        (
            "<graphics type='sdl' port='5900'/>",
            "devices/graphics[1]/@port",
        ),
        (
            "<video><model type='vga'><acceleration bogus='yes'/></model></video>",
            "devices/video[1]/model/acceleration/@bogus",
        ),
        (
            "<input type='tablet' bus='usb'><source bogus='x'/></input>",
            "devices/input[1]/source/@bogus",
        ),
        (
            "<serial type='tcp'><source mode='bind' host='h' service='1'>\
             <reconnect enabled='no' bogus='1'/></source></serial>",
            "devices/serial[1]/source/reconnect/@bogus",
        ),
        (
            "<memory model='dimm'><target><size unit='KiB'>1024</size><bogus/></target></memory>",
            "devices/memory[1]/target/bogus[1]",
        ),
    ];
    for (dev, path) in cases {
        let xml = MINIMAL.replace("</domain>", &format!("<devices>{dev}</devices></domain>"));
        let e = DomainDef::parse_str(&xml, flags, &TestHooks).expect_err(path);
        assert_eq!(e.kind, crate::xml::XmlErrorKind::Unknown, "{dev}: {e}");
        assert_eq!(e.path, path, "{dev}");
        // Without the flag the extra markup is ignored.
        DomainDef::parse_str(&xml, ParseFlags::default(), &TestHooks).expect(path);
    }
}

#[test]
fn validate_flag_checks_every_level_of_the_sections() {
    let flags = ParseFlags {
        validate: true,
        ..ParseFlags::default()
    };
    let base = |os: &str, rest: &str| {
        format!(
            "<domain type='kvm'><name>a</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>\
             <memory>1024</memory><vcpu>2</vcpu><os><type>hvm</type>{os}</os>{rest}</domain>"
        )
    };
    let cases = [
        (
            base("<loader bogus='1'>/l</loader>", ""),
            "os/loader/@bogus",
        ),
        (base("<boot dev='hd'><x/></boot>", ""), "os/boot/x[1]"),
        (
            base(
                "",
                "<features><hyperv mode='custom'><spinlocks state='on' retries='4096' bogus='1'/>\
                 </hyperv></features>",
            ),
            "features/hyperv/spinlocks/@bogus",
        ),
        (
            base("", "<features><acpi bogus='1'/></features>"),
            "features/acpi/@bogus",
        ),
        (
            base(
                "",
                "<cpu><numa><cell id='0' cpus='0-1' memory='1024'><distances>\
                 <sibling id='0' value='10' bogus='1'/></distances></cell></numa></cpu>",
            ),
            "cpu/numa/cell/distances/sibling/@bogus",
        ),
        (
            base(
                "",
                "<clock offset='utc'><timer name='rtc'><catchup bogus='1'/></timer></clock>",
            ),
            "clock/timer/catchup/@bogus",
        ),
        (
            base(
                "",
                "<memoryBacking><hugepages><page size='2048' x='1'/></hugepages></memoryBacking>",
            ),
            "memoryBacking/hugepages/page/@x",
        ),
        (
            base("", "<on_crash x='1'>destroy</on_crash>"),
            "on_crash/@x",
        ),
    ];
    for (xml, path) in &cases {
        let e = DomainDef::parse_str(xml, flags, &TestHooks).expect_err(path);
        assert_eq!(e.kind, crate::xml::XmlErrorKind::Unknown, "{xml}: {e}");
        assert_eq!(e.path, *path, "{xml}");
        DomainDef::parse_str(xml, ParseFlags::default(), &TestHooks).expect(path);
    }
    // Metadata and driver namespaces are free-form.
    let free = base(
        "",
        "<metadata><app:x xmlns:app='http://example.org/' any='1'><y/></app:x></metadata>\
         <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
         <qemu:arg value='-x'/></qemu:commandline>",
    );
    DomainDef::parse_str(&free, flags, &TestHooks).expect("free-form");
}

#[test]
fn a_serial_console_shares_the_serial_alias() {
    let xml = "<domain type='qemu' id='1'><name>a</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>\
<memory>1024</memory><os><type>hvm</type></os><devices>\
<serial type='pty'><target port='0'/><alias name='serial0'/></serial>\
<console type='pty'><target type='serial' port='0'/><alias name='serial0'/></console>\
</devices></domain>";
    let flags = crate::xml::ParseFlags::default();
    DomainDef::parse_str(xml, flags, &GenericHooks).expect("the console repeats serial0");
    let two = xml.replace(
        "<console type='pty'><target type='serial' port='0'/><alias name='serial0'/></console>",
        "<serial type='pty'><target port='1'/><alias name='serial0'/></serial>",
    );
    let e = DomainDef::parse_str(&two, flags, &GenericHooks).expect_err("two serials");
    assert!(
        e.to_string().contains("non unique alias detected: serial0"),
        "{e}"
    );
}
