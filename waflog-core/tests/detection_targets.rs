//! The detection targets on simulated WAF traffic, pinned with fixed seeds:
//! `generate --duration 24h --rate 50`, 1-minute intervals, the built-in detectors.
//!
//! - every episode of intensity 1.0 is flagged by its field's detector within 2
//!   intervals of its start;
//! - at intensity 0.05, recall is at least 0.9;
//! - at most 1 false alarm per detector per simulated day after warm-up.

#![allow(clippy::unwrap_used)]

use waflog_core::detect::{AnomalyResult, DetectorSpec, Engine};
use waflog_core::eval::episodes::{Report, evaluate};
use waflog_core::features::FeatureMap;
use waflog_core::simulate::{Episode, Generator, Limit, Scenario};

const START: i64 = 1_714_521_600_000; // 2024-05-01T00:00:00Z

/// Every result of `engine` on the scenario's traffic (intervals complete in event
/// time are scored at the end).
fn detect(scenario: &Scenario, mut engine: Engine) -> Vec<AnomalyResult> {
    let mut generator = Generator::new(scenario).unwrap();
    let (mut line, mut results) = (Vec::new(), Vec::new());
    while generator.next_record(&mut line).is_some() {
        engine
            .push_line(line.trim_ascii_end(), &mut results)
            .unwrap();
        line.clear();
    }
    engine.finish(&mut results);
    results
}

fn run(seed: u64, episodes: &[String]) -> Report {
    let mut scenario = Scenario::new(seed, START);
    scenario.rate = 50.0;
    scenario.limit = Limit::Duration(24 * 3_600_000);
    for e in episodes {
        scenario.episodes.push(Episode::parse(e).unwrap());
    }
    let specs = DetectorSpec::defaults();
    let results = detect(
        &scenario,
        Engine::new(&specs, FeatureMap::default()).unwrap(),
    );
    let report = evaluate(&scenario.truth(), &results, &specs, 10);
    println!("seed {seed}\n{}", report.table());
    report
}

fn assert_false_alarms(report: &Report) {
    for d in &report.detectors {
        assert!(
            d.false_alarms_per_day <= 1.0 + 1e-9,
            "{}: {} false alarms/day",
            d.detector,
            d.false_alarms_per_day
        );
    }
}

#[test]
fn full_intensity_episodes_are_flagged_within_two_intervals() {
    // One episode per field, every 4 hours, each 10 minutes long, starting mid-interval.
    let fields = [
        "action",
        "httpSourceName",
        "httpStatus",
        "country",
        "httpMethod",
        "flood",
    ];
    let episodes: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{f}:{}m:10m", 150 + i * 240 + 7))
        .collect();
    let report = run(20_240_501, &episodes);
    for e in &report.episodes {
        let delay = e
            .delay_intervals
            .unwrap_or_else(|| panic!("{} episode missed", e.field));
        assert!(delay <= 2, "{}: delay {delay}", e.field);
    }
    assert_false_alarms(&report);
}

#[test]
fn five_percent_episodes_have_recall_at_least_0_9() {
    // Four 10-minute episodes per field at intensity 0.05.
    let fields = [
        "action",
        "httpSourceName",
        "httpStatus",
        "country",
        "httpMethod",
    ];
    let mut episodes = Vec::new();
    for k in 0..4 {
        for (i, f) in fields.iter().enumerate() {
            let offset = 60 + k * 330 + i * 60 + 13;
            episodes.push(format!("{f}:{offset}m:10m:0.05"));
        }
    }
    let report = run(7, &episodes);
    assert!(report.recall.unwrap() >= 0.9, "recall {:?}", report.recall);
    assert_false_alarms(&report);
}

#[test]
fn a_flood_is_explained_by_its_client() {
    let mut scenario = Scenario::new(5, START);
    scenario.rate = 50.0;
    scenario.limit = Limit::Duration(3 * 3_600_000);
    scenario
        .episodes
        .push(Episode::parse("flood:2h:5m:6").unwrap());
    let flood_ip = scenario.truth()[0].client_ip.clone().unwrap();
    let results = detect(
        &scenario,
        Engine::new(&DetectorSpec::defaults(), FeatureMap::default()).unwrap(),
    );
    let flagged: Vec<_> = results
        .iter()
        .filter(|r| r.detector_name == "request-count-detector" && r.is_anomaly())
        .collect();
    assert_eq!(flagged.len(), 5);
    for r in flagged {
        let ips = r
            .contributors
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.field == "httpRequest.clientIp")
            .unwrap();
        assert_eq!(ips.top[0].value, flood_ip);
        assert!(ips.top[0].count > 10_000 && ips.top[0].expected < 1.0);
        assert!(
            r.summary()
                .contains(&format!("httpRequest.clientIp={flood_ip}"))
        );
    }
}

/// A run stopped mid-stream and resumed from its saved state gives the same results as
/// an uninterrupted one.
#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let mut scenario = Scenario::new(9, START);
    scenario.rate = 20.0;
    scenario.limit = Limit::Duration(4 * 3_600_000);
    scenario
        .episodes
        .push(Episode::parse("country:90m:10m").unwrap());
    scenario
        .episodes
        .push(Episode::parse("flood:150m:5m").unwrap());
    let mut generator = Generator::new(&scenario).unwrap();
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    while generator.next_record(&mut buf).is_some() {
        lines.push(String::from_utf8(buf.trim_ascii_end().to_vec()).unwrap());
        buf.clear();
    }
    let specs = DetectorSpec::defaults();
    let feed = |engine: &mut Engine, part: &[String], out: &mut Vec<AnomalyResult>| {
        for l in part {
            engine.push_line(l.as_bytes(), out).unwrap();
        }
        engine.close_ready_intervals(out);
    };
    let mut whole = Vec::new();
    let mut engine = Engine::new(&specs, FeatureMap::default()).unwrap();
    feed(&mut engine, &lines, &mut whole);

    // Stop at an odd place (mid-interval, inside the country episode), save, resume.
    let cut = lines.len() * 4 / 10 + 17;
    let mut resumed = Vec::new();
    let mut first = Engine::new(&specs, FeatureMap::default()).unwrap();
    feed(&mut first, &lines[..cut], &mut resumed);
    let saved = serde_json::to_string(&first.snapshot()).unwrap();
    drop(first);
    let state = serde_json::from_str(&saved).unwrap();
    let mut second = Engine::restore(&specs, FeatureMap::default(), state).unwrap();
    feed(&mut second, &lines[cut..], &mut resumed);
    assert_eq!(whole.len(), 6 * 239);
    assert!(whole.iter().any(AnomalyResult::is_anomaly));
    assert_eq!(whole.len(), resumed.len());
    if let Some(i) = (0..whole.len()).find(|&i| whole[i] != resumed[i]) {
        panic!("result {i} differs:\n{:?}\n{:?}", whole[i], resumed[i]);
    }

    // Other detectors: a clear error.
    let state = serde_json::from_str(&saved).unwrap();
    let e = Engine::restore(&specs[..2], FeatureMap::default(), state).unwrap_err();
    assert!(e.to_string().contains("other detectors"), "{e}");
}

/// The categorical detector needs no vocabulary: it catches 5 % episodes of unknown
/// countries and of an odd method from the distributions alone, without false alarms.
#[test]
fn categorical_detectors_catch_shifts_without_a_vocabulary() {
    use waflog_core::detect::{Aggregation, AlgorithmSpec, FeatureSpec};
    let categorical = |name: &str, field: &str| {
        let mut s = DetectorSpec::indicator_sum(name, "unused");
        s.features = vec![FeatureSpec {
            name: "values".into(),
            aggregation: Aggregation::DistinctCount,
            field: Some(field.into()),
            filter: None,
        }];
        s.algorithm = AlgorithmSpec::Categorical {
            field: field.into(),
            half_life: 60.0,
            threshold: 5.0,
            min_shift: 0.02,
            min_intervals: 5,
        };
        s
    };
    let specs = vec![
        categorical("country-distribution", "httpRequest.country"),
        categorical("method-distribution", "httpRequest.httpMethod"),
    ];
    let mut scenario = Scenario::new(3, START);
    scenario.rate = 50.0;
    scenario.limit = Limit::Duration(24 * 3_600_000);
    for e in [
        "country:6h:10m:0.05",
        "httpMethod:12h:10m:0.05",
        "country:20h:10m:0.05",
    ] {
        scenario.episodes.push(Episode::parse(e).unwrap());
    }
    let results = detect(
        &scenario,
        Engine::new(&specs, FeatureMap::default()).unwrap(),
    );
    let report = evaluate(&scenario.truth(), &results, &specs, 10);
    println!("{}", report.table());
    for e in &report.episodes {
        assert!(
            e.delay_intervals.is_some_and(|d| d <= 2),
            "{} missed",
            e.field
        );
    }
    assert_false_alarms(&report);
    // The explanation names the new categories.
    let flagged = results
        .iter()
        .find(|r| r.is_anomaly() && r.detector_name == "country-distribution")
        .unwrap();
    let top = &flagged.contributors.as_ref().unwrap()[0];
    assert_eq!(top.field, "httpRequest.country");
    assert!(["XX", "YY", "ZZ", "WW"].contains(&top.top[0].value.as_str()));
}

/// On a multi-feature detector the injected feature gets the largest attribution share.
#[test]
fn multi_feature_attribution_names_the_injected_field() {
    let mut spec = DetectorSpec::indicator_sum("everything", "B_action");
    for f in [
        "UNK_country",
        "uncommon_method",
        "UNK_source",
        "B_httpstatus",
    ] {
        let mut extra = DetectorSpec::indicator_sum("x", f).features.remove(0);
        extra.name = f.into();
        spec.features.push(extra);
    }
    let mut scenario = Scenario::new(21, START);
    scenario.rate = 50.0;
    scenario.limit = Limit::Duration(4 * 3_600_000);
    let episodes = [
        ("country", "UNK_country"),
        ("httpMethod", "uncommon_method"),
        ("action", "B_action"),
    ];
    for (i, (field, _)) in episodes.iter().enumerate() {
        scenario
            .episodes
            .push(Episode::parse(&format!("{field}:{}m:5m:0.2", 60 + i * 60)).unwrap());
    }
    let results = detect(
        &scenario,
        Engine::new(&[spec], FeatureMap::default()).unwrap(),
    );
    for (i, (_, feature)) in episodes.iter().enumerate() {
        let start = START + (60 + i as i64 * 60) * 60_000;
        let r = results.iter().find(|r| r.data_start_time == start).unwrap();
        assert!(r.is_anomaly(), "{feature} episode not flagged");
        let top = r
            .relevant_attribution
            .iter()
            .max_by(|a, b| a.data.total_cmp(&b.data))
            .unwrap();
        assert_eq!(top.feature_id, *feature);
        let total: f64 = r.relevant_attribution.iter().map(|a| a.data).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}

/// Cold start: OpenSearch AD gives no result before about 40 intervals (its forest
/// needs 32 shingles of 8 plus the shingle itself); waflog grades from the 5th. An
/// episode starting at the 10th interval of a fresh engine, at intensity 1.0, is
/// flagged in its first interval with the confidence of 10 intervals seen
/// (`1 - exp(-1)` = 0.63), and the intervals before it raise no alarm.
#[test]
fn a_cold_engine_flags_an_episode_at_its_tenth_interval() {
    for (seed, field) in [(1_u64, "country"), (2, "action"), (3, "httpMethod")] {
        let mut scenario = Scenario::new(seed, START);
        scenario.rate = 50.0;
        scenario.limit = Limit::Duration(20 * 60_000);
        scenario
            .episodes
            .push(Episode::parse(&format!("{field}:10m:5m")).unwrap());
        let specs = DetectorSpec::defaults();
        let results = detect(
            &scenario,
            Engine::new(&specs, FeatureMap::default()).unwrap(),
        );
        let flagged: Vec<&AnomalyResult> = results.iter().filter(|r| r.is_anomaly()).collect();
        let first = flagged
            .iter()
            .min_by_key(|r| r.data_start_time)
            .unwrap_or_else(|| panic!("{field}: nothing flagged"));
        assert_eq!(first.data_start_time, START + 10 * 60_000, "{field}");
        assert!(
            (first.confidence - (1.0 - (-1.0_f64).exp())).abs() < 0.05,
            "{field}: confidence {}",
            first.confidence
        );
        assert!(
            flagged
                .iter()
                .all(|r| r.data_start_time >= START + 10 * 60_000),
            "{field}: a false alarm before the episode"
        );
    }
}
