//! The `_bulk` API: action lines, and what became of each item.
//!
//! A bulk body is NDJSON: for every document an action line
//! (`{"index":{"_index":"..."}}`) then the document on one line, each ending with
//! `\n`, the last one included (DOC-BULK). The response lists one item per action, in
//! request order, each with its HTTP `status` and, on failure, an `error` object
//! (`type`, `reason`, ...). [`parse_bulk_response`] turns that into one
//! [`ItemOutcome`] per document: indexed, to be retried (the cluster was busy) or
//! rejected (the document itself is at fault, e.g. a mapping conflict: it belongs in
//! the dead-letter output with the server's reason).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{OpenSearchError, invalid};

/// What became of one document of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Indexed (a 2xx item status).
    Ok,
    /// The cluster could not take it now (429, any 5xx, or a rejected-execution
    /// error): send it again after a backoff.
    Retry {
        /// The item's status.
        status: u16,
        /// `type: reason` from the item's error.
        reason: String,
    },
    /// The document cannot be indexed as it is (400 mapping or parse errors, 404,
    /// 409 ...): send it to the dead-letter output with this reason.
    Reject {
        /// The item's status.
        status: u16,
        /// `type: reason` from the item's error (with its cause, when given).
        reason: String,
    },
}

/// What to do after a whole request came back with an HTTP status (any API, bulk
/// included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// 2xx: read the body (for bulk, per-item outcomes follow).
    Ok,
    /// 429, 502, 503, 504: the cluster or a proxy is overloaded or restarting; send
    /// the same request again after a backoff.
    Retry,
    /// 413: the body is larger than the cluster accepts (`http.max_content_length`);
    /// split the batch and send the halves.
    TooLarge,
    /// 401, 403: credentials are missing, wrong or lack a permission; retrying cannot
    /// help, stop and report.
    Auth,
    /// Any other status (400, 404, 500 ...): the request itself is wrong; report it
    /// with [`error_reason`] of the body.
    Reject,
}

/// How to treat a whole response with this HTTP status.
///
/// ```
/// use waflog_core::opensearch::{classify_status, RequestOutcome};
/// assert_eq!(classify_status(200), RequestOutcome::Ok);
/// assert_eq!(classify_status(429), RequestOutcome::Retry);
/// assert_eq!(classify_status(413), RequestOutcome::TooLarge);
/// assert_eq!(classify_status(403), RequestOutcome::Auth);
/// assert_eq!(classify_status(400), RequestOutcome::Reject);
/// ```
pub fn classify_status(http_status: u16) -> RequestOutcome {
    match http_status {
        200..=299 => RequestOutcome::Ok,
        429 | 502 | 503 | 504 => RequestOutcome::Retry,
        413 => RequestOutcome::TooLarge,
        401 | 403 => RequestOutcome::Auth,
        _ => RequestOutcome::Reject,
    }
}

/// The action line that indexes the next document into `index`, newline included.
/// The caller appends the document (one line) and a `\n`.
///
/// ```
/// let line = waflog_core::opensearch::bulk_action("waf-logs-2024.05.01");
/// assert_eq!(line, b"{\"index\":{\"_index\":\"waf-logs-2024.05.01\"}}\n");
/// ```
pub fn bulk_action(index: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len() + 24);
    out.extend_from_slice(b"{\"index\":{\"_index\":");
    // A string always serialises; the fallback keeps this infallible.
    match serde_json::to_vec(index) {
        Ok(quoted) => out.extend_from_slice(&quoted),
        Err(_) => out.extend_from_slice(b"\"\""),
    }
    out.extend_from_slice(b"}}\n");
    out
}

#[derive(Deserialize)]
struct Envelope<'a> {
    errors: bool,
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads a `_bulk` response to a request of `sent` actions: one outcome per action,
/// in request order.
///
/// When `errors` is `false` every item succeeded and the items are only counted.
/// Otherwise each item is classified by its status: 2xx [`ItemOutcome::Ok`]; 429,
/// 5xx or an error type ending in `rejected_execution_exception`
/// [`ItemOutcome::Retry`]; anything else [`ItemOutcome::Reject`]. A response whose
/// item count differs from `sent` is an error: its items cannot be matched to the
/// documents.
pub fn parse_bulk_response(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, OpenSearchError> {
    let env: Envelope<'_> = serde_json::from_slice(body).map_err(|e| {
        invalid(
            "bulk",
            match error_reason(body) {
                Some(reason) => format!("an error instead of items: {reason}"),
                None => format!("no `errors` and `items` ({e})"),
            },
        )
    })?;
    if env.items.len() != sent {
        return Err(OpenSearchError::ItemCount {
            sent,
            got: env.items.len(),
        });
    }
    if !env.errors {
        return Ok(vec![ItemOutcome::Ok; sent]);
    }
    env.items
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            // Each item is `{"<action>": {...}}`.
            let item: Map<String, Value> = serde_json::from_str(raw.get())
                .map_err(|e| invalid("bulk", format!("item {i}: {e}")))?;
            let (_, body) = item
                .iter()
                .next()
                .filter(|_| item.len() == 1)
                .ok_or_else(|| invalid("bulk", format!("item {i} is not one action")))?;
            let item =
                Item::deserialize(body).map_err(|e| invalid("bulk", format!("item {i}: {e}")))?;
            Ok(outcome(item))
        })
        .collect()
}

fn outcome(item: Item) -> ItemOutcome {
    let status = item.status;
    if (200..300).contains(&status) {
        return ItemOutcome::Ok;
    }
    let (kind, reason) = match &item.error {
        Some(e) => (error_type(e), describe(e)),
        None => (String::new(), format!("HTTP {status}")),
    };
    if status == 429 || status >= 500 || kind.ends_with("rejected_execution_exception") {
        ItemOutcome::Retry { status, reason }
    } else {
        ItemOutcome::Reject { status, reason }
    }
}

fn error_type(e: &Value) -> String {
    e.get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `type: reason`, then `; caused by type: reason` for each nested cause (the cause
/// usually names the offending value: "'abc' is not an IP string literal.").
fn describe(e: &Value) -> String {
    let one = |e: &Value| -> String {
        match e {
            Value::String(s) => s.clone(),
            _ => {
                let t = e.get("type").and_then(Value::as_str).unwrap_or("error");
                match e.get("reason").and_then(Value::as_str) {
                    Some(r) => format!("{t}: {r}"),
                    None => t.to_string(),
                }
            }
        }
    };
    let mut out = one(e);
    let mut cause = e.get("caused_by");
    let mut depth = 0;
    while let Some(c) = cause.filter(|c| !c.is_null()) {
        out.push_str("; caused by ");
        out.push_str(&one(c));
        cause = c.get("caused_by");
        depth += 1;
        if depth == 4 {
            break;
        }
    }
    out
}

/// The `type: reason` of an error response (`{"error": {...}, "status": N}`, or
/// `{"error": "text"}`), for messages; `None` when the body is not one.
///
/// ```
/// let body = br#"{"error":{"root_cause":[],"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}"#;
/// assert_eq!(waflog_core::opensearch::error_reason(body).unwrap(),
///     "index_not_found_exception: no such index [x]");
/// ```
pub fn error_reason(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("error").filter(|e| !e.is_null()).map(describe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opensearch::testutil::{fixture, fixture_json};

    fn bytes(name: &str) -> Vec<u8> {
        fixture(name).as_bytes().to_vec()
    }

    /// Our action lines have the documented shape (`bulk/request.ndjson`: an
    /// `index` object naming `_index`; `_id` is optional and waflog lets the
    /// cluster assign it), and a body built from them is newline-terminated NDJSON.
    #[test]
    fn action_lines_match_the_documented_request() {
        let doc = fixture("bulk/request.ndjson");
        let first: Value = serde_json::from_str(doc.lines().next().unwrap()).unwrap();
        let ours: Value = serde_json::from_slice(&bulk_action("movies")).unwrap();
        crate::opensearch::testutil::assert_shape(&ours, &first, &[], &["index._id"]);
        assert_eq!(ours["index"]["_index"], first["index"]["_index"]);
        let mut body = bulk_action("movies");
        body.extend_from_slice(b"{\"title\":\"Rush\",\"year\":2013}\n");
        assert!(body.ends_with(b"\n"));
        assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 2);
        // Names are JSON-escaped, whatever they hold.
        let odd: Value = serde_json::from_slice(&bulk_action("a\"b\\c")).unwrap();
        assert_eq!(odd["index"]["_index"], "a\"b\\c");
    }

    #[test]
    fn documented_success_responses() {
        assert_eq!(
            parse_bulk_response(&bytes("bulk/response-ok.json"), 2).unwrap(),
            [ItemOutcome::Ok, ItemOutcome::Ok]
        );
        // `errors: false` with a `delete` of a missing document (404 `not_found`):
        // the cluster counts it as done, and so do we.
        assert_eq!(
            parse_bulk_response(&bytes("bulk/response-multi-action.json"), 4).unwrap(),
            vec![ItemOutcome::Ok; 4]
        );
    }

    #[test]
    fn documented_partial_failures() {
        assert_eq!(
            parse_bulk_response(&bytes("bulk/response-partial-failure.json"), 1).unwrap(),
            [ItemOutcome::Reject {
                status: 404,
                reason: "document_missing_exception: [nonexistent1]: document missing".into()
            }]
        );
        assert_eq!(
            parse_bulk_response(&bytes("bulk/response-partial-failure-legacy-1x.json"), 3)
                .unwrap(),
            [
                ItemOutcome::Ok,
                ItemOutcome::Reject {
                    status: 409,
                    reason: "version_conflict_engine_exception: [tt1392214]: version conflict, document already exists (current version [1])".into()
                },
                ItemOutcome::Reject {
                    status: 404,
                    reason: "document_missing_exception: [_doc][tt0816711]: document missing"
                        .into()
                },
            ]
        );
    }

    /// NOT an official example: no OpenSearch source documents a 429 or 400 bulk item
    /// (see the fixtures README). These items are built on the item schema of
    /// `bulk/response-partial-failure.json` (`_index`, `_id`, `status`, `error {type,
    /// reason, index, shard, index_uuid}`), with the error types and reasons
    /// OpenSearch uses for a full write queue and a mapping conflict, plus an
    /// optional `caused_by` (an `ErrorCause` field in SPEC-ERRORS).
    #[test]
    fn constructed_throttled_and_mapping_rejected_items() {
        let mut response = fixture_json("bulk/response-partial-failure.json");
        let template = response["items"][0]["update"].clone();
        let item = |status: u16, kind: &str, reason: &str, cause: Option<Value>| {
            let mut i = template.clone();
            i["status"] = status.into();
            i["error"]["type"] = kind.into();
            i["error"]["reason"] = reason.into();
            if let Some(c) = cause {
                i["error"]["caused_by"] = c;
            }
            serde_json::json!({ "index": i })
        };
        let mut ok = fixture_json("bulk/response-ok.json")["items"][0].clone();
        ok["index"]["status"] = 201.into();
        response["items"] = Value::Array(vec![
            ok,
            item(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation",
                None,
            ),
            item(
                400,
                "mapper_parsing_exception",
                "failed to parse field [httpRequest.clientIp] of type [ip] in document with id 'x'",
                Some(
                    serde_json::json!({"type": "illegal_argument_exception", "reason": "'abc' is not an IP string literal."}),
                ),
            ),
            item(
                400,
                "document_parsing_exception",
                "[1:2] failed to parse",
                None,
            ),
            item(
                503,
                "unavailable_shards_exception",
                "primary shard is not active",
                None,
            ),
            // A rejected-execution error is retried whatever its status says.
            item(500, "rejected_execution_exception", "queue full", None),
        ]);
        let body = serde_json::to_vec(&response).unwrap();
        let out = parse_bulk_response(&body, 6).unwrap();
        assert_eq!(out[0], ItemOutcome::Ok);
        assert_eq!(
            out[1],
            ItemOutcome::Retry {
                status: 429,
                reason:
                    "es_rejected_execution_exception: rejected execution of coordinating operation"
                        .into()
            }
        );
        assert_eq!(
            out[2],
            ItemOutcome::Reject {
                status: 400,
                reason: "mapper_parsing_exception: failed to parse field [httpRequest.clientIp] of type [ip] in document with id 'x'; caused by illegal_argument_exception: 'abc' is not an IP string literal.".into()
            }
        );
        assert!(
            matches!(&out[3], ItemOutcome::Reject { status: 400, reason } if reason.starts_with("document_parsing_exception: "))
        );
        assert!(matches!(out[4], ItemOutcome::Retry { status: 503, .. }));
        assert!(matches!(out[5], ItemOutcome::Retry { status: 500, .. }));
    }

    #[test]
    fn mismatched_and_malformed_responses_are_errors() {
        assert_eq!(
            parse_bulk_response(&bytes("bulk/response-ok.json"), 3),
            Err(OpenSearchError::ItemCount { sent: 3, got: 2 })
        );
        // Even on the fast path.
        assert!(parse_bulk_response(br#"{"errors":false,"items":[]}"#, 1).is_err());
        for bad in [
            &b"not json"[..],
            br#"{"took":1}"#,
            br#"{"errors":true,"items":[{}]}"#,
            br#"{"errors":true,"items":[{"index":{"status":"x"}}]}"#,
            br#"{"errors":true,"items":[{"index":{"status":201},"create":{"status":201}}]}"#,
        ] {
            assert!(
                matches!(
                    parse_bulk_response(bad, 1),
                    Err(OpenSearchError::InvalidResponse { .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = parse_bulk_response(
            br#"{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\n]"},"status":400}"#,
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("illegal_argument_exception: The bulk request must be terminated"),
            "{e}"
        );
        // An item failing without an error object still gets a reason.
        let out = parse_bulk_response(br#"{"errors":true,"items":[{"index":{"status":400}}]}"#, 1)
            .unwrap();
        assert_eq!(
            out,
            [ItemOutcome::Reject {
                status: 400,
                reason: "HTTP 400".into()
            }]
        );
    }

    #[test]
    fn request_statuses() {
        for (s, o) in [
            (201, RequestOutcome::Ok),
            (429, RequestOutcome::Retry),
            (502, RequestOutcome::Retry),
            (503, RequestOutcome::Retry),
            (504, RequestOutcome::Retry),
            (413, RequestOutcome::TooLarge),
            (401, RequestOutcome::Auth),
            (403, RequestOutcome::Auth),
            (400, RequestOutcome::Reject),
            (404, RequestOutcome::Reject),
            (500, RequestOutcome::Reject),
        ] {
            assert_eq!(classify_status(s), o, "{s}");
        }
        assert_eq!(
            error_reason(br#"{"error":"no handler found"}"#).unwrap(),
            "no handler found"
        );
        assert_eq!(error_reason(br#"{"acknowledged":true}"#), None);
        assert_eq!(error_reason(b"<html>"), None);
    }
}
