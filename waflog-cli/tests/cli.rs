//! Runs the real `waflog` binary on fixtures in temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{fixture, run_bytes as run};

fn waflog() -> Command {
    common::waflog_env()
}

fn ndjson(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

const INDICATORS: [&str; 10] = [
    "K_country",
    "UNK_country",
    "K_action",
    "B_action",
    "O_httpstatus",
    "B_httpstatus",
    "common_method",
    "uncommon_method",
    "K_source",
    "UNK_source",
];

fn gen_args(seed: &str) -> Vec<String> {
    [
        "generate",
        "--seed",
        seed,
        "--start",
        "2024-05-01T00:00:00Z",
        "--duration",
        "10m",
        "--rate",
        "20",
        "--inject",
        "country:2m:1m",
        "--inject",
        "flood:5m:1m:4",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn generate_is_deterministic() {
    let (code, a, _) = run(waflog().args(gen_args("7")));
    assert_eq!(code, 0);
    let (_, b, _) = run(waflog().args(gen_args("7")));
    let (_, c, _) = run(waflog().args(gen_args("8")));
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c, "another seed, other bytes");
    let records = ndjson(&a);
    // 20/s for 600 s plus a flood of 3 x 20/s for 60 s: about 15,600.
    assert!(
        (14_800..16_400).contains(&records.len()),
        "{}",
        records.len()
    );
    let first = records.first().unwrap()["timestamp"].as_i64().unwrap();
    let last = records.last().unwrap()["timestamp"].as_i64().unwrap();
    assert!(first >= 1_714_521_600_000 && last < 1_714_521_600_000 + 600_000);
}

#[test]
fn truth_file_and_gzip_output() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    let out = dir.path().join("logs.ndjson.gz");
    let mut args = gen_args("3");
    args.extend([
        "--truth".into(),
        truth.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ]);
    let (code, stdout, _) = run(waflog().args(&args));
    assert_eq!(code, 0);
    assert!(stdout.is_empty());
    let t: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let t = t.as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["field"], "country");
    assert_eq!(t[0]["start_ms"], 1_714_521_720_000_i64);
    assert_eq!(t[0]["end_ms"], 1_714_521_780_000_i64);
    assert_eq!(t[0]["start"], "2024-05-01T00:02:00.000Z");
    assert_eq!(t[0]["intensity"], 1.0);
    assert_eq!(t[1]["field"], "flood");
    let flood_ip = t[1]["client_ip"].as_str().unwrap().to_string();
    // The gzip output is read back transparently by transform.
    let (code, transformed, _) = run(waflog().arg("transform").arg(&out));
    assert_eq!(code, 0);
    let records = ndjson(&transformed);
    let in_country = records.iter().filter(|r| {
        let ts = r["timestamp"].as_i64().unwrap();
        (1_714_521_720_000..1_714_521_780_000).contains(&ts)
    });
    let (n, unk) = in_country.fold((0, 0), |(n, u), r| {
        (n + 1, u + r["UNK_country"].as_i64().unwrap())
    });
    assert!(
        unk * 10 > n * 8,
        "{unk} of {n} unknown inside the country episode"
    );
    let flood = records
        .iter()
        .filter(|r| r["httpRequest"]["clientIp"] == flood_ip.as_str())
        .count();
    // 3 x 20/s for 60 s.
    assert!((3_300..3_900).contains(&flood), "{flood}");
}

#[test]
fn transform_keeps_records_and_appends_indicators() {
    let (code, out, _) = run(waflog()
        .arg("transform")
        .arg(fixture("aws-examples.ndjson")));
    assert_eq!(code, 0);
    let input = std::fs::read(fixture("aws-examples.ndjson")).unwrap();
    let (inputs, outputs) = (ndjson(&input), ndjson(&out));
    assert_eq!(inputs.len(), 6);
    assert_eq!(outputs.len(), inputs.len());
    for (i, o) in inputs.iter().zip(&outputs) {
        let mut stripped = o.as_object().unwrap().clone();
        for k in INDICATORS {
            stripped.shift_remove(k);
        }
        assert_eq!(
            &Value::Object(stripped),
            i,
            "record changed beyond the indicators"
        );
        // Key order is kept and the indicators come last.
        let keys: Vec<_> = o.as_object().unwrap().keys().cloned().collect();
        let in_keys: Vec<_> = i.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[..in_keys.len()], in_keys[..]);
    }
    // Real AWS records: GB and AU are not in the seed vocabulary, COGNITOIDP-style
    // sources neither; with the AWS preset GB is known.
    let (_, aws, _) = run(waflog()
        .args(["transform", "--config"])
        .arg(fixture("config/aws.toml"))
        .arg(fixture("aws-examples.ndjson")));
    let aws = ndjson(&aws);
    for r in &aws {
        let country = r["httpRequest"]["country"].as_str().unwrap();
        let known = ["US", "GB", "IN"].contains(&country);
        assert_eq!(r["K_country"], i64::from(known), "{country}");
        let blocked = r["action"] == "BLOCK";
        assert_eq!(r["B_action"], i64::from(blocked));
        // Real records have no httpStatus: the pair exists only with responseCodeSent.
        assert_eq!(
            r.get("O_httpstatus").is_some(),
            !r["responseCodeSent"].is_null()
        );
    }
}

#[test]
fn seed_float_seconds_become_milliseconds() {
    let (code, out, _) = run(waflog()
        .arg("transform")
        .arg(fixture("seed-records.ndjson")));
    assert_eq!(code, 0);
    let records = ndjson(&out);
    assert_eq!(records.len(), 10);
    assert_eq!(records[0]["timestamp"], 1_669_682_102_123_i64);
    assert!(records.iter().all(|r| r["timestamp"].is_i64()));
    // The seed deck's table: rows 3 and 5 are UK/Challenge/ALB/202 and UK/Challenge/CF/200.
    assert_eq!(
        (
            records[2]["K_country"].as_i64(),
            records[2]["K_action"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(records[4]["O_httpstatus"], 1);
}

#[test]
fn every_bad_line_is_dead_lettered_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let (code, out, err) = run(waflog()
        .arg("transform")
        .arg(fixture("mixed.ndjson"))
        .arg("--dead-letter")
        .arg(&dead));
    assert_eq!(code, 0, "{err}");
    let good = ndjson(&out);
    assert_eq!(good.len(), 6);
    let ts: Vec<i64> = good
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ts,
        [
            1_714_521_600_000,
            1_714_521_600_002,
            1_714_521_600_004,
            1_714_521_600_007,
            1_714_521_600_008,
            1_714_521_600_009
        ]
    );
    let dead = ndjson(&std::fs::read(&dead).unwrap());
    let lines: Vec<i64> = dead.iter().map(|d| d["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [2, 4, 6, 7, 8, 9, 11, 12, 13, 14]);
    let source = fixture("mixed.ndjson").display().to_string();
    for d in &dead {
        assert_eq!(d["source"], source.as_str());
        assert!(d["raw"].is_string() || d["raw_base64"].is_string(), "{d}");
    }
    let reason = |line: i64| {
        dead.iter().find(|d| d["line"] == line).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason(2).starts_with("invalid JSON"));
    assert!(reason(4).contains("not a JSON object"));
    assert_eq!(reason(6), "missing timestamp");
    assert!(reason(8).contains("unparsable timestamp"));
    assert!(reason(9).contains("invalid UTF-8"));
    assert!(dead.iter().find(|d| d["line"] == 9).unwrap()["raw_base64"].is_string());
    assert!(err.contains("dead_lettered=10"), "{err}");
    assert!(err.contains("records_in=16"), "{err}");

    // --strict: the same run exits 1.
    let (code, _, _) = run(waflog()
        .args(["--strict", "transform"])
        .arg(fixture("mixed.ndjson"))
        .arg("--dead-letter")
        .arg(dir.path().join("d2")));
    assert_eq!(code, 1);
    let (code, _, _) = run(waflog()
        .args(["transform", "--strict"])
        .arg(fixture("aws-examples.ndjson")));
    assert_eq!(code, 0);
}

#[test]
fn long_lines_are_dead_lettered_with_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.ndjson");
    let mut data = br#"{"timestamp":1714521600000,"action":"ALLOW"}"#.to_vec();
    data.push(b'\n');
    data.extend(br#"{"timestamp":1714521600001,"uri":""#);
    data.extend(std::iter::repeat_n(b'a', 5000));
    data.extend(b"\"}\n");
    data.extend(br#"{"timestamp":1714521600002,"action":"BLOCK"}"#);
    std::fs::write(&input, &data).unwrap();
    let dead = dir.path().join("dead.ndjson");
    let (code, out, _) = run(waflog()
        .arg("transform")
        .arg(&input)
        .args(["--max-line-bytes", "1000", "--dead-letter"])
        .arg(&dead));
    assert_eq!(code, 0);
    assert_eq!(ndjson(&out).len(), 2);
    let d = ndjson(&std::fs::read(&dead).unwrap());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["line"], 2);
    assert_eq!(d[0]["raw"].as_str().unwrap().len(), 1000);
    assert_eq!(d[0]["truncated_from"], 5036);
}

#[test]
fn stdin_and_dead_letters_on_stderr_by_default() {
    let mut child = waflog()
        .arg("transform")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"timestamp\":1714521600000}\nnope\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(ndjson(&out.stdout).len(), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#""source":"-","line":2"#), "{err}");
}

#[test]
fn configuration_errors_exit_2_and_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("waflog.toml");
    std::fs::write(
        &cfg,
        "[features]\nknown_countries = [\"US\"]\nknwon_sources = [\"CF\"]\n",
    )
    .unwrap();
    let (code, _, err) = run(waflog()
        .arg("--config")
        .arg(&cfg)
        .arg("transform")
        .arg(fixture("aws-examples.ndjson")));
    assert_eq!(code, 2);
    assert!(
        err.contains("knwon_sources") && err.contains("line 3") && err.contains("waflog.toml"),
        "{err}"
    );
    // The config is checked by every subcommand.
    let (code, _, _) = run(waflog()
        .arg("--config")
        .arg(&cfg)
        .args(["generate", "--count", "1"]));
    assert_eq!(code, 2);
    // The documented full config is valid.
    let (code, _, err) = run(waflog()
        .arg("--config")
        .arg(fixture("config/waflog.toml"))
        .arg("transform")
        .arg(fixture("seed-records.ndjson")));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let (code, _, err) = run(waflog().args(["transform", "/nonexistent/in.ndjson"]));
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/in.ndjson"), "{err}");
    let (code, _, _) = run(waflog().args(["generate", "--bogus"]));
    assert_eq!(code, 2);
    let (code, _, err) = run(waflog().args(["generate", "--inject", "colour:1m:1m"]));
    assert_eq!(code, 2);
    assert!(err.contains("colour"), "{err}");
    let (code, _, err) = run(waflog().args(["generate", "--start", "yesterday"]));
    assert_eq!(code, 2);
    assert!(err.contains("--start"), "{err}");
    let (code, _, _) = run(waflog().args([
        "generate",
        "--count",
        "5",
        "-o",
        "/nonexistent/dir/out.ndjson",
    ]));
    assert_eq!(code, 2);
    let (code, _, err) = run(waflog()
        .args(["generate", "--count", "5", "--traffic-profile"])
        .arg(fixture("mixed.ndjson")));
    assert_eq!(code, 2);
    assert!(err.contains("mixed.ndjson"), "{err}");
    let (code, out, _) = run(waflog()
        .args([
            "generate",
            "--count",
            "5",
            "--seed",
            "1",
            "--traffic-profile",
        ])
        .arg(fixture("profiles/example.toml")));
    assert_eq!(code, 0);
    assert_eq!(ndjson(&out).len(), 5);
}

#[test]
fn help_explains_every_flag() {
    for sub in ["generate", "transform"] {
        let (code, out, _) = run(waflog().args([sub, "--help"]));
        assert_eq!(code, 0);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("--config") && text.contains("--strict") && text.contains("--output"),
            "{text}"
        );
    }
}

#[test]
fn a_closed_stdout_exits_0() {
    let mut child = waflog()
        .args(["generate", "--seed", "1", "--count", "5000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"timestamp\":"));
    // The reader is dropped here: the pipe closes while waflog is writing.
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn realtime_paces_output_and_stops_cleanly_on_ctrl_c() {
    // 20 simulated seconds at 10x speed take about 2 s of wall time.
    let started = Instant::now();
    let (code, out, _) = run(waflog().args([
        "generate",
        "--seed",
        "1",
        "--rate",
        "50",
        "--duration",
        "20s",
        "--realtime",
        "--speed",
        "10",
    ]));
    let took = started.elapsed();
    assert_eq!(code, 0);
    assert!(took >= Duration::from_millis(1_800), "{took:?}");
    assert!((800..1_200).contains(&ndjson(&out).len()));

    // An endless-looking run, interrupted: exit 0 with whole records only.
    let mut child = waflog()
        .args([
            "generate",
            "--seed",
            "1",
            "--rate",
            "100",
            "--duration",
            "1h",
            "--realtime",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let records = ndjson(&out);
    assert!((50..400).contains(&records.len()), "{}", records.len());
    assert!(out.ends_with(b"\n"));
}

fn detect_scenario(dir: &Path) -> (PathBuf, PathBuf) {
    let logs = dir.join("logs.ndjson");
    let truth = dir.join("truth.json");
    let (code, _, err) = run(waflog()
        .args([
            "generate",
            "--seed",
            "11",
            "--start",
            "2024-05-01T00:00:00Z",
            "--duration",
            "2h",
            "--rate",
            "20",
        ])
        .args(["--inject", "country:70m:10m", "--truth"])
        .arg(&truth)
        .arg("-o")
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    (logs, truth)
}

#[test]
fn detect_flags_the_injected_episode_with_ad_shaped_results() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, truth) = detect_scenario(dir.path());
    let (code, out, err) = run(waflog().arg("detect").arg(&logs));
    assert_eq!(code, 0, "{err}");
    let results = ndjson(&out);
    assert!(!results.is_empty());
    let country: Vec<&Value> = results
        .iter()
        .filter(|r| r["detector_name"] == "country-anomaly-detector")
        .collect();
    // The episode covers 01:10-01:20: ten flagged one-minute intervals.
    assert_eq!(country.len(), 10, "{results:?}");
    assert_eq!(country[0]["data_start_time"], 1_714_525_800_000_i64);
    assert_eq!(
        country[0]["approx_anomaly_start_time"],
        1_714_525_800_000_i64
    );
    assert!(
        err.contains("anomaly: country-anomaly-detector 2024-05-01T01:10:00.000Z: UNK_country"),
        "{err}"
    );
    // The AD result shape.
    let keys: Vec<&str> = country[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "detector_id",
            "detector_name",
            "data_start_time",
            "data_end_time",
            "execution_start_time",
            "execution_end_time",
            "anomaly_score",
            "anomaly_grade",
            "confidence",
            "threshold",
            "feature_data",
            "relevant_attribution",
            "expected_values",
            "expected_bounds",
            "approx_anomaly_start_time",
            "records",
            "contributors",
            "examples",
            "incident_id"
        ]
    );
    // The ten intervals of the episode are one incident.
    assert!(
        country
            .iter()
            .all(|r| r["incident_id"] == country[0]["incident_id"])
    );
    // The explanation: the injected unknown countries lead the country contributors.
    let countries = country[0]["contributors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "httpRequest.country")
        .unwrap();
    let top = countries["top"][0]["value"].as_str().unwrap();
    assert!(["XX", "YY", "ZZ", "WW"].contains(&top), "{countries}");
    assert!(countries["top"][0]["count"].as_u64().unwrap() > 50);
    // The whole document, pinned: field names, types and values of a seeded run.
    insta::assert_snapshot!(
        "country_anomaly_result",
        serde_json::to_string_pretty(country[0]).unwrap()
    );
    assert_eq!(country[0]["feature_data"][0]["feature_name"], "UNK_country");
    assert_eq!(country[0]["relevant_attribution"][0]["data"], 1.0);
    // The band: expected value ± threshold (5) × the baseline's scale.
    let expected = country[0]["expected_values"][0]["value_list"][0]["data"]
        .as_f64()
        .unwrap();
    let (low, high) = (
        country[0]["expected_bounds"][0]["low"].as_f64().unwrap(),
        country[0]["expected_bounds"][0]["high"].as_f64().unwrap(),
    );
    assert!((low + high - 2.0 * expected).abs() < 1e-6 && high > expected);
    assert!(country[0]["anomaly_grade"].as_f64().unwrap() > 0.5);
    // No other detector fires on this clean scenario.
    assert_eq!(results.len(), 10, "{results:?}");

    // Already transformed input gives the same results; --all gives every interval.
    let (_, transformed, _) = run(waflog().arg("transform").arg(&logs));
    let t = dir.path().join("t.ndjson");
    std::fs::write(&t, transformed).unwrap();
    let (_, again, _) = run(waflog().arg("detect").arg(&t));
    assert_eq!(again, out);
    let all = dir.path().join("all.ndjson");
    let (code, _, _) = run(waflog()
        .args(["detect", "--all", "-o"])
        .arg(&all)
        .arg(&logs));
    assert_eq!(code, 0);
    // Six detectors x 119 complete intervals (the last one is incomplete).
    assert_eq!(ndjson(&std::fs::read(&all).unwrap()).len(), 6 * 119);

    // waflog eval: the episode is detected with no delay and no false alarm.
    let (code, report, err) = run(waflog()
        .args(["eval", "--json", "--truth"])
        .arg(&truth)
        .arg(&all));
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["recall"], 1.0);
    assert_eq!(report["episodes"][0]["delay_intervals"], 0);
    assert_eq!(report["false_alarms_per_detector_day"], 0.0);
}

#[test]
fn detect_dead_letters_bad_lines_and_reads_detectors_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("waflog.toml");
    std::fs::write(
        &cfg,
        "[[detectors]]\nname = \"blocks\"\ninterval = \"30s\"\nwindow_delay = \"0s\"\nfeatures = [{ name = \"blocked\", aggregation = \"count\", filter = { field = \"action\", in = [\"BLOCK\", \"Block\"] } }]\n",
    )
    .unwrap();
    let dead = dir.path().join("dead.ndjson");
    let (code, out, err) = run(waflog()
        .arg("--config")
        .arg(&cfg)
        .args(["detect", "--all", "--dead-letter"])
        .arg(&dead)
        .arg(fixture("mixed.ndjson")));
    assert_eq!(code, 0, "{err}");
    assert_eq!(ndjson(&std::fs::read(&dead).unwrap()).len(), 10);
    assert!(err.contains("1 detectors: blocks"), "{err}");
    // The six good records span less than one 30 s interval: nothing complete to score.
    assert!(ndjson(&out).is_empty());
    let (code, _, err) = run(waflog()
        .arg("--config")
        .arg(&cfg)
        .args(["--strict", "detect"])
        .arg(fixture("mixed.ndjson")));
    assert_eq!(code, 1, "{err}");
}

#[test]
fn detect_follow_closes_intervals_when_traffic_stops() {
    // 30 simulated seconds at 10x speed, then the pipe stays open: the last intervals
    // must close from the wall clock. A 1 s interval keeps the test short.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("waflog.toml");
    std::fs::write(&cfg, "[[detectors]]\nname = \"rate\"\ninterval = \"1s\"\nwindow_delay = \"0s\"\nfeatures = [{ name = \"n\", aggregation = \"count\" }]\n").unwrap();
    let mut detect = waflog()
        .arg("--config")
        .arg(&cfg)
        .args(["detect", "--follow", "--all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = detect.stdin.take().unwrap();
    let (_, logs, _) = run(waflog().args([
        "generate",
        "--seed",
        "1",
        "--start",
        "2024-05-01T00:00:00Z",
        "--duration",
        "30s",
        "--rate",
        "100",
    ]));
    stdin.write_all(&logs).unwrap();
    stdin.flush().unwrap();
    // Read results while the input stays open.
    let mut reader = BufReader::new(detect.stdout.take().unwrap());
    let mut last = Value::Null;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        last = serde_json::from_str(&line).unwrap();
        if last["data_start_time"] == 1_714_521_629_000_i64 {
            break;
        }
    }
    // The interval holding the last record (29 s) closed although no later record came.
    assert_eq!(last["data_start_time"], 1_714_521_629_000_i64, "{last}");
    drop(stdin);
    assert_eq!(detect.wait().unwrap().code(), Some(0));
}

#[test]
fn detect_resumes_from_its_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, _) = detect_scenario(dir.path());
    let text = std::fs::read_to_string(&logs).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Cut mid-interval, inside the episode (01:10-01:20 of a 2 h run at 20/s).
    let cut = lines.len() * 6 / 10 + 7;
    let (p1, p2) = (dir.path().join("p1.ndjson"), dir.path().join("p2.ndjson"));
    std::fs::write(&p1, lines[..cut].join("\n") + "\n").unwrap();
    std::fs::write(&p2, lines[cut..].join("\n") + "\n").unwrap();
    let state = dir.path().join("state.json");
    let detect = |input: &Path, state: &Path| {
        let (code, out, err) = run(waflog()
            .args(["detect", "--all", "--state"])
            .arg(state)
            .arg(input));
        assert_eq!(code, 0, "{err}");
        out
    };
    let whole = detect(&logs, &dir.path().join("other-state.json"));
    let mut split = detect(&p1, &state);
    split.extend(detect(&p2, &state));
    assert_eq!(ndjson(&split).len(), 6 * 119);
    assert!(split == whole, "a resumed run must give the same results");

    // A corrupt state file is a clear error; --fresh starts over.
    std::fs::write(&state, "{\"version\": 1").unwrap();
    let (code, _, err) = run(waflog().args(["detect", "--state"]).arg(&state).arg(&p1));
    assert_eq!(code, 2);
    assert!(
        err.contains("state.json") && err.contains("--fresh"),
        "{err}"
    );
    let (code, _, _) = run(waflog()
        .args(["detect", "--fresh", "--state"])
        .arg(&state)
        .arg(&p1));
    assert_eq!(code, 0);
}

/// The time of [`cpu_rows`]' spike, epoch ms.
const CPU_SPIKE_MS: i64 = (1_700_000_000 + 1200 * 300) * 1000;

/// A header and 1500 rows of a five-minute series `cpu`: a daily shape with
/// noise (an LCG, fixed seed) and one spike, at row 1200 ([`CPU_SPIKE_MS`]).
fn cpu_rows() -> Vec<String> {
    let mut rows = vec!["timestamp,cpu".to_string()];
    let mut x = 7_u64;
    for i in 0..1500_u64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let noise = (x >> 40) as f64 / (1u64 << 24) as f64;
        let v = if i == 1200 {
            400.0
        } else {
            50.0 + 20.0 * ((i % 288) as f64 / 288.0 * std::f64::consts::TAU).sin() + 5.0 * noise
        };
        rows.push(format!("{},{v:.3}", 1_700_000_000 + i * 300));
    }
    rows
}

/// `--alerts` on a metric series: with no `[[monitors]]` the series gets its
/// own monitor (`cpu-Monitor`), whose saved state a resumed run keeps, and the
/// spike fires it; a configured monitor may name the series, which a WAF run
/// refuses as an unknown detector.
#[test]
fn a_csv_series_alerts_through_its_own_or_a_configured_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let rows = cpu_rows();
    let csv = dir.path().join("cpu.csv");
    let state = dir.path().join("state.json");
    let detect = |extra: &[&str]| {
        let mut cmd = waflog();
        cmd.args(["detect", "--input-format", "csv", "--state"])
            .arg(&state)
            .args(extra)
            .arg(&csv);
        let (code, _, err) = run(&mut cmd);
        assert_eq!(code, 0, "{err}");
        let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        (saved, err)
    };
    let spike_alerts = |saved: &Value| {
        let book = &saved["alerts"];
        book["history"]
            .as_array()
            .unwrap()
            .iter()
            .chain(
                book["open"]
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.values()),
            )
            .filter(|a| {
                a["monitor"] == "cpu-Monitor"
                    && a["explanation"]["anomaly"]["data_start_time"] == CPU_SPIKE_MS
            })
            .count()
    };
    std::fs::write(&csv, rows[..=1000].join("\n") + "\n").unwrap();
    let (saved, err) = detect(&["--alerts"]);
    assert!(err.contains("one per metric series"), "{err}");
    assert!(err.contains("scored 1000 metric series rows"), "{err}");
    assert_eq!(
        saved["alerts"]["monitors"]["cpu-Monitor"]["period_ms"],
        300_000
    );
    let next = saved["alerts"]["monitors"]["cpu-Monitor"]["next_start"].clone();
    assert_eq!(spike_alerts(&saved), 0);
    // The grown file, resumed: the monitor's periods go on from the saved one.
    std::fs::write(&csv, rows.join("\n") + "\n").unwrap();
    let (saved, err) = detect(&["--alerts"]);
    assert!(err.contains("1 monitors: cpu-Monitor"), "{err}");
    assert!(err.contains("cpu-Monitor / cpu-trigger"), "{err}");
    assert_eq!(spike_alerts(&saved), 1, "{}", saved["alerts"]);
    assert!(saved["alerts"]["monitors"]["cpu-Monitor"]["next_start"].as_i64() > next.as_i64());
    // A configured monitor on the series, fired by the same spike.
    let config = dir.path().join("waflog.toml");
    std::fs::write(
        &config,
        "[[monitors]]\nname = \"cpu-Monitor\"\ndetector = \"cpu\"\n[[monitors.triggers]]\nname = \"spike\"\nseverity = 1\n",
    )
    .unwrap();
    std::fs::remove_file(&state).unwrap();
    let (saved, err) = detect(&["--config", config.to_str().unwrap()]);
    assert!(err.contains("cpu-Monitor / spike"), "{err}");
    assert!(!err.contains("saw no result"), "{err}");
    assert_eq!(spike_alerts(&saved), 1, "{}", saved["alerts"]);
    // A monitor of a series the run does not have is pointed out.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        "[[monitors]]\nname = \"m\"\ndetector = \"cpu.csv\"\n[[monitors.triggers]]\nname = \"spike\"\n",
    )
    .unwrap();
    std::fs::remove_file(&state).unwrap();
    let (_, err) = detect(&["--config", other.to_str().unwrap()]);
    assert!(
        err.contains("monitor m saw no result: no series of this run is named `cpu.csv`"),
        "{err}"
    );
    // On WAF records no detector has that name.
    let (code, _, err) = run(waflog()
        .args(["detect", "--config"])
        .arg(&config)
        .arg("-")
        .stdin(std::process::Stdio::null()));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("monitors[0].detector") && err.contains("unknown detector `cpu`"),
        "{err}"
    );
}

/// A metric series in `--state` resumes where it stopped: a run over the first
/// rows, then a run over the grown file, give the results of one run over the
/// whole file, row for row; the rows of the first run are skipped, not scored again.
#[test]
fn a_csv_series_resumes_from_the_state_file_as_if_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (first, grown) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&grown).unwrap();
    let rows = cpu_rows();
    let text = |n: usize| rows[..=n].join("\n") + "\n";
    std::fs::write(first.join("cpu.csv"), text(1000)).unwrap();
    std::fs::write(grown.join("cpu.csv"), text(1500)).unwrap();
    let state = dir.path().join("state.json");
    let detect = |file: &Path, state: Option<&Path>| {
        let mut cmd = waflog();
        cmd.args(["detect", "--input-format", "csv", "--all", "-q"]);
        if let Some(s) = state {
            cmd.arg("--state").arg(s);
        }
        let (code, out, err) = run(cmd.arg(file));
        assert_eq!(code, 0, "{err}");
        (ndjson(&out), err)
    };
    let (whole, _) = detect(&grown.join("cpu.csv"), None);
    let (a, _) = detect(&first.join("cpu.csv"), Some(&state));
    let (b, _) = detect(&grown.join("cpu.csv"), Some(&state));
    assert_eq!((whole.len(), a.len(), b.len()), (1500, 1000, 500));
    let key = |r: &Value| {
        (
            r["data_start_time"].clone(),
            r["anomaly_score"].clone(),
            r["anomaly_grade"].clone(),
            r["confidence"].clone(),
            r["approx_anomaly_start_time"].clone(),
        )
    };
    for (i, (w, r)) in whole.iter().zip(a.iter().chain(&b)).enumerate() {
        assert_eq!(key(w), key(r), "row {i}");
    }
    // The spike is flagged once, in the resumed run.
    assert!(b.iter().any(|r| r["anomaly_grade"].as_f64().unwrap() > 0.0));
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["series"]["cpu"]["rows"], 1500);
    assert_eq!(saved["series"]["cpu"]["algorithm"]["type"], "cad");
    // Under another algorithm the state is refused, with the way out; the WAF
    // detectors play no part in a series, so another detector of the same
    // algorithm resumes it.
    let config = dir.path().join("waflog.toml");
    let with_algorithm = |algorithm: &str| {
        std::fs::write(
            &config,
            format!("[[detectors]]\nname = \"v\"\nfeatures = [{{ name = \"value\", aggregation = \"sum\", field = \"value\" }}]\n[detectors.algorithm]\ntype = \"{algorithm}\"\n"),
        )
        .unwrap();
        run(waflog()
            .args(["detect", "--input-format", "csv", "--state"])
            .arg(&state)
            .arg("--config")
            .arg(&config)
            .arg(grown.join("cpu.csv")))
    };
    let (code, _, err) = with_algorithm("artime");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--fresh"), "{err}");
    let (code, _, err) = with_algorithm("cad");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1500 rows at or before"), "{err}");
    // A state whose models took in WAF records is not a series' to overwrite.
    let waf_state = dir.path().join("waf.json");
    let (code, _, err) = run(waflog()
        .args(["detect", "-q", "--state"])
        .arg(&waf_state)
        .arg(fixture("seed-records.ndjson")));
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read(&waf_state).unwrap();
    let (code, _, err) = run(waflog()
        .args(["detect", "--input-format", "csv", "--state"])
        .arg(&waf_state)
        .arg(grown.join("cpu.csv")));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("holds the models of a run on WAF records"),
        "{err}"
    );
    assert_eq!(std::fs::read(&waf_state).unwrap(), before);
    // Nor the other way round.
    let before = std::fs::read(&state).unwrap();
    let (code, _, err) = run(waflog()
        .args(["detect", "-q", "--state"])
        .arg(&state)
        .arg(fixture("seed-records.ndjson")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds the metric series"), "{err}");
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

/// `--follow` on a CSV series scores the rows appended to the file as they come
/// (before, it waited for ever without scoring them), and gives what a batch run
/// over the final file gives.
#[test]
fn a_followed_csv_series_scores_appended_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("latency.csv");
    let rows: Vec<String> = (0..400_u64)
        .map(|i| {
            let v = if i == 350 {
                500.0
            } else {
                20.0 + (i % 9) as f64
            };
            format!("{},{v}\n", 1_700_000_000 + 60 * i)
        })
        .collect();
    std::fs::write(&csv, rows[..300].concat()).unwrap();
    let mut follow = waflog()
        .args(["detect", "--input-format", "csv", "--follow", "--all", "-q"])
        .args(["--idle-exit", "4s"])
        .arg(&csv)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follow.stdout.take().unwrap());
    let mut got = Vec::new();
    let started = Instant::now();
    let mut appended = false;
    while started.elapsed() < Duration::from_secs(60) {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        got.push(serde_json::from_str::<Value>(&line).unwrap());
        if got.len() == 300 && !appended {
            let mut f = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
            f.write_all(rows[300..].concat().as_bytes()).unwrap();
            appended = true;
        }
    }
    assert_eq!(follow.wait().unwrap().code(), Some(0));
    let (code, out, err) = run(waflog()
        .args(["detect", "--input-format", "csv", "--all", "-q"])
        .arg(&csv));
    assert_eq!(code, 0, "{err}");
    let batch = ndjson(&out);
    assert_eq!((got.len(), batch.len()), (400, 400));
    for (i, (a, b)) in got.iter().zip(&batch).enumerate() {
        assert_eq!(a["data_start_time"], b["data_start_time"], "row {i}");
        assert_eq!(a["anomaly_score"], b["anomaly_score"], "row {i}");
    }
    assert!(
        got[350]["anomaly_grade"].as_f64().unwrap() > 0.0,
        "{}",
        got[350]
    );
}

#[test]
fn detect_reads_generic_metric_series_from_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("latency.csv");
    let mut text = String::from("timestamp,p99_ms\n");
    for i in 0..60 {
        let v = if i == 45 {
            900.0
        } else {
            120.0 + (i % 4) as f64 * 3.0
        };
        text += &format!("2024-05-01 00:{i:02}:00,{v}\n");
    }
    text += "2024-05-01 01:00:00,not-a-number\n";
    std::fs::write(&csv, text).unwrap();
    let dead = dir.path().join("dead.ndjson");
    let (code, out, err) = run(waflog()
        .args(["detect", "--input-format", "csv", "--dead-letter"])
        .arg(&dead)
        .arg(&csv));
    assert_eq!(code, 0, "{err}");
    let results = ndjson(&out);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["detector_name"], "latency");
    assert_eq!(
        results[0]["data_start_time"],
        1_714_521_600_000_i64 + 45 * 60_000
    );
    assert_eq!(results[0]["feature_data"][0]["feature_name"], "p99_ms");
    let d = ndjson(&std::fs::read(&dead).unwrap());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["line"], 62);
}
