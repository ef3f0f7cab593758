//! Where alerts go: the I/O of the configured channels (console and file
//! writers, the webhook: an HTTP POST with retries, and Amazon SNS), one
//! [`Notifier`] per channel built by [`build`]. The bookkeeping (what is due, retries across runs,
//! giving up) is the core's [`waflog_core::alert::deliver_due`].

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use waflog_core::alert::{
    Channel, Notification, Notifier, NotifyError, WriteFormat, WriteNotifier,
};
use waflog_core::timestamp::parse_duration_ms;

use crate::aws::{Aws, AwsContext};
use crate::net::{Backoff, error_text};

/// Builds one notifier per channel. `results_on_stdout`: a `stdout` channel then
/// writes to stderr, so alerts never mix with the results.
pub fn build(
    channels: &[Channel],
    aws: &mut AwsContext,
    results_on_stdout: bool,
) -> anyhow::Result<Vec<Box<dyn Notifier>>> {
    let mut out: Vec<Box<dyn Notifier>> = Vec::new();
    for c in channels {
        let n: Box<dyn Notifier> = match c {
            Channel::Stdout { name } if results_on_stdout => Box::new(WriteNotifier::new(
                name,
                crate::term::Console(std::io::stderr()),
                WriteFormat::Text,
            )),
            Channel::Stdout { name } => Box::new(WriteNotifier::new(
                name,
                crate::term::Console(std::io::stdout()),
                WriteFormat::Text,
            )),
            Channel::Stderr { name } => Box::new(WriteNotifier::new(
                name,
                crate::term::Console(std::io::stderr()),
                WriteFormat::Text,
            )),
            Channel::File { name, path } => Box::new(FileNotifier {
                name: name.clone(),
                path: path.clone(),
            }),
            Channel::Webhook {
                name,
                url,
                slack,
                timeout,
                max_attempts,
                headers,
                insecure,
            } => {
                let timeout = parse_duration_ms(timeout)
                    .map_err(|e| anyhow::anyhow!("channel {name}: timeout {timeout}: {e}"))?;
                Box::new(Webhook::new(
                    name,
                    url,
                    *slack,
                    Duration::from_millis(u64::try_from(timeout).unwrap_or(10_000)),
                    *max_attempts,
                    headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    *insecure,
                ))
            }
            Channel::Sns {
                name,
                topic_arn,
                region,
                endpoint_url,
            } => {
                let aws = aws.get().with_context(|| format!("channel {name}"))?;
                Box::new(Sns::new(
                    aws,
                    name,
                    topic_arn,
                    region.as_deref(),
                    endpoint_url.as_deref(),
                ))
            }
        };
        out.push(n);
    }
    Ok(out)
}

/// The `file` channel: the JSON payload appended as one line (NDJSON); the file is
/// opened for each notification, so it can be rotated underneath.
struct FileNotifier {
    name: String,
    path: std::path::PathBuf,
}

impl Notifier for FileNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, n: &Notification) -> Result<(), NotifyError> {
        let mut line =
            serde_json::to_vec(&n.payload).map_err(|e| NotifyError::Failed(e.to_string()))?;
        line.push(b'\n');
        append(&self.path, &line)
            .map_err(|e| NotifyError::Failed(format!("{}: {e}", self.path.display())))
    }
}

/// Appends `bytes` to `path` in one write (created if missing).
pub fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.flush()
}

/// The `webhook` channel: an HTTP POST of the JSON payload (or a Slack-compatible
/// `{"text": ...}` body), TLS verified unless `insecure`; up to `max_attempts`
/// tries with exponential backoff and jitter within one delivery, after which the
/// core keeps it in the outbox and retries later. 4xx answers other than 408 and
/// 429 are rejections (a wrong URL or token does not fix itself).
///
/// The URL's path and query (often a token) and the header values are secrets:
/// errors show the URL as `scheme://host/***` (so the reasons kept in the state
/// file and listed by `waflog alerts list` hold no token) and the log masks them.
pub struct Webhook {
    name: String,
    url: String,
    /// The URL as errors show it.
    shown: String,
    slack: bool,
    max_attempts: u32,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
    /// First retry delay (the next ones double, with jitter).
    pub retry_base: Duration,
    seed: u64,
}

impl Webhook {
    /// A webhook notifier.
    pub fn new(
        name: &str,
        url: &str,
        slack: bool,
        timeout: Duration,
        max_attempts: u32,
        headers: Vec<(String, String)>,
        insecure: bool,
    ) -> Webhook {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(insecure)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("waflog/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let shown = waflog_core::alert::redact_url(url);
        crate::logging::add_secret(url);
        if let Some((_, rest)) = url.split_once("://")
            && let Some(at) = rest.find(['/', '?', '#'])
        {
            crate::logging::add_secret(&rest[at..]);
        }
        for (_, v) in &headers {
            crate::logging::add_secret(v);
            // `Bearer TOKEN`: the token alone too.
            for part in v.split_whitespace() {
                crate::logging::add_secret(part);
            }
        }
        Webhook {
            name: name.into(),
            url: url.into(),
            shown,
            slack,
            max_attempts: max_attempts.max(1),
            headers,
            agent,
            retry_base: Duration::from_millis(500),
            seed: 0x2545_f491_4f6c_dd1d,
        }
    }

    fn post_once(&self, body: &[u8]) -> Result<(), NotifyError> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        match req.send(body) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match status {
                    200..=299 => Ok(()),
                    408 | 429 | 500..=599 => Err(NotifyError::Failed(format!(
                        "{} answered HTTP {status}",
                        self.shown
                    ))),
                    _ => Err(NotifyError::Rejected(format!(
                        "{} answered HTTP {status}",
                        self.shown
                    ))),
                }
            }
            Err(e) => Err(NotifyError::Failed(format!(
                "POST {}: {}",
                self.shown,
                self.scrub(&e.to_string())
            ))),
        }
    }

    /// An error text without the URL's secrets (the client may quote the URL).
    fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.url, &self.shown);
        if let Some((_, rest)) = self.url.split_once("://")
            && let Some(at) = rest.find(['/', '?', '#'])
            && rest.len() - at > 1
        {
            text = text.replace(&rest[at..], "/***");
        }
        for (_, v) in &self.headers {
            if !v.is_empty() {
                text = text.replace(v.as_str(), "***");
            }
        }
        text
    }
}

impl Notifier for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, n: &Notification) -> Result<(), NotifyError> {
        let body = if self.slack {
            n.slack_body()
        } else {
            n.payload.clone()
        };
        let body = serde_json::to_vec(&body).map_err(|e| NotifyError::Failed(e.to_string()))?;
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut backoff = Backoff::new(self.retry_base, Duration::from_secs(10), self.seed);
        loop {
            match self.post_once(&body) {
                Ok(()) => return Ok(()),
                Err(NotifyError::Failed(reason)) if backoff.attempts() + 1 < self.max_attempts => {
                    let delay = backoff.next_delay();
                    tracing::debug!("channel {}: {reason}; retrying in {delay:?}", self.name);
                    std::thread::sleep(delay);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Most characters of an SNS subject.
const SNS_SUBJECT_MAX: usize = 100;

/// The `sns` channel: `Publish` to a topic with the subject and the message text.
struct Sns {
    aws: Arc<Aws>,
    client: aws_sdk_sns::Client,
    name: String,
    topic_arn: String,
}

impl Sns {
    fn new(
        aws: Arc<Aws>,
        name: &str,
        topic_arn: &str,
        region: Option<&str>,
        endpoint_url: Option<&str>,
    ) -> Sns {
        let mut conf = aws_sdk_sns::config::Builder::from(aws.config());
        if let Some(r) = region {
            conf = conf.region(aws_sdk_sns::config::Region::new(r.to_string()));
        }
        if let Some(e) = endpoint_url {
            conf = conf.endpoint_url(e);
        }
        Sns {
            client: aws_sdk_sns::Client::from_conf(conf.build()),
            aws,
            name: name.into(),
            topic_arn: topic_arn.into(),
        }
    }
}

/// An SNS subject: printable ASCII, no line breaks, at most 100 characters.
fn sns_subject(subject: &str) -> String {
    let clean: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let clean = clean.trim();
    if clean.len() <= SNS_SUBJECT_MAX {
        clean.to_string()
    } else {
        format!("{}...", &clean[..SNS_SUBJECT_MAX - 3])
    }
}

impl Notifier for Sns {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, n: &Notification) -> Result<(), NotifyError> {
        use aws_sdk_sns::error::ProvideErrorMetadata;
        let req = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(sns_subject(&n.subject))
            .message(&n.text);
        match self.aws.block_on(req.send()) {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = error_text(&e);
                match e.code() {
                    Some(
                        "NotFound"
                        | "NotFoundException"
                        | "AuthorizationError"
                        | "InvalidParameter"
                        | "InvalidParameterException",
                    ) => Err(NotifyError::Rejected(format!(
                        "SNS {}: {text}",
                        self.topic_arn
                    ))),
                    _ => Err(NotifyError::Failed(format!(
                        "SNS {}: {text}",
                        self.topic_arn
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_errors_hide_the_url_token() {
        let hook = Webhook::new(
            "hook",
            "http://127.0.0.1:9/hook/T0K3N-PATH?key=T0K3N-QUERY",
            false,
            Duration::from_secs(1),
            1,
            vec![("authorization".into(), "Bearer T0K3N-HEADER".into())],
            false,
        );
        let e = hook.post_once(b"{}").unwrap_err().to_string();
        assert!(e.contains("http://127.0.0.1:9/***"), "{e}");
        assert!(!e.contains("T0K3N"), "{e}");
        let scrubbed = hook.scrub(
            "bad uri http://127.0.0.1:9/hook/T0K3N-PATH?key=T0K3N-QUERY or /hook/T0K3N-PATH?key=T0K3N-QUERY, Bearer T0K3N-HEADER",
        );
        assert!(!scrubbed.contains("T0K3N"), "{scrubbed}");
    }

    #[test]
    fn sns_subjects_are_short_printable_ascii() {
        assert_eq!(sns_subject("Alert: UNK_source\n"), "Alert: UNK_source");
        let long = "x".repeat(150);
        assert_eq!(sns_subject(&long).len(), 100);
        assert_eq!(sns_subject("é ok"), "ok");
    }
}
