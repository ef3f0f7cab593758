//! Contract tests of the OpenSearch sink (`--output opensearch+http://...`) against
//! an HTTP server in this process (wiremock on 127.0.0.1) that answers with the
//! shapes of the official examples in fixtures/opensearch (bulk responses with
//! per-item failures, index template acknowledgements) and records every request.
//! No OpenSearch distribution can run on these machines; a live suite against a
//! real cluster is in tests/opensearch_live.rs (run when WAFLOG_OPENSEARCH_URL is
//! set).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

mod common;
use common::{lines, run};

/// A JSON file of fixtures/opensearch.
fn fixture(rel: &str) -> serde_json::Value {
    let p = common::fixture(&format!("opensearch/{rel}"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// A `_bulk` responder: per document (by `httpRequest.requestId`), the statuses
/// to answer in order (then 201); documents marked `"uri":"/reject"` get a 400
/// mapping error every time; the first `fail_requests` requests get a 503.
struct Bulk {
    plan: Mutex<HashMap<String, Vec<u16>>>,
    fail_requests: Mutex<usize>,
    /// The status of those whole-request failures.
    fail_status: u16,
    /// The shape of a failed item, from the official partial-failure example.
    error_item: serde_json::Value,
}

impl Respond for Bulk {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        {
            let mut f = self.fail_requests.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return ResponseTemplate::new(self.fail_status)
                    .set_body_string("{\"error\":\"unavailable\"}");
            }
        }
        let text = String::from_utf8_lossy(&req.body).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            let action: serde_json::Value = serde_json::from_str(pair[0]).unwrap();
            let index = action["index"]["_index"].as_str().unwrap().to_string();
            let doc: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
            let id = doc["httpRequest"]["requestId"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let status = if doc["httpRequest"]["uri"] == "/reject" {
                400
            } else {
                let mut plan = self.plan.lock().unwrap();
                match plan.get_mut(&id) {
                    Some(v) if !v.is_empty() => v.remove(0),
                    _ => 201,
                }
            };
            let item = if status == 201 {
                serde_json::json!({ "index": {
                    "_index": index, "_id": id, "_version": 1, "result": "created",
                    "_shards": { "total": 1, "successful": 1, "failed": 0 },
                    "_seq_no": 0, "_primary_term": 1, "status": 201 } })
            } else {
                errors = true;
                let (kind, reason) = if status == 400 {
                    (
                        "mapper_parsing_exception",
                        "failed to parse field [timestamp] of type [date] in document",
                    )
                } else {
                    (
                        "es_rejected_execution_exception",
                        "rejected execution of coordinating operation",
                    )
                };
                let mut e = self.error_item.clone();
                e["_index"] = index.into();
                e["_id"] = id.into();
                e["status"] = status.into();
                e["error"]["type"] = kind.into();
                e["error"]["reason"] = reason.into();
                serde_json::json!({ "index": e })
            };
            items.push(item);
        }
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({ "took": 3, "errors": errors, "items": items }))
    }
}

struct Setup {
    rt: tokio::runtime::Runtime,
    server: MockServer,
    dir: tempfile::TempDir,
}

fn setup(plan: HashMap<String, Vec<u16>>, fail_requests: usize) -> Setup {
    setup_with(plan, fail_requests, 503)
}

fn setup_with(plan: HashMap<String, Vec<u16>>, fail_requests: usize, fail_status: u16) -> Setup {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start());
    let partial = fixture("bulk/response-partial-failure.json");
    let error_item = partial["items"][0]["update"].clone();
    rt.block_on(async {
        Mock::given(method("PUT"))
            .and(path("/_index_template/waflog-logs-waf"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(fixture("index-template/response.json")),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/_bulk"))
            .respond_with(Bulk {
                plan: Mutex::new(plan),
                fail_requests: Mutex::new(fail_requests),
                fail_status,
                error_item,
            })
            .mount(&server)
            .await;
    });
    Setup {
        rt,
        server,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// 2,000 generated records (about 40 s) starting 20 s before midnight; those at the
/// positions in `reject` get the uri `/reject`, which the server cannot map.
fn logs(dir: &Path, reject: std::ops::Range<usize>) -> (PathBuf, Vec<serde_json::Value>) {
    let p = dir.join("logs.ndjson");
    let (code, _, err) = run(common::waflog_env()
        .args(["generate", "--seed", "3", "--start", "2024-05-01T23:59:40Z"])
        .args(["--count", "2000", "-o"])
        .arg(&p));
    assert_eq!(code, 0, "{err}");
    let mut recs = lines(&p);
    for i in reject {
        recs[i]["httpRequest"]["uri"] = "/reject".into();
    }
    let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&p, text).unwrap();
    (p, recs)
}

/// How many times each document (by `httpRequest.requestId`) was sent in these
/// `_bulk` requests.
fn sends_per_document(bulks: &[&Request]) -> HashMap<String, usize> {
    let mut sends = HashMap::new();
    for r in bulks {
        for pair in String::from_utf8_lossy(&r.body)
            .lines()
            .collect::<Vec<_>>()
            .chunks(2)
        {
            let doc: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
            let id = doc["httpRequest"]["requestId"]
                .as_str()
                .unwrap()
                .to_string();
            *sends.entry(id).or_default() += 1;
        }
    }
    sends
}

fn requests(s: &Setup) -> Vec<Request> {
    s.rt.block_on(s.server.received_requests()).unwrap()
}

#[test]
fn bulk_indexing_retries_throttled_items_and_dead_letters_rejected_ones() {
    let d = tempfile::tempdir().unwrap();
    // Three documents the cluster cannot map.
    let (input, recs) = logs(d.path(), 10..13);
    let id = |i: usize| {
        recs[i]["httpRequest"]["requestId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Five documents are throttled (429) twice, one fails once with a 503; the
    // first request fails as a whole (503).
    let mut plan = HashMap::new();
    for i in 100..105 {
        plan.insert(id(i), vec![429, 429]);
    }
    plan.insert(id(1500), vec![503]);
    let s = setup(plan, 1);
    let dead = s.dir.path().join("dead.ndjson");
    let url = format!(
        "opensearch+http://127.0.0.1:{}/waf",
        s.server.address().port()
    );
    let (code, _, err) = run(common::waflog_env()
        .arg("transform")
        .arg(&input)
        .args(["--bulk-docs", "500", "-o", &url, "--dead-letter"])
        .arg(&dead));
    assert_eq!(code, 0, "{err}");
    let reqs = requests(&s);
    // The template first, then the bulk requests.
    assert_eq!(reqs[0].method.as_str(), "PUT");
    assert_eq!(reqs[0].url.path(), "/_index_template/waflog-logs-waf");
    let template: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    // Same top-level shape as the documented PUT _index_template request.
    let documented = fixture("index-template/request.json");
    for key in template.as_object().unwrap().keys() {
        assert!(
            documented.get(key).is_some(),
            "template key {key} is not in the documented request"
        );
    }
    assert_eq!(
        template["template"]["mappings"]["properties"]["timestamp"]["type"],
        "date"
    );
    assert_eq!(
        template["template"]["mappings"]["properties"]["httpRequest"]["properties"]["clientIp"]["type"],
        "ip"
    );
    let bulks: Vec<&Request> = reqs.iter().filter(|r| r.url.path() == "/_bulk").collect();
    for r in &bulks {
        assert_eq!(r.method.as_str(), "POST");
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "application/x-ndjson"
        );
        assert!(r.body.ends_with(b"\n"), "bulk bodies end with a newline");
        let first = r.body.split(|&b| b == b'\n').next().unwrap();
        assert_eq!(first, br#"{"index":{"_index":"waf"}}"#);
    }
    // Every document indexed exactly once, except the three rejected.
    let indexed = sends_per_document(&bulks);
    let sent: usize = indexed.values().sum();
    assert_eq!(indexed.len(), 2000);
    // 4 requests of 500 + the 503'd first request again + resends of 11 items.
    assert_eq!(sent, 2000 + 500 + 5 * 2 + 1, "{err}");
    let d = lines(&dead);
    assert_eq!(d.len(), 3, "{d:?}");
    assert!(d.iter().all(|e| {
        e["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 400 mapper_parsing_exception")
    }));
    assert!(d[0]["raw"].as_str().unwrap().contains("/reject"));
    assert!(
        err.contains("1997 documents indexed in") && err.contains("3 rejected"),
        "{err}"
    );
    assert!(err.contains("3 dead-lettered"), "{err}");
}

#[test]
fn daily_indices_follow_event_time_and_errors_are_clear() {
    let s = setup(HashMap::new(), 0);
    let (input, _) = logs(s.dir.path(), 0..0);
    let url = format!(
        "opensearch+http://127.0.0.1:{}/waf",
        s.server.address().port()
    );
    let (code, _, err) = run(common::waflog_env().arg("transform").arg(&input).args([
        "--index-suffix",
        "daily",
        "-o",
        &url,
    ]));
    assert_eq!(code, 0, "{err}");
    let mut seen: Vec<String> = requests(&s)
        .iter()
        .filter(|r| r.url.path() == "/_bulk")
        .flat_map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .step_by(2)
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["index"]["_index"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    seen.sort();
    seen.dedup();
    // The records start 20 s before midnight.
    assert_eq!(seen, ["waf-2024.05.01", "waf-2024.05.02"]);
    // Unreachable cluster: exit 2 with the address in the message.
    let (code, _, err) = run(common::waflog_env()
        .arg("transform")
        .arg(&input)
        .args(["-o", "opensearch+http://127.0.0.1:9/waf"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    // A bad index name is refused before anything is sent.
    let (code, _, err) = run(common::waflog_env()
        .arg("transform")
        .arg(&input)
        .args(["-o", "opensearch+http://127.0.0.1:9/Bad*Index"]));
    assert_eq!(code, 2, "{err}");
}

/// Answers a detector search with the documented search response, its first hit
/// renamed to the detector searched for when that one "exists" in the cluster.
struct DetectorSearch {
    existing: &'static str,
}

impl Respond for DetectorSearch {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut body = fixture("ad/search-detectors-response.json");
        let asked = String::from_utf8_lossy(&req.body).contains(self.existing);
        let hits = body["hits"]["hits"].as_array_mut().unwrap();
        // Otherwise the documented hits have other names: none matches.
        if asked {
            hits.truncate(1);
            hits[0]["_id"] = "existing-detector-id".into();
            hits[0]["_source"]["name"] = self.existing.into();
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

#[test]
fn opensearch_setup_creates_or_updates_by_name_and_dry_run_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A dry run prints the requests and touches no network (port 9 is closed).
    let (code, out, err) = run(common::waflog_env()
        .args([
            "opensearch",
            "--url",
            "opensearch+http://127.0.0.1:9",
            "setup",
            "--dry-run",
        ])
        .arg("--dashboards-file")
        .arg(dir.path().join("dash.ndjson")));
    assert_eq!(code, 0, "{err}");
    let dry: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("POST /") || l.starts_with("PUT /") || l.starts_with("GET /"))
        .collect();
    assert_eq!(dry[0], "PUT /_index_template/waflog-logs-waf-logs");
    assert_eq!(dry[1], "PUT /_index_template/waflog-results-waflog-results");
    assert_eq!(
        dry.iter()
            .filter(|l| **l == "POST /_plugins/_anomaly_detection/detectors")
            .count(),
        6
    );
    assert_eq!(
        dry.iter()
            .filter(|l| **l == "POST /_plugins/_alerting/monitors")
            .count(),
        6
    );
    // Every request body, pinned (their shapes are checked against the official
    // examples in waflog_core::opensearch's tests).
    insta::assert_snapshot!("opensearch_setup_dry_run", out);

    // Against the test server: one detector exists (stop, update, start), the
    // others are created; a webhook channel; the monitors reference the ids the
    // cluster returned; the Dashboards objects are imported.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start());
    let created_id = fixture("ad/create-detector-response.json")["_id"]
        .as_str()
        .unwrap()
        .to_string();
    rt.block_on(async {
        let mount = |m: &'static str, p: String, r: ResponseTemplate| {
            Mock::given(method(m))
                .and(path(p))
                .respond_with(r)
                .mount(&server)
        };
        let json = |f: &str| ResponseTemplate::new(200).set_body_json(fixture(f));
        mount(
            "PUT",
            "/_index_template/waflog-logs-waf-logs".into(),
            json("index-template/response.json"),
        )
        .await;
        mount(
            "PUT",
            "/_index_template/waflog-results-waflog-results".into(),
            json("index-template/response.json"),
        )
        .await;
        Mock::given(method("POST"))
            .and(path("/_plugins/_anomaly_detection/detectors/_search"))
            .respond_with(DetectorSearch {
                existing: "country-anomaly-detector",
            })
            .mount(&server)
            .await;
        mount(
            "POST",
            "/_plugins/_anomaly_detection/detectors".into(),
            json("ad/create-detector-response.json"),
        )
        .await;
        for id in ["existing-detector-id", created_id.as_str()] {
            mount(
                "POST",
                format!("/_plugins/_anomaly_detection/detectors/{id}/_start"),
                json("ad/start-detector-response.json"),
            )
            .await;
            mount(
                "POST",
                format!("/_plugins/_anomaly_detection/detectors/{id}/_stop"),
                json("ad/stop-detector-response.json"),
            )
            .await;
        }
        mount(
            "PUT",
            "/_plugins/_anomaly_detection/detectors/existing-detector-id".into(),
            json("ad/update-detector-response.json"),
        )
        .await;
        mount(
            "GET",
            "/_plugins/_notifications/configs/waflog-ops-hook".into(),
            ResponseTemplate::new(404).set_body_string("{}"),
        )
        .await;
        mount(
            "POST",
            "/_plugins/_notifications/configs".into(),
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"config_id": "waflog-ops-hook"})),
        )
        .await;
        let mut empty = fixture("alerting/search-monitors-response.json");
        empty["hits"]["hits"] = serde_json::json!([]);
        mount(
            "POST",
            "/_plugins/_alerting/monitors/_search".into(),
            ResponseTemplate::new(200).set_body_json(empty),
        )
        .await;
        mount(
            "POST",
            "/_plugins/_alerting/monitors".into(),
            json("alerting/create-query-monitor-response.json"),
        )
        .await;
        mount(
            "POST",
            "/api/saved_objects/_import".into(),
            json("dashboards/saved-objects-import/response-ok.json"),
        )
        .await;
    });
    let cfg = dir.path().join("waflog.toml");
    std::fs::write(
        &cfg,
        "[[channels]]\nname = \"ops-hook\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/waflog\"\n",
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.address().port());
    let (code, _, err) = run(common::waflog_env()
        .arg("--config")
        .arg(&cfg)
        .args([
            "opensearch",
            "--url",
            &format!("opensearch+http://127.0.0.1:{}", server.address().port()),
        ])
        .args(["setup", "--dashboards-url", &base, "--dashboards-file"])
        .arg(dir.path().join("dash.ndjson")));
    assert_eq!(code, 0, "{err}");
    let reqs = rt.block_on(server.received_requests()).unwrap();
    let seq: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    let pos = |s: &str| {
        seq.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} not sent: {seq:#?}"))
    };
    // The existing detector is stopped before its update and started after it.
    let stop = pos("POST /_plugins/_anomaly_detection/detectors/existing-detector-id/_stop");
    let update = pos("PUT /_plugins/_anomaly_detection/detectors/existing-detector-id");
    let start = pos("POST /_plugins/_anomaly_detection/detectors/existing-detector-id/_start");
    assert!(stop < update && update < start, "{seq:#?}");
    assert_eq!(
        seq.iter()
            .filter(|s| *s == "POST /_plugins/_anomaly_detection/detectors")
            .count(),
        5
    );
    // Every monitor body names a detector id the cluster gave.
    let monitors: Vec<&Request> = reqs
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/_plugins/_alerting/monitors")
        .collect();
    assert_eq!(monitors.len(), 6);
    for m in &monitors {
        let text = String::from_utf8_lossy(&m.body);
        assert!(
            text.contains(&created_id) || text.contains("existing-detector-id"),
            "{text}"
        );
        assert!(
            text.contains("waflog-ops-hook"),
            "the channel's config id: {text}"
        );
    }
    // The Dashboards import carries the xsrf header and the saved objects.
    let import = reqs
        .iter()
        .find(|r| r.url.path() == "/api/saved_objects/_import")
        .unwrap();
    assert_eq!(import.headers.get("osd-xsrf").unwrap(), "true");
    assert!(String::from_utf8_lossy(&import.body).contains("index-pattern"));

    // Status: each detector's state and progress, and the cluster's alerts.
    rt.block_on(async {
        let json = |f: &str| ResponseTemplate::new(200).set_body_json(fixture(f));
        Mock::given(method("GET"))
            .and(path(
                "/_plugins/_anomaly_detection/detectors/existing-detector-id/_profile",
            ))
            .respond_with(json("ad/get-detector-profile-response.json"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/_plugins/_alerting/monitors/alerts"))
            .respond_with(json("alerting/get-alerts-response.json"))
            .mount(&server)
            .await;
    });
    let (code, out, err) = run(common::waflog_env()
        .args([
            "opensearch",
            "--url",
            &format!("opensearch+http://127.0.0.1:{}", server.address().port()),
        ])
        .arg("status"));
    assert_eq!(code, 0, "{err}");
    let country = out
        .lines()
        .find(|l| l.starts_with("country-anomaly-detector"))
        .unwrap();
    let profile = fixture("ad/get-detector-profile-response.json");
    assert!(
        country.contains(profile["state"].as_str().unwrap()),
        "{out}"
    );
    assert!(
        out.contains("action-anomaly-detector") && out.contains("not in the cluster"),
        "{out}"
    );
    let alerts = fixture("alerting/get-alerts-response.json");
    let first = &alerts["alerts"][0];
    assert!(
        out.contains(first["monitor_name"].as_str().unwrap()),
        "{out}"
    );
}

#[test]
fn a_429_storm_is_ridden_out() {
    let d = tempfile::tempdir().unwrap();
    let (input, recs) = logs(d.path(), 0..0);
    // The first three requests are refused whole (429), and half of the documents
    // are throttled (429) once, a tenth of them three times.
    let mut plan = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        let id = r["httpRequest"]["requestId"].as_str().unwrap().to_string();
        if i % 10 == 0 {
            plan.insert(id, vec![429, 429, 429]);
        } else if i % 2 == 0 {
            plan.insert(id, vec![429]);
        }
    }
    let s = setup_with(plan, 3, 429);
    let url = format!(
        "opensearch+http://127.0.0.1:{}/waf",
        s.server.address().port()
    );
    let (code, _, err) = run(common::waflog_env().arg("transform").arg(&input).args([
        "--bulk-docs",
        "250",
        "--sink",
        &url,
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2000 documents indexed in") && err.contains(" 0 rejected"),
        "{err}"
    );
    // Each document ended up indexed once: its last attempt answered 201.
    let reqs = requests(&s);
    let bulks: Vec<&Request> = reqs.iter().filter(|r| r.url.path() == "/_bulk").collect();
    let last = sends_per_document(&bulks);
    assert_eq!(last.len(), 2000);
    // A tenth of the documents were sent four times (or five, in a refused request).
    assert!(last.values().filter(|&&n| n >= 4).count() >= 200, "{err}");
}
