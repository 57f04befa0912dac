//! Shared check for the fuzz targets: the formatted XML is a fixed point.

use std::fmt::Display;

/// Runs the round-trip property for one input and one flag set:
/// `parse(input)`; if that fails, nothing to check. Otherwise
/// `out1 = format(def)`, `parse(out1)` must succeed and
/// `format(parse(out1)) == out1`. Panics (a fuzzer finding) otherwise.
pub fn check_round_trip<D, E: Display>(
    mode: &str,
    input: &str,
    parse: impl Fn(&str) -> Result<D, E>,
    format: impl Fn(&D) -> String,
) {
    let Ok(def) = parse(input) else { return };
    let out1 = format(&def);
    let def2 = match parse(&out1) {
        Ok(d) => d,
        Err(e) => panic!(
            "[{mode}] formatted output does not parse again: {e}\n--- input:\n{input}\n--- output:\n{out1}"
        ),
    };
    let out2 = format(&def2);
    if out1 != out2 {
        panic!(
            "[{mode}] not a fixed point\n--- input:\n{input}\n--- first output:\n{out1}\n--- second output:\n{out2}"
        );
    }
}

/// The input as UTF-8 text (the parsers take `&str`), or `None`.
///
/// Inputs with XML-forbidden control characters are fuzzed like any other:
/// `xml::parse` refuses them, as libxml2 does
/// (`fuzz/regressions/network/control-char-duplicate-interface.xml`).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
