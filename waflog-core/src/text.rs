//! Text a terminal may show: record-derived strings are escaped before they enter
//! human-readable output, so a hostile record cannot move the cursor, retitle the
//! window, ring the bell or reorder the text (JSON outputs are escaped by serde).

use std::borrow::Cow;

/// True for characters that must not reach a terminal raw: C0 and C1 controls
/// (ESC, BEL, CR, LF, TAB, ...), DEL, the line and paragraph separators U+2028 and
/// U+2029, and the bidirectional formatting characters (U+061C, U+200E, U+200F,
/// U+202A to U+202E, U+2066 to U+2069).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Escapes every [`is_unsafe`] character of a single-line value as `\u{..}` (as
/// Rust's `{:?}` does: ESC becomes `\u{1b}`); other text is returned unchanged.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// [`escape_control`] for multi-line text that this program laid out itself: line
/// feeds are kept, every other unsafe character is escaped.
pub fn escape_control_lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_unsafe(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `value` as compact JSON in which every [`is_unsafe`] character is a
/// `\uXXXX` escape: serde escapes only those below U+0020, so DEL, the C1 controls
/// and the bidirectional characters of records would otherwise reach a terminal
/// raw when results or dead letters are printed. The JSON means the same.
pub fn to_json_writer<W: std::io::Write, T: serde::Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(writer, SafeFormatter);
    value.serialize(&mut ser)
}

/// serde_json's compact formatter, with [`is_unsafe`] characters escaped.
struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        write_escaped(writer, fragment, is_unsafe)
    }

    /// Raw JSON copied as it is (a `RawValue`): its unsafe characters can only be
    /// inside its strings (outside them JSON allows only spaces, tabs and line
    /// breaks, which stay), where the escape means the same.
    fn write_raw_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        write_escaped(writer, fragment, |c| {
            is_unsafe(c) && !matches!(c, '\t' | '\n' | '\r')
        })
    }
}

/// Writes `fragment` with the characters `escape` picks as `\uXXXX`.
fn write_escaped<W: ?Sized + std::io::Write>(
    writer: &mut W,
    fragment: &str,
    escape: impl Fn(char) -> bool,
) -> std::io::Result<()> {
    // ASCII has no unsafe character but DEL (serde_json escapes the C0 controls
    // of strings itself): most fragments are written whole.
    if fragment.bytes().all(|b| b < 0x7f) {
        return writer.write_all(fragment.as_bytes());
    }
    let mut start = 0;
    for (i, c) in fragment.char_indices() {
        if escape(c) {
            writer.write_all(&fragment.as_bytes()[start..i])?;
            // Every unsafe character is in the Basic Multilingual Plane.
            write!(writer, "\\u{:04x}", u32::from(c))?;
            start = i + c.len_utf8();
        }
    }
    writer.write_all(&fragment.as_bytes()[start..])
}

/// FNV-1a, 64 bits: stable across platforms and versions (unlike std's hasher).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xFF;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Serde of an `f64` that may not be finite: JSON writes NaN and infinities as
/// `null`, read back as NaN, so a saved state with one still loads.
pub(crate) mod lenient_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// A number as a reader expects it: integers without a fraction, others to 2
/// decimals.
pub(crate) fn num(x: f64) -> String {
    decimals(x, 2, false)
}

/// Integers without a fraction, others to `places` decimals (with `trim`, their
/// trailing zeros dropped: `0.25`, not `0.250`).
pub(crate) fn decimals(x: f64, places: usize, trim: bool) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let s = format!("{x:.places$}");
    if trim && s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_numbers() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.5), "0.50");
        assert_eq!(decimals(0.25, 3, true), "0.25");
        assert_eq!(decimals(2.0004, 3, true), "2");
        assert_eq!(decimals(-1.5, 3, true), "-1.5");
        assert_eq!(decimals(f64::NAN, 3, true), "NaN");
        assert_eq!(decimals(f64::INFINITY, 2, false), "inf");
    }

    #[test]
    fn json_output_escapes_what_serde_leaves_raw() {
        let v = serde_json::json!({"uri": "/a\u{7f}b\u{9b}c\u{202e}d\u{1b}e", "n": 1});
        let mut out = Vec::new();
        to_json_writer(&mut out, &v).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, r#"{"uri":"/a\u007fb\u009bc\u202ed\u001be","n":1}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn escapes_controls_and_bidi() {
        assert_eq!(escape_control("/login"), "/login");
        assert!(matches!(escape_control("/login"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"
        );
        assert_eq!(escape_control("a\nb\tc\u{9b}"), "a\\u{a}b\\u{9}c\\u{9b}");
        assert_eq!(
            escape_control("x\u{202e}y\u{2028}z\u{2066}"),
            "x\\u{202e}y\\u{2028}z\\u{2066}"
        );
        assert_eq!(escape_control_lines("a\nb\u{7f}"), "a\nb\\u{7f}");
        assert_eq!(escape_control("é ü 日本"), "é ü 日本");
    }
}
