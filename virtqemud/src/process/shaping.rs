//! A NIC's `<bandwidth>` on its tap, as libvirt's QEMU driver puts it
//! (`virNetDevBandwidthSet` on the tap, one flat HTB class): the commands
//! of `common::network::bandwidth::tap_commands`, planned against the
//! kernel's tc features (probed once per daemon by
//! `common::network::tc`) and run in one `tc -batch`. A setting whose
//! limit this kernel cannot apply is refused; a command that only
//! refines the shaping (the `sfq` leaf, the `fw` filter) is left out with
//! a warning.
//!
//! Blocking (it runs `tc`).

use std::sync::OnceLock;

use common::domain::device::interface::Interface;
use common::network::Bandwidth;
use common::network::bandwidth;
use common::network::tc::Tc;
use common::{ErrorCode, ErrorDomain, VirtError};

use crate::network::NicPort;

static TC: OnceLock<Tc> = OnceLock::new();

fn tc() -> &'static Tc {
    TC.get_or_init(Tc::new)
}

/// The bandwidth `nic`'s tap gets: its own `<bandwidth>`, else the one
/// its network port carries (the portgroup's); `None` when that shapes
/// nothing.
pub fn effective(nic: &Interface, port: Option<&NicPort>) -> Option<Bandwidth> {
    let bw = match &nic.bandwidth {
        Some(b) => Some(bandwidth::from_nic(b)),
        None => port.and_then(|p| p.bandwidth.clone()),
    };
    bw.filter(|b| bandwidth::applies(Some(b)))
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Puts `bw` on tap `tap` of the NIC with MAC `mac`.
///
/// # Errors
/// CONFIG_UNSUPPORTED when a setting needs a tc feature this kernel
/// lacks (nothing was run); SYSTEM_ERROR when tc fails (what ran stays
/// on the tap, which the caller closes).
pub fn apply(tap: &str, mac: [u8; 6], bw: &Bandwidth) -> Result<(), VirtError> {
    let tc = tc();
    let cmds = bandwidth::tap_commands(tap, bw);
    let (run, left) = bandwidth::plan(cmds, &tc.support().missing).map_err(|r| {
        VirtError::new(
            ErrorCode::ConfigUnsupported,
            ErrorDomain::Qemu,
            format!(
                "unsupported configuration: cannot apply <bandwidth><{}> of interface '{}': \
                 it needs {} in tc, which this host's kernel lacks ({})",
                r.setting,
                mac_string(mac),
                r.feature.describe(),
                r.why
            ),
        )
    })?;
    for (c, why) in left {
        tracing::warn!(
            tap,
            "leaving out `tc {}`: this kernel lacks {} ({why}); the rates still apply",
            c.batch_line(),
            c.needs.describe()
        );
    }
    tc.apply(&run).map_err(|e| {
        VirtError::new(
            ErrorCode::SystemError,
            ErrorDomain::Qemu,
            format!("cannot set bandwidth on tap device {tap}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::domain::{Device, DomainDef, GenericHooks};
    use common::network::Rate;
    use common::xml::ParseFlags;

    fn nic(inner: &str) -> Interface {
        let d = DomainDef::parse_str(
            &format!(
                "<domain type='kvm'><name>g</name><memory>4194304</memory>\
                 <os><type>hvm</type></os><devices><interface type='network'>\
                 <source network='default'/>{inner}</interface></devices></domain>"
            ),
            ParseFlags::default(),
            &GenericHooks,
        )
        .expect("parsed");
        match d.devices.into_iter().next() {
            Some(Device::Interface(n)) => *n,
            other => panic!("not an interface: {other:?}"),
        }
    }

    fn port(bw: Option<Bandwidth>) -> NicPort {
        NicPort {
            index: 0,
            network: "default".into(),
            uuid: "u".into(),
            bridge: "virbr0".into(),
            bandwidth: bw,
        }
    }

    #[test]
    fn own_bandwidth_wins_over_the_port() {
        let group = Bandwidth {
            inbound: Some(Rate {
                average: Some(7),
                ..Default::default()
            }),
            outbound: None,
        };
        let own = nic("<bandwidth><inbound average='1000' peak='2000' burst='256'/></bandwidth>");
        let e = effective(&own, Some(&port(Some(group.clone())))).expect("own");
        assert_eq!(e.inbound.and_then(|r| r.average), Some(1000));
        assert_eq!(e.inbound.and_then(|r| r.peak), Some(2000));
        // None of its own: the portgroup's.
        let plain = nic("");
        let e = effective(&plain, Some(&port(Some(group)))).expect("group");
        assert_eq!(e.inbound.and_then(|r| r.average), Some(7));
        assert!(effective(&plain, Some(&port(None))).is_none());
        assert!(effective(&plain, None).is_none());
        assert_eq!(mac_string([0x52, 0x54, 0, 0xab, 1, 2]), "52:54:00:ab:01:02");
    }
}
