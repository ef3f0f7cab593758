//! Reading a record's fields for the [`Engine`](super::Engine), apart from the
//! engine's state, so that other threads can read records ahead of it.
//!
//! An [`Extractor`] reads the detectors' fields of a record, its event time and its
//! indicators, as [`Engine::push_line`](super::Engine::push_line) does; it is shared
//! (`Engine::extractor`) and needs only `&self`. [`Extractor::prepare`] keeps what it
//! read in a [`Prepared`] batch that borrows nothing (its texts are copied into the
//! batch's own text, so that reading them back costs no UTF-8 check), so a batch can
//! cross threads and the engine later takes each record with
//! [`Engine::push_prepared`](super::Engine::push_prepared) without parsing it again. Whatever order the batches are
//! prepared in, the engine takes their records in input order, so results are the same
//! as line by line.

use std::borrow::Cow;

use crate::error::SchemaError;
use crate::features::FeatureMap;
use crate::parse::fields::{FieldSet, Scalar};
use crate::parse::view::StatusValue;

/// Base fields the indicators are computed from, when a record does not carry them.
pub(super) const BASE_FIELDS: [&str; 6] = [
    "action",
    "httpSourceName",
    "httpStatus",
    "responseCodeSent",
    "httpRequest.country",
    "httpRequest.httpMethod",
];

/// Reads the detectors' fields, the event time and the indicators of records (see the
/// module docs).
#[derive(Debug)]
pub struct Extractor {
    pub(super) fields: FieldSet,
    pub(super) timestamp: usize,
    pub(super) base: [usize; 6],
    /// (indicator path index, which indicator in `names::INDICATORS`).
    pub(super) indicators: Vec<(usize, usize)>,
    pub(super) map: FeatureMap,
}

impl Extractor {
    /// Reads `line` (a record as [`Engine::push_line`](super::Engine::push_line)
    /// takes it) and appends what it read, or why it is not a record, to `into`.
    pub fn prepare(&self, line: &[u8], into: &mut Prepared) {
        let start = into.values.len();
        let mut values = Vec::with_capacity(self.fields.len());
        let read = crate::parse::object_text(line).and_then(|text| self.extract(text, &mut values));
        let outcome = match read {
            Ok(ts) => {
                for v in values {
                    into.values.push(Packed::of(v, &mut into.text));
                }
                Ok(ts)
            }
            Err(e) => Err(e),
        };
        into.records.push(PreparedRecord {
            len: line.len(),
            start,
            width: self.fields.len(),
            outcome,
        });
    }

    /// Extracts the detectors' fields into `local` and returns the event time.
    pub(super) fn extract<'a>(
        &self,
        text: &'a str,
        local: &mut Vec<Option<Scalar<'a>>>,
    ) -> Result<i64, SchemaError> {
        self.fields
            .extract(text, local)
            .map_err(|e| crate::parse::field_error(text, e))?;
        let ts = crate::parse::fields::timestamp_ms(local[self.timestamp].as_ref())?;
        // The same type rules as the transform, so both accept the same records.
        for (k, path) in BASE_FIELDS.iter().enumerate() {
            let ok = matches!(
                (&local[self.base[k]], *path),
                (None | Some(Scalar::Null | Scalar::Str(_)), _)
                    | (Some(_), "httpStatus" | "responseCodeSent")
            );
            if !ok {
                return Err(SchemaError::InvalidField(format!(
                    "`{path}` has the wrong type"
                )));
            }
        }
        if self.indicators.iter().any(|(i, _)| local[*i].is_none()) {
            self.fill_indicators(local);
        }
        Ok(ts)
    }

    /// Computes the indicators a raw record lacks, from its base fields.
    fn fill_indicators(&self, v: &mut [Option<Scalar<'_>>]) {
        let text = |i: usize| match &v[self.base[i]] {
            Some(Scalar::Str(s)) => Some(s.as_ref()),
            _ => None,
        };
        let status = [2, 3].into_iter().find_map(|i| match &v[self.base[i]] {
            None | Some(Scalar::Null) => None,
            Some(Scalar::Str(s)) => Some(StatusValue::from_text(s)),
            Some(Scalar::Num(n)) => Some(StatusValue::from_number(*n)),
            Some(_) => Some(StatusValue::Unreadable),
        });
        let ind = crate::features::Indicators {
            action: self.map.action(text(0)),
            source: self.map.source(text(1)),
            status: self.map.status(status),
            country: self.map.country(text(4)),
            method: self.map.method(text(5)),
        };
        for &(slot, k) in &self.indicators {
            if v[slot].is_none() {
                v[slot] = ind.value(k).map(|x| Scalar::Num(f64::from(x)));
            }
        }
    }
}

/// A value as [`Prepared`] keeps it: like [`Scalar`], with a text as its range in
/// `Prepared::text`.
#[derive(Debug, Clone)]
enum Packed {
    Absent,
    Null,
    Bool(bool),
    Num(f64),
    Text(usize, usize),
    Composite,
    /// Boxed as in [`Scalar::List`], so that a value stays three words.
    #[allow(clippy::box_collection)]
    List(Box<Vec<Scalar<'static>>>),
}

impl Packed {
    /// Packs `v`, its text appended to `text`.
    fn of(v: Option<Scalar<'_>>, text: &mut String) -> Packed {
        match v {
            None => Packed::Absent,
            Some(Scalar::Null) => Packed::Null,
            Some(Scalar::Bool(b)) => Packed::Bool(b),
            Some(Scalar::Num(n)) => Packed::Num(n),
            Some(Scalar::Composite) => Packed::Composite,
            Some(Scalar::Str(s)) => {
                let from = text.len();
                text.push_str(&s);
                Packed::Text(from, text.len())
            }
            Some(Scalar::List(list)) => {
                Packed::List(Box::new(list.into_iter().map(to_static).collect()))
            }
        }
    }

    /// The value again, its text borrowed from `text`; `None` when its range is
    /// not text there.
    fn unpack<'a>(&'a self, text: &'a str) -> Option<Option<Scalar<'a>>> {
        Some(match self {
            Packed::Absent => None,
            Packed::Null => Some(Scalar::Null),
            Packed::Bool(b) => Some(Scalar::Bool(*b)),
            Packed::Num(n) => Some(Scalar::Num(*n)),
            Packed::Composite => Some(Scalar::Composite),
            Packed::Text(a, b) => Some(Scalar::Str(Cow::Borrowed(text.get(*a..*b)?))),
            Packed::List(list) => Some(Scalar::List(Box::new(
                list.iter().map(|s| borrowed(s)).collect(),
            ))),
        })
    }
}

/// `s` with its texts owned.
fn to_static(s: Scalar<'_>) -> Scalar<'static> {
    match s {
        Scalar::Null => Scalar::Null,
        Scalar::Bool(b) => Scalar::Bool(b),
        Scalar::Num(n) => Scalar::Num(n),
        Scalar::Composite => Scalar::Composite,
        Scalar::Str(t) => Scalar::Str(Cow::Owned(t.into_owned())),
        Scalar::List(list) => Scalar::List(Box::new(list.into_iter().map(to_static).collect())),
    }
}

/// `s` with its texts borrowed from it.
fn borrowed<'a>(s: &'a Scalar<'_>) -> Scalar<'a> {
    match s {
        Scalar::Null => Scalar::Null,
        Scalar::Bool(b) => Scalar::Bool(*b),
        Scalar::Num(n) => Scalar::Num(*n),
        Scalar::Composite => Scalar::Composite,
        Scalar::Str(t) => Scalar::Str(Cow::Borrowed(t.as_ref())),
        Scalar::List(list) => Scalar::List(Box::new(list.iter().map(borrowed).collect())),
    }
}

/// One record of a [`Prepared`] batch.
#[derive(Debug, Clone)]
struct PreparedRecord {
    /// Length of the bytes it was read from.
    len: usize,
    /// Its first value in `Prepared::values`.
    start: usize,
    /// Values per record of the extractor that read it.
    width: usize,
    /// Its event time, or why it is not a record.
    outcome: Result<i64, SchemaError>,
}

/// Records read by [`Extractor::prepare`], in the order they were given; it borrows
/// nothing, so it can be made on one thread and taken on another (see the module
/// docs). Cleared and filled again, it keeps its buffers.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    records: Vec<PreparedRecord>,
    values: Vec<Packed>,
    /// The records' texts, one after another.
    text: String,
}

impl Prepared {
    /// Number of records prepared.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record has been prepared.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets the records, keeping the buffers.
    pub fn clear(&mut self) {
        self.records.clear();
        self.values.clear();
        self.text.clear();
    }

    /// Record `index`'s event time, with its values read back into `out`, or why it
    /// is not a record; `None` when there is no such record, `record` (the bytes it
    /// was prepared from) has another length, or an extractor of another field set
    /// than `width` values read it.
    pub(super) fn take<'a>(
        &'a self,
        index: usize,
        record: &[u8],
        width: usize,
        out: &mut Vec<Option<Scalar<'a>>>,
    ) -> Option<Result<i64, SchemaError>> {
        let r = self.records.get(index)?;
        if r.len != record.len() || r.width != width {
            return None;
        }
        let ts = match &r.outcome {
            Ok(ts) => *ts,
            Err(e) => return Some(Err(e.clone())),
        };
        out.clear();
        for v in self.values.get(r.start..r.start + width)? {
            out.push(v.unpack(&self.text)?);
        }
        Some(Ok(ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{AnomalyResult, DetectorSpec, Engine};

    /// The default detectors, one of them per entity of an array path (so that
    /// records have a list value).
    fn engine() -> Engine {
        let mut specs = DetectorSpec::defaults();
        let mut labels = DetectorSpec::indicator_sum("labels", "B_action");
        labels.category_field = Some("labels[].name".into());
        specs.push(labels);
        Engine::new(&specs, FeatureMap::default()).unwrap()
    }

    const LINES: [&str; 9] = [
        r#"{"timestamp":1714521600000,"action":"BLOCK","httpSourceName":"ALB","httpRequest":{"clientIp":"10.0.0.1","country":"US","httpMethod":"GET","uri":"/a"},"labels":[{"name":"x"},{"name":"y"}]}"#,
        r#"{"timestamp":"2024-05-01T00:00:01Z","action":"AL\u004cOW","httpRequest":{"clientIp":"10.0.0.\"2","country":"\u00e9","httpMethod":"POST"},"httpStatus":503}"#,
        r#"  {"timestamp":1714521602,"action":"COUNT","httpStatus":"404","K_country":1,"UNK_country":0}  "#,
        r#"{"timestamp":1714521603000,"action":{"nested":true}}"#,
        r#"{"action":"ALLOW"}"#,
        r#"{"timestamp":"yesterday"}"#,
        r#"[1,2]"#,
        r#"{"timestamp":1714521604000,"action":"ALLOW","httpRequest":{"country":"FR""#,
        r#"{"timestamp":1714521605000,"labels":[{"name":"z\n"}],"terminatingRuleId":null}"#,
    ];

    #[test]
    fn prepared_records_read_back_as_extracted() {
        let e = engine();
        let x = e.extractor();
        let mut prepared = Prepared::default();
        for line in LINES {
            x.prepare(line.as_bytes(), &mut prepared);
        }
        assert_eq!(prepared.len(), LINES.len());
        let width = x.fields.len();
        let mut ok = 0;
        for (i, line) in LINES.iter().enumerate() {
            let mut direct = Vec::new();
            let expected = crate::parse::object_text(line.as_bytes())
                .and_then(|text| x.extract(text, &mut direct));
            let mut back = Vec::new();
            let got = prepared.take(i, line.as_bytes(), width, &mut back).unwrap();
            assert_eq!(got, expected, "line {i}");
            if got.is_ok() {
                ok += 1;
                assert_eq!(back, direct, "line {i}");
            }
        }
        assert_eq!(ok, 4);
        // Texts are the batch's own, unescaped.
        assert!(prepared.text.contains("BLOCK") && prepared.text.contains("10.0.0.\"2"));
        // Bytes of another length than those prepared, or no such record: not read
        // back.
        let mut back = Vec::new();
        assert!(
            prepared
                .take(0, LINES[1].as_bytes(), width, &mut back)
                .is_none()
        );
        assert!(
            prepared
                .take(LINES.len(), b"{}", width, &mut back)
                .is_none()
        );
        assert!(
            prepared
                .take(0, LINES[0].as_bytes(), width + 1, &mut back)
                .is_none()
        );
        prepared.clear();
        assert!(prepared.is_empty() && prepared.values.is_empty() && prepared.text.is_empty());
    }

    #[test]
    fn an_engine_fed_prepared_records_gives_what_lines_give() {
        let mut lines: Vec<String> = Vec::new();
        for k in 0..600_i64 {
            let country = ["US", "DE", "ZZ", "\\u0046R"][(k % 7 % 4) as usize];
            let action = if k % 50 < 3 { "BLOCK" } else { "ALLOW" };
            lines.push(format!(
                r#"{{"timestamp":{},"action":"{action}","httpSourceName":"ALB","httpRequest":{{"clientIp":"10.0.{}.1","country":"{country}","httpMethod":"GET","uri":"/"}},"labels":[{{"name":"l{}"}}]}}"#,
                1_714_521_600_000 + k * 1_500,
                k % 5,
                k % 3
            ));
            if k % 97 == 0 {
                lines.push(LINES[(k / 97) as usize % LINES.len()].to_string());
            }
        }
        let (mut a, mut b) = (engine(), engine());
        let x = b.extractor();
        let (mut out_a, mut out_b) = (Vec::<AnomalyResult>::new(), Vec::new());
        let mut outcomes = (Vec::new(), Vec::new());
        for chunk in lines.chunks(64) {
            let mut prepared = Prepared::default();
            for line in chunk {
                x.prepare(line.as_bytes(), &mut prepared);
            }
            for (i, line) in chunk.iter().enumerate() {
                outcomes.0.push(a.push_line(line.as_bytes(), &mut out_a));
                outcomes
                    .1
                    .push(b.push_prepared(line.as_bytes(), &prepared, i, &mut out_b));
            }
        }
        a.finish(&mut out_a);
        b.finish(&mut out_b);
        assert_eq!(outcomes.0, outcomes.1);
        assert!(outcomes.0.iter().filter(|o| o.is_err()).count() >= 5);
        assert!(out_a.len() > 20, "{}", out_a.len());
        assert_eq!(
            serde_json::to_string(&out_a).unwrap(),
            serde_json::to_string(&out_b).unwrap()
        );
        assert_eq!(
            serde_json::to_value(a.snapshot()).unwrap(),
            serde_json::to_value(b.snapshot()).unwrap()
        );
    }
}
