//! A network's `<bandwidth>` on its bridge: runs the `tc` commands of
//! `common::network::bandwidth` (libvirt's `virNetDevBandwidthSet`), all
//! of a network's in one `tc -batch` (one process; it stops at the first
//! failure, and the caller then removes the bridge and everything on it).
//!
//! Kernels differ in which qdiscs, classifiers and actions they have (the
//! test machine's has `htb`, `ingress` and `u32`, but no `sfq`, no `fw`
//! classifier and no `police` action). So the first network with a
//! `<bandwidth>` makes the daemon probe its kernel once: every command
//! the builder can make is run on the loopback device of a network
//! namespace of its own (a child that `unshare`s before it execs `tc`,
//! so nothing on the host is touched), as one `tc -force -batch`, and
//! each failed line names a missing feature. A start then
//!
//! - refuses, before anything is created, a setting that needs a missing
//!   feature that carries the limit (`htb` for `<inbound>`, `ingress` and
//!   `police` for `<outbound>`), naming the setting and tc's reason;
//! - leaves out a command whose feature only refines the shaping (the
//!   `sfq` leaf, the `fw` filter), with a warning: the rates still hold.
//!
//! The probe and the batch runner are `common::network::tc` (shared
//! with virtqemud, which puts NIC bandwidth on taps). Blocking; the
//! driver calls it from `spawn_blocking`.

use common::network::NetworkDef;
use common::network::bandwidth::{self, TcCommand, TcFeature};
pub use common::network::tc::{Support, Tc};
use common::{ErrorCode, ErrorDomain, VirtError};

fn refusal(def: &NetworkDef, setting: &str, f: TcFeature, why: &str) -> VirtError {
    VirtError::new(
        ErrorCode::ConfigUnsupported,
        ErrorDomain::Network,
        format!(
            "unsupported configuration: cannot apply <bandwidth><{setting}> of network '{}': \
             it needs {} in tc, which this host's kernel lacks ({why})",
            def.name,
            f.describe()
        ),
    )
}

/// A network's bandwidth planned against what the kernel has.
pub trait PlanNetwork {
    /// The commands that put `def`'s bandwidth on its bridge, without
    /// those this kernel cannot run and can do without (none when the
    /// network has no bandwidth to apply).
    ///
    /// # Errors
    /// A setting needs a feature this kernel lacks (nothing was done).
    fn plan(&self, def: &NetworkDef) -> Result<Vec<TcCommand>, VirtError>;
}

impl PlanNetwork for Tc {
    fn plan(&self, def: &NetworkDef) -> Result<Vec<TcCommand>, VirtError> {
        let Some(bw) = def
            .bandwidth
            .as_ref()
            .filter(|b| bandwidth::applies(Some(b)))
        else {
            return Ok(Vec::new());
        };
        let bridge = def.bridge.name.as_deref().unwrap_or_default();
        let cmds = bandwidth::bridge_commands(bridge, bw);
        let (run, left) = bandwidth::plan(cmds, &self.support().missing)
            .map_err(|r| refusal(def, r.setting, r.feature, &r.why))?;
        for (c, why) in left {
            tracing::warn!(
                network = %def.name,
                "leaving out `tc {}`: this kernel lacks {} ({why}); the rates still apply",
                c.batch_line(),
                c.needs.describe()
            );
        }
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::xml::ParseFlags;

    const PROBE_STDERR: &str = "Error: Specified qdisc kind is unknown.\nCommand failed -:4\n\
        Error: TC classifier not found.\nWe have an error talking to the kernel\nCommand failed -:5\n\
        Error: Failed to load TC action module.\nWe have an error talking to the kernel\nCommand failed -:7\n";

    fn def(bw: &str) -> NetworkDef {
        NetworkDef::parse_str(
            &format!(
                "<network><name>n</name><bridge name='vb0'/><bandwidth>{bw}</bandwidth></network>"
            ),
            ParseFlags::default(),
        )
        .expect("parses")
    }

    #[test]
    fn plan_leaves_out_optional_and_refuses_outbound() {
        let tc = Tc::with_support(common::network::tc::support_from(
            &bandwidth::probe_commands(),
            PROBE_STDERR,
        ));
        let cmds = tc
            .plan(&def("<inbound average='1000' peak='2000' burst='256'/>"))
            .expect("inbound planned");
        let needs: Vec<_> = cmds.iter().map(|c| c.needs).collect();
        assert_eq!(needs, [TcFeature::Htb; 3]);
        let e = tc
            .plan(&def("<inbound average='1000'/><outbound average='500'/>"))
            .expect_err("outbound refused");
        assert_eq!(e.code, ErrorCode::ConfigUnsupported);
        assert_eq!(
            e.message,
            "unsupported configuration: cannot apply <bandwidth><outbound> of network 'n': it needs \
             the u32 classifier with the police action in tc, which this host's kernel lacks \
             (Failed to load TC action module.)"
        );
        // Everything there: libvirt's full list.
        let all = Tc::with_support(Support::default());
        assert_eq!(
            all.plan(&def("<inbound average='1000'/><outbound average='500'/>"))
                .expect("planned")
                .len(),
            7
        );
        assert!(all.plan(&def("")).expect("nothing").is_empty());
    }
}
