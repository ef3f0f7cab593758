//! The Numenta Anomaly Benchmark (NAB) scoring method.
//!
//! A re-implementation of the scoring in NAB's reference code (repository
//! `numenta/NAB`, commit ea702d7; the code is vendored in `fixtures/nab/scorer/nab/`):
//! `sweeper.py` (per-row weights, per-threshold scores), `optimizer.py` (threshold
//! choice), `scorer.py` (per-file scores at that threshold), `runner.py`
//! (normalisation), `util.py` (probationary period) and `labeler.py` (windows).
//!
//! This module takes data, not files: NAB's windows JSON and profiles JSON as text
//! ([`parse_windows`], [`parse_profiles`]), each series' `timestamp,value` CSV and a
//! detector's `timestamp,anomaly_score` result CSV from any [`Read`]
//! ([`Series::from_csv`], [`parse_scores`]), or a whole corpus from `(name, CSV)` pairs
//! ([`build_corpus`]). Walking NAB's folders is the caller's job (the examples crate's
//! `waflog_examples::nab` does it for `fixtures/nab`).
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
//!     preceding one, even one inside the probationary period), has
//!     `x = (i - e') / (w' - 1)` and weight `fp_weight * S(x)` (slightly negative just
//!     after the window, `-fp_weight` far from it);
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
//!   Each recorded score is NAB's `sum(scoreParts.values())`, added up in NAB's order
//!   (false positives first, then the windows in the order the sweep first meets them),
//!   so the chosen threshold is NAB's bit for bit, near-ties included.
//!   "Detect nothing" is NAB's starting threshold `1.1` (it assumes scores in `[0, 1]`);
//!   here it is [`f64::INFINITY`]. Every distinct score value is a candidate, so this is
//!   the exact optimum over all thresholds.
//! - **Normalisation** (`Runner.normalize`): `100 * (raw - null) / (perfect - null)`, where
//!   `raw` is the sum of the per-file scores at the chosen threshold, `perfect` is
//!   `tp_weight` times the number of windows, and `null` is the score of NAB's null
//!   detector. That detector outputs a constant, so after threshold optimisation it
//!   either detects nothing (`-fn_weight` per scorable window, the case on the real
//!   corpus: −116 for the standard profile) or every row, whichever scores higher; both
//!   are computed here. On a subset of the corpus, `perfect` and `null` are those of the
//!   subset (NAB itself only scores the whole corpus).
//!
//! # Agreement with NAB's own scorer
//!
//! On the same per-row scores this module and NAB's scorer (`run.py --optimize --score
//! --normalize`, through `fixtures/nab/scorer/score.sh`) give the same three figures:
//! the test `official_scorer_agreement` pins them on the per-row score sets of
//! `fixtures/nab/agreement/` (with the thresholds and raw totals of NAB's score tables),
//! and `bash benches/nab.sh` prints both scorers side by side on the CLI's output.
//!
//! The gap once reported (NAB 58.2 / 50.7 / 63.3 on the per-row scores of
//! `waflog detect --input-format csv`, this module 58.9 / 52.1 / 64.6 "for the same
//! thing") was not a scoring difference: the two figures came from *different per-row
//! scores*. The 58.9 was the `nab` example's, whose anomaly likelihood takes its
//! learning and estimation periods from each file's NAB probationary period `p`
//! (`floor(p / 2)` and `p - floor(p / 2)`, as NAB's HTM detector does), while the CLI
//! ran `ewma_likelihood` (then the metric default) with the likelihood's fixed defaults (288 and
//! 100 rows): 247,791 of the corpus' 365,558 rows score differently, in all 58 files.
//! The CLI's scores are bit for bit those of the example with `--lk-periods fixed`, and
//! both scorers give them 58.21 / 50.68 / 63.32 (same thresholds, raw totals equal to
//! 1e-13); both give the example's default scores 58.92 / 52.13 / 64.58.
//!
//! The only change the comparison called for here is the order of the sums in the
//! threshold sweep (NAB's dict order, above; this module used running totals), which
//! can only matter on an exact tie between two thresholds' corpus scores; no measured
//! result changed. The remaining differences between the two implementations lie
//! outside NAB's contract (scores in `[0, 1]`, windows of two rows or more):
//! - NAB's "detect nothing" candidate is the threshold 1.1; it is missing when the top
//!   score is exactly 1.1, and a chosen threshold above 1.1 makes NAB's scoring step
//!   fail (`scoreDataSet` finds no row of the file's sweep at or below the threshold and
//!   dereferences `None`): the example's `--method scaled` (scores up to 8e8) does
//!   that. So does a threshold below every scorable score of some file. Here any finite
//!   score works; a strictly increasing map into `[0, 1]` such as `s / (1 + s)` gives NAB
//!   the same ranking, so the same result.
//! - NAB fails on a one-row window (it divides by the width minus one); here the rows
//!   after it weigh `-fp_weight`.
//! - NAB's total is a sum over files in directory-walk order, so its last bits vary
//!   (about 1e-13); the threshold does not.
//! - A NaN score is never a detection here; NAB's `score.sh` rejects it.
//!
//! ```
//! use waflog_core::eval::nab;
//! let windows = nab::parse_windows(
//!     r#"{"demo/a.csv": [["2014-04-10 00:20:00.000000", "2014-04-10 00:29:00.000000"]]}"#,
//! )?;
//! let csv: String = std::iter::once("timestamp,value\n".to_string())
//!     .chain((0..40).map(|i| format!("2014-04-10 00:{i:02}:00,{}\n", i % 3)))
//!     .collect();
//! let corpus = nab::build_corpus(&windows, [("demo/a.csv", csv.as_bytes())])?;
//! let standard = nab::CostProfile::STANDARD;
//! // A detector that never fires scores 0, one that fires at the window start 100.
//! let null = nab::normalized_scores(&corpus, &[vec![0.0; 40]], &standard)?;
//! assert_eq!(null.normalized, 0.0);
//! let mut perfect = vec![0.0; 40];
//! perfect[20] = 1.0;
//! let perfect = nab::normalized_scores(&corpus, &[perfect], &standard)?;
//! assert_eq!((perfect.threshold, perfect.normalized), (1.0, 100.0));
//! # Ok::<(), nab::NabError>(())
//! ```

use std::collections::BTreeMap;
use std::io::Read;

/// Share of each file (from its start) that is a probationary period.
pub const PROBATION_PERCENT: f64 = 0.15;

/// Why NAB's windows, profiles, a data CSV or a result CSV cannot be used, or why
/// scores do not fit the corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NabError {
    /// A JSON text (windows or profiles) does not have the expected shape.
    #[error("{what}: {message}")]
    Json {
        /// Which text: `windows` or `profiles`.
        what: &'static str,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A CSV cannot be read (I/O error or invalid UTF-8).
    #[error("cannot read {series}")]
    Read {
        /// The series the CSV belongs to, e.g. `realKnownCause/nyc_taxi.csv`.
        series: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of a data or result CSV cannot be read.
    #[error("{series}:{line}: {reason}")]
    Csv {
        /// The series the CSV belongs to.
        series: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The windows of one series are unusable (unknown timestamp, out of order...).
    #[error("windows of `{series}`: {reason}")]
    Window {
        /// The series key, e.g. `realKnownCause/nyc_taxi.csv`.
        series: String,
        /// What is wrong.
        reason: String,
    },
    /// The data of a series named in the windows is missing, or given twice.
    #[error("`{series}`: {reason}")]
    Corpus {
        /// The series key.
        series: String,
        /// What is wrong.
        reason: String,
    },
    /// Scores or detections do not match the corpus (one value per row of each
    /// series, one vector per series).
    #[error("{series}: {found} values for {expected} rows")]
    Length {
        /// The series key, or `corpus` for the number of vectors.
        series: String,
        /// Rows (or series) expected.
        expected: usize,
        /// Values (or vectors) given.
        found: usize,
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

/// Parses NAB's `config/profiles.json`: profile name → its `CostMatrix`.
pub fn parse_profiles(json: &str) -> Result<BTreeMap<String, CostProfile>, NabError> {
    #[derive(serde::Deserialize)]
    struct Profile {
        #[serde(rename = "CostMatrix")]
        cost_matrix: CostProfile,
    }
    let profiles: BTreeMap<String, Profile> =
        serde_json::from_str(json).map_err(|e| json_error("profiles", &e))?;
    Ok(profiles
        .into_iter()
        .map(|(name, p)| (name, p.cost_matrix))
        .collect())
}

/// NAB's anomaly windows (`labels/combined_windows.json`): series name (its path
/// relative to `data/`, e.g. `realKnownCause/nyc_taxi.csv`) → its windows as
/// `(start, end)` timestamps in epoch milliseconds, in the file's order.
pub(crate) type Windows = BTreeMap<String, Vec<(i64, i64)>>;

/// Parses NAB's `labels/combined_windows.json` (timestamps `2014-04-10 07:15:00.000000`,
/// read as UTC).
pub fn parse_windows(json: &str) -> Result<Windows, NabError> {
    let labels: BTreeMap<String, Vec<[String; 2]>> =
        serde_json::from_str(json).map_err(|e| json_error("windows", &e))?;
    labels
        .into_iter()
        .map(|(series, limits)| {
            let windows = limits
                .iter()
                .map(|[start, end]| {
                    let parse = |t: &str| {
                        parse_timestamp(t).ok_or_else(|| NabError::Window {
                            series: series.clone(),
                            reason: format!("invalid timestamp `{t}`"),
                        })
                    };
                    Ok((parse(start)?, parse(end)?))
                })
                .collect::<Result<Vec<_>, NabError>>()?;
            Ok((series, windows))
        })
        .collect()
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

impl Series {
    /// Reads a NAB data file (header `timestamp,value`, then one row per line) and maps
    /// the series' `windows` (from [`parse_windows`]) to rows.
    ///
    /// As in NAB, each window limit must be the timestamp of a row of the file (the
    /// first such row is taken); windows must be in order and must not overlap.
    pub fn from_csv(
        name: &str,
        csv: impl Read,
        windows: &[(i64, i64)],
    ) -> Result<Series, NabError> {
        let text = read_text(name, csv)?;
        let mut lines = csv_lines(&text);
        let error = |line: usize, reason: String| NabError::Csv {
            series: name.to_owned(),
            line,
            reason,
        };
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
        for (n, line) in lines {
            let (t, v) = line
                .split_once(',')
                .ok_or_else(|| error(n, format!("expected `timestamp,value`, found `{line}`")))?;
            let t =
                parse_timestamp(t).ok_or_else(|| error(n, format!("invalid timestamp `{t}`")))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| error(n, format!("invalid value `{v}`")))?;
            timestamps.push(t);
            values.push(v);
        }
        let window_error = |reason: String| NabError::Window {
            series: name.to_owned(),
            reason,
        };
        let row_of = |t: i64| -> Result<usize, NabError> {
            timestamps.iter().position(|&x| x == t).ok_or_else(|| {
                window_error(format!("timestamp `{}` is not in the file", show_time(t)))
            })
        };
        let mut rows: Vec<(usize, usize)> = Vec::with_capacity(windows.len());
        for &(start, end) in windows {
            let (first, last) = (row_of(start)?, row_of(end)?);
            let limits = || format!("`{}`..`{}`", show_time(start), show_time(end));
            if first > last {
                return Err(window_error(format!(
                    "window {} ends before it starts",
                    limits()
                )));
            }
            if rows
                .last()
                .is_some_and(|&(_, prev_last)| first <= prev_last)
            {
                return Err(window_error(format!(
                    "window {} overlaps or precedes the previous one",
                    limits()
                )));
            }
            rows.push((first, last));
        }
        Ok(Series {
            name: name.to_owned(),
            timestamps,
            values,
            windows: rows,
        })
    }
}

/// Builds the corpus: every series named in `windows` (sorted by name), read with
/// [`Series::from_csv`] from the `(name, CSV)` pair of the same name in `files`.
///
/// Files without an entry in `windows` are not part of the corpus and are not read
/// (NAB skips them too); a series of `windows` without a file, or with two, is an
/// error.
pub fn build_corpus<S, R, I>(windows: &Windows, files: I) -> Result<Vec<Series>, NabError>
where
    S: AsRef<str>,
    R: Read,
    I: IntoIterator<Item = (S, R)>,
{
    let mut corpus: BTreeMap<&str, Series> = BTreeMap::new();
    for (name, csv) in files {
        let Some((key, limits)) = windows.get_key_value(name.as_ref()) else {
            continue;
        };
        if corpus.contains_key(key.as_str()) {
            return Err(NabError::Corpus {
                series: key.clone(),
                reason: "given twice".to_owned(),
            });
        }
        corpus.insert(key, Series::from_csv(key, csv, limits)?);
    }
    if let Some(missing) = windows.keys().find(|k| !corpus.contains_key(k.as_str())) {
        return Err(NabError::Corpus {
            series: missing.clone(),
            reason: "named in the windows but no data given".to_owned(),
        });
    }
    Ok(corpus.into_values().collect())
}

/// Reads a detector's NAB result CSV for `series`: a header naming an `anomaly_score`
/// column, then one row per data row whose first column is that row's timestamp (as in
/// the data file, or RFC 3339) and whose `anomaly_score` is a number (NaN is refused,
/// as NAB's `score.sh` does). Other columns are ignored. Returns the scores in row
/// order.
pub fn parse_scores(series: &Series, csv: impl Read) -> Result<Vec<f64>, NabError> {
    let text = read_text(&series.name, csv)?;
    let mut lines = csv_lines(&text);
    let error = |line: usize, reason: String| NabError::Csv {
        series: series.name.clone(),
        line,
        reason,
    };
    let column = match lines.next() {
        Some((n, header)) => header
            .split(',')
            .position(|c| c.trim().trim_matches('"') == "anomaly_score")
            .filter(|&c| c > 0)
            .ok_or_else(|| {
                error(
                    n,
                    format!("expected a header with an `anomaly_score` column after the timestamp, found `{header}`"),
                )
            })?,
        None => return Err(error(1, "empty file".to_owned())),
    };
    let rows = series.timestamps.len();
    let mut scores = Vec::with_capacity(rows);
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some(&expected) = series.timestamps.get(scores.len()) else {
            return Err(error(
                n,
                format!("more rows than the {rows} of the data file"),
            ));
        };
        let t = fields[0].trim_matches('"');
        let at = parse_timestamp(t).or_else(|| crate::timestamp::from_str_series(t).ok());
        if at != Some(expected) {
            return Err(error(
                n,
                format!(
                    "timestamp `{t}` is not the data file's `{}` (row {})",
                    show_time(expected),
                    scores.len() + 1
                ),
            ));
        }
        let raw = fields.get(column).copied().unwrap_or("");
        let score: f64 = raw
            .parse()
            .ok()
            .filter(|s: &f64| !s.is_nan())
            .ok_or_else(|| error(n, format!("anomaly_score `{raw}` is not a number")))?;
        scores.push(score);
    }
    if scores.len() != rows {
        return Err(NabError::Length {
            series: series.name.clone(),
            expected: rows,
            found: scores.len(),
        });
    }
    Ok(scores)
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
/// counts exclude them. An error if `detections` does not have one flag per row.
pub fn score_series(
    series: &Series,
    detections: &[bool],
    profile: &CostProfile,
) -> Result<SeriesScore, NabError> {
    check_len(series, detections.len())?;
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
    Ok(score)
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
/// is never a detection. An error unless there is one score per row of every series.
/// The normalised score is NaN if the corpus has no window (NAB divides by zero there
/// too).
pub fn normalized_scores(
    corpus: &[Series],
    scores_per_series: &[Vec<f64>],
    profile: &CostProfile,
) -> Result<CorpusScore, NabError> {
    if corpus.len() != scores_per_series.len() {
        return Err(NabError::Length {
            series: "corpus".to_owned(),
            expected: corpus.len(),
            found: scores_per_series.len(),
        });
    }
    for (series, scores) in corpus.iter().zip(scores_per_series) {
        check_len(series, scores.len())?;
    }
    let threshold = best_threshold(corpus, scores_per_series, profile);

    // Score each series at the threshold and add up (NAB's scorer, "Totals" row).
    let total = |detect: &dyn Fn(f64) -> bool| -> Result<f64, NabError> {
        let mut sum = 0.0;
        for (series, scores) in corpus.iter().zip(scores_per_series) {
            let detections: Vec<bool> = scores.iter().map(|&s| detect(s)).collect();
            sum += score_series(series, &detections, profile)?.raw;
        }
        Ok(sum)
    };
    let raw = total(&|s| s >= threshold)?;
    // NAB's null detector outputs a constant: its optimised threshold detects either
    // nothing or every row, whichever scores higher (nothing on a tie).
    let null_raw = total(&|_| false)?.max(total(&|_| true)?);
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let perfect_raw = profile.tp_weight * windows as f64;
    Ok(CorpusScore {
        threshold,
        normalized: 100.0 * (raw - null_raw) / (perfect_raw - null_raw),
        raw,
        null_raw,
        perfect_raw,
    })
}

fn check_len(series: &Series, found: usize) -> Result<(), NabError> {
    if found == series.timestamps.len() {
        Ok(())
    } else {
        Err(NabError::Length {
            series: series.name.clone(),
            expected: series.timestamps.len(),
            found,
        })
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
    // Stable, as Python's `sorted`: equal scores stay in corpus order.
    // (`partial_cmp`: no NaN here, and -0.0 ties with 0.0 as in Python.)
    points.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });

    // NAB's `scoreParts` dict: "fp" first, then each scored window in the order the
    // sorted sweep first meets one of its rows; every recorded score is the sum of its
    // values in that order (Python's `sum`, left to right), which fixes the last bits
    // and so the choice between near-equal thresholds.
    let mut order: Vec<usize> = Vec::new();
    let mut listed = vec![false; parts.len()];
    let windows_met = points.iter().filter_map(|p| p.window);
    // A scored window whose scores are all NaN is never met; it still counts, missed.
    let unmet = (0..parts.len()).filter(|&w| parts[w].scored);
    for w in windows_met.chain(unmet) {
        if !listed[w] {
            listed[w] = true;
            order.push(w);
        }
    }
    let mut fp_sum = 0.0;
    let total = |fp_sum: f64, parts: &[WindowPart]| -> f64 {
        order.iter().fold(fp_sum, |sum, &w| sum + parts[w].value)
    };
    let (mut best_threshold, mut best_score) = (f64::INFINITY, total(fp_sum, &parts));
    let mut i = 0;
    while i < points.len() {
        let threshold = points[i].score;
        while i < points.len() && points[i].score == threshold {
            let p = &points[i];
            match p.window {
                None => fp_sum += p.weight,
                Some(w) => parts[w].detect(p.weight),
            }
            i += 1;
        }
        let score = total(fp_sum, &parts);
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

fn json_error(what: &'static str, e: &serde_json::Error) -> NabError {
    NabError::Json {
        what,
        message: e.to_string(),
    }
}

fn read_text(series: &str, mut csv: impl Read) -> Result<String, NabError> {
    let mut text = String::new();
    csv.read_to_string(&mut text)
        .map_err(|source| NabError::Read {
            series: series.to_owned(),
            source,
        })?;
    Ok(text)
}

/// The non-blank lines of a CSV text with their 1-based numbers, without `\r`.
fn csv_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// `2014-04-10 09:00:00` or `2014-04-10 09:00:00.000000`, UTC, to epoch milliseconds.
fn parse_timestamp(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// Epoch milliseconds as NAB writes times (`2014-04-10 09:00:00`), for messages.
fn show_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored NAB corpus (`fixtures/nab`, see its README).
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/nab");

    fn fixture(path: &str) -> String {
        let path = format!("{FIXTURES}/{path}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The 58 labelled series of the vendored corpus.
    fn fixture_corpus() -> Vec<Series> {
        let windows = parse_windows(&fixture("labels/combined_windows.json")).unwrap();
        let files: Vec<(String, String)> = windows
            .keys()
            .map(|name| (name.clone(), fixture(&format!("data/{name}"))))
            .collect();
        build_corpus(
            &windows,
            files.iter().map(|(name, csv)| (name, csv.as_bytes())),
        )
        .unwrap()
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
        score_series(s, &detections(s.timestamps.len(), rows), profile).unwrap()
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
            let null =
                normalized_scores(&corpus, &at_rows(&corpus, &[&[], &[]], 0.0), &profile).unwrap();
            assert_eq!(null.threshold, f64::INFINITY);
            assert_close(null.null_raw, -3.0 * profile.fn_weight);
            assert_close(null.perfect_raw, 3.0);
            assert_close(null.normalized, 0.0);
            // Perfect: 1.0 at each window start, 0 elsewhere.
            let perfect = normalized_scores(
                &corpus,
                &at_rows(&corpus, &[&[200, 600], &[500]], 1.0),
                &profile,
            )
            .unwrap();
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
        let r = normalized_scores(&corpus, &scores, &STD).unwrap();
        assert_eq!(r.threshold, 0.9);
        assert_close(r.raw, 0.89);
        // 100 * (0.89 + 3) / (3 + 3)
        assert_close(r.normalized, 100.0 * 3.89 / 6.0);
        // A NaN score is never a detection.
        scores[0][600] = f64::NAN;
        assert_eq!(
            normalized_scores(&corpus, &scores, &STD).unwrap().threshold,
            0.9
        );
    }

    #[test]
    fn null_baseline_is_nab_null_detector() {
        // One short series where flagging every row beats flagging none: NAB's
        // constant-output null detector then detects everything and sets the baseline.
        let corpus = vec![two_windows()];
        let all = normalized_scores(&corpus, &[vec![0.0; 40]], &STD).unwrap();
        let every_row = score_series(&corpus[0], &[true; 40], &STD).unwrap().raw;
        assert!(every_row > -2.0);
        assert_close(all.null_raw, every_row);
        assert_eq!(all.threshold, 0.0);
        assert_close(all.normalized, 0.0);
    }

    #[test]
    fn profiles_load() {
        let profiles = parse_profiles(&fixture("config/profiles.json")).unwrap();
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
        let corpus = fixture_corpus();
        assert_eq!(corpus.len(), 58);
        let labels: BTreeMap<String, Vec<[String; 2]>> =
            serde_json::from_str(&fixture("labels/combined_windows.json")).unwrap();
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
        let corpus = fixture_corpus();
        let profiles = parse_profiles(&fixture("config/profiles.json")).unwrap();
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
            let n = normalized_scores(&corpus, &null, profile).unwrap();
            // NAB's config/thresholds.json: null scores -116 (standard, low FP) and -232.
            assert_close(n.null_raw, -116.0 * profile.fn_weight);
            assert_eq!(n.normalized, 0.0, "{name}");
            // Each of the 116 windows (all after probation) gets exactly tp_weight at its
            // first row and there is no FP: raw = perfect = 116, NAB gives 100.
            let p = normalized_scores(&corpus, &starts, profile).unwrap();
            assert_eq!(p.threshold, 1.0);
            assert!(
                (p.normalized - 100.0).abs() < 1e-9,
                "{name}: {}",
                p.normalized
            );
        }
    }

    /// A score set of `fixtures/nab/agreement/` (sparse `file,row,anomaly_score`,
    /// every other row 0) as one score vector per series of `corpus`.
    fn agreement_scores(corpus: &[Series], set: &str) -> Vec<Vec<f64>> {
        let mut scores: Vec<Vec<f64>> = corpus
            .iter()
            .map(|s| vec![0.0; s.timestamps.len()])
            .collect();
        for line in fixture(&format!("agreement/{set}.csv")).lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let k = corpus.iter().position(|s| s.name == f[0]).unwrap();
            scores[k][f[1].parse::<usize>().unwrap()] = f[2].parse().unwrap();
        }
        scores
    }

    #[test]
    fn official_scorer_agreement() {
        // NAB's own scorer (fixtures/nab/scorer, `bash benches/nab.sh --agreement`) on
        // the score sets of fixtures/nab/agreement: its threshold, raw total and
        // normalised score per profile.
        let corpus = fixture_corpus();
        let profiles = parse_profiles(&fixture("config/profiles.json")).unwrap();
        let official = fixture("agreement/official.csv");
        let mut sets: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
        let mut checked = 0;
        for line in official.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let (set, profile) = (f[0], f[1]);
            let [threshold, raw, normalized] =
                [f[2], f[3], f[4]].map(|x| x.parse::<f64>().unwrap());
            let scores = sets
                .entry(set.to_owned())
                .or_insert_with(|| agreement_scores(&corpus, set));
            let r = normalized_scores(&corpus, scores, &profiles[profile]).unwrap();
            // NAB's "detect nothing" threshold is 1.1.
            let ours = if r.threshold.is_infinite() {
                1.1
            } else {
                r.threshold
            };
            assert_eq!(ours, threshold, "{set} {profile}: threshold");
            assert!(
                (r.raw - raw).abs() < 1e-9,
                "{set} {profile}: raw {} != {raw}",
                r.raw
            );
            // NAB prints two decimals.
            assert!(
                (r.normalized - normalized).abs() <= 0.005 + 1e-9,
                "{set} {profile}: {} != {normalized}",
                r.normalized
            );
            checked += 1;
        }
        assert_eq!(checked, 12, "four sets, three profiles");
    }

    #[test]
    fn bad_csv_line_is_reported_with_series_and_line() {
        let windows = parse_windows(r#"{"cat/a.csv": []}"#).unwrap();
        let csv = "timestamp,value\n2014-04-10 09:00:00,1\n2014-04-10 09:05:00,oops\n";
        let err = build_corpus(&windows, [("cat/a.csv", csv.as_bytes())]).unwrap_err();
        assert!(
            matches!(&err, NabError::Csv { line: 3, series, .. } if series == "cat/a.csv"),
            "{err}"
        );
        assert_eq!(err.to_string(), "cat/a.csv:3: invalid value `oops`",);
        let err = Series::from_csv("x", "time,value\n".as_bytes(), &[]).unwrap_err();
        assert!(matches!(err, NabError::Csv { line: 1, .. }), "{err}");
        // A window limit that is not a row of the file.
        let windows = parse_windows(
            r#"{"cat/a.csv": [["2014-04-10 09:00:00.000000", "2014-04-10 10:00:00.000000"]]}"#,
        )
        .unwrap();
        let csv = "timestamp,value\n2014-04-10 09:00:00,1\n";
        let err = build_corpus(&windows, [("cat/a.csv", csv.as_bytes())]).unwrap_err();
        assert!(
            matches!(&err, NabError::Window { series, .. } if series == "cat/a.csv"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("`2014-04-10 10:00:00` is not in the file")
        );
        // Windows out of order, and an unparsable window limit.
        let csv = "timestamp,value\n2014-04-10 09:00:00,1\n2014-04-10 09:05:00,2\n";
        let reversed = [(1_397_120_700_000, 1_397_120_400_000)];
        assert!(matches!(
            Series::from_csv("a", csv.as_bytes(), &reversed),
            Err(NabError::Window { .. })
        ));
        assert!(matches!(
            parse_windows(r#"{"a": [["yesterday", "today"]]}"#),
            Err(NabError::Window { .. })
        ));
        assert!(matches!(
            parse_windows("[1, 2]"),
            Err(NabError::Json {
                what: "windows",
                ..
            })
        ));
        assert!(matches!(
            parse_profiles("{}}"),
            Err(NabError::Json {
                what: "profiles",
                ..
            })
        ));
    }

    #[test]
    fn corpus_needs_every_series_once() {
        let windows = parse_windows(r#"{"a.csv": [], "b.csv": []}"#).unwrap();
        let csv = "timestamp,value\n2014-04-10 09:00:00,1\n";
        // A file the windows do not name is skipped, unread (NAB skips it too).
        let corpus = build_corpus(
            &windows,
            [("b.csv", csv), ("a.csv", csv), ("other.csv", "not a csv")]
                .map(|(n, c)| (n, c.as_bytes())),
        )
        .unwrap();
        let names: Vec<&str> = corpus.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a.csv", "b.csv"]);
        let err = build_corpus(&windows, [("a.csv", csv.as_bytes())]).unwrap_err();
        assert!(matches!(&err, NabError::Corpus { series, .. } if series == "b.csv"));
        let twice =
            [("a.csv", csv), ("b.csv", csv), ("a.csv", csv)].map(|(n, c)| (n, c.as_bytes()));
        assert!(matches!(
            build_corpus(&windows, twice),
            Err(NabError::Corpus { .. })
        ));
        // An unreadable reader is an error, not a panic.
        let err = Series::from_csv("bin", &[0xff, 0xfe][..], &[]).unwrap_err();
        assert!(matches!(err, NabError::Read { .. }), "{err}");
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let s = two_windows();
        let err = score_series(&s, &[false; 39], &STD).unwrap_err();
        assert!(
            matches!(
                err,
                NabError::Length {
                    expected: 40,
                    found: 39,
                    ..
                }
            ),
            "{err}"
        );
        let corpus = [s];
        assert!(normalized_scores(&corpus, &[], &STD).is_err());
        assert!(normalized_scores(&corpus, &[vec![0.0; 41]], &STD).is_err());
    }

    #[test]
    fn result_csv_is_read_against_the_data_file() {
        // Rows from 2014-04-10 09:00:00 on, a minute apart.
        const BASE: i64 = 1_397_120_400_000;
        let mut s = series(3, &[]);
        for t in &mut s.timestamps {
            *t += BASE;
        }
        let t = |i: i64| show_time(BASE + i * 60_000);
        let good = format!(
            "timestamp,value,anomaly_score,label\n{},5,0.5,0\n{},6,1,0\r\n2014-04-10T09:02:00Z,7,0,0\n",
            t(0),
            t(1)
        );
        assert_eq!(parse_scores(&s, good.as_bytes()).unwrap(), [0.5, 1.0, 0.0]);
        let cases = [
            // no anomaly_score column
            (format!("timestamp,value\n{},1\n", t(0)), 1),
            // a wrong timestamp on line 3
            (
                format!("timestamp,anomaly_score\n{},0\n{},0\n", t(0), t(2)),
                3,
            ),
            // NaN and empty scores
            (format!("timestamp,anomaly_score\n{},NaN\n", t(0)), 2),
            (format!("timestamp,anomaly_score\n{},\n", t(0)), 2),
            // too many rows
            (
                format!(
                    "timestamp,anomaly_score\n{},0\n{},0\n{},0\n{},0\n",
                    t(0),
                    t(1),
                    t(2),
                    t(3)
                ),
                5,
            ),
        ];
        for (csv, line) in cases {
            let err = parse_scores(&s, csv.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, NabError::Csv { line: l, .. } if *l == line),
                "{csv}: {err}"
            );
        }
        // too few rows
        let short = format!("timestamp,anomaly_score\n{},0\n", t(0));
        assert!(matches!(
            parse_scores(&s, short.as_bytes()),
            Err(NabError::Length {
                expected: 3,
                found: 1,
                ..
            })
        ));
    }
}
