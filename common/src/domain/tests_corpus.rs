//! The libvirt conformance corpus (`shared/conformance`), when present:
//! generic round trips, schema examples, real-world QEMU inputs and the
//! refusal cases. Each check prints its count and asserts a floor.

use std::path::{Path, PathBuf};

use crate::xml::{FormatFlags, ParseFlags};

use super::{DomainDef, TestHooks};

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("note: {} not found, corpus checks skipped", p.display());
        None
    }
}

fn manifest(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn parse(xml: &str, inactive: bool) -> Result<DomainDef, crate::xml::XmlError> {
    DomainDef::parse_str(
        xml,
        ParseFlags {
            inactive,
            ..ParseFlags::default()
        },
        &TestHooks,
    )
}

/// Runs one generic case; `Err` describes the mismatch.
fn generic_case(dir: &Path, row: &[String]) -> Result<(), String> {
    let name = &row[0];
    let expect = row.get(1).map(String::as_str).unwrap_or("same");
    let inactive = row.get(2).map(String::as_str) == Some("inactive");
    let input = std::fs::read_to_string(dir.join("in").join(format!("{name}.xml")))
        .map_err(|e| e.to_string())?;
    let res = parse(&input, inactive);
    if expect == "parse-error" {
        return match res {
            Err(_) => Ok(()),
            Ok(_) => Err("parsed, expected an error".to_owned()),
        };
    }
    let def = res.map_err(|e| format!("parse failed: {e}"))?;
    let out_path = dir.join("out").join(format!("{name}.xml"));
    let expected = std::fs::read_to_string(&out_path).unwrap_or(input);
    let got = def.to_xml(FormatFlags {
        inactive,
        secure: true,
        migratable: false,
    });
    if got == expected {
        Ok(())
    } else {
        let diff: Vec<String> = got
            .lines()
            .zip(expected.lines())
            .filter(|(a, b)| a != b)
            .take(3)
            .map(|(a, b)| format!("got `{a}` want `{b}`"))
            .collect();
        Err(format!(
            "output differs ({} vs {} lines): {}",
            got.lines().count(),
            expected.lines().count(),
            diff.join("; ")
        ))
    }
}

#[test]
fn generic_xml2xml() {
    let Some(root) = corpus() else { return };
    let dir = root.join("domain-xml2xml-generic");
    let rows = manifest(&dir);
    let mut pass = 0;
    for row in &rows {
        match generic_case(&dir, row) {
            Ok(()) => pass += 1,
            Err(e) => eprintln!("generic FAIL {}: {e}", row[0]),
        }
    }
    eprintln!("domain-xml2xml-generic: {pass}/{} pass", rows.len());
    assert!(pass >= 39, "generic cases regressed: {pass}/{}", rows.len());
}

#[test]
fn schema_examples_parse() {
    let Some(root) = corpus() else { return };
    let dir = root.join("domain-schema");
    let mut ok = 0;
    let mut total = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for p in entries {
        if p.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        total += 1;
        let xml = std::fs::read_to_string(&p).unwrap_or_default();
        match parse(&xml, false) {
            Ok(d) => {
                // And the output parses again to the same definition.
                let again = d.to_xml(FormatFlags::default());
                match parse(&again, false) {
                    Ok(d2) if d2.to_xml(FormatFlags::default()) == again => ok += 1,
                    Ok(_) => eprintln!("schema {}: output not stable", p.display()),
                    Err(e) => eprintln!("schema {}: reparse failed: {e}", p.display()),
                }
            }
            Err(e) => eprintln!("schema FAIL {}: {e}", p.display()),
        }
    }
    eprintln!("domain-schema: {ok}/{total} parse and round-trip");
    assert_eq!(ok, total);
}

#[test]
fn qemu_inputs_parse() {
    let Some(root) = corpus() else { return };
    let dir = root.join("domain-xml2xml-qemu");
    let rows = manifest(&dir);
    let mut failures = 0;
    let mut unstable = 0;
    for row in &rows {
        let name = &row[0];
        let xml = match std::fs::read_to_string(dir.join(format!("{name}.xml"))) {
            Ok(x) => x,
            Err(_) => continue,
        };
        match parse(&xml, true) {
            Ok(d) => {
                let out = d.to_xml(FormatFlags {
                    inactive: true,
                    secure: true,
                    migratable: false,
                });
                match parse(&out, true) {
                    Ok(d2) => {
                        let out2 = d2.to_xml(FormatFlags {
                            inactive: true,
                            secure: true,
                            migratable: false,
                        });
                        if out2 != out {
                            unstable += 1;
                            eprintln!("qemu input {name}: format not idempotent");
                        }
                    }
                    Err(e) => {
                        unstable += 1;
                        eprintln!("qemu input {name}: our output does not parse: {e}");
                    }
                }
            }
            Err(e) => {
                failures += 1;
                eprintln!("qemu input FAIL {name}: {e}");
            }
        }
    }
    eprintln!(
        "domain-xml2xml-qemu inputs: {}/{} parse, {unstable} unstable round trips",
        rows.len() - failures,
        rows.len()
    );
    assert_eq!(failures, 0);
    assert_eq!(unstable, 0);
}

#[test]
fn error_inputs_refused() {
    let Some(root) = corpus() else { return };
    let dir = root.join("domain-xml-errors");
    let rows = manifest(&dir);
    let mut refused = 0;
    let mut total = 0;
    for row in rows
        .iter()
        .filter(|r| r.get(1).map(String::as_str) == Some("parse"))
    {
        total += 1;
        let xml = std::fs::read_to_string(dir.join(format!("{}.xml", row[0]))).unwrap_or_default();
        match parse(&xml, true) {
            Err(_) => refused += 1,
            Ok(_) => eprintln!("error case accepted (needs driver checks?): {}", row[0]),
        }
    }
    eprintln!("domain-xml-errors parse stage: {refused}/{total} refused");
    assert!(refused >= 50, "refusals regressed: {refused}");
}

#[test]
#[ignore = "diagnostic"]
fn diag_errors() {
    let Some(root) = corpus() else { return };
    let dir = root.join("domain-xml-errors");
    for row in manifest(&dir)
        .iter()
        .filter(|r| r.get(1).map(String::as_str) == Some("parse"))
    {
        let xml = std::fs::read_to_string(dir.join(format!("{}.xml", row[0]))).unwrap_or_default();
        let want = std::fs::read_to_string(dir.join(format!("{}.x86_64-latest.err", row[0])))
            .unwrap_or_default();
        if let Err(e) = parse(&xml, true) {
            eprintln!("{}\n   got:  {e}\n   want: {}", row[0], want.trim());
        }
    }
}

#[test]
#[ignore = "diagnostic"]
fn diag_qemu_outputs() {
    let Some(root) = corpus() else { return };
    let dir = root.join("domain-xml2xml-qemu");
    let out = std::env::var("DIAG_OUT").unwrap_or_else(|_| "/tmp/domout".to_owned());
    let _ = std::fs::create_dir_all(&out);
    for row in manifest(&dir) {
        let xml = std::fs::read_to_string(dir.join(format!("{}.xml", row[0]))).unwrap_or_default();
        if let Ok(d) = parse(&xml, true) {
            let s = d.to_xml(FormatFlags {
                inactive: true,
                secure: true,
                migratable: false,
            });
            let _ = std::fs::write(format!("{out}/{}.xml", row[0]), s);
        }
    }
}

/// Mutated corpus inputs must give a result or an error, never a panic.
#[test]
fn mutated_inputs_do_not_panic() {
    let Some(root) = corpus() else { return };
    let mut inputs = Vec::new();
    for sub in [
        "domain-xml2xml-generic/in",
        "domain-schema",
        "domain-xml-errors",
    ] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd.filter_map(Result::ok) {
                if e.path().extension().is_some_and(|x| x == "xml") {
                    inputs.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
    }
    let replacements = ["99999999999999999999999", "-1", "", "a-b,^"];
    let mut runs = 0;
    for xml in &inputs {
        // Replace each quoted attribute value in turn (bounded per file).
        let quotes: Vec<usize> = xml.match_indices('\'').map(|(i, _)| i).collect();
        for pair in quotes.chunks(2).take(24) {
            let [a, b] = pair else { continue };
            for r in replacements {
                let mutated = format!("{}{}{}", &xml[..=*a], r, &xml[*b..]);
                for inactive in [false, true] {
                    if let Ok(d) = parse(&mutated, inactive) {
                        let _ = d.to_xml(FormatFlags::default());
                    }
                    runs += 1;
                }
            }
        }
        // And text content of elements.
        for (i, _) in xml.match_indices('>').take(30) {
            if let Some(end) = xml[i..].find('<') {
                let mutated = format!(
                    "{}{}{}",
                    &xml[..=i],
                    "18446744073709551616",
                    &xml[i + end..]
                );
                let _ = parse(&mutated, false);
                runs += 1;
            }
        }
    }
    eprintln!("mutation runs without panic: {runs}");
}

/// With the validate flag (schema-like checks), valid inputs still parse.
#[test]
fn valid_inputs_pass_the_validate_flag() {
    let Some(root) = corpus() else { return };
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in [
        "domain-xml2xml-qemu",
        "domain-schema",
        "domain-xml2xml-generic/in",
    ] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            files.extend(rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| {
                p.extension().is_some_and(|x| x == "xml")
                    && !p.to_string_lossy().contains("x86_64-latest")
            }));
        }
    }
    let generic = root.join("domain-xml2xml-generic");
    let bad: Vec<String> = manifest(&generic)
        .into_iter()
        .filter(|r| r.get(1).map(String::as_str) == Some("parse-error"))
        .map(|r| format!("{}.xml", r[0]))
        .collect();
    let mut refused = 0;
    for p in &files {
        if bad.iter().any(|b| p.ends_with(b)) {
            continue;
        }
        let xml = std::fs::read_to_string(p).unwrap_or_default();
        let flags = ParseFlags {
            validate: true,
            inactive: true,
            ..ParseFlags::default()
        };
        if let Err(e) = DomainDef::parse_str(&xml, flags, &TestHooks) {
            refused += 1;
            eprintln!("validate flag refuses {}: {e}", p.display());
        }
    }
    eprintln!(
        "validate flag: {} of {} valid inputs refused",
        refused,
        files.len()
    );
    assert_eq!(refused, 0);
}
