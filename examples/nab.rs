//! Scores waflog's default time-series detector on the Numenta Anomaly Benchmark (NAB).
//!
//! Run with
//! `cargo run --release -p waflog-examples --example nab -- [--nab DIR] [--json] [--mapping M]`
//! (or `bash benches/nab.sh [ARGS]`).
//!
//! For each of NAB's 58 labelled series, every row (one value) is fed, as it is and in
//! file order, to a fresh detector built from [`AlgorithmSpec::default()`] as a
//! one-feature interval. Each row gets a NAB anomaly score derived from the detector's
//! output (see [`Mapping`]); NAB's scoring ([`nab::normalized_scores`]) then chooses the
//! best threshold per profile over the whole corpus and normalises the result (null
//! detector 0, perfect detector 100).
//!
//! The data is read from `--nab DIR`, by default `../shared/nab` next to the workspace.
//! Standard output is deterministic (same bytes on every run); the wall times go to
//! standard error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use waflog_core::detect::{AlgorithmSpec, IntervalFeatures};
use waflog_core::eval::nab::{self, CorpusScore, CostProfile};

/// The data directory when `--nab` is not given: `<workspace>/../shared/nab`.
const DEFAULT_NAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/nab");

/// NAB's three profiles, in the scoreboard's column order.
const PROFILES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

/// Published scoreboard lines (standard / reward-low-FP / reward-low-FN), from
/// `shared/nab/README.md` (the NAB README), for reference.
const PUBLISHED: [(&str, [f64; 3]); 4] = [
    ("Numenta HTM", [70.5, 62.6, 75.2]),
    ("Random Cut Forest", [51.7, 38.4, 59.7]),
    ("Windowed Gaussian", [39.6, 20.9, 47.4]),
    ("Null", [0.0, 0.0, 0.0]),
];

/// How a detector output becomes the NAB anomaly score of a row.
///
/// NAB sweeps the threshold over every distinct score, so what matters is the *order*
/// of the rows' scores (across all series: one threshold serves the whole corpus). Any
/// strictly increasing function of the raw score therefore gives exactly the same NAB
/// result; `ratio` and `raw` are two such functions and must agree.
///
/// Every mapping scores 0 while the detector is not yet grading (confidence 0, the
/// first `min_intervals` rows); these rows are in NAB's probationary period anyway.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mapping {
    /// `s / (s + threshold)`, with `s` the raw `anomaly_score` (|z|) and `threshold`
    /// the detector's own (5 by default): in [0, 1) as NAB expects, 0.5 exactly at the
    /// detector's threshold, and strictly increasing in `s`. The default.
    ///
    /// Not the `anomaly_grade`: the grade is 0 for every row below the detector's
    /// threshold, so all those rows would tie and NAB's sweep could not rank them; it
    /// could then only choose thresholds at or above the detector's own.
    Ratio,
    /// The raw `anomaly_score` itself (unbounded; NAB's "detect nothing" becomes an
    /// infinite threshold). Same ranking as `Ratio`, so the same NAB scores.
    Raw,
    /// The detector's `anomaly_grade` (`1 - threshold / s` above the threshold, 0
    /// below): monotone but not strictly, it collapses every row below the threshold to
    /// 0. For comparison only.
    Grade,
}

impl Mapping {
    fn parse(name: &str) -> Option<Mapping> {
        match name {
            "ratio" => Some(Mapping::Ratio),
            "raw" => Some(Mapping::Raw),
            "grade" => Some(Mapping::Grade),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mapping::Ratio => "ratio",
            Mapping::Raw => "raw",
            Mapping::Grade => "grade",
        }
    }

    fn formula(self) -> &'static str {
        match self {
            Mapping::Ratio => "s/(s+threshold), s = anomaly_score",
            Mapping::Raw => "s = anomaly_score",
            Mapping::Grade => "anomaly_grade",
        }
    }

    /// The NAB score of a row with raw score `s` and grade `grade`, for a detector
    /// threshold `t`.
    fn apply(self, s: f64, grade: f64, t: f64) -> f64 {
        match self {
            Mapping::Ratio => {
                if s + t > 0.0 {
                    s / (s + t)
                } else {
                    0.0
                }
            }
            Mapping::Raw => s,
            Mapping::Grade => grade,
        }
    }

    /// The raw score (|z|) a NAB threshold `m` in this mapping's units corresponds to.
    fn to_raw(self, m: f64, t: f64) -> f64 {
        match self {
            Mapping::Ratio if m < 1.0 => t * m / (1.0 - m),
            Mapping::Ratio => f64::INFINITY,
            Mapping::Raw => m,
            // A grade threshold of 0 admits every row (even the ungraded ones).
            Mapping::Grade if m <= 0.0 => 0.0,
            Mapping::Grade if m < 1.0 => t / (1.0 - m),
            Mapping::Grade => f64::INFINITY,
        }
    }
}

#[derive(Debug)]
struct Args {
    nab: PathBuf,
    json: bool,
    mapping: Mapping,
}

const USAGE: &str = "usage: nab [--nab DIR] [--json] [--mapping ratio|raw|grade]

Scores waflog's default detector (ewma) on the Numenta Anomaly Benchmark.
  --nab DIR        NAB data directory (default: <workspace>/../shared/nab)
  --json           print one JSON object instead of a table
  --mapping M      detector output -> NAB score: ratio (default, s/(s+threshold)),
                   raw (s itself; same ranking, same scores) or grade";

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        nab: PathBuf::from(DEFAULT_NAB),
        json: false,
        mapping: Mapping::Ratio,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => args.json = true,
            "--nab" => {
                args.nab = it.next().ok_or("--nab needs a directory")?.into();
            }
            "--mapping" => {
                let name = it.next().ok_or("--mapping needs a value")?;
                args.mapping = Mapping::parse(&name)
                    .ok_or_else(|| format!("unknown mapping `{name}` (ratio, raw, grade)"))?;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(args))
}

/// The NAB anomaly score of every row of `series`, from a fresh default detector.
fn score_series(series: &nab::Series, spec: &AlgorithmSpec, mapping: Mapping) -> Vec<f64> {
    let mut detector = spec.build(1);
    let ts = &series.timestamps;
    series
        .values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            // The interval ends at the next row (the detector does not use the times;
            // a few NAB files go back in time, hence the max).
            let start_ms = ts[i];
            let end_ms = ts.get(i + 1).map_or(start_ms, |&next| next.max(start_ms));
            let out = detector.process(&IntervalFeatures {
                categories: &[],
                start_ms,
                end_ms,
                values: std::slice::from_ref(value),
            });
            if out.confidence > 0.0 {
                mapping.apply(out.anomaly_score, out.anomaly_grade, out.threshold)
            } else {
                0.0
            }
        })
        .collect()
}

/// Detection counts over the corpus at a threshold (probationary rows excluded).
#[derive(Debug, Default)]
struct Counts {
    detected_windows: usize,
    scored_windows: usize,
    fp_rows: usize,
}

fn counts(corpus: &[nab::Series], scores: &[Vec<f64>], p: &CostProfile, threshold: f64) -> Counts {
    let mut c = Counts::default();
    for (series, scores) in corpus.iter().zip(scores) {
        let detections: Vec<bool> = scores.iter().map(|&s| s >= threshold).collect();
        let r = nab::score_series(series, &detections, p);
        c.detected_windows += r.detected_windows;
        c.scored_windows += r.detected_windows + r.missed_windows;
        c.fp_rows += r.fp;
    }
    c
}

fn detector_threshold(spec: &AlgorithmSpec) -> f64 {
    match *spec {
        AlgorithmSpec::Ewma { threshold, .. } | AlgorithmSpec::Categorical { threshold, .. } => {
            threshold
        }
    }
}

fn describe(spec: &AlgorithmSpec) -> String {
    match *spec {
        AlgorithmSpec::Ewma {
            half_life,
            threshold,
            min_intervals,
        } => format!(
            "ewma (half_life {half_life}, threshold {threshold}, min_intervals {min_intervals})"
        ),
        AlgorithmSpec::Categorical { .. } => "categorical (not a time-series detector)".into(),
    }
}

fn fmt_threshold(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "none".to_string()
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let corpus = nab::load_corpus(&args.nab)?;
    let profiles = nab::load_profiles(&args.nab.join("config").join("profiles.json"))?;
    let profiles: Vec<(&str, CostProfile)> = PROFILES
        .iter()
        .map(|&name| {
            profiles
                .get(name)
                .map(|p| (name, *p))
                .ok_or_else(|| format!("profile `{name}` missing from config/profiles.json"))
        })
        .collect::<Result<_, _>>()?;
    let t_load = t0.elapsed();

    let spec = AlgorithmSpec::default();
    let t = detector_threshold(&spec);
    let t1 = Instant::now();
    let scores: Vec<Vec<f64>> = corpus
        .iter()
        .map(|s| score_series(s, &spec, args.mapping))
        .collect();
    let t_detect = t1.elapsed();

    let t2 = Instant::now();
    let results: Vec<(&str, CorpusScore, Counts)> = profiles
        .iter()
        .map(|(name, p)| {
            let r = nab::normalized_scores(&corpus, &scores, p);
            (*name, r, counts(&corpus, &scores, p, r.threshold))
        })
        .collect();
    let t_score = t2.elapsed();

    let rows: usize = corpus.iter().map(|s| s.values.len()).sum();
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();

    if args.json {
        let profiles_json: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(name, r, c)| {
                // An infinite threshold ("detect nothing") is written as null.
                let as_z = args.mapping.to_raw(r.threshold, t);
                let v = serde_json::json!({
                    "normalized": r.normalized,
                    "threshold": r.threshold.is_finite().then_some(r.threshold),
                    "threshold_anomaly_score": as_z.is_finite().then_some(as_z),
                    "raw": r.raw,
                    "null_raw": r.null_raw,
                    "perfect_raw": r.perfect_raw,
                    "detected_windows": c.detected_windows,
                    "scored_windows": c.scored_windows,
                    "false_positive_rows": c.fp_rows,
                });
                (name.to_string(), v)
            })
            .collect();
        let published: serde_json::Map<String, serde_json::Value> = PUBLISHED
            .iter()
            .map(|(name, s)| (name.to_string(), serde_json::json!(s)))
            .collect();
        let out = serde_json::json!({
            "detector": describe(&spec),
            "mapping": args.mapping.name(),
            "series": corpus.len(),
            "rows": rows,
            "windows": windows,
            "profiles": profiles_json,
            "published": published,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "NAB: {} series, {rows} rows, {windows} windows ({})",
            corpus.len(),
            args.nab.display()
        );
        println!("detector: {}", describe(&spec));
        println!(
            "NAB score of a row: {} ({})",
            args.mapping.formula(),
            args.mapping.name()
        );
        println!();
        println!(
            "{:<20} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
            "profile",
            "NAB score",
            "threshold",
            "(as |z|)",
            "raw",
            "null",
            "perfect",
            "windows",
            "FP rows"
        );
        for (name, r, c) in &results {
            println!(
                "{:<20} {:>9.1} {:>10} {:>9} {:>9.2} {:>8.2} {:>8.2} {:>8} {:>7}",
                name,
                r.normalized,
                fmt_threshold(r.threshold),
                fmt_threshold(args.mapping.to_raw(r.threshold, t)),
                r.raw,
                r.null_raw,
                r.perfect_raw,
                format!("{}/{}", c.detected_windows, c.scored_windows),
                c.fp_rows
            );
        }
        println!();
        println!(
            "{:<20} {:>9} {:>9} {:>9}",
            "scoreboard", "standard", "low FP", "low FN"
        );
        let ours: Vec<f64> = results.iter().map(|(_, r, _)| r.normalized).collect();
        let mut lines: Vec<(String, Vec<f64>)> = PUBLISHED
            .iter()
            .map(|(name, s)| ((*name).to_string(), s.to_vec()))
            .collect();
        lines.push(("waflog ewma (this)".to_string(), ours));
        lines.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]));
        for (name, s) in &lines {
            println!("{:<20} {:>9.1} {:>9.1} {:>9.1}", name, s[0], s[1], s[2]);
        }
    }
    eprintln!(
        "wall time: {:.3} s (load {:.3} s, detector {:.3} s, NAB scoring {:.3} s)",
        t0.elapsed().as_secs_f64(),
        t_load.as_secs_f64(),
        t_detect.as_secs_f64(),
        t_score.as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nab: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nab: {e}");
            ExitCode::FAILURE
        }
    }
}
