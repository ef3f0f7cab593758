//! Kinesis under faults, against real local servers started by
//! `bash scripts/test.sh`: throttling injected by scripts/fault_proxy.py in front
//! of kinesalite, a shard split while a consumer reads, a merge while a producer
//! writes, a consumer killed in the middle of a read and resumed from its state
//! file, and kinesalite itself restarted (its data persists on disk) while a
//! producer writes and while a consumer reads. Every test checks that no record
//! is lost and counts duplicates.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

mod common;
use common::{Server, assert_same_ids, boto_at, lines, request_ids, run, waflog_at, wait_for};

/// Generates `minutes` of traffic (seed `seed`) into `path`; returns the records.
fn generate(path: &Path, seed: u64, start: &str, minutes: u32) -> Vec<serde_json::Value> {
    let (code, _, err) = run(waflog_at("http://127.0.0.1:9")
        .args(["generate", "--seed", &seed.to_string(), "--start", start])
        .args(["--duration", &format!("{minutes}m"), "--rate", "40"])
        .args(["--inject", "country:20m:5m", "-o"])
        .arg(path));
    assert_eq!(code, 0, "{err}");
    lines(path)
}

/// Reads a whole stream back with `waflog transform kinesis://NAME`.
fn read_back(endpoint: &str, stream: &str, out: &Path, idle: &str) -> (Vec<String>, String) {
    let (code, _, err) = run(waflog_at(endpoint)
        .args([
            "transform",
            &format!("kinesis://{stream}"),
            "--idle-exit",
            idle,
        ])
        .arg("-o")
        .arg(out));
    assert_eq!(code, 0, "{err}");
    (request_ids(&lines(out)), err)
}

/// (unique ids, duplicates) of a sorted id list.
fn dedup(ids: &[String]) -> (Vec<String>, usize) {
    let mut unique = ids.to_vec();
    unique.dedup();
    let dups = ids.len() - unique.len();
    (unique, dups)
}

#[test]
fn throttled_writes_and_reads_lose_nothing_and_duplicate_nothing() {
    let s = common::unique_name("throttled");
    let dir = tempfile::tempdir().unwrap();
    let kin = common::kinesalite();
    common::create_stream(&kin, &s, 2);
    let proxy = common::start_fault_proxy(
        &kin,
        &[
            "--put-records-fail-every",
            "2",
            "--put-records-fail-share",
            "0.3",
            "--get-records-throttle-every",
            "3",
            "--status-5xx-every",
            "11",
            "--seed",
            "5",
        ],
    );
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 21, "2024-05-01T00:00:00Z", 15);
    let (code, _, err) = run(waflog_at(&proxy.url())
        .arg("transform")
        .arg(&input)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    let resent: u64 = err
        .split(" resent after throttling")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resend count in {err}"));
    assert!(resent > 0, "{err}");
    let (ids, err) = read_back(&proxy.url(), &s, &dir.path().join("out"), "3s");
    // Exactly the records written: the proxy fails records before the server
    // stores them, so resending only the failed ones duplicates nothing.
    assert_same_ids(&ids, &request_ids(&records), &err);
    let stats = boto_at(
        &kin,
        &format!(
            "import urllib.request\nprint(urllib.request.urlopen('{}/__fault_stats').read().decode())",
            proxy.url()
        ),
    );
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    eprintln!("fault proxy: {stats}; {resent} records resent");
    let n = |k: &str| stats[k].as_u64().unwrap_or(0);
    assert!(n("put_records_failed_records") > 0, "{stats}");
    assert!(n("get_records_throttles") > 0, "{stats}");
    assert!(n("status_5xx") > 0, "{stats}");
}

#[test]
fn a_shard_split_while_a_consumer_reads_is_followed() {
    let s = common::unique_name("resharded");
    let dir = tempfile::tempdir().unwrap();
    let kin = common::kinesalite();
    common::create_stream(&kin, &s, 1);
    let before = dir.path().join("before.ndjson");
    let after = dir.path().join("after.ndjson");
    let first = generate(&before, 31, "2024-05-01T00:00:00Z", 10);
    let second = generate(&after, 32, "2024-05-01T00:10:00Z", 10);
    let out = dir.path().join("out.ndjson");
    let consumer = waflog_at(&kin)
        .args([
            "transform",
            &format!("kinesis://{s}"),
            "--idle-exit",
            "8s",
            "-o",
        ])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, _, err) = run(waflog_at(&kin)
        .arg("transform")
        .arg(&before)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    // Split the only shard in the middle of its hash key range, then write more:
    // those records go to the two children.
    boto_at(
        &kin,
        &format!(
            "shard = kinesis.list_shards(StreamName='{s}')['Shards'][0]['ShardId']\n\
             kinesis.split_shard(StreamName='{s}', ShardToSplit=shard, NewStartingHashKey=str(2**127))\n\
             wait_active('{s}')\n\
             assert len(kinesis.list_shards(StreamName='{s}')['Shards']) == 3"
        ),
    );
    let (code, _, err) = run(waflog_at(&kin)
        .arg("transform")
        .arg(&after)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    let done = consumer.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(err.contains("closed shard drained"), "{err}");
    let got = lines(&out);
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    assert_same_ids(&request_ids(&got), &request_ids(&all), &err);
    // The parent is drained before its children: every record written before the
    // split comes out before every record written after it.
    let first_ids: std::collections::HashSet<&str> = first
        .iter()
        .map(|r| r["httpRequest"]["requestId"].as_str().unwrap())
        .collect();
    let last_parent = got
        .iter()
        .rposition(|r| first_ids.contains(r["httpRequest"]["requestId"].as_str().unwrap()))
        .unwrap();
    assert_eq!(last_parent + 1, first.len());
}

/// A detector config with short intervals, so results and state saves come often.
const FAST_DETECTORS: &str = r#"
[[detectors]]
name = "blocks"
interval = "1m"
window_delay = "30s"
features = [{ name = "B_action", aggregation = "sum", field = "B_action" }]
[detectors.algorithm]
type = "ewma"

[[detectors]]
name = "countries"
interval = "1m"
window_delay = "30s"
features = [{ name = "UNK_country", aggregation = "sum", field = "UNK_country" }]
[detectors.algorithm]
type = "ewma"
"#;

/// Results by (detector, interval start) -> grade; panics if one interval was
/// written twice with different values.
fn results_by_interval(files: &[&Path]) -> (BTreeMap<(String, i64), String>, usize) {
    let mut map = BTreeMap::new();
    let mut dups = 0;
    for f in files {
        for r in lines(f) {
            let key = (
                r["detector_name"].as_str().unwrap().to_string(),
                r["data_start_time"].as_i64().unwrap(),
            );
            let value = format!(
                "{} {} {}",
                r["records"], r["anomaly_grade"], r["feature_data"]
            );
            if let Some(old) = map.insert(key.clone(), value.clone()) {
                assert_eq!(
                    old, value,
                    "{key:?} was scored twice with different results"
                );
                dups += 1;
            }
        }
    }
    (map, dups)
}

fn saved_records(state: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    v["records"].as_u64().unwrap()
}

#[test]
fn a_consumer_killed_mid_read_resumes_from_its_state_file() {
    let s = common::unique_name("killed");
    let dir = tempfile::tempdir().unwrap();
    let kin = common::kinesalite();
    let config = dir.path().join("waflog.toml");
    std::fs::write(&config, FAST_DETECTORS).unwrap();
    common::create_stream(&kin, &s, 2);
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 41, "2024-05-01T00:00:00Z", 30);
    let (code, _, err) = run(waflog_at(&kin)
        .arg("transform")
        .arg(&input)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    let detect = |state: &Path, out: &Path| {
        let mut c = waflog_at(&kin);
        c.arg("--config")
            .arg(&config)
            .args([
                "detect",
                &format!("kinesis://{s}"),
                "--all",
                "--idle-exit",
                "4s",
            ])
            .arg("--state")
            .arg(state)
            .arg("-o")
            .arg(out);
        c
    };
    // First consumer: killed (SIGKILL, no chance to save) once it has saved state
    // and written results, in the middle of the backlog.
    let state = dir.path().join("state.json");
    let r1 = dir.path().join("r1.ndjson");
    let mut first = detect(&state, &r1).stderr(Stdio::null()).spawn().unwrap();
    wait_for(Duration::from_secs(60), "a saved state", || {
        state.exists() && saved_records(&state) > 0
    });
    first.kill().unwrap();
    assert!(!first.wait().unwrap().success());
    let at_kill = saved_records(&state);
    assert!(
        at_kill < records.len() as u64,
        "the first consumer finished before it was killed"
    );
    // Second consumer: resumes after the saved checkpoints.
    let r2 = dir.path().join("r2.ndjson");
    let (code, _, err) = run(&mut detect(&state, &r2));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("({at_kill} records taken in so far)")),
        "{err}"
    );
    // The models took in every record exactly once: the checkpoints and the models
    // are saved together.
    assert_eq!(saved_records(&state), records.len() as u64, "{err}");
    // Results of intervals scored after the last save were written again by the
    // second consumer: identical, and counted.
    let (resumed, dups) = results_by_interval(&[&r1, &r2]);
    // The same as one uninterrupted consumer.
    let state2 = dir.path().join("state2.json");
    let r3 = dir.path().join("r3.ndjson");
    let (code, _, err) = run(&mut detect(&state2, &r3));
    assert_eq!(code, 0, "{err}");
    let (straight, _) = results_by_interval(&[&r3]);
    eprintln!(
        "killed after {at_kill} of {} records; {dups} interval results written twice",
        records.len()
    );
    assert_eq!(resumed.len(), straight.len());
    assert_eq!(resumed, straight);
    assert!(resumed.len() >= 2 * 28, "{}", resumed.len());
}

#[test]
fn a_kinesalite_restart_mid_write_and_mid_read_loses_nothing() {
    let s = common::unique_name("restarted");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kinesalite-data");
    let server = common::start_kinesalite(&data, 0);
    let port = server.port;
    let url = server.url();
    common::create_stream(&url, &s, 2);
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 51, "2024-05-01T00:00:00Z", 30);
    let restart = |server: Server| -> Server {
        server.stop();
        std::thread::sleep(Duration::from_millis(700));
        common::start_kinesalite(&data, port)
    };
    // A producer writes while the server goes down and comes back.
    let mut producer = waflog_at(&url)
        .arg("transform")
        .arg(&input)
        .args(["-o", &format!("kinesis://{s}")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        producer.try_wait().unwrap().is_none(),
        "the producer finished before the restart"
    );
    let server = restart(server);
    let done = producer.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    // A consumer reads while the server goes down and comes back.
    let out = dir.path().join("out.ndjson");
    let mut consumer = waflog_at(&url)
        .args([
            "transform",
            &format!("kinesis://{s}"),
            "--idle-exit",
            "10s",
            "-o",
        ])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the consumer to read", || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)
    });
    assert!(consumer.try_wait().unwrap().is_none());
    let server = restart(server);
    let done = consumer.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    let got = request_ids(&lines(&out));
    let (unique, dups) = dedup(&got);
    eprintln!(
        "{} records written, {} read back, {dups} duplicates (a PutRecords the server stored but whose answer was lost is resent)",
        records.len(),
        got.len()
    );
    assert_same_ids(&unique, &request_ids(&records), "no record may be lost");
    server.stop();
}

#[test]
fn transform_resumes_a_stream_from_its_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::unique_name("resumed");
    let kin = common::kinesalite();
    common::create_stream(&kin, &s, 2);
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let first = generate(&a, 61, "2024-05-01T00:00:00Z", 5);
    let second = generate(&b, 62, "2024-05-01T00:05:00Z", 5);
    let state = dir.path().join("transform.state");
    let mut outs = Vec::new();
    for (i, input) in [&a, &b].into_iter().enumerate() {
        let (code, _, err) = run(waflog_at(&kin)
            .arg("transform")
            .arg(input)
            .args(["-o", &format!("kinesis://{s}")]));
        assert_eq!(code, 0, "{err}");
        let out = dir.path().join(format!("out{i}.ndjson"));
        let (code, _, err) = run(waflog_at(&kin)
            .args(["transform", &format!("kinesis://{s}"), "--idle-exit", "2s"])
            .arg("--state")
            .arg(&state)
            .arg("-o")
            .arg(&out));
        assert_eq!(code, 0, "{err}");
        outs.push((request_ids(&lines(&out)), err));
    }
    assert_same_ids(&outs[0].0, &request_ids(&first), &outs[0].1);
    // The second run reads only what was written since the first.
    assert!(
        outs[1]
            .1
            .contains("resuming after the checkpoints of 2 shards"),
        "{}",
        outs[1].1
    );
    assert_same_ids(&outs[1].0, &request_ids(&second), &outs[1].1);
}

#[test]
fn two_consumers_split_a_stream_by_hash_key_and_each_client_stays_on_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::unique_name("split");
    let kin = common::kinesalite();
    common::create_stream(&kin, &s, 4);
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 71, "2024-05-01T00:00:00Z", 5);
    let (code, _, err) = run(waflog_at(&kin)
        .arg("transform")
        .arg(&input)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    let mut parts = Vec::new();
    for k in 0..2 {
        let out = dir.path().join(format!("part{k}.ndjson"));
        let (code, _, err) = run(waflog_at(&kin)
            .args(["transform", &format!("kinesis://{s}"), "--idle-exit", "2s"])
            .args(["--kinesis-consumer", &format!("{k}/2"), "-o"])
            .arg(&out));
        assert_eq!(code, 0, "{err}");
        parts.push(lines(&out));
    }
    assert!(parts.iter().all(|p| !p.is_empty()));
    // Between them every record once; each client IP (the partition key) on one.
    let mut all = parts[0].clone();
    all.extend(parts[1].iter().cloned());
    assert_same_ids(&request_ids(&all), &request_ids(&records), "");
    let ips = |p: &[serde_json::Value]| -> std::collections::HashSet<String> {
        p.iter()
            .map(|r| r["httpRequest"]["clientIp"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(ips(&parts[0]).is_disjoint(&ips(&parts[1])));
    let (code, _, err) = run(waflog_at(&kin).args([
        "transform",
        &format!("kinesis://{s}"),
        "--kinesis-consumer",
        "2/2",
    ]));
    assert_eq!(code, 2, "{err}");
}

/// With several `PutRecords` calls in flight (the default four, one per shard of
/// four), each shard still holds its records in the order given, every record
/// is in the shard Kinesis maps its partition key (the client IP) to, and every
/// shard is written.
#[test]
fn calls_in_flight_keep_each_shards_order() {
    let s = common::unique_name("inflight");
    let dir = tempfile::tempdir().unwrap();
    let kin = common::kinesalite();
    common::create_stream(&kin, &s, 4);
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 12, "2024-05-01T00:00:00Z", 5);
    let (code, _, err) = run(waflog_at(&kin)
        .arg("transform")
        .arg(&input)
        .args(["-o", &format!("kinesis://{s}")]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{} records in", records.len()))
            && err.contains("(4 at once at most)"),
        "{err}"
    );
    let stored = records_by_shard(&kin, &s);
    let position: BTreeMap<String, (usize, String)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r["httpRequest"]["requestId"].as_str().unwrap().to_string(),
                (
                    i,
                    r["httpRequest"]["clientIp"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    let mut shard_of_key: BTreeMap<&str, &str> = BTreeMap::new();
    let mut n = 0;
    for (shard, key, id) in &stored {
        let (shard, key) = (shard.as_str(), key.as_str());
        let (at, ip) = &position[id];
        assert_eq!(key, ip, "{shard} {id}");
        if let Some(prev) = last.insert(shard, *at) {
            assert!(prev < *at, "{shard}: record {at} after record {prev}");
        }
        assert_eq!(*shard_of_key.entry(key).or_insert(shard), shard, "{key}");
        n += 1;
    }
    assert_eq!(n, records.len());
    assert_eq!(last.len(), 4, "{last:?}");
}

/// Shard, partition key and request id of every record of stream `s`, shard by
/// shard, each shard from its start (read with boto3).
fn records_by_shard(kin: &str, s: &str) -> Vec<(String, String, String)> {
    let out = boto_at(
        kin,
        &format!(
            "import json\n\
             for sh in kinesis.list_shards(StreamName='{s}')['Shards']:\n\
             \x20   it = kinesis.get_shard_iterator(StreamName='{s}', ShardId=sh['ShardId'], ShardIteratorType='TRIM_HORIZON')['ShardIterator']\n\
             \x20   while it:\n\
             \x20       r = kinesis.get_records(ShardIterator=it, Limit=10000)\n\
             \x20       for rec in r['Records']:\n\
             \x20           print(sh['ShardId'], rec['PartitionKey'], json.loads(rec['Data'])['httpRequest']['requestId'])\n\
             \x20       it = r.get('NextShardIterator') if r['Records'] else None"
        ),
    );
    out.lines()
        .map(|line| {
            let mut f = line.split(' ').map(str::to_string);
            (f.next().unwrap(), f.next().unwrap(), f.next().unwrap())
        })
        .collect()
}

/// The two shards of a stream merged while `transform` writes to it with a call
/// in flight per shard: the sink sees records go to a shard it did not know,
/// waits for its calls, lists the shards again and goes on through one lane, so
/// the merged shard holds its records in the order given but for the batches
/// under way when the merge was seen (at most one per lane, 500 records each).
/// Nothing is lost or written twice.
#[test]
fn a_shard_merge_while_writing_is_followed() {
    use std::io::Write;
    let s = common::unique_name("merged");
    let dir = tempfile::tempdir().unwrap();
    let kin = common::kinesalite();
    common::create_stream(&kin, &s, 2);
    let input = dir.path().join("in.ndjson");
    let records = generate(&input, 41, "2024-05-01T00:00:00Z", 10);
    let text = std::fs::read(&input).unwrap();
    let ends: Vec<usize> = (0..text.len()).filter(|&i| text[i] == b'\n').collect();
    let cut = ends[3_999] + 1;
    let mut producer = waflog_at(&kin)
        .args(["transform", "-", "-o", &format!("kinesis://{s}")])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = producer.stdin.take().unwrap();
    stdin.write_all(&text[..cut]).unwrap();
    stdin.flush().unwrap();
    // The first records are in: the sink has dealt the two shards to two lanes.
    wait_for(Duration::from_secs(60), "the first records", || {
        records_by_shard(&kin, &s).len() >= 1_000
    });
    boto_at(
        &kin,
        &format!(
            "shards = [sh['ShardId'] for sh in kinesis.list_shards(StreamName='{s}')['Shards']]\n\
             kinesis.merge_shards(StreamName='{s}', ShardToMerge=shards[0], AdjacentShardToMerge=shards[1])\n\
             wait_active('{s}')\n\
             assert len(kinesis.list_shards(StreamName='{s}')['Shards']) == 3"
        ),
    );
    stdin.write_all(&text[cut..]).unwrap();
    drop(stdin);
    let done = producer.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(err.contains("its shards changed"), "{err}");
    let position: BTreeMap<String, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r["httpRequest"]["requestId"].as_str().unwrap().to_string(),
                i,
            )
        })
        .collect();
    let stored = records_by_shard(&kin, &s);
    let mut ids: Vec<String> = stored.iter().map(|(_, _, id)| id.clone()).collect();
    ids.sort_unstable();
    let mut all: Vec<String> = position.keys().cloned().collect();
    all.sort_unstable();
    assert_eq!(ids, all, "records lost or written twice");
    let child = stored.iter().map(|(shard, _, _)| shard).max().unwrap();
    let merged: Vec<usize> = stored
        .iter()
        .filter(|(shard, _, _)| shard == child)
        .map(|(_, _, id)| position[id])
        .collect();
    assert!(merged.len() > records.len() / 2, "{}", merged.len());
    let out_of_order: Vec<usize> = (1_001..merged.len())
        .filter(|&i| merged[i] < merged[i - 1])
        .collect();
    assert!(
        out_of_order.is_empty(),
        "{child}: {} records of {} out of order after the first 1,000, e.g. at {:?}",
        out_of_order.len(),
        merged.len(),
        &out_of_order[..out_of_order.len().min(5)]
    );
}
