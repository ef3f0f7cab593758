//! CloudWatch Logs subscription payloads: WAF records that arrive wrapped.
//!
//! AWS WAF can log to a CloudWatch Logs group (`aws-waf-logs-*`). A subscription
//! filter on that group forwards its events to Kinesis Data Streams, Kinesis Data
//! Firehose or Lambda as *payloads*: gzip-compressed JSON objects of the form
//! (see the CloudWatch Logs user guide, "Real-time processing of log data with
//! subscriptions"):
//!
//! ```json
//! {"messageType": "DATA_MESSAGE", "owner": "123456789012",
//!  "logGroup": "aws-waf-logs-demo", "logStream": "us-east-1_demo_0",
//!  "subscriptionFilters": ["waflog"],
//!  "logEvents": [{"id": "3719...", "timestamp": 1714521600000, "message": "{...}"}]}
//! ```
//!
//! Each `logEvents[].message` is one WAF record, as text. A `CONTROL_MESSAGE` (sent
//! when the subscription is set up, to check the destination) carries no record and
//! is skipped. [`unpack`] recognises a payload, compressed or not, wherever records
//! arrive (a Kinesis record, a Firehose record's data, a line of a file) and hands
//! out its messages; anything else is left to the caller as ordinary records. Data
//! that is gzip-compressed but not a payload is handed back decompressed.

use std::io::Read;

use serde::Deserialize;

/// The two bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a payload cannot be unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The data starts like gzip but does not decompress.
    #[error("gzip data that does not decompress: {0}")]
    Gzip(String),
    /// The data decompresses to more than the limit.
    #[error("gzip data that decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The JSON starts like a subscription payload but is not one.
    #[error("not a CloudWatch Logs subscription payload: {0}")]
    Invalid(String),
}

/// One subscription payload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    pub message_type: String,
    /// The AWS account that owns the log group.
    #[serde(default)]
    pub owner: String,
    /// The log group (`aws-waf-logs-...`).
    #[serde(default)]
    pub log_group: String,
    /// The log stream.
    #[serde(default)]
    pub log_stream: String,
    /// The log events; empty in a control message.
    #[serde(default)]
    pub log_events: Vec<LogEvent>,
}

/// One event of a [`Subscription`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEvent {
    /// CloudWatch's event id.
    #[serde(default)]
    pub id: String,
    /// When CloudWatch received it, in epoch milliseconds.
    #[serde(default)]
    pub timestamp: i64,
    /// The WAF record, as text.
    pub message: String,
}

impl Subscription {
    /// Whether it is a control message (no records).
    pub fn is_control(&self) -> bool {
        self.message_type == "CONTROL_MESSAGE"
    }
}

/// What [`unpack`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpacked {
    /// A subscription payload.
    Payload(Subscription),
    /// gzip data that is not a payload, decompressed (ordinary records).
    Decompressed(Vec<u8>),
}

/// Whether `bytes` starts with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Whether `json` looks like a payload: an object whose first key is `messageType`,
/// as CloudWatch Logs writes it.
pub fn looks_like_payload(json: &[u8]) -> bool {
    let t = json.trim_ascii_start();
    let Some(rest) = t.strip_prefix(b"{") else {
        return false;
    };
    rest.trim_ascii_start().starts_with(b"\"messageType\"")
}

/// Decompresses gzip `data` (every member), refusing more than `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| PayloadError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(PayloadError::TooLarge { limit });
    }
    Ok(out)
}

/// Parses payload JSON (see [`looks_like_payload`]).
pub fn parse(json: &[u8]) -> Result<Subscription, PayloadError> {
    let s: Subscription =
        serde_json::from_slice(json).map_err(|e| PayloadError::Invalid(e.to_string()))?;
    match s.message_type.as_str() {
        "DATA_MESSAGE" | "CONTROL_MESSAGE" => Ok(s),
        other => Err(PayloadError::Invalid(format!(
            "messageType is `{other}`, not DATA_MESSAGE or CONTROL_MESSAGE"
        ))),
    }
}

/// Recognises a subscription payload in `data` (gzip-compressed or not). `None`: the
/// data is neither gzip nor a payload (ordinary records). `limit` bounds the
/// decompressed size.
pub fn unpack(data: &[u8], limit: usize) -> Option<Result<Unpacked, PayloadError>> {
    if is_gzip(data) {
        return Some(gunzip(data, limit).and_then(|json| {
            if looks_like_payload(&json) {
                parse(&json).map(Unpacked::Payload)
            } else {
                Ok(Unpacked::Decompressed(json))
            }
        }));
    }
    looks_like_payload(data).then(|| parse(data).map(Unpacked::Payload))
}

/// The record of a CloudWatch Logs export line: `CreateExportTask` writes each log
/// event to S3 as `<timestamp> <message>`, the event's RFC 3339 time (or epoch
/// number), one space, then the message (here, the WAF record). Returns the message
/// when `line` is such a line and the message starts like a JSON object; `None` for
/// anything else (so ordinary records and lines that are not records go on as they
/// are).
pub fn export_message(line: &[u8]) -> Option<&[u8]> {
    if !line.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    // RFC 3339 with nanoseconds and an offset is 35 bytes; stop looking well after.
    let space = line.iter().take(40).position(|&b| b == b' ')?;
    let message = &line[space + 1..];
    if !message.starts_with(b"{") {
        return None;
    }
    let stamp = std::str::from_utf8(&line[..space]).ok()?;
    crate::timestamp::from_str(stamp).ok()?;
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn export_lines_give_their_message() {
        let rec: &[u8] = br#"{"timestamp":1714521600000,"action":"ALLOW"}"#;
        for prefix in [
            "2024-05-01T00:00:00.000Z ",
            "2024-05-01T00:00:00.123456789+02:00 ",
            "1714521600000 ",
        ] {
            let line = [prefix.as_bytes(), rec].concat();
            assert_eq!(export_message(&line), Some(rec), "{prefix}");
        }
        for not in [
            rec,
            b"2024-05-01T00:00:00.000Z",
            b"2024-05-01T00:00:00.000Z not json",
            b"2024-13-01T00:00:00.000Z {}",
            b"12 apples {}",
            b"",
            b"2024-05-01T00:00:00.000Z{}",
        ] {
            assert_eq!(
                export_message(not),
                None,
                "{}",
                String::from_utf8_lossy(not)
            );
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    const DATA: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"aws-waf-logs-demo","logStream":"s1","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1714521600000,"message":"{\"timestamp\":1714521600000,\"action\":\"ALLOW\"}"},{"id":"2","timestamp":1714521600001,"message":"{\"timestamp\":1714521600001,\"action\":\"BLOCK\"}"}]}"#;

    #[test]
    fn data_messages_give_their_records_compressed_or_not() {
        for data in [gzip(DATA.as_bytes()), DATA.as_bytes().to_vec()] {
            let Some(Ok(Unpacked::Payload(p))) = unpack(&data, 1 << 20) else {
                panic!("not unpacked");
            };
            assert!(!p.is_control());
            assert_eq!(p.log_group, "aws-waf-logs-demo");
            let messages: Vec<&str> = p.log_events.iter().map(|e| e.message.as_str()).collect();
            assert_eq!(
                messages,
                [
                    r#"{"timestamp":1714521600000,"action":"ALLOW"}"#,
                    r#"{"timestamp":1714521600001,"action":"BLOCK"}"#
                ]
            );
        }
    }

    #[test]
    fn control_messages_are_recognised() {
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1714521600000,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
        let Some(Ok(Unpacked::Payload(p))) = unpack(&gzip(control.as_bytes()), 1 << 20) else {
            panic!("not unpacked");
        };
        assert!(p.is_control());
    }

    #[test]
    fn other_data_is_left_alone_or_decompressed() {
        assert_eq!(unpack(br#"{"timestamp":1,"action":"ALLOW"}"#, 100), None);
        assert_eq!(unpack(b"not json", 100), None);
        let lines = b"{\"timestamp\":1}\n{\"timestamp\":2}\n";
        assert_eq!(
            unpack(&gzip(lines), 100),
            Some(Ok(Unpacked::Decompressed(lines.to_vec())))
        );
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let big = gzip(&vec![b' '; 1000]);
        assert_eq!(
            unpack(&big, 999),
            Some(Err(PayloadError::TooLarge { limit: 999 }))
        );
        let cut = gzip(DATA.as_bytes());
        assert!(matches!(
            unpack(&cut[..cut.len() / 2], 1 << 20),
            Some(Err(PayloadError::Gzip(_)))
        ));
        assert!(matches!(
            unpack(br#"{"messageType":"OTHER","logEvents":[]}"#, 100),
            Some(Err(PayloadError::Invalid(_)))
        ));
        assert!(matches!(
            unpack(
                br#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1"}]}"#,
                100
            ),
            Some(Err(PayloadError::Invalid(_)))
        ));
    }
}
