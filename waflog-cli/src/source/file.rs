//! Files and stdin, gzip detected by its magic bytes (so `.gz` files, S3 downloads
//! without the extension and piped gzip all read transparently).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use flate2::read::MultiGzDecoder;
use waflog_core::parse::lines::{Line, LineReader};

/// An opened input.
pub struct Input {
    /// How to name it in messages and dead letters (`-` for stdin).
    pub name: String,
    /// Decompressed bytes.
    pub reader: Box<dyn Read + Send>,
    /// Size when it is a plain (uncompressed) regular file, for progress.
    pub size: Option<u64>,
    /// For inputs that can fail part way and let the run go on (S3 objects): what
    /// stopped early and why, filled by the reader; the caller reports it.
    pub failure: Option<Failure>,
    /// For inputs that merge others (`source::merge::Merged`): where each line
    /// comes from, one entry per line in order, for dead letters that name it.
    pub origins: Option<Origins>,
}

/// Where readers record the inputs that stopped early: (input name, reason).
pub type Failure = Arc<Mutex<Vec<(String, String)>>>;

/// Where a merged line comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The input's name.
    pub name: Arc<str>,
    /// The line number it starts on there.
    pub line: u64,
    /// Its byte offset there, when known.
    pub offset: Option<u64>,
}

/// The origins of the lines a merge has handed over and not yet taken.
pub type Origins = Arc<Mutex<std::collections::VecDeque<Origin>>>;

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("name", &self.name).finish()
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 1 << 20;

/// Opens `name`: a path, or `-` for stdin.
pub fn open(name: &str) -> anyhow::Result<Input> {
    open_buffered(name, READ_BUFFER)
}

/// The event time (epoch ms) of the first record of the file `name`, reading no
/// more than that record: where an event-time merge opens the file.
/// `i64::MIN` when the first record has no time (the file is opened at once),
/// `i64::MAX` when the file holds no record.
pub fn first_time(name: &str, max_line: usize) -> anyhow::Result<i64> {
    let input = open_buffered(name, PEEK)?;
    let mut lines = LineReader::new(Sips(input.reader), max_line);
    loop {
        match lines
            .next_line()
            .with_context(|| format!("cannot read input {name}"))?
        {
            None => return Ok(i64::MAX),
            Some(Line::Ok { bytes, .. }) if bytes.trim_ascii().is_empty() => {}
            Some(Line::Ok { bytes, .. }) => return Ok(line_time(bytes)),
            Some(Line::TooLong { .. }) => return Ok(i64::MIN),
        }
    }
}

/// A line's `timestamp` in epoch ms ([`waflog_core::parse::event_time`]; a
/// CloudWatch Logs export line by its record's): the key of the event-time merge;
/// lines without one sort first.
pub fn line_time(line: &[u8]) -> i64 {
    let record = waflog_core::parse::cloudwatch::export_message(line).unwrap_or(line);
    waflog_core::parse::event_time(record).unwrap_or(i64::MIN)
}

/// Bytes read at a time when looking at a file's first record.
const PEEK: usize = 64 << 10;

/// A reader handing over at most [`PEEK`] bytes per call, so a record splitter
/// reads (and gunzips) little more than the first record.
struct Sips<R>(R);

impl<R: Read> Read for Sips<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(PEEK);
        self.0.read(&mut buf[..n])
    }
}

/// [`open`] with a read buffer of `capacity` bytes.
fn open_buffered(name: &str, capacity: usize) -> anyhow::Result<Input> {
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = if name == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let path = Path::new(name);
        let file = File::open(path).with_context(|| format!("cannot open input {name}"))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot stat input {name}"))?;
        if meta.is_dir() {
            anyhow::bail!("input {name} is a directory");
        }
        (Box::new(file), meta.is_file().then_some(meta.len()))
    };
    let consumed = Arc::new(AtomicU64::new(0));
    let counted = Counting {
        inner: raw,
        count: Arc::clone(&consumed),
    };
    let mut buffered = BufReader::with_capacity(capacity, counted);
    let head = buffered
        .fill_buf()
        .with_context(|| format!("cannot read input {name}"))?;
    let compressed = head.starts_with(&GZIP_MAGIC);
    let mut failure = None;
    let reader: Box<dyn Read + Send> = if compressed {
        let f = Failure::default();
        failure = Some(Arc::clone(&f));
        Box::new(Damaged {
            name: name.to_string(),
            inner: MultiGzDecoder::new(buffered),
            consumed,
            failure: f,
            done: false,
        })
    } else {
        Box::new(buffered)
    };
    let size = size.filter(|_| !compressed);
    Ok(Input {
        name: name.to_string(),
        reader,
        size,
        failure,
        origins: None,
    })
}

/// Counts the bytes read from the file (compressed bytes, for damage offsets).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A gzip input that may be damaged (truncated, corrupt, trailing garbage): every
/// byte decoded before the damage is handed out, then the damage is recorded in the
/// input's failure list (file, compressed byte offset, error) and the input ends
/// there, so the caller dead-letters it and goes on with the next input.
struct Damaged {
    name: String,
    inner: MultiGzDecoder<BufReader<Counting<Box<dyn Read + Send>>>>,
    consumed: Arc<AtomicU64>,
    failure: Failure,
    done: bool,
}

impl Damaged {
    /// Compressed bytes the decoder has taken so far (read minus still buffered).
    fn offset(&self) -> u64 {
        let buffered = self.inner.get_ref().buffer().len() as u64;
        self.consumed
            .load(Ordering::Relaxed)
            .saturating_sub(buffered)
    }
}

impl Read for Damaged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.done = true;
                let at = self.offset();
                let reason = match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        format!(
                            "truncated gzip data (the file ends inside a member, near compressed byte {at})"
                        )
                    }
                    _ => format!("corrupt gzip data near compressed byte {at}: {e}"),
                };
                if let Ok(mut f) = self.failure.lock() {
                    f.push((self.name.clone(), reason));
                }
                Ok(0)
            }
        }
    }
}
