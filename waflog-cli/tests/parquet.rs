//! Parquet output (issue 18, part 6): `--output-format parquet` for `transform`
//! and `detect`, to a file, stdout, a directory and S3 (moto), read back with
//! DuckDB from PyPI (`WAFLOG_TEST_PYTHON`: `bash scripts/test.sh` installs
//! `duckdb` into the same venv as moto). Every record is checked: the Parquet rows
//! hold exactly what the NDJSON output holds, field by field, and input records =
//! rows + dead letters.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

mod common;
use common::{lines, run, test_env};

fn waflog() -> Command {
    common::waflog_at(&common::moto())
}

/// Runs `sql` in DuckDB (in `dir`) and returns its rows as JSON arrays.
fn duckdb(dir: &Path, sql: &str) -> Vec<Vec<Value>> {
    let script = "import duckdb, json, sys\n\
                  con = duckdb.connect()\n\
                  rows = con.sql(sys.argv[1]).fetchall()\n\
                  print(json.dumps([list(r) for r in rows], default=str))\n";
    let out = Command::new(test_env("WAFLOG_TEST_PYTHON"))
        .current_dir(dir)
        .args(["-c", script, sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// 90 minutes of logs over two hours, with an anomaly, and 3 bad lines.
fn input(dir: &Path) -> (std::path::PathBuf, usize) {
    let path = dir.join("in.ndjson");
    let (code, _, err) = run(waflog()
        .args([
            "generate",
            "--seed",
            "23",
            "--start",
            "2024-05-01T00:30:00Z",
            "--duration",
            "90m",
            "--rate",
            "2",
            "--inject=country:40m:10m",
            "-o",
        ])
        .arg(&path));
    assert_eq!(code, 0, "{err}");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let good = text.lines().count();
    text.push_str("{not json\n[1,2]\n{\"timestamp\":\"yesterday\"}\n");
    std::fs::write(&path, text).unwrap();
    (path, good)
}

/// The fields the comparison covers, as DuckDB selects them and as the NDJSON
/// record has them.
const SELECT: &str = "select requestId, epoch_ms(timestamp), clientIp, country, action, \
                      httpMethod, httpSourceName, httpStatus, labels, UNK_country, \
                      K_source, B_action, json(headers), other";

fn ndjson_row(r: &Value) -> Vec<Value> {
    let req = &r["httpRequest"];
    let labels: Vec<Value> = r["labels"]
        .as_array()
        .map(|l| l.iter().map(|x| x["name"].clone()).collect())
        .unwrap_or_default();
    vec![
        req["requestId"].clone(),
        r["timestamp"].clone(),
        req["clientIp"].clone(),
        req["country"].clone(),
        r["action"].clone(),
        req["httpMethod"].clone(),
        r["httpSourceName"].clone(),
        r["httpStatus"]
            .as_str()
            .map_or(Value::Null, |s| json!(s.parse::<i64>().unwrap())),
        if r.get("labels").is_some() {
            json!(labels)
        } else {
            Value::Null
        },
        r["UNK_country"].clone(),
        r["K_source"].clone(),
        r["B_action"].clone(),
        json!(serde_json::to_string(&req["headers"]).unwrap()),
        Value::Null,
    ]
}

/// Sorts rows by their first value (the request id).
fn by_id(mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    rows.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    rows
}

#[test]
fn transform_writes_hour_folders_and_files_duckdb_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (input, good) = input(dir.path());
    let dead = dir.path().join("dead.ndjson");
    // The NDJSON output to compare with.
    let ndjson = dir.path().join("out.ndjson");
    let (code, _, err) = run(waflog()
        .args(["transform", "-q"])
        .arg(&input)
        .arg("-o")
        .arg(&ndjson));
    assert_eq!(code, 0, "{err}");
    let records = lines(&ndjson);
    assert_eq!(records.len(), good);

    let out = dir.path().join("lake/records");
    let (code, _, err) = run(waflog()
        .args(["transform", "--output-format", "parquet"])
        .arg(&input)
        .arg("--dead-letter")
        .arg(&dead)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    // in = out + dead-lettered.
    assert_eq!(lines(&dead).len(), 3);
    assert!(
        err.contains(&format!("{good} records in 2 Parquet files")),
        "{err}"
    );
    // One file per hour, in the WAF delivery's hour folders.
    let mut folders: Vec<String> = walkdir(&out)
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&out).unwrap();
            assert!(rel.to_string_lossy().ends_with(".parquet"), "{rel:?}");
            rel.parent().unwrap().display().to_string()
        })
        .collect();
    folders.sort();
    assert_eq!(folders, ["2024/05/01/00", "2024/05/01/01"]);
    let per_hour = duckdb(
        &out,
        "select hour(timestamp at time zone 'UTC') h, count(*) from read_parquet('**/*.parquet') group by h order by h",
    );
    let mut want: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &records {
        *want
            .entry(r["timestamp"].as_i64().unwrap() / 3_600_000 % 24)
            .or_default() += 1;
    }
    let want: Vec<Vec<Value>> = want
        .into_iter()
        .map(|(h, n)| vec![json!(h), json!(n)])
        .collect();
    assert_eq!(per_hour, want);
    // Every record, field by field.
    let got = by_id(duckdb(
        &out,
        &format!("{SELECT} from read_parquet('**/*.parquet')"),
    ));
    let want = by_id(records.iter().map(ndjson_row).collect());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    // Anomalous traffic is there to query: the injected unknown countries.
    let unk = duckdb(
        &out,
        "select sum(UNK_country) from read_parquet('**/*.parquet')",
    );
    let want_unk: i64 = records
        .iter()
        .map(|r| r["UNK_country"].as_i64().unwrap())
        .sum();
    assert!(want_unk > 0);
    assert_eq!(unk, vec![vec![json!(want_unk)]]);
    // The documented query: the clients blocked most.
    let top = duckdb(dir.path(), &doc_queries()[0]);
    let mut blocked: BTreeMap<&str, i64> = BTreeMap::new();
    for r in records.iter().filter(|r| r["action"] == "BLOCK") {
        *blocked
            .entry(r["httpRequest"]["clientIp"].as_str().unwrap())
            .or_default() += 1;
    }
    let mut counts: Vec<i64> = blocked.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    counts.truncate(10);
    assert!(!counts.is_empty());
    let got: Vec<i64> = top.iter().map(|r| r[1].as_i64().unwrap()).collect();
    assert_eq!(got, counts);
    for r in &top {
        assert_eq!(blocked[r[0].as_str().unwrap()], r[1].as_i64().unwrap());
    }

    // One file, and stdout: the same rows.
    let file = dir.path().join("one.parquet");
    let (code, _, err) = run(waflog()
        .args(["transform", "-q", "--output-format", "parquet"])
        .arg(&input)
        .arg("--dead-letter")
        .arg(&dead)
        .arg("-o")
        .arg(&file));
    assert_eq!(code, 0, "{err}");
    let (code, bytes, err) = common::run_bytes(
        waflog()
            .args(["transform", "-q", "--output-format", "parquet"])
            .arg(&input)
            .arg("--dead-letter")
            .arg(&dead),
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(dir.path().join("stdout.parquet"), bytes).unwrap();
    for name in ["one.parquet", "stdout.parquet"] {
        let got = by_id(duckdb(
            dir.path(),
            &format!("{SELECT} from read_parquet('{name}')"),
        ));
        assert_eq!(got, want, "{name}");
    }
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn detect_results_and_incidents_as_parquet_match_the_ndjson_results() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input(dir.path());
    let ndjson = dir.path().join("results.ndjson");
    let args = ["detect", "-q", "--all", "--alerts"];
    let (code, _, err) = run(waflog()
        .args(args)
        .arg(&input)
        .args(["--dead-letter", "/dev/null", "-o"])
        .arg(&ndjson));
    assert!(code == 0 || code == 1, "{err}");
    let docs = lines(&ndjson);
    let out = dir.path().join("lake/results");
    let (code2, _, err) = run(waflog()
        .args(args)
        .arg(&input)
        .args([
            "--dead-letter",
            "/dev/null",
            "--output-format",
            "parquet",
            "-o",
        ])
        .arg(&out));
    assert_eq!(code2, code, "{err}");
    let got = duckdb(
        &out,
        "select type, detector_id, epoch_ms(data_start_time), anomaly_grade, records, \
         json(feature_data), incident_id from read_parquet('**/*.parquet') \
         order by all",
    );
    let mut want: Vec<Vec<Value>> = docs
        .iter()
        .map(|d| {
            vec![
                d.get("type").cloned().unwrap_or(json!("result")),
                d["detector_id"].clone(),
                d["data_start_time"].clone(),
                d["anomaly_grade"].clone(),
                d["records"].clone(),
                d.get("feature_data")
                    .map_or(Value::Null, |f| json!(serde_json::to_string(f).unwrap())),
                d["incident_id"].clone(),
            ]
        })
        .collect();
    assert!(want.len() > 100, "{}", want.len());
    let kinds: Vec<&str> = want.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert!(kinds.contains(&"incident"), "{kinds:?}");
    assert!(
        want.iter().any(|r| r[3].as_f64().unwrap_or(0.0) > 0.0),
        "no anomaly in the results"
    );
    // DuckDB's `order by all` and a JSON sort agree on these value kinds.
    want.sort_by(|a, b| cmp_rows(a, b));
    let mut got_sorted = got.clone();
    got_sorted.sort_by(|a, b| cmp_rows(a, b));
    assert_eq!(got_sorted.len(), want.len());
    for (g, w) in got_sorted.iter().zip(&want) {
        // Grades are doubles both ways; compare them as numbers.
        assert_eq!(g[..3], w[..3]);
        assert_eq!(g[3].as_f64(), w[3].as_f64());
        assert_eq!(g[4..], w[4..]);
    }
    // The documented query: the anomalies with the feature that moved.
    let anomalies = duckdb(dir.path(), &doc_queries()[1]);
    let want: Vec<(String, f64, String)> = docs
        .iter()
        .filter(|d| d.get("type").is_none() && d["anomaly_grade"].as_f64().unwrap() > 0.0)
        .map(|d| {
            (
                d["detector_name"].as_str().unwrap().to_string(),
                d["anomaly_grade"].as_f64().unwrap(),
                d["feature_data"][0]["feature_name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    let mut got: Vec<(String, f64, String)> = anomalies
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[2].as_f64().unwrap(),
                r[3].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want = want;
    let key = |a: &(String, f64, String)| format!("{}|{}|{}", a.0, a.1, a.2);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
}

/// The DuckDB queries of docs/parquet.md, which the tests run as written.
fn doc_queries() -> Vec<String> {
    let doc = include_str!("../../docs/parquet.md");
    let block = doc
        .split("## DuckDB")
        .nth(1)
        .and_then(|s| s.split("```sql").nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap();
    let queries: Vec<String> = block
        .split(';')
        .map(|q| {
            q.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|q| !q.trim().is_empty())
        .collect();
    assert_eq!(queries.len(), 2, "{queries:?}");
    queries
}

fn cmp_rows(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    a.iter()
        .map(Value::to_string)
        .cmp(b.iter().map(Value::to_string))
}

#[test]
fn s3_gets_hour_keys_of_parquet_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (input, good) = input(dir.path());
    let b = common::unique_name("waflog-pq");
    common::boto_at(&common::moto(), &format!("s3.create_bucket(Bucket='{b}')"));
    let (code, _, err) = run(waflog()
        .args(["transform", "--output-format", "parquet"])
        .arg(&input)
        .args([
            "--dead-letter",
            "/dev/null",
            "-o",
            &format!("s3://{b}/lake/waf"),
        ]));
    assert_eq!(code, 0, "{err}");
    let got = dir.path().join("got");
    std::fs::create_dir(&got).unwrap();
    let keys = common::boto_at(
        &common::moto(),
        &format!(
            "import os\n\
             keys = sorted(o['Key'] for o in s3.list_objects_v2(Bucket='{b}')['Contents'])\n\
             for i, k in enumerate(keys):\n\
             \x20   o = s3.get_object(Bucket='{b}', Key=k)\n\
             \x20   assert o['ContentType'] == 'application/vnd.apache.parquet', o['ContentType']\n\
             \x20   open(os.path.join('{}', str(i) + '.parquet'), 'wb').write(o['Body'].read())\n\
             print('\\n'.join(keys))",
            got.display()
        ),
    );
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[0].starts_with("lake/waf/2024/05/01/00/waflog-records-"),
        "{keys:?}"
    );
    assert!(
        keys[1].starts_with("lake/waf/2024/05/01/01/waflog-records-"),
        "{keys:?}"
    );
    let n = duckdb(&got, "select count(*) from read_parquet('*.parquet')");
    assert_eq!(n, vec![vec![json!(good)]]);
}

#[test]
fn outputs_parquet_cannot_go_to_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input(dir.path());
    for (extra, want) in [
        (vec!["-o", "kinesis://s"], "Parquet goes to a file"),
        (
            vec!["-o", "opensearch://127.0.0.1:9/i"],
            "Parquet goes to a file",
        ),
        (vec!["--firehose"], "--output-format parquet does not apply"),
    ] {
        let (code, _, err) = run(waflog()
            .args(["transform", "--output-format", "parquet"])
            .arg(&input)
            .args(&extra));
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    // A run resuming from --state cannot append to a Parquet file.
    let file = dir.path().join("x.parquet");
    let state = dir.path().join("state.json");
    let resume = || {
        run(waflog()
            .args(["transform", "-q", "--output-format", "parquet"])
            .arg(&input)
            .args(["--dead-letter", "/dev/null", "--state"])
            .arg(&state)
            .arg("-o")
            .arg(&file))
    };
    let (code, _, err) = resume();
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = resume();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be appended to"), "{err}");
}
