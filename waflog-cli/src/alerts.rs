//! Alerting in the CLI: the core's [`Evaluator`] fed with detection results, its
//! notifications delivered through the configured channels
//! (`crate::sink::notifiers`), acknowledgements
//! from `waflog alerts ack` picked up from a side file.
//!
//! Acknowledgements: `waflog alerts ack ID --state S` appends a line to `S.acks`;
//! a running `waflog detect --state S` applies and removes that file at its next
//! tick, and a later run applies it at start, so an ack is never lost to the two
//! processes writing the same state file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use waflog_core::Config;
use waflog_core::alert::{
    AlertBook, DeliveryReport, Evaluator, Label, Monitor, Notification, NotificationKind, Notifier,
};
use waflog_core::pipeline::{Feedback, Pipeline, ResultObserver};

use crate::aws::AwsContext;
use crate::sink::notifiers;

/// Milliseconds since the epoch, the delivery clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Why an acknowledgement was refused.
#[derive(Debug)]
pub enum AckRefusal {
    /// No alert has this ID.
    Unknown(String),
    /// The alert cannot be acknowledged (completed).
    Conflict(String),
}

/// The side file that carries acknowledgements to the state file's owner.
pub fn acks_path(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_os_string();
    p.push(".acks");
    PathBuf::from(p)
}

/// One acknowledgement line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    /// Alert ID (or a unique prefix).
    pub id: String,
    /// When, epoch ms.
    pub at: i64,
    /// The responder's verdict (`--not-anomaly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
}

/// Applies the acknowledgements waiting in `path` to the pipeline's alerts (and,
/// with a label, its detectors) and removes the file. Unknown or already closed
/// alerts are reported and skipped.
pub fn apply_acks<O: ResultObserver>(
    pipeline: &mut Pipeline<O>,
    path: &Path,
) -> anyhow::Result<usize> {
    // Renamed first, so an ack appended meanwhile goes to a new file, not lost.
    let taken = path.with_extension("acks.applying");
    match std::fs::rename(path, &taken) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut applied = 0;
    for ack in read_acks(&taken)? {
        match pipeline.acknowledge(&ack.id, ack.at, ack.label) {
            Ok(feedback) => {
                log_feedback(&feedback);
                applied += 1;
            }
            Err(e) => tracing::warn!("acknowledgement of {}: {e}", ack.id),
        }
    }
    let _ = std::fs::remove_file(&taken);
    Ok(applied)
}

/// Logs what an acknowledgement changed.
pub fn log_feedback(feedback: &[Feedback]) {
    for f in feedback {
        let a = &f.alert;
        match f.label {
            None => tracing::info!(
                "alert {} ({} / {}) acknowledged",
                a.id,
                a.monitor,
                a.trigger
            ),
            Some(label) => tracing::info!(
                "alert {} ({} / {}) completed as {label}; detector {} {}",
                a.id,
                a.monitor,
                a.trigger,
                a.detector,
                if f.learnt {
                    "learnt its level as normal"
                } else {
                    "kept its model (it takes no feedback, or no longer has this model)"
                }
            ),
        }
    }
}

/// The acknowledgements in an acks file (none when it does not exist); bad lines
/// are reported and skipped.
pub fn read_acks(path: &Path) -> anyhow::Result<Vec<Ack>> {
    let Some(bytes) = crate::files::read_capped_if_exists(
        path,
        crate::files::STATE_CAP,
        "acknowledgements file",
    )?
    else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| match serde_json::from_str::<Ack>(line) {
            Ok(ack) => Some(ack),
            Err(e) => {
                tracing::warn!("{}: bad acknowledgement line: {e}", path.display());
                None
            }
        })
        .collect())
}

/// Monitors to evaluate: the configured ones, or with `--alerts` and none
/// configured, one per detector ([`Monitor::defaults`]); on metric series
/// (`series`: the names of those saved in the state), one per series
/// ([`Monitor::for_series`]; a series first met in this run gets its own as it
/// opens, [`Pipeline::monitor_every_series`]).
pub fn monitors(config: &Config, alerts_flag: bool, series: Option<&[String]>) -> Vec<Monitor> {
    if !config.monitors.is_empty() {
        config.monitors.clone()
    } else if !alerts_flag {
        Vec::new()
    } else if let Some(names) = series {
        names.iter().map(|n| Monitor::for_series(n)).collect()
    } else {
        Monitor::defaults(&config.detector_specs())
    }
}

/// Counters of a run, for its summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct AlertCounts {
    /// Alerts that fired.
    pub fired: u64,
    /// Re-notifications of open alerts.
    pub renotified: u64,
    /// Alerts that completed.
    pub completed: u64,
    /// Notifications delivered.
    pub delivered: u64,
}

/// The CLI's side of alerting: where acknowledgements from `waflog alerts ack`
/// arrive, and when to look for them (the evaluator, its book and the channels
/// are in the core's [`Pipeline`]).
pub struct Alerting {
    acks: Option<PathBuf>,
    last_tick: std::time::Instant,
}

/// The notifiers of the configured channels.
pub type Channels = Vec<Box<dyn Notifier>>;

/// Alerting over `monitors`, resuming `book` when a state file had one: the
/// evaluator (acknowledgements waiting in the side file applied), the channels
/// that deliver, and the CLI's side.
pub fn start(
    config: &Config,
    monitors: &[Monitor],
    book: Option<AlertBook>,
    state: Option<&Path>,
    aws: &mut AwsContext,
    results_on_stdout: bool,
) -> anyhow::Result<(Evaluator, Channels, Alerting)> {
    let channels = config.channel_specs();
    let mut eval = Evaluator::new(monitors, &channels).context("invalid [[monitors]]")?;
    if let Some(b) = book {
        eval = eval.with_book(b).context("cannot resume the alert state")?;
    }
    let notifiers = notifiers::build(&channels, aws, results_on_stdout)?;
    let side = Alerting {
        acks: state.map(acks_path),
        last_tick: std::time::Instant::now(),
    };
    Ok((eval, notifiers, side))
}

impl Alerting {
    /// Applies waiting acknowledgements (at start, once the pipeline has its
    /// alerting, and at each tick).
    pub fn take_acks<O: ResultObserver>(&self, pipeline: &mut Pipeline<O>) -> anyhow::Result<()> {
        if let Some(p) = &self.acks {
            apply_acks(pipeline, p)?;
        }
        Ok(())
    }

    /// For a run that follows its input: about once a second, takes in
    /// acknowledgements and delivers what is due (retries after an outage).
    /// Returns whether it did (the alerts may have changed).
    pub fn tick<O: ResultObserver>(&mut self, pipeline: &mut Pipeline<O>) -> bool {
        if self.last_tick.elapsed() < std::time::Duration::from_secs(1) {
            return false;
        }
        self.last_tick = std::time::Instant::now();
        if let Err(e) = self.take_acks(pipeline) {
            tracing::warn!("{e:#}");
        }
        pipeline.deliver();
        true
    }
}

/// Acknowledges the alert with exactly this ID (from the dashboard), with the
/// responder's label if any.
pub fn acknowledge_exact<O: ResultObserver>(
    pipeline: &mut Pipeline<O>,
    id: &str,
    label: Option<Label>,
) -> Result<waflog_core::dashboard::AlertView, AckRefusal> {
    match pipeline.alerts().map(|b| b.get(id)) {
        Some(Ok(a)) if a.id == id => {}
        Some(_) => return Err(AckRefusal::Unknown(format!("no alert with ID `{id}`"))),
        None => return Err(AckRefusal::Unknown("alerting is off".into())),
    }
    let feedback = pipeline
        .acknowledge(id, now_ms(), label)
        .map_err(|e| AckRefusal::Conflict(e.to_string()))?;
    log_feedback(&feedback);
    feedback
        .first()
        .map(|f| waflog_core::dashboard::AlertView::of(&f.alert))
        .ok_or_else(|| AckRefusal::Unknown(format!("no alert with ID `{id}`")))
}

/// Logs what the monitors raised and counts it.
pub fn log_notifications(counts: &mut AlertCounts, notes: &[Notification]) {
    for n in notes {
        let what = match n.kind {
            NotificationKind::Fired => {
                counts.fired += 1;
                "ACTIVE"
            }
            NotificationKind::Renotify => {
                counts.renotified += 1;
                "still ACTIVE"
            }
            NotificationKind::Completed => {
                counts.completed += 1;
                "COMPLETED"
            }
            NotificationKind::Error => "ERROR",
            _ => "notified",
        };
        tracing::warn!(
            "alert {} {what}: {} / {} (severity {}){}",
            n.alert_id,
            n.monitor,
            n.trigger,
            n.severity,
            n.entity
                .as_deref()
                .map(|e| format!(", entity {e}"))
                .unwrap_or_default()
        );
    }
}

/// Counts a round of deliveries; failures stay in the outbox (and the state
/// file) and are logged on their alerts.
pub fn log_delivery(counts: &mut AlertCounts, report: &DeliveryReport, book: &AlertBook) {
    counts.delivered += report.delivered as u64;
    if report.retrying + report.gave_up > 0 {
        for a in book.open_alerts() {
            if let Some(err) = &a.error {
                tracing::error!("alert {} ({}): {}", a.id, a.monitor, err.reason);
            }
        }
    }
}

/// Without a state file to keep them, the undelivered notifications at the end
/// of a run are printed to stderr as JSON.
pub fn log_undelivered(book: &AlertBook) {
    for d in book.outbox() {
        tracing::error!(
            "undelivered notification to {}: {}",
            d.channel,
            d.notification.payload
        );
    }
}
