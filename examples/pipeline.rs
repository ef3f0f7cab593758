//! An in-process pipeline: simulate WAF traffic with an injected anomaly, transform it
//! to indicators, and count unknown countries per minute, all without touching a file.
//!
//! Run with `cargo run -p waflog-examples --example pipeline`.

use std::collections::BTreeMap;

use waflog_core::features::FeatureMap;
use waflog_core::simulate::{Episode, Generator, Limit, Scenario};
use waflog_core::transform::Transformer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut scenario = Scenario::new(42, 1_700_000_000_000);
    scenario.rate = 20.0;
    scenario.limit = Limit::Duration(10 * 60_000);
    scenario.episodes.push(Episode::parse("country:4m:2m")?);
    let mut generator = Generator::new(&scenario)?;
    let transformer = Transformer::new(FeatureMap::default());

    let (mut raw, mut transformed) = (Vec::new(), Vec::new());
    let mut unknown_per_minute: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    while let Some(ts) = generator.next_record(&mut raw) {
        transformed.clear();
        transformer.transform_line(raw.trim_ascii_end(), &mut transformed)?;
        raw.clear();
        let record: serde_json::Value = serde_json::from_slice(&transformed)?;
        let slot = unknown_per_minute.entry(ts / 60_000).or_default();
        slot.0 += 1;
        slot.1 += record["UNK_country"].as_u64().unwrap_or(0);
    }
    println!("minute  requests  UNK_country");
    for (minute, (n, unk)) in &unknown_per_minute {
        let start = waflog_core::timestamp::to_rfc3339(minute * 60_000);
        println!("{start}  {n:>8}  {unk:>11}");
    }
    for t in scenario.truth() {
        println!("injected: {} from {} to {}", t.field, t.start, t.end);
    }
    Ok(())
}
