//! The known / unknown / bad feature mapping.
//!
//! Each record gets ten 0/1 indicators with exactly the seed's names, in pairs:
//!
//! | field                      | pair                                  | rule (default vocabulary)                      |
//! |----------------------------|---------------------------------------|------------------------------------------------|
//! | `httpRequest.country`      | `K_country` / `UNK_country`           | known: US, UK, IN; anything else is unknown    |
//! | `action`                   | `K_action` / `B_action`               | known: ALLOW, CAPTCHA, CHALLENGE, COUNT; bad: BLOCK (any case) |
//! | `httpStatus` / `responseCodeSent` | `O_httpstatus` / `B_httpstatus` | ok: 1xx-4xx; bad: 5xx                         |
//! | `httpRequest.httpMethod`   | `common_method` / `uncommon_method`   | common: GET, HEAD, POST (case-sensitive, as HTTP methods are) |
//! | `httpSourceName`           | `K_source` / `UNK_source`             | known: ALB, APIGW, APPSYNC, CF                 |
//!
//! Country, method and source are two-valued: not known means unknown (a missing or
//! empty value too). Action and status have an explicit bad list, so a value on neither
//! list sets both flags to 0 rather than guessing. The status comes from the seed's
//! `httpStatus`, else from `responseCodeSent`; when neither exists the status pair is
//! omitted. Real AWS WAF logs carry no origin status, only `responseCodeSent` for custom
//! responses, so on real logs the status pair mostly says "no custom error response".

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::names;
use crate::parse::schema::{Code, WafLog};
use crate::parse::view::{RecordView, StatusValue};

/// Which built-in vocabularies a `[features]` section starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The seed system's vocabularies (countries US, UK, IN; sources ALB, APIGW,
    /// APPSYNC, CF; COUNT as a known action), matching its simulator.
    #[default]
    Seed,
    /// For real AWS WAF logs: ISO 3166-1 codes (GB, not UK), every `httpSourceName`
    /// AWS documents, the terminating actions AWS writes.
    Aws,
}

/// The `[features]` section. A list that is given replaces the preset's list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Base vocabularies.
    #[serde(default)]
    pub preset: Preset,
    /// Countries counted as known (`K_country`); any other is `UNK_country`.
    pub known_countries: Option<Vec<String>>,
    /// Actions counted as known (`K_action`), any case.
    pub known_actions: Option<Vec<String>>,
    /// Actions counted as bad (`B_action`), any case.
    pub bad_actions: Option<Vec<String>>,
    /// Status classes or codes counted as ok (`O_httpstatus`): `"2xx"`, `"404"`.
    pub ok_status: Option<Vec<String>>,
    /// Status classes or codes counted as bad (`B_httpstatus`).
    pub bad_status: Option<Vec<String>>,
    /// Methods counted as common (`common_method`); case-sensitive.
    pub common_methods: Option<Vec<String>>,
    /// `httpSourceName` values counted as known (`K_source`).
    pub known_sources: Option<Vec<String>>,
}

/// Every `[features]` list after applying the preset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFeatures {
    /// See [`FeaturesConfig::known_countries`].
    pub known_countries: Vec<String>,
    /// See [`FeaturesConfig::known_actions`].
    pub known_actions: Vec<String>,
    /// See [`FeaturesConfig::bad_actions`].
    pub bad_actions: Vec<String>,
    /// See [`FeaturesConfig::ok_status`].
    pub ok_status: Vec<String>,
    /// See [`FeaturesConfig::bad_status`].
    pub bad_status: Vec<String>,
    /// See [`FeaturesConfig::common_methods`].
    pub common_methods: Vec<String>,
    /// See [`FeaturesConfig::known_sources`].
    pub known_sources: Vec<String>,
}

/// Every `httpSourceName` value AWS documents for WAF logs.
pub const AWS_SOURCES: [&str; 7] = [
    "CF",
    "ALB",
    "APIGW",
    "APPSYNC",
    "COGNITOIDP",
    "APPRUNNER",
    "VERIFIED_ACCESS",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Preset {
    /// The preset's vocabularies.
    pub fn vocabularies(self) -> ResolvedFeatures {
        match self {
            Preset::Seed => ResolvedFeatures {
                known_countries: strings(&["US", "UK", "IN"]),
                known_actions: strings(&["ALLOW", "CAPTCHA", "CHALLENGE", "COUNT"]),
                bad_actions: strings(&["BLOCK"]),
                ok_status: strings(&["1xx", "2xx", "3xx", "4xx"]),
                bad_status: strings(&["5xx"]),
                common_methods: strings(&["GET", "HEAD", "POST"]),
                known_sources: strings(&["ALB", "APIGW", "APPSYNC", "CF"]),
            },
            Preset::Aws => ResolvedFeatures {
                known_countries: strings(&["US", "GB", "IN"]),
                known_actions: strings(&["ALLOW", "CAPTCHA", "CHALLENGE"]),
                bad_actions: strings(&["BLOCK"]),
                ok_status: strings(&["1xx", "2xx", "3xx", "4xx"]),
                bad_status: strings(&["5xx"]),
                common_methods: strings(&["GET", "HEAD", "POST", "OPTIONS"]),
                known_sources: strings(&AWS_SOURCES),
            },
        }
    }
}

impl FeaturesConfig {
    /// The preset with this section's lists applied over it.
    pub fn resolved(&self) -> ResolvedFeatures {
        let mut r = self.preset.vocabularies();
        let set = |dst: &mut Vec<String>, src: &Option<Vec<String>>| {
            if let Some(v) = src {
                dst.clone_from(v);
            }
        };
        set(&mut r.known_countries, &self.known_countries);
        set(&mut r.known_actions, &self.known_actions);
        set(&mut r.bad_actions, &self.bad_actions);
        set(&mut r.ok_status, &self.ok_status);
        set(&mut r.bad_status, &self.bad_status);
        set(&mut r.common_methods, &self.common_methods);
        set(&mut r.known_sources, &self.known_sources);
        r
    }
}

/// Where a value falls in a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// In the known (good) list.
    Known,
    /// In neither list.
    Unknown,
    /// In the bad list.
    Bad,
}

/// A set of names, compared without regard to ASCII case when `fold_case`.
///
/// Vocabularies are small (a handful of actions or sources, a few dozen countries):
/// up to [`Vocabulary::LINEAR_MAX`] names are compared one by one, which beats
/// hashing each value on the hot path; larger sets use a hash set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vocabulary {
    names: Vec<String>,
    set: HashSet<String>,
    fold_case: bool,
}

impl Vocabulary {
    /// Largest vocabulary searched linearly.
    pub(crate) const LINEAR_MAX: usize = 16;

    /// Builds a vocabulary; with `fold_case`, lookups ignore ASCII case.
    pub fn new<I, S>(names: I, fold_case: bool) -> Vocabulary
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|s| {
                let s = s.as_ref().trim();
                if fold_case {
                    s.to_ascii_uppercase()
                } else {
                    s.to_string()
                }
            })
            .collect();
        names.sort();
        names.dedup();
        let set = if names.len() > Self::LINEAR_MAX {
            names.iter().cloned().collect()
        } else {
            HashSet::new()
        };
        Vocabulary {
            names,
            set,
            fold_case,
        }
    }

    /// True when `value` is in the set.
    pub fn contains(&self, value: &str) -> bool {
        if self.names.len() <= Self::LINEAR_MAX {
            return if self.fold_case {
                self.names.iter().any(|n| n.eq_ignore_ascii_case(value))
            } else {
                self.names.iter().any(|n| n == value)
            };
        }
        if !self.fold_case || !value.bytes().any(|b| b.is_ascii_lowercase()) {
            return self.set.contains(value);
        }
        self.set.contains(&value.to_ascii_uppercase())
    }

    /// Number of names.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.names.len()
    }
}

/// A set of HTTP status codes given as classes (`5xx`) or exact codes (`503`).
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusSet {
    classes: [bool; 10],
    codes: HashSet<u16>,
}

impl StatusSet {
    /// Parses patterns such as `["5xx", "429"]`; `field` names the setting in errors.
    pub fn parse(patterns: &[String], field: &str) -> Result<StatusSet, ConfigError> {
        let mut set = StatusSet::default();
        for p in patterns {
            let t = p.trim().to_ascii_lowercase();
            let b = t.as_bytes();
            let bad = || ConfigError::Invalid {
                path: "<config>".into(),
                field: field.to_string(),
                reason: format!(
                    "`{p}` is not a status class such as `5xx` or a code such as `503`"
                ),
            };
            if b.len() != 3 || !b[0].is_ascii_digit() || b[0] == b'0' {
                return Err(bad());
            }
            if &b[1..] == b"xx" {
                set.classes[usize::from(b[0] - b'0')] = true;
            } else if b[1].is_ascii_digit() && b[2].is_ascii_digit() {
                set.codes.insert(t.parse().map_err(|_| bad())?);
            } else {
                return Err(bad());
            }
        }
        Ok(set)
    }

    /// True when `code` matches a class or an exact code.
    pub fn contains(&self, code: u16) -> bool {
        self.classes[usize::from((code / 100) % 10)] || self.codes.contains(&code)
    }
}

/// The vocabularies that turn raw fields into indicators (the `[features]` section).
#[derive(Debug, Clone)]
pub struct FeatureMap {
    known_countries: Vocabulary,
    known_actions: Vocabulary,
    bad_actions: Vocabulary,
    ok_status: StatusSet,
    bad_status: StatusSet,
    common_methods: Vocabulary,
    known_sources: Vocabulary,
}

impl Default for FeatureMap {
    /// The seed's vocabularies.
    fn default() -> Self {
        FeatureMap::from_config(&FeaturesConfig::default()).unwrap_or_else(|_| unreachable!())
    }
}

impl FeatureMap {
    /// Builds the map from a validated `[features]` section.
    pub fn from_config(c: &FeaturesConfig) -> Result<FeatureMap, ConfigError> {
        let r = c.resolved();
        Ok(FeatureMap {
            known_countries: Vocabulary::new(&r.known_countries, true),
            known_actions: Vocabulary::new(&r.known_actions, true),
            bad_actions: Vocabulary::new(&r.bad_actions, true),
            ok_status: StatusSet::parse(&r.ok_status, "features.ok_status")?,
            bad_status: StatusSet::parse(&r.bad_status, "features.bad_status")?,
            common_methods: Vocabulary::new(&r.common_methods, false),
            known_sources: Vocabulary::new(&r.known_sources, true),
        })
    }

    /// Classifies a country code (missing = unknown).
    pub fn country(&self, v: Option<&str>) -> Class {
        two_valued(&self.known_countries, v)
    }

    /// Classifies an action.
    pub fn action(&self, v: Option<&str>) -> Class {
        match v {
            Some(a) if self.bad_actions.contains(a) => Class::Bad,
            Some(a) if self.known_actions.contains(a) => Class::Known,
            _ => Class::Unknown,
        }
    }

    /// Classifies a status code; `None` = no status in the record.
    pub fn status(&self, v: Option<StatusValue>) -> Option<Class> {
        let code = match v? {
            StatusValue::Code(c) => c,
            StatusValue::Unreadable => return Some(Class::Unknown),
        };
        Some(if self.bad_status.contains(code) {
            Class::Bad
        } else if self.ok_status.contains(code) {
            Class::Known
        } else {
            Class::Unknown
        })
    }

    /// Classifies a method (exact, case-sensitive).
    pub fn method(&self, v: Option<&str>) -> Class {
        two_valued(&self.common_methods, v)
    }

    /// Classifies an `httpSourceName`.
    pub fn source(&self, v: Option<&str>) -> Class {
        two_valued(&self.known_sources, v)
    }

    /// All indicators of a parsed record.
    pub fn indicators(&self, log: &WafLog) -> Indicators {
        let req = log.http_request.get();
        let status = match (log.http_status.get(), log.response_code_sent.get()) {
            (Some(c), _) | (None, Some(c)) => Some(status_of_code(c)),
            (None, None) => None,
        };
        Indicators {
            country: self.country(req.and_then(|r| r.country.get()).map(String::as_str)),
            action: self.action(log.action.get().map(String::as_str)),
            status: self.status(status),
            method: self.method(req.and_then(|r| r.http_method.get()).map(String::as_str)),
            source: self.source(log.http_source_name.get().map(String::as_str)),
        }
    }

    /// All indicators of a borrowed [`RecordView`].
    pub fn indicators_of_view(&self, v: &RecordView<'_>) -> Indicators {
        let req = v.http_request.as_ref();
        Indicators {
            country: self.country(req.and_then(|r| r.country.as_deref())),
            action: self.action(v.action.as_deref()),
            status: self.status(v.status()),
            method: self.method(req.and_then(|r| r.http_method.as_deref())),
            source: self.source(v.http_source_name.as_deref()),
        }
    }
}

fn two_valued(vocab: &Vocabulary, v: Option<&str>) -> Class {
    match v {
        Some(s) if vocab.contains(s) => Class::Known,
        _ => Class::Unknown,
    }
}

fn status_of_code(c: &Code) -> StatusValue {
    c.as_u16()
        .map_or(StatusValue::Unreadable, StatusValue::Code)
}

/// The indicators of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indicators {
    /// Country class (Known / Unknown).
    pub country: Class,
    /// Action class (Known / Bad / Unknown = neither list).
    pub action: Class,
    /// Status class; `None` when the record has no status.
    pub status: Option<Class>,
    /// Method class (Known = common).
    pub method: Class,
    /// Source class.
    pub source: Class,
}

impl Indicators {
    /// The indicator (name, value) pairs in output order; the status pair is left out
    /// when the record has no status.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, u8)> + '_ {
        names::INDICATORS
            .iter()
            .enumerate()
            .filter_map(|(k, name)| self.value(k).map(|v| (*name, v)))
    }

    /// The value of indicator `k` (its index in [`names::INDICATORS`]); `None` for the
    /// status pair of a record without status.
    pub fn value(&self, k: usize) -> Option<u8> {
        let flag = |b: bool| Some(u8::from(b));
        match k {
            0 => flag(self.country == Class::Known),
            1 => flag(self.country != Class::Known),
            2 => flag(self.action == Class::Known),
            3 => flag(self.action == Class::Bad),
            4 => self.status.map(|s| u8::from(s == Class::Known)),
            5 => self.status.map(|s| u8::from(s == Class::Bad)),
            6 => flag(self.method == Class::Known),
            7 => flag(self.method != Class::Known),
            8 => flag(self.source == Class::Known),
            9 => flag(self.source != Class::Known),
            _ => None,
        }
    }

    /// Appends `,"K_country":1,...` (each pair as JSON members, each preceded by a
    /// comma) to `out`.
    pub fn write_json_members(&self, out: &mut Vec<u8>) {
        for (name, v) in self.pairs() {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            out.push(b'0' + v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numeric_status_reads_as_its_text() {
        for n in [
            200.0, 100.0, 999.0, 99.0, 1000.0, 42.0, 0.0, -0.0, -200.0, 200.5, 1e300, 65736.0,
        ] {
            assert_eq!(
                StatusValue::from_number(n),
                StatusValue::from_text(&n.to_string()),
                "{n}"
            );
        }
    }

    fn ind(line: &str) -> Vec<(&'static str, u8)> {
        let map = FeatureMap::default();
        let view: RecordView<'_> = serde_json::from_str(line).unwrap();
        let a = map.indicators_of_view(&view);
        let b = map.indicators(&WafLog::from_json(line).unwrap());
        assert_eq!(a, b, "view and full parse disagree on {line}");
        a.pairs().collect()
    }

    #[test]
    fn seed_vocabulary_country() {
        let r = ind(r#"{"timestamp":1714521600000,"httpRequest":{"country":"UK"}}"#);
        assert_eq!(&r[..2], &[("K_country", 1), ("UNK_country", 0)]);
        for c in ["XX", "GB", "-", ""] {
            let r = ind(&format!(
                r#"{{"timestamp":1714521600000,"httpRequest":{{"country":"{c}"}}}}"#
            ));
            assert_eq!(&r[..2], &[("K_country", 0), ("UNK_country", 1)], "{c}");
        }
        // Missing country and missing httpRequest are unknown.
        assert_eq!(
            &ind(r#"{"timestamp":1714521600000}"#)[..2],
            &[("K_country", 0), ("UNK_country", 1)]
        );
        // Case-insensitive.
        assert_eq!(
            &ind(r#"{"timestamp":1714521600000,"httpRequest":{"country":"us"}}"#)[..2],
            &[("K_country", 1), ("UNK_country", 0)]
        );
    }

    #[test]
    fn seed_vocabulary_action_any_case() {
        for a in ["ALLOW", "CAPTCHA", "Challenge", "Count", "allow"] {
            let r = ind(&format!(r#"{{"timestamp":1714521600000,"action":"{a}"}}"#));
            assert_eq!(&r[2..4], &[("K_action", 1), ("B_action", 0)], "{a}");
        }
        for a in ["BLOCK", "Block"] {
            let r = ind(&format!(r#"{{"timestamp":1714521600000,"action":"{a}"}}"#));
            assert_eq!(&r[2..4], &[("K_action", 0), ("B_action", 1)], "{a}");
        }
        let r = ind(r#"{"timestamp":1714521600000,"action":"EXCLUDED_AS_COUNT"}"#);
        assert_eq!(&r[2..4], &[("K_action", 0), ("B_action", 0)]);
    }

    #[test]
    fn status_classes_and_omission() {
        let pair = |line: &str| {
            ind(line)
                .into_iter()
                .filter(|(n, _)| n.ends_with("httpstatus"))
                .collect::<Vec<_>>()
        };
        for s in ["\"200\"", "\"404\"", "101", "\"308\""] {
            assert_eq!(
                pair(&format!(
                    r#"{{"timestamp":1714521600000,"httpStatus":{s}}}"#
                )),
                [("O_httpstatus", 1), ("B_httpstatus", 0)],
                "{s}"
            );
        }
        for s in ["\"502\"", "504", "\"500\""] {
            assert_eq!(
                pair(&format!(
                    r#"{{"timestamp":1714521600000,"httpStatus":{s}}}"#
                )),
                [("O_httpstatus", 0), ("B_httpstatus", 1)],
                "{s}"
            );
        }
        // responseCodeSent is the fallback.
        assert_eq!(
            pair(r#"{"timestamp":1714521600000,"responseCodeSent":503}"#),
            [("O_httpstatus", 0), ("B_httpstatus", 1)]
        );
        assert_eq!(
            pair(r#"{"timestamp":1714521600000,"httpStatus":null,"responseCodeSent":403}"#),
            [("O_httpstatus", 1), ("B_httpstatus", 0)]
        );
        // Neither: the pair is omitted, not guessed.
        assert!(pair(r#"{"timestamp":1714521600000,"responseCodeSent":null}"#).is_empty());
        assert!(pair(r#"{"timestamp":1714521600000}"#).is_empty());
        // Present but unreadable: both 0.
        assert_eq!(
            pair(r#"{"timestamp":1714521600000,"httpStatus":""}"#),
            [("O_httpstatus", 0), ("B_httpstatus", 0)]
        );
        assert_eq!(
            pair(r#"{"timestamp":1714521600000,"httpStatus":"600"}"#),
            [("O_httpstatus", 0), ("B_httpstatus", 0)]
        );
    }

    #[test]
    fn method_is_case_sensitive_and_source_is_not() {
        let r = ind(
            r#"{"timestamp":1714521600000,"httpSourceName":"alb","httpRequest":{"httpMethod":"DELETE"}}"#,
        );
        assert_eq!(
            &r[4..],
            &[
                ("common_method", 0),
                ("uncommon_method", 1),
                ("K_source", 1),
                ("UNK_source", 0)
            ]
        );
        let r = ind(
            r#"{"timestamp":1714521600000,"httpSourceName":"-","httpRequest":{"httpMethod":"HEAD"}}"#,
        );
        assert_eq!(
            &r[4..],
            &[
                ("common_method", 1),
                ("uncommon_method", 0),
                ("K_source", 0),
                ("UNK_source", 1)
            ]
        );
        let r = ind(r#"{"timestamp":1714521600000,"httpRequest":{"httpMethod":"get"}}"#);
        assert_eq!(&r[4..6], &[("common_method", 0), ("uncommon_method", 1)]);
    }

    #[test]
    fn aws_preset_knows_iso_codes_and_all_sources() {
        let cfg = FeaturesConfig {
            preset: Preset::Aws,
            ..FeaturesConfig::default()
        };
        let map = FeatureMap::from_config(&cfg).unwrap();
        assert_eq!(map.country(Some("GB")), Class::Known);
        assert_eq!(map.country(Some("UK")), Class::Unknown);
        assert_eq!(map.source(Some("COGNITOIDP")), Class::Known);
        assert_eq!(map.action(Some("CHALLENGE")), Class::Known);
        assert_eq!(map.action(Some("COUNT")), Class::Unknown);
    }

    #[test]
    fn large_vocabularies_use_the_hash_set() {
        let names: Vec<String> = (0..40).map(|i| format!("C{i}")).collect();
        let v = Vocabulary::new(&names, true);
        assert!(v.contains("C39") && v.contains("c7"));
        assert!(!v.contains("C40"));
        let v = Vocabulary::new(&names, false);
        assert!(v.contains("C39") && !v.contains("c7"));
        assert_eq!(v.len(), 40);
    }

    #[test]
    fn existing_indicators_are_detected() {
        let v: RecordView<'_> =
            serde_json::from_str(r#"{"timestamp":1714521600000,"B_action":1}"#).unwrap();
        assert!(v.has_indicators());
        let v: RecordView<'_> = serde_json::from_str(r#"{"timestamp":1714521600000}"#).unwrap();
        assert!(!v.has_indicators());
    }

    #[test]
    fn status_patterns_are_validated() {
        assert!(StatusSet::parse(&["5xx".into(), "429".into()], "f").is_ok());
        for bad in ["5x", "abc", "0xx", "5xxx", ""] {
            let e = StatusSet::parse(&[bad.into()], "features.bad_status").unwrap_err();
            assert!(e.to_string().contains("features.bad_status"), "{e}");
        }
    }
}
