//! The traffic simulator: realistic AWS WAF records with labelled anomaly episodes.
//!
//! A [`Scenario`] says how much traffic (a Poisson process of `rate` events per
//! simulated second, optionally with a daily cycle), for how long, and which
//! [`Episode`]s to inject: a field episode draws that field from the anomalous
//! [`Profile`] for a share (`intensity`) of the events in its window, exactly like the
//! seed's `anomaly_in`; a flood episode adds a single client IP sending
//! `multiplier - 1` times the normal rate. [`Generator`] turns a scenario into NDJSON
//! lines, deterministically: the same scenario and seed give byte-identical output.
//!
//! ```
//! use waflog_core::simulate::{Episode, Generator, Limit, Scenario};
//! let mut scenario = Scenario::new(7, 1_700_000_000_000);
//! scenario.rate = 100.0;
//! scenario.limit = Limit::Duration(60_000);
//! scenario.episodes.push(Episode::parse("country:10s:20s").unwrap());
//! let mut generator = Generator::new(&scenario).unwrap();
//! let mut out = Vec::new();
//! let mut n = 0;
//! while generator.next_record(&mut out).is_some() { n += 1; }
//! assert!((5_000..7_000).contains(&n));
//! assert_eq!(scenario.truth().len(), 1);
//! ```

mod generator;
mod profile;

use serde::{Deserialize, Serialize};

pub use generator::Generator;
pub use profile::{FieldProfile, Profile, SimField};

use crate::error::ScenarioError;
use crate::timestamp::to_rfc3339;

/// What an episode changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EpisodeKind {
    /// The field is drawn from the anomalous population.
    Field(SimField),
    /// One client IP multiplies the request rate by `multiplier`.
    Flood {
        /// Total rate during the episode, as a multiple of the normal rate (> 1).
        multiplier: f64,
    },
}

/// One injected anomaly: what, when (offset from the scenario start) and how strong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// What changes.
    pub kind: EpisodeKind,
    /// Start, in milliseconds after the scenario start.
    pub offset_ms: i64,
    /// Length in milliseconds.
    pub duration_ms: i64,
    /// Share of events in the window whose field comes from the anomalous profile
    /// (field episodes; 1 for floods).
    pub intensity: f64,
}

/// Default flood multiplier.
pub const DEFAULT_FLOOD_MULTIPLIER: f64 = 5.0;

impl Episode {
    /// Parses `FIELD:OFFSET:DURATION[:INTENSITY]` (FIELD one of action,
    /// httpSourceName, httpStatus, country, httpMethod) or
    /// `flood:OFFSET:DURATION[:MULTIPLIER]`. Durations: `90s`, `15m`, `2h`, `1h30m`.
    pub fn parse(spec: &str) -> Result<Episode, ScenarioError> {
        let err = |reason: String| ScenarioError::Episode {
            spec: spec.to_string(),
            reason,
        };
        let parts: Vec<&str> = spec.split(':').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(err("expected FIELD:OFFSET:DURATION[:INTENSITY]".into()));
        }
        let offset_ms = crate::timestamp::parse_duration_ms(parts[1]).map_err(&err)?;
        let duration_ms = crate::timestamp::parse_duration_ms(parts[2]).map_err(&err)?;
        if duration_ms <= 0 {
            return Err(err("duration must be positive".into()));
        }
        let last = parts
            .get(3)
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| err(format!("`{s}` is not a number")))
            })
            .transpose()?;
        let (kind, intensity) = if parts[0].eq_ignore_ascii_case("flood") {
            let m = last.unwrap_or(DEFAULT_FLOOD_MULTIPLIER);
            if !(m > 1.0 && m <= 1000.0) {
                return Err(err(format!("flood multiplier {m} must be in (1, 1000]")));
            }
            (EpisodeKind::Flood { multiplier: m }, 1.0)
        } else {
            let field = SimField::parse(parts[0]).ok_or_else(|| {
                err(format!(
                    "unknown field `{}`: use action, httpSourceName, httpStatus, country, httpMethod or flood",
                    parts[0]
                ))
            })?;
            let i = last.unwrap_or(1.0);
            if !(i > 0.0 && i <= 1.0) {
                return Err(err(format!("intensity {i} must be in (0, 1]")));
            }
            (EpisodeKind::Field(field), i)
        };
        Ok(Episode {
            kind,
            offset_ms,
            duration_ms,
            intensity,
        })
    }

    /// The name used in the truth file: the field name, or `flood`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            EpisodeKind::Field(f) => f.name(),
            EpisodeKind::Flood { .. } => "flood",
        }
    }
}

/// How long a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A number of events.
    Count(u64),
    /// A span of simulated time, in milliseconds.
    Duration(i64),
}

/// Everything that determines the generated traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Random seed.
    pub seed: u64,
    /// Simulated start time, epoch milliseconds.
    pub start_ms: i64,
    /// Mean events per simulated second (before the daily cycle and floods).
    pub rate: f64,
    /// When to stop.
    pub limit: Limit,
    /// Amplitude of the daily cycle in [0, 1]: the rate swings between
    /// `rate * (1 - diurnal)` at 02:00 UTC and `rate * (1 + diurnal)` at 14:00 UTC.
    pub diurnal: f64,
    /// Injected anomalies.
    pub episodes: Vec<Episode>,
    /// Field populations.
    pub profile: Profile,
}

/// One ground-truth episode, as written to the `--truth` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthEpisode {
    /// `action`, `httpSourceName`, `httpStatus`, `country`, `httpMethod` or `flood`.
    pub field: String,
    /// Share of events drawn from the anomalous profile (1 for floods).
    pub intensity: f64,
    /// Start, epoch milliseconds (inclusive).
    pub start_ms: i64,
    /// End, epoch milliseconds (exclusive).
    pub end_ms: i64,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// Floods: total rate as a multiple of the normal rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// Floods: the flooding client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// Default events per simulated second.
pub const DEFAULT_RATE: f64 = 50.0;

impl Scenario {
    /// A scenario with the seed's profile, the default rate, one hour and no episodes.
    pub fn new(seed: u64, start_ms: i64) -> Scenario {
        Scenario {
            seed,
            start_ms,
            rate: DEFAULT_RATE,
            limit: Limit::Duration(3_600_000),
            diurnal: 0.0,
            episodes: Vec::new(),
            profile: Profile::default(),
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |field, reason: String| Err(ScenarioError::Invalid { field, reason });
        if !(self.rate > 0.0 && self.rate <= 10_000_000.0) {
            return invalid(
                "rate",
                format!("{} must be in (0, 10000000] events/s", self.rate),
            );
        }
        if !(0.0..=1.0).contains(&self.diurnal) {
            return invalid(
                "diurnal",
                format!("amplitude {} must be in [0, 1]", self.diurnal),
            );
        }
        if !(0..=crate::timestamp::MAX_MS).contains(&self.start_ms) {
            return invalid("start", format!("{} is outside 1970..9999", self.start_ms));
        }
        match self.limit {
            Limit::Duration(d) if d <= 0 => invalid("duration", "must be positive".into()),
            Limit::Count(0) => invalid("count", "must be positive".into()),
            _ => Ok(()),
        }
    }

    /// The ground truth: one entry per episode, in the order given.
    pub fn truth(&self) -> Vec<TruthEpisode> {
        self.episodes
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let start_ms = self.start_ms + e.offset_ms;
                let end_ms = start_ms + e.duration_ms;
                let (multiplier, client_ip) = match e.kind {
                    EpisodeKind::Flood { multiplier } => {
                        (Some(multiplier), Some(generator::flood_ip(self.seed, i)))
                    }
                    EpisodeKind::Field(_) => (None, None),
                };
                TruthEpisode {
                    field: e.name().to_string(),
                    intensity: e.intensity,
                    start_ms,
                    end_ms,
                    start: to_rfc3339(start_ms),
                    end: to_rfc3339(end_ms),
                    multiplier,
                    client_ip,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episode_specs() {
        let e = Episode::parse("country:2h:15m").unwrap();
        assert_eq!(e.kind, EpisodeKind::Field(SimField::Country));
        assert_eq!(
            (e.offset_ms, e.duration_ms, e.intensity),
            (7_200_000, 900_000, 1.0)
        );
        let e = Episode::parse("httpStatus:30m:5m:0.3").unwrap();
        assert_eq!(
            (e.offset_ms, e.duration_ms, e.intensity),
            (1_800_000, 300_000, 0.3)
        );
        let e = Episode::parse("flood:0:90s").unwrap();
        assert_eq!(e.kind, EpisodeKind::Flood { multiplier: 5.0 });
        let e = Episode::parse("flood:1m:1m:20").unwrap();
        assert_eq!(e.kind, EpisodeKind::Flood { multiplier: 20.0 });
        for bad in [
            "country",
            "country:1h",
            "colour:1h:1m",
            "country:1h:0s",
            "country:x:1m",
            "country:1h:1m:1.5",
            "country:1h:1m:0",
            "flood:1h:1m:1",
            "a:b:c:d:e",
        ] {
            let e = Episode::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn truth_has_ms_and_rfc3339() {
        let mut s = Scenario::new(1, 1_700_000_000_000);
        s.episodes.push(Episode::parse("action:1m:2m:0.5").unwrap());
        s.episodes.push(Episode::parse("flood:5m:1m:3").unwrap());
        let t = s.truth();
        assert_eq!(t[0].field, "action");
        assert_eq!(
            (t[0].start_ms, t[0].end_ms),
            (1_700_000_060_000, 1_700_000_180_000)
        );
        assert_eq!(t[0].start, "2023-11-14T22:14:20.000Z");
        assert_eq!(t[1].field, "flood");
        assert_eq!(t[1].multiplier, Some(3.0));
        assert!(t[1].client_ip.is_some());
        let json = serde_json::to_value(&t[0]).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 6);
    }

    #[test]
    fn scenario_validation() {
        let mut s = Scenario::new(1, 0);
        assert!(s.validate().is_ok());
        s.rate = 0.0;
        assert!(s.validate().is_err());
        s.rate = 1.0;
        s.diurnal = 1.5;
        assert!(s.validate().is_err());
        s.diurnal = 0.5;
        s.limit = Limit::Count(0);
        assert!(s.validate().is_err());
    }
}
