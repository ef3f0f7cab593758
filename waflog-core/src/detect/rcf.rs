//! The thresholded Random Cut Forest detector (`type = "rcf"`).
//!
//! The forest is AWS's Random Cut Forest (Guha et al. 2016, "Robust Random Cut Forest
//! Based Anomaly Detection on Streams") from the `krcflib` crate, configured as
//! OpenSearch anomaly detection configures it: `trees` trees (50) of `samples` points
//! each (256), time decay `time_decay` (1/2560), internal shingling of the detector's
//! `shingle_size` consecutive intervals, a fixed random seed (so a run is
//! reproducible) and no parallelism. An interval is scored *before* it is learnt; the
//! anomaly score is the forest's score of the shingle ending with it (about 1 or less
//! for normal points, higher the more isolated the point is; 0 until the first
//! shingle is full).
//!
//! The thresholder is our own: a decayed mean and standard deviation of the past
//! scores (weight `max(1 / n, 1 / 500)`, so the first 500 scores count equally; the
//! variance has a prior of 0.25² worth 20 scores, so a young forest's first scores
//! do not set a tight bar), and a cut `max(mean + threshold * sd, 1.0)` (the floor
//! of 1.0 is OpenSearch AD's: scores below it are normal). A score above the cut is
//! anomalous with grade `min(1, (score - cut) / cut)` if the newest interval has at
//! least twice its even share (`1 / shingle_size`) of the forest's attribution;
//! otherwise the score is high because of an earlier interval still in the shingle,
//! which was reported when it arrived (without this rule one spike would be
//! reported `shingle_size` times). The cut is reported as the threshold. Scores are
//! learnt clipped to the cut, so an episode does not raise its own bar. The
//! confidence is that of [`super::grade_and_confidence`] (`1 - exp(-n / 10)` after `n`
//! intervals), and the first `min_intervals` intervals are not graded.
//!
//! For anomalous intervals, the expected values are the forest's one-step
//! extrapolation (the feature values themselves when the shingle size is 1) and the
//! attribution is the forest's: the high and low parts of its per-dimension
//! attribution summed over the shingle for each feature, normalised to sum 1. Normal
//! intervals report their own values as expected and an even attribution (which
//! saves two forest traversals per interval).
//!
//! The whole model, forest included, serialises with serde ([`Detector::snapshot`]):
//! krcflib keeps its random state as plain seeds inside the forest, so a model
//! restored from a snapshot continues exactly as the uninterrupted one would.

use rcflib::rcf::{RCF, RCFBuilder, RCFLarge, RCFMedium, RCFOptionsBuilder, RCFSmall, RCFTiny};
use serde::{Deserialize, Serialize};

use super::{Detector, IntervalFeatures, Score};

/// Seed of every forest, so runs are reproducible.
const SEED: u64 = 42;
/// Scores below this are normal, whatever their spread (OpenSearch AD's floor).
const SCORE_FLOOR: f64 = 1.0;
/// The score statistics weigh the last this many scores (about).
const SCORE_WINDOW: f64 = 500.0;

/// Prior standard deviation of the scores, and how many scores it is worth: the
/// first few scores of a young forest say little about their spread.
const PRIOR_SD: f64 = 0.25;
const PRIOR_WEIGHT: f64 = 20.0;

/// A high score is only anomalous when the newest interval has at least this many
/// times its even share (`1 / shingle_size`) of the attribution; otherwise an
/// earlier interval still in the shingle, already reported, causes it.
const NEWEST_SHARE: f64 = 2.0;

/// krcflib's forest in the smallest of its four index widths that fits the
/// parameters (as its `build_default` chooses), kept as a concrete type so that it
/// serialises.
#[derive(Clone, Serialize, Deserialize)]
enum Forest {
    Tiny(RCFTiny<u64, u64>),
    Small(RCFSmall<u64, u64>),
    Medium(RCFMedium<u64, u64>),
    Large(RCFLarge<u64, u64>),
}

impl Forest {
    fn build(b: &RCFBuilder) -> Result<Forest, String> {
        b.build_tiny_simple::<u64>()
            .map(Forest::Tiny)
            .or_else(|_| b.build_small_simple::<u64>().map(Forest::Small))
            .or_else(|_| b.build_medium_simple::<u64>().map(Forest::Medium))
            .or_else(|_| b.build_large_simple::<u64>().map(Forest::Large))
            .map_err(|e| e.to_string())
    }

    fn get(&self) -> &dyn RCF {
        match self {
            Forest::Tiny(f) => f,
            Forest::Small(f) => f,
            Forest::Medium(f) => f,
            Forest::Large(f) => f,
        }
    }

    fn get_mut(&mut self) -> &mut dyn RCF {
        match self {
            Forest::Tiny(f) => f,
            Forest::Small(f) => f,
            Forest::Medium(f) => f,
            Forest::Large(f) => f,
        }
    }
}

/// A Random Cut Forest with a mean + k·sd thresholder on its scores.
#[derive(Clone, Serialize, Deserialize)]
pub struct Rcf {
    forest: Forest,
    features: usize,
    shingle_size: usize,
    threshold: f64,
    min_intervals: u32,
    seen: u64,
    scored: u64,
    mean: f64,
    var: f64,
}

impl std::fmt::Debug for Rcf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rcf")
            .field("features", &self.features)
            .field("shingle_size", &self.shingle_size)
            .field("threshold", &self.threshold)
            .field("min_intervals", &self.min_intervals)
            .field("seen", &self.seen)
            .field("mean", &self.mean)
            .field("var", &self.var)
            .finish_non_exhaustive()
    }
}

/// Parameters of an [`Rcf`] detector (those of `AlgorithmSpec::Rcf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RcfParams {
    /// Trees in the forest.
    pub trees: usize,
    /// Points sampled per tree.
    pub samples: usize,
    /// Time decay of the samplers (per point).
    pub time_decay: f64,
    /// `k` of the cut `mean + k * sd` on past scores.
    pub threshold: f64,
    /// Intervals seen before results are graded.
    pub min_intervals: u32,
}

impl Default for RcfParams {
    fn default() -> Self {
        RcfParams {
            trees: 50,
            samples: 256,
            time_decay: 1.0 / 2560.0,
            threshold: 3.0,
            min_intervals: 10,
        }
    }
}

impl Rcf {
    /// A detector for `features` features over shingles of `shingle_size` intervals.
    /// Fails when the forest rejects the parameters (none of them may be 0).
    pub fn new(features: usize, shingle_size: usize, p: RcfParams) -> Result<Rcf, String> {
        let mut builder = RCFBuilder::new(features.max(1), shingle_size.max(1));
        builder
            .tree_capacity(p.samples)
            .number_of_trees(p.trees)
            .time_decay(p.time_decay)
            .random_seed(SEED)
            .parallel_enabled(false)
            .internal_shingling(true)
            .internal_rotation(false)
            .store_attributes(false)
            .output_after(1);
        let forest = Forest::build(&builder)?;
        Ok(Rcf {
            forest,
            features: features.max(1),
            shingle_size: shingle_size.max(1),
            threshold: p.threshold,
            min_intervals: p.min_intervals,
            seen: 0,
            scored: 0,
            mean: 0.0,
            var: 0.0,
        })
    }

    /// The current cut: `max(mean + threshold * sd, 1.0)`, where the variance has a
    /// prior worth [`PRIOR_WEIGHT`] scores.
    fn cut(&self) -> f64 {
        let prior = PRIOR_SD * PRIOR_SD * PRIOR_WEIGHT / (self.scored as f64 + PRIOR_WEIGHT);
        (self.mean + self.threshold * (self.var + prior).sqrt()).max(SCORE_FLOOR)
    }

    /// Per-feature share of the forest's attribution of `point`, and the share of
    /// the newest interval of the shingle.
    fn attribution(&self, point: &[f32]) -> (Vec<f64>, f64) {
        let n = self.features;
        let mut share = vec![0.0; n];
        let mut newest = 0.0;
        if let Ok(d) = self.forest.get().attribution(point) {
            let dims = d.high.len();
            for (j, (h, l)) in d.high.iter().zip(&d.low).enumerate() {
                share[j % n] += h + l;
                if j + n >= dims {
                    newest += h + l;
                }
            }
        }
        let total: f64 = share.iter().sum();
        if total > 0.0 && total.is_finite() {
            share.iter_mut().for_each(|s| *s /= total);
            (share, newest / total)
        } else {
            share.fill(1.0 / n as f64);
            (share, 1.0)
        }
    }

    /// The forest's one-step extrapolation, if it has one.
    fn expected(&self) -> Option<Vec<f64>> {
        if self.shingle_size < 2 {
            return None;
        }
        let r = self.forest.get().extrapolate(1).ok()?;
        (r.values.len() == self.features).then(|| r.values.iter().map(|&v| f64::from(v)).collect())
    }
}

impl Detector for Rcf {
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        let n = self.features;
        let values: Vec<f64> = (0..n)
            .map(|i| interval.values.get(i).copied().unwrap_or(0.0))
            .collect();
        let point: Vec<f32> = values
            .iter()
            .map(|&v| if v.is_finite() { v as f32 } else { 0.0 })
            .collect();
        let score = self.forest.get().score(&point).unwrap_or(0.0);
        let cut = self.cut();
        let (_, confidence) =
            super::grade_and_confidence(score, cut, self.seen, self.min_intervals);
        let graded = self.seen >= u64::from(self.min_intervals) && self.scored > 0;
        let (mut grade, mut attribution) = (0.0, vec![1.0 / n as f64; n]);
        if graded && score > cut {
            let (share, newest) = self.attribution(&point);
            if newest >= NEWEST_SHARE / self.shingle_size as f64 {
                grade = ((score - cut) / cut).min(1.0);
                attribution = share;
            }
        }
        let expected = if grade > 0.0 {
            self.expected().unwrap_or_else(|| values.clone())
        } else {
            values.clone()
        };
        if score > 0.0 {
            // Learn the score, clipped to the cut; the first ones weigh equally.
            let s = score.min(cut.max(self.mean));
            let alpha = (1.0 / (self.scored as f64 + 1.0)).max(1.0 / SCORE_WINDOW);
            let d = s - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
            self.scored += 1;
        }
        // An update only fails on a wrong dimension, which `point` rules out.
        let _ = self.forest.get_mut().update(&point, 0);
        self.seen += 1;
        Score {
            anomaly_score: score,
            anomaly_grade: grade,
            confidence,
            threshold: cut,
            expected,
            attribution,
            shifted_categories: Vec::new(),
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
    use crate::detect::testutil::counts;

    fn model(features: usize) -> Rcf {
        Rcf::new(features, 8, RcfParams::default()).unwrap()
    }

    fn run(d: &mut Rcf, series: &[f64]) -> Vec<Score> {
        crate::detect::testutil::feed(d, series)
    }

    #[test]
    fn degenerate_inputs() {
        let one = run(&mut model(1), &[3.0]);
        assert_eq!(one[0].anomaly_grade, 0.0);
        assert_eq!(one[0].confidence, 0.0);
        assert_eq!(one[0].expected, vec![3.0]);
        let r = run(&mut model(1), &[5.0; 300]);
        assert!(r.iter().all(|s| s.anomaly_grade == 0.0));
        assert!(r.iter().all(|s| s.anomaly_score.is_finite()));
        // Zero features and NaN values do not panic.
        let mut d = Rcf::new(0, 1, RcfParams::default()).unwrap();
        let s = d.process(&IntervalFeatures {
            start_ms: 0,
            end_ms: 1,
            values: &[],
            categories: &[],
        });
        assert_eq!(s.attribution, vec![1.0]);
        run(&mut model(1), &[f64::NAN, f64::INFINITY, 1.0]);
        assert!(
            Rcf::new(
                1,
                8,
                RcfParams {
                    trees: 0,
                    ..RcfParams::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn flags_a_spike_without_false_alarms() {
        let mut s = counts(1100, 100.0, 1);
        s[1050] += 120.0;
        let mut d = model(1);
        let r = run(&mut d, &s);
        let false_alarms = r[..1000].iter().filter(|x| x.anomaly_grade > 0.0).count();
        assert!(false_alarms <= 1, "{false_alarms}");
        assert!(r[1050].anomaly_grade > 0.0, "{:?}", r[1050]);
        // The spike is reported once, not again while it is in the shingle.
        assert!(r[1051..1060].iter().all(|x| x.anomaly_grade == 0.0));
        assert!(r[1050].confidence > 0.99);
        assert!((r[1050].expected[0] - 100.0).abs() < 30.0, "{:?}", r[1050]);
        assert!(r[1040].anomaly_score < r[1050].anomaly_score);
        assert!(format!("{d:?}").starts_with("Rcf"));
    }

    #[test]
    fn attribution_points_at_the_moving_feature() {
        let mut d = model(3);
        let a = counts(400, 50.0, 2);
        let b = counts(400, 200.0, 3);
        let mut last = None;
        for i in 0..400 {
            let mut v = [a[i], b[i], 10.0 + (i % 3) as f64];
            if i == 399 {
                v[1] = 600.0;
            }
            last = Some(d.process(&IntervalFeatures {
                start_ms: 0,
                end_ms: 1,
                values: &v,
                categories: &[],
            }));
        }
        let s = last.unwrap();
        assert!(s.anomaly_grade > 0.0, "{s:?}");
        let top = s
            .attribution
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .unwrap()
            .0;
        assert_eq!(top, 1, "{s:?}");
        assert!((s.attribution.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn built_from_the_spec_and_saved() {
        let spec: crate::detect::AlgorithmSpec = toml::from_str("type = \"rcf\"").unwrap();
        let mut m = spec.build_shingled(2, 4);
        for t in 0..20 {
            let s = m.process(&IntervalFeatures {
                start_ms: t,
                end_ms: t + 1,
                values: &[t as f64, 1.0],
                categories: &[],
            });
            assert_eq!(s.expected.len(), 2);
            assert_eq!(s.attribution.len(), 2);
        }
        assert!(m.snapshot().is_some());
        assert!(spec.restore(serde_json::Value::Null).is_err());
    }

    #[test]
    fn snapshot_and_restore_mid_series_give_the_same_scores() {
        let mut s = counts(700, 40.0, 5);
        s[600] += 90.0;
        let spec: crate::detect::AlgorithmSpec = toml::from_str("type = \"rcf\"").unwrap();
        let mut a = spec.build_shingled(1, 8);
        for x in &s[..400] {
            a.process(&IntervalFeatures {
                start_ms: 0,
                end_ms: 1,
                values: std::slice::from_ref(x),
                categories: &[],
            });
        }
        let state = a.snapshot().unwrap();
        let text = serde_json::to_string(&state).unwrap();
        let mut b = spec.restore(serde_json::from_str(&text).unwrap()).unwrap();
        let rest = |d: &mut Box<dyn Detector>| -> Vec<Score> {
            s[400..]
                .iter()
                .map(|x| {
                    d.process(&IntervalFeatures {
                        start_ms: 0,
                        end_ms: 1,
                        values: std::slice::from_ref(x),
                        categories: &[],
                    })
                })
                .collect()
        };
        let (ra, rb) = (rest(&mut a), rest(&mut b));
        assert_eq!(ra, rb);
        assert!(ra[200].anomaly_grade > 0.0, "{:?}", ra[200]);
    }

    #[test]
    fn deterministic() {
        let s = counts(300, 20.0, 4);
        let a = run(&mut model(1), &s);
        let b = run(&mut model(1), &s);
        assert_eq!(a, b);
        assert!(a.iter().any(|x| x.anomaly_score > 0.0));
    }
}
