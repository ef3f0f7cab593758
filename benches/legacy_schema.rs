//! The typed parse as it was before the one-pass visitors (waflog-core at fecbfa1,
//! `schema.rs`): `serde_json::Value` first, then derived structs with
//! `#[serde(flatten)]` for unknown fields. Kept only as the "before" of the
//! `parse/waflog_full` bench; not used anywhere else.

#![allow(dead_code, missing_docs, clippy::all)]

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use waflog_core::SchemaError;

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
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        let ms = match &v {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => waflog_core::timestamp::from_i64(i),
                (None, Some(f)) => waflog_core::timestamp::from_f64(f),
                _ => Err(SchemaError::MissingTimestamp),
            },
            Value::String(s) => waflog_core::timestamp::from_str(s),
            Value::Null => Err(SchemaError::MissingTimestamp),
            _ => Err(SchemaError::InvalidTimestamp {
                value: v.to_string(),
                reason: "must be a number or a string",
            }),
        };
        ms.map(Timestamp).map_err(D::Error::custom)
    }
}

/// A status code as the log wrote it: the seed writes `"200"`, AWS writes `403`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Code {
    /// A JSON number.
    Number(i64),
    /// A JSON string.
    Text(String),
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
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(rename = $json, default, skip_serializing_if = "Nullable::is_absent")]
                pub $field: Nullable<$ty>,
            )*
            /// Fields this version of waflog does not know, kept as they were.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }
    };
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WafLog {
    /// Request time, normalised to epoch milliseconds.
    pub timestamp: Timestamp,
    /// Every other field.
    #[serde(flatten)]
    pub fields: WafLogFields,
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
    /// Parses one JSON record, with the same error classes as the transform.
    pub fn from_json(line: &str) -> Result<WafLog, SchemaError> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
        WafLog::from_value(value)
    }

    /// Builds a record from a parsed JSON value.
    pub fn from_value(value: Value) -> Result<WafLog, SchemaError> {
        let obj = match value {
            Value::Object(o) => o,
            other => return Err(SchemaError::NotAnObject(json_kind(&other))),
        };
        match obj.get(waflog_core::names::TIMESTAMP) {
            None | Some(Value::Null) => return Err(SchemaError::MissingTimestamp),
            Some(_) => {}
        }
        serde_json::from_value(Value::Object(obj)).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("timestamp") {
                SchemaError::InvalidTimestamp {
                    value: msg,
                    reason: "unparsable",
                }
            } else {
                SchemaError::InvalidField(msg)
            }
        })
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
