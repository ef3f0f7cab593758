//! Alerting in the CLI: the core's [`Evaluator`] fed with detection results, its
//! notifications delivered through the configured channels, acknowledgements
//! from `waflog alerts ack` picked up from a side file.
//!
//! Acknowledgements: `waflog alerts ack ID --state S` appends a line to `S.acks`;
//! a running `waflog detect --state S` applies and removes that file at its next
//! tick, and a later run applies it at start, so an ack is never lost to the two
//! processes writing the same state file.

pub mod notifiers;

use std::path::{Path, PathBuf};

use anyhow::Context;
use waflog_core::Config;
use waflog_core::alert::{
    AlertBook, DeliveryReport, Evaluator, Monitor, Notification, NotificationKind, Notifier,
    deliver_due, deliver_pending,
};
use waflog_core::detect::AnomalyResult;

use crate::aws::AwsContext;

/// Milliseconds since the epoch, the delivery clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
}

/// Applies the acknowledgements waiting in `path` to `book` and removes the file.
/// Unknown or already closed alerts are reported and skipped.
pub fn apply_acks(book: &mut AlertBook, path: &Path) -> anyhow::Result<usize> {
    // Renamed first, so an ack appended meanwhile goes to a new file, not lost.
    let taken = path.with_extension("acks.applying");
    match std::fs::rename(path, &taken) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut applied = 0;
    for ack in read_acks(&taken)? {
        match book.acknowledge(&ack.id, ack.at) {
            Ok(a) => {
                tracing::info!(
                    "alert {} ({} / {}) acknowledged",
                    a.id,
                    a.monitor,
                    a.trigger
                );
                applied += 1;
            }
            Err(e) => tracing::warn!("acknowledgement of {}: {e}", ack.id),
        }
    }
    let _ = std::fs::remove_file(&taken);
    Ok(applied)
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
/// configured, one per detector ([`Monitor::defaults`]).
pub fn monitors(config: &Config, alerts_flag: bool) -> Vec<Monitor> {
    if !config.monitors.is_empty() {
        config.monitors.clone()
    } else if alerts_flag {
        Monitor::defaults(&config.detector_specs())
    } else {
        Vec::new()
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

/// The evaluator, its channels and where acknowledgements arrive.
pub struct Alerting {
    eval: Evaluator,
    notifiers: Vec<Box<dyn Notifier>>,
    acks: Option<PathBuf>,
    /// Counters of this run.
    pub counts: AlertCounts,
    max_end: Option<i64>,
    last_tick: std::time::Instant,
}

impl Alerting {
    /// Alerting over `monitors`, resuming `book` when a state file had one.
    pub fn new(
        config: &Config,
        monitors: &[Monitor],
        book: Option<AlertBook>,
        state: Option<&Path>,
        aws: &mut AwsContext<'_>,
        results_on_stdout: bool,
    ) -> anyhow::Result<Alerting> {
        let channels = config.channel_specs();
        let mut eval = Evaluator::new(monitors, &channels).context("invalid [[monitors]]")?;
        if let Some(b) = book {
            eval = eval.with_book(b).context("cannot resume the alert state")?;
        }
        let notifiers = notifiers::build(&channels, aws, results_on_stdout)?;
        let mut a = Alerting {
            eval,
            notifiers,
            acks: state.map(acks_path),
            counts: AlertCounts::default(),
            max_end: None,
            last_tick: std::time::Instant::now(),
        };
        a.take_acks()?;
        // Notifications left undelivered by an earlier run: a new run, a new try.
        if !a.eval.book().outbox().is_empty() {
            let report = deliver_pending(a.eval.book_mut(), &mut a.notifiers, now_ms());
            a.counts.delivered += report.delivered as u64;
            tracing::info!(
                "{} notifications left by an earlier run: {} delivered, {} still pending",
                report.delivered + report.pending,
                report.delivered,
                report.pending
            );
        }
        Ok(a)
    }

    /// The alert state, for the state file.
    pub fn book(&self) -> &AlertBook {
        self.eval.book()
    }

    /// Applies waiting acknowledgements.
    pub fn take_acks(&mut self) -> anyhow::Result<()> {
        if let Some(p) = &self.acks {
            apply_acks(self.eval.book_mut(), p)?;
        }
        Ok(())
    }

    /// Acknowledges the alert with exactly this ID (from the dashboard).
    pub fn acknowledge_exact(
        &mut self,
        id: &str,
    ) -> Result<waflog_core::dashboard::AlertView, crate::dashboard::AckRefusal> {
        use crate::dashboard::AckRefusal;
        match self.eval.book().get(id) {
            Ok(a) if a.id == id => {}
            _ => return Err(AckRefusal::Unknown(format!("no alert with ID `{id}`"))),
        }
        self.eval
            .book_mut()
            .acknowledge(id, now_ms())
            .map(waflog_core::dashboard::AlertView::of)
            .map_err(|e| AckRefusal::Conflict(e.to_string()))
    }

    /// For a run that follows its input: about once a second, takes in
    /// acknowledgements and delivers what is due (retries after an outage).
    /// Returns whether it did (the alerts may have changed).
    pub fn tick(&mut self) -> bool {
        if self.last_tick.elapsed() < std::time::Duration::from_secs(1) {
            return false;
        }
        self.last_tick = std::time::Instant::now();
        if let Err(e) = self.take_acks() {
            tracing::warn!("{e:#}");
        }
        self.deliver();
        true
    }

    /// Feeds results, logs what fired and delivers what is due.
    pub fn observe(&mut self, results: &[AnomalyResult]) {
        for r in results {
            self.max_end = Some(
                self.max_end
                    .map_or(r.data_end_time, |m| m.max(r.data_end_time)),
            );
            let fired = self.eval.observe(r);
            self.log(&fired);
        }
        self.deliver();
    }

    /// Closes every period that ends by the last result seen (the end of a run).
    pub fn close_seen(&mut self) {
        if let Some(end) = self.max_end {
            let fired = self.eval.advance_to(end);
            self.log(&fired);
        }
        self.deliver();
    }

    fn log(&mut self, notes: &[Notification]) {
        for n in notes {
            let what = match n.kind {
                NotificationKind::Fired => {
                    self.counts.fired += 1;
                    "ACTIVE"
                }
                NotificationKind::Renotify => {
                    self.counts.renotified += 1;
                    "still ACTIVE"
                }
                NotificationKind::Completed => {
                    self.counts.completed += 1;
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

    /// Sends what is due now; failures stay in the outbox (and the state file).
    pub fn deliver(&mut self) -> DeliveryReport {
        if self.eval.book().next_due().is_none_or(|t| t > now_ms()) {
            return DeliveryReport {
                pending: self.eval.book().outbox().len(),
                ..DeliveryReport::default()
            };
        }
        let report = deliver_due(self.eval.book_mut(), &mut self.notifiers, now_ms());
        self.counts.delivered += report.delivered as u64;
        if report.retrying + report.gave_up > 0 {
            for a in self.eval.book().open_alerts() {
                if let Some(err) = &a.error {
                    tracing::error!("alert {} ({}): {}", a.id, a.monitor, err.reason);
                }
            }
        }
        report
    }

    /// The end of a run: closes the periods that ended by the last result, tries
    /// every undelivered notification once more, and returns how many are left.
    /// Without a state file to keep them, they are printed to stderr as JSON.
    pub fn finish(&mut self) -> usize {
        self.close_seen();
        let report = deliver_pending(self.eval.book_mut(), &mut self.notifiers, now_ms());
        self.counts.delivered += report.delivered as u64;
        let left = self.eval.book().outbox();
        if self.acks.is_none() {
            for d in left {
                tracing::error!(
                    "undelivered notification to {}: {}",
                    d.channel,
                    d.notification.payload
                );
            }
        }
        left.len()
    }
}
