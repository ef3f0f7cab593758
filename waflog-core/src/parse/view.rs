//! The borrowed record view: only the fields the indicators and the input contract
//! need, read from one line without allocating for plain strings; everything else in
//! the record is skipped (but still validated as JSON). The transform's fast path.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::names;
use crate::parse::skim::{Bail, Skim, Step};

/// A status as found in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusValue {
    /// A code in 100..=999.
    Code(u16),
    /// Present but not a status code (`""`, `"n/a"`, `42`).
    Unreadable,
}

/// A borrowed view of only the fields the indicators need; everything else in the
/// record is skipped (but still validated as JSON) by the parser.
///
/// This is what makes the transform fast: no allocation for plain strings, no
/// re-serialisation of the record.
#[derive(Debug, Default, Deserialize)]
pub struct RecordView<'a> {
    /// Raw text of `timestamp`.
    #[serde(borrow, default)]
    pub timestamp: Option<&'a RawValue>,
    /// `action`.
    #[serde(borrow, default)]
    pub action: Option<Cow<'a, str>>,
    /// `httpSourceName`.
    #[serde(borrow, default, rename = "httpSourceName")]
    pub http_source_name: Option<Cow<'a, str>>,
    /// Raw `httpStatus` (string or number).
    #[serde(borrow, default, rename = "httpStatus")]
    pub http_status: Option<&'a RawValue>,
    /// Raw `responseCodeSent`.
    #[serde(borrow, default, rename = "responseCodeSent")]
    pub response_code_sent: Option<&'a RawValue>,
    /// `httpRequest`.
    #[serde(
        borrow,
        default,
        rename = "httpRequest",
        deserialize_with = "request_object"
    )]
    pub http_request: Option<RequestView<'a>>,
    #[serde(default, rename = "K_country", deserialize_with = "present")]
    k_country: bool,
    #[serde(default, rename = "UNK_country", deserialize_with = "present")]
    unk_country: bool,
    #[serde(default, rename = "K_action", deserialize_with = "present")]
    k_action: bool,
    #[serde(default, rename = "B_action", deserialize_with = "present")]
    b_action: bool,
    #[serde(default, rename = "O_httpstatus", deserialize_with = "present")]
    o_httpstatus: bool,
    #[serde(default, rename = "B_httpstatus", deserialize_with = "present")]
    b_httpstatus: bool,
    #[serde(default, rename = "common_method", deserialize_with = "present")]
    common_method: bool,
    #[serde(default, rename = "uncommon_method", deserialize_with = "present")]
    uncommon_method: bool,
    #[serde(default, rename = "K_source", deserialize_with = "present")]
    k_source: bool,
    #[serde(default, rename = "UNK_source", deserialize_with = "present")]
    unk_source: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// `httpRequest` as an object or `null` only: serde's derived structs would also
/// take an array, positionally, which the input contract refuses.
fn request_object<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RequestView<'a>>, D::Error> {
    struct V<'a>(std::marker::PhantomData<&'a ()>);
    impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
        type Value = Option<RequestView<'a>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            RequestView::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// The `httpRequest` part of a [`RecordView`].
#[derive(Debug, Default, Deserialize)]
pub struct RequestView<'a> {
    /// `httpRequest.country`.
    #[serde(borrow, default)]
    pub country: Option<Cow<'a, str>>,
    /// `httpRequest.httpMethod`.
    #[serde(borrow, default, rename = "httpMethod")]
    pub http_method: Option<Cow<'a, str>>,
}

impl<'a> RecordView<'a> {
    /// The view of the JSON object `text` by the byte-level scanner
    /// (`parse::skim`, crate-internal), or `None` when serde_json must read the line (an
    /// error to word, an escaped string, a rare form). When it is `Some`, it is
    /// the view serde_json gives.
    pub fn skim(text: &'a str) -> Option<RecordView<'a>> {
        skim_view(text).ok()
    }
}

/// [`RecordView::skim`]; a repeated field bails, as serde's derived
/// `Deserialize` refuses it.
fn skim_view(text: &str) -> Step<RecordView<'_>> {
    let mut s = Skim::new(text)?;
    let mut v = RecordView::default();
    let mut seen = 0u32;
    s.members(1, |s, key| {
        let bit = match key {
            "timestamp" => 0,
            "action" => 1,
            "httpSourceName" => 2,
            "httpStatus" => 3,
            "responseCodeSent" => 4,
            "httpRequest" => 5,
            _ => match names::INDICATORS.iter().position(|n| *n == key) {
                Some(i) => 6 + i,
                None => return s.skip(1),
            },
        };
        if seen & (1 << bit) != 0 {
            return Err(Bail);
        }
        seen |= 1 << bit;
        match bit {
            0 => v.timestamp = raw_or_null(s)?,
            1 => v.action = s.text_or_null()?.map(Cow::Borrowed),
            2 => v.http_source_name = s.text_or_null()?.map(Cow::Borrowed),
            3 => v.http_status = raw_or_null(s)?,
            4 => v.response_code_sent = raw_or_null(s)?,
            5 => v.http_request = skim_request(s)?,
            _ => {
                s.skip(1)?;
                v.set_indicator(bit - 6);
            }
        }
        Ok(())
    })?;
    s.end()?;
    Ok(v)
}

/// A value kept raw; `null` is absent, as for serde's `Option`.
fn raw_or_null<'a>(s: &mut Skim<'a>) -> Step<Option<&'a RawValue>> {
    if s.peek()? == b'n' {
        return s.literal(b"null").map(|()| None);
    }
    let raw = s.raw(1)?;
    serde_json::from_str(raw).map(Some).map_err(|_| Bail)
}

/// `httpRequest`: an object or `null` ([`request_object`]).
fn skim_request<'a>(s: &mut Skim<'a>) -> Step<Option<RequestView<'a>>> {
    if s.peek()? == b'n' {
        return s.literal(b"null").map(|()| None);
    }
    let mut r = RequestView::default();
    let mut seen = 0u8;
    s.members(2, |s, key| {
        let bit = match key {
            "country" => 1,
            "httpMethod" => 2,
            _ => return s.skip(2),
        };
        if seen & bit != 0 {
            return Err(Bail);
        }
        seen |= bit;
        let text = s.text_or_null()?.map(Cow::Borrowed);
        if bit == 1 {
            r.country = text;
        } else {
            r.http_method = text;
        }
        Ok(())
    })?;
    Ok(Some(r))
}

impl RecordView<'_> {
    /// Marks the indicator `names::INDICATORS[i]` as present.
    fn set_indicator(&mut self, i: usize) {
        let flag = match i {
            0 => &mut self.k_country,
            1 => &mut self.unk_country,
            2 => &mut self.k_action,
            3 => &mut self.b_action,
            4 => &mut self.o_httpstatus,
            5 => &mut self.b_httpstatus,
            6 => &mut self.common_method,
            7 => &mut self.uncommon_method,
            8 => &mut self.k_source,
            _ => &mut self.unk_source,
        };
        *flag = true;
    }

    /// True when the record already carries indicator fields (it was transformed
    /// before); such records take the slow path that replaces them.
    pub fn has_indicators(&self) -> bool {
        [
            self.k_country,
            self.unk_country,
            self.k_action,
            self.b_action,
            self.o_httpstatus,
            self.b_httpstatus,
            self.common_method,
            self.uncommon_method,
            self.k_source,
            self.unk_source,
        ]
        .contains(&true)
    }

    /// The input contract's status rule ([`crate::parse::check_status_json`]).
    pub fn check_statuses(&self) -> Result<(), crate::error::SchemaError> {
        for (path, raw) in [
            (names::HTTP_STATUS, self.http_status),
            (names::RESPONSE_CODE_SENT, self.response_code_sent),
        ] {
            if let Some(raw) = raw {
                crate::parse::check_status_json(path, raw.get())?;
            }
        }
        Ok(())
    }

    /// The status to classify: `httpStatus`, else `responseCodeSent`; `None` when
    /// both are absent or `null`.
    pub fn status(&self) -> Option<StatusValue> {
        [self.http_status, self.response_code_sent]
            .into_iter()
            .flatten()
            .find(|r| r.get() != "null")
            .map(|r| raw_status(r.get()))
    }
}

impl StatusValue {
    /// Reads a status from JSON text (`"200"`, `200`) or plain text (`200`).
    pub fn from_text(raw: &str) -> StatusValue {
        raw_status(raw)
    }

    /// A status given as a JSON number: the same as [`StatusValue::from_text`] of
    /// the number's shortest text (`200` is a code; `200.5`, `-0` and `42` are not),
    /// without formatting it.
    pub fn from_number(n: f64) -> StatusValue {
        if n.fract() == 0.0 && (100.0..=999.0).contains(&n) {
            StatusValue::Code(n as u16)
        } else {
            StatusValue::Unreadable
        }
    }
}

fn raw_status(raw: &str) -> StatusValue {
    let digits = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw)
        .trim();
    match digits.parse::<u16>() {
        Ok(c) if (100..=999).contains(&c) => StatusValue::Code(c),
        _ => StatusValue::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"timestamp":1714521600000,"formatVersion":1,"action":"BLOCK","httpSourceName":"ALB","ruleGroupList":[{"ruleGroupId":"AWS#Common","terminatingRule":null}],"httpRequest":{"clientIp":"203.0.113.7","country":"FR","headers":[{"name":"Host","value":"a.example"}],"httpMethod":"GET","uri":"/"},"httpStatus":"403","responseCodeSent":null,"K_country":1,"labels":[]}"#;

    /// serde_json's view, as text.
    fn serde_view(line: &str) -> Result<String, String> {
        serde_json::from_str::<RecordView<'_>>(line)
            .map(|v| format!("{v:?}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_scanner_gives_serde_jsons_view() {
        let v = RecordView::skim(LINE).expect("a usual record is scanned");
        assert_eq!(Ok(format!("{v:?}")), serde_view(LINE));
        assert_eq!(v.timestamp.map(RawValue::get), Some("1714521600000"));
        assert_eq!(v.http_status.map(RawValue::get), Some("\"403\""));
        assert!(v.response_code_sent.is_none());
        assert_eq!(
            v.http_request.and_then(|r| r.http_method),
            Some(Cow::Borrowed("GET"))
        );
        for name in names::INDICATORS {
            let line = format!(r#"{{"timestamp":1,"{name}":null}}"#);
            let v = RecordView::skim(&line).expect("scanned");
            assert!(v.has_indicators(), "{name}");
            assert_eq!(Ok(format!("{v:?}")), serde_view(&line), "{name}");
        }
    }

    #[test]
    fn what_serde_refuses_or_decodes_is_left_to_it() {
        for line in [
            r#"{"timestamp":1,"timestamp":2}"#,
            r#"{"timestamp":1,"B_action":1,"B_action":1}"#,
            r#"{"timestamp":1,"httpRequest":{"country":"US","country":"FR"}}"#,
            r#"{"timestamp":1,"httpRequest":[1]}"#,
            r#"{"timestamp":1,"action":5}"#,
            r#"{"timestamp":1,"action":"BL\"OCK"}"#,
            r#"{"timestamp":1,"x":1,}"#,
        ] {
            assert!(RecordView::skim(line).is_none(), "{line}");
        }
    }

    /// Whenever the scanner gives a view, serde_json gives the same one: random
    /// edits of a record, fixed seed.
    #[test]
    fn random_edits_never_make_the_scanner_and_serde_disagree() {
        let alphabet = b"{}[]:,\"\\ -+.eE0123456789tfnulrs/";
        let mut scanned = 0;
        crate::parse::skim::each_random_edit(LINE, alphabet, 5, 40_000, |line| {
            if let Some(v) = RecordView::skim(line) {
                scanned += 1;
                assert_eq!(Ok(format!("{v:?}")), serde_view(line), "{line}");
            }
        });
        assert!(scanned > 2_000, "only {scanned} edits were scanned");
    }
}
