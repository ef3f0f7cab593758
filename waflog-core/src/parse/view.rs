//! The borrowed record view: only the fields the indicators and the input contract
//! need, read from one line without allocating for plain strings; everything else in
//! the record is skipped (but still validated as JSON). The transform's fast path.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::names;

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
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
pub struct RequestView<'a> {
    /// `httpRequest.country`.
    #[serde(borrow, default)]
    pub country: Option<Cow<'a, str>>,
    /// `httpRequest.httpMethod`.
    #[serde(borrow, default, rename = "httpMethod")]
    pub http_method: Option<Cow<'a, str>>,
}

impl RecordView<'_> {
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
