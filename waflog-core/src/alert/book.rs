//! The alert state: open alerts, the history of completed ones, the outbox of
//! undelivered notifications and each monitor's evaluation progress. One
//! serializable value, saved in the `--state` file, so `waflog alerts list|ack` and a
//! restart see the same alerts and nothing waiting for a channel is lost.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::explain::Explanation;
use crate::error::AlertError;

/// Format version of a saved [`AlertBook`].
pub const STATE_VERSION: u32 = 1;
/// Completed alerts kept by default (oldest dropped first).
pub const DEFAULT_MAX_HISTORY: usize = 1000;

/// The state of an alert, as OpenSearch Alerting names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertState {
    /// The trigger fired; notified once, then only after the throttle.
    Active,
    /// A user acknowledged it: no more re-notifications; it still completes.
    Acknowledged,
    /// The trigger has not fired for `complete_after` consecutive periods (or
    /// detector intervals, when they are shorter than the period).
    Completed,
    /// Evaluation or delivery failed (see [`Alert::error`]); it returns to its
    /// previous state when a later evaluation or delivery succeeds.
    Error,
}

impl std::fmt::Display for AlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlertState::Active => "ACTIVE",
            AlertState::Acknowledged => "ACKNOWLEDGED",
            AlertState::Completed => "COMPLETED",
            AlertState::Error => "ERROR",
        })
    }
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueSource {
    /// The monitor could not be evaluated (a query's feature missing from a result,
    /// a value that is not a number).
    Evaluation,
    /// A notification could not be delivered.
    Delivery,
}

/// Why an alert is in ERROR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertIssue {
    /// What failed.
    pub source: IssueSource,
    /// The reason, e.g. `delivery to `ops-webhook` failed (attempt 2): HTTP 503`.
    pub reason: String,
    /// When it began: event time for evaluation errors, the caller's clock for
    /// delivery errors (epoch ms).
    pub since: i64,
}

/// One alert: a monitor's trigger firing (for one entity) from its first period to
/// its completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Short, stable ID (12 hex digits) for `waflog alerts ack ID`.
    pub id: String,
    /// Monitor name.
    pub monitor: String,
    /// Trigger name.
    pub trigger: String,
    /// 1 (highest) to 5.
    pub severity: u8,
    /// The detector the monitor reads.
    pub detector: String,
    /// The entity (values joined with `,`), for per-entity detectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// ACTIVE, ACKNOWLEDGED or COMPLETED; ERROR for an alert opened by an
    /// evaluation error that has not fired yet. See [`Alert::state`].
    pub lifecycle: AlertState,
    /// Set while evaluation or delivery is failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AlertIssue>,
    /// Start of the first period it fired in (or failed), epoch ms.
    pub start_time: i64,
    /// End of the last period it fired in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<i64>,
    /// End of the period that completed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// When it was acknowledged (the caller's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_time: Option<i64>,
    /// Periods from the first firing to the last (quiet periods in between count).
    pub periods_active: u32,
    /// Consecutive periods without firing, since the last firing.
    pub quiet_periods: u32,
    /// End of the period of the last Fired or Renotify notification (throttle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notified: Option<i64>,
    /// Notifications produced for it.
    pub notifications: u32,
    /// Deliveries that succeeded.
    pub deliveries: u32,
    /// When the last delivery succeeded (the caller's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<i64>,
    /// Failed delivery attempts.
    pub failures: u32,
    /// Deliveries given up: the notification never reached that channel.
    pub lost: u32,
    /// Why it fired, from its latest firing period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// The incident it fired on (see [`crate::alert::incident`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// For an alert on an incident another alert already notified: that alert's
    /// ID. Such an alert is merged into it: it sends no notification of its own, and
    /// the alert it is merged into stays open until it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// A responder's verdict (`waflog alerts ack ID --not-anomaly`, or the
    /// dashboard's button): the alert completed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<super::label::Label>,
}

impl Alert {
    /// The state to show: ERROR while an issue is set, else the lifecycle state.
    pub fn state(&self) -> AlertState {
        if self.error.is_some() {
            AlertState::Error
        } else {
            self.lifecycle
        }
    }

    /// True until it completes.
    pub fn is_open(&self) -> bool {
        self.lifecycle != AlertState::Completed
    }
}

/// Retry timing of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryPolicy {
    /// Wait after the first failure, before jitter (default 10 s). It doubles with
    /// each further failure.
    pub initial_backoff_ms: i64,
    /// Longest wait between attempts, before jitter (default 15 min).
    pub max_backoff_ms: i64,
    /// A delivery failing for this long since its first failure is given up and the
    /// loss recorded on its alert (default 24 h).
    pub max_age_ms: i64,
    /// Most deliveries kept; beyond, the oldest is given up (default 10,000).
    pub max_outbox: usize,
    /// Seed of the jitter, so retries are reproducible.
    pub seed: u64,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            initial_backoff_ms: 10_000,
            max_backoff_ms: 900_000,
            max_age_ms: 86_400_000,
            max_outbox: 10_000,
            seed: 0x5EED_A1E7,
        }
    }
}

/// One notification waiting for one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// ID, unique within the book.
    pub id: u64,
    /// The channel.
    pub channel: String,
    /// What to send.
    pub notification: Notification,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Earliest time of the next attempt (the caller's clock; `i64::MIN`: at once).
    pub next_attempt: i64,
    /// Time of the first failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<i64>,
    /// Reason of the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What happens to a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retried at this time (the caller's clock).
    At(i64),
    /// Given up; the loss is recorded on the alert.
    GaveUp,
}

/// Counters of the book.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BookStats {
    /// Results for a period already evaluated, ignored.
    pub late_results: u64,
    /// Results that could not be placed in a period (zero-length interval).
    pub ignored_results: u64,
    /// Deliveries given up.
    pub lost_deliveries: u64,
    /// Completed alerts dropped from the history (over its cap).
    pub dropped_history: u64,
}

/// The key of an open alert: monitor, trigger, entity.
pub(crate) type AlertKey = (String, String, Option<String>);

/// All alert state: see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    version: u32,
    #[serde(with = "keyed")]
    pub(crate) open: BTreeMap<AlertKey, Alert>,
    pub(crate) history: VecDeque<Alert>,
    outbox: Vec<Delivery>,
    next_delivery: u64,
    pub(crate) monitors: BTreeMap<String, MonitorState>,
    policy: DeliveryPolicy,
    max_history: usize,
    pub(crate) stats: BookStats,
}

impl Default for AlertBook {
    fn default() -> Self {
        AlertBook::new()
    }
}

/// A value that carries its own map key, so a map of them saves as a list.
pub(crate) trait Keyed {
    type Key: Ord;
    fn key(&self) -> Self::Key;
}

impl Keyed for Alert {
    type Key = AlertKey;
    fn key(&self) -> AlertKey {
        (
            self.monitor.clone(),
            self.trigger.clone(),
            self.entity.clone(),
        )
    }
}

/// Serde of `BTreeMap<K, V>` as the list of its values (JSON objects need string
/// keys; these keys are tuples).
pub(crate) mod keyed {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Keyed;

    pub(crate) fn serialize<K, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub(crate) fn deserialize<'de, V, D>(d: D) -> Result<BTreeMap<V::Key, V>, D::Error>
    where
        V: Keyed + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let list: Vec<V> = Vec::deserialize(d)?;
        Ok(list.into_iter().map(|v| (v.key(), v)).collect())
    }
}

/// SplitMix64's finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom
/// number generators", OOPSLA 2014): a fixed, well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Shortest ID prefix accepted by [`AlertBook::acknowledge`] and [`AlertBook::get`].
pub const MIN_ID_PREFIX: usize = 4;

impl AlertBook {
    /// An empty book with the default policy and history cap.
    pub fn new() -> AlertBook {
        AlertBook {
            version: STATE_VERSION,
            open: BTreeMap::new(),
            history: VecDeque::new(),
            outbox: Vec::new(),
            next_delivery: 1,
            monitors: BTreeMap::new(),
            policy: DeliveryPolicy::default(),
            max_history: DEFAULT_MAX_HISTORY,
            stats: BookStats::default(),
        }
    }

    /// Checks a book read from a state file was written in this format.
    pub fn check_version(&self) -> Result<(), AlertError> {
        if self.version != STATE_VERSION {
            return Err(AlertError::StateVersion {
                found: self.version,
                expected: STATE_VERSION,
            });
        }
        Ok(())
    }

    /// Open alerts (oldest first), then completed ones (newest first): what
    /// `waflog alerts list` shows.
    pub fn list(&self) -> Vec<&Alert> {
        let mut open: Vec<&Alert> = self.open.values().collect();
        open.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
        open.extend(self.history.iter().rev());
        open
    }

    /// The alert that notified incident `id` (open or completed), if any.
    pub fn incident_alert(&self, id: &str) -> Option<&Alert> {
        self.open
            .values()
            .chain(self.history.iter())
            .find(|a| a.merged_into.is_none() && a.incident_id.as_deref() == Some(id))
    }

    /// Open alerts, by monitor, trigger and entity.
    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Completed alerts, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Alert> {
        self.history.iter()
    }

    /// The alert with this ID, or the only one whose ID starts with this prefix (at
    /// least [`MIN_ID_PREFIX`] characters).
    pub fn get(&self, id: &str) -> Result<&Alert, AlertError> {
        let all = || self.open.values().chain(self.history.iter());
        if let Some(a) = all().find(|a| a.id == id) {
            return Ok(a);
        }
        let matches: Vec<&Alert> = if id.len() >= MIN_ID_PREFIX {
            all().filter(|a| a.id.starts_with(id)).collect()
        } else {
            Vec::new()
        };
        match matches.as_slice() {
            [] => Err(AlertError::UnknownAlert { id: id.into() }),
            [one] => Ok(one),
            many => Err(AlertError::AmbiguousId {
                id: id.into(),
                matches: many
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Acknowledges an open alert (ID or unique prefix) at `at_ms`: it will not be
    /// re-notified and still completes. Acknowledging twice is not an error.
    pub fn acknowledge(&mut self, id: &str, at_ms: i64) -> Result<&Alert, AlertError> {
        let found = self.get(id)?;
        let (full, key) = (found.id.clone(), found.key());
        if self.open.get(&key).is_none_or(|a| a.id != full) {
            let state = found.state().to_string();
            return Err(AlertError::NotOpen { id: full, state });
        }
        let Some(a) = self.open.get_mut(&key) else {
            return Err(AlertError::UnknownAlert { id: full });
        };
        if a.lifecycle != AlertState::Acknowledged {
            a.lifecycle = AlertState::Acknowledged;
            a.acknowledged_time = Some(at_ms);
        }
        Ok(a)
    }

    /// Undelivered notifications, oldest first.
    pub fn outbox(&self) -> &[Delivery] {
        &self.outbox
    }

    /// Deliveries due at `now_ms` (copies; they stay in the outbox until
    /// [`delivered`](Self::delivered), [`failed`](Self::failed) or
    /// [`rejected`](Self::rejected) is called), in the order they were queued. Each
    /// channel gets its notifications in that order: a delivery waiting for its retry
    /// holds back the later ones to its channel, so a channel that was down gets an
    /// alert's `fired` before its `completed`, whatever the backoff of each retry.
    pub fn due(&self, now_ms: i64) -> Vec<Delivery> {
        let mut held: Vec<&str> = Vec::new();
        let mut due = Vec::new();
        for d in self.queued() {
            if held.contains(&d.channel.as_str()) {
                continue;
            }
            if d.next_attempt <= now_ms {
                due.push(d.clone());
            } else {
                held.push(&d.channel);
            }
        }
        due
    }

    /// The outbox in queue order.
    fn queued(&self) -> Vec<&Delivery> {
        let mut all: Vec<&Delivery> = self.outbox.iter().collect();
        all.sort_by_key(|d| d.id);
        all
    }

    /// Per channel, its first delivery in queue order.
    fn channel_heads(&self) -> Vec<(&str, &Delivery)> {
        let mut heads: Vec<(&str, &Delivery)> = Vec::new();
        for d in self.queued() {
            if !heads.iter().any(|(c, _)| *c == d.channel) {
                heads.push((d.channel.as_str(), d));
            }
        }
        heads
    }

    /// Earliest next attempt of a delivery that is not held back (see
    /// [`due`](Self::due)), if any (for the caller's sleep).
    pub fn next_due(&self) -> Option<i64> {
        self.channel_heads()
            .into_iter()
            .map(|(_, d)| d.next_attempt)
            .min()
    }

    /// Records a successful delivery at `at_ms`. The alert leaves ERROR when none of
    /// its other pending deliveries is failing.
    pub fn delivered(&mut self, delivery: u64, at_ms: i64) -> Result<(), AlertError> {
        let i = self.position(delivery)?;
        let d = self.outbox.remove(i);
        let alert_id = d.notification.alert_id;
        let still_failing = self
            .outbox
            .iter()
            .any(|o| o.notification.alert_id == alert_id && o.last_error.is_some());
        if let Some(a) = self.alert_mut(&alert_id) {
            a.deliveries += 1;
            a.last_delivery = Some(at_ms);
            if !still_failing
                && a.error
                    .as_ref()
                    .is_some_and(|e| e.source == IssueSource::Delivery)
            {
                a.error = None;
            }
        }
        Ok(())
    }

    /// Records a failed attempt at `at_ms`: the alert goes to ERROR with the reason
    /// and the delivery is retried after an exponential backoff with jitter, or
    /// given up once it has failed for [`DeliveryPolicy::max_age_ms`].
    pub fn failed(&mut self, delivery: u64, at_ms: i64, reason: &str) -> Result<Retry, AlertError> {
        let i = self.position(delivery)?;
        let policy = self.policy.clone();
        let d = &mut self.outbox[i];
        d.attempts = d.attempts.saturating_add(1);
        let first = *d.first_failure.get_or_insert(at_ms);
        d.last_error = Some(reason.to_string());
        let (alert_id, channel, attempts) = (
            d.notification.alert_id.clone(),
            d.channel.clone(),
            d.attempts,
        );
        if at_ms.saturating_sub(first) >= policy.max_age_ms {
            let age = humantime::format_duration(std::time::Duration::from_millis(
                at_ms.saturating_sub(first).max(0) as u64,
            ));
            self.outbox.remove(i);
            self.record_loss(
                &alert_id,
                at_ms,
                format!("notification to `{channel}` lost: gave up after {attempts} attempts over {age}: {reason}"),
                true,
            );
            return Ok(Retry::GaveUp);
        }
        let next = at_ms.saturating_add(backoff_ms(&policy, delivery, attempts));
        self.outbox[i].next_attempt = next;
        if let Some(a) = self.alert_mut(&alert_id) {
            a.failures = a.failures.saturating_add(1);
            let since = match &a.error {
                Some(e) if e.source == IssueSource::Delivery => e.since,
                _ => at_ms,
            };
            a.error = Some(AlertIssue {
                source: IssueSource::Delivery,
                reason: format!("delivery to `{channel}` failed (attempt {attempts}): {reason}"),
                since,
            });
        }
        Ok(Retry::At(next))
    }

    /// Records a failure retrying cannot fix: the delivery is given up at once and
    /// the loss recorded on the alert.
    pub fn rejected(
        &mut self,
        delivery: u64,
        at_ms: i64,
        reason: &str,
    ) -> Result<Retry, AlertError> {
        let i = self.position(delivery)?;
        let d = self.outbox.remove(i);
        self.record_loss(
            &d.notification.alert_id,
            at_ms,
            format!("notification to `{}` lost: rejected: {reason}", d.channel),
            true,
        );
        Ok(Retry::GaveUp)
    }

    /// The retry policy.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// Replaces the retry policy (kept in the state).
    pub fn set_policy(&mut self, policy: DeliveryPolicy) {
        self.policy = policy;
    }

    /// Completed alerts kept (default [`DEFAULT_MAX_HISTORY`]).
    pub fn max_history(&self) -> usize {
        self.max_history
    }

    /// Sets how many completed alerts are kept; older ones are dropped now.
    pub fn set_max_history(&mut self, max: usize) {
        self.max_history = max;
        self.trim_history();
    }

    /// Counters.
    pub fn stats(&self) -> &BookStats {
        &self.stats
    }

    /// Whether monitor `name` has been fed a result of its detector (in this run
    /// or one whose book this continues).
    pub fn has_observed(&self, name: &str) -> bool {
        self.monitors.contains_key(name)
    }

    fn position(&self, delivery: u64) -> Result<usize, AlertError> {
        self.outbox
            .iter()
            .position(|d| d.id == delivery)
            .ok_or(AlertError::UnknownDelivery { id: delivery })
    }

    fn alert_mut(&mut self, id: &str) -> Option<&mut Alert> {
        self.open
            .values_mut()
            .chain(self.history.iter_mut())
            .find(|a| a.id == id)
    }

    fn record_loss(&mut self, alert_id: &str, at_ms: i64, reason: String, failure: bool) {
        self.stats.lost_deliveries += 1;
        if let Some(a) = self.alert_mut(alert_id) {
            a.lost = a.lost.saturating_add(1);
            if failure {
                a.failures = a.failures.saturating_add(1);
            }
            a.error = Some(AlertIssue {
                source: IssueSource::Delivery,
                reason,
                since: at_ms,
            });
        }
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.max_history {
            self.history.pop_front();
            self.stats.dropped_history += 1;
        }
    }

    /// A new, unique ID for an alert of `key` starting at `start_ms`.
    pub(crate) fn new_id(&self, key: &AlertKey, start_ms: i64) -> String {
        let entity = key.2.as_deref().unwrap_or("\u{0}none");
        let start = start_ms.to_le_bytes();
        let mut salt: u64 = 0;
        loop {
            let s = salt.to_le_bytes();
            let h = crate::text::fnv1a(&[
                key.0.as_bytes(),
                key.1.as_bytes(),
                entity.as_bytes(),
                &start,
                &s,
            ]);
            let id = format!("{:012x}", mix(h) >> 16);
            let taken = self
                .open
                .values()
                .chain(self.history.iter())
                .any(|a| a.id == id);
            if !taken {
                return id;
            }
            salt += 1;
        }
    }

    /// Queues `n` for each of its channels.
    pub(crate) fn enqueue(&mut self, n: &Notification) {
        for channel in &n.channels {
            while self.outbox.len() >= self.policy.max_outbox.max(1) {
                let old = self.outbox.remove(0);
                self.record_loss(
                    &old.notification.alert_id,
                    old.first_failure.unwrap_or(old.notification.period_end),
                    format!(
                        "notification to `{}` lost: the outbox was full ({} deliveries)",
                        old.channel, self.policy.max_outbox
                    ),
                    false,
                );
            }
            self.outbox.push(Delivery {
                id: self.next_delivery,
                channel: channel.clone(),
                notification: n.clone(),
                attempts: 0,
                next_attempt: i64::MIN,
                first_failure: None,
                last_error: None,
            });
            self.next_delivery += 1;
        }
    }

    /// Moves a completed alert to the history.
    pub(crate) fn archive(&mut self, alert: Alert) {
        self.history.push_back(alert);
        self.trim_history();
    }
}

/// Wait before attempt `attempts + 1` of `delivery`: `initial * 2^(attempts - 1)`,
/// capped at `max`, with "equal jitter" (half fixed, half uniform), which spreads
/// retries of many deliveries while keeping a floor (Brooker, "Exponential Backoff
/// And Jitter", AWS Architecture Blog, 2015). The jitter is a hash of the policy's
/// seed, the delivery and the attempt, so a run is reproducible.
pub fn backoff_ms(policy: &DeliveryPolicy, delivery: u64, attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(32);
    let base = policy
        .initial_backoff_ms
        .max(1)
        .saturating_mul(1_i64 << doublings)
        .min(policy.max_backoff_ms.max(1));
    let u = (mix(policy.seed ^ mix(delivery ^ (u64::from(attempts) << 48))) >> 11) as f64
        / (1_u64 << 53) as f64;
    let half = base / 2;
    half + ((base - half) as f64 * u) as i64
}

/// Why a notification was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotificationKind {
    /// A trigger fired and a new alert is ACTIVE.
    Fired,
    /// An ACTIVE alert is still firing and its throttle has passed.
    Renotify,
    /// An alert completed: its trigger has not fired for `complete_after` periods
    /// (or detector intervals, when they are shorter than the period).
    Completed,
    /// A monitor could not be evaluated (the alert is in ERROR).
    Error,
    /// `waflog alerts test`: a dry run of a trigger without data.
    Test,
    /// The detector took the level of a sustained anomaly as the new normal (its
    /// `accept_shift_after` passed): one message on the open alert, which then
    /// completes as usual when its trigger stops firing.
    Accepted,
}

impl NotificationKind {
    /// A short word for subjects (`{{kind}}`): `alert`, `still active`, `completed`,
    /// `error`, `test`, `new normal`.
    pub fn label(self) -> &'static str {
        match self {
            NotificationKind::Fired => "alert",
            NotificationKind::Renotify => "still active",
            NotificationKind::Completed => "completed",
            NotificationKind::Error => "error",
            NotificationKind::Test => "test",
            NotificationKind::Accepted => "new normal",
        }
    }
}

/// One message about one alert, for one or more channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The alert ID (`test` for test notifications).
    pub alert_id: String,
    /// Why it was produced.
    pub kind: NotificationKind,
    /// Monitor name.
    pub monitor: String,
    /// Trigger name.
    pub trigger: String,
    /// 1 (highest) to 5.
    pub severity: u8,
    /// The detector the monitor reads.
    pub detector: String,
    /// The entity (values joined with `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The alert's state once this notification was produced.
    pub state: AlertState,
    /// Start of the evaluated period, epoch ms.
    pub period_start: i64,
    /// End of the evaluated period, epoch ms.
    pub period_end: i64,
    /// Periods from the alert's first firing to its last.
    pub periods_active: u32,
    /// The channels it goes to.
    pub channels: Vec<String>,
    /// Rendered subject.
    pub subject: String,
    /// Rendered message.
    pub text: String,
    /// Machine-readable JSON: every field above (times also as RFC 3339) and the
    /// explanation.
    pub payload: serde_json::Value,
}

impl Notification {
    /// A Slack-compatible webhook body: `{"text": <message>}`.
    pub fn slack_body(&self) -> serde_json::Value {
        serde_json::json!({ "text": self.text })
    }
}

/// The best result of one trigger and entity in the open period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Candidate {
    pub(crate) trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) entity: Option<String>,
    #[serde(with = "crate::text::lenient_f64")]
    pub(crate) grade: f64,
    pub(crate) explanation: Explanation,
    /// End of the latest firing result in the period (`None` in states written
    /// before it was recorded: taken as the period's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_at: Option<i64>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Keyed for Candidate {
    type Key = (String, Option<String>);
    fn key(&self) -> Self::Key {
        (self.trigger.clone(), self.entity.clone())
    }
}

/// A query monitor's values of one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Slot {
    pub(crate) start: i64,
    pub(crate) end: i64,
    #[serde(with = "crate::text::lenient_f64")]
    pub(crate) sum: f64,
    pub(crate) count: u64,
    #[serde(with = "crate::text::lenient_f64")]
    pub(crate) min: f64,
    #[serde(with = "crate::text::lenient_f64")]
    pub(crate) max: f64,
    /// Grade and explanation of the interval's highest-graded anomalous result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) top: Option<(f64, Explanation)>,
}

/// One monitor's evaluation progress, saved in the book.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct MonitorState {
    /// Detector, input and period the state was built for.
    pub(crate) signature: String,
    /// The period length in force (0 until known).
    pub(crate) period_ms: i64,
    /// Detector inputs: the length of the detector's intervals (0 until a result
    /// arrives). A quiet spell is counted in these when they are shorter than the
    /// period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) interval_ms: i64,
    /// Start of the oldest period not evaluated yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next_start: Option<i64>,
    /// Detector inputs: best firing result per trigger and entity in that period.
    #[serde(default, with = "keyed")]
    pub(crate) candidates: BTreeMap<(String, Option<String>), Candidate>,
    /// Query inputs: per-interval values of the window.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub(crate) window: VecDeque<Slot>,
    /// Query inputs: why the open period cannot be evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Detector inputs: entities whose model accepted a shift as the new normal in
    /// the open period.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub(crate) accepted: std::collections::BTreeSet<Option<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_keeps_any_last_time_and_reads_states_without_one() {
        let old = r#"{"trigger":"t","grade":0.5,"explanation":{"detector":"d"}}"#;
        let c: Candidate = serde_json::from_str(old).unwrap();
        assert_eq!(c.last_at, None);
        // Every time is a time, the epoch and before it too.
        for at in [-60_000, 0, 1_714_521_600_000] {
            let c = Candidate {
                last_at: Some(at),
                ..c.clone()
            };
            let text = serde_json::to_string(&c).unwrap();
            assert_eq!(
                serde_json::from_str::<Candidate>(&text).unwrap(),
                c,
                "{text}"
            );
        }
        assert!(!serde_json::to_string(&c).unwrap().contains("last_at"));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = DeliveryPolicy::default();
        let waits: Vec<i64> = (1..=10).map(|a| backoff_ms(&p, 7, a)).collect();
        for (a, w) in (1..=10).zip(&waits) {
            let base = (10_000_i64 << (a - 1)).min(900_000);
            assert!((base / 2..=base).contains(w), "attempt {a}: {w}");
        }
        assert_eq!(
            waits,
            (1..=10).map(|a| backoff_ms(&p, 7, a)).collect::<Vec<_>>()
        );
        assert_ne!(backoff_ms(&p, 7, 1), backoff_ms(&p, 8, 1));
        assert!(backoff_ms(&p, 1, u32::MAX) <= 900_000);
    }

    #[test]
    fn ids_are_short_hex_and_unique() {
        let b = AlertBook::new();
        let k = ("m".to_string(), "t".to_string(), None);
        let id = b.new_id(&k, 60_000);
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, b.new_id(&k, 60_000));
        assert_ne!(id, b.new_id(&k, 120_000));
        assert_ne!(
            id,
            b.new_id(&("m".into(), "t".into(), Some("x".into())), 60_000)
        );
    }

    #[test]
    fn unknown_ids_and_versions() {
        let mut b = AlertBook::new();
        assert!(matches!(
            b.acknowledge("abcd", 0),
            Err(AlertError::UnknownAlert { .. })
        ));
        assert!(matches!(
            b.delivered(9, 0),
            Err(AlertError::UnknownDelivery { id: 9 })
        ));
        b.check_version().unwrap();
        let mut v = serde_json::to_value(&b).unwrap();
        v["version"] = 99.into();
        let old: AlertBook = serde_json::from_value(v).unwrap();
        assert_eq!(
            old.check_version().unwrap_err().to_string(),
            "alert state format version 99 is not supported (this waflog writes version 1)"
        );
    }
}
