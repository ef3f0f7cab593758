//! Timestamp normalisation: everything becomes integer epoch milliseconds.
//!
//! AWS WAF writes integer epoch milliseconds. The seed's Python simulator wrote
//! `time.time()`, float epoch *seconds*, which OpenSearch then read as milliseconds
//! (its dashboards showed dates in January 1970). waflog tells the units apart by
//! magnitude, which is unambiguous for any date between 1973 and 5138:
//!
//! | value `v` (absolute)  | read as       |
//! |-----------------------|---------------|
//! | `v < 1e11`            | seconds       |
//! | `1e11 <= v < 1e14`    | milliseconds  |
//! | `1e14 <= v < 1e17`    | microseconds  |
//! | `v >= 1e17`           | nanoseconds   |
//!
//! Strings holding a number are read the same way; other strings must be RFC 3339
//! (`2024-05-01T12:00:00.123Z`) or `YYYY-MM-DD HH:MM:SS[.fff]`, read as UTC. Negative and non-finite values are rejected, and so
//! is any time after year 9999.

use crate::error::SchemaError;

/// Latest accepted time: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Converts a numeric timestamp of unknown unit to epoch milliseconds.
pub fn from_f64(v: f64) -> Result<i64, SchemaError> {
    let invalid = |reason| SchemaError::InvalidTimestamp {
        value: v.to_string(),
        reason,
    };
    if !v.is_finite() {
        return Err(invalid("not a finite number"));
    }
    if v < 0.0 {
        return Err(invalid("negative"));
    }
    let ms = if v < 1e11 {
        v * 1e3
    } else if v < 1e14 {
        v
    } else if v < 1e17 {
        v / 1e3
    } else {
        v / 1e6
    };
    let ms = ms.round();
    if ms > MAX_MS as f64 {
        return Err(invalid("after year 9999"));
    }
    Ok(ms as i64)
}

/// Converts an integer timestamp of unknown unit to epoch milliseconds.
pub fn from_i64(v: i64) -> Result<i64, SchemaError> {
    if (100_000_000_000..100_000_000_000_000).contains(&v) {
        return Ok(v);
    }
    if v < 0 {
        return Err(SchemaError::InvalidTimestamp {
            value: v.to_string(),
            reason: "negative",
        });
    }
    // Seconds, microseconds and nanoseconds: exact integer arithmetic where it matters.
    let ms = if v < 100_000_000_000 {
        v * 1000
    } else if v < 100_000_000_000_000_000 {
        (v + 500) / 1000
    } else {
        (v + 500_000) / 1_000_000
    };
    if ms > MAX_MS {
        return Err(SchemaError::InvalidTimestamp {
            value: v.to_string(),
            reason: "after year 9999",
        });
    }
    Ok(ms)
}

/// Parses a timestamp string: a number (any unit, see the module docs) or RFC 3339.
pub fn from_str(s: &str) -> Result<i64, SchemaError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(SchemaError::InvalidTimestamp {
            value: format!("{s:?}"),
            reason: "empty string",
        });
    }
    if let Ok(i) = t.parse::<i64>() {
        return from_i64(i);
    }
    if t.bytes().all(|b| {
        b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-' || b == b'+'
    }) && let Ok(f) = t.parse::<f64>()
    {
        return from_f64(f);
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(t)
        .map(|dt| dt.timestamp_millis())
        .or_else(|_| {
            // Metric files often write UTC as `2014-04-10 09:00:00[.000000]`.
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                .map(|n| n.and_utc().timestamp_millis())
        });
    match parsed {
        Ok(ms) => {
            if !(0..=MAX_MS).contains(&ms) {
                return Err(SchemaError::InvalidTimestamp {
                    value: format!("{s:?}"),
                    reason: "outside 1970..9999",
                });
            }
            Ok(ms)
        }
        Err(_) => Err(SchemaError::InvalidTimestamp {
            value: format!("{s:?}"),
            reason: "neither a number nor an RFC 3339 (or `YYYY-MM-DD HH:MM:SS` UTC) date-time",
        }),
    }
}

/// Reads the raw JSON text of a `timestamp` value (number, string or `null`).
///
/// Returns `Ok(None)` for `null`.
pub fn from_json_text(raw: &str) -> Result<Option<i64>, SchemaError> {
    let raw = raw.trim();
    match raw.as_bytes().first() {
        None | Some(b'n') if raw == "null" || raw.is_empty() => Ok(None),
        Some(b'"') => {
            let s: std::borrow::Cow<'_, str> =
                serde_json::from_str(raw).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
            from_str(&s).map(Some)
        }
        Some(b'-' | b'0'..=b'9') => {
            if let Ok(i) = raw.parse::<i64>() {
                return from_i64(i).map(Some);
            }
            match raw.parse::<f64>() {
                Ok(f) => from_f64(f).map(Some),
                Err(_) => Err(SchemaError::InvalidTimestamp {
                    value: raw.to_string(),
                    reason: "number out of range",
                }),
            }
        }
        _ => Err(SchemaError::InvalidTimestamp {
            value: raw.chars().take(64).collect(),
            reason: "must be a number or a string",
        }),
    }
}

/// Parses a duration such as `90s`, `15m`, `2h`, `1h30m` or `0` into milliseconds
/// (interval lengths, window delays, episode offsets).
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration such as 90s, 15m or 2h ({e})"))
        .and_then(|d| i64::try_from(d.as_millis()).map_err(|_| format!("`{s}` is too long")))
}

/// Formats epoch milliseconds as RFC 3339 with millisecond precision (`...T12:00:00.123Z`).
pub fn to_rfc3339(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// True when `raw` is already the canonical integer-milliseconds text of `ms`.
pub fn is_canonical(raw: &str, ms: i64) -> bool {
    let mut buf = itoa::Buffer::new();
    raw == buf.format(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_pass_through() {
        assert_eq!(
            from_json_text("1576280412771").unwrap(),
            Some(1_576_280_412_771)
        );
    }

    #[test]
    fn seed_float_seconds_are_converted() {
        // A value from the seed's Athena table.
        assert_eq!(
            from_json_text("1669682102.123015").unwrap(),
            Some(1_669_682_102_123)
        );
        assert_eq!(
            from_json_text("1669682102").unwrap(),
            Some(1_669_682_102_000)
        );
        assert_eq!(
            from_json_text("\"1669682102.5\"").unwrap(),
            Some(1_669_682_102_500)
        );
    }

    #[test]
    fn micro_and_nanoseconds_are_converted() {
        assert_eq!(from_i64(1_669_682_102_123_456).unwrap(), 1_669_682_102_123);
        assert_eq!(
            from_i64(1_669_682_102_123_456_789).unwrap(),
            1_669_682_102_123
        );
    }

    #[test]
    fn rfc3339_strings() {
        assert_eq!(
            from_json_text("\"2022-11-30T18:11:57.150Z\"").unwrap(),
            Some(1_669_831_917_150)
        );
        assert_eq!(
            from_json_text("\"2022-11-30T19:11:57.150+01:00\"").unwrap(),
            Some(1_669_831_917_150)
        );
        assert_eq!(to_rfc3339(1_669_831_917_150), "2022-11-30T18:11:57.150Z");
    }

    #[test]
    fn space_separated_utc() {
        assert_eq!(from_str("2014-04-10 09:00:00").unwrap(), 1_397_120_400_000);
        assert_eq!(
            from_str("2014-04-10 09:00:00.250000").unwrap(),
            1_397_120_400_250
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert_eq!(from_json_text("null").unwrap(), None);
        for raw in [
            "-5",
            "\"yesterday\"",
            "\"\"",
            "true",
            "{}",
            "[1]",
            "1e400",
            "99999999999999999999999",
        ] {
            assert!(from_json_text(raw).is_err(), "{raw} should be rejected");
        }
    }

    #[test]
    fn canonical_check() {
        assert!(is_canonical("1576280412771", 1_576_280_412_771));
        assert!(!is_canonical("1576280412.771", 1_576_280_412_771));
    }
}
