//! `waflog transform`: inputs -> indicator records, bad lines -> dead letters.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use waflog_core::pipeline::{S3Current, State};
use waflog_core::transform::{TransformStats, Transformer};

use crate::aws::AwsContext;
use crate::cli::{GlobalArgs, TransformArgs};
use crate::exit::Finished;
use crate::location::Location;
use crate::records;
use crate::sink::file::{self as file_sink, Output};
use crate::source::cloudwatch::Positions;
use crate::source::file as file_source;
use crate::source::follow::{self, FollowStage};
use crate::source::{Inputs, Plan, S3Range};

/// Output is written in blocks of about this size.
const OUT_BLOCK: usize = 1 << 20;

/// Runs the subcommand: reads the inputs the plan names (a Kinesis stream, or
/// files, stdin and S3 prefixes read to their end) into the output, resuming
/// from `--state` and saving the position there, then reports.
pub fn run(global: &GlobalArgs, args: &TransformArgs) -> anyhow::Result<Finished> {
    if args.firehose {
        return super::firehose::run(global, args);
    }
    let config = super::load_config_with_limit(global, args.input.max_line_bytes)?;
    let max_line = config.input.max_line_bytes;
    let transformer = Transformer::new(config.feature_map()?)
        .with_ocsf(args.output_format == crate::cli::OutputFormat::Ocsf);
    let mut aws = AwsContext::new(global.aws_settings());
    let mut range = S3Range::parse(args.input.since.as_deref(), args.input.until.as_deref())?;
    let plan = Plan::new(&args.input.all(), false)?;
    // `--state` with S3 inputs: the objects already written are left out, and the
    // one in progress resumes after its records already written.
    let mut s3_state = match (&args.state, &plan) {
        (Some(p), Plan::Follow(_) | Plan::Batch(_)) => Some(load_state(p)?),
        _ => None,
    };
    let done = s3_state
        .as_ref()
        .map(|f| f.s3_done.clone())
        .unwrap_or_default();
    // CloudWatch Logs groups resume after the events already written.
    if let Some(f) = &s3_state {
        range.cloudwatch = Positions::from_checkpoints(&f.checkpoints);
    }
    let inputs = plan.inputs_skipping(&mut aws, &range, max_line, &done)?;
    let mut run = Run {
        transformer,
        out: open_output(args, &mut aws)?,
        dead: file_sink::create_or_stderr(args.input.dead_letter.as_deref())?,
        buf: Vec::with_capacity(OUT_BLOCK + (64 << 10)),
        stats: TransformStats::default(),
        max_line,
        state: args.state.as_deref(),
        threads: crate::threads::workers(args.threads),
    };
    let started = Instant::now();
    let mut checkpoints = match &plan {
        Plan::Kinesis(stream) => run.read_stream(stream, &mut aws, args)?,
        Plan::Follow(_) | Plan::Batch(_) => BTreeMap::new(),
    };
    let ledger = run.read_inputs(inputs, s3_state.as_mut())?;
    // Groups read to their end: every event read is in the output.
    if matches!(plan, Plan::Batch(_)) {
        checkpoints.extend(range.cloudwatch.checkpoints());
    }
    let stats = run.end(s3_state.as_mut(), ledger, checkpoints)?;
    log_summary(&stats, started.elapsed(), args.input.dead_letter.as_deref());
    Ok(super::finished(global, &stats))
}

/// The output (`--output`, stdout by default); a rerun with `--state` adds to
/// it instead of truncating it.
fn open_output(args: &TransformArgs, aws: &mut AwsContext) -> anyhow::Result<Output> {
    let mut sink_options = args.sink.options()?;
    sink_options.append = args.state.as_deref().is_some_and(Path::exists);
    if args.output_format == crate::cli::OutputFormat::Parquet {
        sink_options.parquet = Some(crate::sink::parquet::Layout::Records);
    }
    file_sink::create_location(args.output.as_deref(), aws, &sink_options)
}

/// The S3 inputs of a run: (name, records written before this run, output
/// records of this run before it).
type Ledger = Vec<(String, u64, u64)>;

/// A transform under way: the transformer, where its records go and its counts.
struct Run<'a> {
    transformer: Transformer,
    out: Output,
    dead: Output,
    /// Transformed records not yet written (written in blocks of [`OUT_BLOCK`]).
    buf: Vec<u8>,
    stats: TransformStats,
    max_line: usize,
    /// `--state`.
    state: Option<&'a Path>,
    /// Worker threads for file inputs (`--threads`, resolved: at least 1).
    threads: usize,
}

impl Run<'_> {
    /// Follows the Kinesis stream `stream` (resuming after the checkpoints in the
    /// state file) until its end, `--idle-exit` or Ctrl-C; returns the
    /// checkpoints of records handed to the output but not yet saved.
    fn read_stream(
        &mut self,
        stream: &str,
        aws: &mut AwsContext,
        args: &TransformArgs,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let idle_exit = super::idle_exit(&args.input)?;
        let mut file = match self.state {
            Some(p) => Some(load_state(p)?),
            None => None,
        };
        let resume = file
            .as_ref()
            .map(|f| f.stream_checkpoints(stream))
            .unwrap_or_default();
        if !resume.is_empty() {
            tracing::info!(
                "kinesis://{stream}: resuming after the checkpoints of {} shards",
                resume.len()
            );
        }
        let (rx, stop) = super::read_kinesis(aws, stream, &args.input, resume, self.max_line)?;
        // S3 objects are uploaded when their span closes, Parquet files are whole
        // when closed: only the end of the run makes what was written durable there.
        let durable_on_flush = args.output_format != crate::cli::OutputFormat::Parquet
            && !matches!(
                args.output
                    .as_deref()
                    .map(|o| Location::parse(&o.to_string_lossy()))
                    .transpose()?,
                Some(Location::S3 { .. })
            );
        let mut stage = FollowTransform {
            transformer: &self.transformer,
            out: &mut self.out,
            buf: &mut self.buf,
            last_write: Instant::now(),
            checkpoints: BTreeMap::new(),
            file: file
                .as_mut()
                .map(|f| (f, self.state.unwrap_or(Path::new("")))),
            durable_on_flush,
        };
        let source = format!("kinesis://{stream}");
        let outcome = follow::follow(
            &rx,
            &source,
            self.max_line,
            &mut self.stats,
            &mut self.dead,
            idle_exit,
            &stop,
            &mut stage,
        );
        stop.store(true, Ordering::SeqCst);
        outcome?;
        Ok(std::mem::take(&mut stage.checkpoints))
    }

    /// Reads the inputs one after another into the output; an S3 input in
    /// progress in `s3_state` (`--state`) resumes after its records already
    /// written, and each one all in the output is saved there as done. On an
    /// error the position reached is saved first. Returns the S3 inputs read.
    fn read_inputs(
        &mut self,
        inputs: Inputs,
        mut s3_state: Option<&mut State>,
    ) -> anyhow::Result<Ledger> {
        let mut ledger: Ledger = Vec::new();
        for input in inputs {
            let input = input?;
            let name = input.name.clone();
            let resume = s3_state
                .as_ref()
                .and_then(|f| f.s3_current.as_ref())
                .filter(|c| c.input == name)
                .map_or(0, |c| c.written);
            if resume > 0 {
                tracing::info!("{name}: resuming after its first {resume} records (--state)");
            }
            if name.starts_with("s3://") {
                ledger.push((name.clone(), resume, self.stats.records_out));
            }
            if let Err(e) = self.read_input(input, resume) {
                let note = match (s3_state.as_deref_mut(), self.state) {
                    (Some(file), Some(path)) if !ledger.is_empty() => save_s3_position(
                        file,
                        path,
                        &ledger,
                        &mut self.out,
                        &mut self.buf,
                        &self.stats,
                    ),
                    _ => String::new(),
                };
                self.log_stopped(&e, &note);
                return Err(e);
            }
            // The input is all in the output once a flush succeeds (files, Kinesis):
            // the position moves past it.
            if let (Some(file), Some(path), true) = (
                s3_state.as_deref_mut(),
                self.state,
                name.starts_with("s3://") && self.out.ordered_flush(),
            ) {
                self.out.write_block(&self.buf)?;
                self.buf.clear();
                self.out.flush()?;
                file.s3_done.insert(name);
                file.s3_current = None;
                super::write_state(path, file)?;
            }
        }
        Ok(ledger)
    }

    /// Transforms `input` into the output, its first `resume` records left out
    /// (written by an earlier run: neither written nor dead-lettered again).
    fn read_input(&mut self, input: file_source::Input, resume: u64) -> anyhow::Result<()> {
        let Run {
            transformer,
            out,
            dead,
            buf,
            stats,
            max_line,
            threads,
            ..
        } = self;
        if resume == 0 && *threads > 1 {
            // What earlier inputs left in the buffer goes first.
            if !buf.is_empty() {
                out.write_block(buf)?;
                buf.clear();
            }
            return records::each_line_parallel(
                input,
                *max_line,
                *threads,
                stats,
                dead,
                &|line, out| transformer.transform_line(line, out),
                |block| out.write_block(block),
            );
        }
        let mut to_skip = resume;
        let mut skipped_lines = 0u64;
        let read = records::each_line(input, *max_line, stats, dead, |line| {
            if to_skip > 0 {
                // Written by an earlier run: neither written nor dead-lettered again.
                let before = buf.len();
                let good = transformer.transform_line(line, buf).is_ok();
                buf.truncate(before);
                to_skip -= u64::from(good);
                skipped_lines += 1;
                return Ok(Ok(()));
            }
            let outcome = transformer.transform_line(line, buf);
            if buf.len() >= OUT_BLOCK {
                out.write_block(buf)?;
                buf.clear();
            }
            Ok(outcome)
        });
        stats.records_in -= skipped_lines;
        stats.records_out -= skipped_lines;
        read
    }

    /// Says where a run that stopped on `e` stopped (`note`: where a rerun
    /// resumes), before the error itself; a closed stdout is a normal way to
    /// stop: nothing to report.
    fn log_stopped(&self, e: &anyhow::Error, note: &str) {
        if !crate::exit::is_broken_pipe(e) {
            tracing::warn!(
                records_in = self.stats.records_in,
                records_out = self.stats.records_out,
                "stopped after reading {} records and handing {} to {}{note}",
                self.stats.records_in,
                self.stats.records_out,
                self.out.name
            );
        }
    }

    /// Finishes the output and the dead letters, then saves in the state file
    /// the S3 inputs read (`ledger`, with `s3_state`) and the stream checkpoints
    /// now covered by the output. The run's counts.
    fn end(
        self,
        s3_state: Option<&mut State>,
        ledger: Ledger,
        checkpoints: BTreeMap<String, String>,
    ) -> anyhow::Result<TransformStats> {
        let Run {
            mut out,
            mut dead,
            buf,
            mut stats,
            state,
            ..
        } = self;
        out.write_block(&buf)?;
        let (rejects, rejected) = out.finish_with_rejects()?;
        if rejected > 0 {
            stats.dead_lettered += rejected;
            dead.write_block(&rejects)?;
        }
        dead.finish()?;
        if let (Some(file), Some(path)) = (s3_state, state) {
            file.s3_done.extend(ledger.into_iter().map(|(n, _, _)| n));
            file.s3_current = None;
            super::write_state(path, file)?;
        }
        // Everything read is in the output now: the checkpoints can move.
        if let (Some(path), false) = (state, checkpoints.is_empty()) {
            let mut file = load_state(path)?;
            file.checkpoints.extend(checkpoints);
            super::write_state(path, &file)?;
        }
        Ok(stats)
    }
}

/// The run's summary: records, speed, dead letters.
fn log_summary(stats: &TransformStats, elapsed: Duration, dead_letter: Option<&Path>) {
    tracing::info!(
        records_in = stats.records_in,
        records_out = stats.records_out,
        dead_lettered = stats.dead_lettered,
        blank = stats.blank,
        "transformed {} records in {:.2}s: {:.0} events/s, {:.1} MB/s{}",
        stats.records_out,
        elapsed.as_secs_f64(),
        super::per_second(stats.records_in, elapsed),
        super::per_second(stats.bytes_in, elapsed) / 1e6,
        records::dead_letter_note(stats, dead_letter)
    );
}

/// A followed stream: transformed lines are written in blocks, and at least once a
/// second while records come, so the output keeps up with the stream.
struct FollowTransform<'a> {
    transformer: &'a Transformer,
    out: &'a mut Output,
    buf: &'a mut Vec<u8>,
    last_write: Instant,
    /// Checkpoints of records handed to the output but not yet saved.
    checkpoints: BTreeMap<String, String>,
    /// `--state`: the checkpoint file and its path.
    file: Option<(&'a mut State, &'a Path)>,
    /// A flush makes the output durable (files, Kinesis; not S3).
    durable_on_flush: bool,
}

impl FollowStage for FollowTransform<'_> {
    fn line(&mut self, line: &[u8]) -> records::LineOutcome {
        let outcome = self.transformer.transform_line(line, self.buf);
        if self.buf.len() >= OUT_BLOCK {
            self.out.write_block(self.buf)?;
            self.buf.clear();
            self.last_write = Instant::now();
        }
        Ok(outcome)
    }

    fn checkpoint(&mut self, shard: String, sequence: String) {
        self.checkpoints.insert(shard, sequence);
    }

    fn tick(&mut self, idle_ms: Option<i64>, _stats: &TransformStats) -> anyhow::Result<()> {
        if !self.buf.is_empty()
            && (idle_ms.is_some() || self.last_write.elapsed() >= Duration::from_secs(1))
        {
            // Checkpoints taken before the flush cover only records now written.
            let covered = std::mem::take(&mut self.checkpoints);
            self.out.write_block(self.buf)?;
            self.buf.clear();
            self.out.flush()?;
            self.last_write = Instant::now();
            if let (Some((file, path)), true) = (self.file.as_mut(), self.durable_on_flush) {
                file.checkpoints.extend(covered);
                super::write_state(path, file)?;
            } else {
                // Not durable yet: kept for the save at the end of the run.
                for (k, v) in covered {
                    self.checkpoints.entry(k).or_insert(v);
                }
            }
        }
        Ok(())
    }
}

/// After a run stopped on an error: saves in the checkpoint file which S3
/// inputs are all in the output and how many records of the one in progress
/// are; returns a note for the message saying where a rerun resumes.
fn save_s3_position(
    file: &mut State,
    path: &Path,
    ledger: &[(String, u64, u64)],
    out: &mut Output,
    buf: &mut Vec<u8>,
    stats: &TransformStats,
) -> String {
    // What the output holds, counted in records from the first of this run: all
    // of them when the rest can still be flushed, else what the output says.
    let flushed = out.ordered_flush() && out.write_block(buf).and_then(|()| out.flush()).is_ok();
    buf.clear();
    let written = match (flushed, out.committed()) {
        (true, Some(c)) => c,
        (true, None) => stats.records_out,
        (false, Some(c)) => c,
        (false, None) => {
            return format!(
                "; {} cannot tell which records it holds, so the position in {} was not moved: a rerun repeats what this run wrote",
                out.name,
                path.display()
            );
        }
    };
    let Some(at) = ledger.iter().rposition(|(_, _, start)| *start <= written) else {
        return String::new();
    };
    for (name, _, _) in &ledger[..at] {
        file.s3_done.insert(name.clone());
    }
    let (name, before, start) = &ledger[at];
    let current = S3Current {
        input: name.clone(),
        written: before + (written - start),
    };
    let note = format!(
        "; {written} of them are in {}. Resume position saved in {}: {} inputs done, {} records of {name} written; run the same command again to resume there",
        out.name,
        path.display(),
        file.s3_done.len(),
        current.written
    );
    file.s3_current = Some(current);
    match super::write_state(path, file) {
        Ok(()) => note,
        Err(e) => format!("; the resume position could not be saved: {e:#}"),
    }
}

/// The `--state` file of a transform (empty when it does not exist yet).
fn load_state(path: &Path) -> anyhow::Result<State> {
    Ok(super::read_state(path, "")?.unwrap_or_default())
}
