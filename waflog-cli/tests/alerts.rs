//! Alerting end to end: `waflog generate --inject httpSourceName:...` through
//! `waflog detect` with the seed's UNK_source monitor, delivered to a file, to a
//! webhook receiver bound to 127.0.0.1 in this process (which fails on purpose),
//! and to SNS on moto_server (read back through an SQS subscription); a channel
//! outage spooled in the state file; acknowledgements from `waflog alerts`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{Receiver, lines, run};

/// Three hours with a 20-minute unknown-source episode at 1h.
fn episode(dir: &Path) -> PathBuf {
    let logs = dir.join("logs.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "generate",
            "--seed",
            "42",
            "--start",
            "2024-05-01T00:00:00Z",
        ])
        .args([
            "--duration",
            "3h",
            "--inject",
            "httpSourceName:1h:20m",
            "-o",
        ])
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    logs
}

/// Splits generated logs (starting 2024-05-01T00:00:00Z) at `minutes` into
/// `a.ndjson` and `b.ndjson` in `dir`: two runs on one state.
fn split_logs(dir: &Path, logs: &Path, minutes: i64) -> (PathBuf, PathBuf) {
    let cut = 1_714_521_600_000i64 + minutes * 60_000;
    let (mut first, mut second) = (String::new(), String::new());
    for l in std::fs::read_to_string(logs).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let part = if v["timestamp"].as_i64().unwrap() < cut {
            &mut first
        } else {
            &mut second
        };
        part.push_str(l);
        part.push('\n');
    }
    let (a, b) = (dir.join("a.ndjson"), dir.join("b.ndjson"));
    std::fs::write(&a, first).unwrap();
    std::fs::write(&b, second).unwrap();
    (a, b)
}

/// `waflog` with test credentials; tests that reach SNS add `--endpoint-url`.
fn waflog() -> Command {
    common::waflog_env()
}

/// The seed's monitor, as a user writes it, and `channels`.
fn config(dir: &Path, channels: &str, trigger_extra: &str) -> PathBuf {
    let path = dir.join("waflog.toml");
    std::fs::write(
        &path,
        format!(
            "[[monitors]]\nname = \"UNK_source-Monitor\"\nperiod = \"10m\"\ndetector = \"source-anomaly-detector\"\n\
             [[monitors.triggers]]\nname = \"UNK_source-trigger\"\nseverity = 1\n{trigger_extra}\n{channels}"
        ),
    )
    .unwrap();
    path
}

/// `waflog --config CFG detect INPUT --state STATE -o /dev/null`.
fn detect_with_state(cfg: &Path, input: &Path, state: &Path) -> (i32, String, String) {
    run(waflog()
        .arg("--config")
        .arg(cfg)
        .arg("detect")
        .arg(input)
        .arg("--state")
        .arg(state)
        .args(["-o", "/dev/null"]))
}

/// `waflog alerts --state STATE ARGS...`.
fn alerts_cmd(state: &Path, args: &[&str]) -> (i32, String, String) {
    run(waflog().args(["alerts", "--state"]).arg(state).args(args))
}

const SEED_TEXT: &str = "Monitor UNK_source-Monitor just entered alert status. Please investigate the issue.\n  - Trigger: UNK_source-trigger\n  - Severity: 1\n  - Period start: 2024-05-01T01:00:00.000Z\n  - Period end: 2024-05-01T01:10:00.000Z";

#[test]
fn the_seed_monitor_fires_once_per_episode_and_completes_through_a_flaky_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let logs = episode(dir.path());
    // The webhook fails twice (503) before it takes the first notification.
    let hook = Receiver::start(vec![503, 503]);
    let file = dir.path().join("alerts.ndjson");
    let cfg = config(
        dir.path(),
        &format!(
            "[[channels]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\n\
             [[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nmax_attempts = 3\ntimeout = \"5s\"\n",
            file.display(),
            hook.url()
        ),
        "",
    );
    let (code, _, err) = run(waflog()
        .arg("--config")
        .arg(&cfg)
        .arg("detect")
        .arg(&logs)
        .args(["-o", "/dev/null"]));
    assert_eq!(code, 0, "{err}");
    let notes = lines(&file);
    let kinds: Vec<&str> = notes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["fired", "completed"], "{err}");
    assert!(notes.iter().all(|n| n["monitor"] == "UNK_source-Monitor"));
    assert_eq!(notes[0]["alert_id"], notes[1]["alert_id"]);
    let message = notes[0]["message"].as_str().unwrap();
    assert!(message.starts_with(SEED_TEXT), "{message}");
    // The explanation: which feature moved, actual against expected, contributors.
    assert!(
        message.contains("Feature moved: UNK_source = "),
        "{message}"
    );
    assert!(message.contains("httpRequest.clientIp"), "{message}");
    // Example records of the interval that moved the feature.
    assert!(
        message.contains("Example records:\n  - clientIp "),
        "{message}"
    );
    let examples = &notes[0]["explanation"]["anomaly"]["examples"];
    assert_eq!(examples.as_array().map(Vec::len), Some(3), "{examples}");
    assert!(examples[0]["uri"].is_string() && examples[0]["action"].is_string());
    // Completed at the end of the first 10-minute period after the 20-minute
    // episode: quiet for its two one-minute intervals by then (not two periods).
    assert_eq!(notes[1]["period_start"], "2024-05-01T01:20:00.000Z");
    assert_eq!(notes[1]["period_end"], "2024-05-01T01:30:00.000Z");
    let got = hook.got.lock().unwrap().clone();
    let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [503, 503, 200, 200], "{err}");
    let delivered = hook.delivered();
    assert_eq!(delivered[0]["kind"], "fired");
    assert_eq!(delivered[1]["kind"], "completed");
    assert!(
        err.contains("alerts: 1 fired, 0 re-notified, 1 completed; 4 notifications delivered"),
        "{err}"
    );
}

#[test]
fn notifications_a_down_channel_missed_are_kept_in_the_state_file_and_sent_later() {
    let dir = tempfile::tempdir().unwrap();
    let logs = episode(dir.path());
    // A port with nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(
        dir.path(),
        &format!(
            "[[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nmax_attempts = 2\ntimeout = \"2s\"\n"
        ),
        "",
    );
    let state = dir.path().join("state.json");
    let detect = |input: &Path| detect_with_state(&cfg, input, &state);
    let (code, _, err) = detect(&logs);
    // Exit 3: finished, notifications undelivered (kept).
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("2 alert notifications could not be delivered"),
        "{err}"
    );
    let (code, out, err) = alerts_cmd(&state, &["list", "--all", "--json"]);
    assert_eq!(code, 0, "{err}");
    let alerts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{out}");
    assert!(alerts[0]["failures"].as_u64().unwrap() >= 2, "{out}");
    assert!(
        alerts[0]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{out}"
    );
    let (_, table, _) = alerts_cmd(&state, &["list", "--all"]);
    assert!(
        table.contains("ERROR") && table.contains("UNK_source-Monitor"),
        "{table}"
    );
    // The channel is back: the next run (here with no new input) sends both.
    let hook = Receiver::start_on(port, vec![]);
    let (code, _, err) = detect(Path::new("/dev/null"));
    assert_eq!(code, 0, "{err}");
    let delivered = hook.delivered();
    let kinds: Vec<&str> = delivered
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["fired", "completed"], "{err}");
    let (_, out, _) = alerts_cmd(&state, &["list", "--all", "--json"]);
    let a: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(a["lifecycle"], "COMPLETED", "{out}");
    assert!(a["error"].is_null(), "{out}");
}

#[test]
fn an_acknowledged_alert_is_not_renotified_and_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let logs = episode(dir.path());
    // Split the logs at 1h15m, in the middle of the episode: two runs on one state.
    let (a, b) = split_logs(dir.path(), &logs, 75);
    let file = dir.path().join("alerts.ndjson");
    let cfg = config(
        dir.path(),
        &format!(
            "[[channels]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\n",
            file.display()
        ),
        "throttle = \"10m\"",
    );
    let state = dir.path().join("state.json");
    let detect = |input: &Path| detect_with_state(&cfg, input, &state);
    let (code, _, err) = detect(&a);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = alerts_cmd(&state, &["list", "--json"]);
    let alert: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(alert["lifecycle"], "ACTIVE", "{out}");
    let id = alert["id"].as_str().unwrap().to_string();
    // Acknowledge by a prefix of the ID; list shows it at once.
    let (code, _, err) = alerts_cmd(&state, &["ack", &id[..6]]);
    assert_eq!(code, 0, "{err}");
    let (_, table, _) = alerts_cmd(&state, &["list"]);
    assert!(table.contains("ACKNOWLEDGED"), "{table}");
    // An unknown ID is an error (exit 2).
    let (code, _, err) = alerts_cmd(&state, &["ack", "ffffffff"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = detect(&b);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("acknowledged"), "{err}");
    let kinds: Vec<String> = lines(&file)
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["fired", "completed"]);
    // Without the acknowledgement, the 10-minute throttle re-notifies in the second
    // part of the 20-minute episode.
    let control = dir.path().join("control.json");
    std::fs::remove_file(&file).unwrap();
    for part in [&a, &b] {
        let (code, _, err) = detect_with_state(&cfg, part, &control);
        assert_eq!(code, 0, "{err}");
    }
    let kinds: Vec<String> = lines(&file)
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["fired", "renotify", "completed"]);
    let (_, out, _) = alerts_cmd(&state, &["list", "--all", "--json"]);
    let done: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(done["lifecycle"], "COMPLETED", "{out}");
    assert!(done["acknowledged_time"].is_i64(), "{out}");
}

#[test]
fn alerts_test_sends_a_test_notification_to_one_channel() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(vec![]);
    let cfg = config(
        dir.path(),
        &format!(
            "[[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nslack = true\n",
            hook.url()
        ),
        "",
    );
    let (code, _, err) =
        run(waflog()
            .arg("--config")
            .arg(&cfg)
            .args(["alerts", "test", "--channel", "hook"]));
    assert_eq!(code, 0, "{err}");
    let got = hook.delivered();
    assert_eq!(got.len(), 1);
    // A Slack-compatible body.
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("UNK_source-Monitor"),
        "{got:?}"
    );
    let (code, _, err) =
        run(waflog()
            .arg("--config")
            .arg(&cfg)
            .args(["alerts", "test", "--channel", "nope"]));
    assert_eq!(code, 2, "{err}");
}

/// `alerts test --channel hook` builds that channel only: an SNS channel next to
/// it, with no AWS configuration at hand, neither fails the test nor sends the
/// AWS chain to the EC2 metadata endpoint.
#[test]
fn alerts_test_of_a_webhook_ignores_an_unrelated_sns_channel() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(vec![]);
    // Stands for the EC2 metadata endpoint: it must never be called.
    let imds = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    imds.set_nonblocking(true).unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[[channels]]\nname = \"topic\"\ntype = \"sns\"\ntopic_arn = \"arn:aws:sns:us-east-1:123456789012:alerts\"\n\
             [[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            hook.url()
        ),
        "",
    );
    let began = std::time::Instant::now();
    let (code, _, err) = run(common::waflog_env()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{}", imds.local_addr().unwrap()),
        )
        .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("no-aws-credentials"),
        )
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "test", "--channel", "hook"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(hook.delivered().len(), 1);
    assert!(
        began.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    match imds.accept() {
        Ok((mut s, _)) => {
            let mut head = [0u8; 256];
            let n = s.read(&mut head).unwrap_or(0);
            panic!(
                "the EC2 metadata endpoint was called: {}",
                String::from_utf8_lossy(&head[..n])
            );
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
    }
}

#[test]
fn sns_delivers_the_alert_to_a_subscribed_queue() {
    let endpoint = common::moto();
    let dir = tempfile::tempdir().unwrap();
    let logs = episode(dir.path());
    let name = common::unique_name("waf-alerts");
    let arn = common::boto_at(
        &endpoint,
        &format!(
            "sns = boto3.client('sns', **kw)\nsqs = boto3.client('sqs', **kw)\n\
             topic = sns.create_topic(Name='{name}')['TopicArn']\n\
             q = sqs.create_queue(QueueName='{name}')['QueueUrl']\n\
             qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
             sns.subscribe(TopicArn=topic, Protocol='sqs', Endpoint=qarn)\n\
             print(topic)"
        ),
    );
    let arn = arn.trim();
    let cfg = config(
        dir.path(),
        &format!("[[channels]]\nname = \"security-sns\"\ntype = \"sns\"\ntopic_arn = \"{arn}\"\n"),
        "",
    );
    let (code, _, err) = run(waflog()
        .args(["--endpoint-url", &endpoint, "--config"])
        .arg(&cfg)
        .arg("detect")
        .arg(&logs)
        .args(["-o", "/dev/null"]));
    assert_eq!(code, 0, "{err}");
    let out = common::boto_at(
        &endpoint,
        &format!(
            "import json\nsqs = boto3.client('sqs', **kw)\n\
             q = sqs.get_queue_url(QueueName='{name}')['QueueUrl']\n\
             msgs = []\n\
             for _ in range(5):\n\
             \x20   r = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1)\n\
             \x20   msgs += r.get('Messages', [])\n\
             \x20   if len(msgs) >= 2: break\n\
             print(json.dumps([json.loads(m['Body']) for m in msgs]))"
        ),
    );
    let msgs: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(msgs.len(), 2, "{out}");
    let first = msgs
        .iter()
        .find(|m| {
            m["Message"]
                .as_str()
                .unwrap()
                .starts_with("Monitor UNK_source-Monitor just entered")
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(first["Message"].as_str().unwrap().starts_with(SEED_TEXT));
    let subject = first["Subject"].as_str().unwrap();
    assert!(
        subject.len() <= 100 && subject.contains("UNK_source-Monitor"),
        "{subject}"
    );
}

#[test]
fn a_running_detect_takes_in_an_acknowledgement_within_seconds() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let logs = episode(dir.path());
    let text = std::fs::read_to_string(&logs).unwrap();
    // The first 72 minutes close the first 10-minute period of the episode (at 1h).
    let cut = 1_714_521_600_000i64 + 72 * 60_000;
    let split = text
        .lines()
        .position(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["timestamp"]
                .as_i64()
                .unwrap()
                >= cut
        })
        .unwrap();
    let lines_all: Vec<&str> = text.lines().collect();
    let file = dir.path().join("alerts.ndjson");
    let cfg = config(
        dir.path(),
        &format!(
            "[[channels]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\n",
            file.display()
        ),
        "throttle = \"10m\"",
    );
    let state = dir.path().join("state.json");
    let mut child = waflog()
        .arg("--config")
        .arg(&cfg)
        .args(["detect", "--follow", "--state"])
        .arg(&state)
        .args(["-o", "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all((lines_all[..split].join("\n") + "\n").as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    // The running detect saves its alert state: the alert is listed as ACTIVE.
    let mut id = String::new();
    common::wait_for(
        std::time::Duration::from_secs(60),
        "an ACTIVE alert",
        || {
            let (_, out, _) = alerts_cmd(&state, &["list", "--json"]);
            match out
                .lines()
                .next()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            {
                Some(a) if a["lifecycle"] == "ACTIVE" => {
                    id = a["id"].as_str().unwrap().to_string();
                    true
                }
                _ => false,
            }
        },
    );
    let (code, _, err) = alerts_cmd(&state, &["ack", &id]);
    assert_eq!(code, 0, "{err}");
    let acks = dir.path().join("state.json.acks");
    assert!(acks.exists());
    // detect takes it in at its next tick (about once a second) and saves it.
    common::wait_for(
        std::time::Duration::from_secs(10),
        "the ack to be taken",
        || !acks.exists(),
    );
    common::wait_for(
        std::time::Duration::from_secs(10),
        "the ack to be saved",
        || {
            let (_, out, _) = alerts_cmd(&state, &["list", "--json"]);
            out.contains("\"ACKNOWLEDGED\"")
        },
    );
    stdin
        .write_all((lines_all[split..].join("\n") + "\n").as_bytes())
        .unwrap();
    drop(stdin);
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    let kinds: Vec<String> = lines(&file)
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["fired", "completed"], "{err}");
}

/// Feedback (issue 17 part 5): `alerts ack ID --not-anomaly` between two runs on
/// one state closes a sustained episode's alert with the label, the detector takes
/// the level as normal (nothing fires again in the rest of the episode), the
/// results carry a feedback document and `waflog eval` reports the label.
#[test]
fn not_anomaly_feedback_closes_the_alert_and_eval_keeps_the_label() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, truth) = (
        dir.path().join("logs.ndjson"),
        dir.path().join("truth.json"),
    );
    let (code, _, err) = run(waflog()
        .args(["generate", "--seed", "7", "--start", "2024-05-01T00:00:00Z"])
        .args([
            "--duration",
            "6h",
            "--inject",
            "country:1h:4h:0.3",
            "--truth",
        ])
        .arg(&truth)
        .arg("-o")
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    // Two parts: up to 1h30m (the alert is open), and the rest.
    let (a, b) = split_logs(dir.path(), &logs, 90);
    let file = dir.path().join("alerts.ndjson");
    let cfg = dir.path().join("waflog.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[channels]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\n",
            file.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let detect = |input: &Path, out: &Path| {
        run(waflog()
            .arg("--config")
            .arg(&cfg)
            .arg("detect")
            .arg(input)
            .args(["--alerts", "--state"])
            .arg(&state)
            .arg("-o")
            .arg(out))
    };
    let (r1, r2) = (dir.path().join("r1.ndjson"), dir.path().join("r2.ndjson"));
    let (code, _, err) = detect(&a, &r1);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = alerts_cmd(&state, &["list", "--json"]);
    let alert = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["monitor"] == "UNK_country-Monitor")
        .unwrap_or_else(|| panic!("no country alert: {out}"));
    assert_eq!(alert["lifecycle"], "ACTIVE", "{out}");
    let id = alert["id"].as_str().unwrap().to_string();
    let (code, _, err) = alerts_cmd(&state, &["ack", &id, "--not-anomaly"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("as not an anomaly"), "{err}");
    let (code, _, err) = detect(&b, &r2);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("completed as not_anomaly"), "{err}");
    assert!(err.contains("learnt its level as normal"), "{err}");
    let country: Vec<serde_json::Value> = lines(&file)
        .into_iter()
        .filter(|n| n["monitor"] == "UNK_country-Monitor")
        .collect();
    let kinds: Vec<&str> = country
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["fired", "completed"], "{country:#?}");
    assert!(
        country[1]["message"]
            .as_str()
            .unwrap()
            .contains("a responder marked it as not an anomaly")
    );
    let (_, out, _) = alerts_cmd(&state, &["list", "--all", "--json"]);
    let done = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["id"] == id.as_str())
        .unwrap();
    assert_eq!(done["label"], "not_anomaly", "{out}");
    assert_eq!(done["lifecycle"], "COMPLETED", "{out}");
    let (_, table, _) = alerts_cmd(&state, &["list", "--all"]);
    assert!(table.contains("COMPLETED (not_anomaly)"), "{table}");
    let feedback: Vec<serde_json::Value> = lines(&r2)
        .into_iter()
        .filter(|l| l["type"] == "feedback")
        .collect();
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!(feedback[0]["alert_id"], id.as_str());
    assert_eq!(feedback[0]["label"], "not_anomaly");
    assert_eq!(feedback[0]["learnt"], true);
    let (code, out, err) = run(waflog()
        .arg("eval")
        .arg("--truth")
        .arg(&truth)
        .arg(&r1)
        .arg(&r2));
    assert_eq!(code, 0, "{err}");
    // The truth disagrees with the responder: the episode was injected.
    assert!(
        out.contains("labelled not_anomaly by a responder: 1 (0 on no episode"),
        "{out}"
    );
}
