//! Tests of the device commands: flag mapping, the XML virsh builds or
//! takes from the domain, and the exact lines against a fake
//! `DomainService` that records the requests it gets.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::error::{ErrorCode, ErrorDomain, VirtError};
use proto::domain::v1::domain_service_server::{DomainService, DomainServiceServer};
use tonic::codegen::tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::*;
use crate::cli::{command_help, group_help, parse_command};
use crate::ctl::Settings;

fn parse(words: &[&str]) -> Result<Invocation, String> {
    let words: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
    parse_command(&crate::commands::TABLE, &words).map_err(|e| e.to_string())
}

fn inv(words: &[&str]) -> Invocation {
    match parse(words) {
        Ok(i) => i,
        Err(e) => panic!("{words:?}: {e}"),
    }
}

fn flags(live: bool, config: bool, force: bool) -> pb::DeviceModifyFlags {
    pb::DeviceModifyFlags {
        live,
        config,
        force,
    }
}

#[test]
fn affect_options_map_like_virsh() {
    let f = |words: &[&str], active: bool| {
        Affect::of(&inv(words), true)
            .map(|a| a.flags(active))
            .map_err(|e| e.to_string())
    };
    let base = ["attach-device", "vm", "f.xml"];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().chain(extra.iter()).copied().collect()
    };
    // Nothing, or --current: neither flag (VIR_DOMAIN_AFFECT_CURRENT).
    assert_eq!(f(&with(&[]), true), Ok(flags(false, false, false)));
    assert_eq!(
        f(&with(&["--current"]), true),
        Ok(flags(false, false, false))
    );
    assert_eq!(f(&with(&["--config"]), true), Ok(flags(false, true, false)));
    assert_eq!(f(&with(&["--live"]), false), Ok(flags(true, false, false)));
    assert_eq!(
        f(&with(&["--live", "--config"]), true),
        Ok(flags(true, true, false))
    );
    // --persistent: config, plus live when the domain runs.
    assert_eq!(
        f(&with(&["--persistent"]), true),
        Ok(flags(true, true, false))
    );
    assert_eq!(
        f(&with(&["--persistent"]), false),
        Ok(flags(false, true, false))
    );
    assert_eq!(
        f(&with(&["--persistent", "--live"]), false),
        Ok(flags(true, true, false))
    );
    for (extra, msg) in [
        (
            ["--persistent", "--current"],
            "Options --persistent and --current are mutually exclusive",
        ),
        (
            ["--live", "--current"],
            "Options --current and --live are mutually exclusive",
        ),
        (
            ["--current", "--config"],
            "Options --current and --config are mutually exclusive",
        ),
    ] {
        assert_eq!(f(&with(&extra), true), Err(msg.to_owned()));
    }
    // detach-device-alias has no --persistent.
    assert_eq!(
        parse(&["detach-device-alias", "vm", "ua-x", "--persistent"])
            .err()
            .as_deref(),
        Some("command 'detach-device-alias' doesn't support option --persistent")
    );
}

#[test]
fn escape_is_libvirts() {
    assert_eq!(escape("/a b/c.img"), "/a b/c.img");
    assert_eq!(escape("a'b\"<&>"), "a&apos;b&quot;&lt;&amp;&gt;");
    assert_eq!(escape("x\x01y\t'"), "xy\t&apos;");
}

#[test]
fn strtoul_is_cs() {
    assert_eq!(strtoul("0x1f.2", 16), Some((31, ".2")));
    assert_eq!(strtoul("1f", 16), Some((31, "")));
    assert_eq!(strtoul(" +12", 10), Some((12, "")));
    assert_eq!(strtoul("0x", 16), Some((0, "x")));
    assert_eq!(strtoul("010", 0), Some((8, "")));
    assert_eq!(strtoul("0x10", 0), Some((16, "")));
    assert_eq!(strtoul("-1", 10), None);
    assert_eq!(strtoul("", 10), None);
    assert_eq!(strtoul("x", 16), None);
    assert_eq!(strtoul("99999999999999999999", 10), None);
}

#[test]
fn addresses_parse_as_virsh() {
    assert_eq!(
        parse_address("pci:0000.00.0a.0", true).map(|a| a.xml()),
        Some(
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x0a' function='0x0' multifunction='on'/>\n"
                .to_owned()
        )
    );
    // Any one character separates the numbers.
    assert_eq!(
        parse_address("pci:0:1:1f.7", false).map(|a| a.xml()),
        Some(
            "<address type='pci' domain='0x0000' bus='0x01' slot='0x1f' function='0x7'/>\n"
                .to_owned()
        )
    );
    assert_eq!(
        parse_address("scsi:0.0.3", false).map(|a| a.xml()),
        Some("<address type='drive' controller='0' bus='0' unit='3'/>\n".to_owned())
    );
    assert_eq!(
        parse_address("ccw:0xfe.0.0a", false).map(|a| a.xml()),
        Some("<address type='ccw' cssid='0xfe' ssid='0x0' devno='0x000a'/>\n".to_owned())
    );
    assert_eq!(
        parse_address("usb:1.2", false).map(|a| a.xml()),
        Some("<address type='usb' bus='1' port='2'/>\n".to_owned())
    );
    for bad in [
        "pci",
        "pci:0000.00.0a",
        "isa:1.2",
        "ide:a.0.0",
        "usb:-1.2",
        "pci:100000000.0.0.0",
    ] {
        assert_eq!(parse_address(bad, false), None, "{bad}");
    }
}

#[test]
fn rates_parse_as_virsh() {
    assert_eq!(
        parse_rate("100,200,300,400").ok(),
        Some(Rate {
            average: 100,
            peak: 200,
            burst: 300,
            floor: 400
        })
    );
    assert_eq!(
        parse_rate("100,,300").ok(),
        Some(Rate {
            average: 100,
            burst: 300,
            ..Rate::default()
        })
    );
    assert_eq!(
        parse_rate("1,2,3,4,5").map_err(|e| e.to_string()),
        Err("Rate string '1,2,3,4,5' has too many fields".to_owned())
    );
    assert_eq!(
        parse_rate("1,x").map_err(|e| e.to_string()),
        Err("field 'peak' is malformed".to_owned())
    );
}

#[test]
fn mac_compare_ignores_case_and_leading_zeros() {
    assert!(mac_compare("52:54:00:AA:0b:01", "52:54:0:aa:b:1").is_eq());
    assert!(mac_compare("52:54:00:aa:bb:01", "52:54:00:aa:bb:02").is_lt());
    assert!(!mac_compare("52:54:00:aa:bb:01", "52:54:00:aa:bb").is_eq());
}

#[test]
fn help_of_the_device_commands() {
    let def = crate::commands::TABLE
        .lookup("attach-device")
        .expect("defined");
    assert_eq!(
        command_help(def),
        "  NAME\n\
         \x20   attach-device - attach device from an XML file\n\
         \n  SYNOPSIS\n\
         \x20   attach-device [--domain] <string> [--file] <string> [--persistent] [--config] [--live] [--current]\n\
         \n  DESCRIPTION\n\
         \x20   Attach device from an XML <file>.\n\
         \n  OPTIONS\n\
         \x20   [--domain] <string>  domain name, id or uuid\n\
         \x20   [--file] <string>  XML file\n\
         \x20   --persistent     make live change persistent\n\
         \x20   --config         affect next boot\n\
         \x20   --live           affect running domain\n\
         \x20   --current        affect current domain\n\
         \n"
    );
    let domain = group_help(&crate::commands::TABLE, Group::Domain);
    for line in [
        "    attach-device                  attach device from an XML file\n",
        "    attach-disk                    attach disk device\n",
        "    attach-interface               attach network interface\n",
        "    change-media                   Change media of CD or floppy drive\n",
        "    detach-device                  detach device from an XML file\n",
        "    detach-device-alias            detach device from an alias\n",
        "    detach-disk                    detach disk device\n",
        "    detach-interface               detach network interface\n",
        "    update-device                  update device from an XML file\n",
    ] {
        assert!(domain.contains(line), "{line:?} not in\n{domain}");
    }
    let monitor = group_help(&crate::commands::TABLE, Group::Monitor);
    assert!(monitor.contains("    domblklist                     list all domain blocks\n"));
    assert!(
        monitor.contains("    domiflist                      list all domain virtual interfaces\n")
    );
    let i = inv(&["change-media", "vm", "hdc", "/a.iso", "--eject"]);
    assert_eq!(i.string("source"), Some("/a.iso"));
    let i = inv(&["attach-interface", "vm", "network", "default"]);
    assert_eq!(
        (i.string("type"), i.string("source")),
        (Some("network"), Some("default"))
    );
    assert_eq!(
        parse(&["attach-disk", "vm", "/a.img"]).err().as_deref(),
        Some("command 'attach-disk' requires <target> option")
    );
}

// ---- XML built from options ----

fn disk_xml(words: &[&str]) -> Result<String, String> {
    let mut all = vec!["attach-disk", "vm"];
    all.extend_from_slice(words);
    attach_disk_xml(&inv(&all)).map_err(|e| e.to_string())
}

#[test]
fn attach_disk_builds_virshs_xml() {
    assert_eq!(
        disk_xml(&["/var/lib/virt/images/d.qcow2", "vdb"]),
        Ok("<disk type='file'>\n  \
            <source file='/var/lib/virt/images/d.qcow2'/>\n  \
            <target dev='vdb'/>\n\
            </disk>\n"
            .to_owned())
    );
    assert_eq!(
        disk_xml(&[
            "/img/a'b.raw",
            "vdc",
            "--targetbus",
            "virtio",
            "--driver",
            "qemu",
            "--subdriver",
            "raw",
            "--cache",
            "none",
            "--io",
            "native",
            "--iothread",
            "1",
            "--type",
            "disk",
            "--mode",
            "shareable",
            "--serial",
            "S1",
            "--alias",
            "ua-d",
            "--wwn",
            "0x5000c50015ea71ac",
            "--rawio",
            "--address",
            "pci:0000.00.0a.0",
            "--multifunction",
        ]),
        Ok("<disk type='file' device='disk' rawio='yes'>\n  \
            <driver name='qemu' type='raw' iothread='1' cache='none' io='native'/>\n  \
            <source file='/img/a&apos;b.raw'/>\n  \
            <target dev='vdc' bus='virtio'/>\n  \
            <shareable/>\n  \
            <serial>S1</serial>\n  \
            <alias name='ua-d'/>\n  \
            <wwn>0x5000c50015ea71ac</wwn>\n  \
            <address type='pci' domain='0x0000' bus='0x00' slot='0x0a' function='0x0' multifunction='on'/>\n\
            </disk>\n"
            .to_owned())
    );
    // virsh's --shareable is --mode shareable.
    assert_eq!(
        disk_xml(&["/a.img", "vdb", "--shareable"]),
        Ok("<disk type='file'>\n  <source file='/a.img'/>\n  <target dev='vdb'/>\n  <shareable/>\n</disk>\n"
            .to_owned())
    );
    // An empty CD-ROM drive: the source may be empty.
    assert_eq!(
        disk_xml(&["", "hdc", "--type", "cdrom", "--mode", "readonly"]),
        Ok("<disk type='file' device='cdrom'>\n  \
            <source file=''/>\n  \
            <target dev='hdc'/>\n  \
            <readonly/>\n\
            </disk>\n"
            .to_owned())
    );
    assert_eq!(
        disk_xml(&[
            "pool/vol",
            "sdb",
            "--source-protocol",
            "rbd",
            "--source-host-name",
            "mon1:6789",
            "--source-host-transport",
            "tcp",
            "--address",
            "scsi:0.0.1",
        ]),
        Ok("<disk type='network'>\n  \
            <source protocol='rbd' name='pool/vol'>\n    \
            <host transport='tcp' name='mon1' port='6789'/>\n  \
            </source>\n  \
            <target dev='sdb'/>\n  \
            <address type='drive' controller='0' bus='0' unit='1'/>\n\
            </disk>\n"
            .to_owned())
    );
    assert_eq!(
        disk_xml(&["/dev/sdz", "vdd", "--sourcetype", "block"]),
        Ok(
            "<disk type='block'>\n  <source dev='/dev/sdz'/>\n  <target dev='vdd'/>\n</disk>\n"
                .to_owned()
        )
    );
    assert_eq!(
        disk_xml(&["nbd-export", "vde", "--sourcetype", "network", "--source-protocol", "nbd"]),
        Ok("<disk type='network'>\n  <source protocol='nbd' name='nbd-export'/>\n  <target dev='vde'/>\n</disk>\n"
            .to_owned())
    );
}

#[test]
fn attach_disk_refuses_what_virsh_refuses() {
    for (words, msg) in [
        (
            &["/a", "vdb", "--sourcetype", "dir"][..],
            "Unknown source type: 'dir'",
        ),
        (
            &["/a", "vdb", "--sourcetype", "network"],
            "--source-protocol option requires --sourcetype network",
        ),
        (
            &[
                "/a",
                "vdb",
                "--sourcetype",
                "file",
                "--source-protocol",
                "nbd",
            ],
            "--source-protocol option requires --sourcetype network",
        ),
        (
            &["/a", "vdb", "--source-host-name", "h"],
            "Option --source-protocol is required by option --source-host-name",
        ),
        (
            &[
                "/a",
                "vdb",
                "--source-protocol",
                "nbd",
                "--source-host-socket",
                "/s",
            ],
            "Option --source-host-transport is required by option --source-host-socket",
        ),
        (
            &[
                "/a",
                "vdb",
                "--source-protocol",
                "nbd",
                "--source-host-transport",
                "unix",
                "--source-host-socket",
                "/s",
                "--source-host-name",
                "h",
            ],
            "Options --source-host-name and --source-host-socket are mutually exclusive",
        ),
        (
            &["/a", "vdb", "--mode", "rw"],
            "No support for rw in command 'attach-disk'",
        ),
        (
            &["/a", "vdb", "--wwn", "123"],
            "XML error: Malformed wwn: 123",
        ),
        (&["/a", "vdb", "--address", "pci:1"], "Invalid address."),
        (
            &["/a", "vdb", "--address", "scsi:0.0.0"],
            "expecting a pci:0000.00.00.00 or ccw:00.0.0000 address.",
        ),
        (
            &["/a", "sdb", "--address", "ide:0.0.0"],
            "expecting a scsi:00.00.00 or usb:00.00 or sata:00.00.00 address.",
        ),
        (
            &["/a", "hdb", "--address", "sata:0.0.0"],
            "expecting an ide:00.00.00 address.",
        ),
        (
            &["/a", "vdb", "--cache", ""],
            "Failed to get option 'cache': Option argument is empty",
        ),
    ] {
        assert_eq!(disk_xml(words), Err(msg.to_owned()), "{words:?}");
    }
}

fn iface_xml(words: &[&str]) -> Result<String, String> {
    let mut all = vec!["attach-interface", "vm"];
    all.extend_from_slice(words);
    attach_interface_xml(&inv(&all)).map_err(|e| e.to_string())
}

#[test]
fn attach_interface_builds_virshs_xml() {
    assert_eq!(
        iface_xml(&["network", "default"]),
        Ok("<interface type='network'>\n  <source network='default'/>\n</interface>\n".to_owned())
    );
    assert_eq!(
        iface_xml(&[
            "bridge",
            "br0",
            "--target",
            "vnet7",
            "--mac",
            "52:54:00:12:34:56",
            "--script",
            "/etc/qemu-ifup",
            "--model",
            "virtio",
            "--alias",
            "ua-net",
            "--inbound",
            "100,200,,50",
            "--outbound",
            "300,,400",
            "--managed",
        ]),
        Ok("<interface type='bridge' managed='yes'>\n  \
            <source bridge='br0'/>\n  \
            <target dev='vnet7'/>\n  \
            <mac address='52:54:00:12:34:56'/>\n  \
            <script path='/etc/qemu-ifup'/>\n  \
            <model type='virtio'/>\n  \
            <alias name='ua-net'/>\n  \
            <bandwidth>\n    \
            <inbound average='100' peak='200' floor='50'/>\n    \
            <outbound average='300' burst='400'/>\n  \
            </bandwidth>\n\
            </interface>\n"
            .to_owned())
    );
    assert_eq!(
        iface_xml(&["direct", "eth0"]),
        Ok("<interface type='direct'>\n  <source dev='eth0'/>\n</interface>\n".to_owned())
    );
    assert_eq!(
        iface_xml(&["hostdev", "0000:03:00.1"]),
        Ok("<interface type='hostdev'>\n  <source>\n    \
            <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x1'/>\n  \
            </source>\n</interface>\n"
            .to_owned())
    );
    assert_eq!(
        iface_xml(&["vhostuser", "/run/vu.sock", "--source-mode", "client"]),
        Ok("<interface type='vhostuser'>\n  \
            <source type='unix' path='/run/vu.sock' mode='client'/>\n\
            </interface>\n"
            .to_owned())
    );
    for (words, msg) in [
        (
            &["wifi", "x"][..],
            "No support for wifi in command 'attach-interface'",
        ),
        (
            &["user", "x"],
            "No support for user in command 'attach-interface'",
        ),
        (
            &["network", "default", "--source-mode", "both"],
            "Invalid source mode: both",
        ),
        (
            &["network", "default", "--inbound", "0,1"],
            "either inbound average or floor is mandatory",
        ),
        (
            &["network", "default", "--outbound", ",1"],
            "outbound average is mandatory",
        ),
        (
            &["network", "default", "--outbound", "1,,,2"],
            "outbound floor is unsupported yet",
        ),
        (
            &["network", "default", "--inbound", "a"],
            "field 'average' is malformed",
        ),
        (
            &["hostdev", "03:00"],
            "cannot parse pci address '03:00' for network interface",
        ),
        (&["vhostuser", "/s"], "source-mode is mandatory"),
    ] {
        assert_eq!(iface_xml(words), Err(msg.to_owned()), "{words:?}");
    }
}

// ---- Against a fake daemon ----

const U_VM1: &str = "11111111-1111-1111-1111-111111111111";
const U_VM2: &str = "22222222-2222-2222-2222-222222222222";
const U_BAD: &str = "33333333-3333-3333-3333-333333333333";

fn domains() -> Vec<pb::Domain> {
    [("vm1", U_VM1, -1), ("vm2", U_VM2, 2), ("bad", U_BAD, 3)]
        .into_iter()
        .map(|(name, uuid, id)| pb::Domain {
            name: name.into(),
            uuid: uuid.into(),
            id,
        })
        .collect()
}

/// vm2's live XML, as virtqemud formats it.
const VM2_LIVE: &str = "<domain type='kvm' id='2'>
  <name>vm2</name>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/virt/images/vm2.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='raw'/>
        <source file='/var/lib/virt/images/base.img'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/isos/a.iso' startupPolicy='optional'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
      <alias name='sata0-0-0'/>
    </disk>
    <disk type='file' device='floppy'>
      <target dev='fda' bus='fdc'/>
      <alias name='fdc0-0-0'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='default' volume='data.img'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:01'/>
      <source network='default' portid='9a1c1c5e-3f5e-4f55-9a0e-0b0a1e2f3d4c' bridge='virbr0'/>
      <target dev='vnet0'/>
      <model type='virtio'/>
      <alias name='net0'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:02'/>
      <source bridge='br0'/>
      <target dev='vnet1'/>
      <model type='e1000'/>
      <alias name='net1'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:03'/>
      <source bridge='br1'/>
      <alias name='net2'/>
    </interface>
  </devices>
</domain>
";

/// vm2's inactive XML (and vm1's, with another name).
const VM_INACTIVE: &str = "<domain type='kvm'>
  <name>vm2</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/virt/images/vm2.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/isos/old.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:01'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
";

/// One request the fake got.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Call {
    method: &'static str,
    /// The device XML (or the alias).
    xml: String,
    /// live, config, force (GetXml: inactive in `config`).
    flags: (bool, bool, bool),
}

/// A `DomainService` with `vm1` (inactive), `vm2` (running, id 2) and
/// `bad` (running, every device call fails), recording the device
/// requests and the GetXml calls.
#[derive(Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    unimplemented: bool,
}

impl Fake {
    fn find(r: Option<&pb::DomainRef>) -> Result<pb::Domain, Status> {
        use pb::domain_ref::By;
        let by = r.and_then(|r| r.by.clone());
        let found = domains().into_iter().find(|d| match &by {
            Some(By::Name(n)) => *n == d.name,
            Some(By::Uuid(u)) => *u == d.uuid,
            Some(By::Id(i)) => *i == d.id,
            None => false,
        });
        found.ok_or_else(|| {
            let what = match by {
                Some(By::Name(n)) => format!("name '{n}'"),
                Some(By::Uuid(u)) => format!("uuid '{u}'"),
                Some(By::Id(i)) => format!("id {i}"),
                None => String::new(),
            };
            VirtError::new(
                ErrorCode::NoDomain,
                ErrorDomain::Qemu,
                format!("Domain not found: no domain with matching {what}"),
            )
            .to_status()
        })
    }

    fn device<T: Default>(
        &self,
        method: &'static str,
        r: Option<&pb::DomainRef>,
        xml: String,
        f: Option<pb::DeviceModifyFlags>,
    ) -> Result<Response<T>, Status> {
        let f = f.unwrap_or_default();
        self.calls.lock().expect("lock").push(Call {
            method,
            xml,
            flags: (f.live, f.config, f.force),
        });
        if self.unimplemented {
            return Err(proto::unimplemented_status(&format!(
                "/virt.domain.v1.DomainService/{method}"
            )));
        }
        let d = Fake::find(r)?;
        if d.name == "bad" {
            return Err(VirtError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                format!("operation failed: {method} refused"),
            )
            .to_status());
        }
        Ok(Response::new(T::default()))
    }
}

#[tonic::async_trait]
impl DomainService for Fake {
    async fn lookup_domain(
        &self,
        r: Request<pb::LookupDomainRequest>,
    ) -> Result<Response<pb::LookupDomainResponse>, Status> {
        let d = Fake::find(r.get_ref().domain.as_ref())?;
        Ok(Response::new(pb::LookupDomainResponse { domain: Some(d) }))
    }

    async fn get_xml(
        &self,
        r: Request<pb::GetXmlRequest>,
    ) -> Result<Response<pb::GetXmlResponse>, Status> {
        let r = r.into_inner();
        let d = Fake::find(r.domain.as_ref())?;
        self.calls.lock().expect("lock").push(Call {
            method: "GetXml",
            xml: String::new(),
            flags: (false, r.inactive, false),
        });
        let xml = match (d.name.as_str(), r.inactive) {
            ("vm2", false) => VM2_LIVE.to_owned(),
            ("vm1" | "vm2", _) => {
                VM_INACTIVE.replace("<name>vm2</name>", &format!("<name>{}</name>", d.name))
            }
            _ => {
                return Err(VirtError::new(
                    ErrorCode::OperationFailed,
                    ErrorDomain::Qemu,
                    "operation failed: no XML",
                )
                .to_status());
            }
        };
        Ok(Response::new(pb::GetXmlResponse { xml }))
    }

    async fn attach_device(
        &self,
        r: Request<pb::AttachDeviceRequest>,
    ) -> Result<Response<pb::AttachDeviceResponse>, Status> {
        let r = r.into_inner();
        self.device("AttachDevice", r.domain.as_ref(), r.xml, r.flags)
    }

    async fn detach_device(
        &self,
        r: Request<pb::DetachDeviceRequest>,
    ) -> Result<Response<pb::DetachDeviceResponse>, Status> {
        let r = r.into_inner();
        self.device("DetachDevice", r.domain.as_ref(), r.xml, r.flags)
    }

    async fn update_device(
        &self,
        r: Request<pb::UpdateDeviceRequest>,
    ) -> Result<Response<pb::UpdateDeviceResponse>, Status> {
        let r = r.into_inner();
        self.device("UpdateDevice", r.domain.as_ref(), r.xml, r.flags)
    }

    async fn detach_device_alias(
        &self,
        r: Request<pb::DetachDeviceAliasRequest>,
    ) -> Result<Response<pb::DetachDeviceAliasResponse>, Status> {
        let r = r.into_inner();
        self.device("DetachDeviceAlias", r.domain.as_ref(), r.alias, r.flags)
    }
}

/// Output captured from a `Ctl`.
#[derive(Clone, Default)]
struct Buf(Rc<RefCell<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn take(&self) -> String {
        let text = String::from_utf8_lossy(&self.0.borrow()).into_owned();
        self.0.borrow_mut().clear();
        text
    }
}

/// A fake daemon on a fresh socket, and a `Ctl` talking to it.
struct Harness {
    ctl: Ctl,
    out: Buf,
    err: Buf,
    calls: Arc<Mutex<Vec<Call>>>,
    dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Harness {
    fn new() -> Harness {
        Harness::with(false)
    }

    fn with(unimplemented: bool) -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "virtsh-dev-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let fake = Fake {
            calls: Arc::default(),
            unimplemented,
        };
        let calls = fake.calls.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(DomainServiceServer::new(fake))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        let (out, err) = (Buf::default(), Buf::default());
        let uri = format!("qemu+unix:///system?socket={}", sock.display());
        let ctl = Ctl::new(&crate::commands::TABLE, Settings::default(), Some(uri))
            .with_output(Box::new(out.clone()), Box::new(err.clone()));
        Harness {
            ctl,
            out,
            err,
            calls,
            dir,
        }
    }

    /// Writes `text` to a file in the harness directory; returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }

    /// Runs one command line: (success, stdout, stderr, requests seen).
    async fn run(&mut self, line: &str) -> (bool, String, String, Vec<Call>) {
        let cmds = match self.ctl.parse_line(line) {
            Ok(c) => c,
            Err(e) => panic!("{line}: {e}"),
        };
        let ok = self.ctl.run(&cmds).await;
        let calls = std::mem::take(&mut *self.calls.lock().expect("lock"));
        (ok, self.out.take(), self.err.take(), calls)
    }

    /// Runs `line`, expecting success and exactly `stdout` (before the
    /// blank line virsh prints after each command).
    async fn ok(&mut self, line: &str, stdout: &str) -> Vec<Call> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(ok, "{line}: {err}");
        assert_eq!(out, format!("{stdout}\n"), "{line}");
        assert_eq!(err, "", "{line}");
        calls
    }

    /// Runs `line`, expecting failure with exactly `stderr`.
    async fn fails(&mut self, line: &str, stderr: &str) -> Vec<Call> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(!ok, "{line}: {out}");
        assert_eq!(err, stderr, "{line}");
        assert_eq!(out, "\n", "{line}");
        calls
    }
}

fn call(method: &'static str, xml: &str, live: bool, config: bool, force: bool) -> Call {
    Call {
        method,
        xml: xml.to_owned(),
        flags: (live, config, force),
    }
}

fn get_xml(inactive: bool) -> Call {
    call("GetXml", "", false, inactive, false)
}

const NIC: &str = "<interface type='network'>\n  <source network='default'/>\n</interface>\n";

#[tokio::test]
async fn attach_detach_update_device_lines() {
    let mut h = Harness::new();
    let f = h.file("nic.xml", NIC);
    let calls = h
        .ok(
            &format!("attach-device vm2 {f}"),
            "Device attached successfully\n",
        )
        .await;
    assert_eq!(calls, [call("AttachDevice", NIC, false, false, false)]);
    let calls = h
        .ok(
            &format!("attach-device vm2 --file {f} --persistent"),
            "Device attached successfully\n",
        )
        .await;
    assert_eq!(calls, [call("AttachDevice", NIC, true, true, false)]);
    // An inactive domain: --persistent is config only.
    let calls = h
        .ok(
            &format!("attach-device vm1 {f} --persistent"),
            "Device attached successfully\n",
        )
        .await;
    assert_eq!(calls, [call("AttachDevice", NIC, false, true, false)]);
    let calls = h
        .ok(
            &format!("detach-device 2 {f} --live --config"),
            "Device detached successfully\n",
        )
        .await;
    assert_eq!(calls, [call("DetachDevice", NIC, true, true, false)]);
    let calls = h
        .ok(
            &format!("update-device {U_VM2} {f} --current --force"),
            "Device updated successfully\n",
        )
        .await;
    assert_eq!(calls, [call("UpdateDevice", NIC, false, false, true)]);
    let calls = h
        .ok(
            "detach-device-alias vm2 ua-nic --live",
            "Device detach request sent successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [call("DetachDeviceAlias", "ua-nic", true, false, false)]
    );

    for (cmd, first) in [
        ("attach-device", "Failed to attach device from"),
        ("detach-device", "Failed to detach device from"),
        ("update-device", "Failed to update device from"),
    ] {
        let method = match cmd {
            "attach-device" => "AttachDevice",
            "detach-device" => "DetachDevice",
            _ => "UpdateDevice",
        };
        h.fails(
            &format!("{cmd} bad {f}"),
            &format!("error: {first} {f}\nerror: operation failed: {method} refused\n"),
        )
        .await;
    }
    h.fails(
        "detach-device-alias bad net0",
        "error: Failed to detach device with alias net0\n\
         error: operation failed: DetachDeviceAlias refused\n",
    )
    .await;

    // Option errors come before anything is sent.
    let calls = h
        .fails(
            &format!("attach-device vm2 {f} --persistent --current"),
            "error: Options --persistent and --current are mutually exclusive\n",
        )
        .await;
    assert!(calls.is_empty());
    let calls = h
        .fails(
            "detach-device-alias vm2 net0 --current --live",
            "error: Options --current and --live are mutually exclusive\n",
        )
        .await;
    assert!(calls.is_empty());
    h.fails(
        "attach-device vm2 /nonexistent/d.xml",
        "error: Failed to open file '/nonexistent/d.xml': No such file or directory\n",
    )
    .await;
    h.fails(
        &format!("update-device nosuch {f}"),
        "error: failed to get domain 'nosuch'\n\
         error: Domain not found: no domain with matching name 'nosuch'\n",
    )
    .await;
    h.fails(
        "detach-device-alias vm2 ''",
        "error: Failed to get option 'alias': Option argument is empty\n",
    )
    .await;

    // -q silences the success lines.
    h.ctl.settings.quiet = true;
    let (ok, out, err, _) = h.run(&format!("attach-device vm2 {f}")).await;
    assert!(ok, "{err}");
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
}

#[tokio::test]
async fn todays_daemon_answers_unimplemented() {
    let mut h = Harness::with(true);
    let f = h.file("nic.xml", NIC);
    h.fails(
        &format!("attach-device vm2 {f}"),
        &format!(
            "error: Failed to attach device from {f}\n\
             error: this function is not supported by the connection driver: virt.domain.v1.DomainService/AttachDevice\n"
        ),
    )
    .await;
    h.fails(
        "attach-interface vm2 network default",
        "error: Failed to attach interface\n\
         error: this function is not supported by the connection driver: virt.domain.v1.DomainService/AttachDevice\n",
    )
    .await;
}

#[tokio::test]
async fn attach_disk_and_interface_lines() {
    let mut h = Harness::new();
    let img = h.file("d.img", "");
    let want = format!(
        "<disk type='file'>\n  <driver name='qemu' type='raw'/>\n  <source file='{img}'/>\n  <target dev='vdb' bus='virtio'/>\n</disk>\n"
    );
    // --print-xml prints the XML and sends nothing (not even a lookup).
    let calls = h
        .ok(
            &format!(
                "attach-disk nosuch {img} vdb --driver qemu --subdriver raw --targetbus virtio --print-xml"
            ),
            &want,
        )
        .await;
    assert!(calls.is_empty());
    let calls = h
        .ok(
            &format!(
                "attach-disk vm2 {img} vdb --driver qemu --subdriver raw --targetbus virtio --persistent"
            ),
            "Disk attached successfully\n",
        )
        .await;
    assert_eq!(calls, [call("AttachDevice", &want, true, true, false)]);
    h.fails(
        &format!("attach-disk bad {img} vdb"),
        "error: Failed to attach disk\nerror: operation failed: AttachDevice refused\n",
    )
    .await;
    h.fails(
        &format!("attach-disk vm2 {img} vdb --current --config"),
        "error: Options --current and --config are mutually exclusive\n",
    )
    .await;
    h.fails(
        &format!("attach-disk vm2 {img} vdb --mode rw"),
        "error: No support for rw in command 'attach-disk'\n",
    )
    .await;

    let calls = h
        .ok(
            "attach-interface vm1 network default --model virtio --config",
            "Interface attached successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [call(
            "AttachDevice",
            "<interface type='network'>\n  <source network='default'/>\n  <model type='virtio'/>\n</interface>\n",
            false,
            true,
            false
        )]
    );
    h.ok(
        "attach-interface --domain vm2 --type bridge --source br0 --print-xml",
        "<interface type='bridge'>\n  <source bridge='br0'/>\n</interface>\n",
    )
    .await;
    h.fails(
        "attach-interface bad network default",
        "error: Failed to attach interface\nerror: operation failed: AttachDevice refused\n",
    )
    .await;
    h.fails(
        "attach-interface vm2 user x",
        "error: No support for user in command 'attach-interface'\n",
    )
    .await;
}

/// vda of vm2's live XML, as libxml2 dumps it: double quotes, the inner
/// indentation kept, the backing chain taken out (its surrounding text
/// stays).
const VDA_LIVE: &str = "<disk type=\"file\" device=\"disk\">
      <driver name=\"qemu\" type=\"qcow2\"/>
      <source file=\"/var/lib/virt/images/vm2.qcow2\" index=\"2\"/>
      
      <target dev=\"vda\" bus=\"virtio\"/>
      <alias name=\"virtio-disk0\"/>
      <address type=\"pci\" domain=\"0x0000\" bus=\"0x04\" slot=\"0x00\" function=\"0x0\"/>
    </disk>";

const VDA_INACTIVE: &str = "<disk type=\"file\" device=\"disk\">
      <driver name=\"qemu\" type=\"qcow2\"/>
      <source file=\"/var/lib/virt/images/vm2.qcow2\"/>
      <target dev=\"vda\" bus=\"virtio\"/>
      <address type=\"pci\" domain=\"0x0000\" bus=\"0x04\" slot=\"0x00\" function=\"0x0\"/>
    </disk>";

#[tokio::test]
async fn detach_disk_sends_the_element_of_the_domain_xml() {
    let mut h = Harness::new();
    let calls = h.ok("detach-disk vm2 vda --print-xml", VDA_LIVE).await;
    assert_eq!(calls, [get_xml(false)]);
    let calls = h
        .ok("detach-disk vm2 vda", "Disk detached successfully\n")
        .await;
    assert_eq!(
        calls,
        [
            get_xml(false),
            call("DetachDevice", VDA_LIVE, false, false, false)
        ]
    );
    // --config alone reads the inactive XML.
    let calls = h
        .ok(
            "detach-disk vm2 vda --config",
            "Disk detached successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(true),
            call("DetachDevice", VDA_INACTIVE, false, true, false)
        ]
    );
    // --persistent: virsh reads the inactive XML (its flags are config
    // only until it finds the domain running), then sends both flags.
    let calls = h
        .ok(
            "detach-disk vm2 vda --persistent",
            "Disk detached successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(true),
            call("DetachDevice", VDA_INACTIVE, true, true, false)
        ]
    );
    // --live --config: the live XML.
    let calls = h
        .ok(
            "detach-disk vm2 vda --live --config",
            "Disk detached successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(false),
            call("DetachDevice", VDA_LIVE, true, true, false)
        ]
    );
    // By source path too (virsh matches file, dev, dir and name).
    let (ok, out, err, _) = h.run("detach-disk vm2 /isos/a.iso --print-xml").await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("<disk type=\"file\" device=\"cdrom\">"),
        "{out}"
    );
    h.fails(
        "detach-disk vm2 vdz",
        "error: No disk found whose source path or target is vdz\n",
    )
    .await;
    h.fails("detach-disk bad vda", "error: operation failed: no XML\n")
        .await;
    h.fails(
        "detach-disk nosuch vda",
        "error: failed to get domain 'nosuch'\n\
         error: Domain not found: no domain with matching name 'nosuch'\n",
    )
    .await;
}

const NET0_LIVE: &str = "<interface type=\"network\">
      <mac address=\"52:54:00:aa:bb:01\"/>
      <source network=\"default\" portid=\"9a1c1c5e-3f5e-4f55-9a0e-0b0a1e2f3d4c\" bridge=\"virbr0\"/>
      <target dev=\"vnet0\"/>
      <model type=\"virtio\"/>
      <alias name=\"net0\"/>
    </interface>";

const NET0_INACTIVE: &str = "<interface type=\"network\">
      <mac address=\"52:54:00:aa:bb:01\"/>
      <source network=\"default\"/>
      <model type=\"virtio\"/>
    </interface>";

#[tokio::test]
async fn detach_interface_finds_one_interface() {
    let mut h = Harness::new();
    let calls = h
        .ok(
            "detach-interface vm2 network",
            "Interface detached successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(false),
            call("DetachDevice", NET0_LIVE, false, false, false)
        ]
    );
    // The MAC compares as libvirt compares them.
    let (ok, out, err, _) = h
        .run("detach-interface vm2 bridge --mac 52:54:0:AA:BB:2 --print-xml")
        .await;
    assert!(ok, "{err}");
    assert!(out.contains("<source bridge=\"br0\"/>"), "{out}");
    // --persistent on a running domain: the config first, then live.
    let calls = h
        .ok(
            "detach-interface vm2 network --persistent",
            "Interface detached successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(true),
            call("DetachDevice", NET0_INACTIVE, false, true, false),
            get_xml(false),
            call("DetachDevice", NET0_LIVE, true, false, false),
        ]
    );
    let calls = h
        .ok(
            "detach-interface vm1 network --config",
            "Interface detached successfully\n",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(true),
            call("DetachDevice", NET0_INACTIVE, false, true, false)
        ]
    );

    h.fails(
        "detach-interface vm2 bridge",
        "error: Domain has 2 interfaces. Please specify which one to detach using --mac\n\
         error: Failed to detach interface\n",
    )
    .await;
    h.fails(
        "detach-interface vm2 direct",
        "error: No interface found whose type is direct\n\
         error: Failed to detach interface\n",
    )
    .await;
    h.fails(
        "detach-interface vm2 bridge --mac 52:54:00:aa:bb:09",
        "error: No interface with MAC address 52:54:00:aa:bb:09 was found\n\
         error: Failed to detach interface\n",
    )
    .await;
    h.fails(
        "detach-interface bad network",
        "error: Failed to detach interface\nerror: operation failed: no XML\n",
    )
    .await;
    h.fails(
        "detach-interface vm2 network --mac ''",
        "error: Failed to get option 'mac': Option argument is empty\n\
         error: Failed to detach interface\n",
    )
    .await;
    h.fails(
        "detach-interface vm2 network --live --current",
        "error: Options --current and --live are mutually exclusive\n",
    )
    .await;
}

#[test]
fn several_interfaces_with_one_mac_are_refused() {
    let doc = "<domain><devices>\
        <interface type='bridge'><mac address='52:54:00:00:00:01'/></interface>\
        <interface type='bridge'><mac address='52:54:00:00:00:01'/></interface>\
        </devices></domain>";
    assert_eq!(
        find_interface(doc, "bridge", Some("52:54:00:00:00:01")).map_err(|e| e.to_string()),
        Err("Domain has multiple interfaces matching MAC address 52:54:00:00:00:01. You must use detach-device and specify the device pci address to remove it.".to_owned())
    );
}

#[tokio::test]
async fn change_media_lines() {
    let mut h = Harness::new();
    let eject = "<disk type=\"file\" device=\"cdrom\">
      <driver name=\"qemu\" type=\"raw\"/>
      
      <target dev=\"sda\" bus=\"sata\"/>
      <readonly/>
      <alias name=\"sata0-0-0\"/>
    </disk>";
    let calls = h
        .ok("change-media vm2 sda --eject --print-xml", eject)
        .await;
    assert_eq!(calls, [get_xml(false)]);
    // vshPrint without a newline: the blank line after the command ends it.
    let calls = h
        .ok(
            "change-media vm2 sda --eject",
            "Successfully ejected media.",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(false),
            call("UpdateDevice", eject, false, false, false)
        ]
    );
    // --update without a source is an eject.
    h.ok(
        "change-media vm2 sda --update",
        "Successfully ejected media.",
    )
    .await;

    // The new source goes last, keeping startupPolicy.
    let update = "<disk type=\"file\" device=\"cdrom\">
      <driver name=\"qemu\" type=\"raw\"/>
      
      <target dev=\"sda\" bus=\"sata\"/>
      <readonly/>
      <alias name=\"sata0-0-0\"/>
    <source file=\"/isos/b.iso\" startupPolicy=\"optional\"/></disk>";
    let calls = h
        .ok(
            "change-media vm2 /isos/a.iso /isos/b.iso --live --force",
            "Successfully updated media.",
        )
        .await;
    assert_eq!(
        calls,
        [
            get_xml(false),
            call("UpdateDevice", update, true, false, true)
        ]
    );
    let insert = "<disk type=\"block\" device=\"floppy\">
      <target dev=\"fda\" bus=\"fdc\"/>
      <alias name=\"fdc0-0-0\"/>
    <source dev=\"/dev/fd0\"/></disk>";
    h.ok(
        "change-media vm2 fda /dev/fd0 --insert --block --print-xml",
        insert,
    )
    .await;
    h.ok(
        "change-media vm2 fda --source /dev/fd0 --insert --block",
        "Successfully inserted media.",
    )
    .await;
    // --config reads and changes the inactive definition.
    let calls = h
        .ok(
            "change-media vm2 sda /isos/c.iso --config",
            "Successfully updated media.",
        )
        .await;
    assert_eq!(calls[0], get_xml(true));
    assert!(
        calls[1]
            .xml
            .contains("<source file=\"/isos/c.iso\"/></disk>")
    );
    assert_eq!(calls[1].flags, (false, true, false));

    for (line, err) in [
        (
            "change-media vm2 sda --eject --insert",
            "Options --eject and --insert are mutually exclusive",
        ),
        (
            "change-media vm2 sda --eject --block",
            "Options --eject and --block are mutually exclusive",
        ),
        (
            "change-media vm2 sda /x --current --live",
            "Options --current and --live are mutually exclusive",
        ),
        (
            "change-media vm2 sda /x --insert",
            "The disk device 'sda' already has media",
        ),
        (
            "change-media vm2 fda --eject",
            "The disk device 'fda' doesn't have media",
        ),
        (
            "change-media vm2 fda --insert",
            "New disk media source was not specified",
        ),
        (
            "change-media vm2 vda /x",
            "No disk found whose source path or target is vda",
        ),
    ] {
        h.fails(line, &format!("error: {err}\n")).await;
    }
    h.fails(
        "change-media bad sda --eject",
        "error: operation failed: no XML\n",
    )
    .await;

    // -q does not silence it (vshPrint).
    h.ctl.settings.quiet = true;
    let (ok, out, _, _) = h.run("change-media vm2 sda --eject").await;
    assert!(ok);
    assert_eq!(out, "Successfully ejected media.");
}

#[test]
fn a_disk_that_is_not_removable_is_refused() {
    let disk = find_disk(VM2_LIVE, "vda", false).expect("found");
    assert_eq!(
        update_disk_xml(disk, Some("/x"), false, "vda", Media::Update).map_err(|e| e.to_string()),
        Err("The disk device 'vda' is not removable".to_owned())
    );
    // change-media only looks at CD-ROMs and floppies.
    assert_eq!(
        find_disk(VM2_LIVE, "vda", true).map_err(|e| e.to_string()),
        Err("No disk found whose source path or target is vda".to_owned())
    );
    assert_eq!(
        find_disk("<domain><devices/></domain>", "vda", false).map_err(|e| e.to_string()),
        Err("Failed to get disk information".to_owned())
    );
}

#[tokio::test]
async fn domblklist_and_domiflist_tables() {
    let mut h = Harness::new();
    h.ok(
        "domblklist vm2",
        &format!(
            " Target   Source\n{}\n \
             vda      /var/lib/virt/images/vm2.qcow2\n \
             sda      /isos/a.iso\n \
             fda      -\n \
             vdb      data.img\n",
            "-".repeat(42)
        ),
    )
    .await;
    h.ok(
        "domblklist vm2 --details",
        &format!(
            " Type     Device   Target   Source\n{}\n \
             file     disk     vda      /var/lib/virt/images/vm2.qcow2\n \
             file     cdrom    sda      /isos/a.iso\n \
             file     floppy   fda      -\n \
             volume   disk     vdb      data.img\n",
            "-".repeat(60)
        ),
    )
    .await;
    let calls = h
        .ok(
            "domblklist vm2 --inactive",
            &format!(
                " Target   Source\n{}\n \
                 vda      /var/lib/virt/images/vm2.qcow2\n \
                 sda      /isos/old.iso\n",
                "-".repeat(42)
            ),
        )
        .await;
    assert_eq!(calls, [get_xml(true)]);
    h.ok(
        "domiflist vm2",
        &format!(
            " Interface   Type      Source    Model    MAC\n{}\n \
             vnet0       network   default   virtio   52:54:00:aa:bb:01\n \
             vnet1       bridge    br0       e1000    52:54:00:aa:bb:02\n \
             -           bridge    br1       -        52:54:00:aa:bb:03\n",
            "-".repeat(61)
        ),
    )
    .await;
    h.ok(
        "domiflist vm1 --inactive",
        &format!(
            " Interface   Type      Source    Model    MAC\n{}\n \
             -           network   default   virtio   52:54:00:aa:bb:01\n",
            "-".repeat(61)
        ),
    )
    .await;
    h.fails("domiflist bad", "error: operation failed: no XML\n")
        .await;
    h.fails(
        "domblklist nosuch",
        "error: failed to get domain 'nosuch'\n\
         error: Domain not found: no domain with matching name 'nosuch'\n",
    )
    .await;
    // -q: no header, widths from the rows.
    h.ctl.settings.quiet = true;
    let (ok, out, _, _) = h.run("domblklist vm1").await;
    assert!(ok);
    assert_eq!(
        out,
        " vda   /var/lib/virt/images/vm2.qcow2\n sda   /isos/old.iso\n"
    );
}

#[test]
fn nvme_and_missing_targets_in_domblklist() {
    let doc = "<domain><devices>\
        <disk type='nvme' device='disk'><source type='pci' managed='yes' namespace='1'>\
        <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source>\
        <target dev='vde' bus='virtio'/></disk>\
        </devices></domain>";
    let t = blklist_table(doc, false).expect("table");
    assert!(
        t.render(false).contains(" vde   nvme://0000:01:00.0/1\n"),
        "{}",
        t.render(false)
    );
    let doc = "<domain><devices><disk type='file' device='disk'/></devices></domain>";
    assert_eq!(
        blklist_table(doc, false).err().map(|e| e.to_string()),
        Some("unable to query block list".to_owned())
    );
}
