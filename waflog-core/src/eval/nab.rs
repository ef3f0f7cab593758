//! The Numenta Anomaly Benchmark (NAB) scoring method.
//!
//! A re-implementation of the scoring in NAB's reference code (repository
//! `numenta/NAB`, the commit whose data lives in `shared/nab/`): `nab/sweeper.py`
//! (per-row weights, per-threshold scores), `nab/optimizer.py` (threshold choice),
//! `nab/scorer.py` (per-file scores at that threshold), `nab/runner.py` (normalisation),
//! `nab/util.py` (probationary period) and `nab/labeler.py` (windows).
//!
//! # The method
//!
//! - **Probationary period** ([`probation_rows`]): the first
//!   `min(floor(0.15 * rows), 0.15 * 5000)` rows of each file (so at most 750) are not
//!   scored at all: neither detections nor misses there count.
//! - **Windows** are inclusive row ranges, from the row whose timestamp is the window's
//!   start to the row whose timestamp is its end; label timestamps must exist in the file.
//! - **Row weights.** With `S(x) = 2 * sigmoid(-5x) - 1` (and `S(x) = -1` for `x > 3`):
//!   - a row `i` inside window `[s, e]` of width `w = e - s + 1` has relative position
//!     `x = -(e - i + 1) / w` (−1 at the window start, `-1/w` at its last row) and weight
//!     `tp_weight * S(x) / S(-1)`, i.e. exactly `tp_weight` at the window start;
//!   - a row outside every window, after a window `[s', e']` of width `w'` (the closest
//!     preceding one), has `x = (i - e') / (w' - 1)` and weight `fp_weight * S(x)`
//!     (slightly negative just after the window, `-fp_weight` far from it);
//!   - a row before the first window weighs `-fp_weight`.
//! - **Score of a file** for a set of detections (probationary rows ignored): the sum of
//!   the weights of all detections outside windows, plus, for every window that has at
//!   least one non-probationary row, the maximum of `-fn_weight` and the weights of its
//!   detected rows. The weights fall along a window, so this maximum is the weight of the
//!   *first* detection: later detections in the same window add nothing. A missed window
//!   costs `fn_weight`. `tn_weight` is not used by NAB.
//! - **Threshold** ([`normalized_scores`]): a row is a detection when its anomaly score
//!   is `>= threshold`. One threshold per profile is chosen for the whole corpus: NAB's
//!   optimiser sorts all scorable rows of all files by anomaly score (descending) and
//!   sweeps, recording the corpus score before each new distinct score value and at the
//!   end; the best score wins, ties going to the highest threshold (Python's stable sort).
//!   "Detect nothing" is NAB's starting threshold `1.1` (it assumes scores in `[0, 1]`);
//!   here it is [`f64::INFINITY`]. Every distinct score value is a candidate, so this is
//!   the exact optimum over all thresholds.
//! - **Normalisation** (`Runner.normalize`): `100 * (raw - null) / (perfect - null)`, where
//!   `raw` is the sum of the per-file scores at the chosen threshold, `perfect` is
//!   `tp_weight` times the number of windows in the label file, and `null` is the score of
//!   NAB's null detector. That detector outputs a constant, so after threshold
//!   optimisation it either detects nothing (`-fn_weight` per scorable window, the case
//!   on the real corpus: −116 for the standard profile) or every row, whichever scores
//!   higher; both are computed here.
//!
//! ```no_run
//! use std::path::Path;
//! use waflog_core::eval::nab;
//! let root = Path::new("../shared/nab");
//! let corpus = nab::load_corpus(root)?;
//! let profiles = nab::load_profiles(&root.join("config/profiles.json"))?;
//! // A detector that never fires scores 0 on every profile.
//! let scores: Vec<Vec<f64>> = corpus.iter().map(|s| vec![0.0; s.values.len()]).collect();
//! let result = nab::normalized_scores(&corpus, &scores, &profiles["standard"]);
//! assert_eq!(result.normalized, 0.0);
//! # Ok::<(), nab::NabError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Share of each file (from its start) that is a probationary period.
pub const PROBATION_PERCENT: f64 = 0.15;

/// Why the NAB corpus, labels or profiles cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NabError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON file (labels or profiles) does not have the expected shape.
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A line of a data CSV cannot be read.
    #[error("{path}:{line}: {reason}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The windows of one series are unusable (unknown timestamp, out of order...).
    #[error("{path}: windows of `{series}`: {reason}")]
    Window {
        /// The label file.
        path: PathBuf,
        /// The series key, e.g. `realKnownCause/nyc_taxi.csv`.
        series: String,
        /// What is wrong.
        reason: String,
    },
}

/// The weights of one NAB application profile (`CostMatrix` in `config/profiles.json`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostProfile {
    /// Reward for a detected window (the score of a detection at its very start).
    pub tp_weight: f64,
    /// Cost of a false positive far from any window.
    pub fp_weight: f64,
    /// Cost of a missed window.
    pub fn_weight: f64,
    /// Read from the profile for completeness; NAB's scoring does not use it.
    pub tn_weight: f64,
}

impl CostProfile {
    /// NAB's `standard` profile.
    pub const STANDARD: Self = Self::new(1.0, 0.11, 1.0);
    /// NAB's `reward_low_FP_rate` profile.
    pub const REWARD_LOW_FP_RATE: Self = Self::new(1.0, 0.22, 1.0);
    /// NAB's `reward_low_FN_rate` profile.
    pub const REWARD_LOW_FN_RATE: Self = Self::new(1.0, 0.11, 2.0);

    const fn new(tp_weight: f64, fp_weight: f64, fn_weight: f64) -> Self {
        Self {
            tp_weight,
            fp_weight,
            fn_weight,
            tn_weight: 1.0,
        }
    }
}

/// Reads NAB's `config/profiles.json`: profile name → its `CostMatrix`.
pub fn load_profiles(path: &Path) -> Result<BTreeMap<String, CostProfile>, NabError> {
    #[derive(serde::Deserialize)]
    struct Profile {
        #[serde(rename = "CostMatrix")]
        cost_matrix: CostProfile,
    }
    let text = read(path)?;
    let profiles: BTreeMap<String, Profile> =
        serde_json::from_str(&text).map_err(|e| json_error(path, &e))?;
    Ok(profiles
        .into_iter()
        .map(|(name, p)| (name, p.cost_matrix))
        .collect())
}

/// One labelled NAB time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Path relative to `data/`, as in the label file, e.g. `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    /// Row timestamps, epoch milliseconds (the files' times are read as UTC). Not always
    /// increasing: a few NAB files repeat or go back in time (clock changes).
    pub timestamps: Vec<i64>,
    /// Row values.
    pub values: Vec<f64>,
    /// Anomaly windows as inclusive row ranges `(first, last)`, in order, disjoint.
    pub windows: Vec<(usize, usize)>,
}

/// Loads the NAB corpus under `root`: every series named in
/// `labels/combined_windows.json` (sorted by name), read from `data/<name>`, with its
/// windows mapped to rows.
///
/// As in NAB, each window limit must be the timestamp of a row of its file (the first
/// such row is taken); windows must be in order and must not overlap. Data files without
/// an entry in the label file are not part of the corpus (NAB skips them too).
pub fn load_corpus(root: &Path) -> Result<Vec<Series>, NabError> {
    let labels_path = root.join("labels").join("combined_windows.json");
    let text = read(&labels_path)?;
    let labels: BTreeMap<String, Vec<[String; 2]>> =
        serde_json::from_str(&text).map_err(|e| json_error(&labels_path, &e))?;
    let mut corpus = Vec::with_capacity(labels.len());
    for (name, limits) in labels {
        let (timestamps, values) = read_csv(&root.join("data").join(&name))?;
        let window_error = |reason: String| NabError::Window {
            path: labels_path.clone(),
            series: name.clone(),
            reason,
        };
        let row_of = |limit: &str| -> Result<usize, NabError> {
            let t = parse_timestamp(limit)
                .ok_or_else(|| window_error(format!("invalid timestamp `{limit}`")))?;
            timestamps
                .iter()
                .position(|&x| x == t)
                .ok_or_else(|| window_error(format!("timestamp `{limit}` is not in the file")))
        };
        let mut windows: Vec<(usize, usize)> = Vec::with_capacity(limits.len());
        for [start, end] in &limits {
            let (first, last) = (row_of(start)?, row_of(end)?);
            if first > last {
                return Err(window_error(format!(
                    "window `{start}`..`{end}` ends before it starts"
                )));
            }
            if windows
                .last()
                .is_some_and(|&(_, prev_last)| first <= prev_last)
            {
                return Err(window_error(format!(
                    "window `{start}`..`{end}` overlaps or precedes the previous one"
                )));
            }
            windows.push((first, last));
        }
        corpus.push(Series {
            name,
            timestamps,
            values,
            windows,
        });
    }
    Ok(corpus)
}

/// Number of leading rows of a `len`-row file that form NAB's probationary period:
/// `min(floor(0.15 * len), 750)` (`getProbationPeriod` in `nab/util.py`).
pub fn probation_rows(len: usize) -> usize {
    // Same floating-point expression as NAB, so the floor matches bit for bit.
    let rows = (PROBATION_PERCENT * len as f64)
        .floor()
        .min(PROBATION_PERCENT * 5000.0);
    rows as usize
}

/// NAB's score of one series for one set of detections.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SeriesScore {
    /// The raw (unnormalised) NAB score.
    pub raw: f64,
    /// Detected rows inside windows (NAB counts rows, not windows).
    pub tp: usize,
    /// Detected rows outside windows.
    pub fp: usize,
    /// Undetected rows inside windows.
    pub fn_: usize,
    /// Undetected rows outside windows.
    pub tn: usize,
    /// Scored windows with at least one detection.
    pub detected_windows: usize,
    /// Scored windows without a detection (each costs `fn_weight`).
    pub missed_windows: usize,
}

/// Scores one series: `detections[i]` tells whether row `i` is a detection. Rows in the
/// probationary period are ignored, and so is a window lying entirely in it; the row
/// counts exclude them.
///
/// # Panics
///
/// If `detections` and `series.timestamps` differ in length.
pub fn score_series(series: &Series, detections: &[bool], profile: &CostProfile) -> SeriesScore {
    assert_eq!(
        detections.len(),
        series.timestamps.len(),
        "one detection flag per row of {}",
        series.name
    );
    let rows = row_weights(series, profile);
    let mut score = SeriesScore::default();
    let mut fp_sum = 0.0;
    let mut window_parts = window_parts(series, profile);
    for (row, &detected) in rows.iter().zip(detections) {
        match (row.slot, detected) {
            (Slot::Probation, _) => {}
            (Slot::Outside, true) => {
                score.fp += 1;
                fp_sum += row.weight;
            }
            (Slot::Outside, false) => score.tn += 1,
            (Slot::Window(w), true) => {
                score.tp += 1;
                window_parts[w].detect(row.weight);
            }
            (Slot::Window(_), false) => score.fn_ += 1,
        }
    }
    score.raw = fp_sum;
    for part in window_parts.iter().filter(|p| p.scored) {
        score.raw += part.value;
        if part.detected {
            score.detected_windows += 1;
        } else {
            score.missed_windows += 1;
        }
    }
    score
}

/// The result of scoring a detector on a corpus for one profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorpusScore {
    /// The optimised threshold: rows with an anomaly score `>= threshold` are detections.
    /// [`f64::INFINITY`] when detecting nothing scores best (NAB writes `1.1`).
    pub threshold: f64,
    /// The NAB score: 0 for the null detector, 100 for the perfect detector.
    pub normalized: f64,
    /// Sum of the series' raw scores at `threshold`.
    pub raw: f64,
    /// Raw score of NAB's null detector (the baseline mapped to 0).
    pub null_raw: f64,
    /// Raw score of the perfect detector, `tp_weight` × number of windows (mapped to 100).
    pub perfect_raw: f64,
}

/// Scores a detector on a corpus for one profile, as NAB's optimise + score + normalise
/// steps do: chooses the threshold that maximises the corpus score, scores each series at
/// that threshold and normalises the total (see the module documentation).
///
/// `scores_per_series[k][i]` is the anomaly score of row `i` of `corpus[k]`; a NaN score
/// is never a detection. The normalised score is NaN if the corpus has no window
/// (NAB divides by zero there too).
///
/// # Panics
///
/// If `scores_per_series` does not have one score per row of every series.
pub fn normalized_scores(
    corpus: &[Series],
    scores_per_series: &[Vec<f64>],
    profile: &CostProfile,
) -> CorpusScore {
    assert_eq!(
        corpus.len(),
        scores_per_series.len(),
        "one score vector per series"
    );
    for (series, scores) in corpus.iter().zip(scores_per_series) {
        assert_eq!(
            scores.len(),
            series.timestamps.len(),
            "one score per row of {}",
            series.name
        );
    }
    let threshold = best_threshold(corpus, scores_per_series, profile);

    // Score each series at the threshold and add up (NAB's scorer, "Totals" row).
    let total = |detect: &dyn Fn(f64) -> bool| -> f64 {
        corpus
            .iter()
            .zip(scores_per_series)
            .map(|(series, scores)| {
                let detections: Vec<bool> = scores.iter().map(|&s| detect(s)).collect();
                score_series(series, &detections, profile).raw
            })
            .sum()
    };
    let raw = total(&|s| s >= threshold);
    // NAB's null detector outputs a constant: its optimised threshold detects either
    // nothing or every row, whichever scores higher (nothing on a tie).
    let null_raw = total(&|_| false).max(total(&|_| true));
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let perfect_raw = profile.tp_weight * windows as f64;
    CorpusScore {
        threshold,
        normalized: 100.0 * (raw - null_raw) / (perfect_raw - null_raw),
        raw,
        null_raw,
        perfect_raw,
    }
}

/// NAB's optimiser (`optimizeThreshold` + `Sweeper.calcScoreByThreshold`): sweeps every
/// distinct anomaly score of the scorable rows from the highest down and returns the
/// threshold with the highest corpus score, the highest such threshold on ties.
fn best_threshold(corpus: &[Series], scores_per_series: &[Vec<f64>], profile: &CostProfile) -> f64 {
    struct Point {
        score: f64,
        weight: f64,
        /// Index into `parts`, or `None` outside windows.
        window: Option<usize>,
    }
    let mut points = Vec::new();
    let mut parts = Vec::new();
    for (series, scores) in corpus.iter().zip(scores_per_series) {
        let offset = parts.len();
        parts.extend(window_parts(series, profile));
        for (row, &score) in row_weights(series, profile).iter().zip(scores) {
            let window = match row.slot {
                Slot::Probation => continue,
                Slot::Outside => None,
                Slot::Window(w) => Some(offset + w),
            };
            if !score.is_nan() {
                points.push(Point {
                    score,
                    weight: row.weight,
                    window,
                });
            }
        }
    }
    points.sort_by(|a, b| b.score.total_cmp(&a.score));

    let mut windows_sum: f64 = parts.iter().filter(|p| p.scored).map(|p| p.value).sum();
    let mut fp_sum = 0.0;
    let (mut best_threshold, mut best_score) = (f64::INFINITY, windows_sum);
    let mut i = 0;
    while i < points.len() {
        let threshold = points[i].score;
        while i < points.len() && points[i].score == threshold {
            let p = &points[i];
            match p.window {
                None => fp_sum += p.weight,
                Some(w) => {
                    let before = parts[w].value;
                    parts[w].detect(p.weight);
                    windows_sum += parts[w].value - before;
                }
            }
            i += 1;
        }
        let score = fp_sum + windows_sum;
        if score > best_score {
            (best_threshold, best_score) = (threshold, score);
        }
    }
    best_threshold
}

/// Where a row stands for scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    /// In the probationary period: never scored.
    Probation,
    /// Outside every window: a detection is a false positive.
    Outside,
    /// Inside the window with this index.
    Window(usize),
}

/// A row's slot and the score of a detection there (NAB's `sweepScore`).
#[derive(Debug, Clone, Copy)]
struct RowWeight {
    slot: Slot,
    weight: f64,
}

/// NAB's `Sweeper.calcSweepScore`: the weight a detection would have on each row.
fn row_weights(series: &Series, profile: &CostProfile) -> Vec<RowWeight> {
    let len = series.timestamps.len();
    let probation = probation_rows(len);
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(len);
    let mut windows = series.windows.iter().enumerate().peekable();
    let mut current: Option<(usize, usize, usize)> = None; // (index, first, last)
    let mut previous: Option<(usize, f64)> = None; // (last row, width)
    for i in 0..len {
        if current.is_none() {
            if let Some((w, &(first, last))) = windows.next_if(|(_, window)| window.0 == i) {
                current = Some((w, first, last));
            }
        }
        let (slot, weight) = match current {
            Some((w, first, last)) => {
                let width = (last - first + 1) as f64;
                let position = -((last - i + 1) as f64) / width;
                (
                    Slot::Window(w),
                    scaled_sigmoid(position) * profile.tp_weight / max_tp,
                )
            }
            None => {
                let unweighted = match previous {
                    None => -1.0,
                    // A one-row window divides by zero here (NAB would raise); the
                    // infinite position gives the far-away weight -1.
                    Some((last, width)) => scaled_sigmoid((i - last) as f64 / (width - 1.0)),
                };
                (Slot::Outside, unweighted * profile.fp_weight)
            }
        };
        let slot = if i < probation { Slot::Probation } else { slot };
        out.push(RowWeight { slot, weight });
        if let Some((_, first, last)) = current.filter(|&(_, _, last)| last == i) {
            previous = Some((last, (last - first + 1) as f64));
            current = None;
        }
    }
    out
}

/// One window's contribution to a score: `-fn_weight` until detected, then the best
/// detection weight. Only windows with a row after the probationary period are scored.
#[derive(Debug, Clone, Copy)]
struct WindowPart {
    scored: bool,
    detected: bool,
    value: f64,
}

impl WindowPart {
    fn detect(&mut self, weight: f64) {
        self.detected = true;
        self.value = self.value.max(weight);
    }
}

fn window_parts(series: &Series, profile: &CostProfile) -> Vec<WindowPart> {
    let probation = probation_rows(series.timestamps.len());
    series
        .windows
        .iter()
        .map(|&(_, last)| WindowPart {
            scored: last >= probation,
            detected: false,
            value: -profile.fn_weight,
        })
        .collect()
}

/// NAB's scaled sigmoid: `2 * sigmoid(-5x) - 1`, and exactly -1 beyond `x = 3`.
fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 * sigmoid(-5.0 * x) - 1.0
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn read(path: &Path) -> Result<String, NabError> {
    std::fs::read_to_string(path).map_err(|source| NabError::Read {
        path: path.to_owned(),
        source,
    })
}

fn json_error(path: &Path, e: &serde_json::Error) -> NabError {
    NabError::Json {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Reads a NAB data file: header `timestamp,value`, then one row per line.
fn read_csv(path: &Path) -> Result<(Vec<i64>, Vec<f64>), NabError> {
    let text = read(path)?;
    let error = |line: usize, reason: String| NabError::Csv {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim_end_matches('\r')));
    match lines.next() {
        Some((_, "timestamp,value")) => {}
        Some((n, other)) => {
            return Err(error(
                n,
                format!("expected header `timestamp,value`, found `{other}`"),
            ));
        }
        None => return Err(error(1, "empty file".to_owned())),
    }
    let (mut timestamps, mut values) = (Vec::new(), Vec::new());
    for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let (t, v) = line
            .split_once(',')
            .ok_or_else(|| error(n, format!("expected `timestamp,value`, found `{line}`")))?;
        let t = parse_timestamp(t).ok_or_else(|| error(n, format!("invalid timestamp `{t}`")))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| error(n, format!("invalid value `{v}`")))?;
        timestamps.push(t);
        values.push(v);
    }
    Ok((timestamps, values))
}

/// `2014-04-10 09:00:00` or `2014-04-10 09:00:00.000000`, UTC, to epoch milliseconds.
fn parse_timestamp(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// Where the NAB data is: `$WAFLOG_NAB_DIR`, else `shared/nab` beside the repository
/// (where the project keeps it), as seen from this crate's source directory.
pub fn default_root() -> std::path::PathBuf {
    match std::env::var_os("WAFLOG_NAB_DIR") {
        Some(d) => d.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/nab"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NAB data: tests on the real corpus need it, and say where it was looked for.
    fn nab_root() -> std::path::PathBuf {
        let root = default_root();
        assert!(
            root.join("labels/combined_windows.json").is_file(),
            "NAB data not found at {} (set WAFLOG_NAB_DIR to the folder holding data/, labels/ and config/)",
            root.display()
        );
        root
    }

    const STD: CostProfile = CostProfile::STANDARD;

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
    }

    /// `S(x) / S(-1)`: note `2 * sigmoid(y) - 1 = tanh(y / 2)`, so `S(x) = tanh(-2.5x)`.
    fn tp(x: f64) -> f64 {
        (-2.5 * x).tanh() / 2.5f64.tanh()
    }

    fn series(len: usize, windows: &[(usize, usize)]) -> Series {
        Series {
            name: format!("test/{len}.csv"),
            timestamps: (0..len as i64).map(|i| i * 60_000).collect(),
            values: vec![0.0; len],
            windows: windows.to_vec(),
        }
    }

    fn detections(len: usize, rows: &[usize]) -> Vec<bool> {
        let mut d = vec![false; len];
        for &r in rows {
            d[r] = true;
        }
        d
    }

    /// 40 rows: probation rows 0..=5 (floor(0.15 * 40) = 6), window A = rows 10..=19
    /// (width 10), window B = rows 30..=34 (width 5).
    fn two_windows() -> Series {
        series(40, &[(10, 19), (30, 34)])
    }

    fn raw(s: &Series, rows: &[usize], profile: &CostProfile) -> SeriesScore {
        score_series(s, &detections(s.timestamps.len(), rows), profile)
    }

    #[test]
    fn scaled_sigmoid_matches_nab_docstring() {
        assert_close(scaled_sigmoid(-1.0), 0.9866142981514303); // 2*sigmoid(5)-1
        assert_close(scaled_sigmoid(-0.5), 0.8482836399575129);
        assert_close(scaled_sigmoid(0.0), 0.0);
        assert_close(scaled_sigmoid(1.0), -0.9866142981514303);
        assert_eq!(scaled_sigmoid(3.0001), -1.0);
    }

    #[test]
    fn probation_rows_as_nab() {
        assert_eq!(probation_rows(4032), 604); // floor(604.8)
        assert_eq!(probation_rows(40), 6);
        assert_eq!(probation_rows(4730), 709); // floor(709.5)
        assert_eq!(probation_rows(5000), 750);
        assert_eq!(probation_rows(18050), 750); // capped at 0.15 * 5000
        assert_eq!(probation_rows(0), 0);
    }

    #[test]
    fn null_detector_pays_every_window() {
        let s = two_windows();
        let r = raw(&s, &[], &STD);
        // Two missed windows, fn_weight 1 each.
        assert_close(r.raw, -2.0);
        assert_eq!((r.detected_windows, r.missed_windows), (0, 2));
        // Rows counted after probation: 40 - 6 = 34; 15 in windows.
        assert_eq!((r.tp, r.fp, r.fn_, r.tn), (0, 0, 15, 19));
        // reward_low_FN_rate: fn_weight 2.
        assert_close(raw(&s, &[], &CostProfile::REWARD_LOW_FN_RATE).raw, -4.0);
    }

    #[test]
    fn detection_at_window_start_earns_tp_weight() {
        let s = two_windows();
        // Position -1 in both windows: S(-1) / S(-1) * tp_weight = 1 each.
        let r = raw(&s, &[10, 30], &STD);
        assert_close(r.raw, 2.0);
        assert_eq!(
            (r.tp, r.fp, r.detected_windows, r.missed_windows),
            (2, 0, 2, 0)
        );
    }

    #[test]
    fn late_detection_inside_window() {
        let s = two_windows();
        // Row 15 of A: x = -(19 - 15 + 1) / 10 = -0.5 -> tanh(1.25) / tanh(2.5) = 0.8598;
        // B missed: -1.
        let r = raw(&s, &[15], &STD);
        assert_close(r.raw, tp(-0.5) - 1.0);
        assert_close(tp(-0.5), 0.8597925669097837);
        // Last row of A: x = -1/10 -> tanh(0.25) / tanh(2.5).
        assert_close(raw(&s, &[19], &STD).raw, tp(-0.1) - 1.0);
    }

    #[test]
    fn detection_after_window_is_a_sigmoid_weighted_fp() {
        let s = two_windows();
        // Row 20, just after A (last row 19, width 10): x = (20 - 19) / (10 - 1) = 1/9,
        // weight 0.11 * S(1/9) = -0.11 * tanh(2.5 / 9) = -0.0298 (a mild penalty).
        let r = raw(&s, &[10, 30, 20], &STD);
        assert_close(r.raw, 2.0 - 0.11 * (2.5f64 / 9.0).tanh());
        assert_eq!((r.tp, r.fp), (2, 1));
        // Row 25: x = 6/9 -> -0.11 * tanh(5/3).
        assert_close(
            raw(&s, &[10, 30, 25], &STD).raw,
            2.0 - 0.11 * (5.0f64 / 3.0).tanh(),
        );
        // Row 39, after B (last row 34, width 5): x = 5/4 -> -0.11 * tanh(3.125).
        assert_close(
            raw(&s, &[10, 30, 39], &STD).raw,
            2.0 - 0.11 * 3.125f64.tanh(),
        );
    }

    #[test]
    fn false_positive_far_from_windows_costs_fp_weight() {
        let s = two_windows();
        // Row 8: after probation, before any window -> -fp_weight.
        assert_close(raw(&s, &[10, 30, 8], &STD).raw, 2.0 - 0.11);
        assert_close(
            raw(&s, &[10, 30, 8], &CostProfile::REWARD_LOW_FP_RATE).raw,
            2.0 - 0.22,
        );
        // 100 rows, window 20..=29: row 99 is at x = 70/9 > 3 -> exactly -1 * 0.11.
        let far = series(100, &[(20, 29)]);
        assert_close(raw(&far, &[20, 99], &STD).raw, 1.0 - 0.11);
    }

    #[test]
    fn missed_window_costs_fn_weight() {
        let s = two_windows();
        // A detected at its start (+1), B missed (-1).
        let r = raw(&s, &[10], &STD);
        assert_close(r.raw, 0.0);
        assert_eq!((r.detected_windows, r.missed_windows), (1, 1));
        assert_close(
            raw(&s, &[10], &CostProfile::REWARD_LOW_FN_RATE).raw,
            1.0 - 2.0,
        );
    }

    #[test]
    fn detections_in_probation_are_ignored() {
        let s = two_windows();
        // Rows 0..=5 are probationary: same score as no detection at all.
        let r = raw(&s, &[0, 1, 2, 3, 4, 5], &STD);
        assert_close(r.raw, -2.0);
        assert_eq!((r.tp, r.fp, r.fn_, r.tn), (0, 0, 15, 19));
        // Row 6 is the first scored row: a FP before any window.
        assert_close(raw(&s, &[6], &STD).raw, -2.11);
    }

    #[test]
    fn only_the_first_detection_in_a_window_counts() {
        let s = two_windows();
        // 10, 11 and 18 in A: the window scores max(S) = its first detection, 1.
        let r = raw(&s, &[10, 11, 18, 30], &STD);
        assert_close(r.raw, 2.0);
        assert_eq!((r.tp, r.detected_windows), (4, 2)); // tp counts rows, as NAB does
        // 15 and 18: 15 counts.
        assert_close(raw(&s, &[15, 18, 30], &STD).raw, tp(-0.5) + 1.0);
    }

    #[test]
    fn windows_overlapping_probation() {
        // 40 rows, probation 0..=5. Window 2..=4 lies in it: not scored, no FN.
        // Window 4..=9 (width 6) straddles it: scored, positions use the whole window,
        // so a detection at row 6 (its first scored row) gets x = -(9 - 6 + 1) / 6.
        let inside = series(40, &[(2, 4)]);
        let r = raw(&inside, &[], &STD);
        assert_close(r.raw, 0.0);
        assert_eq!(r.missed_windows, 0);
        // ...but it still is the "preceding window" of later FPs: row 6, x = 2 / 2 = 1.
        assert_close(raw(&inside, &[6], &STD).raw, -0.11 * 2.5f64.tanh());
        let straddling = series(40, &[(4, 9)]);
        assert_close(raw(&straddling, &[6], &STD).raw, tp(-4.0 / 6.0));
    }

    /// Two 1000-row series (probation 150), windows of 10 rows, so that detecting every
    /// row scores far below detecting nothing (as on the real corpus).
    fn synthetic_corpus() -> Vec<Series> {
        vec![
            series(1000, &[(200, 209), (600, 609)]),
            series(1000, &[(500, 509)]),
        ]
    }

    fn at_rows(corpus: &[Series], rows: &[&[usize]], value: f64) -> Vec<Vec<f64>> {
        corpus
            .iter()
            .zip(rows)
            .map(|(s, rows)| {
                let mut v = vec![0.0; s.timestamps.len()];
                for &r in *rows {
                    v[r] = value;
                }
                v
            })
            .collect()
    }

    #[test]
    fn normalisation_null_is_0_and_perfect_is_100() {
        let corpus = synthetic_corpus();
        for profile in [
            STD,
            CostProfile::REWARD_LOW_FP_RATE,
            CostProfile::REWARD_LOW_FN_RATE,
        ] {
            // Null: constant scores; detecting nothing (threshold +inf) beats everything.
            let null = normalized_scores(&corpus, &at_rows(&corpus, &[&[], &[]], 0.0), &profile);
            assert_eq!(null.threshold, f64::INFINITY);
            assert_close(null.null_raw, -3.0 * profile.fn_weight);
            assert_close(null.perfect_raw, 3.0);
            assert_close(null.normalized, 0.0);
            // Perfect: 1.0 at each window start, 0 elsewhere.
            let perfect = normalized_scores(
                &corpus,
                &at_rows(&corpus, &[&[200, 600], &[500]], 1.0),
                &profile,
            );
            assert_eq!(perfect.threshold, 1.0);
            assert_close(perfect.raw, 3.0);
            assert_close(perfect.normalized, 100.0);
        }
    }

    #[test]
    fn threshold_is_optimised_over_the_corpus() {
        let corpus = synthetic_corpus();
        let mut scores = at_rows(&corpus, &[&[], &[]], 0.0);
        scores[0][200] = 0.9; // start of a window: +1
        scores[0][205] = 0.8; // later in the same window: adds nothing
        scores[1][500] = 0.9; // start of a window: +1
        scores[1][900] = 0.95; // far FP: -0.11
        // Candidates (standard): none -3; 0.95 -> -3.11; 0.9 -> -1 + 2 - 0.11 = 0.89;
        // 0.8 -> 0.89 too (tie: the higher threshold is kept); 0.0 -> every row.
        let r = normalized_scores(&corpus, &scores, &STD);
        assert_eq!(r.threshold, 0.9);
        assert_close(r.raw, 0.89);
        // 100 * (0.89 + 3) / (3 + 3)
        assert_close(r.normalized, 100.0 * 3.89 / 6.0);
        // A NaN score is never a detection.
        scores[0][600] = f64::NAN;
        assert_eq!(normalized_scores(&corpus, &scores, &STD).threshold, 0.9);
    }

    #[test]
    fn null_baseline_is_nab_null_detector() {
        // One short series where flagging every row beats flagging none: NAB's
        // constant-output null detector then detects everything and sets the baseline.
        let corpus = vec![two_windows()];
        let all = normalized_scores(&corpus, &[vec![0.0; 40]], &STD);
        let every_row = score_series(&corpus[0], &[true; 40], &STD).raw;
        assert!(every_row > -2.0);
        assert_close(all.null_raw, every_row);
        assert_eq!(all.threshold, 0.0);
        assert_close(all.normalized, 0.0);
    }

    #[test]
    fn profiles_load() {
        let profiles = load_profiles(&nab_root().join("config/profiles.json")).unwrap();
        assert_eq!(profiles.len(), 3);
        assert_eq!(profiles["standard"], STD);
        assert_eq!(
            profiles["reward_low_FP_rate"],
            CostProfile::REWARD_LOW_FP_RATE
        );
        assert_eq!(
            profiles["reward_low_FN_rate"],
            CostProfile::REWARD_LOW_FN_RATE
        );
    }

    #[test]
    fn corpus_loads() {
        let root = nab_root();
        let root = root.as_path();
        let corpus = load_corpus(root).unwrap();
        assert_eq!(corpus.len(), 58);
        let labels: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(
            &std::fs::read_to_string(root.join("labels/combined_windows.json")).unwrap(),
        )
        .unwrap();
        let entries: usize = labels.values().map(Vec::len).sum();
        let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
        assert_eq!((windows, entries), (116, 116));
        let s = corpus
            .iter()
            .find(|s| s.name == "artificialWithAnomaly/art_daily_flatmiddle.csv")
            .unwrap();
        assert_eq!(s.timestamps.len(), 4032);
        assert_eq!(probation_rows(s.timestamps.len()), 604);
        // "2014-04-10 07:15:00.000000" .. "2014-04-11 16:45:00.000000"
        assert_eq!(s.windows, vec![(2679, 3081)]);
        assert_eq!(
            s.timestamps[2679],
            parse_timestamp("2014-04-10 07:15:00").unwrap()
        );
        // Every window starts after its file's probationary period (NAB's labeller drops
        // the others).
        for s in &corpus {
            assert_eq!(s.values.len(), s.timestamps.len());
            assert!(
                s.windows
                    .iter()
                    .all(|&(first, _)| first >= probation_rows(s.timestamps.len()))
            );
        }
    }

    #[test]
    fn trivial_detectors_on_the_real_corpus() {
        let root = nab_root();
        let root = root.as_path();
        let corpus = load_corpus(root).unwrap();
        let profiles = load_profiles(&root.join("config/profiles.json")).unwrap();
        let null: Vec<Vec<f64>> = corpus
            .iter()
            .map(|s| vec![0.0; s.timestamps.len()])
            .collect();
        let starts: Vec<Vec<f64>> = corpus
            .iter()
            .map(|s| {
                let mut v = vec![0.0; s.timestamps.len()];
                for &(first, _) in &s.windows {
                    v[first] = 1.0;
                }
                v
            })
            .collect();
        for (name, profile) in &profiles {
            let n = normalized_scores(&corpus, &null, profile);
            // NAB's config/thresholds.json: null scores -116 (standard, low FP) and -232.
            assert_close(n.null_raw, -116.0 * profile.fn_weight);
            assert_eq!(n.normalized, 0.0, "{name}");
            // Each of the 116 windows (all after probation) gets exactly tp_weight at its
            // first row and there is no FP: raw = perfect = 116, NAB gives 100.
            let p = normalized_scores(&corpus, &starts, profile);
            assert_eq!(p.threshold, 1.0);
            assert!(
                (p.normalized - 100.0).abs() < 1e-9,
                "{name}: {}",
                p.normalized
            );
        }
    }

    #[test]
    fn bad_csv_line_is_reported_with_file_and_line() {
        let dir = std::env::temp_dir().join(format!("waflog-nab-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("labels")).unwrap();
        std::fs::create_dir_all(dir.join("data/cat")).unwrap();
        std::fs::write(
            dir.join("labels/combined_windows.json"),
            r#"{"cat/a.csv": []}"#,
        )
        .unwrap();
        let csv = "timestamp,value\n2014-04-10 09:00:00,1\n2014-04-10 09:05:00,oops\n";
        std::fs::write(dir.join("data/cat/a.csv"), csv).unwrap();
        let err = load_corpus(&dir).unwrap_err();
        assert!(
            matches!(&err, NabError::Csv { line: 3, path, .. } if path.ends_with("cat/a.csv")),
            "{err}"
        );
        // A window limit that is not a row of the file.
        std::fs::write(
            dir.join("data/cat/a.csv"),
            "timestamp,value\n2014-04-10 09:00:00,1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("labels/combined_windows.json"),
            r#"{"cat/a.csv": [["2014-04-10 09:00:00.000000", "2014-04-10 10:00:00.000000"]]}"#,
        )
        .unwrap();
        let err = load_corpus(&dir).unwrap_err();
        assert!(
            matches!(&err, NabError::Window { series, .. } if series == "cat/a.csv"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
