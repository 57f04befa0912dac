//! The public libvirt corpus: every `network-xml2xml` case must match
//! byte for byte (libvirt's comparison rules), every `network-xml2conf`
//! input must parse, and every output must validate against the schema
//! when `xmllint` is installed.

use std::path::{Path, PathBuf};

use crate::xml::{FormatFlags, ParseFlags};

use super::NetworkDef;

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ));
    if p.join("network-xml2xml/MANIFEST.tsv").exists() {
        Some(p)
    } else {
        eprintln!(
            "note: conformance corpus not found at {}, skipping",
            p.display()
        );
        None
    }
}

/// The first differing lines of two texts.
fn diff(expected: &str, got: &str) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..e.len().max(g.len()) {
        let (a, b) = (e.get(i).copied(), g.get(i).copied());
        if a != b {
            out.push_str(&format!(
                "  line {}:\n    expected: {}\n    got:      {}\n",
                i + 1,
                a.unwrap_or("<none>"),
                b.unwrap_or("<none>")
            ));
            shown += 1;
            if shown >= 5 {
                break;
            }
        }
    }
    out
}

/// Whether `xml` validates against the network schema (`None`: no xmllint).
fn xmllint_ok(schemas: &Path, xml: &str, name: &str) -> Option<Result<(), String>> {
    let dir = tempfile::tempdir().ok()?;
    let file = dir.path().join(format!("{name}.xml"));
    std::fs::write(&file, xml).ok()?;
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(schemas.join("network.rng"))
        .arg(&file)
        .output()
        .ok()?;
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[test]
fn network_xml2xml() {
    let Some(root) = corpus() else {
        return;
    };
    let dir = root.join("network-xml2xml");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let (mut total, mut passed) = (0, 0);
    let mut failures = String::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, expect, format] = cols[..] else {
            continue;
        };
        total += 1;
        let input = std::fs::read_to_string(dir.join(format!("in/{name}.xml"))).expect("input");
        let flags = FormatFlags {
            inactive: format == "inactive",
            ..FormatFlags::default()
        };
        let res = NetworkDef::parse_str(&input, ParseFlags::default());
        match (expect, res) {
            ("parse-error", Err(_)) => passed += 1,
            ("parse-error", Ok(_)) => {
                failures.push_str(&format!("{name}: parsed, expected an error\n"))
            }
            (_, Err(e)) => failures.push_str(&format!("{name}: parse error: {e}\n")),
            (_, Ok(def)) => {
                let mut got = def.to_xml(flags);
                if !got.ends_with('\n') {
                    got.push('\n');
                }
                let expected = std::fs::read_to_string(dir.join(format!("out/{name}.xml")))
                    .expect("output")
                    .replace("\\\n", "");
                if got != expected {
                    failures.push_str(&format!(
                        "{name}: output differs\n{}",
                        diff(&expected, &got)
                    ));
                    continue;
                }
                if let Some(Err(e)) = xmllint_ok(&root.join("schemas"), &got, name) {
                    failures.push_str(&format!("{name}: output does not validate: {e}\n"));
                    continue;
                }
                // Formatting is a fixed point.
                let again =
                    NetworkDef::parse_str(&got, ParseFlags::default()).map(|d| d.to_xml(flags));
                if again.as_deref() != Ok(got.as_str()) {
                    failures.push_str(&format!("{name}: second round trip differs\n"));
                    continue;
                }
                passed += 1;
            }
        }
    }
    println!("network-xml2xml: {passed}/{total} passed");
    assert!(
        failures.is_empty(),
        "{passed}/{total} passed; failures:\n{failures}"
    );
}

#[test]
fn network_xml2conf_inputs_parse() {
    let Some(root) = corpus() else {
        return;
    };
    let dir = root.join("network-xml2conf");
    let mut n = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    entries.sort();
    for p in entries {
        let text = std::fs::read_to_string(&p).expect("read");
        let def = NetworkDef::parse_str(&text, ParseFlags::default())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let out = def.to_xml(FormatFlags::default());
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(Err(e)) = xmllint_ok(&root.join("schemas"), &out, &name) {
            panic!("{name}: output does not validate: {e}");
        }
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn corpus_inputs_parse_with_validate_flag() {
    let Some(root) = corpus() else {
        return;
    };
    let flags = ParseFlags {
        validate: true,
        ..ParseFlags::default()
    };
    for sub in [
        "network-xml2xml/in",
        "network-xml2xml/out",
        "network-xml2conf",
    ] {
        let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "xml") {
                continue;
            }
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == "passthrough-duplicate" || name == "routed-network-no-dns-extra-elements" {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read");
            if let Err(e) = NetworkDef::parse_str(&text, flags) {
                panic!("{}: {e}", p.display());
            }
        }
    }
}

/// Mutated corpus inputs (attribute values swapped for awkward ones, lines
/// dropped) never panic, and whatever parses formats to a fixed point.
#[test]
fn mutated_inputs_round_trip_to_a_fixed_point() {
    let Some(root) = corpus() else {
        return;
    };
    let mut seeds = Vec::new();
    for sub in ["network-xml2xml/in", "network-xml2conf"] {
        let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|x| x == "xml")
                && let Ok(t) = std::fs::read_to_string(&p)
            {
                seeds.push(t);
            }
        }
    }
    assert!(!seeds.is_empty());
    let values = [
        "",
        "0",
        "-1",
        "yes",
        "no",
        "on",
        "off",
        "default",
        "65536",
        "4294967296",
        "::",
        "::1",
        "1.2.3.4",
        "255.255.255.255",
        "0x10",
        "a b",
        "ipv6",
        "nat",
        "bridge",
        "hostdev",
        "none",
        "01:00:00:00:00:00",
        "99999999999999999999",
        "10.0.0.0",
        "fe80::",
        "seconds",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1_000_003).unwrap_or(0)
    };
    for _ in 0..3000 {
        let mut t = seeds[next() % seeds.len()].clone();
        for _ in 0..=next() % 3 {
            let quotes: Vec<usize> = t.match_indices(['\'', '"']).map(|(i, _)| i).collect();
            if quotes.len() < 2 {
                break;
            }
            let k = next() % (quotes.len() / 2) * 2;
            let (a, b) = (quotes[k], quotes[k + 1]);
            t.replace_range(a + 1..b, values[next() % values.len()]);
        }
        if next() % 4 == 0 {
            let lines: Vec<&str> = t.lines().collect();
            let drop = next() % lines.len().max(1);
            t = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
                .join("\n");
        }
        let Ok(def) = NetworkDef::parse_str(&t, ParseFlags::default()) else {
            continue;
        };
        let once = def.to_xml(FormatFlags::default());
        let twice = NetworkDef::parse_str(&once, ParseFlags::default())
            .map(|d| d.to_xml(FormatFlags::default()))
            .unwrap_or_else(|e| panic!("output does not parse: {e}\n{once}"));
        assert_eq!(once, twice, "not a fixed point for input:\n{t}");
    }
}
