//! `conformance`: scores the models against libvirt's test data.
//!
//! ```text
//! conformance [--corpus DIR] [--emit DIR] [--category NAME]... [--no-schema] [--verbose]
//! ```
//!
//! Prints `CATEGORY: N passed, M failed` per category, `schema/CATEGORY: …`
//! per category whose output is validated with xmllint, then the total.
//! Exits 0 even when cases fail (the `conformance` test enforces floors);
//! 2 on a usage error, 1 when the corpus is missing.

use std::path::PathBuf;
use std::process::ExitCode;

use tests::conformance::{self, CATEGORIES, Corpus, Options};

const USAGE: &str = "\
usage: conformance [--corpus DIR] [--emit DIR] [--category NAME]... [--no-schema] [--verbose]

  --corpus DIR     the conformance corpus (default: ../shared/conformance from the
                   current folder, else the one next to this workspace)
  --emit DIR       write every output we produce under DIR, laid out like the corpus
  --category NAME  run only this category (repeatable)
  --no-schema      skip the xmllint schema checks
  --verbose        list failing cases with their first difference";

#[derive(Debug, Default)]
struct Args {
    corpus: Option<PathBuf>,
    emit: Option<PathBuf>,
    categories: Vec<String>,
    no_schema: bool,
    verbose: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args::default();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--corpus" => args.corpus = Some(value("--corpus")?.into()),
            "--emit" => args.emit = Some(value("--emit")?.into()),
            "--category" => args.categories.push(value("--category")?),
            "--no-schema" => args.no_schema = true,
            "--verbose" | "-v" => args.verbose = true,
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            let names: Vec<&str> = CATEGORIES.iter().map(|c| c.name()).collect();
            println!("\ncategories: {}", names.join(", "));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("conformance: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = conformance::select(&args.categories) {
        eprintln!("conformance: {e}");
        return ExitCode::from(2);
    }
    let corpus = match Corpus::locate(args.corpus.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conformance: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        emit: args.emit,
        categories: args.categories,
        schema: !args.no_schema,
        ..Options::new(corpus)
    };
    match conformance::run(&opts) {
        Ok(report) => {
            print!("{}", report.render(args.verbose));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}
