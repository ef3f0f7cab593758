//! Numenta's anomaly likelihood, and the detector that applies it to the ewma score
//! (`type = "ewma_likelihood"`).
//!
//! The likelihood ([`Likelihood`]) turns a stream of raw anomaly scores into "how
//! unusual is the recent raw score for *this* series": it is a port of nupic's
//! `AnomalyLikelihood` (Ahmad, Lavin, Purdy & Agha 2017, "Unsupervised real-time
//! anomaly detection for streaming data", Neurocomputing 262, section 4.2;
//! `nupic/algorithms/anomaly_likelihood.py`), scored as NAB's HTM detector does
//! (`computeLogLikelihood`):
//!
//! - For the first `learning + estimation` steps (the probation) the likelihood is
//!   0.5 (score 0.301).
//! - Then, on the first scored step and every `reestimate` steps, a normal
//!   distribution is estimated from the last `window` raw scores (not the current
//!   one): their moving averages over `average` steps, minus those of the first
//!   `learning` steps still in the window, give a mean and variance, raised to at
//!   least 0.03 and 0.0003; if the *values* in that span have a variance below 1.5e-5
//!   (a flat metric) a null distribution (mean 0.5, sd 1000) is used instead.
//! - A step's tail probability is `Q(|a - mean| / sd)` (two-sided), `a` the mean of
//!   the last `average` raw scores including this one; when it and the previous
//!   step's are both at most 1e-5 ("red"), this step's is raised to 1e-3 ("yellow"),
//!   so only the first red step of a run stays red.
//! - The score is `ln(1.0000000001 - L) / ln(1e-10)` with `L = 1 - tail`: in
//!   [0, 1], 0.5 at a tail probability of 1e-5, 1 from about 1e-10 down.
//!
//! Everything is deterministic and the state (up to `window` pairs of value and raw
//! score) serialises with serde.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ewma::Ewma;
use super::{Detector, IntervalFeatures, Score};

/// Parameters of a [`Likelihood`]; the defaults are nupic's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodParams {
    /// Raw scores kept to estimate the distribution (`historicWindowSize`, 8640).
    pub window: usize,
    /// Raw scores in the short moving average (`averagingWindow`, 10).
    pub average: usize,
    /// Steps between re-estimations of the distribution (`reestimationPeriod`, 100).
    pub reestimate: usize,
    /// Steps left out of the estimate while in the window (`learningPeriod`, 288).
    pub learning: usize,
    /// Steps after `learning` before the first estimate (`estimationSamples`, 100).
    pub estimation: usize,
}

impl Default for LikelihoodParams {
    fn default() -> LikelihoodParams {
        LikelihoodParams {
            window: 8640,
            average: 10,
            reestimate: 100,
            learning: 288,
            estimation: 100,
        }
    }
}

/// A normal distribution of the averaged raw scores (nupic's `distributionParams`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Normal {
    mean: f64,
    sd: f64,
}

impl Normal {
    /// nupic's `nullDistribution`: so broad that every score is about as likely.
    const NULL: Normal = Normal { mean: 0.5, sd: 1e3 };

    /// `ln` of nupic's two-sided `tailProbability`.
    fn ln_tail(&self, x: f64) -> f64 {
        ln_tail(((x - self.mean) / self.sd).abs())
    }
}

/// `ln(erfc(x))` for `x >= 0`, from the Chebyshev fit of Numerical Recipes (`erfcc`,
/// fractional error below 1.2e-7 everywhere); in log form, so it does not underflow.
fn ln_erfc_pos(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - x * x + poly
}

/// `ln Q(z)`, the log of the Gaussian upper tail probability, computed as nupic's
/// `tailProbability` does: `0.5 * erfc(z / sqrt 2)`.
fn ln_tail(z: f64) -> f64 {
    if z >= 0.0 {
        0.5_f64.ln() + ln_erfc_pos(z / std::f64::consts::SQRT_2)
    } else {
        (1.0 - 0.5 * ln_erfc_pos(-z / std::f64::consts::SQRT_2).exp()).ln()
    }
}

/// Mean and population variance.
fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

/// nupic's "red" tail probability (likelihood 0.99999) and "yellow" (0.999).
const RED: f64 = 1e-5;
const YELLOW: f64 = 1e-3;

/// `ln(1e-10)` as nupic's `computeLogLikelihood` writes it.
const LN_FLOOR: f64 = -23.025_850_847_200_09;

/// The score of a likelihood `l`: `ln(1.0000000001 - l) / ln(1e-10)`.
fn log_score(l: f64) -> f64 {
    (1.000_000_000_1_f64 - l).ln() / LN_FLOOR
}

/// Numenta's anomaly likelihood of one stream of raw scores (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Likelihood {
    params: LikelihoodParams,
    iteration: u64,
    /// The last `window` steps' (value, raw score).
    history: VecDeque<(f64, f64)>,
    dist: Option<Normal>,
    /// The last `average` raw scores (the moving average's state).
    recent: VecDeque<f64>,
    /// The previous step's unfiltered log tail probability.
    prev_ln_tail: f64,
}

impl Likelihood {
    /// A fresh estimator (`window` and `average` are raised to at least 1).
    pub fn new(params: LikelihoodParams) -> Likelihood {
        let params = LikelihoodParams {
            average: params.average.max(1),
            window: params.window.max(1),
            reestimate: params.reestimate.max(1),
            ..params
        };
        Likelihood {
            params,
            iteration: 0,
            history: VecDeque::new(),
            dist: None,
            recent: VecDeque::new(),
            prev_ln_tail: 0.0,
        }
    }

    /// Whether the probation is over, so that the next [`Likelihood::step`] scores
    /// from an estimated distribution.
    pub fn ready(&self) -> bool {
        self.iteration >= (self.params.learning + self.params.estimation) as u64
    }

    /// `estimateAnomalyLikelihoods` over the history.
    fn estimate(&mut self) {
        let (window, average) = (self.params.window as u64, self.params.average);
        // nupic's _calcSkipRecords.
        let shifted_out = self.iteration.saturating_sub(window);
        let skip = self
            .iteration
            .min((self.params.learning as u64).saturating_sub(shifted_out))
            as usize;
        let mut averages = Vec::with_capacity(self.history.len());
        let mut recent = VecDeque::with_capacity(average + 1);
        for &(_, raw) in &self.history {
            recent.push_back(raw);
            if recent.len() > average {
                recent.pop_front();
            }
            averages.push(recent.iter().sum::<f64>() / recent.len() as f64);
        }
        let dist = if averages.len() <= skip {
            Normal::NULL
        } else {
            let (mean, var) = mean_var(&averages[skip..]);
            let values: Vec<f64> = self.history.iter().skip(skip).map(|h| h.0).collect();
            if mean_var(&values).1 < 1.5e-5 {
                Normal::NULL
            } else {
                Normal {
                    mean: mean.max(0.03),
                    sd: var.max(0.0003).sqrt(),
                }
            }
        };
        self.prev_ln_tail = averages.last().map_or(0.0, |&a| dist.ln_tail(a));
        self.recent = recent;
        self.dist = Some(dist);
    }

    /// Scores a step with metric value `value` (used only to recognise a flat metric)
    /// and raw anomaly score `raw`, then learns it. The score is in [0, 1].
    pub fn step(&mut self, value: f64, raw: f64) -> f64 {
        let score = if !self.ready() {
            log_score(0.5)
        } else {
            if self.dist.is_none() || self.iteration % self.params.reestimate as u64 == 0 {
                self.estimate();
            }
            let dist = self.dist.unwrap_or(Normal::NULL);
            self.recent.push_back(raw);
            if self.recent.len() > self.params.average {
                self.recent.pop_front();
            }
            let avg = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
            let ln_tail = dist.ln_tail(avg);
            let red = RED.ln();
            let filtered = if ln_tail <= red && self.prev_ln_tail <= red {
                YELLOW.ln()
            } else {
                ln_tail
            };
            self.prev_ln_tail = ln_tail;
            log_score(1.0 - filtered.exp())
        };
        self.history.push_back((value, raw));
        if self.history.len() > self.params.window {
            self.history.pop_front();
        }
        self.iteration += 1;
        score
    }
}

/// The ewma detector ([`Ewma`]) with its raw score (|z|) post-processed by the
/// anomaly likelihood (`type = "ewma_likelihood"`), plus the "spatial anomaly" rule
/// of NAB's HTM detector.
///
/// Per interval: the ewma scores and learns the interval; its |z| (0 while it is not
/// yet grading, its first `min_intervals` intervals) goes to the [`Likelihood`], with
/// the sum of the feature values as the metric value. The result's `anomaly_score` is
/// the likelihood score in [0, 1]; the grade is `(score - threshold) / (1 -
/// threshold)` once the score reaches the threshold (0 below it, so it lies in [0, 1)
/// and grows with the score, as the other detectors' `1 - threshold / score`), and 0
/// while the ewma is not grading. During the likelihood's probation (388 intervals
/// by default) the grade is the plain ewma's (|z| at least 5), with the score
/// `threshold + grade * (1 - threshold)` when it is above 0, so results come from
/// the ewma's `min_intervals`-th interval on, not after the probation. Confidence,
/// expected values and attribution are the ewma's.
///
/// Spatial rule (when a tolerance is set, [`EwmaLikelihood::with_spatial`]; from the
/// end of the probation on): a feature value outside the range of that feature's values seen so far, widened by
/// `tolerance` times the range on each side, scores 1 (grade 1 once grading), with
/// the attribution shared by the features outside their range in proportion to how
/// far outside. The likelihood alone reacts to a change in how *unusual* the
/// readings are, so a level never seen before but reached gradually can pass it; the
/// range catches that. (NAB's HTM detector uses a tolerance of 0.05; NAB scores it
/// 10 points higher with the rule, `examples/nab.rs`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EwmaLikelihood {
    ewma: Ewma,
    likelihood: Likelihood,
    threshold: f64,
    /// Tolerance of the spatial rule (a share of the range); `None`: no rule.
    #[serde(default)]
    spatial: Option<f64>,
    /// Smallest and largest value of each feature so far (finite values only).
    #[serde(default)]
    range: Vec<(f64, f64)>,
}

impl EwmaLikelihood {
    /// Runs `ewma` through `likelihood`; `threshold` is the likelihood score (in
    /// (0, 1)) at and above which an interval is anomalous. No spatial rule.
    pub fn new(ewma: Ewma, likelihood: Likelihood, threshold: f64) -> EwmaLikelihood {
        EwmaLikelihood {
            ewma,
            likelihood,
            threshold,
            spatial: None,
            range: Vec::new(),
        }
    }

    /// Adds the spatial rule with `tolerance` (a share of each feature's range, e.g.
    /// 0.05); a negative or non-finite tolerance turns it off.
    pub fn with_spatial(mut self, tolerance: f64) -> EwmaLikelihood {
        self.spatial = (tolerance >= 0.0 && tolerance.is_finite()).then_some(tolerance);
        self
    }

    /// How far outside its widened range each feature value is, as a share of the
    /// range (0 inside), then the values are added to the ranges.
    fn spatial_excess(&mut self, values: &[f64]) -> Vec<f64> {
        let tolerance = self.spatial.unwrap_or(0.0);
        if self.range.len() < values.len() {
            self.range.resize(values.len(), (f64::NAN, f64::NAN));
        }
        values
            .iter()
            .zip(&mut self.range)
            .map(|(&v, (lo, hi))| {
                if !v.is_finite() {
                    return 0.0;
                }
                let width = *hi - *lo;
                let excess = if width > 0.0 {
                    let slack = width * tolerance;
                    ((v - (*hi + slack)).max((*lo - slack) - v)).max(0.0) / width
                } else {
                    0.0
                };
                if lo.is_nan() || v < *lo {
                    *lo = v;
                }
                if hi.is_nan() || v > *hi {
                    *hi = v;
                }
                excess
            })
            .collect()
    }
}

impl Detector for EwmaLikelihood {
    /// The `ewma` learns the level (the likelihood keeps its history of scores).
    fn learn_normal(&mut self, values: &[f64], end_ms: i64) -> bool {
        self.ewma.learn_normal(values, end_ms)
    }

    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        let inner = self.ewma.process(interval);
        let graded = inner.confidence > 0.0;
        let ready = self.likelihood.ready();
        let raw = if graded { inner.anomaly_score } else { 0.0 };
        let value = interval.values.iter().sum::<f64>();
        let mut score = self.likelihood.step(value, raw);
        let mut attribution = inner.attribution;
        if self.spatial.is_some() {
            let excess = self.spatial_excess(interval.values);
            let total: f64 = excess.iter().sum();
            // During the probation the range is young; the rule waits for it.
            if total > 0.0 && ready {
                score = 1.0;
                attribution = excess.iter().map(|e| e / total).collect();
            }
        }
        let grade = if !ready {
            // Probation: grade as the plain ewma does, on the same scale.
            if inner.anomaly_grade > 0.0 {
                score = self.threshold + inner.anomaly_grade * (1.0 - self.threshold);
            }
            inner.anomaly_grade
        } else if graded && score >= self.threshold {
            (score - self.threshold) / (1.0 - self.threshold)
        } else {
            0.0
        };
        Score {
            anomaly_score: score,
            anomaly_grade: grade,
            confidence: inner.confidence,
            threshold: self.threshold,
            expected: inner.expected,
            attribution,
            shifted_categories: Vec::new(),
            band: inner.band,
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

    fn detector() -> EwmaLikelihood {
        EwmaLikelihood::new(
            Ewma::new(1, 60.0, 5.0, 5),
            Likelihood::new(LikelihoodParams::default()),
            0.5,
        )
    }

    fn feed(d: &mut EwmaLikelihood, series: &[f64]) -> Vec<Score> {
        crate::detect::testutil::feed(d, series)
    }

    #[test]
    fn degenerate_inputs() {
        assert!(feed(&mut detector(), &[]).is_empty());
        let one = feed(&mut detector(), &[3.0]);
        assert_eq!((one[0].anomaly_grade, one[0].confidence), (0.0, 0.0));
        assert!((0.0..=1.0).contains(&one[0].anomaly_score));
        // A constant series (flat metric: null distribution) never alarms.
        let r = feed(&mut detector(), &[5.0; 2000]);
        assert!(
            r.iter()
                .all(|s| s.anomaly_grade == 0.0 && s.anomaly_score < 0.5)
        );
        // The bare estimator on a flat stream, and with tiny windows.
        let mut l = Likelihood::new(LikelihoodParams {
            window: 0,
            average: 0,
            reestimate: 0,
            learning: 0,
            estimation: 0,
        });
        for _ in 0..50 {
            let s = l.step(1.0, 0.0);
            assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{s}");
        }
    }

    #[test]
    fn a_sustained_shift_scores_above_the_threshold_and_the_baseline_below() {
        let mut s = counts(1500, 12.0, 1);
        for x in &mut s[1200..] {
            *x += 12.0;
        }
        let r = feed(&mut detector(), &s);
        let probation = 388;
        assert!(r[..probation].iter().all(|x| x.anomaly_grade == 0.0));
        // A spike during the probation is graded as the plain ewma grades it.
        let mut spiky = s.clone();
        spiky[50] += 60.0;
        let r2 = feed(&mut detector(), &spiky);
        assert!(r2[50].anomaly_grade > 0.0, "{:?}", r2[50]);
        assert!(r2[50].anomaly_score >= 0.5 && r2[50].anomaly_score <= 1.0);
        assert_eq!(
            r2.iter().filter(|x| x.anomaly_grade > 0.0).count(),
            1 + r.iter().filter(|x| x.anomaly_grade > 0.0).count()
        );
        let baseline_max = r[probation..1200]
            .iter()
            .map(|x| x.anomaly_score)
            .fold(0.0, f64::max);
        assert!(baseline_max < 0.5, "{baseline_max}");
        let first = r[1200..1220].iter().position(|x| x.anomaly_grade > 0.0);
        assert!(first.is_some(), "{:?}", &r[1200..1220]);
        assert_eq!(r[1210].threshold, 0.5);
        assert!((r[1199].expected[0] - 12.0).abs() < 2.0);
    }

    #[test]
    fn spatial_rule_flags_a_new_level_and_names_the_feature() {
        // Two features; the second creeps up slowly past anything seen (a ramp the
        // likelihood alone barely notices), the first stays put.
        let a = counts(1000, 50.0, 3);
        let b = counts(1000, 20.0, 4);
        let run = |spatial: bool| -> Vec<Score> {
            let m = EwmaLikelihood::new(
                Ewma::new(2, 60.0, 5.0, 5),
                Likelihood::new(LikelihoodParams::default()),
                0.5,
            );
            let mut d = if spatial { m.with_spatial(0.05) } else { m };
            (0..1000)
                .map(|i| {
                    let ramp = if i >= 900 {
                        (i - 900) as f64 * 0.4
                    } else {
                        0.0
                    };
                    d.process(&IntervalFeatures {
                        start_ms: 0,
                        end_ms: 0,
                        values: &[a[i], b[i] + ramp],
                        categories: &[],
                    })
                })
                .collect()
        };
        let with = run(true);
        let first = with[900..].iter().position(|s| s.anomaly_grade > 0.0);
        let first = first.expect("the new level is flagged") + 900;
        assert_eq!(with[first].anomaly_score, 1.0);
        assert_eq!(with[first].anomaly_grade, 1.0);
        assert_eq!(with[first].attribution, vec![0.0, 1.0]);
        // Before the ramp, after the probation: the range rule raises no alarm.
        let early = with[400..900]
            .iter()
            .filter(|s| s.anomaly_grade > 0.0)
            .count();
        assert!(early <= 1, "{early}");
        // Without the rule the same ramp is flagged later, if at all.
        let without = run(false);
        let plain = without[900..].iter().position(|s| s.anomaly_grade > 0.0);
        assert!(
            plain.is_none_or(|p| p + 900 > first),
            "{plain:?} vs {first}"
        );
        // Off for negative tolerances.
        let m = detector().with_spatial(-1.0);
        assert_eq!(m, detector());
    }

    #[test]
    fn snapshot_and_restore_mid_series_give_the_same_scores() {
        let mut s = counts(1200, 30.0, 7);
        for x in &mut s[900..950] {
            *x *= 3.0;
        }
        let mut a = detector();
        let first = feed(&mut a, &s[..700]);
        assert_eq!(first.len(), 700);
        let state = a.snapshot().unwrap();
        let spec = super::super::AlgorithmSpec::EwmaLikelihood {
            half_life: 60.0,
            threshold: 0.5,
            window: 8640,
            average: 10,
            min_intervals: 5,
            spatial: false,
            spatial_tolerance: 0.05,
        };
        let text = serde_json::to_string(&state).unwrap();
        let mut b = spec.restore(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(b.snapshot().unwrap(), state);
        let rest_a = feed(&mut a, &s[700..]);
        let rest_b: Vec<Score> = s[700..]
            .iter()
            .map(|x| {
                b.process(&IntervalFeatures {
                    start_ms: 0,
                    end_ms: 0,
                    values: std::slice::from_ref(x),
                    categories: &[],
                })
            })
            .collect();
        assert_eq!(rest_a, rest_b);
        assert!(rest_a.iter().any(|x| x.anomaly_grade > 0.0));
    }
}
