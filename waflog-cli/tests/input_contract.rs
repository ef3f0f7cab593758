//! Bad input of every kind (issue 15): time jumps, future-dated and late records,
//! damaged gzip, Firehose records without data, records `transform` and `detect`
//! must agree on, and timestamps in every unit. Each test runs the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

fn waflog() -> Command {
    common::waflog_env()
}

fn ndjson(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `waflog generate` output for `duration` from `start`, with injected episodes.
fn generate(
    start: &str,
    duration: &str,
    seed: &str,
    inject: &[&str],
    truth: Option<&Path>,
) -> Vec<u8> {
    let mut cmd = waflog();
    cmd.args([
        "generate",
        "--seed",
        seed,
        "--rate",
        "20",
        "--start",
        start,
        "--duration",
        duration,
    ]);
    for i in inject {
        cmd.args(["--inject", i]);
    }
    if let Some(t) = truth {
        cmd.arg("--truth").arg(t);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn records(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// `waflog [global] detect --all INPUT` with results and dead letters in `dir`:
/// the process output and the two paths.
fn detect_all(
    dir: &Path,
    input: &Path,
    global: &[&str],
) -> (std::process::Output, PathBuf, PathBuf) {
    let (results, dead) = (dir.join("r.ndjson"), dir.join("d.ndjson"));
    let out = waflog()
        .args(global)
        .args(["detect", "--all"])
        .arg(input)
        .arg("--output")
        .arg(&results)
        .arg("--dead-letter")
        .arg(&dead)
        .output()
        .unwrap();
    (out, results, dead)
}

/// `waflog eval`'s recall of the results against the truth.
fn recall(truth: &Path, results: &Path) -> f64 {
    let (code, eval, err) = common::run(
        waflog()
            .args(["eval", "--json", "--truth"])
            .arg(truth)
            .arg(results),
    );
    assert_eq!(code, 0, "{err}");
    let eval: Value = serde_json::from_str(&eval).unwrap();
    eval["recall"].as_f64().unwrap()
}

fn write_lines(path: &Path, lines: &[Value]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        serde_json::to_writer(&mut f, l).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

#[test]
fn one_future_dated_record_is_dead_lettered_and_detection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    let mut lines = records(&generate(
        "2026-02-03T00:00:00Z",
        "3h",
        "11",
        &["country:2h:10m"],
        Some(&truth),
    ));
    let n = lines.len();
    // One record a day ahead, a third of the way in; another 9999-12-31.
    let mut ahead = lines[n / 3].clone();
    ahead["timestamp"] = (ahead["timestamp"].as_i64().unwrap() + 86_400_000).into();
    lines.insert(n / 3, ahead);
    let mut far = lines[n / 2].clone();
    far["timestamp"] = 253_402_300_740_000_i64.into();
    lines.insert(n / 2, far);
    let input = dir.path().join("in.ndjson");
    write_lines(&input, &lines);
    let (out, results, dead) = detect_all(dir.path(), &input, &["--strict"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // --strict: something was dead-lettered.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let dead = ndjson(&dead);
    assert_eq!(dead.len(), 2, "{dead:?}");
    for d in &dead {
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason.contains("ahead of the stream's event time"),
            "{reason}"
        );
    }
    assert!(stderr.contains("2 records too far ahead"), "{stderr}");
    // Nothing else lost: the episode is found and no record came late.
    assert!(!stderr.contains("late records"), "{stderr}");
    assert_eq!(recall(&truth, &results), 1.0);
}

#[test]
fn a_real_gap_is_followed_in_bounded_results_and_far_dates_do_not_abort() {
    let dir = tempfile::tempdir().unwrap();
    // Half an hour of traffic, a year of silence, half an hour more.
    let mut bytes = generate("2025-02-03T00:00:00Z", "30m", "1", &[], None);
    bytes.extend(generate("2026-02-03T00:00:00Z", "30m", "2", &[], None));
    let total = records(&bytes).len();
    let input = dir.path().join("gap.ndjson");
    std::fs::write(&input, &bytes).unwrap();
    let (out, results, dead) = detect_all(dir.path(), &input, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The jump is confirmed by the 8th record after it; the 7 before stay in the
    // dead letters, replayable.
    assert_eq!(ndjson(&dead).len(), 7, "{stderr}");
    assert!(stderr.contains("event time jumped 1 times"), "{stderr}");
    // Six detectors, an hour of traffic each side, one day of zero-filled gap at
    // most: not a result per minute of the year (525,600 per detector before).
    let results = ndjson(&results);
    assert!(results.len() <= 6 * (60 + 1440 + 2), "{}", results.len());
    let records_in: u64 = results
        .iter()
        .filter(|r| r["detector_name"] == "request-count-detector")
        .map(|r| r["records"].as_u64().unwrap_or(0))
        .sum();
    // Every record but the dead-lettered ones and the last open interval counted.
    assert!(records_in + 7 <= total as u64 && records_in + 7 + 2000 > total as u64);

    // Two records one year apart, and one dated 9999-12-31: no abort, no flood.
    let mut two = records(&generate("2025-02-03T00:00:00Z", "1s", "3", &[], None));
    two.truncate(2);
    two[1]["timestamp"] = (two[0]["timestamp"].as_i64().unwrap() + 365 * 86_400_000).into();
    let mut far = two[0].clone();
    far["timestamp"] = 253_402_300_799_999_i64.into();
    two.push(far);
    write_lines(&input, &two);
    let out = waflog()
        .args(["detect", "--all"])
        .arg(&input)
        .arg("--dead-letter")
        .arg(&dead)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert_eq!(ndjson(&dead).len(), 2);
}

#[test]
fn late_records_are_dead_lettered_for_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = records(&generate("2026-02-03T00:00:00Z", "20m", "5", &[], None));
    // A record from 15 minutes earlier at the end: its interval closed long ago.
    let mut late = lines[0].clone();
    late["timestamp"] = (lines.last().unwrap()["timestamp"].as_i64().unwrap() - 15 * 60_000).into();
    lines.push(late);
    let input = dir.path().join("in.ndjson");
    write_lines(&input, &lines);
    let dead = dir.path().join("d.ndjson");
    let out = waflog()
        .args(["detect"])
        .arg(&input)
        .arg("--dead-letter")
        .arg(&dead)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let dead = ndjson(&dead);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["reason"].as_str().unwrap().starts_with("late:"),
        "{dead:?}"
    );
    assert_eq!(dead[0]["line"], lines.len());
    assert!(dead[0]["raw"].as_str().unwrap().contains("\"timestamp\""));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn damaged_gzip_keeps_what_decodes_and_goes_on_to_the_next_input() {
    let dir = tempfile::tempdir().unwrap();
    let first = generate("2026-02-03T00:00:00Z", "5m", "7", &[], None);
    let second = generate("2026-02-03T00:05:00Z", "5m", "8", &[], None);
    let packed = gzip(&first);
    let cut = packed.len() * 2 / 3;
    let truncated = dir.path().join("a.ndjson.gz");
    std::fs::write(&truncated, &packed[..cut]).unwrap();
    let good = dir.path().join("b.ndjson");
    std::fs::write(&good, &second).unwrap();
    let dead = dir.path().join("d.ndjson");
    for strict in [false, true] {
        let mut cmd = waflog();
        if strict {
            cmd.arg("--strict");
        }
        let out = cmd
            .arg("transform")
            .arg(&truncated)
            .arg(&good)
            .arg("--dead-letter")
            .arg(&dead)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(i32::from(strict)));
        let got = records(&out.stdout);
        // Every whole line before the damage, and all of the second file.
        let decodable = {
            let mut d = flate2::read::GzDecoder::new(&packed[..cut]);
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut d, &mut buf);
            buf.iter().filter(|&&b| b == b'\n').count()
        };
        assert_eq!(got.len(), decodable + records(&second).len());
        let dead = ndjson(&dead);
        let damage = dead.last().unwrap();
        assert_eq!(damage["source"], truncated.display().to_string());
        let reason = damage["reason"].as_str().unwrap();
        assert!(
            reason.contains("truncated gzip data") && reason.contains("compressed byte"),
            "{reason}"
        );
    }

    // A valid gzip file followed by garbage: every record, and the garbage reported.
    let mut trailing = packed.clone();
    trailing.extend_from_slice(b"this is not gzip at all\n");
    let path = dir.path().join("c.ndjson.gz");
    std::fs::write(&path, &trailing).unwrap();
    let out = waflog()
        .arg("transform")
        .arg(&path)
        .arg("--dead-letter")
        .arg(&dead)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(records(&out.stdout).len(), records(&first).len());
    let dead = ndjson(&dead);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("corrupt gzip data")
    );
}

#[test]
fn firehose_records_without_data_fail_alone() {
    use base64::Engine as _;
    let good = base64::engine::general_purpose::STANDARD
        .encode(br#"{"timestamp":1576280412771,"action":"ALLOW","httpSourceName":"ALB"}"#);
    let event = format!(
        r#"{{"invocationId":"i","records":[{{"recordId":"a","data":null}},{{"recordId":"b"}},{{"recordId":"c","data":"{good}"}},{{"recordId":"d","data":17}}]}}"#
    );
    let mut child = waflog()
        .args(["transform", "--firehose"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<(&str, &str)> = response["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["recordId"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("a", "ProcessingFailed"),
            ("b", "ProcessingFailed"),
            ("c", "Ok"),
            ("d", "ProcessingFailed")
        ]
    );
}

#[test]
fn transform_and_detect_refuse_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let base = records(&generate("2026-02-03T00:00:00Z", "2m", "9", &[], None));
    let mut text = String::from("\u{feff}");
    for (i, r) in base.iter().enumerate() {
        let line = serde_json::to_string(r).unwrap();
        let ts = r["timestamp"].as_i64().unwrap();
        // Every 50th line is made bad in one of the contract's ways.
        let bad = match i % 50 {
            10 => Some(line.replacen("\"action\":", "\"action\":\"BLOCK\",\"action\":", 1)),
            20 => Some(format!(
                r#"{{"timestamp":{ts},"httpRequest":"GET / HTTP/1.1"}}"#
            )),
            30 => Some(format!(r#"{{"timestamp":{ts},"httpStatus":502.0}}"#)),
            35 => Some(format!(r#"{{"timestamp":{ts},"httpStatus":true}}"#)),
            40 => Some(format!(r#"{{"timestamp":{ts},"httpStatus":[502]}}"#)),
            45 => Some(r#"{"timestamp":0,"action":"ALLOW"}"#.to_string()),
            _ => None,
        };
        text.push_str(bad.as_deref().unwrap_or(&line));
        text.push('\n');
    }
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, &text).unwrap();
    let expected_bad = (0..base.len())
        .filter(|i| [10, 20, 30, 35, 40, 45].contains(&(i % 50)))
        .count();
    let mut dead_lines = Vec::new();
    for cmd in [&["transform"][..], &["detect", "--all"][..]] {
        let dead = dir.path().join("d.ndjson");
        let out = waflog()
            .args(cmd)
            .arg(&input)
            .arg("--dead-letter")
            .arg(&dead)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let dead = ndjson(&dead);
        // The byte-order mark costs nothing: line 1 is a record.
        assert!(dead.iter().all(|d| d["line"] != 1), "{cmd:?}: {dead:?}");
        dead_lines.push(
            dead.iter()
                .map(|d| d["line"].as_u64().unwrap())
                .collect::<Vec<_>>(),
        );
        assert_eq!(dead.len(), expected_bad, "{cmd:?}: {dead:?}");
    }
    assert_eq!(dead_lines[0], dead_lines[1]);
}

#[test]
fn times_keep_their_date_in_every_unit_up_to_9999() {
    let generated = generate("9999-12-31T23:58:00Z", "30s", "4", &[], None);
    let mut child = waflog()
        .arg("transform")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&generated).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (a, b) = (records(&generated), records(&out.stdout));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["timestamp"], y["timestamp"]);
        assert!(y["timestamp"].as_i64().unwrap() > 253_402_300_000_000);
    }
}

#[test]
fn ctrl_c_in_a_batch_run_saves_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let results = dir.path().join("r.ndjson");
    let data = generate("2026-02-03T00:00:00Z", "30m", "12", &[], None);
    let mut child = waflog()
        .args(["detect", "--all", "--state"])
        .arg(&state)
        .arg("--output")
        .arg(&results)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data).unwrap();
    stdin.flush().unwrap();
    // Wait until the records are taken in (the first save is due after 1 s).
    common::wait_for(std::time::Duration::from_secs(60), "a first result", || {
        std::fs::metadata(&results).is_ok_and(|m| m.len() > 0) || state.exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // One more line after the signal: the loop sees the flag between records. The
    // flag is set by a handler thread, so give it time to run before the line.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = stdin.write_all(b"\n{}\n");
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("the state is saved"), "{stderr}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved["records"].as_u64().unwrap() > 0);
    // Results up to the stop are in the output, whole lines only.
    let results = std::fs::read_to_string(&results).unwrap();
    assert!(results.ends_with('\n') && results.lines().count() > 10);
}

#[test]
fn a_future_dated_first_record_does_not_make_the_stream_late() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    let mut lines = records(&generate(
        "2026-02-03T00:00:00Z",
        "3h",
        "13",
        &["httpSourceName:1h:10m"],
        Some(&truth),
    ));
    let mut ahead = lines[0].clone();
    ahead["timestamp"] = (ahead["timestamp"].as_i64().unwrap() + 86_400_000).into();
    lines.insert(0, ahead);
    let input = dir.path().join("in.ndjson");
    write_lines(&input, &lines);
    let (out, results, dead) = detect_all(dir.path(), &input, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(ndjson(&dead).is_empty(), "{stderr}");
    assert!(stderr.contains("the clock restarted 1 times"), "{stderr}");
    assert!(!stderr.contains("late records"), "{stderr}");
    assert_eq!(recall(&truth, &results), 1.0);
}

#[test]
fn metric_series_keep_row_numbers_and_old_dates_as_times() {
    let dir = tempfile::tempdir().unwrap();
    // Yahoo's A1 numbers its rows from 1; other series start before 2000.
    let numbered: String = std::iter::once("timestamp,value\n".to_string())
        .chain((1..=400).map(|i| {
            format!(
                "{i},{}\n",
                (i % 7) as f64 + if i == 300 { 90.0 } else { 0.0 }
            )
        }))
        .collect();
    let dated: String = std::iter::once("timestamp,value\n".to_string())
        .chain((0..400).map(|i| {
            format!(
                "1995-03-{:02} {:02}:{:02}:00,{}\n",
                1 + i / 1440,
                (i / 60) % 24,
                i % 60,
                i % 5
            )
        }))
        .collect();
    for (name, text) in [("a1.csv", numbered), ("old.csv", dated)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let dead = dir.path().join("d.ndjson");
        let out = waflog()
            .args(["detect", "--input-format", "csv", "--all"])
            .arg(&path)
            .arg("--dead-letter")
            .arg(&dead)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(ndjson(&dead).is_empty(), "{name}: {:?}", ndjson(&dead));
        assert_eq!(records(&out.stdout).len(), 400, "{name}");
    }
}

/// Firehose objects (records concatenated with no delimiter, gzip), JSON arrays and
/// pretty-printed records (issue 18): every record is read, by `transform` and by
/// `detect`, and a damaged record costs only itself, dead-lettered with its offset.
#[test]
fn concatenated_arrays_and_pretty_printed_records_are_all_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate("2026-02-03T00:00:00Z", "10m", "21", &[], None);
    let recs = records(&data);
    let n = recs.len();
    assert!(n > 10_000, "{n}");
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();

    let firehose = dir.path().join("firehose-object.gz");
    std::fs::write(&firehose, gzip(&lines.concat())).unwrap();
    let array = dir.path().join("array.json");
    std::fs::write(&array, serde_json::to_vec(&recs).unwrap()).unwrap();
    let pretty = dir.path().join("pretty.json");
    let mut text = Vec::new();
    for r in &recs {
        text.extend(serde_json::to_vec_pretty(r).unwrap());
        text.push(b'\n');
    }
    std::fs::write(&pretty, &text).unwrap();
    let pretty_array = dir.path().join("pretty-array.json");
    std::fs::write(&pretty_array, serde_json::to_vec_pretty(&recs).unwrap()).unwrap();

    let plain = dir.path().join("plain.ndjson");
    std::fs::write(&plain, &data).unwrap();
    let transform = |input: &Path| {
        let dead = dir.path().join("dead.ndjson");
        let out = waflog()
            .arg("transform")
            .arg(input)
            .arg("--dead-letter")
            .arg(&dead)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{input:?}");
        (out.stdout, ndjson(&dead))
    };
    let (want, none) = transform(&plain);
    assert_eq!(records(&want).len(), n);
    assert!(none.is_empty());
    for input in [&firehose, &array, &pretty, &pretty_array] {
        let (got, dead) = transform(input);
        assert!(dead.is_empty(), "{input:?}: {dead:?}");
        // The same records, transformed the same way, in the same order.
        assert_eq!(records(&got), records(&want), "{input:?}");
    }

    // Detection over the Firehose object scores exactly what it scores over lines.
    let detect = |input: &Path| {
        let out = waflog()
            .args(["detect", "--all"])
            .arg(input)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        records(&out.stdout)
    };
    assert_eq!(detect(&firehose), detect(&plain));

    // A damaged record in the middle of a Firehose object: only it is lost.
    let mut damaged = Vec::new();
    let mut offset = 0;
    for (i, l) in lines.iter().enumerate() {
        if i == n / 2 {
            offset = damaged.len();
            damaged.extend_from_slice(b"{\"timestamp\":,\"action\":\"BLOCK\"}");
        }
        damaged.extend_from_slice(l);
    }
    let path = dir.path().join("damaged-object");
    std::fs::write(&path, &damaged).unwrap();
    let (got, dead) = transform(&path);
    assert_eq!(records(&got).len(), n);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["line"], 1);
    assert_eq!(dead[0]["offset"], offset);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
}

/// CloudWatch Logs subscription payloads in a file, as Firehose delivers them to S3
/// from a subscription (gzip members of payloads, back to back): every log event's
/// message is a record, control messages are skipped, a bad payload is one dead
/// letter (issue 18).
#[test]
fn cloudwatch_logs_subscription_payloads_in_files_are_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate("2026-02-03T00:00:00Z", "5m", "22", &[], None);
    let lines: Vec<&str> = std::str::from_utf8(&data)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
    let n = lines.len();
    let mut object = Vec::new();
    let control = serde_json::json!({
        "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
        "logStream": "", "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]
    });
    object.extend(gzip(control.to_string().as_bytes()));
    for (i, chunk) in lines.chunks(100).enumerate() {
        let events: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(j, m)| serde_json::json!({"id": format!("{i}-{j}"), "timestamp": 1, "message": m}))
            .collect();
        let payload = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012",
            "logGroup": "aws-waf-logs-test", "logStream": "us-east-1_acl_0",
            "subscriptionFilters": ["waflog"], "logEvents": events
        });
        object.extend(gzip(payload.to_string().as_bytes()));
    }
    object.extend(gzip(
        br#"{"messageType":"DATA_MESSAGE","logEvents":"none"}"#,
    ));
    let path = dir.path().join("firehose-from-cloudwatch.gz");
    std::fs::write(&path, &object).unwrap();
    let dead = dir.path().join("dead.ndjson");
    let out = waflog()
        .arg("transform")
        .arg(&path)
        .arg("--dead-letter")
        .arg(&dead)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let plain = dir.path().join("plain.ndjson");
    std::fs::write(&plain, &data).unwrap();
    let want = waflog()
        .arg("transform")
        .arg(&plain)
        .output()
        .unwrap()
        .stdout;
    assert_eq!(records(&out.stdout).len(), n);
    assert_eq!(records(&out.stdout), records(&want));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("; 1 CloudWatch Logs control messages skipped"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dead = ndjson(&dead);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a CloudWatch Logs subscription payload"),
        "{dead:?}"
    );
    // Detection reads the same records.
    let out = waflog()
        .args(["detect", "--all"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!records(&out.stdout).is_empty());
}

/// A CloudWatch Logs export (`CreateExportTask` to S3: `<timestamp> <record>` per
/// line, gzip): every line is its record, so the output equals the plain file's; a
/// damaged record behind a timestamp is one dead letter (issue 18).
#[test]
fn cloudwatch_logs_export_lines_are_read_as_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate("2026-02-03T00:00:00Z", "5m", "23", &[], None);
    let text = std::str::from_utf8(&data).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let mut export = String::new();
    for (i, l) in lines.iter().enumerate() {
        let t: Value = serde_json::from_str(l).unwrap();
        let ms = t["timestamp"].as_i64().unwrap();
        let stamp = chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        export += &format!("{stamp} {l}\n");
        if i == 10 {
            export += &format!("{stamp} {{\"timestamp\":{ms},\"httpRequest\":\n");
        }
    }
    let path = dir.path().join("000000.gz");
    std::fs::write(&path, gzip(export.as_bytes())).unwrap();
    let dead = dir.path().join("dead.ndjson");
    let out = waflog()
        .arg("transform")
        .arg(&path)
        .arg("--dead-letter")
        .arg(&dead)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = dir.path().join("plain.ndjson");
    std::fs::write(&plain, &data).unwrap();
    let want = waflog()
        .arg("transform")
        .arg(&plain)
        .output()
        .unwrap()
        .stdout;
    assert_eq!(records(&out.stdout).len(), lines.len());
    assert_eq!(records(&out.stdout), records(&want));
    let dead = ndjson(&dead);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["line"], 12, "{dead:?}");
}

/// `transform --threads N` (issue 19): the output, the dead letters and the
/// counts are byte for byte those of one thread, whatever the bad lines and
/// wherever they fall in the batches handed to the workers, over two inputs.
#[test]
fn worker_threads_give_the_bytes_of_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let good = generate(
        "2024-05-01T00:00:00Z",
        "25m",
        "19",
        &["country:5m:2m"],
        None,
    );
    let lines: Vec<&[u8]> = good
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.len() > 25_000, "{}", lines.len());
    let bad = bad_lines();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let file = if i < lines.len() * 2 / 3 {
            &mut a
        } else {
            &mut b
        };
        if i % 997 == 0 {
            file.extend_from_slice(&bad[(i / 997) % bad.len()]);
            file.push(b'\n');
        }
        if i % 1499 == 0 {
            // A CloudWatch Logs export line: a time, then the record.
            file.extend_from_slice(b"2024-05-01T00:00:00.000Z ");
        }
        file.extend_from_slice(line);
        file.push(b'\n');
    }
    std::fs::write(dir.path().join("a.ndjson"), &a).unwrap();
    std::fs::write(dir.path().join("b.ndjson"), &b).unwrap();
    let inputs = [dir.path().join("a.ndjson"), dir.path().join("b.ndjson")];
    let run = |threads| with_threads(dir.path(), "transform", &[], &inputs, threads);
    let one = run("1");
    assert!(!one.1.is_empty() && one.1.iter().filter(|&&b| b == b'\n').count() > 20);
    for threads in ["2", "3"] {
        let many = run(threads);
        assert!(many.0 == one.0, "--threads {threads}: the output differs");
        assert!(
            many.1 == one.1,
            "--threads {threads}: the dead letters differ"
        );
        assert_eq!(many.2, one.2, "--threads {threads}");
    }
}

/// `detect --threads N` (issue 19): the results, the dead letters and the counts
/// are byte for byte those of one thread, whatever the bad lines and wherever they
/// fall in the batches the workers read: records with escaped texts, CloudWatch
/// Logs export lines and subscription payloads (several records in a line), lines
/// too long, late and far-ahead records, and an anomaly to report.
#[test]
fn detect_worker_threads_give_the_bytes_of_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let good = generate(
        "2024-05-01T00:00:00Z",
        "40m",
        "23",
        &["country:20m:5m", "flood:30m:4m:20"],
        None,
    );
    let lines: Vec<&str> = std::str::from_utf8(&good)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.len() > 40_000, "{}", lines.len());
    let mut bad = bad_lines();
    bad.extend([
        b"\xff\xfe{}".to_vec(),
        b"{\"timestamp\":1714521600000,\"action\":\"ALLOW\"}".to_vec(),
        b"{\"timestamp\":4102444800000,\"action\":\"ALLOW\"}".to_vec(),
        b"{\"timestamp\":1714522000000,\"action\":{\"x\":1}}".to_vec(),
    ]);
    let mut file = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i % 997 == 0 {
            file.extend_from_slice(&bad[(i / 997) % bad.len()]);
            file.push(b'\n');
        }
        if i % 1499 == 0 {
            // A CloudWatch Logs export line: a time, then the record.
            file.extend_from_slice(b"2024-05-01T00:00:00.000Z ");
        }
        if i % 1201 == 0 && i + 3 < lines.len() {
            // A subscription payload holding this record and the next two.
            let events: Vec<Value> = lines[i..i + 3]
                .iter()
                .map(|m| serde_json::json!({"id": "", "timestamp": 1, "message": m}))
                .collect();
            let payload = serde_json::json!({
                "messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g",
                "logStream": "s", "subscriptionFilters": [], "logEvents": events
            });
            file.extend_from_slice(payload.to_string().as_bytes());
            file.push(b'\n');
            continue;
        }
        if i % 1303 == 0 {
            // An escaped country and method: the texts extraction unescapes.
            let escaped = line
                .replacen("\"country\":\"", "\"country\":\"\\u0058", 1)
                .replacen("\"httpMethod\":\"", "\"httpMethod\":\"\\\"", 1);
            file.extend_from_slice(escaped.as_bytes());
        } else {
            file.extend_from_slice(line.as_bytes());
        }
        file.push(b'\n');
    }
    std::fs::write(dir.path().join("in.ndjson"), &file).unwrap();
    let inputs = [dir.path().join("in.ndjson")];
    let run = |threads| with_threads(dir.path(), "detect", &["--all"], &inputs, threads);
    let one = run("1");
    let results = records(&one.0);
    assert!(results.len() > 200, "{}", results.len());
    assert!(
        results
            .iter()
            .any(|r| r["anomaly_grade"].as_f64() > Some(0.0)),
        "no anomaly"
    );
    assert!(one.1.iter().filter(|&&b| b == b'\n').count() > 30);
    for threads in ["2", "3"] {
        let many = run(threads);
        assert!(many.0 == one.0, "--threads {threads}: the results differ");
        assert!(
            many.1 == one.1,
            "--threads {threads}: the dead letters differ"
        );
        assert_eq!(many.2, one.2, "--threads {threads}");
    }
}

/// Runs `waflog COMMAND ARGS --max-line-bytes 4096 --threads N INPUTS` with its
/// output and dead letters in files of `dir`: (output, dead letters, the counts of
/// the summary line from `records_in=` on).
fn with_threads(
    dir: &Path,
    command: &str,
    args: &[&str],
    inputs: &[PathBuf],
    threads: &str,
) -> (Vec<u8>, Vec<u8>, String) {
    let out = dir.join(format!("{command}-out{threads}.ndjson"));
    let dead = dir.join(format!("{command}-dead{threads}.ndjson"));
    let o = waflog()
        .arg(command)
        .args(args)
        .args(["--max-line-bytes", "4096", "--threads", threads])
        .args(inputs)
        .arg("--dead-letter")
        .arg(&dead)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let summary = err
        .lines()
        .find_map(|l| l.split_once("records_in="))
        .unwrap_or_else(|| panic!("{err}"))
        .1
        .to_string();
    (
        std::fs::read(&out).unwrap(),
        std::fs::read(&dead).unwrap(),
        summary,
    )
}

/// Lines that are not records, or not records this contract accepts (a line of
/// 5,000 bytes among them, for `--max-line-bytes 4096`).
fn bad_lines() -> Vec<Vec<u8>> {
    let long = format!(
        "{{\"timestamp\":1714521600000,\"pad\":\"{}\"}}",
        "x".repeat(5000)
    );
    vec![
        b"{\"timestamp\":".to_vec(),
        Vec::new(),
        long.into_bytes(),
        b"[1,2,3]".to_vec(),
        b"{\"action\":\"BLOCK\"}".to_vec(),
        b"{\"timestamp\":1714521600000,\"httpRequest\":{\"country\":\"U\x01S\"}}".to_vec(),
        b"   ".to_vec(),
        b"not json at all".to_vec(),
    ]
}
