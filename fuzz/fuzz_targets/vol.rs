//! `VolDef::parse_str` in a fixed `dir` pool never panics; formatted XML is
//! a fixed point — plain and validating parses.
#![no_main]

use std::sync::LazyLock;

use common::storage::{PoolDef, VolDef, VolParseFlags};
use common::xml::ParseFlags;
use libfuzzer_sys::fuzz_target;
use virt_fuzz::{check_round_trip, text};

static POOL: LazyLock<PoolDef> = LazyLock::new(|| {
    PoolDef::parse_str(
        "<pool type='dir'><name>virtimages</name>\
         <uuid>70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2</uuid>\
         <target><path>/var/lib/libvirt/images</path></target></pool>",
        ParseFlags::default(),
    )
    .expect("the fixed dir pool parses")
});

fuzz_target!(|data: &[u8]| {
    let Some(xml) = text(data) else { return };
    let pool = &*POOL;
    for (mode, validate) in [("plain", false), ("validate", true)] {
        let flags = VolParseFlags {
            validate,
            ..VolParseFlags::default()
        };
        check_round_trip(
            mode,
            xml,
            |s| VolDef::parse_str(s, pool, flags),
            |d| d.to_xml(pool),
        );
    }
});
