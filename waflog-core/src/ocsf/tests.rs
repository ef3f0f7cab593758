//! Every emitted event is validated against OCSF 1.1.0's compiled class definitions,
//! which the repository carries (`fixtures/ocsf/`, Apache-2.0; made by
//! `scripts/ocsf-schema.py`).

use serde_json::{Value, json};

use super::*;
use crate::Config;
use crate::detect::Engine;
use crate::simulate::{Episode, Generator, Limit, Scenario};

const SCHEMA: &str = include_str!("../../../fixtures/ocsf/ocsf-1.1.0-waflog.json");
const AWS_EXAMPLES: &str = include_str!("../../../fixtures/aws-examples.ndjson");
const SEED_RECORDS: &str = include_str!("../../../fixtures/seed-records.ndjson");
const LOG_FIELDS: &str = include_str!("../../../fixtures/aws-log-fields.ndjson");

/// The schema problems of `ev` as an instance of `class` (empty when it is valid).
fn validate(ev: &Value, class: &str) -> Vec<String> {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let def = &schema["classes"][class];
    let mut errors = Vec::new();
    if def.is_null() {
        return vec![format!("no class {class}")];
    }
    if ev["class_uid"] != def["uid"] {
        errors.push(format!(
            "class_uid {} is not {}",
            ev["class_uid"], def["uid"]
        ));
    }
    let (class_uid, activity) = (ev["class_uid"].as_u64(), ev["activity_id"].as_u64());
    if let (Some(c), Some(a)) = (class_uid, activity) {
        if ev["type_uid"].as_u64() != Some(c * 100 + a) {
            errors.push(format!(
                "type_uid {} is not {}",
                ev["type_uid"],
                c * 100 + a
            ));
        }
    }
    let profiles: Vec<&str> = ev["metadata"]["profiles"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    check_object(
        &schema,
        &def["attributes"],
        ev,
        class,
        &profiles,
        &mut errors,
    );
    errors
}

fn check_object(
    schema: &Value,
    attrs: &Value,
    v: &Value,
    path: &str,
    profiles: &[&str],
    errors: &mut Vec<String>,
) {
    let Some(obj) = v.as_object() else {
        errors.push(format!("{path}: not an object"));
        return;
    };
    let attrs = attrs.as_object().unwrap();
    for (name, a) in attrs {
        let in_profile = a["profile"].as_str().is_none_or(|p| profiles.contains(&p));
        if a["requirement"] == "required" && in_profile && !obj.contains_key(name) {
            errors.push(format!("{path}.{name}: required, missing"));
        }
    }
    for (name, value) in obj {
        let Some(a) = attrs.get(name) else {
            errors.push(format!("{path}.{name}: not an attribute of {path}"));
            continue;
        };
        let at = format!("{path}.{name}");
        if a["is_array"] == true {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check_value(schema, a, item, &format!("{at}[{i}]"), profiles, errors);
                    }
                }
                None => errors.push(format!("{at}: not an array")),
            }
        } else {
            check_value(schema, a, value, &at, profiles, errors);
        }
    }
}

fn check_value(
    schema: &Value,
    a: &Value,
    v: &Value,
    path: &str,
    profiles: &[&str],
    errors: &mut Vec<String>,
) {
    let t = a["type"].as_str().unwrap();
    if t == "object" {
        // OCSF's generic Object (`unmapped`): any attributes.
        if !v.is_object() {
            errors.push(format!("{path}: not an object"));
        }
        return;
    }
    if let Some(obj) = schema["objects"].get(t) {
        check_object(schema, &obj["attributes"], v, path, profiles, errors);
        return;
    }
    let base = schema["types"][t].as_str().unwrap_or(t);
    let ok = match base {
        "string_t" => v.is_string(),
        "integer_t" | "long_t" => v.is_i64() || v.is_u64(),
        "float_t" => v.is_number(),
        "boolean_t" => v.is_boolean(),
        "json_t" => true,
        "object" | "object_t" => v.is_object(),
        other => {
            errors.push(format!("{path}: unknown type {other}"));
            true
        }
    };
    if !ok {
        errors.push(format!("{path}: {v} is not a {t}"));
    }
    if let Some(values) = a["enum"].as_array() {
        let key = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !values.iter().any(|e| e.as_str() == Some(&key)) {
            errors.push(format!("{path}: {v} is not one of its enum values"));
        }
    }
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim().is_empty())
}

#[test]
fn the_validator_finds_what_is_wrong() {
    let mut ev = http_activity(lines(AWS_EXAMPLES).next().unwrap()).unwrap();
    assert_eq!(validate(&ev, "http_activity"), Vec::<String>::new());
    ev["no_such_attribute"] = json!(1);
    ev["activity_id"] = json!(42);
    ev["time"] = json!("yesterday");
    ev["http_request"]["http_headers"] = json!({ "name": "x" });
    ev.as_object_mut().unwrap().remove("src_endpoint");
    ev["cloud"].as_object_mut().unwrap().remove("provider");
    let errors = validate(&ev, "http_activity");
    for expected in [
        "http_activity.no_such_attribute: not an attribute",
        "http_activity.activity_id: 42 is not one of its enum values",
        "type_uid 400203 is not 400242",
        "http_activity.time: \"yesterday\" is not a timestamp_t",
        "http_activity.http_request.http_headers: not an array",
        "http_activity.src_endpoint: required, missing",
        "http_activity.cloud.provider: required, missing",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{expected} not in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), 7, "{errors:#?}");
}

#[test]
fn every_documented_and_seed_record_is_a_valid_http_activity() {
    let mut n = 0;
    for line in lines(AWS_EXAMPLES)
        .chain(lines(SEED_RECORDS))
        .chain(lines(LOG_FIELDS))
    {
        let ev = http_activity(line).unwrap();
        assert_eq!(
            validate(&ev, "http_activity"),
            Vec::<String>::new(),
            "{ev:#}"
        );
        n += 1;
    }
    assert_eq!(n, 16 + lines(LOG_FIELDS).count());
}

#[test]
fn simulated_records_are_valid_http_activities() {
    let mut scenario = Scenario::new(7, 1_700_000_000_000);
    scenario.rate = 20.0;
    scenario.limit = Limit::Count(3_000);
    for e in [
        "country:10s:20s:0.5",
        "httpMethod:40s:20s:0.5",
        "flood:90s:20s:5",
    ] {
        scenario.episodes.push(Episode::parse(e).unwrap());
    }
    let mut generator = Generator::new(&scenario).unwrap();
    let mut line = Vec::new();
    let mut seen_actions = std::collections::BTreeSet::new();
    while generator.next_record(&mut line).is_some() {
        let text = std::str::from_utf8(line.trim_ascii_end()).unwrap();
        let ev = http_activity(text).unwrap();
        assert_eq!(
            validate(&ev, "http_activity"),
            Vec::<String>::new(),
            "{ev:#}"
        );
        seen_actions.insert(ev["action"].as_str().unwrap().to_string());
        line.clear();
    }
    assert!(seen_actions.len() >= 3, "{seen_actions:?}");
}

#[test]
fn the_waf_fields_map_as_documented() {
    let recs: Vec<Value> = lines(AWS_EXAMPLES)
        .map(|l| http_activity(l).unwrap())
        .collect();
    // Default-action ALLOW of a GET through CloudFront.
    let a = &recs[0];
    assert_eq!(a["activity_id"], 3);
    assert_eq!(a["activity_name"], "Get");
    assert_eq!(a["type_uid"], 400203);
    assert_eq!(a["time"], 1_735_732_800_123_i64);
    assert_eq!(
        (&a["action_id"], &a["disposition_id"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(a["severity_id"], 1);
    assert_eq!(a["http_response"]["code"], 0);
    assert_eq!(
        a["src_endpoint"],
        json!({"ip": "192.0.2.10", "location": {"country": "US"}})
    );
    assert_eq!(a["dst_endpoint"]["svc_name"], "CF");
    assert_eq!(a["dst_endpoint"]["hostname"], "www.example.com");
    assert_eq!(
        a["http_request"]["url"]["url_string"],
        "https://www.example.com/index.html?lang=en"
    );
    assert_eq!(a["http_request"]["version"], "HTTP/2.0");
    assert_eq!(
        a["cloud"],
        json!({"provider": "AWS", "region": "us-east-1",
               "account": {"uid": "123456789012", "type": "AWS Account", "type_id": 10}})
    );
    assert_eq!(a["firewall_rule"]["uid"], "Default_Action");
    assert_eq!(a["observables"][0]["value"], "192.0.2.10");
    // What OCSF has no attribute for is kept under `unmapped`.
    assert_eq!(
        a["unmapped"]["ja4Fingerprint"],
        "t13d1516h2_0a1b2c3d4e5f_f9e8d7c6b5a4"
    );
    assert_eq!(a["unmapped"]["webaclId"].as_str().unwrap().len(), 102);
    assert!(a["unmapped"]["ruleGroupList"].is_array());
    // Managed SQLi rule BLOCK: Denied / Blocked, WAF's 403.
    let b = &recs[1];
    assert_eq!(
        (&b["action_id"], &b["disposition_id"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(b["http_response"]["code"], 403);
    assert_eq!(b["severity_id"], 3);
    assert_eq!(b["firewall_rule"]["type"], "MANAGED_RULE_GROUP");
    assert_eq!(
        b["unmapped"]["terminatingRuleMatchDetails"][0]["conditionType"],
        "SQL_INJECTION"
    );
    // A rate-based rule keeps its whole list.
    assert_eq!(
        recs[2]["unmapped"]["rateBasedRuleList"][0]["limitKey"],
        "CUSTOMKEYS"
    );
    for ev in &recs {
        assert!(matches!(
            ev["disposition_id"].as_u64(),
            Some(1 | 2 | 20 | 22 | 23)
        ));
    }
}

#[test]
fn no_waf_field_is_lost() {
    // Every top-level field and every `httpRequest` field of the input is either
    // mapped or under `unmapped` with its value.
    for line in lines(AWS_EXAMPLES).chain(lines(LOG_FIELDS)) {
        let rec: Value = serde_json::from_str(line).unwrap();
        let ev = http_activity(line).unwrap();
        for (k, v) in rec.as_object().unwrap() {
            if k == "httpRequest" {
                for (rk, rv) in v.as_object().unwrap() {
                    if !MAPPED_REQUEST.contains(&rk.as_str()) {
                        assert_eq!(&ev["unmapped"]["httpRequest"][rk], rv, "{rk}");
                    }
                }
            } else if !MAPPED.contains(&k.as_str()) {
                assert_eq!(&ev["unmapped"][k], v, "{k}");
            }
        }
    }
}

#[test]
fn bad_records_are_refused_with_a_reason() {
    assert!(matches!(
        http_activity("{"),
        Err(SchemaError::InvalidJson(_))
    ));
    assert!(matches!(
        http_activity("[1]"),
        Err(SchemaError::NotAnObject("an array"))
    ));
    assert!(matches!(
        http_activity("{\"action\":\"ALLOW\"}"),
        Err(SchemaError::MissingTimestamp)
    ));
    assert!(matches!(
        http_activity("{\"timestamp\":true}"),
        Err(SchemaError::InvalidTimestamp { .. })
    ));
    // A minimal record (no httpRequest) is still a valid event.
    let ev = http_activity("{\"timestamp\":1735732800123}").unwrap();
    assert_eq!(
        validate(&ev, "http_activity"),
        Vec::<String>::new(),
        "{ev:#}"
    );
    assert_eq!(ev["activity_id"], 0);
    // An unknown method is activity 99 with the method as its name.
    let ev =
        http_activity("{\"timestamp\":1735732800123,\"httpRequest\":{\"httpMethod\":\"PATCH\"}}")
            .unwrap();
    assert_eq!(
        (&ev["activity_id"], &ev["activity_name"]),
        (&json!(99), &json!("PATCH"))
    );
    assert_eq!(ev["unmapped"]["httpRequest"]["httpMethod"], "PATCH");
    assert_eq!(validate(&ev, "http_activity"), Vec::<String>::new());
}

#[test]
fn anomalies_of_a_flood_are_valid_detection_findings() {
    let mut scenario = Scenario::new(42, 1_700_000_000_000);
    scenario.rate = 5.0;
    scenario.limit = Limit::Duration(40 * 60_000);
    scenario
        .episodes
        .push(Episode::parse("flood:25m:5m:20").unwrap());
    let mut generator = Generator::new(&scenario).unwrap();
    let config = Config::default();
    let mut engine = Engine::new(&config.detector_specs(), config.feature_map().unwrap()).unwrap();
    let (mut results, mut line) = (Vec::new(), Vec::new());
    while generator.next_record(&mut line).is_some() {
        let _ = engine.push_line(line.trim_ascii_end(), &mut results);
        line.clear();
    }
    engine.finish(&mut results);
    let findings: Vec<Value> = results.iter().filter_map(detection_finding).collect();
    assert_eq!(
        findings.len(),
        results.iter().filter(|r| r.anomaly_grade > 0.0).count()
    );
    assert!(!findings.is_empty());
    assert!(results.len() > findings.len());
    let mut flood_ip_seen = false;
    for f in &findings {
        assert_eq!(
            validate(f, "detection_finding"),
            Vec::<String>::new(),
            "{f:#}"
        );
        assert_eq!(f["type_uid"], 200401);
        assert!((2..=5).contains(&f["severity_id"].as_u64().unwrap()));
        flood_ip_seen |= f["observables"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["type_id"] == 2));
    }
    assert!(flood_ip_seen, "no client IP among the observables");
    let counted = findings
        .iter()
        .find(|f| f["finding_info"]["analytic"]["name"] == "request-count-detector")
        .unwrap();
    assert!(
        counted["message"]
            .as_str()
            .unwrap()
            .starts_with("request_count anomaly in request-count-detector: request_count = ")
    );
    assert!(counted["evidences"][0]["data"]["feature_data"].is_array());
}

#[test]
fn severity_follows_the_grade() {
    let s: Vec<u32> = [0.0, 0.1, 0.4, 0.7, 0.9, 1.0]
        .into_iter()
        .map(severity_of_grade)
        .collect();
    assert_eq!(s, [1, 2, 3, 4, 5, 5]);
}

#[test]
fn copied_fields_reach_the_output_with_unsafe_characters_escaped() {
    // A bidi override and a C1 control, raw in mapped and in copied (unmapped)
    // strings, and a pretty-printed copied value: escaped, the JSON unchanged.
    let line = "{\"timestamp\":1735732800123,\"action\":\"AL\u{202e}LOW\",\
                \"ja4Fingerprint\":\"t13d\u{0085}x\",\"oversizeFields\":[\n \"a\"\n],\
                \"httpRequest\":{\"clientIp\":\"1.2.3.4\",\"fragment\":\"f\u{202e}\"}}";
    let mut out = Vec::new();
    write_http_activity(line, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains('\u{202e}') && !text.contains('\u{0085}'),
        "{text}"
    );
    assert!(
        text.contains(r"AL\u202eLOW") && text.contains(r"t13d\u0085x"),
        "{text}"
    );
    let ev: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ev["unmapped"]["ja4Fingerprint"], "t13d\u{0085}x");
    assert_eq!(ev["unmapped"]["oversizeFields"], serde_json::json!(["a"]));
    assert_eq!(ev["unmapped"]["httpRequest"]["fragment"], "f\u{202e}");
    assert_eq!(ev["action"], "AL\u{202e}LOW");
    assert_eq!(validate(&ev, "http_activity"), Vec::<String>::new());
}
