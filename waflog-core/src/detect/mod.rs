//! Streaming anomaly detection over per-interval feature aggregates.
//!
//! The flow, for each configured [`DetectorSpec`]:
//!
//! ```text
//! JSON line -> FieldSet::extract (only the paths detectors use; indicators computed
//!              in-process for raw WAF logs) -> Aggregator (event-time intervals,
//!              watermark, window delay, zero-filled gaps) -> Detector::process
//!              (score, then learn) -> AnomalyResult (OpenSearch AD result shape)
//! ```
//!
//! [`Engine`] wires these together for a set of detectors; the CLI feeds it lines.
//!
//! ```
//! use waflog_core::detect::{DetectorSpec, Engine};
//! use waflog_core::features::FeatureMap;
//! use waflog_core::simulate::{Episode, Generator, Limit, Scenario};
//!
//! let mut scenario = Scenario::new(1, 1_714_521_600_000);
//! scenario.limit = Limit::Duration(2 * 3_600_000);
//! scenario.episodes.push(Episode::parse("country:90m:5m").unwrap());
//! let mut generator = Generator::new(&scenario).unwrap();
//! let mut engine = Engine::new(&DetectorSpec::defaults(), FeatureMap::default()).unwrap();
//! let (mut line, mut results) = (Vec::new(), Vec::new());
//! while generator.next_record(&mut line).is_some() {
//!     engine.push_line(line.trim_ascii_end(), &mut results).unwrap();
//!     line.clear();
//! }
//! engine.finish(&mut results);
//! let flagged: Vec<_> = results.iter().filter(|r| r.is_anomaly()).collect();
//! assert!(flagged.iter().any(|r| r.detector_name == "country-anomaly-detector"
//!     && r.data_start_time == 1_714_521_600_000 + 90 * 60_000));
//! ```

pub(crate) mod aggregate;
pub mod artime;
pub mod cad;
pub mod categorical;
pub mod engine;
pub mod ensemble;
pub mod ewma;
pub mod extract;
pub mod likelihood;
pub mod metrics;
pub mod rcf;
pub mod result;
pub mod rules;
pub mod spec;

/// Helpers shared by the detectors' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use rand::{Rng, SeedableRng};

    use super::{Detector, IntervalFeatures, Score};

    /// Feeds a one-feature series, one value per one-minute interval.
    pub(crate) fn feed(d: &mut dyn Detector, series: &[f64]) -> Vec<Score> {
        series
            .iter()
            .enumerate()
            .map(|(i, x)| {
                d.process(&IntervalFeatures {
                    start_ms: i as i64 * 60_000,
                    end_ms: (i as i64 + 1) * 60_000,
                    values: std::slice::from_ref(x),
                    categories: &[],
                })
            })
            .collect()
    }

    /// Poisson-like counts around `mean` (normal approximation), seeded.
    pub(crate) fn counts(n: usize, mean: f64, seed: u64) -> Vec<f64> {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean + g * mean.sqrt()).round().max(0.0)
            })
            .collect()
    }
}

pub use engine::{
    BYTES_PER_ENTITY, BuildModel, CONTRIBUTOR_FIELDS, DEFAULT_MAX_ENTITIES, Engine, EngineState,
    EngineStats, ModelFactory, STATE_VERSION,
};
pub use extract::{Extractor, Prepared};
pub use result::AnomalyResult;

pub use spec::{
    Aggregation, AlgorithmSpec, DetectorSpec, EnsembleMember, FeatureSpec, FilterSpec, Missing,
};

/// One closed interval's feature values, as a detector sees them.
#[derive(Debug, Clone, Copy)]
pub struct IntervalFeatures<'a> {
    /// Interval start, epoch ms.
    pub start_ms: i64,
    /// Interval end, epoch ms.
    pub end_ms: i64,
    /// Feature values in the detector's feature order.
    pub values: &'a [f64],
    /// Records per value of the detector's category-distribution field (categorical
    /// detectors; empty otherwise), most frequent first.
    pub categories: &'a [(String, u64)],
}

/// What a detector says about one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Raw score (algorithm-specific scale).
    pub anomaly_score: f64,
    /// Grade in [0, 1]; > 0 means anomalous.
    pub anomaly_grade: f64,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// The score threshold in force.
    pub threshold: f64,
    /// Expected value per feature.
    pub expected: Vec<f64>,
    /// Share of the anomaly per feature (sums to 1).
    pub attribution: Vec<f64>,
    /// Categorical detectors: the categories that moved most, as (value, records,
    /// records expected from the baseline).
    pub shifted_categories: Vec<(String, u64, f64)>,
    /// Half-width per feature of the range the detector takes as normal this
    /// interval, for charts: `ewma` grades values outside `expected ± band`;
    /// `ewma_likelihood` reports its inner ewma's band, while its grade comes from
    /// the likelihood of the recent scores. Empty when the detector has no such
    /// range (categorical, rcf).
    pub band: Vec<f64>,
}

/// Grade and confidence shared by the built-in detectors: a grade of
/// `1 - threshold / score` once the score reaches the threshold (0 below it, so it
/// lies in [0, 1) and grows with the score), a confidence of `1 - exp(-seen / 10)`
/// (0.63 after 10 intervals, 0.98 after 40), and neither before `min_intervals`
/// intervals were seen.
pub fn grade_and_confidence(
    score: f64,
    threshold: f64,
    seen: u64,
    min_intervals: u32,
) -> (f64, f64) {
    if seen < u64::from(min_intervals) {
        return (0.0, 0.0);
    }
    let grade = if score >= threshold {
        1.0 - threshold / score
    } else {
        0.0
    };
    (grade, 1.0 - (-(seen as f64) / 10.0).exp())
}

/// A streaming detector: scores one closed interval, then learns from it, in one call.
///
/// Implement it to plug in your own algorithm (see `examples/`).
pub trait Detector: Send + std::fmt::Debug {
    /// Scores `interval` against what the model has learnt so far, then learns it.
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score;

    /// The model's state for the `--state` file; `None` when it cannot be saved
    /// (a restart then starts this model afresh).
    fn snapshot(&self) -> Option<serde_json::Value> {
        None
    }

    /// The stream had no records for `intervals` intervals that were not zero-filled
    /// (a gap longer than the fill bound, see `aggregate`); the next interval does
    /// not follow the last one. The default ignores it, as the built-in models do:
    /// after the bounded zero-fill they score the next interval as if it followed
    /// the last one. Models that depend on adjacency can restart here.
    fn gap(&mut self, intervals: u64) {
        let _ = intervals;
    }

    /// True when the last [`Detector::process`] took a sustained shift as the new
    /// normal (`ewma`'s `accept_shift_after`): its result says so
    /// ([`AnomalyResult::shift_accepted`]) and the monitors' open alerts close with
    /// one `accepted` notification. The default: never.
    fn shift_accepted(&self) -> bool {
        false
    }

    /// A responder said the intervals an alert fired on, the last with feature
    /// `values` and ending at `end_ms`, were normal (`waflog alerts ack ID
    /// --not-anomaly`): learn that level at full weight. Returns whether the model
    /// took the feedback (the responder is told). `ewma` takes a held level as its
    /// baseline at once (as after `accept_shift_after`), `ewma_likelihood` through
    /// its `ewma`, and an `ensemble` through the members that take it; the default
    /// ignores the feedback and returns false, as `artime`, `cad`, `rcf` and the
    /// categorical model do (they learn every interval anyway, and have no level
    /// to move).
    fn learn_normal(&mut self, values: &[f64], end_ms: i64) -> bool {
        let _ = (values, end_ms);
        false
    }
}

/// How event time may move: the rules that keep one bad timestamp from moving the
/// clock for every record, and a real gap in traffic from costing memory.
///
/// - A record more than `horizon_ms` ahead of the latest event time is
///   dead-lettered ([`SchemaError::AheadOfStream`](crate::SchemaError::AheadOfStream)) unless it is the `confirm`-th
///   of such records in a row that agree with each other (each within the horizon
///   of the first): then the stream has really jumped (traffic resumed after a
///   pause) and that record and the ones after it are taken; the ones before it
///   stay in the dead letters, from where they can be replayed.
/// - The very first records of a stream set the clock without a reference: when a
///   record far behind them (beyond the horizon) comes before any interval has
///   closed, they were the ones ahead, and the clock restarts at it.
/// - A record whose interval has closed for every detector is late
///   ([`SchemaError::Late`](crate::SchemaError::Late)): dead-lettered, and counted per detector.
/// - A gap is zero-filled for at most one day of intervals (1,440 at most), then
///   skipped without results; the models are told ([`Detector::gap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// How far ahead of the latest event time a record may be (ms).
    pub horizon_ms: i64,
    /// Records in a row beyond the horizon that confirm a jump.
    pub confirm: u32,
}

impl Default for TimeRules {
    fn default() -> Self {
        TimeRules {
            horizon_ms: 3 * 3_600_000,
            confirm: 8,
        }
    }
}

impl AlgorithmSpec {
    /// A model restored from [`Detector::snapshot`] output.
    pub fn restore(&self, state: serde_json::Value) -> Result<Box<dyn Detector>, String> {
        match self {
            AlgorithmSpec::Ewma {
                accept_shift_after_ms,
                ..
            } => {
                // A model saved before the sustained-anomaly rule takes the spec's.
                let before_rule = state.get("accept_shift_after_ms").is_none();
                serde_json::from_value::<ewma::Ewma>(state)
                    .map(|m| {
                        let m = if before_rule {
                            m.with_accept_shift_after(Some(*accept_shift_after_ms))
                        } else {
                            m
                        };
                        Box::new(m) as Box<dyn Detector>
                    })
                    .map_err(|e| e.to_string())
            }
            AlgorithmSpec::Categorical { .. } => {
                serde_json::from_value::<categorical::Categorical>(state)
                    .map(|m| Box::new(m) as Box<dyn Detector>)
                    .map_err(|e| e.to_string())
            }
            AlgorithmSpec::EwmaLikelihood { .. } => {
                serde_json::from_value::<likelihood::EwmaLikelihood>(state)
                    .map(|m| Box::new(m) as Box<dyn Detector>)
                    .map_err(|e| e.to_string())
            }
            AlgorithmSpec::Ensemble { .. } => serde_json::from_value::<ensemble::Ensemble>(state)
                .map(|m| Box::new(m) as Box<dyn Detector>)
                .map_err(|e| e.to_string()),
            AlgorithmSpec::Cad { .. } => serde_json::from_value::<cad::Cad>(state)
                .map(|m| Box::new(m) as Box<dyn Detector>)
                .map_err(|e| e.to_string()),
            AlgorithmSpec::Artime { .. } => serde_json::from_value::<artime::ArTime>(state)
                .map(|m| Box::new(m) as Box<dyn Detector>)
                .map_err(|e| e.to_string()),
            AlgorithmSpec::Rcf { .. } => {
                rcf::Rcf::restore(state).map(|m| Box::new(m) as Box<dyn Detector>)
            }
        }
    }

    /// A fresh model for a detector with `features` features and the default
    /// shingle size (8; only `rcf` uses it, see [`AlgorithmSpec::build_shingled`]).
    pub fn build(&self, features: usize) -> Box<dyn Detector> {
        self.build_shingled(features, 8)
    }

    /// A fresh model for a detector with `features` features over shingles of
    /// `shingle_size` intervals (the detector's `shingle_size`; only `rcf` uses it).
    pub fn build_shingled(&self, features: usize, shingle_size: usize) -> Box<dyn Detector> {
        match *self {
            AlgorithmSpec::Ewma {
                half_life,
                threshold,
                min_intervals,
                accept_shift_after_ms,
            } => Box::new(
                ewma::Ewma::new(features, half_life, threshold, min_intervals)
                    .with_accept_shift_after(Some(accept_shift_after_ms)),
            ),
            AlgorithmSpec::Categorical {
                half_life,
                threshold,
                min_shift,
                min_intervals,
                ..
            } => Box::new(categorical::Categorical::new(
                features,
                half_life,
                threshold,
                min_shift,
                min_intervals,
            )),
            AlgorithmSpec::EwmaLikelihood { .. }
            | AlgorithmSpec::Artime { .. }
            | AlgorithmSpec::Cad { .. }
            | AlgorithmSpec::Ensemble { .. } => match self.member_model(features) {
                Some(ensemble::MemberModel::EwmaLikelihood(m)) => m,
                Some(ensemble::MemberModel::Artime(m)) => Box::new(m),
                Some(ensemble::MemberModel::Cad(m)) => m,
                Some(ensemble::MemberModel::Ensemble(m)) => m,
                // Not reached: these three types always give a model.
                None => Box::new(ewma::Ewma::new(features, 60.0, 5.0, 5)),
            },
            AlgorithmSpec::Rcf {
                trees,
                samples,
                time_decay,
                threshold,
                min_intervals,
                transform,
                lower_threshold,
                horizon,
                bounding_box_cache_fraction,
            } => {
                let params = rcf::RcfParams {
                    trees,
                    samples,
                    time_decay,
                    threshold,
                    min_intervals,
                    transform,
                    transform_decay: None,
                    lower_threshold,
                    horizon,
                    bounding_box_cache_fraction,
                };
                match rcf::Rcf::new(features, shingle_size, params) {
                    Ok(m) => Box::new(m),
                    // Validation rules out parameters the forest rejects; fall back
                    // to the default forest rather than fail mid-stream.
                    Err(_) => Box::new(
                        rcf::Rcf::new(
                            features,
                            shingle_size.clamp(1, 64),
                            rcf::RcfParams::default(),
                        )
                        .unwrap_or_else(|e| panic!("default rcf forest: {e}")),
                    ),
                }
            }
        }
    }
}

impl AlgorithmSpec {
    /// The model of an algorithm whose score lies in [0, 1] (`ewma_likelihood`,
    /// `artime`, `cad`, `ensemble`), as a concrete type an ensemble can hold; `None` for
    /// the others. Ensemble members of other types are left out (validation rejects
    /// them).
    pub fn member_model(&self, features: usize) -> Option<ensemble::MemberModel> {
        match *self {
            AlgorithmSpec::EwmaLikelihood {
                half_life,
                threshold,
                window,
                average,
                min_intervals,
                spatial,
                spatial_tolerance,
            } => {
                let m = likelihood::EwmaLikelihood::new(
                    ewma::Ewma::new(features, half_life, 5.0, min_intervals),
                    likelihood::Likelihood::new(likelihood::LikelihoodParams {
                        window,
                        average,
                        ..likelihood::LikelihoodParams::default()
                    }),
                    threshold,
                );
                Some(ensemble::MemberModel::EwmaLikelihood(Box::new(
                    if spatial {
                        m.with_spatial(spatial_tolerance)
                    } else {
                        m
                    },
                )))
            }
            AlgorithmSpec::Artime {
                warmup,
                step,
                max_categories,
                margin,
                threshold,
            } => Some(ensemble::MemberModel::Artime(artime::ArTime::new(
                artime::ArTimeParams {
                    warmup,
                    step,
                    max_categories,
                    margin,
                    threshold,
                    ..artime::ArTimeParams::default()
                },
                features,
            ))),
            AlgorithmSpec::Cad {
                threshold,
                rest_period,
                margin,
                history,
                max_contexts,
                max_proposers,
            } => Some(ensemble::MemberModel::Cad(Box::new(cad::Cad::new(
                cad::CadParams {
                    threshold,
                    rest_period,
                    margin,
                    history,
                    max_contexts,
                    max_proposers,
                    ..cad::CadParams::default()
                },
                features,
            )))),
            AlgorithmSpec::Ensemble {
                ref members,
                threshold,
            } => Some(ensemble::MemberModel::Ensemble(Box::new(
                ensemble::Ensemble::new(
                    members
                        .iter()
                        .filter_map(|m| {
                            Some(ensemble::Member {
                                model: m.algorithm.member_model(features)?,
                                weight: m.weight,
                                min_score: m.min_score,
                            })
                        })
                        .collect(),
                    threshold,
                ),
            ))),
            _ => None,
        }
    }
}
