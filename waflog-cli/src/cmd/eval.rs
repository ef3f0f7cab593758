//! `waflog eval`: detection results + ground truth -> recall, precision, delay.

use waflog_core::detect::AnomalyResult;
use waflog_core::error::SchemaError;
use waflog_core::eval::episodes;
use waflog_core::simulate::TruthEpisode;
use waflog_core::transform::TransformStats;

use crate::cli::{EvalArgs, GlobalArgs};
use crate::exit::Finished;
use crate::records;
use crate::sink::file as file_sink;
use crate::source::file as file_source;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &EvalArgs) -> anyhow::Result<Finished> {
    let config = super::load_config(global)?;
    let specs = config.detector_specs();
    let truth_text = crate::files::read_capped(&args.truth, crate::files::TEXT_CAP, "truth file")?;
    let truth: Vec<TruthEpisode> = serde_json::from_slice(&truth_text).map_err(|e| {
        anyhow::anyhow!(
            "truth file {} is not a JSON array of episodes: {e}",
            args.truth.display()
        )
    })?;
    // Result lines are read as `report` reads them: the line-length limit applies,
    // and a line that is not a result is dead-lettered and counted, not fatal.
    let max_line = config.input.max_line_bytes;
    let mut stats = TransformStats::default();
    let mut dead = file_sink::create_or_stderr(args.dead_letter.as_deref())?;
    let mut results = Vec::new();
    for name in records::input_names(&args.results) {
        let input = file_source::open(&name)?;
        records::each_line(input, max_line, &mut stats, &mut dead, |line| {
            match serde_json::from_slice::<AnomalyResult>(line) {
                Ok(r) => {
                    results.push(r);
                    Ok(Ok(()))
                }
                Err(e) => Ok(Err(SchemaError::InvalidJson(format!(
                    "not a waflog detect result: {e}"
                )))),
            }
        })?;
    }
    dead.finish()?;
    if stats.dead_lettered > 0 {
        tracing::warn!(
            "{} of {} lines are not detect results{}",
            stats.dead_lettered,
            stats.records_in,
            records::dead_letter_note(&stats, args.dead_letter.as_deref())
        );
    }
    if !results.iter().any(|r| !r.is_anomaly()) {
        tracing::warn!(
            "the results hold anomalies only: the simulated span (and so false alarms per day) is estimated from them; run `waflog detect --all` for exact figures"
        );
    }
    let report = episodes::evaluate(&truth, &results, &specs, args.warmup);
    if args.json {
        let mut text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        crate::term::raw_out(text.as_bytes())?;
    } else {
        crate::term::out(&report.table())?;
    }
    Ok(super::finished(global, &stats))
}
