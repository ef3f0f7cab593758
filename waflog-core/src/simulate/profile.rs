//! Weighted populations for the simulated fields: normal and anomalous.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// A field the simulator draws from a weighted population (the seed's `anomaly_in`
/// names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimField {
    /// `action`.
    Action,
    /// `httpSourceName` (and `httpSourceId`, its lower case).
    HttpSourceName,
    /// `httpStatus`.
    HttpStatus,
    /// `httpRequest.country`.
    Country,
    /// `httpRequest.httpMethod`.
    HttpMethod,
}

impl SimField {
    /// All fields, in profile order.
    pub const ALL: [SimField; 5] = [
        SimField::Action,
        SimField::HttpSourceName,
        SimField::HttpStatus,
        SimField::Country,
        SimField::HttpMethod,
    ];

    /// The seed's name for the field (`--inject` and the truth file use it).
    pub fn name(self) -> &'static str {
        match self {
            SimField::Action => "action",
            SimField::HttpSourceName => "httpSourceName",
            SimField::HttpStatus => "httpStatus",
            SimField::Country => "country",
            SimField::HttpMethod => "httpMethod",
        }
    }

    /// Reads a seed field name (exact spelling, or any case).
    pub fn parse(s: &str) -> Option<SimField> {
        SimField::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A population with normal and anomalous weights (weights, not probabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldProfile {
    /// The values.
    pub values: Vec<String>,
    /// Weights in normal traffic.
    pub normal: Vec<f64>,
    /// Weights inside an anomaly episode for this field.
    pub anomalous: Vec<f64>,
}

impl FieldProfile {
    fn new(values: &[&str], normal: &[f64], anomalous: &[f64]) -> FieldProfile {
        FieldProfile {
            values: values.iter().map(|s| s.to_string()).collect(),
            normal: normal.to_vec(),
            anomalous: anomalous.to_vec(),
        }
    }

    fn validate(&self, field: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |what: &str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: format!("{field}.{what}"),
            reason,
        };
        if self.values.is_empty() {
            return Err(invalid("values", "must not be empty".into()));
        }
        for (what, w) in [("normal", &self.normal), ("anomalous", &self.anomalous)] {
            if w.len() != self.values.len() {
                return Err(invalid(
                    what,
                    format!("has {} weights for {} values", w.len(), self.values.len()),
                ));
            }
            if let Some(x) = w.iter().find(|x| !x.is_finite() || **x < 0.0) {
                return Err(invalid(
                    what,
                    format!("weight {x} is not a finite number >= 0"),
                ));
            }
            if w.iter().sum::<f64>() <= 0.0 {
                return Err(invalid(what, "weights sum to zero".into()));
            }
        }
        Ok(())
    }
}

/// The populations of all five fields: the traffic profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `action`.
    pub action: FieldProfile,
    /// `httpSourceName`.
    #[serde(rename = "httpSourceName")]
    pub http_source_name: FieldProfile,
    /// `httpStatus`.
    #[serde(rename = "httpStatus")]
    pub http_status: FieldProfile,
    /// `httpRequest.country`.
    pub country: FieldProfile,
    /// `httpRequest.httpMethod`.
    #[serde(rename = "httpMethod")]
    pub http_method: FieldProfile,
}

/// A profile file: any field it lists replaces the seed's population.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    action: Option<FieldProfile>,
    #[serde(rename = "httpSourceName")]
    http_source_name: Option<FieldProfile>,
    #[serde(rename = "httpStatus")]
    http_status: Option<FieldProfile>,
    country: Option<FieldProfile>,
    #[serde(rename = "httpMethod")]
    http_method: Option<FieldProfile>,
}

impl Default for Profile {
    /// Exactly the seed simulator's populations and weights (`normal_params` and
    /// `anomaly_params`), including its spelling of `Challenge` and `Count`.
    fn default() -> Self {
        Profile {
            action: FieldProfile::new(
                &["ALLOW", "CAPTCHA", "Challenge", "Count", "BLOCK"],
                &[0.25, 0.25, 0.25, 0.25, 0.001],
                &[0.1, 0.1, 0.1, 0.1, 2.0],
            ),
            http_source_name: FieldProfile::new(
                &["ALB", "APIGW", "APPSYNC", "CF", "-"],
                &[0.25, 0.25, 0.25, 0.25, 0.001],
                &[0.1, 0.1, 0.1, 0.1, 2.0],
            ),
            http_status: FieldProfile::new(
                &["200", "202", "307", "308", "403", "404", "502", "504"],
                &[0.2, 0.2, 0.2, 0.2, 0.001, 0.001, 0.001, 0.001],
                &[0.05, 0.05, 0.05, 0.05, 2.0, 2.0, 2.0, 2.0],
            ),
            country: FieldProfile::new(
                &["US", "UK", "IN", "XX", "YY", "ZZ", "WW"],
                &[0.33, 0.33, 0.33, 0.001, 0.001, 0.001, 0.001],
                &[0.1, 0.05, 0.05, 2.0, 2.0, 2.0, 2.0],
            ),
            http_method: FieldProfile::new(
                &["GET", "HEAD", "POST", "DELETE"],
                &[0.33, 0.33, 0.33, 0.001],
                &[0.15, 0.15, 0.15, 2.0],
            ),
        }
    }
}

impl Profile {
    /// The population of one field.
    pub fn field(&self, f: SimField) -> &FieldProfile {
        [
            &self.action,
            &self.http_source_name,
            &self.http_status,
            &self.country,
            &self.http_method,
        ][f.index()]
    }

    /// Reads a TOML traffic-profile file; fields it omits keep the seed's population.
    ///
    /// ```toml
    /// [country]
    /// values    = ["US", "GB", "DE", "CN"]
    /// normal    = [0.5, 0.3, 0.2, 0.001]
    /// anomalous = [0.1, 0.1, 0.1, 3.0]
    /// ```
    pub fn from_toml(text: &str, path: &Path) -> Result<Profile, ConfigError> {
        let file: ProfileFile = crate::config::parse_toml(text, path)?;
        let mut p = Profile::default();
        let slots = [
            (file.action, &mut p.action),
            (file.http_source_name, &mut p.http_source_name),
            (file.http_status, &mut p.http_status),
            (file.country, &mut p.country),
            (file.http_method, &mut p.http_method),
        ];
        for (src, dst) in slots {
            if let Some(f) = src {
                *dst = f;
            }
        }
        p.validate(path)?;
        Ok(p)
    }

    /// Reads a traffic-profile file from disk.
    pub fn load(path: &Path) -> Result<Profile, ConfigError> {
        Profile::from_toml(&crate::config::read_toml_file(path)?, path)
    }

    /// Checks every population.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        for f in SimField::ALL {
            self.field(f).validate(f.name(), path)?;
        }
        if let Some(v) = self.http_status.values.iter().find(|v| {
            v.trim()
                .parse::<u16>()
                .map_or(true, |c| !(100..=999).contains(&c))
        }) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "httpStatus.values".into(),
                reason: format!("`{v}` is not an HTTP status code"),
            });
        }
        Ok(())
    }
}

/// Draws indices from fixed weights by a linear scan of the cumulative sums (the
/// populations are a handful of values, where this beats any table).
#[derive(Debug, Clone)]
pub(crate) struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    pub(crate) fn new(weights: &[f64]) -> Weighted {
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Weighted { cumulative }
    }

    /// The index for a uniform draw `u` in [0, 1).
    pub(crate) fn pick(&self, u: f64) -> usize {
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_seed_and_valid() {
        let p = Profile::default();
        p.validate(Path::new("<built-in>")).unwrap();
        assert_eq!(
            p.action.values,
            ["ALLOW", "CAPTCHA", "Challenge", "Count", "BLOCK"]
        );
        assert_eq!(p.country.anomalous, [0.1, 0.05, 0.05, 2.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn profile_file_replaces_listed_fields_only() {
        let p = Profile::from_toml(
            "[country]\nvalues=[\"GB\",\"CN\"]\nnormal=[1.0,0.0]\nanomalous=[0.0,1.0]\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(p.country.values, ["GB", "CN"]);
        assert_eq!(p.action, Profile::default().action);
    }

    #[test]
    fn profile_errors_name_the_field() {
        let e = Profile::from_toml(
            "[country]\nvalues=[\"GB\"]\nnormal=[1.0,2.0]\nanomalous=[1.0]\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("country.normal"), "{e}");
        let e = Profile::from_toml("[contry]\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("contry") && e.contains("line 1"), "{e}");
        let e = Profile::from_toml(
            "[httpStatus]\nvalues=[\"ok\"]\nnormal=[1.0]\nanomalous=[1.0]\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("httpStatus.values"), "{e}");
    }

    #[test]
    fn weighted_pick_edges() {
        let w = Weighted::new(&[1.0, 0.0, 3.0]);
        assert_eq!(w.pick(0.0), 0);
        assert_eq!(w.pick(0.2499), 0);
        assert_eq!(w.pick(0.25), 2);
        assert_eq!(w.pick(0.999_999_999), 2);
    }
}
