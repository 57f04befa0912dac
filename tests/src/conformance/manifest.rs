//! `MANIFEST.tsv`: one header line of column names, then one row per case.

use std::collections::BTreeMap;
use std::path::Path;

/// One case: its name and the other manifest columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The case name (first column), used for every file of the case.
    pub name: String,
    fields: BTreeMap<String, String>,
}

impl Case {
    /// A case with no settings (for tests and hand-made lists).
    pub fn new(name: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            fields: BTreeMap::new(),
        }
    }

    /// The value of column `col`; `None` when the column is absent or `-`.
    pub fn get(&self, col: &str) -> Option<&str> {
        self.fields
            .get(col)
            .map(String::as_str)
            .filter(|v| *v != "-" && !v.is_empty())
    }

    /// Like [`Case::get`], for a column whose absence is a corpus error.
    ///
    /// # Errors
    /// A message naming the case and column.
    pub fn require(&self, col: &str) -> Result<&str, String> {
        self.get(col)
            .ok_or_else(|| format!("{}: manifest column '{col}' is empty", self.name))
    }
}

/// Parses a manifest's text into cases.
///
/// # Errors
/// When the header has no `name` first column or a row has the wrong number
/// of columns.
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or("empty manifest")?.split('\t').collect();
    if header.first() != Some(&"name") {
        return Err(format!("first manifest column is not 'name': {header:?}"));
    }
    lines
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != header.len() {
                return Err(format!(
                    "manifest row has {} columns, header has {}: {line}",
                    cols.len(),
                    header.len()
                ));
            }
            let fields = header[1..]
                .iter()
                .zip(&cols[1..])
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Ok(Case {
                name: cols[0].to_owned(),
                fields,
            })
        })
        .collect()
}

/// Reads and parses `dir/MANIFEST.tsv`.
///
/// # Errors
/// I/O errors and malformed manifests, with the path.
pub fn read(dir: &Path) -> Result<Vec<Case>, String> {
    let path = dir.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_dashes() {
        let cases = parse("name\texpect\tparse\na\tsame\tlive\nb\tparse-error\t-\n").unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].name, "a");
        assert_eq!(cases[0].get("expect"), Some("same"));
        assert_eq!(cases[1].get("parse"), None);
        assert_eq!(cases[1].get("nope"), None);
        assert!(parse("name\tx\na\n").is_err());
        assert!(parse("x\tname\n").is_err());
    }
}
