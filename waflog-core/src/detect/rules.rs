//! Rules on a detector's grades: deviations too small to matter, the direction that
//! matters, and suppression windows (OpenSearch AD 2.19's `rules`, and more).
//!
//! ```toml
//! # Per detector and feature (a rule without `detector` applies to every detector,
//! # one without `feature` to every feature of its detector):
//! [[rules]]
//! detector = "country-anomaly-detector"
//! feature = "UNK_country"
//! direction = "rise"      # "rise", "drop" or "both" (the default)
//! min_absolute = 5        # ignore deviations of less than 5 from the expected value
//! min_relative = 0.2      # ... or of less than 20 % of the expected value
//!
//! # Maintenance, known campaigns: anomalies in the window are suppressed.
//! [[suppress]]
//! detectors = ["action-anomaly-detector"]   # every detector when absent
//! start = "2026-02-03T02:00:00Z"
//! end = "2026-02-03T03:00:00Z"
//! every = "1d"            # optional: the window repeats (here every night)
//! reason = "nightly WAF rule deployment"
//! ```
//!
//! The same `rules = [...]` and `suppress = [...]` lists may also be given inside a
//! `[[detectors]]` entry, without the `detector(s)` key.
//!
//! **When they apply.** After the model has scored an interval and before the grade
//! reaches the result: an interval the model graded above zero whose deviation no
//! feature's rules accept, or that lies in a suppression window, gets grade 0 and a
//! `suppressed` mark with the reason and the model's grade. It is kept, not lost:
//! the result is written with its contributors, the alert monitors see grade 0, and
//! `waflog eval` can still count it. A feature passes its rules when its deviation
//! (actual − expected) goes the rule's way and is at least `min_absolute` and at
//! least `min_relative` × |expected|; a feature no rule names always passes. What the
//! model learns is not changed by rules: a held level stays held (see
//! [`crate::detect::ewma`]); to tell a model an interval was normal, use feedback
//! (`waflog alerts ack ID --not-anomaly`).
//!
//! **In OpenSearch AD** (2.19 and later) a rule becomes `IGNORE_ANOMALY` rules: a
//! minimum becomes a `*_margin` (absolute) or `*_ratio` (relative) condition with
//! operator `LTE` on each side it covers, and a direction ignores the other side
//! (`actual_is_below_expected` / `actual_is_over_expected`, AD 3.0). AD divides a
//! ratio by the actual value where waflog divides by the expected one (the same for
//! small deviations). AD has no suppression windows: they stay waflog's.

use serde::{Deserialize, Serialize};

use crate::timestamp;

/// Which way a deviation must go to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above or below the expected value (the default).
    #[default]
    Both,
    /// Only above the expected value (a drop is never an anomaly).
    Rise,
    /// Only below the expected value.
    Drop,
}

impl Direction {
    fn is_both(&self) -> bool {
        *self == Direction::Both
    }
}

/// A rule on the deviation of one feature (or of every feature) of a detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The detector, in a top-level `[[rules]]` entry (every detector when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// The feature (every feature of the detector when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// Which way a deviation must go to count.
    #[serde(default, skip_serializing_if = "Direction::is_both")]
    pub direction: Direction,
    /// Deviations smaller than this (in the feature's unit) do not count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_absolute: f64,
    /// Deviations smaller than this share of |expected| do not count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_relative: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Rule {
    /// Whether this rule covers `feature` of `detector`.
    pub fn covers(&self, detector: &str, feature: &str) -> bool {
        self.detector.as_deref().is_none_or(|d| d == detector)
            && self.feature.as_deref().is_none_or(|f| f == feature)
    }

    /// Why a deviation of `actual` from `expected` does not count, or `None` when
    /// it does.
    fn refuses(&self, actual: f64, expected: f64) -> Option<String> {
        let d = actual - expected;
        let way = match self.direction {
            Direction::Rise if d <= 0.0 => Some("not a rise"),
            Direction::Drop if d >= 0.0 => Some("not a drop"),
            _ => None,
        };
        if let Some(way) = way {
            return Some(way.to_string());
        }
        if d.abs() < self.min_absolute {
            return Some(format!(
                "deviation {} below min_absolute {}",
                short(d.abs()),
                short(self.min_absolute)
            ));
        }
        let relative = self.min_relative * expected.abs();
        if d.abs() < relative {
            return Some(format!(
                "deviation {} below min_relative {} of expected",
                short(d.abs()),
                short(self.min_relative)
            ));
        }
        None
    }

    /// Checks the values; `field` names the rule in messages.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (name, v) in [
            ("min_absolute", self.min_absolute),
            ("min_relative", self.min_relative),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err((name, format!("{v} must be a finite number ≥ 0")));
            }
        }
        Ok(())
    }
}

/// A period in which a detector's anomalies are suppressed (maintenance, a known
/// campaign), with the reason that appears in the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WindowToml", into = "WindowToml")]
pub struct Window {
    /// The detectors, in a top-level `[[suppress]]` entry (every one when empty).
    pub detectors: Vec<String>,
    /// Start, epoch ms (inclusive).
    pub start_ms: i64,
    /// End, epoch ms (exclusive).
    pub end_ms: i64,
    /// The window repeats with this period, when given (ms).
    pub every_ms: Option<i64>,
    /// Why (shown in the results).
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowToml {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    detectors: Vec<String>,
    start: String,
    end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every: Option<String>,
    reason: String,
}

impl TryFrom<WindowToml> for Window {
    type Error = String;
    fn try_from(t: WindowToml) -> Result<Window, String> {
        let time = |field: &str, s: &str| {
            timestamp::from_str(s).map_err(|e| format!("suppress window `{field}`: {e}"))
        };
        let start_ms = time("start", &t.start)?;
        let end_ms = time("end", &t.end)?;
        if end_ms <= start_ms {
            return Err(format!(
                "suppress window: `end` ({}) must be after `start` ({})",
                t.end, t.start
            ));
        }
        let every_ms = match &t.every {
            None => None,
            Some(e) => {
                let ms = timestamp::parse_duration_ms(e)
                    .map_err(|r| format!("suppress window `every`: {r}"))?;
                if ms < end_ms - start_ms {
                    return Err(format!(
                        "suppress window: `every` ({e}) is shorter than the window"
                    ));
                }
                Some(ms)
            }
        };
        if t.reason.trim().is_empty() {
            return Err("suppress window: `reason` must not be empty".into());
        }
        Ok(Window {
            detectors: t.detectors,
            start_ms,
            end_ms,
            every_ms,
            reason: t.reason,
        })
    }
}

impl From<Window> for WindowToml {
    fn from(w: Window) -> WindowToml {
        WindowToml {
            detectors: w.detectors,
            start: timestamp::to_rfc3339(w.start_ms),
            end: timestamp::to_rfc3339(w.end_ms),
            every: w.every_ms.map(|ms| timestamp::duration_text(ms as u64)),
            reason: w.reason,
        }
    }
}

impl Window {
    /// Whether the window applies to `detector`.
    pub fn covers(&self, detector: &str) -> bool {
        self.detectors.is_empty() || self.detectors.iter().any(|d| d == detector)
    }

    /// Whether the interval `[start, end)` overlaps the window (or one of its
    /// repetitions).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        let len = self.end_ms - self.start_ms;
        match self.every_ms {
            None => start < self.end_ms && end > self.start_ms,
            Some(every) => {
                if end <= self.start_ms {
                    return false;
                }
                // The last repetition starting before `end`.
                let k = (end - 1 - self.start_ms).div_euclid(every);
                let s = self.start_ms + k * every;
                start < s + len
            }
        }
    }
}

/// Why an interval the model graded above zero is suppressed, or `None` when the
/// grade stands. `names`, `values` and `expected` are the detector's features, their
/// values and their expected values (an empty `expected`: the model gives none, so
/// only windows apply).
pub fn suppression(
    detector: &str,
    rules: &[Rule],
    windows: &[Window],
    (start, end): (i64, i64),
    features: (&[String], &[f64], &[f64]),
) -> Option<String> {
    if let Some(w) = windows.iter().find(|w| w.overlaps(start, end)) {
        return Some(format!("window: {}", w.reason));
    }
    let (names, values, expected) = features;
    if rules.is_empty() || expected.len() != values.len() {
        return None;
    }
    let mut first = None;
    for ((name, &actual), &exp) in names.iter().zip(values).zip(expected) {
        let mut covering = rules.iter().filter(|r| r.covers(detector, name)).peekable();
        covering.peek()?; // a feature no rule names always counts
        match covering.find_map(|r| r.refuses(actual, exp)) {
            Some(why) => {
                first.get_or_insert_with(|| {
                    format!(
                        "rule: {name} {} (expected {}): {why}",
                        short(actual),
                        short(exp)
                    )
                });
            }
            None => return None,
        }
    }
    first
}

/// A number for a message: integers as such, others with at most three decimals.
fn short(v: f64) -> String {
    crate::text::decimals(v, 3, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Rule {
        toml::from_str(toml_text).unwrap()
    }

    fn names() -> Vec<String> {
        vec!["UNK_country".into()]
    }

    fn judge(rules: &[Rule], actual: f64, expected: f64) -> Option<String> {
        suppression(
            "country",
            rules,
            &[],
            (0, 60_000),
            (&names(), &[actual], &[expected]),
        )
    }

    #[test]
    fn small_deviations_and_the_wrong_direction_are_suppressed() {
        let r = [rule(
            "min_absolute = 5\nmin_relative = 0.8\ndirection = \"rise\"",
        )];
        assert_eq!(judge(&r, 20.0, 10.0), None);
        let small = judge(&r, 13.0, 10.0).unwrap();
        assert!(small.contains("below min_absolute 5"), "{small}");
        assert!(
            small.starts_with("rule: UNK_country 13 (expected 10)"),
            "{small}"
        );
        // 6 over 10 passes the absolute minimum, not the relative one (0.8 × 10).
        assert!(judge(&r, 16.0, 10.0).unwrap().contains("min_relative 0.8"));
        assert_eq!(judge(&r, 18.0, 10.0), None);
        assert!(judge(&r, 0.0, 10.0).unwrap().contains("not a rise"));
        let drop = [rule("direction = \"drop\"")];
        assert_eq!(judge(&drop, 0.0, 10.0), None);
        assert!(judge(&drop, 30.0, 10.0).unwrap().contains("not a drop"));
    }

    #[test]
    fn rules_are_per_detector_and_feature() {
        let other = [rule("detector = \"other\"\nmin_absolute = 100")];
        assert_eq!(judge(&other, 13.0, 10.0), None);
        let other_feature = [rule("feature = \"B_action\"\nmin_absolute = 100")];
        assert_eq!(judge(&other_feature, 13.0, 10.0), None);
        // With two features, the anomaly stands when one of them passes.
        let two = vec!["UNK_country".to_string(), "B_action".to_string()];
        let r = [rule("feature = \"UNK_country\"\nmin_absolute = 100")];
        let judged = |v: [f64; 2]| suppression("d", &r, &[], (0, 1), (&two, &v, &[10.0, 10.0]));
        assert_eq!(
            judged([13.0, 10.0]),
            None,
            "B_action has no rule: it counts"
        );
        let both = [
            rule("feature = \"UNK_country\"\nmin_absolute = 100"),
            rule("feature = \"B_action\"\nmin_absolute = 100"),
        ];
        let s = suppression(
            "d",
            &both,
            &[],
            (0, 1),
            (&two, &[13.0, 10.0], &[10.0, 10.0]),
        );
        assert!(s.unwrap().starts_with("rule: UNK_country"));
    }

    #[test]
    fn windows_suppress_the_intervals_they_overlap_and_repeat() {
        let w: Window = toml::from_str(
            "start = \"2026-02-03T02:00:00Z\"\nend = \"2026-02-03T03:00:00Z\"\n\
             every = \"1d\"\nreason = \"deploy\"",
        )
        .unwrap();
        let t = |s: &str| timestamp::from_str(s).unwrap();
        let minute = |s: &str| (t(s), t(s) + 60_000);
        let hit = |s: &str| {
            suppression(
                "d",
                &[],
                std::slice::from_ref(&w),
                minute(s),
                (&[], &[], &[]),
            )
        };
        assert_eq!(
            hit("2026-02-03T02:30:00Z").as_deref(),
            Some("window: deploy")
        );
        assert_eq!(hit("2026-02-03T01:59:00Z"), None);
        assert_eq!(hit("2026-02-03T03:00:00Z"), None);
        assert!(hit("2026-02-05T02:59:00Z").is_some(), "two days later");
        assert_eq!(hit("2026-02-02T02:30:00Z"), None, "before the first");
        assert!(w.covers("anything"));
        // Round trip through TOML.
        let text = toml::to_string(&w).unwrap();
        assert_eq!(toml::from_str::<Window>(&text).unwrap(), w);
    }

    /// The README's examples parse, and reach the detectors they name.
    #[test]
    fn the_readme_examples_parse() {
        let readme = include_str!("../../../README.md");
        let blocks: Vec<&str> = readme
            .split("```toml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .filter(|b| b.contains("[[rules]]") || b.contains("rules = ["))
            .collect();
        assert_eq!(blocks.len(), 2, "the alerting and configuration examples");
        for b in &blocks {
            // Indented inside a list item in the alerting section.
            let text: String = b
                .lines()
                .map(|l| l.trim_start().to_string() + "\n")
                .collect();
            let config = crate::Config::from_toml(&text, std::path::Path::new("README.md"))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            let specs = config.detector_specs();
            assert!(specs.iter().any(|s| !s.rules.is_empty()), "{text}");
        }
        let alerting = crate::Config::from_toml(
            &blocks[0]
                .lines()
                .map(|l| l.trim_start().to_string() + "\n")
                .collect::<String>(),
            std::path::Path::new("README.md"),
        )
        .unwrap()
        .detector_specs();
        let by = |n: &str| alerting.iter().find(|s| s.name == n).unwrap();
        assert_eq!(by("country-anomaly-detector").rules.len(), 1);
        assert_eq!(by("action-anomaly-detector").suppress.len(), 1);
        assert!(by("method-anomaly-detector").suppress.is_empty());
    }

    #[test]
    fn bad_rules_and_windows_are_refused() {
        assert!(rule("min_absolute = -1").check().is_err());
        assert!(rule("min_relative = nan").check().is_err());
        assert!(toml::from_str::<Rule>("minimum = 3").is_err());
        for bad in [
            "start = \"2026-02-03T03:00:00Z\"\nend = \"2026-02-03T02:00:00Z\"\nreason = \"x\"",
            "start = \"yesterday\"\nend = \"2026-02-03T02:00:00Z\"\nreason = \"x\"",
            "start = \"2026-02-03T02:00:00Z\"\nend = \"2026-02-03T04:00:00Z\"\nevery = \"1h\"\nreason = \"x\"",
            "start = \"2026-02-03T02:00:00Z\"\nend = \"2026-02-03T04:00:00Z\"\nreason = \" \"",
        ] {
            let e = toml::from_str::<Window>(bad).unwrap_err().to_string();
            assert!(e.contains("suppress window"), "{e}");
        }
    }
}
