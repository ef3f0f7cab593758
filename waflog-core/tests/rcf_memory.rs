//! Per-entity `rcf` forests: resident memory per model. In a test binary of its
//! own (not beside `entity_memory.rs`): memory another test frees while this one
//! measures would make the difference meaningless.

#![allow(clippy::unwrap_used)]

use waflog_core::detect::{AlgorithmSpec, IntervalFeatures};

/// Resident memory of this process in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Per-entity `rcf` models (one feature, the defaults: 50 trees of 256 samples,
/// shingle 8, no bounding-box cache), each fed past its sample size: at least 3,000
/// fit in 1 GiB, and `model_bytes` (the default entity cap) does not underestimate
/// them.
#[test]
fn rcf_entity_memory() {
    const MODELS: usize = 60;
    const INTERVALS: usize = 300;
    let spec: AlgorithmSpec = toml::from_str("type = \"rcf\"").unwrap();
    let before = rss();
    let mut models = Vec::with_capacity(MODELS);
    for m in 0..MODELS {
        let mut model = spec.build_shingled(1, 8);
        for t in 0..INTERVALS {
            let v = [100.0 + (t % 24) as f64 + ((t * 7 + m) % 5) as f64];
            model.process(&IntervalFeatures {
                start_ms: t as i64,
                end_ms: t as i64 + 1,
                values: &v,
                categories: &[],
            });
        }
        models.push(model);
    }
    let per_model = rss().saturating_sub(before) / MODELS;
    // A forest of 50 trees of 256 samples is hundreds of kilobytes: a smaller
    // figure means the measurement failed, not that the model is small.
    assert!(
        per_model > 50_000,
        "{per_model} bytes per model: RSS did not grow"
    );
    let per_gib = (1usize << 30) / per_model;
    println!(
        "rcf: {per_model} resident bytes per one-feature model, {per_gib} models per GiB (model_bytes {})",
        spec.model_bytes(1, 8)
    );
    assert!(per_gib >= 3_000, "{per_model} bytes per rcf model");
    assert!(spec.model_bytes(1, 8) >= per_model, "{per_model}");
    assert_eq!(models.len(), MODELS);
}
