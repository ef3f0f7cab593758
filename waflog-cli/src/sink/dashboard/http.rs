//! The dashboard's HTTP side: the routes (the page, its assets, the snapshot,
//! the event stream, the alerts and their acknowledgement) behind a guard that
//! refuses requests not meant for this server.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::Stream;
use tokio::sync::{broadcast, oneshot};

use super::{APP_CSS, APP_JS, AckRequest, CHART_JS, INDEX_HTML, Shared, to_json};
use crate::alerts::AckRefusal;

const LIVE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";
/// The Host header values this server answers to.
pub(super) fn allowed_hosts(bound: SocketAddr, extra: &[String]) -> Vec<String> {
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

pub(super) fn router(shared: Arc<Shared>) -> Router {
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

/// The body of an acknowledgement: empty, `{}`, or `{"label": "not_anomaly"}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    label: Option<waflog_core::alert::Label>,
}

async fn ack(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !s.acks_enabled {
        return refuse(
            StatusCode::NOT_FOUND,
            "alerting is off: run detect with --alerts or [[monitors]]",
        );
    }
    let label = if body.trim_ascii().is_empty() {
        None
    } else {
        match serde_json::from_slice::<AckBody>(&body) {
            Ok(b) => b.label,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("the body must be {{}} or {{\"label\": \"not_anomaly\"}}: {e}"),
                )
                    .into_response();
            }
        }
    };
    let (reply, answer) = oneshot::channel();
    if s.acks.send(AckRequest { id, label, reply }).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_origin_form_targets_are_served() {
        let form = |t: &str| origin_form(&t.parse::<axum::http::Uri>().unwrap());
        assert!(form("/"));
        assert!(form("/api/snapshot?x=1"));
        assert!(!form("http://127.0.0.1:8080/api/snapshot"));
        assert!(!form("127.0.0.1:8080"));
        assert!(!form("*"));
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
}
