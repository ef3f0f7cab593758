//! Sustained anomalies stay open (issue 17, part 2), pinned with fixed seeds on
//! simulated WAF traffic through the whole [`Pipeline`] (the built-in detectors,
//! incidents and their default monitors):
//!
//! - an episode of 1 h, 6 h or 24 h at intensity 0.05 or 1 raises exactly one alert,
//!   open until the episode ends and completed within 15 minutes after it;
//! - a week of quiet diurnal traffic (`--diurnal 0.6`) raises at most one alert;
//! - a permanent level shift is taken as the new normal after `accept_shift_after`,
//!   with one `accepted` notification that closes the alert.

#![allow(clippy::unwrap_used)]

use waflog_core::alert::{Monitor, Notification, NotificationKind};
use waflog_core::detect::EngineState;
use waflog_core::detect::{AlgorithmSpec, AnomalyResult, DetectorSpec, Engine};
use waflog_core::features::FeatureMap;
use waflog_core::simulate::{Episode, Generator, Limit, Scenario, TruthEpisode};

mod common;
use common::{HOUR, MIN, START};

/// Runs the scenario through the engine and the default monitors of `specs`; returns
/// the results and every notification.
fn run(scenario: &Scenario, specs: &[DetectorSpec]) -> (Vec<AnomalyResult>, Vec<Notification>) {
    run_with(scenario, specs, &Monitor::defaults(specs))
}

fn run_with(
    scenario: &Scenario,
    specs: &[DetectorSpec],
    monitors: &[Monitor],
) -> (Vec<AnomalyResult>, Vec<Notification>) {
    let engine = Engine::new(specs, FeatureMap::default()).unwrap();
    let seen = common::run(common::pipeline(engine, monitors), scenario, |_| {});
    (seen.results, seen.notes)
}

fn detector_of(field: &str) -> &'static str {
    match field {
        "country" => "country-anomaly-detector",
        "action" => "action-anomaly-detector",
        "httpMethod" => "method-anomaly-detector",
        "httpStatus" => "httpstatus-anomaly-detector",
        "httpSourceName" => "source-anomaly-detector",
        _ => "request-count-detector",
    }
}

/// What the monitors said about one episode.
#[derive(Debug)]
struct Outcome {
    field: String,
    intensity: f64,
    hours: f64,
    /// Alerts opened from the episode start to 15 minutes after its end.
    alerts: usize,
    /// Minutes from the episode start to the first alert's period end.
    opened_after_min: Option<f64>,
    /// Minutes from the episode end to the completion (period end).
    completed_after_min: Option<f64>,
    /// `accepted` notifications on the alert (a level lasting `accept_shift_after`).
    accepted: usize,
}

fn outcome(e: &TruthEpisode, notes: &[Notification]) -> Outcome {
    let detector = detector_of(&e.field);
    let mine = |k: NotificationKind| {
        notes
            .iter()
            .filter(move |n| n.detector == detector && n.kind == k)
    };
    let fired: Vec<&Notification> = mine(NotificationKind::Fired)
        .filter(|n| n.period_end > e.start_ms && n.period_start < e.end_ms + 15 * MIN)
        .collect();
    let completed = fired.first().and_then(|f| {
        notes
            .iter()
            .find(|n| n.alert_id == f.alert_id && n.kind == NotificationKind::Completed)
    });
    Outcome {
        field: e.field.clone(),
        intensity: e.intensity,
        hours: (e.end_ms - e.start_ms) as f64 / HOUR as f64,
        alerts: fired.len(),
        opened_after_min: fired
            .first()
            .map(|f| (f.period_end - e.start_ms) as f64 / MIN as f64),
        completed_after_min: completed.map(|c| (c.period_end - e.end_ms) as f64 / MIN as f64),
        accepted: fired.first().map_or(0, |f| {
            notes
                .iter()
                .filter(|n| n.alert_id == f.alert_id && n.kind == NotificationKind::Accepted)
                .count()
        }),
    }
}

/// One seed's scenario: 26 hours at `rate`, six episodes on three fields (rotated by
/// `k`), starting and ending mid-interval: 24 h at 0.05 and 24 h at 1, and on the
/// third field 6 h at 1, 1 h at 0.05, 6 h at 0.05 and 1 h at 1.
fn sustained_scenario(seed: u64, k: usize, rate: f64) -> Scenario {
    let fields = [
        "country",
        "action",
        "httpMethod",
        "httpStatus",
        "httpSourceName",
    ];
    let (a, b, c) = (fields[k % 5], fields[(k + 1) % 5], fields[(k + 2) % 5]);
    let mut s = Scenario::new(seed, START);
    s.rate = rate;
    s.limit = Limit::Duration(26 * HOUR);
    for spec in [
        format!("{a}:1h0m30s:24h:0.05"),
        format!("{c}:1h20m10s:24h:1"),
        format!("{b}:2h0m20s:6h:1"),
        format!("{b}:10h0m40s:1h:0.05"),
        format!("{b}:12h0m50s:6h:0.05"),
        format!("{b}:20h0m15s:1h:1"),
    ] {
        s.episodes.push(Episode::parse(&spec).unwrap());
    }
    s
}

/// Checks one seed; returns its outcomes and the alerts outside the episodes.
fn check_sustained(seed: u64, k: usize, rate: f64) -> (Vec<Outcome>, usize) {
    let scenario = sustained_scenario(seed, k, rate);
    let (_, notes) = run(&scenario, &DetectorSpec::defaults());
    let truth = scenario.truth();
    let outcomes: Vec<Outcome> = truth.iter().map(|e| outcome(e, &notes)).collect();
    let in_episode = |n: &Notification| {
        truth.iter().any(|e| {
            detector_of(&e.field) == n.detector
                && n.period_end > e.start_ms
                && n.period_start < e.end_ms + 15 * MIN
        })
    };
    let other = notes
        .iter()
        .filter(|n| n.kind == NotificationKind::Fired && !in_episode(n))
        .count();
    println!("seed {seed} rate {rate}: {other} alerts outside the episodes");
    for o in &outcomes {
        println!(
            "  {:<10} {:>4} h at {:<4}: {} alert(s), opened {:?} min after the start, completed {:?} min after the end, {} accepted",
            o.field,
            o.hours,
            o.intensity,
            o.alerts,
            o.opened_after_min,
            o.completed_after_min,
            o.accepted
        );
    }
    (outcomes, other)
}

fn assert_sustained(outcomes: &[Outcome]) {
    for o in outcomes {
        let what = format!("{} {} h at {}: {o:?}", o.field, o.hours, o.intensity);
        assert_eq!(o.alerts, 1, "{what}");
        // Opened at once, except httpStatus at 0.05 and 20 events/s: its grade
        // hovers at the monitor's 0.7 (|z| about 16), so the first firing may wait.
        assert!(o.opened_after_min.unwrap() <= 30.0, "{what}");
        let done = o.completed_after_min.unwrap();
        assert!((0.0..=15.0).contains(&done), "{what}");
    }
}

#[test]
fn sustained_episodes_raise_one_alert_open_until_they_end() {
    for (k, seed) in [11, 2024, 3, 4].into_iter().enumerate() {
        let (outcomes, other) = check_sustained(seed, k, 20.0);
        assert_sustained(&outcomes);
        assert!(other <= 1, "seed {seed}: {other} other alerts");
    }
}

#[test]
fn sustained_episodes_at_a_higher_rate() {
    let (outcomes, other) = check_sustained(77, 2, 50.0);
    assert_sustained(&outcomes);
    assert!(other <= 1, "{other} other alerts");
}

/// The figures of the closing note (5 seeds, each field rotation); run with
/// `cargo test -p waflog-core --test sustained -- --ignored --nocapture`.
#[test]
#[ignore = "slow: five simulated days; prints the figures"]
fn figures_for_five_seeds() {
    for (k, seed) in [1, 2, 3, 4, 5].into_iter().enumerate() {
        let (outcomes, other) = check_sustained(seed, k, 20.0);
        let alerts: Vec<usize> = outcomes.iter().map(|o| o.alerts).collect();
        let delays: Vec<Option<f64>> = outcomes.iter().map(|o| o.completed_after_min).collect();
        println!(
            "seed {seed}: alerts per episode {alerts:?}, completion delays (min) {delays:?}, other alerts {other}"
        );
    }
}

fn diurnal_week(seed: u64, rate: f64) -> usize {
    let mut s = Scenario::new(seed, START);
    s.rate = rate;
    s.diurnal = 0.6;
    s.limit = Limit::Duration(7 * 24 * HOUR);
    let (results, notes) = run(&s, &DetectorSpec::defaults());
    let fired: Vec<&Notification> = notes
        .iter()
        .filter(|n| n.kind == NotificationKind::Fired)
        .collect();
    let anomalies = results.iter().filter(|r| r.is_anomaly()).count();
    println!(
        "diurnal week, seed {seed}, rate {rate}: {} alerts ({:?}), {anomalies} anomalous results",
        fired.len(),
        fired
            .iter()
            .map(|n| (
                n.monitor.as_str(),
                waflog_core::timestamp::to_rfc3339(n.period_start)
            ))
            .collect::<Vec<_>>()
    );
    fired.len()
}

#[test]
fn a_quiet_diurnal_week_raises_at_most_one_alert() {
    assert!(diurnal_week(42, 5.0) <= 1);
}

#[test]
#[ignore = "slow: a simulated week at 20 events/s"]
fn a_quiet_diurnal_week_at_20_per_second() {
    for seed in [1, 2] {
        assert!(diurnal_week(seed, 20.0) <= 1);
    }
}

/// A permanent shift (30 % unknown countries from 01:00 on) with `accept_shift_after
/// = "2h"`: one alert, open for two hours, one `accepted` notification, then the
/// alert completes as the shifted level is normal.
#[test]
fn a_permanent_shift_is_accepted_with_one_notification() {
    let mut specs = DetectorSpec::defaults();
    for s in &mut specs {
        s.algorithm = toml_algorithm("type = \"ewma\"\naccept_shift_after = \"2h\"");
    }
    let mut s = Scenario::new(8, START);
    s.rate = 10.0;
    s.limit = Limit::Duration(6 * HOUR);
    s.episodes
        .push(Episode::parse("country:1h0m30s:5h:0.3").unwrap());
    let (results, notes) = run(&s, &specs);
    let country: Vec<&Notification> = notes
        .iter()
        .filter(|n| n.detector == "country-anomaly-detector")
        .collect();
    let kinds: Vec<NotificationKind> = country.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            NotificationKind::Fired,
            NotificationKind::Accepted,
            NotificationKind::Completed
        ]
    );
    // The run began with the interval 01:00-01:01: two hours later, at 03:00.
    let accepted_at = country[1].period_end;
    assert_eq!(accepted_at, START + 3 * HOUR, "{country:?}");
    assert_eq!(country[2].period_end, accepted_at + 2 * MIN);
    assert!(
        country[1].text.contains("as the new normal"),
        "{}",
        country[1].text
    );
    let accepted: Vec<&AnomalyResult> = results.iter().filter(|r| r.shift_accepted).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].detector_name, "country-anomaly-detector");
    assert!(accepted[0].summary().contains("accepted as the new normal"));
    // The new level is normal: no anomaly of the country detector afterwards.
    let later = results
        .iter()
        .filter(|r| {
            r.detector_name == "country-anomaly-detector"
                && r.data_start_time >= accepted_at
                && r.is_anomaly()
        })
        .count();
    assert!(later <= 2, "{later} anomalies after the shift was accepted");
    // No other alert in the run.
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.kind == NotificationKind::Fired)
            .count(),
        1
    );
}

fn toml_algorithm(text: &str) -> AlgorithmSpec {
    toml::from_str(text).unwrap()
}

/// With `throttle = "1h"` a five-hour episode is re-notified every hour with the
/// periods it has been active, and completes two periods after it ends.
#[test]
fn a_sustained_alert_is_renotified_per_throttle() {
    let specs = DetectorSpec::defaults();
    let mut monitors = Monitor::defaults(&specs);
    for m in &mut monitors {
        m.triggers[0].throttle = Some("1h".into());
    }
    let mut s = Scenario::new(99, START);
    s.rate = 20.0;
    s.limit = Limit::Duration(8 * HOUR);
    s.episodes
        .push(Episode::parse("country:2h:5h:0.3").unwrap());
    let (_, notes) = run_with(&s, &specs, &monitors);
    let country: Vec<(NotificationKind, u32, i64)> = notes
        .iter()
        .filter(|n| n.detector == "country-anomaly-detector")
        .map(|n| (n.kind, n.periods_active, (n.period_end - START) / MIN))
        .collect();
    use NotificationKind::{Completed, Fired, Renotify};
    assert_eq!(
        country,
        [
            (Fired, 1, 121),
            (Renotify, 61, 181),
            (Renotify, 121, 241),
            (Renotify, 181, 301),
            (Renotify, 241, 361),
            (Completed, 300, 422),
        ]
    );
    assert_eq!(notes.len(), country.len(), "{notes:?}");
}

/// The state saved in the middle of a held episode restores bit-identically (the
/// run and the held baseline included).
#[test]
fn state_saved_mid_episode_round_trips() {
    let specs = DetectorSpec::defaults();
    let mut s = Scenario::new(3, START);
    s.rate = 10.0;
    s.limit = Limit::Duration(2 * HOUR);
    s.episodes.push(Episode::parse("action:1h:2h:0.5").unwrap());
    let mut engine = Engine::new(&specs, FeatureMap::default()).unwrap();
    let mut generator = Generator::new(&s).unwrap();
    let (mut line, mut out) = (Vec::new(), Vec::new());
    while generator.next_record(&mut line).is_some() {
        engine.push_line(line.trim_ascii_end(), &mut out).unwrap();
        line.clear();
    }
    engine.close_ready_intervals(&mut out);
    let saved = serde_json::to_string(&engine.snapshot()).unwrap();
    assert!(saved.contains("\"run\":{") && saved.contains("accept_shift_after_ms"));
    let state: EngineState = serde_json::from_str(&saved).unwrap();
    let back = Engine::restore(&specs, FeatureMap::default(), state).unwrap();
    // Compared as JSON values: the aggregators' hash maps have no fixed order.
    let again: serde_json::Value = serde_json::to_value(back.snapshot()).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(again, saved);
    let model = |v: &serde_json::Value| v["slots"][0]["models"][0][1].to_string();
    assert_eq!(model(&again), model(&saved));
}

/// `accept_shift_after` is a duration in TOML, checked when the detectors are.
#[test]
fn accept_shift_after_is_a_validated_duration() {
    let mut spec = DetectorSpec::indicator_sum("x", "UNK_country");
    spec.algorithm = toml_algorithm("type = \"ewma\"\naccept_shift_after = \"36h\"");
    assert!(matches!(
        spec.algorithm,
        AlgorithmSpec::Ewma {
            accept_shift_after_ms: 129_600_000,
            ..
        }
    ));
    assert!(Engine::new(&[spec.clone()], FeatureMap::default()).is_ok());
    for bad in ["10s", "31d"] {
        spec.algorithm =
            toml_algorithm(&format!("type = \"ewma\"\naccept_shift_after = \"{bad}\""));
        let e = Engine::new(&[spec.clone()], FeatureMap::default()).unwrap_err();
        assert!(
            e.to_string().contains("algorithm.accept_shift_after"),
            "{e}"
        );
    }
    assert!(
        toml::from_str::<AlgorithmSpec>("type = \"ewma\"\naccept_shift_after = \"soon\"").is_err()
    );
    // The default is not written back, so configurations and states stay as they were.
    assert_eq!(toml_algorithm("type = \"ewma\""), AlgorithmSpec::default());
    assert!(
        !serde_json::to_string(&AlgorithmSpec::default())
            .unwrap()
            .contains("accept")
    );
}
