//! `waflog detect`: WAF logs -> per-interval features -> detectors -> results.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use waflog_core::Config;
use waflog_core::alert::{AlertBook, DeliveryReport, Incident, Notification};
use waflog_core::dashboard::Board;
use waflog_core::detect::{
    AlgorithmSpec, AnomalyResult, DetectorSpec, Engine, Prepared, TimeRules,
};
use waflog_core::features::FeatureMap;
use waflog_core::pipeline::{
    Feedback, FeedbackDocument, Pipeline, ResultObserver, SeriesId, State,
};
use waflog_core::transform::TransformStats;

use crate::alerts::{self, AlertCounts, Alerting};
use crate::aws::AwsContext;
use crate::cli::{DetectArgs, GlobalArgs, InputFormat};
use crate::exit::Finished;
use crate::interrupt::Interrupted;
use crate::records;
use crate::sink::dashboard::{self, Dashboard};
use crate::sink::file::{self as file_sink, Output};
use crate::sink::opensearch::DocKind;
use crate::source::cloudwatch::Positions;
use crate::source::file as file_source;
use crate::source::follow::{self, FollowStage};
use crate::source::{self, Plan, S3Range};

const OUT_BLOCK: usize = 1 << 16;

/// Where results go: the output (anomalies only unless `--all`), the log and
/// the live dashboard; the alerts raised are logged and counted.
struct Results {
    /// Taken at the end of the run, to finish it.
    out: Option<Output>,
    buf: Vec<u8>,
    all: bool,
    /// Write OCSF Detection Findings (anomalies only) instead of results.
    ocsf: bool,
    written: u64,
    /// The live dashboard, with --dashboard.
    dashboard: Option<Dashboard>,
    /// Alert counters of this run, for its summary.
    counts: AlertCounts,
    /// Write the incident documents (with --alerts).
    incidents: bool,
}

impl ResultObserver for Results {
    type Error = anyhow::Error;

    /// Shows results on the dashboard, writes them (anomalies only unless
    /// `--all`) and logs each anomaly.
    fn results(
        &mut self,
        results: &[AnomalyResult],
        alerts: Option<&AlertBook>,
    ) -> anyhow::Result<()> {
        if let Some(d) = &mut self.dashboard {
            d.publish(|b| {
                for r in results {
                    b.push(r);
                }
                if let Some(book) = alerts {
                    b.set_alerts(book);
                }
            });
        }
        for r in results {
            if r.is_anomaly() {
                tracing::warn!("anomaly: {}", r.summary());
            }
            if self.ocsf {
                if let Some(finding) = waflog_core::ocsf::detection_finding(r) {
                    waflog_core::text::to_json_writer(&mut self.buf, &finding)?;
                    self.buf.push(b'\n');
                    self.written += 1;
                }
            } else if self.all || r.is_anomaly() {
                waflog_core::text::to_json_writer(&mut self.buf, r)?;
                self.buf.push(b'\n');
                self.written += 1;
            }
        }
        if self.buf.len() >= OUT_BLOCK {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn notifications(&mut self, notes: &[Notification]) {
        alerts::log_notifications(&mut self.counts, notes);
    }

    fn delivered(&mut self, report: &DeliveryReport, alerts: &AlertBook) {
        alerts::log_delivery(&mut self.counts, report, alerts);
    }

    /// With --alerts, each incident as it closes: one `"type":"incident"` line
    /// among the results (`waflog eval` and `waflog report` read them).
    fn incidents(&mut self, incidents: &[Incident]) {
        if !self.incidents || self.ocsf {
            return;
        }
        for i in incidents {
            let doc = waflog_core::alert::incident::IncidentDocument::new(i);
            if waflog_core::text::to_json_writer(&mut self.buf, &doc).is_ok() {
                self.buf.push(b'\n');
            }
        }
    }

    /// With --alerts, each acknowledgement: one `"type":"feedback"` line among the
    /// results (`waflog eval` reads the labels), and the dashboard's alerts.
    fn feedback(&mut self, feedback: &[Feedback]) {
        if !self.incidents || self.ocsf {
            return;
        }
        for f in feedback {
            let doc = FeedbackDocument::new(f);
            if waflog_core::text::to_json_writer(&mut self.buf, &doc).is_ok() {
                self.buf.push(b'\n');
            }
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.flush_buf()
    }
}

impl Results {
    /// Results into `out`, on `dashboard`; `delivered` notifications so far.
    fn new(
        out: Output,
        all: bool,
        ocsf: bool,
        dashboard: Option<Dashboard>,
        delivered: u64,
    ) -> Results {
        Results {
            out: Some(out),
            buf: Vec::with_capacity(OUT_BLOCK * 2),
            all,
            ocsf,
            written: 0,
            dashboard,
            counts: AlertCounts {
                delivered,
                ..AlertCounts::default()
            },
            incidents: false,
        }
    }

    /// Writes incident documents too (with alerting).
    fn with_incidents(mut self, on: bool) -> Results {
        self.incidents = on;
        self
    }

    fn flush_buf(&mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.out {
            out.write_block(&self.buf)?;
        }
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered and flushes the output.
    fn flush_out(&mut self) -> anyhow::Result<()> {
        self.flush_buf()?;
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

/// Runs the subcommand: builds the pipeline from the flags, feeds it from the
/// input plan (a Kinesis stream, followed files or files read to their end),
/// ends it, reports, and keeps the dashboard up as asked.
pub fn run(global: &GlobalArgs, args: &DetectArgs) -> anyhow::Result<Finished> {
    let (config, time_rules) = load_config(global, args)?;
    let csv = args.input_format == InputFormat::Csv;
    // A monitor may name a metric series; WAF records have none.
    if !csv {
        let path = global
            .config
            .clone()
            .unwrap_or_else(waflog_core::Config::builtin_path);
        config
            .check_waf_monitors(&path)
            .context("invalid configuration")?;
    }
    // A CSV run scores metric series, not WAF records: its engine has no
    // detectors (the first configured one lends the series its algorithm).
    let specs = if csv {
        Vec::new()
    } else {
        config.detector_specs()
    };
    let mut aws = AwsContext::new(global.aws_settings());
    let mut range = S3Range::parse(args.input.since.as_deref(), args.input.until.as_deref())?;
    let idle_exit = super::idle_exit(&args.input)?;
    let inputs_given = args.input.all();
    let plan = Plan::new(&inputs_given, args.follow)?;
    let store = args.state.as_deref().map(StateFile::new);
    let (engine, saved) = start_engine(&config, &specs, time_rules, args, store.as_ref())?;
    // CloudWatch Logs groups resume after the events the models have taken in.
    if let Some(s) = &saved {
        range.cloudwatch = Positions::from_checkpoints(&s.checkpoints);
    }
    let (pipeline, alerting, delivered_at_start) =
        start_pipeline(engine, saved, &config, args, &mut aws)?;
    let dashboard = start_dashboard(args, &specs, &inputs_given, &pipeline, alerting.is_some())?;
    let linger = args
        .linger
        .as_deref()
        .map(|l| humantime::parse_duration(l).map_err(|e| anyhow::anyhow!("--linger {l}: {e}")))
        .transpose()?;
    let out = open_output(args, &mut aws)?;
    let mut run = Run {
        pipeline: pipeline.with_observer(
            Results::new(
                out,
                args.all,
                args.output_format == crate::cli::OutputFormat::Ocsf,
                dashboard,
                delivered_at_start,
            )
            .with_incidents(alerting.is_some()),
        ),
        alerting,
        store,
        stats: TransformStats::default(),
        max_line: config.input.max_line_bytes,
        idle_exit,
        threads: crate::threads::workers(args.threads),
    };
    // Acknowledgements left by `waflog alerts ack` since the last run (their
    // feedback documents go to the output).
    if let Some(side) = &run.alerting {
        side.take_acks(&mut run.pipeline)?;
    }
    let mut dead = file_sink::create_or_stderr(args.input.dead_letter.as_deref())?;
    let started = Instant::now();
    run.train(&args.history, &mut dead)?;
    // CSV series are each their own, not merged.
    let merge = args.input_format != InputFormat::Csv;
    let inputs = plan.inputs(&mut aws, &range, run.max_line, merge)?;
    let keep_last_save = match &plan {
        Plan::Kinesis(stream) => run.read_stream(stream, &mut aws, args, &mut dead)?,
        Plan::Follow(_) | Plan::Batch(_) => false,
    };
    let interrupted = run.read_inputs(inputs, &plan, &config, args.input_format, &mut dead)?;
    // Groups read to their end, or followed until --idle-exit (nothing was left
    // unread then): every event read is in the models. A follow stopped by Ctrl-C
    // keeps the positions of the last run that ended so, and reads again from
    // there (at least once).
    if !interrupted && matches!(plan, Plan::Batch(_) | Plan::Follow(_)) {
        for (group, position) in range.cloudwatch.checkpoints() {
            run.pipeline.checkpoint(group, position);
        }
    }
    let ended = run.end(keep_last_save, dead)?;
    let elapsed = started.elapsed();
    run.show_input_done();
    log_engine_notes(run.pipeline.engine(), &specs, &config.input.horizon);
    if csv {
        warn_unfed_monitors(&run.pipeline, &config);
    }
    run.log_summary(&ended, elapsed, args.input.dead_letter.as_deref(), csv);
    if interrupted {
        return Err(anyhow::Error::new(Interrupted)
            .context("stopped by Ctrl-C between records; the state is saved"));
    }
    if run.pipeline.observer().dashboard.is_some() {
        linger_on(
            &mut run.pipeline,
            run.alerting.as_mut(),
            run.store.as_mut(),
            linger,
        )?;
    }
    if ended.undelivered > 0 {
        log_undelivered(ended.undelivered, args.state.as_deref());
        return Ok(Finished::Undelivered);
    }
    Ok(super::finished(global, &run.stats))
}

/// The configuration with `--max-line-bytes` and `--horizon` applied, and the
/// engine's time rules from it.
fn load_config(global: &GlobalArgs, args: &DetectArgs) -> anyhow::Result<(Config, TimeRules)> {
    let mut config = super::load_config_with_limit(global, args.input.max_line_bytes)?;
    if let Some(h) = &args.horizon {
        config.input.horizon = h.clone();
    }
    let time_rules = TimeRules {
        horizon_ms: config
            .input
            .horizon_ms()
            .map_err(|e| anyhow::anyhow!("invalid --horizon or [input] horizon: {e}"))?,
        ..TimeRules::default()
    };
    Ok((config, time_rules))
}

/// The engine: resumed from the state file (unless `--fresh`), with the rest of
/// the saved state, or new; with the time rules and `--max-entities`.
fn start_engine(
    config: &Config,
    specs: &[DetectorSpec],
    time_rules: TimeRules,
    args: &DetectArgs,
    store: Option<&StateFile>,
) -> anyhow::Result<(Engine, Option<State>)> {
    let resumed = match store {
        Some(st) if !args.fresh => {
            let csv = args.input_format == InputFormat::Csv;
            st.load(specs, config.feature_map()?, !csv)?
        }
        _ => None,
    };
    let (mut engine, saved) = match resumed {
        Some((engine, saved)) => (engine, Some(saved)),
        None => (
            Engine::new(specs, config.feature_map()?).context("invalid detectors")?,
            None,
        ),
    };
    engine = engine.with_time_rules(time_rules);
    if let Some(max) = args.max_entities {
        engine = engine.with_max_entities(max);
    }
    if !specs.is_empty() {
        tracing::info!(
            "{} detectors: {}",
            specs.len(),
            specs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok((engine, saved))
}

/// The pipeline around `engine` with the saved state, and with alerting when
/// monitors are configured: notifications an earlier run left undelivered get a
/// new try now. Returns the alerting's side (acknowledgements) and how many
/// notifications were delivered at start.
fn start_pipeline(
    engine: Engine,
    saved: Option<State>,
    config: &Config,
    args: &DetectArgs,
    aws: &mut AwsContext,
) -> anyhow::Result<(Pipeline, Option<Alerting>, u64)> {
    // Metric series are watched by their own monitors; those of the series in
    // the state go in before the saved alerts, which keep their open alerts.
    let csv = args.input_format == InputFormat::Csv;
    let saved_series: Vec<String> = saved
        .as_ref()
        .map(|s| s.series.keys().cloned().collect())
        .unwrap_or_default();
    let monitors = alerts::monitors(config, args.alerts, csv.then_some(&saved_series[..]));
    let every_series = csv && args.alerts && config.monitors.is_empty();
    // Results go to the pipeline, which carries what the state holds besides the
    // models and the alerts; dead letters are written here, as they come.
    let mut pipeline = Pipeline::new(engine).keep_dead_letters(0);
    let mut loaded_alerts = None;
    if let Some(mut s) = saved {
        loaded_alerts = s.alerts.take();
        pipeline = pipeline.with_state(s);
    }
    if monitors.is_empty() && !every_series {
        return Ok((pipeline, None, 0));
    }
    let results_on_stdout = args.output.as_deref().is_none_or(|o| o == Path::new("-"));
    let (eval, notifiers, side) = alerts::start(
        config,
        &monitors,
        loaded_alerts,
        args.state.as_deref(),
        aws,
        results_on_stdout,
    )?;
    pipeline = pipeline.with_alerting(eval, notifiers, alerts::now_ms);
    if every_series {
        pipeline = pipeline.monitor_every_series();
    }
    let mut delivered_at_start = 0;
    if pipeline.alerts().is_some_and(|b| !b.outbox().is_empty()) {
        if let Some(report) = pipeline.deliver_pending() {
            delivered_at_start = report.delivered as u64;
            tracing::info!(
                "{} notifications left by an earlier run: {} delivered, {} still pending",
                report.delivered + report.pending,
                report.delivered,
                report.pending
            );
        }
    }
    let names: Vec<&str> = monitors.iter().map(|m| m.name.as_str()).collect();
    match (names.len(), every_series) {
        (0, _) => tracing::info!("monitors: one per metric series as it opens"),
        (n, true) => tracing::info!(
            "{n} monitors: {} (and one per metric series as it opens)",
            names.join(", ")
        ),
        (n, false) => tracing::info!("{n} monitors: {}", names.join(", ")),
    }
    Ok((pipeline, Some(side), delivered_at_start))
}

/// The live dashboard with `--dashboard` (showing the alerts already known).
fn start_dashboard(
    args: &DetectArgs,
    specs: &[DetectorSpec],
    inputs: &[String],
    pipeline: &Pipeline,
    alerting: bool,
) -> anyhow::Result<Option<Dashboard>> {
    let Some(addr) = &args.dashboard else {
        return Ok(None);
    };
    let addr = dashboard::parse_addr(addr)?;
    let title = format!("waflog detect: {}", inputs_title(inputs));
    // (A CSV series is named after its file: no configured panels.)
    let mut d = Dashboard::start(
        addr,
        Board::new(&title, specs),
        alerting,
        &args.dashboard_host,
    )?;
    if let Some(book) = pipeline.alerts() {
        d.publish(|b| b.set_alerts(book));
    }
    tracing::info!("dashboard: {}", d.url());
    Ok(Some(d))
}

/// The results' output (`--output`, stdout by default): OpenSearch documents
/// are results; resuming from `--state`, earlier results stay in the file.
fn open_output(args: &DetectArgs, aws: &mut AwsContext) -> anyhow::Result<Output> {
    let mut options = args.sink.options()?;
    options.opensearch.kind = DocKind::Results;
    options.append = args.state.as_deref().is_some_and(Path::exists) && !args.fresh;
    if args.output_format == crate::cli::OutputFormat::Parquet {
        options.parquet = Some(crate::sink::parquet::Layout::Results);
    }
    file_sink::create_location(args.output.as_deref(), aws, &options)
}

/// A detection run under way: the pipeline and what goes with it.
struct Run {
    pipeline: Pipeline<Results>,
    alerting: Option<Alerting>,
    store: Option<StateFile>,
    stats: TransformStats,
    max_line: usize,
    idle_exit: Option<Duration>,
    /// Worker threads that prepare the records of batch inputs (`--threads`,
    /// resolved: at least 1).
    threads: usize,
}

/// How a run ended (see [`Run::end`]).
struct Ended {
    /// Records of the last, incomplete interval.
    unscored: u64,
    /// Notifications still undelivered.
    undelivered: usize,
}

impl Run {
    /// Trains the models on the `--history` files; their results are not wanted.
    fn train(&mut self, history: &[String], dead: &mut Output) -> anyhow::Result<()> {
        let mut pending = Vec::new();
        for name in history {
            let input = file_source::open(name)?;
            let before = self.pipeline.engine().stats();
            let engine = self.pipeline.engine_mut();
            records::each_line(input, self.max_line, &mut self.stats, dead, |line| {
                let outcome = engine.push_line(line, &mut pending);
                pending.clear();
                Ok(outcome)
            })?;
            let after = self.pipeline.engine().stats();
            tracing::info!(
                "trained on {} records ({} intervals) of history from {name}",
                after.records - before.records,
                after.intervals - before.intervals
            );
        }
        Ok(())
    }

    /// Follows the Kinesis stream `stream` until its end, `--idle-exit` or Ctrl-C.
    /// True when it stopped between the lines of one record: the last save,
    /// whose checkpoints match its models, stands (that record is read again).
    fn read_stream(
        &mut self,
        stream: &str,
        aws: &mut AwsContext,
        args: &DetectArgs,
        dead: &mut Output,
    ) -> anyhow::Result<bool> {
        if args.input_format == InputFormat::Csv {
            anyhow::bail!("--input-format csv reads files, not kinesis://{stream}");
        }
        let checkpoints = self.pipeline.stream_checkpoints(stream);
        let (rx, stop) = super::read_kinesis(aws, stream, &args.input, checkpoints, self.max_line)?;
        let mut stage = FollowDetect {
            pipeline: &mut self.pipeline,
            alerting: self.alerting.as_mut(),
            store: self.store.as_mut(),
            stream: true,
            mid_record: false,
            series: None,
        };
        let source = format!("kinesis://{stream}");
        let outcome = follow::follow(
            &rx,
            &source,
            self.max_line,
            &mut self.stats,
            dead,
            self.idle_exit,
            &stop,
            &mut stage,
        );
        // Stops the reader threads (they see the flag or the closed channel).
        stop.store(true, Ordering::SeqCst);
        let mid_record = stage.mid_record;
        outcome?;
        Ok(mid_record)
    }

    /// Reads the inputs one after another, as the plan and `--input-format` say;
    /// true when Ctrl-C stopped a batch run with a state file between records.
    fn read_inputs(
        &mut self,
        inputs: source::Inputs,
        plan: &Plan,
        config: &Config,
        format: InputFormat,
        dead: &mut Output,
    ) -> anyhow::Result<bool> {
        // Ctrl-C while reading files with a state file: stop between records, score
        // what is complete, save the state, exit 130 (as the README promises).
        let batch_stop = match (&self.store, plan) {
            (Some(_), Plan::Batch(_)) => Some(graceful_stop()?),
            _ => None,
        };
        for input in inputs {
            let input = input?;
            if format == InputFormat::Csv {
                let follow = matches!(plan, Plan::Follow(_));
                self.read_series(input, config, follow, dead)?;
            } else if matches!(plan, Plan::Follow(_)) {
                self.follow_file(input, None, dead)?;
            } else if self.read_batch(input, batch_stop.as_deref(), dead)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Scores a CSV metric series (`--input-format csv`), named after its file:
    /// to its end, or with `follow` as it grows, until `--idle-exit` or Ctrl-C.
    fn read_series(
        &mut self,
        input: file_source::Input,
        config: &Config,
        follow: bool,
        dead: &mut Output,
    ) -> anyhow::Result<()> {
        let name = input.name.clone();
        let series_name = Path::new(&name)
            .file_stem()
            .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
        let algorithm = config
            .detectors
            .as_ref()
            .and_then(|d| d.first())
            .map_or_else(AlgorithmSpec::metric_default, |s| s.algorithm.clone());
        let id = self
            .pipeline
            .open_series(&series_name, algorithm)
            .with_context(|| {
                format!("cannot resume series {series_name} ({name}) from the state file (start over with --fresh)")
            })?;
        let skipped_before = self.pipeline.series(id).map_or(0, |s| s.skipped());
        if follow {
            self.follow_file(input, Some(id), dead)?;
        } else {
            self.read_series_to_end(input, id, dead)?;
        }
        let skipped = self
            .pipeline
            .series(id)
            .map_or(0, |s| s.skipped() - skipped_before);
        if skipped > 0 {
            tracing::info!(
                "{name}: {skipped} rows at or before the resumed series {series_name}'s last row were scored in an earlier run: skipped"
            );
        }
        Ok(())
    }

    /// [`Run::read_series`] of a file read to its end.
    fn read_series_to_end(
        &mut self,
        input: file_source::Input,
        id: SeriesId,
        dead: &mut Output,
    ) -> anyhow::Result<()> {
        let (pipeline, store) = (&mut self.pipeline, &mut self.store);
        records::each_line(input, self.max_line, &mut self.stats, dead, |line| {
            match pipeline.push_series_line(id, line)? {
                Ok(0) => {}
                Ok(_) => {
                    if pipeline.observer().dashboard.is_some() {
                        serve_acks(pipeline);
                        // The rows scored so far are the page's events.
                        let rows = pipeline.stats().series_rows;
                        show_input(pipeline, rows, None, false);
                    }
                    if let Some(st) = store.as_mut() {
                        st.save_if_due(pipeline)?;
                    }
                }
                Err(e) => return Ok(Err(e)),
            }
            Ok(Ok(()))
        })
    }

    /// Follows a file or stdin (`--follow`) until `--idle-exit` or Ctrl-C: WAF
    /// records, or the rows of metric series `series`.
    fn follow_file(
        &mut self,
        input: file_source::Input,
        series: Option<SeriesId>,
        dead: &mut Output,
    ) -> anyhow::Result<()> {
        let source = input.name.clone();
        let rx = follow::spawn_line_reader(input, self.max_line);
        let stop = crate::interrupt::stop_on_ctrl_c()?;
        let mut stage = FollowDetect {
            pipeline: &mut self.pipeline,
            alerting: self.alerting.as_mut(),
            store: self.store.as_mut(),
            stream: false,
            mid_record: false,
            series,
        };
        follow::follow(
            &rx,
            &source,
            self.max_line,
            &mut self.stats,
            dead,
            self.idle_exit,
            &stop,
            &mut stage,
        )
    }

    /// Reads an input to its end; true when `stop` (Ctrl-C) ended it between
    /// records. Results show on the dashboard and the state is saved as they come.
    fn read_batch(
        &mut self,
        input: file_source::Input,
        stop: Option<&AtomicBool>,
        dead: &mut Output,
    ) -> anyhow::Result<bool> {
        // The pipeline's extractor reads records ahead on the workers.
        let extractor = self.pipeline.engine().extractor();
        let (pipeline, store) = (&mut self.pipeline, &mut self.store);
        let mut push =
            |line: &[u8], prepared: Option<(&Prepared, usize)>| -> records::LineOutcome {
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    return Err(anyhow::Error::new(Interrupted));
                }
                let pushed = match prepared {
                    Some((p, index)) => pipeline.push_prepared(line, p, index)?,
                    None => pipeline.push_line(line)?,
                };
                let outcome = pushed.into_result();
                if outcome.as_ref().is_ok_and(|n| *n > 0) {
                    if pipeline.observer().dashboard.is_some() {
                        serve_acks(pipeline);
                        let events = pipeline.engine().stats().records;
                        show_input(pipeline, events, None, false);
                    }
                    if let Some(st) = store.as_mut() {
                        st.save_if_due(pipeline)?;
                    }
                }
                Ok(outcome.map(|_| ()))
            };
        let (max_line, stats) = (self.max_line, &mut self.stats);
        let read = if records::prepares(&input, self.threads) {
            records::each_record_prepared(
                input,
                max_line,
                self.threads,
                stats,
                dead,
                &extractor,
                |line, prepared, index| push(line, Some((prepared, index))),
            )
        } else {
            records::each_line(input, max_line, stats, dead, |line| push(line, None))
        };
        match read {
            Err(e) if crate::interrupt::is_interrupted(&e) => Ok(true),
            other => other.map(|()| false),
        }
    }

    /// Ends the input: with a state file the open intervals are kept for more
    /// input later, else the last ones are scored; alert periods that ended by the
    /// last result are evaluated and every undelivered notification has one more
    /// try. Then the state is saved (unless `keep_last_save`), the output and the
    /// dead letters finished.
    fn end(&mut self, keep_last_save: bool, mut dead: Output) -> anyhow::Result<Ended> {
        let done = match &self.store {
            Some(_) => self.pipeline.suspend()?,
            None => self.pipeline.finish()?,
        };
        let undelivered = match &self.alerting {
            Some(_) => {
                self.pipeline.observer_mut().counts.delivered += done.delivered as u64;
                if self.store.is_none() {
                    if let Some(book) = self.pipeline.alerts() {
                        alerts::log_undelivered(book);
                    }
                }
                done.undelivered
            }
            None => 0,
        };
        // The alerts the last periods completed, on the page.
        publish_alerts(&mut self.pipeline);
        if let Some(st) = &mut self.store {
            if keep_last_save {
                tracing::info!("stopped inside a stream record: keeping the last saved state");
            } else {
                st.save(&self.pipeline)?;
            }
        }
        let out = self
            .pipeline
            .observer_mut()
            .out
            .take()
            .context("the output is finished")?;
        let (rejects, rejected) = out.finish_with_rejects()?;
        if rejected > 0 {
            self.stats.dead_lettered += rejected;
            dead.write_block(&rejects)?;
        }
        dead.finish()?;
        Ok(Ended {
            unscored: done.unscored,
            undelivered,
        })
    }

    /// The input's final counts on the dashboard, marked done.
    fn show_input_done(&mut self) {
        if self.pipeline.observer().dashboard.is_none() {
            return;
        }
        let (records_in, dead_lettered) = (self.stats.records_in, self.stats.dead_lettered);
        show_input(&mut self.pipeline, records_in, Some(dead_lettered), true);
        if let Some(d) = &mut self.pipeline.observer_mut().dashboard {
            d.publish(|b| b.set_input_done());
        }
    }

    /// The run's summary: intervals, records, speed, anomalies, results written
    /// and, with alerting, the alert counts.
    fn log_summary(
        &self,
        ended: &Ended,
        elapsed: Duration,
        dead_letter: Option<&Path>,
        series: bool,
    ) {
        let stats = &self.stats;
        // What was scored, how many of it a second, and the anomalies.
        let (scored, rate, anomalies) = if series {
            let p = self.pipeline.stats();
            let rate = super::per_second(p.series_rows, elapsed);
            let scored = format!("{} metric series rows", p.series_rows);
            (scored, format!("{rate:.0} rows/s"), p.series_anomalies)
        } else {
            let e = self.pipeline.engine().stats();
            let rate = super::per_second(stats.records_in, elapsed);
            let scored = format!("{} intervals of {} records", e.intervals, e.records);
            (scored, format!("{rate:.0} events/s"), e.anomalies)
        };
        tracing::info!(
            records_in = stats.records_in,
            dead_lettered = stats.dead_lettered,
            anomalies,
            "scored {scored} in {:.2}s ({rate}): {anomalies} anomalies, {} results written{}{}",
            elapsed.as_secs_f64(),
            self.pipeline.observer().written,
            if ended.unscored > 0 {
                "; the last, incomplete interval is not scored"
            } else {
                ""
            },
            records::dead_letter_note(stats, dead_letter)
        );
        if self.alerting.is_some() {
            let c = self.pipeline.observer().counts;
            tracing::info!(
                "alerts: {} fired, {} re-notified, {} completed; {} notifications delivered{}",
                c.fired,
                c.renotified,
                c.completed,
                c.delivered,
                if ended.undelivered > 0 {
                    format!(", {} undelivered", ended.undelivered)
                } else {
                    String::new()
                }
            );
        }
    }
}

/// Warns of the configured monitors no metric series of the run fed: a monitor's
/// detector names a series by its file's name without the extension.
fn warn_unfed_monitors(pipeline: &Pipeline<Results>, config: &Config) {
    let Some(book) = pipeline.alerts() else {
        return;
    };
    for m in config
        .monitors
        .iter()
        .filter(|m| !book.has_observed(&m.name))
    {
        tracing::warn!(
            "monitor {} saw no result: no series of this run is named `{}` (a series takes its file's name without the extension)",
            m.name,
            m.detector()
        );
    }
}

/// Logs what the engine left out or adjusted: models evicted at the entity caps,
/// late and early records, clock restarts, jumps in event time.
fn log_engine_notes(engine: &Engine, specs: &[DetectorSpec], horizon: &str) {
    let e = engine.stats();
    if e.evicted > 0 {
        let caps: Vec<String> = engine
            .entity_caps()
            .iter()
            .filter(|(name, _)| {
                specs
                    .iter()
                    .any(|s| s.name == *name && s.category_field.is_some())
            })
            .map(|(name, cap)| format!("{name} {cap}"))
            .collect();
        tracing::warn!(
            "{} per-entity models evicted to stay within the entity caps ({}; --max-entities)",
            e.evicted,
            caps.join(", ")
        );
    }
    for (name, late) in engine.late() {
        if late > e.late {
            tracing::warn!(
                "{name}: {} late records (after its interval closed) not counted by this detector",
                late - e.late
            );
        }
    }
    if e.late > 0 {
        tracing::warn!(
            "{} late records (after their interval closed for every detector) dead-lettered",
            e.late
        );
    }
    if e.ahead > 0 {
        tracing::warn!(
            "{} records too far ahead of the stream's event time (--horizon {}) dead-lettered",
            e.ahead,
            horizon
        );
    }
    if e.restarts > 0 {
        tracing::warn!(
            "the first records were more than {} ahead of the ones after them: the clock restarted {} times (they count in their own intervals)",
            horizon,
            e.restarts
        );
    }
    if e.jumps > 0 || e.skipped_intervals > 0 {
        tracing::info!(
            "event time jumped {} times; {} empty intervals in long gaps skipped without results",
            e.jumps,
            e.skipped_intervals
        );
    }
}

/// Logs the notifications left undelivered and where they are kept.
fn log_undelivered(undelivered: usize, state: Option<&Path>) {
    match state {
        Some(p) => tracing::error!(
            "{undelivered} alert notifications could not be delivered; they are kept in {} and retried by the next run (`waflog alerts --state {} list` shows them)",
            p.display(),
            p.display()
        ),
        None => tracing::error!(
            "{undelivered} alert notifications could not be delivered (printed above); use --state to keep them for a retry"
        ),
    }
}

fn graceful_stop() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = crate::interrupt::stop_on_ctrl_c()?;
    let watched = std::sync::Arc::clone(&stop);
    std::thread::spawn(move || {
        while !watched.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(5));
        tracing::warn!("stopped by Ctrl-C while waiting for input; the last saved state stands");
        std::process::exit(i32::from(crate::exit::INTERRUPTED));
    });
    Ok(stop)
}

/// Applies the acknowledgements sent from the dashboard and shows the result;
/// returns how many were applied.
fn serve_acks(pipeline: &mut Pipeline<Results>) -> usize {
    let Some(d) = &mut pipeline.observer_mut().dashboard else {
        return 0;
    };
    let requests = d.take_acks();
    if requests.is_empty() {
        return 0;
    }
    let mut applied = 0;
    for req in requests {
        let outcome = alerts::acknowledge_exact(pipeline, &req.id, req.label);
        if let Ok(view) = &outcome {
            applied += 1;
            tracing::info!(
                "alert {} acknowledged from the dashboard ({})",
                view.id,
                view.monitor
            );
        }
        req.answer(outcome);
    }
    publish_alerts(pipeline);
    applied
}

/// The alerts, on the dashboard (when both are on).
fn publish_alerts(pipeline: &mut Pipeline<Results>) {
    if let (results, Some(book)) = pipeline.observer_and_alerts() {
        if let Some(d) = &mut results.dashboard {
            d.publish(|b| b.set_alerts(book));
        }
    }
}

/// The input's counts, on the dashboard: when they are due (4 times a second)
/// or `force`d, so the late counts are gathered only then.
fn show_input(pipeline: &mut Pipeline<Results>, events: u64, dead: Option<u64>, force: bool) {
    let due = pipeline
        .observer()
        .dashboard
        .as_ref()
        .is_some_and(|d| force || d.input_due());
    if !due {
        return;
    }
    let late = pipeline
        .engine()
        .late()
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    if let Some(d) = &mut pipeline.observer_mut().dashboard {
        d.input(events, dead, late);
    }
}

/// About once a second while following or lingering: the alerting's tick
/// (acknowledgements from `waflog alerts ack`, delivery retries), shown on the
/// dashboard when it ran.
fn tick_alerting(pipeline: &mut Pipeline<Results>, alerting: Option<&mut Alerting>) {
    if let Some(a) = alerting {
        if a.tick(pipeline) {
            publish_alerts(pipeline);
        }
    }
}

/// A title for the dashboard from the input names.
fn inputs_title(inputs: &[String]) -> String {
    match inputs {
        [] => "stdin".to_string(),
        [one] if one == "-" => "stdin".to_string(),
        many => many.join(", "),
    }
}

/// After the input ends, keeps the dashboard up for `linger` (until Ctrl-C when
/// `None`), applying acknowledgements and saving them in the state file.
fn linger_on(
    pipeline: &mut Pipeline<Results>,
    mut alerting: Option<&mut Alerting>,
    mut store: Option<&mut StateFile>,
    linger: Option<Duration>,
) -> anyhow::Result<()> {
    if linger.is_some_and(|l| l.is_zero()) {
        return Ok(());
    }
    let stop = crate::interrupt::stop_on_ctrl_c()?;
    let url = pipeline
        .observer()
        .dashboard
        .as_ref()
        .map(|d| d.url().to_string())
        .unwrap_or_default();
    match linger {
        Some(l) => tracing::info!(
            "input ended; the dashboard stays up at {url} for {} (Ctrl-C to stop)",
            humantime::format_duration(l)
        ),
        None => tracing::info!("input ended; the dashboard stays up at {url} until Ctrl-C"),
    }
    let until = linger.map(|l| Instant::now() + l);
    while !stop.load(Ordering::SeqCst) && until.is_none_or(|u| Instant::now() < u) {
        std::thread::sleep(Duration::from_millis(100));
        tick_alerting(pipeline, alerting.as_deref_mut());
        if serve_acks(pipeline) > 0 {
            if let Some(st) = store.as_deref_mut() {
                st.save(pipeline)?;
            }
        }
    }
    Ok(())
}

/// Follow mode: lines arrive from a reader thread; while none arrive, event time is
/// taken to advance with the wall clock from the last record seen, so intervals
/// close when traffic stops. Results are flushed as soon as they exist.
struct FollowDetect<'a> {
    pipeline: &'a mut Pipeline<Results>,
    alerting: Option<&'a mut Alerting>,
    store: Option<&'a mut StateFile>,
    /// Reading a stream whose checkpoints go in the state file.
    stream: bool,
    /// Lines of a stream record were taken in but its checkpoint has not come yet:
    /// saving now would store models ahead of the checkpoint (a record counted
    /// twice after a restart).
    mid_record: bool,
    /// The metric series a followed CSV file feeds (`--input-format csv`).
    series: Option<SeriesId>,
}

impl FollowStage for FollowDetect<'_> {
    fn line(&mut self, line: &[u8]) -> records::LineOutcome {
        if let Some(id) = self.series {
            return Ok(self.pipeline.push_series_line(id, line)?.map(|_| ()));
        }
        self.mid_record = self.stream;
        Ok(self.pipeline.push_line(line)?.into_result().map(|_| ()))
    }

    fn checkpoint(&mut self, shard: String, sequence: String) {
        self.mid_record = false;
        if self.store.is_some() {
            self.pipeline.checkpoint(shard, sequence);
        }
    }

    fn tick(&mut self, idle_ms: Option<i64>, stats: &TransformStats) -> anyhow::Result<()> {
        if let Some(idle) = idle_ms {
            self.pipeline.tick(idle)?;
        }
        tick_alerting(self.pipeline, self.alerting.as_deref_mut());
        if self.pipeline.observer().dashboard.is_some() {
            serve_acks(self.pipeline);
            show_input(
                self.pipeline,
                stats.records_in,
                Some(stats.dead_lettered),
                false,
            );
        }
        if let Some(st) = self.store.as_deref_mut().filter(|_| !self.mid_record) {
            st.save_if_due(self.pipeline)?;
        }
        self.pipeline.observer_mut().flush_out()
    }
}

/// The `--state` file: read at start, written atomically (temporary file, fsync,
/// rename) so a crash leaves either the old state or the new one, never half.
/// What it holds is the core's [`State`], which the pipeline gives.
struct StateFile {
    path: PathBuf,
    last_save: Instant,
}

impl StateFile {
    fn new(path: &Path) -> StateFile {
        StateFile {
            path: path.to_path_buf(),
            last_save: Instant::now(),
        }
    }

    /// The engine resumed from the file, and the rest of the state (none when
    /// the file does not exist). Without `resume_engine` (a run on metric series,
    /// whose engine has no detectors) the saved engine is not resumed: `specs`
    /// start anew, and so a series resumes whatever WAF detectors the state was
    /// saved with.
    fn load(
        &self,
        specs: &[DetectorSpec],
        map: FeatureMap,
        resume_engine: bool,
    ) -> anyhow::Result<Option<(Engine, State)>> {
        let Some(mut saved) = super::read_state(&self.path, " (start over with --fresh)")? else {
            return Ok(None);
        };
        if !resume_engine {
            // Models that took in WAF records are not to be lost to a run on
            // metric series (an older CSV run's engine took in none).
            if saved
                .engine
                .take()
                .is_some_and(|e| e.max_event_ms.is_some())
            {
                anyhow::bail!(
                    "state file {} holds the models of a run on WAF records, not metric series: give this run its own --state",
                    self.path.display()
                );
            }
            let engine = Engine::new(specs, map).context("invalid detectors")?;
            tracing::info!(
                "resumed from {} ({} metric series)",
                self.path.display(),
                saved.series.len()
            );
            return Ok(Some((engine, saved)));
        }
        if saved
            .engine
            .as_ref()
            .is_some_and(|e| e.detectors.is_empty() && !saved.series.is_empty())
        {
            anyhow::bail!(
                "state file {} holds the metric series of a run with --input-format csv, not WAF detector models: give this run its own --state",
                self.path.display()
            );
        }
        let engine_state = saved.engine.take().with_context(|| {
            format!(
                "state file {} holds no detector models (a `waflog transform --state` file?); start over with --fresh",
                self.path.display()
            )
        })?;
        let engine = Engine::restore(specs, map, engine_state)
            .with_context(|| format!("cannot resume from state file {}", self.path.display()))?;
        let series = match saved.series.len() {
            0 => String::new(),
            n => format!(", {n} metric series"),
        };
        tracing::info!(
            "resumed from {} ({} records taken in so far{series})",
            self.path.display(),
            saved.records
        );
        Ok(Some((engine, saved)))
    }

    fn save_if_due(&mut self, pipeline: &Pipeline<Results>) -> anyhow::Result<()> {
        if self.last_save.elapsed() >= Duration::from_secs(1) {
            self.save(pipeline)?;
        }
        Ok(())
    }

    fn save(&mut self, pipeline: &Pipeline<Results>) -> anyhow::Result<()> {
        super::write_state(&self.path, &pipeline.state()).context("cannot save the state")?;
        self.last_save = Instant::now();
        Ok(())
    }
}
