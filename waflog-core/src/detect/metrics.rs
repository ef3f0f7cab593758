//! Generic metric series: `timestamp,value[,value...]` rows, one row per interval as
//! given (no re-aggregation, no zero-filling of gaps), so the same detectors run on
//! any metric, not only WAF logs.
//!
//! The first row may be a header (`timestamp,cpu,latency`); its names become the
//! feature names. Timestamps are read like WAF timestamps (epoch numbers of any unit,
//! RFC 3339, or `YYYY-MM-DD HH:MM:SS` as UTC).
//!
//! A series saves its model and position ([`MetricSeries::snapshot`], kept in the
//! pipeline's [`State`](crate::pipeline::State) under its name) and resumes from
//! them ([`MetricSeries::restore`]): the restored model continues exactly as the
//! one that was saved. Rows at or before the last row scored before the save are
//! already in the model: when a resumed series is fed them again (a file that has
//! grown since, read from its start), they are skipped and counted
//! ([`MetricSeries::skipped`]) until the first later row.

use serde::{Deserialize, Serialize};

use super::result::AnomalyResult;
use super::{AlgorithmSpec, Detector, IntervalFeatures};
use crate::error::{DetectError, SchemaError};
use crate::parse::csv::{MetricRow, metric_row};

/// One metric series scored row by row.
#[derive(Debug)]
pub struct MetricSeries {
    name: String,
    algorithm: AlgorithmSpec,
    features: Option<Vec<String>>,
    model: Option<Box<dyn Detector>>,
    prev_ts: Option<i64>,
    anomaly_start: Option<i64>,
    rows: u64,
    /// After a restore: rows at or before this time were scored before the save.
    resume_after: Option<i64>,
    skipped: u64,
}

/// What a [`MetricSeries`] saves: its algorithm, feature names, model and position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// The algorithm the model was built with (a restore under another fails).
    pub algorithm: AlgorithmSpec,
    /// The feature names (from the header, or `value1..`), once a row was read.
    pub features: Option<Vec<String>>,
    /// The model's [`Detector::snapshot`]; `None` before the first row, or when
    /// the model cannot be saved (it then starts afresh).
    pub model: Option<serde_json::Value>,
    /// Time of the last row scored (epoch ms).
    pub last_ms: Option<i64>,
    /// Start of the anomaly under way at the last row.
    pub anomaly_start_ms: Option<i64>,
    /// Rows scored.
    pub rows: u64,
}

impl MetricSeries {
    /// A series called `name` (the detector name in results) scored by `algorithm`.
    pub fn new(name: &str, algorithm: AlgorithmSpec) -> MetricSeries {
        MetricSeries {
            name: name.to_string(),
            algorithm,
            features: None,
            model: None,
            prev_ts: None,
            anomaly_start: None,
            rows: 0,
            resume_after: None,
            skipped: 0,
        }
    }

    /// The series `name` resumed from `state`, to be scored by `algorithm`: an
    /// error when the state was saved for another algorithm (or other parameters)
    /// or its model cannot be read.
    pub fn restore(
        name: &str,
        algorithm: AlgorithmSpec,
        state: SeriesState,
    ) -> Result<MetricSeries, DetectError> {
        if state.algorithm != algorithm {
            return Err(DetectError::StateMismatch {
                reason: format!("series {name} was scored by another algorithm or parameters"),
            });
        }
        let model = match state.model {
            Some(m) => Some(
                algorithm
                    .restore(m)
                    .map_err(|reason| DetectError::StateModel {
                        detector: name.to_string(),
                        reason,
                    })?,
            ),
            None => None,
        };
        Ok(MetricSeries {
            name: name.to_string(),
            algorithm,
            features: state.features,
            model,
            prev_ts: state.last_ms,
            anomaly_start: state.anomaly_start_ms,
            rows: state.rows,
            resume_after: state.last_ms,
            skipped: 0,
        })
    }

    /// The series' state, for [`MetricSeries::restore`].
    pub fn snapshot(&self) -> SeriesState {
        SeriesState {
            algorithm: self.algorithm.clone(),
            features: self.features.clone(),
            model: self.model.as_ref().and_then(|m| m.snapshot()),
            last_ms: self.prev_ts,
            anomaly_start_ms: self.anomaly_start,
            rows: self.rows,
        }
    }

    /// The series' name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The algorithm that scores it.
    pub fn algorithm(&self) -> &AlgorithmSpec {
        &self.algorithm
    }

    /// Rows scored, including those before a restore.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows skipped since the restore because they were scored before it.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Feeds one CSV line; returns the row's result (`None` for a header or blank).
    /// A row skipped as already scored (see the module docs) also gives `None`.
    pub fn push_line(&mut self, line: &str) -> Result<Option<AnomalyResult>, SchemaError> {
        // A resumed series reading its file again from the start meets the header
        // again: it must name the columns the series has.
        let header_allowed =
            (self.rows == 0 && self.features.is_none()) || self.resume_after.is_some();
        let (ts, values) = match metric_row(line, header_allowed)? {
            MetricRow::Blank => return Ok(None),
            MetricRow::Header(names) => {
                if let Some(known) = self.features.as_ref().filter(|_| self.rows > 0) {
                    if *known != names {
                        return Err(SchemaError::InvalidField(format!(
                            "header {} differs from the resumed series' columns {}",
                            names.join(","),
                            known.join(",")
                        )));
                    }
                } else {
                    self.features = Some(names);
                }
                return Ok(None);
            }
            MetricRow::Values { time_ms, values } => (time_ms, values),
        };
        if let Some(after) = self.resume_after {
            if ts <= after {
                self.skipped += 1;
                return Ok(None);
            }
            self.resume_after = None;
        }
        let names = self
            .features
            .get_or_insert_with(|| (1..=values.len()).map(|i| format!("value{i}")).collect());
        if values.len() != names.len() {
            return Err(SchemaError::InvalidField(format!(
                "{} values for {} columns",
                values.len(),
                names.len()
            )));
        }
        let n = values.len();
        let algorithm = &self.algorithm;
        let model = self.model.get_or_insert_with(|| algorithm.build(n));
        let s = model.process(&IntervalFeatures {
            start_ms: ts,
            end_ms: ts,
            values: &values,
            categories: &[],
        });
        let end = ts + self.prev_ts.map_or(0, |p| (ts - p).max(0));
        self.prev_ts = Some(ts);
        self.rows += 1;
        let approx = if s.anomaly_grade > 0.0 {
            Some(*self.anomaly_start.get_or_insert(ts))
        } else {
            self.anomaly_start = None;
            None
        };
        let mut result = AnomalyResult::from_score(&self.name, names, &values, &s, (ts, end), end);
        result.approx_anomaly_start_time = approx;
        result.records = 1;
        Ok(Some(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rows_and_a_spike() {
        let mut m = MetricSeries::new("cpu", AlgorithmSpec::default());
        assert!(m.push_line("timestamp,cpu,mem").unwrap().is_none());
        let mut last = None;
        for i in 0..40 {
            let v = if i == 30 { 90.0 } else { 10.0 + (i % 3) as f64 };
            let line = format!("2014-04-10 09:{i:02}:00,{v},50");
            last = m.push_line(&line).unwrap();
            if i == 30 {
                let r = last.clone().unwrap();
                assert!(r.anomaly_grade > 0.5);
                assert_eq!(r.feature_data[0].feature_name, "cpu");
                assert_eq!(r.data_end_time - r.data_start_time, 60_000);
            }
        }
        assert_eq!(last.unwrap().anomaly_grade, 0.0);
    }

    /// Rows of a noisy daily shape with a spike at row 700 (fixed seed).
    fn rows(n: usize) -> Vec<String> {
        let mut x = 11_u64;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let noise = (x >> 40) as f64 / (1u64 << 24) as f64;
                let phase = (i % 96) as f64 / 96.0 * std::f64::consts::TAU;
                let v = if i == 700 {
                    300.0
                } else {
                    40.0 + 10.0 * phase.sin() + 3.0 * noise
                };
                format!("{},{v}", 1_600_000_000 + 900 * i as i64)
            })
            .collect()
    }

    fn scores(m: &mut MetricSeries, lines: &[String]) -> Vec<(f64, f64, Option<i64>)> {
        lines
            .iter()
            .filter_map(|l| m.push_line(l).unwrap())
            .map(|r| {
                (
                    r.anomaly_score,
                    r.anomaly_grade,
                    r.approx_anomaly_start_time,
                )
            })
            .collect()
    }

    #[test]
    fn a_restored_series_continues_bit_identically_and_skips_rows_it_has() {
        let lines = rows(1000);
        for algorithm in [
            AlgorithmSpec::metric_default(),
            AlgorithmSpec::artime_likelihood_ensemble(),
            AlgorithmSpec::default(),
        ] {
            let mut whole = MetricSeries::new("s", algorithm.clone());
            let expected = scores(&mut whole, &lines);
            assert!(expected[700].1 > 0.0, "{algorithm:?}: the spike");

            let mut first = MetricSeries::new("s", algorithm.clone());
            let mut got = scores(&mut first, &lines[..600]);
            // Through JSON, as in a state file.
            let saved: SeriesState =
                serde_json::from_str(&serde_json::to_string(&first.snapshot()).unwrap()).unwrap();
            assert_eq!(saved.rows, 600);
            let mut resumed = MetricSeries::restore("s", algorithm.clone(), saved).unwrap();
            // The grown file read from its start: the first 600 rows are skipped.
            got.extend(scores(&mut resumed, &lines));
            assert_eq!(resumed.skipped(), 600);
            assert_eq!(resumed.rows(), 1000);
            assert_eq!(got.len(), expected.len());
            for (i, (a, b)) in expected.iter().zip(&got).enumerate() {
                assert_eq!(a.0.to_bits(), b.0.to_bits(), "{algorithm:?} row {i}");
                assert_eq!((a.1.to_bits(), a.2), (b.1.to_bits(), b.2), "row {i}");
            }
            assert_eq!(resumed.snapshot(), whole.snapshot());
        }
    }

    #[test]
    fn a_resumed_series_checks_its_header_and_its_algorithm() {
        let mut m = MetricSeries::new("cpu", AlgorithmSpec::default());
        assert!(m.push_line("timestamp,cpu").unwrap().is_none());
        assert!(m.push_line("1600000000,1").unwrap().is_some());
        let saved = m.snapshot();
        assert_eq!(saved.features, Some(vec!["cpu".to_string()]));
        // The same header read again is fine; another one is an error.
        let mut r = MetricSeries::restore("cpu", AlgorithmSpec::default(), saved.clone()).unwrap();
        assert!(r.push_line("timestamp,cpu").unwrap().is_none());
        assert!(r.push_line("1600000000,1").unwrap().is_none());
        assert_eq!(r.skipped(), 1);
        let mut r = MetricSeries::restore("cpu", AlgorithmSpec::default(), saved.clone()).unwrap();
        let e = r.push_line("timestamp,mem").unwrap_err().to_string();
        assert!(e.contains("differs"), "{e}");
        // After the first new row a header is a bad row, as in a fresh series.
        assert!(r.push_line("1600000060,2").unwrap().is_some());
        assert!(r.push_line("timestamp,cpu").is_err());
        // Another algorithm, or a model that does not read, is refused.
        let e = MetricSeries::restore("cpu", AlgorithmSpec::metric_default(), saved.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains("series cpu") && e.contains("--fresh"), "{e}");
        let mut bad = saved;
        bad.model = Some(serde_json::json!({"not": "a model"}));
        let e = MetricSeries::restore("cpu", AlgorithmSpec::default(), bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu") && e.contains("cannot be restored"), "{e}");
    }

    #[test]
    fn bad_rows_are_errors_and_the_series_goes_on() {
        let mut m = MetricSeries::new("x", AlgorithmSpec::default());
        assert!(m.push_line("1397120400,1").unwrap().is_some());
        assert!(m.push_line("1397120460,abc").is_err());
        assert!(m.push_line("1397120460,1,2").is_err());
        assert!(m.push_line("later,1").is_err());
        assert!(m.push_line("1397120520,2").unwrap().is_some());
    }
}
