//! A user-written detector plugged into waflog's engine.
//!
//! `MadDetector` flags an interval whose value is far from the median of the last
//! 60 intervals, measured in median absolute deviations (a robust z-score, Iglewicz &
//! Hoaglin 1993: 3.5 MADs scaled by 0.6745 is their suggested cut-off). It implements
//! `waflog_core::detect::Detector`: score the interval, then learn it, in one call.
//! The engine does the rest (parsing, indicators, intervals, results, explanations).
//!
//! Run with `cargo run -p waflog-examples --example custom_detector`.

use std::collections::VecDeque;

use waflog_core::detect::{Detector, DetectorSpec, Engine, IntervalFeatures, Score};
use waflog_core::features::FeatureMap;
use waflog_core::simulate::{Episode, Generator, Limit, Scenario};

/// Robust z-score against a sliding window of past values, one window per feature.
#[derive(Debug)]
struct MadDetector {
    window: usize,
    threshold: f64,
    past: Vec<VecDeque<f64>>,
}

impl MadDetector {
    fn new(features: usize) -> MadDetector {
        MadDetector {
            window: 60,
            threshold: 3.5,
            past: vec![VecDeque::new(); features],
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Detector for MadDetector {
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        let mut scores = Vec::new();
        let mut expected = Vec::new();
        for (past, &x) in self.past.iter_mut().zip(interval.values) {
            let (score, med) = if past.len() >= 10 {
                let mut v: Vec<f64> = past.iter().copied().collect();
                let med = median(&mut v);
                let mut dev: Vec<f64> = v.iter().map(|p| (p - med).abs()).collect();
                // At least one unit of spread, so a constant series is not brittle.
                let mad = median(&mut dev).max(1.0);
                (0.6745 * (x - med).abs() / mad, med)
            } else {
                (0.0, x)
            };
            scores.push(score);
            expected.push(med);
            past.push_back(x);
            if past.len() > self.window {
                past.pop_front();
            }
        }
        let score = scores.iter().copied().fold(0.0, f64::max);
        let total: f64 = scores.iter().sum();
        Score {
            anomaly_score: score,
            anomaly_grade: if score >= self.threshold {
                1.0 - self.threshold / score
            } else {
                0.0
            },
            confidence: (self.past.first().map_or(0, VecDeque::len) as f64 / self.window as f64)
                .min(1.0),
            threshold: self.threshold,
            expected,
            attribution: scores
                .iter()
                .map(|s| if total > 0.0 { s / total } else { 0.0 })
                .collect(),
            shifted_categories: Vec::new(),
            // A rolling median has no symmetric normal range: no band to draw.
            band: Vec::new(),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut scenario = Scenario::new(3, 1_714_521_600_000);
    scenario.limit = Limit::Duration(3 * 3_600_000);
    scenario.episodes.push(Episode::parse("flood:2h:5m:4")?);
    let flood_ip = scenario.truth()[0].client_ip.clone().unwrap_or_default();

    // The built-in detectors' configuration, with our model in every one of them.
    let mut engine = Engine::new(&DetectorSpec::defaults(), FeatureMap::default())?
        .with_models(|spec| Some(Box::new(MadDetector::new(spec.features.len()))));
    let mut generator = Generator::new(&scenario)?;
    let (mut line, mut results) = (Vec::new(), Vec::new());
    while generator.next_record(&mut line).is_some() {
        engine.push_line(line.trim_ascii_end(), &mut results)?;
        line.clear();
    }
    engine.finish(&mut results);
    println!("flood from {flood_ip} injected at 02:00 for 5 minutes; anomalies found:");
    for r in results.iter().filter(|r| r.is_anomaly()) {
        println!("  {}", r.summary());
    }
    Ok(())
}
