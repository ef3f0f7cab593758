//! Local inputs read like S3 ones: directories, several files merged in event
//! time, glob patterns, and a followed file that grows and is rotated. Every
//! test checks exact counts: records in = out + dead-lettered.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{lines, request_ids, run};

fn waflog() -> Command {
    common::waflog_env()
}

/// The records of `waflog generate` for 20 minutes from 00:00 with `seed`, as
/// lines (in event time).
fn generated(seed: u64, minutes: u32) -> Vec<String> {
    let (code, out, err) = run(waflog().args([
        "generate",
        "--seed",
        &seed.to_string(),
        "--start",
        "2024-05-01T00:00:00Z",
        "--duration",
        &format!("{minutes}m"),
        "--rate",
        "5",
    ]));
    assert_eq!(code, 0, "{err}");
    out.lines().map(str::to_string).collect()
}

/// A record's `timestamp` (epoch ms).
fn time_of(line: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["timestamp"]
        .as_i64()
        .unwrap()
}

/// A summary field (`records_in=N`) of a run's log.
fn field(log: &str, name: &str) -> u64 {
    let at = log
        .rfind(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {log}"));
    log[at + name.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `waflog transform INPUT --dead-letter DEAD -o OUT`: (exit code, stdout, stderr).
fn transform_to(input: &Path, dead: &Path, out: &Path) -> (i32, String, String) {
    run(waflog()
        .arg("transform")
        .arg(input)
        .arg("--dead-letter")
        .arg(dead)
        .arg("-o")
        .arg(out))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Lays out `records` as AWS delivers them under `root`: one web ACL in WAF's
/// direct layout (gzip NDJSON per five minutes), the other as Firehose writes
/// (`YYYY/MM/dd/HH/` per hour, records concatenated without a delimiter, no
/// extension), plus files that are not logs.
fn delivered_tree(root: &Path, acl_a: &[String], acl_b: &[String]) {
    let mut by_five: std::collections::BTreeMap<i64, String> = Default::default();
    for l in acl_a {
        let minute = (time_of(l) / 60_000) % 60;
        let e = by_five.entry(minute / 5 * 5).or_default();
        e.push_str(l);
        e.push('\n');
    }
    for (minute, text) in &by_five {
        let dir = format!("AWSLogs/123456789012/WAFLogs/us-east-1/acl-a/2024/05/01/00/{minute:02}");
        let name = format!("123456789012_waflogs_us-east-1_acl-a_20240501T00{minute:02}Z_x.log.gz");
        write(&root.join(dir).join(name), &gzip(text.as_bytes()));
    }
    // Firehose: two objects in hour 00, concatenated records.
    let half = acl_b.len() / 2;
    for (i, part) in [&acl_b[..half], &acl_b[half..]].iter().enumerate() {
        let name = format!(
            "firehose/2024/05/01/00/aws-waf-logs-b-1-2024-05-01-00-{:02}-00-{i}",
            i * 10
        );
        write(&root.join(name), part.concat().as_bytes());
    }
    write(&root.join("README.md"), b"# not a log\n");
    write(
        &root.join("firehose/aws-logs-write-test"),
        b"Permission Check Successful",
    );
    write(&root.join(".cache/x.ndjson"), b"garbage\n");
    write(&root.join("AWSLogs/.DS_Store"), b"\0\x01binary");
}

#[test]
fn two_web_acls_files_are_merged_in_event_time_with_no_late_record() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (generated(1, 20), generated(2, 20));
    let (pa, pb) = (
        dir.path().join("acl-a.ndjson"),
        dir.path().join("acl-b.ndjson.gz"),
    );
    write(&pa, (a.join("\n") + "\n").as_bytes());
    write(&pb, &gzip((b.join("\n") + "\n").as_bytes()));
    let total = (a.len() + b.len()) as u64;
    // detect: no record is late (read one after another, b's would all be).
    let dead = dir.path().join("dead.ndjson");
    let (code, _, err) = run(waflog()
        .args(["detect", "-o", "/dev/null", "--dead-letter"])
        .arg(&dead)
        .arg(&pa)
        .arg(&pb));
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&err, "records_in"), total, "{err}");
    assert_eq!(field(&err, "dead_lettered"), 0, "{err}");
    assert!(err.contains("merging 2 files in event time"), "{err}");
    // transform: every record once, in event time.
    let out = dir.path().join("out.ndjson");
    let (code, _, err) = run(waflog()
        .arg("transform")
        .arg(&pa)
        .arg(&pb)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let got = lines(&out);
    assert_eq!(got.len() as u64, total);
    assert_eq!(field(&err, "records_out"), total, "{err}");
    let times: Vec<i64> = got
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let all: Vec<serde_json::Value> = a
        .iter()
        .chain(&b)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(request_ids(&got), request_ids(&all));
}

#[test]
fn a_directory_is_read_recursively_and_merged_like_an_s3_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (generated(3, 20), generated(4, 20));
    let root = dir.path().join("logs");
    delivered_tree(&root, &a, &b);
    let total = (a.len() + b.len()) as u64;
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let (code, _, err) = transform_to(&root, &dead, &out);
    assert_eq!(code, 0, "{err}");
    let got = lines(&out);
    assert_eq!(got.len() as u64, total, "{err}");
    assert_eq!(field(&err, "records_in"), total);
    assert_eq!(field(&err, "dead_lettered"), 0);
    assert!(lines(&dead).is_empty());
    // 4 five-minute objects + 2 Firehose objects; README.md and the write test
    // are not logs, .cache/ and .DS_Store are hidden.
    assert!(err.contains("merging 6 files in event time"), "{err}");
    assert!(err.contains("2 files that are not logs skipped"), "{err}");
    let times: Vec<i64> = got
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // detect over the directory: nothing late.
    let (code, _, err) = run(waflog().arg("detect").arg(&root).args(["-o", "/dev/null"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&err, "records_in"), total);
    assert_eq!(field(&err, "dead_lettered"), 0, "{err}");
    // --since/--until by the date paths below the directory: acl-a's objects of
    // 00:05 and 00:10 and Firehose's hour 00 (the whole hour: it may hold them).
    let part = dir.path().join("part.ndjson");
    let (code, _, err) = run(waflog()
        .arg("transform")
        .arg(&root)
        .args([
            "--since",
            "2024-05-01T00:05:00Z",
            "--until",
            "2024-05-01T00:15:00Z",
            "-o",
        ])
        .arg(&part));
    assert_eq!(code, 0, "{err}");
    let in_range = a
        .iter()
        .filter(|l| (5..15).contains(&((time_of(l) / 60_000) % 60)))
        .count();
    assert_eq!(lines(&part).len(), in_range + b.len());
}

#[test]
fn quoted_globs_are_expanded_by_waflog() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (generated(5, 20), generated(6, 20));
    let root = dir.path().join("logs");
    delivered_tree(&root, &a, &b);
    let out = dir.path().join("out.ndjson");
    let pattern = format!("{}/AWSLogs/**/*.log.gz", root.display());
    let (code, _, err) = run(waflog().args(["transform", &pattern, "-o"]).arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out).len(), a.len());
    assert_eq!(field(&err, "records_in"), a.len() as u64);
    assert!(err.contains("merging 4 files"), "{err}");
    // `*` stays within a folder: one hour folder of Firehose objects.
    let pattern = format!("{}/firehose/*/*/*/*/aws-waf-logs-*", root.display());
    let (code, _, err) = run(waflog().args(["transform", &pattern, "-o"]).arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out).len(), b.len());
    // A pattern that matches nothing is an error that names it.
    let pattern = format!("{}/nothing/**/*.gz", root.display());
    let (code, _, err) = run(waflog().args(["transform", &pattern, "-o"]).arg(&out));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&pattern) && err.contains("no file matches"),
        "{err}"
    );
}

#[test]
fn bad_files_are_named_in_errors_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let a = generated(7, 5);
    let root = dir.path().join("logs");
    // Two files; the second has a bad line 3 and ends in damaged gzip data.
    write(
        &root.join("a.ndjson"),
        (a[..20].join("\n") + "\n").as_bytes(),
    );
    let mut b = a[20..].to_vec();
    b[2] = "{\"timestamp\": 1714521700000, not json".to_string();
    let mut gz = gzip((b.join("\n") + "\n").as_bytes());
    gz.truncate(gz.len() - 30);
    write(&root.join("b.ndjson.gz"), &gz);
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let (code, _, err) = transform_to(&root, &dead, &out);
    assert_eq!(code, 0, "{err}");
    let d = lines(&dead);
    let b_name = root.join("b.ndjson.gz").display().to_string();
    let bad_line: Vec<_> = d.iter().filter(|e| e["line"] == 3).collect();
    assert_eq!(bad_line.len(), 1, "{d:?}");
    assert_eq!(bad_line[0]["source"], b_name.as_str());
    assert!(
        d.iter().any(|e| e["source"] == b_name.as_str()
            && e["reason"].as_str().unwrap().contains("truncated gzip")),
        "{d:?}"
    );
    let (rin, rout, rdead) = (
        field(&err, "records_in"),
        field(&err, "records_out"),
        field(&err, "dead_lettered"),
    );
    assert_eq!(
        rin + 1,
        rout + rdead,
        "the damage is one dead letter: {err}"
    );
    assert_eq!(rout as usize, lines(&out).len());
    // A named file that is missing: exit 2, named.
    let missing = root.join("missing.ndjson");
    let (code, _, err) = run(waflog().arg("transform").arg(&root).arg(&missing));
    assert_eq!(code, 2);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

/// `waflog detect --follow --idle-exit 4s INPUT`, started; its stderr piped.
fn follow(input: &Path) -> std::process::Child {
    waflog()
        .args(["detect", "--follow", "--idle-exit", "4s", "-o", "/dev/null"])
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Appends `lines` to `path`.
fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
}

#[test]
fn follow_tails_a_file_that_grows_and_is_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let a = generated(8, 10);
    assert!(a.len() > 1000);
    let log: PathBuf = dir.path().join("waf.log");
    append(&log, &a[..100]);
    let detect = follow(&log);
    let pause = || std::thread::sleep(Duration::from_millis(1500));
    pause();
    // Lines appended later, one of them in two writes.
    append(&log, &a[100..200]);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let (head, tail) = a[200].split_at(40);
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    pause();
    f.write_all(format!("{tail}\n").as_bytes()).unwrap();
    drop(f);
    pause();
    // Rotation: renamed, a new file at the path.
    std::fs::rename(&log, dir.path().join("waf.log.1")).unwrap();
    append(&log, &a[201..400]);
    pause();
    // Copy and truncate: the file starts again, shorter.
    std::fs::write(&log, (a[400..450].join("\n") + "\n").as_bytes()).unwrap();
    pause();
    let out = detect.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(field(&err, "records_in"), 450, "{err}");
    assert_eq!(field(&err, "dead_lettered"), 0, "{err}");
    assert!(err.contains("the file was replaced"), "{err}");
    assert!(err.contains("the file was truncated"), "{err}");
}

/// `--follow DIR` follows every file in the directory at once: both web ACLs'
/// files as they grow (their backlog merged in event time, so no record is
/// late), a file that appears later, the new file at a rotated path (the renamed
/// one is recognised, not read again), and no compressed rotation read twice.
#[test]
fn follow_tails_every_file_of_a_directory_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("waf");
    std::fs::create_dir_all(&root).unwrap();
    let (a, b) = (generated(8, 4), generated(9, 4));
    // A third web ACL whose file appears at minute 2.
    let (code, out, err) = run(waflog().args([
        "generate",
        "--seed",
        "10",
        "--start",
        "2024-05-01T00:02:00Z",
        "--duration",
        "2m",
        "--rate",
        "5",
    ]));
    assert_eq!(code, 0, "{err}");
    let c: Vec<String> = out.lines().map(str::to_string).collect();
    // The lines of minutes [from, to).
    let minutes = |lines: &[String], from: i64, to: i64| -> Vec<String> {
        let t0 = 1_714_521_600_000;
        lines
            .iter()
            .filter(|l| (t0 + from * 60_000..t0 + to * 60_000).contains(&time_of(l)))
            .cloned()
            .collect()
    };
    let (pa, pb, pc) = (root.join("a.log"), root.join("b.log"), root.join("c.log"));
    append(&pa, &minutes(&a, 0, 1));
    append(&pb, &minutes(&b, 0, 1));
    let detect = follow(&root);
    let pause = || std::thread::sleep(Duration::from_millis(2000));
    pause();
    // Both grow while followed; b's next line comes in two writes.
    append(&pa, &minutes(&a, 1, 2));
    let b2 = minutes(&b, 1, 2);
    let mut f = std::fs::OpenOptions::new().append(true).open(&pb).unwrap();
    let (head, rest) = b2[0].split_at(30);
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    pause();
    f.write_all(format!("{rest}\n").as_bytes()).unwrap();
    drop(f);
    append(&pb, &b2[1..]);
    pause();
    // A new file in the directory, and the next minute of the others.
    append(&pc, &minutes(&c, 2, 3));
    append(&pa, &minutes(&a, 2, 3));
    append(&pb, &minutes(&b, 2, 3));
    pause();
    // Rotation of a.log: renamed (still followed as itself), a new a.log, and a
    // compressed copy of the renamed file (skipped: its lines were read).
    std::fs::rename(&pa, root.join("a.log.1")).unwrap();
    write(
        &root.join("a.log.1.gz"),
        &gzip((minutes(&a, 0, 3).join("\n") + "\n").as_bytes()),
    );
    append(&pa, &minutes(&a, 3, 4));
    append(&pb, &minutes(&b, 3, 4));
    append(&pc, &minutes(&c, 3, 4));
    pause();
    let out = detect.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let total = (a.len() + b.len() + c.len()) as u64;
    assert_eq!(field(&err, "records_in"), total, "{err}");
    assert_eq!(field(&err, "dead_lettered"), 0, "{err}");
    assert!(err.contains("following 2 files"), "{err}");
    assert!(err.contains("c.log: a new file; following it"), "{err}");
    assert!(err.contains("a.log: a new file; following it"), "{err}");
    assert!(err.contains("a.log.1.gz: a gzip file appeared"), "{err}");
}
