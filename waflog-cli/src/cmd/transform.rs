//! `waflog transform`: inputs -> indicator records, bad lines -> dead letters.

use std::time::Instant;

use anyhow::Context;
use waflog_core::error::SchemaError;
use waflog_core::lines::{Line, LineReader};
use waflog_core::transform::{DeadLetter, TransformStats, Transformer};

use crate::cli::{GlobalArgs, TransformArgs};
use crate::exit::Finished;
use crate::sink::file::{self as file_sink, Output};
use crate::source::file as file_source;

/// Output is written in blocks of about this size.
const OUT_BLOCK: usize = 1 << 20;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &TransformArgs) -> anyhow::Result<Finished> {
    let mut config = super::load_config(global)?;
    if let Some(m) = args.max_line_bytes {
        config.input.max_line_bytes = m;
        config
            .validate(std::path::Path::new("--max-line-bytes"))
            .context("invalid --max-line-bytes")?;
    }
    let transformer = Transformer::new(config.feature_map()?);
    let inputs = if args.inputs.is_empty() {
        vec!["-".to_string()]
    } else {
        args.inputs.clone()
    };
    let mut out = file_sink::create(args.output.as_deref())?;
    let mut dead = file_sink::create_or_stderr(args.dead_letter.as_deref())?;
    let started = Instant::now();
    let mut stats = TransformStats::default();
    for name in &inputs {
        let input = file_source::open(name)?;
        transform_one(
            input,
            &transformer,
            config.input.max_line_bytes,
            &mut out,
            &mut dead,
            &mut stats,
        )?;
    }
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
        if stats.dead_lettered > 0 {
            format!(
                "; {} dead-lettered to {}",
                stats.dead_lettered,
                args.dead_letter
                    .as_ref()
                    .map_or("stderr".into(), |p| p.display().to_string())
            )
        } else {
            String::new()
        }
    );
    Ok(if global.strict && stats.dead_lettered > 0 {
        Finished::DeadLettered
    } else {
        Finished::Ok
    })
}

fn transform_one(
    input: file_source::Input,
    transformer: &Transformer,
    max_line: usize,
    out: &mut Output,
    dead: &mut Output,
    stats: &mut TransformStats,
) -> anyhow::Result<()> {
    let progress = crate::progress::bar(input.size, "bytes", false);
    let source = input.name.clone();
    let mut lines = LineReader::new(input.reader, max_line);
    let mut buf = Vec::with_capacity(OUT_BLOCK + (64 << 10));
    let mut dead_buf = Vec::new();
    let mut since_tick = 0u32;
    loop {
        let line = lines
            .next_line()
            .with_context(|| format!("cannot read input {source}"))?;
        let Some(line) = line else { break };
        match line {
            Line::Ok { number, bytes } => {
                if bytes.trim_ascii().is_empty() {
                    stats.blank += 1;
                    continue;
                }
                stats.records_in += 1;
                match transformer.transform_line(bytes, &mut buf) {
                    Ok(()) => stats.records_out += 1,
                    Err(e) => {
                        stats.dead_lettered += 1;
                        DeadLetter::new(&source, number, &e, bytes).write_ndjson(&mut dead_buf);
                    }
                }
            }
            Line::TooLong {
                number,
                prefix,
                len,
            } => {
                stats.records_in += 1;
                stats.dead_lettered += 1;
                let e = SchemaError::LineTooLong { len, max: max_line };
                DeadLetter::new(&source, number, &e, prefix).write_ndjson(&mut dead_buf);
            }
        }
        if buf.len() >= OUT_BLOCK {
            out.write_block(&buf)?;
            buf.clear();
        }
        if !dead_buf.is_empty() {
            dead.write_block(&dead_buf)?;
            dead_buf.clear();
        }
        since_tick += 1;
        if since_tick == 1 << 16 {
            since_tick = 0;
            progress.set_position(lines.bytes_read());
        }
    }
    out.write_block(&buf)?;
    stats.bytes_in += lines.bytes_read();
    progress.finish_and_clear();
    Ok(())
}
