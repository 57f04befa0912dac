//! `PoolDef::parse_str` never panics; formatted XML is a fixed point —
//! plain and validating parses.
#![no_main]

use common::storage::PoolDef;
use common::xml::ParseFlags;
use libfuzzer_sys::fuzz_target;
use virt_fuzz::{check_round_trip, text};

fuzz_target!(|data: &[u8]| {
    let Some(xml) = text(data) else { return };
    for (mode, validate) in [("plain", false), ("validate", true)] {
        let flags = ParseFlags {
            validate,
            ..ParseFlags::default()
        };
        check_round_trip(mode, xml, |s| PoolDef::parse_str(s, flags), PoolDef::to_xml);
    }
});
