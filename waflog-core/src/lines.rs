//! Block-wise line splitting with a line-length limit.
//!
//! [`LineReader`] reads large blocks from any [`Read`], finds newlines with `memchr`
//! and hands out borrowed lines without copying. A line longer than the limit is not
//! buffered whole: its first `max` bytes are kept as a prefix for the dead-letter
//! output and the rest is skipped, so memory stays bounded by the limit plus one block
//! whatever the input holds.

use std::io::{self, Read};

/// Read size: 1 MiB blocks.
pub const BLOCK: usize = 1 << 20;

/// One line handed out by [`LineReader::next_line`] (without its `\n`).
#[derive(Debug)]
pub enum Line<'a> {
    /// A line within the limit.
    Ok {
        /// 1-based line number.
        number: u64,
        /// The bytes, without the newline.
        bytes: &'a [u8],
    },
    /// A line over the limit.
    TooLong {
        /// 1-based line number.
        number: u64,
        /// Its first `max` bytes.
        prefix: &'a [u8],
        /// Its full length in bytes.
        len: u64,
    },
}

/// Splits a byte stream into lines, block by block.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    scanned: usize,
    eof: bool,
    number: u64,
    max: usize,
    long_prefix: Vec<u8>,
    bytes_read: u64,
}

impl<R: Read> LineReader<R> {
    /// A reader with the given line limit in bytes.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; BLOCK.max(max_line + 1) + BLOCK],
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            number: 0,
            max: max_line,
            long_prefix: Vec::new(),
            bytes_read: 0,
        }
    }

    /// Total bytes read from the inner reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let nl = self.scanned + i;
                let (s, e) = (self.start, nl);
                self.start = nl + 1;
                self.scanned = self.start;
                self.number += 1;
                return Ok(Some(self.make_line(s, e)));
            }
            self.scanned = self.end;
            if self.end - self.start > self.max {
                return self.skip_long_line().map(Some);
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (s, e) = (self.start, self.end);
                self.start = self.end;
                self.number += 1;
                return Ok(Some(self.make_line(s, e)));
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
            }
        } else {
            Line::Ok {
                number: self.number,
                bytes,
            }
        }
    }

    /// The current line is over the limit and has no newline in the buffer: keep its
    /// prefix, then discard input up to the next newline.
    fn skip_long_line(&mut self) -> io::Result<Line<'_>> {
        self.long_prefix.clear();
        self.long_prefix
            .extend_from_slice(&self.buf[self.start..self.start + self.max]);
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
        self.number += 1;
        Ok(Line::TooLong {
            number: self.number,
            prefix: &self.long_prefix,
            len,
        })
    }

    /// Moves the unread tail to the front and reads one more block.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
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
                Line::Ok { number, bytes } => (number, String::from_utf8_lossy(bytes).into(), None),
                Line::TooLong {
                    number,
                    prefix,
                    len,
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

    #[test]
    fn empty_input() {
        assert!(collect(b"", 10, 10).is_empty());
    }
}
