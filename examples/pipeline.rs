//! An in-process pipeline with alerts: simulate WAF traffic with an injected
//! anomaly, detect anomalies per minute and alert on them, all without a file.
//!
//! Run with `cargo run -p waflog-examples --example pipeline`.

use waflog_core::Config;
use waflog_core::alert::{Evaluator, Monitor, WriteFormat, WriteNotifier};
use waflog_core::detect::{AnomalyResult, Engine};
use waflog_core::pipeline::Pipeline;
use waflog_core::simulate::{Episode, Generator, Limit, Scenario};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 40 minutes at 5 requests/s; unknown countries from minute 25 to 30.
    let mut scenario = Scenario::new(42, 1_700_000_000_000);
    scenario.rate = 5.0;
    scenario.limit = Limit::Duration(40 * 60_000);
    scenario.episodes.push(Episode::parse("country:25m:5m")?);
    let mut generator = Generator::new(&scenario)?;

    // The built-in detectors, one monitor per detector, alerts printed as text.
    let config = Config::default();
    let specs = config.detector_specs();
    let engine = Engine::new(&specs, config.feature_map()?)?;
    let eval = Evaluator::new(&Monitor::defaults(&specs), &config.channel_specs())?;
    let stdout = WriteNotifier::new("stdout", std::io::stdout(), WriteFormat::Text);
    let mut pipeline = Pipeline::new(engine)
        .with_alerting(eval, vec![Box::new(stdout)], now_ms)
        .with_observer(Vec::<AnomalyResult>::new());
    let mut line = Vec::new();
    while generator.next_record(&mut line).is_some() {
        pipeline.push_line(line.trim_ascii_end())?;
        line.clear();
    }
    let done = pipeline.finish()?;
    let stats = pipeline.stats();
    println!(
        "{} records, {} results, {} dead-lettered, {} notifications undelivered",
        stats.records, stats.results, stats.dead_lettered, done.undelivered
    );
    for r in pipeline.observer().iter().filter(|r| r.is_anomaly()) {
        println!("anomaly: {}", r.summary());
    }
    for a in pipeline.alerts().map(|b| b.list()).unwrap_or_default() {
        println!("alert {} {}: {}", a.id, a.state(), a.monitor);
    }
    for t in scenario.truth() {
        println!("injected: {} from {} to {}", t.field, t.start, t.end);
    }
    Ok(())
}

/// The delivery clock: the wall clock, epoch ms.
fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
