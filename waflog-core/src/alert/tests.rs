//! Lifecycle tests on scripted result streams.

use super::*;
use crate::detect::result::{Contributor, Contributors, EntityValue};
use crate::detect::{AnomalyResult, Score};

/// 2022-11-30T18:10:00Z, the seed's alert day, aligned to 10 minutes.
const T0: i64 = 1_669_831_800_000;
const DETECTOR: &str = "source-anomaly-detector";

fn at(minute: i64) -> i64 {
    T0 + minute * 60_000
}

/// A one-minute result of `DETECTOR` with one feature, `UNK_source`.
fn result(minute: i64, grade: f64, value: f64, entity: Option<&str>) -> AnomalyResult {
    let score = Score {
        anomaly_score: if grade > 0.0 { 9.0 } else { 1.0 },
        anomaly_grade: grade,
        confidence: 0.9,
        threshold: 5.0,
        expected: vec![2.0],
        attribution: vec![1.0],
        shifted_categories: vec![],
        band: vec![],
    };
    let mut r = AnomalyResult::from_score(
        DETECTOR,
        &["UNK_source".into()],
        &[value],
        &score,
        (at(minute), at(minute + 1)),
        at(minute + 1),
    );
    r.records = 100;
    r.entity = entity.map(|e| {
        vec![EntityValue {
            name: "httpRequest.clientIp".into(),
            value: e.into(),
        }]
    });
    if grade > 0.0 {
        r.contributors = Some(vec![Contributors {
            field: "httpSourceName".into(),
            top: vec![Contributor {
                value: "-".into(),
                count: value as u64,
                expected: 2.0,
            }],
        }]);
    }
    r
}

/// Results for minutes `0..n`, graded 0.9 in the anomalous ranges `[a, b)`.
fn script(n: i64, anomalous: &[(i64, i64)]) -> Vec<AnomalyResult> {
    (0..n)
        .map(|m| {
            if anomalous.iter().any(|&(a, b)| (a..b).contains(&m)) {
                result(m, 0.9, 240.0, None)
            } else {
                result(m, 0.0, 2.0, None)
            }
        })
        .collect()
}

fn detector_monitor(period: &str, trigger: Trigger) -> Monitor {
    Monitor {
        name: "UNK_source-Monitor".into(),
        period: Some(period.into()),
        input: MonitorInput::Detector {
            detector: DETECTOR.into(),
            entity: None,
        },
        triggers: vec![trigger],
    }
}

fn evaluator(monitors: &[Monitor]) -> Evaluator {
    Evaluator::new(monitors, &Channel::defaults()).unwrap()
}

fn feed(e: &mut Evaluator, results: &[AnomalyResult]) -> Vec<Notification> {
    results.iter().flat_map(|r| e.observe(r)).collect()
}

fn kinds(ns: &[Notification]) -> Vec<NotificationKind> {
    ns.iter().map(|n| n.kind).collect()
}

use NotificationKind::{Completed, Fired, Renotify};

#[test]
fn fires_once_and_stays_active_without_repeats() {
    let mut e = evaluator(&[detector_monitor(
        "1m",
        Trigger::new("UNK_source-trigger", 1),
    )]);
    // Anomalous minutes 2..7; quiet 7 and 8 complete it once minute 9 arrives.
    let ns = feed(&mut e, &script(12, &[(2, 7)]));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!((ns[0].period_start, ns[0].period_end), (at(2), at(3)));
    assert_eq!(ns[0].state, AlertState::Active);
    assert_eq!(ns[0].periods_active, 1);
    assert_eq!((ns[1].period_start, ns[1].period_end), (at(8), at(9)));
    assert_eq!(ns[1].state, AlertState::Completed);
    assert_eq!(ns[1].periods_active, 5);
    assert_eq!(ns[0].alert_id, ns[1].alert_id);
    let book = e.book();
    assert_eq!(book.open_alerts().count(), 0);
    let a = book.get(&ns[0].alert_id).unwrap();
    assert_eq!(a.state(), AlertState::Completed);
    assert_eq!(
        (a.start_time, a.last_fired, a.end_time),
        (at(2), Some(at(7)), Some(at(9)))
    );
    assert_eq!((a.periods_active, a.notifications), (5, 2));
    // Every notification went to the outbox, for the default `stdout` channel.
    assert_eq!(book.outbox().len(), 2);
    assert_eq!(book.outbox()[0].channel, "stdout");
}

#[test]
fn a_ten_minute_monitor_completes_minutes_after_its_last_firing() {
    // One-minute results, ten-minute periods, complete_after = 2: quiet counts in
    // minutes. Anomalous 2..26: the period that ends at minute 30 fired (until 26)
    // but has been quiet for 4 minutes, so the alert completes there.
    let mut e = evaluator(&[detector_monitor("10m", Trigger::new("t", 1))]);
    let ns = feed(&mut e, &script(45, &[(2, 26)]));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!(ns[1].period_end, at(30));
    assert_eq!(ns[1].periods_active, 3);
    let a = e.book().get(&ns[0].alert_id).unwrap();
    assert_eq!((a.last_fired, a.end_time), (Some(at(26)), Some(at(30))));
    // Firing until minute 29: one quiet minute at the period's end is not enough;
    // the next period is quiet, so it completes at 40.
    let mut e = evaluator(&[detector_monitor("10m", Trigger::new("t", 1))]);
    let ns = feed(&mut e, &script(45, &[(2, 29)]));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!(ns[1].period_end, at(40));
    // Gaps of a minute inside the episode keep one alert open throughout.
    let mut e = evaluator(&[detector_monitor("10m", Trigger::new("t", 1))]);
    let ns = feed(
        &mut e,
        &script(75, &[(2, 19), (20, 39), (40, 59), (60, 64)]),
    );
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!(ns[1].period_end, at(70));
    // A new alert that fired early in its first period stays open to the next one.
    let mut e = evaluator(&[detector_monitor("10m", Trigger::new("t", 1))]);
    let ns = feed(&mut e, &script(25, &[(1, 2)]));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!((ns[0].period_end, ns[1].period_end), (at(10), at(20)));
}

#[test]
fn one_quiet_period_does_not_flap_two_complete() {
    let mut e = evaluator(&[detector_monitor("1m", Trigger::new("t", 1))]);
    // Anomalous 2..5, quiet 5, anomalous 6..8, quiet 8, 9: one alert, 6 periods.
    let ns = feed(&mut e, &script(11, &[(2, 5), (6, 8)]));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!(ns[1].periods_active, 6);
    assert_eq!(ns[1].period_end, at(10));
    assert!(
        ns[1]
            .text
            .starts_with("Monitor UNK_source-Monitor is no longer in alert status: trigger t has not fired for 2 periods (it was active for 6 periods since 2022-11-30T18:12:00.000Z)."),
        "{}",
        ns[1].text
    );
    // With complete_after = 1 the same stream gives two alerts.
    let mut t = Trigger::new("t", 1);
    t.complete_after = 1;
    let mut e = evaluator(&[detector_monitor("1m", t)]);
    let ns = feed(&mut e, &script(11, &[(2, 5), (6, 8)]));
    assert_eq!(kinds(&ns), [Fired, Completed, Fired, Completed]);
    assert_ne!(ns[0].alert_id, ns[2].alert_id);
    assert_eq!(e.book().history().count(), 2);
}

#[test]
fn throttle_renotifies_with_the_periods_active() {
    let mut t = Trigger::new("t", 2);
    t.throttle = Some("3m".into());
    let mut e = evaluator(&[detector_monitor("1m", t)]);
    let ns = feed(&mut e, &script(11, &[(0, 10)]));
    assert_eq!(kinds(&ns), [Fired, Renotify, Renotify, Renotify]);
    let ends: Vec<i64> = ns.iter().map(|n| n.period_end).collect();
    assert_eq!(ends, [at(1), at(4), at(7), at(10)]);
    let active: Vec<u32> = ns.iter().map(|n| n.periods_active).collect();
    assert_eq!(active, [1, 4, 7, 10]);
    assert!(
        ns[1].text.starts_with(
            "Monitor UNK_source-Monitor is still in alert status: active for 4 periods since 2022-11-30T18:10:00.000Z. Please investigate the issue.\n  - Trigger: t\n  - Severity: 2\n"
        ),
        "{}",
        ns[1].text
    );
    assert_eq!(
        ns[1].subject,
        "waflog still active: UNK_source-Monitor / t (severity 2)"
    );
    assert_eq!(ns[1].payload["periods_active"], 4);
    assert_eq!(ns[1].payload["kind"], "renotify");
    // Without a throttle: never re-notified.
    let mut e = evaluator(&[detector_monitor("1m", Trigger::new("t", 2))]);
    assert_eq!(kinds(&feed(&mut e, &script(11, &[(0, 10)]))), [Fired]);
}

#[test]
fn acknowledge_stops_renotify_and_the_alert_still_completes() {
    let mut t = Trigger::new("t", 1);
    t.throttle = Some("2m".into());
    let mut e = evaluator(&[detector_monitor("1m", t)]);
    let s = script(14, &[(0, 10)]);
    let ns = feed(&mut e, &s[..4]);
    assert_eq!(kinds(&ns), [Fired, Renotify]);
    let id = ns[0].alert_id.clone();
    // Acknowledged by a unique prefix of its ID.
    let a = e.book_mut().acknowledge(&id[..6], at(100)).unwrap();
    assert_eq!(a.state(), AlertState::Acknowledged);
    assert_eq!(a.acknowledged_time, Some(at(100)));
    assert!(e.book_mut().acknowledge(&id, at(101)).is_ok());
    assert_eq!(e.book().get(&id).unwrap().acknowledged_time, Some(at(100)));
    let ns = feed(&mut e, &s[4..]);
    assert_eq!(kinds(&ns), [Completed]);
    assert_eq!(ns[0].periods_active, 10);
    assert_eq!(ns[0].period_end, at(12));
    let err = e.book_mut().acknowledge(&id, at(200)).unwrap_err();
    assert!(matches!(err, AlertError::NotOpen { .. }), "{err}");
    assert!(err.to_string().contains("COMPLETED"), "{err}");
    assert!(matches!(
        e.book_mut().acknowledge("ab", 0),
        Err(AlertError::UnknownAlert { .. })
    ));
}

#[test]
fn per_entity_alerts_are_separate() {
    let m = |entity: Option<&str>| Monitor {
        name: format!("ip-{}", entity.unwrap_or("all")),
        period: None,
        input: MonitorInput::Detector {
            detector: DETECTOR.into(),
            entity: entity.map(str::to_string),
        },
        triggers: vec![Trigger::new("t", 3)],
    };
    let mut e = evaluator(&[m(None), m(Some("10.0.0.2"))]);
    let mut results = Vec::new();
    for minute in 0..10 {
        // 10.0.0.1 is anomalous in 1..3 and then sends nothing at all; 10.0.0.2 is
        // anomalous in 2..5; 10.0.0.3 never.
        if minute < 3 {
            let g = if minute >= 1 { 0.95 } else { 0.0 };
            results.push(result(minute, g, 10.0, Some("10.0.0.1")));
        }
        let g = if (2..5).contains(&minute) { 0.8 } else { 0.0 };
        results.push(result(minute, g, 10.0, Some("10.0.0.2")));
        results.push(result(minute, 0.0, 1.0, Some("10.0.0.3")));
    }
    let ns = feed(&mut e, &results);
    let summary: Vec<(String, Option<String>, NotificationKind, i64)> = ns
        .iter()
        .map(|n| {
            (
                n.monitor.clone(),
                n.entity.clone(),
                n.kind,
                (n.period_start - T0) / 60_000,
            )
        })
        .collect();
    let row = |m: &str, e: &str, k, p| (m.to_string(), Some(e.to_string()), k, p);
    assert_eq!(
        summary,
        [
            row("ip-all", "10.0.0.1", Fired, 1),
            row("ip-all", "10.0.0.2", Fired, 2),
            row("ip-10.0.0.2", "10.0.0.2", Fired, 2),
            row("ip-all", "10.0.0.1", Completed, 4),
            row("ip-all", "10.0.0.2", Completed, 6),
            row("ip-10.0.0.2", "10.0.0.2", Completed, 6),
        ]
    );
    let ids: std::collections::BTreeSet<&str> = ns.iter().map(|n| n.alert_id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ns[0].text.starts_with(
        "Monitor ip-all for 10.0.0.1 just entered alert status. Please investigate the issue."
    ));
    assert!(
        ns[0]
            .text
            .contains("\nEntity: httpRequest.clientIp=10.0.0.1\n"),
        "{}",
        ns[0].text
    );
}

fn query_monitor(period: &str, threshold: f64) -> Monitor {
    let mut m = Monitor::seed_query(threshold);
    m.period = Some(period.into());
    m
}

/// UNK_source per minute: 2, and 50 in minutes 20..25 (an episode of 5 minutes).
fn unk_source_stream(n: i64) -> Vec<AnomalyResult> {
    (0..n)
        .map(|m| {
            if (20..25).contains(&m) {
                result(m, 0.0, 50.0, None)
            } else {
                result(m, 0.0, 2.0, None)
            }
        })
        .collect()
}

#[test]
fn query_monitor_sums_a_ten_minute_window() {
    // The seed's query monitor: every 10 minutes, the sum of the last 10 minutes.
    let mut e = evaluator(&[query_monitor("10m", 100.0)]);
    let ns = feed(&mut e, &unk_source_stream(60));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!((ns[0].period_start, ns[0].period_end), (at(20), at(30)));
    let q = &ns[0].payload["explanation"]["query"];
    assert_eq!(
        (q["value"].as_f64(), q["results"].as_u64()),
        (Some(260.0), Some(10))
    );
    assert!(
        ns[0].text.contains(
            "Query: sum(UNK_source) over the last 10m = 260 (10 results; condition > 100)"
        ),
        "{}",
        ns[0].text
    );
    assert_eq!((ns[1].period_end, ns[1].periods_active), (at(50), 1));

    // Every minute, a sliding window: it fires at the first minute whose window
    // holds two episode minutes (21: 8 x 2 + 2 x 50 = 116) and stops after the last
    // one (end 33: minutes 23..33 hold 23 and 24).
    let mut e = evaluator(&[query_monitor("1m", 100.0)]);
    let ns = feed(&mut e, &unk_source_stream(60));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    assert_eq!(ns[0].period_start, at(21));
    assert_eq!(ns[0].payload["explanation"]["query"]["value"], 116.0);
    assert_eq!(ns[1].period_end, at(35));
    let a = e.book().get(&ns[0].alert_id).unwrap();
    assert_eq!((a.periods_active, a.last_fired), (12, Some(at(33))));

    // The other aggregations over one window (minutes 20..30, period end 30).
    for (agg, value) in [
        (QueryAggregation::Avg, 26.0),
        (QueryAggregation::Max, 50.0),
        (QueryAggregation::Min, 2.0),
        (QueryAggregation::Count, 10.0),
    ] {
        let mut m = query_monitor("10m", value);
        if let MonitorInput::Query(q) = &mut m.input {
            q.aggregation = agg;
        }
        m.triggers[0].condition = Condition::Compare {
            op: CompareOp::Ge,
            value,
        };
        let mut e = evaluator(&[m]);
        let ns = feed(&mut e, &unk_source_stream(31)[20..]);
        assert_eq!(kinds(&ns), [Fired], "{agg}");
        assert_eq!(ns[0].period_end, at(30), "{agg}");
        assert_eq!(
            ns[0].payload["explanation"]["query"]["value"], value,
            "{agg}"
        );
    }
}

#[test]
fn query_evaluation_error_puts_the_alert_in_error() {
    let mut e = evaluator(&[query_monitor("1m", 100.0)]);
    let mut broken = result(3, 0.0, 2.0, None);
    broken.feature_data[0].feature_name = "K_source".into();
    broken.feature_data[0].feature_id = "K_source".into();
    let mut stream = unk_source_stream(8);
    stream[3] = broken;
    let ns = feed(&mut e, &stream);
    assert_eq!(kinds(&ns), [NotificationKind::Error]);
    assert!(
        ns[0].text.starts_with(
            "Monitor UNK_source-Monitor could not be evaluated: the result of source-anomaly-detector at 2022-11-30T18:13:00.000Z has no feature `UNK_source` (it has: K_source)"
        ),
        "{}",
        ns[0].text
    );
    // The next good period ends the error alert silently (it never fired).
    let hist: Vec<&Alert> = e.book().history().collect();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].state(), AlertState::Completed);
    assert_eq!(hist[0].end_time, Some(at(5)));
}

struct Flaky {
    name: &'static str,
    fail_first: usize,
    calls: usize,
    sent: Vec<Notification>,
    reject: bool,
}

impl Notifier for Flaky {
    fn name(&self) -> &str {
        self.name
    }
    fn send(&mut self, n: &Notification) -> Result<(), NotifyError> {
        self.calls += 1;
        if self.calls <= self.fail_first {
            return Err(if self.reject {
                NotifyError::Rejected("HTTP 404".into())
            } else {
                NotifyError::Failed("HTTP 503 Service Unavailable".into())
            });
        }
        self.sent.push(n.clone());
        Ok(())
    }
}

fn flaky(fail_first: usize, reject: bool) -> Vec<Box<dyn Notifier>> {
    vec![Box::new(Flaky {
        name: "hook",
        fail_first,
        calls: 0,
        sent: vec![],
        reject,
    })]
}

fn hook_evaluator() -> Evaluator {
    let hook = Channel::Webhook {
        name: "hook".into(),
        url: "https://hooks.example.com/x".into(),
        slack: false,
        timeout: "10s".into(),
        max_attempts: 3,
        headers: Default::default(),
        insecure: false,
    };
    Evaluator::new(&[detector_monitor("1m", Trigger::new("t", 1))], &[hook]).unwrap()
}

#[test]
fn delivery_failure_is_error_retried_with_backoff_then_restored() {
    let mut e = hook_evaluator();
    let ns = feed(&mut e, &script(4, &[(1, 4)]));
    assert_eq!(kinds(&ns), [Fired]);
    assert_eq!(ns[0].channels, ["hook"]);
    let id = ns[0].alert_id.clone();
    let mut notifiers = flaky(2, false);
    let now = 1_700_000_000_000;

    let r = deliver_due(e.book_mut(), &mut notifiers, now);
    assert_eq!(
        (r.delivered, r.retrying, r.gave_up, r.pending),
        (0, 1, 0, 1)
    );
    let a = e.book().get(&id).unwrap();
    assert_eq!(a.state(), AlertState::Error);
    assert_eq!(a.lifecycle, AlertState::Active);
    assert_eq!(a.failures, 1);
    let issue = a.error.as_ref().unwrap();
    assert_eq!(
        issue.reason,
        "delivery to `hook` failed (attempt 1): HTTP 503 Service Unavailable"
    );
    let d = &e.book().outbox()[0];
    assert_eq!(d.attempts, 1);
    // First backoff: 10 s with equal jitter, so 5 to 10 s.
    let wait1 = d.next_attempt - now;
    assert!((5_000..=10_000).contains(&wait1), "{wait1}");
    assert_eq!(e.book().next_due(), Some(d.next_attempt));

    // Not due yet: nothing is sent.
    let r = deliver_due(e.book_mut(), &mut notifiers, now + wait1 - 1);
    assert_eq!((r.delivered, r.retrying, r.pending), (0, 0, 1));

    let t2 = now + wait1;
    let r = deliver_due(e.book_mut(), &mut notifiers, t2);
    assert_eq!(r.retrying, 1);
    let d = &e.book().outbox()[0];
    let wait2 = d.next_attempt - t2;
    assert!((10_000..=20_000).contains(&wait2), "{wait2}");
    assert_eq!(
        d.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );

    let t3 = t2 + wait2;
    let r = deliver_due(e.book_mut(), &mut notifiers, t3);
    assert_eq!((r.delivered, r.pending), (1, 0));
    let a = e.book().get(&id).unwrap();
    assert_eq!(a.state(), AlertState::Active);
    assert_eq!(
        (a.failures, a.deliveries, a.last_delivery, a.lost),
        (2, 1, Some(t3), 0)
    );
    assert!(e.book().outbox().is_empty());
}

#[test]
fn deliveries_failing_past_the_max_age_or_rejected_are_lost_not_silent() {
    let mut e = hook_evaluator();
    e.book_mut().set_policy(DeliveryPolicy {
        max_age_ms: 60_000,
        ..DeliveryPolicy::default()
    });
    let ns = feed(&mut e, &script(4, &[(1, 4)]));
    let id = ns[0].alert_id.clone();
    let mut notifiers = flaky(usize::MAX, false);
    let mut now = 0;
    let mut gave_up = 0;
    for _ in 0..20 {
        let r = deliver_due(e.book_mut(), &mut notifiers, now);
        gave_up += r.gave_up;
        if r.pending == 0 {
            break;
        }
        now = e.book().next_due().unwrap_or(now);
    }
    assert_eq!(gave_up, 1);
    assert!(now >= 60_000);
    let a = e.book().get(&id).unwrap();
    assert_eq!((a.state(), a.lost), (AlertState::Error, 1));
    let reason = &a.error.as_ref().unwrap().reason;
    assert!(
        reason.starts_with("notification to `hook` lost: gave up after")
            && reason.ends_with("HTTP 503 Service Unavailable"),
        "{reason}"
    );
    assert_eq!(e.book().stats().lost_deliveries, 1);

    let mut e = hook_evaluator();
    let ns = feed(&mut e, &script(4, &[(1, 4)]));
    let r = deliver_due(e.book_mut(), &mut flaky(1, true), 5);
    assert_eq!((r.gave_up, r.pending), (1, 0));
    let a = e.book().get(&ns[0].alert_id).unwrap();
    assert_eq!(
        a.error.as_ref().unwrap().reason,
        "notification to `hook` lost: rejected: HTTP 404"
    );

    // A channel without a notifier is a failure, retried.
    let mut e = hook_evaluator();
    feed(&mut e, &script(4, &[(1, 4)]));
    let r = deliver_due(e.book_mut(), &mut [], 5);
    assert_eq!((r.retrying, r.pending), (1, 1));
    assert_eq!(
        e.book().outbox()[0].last_error.as_deref(),
        Some("no notifier for channel `hook`")
    );
}

#[test]
fn state_round_trip_mid_episode_continues_identically() {
    let mut t = Trigger::new("t", 1);
    t.throttle = Some("2m".into());
    let mut query = query_monitor("1m", 100.0);
    query.name = "volume".into();
    let mut seed = Monitor::seed();
    seed.name = "seed".into();
    let monitors = [detector_monitor("1m", t), query, seed];
    let mut stream = script(40, &[(20, 27)]);
    for (r, v) in stream.iter_mut().zip(unk_source_stream(40)) {
        r.feature_data = v.feature_data;
    }
    let mut whole = evaluator(&monitors);
    let all = feed(&mut whole, &stream);
    deliver_due(whole.book_mut(), &mut flaky(1, false), 1);
    assert!(kinds(&all).contains(&Renotify));

    let mut first = evaluator(&monitors);
    let mut split = feed(&mut first, &stream[..23]);
    let saved = serde_json::to_string(first.book()).unwrap();
    let book: AlertBook = serde_json::from_str(&saved).unwrap();
    assert_eq!(&book, first.book());
    let mut second = evaluator(&monitors).with_book(book).unwrap();
    split.extend(feed(&mut second, &stream[23..]));
    deliver_due(second.book_mut(), &mut flaky(1, false), 1);
    assert_eq!(split, all);
    assert_eq!(second.book(), whole.book());
}

#[test]
fn seed_text_and_template_errors() {
    let mut e = evaluator(&[Monitor::seed()]);
    let mut ns = feed(&mut e, &script(12, &[(2, 3)]));
    ns.extend(e.advance_to(at(30)));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    let expected = "Monitor UNK_source-Monitor just entered alert status. Please investigate the issue.
  - Trigger: UNK_source-trigger
  - Severity: 1
  - Period start: 2022-11-30T18:10:00.000Z
  - Period end: 2022-11-30T18:20:00.000Z

Detector: source-anomaly-detector
Anomaly: grade 0.90, confidence 0.90, interval 2022-11-30T18:12:00.000Z to 2022-11-30T18:13:00.000Z (100 records)
Feature moved: UNK_source = 240 (expected 2.0), 100% of the anomaly
Top contributors:
  - httpSourceName: - (240 records, expected 2.0)";
    assert_eq!(ns[0].text, expected);
    assert_eq!(
        ns[0].subject,
        "waflog alert: UNK_source-Monitor / UNK_source-trigger (severity 1)"
    );
    let p = &ns[0].payload;
    assert_eq!(p["alert_id"], ns[0].alert_id.as_str());
    assert_eq!(p["state"], "ACTIVE");
    assert_eq!(p["period_start"], "2022-11-30T18:10:00.000Z");
    assert_eq!(p["period_end_ms"], at(10));
    assert_eq!(p["message"], expected);
    assert_eq!(
        p["explanation"]["anomaly"]["features"][0]["feature"],
        "UNK_source"
    );
    assert_eq!(
        p["explanation"]["anomaly"]["contributors"][0]["top"][0]["count"],
        240
    );
    // Quiet since 18:13, one-minute results: it completes at the end of the next
    // ten-minute period, not two periods later.
    assert_eq!(ns[1].period_end, at(20));
    assert!(
        ns[1]
            .text
            .contains("trigger UNK_source-trigger has not fired since 2022-11-30T18:13:00.000Z"),
        "{}",
        ns[1].text
    );
    assert_eq!(ns[0].slack_body()["text"], expected);

    // A custom template.
    let mut t = Trigger::new("t", 4);
    t.message = Some("{{ kind }} {{monitor}}/{{trigger}} sev {{severity}} [{{entity}}] {{state}} x{{periods_active}} {{period_start}} id={{alert_id}}".into());
    t.subject = Some("[{{severity}}] {{monitor}}".into());
    let mut e = evaluator(&[detector_monitor("1m", t)]);
    let ns = feed(&mut e, &script(3, &[(1, 2)]));
    assert_eq!(
        ns[0].text,
        format!(
            "alert UNK_source-Monitor/t sev 4 [] ACTIVE x1 2022-11-30T18:11:00.000Z id={}",
            ns[0].alert_id
        )
    );
    assert_eq!(ns[0].subject, "[4] UNK_source-Monitor");

    // An unknown placeholder is a configuration error naming the field.
    let mut t = Trigger::new("t", 1);
    t.message = Some("Monitor {{ctx.monitor.name}}".into());
    let err = Evaluator::new(&[detector_monitor("1m", t)], &Channel::defaults())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`monitors[0].triggers[0].message`")
            && err.contains("unknown placeholder `{{ctx.monitor.name}}`"),
        "{err}"
    );
}

#[test]
fn periods_close_on_later_results_or_the_watermark() {
    let mut e = evaluator(&[detector_monitor("1m", Trigger::new("t", 1))]);
    assert!(e.observe(&result(5, 0.9, 240.0, None)).is_empty());
    // A later result of another detector does not close the period.
    let mut other = result(9, 0.0, 1.0, None);
    other.detector_name = "country-anomaly-detector".into();
    assert!(e.observe(&other).is_empty());
    // The watermark short of the period end does not either; at its end it does.
    assert!(e.advance_to(at(6) - 1).is_empty());
    assert_eq!(kinds(&e.advance_to(at(6))), [Fired]);
    // A late result for an evaluated period is counted and ignored.
    assert!(e.observe(&result(4, 0.9, 240.0, None)).is_empty());
    assert_eq!(e.book().stats().late_results, 1);
    // A gap in the stream counts as quiet periods: the alert completes.
    let ns = e.observe(&result(30, 0.0, 2.0, None));
    assert_eq!(kinds(&ns), [Completed]);
    assert_eq!(ns[0].period_end, at(8));
    // A low-confidence result does not fire.
    let mut r = result(31, 0.9, 240.0, None);
    r.confidence = 0.5;
    e.observe(&r);
    assert!(e.advance_to(at(40)).is_empty());
}

#[test]
fn history_is_capped() {
    let mut t = Trigger::new("t", 1);
    t.complete_after = 1;
    let mut e = evaluator(&[detector_monitor("1m", t)]);
    e.book_mut().set_max_history(2);
    let ns = feed(&mut e, &script(8, &[(1, 2), (3, 4), (5, 6)]));
    assert_eq!(
        kinds(&ns),
        [Fired, Completed, Fired, Completed, Fired, Completed]
    );
    let kept: Vec<&str> = e.book().list().iter().map(|a| a.id.as_str()).collect();
    assert_eq!(kept, [ns[4].alert_id.as_str(), ns[2].alert_id.as_str()]);
    assert_eq!(e.book().stats().dropped_history, 1);
}

#[test]
fn test_notifications_and_writers() {
    let e = hook_evaluator();
    let n = e.test_notification("hook", at(10)).unwrap();
    assert_eq!(
        (n.kind, n.channels.as_slice()),
        (NotificationKind::Test, &["hook".to_string()][..])
    );
    assert!(
        n.text
            .starts_with("Test notification from waflog for monitor UNK_source-Monitor")
    );
    assert!(e.book().outbox().is_empty());
    assert!(matches!(
        e.test_notification("pager", 0),
        Err(AlertError::UnknownChannel { .. })
    ));
    let e = Evaluator::new(&[], &Channel::defaults()).unwrap();
    let n = e.test_notification("stdout", at(10)).unwrap();
    assert_eq!(n.monitor, "waflog-test-monitor");

    let mut w = WriteNotifier::new("stdout", Vec::new(), WriteFormat::Json);
    w.send(&n).unwrap();
    let line = String::from_utf8(w.into_inner()).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    assert_eq!(v["kind"], "test");
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let mut w = WriteNotifier::new("stdout", Vec::new(), WriteFormat::Text);
    w.send(&n).unwrap();
    let text = String::from_utf8(w.into_inner()).unwrap();
    assert!(text.starts_with(&format!("{}\n{}", n.subject, n.text)));
}

#[test]
fn from_config_uses_the_detector_interval_and_reconciles_a_changed_config() {
    let c = crate::Config::from_toml(
        "[[monitors]]\nname = \"m\"\ndetector = \"source-anomaly-detector\"\n[[monitors.triggers]]\nname = \"t\"\n[[monitors.triggers]]\nname = \"u\"\nmin_grade = 0.95\n",
        std::path::Path::new("waflog.toml"),
    )
    .unwrap();
    let mut e = Evaluator::from_config(&c).unwrap();
    let ns = feed(&mut e, &script(3, &[(1, 2)]));
    // Period = the detector's 1-minute interval; `u` needs grade 0.95.
    assert_eq!(kinds(&ns), [Fired]);
    assert_eq!((ns[0].trigger.as_str(), ns[0].period_end), ("t", at(2)));
    // Trigger `t` removed: its open alert is completed without notification.
    let mut c2 = c.clone();
    c2.monitors[0].triggers.remove(0);
    let e2 = Evaluator::from_config(&c2)
        .unwrap()
        .with_book(e.into_book())
        .unwrap();
    assert_eq!(e2.book().open_alerts().count(), 0);
    assert_eq!(
        e2.book().history().next().map(|a| a.state()),
        Some(AlertState::Completed)
    );
}

#[test]
fn deliver_pending_ignores_the_retry_schedule() {
    let mut e = hook_evaluator();
    let ns = feed(&mut e, &script(4, &[(1, 4)]));
    assert_eq!(kinds(&ns), [Fired]);
    let mut notifiers = flaky(1, false);
    let now = 1_700_000_000_000;
    let r = deliver_due(e.book_mut(), &mut notifiers, now);
    assert_eq!((r.retrying, r.pending), (1, 1));
    // Not due for seconds; a new run tries it at once.
    let r = deliver_due(e.book_mut(), &mut notifiers, now + 1);
    assert_eq!((r.delivered, r.pending), (0, 1));
    let r = deliver_pending(e.book_mut(), &mut notifiers, now + 1);
    assert_eq!((r.delivered, r.pending), (1, 0));
}

#[test]
fn default_monitors_follow_the_seed_naming() {
    let specs = crate::detect::DetectorSpec::defaults();
    let monitors = Monitor::defaults(&specs);
    assert_eq!(monitors.len(), specs.len());
    let names: Vec<&str> = monitors.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"UNK_source-Monitor"), "{names:?}");
    assert!(names.contains(&"UNK_country-Monitor"), "{names:?}");
    let source = monitors
        .iter()
        .find(|m| m.name == "UNK_source-Monitor")
        .unwrap();
    assert_eq!(source.period.as_deref(), Some("10m"));
    assert_eq!(source.triggers[0].name, "UNK_source-trigger");
    assert_eq!(source.triggers[0].severity, 1);
    // They validate against the detectors they were made from.
    assert!(Evaluator::new(&monitors, &Channel::defaults()).is_ok());
}

/// A webhook that is down for its first `fail_first` calls and records the kinds it
/// was sent.
struct Recorder {
    fail_first: usize,
    calls: usize,
    kinds: std::rc::Rc<std::cell::RefCell<Vec<NotificationKind>>>,
}

impl Notifier for Recorder {
    fn name(&self) -> &str {
        "hook"
    }
    fn send(&mut self, n: &Notification) -> Result<(), NotifyError> {
        self.calls += 1;
        if self.calls <= self.fail_first {
            return Err(NotifyError::Failed("connection refused".into()));
        }
        self.kinds.borrow_mut().push(n.kind);
        Ok(())
    }
}

#[test]
fn a_channel_that_was_down_gets_each_alert_in_order() {
    // An alert fires and completes while the webhook is down.
    let mut e = hook_evaluator();
    let ns = feed(&mut e, &script(8, &[(1, 3)]));
    assert_eq!(kinds(&ns), [Fired, Completed]);
    let now = 1_700_000_000_000;
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut hook: Vec<Box<dyn Notifier>> = vec![Box::new(Recorder {
        fail_first: 1,
        calls: 0,
        kinds: sent.clone(),
    })];
    // Pass 1: `fired` fails; `completed` waits behind it instead of overtaking it.
    let r = deliver_due(e.book_mut(), &mut hook, now);
    assert_eq!((r.delivered, r.retrying, r.pending), (0, 1, 2));
    let head = e
        .book()
        .outbox()
        .iter()
        .map(|d| d.next_attempt)
        .max()
        .unwrap();
    assert!(head > now);
    // Nothing is due before the head's retry, though `completed` never failed.
    assert_eq!(e.book().next_due(), Some(head));
    assert!(e.book().due(head - 1).is_empty());
    // At the retry both go, `fired` first.
    let r = deliver_due(e.book_mut(), &mut hook, head);
    assert_eq!((r.delivered, r.pending), (2, 0));
    assert_eq!(*sent.borrow(), [Fired, Completed]);
}

/// Two monitors on two detectors moved by one cause: one incident, one alert. The
/// first monitor's alert notifies it (naming both detectors); the other's is merged
/// into it silently and holds it open while it still fires; one completion.
#[test]
fn alerts_on_one_incident_are_one_notification() {
    let monitor = |name: &str, detector: &str| Monitor {
        name: name.into(),
        period: Some("1m".into()),
        input: MonitorInput::Detector {
            detector: detector.into(),
            entity: None,
        },
        triggers: vec![Trigger::new(&format!("{name}-trigger"), 2)],
    };
    let mut eval = evaluator(&[monitor("a", DETECTOR), monitor("b", "other-detector")]);
    let mut correlator = Correlator::new();
    let mut notes = Vec::new();
    for minute in 0..14 {
        let grade = |range: std::ops::Range<i64>| if range.contains(&minute) { 0.9 } else { 0.0 };
        let a = result(
            minute,
            grade(2..4),
            if grade(2..4) > 0.0 { 240.0 } else { 2.0 },
            None,
        );
        let mut b = result(
            minute,
            grade(2..7),
            if grade(2..7) > 0.0 { 240.0 } else { 2.0 },
            None,
        );
        b.detector_id = "other-detector".into();
        b.detector_name = "other-detector".into();
        let mut batch = vec![a, b];
        correlator.correlate(&mut batch);
        for r in &batch {
            let incident = r.incident_id.as_deref().and_then(|id| correlator.get(id));
            notes.extend(eval.observe_in(r, incident));
        }
    }
    let kinds: Vec<(&str, NotificationKind)> =
        notes.iter().map(|n| (n.monitor.as_str(), n.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("a", NotificationKind::Fired),
            ("a", NotificationKind::Completed)
        ]
    );
    assert!(notes[0].text.contains("Incident inc-"), "{}", notes[0].text);
    assert!(
        notes[0]
            .text
            .contains("  - other-detector: UNK_source = 240"),
        "{}",
        notes[0].text
    );
    // Held open until the merged alert had been quiet for two periods.
    assert_eq!(notes[1].period_end, at(9));
    let merged: Vec<&Alert> = eval
        .book()
        .history()
        .filter(|a| a.merged_into.is_some())
        .collect();
    assert_eq!(merged.len(), 1);
    assert_eq!(
        merged[0].merged_into.as_deref(),
        Some(notes[0].alert_id.as_str())
    );
}
