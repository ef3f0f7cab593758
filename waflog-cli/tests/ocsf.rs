//! `--output-format ocsf` end to end on the built binary: `transform` writes one OCSF
//! HTTP Activity per record (bad lines still dead-lettered, counts exact), `--firehose`
//! answers with OCSF data, and `detect` writes one Detection Finding per anomaly. The
//! events themselves are validated against OCSF's class definitions in the core's
//! tests (`waflog_core::ocsf`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

mod common;
use common::{fixture, run};

fn waflog() -> Command {
    common::waflog_env()
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn transform_writes_one_http_activity_per_record_and_dead_letters_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let (code, out, err) = run(waflog()
        .args(["transform", "--output-format", "ocsf"])
        .arg(fixture("mixed.ndjson"))
        .arg("--dead-letter")
        .arg(&dead));
    assert_eq!(code, 0, "{err}");
    let evs = events(&out);
    // mixed.ndjson: 6 good records, 2 blank lines, 10 bad ones.
    assert_eq!(evs.len(), 6, "{out}");
    assert_eq!(events(&std::fs::read_to_string(&dead).unwrap()).len(), 10);
    for ev in &evs {
        assert_eq!(ev["class_uid"], 4002);
        assert_eq!(ev["metadata"]["version"], "1.1.0");
        assert!(ev["time"].as_i64().unwrap() > 1_000_000_000_000, "{ev}");
        // The indicators are kept, under `unmapped`.
        assert!(ev["unmapped"]["B_action"].is_i64(), "{ev}");
    }
    // The documented examples, mapped field by field.
    let (code, out, err) = run(waflog()
        .args(["transform", "--output-format", "ocsf"])
        .arg(fixture("aws-examples.ndjson")));
    assert_eq!(code, 0, "{err}");
    let evs = events(&out);
    assert_eq!(evs.len(), 6);
    assert_eq!(evs[1]["http_response"]["code"], 403);
    assert_eq!(
        evs[1]["firewall_rule"]["uid"],
        "AWS-AWSManagedRulesSQLiRuleSet"
    );
    assert_eq!(evs[1]["src_endpoint"]["ip"], "198.51.100.23");
    assert_eq!(evs[1]["cloud"]["region"], "eu-west-1");
}

#[test]
fn firehose_answers_with_ocsf_data() {
    let (code, out, err) = run(waflog()
        .args(["transform", "--firehose", "--output-format", "ocsf"])
        .arg(fixture("firehose/event.json")));
    assert_eq!(code, 0, "{err}");
    let response: Value = serde_json::from_str(&out).unwrap();
    let records = response["records"].as_array().unwrap();
    let ok: Vec<&Value> = records.iter().filter(|r| r["result"] == "Ok").collect();
    assert_eq!(ok.len(), 6, "{out}");
    for r in ok {
        let data = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        let evs = events(std::str::from_utf8(&data).unwrap());
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0]["class_uid"], 4002);
    }
}

#[test]
fn detect_writes_one_detection_finding_per_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs.ndjson");
    let (code, _, err) = run(waflog()
        .args(["generate", "--seed", "7", "--start", "2024-05-01T00:00:00Z"])
        .args([
            "--duration",
            "40m",
            "--rate",
            "5",
            "--inject",
            "flood:20m:5m:8",
        ])
        .arg("-o")
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    let (code, results, err) = run(waflog().args(["detect"]).arg(&logs));
    assert_eq!(code, 0, "{err}");
    let results = events(&results);
    assert!(!results.is_empty());
    for all in [false, true] {
        let mut cmd = waflog();
        cmd.args(["detect", "--output-format", "ocsf"]).arg(&logs);
        if all {
            cmd.arg("--all");
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{err}");
        let findings = events(&out);
        assert_eq!(findings.len(), results.len(), "--all {all}");
        for (f, r) in findings.iter().zip(&results) {
            assert_eq!(f["class_uid"], 2004);
            assert_eq!(f["type_uid"], 200401);
            assert_eq!(f["finding_info"]["analytic"]["name"], r["detector_name"]);
            assert_eq!(f["start_time"], r["data_start_time"]);
            assert_eq!(f["unmapped"]["anomaly_grade"], r["anomaly_grade"]);
        }
        // The flooding client is among the observables.
        assert!(findings.iter().any(|f| {
            f["observables"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["type_id"] == 2))
        }));
    }
}
