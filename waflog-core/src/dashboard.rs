//! The data behind the dashboard: per-detector series with the expected band,
//! anomalies with their explanation, anomaly counts per detector and entity over
//! the last 24 hours and 7 days, KPIs and alerts.
//!
//! A [`Board`] takes in [`AnomalyResult`]s as detection produces them (or as a
//! results file is read back for a report) and gives a [`Snapshot`] of everything
//! shown, plus an [`Update`] with what changed since the last one, for pushing to
//! browsers. Both are plain serde types; the page's JavaScript reads their JSON.
//!
//! Windows are in event time: "the last 24 hours" ends at the newest interval end
//! seen ([`Snapshot::now`]), so a replay of old logs shows the same counts as the
//! live run did. Series keep [`Limits::retention_ms`] of event time (7 days by
//! default) and at most [`Limits::max_points`] points per series.
//!
//! ```
//! use waflog_core::dashboard::Board;
//! use waflog_core::detect::{AnomalyResult, Score};
//!
//! let mut board = Board::new("example", &[]);
//! let score = Score { anomaly_score: 9.0, anomaly_grade: 0.8, confidence: 0.9, threshold: 5.0,
//!     expected: vec![12.0], attribution: vec![1.0], shifted_categories: vec![],
//!     band: vec![4.0] };
//! let r = AnomalyResult::from_score("country-anomaly-detector", &["UNK_country".into()],
//!     &[2938.0], &score, (0, 60_000), 60_000);
//! board.push(&r);
//! let snap = board.snapshot();
//! assert_eq!(snap.detectors[0].series[0].low, vec![Some(8.0)]);
//! assert_eq!(snap.anomalies.len(), 1);
//! assert_eq!(snap.counts.windows[0].by_detector[0].count, 1);
//! ```

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertBook, entity_key};
use crate::detect::result::{Contributors, ExampleRecord};
use crate::detect::{AnomalyResult, DetectorSpec};

/// Version of the JSON the page reads.
pub const SNAPSHOT_VERSION: u32 = 1;

const HOUR_MS: i64 = 3_600_000;
/// The count windows, by name and length.
pub const WINDOWS: [(&str, i64); 2] = [("24h", 24 * HOUR_MS), ("7d", 7 * 24 * HOUR_MS)];

/// How much the board keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Event time kept in series and counts, in ms (7 days).
    pub retention_ms: i64,
    /// Points kept per series (newest).
    pub max_points: usize,
    /// Anomalies kept with their explanation (newest).
    pub max_anomalies: usize,
    /// Entities charted per per-entity detector (those with the latest anomalies).
    pub max_entities: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            retention_ms: 7 * 24 * HOUR_MS,
            max_points: 20_000,
            max_anomalies: 5_000,
            max_entities: 20,
        }
    }
}

/// Whether the page runs live (pushed updates, acknowledgements) or is a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Served by `waflog detect --dashboard`.
    Live,
    /// Written by `waflog report`.
    Report,
}

/// The headline numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    /// Records read per second, lately (wall clock).
    pub events_per_second: f64,
    /// Records read.
    pub events: u64,
    /// Records that could not be read (dead letters).
    pub dead_lettered: u64,
    /// Records that arrived after their interval closed.
    pub late: u64,
    /// Alerts ACTIVE or in ERROR.
    pub active_alerts: u64,
    /// Results taken in.
    pub results: u64,
    /// Anomalous results taken in.
    pub anomalies: u64,
    /// The input has ended (no more results will come).
    pub input_done: bool,
}

/// One interval of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Interval start, epoch ms.
    pub t: i64,
    /// Feature values, in the detector's feature order.
    pub actual: Vec<f64>,
    /// Expected values (NaN-free: a missing one is the actual value).
    pub expected: Vec<f64>,
    /// Lower end of the normal band per feature, when the detector has one.
    pub low: Vec<Option<f64>>,
    /// Upper end of the normal band per feature.
    pub high: Vec<Option<f64>>,
    /// Anomaly grade.
    pub grade: f64,
    /// Confidence.
    pub confidence: f64,
}

/// A charted entity of a per-entity detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySeries {
    /// The entity's value(s), joined with `,`.
    pub entity: String,
    /// Its points since it was first anomalous.
    pub series: VecDeque<Point>,
}

/// One detector's panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorView {
    /// Detector name.
    pub name: String,
    /// Feature names.
    pub features: Vec<String>,
    /// The category field of a per-entity detector.
    pub category_field: Option<String>,
    /// Interval length, ms.
    pub interval_ms: i64,
    /// Intervals scored so far.
    pub intervals: u64,
    /// Intervals needed before results are graded.
    pub warm_up: u32,
    /// Confidence of the latest result.
    pub confidence: f64,
    /// The series (empty for per-entity detectors).
    pub series: VecDeque<Point>,
    /// Per-entity detectors: the entities with the latest anomalies.
    pub entities: Vec<EntitySeries>,
}

/// One feature of an anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    /// Feature name.
    pub name: String,
    /// Value in the interval.
    pub actual: f64,
    /// Expected value.
    pub expected: f64,
    /// Lower end of the normal band.
    pub low: Option<f64>,
    /// Upper end of the normal band.
    pub high: Option<f64>,
    /// Share of the anomaly in [0, 1].
    pub attribution: f64,
}

/// An anomalous result, with what explains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyView {
    /// `detector|entity|start`: unique and stable.
    pub id: String,
    /// Detector name.
    pub detector: String,
    /// The entity of a per-entity detector.
    pub entity: Option<String>,
    /// Interval start, epoch ms.
    pub start: i64,
    /// Interval end, epoch ms.
    pub end: i64,
    /// Anomaly grade.
    pub grade: f64,
    /// Confidence.
    pub confidence: f64,
    /// Features, largest share of the anomaly first.
    pub features: Vec<FeatureView>,
    /// The values that drove it, per field.
    pub contributors: Vec<Contributors>,
    /// Records of the interval that moved a feature.
    pub examples: Vec<ExampleRecord>,
    /// Records in the interval.
    pub records: u64,
}

/// Anomalies of one detector in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorCount {
    /// Detector name.
    pub detector: String,
    /// Anomalous intervals.
    pub count: u64,
}

/// Anomalies of one entity in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityCount {
    /// Detector name.
    pub detector: String,
    /// The entity.
    pub entity: String,
    /// Anomalous intervals.
    pub count: u64,
}

/// Counts over one window ending at [`Snapshot::now`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowCounts {
    /// `24h` or `7d`.
    pub name: String,
    /// Per detector, in the detectors' order (zeros included).
    pub by_detector: Vec<DetectorCount>,
    /// Per entity of per-entity detectors, largest first (at most 50).
    pub by_entity: Vec<EntityCount>,
}

/// Anomaly counts per window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// One per [`WINDOWS`] entry.
    pub windows: Vec<WindowCounts>,
}

/// An alert as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// The alert ID (for acknowledging).
    pub id: String,
    /// Monitor name.
    pub monitor: String,
    /// Trigger name.
    pub trigger: String,
    /// 1 (highest) to 5.
    pub severity: u8,
    /// The detector the monitor reads.
    pub detector: String,
    /// The entity, for per-entity detectors.
    pub entity: Option<String>,
    /// ACTIVE, ACKNOWLEDGED, COMPLETED or ERROR.
    pub state: String,
    /// Start of the first period it fired in.
    pub start_time: i64,
    /// End of the last period it fired in.
    pub last_fired: Option<i64>,
    /// End of the period that completed it.
    pub end_time: Option<i64>,
    /// When it was acknowledged.
    pub acknowledged_time: Option<i64>,
    /// One line on why it fired.
    pub summary: Option<String>,
    /// A responder's verdict (`not_anomaly`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The alert of its incident it is merged into (it sends no notification of
    /// its own), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
}

impl AlertView {
    /// The view of `alert`.
    pub fn of(alert: &Alert) -> AlertView {
        let summary = alert.explanation.as_ref().and_then(|e| {
            if let Some(q) = &e.query {
                return Some(format!(
                    "{}({}) = {}",
                    q.aggregation,
                    q.feature,
                    q.value
                        .map_or_else(|| "no value".into(), |v| format!("{v}"))
                ));
            }
            let a = e.anomaly.as_ref()?;
            let f = a.features.first()?;
            Some(format!(
                "{} = {}{}, grade {:.2}",
                f.feature,
                f.actual,
                f.expected
                    .map(|x| format!(" (expected {x:.1})"))
                    .unwrap_or_default(),
                a.anomaly_grade
            ))
        });
        AlertView {
            id: alert.id.clone(),
            monitor: alert.monitor.clone(),
            trigger: alert.trigger.clone(),
            severity: alert.severity,
            detector: alert.detector.clone(),
            entity: alert.entity.clone(),
            state: alert.state().to_string(),
            start_time: alert.start_time,
            last_fired: alert.last_fired,
            end_time: alert.end_time,
            acknowledged_time: alert.acknowledged_time,
            summary,
            label: alert.label.map(|l| l.to_string()),
            merged_into: alert.merged_into.clone(),
        }
    }
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// Live or report.
    pub mode: Mode,
    /// Page title.
    pub title: String,
    /// When the snapshot was made (the caller's clock), epoch ms.
    pub generated_at: i64,
    /// The newest interval end seen: the end of the count windows.
    pub now: Option<i64>,
    /// Whether alerts can be acknowledged from the page.
    pub ack_enabled: bool,
    /// Headline numbers.
    pub kpis: Kpis,
    /// One per detector.
    pub detectors: Vec<DetectorView>,
    /// Anomalies, oldest first.
    pub anomalies: Vec<AnomalyView>,
    /// Counts per window.
    pub counts: Counts,
    /// Alerts, newest first.
    pub alerts: Vec<AlertView>,
}

/// A detector's progress, in an [`Update`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorProgress {
    /// Detector name.
    pub name: String,
    /// Intervals scored.
    pub intervals: u64,
    /// Latest confidence.
    pub confidence: f64,
    /// Per-entity detectors: the charted entities (others were dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
}

/// A point added to a series, in an [`Update`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPoint {
    /// Detector name.
    pub detector: String,
    /// The entity, for per-entity detectors.
    pub entity: Option<String>,
    /// The point.
    pub point: Point,
}

/// What changed since the last update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The newest interval end seen.
    pub now: Option<i64>,
    /// Headline numbers.
    pub kpis: Kpis,
    /// Every detector's progress.
    pub detectors: Vec<DetectorProgress>,
    /// New points.
    pub points: Vec<NewPoint>,
    /// New anomalies.
    pub anomalies: Vec<AnomalyView>,
    /// Counts per window (whole).
    pub counts: Counts,
    /// The whole alert list, when it changed.
    pub alerts: Option<Vec<AlertView>>,
}

#[derive(Debug, Default)]
struct Pending {
    points: Vec<NewPoint>,
    anomalies: Vec<AnomalyView>,
    alerts: bool,
    kpis: bool,
    /// A detector was added: pages need a new snapshot, not an update.
    layout: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.points.is_empty()
            && self.anomalies.is_empty()
            && !self.alerts
            && !self.kpis
            && !self.layout
    }
}

/// The dashboard's state.
#[derive(Debug)]
pub struct Board {
    title: String,
    mode: Mode,
    ack_enabled: bool,
    limits: Limits,
    detectors: Vec<DetectorView>,
    by_name: HashMap<String, usize>,
    /// The latest interval start per detector (to count intervals once).
    last_start: Vec<i64>,
    /// (interval start, detector index, entity) of every anomaly in the retention.
    marks: VecDeque<(i64, usize, Option<String>)>,
    anomalies: VecDeque<AnomalyView>,
    alerts: Vec<AlertView>,
    kpis: Kpis,
    now: Option<i64>,
    pending: Pending,
}

impl Board {
    /// A live board with a panel per spec, in order; results of other detectors
    /// add panels as they come.
    pub fn new(title: &str, specs: &[DetectorSpec]) -> Board {
        let mut b = Board {
            title: title.to_string(),
            mode: Mode::Live,
            ack_enabled: false,
            limits: Limits::default(),
            detectors: Vec::new(),
            by_name: HashMap::new(),
            last_start: Vec::new(),
            marks: VecDeque::new(),
            anomalies: VecDeque::new(),
            alerts: Vec::new(),
            kpis: Kpis::default(),
            now: None,
            pending: Pending::default(),
        };
        for s in specs {
            b.add_detector(DetectorView {
                name: s.name.clone(),
                features: s.features.iter().map(|f| f.name.clone()).collect(),
                category_field: s.category_field.clone(),
                interval_ms: s.interval(),
                intervals: 0,
                warm_up: s.algorithm.min_intervals(),
                confidence: 0.0,
                series: VecDeque::new(),
                entities: Vec::new(),
            });
        }
        b.pending.layout = false;
        b
    }

    /// A board for a report: no pushed updates, no acknowledgements.
    pub fn report(title: &str) -> Board {
        let mut b = Board::new(title, &[]);
        b.mode = Mode::Report;
        b
    }

    /// Other limits.
    pub fn with_limits(mut self, limits: Limits) -> Board {
        self.limits = limits;
        self
    }

    /// Lets the page acknowledge alerts.
    pub fn enable_acks(&mut self) {
        self.ack_enabled = true;
    }

    fn add_detector(&mut self, d: DetectorView) -> usize {
        let i = self.detectors.len();
        self.by_name.insert(d.name.clone(), i);
        self.detectors.push(d);
        self.last_start.push(i64::MIN);
        self.pending.layout = true;
        i
    }

    /// The panel of `r`'s detector, made from the result when there is none.
    fn detector_for(&mut self, r: &AnomalyResult) -> usize {
        if let Some(&i) = self.by_name.get(&r.detector_name) {
            return i;
        }
        self.add_detector(DetectorView {
            name: r.detector_name.clone(),
            features: r
                .feature_data
                .iter()
                .map(|f| f.feature_name.clone())
                .collect(),
            category_field: r.entity.as_ref().map(|e| {
                e.iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            interval_ms: r.data_end_time.saturating_sub(r.data_start_time),
            intervals: 0,
            warm_up: 0,
            confidence: 0.0,
            series: VecDeque::new(),
            entities: Vec::new(),
        })
    }

    /// Takes in one result.
    pub fn push(&mut self, r: &AnomalyResult) {
        let i = self.detector_for(r);
        let point = point_of(r, &self.detectors[i].features);
        let entity = entity_key(r);
        let anomalous = r.is_anomaly();
        let advanced = self.now.is_none_or(|n| r.data_end_time > n);
        self.now = Some(self.now.map_or(r.data_end_time, |n| n.max(r.data_end_time)));
        self.kpis.results += 1;
        if anomalous {
            self.kpis.anomalies += 1;
        }
        let limits = self.limits;
        let d = &mut self.detectors[i];
        // Per-entity detectors score every entity in an interval: count the
        // interval once, at its first result.
        if r.data_start_time > self.last_start[i] {
            self.last_start[i] = r.data_start_time;
            d.intervals += 1;
        }
        d.confidence = r.confidence;
        // The explanation reads the same values as the chart.
        let view = anomalous.then(|| anomaly_view(r, &d.features, &point, entity.clone()));
        let charted = match &entity {
            None => {
                push_point(&mut d.series, point.clone(), limits.max_points);
                true
            }
            Some(e) => {
                let at = d.entities.iter().position(|s| &s.entity == e);
                match (at, anomalous) {
                    (Some(k), _) => {
                        if anomalous {
                            // Most recently anomalous first; the last is dropped.
                            let s = d.entities.remove(k);
                            d.entities.insert(0, s);
                            push_point(&mut d.entities[0].series, point.clone(), limits.max_points);
                        } else {
                            push_point(&mut d.entities[k].series, point.clone(), limits.max_points);
                        }
                        true
                    }
                    (None, true) => {
                        d.entities.insert(
                            0,
                            EntitySeries {
                                entity: e.clone(),
                                series: VecDeque::from([point.clone()]),
                            },
                        );
                        d.entities.truncate(limits.max_entities.max(1));
                        true
                    }
                    (None, false) => false,
                }
            }
        };
        let live = self.mode == Mode::Live;
        if charted && live {
            self.pending.points.push(NewPoint {
                detector: d.name.clone(),
                entity: entity.clone(),
                point,
            });
        }
        if let Some(view) = view {
            self.marks.push_back((r.data_start_time, i, entity));
            self.anomalies.push_back(view.clone());
            while self.anomalies.len() > limits.max_anomalies {
                self.anomalies.pop_front();
            }
            if live {
                self.pending.anomalies.push(view);
            }
        }
        if advanced {
            self.expire();
        }
    }

    /// Drops what fell out of the retention.
    fn expire(&mut self) {
        let Some(now) = self.now else { return };
        let cut = now.saturating_sub(self.limits.retention_ms);
        // Results of several inputs may come out of time order: keep by time,
        // not by position.
        self.marks.retain(|m| m.0 >= cut);
        for d in &mut self.detectors {
            d.series.retain(|p| p.t >= cut);
            for e in &mut d.entities {
                e.series.retain(|p| p.t >= cut);
            }
            d.entities.retain(|e| !e.series.is_empty());
        }
    }

    /// Replaces the alert list with `book`'s alerts, newest first.
    pub fn set_alerts(&mut self, book: &AlertBook) {
        let mut alerts: Vec<AlertView> = book.list().into_iter().map(AlertView::of).collect();
        alerts.sort_by(|a, b| b.start_time.cmp(&a.start_time).then(a.id.cmp(&b.id)));
        self.kpis.active_alerts = alerts
            .iter()
            .filter(|a| a.state == "ACTIVE" || a.state == "ERROR")
            .count() as u64;
        if alerts != self.alerts {
            self.alerts = alerts;
            self.pending.alerts = true;
        }
    }

    /// The headline numbers this board does not count itself: records read, dead
    /// letters, late records, the rate and the end of input.
    pub fn set_input(
        &mut self,
        events: u64,
        dead_lettered: u64,
        late: u64,
        events_per_second: f64,
    ) {
        let k = &mut self.kpis;
        if (k.events, k.dead_lettered, k.late) != (events, dead_lettered, late)
            || k.events_per_second != events_per_second
        {
            k.events = events;
            k.dead_lettered = dead_lettered;
            k.late = late;
            k.events_per_second = events_per_second;
            self.pending.kpis = true;
        }
    }

    /// Marks the end of the input.
    pub fn set_input_done(&mut self) {
        self.kpis.input_done = true;
        self.kpis.events_per_second = 0.0;
        self.pending.kpis = true;
    }

    /// The headline numbers.
    pub fn kpis(&self) -> &Kpis {
        &self.kpis
    }

    /// The alerts, newest first.
    pub fn alerts(&self) -> &[AlertView] {
        &self.alerts
    }

    /// Puts series and anomalies in time order (results of several inputs may
    /// come out of it); a report calls this before its snapshot.
    pub fn sort(&mut self) {
        for d in &mut self.detectors {
            d.series.make_contiguous().sort_by_key(|p| p.t);
            for e in &mut d.entities {
                e.series.make_contiguous().sort_by_key(|p| p.t);
            }
        }
        self.anomalies
            .make_contiguous()
            .sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
    }

    /// True once after a detector was added (pages need a new snapshot).
    pub fn take_layout_change(&mut self) -> bool {
        std::mem::take(&mut self.pending.layout)
    }

    /// Anomaly counts per detector and entity over the [`WINDOWS`].
    pub fn counts(&self) -> Counts {
        let Some(now) = self.now else {
            return Counts {
                windows: WINDOWS
                    .iter()
                    .map(|(name, _)| WindowCounts {
                        name: (*name).to_string(),
                        by_detector: self.zero_counts(),
                        by_entity: Vec::new(),
                    })
                    .collect(),
            };
        };
        let windows = WINDOWS
            .iter()
            .map(|&(name, len)| {
                let from = now.saturating_sub(len);
                let mut per_detector = vec![0u64; self.detectors.len()];
                let mut per_entity: HashMap<(usize, &str), u64> = HashMap::new();
                for (t, i, e) in &self.marks {
                    if *t < from {
                        continue;
                    }
                    per_detector[*i] += 1;
                    if let Some(e) = e {
                        *per_entity.entry((*i, e.as_str())).or_default() += 1;
                    }
                }
                let mut by_entity: Vec<EntityCount> = per_entity
                    .into_iter()
                    .map(|((i, e), count)| EntityCount {
                        detector: self.detectors[i].name.clone(),
                        entity: e.to_string(),
                        count,
                    })
                    .collect();
                by_entity.sort_by(|a, b| {
                    b.count
                        .cmp(&a.count)
                        .then_with(|| a.detector.cmp(&b.detector))
                        .then_with(|| a.entity.cmp(&b.entity))
                });
                by_entity.truncate(50);
                WindowCounts {
                    name: name.to_string(),
                    by_detector: self
                        .detectors
                        .iter()
                        .zip(per_detector)
                        .map(|(d, count)| DetectorCount {
                            detector: d.name.clone(),
                            count,
                        })
                        .collect(),
                    by_entity,
                }
            })
            .collect();
        Counts { windows }
    }

    fn zero_counts(&self) -> Vec<DetectorCount> {
        self.detectors
            .iter()
            .map(|d| DetectorCount {
                detector: d.name.clone(),
                count: 0,
            })
            .collect()
    }

    /// Everything shown, as of now; `generated_at` is the caller's clock.
    pub fn snapshot_at(&self, generated_at: i64) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            mode: self.mode,
            title: self.title.clone(),
            generated_at,
            now: self.now,
            ack_enabled: self.ack_enabled && self.mode == Mode::Live,
            kpis: self.kpis.clone(),
            detectors: self.detectors.clone(),
            anomalies: self.anomalies.iter().cloned().collect(),
            counts: self.counts(),
            alerts: self.alerts.clone(),
        }
    }

    /// [`Board::snapshot_at`] with `generated_at` 0 (for tests and reports that
    /// must not depend on the clock).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(0)
    }

    /// What changed since the last call, or `None` when nothing did.
    pub fn take_update(&mut self) -> Option<Update> {
        if self.pending.is_empty() {
            return None;
        }
        let p = std::mem::take(&mut self.pending);
        Some(Update {
            now: self.now,
            kpis: self.kpis.clone(),
            detectors: self
                .detectors
                .iter()
                .map(|d| DetectorProgress {
                    name: d.name.clone(),
                    intervals: d.intervals,
                    confidence: d.confidence,
                    entities: d.entities.iter().map(|e| e.entity.clone()).collect(),
                })
                .collect(),
            points: p.points,
            anomalies: p.anomalies,
            counts: self.counts(),
            alerts: p.alerts.then(|| self.alerts.clone()),
        })
    }
}

fn push_point(series: &mut VecDeque<Point>, p: Point, max: usize) {
    series.push_back(p);
    while series.len() > max.max(1) {
        series.pop_front();
    }
}

/// A result's values in the order of `features` (by name; missing ones are 0).
fn point_of(r: &AnomalyResult, features: &[String]) -> Point {
    let mut p = Point {
        t: r.data_start_time,
        actual: Vec::with_capacity(features.len()),
        expected: Vec::with_capacity(features.len()),
        low: Vec::with_capacity(features.len()),
        high: Vec::with_capacity(features.len()),
        grade: finite(r.anomaly_grade),
        confidence: finite(r.confidence),
    };
    for f in features {
        let actual = finite(
            r.feature_data
                .iter()
                .find(|d| &d.feature_name == f || &d.feature_id == f)
                .map_or(0.0, |d| d.data),
        );
        let expected = r
            .expected_values
            .first()
            .and_then(|e| e.value_list.iter().find(|v| &v.feature_id == f))
            .map(|v| v.data)
            .filter(|v| v.is_finite())
            .unwrap_or(actual);
        let bounds = r
            .expected_bounds
            .iter()
            .find(|b| &b.feature_id == f)
            .filter(|b| b.low.is_finite() && b.high.is_finite());
        p.actual.push(actual);
        p.expected.push(expected);
        p.low.push(bounds.map(|b| b.low));
        p.high.push(bounds.map(|b| b.high));
    }
    p
}

fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

fn anomaly_view(
    r: &AnomalyResult,
    features: &[String],
    p: &Point,
    entity: Option<String>,
) -> AnomalyView {
    let mut fs: Vec<FeatureView> = features
        .iter()
        .enumerate()
        .map(|(k, name)| FeatureView {
            name: name.clone(),
            actual: p.actual[k],
            expected: p.expected[k],
            low: p.low[k],
            high: p.high[k],
            attribution: finite(
                r.relevant_attribution
                    .iter()
                    .find(|a| &a.feature_id == name)
                    .map_or(0.0, |a| a.data),
            ),
        })
        .collect();
    fs.sort_by(|a, b| b.attribution.total_cmp(&a.attribution));
    AnomalyView {
        id: format!(
            "{}|{}|{}",
            r.detector_name,
            entity.as_deref().unwrap_or(""),
            r.data_start_time
        ),
        detector: r.detector_name.clone(),
        entity,
        start: r.data_start_time,
        end: r.data_end_time,
        grade: p.grade,
        confidence: p.confidence,
        features: fs,
        contributors: r.contributors.clone().unwrap_or_default(),
        examples: r.examples.clone().unwrap_or_default(),
        records: r.records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Score;
    use crate::detect::result::EntityValue;

    const MIN: i64 = 60_000;

    /// A one-minute result of `detector` at minute `m`.
    fn result(
        detector: &str,
        m: i64,
        value: f64,
        grade: f64,
        entity: Option<&str>,
    ) -> AnomalyResult {
        let score = Score {
            anomaly_score: if grade > 0.0 { 9.0 } else { 1.0 },
            anomaly_grade: grade,
            confidence: 0.9,
            threshold: 5.0,
            expected: vec![10.0],
            attribution: vec![1.0],
            shifted_categories: vec![],
            band: vec![2.5],
        };
        let mut r = AnomalyResult::from_score(
            detector,
            &["UNK_country".into()],
            &[value],
            &score,
            (m * MIN, (m + 1) * MIN),
            (m + 1) * MIN,
        );
        r.entity = entity.map(|e| {
            vec![EntityValue {
                name: "httpRequest.clientIp".into(),
                value: e.into(),
            }]
        });
        r
    }

    fn count(c: &Counts, window: &str, detector: &str) -> u64 {
        c.windows
            .iter()
            .find(|w| w.name == window)
            .and_then(|w| w.by_detector.iter().find(|d| d.detector == detector))
            .map_or(0, |d| d.count)
    }

    #[test]
    fn series_carry_the_band_and_the_grade() {
        let mut b = Board::new("t", &DetectorSpec::defaults());
        b.push(&result("country-anomaly-detector", 0, 11.0, 0.0, None));
        b.push(&result("country-anomaly-detector", 1, 40.0, 0.8, None));
        let s = b.snapshot();
        assert_eq!(
            s.detectors.len(),
            6,
            "every configured detector has a panel"
        );
        let d = s
            .detectors
            .iter()
            .find(|d| d.name == "country-anomaly-detector")
            .unwrap();
        assert_eq!(d.features, vec!["UNK_country"]);
        assert_eq!((d.intervals, d.warm_up, d.interval_ms), (2, 5, MIN));
        let p: Vec<_> = d.series.iter().collect();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].t, p[1].t), (0, MIN));
        assert_eq!(p[1].actual, vec![40.0]);
        assert_eq!(p[1].expected, vec![10.0]);
        assert_eq!((p[1].low[0], p[1].high[0]), (Some(7.5), Some(12.5)));
        assert_eq!((p[0].grade, p[1].grade), (0.0, 0.8));
        // The anomaly, explained.
        assert_eq!(s.anomalies.len(), 1);
        let a = &s.anomalies[0];
        assert_eq!(a.id, "country-anomaly-detector||60000");
        assert_eq!(a.features[0].name, "UNK_country");
        assert_eq!((a.features[0].actual, a.features[0].expected), (40.0, 10.0));
        assert_eq!(a.features[0].attribution, 1.0);
        assert_eq!(s.now, Some(2 * MIN));
        assert_eq!((s.kpis.results, s.kpis.anomalies), (2, 1));
    }

    #[test]
    fn a_detector_without_a_band_has_none() {
        let mut b = Board::report("r");
        let mut r = result("rcf-detector", 0, 5.0, 0.0, None);
        r.expected_bounds.clear();
        r.expected_values[0].value_list[0].data = f64::NAN;
        b.push(&r);
        let s = b.snapshot();
        let p = &s.detectors[0].series[0];
        assert_eq!((p.low[0], p.high[0]), (None, None));
        // A missing expected value is drawn at the actual one, never as NaN.
        assert_eq!(p.expected, vec![5.0]);
        assert_eq!(s.mode, Mode::Report);
        assert!(!s.ack_enabled);
        // serde_json refuses NaN: the snapshot always serialises.
        assert!(serde_json::to_string(&s).is_ok());
    }

    #[test]
    fn counts_cover_the_last_24_hours_and_7_days_of_event_time() {
        let mut b = Board::report("r");
        let day = 24 * 60;
        // Anomalies 8 days, 3 days and 1 hour before the last result, and one at it.
        for m in [0, 5 * day, 8 * day - 60, 8 * day] {
            b.push(&result("action-anomaly-detector", m, 50.0, 0.9, None));
        }
        b.push(&result(
            "country-anomaly-detector",
            8 * day,
            50.0,
            0.9,
            None,
        ));
        b.push(&result(
            "country-anomaly-detector",
            8 * day + 1,
            10.0,
            0.0,
            None,
        ));
        let c = b.counts();
        assert_eq!(count(&c, "24h", "action-anomaly-detector"), 2);
        assert_eq!(count(&c, "7d", "action-anomaly-detector"), 3);
        assert_eq!(count(&c, "24h", "country-anomaly-detector"), 1);
        // The 8-day-old anomaly and its point fell out of the retention.
        let s = b.snapshot();
        let action = &s.detectors[0];
        assert_eq!(action.series.front().unwrap().t, 5 * day * MIN);
        assert_eq!(
            s.anomalies.len(),
            5,
            "explanations are capped by number, not age"
        );
    }

    #[test]
    fn per_entity_detectors_chart_the_entities_with_the_latest_anomalies() {
        let mut b = Board::report("r").with_limits(Limits {
            max_entities: 2,
            ..Limits::default()
        });
        let d = "flood-detector";
        // Minute 0: three clients, none anomalous: nothing charted, one interval.
        for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            b.push(&result(d, 0, 5.0, 0.0, Some(ip)));
        }
        // Minutes 1-3: .1, then .2, then .3 become anomalous.
        b.push(&result(d, 1, 90.0, 0.9, Some("10.0.0.1")));
        b.push(&result(d, 1, 5.0, 0.0, Some("10.0.0.2")));
        b.push(&result(d, 2, 90.0, 0.9, Some("10.0.0.2")));
        b.push(&result(d, 2, 6.0, 0.0, Some("10.0.0.1")));
        b.push(&result(d, 3, 90.0, 0.9, Some("10.0.0.3")));
        b.push(&result(d, 3, 90.0, 0.9, Some("10.0.0.3")));
        let s = b.snapshot();
        let v = &s.detectors[0];
        assert_eq!(v.category_field.as_deref(), Some("httpRequest.clientIp"));
        assert_eq!(v.intervals, 4);
        assert!(v.series.is_empty());
        let names: Vec<&str> = v.entities.iter().map(|e| e.entity.as_str()).collect();
        assert_eq!(
            names,
            vec!["10.0.0.3", "10.0.0.2"],
            "most recent first, capped"
        );
        let two: Vec<i64> = v.entities[1].series.iter().map(|p| p.t / MIN).collect();
        assert_eq!(two, vec![2], "charted from its first anomaly on");
        let c = b.counts();
        let w = &c.windows[0];
        assert_eq!(w.by_detector[0].count, 4);
        let top: Vec<(&str, u64)> = w
            .by_entity
            .iter()
            .map(|e| (e.entity.as_str(), e.count))
            .collect();
        assert_eq!(top, vec![("10.0.0.3", 2), ("10.0.0.1", 1), ("10.0.0.2", 1)]);
    }

    #[test]
    fn updates_hold_what_changed_once() {
        let mut b = Board::new("t", &[]);
        assert!(b.take_update().is_none());
        b.push(&result("country-anomaly-detector", 0, 11.0, 0.0, None));
        b.push(&result("country-anomaly-detector", 1, 40.0, 0.8, None));
        b.set_input(3000, 2, 1, 50.0);
        let u = b.take_update().unwrap();
        assert_eq!(u.points.len(), 2);
        assert_eq!(u.anomalies.len(), 1);
        assert_eq!(
            (u.kpis.events, u.kpis.dead_lettered, u.kpis.late),
            (3000, 2, 1)
        );
        assert_eq!(u.detectors[0].intervals, 2);
        assert_eq!(count(&u.counts, "24h", "country-anomaly-detector"), 1);
        assert!(u.alerts.is_none());
        assert!(b.take_update().is_none(), "nothing new");
        b.set_input(3000, 2, 1, 50.0);
        assert!(b.take_update().is_none(), "unchanged numbers are no update");
        b.set_input_done();
        assert!(b.take_update().unwrap().kpis.input_done);
    }

    #[test]
    fn series_are_capped_by_points() {
        let mut b = Board::report("r").with_limits(Limits {
            max_points: 3,
            max_anomalies: 2,
            ..Limits::default()
        });
        for m in 0..10 {
            b.push(&result("d", m, 50.0, 0.5, None));
        }
        let s = b.snapshot();
        let t: Vec<i64> = s.detectors[0].series.iter().map(|p| p.t / MIN).collect();
        assert_eq!(t, vec![7, 8, 9]);
        let a: Vec<i64> = s.anomalies.iter().map(|a| a.start / MIN).collect();
        assert_eq!(a, vec![8, 9]);
        assert_eq!(count(&b.counts(), "24h", "d"), 10, "counts are not capped");
    }

    #[test]
    fn results_out_of_time_order_are_counted_and_charted_in_order() {
        // Two report inputs, the later one first.
        let mut b = Board::report("r");
        let day = 24 * 60;
        b.push(&result("d", 3 * day, 50.0, 0.9, None));
        b.push(&result("d", 3 * day + 1, 10.0, 0.0, None));
        b.push(&result("d", 2 * day - 60, 50.0, 0.9, None));
        b.push(&result("d", 1, 50.0, 0.9, None));
        let c = b.counts();
        assert_eq!(count(&c, "24h", "d"), 1);
        assert_eq!(count(&c, "7d", "d"), 3);
        b.sort();
        let s = b.snapshot();
        let t: Vec<i64> = s.detectors[0].series.iter().map(|p| p.t / MIN).collect();
        assert_eq!(t, vec![1, 2 * day - 60, 3 * day, 3 * day + 1]);
        let a: Vec<i64> = s.anomalies.iter().map(|a| a.start / MIN).collect();
        assert_eq!(a, vec![1, 2 * day - 60, 3 * day]);
    }

    #[test]
    fn a_report_keeps_no_pending_updates() {
        let mut b = Board::report("r");
        for m in 0..100 {
            b.push(&result("d", m, 50.0, 0.5, None));
        }
        assert!(b.pending.points.is_empty() && b.pending.anomalies.is_empty());
    }

    #[test]
    fn an_unconfigured_detector_changes_the_layout_once() {
        let mut b = Board::new("t", &DetectorSpec::defaults());
        assert!(!b.take_layout_change(), "configured panels are the layout");
        b.push(&result("country-anomaly-detector", 0, 1.0, 0.0, None));
        assert!(!b.take_layout_change());
        b.push(&result("flood-detector", 0, 90.0, 0.9, Some("10.0.0.9")));
        assert!(b.take_layout_change());
        assert!(!b.take_layout_change());
        // Updates name the charted entities, so pages drop the others.
        let u = b.take_update().unwrap();
        let flood = u
            .detectors
            .iter()
            .find(|d| d.name == "flood-detector")
            .unwrap();
        assert_eq!(flood.entities, vec!["10.0.0.9"]);
    }
}
