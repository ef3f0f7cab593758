//! The AWS plumbing shared by the S3 and Kinesis sources (`crate::source::s3`,
//! `crate::source::kinesis`) and sinks (`crate::sink::s3`, `crate::sink::kinesis`):
//! one SDK configuration built from [`AwsSettings`] (region, profile, endpoint;
//! credentials from the standard provider chain, never logged) and one Tokio
//! runtime ([`Aws`], made on first use by [`AwsContext`]); calls retried with
//! backoff ([`retry`]) by the class of their error ([`classify`]), episodes of
//! trouble reported once ([`Trouble`]). The generic helpers (backoff, the I/O
//! runtime, the line buffer, error texts) are in `crate::net`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::http::HttpResponse;

use crate::interrupt::Interrupted;
use crate::net::{Backoff, error_text, io_runtime};

/// The SDK configuration and the runtime the SDK calls run on.
#[derive(Debug)]
pub struct Aws {
    runtime: tokio::runtime::Runtime,
    config: aws_config::SdkConfig,
    /// Path-style S3 addressing: on when an endpoint URL is given (local servers).
    path_style: bool,
    /// Network timeouts and the retry budget.
    pub timeouts: Timeouts,
    /// Set by Ctrl-C: every network wait ([`Aws::call`], [`Aws::sleep`]) ends.
    stop: Arc<AtomicBool>,
    /// Episodes of trouble by path, shared by the threads of one path.
    troubles: std::sync::Mutex<std::collections::BTreeMap<String, Trouble>>,
}

/// The AWS settings of a run as plain values (the global flags `--region`,
/// `--profile`, `--endpoint-url` and the three timeouts); checked when AWS is
/// first used, so runs that touch no AWS location never fail on them.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Region; `None`: the environment and the profile decide.
    pub region: Option<String>,
    /// Credentials profile; `None`: the environment decides.
    pub profile: Option<String>,
    /// Endpoint URL (a local server); `None`: the environment or the public one.
    pub endpoint_url: Option<String>,
    /// `--connect-timeout`, as given (a humantime duration).
    pub connect_timeout: String,
    /// `--read-timeout`, as given.
    pub read_timeout: String,
    /// `--operation-timeout`, as given.
    pub operation_timeout: String,
}

/// Network timeouts of every AWS call (`--connect-timeout`, `--read-timeout`,
/// `--operation-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection.
    pub connect: Duration,
    /// Waiting for the next bytes of an answer.
    pub read: Duration,
    /// One operation, its retries included: a call still failing this long after
    /// its first failure stops the run.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
            operation: Duration::from_secs(120),
        }
    }
}

impl Timeouts {
    /// From the settings' timeout texts (each more than zero).
    pub fn parse(settings: &AwsSettings) -> anyhow::Result<Timeouts> {
        let parse = |flag: &str, text: &str| -> anyhow::Result<Duration> {
            let d = humantime::parse_duration(text)
                .map_err(|e| anyhow::anyhow!("{flag} {text}: {e}"))?;
            if d.is_zero() {
                anyhow::bail!("{flag} {text}: must be more than zero");
            }
            Ok(d)
        };
        Ok(Timeouts {
            connect: parse("--connect-timeout", &settings.connect_timeout)?,
            read: parse("--read-timeout", &settings.read_timeout)?,
            operation: parse("--operation-timeout", &settings.operation_timeout)?,
        })
    }
}

impl Aws {
    /// Loads the configuration as the AWS CLI does: `--region`, `--profile` and
    /// `--endpoint-url` first, then the environment (`AWS_REGION`, `AWS_PROFILE`,
    /// `AWS_ENDPOINT_URL`, ...) and the shared config files.
    pub fn new(settings: &AwsSettings) -> anyhow::Result<Aws> {
        let timeouts = Timeouts::parse(settings)?;
        // Ctrl-C ends every network wait (a hung endpoint included) within 50 ms.
        crate::interrupt::install_ctrl_c()?;
        let stop = crate::interrupt::ctrl_c_flag();
        let runtime = io_runtime("aws")?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .read_timeout(timeouts.read)
                .operation_attempt_timeout(timeouts.operation)
                .operation_timeout(timeouts.operation)
                .build(),
        );
        if let Some(r) = &settings.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(p) = &settings.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &settings.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let config = runtime.block_on(loader.load());
        if config.region().is_none() {
            anyhow::bail!(
                "no AWS region: pass --region, set AWS_REGION or give the profile a region"
            );
        }
        // A custom endpoint (a local or S3-compatible server) rarely resolves
        // bucket subdomains: address buckets in the path there.
        let s3_endpoint = std::env::var_os("AWS_ENDPOINT_URL_S3").filter(|v| !v.is_empty());
        let path_style = config.endpoint_url().is_some() || s3_endpoint.is_some();
        if let Some(url) = config.endpoint_url() {
            tracing::info!("AWS endpoint {url}");
        }
        Ok(Aws {
            runtime,
            config,
            path_style,
            timeouts,
            stop,
            troubles: std::sync::Mutex::default(),
        })
    }

    /// The episodes of trouble of the path `what` (`s3://bucket`,
    /// `kinesis://stream`), shared by every thread that calls it.
    pub fn trouble(&self, what: &str) -> Trouble {
        match self.troubles.lock() {
            Ok(mut m) => m
                .entry(what.to_string())
                .or_insert_with(|| Trouble::new(what))
                .clone(),
            Err(_) => Trouble::new(what),
        }
    }

    /// The flag Ctrl-C sets, for tasks on the runtime (see [`stopped`]).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// True once Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs `f` to completion on the runtime, unless Ctrl-C comes first: a call
    /// under way when Ctrl-C comes gets half a second more (the last batch of a
    /// sink usually gets through), then is abandoned.
    pub fn call<F: Future>(&self, f: F) -> Result<F::Output, Interrupted> {
        let _waiting = Waiting::new();
        let stop = Arc::clone(&self.stop);
        self.runtime.block_on(async move {
            tokio::select! {
                v = f => Ok(v),
                () = stopped(&stop) => Err(Interrupted),
            }
        })
    }

    /// Sleeps `d`, unless Ctrl-C comes first.
    pub fn sleep(&self, d: Duration) -> Result<(), Interrupted> {
        let _waiting = Waiting::new();
        let until = Instant::now() + d;
        loop {
            if self.interrupted() {
                return Err(Interrupted);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// The shared configuration (region, credentials, endpoint).
    pub fn config(&self) -> &aws_config::SdkConfig {
        &self.config
    }

    /// An S3 client.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// A Kinesis client.
    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.config)
    }

    /// A CloudWatch Logs client.
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.config)
    }

    /// Runs `f` to completion on the runtime (from a thread outside it).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// A handle to the runtime, for other threads.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }
}

/// An AWS network wait under way: Ctrl-C ends it (and the run) gracefully.
struct Waiting;

impl Waiting {
    fn new() -> Waiting {
        crate::interrupt::AWS_WAITS.fetch_add(1, Ordering::SeqCst);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        crate::interrupt::AWS_WAITS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves half a second after `stop` is set (checked every 50 ms).
pub(crate) async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Whether a failed call is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttling, 5xx, timeouts, connection failures: retried with backoff.
    Retryable,
    /// Bad or expired credentials, access denied, a missing bucket, key or
    /// stream, a bad request: retrying cannot help; fail at once.
    Permanent,
}

/// Error codes that mean the credentials themselves were refused.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
    "TokenRefreshRequired",
    "RequestExpired",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidToken",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "AuthFailure",
    // S3 for a key it has no account for (s3s-fs answers an unknown key so).
    "NotSignedUp",
];

/// Error codes that mean the identity may not do this.
const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AllAccessDisabled",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSNotFoundException",
    "KMSInvalidStateException",
];

/// Error codes that mean the bucket, key or stream does not exist.
const MISSING_CODES: &[&str] = &[
    "NoSuchBucket",
    "NoSuchKey",
    "ResourceNotFoundException",
    "NotFound",
];

/// Error codes that are temporary whatever their HTTP status.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "SlowDown",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "BandwidthLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "KMSThrottlingException",
];

/// A failed call reduced to what retrying and the message need.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The service's error code, if it answered with one.
    pub code: Option<String>,
    /// Retry or not.
    pub class: Class,
    /// The full text of the error.
    pub text: String,
}

impl CallError {
    /// From any SDK error: a service error by its code (then its HTTP status), a
    /// timeout, connection or response failure as retryable, a request that could
    /// not be built (no credentials found, a bad argument) as permanent.
    pub fn from_sdk<E>(e: &aws_sdk_s3::error::SdkError<E, HttpResponse>) -> CallError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_s3::error::SdkError;
        let text = error_text(e);
        match e {
            SdkError::ServiceError(s) => {
                let status = s.raw().status().as_u16();
                let code = s.err().code().map(str::to_string);
                // An answer in another protocol than the service's (an XML error
                // from a proxy or a look-alike server in front of a JSON API): the
                // SDK cannot read its code, the body still names it.
                let (code, text) = match code {
                    Some(c) => (Some(c), text),
                    None => match s.raw().body().bytes().and_then(code_in_body) {
                        Some(c) => {
                            let text = format!(
                                "HTTP {status} {c} (an answer the SDK could not parse: {text})"
                            );
                            (Some(c), text)
                        }
                        None => (None, format!("HTTP {status}: {text}")),
                    },
                };
                CallError {
                    class: classify(code.as_deref(), Some(status)),
                    code,
                    text,
                }
            }
            SdkError::ConstructionFailure(_) => CallError {
                code: None,
                class: Class::Permanent,
                text,
            },
            SdkError::DispatchFailure(d) if d.is_user() => CallError {
                code: None,
                class: Class::Permanent,
                text,
            },
            _ => CallError {
                code: None,
                class: Class::Retryable,
                text,
            },
        }
    }

    /// What the user can do about a permanent error, for the message.
    pub fn hint(&self) -> &'static str {
        let code = self.code.as_deref().unwrap_or_default();
        if CREDENTIAL_CODES.contains(&code) {
            "the AWS credentials were refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --profile, get a new session token if it expired (AWS_SESSION_TOKEN, `aws sso login`), and that this machine's clock is right"
        } else if ACCESS_CODES.contains(&code) {
            "access denied: give this identity the permission the call needs (s3:ListBucket and s3:GetObject to read S3, s3:PutObject to write, kinesis:ListShards/GetShardIterator/GetRecords to read a stream, kinesis:PutRecords to write), or check the bucket or key policy"
        } else if MISSING_CODES.contains(&code) {
            "not found: check the bucket or stream name, --region and --endpoint-url"
        } else if self.code.is_none() {
            "check the credentials (AWS_ACCESS_KEY_ID, --profile), --region and --endpoint-url"
        } else {
            "the request was refused; retrying cannot help"
        }
    }
}

/// The error code an error body names: `<Code>X</Code>` (XML, the S3 and query
/// protocols) or `"__type":"prefix#X"` / `"code":"X"` (JSON protocols).
fn code_in_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body.get(..body.len().min(4096))?).ok()?;
    let xml = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(c, _)| c.trim().to_string());
    let json = || {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let raw = v.get("__type").or_else(|| v.get("code"))?.as_str()?;
        Some(raw.rsplit('#').next().unwrap_or(raw).trim().to_string())
    };
    let code = xml.or_else(json)?;
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    ok.then_some(code)
}

/// Retry or not, from a service's error code and HTTP status.
pub fn classify(code: Option<&str>, status: Option<u16>) -> Class {
    let code = code.unwrap_or_default();
    if RETRYABLE_CODES.contains(&code) {
        return Class::Retryable;
    }
    if CREDENTIAL_CODES.contains(&code)
        || ACCESS_CODES.contains(&code)
        || MISSING_CODES.contains(&code)
    {
        return Class::Permanent;
    }
    match status {
        Some(429) | Some(408) => Class::Retryable,
        Some(s) if s >= 500 => Class::Retryable,
        Some(s) if (400..500).contains(&s) => Class::Permanent,
        _ => Class::Retryable,
    }
}

/// One path's episodes of trouble (a run of failing calls): a WARN when one
/// starts, a WARN when it ends saying how long it lasted and how many calls
/// were retried, so retries are visible at the default log level without a line
/// per retry. Clones share the episode (several download threads of one bucket).
#[derive(Debug, Clone)]
pub struct Trouble {
    state: Arc<std::sync::Mutex<TroubleState>>,
}

#[derive(Debug)]
struct TroubleState {
    what: String,
    since: Option<Instant>,
    last_failure: Option<Instant>,
    /// The first success after the last failure.
    recovered: Option<Instant>,
    retries: u64,
}

/// An episode ends after this long without a failure.
const CALM: Duration = Duration::from_secs(5);

impl Trouble {
    /// For the path named `what` (`s3://bucket/prefix`, `kinesis://stream`).
    pub fn new(what: &str) -> Trouble {
        Trouble {
            state: Arc::new(std::sync::Mutex::new(TroubleState {
                what: what.to_string(),
                since: None,
                last_failure: None,
                recovered: None,
                retries: 0,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut TroubleState) -> T) -> T {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// A call failed and will be retried after `delay`.
    pub fn failed(&self, e: &CallError, delay: Duration) {
        self.with(|s| {
            let now = Instant::now();
            if s.since.is_none() {
                s.since = Some(now);
                tracing::warn!(
                    "{}: {}; retrying with backoff (a warning follows when it recovers)",
                    s.what,
                    e.text
                );
            } else {
                tracing::debug!("{}: {}; retrying in {delay:.1?}", s.what, e.text);
            }
            s.retries += 1;
            s.last_failure = Some(now);
            s.recovered = None;
        });
    }

    /// A call succeeded: ends the episode once calls have succeeded for a while.
    pub fn succeeded(&self) {
        self.with(|s| {
            if s.since.is_some() && s.recovered.is_none() {
                s.recovered = Some(Instant::now());
            }
            if s.last_failure.is_some_and(|t| t.elapsed() >= CALM) {
                s.end("recovered");
            }
        });
    }

    /// Reports an open episode (when giving up).
    pub fn end(&self, how: &str) {
        self.with(|s| s.end(how));
    }
}

impl TroubleState {
    fn end(&mut self, how: &str) {
        if let Some(since) = self.since.take() {
            let until = self.recovered.unwrap_or_else(Instant::now);
            tracing::warn!(
                "{}: {how} after {} retried calls over {:.1?} of trouble",
                self.what,
                self.retries,
                until.duration_since(since)
            );
        }
        self.retries = 0;
        self.last_failure = None;
        self.recovered = None;
    }
}

impl Drop for TroubleState {
    fn drop(&mut self) {
        if self.since.is_some() {
            let how = if self.recovered.is_some() {
                "recovered"
            } else {
                "trouble ended"
            };
            self.end(how);
        }
    }
}

/// Why a retried operation stopped.
#[derive(Debug)]
pub enum GaveUp {
    /// Ctrl-C.
    Interrupted,
    /// A permanent error (retrying cannot help).
    Permanent(CallError),
    /// Still failing after the retry budget (`--operation-timeout` since the first
    /// failure).
    Exhausted(CallError, u32, Duration),
}

impl GaveUp {
    /// An error for the user: what failed, why, and what to do.
    pub fn into_error(self, what: &str) -> anyhow::Error {
        match self {
            GaveUp::Interrupted => anyhow::Error::new(Interrupted).context(what.to_string()),
            GaveUp::Permanent(e) => anyhow::anyhow!("{what}: {}; {}", e.text, e.hint()),
            GaveUp::Exhausted(e, attempts, d) => anyhow::anyhow!(
                "{what}: still failing after {attempts} attempts over {d:.1?} (--operation-timeout): {}",
                e.text
            ),
        }
    }
}

/// Runs `call` until it succeeds, fails permanently, or has been failing for
/// `timeouts.operation`; retryable failures wait with exponential backoff and
/// full jitter (0.2 s doubling to 10 s) and are reported through `trouble`.
pub fn retry<T>(
    aws: &Aws,
    trouble: &mut Trouble,
    seed: u64,
    mut call: impl FnMut() -> Result<Result<T, CallError>, Interrupted>,
) -> Result<T, GaveUp> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10), seed);
    let mut first_failure: Option<Instant> = None;
    loop {
        let e = match call() {
            Err(Interrupted) => return Err(GaveUp::Interrupted),
            Ok(Ok(v)) => {
                trouble.succeeded();
                return Ok(v);
            }
            Ok(Err(e)) => e,
        };
        if e.class == Class::Permanent {
            return Err(GaveUp::Permanent(e));
        }
        let since = *first_failure.get_or_insert_with(Instant::now);
        if since.elapsed() >= aws.timeouts.operation {
            trouble.end("gave up");
            return Err(GaveUp::Exhausted(
                e,
                backoff.attempts() + 1,
                since.elapsed(),
            ));
        }
        let delay = backoff.next_delay();
        trouble.failed(&e, delay);
        if aws.sleep(delay).is_err() {
            return Err(GaveUp::Interrupted);
        }
    }
}

/// The AWS context of a run, created on first use (runs that touch no s3:// or
/// kinesis:// location need neither credentials nor a region).
#[derive(Debug)]
pub struct AwsContext {
    settings: AwsSettings,
    aws: Option<Arc<Aws>>,
}

impl AwsContext {
    /// A context for `settings`.
    pub fn new(settings: AwsSettings) -> AwsContext {
        AwsContext {
            settings,
            aws: None,
        }
    }

    /// The shared SDK configuration and runtime.
    pub fn get(&mut self) -> anyhow::Result<Arc<Aws>> {
        if let Some(a) = &self.aws {
            return Ok(Arc::clone(a));
        }
        let a = Arc::new(Aws::new(&self.settings)?);
        self.aws = Some(Arc::clone(&a));
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code_then_status() {
        use Class::{Permanent, Retryable};
        for (code, status, want) in [
            (Some("SlowDown"), Some(503), Retryable),
            (
                Some("ProvisionedThroughputExceededException"),
                Some(400),
                Retryable,
            ),
            (Some("ThrottlingException"), Some(400), Retryable),
            (Some("InternalFailure"), Some(500), Retryable),
            (Some("InvalidSignatureException"), Some(400), Permanent),
            (Some("ExpiredTokenException"), Some(400), Permanent),
            (Some("UnrecognizedClientException"), Some(400), Permanent),
            (Some("AccessDenied"), Some(403), Permanent),
            (Some("NoSuchBucket"), Some(404), Permanent),
            (Some("ResourceNotFoundException"), Some(400), Permanent),
            (Some("SomethingNew"), Some(502), Retryable),
            (Some("SomethingNew"), Some(429), Retryable),
            (Some("SomethingNew"), Some(400), Permanent),
            (None, None, Retryable),
        ] {
            assert_eq!(classify(code, status), want, "{code:?} {status:?}");
        }
        let e = CallError {
            code: Some("ExpiredToken".into()),
            class: Permanent,
            text: String::new(),
        };
        assert!(e.hint().contains("session token"));
    }

    #[test]
    fn an_unparsed_error_body_still_names_its_code() {
        let xml = b"<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error></Errors></ErrorResponse>";
        assert_eq!(code_in_body(xml).as_deref(), Some("SignatureDoesNotMatch"));
        let json =
            br#"{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"no"}"#;
        assert_eq!(
            code_in_body(json).as_deref(),
            Some("InvalidSignatureException")
        );
        assert_eq!(
            code_in_body(br#"{"code":"AccessDenied"}"#).as_deref(),
            Some("AccessDenied")
        );
        for bad in [
            &b""[..],
            b"<html>502 Bad Gateway</html>",
            b"<Code>has spaces and <tags></Code>",
            b"\xff\xfe",
            br#"{"__type": 7}"#,
        ] {
            assert_eq!(code_in_body(bad), None, "{bad:?}");
        }
    }
}
