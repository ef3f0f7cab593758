//! The dashboard's connections: at most so many served at once (fewer when the
//! open-file limit is low), a deadline for each request head and for any
//! progress, more answered 503 and closed at once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;

/// Most connections served at once (a browser page holds up to 6; the event
/// stream holds one for as long as the page is open).
pub(super) const MAX_CONNECTIONS: usize = 128;
/// File descriptors never taken by dashboard connections: left to detection
/// (state file, outputs, inputs, AWS and OpenSearch clients).
pub(super) const FD_RESERVE: u64 = 64;
/// Time to receive a whole request head, counted from when the server waits for
/// one: a new connection, or the next request on a kept-alive one.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which no byte is read or written for this long (a client
/// that stops reading its answer or sending its request) is closed. Longer than
/// the event stream's keep-alive comments (15 s).
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head read.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The answer to a connection past the cap, written without waiting.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 35\r\nretry-after: 5\r\nconnection: close\r\n\r\n\
refused: too many open connections\n";

/// How many connections the dashboard serves at once: [`MAX_CONNECTIONS`], or
/// fewer so that [`FD_RESERVE`] descriptors stay free under the process's
/// open-file limit (read from `/proc/self/limits`; the full count elsewhere).
pub(super) fn connection_cap() -> usize {
    let Some(limit) = open_files_limit() else {
        return MAX_CONNECTIONS;
    };
    let open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count() as u64);
    let spare = limit.saturating_sub(open + FD_RESERVE);
    usize::try_from(spare)
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(1, MAX_CONNECTIONS)
}

/// The soft limit on open files, when known (`None`: unknown or unlimited).
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&text)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

/// An I/O stream that fails with `TimedOut` when neither a read nor a write has
/// moved a byte for `limit` while one is waiting.
struct Stalled<T> {
    io: T,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Stalled<T> {
    fn new(io: T, limit: Duration) -> Stalled<T> {
        Stalled {
            io,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn progress(&mut self) {
        let next = tokio::time::Instant::now() + self.limit;
        self.deadline.as_mut().reset(next);
    }

    /// Pending, unless the deadline has passed.
    fn waiting<R>(&mut self, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<R>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "dashboard connection stalled",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A write's outcome: progress when bytes moved, the deadline when pending.
    fn wrote(
        &mut self,
        cx: &mut TaskContext<'_>,
        r: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalled<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.waiting(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalled<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.waiting(cx),
            r => r,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Pending => this.waiting(cx),
            r => r,
        }
    }
}

/// Limits of the server's connections.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) connections: usize,
    pub(super) header: Duration,
    pub(super) stall: Duration,
}

/// Serves `app` on `listener` within `limits`, until the runtime stops.
pub(super) async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let mut refused = 0u64;
    let mut last_warning: Option<Instant> = None;
    let mut warn_due = move || {
        let due = last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            last_warning = Some(Instant::now());
        }
        due
    };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // A connection reset before it was taken: nothing to do. Out of
                // descriptors or buffers: wait a little rather than spin.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    if warn_due() {
                        tracing::warn!("dashboard: cannot accept a connection: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: a short answer if the socket takes it right away, then closed.
            let _ = stream.try_write(BUSY);
            drop(stream);
            refused += 1;
            if warn_due() {
                tracing::warn!(
                    "dashboard: {refused} connections refused so far: {} are open, the most served at once",
                    limits.connections
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(Stalled::new(stream, limits.stall));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header)
                .max_buf_size(MAX_HEAD_BYTES);
            if let Err(e) = builder.serve_connection(io, service).await {
                tracing::debug!("dashboard connection closed: {e}");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63432                63432                processes\n\
                      Max open files            256                  4096                 files\n";
        assert_eq!(parse_open_files_limit(limits), Some(256));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), None);
        let cap = connection_cap();
        assert!((1..=MAX_CONNECTIONS).contains(&cap));
    }

    #[tokio::test]
    async fn a_connection_that_stops_reading_or_writing_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A peer that never reads: the writer fails once the buffer is full.
        let (a, _peer) = tokio::io::duplex(64);
        let mut slow = Stalled::new(a, Duration::from_millis(200));
        let began = std::time::Instant::now();
        let e = slow.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(began.elapsed() < Duration::from_secs(5));
        // A peer that never writes: the reader fails too.
        let (b, _peer) = tokio::io::duplex(64);
        let mut silent = Stalled::new(b, Duration::from_millis(200));
        let mut buf = [0u8; 8];
        let e = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        // Progress keeps a connection open past the limit.
        let (c, mut peer) = tokio::io::duplex(64);
        let mut busy = Stalled::new(c, Duration::from_millis(300));
        tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = peer.write_all(b"x").await;
            }
        });
        let mut got = 0;
        while got < 6 {
            got += busy.read(&mut buf).await.unwrap();
        }
    }
}
