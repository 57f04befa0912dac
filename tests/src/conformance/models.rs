//! Thin adapters from corpus text to the `common` models and back, shared
//! by the categories and the `xml` benchmark. Errors become their message.

use common::domain::{DomainDef, DomainDefHooks, TestHooks};
use common::network::NetworkDef;
pub use common::storage::VolParseFlags;
use common::storage::{PoolDef, VolDef};
use common::xml::{FormatFlags, ParseFlags};

/// The driver-neutral hooks as libvirt's test harness sees them:
/// [`GenericHooks`](common::domain::GenericHooks) with an x86_64 host and
/// the mocked random source, so generated UUIDs and MACs match.
pub fn generic_hooks() -> TestHooks {
    TestHooks
}

/// Domain XML → model → XML.
///
/// # Errors
/// The parse error's message.
pub fn domain_round_trip(
    xml: &str,
    parse: ParseFlags,
    format: FormatFlags,
    hooks: &dyn DomainDefHooks,
) -> Result<String, String> {
    let def = DomainDef::parse_str(xml, parse, hooks).map_err(|e| e.to_string())?;
    Ok(def.to_xml(format))
}

/// Network XML → model → XML.
///
/// # Errors
/// The parse error's message.
pub fn network_round_trip(xml: &str, format: FormatFlags) -> Result<String, String> {
    let def = NetworkDef::parse_str(xml, ParseFlags::default()).map_err(|e| e.to_string())?;
    Ok(def.to_xml(format))
}

/// Parses a pool definition.
///
/// # Errors
/// The parse error's message.
pub fn pool_parse(xml: &str) -> Result<PoolDef, String> {
    PoolDef::parse_str(xml, ParseFlags::default()).map_err(|e| e.to_string())
}

/// Pool XML → model → XML.
///
/// # Errors
/// The parse error's message.
pub fn pool_round_trip(xml: &str) -> Result<String, String> {
    Ok(pool_parse(xml)?.to_xml())
}

/// Volume XML (in the context of `pool`) → model → XML. `opt_capacity`:
/// capacity may be omitted when the volume has a backing store (libvirt's
/// `VIR_VOL_XML_PARSE_OPT_CAPACITY`).
///
/// # Errors
/// The parse error's message.
pub fn vol_round_trip(
    xml: &str,
    pool: &PoolDef,
    flags: VolParseFlags,
    opt_capacity: bool,
) -> Result<String, String> {
    let vol = VolDef::parse_str_opt_capacity(xml, pool, flags, opt_capacity)
        .map_err(|e| e.to_string())?;
    Ok(vol.to_xml(pool))
}
