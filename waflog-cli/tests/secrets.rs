//! No secret in any log line (at `-vv`), in the state file or in `waflog alerts
//! list`: AWS credentials (marker values in the environment) through S3 on
//! moto_server and Kinesis on kinesalite (both started by `bash scripts/test.sh`),
//! and a webhook whose URL path, query and header hold tokens, against a local
//! receiver that fails.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

mod common;
use common::{Receiver, run};

/// Marker values, unique to this run, that must never be shown.
struct Markers {
    key_id: String,
    secret: String,
    token: String,
    path: String,
    query: String,
    header: String,
}

impl Markers {
    fn new() -> Markers {
        let id = format!("{:x}", std::process::id());
        Markers {
            key_id: format!("MARKERKEYID{id}X"),
            secret: format!("MARKERSECRET{id}X"),
            token: format!("MARKERSESSIONTOKEN{id}X"),
            path: format!("MARKERPATHTOKEN{id}X"),
            query: format!("MARKERQUERYTOKEN{id}X"),
            header: format!("MARKERHEADERTOKEN{id}X"),
        }
    }

    fn all(&self) -> [&str; 6] {
        [
            &self.key_id,
            &self.secret,
            &self.token,
            &self.path,
            &self.query,
            &self.header,
        ]
    }

    /// Panics when `text` (named `what`) holds a marker.
    fn assert_absent(&self, what: &str, text: &str) {
        for m in self.all() {
            if let Some(at) = text.find(m) {
                let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!("{what} shows the secret {m}: {}", &text[from..to]);
            }
        }
    }
}

/// `waflog -vv` with the marker credentials.
fn waflog(m: &Markers) -> Command {
    let mut c = common::waflog_env();
    c.env("AWS_ACCESS_KEY_ID", &m.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &m.secret)
        .env("AWS_SESSION_TOKEN", &m.token)
        .arg("-vv");
    c
}

fn generate(dir: &Path, duration: &str, inject: &str) -> std::path::PathBuf {
    let logs = dir.join("logs.ndjson");
    let (code, _, err) = run(common::waflog_env()
        .args([
            "generate",
            "--seed",
            "42",
            "--start",
            "2024-05-01T00:00:00Z",
        ])
        .args(["--duration", duration, "--inject", inject, "-o"])
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    logs
}

#[test]
fn aws_credentials_never_reach_the_log_at_any_verbosity() {
    let m = Markers::new();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(dir.path(), "20m", "country:8m:4m");
    let bucket = common::unique_name("waflog-secrets");
    let stream = common::unique_name("secrets");
    let moto = common::moto();
    let kinesalite = common::kinesalite();
    common::boto_at(&moto, &format!("s3.create_bucket(Bucket='{bucket}')"));
    common::create_stream(&kinesalite, &stream, 1);
    let state = dir.path().join("kinesis.state");
    let s3 = format!("s3://{bucket}/waf/");
    let kinesis = format!("kinesis://{stream}");
    let steps: [(&str, Vec<String>); 4] = [
        (
            "transform to S3",
            vec![
                "transform".into(),
                logs.display().to_string(),
                "-o".into(),
                s3.clone(),
            ],
        ),
        (
            "transform S3 to Kinesis",
            vec!["transform".into(), s3.clone(), "-o".into(), kinesis.clone()],
        ),
        (
            "detect on Kinesis",
            vec![
                "detect".into(),
                kinesis.clone(),
                "--idle-exit".into(),
                "2s".into(),
                "--state".into(),
                state.display().to_string(),
                "-o".into(),
                "/dev/null".into(),
            ],
        ),
        (
            "detect on S3",
            vec!["detect".into(), s3.clone(), "-o".into(), "/dev/null".into()],
        ),
    ];
    for (what, args) in steps {
        let (code, _, err) = run(waflog(&m)
            .env("AWS_ENDPOINT_URL_S3", &moto)
            .env("AWS_ENDPOINT_URL_KINESIS", &kinesalite)
            .args(&args));
        assert_eq!(code, 0, "{what}: {err}");
        m.assert_absent(&format!("{what} at -vv"), &err);
    }
    m.assert_absent(
        "the Kinesis state file",
        &std::fs::read_to_string(&state).unwrap(),
    );
    // Whatever WAFLOG_LOG asks of the SDK, the lines are redacted.
    let (code, _, err) = run(waflog(&m)
        .env("WAFLOG_LOG", "trace")
        .env("AWS_ENDPOINT_URL_S3", &moto)
        .args(["detect", &s3, "-o", "/dev/null"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("TRACE"), "{err}");
    m.assert_absent("WAFLOG_LOG=trace", &err);
}

#[test]
fn webhook_tokens_never_reach_the_log_the_state_file_or_alerts_list() {
    let m = Markers::new();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(dir.path(), "3h", "httpSourceName:1h:20m");
    // A receiver that fails every request.
    let hook = Receiver::start(vec![503; 100]);
    let url = format!(
        "http://127.0.0.1:{}/hook/{}?token={}",
        hook.port, m.path, m.query
    );
    let cfg = dir.path().join("waflog.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[monitors]]\nname = \"UNK_source-Monitor\"\nperiod = \"10m\"\ndetector = \"source-anomaly-detector\"\n\
             [[monitors.triggers]]\nname = \"UNK_source-trigger\"\nseverity = 1\n\
             [[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\nmax_attempts = 2\ntimeout = \"2s\"\n\
             headers = {{ authorization = \"Bearer {}\" }}\n",
            m.header
        ),
    )
    .unwrap();
    let state = dir.path().join("waflog.state");
    let (code, _, err) = run(waflog(&m)
        .arg("--config")
        .arg(&cfg)
        .arg("detect")
        .arg(&logs)
        .arg("--state")
        .arg(&state)
        .args(["-o", "/dev/null"]));
    // Exit 3: finished, notifications undelivered.
    assert_eq!(code, 3, "{err}");
    assert!(
        !hook.got.lock().unwrap().is_empty(),
        "the webhook was tried"
    );
    // The failure is reported with the host, the rest masked.
    let shown = format!("http://127.0.0.1:{}/***", hook.port);
    m.assert_absent("detect at -vv", &err);
    assert!(err.contains(&shown), "{err}");
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains(&shown), "the state file keeps the reason");
    m.assert_absent("the state file", &saved);
    for args in [&["list", "--all", "--json"][..], &["list", "--all"][..]] {
        let (code, out, err) = run(waflog(&m)
            .arg("alerts")
            .arg("--state")
            .arg(&state)
            .args(args));
        assert_eq!(code, 0, "{err}");
        m.assert_absent("alerts list", &out);
        m.assert_absent("alerts list's log", &err);
    }
    let (_, out, _) = run(common::waflog_env()
        .args(["alerts", "--state"])
        .arg(&state)
        .args(["list", "--all", "--json"]));
    assert!(out.contains(&shown), "{out}");
    // `alerts test` to the failing channel: the error names the host only.
    let (code, _, err) =
        run(waflog(&m)
            .arg("--config")
            .arg(&cfg)
            .args(["alerts", "test", "--channel", "hook"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&shown), "{err}");
    m.assert_absent("alerts test at -vv", &err);
}
