//! Issue 15, finding 16: a run that resumes from `--state` keeps what earlier
//! runs wrote to `--output FILE` (appends) instead of truncating it: `detect`
//! on files, and `transform kinesis://...` against kinesalite (started by
//! `bash scripts/test.sh`).

#![allow(clippy::unwrap_used)]

use std::path::Path;

mod common;
use common::{lines, request_ids, run, waflog_at, waflog_env};

/// Generates `minutes` of traffic starting at `start` into `path`.
fn generate(path: &Path, seed: u64, start: &str, minutes: u32) -> Vec<serde_json::Value> {
    let (code, _, err) = run(waflog_env()
        .args(["generate", "--seed", &seed.to_string(), "--start", start])
        .args(["--duration", &format!("{minutes}m"), "--rate", "20", "-o"])
        .arg(path));
    assert_eq!(code, 0, "{err}");
    lines(path)
}

/// (detector, interval start) of every result in `path`.
fn intervals(path: &Path) -> Vec<(String, i64)> {
    lines(path)
        .iter()
        .map(|r| {
            (
                r["detector_name"].as_str().unwrap().to_string(),
                r["data_start_time"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn detect_resuming_from_its_state_appends_to_the_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.ndjson");
    let second = dir.path().join("second.ndjson");
    generate(&first, 1, "2024-05-01T00:00:00Z", 40);
    generate(&second, 2, "2024-05-01T00:40:00Z", 40);
    let state = dir.path().join("state.json");
    let out = dir.path().join("results.ndjson");
    let detect = |input: &Path| {
        let (code, _, err) = run(waflog_env()
            .arg("detect")
            .arg(input)
            .arg("--all")
            .arg("--state")
            .arg(&state)
            .arg("-o")
            .arg(&out));
        assert_eq!(code, 0, "{err}");
    };
    detect(&first);
    let after_first = intervals(&out);
    assert!(!after_first.is_empty());
    detect(&second);
    let after_second = intervals(&out);
    // Everything the first run wrote is still there, first, and the second run's
    // results follow it, each interval once.
    assert_eq!(&after_second[..after_first.len()], &after_first[..]);
    assert!(after_second.len() > after_first.len());
    let mut unique = after_second.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), after_second.len());
    // The same as one run over both files.
    let both = dir.path().join("both.ndjson");
    let (code, _, err) = run(waflog_env()
        .arg("detect")
        .arg(&first)
        .arg(&second)
        .arg("--all")
        .arg("--state")
        .arg(dir.path().join("state2.json"))
        .arg("-o")
        .arg(&both));
    assert_eq!(code, 0, "{err}");
    assert_eq!(after_second, intervals(&both));
    // --fresh starts over: the file is rewritten.
    let (code, _, err) = run(waflog_env()
        .arg("detect")
        .arg(&first)
        .args(["--all", "--fresh", "--state"])
        .arg(&state)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(intervals(&out), after_first);
}

#[test]
fn transform_resuming_a_stream_from_its_state_appends_to_the_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let kin = common::kinesalite();
    let s = common::unique_name("append");
    common::create_stream(&kin, &s, 1);
    let first = dir.path().join("first.ndjson");
    let second = dir.path().join("second.ndjson");
    let a = generate(&first, 3, "2024-05-01T00:00:00Z", 3);
    let b = generate(&second, 4, "2024-05-01T00:03:00Z", 3);
    let state = dir.path().join("state.json");
    let out = dir.path().join("out.ndjson");
    let mut all = Vec::new();
    for (input, records) in [(&first, &a), (&second, &b)] {
        let (code, _, err) = run(waflog_at(&kin)
            .arg("transform")
            .arg(input)
            .args(["-o", &format!("kinesis://{s}")]));
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = run(waflog_at(&kin)
            .args(["transform", &format!("kinesis://{s}"), "--idle-exit", "2s"])
            .arg("--state")
            .arg(&state)
            .arg("-o")
            .arg(&out));
        assert_eq!(code, 0, "{err}");
        all.extend(records.iter().cloned());
        // Each run read only what was new, and the file holds both runs' records.
        common::assert_same_ids(&request_ids(&lines(&out)), &request_ids(&all), &err);
    }
}
