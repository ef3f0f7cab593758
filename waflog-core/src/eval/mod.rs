//! Evaluation of detectors against ground truth.
//!
//! - [`nab`]: the Numenta Anomaly Benchmark scoring method (windows, scaled-sigmoid
//!   rewards, cost profiles, per-profile threshold optimisation, null = 0 / perfect = 100
//!   normalisation) and a loader for the NAB corpus.
//!
//! Scoring against the traffic simulator's own ground truth comes later.

pub mod nab;
