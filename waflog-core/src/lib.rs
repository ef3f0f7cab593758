//! # waflog-core
//!
//! The reusable heart of waflog: the AWS WAF v2 log schema, the traffic simulator,
//! the known / unknown / bad indicator mapping, the detectors, alerting and the
//! pipeline that runs them with one state. It does no I/O beyond `std::io::Read`,
//! has no async and no cloud dependencies: sources and sinks are the caller's.
//!
//! The modules read as the flow, one direction:
//!
//! ```text
//! bytes -> parse -------> features ----> detect ----------------------> alert -------> outputs
//!          lines,          indicators     aggregate (intervals)          monitors,      opensearch,
//!          records,        (K_country,    -> Detector models             triggers,      dashboard,
//!          input contract  UNK_country..) -> AnomalyResult               book, outbox   ocsf
//!            \-> DeadLetter for every line that is not a record
//! ```
//!
//! - [`parse`]: records out of bytes, and what is dead-lettered and why;
//! - [`features`]: the seed's indicators of a record; [`transform`] writes them out
//!   line by line;
//! - [`detect`]: per-interval aggregates (`detect::aggregate`) scored by the
//!   [`detect::Detector`] models, driven by the [`detect::Engine`];
//! - [`alert`]: monitors and triggers over the results, the alert lifecycle and the
//!   notifications due;
//! - [`pipeline`]: all of it in one object with one versioned state, for a program
//!   that wants detection with alerts in process;
//! - outputs: [`opensearch`] request bodies, [`dashboard`] data, [`ocsf`] events;
//!   [`firehose`] answers Kinesis Data Firehose transformation events;
//! - around them: [`config`] (`waflog.toml`), [`simulate`] (traffic with labelled
//!   anomalies), [`eval`] (scores against ground truth), [`names`], [`timestamp`],
//!   [`text`] and [`error`].
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
pub mod config;
pub mod dashboard;
pub mod detect;
pub mod error;
pub mod eval;
pub mod features;
pub mod firehose;
pub mod names;
pub mod ocsf;
pub mod opensearch;
pub mod parse;
pub mod pipeline;
pub mod simulate;
pub mod text;
pub mod timestamp;
pub mod transform;

pub use config::Config;
pub use error::{ConfigError, DetectError, DurationError, ScenarioError, SchemaError};
pub use parse::schema::WafLog;
