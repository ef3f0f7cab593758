//! Notifications and their delivery: the [`Notifier`] seam the CLI's channels
//! implement, and [`deliver_due`], which drives the outbox of an [`AlertBook`].

use std::io::Write;

use super::book::{AlertBook, Retry};
pub use super::book::{Notification, NotificationKind};
use crate::error::NotifyError;

/// A channel that sends notifications. Implementations do the I/O (the CLI's
/// webhook, SNS and file channels); [`deliver_due`] does the bookkeeping.
pub trait Notifier {
    /// The channel name (`[[channels]] name`).
    fn name(&self) -> &str;
    /// Sends one notification. [`NotifyError::Failed`] is retried later with backoff;
    /// [`NotifyError::Rejected`] is not.
    fn send(&mut self, notification: &Notification) -> Result<(), NotifyError>;
}

/// What [`WriteNotifier`] writes per notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteFormat {
    /// The JSON payload, one per line (NDJSON).
    #[default]
    Json,
    /// The subject and the message, then a blank line.
    Text,
}

/// A [`Notifier`] over any writer: standard output or error, or a file (the
/// `stdout`, `stderr` and `file` channels).
#[derive(Debug)]
pub struct WriteNotifier<W> {
    name: String,
    writer: W,
    format: WriteFormat,
}

impl<W: Write> WriteNotifier<W> {
    /// A notifier named `name` writing `format` to `writer`.
    pub fn new(name: &str, writer: W, format: WriteFormat) -> WriteNotifier<W> {
        WriteNotifier {
            name: name.into(),
            writer,
            format,
        }
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

impl<W: Write> Notifier for WriteNotifier<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, n: &Notification) -> Result<(), NotifyError> {
        let r = match self.format {
            WriteFormat::Json => crate::text::to_json_writer(&mut self.writer, &n.payload)
                .map_err(std::io::Error::from)
                .and_then(|()| self.writer.write_all(b"\n")),
            // A template may place record-derived text anywhere: what reaches a
            // terminal or a text file keeps its line feeds, nothing else raw.
            WriteFormat::Text => writeln!(
                self.writer,
                "{}\n{}\n",
                crate::text::escape_control(&n.subject),
                crate::text::escape_control_lines(&n.text)
            ),
        };
        r.and_then(|()| self.writer.flush())
            .map_err(|e| NotifyError::Failed(e.to_string()))
    }
}

/// What one [`deliver_due`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Deliveries sent.
    pub delivered: usize,
    /// Deliveries that failed and were rescheduled.
    pub retrying: usize,
    /// Deliveries given up (rejected, or failing for longer than the maximum age).
    pub gave_up: usize,
    /// Deliveries left in the outbox.
    pub pending: usize,
}

/// Sends every delivery of `book`'s outbox that is due at `now_ms` through the
/// notifier of its channel and records the outcome. A channel without a notifier is
/// a failure (retried, so a configuration fixed before the maximum age still
/// delivers).
pub fn deliver_due(
    book: &mut AlertBook,
    notifiers: &mut [Box<dyn Notifier>],
    now_ms: i64,
) -> DeliveryReport {
    deliver(book, notifiers, now_ms, now_ms)
}

/// Sends every delivery in `book`'s outbox now, whatever its retry schedule (a new
/// run after an outage, or the last chance before a run ends), recording outcomes
/// as [`deliver_due`] does.
pub fn deliver_pending(
    book: &mut AlertBook,
    notifiers: &mut [Box<dyn Notifier>],
    now_ms: i64,
) -> DeliveryReport {
    deliver(book, notifiers, i64::MAX, now_ms)
}

fn deliver(
    book: &mut AlertBook,
    notifiers: &mut [Box<dyn Notifier>],
    due_by: i64,
    now_ms: i64,
) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    // Channels that failed in this pass: their later deliveries wait, in order.
    let mut down: Vec<String> = Vec::new();
    for d in book.due(due_by) {
        if down.contains(&d.channel) {
            continue;
        }
        let outcome = match notifiers.iter_mut().find(|n| n.name() == d.channel) {
            Some(n) => n.send(&d.notification),
            None => Err(NotifyError::Failed(format!(
                "no notifier for channel `{}`",
                d.channel
            ))),
        };
        // The ID comes from the outbox just read, so these cannot fail.
        let retry = match outcome {
            Ok(()) => {
                let _ = book.delivered(d.id, now_ms);
                report.delivered += 1;
                continue;
            }
            Err(NotifyError::Failed(reason)) => {
                down.push(d.channel.clone());
                book.failed(d.id, now_ms, &reason)
            }
            Err(NotifyError::Rejected(reason)) => book.rejected(d.id, now_ms, &reason),
        };
        match retry {
            Ok(Retry::At(_)) => report.retrying += 1,
            Ok(Retry::GaveUp) => report.gave_up += 1,
            Err(_) => {}
        }
    }
    report.pending = book.outbox().len();
    report
}
