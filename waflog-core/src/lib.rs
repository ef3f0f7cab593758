//! # waflog-core
//!
//! The reusable heart of waflog: the AWS WAF v2 log schema, the traffic simulator,
//! the known / unknown / bad indicator mapping and (later) the detectors. It does no
//! I/O beyond `std::io::Read`, has no async and no cloud dependencies.
//!
//! The data flow is one direction:
//!
//! ```text
//! lines (LineReader) -> parse (RecordView / WafLog) -> indicators (FeatureMap) -> output line
//!                    \-> DeadLetter for every line that is not a record
//! ```
//!
//! ```
//! use waflog_core::{features::FeatureMap, transform::Transformer};
//! let t = Transformer::new(FeatureMap::default());
//! let mut out = Vec::new();
//! t.transform_line(br#"{"timestamp":1669682102.5,"action":"BLOCK","httpRequest":{"country":"XX"}}"#, &mut out).unwrap();
//! let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(v["timestamp"], 1669682102500_i64);
//! assert_eq!((v["B_action"].as_u64(), v["UNK_country"].as_u64()), (Some(1), Some(1)));
//! ```

#![deny(missing_docs)]

pub mod alert;
pub mod cloudwatch;
pub mod config;
pub mod dashboard;
pub mod detect;
pub mod error;
pub mod eval;
pub mod features;
pub mod firehose;
pub mod lines;
pub mod names;
pub mod ocsf;
pub mod opensearch;
pub mod pipeline;
pub mod record;
pub mod schema;
pub mod simulate;
pub mod text;
pub mod timestamp;
pub mod transform;

pub use config::Config;
pub use error::{ConfigError, DetectError, DurationError, ScenarioError, SchemaError};
pub use schema::WafLog;
