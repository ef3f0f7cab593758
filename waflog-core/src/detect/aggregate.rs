//! Event-time interval aggregation.
//!
//! Intervals are aligned to the epoch (`[k * interval, (k + 1) * interval)`). The
//! watermark is the latest event time seen; an interval closes once the watermark has
//! passed its end by the window delay, so records up to that much out of order still
//! count. A record for an interval already closed is late: counted, not aggregated.
//! Intervals without records close with zero-valued features, so a drop to zero is
//! visible to the detectors. Only event time moves the watermark unless the caller
//! advances it (follow mode), so replaying a file gives the same intervals every time.
//!
//! Gaps: a run of empty intervals is zero-filled up to a bound (one day of intervals,
//! at most [`MAX_FILLED`]; [`Aggregator::with_max_fill`]); the rest of the gap is
//! skipped without a result, and the skipped count is handed to the engine
//! ([`Aggregator::take_skipped`]), which tells the models ([`super::Detector::gap`]).
//! So a traffic gap of a year costs the same time and memory as one of a day.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Hash maps on the per-record path: aHash is several times faster than the default
/// SipHash and, with its per-process random keys, still resists the hash-flooding an
/// attacker could attempt through the client IPs and URIs it sends.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;

use serde::{Deserialize, Serialize};

use super::spec::{Aggregation, DetectorSpec};
use crate::parse::fields::Scalar;

/// A feature compiled against the extractor's path indices.
#[derive(Debug, Clone)]
pub(crate) struct CompiledFeature {
    /// The aggregation.
    pub aggregation: Aggregation,
    /// Index of the aggregated field.
    pub field: Option<usize>,
    /// Index of the filter field and the accepted values.
    pub filter: Option<(usize, Vec<String>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Acc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    distinct: HashSet<String>,
}

impl Acc {
    /// Adds one numeric value; true when it moves the feature (it is not zero).
    #[inline]
    fn add(&mut self, x: f64) -> bool {
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        }
        self.count += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        x != 0.0
    }
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            count: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            distinct: HashSet::default(),
        }
    }
}

impl Acc {
    fn value(&self, a: Aggregation) -> f64 {
        match a {
            Aggregation::Count => self.count as f64,
            Aggregation::Sum => self.sum,
            Aggregation::Avg if self.count > 0 => self.sum / self.count as f64,
            Aggregation::Min if self.count > 0 => self.min,
            Aggregation::Max if self.count > 0 => self.max,
            Aggregation::DistinctCount => self.distinct.len() as f64,
            _ => 0.0,
        }
    }
}

/// Per-entity accumulators of one interval: feature values and, for explanations,
/// how often each value of each contributor dimension appeared in the records that
/// moved a feature.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EntityAcc {
    accs: Vec<Acc>,
    contrib: Vec<HashMap<String, u64>>,
    #[serde(default)]
    categories: HashMap<String, u64>,
    /// The first records that moved a feature (values of the example fields).
    #[serde(default)]
    examples: Vec<Vec<Option<String>>>,
}

/// Example records kept per interval (see [`Aggregator::with_examples`]).
pub(crate) const MAX_EXAMPLES: usize = 3;

/// One closed interval of one detector (and entity).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClosedInterval {
    /// Start, epoch ms (inclusive).
    pub start_ms: i64,
    /// End, epoch ms (exclusive).
    pub end_ms: i64,
    /// The entity (value of the category field), if the detector has one.
    pub entity: Option<String>,
    /// Feature values, in the detector's feature order.
    pub values: Vec<f64>,
    /// Records aggregated into this interval.
    pub records: u64,
    /// Per contributor dimension (see [`Aggregator::with_contributors`]): each value
    /// seen in the records that moved a feature, with its count, most frequent first.
    pub contributors: Vec<Vec<(String, u64)>>,
    /// Records per value of the category-distribution field (see
    /// [`Aggregator::with_categories`]), most frequent first.
    pub categories: Vec<(String, u64)>,
    /// Up to [`MAX_EXAMPLES`] records that moved a feature, in arrival order: the
    /// values of the example fields (see [`Aggregator::with_examples`]).
    pub examples: Vec<Vec<Option<String>>>,
    /// No record fell in the interval: `values` are zeros, for the engine to impute
    /// (see [`super::Missing`]).
    pub empty: bool,
}

/// One saved interval's accumulators, per entity.
type EntityAccs = Vec<(Option<String>, EntityAcc)>;

/// The saved state of an [`Aggregator`] (open intervals with their partial
/// aggregates), for the `--state` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AggregatorState {
    open: Vec<(i64, EntityAccs)>,
    next_close: Option<i64>,
    watermark: i64,
    late: u64,
    #[serde(default)]
    empty_run: u64,
}

/// Most empty intervals zero-filled in one gap.
pub(crate) const MAX_FILLED: u64 = 1440;

/// Aggregates records into the intervals of one detector.
#[derive(Debug, Clone)]
pub(crate) struct Aggregator {
    interval_ms: i64,
    delay_ms: i64,
    features: Vec<CompiledFeature>,
    category: Option<usize>,
    open: BTreeMap<i64, HashMap<Option<String>, EntityAcc>>,
    dims: Vec<usize>,
    example_dims: Vec<usize>,
    distribution: Option<usize>,
    next_close: Option<i64>,
    watermark: i64,
    late: u64,
    /// Empty intervals closed in a row (the current gap).
    empty_run: u64,
    /// Empty intervals zero-filled per gap before the rest is skipped.
    max_fill: u64,
    /// Intervals skipped since the last [`Aggregator::take_skipped`].
    skipped: u64,
}

impl Aggregator {
    /// An aggregator for `spec`, with features and category compiled to path indices.
    pub fn new(
        spec: &DetectorSpec,
        features: Vec<CompiledFeature>,
        category: Option<usize>,
    ) -> Aggregator {
        Aggregator {
            interval_ms: spec.interval(),
            delay_ms: spec.window_delay(),
            features,
            category,
            open: BTreeMap::new(),
            dims: Vec::new(),
            example_dims: Vec::new(),
            distribution: None,
            next_close: None,
            watermark: i64::MIN,
            late: 0,
            empty_run: 0,
            max_fill: default_max_fill(spec.interval()),
            skipped: 0,
        }
    }

    /// Zero-fills at most `intervals` empty intervals per gap (at least one).
    #[cfg(test)]
    pub fn with_max_fill(mut self, intervals: u64) -> Aggregator {
        self.max_fill = intervals.max(1);
        self
    }

    /// Intervals skipped in gaps since the last call (not zero-filled, no result).
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }

    /// Also counts, per interval, the values of these fields (path indices) in the
    /// records that move a feature: a record with a non-zero value of a summed field,
    /// or one that passes a count's filter. Explanations rank them against a baseline.
    pub fn with_contributors(mut self, dims: Vec<usize>) -> Aggregator {
        self.dims = dims;
        self
    }

    /// Also keeps, per interval, the values of these fields (path indices) of the
    /// first [`MAX_EXAMPLES`] records that move a feature, for alert messages.
    pub fn with_examples(mut self, dims: Vec<usize>) -> Aggregator {
        self.example_dims = dims;
        self
    }

    /// The aggregator's state: open intervals, watermark, next interval to close.
    pub fn snapshot(&self) -> AggregatorState {
        AggregatorState {
            open: self
                .open
                .iter()
                .map(|(start, entities)| {
                    let mut e: Vec<_> = entities
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    e.sort_by(|a, b| a.0.cmp(&b.0));
                    (*start, e)
                })
                .collect(),
            next_close: self.next_close,
            watermark: self.watermark,
            late: self.late,
            empty_run: self.empty_run,
        }
    }

    /// Restores a state taken with [`Aggregator::snapshot`] by an aggregator of the
    /// same detector.
    pub fn restore(&mut self, state: AggregatorState) {
        self.open = state
            .open
            .into_iter()
            .map(|(start, e)| (start, e.into_iter().collect()))
            .collect();
        self.next_close = state.next_close;
        self.watermark = state.watermark;
        self.late = state.late;
        self.empty_run = state.empty_run;
    }

    /// Also counts, per interval, every record's value of this field (path index): the
    /// category distribution a categorical detector compares with its baseline.
    pub fn with_categories(mut self, field: Option<usize>) -> Aggregator {
        self.distribution = field;
        self
    }

    /// Records that arrived after their interval closed.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Interval length in milliseconds.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// Event time at which [`Aggregator::close_ready`] will next close an interval
    /// (`None` while no interval is open).
    pub fn next_deadline(&self) -> Option<i64> {
        let next = self
            .next_close
            .or_else(|| self.open.keys().next().copied())?;
        Some(
            next.saturating_add(self.interval_ms)
                .saturating_add(self.delay_ms),
        )
    }

    /// Adds one record with event time `ts` and extracted `values`. Returns true when
    /// this may have moved [`Aggregator::next_deadline`] earlier (before the first
    /// interval closes, an out-of-order record can open an earlier interval).
    pub fn add(&mut self, ts: i64, values: &[Option<Scalar<'_>>]) -> bool {
        let start = ts.div_euclid(self.interval_ms) * self.interval_ms;
        if self.next_close.is_some_and(|n| start < n) {
            self.late += 1;
            return false;
        }
        let first_moved =
            self.next_close.is_none() && self.open.keys().next().is_none_or(|&f| start < f);
        self.watermark = self.watermark.max(ts);
        // The record's entities: none without a category field; one per distinct
        // value of an array path (`labels[].name`); `""` when the field is missing.
        match self.category.map(|c| &values[c]) {
            None => self.add_to(start, None, values),
            Some(Some(list @ Scalar::List(_))) => {
                let mut texts: Vec<String> =
                    list.texts().into_iter().map(Cow::into_owned).collect();
                texts.sort_unstable();
                texts.dedup();
                for entity in texts {
                    self.add_to(start, Some(entity), values);
                }
            }
            Some(v) => {
                let entity = v
                    .as_ref()
                    .and_then(|v| v.as_text().map(|t| t.into_owned()))
                    .unwrap_or_default();
                self.add_to(start, Some(entity), values);
            }
        }
        first_moved
    }

    /// Adds one record to one entity's accumulators of the interval at `start`.
    #[inline]
    fn add_to(&mut self, start: i64, entity: Option<String>, values: &[Option<Scalar<'_>>]) {
        let (n, d) = (self.features.len(), self.dims.len());
        let entry = self
            .open
            .entry(start)
            .or_default()
            .entry(entity)
            .or_insert_with(|| EntityAcc {
                accs: vec![Acc::default(); n],
                contrib: vec![HashMap::default(); d],
                categories: HashMap::default(),
                examples: Vec::new(),
            });
        if let Some(i) = self.distribution {
            let key = values[i].as_ref().and_then(Scalar::as_text);
            let key = key.as_deref().unwrap_or("");
            match entry.categories.get_mut(key) {
                Some(c) => *c += 1,
                None => {
                    entry.categories.insert(key.to_string(), 1);
                }
            }
        }
        let mut moved = false;
        for (f, acc) in self.features.iter().zip(entry.accs.iter_mut()) {
            if let Some((field, accepted)) = &f.filter {
                let accepts = |t: Option<Cow<'_, str>>| {
                    t.is_some_and(|t| accepted.iter().any(|a| a == t.as_ref()))
                };
                let pass = match &values[*field] {
                    None => false,
                    Some(Scalar::List(items)) => items.iter().any(|v| accepts(v.as_text())),
                    Some(v) => accepts(v.as_text()),
                };
                if !pass {
                    continue;
                }
            }
            match f.field {
                None => {
                    acc.count += 1;
                    moved = true;
                }
                Some(i) => match (&values[i], f.aggregation) {
                    (None | Some(Scalar::Null), _) => {}
                    (Some(v), Aggregation::DistinctCount) => {
                        for t in v.texts() {
                            if !acc.distinct.contains(t.as_ref()) {
                                acc.distinct.insert(t.into_owned());
                            }
                        }
                        acc.count += 1;
                    }
                    (Some(_), Aggregation::Count) => {
                        acc.count += 1;
                        moved = true;
                    }
                    // Numeric aggregations take each element of an array path.
                    (Some(Scalar::Num(x)), _) => moved |= acc.add(*x),
                    (Some(v), _) => {
                        for x in v.items().iter().filter_map(Scalar::as_f64) {
                            moved |= acc.add(x);
                        }
                    }
                },
            }
        }
        if moved && !self.example_dims.is_empty() && entry.examples.len() < MAX_EXAMPLES {
            entry.examples.push(
                self.example_dims
                    .iter()
                    .map(|&i| {
                        values[i]
                            .as_ref()
                            .and_then(Scalar::as_text)
                            .map(|t| t.into_owned())
                    })
                    .collect(),
            );
        }
        if moved {
            for (map, &i) in entry.contrib.iter_mut().zip(&self.dims) {
                if let Some(t) = values[i].as_ref().and_then(Scalar::as_text) {
                    match map.get_mut(t.as_ref()) {
                        Some(c) => *c += 1,
                        None => {
                            map.insert(t.into_owned(), 1);
                        }
                    }
                }
            }
        }
    }

    /// True once an interval has closed (the watermark can no longer go back).
    pub fn has_closed(&self) -> bool {
        self.next_close.is_some()
    }

    /// Sets the watermark back to `ms`, before any interval has closed: the records
    /// that moved it stay in their (later) intervals.
    pub fn restart_watermark(&mut self, ms: i64) {
        if self.next_close.is_none() {
            self.watermark = ms;
        }
    }

    /// Moves the watermark forward to at least `ms` (follow mode: wall-clock time).
    pub fn advance_to(&mut self, ms: i64) {
        self.watermark = self.watermark.max(ms);
    }

    /// Closes every interval whose end the watermark has passed by the window delay,
    /// in time order, zero-filling intervals without records.
    pub fn close_ready(&mut self, out: &mut Vec<ClosedInterval>) {
        let limit = self.watermark.saturating_sub(self.delay_ms);
        self.close_until(limit, out);
    }

    /// End of input: closes every interval that is complete in event time (ends at or
    /// before the last event), ignoring the window delay since nothing more will come.
    /// Returns the records left in the last, incomplete interval (not scored).
    pub fn finish(&mut self, out: &mut Vec<ClosedInterval>) -> u64 {
        self.close_until(self.watermark, out);
        self.open
            .values()
            .flat_map(|m| m.values())
            .map(|e| e.accs.iter().map(|a| a.count).max().unwrap_or(0))
            .sum()
    }

    fn close_until(&mut self, limit: i64, out: &mut Vec<ClosedInterval>) {
        if self.watermark == i64::MIN {
            return;
        }
        let mut next = match self.next_close {
            Some(n) => n,
            None => match self.open.keys().next() {
                Some(&first) => first,
                None => return,
            },
        };
        if next + self.interval_ms > limit {
            // Nothing closes yet; an out-of-order record may still open an earlier one.
            return;
        }
        while next + self.interval_ms <= limit {
            let end = next + self.interval_ms;
            match self.open.remove(&next) {
                Some(entities) => {
                    self.empty_run = 0;
                    let mut entities: Vec<_> = entities.into_iter().collect();
                    entities.sort_by(|a, b| a.0.cmp(&b.0));
                    for (entity, acc) in entities {
                        let values = self
                            .features
                            .iter()
                            .zip(&acc.accs)
                            .map(|(f, a)| a.value(f.aggregation))
                            .collect();
                        let records = acc.accs.iter().map(|a| a.count).max().unwrap_or(0);
                        let contributors = acc
                            .contrib
                            .into_iter()
                            .map(|m| {
                                let mut v: Vec<(String, u64)> = m.into_iter().collect();
                                v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                                v
                            })
                            .collect();
                        let mut categories: Vec<(String, u64)> =
                            acc.categories.into_iter().collect();
                        categories.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                        out.push(ClosedInterval {
                            start_ms: next,
                            end_ms: end,
                            entity,
                            values,
                            records,
                            contributors,
                            categories,
                            examples: acc.examples,
                            empty: false,
                        });
                    }
                }
                None => {
                    if self.empty_run >= self.max_fill {
                        // Past the bound: skip to the next interval with records, or
                        // to the last one the watermark closes, in one step.
                        let last = (limit - self.interval_ms).div_euclid(self.interval_ms)
                            * self.interval_ms;
                        let resume = self
                            .open
                            .keys()
                            .next()
                            .map_or(last + self.interval_ms, |&k| k.min(last + self.interval_ms))
                            .max(next);
                        let n = ((resume - next) / self.interval_ms).max(1);
                        self.skipped += n as u64;
                        next += n * self.interval_ms;
                        continue;
                    }
                    self.empty_run += 1;
                    if self.category.is_none() {
                        out.push(ClosedInterval {
                            start_ms: next,
                            end_ms: end,
                            entity: None,
                            values: vec![0.0; self.features.len()],
                            records: 0,
                            contributors: vec![Vec::new(); self.dims.len()],
                            categories: Vec::new(),
                            examples: Vec::new(),
                            empty: true,
                        });
                    }
                }
            }
            next = end;
        }
        self.next_close = Some(next);
    }
}

/// One day of intervals, at most [`MAX_FILLED`].
fn default_max_fill(interval_ms: i64) -> u64 {
    let day = 86_400_000 / interval_ms.max(1) as u64;
    day.clamp(1, MAX_FILLED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::spec::FeatureSpec;

    fn spec(delay: &str) -> DetectorSpec {
        let mut s = DetectorSpec::indicator_sum("d", "x");
        s.window_delay_ms = crate::timestamp::parse_duration_ms(delay).unwrap() as u64;
        s.features.push(FeatureSpec {
            name: "n".into(),
            aggregation: Aggregation::Count,
            field: None,
            filter: None,
        });
        s
    }

    fn agg(delay: &str) -> Aggregator {
        let features = vec![
            CompiledFeature {
                aggregation: Aggregation::Sum,
                field: Some(0),
                filter: None,
            },
            CompiledFeature {
                aggregation: Aggregation::Count,
                field: None,
                filter: None,
            },
        ];
        Aggregator::new(&spec(delay), features, None)
    }

    fn v(x: f64) -> Vec<Option<Scalar<'static>>> {
        vec![Some(Scalar::Num(x))]
    }

    #[test]
    fn long_gaps_are_filled_up_to_the_bound_then_skipped() {
        let mut a = agg("0s").with_max_fill(5);
        let mut out = Vec::new();
        a.add(0, &v(1.0));
        // A year later: the first interval, five zero-filled ones, then a skip
        // straight to the year-later interval (closed by the next record).
        a.add(365 * 86_400_000 + 1, &v(2.0));
        a.close_ready(&mut out);
        assert_eq!(out.len(), 6);
        assert_eq!(out[0].values, [1.0, 1.0]);
        assert!(out[1..].iter().all(|c| c.values == [0.0, 0.0]));
        assert_eq!(out[5].start_ms, 5 * 60_000);
        assert_eq!(a.take_skipped(), 365 * 1440 - 6);
        assert_eq!(a.take_skipped(), 0);
        out.clear();
        a.add(365 * 86_400_000 + 60_000, &v(3.0));
        a.close_ready(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start_ms, 365 * 86_400_000);
        assert_eq!(out[0].values, [2.0, 1.0]);
        // A short gap after records again is zero-filled in full.
        out.clear();
        a.add(365 * 86_400_000 + 4 * 60_000, &v(4.0));
        a.close_ready(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(a.take_skipped(), 0);
    }

    #[test]
    fn closes_aligned_intervals_after_the_window_delay() {
        let mut a = agg("10s");
        let mut out = Vec::new();
        a.add(60_500, &v(1.0));
        a.add(61_000, &v(2.0));
        a.add(125_000, &v(5.0)); // interval [120 s, 180 s)
        a.close_ready(&mut out);
        // Watermark 125 s - 10 s = 115 s: [60 s, 120 s) is not closable yet.
        assert!(out.is_empty());
        a.add(59_000, &v(7.0)); // out of order, interval [0, 60 s), still open
        a.add(131_000, &v(1.0));
        a.close_ready(&mut out);
        // Watermark 131 s - 10 s = 121 s: [0, 60 s) and [60 s, 120 s) close.
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].start_ms, out[0].values.clone()),
            (0, vec![7.0, 1.0])
        );
        assert_eq!(
            (out[1].start_ms, out[1].end_ms, out[1].values.clone()),
            (60_000, 120_000, vec![3.0, 2.0])
        );
        // A record for a closed interval is late.
        a.add(119_000, &v(1.0));
        assert_eq!(a.late(), 1);
    }

    #[test]
    fn empty_intervals_are_zero_filled() {
        let mut a = agg("0s");
        let mut out = Vec::new();
        a.add(0, &v(4.0));
        a.add(250_000, &v(1.0));
        a.close_ready(&mut out);
        let starts: Vec<_> = out.iter().map(|c| (c.start_ms, c.values[1])).collect();
        assert_eq!(
            starts,
            [(0, 1.0), (60_000, 0.0), (120_000, 0.0), (180_000, 0.0)]
        );
        // End of input: [240 s, 300 s) is incomplete and stays unscored.
        assert_eq!(a.finish(&mut out), 1);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn follow_mode_closes_intervals_without_traffic() {
        let mut a = agg("10s");
        let mut out = Vec::new();
        a.add(1_000, &v(1.0));
        a.advance_to(200_000);
        a.close_ready(&mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn contributors_come_from_records_that_move_a_feature() {
        let features = vec![CompiledFeature {
            aggregation: Aggregation::Sum,
            field: Some(0),
            filter: None,
        }];
        let mut a = Aggregator::new(&spec("0s"), features, None)
            .with_contributors(vec![1])
            .with_examples(vec![1]);
        let rec = |x: f64, c: &'static str| vec![Some(Scalar::Num(x)), Some(Scalar::Str(c.into()))];
        for (x, c) in [
            (0.0, "US"),
            (1.0, "XX"),
            (1.0, "XX"),
            (1.0, "YY"),
            (1.0, "ZZ"),
            (0.0, "US"),
            (0.0, "US"),
        ] {
            a.add(10, &rec(x, c));
        }
        a.add(60_000, &rec(0.0, "US"));
        let mut out = Vec::new();
        a.close_ready(&mut out);
        assert_eq!(
            out[0].contributors,
            vec![vec![
                ("XX".to_string(), 2),
                ("YY".to_string(), 1),
                ("ZZ".to_string(), 1)
            ]]
        );
        // The first three records that moved the feature, not the first three.
        let ex: Vec<Option<&str>> = out[0].examples.iter().map(|e| e[0].as_deref()).collect();
        assert_eq!(ex, [Some("XX"), Some("XX"), Some("YY")]);
    }

    #[test]
    fn filters_distinct_counts_and_entities() {
        let mut s = DetectorSpec::indicator_sum("d", "x");
        s.window_delay_ms = 0;
        let features = vec![
            CompiledFeature {
                aggregation: Aggregation::Count,
                field: None,
                filter: Some((0, vec!["BLOCK".into()])),
            },
            CompiledFeature {
                aggregation: Aggregation::DistinctCount,
                field: Some(1),
                filter: None,
            },
            CompiledFeature {
                aggregation: Aggregation::Avg,
                field: Some(2),
                filter: None,
            },
            CompiledFeature {
                aggregation: Aggregation::Max,
                field: Some(2),
                filter: None,
            },
        ];
        let mut a = Aggregator::new(&s, features, Some(3));
        let rec = |action: &'static str, ip: &'static str, size: f64, c: &'static str| {
            vec![
                Some(Scalar::Str(action.into())),
                Some(Scalar::Str(ip.into())),
                Some(Scalar::Num(size)),
                Some(Scalar::Str(c.into())),
            ]
        };
        a.add(1, &rec("BLOCK", "a", 10.0, "US"));
        a.add(2, &rec("ALLOW", "b", 20.0, "US"));
        a.add(3, &rec("BLOCK", "a", 30.0, "US"));
        a.add(4, &rec("BLOCK", "c", 5.0, "XX"));
        a.add(60_001, &rec("ALLOW", "c", 5.0, "XX"));
        let mut out = Vec::new();
        a.close_ready(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].entity.as_deref(), Some("US"));
        assert_eq!(out[0].values, vec![2.0, 2.0, 20.0, 30.0]);
        assert_eq!(out[1].entity.as_deref(), Some("XX"));
        assert_eq!(out[1].values, vec![1.0, 1.0, 5.0, 5.0]);
    }
}
