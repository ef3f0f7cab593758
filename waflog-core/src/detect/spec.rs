//! Detector configuration: `[[detectors]]` in `waflog.toml`.
//!
//! ```toml
//! [[detectors]]
//! name = "country-anomaly-detector"
//! interval = "1m"          # aggregation interval, aligned to the epoch
//! window_delay = "10s"     # how long to wait for late events before closing an interval
//! shingle_size = 8         # consecutive intervals a model looks at (RCF)
//! features = [{ name = "UNK_country", aggregation = "sum", field = "UNK_country" }]
//! # category_field = "httpRequest.clientIp"   # one model per entity
//! [detectors.algorithm]
//! type = "ewma"            # decayed z-score (see detect::ewma)
//! threshold = 5.0
//! ```
//!
//! A detector has at most five features (OpenSearch AD's default limit, so every
//! detector can also be created in a cluster); each feature is an aggregation over a
//! field path with an optional filter.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rules::{Rule, Window};
use super::{BYTES_PER_ENTITY, DEFAULT_MAX_ENTITIES};
use crate::error::{ConfigError, DurationError};
use crate::names;

/// At most this many features per detector (OpenSearch AD's default).
pub const MAX_FEATURES: usize = 5;

/// How a feature aggregates one interval's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Number of records (that pass the filter).
    Count,
    /// Sum of a numeric field.
    Sum,
    /// Mean of a numeric field (0 when no record has it).
    Avg,
    /// Minimum of a numeric field (0 when no record has it).
    Min,
    /// Maximum of a numeric field (0 when no record has it).
    Max,
    /// Number of distinct values of a field.
    DistinctCount,
}

/// A filter on one field: the record counts only when the field equals a value, or
/// is one of a set of values (compared as text; numbers as written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Dotted field path, e.g. `httpRequest.country`.
    pub field: String,
    /// The value the field must have.
    #[serde(default)]
    pub equals: Option<String>,
    /// The values the field may have.
    #[serde(default, rename = "in")]
    pub in_set: Option<Vec<String>>,
}

/// One feature of a detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Feature name, as in OpenSearch AD (`feature_name` in results).
    pub name: String,
    /// The aggregation.
    pub aggregation: Aggregation,
    /// Dotted field path (not needed for `count`).
    #[serde(default)]
    pub field: Option<String>,
    /// Optional filter.
    #[serde(default)]
    pub filter: Option<FilterSpec>,
}

/// One member of an `ensemble`: an algorithm, its weight and the smallest score at
/// which it votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleMember {
    /// Its vote is `weight` times its score.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Scores below this do not vote.
    #[serde(default)]
    pub min_score: f64,
    /// The member's algorithm (`type` and its parameters).
    #[serde(flatten)]
    pub algorithm: AlgorithmSpec,
}

fn default_weight() -> f64 {
    1.0
}
fn default_ensemble_threshold() -> f64 {
    0.44
}

/// The algorithm of a detector and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlgorithmSpec {
    /// Decayed mean and variance per feature; anomaly score is the largest absolute
    /// z-score (see [`crate::detect::ewma`]).
    Ewma {
        /// Half-life of the baseline in intervals.
        #[serde(default = "default_half_life")]
        half_life: f64,
        /// Score (|z|) at and above which an interval is anomalous.
        #[serde(default = "default_threshold")]
        threshold: f64,
        /// Intervals seen before results are graded.
        #[serde(default = "default_min_intervals")]
        min_intervals: u32,
        /// How long a clearly anomalous level (|z| at least twice the threshold)
        /// must last before the model takes it as the new normal (TOML
        /// `accept_shift_after`, a duration: `24h` by default, 1m to 30d). Until
        /// then such intervals are not learnt, so a sustained attack stays anomalous;
        /// the interval that accepts the shift says so (`shift_accepted`) and its
        /// monitors send one `accepted` notification (see [`crate::detect::ewma`]).
        #[serde(
            rename = "accept_shift_after",
            default = "default_accept_shift_after",
            skip_serializing_if = "is_default_accept_shift_after",
            with = "duration_text_serde"
        )]
        accept_shift_after_ms: u64,
    },
    /// Compares each interval's distribution of one field's values with a decayed
    /// baseline (see [`crate::detect::categorical`]); needs no vocabulary.
    Categorical {
        /// Dotted path of the field whose distribution is watched.
        field: String,
        /// Half-life of the baseline in intervals.
        #[serde(default = "default_half_life")]
        half_life: f64,
        /// Score (Wilson-Hilferty z of the G statistic) at which a shift is anomalous.
        #[serde(default = "default_threshold")]
        threshold: f64,
        /// Smallest material shift: total variation distance in [0, 1].
        #[serde(default = "default_min_shift")]
        min_shift: f64,
        /// Intervals seen before results are graded.
        #[serde(default = "default_min_intervals")]
        min_intervals: u32,
    },
    /// The ewma z-score post-processed by Numenta's anomaly likelihood (see
    /// [`crate::detect::likelihood`]): the score, in [0, 1], says how unusual the
    /// recent |z| is for this series, so one threshold suits noisy and quiet series.
    /// During the likelihood's probation (its first 388 intervals) it grades as plain
    /// `ewma`.
    EwmaLikelihood {
        /// Half-life of the ewma baseline in intervals.
        #[serde(default = "default_half_life")]
        half_life: f64,
        /// Likelihood score, in (0, 1), at and above which an interval is anomalous.
        /// The default 0.5 (a tail probability of 1e-5) is near NAB's standard-profile
        /// optimum for this detector, 0.517 (`examples/nab.rs`).
        #[serde(default = "default_likelihood_threshold")]
        threshold: f64,
        /// Intervals of raw scores the likelihood's distribution is estimated from.
        #[serde(default = "default_likelihood_window")]
        window: usize,
        /// Intervals in the likelihood's short moving average of the raw score.
        #[serde(default = "default_likelihood_average")]
        average: usize,
        /// Intervals the ewma sees before it grades (its |z| counts as 0 until then).
        #[serde(default = "default_min_intervals")]
        min_intervals: u32,
        /// NAB's HTM "spatial anomaly" rule: a feature value outside the range seen so
        /// far (widened by `spatial_tolerance` of it on each side) scores 1.
        #[serde(default = "default_true")]
        spatial: bool,
        /// Share of the range by which the spatial rule widens it on each side.
        #[serde(default = "default_spatial_tolerance")]
        spatial_tolerance: f64,
    },
    /// Several algorithms on the same intervals (see [`crate::detect::ensemble`]):
    /// each member votes `weight * score` when its score reaches its `min_score`,
    /// and the largest vote is the score. Members are `ewma_likelihood`, `artime`,
    /// `cad` or `ensemble` (scores in [0, 1]).
    Ensemble {
        /// The members, each an algorithm table with optional `weight` (1) and
        /// `min_score` (0).
        members: Vec<EnsembleMember>,
        /// Score, in (0, 1), at and above which an interval is anomalous.
        #[serde(default = "default_ensemble_threshold")]
        threshold: f64,
    },
    /// CAD OSE, contextual anomaly detection (see [`crate::detect::cad`]), learning
    /// the value range as the data arrive: the score is how much of the current
    /// row's context is new. The default metric detector
    /// ([`AlgorithmSpec::metric_default`]): NAB 71.88 / 63.97 / 76.66, at a cost in
    /// CPU and memory on noisy series and with a sensitivity to `margin`.
    Cad {
        /// Score, in (0, 1), at and above which an interval is anomalous (0.75).
        #[serde(default = "default_cad_threshold")]
        threshold: f64,
        /// Intervals after a score of 0.75 or more whose scores are reported as 0.
        #[serde(default = "default_cad_rest_period")]
        rest_period: u32,
        /// Share of the spread added beyond a new extreme when the range widens.
        #[serde(default = "default_cad_margin")]
        margin: f64,
        /// Values kept to rebuild the model when the range widens.
        #[serde(default = "default_cad_history")]
        history: usize,
        /// Contexts per model above which it is rebuilt from the newer quarter of the
        /// history (bounds memory).
        #[serde(default = "default_cad_max_contexts")]
        max_contexts: usize,
        /// Most recent zero-level left semi-contexts that may propose new contexts on
        /// a row (bounds the work per row; 0: all of them, as NAB's code does).
        #[serde(default = "default_cad_max_proposers")]
        max_proposers: usize,
    },
    /// ARTime, adaptive resonance over downsampled windows of the series (see
    /// [`crate::detect::artime`]), learning its range as the data arrive: the
    /// `anomaly_score` is 0 except when a window starts a new cluster of patterns.
    /// Nothing is graded during the first `warmup` intervals.
    Artime {
        /// Intervals collected before scoring starts.
        #[serde(default = "default_artime_warmup")]
        warmup: usize,
        /// Intervals per downsampled sample.
        #[serde(default = "default_artime_step")]
        step: usize,
        /// Most categories (patterns) kept per feature.
        #[serde(default = "default_artime_categories")]
        max_categories: usize,
        /// Margin added to each side of the learnt range, as a share of its span.
        #[serde(default = "default_artime_margin")]
        margin: f64,
        /// Score, in (0, 1], at and above which an interval is anomalous.
        #[serde(default = "default_artime_threshold")]
        threshold: f64,
    },
    /// A Random Cut Forest over shingles of `shingle_size` intervals, thresholded as
    /// AWS's ThresholdedRandomCutForest does (see [`crate::detect::rcf`]).
    Rcf {
        /// Trees in the forest (OpenSearch AD: 50).
        #[serde(default = "default_rcf_trees")]
        trees: usize,
        /// Points sampled per tree (OpenSearch AD: 256).
        #[serde(default = "default_rcf_samples")]
        samples: usize,
        /// Time decay of the tree samples per interval (OpenSearch AD: 0.0001).
        #[serde(default = "default_rcf_time_decay")]
        time_decay: f64,
        /// TRCF's z-factor: deviations of the scores above their mean at which a
        /// score is anomalous (3).
        #[serde(default = "default_rcf_threshold")]
        threshold: f64,
        /// Intervals seen before results are graded.
        #[serde(default = "default_rcf_min_intervals")]
        min_intervals: u32,
        /// Input transformation before the forest: `normalize` (default), `none`,
        /// `difference` or `normalize_difference` (TRCF's `TransformMethod`).
        #[serde(default)]
        transform: crate::detect::rcf::Transform,
        /// TRCF's lower (absolute) threshold: scores below it are never anomalous
        /// (0.8).
        #[serde(default = "default_rcf_lower_threshold")]
        lower_threshold: f64,
        /// TRCF's horizon in [0, 1]: weight of the short-term against the long-term
        /// deviation of the scores in the threshold (0.5).
        #[serde(default = "default_rcf_horizon")]
        horizon: f64,
        /// Share in [0, 1] of each tree's nodes whose bounding box is cached: memory
        /// against CPU, no change in results (0: the compact default).
        #[serde(default)]
        bounding_box_cache_fraction: f64,
    },
}

fn default_rcf_trees() -> usize {
    50
}
fn default_rcf_samples() -> usize {
    256
}
fn default_rcf_time_decay() -> f64 {
    0.0001
}
fn default_rcf_threshold() -> f64 {
    3.0
}
fn default_rcf_min_intervals() -> u32 {
    10
}
fn default_rcf_lower_threshold() -> f64 {
    0.8
}
fn default_rcf_horizon() -> f64 {
    0.5
}

fn default_cad_threshold() -> f64 {
    crate::detect::cad::CadParams::default().threshold
}
fn default_cad_rest_period() -> u32 {
    crate::detect::cad::CadParams::default().rest_period
}
fn default_cad_margin() -> f64 {
    crate::detect::cad::CadParams::default().margin
}
fn default_cad_history() -> usize {
    crate::detect::cad::CadParams::default().history
}
fn default_cad_max_contexts() -> usize {
    crate::detect::cad::CadParams::default().max_contexts
}
fn default_cad_max_proposers() -> usize {
    crate::detect::cad::CadParams::default().max_proposers
}
fn default_artime_warmup() -> usize {
    crate::detect::artime::ArTimeParams::default().warmup
}
fn default_artime_step() -> usize {
    crate::detect::artime::ArTimeParams::default().step
}
fn default_artime_categories() -> usize {
    crate::detect::artime::ArTimeParams::default().max_categories
}
fn default_artime_margin() -> f64 {
    crate::detect::artime::ArTimeParams::default().margin
}
fn default_artime_threshold() -> f64 {
    0.05
}

fn default_likelihood_threshold() -> f64 {
    0.5
}
fn default_true() -> bool {
    true
}
fn default_spatial_tolerance() -> f64 {
    0.05
}
fn default_likelihood_window() -> usize {
    8640
}
fn default_likelihood_average() -> usize {
    10
}

/// Most intervals an `ewma_likelihood` window may hold (the state keeps two numbers
/// per interval of the window).
pub const MAX_LIKELIHOOD_WINDOW: usize = 100_000;

fn default_min_shift() -> f64 {
    0.02
}

fn default_accept_shift_after() -> u64 {
    crate::detect::ewma::DEFAULT_ACCEPT_SHIFT_AFTER_MS
}
fn is_default_accept_shift_after(ms: &u64) -> bool {
    *ms == default_accept_shift_after()
}

/// Longest `accept_shift_after`: 30 days.
pub const MAX_ACCEPT_SHIFT_AFTER_MS: u64 = 30 * 86_400_000;

/// A duration in ms written as text (`24h`) in TOML and JSON.
mod duration_text_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::duration_text(*ms))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        let ms = super::duration_ms(&text).map_err(D::Error::custom)?;
        u64::try_from(ms).map_err(|_| D::Error::custom(format!("`{text}` is negative")))
    }
}

fn default_half_life() -> f64 {
    60.0
}
fn default_threshold() -> f64 {
    5.0
}
fn default_min_intervals() -> u32 {
    5
}

impl AlgorithmSpec {
    /// The parameters every algorithm has: the baseline half-life in intervals (none
    /// for the forest), the score threshold and the intervals learnt before grading.
    pub fn common_params(&self) -> (Option<f64>, f64, u32) {
        match self {
            AlgorithmSpec::Ewma {
                half_life,
                threshold,
                min_intervals,
                ..
            }
            | AlgorithmSpec::Categorical {
                half_life,
                threshold,
                min_intervals,
                ..
            }
            | AlgorithmSpec::EwmaLikelihood {
                half_life,
                threshold,
                min_intervals,
                ..
            } => (Some(*half_life), *threshold, *min_intervals),
            AlgorithmSpec::Rcf {
                threshold,
                min_intervals,
                ..
            } => (None, *threshold, *min_intervals),
            AlgorithmSpec::Artime { threshold, .. }
            | AlgorithmSpec::Cad { threshold, .. }
            | AlgorithmSpec::Ensemble { threshold, .. } => (None, *threshold, 0),
        }
    }
}

impl AlgorithmSpec {
    /// Intervals a model sees before it grades results (its warm-up).
    pub fn min_intervals(&self) -> u32 {
        match *self {
            AlgorithmSpec::Ensemble { ref members, .. } => members
                .iter()
                .map(|m| m.algorithm.min_intervals())
                .min()
                .unwrap_or(0),
            AlgorithmSpec::Ewma { min_intervals, .. }
            | AlgorithmSpec::Categorical { min_intervals, .. }
            | AlgorithmSpec::EwmaLikelihood { min_intervals, .. }
            | AlgorithmSpec::Rcf { min_intervals, .. } => min_intervals,
            AlgorithmSpec::Artime { warmup, .. } => u32::try_from(warmup).unwrap_or(u32::MAX),
            AlgorithmSpec::Cad { .. } => 0,
        }
    }

    /// Estimated resident bytes of one model of this algorithm with `features`
    /// features over shingles of `shingle_size` intervals, for the per-entity budget:
    /// [`BYTES_PER_ENTITY`] for `ewma` and `categorical`; plus 16 bytes per interval
    /// of the likelihood window for `ewma_likelihood` (about 140 KB at the default
    /// window); for `rcf`, `trees * samples * (25 + features + 9 * c * features *
    /// shingle_size)` with `c` the bounding-box cache fraction, fitted to the resident
    /// growth of models fed 300-600 intervals with a margin of a few per cent (285-301
    /// KB measured with one feature and 307 KB with five at the defaults, no cache:
    /// about 3,500-3,700 one-feature models per GiB, a default cap of 3,226; 1.22 MB
    /// with one feature and the full cache). See `tests/entity_memory.rs`; `artime`
    /// and `ensemble` models: see [`crate::detect::artime::model_bytes`] and the sum
    /// of their members.
    pub fn model_bytes(&self, features: usize, shingle_size: usize) -> usize {
        match *self {
            AlgorithmSpec::Ensemble { ref members, .. } => members
                .iter()
                .map(|m| m.algorithm.model_bytes(features, shingle_size))
                .sum(),
            AlgorithmSpec::Ewma { .. } | AlgorithmSpec::Categorical { .. } => BYTES_PER_ENTITY,
            AlgorithmSpec::EwmaLikelihood { window, .. } => BYTES_PER_ENTITY + 16 * window,
            AlgorithmSpec::Artime {
                max_categories,
                warmup,
                ..
            } => crate::detect::artime::model_bytes(features.max(1), max_categories, warmup),
            // Contexts (about 100 bytes each with their semi-contexts and indexes,
            // measured on white noise) and the kept history, per feature.
            AlgorithmSpec::Cad {
                history,
                max_contexts,
                ..
            } => features.max(1) * (max_contexts * 100 + history * 8 + 4_096),
            AlgorithmSpec::Rcf {
                trees,
                samples,
                bounding_box_cache_fraction,
                ..
            } => {
                let dims = (features.max(1) * shingle_size.max(1)) as f64;
                let per_sample =
                    25.0 + features.max(1) as f64 + 9.0 * bounding_box_cache_fraction * dims;
                (trees as f64 * samples as f64 * per_sample).ceil() as usize
            }
        }
    }
}

impl AlgorithmSpec {
    /// The default detector for generic metric series (`waflog detect --input-format
    /// csv` without `[[detectors]]`, and the NAB script): `cad` with its defaults
    /// ([`AlgorithmSpec::cad_default`]). NAB 71.88 / 63.97 / 76.66 (official scorer,
    /// `bash benches/nab.sh`; 69.5-69.9 on the held-out halves of a two-fold
    /// cross-validation of its tuned parameters) against 67.29 / 59.44 / 73.02 for
    /// the default before it ([`AlgorithmSpec::artime_likelihood_ensemble`]), 64.91 /
    /// 54.43 / 70.29 for `artime` alone and 58.21 / 50.68 / 63.32 for
    /// `ewma_likelihood`. WAF log detectors default to `ewma`
    /// ([`AlgorithmSpec::default`]): on simulated WAF traffic (the `waf_targets`
    /// example) it finds more episodes with fewer false alarms, from the 5th
    /// one-minute interval on.
    pub fn metric_default() -> AlgorithmSpec {
        AlgorithmSpec::cad_default()
    }

    /// `cad` with its defaults.
    pub fn cad_default() -> AlgorithmSpec {
        AlgorithmSpec::Cad {
            threshold: default_cad_threshold(),
            rest_period: default_cad_rest_period(),
            margin: default_cad_margin(),
            history: default_cad_history(),
            max_contexts: default_cad_max_contexts(),
            max_proposers: default_cad_max_proposers(),
        }
    }

    /// The default metric detector before `cad`: an `ensemble` of `artime` (its
    /// defaults) and `ewma_likelihood` with the spatial rule voting from a score of
    /// 0.99 (its extremes: a value outside the range seen so far, or a run of errors
    /// far outside its distribution); anomalous from a score of 0.44 (NAB's
    /// standard-profile optimum for it). NAB 67.29 / 59.44 / 73.02; lighter and
    /// faster than `cad` on noise (about 160,000 points/s on white noise against
    /// 60,000).
    pub fn artime_likelihood_ensemble() -> AlgorithmSpec {
        AlgorithmSpec::Ensemble {
            members: vec![
                EnsembleMember {
                    weight: 1.0,
                    min_score: 0.0,
                    algorithm: AlgorithmSpec::artime_default(),
                },
                EnsembleMember {
                    weight: 1.0,
                    min_score: default_likelihood_vote(),
                    algorithm: AlgorithmSpec::likelihood_default(),
                },
            ],
            threshold: default_ensemble_threshold(),
        }
    }

    /// `artime` with its defaults.
    pub fn artime_default() -> AlgorithmSpec {
        AlgorithmSpec::Artime {
            warmup: default_artime_warmup(),
            step: default_artime_step(),
            max_categories: default_artime_categories(),
            margin: default_artime_margin(),
            threshold: default_artime_threshold(),
        }
    }

    /// `ewma_likelihood` with its defaults and the spatial rule (the metric default
    /// before the ensemble).
    pub fn likelihood_default() -> AlgorithmSpec {
        AlgorithmSpec::EwmaLikelihood {
            half_life: default_half_life(),
            threshold: default_likelihood_threshold(),
            window: default_likelihood_window(),
            average: default_likelihood_average(),
            min_intervals: default_min_intervals(),
            spatial: true,
            spatial_tolerance: default_spatial_tolerance(),
        }
    }
}

/// The smallest likelihood score at which the default ensemble's likelihood member
/// votes: only its extremes (a value outside the range seen so far scores 1).
fn default_likelihood_vote() -> f64 {
    0.99
}

impl Default for AlgorithmSpec {
    fn default() -> Self {
        AlgorithmSpec::Ewma {
            half_life: default_half_life(),
            threshold: default_threshold(),
            min_intervals: default_min_intervals(),
            accept_shift_after_ms: default_accept_shift_after(),
        }
    }
}

/// What a detector's features are on an interval without records (OpenSearch AD
/// 2.17's imputation). TOML: `missing = "zero"`, `"previous"`, `"ignore"` or
/// `missing = { fixed = 5.0 }`. The result of an imputed interval lists its features
/// under `feature_imputed`. Detectors with a `category_field` have no empty intervals
/// (an entity without records has no interval), so the rule does not apply to them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// Every feature is 0 (the default): a drop to no traffic is visible, which is
    /// what a WAF count means when nothing arrived.
    #[default]
    Zero,
    /// The last interval's values (0 before the first): for metrics that hold their
    /// value when nobody reports it.
    Previous,
    /// The interval is not scored: no result, and the models do not see it (as a
    /// gap; counted in `ignored_intervals`).
    Ignore,
    /// Every feature has this value.
    Fixed(f64),
}

impl Missing {
    fn is_zero(&self) -> bool {
        *self == Missing::Zero
    }
}

/// One detector, validated: its durations are parsed once, when the configuration
/// is read (`interval = "1m"` in TOML is `interval_ms: 60_000` here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DetectorToml", into = "DetectorToml")]
pub struct DetectorSpec {
    /// Unique name (also the `detector_id` of its results).
    pub name: String,
    /// One to five features.
    pub features: Vec<FeatureSpec>,
    /// Interval length in milliseconds (TOML `interval`: `1m` by default, `30s`,
    /// `5m`; 1s to 24h).
    pub interval_ms: u64,
    /// How long after an interval ends (in event time) late records are still
    /// accepted, in milliseconds (TOML `window_delay`: `10s` by default; at most 24h).
    pub window_delay_ms: u64,
    /// Consecutive intervals a model looks at (default 8, as OpenSearch AD).
    pub shingle_size: usize,
    /// Dotted path of a field whose values each get their own model.
    pub category_field: Option<String>,
    /// Algorithm and parameters.
    pub algorithm: AlgorithmSpec,
    /// The features of an interval without records (`zero` by default).
    pub missing: Missing,
    /// Rules on the deviations that count (see [`crate::detect::rules`]).
    pub rules: Vec<Rule>,
    /// Suppression windows (see [`crate::detect::rules`]).
    pub suppress: Vec<Window>,
}

/// The TOML shape of a detector: durations as text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectorToml {
    name: String,
    features: Vec<FeatureSpec>,
    #[serde(default = "default_interval")]
    interval: String,
    #[serde(default = "default_window_delay")]
    window_delay: String,
    #[serde(default = "default_shingle")]
    shingle_size: usize,
    #[serde(default)]
    category_field: Option<String>,
    #[serde(default)]
    algorithm: AlgorithmSpec,
    #[serde(default, skip_serializing_if = "Missing::is_zero")]
    missing: Missing,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    suppress: Vec<Window>,
}

/// Longest interval and window delay: one day.
const MAX_DURATION_MS: u64 = 86_400_000;
const DEFAULT_INTERVAL_MS: u64 = 60_000;
const DEFAULT_WINDOW_DELAY_MS: u64 = 10_000;

fn default_interval() -> String {
    "1m".into()
}
fn default_window_delay() -> String {
    "10s".into()
}
fn default_shingle() -> usize {
    8
}

/// Parses one of a detector's durations and checks it lies in `range`.
fn duration_in(
    detector: &str,
    field: &'static str,
    text: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, DurationError> {
    let error = |reason: String| DurationError {
        detector: detector.to_string(),
        field,
        reason,
    };
    let ms = duration_ms(text).map_err(error)?;
    match u64::try_from(ms) {
        Ok(ms) if range.contains(&ms) => Ok(ms),
        _ => Err(error(format!(
            "`{text}` must be between {} and {}",
            duration_text(*range.start()),
            duration_text(*range.end())
        ))),
    }
}

impl TryFrom<DetectorToml> for DetectorSpec {
    type Error = DurationError;
    fn try_from(t: DetectorToml) -> Result<DetectorSpec, DurationError> {
        let interval_ms = duration_in(&t.name, "interval", &t.interval, 1_000..=MAX_DURATION_MS)?;
        let window_delay_ms = duration_in(
            &t.name,
            "window_delay",
            &t.window_delay,
            0..=MAX_DURATION_MS,
        )?;
        Ok(DetectorSpec {
            name: t.name,
            features: t.features,
            interval_ms,
            window_delay_ms,
            shingle_size: t.shingle_size,
            category_field: t.category_field,
            algorithm: t.algorithm,
            missing: t.missing,
            rules: t.rules,
            suppress: t.suppress,
        })
    }
}

impl From<DetectorSpec> for DetectorToml {
    fn from(d: DetectorSpec) -> DetectorToml {
        DetectorToml {
            name: d.name,
            features: d.features,
            interval: duration_text(d.interval_ms),
            window_delay: duration_text(d.window_delay_ms),
            shingle_size: d.shingle_size,
            category_field: d.category_field,
            algorithm: d.algorithm,
            missing: d.missing,
            rules: d.rules,
            suppress: d.suppress,
        }
    }
}

pub use crate::timestamp::{duration_text, parse_duration_ms as duration_ms};

impl DetectorSpec {
    /// A detector on the sum of one indicator per interval.
    pub fn indicator_sum(name: &str, indicator: &str) -> DetectorSpec {
        DetectorSpec {
            name: name.into(),
            features: vec![FeatureSpec {
                name: indicator.into(),
                aggregation: Aggregation::Sum,
                field: Some(indicator.into()),
                filter: None,
            }],
            interval_ms: DEFAULT_INTERVAL_MS,
            window_delay_ms: DEFAULT_WINDOW_DELAY_MS,
            shingle_size: default_shingle(),
            category_field: None,
            algorithm: AlgorithmSpec::default(),
            missing: Missing::Zero,
            rules: Vec::new(),
            suppress: Vec::new(),
        }
    }

    /// The built-in detectors: the seed's five, with its names, plus one on the total
    /// request count.
    pub fn defaults() -> Vec<DetectorSpec> {
        let mut v = vec![
            DetectorSpec::indicator_sum("action-anomaly-detector", names::B_ACTION),
            DetectorSpec::indicator_sum("country-anomaly-detector", names::UNK_COUNTRY),
            DetectorSpec::indicator_sum("httpstatus-anomaly-detector", names::B_HTTPSTATUS),
            DetectorSpec::indicator_sum("method-anomaly-detector", names::UNCOMMON_METHOD),
            DetectorSpec::indicator_sum("source-anomaly-detector", names::UNK_SOURCE),
        ];
        let mut count = DetectorSpec::indicator_sum("request-count-detector", "request_count");
        count.features[0] = FeatureSpec {
            name: "request_count".into(),
            aggregation: Aggregation::Count,
            field: None,
            filter: None,
        };
        v.push(count);
        v
    }

    /// How many per-entity models of this detector fit in 1 GiB (at most
    /// [`DEFAULT_MAX_ENTITIES`]): the entity cap when none is given.
    pub fn default_max_entities(&self) -> usize {
        let bytes = self
            .algorithm
            .model_bytes(self.features.len(), self.shingle_size)
            .max(1);
        ((1usize << 30) / bytes).clamp(1, DEFAULT_MAX_ENTITIES)
    }

    /// The interval in milliseconds as event-time arithmetic uses it (`i64`, as
    /// timestamps are).
    pub fn interval(&self) -> i64 {
        self.interval_ms as i64
    }

    /// The window delay in milliseconds as event-time arithmetic uses it.
    pub fn window_delay(&self) -> i64 {
        self.window_delay_ms as i64
    }

    /// Checks the rules and suppression windows: a rule names one of this
    /// detector's features (and this detector, if any), with sane minimums.
    fn validate_rules(
        &self,
        invalid: &impl Fn(String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(d) = &r.detector
                && *d != self.name
            {
                return Err(invalid(
                    format!("rules[{i}].detector"),
                    format!("`{d}` inside detector `{}`", self.name),
                ));
            }
            if let Some(f) = &r.feature
                && !self.features.iter().any(|g| &g.name == f)
            {
                return Err(invalid(
                    format!("rules[{i}].feature"),
                    format!("`{f}` is not a feature of `{}`", self.name),
                ));
            }
            r.check()
                .map_err(|(field, reason)| invalid(format!("rules[{i}].{field}"), reason))?;
        }
        for (i, w) in self.suppress.iter().enumerate() {
            if !w.covers(&self.name) {
                return Err(invalid(
                    format!("suppress[{i}].detectors"),
                    format!("does not name `{}`", self.name),
                ));
            }
        }
        Ok(())
    }

    /// Checks the spec; `index` is its position in `[[detectors]]`.
    pub fn validate(&self, index: usize, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: format!("detectors[{index}].{field}"),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(invalid("name".into(), "must not be empty".into()));
        }
        if let Missing::Fixed(v) = self.missing
            && !v.is_finite()
        {
            return Err(invalid(
                "missing.fixed".into(),
                format!("{v} is not a finite number"),
            ));
        }
        self.validate_rules(&invalid)?;
        if self.features.is_empty() || self.features.len() > MAX_FEATURES {
            return Err(invalid(
                "features".into(),
                format!(
                    "{} features; a detector has 1 to {MAX_FEATURES}",
                    self.features.len()
                ),
            ));
        }
        for (i, f) in self.features.iter().enumerate() {
            if f.name.trim().is_empty() {
                return Err(invalid(
                    format!("features[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if self.features[..i].iter().any(|g| g.name == f.name) {
                return Err(invalid(
                    format!("features[{i}].name"),
                    format!("`{}` is used twice", f.name),
                ));
            }
            match (&f.field, f.aggregation) {
                (None, Aggregation::Count) => {}
                (None, a) => {
                    return Err(invalid(
                        format!("features[{i}].field"),
                        format!("{a:?} needs a field"),
                    ));
                }
                (Some(p), _) if !valid_path(p) => {
                    return Err(invalid(
                        format!("features[{i}].field"),
                        format!("`{p}` is not a dotted field path"),
                    ));
                }
                _ => {}
            }
            if let Some(flt) = &f.filter {
                if !valid_path(&flt.field) {
                    return Err(invalid(
                        format!("features[{i}].filter.field"),
                        format!("`{}` is not a dotted field path", flt.field),
                    ));
                }
                if flt.equals.is_some() == flt.in_set.is_some() {
                    return Err(invalid(
                        format!("features[{i}].filter"),
                        "give exactly one of `equals` or `in`".into(),
                    ));
                }
            }
        }
        if !(1_000..=MAX_DURATION_MS).contains(&self.interval_ms) {
            return Err(invalid(
                "interval".into(),
                format!(
                    "`{}` must be between 1s and 24h",
                    duration_text(self.interval_ms)
                ),
            ));
        }
        if self.window_delay_ms > MAX_DURATION_MS {
            return Err(invalid(
                "window_delay".into(),
                format!(
                    "`{}` must be between 0 and 24h",
                    duration_text(self.window_delay_ms)
                ),
            ));
        }
        if !(1..=64).contains(&self.shingle_size) {
            return Err(invalid(
                "shingle_size".into(),
                format!("{} must be in 1..=64", self.shingle_size),
            ));
        }
        if let Some(c) = &self.category_field
            && !valid_path(c)
        {
            return Err(invalid(
                "category_field".into(),
                format!("`{c}` is not a dotted field path"),
            ));
        }
        if let AlgorithmSpec::Categorical {
            field, min_shift, ..
        } = &self.algorithm
        {
            if !valid_path(field) {
                return Err(invalid(
                    "algorithm.field".into(),
                    format!("`{field}` is not a dotted field path"),
                ));
            }
            if !(0.0..=1.0).contains(min_shift) {
                return Err(invalid(
                    "algorithm.min_shift".into(),
                    format!("{min_shift} must be in [0, 1]"),
                ));
            }
        }
        if let AlgorithmSpec::Rcf {
            trees,
            samples,
            time_decay,
            lower_threshold,
            horizon,
            bounding_box_cache_fraction,
            ..
        } = self.algorithm
        {
            if !(lower_threshold >= 0.0 && lower_threshold.is_finite()) {
                return Err(invalid(
                    "algorithm.lower_threshold".into(),
                    format!("{lower_threshold} must be a finite number >= 0"),
                ));
            }
            if !(0.0..=1.0).contains(&horizon) {
                return Err(invalid(
                    "algorithm.horizon".into(),
                    format!("{horizon} must be in [0, 1]"),
                ));
            }
            if !(0.0..=1.0).contains(&bounding_box_cache_fraction) {
                return Err(invalid(
                    "algorithm.bounding_box_cache_fraction".into(),
                    format!("{bounding_box_cache_fraction} must be in [0, 1]"),
                ));
            }
            if !(1..=200).contains(&trees) {
                return Err(invalid(
                    "algorithm.trees".into(),
                    format!("{trees} must be in 1..=200"),
                ));
            }
            if !(16..=2048).contains(&samples) {
                return Err(invalid(
                    "algorithm.samples".into(),
                    format!("{samples} must be in 16..=2048"),
                ));
            }
            if !(0.0..1.0).contains(&time_decay) {
                return Err(invalid(
                    "algorithm.time_decay".into(),
                    format!("{time_decay} must be in [0, 1)"),
                ));
            }
        }
        if let AlgorithmSpec::Ewma {
            accept_shift_after_ms,
            ..
        } = self.algorithm
            && !(60_000.max(self.interval_ms)..=MAX_ACCEPT_SHIFT_AFTER_MS)
                .contains(&accept_shift_after_ms)
        {
            return Err(invalid(
                "algorithm.accept_shift_after".into(),
                format!(
                    "`{}` must be between {} (and at least the interval) and 30d",
                    duration_text(accept_shift_after_ms),
                    duration_text(60_000.max(self.interval_ms))
                ),
            ));
        }
        let (half_life, threshold, min_intervals) = self.algorithm.common_params();
        if let Some(half_life) = half_life
            && !(half_life >= 1.0 && half_life.is_finite())
        {
            return Err(invalid(
                "algorithm.half_life".into(),
                format!("{half_life} must be >= 1 interval"),
            ));
        }
        if !(threshold > 0.0 && threshold.is_finite()) {
            return Err(invalid(
                "algorithm.threshold".into(),
                format!("{threshold} must be positive"),
            ));
        }
        if let AlgorithmSpec::EwmaLikelihood {
            window,
            average,
            spatial_tolerance,
            ..
        } = self.algorithm
        {
            if !(0.0..=10.0).contains(&spatial_tolerance) {
                return Err(invalid(
                    "algorithm.spatial_tolerance".into(),
                    format!("{spatial_tolerance} must be in [0, 10] (a share of the range)"),
                ));
            }
            if threshold >= 1.0 {
                return Err(invalid(
                    "algorithm.threshold".into(),
                    format!("{threshold} must be below 1 (a likelihood score)"),
                ));
            }
            if !(1..=1000).contains(&average) {
                return Err(invalid(
                    "algorithm.average".into(),
                    format!("{average} must be in 1..=1000"),
                ));
            }
            if !(average..=MAX_LIKELIHOOD_WINDOW).contains(&window) {
                return Err(invalid(
                    "algorithm.window".into(),
                    format!("{window} must be in {average}..={MAX_LIKELIHOOD_WINDOW} (average..)"),
                ));
            }
        }
        if let AlgorithmSpec::Artime {
            warmup,
            step,
            max_categories,
            margin,
            ..
        } = self.algorithm
        {
            if !(16..=100_000).contains(&warmup) {
                return Err(invalid(
                    "algorithm.warmup".into(),
                    format!("{warmup} must be in 16..=100000 intervals"),
                ));
            }
            if !(1..=1000).contains(&step) || step * 16 > warmup {
                return Err(invalid(
                    "algorithm.step".into(),
                    format!("{step} must be in 1..=1000 and at most warmup / 16"),
                ));
            }
            if !(2..=100_000).contains(&max_categories) {
                return Err(invalid(
                    "algorithm.max_categories".into(),
                    format!("{max_categories} must be in 2..=100000"),
                ));
            }
            if !(0.0..=100.0).contains(&margin) {
                return Err(invalid(
                    "algorithm.margin".into(),
                    format!("{margin} must be in [0, 100] (a share of the range)"),
                ));
            }
            if threshold > 1.0 {
                return Err(invalid(
                    "algorithm.threshold".into(),
                    format!("{threshold} must be at most 1 (an artime score)"),
                ));
            }
        }
        if let AlgorithmSpec::Cad {
            margin,
            history,
            max_contexts,
            rest_period,
            ..
        } = self.algorithm
        {
            if threshold >= 1.0 {
                return Err(invalid(
                    "algorithm.threshold".into(),
                    format!("{threshold} must be below 1 (a cad score)"),
                ));
            }
            if !(0.0..=10.0).contains(&margin) {
                return Err(invalid(
                    "algorithm.margin".into(),
                    format!("{margin} must be in [0, 10] (a share of the spread)"),
                ));
            }
            if !(16..=100_000).contains(&history) {
                return Err(invalid(
                    "algorithm.history".into(),
                    format!("{history} must be in 16..=100000"),
                ));
            }
            if !(100..=1_000_000).contains(&max_contexts) {
                return Err(invalid(
                    "algorithm.max_contexts".into(),
                    format!("{max_contexts} must be in 100..=1000000"),
                ));
            }
            if rest_period > 100_000 {
                return Err(invalid(
                    "algorithm.rest_period".into(),
                    format!("{rest_period} must be at most 100000"),
                ));
            }
        }
        if let AlgorithmSpec::Ensemble { members, .. } = &self.algorithm {
            if !(1..=8).contains(&members.len()) {
                return Err(invalid(
                    "algorithm.members".into(),
                    format!("{} members; an ensemble has 1 to 8", members.len()),
                ));
            }
            if threshold >= 1.0 {
                return Err(invalid(
                    "algorithm.threshold".into(),
                    format!("{threshold} must be below 1 (an ensemble score)"),
                ));
            }
            for (i, m) in members.iter().enumerate() {
                let field = |f: &str| format!("algorithm.members[{i}].{f}");
                if !matches!(
                    m.algorithm,
                    AlgorithmSpec::EwmaLikelihood { .. }
                        | AlgorithmSpec::Artime { .. }
                        | AlgorithmSpec::Cad { .. }
                        | AlgorithmSpec::Ensemble { .. }
                ) {
                    return Err(invalid(
                        field("type"),
                        "an ensemble member is `ewma_likelihood`, `artime`, `cad` or \
                         `ensemble` (scores in [0, 1])"
                            .into(),
                    ));
                }
                if !(m.weight > 0.0 && m.weight <= 10.0) {
                    return Err(invalid(
                        field("weight"),
                        format!("{} must be in (0, 10]", m.weight),
                    ));
                }
                if !(0.0..=1.0).contains(&m.min_score) {
                    return Err(invalid(
                        field("min_score"),
                        format!("{} must be in [0, 1]", m.min_score),
                    ));
                }
                let nested = DetectorSpec {
                    algorithm: m.algorithm.clone(),
                    ..self.clone()
                };
                if let Err(ConfigError::Invalid {
                    field: f, reason, ..
                }) = nested.validate(index, path)
                {
                    let prefix = format!("detectors[{index}].algorithm.");
                    let inner = f.strip_prefix(&prefix).unwrap_or(&f);
                    return Err(invalid(field(inner), reason));
                }
            }
        }
        if min_intervals > 10 {
            return Err(invalid(
                "algorithm.min_intervals".into(),
                format!("{min_intervals} must be at most 10"),
            ));
        }
        Ok(())
    }
}

/// A dotted path; a segment may end in `[]` (each element of an array:
/// `labels[].name`), and `[` `]` appear nowhere else.
fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && p.split('.').all(|s| {
            let key = s.strip_suffix("[]").unwrap_or(s);
            !key.is_empty() && !key.contains(['[', ']'])
        })
}

/// Checks a list of detectors, including that names are unique.
pub fn validate_all(specs: &[DetectorSpec], path: &Path) -> Result<(), ConfigError> {
    for (i, s) in specs.iter().enumerate() {
        s.validate(i, path)?;
        if specs[..i].iter().any(|t| t.name == s.name) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: format!("detectors[{i}].name"),
                reason: format!("`{}` is used twice", s.name),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_default_is_cad_with_its_defaults() {
        let cad: AlgorithmSpec = toml::from_str("type = \"cad\"").unwrap();
        assert_eq!(AlgorithmSpec::metric_default(), cad);
        assert_eq!(AlgorithmSpec::cad_default(), cad);
        let AlgorithmSpec::Cad {
            rest_period,
            max_contexts,
            ..
        } = cad
        else {
            unreachable!()
        };
        assert_eq!((rest_period, max_contexts), (20, 100_000));
        // About 100 bytes per context at the cap, plus the history: some 10 MB.
        assert_eq!(cad.model_bytes(1, 8), 100_000 * 100 + 2000 * 8 + 4_096);
    }

    #[test]
    fn ensembles_and_artime_parse_and_validate() {
        let p = Path::new("waflog.toml");
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.algorithm = toml::from_str(
            "type = \"ensemble\"\nthreshold = 0.44\n\
             [[members]]\ntype = \"artime\"\n\
             [[members]]\ntype = \"ewma_likelihood\"\nmin_score = 0.99\n",
        )
        .unwrap();
        assert_eq!(s.algorithm, AlgorithmSpec::artime_likelihood_ensemble());
        s.validate(0, p).unwrap();
        assert_eq!(
            AlgorithmSpec::artime_default(),
            toml::from_str("type = \"artime\"").unwrap()
        );
        // The warm-up is artime's (the likelihood grades from its 5th interval).
        assert_eq!(s.algorithm.min_intervals(), 5);
        assert_eq!(
            s.algorithm.model_bytes(1, 8),
            AlgorithmSpec::artime_default().model_bytes(1, 8)
                + AlgorithmSpec::likelihood_default().model_bytes(1, 8)
        );
        for (field, toml_text) in [
            ("algorithm.members", "members = []"),
            (
                "algorithm.threshold",
                "threshold = 1.0\n[[members]]\ntype = \"artime\"",
            ),
            ("algorithm.members[0].type", "[[members]]\ntype = \"ewma\""),
            (
                "algorithm.members[0].weight",
                "[[members]]\ntype = \"artime\"\nweight = 0",
            ),
            (
                "algorithm.members[1].min_score",
                "[[members]]\ntype = \"artime\"\n[[members]]\ntype = \"artime\"\nmin_score = 2",
            ),
            (
                "algorithm.members[0].step",
                "[[members]]\ntype = \"artime\"\nstep = 100",
            ),
            (
                "algorithm.members[0].members[0].warmup",
                "[[members]]\ntype = \"ensemble\"\n[[members.members]]\ntype = \"artime\"\nwarmup = 3",
            ),
        ] {
            s.algorithm = toml::from_str(&format!("type = \"ensemble\"\n{toml_text}")).unwrap();
            let e = s.validate(0, p).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        // cad: its defaults, its checks, and as an ensemble member.
        s.algorithm = toml::from_str("type = \"cad\"").unwrap();
        let d = crate::detect::cad::CadParams::default();
        assert_eq!(
            s.algorithm,
            AlgorithmSpec::Cad {
                threshold: d.threshold,
                rest_period: d.rest_period,
                margin: d.margin,
                history: d.history,
                max_contexts: d.max_contexts,
                max_proposers: d.max_proposers,
            }
        );
        s.validate(0, p).unwrap();
        for (field, toml_text) in [
            ("algorithm.threshold", "threshold = 1.0"),
            ("algorithm.margin", "margin = -0.1"),
            ("algorithm.history", "history = 3"),
            ("algorithm.max_contexts", "max_contexts = 10"),
        ] {
            s.algorithm = toml::from_str(&format!("type = \"cad\"\n{toml_text}")).unwrap();
            let e = s.validate(0, p).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        s.algorithm = toml::from_str(
            "type = \"ensemble\"\n[[members]]\ntype = \"cad\"\n[[members]]\ntype = \"artime\"",
        )
        .unwrap();
        s.validate(0, p).unwrap();
        // Unknown keys in a member are refused.
        assert!(
            toml::from_str::<AlgorithmSpec>(
                "type = \"ensemble\"\n[[members]]\ntype = \"artime\"\nwarmupp = 300"
            )
            .is_err()
        );
    }

    #[test]
    fn defaults_are_the_seeds_five_plus_request_count() {
        let d = DetectorSpec::defaults();
        let names: Vec<_> = d.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "action-anomaly-detector",
                "country-anomaly-detector",
                "httpstatus-anomaly-detector",
                "method-anomaly-detector",
                "source-anomaly-detector",
                "request-count-detector"
            ]
        );
        assert_eq!(d[1].features[0].field.as_deref(), Some("UNK_country"));
        assert_eq!(d[1].interval_ms, 60_000);
        assert_eq!(d[1].shingle_size, 8);
        validate_all(&d, Path::new("<built-in>")).unwrap();
    }

    #[test]
    fn bad_specs_name_the_field() {
        let p = Path::new("waflog.toml");
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.features = (0..6)
            .map(|i| FeatureSpec {
                name: format!("f{i}"),
                aggregation: Aggregation::Count,
                field: None,
                filter: None,
            })
            .collect();
        assert!(
            s.validate(2, p)
                .unwrap_err()
                .to_string()
                .contains("detectors[2].features")
        );
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.interval_ms = 500;
        assert!(
            s.validate(0, p)
                .unwrap_err()
                .to_string()
                .contains("detectors[0].interval")
        );
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.window_delay_ms = 2 * MAX_DURATION_MS;
        assert!(
            s.validate(0, p)
                .unwrap_err()
                .to_string()
                .contains("detectors[0].window_delay")
        );
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.features[0].field = None;
        assert!(
            s.validate(0, p)
                .unwrap_err()
                .to_string()
                .contains("features[0].field")
        );
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.features[0].filter = Some(FilterSpec {
            field: "action".into(),
            equals: None,
            in_set: None,
        });
        assert!(
            s.validate(0, p)
                .unwrap_err()
                .to_string()
                .contains("features[0].filter")
        );
        let mut s = DetectorSpec::indicator_sum("x", "B_action");
        s.algorithm = toml::from_str("type = \"ewma_likelihood\"").unwrap();
        assert_eq!(
            s.algorithm,
            AlgorithmSpec::EwmaLikelihood {
                half_life: 60.0,
                threshold: 0.5,
                window: 8640,
                average: 10,
                min_intervals: 5,
                spatial: true,
                spatial_tolerance: 0.05,
            }
        );
        assert_eq!(s.algorithm, AlgorithmSpec::likelihood_default());
        s.validate(0, p).unwrap();
        for (field, toml_text) in [
            ("algorithm.threshold", "threshold = 1.0"),
            ("algorithm.average", "average = 0"),
            ("algorithm.window", "window = 5"),
            ("algorithm.spatial_tolerance", "spatial_tolerance = -1.0"),
        ] {
            s.algorithm =
                toml::from_str(&format!("type = \"ewma_likelihood\"\n{toml_text}")).unwrap();
            let e = s.validate(0, p).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        s.algorithm = toml::from_str("type = \"rcf\"").unwrap();
        assert_eq!(
            s.algorithm,
            AlgorithmSpec::Rcf {
                trees: 50,
                samples: 256,
                time_decay: 0.0001,
                threshold: 3.0,
                min_intervals: 10,
                transform: crate::detect::rcf::Transform::Normalize,
                lower_threshold: 0.8,
                horizon: 0.5,
                bounding_box_cache_fraction: 0.0,
            }
        );
        s.validate(0, p).unwrap();
        for (field, toml_text) in [
            ("algorithm.trees", "trees = 0"),
            ("algorithm.samples", "samples = 4"),
            ("algorithm.time_decay", "time_decay = 1.5"),
            ("algorithm.threshold", "threshold = 0.0"),
            ("algorithm.min_intervals", "min_intervals = 11"),
            ("algorithm.lower_threshold", "lower_threshold = -1.0"),
            ("algorithm.horizon", "horizon = 2.0"),
            (
                "algorithm.bounding_box_cache_fraction",
                "bounding_box_cache_fraction = 1.5",
            ),
        ] {
            s.algorithm = toml::from_str(&format!("type = \"rcf\"\n{toml_text}")).unwrap();
            let e = s.validate(0, p).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let d = vec![
            DetectorSpec::indicator_sum("x", "B_action"),
            DetectorSpec::indicator_sum("x", "UNK_country"),
        ];
        assert!(
            validate_all(&d, p)
                .unwrap_err()
                .to_string()
                .contains("detectors[1].name")
        );
    }
}
