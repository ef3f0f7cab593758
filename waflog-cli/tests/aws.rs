//! S3 and Kinesis against real local servers (moto_server), started by
//! `bash scripts/test.sh` (the README's test command), which exports
//! `WAFLOG_TEST_MOTO` (the endpoint), `WAFLOG_TEST_PYTHON` (a Python with boto3, to
//! create buckets and streams and plant a corrupt object) and test credentials.

#![allow(clippy::unwrap_used)]

use std::process::Command;

mod common;
use common::{lines, request_ids, run};

fn waflog() -> Command {
    common::waflog_at(&common::moto())
}

/// Runs a boto3 snippet (`s3` and `kinesis` clients are defined) against moto.
fn boto(code: &str) {
    common::boto_at(&common::moto(), code);
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
    let b = common::unique_name("waflog-rt");
    boto(&format!("s3.create_bucket(Bucket='{b}')"));
    let local = dir.path().join("local.ndjson");
    let (code, _, err) = run(waflog().args(GEN).arg("-o").arg(&local));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(waflog().args(GEN).args(["-o", &format!("s3://{b}/logs/")]));
    assert_eq!(code, 0, "{err}");
    // One object per 5 minutes per web ACL, in the delivery layout.
    boto(&format!(
        "keys = [o['Key'] for o in s3.list_objects_v2(Bucket='{b}', Prefix='logs/')['Contents']]\n\
         assert len(keys) >= 4, keys\n\
         assert all(k.startswith('logs/AWSLogs/123456789012/WAFLogs/') and k.endswith('.log.gz') for k in keys), keys\n\
         assert any('/2024/05/01/00/05/' in k for k in keys), keys\n\
         s3.put_object(Bucket='{b}', Key='logs/AWSLogs/123456789012/WAFLogs/us-east-1/x/2024/05/01/00/07/bad.log.gz', Body=gzip.compress(b'{{\"a\":1}}\\n' * 1000)[:300] + b'garbage')",
    ));
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let (code, _, err) = run(waflog()
        .args(["transform", &format!("s3://{b}/logs/"), "--dead-letter"])
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
    // The reason counts the records kept and where the damage starts.
    let reason = corrupt[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("records were read from it, at byte"),
        "{reason}"
    );
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
        &format!("s3://{b}/logs/"),
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
            &format!("s3://{b}/logs/"),
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
    // Unreachable service: retried for --operation-timeout, then a clear error,
    // exit 2.
    let (code, _, err) = run(common::waflog_env().env_remove("AWS_REGION").args([
        "--region",
        "us-east-1",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--operation-timeout",
        "2s",
        "transform",
        &format!("s3://{b}/logs/"),
    ]));
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("cannot list s3://{b}/logs/")),
        "{err}"
    );
}

#[test]
fn large_objects_use_multipart_upload_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::unique_name("waflog-mp");
    boto(&format!("s3.create_bucket(Bucket='{b}')"));
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
        &format!("s3://{b}/big"),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("multipart)") && !err.contains("(0 multipart)"),
        "{err}"
    );
    let out = dir.path().join("out.ndjson");
    let (code, _, err) = run(waflog()
        .args(["transform", &format!("s3://{b}/big/"), "-o"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let n = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(n, 700_000);
    // Each object, compressed in chunks on worker threads, is one ordinary gzip
    // member (a single-member decoder reads it to the end, nothing after it).
    let got = common::boto_at(
        &common::moto(),
        &format!(
            "import zlib\n\
         n = 0\n\
         for o in s3.list_objects_v2(Bucket='{b}', Prefix='big/')['Contents']:\n\
         \x20   body = s3.get_object(Bucket='{b}', Key=o['Key'])['Body'].read()\n\
         \x20   d = zlib.decompressobj(31)\n\
         \x20   n += d.decompress(body).count(b'\\n')\n\
         \x20   assert d.eof and not d.unused_data, o['Key']\n\
         print(n)"
        ),
    );
    assert_eq!(got.trim(), "700000");
}

#[test]
fn kinesis_round_trip_resumes_from_the_checkpoints_in_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::unique_name("waflog-rt");
    boto(&format!(
        "kinesis.create_stream(StreamName='{s}', ShardCount=2)"
    ));
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
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("kinesis://{s}: {n1} records")),
        "{err}"
    );
    let state = dir.path().join("state.json");
    let results = dir.path().join("r1.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "detect",
            &format!("kinesis://{s}"),
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
    assert!(cps.keys().all(|k| k.starts_with(&format!("{s}/shardId-"))));
    // More records arrive; a restart reads only those (no record twice, none lost).
    let (code, _, err) = run(waflog()
        .arg("transform")
        .arg(&second)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(waflog()
        .args([
            "detect",
            &format!("kinesis://{s}"),
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

#[test]
fn generate_to_s3_to_kinesis_to_detect_keeps_every_record_intact() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = common::unique_name("waflog-e2e");
    let stream = common::unique_name("e2e");
    boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    let kinesalite = common::kinesalite();
    common::create_stream(&kinesalite, &stream, 2);
    let local = dir.path().join("local.ndjson");
    let (code, _, err) = run(waflog().args(GEN).arg("-o").arg(&local));
    assert_eq!(code, 0, "{err}");
    let expected = dir.path().join("expected.ndjson");
    let (code, _, err) = run(waflog()
        .arg("transform")
        .arg(&local)
        .arg("-o")
        .arg(&expected));
    assert_eq!(code, 0, "{err}");
    // The seed's pipeline: WAF logs land in S3, a transform moves them to Kinesis
    // (S3 on moto, Kinesis on kinesalite, chosen by the AWS CLI's per-service
    // endpoint variables).
    let (code, _, err) = run(waflog()
        .args(GEN)
        .args(["-o", &format!("s3://{bucket}/waf/")]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(common::waflog_env()
        .env("AWS_ENDPOINT_URL_S3", common::moto())
        .env("AWS_ENDPOINT_URL_KINESIS", &kinesalite)
        .args([
            "transform",
            &format!("s3://{bucket}/waf/"),
            "-o",
            &format!("kinesis://{stream}"),
        ]));
    assert_eq!(code, 0, "{err}");
    let waflog = || common::waflog_at(&kinesalite);
    // What comes out of the stream is byte for byte what a local transform makes.
    let back = dir.path().join("back.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "transform",
            &format!("kinesis://{stream}"),
            "--idle-exit",
            "2s",
            "-o",
        ])
        .arg(&back));
    assert_eq!(code, 0, "{err}");
    let sorted = |p: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let (want, got) = (sorted(&expected), sorted(&back));
    assert_eq!(got.len(), want.len(), "{err}");
    assert!(
        got == want,
        "records changed on the way through S3 and Kinesis"
    );
    // And detection on the stream finds the injected unknown-country episode.
    let results = dir.path().join("results.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "detect",
            &format!("kinesis://{stream}"),
            "--idle-exit",
            "2s",
            "-o",
        ])
        .arg(&results));
    assert_eq!(code, 0, "{err}");
    let found = lines(&results);
    let country: Vec<_> = found
        .iter()
        .filter(|r| r["detector_name"] == "country-anomaly-detector")
        .collect();
    assert!(!country.is_empty(), "{err}");
    let start = country[0]["data_start_time"].as_i64().unwrap();
    // The episode starts 8 minutes after 2024-05-01T00:00:00Z.
    assert_eq!(start, 1_714_521_600_000 + 8 * 60_000, "{err}");
}

#[test]
fn since_and_until_keep_every_hour_of_firehose_delivered_objects() {
    // Three hours of records as Firehose delivers them to S3: `prefix/YYYY/MM/dd/HH/`
    // with no minute folder, records concatenated without a delimiter, two objects
    // per hour (the first gzip-compressed).
    let dir = tempfile::tempdir().unwrap();
    let b = common::unique_name("waflog-fh");
    boto(&format!("s3.create_bucket(Bucket='{b}')"));
    let local = dir.path().join("local.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "generate",
            "--seed",
            "12",
            "--start",
            "2024-05-01T00:00:00Z",
        ])
        .args(["--duration", "3h", "--rate", "0.2", "-o"])
        .arg(&local));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&local).unwrap();
    let mut hours: Vec<Vec<&str>> = vec![Vec::new(); 3];
    for l in text.lines() {
        let t: serde_json::Value = serde_json::from_str(l).unwrap();
        let hour = (t["timestamp"].as_i64().unwrap() - 1_714_521_600_000) / 3_600_000;
        hours[usize::try_from(hour).unwrap()].push(l);
    }
    let mut puts = String::new();
    for (h, records) in hours.iter().enumerate() {
        let half = records.len() / 2;
        for (i, part) in [&records[..half], &records[half..]].iter().enumerate() {
            let path = dir.path().join(format!("{h}-{i}"));
            std::fs::write(&path, part.concat()).unwrap();
            let key = format!(
                "fh/2024/05/01/{h:02}/aws-waf-logs-s-1-2024-05-01-{h:02}-{:02}-00-{i}",
                i * 30
            );
            let body = if i == 0 {
                "gzip.compress(open(p, 'rb').read())"
            } else {
                "open(p, 'rb').read()"
            };
            puts += &format!(
                "p = '{}'\ns3.put_object(Bucket='{b}', Key='{key}', Body={body})\n",
                path.display()
            );
        }
    }
    boto(&puts);
    let out = dir.path().join("out.ndjson");
    let transform = |range: &[&str]| {
        let (code, _, err) = run(waflog()
            .args(["transform", &format!("s3://{b}/fh/"), "-o"])
            .arg(&out)
            .args(range));
        assert_eq!(code, 0, "{err}");
        lines(&out)
    };
    assert_eq!(
        transform(&[]).len(),
        hours.iter().map(Vec::len).sum::<usize>()
    );
    // 00:30 to 01:30: the objects of hours 00 and 01, every record of them.
    let got = transform(&[
        "--since",
        "2024-05-01T00:30:00Z",
        "--until",
        "2024-05-01T01:30:00Z",
    ]);
    assert_eq!(got.len(), hours[0].len() + hours[1].len());
    let got = transform(&["--since", "2024-05-01T02:59:00Z"]);
    assert_eq!(got.len(), hours[2].len());
}

#[test]
fn several_web_acls_under_one_prefix_are_merged_in_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = common::unique_name("waflog-acls");
    boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    // Two delivery folders covering the same 30 minutes.
    let mut total = 0;
    for (seed, acl) in [("21", "shop"), ("22", "api")] {
        let (code, _, err) = run(waflog()
            .args([
                "generate",
                "--seed",
                seed,
                "--start",
                "2024-05-01T00:00:00Z",
            ])
            .args(["--duration", "30m", "--inject", "country:20m:5m"])
            .args(["-o", &format!("s3://{bucket}/waf/{acl}/")]));
        assert_eq!(code, 0, "{err}");
        total += err
            .split("generated ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no event count in {err}"));
    }
    let results = dir.path().join("results.ndjson");
    let (code, _, err) = run(waflog()
        .args(["detect", &format!("s3://{bucket}/waf/"), "-o"])
        .arg(&results));
    assert_eq!(code, 0, "{err}");
    // Each generated run has a regional and a CloudFront web ACL.
    assert!(err.contains("merging 4 delivery folders"), "{err}");
    // Read one after another, the second folder's records would all be late.
    assert!(!err.contains("late records"), "{err}");
    assert!(err.contains(&format!("of {total} records")), "{err}");
    let found = lines(&results);
    assert!(
        found
            .iter()
            .any(|r| r["detector_name"] == "country-anomaly-detector"
                && r["data_start_time"] == 1_714_521_600_000i64 + 20 * 60_000),
        "{err}"
    );
}

/// A CloudWatch Logs subscription to a Kinesis stream: each record is a gzip payload.
/// Every log event's message is a record, control messages are skipped, a payload that
/// does not decompress is one dead letter (issue 18).
#[test]
fn cloudwatch_logs_subscription_records_on_kinesis_are_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::unique_name("waflog-cwl");
    boto(&format!(
        r#"
import gzip, json
kinesis.create_stream(StreamName='{s}', ShardCount=1)
kinesis.get_waiter('stream_exists').wait(StreamName='{s}')
def rec(i, country):
    return json.dumps({{"timestamp": 1714521600000 + i, "action": "ALLOW", "httpSourceName": "ALB",
        "httpRequest": {{"clientIp": "10.0.0.1", "country": country, "httpMethod": "GET"}}}})
def payload(kind, messages):
    return gzip.compress(json.dumps({{"messageType": kind, "owner": "123456789012",
        "logGroup": "aws-waf-logs-t", "logStream": "s", "subscriptionFilters": ["f"],
        "logEvents": [{{"id": str(i), "timestamp": 1714521600000, "message": m}} for i, m in enumerate(messages)]}}).encode())
kinesis.put_record(StreamName='{s}', PartitionKey='a', Data=payload("CONTROL_MESSAGE", ["CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."]))
kinesis.put_record(StreamName='{s}', PartitionKey='a', Data=payload("DATA_MESSAGE", [rec(0, "US"), rec(1, "XX"), "not json"]))
kinesis.put_record(StreamName='{s}', PartitionKey='a', Data=payload("DATA_MESSAGE", [rec(2, "IN")])[:20])
kinesis.put_record(StreamName='{s}', PartitionKey='a', Data=payload("DATA_MESSAGE", [rec(3, "UK"), rec(4, "US")]))
"#
    ));
    let dead = dir.path().join("dead.ndjson");
    let (code, out, err) = run(waflog()
        .args(["transform", &format!("kinesis://{s}"), "--idle-exit", "3s"])
        .arg("--dead-letter")
        .arg(&dead));
    assert_eq!(code, 0, "{err}");
    let got: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ts: Vec<i64> = got
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ts,
        [
            1_714_521_600_000,
            1_714_521_600_001,
            1_714_521_600_003,
            1_714_521_600_004
        ]
    );
    assert_eq!(got[1]["UNK_country"], 1);
    let dead = lines(&dead);
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["raw"], "not json");
    assert!(
        dead[1]["reason"]
            .as_str()
            .unwrap()
            .contains("gzip data that does not decompress"),
        "{dead:?}"
    );
}

/// `eval` and `report` read results from S3 like any other input (issue 16: one
/// input plan for every subcommand), and refuse a stream with a clear error.
#[test]
fn eval_and_report_read_results_from_s3() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::unique_name("waflog-results");
    boto(&format!("s3.create_bucket(Bucket='{b}')"));
    let logs = dir.path().join("logs.ndjson");
    let truth = dir.path().join("truth.json");
    let (code, _, err) = run(waflog()
        .args(GEN)
        .arg("--truth")
        .arg(&truth)
        .arg("-o")
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    let results = dir.path().join("results.ndjson");
    let (code, _, err) = run(waflog()
        .args(["detect", "--all", "-o"])
        .arg(&results)
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    let n = lines(&results).len();
    assert!(n > 100, "{n} results");
    // The results in two objects, one of them compressed.
    boto(&format!(
        "data = open('{}', 'rb').read().splitlines(keepends=True)\n\
         half = len(data) // 2\n\
         s3.put_object(Bucket='{b}', Key='runs/a.ndjson', Body=b''.join(data[:half]))\n\
         s3.put_object(Bucket='{b}', Key='runs/b.ndjson.gz', Body=gzip.compress(b''.join(data[half:])))",
        results.display()
    ));
    let eval = |input: &str| {
        let (code, out, err) = run(waflog()
            .args(["eval", "--json", "--truth"])
            .arg(&truth)
            .arg(input));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let local = eval(&results.display().to_string());
    assert_eq!(eval(&format!("s3://{b}/runs/")), local);
    assert!(local.to_string().contains("recall"), "{local}");

    let html = dir.path().join("report.html");
    let (code, _, err) = run(waflog()
        .args(["report", &format!("s3://{b}/runs/"), "-o"])
        .arg(&html));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("report of {n} results")), "{err}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));

    let (code, _, err) = run(waflog()
        .args(["eval", "--truth"])
        .arg(&truth)
        .arg("kinesis://some-stream"));
    assert_ne!(code, 0);
    assert!(err.contains("not from a stream"), "{err}");
}
