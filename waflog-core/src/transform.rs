//! The indicator transform: one input line in, one output line (or a dead letter) out.
//!
//! The output record is the input record unchanged except that `timestamp` is written
//! as integer epoch milliseconds and the indicators are appended as top-level members.
//! On the fast path nothing is re-serialised: the line is parsed into a borrowed
//! [`RecordView`] (which still validates the whole line as JSON), the timestamp is
//! spliced in place when it needs converting, and the indicators are appended before
//! the closing brace. A record that already carries indicators (transformed twice)
//! takes a slower path that replaces them, so no key is ever duplicated.

use serde::Serialize;
use serde_json::Value;

use crate::error::SchemaError;
use crate::features::FeatureMap;
use crate::names;
use crate::parse::view::RecordView;
use crate::parse::{field_error, object_text};
use crate::timestamp;

/// Turns raw WAF log lines into transformed lines.
#[derive(Debug, Clone)]
pub struct Transformer {
    map: FeatureMap,
    /// Write each record as an OCSF HTTP Activity event ([`crate::ocsf`]).
    ocsf: bool,
}

impl Transformer {
    /// A transformer with the given vocabularies.
    pub fn new(map: FeatureMap) -> Transformer {
        Transformer { map, ocsf: false }
    }

    /// The same transformer writing each record as an OCSF 1.1 HTTP Activity event
    /// (see [`crate::ocsf::http_activity`]; the indicators go under `unmapped`).
    pub fn with_ocsf(mut self, ocsf: bool) -> Transformer {
        self.ocsf = ocsf;
        self
    }

    /// The vocabularies in use.
    pub fn feature_map(&self) -> &FeatureMap {
        &self.map
    }

    /// Transforms one line (without its newline; a trailing `\r` is ignored) and
    /// appends the output line, with its newline, to `out`. On error `out` is left as
    /// it was.
    pub fn transform_line(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), SchemaError> {
        if !self.ocsf {
            return self.transform_waf(line, out);
        }
        let start = out.len();
        self.transform_waf(line, out)?;
        let record = out.split_off(start);
        let text = std::str::from_utf8(&record[..record.len() - 1])
            .map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
        crate::ocsf::write_http_activity(text, out)?;
        out.push(b'\n');
        Ok(())
    }

    /// [`Transformer::transform_line`] for WAF records out.
    fn transform_waf(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), SchemaError> {
        let text = object_text(line)?;
        // The scanner reads usual records; serde_json the rest, and words errors.
        let view = match RecordView::skim(text) {
            Some(v) => v,
            None => serde_json::from_str(text).map_err(|e| field_error(text, e))?,
        };
        let raw_ts = view.timestamp.ok_or(SchemaError::MissingTimestamp)?;
        let ms = timestamp::from_json_text(raw_ts.get())?.ok_or(SchemaError::MissingTimestamp)?;
        view.check_statuses()?;
        let indicators = self.map.indicators_of_view(&view);
        if view.has_indicators() {
            return self.rewrite(text, ms, out);
        }
        // Valid JSON object text: the last byte is its closing brace.
        let body = &text[..text.len() - 1];
        let ts_start = raw_ts.get().as_ptr() as usize - text.as_ptr() as usize;
        let ts_end = ts_start + raw_ts.get().len();
        if timestamp::is_canonical(raw_ts.get(), ms) {
            out.extend_from_slice(body.as_bytes());
        } else {
            out.extend_from_slice(&body.as_bytes()[..ts_start]);
            out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
            out.extend_from_slice(&body.as_bytes()[ts_end..]);
        }
        indicators.write_json_members(out);
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    /// Slow path: parse to a value, replace old indicators, serialise.
    fn rewrite(&self, text: &str, ms: i64, out: &mut Vec<u8>) -> Result<(), SchemaError> {
        let mut value: serde_json::Map<String, Value> =
            serde_json::from_str(text).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
        let view: RecordView<'_> =
            serde_json::from_str(text).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
        let indicators = self.map.indicators_of_view(&view);
        for name in names::INDICATORS {
            value.shift_remove(name);
        }
        value.insert(names::TIMESTAMP.into(), Value::from(ms));
        for (name, v) in indicators.pairs() {
            value.insert(name.into(), Value::from(v));
        }
        serde_json::to_writer(&mut *out, &value)
            .map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
        out.push(b'\n');
        Ok(())
    }
}

/// Counters of a transform run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransformStats {
    /// Non-blank lines read.
    pub records_in: u64,
    /// Lines written.
    pub records_out: u64,
    /// Lines sent to the dead-letter output.
    pub dead_lettered: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// CloudWatch Logs control messages skipped (they hold no record).
    pub control_messages: u64,
    /// Bytes read.
    pub bytes_in: u64,
}

impl TransformStats {
    /// Adds the counts of another part of the same run (a batch of lines
    /// handled on another thread).
    pub fn add(&mut self, other: &TransformStats) {
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        self.dead_lettered += other.dead_lettered;
        self.blank += other.blank;
        self.control_messages += other.control_messages;
        self.bytes_in += other.bytes_in;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocsf_output_is_one_http_activity_per_record_and_rejects_leave_no_trace() {
        let t = Transformer::new(FeatureMap::default()).with_ocsf(true);
        let mut out = b"kept\n".to_vec();
        t.transform_line(br#"{"timestamp":1714521600.5,"action":"BLOCK","httpRequest":{"clientIp":"192.0.2.1","country":"XX","httpMethod":"GET"}}"#, &mut out)
            .unwrap();
        let line = std::str::from_utf8(&out[5..]).unwrap().to_string();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let ev: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(ev["class_uid"], 4002);
        assert_eq!(ev["time"], 1_714_521_600_500_i64);
        assert_eq!(ev["unmapped"]["B_action"], 1);
        assert_eq!(ev["unmapped"]["UNK_country"], 1);
        for bad in [&b"{"[..], b"[]", br#"{"action":"ALLOW"}"#] {
            assert!(t.transform_line(bad, &mut out).is_err());
            assert_eq!(out.len(), 5 + line.len());
        }
    }

    fn run(line: &str) -> Result<Value, SchemaError> {
        let t = Transformer::new(FeatureMap::default());
        let mut out = Vec::new();
        t.transform_line(line.as_bytes(), &mut out)?;
        assert_eq!(out.last(), Some(&b'\n'));
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn appends_indicators_and_keeps_the_record() {
        let line = r#"{"timestamp":1576280412771,"action":"BLOCK","httpSourceName":"CF","httpStatus":"502","httpRequest":{"country":"XX","httpMethod":"DELETE","headers":[{"name":"a","value":"\"}"}]},"extra":[1,{"x":null}]}"#;
        let v = run(line).unwrap();
        let mut expected: Value = serde_json::from_str(line).unwrap();
        for (k, n) in [
            ("K_country", 0),
            ("UNK_country", 1),
            ("K_action", 0),
            ("B_action", 1),
            ("O_httpstatus", 0),
            ("B_httpstatus", 1),
            ("common_method", 0),
            ("uncommon_method", 1),
            ("K_source", 1),
            ("UNK_source", 0),
        ] {
            expected[k] = n.into();
        }
        assert_eq!(v, expected);
    }

    #[test]
    fn output_is_the_input_bytes_plus_indicators() {
        let t = Transformer::new(FeatureMap::default());
        let line = "{ \"timestamp\" : 1576280412771 , \"action\":\"ALLOW\" }\r";
        let mut out = Vec::new();
        t.transform_line(line.as_bytes(), &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with(
                "{ \"timestamp\" : 1576280412771 , \"action\":\"ALLOW\" ,\"K_country\":0,"
            ),
            "{s}"
        );
    }

    #[test]
    fn float_seconds_are_spliced_as_milliseconds() {
        let v = run(r#"{"timestamp":1669682102.123015,"action":"Count"}"#).unwrap();
        assert_eq!(v["timestamp"], 1_669_682_102_123_i64);
        let v = run(r#"{"action":"Count","timestamp":"2022-11-30T18:11:57.150Z"}"#).unwrap();
        assert_eq!(v["timestamp"], 1_669_831_917_150_i64);
    }

    #[test]
    fn transforming_twice_replaces_indicators() {
        let once = run(r#"{"timestamp":1576280412771,"action":"BLOCK"}"#).unwrap();
        let mut changed = once.clone();
        changed["action"] = "ALLOW".into();
        let twice = run(&changed.to_string()).unwrap();
        assert_eq!(twice["B_action"], 0);
        assert_eq!(twice["K_action"], 1);
        assert_eq!(
            twice.as_object().unwrap().len(),
            once.as_object().unwrap().len()
        );
    }

    #[test]
    fn bad_lines_are_classified() {
        assert!(matches!(
            run("{\"timestamp\":1576280412771"),
            Err(SchemaError::InvalidJson(_))
        ));
        assert!(matches!(run("not json"), Err(SchemaError::InvalidJson(_))));
        assert!(matches!(
            run("[1,2]"),
            Err(SchemaError::NotAnObject("an array"))
        ));
        assert!(matches!(
            run("42"),
            Err(SchemaError::NotAnObject("a number"))
        ));
        assert!(matches!(
            run("{\"action\":\"ALLOW\"}"),
            Err(SchemaError::MissingTimestamp)
        ));
        assert!(matches!(
            run("{\"timestamp\":null}"),
            Err(SchemaError::MissingTimestamp)
        ));
        assert!(matches!(
            run("{\"timestamp\":\"noon\"}"),
            Err(SchemaError::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            run("{\"timestamp\":1576280412771,\"action\":7}"),
            Err(SchemaError::InvalidField(_))
        ));
        assert!(matches!(
            run("{\"timestamp\":1576280412771} trailing"),
            Err(SchemaError::InvalidJson(_))
        ));
        let t = Transformer::new(FeatureMap::default());
        let e = t
            .transform_line(b"{\"timestamp\":1,\"a\":\"\xff\"}", &mut Vec::new())
            .unwrap_err();
        assert_eq!(e, SchemaError::InvalidUtf8 { at: 20 });
    }
}
