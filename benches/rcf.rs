//! CPU per update of the `rcf` detector (`type = "rcf"`): score, threshold and
//! corrector, then the forest update, for one interval of a model warmed up past its
//! sample size. The default forest (50 trees of 256 samples, shingle 8) caches no
//! bounding boxes (`bounding_box_cache_fraction = 0`, the compact per-entity
//! default); the `cache_1` variants cache all of them (about four times the memory).
//!
//! Run with `cargo bench -p waflog-benches --bench rcf`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use waflog_core::detect::rcf::{Rcf, RcfParams};
use waflog_core::detect::{Detector, IntervalFeatures};

/// A model of `features` features fed 1,000 intervals, and a step function feeding
/// the next interval.
fn bench_model(c: &mut Criterion, name: &str, features: usize, cache: f64) {
    let params = RcfParams {
        bounding_box_cache_fraction: cache,
        ..RcfParams::default()
    };
    let mut model = Rcf::new(features, 8, params).unwrap_or_else(|e| panic!("{e}"));
    let mut t: i64 = 0;
    let mut step = move |model: &mut Rcf| {
        t += 1;
        let v: Vec<f64> = (0..features as i64)
            .map(|i| 10.0 * (i + 1) as f64 + ((t * (i + 3)) % 7) as f64 + (t % 24) as f64)
            .collect();
        model.process(&IntervalFeatures {
            start_ms: t,
            end_ms: t + 1,
            values: &v,
            categories: &[],
        })
    };
    for _ in 0..1000 {
        step(&mut model);
    }
    let mut g = c.benchmark_group("rcf");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(30);
    g.bench_function(name, |b| b.iter(|| black_box(step(&mut model))));
    g.finish();
}

fn rcf(c: &mut Criterion) {
    bench_model(c, "process/1_feature_shingle_8", 1, 0.0);
    bench_model(c, "process/1_feature_shingle_8_cache_1", 1, 1.0);
    bench_model(c, "process/5_features_shingle_8", 5, 0.0);
    bench_model(c, "process/5_features_shingle_8_cache_1", 5, 1.0);
}

criterion_group!(benches, rcf);
criterion_main!(benches);
