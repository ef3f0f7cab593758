//! `waflog detect --dashboard`: a live web page of the detectors, anomalies and
//! alerts, pushed to browsers with server-sent events, and the offline report page.
//!
//! The page (HTML, JavaScript, CSS and the vendored Chart.js) is compiled into the
//! binary. The server is read-only but for one endpoint, acknowledging an alert,
//! which is handed to the detection loop (the owner of the alert state) and
//! answered when applied. Requests whose Host or Origin is not this server are
//! refused (DNS rebinding, cross-site requests).
//!
//! No client can starve detection: at most
//! [`MAX_CONNECTIONS`](conn::MAX_CONNECTIONS) connections are served at once
//! (fewer when the open-file limit is low: [`FD_RESERVE`](conn::FD_RESERVE)
//! descriptors are always left to detection, its state file and outputs), more
//! are answered 503 and closed at once; a connection is closed when its request
//! head is not complete within [`HEADER_TIMEOUT`] (also the idle time allowed
//! between keep-alive requests) and when neither side makes progress for
//! [`STALL_TIMEOUT`] (a client that stops reading or writing). A request needs
//! exactly one Host header and an origin-form target (`/path`): 400 otherwise.
//!
//! Endpoints: `GET /` (the page), `GET /assets/*`, `GET /api/snapshot` (JSON),
//! `GET /api/events` (SSE: a `snapshot` event, then `update` events; a reconnect
//! starts with a fresh snapshot, so no history is lost), `GET /api/alerts` and
//! `POST /api/alerts/{id}/ack`.
//!
//! The parts: this module runs the server and holds what the pages see; [`conn`]
//! limits connections, [`http`] answers requests (routes, Host and Origin
//! checks), [`report`] makes the offline page of `waflog report`.

mod conn;
mod http;
mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{broadcast, oneshot};
use waflog_core::dashboard::{AlertView, Board};

pub use report::report_html;

use conn::{HEADER_TIMEOUT, Limits, STALL_TIMEOUT, connection_cap, serve};
use http::{allowed_hosts, router};

use crate::alerts::AckRefusal;

/// The page template: three lines in it load the assets, which the report inlines.
pub const INDEX_HTML: &str = include_str!("../../../assets/dashboard/index.html");
/// The page's script.
pub const APP_JS: &str = include_str!("../../../assets/dashboard/app.js");
/// The page's styles.
pub const APP_CSS: &str = include_str!("../../../assets/dashboard/app.css");
/// Chart.js 4.6.1 (MIT), from the npm package's `dist/chart.umd.min.js`.
pub const CHART_JS: &str = include_str!("../../../assets/vendor/chart.umd.min.js");

/// The default address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Parses `--dashboard`: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT` or a port.
pub fn parse_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .with_context(|| format!("invalid port in --dashboard {s}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>().with_context(|| {
        format!(
            "invalid --dashboard address `{s}` (expected IP:PORT such as {DEFAULT_ADDR}, or a port)"
        )
    })
}

/// An acknowledgement from the page, waiting for the detection loop.
pub struct AckRequest {
    /// The alert ID (exact).
    pub id: String,
    /// The responder's verdict (the page's "Not an anomaly" button).
    pub label: Option<waflog_core::alert::Label>,
    reply: oneshot::Sender<Result<AlertView, AckRefusal>>,
}

impl AckRequest {
    /// Answers the page.
    pub fn answer(self, outcome: Result<AlertView, AckRefusal>) {
        let _ = self.reply.send(outcome);
    }
}

/// A pushed event: its name (`update` or `snapshot`) and JSON.
type Pushed = (&'static str, Arc<str>);

struct Shared {
    board: Mutex<Board>,
    updates: broadcast::Sender<Pushed>,
    acks: std_mpsc::Sender<AckRequest>,
    hosts: Vec<String>,
    acks_enabled: bool,
}

impl Shared {
    fn board(&self) -> MutexGuard<'_, Board> {
        // A panic while holding the lock leaves a board that is still consistent
        // enough to show.
        self.board
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A snapshot and a subscription to every update after it. The snapshot is
    /// copied under the lock and serialised after it, so detection waits for a
    /// copy at most.
    fn subscribe(&self) -> (String, broadcast::Receiver<Pushed>) {
        let (snapshot, rx) = {
            let board = self.board();
            (
                board.snapshot_at(crate::alerts::now_ms()),
                self.updates.subscribe(),
            )
        };
        (to_json(&snapshot), rx)
    }
}

/// JSON text of what the page reads (an error object in the unlikely case it
/// cannot be written).
fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
}

/// The running dashboard server.
pub struct Dashboard {
    shared: Arc<Shared>,
    acks: std_mpsc::Receiver<AckRequest>,
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
    rate: Rate,
    last_input: Instant,
}

impl Dashboard {
    /// Binds `addr` and serves `board` on a thread of its own. `acks_enabled` lets
    /// the page acknowledge alerts; `extra_hosts` are more Host names to accept.
    pub fn start(
        addr: SocketAddr,
        mut board: Board,
        acks_enabled: bool,
        extra_hosts: &[String],
    ) -> anyhow::Result<Dashboard> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for the dashboard"))?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        if acks_enabled {
            board.enable_acks();
        }
        let (tx, rx) = std_mpsc::channel();
        let shared = Arc::new(Shared {
            board: Mutex::new(board),
            updates: broadcast::channel(1024).0,
            acks: tx,
            hosts: allowed_hosts(bound, extra_hosts),
            acks_enabled,
        });
        let runtime = crate::net::io_runtime("dashboard")?;
        let app = router(Arc::clone(&shared));
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let limits = Limits {
            connections: connection_cap(),
            header: HEADER_TIMEOUT,
            stall: STALL_TIMEOUT,
        };
        tracing::debug!(
            "dashboard: at most {} connections at once, {:?} to send a request head, closed after {:?} without progress",
            limits.connections,
            limits.header,
            limits.stall
        );
        runtime.spawn(serve(listener, app, limits));
        let host = match bound.ip() {
            ip if ip.is_unspecified() => format!("127.0.0.1:{}", bound.port()),
            _ => bound.to_string(),
        };
        Ok(Dashboard {
            shared,
            acks: rx,
            url: format!("http://{host}/"),
            runtime: Some(runtime),
            rate: Rate::default(),
            last_input: Instant::now(),
        })
    }

    /// The page's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Changes the board and pushes what changed to every page.
    pub fn publish(&mut self, change: impl FnOnce(&mut Board)) {
        let mut board = self.shared.board();
        change(&mut board);
        // A new detector (one not configured): pages rebuild from a snapshot.
        let pushed = if board.take_layout_change() {
            let _ = board.take_update();
            let now = crate::alerts::now_ms();
            Some(("snapshot", to_json(&board.snapshot_at(now))))
        } else {
            board.take_update().map(|u| ("update", to_json(&u)))
        };
        if let Some((kind, json)) = pushed {
            // Sent under the lock, so a page that subscribes sees each change once;
            // no page listening is fine.
            let _ = self.shared.updates.send((kind, Arc::from(json)));
        }
    }

    /// Whether the input numbers are due for an update (4 times a second), so a
    /// caller gathers them only then.
    pub fn input_due(&self) -> bool {
        self.last_input.elapsed() >= Duration::from_millis(250)
    }

    /// Updates the input numbers; `dead_lettered` keeps its last value when `None`.
    pub fn input(&mut self, events: u64, dead_lettered: Option<u64>, late: u64) {
        self.last_input = Instant::now();
        let eps = self.rate.observe(events);
        self.publish(|b| {
            let dead = dead_lettered.unwrap_or(b.kpis().dead_lettered);
            b.set_input(events, dead, late, eps);
        });
    }

    /// Acknowledgements waiting to be applied.
    pub fn take_acks(&mut self) -> Vec<AckRequest> {
        self.acks.try_iter().collect()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Open event streams never end by themselves: do not wait for them.
            rt.shutdown_background();
        }
    }
}

/// Events per second over the last second or more of wall-clock time.
#[derive(Default)]
struct Rate {
    mark: Option<(Instant, u64)>,
    value: f64,
}

impl Rate {
    fn observe(&mut self, events: u64) -> f64 {
        let now = Instant::now();
        match self.mark {
            None => self.mark = Some((now, events)),
            Some((at, n)) => {
                let dt = now.duration_since(at).as_secs_f64();
                if dt >= 1.0 {
                    self.value = events.saturating_sub(n) as f64 / dt;
                    self.mark = Some((now, events));
                }
            }
        }
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(parse_addr("8080").unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(
            parse_addr("localhost:9000").unwrap().to_string(),
            "127.0.0.1:9000"
        );
        assert_eq!(parse_addr("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(parse_addr("[::1]:8080").unwrap().to_string(), "[::1]:8080");
        assert!(parse_addr("example.com:80").is_err());
        assert!(parse_addr("localhost:x").is_err());
    }
}
