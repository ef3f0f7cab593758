//! Logs go through `tracing` to stderr; data goes to stdout.
//!
//! No credential reaches a log line, at any verbosity:
//! - the HTTP, TLS and AWS SDK crates, whose debug and trace events carry request
//!   headers, canonical requests and credential providers' output, are kept at
//!   `info` by `-v`/`-vv` (`WAFLOG_LOG` can still ask for them, redacted);
//! - every line goes through [`redact`] on its way to stderr: the values of the
//!   AWS credentials in the environment (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), of `OPENSEARCH_PASSWORD` and
//!   of secrets registered with [`add_secret`] (webhook URL paths and queries,
//!   webhook header values) are masked, and so are AWS access key IDs
//!   (`AKIA…`, `ASIA…`) and the values of `Authorization`,
//!   `x-amz-security-token`, `Credential=`, `Signature=`, `access_key_id`,
//!   `secret_access_key` and `session_token` wherever they appear.

use std::io::Write;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Crates kept at `info` whatever `-v` asks: their debug and trace events show
/// headers, signatures and credentials.
const QUIET_CRATES: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_sdk_s3",
    "aws_sdk_kinesis",
    "aws_sdk_sns",
    "aws_sdk_sts",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "ureq",
    "ureq_proto",
    "opensearch",
];

/// Environment variables whose values are secrets.
const SECRET_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "OPENSEARCH_PASSWORD",
];

/// Shorter values are not masked as such (they would mask ordinary words, such
/// as the `test` credentials of local servers).
const MIN_SECRET_LEN: usize = 8;

/// What the log never shows, longest first.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Masks `secret` in every later log line (ignored when shorter than 8 bytes).
pub fn add_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut all = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !all.iter().any(|s| s == secret) {
        all.push(secret.to_string());
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// The filter directives for `level`: the level, and `info` for [`QUIET_CRATES`]
/// when the level is more verbose.
fn directives(level: &str) -> String {
    let mut d = level.to_string();
    if matches!(level, "debug" | "trace") {
        for c in QUIET_CRATES {
            d.push_str(&format!(",{c}=info"));
        }
    }
    d
}

/// Sets up the subscriber: `WAFLOG_LOG` (an `EnvFilter` directive such as `debug`)
/// wins, else `-v` / `-q` pick the level (default `info`).
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    for var in SECRET_VARS {
        if let Ok(v) = std::env::var(var) {
            add_secret(&v);
        }
    }
    let filter =
        EnvFilter::try_from_env("WAFLOG_LOG").unwrap_or_else(|_| EnvFilter::new(directives(level)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false)
        .with_ansi(ansi)
        // Not `eprintln!` about a failed log write: it panics on a closed stderr.
        .log_internal_errors(false)
        .without_time()
        .init();
}

/// Writes each log line to stderr once redacted.
#[derive(Debug, Clone, Copy)]
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedLine;

    fn make_writer(&'a self) -> RedactedLine {
        RedactedLine(Vec::with_capacity(256))
    }
}

/// One event's text, written redacted to stderr when dropped.
#[derive(Debug)]
struct RedactedLine(Vec<u8>);

impl Write for RedactedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let clean = {
            let secrets = SECRETS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            redact(&text, &secrets)
        };
        // Nowhere to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(clean.as_bytes());
    }
}

/// What replaces a secret.
const MASK: &str = "***";

/// Keys whose value is masked, lowercase, and whether an unquoted value runs to
/// the end of the line (`Authorization: AWS4-HMAC-SHA256 Credential=…`).
const SECRET_KEYS: &[(&str, bool)] = &[
    ("authorization", true),
    ("x-amz-security-token", false),
    ("x-amz-credential", false),
    ("x-amz-signature", false),
    ("credential", false),
    ("signature", false),
    ("access_key_id", false),
    ("secret_access_key", false),
    ("session_token", false),
    ("security_token", false),
    ("aws_access_key_id", false),
    ("aws_secret_access_key", false),
    ("aws_session_token", false),
];

/// `text` with `secrets`, AWS access key IDs and the values of [`SECRET_KEYS`]
/// masked.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    let out = mask_key_ids(&out);
    let out = mask_userinfo(&out);
    mask_values(&out)
}

/// The `user:password@` of URLs (`--endpoint-url`, OpenSearch URLs).
fn mask_userinfo(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'<>,;)]}".contains(c)
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// AWS access key IDs: a four-letter prefix such as `AKIA` or `ASIA`, then 12
/// or more upper-case letters and digits.
fn mask_key_ids(text: &str) -> String {
    const PREFIXES: &[&str] = &[
        "AKIA", "ASIA", "AIDA", "AROA", "ABIA", "ACCA", "AGPA", "ANPA", "ANVA", "APKA",
    ];
    let bytes = text.as_bytes();
    let key_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 4 <= bytes.len() {
        let starts_word = i == 0 || !key_char(bytes[i - 1]);
        if starts_word
            && PREFIXES
                .iter()
                .any(|p| bytes[i..].starts_with(p.as_bytes()))
        {
            let end = i + 4 + bytes[i + 4..].iter().take_while(|b| key_char(**b)).count();
            if end - i >= 16 {
                out.push_str(&text[copied..i]);
                out.push_str(MASK);
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// The values after [`SECRET_KEYS`] (followed by `:` or `=`, quoted or not).
fn mask_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some((key, to_eol)) = SECRET_KEYS
            .iter()
            .find(|(k, _)| lower.as_bytes()[i..].starts_with(k.as_bytes()))
        else {
            i += 1;
            continue;
        };
        // A whole key, not the end of a longer word.
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            i += 1;
            continue;
        }
        let mut j = i + key.len();
        let mut separator = false;
        let mut quote = None;
        while j < bytes.len() && (b"\"': =\t".contains(&bytes[j]) || bytes[j] == 0x1b) {
            // A colour code between key and value (`-v` on a terminal).
            if bytes[j] == 0x1b {
                j += bytes[j..]
                    .iter()
                    .position(|b| *b == b'm')
                    .map_or(1, |p| p + 1);
                continue;
            }
            match bytes[j] {
                b':' | b'=' => separator = true,
                q @ (b'"' | b'\'') if separator => quote = Some(q),
                _ => {}
            }
            j += 1;
            if quote.is_some() {
                break;
            }
        }
        if !separator || j >= bytes.len() {
            i += 1;
            continue;
        }
        let value_end = match quote {
            Some(q) => bytes[j..]
                .iter()
                .position(|b| *b == q || *b == b'\n')
                .map_or(bytes.len(), |p| j + p),
            None if *to_eol => bytes[j..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |p| j + p),
            None => bytes[j..]
                .iter()
                .position(|b| b" \t\r\n,&;\"'})]".contains(b))
                .map_or(bytes.len(), |p| j + p),
        };
        if value_end > j {
            out.push_str(&text[copied..j]);
            out.push_str(MASK);
            copied = value_end;
        }
        i = value_end.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_in_every_form() {
        let secrets = vec!["s3cr3t-marker-value".to_string()];
        for (line, leak) in [
            (
                r#"loaded credentials Credentials { provider_name: "Environment", access_key_id: "AKIAIOSFODNN7EXAMPLE", secret_access_key: "** redacted **" }"#,
                "AKIAIOSFODNN7EXAMPLE",
            ),
            (
                "x-amz-security-token:FQoGZXIvYXdzEBYaDK\nhost:s3",
                "FQoGZXIvYXdzEBYaDK",
            ),
            (
                r#"headers: {"x-amz-security-token": "IQoJb3JpZ2luX2VjEJr", "host": "x"}"#,
                "IQoJb3JpZ2luX2VjEJr",
            ),
            (
                r#"{"authorization": "AWS4-HMAC-SHA256 Credential=ASIAXXXXXXXXXXXXXXXX/20240501/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abcdef0123"}"#,
                "abcdef0123",
            ),
            ("Authorization: Bearer tok-1234567", "tok-1234567"),
            (
                "?X-Amz-Credential=KEY123%2F2024&X-Amz-Signature=f00d",
                "KEY123",
            ),
            (
                "POST http://h/hook/s3cr3t-marker-value failed",
                "s3cr3t-marker-value",
            ),
            (
                "key ASIA1234567890ABCDEF in a sentence",
                "ASIA1234567890ABCDEF",
            ),
            (
                "cannot reach https://admin:hunter2pass@search.local:9200/_bulk (timeout)",
                "hunter2pass",
            ),
        ] {
            let clean = redact(line, &secrets);
            assert!(!clean.contains(leak), "{line} -> {clean}");
            assert!(clean.contains(MASK), "{clean}");
        }
        // Ordinary text is left alone.
        for plain in [
            "alert 3fa2c41b07d9 acknowledged from the dashboard",
            "the credential chain found nothing",
            "AKIA is a prefix",
            "dashboard: http://127.0.0.1:8080/ and s3://bucket/key@2",
        ] {
            assert_eq!(redact(plain, &secrets), plain);
        }
    }

    #[test]
    fn verbose_levels_keep_the_talkative_crates_at_info() {
        assert_eq!(directives("info"), "info");
        let d = directives("trace");
        assert!(d.starts_with("trace,"));
        assert!(d.contains("aws_sigv4=info") && d.contains("hyper=info"));
        assert!(EnvFilter::try_new(&d).is_ok());
    }
}
