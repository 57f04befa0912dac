//! `soak`: the kill-anywhere soak (see `tests::soak`).
//!
//! ```text
//! soak [--rounds N] [--seed S] [--keep-going] [--max-delay-ms MS] [--quiet]
//! ```
//!
//! Prints the seed, one line per round, every violation with the
//! daemons' log tails, and the figures. Exits 0 when no invariant broke,
//! 1 when one did, 2 on a usage or set-up error. Runs as root (bridges,
//! taps, dnsmasq) with the daemons of the same build profile beside it.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use tests::soak::{self, Options};

const USAGE: &str = "\
usage: soak [--rounds N] [--seed S] [--keep-going] [--max-delay-ms MS] [--quiet]

  --rounds N         rounds to run (default 1000)
  --seed S           seed of every random choice (default: from the clock)
  --keep-going       count violations by kind and go on instead of stopping
  --max-delay-ms MS  the kill comes 0..=MS ms after the call (default 300)
  --quiet            no line per round";

fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut o = Options {
        rounds: 1000,
        seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
            .unwrap_or(1),
        ..Options::default()
    };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut num = |name: &str| -> Result<u64, String> {
            let v = inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))?;
            v.parse::<u64>()
                .map_err(|_| format!("{name}: '{v}' is not a number"))
        };
        match flag.as_str() {
            "--rounds" => o.rounds = num("--rounds")?,
            "--seed" => o.seed = num("--seed")?,
            "--max-delay-ms" => o.max_delay_ms = num("--max-delay-ms")?,
            "--keep-going" => o.keep_going = true,
            "--quiet" => o.verbose = false,
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("soak: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(soak::run(&opts)) {
        Ok(figs) => {
            println!("{figs}");
            if figs.violation_count() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}
