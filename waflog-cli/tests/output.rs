//! Output and input hygiene, end to end on the built binary: closed pipes and full
//! disks never panic, control characters from records never reach a terminal raw,
//! whole-file reads are capped, `eval` dead-letters bad lines, OS errors are
//! printed once, and `generate` ends on a whole line when interrupted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{fixture, run};

fn waflog() -> Command {
    common::waflog_env()
}

/// Logs with a flood at 20m, results of `detect --all`, the truth, a state file.
struct Inputs {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    logs: PathBuf,
    results: PathBuf,
    truth: PathBuf,
    state: PathBuf,
}

fn inputs() -> Inputs {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let logs = dir.join("logs.ndjson");
    let truth = dir.join("truth.json");
    let (code, _, err) = run(waflog()
        .args(["generate", "--seed", "7", "--start", "2024-05-01T00:00:00Z"])
        .args([
            "--duration",
            "40m",
            "--rate",
            "5",
            "--inject",
            "flood:20m:5m:8",
        ])
        .arg("--truth")
        .arg(&truth)
        .arg("-o")
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    let results = dir.join("results.ndjson");
    let state = dir.join("state.json");
    let (code, _, err) = run(waflog()
        .args(["detect", "--all", "--alerts"])
        .arg(&logs)
        .arg("--state")
        .arg(&state)
        .arg("-o")
        .arg(&results));
    assert_eq!(code, 0, "{err}");
    Inputs {
        _dir: tmp,
        dir,
        logs,
        results,
        truth,
        state,
    }
}

/// Every subcommand that writes to stdout, with its arguments.
fn writers(i: &Inputs) -> Vec<(&'static str, Vec<String>)> {
    let p = |p: &Path| p.display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cat = |a: &[&str], b: &[String]| {
        let mut v = s(a);
        v.extend(b.iter().cloned());
        v
    };
    vec![
        (
            "generate",
            s(&[
                "generate",
                "--seed",
                "1",
                "--duration",
                "30m",
                "--rate",
                "20",
            ]),
        ),
        ("transform", cat(&["transform"], &[p(&i.logs)])),
        (
            "transform --firehose",
            cat(
                &["transform", "--firehose"],
                &[p(&fixture("firehose/event.json"))],
            ),
        ),
        ("detect", cat(&["detect", "--all"], &[p(&i.logs)])),
        (
            "detect --alerts",
            cat(&["detect", "--alerts", "--all"], &[p(&i.logs)]),
        ),
        (
            "eval",
            cat(
                &["eval"],
                &[String::from("--truth"), p(&i.truth), p(&i.results)],
            ),
        ),
        (
            "eval --json",
            cat(
                &["eval", "--json"],
                &[String::from("--truth"), p(&i.truth), p(&i.results)],
            ),
        ),
        ("report", cat(&["report", "-o", "-"], &[p(&i.results)])),
        (
            "alerts list",
            cat(
                &["alerts", "--state"],
                &[p(&i.state), "list".into(), "--all".into()],
            ),
        ),
        (
            "alerts list --json",
            cat(
                &["alerts", "--state"],
                &[p(&i.state), "list".into(), "--all".into(), "--json".into()],
            ),
        ),
        (
            "opensearch setup --dry-run",
            cat(
                &["opensearch", "--url", "opensearch://localhost:1/", "setup"],
                &[
                    "--dry-run".into(),
                    "--dashboards-file".into(),
                    p(&i.dir.join("dash.ndjson")),
                ],
            ),
        ),
    ]
}

#[test]
fn closed_pipes_and_full_disks_never_panic() {
    let i = inputs();
    for (name, args) in writers(&i) {
        // stdout: a pipe whose reader is gone before anything is written.
        let mut child = waflog()
            .args(&args)
            .current_dir(&i.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let code = child.wait().unwrap().code();
        assert_eq!(code, Some(0), "{name} | (closed): {err}");
        assert!(!err.contains("panicked"), "{name} | (closed): {err}");

        // stdout: a full disk.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = waflog()
            .args(&args)
            .current_dir(&i.dir)
            .stdin(Stdio::null())
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} > /dev/full: {err}");
        assert!(!err.contains("panicked"), "{name} > /dev/full: {err}");
        assert!(
            err.contains("cannot write to stdout: No space left on device"),
            "{name} > /dev/full: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.contains("ERROR")).count(),
            1,
            "{name} > /dev/full: {err}"
        );

        // stderr: a pipe closed after its first line (`2>&1 | head -1`).
        let mut child = waflog()
            .args(&args)
            .current_dir(&i.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let code = child.wait().unwrap().code();
        assert_eq!(code, Some(0), "{name} 2>/dev/stderr | head -1: {first}");

        // Both on one pipe, closed after its first line: `2>&1 | head -1`.
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#""$0" "$@" 2>&1 | head -1 >/dev/null; exit "${PIPESTATUS[0]}""#)
            .arg(env!("CARGO_BIN_EXE_waflog"))
            .args(&args)
            .current_dir(&i.dir)
            .env_remove("WAFLOG_CONFIG")
            .env_remove("WAFLOG_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name} 2>&1 | head -1");
    }
}

#[test]
fn control_characters_from_records_are_escaped_in_alert_text() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.ndjson");
    let truth = dir.path().join("truth.json");
    let (code, _, err) = run(waflog()
        .args([
            "generate",
            "--seed",
            "42",
            "--start",
            "2024-05-01T00:00:00Z",
        ])
        .args(["--duration", "3h", "--inject", "flood:1h:20m:8", "-o"])
        .arg(&clean)
        .arg("--truth")
        .arg(&truth));
    assert_eq!(code, 0, "{err}");
    // The flood's URI becomes an escape sequence that retitles the terminal,
    // rings the bell and clears the screen.
    let hostile = r#""uri":"\u001b]0;pwned\u0007\u001b[2J\u202e""#;
    let text = std::fs::read_to_string(&clean)
        .unwrap()
        .replace(r#""uri":"/login""#, hostile);
    assert!(text.contains(hostile));
    let logs = dir.path().join("logs.ndjson");
    std::fs::write(&logs, text).unwrap();
    let state = dir.path().join("state.json");
    let out = waflog()
        .args(["detect", "--alerts"])
        .arg(&logs)
        .arg("--state")
        .arg(&state)
        .args(["-o", "/dev/null"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // One flood from one client: one incident, one alert (issue 17), naming the
    // client.
    assert!(err.contains("alerts: 1 fired"), "{err}");
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !bytes.iter().any(|b| *b == 0x1b || *b == 0x07),
            "raw ESC/BEL on {what}"
        );
        assert!(
            !String::from_utf8_lossy(bytes).contains('\u{202e}'),
            "raw U+202E on {what}"
        );
    }
    let alerts = String::from_utf8_lossy(&out.stdout);
    assert!(
        alerts.contains(r"uri \u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}, country"),
        "{alerts}"
    );
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    let ip = truth[0]["client_ip"].as_str().unwrap();
    assert!(
        alerts.contains(&format!(
            "one client carries most of the excess requests: {ip} ("
        )),
        "{alerts}"
    );
    // The state keeps the incidents.
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains(r#""incidents":"#)
    );
    // The saved alerts, listed as text.
    let out = waflog()
        .args(["alerts", "--state"])
        .arg(&state)
        .args(["list", "--all"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!out.stdout.iter().any(|b| *b == 0x1b || *b == 0x07));
}

/// A sparse file of `len` bytes.
fn sparse(dir: &Path, name: &str, len: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(len).unwrap();
    p
}

#[test]
fn whole_file_reads_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big_text = sparse(d, "big.toml", (16 << 20) + 1);
    let big_state = sparse(d, "big-state.json", (1 << 30) + 1);
    let logs = fixture("seed-records.ndjson");
    let zero = PathBuf::from("/dev/zero");
    let cases: Vec<(Vec<std::ffi::OsString>, &Path, &str)> = {
        let a = |v: &[&dyn AsRef<std::ffi::OsStr>]| {
            v.iter()
                .map(|x| x.as_ref().to_os_string())
                .collect::<Vec<_>>()
        };
        vec![
            (
                a(&[&"--config", &big_text, &"transform", &logs]),
                &big_text,
                "16 MiB",
            ),
            (
                a(&[&"--config", &zero, &"transform", &logs]),
                &zero,
                "16 MiB",
            ),
            (
                a(&[
                    &"generate",
                    &"--traffic-profile",
                    &big_text,
                    &"--duration",
                    &"1m",
                ]),
                &big_text,
                "16 MiB",
            ),
            (a(&[&"eval", &"--truth", &zero, &logs]), &zero, "16 MiB"),
            (
                a(&[&"eval", &"--truth", &big_text, &logs]),
                &big_text,
                "16 MiB",
            ),
            (
                a(&[&"detect", &logs, &"--state", &big_state]),
                &big_state,
                "1 GiB",
            ),
            (
                a(&[&"alerts", &"--state", &big_state, &"list"]),
                &big_state,
                "1 GiB",
            ),
            (
                a(&[&"report", &"-o", &"-", &logs, &"--state", &big_state]),
                &big_state,
                "1 GiB",
            ),
            (a(&[&"transform", &"--firehose", &zero]), &zero, "64 MiB"),
            (
                a(&[
                    &"generate",
                    &"--duration",
                    &"1m",
                    &"-o",
                    &"opensearch+http://127.0.0.1:1/x",
                    &"--opensearch-password-file",
                    &big_text,
                ]),
                &big_text,
                "16 MiB",
            ),
            (
                a(&[
                    &"generate",
                    &"--duration",
                    &"1m",
                    &"-o",
                    &"opensearch://127.0.0.1:1/x",
                    &"--opensearch-ca",
                    &big_text,
                ]),
                &big_text,
                "16 MiB",
            ),
        ]
    };
    for (args, file, cap) in cases {
        let (code, _, err) = run(waflog().args(&args).stdin(Stdio::null()));
        assert_eq!(code, 2, "{args:?}: {err}");
        let want = format!("{}: larger than the {cap} cap", file.display());
        assert!(err.contains(&want), "{args:?}: want `{want}` in {err}");
        assert!(!err.contains("memory allocation"), "{args:?}: {err}");
    }
}

#[test]
fn eval_dead_letters_lines_that_are_not_results() {
    let i = inputs();
    let text = std::fs::read_to_string(&i.results).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    lines.insert(n / 2, "{\"not\": \"a result\"");
    lines.insert(n / 3, "garbage");
    let bad = i.dir.join("bad.ndjson");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let eval = |extra: &[&str]| {
        let mut c = waflog();
        c.args(extra)
            .arg("eval")
            .arg("--truth")
            .arg(&i.truth)
            .arg(&bad);
        run(&mut c)
    };
    let (code, good, _) = run(waflog()
        .arg("eval")
        .arg("--truth")
        .arg(&i.truth)
        .arg(&i.results));
    assert_eq!(code, 0);
    let (code, out, err) = eval(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, good, "the bad lines change nothing else");
    assert!(err.contains("2 of"), "{err}");
    assert!(err.contains("not a waflog detect result"), "{err}");
    let (code, _, err) = eval(&["--strict"]);
    assert_eq!(code, 1, "{err}");
    let dead = i.dir.join("dead.ndjson");
    let (code, _, err) = run(waflog()
        .arg("eval")
        .arg("--truth")
        .arg(&i.truth)
        .arg(&bad)
        .arg("--dead-letter")
        .arg(&dead));
    assert_eq!(code, 0, "{err}");
    let entries = common::lines(&dead);
    assert_eq!(entries.len(), 2, "{entries:?}");
}

#[test]
fn a_missing_file_is_reported_once() {
    for args in [
        vec!["--config", "no-such.toml", "transform", "-"],
        vec!["transform", "no-such.ndjson"],
        vec!["generate", "--traffic-profile", "no-such.toml"],
        vec!["eval", "--truth", "no-such.json"],
    ] {
        let (code, _, err) = run(waflog().args(&args).stdin(Stdio::null()));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.matches("os error 2").count(), 1, "{args:?}: {err}");
        assert!(err.contains("no-such"), "{args:?}: {err}");
    }
}

/// Sends `signal` to `pid` with kill(1).
fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn generate_ends_on_a_whole_line_when_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    for signal in ["-INT", "-TERM"] {
        let out = dir.path().join(format!("gen{signal}.ndjson"));
        let mut child = waflog()
            .args(["generate", "--seed", "3", "--duration", "1000h", "-o"])
            .arg(&out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::fs::metadata(&out).map_or(0, |m| m.len()) < 4 << 20 {
            assert!(started.elapsed() < Duration::from_secs(60), "no output");
            std::thread::sleep(Duration::from_millis(50));
        }
        kill(child.id(), signal);
        let code = child.wait().unwrap().code();
        assert_eq!(code, Some(0), "{signal}");
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'), "{signal}: a half-written line");
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<serde_json::Value>(line).unwrap();
        }
    }
}
