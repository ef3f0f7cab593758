//! Alerting: monitors, triggers, the alert lifecycle and notification bookkeeping.
//!
//! The model is OpenSearch Alerting's, with the fixes its users ask for:
//!
//! - A [`Monitor`] has a period (default: its detector's interval) and an input:
//!   a detector's anomaly results (optionally one entity) or a query over one feature
//!   of those results (e.g. the sum of `UNK_source` over the last 10 minutes).
//! - A [`Trigger`] has a severity (1 highest to 5), a [`Condition`] (grade and
//!   confidence at least 0.7 by default, as OpenSearch AD monitors; a comparison for
//!   queries) and actions: the [`Channel`]s to notify.
//! - One [`Alert`] per monitor, trigger and entity while it stays open: ACTIVE at the
//!   first firing (one notification), re-notified only after the trigger's throttle
//!   with the periods it has been active, ACKNOWLEDGED by a user (no more
//!   re-notifications), COMPLETED after `complete_after` quiet periods (default 2,
//!   so one quiet period does not flap it), ERROR while evaluation or delivery fails.
//! - Each [`Notification`] carries the rendered subject and text (the seed's message
//!   by default, see [`template`]), an [`Explanation`] (feature moved, actual against
//!   expected, attribution, top contributors) and a JSON payload.
//! - The core does no I/O: notifications wait in the [`AlertBook`]'s outbox, saved
//!   with the rest of the alert state, until a [`Notifier`] (the CLI's stdout, file,
//!   webhook and SNS channels) sends them; failures are retried with exponential
//!   backoff and jitter, and a notification given up is recorded on its alert.
//!
//! Times are event time: periods close as results of later periods arrive, as the
//! caller reports a detector's results complete through a time
//! ([`Evaluator::fed_through`]; the pipeline does after each scoring step), or at the
//! caller's watermark ([`Evaluator::advance_to`]). No wall clock is read here: the
//! caller passes its clock to the delivery calls, so every run is reproducible.
//!
//! ```
//! use waflog_core::alert::{deliver_due, Channel, Evaluator, Monitor, Notifier, WriteFormat, WriteNotifier};
//! use waflog_core::detect::{AnomalyResult, Score};
//!
//! let mut eval = Evaluator::new(&[Monitor::seed()], &Channel::defaults()).unwrap();
//! // One anomalous one-minute result in the 10-minute period 18:10-18:20 ...
//! let score = Score { anomaly_score: 9.0, anomaly_grade: 0.9, confidence: 0.8, threshold: 5.0,
//!     expected: vec![3.0], attribution: vec![1.0], shifted_categories: vec![],
//!     band: vec![] };
//! let minute = |m: i64| (1_669_831_800_000 + m * 60_000, 1_669_831_860_000 + m * 60_000);
//! let r = AnomalyResult::from_score("source-anomaly-detector", &["UNK_source".into()],
//!     &[240.0], &score, minute(2), 0);
//! assert!(eval.observe(&r).is_empty()); // the period is still open
//! // ... and the watermark passes the period end: the alert fires, once.
//! let fired = eval.advance_to(minute(10).0);
//! assert_eq!(fired.len(), 1);
//! assert!(fired[0].text.starts_with(
//!     "Monitor UNK_source-Monitor just entered alert status. Please investigate the issue.\n  - Trigger: UNK_source-trigger\n  - Severity: 1\n  - Period start: 2022-11-30T18:10:00.000Z\n  - Period end: 2022-11-30T18:20:00.000Z"));
//! assert!(fired[0].text.contains("Feature moved: UNK_source = 240 (expected 3.0)"));
//! // Delivery: the CLI's notifiers; here standard output's channel into a buffer.
//! let mut notifiers: Vec<Box<dyn Notifier>> =
//!     vec![Box::new(WriteNotifier::new("stdout", Vec::new(), WriteFormat::Json))];
//! let report = deliver_due(eval.book_mut(), &mut notifiers, 1_700_000_000_000);
//! assert_eq!((report.delivered, report.pending), (1, 0));
//! ```

pub mod book;
pub mod config;
pub mod evaluate;
pub mod explain;
pub mod incident;
pub mod label;
pub mod notify;
pub mod template;

#[cfg(test)]
mod tests;

pub use crate::error::{AlertError, NotifyError};
pub use book::{
    Alert, AlertBook, AlertIssue, AlertState, BookStats, Delivery, DeliveryPolicy, IssueSource,
    Retry,
};
pub use config::{
    Channel, CompareOp, Condition, Detectors, Monitor, MonitorInput, QueryAggregation, QueryInput,
    Trigger, redact_url,
};
pub use evaluate::{Evaluator, entity_key};
pub use explain::{AnomalyDetail, Explanation, FeatureMove, QueryValue};
pub use incident::{Cause, Correlator, Incident, IncidentState};
pub use label::Label;
pub use notify::{
    DeliveryReport, Notification, NotificationKind, Notifier, WriteFormat, WriteNotifier,
    deliver_due, deliver_pending,
};
