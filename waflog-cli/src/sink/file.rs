//! Files and stdout; a `.gz` path is written gzip-compressed.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;

/// An output stream with a name for messages.
pub struct Output {
    /// Path, or `-` for stdout.
    pub name: String,
    inner: Inner,
}

enum Inner {
    Plain(Box<dyn Write>),
    Gzip(Box<GzEncoder<io::BufWriter<File>>>),
}

impl Inner {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Inner::Plain(w) => w,
            Inner::Gzip(w) => w,
        }
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("name", &self.name).finish()
    }
}

/// Opens `path` for writing (stdout when `None` or `-`). Writes are expected in large
/// blocks: callers buffer records themselves.
pub fn create(path: Option<&Path>) -> anyhow::Result<Output> {
    match path {
        None => Ok(stdout()),
        Some(p) if p.as_os_str() == "-" => Ok(stdout()),
        Some(p) => {
            let file =
                File::create(p).with_context(|| format!("cannot create output {}", p.display()))?;
            let name = p.display().to_string();
            let inner = if p.extension().is_some_and(|e| e == "gz") {
                Inner::Gzip(Box::new(GzEncoder::new(
                    io::BufWriter::with_capacity(1 << 20, file),
                    Compression::fast(),
                )))
            } else {
                Inner::Plain(Box::new(file))
            };
            Ok(Output { name, inner })
        }
    }
}

/// The dead-letter output: a file, or stderr when `None`.
pub fn create_or_stderr(path: Option<&Path>) -> anyhow::Result<Output> {
    match path {
        Some(p) if p.as_os_str() != "-" => create(Some(p)),
        _ => Ok(Output {
            name: "stderr".into(),
            inner: Inner::Plain(Box::new(io::stderr())),
        }),
    }
}

fn stdout() -> Output {
    Output {
        name: "stdout".into(),
        inner: Inner::Plain(Box::new(io::stdout().lock())),
    }
}

impl Output {
    /// Writes a block; errors name the output.
    pub fn write_block(&mut self, block: &[u8]) -> anyhow::Result<()> {
        self.inner
            .writer()
            .write_all(block)
            .with_context(|| format!("cannot write to {}", self.name))
    }

    /// Flushes buffers.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.inner
            .writer()
            .flush()
            .with_context(|| format!("cannot write to {}", self.name))
    }

    /// Flushes and closes, finishing a gzip stream.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        if let Inner::Gzip(gz) = self.inner {
            let gz = *gz;
            let mut file = gz
                .finish()
                .with_context(|| format!("cannot finish {}", self.name))?;
            file.flush()
                .with_context(|| format!("cannot write to {}", self.name))?;
        }
        Ok(())
    }
}
