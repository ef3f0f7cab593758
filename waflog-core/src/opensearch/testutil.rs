//! Test helpers: the official fixtures (compiled in, so the tests do no I/O) and a
//! structural comparison of a body with a documented example.

use serde_json::Value;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        const FIXTURES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../fixtures/opensearch/", $name))),)*
        ];
    };
}

fixtures!(
    "ad/create-detector-request.json",
    "ad/create-detector-response.json",
    "ad/create-hc-detector-request.json",
    "ad/create-hc-detector-response.json",
    "ad/update-detector-request.json",
    "ad/update-detector-response.json",
    "ad/search-detectors-request.json",
    "ad/search-detectors-response.json",
    "ad/get-detector-profile-response.json",
    "ad/get-detector-profile-with-ad-task-response.json",
    "ad/get-detector-profile-disabled-response.json",
    "ad/get-detector-profile-entity-response.json",
    "ad/result-mapping/anomaly-results-mapping.json",
    "ad/result-mapping/result-anomaly.json",
    "ad/result-mapping/search-results-request.json",
    "alerting/create-ad-monitor-request.json",
    "alerting/create-ad-monitor-response.json",
    "alerting/create-query-monitor-request.json",
    "alerting/create-query-monitor-response.json",
    "alerting/update-monitor-request.json",
    "alerting/update-monitor-response.json",
    "alerting/search-monitors-request.json",
    "alerting/search-monitors-response.json",
    "alerting/get-alerts-response.json",
    "bulk/request.ndjson",
    "bulk/response-ok.json",
    "bulk/response-multi-action.json",
    "bulk/response-partial-failure.json",
    "bulk/response-partial-failure-legacy-1x.json",
    "index-template/request.json",
    "index-template/request-without-priority.json",
    "notifications/create-config-webhook-request.json",
    "notifications/update-config-webhook-request.json",
    "notifications/create-config-sns-request.json",
    "notifications/create-config-slack-request.json",
    "notifications/create-config-response.json",
    "dashboards/index-pattern-saved-object.ndjson",
    "dashboards/saved-objects-import/export.ndjson",
    "dashboards/saved-objects-import/request-multipart.body",
    "dashboards/saved-objects-import/response-ok.json",
    "dashboards/saved-objects-import/response-two-objects.json",
    "dashboards/saved-objects-import/response-overwrite.json",
    "dashboards/saved-objects-import/response-conflict.json",
    "dashboards/saved-objects-import/response-missing-references.json",
);

/// The text of `fixtures/opensearch/<name>`.
pub(crate) fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("fixture {name} is not compiled in (add it to testutil.rs)"))
}

/// A JSON fixture, parsed.
pub(crate) fn fixture_json(name: &str) -> Value {
    serde_json::from_str(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Merges documented examples of one body (a request and the object echoed in its
/// response, say) into one reference: object keys are united recursively; where the
/// two disagree on the kind of a value, the first wins.
pub(crate) fn merged(examples: &[Value]) -> Value {
    let mut out = Value::Null;
    for e in examples {
        merge_into(&mut out, e);
    }
    out
}

fn merge_into(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            // Arrays are compared through the union of their elements.
            let mut all = a.first().cloned().unwrap_or(Value::Null);
            for e in a.iter().chain(b) {
                merge_into(&mut all, e);
            }
            *a = vec![all];
        }
        (into @ Value::Null, from) => *into = from.clone(),
        _ => {}
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn matches(path: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix(".*") {
        Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}.")),
        None => path == *p,
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks `ours` against a documented example, both ways:
///
/// - every key `ours` uses exists at the same path in `example`, with a value of the
///   same JSON kind (a `null` in the example matches anything), unless its path is in
///   `extra` (documented elsewhere; the test says where);
/// - every key of `example` exists in `ours`, unless its path is in `optional`.
///
/// Paths are dotted, with `[]` for array elements (`triggers[].actions[].name`); a
/// pattern ending in `.*` covers everything below it. Arrays are compared through the
/// union of their elements.
pub(crate) fn assert_shape(ours: &Value, example: &Value, extra: &[&str], optional: &[&str]) {
    let mut errors = Vec::new();
    uses(ours, example, "", extra, &mut errors);
    covers(ours, example, "", optional, &mut errors);
    assert!(
        errors.is_empty(),
        "{}\n--- ours:\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(ours).unwrap_or_default()
    );
}

fn uses(ours: &Value, ex: &Value, path: &str, extra: &[&str], errors: &mut Vec<String>) {
    if ex.is_null() {
        return;
    }
    if kind(ours) != kind(ex) {
        errors.push(format!(
            "{path}: ours is {}, the example's is {}",
            kind(ours),
            kind(ex)
        ));
        return;
    }
    match (ours, ex) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = join(path, k);
                if matches(&p, extra) {
                    continue;
                }
                match b.get(k) {
                    Some(e) => uses(v, e, &p, extra, errors),
                    None => errors.push(format!("{p}: not in the example")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            // The union of the example's elements.
            let e = merged(b);
            let p = format!("{path}[]");
            for v in a {
                uses(v, &e, &p, extra, errors);
            }
        }
        _ => {}
    }
}

fn covers(ours: &Value, ex: &Value, path: &str, optional: &[&str], errors: &mut Vec<String>) {
    match (ours, ex) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, e) in b {
                let p = join(path, k);
                if matches(&p, optional) {
                    continue;
                }
                match a.get(k) {
                    Some(v) => covers(v, e, &p, optional, errors),
                    None => errors.push(format!("{p}: in the example, missing from ours")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if !a.is_empty() => {
            covers(
                &merged(a),
                &merged(b),
                &format!("{path}[]"),
                optional,
                errors,
            );
        }
        _ => {}
    }
}

/// Every key path of an object (`a`, `a.b`, `a.b[]`, ...), for messages.
#[allow(dead_code)]
pub(crate) fn key_paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let p = join(path, k);
                    out.push(p.clone());
                    walk(c, &p, out);
                }
            }
            Value::Array(a) => {
                for c in a {
                    walk(c, &format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_comparison_catches_extra_and_missing_keys() {
    let ex = serde_json::json!({"a": {"b": 1, "c": [{"d": "x"}, {"e": true}]}, "f": null});
    assert_shape(
        &serde_json::json!({"a": {"b": 2, "c": [{"d": "y", "e": false}]}, "f": {"g": 1}}),
        &ex,
        &[],
        &[],
    );
    let r = std::panic::catch_unwind(|| {
        assert_shape(
            &serde_json::json!({"a": {"b": "2", "z": 1}, "f": [{"h": 1}]}),
            &serde_json::json!({"a": {"b": 1, "c": 1}, "f": [{"g": 1}]}),
            &[],
            &[],
        );
    });
    let msg = r
        .unwrap_err()
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("a.b: ours is string"), "{msg}");
    assert!(msg.contains("a.z: not in the example"), "{msg}");
    assert!(msg.contains("a.c: in the example, missing"), "{msg}");
    assert!(msg.contains("f[].h: not in the example"), "{msg}");
    assert!(msg.contains("f[].g: in the example, missing"), "{msg}");
    assert_shape(
        &serde_json::json!({"a": {"b": 2, "z": {"y": 1}}}),
        &ex,
        &["a.z.*"],
        &["a.c", "f"],
    );
}
