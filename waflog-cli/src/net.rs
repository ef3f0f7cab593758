//! Helpers shared by the backends that talk over the network (the AWS plumbing
//! in `crate::aws`, the OpenSearch sink, the alert channels and the dashboard
//! server), none of them AWS-specific: a Tokio runtime for I/O
//! ([`io_runtime`]), exponential backoff with jitter ([`Backoff`]), the line
//! buffer that cuts a sink's blocks into records ([`LineBuffer`]) and the full
//! text of an error with its sources ([`error_text`]).

use std::time::Duration;

use anyhow::Context;

/// A two-thread Tokio runtime for network I/O (threads `waflog-<what>`).
pub fn io_runtime(what: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("waflog-{what}"))
        .enable_all()
        .build()
        .with_context(|| format!("cannot start the {what} I/O runtime"))
}

/// Exponential backoff with full jitter: a random delay in [0, min(cap, base *
/// 2^attempt)], from a small xorshift generator seeded per caller (no shared state).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// Starts at `base`, doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt += 1;
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let share = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(share.max(0.1))
    }

    /// Attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Cuts the blocks written to a sink into lines: a line split across two blocks
/// waits for the rest; blank lines are skipped.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Calls `f` on every complete line of what is buffered plus `block`; blank
    /// lines are skipped. Lines are found with `memchr` and handed on from `block`
    /// itself; only a line cut by the end of a block is copied (and kept for the
    /// next).
    pub fn feed(
        &mut self,
        block: &[u8],
        mut f: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut one = |line: &[u8]| {
            if line.trim_ascii().is_empty() {
                Ok(())
            } else {
                f(line)
            }
        };
        let mut rest = block;
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                return Ok(());
            };
            self.partial.extend_from_slice(&rest[..end]);
            let done = one(&self.partial);
            self.partial.clear();
            done?;
            rest = &rest[end + 1..];
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', rest) {
            one(&rest[start..end])?;
            start = end + 1;
        }
        self.partial.extend_from_slice(&rest[start..]);
        Ok(())
    }

    /// Calls `f` on the last line if it had no newline.
    pub fn finish(&mut self, f: impl FnOnce(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let line = std::mem::take(&mut self.partial);
        if line.trim_ascii().is_empty() {
            Ok(())
        } else {
            f(&line)
        }
    }
}

/// The full text of an error (its message and every source), as the AWS SDK's
/// own `Display` says only "service error".
pub fn error_text<E: std::error::Error>(e: &E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines a [`LineBuffer`] hands on for `blocks`, then at the end.
    fn lines_of<'a>(blocks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
        let mut b = LineBuffer::default();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for block in blocks {
            b.feed(block, |l| {
                seen.push(l.to_vec());
                Ok(())
            })
            .unwrap();
        }
        b.finish(|l| {
            seen.push(l.to_vec());
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn line_buffer_joins_lines_split_across_blocks() {
        let seen = lines_of([&b"a\nb"[..], b"c\n\n  \nd", b""]);
        assert_eq!(seen, [&b"a"[..], b"bc", b"d"]);
    }

    #[test]
    fn line_buffer_gives_the_same_lines_whatever_the_block_sizes() {
        let mut text = Vec::new();
        for i in 0..500 {
            let line = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 37));
            text.extend_from_slice(line.as_bytes());
            text.extend_from_slice(match i % 7 {
                0 => b"\r\n",
                1 => b"\n\n",
                2 => b"\n   \n",
                _ => b"\n",
            });
        }
        text.extend_from_slice(b"{\"last\":true}");
        let lines = |size: usize| lines_of(text.chunks(size));
        let whole = lines(text.len());
        assert_eq!(whole.len(), 501);
        assert_eq!(whole[0], b"{\"n\":0,\"pad\":\"\"}\r");
        assert_eq!(whole[500], b"{\"last\":true}");
        for size in [1, 2, 3, 7, 64, 1000, 4096] {
            assert_eq!(lines(size), whole, "blocks of {size}");
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2), 7);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[0] <= Duration::from_millis(50));
        assert!(delays[8..].iter().any(|d| *d > Duration::from_millis(400)));
        assert_eq!(b.attempts(), 12);
    }
}
