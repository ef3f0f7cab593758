//! Two-fold cross-validation of the default metric detector's tunable parameters on the
//! Numenta Anomaly Benchmark (NAB).
//!
//! Run with `cargo run --release -p waflog-examples --example nab_cv -- [--nab DIR]`
//! (or as part of `bash benches/nab.sh`).
//!
//! The default metric detector ([`AlgorithmSpec::metric_default`], `type = "cad"`) has
//! three parameters chosen on data: the `rest_period`, the range `margin` and the
//! `history` a re-binned model is rebuilt from. This program runs every combination
//! of a grid around them over the 58 NAB series (each row
//! through `AlgorithmSpec::build(1)`, as `waflog detect --input-format csv` does),
//! then, for each fold, chooses the combination with the best standard-profile score on
//! the odd-numbered files (sorted by path) and reports its score on the even-numbered
//! ones, and the other way round. A large gap between the in-fold and out-of-fold
//! scores would mean the parameters fit these files rather than the method; the
//! out-of-fold mean estimates what the method scores on series it was not tuned on.
//! Scores are waflog's NAB scorer (`waflog_core::eval::nab`), which agrees with NAB's
//! official one (`bash benches/nab.sh --agreement`).
//!
//! Standard output is deterministic.

use std::path::PathBuf;
use std::process::ExitCode;

use waflog_core::detect::{AlgorithmSpec, IntervalFeatures};
use waflog_core::eval::nab::{self, CostProfile, Series};
use waflog_examples::nab::{self as files, FileSet};

/// The grid: the rest period (rows), the range margin (share of the spread) and the
/// history (rows).
const RESTS: [u32; 3] = [10, 20, 30];
const MARGINS: [f64; 5] = [0.0, 0.03, 0.05, 0.1, 0.2];
const HISTORIES: [usize; 3] = [1000, 2000, 4000];

/// The default metric detector with other values of its three tuned parameters.
fn candidate(rest: u32, margin: f64, hist: usize) -> AlgorithmSpec {
    let AlgorithmSpec::Cad {
        threshold,
        max_contexts,
        max_proposers,
        ..
    } = AlgorithmSpec::metric_default()
    else {
        unreachable!("the metric default is cad")
    };
    AlgorithmSpec::Cad {
        threshold,
        rest_period: rest,
        margin,
        history: hist,
        max_contexts,
        max_proposers,
    }
}

/// Every row's `anomaly_score` from a fresh model of `spec`.
fn run(series: &Series, spec: &AlgorithmSpec) -> Vec<f64> {
    let mut model = spec.build(1);
    series
        .values
        .iter()
        .zip(&series.timestamps)
        .map(|(v, &t)| {
            model
                .process(&IntervalFeatures {
                    start_ms: t,
                    end_ms: t,
                    values: std::slice::from_ref(v),
                    categories: &[],
                })
                .anomaly_score
        })
        .collect()
}

/// The standard-profile NAB score of the files of `set`.
fn score(
    corpus: &[Series],
    scores: &[Vec<f64>],
    set: FileSet,
    p: &CostProfile,
) -> Result<f64, nab::NabError> {
    let (c, s): (Vec<Series>, Vec<Vec<f64>>) = corpus
        .iter()
        .zip(scores)
        .enumerate()
        .filter(|(i, _)| set.contains(*i))
        .map(|(_, (c, s))| (c.clone(), s.clone()))
        .unzip();
    Ok(nab::normalized_scores(&c, &s, p)?.normalized)
}

fn main() -> ExitCode {
    let mut root = PathBuf::from(files::DEFAULT_DIR);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--nab", Some(dir)) => root = PathBuf::from(dir),
            _ => {
                eprintln!("usage: nab_cv [--nab DIR]");
                return ExitCode::from(2);
            }
        }
    }
    match cross_validate(&root) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nab_cv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cross_validate(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // Sorted by path, so odd and even are FileSet's.
    let mut corpus = files::load_corpus(root)?;
    corpus.sort_by(|a, b| a.name.cmp(&b.name));
    let profiles = files::load_profiles(root)?;
    let standard = profiles
        .get("standard")
        .ok_or("profile `standard` missing")?;
    let mut rows = Vec::new();
    for &rest in &RESTS {
        for &margin in &MARGINS {
            for &hist in &HISTORIES {
                let spec = candidate(rest, margin, hist);
                let scores: Vec<Vec<f64>> = corpus.iter().map(|s| run(s, &spec)).collect();
                let odd = score(&corpus, &scores, FileSet::Odd, standard)?;
                let even = score(&corpus, &scores, FileSet::Even, standard)?;
                let all = score(&corpus, &scores, FileSet::All, standard)?;
                rows.push(((rest, margin, hist), odd, even, all));
            }
        }
    }
    println!("rest margin history    odd   even    all  (NAB standard, waflog's scorer)");
    for ((r, m, h), odd, even, all) in &rows {
        println!("{r:4} {m:6} {h:7} {odd:6.2} {even:6.2} {all:6.2}");
    }
    let best = |by: &dyn Fn(&(f64, f64)) -> f64| {
        rows.iter()
            .max_by(|a, b| by(&(a.1, a.2)).total_cmp(&by(&(b.1, b.2))))
            .map(|r| (r.0, r.1, r.2))
    };
    let (Some((p_odd, in_odd, out_even)), Some((p_even, out_odd, in_even))) =
        (best(&|r| r.0), best(&|r| r.1))
    else {
        return Err("empty grid".into());
    };
    let default = candidate(20, 0.05, 2000) == AlgorithmSpec::metric_default();
    println!();
    println!(
        "fold 1: chosen on odd  {p_odd:?}: odd {in_odd:.2} (in fold), even {out_even:.2} (held out)"
    );
    println!(
        "fold 2: chosen on even {p_even:?}: even {in_even:.2} (in fold), odd {out_odd:.2} (held out)"
    );
    println!(
        "cross-validated standard score (mean of the held-out halves): {:.2}; in-fold mean {:.2}",
        (out_even + out_odd) / 2.0,
        (in_odd + in_even) / 2.0
    );
    println!("(the default, rest 20 margin 0.05 history 2000, is in the grid: {default})");
    Ok(())
}
