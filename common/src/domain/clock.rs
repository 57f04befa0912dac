//! `<clock>` and its `<timer>`s.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Ctx, missing, yes_no};

xml_enum! {
    /// `<clock basis=>`.
    pub enum ClockBasis { Utc = "utc", Localtime = "localtime" }
}

xml_enum! {
    /// `<timer name=>`.
    pub enum TimerName {
        Platform = "platform", Pit = "pit", Rtc = "rtc", Hpet = "hpet", Tsc = "tsc",
        Kvmclock = "kvmclock", Hypervclock = "hypervclock", Armvtimer = "armvtimer",
    }
}

xml_enum! {
    /// `<timer tickpolicy=>`.
    pub enum TickPolicy { Delay = "delay", Catchup = "catchup", Merge = "merge", Discard = "discard" }
}

xml_enum! {
    /// `<timer track=>`.
    pub enum TimerTrack { Boot = "boot", Guest = "guest", Wall = "wall", Realtime = "realtime" }
}

xml_enum! {
    /// `<timer mode=>` (tsc).
    pub enum TimerMode { Auto = "auto", Native = "native", Emulate = "emulate", Paravirt = "paravirt", Smpsafe = "smpsafe" }
}

/// `<clock offset=>` with its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClockOffset {
    /// `utc`, with `adjustment='reset'`.
    Utc {
        /// `adjustment='reset'`.
        reset: bool,
    },
    /// `localtime`, with `adjustment='reset'`.
    Localtime {
        /// `adjustment='reset'`.
        reset: bool,
    },
    /// `variable`: seconds from the basis.
    Variable {
        /// `adjustment=`.
        adjustment: i64,
        /// `basis=`.
        basis: ClockBasis,
    },
    /// `timezone`.
    Timezone(String),
    /// `absolute`: fixed start time (seconds since the epoch).
    Absolute(u64),
}

/// A `<timer>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    /// `name=`.
    pub name: TimerName,
    /// `present=`.
    pub present: Option<bool>,
    /// `tickpolicy=`.
    pub tickpolicy: Option<TickPolicy>,
    /// `track=` (platform, rtc).
    pub track: Option<TimerTrack>,
    /// `frequency=` (tsc).
    pub frequency: Option<u64>,
    /// `mode=` (tsc).
    pub mode: Option<TimerMode>,
    /// `<catchup threshold= slew= limit=>`.
    pub catchup: Option<(u32, u32, u32)>,
}

/// `<clock>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    /// `offset=` and its data.
    pub offset: ClockOffset,
    /// `<timer>`s.
    pub timers: Vec<Timer>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            offset: ClockOffset::Utc { reset: false },
            timers: Vec::new(),
        }
    }
}

pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Clock, XmlError> {
    ctx.check(
        n,
        &["offset", "adjustment", "basis", "timezone", "start"],
        &["timer"],
    )?;
    ctx.check_child(
        n,
        "timer",
        &[
            "name",
            "present",
            "tickpolicy",
            "track",
            "frequency",
            "mode",
        ],
        &["catchup"],
    )?;
    for t in super::util::named(n, "timer") {
        ctx.check_child(t.node(), "catchup", &["threshold", "slew", "limit"], &[])?;
    }
    let off = n.attr("offset").unwrap_or("utc");
    let adj = n.attr("adjustment");
    let offset = match off {
        "utc" | "localtime" => {
            let basis = if off == "utc" {
                ClockBasis::Utc
            } else {
                ClockBasis::Localtime
            };
            match adj {
                None => {
                    if off == "utc" {
                        ClockOffset::Utc { reset: false }
                    } else {
                        ClockOffset::Localtime { reset: false }
                    }
                }
                Some("reset") => {
                    if off == "utc" {
                        ClockOffset::Utc { reset: true }
                    } else {
                        ClockOffset::Localtime { reset: true }
                    }
                }
                Some(a) => ClockOffset::Variable {
                    adjustment: a.parse().map_err(|_| {
                        XmlError::bad_value(
                            n.attr_path("adjustment"),
                            a,
                            "unknown clock adjustment",
                        )
                    })?,
                    basis,
                },
            }
        }
        "variable" => ClockOffset::Variable {
            adjustment: n.int_attr("adjustment")?.unwrap_or(0),
            basis: n.parse_attr("basis")?.unwrap_or(ClockBasis::Utc),
        },
        "timezone" => ClockOffset::Timezone(
            n.attr("timezone")
                .ok_or_else(|| missing(n.attr_path("timezone")))?
                .to_owned(),
        ),
        "absolute" => ClockOffset::Absolute(
            n.uint_attr("start")?
                .ok_or_else(|| missing(n.attr_path("start")))?,
        ),
        other => {
            return Err(XmlError::bad_value(
                n.attr_path("offset"),
                other,
                "unknown clock offset",
            ));
        }
    };
    let mut timers = Vec::new();
    for t in n.children("timer") {
        let t = t.node();
        let name = t.attr("name").ok_or_else(|| missing(t.attr_path("name")))?;
        let name: TimerName = name
            .parse()
            .map_err(|_| XmlError::bad_value(t.attr_path("name"), name, "unknown timer name"))?;
        let catchup = match t.child("catchup") {
            None => None,
            Some(c) => {
                let c = c.node();
                Some((
                    c.uint_attr("threshold")?.unwrap_or(0),
                    c.uint_attr("slew")?.unwrap_or(0),
                    c.uint_attr("limit")?.unwrap_or(0),
                ))
            }
        };
        timers.push(Timer {
            name,
            present: t.yes_no_attr("present")?,
            tickpolicy: t.parse_attr("tickpolicy")?,
            track: t.parse_attr("track")?,
            frequency: t.uint_attr("frequency")?,
            mode: t.parse_attr("mode")?,
            catchup,
        });
    }
    Ok(Clock { offset, timers })
}

pub(crate) fn format(c: &Clock) -> Element {
    let mut e = Element::new("clock");
    match &c.offset {
        ClockOffset::Utc { reset } | ClockOffset::Localtime { reset } => {
            e.set_attr(
                "offset",
                if matches!(c.offset, ClockOffset::Utc { .. }) {
                    "utc"
                } else {
                    "localtime"
                },
            );
            if *reset {
                e.set_attr("adjustment", "reset");
            }
        }
        ClockOffset::Variable { adjustment, basis } => {
            e.set_attr("offset", "variable");
            e.set_attr("adjustment", adjustment);
            e.set_attr("basis", basis);
        }
        ClockOffset::Timezone(tz) => {
            e.set_attr("offset", "timezone");
            e.set_attr("timezone", tz);
        }
        ClockOffset::Absolute(s) => {
            e.set_attr("offset", "absolute");
            e.set_attr("start", s);
        }
    }
    for t in &c.timers {
        let mut te = Element::new("timer")
            .with_attr("name", t.name)
            .with_opt_attr("present", t.present.map(yes_no))
            .with_opt_attr("tickpolicy", t.tickpolicy);
        if matches!(t.name, TimerName::Platform | TimerName::Rtc) {
            te.set_opt_attr("track", t.track);
        }
        if t.name == TimerName::Tsc {
            te.set_opt_attr("frequency", t.frequency.filter(|f| *f > 0));
            te.set_opt_attr("mode", t.mode);
        }
        if let Some((th, sl, li)) = t.catchup
            && (th, sl, li) != (0, 0, 0)
        {
            let nz = |v: u32| (v != 0).then_some(v);
            te.push(
                Element::new("catchup")
                    .with_opt_attr("threshold", nz(th))
                    .with_opt_attr("slew", nz(sl))
                    .with_opt_attr("limit", nz(li)),
            );
        }
        e.push(te);
    }
    e
}
