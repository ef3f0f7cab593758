//! The AWS WAF v2 log record.
//!
//! [`WafLog`] models every field AWS documents for web ACL traffic logs, plus the seed
//! simulator's `httpStatus` extension. The field list follows the AWS WAF Developer
//! Guide, "Log fields for protection pack (web ACL) traffic"
//! (<https://docs.aws.amazon.com/waf/latest/developerguide/logging-fields.html>); that
//! list is flat, so the nesting below comes from the "Log examples" page
//! (<https://docs.aws.amazon.com/waf/latest/developerguide/logging-examples.html>:
//! `rateBasedRuleList[]` with `limitKey`, `maxRateAllowed`, `evaluationWindowSec`,
//! `customValues[]`; `requestHeadersInserted`, `responseCodeSent` at the top level)
//! and, for the fields its examples lack, from the records in
//! `fixtures/aws-examples.ndjson` (`fragment`, `scheme`, `host` in `httpRequest`; the
//! fingerprints and body sizes at the top level):
//!
//! | where | fields |
//! |---|---|
//! | top level | `timestamp`, `formatVersion`, `webaclId`, `terminatingRuleId`, `terminatingRuleType`, `action`, `terminatingRuleMatchDetails`, `httpSourceName`, `httpSourceId`, `ruleGroupList`, `rateBasedRuleList`, `nonTerminatingMatchingRules`, `requestHeadersInserted`, `responseCodeSent`, `httpRequest`, `labels`, `captchaResponse`, `challengeResponse`, `ja3Fingerprint`, `ja4Fingerprint`, `oversizeFields`, `requestBodySize`, `requestBodySizeInspectedByWAF`, `clientAsn`, `cfDistributionTenantId` |
//! | `httpRequest` | `clientIp`, `country`, `headers[]` (`name`, `value`), `uri`, `args`, `httpVersion`, `httpMethod`, `requestId`, `fragment`, `scheme`, `host` |
//! | `rateBasedRuleList[]` | `rateBasedRuleId`, `rateBasedRuleName`, `limitKey`, `maxRateAllowed`, `evaluationWindowSec`, `customValues[]` (`key`, `name`, `value`), `limitValue` |
//! | `captchaResponse`, `challengeResponse` | `responseCode`, `solveTimestamp`, `failureReason` |
//! | `labels[]` | `name` |
//!
//! The field list does not say where `clientAsn` and `cfDistributionTenantId` sit
//! and the examples page has no record with them: they are read at the top level,
//! next to `ja3Fingerprint`; anywhere else they are kept as unknown fields (below)
//! and are still usable by detectors through their path.
//!
//! It is made for real records:
//!
//! - a field AWS writes as `null` stays `null`, an absent field stays absent
//!   ([`Nullable`] tells the three cases apart), so a record round-trips: parse ->
//!   serialize -> parse gives the same JSON value;
//! - unknown and future fields are kept in each object's `extra` map;
//! - it is parsed in one pass by hand-written visitors (no intermediate
//!   [`serde_json::Value`], no `#[serde(flatten)]` buffering on input); only unknown
//!   fields become values. A repeated key is an error, like a field of the wrong type;
//! - `action` keeps its original spelling (`"Challenge"`, `"BLOCK"`); [`Action::parse`]
//!   reads it in any letter case;
//! - `timestamp` is normalised to integer epoch milliseconds (see [`crate::timestamp`]).
//!
//! ```
//! use waflog_core::parse::schema::{Action, WafLog};
//! let line = r#"{"timestamp":1576280412771,"formatVersion":1,"action":"Block",
//!   "httpSourceName":"-","responseCodeSent":null,
//!   "httpRequest":{"clientIp":"1.1.1.1","country":"GB","headers":[{"name":"Host"}],
//!   "httpMethod":"GET","futureField":{"x":1}}}"#;
//! let log = WafLog::from_json(line).unwrap();
//! assert_eq!(log.action_kind(), Some(Action::Block));
//! assert_eq!(log.timestamp.millis(), 1576280412771);
//! let back: serde_json::Value = serde_json::to_value(&log).unwrap();
//! assert_eq!(back, serde_json::from_str::<serde_json::Value>(line).unwrap());
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::SchemaError;

/// A field that may be absent, explicitly `null`, or present.
///
/// AWS writes some empty fields as `null` (`responseCodeSent`,
/// `requestHeadersInserted`) and omits others (`labels`, `captchaResponse`); keeping
/// the difference is what lets a record round-trip unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Nullable<T> {
    /// The key is not in the object.
    #[default]
    Absent,
    /// The key is present with the value `null`.
    Null,
    /// The key is present with a value.
    Present(T),
}

impl<T> Nullable<T> {
    /// The value, if present.
    pub fn get(&self) -> Option<&T> {
        match self {
            Nullable::Present(v) => Some(v),
            _ => None,
        }
    }

    /// True when the key is not in the object (used to skip it on output).
    pub fn is_absent(&self) -> bool {
        matches!(self, Nullable::Absent)
    }
}

impl<T> From<Option<T>> for Nullable<T> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Nullable::Null, Nullable::Present)
    }
}

impl<T: Serialize> Serialize for Nullable<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Nullable::Present(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(Nullable::from)
    }
}

/// A request time in epoch milliseconds.
///
/// Deserializes from integer milliseconds (AWS), float or integer seconds (the seed's
/// simulator), micro/nanoseconds, numeric strings and RFC 3339 strings; always
/// serializes as integer milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Epoch milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TimestampVisitor)
    }
}

/// Reads a timestamp straight from the parser; its errors are [`SchemaError`]s
/// (`missing timestamp`, `unparsable timestamp ...`), which [`WafLog::from_json`]
/// recognises by their text.
struct TimestampVisitor;

impl TimestampVisitor {
    fn wrong<E: de::Error>(found: &str) -> E {
        E::custom(SchemaError::InvalidTimestamp {
            value: found.to_string(),
            reason: "must be a number or a string",
        })
    }
}

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        crate::timestamp::from_i64(v)
            .map(Timestamp)
            .map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => crate::timestamp::from_f64(v as f64)
                .map(Timestamp)
                .map_err(E::custom),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        crate::timestamp::from_f64(v)
            .map(Timestamp)
            .map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        crate::timestamp::from_str(v)
            .map(Timestamp)
            .map_err(E::custom)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Timestamp, E> {
        Err(E::custom(SchemaError::MissingTimestamp))
    }
    fn visit_none<E: de::Error>(self) -> Result<Timestamp, E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Timestamp, E> {
        Err(Self::wrong(if v { "true" } else { "false" }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
        Err(Self::wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
        Err(Self::wrong("an object"))
    }
}

/// A status code as the log wrote it: the seed writes `"200"`, AWS writes `403`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Code {
    /// A JSON number.
    Number(i64),
    /// A JSON string.
    Text(String),
}

impl<'de> Deserialize<'de> for Code {
    /// An integer or a string; anything else (`502.0`, `true`) is an error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                Ok(Code::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                i64::try_from(v)
                    .map(Code::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                Ok(Code::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Code {
    /// The numeric value when it is a plausible HTTP status (100..=999).
    pub fn as_u16(&self) -> Option<u16> {
        let n = match self {
            Code::Number(n) => *n,
            Code::Text(s) => s.trim().parse().ok()?,
        };
        u16::try_from(n).ok().filter(|n| (100..=999).contains(n))
    }
}

/// The terminating action, read in any letter case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `ALLOW`.
    Allow,
    /// `BLOCK`.
    Block,
    /// `COUNT` (non-terminating in AWS; the seed's simulator used it as an outcome).
    Count,
    /// `CAPTCHA`.
    Captcha,
    /// `CHALLENGE`.
    Challenge,
}

impl Action {
    /// Reads an action name in any letter case; `None` for anything else.
    pub fn parse(s: &str) -> Option<Action> {
        const ALL: [(&str, Action); 5] = [
            ("ALLOW", Action::Allow),
            ("BLOCK", Action::Block),
            ("COUNT", Action::Count),
            ("CAPTCHA", Action::Captcha),
            ("CHALLENGE", Action::Challenge),
        ];
        ALL.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
            .map(|(_, a)| *a)
    }

    /// The canonical upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Block => "BLOCK",
            Action::Count => "COUNT",
            Action::Captcha => "CAPTCHA",
            Action::Challenge => "CHALLENGE",
        }
    }
}

macro_rules! record {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $json:literal => $field:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(rename = $json, skip_serializing_if = "Nullable::is_absent")]
                pub $field: Nullable<$ty>,
            )*
            /// Fields this version of waflog does not know, kept as they were.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }

        impl $name {
            /// Reads the value of `key` into its field (or `extra`); a key seen twice
            /// is an error.
            fn absorb<'de, A: MapAccess<'de>>(
                &mut self,
                key: Cow<'de, str>,
                map: &mut A,
            ) -> Result<(), A::Error> {
                match &*key {
                    $(
                        $json => {
                            if !self.$field.is_absent() {
                                return Err(de::Error::duplicate_field($json));
                            }
                            self.$field = map.next_value()?;
                        }
                    )*
                    _ => absorb_extra(&mut self.extra, key, map)?,
                }
                Ok(())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " object"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key_seed(KeySeed)? {
                            out.absorb(key, &mut map)?;
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

/// An unknown field: parsed into a [`Value`] (only unknown fields pay for it) and
/// kept; a repeated unknown key is an error like a repeated known one, since which
/// of two values counts is undefined in JSON.
fn absorb_extra<'de, A: MapAccess<'de>>(
    extra: &mut Map<String, Value>,
    key: Cow<'de, str>,
    map: &mut A,
) -> Result<(), A::Error> {
    let value: Value = map.next_value()?;
    if extra.contains_key(&*key) {
        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
    }
    extra.insert(key.into_owned(), value);
    Ok(())
}

/// A map key, borrowed from the input when it has no escapes (also the key reader
/// of the detectors' field extraction).
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

record!(
    /// One request header (`value` may be missing in real logs).
    Header {
        /// Header name as sent.
        "name" => name: String,
        /// Header value.
        "value" => value: String,
    }
);

record!(
    /// Details of a match: what kind of rule matched where.
    RuleMatchDetail {
        /// `SQL_INJECTION`, `XSS`, `REGEX` ...
        "conditionType" => condition_type: String,
        /// `LOW` or `HIGH` for SQL injection rules.
        "sensitivityLevel" => sensitivity_level: String,
        /// `HEADER`, `QUERY_STRING`, `BODY`, `ALL_QUERY_ARGS` ...
        "location" => location: String,
        /// The matched tokens.
        "matchedData" => matched_data: Vec<String>,
        /// Name of the matched field (header name, argument name ...).
        "matchedFieldName" => matched_field_name: String,
    }
);

record!(
    /// A rule reference with its action, as in `nonTerminatingMatchingRules` and a
    /// rule group's `terminatingRule`.
    RuleMatch {
        /// The rule's ID or name.
        "ruleId" => rule_id: String,
        /// The rule's action (`COUNT`, `BLOCK`, `CAPTCHA` ...).
        "action" => action: String,
        /// The action the rule would have taken before an override.
        "overriddenAction" => overridden_action: String,
        /// Match details.
        "ruleMatchDetails" => rule_match_details: Vec<RuleMatchDetail>,
        /// CAPTCHA status when the rule applied CAPTCHA.
        "captchaResponse" => captcha_response: ActionResponse,
        /// Challenge status when the rule applied a challenge.
        "challengeResponse" => challenge_response: ActionResponse,
    }
);

record!(
    /// A rule excluded from a rule group (its action set to Count).
    ExcludedRule {
        /// `EXCLUDED_AS_COUNT`.
        "exclusionType" => exclusion_type: String,
        /// The excluded rule.
        "ruleId" => rule_id: String,
    }
);

record!(
    /// A rule group the request was evaluated against.
    RuleGroup {
        /// Rule group ID (`AWS#AWSManagedRulesCommonRuleSet` for managed groups).
        "ruleGroupId" => rule_group_id: String,
        /// The rule that terminated evaluation, if any.
        "terminatingRule" => terminating_rule: RuleMatch,
        /// Rules that matched without terminating.
        "nonTerminatingMatchingRules" => non_terminating_matching_rules: Vec<RuleMatch>,
        /// Rules excluded from the group.
        "excludedRules" => excluded_rules: Vec<ExcludedRule>,
        /// Customer configuration of the group (managed rule groups).
        "customerConfig" => customer_config: Value,
    }
);

record!(
    /// A custom aggregation key of a rate-based rule.
    CustomValue {
        /// Key type (`HEADER`, `QUERY_ARG`, `COOKIE`, `IP` ...).
        "key" => key: String,
        /// Key name.
        "name" => name: String,
        /// Key value.
        "value" => value: String,
    }
);

record!(
    /// A rate-based rule that matched.
    RateBasedRule {
        /// Rule ID.
        "rateBasedRuleId" => rate_based_rule_id: String,
        /// Rule name.
        "rateBasedRuleName" => rate_based_rule_name: String,
        /// Aggregation key (`IP`, `FORWARDED_IP`, `CUSTOMKEYS`, `CONSTANT`).
        "limitKey" => limit_key: String,
        /// Requests allowed per window.
        "maxRateAllowed" => max_rate_allowed: Code,
        /// Window length in seconds.
        "evaluationWindowSec" => evaluation_window_sec: Code,
        /// Values of the custom keys.
        "customValues" => custom_values: Vec<CustomValue>,
        /// Value of the limit key (the forwarded IP, for instance).
        "limitValue" => limit_value: String,
    }
);

record!(
    /// Outcome of a CAPTCHA or challenge.
    ActionResponse {
        /// Response code sent (e.g. 405 for CAPTCHA, 202 for challenge).
        "responseCode" => response_code: i64,
        /// Epoch seconds of the last solve.
        "solveTimestamp" => solve_timestamp: i64,
        /// Why the token was rejected (`TOKEN_MISSING`, `TOKEN_EXPIRED` ...).
        "failureReason" => failure_reason: String,
    }
);

record!(
    /// A label added by a matching rule.
    Label {
        /// Full label name (`awswaf:managed:aws:core-rule-set:...`).
        "name" => name: String,
    }
);

record!(
    /// The request as WAF saw it.
    HttpRequest {
        /// Client IP (the connecting peer).
        "clientIp" => client_ip: String,
        /// ISO 3166-1 alpha-2 country code, `-` when unknown.
        "country" => country: String,
        /// Request headers.
        "headers" => headers: Vec<Header>,
        /// Path.
        "uri" => uri: String,
        /// Query string.
        "args" => args: String,
        /// `HTTP/1.1`, `HTTP/2.0` ...
        "httpVersion" => http_version: String,
        /// Method as sent.
        "httpMethod" => http_method: String,
        /// The source's request ID (CloudFront ID, ALB trace ID ...).
        "requestId" => request_id: String,
        /// URL fragment.
        "fragment" => fragment: String,
        /// `http` or `https`.
        "scheme" => scheme: String,
        /// Host the request was sent to.
        "host" => host: String,
    }
);

record!(
    /// One AWS WAF v2 log record.
    WafLogFields {
        /// Format version (1).
        "formatVersion" => format_version: i64,
        /// ARN of the web ACL.
        "webaclId" => webacl_id: String,
        /// Rule that terminated evaluation (`Default_Action` when none did).
        "terminatingRuleId" => terminating_rule_id: String,
        /// `REGULAR`, `RATE_BASED`, `MANAGED_RULE_GROUP`, `GROUP`.
        "terminatingRuleType" => terminating_rule_type: String,
        /// Terminating action as written (see [`Action::parse`]).
        "action" => action: String,
        /// Match details of the terminating rule.
        "terminatingRuleMatchDetails" => terminating_rule_match_details: Vec<RuleMatchDetail>,
        /// Source service (`CF`, `ALB`, `APIGW`, `APPSYNC`, ... or `-`).
        "httpSourceName" => http_source_name: String,
        /// Source resource ID.
        "httpSourceId" => http_source_id: String,
        /// Rule groups evaluated.
        "ruleGroupList" => rule_group_list: Vec<RuleGroup>,
        /// Rate-based rules that matched.
        "rateBasedRuleList" => rate_based_rule_list: Vec<RateBasedRule>,
        /// Rules that matched without terminating.
        "nonTerminatingMatchingRules" => non_terminating_matching_rules: Vec<RuleMatch>,
        /// Headers inserted by a custom request handling (`null` otherwise).
        "requestHeadersInserted" => request_headers_inserted: Vec<Header>,
        /// Status of a custom response sent by WAF (`null` otherwise). Real WAF logs
        /// carry no origin status; only this.
        "responseCodeSent" => response_code_sent: Code,
        /// The request.
        "httpRequest" => http_request: HttpRequest,
        /// Labels added by matching rules.
        "labels" => labels: Vec<Label>,
        /// CAPTCHA status.
        "captchaResponse" => captcha_response: ActionResponse,
        /// Challenge status.
        "challengeResponse" => challenge_response: ActionResponse,
        /// JA3 TLS fingerprint (CloudFront and ALB).
        "ja3Fingerprint" => ja3_fingerprint: String,
        /// JA4 TLS fingerprint.
        "ja4Fingerprint" => ja4_fingerprint: String,
        /// Request parts too large for WAF to inspect fully (`REQUEST_BODY` ...).
        "oversizeFields" => oversize_fields: Vec<String>,
        /// Size of the request body in bytes.
        "requestBodySize" => request_body_size: i64,
        /// Bytes of the body WAF inspected.
        "requestBodySizeInspectedByWAF" => request_body_size_inspected_by_waf: i64,
        /// Autonomous system number of the client (logged with ASN match statements).
        "clientAsn" => client_asn: Code,
        /// CloudFront distribution tenant ID.
        "cfDistributionTenantId" => cf_distribution_tenant_id: String,
        /// The seed simulator's origin status (`"200"`); not written by AWS.
        "httpStatus" => http_status: Code,
    }
);

/// One AWS WAF v2 log record: the required `timestamp` plus every other field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WafLog {
    /// Request time, normalised to epoch milliseconds.
    pub timestamp: Timestamp,
    /// Every other field.
    #[serde(flatten)]
    pub fields: WafLogFields,
}

impl<'de> Deserialize<'de> for WafLog {
    /// One pass over the object: no intermediate [`Value`] and no buffering of the
    /// record (as `#[serde(flatten)]` would do); only unknown fields become values.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WafLog;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a WAF log object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WafLog, A::Error> {
                let mut timestamp = None;
                let mut fields = WafLogFields::default();
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    if key == crate::names::TIMESTAMP {
                        if timestamp.is_some() {
                            return Err(de::Error::duplicate_field(crate::names::TIMESTAMP));
                        }
                        timestamp = Some(map.next_value::<Timestamp>()?);
                    } else {
                        fields.absorb(key, &mut map)?;
                    }
                }
                match timestamp {
                    Some(timestamp) => Ok(WafLog { timestamp, fields }),
                    None => Err(de::Error::custom(SchemaError::MissingTimestamp)),
                }
            }
        }
        d.deserialize_map(V)
    }
}

impl std::ops::Deref for WafLog {
    type Target = WafLogFields;
    fn deref(&self) -> &WafLogFields {
        &self.fields
    }
}

impl std::ops::DerefMut for WafLog {
    fn deref_mut(&mut self) -> &mut WafLogFields {
        &mut self.fields
    }
}

impl WafLog {
    /// Parses one JSON record, with the same error classes as the transform:
    /// [`SchemaError::InvalidJson`], [`SchemaError::NotAnObject`],
    /// [`SchemaError::MissingTimestamp`], [`SchemaError::InvalidTimestamp`],
    /// [`SchemaError::InvalidField`] (a wrong type, a repeated key).
    pub fn from_json(line: &str) -> Result<WafLog, SchemaError> {
        let text = line.trim_start_matches([' ', '\t', '\r', '\n']);
        if !text.starts_with('{') {
            // Not an object (or not JSON): the slow path names what it is.
            let value: Value =
                serde_json::from_str(line).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
            return Err(SchemaError::NotAnObject(json_kind(&value)));
        }
        serde_json::from_str(line).map_err(classify)
    }

    /// Builds a record from a parsed JSON value.
    pub fn from_value(value: Value) -> Result<WafLog, SchemaError> {
        if !value.is_object() {
            return Err(SchemaError::NotAnObject(json_kind(&value)));
        }
        WafLog::deserialize(value).map_err(classify)
    }

    /// The terminating action, read in any case.
    pub fn action_kind(&self) -> Option<Action> {
        self.action.get().and_then(|a| Action::parse(a))
    }

    /// The status to classify: `httpStatus` when present, else `responseCodeSent`.
    pub fn status(&self) -> Option<u16> {
        self.http_status
            .get()
            .or(self.response_code_sent.get())
            .and_then(Code::as_u16)
    }
}

/// Turns a parser error into the schema's error classes. The timestamp's own errors
/// are [`SchemaError`]s made into text by [`TimestampVisitor`]; they are recognised by
/// how that text starts (a field's error starts with serde's `invalid type` or
/// `duplicate field`, never with these).
fn classify(e: serde_json::Error) -> SchemaError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => SchemaError::InvalidJson(e.to_string()),
        Category::Data => {
            let msg = e.to_string();
            if msg.starts_with("missing timestamp") {
                SchemaError::MissingTimestamp
            } else if msg.starts_with("unparsable timestamp") {
                SchemaError::InvalidTimestamp {
                    value: msg,
                    reason: "unparsable",
                }
            } else {
                SchemaError::InvalidField(msg)
            }
        }
    }
}

/// The JSON type name of a value, for messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(line: &str) {
        let log = WafLog::from_json(line).unwrap();
        let out = serde_json::to_string(&log).unwrap();
        let a: Value = serde_json::from_str(line).unwrap();
        let b: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a, b, "round trip changed the record");
        assert_eq!(WafLog::from_json(&out).unwrap(), log);
    }

    #[test]
    fn nulls_empties_and_unknown_fields_round_trip() {
        roundtrip(
            r#"{"timestamp":1576280412771,"formatVersion":1,"webaclId":"arn:aws:wafv2:ap-southeast-2:111122223333:regional/webacl/STMTest/1EXAMPLE-2ARN-3ARN-4ARN-123456EXAMPLE","terminatingRuleId":"STMTest_SQLi_XSS","terminatingRuleType":"REGULAR","action":"BLOCK","terminatingRuleMatchDetails":[{"conditionType":"SQL_INJECTION","sensitivityLevel":"HIGH","location":"HEADER","matchedData":["10","AND","1"]}],"httpSourceName":"-","httpSourceId":"-","ruleGroupList":[],"rateBasedRuleList":[],"nonTerminatingMatchingRules":[],"requestHeadersInserted":null,"responseCodeSent":null,"httpRequest":{"clientIp":"1.1.1.1","country":"AU","headers":[{"name":"Host","value":"localhost:1989"},{"name":"User-Agent"}],"uri":"/myUri","args":"","httpVersion":"HTTP/1.1","httpMethod":"GET","requestId":"rid"},"labels":[{"name":"value"}],"futureTopLevel":{"nested":[1,2.5,null]}}"#,
        );
    }

    #[test]
    fn rule_groups_with_nulls_round_trip() {
        roundtrip(
            r#"{"timestamp":1592361810888,"formatVersion":1,"action":"ALLOW","ruleGroupList":[{"ruleGroupId":"AWS#AWSManagedRulesSQLiRuleSet","terminatingRule":null,"nonTerminatingMatchingRules":[{"ruleId":"SQLi_QUERYARGUMENTS","action":"COUNT","overriddenAction":"BLOCK","ruleMatchDetails":[]}],"excludedRules":null,"customerConfig":null}],"rateBasedRuleList":[{"rateBasedRuleId":"x","limitKey":"IP","maxRateAllowed":100,"newField":true}],"httpRequest":{"clientIp":"1.1.1.1","country":"-","headers":[],"uri":"/","args":"","httpVersion":"HTTP/2.0","httpMethod":"get","requestId":null,"fragment":"","scheme":"https","host":"example.com"},"ja3Fingerprint":"abc","ja4Fingerprint":"t13d","oversizeFields":["REQUEST_BODY"],"requestBodySize":9000,"requestBodySizeInspectedByWAF":8192,"captchaResponse":{"responseCode":405,"solveTimestamp":0,"failureReason":"TOKEN_MISSING"}}"#,
        );
    }

    #[test]
    fn aws_documentation_shaped_records_round_trip() {
        let text = include_str!("../../../fixtures/aws-examples.ndjson");
        let mut n = 0;
        for line in text.lines() {
            roundtrip(line);
            n += 1;
        }
        assert_eq!(n, 6);
        let blocked = WafLog::from_json(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(blocked.action_kind(), Some(Action::Block));
        let rule = &blocked.terminating_rule_match_details.get().unwrap()[0];
        assert_eq!(
            rule.condition_type.get().map(String::as_str),
            Some("SQL_INJECTION")
        );
    }

    const FIELDS: &str = include_str!("../../../fixtures/aws-log-fields.ndjson");

    /// Parse -> serialise -> parse is equal, and the output is the input as a JSON
    /// value; the known fields land in typed fields, not in `extra`.
    #[test]
    fn every_example_round_trips_with_no_unknown_fields() {
        let examples = include_str!("../../../fixtures/aws-examples.ndjson");
        let mut n = 0;
        for line in examples.lines().chain(FIELDS.lines()) {
            roundtrip(line);
            let log = WafLog::from_json(line).unwrap();
            assert!(log.extra.is_empty(), "{:?}", log.extra);
            let req = log.http_request.get().unwrap();
            assert!(req.extra.is_empty(), "{:?}", req.extra);
            for r in log.rate_based_rule_list.get().into_iter().flatten() {
                assert!(r.extra.is_empty(), "{:?}", r.extra);
            }
            n += 1;
        }
        assert_eq!(n, 9);
    }

    #[test]
    fn recent_fields_are_typed() {
        let logs: Vec<WafLog> = FIELDS
            .lines()
            .map(|l| WafLog::from_json(l).unwrap())
            .collect();
        fn s(v: &Nullable<String>) -> Option<&str> {
            v.get().map(String::as_str)
        }

        // A rate-based block on two custom keys (shaped like the AWS documentation's
        // "Rate-based rule 2" example).
        let rate = &logs[0].rate_based_rule_list.get().unwrap()[0];
        assert_eq!(s(&rate.limit_key), Some("CUSTOMKEYS"));
        assert_eq!(rate.max_rate_allowed.get(), Some(&Code::Number(100)));
        assert_eq!(
            rate.evaluation_window_sec.get(),
            Some(&Code::Text("120".into()))
        );
        let keys = rate.custom_values.get().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(s(&keys[1].key), Some("QUERY_ARG"));
        assert_eq!(s(&keys[1].value), Some("max"));

        // A terminating challenge with an expired token, an ASN and a tenant.
        let c = &logs[1];
        assert_eq!(c.action_kind(), Some(Action::Challenge));
        let ch = c.challenge_response.get().unwrap();
        assert_eq!(ch.response_code.get(), Some(&202));
        assert_eq!(ch.solve_timestamp.get(), Some(&1_735_730_000));
        assert_eq!(s(&ch.failure_reason), Some("TOKEN_EXPIRED"));
        assert!(c.captcha_response.is_absent());
        assert_eq!(c.client_asn.get(), Some(&Code::Number(64496)));
        assert_eq!(
            s(&c.cf_distribution_tenant_id),
            Some("dt_2abcEXAMPLE3defGHIjkl4MNO")
        );
        assert_eq!(
            s(&c.ja4_fingerprint),
            Some("t13d1517h2_8daaf6152771_b6f405a00624")
        );
        assert_eq!(s(&c.ja3_fingerprint).map(str::len), Some(32));
        let labels: Vec<&str> = c
            .labels
            .get()
            .unwrap()
            .iter()
            .filter_map(|l| s(&l.name))
            .collect();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels[1], "awswaf:managed:token:rejected:expired");
        let req = c.http_request.get().unwrap();
        assert_eq!(s(&req.fragment), Some("step-2"));
        assert_eq!(s(&req.scheme), Some("https"));
        assert_eq!(s(&req.host), Some("shop.tenant-a.example.com"));
        assert_eq!(c.response_code_sent, Nullable::Null);
        assert_eq!(c.request_headers_inserted, Nullable::Null);

        // Custom request handling, a forwarded-IP rate rule, an oversize body.
        let a = &logs[2];
        let inserted = a.request_headers_inserted.get().unwrap();
        assert_eq!(s(&inserted[0].name), Some("x-amzn-waf-partner"));
        let rate = &a.rate_based_rule_list.get().unwrap()[0];
        assert_eq!(s(&rate.limit_key), Some("FORWARDED_IP"));
        assert_eq!(s(&rate.limit_value), Some("198.51.100.200"));
        assert!(rate.custom_values.is_absent());
        assert_eq!(
            a.oversize_fields.get().unwrap(),
            &["REQUEST_BODY", "REQUEST_JSON_BODY"]
        );
        assert_eq!(a.request_body_size.get(), Some(&70_000));
        assert_eq!(a.request_body_size_inspected_by_waf.get(), Some(&16_384));
        assert_eq!(a.client_asn.get(), Some(&Code::Number(64511)));

        // responseCodeSent and the CAPTCHA response of the older examples.
        let captcha = WafLog::from_json(
            include_str!("../../../fixtures/aws-examples.ndjson")
                .lines()
                .nth(3)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(captcha.response_code_sent.get(), Some(&Code::Number(405)));
        let r = captcha.captcha_response.get().unwrap();
        assert_eq!(s(&r.failure_reason), Some("TOKEN_MISSING"));
    }

    #[test]
    fn repeated_keys_and_wrong_types_are_rejected_with_a_reason() {
        for (line, want) in [
            (
                r#"{"timestamp":1576280412771,"timestamp":1576280412772}"#,
                "duplicate field `timestamp`",
            ),
            (
                r#"{"timestamp":1576280412771,"ja4Fingerprint":"a","ja4Fingerprint":"b"}"#,
                "duplicate field `ja4Fingerprint`",
            ),
            (
                r#"{"timestamp":1576280412771,"httpRequest":{"host":"a","host":null}}"#,
                "duplicate field `host`",
            ),
            (
                r#"{"timestamp":1576280412771,"future":1,"future":2}"#,
                "duplicate field `future`",
            ),
            (
                r#"{"timestamp":1576280412771,"responseCodeSent":403.0}"#,
                "invalid type",
            ),
            (
                r#"{"timestamp":1576280412771,"requestBodySize":"big"}"#,
                "invalid type",
            ),
            (
                r#"{"timestamp":1576280412771,"labels":{"name":"x"}}"#,
                "invalid type",
            ),
            (
                r#"{"timestamp":1576280412771,"httpRequest":[]}"#,
                "invalid type",
            ),
        ] {
            match WafLog::from_json(line) {
                Err(SchemaError::InvalidField(m)) => assert!(m.contains(want), "{line}: {m}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert!(matches!(
            WafLog::from_json(r#"{"timestamp":null}"#),
            Err(SchemaError::MissingTimestamp)
        ));
        assert!(matches!(
            WafLog::from_json(r#"{"timestamp":[1]}"#),
            Err(SchemaError::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            WafLog::from_json(r#"{"timestamp":1576280412771} x"#),
            Err(SchemaError::InvalidJson(_))
        ));
        assert!(matches!(
            WafLog::from_json(" 5"),
            Err(SchemaError::NotAnObject("a number"))
        ));
        assert!(matches!(
            WafLog::from_value(serde_json::json!({"action": "x"})),
            Err(SchemaError::MissingTimestamp)
        ));
        let v = serde_json::json!({"timestamp": 1_576_280_412_771_i64, "x": [1]});
        assert_eq!(WafLog::from_value(v.clone()).unwrap().extra["x"], v["x"]);
    }

    #[test]
    fn actions_in_any_case() {
        for (s, a) in [
            ("allow", Action::Allow),
            ("Challenge", Action::Challenge),
            ("BLOCK", Action::Block),
            (" count ", Action::Count),
        ] {
            assert_eq!(Action::parse(s), Some(a));
        }
        assert_eq!(Action::parse("EXCLUDED_AS_COUNT"), None);
    }

    #[test]
    fn seed_record_converts_seconds() {
        let log = WafLog::from_json(r#"{"timestamp":1669682102.123015,"formatVersion":1,"action":"Count","httpSourceName":"APPSYNC","httpSourceId":"appsync","httpStatus":"202","httpRequest":{"clientIp":"1.1.1.1","country":"US","headers":[],"uri":"","args":"","httpVersion":"HTTP/1.1","httpMethod":"POST","requestId":"null"}}"#).unwrap();
        assert_eq!(log.timestamp.millis(), 1_669_682_102_123);
        assert_eq!(log.status(), Some(202));
        assert_eq!(
            serde_json::to_value(&log).unwrap()["timestamp"],
            1_669_682_102_123_i64
        );
    }

    #[test]
    fn status_falls_back_to_response_code_sent() {
        let log = WafLog::from_json(r#"{"timestamp":1576280412,"responseCodeSent":403}"#);
        assert_eq!(log.unwrap().status(), Some(403));
        let log =
            WafLog::from_json(r#"{"timestamp":1576280412771,"responseCodeSent":null}"#).unwrap();
        assert_eq!(log.status(), None);
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            WafLog::from_json("[1]"),
            Err(SchemaError::NotAnObject("an array"))
        ));
        assert!(matches!(
            WafLog::from_json("{"),
            Err(SchemaError::InvalidJson(_))
        ));
        assert!(matches!(
            WafLog::from_json(r#"{"action":"x"}"#),
            Err(SchemaError::MissingTimestamp)
        ));
        assert!(matches!(
            WafLog::from_json(r#"{"timestamp":"soon"}"#),
            Err(SchemaError::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            WafLog::from_json(r#"{"timestamp":1576280412771,"action":5}"#),
            Err(SchemaError::InvalidField(_))
        ));
    }
}
