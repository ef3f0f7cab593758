//! CloudWatch Logs as a source (`cloudwatch://GROUP[?prefix=STREAM_PREFIX]`, issue
//! 18) against moto's CloudWatch Logs, started by `bash scripts/test.sh` (the
//! README's test command), which exports `WAFLOG_TEST_MOTO`, `WAFLOG_TEST_PYTHON`
//! and test credentials.

#![allow(clippy::unwrap_used)]

use std::process::Command;

mod common;
use common::{lines, request_ids, run};

fn waflog() -> Command {
    common::waflog_at(&common::moto())
}

/// Runs a boto3 snippet against moto with a `logs` client defined.
fn boto(code: &str) -> String {
    common::boto_at(
        &common::moto(),
        &format!("logs = boto3.client('logs', **kw)\n{code}"),
    )
}

/// The start of the hour three hours ago: CloudWatch Logs (and moto) refuse
/// events older than 14 days, so the records are generated near now.
fn recent_hour() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now().timestamp();
    chrono::DateTime::from_timestamp(now - now % 3600 - 3 * 3600, 0).unwrap()
}

#[test]
fn a_log_group_is_read_in_event_time_by_prefix_and_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let start = recent_hour();
    let at = |minutes: i64| (start + chrono::Duration::minutes(minutes)).to_rfc3339();
    let local = dir.path().join("local.ndjson");
    let (code, _, err) = run(waflog()
        .args(["generate", "--seed", "31", "--start", &at(0)])
        .args(["--duration", "30m", "--inject", "country:20m:5m", "-o"])
        .arg(&local));
    assert_eq!(code, 0, "{err}");
    let records = lines(&local);
    let n = records.len();
    assert!(n > 1000, "{n}");
    // As WAF writes them: the records spread over two streams of the web ACL, and
    // a stream of another ACL holding the first 100 again.
    let group = common::unique_name("aws-waf-logs-test");
    boto(&format!(
        "logs.create_log_group(logGroupName='{group}')\n\
         data = [l for l in open('{}').read().splitlines() if l]\n\
         import json\n\
         streams = {{'us-east-1_shop_0': data[0::2], 'us-east-1_shop_1': data[1::2], 'us-east-1_api_0': data[:100]}}\n\
         for name, ls in streams.items():\n\
         \x20   logs.create_log_stream(logGroupName='{group}', logStreamName=name)\n\
         \x20   events = [dict(timestamp=json.loads(l)['timestamp'], message=l) for l in ls]\n\
         \x20   for i in range(0, len(events), 2000):\n\
         \x20       r = logs.put_log_events(logGroupName='{group}', logStreamName=name, logEvents=events[i:i+2000])\n\
         \x20       assert 'rejectedLogEventsInfo' not in r, r",
        local.display()
    ));

    // The web ACL's streams by prefix: every record once, in event time.
    let out = dir.path().join("shop.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "transform",
            &format!("cloudwatch://{group}?prefix=us-east-1_shop_"),
            "-o",
        ])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 log streams"), "{err}");
    let got = lines(&out);
    assert_eq!(got.len(), n, "{err}");
    let mut want_ids = request_ids(&records);
    let mut got_ids = request_ids(&got);
    want_ids.sort();
    got_ids.sort();
    assert_eq!(got_ids, want_ids);
    let times: Vec<i64> = got
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in event time");

    // The whole group: the other ACL's stream too.
    let (code, _, err) =
        run(waflog().args(["transform", &format!("cloudwatch://{group}"), "-o", "-"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("{} log events", n + 100)), "{err}");

    // --since / --until by event time: exactly the records of minutes 10-20.
    let (from, to) = (
        start.timestamp_millis() + 10 * 60_000,
        start.timestamp_millis() + 20 * 60_000,
    );
    let window = records
        .iter()
        .filter(|r| (from..to).contains(&r["timestamp"].as_i64().unwrap()))
        .count();
    let (code, out, err) = run(waflog()
        .args([
            "transform",
            &format!("cloudwatch://{group}?prefix=us-east-1_shop_"),
        ])
        .args(["--since", &at(10), "--until", &at(20)]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), window, "{err}");

    // Detection straight from the group finds the injected episode.
    let (code, out, err) = run(waflog().args([
        "detect",
        &format!("cloudwatch://{group}?prefix=us-east-1_shop_"),
    ]));
    assert_eq!(code, 0, "{err}");
    let minute20 = start.timestamp_millis() + 20 * 60_000;
    assert!(
        out.lines().any(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            r["detector_name"] == "country-anomaly-detector" && r["data_start_time"] == minute20
        }),
        "{out}\n{err}"
    );

    // Server errors on every second call are retried: nothing is lost.
    let proxy = common::start_fault_proxy(
        &common::moto(),
        &["--status-5xx-every", "2", "--only-ops", "Other"],
    );
    let (code, out, err) = run(common::waflog_at(&proxy.url()).args([
        "transform",
        &format!("cloudwatch://{group}?prefix=us-east-1_shop_"),
    ]));
    let stats = boto(&format!(
        "import urllib.request\nprint(urllib.request.urlopen('{}/__fault_stats').read().decode())",
        proxy.url()
    ));
    proxy.stop();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), n, "{err}");
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert!(stats["status_5xx"].as_u64().unwrap_or(0) >= 5, "{stats}");

    // A prefix that matches nothing reads nothing; a missing group is an error.
    let (code, out, err) =
        run(waflog().args(["transform", &format!("cloudwatch://{group}?prefix=nope")]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("no log stream starts with `nope`"), "{err}");
    let (code, _, err) = run(waflog().args(["transform", "cloudwatch://aws-waf-logs-missing"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot read cloudwatch://aws-waf-logs-missing"),
        "{err}"
    );
    assert!(err.contains("ResourceNotFound"), "{err}");
}

/// With `--state`, a run reads only the events put since the last one: the
/// position (newest event time and the IDs at that time) is saved when the group
/// was read to its end. Split where two events share a millisecond, the second
/// run reads the one not read yet and not the other; a third run reads nothing.
/// The same for `detect`, whose models take in each record once.
#[test]
fn a_log_group_resumes_after_the_events_already_read() {
    let dir = tempfile::tempdir().unwrap();
    let start = recent_hour();
    let local = dir.path().join("local.ndjson");
    let (code, _, err) = run(waflog()
        .args(["generate", "--seed", "33", "--start", &start.to_rfc3339()])
        .args(["--duration", "20m", "--rate", "20", "-o"])
        .arg(&local));
    assert_eq!(code, 0, "{err}");
    let records = lines(&local);
    let group = common::unique_name("aws-waf-logs-resume");
    // Puts records [from, to) into two streams; the first call creates the group.
    let put = |from: usize, to: usize, create: bool| {
        boto(&format!(
            "import json\n\
             data = [l for l in open('{}').read().splitlines() if l]\n\
             if {create}:\n\
             \x20   logs.create_log_group(logGroupName='{group}')\n\
             \x20   for s in ('a', 'b'):\n\
             \x20       logs.create_log_stream(logGroupName='{group}', logStreamName=s)\n\
             part = data[{from}:{to}]\n\
             for name, ls in (('a', part[0::2]), ('b', part[1::2])):\n\
             \x20   events = [dict(timestamp=json.loads(l)['timestamp'], message=l) for l in ls]\n\
             \x20   for i in range(0, len(events), 2000):\n\
             \x20       r = logs.put_log_events(logGroupName='{group}', logStreamName=name, logEvents=events[i:i+2000])\n\
             \x20       assert 'rejectedLogEventsInfo' not in r, r",
            local.display(),
            create = if create { "True" } else { "False" },
        ))
    };
    let ts: Vec<i64> = records
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    // The split: the first record past the middle that shares its millisecond
    // with the one before.
    let split = (ts.len() / 2..ts.len())
        .find(|&i| ts[i] == ts[i - 1])
        .expect("two events in one millisecond");
    put(0, split, true);
    let state = dir.path().join("state.json");
    let source = format!("cloudwatch://{group}");
    let transform = |out: &str| {
        run(waflog()
            .args(["transform", &source, "--state"])
            .arg(&state)
            .args(["-o", out]))
    };
    let first = dir.path().join("first.ndjson");
    let (code, _, err) = transform(first.to_str().unwrap());
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&first).len(), split, "{err}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let position = saved["checkpoints"][&source].as_str().unwrap();
    assert!(
        position.starts_with(&format!("{} ", ts[split - 1])),
        "{position}"
    );

    put(split, records.len(), false);
    let second = dir.path().join("second.ndjson");
    let (code, _, err) = transform(second.to_str().unwrap());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming after"), "{err}");
    let mut got = request_ids(&lines(&first));
    got.extend(request_ids(&lines(&second)));
    got.sort();
    let mut want = request_ids(&records);
    want.sort();
    assert_eq!(got.len(), records.len(), "{err}");
    assert_eq!(got, want);
    // Nothing new: nothing read, the position unchanged.
    let third = dir.path().join("third.ndjson");
    let (code, _, err) = transform(third.to_str().unwrap());
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&third).len(), 0, "{err}");

    // detect: the second run's models take in only the new records.
    let dstate = dir.path().join("detect-state.json");
    let detect = || {
        run(waflog()
            .args(["detect", &source, "--state"])
            .arg(&dstate)
            .args(["-o", "/dev/null"]))
    };
    let (code, _, err) = detect();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("records_in={}", records.len())),
        "{err}"
    );
    let (code, _, err) = detect();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("records_in=0"), "{err}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dstate).unwrap()).unwrap();
    assert_eq!(saved["records"], records.len());
}

/// `detect --follow cloudwatch://GROUP` polls the group: events put after it
/// started are read, none twice (each poll looks back a minute), and
/// `--idle-exit` ends it, saving the group's position in `--state`: the next
/// follower reads only the events put since.
#[test]
fn a_followed_log_group_is_polled_for_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let start = recent_hour();
    let local = dir.path().join("local.ndjson");
    let (code, _, err) = run(waflog()
        .args(["generate", "--seed", "32", "--start", &start.to_rfc3339()])
        .args(["--rate", "5", "--duration", "25m", "-o"])
        .arg(&local));
    assert_eq!(code, 0, "{err}");
    let n = lines(&local).len();
    let group = common::unique_name("aws-waf-logs-follow");
    let state = dir.path().join("follow.state");
    // Puts the records of minutes [from, to) into the group's one stream.
    let put = |from: i64, to: i64| {
        let (a, b) = (
            start.timestamp_millis() + from * 60_000,
            start.timestamp_millis() + to * 60_000,
        );
        boto(&format!(
            "import json\n\
             try:\n\
             \x20   logs.create_log_group(logGroupName='{group}')\n\
             \x20   logs.create_log_stream(logGroupName='{group}', logStreamName='s')\n\
             except logs.exceptions.ResourceAlreadyExistsException:\n\
             \x20   pass\n\
             data = [l for l in open('{}').read().splitlines() if l]\n\
             events = [dict(timestamp=t, message=l) for l in data for t in [json.loads(l)['timestamp']] if {a} <= t < {b}]\n\
             r = logs.put_log_events(logGroupName='{group}', logStreamName='s', logEvents=events)\n\
             assert 'rejectedLogEventsInfo' not in r, r\n\
             print(len(events))",
            local.display()
        ))
        .trim()
        .parse::<usize>()
        .unwrap()
    };
    let first = put(0, 12);
    let results = dir.path().join("results.ndjson");
    let child = waflog()
        .args(["detect", "--follow", &format!("cloudwatch://{group}")])
        .args(["--idle-exit", "8s", "--all", "--state"])
        .arg(&state)
        .arg("-o")
        .arg(&results)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first events are scored (results written), the rest arrives.
    common::wait_for(
        std::time::Duration::from_secs(60),
        "results of the first events",
        || std::fs::read_to_string(&results).is_ok_and(|t| t.lines().count() > 5),
    );
    let second = put(12, 20);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("of {} records", first + second)),
        "{err}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(
        saved["checkpoints"][format!("cloudwatch://{group}")].is_string(),
        "{saved}"
    );
    // The next follower resumes after them: only the events put since.
    let third = put(20, 25);
    assert_eq!(first + second + third, n);
    let (code, _, err2) = run(waflog()
        .args(["detect", "--follow", &format!("cloudwatch://{group}")])
        .args(["--idle-exit", "4s", "--all", "--state"])
        .arg(&state)
        .arg("-o")
        .arg(dir.path().join("results2.ndjson")));
    assert_eq!(code, 0, "{err2}");
    assert!(err2.contains(&format!("of {third} records")), "{err2}");
    // Results cover the minutes put after the start.
    let last = lines(&results)
        .iter()
        .filter_map(|r| r["data_start_time"].as_i64())
        .max()
        .unwrap();
    assert!(last >= start.timestamp_millis() + 15 * 60_000, "{err}");
}
