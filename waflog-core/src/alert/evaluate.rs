//! The [`Evaluator`]: runs the configured monitors over the stream of anomaly results
//! and keeps the [`AlertBook`].
//!
//! Periods are event time, aligned to the epoch (`[k * period, (k + 1) * period)`).
//! A monitor's period closes when a result of its detector for a later period arrives,
//! when the caller says every result of its detector through the period's end has
//! been fed ([`Evaluator::fed_through`]), or when the caller's watermark passes its
//! end ([`Evaluator::advance_to`]). Each
//! closed period is evaluated once, in order, per trigger (and entity):
//!
//! - fired, no open alert: a new ACTIVE alert and a `Fired` notification;
//! - fired, alert ACTIVE: no message, unless the trigger's throttle has passed since
//!   the last one (`Renotify`, with the periods it has been active); while an alert
//!   is open its trigger also fires on grades from half its `min_grade` (hysteresis:
//!   an episode whose grade hovers around `min_grade` stays one alert);
//! - fired, alert ACKNOWLEDGED: nothing;
//! - not fired: one more quiet period; at `complete_after` consecutive quiet periods
//!   the alert is COMPLETED (`Completed` notification) and moves to the history;
//!   when the detector's intervals are shorter than the period, quiet counts in
//!   intervals instead: at the end of any period (fired or not) an open alert whose
//!   trigger has not fired for `complete_after` intervals completes, so a 10-minute
//!   monitor on one-minute results completes minutes after an episode ends;
//! - a result of the period accepted a sustained shift as the new normal
//!   ([`AnomalyResult::shift_accepted`]): one `Accepted` notification on the open
//!   alert saying so (it then completes as usual when the monitor stops firing);
//!   that period opens no new alert.
//!
//! Periods without any result (a gap in the stream) are evaluated as empty. At most
//! [`MAX_CATCH_UP`] periods are evaluated per call; beyond, the monitor jumps ahead.

use std::path::Path;

use super::book::{
    Alert, AlertBook, AlertIssue, AlertKey, AlertState, Candidate, IssueSource, Keyed,
    Notification, NotificationKind, Slot,
};
use super::config::{
    Channel, Condition, Detectors, Monitor, MonitorInput, QueryAggregation, duration, validate,
};
use super::explain::{Explanation, QueryValue};
use super::label::Label;
use super::template::{Placeholder, Template, TemplateSlot};
use crate::Config;
use crate::detect::{AnomalyResult, DetectorSpec};
use crate::error::{AlertError, ConfigError};
use crate::timestamp::to_rfc3339;

/// Most periods of one monitor evaluated in one call (a gap of a week of one-minute
/// periods); beyond, the monitor skips to the present without evaluating.
pub const MAX_CATCH_UP: u32 = 10_080;

#[derive(Debug, Clone)]
struct CompiledTrigger {
    name: String,
    severity: u8,
    condition: Condition,
    channels: Vec<String>,
    throttle_ms: Option<i64>,
    complete_after: u32,
    message: Template,
    subject: Template,
}

#[derive(Debug, Clone)]
struct CompiledQuery {
    feature: String,
    aggregation: QueryAggregation,
    window_ms: i64,
}

#[derive(Debug, Clone)]
struct CompiledMonitor {
    name: String,
    detector: String,
    entity: Option<String>,
    query: Option<CompiledQuery>,
    period_ms: Option<i64>,
    triggers: Vec<CompiledTrigger>,
    signature: String,
}

/// Runs monitors over anomaly results; holds the [`AlertBook`].
#[derive(Debug, Clone)]
pub struct Evaluator {
    monitors: Vec<CompiledMonitor>,
    channels: Vec<Channel>,
    book: AlertBook,
}

/// The entity key of a result: its value(s) joined with `,`.
pub fn entity_key(r: &AnomalyResult) -> Option<String> {
    r.entity.as_ref().map(|e| {
        e.iter()
            .map(|v| v.value.as_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

impl Evaluator {
    /// An evaluator of `monitors` notifying `channels`, with an empty book. The
    /// detectors are not known here: a period left to its default takes the length
    /// of the first result's interval. Prefer [`Evaluator::from_config`].
    pub fn new(monitors: &[Monitor], channels: &[Channel]) -> Result<Evaluator, ConfigError> {
        Evaluator::build(
            monitors,
            channels,
            Detectors::Unchecked,
            Path::new("<alerting>"),
        )
    }

    /// The evaluator of a configuration's `[[monitors]]` and `[[channels]]` (or the
    /// default channels), checked against its detectors.
    pub fn from_config(config: &Config) -> Result<Evaluator, ConfigError> {
        let specs = config.detector_specs();
        Evaluator::build(
            &config.monitors,
            &config.channel_specs(),
            Detectors::Exactly(&specs),
            &Config::builtin_path(),
        )
    }

    fn build(
        monitors: &[Monitor],
        channels: &[Channel],
        detectors: Detectors<'_>,
        path: &Path,
    ) -> Result<Evaluator, ConfigError> {
        validate(monitors, channels, detectors, path)?;
        let mut eval = Evaluator {
            monitors: Vec::with_capacity(monitors.len()),
            channels: channels.to_vec(),
            book: AlertBook::new(),
        };
        for (i, m) in monitors.iter().enumerate() {
            let compiled = eval.compile(i, m, detectors, path)?;
            eval.monitors.push(compiled);
        }
        Ok(eval)
    }

    /// Adds monitor `m` (a metric series' [`Monitor::for_series`], as the series
    /// opens) unless one of that name is evaluated already. Its saved state in the
    /// book, if any, was dropped by [`Evaluator::with_book`] unless `m` was among
    /// the monitors then. Returns whether it was added.
    pub fn add_monitor(&mut self, m: &Monitor) -> Result<bool, ConfigError> {
        if self.monitors.iter().any(|c| c.name == m.name) {
            return Ok(false);
        }
        let path = Path::new("<alerting>");
        validate(
            std::slice::from_ref(m),
            &self.channels,
            Detectors::Unchecked,
            path,
        )?;
        let compiled = self.compile(self.monitors.len(), m, Detectors::Unchecked, path)?;
        self.monitors.push(compiled);
        Ok(true)
    }

    /// Monitor `m` (the `i`th, for messages), validated, ready to evaluate.
    fn compile(
        &self,
        i: usize,
        m: &Monitor,
        detectors: Detectors<'_>,
        path: &Path,
    ) -> Result<CompiledMonitor, ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let period_ms = match &m.period {
            Some(p) => Some(
                duration(p, 1, i64::MAX)
                    .map_err(|e| invalid(format!("monitors[{i}].period"), e))?,
            ),
            None => match detectors {
                Detectors::Unchecked => None,
                Detectors::Exactly(d) | Detectors::OrSeries(d) => d
                    .iter()
                    .find(|s| s.name == m.detector())
                    .map(DetectorSpec::interval),
            },
        };
        let (entity, query) = match &m.input {
            MonitorInput::Detector { entity, .. } => (entity.clone(), None),
            MonitorInput::Query(q) => (
                None,
                Some(CompiledQuery {
                    feature: q.feature.clone(),
                    aggregation: q.aggregation,
                    window_ms: duration(&q.window, 1, i64::MAX)
                        .map_err(|e| invalid(format!("monitors[{i}].query.window"), e))?,
                }),
            ),
        };
        let mut triggers = Vec::with_capacity(m.triggers.len());
        for (j, t) in m.triggers.iter().enumerate() {
            let at = |f: &str| format!("monitors[{i}].triggers[{j}].{f}");
            let template = |text: &Option<String>, slot, field: &str| match text {
                Some(s) => Template::parse(s, slot).map_err(|e| invalid(at(field), e)),
                None => Ok(match slot {
                    TemplateSlot::Message => Template::default_message(),
                    TemplateSlot::Subject => Template::default_subject(),
                }),
            };
            triggers.push(CompiledTrigger {
                name: t.name.clone(),
                severity: t.severity,
                condition: t.condition,
                channels: t.actions.clone().unwrap_or_else(|| {
                    self.channels.iter().map(|c| c.name().to_string()).collect()
                }),
                throttle_ms: match &t.throttle {
                    Some(th) => {
                        Some(duration(th, 1, i64::MAX).map_err(|e| invalid(at("throttle"), e))?)
                    }
                    None => None,
                },
                complete_after: t.complete_after.max(1),
                message: template(&t.message, TemplateSlot::Message, "message")?,
                subject: template(&t.subject, TemplateSlot::Subject, "subject")?,
            });
        }
        Ok(CompiledMonitor {
            name: m.name.clone(),
            detector: m.detector().to_string(),
            signature: format!(
                "{}|{:?}|{:?}|{:?}",
                m.detector(),
                entity,
                m.input,
                period_ms
            ),
            entity,
            query,
            period_ms,
            triggers,
        })
    }

    /// Continues from a saved book. Monitors whose detector, input or period changed
    /// start their periods afresh; open alerts of monitors or triggers no longer
    /// configured are completed without notification.
    pub fn with_book(mut self, book: AlertBook) -> Result<Evaluator, AlertError> {
        book.check_version()?;
        self.book = book;
        let monitors = &self.monitors;
        self.book.monitors.retain(|name, st| {
            monitors
                .iter()
                .any(|m| &m.name == name && m.signature == st.signature)
        });
        let gone: Vec<AlertKey> = self
            .book
            .open
            .keys()
            .filter(|(m, t, _)| {
                !monitors
                    .iter()
                    .any(|cm| &cm.name == m && cm.triggers.iter().any(|ct| &ct.name == t))
            })
            .cloned()
            .collect();
        for key in gone {
            if let Some(mut a) = self.book.open.remove(&key) {
                a.lifecycle = AlertState::Completed;
                a.end_time = Some(a.last_fired.unwrap_or(a.start_time));
                self.book.archive(a);
            }
        }
        Ok(self)
    }

    /// The alert state.
    pub fn book(&self) -> &AlertBook {
        &self.book
    }

    /// The alert state, to acknowledge alerts or record deliveries.
    pub fn book_mut(&mut self) -> &mut AlertBook {
        &mut self.book
    }

    /// A responder's verdict that open alert `id` (or a unique prefix) was not an
    /// anomaly: it completes with [`Label::NotAnomaly`] and one `Completed`
    /// notification saying so, and so do the alerts merged into it (its incident's
    /// other alerts, silently). Returns the alerts it closed, lead first, and the
    /// notification (also queued in the outbox). The detectors are told by
    /// [`crate::pipeline::Pipeline::acknowledge`].
    pub fn close_not_anomaly(
        &mut self,
        id: &str,
        at_ms: i64,
    ) -> Result<(Vec<Alert>, Vec<Notification>), AlertError> {
        let found = self.book.get(id)?;
        let (full, key) = (found.id.clone(), found.key());
        if self.book.open.get(&key).is_none_or(|a| a.id != full) {
            let state = found.state().to_string();
            return Err(AlertError::NotOpen { id: full, state });
        }
        let mut keys = vec![key];
        keys.extend(
            self.book
                .open
                .iter()
                .filter(|(_, a)| a.merged_into.as_deref() == Some(full.as_str()))
                .map(|(k, _)| k.clone()),
        );
        let (mut closed, mut out) = (Vec::new(), Vec::new());
        for k in keys {
            let Some(mut a) = self.book.open.remove(&k) else {
                continue;
            };
            let end = a.last_fired.unwrap_or(a.start_time);
            a.label = Some(Label::NotAnomaly);
            a.lifecycle = AlertState::Completed;
            a.acknowledged_time.get_or_insert(at_ms);
            a.end_time = Some(end);
            let compiled = self
                .monitors
                .iter()
                .find(|m| m.name == a.monitor)
                .and_then(|m| {
                    m.triggers
                        .iter()
                        .find(|t| t.name == a.trigger)
                        .map(|t| (m, t))
                });
            if let Some((m, t)) = compiled
                && a.merged_into.is_none()
            {
                let n = render(m, t, &a, NotificationKind::Completed, (a.start_time, end));
                a.notifications = a.notifications.saturating_add(1);
                if !n.channels.is_empty() {
                    self.book.enqueue(&n);
                }
                out.push(n);
            }
            closed.push(a.clone());
            self.book.archive(a);
        }
        Ok((closed, out))
    }

    /// The alert state, to save it.
    pub fn into_book(self) -> AlertBook {
        self.book
    }

    /// The channels notifications can go to.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Feeds one result (of any detector, in non-decreasing interval order per
    /// detector). Returns the notifications of the periods this closed; they are also
    /// queued in the book's outbox, one delivery per channel.
    pub fn observe(&mut self, r: &AnomalyResult) -> Vec<Notification> {
        self.observe_in(r, None)
    }

    /// [`Evaluator::observe`] for a result of `incident` (its `incident_id`'s, as
    /// the [`crate::alert::Correlator`] holds it): the monitors alert on the
    /// incident. The first alert of an incident notifies it (its explanation
    /// names the cause and lists every detector and feature it moved); alerts of
    /// other monitors on it are merged into that one (no notification of their own,
    /// see [`Alert::merged_into`]), and it stays open until they complete.
    pub fn observe_in(
        &mut self,
        r: &AnomalyResult,
        incident: Option<&crate::alert::Incident>,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for m in &self.monitors {
            if m.detector == r.detector_name {
                observe_one(m, &mut self.book, r, incident, &mut out);
            }
        }
        out
    }

    /// Every result of `detector` for intervals ending at or before `end` has been
    /// fed: evaluates the periods of that detector's monitors that end by then, so
    /// a period's alert goes out as soon as its last interval is scored rather than
    /// when a result of the next interval arrives. The engine scores an interval for
    /// all of a detector's entities at once, so a caller knows this after handing on
    /// the results of one scoring step ([`crate::pipeline::Pipeline`] does).
    pub fn fed_through(&mut self, detector: &str, end: i64) -> Vec<Notification> {
        self.close_monitors(end, |m| m.detector == detector)
    }

    /// The watermark: every result for intervals ending at or before `ms` has been
    /// fed. Evaluates every period that ends by then.
    pub fn advance_to(&mut self, ms: i64) -> Vec<Notification> {
        self.close_monitors(ms, |_| true)
    }

    /// Evaluates the periods ending by `end` of the monitors that `which` picks.
    fn close_monitors(
        &mut self,
        end: i64,
        which: impl Fn(&CompiledMonitor) -> bool,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for m in self.monitors.iter().filter(|m| which(m)) {
            close_through(m, &mut self.book, end, &mut out);
        }
        out
    }

    /// A test notification for `channel` (`waflog alerts test --channel NAME`): the
    /// first trigger that notifies the channel, rendered with its templates and no
    /// data. It is not queued: send it directly.
    pub fn test_notification(&self, channel: &str, at_ms: i64) -> Result<Notification, AlertError> {
        if !self.channels.iter().any(|c| c.name() == channel) {
            return Err(AlertError::UnknownChannel {
                name: channel.into(),
                known: self
                    .channels
                    .iter()
                    .map(Channel::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let found = self.monitors.iter().find_map(|m| {
            m.triggers
                .iter()
                .find(|t| t.channels.iter().any(|c| c == channel))
                .map(|t| (m, t))
        });
        let fallback_monitor;
        let fallback_trigger;
        let (m, t) = match found {
            Some(mt) => mt,
            None => {
                fallback_trigger = CompiledTrigger {
                    name: "waflog-test-trigger".into(),
                    severity: 5,
                    condition: Condition::default(),
                    channels: vec![],
                    throttle_ms: None,
                    complete_after: 1,
                    message: Template::default_message(),
                    subject: Template::default_subject(),
                };
                fallback_monitor = CompiledMonitor {
                    name: "waflog-test-monitor".into(),
                    detector: "none".into(),
                    entity: None,
                    query: None,
                    period_ms: None,
                    triggers: vec![],
                    signature: String::new(),
                };
                (&fallback_monitor, &fallback_trigger)
            }
        };
        let period = m.period_ms.unwrap_or(60_000);
        let alert = Alert {
            id: "test".into(),
            monitor: m.name.clone(),
            trigger: t.name.clone(),
            severity: t.severity,
            detector: m.detector.clone(),
            entity: m.entity.clone(),
            lifecycle: AlertState::Active,
            error: None,
            start_time: at_ms.saturating_sub(period),
            last_fired: Some(at_ms),
            end_time: None,
            acknowledged_time: None,
            periods_active: 1,
            quiet_periods: 0,
            last_notified: None,
            notifications: 0,
            deliveries: 0,
            last_delivery: None,
            failures: 0,
            lost: 0,
            explanation: None,
            incident_id: None,
            merged_into: None,
            label: None,
        };
        let mut n = render(
            m,
            t,
            &alert,
            NotificationKind::Test,
            (alert.start_time, at_ms),
        );
        n.channels = vec![channel.to_string()];
        Ok(n)
    }
}

fn period_start(ms: i64, period: i64) -> i64 {
    ms.div_euclid(period) * period
}

fn observe_one(
    m: &CompiledMonitor,
    book: &mut AlertBook,
    r: &AnomalyResult,
    incident: Option<&crate::alert::Incident>,
    out: &mut Vec<Notification>,
) {
    let st = book.monitors.entry(m.name.clone()).or_default();
    if st.period_ms <= 0 {
        st.signature.clone_from(&m.signature);
        st.period_ms = m
            .period_ms
            .unwrap_or(r.data_end_time.saturating_sub(r.data_start_time));
    }
    let period = st.period_ms;
    if period <= 0 {
        book.stats.ignored_results += 1;
        return;
    }
    let interval = r.data_end_time.saturating_sub(r.data_start_time);
    if interval > 0 {
        st.interval_ms = interval;
    }
    let p = period_start(r.data_start_time, period);
    match st.next_start {
        None => st.next_start = Some(p),
        Some(n) if p < n => {
            book.stats.late_results += 1;
            return;
        }
        Some(n) if p > n => close_through(m, book, p, out),
        Some(_) => {}
    }
    let Some(st) = book.monitors.get_mut(&m.name) else {
        return;
    };
    match &m.query {
        None => {
            let entity = entity_key(r);
            if m.entity.is_some() && entity != m.entity {
                return;
            }
            if r.shift_accepted {
                st.accepted.insert(entity.clone());
            }
            for t in &m.triggers {
                let Condition::Anomaly {
                    min_grade,
                    min_confidence,
                } = t.condition
                else {
                    continue;
                };
                // Hysteresis: an open alert keeps firing while the detector still
                // grades the interval at half the trigger's grade, so an episode whose
                // grade hovers around `min_grade` stays one alert.
                let open = || {
                    book.open
                        .contains_key(&(m.name.clone(), t.name.clone(), entity.clone()))
                };
                let grade_ok = r.anomaly_grade >= min_grade
                    || (r.anomaly_grade > 0.0 && r.anomaly_grade >= min_grade / 2.0 && open());
                if !(grade_ok && r.confidence >= min_confidence) {
                    continue;
                }
                let key = (t.name.clone(), entity.clone());
                match st.candidates.get_mut(&key) {
                    Some(c) => {
                        c.last_at = Some(
                            c.last_at
                                .map_or(r.data_end_time, |l| l.max(r.data_end_time)),
                        );
                        if r.anomaly_grade > c.grade {
                            c.grade = r.anomaly_grade;
                            c.explanation = Explanation::in_incident(r, incident);
                        }
                    }
                    None => {
                        st.candidates.insert(
                            key,
                            Candidate {
                                trigger: t.name.clone(),
                                entity: entity.clone(),
                                grade: r.anomaly_grade,
                                explanation: Explanation::in_incident(r, incident),
                                last_at: Some(r.data_end_time),
                            },
                        );
                    }
                }
            }
        }
        Some(q) => {
            let value = r
                .feature_data
                .iter()
                .find(|f| f.feature_name == q.feature || f.feature_id == q.feature)
                .map(|f| f.data);
            let value = match value {
                Some(v) if v.is_finite() => v,
                other => {
                    if st.error.is_none() {
                        let at = to_rfc3339(r.data_start_time);
                        st.error = Some(match other {
                            Some(v) => format!(
                                "feature `{}` of {} at {at} is {v}, not a number",
                                q.feature, r.detector_name
                            ),
                            None => format!(
                                "the result of {} at {at} has no feature `{}` (it has: {})",
                                r.detector_name,
                                q.feature,
                                r.feature_data
                                    .iter()
                                    .map(|f| f.feature_name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                    return;
                }
            };
            let top = (r.anomaly_grade > 0.0 && r.anomaly_grade.is_finite())
                .then(|| (r.anomaly_grade, Explanation::in_incident(r, incident)));
            match st.window.back_mut() {
                Some(s) if s.start == r.data_start_time && s.end == r.data_end_time => {
                    s.sum += value;
                    s.count += 1;
                    s.min = s.min.min(value);
                    s.max = s.max.max(value);
                    if let Some((g, e)) = top
                        && s.top.as_ref().is_none_or(|(best, _)| g > *best)
                    {
                        s.top = Some((g, e));
                    }
                }
                _ => st.window.push_back(Slot {
                    start: r.data_start_time,
                    end: r.data_end_time,
                    sum: value,
                    count: 1,
                    min: value,
                    max: value,
                    top,
                }),
            }
        }
    }
}

/// Evaluates every pending period of `m` that ends by `end_limit`.
fn close_through(
    m: &CompiledMonitor,
    book: &mut AlertBook,
    end_limit: i64,
    out: &mut Vec<Notification>,
) {
    let mut evaluated = 0u32;
    loop {
        let has_open = book
            .open
            .range((m.name.clone(), String::new(), None)..)
            .next()
            .is_some_and(|((name, _, _), _)| name == &m.name);
        let Some(st) = book.monitors.get_mut(&m.name) else {
            return;
        };
        let period = st.period_ms;
        let Some(start) = st.next_start else {
            return;
        };
        if period <= 0 || start.saturating_add(period) > end_limit {
            return;
        }
        let idle = m.query.is_none() && st.candidates.is_empty() && !has_open;
        if idle || evaluated >= MAX_CATCH_UP {
            // Nothing can change until a result arrives: skip to the last period that
            // ends by `end_limit`.
            let skip = end_limit.saturating_sub(start) / period;
            let next = start.saturating_add(skip.saturating_mul(period));
            st.next_start = Some(next);
            st.candidates.clear();
            st.accepted.clear();
            if let Some(q) = &m.query {
                let horizon = next.saturating_sub(q.window_ms);
                st.window.retain(|s| s.end > horizon);
            }
            return;
        }
        let end = start.saturating_add(period);
        st.next_start = Some(end);
        evaluate_period(m, book, (start, end), out);
        evaluated += 1;
    }
}

/// What one period says for one trigger and entity.
enum Verdict {
    /// Fired, with the end of the latest firing result in the period.
    Fired(Box<Explanation>, i64),
    Quiet,
    Failed(String),
}

/// A candidate's verdict: fired, last at its latest result's end (the period's end
/// when not recorded, as in states written before it was).
fn fired(c: Candidate, period: (i64, i64)) -> Verdict {
    let at = c.last_at.unwrap_or(period.1);
    Verdict::Fired(Box::new(c.explanation), at)
}

/// The detector took the level of the open alert `key` as the new normal: one
/// `Accepted` notification (not for an alert in ERROR).
fn notify_accepted(
    m: &CompiledMonitor,
    t: &CompiledTrigger,
    book: &mut AlertBook,
    key: &AlertKey,
    period: (i64, i64),
    out: &mut Vec<Notification>,
) {
    let Some(a) = book.open.get_mut(key) else {
        return;
    };
    if a.lifecycle == AlertState::Error || a.merged_into.is_some() {
        return;
    }
    let n = render(m, t, a, NotificationKind::Accepted, period);
    a.notifications = a.notifications.saturating_add(1);
    if !n.channels.is_empty() {
        book.enqueue(&n);
    }
    out.push(n);
}

fn evaluate_period(
    m: &CompiledMonitor,
    book: &mut AlertBook,
    period: (i64, i64),
    out: &mut Vec<Notification>,
) {
    let Some(st) = book.monitors.get_mut(&m.name) else {
        return;
    };
    match &m.query {
        None => {
            let mut candidates = std::mem::take(&mut st.candidates);
            let accepted = std::mem::take(&mut st.accepted);
            for t in &m.triggers {
                let open: Vec<AlertKey> = book
                    .open
                    .range((m.name.clone(), t.name.clone(), None)..)
                    .take_while(|((mn, tn, _), _)| mn == &m.name && tn == &t.name)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in open {
                    let verdict = match candidates.remove(&(t.name.clone(), key.2.clone())) {
                        Some(c) => fired(c, period),
                        None => Verdict::Quiet,
                    };
                    let shift = accepted.contains(&key.2);
                    apply(m, t, book, key.clone(), verdict, period, out);
                    if shift {
                        notify_accepted(m, t, book, &key, period, out);
                    }
                }
                // A period that accepted a shift opens no alert for that entity.
                let firing: Vec<Candidate> = candidates
                    .iter()
                    .filter(|((tn, e), _)| tn == &t.name && !accepted.contains(e))
                    .map(|(_, c)| c.clone())
                    .collect();
                for c in firing {
                    candidates.remove(&(c.trigger.clone(), c.entity.clone()));
                    let key = (m.name.clone(), t.name.clone(), c.entity.clone());
                    apply(m, t, book, key, fired(c, period), period, out);
                }
            }
        }
        Some(q) => {
            let error = st.error.take();
            let horizon = period.1.saturating_sub(q.window_ms);
            let in_window = || {
                st.window
                    .iter()
                    .filter(|s| s.end > horizon && s.end <= period.1)
            };
            let count: u64 = in_window().map(|s| s.count).sum();
            let sum: f64 = in_window().map(|s| s.sum).sum();
            let value = match q.aggregation {
                QueryAggregation::Sum => Some(sum),
                QueryAggregation::Count => Some(count as f64),
                QueryAggregation::Avg => (count > 0).then(|| sum / count as f64),
                QueryAggregation::Max => in_window().map(|s| s.max).reduce(f64::max),
                QueryAggregation::Min => in_window().map(|s| s.min).reduce(f64::min),
            };
            let top = in_window()
                .filter_map(|s| s.top.as_ref())
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, e)| e.clone());
            st.window.retain(|s| s.end > horizon);
            for t in &m.triggers {
                let Condition::Compare {
                    op,
                    value: threshold,
                } = t.condition
                else {
                    continue;
                };
                let key = (m.name.clone(), t.name.clone(), None);
                let verdict = if let Some(reason) = &error {
                    Verdict::Failed(reason.clone())
                } else if value.is_some_and(|v| op.holds(v, threshold)) {
                    Verdict::Fired(
                        Box::new(Explanation {
                            detector: m.detector.clone(),
                            entity: top.as_ref().and_then(|e| e.entity.clone()),
                            query: Some(QueryValue {
                                feature: q.feature.clone(),
                                aggregation: q.aggregation,
                                window_ms: q.window_ms,
                                value,
                                results: count,
                                op,
                                threshold,
                            }),
                            anomaly: top.as_ref().and_then(|e| e.anomaly.clone()),
                            incident: top.as_ref().and_then(|e| e.incident.clone()),
                        }),
                        period.1,
                    )
                } else {
                    Verdict::Quiet
                };
                apply(m, t, book, key, verdict, period, out);
            }
        }
    }
}

/// Moves one alert (or none yet) through its lifecycle for one evaluated period.
fn apply(
    m: &CompiledMonitor,
    t: &CompiledTrigger,
    book: &mut AlertBook,
    key: AlertKey,
    verdict: Verdict,
    (start, end): (i64, i64),
    out: &mut Vec<Notification>,
) {
    let mut emit = |book: &mut AlertBook, a: &mut Alert, kind| {
        let n = render(m, t, a, kind, (start, end));
        a.notifications = a.notifications.saturating_add(1);
        if !n.channels.is_empty() {
            book.enqueue(&n);
        }
        out.push(n);
    };
    let Some(mut a) = book.open.remove(&key) else {
        // No open alert: only a firing or a failure opens one.
        let (lifecycle, error, explanation, kind, last_fired) = match verdict {
            Verdict::Quiet => return,
            Verdict::Fired(e, at) => (
                AlertState::Active,
                None,
                Some(*e),
                NotificationKind::Fired,
                Some(at),
            ),
            Verdict::Failed(reason) => (
                AlertState::Error,
                Some(AlertIssue {
                    source: IssueSource::Evaluation,
                    reason,
                    since: start,
                }),
                None,
                NotificationKind::Error,
                None,
            ),
        };
        let fired = lifecycle == AlertState::Active;
        let incident_id = explanation
            .as_ref()
            .and_then(|e| e.incident_id())
            .map(str::to_string);
        // An incident another alert notified: merged into that one, silently.
        let merged_into = incident_id
            .as_deref()
            .and_then(|id| book.incident_alert(id))
            .map(|lead| lead.id.clone());
        let mut a = Alert {
            id: book.new_id(&key, start),
            monitor: key.0.clone(),
            trigger: key.1.clone(),
            severity: t.severity,
            detector: m.detector.clone(),
            entity: key.2.clone(),
            lifecycle,
            error,
            start_time: start,
            last_fired,
            end_time: None,
            acknowledged_time: None,
            periods_active: u32::from(fired),
            quiet_periods: 0,
            last_notified: fired.then_some(end),
            notifications: 0,
            deliveries: 0,
            last_delivery: None,
            failures: 0,
            lost: 0,
            explanation,
            incident_id,
            merged_into,
            label: None,
        };
        if a.merged_into.is_none() {
            emit(book, &mut a, kind);
        }
        book.open.insert(key, a);
        return;
    };
    let clear_evaluation_error = |a: &mut Alert| {
        if a.error
            .as_ref()
            .is_some_and(|e| e.source == IssueSource::Evaluation)
        {
            a.error = None;
        }
    };
    match verdict {
        Verdict::Failed(reason) => {
            // Neither fired nor quiet: the period is unknown.
            let entering = a.error.is_none();
            a.error = Some(AlertIssue {
                source: IssueSource::Evaluation,
                since: a.error.as_ref().map_or(start, |e| e.since),
                reason,
            });
            if entering {
                emit(book, &mut a, NotificationKind::Error);
            }
        }
        Verdict::Fired(explanation, at) => {
            clear_evaluation_error(&mut a);
            a.explanation = Some(*explanation);
            a.last_fired = Some(at);
            match a.lifecycle {
                AlertState::Error => {
                    // Opened by an evaluation error; this is its first firing.
                    a.lifecycle = AlertState::Active;
                    a.start_time = start;
                    a.periods_active = 1;
                    a.quiet_periods = 0;
                    a.last_notified = Some(end);
                    emit(book, &mut a, NotificationKind::Fired);
                }
                AlertState::Active | AlertState::Acknowledged | AlertState::Completed => {
                    a.periods_active = a
                        .periods_active
                        .saturating_add(a.quiet_periods)
                        .saturating_add(1);
                    a.quiet_periods = 0;
                    // It fired early in the period and has been quiet since: it
                    // completes now rather than a period later.
                    if quiet_enough(m, t, book, &a, (start, end)) {
                        complete(book, a, &mut emit, end);
                        return;
                    }
                    let due = t.throttle_ms.is_some_and(|th| {
                        a.last_notified.is_none_or(|l| end.saturating_sub(l) >= th)
                    });
                    if a.lifecycle == AlertState::Active && due && a.merged_into.is_none() {
                        a.last_notified = Some(end);
                        emit(book, &mut a, NotificationKind::Renotify);
                    }
                }
            }
        }
        Verdict::Quiet => {
            clear_evaluation_error(&mut a);
            if a.lifecycle == AlertState::Error {
                // Opened by an evaluation error and never fired: it ends silently.
                a.lifecycle = AlertState::Completed;
                a.end_time = Some(end);
                book.archive(a);
                return;
            }
            a.quiet_periods = a.quiet_periods.saturating_add(1);
            if quiet_enough(m, t, book, &a, (start, end)) {
                complete(book, a, &mut emit, end);
                return;
            }
        }
    }
    book.open.insert(key, a);
}

/// Completes `a` at `end`: one `Completed` notification (none for an alert merged
/// into another), then the history.
fn complete(
    book: &mut AlertBook,
    mut a: Alert,
    emit: &mut impl FnMut(&mut AlertBook, &mut Alert, NotificationKind),
    end: i64,
) {
    a.lifecycle = AlertState::Completed;
    a.end_time = Some(end);
    if a.merged_into.is_none() {
        emit(book, &mut a, NotificationKind::Completed);
    }
    book.archive(a);
}

/// How long a trigger must stay quiet before its alert completes: `complete_after`
/// of the detector's intervals when they are shorter than the monitor's period
/// (the seed's 10-minute monitor on one-minute results completes minutes, not two
/// periods, after an episode ends), else `complete_after` periods.
fn quiet_span(m: &CompiledMonitor, t: &CompiledTrigger, book: &AlertBook, period: i64) -> i64 {
    let interval = match m.query {
        Some(_) => 0,
        None => book.monitors.get(&m.name).map_or(0, |s| s.interval_ms),
    };
    let unit = if interval > 0 && interval < period {
        interval
    } else {
        period
    };
    i64::from(t.complete_after).saturating_mul(unit)
}

/// Whether open alert `a` completes at the end of `period`: quiet for
/// `complete_after` periods, or for its [`quiet_span`] since it last fired; and,
/// for an incident's lead alert, no alert merged into it fired within that span.
fn quiet_enough(
    m: &CompiledMonitor,
    t: &CompiledTrigger,
    book: &AlertBook,
    a: &Alert,
    (start, end): (i64, i64),
) -> bool {
    let span = quiet_span(m, t, book, end.saturating_sub(start));
    let quiet_for = end.saturating_sub(a.last_fired.unwrap_or(start));
    if a.quiet_periods < t.complete_after && quiet_for < span {
        return false;
    }
    let recent = end.saturating_sub(span);
    let held = a.merged_into.is_none()
        && book.open.values().any(|o| {
            o.merged_into.as_ref() == Some(&a.id) && o.last_fired.is_some_and(|l| l > recent)
        });
    !held
}

/// Renders a notification of `alert`.
fn render(
    m: &CompiledMonitor,
    t: &CompiledTrigger,
    a: &Alert,
    kind: NotificationKind,
    (start, end): (i64, i64),
) -> Notification {
    // The entity is record-derived: escaped before it enters any text.
    let entity = crate::text::escape_control(a.entity.as_deref().unwrap_or_default()).into_owned();
    let for_entity = if entity.is_empty() {
        String::new()
    } else {
        format!(" for {entity}")
    };
    let since = to_rfc3339(a.start_time);
    let headline = match kind {
        NotificationKind::Fired => format!(
            "Monitor {}{for_entity} just entered alert status. Please investigate the issue.",
            a.monitor
        ),
        NotificationKind::Renotify => format!(
            "Monitor {}{for_entity} is still in alert status: active for {} periods since {since}. Please investigate the issue.",
            a.monitor, a.periods_active
        ),
        NotificationKind::Completed if a.label == Some(Label::NotAnomaly) => format!(
            "Monitor {}{for_entity} is no longer in alert status: a responder marked it as not an anomaly (it was active for {} periods since {since}); detector {} learns that level as normal.",
            a.monitor, a.periods_active, a.detector
        ),
        NotificationKind::Completed if a.quiet_periods >= t.complete_after => format!(
            "Monitor {}{for_entity} is no longer in alert status: trigger {} has not fired for {} periods (it was active for {} periods since {since}).",
            a.monitor, a.trigger, a.quiet_periods, a.periods_active
        ),
        NotificationKind::Completed => format!(
            "Monitor {}{for_entity} is no longer in alert status: trigger {} has not fired since {} (it was active for {} periods since {since}).",
            a.monitor,
            a.trigger,
            to_rfc3339(a.last_fired.unwrap_or(end)),
            a.periods_active
        ),
        NotificationKind::Error => format!(
            "Monitor {}{for_entity} could not be evaluated: {}",
            a.monitor,
            crate::text::escape_control(
                a.error
                    .as_ref()
                    .map_or("unknown error", |e| e.reason.as_str())
            )
        ),
        NotificationKind::Accepted => format!(
            "Monitor {}{for_entity}: detector {} has taken the level held since {since} as the new normal (it lasted its accept_shift_after, {} periods active); the alert completes when the monitor stops firing.",
            a.monitor, a.detector, a.periods_active
        ),
        NotificationKind::Test => format!(
            "Test notification from waflog for monitor {}: no data was evaluated, nothing to investigate.",
            a.monitor
        ),
    };
    let explanation = match (&a.explanation, kind) {
        (_, NotificationKind::Test) => {
            "Explanation: (a test notification carries none)".to_string()
        }
        (Some(e), NotificationKind::Completed) => format!("Last firing:\n{}", e.render()),
        (Some(e), _) => e.render(),
        (None, _) => format!("Detector: {}", a.detector),
    };
    let state = a.state();
    let value = |p: Placeholder| -> String {
        match p {
            Placeholder::Monitor => a.monitor.clone(),
            Placeholder::Trigger => a.trigger.clone(),
            Placeholder::Severity => a.severity.to_string(),
            Placeholder::PeriodStart => to_rfc3339(start),
            Placeholder::PeriodEnd => to_rfc3339(end),
            Placeholder::Entity => entity.clone(),
            Placeholder::Detector => a.detector.clone(),
            Placeholder::Explanation => explanation.clone(),
            Placeholder::PeriodsActive => a.periods_active.to_string(),
            Placeholder::State => state.to_string(),
            Placeholder::Kind => kind.label().to_string(),
            Placeholder::AlertId => a.id.clone(),
            Placeholder::StartTime => since.clone(),
            Placeholder::Headline => headline.clone(),
        }
    };
    let text = t.message.render(value);
    let subject = t.subject.render(value);
    let time = |ms: Option<i64>| ms.map(to_rfc3339);
    let payload = serde_json::json!({
        "alert_id": a.id,
        "kind": kind,
        "state": state,
        "monitor": a.monitor,
        "trigger": a.trigger,
        "severity": a.severity,
        "detector": a.detector,
        "entity": a.entity,
        "period_start": to_rfc3339(start),
        "period_end": to_rfc3339(end),
        "period_start_ms": start,
        "period_end_ms": end,
        "start_time": since,
        "last_fired": time(a.last_fired),
        "end_time": time(a.end_time),
        "periods_active": a.periods_active,
        "error": a.error.as_ref().map(|e| e.reason.clone()),
        "subject": subject,
        "message": text,
        "explanation": a.explanation,
    });
    Notification {
        alert_id: a.id.clone(),
        kind,
        monitor: a.monitor.clone(),
        trigger: a.trigger.clone(),
        severity: a.severity,
        detector: m.detector.clone(),
        entity: a.entity.clone(),
        state,
        period_start: start,
        period_end: end,
        periods_active: a.periods_active,
        channels: t.channels.clone(),
        subject,
        text,
        payload,
    }
}
