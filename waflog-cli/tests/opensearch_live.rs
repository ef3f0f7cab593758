//! The live OpenSearch suite: runs only when `WAFLOG_OPENSEARCH_URL` names a real
//! cluster (e.g. `opensearch+http://127.0.0.1:9200` or `opensearch://host:9200`),
//! with `OPENSEARCH_USERNAME` / `OPENSEARCH_PASSWORD` when it needs them and
//! `WAFLOG_OPENSEARCH_INSECURE=1` for a self-signed certificate. It writes to
//! indices named `waflog-live-<pid>-*` and deletes them at the end. Without the
//! variable every test returns at once (and says so).

#![allow(clippy::unwrap_used)]

mod common;
use common::run;

fn cluster() -> Option<String> {
    let url = std::env::var("WAFLOG_OPENSEARCH_URL").ok()?;
    Some(url.trim_end_matches('/').to_string())
}

fn waflog() -> std::process::Command {
    let mut c = common::waflog_env();
    if std::env::var("WAFLOG_OPENSEARCH_INSECURE").is_ok_and(|v| v == "1") {
        c.arg("--insecure");
    }
    c
}

/// `curl`-like call through Python's urllib (no extra Rust HTTP client here).
fn http(method: &str, url: &str) -> String {
    let plain = url
        .replacen("opensearch+http://", "http://", 1)
        .replacen("opensearch+https://", "https://", 1)
        .replacen("opensearch://", "https://", 1);
    let script = format!(
        "import base64, os, ssl, urllib.request\n\
         r = urllib.request.Request('{plain}', method='{method}')\n\
         u, p = os.environ.get('OPENSEARCH_USERNAME'), os.environ.get('OPENSEARCH_PASSWORD')\n\
         if u: r.add_header('Authorization', 'Basic ' + base64.b64encode(f'{{u}}:{{p}}'.encode()).decode())\n\
         ctx = ssl._create_unverified_context() if os.environ.get('WAFLOG_OPENSEARCH_INSECURE') == '1' else None\n\
         print(urllib.request.urlopen(r, context=ctx).read().decode())"
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn logs_and_results_land_in_a_real_cluster() {
    let Some(base) = cluster() else {
        eprintln!("WAFLOG_OPENSEARCH_URL is not set: live OpenSearch suite skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs.ndjson");
    let (code, _, err) = run(waflog()
        .args(["generate", "--seed", "8", "--start", "2024-05-01T00:00:00Z"])
        .args(["--duration", "30m", "--inject", "country:20m:5m", "-o"])
        .arg(&logs));
    assert_eq!(code, 0, "{err}");
    let n = std::fs::read_to_string(&logs).unwrap().lines().count();
    let index = format!("waflog-live-{}-logs", std::process::id());
    let (code, _, err) = run(waflog()
        .arg("transform")
        .arg(&logs)
        .args(["-o", &format!("{base}/{index}")]));
    assert_eq!(code, 0, "{err}");
    http("POST", &format!("{base}/{index}/_refresh"));
    let count: serde_json::Value =
        serde_json::from_str(&http("GET", &format!("{base}/{index}/_count"))).unwrap();
    assert_eq!(count["count"].as_u64(), Some(n as u64));
    let mapping: serde_json::Value =
        serde_json::from_str(&http("GET", &format!("{base}/{index}/_mapping"))).unwrap();
    let props = &mapping[&index]["mappings"]["properties"];
    assert_eq!(props["httpRequest"]["properties"]["clientIp"]["type"], "ip");
    let results = format!("waflog-live-{}-results", std::process::id());
    let (code, _, err) =
        run(waflog()
            .arg("detect")
            .arg(&logs)
            .args(["--all", "-o", &format!("{base}/{results}")]));
    assert_eq!(code, 0, "{err}");
    http("POST", &format!("{base}/{results}/_refresh"));
    let count: serde_json::Value =
        serde_json::from_str(&http("GET", &format!("{base}/{results}/_count"))).unwrap();
    assert!(count["count"].as_u64().unwrap() > 100);
    for i in [&index, &results] {
        http("DELETE", &format!("{base}/{i}"));
    }
}
