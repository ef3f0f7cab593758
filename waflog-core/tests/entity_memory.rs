//! Per-entity models: memory per model and the eviction budget. In a test binary of
//! its own, so no other test's memory is counted.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use waflog_core::detect::{BYTES_PER_ENTITY, DetectorSpec, Engine};
use waflog_core::features::FeatureMap;

/// Resident memory of this process in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn per_client_spec() -> Vec<DetectorSpec> {
    let mut s = DetectorSpec::indicator_sum("blocks-per-client", "B_action");
    s.category_field = Some("httpRequest.clientIp".into());
    s.window_delay_ms = 0;
    vec![s]
}

/// Feeds `intervals` one-minute intervals in which each of `clients` clients sends one
/// request.
fn feed(engine: &mut Engine, clients: u32, intervals: i64) {
    let mut results = Vec::new();
    for minute in 0..=intervals {
        for c in 0..clients {
            let line = format!(
                r#"{{"timestamp":{},"action":"ALLOW","httpRequest":{{"clientIp":"10.{}.{}.{}","country":"US","httpMethod":"GET","uri":"/"}},"httpSourceName":"ALB","terminatingRuleId":"Default_Action"}}"#,
                1_714_521_600_000 + minute * 60_000 + i64::from(c % 50_000),
                c >> 16,
                (c >> 8) & 255,
                c & 255
            );
            engine.push_line(line.as_bytes(), &mut results).unwrap();
        }
        results.clear();
    }
}

/// The tests measure the resident memory of the whole process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn entity_memory_and_eviction() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const CLIENTS: u32 = 50_000;
    let before = rss();
    let mut engine = Engine::new(&per_client_spec(), FeatureMap::default()).unwrap();
    feed(&mut engine, CLIENTS, 3);
    let per_entity = (rss() - before) / CLIENTS as usize;
    println!(
        "resident memory per entity model: {per_entity} bytes (budget constant {BYTES_PER_ENTITY})"
    );
    assert!(
        per_entity <= BYTES_PER_ENTITY,
        "{per_entity} bytes per entity"
    );
    assert_eq!(engine.stats().evicted, 0);

    // A budget of 1,000 models: the least recently active go first, in batches.
    let mut engine = Engine::new(&per_client_spec(), FeatureMap::default())
        .unwrap()
        .with_max_entities(1_000);
    feed(&mut engine, 5_000, 2);
    let evicted = engine.stats().evicted;
    // Each close round leaves at most 990 models; 5,000 new entities per round.
    assert!(evicted >= 2 * (5_000 - 990), "{evicted}");
    let state = engine.snapshot();
    let json = serde_json::to_value(&state).unwrap();
    let models = json["slots"][0]["models"].as_array().unwrap().len();
    assert!(models <= 1_000, "{models}");
}
