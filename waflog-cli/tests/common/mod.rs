//! Helpers shared by the integration tests that run against the local servers
//! `bash scripts/test.sh` starts (see `scripts/local-aws.sh env` for the
//! `WAFLOG_TEST_*` variables they read).

#![allow(dead_code, clippy::unwrap_used)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

/// A `WAFLOG_TEST_*` variable, or a panic that says how to set it.
pub fn test_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests with `bash scripts/test.sh`")
    })
}

/// moto_server's endpoint.
pub fn moto() -> String {
    test_env("WAFLOG_TEST_MOTO")
}

/// The shared kinesalite's endpoint.
pub fn kinesalite() -> String {
    test_env("WAFLOG_TEST_KINESALITE")
}

/// `waflog` with test credentials (no instance metadata, no WAFLOG_CONFIG or
/// WAFLOG_LOG from the environment).
pub fn waflog_env() -> Command {
    let mut c = Command::cargo_bin("waflog").unwrap();
    c.env_remove("WAFLOG_CONFIG")
        .env_remove("WAFLOG_LOG")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// `waflog` with test credentials, pointed at `endpoint`.
pub fn waflog_at(endpoint: &str) -> Command {
    let mut c = waflog_env();
    c.args(["--endpoint-url", endpoint]);
    c
}

/// Runs a boto3 snippet against `endpoint` (`s3` and `kinesis` clients are
/// defined; `wait_active(name)` waits for a stream to be ACTIVE).
pub fn boto_at(endpoint: &str, code: &str) -> String {
    let python = test_env("WAFLOG_TEST_PYTHON");
    let script = format!(
        "import boto3, gzip, time\n\
         kw = dict(endpoint_url='{endpoint}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
         s3 = boto3.client('s3', **kw)\n\
         kinesis = boto3.client('kinesis', **kw)\n\
         def wait_active(name):\n\
         \x20   for _ in range(100):\n\
         \x20       if kinesis.describe_stream_summary(StreamName=name)['StreamDescriptionSummary']['StreamStatus'] == 'ACTIVE':\n\
         \x20           return\n\
         \x20       time.sleep(0.1)\n\
         \x20   raise SystemExit('stream ' + name + ' is not ACTIVE')\n\
         {code}\n"
    );
    let out = Command::new(python).arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates Kinesis stream `name` of `shards` shards at `endpoint` and waits until it
/// is ACTIVE.
pub fn create_stream(endpoint: &str, name: &str, shards: u32) {
    boto_at(
        endpoint,
        &format!(
            "kinesis.create_stream(StreamName='{name}', ShardCount={shards}); wait_active('{name}')"
        ),
    );
}

/// Runs a command: exit code, stdout, stderr.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command: exit code, stdout as bytes, stderr.
pub fn run_bytes(cmd: &mut Command) -> (i32, Vec<u8>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file under the repository's fixtures/.
pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// The JSON lines of a file.
pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The sorted `httpRequest.requestId`s of WAF records.
pub fn request_ids(v: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = v
        .iter()
        .map(|r| r["httpRequest"]["requestId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// A child process killed (and reaped) when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// The 127.0.0.1 port it listens on.
    pub port: u16,
}

impl Server {
    /// Starts `cmd`, whose first stdout line is `LISTENING <port>`.
    pub fn start(cmd: &mut Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("expected `LISTENING <port>`, got {line:?}"))
            .parse()
            .unwrap();
        // Keep reading (and dropping) its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Server { child, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it with SIGTERM (a clean shutdown) and waits for it.
    pub fn stop(mut self) {
        terminate(&mut self.child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGTERM, then wait up to 10 s, then SIGKILL.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A private kinesalite persisting to `data`, on `port` (0: any free port).
pub fn start_kinesalite(data: &Path, port: u16) -> Server {
    Server::start(
        Command::new("node")
            .arg(test_env("WAFLOG_TEST_KINESALITE_SCRIPT"))
            .env("NODE_PATH", test_env("WAFLOG_TEST_NODE_PATH"))
            .env("KINESALITE_PATH", data)
            .env("KINESALITE_PORT", port.to_string()),
    )
}

/// scripts/fault_proxy.py in front of `target`, with fault flags `args`.
pub fn start_fault_proxy(target: &str, args: &[&str]) -> Server {
    Server::start(
        Command::new(test_env("WAFLOG_TEST_PYTHON"))
            .arg(test_env("WAFLOG_TEST_FAULT_PROXY"))
            .args(["--target", target, "--listen-port", "0"])
            .args(args),
    )
}

/// Waits until `ok()` holds, up to `limit`.
pub fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `base` with a suffix unique to this run, for streams and buckets on servers
/// that outlive one test run.
pub fn unique_name(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{base}-{}-{nanos:x}", std::process::id())
}

/// Asserts two sorted id lists are equal, reporting counts and a few differences
/// (not the whole lists) when they are not.
pub fn assert_same_ids(got: &[String], want: &[String], context: &str) {
    if got == want {
        return;
    }
    let g: std::collections::BTreeSet<&String> = got.iter().collect();
    let w: std::collections::BTreeSet<&String> = want.iter().collect();
    let missing: Vec<_> = w.difference(&g).take(5).collect();
    let extra: Vec<_> = g.difference(&w).take(5).collect();
    panic!(
        "got {} ids ({} distinct), want {} ({} distinct); missing e.g. {missing:?}; unexpected e.g. {extra:?}\n{context}",
        got.len(),
        g.len(),
        want.len(),
        w.len()
    );
}

/// A webhook receiver on 127.0.0.1 in the test process: answers the first
/// requests with the given statuses (then 200) and keeps every request body.
pub struct Receiver {
    /// The port.
    pub port: u16,
    /// Bodies received, with the status each was answered with.
    pub got: std::sync::Arc<std::sync::Mutex<Vec<(u16, String)>>>,
}

impl Receiver {
    /// Starts answering `statuses` in order, then 200.
    pub fn start(statuses: Vec<u16>) -> Receiver {
        Receiver::start_on(0, statuses)
    }

    /// The same on a given port (0: any).
    pub fn start_on(port: u16, statuses: Vec<u16>) -> Receiver {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&got);
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                let (head_end, len) = loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break (0, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                if head_end == 0 {
                    continue;
                }
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let status = statuses.next().unwrap_or(200);
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                seen.lock().unwrap().push((status, body));
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, got }
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The bodies answered with 200, parsed as JSON.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    }
}
