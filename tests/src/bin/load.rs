//! `load`: many concurrent clients running a mixed workload through
//! virtproxyd for a while, with a memory-leak check of every daemon.
//!
//! ```text
//! load [--clients N] [--minutes M | --seconds S | --calls N] [--guests N]
//!      [--call-bound-s S] [--settle-ms MS] [--first-sample N] [--leak-sample N]
//!      [--sample-every N] [--tolerance PCT] [--strict]
//! ```
//!
//! `make load` builds the release daemons and runs it (64 clients, 10
//! minutes). The daemons come from `VIRT_TEST_BIN_DIR`, else from the
//! directory this binary was built into (`target/release` under `cargo run
//! --release`). Runs as root (the network part makes a bridge, dnsmasq and
//! an nftables table, all removed at the end). What the workload does and
//! checks: `tests::load`.
//!
//! Prints a line at every memory sample, then the report: calls, calls/s,
//! p50/p90/p99/max per call kind and overall, the memory table, the two
//! memory checks (`tests::load`, "Memory"). Exits 0 when no call failed,
//! none hung, every daemon exited 0 at the end and the steady-state check
//! passed (or was not reached: a run shorter than `--leak-sample` calls
//! says so); with `--strict` the baseline check (RSS after 100,000 calls
//! within 10 % of RSS after 1,000) must pass too. 1 otherwise; 2 on a usage
//! error; 130 on Ctrl-C (after cleaning up). `--minutes` counts load time:
//! the pauses before memory samples come on top.

use std::process::ExitCode;
use std::time::Duration;

use tests::load::{Options, Until, run};

const USAGE: &str = "\
usage: load [--clients N] [--minutes M | --seconds S | --calls N] [--guests N]
            [--call-bound-s S] [--settle-ms MS] [--first-sample N] [--leak-sample N]
            [--sample-every N] [--tolerance PCT] [--strict]

  --clients N        concurrent clients, one connection each (default 64)
  --minutes M        run for M minutes (default 10)
  --seconds S        run for S seconds
  --calls N          stop after N calls instead
  --guests N         running tiny guests, suspended and resumed (default 2)
  --call-bound-s S   a call without an answer for S seconds is a deadlock (default 30)
  --settle-ms MS     pause before each memory sample (default 12000)
  --first-sample N   baseline memory sample after N calls (default 1000)
  --leak-sample N    sample compared with the baseline, after N calls (default 100000)
  --sample-every N   also sample every N calls (default 250000)
  --tolerance PCT    allowed VmRSS growth, baseline to leak sample and from there
                     to every later sample (default 10)
  --strict           fail on the baseline check too, not only on the steady state";

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<(Options, bool)>, String> {
    let mut o = Options::default();
    let mut strict = false;
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        if flag == "--strict" {
            strict = true;
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let num = |v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: '{v}' is not a whole number"))
        };
        let count = |v: String| -> Result<usize, String> {
            usize::try_from(num(v)?).map_err(|_| format!("{flag}: too large"))
        };
        match flag.as_str() {
            "--clients" => {
                o.clients = count(value()?)?;
                if o.clients == 0 {
                    return Err("--clients: '0': at least one client".into());
                }
            }
            "--minutes" => o.until = Until::Time(Duration::from_secs(num(value()?)? * 60)),
            "--seconds" => o.until = Until::Time(Duration::from_secs(num(value()?)?)),
            "--calls" => o.until = Until::Calls(count(value()?)?),
            "--guests" => o.guests = count(value()?)?,
            "--call-bound-s" => o.call_bound = Duration::from_secs(num(value()?)?),
            "--settle-ms" => o.settle = Duration::from_millis(num(value()?)?),
            "--first-sample" => o.first_sample = count(value()?)?,
            "--leak-sample" => o.leak_sample = count(value()?)?,
            "--sample-every" => o.sample_every = count(value()?)?,
            "--tolerance" => {
                let v = value()?;
                let pct: f64 = v
                    .parse()
                    .ok()
                    .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| format!("--tolerance: '{v}' is not a percentage"))?;
                o.leak_tolerance = pct / 100.0;
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    if o.leak_sample <= o.first_sample {
        return Err(format!(
            "--leak-sample: '{}' must be above --first-sample ({})",
            o.leak_sample, o.first_sample
        ));
    }
    Ok(Some((o, strict)))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let (opts, strict) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let what = match opts.until {
        Until::Calls(n) => format!("{n} calls"),
        Until::Time(d) => format!("{} s", d.as_secs()),
    };
    println!(
        "load: {} clients, {what}, {} running guests, daemons from {}",
        opts.clients,
        opts.guests,
        tests::bin_dir().display()
    );
    // Ctrl-C drops the run: its guards stop the daemons and remove the
    // bridge, dnsmasq, the nftables table, QEMU and the root.
    let report = tokio::select! {
        r = run(&opts) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("load: interrupted");
            return ExitCode::from(130);
        }
    };
    print!("{}", report.render());
    let steady = report.steady_check().is_none_or(|b| b.is_empty());
    let baseline = report.baseline_check().is_none_or(|b| b.is_empty());
    let ok = report.clean() && steady && (baseline || !strict);
    if !baseline && !strict {
        println!(
            "load: the baseline check failed; not counted without --strict \
             (see the steady-state check)"
        );
    }
    println!("load: {}", if ok { "PASSED" } else { "FAILED" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
