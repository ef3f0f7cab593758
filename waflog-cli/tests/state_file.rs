//! The one `--state` file: a file written before the state had one type in the
//! core (`fixtures/state/detect-v1.json`) still serves `alerts`, `report` and a
//! resumed `detect`; a state of another version is a clear error everywhere.

#![allow(clippy::unwrap_used)]

mod common;
use common::{fixture, run, waflog_env};

#[test]
fn a_state_file_of_the_format_before_still_serves_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::copy(fixture("state/detect-v1.json"), &state).unwrap();

    let (code, out, err) = run(waflog_env()
        .args(["alerts", "--state"])
        .arg(&state)
        .args(["list", "--all", "--json"]));
    assert_eq!(code, 0, "{err}");
    let alerts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{out}");
    assert_eq!(alerts[0]["monitor"], "UNK_country-Monitor");
    assert_eq!(alerts[0]["lifecycle"], "COMPLETED");

    // The 5 minutes after the fixture's 40: the run resumes from its models.
    let logs = dir.path().join("more.ndjson");
    let (code, _, err) = run(waflog_env()
        .args(["generate", "--seed", "8", "--start", "2024-05-01T00:40:00Z"])
        .args(["--duration", "5m", "--rate", "5", "-o"])
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    let more = std::fs::read_to_string(&logs).unwrap().lines().count() as u64;
    let results = dir.path().join("results.ndjson");
    let (code, _, err) = run(waflog_env()
        .args(["detect", "--all", "--alerts", "--state"])
        .arg(&state)
        .arg("-o")
        .arg(&results)
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(11783 records taken in so far)"), "{err}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["records"], 11_783 + more);
    assert_eq!(saved["alerts"]["history"].as_array().unwrap().len(), 1);

    let (code, _, err) = run(waflog_env()
        .arg("report")
        .arg(&results)
        .arg("--state")
        .arg(&state)
        .arg("-o")
        .arg(dir.path().join("report.html")));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_state_of_another_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"version":2,"checkpoints":{}}"#).unwrap();
    let logs = fixture("aws-examples.ndjson");
    let (code, _, err) = run(waflog_env()
        .args(["detect", "--state"])
        .arg(&state)
        .arg(&logs));
    assert_eq!(code, 2);
    assert!(
        err.contains("state.json") && err.contains("version 2") && err.contains("--fresh"),
        "{err}"
    );
    let (code, _, err) = run(waflog_env()
        .args(["alerts", "--state"])
        .arg(&state)
        .arg("list"));
    assert_eq!(code, 2);
    assert!(err.contains("version 2"), "{err}");
}
