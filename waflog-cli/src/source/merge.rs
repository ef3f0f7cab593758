//! Several time-ordered inputs read as one, merged line by line in event time.
//!
//! AWS WAF delivers one S3 object per web ACL per five minutes, so a prefix that
//! holds several web ACLs has several objects covering the same minutes. Read one
//! after another, the second object's records would all be older than the first's
//! and arrive after their intervals closed. Each web ACL's objects form a channel
//! (already in delivery order); the channels are merged here by each line's
//! `timestamp`, so detection sees one stream in event time.
//!
//! Local files go through the same merge, each file a channel of its own: one
//! file's records are in order, but files may follow one another (rotated logs,
//! five-minute objects copied from S3) or cover the same minutes (two web ACLs).
//! A merge of sorted channels is right in both cases; so that thousands of files
//! one after another do not all sit open at once, a channel whose first record's
//! time is known ([`Channel::lazy`]) is opened only when the merge reaches it.
//! S3 channels are opened at once (knowing an object's first record would cost
//! a GET of it), and are few: one per delivery folder.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use waflog_core::parse::lines::{Line, LineReader};

use super::file::{Failure, Input, Origin, Origins, line_time};

/// Most bytes handed over per `read` call before looking at the heap again.
const OUT_BLOCK: usize = 64 << 10;

/// One channel to merge: its inputs in order (opened as it reaches them), and
/// the event time of its first record when known in advance ([`Channel::lazy`]):
/// the channel is opened only once the merge has reached that time, so
/// thousands of files one after another keep only the few that overlap open.
pub struct Channel {
    inputs: Box<dyn Iterator<Item = io::Result<Input>> + Send>,
    first: i64,
}

impl Channel {
    /// A channel of `inputs` opened when the merge starts (S3 delivery folders).
    pub fn new(inputs: impl Iterator<Item = Input> + Send + 'static) -> Channel {
        Channel {
            inputs: Box::new(inputs.map(Ok)),
            first: i64::MIN,
        }
    }

    /// A channel of inputs still to open (opening one may fail), whose first record
    /// has the event time `first` (ms; `i64::MIN` when not known: opened at once).
    pub fn lazy(
        inputs: impl Iterator<Item = io::Result<Input>> + Send + 'static,
        first: i64,
    ) -> Channel {
        Channel {
            inputs: Box::new(inputs),
            first,
        }
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

/// A channel being merged: its inputs, the one being read, its next line and
/// where that line comes from.
struct Lane {
    channel: Channel,
    current: Option<Current>,
    head: Vec<u8>,
    origin: Option<Origin>,
}

struct Current {
    name: Arc<str>,
    lines: LineReader<Box<dyn Read + Send>>,
    failure: Option<Failure>,
}

/// The channels merged by event time, as one reader of NDJSON lines. Blank lines
/// are dropped; a line over the limit is handed over cut to the limit (it then
/// fails to parse and is dead-lettered with its start). Where each line handed
/// over comes from (input, line, byte offset) is queued in [`Merged::origins`],
/// for dead letters that name the input. An input that stops early (a corrupt
/// object) is recorded in [`Merged::failure`] (by its own name) and the merge
/// goes on; one that cannot be opened ends the merge with an error naming it.
pub struct Merged {
    lanes: Vec<Lane>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// Lanes not opened yet, the one with the latest first record first.
    pending: Vec<usize>,
    started: bool,
    out: Vec<u8>,
    pos: usize,
    max_line: usize,
    failure: Failure,
    origins: Origins,
}

impl std::fmt::Debug for Merged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merged")
            .field("channels", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

impl Merged {
    /// Merges `channels`; records of equal times come in channel order.
    pub fn new(channels: Vec<Channel>, max_line: usize) -> Merged {
        Merged {
            lanes: channels
                .into_iter()
                .map(|channel| Lane {
                    channel,
                    current: None,
                    head: Vec::new(),
                    origin: None,
                })
                .collect(),
            heap: BinaryHeap::new(),
            pending: Vec::new(),
            started: false,
            out: Vec::with_capacity(OUT_BLOCK * 2),
            pos: 0,
            max_line,
            failure: Failure::default(),
            origins: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Where the inputs that stopped early are recorded.
    pub fn failure(&self) -> Failure {
        Arc::clone(&self.failure)
    }

    /// Where each line handed over comes from, in order: the reader of the merged
    /// lines takes one per line.
    pub fn origins(&self) -> Origins {
        Arc::clone(&self.origins)
    }

    /// This merge as one input named `name`.
    pub fn into_input(self, name: String) -> Input {
        let failure = self.failure();
        let origins = self.origins();
        Input {
            name,
            reader: Box::new(self),
            size: None,
            failure: Some(failure),
            origins: Some(origins),
        }
    }

    /// Loads lane `i`'s next non-blank line into its head; false at its end.
    fn advance(&mut self, i: usize) -> io::Result<bool> {
        let max_line = self.max_line;
        let Some(lane) = self.lanes.get_mut(i) else {
            return Ok(false);
        };
        loop {
            if lane.current.is_none() {
                let Some(input) = lane.channel.inputs.next() else {
                    return Ok(false);
                };
                let input = input?;
                lane.current = Some(Current {
                    name: Arc::from(input.name.as_str()),
                    lines: LineReader::new(input.reader, max_line),
                    failure: input.failure,
                });
            }
            let Some(cur) = lane.current.as_mut() else {
                continue;
            };
            let read = cur.lines.next_line().map_err(|e| {
                io::Error::new(e.kind(), format!("cannot read input {}: {e}", cur.name))
            })?;
            let (bytes, line, offset) = match read {
                Some(Line::Ok {
                    bytes,
                    number,
                    offset,
                }) => {
                    if bytes.trim_ascii().is_empty() {
                        continue;
                    }
                    (bytes, number, offset)
                }
                Some(Line::TooLong {
                    prefix,
                    number,
                    offset,
                    ..
                }) => (prefix, number, offset),
                None => {
                    let failed: Vec<(String, String)> = cur
                        .failure
                        .as_ref()
                        .and_then(|f| f.lock().ok().map(|mut v| std::mem::take(&mut *v)))
                        .unwrap_or_default();
                    if let Ok(mut f) = self.failure.lock() {
                        f.extend(failed);
                    }
                    lane.current = None;
                    continue;
                }
            };
            lane.head.clear();
            lane.head.extend_from_slice(bytes);
            lane.origin = Some(Origin {
                name: Arc::clone(&cur.name),
                line,
                offset,
            });
            return Ok(true);
        }
    }

    /// Opens lane `i` and puts its first line on the heap.
    fn open(&mut self, i: usize) -> io::Result<()> {
        if self.advance(i)? {
            let t = line_time(&self.lanes[i].head);
            self.heap.push(Reverse((t, i)));
        }
        Ok(())
    }

    /// Opens the pending lanes whose first record is due: at or before the
    /// earliest line on the heap (or any, when the heap is empty).
    fn open_due(&mut self) -> io::Result<()> {
        while let Some(&i) = self.pending.last() {
            let due = match self.heap.peek() {
                Some(Reverse((t, _))) => self.lanes[i].channel.first <= *t,
                None => true,
            };
            if !due {
                break;
            }
            self.pending.pop();
            self.open(i)?;
        }
        Ok(())
    }
}

impl Read for Merged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            let mut order: Vec<usize> = (0..self.lanes.len()).collect();
            order.sort_by_key(|&i| Reverse((self.lanes[i].channel.first, i)));
            self.pending = order;
        }
        if self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
            let mut origins = Vec::new();
            while self.out.len() < OUT_BLOCK {
                self.open_due()?;
                let Some(Reverse((_, i))) = self.heap.pop() else {
                    break;
                };
                self.out.extend_from_slice(&self.lanes[i].head);
                self.out.push(b'\n');
                origins.extend(self.lanes[i].origin.take());
                if self.advance(i)? {
                    let t = line_time(&self.lanes[i].head);
                    self.heap.push(Reverse((t, i)));
                }
            }
            if let Ok(mut q) = self.origins.lock() {
                q.extend(origins);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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
            origins: None,
        }
    }

    fn channel(inputs: Vec<Input>) -> Channel {
        Channel::new(inputs.into_iter())
    }

    /// A channel of one input that counts when it is opened.
    fn counted(name: &str, text: &str, first: i64, opened: &Arc<Mutex<Vec<String>>>) -> Channel {
        let (name, text, opened) = (name.to_string(), text.to_string(), Arc::clone(opened));
        let open = std::iter::once_with(move || {
            opened.lock().unwrap().push(name.clone());
            Ok(input(&name, &text, None))
        });
        Channel::lazy(open, first)
    }

    /// The merge read to its end: each line's event time, in milliseconds after
    /// 2024-05-01T00:00:00Z.
    fn times(m: &mut Merged) -> Vec<i64> {
        let mut text = String::new();
        m.read_to_string(&mut text).unwrap();
        text.lines()
            .map(|l| line_time(l.as_bytes()) - 1_714_521_600_000)
            .collect()
    }

    #[test]
    fn channels_open_when_the_merge_reaches_their_first_record() {
        let opened = Arc::new(Mutex::new(Vec::new()));
        let t = |ms: i64| format!("{{\"timestamp\":{}}}\n", 1_714_521_600_000 + ms);
        let channels = vec![
            counted("c", &(t(5) + &t(6)), 1_714_521_600_005, &opened),
            counted("a", &(t(1) + &t(3)), 1_714_521_600_001, &opened),
            counted("b", &(t(2) + &t(4)), 1_714_521_600_002, &opened),
        ];
        let mut m = Merged::new(channels, 1 << 20);
        let origins = m.origins();
        assert_eq!(times(&mut m), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(*opened.lock().unwrap(), ["a", "b", "c"]);
        let from: Vec<(String, u64)> = origins
            .lock()
            .unwrap()
            .iter()
            .map(|o| (o.name.to_string(), o.line))
            .collect();
        let expected = [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("c", 1), ("c", 2)];
        assert_eq!(from, expected.map(|(n, l)| (n.to_string(), l)).to_vec());
    }

    #[test]
    fn an_input_that_cannot_be_opened_ends_the_merge_with_its_name() {
        let bad = Channel::lazy(
            std::iter::once(Err(io::Error::other("cannot open input logs/x.gz"))),
            5,
        );
        let good = channel(vec![input("a", "{\"timestamp\":1}\n", None)]);
        let mut m = Merged::new(vec![good, bad], 1 << 20);
        let err = m.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("logs/x.gz"), "{err}");
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
        assert_eq!(times(&mut m), vec![1, 2, 4, 5, 6]);
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
