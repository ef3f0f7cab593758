//! `waflog eval`: detection results + ground truth -> recall, precision, delay.

use std::io::BufRead;

use anyhow::Context;
use waflog_core::detect::AnomalyResult;
use waflog_core::eval::episodes;
use waflog_core::simulate::TruthEpisode;

use super::records;
use crate::cli::{EvalArgs, GlobalArgs};
use crate::exit::Finished;
use crate::source::file as file_source;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &EvalArgs) -> anyhow::Result<Finished> {
    let config = super::load_config(global)?;
    let specs = config.detector_specs();
    let truth_text = std::fs::read_to_string(&args.truth)
        .with_context(|| format!("cannot read truth file {}", args.truth.display()))?;
    let truth: Vec<TruthEpisode> = serde_json::from_str(&truth_text).with_context(|| {
        format!(
            "truth file {} is not a JSON array of episodes",
            args.truth.display()
        )
    })?;
    let mut results = Vec::new();
    for name in records::input_names(&args.results) {
        let input = file_source::open(&name)?;
        for (i, line) in std::io::BufReader::new(input.reader).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {name}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let r: AnomalyResult = serde_json::from_str(&line)
                .with_context(|| format!("{name}:{}: not a waflog detect result", i + 1))?;
            results.push(r);
        }
    }
    if !results.iter().any(|r| !r.is_anomaly()) {
        tracing::warn!(
            "the results hold anomalies only: the simulated span (and so false alarms per day) is estimated from them; run `waflog detect --all` for exact figures"
        );
    }
    let report = episodes::evaluate(&truth, &results, &specs, args.warmup);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(Finished::Ok)
}
