//! Whole-file reads, each with a cap: a file the size of a disk (or `/dev/zero`)
//! is refused with an error naming it and the cap, never read until memory runs
//! out. Line-oriented inputs are not read whole: they go through the line reader
//! and its `max_line_bytes` limit.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// Configuration, traffic profile, ground truth, CA and password files: 16 MiB.
pub const TEXT_CAP: u64 = waflog_core::config::MAX_TOML_FILE_BYTES;
/// A `--state` file of `waflog detect` (models, alerts) or a checkpoint file: 1 GiB.
pub const STATE_CAP: u64 = 1 << 30;
/// A Firehose transformation event (`transform --firehose`): 64 MiB (AWS caps an
/// invocation at 6 MB).
pub const FIREHOSE_CAP: u64 = 64 << 20;

/// `cap` as text for messages (`16 MiB`, `1 GiB`).
pub fn human(cap: u64) -> String {
    if cap >= 1 << 30 && cap % (1 << 30) == 0 {
        format!("{} GiB", cap >> 30)
    } else if cap >= 1 << 20 && cap % (1 << 20) == 0 {
        format!("{} MiB", cap >> 20)
    } else {
        format!("{cap} bytes")
    }
}

/// Reads the file at `path` whole, refusing one larger than `cap` bytes. `what`
/// names the file's kind in messages ("state file", "truth file").
pub fn read_capped(path: &Path, cap: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let name = path.display().to_string();
    // A regular file announces its size: refuse it before reading anything.
    if file.metadata().is_ok_and(|m| m.is_file() && m.len() > cap) {
        anyhow::bail!(too_large(what, &name, cap));
    }
    read_reader_capped(file, cap, what, &name)
}

/// [`read_capped`], or `None` when the file does not exist.
pub fn read_capped_if_exists(path: &Path, cap: u64, what: &str) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_capped(path, cap, what).map(Some),
    }
}

/// Reads `reader` (named `name`) to its end, refusing more than `cap` bytes.
pub fn read_reader_capped(
    reader: impl Read,
    cap: u64,
    what: &str,
    name: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {name}"))?;
    if bytes.len() as u64 > cap {
        anyhow::bail!(too_large(what, name, cap));
    }
    Ok(bytes)
}

/// [`read_capped`] of a UTF-8 text file.
pub fn read_capped_string(path: &Path, cap: u64, what: &str) -> anyhow::Result<String> {
    String::from_utf8(read_capped(path, cap, what)?)
        .map_err(|_| anyhow::anyhow!("{what} {} is not UTF-8 text", path.display()))
}

fn too_large(what: &str, name: &str, cap: u64) -> String {
    format!(
        "cannot read {what} {name}: larger than the {} cap",
        human(cap)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        assert_eq!(human(16 << 20), "16 MiB");
        assert_eq!(human(1 << 30), "1 GiB");
        let e = read_reader_capped(std::io::repeat(0), 10, "state file", "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read state file x: larger than the 10 bytes cap"
        );
        assert_eq!(
            read_reader_capped(&b"0123456789"[..], 10, "f", "x").unwrap(),
            b"0123456789"
        );
    }
}
