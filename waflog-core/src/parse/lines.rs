//! Block-wise record splitting with a record-length limit.
//!
//! [`LineReader`] reads large blocks from any [`Read`] and hands out one WAF record at a
//! time, borrowed, without copying. It reads every shape AWS and people write records
//! in, without buffering more than one record:
//!
//! - **JSON lines** (one object per line, as WAF writes to S3): the fast path. Lines are
//!   found with `memchr`; a line that starts with `{` and ends with `}` and holds no
//!   `}{` is handed out as it is. Any other line that does not start like JSON (text,
//!   a number, a truncated record that does not start with `{`) is handed out whole
//!   too, so the parser can dead-letter it with its reason.
//! - **Concatenated objects** (`{...}{...}`, as Firehose delivers to S3 when no
//!   delimiter is set), **pretty-printed** objects over several lines and **JSON
//!   arrays** of objects (`[{...}, {...}]`, on one line or many): a line that is not
//!   one simple record is split by a structural scan that follows strings, escapes
//!   and nesting to each object's closing brace; commas and brackets between the
//!   array's objects are skipped.
//! - **A damaged record costs only itself.** An object runs over several lines only
//!   when its opening brace ends its line, as pretty-printers write it; an object with
//!   more on its first line ends with that line. A record that ends before its braces
//!   close is cut where it cannot go on: at the end of its line (as above), at a raw
//!   newline inside a string (JSON strings cannot hold one), at a line that starts
//!   with `{` in the first column (the next record of pretty-printed output), or at
//!   the end of the input. The cut part is handed out as a record, which the parser
//!   then rejects.
//!
//! A record longer than the limit is not buffered whole: its first `max` bytes are kept
//! as a prefix for the dead-letter output and the rest is skipped, so memory stays
//! bounded by the limit plus one block whatever the input holds.
//!
//! Each record carries the number of the line it starts on (for JSON lines, its line
//! number) and the byte offset where it starts. A record over several lines is handed
//! out on one, without the whitespace between its tokens, so outputs stay one record
//! per line.

use std::io::{self, Read};

/// Read size: 1 MiB blocks.
pub const BLOCK: usize = 1 << 20;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One record handed out by [`LineReader::next_line`] (a line without its `\n`, or
/// one object of a line or of several).
#[derive(Debug)]
pub enum Line<'a> {
    /// A record within the limit.
    Ok {
        /// 1-based number of the line it starts on.
        number: u64,
        /// The bytes (for a JSON line, the line without its newline).
        bytes: &'a [u8],
        /// Byte offset in the input where it starts (`None` when not known, as for
        /// lines handed on by another reader).
        offset: Option<u64>,
    },
    /// A record over the limit.
    TooLong {
        /// 1-based number of the line it starts on.
        number: u64,
        /// Its first `max` bytes.
        prefix: &'a [u8],
        /// Its full length in bytes.
        len: u64,
        /// Byte offset in the input where it starts, when known.
        offset: Option<u64>,
    },
}

/// Where a structural scan stopped.
enum Stop {
    /// The object closed: its last byte is at this position.
    Closed(usize),
    /// The object is damaged and ends before this position (a newline).
    Cut(usize),
    /// The buffer ends before the object does.
    More,
}

/// The state of a structural scan through one object.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Newlines passed inside the object.
    newlines: u64,
    /// Something follows the opening brace on its line (so the object is not
    /// pretty-printed and must end on that line).
    inline: bool,
}

impl Scan {
    /// Scans `bytes[from..]` (the object's `{` first, or where the last scan stopped);
    /// `eof`: no more input.
    /// Returns where it stopped and the position it scanned to.
    fn run(&mut self, bytes: &[u8], from: usize, eof: bool) -> (Stop, usize) {
        let mut i = from;
        while i < bytes.len() {
            let b = bytes[i];
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                } else if b == b'\n' {
                    return (Stop::Cut(i), i);
                }
            } else {
                if self.depth > 0 && self.newlines == 0 && !b.is_ascii_whitespace() {
                    self.inline = true;
                }
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return (Stop::Closed(i), i + 1);
                        }
                    }
                    b'\n' if self.inline && self.newlines == 0 => return (Stop::Cut(i), i),
                    b'\n' => match bytes.get(i + 1) {
                        Some(b'{') => return (Stop::Cut(i), i),
                        Some(_) => self.newlines += 1,
                        None if eof => self.newlines += 1,
                        // Whether the next line starts a record is not known yet.
                        None => return (Stop::More, i),
                    },
                    _ => {}
                }
            }
            i += 1;
        }
        (Stop::More, i)
    }
}

/// `json` without the whitespace between its tokens, into `out`: a pretty-printed
/// object on one line (its strings, which hold no raw line break, kept as they are).
fn one_line(json: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b.is_ascii_whitespace() {
            continue;
        }
        out.push(b);
    }
}

/// Splits a byte stream into records, block by block.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes from `start` already searched for a newline (fast path).
    scanned: usize,
    eof: bool,
    /// Line number of the last record handed out.
    number: u64,
    /// Newlines consumed before `start`.
    lines: u64,
    /// `start` is at the start of a line.
    at_line_start: bool,
    /// Inside a top-level JSON array.
    in_array: bool,
    max: usize,
    long_prefix: Vec<u8>,
    bytes_read: u64,
    /// Byte offset of the last record handed out.
    offset: u64,
    /// `}{`: a line holding it may hold several objects.
    joined: memchr::memmem::Finder<'static>,
}

impl<R: Read> LineReader<R> {
    /// A reader with the given record limit in bytes.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; BLOCK.max(max_line + 1) + BLOCK],
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            number: 0,
            lines: 0,
            at_line_start: true,
            in_array: false,
            max: max_line,
            long_prefix: Vec::new(),
            bytes_read: 0,
            offset: 0,
            joined: memchr::memmem::Finder::new(b"}{"),
        }
    }

    /// Total bytes read from the inner reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The absolute offset of buffer position `i`.
    fn abs(&self, i: usize) -> u64 {
        self.bytes_read - (self.end - i) as u64
    }

    /// Whether a whole line can be handed out as it is (see the module docs).
    fn simple(&self, line: &[u8]) -> bool {
        let t = line.trim_ascii();
        let t = t.strip_prefix(BOM).unwrap_or(t);
        match t.first() {
            None => true,
            Some(b'{') => t.last() == Some(&b'}') && self.joined.find(t).is_none(),
            Some(b'[' | b']' | b',') => false,
            Some(_) => true,
        }
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            if self.at_line_start {
                self.scanned = self.scanned.max(self.start);
                if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                    let nl = self.scanned + i;
                    if self.simple(&self.buf[self.start..nl]) {
                        return Ok(Some(self.hand_out_line(nl, nl + 1)));
                    }
                } else {
                    self.scanned = self.end;
                    let pending = self.end - self.start;
                    if !self.eof && pending <= self.max {
                        self.fill()?;
                        continue;
                    }
                    if pending == 0 {
                        return Ok(None);
                    }
                    if self.eof && self.simple(&self.buf[self.start..self.end]) {
                        let end = self.end;
                        return Ok(Some(self.hand_out_line(end, end)));
                    }
                }
            }
            // Between records of a line that is not one simple record.
            if !self.skip_separators()? {
                return Ok(None);
            }
            if self.at_line_start {
                continue;
            }
            if self.buf[self.start] == b'{' {
                return self.object().map(Some);
            }
            // Not an object: the rest of the line is one (bad) record.
            self.in_array = false;
            return self.rest_of_line().map(Some);
        }
    }

    /// Hands out `buf[start..end]` as a record on the current line and moves on to
    /// `next` (past its newline, or the end of the input).
    fn hand_out_line(&mut self, end: usize, next: usize) -> Line<'_> {
        let s = self.start;
        self.offset = self.abs(s);
        self.start = next;
        self.scanned = next;
        self.lines += 1;
        self.number = self.lines;
        self.at_line_start = true;
        self.make_line(s, end)
    }

    /// Skips whitespace, a byte-order mark, and array brackets and commas up to the
    /// next record or line start; false at the end of the input.
    fn skip_separators(&mut self) -> io::Result<bool> {
        loop {
            if self.start == self.end {
                if self.eof {
                    return Ok(false);
                }
                self.fill()?;
                continue;
            }
            let b = self.buf[self.start];
            match b {
                b'\n' => {
                    self.start += 1;
                    self.scanned = self.start;
                    self.lines += 1;
                    self.at_line_start = true;
                    return Ok(true);
                }
                b' ' | b'\t' | b'\r' => {}
                b',' if self.in_array => {}
                b']' if self.in_array => self.in_array = false,
                b'[' if !self.in_array => {
                    if !self.array_of_objects()? {
                        // `[1, 2]`: one (bad) record, not an array of records.
                        self.at_line_start = false;
                        return Ok(true);
                    }
                    self.in_array = true;
                }
                0xEF if self.buf[self.start..self.end].starts_with(BOM) => {
                    self.start += BOM.len();
                    continue;
                }
                0xEF if !self.eof && self.end - self.start < BOM.len() => {
                    self.fill()?;
                    continue;
                }
                _ => {
                    self.at_line_start = false;
                    return Ok(true);
                }
            }
            self.start += 1;
            self.at_line_start = false;
        }
    }

    /// Whether the array that opens at `buf[start]` holds objects (or nothing): its
    /// next byte other than whitespace is `{` or `]`.
    fn array_of_objects(&mut self) -> io::Result<bool> {
        let mut i = self.start + 1;
        loop {
            match self.buf[i..self.end]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
            {
                Some(k) => return Ok(matches!(self.buf[i + k], b'{' | b']')),
                None if self.eof || self.end - self.start > self.max => return Ok(false),
                None => {
                    let rel = self.end - self.start;
                    self.fill()?;
                    i = self.start + rel;
                }
            }
        }
    }

    /// The object that starts at `buf[start]`, found by a structural scan.
    fn object(&mut self) -> io::Result<Line<'_>> {
        self.offset = self.abs(self.start);
        self.number = self.lines + 1;
        let mut scan = Scan::default();
        let mut pos = self.start;
        loop {
            let (stop, to) = scan.run(&self.buf[..self.end], pos, self.eof);
            pos = to;
            let end = match stop {
                Stop::Closed(i) => i + 1,
                Stop::Cut(i) => i,
                Stop::More if self.eof => self.end,
                Stop::More if pos - self.start > self.max => {
                    return self.skip_long_object(scan, pos);
                }
                Stop::More => {
                    let rel = pos - self.start;
                    self.fill()?;
                    pos = self.start + rel;
                    continue;
                }
            };
            let s = self.start;
            self.start = end;
            self.scanned = end;
            self.lines += scan.newlines;
            self.at_line_start = false;
            if scan.newlines > 0 && end - s <= self.max {
                // Pretty-printed: handed out on one line, as the record's output is.
                one_line(&self.buf[s..end], &mut self.long_prefix);
                return Ok(Line::Ok {
                    number: self.number,
                    bytes: &self.long_prefix,
                    offset: Some(self.offset),
                });
            }
            return Ok(self.make_line(s, end));
        }
    }

    /// Keeps the first `max` bytes of the record at `start` (over the limit).
    fn keep_prefix(&mut self) {
        self.long_prefix.clear();
        self.long_prefix
            .extend_from_slice(&self.buf[self.start..self.start + self.max]);
    }

    /// The object being scanned is over the limit: keep its prefix, then discard
    /// input up to its end (or its cut).
    fn skip_long_object(&mut self, mut scan: Scan, pos: usize) -> io::Result<Line<'_>> {
        self.keep_prefix();
        let mut len = (pos - self.start) as u64;
        self.start = pos;
        self.scanned = pos;
        loop {
            if self.start == self.end {
                if self.eof {
                    break;
                }
                self.fill()?;
                continue;
            }
            let (stop, to) = scan.run(&self.buf[..self.end], self.start, self.eof);
            match stop {
                Stop::Closed(i) => {
                    len += (i + 1 - self.start) as u64;
                    self.start = i + 1;
                    break;
                }
                Stop::Cut(i) => {
                    len += (i - self.start) as u64;
                    self.start = i;
                    break;
                }
                Stop::More => {
                    len += (to - self.start) as u64;
                    self.start = to;
                    if to < self.end {
                        // A newline at the end of the buffer: look at the next byte.
                        self.fill()?;
                    }
                }
            }
        }
        self.scanned = self.start;
        self.lines += scan.newlines;
        self.at_line_start = false;
        Ok(Line::TooLong {
            number: self.number,
            prefix: &self.long_prefix,
            len,
            offset: Some(self.offset),
        })
    }

    /// The rest of the current line as one record (it does not start like an object).
    fn rest_of_line(&mut self) -> io::Result<Line<'_>> {
        self.offset = self.abs(self.start);
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let nl = self.start + i;
                return Ok(self.hand_out_line(nl, nl + 1));
            }
            if self.end - self.start > self.max {
                return self.skip_long_line();
            }
            if self.eof {
                let end = self.end;
                return Ok(self.hand_out_line(end, end));
            }
            self.fill()?;
        }
    }

    fn make_line(&self, s: usize, e: usize) -> Line<'_> {
        let bytes = &self.buf[s..e];
        if bytes.len() > self.max {
            Line::TooLong {
                number: self.number,
                prefix: &bytes[..self.max],
                len: bytes.len() as u64,
                offset: Some(self.offset),
            }
        } else {
            Line::Ok {
                number: self.number,
                bytes,
                offset: Some(self.offset),
            }
        }
    }

    /// The current line is over the limit and has no newline in the buffer: keep its
    /// prefix, then discard input up to the next newline.
    fn skip_long_line(&mut self) -> io::Result<Line<'_>> {
        self.offset = self.abs(self.start);
        self.keep_prefix();
        let mut len = (self.end - self.start) as u64;
        self.start = self.end;
        self.scanned = self.end;
        loop {
            if self.start == self.end {
                if self.eof {
                    break;
                }
                self.fill()?;
                continue;
            }
            match memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                Some(i) => {
                    len += i as u64;
                    self.start += i + 1;
                    self.scanned = self.start;
                    break;
                }
                None => {
                    len += (self.end - self.start) as u64;
                    self.start = self.end;
                    self.scanned = self.end;
                }
            }
        }
        self.lines += 1;
        self.number = self.lines;
        self.at_line_start = true;
        Ok(Line::TooLong {
            number: self.number,
            prefix: &self.long_prefix,
            len,
            offset: Some(self.offset),
        })
    }

    /// Moves the unread tail to the front and reads one more block.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        if self.buf.len() - self.end < BLOCK {
            let n = self.end + BLOCK;
            self.buf.resize(n, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `n` bytes per call, to exercise block edges.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn collect(input: &[u8], max: usize, chunk: usize) -> Vec<(u64, String, Option<u64>)> {
        let mut r = LineReader::new(Trickle(input, chunk), max);
        let mut out = vec![];
        while let Some(l) = r.next_line().unwrap() {
            out.push(match l {
                Line::Ok { number, bytes, .. } => {
                    (number, String::from_utf8_lossy(bytes).into(), None)
                }
                Line::TooLong {
                    number,
                    prefix,
                    len,
                    ..
                } => (number, String::from_utf8_lossy(prefix).into(), Some(len)),
            });
        }
        assert_eq!(r.bytes_read(), input.len() as u64);
        out
    }

    #[test]
    fn splits_lines_across_reads() {
        for chunk in [1, 3, 7, 1 << 20] {
            let got = collect(b"a\nbb\n\nccc", 100, chunk);
            assert_eq!(
                got,
                vec![
                    (1, "a".into(), None),
                    (2, "bb".into(), None),
                    (3, "".into(), None),
                    (4, "ccc".into(), None)
                ]
            );
        }
    }

    #[test]
    fn long_lines_keep_a_prefix_and_the_run_goes_on() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * BLOCK + 17));
        input.extend(b"\nafter\n");
        let got = collect(&input, 64, 1 << 16);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (1, "ok".into(), None));
        assert_eq!(got[1].0, 2);
        assert_eq!(got[1].1.len(), 64);
        assert_eq!(got[1].2, Some(3 * BLOCK as u64 + 17));
        assert_eq!(got[2], (3, "after".into(), None));
    }

    #[test]
    fn long_line_within_one_block_and_at_eof() {
        let got = collect(b"0123456789\nabc\n0123456789", 5, 4096);
        assert_eq!(got[0], (1, "01234".into(), Some(10)));
        assert_eq!(got[1], (2, "abc".into(), None));
        assert_eq!(got[2], (3, "01234".into(), Some(10)));
    }

    /// (line number, record, offset) of every record, the same for every read size.
    fn records(input: &[u8], max: usize) -> Vec<(u64, String, Option<u64>)> {
        let mut first: Option<Vec<(u64, String, Option<u64>)>> = None;
        for chunk in [1, 2, 3, 7, 64, 1 << 20] {
            let mut r = LineReader::new(Trickle(input, chunk), max);
            let mut out = vec![];
            while let Some(l) = r.next_line().unwrap() {
                out.push(match l {
                    Line::Ok {
                        number,
                        bytes,
                        offset,
                    } => (number, String::from_utf8_lossy(bytes).into(), offset),
                    Line::TooLong {
                        number,
                        prefix,
                        len,
                        offset,
                    } => (
                        number,
                        format!("{}...({len})", String::from_utf8_lossy(prefix)),
                        offset,
                    ),
                });
            }
            assert_eq!(r.bytes_read(), input.len() as u64);
            match &first {
                Some(f) => assert_eq!(&out, f, "read size {chunk}"),
                None => first = Some(out),
            }
        }
        first.unwrap_or_default()
    }

    fn r(number: u64, text: &str, offset: u64) -> (u64, String, Option<u64>) {
        (number, text.to_string(), Some(offset))
    }

    #[test]
    fn concatenated_objects_are_split_as_firehose_writes_them() {
        let got = records(br#"{"a":1}{"b":"}{"}{"c":[1,{"d":"\"}"}]}"#, 100);
        assert_eq!(
            got,
            vec![
                r(1, r#"{"a":1}"#, 0),
                r(1, r#"{"b":"}{"}"#, 7),
                r(1, r#"{"c":[1,{"d":"\"}"}]}"#, 17)
            ]
        );
        // Several objects a line, several lines.
        let got = records(
            b"{\"a\":1}{\"b\":2}\n{\"c\":3}\r\n{\"d\":4}{\"e\":5}\n",
            100,
        );
        let texts: Vec<(u64, &str)> = got.iter().map(|(n, t, _)| (*n, t.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (1, r#"{"a":1}"#),
                (1, r#"{"b":2}"#),
                (2, "{\"c\":3}\r"),
                (3, r#"{"d":4}"#),
                (3, r#"{"e":5}"#)
            ]
        );
    }

    #[test]
    fn pretty_printed_objects_and_arrays_are_records() {
        let pretty = "{\n  \"a\": 1,\n  \"h\": [\n    {\n      \"n\": \"x \\\" }\"\n    }\n  ]\n}\n{\"z\":1}\n";
        let got = records(pretty.as_bytes(), 1000);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], r(1, r#"{"a":1,"h":[{"n":"x \" }"}]}"#, 0));
        assert_eq!(got[1].0, 9);
        assert_eq!(got[1].1, r#"{"z":1}"#);

        let one_line = records(b"[{\"a\":1}, {\"b\":[2]} ,{\"c\":3}]\n{\"d\":4}", 100);
        let texts: Vec<&str> = one_line.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(
            texts,
            [r#"{"a":1}"#, r#"{"b":[2]}"#, r#"{"c":3}"#, r#"{"d":4}"#]
        );

        let many = "\u{feff}[\n  {\n    \"a\": 1\n  },\n  {\"b\": 2},\n  {\"c\": 3}\n]\n";
        let got = records(many.as_bytes(), 100);
        let texts: Vec<(u64, &str)> = got.iter().map(|(n, t, _)| (*n, t.as_str())).collect();
        assert_eq!(
            texts,
            vec![(2, "{\"a\":1}"), (5, "{\"b\": 2}"), (6, "  {\"c\": 3}")]
        );
    }

    #[test]
    fn a_damaged_record_costs_only_itself() {
        // Truncated JSON lines: cut at the next line that starts a record.
        let got = records(
            b"{\"a\":1,\"b\":{\"c\":\n{\"d\":2}\n{\"e\":\"x\n{\"f\":3}\n",
            100,
        );
        let texts: Vec<(u64, &str)> = got.iter().map(|(n, t, _)| (*n, t.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (1, "{\"a\":1,\"b\":{\"c\":"),
                (2, "{\"d\":2}"),
                (3, "{\"e\":\"x"),
                (4, "{\"f\":3}")
            ]
        );
        // A truncated JSON line is cut at its end, whatever follows.
        let got = records(b"{\"a\":1,\"b\":[\n\n[1,2]\n  {\"c\":\n{\"d\":2}", 100);
        let texts: Vec<(u64, &str)> = got.iter().map(|(n, t, _)| (*n, t.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (1, "{\"a\":1,\"b\":["),
                (2, ""),
                (3, "[1,2]"),
                (4, "{\"c\":"),
                (5, "{\"d\":2}")
            ]
        );
        // Bad JSON between concatenated objects, text after an object, an unclosed
        // object at the end.
        let got = records(b"{\"a\":1}{\"b\":,}{\"c\":3} tail\n{\"d\":{\"e\":1}", 100);
        let texts: Vec<&str> = got.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(
            texts,
            [
                "{\"a\":1}",
                "{\"b\":,}",
                "{\"c\":3}",
                "tail",
                "{\"d\":{\"e\":1}"
            ]
        );
        assert_eq!(got[3].2, Some(22));
    }

    #[test]
    fn long_concatenated_objects_keep_a_prefix_and_the_next_is_read() {
        let mut input = b"{\"a\":\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', 2 * BLOCK + 5));
        input.extend(b"\"}{\"b\":1}");
        let got = records(&input, 8);
        assert_eq!(
            got,
            vec![
                r(1, &format!("{{\"a\":\"xx...({})", 2 * BLOCK + 13), 0),
                r(1, "{\"b\":1}", 2 * BLOCK as u64 + 13)
            ]
        );
    }

    #[test]
    fn json_lines_are_unchanged() {
        // Text, numbers and arrays on lines of their own stay whole lines.
        let got = records(b"{\"a\":1}\nnot json\n42\n\n{\"b\":2}", 100);
        let texts: Vec<(u64, &str)> = got.iter().map(|(n, t, _)| (*n, t.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (1, "{\"a\":1}"),
                (2, "not json"),
                (3, "42"),
                (4, ""),
                (5, "{\"b\":2}")
            ]
        );
    }

    #[test]
    fn empty_input() {
        assert!(collect(b"", 10, 10).is_empty());
    }
}
