//! `DomainDef::parse_str` (GenericHooks) never panics; formatted XML is a
//! fixed point — live, inactive and validating parses, all
//! formatted with `secure` (without it, passwords are dropped but
//! `passwdValidTo` kept, as in libvirt: not a round trip by design).
#![no_main]

use common::domain::{DomainDef, GenericHooks};
use common::xml::ROUND_TRIP_MODES;
use libfuzzer_sys::fuzz_target;
use virt_fuzz::{check_round_trip, text};

fuzz_target!(|data: &[u8]| {
    let Some(xml) = text(data) else { return };
    for (mode, pf, ff) in ROUND_TRIP_MODES {
        check_round_trip(
            mode,
            xml,
            |s| DomainDef::parse_str(s, pf, &GenericHooks),
            |d| d.to_xml(ff),
        );
    }
});
