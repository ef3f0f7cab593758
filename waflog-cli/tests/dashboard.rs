//! The live dashboard and the offline report, in a real browser: headless
//! Chromium driven through chromedriver (WebDriver), both installed by
//! `bash scripts/test.sh` (Debian's `chromium` and `chromium-driver`).
//!
//! `WAFLOG_TEST_CHROMIUM` and `WAFLOG_TEST_CHROMEDRIVER` name the binaries
//! (default `/usr/bin/chromium`, `/usr/bin/chromedriver`). Screenshots are saved
//! in `target/test-artifacts/`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const START: &str = "2024-05-01T00:00:00Z";

/// Two detectors on one-second intervals (so a run takes seconds) and a monitor
/// of the country detector in 5-second periods, which completes 3 quiet periods
/// after the episode (long after the test acknowledges it).
const CONFIG: &str = r#"
[[monitors]]
name = "UNK_country-Monitor"
period = "5s"
detector = "country-anomaly-detector"
[[monitors.triggers]]
name = "UNK_country-trigger"
severity = 2
complete_after = 3

[[detectors]]
name = "country-anomaly-detector"
interval = "1s"
window_delay = "0s"
features = [{ name = "UNK_country", aggregation = "sum", field = "UNK_country" }]

[[detectors]]
name = "request-count-detector"
interval = "1s"
window_delay = "0s"
features = [{ name = "request_count", aggregation = "count" }]
"#;

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn binary(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
    assert!(
        Path::new(&path).exists(),
        "{path} not found: run these tests with `bash scripts/test.sh`, which installs Debian's chromium and chromium-driver (or set {var})"
    );
    path
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let exe = binary("WAFLOG_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = free_port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for(Duration::from_secs(20), "chromedriver", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Driver { child, port }
}

/// A headless Chromium session with a fresh profile.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = binary("WAFLOG_TEST_CHROMIUM", "/usr/bin/chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--window-size=1366,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until the text of `css` satisfies `ok`.
async fn wait_text(c: &Client, css: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + limit;
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            if let Ok(t) = el.text().await {
                if ok(&t) {
                    return t;
                }
                if Instant::now() > until {
                    panic!("timed out waiting on {css}; it shows: {t}");
                }
            }
        }
        assert!(Instant::now() < until, "timed out waiting for {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `results.ndjson` in `dir`: `detect --all` over `generate --seed 5` with `args`.
fn results_of(dir: &Path, args: &[&str]) -> PathBuf {
    let logs = dir.join("logs.ndjson");
    let results = dir.join("results.ndjson");
    let (code, _, err) = common::run(
        common::waflog_env()
            .args(["generate", "--seed", "5", "--start", START])
            .args(args)
            .arg("-o")
            .arg(&logs),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = common::run(
        common::waflog_env()
            .args(["detect", "--all", "-o"])
            .arg(&results)
            .arg(&logs),
    );
    assert_eq!(code, 0, "{err}");
    results
}

/// The IDs of the anomalies listed on the page.
async fn anomaly_ids(c: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    for b in c.find_all(Locator::Css("button.anomaly")).await.unwrap() {
        ids.push(b.attr("data-id").await.unwrap().unwrap_or_default());
    }
    ids
}

/// The `generate --realtime | detect --follow --dashboard` pipeline.
struct Pipeline {
    generate: Child,
    detect: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for c in [&mut self.generate, &mut self.detect] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_pipeline(dir: &Path, generate_args: &[&str], detect_args: &[&str]) -> Pipeline {
    start_pipeline_limited(dir, generate_args, detect_args, None)
}

/// `detect` as a command, run under `prlimit --nofile=N` when `nofile` is given.
fn detect_command(nofile: Option<u32>) -> Command {
    let plain = common::waflog_env();
    let Some(n) = nofile else { return plain };
    let mut c = Command::new("prlimit");
    c.arg(format!("--nofile={n}:{n}"))
        .arg("--")
        .arg(plain.get_program());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// The same, `detect` limited to `nofile` open file descriptors.
fn start_pipeline_limited(
    dir: &Path,
    generate_args: &[&str],
    detect_args: &[&str],
    nofile: Option<u32>,
) -> Pipeline {
    let config = dir.join("waflog.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut generate = common::waflog_env()
        .args(["generate", "--seed", "11", "--start", START])
        .args(generate_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut detect = detect_command(nofile)
        .arg("--config")
        .arg(&config)
        .args([
            "detect",
            "--follow",
            "--alerts",
            "--dashboard",
            "127.0.0.1:0",
        ])
        .args(detect_args)
        .stdin(Stdio::from(generate.stdout.take().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The URL is logged at start; keep draining stderr so detect never blocks.
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let err = detect.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.split("dashboard: ").nth(1) {
                let _ = tx.send(url.trim().to_string());
            }
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no dashboard URL logged: {}", log.lock().unwrap()));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Pipeline {
        generate,
        detect,
        url,
        log,
    }
}

/// A raw HTTP/1.1 request (no client library rewrites the Host header).
fn http(url: &str, request: &str) -> String {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.replace("{addr}", &addr).as_bytes())
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_an_injected_anomaly_explains_it_and_acknowledges_its_alert() {
    let dir = tempfile::tempdir().unwrap();
    let driver = start_driver();
    // 90 simulated seconds in real time; unknown countries from 0:15 for a minute.
    let run = start_pipeline(
        dir.path(),
        &[
            "--duration",
            "90s",
            "--inject",
            "country:15s:60s",
            "--realtime",
            "--speed",
            "1",
        ],
        &[],
    );
    let began = Instant::now();

    // Foreign Host and Origin headers are refused, and nothing but an
    // acknowledgement writes; the page's own requests are served.
    let own = "Host: {addr}\r\nOrigin: http://{addr}";
    for (request, headers, status, what) in [
        ("GET /api/snapshot", "Host: {addr}", "200", "its own Host"),
        (
            "GET /api/snapshot",
            "Host: attacker.example:80",
            "403",
            "DNS rebinding",
        ),
        (
            "POST /api/alerts/x/ack",
            "Host: {addr}\r\nOrigin: http://attacker.example",
            "403",
            "a cross-site post",
        ),
        (
            "POST /api/alerts/x/ack",
            "Host: {addr}",
            "403",
            "a post without Origin",
        ),
        ("DELETE /api/snapshot", own, "405", "another write"),
        ("POST /api/alerts/x/ack", own, "404", "an unknown alert"),
    ] {
        let answer = http(
            &run.url,
            &format!(
                "{request} HTTP/1.1\r\n{headers}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer}"
        );
    }

    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    c.goto(&run.url).await.unwrap();
    wait_text(&c, "#status", Duration::from_secs(10), |t| t == "live").await;

    // The injected episode appears: an anomaly of the country detector.
    let anomaly = c
        .wait()
        .at_most(Duration::from_secs(45))
        .for_element(Locator::Css(
            "button.anomaly[data-detector='country-anomaly-detector']",
        ))
        .await
        .unwrap_or_else(|e| panic!("no anomaly shown: {e}; detect: {}", run.log.lock().unwrap()));
    let seen_after = began.elapsed();
    anomaly.click().await.unwrap();
    let why = wait_text(&c, "#explanation", Duration::from_secs(5), |t| {
        t.contains("UNK_country")
    })
    .await;
    for word in ["actual", "expected", "country-anomaly-detector", "clientIp"] {
        assert!(why.contains(word), "the explanation lacks {word}: {why}");
    }
    // The live charts are drawn by Chart.js: one per feature and grade.
    let charts = c
        .execute("return Object.keys(Chart.instances).length", vec![])
        .await
        .unwrap();
    assert!(charts.as_u64().unwrap() >= 4, "{charts}");

    // Its alert is ACTIVE; acknowledging it updates the alert state.
    let row = "#alerts tr[data-alert-id]";
    wait_text(&c, row, Duration::from_secs(20), |t| {
        t.contains("UNK_country-Monitor")
    })
    .await;
    let id = c
        .find(Locator::Css(row))
        .await
        .unwrap()
        .attr("data-alert-id")
        .await
        .unwrap()
        .unwrap();
    let state = format!("#alerts tr[data-alert-id='{id}'] .alert-state");
    assert_eq!(text(&c, &state).await, "ACTIVE");
    c.find(Locator::Css(&format!(
        "#alerts tr[data-alert-id='{id}'] button.ack"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(&c, &state, Duration::from_secs(5), |t| t == "ACKNOWLEDGED").await;
    // ... in detect's alert state, not only on the page.
    let applied = format!("alert {id} acknowledged from the dashboard");
    common::wait_for(Duration::from_secs(5), "detect to log the ack", || {
        run.log.lock().unwrap().contains(&applied)
    });
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join("dashboard.png"), &png).unwrap();

    // A reload (a reconnect) shows the same history and the acknowledged state.
    let before = anomaly_ids(&c).await;
    c.refresh().await.unwrap();
    wait_text(&c, &state, Duration::from_secs(10), |t| t == "ACKNOWLEDGED").await;
    let after = anomaly_ids(&c).await;
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|id| after.contains(id)),
        "lost on reload: {before:?} then {after:?}"
    );
    c.close().await.unwrap();
    assert!(
        seen_after < Duration::from_secs(40),
        "the episode starts 15 s in; it showed after {seen_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_opens_offline_with_the_same_views() {
    let dir = tempfile::tempdir().unwrap();
    let results = results_of(
        dir.path(),
        &["--duration", "3h", "--inject", "country:2h:10m"],
    );
    let report = dir.path().join("report.html");
    let (code, _, err) = common::run(
        common::waflog_env()
            .arg("report")
            .arg(&results)
            .arg("--output")
            .arg(&report),
    );
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("src=\"http"),
        "nothing is loaded from the network"
    );
    assert!(!html.contains("href=\"http"));

    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    c.goto(&format!("file://{}", report.display()))
        .await
        .unwrap();
    wait_text(&c, "#status", Duration::from_secs(10), |t| t == "report").await;
    // The ten anomalous minutes of the episode, nothing else.
    let anomalies = c.find_all(Locator::Css("button.anomaly")).await.unwrap();
    assert_eq!(anomalies.len(), 10);
    anomalies[0].click().await.unwrap();
    let why = wait_text(&c, "#explanation", Duration::from_secs(5), |t| {
        t.contains("UNK_country")
    })
    .await;
    assert!(why.contains("expected"), "{why}");
    // No acknowledging in a report.
    assert!(
        c.find_all(Locator::Css("button.ack"))
            .await
            .unwrap()
            .is_empty()
    );
    // Every detector has a panel with its chart.
    let panels = c.find_all(Locator::Css("section.detector")).await.unwrap();
    assert_eq!(panels.len(), 6);
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join("report.png"), &png).unwrap();
    c.close().await.unwrap();
}

#[test]
fn the_report_dead_letters_what_is_not_a_result_and_refuses_no_results() {
    let dir = tempfile::tempdir().unwrap();
    let results = results_of(dir.path(), &["--duration", "30m"]);
    // Two bad lines among the results: a WAF log and broken JSON.
    let mut text = std::fs::read_to_string(&results).unwrap();
    let good = text.lines().count();
    text.push_str("{\"timestamp\": 1, \"action\": \"ALLOW\"}\n{not json\n");
    std::fs::write(&results, text).unwrap();
    let dead = dir.path().join("dead.ndjson");
    let report = dir.path().join("report.html");
    let (code, _, err) = common::run(
        common::waflog_env()
            .arg("report")
            .arg(&results)
            .arg("--output")
            .arg(&report)
            .arg("--dead-letter")
            .arg(&dead),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("report of {good} results")), "{err}");
    let dead = common::lines(&dead);
    assert_eq!(dead.len(), 2);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a waflog detect result"),
        "{dead:?}"
    );
    assert_eq!(dead[1]["line"], good as u64 + 2);
    // --strict turns dead letters into exit code 1.
    let (code, _, _) = common::run(
        common::waflog_env()
            .args(["--strict", "report"])
            .arg(&results)
            .arg("--output")
            .arg(&report)
            .args(["--dead-letter", "/dev/null"]),
    );
    assert_eq!(code, 1);
    // No results at all is an error (exit 2), and so is a missing file.
    let empty = dir.path().join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let (code, _, err) = common::run(
        common::waflog_env()
            .arg("report")
            .arg(&empty)
            .arg("--output")
            .arg(&report),
    );
    assert_eq!(code, 2);
    assert!(err.contains("no result documents"), "{err}");
    let (code, _, err) = common::run(
        common::waflog_env()
            .arg("report")
            .arg(dir.path().join("missing.ndjson"))
            .arg("--output")
            .arg(&report),
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot open input"), "{err}");
}

/// The dashboard's `host:port`.
fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Whether the server has closed `s` (end of stream, an answer followed by the
/// end, or a reset), waiting at most `wait` for it.
fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A refusal (503) or a time-out answer: read on to the end.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// 2,000 idle connections (more than the process may open files) against the
/// dashboard of a `detect --state` limited to 256 file descriptors: detection
/// keeps saving its state and ends well; the server refuses what exceeds its
/// cap at once and closes the idle ones it took at the header time-out, after
/// which the page is served again.
#[test]
fn idle_connections_cannot_starve_detection_under_a_low_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("waflog.state");
    let mut run = start_pipeline_limited(
        dir.path(),
        &["--duration", "60s", "--realtime", "--speed", "2"],
        &["--state", state.to_str().unwrap(), "--linger", "0s"],
        Some(256),
    );
    let addr: std::net::SocketAddr = addr_of(&run.url).parse().unwrap();
    let mut held = Vec::new();
    // Connections the server never took (its backlog full): asserted at the end,
    // after what matters most, detection.
    let mut failed = Vec::new();
    for _ in 0..2000 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => held.push(s),
            Err(e) => {
                failed.push(e.to_string());
                if failed.len() >= 3 {
                    break;
                }
            }
        }
    }
    let opened = held.len();
    let all_open = std::time::SystemTime::now();
    // Detection goes on saving its state while every connection is held.
    common::wait_for(Duration::from_secs(10), "a state save", || {
        std::fs::metadata(&state)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > all_open)
    });
    // The server closes every one of them: the excess at once (most get a 503
    // first), the rest at the header time-out (10 s).
    let began = Instant::now();
    let mut busy = 0;
    held.retain_mut(|s| {
        let mut head = [0u8; 12];
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        if s.peek(&mut head)
            .is_ok_and(|n| head[..n].starts_with(b"HTTP/1.1 503"))
        {
            busy += 1;
        }
        !closed_by_server(s, Duration::from_millis(1))
    });
    assert!(
        held.len() <= 128,
        "{} connections still open right after: no cap",
        held.len()
    );
    assert!(busy > 0, "no connection was answered 503");
    let mut open = held.len();
    while open > 0 && began.elapsed() < Duration::from_secs(20) {
        held.retain_mut(|s| !closed_by_server(s, Duration::from_millis(1)));
        open = held.len();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(open, 0, "idle connections still open after 20 s");
    let answer = http(
        &run.url,
        "GET /api/snapshot HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    // The input ends (30 s of wall-clock time); detect saves and exits cleanly.
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = run.detect.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "detect did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = run.log.lock().unwrap().clone();
    assert!(status.success(), "{status}: {log}");
    assert!(!log.contains("Too many open files"), "{log}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved.is_object());
    assert!(
        failed.is_empty() && opened == 2000,
        "{opened} connections opened; failures: {failed:?}"
    );
}

/// Exactly one Host header, and origin-form request targets only.
#[test]
fn requests_need_exactly_one_host_and_an_origin_form_target() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_pipeline(
        dir.path(),
        &["--duration", "120s", "--realtime", "--speed", "1"],
        &[],
    );
    for (request, status, what) in [
        (
            "GET /api/snapshot HTTP/1.1\r\nHost: {addr}",
            "200",
            "a plain request",
        ),
        (
            "GET /api/snapshot HTTP/1.1\r\nHost: {addr}\r\nHost: {addr}",
            "400",
            "two equal Host headers",
        ),
        (
            "GET /api/snapshot HTTP/1.1\r\nHost: {addr}\r\nHost: attacker.example",
            "400",
            "two different Host headers",
        ),
        ("GET /api/snapshot HTTP/1.1", "400", "no Host header"),
        (
            "GET http://{addr}/api/snapshot HTTP/1.1\r\nHost: {addr}",
            "400",
            "an absolute-form target",
        ),
        (
            "GET http://attacker.example/api/snapshot HTTP/1.1\r\nHost: {addr}",
            "400",
            "an absolute-form target naming another host",
        ),
        (
            "CONNECT {addr} HTTP/1.1\r\nHost: {addr}",
            "400",
            "an authority-form target",
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: {addr}",
            "400",
            "the asterisk-form target",
        ),
    ] {
        let answer = http(&run.url, &format!("{request}\r\nConnection: close\r\n\r\n"));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer}"
        );
    }
}

/// A slowloris client (headers a byte at a time) is closed at the header
/// time-out, and so is a connection left idle after its answer.
#[test]
fn slow_and_idle_connections_are_closed_at_their_time_outs() {
    let dir = tempfile::tempdir().unwrap();
    let run = start_pipeline(
        dir.path(),
        &["--duration", "120s", "--realtime", "--speed", "1"],
        &[],
    );
    let addr = addr_of(&run.url);
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    let began = Instant::now();
    let closed_after = loop {
        // One byte every 500 ms: never idle, never done.
        if slow.write_all(b"a").is_err() || closed_by_server(&mut slow, Duration::from_millis(500))
        {
            break began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "a slowloris client is still connected after 30 s"
        );
    };
    assert!(
        closed_after >= Duration::from_secs(5) && closed_after < Duration::from_secs(15),
        "closed after {closed_after:?}"
    );

    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(format!("GET /nothing HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
    let began = Instant::now();
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(20)),
        "an idle keep-alive connection is still open after 20 s"
    );
    assert!(began.elapsed() >= Duration::from_secs(5));
}
