//! Network interfaces: `-netdev` backend and the NIC `-device`.

use common::domain::Device;
use common::domain::device::interface::NetSource;

use super::disk::boot_plan;
use super::{Args, BuildError, Builder, FdRequest, Props, Result};

/// All interfaces.
///
/// # Errors
/// Unsupported interface types.
pub fn build(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let plan = boot_plan(b);
    let mut tap_fd = b.ctx.fds.tap_first;
    let mut bridge_fd = b.ctx.fds.bridge_tap_first;
    let mut vhost_fd = b.ctx.fds.vhost_first;
    let nets = b.def.devices.iter().filter_map(|d| match d {
        Device::Interface(i) => Some(i.as_ref()),
        _ => None,
    });
    for (i, (net, boot)) in nets.zip(plan.nets).enumerate() {
        let id = format!("hostnet{i}");
        let virtio = net.is_virtio();
        let mut fds = Vec::new();
        let mut tap = |fd: &mut i32| {
            let mut p = Props::new().s("type", "tap").s("fd", fd.to_string());
            fds.push(FdRequest::Tap { fd: *fd, index: i });
            *fd += 1;
            if virtio && b.ctx.vhost_net {
                p = p.b("vhost", true).s("vhostfd", vhost_fd.to_string());
                fds.push(FdRequest::Vhost {
                    fd: vhost_fd,
                    index: i,
                });
                vhost_fd += 1;
            }
            p
        };
        let backend = match &net.source {
            NetSource::User { .. } => Props::new().s("type", "user"),
            NetSource::Ethernet => tap(&mut tap_fd),
            NetSource::Bridge { .. } | NetSource::Network { .. } => tap(&mut bridge_fd),
            _ => {
                return Err(BuildError::Unsupported(format!(
                    "interface type '{}'",
                    net.net_type().as_str()
                )));
            }
        };
        for f in fds {
            args.fd(f);
        }
        args.opt("-netdev", backend.s("id", id.clone()).to_json());
        let model = net.model.as_deref().unwrap_or("rtl8139");
        let driver = match model {
            "virtio" => "virtio-net-pci",
            "virtio-transitional" => "virtio-net-pci-transitional",
            "virtio-non-transitional" => "virtio-net-pci-non-transitional",
            other => other,
        };
        let mut p = Props::new().s("driver", driver);
        if virtio {
            p = p.extend(super::controllers::virtio_props(&net.driver.virtio));
        }
        p = p
            .s("netdev", id)
            .s("id", format!("net{i}"))
            .s("mac", net.mac.to_string())
            .u_opt("bootindex", boot.map(u64::from))
            .extend(b.address_props(&net.info));
        args.device(&p);
    }
    Ok(())
}
