//! Rules, suppression windows and feedback (issue 17, parts 3 and 5), pinned with
//! fixed seeds on simulated WAF traffic through the whole [`Pipeline`]: the
//! built-in detectors with `[[rules]]` and `[[suppress]]` from a configuration, the
//! default monitors, and a responder's `not_anomaly` verdict in the middle of a
//! sustained episode.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use waflog_core::Config;
use waflog_core::alert::{Label, Monitor, Notification, NotificationKind};
use waflog_core::detect::{AnomalyResult, Engine};
use waflog_core::pipeline::Pipeline;
use waflog_core::simulate::{Episode, Limit, Scenario};

mod common;
use common::{HOUR, MIN, START, Seen};

const COUNTRY: &str = "country-anomaly-detector";

fn pipeline(config: &str) -> Pipeline<Seen> {
    let config = Config::from_toml(config, Path::new("waflog.toml")).unwrap();
    let specs = config.detector_specs();
    let engine = Engine::new(&specs, config.feature_map().unwrap()).unwrap();
    common::pipeline(engine, &Monitor::defaults(&specs))
}

/// Runs `scenario` through a pipeline with `config`; `respond` is called after
/// each line and may act on the pipeline (a responder).
fn run(config: &str, scenario: &Scenario, respond: impl FnMut(&mut Pipeline<Seen>)) -> Seen {
    common::run(pipeline(config), scenario, respond)
}

/// The country detector's results.
fn country(seen: &Seen) -> impl Iterator<Item = &AnomalyResult> {
    seen.results.iter().filter(|r| r.detector_name == COUNTRY)
}

fn scenario(seed: u64, hours: i64, episodes: &[&str]) -> Scenario {
    let mut s = Scenario::new(seed, START);
    s.rate = 10.0;
    s.limit = Limit::Duration(hours * HOUR);
    for e in episodes {
        s.episodes.push(Episode::parse(e).unwrap());
    }
    s
}

fn fired<'a>(seen: &'a Seen, monitor: &str) -> Vec<&'a Notification> {
    seen.notes
        .iter()
        .filter(|n| n.kind == NotificationKind::Fired && n.monitor == monitor)
        .collect()
}

/// Country results graded by the model but suppressed, and their reasons.
fn suppressed(seen: &Seen) -> Vec<(i64, String)> {
    country(seen)
        .filter_map(|r| {
            let s = r.suppressed.as_ref()?;
            assert_eq!(r.anomaly_grade, 0.0);
            assert!(s.anomaly_grade > 0.0);
            Some((r.data_start_time, s.reason.clone()))
        })
        .collect()
}

#[test]
fn rules_and_windows_mark_anomalies_instead_of_alerting() {
    for seed in [1, 2, 3] {
        // Unknown countries in 30 % of requests for 20 minutes.
        let s = scenario(seed, 3, &["country:1h30m:20m:0.3"]);
        let control = run("", &s, |_| {});
        assert_eq!(
            fired(&control, "UNK_country-Monitor").len(),
            1,
            "seed {seed}"
        );
        assert!(suppressed(&control).is_empty());

        // Only a drop counts: the rise is suppressed, marked with the rule.
        let drop = run(
            "[[rules]]\ndetector = \"country-anomaly-detector\"\ndirection = \"drop\"\n",
            &s,
            |_| {},
        );
        assert!(
            fired(&drop, "UNK_country-Monitor").is_empty(),
            "seed {seed}"
        );
        let marks = suppressed(&drop);
        assert!(!marks.is_empty());
        assert!(
            marks.iter().all(|(_, why)| why.contains("not a drop")),
            "{marks:?}"
        );
        // The other detectors are not touched.
        assert_eq!(
            drop.notes.len(),
            control.notes.len()
                - control
                    .notes
                    .iter()
                    .filter(|n| n.monitor == "UNK_country-Monitor")
                    .count()
        );

        // A minimum the episode does not reach (about 180 unknown-country requests
        // a minute over a baseline near 0).
        let small = run(
            "[[rules]]\nfeature = \"UNK_country\"\nmin_absolute = 1000\n",
            &s,
            |_| {},
        );
        assert!(fired(&small, "UNK_country-Monitor").is_empty());
        assert!(
            suppressed(&small)
                .iter()
                .all(|(_, why)| why.contains("below min_absolute 1000"))
        );
        // One it exceeds: the alert stands.
        let big = run(
            "[[rules]]\nfeature = \"UNK_country\"\nmin_absolute = 20\nmin_relative = 0.5\n",
            &s,
            |_| {},
        );
        assert_eq!(fired(&big, "UNK_country-Monitor").len(), 1);
    }
}

#[test]
fn a_suppression_window_hides_its_episode_and_not_the_next() {
    let s = scenario(4, 5, &["country:1h30m:20m:0.3", "country:3h30m:20m:0.3"]);
    let seen = run(
        "[[suppress]]\ndetectors = [\"country-anomaly-detector\"]\n\
         start = \"2024-05-01T01:15:00Z\"\nend = \"2024-05-01T02:15:00Z\"\n\
         reason = \"geo-blocking rollout\"\n",
        &s,
        |_| {},
    );
    let alerts = fired(&seen, "UNK_country-Monitor");
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].period_start >= START + 3 * HOUR + 30 * MIN);
    let marks = suppressed(&seen);
    assert!(!marks.is_empty());
    for (t, why) in &marks {
        assert_eq!(why, "window: geo-blocking rollout");
        assert!((START + 75 * MIN..START + 135 * MIN).contains(t), "{t}");
    }
    // A daily window repeats: the same window a day earlier with `every = "1d"`
    // covers this day too.
    let daily = run(
        "[[suppress]]\nstart = \"2024-04-30T01:15:00Z\"\nend = \"2024-04-30T02:15:00Z\"\n\
         every = \"1d\"\nreason = \"nightly deploy\"\n",
        &s,
        |_| {},
    );
    assert_eq!(fired(&daily, "UNK_country-Monitor").len(), 1);
}

#[test]
fn bad_rules_are_refused_with_the_field() {
    for (text, field) in [
        ("[[rules]]\ndetector = \"nope\"\n", "rules[0].detector"),
        ("[[rules]]\nfeature = \"nope\"\n", "rules[0].feature"),
        ("[[rules]]\nmin_absolute = -3\n", "rules[0].min_absolute"),
        (
            "[[suppress]]\ndetectors = [\"nope\"]\nstart = \"2024-05-01T00:00:00Z\"\n\
             end = \"2024-05-01T01:00:00Z\"\nreason = \"x\"\n",
            "suppress[0].detectors",
        ),
    ] {
        let e = Config::from_toml(text, Path::new("waflog.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{text}: {e}");
    }
    let e = Config::from_toml(
        "[[suppress]]\nstart = \"2024-05-01T02:00:00Z\"\nend = \"2024-05-01T01:00:00Z\"\nreason = \"x\"\n",
        Path::new("waflog.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("must be after"), "{e}");
}

/// A six-hour level shift of unknown countries (a new market, say): without
/// feedback the alert stays open to the end; a responder's `not_anomaly` after
/// its first notification closes it with the label, and the detector takes the
/// level as normal, so nothing fires again for it.
#[test]
fn not_anomaly_feedback_closes_the_alert_and_the_model_learns_the_level() {
    for seed in [1, 2, 3, 4, 5] {
        let s = scenario(seed, 9, &["country:1h30m:6h:0.3"]);
        let control = run("", &s, |_| {});
        let open = fired(&control, "UNK_country-Monitor");
        assert_eq!(open.len(), 1, "seed {seed}");
        let completed: Vec<&Notification> = control
            .notes
            .iter()
            .filter(|n| n.kind == NotificationKind::Completed && n.alert_id == open[0].alert_id)
            .collect();
        assert_eq!(completed.len(), 1);
        assert!(
            completed[0].period_end >= START + 7 * HOUR + 30 * MIN,
            "seed {seed}"
        );

        let mut answered = None;
        let seen = run("", &s, |p| {
            if answered.is_some() {
                return;
            }
            let id = p.observer_mut().notes.iter().find_map(|n| {
                (n.kind == NotificationKind::Fired && n.monitor == "UNK_country-Monitor")
                    .then(|| n.alert_id.clone())
            });
            if let Some(id) = id {
                let f = p
                    .acknowledge(&id, 1_700_000_000_000, Some(Label::NotAnomaly))
                    .unwrap();
                answered = Some((id, f));
            }
        });
        let (id, feedback) = answered.unwrap();
        assert_eq!(feedback.len(), 1);
        assert!(feedback[0].learnt, "seed {seed}");
        assert_eq!(feedback[0].alert.label, Some(Label::NotAnomaly));
        assert_eq!(seen.feedback, feedback);
        let closing: Vec<&Notification> = seen
            .notes
            .iter()
            .filter(|n| n.alert_id == id && n.kind == NotificationKind::Completed)
            .collect();
        assert_eq!(closing.len(), 1);
        assert!(
            closing[0]
                .text
                .contains("a responder marked it as not an anomaly")
        );
        // Nothing fires again for the country detector, during the shift or when
        // it ends (the old level is still normal).
        assert_eq!(fired(&seen, "UNK_country-Monitor").len(), 1, "seed {seed}");
        let late = country(&seen)
            .filter(|r| r.is_anomaly() && r.data_start_time > START + 2 * HOUR)
            .count();
        assert!(
            late <= 2,
            "seed {seed}: {late} anomalies after the feedback"
        );
        // A second verdict on the same alert is refused: it is completed.
        let mut p = pipeline("");
        assert!(p.acknowledge(&id, 0, Some(Label::NotAnomaly)).is_err());
    }
}
