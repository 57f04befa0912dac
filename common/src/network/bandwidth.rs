//! The `tc` commands that put a network's `<bandwidth>` on its bridge,
//! as libvirt's `virNetDevBandwidthSet` makes them for a network (a
//! hierarchical class, directions swapped): a pure function of the
//! [`Bandwidth`].
//!
//! Seen from the guests, `<inbound>` is what reaches them, which leaves
//! the host through the bridge: it is shaped on the bridge's egress by an
//! HTB tree, whose class `1:1` caps the whole network and whose class
//! `1:2` (the default) takes the traffic of every guest without a floor
//! of its own, with an SFQ leaf. `<outbound>` is what the guests send,
//! which enters the host through the bridge: it is policed on the
//! bridge's ingress (a u32 filter matching everything, with the `police`
//! action dropping what exceeds the rate).
//!
//! A guest NIC's `<bandwidth>` goes on its tap ([`tap_commands`]), with
//! one flat class instead of the tree and the same two directions.
//!
//! Units as libvirt's: `kbps` (kilobytes per second) for rates, `kb`
//! (kibibytes) for bursts. Every command is tagged with the kernel
//! feature it needs ([`TcFeature`]), so a daemon can tell what its kernel
//! lacks (it runs [`probe_commands`] once) and either skip a command that
//! only refines the shaping or refuse a setting that cannot be honoured.

use super::def::{Bandwidth, Rate};
use crate::storage::argv::Command;

/// The kernel part (qdisc, classifier or action) a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcFeature {
    /// The `htb` qdisc and its classes (the inbound limit itself).
    Htb,
    /// The `sfq` qdisc under the default class (fairness among flows).
    Sfq,
    /// The `fw` classifier (marked packets into class `1:1`).
    Fw,
    /// The `ingress` qdisc (where the outbound limit hangs).
    Ingress,
    /// The `u32` classifier with the `police` action (the outbound limit).
    Police,
}

impl TcFeature {
    /// Whether a setting is still honoured without it: SFQ only shares
    /// the class fairly among flows and the fw filter only moves packets
    /// marked 1, so without them the rates are still applied.
    pub fn optional(self) -> bool {
        matches!(self, TcFeature::Sfq | TcFeature::Fw)
    }

    /// What the feature is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            TcFeature::Htb => "the htb qdisc",
            TcFeature::Sfq => "the sfq qdisc",
            TcFeature::Fw => "the fw classifier",
            TcFeature::Ingress => "the ingress qdisc",
            TcFeature::Police => "the u32 classifier with the police action",
        }
    }
}

/// One `tc` command and the kernel feature it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcCommand {
    /// `tc ...`.
    pub command: Command,
    /// What it needs.
    pub needs: TcFeature,
}

impl TcCommand {
    fn new(needs: TcFeature, args: &[&str]) -> TcCommand {
        let mut command = Command::new("tc");
        command.args(args.iter().copied());
        TcCommand { command, needs }
    }

    /// The command as one line of a `tc -batch` file (its arguments; none
    /// contains blanks or quotes).
    pub fn batch_line(&self) -> String {
        self.command.args.join(" ")
    }
}

/// The HTB quantum libvirt gives a class of `average` kilobytes per
/// second (`virNetDevBandwidthCmdAddOptimalQuantum`): the bytes a class
/// may send per round, about one 1500-byte MTU per r2q unit of its rate,
/// at least 1 and at most what the kernel keeps (a u32).
pub fn quantum(average: u64) -> u64 {
    const MTU: u64 = 1500;
    (average.saturating_mul(1024) / 8 / MTU).clamp(1, u64::from(u32::MAX))
}

/// Whether `bw` puts anything on the bridge.
pub fn applies(bw: Option<&Bandwidth>) -> bool {
    bw.is_some_and(|b| inbound(b).is_some() || b.outbound.is_some())
}

/// The inbound rate that is shaped: one with a non-zero average.
fn inbound(bw: &Bandwidth) -> Option<&Rate> {
    bw.inbound.as_ref().filter(|r| r.average.unwrap_or(0) != 0)
}

/// The commands that apply `bw` to `bridge`, in libvirt's order (none
/// when there is nothing to apply). The bridge must have no root or
/// ingress qdisc of its own yet ([`clear_commands`] removes them).
pub fn bridge_commands(bridge: &str, bw: &Bandwidth) -> Vec<TcCommand> {
    commands(bridge, bw, true)
}

/// The commands that apply a guest NIC's `bw` to its tap, as libvirt's
/// QEMU driver does (`virNetDevBandwidthSet` with a flat class: the
/// root HTB qdisc defaults to its only class `1:1`, whose `ceil` is only
/// given with a peak, with the SFQ leaf under it). The guest sits on the
/// other side of the tap, so as on a bridge `<inbound>` (to the guest)
/// is shaped on the tap's egress and `<outbound>` (from the guest)
/// policed on its ingress.
pub fn tap_commands(tap: &str, bw: &Bandwidth) -> Vec<TcCommand> {
    commands(tap, bw, false)
}

/// A domain NIC's `<bandwidth>` in the network model (the same values;
/// `floor` is kept but no command uses it).
pub fn from_nic(b: &crate::domain::device::interface::Bandwidth) -> Bandwidth {
    let rate = |r: &crate::domain::device::interface::BandwidthRate| Rate {
        average: r.average,
        peak: r.peak,
        burst: r.burst,
        floor: r.floor,
    };
    Bandwidth {
        inbound: b.inbound.as_ref().map(rate),
        outbound: b.outbound.as_ref().map(rate),
    }
}

/// A command left out of a [`plan`] and tc's reason for the missing
/// feature.
pub type LeftOut = (TcCommand, String);

/// Why a [`plan`] is refused: the setting (`inbound` or `outbound`) whose
/// limit needs a feature the kernel lacks, the feature and tc's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `inbound` or `outbound`.
    pub setting: &'static str,
    /// The missing feature.
    pub feature: TcFeature,
    /// tc's complaint.
    pub why: String,
}

/// Splits `cmds` by what a kernel lacks (`missing`: feature → tc's
/// reason): the commands to run and those left out because their feature
/// is [optional](TcFeature::optional).
///
/// # Errors
/// A command whose feature carries a limit is missing.
pub fn plan(
    cmds: Vec<TcCommand>,
    missing: &std::collections::HashMap<TcFeature, String>,
) -> Result<(Vec<TcCommand>, Vec<LeftOut>), Refusal> {
    let mut run = Vec::with_capacity(cmds.len());
    let mut left = Vec::new();
    for c in cmds {
        match missing.get(&c.needs) {
            None => run.push(c),
            Some(why) if c.needs.optional() => left.push((c, why.clone())),
            Some(why) => {
                let setting = match c.needs {
                    TcFeature::Ingress | TcFeature::Police => "outbound",
                    _ => "inbound",
                };
                return Err(Refusal {
                    setting,
                    feature: c.needs,
                    why: why.clone(),
                });
            }
        }
    }
    Ok((run, left))
}

fn commands(dev: &str, bw: &Bandwidth, hierarchical: bool) -> Vec<TcCommand> {
    let mut out = Vec::new();
    if let Some(r) = inbound(bw) {
        let avg = r.average.unwrap_or(0);
        let average = format!("{avg}kbps");
        let peak = r.peak.filter(|p| *p != 0).map(|p| format!("{p}kbps"));
        let burst = r.burst.filter(|b| *b != 0).map(|b| format!("{b}kb"));
        let q = quantum(avg).to_string();
        // Hierarchical: 1:1 caps the whole device and 1:2 (the default)
        // takes what has no class of its own; flat: 1:1 is all.
        let (default, leaf) = if hierarchical {
            ("2", "1:2")
        } else {
            ("1", "1:1")
        };
        out.push(TcCommand::new(
            TcFeature::Htb,
            &[
                "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", default,
            ],
        ));
        let classes: &[(&str, &str)] = if hierarchical {
            &[("1:", "1:1"), ("1:1", "1:2")]
        } else {
            &[("1:", "1:1")]
        };
        for (parent, classid) in classes {
            let mut c = TcCommand::new(
                TcFeature::Htb,
                &[
                    "class", "add", "dev", dev, "parent", parent, "classid", classid, "htb",
                    "rate", &average,
                ],
            );
            // libvirt gives the hierarchical classes a ceil of the average
            // without a peak, the flat one none (tc's default: the rate).
            if let Some(ceil) = peak.as_ref().or(hierarchical.then_some(&average)) {
                c.command.args(["ceil", ceil.as_str()]);
            }
            if let Some(b) = &burst {
                c.command.args(["burst", b.as_str()]);
            }
            c.command.args(["quantum", q.as_str()]);
            out.push(c);
        }
        out.push(TcCommand::new(
            TcFeature::Sfq,
            &[
                "qdisc", "add", "dev", dev, "parent", leaf, "handle", "2:", "sfq", "perturb", "10",
            ],
        ));
        out.push(TcCommand::new(
            TcFeature::Fw,
            &[
                "filter", "add", "dev", dev, "parent", "1:0", "protocol", "all", "prio", "1",
                "handle", "1", "fw", "flowid", "1",
            ],
        ));
    }
    if let Some(r) = &bw.outbound {
        let avg = r.average.unwrap_or(0);
        let average = format!("{avg}kbps");
        // tc keeps a burst in bytes in a u32: the default (one second of
        // the average) is capped to what fits.
        let burst = match r.burst.filter(|b| *b != 0) {
            Some(b) => format!("{b}kb"),
            None => format!("{}kb", avg.min(u64::from(u32::MAX) / 1024)),
        };
        out.push(TcCommand::new(
            TcFeature::Ingress,
            &["qdisc", "add", "dev", dev, "ingress"],
        ));
        out.push(TcCommand::new(
            TcFeature::Police,
            &[
                "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "u32", "match",
                "u32", "0", "0", "police", "rate", &average, "burst", &burst, "mtu", "64kb",
                "drop", "flowid", ":1",
            ],
        ));
    }
    out
}

/// The commands that remove what [`bridge_commands`] added
/// (`virNetDevBandwidthClear`): the root and the ingress qdisc, with
/// everything under them. Either may fail when it is not there.
pub fn clear_commands(bridge: &str) -> Vec<Command> {
    ["root", "ingress"]
        .into_iter()
        .map(|q| {
            let mut c = Command::new("tc");
            c.args(["qdisc", "del", "dev", bridge, q]);
            c
        })
        .collect()
}

/// The commands a daemon runs once, on the loopback device of a network
/// namespace of its own, to learn which [`TcFeature`]s its kernel has:
/// every command [`bridge_commands`] can make, with small rates. Run as
/// one `tc -force -batch`, a failed line names a missing feature.
pub fn probe_commands() -> Vec<TcCommand> {
    let rate = Rate {
        average: Some(1),
        peak: Some(2),
        burst: Some(1),
        floor: None,
    };
    bridge_commands(
        "lo",
        &Bandwidth {
            inbound: Some(rate),
            outbound: Some(rate),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(average: u64, peak: Option<u64>, burst: Option<u64>) -> Rate {
        Rate {
            average: Some(average),
            peak,
            burst,
            floor: None,
        }
    }

    fn lines(cmds: &[TcCommand]) -> Vec<String> {
        cmds.iter()
            .map(|c| format!("{} {}", c.command.program, c.batch_line()))
            .collect()
    }

    #[test]
    fn inbound_with_peak_and_burst() {
        let bw = Bandwidth {
            inbound: Some(rate(1000, Some(2000), Some(256))),
            outbound: None,
        };
        let cmds = bridge_commands("virbr5", &bw);
        assert_eq!(
            lines(&cmds),
            [
                "tc qdisc add dev virbr5 root handle 1: htb default 2",
                "tc class add dev virbr5 parent 1: classid 1:1 htb rate 1000kbps ceil 2000kbps burst 256kb quantum 85",
                "tc class add dev virbr5 parent 1:1 classid 1:2 htb rate 1000kbps ceil 2000kbps burst 256kb quantum 85",
                "tc qdisc add dev virbr5 parent 1:2 handle 2: sfq perturb 10",
                "tc filter add dev virbr5 parent 1:0 protocol all prio 1 handle 1 fw flowid 1",
            ]
        );
        let needs: Vec<_> = cmds.iter().map(|c| c.needs).collect();
        assert_eq!(
            needs,
            [
                TcFeature::Htb,
                TcFeature::Htb,
                TcFeature::Htb,
                TcFeature::Sfq,
                TcFeature::Fw
            ]
        );
        // The argv itself, word by word.
        assert_eq!(
            cmds[1].command.args,
            [
                "class", "add", "dev", "virbr5", "parent", "1:", "classid", "1:1", "htb", "rate",
                "1000kbps", "ceil", "2000kbps", "burst", "256kb", "quantum", "85"
            ]
        );
    }

    #[test]
    fn inbound_average_only_has_ceil_of_average_and_no_burst() {
        let bw = Bandwidth {
            inbound: Some(rate(10, None, None)),
            outbound: None,
        };
        assert_eq!(
            lines(&bridge_commands("br", &bw))[1..3],
            [
                "tc class add dev br parent 1: classid 1:1 htb rate 10kbps ceil 10kbps quantum 1",
                "tc class add dev br parent 1:1 classid 1:2 htb rate 10kbps ceil 10kbps quantum 1",
            ]
        );
    }

    #[test]
    fn outbound_police_with_and_without_burst() {
        let bw = Bandwidth {
            inbound: None,
            outbound: Some(rate(500, Some(900), Some(64))),
        };
        assert_eq!(
            lines(&bridge_commands("br", &bw)),
            [
                "tc qdisc add dev br ingress",
                "tc filter add dev br parent ffff: protocol all u32 match u32 0 0 police rate 500kbps burst 64kb mtu 64kb drop flowid :1",
            ]
        );
        // Without a burst: one second of the average, capped to a u32 of bytes.
        let bw = Bandwidth {
            inbound: None,
            outbound: Some(rate(500, None, None)),
        };
        assert!(lines(&bridge_commands("br", &bw))[1].contains("rate 500kbps burst 500kb mtu"));
        let bw = Bandwidth {
            inbound: None,
            outbound: Some(rate(10_000_000, None, None)),
        };
        assert!(lines(&bridge_commands("br", &bw))[1].contains("burst 4194303kb mtu"));
    }

    #[test]
    fn both_directions_inbound_first() {
        let bw = Bandwidth {
            inbound: Some(rate(100, None, None)),
            outbound: Some(rate(200, None, None)),
        };
        let cmds = bridge_commands("br", &bw);
        assert_eq!(cmds.len(), 7);
        assert_eq!(cmds[5].needs, TcFeature::Ingress);
        assert_eq!(cmds[6].needs, TcFeature::Police);
        assert!(applies(Some(&bw)));
    }

    #[test]
    fn nothing_to_apply() {
        assert!(!applies(None));
        let zero = Bandwidth {
            inbound: Some(rate(0, None, None)),
            outbound: None,
        };
        assert!(!applies(Some(&zero)));
        assert!(bridge_commands("br", &zero).is_empty());
        assert!(!applies(Some(&Bandwidth::default())));
    }

    #[test]
    fn quantum_as_libvirt() {
        assert_eq!(quantum(0), 1);
        assert_eq!(quantum(1), 1);
        assert_eq!(quantum(1000), 85);
        assert_eq!(quantum(1_000_000), 85_333);
        assert_eq!(quantum(u64::MAX), u64::from(u32::MAX));
    }

    #[test]
    fn tap_flat_class() {
        let bw = Bandwidth {
            inbound: Some(rate(1000, Some(2000), Some(256))),
            outbound: Some(rate(500, None, None)),
        };
        let cmds = tap_commands("vnet3", &bw);
        assert_eq!(
            lines(&cmds),
            [
                "tc qdisc add dev vnet3 root handle 1: htb default 1",
                "tc class add dev vnet3 parent 1: classid 1:1 htb rate 1000kbps ceil 2000kbps burst 256kb quantum 85",
                "tc qdisc add dev vnet3 parent 1:1 handle 2: sfq perturb 10",
                "tc filter add dev vnet3 parent 1:0 protocol all prio 1 handle 1 fw flowid 1",
                "tc qdisc add dev vnet3 ingress",
                "tc filter add dev vnet3 parent ffff: protocol all u32 match u32 0 0 police rate 500kbps burst 500kb mtu 64kb drop flowid :1",
            ]
        );
        let needs: Vec<_> = cmds.iter().map(|c| c.needs).collect();
        assert_eq!(
            needs,
            [
                TcFeature::Htb,
                TcFeature::Htb,
                TcFeature::Sfq,
                TcFeature::Fw,
                TcFeature::Ingress,
                TcFeature::Police
            ]
        );
        // Without a peak the flat class has no ceil (tc takes the rate).
        let bw = Bandwidth {
            inbound: Some(rate(10, None, None)),
            outbound: None,
        };
        assert_eq!(
            tap_commands("t", &bw)[1].command.args,
            [
                "class", "add", "dev", "t", "parent", "1:", "classid", "1:1", "htb", "rate",
                "10kbps", "quantum", "1"
            ]
        );
    }

    #[test]
    fn nic_bandwidth_converts_and_plans() {
        use crate::domain::device::interface as nic;
        let b = from_nic(&nic::Bandwidth {
            inbound: Some(nic::BandwidthRate {
                average: Some(1000),
                peak: Some(2000),
                floor: None,
                burst: Some(256),
            }),
            outbound: Some(nic::BandwidthRate {
                average: Some(5),
                ..Default::default()
            }),
        });
        assert_eq!(b.inbound, Some(rate(1000, Some(2000), Some(256))));
        assert_eq!(b.outbound, Some(rate(5, None, None)));
        let missing: std::collections::HashMap<_, _> = [
            (TcFeature::Sfq, "no sfq".to_owned()),
            (TcFeature::Fw, "no fw".to_owned()),
            (TcFeature::Police, "no police".to_owned()),
        ]
        .into();
        let only_in = Bandwidth {
            inbound: b.inbound,
            outbound: None,
        };
        let (run, left) = plan(tap_commands("t", &only_in), &missing).expect("planned");
        assert_eq!(run.len(), 2);
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].1, "no sfq");
        let r = plan(tap_commands("t", &b), &missing).expect_err("refused");
        assert_eq!(
            r,
            Refusal {
                setting: "outbound",
                feature: TcFeature::Police,
                why: "no police".to_owned()
            }
        );
        assert!(plan(tap_commands("t", &b), &Default::default()).is_ok());
    }

    #[test]
    fn clear_and_probe() {
        let c: Vec<String> = clear_commands("br")
            .iter()
            .map(|c| c.args.join(" "))
            .collect();
        assert_eq!(c, ["qdisc del dev br root", "qdisc del dev br ingress"]);
        let p = probe_commands();
        assert_eq!(p.len(), 7);
        assert!(p.iter().all(|c| c.command.args[3] == "lo"));
        assert!(TcFeature::Sfq.optional() && TcFeature::Fw.optional());
        assert!(!TcFeature::Htb.optional() && !TcFeature::Police.optional());
    }
}
