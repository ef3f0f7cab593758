//! OpenSearch Dashboards saved objects: index patterns, visualisations and a
//! dashboard, as an NDJSON file for `POST api/saved_objects/_import` (or the Saved
//! objects page's import button).
//!
//! Each line is one saved object in the export format of OSD-OPENAPI-EX
//! (`{attributes, id, migrationVersion, references, type}`). Objects refer to each
//! other through `references` (`kibanaSavedObjectMeta.searchSourceJSON.index` for a
//! visualisation's index pattern, `panel_N` for a dashboard's panels), never by
//! inline IDs. IDs are fixed (`waflog-...`), so importing again with
//! `overwrite=true` updates the same objects.
//!
//! | object                            | index   | shows                                                     |
//! |-----------------------------------|---------|-----------------------------------------------------------|
//! | `waflog-logs` (index pattern)     | logs    | time field `timestamp`, fields from [`super::logs_template`] |
//! | `waflog-results` (index pattern)  | results | time field `data_start_time`, fields from [`super::results_template`] |
//! | `waflog-anomalies-by-detector`    | results | donut: results with `anomaly_grade > 0` by `detector_name` |
//! | `waflog-anomaly-grade`            | results | line: maximum grade over time, one line per detector      |
//! | `waflog-indicator-trends`         | logs    | line: sum of each detector's indicator over time          |
//! | `waflog-top-unknown-countries`    | logs    | table: `httpRequest.country` of records with `UNK_country` = 1 |
//! | `waflog-top-unknown-sources`      | logs    | table: `httpSourceName` of records with `UNK_source` = 1  |
//! | `waflog-dashboard`                | -       | the five above                                            |

use serde_json::{Map, Value, json};

use super::{OpenSearchError, invalid, parse_json};
use crate::detect::DetectorSpec;
use crate::detect::spec::Aggregation;
use crate::names;

/// ID of the logs index pattern.
const LOGS_PATTERN_ID: &str = "waflog-logs";
/// ID of the results index pattern.
const RESULTS_PATTERN_ID: &str = "waflog-results";
/// ID of the dashboard.
const DASHBOARD_ID: &str = "waflog-dashboard";
/// Reference name of a visualisation's index pattern.
const INDEX_REF: &str = "kibanaSavedObjectMeta.searchSourceJSON.index";
/// Migration versions the objects are already in (OpenSearch Dashboards carries
/// Kibana 7.10's saved-object migrations; the index pattern's is the fixture's).
const INDEX_PATTERN_VERSION: &str = "7.6.0";
const VISUALIZATION_VERSION: &str = "7.10.0";
const DASHBOARD_VERSION: &str = "7.9.3";

/// Indicators charted when no detector sums one: the "bad" side of each pair.
const DEFAULT_TRENDS: [&str; 5] = [
    names::UNK_COUNTRY,
    names::B_ACTION,
    names::B_HTTPSTATUS,
    names::UNCOMMON_METHOD,
    names::UNK_SOURCE,
];

/// The saved objects for `logs_pattern` (e.g. `waf-logs*`) and `results_pattern`
/// (e.g. `waf-results*`), one JSON object per line, newline-terminated.
///
/// The indicator trends chart the indicators the `detectors` sum (the seed's:
/// `B_action`, `UNK_country`, `B_httpstatus`, `uncommon_method`, `UNK_source`), or
/// those five when none does.
///
/// ```
/// use waflog_core::detect::DetectorSpec;
/// let ndjson = waflog_core::opensearch::dashboards_ndjson("waf-logs*", "waf-results*", &DetectorSpec::defaults());
/// let objects: Vec<serde_json::Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
/// assert_eq!(objects.len(), 8);
/// assert_eq!(objects[0]["type"], "index-pattern");
/// assert_eq!(objects[7]["type"], "dashboard");
/// ```
pub fn dashboards_ndjson(
    logs_pattern: &str,
    results_pattern: &str,
    detectors: &[DetectorSpec],
) -> String {
    let logs_fields = pattern_fields(&super::logs_template(logs_pattern));
    let results_fields = pattern_fields(&super::results_template(results_pattern));
    let mut objects = vec![
        index_pattern(
            LOGS_PATTERN_ID,
            logs_pattern,
            names::TIMESTAMP,
            &logs_fields,
        ),
        index_pattern(
            RESULTS_PATTERN_ID,
            results_pattern,
            "data_start_time",
            &results_fields,
        ),
    ];
    let visualisations = [
        visualization(
            "waflog-anomalies-by-detector",
            "waflog: anomalies by detector",
            RESULTS_PATTERN_ID,
            "anomaly_grade > 0",
            json!({
                "type": "pie",
                "params": {
                    "type": "pie",
                    "addTooltip": true,
                    "addLegend": true,
                    "legendPosition": "right",
                    "isDonut": true,
                    "labels": {"show": true, "values": true, "last_level": true, "truncate": 100}
                },
                "aggs": [
                    count_metric(),
                    terms("2", "segment", "detector_name", 20, "Detector")
                ]
            }),
        ),
        visualization(
            "waflog-anomaly-grade",
            "waflog: anomaly grade by detector",
            RESULTS_PATTERN_ID,
            "",
            json!({
                "type": "line",
                "params": line_params(&[("1", "Max anomaly grade")], "Anomaly grade"),
                "aggs": [
                    {"id": "1", "enabled": true, "type": "max", "schema": "metric",
                     "params": {"field": "anomaly_grade", "customLabel": "Max anomaly grade"}},
                    date_histogram("2", "data_start_time"),
                    terms("3", "group", "detector_name", 10, "Detector")
                ]
            }),
        ),
        indicator_trends(detectors),
        visualization(
            "waflog-top-unknown-countries",
            "waflog: top unknown countries",
            LOGS_PATTERN_ID,
            &format!("{} : 1", names::UNK_COUNTRY),
            table(
                &format!("{}.{}", names::HTTP_REQUEST, names::COUNTRY),
                "Country",
            ),
        ),
        visualization(
            "waflog-top-unknown-sources",
            "waflog: top unknown sources",
            LOGS_PATTERN_ID,
            &format!("{} : 1", names::UNK_SOURCE),
            table(names::HTTP_SOURCE_NAME, "Source"),
        ),
    ];
    // Panels on a 48-column grid: donut and grade line, trends, two tables.
    let layout = [
        (0, 0, 16),
        (16, 0, 32),
        (0, 15, 48),
        (0, 30, 24),
        (24, 30, 24),
    ];
    let mut panels = Vec::new();
    let mut references = Vec::new();
    for (i, (v, (x, y, w))) in visualisations.iter().zip(layout).enumerate() {
        let reference = format!("panel_{i}");
        panels.push(json!({
            "version": "7.10.2",
            "gridData": {"x": x, "y": y, "w": w, "h": 15, "i": (i + 1).to_string()},
            "panelIndex": (i + 1).to_string(),
            "embeddableConfig": {},
            "panelRefName": reference
        }));
        references.push(json!({"name": reference, "type": "visualization", "id": v["id"]}));
    }
    objects.extend(visualisations);
    objects.push(saved_object(
        DASHBOARD_ID,
        "dashboard",
        DASHBOARD_VERSION,
        json!({
            "title": "waflog: WAF anomalies",
            "hits": 0,
            "description": "Anomalies found by waflog's detectors and the indicators behind them",
            "panelsJSON": Value::Array(panels).to_string(),
            "optionsJSON": json!({"hidePanelTitles": false, "useMargins": true}).to_string(),
            "version": 1,
            "timeRestore": true,
            "timeTo": "now",
            "timeFrom": "now-24h",
            "refreshInterval": {"pause": false, "value": 60000},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json!({"query": {"language": "kuery", "query": ""}, "filter": []}).to_string()
            }
        }),
        references,
    ));
    let mut out = String::new();
    for o in objects {
        out.push_str(&o.to_string());
        out.push('\n');
    }
    out
}

fn saved_object(
    id: &str,
    kind: &str,
    migration: &str,
    attributes: Value,
    references: Vec<Value>,
) -> Value {
    json!({
        "attributes": attributes,
        "id": id,
        "migrationVersion": {kind: migration},
        "references": references,
        "type": kind,
    })
}

fn index_pattern(id: &str, title: &str, time_field: &str, fields: &[Value]) -> Value {
    saved_object(
        id,
        "index-pattern",
        INDEX_PATTERN_VERSION,
        json!({
            "fields": Value::Array(fields.to_vec()).to_string(),
            "timeFieldName": time_field,
            "title": title,
        }),
        Vec::new(),
    )
}

fn visualization(id: &str, title: &str, pattern_id: &str, query: &str, vis: Value) -> Value {
    let mut state = json!({"title": title});
    if let (Some(s), Some(v)) = (state.as_object_mut(), vis.as_object()) {
        s.extend(v.clone());
    }
    saved_object(
        id,
        "visualization",
        VISUALIZATION_VERSION,
        json!({
            "title": title,
            "visState": state.to_string(),
            "uiStateJSON": "{}",
            "description": "",
            "version": 1,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json!({
                    "query": {"query": query, "language": "kuery"},
                    "filter": [],
                    "indexRefName": INDEX_REF
                }).to_string()
            }
        }),
        vec![json!({"name": INDEX_REF, "type": "index-pattern", "id": pattern_id})],
    )
}

fn count_metric() -> Value {
    json!({"id": "1", "enabled": true, "type": "count", "schema": "metric", "params": {}})
}

fn terms(id: &str, schema: &str, field: &str, size: u32, label: &str) -> Value {
    json!({"id": id, "enabled": true, "type": "terms", "schema": schema, "params": {
        "field": field,
        "size": size,
        "order": "desc",
        "orderBy": "1",
        "otherBucket": false,
        "otherBucketLabel": "Other",
        "missingBucket": false,
        "missingBucketLabel": "Missing",
        "customLabel": label
    }})
}

fn date_histogram(id: &str, field: &str) -> Value {
    json!({"id": id, "enabled": true, "type": "date_histogram", "schema": "segment", "params": {
        "field": field,
        "interval": "auto",
        "min_doc_count": 1,
        "extended_bounds": {}
    }})
}

fn table(field: &str, label: &str) -> Value {
    json!({
        "type": "table",
        "params": {
            "perPage": 10,
            "showPartialRows": false,
            "showMetricsAtAllLevels": false,
            "sort": {"columnIndex": null, "direction": null},
            "showTotal": false,
            "totalFunc": "sum",
            "percentageCol": ""
        },
        "aggs": [count_metric(), terms("2", "bucket", field, 10, label)]
    })
}

/// Line-chart parameters (as in OpenSearch Dashboards' sample visualisations), one
/// series per `(metric id, label)`.
fn line_params(series: &[(&str, &str)], axis: &str) -> Value {
    let series: Vec<Value> = series
        .iter()
        .map(|(id, label)| {
            json!({
                "show": true,
                "type": "line",
                "mode": "normal",
                "data": {"label": label, "id": id},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": true,
                "lineWidth": 2,
                "interpolate": "linear",
                "showCircles": true
            })
        })
        .collect();
    json!({
        "type": "line",
        "grid": {"categoryLines": false},
        "categoryAxes": [{
            "id": "CategoryAxis-1", "type": "category", "position": "bottom", "show": true,
            "style": {}, "scale": {"type": "linear"},
            "labels": {"show": true, "filter": true, "truncate": 100}, "title": {}
        }],
        "valueAxes": [{
            "id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value", "position": "left",
            "show": true, "style": {}, "scale": {"type": "linear", "mode": "normal"},
            "labels": {"show": true, "rotate": 0, "filter": false, "truncate": 100},
            "title": {"text": axis}
        }],
        "seriesParams": series,
        "addTooltip": true,
        "addLegend": true,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": false,
        "labels": {}
    })
}

fn indicator_trends(detectors: &[DetectorSpec]) -> Value {
    let mut indicators: Vec<&str> = Vec::new();
    for f in detectors.iter().flat_map(|d| &d.features) {
        if let (Aggregation::Sum, Some(field)) = (f.aggregation, f.field.as_deref())
            && let Some(i) = names::INDICATORS.iter().copied().find(|i| *i == field)
            && !indicators.contains(&i)
        {
            indicators.push(i);
        }
    }
    if indicators.is_empty() {
        indicators = DEFAULT_TRENDS.to_vec();
    }
    let ids: Vec<String> = (1..=indicators.len()).map(|i| i.to_string()).collect();
    let mut aggs: Vec<Value> = indicators
        .iter()
        .zip(&ids)
        .map(|(field, id)| {
            json!({"id": id, "enabled": true, "type": "sum", "schema": "metric",
                   "params": {"field": field, "customLabel": field}})
        })
        .collect();
    aggs.push(date_histogram(
        &(indicators.len() + 1).to_string(),
        names::TIMESTAMP,
    ));
    let series: Vec<(&str, &str)> = ids
        .iter()
        .map(String::as_str)
        .zip(indicators.iter().copied())
        .collect();
    visualization(
        "waflog-indicator-trends",
        "waflog: indicator trends",
        LOGS_PATTERN_ID,
        "",
        json!({
            "type": "line",
            "params": line_params(&series, "Records per interval"),
            "aggs": aggs
        }),
    )
}

/// The index pattern's field list for a template's mapping: every mapped field
/// outside `nested` objects and disabled objects, multi-fields included, plus the
/// metadata fields, in the shape of the fixture's `fields`.
fn pattern_fields(template: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, es_type, aggregatable) in [
        ("_id", "_id", true),
        ("_index", "_index", true),
        ("_score", "number", false),
        ("_source", "_source", false),
    ] {
        let kind = match es_type {
            "number" => "number",
            "_source" => "_source",
            _ => "string",
        };
        let mut f = json!({
            "count": 0, "name": name, "type": kind,
            "scripted": false, "searchable": name != "_score" && name != "_source",
            "aggregatable": aggregatable, "readFromDocValues": false
        });
        if name != "_score" {
            f["esTypes"] = json!([es_type]);
        }
        out.push(f);
    }
    if let Some(p) = template["template"]["mappings"]["properties"].as_object() {
        walk(p, "", &mut out);
    }
    out
}

fn walk(properties: &Map<String, Value>, prefix: &str, out: &mut Vec<Value>) {
    for (key, m) in properties {
        let name = format!("{prefix}{key}");
        let es_type = m.get("type").and_then(Value::as_str).unwrap_or("object");
        if es_type == "nested" || m.get("enabled") == Some(&Value::Bool(false)) {
            continue;
        }
        if let Some(children) = m.get("properties").and_then(Value::as_object) {
            walk(children, &format!("{name}."), out);
            continue;
        }
        let Some(f) = field(&name, es_type) else {
            continue;
        };
        out.push(f);
        if let Some(multi) = m.get("fields").and_then(Value::as_object) {
            for (sub, sm) in multi {
                let t = sm.get("type").and_then(Value::as_str).unwrap_or("keyword");
                if let Some(mut f) = field(&format!("{name}.{sub}"), t) {
                    f["subType"] = json!({"multi": {"parent": name}});
                    out.push(f);
                }
            }
        }
    }
}

fn field(name: &str, es_type: &str) -> Option<Value> {
    let (kind, aggregatable) = match es_type {
        "keyword" => ("string", true),
        "text" => ("string", false),
        "integer" | "long" | "short" | "byte" | "double" | "float" | "half_float"
        | "scaled_float" => ("number", true),
        "date" => ("date", true),
        "ip" => ("ip", true),
        "boolean" => ("boolean", true),
        _ => return None,
    };
    Some(json!({
        "count": 0,
        "name": name,
        "type": kind,
        "esTypes": [es_type],
        "scripted": false,
        "searchable": true,
        "aggregatable": aggregatable,
        "readFromDocValues": aggregatable
    }))
}

/// The `multipart/form-data` request of `POST api/saved_objects/_import` for an
/// NDJSON file: `(content type, body)`. One part named `file`, whose file name must
/// end in `.ndjson` (OSD-IMPORT-ROUTE), laid out as in OSD-IMPORT-TEST. Send it with
/// the `osd-xsrf: true` header, which Dashboards requires of every non-GET request.
///
/// Errors: a file name without `.ndjson`, or a boundary that is empty, longer than
/// 70 characters, not plain ASCII, or found in the content.
pub fn saved_objects_multipart(
    ndjson: &str,
    boundary: &str,
    filename: &str,
) -> Result<(String, Vec<u8>), OpenSearchError> {
    if boundary.is_empty()
        || boundary.len() > 70
        || !boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&b))
    {
        return Err(OpenSearchError::Import(format!(
            "boundary `{boundary}` must be 1 to 70 letters, digits or '()+_,-./:=?"
        )));
    }
    if ndjson.contains(&format!("--{boundary}")) {
        return Err(OpenSearchError::Import(format!(
            "boundary `{boundary}` occurs in the file; choose another"
        )));
    }
    if !filename.ends_with(".ndjson") || filename.contains(['"', '\r', '\n']) {
        return Err(OpenSearchError::Import(format!(
            "file name `{filename}` must end in .ndjson and hold no quotes or line breaks"
        )));
    }
    let mut body = Vec::with_capacity(ndjson.len() + 200);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/ndjson\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(ndjson.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--").as_bytes());
    Ok((format!("multipart/form-data; boundary={boundary}"), body))
}

/// The outcome of a saved-objects import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// True when every object was imported.
    pub success: bool,
    /// Objects imported.
    pub success_count: u64,
    /// One line per object that failed: `type id: error` (`conflict`,
    /// `missing_references: index-pattern my-pattern` ...).
    pub errors: Vec<String>,
}

/// Reads the response of `POST api/saved_objects/_import` (HTTP 200 even when some
/// objects fail; see `errors`).
pub fn parse_import_response(body: &[u8]) -> Result<ImportReport, OpenSearchError> {
    let v = parse_json(body, "saved-objects import")?;
    let success = v
        .get("success")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid("saved-objects import", "no `success`".into()))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let errors = v
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let error = e.get("error").cloned().unwrap_or(Value::Null);
                    let mut line = format!(
                        "{} {}: {}",
                        text(e, "type"),
                        text(e, "id"),
                        text(&error, "type")
                    );
                    if let Some(refs) = error.get("references").and_then(Value::as_array) {
                        let refs: Vec<String> = refs
                            .iter()
                            .map(|r| format!("{} {}", text(r, "type"), text(r, "id")))
                            .collect();
                        line.push_str(&format!(" ({})", refs.join(", ")));
                    }
                    line
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ImportReport {
        success,
        success_count: v.get("successCount").and_then(Value::as_u64).unwrap_or(0),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::opensearch::testutil::{assert_shape, fixture};

    fn objects() -> Vec<Value> {
        dashboards_ndjson("waf-logs*", "waf-results*", &DetectorSpec::defaults())
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn json_attr(o: &Value, path: &[&str]) -> Value {
        let mut v = &o["attributes"];
        for p in path {
            v = &v[p];
        }
        serde_json::from_str(v.as_str().unwrap()).unwrap()
    }

    #[test]
    fn every_line_parses_ids_are_unique_and_references_resolve() {
        let text = dashboards_ndjson("waf-logs*", "waf-results*", &DetectorSpec::defaults());
        assert!(text.ends_with('\n'));
        assert_eq!(
            text,
            dashboards_ndjson("waf-logs*", "waf-results*", &DetectorSpec::defaults())
        );
        let objects = objects();
        let ids: BTreeSet<(String, String)> = objects
            .iter()
            .map(|o| {
                (
                    o["type"].as_str().unwrap().to_string(),
                    o["id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(ids.len(), objects.len(), "duplicate ids");
        for o in &objects {
            assert!(o["id"].as_str().unwrap().starts_with("waflog-"));
            let refs = o["references"].as_array().unwrap();
            let names: BTreeSet<&str> = refs.iter().map(|r| r["name"].as_str().unwrap()).collect();
            assert_eq!(
                names.len(),
                refs.len(),
                "{}: reference names repeat",
                o["id"]
            );
            for r in refs {
                let key = (
                    r["type"].as_str().unwrap().to_string(),
                    r["id"].as_str().unwrap().to_string(),
                );
                assert!(
                    ids.contains(&key),
                    "{}: {key:?} is not in the file",
                    o["id"]
                );
            }
            match o["type"].as_str().unwrap() {
                "visualization" => {
                    let source = json_attr(o, &["kibanaSavedObjectMeta", "searchSourceJSON"]);
                    assert!(names.contains(source["indexRefName"].as_str().unwrap()));
                    assert!(source.get("index").is_none(), "inline index id");
                    let state = json_attr(o, &["visState"]);
                    assert_eq!(state["title"], o["attributes"]["title"]);
                    // Every field a visualisation aggregates is in its index pattern,
                    // and aggregatable there.
                    let pattern = &refs[0]["id"];
                    let ip = objects.iter().find(|p| &p["id"] == pattern).unwrap();
                    let fields: BTreeMap<String, Value> = json_attr(ip, &["fields"])
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| (f["name"].as_str().unwrap().to_string(), f.clone()))
                        .collect();
                    for agg in state["aggs"].as_array().unwrap() {
                        if let Some(field) = agg["params"]["field"].as_str() {
                            assert_eq!(fields[field]["aggregatable"], true, "{field}");
                        }
                    }
                }
                "dashboard" => {
                    let panels = json_attr(o, &["panelsJSON"]);
                    let panel_refs: BTreeSet<&str> = panels
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["panelRefName"].as_str().unwrap())
                        .collect();
                    assert_eq!(panel_refs, names);
                    assert_eq!(panel_refs.len(), 5);
                }
                "index-pattern" => {}
                other => panic!("unexpected type {other}"),
            }
        }
    }

    /// The index-pattern lines have the fixture's shape (OSD-OPENAPI-EX, line 1);
    /// `updated_at` and `version` are written by the server on export.
    #[test]
    fn index_patterns_match_the_documented_object() {
        let example: Value =
            serde_json::from_str(fixture("dashboards/index-pattern-saved-object.ndjson").trim())
                .unwrap();
        let example_fields = json_attr(&example, &["fields"]);
        let objects = objects();
        for (o, title, time) in [
            (&objects[0], "waf-logs*", "timestamp"),
            (&objects[1], "waf-results*", "data_start_time"),
        ] {
            assert_shape(o, &example, &[], &["updated_at", "version"]);
            assert_eq!(o["migrationVersion"], example["migrationVersion"]);
            assert_eq!(o["attributes"]["title"], title);
            assert_eq!(o["attributes"]["timeFieldName"], time);
            let fields = json_attr(o, &["fields"]);
            // `subType` (multi-fields) is in OSD's sample-data index pattern.
            assert_shape(&fields, &example_fields, &["[].subType"], &["[].esTypes"]);
            let time_field = fields
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == time)
                .unwrap();
            let mut expected = example_fields[0].clone();
            expected["name"] = time.into();
            assert_eq!(time_field, &expected);
        }
        let logs = json_attr(&objects[0], &["fields"]);
        let by_name = |n: &str| {
            logs.as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == n)
                .cloned()
        };
        assert_eq!(by_name("httpRequest.clientIp").unwrap()["type"], "ip");
        assert_eq!(by_name("UNK_country").unwrap()["type"], "number");
        assert_eq!(
            by_name("httpRequest.uri.text").unwrap()["subType"]["multi"]["parent"],
            "httpRequest.uri"
        );
        assert!(by_name("ruleGroupList.customerConfig").is_none());
        let results = json_attr(&objects[1], &["fields"]);
        assert!(
            !results
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"].as_str().unwrap().starts_with("feature_data"))
        );
    }

    #[test]
    fn indicator_trends_follow_the_detectors() {
        let objects = objects();
        let trends = objects
            .iter()
            .find(|o| o["id"] == "waflog-indicator-trends")
            .unwrap();
        let state = json_attr(trends, &["visState"]);
        let fields: Vec<&str> = state["aggs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "sum")
            .map(|a| a["params"]["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "B_action",
                "UNK_country",
                "B_httpstatus",
                "uncommon_method",
                "UNK_source"
            ]
        );
        assert_eq!(state["params"]["seriesParams"].as_array().unwrap().len(), 5);
        let one = dashboards_ndjson("l", "r", &[DetectorSpec::indicator_sum("x", "K_country")]);
        assert!(one.contains(r#"\"field\":\"K_country\""#));
        assert!(!one.contains(r#"\"field\":\"B_action\""#));
        let none = dashboards_ndjson("l", "r", &[]);
        assert!(none.contains(r#"\"field\":\"UNK_source\""#));
        let countries = objects
            .iter()
            .find(|o| o["id"] == "waflog-top-unknown-countries")
            .unwrap();
        assert_eq!(
            json_attr(countries, &["kibanaSavedObjectMeta", "searchSourceJSON"])["query"]["query"],
            "UNK_country : 1"
        );
    }

    /// The multipart layout is byte for byte the one OSD's own import test sends
    /// (`request-multipart.body`, boundary `EXAMPLE`, two objects joined by CRLF).
    #[test]
    fn multipart_matches_the_documented_request() {
        let content = "{\"type\":\"index-pattern\",\"id\":\"my-pattern\",\"attributes\":{\"title\":\"my-pattern-*\"}}\r\n{\"type\":\"dashboard\",\"id\":\"my-dashboard\",\"attributes\":{\"title\":\"Look at my dashboard\"}}";
        let (content_type, body) =
            saved_objects_multipart(content, "EXAMPLE", "export.ndjson").unwrap();
        assert_eq!(content_type, "multipart/form-data; boundary=EXAMPLE");
        assert_eq!(
            body,
            fixture("dashboards/saved-objects-import/request-multipart.body").as_bytes()
        );
        assert!(saved_objects_multipart(content, "EXAMPLE", "export.json").is_err());
        assert!(saved_objects_multipart("--EXAMPLE", "EXAMPLE", "a.ndjson").is_err());
        assert!(saved_objects_multipart(content, "", "a.ndjson").is_err());
        assert!(saved_objects_multipart(content, "a b", "a.ndjson").is_err());
    }

    #[test]
    fn import_responses() {
        let r = |f: &str| parse_import_response(fixture(f).as_bytes()).unwrap();
        assert_eq!(
            r("dashboards/saved-objects-import/response-ok.json"),
            ImportReport {
                success: true,
                success_count: 1,
                errors: vec![]
            }
        );
        assert_eq!(
            r("dashboards/saved-objects-import/response-two-objects.json").success_count,
            2
        );
        assert_eq!(
            r("dashboards/saved-objects-import/response-overwrite.json").success_count,
            2
        );
        assert_eq!(
            r("dashboards/saved-objects-import/response-conflict.json"),
            ImportReport {
                success: false,
                success_count: 1,
                errors: vec!["index-pattern my-pattern: conflict".into()]
            }
        );
        assert_eq!(
            r("dashboards/saved-objects-import/response-missing-references.json").errors,
            ["visualization my-vis: missing_references (index-pattern my-pattern)"]
        );
        assert!(
            parse_import_response(br#"{"statusCode":400,"error":"Bad Request","message":"x"}"#)
                .is_err()
        );
    }
}
