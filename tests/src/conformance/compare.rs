//! Output comparison with libvirt's `virTestCompareToFile` rules.

/// How an expected file is normalised before comparing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// XML, dnsmasq `.conf` and `.hostsfile`: backslash-newline pairs are
    /// removed from the expected text.
    Text,
    /// `.args`, `.argv` and firewall files: compared as they are.
    CommandLine,
}

/// Our output as compared: with a final newline added when missing.
pub fn normalize_actual(actual: &str) -> String {
    let mut s = actual.to_owned();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The expected file's text as compared.
pub fn normalize_expected(expected: &str, kind: FileKind) -> String {
    match kind {
        FileKind::Text => expected.replace("\\\n", ""),
        FileKind::CommandLine => expected.to_owned(),
    }
}

/// Whether `actual` matches the expected file text under the rules.
pub fn matches(expected: &str, actual: &str, kind: FileKind) -> bool {
    normalize_expected(expected, kind) == normalize_actual(actual)
}

/// The first line where two texts differ: `line N: expected `…`, got `…``.
pub fn first_difference(expected: &str, actual: &str) -> String {
    let mut exp = expected.lines();
    let mut act = actual.lines();
    let mut n = 1;
    loop {
        match (exp.next(), act.next()) {
            (Some(e), Some(a)) if e == a => n += 1,
            (None, None) => return "texts differ only in line endings".to_owned(),
            (e, a) => {
                let show = |l: Option<&str>| {
                    l.map_or("<end of file>".to_owned(), |l| {
                        format!("`{}`", l.trim_end())
                    })
                };
                return format!("line {n}: expected {}, got {}", show(e), show(a));
            }
        }
    }
}

/// libvirt's error-class prefixes (`virErrorMsg`) seen in `.err` files.
const ERROR_CLASSES: &[&str] = &[
    "unsupported configuration: ",
    "XML error: ",
    "internal error: ",
    "invalid argument: ",
    "operation failed: ",
    "operation not supported: ",
    "configuration error: ",
];

/// Whether our error message carries libvirt's text: the expected message
/// without its error-class prefix must appear in ours (which may add the
/// XML path in front, or a different class).
pub fn error_text_matches(expected: &str, ours: &str) -> bool {
    let text = expected.trim_end();
    let text = ERROR_CLASSES
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .unwrap_or(text);
    !text.is_empty() && ours.contains(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(matches("<a/>\n", "<a/>", FileKind::Text));
        assert!(matches("<a \\\nb/>\n", "<a b/>\n", FileKind::Text));
        assert!(!matches("a \\\nb\n", "a b\n", FileKind::CommandLine));
        assert_eq!(
            first_difference("a\nb\nc\n", "a\nx\n"),
            "line 2: expected `b`, got `x`"
        );
        assert!(error_text_matches(
            "XML error: bad thing\n",
            "cpu/numa: bad thing"
        ));
        assert!(!error_text_matches("XML error: bad thing\n", "other"));
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            "line 2: expected <end of file>, got `b`"
        );
    }
}
