//! Evaluation of detectors against ground truth.
//!
//! - [`episodes`]: results of `waflog detect` against the simulator's `--truth`
//!   episodes: recall per episode, precision of flagged intervals, false alarms per
//!   simulated day, detection delay.
//! - [`nab`]: the Numenta Anomaly Benchmark scoring method (windows, scaled-sigmoid
//!   rewards, cost profiles, per-profile threshold optimisation, null = 0 / perfect = 100
//!   normalisation), and parsers for the NAB corpus, windows, profiles and result
//!   CSVs (data in, no files).

pub mod episodes;
pub mod nab;
