//! The output format the benchmarks share: one tab-separated line per
//! metric on stdout (`metric median p90 n unit`; p90 `-` where it has no
//! meaning), `#` comment lines, progress on stderr. docs/benchmarks.md
//! describes it; the scripts under scripts/ join these lines into tables.

use std::io::Write as _;
use std::time::Duration;

/// Median (mean of the two middle values for an even count) and p90
/// (nearest rank), as the Python halves compute them.
///
/// # Panics
/// `samples` is empty.
#[must_use]
pub fn stats(samples: &[f64]) -> (f64, f64) {
    let (median, p90, _) = stats_with_p99(samples);
    (median, p90)
}

/// [`stats`] and p99 (nearest rank).
///
/// # Panics
/// `samples` is empty.
#[must_use]
pub fn stats_with_p99(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    assert!(n > 0, "no samples");
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        f64::midpoint(s[n / 2 - 1], s[n / 2])
    };
    // Nearest rank: the smallest value with at least pct % of the samples
    // at or below it.
    let rank = |pct: usize| (n * pct).div_ceil(100).max(1);
    (median, s[rank(90) - 1], s[rank(99) - 1])
}

/// `d` in milliseconds.
#[must_use]
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Prints one metric line; returns the median.
pub fn report(metric: &str, samples: &[f64], unit: &str) -> f64 {
    let (median, p90) = stats(samples);
    println!("{metric}\t{median:.4}\t{p90:.4}\t{}\t{unit}", samples.len());
    eprintln!(
        "  {metric:<24} median {median:>10.4} {unit}  p90 {p90:>10.4}  n {}",
        samples.len()
    );
    let _ = std::io::stdout().flush();
    median
}

/// Prints a single-value metric (no p90).
pub fn report_one(metric: &str, value: f64, n: usize, unit: &str) {
    println!("{metric}\t{value:.4}\t-\t{n}\t{unit}");
    eprintln!("  {metric:<24} {value:>10.4} {unit}  (n {n})");
    let _ = std::io::stdout().flush();
}

/// Prints a `#` comment line.
pub fn note(text: &str) {
    println!("# {text}");
    eprintln!("  # {text}");
    let _ = std::io::stdout().flush();
}

/// CPU time of process `pid` so far (all its live threads), in ms: the
/// sum of the first field of `/proc/PID/task/*/schedstat` (ns). 0 when
/// the process is gone.
#[must_use]
pub fn cpu_ms(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    #[allow(clippy::cast_precision_loss)] // far below 2^52 ns
    let ms = ns as f64 / 1e6;
    ms
}
