//! `waflog transform --firehose`: the real binary on Firehose transformation events
//! built from fixtures/aws-examples.ndjson (fixtures/firehose/).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::{fixture, run_bytes as run};

fn waflog() -> Command {
    common::waflog_env()
}

/// Runs with `input` on stdin.
fn run_stdin(cmd: &mut Command, input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ndjson(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// Standard base64 with padding (the test crate has no base64 dependency).
fn b64decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(text.len() % 4, 0, "not padded base64: {text}");
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in chunk {
            n <<= 6;
            if c == b'=' {
                pad += 1;
            } else {
                n |= ALPHABET
                    .iter()
                    .position(|a| *a == c)
                    .expect("base64 character") as u32;
            }
        }
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The output of plain `waflog transform` on the lines of fixtures/aws-examples.ndjson.
fn transformed_examples() -> Vec<Vec<u8>> {
    let (code, out, err) = run(waflog()
        .arg("transform")
        .arg(fixture("aws-examples.ndjson")));
    assert_eq!(code, 0, "{err}");
    out.split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Checks the response's shape against the event: every recordId once, in order,
/// and returns (result, decoded data) per record.
fn answers(event: &Value, response: &[u8]) -> Vec<(String, Vec<u8>)> {
    let response: Value = serde_json::from_slice(response).unwrap();
    let keys: Vec<&String> = response.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["records"]);
    let records = response["records"].as_array().unwrap();
    let expected = event["records"].as_array().unwrap();
    assert_eq!(records.len(), expected.len());
    records
        .iter()
        .zip(expected)
        .map(|(r, e)| {
            assert_eq!(r["recordId"], e["recordId"]);
            let mut fields: Vec<&String> = r.as_object().unwrap().keys().collect();
            fields.sort();
            assert_eq!(fields, ["data", "recordId", "result"]);
            let result = r["result"].as_str().unwrap().to_string();
            if result == "ProcessingFailed" {
                assert_eq!(r["data"], e["data"], "failed records echo their data");
            }
            (result, b64decode(r["data"].as_str().unwrap()))
        })
        .collect()
}

#[test]
fn event_fixture_answers_every_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let event_path = fixture("firehose/event.json");
    let event = read_json(&event_path);
    let (code, out, err) = run(waflog()
        .args(["transform", "--firehose"])
        .arg(&event_path)
        .arg("--dead-letter")
        .arg(&dead));
    assert_eq!(code, 0, "{err}");
    let answers = answers(&event, &out);
    let results: Vec<&str> = answers.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        results,
        ["Ok", "Ok", "Ok", "ProcessingFailed", "Ok", "Ok", "Ok"]
    );
    // Ok data is exactly what `waflog transform` writes for the same line.
    let expected = transformed_examples();
    let ok: Vec<&Vec<u8>> = answers
        .iter()
        .filter(|(r, _)| r == "Ok")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(ok.len(), expected.len());
    for (data, line) in ok.iter().zip(&expected) {
        assert_eq!(*data, line);
        let v: Value = serde_json::from_slice(data).unwrap();
        assert!(v["timestamp"].is_i64());
        for k in [
            "K_country",
            "UNK_country",
            "K_action",
            "B_action",
            "K_source",
        ] {
            assert!(v[k] == 0 || v[k] == 1, "{k} in {v}");
        }
    }
    // The corrupt record is dead-lettered with its recordId and its whole payload.
    let letters = ndjson(&std::fs::read(&dead).unwrap());
    assert_eq!(letters.len(), 1);
    let failed_id = event["records"][3]["recordId"].as_str().unwrap();
    assert_eq!(letters[0]["source"], format!("firehose:{failed_id}"));
    assert_eq!(letters[0]["line"], 1);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON"),
        "{}",
        letters[0]
    );
    assert_eq!(
        letters[0]["raw"].as_str().unwrap().as_bytes(),
        answers[3].1.as_slice()
    );
    assert!(
        err.contains("7 records, 6 Ok") && err.contains("1 ProcessingFailed"),
        "{err}"
    );
}

#[test]
fn stdin_stdout_and_output_file_give_the_same_response() {
    let dir = tempfile::tempdir().unwrap();
    let event = std::fs::read(fixture("firehose/event.json")).unwrap();
    let (code, from_stdin, err) = run_stdin(waflog().args(["transform", "--firehose"]), &event);
    assert_eq!(code, 0, "{err}");
    // Dead letters go to stderr by default.
    assert!(err.contains(r#""source":"firehose:"#), "{err}");
    let (code, from_dash, _) = run_stdin(waflog().args(["transform", "--firehose", "-"]), &event);
    assert_eq!(code, 0);
    let out = dir.path().join("response.json");
    let (code, stdout, _) = run(waflog()
        .args(["transform", "--firehose"])
        .arg(fixture("firehose/event.json"))
        .arg("-o")
        .arg(&out)
        .arg("--dead-letter")
        .arg(dir.path().join("dead.ndjson")));
    assert_eq!(code, 0);
    assert!(stdout.is_empty());
    assert_eq!(from_stdin, from_dash);
    assert_eq!(from_stdin, std::fs::read(&out).unwrap());
}

#[test]
fn strict_exits_1_when_a_record_failed_and_still_answers_all() {
    let dir = tempfile::tempdir().unwrap();
    let event_path = fixture("firehose/event.json");
    let (code, out, _) = run(waflog()
        .args(["--strict", "transform", "--firehose"])
        .arg(&event_path)
        .arg("--dead-letter")
        .arg(dir.path().join("dead.ndjson")));
    assert_eq!(code, 1);
    let event = read_json(&event_path);
    assert_eq!(answers(&event, &out).len(), 7);
    // Without the corrupt record, --strict exits 0.
    let mut good = event.clone();
    good["records"].as_array_mut().unwrap().remove(3);
    let (code, out, err) = run_stdin(
        waflog().args(["transform", "--firehose", "--strict"]),
        good.to_string().as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(answers(&good, &out).iter().all(|(r, _)| r == "Ok"));
}

#[test]
fn kinesis_source_records_are_transformed_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let event_path = fixture("firehose/kinesis-event.json");
    let event = read_json(&event_path);
    assert!(event["sourceKinesisStreamArn"].is_string());
    assert!(event["records"][0]["kinesisRecordMetadata"]["shardId"].is_string());
    let (code, out, err) = run(waflog()
        .args(["transform", "--firehose"])
        .arg(&event_path)
        .arg("--dead-letter")
        .arg(&dead));
    assert_eq!(code, 0, "{err}");
    let answers = answers(&event, &out);
    let ex = transformed_examples();
    // Records aggregate lines 1-2, 3, 4 + a bad line, 5-6.
    assert_eq!(
        answers[0],
        ("Ok".to_string(), [ex[0].clone(), ex[1].clone()].concat())
    );
    assert_eq!(answers[1], ("Ok".to_string(), ex[2].clone()));
    assert_eq!(answers[2].0, "ProcessingFailed");
    assert!(answers[2].1.starts_with(&ex[3][..20]));
    assert_eq!(
        answers[3],
        ("Ok".to_string(), [ex[4].clone(), ex[5].clone()].concat())
    );
    let letters = ndjson(&std::fs::read(&dead).unwrap());
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0]["source"],
        format!(
            "firehose:{}",
            event["records"][2]["recordId"].as_str().unwrap()
        )
    );
    assert_eq!(letters[0]["line"], 2);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("unparsable timestamp"),
        "{}",
        letters[0]
    );
}

#[test]
fn the_response_stays_within_the_size_limit() {
    let event_path = fixture("firehose/event.json");
    let event = read_json(&event_path);
    let (_, full, _) = run(waflog()
        .args(["transform", "--firehose", "--dead-letter", "/dev/null"])
        .arg(&event_path));
    let full_answers = answers(&event, &full);
    // The smallest valid response: every record echoed back as ProcessingFailed.
    let records = event["records"].as_array().unwrap();
    let echo_len = br#"{"records":[]}"#.len() + records.len() - 1
        + records
            .iter()
            .map(|r| {
                serde_json::json!({"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]})
                    .to_string()
                    .len()
            })
            .sum::<usize>();
    assert!(echo_len < full.len());
    let mut fewest_ok = usize::MAX;
    for limit in [
        full.len(),
        full.len() - 1,
        (full.len() + echo_len) / 2,
        echo_len,
    ] {
        let (code, out, err) = run(waflog()
            .args(["transform", "--firehose", "--dead-letter", "/dev/null"])
            .arg("--firehose-max-response-bytes")
            .arg(limit.to_string())
            .arg(&event_path));
        assert_eq!(code, 0, "{err}");
        assert!(out.len() <= limit, "{} > {limit}", out.len());
        let got = answers(&event, &out);
        // A prefix of the good records is delivered unchanged; from the first record
        // that does not fit, everything is ProcessingFailed with its original data.
        let cut = got
            .iter()
            .zip(&full_answers)
            .position(|(g, f)| g != f)
            .unwrap_or(got.len());
        assert!(got[cut..].iter().all(|(r, _)| r == "ProcessingFailed"));
        let ok = got.iter().filter(|(r, _)| r == "Ok").count();
        fewest_ok = fewest_ok.min(ok);
        if limit == full.len() {
            assert_eq!(ok, 6);
            assert!(!err.contains("WARN"), "{err}");
        } else {
            assert!(ok < 6);
            assert!(
                err.contains("WARN") && err.contains(&format!("over {limit} bytes")),
                "{err}"
            );
        }
    }
    assert_eq!(fewest_ok, 0, "at the echo size nothing is upgraded");
    // Records failed for size count for --strict.
    let (code, _, _) = run(waflog()
        .args([
            "--strict",
            "transform",
            "--firehose",
            "--dead-letter",
            "/dev/null",
        ])
        .arg("--firehose-max-response-bytes")
        .arg((full.len() - 1).to_string())
        .arg(&event_path));
    assert_eq!(code, 1);
    // Not even the echo fits: an error, never an oversized response.
    let limit = echo_len - 1;
    let (code, out, err) = run(waflog()
        .args(["transform", "--firehose", "--firehose-max-response-bytes"])
        .arg(limit.to_string())
        .arg(&event_path));
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains(&format!("no response fits in {limit} bytes")),
        "{err}"
    );
}

#[test]
fn malformed_events_exit_2_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("response.json");
    for (input, message) in [
        ("", "empty"),
        ("not json", "not valid JSON"),
        (r#"{"invocationId":"x"}"#, "no `records` array"),
        (r#"{"records":"x"}"#, "`records` is a string"),
        (
            r#"{"records":[{"recordId":"a","data":"e30="},{"data":"e30="}]}"#,
            "records[1] has no recordId",
        ),
    ] {
        let (code, stdout, err) = run_stdin(
            waflog().args(["transform", "--firehose", "-o"]).arg(&out),
            input.as_bytes(),
        );
        assert_eq!(code, 2, "{input}: {err}");
        assert!(stdout.is_empty());
        assert!(err.contains(message), "{input}: {err}");
        assert!(!out.exists(), "no response file for {input}");
    }
}

#[test]
fn firehose_flags_are_checked() {
    let event = fixture("firehose/event.json");
    let (code, _, err) = run(waflog()
        .args(["transform", "--firehose"])
        .arg(&event)
        .arg(&event));
    assert_eq!(code, 2);
    assert!(err.contains("at most one input"), "{err}");
    let (code, _, _) = run(waflog()
        .args(["transform", "--firehose-max-response-bytes", "1000"])
        .arg(fixture("aws-examples.ndjson")));
    assert_eq!(code, 2);
    let (code, _, _) = run(waflog().args(["transform", "--firehose", "/nonexistent/event.json"]));
    assert_eq!(code, 2);
    let (code, out, _) = run(waflog().args(["transform", "--help"]));
    assert_eq!(code, 0);
    let help = String::from_utf8(out).unwrap();
    assert!(
        help.contains("--firehose") && help.contains("--firehose-max-response-bytes"),
        "{help}"
    );
}
