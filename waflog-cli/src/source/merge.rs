//! Several time-ordered inputs read as one, merged line by line in event time.
//!
//! AWS WAF delivers one S3 object per web ACL per five minutes, so a prefix that
//! holds several web ACLs has several objects covering the same minutes. Read one
//! after another, the second object's records would all be older than the first's
//! and arrive after their intervals closed. Each web ACL's objects form a channel
//! (already in delivery order); the channels are merged here by each line's
//! `timestamp`, so detection sees one stream in event time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};

use waflog_core::parse::lines::{Line, LineReader};

use super::file::{Failure, Input};

/// Most bytes handed over per `read` call before looking at the heap again.
const OUT_BLOCK: usize = 64 << 10;

/// One channel: its inputs in order, the one being read, and its next line.
struct Channel {
    inputs: Box<dyn Iterator<Item = Input> + Send>,
    current: Option<Current>,
    head: Vec<u8>,
}

struct Current {
    lines: LineReader<Box<dyn Read + Send>>,
    failure: Option<Failure>,
}

/// The channels merged by event time, as one reader of NDJSON lines. Blank lines
/// are dropped; a line over the limit is handed over cut to the limit (it then
/// fails to parse and is dead-lettered with its start). An input that stops early
/// (a corrupt object) is recorded in [`Merged::failure`] (by its own name) and the
/// merge goes on.
pub struct Merged {
    channels: Vec<Channel>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    started: bool,
    out: Vec<u8>,
    pos: usize,
    max_line: usize,
    failure: Failure,
}

impl Merged {
    /// Merges `channels` (each an ordered sequence of inputs).
    pub fn new(channels: Vec<Box<dyn Iterator<Item = Input> + Send>>, max_line: usize) -> Merged {
        Merged {
            channels: channels
                .into_iter()
                .map(|inputs| Channel {
                    inputs,
                    current: None,
                    head: Vec::new(),
                })
                .collect(),
            heap: BinaryHeap::new(),
            started: false,
            out: Vec::with_capacity(OUT_BLOCK * 2),
            pos: 0,
            max_line,
            failure: Failure::default(),
        }
    }

    /// Where the inputs that stopped early are recorded.
    pub fn failure(&self) -> Failure {
        std::sync::Arc::clone(&self.failure)
    }

    /// Loads channel `i`'s next non-blank line into its head; false at its end.
    fn advance(&mut self, i: usize) -> io::Result<bool> {
        let max_line = self.max_line;
        let Some(ch) = self.channels.get_mut(i) else {
            return Ok(false);
        };
        loop {
            if ch.current.is_none() {
                let Some(input) = ch.inputs.next() else {
                    return Ok(false);
                };
                ch.current = Some(Current {
                    lines: LineReader::new(input.reader, max_line),
                    failure: input.failure,
                });
            }
            let Some(cur) = ch.current.as_mut() else {
                continue;
            };
            match cur.lines.next_line()? {
                Some(Line::Ok { bytes, .. }) => {
                    if bytes.trim_ascii().is_empty() {
                        continue;
                    }
                    ch.head.clear();
                    ch.head.extend_from_slice(bytes);
                    return Ok(true);
                }
                Some(Line::TooLong { prefix, .. }) => {
                    ch.head.clear();
                    ch.head.extend_from_slice(prefix);
                    return Ok(true);
                }
                None => {
                    let failed: Vec<(String, String)> = cur
                        .failure
                        .as_ref()
                        .and_then(|f| f.lock().ok().map(|mut v| std::mem::take(&mut *v)))
                        .unwrap_or_default();
                    if let Ok(mut f) = self.failure.lock() {
                        f.extend(failed);
                    }
                    ch.current = None;
                }
            }
        }
    }
}

impl Read for Merged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            for i in 0..self.channels.len() {
                if self.advance(i)? {
                    let t = line_time(&self.channels[i].head);
                    self.heap.push(Reverse((t, i)));
                }
            }
        }
        if self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
            while self.out.len() < OUT_BLOCK {
                let Some(Reverse((_, i))) = self.heap.pop() else {
                    break;
                };
                self.out.extend_from_slice(&self.channels[i].head);
                self.out.push(b'\n');
                if self.advance(i)? {
                    let t = line_time(&self.channels[i].head);
                    self.heap.push(Reverse((t, i)));
                }
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A line's `timestamp` in epoch ms ([`waflog_core::parse::event_time`]); lines
/// without one sort first.
pub fn line_time(line: &[u8]) -> i64 {
    waflog_core::parse::event_time(line).unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, text: &str, failure: Option<&str>) -> Input {
        let f: Option<Failure> =
            failure.map(|r| Failure::new(vec![(name.to_string(), r.to_string())].into()));
        Input {
            name: name.to_string(),
            reader: Box::new(io::Cursor::new(text.as_bytes().to_vec())),
            size: None,
            failure: f,
        }
    }

    fn channel(inputs: Vec<Input>) -> Box<dyn Iterator<Item = Input> + Send> {
        Box::new(inputs.into_iter())
    }

    #[test]
    fn channels_are_merged_in_event_time() {
        let a = channel(vec![
            input(
                "a1",
                "{\"timestamp\":1714521600001,\"n\":\"a1\"}\n{\"timestamp\":1714521600004}\n",
                None,
            ),
            input("a2", "{\"timestamp\":1714521600006}\n", None),
        ]);
        let b = channel(vec![input(
            "b1",
            "\n{\"n\":2,\"timestamp\":\"2024-05-01T00:00:00.002Z\"}\n{\"timestamp\":1714521600005}",
            None,
        )]);
        let mut m = Merged::new(vec![a, b], 1 << 20);
        let mut text = String::new();
        m.read_to_string(&mut text).unwrap();
        let times: Vec<i64> = text
            .lines()
            .map(|l| line_time(l.as_bytes()) - 1_714_521_600_000)
            .collect();
        assert_eq!(times, vec![1, 2, 4, 5, 6]);
    }

    #[test]
    fn a_failed_input_is_recorded_and_the_merge_goes_on() {
        let a = channel(vec![
            input(
                "s3://b/bad.log.gz",
                "{\"timestamp\":1}\n",
                Some("corrupt gzip data"),
            ),
            input("s3://b/good.log.gz", "{\"timestamp\":3}\n", None),
        ]);
        let b = channel(vec![input("s3://b/other", "{\"timestamp\":2}\n", None)]);
        let mut m = Merged::new(vec![a, b], 1 << 20);
        let failure = m.failure();
        let mut text = String::new();
        m.read_to_string(&mut text).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(
            *failure.lock().unwrap(),
            vec![(
                "s3://b/bad.log.gz".to_string(),
                "corrupt gzip data".to_string()
            )]
        );
    }

    #[test]
    fn line_times() {
        assert_eq!(
            line_time(b"{\"timestamp\":1714521600000,\"a\":1}"),
            1_714_521_600_000
        );
        assert_eq!(
            line_time(b"{\"a\":1,\"timestamp\":1714521600007}"),
            1_714_521_600_007
        );
        assert_eq!(line_time(b"not json"), i64::MIN);
        assert_eq!(line_time(b"{\"timestamp\":12x}"), i64::MIN);
    }
}
