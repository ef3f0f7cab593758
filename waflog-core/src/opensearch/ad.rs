//! Anomaly Detection plugin: detectors from `[[detectors]]`, search by name, profile.
//!
//! A waflog [`DetectorSpec`] maps onto an AD detector (DOC-AD "Create anomaly
//! detector") as follows:
//!
//! | waflog                        | AD                                                                  |
//! |-------------------------------|---------------------------------------------------------------------|
//! | `name`                        | `name` (AD allows `a-z A-Z 0-9 - _ .`, at most 64 characters)      |
//! | feature `sum/avg/min/max` of `field` | `aggregation_query: {<name>: {sum: {field}}}` ...           |
//! | feature `count` (no field)    | `value_count` of the time field: every record has one              |
//! | feature `count` of `field`    | `value_count` of the field: records that have it                   |
//! | feature `distinct_count`      | `cardinality` (HyperLogLog; exact up to its precision threshold, 40,000) |
//! | feature `filter`              | a `filter` aggregation (`term`/`terms`) around the metric; AD reads its single sub-aggregation (anomaly-detection PR 425, in 2.0 and 1.3) |
//! | `interval`                    | `detection_interval` in `Minutes` (whole minutes only)              |
//! | `window_delay`                | `window_delay` in `Minutes`, rounded up                             |
//! | `shingle_size`                | `shingle_size` for `rcf`; AD's default 8 for the other algorithms   |
//! | `category_field`              | `category_field: [field]` (AD allows two; a keyword or ip field)    |
//!
//! AD always runs its own thresholded random cut forest, so `ewma`,
//! `ewma_likelihood` and `rcf` detectors all become AD detectors with the same
//! features; `categorical` (a distribution shift over a field's values) has no AD
//! equivalent and is skipped, see [`ad_unsupported_reason`].
//!
//! An interval without records is imputed as the detector's `missing` rule says,
//! sent as AD 2.17's `imputation_option` (`zero`, waflog's default, is `ZERO`;
//! `ignore` sends none, AD's own default). Rules on deviations become AD 2.19's
//! `rules` (see [`crate::detect::rules`]); suppression windows have no AD
//! equivalent. One behaviour differs by design: AD's `avg`/`min`/`max` of no values
//! is missing where waflog's is 0.

use serde_json::{Value, json};

use super::{OpenSearchError, invalid, minutes_ceil, parse_json, whole_minutes};
use crate::detect::DetectorSpec;
use crate::detect::rules::Direction;
use crate::detect::spec::{Aggregation, AlgorithmSpec, FeatureSpec, Missing, duration_text};

/// Index patterns of the AD plugin's result indices, for monitors on AD results.
///
/// The plugin writes its results under the alias `.opendistro-anomaly-results`
/// (`ADCommonName.ANOMALY_RESULT_INDEX_ALIAS` in the plugin source, still so in 2.x);
/// the documentation's examples spell it `.opensearch-anomaly-results*` (DOC-AD
/// "Create monitor"). A monitor searches both: a pattern that matches no index
/// returns nothing rather than failing.
pub const AD_RESULTS_INDEX_PATTERNS: [&str; 2] = [
    ".opendistro-anomaly-results*",
    ".opensearch-anomaly-results*",
];

/// Prefix AD requires of a custom result index (`result_index`).
pub const AD_CUSTOM_RESULT_PREFIX: &str = "opensearch-ad-plugin-result-";

/// Longest detector name AD accepts.
const AD_MAX_NAME: usize = 64;

/// Precision threshold of `cardinality` features: counts up to it are near exact
/// (OpenSearch's maximum).
const CARDINALITY_PRECISION: u32 = 40_000;

/// Why AD cannot run this detector, or `None` when [`detector_body`] builds it.
///
/// ```
/// use waflog_core::detect::DetectorSpec;
/// use waflog_core::opensearch::ad_unsupported_reason;
/// let mut spec = DetectorSpec::indicator_sum("country-anomaly-detector", "UNK_country");
/// assert_eq!(ad_unsupported_reason(&spec), None);
/// spec.interval_ms = 30_000;
/// assert!(ad_unsupported_reason(&spec).unwrap().contains("whole number of minutes"));
/// ```
pub fn ad_unsupported_reason(spec: &DetectorSpec) -> Option<String> {
    if let AlgorithmSpec::Categorical { field, .. } = &spec.algorithm {
        return Some(format!(
            "the categorical algorithm (a shift in the distribution of `{field}`) has no Anomaly Detection equivalent"
        ));
    }
    if spec.name.is_empty()
        || spec.name.len() > AD_MAX_NAME
        || !spec
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some(format!(
            "Anomaly Detection names are 1 to {AD_MAX_NAME} characters of a-z, A-Z, 0-9, `-`, `_` and `.`"
        ));
    }
    let ms = spec.interval();
    if ms >= 60_000 && whole_minutes(ms).is_some() {
        return None;
    }
    Some(format!(
        "its interval `{}` is not a whole number of minutes, the unit of Anomaly Detection intervals",
        duration_text(spec.interval_ms)
    ))
}

/// The body of `POST _plugins/_anomaly_detection/detectors` (create) or `PUT
/// .../detectors/<id>` (update) for `spec`, over `index_pattern` with event time in
/// `time_field`; `Ok(None)` when AD has no equivalent ([`ad_unsupported_reason`]
/// says why).
///
/// Errors: an invalid spec (an unparsable window delay, a feature without a field
/// that needs one) or an empty index pattern or time field.
pub fn detector_body(
    spec: &DetectorSpec,
    index_pattern: &str,
    time_field: &str,
) -> Result<Option<Value>, OpenSearchError> {
    let err = |reason: String| OpenSearchError::Detector {
        detector: spec.name.clone(),
        reason,
    };
    if index_pattern.trim().is_empty() || time_field.trim().is_empty() {
        return Err(err(
            "the index pattern and time field must not be empty".into()
        ));
    }
    if ad_unsupported_reason(spec).is_some() {
        return Ok(None);
    }
    let interval = spec.interval();
    let delay = spec.window_delay();
    let mut features = Vec::with_capacity(spec.features.len());
    let mut names: Vec<String> = Vec::new();
    for f in &spec.features {
        let mut name = agg_name(&f.name);
        if names.contains(&name) {
            name = format!("{name}_{}", names.len());
        }
        let query = feature_query(f, time_field).map_err(err)?;
        features.push(json!({
            "feature_name": f.name,
            "feature_enabled": true,
            "aggregation_query": { &name: query }
        }));
        names.push(name);
    }
    let shingle = match spec.algorithm {
        AlgorithmSpec::Rcf { .. } => spec.shingle_size,
        _ => 8,
    };
    let mut body = json!({
        "name": spec.name,
        "description": description(spec),
        "time_field": time_field,
        "indices": [index_pattern],
        "feature_attributes": features,
        "detection_interval": {"period": {"interval": interval / 60_000, "unit": "Minutes"}},
        "window_delay": {"period": {"interval": minutes_ceil(delay), "unit": "Minutes"}},
        "shingle_size": shingle,
    });
    if let Some(c) = &spec.category_field {
        body["category_field"] = json!([index_field(c)]);
    }
    if let Some(imputation) = imputation_option(spec) {
        body["imputation_option"] = imputation;
    }
    let rules = ad_rules(spec);
    if !rules.is_empty() {
        body["rules"] = Value::Array(rules);
    }
    Ok(Some(body))
}

/// AD 2.17's `imputation_option` for the detector's `missing` rule: `ZERO`,
/// `PREVIOUS` or `FIXED_VALUES` with one `default_fill` per feature; `None` for
/// `ignore`, which is AD's behaviour without the option, and for detectors with a
/// `category_field` (waflog gives an entity without records no interval at all).
/// Clusters before 2.17 skip the field and ignore missing intervals.
fn imputation_option(spec: &DetectorSpec) -> Option<Value> {
    if spec.category_field.is_some() {
        return None;
    }
    match spec.missing {
        Missing::Zero => Some(json!({"method": "ZERO"})),
        Missing::Previous => Some(json!({"method": "PREVIOUS"})),
        Missing::Ignore => None,
        Missing::Fixed(x) => Some(json!({
            "method": "FIXED_VALUES",
            "default_fill": spec
                .features
                .iter()
                .map(|f| json!({"feature_name": f.name, "data": x}))
                .collect::<Vec<_>>()
        })),
    }
}

/// AD 2.19's `rules` for the detector's rules (see [`crate::detect::rules`]): per
/// feature and side, an `IGNORE_ANOMALY` rule whose condition is the minimum
/// (`*_margin` for `min_absolute`, `*_ratio` for `min_relative`, operator `LTE`),
/// and for a direction, one that ignores the other side (AD 3.0's
/// `actual_is_below_expected` / `actual_is_over_expected`). Windows have no AD
/// equivalent.
fn ad_rules(spec: &DetectorSpec) -> Vec<Value> {
    let mut out = Vec::new();
    let rule = |feature: &str, threshold_type: &str, value: Option<f64>| {
        let mut condition = json!({"feature_name": feature, "threshold_type": threshold_type});
        if let Some(v) = value {
            condition["operator"] = "LTE".into();
            condition["value"] = v.into();
        }
        json!({"action": "IGNORE_ANOMALY", "conditions": [condition]})
    };
    for r in &spec.rules {
        for f in spec
            .features
            .iter()
            .filter(|f| r.covers(&spec.name, &f.name))
        {
            let sides = [
                (r.direction != Direction::Drop, "actual_over_expected"),
                (r.direction != Direction::Rise, "expected_over_actual"),
            ];
            for side in sides.iter().filter(|s| s.0).map(|s| s.1) {
                if r.min_absolute > 0.0 {
                    out.push(rule(
                        &f.name,
                        &format!("{side}_margin"),
                        Some(r.min_absolute),
                    ));
                }
                if r.min_relative > 0.0 {
                    out.push(rule(
                        &f.name,
                        &format!("{side}_ratio"),
                        Some(r.min_relative),
                    ));
                }
            }
            match r.direction {
                Direction::Both => {}
                Direction::Rise => out.push(rule(&f.name, "actual_is_below_expected", None)),
                Direction::Drop => out.push(rule(&f.name, "actual_is_over_expected", None)),
            }
        }
    }
    out
}

/// Sets a custom result index on a detector body (AD writes its results there as
/// well as to its own indices). AD requires the prefix
/// [`AD_CUSTOM_RESULT_PREFIX`] and lowercase letters, digits, `-` and `_`.
pub fn set_result_index(body: &mut Value, result_index: &str) -> Result<(), OpenSearchError> {
    let bad = |reason: String| {
        Err(OpenSearchError::InvalidIndexName {
            name: result_index.to_string(),
            reason,
        })
    };
    if !result_index.starts_with(AD_CUSTOM_RESULT_PREFIX) {
        return bad(format!(
            "an AD result index must start with `{AD_CUSTOM_RESULT_PREFIX}`"
        ));
    }
    if !result_index
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return bad("an AD result index has only a-z, 0-9, `-` and `_`".into());
    }
    super::validate_index_name(result_index)?;
    match body.as_object_mut() {
        Some(o) => {
            o.insert("result_index".into(), result_index.into());
            Ok(())
        }
        None => bad("the detector body is not an object".into()),
    }
}

/// Aggregation names may not contain `[`, `]` or `>`; keep letters, digits, `_`
/// and `-`.
fn agg_name(feature: &str) -> String {
    let s: String = feature
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "feature".into() } else { s }
}

/// The index field of a waflog path: an array path (`labels[].name`) is the plain
/// dotted field (`labels.name`), which OpenSearch indexes with every element's value.
fn index_field(path: &str) -> String {
    path.replace("[]", "")
}

fn feature_query(f: &FeatureSpec, time_field: &str) -> Result<Value, String> {
    let field = || {
        f.field
            .as_deref()
            .map(index_field)
            .ok_or_else(|| format!("feature `{}`: {:?} needs a field", f.name, f.aggregation))
    };
    let metric = match f.aggregation {
        Aggregation::Count => {
            json!({"value_count": {"field": f.field.as_deref().map_or(time_field.to_string(), index_field)}})
        }
        Aggregation::Sum => json!({"sum": {"field": field()?}}),
        Aggregation::Avg => json!({"avg": {"field": field()?}}),
        Aggregation::Min => json!({"min": {"field": field()?}}),
        Aggregation::Max => json!({"max": {"field": field()?}}),
        Aggregation::DistinctCount => json!({"cardinality": {
            "field": field()?,
            "precision_threshold": CARDINALITY_PRECISION
        }}),
    };
    let Some(filter) = &f.filter else {
        return Ok(metric);
    };
    let clause = match (&filter.equals, &filter.in_set) {
        (Some(v), None) => json!({"term": {index_field(&filter.field): v}}),
        (None, Some(set)) => json!({"terms": {index_field(&filter.field): set}}),
        _ => {
            return Err(format!(
                "feature `{}`: a filter needs exactly one of `equals` or `in`",
                f.name
            ));
        }
    };
    Ok(json!({"filter": clause, "aggs": {"value": metric}}))
}

fn description(spec: &DetectorSpec) -> String {
    let algorithm = match spec.algorithm {
        AlgorithmSpec::Ewma { .. } => "ewma",
        AlgorithmSpec::EwmaLikelihood { .. } => "ewma_likelihood",
        AlgorithmSpec::Rcf { .. } => "rcf",
        AlgorithmSpec::Artime { .. } => "artime",
        AlgorithmSpec::Cad { .. } => "cad",
        AlgorithmSpec::Ensemble { .. } => "ensemble",
        AlgorithmSpec::Categorical { .. } => "categorical",
    };
    let features: Vec<String> = spec
        .features
        .iter()
        .map(|f| {
            let agg = serde_json::to_value(f.aggregation)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match &f.field {
                Some(field) => format!("{agg}({field})"),
                None => agg,
            }
        })
        .collect();
    format!(
        "waflog detector `{}` ({algorithm} in waflog): {}",
        spec.name,
        features.join(", ")
    )
}

/// The body of `POST _plugins/_anomaly_detection/detectors/_search` that finds a
/// detector by its exact name.
///
/// DOC-AD documents no search by name; this is a `term` query on the `name.keyword`
/// sub-field that the plugin's detector mapping declares (AD-DETECTORS-MAP), in the
/// `{"query": ...}` shape of the documented search. [`parse_detector_search`] checks
/// the names of the hits again.
pub fn detector_search_by_name(name: &str) -> Value {
    json!({"query": {"term": {"name.keyword": {"value": name}}}})
}

/// A found object: its ID, and its `_seq_no` and `_primary_term` when the response
/// gives them (for `?if_seq_no=&if_primary_term=` updates).
pub type FoundId = (String, Option<(i64, i64)>);

/// Reads the response of [`detector_search_by_name`]: the detector whose
/// `_source.name` is exactly `name`, if any.
pub fn parse_detector_search(body: &[u8], name: &str) -> Result<Option<FoundId>, OpenSearchError> {
    find_by_name(body, name, "detector", |source| {
        source.get("name").and_then(Value::as_str)
    })
}

/// Shared by the detector and monitor searches: hits whose name (read by `name_of`
/// from `_source`) equals `name`.
pub(crate) fn find_by_name(
    body: &[u8],
    name: &str,
    kind: &'static str,
    name_of: impl Fn(&Value) -> Option<&str>,
) -> Result<Option<FoundId>, OpenSearchError> {
    let what = if kind == "detector" {
        "detector search"
    } else {
        "monitor search"
    };
    let v = parse_json(body, what)?;
    let hits = v
        .get("hits")
        .and_then(|h| h.get("hits"))
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(what, "no `hits.hits`".into()))?;
    let mut found = Vec::new();
    for h in hits {
        let Some(source) = h.get("_source") else {
            continue;
        };
        if name_of(source) != Some(name) {
            continue;
        }
        let id = h
            .get("_id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(what, "a hit has no `_id`".into()))?;
        let seq = h.get("_seq_no").and_then(Value::as_i64);
        let term = h.get("_primary_term").and_then(Value::as_i64);
        found.push((id.to_string(), seq.zip(term)));
    }
    if found.len() > 1 {
        return Err(OpenSearchError::Ambiguous {
            kind,
            name: name.to_string(),
            count: found.len(),
        });
    }
    Ok(found.pop())
}

/// A detector's state, from `GET .../detectors/<id>/_profile`.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorProfile {
    /// `DISABLED`, `INIT` or `RUNNING`.
    pub state: String,
    /// Initialisation progress in percent (`init_progress.percentage`), when given.
    pub init_progress: Option<f64>,
    /// Shingles still needed before the first results, when initialising.
    pub needed_shingles: Option<u64>,
    /// Why the detector stopped, when it did.
    pub error: Option<String>,
}

/// Reads a detector profile response (DOC-AD "Profile detector").
///
/// ```
/// let p = waflog_core::opensearch::parse_profile(
///     br#"{"state":"INIT","init_progress":{"percentage":"40%","needed_shingles":77}}"#).unwrap();
/// assert_eq!((p.state.as_str(), p.init_progress, p.needed_shingles), ("INIT", Some(40.0), Some(77)));
/// ```
pub fn parse_profile(body: &[u8]) -> Result<DetectorProfile, OpenSearchError> {
    let v = parse_json(body, "profile")?;
    let state = v
        .get("state")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("profile", "no `state`".into()))?
        .to_string();
    let progress = v.get("init_progress");
    let init_progress = match progress.and_then(|p| p.get("percentage")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            s.trim()
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid("profile", format!("percentage `{s}`")))?,
        ),
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => return Err(invalid("profile", format!("percentage {other}"))),
    };
    Ok(DetectorProfile {
        state,
        init_progress,
        needed_shingles: progress
            .and_then(|p| p.get("needed_shingles"))
            .and_then(Value::as_u64),
        error: v.get("error").and_then(Value::as_str).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::spec::FilterSpec;
    use crate::opensearch::testutil::{assert_shape, fixture, fixture_json, merged};

    /// A spec with the documented example's names: feature `test`, the sum of
    /// `value`, one-minute interval and window delay.
    fn doc_spec(name: &str) -> DetectorSpec {
        let mut s = DetectorSpec::indicator_sum(name, "value");
        s.features[0].name = "test".into();
        s.window_delay_ms = 60_000;
        s
    }

    /// The reference for detector bodies: DOC-AD's create request merged with the
    /// detector echoed in its response (which shows `shingle_size`).
    fn reference(request: &str, response: &str) -> Value {
        merged(&[
            fixture_json(request),
            fixture_json(response)["anomaly_detector"].clone(),
        ])
    }

    /// Keys of the documented detector that waflog does not send: a detector-wide
    /// `filter_query` (waflog filters per feature), a custom `result_index`, and the
    /// fields the server fills in.
    const NOT_SENT: [&str; 7] = [
        "filter_query",
        "result_index",
        "schema_version",
        "feature_attributes[].feature_id",
        "last_update_time",
        "user",
        "detector_type",
    ];

    /// Keys newer than the documented examples: AD 2.17's `imputation_option` and
    /// 2.19's `rules` (their shapes are pinned by
    /// `missing_data_and_rules_become_imputation_and_ad_rules`).
    const NEWER: [&str; 4] = [
        "imputation_option",
        "imputation_option.*",
        "rules",
        "rules.*",
    ];

    #[test]
    fn missing_data_and_rules_become_imputation_and_ad_rules() {
        let mut spec = doc_spec("d");
        let body = |spec: &DetectorSpec| {
            detector_body(spec, "waf-logs*", "timestamp")
                .unwrap()
                .unwrap()
        };
        assert_eq!(body(&spec)["imputation_option"], json!({"method": "ZERO"}));
        assert!(body(&spec).get("rules").is_none());
        spec.missing = Missing::Previous;
        assert_eq!(
            body(&spec)["imputation_option"],
            json!({"method": "PREVIOUS"})
        );
        spec.missing = Missing::Ignore;
        assert!(body(&spec).get("imputation_option").is_none());
        spec.missing = Missing::Fixed(2.5);
        assert_eq!(
            body(&spec)["imputation_option"],
            json!({"method": "FIXED_VALUES", "default_fill": [{"feature_name": "test", "data": 2.5}]})
        );
        spec.rules = toml::from_str::<crate::config::Config>(
            "[[rules]]\nmin_absolute = 5\n\
             [[rules]]\nfeature = \"test\"\ndirection = \"rise\"\nmin_relative = 0.2\n",
        )
        .unwrap()
        .rules;
        let ignore = |t: &str, v: Option<f64>| {
            let mut c = json!({"feature_name": "test", "threshold_type": t});
            if let Some(v) = v {
                c["operator"] = "LTE".into();
                c["value"] = v.into();
            }
            json!({"action": "IGNORE_ANOMALY", "conditions": [c]})
        };
        assert_eq!(
            body(&spec)["rules"],
            json!([
                ignore("actual_over_expected_margin", Some(5.0)),
                ignore("expected_over_actual_margin", Some(5.0)),
                ignore("actual_over_expected_ratio", Some(0.2)),
                ignore("actual_is_below_expected", None),
            ])
        );
    }

    #[test]
    fn single_entity_detector_matches_the_documented_request() {
        let body = detector_body(&doc_spec("test-detector"), "server_log*", "timestamp")
            .unwrap()
            .unwrap();
        let example = reference(
            "ad/create-detector-request.json",
            "ad/create-detector-response.json",
        );
        assert_shape(&body, &example, &NEWER, &NOT_SENT);
        let request = fixture_json("ad/create-detector-request.json");
        for k in [
            "name",
            "time_field",
            "indices",
            "feature_attributes",
            "detection_interval",
            "window_delay",
        ] {
            assert_eq!(body[k], request[k], "{k}");
        }
        assert_eq!(body["shingle_size"], 8);
        assert!(body.get("category_field").is_none());
        // The update request has the same shape.
        assert_shape(
            &body,
            &reference(
                "ad/update-detector-request.json",
                "ad/update-detector-response.json",
            ),
            &NEWER,
            &NOT_SENT,
        );
    }

    #[test]
    fn per_entity_detector_matches_the_documented_request() {
        let mut spec = doc_spec("test-hc-detector");
        spec.category_field = Some("ip".into());
        let body = detector_body(&spec, "server_log*", "timestamp")
            .unwrap()
            .unwrap();
        let example = reference(
            "ad/create-hc-detector-request.json",
            "ad/create-hc-detector-response.json",
        );
        assert_shape(&body, &example, &NEWER, &NOT_SENT);
        assert_eq!(
            body["category_field"],
            fixture_json("ad/create-hc-detector-request.json")["category_field"]
        );
    }

    #[test]
    fn the_seeds_detectors_become_ad_detectors() {
        let defaults = DetectorSpec::defaults();
        for spec in &defaults {
            let body = detector_body(spec, "waf-logs*", "timestamp")
                .unwrap()
                .unwrap();
            assert_eq!(body["name"], spec.name.as_str());
            assert_eq!(body["detection_interval"]["period"]["interval"], 1);
            // The default window delay, 10s, waits a whole minute in AD.
            assert_eq!(body["window_delay"]["period"]["interval"], 1);
            assert_eq!(body["window_delay"]["period"]["unit"], "Minutes");
        }
        let country = detector_body(&defaults[1], "waf-logs*", "timestamp")
            .unwrap()
            .unwrap();
        assert_eq!(
            country["feature_attributes"],
            json!([{
                "feature_name": "UNK_country",
                "feature_enabled": true,
                "aggregation_query": {"UNK_country": {"sum": {"field": "UNK_country"}}}
            }])
        );
        let count = detector_body(&defaults[5], "waf-logs*", "timestamp")
            .unwrap()
            .unwrap();
        assert_eq!(
            count["feature_attributes"][0]["aggregation_query"],
            json!({"request_count": {"value_count": {"field": "timestamp"}}})
        );
    }

    #[test]
    fn aggregations_filters_shingles_and_categories() {
        let mut spec = DetectorSpec::indicator_sum("ip-detector", "B_action");
        spec.interval_ms = 300_000;
        spec.window_delay_ms = 0;
        spec.shingle_size = 4;
        spec.category_field = Some("httpRequest.clientIp".into());
        spec.algorithm = toml::from_str("type = \"rcf\"").unwrap();
        spec.features.push(FeatureSpec {
            name: "blocked uris".into(),
            aggregation: Aggregation::DistinctCount,
            field: Some("httpRequest.uri".into()),
            filter: Some(FilterSpec {
                field: "action".into(),
                equals: Some("BLOCK".into()),
                in_set: None,
            }),
        });
        spec.features.push(FeatureSpec {
            name: "posts".into(),
            aggregation: Aggregation::Count,
            field: None,
            filter: Some(FilterSpec {
                field: "httpRequest.httpMethod".into(),
                equals: None,
                in_set: Some(vec!["POST".into(), "PUT".into()]),
            }),
        });
        spec.features.push(FeatureSpec {
            name: "max bytes".into(),
            aggregation: Aggregation::Max,
            field: Some("requestBodySize".into()),
            filter: None,
        });
        let body = detector_body(&spec, "waf-logs*", "timestamp")
            .unwrap()
            .unwrap();
        assert_eq!(body["detection_interval"]["period"]["interval"], 5);
        assert_eq!(body["window_delay"]["period"]["interval"], 0);
        assert_eq!(body["shingle_size"], 4);
        assert_eq!(body["category_field"], json!(["httpRequest.clientIp"]));
        let mut labels = spec.clone();
        labels.category_field = Some("labels[].name".into());
        labels.features[0].filter = Some(FilterSpec {
            field: "rateBasedRuleList[].limitKey".into(),
            equals: Some("IP".into()),
            in_set: None,
        });
        let arrays = detector_body(&labels, "waf-*", "timestamp")
            .unwrap()
            .unwrap();
        assert_eq!(arrays["category_field"], json!(["labels.name"]));
        assert!(
            arrays
                .to_string()
                .contains(r#"{"term":{"rateBasedRuleList.limitKey":"IP"}}"#),
            "{arrays}"
        );
        let f = &body["feature_attributes"];
        assert_eq!(f[1]["feature_name"], "blocked uris");
        assert_eq!(
            f[1]["aggregation_query"],
            json!({"blocked_uris": {
                "filter": {"term": {"action": "BLOCK"}},
                "aggs": {"value": {"cardinality": {"field": "httpRequest.uri", "precision_threshold": 40000}}}
            }})
        );
        assert_eq!(
            f[2]["aggregation_query"],
            json!({"posts": {
                "filter": {"terms": {"httpRequest.httpMethod": ["POST", "PUT"]}},
                "aggs": {"value": {"value_count": {"field": "timestamp"}}}
            }})
        );
        assert_eq!(
            f[3]["aggregation_query"],
            json!({"max_bytes": {"max": {"field": "requestBodySize"}}})
        );
        // Non-forest algorithms run as AD's forest with its default shingle.
        spec.algorithm = AlgorithmSpec::default();
        let body = detector_body(&spec, "waf-logs*", "timestamp")
            .unwrap()
            .unwrap();
        assert_eq!(body["shingle_size"], 8);
    }

    #[test]
    fn unsupported_detectors_are_skipped_with_a_reason() {
        let mut spec = DetectorSpec::indicator_sum("country-shift", "UNK_country");
        spec.algorithm =
            toml::from_str("type = \"categorical\"\nfield = \"httpRequest.country\"").unwrap();
        let reason = ad_unsupported_reason(&spec).unwrap();
        assert!(reason.contains("categorical") && reason.contains("httpRequest.country"));
        assert_eq!(detector_body(&spec, "w*", "timestamp").unwrap(), None);
        for (ms, interval) in [(30_000, "`30s`"), (90_000, "`1m 30s`")] {
            let mut s = DetectorSpec::indicator_sum("x", "B_action");
            s.interval_ms = ms;
            assert!(ad_unsupported_reason(&s).unwrap().contains(interval));
            assert_eq!(detector_body(&s, "w*", "timestamp").unwrap(), None);
        }
        for name in ["with space", "", &"x".repeat(65), "ünï"] {
            let s = DetectorSpec::indicator_sum(name, "B_action");
            assert!(ad_unsupported_reason(&s).is_some(), "{name}");
        }
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.features[0].field = None;
        assert!(detector_body(&s, "w*", "timestamp").is_err());
        assert!(detector_body(&DetectorSpec::indicator_sum("x", "B_action"), "", "t").is_err());
    }

    #[test]
    fn result_index() {
        let mut body = detector_body(&doc_spec("test-detector"), "server_log*", "timestamp")
            .unwrap()
            .unwrap();
        set_result_index(&mut body, "opensearch-ad-plugin-result-test").unwrap();
        assert_eq!(
            body["result_index"],
            fixture_json("ad/create-detector-request.json")["result_index"]
        );
        assert_shape(
            &body,
            &reference(
                "ad/create-detector-request.json",
                "ad/create-detector-response.json",
            ),
            &NEWER,
            &NOT_SENT
                .into_iter()
                .filter(|k| *k != "result_index")
                .collect::<Vec<_>>(),
        );
        assert!(set_result_index(&mut body, "waflog-results").is_err());
        assert!(set_result_index(&mut body, "opensearch-ad-plugin-result-A").is_err());
    }

    /// No official search-by-name example exists (fixtures README); the body has the
    /// `{"query": {...}}` shape of DOC-AD's search request, with a `term` on the
    /// `name.keyword` sub-field of AD-DETECTORS-MAP.
    #[test]
    fn search_by_name() {
        let body = detector_search_by_name("test");
        let example = fixture_json("ad/search-detectors-request.json");
        assert_shape(&body, &example, &["query.term"], &["query.wildcard"]);
        assert_eq!(body["query"]["term"]["name.keyword"]["value"], "test");
        let response = fixture("ad/search-detectors-response.json").as_bytes();
        assert_eq!(
            parse_detector_search(response, "test").unwrap(),
            Some(("Zi5zTXwBwf_U8gjUTfJG".to_string(), Some((1, 1))))
        );
        assert_eq!(parse_detector_search(response, "tes").unwrap(), None);
        // Two hits with the same name.
        let mut v: Value = serde_json::from_slice(response).unwrap();
        let hit = v["hits"]["hits"][0].clone();
        v["hits"]["hits"].as_array_mut().unwrap().push(hit);
        let twice = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            parse_detector_search(&twice, "test"),
            Err(OpenSearchError::Ambiguous { count: 2, .. })
        ));
        assert!(parse_detector_search(b"{}", "test").is_err());
        assert!(parse_detector_search(b"[", "test").is_err());
    }

    #[test]
    fn profiles() {
        let p = |f: &str| parse_profile(fixture(f).as_bytes()).unwrap();
        assert_eq!(
            p("ad/get-detector-profile-response.json"),
            DetectorProfile {
                state: "INIT".into(),
                init_progress: Some(0.0),
                needed_shingles: Some(128),
                error: None
            }
        );
        assert_eq!(
            p("ad/get-detector-profile-with-ad-task-response.json"),
            p("ad/get-detector-profile-response.json")
        );
        assert_eq!(
            p("ad/get-detector-profile-disabled-response.json"),
            DetectorProfile {
                state: "DISABLED".into(),
                init_progress: None,
                needed_shingles: None,
                error: Some("Stopped detector: AD models memory usage exceeds our limit.".into())
            }
        );
        let running = p("ad/get-detector-profile-entity-response.json");
        assert_eq!(
            (running.state.as_str(), running.init_progress),
            ("RUNNING", Some(100.0))
        );
        assert!(parse_profile(br#"{"init_progress":{}}"#).is_err());
        assert!(
            parse_profile(br#"{"state":"INIT","init_progress":{"percentage":"lots"}}"#).is_err()
        );
        assert!(parse_profile(b"").is_err());
    }
}
