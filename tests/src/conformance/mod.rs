//! Conformance runner: scores our XML models (and later the command-line
//! builders) against libvirt's own test data in `../shared/conformance`.
//!
//! ```text
//!   MANIFEST.tsv ──Category::cases──▶ [Case] ──Category::run──▶ CaseRun
//!        CaseRun ─ outcome (Pass / Fail{expected, actual})
//!                ─ files to emit (same relative path as the expected file)
//!                ─ formatted XML to validate with xmllint (batched per category)
//!   all CaseRuns ──▶ Report: `CATEGORY: N passed, M failed`, `schema/CATEGORY: …`
//! ```
//!
//! Each corpus folder is one [`Category`] implementation in its own module,
//! listed once in [`CATEGORIES`]; a new suite (`domain-xml2argv`,
//! `network-xml2conf`, …) is a new file plus one line in that table.
//! Categories run in parallel, one thread each; a panic inside a model is
//! caught and scored as a failure of that case.
//!
//! The corpus layout and comparison rules are described in the corpus
//! `README.md`; [`compare`] implements the rules.

pub mod compare;
mod domain;
pub mod manifest;
pub mod models;
mod network;
mod network_conf;
mod qemu_argv;
mod qemu_xml;
pub mod schema;
mod storage;
mod storage_argv;

use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::thread;

pub use compare::FileKind;
pub use manifest::Case;
pub use storage::vol_parse_flags;

/// The corpus location relative to the repository root (`make test` runs there).
pub const DEFAULT_CORPUS: &str = "../shared/conformance";

/// The corpus location relative to this crate, fixed at build time.
pub const BUILD_CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");

/// Every category the runner knows, in report order.
pub static CATEGORIES: &[&dyn Category] = &[
    &domain::Xml2XmlGeneric,
    &domain::Schema,
    &domain::XmlErrors,
    &qemu_xml::Xml2XmlQemu,
    &network::Xml2Xml,
    &network_conf::Xml2Conf,
    &network_conf::Xml2Firewall,
    &storage::PoolXml2Xml,
    &storage::VolXml2Xml,
    &qemu_argv::Xml2Argv,
    &qemu_argv::XmlErrorsStart,
    &storage_argv::PoolXml2Argv,
    &storage_argv::VolXml2Argv,
];

// === corpus ===

/// The conformance corpus folder.
#[derive(Clone, Debug)]
pub struct Corpus {
    root: PathBuf,
}

impl Corpus {
    /// Opens the corpus at `root`.
    ///
    /// # Errors
    /// When `root` is not a folder with a `README.md`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Corpus, String> {
        let root = root.into();
        if root.join("README.md").is_file() {
            Ok(Corpus { root })
        } else {
            Err(format!(
                "the conformance corpus is missing: no {}",
                root.join("README.md").display()
            ))
        }
    }

    /// Finds the corpus: `explicit` if given, else [`DEFAULT_CORPUS`]
    /// relative to the current folder, else [`BUILD_CORPUS`].
    ///
    /// # Errors
    /// A message naming the places that were tried.
    pub fn locate(explicit: Option<&Path>) -> Result<Corpus, String> {
        if let Some(p) = explicit {
            return Corpus::open(p);
        }
        Corpus::open(DEFAULT_CORPUS)
            .or_else(|_| Corpus::open(BUILD_CORPUS))
            .map_err(|_| {
                format!(
                    "the conformance corpus is missing: tried {DEFAULT_CORPUS} (from the current folder) and {BUILD_CORPUS}; \
                     check it out next to the repository or pass --corpus DIR"
                )
            })
    }

    /// The corpus root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the corpus.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Reads a corpus file as text.
    ///
    /// # Errors
    /// The path and the I/O error.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<String, String> {
        let p = self.path(rel);
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The cases listed in `<dir>/MANIFEST.tsv`.
    ///
    /// # Errors
    /// Missing or malformed manifest.
    pub fn manifest(&self, dir: &str) -> Result<Vec<Case>, String> {
        manifest::read(&self.path(dir))
    }
}

// === categories ===

/// One corpus folder: how to list its cases and run one.
pub trait Category: Sync {
    /// The folder name, also the category's name in reports.
    fn name(&self) -> &'static str;

    /// The cases to run; by default every row of the folder's manifest.
    ///
    /// # Errors
    /// Missing or malformed manifest.
    fn cases(&self, corpus: &Corpus) -> Result<Vec<Case>, String> {
        corpus.manifest(self.name())
    }

    /// Runs one case. Paths in the result are relative to the category folder.
    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun;
}

/// What the case should produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// This text (the expected file, normalised).
    Output(String),
    /// A refusal; the expected message, or a description when there is none.
    Error(String),
    /// Output that validates against this schema.
    Valid(String),
}

/// What we produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actual {
    /// Formatted output.
    Output(String),
    /// Our error message (or a panic, or an xmllint message).
    Error(String),
}

/// The result of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Matches the expectation.
    Pass,
    /// Does not.
    Fail {
        /// What libvirt's harness expects.
        expected: Expected,
        /// What we did.
        actual: Actual,
    },
}

impl Outcome {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }

    /// One line on why the case failed (empty for a pass).
    pub fn detail(&self) -> String {
        match self {
            Outcome::Pass => String::new(),
            Outcome::Fail { expected, actual } => match (expected, actual) {
                (Expected::Output(e), Actual::Output(a)) => {
                    compare::first_difference(e, &compare::normalize_actual(a))
                }
                (Expected::Output(_), Actual::Error(m)) => format!("refused: {m}"),
                (Expected::Error(e), Actual::Output(_)) => {
                    format!("accepted, expected a refusal: {}", e.trim_end())
                }
                (Expected::Error(_), Actual::Error(m)) => format!("error: {m}"),
                (Expected::Valid(s), Actual::Error(m)) => format!("output fails {s}: {m}"),
                (Expected::Valid(s), Actual::Output(_)) => format!("output fails {s}"),
            },
        }
    }
}

/// XML to validate against a schema after the case ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaCheck {
    /// The schema file under `schemas/`, e.g. `domain.rng`.
    pub schema: &'static str,
    /// Our formatted XML.
    pub xml: String,
    /// Whether the case fails when validation fails (`domain-schema`);
    /// otherwise the result only goes to the `schema/CATEGORY` line.
    pub required: bool,
}

/// Everything one case produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRun {
    /// Pass or fail.
    pub outcome: Outcome,
    /// Files for `--emit`: path relative to the category folder, content.
    pub emit: Vec<(String, String)>,
    /// Formatted XML to validate.
    pub schema: Option<SchemaCheck>,
    /// For refusals with an expected message: whether ours carries its text.
    pub message_matches: Option<bool>,
}

impl CaseRun {
    /// A run with only an outcome.
    pub fn new(outcome: Outcome) -> CaseRun {
        CaseRun {
            outcome,
            emit: Vec::new(),
            schema: None,
            message_matches: None,
        }
    }
}

/// `out/NAME.xml` → `out/NAME.err`: where our message goes for a refusal.
pub fn error_file(rel: &str) -> String {
    match rel.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => format!("{stem}.err"),
        _ => format!("{rel}.err"),
    }
}

/// A case that must produce the corpus file `expected_rel` (relative to
/// the category folder `dir`); `produced` is our output or error message.
pub fn expect_output(
    corpus: &Corpus,
    dir: &str,
    expected_rel: &str,
    produced: Result<String, String>,
    schema: Option<&'static str>,
) -> CaseRun {
    let expected = match corpus.read(Path::new(dir).join(expected_rel)) {
        Ok(t) => compare::normalize_expected(&t, FileKind::Text),
        Err(e) => format!("<unreadable expected file: {e}>\n"),
    };
    match produced {
        Ok(out) => {
            let outcome = if compare::matches(&expected, &out, FileKind::Text) {
                Outcome::Pass
            } else {
                Outcome::Fail {
                    expected: Expected::Output(expected),
                    actual: Actual::Output(out.clone()),
                }
            };
            CaseRun {
                outcome,
                schema: schema.map(|schema| SchemaCheck {
                    schema,
                    xml: out.clone(),
                    required: false,
                }),
                emit: vec![(expected_rel.to_owned(), out)],
                message_matches: None,
            }
        }
        Err(e) => CaseRun {
            emit: vec![(error_file(expected_rel), format!("{e}\n"))],
            ..CaseRun::new(Outcome::Fail {
                expected: Expected::Output(expected),
                actual: Actual::Error(e),
            })
        },
    }
}

/// A case that must be refused. `err_rel` names the file for our message
/// (the expected `.err` when the corpus has one, whose text is
/// `expected_message`); `out_rel` names the file for output we should not
/// have produced.
pub fn expect_refusal(
    err_rel: &str,
    expected_message: Option<String>,
    out_rel: &str,
    produced: Result<String, String>,
) -> CaseRun {
    match produced {
        Err(e) => CaseRun {
            message_matches: expected_message
                .as_ref()
                .map(|m| compare::error_text_matches(m, &e)),
            emit: vec![(err_rel.to_owned(), format!("{e}\n"))],
            ..CaseRun::new(Outcome::Pass)
        },
        Ok(out) => CaseRun {
            emit: vec![(out_rel.to_owned(), out.clone())],
            message_matches: expected_message.as_ref().map(|_| false),
            ..CaseRun::new(Outcome::Fail {
                expected: Expected::Error(
                    expected_message.unwrap_or_else(|| "a parse error".to_owned()),
                ),
                actual: Actual::Output(out),
            })
        },
    }
}

// === running ===

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The corpus.
    pub corpus: Corpus,
    /// Where to write our outputs (same layout as the corpus), if anywhere.
    pub emit: Option<PathBuf>,
    /// Category names to run; empty means all.
    pub categories: Vec<String>,
    /// Whether to validate formatted XML with xmllint.
    pub schema: bool,
}

impl Options {
    /// All categories with schema checks, no emitting.
    pub fn new(corpus: Corpus) -> Options {
        Options {
            corpus,
            emit: None,
            categories: Vec::new(),
            schema: true,
        }
    }
}

/// A failing case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Case name.
    pub case: String,
    /// Why, in one line.
    pub detail: String,
}

/// Counts for one report line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// `CATEGORY` or `schema/CATEGORY`.
    pub name: String,
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// The failing cases, in manifest order.
    pub failures: Vec<Failure>,
    /// For refusal cases with expected messages: how many of ours carry
    /// libvirt's text (see [`compare::error_text_matches`]).
    pub messages_matched: Option<usize>,
    /// Set when the category could not run at all (e.g. no manifest).
    pub error: Option<String>,
}

impl Tally {
    fn new(name: String) -> Tally {
        Tally {
            name,
            ..Tally::default()
        }
    }

    fn add(&mut self, case: &str, outcome: &Outcome) {
        if outcome.passed() {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(Failure {
                case: case.to_owned(),
                detail: outcome.detail(),
            });
        }
    }

    /// `NAME: N passed, M failed` (plus notes).
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}: {} passed, {} failed",
            self.name, self.passed, self.failed
        );
        if let Some(m) = self.messages_matched {
            let _ = write!(s, " ({m} error texts match libvirt's)");
        }
        if let Some(e) = &self.error {
            let _ = write!(s, " (could not run: {e})");
        }
        s
    }
}

/// The result of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// One tally per category, in [`CATEGORIES`] order.
    pub categories: Vec<Tally>,
    /// One `schema/CATEGORY` tally per category that formats XML.
    pub schema: Vec<Tally>,
    /// Set when schema checks were asked for but could not run.
    pub schema_error: Option<String>,
    /// Files that could not be written under `--emit`.
    pub emit_errors: Vec<String>,
}

impl Report {
    /// Every tally, categories first, then schema lines.
    pub fn tallies(&self) -> impl Iterator<Item = &Tally> {
        self.categories.iter().chain(&self.schema)
    }

    /// Passed cases over all categories (schema lines not included).
    pub fn passed(&self) -> usize {
        self.categories.iter().map(|t| t.passed).sum()
    }

    /// Failed cases over all categories (schema lines not included).
    pub fn failed(&self) -> usize {
        self.categories.iter().map(|t| t.failed).sum()
    }

    /// The printed report: one line per tally, then the total; with
    /// `verbose`, each failing case and its first difference under its line.
    pub fn render(&self, verbose: bool) -> String {
        let mut s = String::new();
        for t in self.tallies() {
            let _ = writeln!(s, "{}", t.line());
            if verbose {
                for f in &t.failures {
                    let _ = writeln!(s, "    {}: {}", f.case, f.detail);
                }
            }
        }
        if let Some(e) = &self.schema_error {
            let _ = writeln!(s, "schema: not checked: {e}");
        }
        for e in &self.emit_errors {
            let _ = writeln!(s, "emit: {e}");
        }
        let _ = writeln!(
            s,
            "total: {} passed, {} failed",
            self.passed(),
            self.failed()
        );
        s
    }
}

/// Looks up categories by name; empty `names` selects all.
///
/// # Errors
/// An unknown name, with the list of known ones.
pub fn select(names: &[String]) -> Result<Vec<&'static dyn Category>, String> {
    if names.is_empty() {
        return Ok(CATEGORIES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            CATEGORIES
                .iter()
                .copied()
                .find(|c| c.name() == n)
                .ok_or_else(|| {
                    let known: Vec<&str> = CATEGORIES.iter().map(|c| c.name()).collect();
                    format!("unknown category '{n}'; known: {}", known.join(", "))
                })
        })
        .collect()
}

/// Runs the selected categories.
///
/// # Errors
/// Only for an unknown category name; failing cases are in the report.
pub fn run(opts: &Options) -> Result<Report, String> {
    let cats = select(&opts.categories)?;
    quiet_runner_panics();
    let corpus = &opts.corpus;

    // One thread per category: the models are independent and the
    // debug-build parse time dominates.
    let results: Vec<CategoryRuns> = thread::scope(|s| {
        let handles: Vec<_> = cats
            .iter()
            .map(|&cat| {
                thread::Builder::new()
                    .name(format!("conformance-{}", cat.name()))
                    .spawn_scoped(s, move || (cat, run_category(corpus, cat)))
                    .expect("spawning a runner thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("runner threads catch case panics"))
            .collect()
    });

    let mut report = Report::default();
    if let Some(dir) = &opts.emit {
        for (cat, runs) in &results {
            for (_, run) in runs.iter().flatten() {
                for (rel, text) in &run.emit {
                    let p = dir.join(cat.name()).join(rel);
                    let written = p
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(&p, text));
                    if let Err(e) = written {
                        report.emit_errors.push(format!("{}: {e}", p.display()));
                    }
                }
            }
        }
    }

    let mut results = results;
    if opts.schema {
        match schema::check_xmllint() {
            Ok(()) => report.schema = validate_all(corpus, &mut results),
            Err(e) => report.schema_error = Some(e),
        }
    }

    for (cat, runs) in results {
        let mut t = Tally::new(cat.name().to_owned());
        match runs {
            Ok(runs) => {
                for (case, run) in &runs {
                    t.add(&case.name, &run.outcome);
                    if let Some(m) = run.message_matches {
                        *t.messages_matched.get_or_insert(0) += usize::from(m);
                    }
                }
            }
            Err(e) => t.error = Some(e),
        }
        report.categories.push(t);
    }
    Ok(report)
}

/// A category with its cases and runs, or why it could not run.
type CategoryRuns = (&'static dyn Category, Result<Vec<(Case, CaseRun)>, String>);

fn run_category(corpus: &Corpus, cat: &dyn Category) -> Result<Vec<(Case, CaseRun)>, String> {
    let cases = cat.cases(corpus)?;
    Ok(cases
        .into_iter()
        .map(|case| {
            let run = panic::catch_unwind(AssertUnwindSafe(|| cat.run(corpus, &case)))
                .unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string payload".to_owned());
                    CaseRun::new(Outcome::Fail {
                        expected: Expected::Output(String::new()),
                        actual: Actual::Error(format!("panicked: {msg}")),
                    })
                });
            (case, run)
        })
        .collect())
}

/// Writes every formatted XML to a temporary folder and validates it, one
/// xmllint process per category (all running at once). Required checks
/// turn a failing validation into a failing case.
fn validate_all(corpus: &Corpus, results: &mut [CategoryRuns]) -> Vec<Tally> {
    let tmp = match tempfile::Builder::new().prefix("conformance-").tempdir() {
        Ok(t) => t,
        Err(e) => {
            return vec![Tally {
                error: Some(format!("temporary folder: {e}")),
                ..Tally::new("schema".to_owned())
            }];
        }
    };
    let mut batches = Vec::new();
    for (ci, (cat, runs)) in results.iter().enumerate() {
        let Ok(runs) = runs else { continue };
        // xmllint needs one schema per call; a category uses one schema.
        let mut by_schema: Vec<(&'static str, Vec<usize>, Vec<PathBuf>)> = Vec::new();
        for (ri, (case, run)) in runs.iter().enumerate() {
            let Some(check) = &run.schema else { continue };
            let dir = tmp.path().join(cat.name());
            let file = dir.join(format!("{ri:04}-{}.xml", sanitize(&case.name)));
            let written =
                std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &check.xml));
            if written.is_err() {
                continue;
            }
            match by_schema.iter_mut().find(|(s, _, _)| *s == check.schema) {
                Some((_, idx, files)) => {
                    idx.push(ri);
                    files.push(file);
                }
                None => by_schema.push((check.schema, vec![ri], vec![file])),
            }
        }
        for (schema_name, idx, files) in by_schema {
            let rng = corpus.path("schemas").join(schema_name);
            batches.push((ci, idx, schema::Batch::spawn(&rng, files)));
        }
    }

    let mut tallies: Vec<(usize, Tally)> = Vec::new();
    for (ci, idx, batch) in batches {
        let (cat, runs) = &mut results[ci];
        let Ok(runs) = runs else { continue };
        let pos = match tallies.iter().position(|(c, _)| *c == ci) {
            Some(p) => p,
            None => {
                tallies.push((ci, Tally::new(format!("schema/{}", cat.name()))));
                tallies.len() - 1
            }
        };
        for (ri, verdict) in idx.into_iter().zip(batch.wait()) {
            let (case, run) = &mut runs[ri];
            let check = run.schema.as_ref().expect("batched runs have a check");
            let outcome = match verdict {
                Ok(()) => Outcome::Pass,
                Err(m) => Outcome::Fail {
                    expected: Expected::Valid(check.schema.to_owned()),
                    actual: Actual::Error(m),
                },
            };
            if check.required && !outcome.passed() && run.outcome.passed() {
                run.outcome = outcome.clone();
            }
            tallies[pos].1.add(&case.name, &outcome);
        }
    }
    tallies.sort_by_key(|(ci, _)| *ci);
    tallies.into_iter().map(|(_, t)| t).collect()
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Keeps panics of models under test off stderr: the runner reports them
/// as failing cases. Panics on other threads go to the previous hook.
fn quiet_runner_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let ours = thread::current()
                .name()
                .is_some_and(|n| n.starts_with("conformance-"));
            if !ours {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_file_names() {
        assert_eq!(error_file("out/a.xml"), "out/a.err");
        assert_eq!(error_file("a.x86_64-latest.xml"), "a.x86_64-latest.err");
        assert_eq!(error_file("noext"), "noext.err");
    }

    #[test]
    fn categories_are_unique() {
        let mut names: Vec<&str> = CATEGORIES.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(select(&["nope".to_owned()]).is_err());
    }
}
