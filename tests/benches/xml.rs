//! XML model throughput: parse + format of every XML input in the
//! conformance corpus, per model (domain, network, pool, volume).
//!
//! Run with `cargo bench -p tests --bench xml`. Prints cases/s and MB/s
//! (input bytes), the median of several rounds. Without `--bench` (as under
//! `cargo test --all-targets`) it makes one pass as a smoke test.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use common::xml::{FormatFlags, ParseFlags};
use tests::conformance::{self, Corpus, models};

const ROUNDS: usize = 7;
const MIN_ROUND: Duration = Duration::from_millis(200);

type Job = Box<dyn Fn() -> Result<String, String>>;

/// One model's workload: jobs that parse and format one input each.
struct Workload {
    model: &'static str,
    jobs: Vec<Job>,
    bytes: usize,
    skipped: usize,
}

impl Workload {
    fn new(model: &'static str) -> Workload {
        Workload {
            model,
            jobs: Vec::new(),
            bytes: 0,
            skipped: 0,
        }
    }

    /// Keeps `job` if it succeeds once: the benchmark measures the inputs
    /// the model accepts.
    fn add(&mut self, input_len: usize, job: Job) {
        if job().is_ok() {
            self.bytes += input_len;
            self.jobs.push(job);
        } else {
            self.skipped += 1;
        }
    }

    fn pass(&self) {
        for job in &self.jobs {
            let _ = black_box(job());
        }
    }
}

/// `*.xml` files of a corpus folder, sorted, with their text.
fn xml_files(corpus: &Corpus, dir: &str, skip_suffix: Option<&str>) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(corpus.path(dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".xml"))
        .filter(|n| skip_suffix.is_none_or(|s| !n.ends_with(s)))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| {
            let text = corpus.read(Path::new(dir).join(&n)).ok()?;
            Some((n, text))
        })
        .collect()
}

fn domain(corpus: &Corpus) -> Workload {
    let mut w = Workload::new("domain");
    for (_, xml) in xml_files(corpus, "domain-xml2xml-qemu", Some(".x86_64-latest.xml")) {
        let len = xml.len();
        w.add(
            len,
            Box::new(move || {
                models::domain_round_trip(
                    &xml,
                    ParseFlags {
                        inactive: true,
                        ..ParseFlags::default()
                    },
                    FormatFlags {
                        inactive: true,
                        secure: true,
                        ..FormatFlags::default()
                    },
                    &models::generic_hooks(),
                )
            }),
        );
    }
    w
}

fn network(corpus: &Corpus) -> Workload {
    let mut w = Workload::new("network");
    for dir in [
        "network-xml2xml/in",
        "network-xml2conf",
        "network-xml2firewall",
    ] {
        for (_, xml) in xml_files(corpus, dir, None) {
            let len = xml.len();
            w.add(
                len,
                Box::new(move || models::network_round_trip(&xml, FormatFlags::default())),
            );
        }
    }
    w
}

fn pool(corpus: &Corpus) -> Workload {
    let mut w = Workload::new("pool");
    for dir in [
        "pool-xml2xml/in",
        "pool-xml2argv",
        "vol-xml2xml/pools",
        "vol-xml2argv/pools",
    ] {
        for (_, xml) in xml_files(corpus, dir, None) {
            let len = xml.len();
            w.add(len, Box::new(move || models::pool_round_trip(&xml)));
        }
    }
    w
}

fn vol(corpus: &Corpus) -> Workload {
    let mut w = Workload::new("vol");
    // (volume file, pool file, parse_flags column, input volume given)
    // from both volume suites' manifests.
    let mut jobs: Vec<(String, String, Option<String>, bool)> = Vec::new();
    for case in corpus.manifest("vol-xml2xml").unwrap_or_default() {
        if let Some(pool) = case.get("pool") {
            jobs.push((
                format!("vol-xml2xml/in/{}.xml", case.name),
                format!("vol-xml2xml/pools/{pool}.xml"),
                case.get("parse_flags").map(str::to_owned),
                false,
            ));
        }
    }
    for case in corpus.manifest("vol-xml2argv").unwrap_or_default() {
        let has_input = case.get("inputvol").is_some();
        for (pool, vol, cloned) in [("pool", "vol", has_input), ("inputpool", "inputvol", false)] {
            if let (Some(p), Some(v)) = (case.get(pool), case.get(vol)) {
                jobs.push((
                    format!("vol-xml2argv/vols/{v}.xml"),
                    format!("vol-xml2argv/pools/{p}.xml"),
                    case.get("parse_flags").map(str::to_owned),
                    cloned,
                ));
            }
        }
    }
    jobs.sort();
    jobs.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    for (vol_rel, pool_rel, parse_flags, cloned) in jobs {
        let (Ok(xml), Ok(pool_xml)) = (corpus.read(&vol_rel), corpus.read(&pool_rel)) else {
            w.skipped += 1;
            continue;
        };
        let (Ok(pool), Ok((mut flags, opt_capacity))) = (
            models::pool_parse(&pool_xml),
            conformance::vol_parse_flags(parse_flags.as_deref()),
        ) else {
            w.skipped += 1;
            continue;
        };
        // As the harness does: a volume cloned from an input needs no capacity.
        flags.no_capacity |= cloned;
        let len = xml.len();
        w.add(
            len,
            Box::new(move || models::vol_round_trip(&xml, &pool, flags, opt_capacity)),
        );
    }
    w
}

/// Seconds per pass: median over rounds of (round time / passes in round).
fn measure(w: &Workload) -> f64 {
    let mut per_pass: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut passes = 0u32;
            while passes == 0 || start.elapsed() < MIN_ROUND {
                w.pass();
                passes += 1;
            }
            start.elapsed().as_secs_f64() / f64::from(passes)
        })
        .collect();
    per_pass.sort_by(f64::total_cmp);
    per_pass[per_pass.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let corpus = match Corpus::locate(None) {
        Ok(c) => c,
        Err(e) => {
            println!("xml bench: skipped: {e}");
            return;
        }
    };
    let workloads = [
        domain(&corpus),
        network(&corpus),
        pool(&corpus),
        vol(&corpus),
    ];
    if !bench {
        for w in &workloads {
            w.pass();
        }
        println!("xml bench: smoke pass done (run `cargo bench -p tests --bench xml` to measure)");
        return;
    }
    println!(
        "{:<8} {:>6} {:>8} {:>10} {:>12} {:>9} {:>11}",
        "model", "cases", "skipped", "KiB", "cases/s", "MB/s", "µs/case"
    );
    for w in &workloads {
        if w.jobs.is_empty() {
            println!(
                "{:<8} {:>6} {:>8}   (nothing parses)",
                w.model, 0, w.skipped
            );
            continue;
        }
        let secs = measure(w);
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let (n, bytes) = (w.jobs.len() as f64, w.bytes as f64);
        println!(
            "{:<8} {:>6} {:>8} {:>10.1} {:>12.0} {:>9.2} {:>11.1}",
            w.model,
            w.jobs.len(),
            w.skipped,
            bytes / 1024.0,
            n / secs,
            bytes / secs / 1e6,
            secs / n * 1e6
        );
    }
    println!("(median of {ROUNDS} rounds of at least {MIN_ROUND:?}; parse + format, input bytes)");
}
