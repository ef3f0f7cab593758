//! Evaluation of detectors against ground truth.
//!
//! - [`episodes`]: results of `waflog detect` against the simulator's `--truth`
//!   episodes: recall per episode, precision of flagged intervals, false alarms per
//!   simulated day, detection delay.
//! - [`nab`]: the Numenta Anomaly Benchmark scoring method (windows, scaled-sigmoid
//!   rewards, cost profiles, per-profile threshold optimisation, null = 0 / perfect = 100
//!   normalisation) and a loader for the NAB corpus.

pub mod episodes;
pub mod nab;
