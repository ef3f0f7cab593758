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

use serde_json::{Map, Value, json};

use crate::detect::AnomalyResult;
use crate::error::SchemaError;
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

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

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
fn cloud(webacl: Option<&str>) -> Value {
    let mut c = json!({ "provider": "AWS" });
    if let Some(arn) = webacl {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() == 6 && parts[0] == "arn" {
            if !parts[3].is_empty() {
                c["region"] = json!(parts[3]);
            }
            if !parts[4].is_empty() {
                c["account"] = json!({ "uid": parts[4], "type": "AWS Account", "type_id": 10 });
            }
        }
    }
    c
}

/// The WAF record `line` (one JSON object) as an OCSF HTTP Activity event.
pub fn http_activity(line: &str) -> Result<Value, SchemaError> {
    let rec: Value =
        serde_json::from_str(line).map_err(|e| SchemaError::InvalidJson(e.to_string()))?;
    let Value::Object(obj) = &rec else {
        return Err(SchemaError::NotAnObject(json_kind(&rec)));
    };
    let time = match obj.get("timestamp") {
        None | Some(Value::Null) => return Err(SchemaError::MissingTimestamp),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => timestamp::from_i64(i)?,
            None => timestamp::from_f64(n.as_f64().unwrap_or(f64::NAN))?,
        },
        Some(Value::String(s)) => timestamp::from_str(s)?,
        Some(other) => {
            return Err(SchemaError::InvalidTimestamp {
                value: other.to_string(),
                reason: "not a number or a string",
            });
        }
    };
    let empty = Value::Object(Map::new());
    let req = obj.get("httpRequest").unwrap_or(&empty);
    let headers: Vec<(&str, &str)> = req
        .get("headers")
        .and_then(Value::as_array)
        .map(|hs| {
            hs.iter()
                .filter_map(|h| Some((text(h, "name")?, h.get("value")?.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    };
    let (activity_id, activity_name) = activity(text(req, "httpMethod"));
    // OCSF 1.1.0 lists eight methods for `http_method`; others stay under `unmapped`.
    let method_known = (1..=8).contains(&activity_id);
    let waf_action = text(&rec, "action").unwrap_or("");
    let (action_id, disposition_id, severity_id, own_code) = action(waf_action);
    let code = rec
        .get("responseCodeSent")
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(own_code));

    let mut src = Map::new();
    if let Some(ip) = text(req, "clientIp") {
        src.insert("ip".into(), json!(ip));
    }
    if let Some(c) = text(req, "country") {
        src.insert("location".into(), json!({ "country": c }));
    }
    let host = text(req, "host").or_else(|| header("host"));
    let mut dst = Map::new();
    if let Some(h) = host {
        dst.insert("hostname".into(), json!(h));
    }
    if let Some(s) = text(&rec, "httpSourceName") {
        dst.insert("svc_name".into(), json!(s));
    }
    if let Some(s) = text(&rec, "httpSourceId") {
        dst.insert("uid".into(), json!(s));
    }

    let mut url = Map::new();
    if let Some(p) = text(req, "uri") {
        url.insert("path".into(), json!(p));
    }
    if let Some(q) = text(req, "args") {
        url.insert("query_string".into(), json!(q));
    }
    if let Some(h) = host {
        url.insert("hostname".into(), json!(h));
    }
    let scheme = text(req, "scheme");
    if let Some(s) = scheme {
        url.insert("scheme".into(), json!(s));
    }
    if let (Some(s), Some(h), Some(p)) = (scheme, host, text(req, "uri")) {
        let query = text(req, "args").map_or(String::new(), |q| format!("?{q}"));
        url.insert("url_string".into(), json!(format!("{s}://{h}{p}{query}")));
    }
    let mut http_request = Map::new();
    if let Some(m) = text(req, "httpMethod").filter(|_| method_known) {
        http_request.insert("http_method".into(), json!(m.to_ascii_uppercase()));
    }
    if let Some(v) = text(req, "httpVersion") {
        http_request.insert("version".into(), json!(v));
    }
    if let Some(id) = text(req, "requestId") {
        http_request.insert("uid".into(), json!(id));
    }
    if let Some(ua) = header("user-agent") {
        http_request.insert("user_agent".into(), json!(ua));
    }
    if let Some(r) = header("referer") {
        http_request.insert("referrer".into(), json!(r));
    }
    if !url.is_empty() {
        http_request.insert("url".into(), Value::Object(url));
    }
    if !headers.is_empty() {
        let hs: Vec<Value> = headers
            .iter()
            .map(|(n, v)| json!({ "name": n, "value": v }))
            .collect();
        http_request.insert("http_headers".into(), Value::Array(hs));
    }

    let mut metadata = json!({
        "version": VERSION,
        "product": {
            "name": "AWS WAF",
            "vendor_name": "AWS",
            "feature": { "name": "waflog" },
        },
        "profiles": ["cloud", "security_control"],
        "log_name": "aws-waf-logs",
        "log_provider": "waflog",
    });
    if let Some(v) = obj.get("formatVersion").and_then(Value::as_i64) {
        metadata["log_version"] = json!(v.to_string());
    }
    if let Some(id) = text(req, "requestId") {
        metadata["uid"] = json!(id);
    }
    let labels: Vec<&str> = obj
        .get("labels")
        .and_then(Value::as_array)
        .map(|ls| ls.iter().filter_map(|l| text(l, "name")).collect())
        .unwrap_or_default();
    if !labels.is_empty() {
        metadata["labels"] = json!(labels);
    }

    let mut ev = json!({
        "class_uid": HTTP_ACTIVITY,
        "class_name": "HTTP Activity",
        "category_uid": 4,
        "category_name": "Network Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": u64::from(HTTP_ACTIVITY) * 100 + u64::from(activity_id),
        "time": time,
        "severity_id": severity_id,
        "action_id": action_id,
        "disposition_id": disposition_id,
        "metadata": metadata,
        "cloud": cloud(text(&rec, "webaclId")),
        "src_endpoint": src,
        "dst_endpoint": dst,
        "http_request": http_request,
        "http_response": { "code": code },
    });
    if !waf_action.is_empty() {
        ev["action"] = json!(waf_action);
        ev["disposition"] = json!(waf_action);
    }
    if let Some(rule) = text(&rec, "terminatingRuleId") {
        let mut r = json!({ "uid": rule, "name": rule });
        if let Some(t) = text(&rec, "terminatingRuleType") {
            r["type"] = json!(t);
        }
        ev["firewall_rule"] = r;
    }
    if let Some(ip) = text(req, "clientIp") {
        ev["observables"] = json!([{ "name": "src_endpoint.ip", "type_id": 2, "value": ip }]);
    }

    let mut unmapped: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !MAPPED.contains(&k.as_str()) && k.as_str() != "httpRequest")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Value::Object(r) = req {
        let rest: Map<String, Value> = r
            .iter()
            .filter(|(k, _)| {
                !MAPPED_REQUEST.contains(&k.as_str())
                    || (k.as_str() == "httpMethod" && !method_known)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rest.is_empty() {
            unmapped.insert("httpRequest".into(), Value::Object(rest));
        }
    }
    if !unmapped.is_empty() {
        ev["unmapped"] = Value::Object(unmapped);
    }
    Ok(ev)
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
