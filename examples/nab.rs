//! Scores waflog's default time-series detector on the Numenta Anomaly Benchmark (NAB).
//!
//! Run with
//! `cargo run --release -p waflog-examples --example nab -- [--nab DIR] [--json] [--method M]`
//! (or `bash benches/nab.sh --example [ARGS]`; `--help` lists every option).
//!
//! For each of NAB's 58 labelled series, every row (one value) is fed, as it is and in
//! file order, to a fresh ewma detector with the parameters of
//! [`AlgorithmSpec::default()`] (or `--half-life`, `--threshold`, `--min-intervals`) as
//! a one-feature interval. Each row gets a NAB anomaly score derived from the
//! detector's output by a post-processing [`Method`] (`--method`, default
//! `likelihood`); NAB's scoring ([`nab::normalized_scores`]) then chooses the best
//! threshold per profile over the whole corpus and normalises the result (null
//! detector 0, perfect detector 100).
//!
//! Results (standard / reward-low-FP / reward-low-FN), default ewma parameters
//! (half-life 60, threshold 5, min_intervals 5):
//!
//! | `--method`                     | standard | low FP | low FN |
//! |--------------------------------|---------:|-------:|-------:|
//! | `ratio` (|z| alone)            |      5.6 |    0.0 |   17.4 |
//! | `scaled`                       |     21.3 |   12.3 |   33.0 |
//! | `rcf` (TRCF; official scorer)  |     52.3 |   41.1 |   58.7 |
//! | `likelihood`                   |     48.7 |   39.1 |   54.2 |
//! | `likelihood-spatial` (default) |     58.9 |   52.1 |   64.6 |
//!
//! The default, `likelihood-spatial`, is `ewma_likelihood` with the spatial rule
//! ([`AlgorithmSpec::likelihood_default`]), the core's default metric detector before
//! the `ensemble` of `artime` and it ([`AlgorithmSpec::artime_likelihood_ensemble`],
//! 67.29 / 59.44 / 73.02 through the CLI), which came before `cad`
//! ([`AlgorithmSpec::metric_default`], 71.88 / 63.97 / 76.66: `bash benches/nab.sh`;
//! its cross-validation: the `nab_cv` example); the
//! published Random Cut Forest line is 51.7 / 38.4 / 59.7.
//!
//! The likelihood's learning and estimation periods are not the detector's defaults
//! here: by default (`--lk-periods nab`) they come from each file's NAB probationary
//! period `p` (`floor(p / 2)` and the rest), as NAB's HTM detector sets them, which
//! `waflog detect` cannot know. `--lk-periods fixed` keeps the defaults (288 and 100
//! rows), the exact per-row scores of `waflog detect --input-format csv`: 58.2 / 50.7 /
//! 63.3, the figures NAB's own scorer gives on the CLI's output (`bash benches/nab.sh`).
//! Comparing those with this example's 58.9 / 52.1 / 64.6 once looked like a gap
//! between the two scorers; it was this difference of inputs.
//!
//! `--files odd|even` scores only every other file (in path order), for two-fold
//! cross-validation; `--write-scores DIR` writes the per-row scores as NAB result CSVs
//! (`DIR/<category>/<file>.csv`, `timestamp,anomaly_score`) for NAB's scorer
//! (`fixtures/nab/scorer/score.sh DIR NAME`); `--scores DIR` scores such a folder
//! instead of running a detector.
//!
//! With `likelihood`, a slower baseline scores higher on NAB: `--half-life 500` 51.5 /
//! 41.8 / 56.8, `--half-life 2000` 53.6 / 44.1 / 58.7, `--half-life 20000` (a running
//! mean over the whole file) 55.4 / 45.2 / 60.5. `--lk-avg 1` (no averaging) loses 7
//! points. (A one-sided tail and an uncapped log score were tried too and changed
//! nothing; they went when the likelihood moved into waflog-core.)
//!
//! The data is read from `--nab DIR`, by default the vendored copy `fixtures/nab`.
//! Standard output is deterministic (same bytes on every run); the wall times go to
//! standard error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use waflog_core::detect::ewma::Ewma;
use waflog_core::detect::likelihood::{EwmaLikelihood, Likelihood, LikelihoodParams};
use waflog_core::detect::rcf::{Rcf, RcfParams};
use waflog_core::detect::{AlgorithmSpec, Detector, IntervalFeatures};
use waflog_core::eval::nab::{self, CorpusScore, CostProfile};
use waflog_examples::nab::{self as files, FileSet};

/// NAB's three profiles, in the scoreboard's column order.
const PROFILES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

/// Published scoreboard lines (standard / reward-low-FP / reward-low-FN), from the NAB
/// README (`fixtures/nab/README.md` quotes them), for reference.
const PUBLISHED: [(&str, [f64; 3]); 4] = [
    ("Numenta HTM", [70.5, 62.6, 75.2]),
    ("Random Cut Forest", [51.7, 38.4, 59.7]),
    ("Windowed Gaussian", [39.6, 20.9, 47.4]),
    ("Null", [0.0, 0.0, 0.0]),
];

/// How a detector output becomes the NAB anomaly score of a row.
///
/// NAB sweeps the threshold over every distinct score, so what matters is the *order*
/// of the rows' scores (across all series: one threshold serves the whole corpus). Any
/// strictly increasing function of the raw score therefore gives exactly the same NAB
/// result; `ratio` and `raw` are two such functions and must agree.
///
/// Every mapping scores 0 while the detector is not yet grading (confidence 0, the
/// first `min_intervals` rows); these rows are in NAB's probationary period anyway.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mapping {
    /// `s / (s + threshold)`, with `s` the raw `anomaly_score` (|z|) and `threshold`
    /// the detector's own (5 by default): in [0, 1) as NAB expects, 0.5 exactly at the
    /// detector's threshold, and strictly increasing in `s`. The default.
    ///
    /// Not the `anomaly_grade`: the grade is 0 for every row below the detector's
    /// threshold, so all those rows would tie and NAB's sweep could not rank them; it
    /// could then only choose thresholds at or above the detector's own.
    Ratio,
    /// The raw `anomaly_score` itself (unbounded; NAB's "detect nothing" becomes an
    /// infinite threshold). Same ranking as `Ratio`, so the same NAB scores.
    Raw,
    /// The detector's `anomaly_grade` (`1 - threshold / s` above the threshold, 0
    /// below): monotone but not strictly, it collapses every row below the threshold to
    /// 0. For comparison only.
    Grade,
}

impl Mapping {
    fn parse(name: &str) -> Option<Mapping> {
        match name {
            "ratio" => Some(Mapping::Ratio),
            "raw" => Some(Mapping::Raw),
            "grade" => Some(Mapping::Grade),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mapping::Ratio => "ratio",
            Mapping::Raw => "raw",
            Mapping::Grade => "grade",
        }
    }

    fn formula(self) -> &'static str {
        match self {
            Mapping::Ratio => "s/(s+threshold), s = anomaly_score",
            Mapping::Raw => "s = anomaly_score",
            Mapping::Grade => "anomaly_grade",
        }
    }

    /// The NAB score of a row with raw score `s` and grade `grade`, for a detector
    /// threshold `t`.
    fn apply(self, s: f64, grade: f64, t: f64) -> f64 {
        match self {
            Mapping::Ratio => {
                if s + t > 0.0 {
                    s / (s + t)
                } else {
                    0.0
                }
            }
            Mapping::Raw => s,
            Mapping::Grade => grade,
        }
    }

    /// The raw score (|z|) a NAB threshold `m` in this mapping's units corresponds to.
    fn to_raw(self, m: f64, t: f64) -> f64 {
        match self {
            Mapping::Ratio if m < 1.0 => t * m / (1.0 - m),
            Mapping::Ratio => f64::INFINITY,
            Mapping::Raw => m,
            // A grade threshold of 0 admits every row (even the ungraded ones).
            Mapping::Grade if m <= 0.0 => 0.0,
            Mapping::Grade if m < 1.0 => t / (1.0 - m),
            Mapping::Grade => f64::INFINITY,
        }
    }
}

/// How the detector's per-row output becomes the row's NAB score (`--method`).
///
/// NAB chooses one threshold for the whole corpus, so a method is good when the first
/// rows of the real anomaly windows outrank every other row *of every series*: the
/// per-row post-processing decides how comparable the scores of different series are.
/// Every method scores 0 while the detector is not yet grading (the first
/// `min_intervals` rows, inside NAB's probationary period).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    /// A fixed function of the raw |z| ([`Mapping`], chosen with `--mapping`): the
    /// program's original scoring. Source: the detector itself
    /// (`waflog_core::detect::ewma`), no post-processing.
    Ratio,
    /// Numenta's anomaly likelihood on the raw |z|: the core detector
    /// [`EwmaLikelihood`] (`type = "ewma_likelihood"`), its `anomaly_score`. Source: Ahmad,
    /// Lavin, Purdy & Agha 2017, "Unsupervised real-time anomaly detection for
    /// streaming data", Neurocomputing 262, section 4.2 (anomaly likelihood), as
    /// implemented in `nupic/algorithms/anomaly_likelihood.py` (`AnomalyLikelihood`)
    /// and scored like NAB's HTM detector (`nab/detectors/numenta/numenta_detector.py`:
    /// learning period `floor(probation / 2)`, estimation samples the rest of the
    /// probationary period, re-estimation every 100 rows, log-likelihood output).
    /// Without the spatial rule: 48.7 / 39.1 / 54.2 against 5.6 / 0.0 / 17.4 for
    /// `ratio`.
    Likelihood,
    /// [`Method::Likelihood`] plus the "spatial anomaly" rule of NAB's HTM detector
    /// (`numenta_detector.py`, `SPATIAL_TOLERANCE = 0.05`): a value more than 5 % of
    /// the range seen so far outside that range scores the maximum (1). This is the
    /// core's `ewma_likelihood` with `spatial = true`
    /// ([`AlgorithmSpec::likelihood_default`]), a member of the default metric
    /// detector; the default method: 58.9 / 52.1 / 64.6.
    LikelihoodSpatial,
    /// The raw |z| divided by a decayed mean of the series' own past |z| ([`Scaled`]),
    /// so each series' scores are relative to its own typical level. Source: the
    /// task brief (a self-normalised score, as in Numenta's likelihood but with only a
    /// first moment and no averaging).
    Scaled,
    /// The `anomaly_score` of a fresh thresholded Random Cut Forest per series
    /// (`waflog_core::detect::rcf`, `type = "rcf"` with its defaults: 50 trees, 256
    /// samples, time decay 0.0001, shingle size 8, TRCF's thresholder and
    /// corrector), as the CLI's csv path writes it; no ewma.
    Rcf,
}

impl Method {
    const NAMES: &str = "ratio, likelihood, likelihood-spatial, scaled, rcf";

    fn parse(name: &str) -> Option<Method> {
        match name {
            "ratio" => Some(Method::Ratio),
            "likelihood" => Some(Method::Likelihood),
            "likelihood-spatial" => Some(Method::LikelihoodSpatial),
            "scaled" => Some(Method::Scaled),
            "rcf" => Some(Method::Rcf),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::Ratio => "ratio",
            Method::Likelihood => "likelihood",
            Method::LikelihoodSpatial => "likelihood-spatial",
            Method::Scaled => "scaled",
            Method::Rcf => "rcf",
        }
    }
}

/// The ewma detector's parameters (`Ewma::new(1, half_life, threshold, min_intervals)`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct EwmaParams {
    half_life: f64,
    threshold: f64,
    min_intervals: u32,
}

impl EwmaParams {
    /// Those of [`AlgorithmSpec::default()`].
    fn default_spec() -> EwmaParams {
        let (half_life, threshold, min_intervals) = AlgorithmSpec::default().common_params();
        EwmaParams {
            // The default algorithm is ewma, which has a half-life.
            half_life: half_life.unwrap_or(60.0),
            threshold,
            min_intervals,
        }
    }

    fn describe(&self) -> String {
        format!(
            "ewma (half_life {}, threshold {}, min_intervals {})",
            self.half_life, self.threshold, self.min_intervals
        )
    }
}

/// Parameters of the anomaly likelihood ([`Likelihood`]); defaults are nupic's. The
/// learning period and estimation samples come from NAB's probationary period.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LkParams {
    /// Rows of raw scores kept to estimate the distribution (`historicWindowSize`).
    window: usize,
    /// Rows in the short moving average of the raw score (`averagingWindow`).
    avg: usize,
    /// Rows between re-estimations of the distribution (`reestimationPeriod`).
    reestimate: usize,
    /// Learning and estimation periods from NAB's probationary period (`nab`), or the
    /// likelihood's defaults as `waflog detect` runs it (`fixed`).
    nab_periods: bool,
}

impl Default for LkParams {
    fn default() -> LkParams {
        let d = LikelihoodParams::default();
        LkParams {
            window: d.window,
            avg: d.average,
            reestimate: d.reestimate,
            nab_periods: true,
        }
    }
}

#[derive(Debug)]
struct Args {
    nab: PathBuf,
    json: bool,
    /// Which files are scored.
    files: FileSet,
    /// Read the per-row scores from this results folder instead of running a detector.
    scores: Option<PathBuf>,
    /// Write the per-row scores as NAB result CSVs under this folder.
    write_scores: Option<PathBuf>,
    mapping: Mapping,
    method: Method,
    ewma: EwmaParams,
    lk: LkParams,
    /// Half-life (rows) of the decayed mean of past |z| for `scaled`.
    scale_half_life: f64,
    /// Tolerance of the spatial rule for `likelihood-spatial`.
    spatial_tolerance: f64,
}

const USAGE: &str = "usage: nab [--nab DIR] [--json] [--method M] [--mapping M] [OPTIONS]

Scores waflog's default detector (ewma) on the Numenta Anomaly Benchmark.
  --nab DIR            NAB data directory (default: <workspace>/fixtures/nab)
  --json               print one JSON object instead of a table
  --files SET          all (default), odd or even: every other file in path order
                       (1st, 3rd, ... or 2nd, 4th, ...), for two-fold cross-validation
  --scores DIR         score the per-row result CSVs in DIR (DIR/<category>/<file>.csv
                       or DIR/<category>/<anything>_<file>.csv, columns timestamp and
                       anomaly_score) instead of running a detector
  --write-scores DIR   also write the per-row scores as DIR/<category>/<file>.csv
                       (timestamp,anomaly_score), for fixtures/nab/scorer/score.sh
  --method M           detector output -> NAB score:
                         likelihood-spatial (default): Numenta's anomaly likelihood
                           of |z| + HTM's spatial-anomaly rule (type = \"ewma_likelihood\",
                           a member of the `ensemble` that was the default of
                           `waflog detect --input-format csv` before `cad`)
                         likelihood: the same without the spatial rule
                         ratio: a fixed function of |z| (see --mapping; the first scoring)
                         scaled: |z| / decayed mean of the series' past |z|
                         rcf: anomaly_score of the thresholded Random Cut Forest
                           (type = \"rcf\": TRCF grade above 0.5, score/threshold below)
  --mapping M          for --method ratio: ratio (default, s/(s+threshold)),
                       raw (s itself; same ranking, same scores) or grade
ewma detector (default: those of AlgorithmSpec::default()):
  --half-life H        baseline half-life in rows (60)
  --threshold T        |z| threshold; also the clip of learnt outliers (5)
  --min-intervals N    rows learnt before grading (5)
likelihood (defaults: nupic's):
  --lk-window N        rows of raw scores for the distribution (8640)
  --lk-avg N           rows in the short moving average (10)
  --lk-reestimate N    rows between re-estimations (100)
  --lk-periods P       learning and estimation periods: nab (default; half of each
                       file's probationary period each, as NAB's HTM detector) or
                       fixed (the likelihood's 288 and 100, as `waflog detect` runs it)
  --spatial-tolerance X  share of the range the spatial rule allows outside it (0.05)
scaled:
  --scale-half-life H  half-life in rows of the mean of past |z| (1000)";

fn parse_args() -> Result<Option<Args>, String> {
    fn value<T: std::str::FromStr>(
        it: &mut impl Iterator<Item = String>,
        flag: &str,
    ) -> Result<T, String> {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: `{v}` is not a valid value"))
    }
    let mut args = Args {
        nab: PathBuf::from(files::DEFAULT_DIR),
        json: false,
        files: FileSet::All,
        scores: None,
        write_scores: None,
        mapping: Mapping::Ratio,
        method: Method::LikelihoodSpatial,
        ewma: EwmaParams::default_spec(),
        lk: LkParams::default(),
        scale_half_life: 1000.0,
        spatial_tolerance: 0.05,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => args.json = true,
            "--nab" => {
                args.nab = it.next().ok_or("--nab needs a directory")?.into();
            }
            "--files" => {
                let name = it.next().ok_or("--files needs a value")?;
                args.files = FileSet::parse(&name)
                    .ok_or_else(|| format!("unknown file set `{name}` (all, odd, even)"))?;
            }
            "--scores" => {
                args.scores = Some(it.next().ok_or("--scores needs a directory")?.into());
            }
            "--write-scores" => {
                let dir = it.next().ok_or("--write-scores needs a directory")?;
                args.write_scores = Some(dir.into());
            }
            "--lk-periods" => {
                args.lk.nab_periods = match it.next().as_deref() {
                    Some("nab") => true,
                    Some("fixed") => false,
                    _ => return Err("--lk-periods needs `nab` or `fixed`".into()),
                };
            }
            "--mapping" => {
                let name = it.next().ok_or("--mapping needs a value")?;
                args.mapping = Mapping::parse(&name)
                    .ok_or_else(|| format!("unknown mapping `{name}` (ratio, raw, grade)"))?;
            }
            "--method" => {
                let name = it.next().ok_or("--method needs a value")?;
                args.method = Method::parse(&name)
                    .ok_or_else(|| format!("unknown method `{name}` ({})", Method::NAMES))?;
            }
            "--half-life" => args.ewma.half_life = value(&mut it, &arg)?,
            "--threshold" => args.ewma.threshold = value(&mut it, &arg)?,
            "--min-intervals" => args.ewma.min_intervals = value(&mut it, &arg)?,
            "--lk-window" => args.lk.window = value(&mut it, &arg)?,
            "--lk-avg" => args.lk.avg = value(&mut it, &arg)?,
            "--lk-reestimate" => args.lk.reestimate = value(&mut it, &arg)?,
            "--spatial-tolerance" => args.spatial_tolerance = value(&mut it, &arg)?,
            "--scale-half-life" => args.scale_half_life = value(&mut it, &arg)?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let e = &args.ewma;
    if !(e.half_life >= 1.0 && e.half_life.is_finite()) {
        return Err("--half-life must be a finite number >= 1".into());
    }
    if !(e.threshold > 0.0 && e.threshold.is_finite()) {
        return Err("--threshold must be a finite number > 0".into());
    }
    if !(args.spatial_tolerance >= 0.0 && args.spatial_tolerance.is_finite()) {
        return Err("--spatial-tolerance must be a finite number >= 0".into());
    }
    if !(args.scale_half_life >= 1.0 && args.scale_half_life.is_finite()) {
        return Err("--scale-half-life must be a finite number >= 1".into());
    }
    let lk = &args.lk;
    if lk.avg == 0 || lk.reestimate == 0 || lk.window < lk.avg {
        return Err("--lk-avg and --lk-reestimate must be >= 1, --lk-window >= --lk-avg".into());
    }
    Ok(Some(args))
}

/// `scaled`: `|z| / (m + 0.05)`, `m` the decayed mean of the series' earlier graded
/// |z| (weight `1 - 2^(-1 / half_life)`, a plain running mean for the first
/// `1 / alpha` rows, as the detector's own baseline); 0.05 keeps a flat series
/// (all |z| 0) finite.
#[derive(Debug)]
struct Scaled {
    alpha: f64,
    mean: f64,
    seen: u64,
}

impl Scaled {
    fn new(half_life: f64) -> Scaled {
        Scaled {
            alpha: 1.0 - 0.5_f64.powf(1.0 / half_life),
            mean: 0.0,
            seen: 0,
        }
    }

    fn step(&mut self, s: f64) -> f64 {
        let out = if self.seen == 0 {
            0.0
        } else {
            s / (self.mean + 0.05)
        };
        let alpha = self.alpha.max(1.0 / (self.seen as f64 + 1.0));
        self.mean += alpha * (s - self.mean);
        self.seen += 1;
        out
    }
}

/// The NAB anomaly score of every row of `series`, from a fresh ewma detector.
fn score_series(series: &nab::Series, args: &Args) -> Vec<f64> {
    let e = args.ewma;
    let mut detector = Ewma::new(1, e.half_life, e.threshold, e.min_intervals);
    // NAB's HTM detector: learning period half the probationary period, estimation
    // samples the rest (`--lk-periods nab`); or the likelihood's defaults.
    let probation = nab::probation_rows(series.values.len());
    let defaults = LikelihoodParams::default();
    let (learning, estimation) = if args.lk.nab_periods {
        (probation / 2, probation - probation / 2)
    } else {
        (defaults.learning, defaults.estimation)
    };
    let mut likelihood = EwmaLikelihood::new(
        Ewma::new(1, e.half_life, e.threshold, e.min_intervals),
        Likelihood::new(LikelihoodParams {
            window: args.lk.window,
            average: args.lk.avg,
            reestimate: args.lk.reestimate,
            learning,
            estimation,
        }),
        0.5,
    );
    if args.method == Method::LikelihoodSpatial {
        likelihood = likelihood.with_spatial(args.spatial_tolerance);
    }
    let mut scaled = Scaled::new(args.scale_half_life);
    let mut forest = (args.method == Method::Rcf)
        .then(|| Rcf::new(1, 8, RcfParams::default()).unwrap_or_else(|e| panic!("rcf: {e}")));
    let ts = &series.timestamps;
    series
        .values
        .iter()
        .enumerate()
        .map(|(i, &value)| {
            // The interval ends at the next row (the detector does not use the times;
            // a few NAB files go back in time, hence the max).
            let start_ms = ts[i];
            let end_ms = ts.get(i + 1).map_or(start_ms, |&next| next.max(start_ms));
            let interval = IntervalFeatures {
                categories: &[],
                start_ms,
                end_ms,
                values: std::slice::from_ref(&value),
            };
            match args.method {
                Method::Rcf => forest
                    .as_mut()
                    .map_or(0.0, |f| f.process(&interval).anomaly_score),
                Method::Likelihood | Method::LikelihoodSpatial => {
                    likelihood.process(&interval).anomaly_score
                }
                Method::Ratio | Method::Scaled => {
                    let out = detector.process(&interval);
                    match (args.method, out.confidence > 0.0) {
                        (_, false) => 0.0,
                        (Method::Scaled, true) => scaled.step(out.anomaly_score),
                        _ => {
                            args.mapping
                                .apply(out.anomaly_score, out.anomaly_grade, out.threshold)
                        }
                    }
                }
            }
        })
        .collect()
}

/// A one-line description of how a row's NAB score is computed.
fn formula(args: &Args) -> String {
    let lk = &args.lk;
    let lk_text = || {
        format!(
            "anomaly likelihood of |z| (window {}, average {}, re-estimate {}, {}, two-sided, log(1-L)/log(1e-10))",
            lk.window,
            lk.avg,
            lk.reestimate,
            if lk.nab_periods {
                "learning + estimation = NAB probation"
            } else {
                "learning 288, estimation 100"
            },
        )
    };
    match args.method {
        Method::Ratio => args.mapping.formula().to_string(),
        Method::Likelihood => lk_text(),
        Method::LikelihoodSpatial => format!(
            "{} + spatial anomalies (tolerance {})",
            lk_text(),
            args.spatial_tolerance
        ),
        Method::Rcf => {
            "rcf anomaly_score: 0.5 + 0.45 grade + 0.05 excess if graded, else 0.5 score/threshold (TRCF; 50 trees, 256 samples, time decay 0.0001, shingle 8)".to_string()
        }
        Method::Scaled => format!(
            "|z| / (decayed mean of past |z| + 0.05), half-life {}",
            args.scale_half_life
        ),
    }
}

/// The detector that scores the rows.
fn detector(args: &Args) -> String {
    match args.method {
        Method::Rcf => "rcf (defaults of type = \"rcf\", shingle 8)".to_string(),
        _ => args.ewma.describe(),
    }
}

/// The raw score (|z|) a NAB threshold corresponds to, when the method has one.
fn threshold_as_z(args: &Args, m: f64) -> Option<f64> {
    (args.method == Method::Ratio).then(|| args.mapping.to_raw(m, args.ewma.threshold))
}

/// Detection counts over the corpus at a threshold (probationary rows excluded).
#[derive(Debug, Default)]
struct Counts {
    detected_windows: usize,
    scored_windows: usize,
    fp_rows: usize,
}

fn counts(
    corpus: &[nab::Series],
    scores: &[Vec<f64>],
    p: &CostProfile,
    threshold: f64,
) -> Result<Counts, nab::NabError> {
    let mut c = Counts::default();
    for (series, scores) in corpus.iter().zip(scores) {
        let detections: Vec<bool> = scores.iter().map(|&s| s >= threshold).collect();
        let r = nab::score_series(series, &detections, p)?;
        c.detected_windows += r.detected_windows;
        c.scored_windows += r.detected_windows + r.missed_windows;
        c.fp_rows += r.fp;
    }
    Ok(c)
}

fn fmt_threshold(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "none".to_string()
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let corpus = args.files.select(files::load_corpus(&args.nab)?);
    let profiles = files::load_profiles(&args.nab)?;
    let profiles: Vec<(&str, CostProfile)> = PROFILES
        .iter()
        .map(|&name| {
            profiles
                .get(name)
                .map(|p| (name, *p))
                .ok_or_else(|| format!("profile `{name}` missing from config/profiles.json"))
        })
        .collect::<Result<_, _>>()?;
    let t_load = t0.elapsed();

    let t1 = Instant::now();
    let scores: Vec<Vec<f64>> = match &args.scores {
        Some(dir) => files::load_scores(dir, &corpus)?,
        None => corpus.iter().map(|s| score_series(s, args)).collect(),
    };
    if let Some(dir) = &args.write_scores {
        files::write_scores(dir, &corpus, &scores)?;
        if scores.iter().flatten().any(|s| !(0.0..=1.0).contains(s)) {
            eprintln!(
                "nab: note: some scores lie outside [0, 1]; NAB's scorer assumes [0, 1] and fails \
                 when its best threshold is above 1.1: map them first (e.g. s / (1 + s) for \
                 s >= 0: same ranking, same NAB scores)"
            );
        }
    }
    let t_detect = t1.elapsed();

    let t2 = Instant::now();
    let results: Vec<(&str, CorpusScore, Counts)> = profiles
        .iter()
        .map(|(name, p)| {
            let r = nab::normalized_scores(&corpus, &scores, p)?;
            Ok((*name, r, counts(&corpus, &scores, p, r.threshold)?))
        })
        .collect::<Result<_, nab::NabError>>()?;
    let t_score = t2.elapsed();

    let rows: usize = corpus.iter().map(|s| s.values.len()).sum();
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();

    if args.json {
        let profiles_json: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(name, r, c)| {
                // An infinite threshold ("detect nothing") is written as null.
                let as_z = threshold_as_z(args, r.threshold).filter(|z| z.is_finite());
                let as_z = as_z.filter(|_| args.scores.is_none());
                let v = serde_json::json!({
                    "normalized": r.normalized,
                    "threshold": r.threshold.is_finite().then_some(r.threshold),
                    "threshold_anomaly_score": as_z,
                    "raw": r.raw,
                    "null_raw": r.null_raw,
                    "perfect_raw": r.perfect_raw,
                    "detected_windows": c.detected_windows,
                    "scored_windows": c.scored_windows,
                    "false_positive_rows": c.fp_rows,
                });
                (name.to_string(), v)
            })
            .collect();
        let published: serde_json::Map<String, serde_json::Value> = PUBLISHED
            .iter()
            .map(|(name, s)| (name.to_string(), serde_json::json!(s)))
            .collect();
        let mut out = serde_json::Map::new();
        match &args.scores {
            Some(dir) => {
                out.insert("scores".into(), dir.display().to_string().into());
            }
            None => {
                out.insert("detector".into(), detector(args).into());
                out.insert("method".into(), args.method.name().into());
                out.insert("mapping".into(), args.mapping.name().into());
                out.insert("score".into(), formula(args).into());
            }
        }
        out.insert("files".into(), args.files.name().into());
        out.insert("series".into(), corpus.len().into());
        out.insert("rows".into(), rows.into());
        out.insert("windows".into(), windows.into());
        out.insert("profiles".into(), profiles_json.into());
        out.insert("published".into(), published.into());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "NAB: {} series, {rows} rows, {windows} windows ({}{})",
            corpus.len(),
            args.nab.display(),
            match args.files {
                FileSet::All => String::new(),
                set => format!("; files: {}", set.name()),
            }
        );
        match &args.scores {
            Some(dir) => println!("per-row scores: {}", dir.display()),
            None => {
                println!("detector: {}", detector(args));
                println!(
                    "NAB score of a row: {} (method {})",
                    formula(args),
                    match args.method {
                        Method::Ratio => format!("ratio, mapping {}", args.mapping.name()),
                        m => m.name().to_string(),
                    }
                );
            }
        }
        println!();
        println!(
            "{:<20} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
            "profile",
            "NAB score",
            "threshold",
            "(as |z|)",
            "raw",
            "null",
            "perfect",
            "windows",
            "FP rows"
        );
        for (name, r, c) in &results {
            println!(
                "{:<20} {:>9.1} {:>10} {:>9} {:>9.2} {:>8.2} {:>8.2} {:>8} {:>7}",
                name,
                r.normalized,
                fmt_threshold(r.threshold),
                threshold_as_z(args, r.threshold)
                    .filter(|_| args.scores.is_none())
                    .map_or("-".to_string(), fmt_threshold),
                r.raw,
                r.null_raw,
                r.perfect_raw,
                format!("{}/{}", c.detected_windows, c.scored_windows),
                c.fp_rows
            );
        }
        println!();
        println!(
            "{:<20} {:>9} {:>9} {:>9}",
            "scoreboard", "standard", "low FP", "low FN"
        );
        let ours: Vec<f64> = results.iter().map(|(_, r, _)| r.normalized).collect();
        let mut lines: Vec<(String, Vec<f64>)> = PUBLISHED
            .iter()
            .map(|(name, s)| ((*name).to_string(), s.to_vec()))
            .collect();
        let label = match args.method {
            _ if args.scores.is_some() => "scores (this)",
            Method::Rcf => "waflog rcf (this)",
            Method::Likelihood | Method::LikelihoodSpatial => "waflog ewma_lk (this)",
            Method::Ratio | Method::Scaled => "waflog ewma (this)",
        };
        lines.push((label.to_string(), ours));
        lines.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]));
        for (name, s) in &lines {
            println!("{:<20} {:>9.1} {:>9.1} {:>9.1}", name, s[0], s[1], s[2]);
        }
    }
    eprintln!(
        "wall time: {:.3} s (load {:.3} s, detector {:.3} s, NAB scoring {:.3} s)",
        t0.elapsed().as_secs_f64(),
        t_load.as_secs_f64(),
        t_detect.as_secs_f64(),
        t_score.as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nab: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nab: {e}");
            ExitCode::FAILURE
        }
    }
}
