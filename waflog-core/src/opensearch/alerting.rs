//! Alerting plugin: monitors from `[[monitors]]`, search by name, active alerts.
//!
//! Both kinds of waflog monitor become query-level monitors (`query_level_monitor`):
//!
//! - A detector input (`detector = "..."`) becomes the documented monitor on Anomaly
//!   Detection results (DOC-AD "Create monitor"): a search of the AD result indices
//!   for the detector's ID over the period, sorted by grade then confidence, with the
//!   maximum grade as `max_anomaly_grade`; each trigger compares the maximum grade and
//!   the confidence of the top result with its `min_grade` and `min_confidence` (as
//!   `>=`, waflog's rule; the documented example writes `>`). The period must be at
//!   least twice the detector's interval (DOC-MON); left unset it is exactly twice.
//! - A query input (`query = {detector, feature, aggregation, window}`) aggregates
//!   one feature's values over the window in waflog's own results index (the one
//!   [`super::results_template`] maps: `feature_data` is nested with a keyword
//!   `feature_name`, which the AD result mapping does not index), exactly as waflog
//!   evaluates it locally: `sum`, `avg`, `max`, `min` or `value_count` of
//!   `feature_data.data` for results with `data_end_time` in `(end - window, end]`.
//!
//! Messages and subjects are waflog templates ([`crate::alert::template`]) turned
//! into mustache by [`to_mustache`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::ad::{AD_RESULTS_INDEX_PATTERNS, FoundId, find_by_name};
use super::{OpenSearchError, date_math, invalid, minutes_ceil, parse_json, whole_minutes};
use crate::alert::template::{
    DEFAULT_MESSAGE, DEFAULT_SUBJECT, Placeholder, Template, TemplateSlot,
};
use crate::alert::{Condition, Monitor, MonitorInput, QueryAggregation, Trigger};
use crate::detect::DetectorSpec;
use crate::detect::spec::{duration_ms, duration_text};

/// Path, in a query monitor's search response, of the aggregated value.
const QUERY_VALUE: &str = "ctx.results[0].aggregations.feature_data.selected.result.value";
/// The same in mustache (`.0` for `[0]`).
const QUERY_VALUE_MUSTACHE: &str =
    "{{ctx.results.0.aggregations.feature_data.selected.result.value}}";

/// The body of `POST _plugins/_alerting/monitors` (create) or `PUT
/// .../monitors/<id>` (update) for `monitor`.
///
/// `detectors` are the configured detectors (for the interval the period defaults
/// to and is checked against); `detector_ids` maps detector names to their IDs in the
/// cluster (detector inputs need one); `channel_ids` maps channel names to
/// Notifications channel `config_id`s, which actions name in `destination_id`;
/// `results_index` is the index (or pattern) of waflog's results, searched by query
/// inputs.
///
/// A trigger notifies the channels it lists (all of `channel_ids` when it lists none)
/// that have an ID; others are local-only channels (`stdout`, `file` ...) and get no
/// action. Errors name the monitor: an unknown detector, a detector without an ID,
/// a period that is not whole minutes or, for detector inputs, shorter than twice
/// the detector's interval, an invalid template.
pub fn monitor_body(
    monitor: &Monitor,
    detectors: &[DetectorSpec],
    detector_ids: &BTreeMap<String, String>,
    channel_ids: &BTreeMap<String, String>,
    results_index: &str,
) -> Result<Value, OpenSearchError> {
    let err = |reason: String| OpenSearchError::Monitor {
        monitor: monitor.name.clone(),
        reason,
    };
    let detector = monitor.detector();
    let spec = detectors
        .iter()
        .find(|d| d.name == detector)
        .ok_or_else(|| err(format!("unknown detector `{detector}`")))?;
    let interval = spec.interval();
    let period = match (&monitor.period, &monitor.input) {
        (Some(p), _) => duration_ms(p).map_err(err)?,
        (None, MonitorInput::Detector { .. }) => interval.saturating_mul(2),
        (None, MonitorInput::Query(_)) => interval,
    };
    let minutes = whole_minutes(period).filter(|m| *m >= 1).ok_or_else(|| {
        err(format!(
            "its period ({}) is not a whole number of minutes, the unit of Alerting schedules",
            humantime::format_duration(std::time::Duration::from_millis(period.max(0) as u64))
        ))
    })?;
    let input = match &monitor.input {
        MonitorInput::Detector { entity, .. } => {
            if period < interval.saturating_mul(2) {
                return Err(err(format!(
                    "its period ({minutes}m) is shorter than twice the interval of detector `{detector}` ({}); monitors on anomaly detection results need at least {}m",
                    duration_text(spec.interval_ms),
                    minutes_ceil(interval.saturating_mul(2))
                )));
            }
            let id = detector_ids.get(detector).ok_or_else(|| {
                err(format!(
                    "detector `{detector}` has no ID in the cluster (not created there?)"
                ))
            })?;
            ad_input(id, entity.as_deref(), minutes)
        }
        MonitorInput::Query(q) => {
            if results_index.trim().is_empty() {
                return Err(err("the results index must not be empty".into()));
            }
            let window = duration_ms(&q.window).map_err(err)?;
            query_input(detector, &q.feature, q.aggregation, window, results_index)
        }
    };
    let triggers = monitor
        .triggers
        .iter()
        .map(|t| trigger_body(t, monitor, channel_ids))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "type": "monitor",
        "monitor_type": "query_level_monitor",
        "name": monitor.name,
        "enabled": true,
        "schedule": {"period": {"interval": minutes, "unit": "MINUTES"}},
        "inputs": [input],
        "triggers": triggers,
    }))
}

/// The documented AD monitor input: the detector's real-time results (historical
/// analysis results carry a `task_id`, as in DOC-AD "Search detector result") whose
/// data ended in the period.
fn ad_input(detector_id: &str, entity: Option<&str>, minutes: i64) -> Value {
    let mut filter = vec![
        json!({"range": {"data_end_time": {
            "from": format!("{{{{period_end}}}}||-{minutes}m"),
            "to": "{{period_end}}",
            "include_lower": true,
            "include_upper": true
        }}}),
        json!({"term": {"detector_id": {"value": detector_id}}}),
    ];
    if let Some(e) = entity {
        filter.push(json!({"nested": {
            "path": "entity",
            "query": {"term": {"entity.value": {"value": e}}}
        }}));
    }
    json!({"search": {
        "indices": AD_RESULTS_INDEX_PATTERNS,
        "query": {
            "size": 1,
            "query": {"bool": {
                "filter": filter,
                "must_not": [{"exists": {"field": "task_id"}}]
            }},
            "sort": [
                {"anomaly_grade": {"order": "desc"}},
                {"confidence": {"order": "desc"}}
            ],
            "aggregations": {"max_anomaly_grade": {"max": {"field": "anomaly_grade"}}}
        }
    }})
}

fn query_input(
    detector: &str,
    feature: &str,
    aggregation: QueryAggregation,
    window_ms: i64,
    results_index: &str,
) -> Value {
    let metric = match aggregation {
        QueryAggregation::Sum => "sum",
        QueryAggregation::Avg => "avg",
        QueryAggregation::Max => "max",
        QueryAggregation::Min => "min",
        QueryAggregation::Count => "value_count",
    };
    json!({"search": {
        "indices": [results_index],
        "query": {
            "size": 0,
            "query": {"bool": {"filter": [
                {"range": {"data_end_time": {
                    "gt": format!("{{{{period_end}}}}||-{}", date_math(window_ms)),
                    "lte": "{{period_end}}",
                    "format": "epoch_millis"
                }}},
                {"term": {"detector_name": {"value": detector}}}
            ]}},
            "aggregations": {"feature_data": {
                "nested": {"path": "feature_data"},
                "aggs": {"selected": {
                    "filter": {"term": {"feature_data.feature_name": {"value": feature}}},
                    "aggs": {"result": {metric: {"field": "feature_data.data"}}}
                }}
            }}
        }
    }})
}

/// A number as painless source: finite values as Rust prints them (`0.7`, `100`).
fn painless_number(x: f64) -> Option<String> {
    x.is_finite().then(|| format!("{x}"))
}

fn trigger_body(
    t: &Trigger,
    monitor: &Monitor,
    channel_ids: &BTreeMap<String, String>,
) -> Result<Value, OpenSearchError> {
    let err = |reason: String| OpenSearchError::Monitor {
        monitor: monitor.name.clone(),
        reason: format!("trigger `{}`: {reason}", t.name),
    };
    let number = |x: f64| painless_number(x).ok_or_else(|| err(format!("{x} is not finite")));
    let source = match (t.condition, &monitor.input) {
        (
            Condition::Anomaly {
                min_grade,
                min_confidence,
            },
            MonitorInput::Detector { .. },
        ) => format!(
            "return ctx.results[0].aggregations.max_anomaly_grade.value != null && ctx.results[0].aggregations.max_anomaly_grade.value >= {} && ctx.results[0].hits.hits[0]._source.confidence >= {}",
            number(min_grade)?,
            number(min_confidence)?
        ),
        (Condition::Compare { op, value }, MonitorInput::Query(_)) => format!(
            "return {QUERY_VALUE} != null && {QUERY_VALUE} {} {}",
            op.as_str(),
            number(value)?
        ),
        (Condition::Anomaly { .. }, MonitorInput::Query(_)) => {
            return Err(err(
                "a query monitor's trigger needs `condition = { op, value }`".into(),
            ));
        }
        (Condition::Compare { .. }, MonitorInput::Detector { .. }) => {
            return Err(err(
                "a detector monitor's trigger takes `min_grade`/`min_confidence`".into(),
            ));
        }
    };
    let message = to_mustache(
        t.message.as_deref().unwrap_or(DEFAULT_MESSAGE),
        TemplateSlot::Message,
        monitor,
    )?;
    let subject = to_mustache(
        t.subject.as_deref().unwrap_or(DEFAULT_SUBJECT),
        TemplateSlot::Subject,
        monitor,
    )?;
    let throttle = match &t.throttle {
        Some(th) => Some(minutes_ceil(duration_ms(th).map_err(&err)?).max(1)),
        None => None,
    };
    let channels: Vec<(&String, &String)> = match &t.actions {
        None => channel_ids.iter().collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| channel_ids.get_key_value(n))
            .collect(),
    };
    let actions: Vec<Value> = channels
        .into_iter()
        .map(|(name, id)| {
            let mut a = json!({
                "name": name,
                "destination_id": id,
                "message_template": {"source": message, "lang": "mustache"},
                "subject_template": {"source": subject, "lang": "mustache"},
                "throttle_enabled": throttle.is_some(),
            });
            if let Some(m) = throttle {
                a["throttle"] = json!({"value": m, "unit": "MINUTES"});
            }
            a
        })
        .collect();
    Ok(json!({
        "name": t.name,
        "severity": t.severity.to_string(),
        "condition": {"script": {"source": source, "lang": "painless"}},
        "actions": actions,
    }))
}

/// Turns a waflog message or subject template into an Alerting mustache template
/// for `monitor`'s cluster monitor.
///
/// | waflog               | mustache                                                                 |
/// |----------------------|--------------------------------------------------------------------------|
/// | `{{monitor}}`        | `{{ctx.monitor.name}}`                                                   |
/// | `{{trigger}}`        | `{{ctx.trigger.name}}`                                                   |
/// | `{{severity}}`       | `{{ctx.trigger.severity}}`                                               |
/// | `{{period_start}}`, `{{start_time}}` | `{{ctx.periodStart}}`                                    |
/// | `{{period_end}}`     | `{{ctx.periodEnd}}`                                                      |
/// | `{{headline}}`       | `Monitor {{ctx.monitor.name}} just entered alert status. Please investigate the issue.` |
/// | `{{detector}}`       | the detector's name                                                      |
/// | `{{entity}}`         | the monitor's entity; else the top result's (`{{ctx.results.0.hits.hits.0._source.entity.0.value}}`); empty for queries |
/// | `{{explanation}}`    | the maximum grade and the confidence; for queries the aggregated value   |
/// | `{{alert_id}}`       | `{{ctx.alert.id}}`                                                       |
/// | `{{state}}`, `{{kind}}`, `{{periods_active}}` | `ACTIVE`, `alert`, `1` (the cluster notifies when an alert opens) |
///
/// ```
/// use waflog_core::alert::Monitor;
/// use waflog_core::alert::template::{TemplateSlot, DEFAULT_MESSAGE};
/// use waflog_core::opensearch::to_mustache;
/// let text = to_mustache(DEFAULT_MESSAGE, TemplateSlot::Message, &Monitor::seed()).unwrap();
/// assert!(text.starts_with("Monitor {{ctx.monitor.name}} just entered alert status. Please investigate the issue.\n  - Trigger: {{ctx.trigger.name}}\n  - Severity: {{ctx.trigger.severity}}\n  - Period start: {{ctx.periodStart}}\n  - Period end: {{ctx.periodEnd}}"));
/// ```
pub fn to_mustache(
    text: &str,
    slot: TemplateSlot,
    monitor: &Monitor,
) -> Result<String, OpenSearchError> {
    let template = Template::parse(text, slot).map_err(|e| OpenSearchError::Monitor {
        monitor: monitor.name.clone(),
        reason: e,
    })?;
    // Literal values must not open a mustache tag.
    let literal = |s: &str| s.replace("{{", "{ {");
    Ok(template.render(|p| match p {
        Placeholder::Monitor => "{{ctx.monitor.name}}".into(),
        Placeholder::Trigger => "{{ctx.trigger.name}}".into(),
        Placeholder::Severity => "{{ctx.trigger.severity}}".into(),
        Placeholder::PeriodStart | Placeholder::StartTime => "{{ctx.periodStart}}".into(),
        Placeholder::PeriodEnd => "{{ctx.periodEnd}}".into(),
        Placeholder::Headline => {
            "Monitor {{ctx.monitor.name}} just entered alert status. Please investigate the issue."
                .into()
        }
        Placeholder::Detector => literal(monitor.detector()),
        Placeholder::Entity => match &monitor.input {
            MonitorInput::Detector {
                entity: Some(e), ..
            } => literal(e),
            MonitorInput::Detector { entity: None, .. } => {
                "{{ctx.results.0.hits.hits.0._source.entity.0.value}}".into()
            }
            MonitorInput::Query(_) => String::new(),
        },
        Placeholder::Explanation => match &monitor.input {
            MonitorInput::Detector { detector, .. } => format!(
                "Detector {}: anomaly grade {{{{ctx.results.0.aggregations.max_anomaly_grade.value}}}}, confidence {{{{ctx.results.0.hits.hits.0._source.confidence}}}}",
                literal(detector)
            ),
            MonitorInput::Query(q) => format!(
                "{} of {} over the last {} ({}): {QUERY_VALUE_MUSTACHE}",
                q.aggregation,
                literal(&q.feature),
                literal(&q.window),
                literal(&q.detector)
            ),
        },
        Placeholder::AlertId => "{{ctx.alert.id}}".into(),
        Placeholder::State => "ACTIVE".into(),
        Placeholder::Kind => "alert".into(),
        Placeholder::PeriodsActive => "1".into(),
    }))
}

/// The body of `POST _plugins/_alerting/monitors/_search` that finds a monitor by
/// name: DOC-ALERT's `match` on `monitor.name`, with all the name's terms required
/// and room for monitors whose names share them; [`parse_monitor_search`] keeps the
/// exact name only.
pub fn monitor_search_by_name(name: &str) -> Value {
    json!({
        "size": 100,
        "query": {"match": {"monitor.name": {"query": name, "operator": "and"}}}
    })
}

/// Reads the response of [`monitor_search_by_name`]: the monitor named exactly
/// `name`, if any. The name is read from `_source.monitor.name` (the stored
/// document) or `_source.name` (as DOC-ALERT's example shows it).
pub fn parse_monitor_search(body: &[u8], name: &str) -> Result<Option<FoundId>, OpenSearchError> {
    find_by_name(body, name, "monitor", |source| {
        source
            .get("monitor")
            .and_then(|m| m.get("name"))
            .or_else(|| source.get("name"))
            .and_then(Value::as_str)
    })
}

/// One alert from `GET _plugins/_alerting/monitors/alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterAlert {
    /// Alert ID.
    pub id: String,
    /// Monitor ID.
    pub monitor_id: String,
    /// Monitor name.
    pub monitor_name: String,
    /// Trigger name.
    pub trigger_name: String,
    /// `ACTIVE`, `ACKNOWLEDGED`, `COMPLETED`, `ERROR` or `DELETED`.
    pub state: String,
    /// `1` (highest) to `5`.
    pub severity: String,
    /// When the alert opened, epoch ms.
    pub start_time: Option<i64>,
    /// The error, for alerts in `ERROR`.
    pub error_message: Option<String>,
}

/// Reads the alerts listed by `GET _plugins/_alerting/monitors/alerts` (DOC-ALERT
/// "Get alerts"; filter with `?alertState=ACTIVE&monitorId=<id>`).
pub fn parse_alerts(body: &[u8]) -> Result<Vec<ClusterAlert>, OpenSearchError> {
    let v = parse_json(body, "alerts")?;
    let alerts = v
        .get("alerts")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("alerts", "no `alerts` list".into()))?;
    let text = |a: &Value, k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
    alerts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let need = |k: &str| {
                text(a, k).ok_or_else(|| invalid("alerts", format!("alert {i} has no `{k}`")))
            };
            Ok(ClusterAlert {
                id: need("id")?,
                monitor_id: need("monitor_id")?,
                monitor_name: text(a, "monitor_name").unwrap_or_default(),
                trigger_name: text(a, "trigger_name").unwrap_or_default(),
                state: need("state")?,
                severity: match a.get("severity") {
                    Some(Value::Number(n)) => n.to_string(),
                    other => other
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                },
                start_time: a.get("start_time").and_then(Value::as_i64),
                error_message: text(a, "error_message"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{CompareOp, QueryInput};
    use crate::opensearch::testutil::{assert_shape, fixture, fixture_json, merged};

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// DOC-AD's monitor: `test-monitor` every 20 minutes on detector
    /// `m4ccEnIBTXsGi3mvMt9p`, trigger `test-trigger` at grade and confidence 0.7,
    /// action `test-action` to destination `ld7912sBlQ5JUWWFThoW`.
    fn doc_ad_monitor() -> (Monitor, Vec<DetectorSpec>) {
        let mut spec = DetectorSpec::indicator_sum("d", "UNK_source");
        spec.interval_ms = 600_000;
        let mut trigger = Trigger::new("test-trigger", 1);
        trigger.message = Some("This is my message body.".into());
        trigger.subject = Some("TheSubject".into());
        let monitor = Monitor {
            name: "test-monitor".into(),
            period: Some("20m".into()),
            input: MonitorInput::Detector {
                detector: "d".into(),
                entity: None,
            },
            triggers: vec![trigger],
        };
        (monitor, vec![spec])
    }

    fn doc_ad_body() -> Value {
        let (m, specs) = doc_ad_monitor();
        monitor_body(
            &m,
            &specs,
            &ids(&[("d", "m4ccEnIBTXsGi3mvMt9p")]),
            &ids(&[("test-action", "ld7912sBlQ5JUWWFThoW")]),
            "waf-results*",
        )
        .unwrap()
    }

    /// Keys of the documented monitors that waflog leaves to the server's defaults or
    /// that the server fills in.
    const SERVER_SIDE: [&str; 9] = [
        "schema_version",
        "enabled_time",
        "last_update_time",
        "triggers[].id",
        "triggers[].actions[].id",
        "inputs[].search.query.query.bool.boost",
        "inputs[].search.query.query.bool.adjust_pure_negative",
        "inputs[].search.query.query.bool.filter[].range.data_end_time.boost",
        "inputs[].search.query.query.bool.filter[].term.detector_id.boost",
    ];

    #[test]
    fn ad_monitor_matches_the_documented_request() {
        let body = doc_ad_body();
        let request = fixture_json("alerting/create-ad-monitor-request.json");
        let example = merged(&[
            request.clone(),
            fixture_json("alerting/create-ad-monitor-response.json")["monitor"].clone(),
            // `monitor_type` is on DOC-ALERT's 2.x examples only.
            fixture_json("alerting/create-query-monitor-request.json"),
            // `must_not` on `task_id` is DOC-AD's real-time result search.
            json!({"inputs": [{"search": {"query": {"query": {"bool": {"must_not":
                fixture_json("ad/result-mapping/search-results-request.json")["query"]["bool"]["must_not"].clone()
            }}}}}]}),
        ]);
        let mut optional = SERVER_SIDE.to_vec();
        optional.push("triggers[].actions[].throttle");
        assert_shape(&body, &example, &[], &optional);
        // Field by field where waflog's values are the documented ones.
        let (ours, doc) = (
            &body["inputs"][0]["search"]["query"],
            &request["inputs"][0]["search"]["query"],
        );
        for k in ["size", "sort", "aggregations"] {
            assert_eq!(ours[k], doc[k], "{k}");
        }
        let mut range = doc["query"]["bool"]["filter"][0].clone();
        range["range"]["data_end_time"]
            .as_object_mut()
            .unwrap()
            .remove("boost");
        assert_eq!(ours["query"]["bool"]["filter"][0], range);
        assert_eq!(
            ours["query"]["bool"]["filter"][1]["term"]["detector_id"]["value"],
            doc["query"]["bool"]["filter"][1]["term"]["detector_id"]["value"]
        );
        assert_eq!(
            body["inputs"][0]["search"]["indices"],
            json!([
                ".opendistro-anomaly-results*",
                ".opensearch-anomaly-results*"
            ])
        );
        for k in ["type", "name", "enabled", "schedule"] {
            assert_eq!(body[k], request[k], "{k}");
        }
        let (t, dt) = (&body["triggers"][0], &request["triggers"][0]);
        for k in ["name", "severity"] {
            assert_eq!(t[k], dt[k], "{k}");
        }
        // waflog fires at the thresholds (>=); the documented script uses >.
        assert_eq!(
            t["condition"]["script"]["source"].as_str().unwrap(),
            dt["condition"]["script"]["source"]
                .as_str()
                .unwrap()
                .replace("> 0.7", ">= 0.7")
        );
        let (a, da) = (&t["actions"][0], &dt["actions"][0]);
        for k in ["name", "destination_id", "throttle_enabled"] {
            assert_eq!(a[k], da[k], "{k}");
        }
        assert_eq!(
            a["message_template"]["source"],
            da["message_template"]["source"]
        );
        assert_eq!(
            a["subject_template"]["source"],
            da["subject_template"]["source"]
        );
        assert_eq!(a["message_template"]["lang"], "mustache");
    }

    #[test]
    fn the_seed_monitor_in_the_cluster() {
        let (_, mut specs) = doc_ad_monitor();
        specs[0].name = "source-anomaly-detector".into();
        specs[0].interval_ms = 60_000;
        let body = monitor_body(
            &Monitor::seed(),
            &specs,
            &ids(&[("source-anomaly-detector", "det-1")]),
            &ids(&[
                ("ops-webhook", "waflog-ops-webhook"),
                ("security-sns", "waflog-security-sns"),
            ]),
            "waf-results*",
        )
        .unwrap();
        assert_eq!(body["name"], "UNK_source-Monitor");
        assert_eq!(
            body["schedule"]["period"],
            json!({"interval": 10, "unit": "MINUTES"})
        );
        let filter = &body["inputs"][0]["search"]["query"]["query"]["bool"]["filter"];
        assert_eq!(
            filter[0]["range"]["data_end_time"]["from"],
            "{{period_end}}||-10m"
        );
        let t = &body["triggers"][0];
        assert_eq!(t["name"], "UNK_source-trigger");
        assert_eq!(t["severity"], "1");
        let actions = t["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0]["destination_id"], "waflog-ops-webhook");
        let message = actions[0]["message_template"]["source"].as_str().unwrap();
        assert!(message.starts_with("Monitor {{ctx.monitor.name}} just entered alert status. Please investigate the issue.\n  - Trigger: {{ctx.trigger.name}}\n  - Severity: {{ctx.trigger.severity}}\n  - Period start: {{ctx.periodStart}}\n  - Period end: {{ctx.periodEnd}}"), "{message}");
        assert!(message.contains("max_anomaly_grade.value}}"));
        assert_eq!(
            actions[0]["subject_template"]["source"],
            "waflog alert: {{ctx.monitor.name}} / {{ctx.trigger.name}} (severity {{ctx.trigger.severity}})"
        );
        // Only the listed channels that exist in the cluster; local ones get no action.
        let mut m = Monitor::seed();
        m.triggers[0].actions = Some(vec!["stdout".into(), "security-sns".into()]);
        m.triggers[0].throttle = Some("90s".into());
        m.input = MonitorInput::Detector {
            detector: "source-anomaly-detector".into(),
            entity: Some("203.0.113.7".into()),
        };
        let body = monitor_body(
            &m,
            &specs,
            &ids(&[("source-anomaly-detector", "det-1")]),
            &ids(&[("security-sns", "sns-id")]),
            "r",
        )
        .unwrap();
        let a = &body["triggers"][0]["actions"];
        assert_eq!(a.as_array().unwrap().len(), 1);
        assert_eq!(a[0]["destination_id"], "sns-id");
        assert_eq!(a[0]["throttle_enabled"], true);
        assert_eq!(a[0]["throttle"], json!({"value": 2, "unit": "MINUTES"}));
        assert_eq!(
            body["inputs"][0]["search"]["query"]["query"]["bool"]["filter"][2],
            json!({"nested": {"path": "entity", "query": {"term": {"entity.value": {"value": "203.0.113.7"}}}}})
        );
        // `entity` is one of the AD result mapping's nested fields.
        let mapping = fixture_json("ad/result-mapping/anomaly-results-mapping.json");
        assert_eq!(mapping["properties"]["entity"]["type"], "nested");
    }

    #[test]
    fn ad_monitor_periods() {
        let (mut m, specs) = doc_ad_monitor();
        let det = ids(&[("d", "x")]);
        let none = BTreeMap::new();
        // Left unset: twice the detector's interval.
        m.period = None;
        let body = monitor_body(&m, &specs, &det, &none, "r").unwrap();
        assert_eq!(body["schedule"]["period"]["interval"], 20);
        for (period, expect) in [
            ("10m", "shorter than twice"),
            ("90s", "whole number of minutes"),
            ("soon", "soon"),
        ] {
            m.period = Some(period.into());
            let e = monitor_body(&m, &specs, &det, &none, "r")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("monitor `test-monitor`") && e.contains(expect),
                "{e}"
            );
        }
        m.period = Some("30m".into());
        let e = monitor_body(&m, &specs, &none, &none, "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no ID"), "{e}");
        let e = monitor_body(&m, &[], &det, &none, "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown detector `d`"), "{e}");
        m.triggers[0].message = Some("{{nope}}".into());
        let e = monitor_body(&m, &specs, &det, &none, "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("{{nope}}"), "{e}");
        m.triggers[0].message = None;
        m.triggers[0].condition = Condition::Compare {
            op: CompareOp::Gt,
            value: 1.0,
        };
        assert!(monitor_body(&m, &specs, &det, &none, "r").is_err());
        m.triggers[0].condition = Condition::Anomaly {
            min_grade: f64::NAN,
            min_confidence: 0.5,
        };
        assert!(monitor_body(&m, &specs, &det, &none, "r").is_err());
    }

    fn query_body(aggregation: QueryAggregation, op: CompareOp, value: f64) -> Value {
        let mut m = Monitor::seed_query(value);
        if let MonitorInput::Query(q) = &mut m.input {
            q.aggregation = aggregation;
        }
        m.triggers[0].condition = Condition::Compare { op, value };
        let specs = vec![DetectorSpec::indicator_sum(
            "source-anomaly-detector",
            "UNK_source",
        )];
        monitor_body(
            &m,
            &specs,
            &BTreeMap::new(),
            &ids(&[("ops", "ops-id")]),
            "waf-results*",
        )
        .unwrap()
    }

    /// Compared with DOC-ALERT's query-level monitor (the response's normalised form
    /// merged with the request). The range key is a field name (`@timestamp` there,
    /// `data_end_time` here); `gt` is documented in DOC-AD's `filter_query` range and
    /// the `term` clause in DOC-AD's monitor. The aggregations are waflog's own.
    #[test]
    fn query_monitor_matches_the_documented_request() {
        let mut body = query_body(QueryAggregation::Sum, CompareOp::Gt, 100.0);
        let range =
            &mut body["inputs"][0]["search"]["query"]["query"]["bool"]["filter"][0]["range"];
        let value = range["data_end_time"].take();
        *range = json!({"@timestamp": value});
        // The request's single `filter` clause, as the one-element list the
        // response normalises it to.
        let mut request = fixture_json("alerting/create-query-monitor-request.json");
        let bool_query = &mut request["inputs"][0]["search"]["query"]["query"]["bool"];
        bool_query["filter"] = json!([bool_query["filter"].take()]);
        let example = merged(&[
            fixture_json("alerting/create-query-monitor-response.json")["monitor"].clone(),
            request,
            fixture_json("alerting/create-ad-monitor-request.json"),
        ]);
        let mut optional = SERVER_SIDE.to_vec();
        optional.extend([
            "triggers[].actions[].throttle",
            "inputs[].search.query.query.bool.filter[].range.@timestamp.*",
            "inputs[].search.query.query.bool.filter[].range.data_end_time",
            "inputs[].search.query.query.bool.filter[].term.detector_id",
            "inputs[].search.query.sort",
            "inputs[].search.query.aggregations.*",
        ]);
        assert_shape(
            &body,
            &example,
            &[
                "inputs[].search.query.aggregations.*",
                "inputs[].search.query.query.bool.filter[].range.@timestamp.gt",
                "inputs[].search.query.query.bool.filter[].term.detector_name",
            ],
            &optional,
        );
    }

    #[test]
    fn query_monitors_aggregate_waflog_results() {
        let body = query_body(QueryAggregation::Sum, CompareOp::Gt, 100.0);
        assert_eq!(body["schedule"]["period"]["interval"], 10);
        let search = &body["inputs"][0]["search"];
        assert_eq!(search["indices"], json!(["waf-results*"]));
        let q = &search["query"];
        assert_eq!(q["size"], 0);
        assert_eq!(
            q["query"]["bool"]["filter"][0]["range"]["data_end_time"],
            json!({"gt": "{{period_end}}||-10m", "lte": "{{period_end}}", "format": "epoch_millis"})
        );
        assert_eq!(
            q["query"]["bool"]["filter"][1]["term"]["detector_name"]["value"],
            "source-anomaly-detector"
        );
        assert_eq!(
            q["aggregations"],
            json!({"feature_data": {
                "nested": {"path": "feature_data"},
                "aggs": {"selected": {
                    "filter": {"term": {"feature_data.feature_name": {"value": "UNK_source"}}},
                    "aggs": {"result": {"sum": {"field": "feature_data.data"}}}
                }}
            }})
        );
        // The fields the query uses are mapped by the results template, as needed.
        let t = crate::opensearch::results_template("waf-results");
        let p = &t["template"]["mappings"]["properties"];
        assert_eq!(p["feature_data"]["type"], "nested");
        assert_eq!(
            p["feature_data"]["properties"]["feature_name"]["type"],
            "keyword"
        );
        assert_eq!(p["detector_name"]["type"], "keyword");
        let t = &body["triggers"][0];
        assert_eq!(
            t["condition"]["script"]["source"],
            "return ctx.results[0].aggregations.feature_data.selected.result.value != null && ctx.results[0].aggregations.feature_data.selected.result.value > 100"
        );
        assert_eq!(t["severity"], "1");
        let message = t["actions"][0]["message_template"]["source"]
            .as_str()
            .unwrap();
        assert!(message.contains("sum of UNK_source over the last 10m (source-anomaly-detector): {{ctx.results.0.aggregations.feature_data.selected.result.value}}"), "{message}");
        for (agg, metric) in [
            (QueryAggregation::Avg, "avg"),
            (QueryAggregation::Max, "max"),
            (QueryAggregation::Min, "min"),
            (QueryAggregation::Count, "value_count"),
        ] {
            let body = query_body(agg, CompareOp::Le, 0.5);
            let result = &body["inputs"][0]["search"]["query"]["aggregations"]["feature_data"]["aggs"]
                ["selected"]["aggs"]["result"];
            assert!(result.get(metric).is_some(), "{agg}");
            assert!(
                body["triggers"][0]["condition"]["script"]["source"]
                    .as_str()
                    .unwrap()
                    .ends_with(" <= 0.5")
            );
        }
        // Sub-minute windows in seconds.
        let mut m = Monitor::seed_query(1.0);
        m.input = MonitorInput::Query(QueryInput {
            detector: "source-anomaly-detector".into(),
            feature: "UNK_source".into(),
            aggregation: QueryAggregation::Sum,
            window: "90s".into(),
        });
        let specs = vec![DetectorSpec::indicator_sum(
            "source-anomaly-detector",
            "UNK_source",
        )];
        let body = monitor_body(&m, &specs, &BTreeMap::new(), &BTreeMap::new(), "r").unwrap();
        assert_eq!(
            body["inputs"][0]["search"]["query"]["query"]["bool"]["filter"][0]["range"]["data_end_time"]
                ["gt"],
            "{{period_end}}||-90s"
        );
        assert!(monitor_body(&m, &specs, &BTreeMap::new(), &BTreeMap::new(), " ").is_err());
    }

    #[test]
    fn search_and_alerts() {
        let body = monitor_search_by_name("my-monitor-name");
        let example = fixture_json("alerting/search-monitors-request.json");
        // DOC-ALERT's shorthand `{"monitor.name": "..."}` in the long form of the same
        // `match` query, plus `size`.
        assert_shape(&body, &example, &["size", "query.match.monitor.name"], &[]);
        assert_eq!(
            body["query"]["match"]["monitor.name"]["query"],
            "my-monitor-name"
        );
        let response = fixture("alerting/search-monitors-response.json").as_bytes();
        assert_eq!(
            parse_monitor_search(response, "my-monitor-name").unwrap(),
            Some(("eGQi7GcBRS7-AJEqfAnr".to_string(), None))
        );
        assert_eq!(parse_monitor_search(response, "my-monitor").unwrap(), None);
        // The stored form, `_source.monitor.name`, with sequence numbers.
        let wrapped = json!({"hits": {"hits": [
            {"_id": "a", "_seq_no": 3, "_primary_term": 1, "_source": {"monitor": {"name": "m"}}},
            {"_id": "b", "_source": {"monitor": {"name": "m-2"}}}
        ]}});
        assert_eq!(
            parse_monitor_search(&serde_json::to_vec(&wrapped).unwrap(), "m").unwrap(),
            Some(("a".to_string(), Some((3, 1))))
        );
        let alerts = parse_alerts(fixture("alerting/get-alerts-response.json").as_bytes()).unwrap();
        assert_eq!(
            alerts,
            [ClusterAlert {
                id: "eQURa3gBKo1jAh6qUo49".into(),
                monitor_id: "awUMa3gBKo1jAh6qu47E".into(),
                monitor_name: "Example_monitor_name".into(),
                trigger_name: "Example_trigger_name".into(),
                state: "ACTIVE".into(),
                severity: "1".into(),
                start_time: Some(1616704000492),
                error_message: None,
            }]
        );
        assert!(parse_alerts(b"{}").is_err());
        assert!(parse_alerts(br#"{"alerts":[{"id":"x"}]}"#).is_err());
    }

    #[test]
    fn mustache_of_every_placeholder() {
        let (m, _) = doc_ad_monitor();
        let all: String = crate::alert::template::PLACEHOLDERS
            .iter()
            .map(|(n, _)| format!("[{{{{{n}}}}}]"))
            .collect();
        let text = to_mustache(&all, TemplateSlot::Message, &m).unwrap();
        assert!(!text.contains("[]"), "{text}");
        assert!(text.contains("[{{ctx.results.0.hits.hits.0._source.entity.0.value}}]"));
        assert!(text.contains("[d]"));
        assert!(text.contains("[{{ctx.alert.id}}]"));
        assert!(to_mustache("{{explanation}}", TemplateSlot::Subject, &m).is_err());
        let mut odd = m.clone();
        odd.input = MonitorInput::Detector {
            detector: "d".into(),
            entity: Some("{{x}}".into()),
        };
        assert_eq!(
            to_mustache("{{entity}}", TemplateSlot::Subject, &odd).unwrap(),
            "{ {x}}"
        );
    }
}

/// The request bodies byte for byte: a detector's interval and window delay, parsed
/// once from the configuration, reach AD and Alerting as they did when they were text.
#[cfg(test)]
mod pinned_bodies {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Config;
    use crate::opensearch::ad::detector_body;

    const COUNTRY: &str = r###"{"name":"country-anomaly-detector","description":"waflog detector `country-anomaly-detector` (ewma in waflog): sum(UNK_country)","time_field":"timestamp","indices":["waf-logs*"],"feature_attributes":[{"feature_name":"UNK_country","feature_enabled":true,"aggregation_query":{"UNK_country":{"sum":{"field":"UNK_country"}}}}],"detection_interval":{"period":{"interval":1,"unit":"Minutes"}},"window_delay":{"period":{"interval":1,"unit":"Minutes"}},"shingle_size":8,"imputation_option":{"method":"ZERO"}}"###;
    const IP: &str = r###"{"name":"ip","description":"waflog detector `ip` (rcf in waflog): count","time_field":"timestamp","indices":["waf-logs*"],"feature_attributes":[{"feature_name":"n","feature_enabled":true,"aggregation_query":{"n":{"value_count":{"field":"timestamp"}}}}],"detection_interval":{"period":{"interval":5,"unit":"Minutes"}},"window_delay":{"period":{"interval":2,"unit":"Minutes"}},"shingle_size":4,"category_field":["httpRequest.clientIp"]}"###;
    const SEED_MONITOR: &str = r###"{"type":"monitor","monitor_type":"query_level_monitor","name":"UNK_source-Monitor","enabled":true,"schedule":{"period":{"interval":10,"unit":"MINUTES"}},"inputs":[{"search":{"indices":[".opendistro-anomaly-results*",".opensearch-anomaly-results*"],"query":{"size":1,"query":{"bool":{"filter":[{"range":{"data_end_time":{"from":"{{period_end}}||-10m","to":"{{period_end}}","include_lower":true,"include_upper":true}}},{"term":{"detector_id":{"value":"det-1"}}}],"must_not":[{"exists":{"field":"task_id"}}]}},"sort":[{"anomaly_grade":{"order":"desc"}},{"confidence":{"order":"desc"}}],"aggregations":{"max_anomaly_grade":{"max":{"field":"anomaly_grade"}}}}}}],"triggers":[{"name":"UNK_source-trigger","severity":"1","condition":{"script":{"source":"return ctx.results[0].aggregations.max_anomaly_grade.value != null && ctx.results[0].aggregations.max_anomaly_grade.value >= 0.7 && ctx.results[0].hits.hits[0]._source.confidence >= 0.7","lang":"painless"}},"actions":[{"name":"ops-webhook","destination_id":"w","message_template":{"source":"Monitor {{ctx.monitor.name}} just entered alert status. Please investigate the issue.\n  - Trigger: {{ctx.trigger.name}}\n  - Severity: {{ctx.trigger.severity}}\n  - Period start: {{ctx.periodStart}}\n  - Period end: {{ctx.periodEnd}}\n\nDetector source-anomaly-detector: anomaly grade {{ctx.results.0.aggregations.max_anomaly_grade.value}}, confidence {{ctx.results.0.hits.hits.0._source.confidence}}","lang":"mustache"},"subject_template":{"source":"waflog alert: {{ctx.monitor.name}} / {{ctx.trigger.name}} (severity {{ctx.trigger.severity}})","lang":"mustache"},"throttle_enabled":false},{"name":"security-sns","destination_id":"s","message_template":{"source":"Monitor {{ctx.monitor.name}} just entered alert status. Please investigate the issue.\n  - Trigger: {{ctx.trigger.name}}\n  - Severity: {{ctx.trigger.severity}}\n  - Period start: {{ctx.periodStart}}\n  - Period end: {{ctx.periodEnd}}\n\nDetector source-anomaly-detector: anomaly grade {{ctx.results.0.aggregations.max_anomaly_grade.value}}, confidence {{ctx.results.0.hits.hits.0._source.confidence}}","lang":"mustache"},"subject_template":{"source":"waflog alert: {{ctx.monitor.name}} / {{ctx.trigger.name}} (severity {{ctx.trigger.severity}})","lang":"mustache"},"throttle_enabled":false}]}]}"###;

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn detector_and_monitor_bodies_are_pinned() {
        let defaults = DetectorSpec::defaults();
        let body = detector_body(&defaults[1], "waf-logs*", "timestamp").unwrap();
        assert_eq!(serde_json::to_string(&body.unwrap()).unwrap(), COUNTRY);
        let config = Config::from_toml(
            "[[detectors]]\nname = \"ip\"\ninterval = \"5m\"\nwindow_delay = \"90s\"\nshingle_size = 4\ncategory_field = \"httpRequest.clientIp\"\nfeatures = [{ name = \"n\", aggregation = \"count\" }]\n[detectors.algorithm]\ntype = \"rcf\"\n",
            std::path::Path::new("waflog.toml"),
        )
        .unwrap();
        let spec = &config.detector_specs()[0];
        let body = detector_body(spec, "waf-logs*", "timestamp").unwrap();
        assert_eq!(serde_json::to_string(&body.unwrap()).unwrap(), IP);
        let body = monitor_body(
            &Monitor::seed(),
            &defaults,
            &ids(&[("source-anomaly-detector", "det-1")]),
            &ids(&[("ops-webhook", "w"), ("security-sns", "s")]),
            "waf-results*",
        )
        .unwrap();
        assert_eq!(serde_json::to_string(&body).unwrap(), SEED_MONITOR);
    }
}
