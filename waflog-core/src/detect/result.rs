//! Result documents shaped like OpenSearch Anomaly Detection results.
//!
//! Field names and types follow the AD result index mapping (times in epoch
//! milliseconds), so results drop into the same dashboards: `detector_id`,
//! `data_start_time`, `anomaly_grade`, `confidence`, `feature_data`,
//! `relevant_attribution`, `expected_values` ...

use serde::{Deserialize, Serialize};

/// One feature's value in an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureData {
    /// Feature ID (waflog uses the feature name).
    pub feature_id: String,
    /// Feature name.
    pub feature_name: String,
    /// Aggregated value.
    pub data: f64,
}

/// A feature's share of the anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// Feature ID.
    pub feature_id: String,
    /// Share in [0, 1]; shares of a result sum to 1.
    pub data: f64,
}

/// A feature's expected value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedValue {
    /// Feature ID.
    pub feature_id: String,
    /// Expected value.
    pub data: f64,
}

/// Expected values with their likelihood, as in AD (`expected_values`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// Likelihood of this set of values (1 for a single expectation).
    pub likelihood: f64,
    /// One value per feature.
    pub value_list: Vec<ExpectedValue>,
}

/// One value that drove an anomaly: how often it appeared in the interval's records
/// that moved a feature, against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// The value (a client IP, a country code, a rule ID, a URI).
    pub value: String,
    /// Records in the interval.
    pub count: u64,
    /// Records per interval in the baseline (decayed mean over normal intervals).
    pub expected: f64,
}

/// The range a detector took as normal for one feature in an interval: the
/// expected value ± the detector's threshold distance (a waflog addition, for
/// charts of the expected band).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Feature ID.
    pub feature_id: String,
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The top contributors of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributors {
    /// Field path (`httpRequest.clientIp` ...).
    pub field: String,
    /// Values with the largest excess over their baseline, largest first.
    pub top: Vec<Contributor>,
}

/// The entity of a per-entity (high-cardinality) detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityValue {
    /// The category field.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One interval's result for one detector (and entity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyResult {
    /// Detector ID (waflog: the detector name).
    pub detector_id: String,
    /// Detector name.
    pub detector_name: String,
    /// The entity, for detectors with a category field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<Vec<EntityValue>>,
    /// Interval start, epoch ms.
    pub data_start_time: i64,
    /// Interval end, epoch ms.
    pub data_end_time: i64,
    /// When the interval was scored, epoch ms. On replays this is event time (the
    /// interval end plus the window delay), so replaying a file gives identical output.
    pub execution_start_time: i64,
    /// When scoring finished (same clock as `execution_start_time`).
    pub execution_end_time: i64,
    /// Raw anomaly score.
    pub anomaly_score: f64,
    /// Grade in [0, 1]; > 0 means anomalous.
    pub anomaly_grade: f64,
    /// Confidence in [0, 1]; grows with the data the model has seen.
    pub confidence: f64,
    /// Score threshold in force.
    pub threshold: f64,
    /// Feature values.
    pub feature_data: Vec<FeatureData>,
    /// Feature shares of the anomaly.
    pub relevant_attribution: Vec<Attribution>,
    /// Expected feature values.
    pub expected_values: Vec<Expected>,
    /// The normal range per feature, for detectors that have one (a waflog
    /// addition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_bounds: Vec<Bounds>,
    /// Start of the interval in which the anomaly began, for graded results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approx_anomaly_start_time: Option<i64>,
    /// Records aggregated into the interval (a waflog addition).
    pub records: u64,
    /// For anomalies: what drove it in the raw records of the interval, against the
    /// baseline (a waflog addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributors: Option<Vec<Contributors>>,
    /// For anomalies: the first few records of the interval that moved a feature
    /// (a waflog addition, for alert messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<Vec<ExampleRecord>>,
    /// For an interval without records: each feature, imputed as the detector's
    /// `missing` rule says (OpenSearch AD 2.17's `feature_imputed`). Absent when the
    /// interval had records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_imputed: Option<Vec<FeatureImputed>>,
    /// True on the interval at which the model took a sustained shift as the new
    /// normal (`ewma`'s `accept_shift_after`, see [`crate::detect::ewma`]): later
    /// intervals are scored against the new level. Absent when false (a waflog
    /// addition).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shift_accepted: bool,
    /// For anomalies: the incident they belong to, with the other anomalies of the
    /// same cause (see [`crate::alert::incident`]). Absent otherwise (a waflog
    /// addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// An interval the model graded above zero that a rule or a suppression window
    /// set to grade 0 (see [`crate::detect::rules`]): why, and the model's grade.
    /// Absent otherwise (a waflog addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
}

/// Why an anomaly was suppressed (see [`AnomalyResult::suppressed`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppressed {
    /// `rule: <feature> <actual> (expected <x>): <why>` or `window: <reason>`.
    pub reason: String,
    /// The grade the model gave before the rule.
    pub anomaly_grade: f64,
}

/// Whether a feature's value was imputed (see [`AnomalyResult::feature_imputed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureImputed {
    /// Feature name.
    pub feature_id: String,
    /// True: the value is not from records.
    pub imputed: bool,
}

/// A record that moved a feature, by the fields an analyst looks at first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleRecord {
    /// `httpRequest.clientIp`.
    #[serde(rename = "clientIp", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `httpRequest.uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `httpRequest.country`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// `action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// The record fields of an [`ExampleRecord`], in its field order.
pub const EXAMPLE_FIELDS: [&str; 4] = [
    "httpRequest.clientIp",
    "httpRequest.uri",
    "httpRequest.country",
    "action",
];

impl ExampleRecord {
    /// From the values of [`EXAMPLE_FIELDS`], in that order.
    pub fn from_values(v: &[Option<String>]) -> ExampleRecord {
        let get = |i: usize| v.get(i).cloned().flatten();
        ExampleRecord {
            client_ip: get(0),
            uri: get(1),
            country: get(2),
            action: get(3),
        }
    }
}

impl AnomalyResult {
    /// The result of one scored interval: `names` and `values` are the features in
    /// order, `score` what the detector said; `executed_ms` fills both execution
    /// times. Entity, anomaly start, record count and contributors are left empty.
    pub fn from_score(
        detector: &str,
        names: &[String],
        values: &[f64],
        score: &super::Score,
        (start_ms, end_ms): (i64, i64),
        executed_ms: i64,
    ) -> AnomalyResult {
        let per_feature = |data: &[f64]| -> Vec<(String, f64)> {
            names.iter().cloned().zip(data.iter().copied()).collect()
        };
        AnomalyResult {
            detector_id: detector.to_string(),
            detector_name: detector.to_string(),
            entity: None,
            data_start_time: start_ms,
            data_end_time: end_ms,
            execution_start_time: executed_ms,
            execution_end_time: executed_ms,
            anomaly_score: score.anomaly_score,
            anomaly_grade: score.anomaly_grade,
            confidence: score.confidence,
            threshold: score.threshold,
            feature_data: per_feature(values)
                .into_iter()
                .map(|(name, data)| FeatureData {
                    feature_id: name.clone(),
                    feature_name: name,
                    data,
                })
                .collect(),
            relevant_attribution: per_feature(&score.attribution)
                .into_iter()
                .map(|(feature_id, data)| Attribution { feature_id, data })
                .collect(),
            expected_values: vec![Expected {
                likelihood: 1.0,
                value_list: per_feature(&score.expected)
                    .into_iter()
                    .map(|(feature_id, data)| ExpectedValue { feature_id, data })
                    .collect(),
            }],
            expected_bounds: if score.band.len() == names.len() {
                names
                    .iter()
                    .zip(score.expected.iter().zip(&score.band))
                    .map(|(name, (&e, &b))| Bounds {
                        feature_id: name.clone(),
                        low: e - b,
                        high: e + b,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            approx_anomaly_start_time: None,
            records: 0,
            contributors: None,
            examples: None,
            feature_imputed: None,
            shift_accepted: false,
            incident_id: None,
            suppressed: None,
        }
    }

    /// True when the grade is above zero.
    pub fn is_anomaly(&self) -> bool {
        self.anomaly_grade > 0.0
    }

    /// A one-line human summary: detector, interval, the feature that moved most,
    /// actual vs expected, grade and confidence. Control characters of the
    /// record-derived values (entity, top contributors) are escaped.
    pub fn summary(&self) -> String {
        crate::text::escape_control(&self.summary_raw()).into_owned()
    }

    fn summary_raw(&self) -> String {
        let top = self
            .relevant_attribution
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.data.total_cmp(&b.1.data))
            .map_or(0, |(i, _)| i);
        let actual = self.feature_data.get(top).map_or(0.0, |f| f.data);
        let expected = self
            .expected_values
            .first()
            .and_then(|e| e.value_list.get(top))
            .map_or(0.0, |v| v.data);
        let feature = self
            .feature_data
            .get(top)
            .map_or("?", |f| f.feature_name.as_str());
        let entity = self
            .entity
            .as_ref()
            .and_then(|e| e.first())
            .map(|e| format!(" {}={}", e.name, e.value))
            .unwrap_or_default();
        let top: Vec<String> = self
            .contributors
            .iter()
            .flatten()
            .filter_map(|c| {
                c.top.first().map(|t| {
                    format!(
                        "{}={} ({}, expected {:.1})",
                        c.field, t.value, t.count, t.expected
                    )
                })
            })
            .collect();
        format!(
            "{}{} {}: {} = {} (expected {:.1}), grade {:.2}, confidence {:.2}{}{}",
            self.detector_name,
            entity,
            crate::timestamp::to_rfc3339(self.data_start_time),
            feature,
            actual,
            expected,
            self.anomaly_grade,
            self.confidence,
            if top.is_empty() {
                String::new()
            } else {
                format!("; top: {}", top.join(", "))
            },
            if self.shift_accepted {
                "; the level has lasted accept_shift_after: accepted as the new normal"
            } else {
                ""
            }
        )
    }
}
