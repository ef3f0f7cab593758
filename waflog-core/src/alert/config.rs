//! Alerting configuration: `[[monitors]]` and `[[channels]]` in `waflog.toml`.
//!
//! ```toml
//! # The seed's monitor, on the detector's results: one alert per anomaly episode.
//! [[monitors]]
//! name = "UNK_source-Monitor"
//! period = "10m"                      # default: the detector's interval
//! detector = "source-anomaly-detector"
//! # entity = "203.0.113.7"            # per-entity detectors: only this entity
//! [[monitors.triggers]]
//! name = "UNK_source-trigger"
//! severity = 1                        # 1 (highest) to 5
//! min_grade = 0.7                     # default 0.7, as OpenSearch AD monitors
//! min_confidence = 0.7                # default 0.7
//! actions = ["ops-webhook", "security-sns"]   # default: every channel
//! throttle = "1h"                     # re-notify at most hourly while active (default: never)
//! complete_after = 2                  # quiet periods (or intervals) before COMPLETED (default 2)
//! # message = "..."                   # template, see alert::template
//!
//! # The seed's query monitor: sum of UNK_source over the last 10 minutes.
//! [[monitors]]
//! name = "UNK_source-volume"
//! period = "10m"
//! query = { detector = "source-anomaly-detector", feature = "UNK_source", aggregation = "sum", window = "10m" }
//! [[monitors.triggers]]
//! name = "UNK_source-above-100"
//! severity = 2
//! condition = { op = ">", value = 100 }
//!
//! [[channels]]                        # default when absent: one `stdout` channel
//! name = "ops-webhook"
//! type = "webhook"                    # stdout | stderr | file | webhook | sns
//! url = "https://hooks.example.com/T000/B000"
//! slack = true                        # Slack-compatible {"text": ...} body
//! timeout = "10s"
//! max_attempts = 3
//! headers = { Authorization = "Bearer xyz" }
//!
//! [[channels]]
//! name = "security-sns"
//! type = "sns"
//! topic_arn = "arn:aws:sns:us-east-1:123456789012:waf-alerts"
//! # region = "us-east-1"
//! # endpoint_url = "http://127.0.0.1:5000"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::template::{Template, TemplateSlot};
use crate::detect::DetectorSpec;
use crate::error::ConfigError;
use crate::names;
use crate::timestamp::{duration_text, parse_duration_ms};

/// Grade at and above which a detector-input trigger fires by default (OpenSearch AD
/// monitors' default anomaly grade threshold).
pub const DEFAULT_MIN_GRADE: f64 = 0.7;
/// Confidence at and above which a detector-input trigger fires by default
/// (OpenSearch AD monitors' default confidence threshold).
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.7;
/// Consecutive quiet periods after which an alert completes by default: two, so that
/// one quiet period inside an episode does not end it and open a new one (flapping).
pub const DEFAULT_COMPLETE_AFTER: u32 = 2;
/// Default timeout of one webhook request.
pub const DEFAULT_WEBHOOK_TIMEOUT: &str = "10s";
/// Default attempts of one webhook send (in-process retries before the delivery goes
/// back to the outbox).
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 3;

/// A monitor: a schedule and an input, evaluated by its triggers once per period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MonitorToml", into = "MonitorToml")]
pub struct Monitor {
    /// Unique name (`UNK_source-Monitor`).
    pub name: String,
    /// Evaluation period, e.g. `10m`; default: the detector's interval. Periods are
    /// aligned to the epoch and measured in event time.
    pub period: Option<String>,
    /// What the triggers look at.
    pub input: MonitorInput,
    /// One or more triggers.
    pub triggers: Vec<Trigger>,
}

/// What a monitor's triggers look at.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorInput {
    /// The anomaly results of one detector (`detector = "..."`): a trigger fires for
    /// an entity when one of its results in the period meets the grade and confidence.
    Detector {
        /// Detector name.
        detector: String,
        /// Only this entity: its value(s) joined with `,`.
        entity: Option<String>,
    },
    /// An aggregation over one feature's values in the detector's results of the last
    /// `window` (`query = { ... }`), anomalous or not.
    Query(QueryInput),
}

/// `query = { detector, feature, aggregation, window }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryInput {
    /// Detector whose results carry the feature.
    pub detector: String,
    /// Feature name (`feature_name` in the results).
    pub feature: String,
    /// How the window's values combine.
    pub aggregation: QueryAggregation,
    /// Look-back ending at the period end, e.g. `10m`.
    pub window: String,
}

/// How a query monitor combines the feature values in its window. For a per-entity
/// detector every entity's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryAggregation {
    /// Sum of the values (0 for an empty window).
    Sum,
    /// Mean of the values (no value for an empty window: the trigger does not fire).
    Avg,
    /// Largest value (no value for an empty window).
    Max,
    /// Smallest value (no value for an empty window).
    Min,
    /// Number of values, i.e. of results (0 for an empty window).
    Count,
}

impl std::fmt::Display for QueryAggregation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueryAggregation::Sum => "sum",
            QueryAggregation::Avg => "avg",
            QueryAggregation::Max => "max",
            QueryAggregation::Min => "min",
            QueryAggregation::Count => "count",
        })
    }
}

/// A condition with a name, a severity and actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TriggerToml", into = "TriggerToml")]
pub struct Trigger {
    /// Name, unique within the monitor (`UNK_source-trigger`).
    pub name: String,
    /// 1 (highest) to 5.
    pub severity: u8,
    /// When it fires.
    pub condition: Condition,
    /// Channel names to notify; `None`: every configured channel; empty: none (the
    /// alert is only kept in the alert state).
    pub actions: Option<Vec<String>>,
    /// Re-notify at most this often while the alert stays active (`1h`); `None`:
    /// never re-notify.
    pub throttle: Option<String>,
    /// Consecutive periods without firing after which the alert completes; counted
    /// in the detector's intervals when they are shorter than the period (a
    /// 10-minute monitor on one-minute results completes once the trigger has not
    /// fired for `complete_after` minutes, checked at the end of each period).
    pub complete_after: u32,
    /// Message template (see [`crate::alert::template`]); `None`: the seed's text
    /// followed by the explanation.
    pub message: Option<String>,
    /// Subject template (SNS subject, e-mail subject); `None`:
    /// [`super::template::DEFAULT_SUBJECT`].
    pub subject: Option<String>,
}

/// When a trigger fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// Detector inputs: `anomaly_grade >= min_grade && confidence >= min_confidence`.
    Anomaly {
        /// Least grade, in (0, 1].
        min_grade: f64,
        /// Least confidence, in [0, 1].
        min_confidence: f64,
    },
    /// Query inputs: `value <op> threshold`.
    Compare {
        /// The comparison.
        op: CompareOp,
        /// The threshold.
        value: f64,
    },
}

impl Default for Condition {
    fn default() -> Self {
        Condition::Anomaly {
            min_grade: DEFAULT_MIN_GRADE,
            min_confidence: DEFAULT_MIN_CONFIDENCE,
        }
    }
}

/// A comparison of a query's value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl CompareOp {
    /// `value <op> threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            CompareOp::Gt => value > threshold,
            CompareOp::Ge => value >= threshold,
            CompareOp::Lt => value < threshold,
            CompareOp::Le => value <= threshold,
            CompareOp::Eq => value == threshold,
            CompareOp::Ne => value != threshold,
        }
    }

    /// The operator as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }
}

/// `condition = { op, value }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareToml {
    op: CompareOp,
    value: f64,
}

/// A notification channel (`[[channels]]`). The core only names them; the CLI sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Channel {
    /// One JSON payload per line on standard output.
    Stdout {
        /// Channel name.
        name: String,
    },
    /// One JSON payload per line on standard error.
    Stderr {
        /// Channel name.
        name: String,
    },
    /// One JSON payload per line appended to a file (NDJSON).
    File {
        /// Channel name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// HTTP POST of the JSON payload (or of `{"text": ...}` for Slack).
    Webhook {
        /// Channel name.
        name: String,
        /// `https://...` (or `http://`).
        url: String,
        /// Send a Slack-compatible body, `{"text": <message>}`.
        #[serde(default)]
        slack: bool,
        /// Timeout of one request (default 10s).
        #[serde(default = "default_webhook_timeout")]
        timeout: String,
        /// Attempts of one send, with backoff, before the delivery goes back to the
        /// outbox for a later retry (default 3).
        #[serde(default = "default_webhook_attempts")]
        max_attempts: u32,
        /// Extra request headers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// Accept invalid TLS certificates (default false: verified).
        #[serde(default)]
        insecure: bool,
    },
    /// Amazon SNS `Publish` to a topic (subject and message).
    Sns {
        /// Channel name.
        name: String,
        /// `arn:aws:sns:REGION:ACCOUNT:TOPIC`.
        topic_arn: String,
        /// Region; default: the ARN's, else the standard AWS chain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// Endpoint of a local AWS-compatible server, e.g. `http://127.0.0.1:5000`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
    },
}

fn default_webhook_timeout() -> String {
    DEFAULT_WEBHOOK_TIMEOUT.into()
}
fn default_webhook_attempts() -> u32 {
    DEFAULT_WEBHOOK_ATTEMPTS
}

impl Channel {
    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            Channel::Stdout { name }
            | Channel::Stderr { name }
            | Channel::File { name, .. }
            | Channel::Webhook { name, .. }
            | Channel::Sns { name, .. } => name,
        }
    }

    /// The channels used when `[[channels]]` is absent: one named `stdout`.
    pub fn defaults() -> Vec<Channel> {
        vec![Channel::Stdout {
            name: "stdout".into(),
        }]
    }
}

impl Trigger {
    /// A trigger with the defaults: grade and confidence 0.7, every channel, no
    /// re-notification, completion after two quiet periods, the seed's message.
    pub fn new(name: &str, severity: u8) -> Trigger {
        Trigger {
            name: name.into(),
            severity,
            condition: Condition::default(),
            actions: None,
            throttle: None,
            complete_after: DEFAULT_COMPLETE_AFTER,
            message: None,
            subject: None,
        }
    }
}

impl Monitor {
    /// The seed's monitor: `UNK_source-Monitor` on the results of
    /// `source-anomaly-detector` in 10-minute periods, trigger `UNK_source-trigger`
    /// with severity 1 and OpenSearch AD's default grade and confidence (0.7).
    ///
    /// ```
    /// use waflog_core::alert::{Monitor, MonitorInput};
    /// let m = Monitor::seed();
    /// assert_eq!(m.name, "UNK_source-Monitor");
    /// assert_eq!(m.triggers[0].name, "UNK_source-trigger");
    /// assert!(matches!(&m.input, MonitorInput::Detector { detector, .. } if detector == "source-anomaly-detector"));
    /// ```
    pub fn seed() -> Monitor {
        Monitor {
            name: format!("{}-Monitor", names::UNK_SOURCE),
            period: Some("10m".into()),
            input: MonitorInput::Detector {
                detector: "source-anomaly-detector".into(),
                entity: None,
            },
            triggers: vec![Trigger::new(&format!("{}-trigger", names::UNK_SOURCE), 1)],
        }
    }

    /// Monitors for detectors that have none configured (`waflog detect --alerts`
    /// without `[[monitors]]`): the seed's [`Monitor::seed`] for
    /// `source-anomaly-detector`, and for every other detector a monitor named after
    /// its first feature in the seed's style (`UNK_country-Monitor`, trigger
    /// `UNK_country-trigger`, severity 2) on the detector's own interval.
    pub fn defaults(detectors: &[DetectorSpec]) -> Vec<Monitor> {
        detectors
            .iter()
            .map(|d| {
                if d.name == "source-anomaly-detector" {
                    return Monitor::seed();
                }
                let stem = d
                    .features
                    .first()
                    .map_or(d.name.as_str(), |f| f.name.as_str());
                Monitor::named(stem, &d.name)
            })
            .collect()
    }

    /// The monitor of a metric series (`waflog detect --input-format csv --alerts`
    /// without `[[monitors]]`): `cpu-Monitor` with trigger `cpu-trigger`
    /// (severity 2, the default condition) on the results of series `cpu`, in
    /// periods of its own row interval.
    ///
    /// ```
    /// use waflog_core::alert::Monitor;
    /// let m = Monitor::for_series("cpu");
    /// assert_eq!((m.name.as_str(), m.detector()), ("cpu-Monitor", "cpu"));
    /// ```
    pub fn for_series(series: &str) -> Monitor {
        Monitor::named(series, series)
    }

    /// A default monitor named after `stem` on the results of `detector`.
    fn named(stem: &str, detector: &str) -> Monitor {
        Monitor {
            name: format!("{stem}-Monitor"),
            period: None,
            input: MonitorInput::Detector {
                detector: detector.to_string(),
                entity: None,
            },
            triggers: vec![Trigger::new(&format!("{stem}-trigger"), 2)],
        }
    }

    /// The seed's query monitor: the sum of `UNK_source` in the last 10 minutes of
    /// `source-anomaly-detector`'s results, every 10 minutes, fired when above
    /// `threshold`.
    pub fn seed_query(threshold: f64) -> Monitor {
        let mut trigger = Trigger::new(&format!("{}-trigger", names::UNK_SOURCE), 1);
        trigger.condition = Condition::Compare {
            op: CompareOp::Gt,
            value: threshold,
        };
        Monitor {
            name: format!("{}-Monitor", names::UNK_SOURCE),
            period: Some("10m".into()),
            input: MonitorInput::Query(QueryInput {
                detector: "source-anomaly-detector".into(),
                feature: names::UNK_SOURCE.into(),
                aggregation: QueryAggregation::Sum,
                window: "10m".into(),
            }),
            triggers: vec![trigger],
        }
    }

    /// The detector whose results this monitor reads.
    pub fn detector(&self) -> &str {
        match &self.input {
            MonitorInput::Detector { detector, .. } => detector,
            MonitorInput::Query(q) => &q.detector,
        }
    }
}

/// The TOML shape of a monitor: the input is either `detector` (+ `entity`) or
/// `query`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorToml {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<QueryInput>,
    #[serde(default)]
    triggers: Vec<Trigger>,
}

impl TryFrom<MonitorToml> for Monitor {
    type Error = String;
    fn try_from(t: MonitorToml) -> Result<Monitor, String> {
        let input = match (t.detector, t.query) {
            (Some(detector), None) => MonitorInput::Detector {
                detector,
                entity: t.entity,
            },
            (None, Some(q)) if t.entity.is_none() => MonitorInput::Query(q),
            (None, Some(_)) => {
                return Err(format!(
                    "monitor `{}`: `entity` filters detector inputs only, not `query`",
                    t.name
                ));
            }
            _ => {
                return Err(format!(
                    "monitor `{}`: give exactly one input, `detector = \"...\"` or `query = {{ detector, feature, aggregation, window }}`",
                    t.name
                ));
            }
        };
        Ok(Monitor {
            name: t.name,
            period: t.period,
            input,
            triggers: t.triggers,
        })
    }
}

impl From<Monitor> for MonitorToml {
    fn from(m: Monitor) -> MonitorToml {
        let (detector, entity, query) = match m.input {
            MonitorInput::Detector { detector, entity } => (Some(detector), entity, None),
            MonitorInput::Query(q) => (None, None, Some(q)),
        };
        MonitorToml {
            name: m.name,
            period: m.period,
            detector,
            entity,
            query,
            triggers: m.triggers,
        }
    }
}

/// The TOML shape of a trigger: `min_grade`/`min_confidence` or `condition`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerToml {
    name: String,
    #[serde(default = "default_severity")]
    severity: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_grade: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    condition: Option<CompareToml>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    throttle: Option<String>,
    #[serde(default = "default_complete_after")]
    complete_after: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

fn default_severity() -> u8 {
    1
}
fn default_complete_after() -> u32 {
    DEFAULT_COMPLETE_AFTER
}

impl TryFrom<TriggerToml> for Trigger {
    type Error = String;
    fn try_from(t: TriggerToml) -> Result<Trigger, String> {
        let condition = match (t.condition, t.min_grade, t.min_confidence) {
            (Some(c), None, None) => Condition::Compare {
                op: c.op,
                value: c.value,
            },
            (None, g, c) => Condition::Anomaly {
                min_grade: g.unwrap_or(DEFAULT_MIN_GRADE),
                min_confidence: c.unwrap_or(DEFAULT_MIN_CONFIDENCE),
            },
            (Some(_), _, _) => {
                return Err(format!(
                    "trigger `{}`: give `condition` (query monitors) or `min_grade`/`min_confidence` (detector monitors), not both",
                    t.name
                ));
            }
        };
        Ok(Trigger {
            name: t.name,
            severity: t.severity,
            condition,
            actions: t.actions,
            throttle: t.throttle,
            complete_after: t.complete_after,
            message: t.message,
            subject: t.subject,
        })
    }
}

impl From<Trigger> for TriggerToml {
    fn from(t: Trigger) -> TriggerToml {
        let (min_grade, min_confidence, condition) = match t.condition {
            Condition::Anomaly {
                min_grade,
                min_confidence,
            } => (Some(min_grade), Some(min_confidence), None),
            Condition::Compare { op, value } => (None, None, Some(CompareToml { op, value })),
        };
        TriggerToml {
            name: t.name,
            severity: t.severity,
            min_grade,
            min_confidence,
            condition,
            actions: t.actions,
            throttle: t.throttle,
            complete_after: t.complete_after,
            message: t.message,
            subject: t.subject,
        }
    }
}

/// Longest period, query window or throttle.
const MAX_DURATION_MS: i64 = 7 * 86_400_000;

/// What the monitors' detectors are checked against ([`validate`]).
#[derive(Debug, Clone, Copy)]
pub enum Detectors<'a> {
    /// Not known: only the monitors themselves are checked.
    Unchecked,
    /// These are all the detectors: a monitor of any other is an error.
    Exactly(&'a [DetectorSpec]),
    /// These, or metric series (`waflog detect --input-format csv`, named after
    /// their files, so known only when the input is read): a monitor of one of
    /// these is checked against it, any other name is taken for a series.
    OrSeries(&'a [DetectorSpec]),
}

/// Checks monitors and channels: names, ranges, durations, templates, and that every
/// action names a channel. Against `detectors` (see [`Detectors`]), also that a
/// monitor's detector exists, that a query's feature is one of its features, that
/// an entity filter is on a per-entity detector and that the period is a multiple
/// of the detector's interval. Errors name the field, e.g.
/// `monitors[0].triggers[1].severity`.
pub fn validate(
    monitors: &[Monitor],
    channels: &[Channel],
    detectors: Detectors<'_>,
    path: &Path,
) -> Result<(), ConfigError> {
    let invalid = |field: String, reason: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        field,
        reason,
    };
    validate_channels(channels, path)?;
    for (i, m) in monitors.iter().enumerate() {
        let at = |f: &str| format!("monitors[{i}].{f}");
        if m.name.trim().is_empty() {
            return Err(invalid(at("name"), "must not be empty".into()));
        }
        if monitors[..i].iter().any(|o| o.name == m.name) {
            return Err(invalid(at("name"), format!("`{}` is used twice", m.name)));
        }
        let period = match &m.period {
            Some(p) => {
                Some(duration(p, 1_000, MAX_DURATION_MS).map_err(|e| invalid(at("period"), e))?)
            }
            None => None,
        };
        let spec = match detectors {
            Detectors::Unchecked => None,
            Detectors::OrSeries(list) => list.iter().find(|d| d.name == m.detector()),
            Detectors::Exactly(list) => {
                let field = match &m.input {
                    MonitorInput::Detector { .. } => at("detector"),
                    MonitorInput::Query(_) => at("query.detector"),
                };
                let Some(spec) = list.iter().find(|d| d.name == m.detector()) else {
                    let known: Vec<&str> = list.iter().map(|d| d.name.as_str()).collect();
                    return Err(invalid(
                        field,
                        format!(
                            "unknown detector `{}` (configured: {})",
                            m.detector(),
                            known.join(", ")
                        ),
                    ));
                };
                Some(spec)
            }
        };
        if m.detector().trim().is_empty() {
            return Err(invalid(at("detector"), "must not be empty".into()));
        }
        if let (Some(p), Some(spec)) = (period, spec) {
            let interval = spec.interval();
            if p % interval != 0 {
                return Err(invalid(
                    at("period"),
                    format!(
                        "must be a multiple of detector `{}`'s interval ({})",
                        spec.name,
                        duration_text(spec.interval_ms)
                    ),
                ));
            }
        }
        match &m.input {
            MonitorInput::Detector { entity, .. } => {
                if let Some(e) = entity {
                    if e.is_empty() {
                        return Err(invalid(at("entity"), "must not be empty".into()));
                    }
                    if let Some(spec) = spec
                        && spec.category_field.is_none()
                    {
                        return Err(invalid(
                            at("entity"),
                            format!(
                                "detector `{}` has no category_field, so its results have no entity",
                                spec.name
                            ),
                        ));
                    }
                }
            }
            MonitorInput::Query(q) => {
                if q.feature.trim().is_empty() {
                    return Err(invalid(at("query.feature"), "must not be empty".into()));
                }
                if let Some(spec) = spec
                    && !spec.features.iter().any(|f| f.name == q.feature)
                {
                    let known: Vec<&str> = spec.features.iter().map(|f| f.name.as_str()).collect();
                    return Err(invalid(
                        at("query.feature"),
                        format!(
                            "detector `{}` has no feature `{}` (it has: {})",
                            spec.name,
                            q.feature,
                            known.join(", ")
                        ),
                    ));
                }
                let w = duration(&q.window, 1_000, MAX_DURATION_MS)
                    .map_err(|e| invalid(at("query.window"), e))?;
                if let Some(spec) = spec
                    && w < spec.interval()
                {
                    return Err(invalid(
                        at("query.window"),
                        format!(
                            "`{}` is shorter than detector `{}`'s interval ({})",
                            q.window,
                            spec.name,
                            duration_text(spec.interval_ms)
                        ),
                    ));
                }
            }
        }
        if m.triggers.is_empty() {
            return Err(invalid(
                at("triggers"),
                "a monitor needs at least one trigger".into(),
            ));
        }
        for (j, t) in m.triggers.iter().enumerate() {
            let at = |f: &str| format!("monitors[{i}].triggers[{j}].{f}");
            validate_trigger(t, &m.triggers[..j], &m.input, channels, &at)
                .map_err(|(field, reason)| invalid(field, reason))?;
        }
    }
    Ok(())
}

fn validate_trigger(
    t: &Trigger,
    earlier: &[Trigger],
    input: &MonitorInput,
    channels: &[Channel],
    at: &dyn Fn(&str) -> String,
) -> Result<(), (String, String)> {
    if t.name.trim().is_empty() {
        return Err((at("name"), "must not be empty".into()));
    }
    if earlier.iter().any(|o| o.name == t.name) {
        return Err((
            at("name"),
            format!("`{}` is used twice in this monitor", t.name),
        ));
    }
    if !(1..=5).contains(&t.severity) {
        return Err((
            at("severity"),
            format!("must be 1 to 5, got {}", t.severity),
        ));
    }
    match (t.condition, input) {
        (
            Condition::Anomaly {
                min_grade,
                min_confidence,
            },
            MonitorInput::Detector { .. },
        ) => {
            if !(min_grade > 0.0 && min_grade <= 1.0) {
                return Err((
                    at("min_grade"),
                    format!("must be in (0, 1], got {min_grade}"),
                ));
            }
            if !(0.0..=1.0).contains(&min_confidence) {
                return Err((
                    at("min_confidence"),
                    format!("must be in [0, 1], got {min_confidence}"),
                ));
            }
        }
        (Condition::Compare { value, .. }, MonitorInput::Query(_)) => {
            if !value.is_finite() {
                return Err((
                    at("condition.value"),
                    format!("must be finite, got {value}"),
                ));
            }
        }
        (Condition::Anomaly { .. }, MonitorInput::Query(_)) => {
            return Err((
                at("condition"),
                "a query monitor's trigger needs `condition = { op, value }`".into(),
            ));
        }
        (Condition::Compare { .. }, MonitorInput::Detector { .. }) => {
            return Err((
                at("condition"),
                "a detector monitor's trigger takes `min_grade`/`min_confidence`, not `condition`"
                    .into(),
            ));
        }
    }
    if let Some(actions) = &t.actions {
        for (k, a) in actions.iter().enumerate() {
            if !channels.iter().any(|c| c.name() == a) {
                let known: Vec<&str> = channels.iter().map(Channel::name).collect();
                return Err((
                    format!("{}[{k}]", at("actions")),
                    format!("unknown channel `{a}` (configured: {})", known.join(", ")),
                ));
            }
            if actions[..k].contains(a) {
                return Err((
                    format!("{}[{k}]", at("actions")),
                    format!("`{a}` is listed twice"),
                ));
            }
        }
    }
    if let Some(th) = &t.throttle {
        duration(th, 1_000, MAX_DURATION_MS).map_err(|e| (at("throttle"), e))?;
    }
    if !(1..=1000).contains(&t.complete_after) {
        return Err((
            at("complete_after"),
            format!("must be 1 to 1000 periods, got {}", t.complete_after),
        ));
    }
    if let Some(m) = &t.message {
        Template::parse(m, TemplateSlot::Message).map_err(|e| (at("message"), e))?;
    }
    if let Some(s) = &t.subject {
        Template::parse(s, TemplateSlot::Subject).map_err(|e| (at("subject"), e))?;
    }
    Ok(())
}

fn validate_channels(channels: &[Channel], path: &Path) -> Result<(), ConfigError> {
    let invalid = |i: usize, f: &str, reason: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        field: format!("channels[{i}].{f}"),
        reason,
    };
    for (i, c) in channels.iter().enumerate() {
        let name = c.name();
        if name.trim().is_empty() {
            return Err(invalid(i, "name", "must not be empty".into()));
        }
        if channels[..i].iter().any(|o| o.name() == name) {
            return Err(invalid(i, "name", format!("`{name}` is used twice")));
        }
        match c {
            Channel::Stdout { .. } | Channel::Stderr { .. } => {}
            Channel::File { path, .. } => {
                if path.as_os_str().is_empty() {
                    return Err(invalid(i, "path", "must not be empty".into()));
                }
            }
            Channel::Webhook {
                url,
                timeout,
                max_attempts,
                headers,
                ..
            } => {
                if !is_http_url(url) {
                    return Err(invalid(
                        i,
                        "url",
                        format!("`{}` is not an http:// or https:// URL", redact_url(url)),
                    ));
                }
                duration(timeout, 1, 600_000).map_err(|e| invalid(i, "timeout", e))?;
                if !(1..=100).contains(max_attempts) {
                    return Err(invalid(
                        i,
                        "max_attempts",
                        format!("must be 1 to 100, got {max_attempts}"),
                    ));
                }
                if let Some(h) = headers.keys().find(|h| {
                    h.is_empty()
                        || !h
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
                }) {
                    return Err(invalid(
                        i,
                        "headers",
                        format!("`{h}` is not a valid header name"),
                    ));
                }
            }
            Channel::Sns {
                topic_arn,
                region,
                endpoint_url,
                ..
            } => {
                let parts: Vec<&str> = topic_arn.split(':').collect();
                if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty()
                {
                    return Err(invalid(
                        i,
                        "topic_arn",
                        format!(
                            "`{topic_arn}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
                        ),
                    ));
                }
                if region.as_ref().is_some_and(|r| r.trim().is_empty()) {
                    return Err(invalid(i, "region", "must not be empty".into()));
                }
                if let Some(u) = endpoint_url
                    && !is_http_url(u)
                {
                    return Err(invalid(
                        i,
                        "endpoint_url",
                        format!("`{u}` is not an http:// or https:// URL"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A URL as it may be shown (logs, errors, the state file): the scheme and host
/// (and port), the rest replaced by `***`: a webhook's path and query often
/// hold its token, and user information a password.
/// `https://hooks.slack.com/services/T0/B0/XyZ?token=1` becomes
/// `https://hooks.slack.com/***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut out = format!("{scheme}://");
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str("***@");
            host
        }
        None => authority,
    };
    out.push_str(host);
    if !tail.is_empty() && tail != "/" {
        out.push_str("/***");
    }
    out
}

fn is_http_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

/// Parses a duration and checks it lies in `min..=max` milliseconds.
pub(crate) fn duration(text: &str, min: i64, max: i64) -> Result<i64, String> {
    let ms = parse_duration_ms(text)?;
    if !(min..=max).contains(&ms) {
        return Err(format!(
            "`{text}` must be between {} and {}",
            humantime::format_duration(std::time::Duration::from_millis(min as u64)),
            humantime::format_duration(std::time::Duration::from_millis(max as u64)),
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_path_query_or_user_information() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T0/B0/XyZ?token=1",
                "https://hooks.slack.com/***",
            ),
            ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/***"),
            ("http://127.0.0.1:8080?token=1", "http://127.0.0.1:8080/***"),
            ("https://user:pw@example.com/", "https://***@example.com"),
            ("https://example.com", "https://example.com"),
            ("not a url", "***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
    use crate::Config;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("waflog.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const SEED: &str = r#"
[[monitors]]
name = "UNK_source-Monitor"
period = "10m"
detector = "source-anomaly-detector"
[[monitors.triggers]]
name = "UNK_source-trigger"
severity = 1
actions = ["mail"]

[[monitors]]
name = "UNK_source-volume"
period = "10m"
query = { detector = "source-anomaly-detector", feature = "UNK_source", aggregation = "sum", window = "10m" }
[[monitors.triggers]]
name = "above-100"
severity = 2
condition = { op = ">", value = 100 }
throttle = "1h"

[[channels]]
name = "mail"
type = "sns"
topic_arn = "arn:aws:sns:us-east-1:123456789012:waf-alerts"

[[channels]]
name = "hook"
type = "webhook"
url = "https://hooks.example.com/x"
slack = true
headers = { Authorization = "Bearer t" }
"#;

    #[test]
    fn the_seed_monitor_parses_and_matches_the_built_in_example() {
        let c = parse(SEED).unwrap();
        assert_eq!(c.monitors.len(), 2);
        let mut seed = Monitor::seed();
        seed.triggers[0].actions = Some(vec!["mail".into()]);
        assert_eq!(c.monitors[0], seed);
        let mut q = Monitor::seed_query(100.0);
        q.name = "UNK_source-volume".into();
        q.triggers[0].name = "above-100".into();
        q.triggers[0].severity = 2;
        q.triggers[0].throttle = Some("1h".into());
        assert_eq!(c.monitors[1], q);
        let channels = c.channel_specs();
        assert_eq!(channels.len(), 2);
        match &channels[1] {
            Channel::Webhook {
                slack,
                timeout,
                max_attempts,
                insecure,
                headers,
                ..
            } => {
                assert!(slack);
                assert_eq!(timeout, "10s");
                assert_eq!(*max_attempts, 3);
                assert!(!insecure);
                assert_eq!(headers["Authorization"], "Bearer t");
            }
            other => panic!("{other:?}"),
        }
        // Serialising and parsing again gives the same configuration.
        let text = toml::to_string(&c).unwrap();
        assert_eq!(parse(&text).unwrap(), c);
    }

    #[test]
    fn the_module_doc_example_is_valid() {
        let text: String = include_str!("config.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start_matches(' ')))
            .collect();
        let c = parse(&text).unwrap();
        assert_eq!((c.monitors.len(), c.channel_specs().len()), (2, 2));
        assert_eq!(c.monitors[0].triggers[0].throttle.as_deref(), Some("1h"));
    }

    #[test]
    fn default_channel_is_stdout() {
        let c = parse("").unwrap();
        assert_eq!(c.channel_specs(), Channel::defaults());
        assert_eq!(c.channel_specs()[0].name(), "stdout");
        // A monitor without actions notifies every channel; `stdout` is one.
        let c = parse(
            "[[monitors]]\nname = \"m\"\ndetector = \"source-anomaly-detector\"\n[[monitors.triggers]]\nname = \"t\"\nactions = [\"stdout\"]\n",
        )
        .unwrap();
        assert_eq!(c.monitors[0].triggers[0].severity, 1);
        assert_eq!(c.monitors[0].triggers[0].condition, Condition::default());
    }

    #[test]
    fn invalid_values_name_the_field() {
        let base = "[[monitors]]\nname = \"m\"\ndetector = \"source-anomaly-detector\"\n";
        let cases: &[(&str, &str, &str)] = &[
            (
                "[[monitors.triggers]]\nname = \"a\"\n[[monitors.triggers]]\nname = \"b\"\nseverity = 7\n",
                "monitors[0].triggers[1].severity",
                "must be 1 to 5, got 7",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\n[[monitors.triggers]]\nname = \"a\"\n",
                "monitors[0].triggers[1].name",
                "used twice",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\nactions = [\"pager\"]\n",
                "monitors[0].triggers[0].actions[0]",
                "unknown channel `pager` (configured: stdout)",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\nmin_grade = 0.0\n",
                "monitors[0].triggers[0].min_grade",
                "(0, 1]",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\nmin_confidence = 1.5\n",
                "monitors[0].triggers[0].min_confidence",
                "[0, 1]",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\nthrottle = \"often\"\n",
                "monitors[0].triggers[0].throttle",
                "often",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\ncomplete_after = 0\n",
                "monitors[0].triggers[0].complete_after",
                "got 0",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\nmessage = \"Monitor {{monitr}}\"\n",
                "monitors[0].triggers[0].message",
                "{{monitr}}",
            ),
            (
                "[[monitors.triggers]]\nname = \"a\"\ncondition = { op = \">\", value = 3 }\n",
                "monitors[0].triggers[0].condition",
                "min_grade",
            ),
            ("", "monitors[0].triggers", "at least one trigger"),
        ];
        for (tail, field, reason) in cases {
            let e = err(&format!("{base}{tail}"));
            assert!(
                e.contains(&format!("`{field}`")) && e.contains(reason),
                "{e}"
            );
        }
        let e = err(
            "[[monitors]]\nname = \"m\"\nperiod = \"90s\"\ndetector = \"source-anomaly-detector\"\n[[monitors.triggers]]\nname = \"a\"\n",
        );
        assert!(
            e.contains("monitors[0].period") && e.contains("multiple"),
            "{e}"
        );
        let e = err(
            "[[monitors]]\nname = \"m\"\nperiod = \"soon\"\ndetector = \"source-anomaly-detector\"\n[[monitors.triggers]]\nname = \"a\"\n",
        );
        assert!(
            e.contains("monitors[0].period") && e.contains("soon"),
            "{e}"
        );
        // A name that is no configured detector may be a metric series' (known
        // when the input is read): WAF runs check for it then.
        let config = parse(
            "[[monitors]]\nname = \"m\"\ndetector = \"nope\"\n[[monitors.triggers]]\nname = \"a\"\n",
        )
        .unwrap();
        let e = config
            .check_waf_monitors(Path::new("waflog.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("monitors[0].detector") && e.contains("unknown detector `nope`"),
            "{e}"
        );
        let e = err(
            "[[monitors]]\nname = \"m\"\nentity = \"1.2.3.4\"\ndetector = \"source-anomaly-detector\"\n[[monitors.triggers]]\nname = \"a\"\n",
        );
        assert!(
            e.contains("monitors[0].entity") && e.contains("category_field"),
            "{e}"
        );
        let q = "[[monitors]]\nname = \"q\"\nquery = { detector = \"source-anomaly-detector\", feature = \"FEATURE\", aggregation = \"sum\", window = \"WINDOW\" }\n[[monitors.triggers]]\nname = \"a\"\nCOND\n";
        let query = |f: &str, w: &str, c: &str| {
            err(&q
                .replace("FEATURE", f)
                .replace("WINDOW", w)
                .replace("COND", c))
        };
        let e = query(
            "UNK_country",
            "10m",
            "condition = { op = \">\", value = 1 }",
        );
        assert!(
            e.contains("monitors[0].query.feature") && e.contains("UNK_source"),
            "{e}"
        );
        let e = query("UNK_source", "10s", "condition = { op = \">\", value = 1 }");
        assert!(e.contains("monitors[0].query.window"), "{e}");
        let e = query("UNK_source", "10m", "");
        assert!(e.contains("monitors[0].triggers[0].condition"), "{e}");
        let e = query("UNK_source", "10m", "condition = { op = \"~\", value = 1 }");
        assert!(e.contains("~") && e.contains("line 6"), "{e}");
        let e = query(
            "UNK_source",
            "10m",
            "condition = { op = \">\", value = 1 }\nmin_grade = 0.5",
        );
        assert!(e.contains("not both"), "{e}");
        let e = err("[[monitors]]\nname = \"m\"\n[[monitors.triggers]]\nname = \"a\"\n");
        assert!(e.contains("exactly one input") && e.contains("line"), "{e}");
        let e = err(
            "[[monitors]]\nname = \"m\"\ndetector = \"source-anomaly-detector\"\nperiode = \"1m\"\n",
        );
        assert!(e.contains("periode") && e.contains("line 4"), "{e}");
        let two = "[[monitors]]\nname = \"m\"\ndetector = \"source-anomaly-detector\"\n[[monitors.triggers]]\nname = \"a\"\n";
        let e = err(&format!("{two}{two}"));
        assert!(
            e.contains("monitors[1].name") && e.contains("used twice"),
            "{e}"
        );
    }

    #[test]
    fn invalid_channels_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("name = \"a\"\ntype = \"pager\"", "pager"),
            ("name = \"a\"\ntype = \"stdout\"\nurl = \"x\"", "url"),
            (
                "name = \"a\"\ntype = \"webhook\"\nurl = \"ftp://x\"",
                "`channels[0].url`",
            ),
            (
                "name = \"a\"\ntype = \"webhook\"\nurl = \"https://x\"\ntimeout = \"forever\"",
                "`channels[0].timeout`",
            ),
            (
                "name = \"a\"\ntype = \"webhook\"\nurl = \"https://x\"\nmax_attempts = 0",
                "`channels[0].max_attempts`",
            ),
            (
                "name = \"a\"\ntype = \"webhook\"\nurl = \"https://x\"\nheaders = { \"Bad Header\" = \"v\" }",
                "`channels[0].headers`",
            ),
            (
                "name = \"a\"\ntype = \"sns\"\ntopic_arn = \"waf-alerts\"",
                "`channels[0].topic_arn`",
            ),
            (
                "name = \"a\"\ntype = \"sns\"\ntopic_arn = \"arn:aws:sns:us-east-1:1:t\"\nendpoint_url = \"localhost:5000\"",
                "`channels[0].endpoint_url`",
            ),
            (
                "name = \"a\"\ntype = \"file\"\npath = \"\"",
                "`channels[0].path`",
            ),
            ("name = \"\"\ntype = \"stderr\"", "`channels[0].name`"),
        ];
        for (body, expect) in cases {
            let e = err(&format!("[[channels]]\n{body}\n"));
            assert!(e.contains(expect), "{body}: {e}");
        }
        let e = err(
            "[[channels]]\nname = \"a\"\ntype = \"stdout\"\n[[channels]]\nname = \"a\"\ntype = \"stderr\"\n",
        );
        assert!(
            e.contains("channels[1].name") && e.contains("used twice"),
            "{e}"
        );
    }

    #[test]
    fn validation_without_detectors_skips_detector_checks() {
        let mut m = Monitor::seed();
        m.input = MonitorInput::Detector {
            detector: "custom".into(),
            entity: Some("x".into()),
        };
        validate(
            &[m],
            &Channel::defaults(),
            Detectors::Unchecked,
            Path::new("x"),
        )
        .unwrap();
    }
}
