//! Helpers of the examples: the file side of what `waflog-core` does on data.
//!
//! - [`nab`]: loads the NAB corpus, profiles and per-row result CSVs from a NAB folder
//!   (by default the copy vendored in `fixtures/nab`) for `waflog_core::eval::nab`,
//!   which takes only text and readers; writes per-row scores as NAB result CSVs; picks
//!   a subset of the files.

pub mod nab;
