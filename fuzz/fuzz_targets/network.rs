//! `NetworkDef::parse_str` never panics; formatted XML is a fixed point —
//! live, inactive and validating parses (formatted with `secure`).
#![no_main]

use common::network::NetworkDef;
use common::xml::ROUND_TRIP_MODES;
use libfuzzer_sys::fuzz_target;
use virt_fuzz::{check_round_trip, text};

fuzz_target!(|data: &[u8]| {
    let Some(xml) = text(data) else { return };
    for (mode, pf, ff) in ROUND_TRIP_MODES {
        check_round_trip(
            mode,
            xml,
            |s| NetworkDef::parse_str(s, pf),
            |d| d.to_xml(ff),
        );
    }
});
