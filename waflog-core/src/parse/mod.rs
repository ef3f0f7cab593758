//! Parse: the first stage of the flow, and the one place that turns input into
//! records. Everything that reads a record's fields goes through here:
//!
//! - [`lines`]: block-wise splitting of any reader into records (JSON lines,
//!   concatenated objects as Firehose writes them, arrays, pretty-printed records),
//!   with a length limit and the byte offset of each;
//! - [`cloudwatch`]: records wrapped by CloudWatch Logs (subscription payloads,
//!   export lines);
//! - [`view`]: the borrowed [`view::RecordView`] of the fields the indicators need
//!   (the transform's fast path) and [`view::StatusValue`];
//! - `fields`: the fields a detector configuration names, by dotted path
//!   (`httpRequest.clientIp`, `labels[].name`), for the detection engine;
//! - [`schema`]: the whole typed AWS WAF v2 record, [`schema::WafLog`];
//! - [`raw`]: an object's members as borrowed raw JSON, for writers of other shapes;
//! - [`csv`]: metric rows (`timestamp,value...`) for `detect --input-format csv`;
//! - [`event_time`] and [`FieldText`]: one field of a line, for merging inputs in
//!   event time and for Kinesis partition keys.
//!
//! # The input contract
//!
//! What counts as a WAF log record is the same for every command that reads records
//! (`transform`, `detect`, and through them `report` and `eval` runs over their
//! output). A line is a record when all of these hold; otherwise it is dead-lettered
//! ([`DeadLetter`]) with the reason and the run goes on:
//! - it is UTF-8 and, once a leading byte-order mark (U+FEFF) and surrounding ASCII
//!   whitespace are removed, one JSON object ([`object_text`], then a full parse);
//! - it has a `timestamp` that [`crate::timestamp`] reads as a time between 2000 and
//!   9999;
//! - none of the keys waflog reads ([`CHECKED_PATHS`], [`STATUS_PATHS`]) appears
//!   twice in its object: which of two values would count is undefined in JSON, so
//!   the record is refused rather than guessed;
//! - `httpRequest` is an object or `null`; `action`, `httpSourceName`,
//!   `httpRequest.country` and `httpRequest.httpMethod` are strings or `null`;
//! - `httpStatus` and `responseCodeSent` are integers, strings or `null`
//!   ([`check_status_json`]): `502.0`, `true` and `[502]` are refused.
//!
//! The transform checks these on its borrowed record view, the detection engine on
//! the fields it extracts; `tests/contract.rs` runs one corpus through both.

pub mod cloudwatch;
pub mod csv;
pub(crate) mod fields;
pub mod lines;
pub mod raw;
pub mod schema;
pub(crate) mod skim;
pub mod view;

use std::borrow::Cow;

use base64::Engine as _;
use serde::Serialize;

use crate::error::SchemaError;
use crate::names;

/// Paths whose keys must not repeat and whose parents must be objects.
pub const CHECKED_PATHS: [&str; 5] = [
    names::TIMESTAMP,
    names::ACTION,
    names::HTTP_SOURCE_NAME,
    "httpRequest.country",
    "httpRequest.httpMethod",
];

/// Status paths: integers, strings or `null`, not repeated.
pub const STATUS_PATHS: [&str; 2] = [names::HTTP_STATUS, names::RESPONSE_CODE_SENT];

/// The UTF-8 byte-order mark some editors and exporters put at the start of a file.
pub const BOM: &str = "\u{feff}";

/// The line as trimmed UTF-8 text that starts like a JSON object, or the reason it
/// cannot be a record (invalid UTF-8, empty, another JSON type, not JSON). A leading
/// byte-order mark is dropped.
pub fn object_text(line: &[u8]) -> Result<&str, SchemaError> {
    let text = std::str::from_utf8(line).map_err(|e| SchemaError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    let text = text.strip_prefix(BOM).unwrap_or(text).trim_ascii();
    match text.as_bytes().first() {
        Some(b'{') => Ok(text),
        Some(_) => Err(not_an_object(text)),
        None => Err(SchemaError::InvalidJson("empty line".into())),
    }
}

fn not_an_object(text: &str) -> SchemaError {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => {
            let kind = match text.as_bytes()[0] {
                b'[' => "an array",
                b'"' => "a string",
                b'n' => "null",
                b't' | b'f' => "a boolean",
                _ => "a number",
            };
            SchemaError::NotAnObject(kind)
        }
        Err(e) => SchemaError::InvalidJson(e.to_string()),
    }
}

/// Checks the raw JSON text of a status field (`path` names it in the error): an
/// integer, a string or `null`.
pub fn check_status_json(path: &str, raw: &str) -> Result<(), SchemaError> {
    let raw = raw.trim();
    let found = match raw.as_bytes().first() {
        Some(b'"') | None => return Ok(()),
        Some(b'n') if raw == "null" => return Ok(()),
        Some(b'-' | b'0'..=b'9') => {
            if raw.bytes().skip(1).all(|b| b.is_ascii_digit()) {
                return Ok(());
            }
            "a floating-point number"
        }
        Some(b't' | b'f') => "a boolean",
        Some(b'[') => "an array",
        _ => "an object",
    };
    Err(SchemaError::InvalidField(format!(
        "`{path}` is {found} ({}), expected an integer or a string status code",
        raw.chars().take(32).collect::<String>()
    )))
}

/// Tells a syntax error from a well-formed record with a field of the wrong type.
pub(crate) fn field_error(text: &str, e: serde_json::Error) -> SchemaError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            SchemaError::InvalidField(e.to_string())
        }
        _ => SchemaError::InvalidJson(e.to_string()),
    }
}

/// A line that could not be transformed, as written to the dead-letter output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter<'a> {
    /// Where the line came from (a path, `-` for stdin, later a URI).
    pub source: &'a str,
    /// 1-based line number in that source (where the record starts).
    pub line: u64,
    /// Byte offset in that source where the record starts, when known (several
    /// records may share a line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Why it was rejected.
    pub reason: String,
    /// The line as a string, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Cow<'a, str>>,
    /// The line in standard base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// Full length of the line in bytes when `raw` holds only its first part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated_from: Option<u64>,
}

impl<'a> DeadLetter<'a> {
    /// A dead letter for `bytes` (the whole line, or the prefix of a long one).
    pub fn new(source: &'a str, line: u64, reason: &SchemaError, bytes: &'a [u8]) -> Self {
        let too_long = matches!(reason, SchemaError::LineTooLong { .. });
        let mut d = DeadLetter::with_reason(source, line, reason.to_string(), bytes, too_long);
        if let SchemaError::LineTooLong { len, .. } = reason {
            d.truncated_from = Some(*len);
        }
        d
    }

    /// A dead letter for a reason that is not a schema error (an input that could
    /// not be read to its end, a document an output rejected). `cut`: `bytes` is
    /// the prefix of a longer line, so a character cut at its end is dropped
    /// rather than making the whole line base64.
    pub fn with_reason(
        source: &'a str,
        line: u64,
        reason: String,
        bytes: &'a [u8],
        cut: bool,
    ) -> Self {
        let (raw, raw_base64) = match std::str::from_utf8(bytes) {
            Ok(s) => (Some(Cow::Borrowed(s)), None),
            // A long line's prefix may end inside a character: keep the valid part as text.
            Err(e) if e.error_len().is_none() && cut => (
                Some(String::from_utf8_lossy(&bytes[..e.valid_up_to()])),
                None,
            ),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        DeadLetter {
            source,
            line,
            offset: None,
            reason,
            raw,
            raw_base64,
            truncated_from: None,
        }
    }

    /// The same dead letter with the byte offset of its record.
    pub fn at(mut self, offset: Option<u64>) -> Self {
        self.offset = offset;
        self
    }

    /// Appends this dead letter as one NDJSON line.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        // Serialising a struct of strings and integers cannot fail.
        if crate::text::to_json_writer(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
    }
}

/// A line's `timestamp` in epoch milliseconds, `None` when it has none that reads
/// as a time. AWS WAF writes `{"timestamp":<ms>,` first, which is read without
/// parsing the line (its unit found as everywhere else: seconds, milliseconds,
/// microseconds or nanoseconds); anything else goes through the JSON parser.
pub fn event_time(line: &[u8]) -> Option<i64> {
    if let Some(rest) = line.strip_prefix(b"{\"timestamp\":") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && rest.get(digits).is_some_and(|&b| b == b',' || b == b'}') {
            if let Some(n) = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse::<i64>().ok())
            {
                return crate::timestamp::from_i64(n).ok();
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow, default)]
        timestamp: Option<&'a serde_json::value::RawValue>,
    }
    serde_json::from_slice::<Head<'_>>(line)
        .ok()
        .and_then(|h| h.timestamp)
        .and_then(|t| crate::timestamp::from_json_text(t.get()).ok().flatten())
}

/// Reads one field of a line as text, without parsing the rest into values (the
/// line is still validated as JSON): a non-empty string, or a number as Rust
/// writes it (`17`, `1.5`).
#[derive(Debug, Clone)]
pub struct FieldText {
    fields: fields::FieldSet,
}

impl FieldText {
    /// The field at a dotted `path` (`httpRequest.clientIp`).
    pub fn new(path: &str) -> FieldText {
        let mut fields = fields::FieldSet::new();
        fields.add(path);
        FieldText { fields }
    }

    /// The field's text in `line`; `None` when the line is not a JSON object or the
    /// field is absent, empty or not a string or number.
    pub fn read(&self, line: &[u8]) -> Option<String> {
        let text = object_text(line).ok()?;
        let mut out = Vec::with_capacity(1);
        self.fields.extract(text, &mut out).ok()?;
        match out.first()? {
            Some(fields::Scalar::Str(s)) if !s.is_empty() => Some(s.to_string()),
            Some(fields::Scalar::Num(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// Reads a record's event time and one string field (what routes it: a web ACL, a
/// partition key) in one scan of the line, which is still validated as JSON.
#[derive(Debug, Clone)]
pub struct TimedField {
    fields: fields::FieldSet,
    time: usize,
    field: usize,
}

impl TimedField {
    /// The `timestamp` and the field at a dotted `path`.
    pub fn new(path: &str) -> TimedField {
        let mut fields = fields::FieldSet::new();
        let time = fields.add("timestamp");
        let field = fields.add(path);
        TimedField {
            fields,
            time,
            field,
        }
    }

    /// Hands `f` the line's event time in epoch milliseconds (`None` when absent or
    /// not a time, read as the detectors read it) and the field's string, borrowed
    /// where the line holds it unescaped (`None` when absent, empty or not a
    /// string); `None` when the line is not a JSON object.
    pub fn with<R>(
        &self,
        line: &[u8],
        f: impl FnOnce(Option<i64>, Option<&str>) -> R,
    ) -> Option<R> {
        let text = object_text(line).ok()?;
        let mut out = Vec::with_capacity(2);
        self.fields.extract(text, &mut out).ok()?;
        let time = out
            .get(self.time)
            .and_then(|v| crate::parse::fields::timestamp_ms(v.as_ref()).ok());
        Some(match out.get(self.field) {
            Some(Some(fields::Scalar::Str(s))) if !s.is_empty() => f(time, Some(s)),
            _ => f(time, None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_and_whitespace_are_dropped() {
        assert_eq!(
            object_text(b"\xef\xbb\xbf{\"a\":1} \r").unwrap(),
            "{\"a\":1}"
        );
        assert_eq!(object_text(b"  {}").unwrap(), "{}");
        assert!(matches!(
            object_text(b"\xef\xbb\xbf[1]"),
            Err(SchemaError::NotAnObject("an array"))
        ));
    }

    #[test]
    fn statuses() {
        for ok in ["502", "\"502\"", "null", "-1", "\"n/a\""] {
            assert!(check_status_json("httpStatus", ok).is_ok(), "{ok}");
        }
        for bad in ["502.0", "5e2", "true", "[502]", "{\"code\":502}"] {
            let e = check_status_json("httpStatus", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("`httpStatus`"), "{bad}: {e}");
        }
    }

    #[test]
    fn dead_letters_keep_the_raw_line() {
        let e = SchemaError::MissingTimestamp;
        let d = DeadLetter::new("in.ndjson", 3, &e, b"{\"a\":1}");
        let mut out = Vec::new();
        d.write_ndjson(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"source":"in.ndjson","line":3,"reason":"missing timestamp","raw":"{\"a\":1}"})
        );
        let e = SchemaError::InvalidUtf8 { at: 0 };
        let d = DeadLetter::new("-", 1, &e, b"\xff\xfe");
        assert_eq!(d.raw_base64.as_deref(), Some("//4="));
        assert!(d.raw.is_none());
    }

    #[test]
    fn event_times() {
        assert_eq!(
            event_time(b"{\"timestamp\":1714521600000,\"a\":1}"),
            Some(1_714_521_600_000)
        );
        assert_eq!(
            event_time(b"{\"a\":1,\"timestamp\":1714521600007}"),
            Some(1_714_521_600_007)
        );
        assert_eq!(
            event_time(br#"{"timestamp":"2024-05-01T00:00:00Z"}"#),
            Some(1_714_521_600_000)
        );
        // The leading form takes every unit, as the parser does.
        for (head, ms) in [
            (
                &b"{\"timestamp\":1714521600,\"a\":1}"[..],
                Some(1_714_521_600_000),
            ),
            (b"{\"timestamp\":1714521600007000}", Some(1_714_521_600_007)),
            (
                b"{\"timestamp\":1714521600007000000,\"a\":1}",
                Some(1_714_521_600_007),
            ),
            (b"{\"timestamp\":0,\"a\":1}", None),
        ] {
            assert_eq!(event_time(head), ms, "{}", String::from_utf8_lossy(head));
            let moved = [&head[..1], b"\"b\":2,", &head[1..]].concat();
            assert_eq!(
                event_time(&moved),
                ms,
                "{}",
                String::from_utf8_lossy(&moved)
            );
        }
        assert_eq!(event_time(b"not json"), None);
        assert_eq!(event_time(b"{\"timestamp\":12x}"), None);
        assert_eq!(event_time(b"{\"a\":1}"), None);
    }

    #[test]
    fn field_texts() {
        let ip = FieldText::new("httpRequest.clientIp");
        assert_eq!(
            ip.read(br#"{"httpRequest":{"clientIp":"1.2.3.4"}}"#)
                .as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(ip.read(br#"{"httpRequest":{"clientIp":""}}"#), None);
        assert_eq!(ip.read(br#"{"httpRequest":{"clientIp":"1.2.3.4"}"#), None);
        assert_eq!(ip.read(b"{\"x\":1}"), None);
        let a = FieldText::new("a");
        assert_eq!(a.read(br#"{"a":17}"#).as_deref(), Some("17"));
        assert_eq!(a.read(br#"{"a":1.5}"#).as_deref(), Some("1.5"));
        assert_eq!(a.read(br#"{"a":"x\u0079"}"#).as_deref(), Some("xy"));
        assert_eq!(a.read(br#"{"a":[1]}"#), None);
    }

    #[test]
    fn timed_fields_read_the_time_and_the_field_in_one_scan() {
        let acl = TimedField::new("webaclId");
        let read = |line: &[u8]| acl.with(line, |t, s| (t, s.map(str::to_string)));
        let ms = Some(1_714_521_600_000);
        // The time wherever it is, in any unit or as text, as the detectors read it.
        for line in [
            &br#"{"timestamp":1714521600000,"webaclId":"arn:a"}"#[..],
            br#"{"webaclId":"arn:a","timestamp":1714521600}"#,
            br#"{"webaclId":"arn:a","timestamp":"2024-05-01T00:00:00Z"}"#,
            br#"{"webaclId":"arn:a","x":{"timestamp":5},"timestamp":1714521600000000000}"#,
        ] {
            assert_eq!(
                read(line),
                Some((ms, Some("arn:a".to_string()))),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(read(br#"{"webaclId":7}"#), Some((None, None)));
        assert_eq!(
            read(br#"{"timestamp":"soon","webaclId":"x"}"#),
            Some((None, Some("x".into())))
        );
        assert_eq!(read(br#"{"timestamp":1714521600000,"webaclId":"x""#), None);
        assert_eq!(read(b"[1]"), None);
    }
}
