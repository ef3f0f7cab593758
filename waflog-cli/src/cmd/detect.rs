//! `waflog detect`: WAF logs -> per-interval features -> detectors -> results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use waflog_core::detect::metrics::MetricSeries;
use waflog_core::detect::{AlgorithmSpec, AnomalyResult, DetectorSpec, Engine, EngineState};
use waflog_core::error::SchemaError;
use waflog_core::features::FeatureMap;
use waflog_core::lines::{Line, LineReader};
use waflog_core::transform::TransformStats;

use super::records;
use crate::cli::{DetectArgs, GlobalArgs, InputFormat};
use crate::exit::Finished;
use crate::sink::file::{self as file_sink, Output};
use crate::source::file as file_source;

const OUT_BLOCK: usize = 1 << 16;

struct Results {
    out: Output,
    buf: Vec<u8>,
    all: bool,
    written: u64,
}

impl Results {
    /// Writes results (anomalies only unless `--all`) and logs each anomaly.
    fn emit(&mut self, results: &mut Vec<AnomalyResult>) -> anyhow::Result<()> {
        for r in results.drain(..) {
            if r.is_anomaly() {
                tracing::warn!("anomaly: {}", r.summary());
            }
            if self.all || r.is_anomaly() {
                serde_json::to_writer(&mut self.buf, &r)?;
                self.buf.push(b'\n');
                self.written += 1;
            }
        }
        if self.buf.len() >= OUT_BLOCK {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> anyhow::Result<()> {
        self.out.write_block(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &DetectArgs) -> anyhow::Result<Finished> {
    let config = super::load_config_with_limit(global, args.input.max_line_bytes)?;
    let max_line = config.input.max_line_bytes;
    let specs = config.detector_specs();
    let mut store = args.state.as_deref().map(StateFile::new);
    let mut engine = match &store {
        Some(st) if !args.fresh => st.load(&specs, config.feature_map()?)?,
        _ => None,
    }
    .map_or_else(
        || Engine::new(&specs, config.feature_map()?).context("invalid detectors"),
        Ok,
    )?;
    if let Some(max) = args.max_entities {
        engine = engine.with_max_entities(max);
    }
    tracing::info!(
        "{} detectors: {}",
        specs.len(),
        specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut results = Results {
        out: file_sink::create(args.output.as_deref())?,
        buf: Vec::with_capacity(OUT_BLOCK * 2),
        all: args.all,
        written: 0,
    };
    let mut dead = file_sink::create_or_stderr(args.input.dead_letter.as_deref())?;
    let started = Instant::now();
    let mut stats = TransformStats::default();
    let mut pending = Vec::new();
    for name in &args.history {
        let input = file_source::open(name)?;
        let before = engine.stats();
        records::each_line(input, max_line, &mut stats, &mut dead, |line| {
            let outcome = engine.push_line(line, &mut pending);
            pending.clear();
            Ok(outcome)
        })?;
        let after = engine.stats();
        tracing::info!(
            "trained on {} records ({} intervals) of history from {name}",
            after.records - before.records,
            after.intervals - before.intervals
        );
    }
    for name in records::input_names(&args.input.inputs) {
        let input = file_source::open(&name)?;
        if args.input_format == InputFormat::Csv {
            let series_name = Path::new(&name)
                .file_stem()
                .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
            let algorithm = config
                .detectors
                .as_ref()
                .and_then(|d| d.first())
                .map_or_else(AlgorithmSpec::metric_default, |s| s.algorithm.clone());
            let mut series = MetricSeries::new(&series_name, algorithm);
            records::each_line(input, max_line, &mut stats, &mut dead, |line| {
                let text = match std::str::from_utf8(line) {
                    Ok(t) => t,
                    Err(e) => {
                        return Ok(Err(SchemaError::InvalidUtf8 {
                            at: e.valid_up_to(),
                        }));
                    }
                };
                Ok(series.push_line(text).map(|r| pending.extend(r)))
                    .and_then(|outcome| results.emit(&mut pending).map(|()| outcome))
            })?;
            continue;
        }
        if args.follow {
            follow(
                input,
                max_line,
                &mut engine,
                &mut stats,
                &mut dead,
                &mut results,
                store.as_mut(),
            )?;
        } else {
            records::each_line(input, max_line, &mut stats, &mut dead, |line| {
                let outcome = engine.push_line(line, &mut pending);
                if !pending.is_empty() {
                    results.emit(&mut pending)?;
                    if let Some(st) = &mut store {
                        st.save_if_due(&engine)?;
                    }
                }
                Ok(outcome)
            })?;
        }
    }
    // With a state file more input may come later: keep open intervals for it.
    let unscored = match &mut store {
        Some(st) => {
            engine.close_ready_intervals(&mut pending);
            results.emit(&mut pending)?;
            results.flush_buf()?;
            st.save(&engine)?;
            0
        }
        None => engine.finish(&mut pending),
    };
    results.emit(&mut pending)?;
    results.flush_buf()?;
    results.out.finish()?;
    dead.finish()?;
    let elapsed = started.elapsed();
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
        if late > 0 {
            tracing::warn!("{name}: {late} late records (after their interval closed) not counted");
        }
    }
    tracing::info!(
        records_in = stats.records_in,
        dead_lettered = stats.dead_lettered,
        intervals = e.intervals,
        anomalies = e.anomalies,
        "scored {} intervals of {} records in {:.2}s ({:.0} events/s): {} anomalies, {} results written{}{}",
        e.intervals,
        e.records,
        elapsed.as_secs_f64(),
        super::per_second(stats.records_in, elapsed),
        e.anomalies,
        results.written,
        if unscored > 0 {
            "; the last, incomplete interval is not scored".to_string()
        } else {
            String::new()
        },
        records::dead_letter_note(&stats, args.input.dead_letter.as_deref())
    );
    Ok(super::finished(global, &stats))
}

enum Msg {
    Line(u64, Vec<u8>),
    TooLong(u64, Vec<u8>, u64),
    Failed(anyhow::Error),
    End(u64),
}

/// Follow mode: a reader thread feeds lines; while none arrive, event time is taken
/// to advance with the wall clock from the last record seen, so intervals close when
/// traffic stops. Results are flushed as soon as they exist.
fn follow(
    input: file_source::Input,
    max_line: usize,
    engine: &mut Engine,
    stats: &mut TransformStats,
    dead: &mut Output,
    results: &mut Results,
    mut store: Option<&mut StateFile>,
) -> anyhow::Result<()> {
    let source = input.name.clone();
    let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
    std::thread::spawn(move || {
        let mut lines = LineReader::new(input.reader, max_line);
        loop {
            let msg = match lines.next_line() {
                Ok(Some(Line::Ok { number, bytes })) => Msg::Line(number, bytes.to_vec()),
                Ok(Some(Line::TooLong {
                    number,
                    prefix,
                    len,
                })) => Msg::TooLong(number, prefix.to_vec(), len),
                Ok(None) => Msg::End(lines.bytes_read()),
                Err(e) => Msg::Failed(anyhow::Error::new(e)),
            };
            let last = matches!(msg, Msg::End(_) | Msg::Failed(_));
            if tx.send(msg).is_err() || last {
                break;
            }
        }
    });
    let mut pending = Vec::new();
    let mut last_seen = Instant::now();
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(200));
        let mut stage =
            |line: &[u8]| -> records::LineOutcome { Ok(engine.push_line(line, &mut pending)) };
        match msg {
            Ok(Msg::Line(number, bytes)) => {
                let line = Line::Ok {
                    number,
                    bytes: &bytes,
                };
                records::handle(line, &source, max_line, stats, dead, &mut stage)?;
                last_seen = Instant::now();
            }
            Ok(Msg::TooLong(number, prefix, len)) => {
                let line = Line::TooLong {
                    number,
                    prefix: &prefix,
                    len,
                };
                records::handle(line, &source, max_line, stats, dead, &mut stage)?;
            }
            Ok(Msg::End(bytes)) => {
                stats.bytes_in += bytes;
                return Ok(());
            }
            Ok(Msg::Failed(e)) => return Err(e.context(format!("cannot read input {source}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let idle = i64::try_from(last_seen.elapsed().as_millis()).unwrap_or(i64::MAX);
        if idle >= 200 {
            if let Some(max) = engine.max_event_ms() {
                engine.advance_to(max.saturating_add(idle), &mut pending);
            }
        }
        if !pending.is_empty() {
            results.emit(&mut pending)?;
            if let Some(st) = store.as_deref_mut() {
                st.save_if_due(engine)?;
            }
        }
        results.flush_buf()?;
        results.out.flush()?;
    }
}

/// The `--state` file: read at start, written atomically (temporary file, fsync,
/// rename) so a crash leaves either the old state or the new one, never half.
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

    fn load(&self, specs: &[DetectorSpec], map: FeatureMap) -> anyhow::Result<Option<Engine>> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read state file {}", self.path.display()));
            }
        };
        let state: EngineState = serde_json::from_slice(&text).with_context(|| {
            format!(
                "state file {} is corrupt or not a waflog state file (start over with --fresh)",
                self.path.display()
            )
        })?;
        let engine = Engine::restore(specs, map, state)
            .with_context(|| format!("cannot resume from state file {}", self.path.display()))?;
        tracing::info!("resumed from {}", self.path.display());
        Ok(Some(engine))
    }

    fn save_if_due(&mut self, engine: &Engine) -> anyhow::Result<()> {
        if self.last_save.elapsed() >= Duration::from_secs(1) {
            self.save(engine)?;
        }
        Ok(())
    }

    fn save(&mut self, engine: &Engine) -> anyhow::Result<()> {
        let context = || format!("cannot write state file {}", self.path.display());
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let json = serde_json::to_vec(&engine.snapshot()).with_context(context)?;
        {
            let mut f = std::fs::File::create(&tmp).with_context(context)?;
            f.write_all(&json).with_context(context)?;
            f.sync_all().with_context(context)?;
        }
        std::fs::rename(&tmp, &self.path).with_context(context)?;
        self.last_save = Instant::now();
        Ok(())
    }
}
