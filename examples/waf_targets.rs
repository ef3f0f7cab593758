//! Candidate algorithms for the WAF detectors on simulated WAF traffic.
//!
//! Run with `cargo run --release -p waflog-examples --example waf_targets [-- NAME]`
//! (NAME: only the algorithms whose name contains it).
//!
//! Six seeded 24-hour scenarios (one-minute intervals, 50 events/s), flat and with a
//! daily cycle of amplitude 0.6, each with 20 ten-minute episodes (four per field:
//! action, httpSourceName, httpStatus, country, httpMethod) and 4 five-minute floods,
//! at intensity 1.0, 0.05 or 0.02 (floods ×8 at full intensity, ×2 otherwise). Each
//! algorithm replaces the one of the six built-in detectors
//! ([`DetectorSpec::defaults`]); the results are evaluated against the ground truth
//! ([`evaluate`]: an episode is detected when a covering detector flags it; false
//! alarms are graded intervals matching no episode, per simulated day, after 10
//! intervals of warm-up). The output is deterministic.

use waflog_core::detect::{AlgorithmSpec, AnomalyResult, DetectorSpec, Engine};
use waflog_core::eval::episodes::evaluate;
use waflog_core::features::FeatureMap;
use waflog_core::simulate::{Episode, Generator, Limit, Scenario};

/// 2024-05-01T00:00:00Z.
const START: i64 = 1_714_521_600_000;

fn detect(scenario: &Scenario, mut engine: Engine) -> Result<Vec<AnomalyResult>, String> {
    let mut generator = Generator::new(scenario).map_err(|e| e.to_string())?;
    let (mut line, mut results) = (Vec::new(), Vec::new());
    while generator.next_record(&mut line).is_some() {
        engine
            .push_line(line.trim_ascii_end(), &mut results)
            .map_err(|e| e.to_string())?;
        line.clear();
    }
    engine.finish(&mut results);
    Ok(results)
}

fn scenarios() -> Result<Vec<(String, Scenario)>, String> {
    let fields = [
        "action",
        "httpSourceName",
        "httpStatus",
        "country",
        "httpMethod",
    ];
    let mut out = Vec::new();
    for (seed, intensity, diurnal) in [
        (20_240_501_u64, 1.0, 0.0),
        (7, 0.05, 0.0),
        (11, 0.02, 0.0),
        (12, 0.05, 0.6),
        (13, 0.02, 0.6),
        (14, 1.0, 0.6),
    ] {
        let mut s = Scenario::new(seed, START);
        s.rate = 50.0;
        s.diurnal = diurnal;
        s.limit = Limit::Duration(24 * 3_600_000);
        let mut add = |spec: String| -> Result<(), String> {
            s.episodes
                .push(Episode::parse(&spec).map_err(|e| e.to_string())?);
            Ok(())
        };
        for k in 0..4 {
            for (i, f) in fields.iter().enumerate() {
                let offset = 60 + k * 330 + i * 60 + 13;
                add(format!("{f}:{offset}m:10m:{intensity}"))?;
            }
            let offset = 60 + k * 330 + 5 * 60 + 13;
            let multiplier = if intensity >= 1.0 { 8.0 } else { 2.0 };
            add(format!("flood:{offset}m:5m:{multiplier}"))?;
        }
        out.push((
            format!("seed {seed}, intensity {intensity}, diurnal {diurnal}"),
            s,
        ));
    }
    Ok(out)
}

fn main() -> Result<(), String> {
    let filter = std::env::args().nth(1);
    let algorithms = [
        ("ewma", AlgorithmSpec::default()),
        ("ewma_likelihood", AlgorithmSpec::likelihood_default()),
        ("artime", AlgorithmSpec::artime_default()),
        ("ensemble", AlgorithmSpec::artime_likelihood_ensemble()),
        ("cad", AlgorithmSpec::cad_default()),
    ];
    let scenarios = scenarios()?;
    println!("algorithm         episodes detected  false alarms/day (sum)  mean delay");
    for (name, algorithm) in algorithms {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let (mut episodes, mut detected, mut false_alarms) = (0, 0, 0.0);
        let mut delays = Vec::new();
        let mut per_scenario = Vec::new();
        for (label, scenario) in &scenarios {
            let mut specs = DetectorSpec::defaults();
            for s in &mut specs {
                s.algorithm = algorithm.clone();
            }
            let engine = Engine::new(&specs, FeatureMap::default()).map_err(|e| e.to_string())?;
            let results = detect(scenario, engine)?;
            let report = evaluate(&scenario.truth(), &results, &specs, 10);
            let found = report.episodes.iter().filter(|e| e.detected).count();
            let alarms: f64 = report
                .detectors
                .iter()
                .map(|d| d.false_alarms_per_day)
                .sum();
            episodes += report.episodes.len();
            detected += found;
            false_alarms += alarms;
            delays.extend(report.episodes.iter().filter_map(|e| e.delay_intervals));
            per_scenario.push(format!(
                "    {label}: {found}/{} detected, {alarms:.1} false alarms/day",
                report.episodes.len()
            ));
        }
        let mean_delay = delays.iter().sum::<i64>() as f64 / delays.len().max(1) as f64;
        println!("{name:17} {detected:>4}/{episodes:<12} {false_alarms:>22.1}  {mean_delay:>10.2}");
        for line in per_scenario {
            println!("{line}");
        }
    }
    Ok(())
}
