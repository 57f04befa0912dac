//! virtsh's `domblklist` and `domiflist` against a real virtqemud: the
//! tables virsh prints for a defined domain's disks and interfaces.

use tests::virtsh::{fails, ok};
use tests::{Daemon, TestRoot};

const XML: &str = "<domain type='qemu'>
  <name>devs</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/images/devs.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/vg0/data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:12:34:01'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:12:34:02'/>
      <source bridge='br0'/>
      <model type='e1000e'/>
    </interface>
  </devices>
</domain>
";

#[tokio::test]
async fn domblklist_and_domiflist_print_virsh_tables() {
    let root = TestRoot::new();
    let _qemud = Daemon::start("virtqemud", &root).await;
    let file = root.path().join("devs.xml");
    std::fs::write(&file, XML).expect("write xml");
    let file = file.to_str().expect("utf-8");
    assert_eq!(
        ok(&root, &["define", file]),
        format!("Domain 'devs' defined from {file}\n\n")
    );

    let blk = format!(
        " Target   Source\n{}\n \
         vda      /var/lib/images/devs.qcow2\n \
         vdb      /dev/vg0/data\n \
         sdb      -\n\n",
        "-".repeat(38)
    );
    // The disks in the order of the daemon's XML.
    assert_eq!(ok(&root, &["domblklist", "devs"]), blk);
    assert_eq!(ok(&root, &["domblklist", "devs", "--inactive"]), blk);
    assert_eq!(
        ok(&root, &["domblklist", "devs", "--details"]),
        format!(
            " Type    Device   Target   Source\n{}\n \
             file    disk     vda      /var/lib/images/devs.qcow2\n \
             block   disk     vdb      /dev/vg0/data\n \
             file    cdrom    sdb      -\n\n",
            "-".repeat(55)
        )
    );
    assert_eq!(
        ok(&root, &["-q", "domblklist", "devs"]),
        " vda   /var/lib/images/devs.qcow2\n vdb   /dev/vg0/data\n sdb   -\n"
    );

    let nics = format!(
        " Interface   Type      Source    Model    MAC\n{}\n \
         -           network   default   virtio   52:54:00:12:34:01\n \
         -           bridge    br0       e1000e   52:54:00:12:34:02\n\n",
        "-".repeat(61)
    );
    assert_eq!(ok(&root, &["domiflist", "devs"]), nics);
    assert_eq!(ok(&root, &["domiflist", "devs", "--inactive"]), nics);

    for cmd in ["domblklist", "domiflist"] {
        assert_eq!(
            fails(&root, &[cmd, "nosuch"]),
            "error: failed to get domain 'nosuch'\n\
             error: Domain not found: no domain with matching name 'nosuch'\n"
        );
    }
}
