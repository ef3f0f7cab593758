//! OCSF 1.1.0 events: each WAF record as an HTTP Activity (class 4002) and each
//! anomaly as a Detection Finding (class 2004).
//!
//! The Open Cybersecurity Schema Framework (<https://schema.ocsf.io/1.1.0/>, source
//! ocsf/ocsf-schema v1.1.0, Apache-2.0) is what Amazon Security Lake and most SIEMs
//! store. 1.1.0 is the version Security Lake accepts for AWS WAF logs. The mapping,
//! field by field, is in `docs/ocsf.md`; in short:
//!
//! - **HTTP Activity** (`http_activity`): `activity_id` from the HTTP method; `time`
//!   from `timestamp`; `src_endpoint` the client (`ip`, `location.country`);
//!   `dst_endpoint` the protected resource (`svc_name` = `httpSourceName`, `uid` =
//!   `httpSourceId`, `hostname` = the Host header); `http_request` (method, version,
//!   `uid` = `requestId`, `url`, `user_agent`, headers); `http_response.code` from
//!   `responseCodeSent`, else what WAF itself answers (403 for BLOCK, 405 for
//!   CAPTCHA, 202 for a CHALLENGE), else 0 (WAF does not know the origin's answer);
//!   `firewall_rule` the terminating rule; `action_id` / `disposition_id` from
//!   `action`; `cloud` from the web ACL's ARN; `metadata.labels` the WAF labels;
//!   `observables` the client IP. What OCSF has no attribute for (rule groups,
//!   rate-based rules, fingerprints, body sizes, CAPTCHA and challenge responses,
//!   `clientAsn`, …) is kept whole under `unmapped`, so no field is lost.
//! - **Detection Finding** (`detection_finding`), for results with a grade above 0:
//!   `finding_info` names the detector and the feature that moved; `severity_id` from
//!   the grade; `confidence_score` from the confidence; `evidences[].data` holds the
//!   features with their expected values and bounds; `observables` the contributing
//!   values (client IPs as IP addresses); the result's own numbers under `unmapped`.

use std::borrow::Cow;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::detect::AnomalyResult;
use crate::error::SchemaError;
use crate::parse::raw::{RawObject, str_of};
use crate::parse::schema::json_kind;
use crate::timestamp;

/// The OCSF version of the events.
pub const VERSION: &str = "1.1.0";

/// HTTP Activity's class id.
pub const HTTP_ACTIVITY: u32 = 4002;

/// Detection Finding's class id.
pub const DETECTION_FINDING: u32 = 2004;

/// Top-level WAF fields the HTTP Activity event maps (the rest go to `unmapped`).
const MAPPED: &[&str] = &[
    "timestamp",
    "action",
    "terminatingRuleId",
    "terminatingRuleType",
    "httpSourceName",
    "httpSourceId",
    "responseCodeSent",
    "labels",
];

/// `httpRequest` fields the event maps.
const MAPPED_REQUEST: &[&str] = &[
    "clientIp",
    "country",
    "headers",
    "uri",
    "args",
    "httpVersion",
    "httpMethod",
    "requestId",
    "scheme",
    "host",
];

/// `activity_id` and `activity_name` of an HTTP method (OCSF 1.1.0 knows eight).
fn activity(method: Option<&str>) -> (u32, String) {
    let m = method.unwrap_or("").to_ascii_uppercase();
    let id = match m.as_str() {
        "CONNECT" => 1,
        "DELETE" => 2,
        "GET" => 3,
        "HEAD" => 4,
        "OPTIONS" => 5,
        "POST" => 6,
        "PUT" => 7,
        "TRACE" => 8,
        "" => 0,
        _ => 99,
    };
    let name = match id {
        0 => "Unknown".to_string(),
        99 => m,
        _ => {
            let mut c = m.chars();
            c.next()
                .map(|f| f.to_string() + &c.as_str().to_ascii_lowercase())
                .unwrap_or_default()
        }
    };
    (id, name)
}

/// (`action_id`, `disposition_id`, `severity_id`, WAF's own status code) of a WAF
/// action.
fn action(a: &str) -> (u32, u32, u32, u16) {
    match a.to_ascii_uppercase().as_str() {
        "ALLOW" => (1, 1, 1, 0),
        "COUNT" => (1, 20, 1, 0),
        "BLOCK" => (2, 2, 3, 403),
        "CAPTCHA" => (2, 22, 2, 405),
        "CHALLENGE" => (2, 23, 2, 202),
        "EXCLUDED_AS_COUNT" => (1, 20, 1, 0),
        _ => (99, 99, 0, 0),
    }
}

/// `cloud` from a web ACL ARN (`arn:aws:wafv2:REGION:ACCOUNT:…`).
#[derive(Serialize)]
struct Cloud<'a> {
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<Account<'a>>,
}

#[derive(Serialize)]
struct Account<'a> {
    uid: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    type_id: u32,
}

fn cloud(webacl: Option<&str>) -> Cloud<'_> {
    let mut c = Cloud {
        provider: "AWS",
        region: None,
        account: None,
    };
    if let Some(arn) = webacl {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() == 6 && parts[0] == "arn" {
            c.region = Some(parts[3]).filter(|r| !r.is_empty());
            c.account = Some(parts[4]).filter(|a| !a.is_empty()).map(|uid| Account {
                uid,
                kind: "AWS Account",
                type_id: 10,
            });
        }
    }
    c
}

/// A non-empty string member of a raw object.
fn text<'a>(o: &RawObject<'a>, key: &str) -> Option<Cow<'a, str>> {
    o.get(key)
        .and_then(|v| str_of(v.get()))
        .filter(|s| !s.is_empty())
}

/// An HTTP Activity event (the attributes waflog fills), borrowing the record.
#[derive(Serialize)]
struct HttpActivity<'a> {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    activity_id: u32,
    activity_name: String,
    type_uid: u64,
    time: i64,
    severity_id: u32,
    action_id: u32,
    disposition_id: u32,
    metadata: Metadata<'a>,
    cloud: Cloud<'a>,
    src_endpoint: Src<'a>,
    dst_endpoint: Dst<'a>,
    http_request: Request<'a>,
    http_response: Response,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disposition: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    firewall_rule: Option<Rule<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observables: Option<[Observable<'a>; 1]>,
    #[serde(skip_serializing_if = "Members::is_empty")]
    unmapped: Members<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    version: &'static str,
    product: Product,
    profiles: [&'static str; 2],
    log_name: &'static str,
    log_provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    feature: Feature,
}

#[derive(Serialize)]
struct Feature {
    name: &'static str,
}

#[derive(Serialize)]
struct Src<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Location<'a>>,
}

#[derive(Serialize)]
struct Location<'a> {
    country: Cow<'a, str>,
}

#[derive(Serialize)]
struct Dst<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    svc_name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    http_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referrer: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Url<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http_headers: Vec<Header<'a>>,
}

#[derive(Serialize)]
struct Url<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_string: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheme: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url_string: Option<String>,
}

#[derive(Serialize)]
struct Header<'a> {
    name: Cow<'a, str>,
    value: Cow<'a, str>,
}

#[derive(Serialize)]
struct Response {
    code: u64,
}

#[derive(Serialize)]
struct Rule<'a> {
    uid: Cow<'a, str>,
    name: Cow<'a, str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Observable<'a> {
    name: &'static str,
    type_id: u32,
    value: Cow<'a, str>,
}

/// Members copied as they are (`unmapped`): raw values, or a nested object of them.
#[derive(Default)]
struct Members<'a>(Vec<(Cow<'a, str>, Member<'a>)>);

enum Member<'a> {
    Raw(&'a RawValue),
    Object(Members<'a>),
}

impl Members<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Members<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Member::Raw(r) => map.serialize_entry(k, r)?,
                Member::Object(o) => map.serialize_entry(k, o)?,
            }
        }
        map.end()
    }
}

/// The WAF record `line` (one JSON object) as an OCSF HTTP Activity event.
pub fn http_activity(line: &str) -> Result<Value, SchemaError> {
    let mut out = Vec::new();
    write_http_activity(line, &mut out)?;
    serde_json::from_slice(&out).map_err(|e| SchemaError::InvalidJson(e.to_string()))
}

/// [`http_activity`], written as one line of JSON (no newline) to `out`, straight
/// from the record's text: its strings are borrowed and what is not mapped is
/// copied as it is, through [`crate::text::to_json_writer`] (which escapes the
/// characters a terminal must not get raw). On error `out` is left as it was.
pub fn write_http_activity(line: &str, out: &mut Vec<u8>) -> Result<(), SchemaError> {
    let rec: RawObject<'_> = match serde_json::from_str(line) {
        Ok(o) => o,
        Err(e) => {
            let value: Value =
                serde_json::from_str(line).map_err(|_| SchemaError::InvalidJson(e.to_string()))?;
            return Err(SchemaError::NotAnObject(json_kind(&value)));
        }
    };
    let time = match rec.get("timestamp").map(RawValue::get) {
        None | Some("null") => return Err(SchemaError::MissingTimestamp),
        Some(raw) => match raw.as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => {
                timestamp::from_json_text(raw)?.ok_or(SchemaError::MissingTimestamp)?
            }
            _ => {
                return Err(SchemaError::InvalidTimestamp {
                    value: raw.to_string(),
                    reason: "not a number or a string",
                });
            }
        },
    };
    let req = rec
        .get("httpRequest")
        .and_then(|r| RawObject::parse(r.get()));
    let empty = RawObject::default();
    let fields = req.as_ref().unwrap_or(&empty);
    let rtext = |key: &str| text(fields, key);
    let headers: Vec<Header<'_>> = fields
        .get("headers")
        .and_then(|h| serde_json::from_str::<Vec<&RawValue>>(h.get()).ok())
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    let h = RawObject::parse(h.get())?;
                    Some(Header {
                        name: text(&h, "name")?,
                        value: str_of(h.get("value")?.get())?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
    };
    let method = rtext("httpMethod");
    let (activity_id, activity_name) = activity(method.as_deref());
    // OCSF 1.1.0 lists eight methods for `http_method`; others stay under `unmapped`.
    let method_known = (1..=8).contains(&activity_id);
    let waf_action = text(&rec, "action");
    let (action_id, disposition_id, severity_id, own_code) =
        action(waf_action.as_deref().unwrap_or(""));
    let code = rec
        .get("responseCodeSent")
        .and_then(|c| c.get().parse::<u64>().ok())
        .unwrap_or(u64::from(own_code));
    let host = rtext("host").or_else(|| header("host"));
    let scheme = rtext("scheme");
    let uri = rtext("uri");
    let args = rtext("args");
    let url_string = match (&scheme, &host, &uri) {
        (Some(s), Some(h), Some(p)) => Some(match &args {
            Some(q) => format!("{s}://{h}{p}?{q}"),
            None => format!("{s}://{h}{p}"),
        }),
        _ => None,
    };
    let has_url = uri.is_some() || args.is_some() || host.is_some() || scheme.is_some();
    let url = has_url.then(|| Url {
        path: uri,
        query_string: args,
        hostname: host.clone(),
        scheme,
        url_string,
    });
    let request_id = rtext("requestId");
    let client_ip = rtext("clientIp");
    let labels: Vec<Cow<'_, str>> = rec
        .get("labels")
        .and_then(|l| serde_json::from_str::<Vec<&RawValue>>(l.get()).ok())
        .map(|ls| {
            ls.iter()
                .filter_map(|l| text(&RawObject::parse(l.get())?, "name"))
                .collect()
        })
        .unwrap_or_default();
    let rule = text(&rec, "terminatingRuleId").map(|r| Rule {
        uid: r.clone(),
        name: r,
        kind: text(&rec, "terminatingRuleType"),
    });
    let user_agent = header("user-agent");
    let referrer = header("referer");

    let mut unmapped = Members::default();
    for (k, v) in &rec.0 {
        if !MAPPED.contains(&k.as_ref()) && k != "httpRequest" {
            unmapped.0.push((k.clone(), Member::Raw(v)));
        }
    }
    if let Some(r) = &req {
        let rest: Vec<(Cow<'_, str>, Member<'_>)> =
            r.0.iter()
                .filter(|(k, _)| {
                    !MAPPED_REQUEST.contains(&k.as_ref()) || (k == "httpMethod" && !method_known)
                })
                .map(|(k, v)| (k.clone(), Member::Raw(v)))
                .collect();
        if !rest.is_empty() {
            unmapped
                .0
                .push((Cow::Borrowed("httpRequest"), Member::Object(Members(rest))));
        }
    }

    let event = HttpActivity {
        class_uid: HTTP_ACTIVITY,
        class_name: "HTTP Activity",
        category_uid: 4,
        category_name: "Network Activity",
        activity_id,
        activity_name,
        type_uid: u64::from(HTTP_ACTIVITY) * 100 + u64::from(activity_id),
        time,
        severity_id,
        action_id,
        disposition_id,
        metadata: Metadata {
            version: VERSION,
            product: Product {
                name: "AWS WAF",
                vendor_name: "AWS",
                feature: Feature { name: "waflog" },
            },
            profiles: ["cloud", "security_control"],
            log_name: "aws-waf-logs",
            log_provider: "waflog",
            log_version: rec
                .get("formatVersion")
                .and_then(|v| v.get().parse::<i64>().ok())
                .map(|v| v.to_string()),
            uid: request_id.clone(),
            labels,
        },
        cloud: cloud(
            rec.get("webaclId")
                .and_then(|w| serde_json::from_str(w.get()).ok()),
        ),
        src_endpoint: Src {
            ip: client_ip.clone(),
            location: rtext("country").map(|country| Location { country }),
        },
        dst_endpoint: Dst {
            hostname: host,
            svc_name: text(&rec, "httpSourceName"),
            uid: text(&rec, "httpSourceId"),
        },
        http_request: Request {
            http_method: method
                .filter(|_| method_known)
                .map(|m| m.to_ascii_uppercase()),
            version: rtext("httpVersion"),
            uid: request_id,
            user_agent,
            referrer,
            url,
            http_headers: headers,
        },
        http_response: Response { code },
        action: waf_action.clone(),
        disposition: waf_action,
        firewall_rule: rule,
        observables: client_ip.map(|value| {
            [Observable {
                name: "src_endpoint.ip",
                type_id: 2,
                value,
            }]
        }),
        unmapped,
    };
    let start = out.len();
    crate::text::to_json_writer(&mut *out, &event).map_err(|e| {
        out.truncate(start);
        SchemaError::InvalidJson(e.to_string())
    })
}

/// `severity_id` of an anomaly grade: Low below 0.4, Medium below 0.7, High below
/// 0.9, Critical from 0.9.
pub fn severity_of_grade(grade: f64) -> u32 {
    match grade {
        g if g >= 0.9 => 5,
        g if g >= 0.7 => 4,
        g if g >= 0.4 => 3,
        g if g > 0.0 => 2,
        _ => 1,
    }
}

/// An anomaly result as an OCSF Detection Finding; `None` for a result with grade 0
/// (not a finding).
pub fn detection_finding(r: &AnomalyResult) -> Option<Value> {
    if r.anomaly_grade.is_nan() || r.anomaly_grade <= 0.0 {
        return None;
    }
    let features: Vec<String> = r
        .feature_data
        .iter()
        .map(|f| f.feature_name.clone())
        .collect();
    let entity = r.entity.as_ref().map(|e| {
        e.iter()
            .map(|v| format!("{}={}", v.name, v.value))
            .collect::<Vec<_>>()
            .join(",")
    });
    let mut title = format!("{} anomaly in {}", features.join(", "), r.detector_name);
    if let Some(e) = &entity {
        title += &format!(" for {e}");
    }
    let uid = format!(
        "{}:{}{}",
        r.detector_id,
        r.data_start_time,
        entity.as_deref().map_or(String::new(), |e| format!(":{e}"))
    );
    let moved: Vec<String> = r
        .feature_data
        .iter()
        .map(|f| {
            let expected = r
                .expected_values
                .first()
                .and_then(|e| e.value_list.iter().find(|v| v.feature_id == f.feature_id))
                .map_or(String::new(), |e| format!(" (expected {:.1})", e.data));
            format!("{} = {}{expected}", f.feature_name, f.data)
        })
        .collect();
    let mut observables = Vec::new();
    for c in r.contributors.iter().flatten() {
        let ip = c.field.ends_with("clientIp");
        for t in &c.top {
            observables.push(json!({
                "name": c.field,
                "type_id": if ip { 2 } else { 99 },
                "type": if ip { "IP Address" } else { "Other" },
                "value": t.value,
            }));
        }
    }
    let mut ev = json!({
        "class_uid": DETECTION_FINDING,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": u64::from(DETECTION_FINDING) * 100 + 1,
        "time": r.data_end_time,
        "start_time": r.data_start_time,
        "end_time": r.data_end_time,
        "severity_id": severity_of_grade(r.anomaly_grade),
        "confidence_score": (r.confidence.clamp(0.0, 1.0) * 100.0).round() as i64,
        "message": format!("{title}: {}", moved.join("; ")),
        "status_id": 1,
        "metadata": {
            "version": VERSION,
            "product": {
                "name": "waflog",
                "vendor_name": "waflog",
                "version": env!("CARGO_PKG_VERSION"),
            },
        },
        "finding_info": {
            "uid": uid,
            "title": title,
            "types": ["anomaly"],
            "first_seen_time": r.approx_anomaly_start_time.unwrap_or(r.data_start_time),
            "last_seen_time": r.data_end_time,
            "analytic": {
                "name": r.detector_name,
                "uid": r.detector_id,
                "type_id": 3,
                "type": "Statistical",
            },
        },
        "evidences": [{
            "data": {
                "feature_data": r.feature_data,
                "expected_values": r.expected_values,
                "expected_bounds": r.expected_bounds,
                "relevant_attribution": r.relevant_attribution,
            },
        }],
        "unmapped": {
            "anomaly_grade": r.anomaly_grade,
            "anomaly_score": r.anomaly_score,
            "confidence": r.confidence,
            "threshold": r.threshold,
            "records": r.records,
        },
    });
    if !observables.is_empty() {
        ev["observables"] = Value::Array(observables);
    }
    if let Some(e) = &r.entity {
        ev["unmapped"]["entity"] = json!(e);
    }
    Some(ev)
}

#[cfg(test)]
mod tests;
