//! Timestamp normalisation: everything becomes integer epoch milliseconds.
//!
//! AWS WAF writes integer epoch milliseconds. The seed's Python simulator wrote
//! `time.time()`, float epoch *seconds*, which OpenSearch then read as milliseconds
//! (its dashboards showed dates in January 1970). waflog tells the units apart by
//! magnitude. It accepts times from 2000-01-01 to 9999-12-31 (UTC) only: in that
//! era the four units occupy disjoint ranges, so no value is ambiguous, and a
//! value in none of them (epoch 0, `1.5`, a microsecond count read as milliseconds)
//! is rejected with the reason instead of becoming a wrong date:
//!
//! | value `v`                                   | read as       |
//! |---------------------------------------------|---------------|
//! | `946_684_800 <= v <= 253_402_300_799`       | seconds       |
//! | `946_684_800_000 <= v <= 253_402_300_799_999` | milliseconds |
//! | `946_684_800_000_000 <= v < 253_402_300_800_000_000` | microseconds |
//! | `v >= 946_684_800_000_000_000` (to `i64::MAX`, 2262) | nanoseconds |
//!
//! Strings holding a number are read the same way; other strings must be RFC 3339
//! (`2024-05-01T12:00:00.123Z`) or `YYYY-MM-DD HH:MM:SS[.fff]`, read as UTC, and
//! inside the same era. Negative and non-finite values are rejected.

use crate::error::SchemaError;

/// Latest accepted time: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Earliest accepted time: 2000-01-01T00:00:00Z.
pub const MIN_MS: i64 = 946_684_800_000;

const UNITS: &str = "not a time between 2000 and 9999 in seconds, milliseconds, \
                     microseconds or nanoseconds since the epoch";

/// The scale to milliseconds of a non-negative magnitude, by the unit ranges of
/// the module docs: `Some(factor)` where `ms = v * factor`.
fn unit_of(v: f64) -> Option<f64> {
    const S: (f64, f64) = (MIN_MS as f64 / 1e3, (MAX_MS + 1) as f64 / 1e3);
    if v >= S.0 && v < S.1 {
        Some(1e3)
    } else if v >= S.0 * 1e3 && v < S.1 * 1e3 {
        Some(1.0)
    } else if v >= S.0 * 1e6 && v < S.1 * 1e6 {
        Some(1e-3)
    } else if v >= S.0 * 1e9 && v < S.1 * 1e9 {
        Some(1e-6)
    } else {
        None
    }
}

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
    let factor = unit_of(v).ok_or_else(|| invalid(UNITS))?;
    let ms = (v * factor).round();
    if !(MIN_MS as f64..=MAX_MS as f64).contains(&ms) {
        return Err(invalid(UNITS));
    }
    Ok(ms as i64)
}

/// Converts an integer timestamp of unknown unit to epoch milliseconds.
pub fn from_i64(v: i64) -> Result<i64, SchemaError> {
    let invalid = |reason| SchemaError::InvalidTimestamp {
        value: v.to_string(),
        reason,
    };
    if v < 0 {
        return Err(invalid("negative"));
    }
    const S: (i64, i64) = (MIN_MS / 1000, MAX_MS / 1000);
    // Exact integer arithmetic (no detour through f64, whose 53 bits cannot hold
    // every nanosecond count).
    let ms = if (S.0..=S.1).contains(&v) {
        v * 1000
    } else if (MIN_MS..=MAX_MS).contains(&v) {
        v
    } else if v >= MIN_MS * 1000 && v / 1000 <= MAX_MS {
        v / 1000 + i64::from(v % 1000 >= 500)
    } else if v >= MIN_MS * 1_000_000 {
        v / 1_000_000 + i64::from(v % 1_000_000 >= 500_000)
    } else {
        return Err(invalid(UNITS));
    };
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err(invalid(UNITS));
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
    match date_time_ms(t) {
        Some(ms) => {
            if !(MIN_MS..=MAX_MS).contains(&ms) {
                return Err(SchemaError::InvalidTimestamp {
                    value: format!("{s:?}"),
                    reason: "outside 2000..9999",
                });
            }
            Ok(ms)
        }
        None => Err(SchemaError::InvalidTimestamp {
            value: format!("{s:?}"),
            reason: "neither a number nor an RFC 3339 (or `YYYY-MM-DD HH:MM:SS` UTC) date-time",
        }),
    }
}

/// An RFC 3339 date-time, or `YYYY-MM-DD HH:MM:SS[.fff]` read as UTC (metric files
/// often write UTC so), as epoch milliseconds; no range check.
fn date_time_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|dt| dt.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                .map(|n| n.and_utc().timestamp_millis())
        })
        .ok()
}

/// Parses the time column of a metric series (`waflog detect --input-format csv`):
/// as [`from_str`], and where that refuses a value for its era, by the same units
/// from 1970 on. Series are not WAF logs: their times only order and name the
/// rows, and labelled benchmarks number rows from 1 (Yahoo's A1) or start before
/// 2000, so a plain number below the era is taken as seconds since the epoch and
/// a date from 1970 on as it is.
pub fn from_str_series(s: &str) -> Result<i64, SchemaError> {
    let strict = match from_str(s) {
        Ok(ms) => return Ok(ms),
        Err(e) => e,
    };
    let t = s.trim();
    let ms = if let Ok(v) = t.parse::<f64>() {
        if !v.is_finite() || v < 0.0 {
            return Err(strict);
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
        ms.round() as i64
    } else {
        match date_time_ms(t) {
            Some(ms) => ms,
            None => return Err(strict),
        }
    };
    if (0..=MAX_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(strict)
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

/// Milliseconds as the duration text of a configuration (`1m`, `30s`, `1h 30m`).
pub fn duration_text(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
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
    fn every_unit_reaches_9999_and_nothing_is_ambiguous() {
        // 9999-12-31T23:59:00Z in each unit reads back as that time.
        let ms = 253_402_300_740_000_i64;
        assert_eq!(from_i64(ms / 1000).unwrap(), ms);
        assert_eq!(from_i64(ms).unwrap(), ms);
        assert_eq!(from_i64(ms * 1000).unwrap(), ms);
        assert_eq!(from_f64(ms as f64).unwrap(), ms);
        assert_eq!(from_json_text("253402300740000").unwrap(), Some(ms));
        // i64::MAX nanoseconds is 2262-04-11, not 1677.
        assert_eq!(from_i64(i64::MAX).unwrap(), 9_223_372_036_855);
        assert_eq!(from_f64(i64::MAX as f64).unwrap(), 9_223_372_036_855);
        // 2000-01-01 in each unit.
        for v in [946_684_800_i64, 946_684_800_000, 946_684_800_000_000] {
            assert_eq!(from_i64(v).unwrap(), MIN_MS, "{v}");
        }
        assert_eq!(from_i64(946_684_800_000_000_000).unwrap(), MIN_MS);
    }

    #[test]
    fn implausible_times_are_rejected_with_the_reason() {
        for raw in [
            "0",
            "1.5",
            "\"1.5\"",
            "86400",
            "946684799",
            // Between the millisecond and microsecond ranges.
            "500000000000000",
            "\"1970-01-01T00:00:00Z\"",
            "\"1999-12-31 23:59:59\"",
        ] {
            let e = from_json_text(raw).unwrap_err();
            assert!(
                e.to_string().contains("2000"),
                "{raw} should be rejected naming the era: {e}"
            );
        }
    }

    #[test]
    fn series_times_keep_row_numbers_and_old_dates() {
        assert_eq!(from_str_series("1").unwrap(), 1000);
        assert_eq!(from_str_series("1420").unwrap(), 1_420_000);
        assert_eq!(
            from_str_series("1995-03-01 00:00:00").unwrap(),
            794_016_000_000
        );
        assert_eq!(
            from_str_series("2014-04-10 09:00:00").unwrap(),
            1_397_120_400_000
        );
        for bad in ["-1", "yesterday", "NaN", ""] {
            assert!(from_str_series(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_check() {
        assert!(is_canonical("1576280412771", 1_576_280_412_771));
        assert!(!is_canonical("1576280412.771", 1_576_280_412_771));
    }
}
