//! `waflog eval`: detection results + ground truth -> recall, precision, delay.

use waflog_core::alert::Incident;
use waflog_core::alert::incident::IncidentDocument;
use waflog_core::detect::AnomalyResult;
use waflog_core::error::SchemaError;
use waflog_core::eval::episodes;
use waflog_core::pipeline::FeedbackDocument;
use waflog_core::simulate::TruthEpisode;
use waflog_core::transform::TransformStats;

use crate::aws::AwsContext;
use crate::cli::{EvalArgs, GlobalArgs};
use crate::exit::Finished;
use crate::records;
use crate::sink::file as file_sink;

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
    let mut docs = Documents::default();
    let mut aws = AwsContext::new(global.aws_settings());
    for input in crate::source::documents(&args.results, &mut aws, max_line, "detect results")? {
        records::each_line(input?, max_line, &mut stats, &mut dead, |line| {
            Ok(docs.take(line))
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
    let Documents {
        results,
        mut incidents,
        feedback,
    } = docs;
    if !results.iter().any(|r| !r.is_anomaly()) {
        tracing::warn!(
            "the results hold anomalies only: the simulated span (and so false alarms per day) is estimated from them; run `waflog detect --all` for exact figures"
        );
    }
    let mut report = episodes::evaluate(&truth, &results, &specs, args.warmup);
    episodes::apply_feedback(&mut incidents, &feedback);
    report.add_alerts(&truth, &incidents);
    if args.json {
        let mut text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        crate::term::raw_out(text.as_bytes())?;
    } else {
        crate::term::out(&report.table())?;
    }
    Ok(super::finished(global, &stats))
}

/// What `detect` wrote: results, incident documents and feedback documents.
#[derive(Default)]
struct Documents {
    results: Vec<AnomalyResult>,
    incidents: Vec<Incident>,
    feedback: Vec<FeedbackDocument>,
}

impl Documents {
    /// Takes one line, or says why it is none of them (a dead letter).
    fn take(&mut self, line: &[u8]) -> Result<(), SchemaError> {
        let bad = |what: &str, e: serde_json::Error| {
            SchemaError::InvalidJson(format!("not a waflog {what}: {e}"))
        };
        if let Some(doc) = FeedbackDocument::from_line(line) {
            self.feedback
                .push(doc.map_err(|e| bad("feedback document", e))?);
        } else if let Some(doc) = IncidentDocument::from_line(line) {
            self.incidents
                .push(doc.map_err(|e| bad("incident document", e))?);
        } else {
            let r = serde_json::from_slice::<AnomalyResult>(line)
                .map_err(|e| bad("detect result", e))?;
            self.results.push(r);
        }
        Ok(())
    }
}
