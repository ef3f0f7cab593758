//! Kinesis Data Firehose data transformation: one transformation event in, one
//! response out, each record transformed like a line of `waflog transform`.
//!
//! Firehose calls a Lambda function with a batch of records
//! (`{"invocationId", "deliveryStreamArn", "region", "records": [{"recordId",
//! "approximateArrivalTimestamp", "data"}]}`, plus `sourceKinesisStreamArn` and a
//! per-record `kinesisRecordMetadata` when the delivery stream reads a Kinesis data
//! stream) and expects `{"records": [{"recordId", "result", "data"}]}` back, with
//! every `recordId` exactly once. [`respond`] builds that answer:
//!
//! - A record whose base64 `data` decodes to WAF log lines is answered `Ok` with the
//!   base64 of [`Transformer::transform_line`]'s output (newline-terminated JSON).
//!   A blob holding several newline-separated lines (a Kinesis-source record that
//!   aggregates lines) is transformed line by line and the outputs are concatenated
//!   in that record's answer; blank lines are skipped.
//! - A record that cannot be transformed (invalid base64, no line at all, or any line
//!   that `transform_line` rejects: invalid UTF-8 or JSON, not an object, missing or
//!   unparsable timestamp, ...) is answered `ProcessingFailed` with its `data` echoed
//!   back exactly as it came (Firehose requires data on failed records and writes
//!   them to the delivery stream's processing-failed S3 prefix). When one line of a
//!   multi-line record is bad the whole record fails, so no record is ever
//!   half-delivered. The caller is told about each such record (a [`FailedRecord`],
//!   which turns into the same [`DeadLetter`] `waflog transform` writes); the
//!   response has no room for a reason.
//! - The response must fit a Lambda response (6 MB, [`DEFAULT_MAX_RESPONSE_BYTES`]).
//!   The budget starts from the answer that echoes every record back, which is
//!   smaller than the event itself when it comes from Firehose (each event record
//!   also carries `approximateArrivalTimestamp`, longer than `"result":
//!   "ProcessingFailed"`), so it fits whenever the event did; records are upgraded to their `Ok`
//!   answer in input order while the total stays within the limit. From the first
//!   record that does not fit, every remaining record stays `ProcessingFailed` with
//!   its original data ([`FirehoseStats::failed_for_size`]), so Firehose keeps it
//!   and nothing is lost.
//! - `Dropped` is never answered. A bad record never fails the batch; only an event
//!   that cannot be answered at all (not JSON, no `records` array, a record without
//!   `recordId`) is an error ([`FirehoseError`]).
//!
//! ```
//! use base64::Engine as _;
//! use base64::engine::general_purpose::STANDARD;
//! use waflog_core::{features::FeatureMap, firehose, transform::Transformer};
//!
//! let line = r#"{"timestamp":1735732800123,"action":"ALLOW","httpRequest":{"country":"US"}}"#;
//! let event = serde_json::json!({
//!     "invocationId": "00540a87-5050-496a-84e4-e7d92bbaf5e2",
//!     "records": [
//!         {"recordId": "1", "data": STANDARD.encode(line)},
//!         {"recordId": "2", "data": "not base64!"},
//!     ],
//! });
//! let t = Transformer::new(FeatureMap::default());
//! let mut failed = Vec::new();
//! let (body, stats) = firehose::respond(
//!     event.to_string().as_bytes(),
//!     &t,
//!     firehose::DEFAULT_MAX_RESPONSE_BYTES,
//!     |f| failed.push(f.record_id.to_string()),
//! )
//! .unwrap();
//! let response: firehose::FirehoseResponse = serde_json::from_slice(&body).unwrap();
//! assert_eq!(response.records[0].result, firehose::RecordResult::Ok);
//! assert_eq!(response.records[1].result, firehose::RecordResult::ProcessingFailed);
//! assert_eq!(response.records[1].data, "not base64!");
//! assert_eq!((stats.ok, stats.failed, failed), (1, 1, vec!["2".to_string()]));
//! ```

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SchemaError;
use crate::parse::DeadLetter;
use crate::parse::schema::json_kind;
use crate::transform::Transformer;

/// The largest response a Lambda function may return: 6 MB (6,291,456 bytes).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 6_291_456;

/// A Firehose data-transformation event (the Lambda input). Unknown members are
/// ignored.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseEvent {
    /// Id of this invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// ARN of the delivery stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_stream_arn: Option<String>,
    /// ARN of the Kinesis data stream, when the delivery stream reads one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_kinesis_stream_arn: Option<String>,
    /// AWS region of the delivery stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The records, each to be answered once.
    pub records: Vec<FirehoseRecord>,
}

/// One record of a [`FirehoseEvent`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecord {
    /// Id the answer must carry.
    pub record_id: String,
    /// When the record reached Firehose (epoch milliseconds, as received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_timestamp: Option<Value>,
    /// The payload in standard base64. Empty when absent or `null`; another JSON
    /// type is kept as its JSON text. Either way the record alone is answered
    /// `ProcessingFailed` (no record in it, or not base64), never the whole event.
    #[serde(default, deserialize_with = "lenient_data")]
    pub data: String,
    /// Where the record came from, when the source is a Kinesis data stream
    /// (informational: a malformed value is ignored, not an error).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_metadata"
    )]
    pub kinesis_record_metadata: Option<KinesisRecordMetadata>,
}

/// Kinesis data stream metadata of a record. Informational only; the timestamp and
/// subsequence number are kept as received (producers write them as numbers or as
/// strings).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisRecordMetadata {
    /// Shard the record was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    /// Partition key it was put with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// When it reached the data stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_timestamp: Option<Value>,
    /// Sequence number in the shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// Subsequence number (de-aggregated KPL records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsequence_number: Option<Value>,
}

/// The answer for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum RecordResult {
    /// Transformed; `data` is the transformed payload.
    Ok,
    /// Dropped on purpose (never answered by waflog).
    Dropped,
    /// Not transformed; `data` is the payload as received.
    ProcessingFailed,
}

/// One record of a [`FirehoseResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseRecord<'a> {
    /// The `recordId` of the event's record.
    pub record_id: Cow<'a, str>,
    /// The outcome.
    pub result: RecordResult,
    /// Standard base64 payload.
    pub data: Cow<'a, str>,
}

/// The response to a [`FirehoseEvent`] (the Lambda output).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FirehoseResponse<'a> {
    /// One answer per event record, in the event's order.
    pub records: Vec<ResponseRecord<'a>>,
}

/// An event that cannot be answered at all. Bad records are not errors: they are
/// answered `ProcessingFailed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FirehoseError {
    /// The input is not JSON.
    #[error("the Firehose event is not valid JSON: {0}")]
    NotJson(String),
    /// The input is JSON but not shaped like a transformation event.
    #[error("not a Firehose data-transformation event: {0}")]
    InvalidEvent(String),
    /// A record has no `recordId`, so it cannot be answered.
    #[error(
        "not a Firehose data-transformation event: records[{index}] has no recordId, so it cannot be answered"
    )]
    MissingRecordId {
        /// 0-based position of the record in `records`.
        index: usize,
    },
    /// Even echoing every record back unchanged exceeds the response limit (a real
    /// Firehose event within the limit always leaves room for it).
    #[error(
        "no response fits in {limit} bytes: echoing every record back as ProcessingFailed already takes {needed} bytes"
    )]
    ResponseTooLarge {
        /// Bytes of the smallest valid response.
        needed: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why one record was answered `ProcessingFailed`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// `data` is not standard base64.
    #[error("data is not valid base64: {0}")]
    Base64(String),
    /// `data` decodes to nothing but blank lines.
    #[error("data holds no record (empty or blank)")]
    Empty,
    /// The data is a CloudWatch Logs subscription payload (or gzip) that cannot be
    /// unpacked.
    #[error("{0}")]
    Payload(crate::parse::cloudwatch::PayloadError),
    /// A line of the decoded data (or a log event of a CloudWatch Logs payload: `line`
    /// is then its position) is not a record; the record's other lines are not
    /// delivered either.
    #[error("line {line}: {error}")]
    Line {
        /// 1-based line number in the decoded data.
        line: u64,
        /// Why `transform_line` rejected it.
        error: SchemaError,
    },
}

/// A record answered `ProcessingFailed` because it is bad, as handed to the
/// caller of [`respond`].
#[derive(Debug, Clone, Copy)]
pub struct FailedRecord<'a> {
    /// 0-based position in the event.
    pub index: usize,
    /// Its `recordId`.
    pub record_id: &'a str,
    /// Its `data` as received (base64, or whatever was sent).
    pub data: &'a str,
    /// The decoded payload, when `data` is valid base64.
    pub decoded: Option<&'a [u8]>,
    /// Why it failed.
    pub error: &'a RecordError,
}

impl FailedRecord<'_> {
    /// The dead letter for this record, as `waflog transform` writes them: `raw` (or
    /// `raw_base64` when not UTF-8) is the whole decoded payload, `line` the first
    /// bad line in it, `reason` what is wrong with that line. When `data` is not
    /// base64, `raw` is `data` as received.
    pub fn dead_letter<'s>(&'s self, source: &'s str) -> DeadLetter<'s> {
        match (self.error, self.decoded) {
            (RecordError::Line { line, error }, Some(bytes)) => {
                DeadLetter::new(source, *line, error, bytes)
            }
            (_, Some(bytes)) => {
                let mut d =
                    DeadLetter::new(source, 1, &SchemaError::InvalidJson(String::new()), bytes);
                d.reason = self.error.to_string();
                d
            }
            (_, None) => DeadLetter {
                source,
                line: 1,
                offset: None,
                reason: self.error.to_string(),
                raw: Some(Cow::Borrowed(self.data)),
                raw_base64: None,
                truncated_from: None,
            },
        }
    }
}

/// Counters of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FirehoseStats {
    /// Records in the event (= answers in the response).
    pub records: u64,
    /// Records answered `Ok`.
    pub ok: u64,
    /// Records answered `ProcessingFailed` because they are bad.
    pub failed: u64,
    /// Good records answered `ProcessingFailed` (original data) because their
    /// transformed data would not fit in the response limit.
    pub failed_for_size: u64,
    /// JSON lines delivered in `Ok` records.
    pub lines_out: u64,
    /// Records answered `Dropped`: CloudWatch Logs control messages (no WAF record).
    pub dropped: u64,
    /// Bytes of the event.
    pub bytes_in: u64,
    /// Bytes of the response.
    pub bytes_out: u64,
}

impl FirehoseEvent {
    /// Parses an event, with a message that says what is missing when it is not one.
    pub fn from_slice(bytes: &[u8]) -> Result<FirehoseEvent, FirehoseError> {
        if bytes.trim_ascii().is_empty() {
            return Err(FirehoseError::NotJson(
                "the input is empty (expected one event)".into(),
            ));
        }
        match serde_json::from_slice(bytes) {
            Ok(event) => Ok(event),
            Err(e) if e.is_syntax() || e.is_eof() => Err(FirehoseError::NotJson(e.to_string())),
            Err(e) => Err(diagnose(bytes).unwrap_or(FirehoseError::InvalidEvent(e.to_string()))),
        }
    }
}

/// Names what makes well-formed JSON not an event, where serde's message would only
/// give a line and column.
fn diagnose(bytes: &[u8]) -> Option<FirehoseError> {
    let invalid = |m: String| Some(FirehoseError::InvalidEvent(m));
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let Some(object) = value.as_object() else {
        return invalid(format!(
            "expected a JSON object, found {}",
            json_kind(&value)
        ));
    };
    let records = match object.get("records") {
        None | Some(Value::Null) => return invalid("no `records` array".into()),
        Some(Value::Array(records)) => records,
        Some(other) => return invalid(format!("`records` is {}, not an array", json_kind(other))),
    };
    for (index, record) in records.iter().enumerate() {
        let Some(record) = record.as_object() else {
            return invalid(format!(
                "records[{index}] is {}, not an object",
                json_kind(record)
            ));
        };
        match record.get("recordId") {
            None | Some(Value::Null) => return Some(FirehoseError::MissingRecordId { index }),
            Some(Value::String(_)) => {}
            Some(other) => {
                return invalid(format!(
                    "records[{index}].recordId is {}, not a string",
                    json_kind(other)
                ));
            }
        }
    }
    None
}

/// The Kinesis metadata when it has the documented shape, else `None`.
fn lenient_metadata<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<KinesisRecordMetadata>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// `data` as a string whatever its JSON type: `null` becomes empty and other values
/// their JSON text, so one bad record fails alone (see [`FirehoseRecord::data`]).
fn lenient_data<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Answers a Firehose data-transformation event (the JSON bytes of the Lambda
/// input): returns the response JSON (at most `max_response_bytes` long, no
/// trailing newline) and its counters. `on_failure` is called, in input order, for
/// every record answered `ProcessingFailed` because it is bad (not for records
/// failed for size); see the [module documentation](self) for the rules.
pub fn respond(
    event: &[u8],
    transformer: &Transformer,
    max_response_bytes: usize,
    mut on_failure: impl FnMut(&FailedRecord<'_>),
) -> Result<(Vec<u8>, FirehoseStats), FirehoseError> {
    const OPEN: &[u8] = b"{\"records\":[";
    const CLOSE: &[u8] = b"]}";
    let parsed = FirehoseEvent::from_slice(event)?;
    let records = &parsed.records;
    let mut stats = FirehoseStats {
        records: records.len() as u64,
        bytes_in: event.len() as u64,
        ..FirehoseStats::default()
    };

    // The fallback answer of every record, and the size of the response made of them.
    let echoes: Vec<Vec<u8>> = records
        .iter()
        .map(|r| answer(&r.record_id, RecordResult::ProcessingFailed, &r.data))
        .collect();
    let mut total = OPEN.len()
        + CLOSE.len()
        + records.len().saturating_sub(1)
        + echoes.iter().map(Vec::len).sum::<usize>();
    if total > max_response_bytes {
        return Err(FirehoseError::ResponseTooLarge {
            needed: total,
            limit: max_response_bytes,
        });
    }

    // Transform each record; upgrade it to its Ok answer while the response fits.
    let mut chosen: Vec<Option<Vec<u8>>> = Vec::with_capacity(records.len());
    let mut transformed = Vec::new();
    let mut over_limit = false;
    for (index, (record, echo)) in records.iter().zip(&echoes).enumerate() {
        let decoded = STANDARD
            .decode(record.data.as_bytes())
            .map_err(|e| RecordError::Base64(e.to_string()));
        let outcome = decoded
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|bytes| transform_data(transformer, bytes, &mut transformed));
        match outcome {
            Ok(None) => {
                // A control message: answered `Dropped`, with its data as received.
                let dropped = answer(&record.record_id, RecordResult::Dropped, &record.data);
                total = total - echo.len() + dropped.len();
                stats.dropped += 1;
                chosen.push(Some(dropped));
            }
            Ok(Some(lines)) => {
                let ok = answer(
                    &record.record_id,
                    RecordResult::Ok,
                    &STANDARD.encode(&transformed),
                );
                let with_ok = total - echo.len() + ok.len();
                if !over_limit && with_ok <= max_response_bytes {
                    total = with_ok;
                    stats.ok += 1;
                    stats.lines_out += lines;
                    chosen.push(Some(ok));
                } else {
                    over_limit = true;
                    stats.failed_for_size += 1;
                    chosen.push(None);
                }
            }
            Err(error) => {
                stats.failed += 1;
                on_failure(&FailedRecord {
                    index,
                    record_id: &record.record_id,
                    data: &record.data,
                    decoded: decoded.as_deref().ok(),
                    error: &error,
                });
                chosen.push(None);
            }
        }
    }

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(OPEN);
    for (i, (ok, echo)) in chosen.iter().zip(&echoes).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(ok.as_deref().unwrap_or(echo));
    }
    out.extend_from_slice(CLOSE);
    debug_assert_eq!(out.len(), total);
    stats.bytes_out = out.len() as u64;
    Ok((out, stats))
}

/// One serialised response record.
fn answer(record_id: &str, result: RecordResult, data: &str) -> Vec<u8> {
    let record = ResponseRecord {
        record_id: Cow::Borrowed(record_id),
        result,
        data: Cow::Borrowed(data),
    };
    let mut out = Vec::with_capacity(record_id.len() + data.len() + 64);
    // Serialising strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &record);
    out
}

/// Transforms every non-blank line of a decoded payload into `out` (cleared first);
/// returns the number of lines (`None` for a CloudWatch Logs control message, which is
/// dropped), or the first line's error. A CloudWatch Logs subscription payload (gzip
/// or not, see [`crate::parse::cloudwatch`]) gives its log events' messages as the lines;
/// other gzip data is decompressed.
fn transform_data(
    transformer: &Transformer,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<u64>, RecordError> {
    use crate::parse::cloudwatch::{self, Unpacked};
    // Firehose's own limit on a record is 1,000 KiB; a payload decompresses to a few
    // times that at most.
    const UNPACKED_LIMIT: usize = 64 << 20;
    let decompressed;
    let data = match cloudwatch::unpack(data, UNPACKED_LIMIT) {
        None => data,
        Some(Err(e)) => return Err(RecordError::Payload(e)),
        Some(Ok(Unpacked::Decompressed(bytes))) => {
            decompressed = bytes;
            &decompressed[..]
        }
        Some(Ok(Unpacked::Payload(p))) if p.is_control() => return Ok(None),
        Some(Ok(Unpacked::Payload(p))) => {
            out.clear();
            for (i, event) in p.log_events.iter().enumerate() {
                transformer
                    .transform_line(event.message.as_bytes(), out)
                    .map_err(|error| RecordError::Line {
                        line: i as u64 + 1,
                        error,
                    })?;
            }
            if p.log_events.is_empty() {
                return Err(RecordError::Empty);
            }
            return Ok(Some(p.log_events.len() as u64));
        }
    };
    out.clear();
    let mut lines = 0;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        transformer
            .transform_line(line, out)
            .map_err(|error| RecordError::Line {
                line: i as u64 + 1,
                error,
            })?;
        lines += 1;
    }
    if lines == 0 {
        return Err(RecordError::Empty);
    }
    Ok(Some(lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureMap;
    use serde_json::json;

    const LINE_A: &str = r#"{"timestamp":1735732800123,"action":"ALLOW","httpSourceName":"CF","httpRequest":{"country":"US","httpMethod":"GET"}}"#;
    const LINE_B: &str = r#"{"timestamp":1669682102.5,"action":"BLOCK","httpSourceName":"ALB","httpRequest":{"country":"XX","httpMethod":"DELETE"}}"#;

    fn transformer() -> Transformer {
        Transformer::new(FeatureMap::default())
    }

    fn b64(s: impl AsRef<[u8]>) -> String {
        STANDARD.encode(s)
    }

    fn event(records: &[(&str, String)]) -> Vec<u8> {
        let records: Vec<Value> = records
            .iter()
            .map(|(id, data)| {
                json!({"recordId": id, "approximateArrivalTimestamp": 1735732801000_i64, "data": data})
            })
            .collect();
        json!({
            "invocationId": "invocationIdExample",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/aws-waf-logs-example",
            "region": "us-east-1",
            "records": records,
        })
        .to_string()
        .into_bytes()
    }

    /// Responds with the default limit; returns the response and the failures.
    fn run(
        event: &[u8],
    ) -> (
        FirehoseResponse<'static>,
        FirehoseStats,
        Vec<(String, String)>,
    ) {
        run_with_limit(event, DEFAULT_MAX_RESPONSE_BYTES).unwrap()
    }

    type Run = (
        FirehoseResponse<'static>,
        FirehoseStats,
        Vec<(String, String)>,
    );

    fn run_with_limit(event: &[u8], limit: usize) -> Result<Run, FirehoseError> {
        let mut failed = Vec::new();
        let (body, stats) = respond(event, &transformer(), limit, |f| {
            failed.push((f.record_id.to_string(), f.error.to_string()));
        })?;
        assert!(body.len() <= limit);
        assert_eq!(body.len() as u64, stats.bytes_out);
        let response: FirehoseResponse<'static> = serde_json::from_slice(&body).unwrap();
        assert_eq!(response.records.len() as u64, stats.records);
        assert_eq!(
            stats.ok + stats.failed + stats.failed_for_size + stats.dropped,
            stats.records
        );
        Ok((response, stats, failed))
    }

    fn transformed(lines: &[&str]) -> Vec<u8> {
        let t = transformer();
        let mut out = Vec::new();
        for line in lines {
            t.transform_line(line.as_bytes(), &mut out).unwrap();
        }
        out
    }

    fn decoded(r: &ResponseRecord<'_>) -> Vec<u8> {
        STANDARD.decode(r.data.as_bytes()).unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn cloudwatch_logs_payloads_are_unpacked_and_control_messages_dropped() {
        let data = json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012",
            "logGroup": "aws-waf-logs-example", "logStream": "s", "subscriptionFilters": ["f"],
            "logEvents": [
                {"id": "1", "timestamp": 1735732800123_i64, "message": LINE_A},
                {"id": "2", "timestamp": 1735732800124_i64, "message": LINE_B}
            ]
        })
        .to_string();
        let control = json!({
            "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
            "logStream": "", "subscriptionFilters": [],
            "logEvents": [{"id": "", "timestamp": 1735732800000_i64,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]
        })
        .to_string();
        let bad = json!({"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "message": "not json"}]})
            .to_string();
        let gz = gzip(data.as_bytes());
        let (response, stats, failed) = run(&event(&[
            ("data", b64(&gz)),
            ("control", b64(gzip(control.as_bytes()))),
            ("plain", b64(&data)),
            ("cut", b64(&gz[..gz.len() / 2])),
            ("bad", b64(gzip(bad.as_bytes()))),
            (
                "lines",
                b64(gzip(format!("{LINE_A}\n{LINE_B}\n").as_bytes())),
            ),
        ]));
        assert_eq!(
            (stats.ok, stats.dropped, stats.failed, stats.lines_out),
            (3, 1, 2, 6)
        );
        let results: Vec<RecordResult> = response.records.iter().map(|r| r.result).collect();
        assert_eq!(
            results,
            [
                RecordResult::Ok,
                RecordResult::Dropped,
                RecordResult::Ok,
                RecordResult::ProcessingFailed,
                RecordResult::ProcessingFailed,
                RecordResult::Ok
            ]
        );
        let both = transformed(&[LINE_A, LINE_B]);
        for i in [0, 2, 5] {
            assert_eq!(decoded(&response.records[i]), both);
        }
        assert!(failed[0].1.contains("does not decompress"), "{failed:?}");
        assert!(
            failed[1].1.starts_with("line 1: invalid JSON"),
            "{failed:?}"
        );
    }

    #[test]
    fn ok_records_decode_to_what_transform_line_gives() {
        let (response, stats, failed) = run(&event(&[("a", b64(LINE_A)), ("b", b64(LINE_B))]));
        assert!(failed.is_empty());
        assert_eq!((stats.ok, stats.failed, stats.lines_out), (2, 0, 2));
        for (r, (id, line)) in response.records.iter().zip([("a", LINE_A), ("b", LINE_B)]) {
            assert_eq!(r.record_id, id);
            assert_eq!(r.result, RecordResult::Ok);
            let data = decoded(r);
            assert_eq!(data, transformed(&[line]));
            assert_eq!(data.last(), Some(&b'\n'));
        }
        let b: Value = serde_json::from_slice(&decoded(&response.records[1])).unwrap();
        assert_eq!(b["timestamp"], 1_669_682_102_500_i64);
        assert_eq!(
            (b["UNK_country"].as_u64(), b["B_action"].as_u64()),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn a_trailing_newline_in_data_is_not_a_second_record() {
        let (response, stats, _) = run(&event(&[("a", b64(format!("{LINE_A}\r\n")))]));
        assert_eq!(stats.lines_out, 1);
        assert_eq!(decoded(&response.records[0]), transformed(&[LINE_A]));
    }

    #[test]
    fn bad_records_fail_with_their_original_data() {
        let bad = [
            (
                "base64",
                "not base64!".to_string(),
                "data is not valid base64",
            ),
            (
                "array",
                b64("[1,2]"),
                "line 1: not a JSON object (found an array)",
            ),
            ("string", b64("\"hello\""), "line 1: not a JSON object"),
            ("json", b64("{\"timestamp\":1"), "line 1: invalid JSON"),
            (
                "ts",
                b64(r#"{"timestamp":"noon","action":"ALLOW"}"#),
                "line 1: unparsable timestamp",
            ),
            (
                "no-ts",
                b64(r#"{"action":"ALLOW"}"#),
                "line 1: missing timestamp",
            ),
            (
                "utf8",
                b64(b"{\"timestamp\":1,\"a\":\"\xff\"}"),
                "line 1: invalid UTF-8",
            ),
            ("empty", String::new(), "data holds no record"),
            ("blank", b64("\n \r\n"), "data holds no record"),
        ];
        let records: Vec<(&str, String)> = bad.iter().map(|(id, d, _)| (*id, d.clone())).collect();
        let (response, stats, failed) = run(&event(&records));
        assert_eq!(
            (stats.ok, stats.failed, stats.failed_for_size),
            (0, bad.len() as u64, 0)
        );
        assert_eq!(failed.len(), bad.len());
        for ((r, (id, data, reason)), (failed_id, failed_reason)) in
            response.records.iter().zip(&bad).zip(&failed)
        {
            assert_eq!(r.record_id, *id);
            assert_eq!(failed_id, id);
            assert_eq!(r.result, RecordResult::ProcessingFailed);
            assert_eq!(r.data, *data, "{id}: data must be echoed as it came");
            assert!(failed_reason.starts_with(reason), "{id}: {failed_reason}");
        }
    }

    #[test]
    fn mixed_batch_keeps_order_and_record_ids() {
        let records = [
            ("r1", b64(LINE_A)),
            ("r2", b64("{\"timestamp\":1")),
            ("r3", b64(LINE_B)),
            ("r4", "%%%".to_string()),
            ("r5", b64(LINE_A)),
            // Firehose never sends duplicates; each occurrence is still answered.
            ("r3", b64("{}")),
        ];
        let (response, stats, failed) = run(&event(&records));
        let ids: Vec<&str> = response
            .records
            .iter()
            .map(|r| r.record_id.as_ref())
            .collect();
        assert_eq!(ids, ["r1", "r2", "r3", "r4", "r5", "r3"]);
        let results: Vec<RecordResult> = response.records.iter().map(|r| r.result).collect();
        use RecordResult::{Ok, ProcessingFailed as F};
        assert_eq!(results, [Ok, F, Ok, F, Ok, F]);
        assert_eq!((stats.ok, stats.failed), (3, 3));
        let failed_ids: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(failed_ids, ["r2", "r4", "r3"]);
        assert_eq!(decoded(&response.records[0]), transformed(&[LINE_A]));
        assert_eq!(decoded(&response.records[2]), transformed(&[LINE_B]));
        assert_eq!(decoded(&response.records[4]), transformed(&[LINE_A]));
        assert_eq!(response.records[1].data, records[1].1);
        assert_eq!(response.records[5].data, records[5].1);
    }

    #[test]
    fn kinesis_source_events_parse() {
        let event = json!({
            "invocationId": "invocationIdExample",
            "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/waf-logs",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/aws-waf-logs-example",
            "region": "us-east-1",
            "records": [{
                "recordId": "49546986683135544286507457936321625675700192471156785154",
                "approximateArrivalTimestamp": 1495072949453_i64,
                "kinesisRecordMetadata": {
                    "sequenceNumber": "49545115243490985018280067714973144582180062593244200961",
                    "subsequenceNumber": 0,
                    "partitionKey": "partitionKey-03",
                    "shardId": "shardId-000000000000",
                    "approximateArrivalTimestamp": 1495072949453_i64
                },
                "data": b64(LINE_A)
            }, {
                "recordId": "49546986683135544286507457936321625675700192471156785155",
                "kinesisRecordMetadata": {
                    "sequenceNumber": "49545115243490985018280067714973144582180062593244200962",
                    "subsequenceNumber": "",
                    "partitionKey": "partitionKey-04",
                    "shardId": "shardId-000000000001",
                    "approximateArrivalTimestamp": "2017-05-18T02:02:29.453Z"
                },
                "data": b64(LINE_B)
            }]
        })
        .to_string();
        let parsed = FirehoseEvent::from_slice(event.as_bytes()).unwrap();
        assert_eq!(
            parsed.source_kinesis_stream_arn.as_deref(),
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/waf-logs")
        );
        let meta = parsed.records[0].kinesis_record_metadata.as_ref().unwrap();
        assert_eq!(meta.shard_id.as_deref(), Some("shardId-000000000000"));
        assert_eq!(meta.partition_key.as_deref(), Some("partitionKey-03"));
        let (response, stats, _) = run(event.as_bytes());
        assert_eq!((stats.ok, stats.failed), (2, 0));
        assert_eq!(decoded(&response.records[1]), transformed(&[LINE_B]));
    }

    #[test]
    fn multi_line_records_are_transformed_line_by_line_or_fail_whole() {
        let good = format!("{LINE_A}\n\n{LINE_B}\n");
        let bad = format!("{LINE_A}\n{{\"action\":\"ALLOW\"}}\n{LINE_B}");
        let (response, stats, failed) = run(&event(&[("good", b64(&good)), ("bad", b64(&bad))]));
        assert_eq!((stats.ok, stats.failed, stats.lines_out), (1, 1, 2));
        assert_eq!(
            decoded(&response.records[0]),
            transformed(&[LINE_A, LINE_B])
        );
        assert_eq!(response.records[1].result, RecordResult::ProcessingFailed);
        assert_eq!(response.records[1].data, b64(&bad));
        assert_eq!(
            failed,
            [("bad".to_string(), "line 2: missing timestamp".to_string())]
        );
    }

    #[test]
    fn failed_records_become_dead_letters() {
        let bad = format!("{LINE_A}\n{{\"timestamp\":\"noon\"}}");
        let records = [("m", b64(&bad)), ("x", "!!".to_string()), ("e", b64(" "))];
        let mut letters = Vec::new();
        respond(
            &event(&records),
            &transformer(),
            DEFAULT_MAX_RESPONSE_BYTES,
            |f| {
                let source = format!("firehose:{}", f.record_id);
                f.dead_letter(&source).write_ndjson(&mut letters);
            },
        )
        .unwrap();
        let letters: Vec<Value> = letters
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(letters.len(), 3);
        assert_eq!(letters[0]["source"], "firehose:m");
        assert_eq!(letters[0]["line"], 2);
        assert_eq!(letters[0]["raw"], bad.as_str());
        assert!(
            letters[0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("unparsable timestamp")
        );
        assert_eq!(letters[1]["source"], "firehose:x");
        assert_eq!(letters[1]["raw"], "!!");
        assert!(
            letters[1]["reason"]
                .as_str()
                .unwrap()
                .starts_with("data is not valid base64")
        );
        assert_eq!(letters[2]["raw"], " ");
        assert_eq!(
            letters[2]["reason"],
            "data holds no record (empty or blank)"
        );
    }

    #[test]
    fn size_limit_fails_the_rest_with_original_data() {
        let records: Vec<(String, String)> = (0..10)
            .map(|i| {
                (
                    format!("id-{i}"),
                    b64(if i % 2 == 0 { LINE_A } else { LINE_B }),
                )
            })
            .collect();
        let refs: Vec<(&str, String)> = records
            .iter()
            .map(|(id, d)| (id.as_str(), d.clone()))
            .collect();
        let event = event(&refs);
        let (full, full_stats, _) = run(&event);
        assert_eq!(full_stats.ok, 10);
        let full_len = full_stats.bytes_out as usize;
        // Exactly the full response fits; one byte less does not.
        let (_, stats, _) = run_with_limit(&event, full_len).unwrap();
        assert_eq!(stats.ok, 10);
        let (response, stats, failed) = run_with_limit(&event, full_len - 1).unwrap();
        assert!(
            failed.is_empty(),
            "records failed for size are not bad records"
        );
        assert_eq!((stats.ok, stats.failed_for_size), (9, 1));
        assert_eq!(response.records[9].result, RecordResult::ProcessingFailed);
        assert_eq!(response.records[9].data, records[9].1);
        // Tighter limits: a prefix is delivered, the rest echoed, and every answer fits.
        let echo_len = b"{\"records\":[]}".len()
            + 9
            + records
                .iter()
                .map(|(id, data)| answer(id, RecordResult::ProcessingFailed, data).len())
                .sum::<usize>();
        assert!(echo_len < full_len);
        let gap = full_len - echo_len;
        for limit in [
            echo_len,
            echo_len + gap / 10,
            echo_len + gap / 2,
            full_len - 200,
        ] {
            let (response, stats, _) = run_with_limit(&event, limit).unwrap();
            assert!(stats.failed_for_size > 0, "{limit}");
            if limit == echo_len {
                assert_eq!(stats.ok, 0);
            }
            let first_failed = stats.ok as usize;
            for (i, (r, (id, data))) in response.records.iter().zip(&records).enumerate() {
                assert_eq!(r.record_id, id.as_str());
                if i < first_failed {
                    assert_eq!(r.result, RecordResult::Ok);
                    assert_eq!(r, &full.records[i]);
                } else {
                    assert_eq!(r.result, RecordResult::ProcessingFailed);
                    assert_eq!(r.data, data.as_str());
                }
            }
        }
        // Not even the echo fits: an error, not an oversized response.
        assert_eq!(
            run_with_limit(&event, echo_len - 1).unwrap_err(),
            FirehoseError::ResponseTooLarge {
                needed: echo_len,
                limit: echo_len - 1
            }
        );
    }

    #[test]
    fn the_echo_response_of_a_firehose_event_is_smaller_than_the_event() {
        let event = event(&[("a", b64(LINE_A)), ("b", "bad".into()), ("c", b64(LINE_B))]);
        let (response, stats, _) = run_with_limit(&event, event.len()).unwrap();
        assert_eq!(response.records.len(), 3);
        assert!(stats.bytes_out as usize <= event.len());
    }

    #[test]
    fn malformed_events_are_errors() {
        let t = transformer();
        let err = |input: &str| {
            respond(input.as_bytes(), &t, DEFAULT_MAX_RESPONSE_BYTES, |_| {
                panic!("no record is answered")
            })
            .unwrap_err()
        };
        assert!(matches!(err(""), FirehoseError::NotJson(_)));
        assert!(matches!(err("not json"), FirehoseError::NotJson(_)));
        assert!(matches!(err("{\"records\":[}"), FirehoseError::NotJson(_)));
        let e = err("[1]");
        assert_eq!(
            e.to_string(),
            "not a Firehose data-transformation event: expected a JSON object, found an array"
        );
        let e = err("{\"invocationId\":\"x\"}");
        assert_eq!(e, FirehoseError::InvalidEvent("no `records` array".into()));
        let e = err("{\"records\":{}}");
        assert!(e.to_string().contains("`records` is an object"), "{e}");
        let e = err(r#"{"records":[{"recordId":"a","data":""},{"data":"e30="}]}"#);
        assert_eq!(e, FirehoseError::MissingRecordId { index: 1 });
        assert!(e.to_string().contains("records[1] has no recordId"));
        let e = err(r#"{"records":[{"recordId":7,"data":""}]}"#);
        assert!(
            e.to_string().contains("records[0].recordId is a number"),
            "{e}"
        );
        let e = err(r#"{"records":["a"]}"#);
        assert!(e.to_string().contains("records[0] is a string"), "{e}");
    }

    #[test]
    fn a_record_without_usable_data_fails_alone() {
        let good = STANDARD.encode(r#"{"timestamp":1576280412771,"action":"ALLOW"}"#);
        let event = format!(
            r#"{{"records":[{{"recordId":"1","data":null}},{{"recordId":"2"}},{{"recordId":"3","data":5}},{{"recordId":"4","data":{{"a":1}}}},{{"recordId":"5","data":"{good}","kinesisRecordMetadata":3}},{{"recordId":"6","data":"{good}"}}]}}"#
        );
        let mut failed = Vec::new();
        let (body, stats) = respond(event.as_bytes(), &transformer(), 6_000_000, |f| {
            failed.push((f.record_id.to_string(), f.error.to_string()));
        })
        .unwrap();
        let response: Value = serde_json::from_slice(&body).unwrap();
        let results: Vec<(&str, &str)> = response["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["recordId"].as_str().unwrap(),
                    r["result"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            results,
            [
                ("1", "ProcessingFailed"),
                ("2", "ProcessingFailed"),
                ("3", "ProcessingFailed"),
                ("4", "ProcessingFailed"),
                ("5", "Ok"),
                ("6", "Ok"),
            ]
        );
        assert_eq!((stats.ok, stats.failed), (2, 4));
        assert!(failed[0].1.contains("no record"), "{failed:?}");
        assert!(failed[2].1.contains("base64"), "{failed:?}");
        assert_eq!(response["records"][2]["data"], "5");
    }

    #[test]
    fn an_empty_batch_has_an_empty_answer() {
        let (body, stats) = respond(br#"{"records":[]}"#, &transformer(), 100, |_| {}).unwrap();
        assert_eq!(body, br#"{"records":[]}"#);
        assert_eq!(stats.records, 0);
    }
}
