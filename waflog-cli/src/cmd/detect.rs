//! `waflog detect`: WAF logs -> per-interval features -> detectors -> results.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use waflog_core::detect::metrics::MetricSeries;
use waflog_core::detect::{AlgorithmSpec, AnomalyResult, DetectorSpec, Engine, EngineState};
use waflog_core::error::SchemaError;
use waflog_core::features::FeatureMap;
use waflog_core::lines::{Line, LineReader};
use waflog_core::transform::TransformStats;

use super::records;
use crate::aws::AwsContext;
use crate::aws::kinesis::{Event, Reader, StartPosition};
use crate::cli::{DetectArgs, GlobalArgs, InputFormat};
use crate::exit::Finished;
use crate::sink::file::{self as file_sink, Output};
use crate::source::file as file_source;
use crate::source::{self, S3Range};

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
    let mut aws = AwsContext::new(global);
    let range = S3Range::parse(args.input.since.as_deref(), args.input.until.as_deref())?;
    let idle_exit = args
        .input
        .idle_exit
        .as_deref()
        .map(|d| humantime::parse_duration(d).map_err(|e| anyhow::anyhow!("--idle-exit {d}: {e}")))
        .transpose()?;
    let kinesis = source::kinesis_stream(&args.input.inputs)?;
    let mut store = args.state.as_deref().map(StateFile::new);
    let mut engine = match &mut store {
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
        out: file_sink::create_location(args.output.as_deref(), &mut aws, &args.sink.options()?)?,
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
    let inputs = match &kinesis {
        Some(_) => Box::new(std::iter::empty()),
        None => source::inputs(&args.input.inputs, &mut aws, &range)?,
    };
    if let Some(stream) = &kinesis {
        if args.input_format == InputFormat::Csv {
            anyhow::bail!("--input-format csv reads files, not kinesis://{stream}");
        }
        let start =
            StartPosition::parse(&args.input.kinesis_start).context("invalid --kinesis-start")?;
        let checkpoints = store
            .as_ref()
            .map(|st| st.stream_checkpoints(stream))
            .unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
        let rx = kinesis_lines(aws.get()?, stream, start, checkpoints, max_line, &stop);
        follow_loop(
            rx,
            &format!("kinesis://{stream}"),
            max_line,
            &mut engine,
            &mut stats,
            &mut dead,
            &mut results,
            store.as_mut(),
            idle_exit,
            &stop,
        )?;
        stop.store(true, Ordering::SeqCst);
    }
    for input in inputs {
        let input = input?;
        let name = input.name.clone();
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
            let source = input.name.clone();
            let rx = spawn_line_reader(input, max_line);
            follow_loop(
                rx,
                &source,
                max_line,
                &mut engine,
                &mut stats,
                &mut dead,
                &mut results,
                store.as_mut(),
                idle_exit,
                &AtomicBool::new(false),
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
    /// Every line before this one came from records up to this sequence number of
    /// this shard (`stream/shard`).
    Checkpoint(String, String),
    /// A stream reader holds nothing back: the wall clock may move event time.
    CaughtUp,
    Failed(anyhow::Error),
    End,
}

/// Reads `input` on a thread of its own, line by line.
fn spawn_line_reader(input: file_source::Input, max_line: usize) -> mpsc::Receiver<Msg> {
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
                Ok(None) => Msg::End,
                Err(e) => Msg::Failed(anyhow::Error::new(e)),
            };
            let last = matches!(msg, Msg::End | Msg::Failed(_));
            if tx.send(msg).is_err() || last {
                break;
            }
        }
    });
    rx
}

/// Reads every shard of a Kinesis stream on threads of their own: each record's
/// lines, then a checkpoint after it.
fn kinesis_lines(
    aws: Arc<crate::aws::Aws>,
    stream: &str,
    start: StartPosition,
    checkpoints: BTreeMap<String, String>,
    max_line: usize,
    stop: &Arc<AtomicBool>,
) -> mpsc::Receiver<Msg> {
    let (etx, erx) = mpsc::sync_channel::<Event>(1024);
    let reader = Reader::new(aws, stream, start, checkpoints);
    let flag = Arc::clone(stop);
    std::thread::spawn(move || reader.run(&etx, &flag));
    let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
    let stream = stream.to_string();
    std::thread::spawn(move || {
        let mut number = 0u64;
        for event in erx {
            let msgs = match event {
                Event::Record {
                    shard,
                    sequence,
                    data,
                } => {
                    let mut v: Vec<Msg> = data
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.trim_ascii().is_empty())
                        .map(|l| {
                            number += 1;
                            if l.len() > max_line {
                                Msg::TooLong(number, l[..max_line].to_vec(), l.len() as u64)
                            } else {
                                Msg::Line(number, l.to_vec())
                            }
                        })
                        .collect();
                    v.push(Msg::Checkpoint(format!("{stream}/{shard}"), sequence));
                    v
                }
                Event::CaughtUp => vec![Msg::CaughtUp],
                Event::Failed(e) => vec![Msg::Failed(e)],
            };
            for m in msgs {
                if tx.send(m).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Msg::End);
    });
    rx
}

/// Follow mode: lines arrive from a reader thread; while none arrive, event time is
/// taken to advance with the wall clock from the last record seen, so intervals
/// close when traffic stops. Results are flushed as soon as they exist. Ends at the
/// end of the input, after `idle_exit` without a record, or when `stop` is set.
#[allow(clippy::too_many_arguments)]
fn follow_loop(
    rx: mpsc::Receiver<Msg>,
    source: &str,
    max_line: usize,
    engine: &mut Engine,
    stats: &mut TransformStats,
    dead: &mut Output,
    results: &mut Results,
    mut store: Option<&mut StateFile>,
    idle_exit: Option<Duration>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    let mut last_seen = Instant::now();
    // A file being followed is idle when no line comes; a stream reader says when
    // it is at the tip (a slow read of a backlog is not idleness).
    let stream = source.starts_with("kinesis://");
    let mut at_tip = !stream;
    loop {
        if stop.load(Ordering::SeqCst) {
            tracing::info!("{source}: stopping (interrupted)");
            return Ok(());
        }
        if idle_exit.is_some_and(|d| last_seen.elapsed() >= d) {
            tracing::info!(
                "{source}: no record for {:?}, stopping (--idle-exit)",
                last_seen.elapsed()
            );
            return Ok(());
        }
        let msg = rx.recv_timeout(Duration::from_millis(200));
        let mut stage =
            |line: &[u8]| -> records::LineOutcome { Ok(engine.push_line(line, &mut pending)) };
        match msg {
            Ok(Msg::Line(number, bytes)) => {
                let line = Line::Ok {
                    number,
                    bytes: &bytes,
                };
                records::handle(line, source, max_line, stats, dead, &mut stage)?;
                stats.bytes_in += bytes.len() as u64 + 1;
                last_seen = Instant::now();
                at_tip = !stream;
            }
            Ok(Msg::TooLong(number, prefix, len)) => {
                let line = Line::TooLong {
                    number,
                    prefix: &prefix,
                    len,
                };
                records::handle(line, source, max_line, stats, dead, &mut stage)?;
            }
            Ok(Msg::Checkpoint(shard, sequence)) => {
                if let Some(st) = store.as_deref_mut() {
                    st.checkpoints.insert(shard, sequence);
                }
            }
            Ok(Msg::CaughtUp) => at_tip = true,
            Ok(Msg::End) => return Ok(()),
            Ok(Msg::Failed(e)) => return Err(e.context(format!("cannot read input {source}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let idle = i64::try_from(last_seen.elapsed().as_millis()).unwrap_or(i64::MAX);
        if idle >= 200 && at_tip {
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
    /// Stream positions (`stream/shard` -> last processed sequence number), saved in
    /// the same file as the models so the two never disagree.
    checkpoints: BTreeMap<String, String>,
}

/// The state file: the engine's state plus the stream checkpoints.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    #[serde(flatten)]
    engine: EngineState,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    checkpoints: BTreeMap<String, String>,
}

impl StateFile {
    fn new(path: &Path) -> StateFile {
        StateFile {
            path: path.to_path_buf(),
            last_save: Instant::now(),
            checkpoints: BTreeMap::new(),
        }
    }

    /// The checkpoints of `stream`'s shards (shard -> sequence number).
    fn stream_checkpoints(&self, stream: &str) -> BTreeMap<String, String> {
        let prefix = format!("{stream}/");
        self.checkpoints
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v.clone())))
            .collect()
    }

    fn load(&mut self, specs: &[DetectorSpec], map: FeatureMap) -> anyhow::Result<Option<Engine>> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read state file {}", self.path.display()));
            }
        };
        let saved: Saved = serde_json::from_slice(&text).with_context(|| {
            format!(
                "state file {} is corrupt or not a waflog state file (start over with --fresh)",
                self.path.display()
            )
        })?;
        self.checkpoints = saved.checkpoints;
        let engine = Engine::restore(specs, map, saved.engine)
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
        let saved = Saved {
            engine: engine.snapshot(),
            checkpoints: self.checkpoints.clone(),
        };
        let json = serde_json::to_vec(&saved).with_context(context)?;
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
