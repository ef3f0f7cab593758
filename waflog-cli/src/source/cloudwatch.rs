//! CloudWatch Logs log groups as an input: `cloudwatch://GROUP[?prefix=STREAM_PREFIX]`.
//!
//! AWS WAF logs to groups named `aws-waf-logs-*`, one log event per request, its
//! message the JSON record. The group is read with `FilterLogEvents`, which
//! returns the events of all its streams interleaved in event-time order, page by
//! page (`nextToken`); `--since` / `--until` become its `startTime` / `endTime`
//! (event time; inclusive start, exclusive end). With a stream prefix, the
//! streams are listed first (`DescribeLogStreams`) and named in the call; when
//! more than 100 match (the call's limit), the prefix itself is passed
//! (`logStreamNamePrefix`). Throttling and server errors are retried with backoff
//! ([`crate::aws::retry`]); a call that keeps failing past --operation-timeout, a
//! permanent error (a missing group, bad credentials) or Ctrl-C ends the run
//! with the reason, after what was read.
//!
//! With `--follow` ([`open`] with `follow`) the group is polled once the pages run out: every
//! [`POLL`] a new query starts [`LOOKBACK_MS`] before the newest event seen, so
//! events ingested late (CloudWatch Logs accepts timestamps in the past) are still
//! read, and the events already handed over in that window are recognised by
//! their event ID and not repeated. It is followed until `--idle-exit` or Ctrl-C.
//!
//! Each event's message becomes one input line (a trailing newline dropped); the
//! record splitter then reads it like any other input, so pretty-printed records
//! and CloudWatch subscription payloads are taken too.
//!
//! With `--state`, a run resumes where the last one stopped: the [`Position`]
//! (the newest event time read and the IDs of the events at that time) is kept
//! in the state's `checkpoints` under the group's name, reading starts at that
//! time and those events are not read again. A run records its position when it
//! has read the group to its end and every record went through (not with
//! `--follow`, nor when stopped by an error or Ctrl-C: the next run then reads
//! again from the last recorded position). Events ingested later with times
//! before the position are not read, as with `--since`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;

use crate::aws::{Aws, CallError, GaveUp, Trouble, retry};
use crate::location::Location;
use crate::source::S3Range;
use crate::source::file::Input;

/// Most stream names one `FilterLogEvents` call takes.
const MAX_STREAM_NAMES: usize = 100;

/// `--follow`: the pause between two polls of a group read to its end.
pub const POLL: Duration = Duration::from_secs(2);

/// `--follow`: how far before the newest event seen a poll starts, for events
/// ingested late (event IDs seen in this window are not handed over twice).
pub const LOOKBACK_MS: i64 = 60_000;

/// Where reading a group stopped: the newest event time handed over and the IDs
/// of the events at that time (kept in `--state` as `"TIME_MS ID ID ..."`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Event time, epoch milliseconds.
    pub at_ms: i64,
    /// The events read at `at_ms`.
    pub ids: BTreeSet<String>,
}

impl Position {
    /// From its `--state` text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Position> {
        let mut parts = text.split(' ');
        let at_ms = parts.next()?.parse().ok()?;
        let ids = parts
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        Some(Position { at_ms, ids })
    }

    /// Its `--state` text.
    pub fn encode(&self) -> String {
        let mut text = self.at_ms.to_string();
        for id in &self.ids {
            text.push(' ');
            text.push_str(id);
        }
        text
    }

    /// Whether the event (time, ID) was read before this position.
    fn covers(&self, time: i64, id: &str) -> bool {
        time < self.at_ms || (time == self.at_ms && self.ids.contains(id))
    }

    /// Moves past the event (time, ID).
    fn take(&mut self, time: i64, id: &str) {
        if time > self.at_ms {
            self.at_ms = time;
            self.ids.clear();
        }
        if time == self.at_ms {
            self.ids.insert(id.to_string());
        }
    }
}

/// The positions of a run's groups, by group name (`cloudwatch://GROUP[?prefix=P]`):
/// set from `--state` before the inputs open, updated as their pages are read.
#[derive(Debug, Clone, Default)]
pub struct Positions(Arc<Mutex<BTreeMap<String, Position>>>);

impl Positions {
    /// From the checkpoints of a state file (those of groups).
    pub fn from_checkpoints(checkpoints: &BTreeMap<String, String>) -> Positions {
        let map = checkpoints
            .iter()
            .filter(|(k, _)| k.starts_with("cloudwatch://"))
            .filter_map(|(k, v)| Position::parse(v).map(|p| (k.clone(), p)))
            .collect();
        Positions(Arc::new(Mutex::new(map)))
    }

    /// Every group's position, as state checkpoints.
    pub fn checkpoints(&self) -> BTreeMap<String, String> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, p)| (k.clone(), p.encode())).collect())
            .unwrap_or_default()
    }

    fn get(&self, group: &str) -> Option<Position> {
        self.0.lock().ok().and_then(|m| m.get(group).cloned())
    }

    fn set(&self, group: &str, p: &Position) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(group.to_string(), p.clone());
        }
    }
}

/// Which streams of the group are read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Streams {
    /// Every stream.
    All,
    /// These, by name (the prefix's, when there are few enough to name).
    Named(Vec<String>),
    /// Those whose names start with this (too many to name).
    Prefix(String),
}

/// The events of `group` (streams starting with `prefix`) in `range`, as one
/// input named `name`; with `follow` (`--follow`, and no `--until` to end it),
/// polled for new events every [`POLL`] once read to its end.
pub fn open(
    aws: Arc<Aws>,
    name: &str,
    group: &str,
    prefix: Option<&str>,
    range: &S3Range,
    follow: bool,
) -> Input {
    let follow = follow && range.to_ms.is_none();
    let key = Location::CloudWatch {
        group: group.to_string(),
        prefix: prefix.map(str::to_string),
    }
    .to_string();
    let resume = range.cloudwatch.get(&key);
    let mut start = range.from_ms;
    if let Some(r) = &resume {
        tracing::info!(
            "{name}: resuming after {} (--state)",
            waflog_core::timestamp::to_rfc3339(r.at_ms)
        );
        start = Some(start.map_or(r.at_ms, |s| s.max(r.at_ms)));
    }
    let reader = Events {
        reached: resume.clone().unwrap_or_default(),
        resume,
        positions: range.cloudwatch.clone(),
        key,
        follow,
        seen: VecDeque::new(),
        seen_ids: BTreeSet::new(),
        newest: None,
        trouble: aws.trouble(name),
        client: aws.logs(),
        aws,
        name: name.to_string(),
        group: group.to_string(),
        prefix: prefix.map(str::to_string),
        streams: None,
        listed: None,
        start,
        // endTime is inclusive; --until is not.
        end: range.to_ms.map(|t| t - 1),
        token: None,
        done: false,
        buf: Vec::new(),
        pos: 0,
        pages: 0,
        events: 0,
    };
    Input {
        name: name.to_string(),
        reader: Box::new(reader),
        size: None,
        failure: None,
        origins: None,
    }
}

/// The group's events as bytes, one message per line, a page fetched when the
/// last one is used up.
struct Events {
    /// Polled for new events at the end (`--follow`).
    follow: bool,
    /// Where the last run stopped (`--state`): events up to it are skipped.
    resume: Option<Position>,
    /// Where this read has got to (recorded in `positions` unless following).
    reached: Position,
    positions: Positions,
    /// The group's name in `positions`.
    key: String,
    /// Events handed over within [`LOOKBACK_MS`] of the newest: (time, ID), in
    /// order, and their IDs (only kept when following).
    seen: VecDeque<(i64, String)>,
    seen_ids: BTreeSet<String>,
    /// The newest event time handed over.
    newest: Option<i64>,
    aws: Arc<Aws>,
    client: aws_sdk_cloudwatchlogs::Client,
    trouble: Trouble,
    name: String,
    group: String,
    prefix: Option<String>,
    /// Resolved before the first page (and before each poll, with a prefix).
    streams: Option<Streams>,
    /// How many streams the last listing found (logged when it changes).
    listed: Option<usize>,
    start: Option<i64>,
    end: Option<i64>,
    token: Option<String>,
    done: bool,
    buf: Vec<u8>,
    pos: usize,
    pages: u64,
    events: u64,
}

impl Events {
    /// The streams to read: every one, or the prefix's by name (listed with
    /// `DescribeLogStreams`), or the prefix itself when more than the call can name.
    fn resolve_streams(&mut self) -> Result<Streams, GaveUp> {
        let Some(prefix) = self.prefix.clone() else {
            return Ok(Streams::All);
        };
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let (aws, client, group) = (&self.aws, &self.client, &self.group);
        loop {
            let out = retry(aws, &mut self.trouble, 0x1f3d_5b79, || {
                let call = client
                    .describe_log_streams()
                    .log_group_name(group)
                    .log_stream_name_prefix(&prefix)
                    .set_next_token(token.clone())
                    .send();
                Ok(aws.call(call)?.map_err(|e| CallError::from_sdk(&e)))
            })?;
            names.extend(
                out.log_streams()
                    .iter()
                    .filter_map(|s| s.log_stream_name().map(str::to_string)),
            );
            token = out.next_token().map(str::to_string);
            if names.len() > MAX_STREAM_NAMES {
                if self.listed != Some(usize::MAX) {
                    tracing::info!(
                        "{}: over {MAX_STREAM_NAMES} log streams start with `{prefix}`",
                        self.name
                    );
                }
                self.listed = Some(usize::MAX);
                return Ok(Streams::Prefix(prefix));
            }
            if token.is_none() {
                break;
            }
        }
        let count = names.len();
        if self.listed != Some(count) {
            if count == 0 {
                tracing::warn!("{}: no log stream starts with `{prefix}`", self.name);
            } else {
                tracing::info!("{}: {count} log streams", self.name);
            }
        }
        self.listed = Some(count);
        Ok(Streams::Named(names))
    }

    /// One `FilterLogEvents` page, retried.
    fn page(&mut self, streams: &Streams) -> Result<FilterLogEventsOutput, GaveUp> {
        let (names, prefix) = match streams {
            Streams::All => (None, None),
            Streams::Named(n) => (Some(n.clone()), None),
            Streams::Prefix(p) => (None, Some(p.clone())),
        };
        let (aws, client) = (&self.aws, &self.client);
        let (group, token, start, end) = (&self.group, &self.token, self.start, self.end);
        let seed = 0x2545_f491_4f6c_dd1d ^ self.pages;
        retry(aws, &mut self.trouble, seed, || {
            // AWS always interleaves the streams (it ignores the flag since 2019);
            // moto, the local test server, sorts them only when asked.
            #[allow(deprecated)]
            let call = client
                .filter_log_events()
                .log_group_name(group)
                .set_log_stream_names(names.clone())
                .set_log_stream_name_prefix(prefix.clone())
                .set_start_time(start)
                .set_end_time(end)
                .set_next_token(token.clone())
                .interleaved(true)
                .send();
            Ok(aws.call(call)?.map_err(|e| CallError::from_sdk(&e)))
        })
    }

    /// Fills the buffer with the next page's messages; false at the end.
    fn next_page(&mut self) -> Result<bool, GaveUp> {
        while !self.done {
            let streams = match self.streams.clone() {
                Some(s) => s,
                None => {
                    let s = self.resolve_streams()?;
                    self.streams = Some(s.clone());
                    s
                }
            };
            if streams == Streams::Named(Vec::new()) {
                if !self.follow {
                    self.done = true;
                    break;
                }
                // Followed: the prefix's streams may appear later.
                self.aws.sleep(POLL).map_err(|_| GaveUp::Interrupted)?;
                self.streams = None;
                continue;
            }
            let out = self.page(&streams)?;
            self.pages += 1;
            self.buf.clear();
            self.pos = 0;
            for e in out.events() {
                if let (Some(r), Some(t), Some(id)) = (&self.resume, e.timestamp(), e.event_id())
                    && r.covers(t, id)
                {
                    continue;
                }
                if self.follow && !self.first_time(e.timestamp(), e.event_id()) {
                    continue;
                }
                if let (Some(t), Some(id)) = (e.timestamp(), e.event_id()) {
                    self.reached.take(t, id);
                }
                if let Some(m) = e.message() {
                    self.buf
                        .extend_from_slice(m.trim_end_matches(['\n', '\r']).as_bytes());
                    self.buf.push(b'\n');
                    self.events += 1;
                }
            }
            // No token is the end; a token that comes back unchanged too.
            let next = out.next_token().map(str::to_string);
            let end = next.is_none() || next == self.token;
            self.token = next;
            // The run saves it only once every event read is taken in (a group
            // read to its end, a follow ended by --idle-exit).
            self.positions.set(&self.key, &self.reached);
            if end && self.follow {
                // The next poll: from just before the newest event, the
                // prefix's streams listed again (new ones are read too).
                self.poll_again();
                if !self.buf.is_empty() {
                    return Ok(true);
                }
                self.aws.sleep(POLL).map_err(|_| GaveUp::Interrupted)?;
                continue;
            }
            self.done = end;
            if self.done {
                tracing::info!(
                    "{}: {} log events in {} FilterLogEvents pages",
                    self.name,
                    self.events,
                    self.pages
                );
            }
            if !self.buf.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Events {
    /// Following: whether the event (time, ID) is new, remembering it; events
    /// without an ID or time are taken.
    fn first_time(&mut self, time: Option<i64>, id: Option<&str>) -> bool {
        let (Some(time), Some(id)) = (time, id) else {
            return true;
        };
        if self.seen_ids.contains(id) {
            return false;
        }
        self.seen.push_back((time, id.to_string()));
        self.seen_ids.insert(id.to_string());
        let newest = self.newest.map_or(time, |n| n.max(time));
        self.newest = Some(newest);
        // Forget what is too old to come again.
        while let Some((t, _)) = self.seen.front() {
            if *t >= newest - LOOKBACK_MS {
                break;
            }
            if let Some((_, old)) = self.seen.pop_front() {
                self.seen_ids.remove(&old);
            }
        }
        true
    }

    /// The next poll starts [`LOOKBACK_MS`] before the newest event seen.
    fn poll_again(&mut self) {
        self.token = None;
        if self.prefix.is_some() {
            self.streams = None;
        }
        if let Some(newest) = self.newest {
            let from = newest - LOOKBACK_MS;
            self.start = Some(self.start.map_or(from, |s| s.max(from)));
        }
    }
}

impl Read for Events {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.next_page() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(g) => {
                    self.done = true;
                    self.buf.clear();
                    self.pos = 0;
                    return Err(match g {
                        GaveUp::Interrupted => io::Error::new(
                            io::ErrorKind::Interrupted,
                            crate::interrupt::Interrupted,
                        ),
                        g => io::Error::other(format!(
                            "{:#} (nothing after this point was read)",
                            g.into_error(&format!("cannot read {}", self.name))
                        )),
                    });
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
