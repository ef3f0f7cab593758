//! `waflog transform --firehose`: one Kinesis Data Firehose data-transformation event
//! in, its response out (see `waflog_core::firehose` for the rules).

use std::time::{Duration, Instant};

use anyhow::Context;
use waflog_core::firehose::{self, FirehoseStats};
use waflog_core::transform::Transformer;

use crate::cli::{GlobalArgs, TransformArgs};
use crate::exit::Finished;
use crate::sink::file as file_sink;
use crate::source::file as file_source;

/// Answers the event on stdin (or the one input file) on stdout (or `--output`).
pub fn run(global: &GlobalArgs, args: &TransformArgs) -> anyhow::Result<Finished> {
    if args.output_format == crate::cli::OutputFormat::Parquet {
        anyhow::bail!(
            "--firehose answers Firehose with JSON records: --output-format parquet does not apply (Firehose's own record format conversion writes Parquet)"
        );
    }
    let given = args.input.all();
    let name = event_input(&given, args)?;
    let config = super::load_config(global)?;
    let transformer = Transformer::new(config.feature_map()?)
        .with_ocsf(args.output_format == crate::cli::OutputFormat::Ocsf);
    let started = Instant::now();

    // The event is at most 6 MB (the Lambda request limit): read it whole, up to
    // the cap.
    let mut input = file_source::open(name)?;
    let event = crate::files::read_reader_capped(
        &mut input.reader,
        crate::files::FIREHOSE_CAP,
        "Firehose event",
        name,
    )?;

    let mut dead_buf = Vec::new();
    let (response, stats) = firehose::respond(
        &event,
        &transformer,
        args.firehose_max_response_bytes,
        |failed| {
            let source = format!("firehose:{}", failed.record_id);
            failed.dead_letter(&source).write_ndjson(&mut dead_buf);
        },
    )
    .with_context(|| {
        let from = if input.name == "-" {
            "stdin"
        } else {
            &input.name
        };
        format!("cannot answer the Firehose event from {from}")
    })?;

    // Outputs are created only once there is an answer, so a malformed event leaves
    // no empty response file behind.
    let mut out = file_sink::create(args.output.as_deref())?;
    out.write_block(&response)?;
    out.finish()?;
    let mut dead = file_sink::create_or_stderr(args.input.dead_letter.as_deref())?;
    dead.write_block(&dead_buf)?;
    dead.finish()?;

    log_summary(&stats, args, started.elapsed());
    if global.strict && stats.failed + stats.failed_for_size > 0 {
        Ok(Finished::DeadLettered)
    } else {
        Ok(Finished::Ok)
    }
}

/// The one input of the event (stdin when none is given); the input and the
/// output are files or stdin/stdout.
fn event_input<'a>(given: &'a [String], args: &TransformArgs) -> anyhow::Result<&'a str> {
    let name = match given {
        [] => "-",
        [one] => one.as_str(),
        _ => anyhow::bail!(
            "--firehose reads one event: give at most one input (a file, or `-` / nothing for stdin)"
        ),
    };
    for location in [Some(name), args.output.as_deref().and_then(|p| p.to_str())]
        .into_iter()
        .flatten()
    {
        if location.contains("://") {
            anyhow::bail!("--firehose reads and writes files or stdin/stdout, not `{location}`");
        }
    }
    Ok(name)
}

/// The answer's summary: records answered, how, and the bytes; a warning when
/// records failed for the response's size.
fn log_summary(stats: &FirehoseStats, args: &TransformArgs, elapsed: Duration) {
    if stats.failed_for_size > 0 {
        tracing::warn!(
            failed_for_size = stats.failed_for_size,
            "{} of {} records answered ProcessingFailed with their original data because \
             their transformed data would take the response over {} bytes; Firehose writes \
             them to the delivery stream's processing-failed S3 prefix (nothing is lost)",
            stats.failed_for_size,
            stats.records,
            args.firehose_max_response_bytes
        );
    }
    let dead_note = if stats.failed == 0 {
        String::new()
    } else {
        format!(
            "; {} dead-lettered to {}",
            stats.failed,
            args.input
                .dead_letter
                .as_deref()
                .map_or("stderr".into(), |p| p.display().to_string())
        )
    };
    tracing::info!(
        records = stats.records,
        ok = stats.ok,
        failed = stats.failed,
        failed_for_size = stats.failed_for_size,
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        "answered Firehose event: {} records, {} Ok ({} lines), {} ProcessingFailed ({} bad, {} over the size limit), {} bytes in, {} bytes out in {:.3}s{}",
        stats.records,
        stats.ok,
        stats.lines_out,
        stats.failed + stats.failed_for_size,
        stats.failed,
        stats.failed_for_size,
        stats.bytes_in,
        stats.bytes_out,
        elapsed.as_secs_f64(),
        dead_note
    );
}
