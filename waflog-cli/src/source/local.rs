//! Local inputs as the files to read: a file named as it is, a directory walked
//! recursively, a glob pattern (`logs/**/*.gz`, quoted so that waflog expands
//! it) matched against the files under its literal start.
//!
//! Order: by path, each directory's entries by name (so `2024/05/01/09/...`
//! comes before `2024/05/01/10/...`, as S3 lists keys). Hidden files and
//! folders (a name starting with `.`) are skipped in directories and glob
//! matches; a directory also skips files that are plainly not logs by their
//! name ([`not_a_log`]: documents, pictures, other archive formats, checksums,
//! partial downloads and editor leftovers, CloudWatch's `aws-logs-write-test`
//! object). Symbolic links below the directory or the glob's start are not
//! followed (a `current` link beside its file would read the file twice). A
//! file named on the command line is always read.
//!
//! `--since`/`--until` apply to files found in a directory or by a glob whose
//! path below it has a delivery date path (`YYYY/MM/dd/HH[/mm]/`, a local copy
//! of an S3 bucket), as to S3 objects ([`super::s3::delivered_in`]).

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use super::S3Range;
use super::s3;

/// A file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Its path as given or found (how it is named in messages and dead letters).
    pub name: String,
}

/// Extensions of files that are not logs: skipped when walking a directory.
const NOT_LOGS: &[&str] = &[
    "md",
    "markdown",
    "rst",
    "html",
    "htm",
    "pdf",
    "png",
    "jpg",
    "jpeg",
    "gif",
    "svg",
    "zip",
    "bz2",
    "xz",
    "zst",
    "7z",
    "tar",
    "rar",
    "sha256",
    "sha1",
    "md5",
    "sig",
    "asc",
    "swp",
    "tmp",
    "part",
    "crdownload",
];

/// File names that are not logs: CloudWatch Logs' export writes
/// `aws-logs-write-test` beside its objects; Hadoop-style jobs `_SUCCESS`.
const NOT_LOG_NAMES: &[&str] = &["aws-logs-write-test", "_SUCCESS", "Thumbs.db"];

/// Whether a file found in a directory is plainly not a log, by its name.
pub fn not_a_log(file_name: &str) -> bool {
    if NOT_LOG_NAMES.contains(&file_name) || file_name.ends_with('~') {
        return true;
    }
    Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| NOT_LOGS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Whether a path component is hidden (`.name`, not `.` or `..`).
fn hidden(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.') && n != "." && n != ".."
}

/// Whether `text` holds glob syntax (`*`, `?`, `[`, `{`).
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// How several local names are named as one input: the first, and how many more.
pub fn label(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
        [] => String::new(),
    }
}

/// The files an input name stands for (see the module docs), in order. A path
/// that exists is a file or a directory even when its name looks like a glob.
/// An error names the path: a glob that matches no file, a pattern that does
/// not parse, a directory that cannot be read.
pub fn expand(name: &str, range: &S3Range) -> anyhow::Result<Vec<LocalFile>> {
    let path = Path::new(name);
    if path.is_dir() {
        let files = walk(path, None, range)?;
        if files.is_empty() {
            tracing::warn!("{name}: no log file in this directory");
        }
        return Ok(files);
    }
    if path.exists() || !is_glob(name) {
        return Ok(vec![LocalFile {
            name: name.to_string(),
        }]);
    }
    let files = glob(name, range)?;
    if files.is_empty() {
        anyhow::bail!("{name}: no file matches this pattern");
    }
    Ok(files)
}

/// The files matching the glob `pattern`: the components before the first one
/// with glob syntax are walked, the rest matched (`*` within a folder, `**`
/// across folders).
fn glob(pattern: &str, range: &S3Range) -> anyhow::Result<Vec<LocalFile>> {
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(!cfg!(windows))
        .build()
        .with_context(|| format!("{pattern}: not a glob pattern"))?
        .compile_matcher();
    let mut base = PathBuf::new();
    let mut rest = 0usize;
    let mut in_rest = false;
    for c in Path::new(pattern).components() {
        let text = c.as_os_str().to_string_lossy();
        if in_rest || (matches!(c, Component::Normal(_)) && is_glob(&text)) {
            in_rest = true;
            rest += 1;
        } else {
            base.push(c);
        }
    }
    let depth = if pattern.contains("**") {
        None
    } else {
        Some(rest)
    };
    let start = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base.as_path()
    };
    let matches = |p: &Path| {
        // `*.gz` is matched against `a.gz`, not `./a.gz`.
        let p = if base.as_os_str().is_empty() {
            p.strip_prefix(".").unwrap_or(p)
        } else {
            p
        };
        matcher.is_match(p)
    };
    if !start.is_dir() {
        return Ok(Vec::new());
    }
    walk(start, Some((&matches, depth)), range)
}

/// A glob's test of a path, and how deep below the walk's start it can match
/// (`None`: any depth, for `**`).
type Filter<'a> = (&'a dyn Fn(&Path) -> bool, Option<usize>);

/// The files under `dir` in path order, hidden ones left out; with a glob's
/// filter those it matches, else those that are logs by name ([`not_a_log`]);
/// then those delivered in `range` when their path below `dir` has a date path.
fn walk(dir: &Path, filter: Option<Filter<'_>>, range: &S3Range) -> anyhow::Result<Vec<LocalFile>> {
    // Links below `dir` are not followed: a `current` link beside the file it
    // names would read that file twice.
    let mut walker = walkdir::WalkDir::new(dir).sort_by_file_name();
    if let Some((_, Some(depth))) = filter {
        walker = walker.max_depth(depth);
    }
    let mut files = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut links = 0usize;
    let entries = walker
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !hidden(e.file_name()));
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read directory {}", dir.display()))?;
        if entry.path_is_symlink() && entry.depth() > 0 {
            links += 1;
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let keep = match filter {
            Some((matches, _)) => matches(path),
            None => !not_a_log(&entry.file_name().to_string_lossy()),
        };
        if !keep {
            if filter.is_none() {
                skipped.push(path.display().to_string());
            }
            continue;
        }
        let below = path.strip_prefix(dir).unwrap_or(path).to_string_lossy();
        let below = below.replace('\\', "/");
        if !s3::delivered_in(&below, range.from.as_deref(), range.to.as_deref()) {
            continue;
        }
        files.push(LocalFile {
            name: path.display().to_string(),
        });
    }
    if !skipped.is_empty() {
        tracing::info!(
            "{}: {} files that are not logs skipped ({}{})",
            dir.display(),
            skipped.len(),
            skipped[..skipped.len().min(3)].join(", "),
            if skipped.len() > 3 { ", ..." } else { "" }
        );
    }
    if links > 0 {
        tracing::info!(
            "{}: {links} symbolic links not followed (name them to read them)",
            dir.display()
        );
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"{}\n").unwrap();
    }

    fn names(root: &Path, files: &[LocalFile]) -> Vec<String> {
        let prefix = format!("{}/", root.display());
        files
            .iter()
            .map(|f| f.name.strip_prefix(&prefix).unwrap_or(&f.name).to_string())
            .collect()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "b/2024/05/01/10/05/b2.log.gz",
            "b/2024/05/01/09/55/b1.log.gz",
            "a/2024/05/01/10/00/a1.log.gz",
            "a/notes.md",
            "a/.hidden.log",
            ".git/objects/x",
            "plain.ndjson",
            "aws-logs-write-test",
            "fh/2024/05/01/10/stream-1-2024-05-01-10-15-00-x",
        ] {
            touch(dir.path(), rel);
        }
        // Links are not followed: `current` would read plain.ndjson twice.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("plain.ndjson", dir.path().join("current")).unwrap();
            std::os::unix::fs::symlink("a", dir.path().join("a-link")).unwrap();
        }
        dir
    }

    #[test]
    fn a_directory_is_walked_in_path_order_without_hidden_or_non_log_files() {
        let dir = tree();
        let files = expand(&dir.path().display().to_string(), &S3Range::default()).unwrap();
        assert_eq!(
            names(dir.path(), &files),
            [
                "a/2024/05/01/10/00/a1.log.gz",
                "b/2024/05/01/09/55/b1.log.gz",
                "b/2024/05/01/10/05/b2.log.gz",
                "fh/2024/05/01/10/stream-1-2024-05-01-10-15-00-x",
                "plain.ndjson",
            ]
        );
    }

    #[test]
    fn since_and_until_filter_dated_paths_below_a_directory() {
        let dir = tree();
        let range =
            S3Range::parse(Some("2024-05-01T10:00:00Z"), Some("2024-05-01T10:05:00Z")).unwrap();
        let files = expand(&dir.path().display().to_string(), &range).unwrap();
        assert_eq!(
            names(dir.path(), &files),
            [
                "a/2024/05/01/10/00/a1.log.gz",
                "fh/2024/05/01/10/stream-1-2024-05-01-10-15-00-x",
                "plain.ndjson",
            ]
        );
    }

    #[test]
    fn globs_match_within_and_across_folders() {
        let dir = tree();
        let root = dir.path().display().to_string();
        let all = S3Range::default();
        let gz = expand(&format!("{root}/**/*.gz"), &all).unwrap();
        assert_eq!(
            names(dir.path(), &gz),
            [
                "a/2024/05/01/10/00/a1.log.gz",
                "b/2024/05/01/09/55/b1.log.gz",
                "b/2024/05/01/10/05/b2.log.gz",
            ]
        );
        let one_level = expand(&format!("{root}/*"), &all).unwrap();
        assert_eq!(
            names(dir.path(), &one_level),
            ["aws-logs-write-test", "plain.ndjson"]
        );
        let class = expand(&format!("{root}/[ab]/*/*/*/*/*/*1.log.gz"), &all).unwrap();
        assert_eq!(
            names(dir.path(), &class),
            [
                "a/2024/05/01/10/00/a1.log.gz",
                "b/2024/05/01/09/55/b1.log.gz"
            ]
        );
        let err = expand(&format!("{root}/nothing/*.gz"), &all).unwrap_err();
        assert!(err.to_string().contains("no file matches"), "{err}");
        let err = expand(&format!("{root}/a[.gz"), &all).unwrap_err();
        assert!(err.to_string().contains("not a glob pattern"), "{err}");
    }

    #[test]
    fn a_named_file_is_taken_as_it_is() {
        let dir = tree();
        let hidden = format!("{}/a/.hidden.log", dir.path().display());
        let files = expand(&hidden, &S3Range::default()).unwrap();
        assert_eq!(files, [LocalFile { name: hidden }]);
        let missing = expand("no/such/file.log", &S3Range::default()).unwrap();
        assert_eq!(missing.len(), 1);
    }

    #[test]
    fn non_log_names() {
        for n in [
            "README.md",
            "x.ZIP",
            "a.log~",
            "aws-logs-write-test",
            "f.sha256",
        ] {
            assert!(not_a_log(n), "{n}");
        }
        for n in [
            "a.log.gz",
            "a.ndjson",
            "x.json",
            "stream-1-2024-05-01-10-15-00-x",
            "a.txt",
        ] {
            assert!(!not_a_log(n), "{n}");
        }
    }
}
