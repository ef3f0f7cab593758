//! `waflog transform`: inputs -> indicator records, bad lines -> dead letters.

use std::time::Instant;

use waflog_core::transform::{TransformStats, Transformer};

use super::records;
use crate::cli::{GlobalArgs, TransformArgs};
use crate::exit::Finished;
use crate::sink::file as file_sink;
use crate::source::file as file_source;

/// Output is written in blocks of about this size.
const OUT_BLOCK: usize = 1 << 20;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &TransformArgs) -> anyhow::Result<Finished> {
    let config = super::load_config_with_limit(global, args.input.max_line_bytes)?;
    let max_line = config.input.max_line_bytes;
    let transformer = Transformer::new(config.feature_map()?);
    let mut out = file_sink::create(args.output.as_deref())?;
    let mut dead = file_sink::create_or_stderr(args.input.dead_letter.as_deref())?;
    let started = Instant::now();
    let mut stats = TransformStats::default();
    let mut buf = Vec::with_capacity(OUT_BLOCK + (64 << 10));
    for name in records::input_names(&args.input.inputs) {
        let input = file_source::open(&name)?;
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
