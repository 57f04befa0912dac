//! `NetworkDef::parse_str` never panics; formatted XML is a fixed point —
//! live, inactive and validating parses (formatted with `secure`).
#![no_main]

use common::network::NetworkDef;
use common::xml::{FormatFlags, ParseFlags};
use libfuzzer_sys::fuzz_target;
use virt_fuzz::{check_round_trip, text};

const MODES: [(&str, ParseFlags, FormatFlags); 3] = [
    (
        "live",
        ParseFlags {
            inactive: false,
            validate: false,
            allow_post_parse_fail: false,
        },
        FormatFlags {
            inactive: false,
            secure: true,
            migratable: false,
        },
    ),
    (
        "inactive",
        ParseFlags {
            inactive: true,
            validate: false,
            allow_post_parse_fail: false,
        },
        FormatFlags {
            inactive: true,
            secure: true,
            migratable: false,
        },
    ),
    (
        "validate",
        ParseFlags {
            inactive: false,
            validate: true,
            allow_post_parse_fail: false,
        },
        FormatFlags {
            inactive: false,
            secure: true,
            migratable: false,
        },
    ),
];

fuzz_target!(|data: &[u8]| {
    let Some(xml) = text(data) else { return };
    for (mode, pf, ff) in MODES {
        check_round_trip(
            mode,
            xml,
            |s| NetworkDef::parse_str(s, pf),
            |d| d.to_xml(ff),
        );
    }
});
