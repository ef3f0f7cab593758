//! The AWS paths under faults (issue 15, findings 13, 14, 17 and 18), end to end
//! against the real local servers `bash scripts/test.sh` starts (moto_server and
//! kinesalite) with scripts/fault_proxy.py in front of them: throttled S3 reads,
//! endpoints that accept a connection and never answer, Ctrl-C while a call
//! hangs, credential and permission errors, and a Kinesis producer that gives up.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{assert_same_ids, boto_at, lines, request_ids, run, waflog_at};

/// Generates `minutes` of traffic (seed `seed`) into `path`; returns the records.
fn generate(path: &Path, seed: u64, minutes: u32) -> Vec<serde_json::Value> {
    let (code, _, err) = run(waflog_at("http://127.0.0.1:9")
        .args(["generate", "--seed", &seed.to_string()])
        .args(["--start", "2024-05-01T00:00:00Z"])
        .args(["--duration", &format!("{minutes}m"), "--rate", "40", "-o"])
        .arg(path));
    assert_eq!(code, 0, "{err}");
    lines(path)
}

/// Writes `input` to `s3://bucket/logs/` through moto directly.
fn upload(bucket: &str, input: &Path) {
    let moto = common::moto();
    boto_at(&moto, &format!("s3.create_bucket(Bucket='{bucket}')"));
    let (code, _, err) = run(waflog_at(&moto)
        .arg("transform")
        .arg(input)
        .args(["-o", &format!("s3://{bucket}/logs/")]));
    assert_eq!(code, 0, "{err}");
}

/// Runs `cmd`, killing it after `limit`: (exit code or None when killed,
/// stdout, stderr, time taken).
fn run_within(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || std::io::read_to_string(out_pipe).unwrap_or_default());
    let err_t = std::thread::spawn(move || std::io::read_to_string(err_pipe).unwrap_or_default());
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    (code, out_t.join().unwrap(), err_t.join().unwrap(), took)
}

/// SIGINT to `child` once `ready()` holds; (exit code, seconds from the signal
/// to the exit, stderr).
fn interrupt(mut child: std::process::Child, after: Duration) -> (Option<i32>, Duration, String) {
    std::thread::sleep(after);
    let err_pipe = child.stderr.take().unwrap();
    let err_t = std::thread::spawn(move || std::io::read_to_string(err_pipe).unwrap_or_default());
    assert!(
        child.try_wait().unwrap().is_none(),
        "the command ended before Ctrl-C"
    );
    let sent = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if sent.elapsed() >= Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
    (code, took, err_t.join().unwrap())
}

/// Finding 13: GetObject answered `503 SlowDown` ten times in a row (more than
/// the SDK's own three attempts) is retried with backoff: every record arrives,
/// nothing is dead-lettered, and one WARN says so at the default log level.
#[test]
fn a_throttled_s3_read_is_retried_and_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::unique_name("waflog-slowdown");
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 3, 20);
    upload(&b, &input);
    let proxy = common::start_fault_proxy(
        &common::moto(),
        &[
            "--status-5xx-every",
            "1",
            "--only-ops",
            "GetObject",
            "--fault-skip",
            "1",
            "--fault-burst",
            "10",
        ],
    );
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let (code, _, err) = run(waflog_at(&proxy.url())
        .args(["transform", "--strict", &format!("s3://{b}/logs/")])
        .arg("--dead-letter")
        .arg(&dead)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_same_ids(&request_ids(&lines(&out)), &request_ids(&records), &err);
    assert!(
        !dead.exists() || std::fs::read_to_string(&dead).unwrap().is_empty(),
        "{err}"
    );
    let warns: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert!(
        warns.iter().any(|l| l.contains("retrying with backoff")),
        "{err}"
    );
    assert!(
        warns.iter().any(|l| l.contains("retried calls over")),
        "{err}"
    );
    assert!(warns.len() <= 3, "one warning per episode: {err}");
}

/// Finding 13: a read still failing after the retry budget stops the run with
/// exit code 2 and a message naming the object; nothing is skipped silently.
#[test]
fn an_s3_read_that_never_recovers_stops_the_run_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::unique_name("waflog-down");
    let input = dir.path().join("in.ndjson");
    generate(&input, 4, 20);
    upload(&b, &input);
    let proxy = common::start_fault_proxy(
        &common::moto(),
        &[
            "--status-5xx-every",
            "1",
            "--only-ops",
            "GetObject",
            "--fault-skip",
            "2",
        ],
    );
    let (code, _, err, took) = run_within(
        waflog_at(&proxy.url()).args([
            "--operation-timeout",
            "3s",
            "transform",
            &format!("s3://{b}/logs/"),
            "-o",
            "/dev/null",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("still failing after"), "{err}");
    assert!(err.contains(&format!("s3://{b}/logs/")), "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// Finding 14: an endpoint that accepts connections and never answers: every
/// path (S3 listing, S3 sink, Kinesis sink, Kinesis source) stops within the
/// configured timeouts with exit code 2 and says it timed out.
#[test]
fn a_hung_endpoint_times_out_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    generate(&input, 5, 2);
    let moto_hang = common::start_fault_proxy(&common::moto(), &["--hang-every", "1"]);
    let kin_hang = common::start_fault_proxy(&common::kinesalite(), &["--hang-every", "1"]);
    let short = [
        "--connect-timeout",
        "1s",
        "--read-timeout",
        "1s",
        "--operation-timeout",
        "3s",
    ];
    let cases: Vec<(&str, Command)> = vec![
        ("s3 source", {
            let mut c = waflog_at(&moto_hang.url());
            c.args(short)
                .args(["transform", "s3://any-bucket/logs/", "-o", "/dev/null"]);
            c
        }),
        ("s3 sink", {
            let mut c = waflog_at(&moto_hang.url());
            c.args(short)
                .arg("transform")
                .arg(&input)
                .args(["-o", "s3://any-bucket/out/"]);
            c
        }),
        ("kinesis sink", {
            let mut c = waflog_at(&kin_hang.url());
            c.args(short)
                .arg("transform")
                .arg(&input)
                .args(["-o", "kinesis://any-stream"]);
            c
        }),
        ("kinesis source", {
            let mut c = waflog_at(&kin_hang.url());
            c.args(short).args([
                "transform",
                "kinesis://any-stream",
                "--idle-exit",
                "2s",
                "-o",
                "/dev/null",
            ]);
            c
        }),
    ];
    for (what, mut cmd) in cases {
        let (code, _, err, took) = run_within(&mut cmd, Duration::from_secs(60));
        eprintln!("{what}: exit {code:?} after {took:.1?}");
        assert_eq!(code, Some(2), "{what}: {err}");
        assert!(took < Duration::from_secs(25), "{what}: {took:?}");
        assert!(
            err.contains("still failing after") && err.contains("(--operation-timeout)"),
            "{what}: {err}"
        );
    }
}

/// Finding 14: Ctrl-C stops a hung S3 read and a hung Kinesis write within a
/// second (exit code 130), with the default timeouts.
#[test]
fn ctrl_c_stops_hung_aws_calls_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    generate(&input, 6, 2);
    let moto_hang = common::start_fault_proxy(&common::moto(), &["--hang-every", "1"]);
    let kin_hang = common::start_fault_proxy(&common::kinesalite(), &["--hang-every", "1"]);
    let s3 = waflog_at(&moto_hang.url())
        .args(["transform", "s3://any-bucket/logs/", "-o", "/dev/null"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let kinesis = waflog_at(&kin_hang.url())
        .arg("transform")
        .arg(&input)
        .args(["-o", "kinesis://any-stream"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for (what, child) in [("s3 source", s3), ("kinesis sink", kinesis)] {
        let (code, took, err) = interrupt(child, Duration::from_secs(3));
        eprintln!("{what}: exit {code:?}, {took:.2?} after Ctrl-C");
        assert_eq!(code, Some(130), "{what}: {err}");
        assert!(took < Duration::from_millis(1500), "{what}: {took:?}");
        assert!(err.contains("interrupted"), "{what}: {err}");
    }
}

/// Finding 17: credential, permission and missing-resource errors fail fast
/// (well under 5 s) with a message that says what to fix, on every path.
#[test]
fn permanent_errors_fail_fast_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    generate(&input, 7, 2);
    let kin = common::kinesalite();
    let s = common::unique_name("creds");
    common::create_stream(&kin, &s, 1);
    let (code, _, err) = run(waflog_at(&kin)
        .arg("transform")
        .arg(&input)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    let b = common::unique_name("waflog-denied");
    upload(&b, &input);
    // (what, server[:operations], status, code, args, expected hint)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Vec<String>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "consumer, bad signature",
            "kinesis",
            "400",
            "InvalidSignatureException",
            vec![
                "transform".into(),
                format!("kinesis://{s}"),
                "--idle-exit".into(),
                "2s".into(),
            ],
            "credentials were refused",
        ),
        (
            "consumer, expired token on GetRecords",
            "kinesis:GetRecords",
            "400",
            "ExpiredTokenException",
            vec![
                "transform".into(),
                format!("kinesis://{s}"),
                "--idle-exit".into(),
                "2s".into(),
            ],
            "credentials were refused",
        ),
        (
            "producer, unknown key",
            "kinesis",
            "400",
            "UnrecognizedClientException",
            vec![
                "transform".into(),
                input.display().to_string(),
                "-o".into(),
                format!("kinesis://{s}"),
            ],
            "credentials were refused",
        ),
        (
            "s3 read, access denied",
            "s3:GetObject",
            "403",
            "AccessDenied",
            vec!["transform".into(), format!("s3://{b}/logs/")],
            "access denied",
        ),
        (
            "s3 list, no such bucket",
            "s3",
            "404",
            "NoSuchBucket",
            vec!["transform".into(), format!("s3://{b}-missing/logs/")],
            "not found",
        ),
        (
            // The sink's uploads run on their own thread: its error still ends the
            // run, with the object it could not write.
            "s3 sink, no such bucket",
            "s3",
            "404",
            "NoSuchBucket",
            vec![
                "transform".into(),
                input.display().to_string(),
                "-o".into(),
                format!("s3://{b}-missing/out/"),
            ],
            "cannot write s3://",
        ),
    ];
    for (what, server, status, code, args, hint) in cases {
        let (target, ops) = server.split_once(':').unwrap_or((server, ""));
        let upstream = if target == "kinesis" {
            kin.clone()
        } else {
            common::moto()
        };
        let mut flags = vec![
            "--error-every",
            "1",
            "--error-status",
            status,
            "--error-code",
            code,
        ];
        if !ops.is_empty() {
            flags.extend(["--only-ops", ops]);
        }
        let proxy = common::start_fault_proxy(&upstream, &flags);
        let mut cmd = waflog_at(&proxy.url());
        cmd.args(&args);
        if !args.iter().any(|a| a == "-o") {
            cmd.args(["-o", "/dev/null"]);
        }
        let (exit, _, err, took) = run_within(&mut cmd, Duration::from_secs(60));
        assert_eq!(exit, Some(2), "{what}: {err}");
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
        eprintln!("{what}: failed in {took:.2?}");
        assert!(err.contains(code), "{what}: {err}");
        assert!(err.contains(hint), "{what}: {err}");
        proxy.stop();
    }
}

/// Finding 18: a Kinesis producer that gives up says exactly how many records
/// were written and how many were not; with `--state` the S3 position is saved,
/// and a rerun resumes from it. With one call in flight the stream ends up with
/// every record exactly once.
#[test]
fn a_giving_up_producer_counts_exactly_and_a_rerun_resumes_without_duplicates() {
    giving_up_producer_then_rerun(1);
}

/// The same with the default four calls in flight (one per shard of two): the
/// counts are still exact, and after the rerun every record is in the stream
/// (records of the other shard's lane that got through are written again).
#[test]
fn a_giving_up_producer_with_calls_in_flight_counts_exactly_and_loses_nothing() {
    giving_up_producer_then_rerun(4);
}

fn giving_up_producer_then_rerun(in_flight: u16) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 8, 10);
    assert!(records.len() > 2500, "{}", records.len());
    let b = common::unique_name("waflog-resume");
    upload(&b, &input);
    let kin = common::kinesalite();
    let s = common::unique_name("giveup");
    common::create_stream(&kin, &s, 2);
    let proxy = common::start_fault_proxy(
        &kin,
        &[
            "--status-5xx-every",
            "1",
            "--only-ops",
            "PutRecords",
            "--fault-skip",
            "3",
        ],
    );
    let state = dir.path().join("state.json");
    let moto = common::moto();
    let in_flight = in_flight.to_string();
    // The source through moto, the sink through the failing proxy.
    let (code, _, err, _) = run_within(
        common::waflog_env()
            .env("AWS_ENDPOINT_URL_S3", &moto)
            .env("AWS_ENDPOINT_URL_KINESIS", proxy.url())
            .args(["--operation-timeout", "2s", "transform"])
            .arg(format!("s3://{b}/logs/"))
            .arg("--state")
            .arg(&state)
            .args(["--kinesis-in-flight", &in_flight])
            .args(["-o", &format!("kinesis://{s}")]),
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(2), "{err}");
    if in_flight == "1" {
        // 3 calls of 500 went through; the 4th batch was sent when the 2,001st
        // record came and found failing when the 5th was full, at the 2,501st.
        assert!(
            err.contains("Of the 2501 records given to it, 1500 were written and 1001 were not (500 in the failing PutRecords call, 501 not sent yet)"),
            "{err}"
        );
    } else {
        // Exactly three calls got through, whichever lanes they were.
        let given: usize = err
            .split("Of the ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{err}"));
        assert!(
            err.contains(&format!(
                "Of the {given} records given to it, 1500 were written and {} were not",
                given - 1500
            )),
            "{err}"
        );
    }
    assert!(err.contains("resume"), "{err}");
    let count = |stream: &str| -> Vec<serde_json::Value> {
        let out = dir.path().join(format!("{stream}.ndjson"));
        let (code, _, err) = run(waflog_at(&kin)
            .args([
                "transform",
                &format!("kinesis://{stream}"),
                "--idle-exit",
                "2s",
            ])
            .arg("-o")
            .arg(&out));
        assert_eq!(code, 0, "{err}");
        lines(&out)
    };
    assert_eq!(count(&s).len(), 1500);
    // The rerun, without faults, resumes where the stream's records stopped.
    let (code, _, err) = run(common::waflog_env()
        .env("AWS_ENDPOINT_URL_S3", &moto)
        .env("AWS_ENDPOINT_URL_KINESIS", &kin)
        .arg("transform")
        .arg(format!("s3://{b}/logs/"))
        .arg("--state")
        .arg(&state)
        .args(["--kinesis-in-flight", &in_flight])
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming"), "{err}");
    let all = count(&s);
    if in_flight == "1" {
        assert_same_ids(&request_ids(&all), &request_ids(&records), &err);
    } else {
        let mut got = request_ids(&all);
        assert!(
            got.len() >= records.len() && got.len() <= records.len() + 1500,
            "{}",
            got.len()
        );
        got.sort();
        got.dedup();
        let mut want = request_ids(&records);
        want.sort();
        assert_same_ids(&got, &want, &err);
    }
}
