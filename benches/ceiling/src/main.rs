//! The parse ceiling: how fast the fastest JSON parsers in Rust read the records
//! `waflog transform` reads, next to waflog's own per-line transform, in one
//! process on the same lines (read into memory first, no I/O timed).
//!
//! Usage: waflog-parse-ceiling FILE.ndjson [ROUNDS]
//!
//! Per round and per line, in this order:
//! - `serde IgnoredAny`: serde_json validating the line, keeping nothing;
//! - `sonic-rs get_many`: sonic-rs validating and extracting the six fields the
//!   indicators need (`timestamp`, `action`, `httpSourceName`,
//!   `httpRequest.{country,httpMethod,clientIp}`), by a pointer tree;
//! - `sonic-rs Value`: sonic-rs parsing the whole line into its DOM;
//! - `simd-json borrowed`: simd-json's borrowed DOM (after the copy it needs,
//!   since it parses in place);
//! - `waflog transform_line`: waflog's whole work on a line: validate, read the
//!   fields, compute the indicators, write the output line.
//!
//! Prints records per second for each and waflog's share of the fastest.

use std::time::Instant;

use sonic_rs::JsonValueTrait;
use waflog_core::features::FeatureMap;
use waflog_core::transform::Transformer;

fn rate(n: usize, f: impl FnOnce() -> usize) -> (f64, usize) {
    let t = Instant::now();
    let k = f();
    (n as f64 / t.elapsed().as_secs_f64(), k)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: waflog-parse-ceiling FILE.ndjson [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    let lines: Vec<&str> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| std::str::from_utf8(l).ok())
        .collect();
    let n = lines.len();
    let mut tree = sonic_rs::PointerTree::new();
    tree.add_path(&["timestamp"]);
    tree.add_path(&["action"]);
    tree.add_path(&["httpSourceName"]);
    tree.add_path(&["httpRequest", "country"]);
    tree.add_path(&["httpRequest", "httpMethod"]);
    tree.add_path(&["httpRequest", "clientIp"]);
    let transformer = Transformer::new(FeatureMap::default());
    let names = [
        "serde IgnoredAny",
        "sonic-rs get_many",
        "sonic-rs Value",
        "simd-json borrowed",
        "waflog transform_line",
    ];
    let mut best = [0f64; 5];
    let mut check = 0usize;
    for round in 0..rounds {
        let runs = [
            rate(n, || {
                lines
                    .iter()
                    .filter(|l| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok())
                    .count()
            }),
            rate(n, || {
                lines
                    .iter()
                    .filter_map(|l| sonic_rs::get_many(*l, &tree).ok())
                    .map(|got| got.iter().filter(|v| v.is_some()).count())
                    .sum()
            }),
            rate(n, || {
                lines
                    .iter()
                    .filter_map(|l| sonic_rs::from_str::<sonic_rs::Value>(l).ok())
                    .filter(|v| v.is_object())
                    .count()
            }),
            rate(n, || {
                let mut buf = Vec::new();
                lines
                    .iter()
                    .filter(|l| {
                        buf.clear();
                        buf.extend_from_slice(l.as_bytes());
                        simd_json::to_borrowed_value(&mut buf).is_ok()
                    })
                    .count()
            }),
            rate(n, || {
                let mut out = Vec::with_capacity(4096);
                lines
                    .iter()
                    .filter(|l| {
                        out.clear();
                        transformer.transform_line(l.as_bytes(), &mut out).is_ok()
                    })
                    .count()
            }),
        ];
        let line: Vec<String> = runs
            .iter()
            .zip(names)
            .map(|((r, _), name)| format!("{name} {r:.0}/s"))
            .collect();
        println!("round {round}: {}", line.join("; "));
        for (i, (r, k)) in runs.iter().enumerate() {
            best[i] = best[i].max(*r);
            check = check.wrapping_add(*k);
        }
    }
    println!("\nbest of {rounds} rounds, {n} records (checksum {check}):");
    let top = best[..4].iter().copied().fold(0f64, f64::max);
    for (name, r) in names.iter().zip(best) {
        println!(
            "  {name:<24} {r:>12.0} records/s  ({:.2} of the fastest parser)",
            r / top
        );
    }
}
