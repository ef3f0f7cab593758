//! `waflog generate`: a scenario -> NDJSON records (+ the ground-truth file).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use waflog_core::simulate::{Episode, Generator, Limit, Profile, Scenario};

use crate::cli::{GenerateArgs, GlobalArgs};
use crate::exit::Finished;
use crate::sink::file as file_sink;

const OUT_BLOCK: usize = 1 << 20;

/// Builds the scenario from flags.
fn scenario(args: &GenerateArgs) -> anyhow::Result<Scenario> {
    let start_ms = if args.start == "now" {
        chrono::Utc::now().timestamp_millis()
    } else {
        chrono::DateTime::parse_from_rfc3339(&args.start)
            .with_context(|| {
                format!(
                    "--start {}: expected RFC 3339 such as 2024-05-01T00:00:00Z or `now`",
                    args.start
                )
            })?
            .timestamp_millis()
    };
    let seed = args.seed.unwrap_or_else(|| {
        let s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        tracing::info!("seed {s} (pass --seed {s} to repeat this run)");
        s
    });
    let mut s = Scenario::new(seed, start_ms);
    s.rate = args.rate;
    s.diurnal = args.diurnal;
    s.limit = match (args.count, &args.duration) {
        (Some(n), _) => Limit::Count(n),
        (None, Some(d)) => {
            let d = humantime::parse_duration(d).with_context(|| {
                format!("--duration {d}: expected a duration such as 90s, 15m or 24h")
            })?;
            Limit::Duration(i64::try_from(d.as_millis()).context("--duration is too long")?)
        }
        (None, None) => Limit::Duration(3_600_000),
    };
    for spec in &args.inject {
        s.episodes
            .push(Episode::parse(spec).context("invalid --inject")?);
    }
    if let Some(p) = &args.traffic_profile {
        s.profile = Profile::load(p).context("invalid --traffic-profile")?;
    }
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        anyhow::bail!("--speed {} must be a positive number", args.speed);
    }
    s.validate().context("invalid scenario")?;
    Ok(s)
}

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &GenerateArgs) -> anyhow::Result<Finished> {
    super::load_config(global)?;
    let scenario = scenario(args)?;
    let mut generator = Generator::new(&scenario)?;
    if let Some(path) = &args.truth {
        let json = serde_json::to_vec_pretty(&scenario.truth())?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write truth file {}", path.display()))?;
    }
    // Ctrl-C (SIGINT) or SIGTERM stops after the record being written: the output
    // ends with whole lines, flushed, and the run exits 0.
    // The process's one handler (shared with the AWS sinks, which Ctrl-C also stops).
    let stop = crate::interrupt::stop_on_ctrl_c()?;
    let mut aws = crate::aws::AwsContext::new(global.aws_settings());
    let mut out =
        file_sink::create_location(args.output.as_deref(), &mut aws, &args.sink.options()?)?;
    let (total, unit) = match scenario.limit {
        Limit::Count(n) => (n, "events"),
        Limit::Duration(d) => (u64::try_from(d / 1000).unwrap_or(0), "simulated seconds"),
    };
    let progress = crate::progress::bar(Some(total), unit, args.realtime);
    progress.set_message(unit);
    let started = Instant::now();
    let mut buf = Vec::with_capacity(OUT_BLOCK + 4096);
    let mut since_tick = 0u32;
    let mut pacer = Pacer {
        started,
        last_flush: started,
        start_ms: scenario.start_ms,
        speed: args.speed,
    };
    while let Some(ts) = generator.next_record(&mut buf) {
        if args.realtime {
            pacer.pace(ts, &stop, &mut buf, &mut out)?;
            if stop.load(Ordering::SeqCst) {
                tracing::info!("interrupted");
                break;
            }
        } else if stop.load(Ordering::Relaxed) {
            // `buf` holds whole records only: they are written below.
            tracing::info!("interrupted");
            break;
        } else if buf.len() >= OUT_BLOCK {
            out.write_block(&buf)?;
            buf.clear();
        }
        since_tick += 1;
        if since_tick == 1 << 15 {
            since_tick = 0;
            progress.set_position(match scenario.limit {
                Limit::Count(_) => generator.emitted(),
                Limit::Duration(_) => u64::try_from((ts - scenario.start_ms) / 1000).unwrap_or(0),
            });
        }
    }
    out.write_block(&buf)?;
    out.finish()?;
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    tracing::info!(
        events = generator.emitted(),
        episodes = scenario.episodes.len(),
        "generated {} events in {:.2}s ({:.0} events/s)",
        generator.emitted(),
        elapsed.as_secs_f64(),
        super::per_second(generator.emitted(), elapsed)
    );
    Ok(Finished::Ok)
}

/// Realtime mode: the record at `ts` is due `(ts - start) / speed` after the run
/// started. Records before it are written first; then the call sleeps until it is due
/// and writes it, so a reader downstream sees each record on time. When the generator
/// runs behind (a rate too high to pace), output is flushed at least every 100 ms.
struct Pacer {
    started: Instant,
    last_flush: Instant,
    start_ms: i64,
    speed: f64,
}

impl Pacer {
    fn pace(
        &mut self,
        ts: i64,
        stop: &AtomicBool,
        buf: &mut Vec<u8>,
        out: &mut file_sink::Output,
    ) -> anyhow::Result<()> {
        let due =
            Duration::from_secs_f64(((ts - self.start_ms) as f64 / 1000.0 / self.speed).max(0.0));
        let mut now = self.started.elapsed();
        if now < due {
            let last_start = buf[..buf.len() - 1]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            out.write_block(&buf[..last_start])?;
            out.flush()?;
            buf.drain(..last_start);
            while now < due {
                if stop.load(Ordering::SeqCst) {
                    buf.clear();
                    return Ok(());
                }
                std::thread::sleep((due - now).min(Duration::from_millis(100)));
                now = self.started.elapsed();
            }
        } else if self.last_flush.elapsed() < Duration::from_millis(100) && buf.len() < OUT_BLOCK {
            return Ok(());
        }
        out.write_block(buf)?;
        out.flush()?;
        buf.clear();
        self.last_flush = Instant::now();
        Ok(())
    }
}
