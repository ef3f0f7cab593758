//! The pipeline: lines in, anomaly results and alerts out, and the one state that
//! lets a later run resume.
//!
//! A [`Pipeline`] owns the detection [`Engine`], the alerting (an [`Evaluator`]
//! with its monitors, triggers, alert book and outbox, and the [`Notifier`]s that
//! deliver) and an observer of the results ([`ResultObserver`]: an output, a
//! dashboard, a scorer against ground truth, or a `Vec` that keeps them):
//!
//! ```text
//! push_line ─► Engine (parse, features, intervals, detectors) ─► results
//!    │                                                             │
//!    └─► dead letter (counted, kept, returned)      Evaluator ◄────┤ (alerts, deliveries)
//!                                                    observer ◄────┘
//! tick(idle_ms): event time moves on while the input is idle; finish(): end of input.
//! ```
//!
//! - [`Pipeline::push_line`] takes one line (a raw AWS WAF record or a transformed
//!   one). A line that is not a record never stops the pipeline: it is counted,
//!   kept (the last [`DEFAULT_KEPT_DEAD_LETTERS`]) and returned with its reason.
//! - [`Pipeline::tick`]: the input has been idle for a while of wall-clock time;
//!   event time is taken to have moved on as much, so intervals close when traffic
//!   stops.
//! - [`Pipeline::finish`] scores every complete interval at the end of the input,
//!   closes the alert periods they end and tries every undelivered notification
//!   once more; [`Pipeline::suspend`] does the same but keeps open intervals, for a
//!   run that saves its [`State`] and resumes later.
//! - [`Pipeline::open_series`] and [`Pipeline::push_series_line`]: metric series
//!   (CSV rows, see [`crate::detect::metrics`]) scored beside the engine, their
//!   results handed on like the engine's, their models kept in the [`State`].
//! - [`State`]: everything a run keeps for the next one (models, open intervals,
//!   the alert book and its outbox, stream checkpoints, metric series), versioned,
//!   with one reader and one writer.
//!
//! The core reads no clock: deliveries are timed by the clock the caller gives
//! ([`Pipeline::with_alerting`]), idle time by the caller's [`Pipeline::tick`].
//!
//! ```
//! use waflog_core::alert::{Evaluator, Monitor, WriteFormat, WriteNotifier};
//! use waflog_core::detect::{AnomalyResult, Engine};
//! use waflog_core::pipeline::{Pipeline, Pushed};
//! use waflog_core::Config;
//!
//! let config = Config::default();
//! let engine = Engine::new(&config.detector_specs(), config.feature_map().unwrap()).unwrap();
//! let eval = Evaluator::new(&Monitor::defaults(&config.detector_specs()), &config.channel_specs())
//!     .unwrap();
//! let stdout = WriteNotifier::new("stdout", std::io::sink(), WriteFormat::Text);
//! let mut pipeline = Pipeline::new(engine)
//!     .with_alerting(eval, vec![Box::new(stdout)], || 1_700_000_000_000)
//!     .with_observer(Vec::<AnomalyResult>::new());
//! let line = br#"{"timestamp":1700000000000,"action":"ALLOW","httpRequest":{"country":"US"}}"#;
//! assert!(matches!(pipeline.push_line(line), Ok(Pushed::Record { results: 0 })));
//! assert!(matches!(pipeline.push_line(b"not json"), Ok(Pushed::Rejected(_))));
//! assert_eq!(pipeline.stats().dead_lettered, 1);
//! pipeline.finish().unwrap();
//! assert_eq!(pipeline.stats().results, pipeline.observer().len() as u64);
//! ```

pub mod state;

use std::collections::BTreeMap;
use std::convert::Infallible;

use serde::{Deserialize, Serialize};

pub use state::{S3Current, STATE_VERSION, State, StateError};

use crate::alert::{
    Alert, AlertBook, AlertError, Correlator, DeliveryReport, Evaluator, Incident, Label, Monitor,
    Notification, Notifier,
};
use crate::detect::metrics::MetricSeries;
use crate::detect::{AlgorithmSpec, AnomalyResult, Engine, Prepared};
use crate::error::{DetectError, SchemaError};
use crate::parse::DeadLetter;

/// Dead letters a pipeline keeps by default (the latest; all are counted).
pub const DEFAULT_KEPT_DEAD_LETTERS: usize = 1_000;

/// Sees what the pipeline produces. One method is required; the others have
/// defaults that ignore what they are given.
pub trait ResultObserver {
    /// What a failing observer (an output that cannot be written) returns; the
    /// pipeline hands it to its caller.
    type Error;

    /// Results of intervals that just closed, in order, after the monitors have
    /// seen them; `alerts` is the alert book then (`None` without alerting).
    fn results(
        &mut self,
        results: &[AnomalyResult],
        alerts: Option<&AlertBook>,
    ) -> Result<(), Self::Error>;

    /// Notifications the monitors just raised (fired, re-notified, completed),
    /// before they are delivered.
    fn notifications(&mut self, notes: &[Notification]) {
        let _ = notes;
    }

    /// A round of deliveries that were due ran (after new results, or
    /// [`Pipeline::deliver`]); `alerts` is the book after it.
    fn delivered(&mut self, report: &DeliveryReport, alerts: &AlertBook) {
        let _ = (report, alerts);
    }

    /// A responder's acknowledgements, after the alerts changed
    /// ([`Pipeline::acknowledge`]): with a label, the alerts closed with it.
    fn feedback(&mut self, feedback: &[Feedback]) {
        let _ = feedback;
    }

    /// Incidents that closed (their last anomaly is [`crate::alert::incident::QUIET_MS`]
    /// of event time behind, or the input ended), after the results that closed
    /// them; with alerting, `alert_id` names the alert that notified each.
    fn incidents(&mut self, incidents: &[Incident]) {
        let _ = incidents;
    }

    /// The last results of a run have been given ([`Pipeline::finish`] and
    /// [`Pipeline::suspend`]), before the last notifications are delivered.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// One alert a responder acknowledged ([`Pipeline::acknowledge`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// The alert, as it stands after the acknowledgement.
    pub alert: Alert,
    /// The responder's verdict, if any.
    pub label: Option<Label>,
    /// Whether the alert's detector learnt its level as normal (false without a
    /// label, for a model that no longer exists or takes no feedback, or an alert
    /// without values).
    pub learnt: bool,
}

/// How a feedback document's line starts.
pub const FEEDBACK_PREFIX: &str = r#"{"type":"feedback""#;

/// A [`Feedback`] as one line among the results (`"type": "feedback"`), for
/// `waflog eval` and for the record: which alert a responder judged, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackDocument {
    /// Always `feedback`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The alert.
    pub alert_id: String,
    /// Its monitor.
    pub monitor: String,
    /// Its detector.
    pub detector: String,
    /// Its entity, for per-entity detectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Its incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Start of its first period, epoch ms.
    pub start_time: i64,
    /// End of its last firing period, epoch ms.
    pub end_time: i64,
    /// When the responder acknowledged it (their clock), epoch ms.
    pub acknowledged_time: Option<i64>,
    /// The verdict, if any (`not_anomaly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Whether the detector learnt the level as normal.
    pub learnt: bool,
}

impl FeedbackDocument {
    /// The document of `f`.
    pub fn new(f: &Feedback) -> FeedbackDocument {
        let a = &f.alert;
        FeedbackDocument {
            kind: "feedback".into(),
            alert_id: a.id.clone(),
            monitor: a.monitor.clone(),
            detector: a.detector.clone(),
            entity: a.entity.clone(),
            incident_id: a.incident_id.clone(),
            start_time: a.start_time,
            end_time: a.last_fired.unwrap_or(a.start_time),
            acknowledged_time: a.acknowledged_time,
            label: f.label,
            learnt: f.learnt,
        }
    }

    /// `None` when `line` is not a feedback document; `Some(Err(..))` when it
    /// starts as one but does not parse.
    pub fn from_line(line: &[u8]) -> Option<Result<FeedbackDocument, serde_json::Error>> {
        if !line
            .trim_ascii_start()
            .starts_with(FEEDBACK_PREFIX.as_bytes())
        {
            return None;
        }
        Some(serde_json::from_slice(line))
    }
}

/// No observer: results are counted and dropped.
impl ResultObserver for () {
    type Error = Infallible;
    fn results(&mut self, _: &[AnomalyResult], _: Option<&AlertBook>) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Keeps every result.
impl ResultObserver for Vec<AnomalyResult> {
    type Error = Infallible;
    fn results(&mut self, r: &[AnomalyResult], _: Option<&AlertBook>) -> Result<(), Infallible> {
        self.extend_from_slice(r);
        Ok(())
    }
}

/// Two observers, in order.
impl<A, B> ResultObserver for (A, B)
where
    A: ResultObserver,
    B: ResultObserver<Error = A::Error>,
{
    type Error = A::Error;
    fn results(&mut self, r: &[AnomalyResult], a: Option<&AlertBook>) -> Result<(), A::Error> {
        self.0.results(r, a)?;
        self.1.results(r, a)
    }
    fn notifications(&mut self, notes: &[Notification]) {
        self.0.notifications(notes);
        self.1.notifications(notes);
    }
    fn delivered(&mut self, report: &DeliveryReport, alerts: &AlertBook) {
        self.0.delivered(report, alerts);
        self.1.delivered(report, alerts);
    }
    fn incidents(&mut self, incidents: &[Incident]) {
        self.0.incidents(incidents);
        self.1.incidents(incidents);
    }
    fn flush(&mut self) -> Result<(), A::Error> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Pushed {
    /// A record, taken in; `results` intervals closed and were handed on.
    Record {
        /// Results handed to the monitors and the observer.
        results: usize,
    },
    /// A blank line, skipped.
    Blank,
    /// Not a record (or one the time rules keep out): dead-lettered for this reason.
    Rejected(SchemaError),
}

impl Pushed {
    /// The results handed on (0 for a blank line), or why the line was rejected.
    pub fn into_result(self) -> Result<usize, SchemaError> {
        match self {
            Pushed::Record { results } => Ok(results),
            Pushed::Blank => Ok(0),
            Pushed::Rejected(e) => Err(e),
        }
    }
}

/// A line the pipeline dead-lettered, kept with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// 1-based number of the line among those pushed.
    pub line: u64,
    /// Why.
    pub reason: SchemaError,
    /// The line.
    pub raw: Vec<u8>,
}

impl Rejected {
    /// The dead letter to write for it, naming `source` as the input.
    pub fn dead_letter<'a>(&'a self, source: &'a str) -> DeadLetter<'a> {
        DeadLetter::new(source, self.line, &self.reason, &self.raw)
    }
}

/// Counters of a pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Lines pushed (blank ones included).
    pub lines: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// Records taken in.
    pub records: u64,
    /// Lines dead-lettered.
    pub dead_lettered: u64,
    /// Results handed to the monitors and the observer.
    pub results: u64,
    /// Metric series rows scored ([`Pipeline::push_series_line`]).
    pub series_rows: u64,
    /// Those graded above zero.
    pub series_anomalies: u64,
}

/// How a run ended ([`Pipeline::finish`], [`Pipeline::suspend`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    /// Records left in incomplete last intervals, not scored (summed over
    /// detectors; 0 after [`Pipeline::suspend`], which keeps them for later).
    pub unscored: u64,
    /// Notifications delivered by the last try.
    pub delivered: usize,
    /// Notifications still undelivered (in the outbox, and the state).
    pub undelivered: usize,
}

/// The delivery clock, epoch ms.
type Clock = Box<dyn FnMut() -> i64>;

/// Monitors, their book and the channels that deliver.
struct Alerting {
    eval: Evaluator,
    notifiers: Vec<Box<dyn Notifier>>,
    clock: Clock,
    /// The latest end of a result seen: periods ending by it are complete at the
    /// end of a run.
    max_end: Option<i64>,
    /// Every metric series opened gets its [`Monitor::for_series`].
    series_monitors: bool,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("eval", &self.eval)
            .field(
                "notifiers",
                &self.notifiers.iter().map(|n| n.name()).collect::<Vec<_>>(),
            )
            .field("max_end", &self.max_end)
            .field("series_monitors", &self.series_monitors)
            .finish_non_exhaustive()
    }
}

impl Alerting {
    /// Sends what is due now; failures stay in the outbox.
    fn deliver_due(&mut self, observer: &mut impl ResultObserver) -> DeliveryReport {
        let now = (self.clock)();
        if self.eval.book().next_due().is_none_or(|t| t > now) {
            return DeliveryReport {
                pending: self.eval.book().outbox().len(),
                ..DeliveryReport::default()
            };
        }
        let report = crate::alert::deliver_due(self.eval.book_mut(), &mut self.notifiers, now);
        observer.delivered(&report, self.eval.book());
        report
    }

    /// Sends every delivery in the outbox now, whatever its schedule.
    fn deliver_pending(&mut self) -> DeliveryReport {
        let now = (self.clock)();
        crate::alert::deliver_pending(self.eval.book_mut(), &mut self.notifiers, now)
    }
}

/// Detection, alerting and an observer of results: see the module docs.
#[derive(Debug)]
pub struct Pipeline<O = ()> {
    engine: Engine,
    alerting: Option<Alerting>,
    /// Groups anomalies into incidents (see [`crate::alert::incident`]).
    correlator: Correlator,
    observer: O,
    pending: Vec<AnomalyResult>,
    stats: PipelineStats,
    dead: std::collections::VecDeque<Rejected>,
    keep_dead: usize,
    /// What a saved state holds besides the models and alerts (checkpoints, the
    /// records taken in before this run, S3 positions, metric series not opened
    /// in this run), carried to the next.
    carried: State,
    /// The metric series opened in this run ([`SeriesId`] indexes them).
    series: Vec<MetricSeries>,
}

/// A metric series of a [`Pipeline`] ([`Pipeline::open_series`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesId(usize);

impl Pipeline<()> {
    /// A pipeline around `engine` (new, or restored from a [`State`]), without
    /// alerting and without an observer.
    pub fn new(engine: Engine) -> Pipeline<()> {
        Pipeline {
            engine,
            alerting: None,
            correlator: Correlator::new(),
            observer: (),
            pending: Vec::new(),
            stats: PipelineStats::default(),
            dead: std::collections::VecDeque::new(),
            keep_dead: DEFAULT_KEPT_DEAD_LETTERS,
            carried: State::new(),
            series: Vec::new(),
        }
    }
}

impl<O: ResultObserver> Pipeline<O> {
    /// Hands the results to `observer` (in place of the one before).
    pub fn with_observer<P: ResultObserver>(self, observer: P) -> Pipeline<P> {
        Pipeline {
            engine: self.engine,
            alerting: self.alerting,
            correlator: self.correlator,
            observer,
            pending: self.pending,
            stats: self.stats,
            dead: self.dead,
            keep_dead: self.keep_dead,
            carried: self.carried,
            series: self.series,
        }
    }

    /// Evaluates `eval`'s monitors on every result; `notifiers` deliver what they
    /// raise, at the times `clock` gives (epoch ms; the wall clock in a live run).
    /// A saved alert book goes in `eval` first ([`Evaluator::with_book`]).
    pub fn with_alerting(
        mut self,
        eval: Evaluator,
        notifiers: Vec<Box<dyn Notifier>>,
        clock: impl FnMut() -> i64 + 'static,
    ) -> Self {
        self.alerting = Some(Alerting {
            eval,
            notifiers,
            clock: Box::new(clock),
            max_end: None,
            series_monitors: false,
        });
        self
    }

    /// With alerting, every metric series [`Pipeline::open_series`] opens is
    /// watched by its default monitor ([`Monitor::for_series`]) unless `eval` has
    /// a monitor of that name: `waflog detect --input-format csv --alerts` without
    /// `[[monitors]]`. To keep the open alerts of series saved in a state, give
    /// `eval` their monitors before its book ([`State::series`] names them).
    pub fn monitor_every_series(mut self) -> Self {
        if let Some(a) = &mut self.alerting {
            a.series_monitors = true;
        }
        self
    }

    /// Keeps the latest `n` dead letters (default [`DEFAULT_KEPT_DEAD_LETTERS`];
    /// 0 when the caller writes them out itself from [`Pushed::Rejected`]).
    pub fn keep_dead_letters(mut self, n: usize) -> Self {
        self.keep_dead = n;
        self.dead.truncate(n);
        self
    }

    /// Carries over what `state` holds besides the models and the alert book
    /// (which go in the [`Engine`] and the [`Evaluator`]): stream checkpoints, the
    /// records taken in before, S3 positions. [`Pipeline::state`] gives them back.
    pub fn with_state(mut self, mut state: State) -> Self {
        state.engine = None;
        state.alerts = None;
        if let Some(c) = state.incidents.take() {
            self.correlator = c;
        }
        self.carried = state;
        self
    }

    /// Takes in one line; see [`Pushed`]. Results of the intervals it closes go
    /// to the monitors and the observer; only the observer can fail.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Pushed, O::Error> {
        self.push_with(line, |engine, pending| engine.push_line(line, pending))
    }

    /// [`Pipeline::push_line`] for record `index` of `prepared`, made from the same
    /// bytes by the engine's extractor, perhaps on another thread (see
    /// [`Engine::push_prepared`]): the same outcome, without reading the fields again.
    pub fn push_prepared(
        &mut self,
        line: &[u8],
        prepared: &Prepared,
        index: usize,
    ) -> Result<Pushed, O::Error> {
        self.push_with(line, |engine, pending| {
            engine.push_prepared(line, prepared, index, pending)
        })
    }

    /// Counts `line`, has `push` give it to the engine unless it is blank, and
    /// hands on the results or keeps the dead letter.
    fn push_with(
        &mut self,
        line: &[u8],
        push: impl FnOnce(&mut Engine, &mut Vec<AnomalyResult>) -> Result<(), SchemaError>,
    ) -> Result<Pushed, O::Error> {
        self.stats.lines += 1;
        if line.trim_ascii().is_empty() {
            self.stats.blank += 1;
            return Ok(Pushed::Blank);
        }
        let outcome = push(&mut self.engine, &mut self.pending);
        let results = self.pending.len();
        if results > 0 {
            self.emit()?;
        }
        Ok(match outcome {
            Ok(()) => {
                self.stats.records += 1;
                Pushed::Record { results }
            }
            Err(reason) => {
                self.stats.dead_lettered += 1;
                if self.keep_dead > 0 {
                    if self.dead.len() == self.keep_dead {
                        self.dead.pop_front();
                    }
                    self.dead.push_back(Rejected {
                        line: self.stats.lines,
                        reason: reason.clone(),
                        raw: line.to_vec(),
                    });
                }
                Pushed::Rejected(reason)
            }
        })
    }

    /// [`Pipeline::push_line`] for text.
    pub fn push_str(&mut self, line: &str) -> Result<Pushed, O::Error> {
        self.push_line(line.as_bytes())
    }

    /// The metric series `name`, scored by `algorithm`: resumed from the state
    /// given to [`Pipeline::with_state`] when it holds a series of that name, else
    /// new; a name opened before in this run is the same series (a file and the
    /// one rotated after it continue one model). Watched by its own monitor after
    /// [`Pipeline::monitor_every_series`]. An error when the saved series (or the
    /// one already open) has another algorithm, or its model cannot be read, or
    /// `name` is empty while every series gets a monitor.
    pub fn open_series(
        &mut self,
        name: &str,
        algorithm: AlgorithmSpec,
    ) -> Result<SeriesId, DetectError> {
        if let Some(i) = self.series.iter().position(|s| s.name() == name) {
            if *self.series[i].algorithm() != algorithm {
                return Err(DetectError::StateMismatch {
                    reason: format!("series {name} is already scored by another algorithm"),
                });
            }
            return Ok(SeriesId(i));
        }
        let series = match self.carried.series.remove(name) {
            Some(saved) => MetricSeries::restore(name, algorithm, saved)?,
            None => MetricSeries::new(name, algorithm),
        };
        if let Some(a) = self.alerting.as_mut().filter(|a| a.series_monitors) {
            a.eval.add_monitor(&Monitor::for_series(name))?;
        }
        self.series.push(series);
        Ok(SeriesId(self.series.len() - 1))
    }

    /// Takes in one line of a metric series (a CSV row): its result goes to the
    /// monitors and the observer. `Ok(Ok(n))`: `n` results (0 for a header, a
    /// blank line, or a row scored before the state was saved); `Ok(Err(e))`: the
    /// row is not one, or not UTF-8 (the caller dead-letters it; the series goes
    /// on). Only the observer can fail.
    pub fn push_series_line(
        &mut self,
        id: SeriesId,
        line: &[u8],
    ) -> Result<Result<usize, SchemaError>, O::Error> {
        let Some(series) = self.series.get_mut(id.0) else {
            return Ok(Err(SchemaError::InvalidField(format!(
                "no metric series {} in this pipeline",
                id.0
            ))));
        };
        let text = match std::str::from_utf8(line) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Err(SchemaError::InvalidUtf8 {
                    at: e.valid_up_to(),
                }));
            }
        };
        match series.push_line(text) {
            Ok(result) => {
                if let Some(r) = &result {
                    self.stats.series_rows += 1;
                    self.stats.series_anomalies += u64::from(r.anomaly_grade > 0.0);
                }
                self.push_results(result).map(Ok)
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// A metric series opened in this run.
    pub fn series(&self, id: SeriesId) -> Option<&MetricSeries> {
        self.series.get(id.0)
    }

    /// Hands results made elsewhere (a metric series) to the monitors and the
    /// observer, as if the engine had made them. Returns how many.
    pub fn push_results(
        &mut self,
        results: impl IntoIterator<Item = AnomalyResult>,
    ) -> Result<usize, O::Error> {
        self.pending.extend(results);
        let n = self.pending.len();
        if n > 0 {
            self.emit()?;
        }
        Ok(n)
    }

    /// The input has been idle for `idle_ms` of wall-clock time: event time is
    /// taken to be that much past the latest record, and what that closes is
    /// scored and handed on. Returns how many results.
    pub fn tick(&mut self, idle_ms: i64) -> Result<usize, O::Error> {
        match self.engine.max_event_ms() {
            Some(max) => self.advance_to(max.saturating_add(idle_ms)),
            None => Ok(0),
        }
    }

    /// Moves event time to at least `event_ms` and hands on what closes.
    pub fn advance_to(&mut self, event_ms: i64) -> Result<usize, O::Error> {
        self.engine.advance_to(event_ms, &mut self.pending);
        let n = self.pending.len();
        if n > 0 {
            self.emit()?;
        }
        Ok(n)
    }

    /// A responder's acknowledgement of alert `id` (or a unique ID prefix) at
    /// `at_ms` (the alerting clock). Without a label the alert stops re-notifying
    /// and still completes as usual ([`AlertBook::acknowledge`]). With
    /// [`Label::NotAnomaly`] it completes now with that label, as do the alerts
    /// merged into it ([`Evaluator::close_not_anomaly`]); each one's detector
    /// learns the values it last fired on as normal, at full weight
    /// ([`Engine::learn_normal`]); an open incident of theirs takes the label; the
    /// observer sees the notification and the [`Feedback`]. Returns the feedback,
    /// one per alert changed.
    ///
    /// Errors: no alerting, an unknown or ambiguous ID, an alert no longer open.
    pub fn acknowledge(
        &mut self,
        id: &str,
        at_ms: i64,
        label: Option<Label>,
    ) -> Result<Vec<Feedback>, AlertError> {
        let Some(alerting) = self.alerting.as_mut() else {
            return Err(AlertError::AlertingOff { id: id.to_string() });
        };
        let Some(label) = label else {
            let alert = alerting.eval.book_mut().acknowledge(id, at_ms)?.clone();
            let feedback = vec![Feedback {
                alert,
                label: None,
                learnt: false,
            }];
            self.observer.feedback(&feedback);
            return Ok(feedback);
        };
        let (closed, notes) = alerting.eval.close_not_anomaly(id, at_ms)?;
        let mut feedback = Vec::with_capacity(closed.len());
        for alert in closed {
            let values: Vec<(String, f64)> = alert
                .explanation
                .as_ref()
                .and_then(|e| e.anomaly.as_ref())
                .map(|d| {
                    d.features
                        .iter()
                        .map(|f| (f.feature.clone(), f.actual))
                        .collect()
                })
                .unwrap_or_default();
            let end = alert.last_fired.unwrap_or(alert.start_time);
            let learnt =
                self.engine
                    .learn_normal(&alert.detector, alert.entity.as_deref(), &values, end);
            if let Some(inc) = &alert.incident_id {
                self.correlator.label(inc, label);
            }
            feedback.push(Feedback {
                alert,
                label: Some(label),
                learnt,
            });
        }
        if !notes.is_empty() {
            self.observer.notifications(&notes);
        }
        self.observer.feedback(&feedback);
        self.deliver();
        Ok(feedback)
    }

    /// Sends the notifications due now (by the alerting clock), for retries while
    /// no result comes; `None` without alerting.
    pub fn deliver(&mut self) -> Option<DeliveryReport> {
        let observer = &mut self.observer;
        self.alerting.as_mut().map(|a| a.deliver_due(observer))
    }

    /// Sends every notification in the outbox now, whatever its retry schedule
    /// (a new run after an outage); `None` without alerting.
    pub fn deliver_pending(&mut self) -> Option<DeliveryReport> {
        self.alerting.as_mut().map(Alerting::deliver_pending)
    }

    /// The end of the input: scores every interval complete in event time, then
    /// as [`Pipeline::suspend`].
    pub fn finish(&mut self) -> Result<Finished, O::Error> {
        let unscored = self.engine.finish(&mut self.pending);
        self.emit()?;
        let open = self.correlator.close_all();
        self.hand_on_incidents(open);
        self.end(unscored)
    }

    /// The end of this run's input when a later run resumes from its [`State`]:
    /// scores only the intervals ready to close (open ones stay in the state),
    /// flushes the observer, completes the alert periods that ended by the last
    /// result and tries every undelivered notification once more.
    pub fn suspend(&mut self) -> Result<Finished, O::Error> {
        self.engine.close_ready_intervals(&mut self.pending);
        self.end(0)
    }

    fn end(&mut self, unscored: u64) -> Result<Finished, O::Error> {
        self.emit()?;
        self.observer.flush()?;
        let mut done = Finished {
            unscored,
            ..Finished::default()
        };
        if let Some(a) = &mut self.alerting {
            if let Some(end) = a.max_end {
                let notes = a.eval.advance_to(end);
                self.observer.notifications(&notes);
            }
            a.deliver_due(&mut self.observer);
            done.delivered = a.deliver_pending().delivered;
            done.undelivered = a.eval.book().outbox().len();
        }
        Ok(done)
    }

    /// Closed incidents to the observer, with the alerts that notified them.
    fn hand_on_incidents(&mut self, mut closed: Vec<Incident>) {
        if closed.is_empty() {
            return;
        }
        if let Some(a) = &self.alerting {
            for inc in &mut closed {
                inc.alert_id = a
                    .eval
                    .book()
                    .incident_alert(&inc.incident_id)
                    .map(|al| al.id.clone());
            }
        }
        self.observer.incidents(&closed);
    }

    /// Results to the correlator (incidents), the monitors (delivering what is
    /// due), then to the observer.
    fn emit(&mut self) -> Result<(), O::Error> {
        let closed = self.correlator.correlate(&mut self.pending);
        if let Some(a) = &mut self.alerting {
            // Per detector in the batch (first result, latest end): the engine scores
            // an interval for all of a detector's entities in one step, so once the
            // batch is observed its monitors' periods that end by then are complete.
            let mut fed: Vec<(usize, i64)> = Vec::new();
            for (i, r) in self.pending.iter().enumerate() {
                a.max_end = Some(
                    a.max_end
                        .map_or(r.data_end_time, |m| m.max(r.data_end_time)),
                );
                let incident = r
                    .incident_id
                    .as_deref()
                    .and_then(|id| self.correlator.get(id));
                let notes = a.eval.observe_in(r, incident);
                if !notes.is_empty() {
                    self.observer.notifications(&notes);
                }
                // A detector's results come together (an interval of all its
                // entities at once): its entry is almost always the last one.
                let name = &r.detector_name;
                match fed
                    .iter_mut()
                    .rev()
                    .find(|(j, _)| self.pending[*j].detector_name == *name)
                {
                    Some((_, end)) => *end = (*end).max(r.data_end_time),
                    None => fed.push((i, r.data_end_time)),
                }
            }
            for (i, end) in fed {
                let notes = a.eval.fed_through(&self.pending[i].detector_name, end);
                if !notes.is_empty() {
                    self.observer.notifications(&notes);
                }
            }
            a.deliver_due(&mut self.observer);
        }
        self.stats.results += self.pending.len() as u64;
        let outcome = self
            .observer
            .results(&self.pending, self.alerting.as_ref().map(|a| a.eval.book()));
        self.pending.clear();
        outcome?;
        self.hand_on_incidents(closed);
        Ok(())
    }

    /// Every line of the input to the stream position `sequence` of `shard`
    /// (`stream/shard`) has been pushed: saved with the models in the [`State`].
    pub fn checkpoint(&mut self, shard: String, sequence: String) {
        self.carried.checkpoints.insert(shard, sequence);
    }

    /// The checkpoints of `stream`'s shards (shard -> sequence number).
    pub fn stream_checkpoints(&self, stream: &str) -> BTreeMap<String, String> {
        self.carried.stream_checkpoints(stream)
    }

    /// Everything to save now for a later run: models and open intervals, the
    /// alert book and outbox, checkpoints, the records taken in so far.
    pub fn state(&self) -> State {
        let mut s = self.carried.clone();
        s.engine = Some(self.engine.snapshot());
        s.records = self.carried.records + self.engine.stats().records;
        s.alerts = self.alerting.as_ref().map(|a| a.eval.book().clone());
        s.incidents = Some(self.correlator.clone());
        for series in &self.series {
            s.series
                .insert(series.name().to_string(), series.snapshot());
        }
        s
    }

    /// The open incidents (see [`crate::alert::incident`]).
    pub fn incidents(&self) -> &[Incident] {
        self.correlator.open()
    }

    /// Records the models took in before this run (from the state carried over).
    pub fn records_before(&self) -> u64 {
        self.carried.records
    }

    /// The counters.
    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    /// The latest dead letters (see [`Pipeline::keep_dead_letters`]), oldest first.
    pub fn dead_letters(&self) -> impl Iterator<Item = &Rejected> {
        self.dead.iter()
    }

    /// Takes the dead letters kept so far.
    pub fn take_dead_letters(&mut self) -> Vec<Rejected> {
        self.dead.drain(..).collect()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to feed it history whose results are not wanted.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The observer, mutably.
    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// The observer and the alert book together (to show acknowledgements).
    pub fn observer_and_alerts(&mut self) -> (&mut O, Option<&mut AlertBook>) {
        (
            &mut self.observer,
            self.alerting.as_mut().map(|a| a.eval.book_mut()),
        )
    }

    /// The alert book (alerts, outbox), when alerting is on.
    pub fn alerts(&self) -> Option<&AlertBook> {
        self.alerting.as_ref().map(|a| a.eval.book())
    }

    /// The alert book, mutably (acknowledgements).
    pub fn alerts_mut(&mut self) -> Option<&mut AlertBook> {
        self.alerting.as_mut().map(|a| a.eval.book_mut())
    }
}

#[cfg(test)]
mod tests;
