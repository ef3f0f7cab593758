//! The [`Engine`]: extraction, aggregation and detection for a set of detectors. It
//! takes lines, keeps one aggregator per detector and one model per detector and
//! entity, and gives [`AnomalyResult`]s as intervals close; its [`EngineState`]
//! saves and restores all of it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::aggregate::{self, Aggregator, ClosedInterval, CompiledFeature};
use super::extract::{BASE_FIELDS, Extractor, Prepared};
use super::result::{self, AnomalyResult};
use super::rules;
use super::spec::{self, AlgorithmSpec, DetectorSpec, Missing};
use super::{Detector, IntervalFeatures, TimeRules};
use crate::error::{ConfigError, DetectError, SchemaError};
use crate::features::FeatureMap;
use crate::names;
use crate::parse::fields::{FieldSet, Scalar};

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
    pub(crate) slots: Vec<SlotState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SlotState {
    aggregator: aggregate::AggregatorState,
    models: Vec<(Option<String>, serde_json::Value)>,
    anomaly_start: Vec<(Option<String>, i64)>,
    baselines: Vec<(Option<String>, Baseline)>,
    #[serde(default)]
    last_active: Vec<(Option<String>, u64)>,
    #[serde(default)]
    rounds: u64,
    /// The last values of a detector whose `missing` rule is `previous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_values: Option<Vec<f64>>,
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
    /// The last interval's values, kept for `missing = "previous"`.
    last_values: Option<Vec<f64>>,
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
    /// Empty intervals not scored because their detector's `missing` rule is
    /// `ignore`.
    pub ignored_intervals: u64,
    /// Intervals graded above zero by their model and set to 0 by a rule or a
    /// suppression window (see [`crate::detect::rules`]).
    pub suppressed: u64,
}

/// Extraction, aggregation and detection for a set of detectors.
#[derive(Debug)]
pub struct Engine {
    /// Reads records' fields; shared with threads that prepare records ahead.
    extractor: Arc<Extractor>,
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
        // The input contract's paths first (crate::parse), so that the engine and
        // the transform refuse the same records.
        let timestamp = fields.add_checked(names::TIMESTAMP);
        let base = BASE_FIELDS.map(|p| {
            if crate::parse::STATUS_PATHS.contains(&p) {
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
                last_values: None,
            });
        }
        let indicators = names::INDICATORS
            .iter()
            .enumerate()
            .filter_map(|(k, name)| fields.index(name).map(|i| (i, k)))
            .collect();
        Ok(Engine {
            extractor: Arc::new(Extractor {
                fields,
                timestamp,
                base,
                indicators,
                map,
            }),
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
                    last_values: s.last_values.clone(),
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
            slot.last_values = saved.last_values;
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
        let text = crate::parse::object_text(line)?;
        let mut values = Vec::with_capacity(self.extractor.fields.len());
        let ts = self.extractor.extract(text, &mut values)?;
        self.add_record(ts, &values, results)
    }

    /// The extractor of this engine's fields, for threads that read records ahead
    /// of it ([`Extractor::prepare`], then [`Engine::push_prepared`]).
    pub fn extractor(&self) -> Arc<Extractor> {
        Arc::clone(&self.extractor)
    }

    /// [`Engine::push_line`] for record `index` of `prepared`, made by this engine's
    /// [`Engine::extractor`] from the same bytes `line`: the fields are not read
    /// again. The outcome is the same as `push_line(line)`'s; when `prepared` has no
    /// such record, or it was made from bytes of another length or by an extractor
    /// of another field set, the line is read here.
    pub fn push_prepared(
        &mut self,
        line: &[u8],
        prepared: &Prepared,
        index: usize,
        results: &mut Vec<AnomalyResult>,
    ) -> Result<(), SchemaError> {
        let width = self.extractor.fields.len();
        let mut values = Vec::with_capacity(width);
        match prepared.take(index, line, width, &mut values) {
            Some(ts) => self.add_record(ts?, &values, results),
            None => self.push_line(line, results),
        }
    }

    /// Adds a record's values at event time `ts` to every detector's interval.
    fn add_record(
        &mut self,
        ts: i64,
        values: &[Option<Scalar<'_>>],
        results: &mut Vec<AnomalyResult>,
    ) -> Result<(), SchemaError> {
        self.check_time(ts)?;
        let mut moved = false;
        let mut late = 0;
        for slot in &mut self.slots {
            let before = slot.aggregator.late();
            moved |= slot.aggregator.add(ts, values);
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
        for mut c in closed.drain(..) {
            // An interval without records: imputed as the detector's rule says.
            let imputed = c.empty && c.entity.is_none();
            if imputed {
                match slot.spec.missing {
                    Missing::Zero => {}
                    Missing::Fixed(x) => c.values.fill(x),
                    Missing::Previous => {
                        if let Some(last) = &slot.last_values {
                            c.values.clone_from(last);
                        }
                    }
                    Missing::Ignore => {
                        self.stats.ignored_intervals += 1;
                        continue;
                    }
                }
            } else if slot.spec.missing == Missing::Previous && c.entity.is_none() {
                slot.last_values = Some(c.values.clone());
            }
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
            let mut s = model.process(&IntervalFeatures {
                start_ms: c.start_ms,
                end_ms: c.end_ms,
                values: &c.values,
                categories: &c.categories,
            });
            let shift_accepted = model.shift_accepted();
            let names: Vec<String> = slot.spec.features.iter().map(|f| f.name.clone()).collect();
            // Rules and suppression windows, before the grade reaches the result.
            let model_grade = s.anomaly_grade;
            let suppressed = (model_grade > 0.0)
                .then(|| {
                    rules::suppression(
                        &slot.spec.name,
                        &slot.spec.rules,
                        &slot.spec.suppress,
                        (c.start_ms, c.end_ms),
                        (&names, &c.values, &s.expected),
                    )
                })
                .flatten()
                .map(|reason| {
                    s.anomaly_grade = 0.0;
                    result::Suppressed {
                        reason,
                        anomaly_grade: model_grade,
                    }
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
            let contributors = if model_grade > 0.0 {
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
            result.shift_accepted = shift_accepted;
            if suppressed.is_some() {
                self.stats.suppressed += 1;
            }
            result.suppressed = suppressed;
            if contributors.is_some() {
                result.examples = Some(
                    c.examples
                        .iter()
                        .map(|v| result::ExampleRecord::from_values(v))
                        .collect(),
                );
            }
            result.contributors = contributors;
            if imputed {
                result.feature_imputed = Some(
                    names
                        .iter()
                        .map(|n| result::FeatureImputed {
                            feature_id: n.clone(),
                            imputed: true,
                        })
                        .collect(),
                );
            }
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

    /// Feedback from a responder (see [`Detector::learn_normal`]): the model of
    /// `detector` (and `entity`) learns `values` (each feature's name and value) as
    /// normal. Returns false when no such model exists (the detector is no longer
    /// configured, or the entity was evicted), a feature's value is missing, or the
    /// model takes no feedback ([`Detector::learn_normal`]).
    pub fn learn_normal(
        &mut self,
        detector: &str,
        entity: Option<&str>,
        values: &[(String, f64)],
        end_ms: i64,
    ) -> bool {
        let Some(slot) = self.slots.iter_mut().find(|s| s.spec.name == detector) else {
            return false;
        };
        let Some(model) = slot.models.get_mut(&entity.map(str::to_string)) else {
            return false;
        };
        let mut x = Vec::with_capacity(slot.spec.features.len());
        for f in &slot.spec.features {
            match values.iter().find(|(n, _)| *n == f.name) {
                Some((_, v)) if v.is_finite() => x.push(*v),
                _ => return false,
            }
        }
        model.learn_normal(&x, end_ms)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::spec::{Aggregation, FeatureSpec};

    /// 2024-05-01T00:00:00Z: aligned to the minute (and the day).
    const B: i64 = 1_714_521_600_000;
    const S: i64 = 1_000;
    const M: i64 = 60_000;

    fn count(name: &str, interval_ms: u64, delay_ms: u64) -> DetectorSpec {
        let mut s = DetectorSpec::indicator_sum(name, "n");
        s.features[0] = FeatureSpec {
            name: "n".into(),
            aggregation: Aggregation::Count,
            field: None,
            filter: None,
        };
        s.interval_ms = interval_ms;
        s.window_delay_ms = delay_ms;
        s
    }

    fn engine(specs: &[DetectorSpec]) -> Engine {
        Engine::new(specs, FeatureMap::default()).unwrap()
    }

    fn line(t: i64) -> String {
        format!(r#"{{"timestamp":{t},"action":"ALLOW","httpRequest":{{"clientIp":"10.0.0.1"}}}}"#)
    }

    fn push(e: &mut Engine, line: &str, out: &mut Vec<AnomalyResult>) {
        e.push_line(line.as_bytes(), out).unwrap();
    }

    /// (detector, start relative to B in seconds, records, first feature value).
    fn rows(results: &[AnomalyResult]) -> Vec<(String, i64, u64, f64)> {
        results
            .iter()
            .map(|r| {
                (
                    r.detector_name.clone(),
                    (r.data_start_time - B) / S,
                    r.records,
                    r.feature_data[0].data,
                )
            })
            .collect()
    }

    #[test]
    fn an_interval_closes_when_the_watermark_passes_its_end_plus_the_window_delay() {
        let mut e = engine(&[count("c", 60_000, 10_000)]);
        let mut out = Vec::new();
        for t in [B + S, B + 2 * S, B + 30 * S, B + M + 5 * S] {
            push(&mut e, &line(t), &mut out);
        }
        // Watermark at 1:05: the first minute ends at 1:00 but waits until 1:10.
        assert!(out.is_empty());
        push(&mut e, &line(B + M + 10 * S), &mut out);
        assert_eq!(rows(&out), [("c".to_string(), 0, 3, 3.0)]);
        let r = &out[0];
        assert_eq!((r.data_start_time, r.data_end_time), (B, B + M));
        assert_eq!(r.execution_end_time, B + M + 10 * S);
        // A record late for the closed interval but inside nothing open is refused.
        assert!(matches!(
            e.push_line(line(B + 59 * S).as_bytes(), &mut out),
            Err(SchemaError::Late { .. })
        ));
        // The second minute is not complete at the end of input: left unscored.
        assert_eq!(e.finish(&mut out), 2);
        assert_eq!(out.len(), 1);
        let stats = e.stats();
        assert_eq!(
            (stats.records, stats.intervals, stats.late),
            (5, 1, 1),
            "{stats:?}"
        );
        assert_eq!(e.max_event_ms(), Some(B + M + 10 * S));
        assert_eq!(e.late(), [("c", 1)]);
    }

    #[test]
    fn advance_to_closes_idle_intervals() {
        let mut e = engine(&[count("c", 60_000, 10_000)]);
        let mut out = Vec::new();
        push(&mut e, &line(B + S), &mut out);
        e.advance_to(B + M + 9 * S, &mut out);
        assert!(out.is_empty());
        e.advance_to(B + 2 * M + 10 * S, &mut out);
        // Both minutes close: the record's and the empty one after it (zero-filled).
        assert_eq!(
            rows(&out),
            [("c".to_string(), 0, 1, 1.0), ("c".to_string(), 60, 0, 0.0)]
        );
    }

    #[test]
    fn several_detectors_each_close_on_their_own_interval() {
        let mut blocks = DetectorSpec::indicator_sum("blocks", names::B_ACTION);
        blocks.interval_ms = 30_000;
        blocks.window_delay_ms = 0;
        let specs = [count("c", 60_000, 0), blocks];
        let mut e = engine(&specs);
        let mut out = Vec::new();
        let lines = [
            (B + S, "ALLOW"),
            (B + 10 * S, "BLOCK"),
            (B + 40 * S, "BLOCK"),
            (B + 50 * S, "BLOCK"),
            (B + 70 * S, "ALLOW"),
        ];
        for (t, action) in lines {
            push(
                &mut e,
                &format!(r#"{{"timestamp":{t},"action":"{action}"}}"#),
                &mut out,
            );
        }
        assert_eq!(
            rows(&out),
            [
                ("blocks".to_string(), 0, 2, 1.0),
                ("c".to_string(), 0, 4, 4.0),
                ("blocks".to_string(), 30, 2, 2.0),
            ]
        );
        // At the end, the 1:00-1:30 interval of `blocks` is not complete either.
        assert_eq!(e.finish(&mut out), 2);
        assert_eq!(e.stats().intervals, 3);
    }

    #[test]
    fn a_category_field_gives_each_entity_its_own_intervals() {
        let mut s = count("ip", 60_000, 0);
        s.category_field = Some("httpRequest.clientIp".into());
        let mut e = engine(&[s]);
        let mut out = Vec::new();
        for (t, ip) in [(1, "a"), (2, "b"), (3, "a"), (4, "a"), (61, "b")] {
            push(
                &mut e,
                &format!(
                    r#"{{"timestamp":{},"httpRequest":{{"clientIp":"{ip}"}}}}"#,
                    B + t * S
                ),
                &mut out,
            );
        }
        let mut got: Vec<(String, u64, f64)> = out
            .iter()
            .map(|r| {
                let entity = r.entity.as_ref().unwrap();
                assert_eq!(entity[0].name, "httpRequest.clientIp");
                assert_eq!(r.data_start_time, B);
                (entity[0].value.clone(), r.records, r.feature_data[0].data)
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, [("a".into(), 3, 3.0), ("b".into(), 1, 1.0)]);
        assert_eq!(e.stats().intervals, 2);
        assert_eq!(e.entity_caps(), [("ip", s_cap())]);
    }

    /// Records with the recent AWS fields (fixtures/aws-log-fields.ndjson), moved
    /// into one interval starting at B.
    fn field_examples() -> Vec<String> {
        include_str!("../../../fixtures/aws-log-fields.ndjson")
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["timestamp"] = (B + (i as i64 + 1) * S).into();
                v.to_string()
            })
            .collect()
    }

    /// (entity, records, first feature) of a count detector per `field` over the
    /// field examples.
    fn per_entity(field: &str) -> Vec<(String, u64, f64)> {
        let mut s = count("per", 60_000, 0);
        s.category_field = Some(field.into());
        let mut e = engine(&[s]);
        let mut out = Vec::new();
        for l in field_examples() {
            push(&mut e, &l, &mut out);
        }
        push(&mut e, &line(B + 61 * S), &mut out);
        let mut got: Vec<(String, u64, f64)> = out
            .iter()
            .map(|r| {
                let entity = r.entity.as_ref().unwrap();
                assert_eq!(entity[0].name, field);
                (entity[0].value.clone(), r.records, r.feature_data[0].data)
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        got
    }

    #[test]
    fn recent_aws_fields_work_as_category_fields() {
        let one = |v: &str| (v.to_string(), 1, 1.0);
        assert_eq!(
            per_entity("ja4Fingerprint"),
            [
                ("t13d1516h2_0a1b2c3d4e5f_f9e8d7c6b5a4".to_string(), 1, 1.0),
                one("t13d1517h2_8daaf6152771_b6f405a00624"),
                one("t13d311100_e8f1e7e78f70_1f22a2ca17c4"),
            ]
        );
        assert_eq!(
            per_entity("clientAsn"),
            [one(""), one("64496"), one("64511")]
        );
        assert_eq!(
            per_entity("rateBasedRuleList[].limitKey"),
            [one("CUSTOMKEYS"), one("FORWARDED_IP"), one("IP")]
        );
        // A record with three labels counts once under each of them.
        assert_eq!(
            per_entity("labels[].name"),
            [
                one("awswaf:123456789012:webacl:example-alb-acl:partner"),
                one("awswaf:123456789012:webacl:example-cf-acl:rate-limited"),
                one("awswaf:clientip:geo:country:NL"),
                one("awswaf:managed:token:rejected"),
                one("awswaf:managed:token:rejected:expired"),
            ]
        );
        assert_eq!(
            per_entity("httpRequest.host"),
            [
                one("api.example.com"),
                one("pets.example.com"),
                one("shop.tenant-a.example.com"),
            ]
        );
    }

    #[test]
    fn recent_aws_fields_work_in_features() {
        let feature =
            |name: &str, aggregation, field: Option<&str>, filter: Option<(&str, &str)>| {
                FeatureSpec {
                    name: name.into(),
                    aggregation,
                    field: field.map(Into::into),
                    filter: filter.map(|(field, v)| crate::detect::spec::FilterSpec {
                        field: field.into(),
                        equals: Some(v.into()),
                        in_set: None,
                    }),
                }
            };
        let mut s = count("f", 60_000, 0);
        s.features = vec![
            feature(
                "expired_tokens",
                Aggregation::Count,
                None,
                Some(("labels[].name", "awswaf:managed:token:rejected:expired")),
            ),
            feature(
                "ja4s",
                Aggregation::DistinctCount,
                Some("ja4Fingerprint"),
                None,
            ),
            feature(
                "max_rate",
                Aggregation::Max,
                Some("rateBasedRuleList[].maxRateAllowed"),
                None,
            ),
            feature("body", Aggregation::Sum, Some("requestBodySize"), None),
            feature(
                "custom_keys",
                Aggregation::DistinctCount,
                Some("rateBasedRuleList[].customValues[].value"),
                Some(("rateBasedRuleList[].limitKey", "CUSTOMKEYS")),
            ),
        ];
        let mut e = engine(&[s]);
        let mut out = Vec::new();
        for l in field_examples() {
            push(&mut e, &l, &mut out);
        }
        push(&mut e, &line(B + 61 * S), &mut out);
        assert_eq!(out.len(), 1);
        let values: Vec<f64> = out[0].feature_data.iter().map(|f| f.data).collect();
        assert_eq!(values, [1.0, 3.0, 2000.0, 70_000.0, 2.0]);
    }

    /// The per-JA4 and per-rate-limit-key detectors of the README's configuration
    /// section load and run on the field examples.
    #[test]
    fn the_readme_per_ja4_example_runs() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("name = \"per-ja4-requests\"").unwrap();
        let start = readme[..start].rfind("```toml\n").unwrap() + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let config =
            crate::Config::from_toml(&readme[start..end], std::path::Path::new("README.md"))
                .unwrap();
        let specs = config.detectors.unwrap();
        assert_eq!(specs.len(), 2);
        let mut e = engine(&specs);
        let mut out = Vec::new();
        for l in field_examples() {
            push(&mut e, &l, &mut out);
        }
        push(&mut e, &line(B + 601 * S), &mut out);
        let mut got: Vec<(String, String, Vec<f64>)> = out
            .iter()
            .map(|r| {
                let entity = r.entity.as_ref().unwrap()[0].value.clone();
                let data = r.feature_data.iter().map(|f| f.data).collect();
                (r.detector_name.clone(), entity, data)
            })
            .collect();
        got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let row = |d: &str, e: &str, v: &[f64]| (d.to_string(), e.to_string(), v.to_vec());
        assert_eq!(
            got,
            [
                row(
                    "per-ja4-requests",
                    "t13d1516h2_0a1b2c3d4e5f_f9e8d7c6b5a4",
                    &[1.0, 1.0, 0.0]
                ),
                row(
                    "per-ja4-requests",
                    "t13d1517h2_8daaf6152771_b6f405a00624",
                    &[1.0, 0.0, 1.0]
                ),
                row(
                    "per-ja4-requests",
                    "t13d311100_e8f1e7e78f70_1f22a2ca17c4",
                    &[1.0, 0.0, 0.0]
                ),
                row("per-rate-limit-key", "CUSTOMKEYS", &[1.0]),
                row("per-rate-limit-key", "FORWARDED_IP", &[1.0]),
                row("per-rate-limit-key", "IP", &[1.0]),
            ]
        );
    }

    #[test]
    fn array_paths_are_valid_and_bad_brackets_are_not() {
        let mut s = count("c", 60_000, 0);
        s.category_field = Some("labels[].name".into());
        assert!(Engine::new(&[s.clone()], FeatureMap::default()).is_ok());
        for bad in ["labels[0].name", "[].name", "labels[]x.name", "a..b"] {
            s.category_field = Some(bad.into());
            assert!(
                Engine::new(&[s.clone()], FeatureMap::default()).is_err(),
                "{bad}"
            );
        }
    }

    fn s_cap() -> usize {
        let mut s = count("ip", 60_000, 0);
        s.category_field = Some("httpRequest.clientIp".into());
        s.default_max_entities()
    }

    #[test]
    fn past_the_entity_cap_the_least_recently_active_are_evicted() {
        let mut s = count("ip", 60_000, 0);
        s.category_field = Some("httpRequest.clientIp".into());
        let mut e = engine(&[s]).with_max_entities(2);
        let mut out = Vec::new();
        for (t, ip) in [(1, "a"), (2, "b"), (61, "c"), (121, "c")] {
            push(
                &mut e,
                &format!(
                    r#"{{"timestamp":{},"httpRequest":{{"clientIp":"{ip}"}}}}"#,
                    B + t * S
                ),
                &mut out,
            );
        }
        // `c` is a third model for a cap of two: the least recently active goes (`a`
        // and `b` were last active together; ties go by key).
        assert_eq!(e.stats().evicted, 1);
        let kept: Vec<_> = e.snapshot().slots[0]
            .models
            .iter()
            .map(|m| m.0.clone().unwrap())
            .collect();
        assert_eq!(kept, ["b", "c"]);
    }

    #[test]
    fn empty_intervals_are_imputed_as_the_missing_rule_says() {
        // Two records in minute 0, three in minute 1, none in minutes 2-3, one in 4.
        let times = [
            B + S,
            B + 2 * S,
            B + M,
            B + M + S,
            B + M + 2 * S,
            B + 4 * M + S,
            B + 5 * M + S,
        ];
        let run = |missing: Missing| {
            let mut spec = count("c", 60_000, 0);
            spec.missing = missing;
            let mut e = engine(&[spec]);
            let mut out = Vec::new();
            for t in times {
                push(&mut e, &line(t), &mut out);
            }
            e.finish(&mut out);
            let imputed: Vec<bool> = out.iter().map(|r| r.feature_imputed.is_some()).collect();
            (rows(&out), imputed, e.stats().ignored_intervals, out)
        };
        let row = |min: i64, records: u64, v: f64| ("c".to_string(), min * 60, records, v);
        let (zero, imputed, ignored, out) = run(Missing::Zero);
        assert_eq!(
            zero,
            [
                row(0, 2, 2.0),
                row(1, 3, 3.0),
                row(2, 0, 0.0),
                row(3, 0, 0.0),
                row(4, 1, 1.0)
            ]
        );
        assert_eq!(imputed, [false, false, true, true, false]);
        assert_eq!(ignored, 0);
        let marks = out[2].feature_imputed.as_ref().unwrap();
        assert_eq!(marks.len(), 1);
        assert_eq!(
            (marks[0].feature_id.as_str(), marks[0].imputed),
            ("n", true)
        );
        let (previous, imputed, _, _) = run(Missing::Previous);
        assert_eq!(
            previous,
            [
                row(0, 2, 2.0),
                row(1, 3, 3.0),
                row(2, 0, 3.0),
                row(3, 0, 3.0),
                row(4, 1, 1.0)
            ]
        );
        assert_eq!(imputed, [false, false, true, true, false]);
        let (fixed, _, _, _) = run(Missing::Fixed(7.5));
        assert_eq!(
            fixed,
            [
                row(0, 2, 2.0),
                row(1, 3, 3.0),
                row(2, 0, 7.5),
                row(3, 0, 7.5),
                row(4, 1, 1.0)
            ]
        );
        let (ignore, imputed, ignored, _) = run(Missing::Ignore);
        assert_eq!(ignore, [row(0, 2, 2.0), row(1, 3, 3.0), row(4, 1, 1.0)]);
        assert_eq!(imputed, [false; 3]);
        assert_eq!(ignored, 2);
    }

    #[test]
    fn the_previous_values_survive_a_restore() {
        let mut spec = count("c", 60_000, 0);
        spec.missing = Missing::Previous;
        let specs = [spec];
        let mut e = engine(&specs);
        let mut out = Vec::new();
        for t in [B + S, B + M + S, B + M + 2 * S, B + 2 * M + S] {
            push(&mut e, &line(t), &mut out);
        }
        let state = serde_json::to_string(&e.snapshot()).unwrap();
        let mut e = Engine::restore(
            &specs,
            FeatureMap::default(),
            serde_json::from_str(&state).unwrap(),
        )
        .unwrap();
        let mut out = Vec::new();
        push(&mut e, &line(B + 5 * M + S), &mut out);
        // Minute 2 closed with the restore's state; minutes 3 and 4 take minute 2's value.
        assert_eq!(
            rows(&out),
            [
                ("c".to_string(), 120, 1, 1.0),
                ("c".to_string(), 180, 0, 1.0),
                ("c".to_string(), 240, 0, 1.0)
            ]
        );
    }

    #[test]
    fn a_short_gap_is_zero_filled_and_a_long_one_skipped() {
        let mut e = engine(&[count("c", 60_000, 0)]);
        let mut out = Vec::new();
        push(&mut e, &line(B + S), &mut out);
        push(&mut e, &line(B + 4 * M + S), &mut out);
        assert_eq!(
            rows(&out),
            [
                ("c".to_string(), 0, 1, 1.0),
                ("c".to_string(), 60, 0, 0.0),
                ("c".to_string(), 120, 0, 0.0),
                ("c".to_string(), 180, 0, 0.0),
            ]
        );
        assert_eq!(e.stats().skipped_intervals, 0);
        // Two days later (within the horizon of a run that has confirmed the jump):
        // one day of empty intervals is filled at most, the rest is skipped.
        let mut e = engine(&[count("c", 60_000, 0)]).with_time_rules(TimeRules {
            horizon_ms: 3 * 86_400_000,
            confirm: 8,
        });
        let mut out = Vec::new();
        push(&mut e, &line(B + S), &mut out);
        push(&mut e, &line(B + 2 * 1_440 * M + S), &mut out);
        let stats = e.stats();
        assert_eq!(stats.intervals + stats.skipped_intervals, 2 * 1_440);
        assert!(stats.skipped_intervals > 0, "{stats:?}");
        assert_eq!(out.len() as u64, stats.intervals);
        assert_eq!(out[0].records, 1);
        assert!(out[1..].iter().all(|r| r.records == 0));
    }

    #[test]
    fn lines_that_are_not_records_are_dead_lettered_and_counted() {
        let mut e = engine(&[count("c", 60_000, 0)]);
        let mut out = Vec::new();
        push(&mut e, &line(B + S), &mut out);
        for bad in ["not json", "[1]", "{}", r#"{"timestamp":"soon"}"#] {
            assert!(e.push_line(bad.as_bytes(), &mut out).is_err(), "{bad}");
        }
        // Beyond the 3 h horizon: refused until 8 in a row confirm a jump.
        for i in 0..7 {
            assert!(matches!(
                e.push_line(line(B + 4 * 3_600_000 + i * S).as_bytes(), &mut out),
                Err(SchemaError::AheadOfStream { .. })
            ));
        }
        push(&mut e, &line(B + 4 * 3_600_000 + 7 * S), &mut out);
        // Late: the first minute closed when the clock jumped.
        assert!(matches!(
            e.push_line(line(B + 2 * S).as_bytes(), &mut out),
            Err(SchemaError::Late { .. })
        ));
        let s = e.stats();
        assert_eq!(
            (s.records, s.ahead, s.jumps, s.late, s.restarts),
            (2, 7, 1, 1, 0),
            "{s:?}"
        );
    }

    /// The results as JSON lines, sorted (entities of one interval close in map
    /// order).
    fn json(results: &[AnomalyResult]) -> Vec<String> {
        let mut v: Vec<String> = results
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_restored_engine_goes_on_bit_for_bit() {
        let mut ip = DetectorSpec::indicator_sum("ip", names::B_ACTION);
        ip.category_field = Some("httpRequest.clientIp".into());
        let mut specs = DetectorSpec::defaults();
        specs.push(ip);
        let lines: Vec<String> = (0..3_000)
            .map(|i| {
                let action = if i % 7 == 0 { "BLOCK" } else { "ALLOW" };
                format!(
                    r#"{{"timestamp":{},"action":"{action}","httpSourceName":"ALB","httpStatus":200,"httpRequest":{{"clientIp":"10.0.0.{}","country":"US","httpMethod":"GET","uri":"/"}}}}"#,
                    B + i * 2 * S + (i * 7919) % 1_500,
                    i % 5
                )
            })
            .collect();
        let (first, rest) = lines.split_at(1_234);
        let mut straight = engine(&specs);
        let mut out = Vec::new();
        for l in first {
            push(&mut straight, l, &mut out);
        }
        // Maps inside the state are written in hash order: compare them as JSON
        // values (order-independent, numbers exact).
        let value = |e: &Engine| serde_json::to_value(e.snapshot()).unwrap();
        let saved = serde_json::to_string(&straight.snapshot()).unwrap();
        let state: EngineState = serde_json::from_str(&saved).unwrap();
        let mut resumed = Engine::restore(&specs, FeatureMap::default(), state).unwrap();
        assert_eq!(value(&resumed), value(&straight));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for l in rest {
            push(&mut straight, l, &mut a);
            push(&mut resumed, l, &mut b);
        }
        straight.finish(&mut a);
        resumed.finish(&mut b);
        assert!(a.len() > 500, "{}", a.len());
        assert_eq!(json(&a), json(&b));
        assert_eq!(value(&resumed), value(&straight));
        // Other detectors, or another state version, are refused.
        let state: EngineState = serde_json::from_str(&saved).unwrap();
        assert!(Engine::restore(&specs[..1], FeatureMap::default(), state).is_err());
        let mut state: EngineState = serde_json::from_str(&saved).unwrap();
        state.version += 1;
        assert!(matches!(
            Engine::restore(&specs, FeatureMap::default(), state),
            Err(DetectError::StateVersion { .. })
        ));
    }
}
