//! Generic metric series: `timestamp,value[,value...]` rows, one row per interval as
//! given (no re-aggregation, no zero-filling of gaps), so the same detectors run on
//! any metric, not only WAF logs.
//!
//! The first row may be a header (`timestamp,cpu,latency`); its names become the
//! feature names. Timestamps are read like WAF timestamps (epoch numbers of any unit,
//! RFC 3339, or `YYYY-MM-DD HH:MM:SS` as UTC).

use super::result::AnomalyResult;
use super::{AlgorithmSpec, Detector, IntervalFeatures};
use crate::error::SchemaError;
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
        }
    }

    /// Feeds one CSV line; returns the row's result (`None` for a header or blank).
    pub fn push_line(&mut self, line: &str) -> Result<Option<AnomalyResult>, SchemaError> {
        let header_allowed = self.rows == 0 && self.features.is_none();
        let (ts, values) = match metric_row(line, header_allowed)? {
            MetricRow::Blank => return Ok(None),
            MetricRow::Header(names) => {
                self.features = Some(names);
                return Ok(None);
            }
            MetricRow::Values { time_ms, values } => (time_ms, values),
        };
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
