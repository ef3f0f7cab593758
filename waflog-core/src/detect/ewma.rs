//! The decayed z-score detector (`type = "ewma"`).
//!
//! Per feature it keeps an exponentially weighted mean and variance of the interval
//! values (West 1979, "Updating mean and variance estimates"; weight `alpha = 1 -
//! 2^(-1 / half_life)`, so an interval `half_life` intervals old counts half). An
//! interval is scored *before* it is learnt: the anomaly score is the largest absolute
//! z-score over the features,
//!
//! `z = (x - mean) / sqrt(var + (0.05 * mean)^2 + 0.25)`,
//!
//! where the two extra terms keep a constant or near-zero series from producing huge
//! scores on a change of one (0.25 is the variance of a fair coin flip, the least
//! noise a count can have; 5 % of the mean allows for a little relative noise on
//! large counts). The grade is `1 - threshold / score` when the score reaches the
//! threshold (0 below it), so it lies in [0, 1) and grows with the score; the
//! confidence `1 - exp(-n / 10)` grows with the number of intervals seen (0.63 after
//! 10, 0.98 after 40). Anomalous values are learnt clipped to `mean ± threshold *
//! sd`, so a long episode is not absorbed into the baseline within a few intervals.
//! Until `1 / alpha` intervals have been seen, every interval weighs the same (a
//! running mean and variance), so the early baseline is unbiased.
//! The first `min_intervals` intervals are learnt but not graded.

use serde::{Deserialize, Serialize};

use super::{Detector, IntervalFeatures, Score};

/// Decayed mean/variance z-score detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    alpha: f64,
    threshold: f64,
    min_intervals: u32,
    seen: u64,
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl Ewma {
    /// A detector for `features` features.
    pub fn new(features: usize, half_life: f64, threshold: f64, min_intervals: u32) -> Ewma {
        Ewma {
            alpha: 1.0 - 0.5_f64.powf(1.0 / half_life),
            threshold,
            min_intervals,
            seen: 0,
            mean: vec![0.0; features],
            var: vec![0.0; features],
        }
    }

    fn scale(&self, i: usize) -> f64 {
        let m = self.mean[i];
        (self.var[i] + (0.05 * m) * (0.05 * m) + 0.25).sqrt()
    }
}

impl Detector for Ewma {
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        let x = interval.values;
        let n = x.len().min(self.mean.len());
        let z: Vec<f64> = (0..n)
            .map(|i| (x[i] - self.mean[i]) / self.scale(i))
            .collect();
        let score = z.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let (grade, confidence) =
            super::grade_and_confidence(score, self.threshold, self.seen, self.min_intervals);
        let total: f64 = z.iter().map(|v| v.abs()).sum();
        let attribution = z
            .iter()
            .map(|v| {
                if total > 0.0 {
                    v.abs() / total
                } else {
                    1.0 / n.max(1) as f64
                }
            })
            .collect();
        let expected = self.mean[..n].to_vec();
        let band = (0..n).map(|i| self.threshold * self.scale(i)).collect();
        // Learn: the first value sets the baseline; later ones update it, clipped.
        for (i, &xi) in x.iter().enumerate().take(n) {
            if self.seen == 0 {
                self.mean[i] = xi;
                continue;
            }
            let sd = self.scale(i);
            let xi = if grade > 0.0 {
                xi.clamp(
                    self.mean[i] - self.threshold * sd,
                    self.mean[i] + self.threshold * sd,
                )
            } else {
                xi
            };
            // Until 1/alpha intervals are seen, weigh all equally (a plain running mean
            // and variance), so the early baseline is not biased towards the first value.
            let alpha = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
            let d = xi - self.mean[i];
            self.mean[i] += alpha * d;
            self.var[i] = (1.0 - alpha) * (self.var[i] + alpha * d * d);
        }
        self.seen += 1;
        Score {
            anomaly_score: score,
            anomaly_grade: grade,
            confidence,
            threshold: self.threshold,
            expected,
            attribution,
            shifted_categories: Vec::new(),
            band,
        }
    }

    fn snapshot(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::counts;

    fn run(series: &[f64]) -> Vec<Score> {
        let mut d = Ewma::new(1, 60.0, 5.0, 5);
        crate::detect::testutil::feed(&mut d, series)
    }

    #[test]
    fn degenerate_inputs() {
        assert!(run(&[]).is_empty());
        let one = run(&[3.0]);
        assert_eq!((one[0].anomaly_grade, one[0].confidence), (0.0, 0.0));
        // A constant series never alarms; a change of one on it does not either.
        let mut s = vec![5.0; 100];
        s[60] = 6.0;
        assert!(run(&s).iter().all(|r| r.anomaly_grade == 0.0));
        // Constant zero, then a burst: flagged.
        let mut s = vec![0.0; 50];
        s.push(40.0);
        assert!(run(&s)[50].anomaly_grade > 0.8);
    }

    #[test]
    fn flags_a_burst_and_a_drop_without_false_alarms() {
        // A simulated day of one-minute counts around 12 (the seed's UNK_country rate
        // at 50 events/s), a burst at minute 600 and a drop to zero at minute 1000.
        let mut s = counts(1440, 12.0, 1);
        for x in &mut s[600..610] {
            *x += 150.0;
        }
        let mut base = counts(1440, 3000.0, 2);
        for x in &mut base[1000..1003] {
            *x = 0.0;
        }
        let r = run(&s);
        assert!(r[600].anomaly_grade > 0.5, "{:?}", r[600]);
        assert!(
            r[600..610].iter().all(|x| x.anomaly_grade > 0.0),
            "a long burst stays flagged"
        );
        let false_alarms = r
            .iter()
            .enumerate()
            .filter(|(i, x)| !(600..615).contains(i) && x.anomaly_grade > 0.0)
            .count();
        assert!(false_alarms <= 1, "{false_alarms}");
        let r = run(&base);
        assert!(r[1000].anomaly_grade > 0.5);
        let false_alarms = r
            .iter()
            .enumerate()
            .filter(|(i, x)| !(1000..1010).contains(i) && x.anomaly_grade > 0.0)
            .count();
        assert!(false_alarms <= 1, "{false_alarms}");
        // Expected value tracks the baseline.
        assert!((r[999].expected[0] - 3000.0).abs() < 30.0);
    }

    #[test]
    fn grades_from_the_fifth_interval_with_growing_confidence() {
        let mut s = vec![10.0, 11.0, 9.0, 10.0, 10.0, 100.0];
        s.extend(vec![10.0; 40]);
        let r = run(&s);
        assert!(
            r[..5]
                .iter()
                .all(|x| x.anomaly_grade == 0.0 && x.confidence == 0.0)
        );
        assert!(r[5].anomaly_grade > 0.5);
        assert!(r[5].confidence > 0.3 && r[5].confidence < 0.5);
        assert!(r[45].confidence > 0.98);
    }

    #[test]
    fn attribution_points_at_the_moving_feature() {
        let mut d = Ewma::new(3, 60.0, 5.0, 5);
        let mut last = None;
        for i in 0..30 {
            let mut v = [10.0 + (i % 3) as f64, 50.0 + (i % 5) as f64, 5.0];
            if i == 29 {
                v[1] = 400.0;
            }
            last = Some(d.process(&IntervalFeatures {
                start_ms: 0,
                end_ms: 1,
                values: &v,
                categories: &[],
            }));
        }
        let s = last.unwrap();
        let top = s
            .attribution
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(top, 1);
        assert!((s.attribution.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
