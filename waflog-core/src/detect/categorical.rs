//! The categorical distribution-shift detector (`type = "categorical"`).
//!
//! It needs no vocabulary: per interval it compares the distribution of one field's
//! values (e.g. `httpRequest.country`) with a decayed baseline distribution, so a
//! never-seen category ("XX") or a shift among known ones is caught without anyone
//! listing known values.
//!
//! Test statistic: the G-test (likelihood-ratio chi-square, Sokal & Rohlf, *Biometry*)
//! of the interval's counts `c_k` (total `N`) against the baseline shares `p_k`,
//! `G = 2 * sum c_k ln(c_k / (N p_k))`. The baseline is smoothed with half a record
//! per category (Jeffreys' prior), and every category not in the baseline gets the
//! share of one such half record, so a new category is possible but surprising. `G`
//! is made comparable across category counts with the Wilson-Hilferty cube-root
//! transform of a chi-square with `k - 1` degrees of freedom into a standard normal
//! score `z`, the anomaly score. Large intervals make even tiny, harmless shifts
//! significant, so an interval is anomalous only when `z` reaches the threshold *and*
//! the shift is material: the total variation distance between the two distributions
//! (half the sum of absolute share differences) is at least `min_shift`. Grade and
//! confidence follow the `ewma` detector (`1 - threshold / z`, `1 - exp(-n / 10)`).
//! Anomalous intervals are not learnt, so an episode does not become the baseline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Detector, IntervalFeatures, Score};

/// Smoothing: pseudo-count per category.
const PSEUDO: f64 = 0.5;

/// Decayed category distribution with a G-test against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Categorical {
    alpha: f64,
    threshold: f64,
    min_shift: f64,
    min_intervals: u32,
    seen: u64,
    baseline: BTreeMap<String, f64>,
    /// Decayed mean of each feature's value, reported as its expected value.
    mean: Vec<f64>,
}

/// One category's part in a shift.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryShift {
    /// The category.
    pub value: String,
    /// Records in the interval.
    pub count: u64,
    /// Records expected from the baseline share.
    pub expected: f64,
}

impl Categorical {
    /// A detector reporting `features` feature values.
    pub fn new(
        features: usize,
        half_life: f64,
        threshold: f64,
        min_shift: f64,
        min_intervals: u32,
    ) -> Categorical {
        Categorical {
            alpha: 1.0 - 0.5_f64.powf(1.0 / half_life),
            threshold,
            min_shift,
            min_intervals,
            seen: 0,
            baseline: BTreeMap::new(),
            mean: vec![0.0; features],
        }
    }

    /// Wilson-Hilferty: a chi-square value `g` with `df` degrees of freedom as a
    /// standard normal score.
    fn z_of(g: f64, df: f64) -> f64 {
        let v = 2.0 / (9.0 * df);
        ((g / df).max(0.0).cbrt() - (1.0 - v)) / v.sqrt()
    }

    /// Scores a distribution; returns (z, total variation distance, shifts sorted by
    /// excess, largest first).
    pub fn test(&self, categories: &[(String, u64)]) -> (f64, f64, Vec<CategoryShift>) {
        let n: u64 = categories.iter().map(|c| c.1).sum();
        let total: f64 = self.baseline.values().sum();
        if n == 0 || total <= 0.0 {
            return (0.0, 0.0, Vec::new());
        }
        let n = n as f64;
        let new = categories
            .iter()
            .filter(|(k, _)| !self.baseline.contains_key(k))
            .count();
        let k = (self.baseline.len() + new).max(1) as f64;
        let denom = total + PSEUDO * k;
        let share = |key: &str| (self.baseline.get(key).copied().unwrap_or(0.0) + PSEUDO) / denom;
        let mut g = 0.0;
        let mut tvd = 0.0;
        let mut shifts = Vec::new();
        for (key, c) in categories {
            let p = share(key);
            let c = *c as f64;
            if c > 0.0 {
                g += 2.0 * c * (c / (n * p)).ln();
            }
            tvd += (c / n - p).abs();
            shifts.push(CategoryShift {
                value: key.clone(),
                count: c as u64,
                expected: n * p,
            });
        }
        for key in self.baseline.keys() {
            if !categories.iter().any(|(k, _)| k == key) {
                tvd += share(key);
            }
        }
        shifts.sort_by(|a, b| {
            (b.count as f64 - b.expected)
                .total_cmp(&(a.count as f64 - a.expected))
                .then_with(|| a.value.cmp(&b.value))
        });
        let df = (k - 1.0).max(1.0);
        (Self::z_of(g, df), tvd / 2.0, shifts)
    }

    fn learn(&mut self, categories: &[(String, u64)]) {
        let alpha = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
        for v in self.baseline.values_mut() {
            *v *= 1.0 - alpha;
        }
        for (key, c) in categories {
            *self.baseline.entry(key.clone()).or_default() += alpha * *c as f64;
        }
        self.baseline.retain(|_, v| *v >= 1e-3);
    }
}

impl Detector for Categorical {
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        let (z, tvd, shifts) = self.test(interval.categories);
        let (grade, confidence) =
            super::grade_and_confidence(z, self.threshold, self.seen, self.min_intervals);
        let grade = if tvd >= self.min_shift { grade } else { 0.0 };
        let n = interval.values.len().min(self.mean.len());
        let expected = self.mean[..n].to_vec();
        if grade == 0.0 {
            self.learn(interval.categories);
            let alpha = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
            for (m, x) in self.mean.iter_mut().zip(interval.values) {
                *m += alpha * (x - *m);
            }
        }
        self.seen += 1;
        Score {
            anomaly_score: z.max(0.0),
            anomaly_grade: grade,
            confidence,
            threshold: self.threshold,
            expected,
            attribution: vec![1.0 / n.max(1) as f64; n],
            shifted_categories: shifts
                .into_iter()
                .filter(|s| s.count as f64 > s.expected)
                .take(3)
                .map(|s| (s.value, s.count, s.expected))
                .collect(),
            band: Vec::new(),
        }
    }

    fn snapshot(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(cats: &[(&str, u64)]) -> Vec<(String, u64)> {
        cats.iter().map(|(k, c)| (k.to_string(), *c)).collect()
    }

    fn run(d: &mut Categorical, cats: &[(String, u64)]) -> Score {
        let total = cats.iter().map(|c| c.1).sum::<u64>() as f64;
        d.process(&IntervalFeatures {
            start_ms: 0,
            end_ms: 1,
            values: &[total],
            categories: cats,
        })
    }

    /// Multinomial-ish counts around the shares, deterministic.
    fn normal(i: u64) -> Vec<(String, u64)> {
        let wobble = |k: u64| (i * 7 + k * 13) % 11;
        interval(&[
            ("US", 1000 + wobble(1) * 3),
            ("UK", 990 + wobble(2) * 3),
            ("IN", 1000 + wobble(3) * 3),
            ("XX", wobble(4) % 3),
        ])
    }

    #[test]
    fn a_new_category_is_caught_without_a_vocabulary() {
        let mut d = Categorical::new(1, 60.0, 5.0, 0.02, 5);
        for i in 0..60 {
            assert_eq!(
                run(&mut d, &normal(i)).anomaly_grade,
                0.0,
                "false alarm at {i}"
            );
        }
        let mut cats = normal(60);
        cats.push(("ZZ".into(), 150));
        let s = run(&mut d, &cats);
        assert!(s.anomaly_grade > 0.5, "{s:?}");
        assert_eq!(s.shifted_categories[0].0, "ZZ");
        assert_eq!(s.shifted_categories[0].1, 150);
    }

    #[test]
    fn a_shift_among_known_categories_is_caught() {
        let mut d = Categorical::new(1, 60.0, 5.0, 0.02, 5);
        for i in 0..60 {
            run(&mut d, &normal(i));
        }
        // UK doubles at the expense of the others: same categories, new shares.
        let s = run(&mut d, &interval(&[("US", 750), ("UK", 1500), ("IN", 750)]));
        assert!(s.anomaly_grade > 0.5, "{s:?}");
        assert_eq!(s.shifted_categories[0].0, "UK");
    }

    #[test]
    fn tiny_shifts_on_large_intervals_are_not_material() {
        let mut d = Categorical::new(1, 60.0, 5.0, 0.02, 5);
        for _ in 0..60 {
            run(&mut d, &interval(&[("US", 100_000), ("UK", 100_000)]));
        }
        // 1 % moves: hugely significant at this size, but below min_shift.
        let s = run(&mut d, &interval(&[("US", 102_000), ("UK", 98_000)]));
        assert!(s.anomaly_score > 5.0);
        assert_eq!(s.anomaly_grade, 0.0);
    }

    #[test]
    fn degenerate_inputs() {
        let mut d = Categorical::new(1, 60.0, 5.0, 0.02, 5);
        assert_eq!(run(&mut d, &[]).anomaly_score, 0.0);
        for _ in 0..20 {
            assert_eq!(run(&mut d, &interval(&[("only", 50)])).anomaly_grade, 0.0);
        }
        assert_eq!(run(&mut d, &[]).anomaly_grade, 0.0);
    }
}
