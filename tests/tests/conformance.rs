//! Conformance floors: runs the conformance runner in-process over the
//! corpus and fails when a category passes fewer cases than its floor in
//! `tests/conformance-floors.toml` (a category not listed there has floor 0).
//! Skips, and passes, when the corpus is not checked out.

use std::collections::BTreeMap;

use tests::conformance::{self, Corpus, Options};

const FLOORS: &str = include_str!("../conformance-floors.toml");

fn floors() -> BTreeMap<String, usize> {
    let file: toml::Table =
        toml::from_str(FLOORS).expect("tests/conformance-floors.toml is valid TOML");
    let Some(table) = file.get("floors") else {
        return BTreeMap::new();
    };
    let table = table.as_table().expect("[floors] is a table");
    table
        .iter()
        .map(|(name, v)| {
            let n = v
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or_else(|| panic!("floor of {name} is not a count: {v}"));
            (name.clone(), n)
        })
        .collect()
}

#[test]
fn conformance_floors() {
    let corpus = match Corpus::locate(None) {
        Ok(c) => c,
        Err(e) => {
            println!("conformance: skipped: {e}");
            return;
        }
    };
    let floors = floors();
    let report = conformance::run(&Options::new(corpus)).expect("all categories are known");
    print!("{}", report.render(false));

    let mut below = Vec::new();
    for t in report.tallies() {
        let floor = floors.get(&t.name).copied().unwrap_or(0);
        if t.passed < floor {
            let failures: Vec<String> = t
                .failures
                .iter()
                .map(|f| format!("    {}: {}", f.case, f.detail))
                .collect();
            below.push(format!(
                "{}: {} passed, floor {floor}\n{}",
                t.name,
                t.passed,
                failures.join("\n")
            ));
        } else if t.passed > floor {
            println!(
                "hint: {} passes {} cases, above its floor {floor}: raise the floor in tests/conformance-floors.toml",
                t.name, t.passed
            );
        }
    }
    for (name, floor) in &floors {
        if *floor > 0 && !report.tallies().any(|t| &t.name == name) {
            below.push(format!("{name}: has a floor but was not run"));
        }
    }
    if let Some(e) = &report.schema_error {
        below.push(format!("schema checks did not run: {e}"));
    }
    assert!(
        below.is_empty(),
        "conformance below its floors:\n{}",
        below.join("\n")
    );
}
