//! RelaxNG validation with `xmllint`, one process per schema and batch.
//!
//! `xmllint --noout --relaxng SCHEMA F1 F2 …` reports each file on stderr
//! as `F validates` or `F fails to validate`, preceded by `F:LINE: …`
//! messages; those lines are mapped back to the files.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Whether `xmllint` can be run.
///
/// # Errors
/// A message saying xmllint is missing and how to get it.
pub fn check_xmllint() -> Result<(), String> {
    match Command::new("xmllint")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(
            "xmllint not found: schema checks need it (Debian package libxml2-utils, installed by `make setup-host`)"
                .to_owned(),
        ),
        Err(e) => Err(format!("xmllint: {e}")),
    }
}

/// A running `xmllint` over a batch of files.
#[derive(Debug)]
pub struct Batch {
    files: Vec<PathBuf>,
    child: Option<Child>,
    spawn_error: Option<String>,
}

impl Batch {
    /// Starts validating `files` against `schema`.
    pub fn spawn(schema: &Path, files: Vec<PathBuf>) -> Batch {
        if files.is_empty() {
            return Batch {
                files,
                child: None,
                spawn_error: None,
            };
        }
        let spawned = Command::new("xmllint")
            .arg("--noout")
            .arg("--relaxng")
            .arg(schema)
            .args(&files)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(child) => Batch {
                files,
                child: Some(child),
                spawn_error: None,
            },
            Err(e) => Batch {
                files,
                child: None,
                spawn_error: Some(format!("xmllint: {e}")),
            },
        }
    }

    /// Waits for xmllint; one result per file, in order: `Err` holds the
    /// first validity message.
    pub fn wait(self) -> Vec<Result<(), String>> {
        let stderr = match (self.child, self.spawn_error) {
            (_, Some(e)) => return vec![Err(e); self.files.len()],
            (None, None) => return Vec::new(),
            (Some(child), None) => match child.wait_with_output() {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => return vec![Err(format!("xmllint: {e}")); self.files.len()],
            },
        };
        map_output(&self.files, &stderr)
    }
}

/// Maps xmllint's stderr back to the files.
fn map_output(files: &[PathBuf], stderr: &str) -> Vec<Result<(), String>> {
    let keys: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut valid = vec![false; files.len()];
    let mut messages: Vec<Option<String>> = vec![None; files.len()];
    let mut general = Vec::new();
    for line in stderr.lines() {
        if let Some(f) = line.strip_suffix(" validates")
            && let Some(&i) = index.get(f)
        {
            valid[i] = true;
        } else if let Some(f) = line.strip_suffix(" fails to validate")
            && index.contains_key(f)
        {
        } else if let Some((f, rest)) = line.split_once(':')
            && let Some(&i) = index.get(f)
        {
            // `FILE:LINE: element x: Relax-NG validity error : …`
            let rest = rest.trim();
            let msg = match rest.split_once(':') {
                Some((n, m)) if n.parse::<u32>().is_ok() => format!("line {n}: {}", m.trim()),
                _ => rest.to_owned(),
            };
            messages[i].get_or_insert(msg);
        } else if !line.trim().is_empty() {
            general.push(line.trim());
        }
    }
    valid
        .into_iter()
        .zip(messages)
        .map(|(ok, msg)| {
            if ok {
                Ok(())
            } else {
                Err(msg.unwrap_or_else(|| match general.first() {
                    Some(g) => (*g).to_owned(),
                    None => "xmllint did not report the file as valid".to_owned(),
                }))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_to_files() {
        let files = vec![PathBuf::from("/t/a.xml"), PathBuf::from("/t/b.xml")];
        let out = "/t/a.xml validates\n/t/b.xml:3: element x: Relax-NG validity error : Element domain has extra content: x\n/t/b.xml fails to validate\n";
        let r = map_output(&files, out);
        assert_eq!(r[0], Ok(()));
        assert_eq!(
            r[1],
            Err(
                "line 3: element x: Relax-NG validity error : Element domain has extra content: x"
                    .to_owned()
            )
        );
    }
}
