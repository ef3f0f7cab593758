//! Scoring detector results against the simulator's ground-truth episodes.
//!
//! A detector *covers* an episode's field when one of its features reads that field's
//! indicators (`country` -> `UNK_country`/`K_country`, ...) or the raw field itself;
//! floods are covered by detectors with a plain `count` feature. A graded result of a
//! covering detector matches an episode when its interval overlaps the span from the
//! episode's start until `shingle_size` intervals after its end (models look back that
//! far, so a result that late still reacts to the episode). Graded results that match
//! no episode are false alarms, except those during an episode of another field (a
//! flood raises every count; those are reported apart as collateral). Results within
//! the first `warmup` intervals of a detector are not counted at all.

use serde::Serialize;

use crate::alert::{Incident, Label};
use crate::detect::{Aggregation, AnomalyResult, DetectorSpec};
use crate::pipeline::FeedbackDocument;
use crate::simulate::TruthEpisode;

/// How one episode was detected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeOutcome {
    /// The episode's field (or `flood`).
    pub field: String,
    /// Its intensity.
    pub intensity: f64,
    /// Start, epoch ms.
    pub start_ms: i64,
    /// End, epoch ms.
    pub end_ms: i64,
    /// Detectors that cover the field.
    pub detectors: Vec<String>,
    /// True when a covering detector flagged it.
    pub detected: bool,
    /// Start of the first flagged interval, epoch ms.
    pub first_flag_ms: Option<i64>,
    /// Delay from the episode start to the start of the first flagged interval, in
    /// intervals of the flagging detector (0 = the interval holding the start).
    pub delay_intervals: Option<i64>,
    /// Alerts (notified incidents) on it, when the results hold incident
    /// documents ([`Report::add_alerts`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<usize>,
}

/// What the alerts said: from the incident documents of `waflog detect --alerts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertFigures {
    /// Incidents that raised an alert.
    pub alerts: usize,
    /// Of those, alerts overlapping an episode (from its start to
    /// [`ALERT_REACH_MS`] after its end).
    pub true_alerts: usize,
    /// `true_alerts / alerts` (None without alerts).
    pub precision: Option<f64>,
    /// Incidents, alerted or not.
    pub incidents: usize,
    /// Alerts a responder labelled `not_anomaly` (`waflog alerts ack ID
    /// --not-anomaly`).
    pub labelled_not_anomaly: usize,
    /// Of those, the ones the ground truth agrees with (they overlap no episode).
    pub labels_agreeing: usize,
}

/// How long after an episode's end an alert still counts as its alert.
pub const ALERT_REACH_MS: i64 = 15 * 60_000;

/// Per-detector figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorOutcome {
    /// Detector name.
    pub detector: String,
    /// Episodes whose field it covers.
    pub episodes: usize,
    /// Of those, episodes it flagged.
    pub detected: usize,
    /// `detected / episodes` (None without episodes).
    pub recall: Option<f64>,
    /// Graded results that matched an episode it covers.
    pub true_flags: usize,
    /// Graded results matching no episode.
    pub false_alarms: usize,
    /// Graded results during an episode of a field it does not cover.
    pub collateral: usize,
    /// `true_flags / (true_flags + false_alarms)` (None without flags).
    pub precision: Option<f64>,
    /// False alarms per simulated day.
    pub false_alarms_per_day: f64,
    /// Mean delay over detected episodes, in intervals.
    pub mean_delay_intervals: Option<f64>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Simulated days covered by the results (after warm-up).
    pub days: f64,
    /// Per episode.
    pub episodes: Vec<EpisodeOutcome>,
    /// Per detector.
    pub detectors: Vec<DetectorOutcome>,
    /// Episodes detected over all episodes.
    pub recall: Option<f64>,
    /// Over all detectors.
    pub precision: Option<f64>,
    /// Over all detectors, per detector-day.
    pub false_alarms_per_detector_day: f64,
    /// Alerts per episode and alert precision, when the results hold incident
    /// documents ([`Report::add_alerts`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertFigures>,
}

/// The indicator and raw fields an episode field moves.
fn field_paths(field: &str) -> &'static [&'static str] {
    match field {
        "action" => &["B_action", "K_action", "action"],
        "httpSourceName" => &["UNK_source", "K_source", "httpSourceName"],
        "httpStatus" => &["B_httpstatus", "O_httpstatus", "httpStatus"],
        "country" => &["UNK_country", "K_country", "httpRequest.country"],
        "httpMethod" => &["uncommon_method", "common_method", "httpRequest.httpMethod"],
        _ => &[],
    }
}

/// True when `spec` covers episodes of `field`.
pub fn covers(spec: &DetectorSpec, field: &str) -> bool {
    spec.features.iter().any(|f| {
        if field == "flood" {
            return f.aggregation == Aggregation::Count && f.field.is_none() && f.filter.is_none();
        }
        let paths = field_paths(field);
        f.field.as_deref().is_some_and(|p| paths.contains(&p))
            || f.filter
                .as_ref()
                .is_some_and(|flt| paths.contains(&flt.field.as_str()))
    })
}

/// Scores `results` against `truth`. The span of simulated time is taken from the
/// results, so pass every interval's result (`waflog detect --all`), not only the
/// anomalies. `warmup` intervals at the start of the span are ignored.
pub fn evaluate(
    truth: &[TruthEpisode],
    results: &[AnomalyResult],
    specs: &[DetectorSpec],
    warmup: i64,
) -> Report {
    let first = results.iter().map(|r| r.data_start_time).min().unwrap_or(0);
    let last = results.iter().map(|r| r.data_end_time).max().unwrap_or(0);
    let mut episodes: Vec<EpisodeOutcome> = truth
        .iter()
        .map(|t| EpisodeOutcome {
            field: t.field.clone(),
            intensity: t.intensity,
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            detectors: specs
                .iter()
                .filter(|s| covers(s, &t.field))
                .map(|s| s.name.clone())
                .collect(),
            detected: false,
            first_flag_ms: None,
            delay_intervals: None,
            alerts: None,
        })
        .collect();
    let mut detectors = Vec::new();
    let mut days_sum = 0.0;
    for spec in specs {
        let interval = spec.interval();
        let reach = spec.shingle_size as i64 * interval;
        let warm_end = first + warmup * interval;
        let mut out = DetectorOutcome {
            detector: spec.name.clone(),
            episodes: 0,
            detected: 0,
            recall: None,
            true_flags: 0,
            false_alarms: 0,
            collateral: 0,
            precision: None,
            false_alarms_per_day: 0.0,
            mean_delay_intervals: None,
        };
        let mut delays = Vec::new();
        let mine: Vec<usize> = (0..truth.len())
            .filter(|&i| covers(spec, &truth[i].field))
            .collect();
        let mut detected = vec![false; truth.len()];
        for r in results
            .iter()
            .filter(|r| r.detector_name == spec.name && r.is_anomaly())
        {
            if r.data_start_time < warm_end {
                continue;
            }
            let overlaps = |t: &TruthEpisode| {
                r.data_end_time > t.start_ms && r.data_start_time < t.end_ms + reach
            };
            let matched: Vec<usize> = mine
                .iter()
                .copied()
                .filter(|&i| overlaps(&truth[i]))
                .collect();
            if matched.is_empty() {
                if truth.iter().any(overlaps) {
                    out.collateral += 1;
                } else {
                    out.false_alarms += 1;
                }
                continue;
            }
            out.true_flags += 1;
            for i in matched {
                if !detected[i] {
                    detected[i] = true;
                    let start_interval = truth[i].start_ms.div_euclid(interval) * interval;
                    let delay = (r.data_start_time - start_interval)
                        .div_euclid(interval)
                        .max(0);
                    delays.push(delay as f64);
                    let e = &mut episodes[i];
                    if e.first_flag_ms.is_none_or(|f| r.data_start_time < f) {
                        e.first_flag_ms = Some(r.data_start_time);
                        e.delay_intervals = Some(delay);
                    }
                    e.detected = true;
                }
            }
        }
        out.episodes = mine.len();
        out.detected = detected.iter().filter(|d| **d).count();
        out.recall = (out.episodes > 0).then(|| out.detected as f64 / out.episodes as f64);
        let flags = out.true_flags + out.false_alarms;
        out.precision = (flags > 0).then(|| out.true_flags as f64 / flags as f64);
        let days = ((last - warm_end).max(0) as f64) / 86_400_000.0;
        days_sum += days;
        out.false_alarms_per_day = if days > 0.0 {
            out.false_alarms as f64 / days
        } else {
            0.0
        };
        out.mean_delay_intervals =
            (!delays.is_empty()).then(|| delays.iter().sum::<f64>() / delays.len() as f64);
        detectors.push(out);
    }
    let detected = episodes.iter().filter(|e| e.detected).count();
    let recall = (!episodes.is_empty()).then(|| detected as f64 / episodes.len() as f64);
    let (tf, fa): (usize, usize) = detectors
        .iter()
        .fold((0, 0), |(a, b), d| (a + d.true_flags, b + d.false_alarms));
    Report {
        days: if specs.is_empty() {
            0.0
        } else {
            days_sum / specs.len() as f64
        },
        episodes,
        recall,
        precision: (tf + fa > 0).then(|| tf as f64 / (tf + fa) as f64),
        false_alarms_per_detector_day: if days_sum > 0.0 {
            fa as f64 / days_sum
        } else {
            0.0
        },
        detectors,
        alerts: None,
    }
}

/// Gives each incident the label of the feedback on its alert (a feedback
/// document names the alert and its incident; the incident document may have been
/// written before the responder's verdict).
pub fn apply_feedback(incidents: &mut [Incident], feedback: &[FeedbackDocument]) {
    for f in feedback.iter().filter(|f| f.label.is_some()) {
        for i in incidents.iter_mut().filter(|i| {
            i.alert_id.as_deref() == Some(f.alert_id.as_str())
                || f.incident_id.as_deref() == Some(i.incident_id.as_str())
        }) {
            i.label = f.label;
        }
    }
}

impl Report {
    /// Adds the alert figures: each incident that raised an alert (`alert_id`)
    /// counts for every episode it overlaps (from the episode's start to
    /// [`ALERT_REACH_MS`] after its end); an alert overlapping none is a false
    /// alert; labels from responders ([`apply_feedback`]) are counted against the
    /// truth. Without incidents, nothing is added.
    pub fn add_alerts(&mut self, truth: &[TruthEpisode], incidents: &[Incident]) {
        if incidents.is_empty() {
            return;
        }
        let alerted: Vec<&Incident> = incidents.iter().filter(|i| i.alert_id.is_some()).collect();
        let overlaps = |i: &Incident, t: &TruthEpisode| {
            i.data_end_time > t.start_ms && i.data_start_time < t.end_ms + ALERT_REACH_MS
        };
        for (e, t) in self.episodes.iter_mut().zip(truth) {
            e.alerts = Some(alerted.iter().filter(|i| overlaps(i, t)).count());
        }
        let true_alerts = alerted
            .iter()
            .filter(|i| truth.iter().any(|t| overlaps(i, t)))
            .count();
        let labelled: Vec<&&Incident> = alerted
            .iter()
            .filter(|i| i.label == Some(Label::NotAnomaly))
            .collect();
        self.alerts = Some(AlertFigures {
            alerts: alerted.len(),
            true_alerts,
            precision: (!alerted.is_empty()).then(|| true_alerts as f64 / alerted.len() as f64),
            incidents: incidents.len(),
            labelled_not_anomaly: labelled.len(),
            labels_agreeing: labelled
                .iter()
                .filter(|i| !truth.iter().any(|t| overlaps(i, t)))
                .count(),
        });
    }

    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.2}", x));
        let mut s = format!(
            "{:<30} {:>8} {:>8} {:>9} {:>8} {:>10} {:>9} {:>10}\n",
            "detector",
            "episodes",
            "detected",
            "precision",
            "false",
            "false/day",
            "collat.",
            "delay"
        );
        for d in &self.detectors {
            s += &format!(
                "{:<30} {:>8} {:>8} {:>9} {:>8} {:>10.2} {:>9} {:>10}\n",
                d.detector,
                d.episodes,
                d.detected,
                pct(d.precision),
                d.false_alarms,
                d.false_alarms_per_day,
                d.collateral,
                d.mean_delay_intervals
                    .map_or("-".into(), |x| format!("{x:.2}")),
            );
        }
        s += &format!(
            "\nepisodes detected: {}/{} (recall {}), precision {}, false alarms per detector-day {:.2}, over {:.2} simulated days\n",
            self.episodes.iter().filter(|e| e.detected).count(),
            self.episodes.len(),
            pct(self.recall),
            pct(self.precision),
            self.false_alarms_per_detector_day,
            self.days
        );
        if let Some(a) = &self.alerts {
            s += &format!(
                "alerts: {} ({} on an episode, alert precision {}) from {} incidents\n",
                a.alerts,
                a.true_alerts,
                pct(a.precision),
                a.incidents
            );
            if a.labelled_not_anomaly > 0 {
                s += &format!(
                    "labelled not_anomaly by a responder: {} ({} on no episode: the truth agrees)\n",
                    a.labelled_not_anomaly, a.labels_agreeing
                );
            }
        }
        for e in &self.episodes {
            s += &format!(
                "  {:<15} {:>5.2} {} .. {}  {}{}\n",
                e.field,
                e.intensity,
                crate::timestamp::to_rfc3339(e.start_ms),
                crate::timestamp::to_rfc3339(e.end_ms),
                match e.delay_intervals {
                    Some(d) => format!("detected after {d} interval(s)"),
                    None if e.detectors.is_empty() => "no detector covers this field".into(),
                    None => "MISSED".into(),
                },
                e.alerts
                    .map_or(String::new(), |n| format!(", {n} alert(s)"))
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::result::{Attribution, Expected, FeatureData};

    fn result(detector: &str, start_min: i64, grade: f64) -> AnomalyResult {
        AnomalyResult {
            detector_id: detector.into(),
            detector_name: detector.into(),
            entity: None,
            data_start_time: start_min * 60_000,
            data_end_time: (start_min + 1) * 60_000,
            execution_start_time: 0,
            execution_end_time: 0,
            anomaly_score: 0.0,
            anomaly_grade: grade,
            confidence: 1.0,
            threshold: 5.0,
            feature_data: vec![FeatureData {
                feature_id: "f".into(),
                feature_name: "f".into(),
                data: 0.0,
            }],
            relevant_attribution: vec![Attribution {
                feature_id: "f".into(),
                data: 1.0,
            }],
            expected_values: vec![Expected {
                likelihood: 1.0,
                value_list: vec![],
            }],
            expected_bounds: vec![],
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

    fn episode(field: &str, start_min: i64, minutes: i64) -> TruthEpisode {
        TruthEpisode {
            field: field.into(),
            intensity: 1.0,
            start_ms: start_min * 60_000 + 30_000,
            end_ms: (start_min + minutes) * 60_000 + 30_000,
            start: String::new(),
            end: String::new(),
            multiplier: None,
            client_ip: None,
        }
    }

    #[test]
    fn coverage_of_the_default_detectors() {
        let d = DetectorSpec::defaults();
        let names = |f: &str| {
            d.iter()
                .filter(|s| covers(s, f))
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("country"), ["country-anomaly-detector"]);
        assert_eq!(names("httpStatus"), ["httpstatus-anomaly-detector"]);
        assert_eq!(names("flood"), ["request-count-detector"]);
    }

    #[test]
    fn counts_by_hand() {
        let specs = DetectorSpec::defaults();
        // A day of results: country episode at minute 100 (10 minutes), flood at 500.
        let truth = vec![
            episode("country", 100, 10),
            episode("flood", 500, 5),
            episode("action", 900, 5),
        ];
        let mut results: Vec<AnomalyResult> = (0..1440)
            .map(|m| result("country-anomaly-detector", m, 0.0))
            .collect();
        results.push(result("country-anomaly-detector", 101, 0.9)); // delay 1
        results.push(result("country-anomaly-detector", 102, 0.9));
        results.push(result("country-anomaly-detector", 115, 0.5)); // within 8 intervals after the end
        results.push(result("country-anomaly-detector", 300, 0.5)); // false alarm
        results.push(result("country-anomaly-detector", 501, 0.5)); // during the flood: collateral
        results.push(result("country-anomaly-detector", 3, 0.9)); // warm-up: ignored
        results.push(result("request-count-detector", 500, 0.9)); // delay 0
        let r = evaluate(&truth, &results, &specs, 10);
        let c = &r.detectors[1];
        assert_eq!(
            (
                c.episodes,
                c.detected,
                c.true_flags,
                c.false_alarms,
                c.collateral
            ),
            (1, 1, 3, 1, 1)
        );
        assert_eq!(c.precision, Some(0.75));
        assert_eq!(c.mean_delay_intervals, Some(1.0));
        let days = (1440.0 - 10.0) / 1440.0;
        assert!((c.false_alarms_per_day - 1.0 / days).abs() < 1e-9);
        assert_eq!(r.episodes[0].delay_intervals, Some(1));
        assert_eq!(r.episodes[1].delay_intervals, Some(0));
        assert!(!r.episodes[2].detected);
        assert_eq!(r.recall, Some(2.0 / 3.0));
        assert!(r.table().contains("MISSED"));
    }
}
