//! Reading and writing NAB's files for [`waflog_core::eval::nab`].
//!
//! A NAB folder holds `data/<category>/<file>.csv` (the series),
//! `labels/combined_windows.json` (the anomaly windows) and `config/profiles.json`
//! (the cost profiles), as NAB's repository and `fixtures/nab` (the vendored copy, see
//! its README) do. A results folder holds one CSV of per-row anomaly scores per data
//! file, `<category>/<file>.csv` or `<category>/<anything>_<file>.csv`, with columns
//! `timestamp,anomaly_score`: the contract of NAB's scorer wrapper
//! `fixtures/nab/scorer/score.sh`, so the same folder can be scored by both scorers.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use waflog_core::eval::nab::{self, CostProfile, NabError, Series};

/// The vendored NAB folder, `fixtures/nab` in the workspace.
pub const DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/nab");

/// Why a NAB file cannot be loaded or written.
#[derive(Debug)]
pub enum LoadError {
    /// A file or folder cannot be read or written.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file's content is unusable (the message names the series and line).
    Nab {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: NabError,
    },
    /// A results folder has no CSV, or several, for a data file.
    Results {
        /// The results folder.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            LoadError::Nab { path, source } => write!(f, "{}: {source}", path.display()),
            LoadError::Results { dir, reason } => write!(f, "{}: {reason}", dir.display()),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            LoadError::Nab { source, .. } => Some(source),
            LoadError::Results { .. } => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        path: path.to_owned(),
        source,
    }
}

fn nab_error(path: &Path) -> impl FnOnce(NabError) -> LoadError + '_ {
    move |source| LoadError::Nab {
        path: path.to_owned(),
        source,
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Loads the corpus under `root`: every series named in
/// `labels/combined_windows.json`, sorted by name, read from `data/<name>`.
pub fn load_corpus(root: &Path) -> Result<Vec<Series>, LoadError> {
    let labels = root.join("labels").join("combined_windows.json");
    let windows = nab::parse_windows(&read(&labels)?).map_err(nab_error(&labels))?;
    windows
        .iter()
        .map(|(name, limits)| {
            let path = root.join("data").join(name);
            let file = File::open(&path).map_err(io(&path))?;
            Series::from_csv(name, file, limits).map_err(|source| LoadError::Nab {
                // A window error is the label file's, anything else the data file's.
                path: if matches!(source, NabError::Window { .. }) {
                    labels.clone()
                } else {
                    path.clone()
                },
                source,
            })
        })
        .collect()
}

/// Loads `config/profiles.json` under `root`: profile name → cost matrix.
pub fn load_profiles(root: &Path) -> Result<BTreeMap<String, CostProfile>, LoadError> {
    let path = root.join("config").join("profiles.json");
    nab::parse_profiles(&read(&path)?).map_err(nab_error(&path))
}

/// The result CSV of `series` in the results folder `dir`: `<category>/<file>.csv`, or
/// else the one `<category>/<anything>_<file>.csv`.
fn result_path(dir: &Path, series: &Series) -> Result<PathBuf, LoadError> {
    let exact = dir.join(&series.name);
    if exact.is_file() {
        return Ok(exact);
    }
    let (category, file) = series.name.rsplit_once('/').unwrap_or(("", &series.name));
    let folder = dir.join(category);
    let suffix = format!("_{file}");
    let mut found = Vec::new();
    if folder.is_dir() {
        for entry in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let entry = entry.map_err(io(&folder))?;
            if entry.file_name().to_string_lossy().ends_with(&suffix) {
                found.push(entry.path());
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(LoadError::Results {
            dir: dir.to_owned(),
            reason: format!(
                "no result CSV for {} ({category}/{file} or {category}/<anything>_{file})",
                series.name
            ),
        }),
        _ => Err(LoadError::Results {
            dir: dir.to_owned(),
            reason: format!("several result CSVs for {}: {found:?}", series.name),
        }),
    }
}

/// Reads the per-row anomaly scores of every series of `corpus` from the results
/// folder `dir` (checked against the data: one row per data row, same timestamps).
pub fn load_scores(dir: &Path, corpus: &[Series]) -> Result<Vec<Vec<f64>>, LoadError> {
    corpus
        .iter()
        .map(|series| {
            let path = result_path(dir, series)?;
            let file = File::open(&path).map_err(io(&path))?;
            nab::parse_scores(series, file).map_err(nab_error(&path))
        })
        .collect()
}

/// Writes `scores` (one vector per series of `corpus`) as NAB result CSVs
/// `dir/<category>/<file>.csv` with the columns `timestamp,anomaly_score` (RFC 3339
/// UTC times, scores in Rust's shortest round-trip form), which NAB's scorer and
/// [`load_scores`] read.
pub fn write_scores(dir: &Path, corpus: &[Series], scores: &[Vec<f64>]) -> Result<(), LoadError> {
    for (series, scores) in corpus.iter().zip(scores) {
        let path = dir.join(&series.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let file = File::create(&path).map_err(io(&path))?;
        let mut out = BufWriter::new(file);
        let mut write = || -> std::io::Result<()> {
            writeln!(out, "timestamp,anomaly_score")?;
            for (&t, &s) in series.timestamps.iter().zip(scores) {
                writeln!(out, "{},{s}", waflog_core::timestamp::to_rfc3339(t))?;
            }
            out.flush()
        };
        write().map_err(io(&path))?;
    }
    Ok(())
}

/// Which files of the corpus to score (`--files`): all, or every other file in the
/// corpus order (sorted by path), for two-fold cross-validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSet {
    /// Every file.
    All,
    /// The 1st, 3rd, 5th... file.
    Odd,
    /// The 2nd, 4th, 6th... file.
    Even,
}

impl FileSet {
    /// `all`, `odd` or `even`.
    pub fn parse(name: &str) -> Option<FileSet> {
        match name {
            "all" => Some(FileSet::All),
            "odd" => Some(FileSet::Odd),
            "even" => Some(FileSet::Even),
            _ => None,
        }
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            FileSet::All => "all",
            FileSet::Odd => "odd",
            FileSet::Even => "even",
        }
    }

    /// Whether the file at 0-based position `index` (in path order) belongs to the set.
    pub fn contains(self, index: usize) -> bool {
        match self {
            FileSet::All => true,
            FileSet::Odd => index % 2 == 0,
            FileSet::Even => index % 2 == 1,
        }
    }

    /// The series of `corpus` in the set, in order (sorting by name first, so the sets
    /// do not depend on the caller's order).
    pub fn select(self, mut corpus: Vec<Series>) -> Vec<Series> {
        corpus.sort_by(|a, b| a.name.cmp(&b.name));
        corpus
            .into_iter()
            .enumerate()
            .filter(|&(i, _)| self.contains(i))
            .map(|(_, s)| s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_corpus_loads_and_splits() {
        let root = Path::new(DEFAULT_DIR);
        let corpus = load_corpus(root).unwrap();
        assert_eq!(corpus.len(), 58);
        assert_eq!(load_profiles(root).unwrap().len(), 3);
        let odd = FileSet::Odd.select(corpus.clone());
        let even = FileSet::Even.select(corpus.clone());
        assert_eq!((odd.len(), even.len()), (29, 29));
        assert_eq!(odd[0].name, corpus[0].name);
        assert_eq!(even[0].name, corpus[1].name);
        assert_eq!(FileSet::All.select(corpus.clone()), corpus);
    }

    #[test]
    fn scores_round_trip_through_result_csvs() {
        let root = Path::new(DEFAULT_DIR);
        let corpus: Vec<Series> = load_corpus(root).unwrap().into_iter().take(2).collect();
        let scores: Vec<Vec<f64>> = corpus
            .iter()
            .map(|s| {
                (0..s.values.len())
                    .map(|i| (i as f64).sqrt() / 97.0)
                    .collect()
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("waflog-nab-scores-{}", std::process::id()));
        write_scores(&dir, &corpus, &scores).unwrap();
        assert_eq!(load_scores(&dir, &corpus).unwrap(), scores);
        // NAB's own naming, `<detector>_<file>.csv`, is found too.
        let name = &corpus[0].name;
        let (category, file) = name.rsplit_once('/').unwrap();
        std::fs::rename(
            dir.join(name),
            dir.join(category).join(format!("numenta_{file}")),
        )
        .unwrap();
        assert_eq!(load_scores(&dir, &corpus).unwrap(), scores);
        std::fs::remove_dir_all(dir.join(category)).unwrap();
        let err = load_scores(&dir, &corpus).unwrap_err();
        assert!(matches!(err, LoadError::Results { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
