//! `waflog transform`: inputs -> indicator records, bad lines -> dead letters.

use std::time::Instant;

use waflog_core::transform::{TransformStats, Transformer};

use super::records;
use crate::aws::AwsContext;
use crate::cli::{GlobalArgs, TransformArgs};
use crate::exit::Finished;
use crate::sink::file as file_sink;
use crate::source::{self, S3Range};

/// Output is written in blocks of about this size.
const OUT_BLOCK: usize = 1 << 20;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &TransformArgs) -> anyhow::Result<Finished> {
    if args.firehose {
        return super::firehose::run(global, args);
    }
    let config = super::load_config_with_limit(global, args.input.max_line_bytes)?;
    let max_line = config.input.max_line_bytes;
    let transformer = Transformer::new(config.feature_map()?);
    let mut aws = AwsContext::new(global);
    let range = S3Range::parse(args.input.since.as_deref(), args.input.until.as_deref())?;
    if let Some(stream) = source::kinesis_stream(&args.input.inputs)? {
        anyhow::bail!(
            "kinesis://{stream} as a transform input is not supported yet: `waflog detect kinesis://{stream}` reads streams"
        );
    }
    let inputs = source::inputs(&args.input.inputs, &mut aws, &range)?;
    let mut out =
        file_sink::create_location(args.output.as_deref(), &mut aws, &args.sink.options()?)?;
    let mut dead = file_sink::create_or_stderr(args.input.dead_letter.as_deref())?;
    let started = Instant::now();
    let mut stats = TransformStats::default();
    let mut buf = Vec::with_capacity(OUT_BLOCK + (64 << 10));
    for input in inputs {
        let input = input?;
        records::each_line(input, max_line, &mut stats, &mut dead, |line| {
            let outcome = transformer.transform_line(line, &mut buf);
            if buf.len() >= OUT_BLOCK {
                out.write_block(&buf)?;
                buf.clear();
            }
            Ok(outcome)
        })?;
    }
    out.write_block(&buf)?;
    out.finish()?;
    dead.finish()?;
    let elapsed = started.elapsed();
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
        records::dead_letter_note(&stats, args.input.dead_letter.as_deref())
    );
    Ok(super::finished(global, &stats))
}
