//! `waflog.toml`: one configuration file for the whole tool.
//!
//! Every section is optional; built-in defaults apply when the file or a section is
//! absent. Unknown keys are errors that name the key and its line.
//!
//! ```toml
//! [features]
//! preset = "aws"                 # "seed" (default) or "aws": the base vocabularies
//! known_countries = ["US", "GB"] # any list given replaces the preset's
//!
//! [input]
//! max_line_bytes = 1048576       # longer lines are dead-lettered
//! horizon = "3h"                 # records further ahead of event time are dead-lettered
//!
//! [[detectors]]                  # replaces the built-in detectors when given
//! name = "country-anomaly-detector"
//! features = [{ name = "UNK_country", aggregation = "sum", field = "UNK_country" }]
//!
//! [[monitors]]                   # alerting (see crate::alert::config); none by default
//! name = "UNK_source-Monitor"
//! period = "10m"
//! detector = "source-anomaly-detector"
//! [[monitors.triggers]]
//! name = "UNK_source-trigger"
//! severity = 1
//!
//! [[channels]]                   # default when absent: one `stdout` channel
//! name = "ops"
//! type = "webhook"
//! url = "https://hooks.example.com/waflog"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::alert::{Channel, Detectors, Monitor};
use crate::detect::DetectorSpec;
use crate::detect::rules::{Rule, Window};
use crate::error::ConfigError;
pub use crate::features::{AWS_SOURCES, FeaturesConfig, Preset, ResolvedFeatures};
use crate::features::{FeatureMap, StatusSet};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Vocabularies of the indicator mapping.
    #[serde(default)]
    pub features: FeaturesConfig,
    /// Input limits.
    #[serde(default)]
    pub input: InputConfig,
    /// `[[detectors]]`; when absent, the built-in detectors
    /// ([`DetectorSpec::defaults`]). A list given replaces them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectors: Option<Vec<DetectorSpec>>,
    /// `[[monitors]]`: alerting rules over the detectors' results (none by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<Monitor>,
    /// `[[channels]]`; when absent, [`Channel::defaults`] (one `stdout` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
    /// `[[rules]]`: deviations that do not count, per detector and feature (see
    /// [`crate::detect::rules`]); added to the detectors they name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// `[[suppress]]`: suppression windows (see [`crate::detect::rules`]); added to
    /// the detectors they name (every detector when they name none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppress: Vec<Window>,
}

/// The `[input]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Lines longer than this many bytes are dead-lettered (default 1 MiB).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// How far ahead of the stream's event time a record may be before it is
    /// dead-lettered instead of moving the clock (default `3h`; see
    /// [`crate::detect::TimeRules`]).
    #[serde(default = "default_horizon")]
    pub horizon: String,
}

/// Default time horizon: three hours.
pub const DEFAULT_HORIZON: &str = "3h";

fn default_horizon() -> String {
    DEFAULT_HORIZON.to_string()
}

impl InputConfig {
    /// The horizon in milliseconds (validated by [`Config::validate`]).
    pub fn horizon_ms(&self) -> Result<i64, String> {
        let ms = crate::timestamp::parse_duration_ms(&self.horizon)?;
        if ms < 60_000 {
            return Err(format!("`{}` is shorter than one minute", self.horizon));
        }
        Ok(ms)
    }
}

/// Default line limit: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
const MAX_MAX_LINE_BYTES: usize = 1 << 30;

fn default_max_line() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            horizon: default_horizon(),
        }
    }
}

/// The largest configuration or traffic-profile file read: 16 MiB.
pub const MAX_TOML_FILE_BYTES: u64 = 16 << 20;

/// Reads a TOML file of this tool (configuration or traffic profile), at most
/// [`MAX_TOML_FILE_BYTES`].
pub(crate) fn read_toml_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(MAX_TOML_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_TOML_FILE_BYTES {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than the 16 MiB cap",
        )));
    }
    String::from_utf8(bytes)
        .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Deserializes TOML text; the error names `path`, the line, column and key.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_toml(&read_toml_file(path)?, path)
    }

    /// Parses and validates configuration text; `path` is used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values the types cannot: ranges, patterns, contradictions.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        let m = self.input.max_line_bytes;
        if !(64..=MAX_MAX_LINE_BYTES).contains(&m) {
            return Err(invalid(
                "input.max_line_bytes",
                format!("{m} is outside 64..={MAX_MAX_LINE_BYTES}"),
            ));
        }
        self.input
            .horizon_ms()
            .map_err(|e| invalid("input.horizon", e))?;
        let r = self.features.resolved();
        let lists = [
            ("features.known_countries", &r.known_countries),
            ("features.known_actions", &r.known_actions),
            ("features.bad_actions", &r.bad_actions),
            ("features.common_methods", &r.common_methods),
            ("features.known_sources", &r.known_sources),
        ];
        for (field, list) in lists {
            if let Some(bad) = list.iter().find(|s| s.trim().is_empty()) {
                return Err(invalid(field, format!("empty name {bad:?}")));
            }
        }
        if let Some(both) = r
            .known_actions
            .iter()
            .find(|k| r.bad_actions.iter().any(|b| b.eq_ignore_ascii_case(k)))
        {
            return Err(invalid(
                "features.bad_actions",
                format!("`{both}` is also in features.known_actions"),
            ));
        }
        let with_path = |e: ConfigError| match e {
            ConfigError::Invalid { field, reason, .. } => ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                reason,
            },
            other => other,
        };
        StatusSet::parse(&r.ok_status, "features.ok_status").map_err(with_path)?;
        StatusSet::parse(&r.bad_status, "features.bad_status").map_err(with_path)?;
        if let Some(d) = &self.detectors {
            crate::detect::spec::validate_all(d, path)?;
        }
        self.validate_scoped(path)?;
        crate::alert::config::validate(
            &self.monitors,
            &self.channel_specs(),
            Detectors::OrSeries(&self.detector_specs()),
            path,
        )?;
        Ok(())
    }

    /// For a run on WAF records (no metric series): every monitor's detector must
    /// be one of [`Config::detector_specs`]. ([`Config::validate`] lets other names
    /// through, as the metric series' names are known only from the input.)
    pub fn check_waf_monitors(&self, path: &Path) -> Result<(), ConfigError> {
        crate::alert::config::validate(
            &self.monitors,
            &self.channel_specs(),
            Detectors::Exactly(&self.detector_specs()),
            path,
        )
    }

    /// The notification channels: `[[channels]]`, or [`Channel::defaults`].
    pub fn channel_specs(&self) -> Vec<Channel> {
        self.channels.clone().unwrap_or_else(Channel::defaults)
    }

    /// `[[detectors]]`, or the built-in ones, as configured (without the
    /// top-level rules and windows).
    fn base_specs(&self) -> Vec<DetectorSpec> {
        self.detectors
            .clone()
            .unwrap_or_else(DetectorSpec::defaults)
    }

    /// The detectors to run: `[[detectors]]`, or the built-in ones, each with the
    /// top-level `[[rules]]` and `[[suppress]]` windows that name it.
    pub fn detector_specs(&self) -> Vec<DetectorSpec> {
        let mut specs = self.base_specs();
        for s in &mut specs {
            let name = s.name.clone();
            s.rules.extend(
                self.rules
                    .iter()
                    .filter(|r| r.detector.as_ref().is_none_or(|d| *d == name))
                    .filter(|r| {
                        r.feature
                            .as_ref()
                            .is_none_or(|f| s.features.iter().any(|g| g.name == *f))
                    })
                    .map(|r| Rule {
                        detector: None,
                        ..r.clone()
                    }),
            );
            s.suppress.extend(
                self.suppress
                    .iter()
                    .filter(|w| w.covers(&name))
                    .map(|w| Window {
                        detectors: Vec::new(),
                        ..w.clone()
                    }),
            );
        }
        specs
    }

    /// Checks the top-level `[[rules]]` and `[[suppress]]`: the detectors and
    /// features they name exist.
    fn validate_scoped(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let specs = self.base_specs();
        let find = |name: &str| specs.iter().find(|s| s.name == name);
        for (i, r) in self.rules.iter().enumerate() {
            let on: Vec<&DetectorSpec> = match &r.detector {
                Some(d) => vec![find(d).ok_or_else(|| {
                    invalid(format!("rules[{i}].detector"), format!("no detector `{d}`"))
                })?],
                None => specs.iter().collect(),
            };
            if let Some(f) = &r.feature
                && !on.iter().any(|s| s.features.iter().any(|g| &g.name == f))
            {
                return Err(invalid(
                    format!("rules[{i}].feature"),
                    format!("no detector here has a feature `{f}`"),
                ));
            }
            r.check()
                .map_err(|(field, reason)| invalid(format!("rules[{i}].{field}"), reason))?;
        }
        for (i, w) in self.suppress.iter().enumerate() {
            if let Some(d) = w.detectors.iter().find(|d| find(d).is_none()) {
                return Err(invalid(
                    format!("suppress[{i}].detectors"),
                    format!("no detector `{d}`"),
                ));
            }
        }
        Ok(())
    }

    /// The feature map this configuration describes.
    pub fn feature_map(&self) -> Result<FeatureMap, ConfigError> {
        FeatureMap::from_config(&self.features)
    }

    /// The path used in messages about the built-in defaults.
    pub fn builtin_path() -> PathBuf {
        PathBuf::from("<built-in>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("waflog.toml"))
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn lists_replace_the_preset() {
        let c = parse("[features]\npreset = \"aws\"\nknown_countries = [\"FR\"]\n").unwrap();
        let r = c.features.resolved();
        assert_eq!(r.known_countries, ["FR"]);
        assert!(r.known_sources.contains(&"COGNITOIDP".to_string()));
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let e = parse("[features]\nknown_countries = [\"US\"]\nknown_contries = [\"FR\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("known_contries"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let e = parse("\n[featurez]\n").unwrap_err().to_string();
        assert!(e.contains("featurez") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn detectors_section() {
        let c = parse(
            "[[detectors]]\nname = \"blocks\"\ninterval = \"30s\"\nfeatures = [{ name = \"b\", aggregation = \"sum\", field = \"B_action\" }]\n[detectors.algorithm]\ntype = \"ewma\"\nthreshold = 4.0\n",
        )
        .unwrap();
        let d = c.detector_specs();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].interval_ms, 30_000);
        assert_eq!(Config::default().detector_specs().len(), 6);
        let e = parse("[[detectors]]\nname = \"b\"\nfeatures = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("detectors[0].features"), "{e}");
        let e = parse("[[detectors]]\nname = \"b\"\nfeatures = [{ name = \"b\", aggregation = \"median\", field = \"x\" }]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("median") && e.contains("line 3"), "{e}");
        let e = parse("[[detectors]]\nname = \"b\"\nfeatures = [{ name = \"b\", aggregation = \"count\" }]\nshingle = 4\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("shingle") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn a_detector_missing_rule_is_read_and_checked() {
        use crate::detect::Missing;
        let det = |rule: &str| {
            format!(
                "[[detectors]]\nname = \"b\"\nfeatures = [{{ name = \"n\", aggregation = \"count\" }}]\n{rule}\n"
            )
        };
        for (rule, want) in [
            ("", Missing::Zero),
            ("missing = \"zero\"", Missing::Zero),
            ("missing = \"previous\"", Missing::Previous),
            ("missing = \"ignore\"", Missing::Ignore),
            ("missing = { fixed = 2.5 }", Missing::Fixed(2.5)),
        ] {
            let c = parse(&det(rule)).unwrap();
            assert_eq!(c.detector_specs()[0].missing, want, "{rule}");
            // Written back and read again, the same (the default is not written).
            let text = toml::to_string(&c).unwrap();
            assert_eq!(text.contains("missing"), want != Missing::Zero, "{text}");
            assert_eq!(parse(&text).unwrap(), c);
        }
        for rule in [
            "missing = \"sometimes\"",
            "missing = { fixed = \"x\" }",
            "missing = 3",
        ] {
            let e = parse(&det(rule)).unwrap_err().to_string();
            assert!(e.contains("missing") || e.contains("line 4"), "{rule}: {e}");
        }
        let e = parse(&det("missing = { fixed = nan }"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("detectors[0].missing.fixed"), "{e}");
    }

    #[test]
    fn detector_durations_are_parsed_once_at_load() {
        let c = parse("[[detectors]]\nname = \"b\"\ninterval = \"5m\"\nwindow_delay = \"1m 30s\"\nfeatures = [{ name = \"n\", aggregation = \"count\" }]\n").unwrap();
        let d = &c.detector_specs()[0];
        assert_eq!((d.interval_ms, d.window_delay_ms), (300_000, 90_000));
        // Written back, the durations are text again and read the same.
        let text = toml::to_string(&c).unwrap();
        assert!(
            text.contains("interval = \"5m\"") && text.contains("window_delay = \"1m 30s\""),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), c);
        // A bad duration is a configuration error naming the file, line, detector
        // and field, never a default.
        for (line, field) in [
            ("interval = \"soon\"", "interval"),
            ("interval = \"500ms\"", "interval"),
            ("interval = \"2days\"", "interval"),
            ("window_delay = \"-1s\"", "window_delay"),
            ("window_delay = \"25h\"", "window_delay"),
        ] {
            let e = parse(&format!("[[detectors]]\nname = \"b\"\n{line}\nfeatures = [{{ name = \"n\", aggregation = \"count\" }}]\n")).unwrap_err();
            assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
            let e = e.to_string();
            assert!(e.contains("waflog.toml") && e.contains("line 1"), "{e}");
            assert!(e.contains(&format!("detector `b`: {field}: ")), "{e}");
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = parse("[features]\nbad_status = [\"5x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("features.bad_status") && e.contains("5x"), "{e}");
        let e = parse("[features]\nbad_actions = [\"allow\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("features.bad_actions"), "{e}");
        let e = parse("[input]\nhorizon = \"10s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("input.horizon"), "{e}");
        let e = parse("[input]\nmax_line_bytes = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("input.max_line_bytes"), "{e}");
        let e = parse("[features]\npreset = \"azure\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("azure") && e.contains("line 2"), "{e}");
    }
}
