//! Index names and the index templates for the transformed logs and for waflog's
//! results (`PUT _index_template/<name>`).
//!
//! Both templates match the base name and every time-based index under it
//! (`waf-logs`, `waf-logs-*`), so one template covers plain, daily and monthly
//! indices. The logs template maps the WAF fields dashboards and detectors use
//! (`timestamp` as an epoch-millisecond `date`, keywords for action, source, country,
//! method and status, `httpRequest.clientIp` as `ip`, the ten indicators as
//! `integer`) and leaves the rest to dynamic mapping. The results template follows
//! the Anomaly Detection plugin's own result mapping (`anomaly-results.json`, schema
//! 5: same field names, types and date formats) plus waflog's additions
//! (`detector_name`, `records`, `contributors`, `examples`, `expected_bounds`).

use serde_json::{Map, Value, json};

use super::OpenSearchError;
use crate::names;

/// Version written into both templates (`version`); raised whenever a mapping
/// changes, so a caller can tell an outdated template from the current one.
pub const TEMPLATE_VERSION: u32 = 2;

/// Priority of the logs template. Overlapping templates at the same priority are
/// rejected by OpenSearch, so the results template sits one above it (a results
/// base such as `waf-logs-results` falls under the logs pattern `waf-logs-*` too).
const LOGS_PRIORITY: u32 = 200;
/// Priority of the results template.
const RESULTS_PRIORITY: u32 = 201;

/// Date format of the results' times, as in the AD result mapping.
const AD_DATE_FORMAT: &str = "strict_date_time||epoch_millis";

/// How event time splits an index into time-based indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexSuffix {
    /// One index, the base name itself.
    #[default]
    None,
    /// One index per UTC day: `<base>-YYYY.MM.DD`.
    Daily,
    /// One index per UTC month: `<base>-YYYY.MM`.
    Monthly,
}

/// The index a document with event time `event_ms` (epoch milliseconds) goes to.
///
/// Times outside the calendar's range (beyond year 262143; waflog's timestamps stop
/// at 9999) fall into the epoch's index rather than failing.
///
/// ```
/// use waflog_core::opensearch::{index_for, IndexSuffix};
/// let t = 1_714_521_600_000; // 2024-05-01T00:00:00Z
/// assert_eq!(index_for("waf-logs", IndexSuffix::None, t), "waf-logs");
/// assert_eq!(index_for("waf-logs", IndexSuffix::Daily, t), "waf-logs-2024.05.01");
/// assert_eq!(index_for("waf-logs", IndexSuffix::Monthly, t - 1), "waf-logs-2024.04");
/// ```
pub fn index_for(base: &str, suffix: IndexSuffix, event_ms: i64) -> String {
    let format = match suffix {
        IndexSuffix::None => return base.to_string(),
        IndexSuffix::Daily => "%Y.%m.%d",
        IndexSuffix::Monthly => "%Y.%m",
    };
    let t = chrono::DateTime::from_timestamp_millis(event_ms).unwrap_or_default();
    format!("{base}-{}", t.format(format))
}

/// Checks a name against OpenSearch's index name rules: not empty, at most 255 bytes,
/// lowercase, none of `\ / * ? " < > | , # :` or spaces, not starting with `_`, `-`
/// or `+`, and not `.` or `..`.
///
/// ```
/// use waflog_core::opensearch::validate_index_name;
/// assert!(validate_index_name("waf-logs-2024.05.01").is_ok());
/// assert!(validate_index_name("WAF-logs").is_err());
/// assert!(validate_index_name("_logs").is_err());
/// ```
pub fn validate_index_name(name: &str) -> Result<(), OpenSearchError> {
    let bad = |reason: String| {
        Err(OpenSearchError::InvalidIndexName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("must not be empty".into());
    }
    if name == "." || name == ".." {
        return bad("must not be `.` or `..`".into());
    }
    if name.len() > 255 {
        return bad(format!("{} bytes; the limit is 255", name.len()));
    }
    if let Some(c) = name.chars().find(|c| c.is_uppercase()) {
        return bad(format!("must be lowercase (found `{c}`)"));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
        ) || c.is_whitespace()
    }) {
        return bad(format!("must not contain `{c}`"));
    }
    if let Some(c) = name.chars().next().filter(|c| matches!(c, '_' | '-' | '+')) {
        return bad(format!("must not start with `{c}`"));
    }
    Ok(())
}

/// Name of the logs template for `base`: `waflog-logs-<base>`.
pub fn logs_template_name(base: &str) -> String {
    format!("waflog-logs-{base}")
}

/// Name of the results template for `base`: `waflog-results-<base>`.
pub fn results_template_name(base: &str) -> String {
    format!("waflog-results-{base}")
}

fn keyword() -> Value {
    json!({"type": "keyword"})
}

/// A long text value: a keyword (up to 2 KiB; longer values are kept in `_source`
/// but not indexed, instead of failing the document) with a `text` sub-field for
/// full-text search.
fn long_keyword() -> Value {
    json!({"type": "keyword", "ignore_above": 2048, "fields": {"text": {"type": "text"}}})
}

/// The body of `PUT _index_template/waflog-logs-<base>`: the transformed WAF logs.
///
/// `httpRequest.clientIp` is an `ip` with `ignore_malformed`, so a record with an
/// unparsable address is still indexed (without that field) rather than rejected.
/// `ruleGroupList.customerConfig`, free-form JSON in real logs, is stored but not
/// indexed, so differing shapes across records cannot fail a mapping. Every other
/// field is mapped dynamically.
pub fn logs_template(base: &str) -> Value {
    let mut request = Map::new();
    for (field, mapping) in [
        (
            names::CLIENT_IP,
            json!({"type": "ip", "ignore_malformed": true}),
        ),
        (names::COUNTRY, keyword()),
        (names::HTTP_METHOD, keyword()),
        ("uri", long_keyword()),
        ("args", long_keyword()),
        ("host", keyword()),
        ("httpVersion", keyword()),
        ("scheme", keyword()),
        ("requestId", keyword()),
    ] {
        request.insert(field.into(), mapping);
    }
    let mut properties = Map::new();
    properties.insert(
        names::TIMESTAMP.into(),
        json!({"type": "date", "format": "epoch_millis"}),
    );
    for field in [
        names::ACTION,
        names::HTTP_SOURCE_NAME,
        names::HTTP_SOURCE_ID,
        names::HTTP_STATUS,
        names::RESPONSE_CODE_SENT,
        "terminatingRuleId",
        "terminatingRuleType",
        "webaclId",
        "ja3Fingerprint",
        "ja4Fingerprint",
    ] {
        properties.insert(field.into(), keyword());
    }
    properties.insert("formatVersion".into(), json!({"type": "integer"}));
    properties.insert(
        names::HTTP_REQUEST.into(),
        json!({"properties": Value::Object(request)}),
    );
    properties.insert(
        "ruleGroupList".into(),
        json!({"properties": {
            "ruleGroupId": {"type": "keyword"},
            "customerConfig": {"type": "object", "enabled": false}
        }}),
    );
    properties.insert(
        "labels".into(),
        json!({"properties": {"name": {"type": "keyword"}}}),
    );
    for indicator in names::INDICATORS {
        properties.insert(indicator.into(), json!({"type": "integer"}));
    }
    json!({
        "index_patterns": [base, format!("{base}-*")],
        "priority": LOGS_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": {"description": "waflog: transformed AWS WAF logs with indicators"},
        "template": {
            "mappings": {
                "dynamic": true,
                "properties": Value::Object(properties)
            }
        }
    })
}

fn feature_values() -> Value {
    json!({"type": "nested", "properties": {
        "feature_id": {"type": "keyword"},
        "data": {"type": "double"}
    }})
}

/// The body of `PUT _index_template/waflog-results-<base>`: waflog's anomaly results
/// ([`crate::detect::AnomalyResult`]), mapped as the AD plugin maps its own results
/// (`dynamic: false`, nested `feature_data`, `entity`, `relevant_attribution` and
/// `expected_values`, times as `strict_date_time||epoch_millis`), with
/// `feature_data.feature_name` and `detector_name` as keywords (for dashboards and
/// query monitors), `records` as `long`, `contributors` searchable and `examples`
/// stored only.
pub fn results_template(base: &str) -> Value {
    let date = json!({"type": "date", "format": AD_DATE_FORMAT});
    json!({
        "index_patterns": [base, format!("{base}-*")],
        "priority": RESULTS_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": {"description": "waflog: anomaly results shaped like OpenSearch AD results"},
        "template": {
            "mappings": {
                "dynamic": false,
                "properties": {
                    "detector_id": {"type": "keyword"},
                    "detector_name": {"type": "keyword"},
                    "entity": {"type": "nested", "properties": {
                        "name": {"type": "keyword"},
                        "value": {"type": "keyword"}
                    }},
                    "data_start_time": date,
                    "data_end_time": date,
                    "execution_start_time": date,
                    "execution_end_time": date,
                    "approx_anomaly_start_time": date,
                    "anomaly_score": {"type": "double"},
                    "anomaly_grade": {"type": "double"},
                    "confidence": {"type": "double"},
                    "threshold": {"type": "double"},
                    "feature_data": {"type": "nested", "properties": {
                        "feature_id": {"type": "keyword"},
                        "feature_name": {"type": "keyword"},
                        "data": {"type": "double"}
                    }},
                    "relevant_attribution": feature_values(),
                    "expected_values": {"type": "nested", "properties": {
                        "likelihood": {"type": "double"},
                        "value_list": feature_values()
                    }},
                    "expected_bounds": {"type": "nested", "properties": {
                        "feature_id": {"type": "keyword"},
                        "low": {"type": "double"},
                        "high": {"type": "double"}
                    }},
                    "records": {"type": "long"},
                    "contributors": {"properties": {
                        "field": {"type": "keyword"},
                        "top": {"properties": {
                            "value": {"type": "keyword", "ignore_above": 1024},
                            "count": {"type": "long"},
                            "expected": {"type": "double"}
                        }}
                    }},
                    "examples": {"type": "object", "enabled": false},
                    "feature_imputed": {"type": "nested", "properties": {
                        "feature_id": {"type": "keyword"},
                        "imputed": {"type": "boolean"}
                    }},
                    "shift_accepted": {"type": "boolean"},
                    "incident_id": {"type": "keyword"},
                    "suppressed": {"properties": {
                        "reason": {"type": "keyword", "ignore_above": 1024},
                        "anomaly_grade": {"type": "double"}
                    }}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::result::{Contributor, Contributors, EntityValue, ExampleRecord};
    use crate::detect::{AnomalyResult, Score};
    use crate::opensearch::testutil::{assert_shape, fixture_json};

    #[test]
    fn time_based_names() {
        let t = 1_714_521_600_000;
        assert_eq!(index_for("a", IndexSuffix::Daily, t - 1), "a-2024.04.30");
        assert_eq!(index_for("a", IndexSuffix::Monthly, t), "a-2024.05");
        assert_eq!(index_for("a", IndexSuffix::Daily, -1), "a-1969.12.31");
        assert_eq!(index_for("a", IndexSuffix::Daily, i64::MAX), "a-1970.01.01");
        for s in [IndexSuffix::None, IndexSuffix::Daily, IndexSuffix::Monthly] {
            validate_index_name(&index_for("waf-logs", s, t)).unwrap();
        }
    }

    #[test]
    fn index_name_rules() {
        for ok in ["waf-logs", ".hidden", "a.b_c-1", "é"] {
            validate_index_name(ok).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            (".", "`.`"),
            ("..", "`.`"),
            ("Logs", "lowercase"),
            ("a b", "contain"),
            ("a,b", "contain"),
            ("a#b", "contain"),
            ("a*", "contain"),
            ("a:b", "contain"),
            ("a\"b", "contain"),
            ("_a", "start"),
            ("-a", "start"),
            ("+a", "start"),
        ] {
            let e = validate_index_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        validate_index_name(&"a".repeat(255)).unwrap();
        assert!(validate_index_name(&"a".repeat(256)).is_err());
        // Bytes, not characters.
        assert!(validate_index_name(&"é".repeat(128)).is_err());
    }

    /// The template request keys are those of DOC-ITPL's examples
    /// (`index-template/request.json`); `composed_of`, `aliases` and `settings` are
    /// optional there and unused here. `dynamic` is a standard mapping parameter not
    /// shown in that example.
    #[test]
    fn templates_match_the_documented_request() {
        let example = fixture_json("index-template/request.json");
        for t in [logs_template("waf-logs"), results_template("waf-results")] {
            assert_shape(
                &t,
                &example,
                &[
                    "template.mappings.dynamic",
                    "template.mappings.properties.*",
                ],
                &[
                    "composed_of",
                    "template.aliases",
                    "template.settings",
                    "template.mappings.properties.*",
                ],
            );
        }
        let logs = logs_template("waf-logs");
        assert_eq!(logs["index_patterns"], json!(["waf-logs", "waf-logs-*"]));
        // Same date mapping shape as the documented `timestamp`, epoch ms only.
        let ts = &logs["template"]["mappings"]["properties"]["timestamp"];
        assert_shape(
            ts,
            &example["template"]["mappings"]["properties"]["timestamp"],
            &[],
            &[],
        );
        assert_eq!(ts["format"], "epoch_millis");
        let p = &logs["template"]["mappings"]["properties"];
        for indicator in names::INDICATORS {
            assert_eq!(p[indicator]["type"], "integer", "{indicator}");
        }
        for k in ["action", "httpSourceName", "httpStatus", "responseCodeSent"] {
            assert_eq!(p[k]["type"], "keyword", "{k}");
        }
        assert_eq!(p["httpRequest"]["properties"]["clientIp"]["type"], "ip");
        assert_eq!(p["httpRequest"]["properties"]["country"]["type"], "keyword");
        assert_eq!(p["httpRequest"]["properties"]["uri"]["type"], "keyword");
        assert!(results_template("r")["priority"].as_u64() > logs["priority"].as_u64());
        assert_eq!(logs_template_name("waf-logs"), "waflog-logs-waf-logs");
        assert_eq!(results_template_name("r"), "waflog-results-r");
    }

    fn waflog_result() -> Value {
        let score = Score {
            anomaly_score: 9.0,
            anomaly_grade: 0.9,
            confidence: 0.8,
            threshold: 5.0,
            expected: vec![3.0],
            attribution: vec![1.0],
            shifted_categories: vec![],
            band: vec![],
        };
        let mut r = AnomalyResult::from_score(
            "d",
            &["UNK_source".into()],
            &[240.0],
            &score,
            (0, 60_000),
            70_000,
        );
        r.entity = Some(vec![EntityValue {
            name: "httpRequest.clientIp".into(),
            value: "203.0.113.7".into(),
        }]);
        r.approx_anomaly_start_time = Some(0);
        r.records = 12;
        r.contributors = Some(vec![Contributors {
            field: "httpRequest.country".into(),
            top: vec![Contributor {
                value: "XX".into(),
                count: 9,
                expected: 0.5,
            }],
        }]);
        r.examples = Some(vec![ExampleRecord::from_values(&[Some("1.2.3.4".into())])]);
        serde_json::to_value(&r).unwrap()
    }

    /// Every field the AD result mapping (AD-RESULTS-MAP) declares and waflog writes
    /// has exactly the AD mapping; every field of a waflog result document is mapped.
    #[test]
    fn results_template_follows_the_ad_result_mapping() {
        let ad = fixture_json("ad/result-mapping/anomaly-results-mapping.json");
        let t = results_template("waf-results");
        let ours = &t["template"]["mappings"];
        assert_eq!(ours["dynamic"], ad["dynamic"]);
        // Fields AD declares that waflog does not write.
        let not_written = [
            "is_anomaly",
            "error",
            "user",
            "schema_version",
            "task_id",
            "model_id",
            "start_of_anomaly",
            "in_high_score_region",
            "past_values",
        ];
        let mut optional: Vec<String> = not_written
            .iter()
            .map(|f| format!("properties.{f}"))
            .collect();
        optional.push("_meta".into());
        assert_shape(
            ours,
            &ad,
            &[
                "properties.detector_name",
                "properties.feature_data.properties.feature_name",
                "properties.records",
                "properties.contributors",
                "properties.contributors.*",
                "properties.examples",
                "properties.expected_bounds",
                "properties.expected_bounds.*",
                // AD's imputation results (`result-imputed.json`) are newer than this
                // mapping example.
                "properties.feature_imputed",
                "properties.feature_imputed.*",
                // A sustained shift taken as the new normal (`ewma`).
                "properties.shift_accepted",
                // The incident of an anomaly, and a rule's or window's mark.
                "properties.incident_id",
                "properties.suppressed",
                "properties.suppressed.*",
            ],
            &optional.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        // Same types and formats, not only the same keys.
        for (k, v) in ad["properties"].as_object().unwrap() {
            if not_written.contains(&k.as_str()) || k == "feature_data" {
                continue;
            }
            assert_eq!(&ours["properties"][k], v, "{k}");
        }
        assert_eq!(
            ours["properties"]["feature_data"]["properties"]["data"],
            ad["properties"]["feature_data"]["properties"]["data"]
        );
        // A waflog result document uses only mapped fields.
        let doc = waflog_result();
        for k in doc.as_object().unwrap().keys() {
            assert!(ours["properties"].get(k).is_some(), "{k} is not mapped");
        }
        // And a documented AD result uses only fields mapped here or not written.
        let ad_doc = fixture_json("ad/result-mapping/result-anomaly.json");
        for k in ad_doc.as_object().unwrap().keys() {
            assert!(
                ours["properties"].get(k).is_some() || not_written.contains(&k.as_str()),
                "{k}"
            );
        }
    }
}
