//! OpenSearch request bodies and response parsers: the scale-out path, with no I/O.
//!
//! Every body waflog sends to an OpenSearch cluster, and every response it reads back,
//! is built or parsed here; the CLI only moves bytes (HTTP, auth, retries). Each
//! shape follows the official request and response examples kept under
//! `fixtures/opensearch/` (see its README for the sources), and the unit tests check
//! the bodies against them field by field.
//!
//! | module            | endpoint                                              | what                                   |
//! |-------------------|-------------------------------------------------------|----------------------------------------|
//! | [`index`]         | `PUT _index_template/<name>`                          | index names, the logs and results templates |
//! | [`bulk`]          | `POST _bulk`                                          | action lines, per-item outcomes        |
//! | [`ad`]            | `_plugins/_anomaly_detection/detectors`               | detectors from `[[detectors]]`, search, profile |
//! | [`alerting`]      | `_plugins/_alerting/monitors`                         | monitors from `[[monitors]]`, search, alerts |
//! | [`notifications`] | `_plugins/_notifications/configs`                     | channels from `[[channels]]`           |
//! | [`dashboards`]    | Dashboards `POST api/saved_objects/_import`           | index patterns, visualisations, a dashboard |
//!
//! The same configuration drives both engines: a `[[detectors]]` entry becomes an
//! Anomaly Detection detector (the feature aggregations, interval, window delay and
//! shingle size carry over; detectors AD has no equivalent for are skipped with a
//! reason), and a `[[monitors]]` entry becomes an Alerting monitor on that detector's
//! results.
//!
//! Versions: the bodies target OpenSearch 2.x. On 1.3, index templates, bulk,
//! detectors and monitors work the same (per-feature filters need AD 1.3's backport
//! of filter aggregations), but there is no Notifications plugin: monitor actions
//! would name Alerting destinations instead, which are not built here.
//!
//! ```
//! use waflog_core::detect::DetectorSpec;
//! use waflog_core::opensearch::{self, IndexSuffix, ItemOutcome};
//!
//! // Daily indices under one template.
//! let index = opensearch::index_for("waf-logs", IndexSuffix::Daily, 1_714_521_600_000);
//! assert_eq!(index, "waf-logs-2024.05.01");
//! let template = opensearch::logs_template("waf-logs");
//! assert_eq!(template["index_patterns"][1], "waf-logs-*");
//!
//! // One bulk action line per document, then the outcome of each item.
//! let mut body = opensearch::bulk_action(&index);
//! body.extend_from_slice(b"{\"timestamp\":1714521600000}\n");
//! let response = br#"{"took":3,"errors":false,"items":[{"index":{"_index":"waf-logs-2024.05.01","status":201}}]}"#;
//! assert_eq!(opensearch::parse_bulk_response(response, 1).unwrap(), [ItemOutcome::Ok]);
//!
//! // The seed's country detector as an Anomaly Detection detector.
//! let spec = &DetectorSpec::defaults()[1];
//! let detector = opensearch::detector_body(spec, "waf-logs*", "timestamp").unwrap().unwrap();
//! assert_eq!(detector["feature_attributes"][0]["aggregation_query"]["UNK_country"]["sum"]["field"], "UNK_country");
//! assert_eq!(detector["detection_interval"]["period"]["interval"], 1);
//! ```

pub mod ad;
pub mod alerting;
pub mod bulk;
pub mod dashboards;
pub mod index;
pub mod notifications;

#[cfg(test)]
pub(crate) mod testutil;

use serde_json::Value;

pub use crate::error::OpenSearchError;
pub use ad::{
    AD_RESULTS_INDEX_PATTERNS, DetectorProfile, FoundId, ad_unsupported_reason, detector_body,
    detector_search_by_name, parse_detector_search, parse_profile, set_result_index,
};
pub use alerting::{
    ClusterAlert, monitor_body, monitor_search_by_name, parse_alerts, parse_monitor_search,
    to_mustache,
};
pub use bulk::{
    ItemOutcome, RequestOutcome, bulk_action, classify_status, error_reason, parse_bulk_response,
};
pub use dashboards::{
    ImportReport, dashboards_ndjson, parse_import_response, saved_objects_multipart,
};
pub use index::{
    IndexSuffix, TEMPLATE_VERSION, index_for, logs_template, logs_template_name, results_template,
    results_template_name, validate_index_name,
};
pub use notifications::{channel_config_body, channel_config_body_with_role, channel_config_id};

/// Paths of the APIs the bodies are for, relative to the cluster (or, for
/// [`paths::DASHBOARDS_IMPORT`], to OpenSearch Dashboards).
pub mod paths {
    /// `PUT _index_template/<name>` with [`super::logs_template`] or
    /// [`super::results_template`].
    pub const INDEX_TEMPLATE: &str = "_index_template";
    /// `POST _bulk` with [`super::bulk_action`] lines.
    pub const BULK: &str = "_bulk";
    /// Detectors: `POST` (create), `PUT <id>` (update), `POST <id>/_start`,
    /// `POST <id>/_stop`, `GET <id>/_profile`, `POST _search`.
    pub const AD_DETECTORS: &str = "_plugins/_anomaly_detection/detectors";
    /// Monitors: `POST` (create), `PUT <id>` (update), `POST _search`,
    /// `GET alerts`.
    pub const ALERTING_MONITORS: &str = "_plugins/_alerting/monitors";
    /// Channel configurations: `POST` (create), `PUT <config_id>` (update),
    /// `GET <config_id>`.
    pub const NOTIFICATIONS_CONFIGS: &str = "_plugins/_notifications/configs";
    /// OpenSearch Dashboards: `POST api/saved_objects/_import?overwrite=true` with
    /// the `osd-xsrf: true` header and [`super::saved_objects_multipart`].
    pub const DASHBOARDS_IMPORT: &str = "api/saved_objects/_import";
}

/// The `_id` of a created or updated object (`POST .../detectors`, `POST
/// .../monitors`), or the `config_id` of a Notifications channel.
///
/// ```
/// let body = br#"{"_id":"VEHKTXwBwf_U8gjUXY2s","_version":1,"_seq_no":5,"_primary_term":1}"#;
/// assert_eq!(waflog_core::opensearch::parse_created_id(body).unwrap(), "VEHKTXwBwf_U8gjUXY2s");
/// ```
pub fn parse_created_id(body: &[u8]) -> Result<String, OpenSearchError> {
    let v = parse_json(body, "create")?;
    v.get("_id")
        .or_else(|| v.get("config_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| invalid("create", "no `_id` or `config_id`".into()))
}

/// Parses a response body as JSON, naming the response in the error.
pub(crate) fn parse_json(body: &[u8], what: &'static str) -> Result<Value, OpenSearchError> {
    serde_json::from_slice(body).map_err(|e| invalid(what, format!("not JSON ({e})")))
}

pub(crate) fn invalid(what: &'static str, reason: String) -> OpenSearchError {
    OpenSearchError::InvalidResponse { what, reason }
}

/// A duration as whole minutes, if it is one.
pub(crate) fn whole_minutes(ms: i64) -> Option<i64> {
    (ms >= 0 && ms % 60_000 == 0).then_some(ms / 60_000)
}

/// A duration in minutes, rounded up.
pub(crate) fn minutes_ceil(ms: i64) -> i64 {
    (ms.max(0) as u64).div_ceil(60_000) as i64
}

/// Date-math text for a duration: `10m` when whole minutes, else `90s` (rounded up).
pub(crate) fn date_math(ms: i64) -> String {
    match whole_minutes(ms) {
        Some(m) => format!("{m}m"),
        None => format!("{}s", (ms.max(0) as u64).div_ceil(1000)),
    }
}

/// Lowercase ASCII letters and digits, every other run of characters as one `-`:
/// `UNK_source-Monitor` -> `unk-source-monitor`.
pub(crate) fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opensearch::testutil::fixture_json;

    #[test]
    fn created_ids_from_the_documented_responses() {
        for (file, id) in [
            ("ad/create-detector-response.json", "VEHKTXwBwf_U8gjUXY2s"),
            ("ad/update-detector-response.json", "VEHKTXwBwf_U8gjUXY2s"),
            (
                "alerting/create-ad-monitor-response.json",
                "OClTEnIBmSf7y6LP11Jz",
            ),
            (
                "alerting/update-monitor-response.json",
                "Q9aXOmkBC25HCRGmzfw-",
            ),
            ("notifications/create-config-response.json", "<config_id>"),
        ] {
            let body = serde_json::to_vec(&fixture_json(file)).unwrap();
            assert_eq!(parse_created_id(&body).unwrap(), id, "{file}");
        }
        assert!(parse_created_id(b"{}").is_err());
        assert!(parse_created_id(b"<html>").is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(slug("UNK_source-Monitor"), "unk-source-monitor");
        assert_eq!(slug("--a  b--"), "a-b");
        assert_eq!(whole_minutes(120_000), Some(2));
        assert_eq!(whole_minutes(10_000), None);
        assert_eq!(minutes_ceil(10_000), 1);
        assert_eq!(minutes_ceil(0), 0);
        assert_eq!(date_math(600_000), "10m");
        assert_eq!(date_math(90_500), "91s");
    }
}
