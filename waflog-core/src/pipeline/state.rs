//! [`State`]: everything a run keeps for the next one, in one versioned document
//! with one reader ([`State::read`]) and one writer ([`State::write`]).
//!
//! The layout is the `--state` file of the CLI (JSON, version 1): the detection
//! engine's fields at the top level (`detectors`, `max_event_ms`, `slots`), then
//! `checkpoints` (stream positions), `records`, `alerts` (the alert book and its
//! outbox), `incidents` (the open incidents, see [`crate::alert::incident`]), `series`
//! (the metric series of `detect --input-format csv` by name, see
//! [`crate::detect::metrics`]), and the S3 positions of `waflog transform --state` (`s3_done`,
//! `s3_current`). Every part is optional but the version, so the files written by
//! `detect --state` and by `transform --state` both read as a `State`.
//!
//! The core does no file I/O: the caller gives a reader or a writer (the CLI
//! writes atomically, through a temporary file and a rename).
//!
//! ```
//! use waflog_core::pipeline::State;
//! let mut state = State::new();
//! state.checkpoints.insert("waf/shardId-000000000000".into(), "4959".into());
//! let mut json = Vec::new();
//! state.write(&mut json).unwrap();
//! let back = State::read(json.as_slice()).unwrap();
//! assert_eq!(back.stream_checkpoints("waf")["shardId-000000000000"], "4959");
//! assert!(State::read(&br#"{"version":9}"#[..]).is_err());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::alert::{AlertBook, AlertError, Correlator};
use crate::detect::engine::SlotState;
use crate::detect::metrics::SeriesState;
use crate::detect::{DetectorSpec, EngineState};

/// Version of the state format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// A state that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state was written in another format version.
    #[error("state format version {found} is not supported (this waflog reads version {expected})")]
    Version {
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// Not JSON, or not shaped like a state.
    #[error("not a waflog state: {0}")]
    Json(#[source] serde_json::Error),
    /// The detection part is there only in part (`detectors` without `slots`).
    #[error("not a waflog state: the detectors' part is incomplete (`{missing}` is missing)")]
    Incomplete {
        /// The missing field.
        missing: &'static str,
    },
    /// The alert book inside is of another version.
    #[error("bad alert state")]
    Alerts(#[source] AlertError),
    /// Reading or writing failed.
    #[error("cannot read or write the state")]
    Io(#[source] std::io::Error),
}

/// Where in an S3 input a rerun of `waflog transform --state` resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Current {
    /// The input's name (`s3://bucket/key`, or the merged prefix).
    pub input: String,
    /// Records of it already in the output.
    pub written: u64,
}

/// Everything that must survive a restart: see the module docs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct State {
    /// The detection engine's models and open intervals (none in a state written
    /// by a transform).
    pub engine: Option<EngineState>,
    /// Stream positions: `stream/shard` -> the last sequence number whose records
    /// are in the models (detect) or the output (transform).
    pub checkpoints: BTreeMap<String, String>,
    /// Records the models have taken in since the state was created.
    pub records: u64,
    /// Alerts and undelivered notifications.
    pub alerts: Option<AlertBook>,
    /// S3 inputs (objects, or a merged prefix) whose records all reached the output.
    pub s3_done: BTreeSet<String>,
    /// The S3 input being read when a transform stopped.
    pub s3_current: Option<S3Current>,
    /// The open incidents (absent in states written before incidents).
    pub incidents: Option<Correlator>,
    /// Metric series (`detect --input-format csv`) by name: models and positions.
    pub series: BTreeMap<String, SeriesState>,
}

/// The document as written: the engine's fields flattened at the top level.
#[derive(Deserialize)]
struct Wire {
    version: u32,
    #[serde(default)]
    detectors: Option<Vec<DetectorSpec>>,
    #[serde(default)]
    max_event_ms: Option<i64>,
    #[serde(default)]
    slots: Option<Vec<SlotState>>,
    #[serde(default)]
    checkpoints: BTreeMap<String, String>,
    #[serde(default)]
    records: u64,
    #[serde(default)]
    alerts: Option<AlertBook>,
    #[serde(default)]
    s3_done: BTreeSet<String>,
    #[serde(default)]
    s3_current: Option<S3Current>,
    #[serde(default)]
    incidents: Option<Correlator>,
    #[serde(default)]
    series: BTreeMap<String, SeriesState>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State::default()
    }

    /// Reads a state (all of `reader`).
    pub fn read(mut reader: impl Read) -> Result<State, StateError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(StateError::Io)?;
        State::from_slice(&bytes)
    }

    /// Reads a state from its JSON text.
    pub fn from_slice(bytes: &[u8]) -> Result<State, StateError> {
        let wire: Wire = match serde_json::from_slice(bytes) {
            Ok(w) => w,
            Err(e) => {
                // Another version may have another shape: say so rather than
                // naming a field.
                return Err(match serde_json::from_slice::<VersionOnly>(bytes) {
                    Ok(v) if v.version != STATE_VERSION => StateError::Version {
                        found: v.version,
                        expected: STATE_VERSION,
                    },
                    _ => StateError::Json(e),
                });
            }
        };
        if wire.version != STATE_VERSION {
            return Err(StateError::Version {
                found: wire.version,
                expected: STATE_VERSION,
            });
        }
        if let Some(book) = &wire.alerts {
            book.check_version().map_err(StateError::Alerts)?;
        }
        let engine = match (wire.detectors, wire.slots) {
            (Some(detectors), Some(slots)) => Some(EngineState {
                version: crate::detect::STATE_VERSION,
                detectors,
                max_event_ms: wire.max_event_ms,
                slots,
            }),
            (None, None) => None,
            (Some(_), None) => return Err(StateError::Incomplete { missing: "slots" }),
            (None, Some(_)) => {
                return Err(StateError::Incomplete {
                    missing: "detectors",
                });
            }
        };
        Ok(State {
            engine,
            checkpoints: wire.checkpoints,
            records: wire.records,
            alerts: wire.alerts,
            s3_done: wire.s3_done,
            s3_current: wire.s3_current,
            incidents: wire.incidents,
            series: wire.series,
        })
    }

    /// Writes the state as one JSON document.
    pub fn write(&self, mut writer: impl Write) -> Result<(), StateError> {
        let bytes = self.to_vec()?;
        writer.write_all(&bytes).map_err(StateError::Io)?;
        writer.flush().map_err(StateError::Io)
    }

    /// The state as JSON text.
    pub fn to_vec(&self) -> Result<Vec<u8>, StateError> {
        serde_json::to_vec(self).map_err(StateError::Json)
    }

    /// The checkpoints of `stream`'s shards (shard -> sequence number).
    pub fn stream_checkpoints(&self, stream: &str) -> BTreeMap<String, String> {
        of_stream(&self.checkpoints, stream)
    }
}

/// The checkpoints of `stream`'s shards (shard -> sequence number) among
/// checkpoints kept as `stream/shard` -> sequence number.
pub fn of_stream(all: &BTreeMap<String, String>, stream: &str) -> BTreeMap<String, String> {
    let prefix = format!("{stream}/");
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v.clone())))
        .collect()
}

impl Serialize for State {
    /// The layout of version 1, field for field as `detect --state` and
    /// `transform --state` wrote it before they shared this type.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("version", &STATE_VERSION)?;
        if let Some(e) = &self.engine {
            m.serialize_entry("detectors", &e.detectors)?;
            m.serialize_entry("max_event_ms", &e.max_event_ms)?;
            m.serialize_entry("slots", &e.slots)?;
        }
        // A transform's state always had its checkpoints; a detector's only when
        // it read a stream.
        if !self.checkpoints.is_empty() || self.engine.is_none() {
            m.serialize_entry("checkpoints", &self.checkpoints)?;
        }
        if self.engine.is_some() {
            m.serialize_entry("records", &self.records)?;
        }
        if let Some(a) = &self.alerts {
            m.serialize_entry("alerts", a)?;
        }
        if !self.s3_done.is_empty() {
            m.serialize_entry("s3_done", &self.s3_done)?;
        }
        if let Some(c) = &self.s3_current {
            m.serialize_entry("s3_current", c)?;
        }
        if let Some(c) = &self.incidents {
            m.serialize_entry("incidents", c)?;
        }
        if !self.series.is_empty() {
            m.serialize_entry("series", &self.series)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::detect::Engine;

    /// Written by `waflog detect --alerts --state` before this type existed
    /// (see `fixtures/README.md`).
    const DETECT_V1: &str = include_str!("../../../fixtures/state/detect-v1.json");
    /// The layout `waflog transform --state` wrote before this type existed.
    const TRANSFORM_V1: &str = include_str!("../../../fixtures/state/transform-v1.json");

    #[test]
    fn a_detect_state_of_the_old_format_loads_and_resumes() {
        let state = State::from_slice(DETECT_V1.as_bytes()).unwrap();
        assert_eq!(state.records, 11_783);
        assert!(state.checkpoints.is_empty());
        let book = state.alerts.as_ref().unwrap();
        assert_eq!(book.list().len(), 1);
        assert_eq!(book.list()[0].monitor, "UNK_country-Monitor");
        let engine = state.engine.clone().unwrap();
        assert_eq!(engine.detectors.len(), 6);
        assert_eq!(engine.max_event_ms, Some(1_714_523_999_687));
        let config = Config::default();
        let restored = Engine::restore(
            &config.detector_specs(),
            config.feature_map().unwrap(),
            engine,
        )
        .unwrap();
        assert_eq!(restored.max_event_ms(), Some(1_714_523_999_687));
        // Written back, it is the same document.
        let again: serde_json::Value = serde_json::from_slice(&state.to_vec().unwrap()).unwrap();
        let old: serde_json::Value = serde_json::from_str(DETECT_V1).unwrap();
        assert_eq!(again, old);
    }

    #[test]
    fn a_transform_state_of_the_old_format_loads_and_writes_back_the_same() {
        let state = State::from_slice(TRANSFORM_V1.as_bytes()).unwrap();
        assert!(state.engine.is_none() && state.alerts.is_none());
        assert_eq!(state.checkpoints.len(), 2);
        assert_eq!(
            state
                .stream_checkpoints("waf-logs")
                .keys()
                .collect::<Vec<_>>(),
            ["shardId-000000000000", "shardId-000000000001"]
        );
        assert_eq!(state.s3_done.len(), 1);
        assert_eq!(state.s3_current.as_ref().map(|c| c.written), Some(120));
        assert_eq!(
            String::from_utf8(state.to_vec().unwrap()).unwrap(),
            TRANSFORM_V1.trim_end()
        );
    }

    #[test]
    fn round_trip_keeps_every_part() {
        let mut state = State::new();
        state.checkpoints.insert("s/shard-1".into(), "42".into());
        state.records = 7;
        state.alerts = Some(AlertBook::new());
        state.s3_done.insert("s3://b/k".into());
        state.s3_current = Some(S3Current {
            input: "s3://b/j".into(),
            written: 3,
        });
        let mut out = Vec::new();
        state.write(&mut out).unwrap();
        let back = State::read(out.as_slice()).unwrap();
        assert_eq!(back.checkpoints, state.checkpoints);
        assert_eq!(back.alerts, state.alerts);
        assert_eq!(back.s3_done, state.s3_done);
        assert_eq!(back.s3_current, state.s3_current);
        // Without models, `records` is not part of the document (a transform's).
        assert_eq!(back.records, 0);
    }

    #[test]
    fn a_wrong_version_or_bad_json_is_a_clear_error() {
        let err = State::from_slice(br#"{"version":2,"checkpoints":{}}"#).unwrap_err();
        assert!(matches!(
            err,
            StateError::Version {
                found: 2,
                expected: 1
            }
        ));
        assert!(err.to_string().contains("version 2"), "{err}");
        // Another version with another shape is still a version error.
        let err = State::from_slice(br#"{"version":3,"checkpoints":[1]}"#).unwrap_err();
        assert!(matches!(err, StateError::Version { found: 3, .. }), "{err}");
        for bad in [&b"{\"version\": 1"[..], b"[]", b"", b"{}", b"\xff"] {
            let err = State::from_slice(bad).unwrap_err();
            assert!(matches!(err, StateError::Json(_)), "{err}");
        }
        let err = State::from_slice(br#"{"version":1,"detectors":[]}"#).unwrap_err();
        assert!(matches!(err, StateError::Incomplete { missing: "slots" }));
        let mut book: serde_json::Value = serde_json::to_value(AlertBook::new()).unwrap();
        book["version"] = 9.into();
        let doc = serde_json::json!({"version": 1, "alerts": book}).to_string();
        let err = State::from_slice(doc.as_bytes()).unwrap_err();
        assert!(matches!(err, StateError::Alerts(_)), "{err}");
    }
}
