//! Files and stdin, gzip detected by its magic bytes (so `.gz` files, S3 downloads
//! without the extension and piped gzip all read transparently).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use flate2::read::MultiGzDecoder;

/// An opened input.
pub struct Input {
    /// How to name it in messages and dead letters (`-` for stdin).
    pub name: String,
    /// Decompressed bytes.
    pub reader: Box<dyn Read + Send>,
    /// Size when it is a plain (uncompressed) regular file, for progress.
    pub size: Option<u64>,
    /// For inputs that can fail part way and let the run go on (S3 objects): what
    /// stopped early and why, filled by the reader; the caller reports it.
    pub failure: Option<Failure>,
}

/// Where readers record the inputs that stopped early: (input name, reason).
pub type Failure = Arc<Mutex<Vec<(String, String)>>>;

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("name", &self.name).finish()
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 1 << 20;

/// Opens `name`: a path, or `-` for stdin.
pub fn open(name: &str) -> anyhow::Result<Input> {
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = if name == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let path = Path::new(name);
        let file = File::open(path).with_context(|| format!("cannot open input {name}"))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot stat input {name}"))?;
        if meta.is_dir() {
            anyhow::bail!("input {name} is a directory");
        }
        (Box::new(file), meta.is_file().then_some(meta.len()))
    };
    let mut buffered = BufReader::with_capacity(READ_BUFFER, raw);
    let head = buffered
        .fill_buf()
        .with_context(|| format!("cannot read input {name}"))?;
    let compressed = head.starts_with(&GZIP_MAGIC);
    let reader: Box<dyn Read + Send> = if compressed {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let size = size.filter(|_| !compressed);
    Ok(Input {
        name: name.to_string(),
        reader,
        size,
        failure: None,
    })
}
