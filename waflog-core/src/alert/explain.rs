//! What an alert says about its cause: the detector, the entity, the feature that
//! moved (actual against expected, share of the anomaly), the top contributors the
//! result carries and, for query monitors, the value that met the condition.

use serde::{Deserialize, Serialize};

use super::config::{CompareOp, QueryAggregation};
use super::incident::Incident;
use crate::detect::AnomalyResult;
use crate::detect::result::{Contributors, EntityValue, ExampleRecord};
pub(crate) use crate::text::{lenient_f64, num};
use crate::timestamp::to_rfc3339;

/// Contributor values kept per field in an explanation.
pub const MAX_CONTRIBUTORS: usize = 5;

/// Why a trigger fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The detector whose results the monitor reads.
    pub detector: String,
    /// The entity of a per-entity detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Vec<EntityValue>>,
    /// Query monitors: the value that met the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QueryValue>,
    /// The most anomalous result: for detector monitors the one that fired; for query
    /// monitors the highest-graded result in the window, if any was anomalous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalyDetail>,
    /// The incident of the result that fired, as it stood then: its cause and every
    /// detector and feature it moved (see [`crate::alert::incident`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Box<Incident>>,
}

/// A query monitor's evaluated value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryValue {
    /// The feature.
    pub feature: String,
    /// The aggregation.
    pub aggregation: QueryAggregation,
    /// The window, in milliseconds.
    pub window_ms: i64,
    /// The value; `None` for avg/min/max over an empty window.
    pub value: Option<f64>,
    /// Results in the window.
    pub results: u64,
    /// The comparison.
    pub op: CompareOp,
    /// The threshold.
    pub threshold: f64,
}

/// One anomalous result, reduced to what a reader acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyDetail {
    /// Interval start, epoch ms.
    pub data_start_time: i64,
    /// Interval end, epoch ms.
    pub data_end_time: i64,
    /// Anomaly grade in [0, 1].
    #[serde(with = "lenient_f64")]
    pub anomaly_grade: f64,
    /// Confidence in [0, 1].
    #[serde(with = "lenient_f64")]
    pub confidence: f64,
    /// Records in the interval.
    pub records: u64,
    /// Features, largest share of the anomaly first.
    pub features: Vec<FeatureMove>,
    /// The values that drove it per field (at most [`MAX_CONTRIBUTORS`] each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributors: Vec<Contributors>,
    /// The first records of the interval that moved a feature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<ExampleRecord>,
}

/// One feature: its value, its expected value and its share of the anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureMove {
    /// Feature name.
    pub feature: String,
    /// Value in the interval.
    #[serde(with = "lenient_f64")]
    pub actual: f64,
    /// Expected value, when the detector gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// Share of the anomaly in [0, 1], when the detector gave attribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
}

impl AnomalyDetail {
    /// The detail of one result.
    pub fn from_result(r: &AnomalyResult) -> AnomalyDetail {
        let expected = r.expected_values.first();
        let mut features: Vec<FeatureMove> = r
            .feature_data
            .iter()
            .map(|f| FeatureMove {
                feature: f.feature_name.clone(),
                actual: f.data,
                expected: expected
                    .and_then(|e| {
                        e.value_list
                            .iter()
                            .find(|v| v.feature_id == f.feature_id)
                            .map(|v| v.data)
                    })
                    .filter(|x| x.is_finite()),
                share: r
                    .relevant_attribution
                    .iter()
                    .find(|a| a.feature_id == f.feature_id)
                    .map(|a| a.data)
                    .filter(|x| x.is_finite()),
            })
            .collect();
        // Largest share first; a stable sort keeps the detector's order on ties.
        features.sort_by(|a, b| b.share.unwrap_or(0.0).total_cmp(&a.share.unwrap_or(0.0)));
        let contributors = r
            .contributors
            .iter()
            .flatten()
            .map(|c| Contributors {
                field: c.field.clone(),
                top: c
                    .top
                    .iter()
                    .filter(|t| t.expected.is_finite())
                    .take(MAX_CONTRIBUTORS)
                    .cloned()
                    .collect(),
            })
            .collect();
        AnomalyDetail {
            data_start_time: r.data_start_time,
            data_end_time: r.data_end_time,
            anomaly_grade: r.anomaly_grade,
            confidence: r.confidence,
            records: r.records,
            features,
            contributors,
            examples: r.examples.clone().unwrap_or_default(),
        }
    }
}

impl Explanation {
    /// The explanation of a detector monitor firing on `r`.
    pub fn from_result(r: &AnomalyResult) -> Explanation {
        Explanation {
            detector: r.detector_name.clone(),
            entity: r.entity.clone(),
            query: None,
            anomaly: Some(AnomalyDetail::from_result(r)),
            incident: None,
        }
    }

    /// The explanation of a detector monitor firing on `r`, which belongs to
    /// `incident`.
    pub fn in_incident(r: &AnomalyResult, incident: Option<&Incident>) -> Explanation {
        let mut e = Explanation::from_result(r);
        e.incident = incident.map(|i| Box::new(i.clone()));
        e
    }

    /// The incident's ID, if it belongs to one.
    pub fn incident_id(&self) -> Option<&str> {
        self.incident.as_ref().map(|i| i.incident_id.as_str())
    }

    /// `name=value, ...` of the entity, empty without one.
    pub fn entity_label(&self) -> String {
        self.entity
            .iter()
            .flatten()
            .map(|e| format!("{}={}", e.name, e.value))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The explanation as text, several lines without a trailing newline; control
    /// characters of record-derived values are escaped
    /// ([`crate::text::escape_control`]).
    pub fn render(&self) -> String {
        let mut lines = Vec::new();
        if let Some(i) = &self.incident {
            lines.extend(i.render().lines().map(str::to_string));
        }
        lines.push(format!("Detector: {}", self.detector));
        if self.entity.is_some() {
            lines.push(format!("Entity: {}", self.entity_label()));
        }
        if let Some(q) = &self.query {
            let value = q.value.map_or_else(|| "no value".to_string(), num);
            lines.push(format!(
                "Query: {}({}) over the last {} = {} ({} results; condition {} {})",
                q.aggregation,
                q.feature,
                humantime::format_duration(std::time::Duration::from_millis(
                    q.window_ms.max(0) as u64
                )),
                value,
                q.results,
                q.op.as_str(),
                num(q.threshold)
            ));
        }
        if let Some(a) = &self.anomaly {
            lines.push(format!(
                "Anomaly: grade {:.2}, confidence {:.2}, interval {} to {} ({} records)",
                a.anomaly_grade,
                a.confidence,
                to_rfc3339(a.data_start_time),
                to_rfc3339(a.data_end_time),
                a.records
            ));
            for (i, f) in a.features.iter().enumerate() {
                let label = if i == 0 {
                    "Feature moved"
                } else {
                    "Other feature"
                };
                let mut line = format!("{label}: {} = {}", f.feature, num(f.actual));
                if let Some(e) = f.expected {
                    line.push_str(&format!(" (expected {e:.1})"));
                }
                if let Some(s) = f.share {
                    line.push_str(&format!(", {:.0}% of the anomaly", s * 100.0));
                }
                lines.push(line);
            }
            if !a.contributors.is_empty() {
                lines.push("Top contributors:".into());
                for c in &a.contributors {
                    let values: Vec<String> = c
                        .top
                        .iter()
                        .map(|t| {
                            format!(
                                "{} ({} records, expected {:.1})",
                                t.value, t.count, t.expected
                            )
                        })
                        .collect();
                    lines.push(format!("  - {}: {}", c.field, values.join(", ")));
                }
            }
            if !a.examples.is_empty() {
                lines.push("Example records:".into());
                for x in &a.examples {
                    let field = |v: &Option<String>| v.as_deref().unwrap_or("-").to_string();
                    lines.push(format!(
                        "  - clientIp {}, uri {}, country {}, action {}",
                        field(&x.client_ip),
                        field(&x.uri),
                        field(&x.country),
                        field(&x.action)
                    ));
                }
            }
        }
        // Every line is laid out here on one line; the values in it come from records
        // (URIs, countries, rule IDs, entity values), so their control characters are
        // escaped before the text can reach a terminal.
        lines
            .iter()
            .map(|l| crate::text::escape_control(l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::result::Contributor;
    use crate::detect::{AnomalyResult, Score};

    pub(crate) fn result(grade: f64) -> AnomalyResult {
        let score = Score {
            anomaly_score: 9.0,
            anomaly_grade: grade,
            confidence: 0.9,
            threshold: 5.0,
            expected: vec![3.0, 100.0],
            attribution: vec![0.25, 0.75],
            shifted_categories: vec![],
            band: vec![],
        };
        let mut r = AnomalyResult::from_score(
            "source-anomaly-detector",
            &["K_source".into(), "UNK_source".into()],
            &[98.0, 240.0],
            &score,
            (1_669_831_860_000, 1_669_831_920_000),
            1_669_831_930_000,
        );
        r.records = 338;
        r.examples = Some(vec![ExampleRecord {
            client_ip: Some("203.0.113.7".into()),
            uri: Some("/login".into()),
            country: Some("US".into()),
            action: None,
        }]);
        r.contributors = Some(vec![Contributors {
            field: "httpSourceName".into(),
            top: vec![Contributor {
                value: "-".into(),
                count: 240,
                expected: 3.04,
            }],
        }]);
        r
    }

    #[test]
    fn explanation_names_the_feature_that_moved() {
        let e = Explanation::from_result(&result(0.93));
        let a = e.anomaly.as_ref().unwrap();
        assert_eq!(a.features[0].feature, "UNK_source");
        assert_eq!(a.features[0].expected, Some(100.0));
        assert_eq!(a.features[0].share, Some(0.75));
        assert_eq!(
            e.render(),
            "Detector: source-anomaly-detector\n\
             Anomaly: grade 0.93, confidence 0.90, interval 2022-11-30T18:11:00.000Z to 2022-11-30T18:12:00.000Z (338 records)\n\
             Feature moved: UNK_source = 240 (expected 100.0), 75% of the anomaly\n\
             Other feature: K_source = 98 (expected 3.0), 25% of the anomaly\n\
             Top contributors:\n  - httpSourceName: - (240 records, expected 3.0)\n\
             Example records:\n  - clientIp 203.0.113.7, uri /login, country US, action -"
        );
        assert_eq!(num(2.5), "2.50");
        // Numbers that are not finite survive a JSON round trip (as NaN).
        let mut r = result(0.93);
        r.feature_data[0].data = f64::INFINITY;
        r.expected_values[0].value_list[0].data = f64::NAN;
        let e = Explanation::from_result(&r);
        let back: Explanation = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        let f = &back.anomaly.as_ref().unwrap().features[1];
        assert!(f.actual.is_nan() && f.expected.is_none());
        assert_eq!(num(f64::NAN), "NaN");
    }
}
