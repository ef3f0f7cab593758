//! Parquet output (`--output-format parquet`): transformed WAF records or detection
//! results as Snappy-compressed Parquet files, one typed column per field, for
//! Athena, DuckDB, Spark and other data-lake readers.
//!
//! Lines arrive as NDJSON, as every other sink takes them, and become rows of a
//! fixed schema ([`Layout`]):
//! - scalar fields are typed columns: times as `TIMESTAMP(MILLIS, UTC)`, counts and
//!   codes as integers (a numeric string such as `"httpStatus": "200"` included),
//!   scores as doubles, names as strings;
//! - a record's `labels` (and `oversizeFields`) are lists of strings;
//! - nested parts (headers, rule lists, result evidence) are JSON text;
//! - every field the schema has no column for, and every value of another type
//!   than its column's, goes to the `other` column as one JSON object, so no field
//!   is lost.
//!
//! Where the rows go:
//! - a path ending in `.parquet`, or stdout: one file;
//! - any other path is a directory: one file per hour of event time per run under
//!   `YYYY/MM/DD/HH/`, the hour folders of WAF's own S3 delivery, so Athena's
//!   partition projection reads them with one `yyyy/MM/dd/HH` date key; a file is
//!   written under a hidden temporary name and renamed when complete, so readers
//!   never see half a file;
//! - `s3://bucket/prefix`: the same layout, as objects.
//!
//! An hour's file is closed once the stream is an hour past its end (records of
//! that hour arriving later start another file in the same folder), and every file
//! at the end of the run. Rows are buffered per file and written in row groups of
//! [`ROW_GROUP_ROWS`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use parquet::basic::Compression;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::value::RawValue;
use waflog_core::parse::raw::{RawObject, str_of};

use crate::aws::{Aws, Trouble};
use crate::net::LineBuffer;

/// Rows per row group (and most rows buffered per open file).
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Most hour files open at once; past it the oldest is closed.
const MAX_OPEN: usize = 48;
const HOUR_MS: i64 = 3_600_000;

/// What the lines are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Transformed WAF records (`waflog transform`).
    Records,
    /// Anomaly results, incidents and feedback documents (`waflog detect`).
    Results,
}

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Epoch milliseconds (or a timestamp text) as `TIMESTAMP(MILLIS, UTC)`.
    Time,
    Int32,
    Int64,
    Double,
    /// A string.
    Text,
    /// Any JSON value, as its JSON text.
    Json,
    /// An array of strings, or of objects whose member `.0` is a string (labels),
    /// as a list of strings.
    List(Option<&'static str>),
}

/// A column: its name, where its value is in a line (a path of object members)
/// and its type.
#[derive(Debug)]
struct Column {
    name: &'static str,
    path: &'static [&'static str],
    kind: Kind,
}

/// A column of a top-level field.
macro_rules! top {
    ($name:literal, $kind:expr) => {
        Column {
            name: $name,
            path: &[$name],
            kind: $kind,
        }
    };
}

const fn request(name: &'static str, path: &'static [&'static str]) -> Column {
    Column {
        name,
        path,
        kind: Kind::Text,
    }
}

/// The columns of a transformed WAF record, in the log's own order; the
/// `httpRequest` members are columns of their own (`clientIp`, `uri`, ...).
const RECORD_COLUMNS: &[Column] = &[
    top!("timestamp", Kind::Time),
    top!("formatVersion", Kind::Int32),
    top!("webaclId", Kind::Text),
    top!("terminatingRuleId", Kind::Text),
    top!("terminatingRuleType", Kind::Text),
    top!("action", Kind::Text),
    top!("terminatingRuleMatchDetails", Kind::Json),
    top!("httpSourceName", Kind::Text),
    top!("httpSourceId", Kind::Text),
    top!("ruleGroupList", Kind::Json),
    top!("rateBasedRuleList", Kind::Json),
    top!("nonTerminatingMatchingRules", Kind::Json),
    top!("requestHeadersInserted", Kind::Json),
    top!("responseCodeSent", Kind::Int32),
    request("clientIp", &["httpRequest", "clientIp"]),
    request("country", &["httpRequest", "country"]),
    Column {
        name: "headers",
        path: &["httpRequest", "headers"],
        kind: Kind::Json,
    },
    request("uri", &["httpRequest", "uri"]),
    request("args", &["httpRequest", "args"]),
    request("httpVersion", &["httpRequest", "httpVersion"]),
    request("httpMethod", &["httpRequest", "httpMethod"]),
    request("requestId", &["httpRequest", "requestId"]),
    request("fragment", &["httpRequest", "fragment"]),
    request("scheme", &["httpRequest", "scheme"]),
    request("host", &["httpRequest", "host"]),
    top!("labels", Kind::List(Some("name"))),
    top!("captchaResponse", Kind::Json),
    top!("challengeResponse", Kind::Json),
    top!("ja3Fingerprint", Kind::Text),
    top!("ja4Fingerprint", Kind::Text),
    top!("oversizeFields", Kind::List(None)),
    top!("requestBodySize", Kind::Int64),
    top!("requestBodySizeInspectedByWAF", Kind::Int64),
    top!("clientAsn", Kind::Int64),
    top!("cfDistributionTenantId", Kind::Text),
    top!("httpStatus", Kind::Int32),
    top!("K_country", Kind::Int32),
    top!("UNK_country", Kind::Int32),
    top!("K_action", Kind::Int32),
    top!("B_action", Kind::Int32),
    top!("O_httpstatus", Kind::Int32),
    top!("B_httpstatus", Kind::Int32),
    top!("common_method", Kind::Int32),
    top!("uncommon_method", Kind::Int32),
    top!("K_source", Kind::Int32),
    top!("UNK_source", Kind::Int32),
];

/// The columns of a result document (and of the incident and feedback documents
/// among results: `type` tells them apart, `result` for a result).
const RESULT_COLUMNS: &[Column] = &[
    top!("type", Kind::Text),
    top!("detector_id", Kind::Text),
    top!("detector_name", Kind::Text),
    top!("entity", Kind::Json),
    top!("data_start_time", Kind::Time),
    top!("data_end_time", Kind::Time),
    top!("execution_start_time", Kind::Time),
    top!("execution_end_time", Kind::Time),
    top!("approx_anomaly_start_time", Kind::Time),
    top!("anomaly_score", Kind::Double),
    top!("anomaly_grade", Kind::Double),
    top!("confidence", Kind::Double),
    top!("threshold", Kind::Double),
    top!("records", Kind::Int64),
    top!("feature_data", Kind::Json),
    top!("relevant_attribution", Kind::Json),
    top!("expected_values", Kind::Json),
    top!("expected_bounds", Kind::Json),
    top!("contributors", Kind::Json),
    top!("examples", Kind::Json),
    top!("feature_imputed", Kind::Json),
    top!("incident_id", Kind::Text),
    top!("alert_id", Kind::Text),
    top!("summary", Kind::Text),
];

/// The column of what no other column holds.
const OTHER: &str = "other";

impl Layout {
    fn columns(self) -> &'static [Column] {
        match self {
            Layout::Records => RECORD_COLUMNS,
            Layout::Results => RESULT_COLUMNS,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Layout::Records => "records",
            Layout::Results => "results",
        }
    }

    /// The Parquet schema: the columns, then `other`.
    fn schema(self) -> anyhow::Result<Type> {
        let mut text = format!("message waflog_{} {{\n", self.noun());
        for c in self.columns() {
            let name = c.name;
            let line = match c.kind {
                Kind::Time => format!("optional int64 {name} (TIMESTAMP(MILLIS,true));"),
                Kind::Int32 => format!("optional int32 {name};"),
                Kind::Int64 => format!("optional int64 {name};"),
                Kind::Double => format!("optional double {name};"),
                Kind::Text | Kind::Json => format!("optional binary {name} (STRING);"),
                Kind::List(_) => format!(
                    "optional group {name} (LIST) {{ repeated group list {{ optional binary element (STRING); }} }}"
                ),
            };
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!("optional binary {OTHER} (STRING);\n}}"));
        parquet::schema::parser::parse_message_type(&text)
            .context("the Parquet schema does not parse (a bug)")
    }
}

/// An integer, from a number or a numeric string.
fn int_value(raw: &str) -> Option<i64> {
    match raw.as_bytes().first()? {
        b'"' => str_of(raw)?.trim().parse().ok(),
        _ => raw.parse().ok(),
    }
}

/// One value of one row, converted to its column's type.
#[derive(Debug)]
enum Cell {
    Null,
    I32(i32),
    I64(i64),
    F64(f64),
    /// Bytes of the row's arena.
    Bytes(Range<usize>),
    /// Strings in the row's arena.
    List(Vec<Range<usize>>),
}

/// Appends `bytes` to `arena`, returning where they are.
fn stash(arena: &mut Vec<u8>, bytes: &[u8]) -> Range<usize> {
    let start = arena.len();
    arena.extend_from_slice(bytes);
    start..arena.len()
}

/// The raw JSON value `raw` as a cell of `kind` (texts in `arena`); `None` when
/// it is not of that type (it then goes to `other`).
fn convert(kind: Kind, raw: &RawValue, arena: &mut Vec<u8>) -> Option<Cell> {
    let text = raw.get();
    if text == "null" {
        return Some(Cell::Null);
    }
    match kind {
        // Numbers are epoch ms, as waflog writes them; texts are read as
        // timestamps anywhere in waflog are.
        Kind::Time => match text.parse::<i64>() {
            Ok(ms) => Some(Cell::I64(ms)),
            Err(_) if text.starts_with('"') => waflog_core::timestamp::from_json_text(text)
                .ok()
                .flatten()
                .map(Cell::I64),
            Err(_) => None,
        },
        Kind::Int32 => int_value(text)
            .and_then(|i| i32::try_from(i).ok())
            .map(Cell::I32),
        Kind::Int64 => int_value(text).map(Cell::I64),
        Kind::Double => match text.as_bytes().first()? {
            b'-' | b'0'..=b'9' => text.parse().ok().map(Cell::F64),
            _ => None,
        },
        Kind::Text => str_of(text).map(|s| Cell::Bytes(stash(arena, s.as_bytes()))),
        Kind::Json => Some(Cell::Bytes(stash(arena, text.as_bytes()))),
        Kind::List(None) => serde_json::from_str::<Vec<&RawValue>>(text)
            .ok()?
            .iter()
            .map(|v| str_of(v.get()).map(|s| stash(arena, s.as_bytes())))
            .collect::<Option<Vec<_>>>()
            .map(Cell::List),
        Kind::List(Some(member)) => serde_json::from_str::<Vec<RawObject<'_>>>(text)
            .ok()?
            .into_iter()
            .map(|o| match o.0.as_slice() {
                // An object with more than the member would lose the rest.
                [(k, v)] if k == member => str_of(v.get()).map(|s| stash(arena, s.as_bytes())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Cell::List),
    }
}

/// Appends `"key":raw` to the JSON object text `out` (opened when empty).
fn push_member(out: &mut Vec<u8>, key: &str, raw: &[u8]) {
    out.push(if out.is_empty() { b'{' } else { b',' });
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    out.extend_from_slice(raw);
}

/// Where each member of a line goes: column indexes by top-level name, and by
/// `httpRequest` member name.
struct Routes {
    top: HashMap<&'static str, usize>,
    request: HashMap<&'static str, usize>,
}

impl Routes {
    fn new(layout: Layout) -> Routes {
        let mut top = HashMap::new();
        let mut request = HashMap::new();
        for (i, c) in layout.columns().iter().enumerate() {
            match c.path {
                [name] => top.insert(*name, i),
                ["httpRequest", name] => request.insert(*name, i),
                _ => None,
            };
        }
        Routes { top, request }
    }
}

/// One row under way: its cells (one per column, then `other`) and the bytes
/// its text cells point into; kept from row to row so that a row allocates
/// nothing once they have grown.
#[derive(Debug, Default)]
struct Row {
    cells: Vec<Cell>,
    arena: Vec<u8>,
    seen: Vec<bool>,
    other: Vec<u8>,
    rest: Vec<u8>,
}

impl Row {
    /// Fills the cells from `line`; returns its event time.
    fn fill(
        &mut self,
        layout: Layout,
        routes: &Routes,
        line: &[u8],
    ) -> anyhow::Result<Option<i64>> {
        let columns = layout.columns();
        let Row {
            cells,
            arena,
            seen,
            other,
            rest,
        } = self;
        cells.clear();
        cells.extend(std::iter::repeat_with(|| Cell::Null).take(columns.len() + 1));
        arena.clear();
        other.clear();
        seen.clear();
        seen.resize(columns.len(), false);
        let object: RawObject<'_> = match serde_json::from_slice(line) {
            Ok(o) => o,
            // Lines come from waflog itself; anything else is kept whole.
            Err(_) if serde_json::from_slice::<&RawValue>(line).is_ok() => {
                push_member(other, OTHER, line.trim_ascii());
                other.push(b'}');
                cells[columns.len()] = Cell::Bytes(stash(arena, other));
                return Ok(None);
            }
            Err(e) => anyhow::bail!("a line for the Parquet output is not JSON ({e}): a bug"),
        };
        let mut start_time = None;
        // Puts `raw` in column `i`, or in `other` when the column has a value
        // already (a repeated member) or `raw` is not of its type.
        let mut place = |i: usize, key: &str, raw: &RawValue, other: &mut Vec<u8>| {
            let mark = arena.len();
            match (seen[i], convert(columns[i].kind, raw, arena)) {
                (false, Some(cell)) => {
                    seen[i] = true;
                    cells[i] = cell;
                }
                _ => {
                    arena.truncate(mark);
                    push_member(other, key, raw.get().as_bytes());
                }
            }
        };
        for (key, raw) in &object.0 {
            if let Some(&i) = routes.top.get(key.as_ref()) {
                place(i, key, raw, other);
            } else if key == "httpRequest" && !routes.request.is_empty() {
                match serde_json::from_str::<RawObject<'_>>(raw.get()) {
                    Ok(request) => {
                        rest.clear();
                        for (k, v) in &request.0 {
                            match routes.request.get(k.as_ref()) {
                                Some(&i) => place(i, k, v, rest),
                                None => push_member(rest, k, v.get().as_bytes()),
                            }
                        }
                        if !rest.is_empty() {
                            rest.push(b'}');
                            push_member(other, key, rest);
                        }
                    }
                    Err(_) => push_member(other, key, raw.get().as_bytes()),
                }
            } else {
                if layout == Layout::Results && key == "start_time" {
                    start_time = raw.get().parse().ok();
                }
                push_member(other, key, raw.get().as_bytes());
            }
        }
        // Detection results carry no `type`; incidents and feedback name theirs.
        if layout == Layout::Results {
            if let Some(i) = columns.iter().position(|c| c.name == "type") {
                if !seen[i] {
                    cells[i] = Cell::Bytes(stash(arena, b"result"));
                }
            }
        }
        if !other.is_empty() {
            other.push(b'}');
            cells[columns.len()] = Cell::Bytes(stash(arena, other));
        }
        // Records are filed by `timestamp`; results by `data_start_time` (a
        // feedback document by its `start_time`).
        let time_column = match layout {
            Layout::Records => "timestamp",
            Layout::Results => "data_start_time",
        };
        Ok(match columns.iter().position(|c| c.name == time_column) {
            Some(i) => match cells[i] {
                Cell::I64(t) => Some(t),
                _ => start_time,
            },
            None => start_time,
        })
    }
}

/// A column's buffered values, with definition and repetition levels.
#[derive(Debug)]
struct Buf {
    data: Data,
    def: Vec<i16>,
    /// Repetition levels, for a list column only.
    rep: Vec<i16>,
    list: bool,
}

#[derive(Debug)]
enum Data {
    I32(Vec<i32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    /// The values back to back, and where each ends.
    Bytes(Vec<u8>, Vec<usize>),
}

impl Buf {
    fn new(kind: Option<Kind>) -> Buf {
        let data = match kind {
            Some(Kind::Int32) => Data::I32(Vec::new()),
            Some(Kind::Time | Kind::Int64) => Data::I64(Vec::new()),
            Some(Kind::Double) => Data::F64(Vec::new()),
            Some(Kind::Text | Kind::Json | Kind::List(_)) | None => {
                Data::Bytes(Vec::new(), Vec::new())
            }
        };
        Buf {
            data,
            def: Vec::new(),
            rep: Vec::new(),
            list: matches!(kind, Some(Kind::List(_))),
        }
    }

    /// Adds one row's cell (a cell of the column's own type, from [`convert`];
    /// texts in `arena`).
    fn push(&mut self, cell: Cell, arena: &[u8]) {
        match (cell, &mut self.data) {
            (Cell::I32(v), Data::I32(d)) => {
                d.push(v);
                self.def.push(1);
            }
            (Cell::I64(v), Data::I64(d)) => {
                d.push(v);
                self.def.push(1);
            }
            (Cell::F64(v), Data::F64(d)) => {
                d.push(v);
                self.def.push(1);
            }
            (Cell::Bytes(r), Data::Bytes(d, ends)) => {
                d.extend_from_slice(arena.get(r).unwrap_or_default());
                ends.push(d.len());
                self.def.push(1);
            }
            (Cell::List(items), Data::Bytes(d, ends)) => {
                // optional group (1) > repeated group (2) > optional element (3).
                if items.is_empty() {
                    self.def.push(1);
                    self.rep.push(0);
                }
                for (i, item) in items.into_iter().enumerate() {
                    d.extend_from_slice(arena.get(item).unwrap_or_default());
                    ends.push(d.len());
                    self.def.push(3);
                    self.rep.push(i16::from(i > 0));
                }
            }
            (_, _) => {
                self.def.push(0);
                if self.list {
                    self.rep.push(0);
                }
            }
        }
    }

    fn clear(&mut self) {
        self.def.clear();
        self.rep.clear();
        match &mut self.data {
            Data::I32(d) => d.clear(),
            Data::I64(d) => d.clear(),
            Data::F64(d) => d.clear(),
            Data::Bytes(d, ends) => {
                d.clear();
                ends.clear();
            }
        }
    }
}

/// Where a file's bytes go.
enum Sink {
    File(BufWriter<File>),
    Stdout(io::Stdout),
    Memory(Vec<u8>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
            Sink::Memory(m) => m.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
            Sink::Memory(_) => Ok(()),
        }
    }
}

/// An S3 destination.
struct S3Target {
    aws: Arc<Aws>,
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    trouble: Trouble,
}

/// Where the files go.
enum Target {
    /// One file (`None`: stdout).
    One(Option<PathBuf>),
    /// Hour folders under a directory.
    Dir(PathBuf),
    /// Hour folders under an S3 prefix.
    S3(Box<S3Target>),
}

/// An open file: its writer and the rows not yet in a row group.
struct Part {
    writer: SerializedFileWriter<Sink>,
    bufs: Vec<Buf>,
    buffered: usize,
    rows: u64,
    /// Final path or key, and the temporary path a directory file is written to.
    name: String,
    temp: Option<PathBuf>,
}

/// Counters of a Parquet output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParquetStats {
    /// Files (or objects) written.
    pub files: u64,
    /// Rows written.
    pub rows: u64,
    /// Rows with fields in `other`.
    pub other: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes NDJSON lines as Parquet rows.
pub struct ParquetSink {
    layout: Layout,
    target: Target,
    schema: Arc<Type>,
    props: Arc<WriterProperties>,
    /// Open files by the hour they hold (epoch ms; 0 for a single file).
    parts: BTreeMap<i64, Part>,
    latest: i64,
    last_ts: i64,
    lines: LineBuffer,
    routes: Routes,
    /// The row under way (reused).
    row: Row,
    /// Names this run's files apart from other runs'.
    run: String,
    seq: u64,
    stats: ParquetStats,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("layout", &self.layout)
            .field("open", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl ParquetSink {
    fn new(layout: Layout, target: Target) -> anyhow::Result<ParquetSink> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_created_by(format!("waflog {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(ParquetSink {
            layout,
            target,
            schema: Arc::new(layout.schema()?),
            props: Arc::new(props),
            parts: BTreeMap::new(),
            latest: i64::MIN,
            last_ts: 0,
            lines: LineBuffer::default(),
            routes: Routes::new(layout),
            row: Row::default(),
            run: format!(
                "{}-{:x}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ"),
                std::process::id()
            ),
            seq: 0,
            stats: ParquetStats::default(),
        })
    }

    /// One Parquet file at `path` (stdout when `None`).
    pub fn file(layout: Layout, path: Option<&Path>) -> anyhow::Result<ParquetSink> {
        if path.is_none() && io::IsTerminal::is_terminal(&io::stdout()) {
            anyhow::bail!(
                "Parquet is binary: give --output FILE.parquet, a directory or s3://, or redirect stdout"
            );
        }
        ParquetSink::new(layout, Target::One(path.map(Path::to_path_buf)))
    }

    /// Hour folders under the directory `dir` (created when missing).
    pub fn dir(layout: Layout, dir: &Path) -> anyhow::Result<ParquetSink> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
        ParquetSink::new(layout, Target::Dir(dir.to_path_buf()))
    }

    /// Hour folders under `s3://bucket/prefix`.
    pub fn s3(
        layout: Layout,
        aws: Arc<Aws>,
        bucket: &str,
        prefix: &str,
    ) -> anyhow::Result<ParquetSink> {
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let trouble = aws.trouble(&format!("s3://{bucket}"));
        let target = Target::S3(Box::new(S3Target {
            client: aws.s3(),
            aws,
            bucket: bucket.to_string(),
            prefix,
            trouble,
        }));
        ParquetSink::new(layout, target)
    }

    /// Adds complete lines (a trailing partial line waits for the next block).
    pub fn write_block(&mut self, block: &[u8]) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        let fed = lines.feed(block, |line| self.write_line(line));
        self.lines = lines;
        fed?;
        self.close_due()
    }

    fn write_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let mut row = std::mem::take(&mut self.row);
        let ts = row
            .fill(self.layout, &self.routes, line)?
            .unwrap_or(self.last_ts);
        self.last_ts = ts;
        self.latest = self.latest.max(ts);
        let hour = match self.target {
            Target::One(_) => 0,
            Target::Dir(_) | Target::S3(_) => ts.div_euclid(HOUR_MS) * HOUR_MS,
        };
        if !self.parts.contains_key(&hour) {
            let part = self.open(hour)?;
            self.parts.insert(hour, part);
        }
        let Some(part) = self.parts.get_mut(&hour) else {
            return Ok(());
        };
        if !matches!(row.cells.last(), Some(Cell::Null)) {
            self.stats.other += 1;
        }
        for (buf, cell) in part.bufs.iter_mut().zip(row.cells.drain(..)) {
            buf.push(cell, &row.arena);
        }
        self.row = row;
        part.buffered += 1;
        if part.buffered >= ROW_GROUP_ROWS {
            write_row_group(part)?;
        }
        Ok(())
    }

    /// A new file for the hour starting at `hour`.
    fn open(&mut self, hour: i64) -> anyhow::Result<Part> {
        self.seq += 1;
        let folder = chrono::DateTime::from_timestamp_millis(hour)
            .unwrap_or_default()
            .format("%Y/%m/%d/%H")
            .to_string();
        let file_name = format!(
            "waflog-{}-{}-{}-{}.parquet",
            self.layout.noun(),
            folder.replace('/', ""),
            self.run,
            self.seq
        );
        let (sink, name, temp) = match &self.target {
            Target::One(None) => (Sink::Stdout(io::stdout()), "stdout".to_string(), None),
            Target::One(Some(p)) => {
                let f = File::create(p)
                    .with_context(|| format!("cannot create output {}", p.display()))?;
                (
                    Sink::File(BufWriter::with_capacity(1 << 20, f)),
                    p.display().to_string(),
                    None,
                )
            }
            Target::Dir(dir) => {
                let folder = dir.join(&folder);
                std::fs::create_dir_all(&folder)
                    .with_context(|| format!("cannot create {}", folder.display()))?;
                let temp = folder.join(format!(".{file_name}.tmp"));
                let f = File::create(&temp)
                    .with_context(|| format!("cannot create {}", temp.display()))?;
                (
                    Sink::File(BufWriter::with_capacity(1 << 20, f)),
                    folder.join(&file_name).display().to_string(),
                    Some(temp),
                )
            }
            Target::S3(s3) => (
                Sink::Memory(Vec::with_capacity(1 << 20)),
                format!("{}{folder}/{file_name}", s3.prefix),
                None,
            ),
        };
        let writer = SerializedFileWriter::new(sink, self.schema.clone(), self.props.clone())
            .with_context(|| format!("cannot start the Parquet file {name}"))?;
        let mut bufs: Vec<Buf> = self
            .layout
            .columns()
            .iter()
            .map(|c| Buf::new(Some(c.kind)))
            .collect();
        bufs.push(Buf::new(None));
        Ok(Part {
            writer,
            bufs,
            buffered: 0,
            rows: 0,
            name,
            temp,
        })
    }

    /// Closes the hour files the stream is an hour past, and the oldest ones
    /// past [`MAX_OPEN`].
    fn close_due(&mut self) -> anyhow::Result<()> {
        if matches!(self.target, Target::One(_)) {
            return Ok(());
        }
        let latest = self.latest;
        let mut due: Vec<i64> = self
            .parts
            .keys()
            .copied()
            .filter(|h| h.saturating_add(2 * HOUR_MS) <= latest)
            .collect();
        let extra = self.parts.len().saturating_sub(due.len() + MAX_OPEN);
        due.extend(
            self.parts
                .keys()
                .copied()
                .filter(|h| h.saturating_add(2 * HOUR_MS) > latest)
                .take(extra),
        );
        for hour in due {
            if let Some(part) = self.parts.remove(&hour) {
                self.close(part)?;
            }
        }
        Ok(())
    }

    fn close(&mut self, mut part: Part) -> anyhow::Result<()> {
        if part.buffered > 0 {
            write_row_group(&mut part)?;
        }
        let name = part.name.clone();
        let sink = part
            .writer
            .into_inner()
            .with_context(|| format!("cannot finish the Parquet file {name}"))?;
        let bytes = match sink {
            Sink::File(mut f) => {
                f.flush().with_context(|| format!("cannot write {name}"))?;
                let file = f
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write {name}"))?;
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if let Some(temp) = &part.temp {
                    std::fs::rename(temp, &name)
                        .with_context(|| format!("cannot rename {} to {name}", temp.display()))?;
                }
                len
            }
            Sink::Stdout(mut s) => {
                s.flush().context("cannot write to stdout")?;
                0
            }
            Sink::Memory(body) => {
                let Target::S3(s3) = &mut self.target else {
                    anyhow::bail!("an in-memory Parquet file with no S3 target (a bug)");
                };
                let len = body.len() as u64;
                super::s3::put_object(
                    &s3.aws,
                    &s3.client,
                    &mut s3.trouble,
                    &s3.bucket,
                    &name,
                    "application/vnd.apache.parquet",
                    None,
                    body,
                )?;
                len
            }
        };
        self.stats.files += 1;
        self.stats.rows += part.rows;
        self.stats.bytes += bytes;
        tracing::debug!("wrote {name} ({} rows)", part.rows);
        Ok(())
    }

    /// Writes the last partial line and closes every open file.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|line| self.write_line(line))?;
        for (_, part) in std::mem::take(&mut self.parts) {
            self.close(part)?;
        }
        let s = self.stats;
        let place = match &self.target {
            Target::One(None) => "stdout".to_string(),
            Target::One(Some(p)) | Target::Dir(p) => p.display().to_string(),
            Target::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        };
        tracing::info!(
            "{place}: {} {} in {} Parquet files, {:.1} MB{}",
            s.rows,
            self.layout.noun(),
            s.files,
            s.bytes as f64 / 1e6,
            if s.other > 0 {
                format!(" ({} rows with fields in `other`)", s.other)
            } else {
                String::new()
            }
        );
        Ok(())
    }
}

/// Writes the rows buffered in `part` as one row group.
fn write_row_group(part: &mut Part) -> anyhow::Result<()> {
    let name = &part.name;
    let ctx = || format!("cannot write the Parquet file {name}");
    let mut group = part.writer.next_row_group().with_context(ctx)?;
    for buf in &mut part.bufs {
        let mut column = group
            .next_column()
            .with_context(ctx)?
            .context("fewer Parquet columns than buffers (a bug)")?;
        let rep = buf.list.then_some(buf.rep.as_slice());
        let def = Some(buf.def.as_slice());
        let written = match (column.untyped(), &mut buf.data) {
            (ColumnWriter::Int32ColumnWriter(w), Data::I32(v)) => w.write_batch(v, def, rep),
            (ColumnWriter::Int64ColumnWriter(w), Data::I64(v)) => w.write_batch(v, def, rep),
            (ColumnWriter::DoubleColumnWriter(w), Data::F64(v)) => w.write_batch(v, def, rep),
            (ColumnWriter::ByteArrayColumnWriter(w), Data::Bytes(d, ends)) => {
                // One buffer for the column's values, each a slice of it.
                let all = bytes::Bytes::from(std::mem::take(d));
                let mut start = 0;
                let values: Vec<ByteArray> = ends
                    .iter()
                    .map(|&end| {
                        let v = ByteArray::from(all.slice(start..end));
                        start = end;
                        v
                    })
                    .collect();
                w.write_batch(&values, def, rep)
            }
            _ => anyhow::bail!("a Parquet column of another type than its buffer (a bug)"),
        };
        written.with_context(ctx)?;
        column.close().with_context(ctx)?;
        buf.clear();
    }
    group.close().with_context(ctx)?;
    part.rows += part.buffered as u64;
    part.buffered = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    use serde_json::{Map, Value, json};

    /// A Parquet field as JSON (times as epoch ms), for comparisons.
    fn field_json(f: &Field) -> Value {
        match f {
            Field::Null => Value::Null,
            Field::Int(i) => json!(i),
            Field::Long(i) | Field::TimestampMillis(i) => json!(i),
            Field::Double(d) => json!(d),
            Field::Str(s) => json!(s),
            Field::ListInternal(l) => Value::Array(l.elements().iter().map(field_json).collect()),
            other => json!(format!("unexpected {other:?}")),
        }
    }

    /// Writes `lines` as one Parquet file of `layout` and reads its rows back.
    fn round_trip(layout: Layout, lines: &str) -> (Vec<Map<String, Value>>, ParquetStats) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut sink = ParquetSink::file(layout, Some(&path)).unwrap();
        // Blocks cut mid-line, as outputs receive them.
        let (a, b) = lines.as_bytes().split_at(lines.len() / 2);
        sink.write_block(a).unwrap();
        sink.write_block(b).unwrap();
        sink.finish().unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .filter(|(_, f)| !matches!(f, Field::Null))
                    .map(|(k, f)| (k.clone(), field_json(f)))
                    .collect()
            })
            .collect();
        (rows, sink.stats)
    }

    #[test]
    fn records_become_typed_columns_and_nothing_is_lost() {
        let lines = concat!(
            r#"{"timestamp":1714521600123,"formatVersion":1,"action":"BLOCK","httpRequest":{"clientIp":"1.2.3.4","country":"US","headers":[{"name":"Host","value":"a"}],"uri":"/x","extraMember":7},"labels":[{"name":"awswaf:a"},{"name":"awswaf:b"}],"oversizeFields":[],"httpStatus":"403","clientAsn":"16509","K_country":1,"UNK_country":0,"futureField":{"x":1}}"#,
            "\n",
            r#"{"timestamp":"2024-05-01T00:59:59Z","action":7,"labels":[{"name":"l","other":1}],"httpStatus":"2xx","responseCodeSent":null}"#,
            "\n"
        );
        let (rows, stats) = round_trip(Layout::Records, lines);
        assert_eq!(rows.len(), 2);
        let a = &rows[0];
        assert_eq!(a["timestamp"], json!(1_714_521_600_123_i64));
        assert_eq!(a["formatVersion"], json!(1));
        assert_eq!(a["clientIp"], json!("1.2.3.4"));
        assert_eq!(a["headers"], json!(r#"[{"name":"Host","value":"a"}]"#));
        assert_eq!(a["labels"], json!(["awswaf:a", "awswaf:b"]));
        assert_eq!(a["oversizeFields"], json!([]));
        assert_eq!(a["httpStatus"], json!(403));
        assert_eq!(a["clientAsn"], json!(16509));
        assert_eq!(a["K_country"], json!(1));
        assert_eq!(a["UNK_country"], json!(0));
        // What has no column is kept in `other`, nested where it was.
        let other: Value = serde_json::from_str(a["other"].as_str().unwrap()).unwrap();
        assert_eq!(
            other,
            json!({"httpRequest": {"extraMember": 7}, "futureField": {"x": 1}})
        );
        let b = &rows[1];
        assert_eq!(b["timestamp"], json!(1_714_525_199_000_i64));
        assert!(!b.contains_key("labels") && !b.contains_key("httpStatus"));
        assert!(!b.contains_key("responseCodeSent"));
        // Values of another type than their column's stay whole in `other`.
        let other: Value = serde_json::from_str(b["other"].as_str().unwrap()).unwrap();
        assert_eq!(
            other,
            json!({"action": 7, "labels": [{"name": "l", "other": 1}], "httpStatus": "2xx"})
        );
        assert_eq!(stats.rows, 2);
        assert_eq!(stats.other, 2);
        assert_eq!(stats.files, 1);
    }

    #[test]
    fn results_incidents_and_feedback_share_one_schema() {
        let lines = concat!(
            r#"{"detector_id":"d","detector_name":"d","entity":[{"name":"clientIp","value":"1.2.3.4"}],"data_start_time":60000,"data_end_time":120000,"execution_start_time":1,"execution_end_time":2,"anomaly_score":3.5,"anomaly_grade":0.75,"confidence":0.9,"threshold":1.0,"feature_data":[{"feature_id":"f","feature_name":"f","data":4.0}],"relevant_attribution":[],"expected_values":[],"records":12}"#,
            "\n",
            r#"{"type":"incident","incident_id":"i1","state":"open","data_start_time":60000,"summary":"s"}"#,
            "\n",
            r#"{"type":"feedback","alert_id":"a1","start_time":60000,"learnt":false}"#,
        );
        let (rows, stats) = round_trip(Layout::Results, lines);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["type"], json!("result"));
        assert_eq!(rows[0]["anomaly_grade"], json!(0.75));
        assert_eq!(rows[0]["records"], json!(12));
        assert_eq!(rows[0]["data_start_time"], json!(60000));
        assert!(!rows[0].contains_key("other"));
        assert_eq!(rows[1]["type"], json!("incident"));
        assert_eq!(rows[1]["incident_id"], json!("i1"));
        assert_eq!(rows[1]["other"], json!(r#"{"state":"open"}"#));
        assert_eq!(rows[2]["alert_id"], json!("a1"));
        let other: Value = serde_json::from_str(rows[2]["other"].as_str().unwrap()).unwrap();
        assert_eq!(other, json!({"start_time": 60000, "learnt": false}));
        assert_eq!(stats.rows, 3);
    }

    #[test]
    fn a_directory_gets_one_file_per_hour_and_row_groups_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetSink::dir(Layout::Records, dir.path()).unwrap();
        let base = 1_714_521_600_000_i64; // 2024-05-01T00:00Z
        let mut text = String::new();
        // 3 hours, ROW_GROUP_ROWS + 5 rows in the first; then (in the next block)
        // one late row for hour 0, whose file was closed as the stream was 2
        // hours on: a second file.
        let n0 = ROW_GROUP_ROWS + 5;
        for i in 0..n0 {
            text.push_str(&format!("{{\"timestamp\":{}}}\n", base + i as i64));
        }
        for h in 1..3 {
            text.push_str(&format!("{{\"timestamp\":{}}}\n", base + h * HOUR_MS));
        }
        sink.write_block(text.as_bytes()).unwrap();
        sink.write_block(format!("{{\"timestamp\":{}}}\n", base + 10).as_bytes())
            .unwrap();
        sink.finish().unwrap();
        let mut files: Vec<(String, i64, usize)> = walk(dir.path())
            .into_iter()
            .map(|p| {
                let r = SerializedFileReader::new(File::open(&p).unwrap()).unwrap();
                let m = r.metadata();
                let rel = p.strip_prefix(dir.path()).unwrap();
                (
                    rel.parent().unwrap().display().to_string(),
                    m.file_metadata().num_rows(),
                    m.num_row_groups(),
                )
            })
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![
                ("2024/05/01/00".into(), 1, 1),
                ("2024/05/01/00".into(), n0 as i64, 2),
                ("2024/05/01/01".into(), 1, 1),
                ("2024/05/01/02".into(), 1, 1),
            ]
        );
        assert_eq!(sink.stats.rows, n0 as u64 + 3);
        // No temporary file is left.
        assert!(walk(dir.path()).iter().all(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(".parquet")
                && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        }));
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(dir)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect()
    }

    #[test]
    fn other_shapes_are_kept_whole_in_other() {
        let lines = concat!(
            "[1,2]\n",
            r#"{"timestamp":5,"timestamp":6,"httpRequest":"text","labels":"x"}"#,
            "\n"
        );
        let (rows, stats) = round_trip(Layout::Records, lines);
        assert_eq!(rows[0]["other"], json!(r#"{"other":[1,2]}"#));
        assert_eq!(rows[1]["timestamp"], json!(5));
        let other: Value = serde_json::from_str(rows[1]["other"].as_str().unwrap()).unwrap();
        assert_eq!(
            other,
            json!({"timestamp": 6, "httpRequest": "text", "labels": "x"})
        );
        assert_eq!(stats.other, 2);
    }

    #[test]
    fn a_line_that_is_not_json_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink =
            ParquetSink::file(Layout::Records, Some(&dir.path().join("x.parquet"))).unwrap();
        let e = sink.write_block(b"{not json\n").unwrap_err();
        assert!(format!("{e:#}").contains("not JSON"), "{e:#}");
    }
}
