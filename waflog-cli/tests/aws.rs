//! S3 and Kinesis against real local servers (moto_server), started by
//! `bash scripts/test.sh` (the README's test command), which exports
//! `WAFLOG_TEST_MOTO` (the endpoint), `WAFLOG_TEST_PYTHON` (a Python with boto3, to
//! create buckets and streams and plant a corrupt object) and test credentials.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

fn endpoint() -> String {
    std::env::var("WAFLOG_TEST_MOTO")
        .expect("WAFLOG_TEST_MOTO is not set: run these tests with `bash scripts/test.sh`")
}

fn waflog() -> Command {
    let mut c = Command::cargo_bin("waflog").unwrap();
    c.env_remove("WAFLOG_CONFIG")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["--endpoint-url", &endpoint()]);
    c
}

/// Runs a boto3 snippet (`s3` and `kinesis` clients are defined) against the server.
fn boto(code: &str) {
    let python = std::env::var("WAFLOG_TEST_PYTHON").expect("WAFLOG_TEST_PYTHON");
    let script = format!(
        "import boto3, gzip\nkw = dict(endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\ns3 = boto3.client('s3', **kw)\nkinesis = boto3.client('kinesis', **kw)\n{code}\n",
        endpoint()
    );
    let out = Command::new(python).arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn request_ids(v: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = v
        .iter()
        .map(|r| r["httpRequest"]["requestId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

const GEN: [&str; 8] = [
    "generate",
    "--seed",
    "11",
    "--start",
    "2024-05-01T00:00:00Z",
    "--duration",
    "20m",
    "--inject=country:8m:4m",
];

#[test]
fn s3_round_trip_in_the_waf_layout_with_a_corrupt_object_reported() {
    let dir = tempfile::tempdir().unwrap();
    boto("s3.create_bucket(Bucket='waflog-rt')");
    let local = dir.path().join("local.ndjson");
    let (code, _, err) = run(waflog().args(GEN).arg("-o").arg(&local));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(waflog().args(GEN).args(["-o", "s3://waflog-rt/logs/"]));
    assert_eq!(code, 0, "{err}");
    // One object per 5 minutes per web ACL, in the delivery layout.
    boto(
        "keys = [o['Key'] for o in s3.list_objects_v2(Bucket='waflog-rt', Prefix='logs/')['Contents']]\n\
         assert len(keys) >= 4, keys\n\
         assert all(k.startswith('logs/AWSLogs/123456789012/WAFLogs/') and k.endswith('.log.gz') for k in keys), keys\n\
         assert any('/2024/05/01/00/05/' in k for k in keys), keys\n\
         s3.put_object(Bucket='waflog-rt', Key='logs/AWSLogs/123456789012/WAFLogs/us-east-1/x/2024/05/01/00/07/bad.log.gz', Body=gzip.compress(b'{\"a\":1}\\n' * 1000)[:300] + b'garbage')",
    );
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let (code, _, err) = run(waflog()
        .args(["transform", "s3://waflog-rt/logs/", "--dead-letter"])
        .arg(&dead)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let expected = lines(&local);
    let got = lines(&out);
    // Every generated record came back (plus the readable start of the bad object).
    let got_waf: Vec<serde_json::Value> = got
        .iter()
        .filter(|r| r.get("httpRequest").is_some())
        .cloned()
        .collect();
    assert_eq!(request_ids(&got_waf), request_ids(&expected));
    assert!(got_waf.iter().all(|r| r.get("UNK_country").is_some()));
    let d = lines(&dead);
    let corrupt: Vec<_> = d
        .iter()
        .filter(|e| e["reason"].as_str().unwrap_or("").contains("corrupt gzip"))
        .collect();
    assert_eq!(corrupt.len(), 1, "{d:?}");
    assert!(
        corrupt[0]["source"]
            .as_str()
            .unwrap()
            .ends_with("bad.log.gz")
    );
    // --strict turns the reported object into exit code 1; --since/--until filter.
    let (code, _, _) = run(waflog().args([
        "transform",
        "--strict",
        "s3://waflog-rt/logs/",
        "-o",
        "/dev/null",
        "--dead-letter",
        "/dev/null",
    ]));
    assert_eq!(code, 1);
    let part = dir.path().join("part.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "transform",
            "s3://waflog-rt/logs/",
            "--since",
            "2024-05-01T00:10:00Z",
            "--until",
            "2024-05-01T00:15:00Z",
            "-o",
        ])
        .arg(&part));
    assert_eq!(code, 0, "{err}");
    let part = lines(&part);
    assert!(!part.is_empty() && part.len() < expected.len() / 2);
    // Unreachable service: a clear error, exit 2.
    let (code, _, err) = run(Command::cargo_bin("waflog")
        .unwrap()
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "--region",
            "us-east-1",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "transform",
            "s3://waflog-rt/logs/",
        ]));
    assert_eq!(code, 2);
    assert!(err.contains("cannot list s3://waflog-rt/logs/"), "{err}");
}

#[test]
fn large_objects_use_multipart_upload_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    boto("s3.create_bucket(Bucket='waflog-mp')");
    let (code, _, err) = run(waflog().args([
        "generate",
        "--seed",
        "5",
        "--count",
        "700000",
        "--object-span",
        "24h",
        "--part-size",
        "5242880",
        "-o",
        "s3://waflog-mp/big",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("multipart)") && !err.contains("(0 multipart)"),
        "{err}"
    );
    let out = dir.path().join("out.ndjson");
    let (code, _, err) = run(waflog()
        .args(["transform", "s3://waflog-mp/big/", "-o"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let n = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(n, 700_000);
}

#[test]
fn kinesis_round_trip_resumes_from_the_checkpoints_in_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    boto("kinesis.create_stream(StreamName='waflog-rt', ShardCount=2)");
    let first = dir.path().join("first.ndjson");
    let second = dir.path().join("second.ndjson");
    let (code, _, err) = run(waflog().args(GEN).arg("-o").arg(&first));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(waflog()
        .args([
            "generate",
            "--seed",
            "12",
            "--start",
            "2024-05-01T00:20:00Z",
            "--duration",
            "5m",
            "-o",
        ])
        .arg(&second));
    assert_eq!(code, 0, "{err}");
    let n1 = std::fs::read_to_string(&first).unwrap().lines().count();
    let n2 = std::fs::read_to_string(&second).unwrap().lines().count();
    let (code, _, err) = run(waflog()
        .arg("transform")
        .arg(&first)
        .args(["-o", "kinesis://waflog-rt"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("kinesis://waflog-rt: {n1} records")),
        "{err}"
    );
    let state = dir.path().join("state.json");
    let results = dir.path().join("r1.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "detect",
            "kinesis://waflog-rt",
            "--idle-exit",
            "4s",
            "--state",
        ])
        .arg(&state)
        .arg("-o")
        .arg(&results));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("of {n1} records")), "{err}");
    assert!(!err.contains("late records"), "{err}");
    let r1 = lines(&results);
    assert!(
        r1.iter()
            .any(|r| r["detector_name"] == "country-anomaly-detector"),
        "{r1:?}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let cps = saved["checkpoints"].as_object().unwrap();
    assert_eq!(cps.len(), 2, "{cps:?}");
    assert!(cps.keys().all(|k| k.starts_with("waflog-rt/shardId-")));
    // More records arrive; a restart reads only those (no record twice, none lost).
    let (code, _, err) = run(waflog()
        .arg("transform")
        .arg(&second)
        .args(["-o", "kinesis://waflog-rt"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(waflog()
        .args([
            "detect",
            "kinesis://waflog-rt",
            "--idle-exit",
            "4s",
            "--state",
        ])
        .arg(&state)
        .args(["-o", "/dev/null"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resumed from"), "{err}");
    assert!(err.contains(&format!("of {n2} records")), "{err}");
}
