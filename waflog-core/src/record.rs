//! The input contract: what counts as a WAF log record, the same for every command
//! that reads records (`transform`, `detect`, and through them `report` and `eval`
//! runs over their output).
//!
//! A line is a record when all of these hold; otherwise it is dead-lettered with the
//! reason and the run goes on:
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
}
