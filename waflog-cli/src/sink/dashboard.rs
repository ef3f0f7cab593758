//! `waflog detect --dashboard`: a live web page of the detectors, anomalies and
//! alerts, pushed to browsers with server-sent events, and the offline report page.
//!
//! The page (HTML, JavaScript, CSS and the vendored Chart.js) is compiled into the
//! binary. The server is read-only but for one endpoint, acknowledging an alert,
//! which is handed to the detection loop (the owner of the alert state) and
//! answered when applied. Requests whose Host or Origin is not this server are
//! refused (DNS rebinding, cross-site requests).
//!
//! No client can starve detection: at most [`MAX_CONNECTIONS`] connections are
//! served at once (fewer when the open-file limit is low: [`FD_RESERVE`]
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

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, broadcast, oneshot};
use waflog_core::dashboard::{AlertView, Board, Snapshot};

use crate::alerts::AckRefusal;

/// The page template: three lines in it load the assets, which the report inlines.
pub const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
/// The page's script.
pub const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
/// The page's styles.
pub const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");
/// Chart.js 4.6.1 (MIT), from the npm package's `dist/chart.umd.min.js`.
pub const CHART_JS: &str = include_str!("../../assets/vendor/chart.umd.min.js");

const CSS_LINK: &str = r#"<link rel="stylesheet" href="assets/app.css">"#;
const CHART_TAG: &str = r#"<script src="assets/chart.umd.min.js"></script>"#;
const APP_TAG: &str = r#"<script src="assets/app.js"></script>"#;

const LIVE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";
/// The report may run its two inline scripts (pinned by hash, see
/// [`report_csp`]) and styles, and load nothing at all.
fn report_csp(scripts: &[&str]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hashes: Vec<String> = scripts
        .iter()
        .map(|js| {
            let digest = sha2::Sha256::digest(js.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src data:; \
         base-uri 'none'; form-action 'none'",
        hashes.join(" ")
    )
}

/// Most connections served at once (a browser page holds up to 6; the event
/// stream holds one for as long as the page is open).
pub const MAX_CONNECTIONS: usize = 128;
/// File descriptors never taken by dashboard connections: left to detection
/// (state file, outputs, inputs, AWS and OpenSearch clients).
pub const FD_RESERVE: u64 = 64;
/// Time to receive a whole request head, counted from when the server waits for
/// one: a new connection, or the next request on a kept-alive one.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which no byte is read or written for this long (a client
/// that stops reading its answer or sending its request) is closed. Longer than
/// the event stream's keep-alive comments (15 s).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head read.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The answer to a connection past the cap, written without waiting.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 35\r\nretry-after: 5\r\nconnection: close\r\n\r\n\
refused: too many open connections\n";

/// How many connections the dashboard serves at once: [`MAX_CONNECTIONS`], or
/// fewer so that [`FD_RESERVE`] descriptors stay free under the process's
/// open-file limit (read from `/proc/self/limits`; the full count elsewhere).
fn connection_cap() -> usize {
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
struct Limits {
    connections: usize,
    header: Duration,
    stall: Duration,
}

/// Serves `app` on `listener` within `limits`, until the runtime stops.
async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits) {
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

/// The Host header values this server answers to.
fn allowed_hosts(bound: SocketAddr, extra: &[String]) -> Vec<String> {
    let port = bound.port();
    let mut hosts = vec![
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    if !bound.ip().is_unspecified() {
        hosts.push(bound.to_string());
    }
    for h in extra {
        hosts.push(if h.contains(':') && !h.ends_with(']') {
            h.clone()
        } else {
            format!("{h}:{port}")
        });
    }
    if port == 80 {
        let bare: Vec<String> = hosts
            .iter()
            .filter_map(|h| h.strip_suffix(":80").map(str::to_string))
            .collect();
        hosts.extend(bare);
    }
    // Bound to every address: any IP literal with this port (never a DNS name,
    // which is what a rebinding attack would send).
    if bound.ip().is_unspecified() {
        hosts.push(format!("*:{port}"));
        if port == 80 {
            hosts.push("*".into());
        }
    }
    hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
}

fn host_allowed(hosts: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let is_ip = |ip: &str| {
        ip.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
    };
    hosts.iter().any(|h| {
        if h == "*" {
            is_ip(&host)
        } else if let Some(port) = h.strip_prefix("*:") {
            host.strip_suffix(&format!(":{port}")).is_some_and(is_ip)
        } else {
            *h == host
        }
    })
}

/// The page's own origin only: `http://` and exactly the (allowed) Host the
/// request was sent to. Never matched against the IP wildcard, which would let a
/// page served from any IP with the same port post here.
fn origin_allowed(hosts: &[String], host: &str, origin: &str) -> bool {
    host_allowed(hosts, host)
        && origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Whether a request target is in origin form (`/path?query`): not absolute
/// (`http://host/path`), authority (`host:port`) nor asterisk (`*`) form.
fn origin_form(uri: &axum::http::Uri) -> bool {
    uri.scheme().is_none() && uri.authority().is_none() && uri.path().starts_with('/')
}

/// Refuses requests without exactly one Host header or with a target not in
/// origin form (400), foreign Host and Origin headers, and writes without an
/// Origin (403).
async fn guard(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().unwrap_or_default(),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "refused: a request needs exactly one Host header",
            );
        }
    };
    if !origin_form(req.uri()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "refused: the request target must be a path (origin form)",
        );
    }
    if !host_allowed(&s.hosts, host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "refused: the Host header is not this dashboard",
        );
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match origin {
        Some(o) if !origin_allowed(&s.hosts, host, o) => {
            return refuse(StatusCode::FORBIDDEN, "refused: cross-origin request");
        }
        None if req.method() != Method::GET && req.method() != Method::HEAD => {
            return refuse(
                StatusCode::FORBIDDEN,
                "refused: a write needs an Origin header",
            );
        }
        _ => {}
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(LIVE_CSP),
    );
    resp
}

fn refuse(code: StatusCode, why: &'static str) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        why,
    )
        .into_response()
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(
            "/assets/chart.umd.min.js",
            get(|| asset("text/javascript; charset=utf-8", CHART_JS)),
        )
        .route("/api/snapshot", get(snapshot))
        .route("/api/alerts", get(alerts))
        .route("/api/events", get(events))
        .route("/api/alerts/{id}/ack", post(ack))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), guard))
        .with_state(shared)
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML).await
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn snapshot(State(s): State<Arc<Shared>>) -> Response {
    let snapshot = s.board().snapshot_at(crate::alerts::now_ms());
    json(to_json(&snapshot))
}

async fn alerts(State(s): State<Arc<Shared>>) -> Response {
    let list = s.board().alerts().to_vec();
    json(to_json(&list))
}

async fn events(
    State(s): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (first, rx) = s.subscribe();
    let start = Event::default().event("snapshot").data(first);
    let stream =
        futures_util::stream::unfold((Some(start), rx, s), |(first, mut rx, s)| async move {
            if let Some(e) = first {
                return Some((Ok(e), (None, rx, s)));
            }
            match rx.recv().await {
                Ok((kind, u)) => {
                    let e = Event::default().event(kind).data(&*u);
                    Some((Ok(e), (None, rx, s)))
                }
                // Too slow a reader: start it over from a snapshot.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (json_text, rx) = s.subscribe();
                    let e = Event::default().event("snapshot").data(json_text);
                    Some((Ok(e), (None, rx, s)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn ack(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if !s.acks_enabled {
        return refuse(
            StatusCode::NOT_FOUND,
            "alerting is off: run detect with --alerts or [[monitors]]",
        );
    }
    let (reply, answer) = oneshot::channel();
    if s.acks.send(AckRequest { id, reply }).is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "detection has stopped");
    }
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(Ok(view))) => json(to_json(&view)),
        Ok(Ok(Err(AckRefusal::Unknown(why)))) => (StatusCode::NOT_FOUND, why).into_response(),
        Ok(Ok(Err(AckRefusal::Conflict(why)))) => (StatusCode::CONFLICT, why).into_response(),
        Ok(Err(_)) => refuse(StatusCode::SERVICE_UNAVAILABLE, "detection has stopped"),
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "detection is busy: the acknowledgement is queued and applied when it next checks",
        ),
    }
}

/// The offline report: the page with its assets and `snapshot` inlined, loading
/// nothing from the network.
pub fn report_html(snapshot: &Snapshot) -> anyhow::Result<String> {
    let data = script_json(&serde_json::to_string(snapshot)?);
    // The exact text of each script element, as its CSP hash covers it.
    let chart = format!("\n{}\n", inline_script(CHART_JS)?);
    let app = format!("\n{}\n", inline_script(APP_JS)?);
    let mut html = INDEX_HTML.to_string();
    for tag in [CSS_LINK, CHART_TAG, APP_TAG] {
        anyhow::ensure!(html.contains(tag), "the page template lacks `{tag}`");
    }
    html = html.replacen(CSS_LINK, &format!("<style>\n{APP_CSS}\n</style>"), 1);
    html = html.replacen(
        CHART_TAG,
        &format!(
            "<script id=\"waflog-data\" type=\"application/json\">{data}</script>\n<script>{chart}</script>"
        ),
        1,
    );
    html = html.replacen(APP_TAG, &format!("<script>{app}</script>"), 1);
    html = html.replacen(
        "<head>",
        &format!(
            "<head>\n<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
            report_csp(&[&chart, &app])
        ),
        1,
    );
    Ok(html)
}

/// JSON made safe inside `<script>`: no `<`, `>` or `&` (nor the line separators
/// old parsers take for line ends) appears as such, so no `</script` or `<!--`
/// from the logs can end or change the element. JSON reads the escapes back.
fn script_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A script inlined as it is, once checked to hold nothing that would end or
/// change its element (`</script`, `<!--`, any case).
fn inline_script(js: &'static str) -> anyhow::Result<&'static str> {
    let lower = js.to_ascii_lowercase();
    anyhow::ensure!(
        !lower.contains("</script") && !lower.contains("<!--"),
        "a bundled script cannot be inlined as it is"
    );
    Ok(js)
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

    #[test]
    fn only_origin_form_targets_are_served() {
        let form = |t: &str| origin_form(&t.parse::<axum::http::Uri>().unwrap());
        assert!(form("/"));
        assert!(form("/api/snapshot?x=1"));
        assert!(!form("http://127.0.0.1:8080/api/snapshot"));
        assert!(!form("127.0.0.1:8080"));
        assert!(!form("*"));
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

    #[test]
    fn only_this_server_is_an_allowed_host() {
        let hosts = allowed_hosts("127.0.0.1:8080".parse().unwrap(), &[]);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
        ] {
            assert!(host_allowed(&hosts, ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "10.0.0.1:8080",
            "",
        ] {
            assert!(!host_allowed(&hosts, bad), "{bad}");
        }
        let h = "localhost:8080";
        assert!(origin_allowed(&hosts, h, "http://localhost:8080"));
        assert!(!origin_allowed(&hosts, h, "https://localhost:8080"));
        assert!(!origin_allowed(&hosts, h, "http://evil.example"));
        assert!(!origin_allowed(&hosts, h, "null"));
        assert!(!origin_allowed(
            &hosts,
            "evil.example:8080",
            "http://evil.example:8080"
        ));
        // Every address: IP literals only, never a name.
        let any = allowed_hosts("0.0.0.0:8080".parse().unwrap(), &["dash.internal".into()]);
        assert!(host_allowed(&any, "192.168.1.5:8080"));
        assert!(host_allowed(&any, "dash.internal:8080"));
        assert!(!host_allowed(&any, "rebind.evil.example:8080"));
        // ... and the Origin is the Host the page was loaded from, not any IP:
        // a page served from another address with the same port cannot post.
        assert!(origin_allowed(
            &any,
            "192.168.1.5:8080",
            "http://192.168.1.5:8080"
        ));
        assert!(!origin_allowed(
            &any,
            "192.168.1.5:8080",
            "http://203.0.113.5:8080"
        ));
        // Port 80: browsers leave it out.
        let eighty = allowed_hosts("127.0.0.1:80".parse().unwrap(), &[]);
        assert!(host_allowed(&eighty, "localhost"));
        let any80 = allowed_hosts("0.0.0.0:80".parse().unwrap(), &[]);
        assert!(host_allowed(&any80, "192.168.1.5"));
        assert!(!host_allowed(&any80, "evil.example"));
    }

    #[test]
    fn the_report_inlines_everything_and_loads_nothing() {
        let mut board = Board::report("t");
        let score = waflog_core::detect::Score {
            anomaly_score: 9.0,
            anomaly_grade: 0.9,
            confidence: 0.9,
            threshold: 5.0,
            expected: vec![1.0],
            attribution: vec![1.0],
            shifted_categories: vec![],
            band: vec![1.0],
        };
        let mut r = waflog_core::detect::AnomalyResult::from_score(
            "d",
            &["f".into()],
            &[9.0],
            &score,
            (0, 60_000),
            0,
        );
        r.examples = Some(vec![waflog_core::detect::result::ExampleRecord {
            client_ip: None,
            uri: Some("/</script><script>alert(1)</script><!--<script>&\u{2028}".into()),
            country: None,
            action: None,
        }]);
        board.push(&r);
        let html = report_html(&board.snapshot()).unwrap();
        assert!(!html.contains("src=\"assets/"), "no asset is loaded");
        assert!(!html.contains("href=\"assets/"));
        assert!(html.contains("id=\"waflog-data\""));
        assert!(html.contains("Content-Security-Policy"));
        // Only the two bundled scripts may run: pinned by hash, no 'unsafe-inline'.
        let csp = html
            .split("script-src ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(!csp.contains("unsafe-inline"));
        // A URI from the logs can neither close the data element nor open a
        // comment or script inside it: the data holds no `<` at all.
        let data = html
            .split("<script id=\"waflog-data\" type=\"application/json\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap();
        assert!(!data.contains('<') && !data.contains('>') && !data.contains('&'));
        let back: Snapshot = serde_json::from_str(data).unwrap();
        assert_eq!(
            back.anomalies[0].examples[0].uri.as_deref(),
            Some("/</script><script>alert(1)</script><!--<script>&\u{2028}")
        );
        assert!(html.contains("Chart.js v4.6.1"));
    }
}
