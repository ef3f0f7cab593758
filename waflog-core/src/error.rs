//! Error types, one per boundary.

use std::path::PathBuf;

/// Why one input line could not become a record. Every variant is recoverable: the
/// line goes to the dead-letter output and the run goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8 at byte {at}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        at: usize,
    },
    /// The line is longer than the configured limit.
    #[error("line of {len} bytes exceeds the limit of {max} bytes")]
    LineTooLong {
        /// Length of the line in bytes.
        len: u64,
        /// The limit (`[input] max_line_bytes`).
        max: usize,
    },
    /// The line is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The line is valid JSON but not an object.
    #[error("not a JSON object (found {0})")]
    NotAnObject(&'static str),
    /// The record has no `timestamp` (or it is `null`).
    #[error("missing timestamp")]
    MissingTimestamp,
    /// The `timestamp` cannot be read as a time.
    #[error("unparsable timestamp {value}: {reason}")]
    InvalidTimestamp {
        /// The raw JSON value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A field has a type the schema does not allow (e.g. `"action": 3`).
    #[error("invalid field: {0}")]
    InvalidField(String),
    /// The record's time is further ahead of the stream's event time than the
    /// horizon allows (see [`crate::detect::TimeRules`]).
    #[error(
        "timestamp {time} is {ahead} ahead of the stream's event time (horizon {horizon}): \
         kept out so that one record cannot move the clock for all; a stream that really \
         jumps is followed after {confirm} such records in a row"
    )]
    AheadOfStream {
        /// The record's time (RFC 3339).
        time: String,
        /// How far ahead, as a duration (`1day 2h`).
        ahead: String,
        /// The horizon (`[input] horizon`).
        horizon: String,
        /// Records in a row that confirm a jump.
        confirm: u32,
    },
    /// The record's interval was closed already for every detector.
    #[error(
        "late: timestamp {time} is {behind} behind the stream's event time, after its \
         interval closed (window delay {delay}); replay it with the rest of its period"
    )]
    Late {
        /// The record's time (RFC 3339).
        time: String,
        /// How far behind the latest event time.
        behind: String,
        /// The smallest window delay of the detectors.
        delay: String,
    },
}

/// A detector's duration (`interval`, `window_delay`) that is not one, or is out of
/// range: reported when the configuration is read, as part of a
/// [`ConfigError::Parse`] that names the file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detector `{detector}`: {field}: {reason}")]
#[non_exhaustive]
pub struct DurationError {
    /// The detector's name.
    pub detector: String,
    /// `interval` or `window_delay`.
    pub field: &'static str,
    /// What is wrong with the value.
    pub reason: String,
}

/// A configuration or profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema; the message names the line and key.
    #[error("{path}: {message}")]
    Parse {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// A value is out of range or inconsistent; `field` is its dotted path.
    #[error("{path}: invalid `{field}`: {reason}")]
    Invalid {
        /// The file (or `<built-in>`).
        path: PathBuf,
        /// Dotted path of the offending field, e.g. `features.bad_status`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// A simulator scenario that cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// An `--inject` specification that cannot be parsed.
    #[error("invalid episode `{spec}`: {reason}")]
    Episode {
        /// The specification as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A scenario parameter out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A detection run that cannot start or resume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The detector configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state file was written by an incompatible version of waflog.
    #[error(
        "state format version {found} is not supported (this waflog writes version {expected}); start over with --fresh"
    )]
    StateVersion {
        /// Version in the file.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
    /// The state file was written for other detectors.
    #[error(
        "the state was saved for other detectors ({reason}); start over with --fresh or restore the configuration it was written with"
    )]
    StateMismatch {
        /// What differs.
        reason: String,
    },
    /// A model in the state file cannot be read.
    #[error("detector {detector}: saved model cannot be restored: {reason}")]
    StateModel {
        /// Detector name.
        detector: String,
        /// Why.
        reason: String,
    },
}

/// An alert book operation that cannot be done (`waflog alerts ack ID`, a delivery
/// report, a saved alert state).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// No alert has this ID (or ID prefix).
    #[error("no alert with ID `{id}`")]
    UnknownAlert {
        /// The ID as given.
        id: String,
    },
    /// The pipeline runs without alerting, so it holds no alert to act on.
    #[error("cannot act on alert `{id}`: this pipeline runs without alerting (no monitors)")]
    AlertingOff {
        /// The ID as given.
        id: String,
    },
    /// The ID prefix matches more than one alert.
    #[error("alert ID `{id}` is ambiguous: it matches {matches}")]
    AmbiguousId {
        /// The prefix as given.
        id: String,
        /// The IDs it matches, comma-separated.
        matches: String,
    },
    /// The alert is completed and can no longer be acknowledged.
    #[error("alert `{id}` is {state} and cannot be acknowledged")]
    NotOpen {
        /// The alert ID.
        id: String,
        /// Its state.
        state: String,
    },
    /// No pending delivery has this ID (already delivered or given up).
    #[error("no pending delivery with ID {id}")]
    UnknownDelivery {
        /// The delivery ID.
        id: u64,
    },
    /// No configured channel has this name.
    #[error("no channel named `{name}` (configured: {known})")]
    UnknownChannel {
        /// The name as given.
        name: String,
        /// The configured names, comma-separated.
        known: String,
    },
    /// The saved alert state was written by an incompatible version of waflog.
    #[error(
        "alert state format version {found} is not supported (this waflog writes version {expected})"
    )]
    StateVersion {
        /// Version in the state.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
}

/// Why a [`crate::alert::Notifier`] could not send a notification.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A failure that may pass (timeout, connection refused, HTTP 429 or 5xx,
    /// throttling): the delivery stays in the outbox and is retried with backoff.
    #[error("{0}")]
    Failed(String),
    /// A failure that retrying cannot fix (HTTP 400/404, an invalid topic ARN, access
    /// denied): the delivery leaves the outbox at once and the loss is recorded on the
    /// alert.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// A request body that cannot be built for OpenSearch, or a response from it that
/// cannot be read (see [`crate::opensearch`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenSearchError {
    /// An index name (or the base of a time-based name) that OpenSearch refuses.
    #[error("invalid index name `{name}`: {reason}")]
    InvalidIndexName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A response body that is not the documented JSON shape.
    #[error("cannot read the {what} response: {reason}")]
    InvalidResponse {
        /// Which response (`bulk`, `detector search`, `profile` ...).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A bulk response whose items do not match the actions sent one for one, so no
    /// item can be attributed to its document.
    #[error("the bulk response has {got} items for {sent} actions sent")]
    ItemCount {
        /// Actions sent.
        sent: usize,
        /// Items in the response.
        got: usize,
    },
    /// A detector whose configuration cannot become an Anomaly Detection request.
    #[error("detector `{detector}`: {reason}")]
    Detector {
        /// Detector name.
        detector: String,
        /// What is wrong.
        reason: String,
    },
    /// A monitor that cannot become an Alerting request.
    #[error("monitor `{monitor}`: {reason}")]
    Monitor {
        /// Monitor name.
        monitor: String,
        /// What is wrong.
        reason: String,
    },
    /// A channel that cannot become a Notifications channel configuration.
    #[error("channel `{channel}`: {reason}")]
    Channel {
        /// Channel name.
        channel: String,
        /// What is wrong.
        reason: String,
    },
    /// A search by name found several objects with exactly that name.
    #[error("{count} {kind}s in the cluster are named `{name}`; delete all but one")]
    Ambiguous {
        /// `detector` or `monitor`.
        kind: &'static str,
        /// The name searched.
        name: String,
        /// How many matched.
        count: usize,
    },
    /// A saved-objects import request that cannot be built.
    #[error("saved-objects import: {0}")]
    Import(String),
}
