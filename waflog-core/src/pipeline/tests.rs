//! The pipeline on small seeded generated streams.

use std::sync::{Arc, Mutex};

use super::*;
use crate::Config;
use crate::alert::{Channel, Monitor, NotificationKind, NotifyError};
use crate::simulate::{Episode, Generator, Limit, Scenario};

const START: i64 = 1_714_521_600_000; // 2024-05-01T00:00:00Z

/// `minutes` of traffic at 5 requests/s from seed 42, with `inject` episodes.
fn lines(minutes: i64, inject: &[&str]) -> Vec<Vec<u8>> {
    let mut scenario = Scenario::new(42, START);
    scenario.rate = 5.0;
    scenario.limit = Limit::Duration(minutes * 60_000);
    for e in inject {
        scenario.episodes.push(Episode::parse(e).unwrap());
    }
    let mut generator = Generator::new(&scenario).unwrap();
    let mut out = Vec::new();
    let mut raw = Vec::new();
    while generator.next_record(&mut raw).is_some() {
        out.push(raw.trim_ascii_end().to_vec());
        raw.clear();
    }
    out
}

fn engine() -> Engine {
    let config = Config::default();
    Engine::new(&config.detector_specs(), config.feature_map().unwrap()).unwrap()
}

/// Notifications as they reach a channel.
#[derive(Debug, Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Notification>>>);

impl Notifier for Inbox {
    fn name(&self) -> &str {
        "stdout"
    }
    fn send(&mut self, n: &Notification) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

fn alerting(inbox: &Inbox) -> (Evaluator, Vec<Box<dyn Notifier>>) {
    let config = Config::default();
    let eval = Evaluator::new(
        &Monitor::defaults(&config.detector_specs()),
        &config.channel_specs(),
    )
    .unwrap();
    (eval, vec![Box::new(inbox.clone())])
}

#[test]
fn a_quiet_stream_gives_one_result_per_detector_and_minute() {
    let input = lines(30, &[]);
    assert_eq!(input.len(), 9_004);
    let mut p = Pipeline::new(engine()).with_observer(Vec::new());
    for l in &input {
        assert!(matches!(p.push_line(l), Ok(Pushed::Record { .. })));
    }
    assert_eq!(p.observer().len(), 6 * 29);
    // The last minute is incomplete in event time (its last record came before
    // its end): not scored, its records counted once per detector.
    let done = p.finish().unwrap();
    assert_eq!(p.observer().len(), 6 * 29);
    assert_eq!(done.unscored, 6 * 286);
    assert_eq!(p.stats().records, 9_004);
    assert_eq!(p.stats().results, 174);
    assert_eq!(p.stats().dead_lettered, 0);
    assert!(
        p.observer().iter().all(|r| !r.is_anomaly()),
        "no anomaly injected"
    );
    assert!(p.alerts().is_none());
    // Without alerting there is no alert to acknowledge, and the error says why.
    let err = p
        .acknowledge("abc", 0, Some(Label::NotAnomaly))
        .unwrap_err();
    assert_eq!(err, AlertError::AlertingOff { id: "abc".into() });
    assert!(err.to_string().contains("without alerting"), "{err}");
}

#[test]
fn an_injected_anomaly_raises_one_alert_that_is_delivered() {
    let inbox = Inbox::default();
    let (eval, notifiers) = alerting(&inbox);
    let mut p = Pipeline::new(engine())
        .with_alerting(eval, notifiers, || START + 3_600_000)
        .with_observer(Vec::new());
    for l in lines(40, &["country:25m:5m"]) {
        p.push_line(&l).unwrap();
    }
    let done = p.finish().unwrap();
    let anomalies: Vec<_> = p.observer().iter().filter(|r| r.is_anomaly()).collect();
    assert!(!anomalies.is_empty());
    assert!(
        anomalies
            .iter()
            .all(|r| r.detector_name == "country-anomaly-detector"),
        "{anomalies:?}"
    );
    let book = p.alerts().unwrap();
    let alerts = book.list();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].monitor, "UNK_country-Monitor");
    // Fired, then completed after quiet periods; both delivered, none left.
    let sent = inbox.0.lock().unwrap();
    let kinds: Vec<_> = sent.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [NotificationKind::Fired, NotificationKind::Completed],
        "{sent:?}"
    );
    assert_eq!(done.undelivered, 0);
    // The state holds the alerts and the models, and reads back.
    let state = p.state();
    assert_eq!(state.records, p.stats().records);
    let back = State::from_slice(&state.to_vec().unwrap()).unwrap();
    assert_eq!(back.alerts.as_ref().map(|b| b.list().len()), Some(1));
    assert!(back.engine.is_some());
}

/// What the observer saw, in order: the latest end of the results handed on so far,
/// and each notification with it.
#[derive(Debug, Default)]
struct Timeline {
    latest_end: i64,
    /// (latest end handed on when the notification came, its period end, kind)
    notes: Vec<(i64, i64, NotificationKind)>,
}

impl ResultObserver for Timeline {
    type Error = Infallible;
    fn results(&mut self, r: &[AnomalyResult], _: Option<&AlertBook>) -> Result<(), Infallible> {
        for x in r {
            self.latest_end = self.latest_end.max(x.data_end_time);
        }
        Ok(())
    }
    fn notifications(&mut self, notes: &[Notification]) {
        for n in notes {
            self.notes.push((self.latest_end, n.period_end, n.kind));
        }
    }
}

#[test]
fn an_alert_goes_out_with_the_results_of_its_last_interval_not_a_later_one() {
    // The one-minute detectors' monitors have one-minute periods: the period that
    // fires is complete once its interval is scored, so its notification must come
    // before any result of the next interval (it used to wait for one: a whole
    // interval of latency on a live stream).
    let inbox = Inbox::default();
    let (eval, notifiers) = alerting(&inbox);
    let mut p = Pipeline::new(engine())
        .with_alerting(eval, notifiers, || START + 3_600_000)
        .with_observer(Timeline::default());
    let input = lines(40, &["country:25m:5m"]);
    let last = input.len() - 1;
    for l in &input[..last] {
        p.push_line(l).unwrap();
    }
    let notes = p.observer().notes.clone();
    let kinds: Vec<_> = notes.iter().map(|n| n.2).collect();
    assert_eq!(
        kinds,
        [NotificationKind::Fired, NotificationKind::Completed],
        "{notes:?}"
    );
    // The monitors see a scoring step's results before the observer does, so a
    // notification raised with its period's last interval comes just before that
    // interval's results, one minute after the results handed on before it.
    for (seen, period_end, kind) in notes {
        assert_eq!(
            seen,
            period_end - 60_000,
            "{kind:?} for the period ending {period_end} came with results up to {seen}"
        );
    }
    // Both were delivered as they were raised.
    assert_eq!(inbox.0.lock().unwrap().len(), 2);
}

#[test]
fn bad_lines_are_counted_kept_and_returned_never_a_panic() {
    let mut p = Pipeline::new(engine()).keep_dead_letters(2);
    let good = lines(1, &[]);
    p.push_line(&good[0]).unwrap();
    let bad: [&[u8]; 5] = [
        b"not json",
        b"[1,2]",
        b"{\"action\":\"ALLOW\"}",
        b"\xff\xfe",
        b"{\"timestamp\":\"yesterday\"}",
    ];
    for b in bad {
        match p.push_line(b).unwrap() {
            Pushed::Rejected(reason) => assert!(!reason.to_string().is_empty()),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(b)),
        }
    }
    assert_eq!(p.push_str("   ").unwrap(), Pushed::Blank);
    let s = p.stats();
    assert_eq!((s.lines, s.records, s.dead_lettered, s.blank), (7, 1, 5, 1));
    // The last two are kept, with their line numbers and reasons.
    let kept: Vec<_> = p.dead_letters().cloned().collect();
    assert_eq!(kept.iter().map(|r| r.line).collect::<Vec<_>>(), [5, 6]);
    assert!(matches!(kept[0].reason, SchemaError::InvalidUtf8 { .. }));
    assert!(matches!(
        kept[1].reason,
        SchemaError::InvalidTimestamp { .. }
    ));
    let letter = kept[1].dead_letter("input.ndjson");
    assert_eq!(
        (letter.source, letter.line, letter.raw.as_deref()),
        ("input.ndjson", 6, Some("{\"timestamp\":\"yesterday\"}"))
    );
    assert_eq!(p.take_dead_letters().len(), 2);
    assert_eq!(p.dead_letters().count(), 0);
}

#[test]
fn tick_closes_the_intervals_of_an_idle_input() {
    let mut p = Pipeline::new(engine()).with_observer(Vec::new());
    for l in lines(10, &[]) {
        p.push_line(&l).unwrap();
    }
    assert_eq!(p.observer().len(), 6 * 9);
    // Idle for less than the window delay: nothing closes yet.
    assert_eq!(p.tick(1_000).unwrap(), 0);
    // Idle for two minutes of wall-clock time: the last minute closes, and the
    // empty one after it (traffic stopped: that is news too).
    assert_eq!(p.tick(120_000).unwrap(), 12);
    assert_eq!(p.observer().len(), 6 * 11);
    // Nothing is left for the end.
    let done = p.finish().unwrap();
    assert_eq!(done.unscored, 0);
    assert_eq!(p.observer().len(), 6 * 11);
    // An empty pipeline has no event time to move.
    assert_eq!(Pipeline::new(engine()).tick(60_000).unwrap(), 0);
}

#[test]
fn suspend_keeps_open_intervals_in_the_state_for_the_next_run() {
    let input = lines(20, &[]);
    let (first, second) = input.split_at(input.len() / 2);
    let mut whole = Pipeline::new(engine()).with_observer(Vec::new());
    for l in &input {
        whole.push_line(l).unwrap();
    }
    whole.finish().unwrap();

    let mut a = Pipeline::new(engine()).with_observer(Vec::new());
    for l in first {
        a.push_line(l).unwrap();
    }
    a.suspend().unwrap();
    a.checkpoint("s/shard-0".into(), "17".into());
    let saved = State::from_slice(&a.state().to_vec().unwrap()).unwrap();
    let config = Config::default();
    let restored = Engine::restore(
        &config.detector_specs(),
        config.feature_map().unwrap(),
        saved.engine.clone().unwrap(),
    )
    .unwrap();
    let mut b = Pipeline::new(restored)
        .with_state(saved)
        .with_observer(Vec::new());
    assert_eq!(b.records_before(), first.len() as u64);
    assert_eq!(b.stream_checkpoints("s")["shard-0"], "17");
    for l in second {
        b.push_line(l).unwrap();
    }
    b.finish().unwrap();
    let mut split = a.observer().clone();
    split.extend(b.observer().iter().cloned());
    assert_eq!(split.len(), whole.observer().len());
    assert!(
        split == *whole.observer(),
        "a resumed run gives the same results"
    );
    assert_eq!(b.state().records, input.len() as u64);
}

/// An observer whose output fails: the error reaches the caller.
#[derive(Debug)]
struct Broken;

impl ResultObserver for Broken {
    type Error = &'static str;
    fn results(&mut self, _: &[AnomalyResult], _: Option<&AlertBook>) -> Result<(), &'static str> {
        Err("disk full")
    }
}

#[test]
fn an_observer_error_reaches_the_caller() {
    let mut p = Pipeline::new(engine()).with_observer(Broken);
    let mut failed = None;
    for l in lines(3, &[]) {
        if let Err(e) = p.push_line(&l) {
            failed = Some(e);
            break;
        }
    }
    assert_eq!(failed, Some("disk full"));
    assert_eq!(p.stats().results, 6);
}

/// 300 one-minute CSV rows from `start` (epoch seconds), a spike at row 250.
fn spiked_rows(start: i64) -> Vec<String> {
    (0..300)
        .map(|i| {
            let v = if i == 250 {
                90.0
            } else {
                10.0 + (i % 7) as f64
            };
            format!("{},{v}", start + 60 * i)
        })
        .collect()
}

#[test]
fn metric_series_results_go_on_and_their_models_are_in_the_state() {
    let algorithm = AlgorithmSpec::metric_default();
    let rows = spiked_rows(1_700_000_000);
    let mut whole = Pipeline::new(engine()).with_observer(Vec::<AnomalyResult>::new());
    let id = whole.open_series("cpu", algorithm.clone()).unwrap();
    for r in &rows {
        assert_eq!(
            whole.push_series_line(id, r.as_bytes()).unwrap().unwrap(),
            1
        );
    }
    // A bad row is the caller's dead letter; the series goes on.
    assert!(whole.push_series_line(id, b"x,y").unwrap().is_err());
    assert!(whole.push_series_line(id, b"1,\xff").unwrap().is_err());
    assert_eq!(whole.observer().len(), 300);
    let stats = whole.stats();
    assert_eq!(stats.series_rows, 300);
    assert_eq!(
        stats.series_anomalies,
        whole
            .observer()
            .iter()
            .filter(|r| r.anomaly_grade > 0.0)
            .count() as u64
    );
    assert!(stats.series_anomalies > 0);

    // The first 200 rows, saved; the rest in a new pipeline resumed from the state.
    let mut first = Pipeline::new(engine()).with_observer(Vec::<AnomalyResult>::new());
    let id = first.open_series("cpu", algorithm.clone()).unwrap();
    for r in &rows[..200] {
        first.push_series_line(id, r.as_bytes()).unwrap().unwrap();
    }
    let bytes = first.state().to_vec().unwrap();
    let state = State::read(bytes.as_slice()).unwrap();
    assert_eq!(state.series["cpu"].rows, 200);
    let mut second = Pipeline::new(engine())
        .with_state(state)
        .with_observer(Vec::<AnomalyResult>::new());
    // A series never opened in a run is carried to its state unchanged.
    assert_eq!(second.state().series["cpu"].rows, 200);
    let id = second.open_series("cpu", algorithm.clone()).unwrap();
    // The same name again is the same series; under another algorithm, an error.
    assert_eq!(second.open_series("cpu", algorithm.clone()).unwrap(), id);
    assert!(second.open_series("cpu", AlgorithmSpec::default()).is_err());
    for r in &rows {
        second.push_series_line(id, r.as_bytes()).unwrap().unwrap();
    }
    assert_eq!(second.series(id).unwrap().skipped(), 200);
    let resumed: Vec<_> = first
        .observer()
        .iter()
        .chain(second.observer())
        .map(|r| (r.data_start_time, r.anomaly_score.to_bits()))
        .collect();
    let expected: Vec<_> = whole
        .observer()
        .iter()
        .map(|r| (r.data_start_time, r.anomaly_score.to_bits()))
        .collect();
    assert_eq!(resumed, expected);
    assert_eq!(second.state().series["cpu"], whole.state().series["cpu"]);
}

#[test]
fn every_metric_series_opened_gets_its_own_monitor() {
    let rows = spiked_rows(1_700_000_040);
    let inbox = Inbox::default();
    let eval = Evaluator::new(&[], &Channel::defaults()).unwrap();
    let mut p = Pipeline::new(engine())
        .with_alerting(eval, vec![Box::new(inbox.clone())], || 0)
        .monitor_every_series();
    let id = p
        .open_series("cpu", AlgorithmSpec::metric_default())
        .unwrap();
    // Opened again (a rotated file), it keeps its one monitor.
    assert_eq!(
        p.open_series("cpu", AlgorithmSpec::metric_default())
            .unwrap(),
        id
    );
    for r in &rows {
        p.push_series_line(id, r.as_bytes()).unwrap().unwrap();
    }
    p.finish().unwrap();
    let book = p.alerts().unwrap();
    assert_eq!(book.monitors.len(), 1);
    assert_eq!(book.monitors["cpu-Monitor"].period_ms, 60_000);
    let spike = 1_700_000_040_000 + 250 * 60_000;
    let fired: Vec<_> = book
        .history()
        .filter(|a| a.monitor == "cpu-Monitor" && a.trigger == "cpu-trigger")
        .map(|a| a.start_time)
        .collect();
    assert!(fired.contains(&(spike - spike % 60_000)), "{fired:?}");
    assert!(
        inbox
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.monitor == "cpu-Monitor")
    );
    // Without it, a series has no monitor: no alerting on it.
    let eval = Evaluator::new(&[], &Channel::defaults()).unwrap();
    let mut p = Pipeline::new(engine()).with_alerting(eval, Vec::new(), || 0);
    let id = p
        .open_series("cpu", AlgorithmSpec::metric_default())
        .unwrap();
    for r in &rows {
        p.push_series_line(id, r.as_bytes()).unwrap().unwrap();
    }
    assert!(p.alerts().unwrap().monitors.is_empty());
}
