//! `waflog report`: results of a past run -> one self-contained HTML dashboard.

use std::path::Path;

use anyhow::Context;
use waflog_core::alert::AlertBook;
use waflog_core::dashboard::Board;
use waflog_core::detect::AnomalyResult;
use waflog_core::error::SchemaError;
use waflog_core::transform::TransformStats;

use crate::aws::AwsContext;
use crate::cli::{GlobalArgs, ReportArgs};
use crate::exit::Finished;
use crate::records;
use crate::sink::file as file_sink;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &ReportArgs) -> anyhow::Result<Finished> {
    let config = super::load_config(global)?;
    let max_line = config.input.max_line_bytes;
    let names = records::input_names(&args.results);
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| format!("waflog report: {}", names.join(", ")));
    let mut board = Board::report(&title);
    // The state file first: a bad one fails before the results are read.
    if let Some(path) = &args.state {
        board.set_alerts(&alerts_of(path)?);
    }
    let mut stats = TransformStats::default();
    let mut dead = file_sink::create_or_stderr(args.dead_letter.as_deref())?;
    let mut seen = Seen::default();
    let mut aws = AwsContext::new(global.aws_settings());
    for input in crate::source::documents(&names, &mut aws, max_line, "detect results")? {
        records::each_line(input?, max_line, &mut stats, &mut dead, |line| {
            // Incident documents (`detect --alerts`) are not charted: the alerts
            // of `--state` show what was notified.
            if let Some(doc) = waflog_core::alert::incident::IncidentDocument::from_line(line) {
                return Ok(doc.map(|_| ()).map_err(|e| {
                    SchemaError::InvalidJson(format!("not a waflog incident document: {e}"))
                }));
            }
            Ok(seen.result(line).map(|r| board.push(&r)))
        })?;
    }
    dead.finish()?;
    if stats.records_out == 0 {
        anyhow::bail!("no result documents in {}", names.join(", "));
    }
    if !seen.all {
        tracing::warn!(
            "the results hold anomalies only: the charts show only anomalous intervals; write them with `waflog detect --all` for whole series"
        );
    }
    let (events, rate) = seen.input();
    board.set_input_done();
    // The average rate in event time (the report has no wall clock to go by).
    board.set_input(events, 0, 0, rate);
    board.sort();
    let snapshot = board.snapshot_at(crate::alerts::now_ms());
    let html = crate::sink::dashboard::report_html(&snapshot)?;
    if args.output == Path::new("-") {
        crate::term::raw_out(html.as_bytes())?;
    } else {
        super::write_atomic(&args.output, html.as_bytes())
            .with_context(|| format!("cannot write {}", args.output.display()))?;
    }
    tracing::info!(
        "report of {} results ({} anomalies, {} detectors) written to {} ({} KB){}",
        snapshot.kpis.results,
        snapshot.kpis.anomalies,
        snapshot.detectors.len(),
        args.output.display(),
        html.len() / 1024,
        records::dead_letter_note(&stats, args.dead_letter.as_deref())
    );
    Ok(super::finished(global, &stats))
}

/// What the results read so far say about the input they came from.
#[derive(Default)]
struct Seen {
    /// Records per detector, and whether it is per entity (the busiest
    /// non-entity detector saw every record).
    records: std::collections::HashMap<String, (u64, bool)>,
    /// The event time the results span.
    span: Option<(i64, i64)>,
    /// Some result is not an anomaly (written with `--all`).
    all: bool,
}

impl Seen {
    /// The result on `line`, counted (an error for a line that is not one).
    fn result(&mut self, line: &[u8]) -> Result<AnomalyResult, SchemaError> {
        let r: AnomalyResult = serde_json::from_slice(line)
            .map_err(|e| SchemaError::InvalidJson(format!("not a waflog detect result: {e}")))?;
        let e = self.records.entry(r.detector_name.clone()).or_default();
        e.0 = e.0.saturating_add(r.records);
        e.1 |= r.entity.is_some();
        self.all |= !r.is_anomaly();
        self.span = Some(
            self.span
                .map_or((r.data_start_time, r.data_end_time), |(a, b)| {
                    (a.min(r.data_start_time), b.max(r.data_end_time))
                }),
        );
        Ok(r)
    }

    /// The input's events and their average rate per second in event time
    /// (none without whole series).
    fn input(&self) -> (u64, f64) {
        let events = self
            .records
            .values()
            .filter(|(_, per_entity)| !per_entity)
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0);
        let rate = match self.span {
            Some((a, b)) if b > a && self.all => events as f64 * 1000.0 / (b as f64 - a as f64),
            _ => 0.0,
        };
        (events, rate)
    }
}

/// The alerts of a `waflog detect --state` file.
fn alerts_of(path: &Path) -> anyhow::Result<AlertBook> {
    // A missing file is an error here.
    let bytes = crate::files::read_capped(path, crate::files::STATE_CAP, "state file")?;
    Ok(super::parse_state(path, &bytes, "")?
        .alerts
        .unwrap_or_default())
}
