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
//! 10, 0.98 after 40).
//! Until `1 / alpha` intervals have been seen, every interval weighs the same (a
//! running mean and variance), so the early baseline is unbiased.
//! The first `min_intervals` intervals are learnt but not graded.
//!
//! # What is learnt while an anomaly lasts
//!
//! A sustained anomaly (an attack that goes on for hours) must stay anomalous, so
//! each feature learns an interval with a weight that falls with its |z| (`T` is
//! the threshold):
//!
//! - `|z| < T`: full weight, the value as it is (a normal interval);
//! - `T <= |z| < 2T` (borderline, e.g. a diurnal ramp the baseline lags behind):
//!   weight `(2T - |z|) / T`, from 1 down to 0, of the value clipped to
//!   `mean ± T * sd`, so the baseline keeps following a slow drift and a
//!   borderline interval never freezes it (no runaway alarm);
//! - `|z| >= 2T` (clearly anomalous, grade 0.5 or more): not learnt at all. The
//!   baseline holds, so the episode keeps its grade for as long as it lasts and the
//!   first normal interval after it scores as normal.
//!
//! Once an interval is held, a run is open: until it ends, anomalous intervals
//! (`|z| >= T`) are not learnt at all, so an episode whose |z| hovers near `2T` is
//! not absorbed by its weaker intervals; the run ends after [`RUN_END`] normal
//! intervals (`|z| < T`) in a row.
//!
//! **Genuine level shifts** (`accept_shift_after`, default 24 h): while a run is
//! open,
//! the model learns the held values in a shadow mean and variance (same half-life).
//! When the run has lasted `accept_shift_after` in event time, the shadow becomes
//! the baseline: the new level is the new normal. The result of that interval has
//! `shift_accepted: true` ([`Detector::shift_accepted`]) and the alert evaluator sends
//! one `accepted` notification on the monitor's open alert, which then completes as
//! usual once the monitor stops firing (two periods later: the level is normal
//! now). The previous baseline is kept for another `accept_shift_after`: each
//! feature is scored against the baseline it is closer to, so when the shift ends
//! right after it was accepted (an episode of about `accept_shift_after`), the
//! return to the old level is normal too and raises no second alert.
//!
//! The `ewma` inside `ewma_likelihood` keeps the earlier rule (anomalous values
//! learnt at full weight, clipped to `mean ± T * sd`): its likelihood is tuned on it.

use serde::{Deserialize, Serialize};

use super::{Detector, IntervalFeatures, Score};

/// Normal intervals (`|z| < T`) in a row after which a run of held intervals ends
/// (the shift it tracked did not last).
pub const RUN_END: u32 = 3;

/// Default `accept_shift_after`: one day.
pub const DEFAULT_ACCEPT_SHIFT_AFTER_MS: u64 = 86_400_000;

/// A run of held (clearly anomalous) intervals: when it began and the level it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Run {
    /// Start of its first interval, epoch ms.
    since_ms: i64,
    /// Held intervals learnt into the shadow.
    n: u64,
    /// Intervals in a row, up to now, that were not held.
    quiet: u32,
    /// Shadow mean and variance of the held values, per feature.
    mean: Vec<f64>,
    var: Vec<f64>,
}

/// The baseline a model had before it accepted a shift, and until when it counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prior {
    /// Intervals starting at or after this (epoch ms) no longer see it.
    until_ms: i64,
    mean: Vec<f64>,
    var: Vec<f64>,
}

/// Decayed mean/variance z-score detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    alpha: f64,
    threshold: f64,
    min_intervals: u32,
    seen: u64,
    mean: Vec<f64>,
    var: Vec<f64>,
    /// The sustained-anomaly rule (see the module docs): `Some(ms)` holds the
    /// baseline during clear anomalies and accepts a run lasting `ms` as the new
    /// normal; `None` learns anomalous values clipped at full weight (the rule of
    /// `ewma_likelihood`'s inner ewma and of models saved before the rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accept_shift_after_ms: Option<u64>,
    /// The open run of held intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<Run>,
    /// The baseline before the last accepted shift, kept for `accept_shift_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prior: Option<Prior>,
    /// The last interval processed accepted a shift (not saved: it describes the
    /// last result only).
    #[serde(skip)]
    accepted: bool,
}

impl Ewma {
    /// A detector for `features` features, learning anomalous values clipped at full
    /// weight (see [`Ewma::with_accept_shift_after`] for the sustained-anomaly rule).
    pub fn new(features: usize, half_life: f64, threshold: f64, min_intervals: u32) -> Ewma {
        Ewma {
            alpha: 1.0 - 0.5_f64.powf(1.0 / half_life),
            threshold,
            min_intervals,
            seen: 0,
            mean: vec![0.0; features],
            var: vec![0.0; features],
            accept_shift_after_ms: None,
            run: None,
            prior: None,
            accepted: false,
        }
    }

    /// The sustained-anomaly rule: clearly anomalous intervals are not learnt, and a
    /// run of them lasting `ms` (event time) becomes the new normal; `None` restores
    /// the clipped full-weight learning.
    pub fn with_accept_shift_after(mut self, ms: Option<u64>) -> Ewma {
        self.accept_shift_after_ms = ms;
        if ms.is_none() {
            self.run = None;
            self.prior = None;
        }
        self
    }

    /// The `accept_shift_after` in force, in ms (`None`: the clipped rule).
    pub fn accept_shift_after_ms(&self) -> Option<u64> {
        self.accept_shift_after_ms
    }

    fn scale(&self, i: usize) -> f64 {
        scale_of(self.mean[i], self.var[i])
    }

    /// Learning weight of a value at `|z| = a` under the sustained-anomaly rule.
    fn weight(&self, a: f64) -> f64 {
        let t = self.threshold;
        if a < t {
            1.0
        } else {
            ((2.0 * t - a) / t).clamp(0.0, 1.0)
        }
    }
}

/// The z-score's denominator for a baseline `mean` and `var`.
fn scale_of(m: f64, var: f64) -> f64 {
    (var + (0.05 * m) * (0.05 * m) + 0.25).sqrt()
}

/// One West update of a mean and variance with weight `alpha`.
fn update(mean: &mut f64, var: &mut f64, x: f64, alpha: f64) {
    let d = x - *mean;
    *mean += alpha * d;
    *var = (1.0 - alpha) * (*var + alpha * d * d);
}

impl Detector for Ewma {
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        self.accepted = false;
        let x = interval.values;
        let n = x.len().min(self.mean.len());
        // After an accepted shift the previous baseline stays for `accept_shift_after`:
        // a feature is scored against whichever of the two it is closer to, so a
        // level that returns to the old normal is normal too.
        if self
            .prior
            .as_ref()
            .is_some_and(|p| interval.start_ms >= p.until_ms)
        {
            self.prior = None;
        }
        let mut expected = self.mean[..n].to_vec();
        let mut band: Vec<f64> = (0..n).map(|i| self.threshold * self.scale(i)).collect();
        let mut z: Vec<f64> = (0..n)
            .map(|i| (x[i] - self.mean[i]) / self.scale(i))
            .collect();
        if let Some(p) = &self.prior {
            for i in 0..n.min(p.mean.len()) {
                let sd = scale_of(p.mean[i], p.var[i]);
                let zp = (x[i] - p.mean[i]) / sd;
                if zp.abs() < z[i].abs() {
                    z[i] = zp;
                    expected[i] = p.mean[i];
                    band[i] = self.threshold * sd;
                }
            }
        }
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
        // Until 1/alpha intervals are seen, weigh all equally (a plain running mean
        // and variance), so the early baseline is not biased towards the first value.
        let alpha = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
        match self.accept_shift_after_ms {
            Some(after) if self.seen > 0 => {
                self.learn_holding(x, n, &z, grade, alpha, after, interval)
            }
            _ => self.learn_clipped(x, n, grade, alpha),
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

    fn shift_accepted(&self) -> bool {
        self.accepted
    }

    fn learn_normal(&mut self, values: &[f64], end_ms: i64) -> bool {
        let n = values.len().min(self.mean.len());
        match self.run.take() {
            // A held level: it becomes the baseline now, as an accepted shift does
            // (the earlier baseline stays normal for `accept_shift_after`).
            Some(run) => {
                let keep = self
                    .accept_shift_after_ms
                    .unwrap_or(DEFAULT_ACCEPT_SHIFT_AFTER_MS);
                self.prior = Some(Prior {
                    until_ms: end_ms.saturating_add(i64::try_from(keep).unwrap_or(i64::MAX)),
                    mean: self.mean.clone(),
                    var: self.var.clone(),
                });
                for i in 0..n.min(run.mean.len()) {
                    self.mean[i] = run.mean[i];
                    self.var[i] = run.var[i].max(self.var[i]);
                }
            }
            // Nothing held: the values are learnt once at full weight.
            None => {
                let alpha = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
                for (i, &x) in values.iter().enumerate().take(n) {
                    let (mut m, mut v) = (self.mean[i], self.var[i]);
                    update(&mut m, &mut v, x, alpha);
                    (self.mean[i], self.var[i]) = (m, v);
                }
            }
        }
        true
    }
}

impl Ewma {
    /// The earlier rule: anomalous values are learnt clipped to `mean ± T * sd`.
    fn learn_clipped(&mut self, x: &[f64], n: usize, grade: f64, alpha: f64) {
        for (i, &xi) in x.iter().enumerate().take(n) {
            // The first value sets the baseline.
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
            let (mut m, mut v) = (self.mean[i], self.var[i]);
            update(&mut m, &mut v, xi, alpha);
            (self.mean[i], self.var[i]) = (m, v);
        }
    }

    /// The sustained-anomaly rule (module docs): weights falling with |z|, a run of
    /// held intervals tracked in a shadow and accepted after `after` ms.
    #[allow(clippy::too_many_arguments)]
    fn learn_holding(
        &mut self,
        x: &[f64],
        n: usize,
        z: &[f64],
        grade: f64,
        alpha: f64,
        after: u64,
        interval: &IntervalFeatures<'_>,
    ) {
        // Held: graded, and some feature clearly anomalous (|z| >= 2T).
        let held = grade > 0.0 && z.iter().any(|v| v.abs() >= 2.0 * self.threshold);
        if held {
            let run = self.run.get_or_insert_with(|| Run {
                since_ms: interval.start_ms,
                n: 0,
                quiet: 0,
                mean: x[..n].to_vec(),
                var: vec![0.0; n],
            });
            run.quiet = 0;
            if run.n > 0 {
                let a = self.alpha.max(1.0 / (run.n as f64 + 1.0));
                for (i, &xi) in x.iter().enumerate().take(n.min(run.mean.len())) {
                    update(&mut run.mean[i], &mut run.var[i], xi, a);
                }
            }
            run.n += 1;
            let lasted = interval.end_ms.saturating_sub(run.since_ms);
            if u64::try_from(lasted).is_ok_and(|l| l >= after) {
                // The shift has lasted: its level is the new normal.
                if let Some(run) = self.run.take() {
                    self.prior = Some(Prior {
                        until_ms: interval
                            .end_ms
                            .saturating_add(i64::try_from(after).unwrap_or(i64::MAX)),
                        mean: self.mean.clone(),
                        var: self.var.clone(),
                    });
                    for i in 0..n.min(run.mean.len()) {
                        self.mean[i] = run.mean[i];
                        self.var[i] = run.var[i];
                    }
                }
                self.accepted = true;
                return;
            }
        } else if grade == 0.0
            && let Some(run) = &mut self.run
        {
            run.quiet += 1;
            if run.quiet >= RUN_END {
                self.run = None;
            }
        }
        // While a run is open, an anomalous interval is not learnt even below 2T, so
        // an episode whose |z| hovers near 2T is not absorbed by its weaker intervals.
        let holding = self.run.is_some();
        for (i, &xi) in x.iter().enumerate().take(n) {
            let a = if grade > 0.0 { z[i].abs() } else { 0.0 };
            let w = if holding && a >= self.threshold {
                0.0
            } else {
                self.weight(a)
            };
            if w <= 0.0 {
                continue;
            }
            let xi = if a >= self.threshold {
                let band = self.threshold * self.scale(i);
                xi.clamp(self.mean[i] - band, self.mean[i] + band)
            } else {
                xi
            };
            let (mut m, mut v) = (self.mean[i], self.var[i]);
            update(&mut m, &mut v, xi, alpha * w);
            (self.mean[i], self.var[i]) = (m, v);
        }
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

    /// One-minute intervals through `d`: each score with whether it accepted a shift.
    fn feed_holding(d: &mut Ewma, series: &[f64]) -> Vec<(Score, bool)> {
        series
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let s = d.process(&IntervalFeatures {
                    start_ms: i as i64 * 60_000,
                    end_ms: (i as i64 + 1) * 60_000,
                    values: std::slice::from_ref(x),
                    categories: &[],
                });
                (s, d.shift_accepted())
            })
            .collect()
    }

    fn holding(accept_after_min: u64) -> Ewma {
        Ewma::new(1, 60.0, 5.0, 5).with_accept_shift_after(Some(accept_after_min * 60_000))
    }

    #[test]
    fn learning_weight_falls_with_the_z_score() {
        // A constant 10: var 0, sd = sqrt(0.25 + 0.25 + 0) = 0.7071 (5 % of 10 is 0.5).
        let sd = 0.5_f64.sqrt();
        let alpha = 1.0 - 0.5_f64.powf(1.0 / 60.0);
        let mut d = holding(1440);
        feed_holding(&mut d, &[10.0; 100]);
        assert_eq!((d.mean[0], d.var[0]), (10.0, 0.0));
        // |z| = 7.5 (borderline): weight (10 - 7.5) / 5 = 0.5 of the value clipped to
        // mean + 5 sd.
        let mut b = d.clone();
        feed_holding(&mut b, &[10.0 + 7.5 * sd]);
        let expected = 10.0 + 0.5 * alpha * 5.0 * sd;
        assert!((b.mean[0] - expected).abs() < 1e-12, "{}", b.mean[0]);
        assert!(b.run.is_none());
        // |z| = 12 (clearly anomalous): not learnt; a run opens.
        let mut c = d.clone();
        feed_holding(&mut c, &[10.0 + 12.0 * sd]);
        assert_eq!((c.mean[0], c.var[0]), (10.0, 0.0));
        assert_eq!(c.run.as_ref().map(|r| (r.since_ms, r.n)), Some((0, 1)));
        // With the run open, a borderline interval is not learnt either.
        feed_holding(&mut c, &[10.0 + 7.5 * sd]);
        assert_eq!((c.mean[0], c.var[0]), (10.0, 0.0));
        // |z| = 4 (normal): full weight, unclipped.
        let mut n = d.clone();
        feed_holding(&mut n, &[10.0 + 4.0 * sd]);
        assert!((n.mean[0] - (10.0 + alpha * 4.0 * sd)).abs() < 1e-12);
        // The earlier rule learns the clipped value at full weight.
        let mut old = Ewma::new(1, 60.0, 5.0, 5);
        crate::detect::testutil::feed(&mut old, &[10.0; 100]);
        crate::detect::testutil::feed(&mut old, &[10.0 + 12.0 * sd]);
        assert!((old.mean[0] - (10.0 + alpha * 5.0 * sd)).abs() < 1e-12);
    }

    #[test]
    fn feedback_takes_a_held_level_as_normal_at_once() {
        // Counts around 12, then 150 for 20 minutes: held, graded.
        let mut s = counts(300, 12.0, 3);
        s.extend(counts(20, 150.0, 4));
        let mut d = holding(1440);
        let r = feed_holding(&mut d, &s);
        assert!(r[319].0.anomaly_grade > 0.7);
        assert!(d.run.is_some());
        // A responder: the level is normal.
        d.learn_normal(&[150.0], 320 * 60_000);
        assert!(d.run.is_none() && d.prior.is_some());
        assert!((d.mean[0] - 150.0).abs() < 15.0, "{}", d.mean[0]);
        // Both the new level and the old one are normal now.
        let mut after = counts(30, 150.0, 6);
        after.extend(counts(30, 12.0, 7));
        let tail: Vec<Score> = after
            .iter()
            .enumerate()
            .map(|(i, x)| {
                d.process(&IntervalFeatures {
                    start_ms: (320 + i as i64) * 60_000,
                    end_ms: (321 + i as i64) * 60_000,
                    values: std::slice::from_ref(x),
                    categories: &[],
                })
            })
            .collect();
        assert!(
            tail.iter().all(|x| x.anomaly_grade == 0.0),
            "{:?}",
            tail.iter().map(|x| x.anomaly_grade).collect::<Vec<_>>()
        );
        // Without a held run, the values are learnt once at full weight.
        let mut e = holding(1440);
        feed_holding(&mut e, &[10.0; 100]);
        let alpha = 1.0 - 0.5_f64.powf(1.0 / 60.0);
        e.learn_normal(&[20.0], 100 * 60_000);
        assert!((e.mean[0] - (10.0 + alpha * 10.0)).abs() < 1e-12);
    }

    #[test]
    fn a_sustained_level_stays_flagged_until_it_is_accepted() {
        // Counts around 12, then 150 from minute 300 to 430 (accepted after 120
        // minutes), then 12 again.
        let mut s = counts(300, 12.0, 3);
        s.extend(counts(130, 150.0, 4));
        s.extend(counts(50, 12.0, 5));
        let r = feed_holding(&mut holding(120), &s);
        let held = &r[300..420];
        assert!(
            held.iter().all(|(x, _)| x.anomaly_grade > 0.7),
            "{:?}",
            held.iter().map(|x| x.0.anomaly_grade).collect::<Vec<_>>()
        );
        // The baseline did not move while held.
        assert!((r[419].0.expected[0] - r[300].0.expected[0]).abs() < 1e-9);
        let accepted: Vec<usize> = (0..r.len()).filter(|&i| r[i].1).collect();
        assert_eq!(accepted, [419]);
        // The new level is normal: the expected value is the shift's level, and at
        // most one interval after the acceptance is graded; the return to the old
        // level is normal too (the previous baseline is kept for another 120 minutes).
        assert!((r[420].0.expected[0] - 150.0).abs() < 4.0, "{:?}", r[420].0);
        let graded = r[420..].iter().filter(|x| x.0.anomaly_grade > 0.0).count();
        assert!(graded <= 1, "{graded}");
        // The earlier rule absorbs the same level within half an hour.
        assert!((r[440].0.expected[0] - 12.0).abs() < 2.0, "{:?}", r[440].0);
        let old = run(&s);
        assert!(old[330..420].iter().all(|x| x.anomaly_grade < 0.7));
    }

    #[test]
    fn the_end_of_a_held_episode_is_normal_at_once() {
        // 12, then 200 for 24 hours, then 12 again: flagged all along (the default
        // accept_shift_after is one day), normal from the first interval after it.
        let mut s = counts(300, 12.0, 5);
        s.extend(counts(1430, 200.0, 6));
        s.extend(counts(100, 12.0, 7));
        let r = feed_holding(&mut holding(1440), &s);
        assert!(r[300..1730].iter().all(|x| x.0.anomaly_grade > 0.7 && !x.1));
        assert!(r[1730..].iter().all(|x| x.0.anomaly_grade == 0.0));
        assert!(r.iter().all(|x| !x.1));
    }

    #[test]
    fn a_diurnal_cycle_is_followed_without_holding() {
        // Three days of counts swinging between 0.4 and 1.6 times 1,000 and between
        // 0.4 and 1.6 times 5 (a peak at 14:00): no interval is held, no run opens.
        for (mean, seed) in [(1000.0, 8), (5.0, 9)] {
            let mut s = Vec::new();
            for day in 0..3u64 {
                let c = counts(1440, 10_000.0, seed + day);
                for (m, c) in c.iter().enumerate() {
                    let noise = (c - 10_000.0) / 100.0;
                    let level = mean
                        * (1.0 + 0.6 * ((m as f64 - 480.0) / 1440.0 * std::f64::consts::TAU).sin());
                    // Poisson-like noise around the level.
                    s.push((level + noise * level.sqrt()).round().max(0.0));
                }
            }
            let mut d = holding(1440);
            let r = feed_holding(&mut d, &s);
            let graded = r[10..].iter().filter(|x| x.0.anomaly_grade >= 0.5).count();
            assert_eq!(graded, 0, "mean {mean}");
            assert!(d.run.is_none());
        }
    }

    #[test]
    fn state_round_trips_and_old_state_loads() {
        let mut d = holding(1440);
        let mut s = counts(100, 12.0, 1);
        s.extend(vec![90.0; 10]);
        feed_holding(&mut d, &s);
        assert!(d.run.is_some());
        let json = serde_json::to_string(&d).unwrap();
        let back: Ewma = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back, d);
        // A model saved before the rule: no new keys, the clipped rule.
        let mut old = Ewma::new(1, 60.0, 5.0, 5);
        crate::detect::testutil::feed(&mut old, &s);
        let json = serde_json::to_value(&old).unwrap();
        assert!(json.get("accept_shift_after_ms").is_none() && json.get("run").is_none());
        let back: Ewma = serde_json::from_value(json).unwrap();
        assert_eq!(back.accept_shift_after_ms(), None);
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
