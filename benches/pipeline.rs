//! criterion benches, one group per stage: parse, transform, generate, detect; and
//! `cad_noise`, the `cad` detector on its slowest input.
//!
//! Input: `fixtures/bench.ndjson.gz` (20,000 simulated records, decompressed once
//! outside the timed part). Run with `cargo bench -p waflog-benches`; each group
//! reports bytes/s and events/s.
//!
//! `parse/waflog_full` is the typed full parse ([`WafLog::from_json`]);
//! `parse/waflog_full_before` is the same parse as it was before the one-pass
//! visitors (`legacy_schema.rs`: a `serde_json::Value`, then `#[serde(flatten)]`
//! structs), so one run gives the before and after. Only that comparison:
//! `cargo bench -p waflog-benches --bench pipeline -- 'parse/waflog_full' --measurement-time 3`.
//! `parse/s3_route` and `parse/kinesis_key` are the sinks' reads of a record (the
//! S3 sink's time and web ACL, the Kinesis sink's partition key), each one scan
//! of the line that also validates it.

use std::hint::black_box;
use std::io::Read;

mod legacy_schema;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use waflog_core::WafLog;
use waflog_core::features::FeatureMap;
use waflog_core::parse::view::RecordView;
use waflog_core::simulate::{Generator, Limit, Scenario};
use waflog_core::transform::Transformer;

fn fixture() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/bench.ndjson.gz");
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    out
}

fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

fn parse(c: &mut Criterion) {
    let data = fixture();
    let lines = lines(&data);
    let mut g = c.benchmark_group("parse");
    for (name, bytes) in [("bytes", true), ("events", false)] {
        g.throughput(if bytes {
            Throughput::Bytes(data.len() as u64)
        } else {
            Throughput::Elements(lines.len() as u64)
        });
        g.bench_function(format!("record_view/{name}"), |b| {
            b.iter(|| {
                for l in &lines {
                    let s = std::str::from_utf8(l).unwrap_or_default();
                    let v: Result<RecordView<'_>, _> = serde_json::from_str(s);
                    black_box(v.is_ok());
                }
            })
        });
        g.bench_function(format!("waflog_full/{name}"), |b| {
            b.iter(|| {
                for l in &lines {
                    let s = std::str::from_utf8(l).unwrap_or_default();
                    black_box(WafLog::from_json(s).is_ok());
                }
            })
        });
        // The sinks' reads: the S3 sink routes by time and web ACL (one scan), the
        // Kinesis sink keys by the client IP (one scan).
        let route = waflog_core::parse::TimedField::new("webaclId");
        g.bench_function(format!("s3_route/{name}"), |b| {
            b.iter(|| {
                for l in &lines {
                    black_box(route.with(l, |t, acl| (t, acl.map(str::len))));
                }
            })
        });
        let key = waflog_core::parse::FieldText::new("httpRequest.clientIp");
        g.bench_function(format!("kinesis_key/{name}"), |b| {
            b.iter(|| {
                for l in &lines {
                    black_box(key.read(l));
                }
            })
        });
        g.bench_function(format!("waflog_full_before/{name}"), |b| {
            b.iter(|| {
                for l in &lines {
                    let s = std::str::from_utf8(l).unwrap_or_default();
                    black_box(legacy_schema::WafLog::from_json(s).is_ok());
                }
            })
        });
    }
    g.finish();
}

fn transform(c: &mut Criterion) {
    let data = fixture();
    let lines = lines(&data);
    let t = Transformer::new(FeatureMap::default());
    let mut g = c.benchmark_group("transform");
    for (name, bytes) in [("bytes", true), ("events", false)] {
        g.throughput(if bytes {
            Throughput::Bytes(data.len() as u64)
        } else {
            Throughput::Elements(lines.len() as u64)
        });
        // One output buffer, cleared (not freed) between iterations, as the CLI
        // reuses its block buffer: the bench measures the transform, not page faults.
        let mut out = Vec::with_capacity(data.len() * 2);
        g.bench_function(format!("transform_line/{name}"), |b| {
            b.iter(|| {
                out.clear();
                for l in &lines {
                    black_box(t.transform_line(l, &mut out).is_ok());
                }
            })
        });
    }
    g.finish();
}

fn generate(c: &mut Criterion) {
    const N: u64 = 20_000;
    let mut scenario = Scenario::new(1, 1_714_521_600_000);
    scenario.limit = Limit::Count(N);
    let mut g = c.benchmark_group("generate");
    g.throughput(Throughput::Elements(N));
    let mut out = Vec::with_capacity(N as usize * 1024);
    g.bench_function("next_record/events", |b| {
        b.iter_batched_ref(
            || Generator::new(&scenario).unwrap_or_else(|e| panic!("{e}")),
            |generator| {
                out.clear();
                while generator.next_record(&mut out).is_some() {}
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn detect(c: &mut Criterion) {
    use waflog_core::detect::{DetectorSpec, Engine, IntervalFeatures, Prepared};
    let data = fixture();
    let lines = lines(&data);
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(lines.len() as u64));
    // Extraction, indicators, aggregation for the six built-in detectors, scoring of
    // the intervals that close: what `waflog detect` does per record.
    g.bench_function("engine_push_line/events", |b| {
        b.iter_batched_ref(
            || {
                Engine::new(&DetectorSpec::defaults(), FeatureMap::default())
                    .unwrap_or_else(|e| panic!("{e}"))
            },
            |engine| {
                let mut results = Vec::new();
                for l in &lines {
                    black_box(engine.push_line(l, &mut results).is_ok());
                }
                black_box(results.len())
            },
            BatchSize::LargeInput,
        )
    });
    // `detect --threads`: the workers' share (reading records into a batch that
    // crosses threads) and the main thread's (taking the batch's records in order:
    // aggregation and scoring), whose speed bounds what more workers can give.
    let fresh = || {
        Engine::new(&DetectorSpec::defaults(), FeatureMap::default())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let extractor = fresh().extractor();
    g.bench_function("prepare/events", |b| {
        let mut prepared = Prepared::default();
        b.iter(|| {
            prepared.clear();
            for l in &lines {
                extractor.prepare(l, &mut prepared);
            }
            black_box(prepared.len())
        })
    });
    let mut prepared = Prepared::default();
    for l in &lines {
        extractor.prepare(l, &mut prepared);
    }
    g.bench_function("engine_push_prepared/events", |b| {
        b.iter_batched_ref(
            fresh,
            |engine| {
                let mut results = Vec::new();
                for (i, l) in lines.iter().enumerate() {
                    black_box(engine.push_prepared(l, &prepared, i, &mut results).is_ok());
                }
                black_box(results.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    for features in [1usize, 5] {
        g.bench_function(format!("ewma_process/{features}_features"), |b| {
            let mut model = waflog_core::detect::AlgorithmSpec::default().build(features);
            let values: Vec<f64> = (0..features).map(|i| 10.0 + i as f64).collect();
            let mut t = 0;
            b.iter(|| {
                t += 1;
                let v: Vec<f64> = values.iter().map(|x| x + (t % 7) as f64).collect();
                black_box(model.process(&IntervalFeatures {
                    start_ms: t,
                    end_ms: t + 1,
                    values: &v,
                    categories: &[],
                }))
            })
        });
    }
    // The rcf detector has its own bench: benches/rcf.rs.
    g.finish();
}

/// `cad` over uniform white noise, its slowest input: most rows are new at first, and
/// the model stores contexts faster than on any other input (some 60,000 in these
/// rows). A fresh model per iteration over 20,000 rows, so the warm-up and every
/// re-binning are in. `bounded` is the default; `cap_20000` the context cap before
/// it was raised to 100,000 (rebuilt from the newest quarter of its history every few
/// hundred rows here); `all_propose` lets every zero-level context propose, as NAB's
/// code does.
fn cad(c: &mut Criterion) {
    use waflog_core::detect::cad::{Cad, CadParams};
    use waflog_core::detect::{Detector, IntervalFeatures};
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<f64> = (0..20_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    let mut g = c.benchmark_group("cad_noise");
    g.throughput(Throughput::Elements(noise.len() as u64));
    g.sample_size(10);
    let default = CadParams::default();
    for (name, max_proposers, max_contexts) in [
        ("bounded", default.max_proposers, default.max_contexts),
        ("cap_20000", default.max_proposers, 20_000),
        ("all_propose", 0, default.max_contexts),
    ] {
        let params = CadParams {
            max_proposers,
            max_contexts,
            ..default
        };
        g.bench_function(format!("{name}/points"), |b| {
            b.iter(|| {
                let mut d = Cad::new(params, 1);
                for (i, x) in noise.iter().enumerate() {
                    black_box(d.process(&IntervalFeatures {
                        start_ms: i as i64,
                        end_ms: i as i64 + 1,
                        values: &[*x],
                        categories: &[],
                    }));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, transform, generate, detect, cad);
criterion_main!(benches);
