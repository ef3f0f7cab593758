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

pub mod aggregate;
pub mod artime;
pub mod cad;
pub mod categorical;
pub mod ensemble;
pub mod ewma;
pub mod extract;
pub mod likelihood;
pub mod metrics;
pub mod rcf;
pub mod result;
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

use std::collections::HashMap;

pub use aggregate::{Aggregator, ClosedInterval, CompiledFeature};
pub use extract::{FieldSet, Scalar};
pub use result::AnomalyResult;

pub use spec::{Aggregation, AlgorithmSpec, DetectorSpec, EnsembleMember, FeatureSpec, FilterSpec};

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, DetectError, SchemaError};
use crate::features::{FeatureMap, StatusValue};
use crate::names;

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
    /// (a gap longer than the fill bound, see [`aggregate`]); the next interval does
    /// not follow the last one. The default ignores it, as the built-in models do:
    /// after the bounded zero-fill they score the next interval as if it followed
    /// the last one. Models that depend on adjacency can restart here.
    fn gap(&mut self, intervals: u64) {
        let _ = intervals;
    }
}

/// How event time may move: the rules that keep one bad timestamp from moving the
/// clock for every record, and a real gap in traffic from costing memory.
///
/// - A record more than `horizon_ms` ahead of the latest event time is
///   dead-lettered ([`SchemaError::AheadOfStream`]) unless it is the `confirm`-th
///   of such records in a row that agree with each other (each within the horizon
///   of the first): then the stream has really jumped (traffic resumed after a
///   pause) and that record and the ones after it are taken; the ones before it
///   stay in the dead letters, from where they can be replayed.
/// - The very first records of a stream set the clock without a reference: when a
///   record far behind them (beyond the horizon) comes before any interval has
///   closed, they were the ones ahead, and the clock restarts at it.
/// - A record whose interval has closed for every detector is late
///   ([`SchemaError::Late`]): dead-lettered, and counted per detector.
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
            AlgorithmSpec::Ewma { .. } => serde_json::from_value::<ewma::Ewma>(state)
                .map(|m| Box::new(m) as Box<dyn Detector>)
                .map_err(|e| e.to_string()),
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
            AlgorithmSpec::Rcf { .. } => serde_json::from_value::<rcf::Rcf>(state)
                .map(|m| Box::new(m) as Box<dyn Detector>)
                .map_err(|e| e.to_string()),
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
            } => Box::new(ewma::Ewma::new(
                features,
                half_life,
                threshold,
                min_intervals,
            )),
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
            } => Some(ensemble::MemberModel::Cad(Box::new(cad::Cad::new(
                cad::CadParams {
                    threshold,
                    rest_period,
                    margin,
                    history,
                    max_contexts,
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

/// Base fields the indicators are computed from, when a record does not carry them.
const BASE_FIELDS: [&str; 6] = [
    "action",
    "httpSourceName",
    "httpStatus",
    "responseCodeSent",
    "httpRequest.country",
    "httpRequest.httpMethod",
];

/// Fields whose values explain an anomaly: the top client IPs, countries, terminating
/// rules and URIs of the records that moved the features, against their baseline.
pub const CONTRIBUTOR_FIELDS: [&str; 4] = [
    "httpRequest.clientIp",
    "httpRequest.country",
    "terminatingRuleId",
    "httpRequest.uri",
];

/// Contributors listed per field.
const TOP_CONTRIBUTORS: usize = 3;
/// Baseline of contributor counts: half-life in intervals, and values kept per field.
const BASELINE_HALF_LIFE: f64 = 60.0;
const BASELINE_MAX_VALUES: usize = 2_000;

/// Decayed per-interval counts of each contributor value, learnt from normal
/// intervals only (so an episode does not become its own baseline).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Baseline {
    fields: Vec<HashMap<String, f64>>,
}

/// Version of the state file format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Everything a detection run needs to resume: per detector its open intervals,
/// models, contributor baselines and anomaly runs. Saved as JSON by `--state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// The detectors the state belongs to (restoring checks they are unchanged).
    pub detectors: Vec<DetectorSpec>,
    /// Latest event time seen.
    pub max_event_ms: Option<i64>,
    slots: Vec<SlotState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlotState {
    aggregator: aggregate::AggregatorState,
    models: Vec<(Option<String>, serde_json::Value)>,
    anomaly_start: Vec<(Option<String>, i64)>,
    baselines: Vec<(Option<String>, Baseline)>,
    #[serde(default)]
    last_active: Vec<(Option<String>, u64)>,
    #[serde(default)]
    rounds: u64,
}

fn sorted<V: Clone>(m: &HashMap<Option<String>, V>) -> Vec<(Option<String>, V)> {
    let mut v: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Baseline {
    fn explain(&self, interval: &ClosedInterval) -> Vec<result::Contributors> {
        CONTRIBUTOR_FIELDS
            .iter()
            .enumerate()
            .filter_map(|(d, field)| {
                let seen = interval.contributors.get(d)?;
                let base = self.fields.get(d);
                let expected = |v: &str| base.and_then(|b| b.get(v)).copied().unwrap_or(0.0);
                let mut top: Vec<result::Contributor> = seen
                    .iter()
                    .take(100)
                    .map(|(value, count)| result::Contributor {
                        value: value.clone(),
                        count: *count,
                        expected: expected(value),
                    })
                    .filter(|c| c.count as f64 > c.expected)
                    .collect();
                top.sort_by(|a, b| {
                    (b.count as f64 - b.expected).total_cmp(&(a.count as f64 - a.expected))
                });
                top.truncate(TOP_CONTRIBUTORS);
                (!top.is_empty()).then(|| result::Contributors {
                    field: (*field).to_string(),
                    top,
                })
            })
            .collect()
    }

    fn learn(&mut self, interval: &ClosedInterval) {
        let alpha = 1.0 - 0.5_f64.powf(1.0 / BASELINE_HALF_LIFE);
        self.fields
            .resize_with(interval.contributors.len(), HashMap::new);
        for (base, seen) in self.fields.iter_mut().zip(&interval.contributors) {
            for v in base.values_mut() {
                *v *= 1.0 - alpha;
            }
            for (value, count) in seen {
                *base.entry(value.clone()).or_default() += alpha * *count as f64;
            }
            base.retain(|_, v| *v >= 0.01);
            if base.len() > BASELINE_MAX_VALUES {
                let mut all: Vec<f64> = base.values().copied().collect();
                all.sort_by(|a, b| b.total_cmp(a));
                let cut = all[BASELINE_MAX_VALUES - 1];
                base.retain(|_, v| *v >= cut);
            }
        }
    }
}

#[derive(Debug)]
struct Slot {
    spec: DetectorSpec,
    aggregator: Aggregator,
    models: HashMap<Option<String>, Box<dyn Detector>>,
    /// Start of the current run of anomalous intervals, per entity.
    anomaly_start: HashMap<Option<String>, i64>,
    /// Contributor baselines, per entity.
    baselines: HashMap<Option<String>, Baseline>,
    /// Close round in which each entity last had an interval, for eviction.
    last_active: HashMap<Option<String>, u64>,
    rounds: u64,
}

/// Memory budgeted per per-entity model. Measured (`waflog-core/tests/entity_memory.rs`,
/// growth of resident memory over 50,000 entities): about 1.9 KB for an `ewma` model
/// with one feature, its key, its contributor baselines and bookkeeping; the budget
/// takes twice that as headroom, which the test checks stays an upper bound.
pub const BYTES_PER_ENTITY: usize = 4_096;

/// Most models per detector when no cap is given: 1 GiB worth of
/// [`BYTES_PER_ENTITY`]. Detectors with bigger models get a smaller default
/// ([`DetectorSpec::default_max_entities`]).
pub const DEFAULT_MAX_ENTITIES: usize = (1 << 30) / BYTES_PER_ENTITY;

/// Counters of a detection run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Records aggregated.
    pub records: u64,
    /// Intervals scored (over all detectors and entities).
    pub intervals: u64,
    /// Results with a grade above zero.
    pub anomalies: u64,
    /// Per-entity models evicted to stay within the entity budget.
    pub evicted: u64,
    /// Records dead-lettered for being beyond the horizon.
    pub ahead: u64,
    /// Records dead-lettered as late (their interval closed for every detector).
    pub late: u64,
    /// Jumps in event time followed after confirmation.
    pub jumps: u64,
    /// Clock restarts: the first records of a stream were far ahead of the rest.
    pub restarts: u64,
    /// Empty intervals skipped in long gaps, summed over detectors.
    pub skipped_intervals: u64,
}

/// Extraction, aggregation and detection for a set of detectors.
#[derive(Debug)]
pub struct Engine {
    fields: FieldSet,
    timestamp: usize,
    base: [usize; 6],
    /// (indicator path index, which indicator in `names::INDICATORS`).
    indicators: Vec<(usize, usize)>,
    map: FeatureMap,
    slots: Vec<Slot>,
    closed: Vec<ClosedInterval>,
    stats: EngineStats,
    max_event: Option<i64>,
    factory: Option<ModelFactory>,
    /// Event time at which the next interval of any detector can close.
    deadline: i64,
    /// The entity cap given with [`Engine::with_max_entities`], for every detector.
    max_entities: Option<usize>,
    time: TimeRules,
    /// A possible jump: the first record's time beyond the horizon, and how many
    /// such records came in a row.
    jump: Option<(i64, u32)>,
}

/// Builds the model of a detector (and entity) in place of the built-in algorithm;
/// see [`Engine::with_models`].
pub struct ModelFactory(Box<BuildModel>);

/// The function behind a [`ModelFactory`].
pub type BuildModel = dyn Fn(&DetectorSpec) -> Option<Box<dyn Detector>> + Send;

impl std::fmt::Debug for ModelFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelFactory")
    }
}

impl Engine {
    /// Caps the per-entity models of each detector (default: as many as fit in
    /// about 1 GiB, [`DetectorSpec::default_max_entities`]): past it, the least
    /// recently active entities are evicted (counted in [`EngineStats::evicted`])
    /// and start afresh if they come back.
    pub fn with_max_entities(mut self, max: usize) -> Engine {
        self.max_entities = Some(max.max(1));
        self
    }

    /// The entity cap of each detector, in configuration order.
    pub fn entity_caps(&self) -> Vec<(&str, usize)> {
        self.slots
            .iter()
            .map(|s| {
                let cap = self
                    .max_entities
                    .unwrap_or_else(|| s.spec.default_max_entities());
                (s.spec.name.as_str(), cap)
            })
            .collect()
    }

    /// Plugs in your own detectors: `factory` is asked for each new model (one per
    /// detector, or per detector and entity); where it returns `None` the detector's
    /// configured algorithm is used.
    pub fn with_models(
        mut self,
        factory: impl Fn(&DetectorSpec) -> Option<Box<dyn Detector>> + Send + 'static,
    ) -> Engine {
        self.factory = Some(ModelFactory(Box::new(factory)));
        self
    }

    /// An engine running `specs` (validated here) with the vocabularies of `map`.
    pub fn new(specs: &[DetectorSpec], map: FeatureMap) -> Result<Engine, ConfigError> {
        spec::validate_all(specs, std::path::Path::new("<detectors>"))?;
        let mut fields = FieldSet::new();
        // The input contract's paths first (crate::record), so that the engine and
        // the transform refuse the same records.
        let timestamp = fields.add_checked(names::TIMESTAMP);
        let base = BASE_FIELDS.map(|p| {
            if crate::record::STATUS_PATHS.contains(&p) {
                fields.add_status(p)
            } else {
                fields.add_checked(p)
            }
        });
        for name in names::INDICATORS {
            fields.add_checked(name);
        }
        let dims: Vec<usize> = CONTRIBUTOR_FIELDS.iter().map(|p| fields.add(p)).collect();
        let example_dims: Vec<usize> = result::EXAMPLE_FIELDS
            .iter()
            .map(|p| fields.add(p))
            .collect();
        let mut slots = Vec::new();
        for s in specs {
            let features = s
                .features
                .iter()
                .map(|f| CompiledFeature {
                    aggregation: f.aggregation,
                    field: f.field.as_deref().map(|p| fields.add(p)),
                    filter: f.filter.as_ref().map(|flt| {
                        let values = match (&flt.equals, &flt.in_set) {
                            (Some(e), _) => vec![e.clone()],
                            (None, Some(v)) => v.clone(),
                            (None, None) => Vec::new(),
                        };
                        (fields.add(&flt.field), values)
                    }),
                })
                .collect();
            let category = s.category_field.as_deref().map(|p| fields.add(p));
            let distribution = match &s.algorithm {
                AlgorithmSpec::Categorical { field, .. } => Some(fields.add(field)),
                AlgorithmSpec::Ewma { .. }
                | AlgorithmSpec::EwmaLikelihood { .. }
                | AlgorithmSpec::Rcf { .. }
                | AlgorithmSpec::Artime { .. }
                | AlgorithmSpec::Cad { .. }
                | AlgorithmSpec::Ensemble { .. } => None,
            };
            slots.push(Slot {
                aggregator: Aggregator::new(s, features, category)
                    .with_contributors(dims.clone())
                    .with_examples(example_dims.clone())
                    .with_categories(distribution),
                spec: s.clone(),
                models: HashMap::new(),
                anomaly_start: HashMap::new(),
                baselines: HashMap::new(),
                last_active: HashMap::new(),
                rounds: 0,
            });
        }
        let indicators = names::INDICATORS
            .iter()
            .enumerate()
            .filter_map(|(k, name)| fields.index(name).map(|i| (i, k)))
            .collect();
        Ok(Engine {
            fields,
            timestamp,
            base,
            indicators,
            map,
            slots,
            closed: Vec::new(),
            stats: EngineStats::default(),
            max_event: None,
            factory: None,
            deadline: i64::MAX,
            max_entities: None,
            time: TimeRules::default(),
            jump: None,
        })
    }

    /// Uses these time rules instead of the defaults.
    pub fn with_time_rules(mut self, rules: TimeRules) -> Engine {
        self.time = TimeRules {
            horizon_ms: rules.horizon_ms.max(1),
            confirm: rules.confirm.max(1),
        };
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The state to save for a later [`Engine::restore`].
    pub fn snapshot(&self) -> EngineState {
        EngineState {
            version: STATE_VERSION,
            detectors: self.slots.iter().map(|s| s.spec.clone()).collect(),
            max_event_ms: self.max_event,
            slots: self
                .slots
                .iter()
                .map(|s| SlotState {
                    aggregator: s.aggregator.snapshot(),
                    models: {
                        let mut v: Vec<_> = s
                            .models
                            .iter()
                            .filter_map(|(k, m)| m.snapshot().map(|j| (k.clone(), j)))
                            .collect();
                        v.sort_by(|a, b| a.0.cmp(&b.0));
                        v
                    },
                    anomaly_start: sorted(&s.anomaly_start),
                    baselines: sorted(&s.baselines),
                    last_active: sorted(&s.last_active),
                    rounds: s.rounds,
                })
                .collect(),
        }
    }

    /// An engine for `specs` resumed from `state`; the detectors must be the ones the
    /// state was saved with.
    pub fn restore(
        specs: &[DetectorSpec],
        map: FeatureMap,
        state: EngineState,
    ) -> Result<Engine, DetectError> {
        if state.version != STATE_VERSION {
            return Err(DetectError::StateVersion {
                found: state.version,
                expected: STATE_VERSION,
            });
        }
        if state.detectors != specs {
            let names = |v: &[DetectorSpec]| {
                v.iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(DetectError::StateMismatch {
                reason: format!(
                    "saved: {}; configured: {}",
                    names(&state.detectors),
                    names(specs)
                ),
            });
        }
        if state.slots.len() != specs.len() {
            return Err(DetectError::StateMismatch {
                reason: "detector count differs".into(),
            });
        }
        let mut engine = Engine::new(specs, map)?;
        engine.max_event = state.max_event_ms;

        for (slot, saved) in engine.slots.iter_mut().zip(state.slots) {
            slot.aggregator.restore(saved.aggregator);
            for (entity, model) in saved.models {
                let m = slot.spec.algorithm.restore(model).map_err(|reason| {
                    DetectError::StateModel {
                        detector: slot.spec.name.clone(),
                        reason,
                    }
                })?;
                slot.models.insert(entity, m);
            }
            slot.anomaly_start = saved.anomaly_start.into_iter().collect();
            slot.baselines = saved.baselines.into_iter().collect();
            slot.last_active = saved.last_active.into_iter().collect();
            slot.rounds = saved.rounds;
        }
        engine.update_deadline();
        Ok(engine)
    }

    /// Closes only the intervals the watermark has passed by the window delay, as if
    /// more input may follow (used before saving state at the end of an input).
    pub fn close_ready_intervals(&mut self, results: &mut Vec<AnomalyResult>) {
        self.close_ready(results);
    }

    /// The latest event time seen, epoch ms.
    pub fn max_event_ms(&self) -> Option<i64> {
        self.max_event
    }

    /// Late records per detector.
    pub fn late(&self) -> Vec<(&str, u64)> {
        self.slots
            .iter()
            .map(|s| (s.spec.name.as_str(), s.aggregator.late()))
            .collect()
    }

    /// Feeds one line (a raw WAF log or an already transformed one). Results of the
    /// intervals this closes are appended to `results`. A line that is not a record
    /// is an error and changes nothing.
    pub fn push_line(
        &mut self,
        line: &[u8],
        results: &mut Vec<AnomalyResult>,
    ) -> Result<(), SchemaError> {
        let text = crate::transform::object_text(line)?;
        let mut values = Vec::with_capacity(self.fields.len());
        let ts = self.extract(text, &mut values)?;
        self.check_time(ts)?;
        let mut moved = false;
        let mut late = 0;
        for slot in &mut self.slots {
            let before = slot.aggregator.late();
            moved |= slot.aggregator.add(ts, &values);
            late += usize::from(slot.aggregator.late() > before);
        }
        if moved {
            self.update_deadline();
        }
        if late > 0 && late == self.slots.len() {
            self.stats.late += 1;
            let max = self.max_event.unwrap_or(ts);
            let delay = self
                .slots
                .iter()
                .map(|s| s.spec.window_delay())
                .min()
                .unwrap_or(0);
            return Err(SchemaError::Late {
                time: crate::timestamp::to_rfc3339(ts),
                behind: show_duration(max.saturating_sub(ts)),
                delay: show_duration(delay),
            });
        }
        self.max_event = Some(self.max_event.map_or(ts, |m| m.max(ts)));
        self.stats.records += 1;
        // The watermark (latest event time) decides what closes, as in the aggregators.
        if self.max_event.is_some_and(|w| w >= self.deadline) {
            self.close_ready(results);
        }
        Ok(())
    }

    /// The horizon rule of [`TimeRules`]: an error for a record too far ahead,
    /// unless it confirms a jump.
    fn check_time(&mut self, ts: i64) -> Result<(), SchemaError> {
        let Some(max) = self.max_event else {
            return Ok(());
        };
        let horizon = self.time.horizon_ms;
        if ts < max.saturating_sub(horizon) && !self.slots.iter().any(|s| s.aggregator.has_closed())
        {
            // Nothing has closed yet and this record is far behind the ones before
            // it: those were ahead of the stream (its very first records), so the
            // clock restarts here; they stay in their own intervals, scored when
            // the stream gets there.
            self.max_event = Some(ts);
            for slot in &mut self.slots {
                slot.aggregator.restart_watermark(ts);
            }
            self.jump = None;
            self.stats.restarts += 1;
            return Ok(());
        }
        if ts <= max.saturating_add(horizon) {
            self.jump = None;
            return Ok(());
        }
        let run = match self.jump {
            Some((first, n)) if ts.abs_diff(first) <= horizon.unsigned_abs() => (first, n + 1),
            _ => (ts, 1),
        };
        if run.1 >= self.time.confirm {
            self.jump = None;
            self.stats.jumps += 1;
            return Ok(());
        }
        self.jump = Some(run);
        self.stats.ahead += 1;
        Err(SchemaError::AheadOfStream {
            time: crate::timestamp::to_rfc3339(ts),
            ahead: show_duration(ts - max),
            horizon: show_duration(horizon),
            confirm: self.time.confirm,
        })
    }

    /// Extracts the detectors' fields into `local` and returns the event time.
    fn extract<'a>(
        &self,
        text: &'a str,
        local: &mut Vec<Option<Scalar<'a>>>,
    ) -> Result<i64, SchemaError> {
        self.fields
            .extract(text, local)
            .map_err(|e| crate::transform::field_error(text, e))?;
        let ts = match &local[self.timestamp] {
            None | Some(Scalar::Null) => return Err(SchemaError::MissingTimestamp),
            Some(Scalar::Num(n)) => crate::timestamp::from_f64(*n)?,
            Some(Scalar::Str(s)) => crate::timestamp::from_str(s)?,
            Some(_) => {
                return Err(SchemaError::InvalidTimestamp {
                    value: "an object or boolean".into(),
                    reason: "must be a number or a string",
                });
            }
        };
        // The same type rules as the transform, so both accept the same records.
        for (k, path) in BASE_FIELDS.iter().enumerate() {
            let ok = matches!(
                (&local[self.base[k]], *path),
                (None | Some(Scalar::Null | Scalar::Str(_)), _)
                    | (Some(_), "httpStatus" | "responseCodeSent")
            );
            if !ok {
                return Err(SchemaError::InvalidField(format!(
                    "`{path}` has the wrong type"
                )));
            }
        }
        if self.indicators.iter().any(|(i, _)| local[*i].is_none()) {
            self.fill_indicators(local);
        }
        Ok(ts)
    }

    /// Computes the indicators a raw record lacks, from its base fields.
    fn fill_indicators(&self, v: &mut [Option<Scalar<'_>>]) {
        let text = |i: usize| match &v[self.base[i]] {
            Some(Scalar::Str(s)) => Some(s.as_ref()),
            _ => None,
        };
        let status = [2, 3].into_iter().find_map(|i| match &v[self.base[i]] {
            None | Some(Scalar::Null) => None,
            Some(Scalar::Str(s)) => Some(StatusValue::from_text(s)),
            Some(Scalar::Num(n)) => Some(StatusValue::from_text(&n.to_string())),
            Some(_) => Some(StatusValue::Unreadable),
        });
        let ind = crate::features::Indicators {
            action: self.map.action(text(0)),
            source: self.map.source(text(1)),
            status: self.map.status(status),
            country: self.map.country(text(4)),
            method: self.map.method(text(5)),
        };
        for &(slot, k) in &self.indicators {
            if v[slot].is_none() {
                v[slot] = ind.value(k).map(|x| Scalar::Num(f64::from(x)));
            }
        }
    }

    /// Follow mode: moves every detector's watermark to at least `event_ms` (the
    /// caller's estimate of event time now) and scores what closes.
    pub fn advance_to(&mut self, event_ms: i64, results: &mut Vec<AnomalyResult>) {
        for slot in &mut self.slots {
            slot.aggregator.advance_to(event_ms);
        }
        self.close_ready(results);
    }

    /// End of input: scores every interval complete in event time. Returns the
    /// records left in incomplete last intervals (not scored), summed over detectors.
    pub fn finish(&mut self, results: &mut Vec<AnomalyResult>) -> u64 {
        let mut left = 0;
        for i in 0..self.slots.len() {
            let mut closed = std::mem::take(&mut self.closed);
            left += self.slots[i].aggregator.finish(&mut closed);
            self.score_around_gap(i, &mut closed, results);
            self.closed = closed;
        }
        left
    }

    fn close_ready(&mut self, results: &mut Vec<AnomalyResult>) {
        for i in 0..self.slots.len() {
            let mut closed = std::mem::take(&mut self.closed);
            self.slots[i].aggregator.close_ready(&mut closed);
            self.score_around_gap(i, &mut closed, results);
            self.closed = closed;
        }
        self.update_deadline();
    }

    /// Scores the closed intervals of slot `i`; when the aggregator skipped part
    /// of a gap, the intervals before the skip are scored, the models are told,
    /// then the rest is scored.
    fn score_around_gap(
        &mut self,
        i: usize,
        closed: &mut Vec<ClosedInterval>,
        results: &mut Vec<AnomalyResult>,
    ) {
        let skipped = self.slots[i].aggregator.take_skipped();
        if skipped == 0 {
            if !closed.is_empty() {
                self.score(i, closed, results);
            }
            return;
        }
        let interval = self.slots[i].aggregator.interval_ms();
        // The skip is where consecutive closed intervals stop being adjacent.
        let cut = closed
            .windows(2)
            .position(|w| w[1].start_ms >= w[0].end_ms + interval)
            .map_or(closed.len(), |p| p + 1);
        let mut after = closed.split_off(cut);
        if !closed.is_empty() {
            self.score(i, closed, results);
        }
        for model in self.slots[i].models.values_mut() {
            model.gap(skipped);
        }
        self.stats.skipped_intervals += skipped;
        if !after.is_empty() {
            self.score(i, &mut after, results);
        }
    }

    fn update_deadline(&mut self) {
        self.deadline = self
            .slots
            .iter()
            .filter_map(|s| s.aggregator.next_deadline())
            .min()
            .unwrap_or(i64::MAX);
    }

    fn score(
        &mut self,
        i: usize,
        closed: &mut Vec<ClosedInterval>,
        results: &mut Vec<AnomalyResult>,
    ) {
        let slot = &mut self.slots[i];
        let delay = slot.spec.window_delay();
        for c in closed.drain(..) {
            let n = slot.spec.features.len();
            let factory = &self.factory;
            let model = slot.models.entry(c.entity.clone()).or_insert_with(|| {
                factory
                    .as_ref()
                    .and_then(|f| (f.0)(&slot.spec))
                    .unwrap_or_else(|| {
                        slot.spec
                            .algorithm
                            .build_shingled(n, slot.spec.shingle_size)
                    })
            });
            let s = model.process(&IntervalFeatures {
                start_ms: c.start_ms,
                end_ms: c.end_ms,
                values: &c.values,
                categories: &c.categories,
            });
            let approx_start = if s.anomaly_grade > 0.0 {
                Some(
                    *slot
                        .anomaly_start
                        .entry(c.entity.clone())
                        .or_insert(c.start_ms),
                )
            } else {
                slot.anomaly_start.remove(&c.entity);
                None
            };
            let baseline = slot.baselines.entry(c.entity.clone()).or_default();
            let contributors = if s.anomaly_grade > 0.0 {
                let mut list = baseline.explain(&c);
                if let AlgorithmSpec::Categorical { field, .. } = &slot.spec.algorithm
                    && !s.shifted_categories.is_empty()
                {
                    list.retain(|l| &l.field != field);
                    list.insert(
                        0,
                        result::Contributors {
                            field: field.clone(),
                            top: s
                                .shifted_categories
                                .iter()
                                .map(|(value, count, expected)| result::Contributor {
                                    value: value.clone(),
                                    count: *count,
                                    expected: *expected,
                                })
                                .collect(),
                        },
                    );
                }
                Some(list)
            } else {
                baseline.learn(&c);
                None
            };
            let names: Vec<String> = slot.spec.features.iter().map(|f| f.name.clone()).collect();
            let mut result = AnomalyResult::from_score(
                &slot.spec.name,
                &names,
                &c.values,
                &s,
                (c.start_ms, c.end_ms),
                c.end_ms + delay,
            );
            result.entity = c.entity.as_ref().map(|e| {
                vec![result::EntityValue {
                    name: slot.spec.category_field.clone().unwrap_or_default(),
                    value: e.clone(),
                }]
            });
            result.approx_anomaly_start_time = approx_start;
            result.records = c.records;
            if contributors.is_some() {
                result.examples = Some(
                    c.examples
                        .iter()
                        .map(|v| result::ExampleRecord::from_values(v))
                        .collect(),
                );
            }
            result.contributors = contributors;
            self.stats.intervals += 1;
            if result.is_anomaly() {
                self.stats.anomalies += 1;
            }
            results.push(result);
            if slot.spec.category_field.is_some() {
                slot.last_active.insert(c.entity.clone(), slot.rounds);
            }
        }
        slot.rounds += 1;
        let cap = self
            .max_entities
            .unwrap_or_else(|| slot.spec.default_max_entities());
        if slot.models.len() > cap {
            self.stats.evicted += Self::evict(slot, cap) as u64;
        }
    }

    /// Drops the least recently active entities down to 99 % of `max` (in one batch,
    /// so eviction is not paid on every interval). Returns how many went.
    fn evict(slot: &mut Slot, max: usize) -> usize {
        let keep = max - max / 100;
        let mut by_age: Vec<(u64, Option<String>)> = slot
            .models
            .keys()
            .map(|k| (slot.last_active.get(k).copied().unwrap_or(0), k.clone()))
            .collect();
        by_age.sort();
        let gone = by_age.len().saturating_sub(keep);
        for (_, k) in by_age.into_iter().take(gone) {
            slot.models.remove(&k);
            slot.anomaly_start.remove(&k);
            slot.baselines.remove(&k);
            slot.last_active.remove(&k);
        }
        gone
    }
}

/// A duration for messages: `1day 2h 3m`, `45s`, `250ms`.
fn show_duration(ms: i64) -> String {
    let ms = ms.max(0) as u64;
    let d = if ms >= 60_000 {
        std::time::Duration::from_secs(ms / 1000)
    } else {
        std::time::Duration::from_millis(ms)
    };
    humantime::format_duration(d).to_string()
}
