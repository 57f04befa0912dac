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
    let mut out = Vec::new();
    if let Some(r) = inbound(bw) {
        let avg = r.average.unwrap_or(0);
        let average = format!("{avg}kbps");
        let peak = r.peak.filter(|p| *p != 0).map(|p| format!("{p}kbps"));
        let burst = r.burst.filter(|b| *b != 0).map(|b| format!("{b}kb"));
        let ceil = peak.as_deref().unwrap_or(&average);
        let q = quantum(avg).to_string();
        out.push(TcCommand::new(
            TcFeature::Htb,
            &[
                "qdisc", "add", "dev", bridge, "root", "handle", "1:", "htb", "default", "2",
            ],
        ));
        for (parent, classid) in [("1:", "1:1"), ("1:1", "1:2")] {
            let mut c = TcCommand::new(
                TcFeature::Htb,
                &[
                    "class", "add", "dev", bridge, "parent", parent, "classid", classid, "htb",
                    "rate", &average, "ceil", ceil,
                ],
            );
            if let Some(b) = &burst {
                c.command.args(["burst", b.as_str()]);
            }
            c.command.args(["quantum", q.as_str()]);
            out.push(c);
        }
        out.push(TcCommand::new(
            TcFeature::Sfq,
            &[
                "qdisc", "add", "dev", bridge, "parent", "1:2", "handle", "2:", "sfq", "perturb",
                "10",
            ],
        ));
        out.push(TcCommand::new(
            TcFeature::Fw,
            &[
                "filter", "add", "dev", bridge, "parent", "1:0", "protocol", "all", "prio", "1",
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
            &["qdisc", "add", "dev", bridge, "ingress"],
        ));
        out.push(TcCommand::new(
            TcFeature::Police,
            &[
                "filter", "add", "dev", bridge, "parent", "ffff:", "protocol", "all", "u32",
                "match", "u32", "0", "0", "police", "rate", &average, "burst", &burst, "mtu",
                "64kb", "drop", "flowid", ":1",
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
