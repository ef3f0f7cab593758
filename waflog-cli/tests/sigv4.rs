//! Request signing checked for real (issue 18, part 7): waflog's S3 and Kinesis
//! requests go to servers that verify AWS Signature Version 4 and refuse a wrong
//! signature, not to servers that take anything.
//!
//! - S3: `s3s-fs` (the `s3s` project's file-system S3 server, from the crate
//!   registry; `bash scripts/test.sh` installs it into `.tools/s3s`), started here
//!   with one access key and secret.
//! - Kinesis: a private `moto_server` with IAM authentication on
//!   (`INITIAL_NO_AUTH_ACTION_COUNT`): an IAM user, its access key and an allow-all
//!   policy are made first, then every call is checked against that key's secret.
//!
//! With the right secret every record goes through, counted exactly; with a wrong
//! one the run fails fast (exit 2, well under the retry budget) and says the
//! credentials were refused.

#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{lines, request_ids, run, test_env, waflog_env};

/// A server process on a port of its own, killed when dropped.
struct Local {
    child: Child,
    port: u16,
}

impl Local {
    /// Starts `cmd(port)` on a free port and waits until it accepts connections.
    fn start(what: &str, cmd: impl FnOnce(u16) -> Command) -> Local {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = cmd(port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let mut local = Local { child, port };
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                local.child.try_wait().unwrap().is_none(),
                "{what} exited at start"
            );
            assert!(Instant::now() < until, "{what} did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        local
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        common::terminate(&mut self.child);
    }
}

/// `waflog` at `endpoint` signing with `key` / `secret`.
fn waflog_signed(endpoint: &str, key: &str, secret: &str) -> Command {
    let mut c = waflog_env();
    c.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .args(["--endpoint-url", endpoint]);
    c
}

/// Six minutes of traffic at 20 events/s into `path`; its request IDs, sorted.
fn generate(path: &Path) -> Vec<String> {
    let (code, _, err) = run(waflog_env()
        .args([
            "generate",
            "--seed",
            "18",
            "--start",
            "2024-05-01T00:00:00Z",
        ])
        .args(["--duration", "6m", "--rate", "20", "-o"])
        .arg(path));
    assert_eq!(code, 0, "{err}");
    request_ids(&lines(path))
}

/// Runs `cmd`: exit code, stderr, time taken.
fn timed(cmd: &mut Command) -> (i32, String, Duration) {
    let started = Instant::now();
    let (code, _, err) = run(cmd);
    (code, err, started.elapsed())
}

/// A wrong secret: exit 2 within 5 s (no retries of a refused signature), the
/// service's code and the hint in the message.
fn assert_refused(what: &str, (code, err, took): (i32, String, Duration), service_code: &str) {
    assert_eq!(code, 2, "{what}: {err}");
    assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
    assert!(err.contains(service_code), "{what}: {err}");
    assert!(err.contains("credentials were refused"), "{what}: {err}");
}

const S3_KEY: &str = "AKIAWAFLOGS3SFSTEST1";
const S3_SECRET: &str = "s3s-fs-secret/for+waflog-tests";

#[test]
fn s3_requests_are_signed_as_s3s_fs_checks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    // s3s-fs keeps a bucket as a folder of its root.
    std::fs::create_dir_all(root.join("waf-signed")).unwrap();
    let server = Local::start("s3s-fs", |port| {
        let mut c = Command::new(test_env("WAFLOG_TEST_S3S_FS"));
        c.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
            .arg(&root);
        c
    });
    let input = dir.path().join("in.ndjson");
    let want = generate(&input);
    let n = want.len();
    assert!(n > 7_000, "{n}");

    // Written (PutObject, signed payload) and read back (ListObjectsV2, GetObject).
    let (code, _, err) = run(waflog_signed(&server.url(), S3_KEY, S3_SECRET)
        .arg("transform")
        .arg(&input)
        .args(["-o", "s3://waf-signed/logs/"]));
    assert_eq!(code, 0, "{err}");
    let out = dir.path().join("out.ndjson");
    let (code, _, err) = run(waflog_signed(&server.url(), S3_KEY, S3_SECRET)
        .args(["transform", "s3://waf-signed/logs/", "-o"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(request_ids(&lines(&out)), want);
    assert!(
        err.contains(&format!("records_in={n} records_out={n} dead_lettered=0")),
        "{err}"
    );

    // The same calls with a wrong secret are refused, at once.
    assert_refused(
        "s3 read, wrong secret",
        timed(
            waflog_signed(&server.url(), S3_KEY, "not-the-secret").args([
                "transform",
                "s3://waf-signed/logs/",
                "-o",
                "/dev/null",
            ]),
        ),
        "SignatureDoesNotMatch",
    );
    assert_refused(
        "s3 write, wrong secret",
        timed(
            waflog_signed(&server.url(), S3_KEY, "not-the-secret")
                .arg("transform")
                .arg(&input)
                .args(["-o", "s3://waf-signed/again/"]),
        ),
        "SignatureDoesNotMatch",
    );
    // An unknown access key too.
    let (code, err, took) = timed(
        waflog_signed(&server.url(), "AKIAUNKNOWNKEY000000", S3_SECRET).args([
            "transform",
            "s3://waf-signed/logs/",
            "-o",
            "/dev/null",
        ]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(err.contains("credentials were refused"), "{err}");
}

#[test]
fn kinesis_requests_are_signed_as_moto_with_iam_checks() {
    // The first three calls (the IAM user, its key, its policy) are not checked;
    // every later one is, against that key.
    let server = Local::start("moto_server with IAM authentication", |port| {
        let mut c = Command::new(test_env("WAFLOG_TEST_PYTHON"));
        c.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
        c
    });
    let python = test_env("WAFLOG_TEST_PYTHON");
    let script = format!(
        "import boto3, json, time\n\
         kw = dict(endpoint_url='{}', region_name='us-east-1')\n\
         iam = boto3.client('iam', aws_access_key_id='test', aws_secret_access_key='test', **kw)\n\
         iam.create_user(UserName='waflog')\n\
         k = iam.create_access_key(UserName='waflog')['AccessKey']\n\
         iam.put_user_policy(UserName='waflog', PolicyName='all', PolicyDocument=json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}}]}}))\n\
         kin = boto3.client('kinesis', aws_access_key_id=k['AccessKeyId'], aws_secret_access_key=k['SecretAccessKey'], **kw)\n\
         kin.create_stream(StreamName='signed', ShardCount=2)\n\
         for _ in range(100):\n\
         \x20   if kin.describe_stream_summary(StreamName='signed')['StreamDescriptionSummary']['StreamStatus'] == 'ACTIVE':\n\
         \x20       break\n\
         \x20   time.sleep(0.1)\n\
         print(k['AccessKeyId'], k['SecretAccessKey'])\n",
        server.url()
    );
    let out = Command::new(python).arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds = String::from_utf8(out.stdout).unwrap();
    let (key, secret) = creds.trim().split_once(' ').unwrap();

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let want = generate(&input);
    // Produced (PutRecords) and consumed (ListShards, GetShardIterator,
    // GetRecords), every call signed and checked.
    let (code, _, err) = run(waflog_signed(&server.url(), key, secret)
        .arg("transform")
        .arg(&input)
        .args(["-o", "kinesis://signed"]));
    assert_eq!(code, 0, "{err}");
    let out = dir.path().join("out.ndjson");
    let (code, _, err) = run(waflog_signed(&server.url(), key, secret)
        .args(["transform", "kinesis://signed", "--idle-exit", "2s", "-o"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(request_ids(&lines(&out)), want);

    assert_refused(
        "kinesis producer, wrong secret",
        timed(
            waflog_signed(&server.url(), key, "not-the-secret")
                .arg("transform")
                .arg(&input)
                .args(["-o", "kinesis://signed"]),
        ),
        "SignatureDoesNotMatch",
    );
    assert_refused(
        "kinesis consumer, wrong secret",
        timed(
            waflog_signed(&server.url(), key, "not-the-secret")
                .args(["transform", "kinesis://signed", "--idle-exit", "2s"])
                .args(["-o", "/dev/null"]),
        ),
        "SignatureDoesNotMatch",
    );
}
