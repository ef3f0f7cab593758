//! Incidents: anomalies that share a cause in the same or overlapping intervals,
//! grouped so that one cause raises one alert.
//!
//! A flood from one client moves every count-like feature at once (the request
//! count, and the sums of `B_action`, `B_httpstatus`, `uncommon_method`,
//! `UNK_source` ... that grow with its volume); without incidents each detector's
//! monitor alerts on its own. The [`Correlator`] reads every anomalous result as the
//! intervals close, names its cause from the top contributors the engine already
//! computed, and gives it the `incident_id` of the open [`Incident`] with that
//! cause (or of a new one). The monitors then alert on incidents: the first alert of
//! an incident carries the whole incident (its cause, every detector and feature it
//! moved, actual against expected); alerts of other monitors on the same incident
//! are merged into it, silently (see [`crate::alert::evaluate`]).
//!
//! Causes, tried in this order on the feature that moved most (its largest share of
//! the anomaly), for a rise of `excess = actual - expected`:
//!
//! 1. **Clients**: the `httpRequest.clientIp` contributors of an open client incident
//!    carry at least [`JOIN_SHARE`] of the excess: it joins that incident. Otherwise
//!    the top one to three clients together carry at least [`CLIENT_SHARE`] of the
//!    excess (and at least [`MIN_CLIENT_RECORDS`] records above their baseline): a
//!    new client incident naming them and their shares.
//! 2. **Volume**: in the same interval the request count (a feature equal to the
//!    records of the interval) rose by a ratio `R` and this feature rose by a ratio
//!    within `[R / 3, 2 R]`: it moved with the volume (shares unchanged) and joins the
//!    incident of the request count. For a count that a single client's flood
//!    raised, this needs the client among its contributors or an excess under
//!    [`SMALL_EXCESS`] records (too few to tell), so an independent episode during a
//!    flood stays apart. The request count itself, not carried by few clients, is a
//!    volume incident.
//! 3. **Category**: anything else is a shift of that feature (for one entity), with
//!    the values of its record field that carry half the excess when the
//!    contributors name them (`UNK_country` with `httpRequest.country: XX, YY`);
//!    results of the same feature and entity join it.
//!
//! An incident stays open while anomalies keep joining it; it closes when event time
//! has passed its last anomalous interval by [`QUIET_MS`] (15 minutes: longer than
//! the two quiet periods a one-minute alert needs to complete, so an alert and its
//! incident end together). Independent episodes at the same time have different
//! causes and stay separate incidents.

use serde::{Deserialize, Serialize};

use crate::detect::AnomalyResult;
use crate::detect::result::Contributors;
use crate::timestamp::to_rfc3339;

use crate::text::{lenient_f64, num};

/// The client field of the contributors.
pub const CLIENT_FIELD: &str = "httpRequest.clientIp";
/// Share of the excess the top one to three clients must carry to be the cause.
pub const CLIENT_SHARE: f64 = 0.5;
/// Share of the excess an open client incident's clients must carry for a result
/// to join it.
pub const JOIN_SHARE: f64 = 0.3;
/// Records above their baseline the named clients must send to be a cause (fewer
/// is noise).
pub const MIN_CLIENT_RECORDS: f64 = 3.0;
/// An excess (records) too small to tell who carried it.
pub const SMALL_EXCESS: f64 = 10.0;
/// Event time after an incident's last anomalous interval at which it closes.
pub const QUIET_MS: i64 = 15 * 60_000;
/// Most incidents kept open at once; beyond, the oldest is closed.
pub const MAX_OPEN: usize = 1_000;

/// What an incident's anomalies have in common.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// One client (or a few) carries most of the excess requests.
    Clients {
        /// The client field (`httpRequest.clientIp`).
        field: String,
        /// The clients, largest share first.
        clients: Vec<ClientShare>,
    },
    /// The volume changed: every count-like feature moved together.
    Volume {
        /// Requests in the interval over the expected requests.
        #[serde(with = "lenient_f64")]
        ratio: f64,
    },
    /// One feature shifted on its own (a categorical shift in one field).
    Category {
        /// The feature that moved.
        feature: String,
        /// The entity, for per-entity detectors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entity: Option<String>,
        /// The record field whose values carry the shift, when one does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// Those values, largest excess first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        values: Vec<String>,
    },
}

/// A client and its share of the excess.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientShare {
    /// The client IP.
    pub value: String,
    /// Its records above its baseline over the excess of the feature, in [0, 1].
    #[serde(with = "lenient_f64")]
    pub share: f64,
    /// Its records in the interval.
    pub count: u64,
}

/// One detector's feature an incident moved, at its most anomalous interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    /// The detector.
    pub detector: String,
    /// The entity, for per-entity detectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The feature.
    pub feature: String,
    /// Its value in the most anomalous interval.
    #[serde(with = "lenient_f64")]
    pub actual: f64,
    /// Its expected value there.
    #[serde(with = "lenient_f64")]
    pub expected: f64,
    /// The highest anomaly grade.
    #[serde(with = "lenient_f64")]
    pub anomaly_grade: f64,
    /// Start of that interval, epoch ms.
    pub data_start_time: i64,
    /// Anomalous intervals of this detector in the incident.
    pub anomalies: u64,
}

/// Whether an incident may still grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncidentState {
    /// Anomalies may still join it.
    Open,
    /// Event time passed its last anomaly by [`QUIET_MS`], or the input ended.
    Closed,
}

/// Anomalies that share a cause: see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// ID (`inc-` and 12 hex digits), also on each of its anomaly results.
    pub incident_id: String,
    /// Open or closed.
    pub state: IncidentState,
    /// The cause.
    pub cause: Cause,
    /// The cause in words.
    pub summary: String,
    /// Start of its first anomalous interval, epoch ms.
    pub data_start_time: i64,
    /// End of its last anomalous interval, epoch ms.
    pub data_end_time: i64,
    /// Its anomalous results.
    pub anomalies: u64,
    /// Every detector and feature it moved, in the order they joined.
    pub moved: Vec<Moved>,
    /// The alert that notified it (set in the documents the pipeline hands on when
    /// alerting is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// A responder's verdict on its alert (`waflog alerts ack ID --not-anomaly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<super::label::Label>,
}

impl Cause {
    /// The cause in words (record-derived values are escaped by the callers that
    /// print it).
    pub fn describe(&self) -> String {
        match self {
            Cause::Clients { clients, .. } => {
                let list: Vec<String> = clients
                    .iter()
                    .map(|c| {
                        format!(
                            "{} ({} requests in the interval, {:.0}% of the excess)",
                            c.value,
                            c.count,
                            c.share * 100.0
                        )
                    })
                    .collect();
                format!(
                    "{} carr{} most of the excess requests: {}",
                    if clients.len() == 1 {
                        "one client"
                    } else {
                        "a few clients"
                    },
                    if clients.len() == 1 { "ies" } else { "y" },
                    list.join(", ")
                )
            }
            Cause::Volume { ratio } => format!(
                "a volume change: the requests are {ratio:.1} times the expected and every count-like feature moved with them"
            ),
            Cause::Category {
                feature,
                entity,
                field,
                values,
            } => {
                let mut s = format!("a shift in {feature}");
                if let Some(e) = entity {
                    s.push_str(&format!(" for {e}"));
                }
                if let Some(f) = field
                    && !values.is_empty()
                {
                    s.push_str(&format!(" ({f}: {})", values.join(", ")));
                }
                s
            }
        }
    }
}

impl Incident {
    /// The incident as text, several lines without a trailing newline (not
    /// escaped: [`crate::alert::Explanation::render`] escapes every line).
    pub fn render(&self) -> String {
        let mut lines = vec![
            format!("Incident {}: {}", self.incident_id, self.summary),
            format!(
                "It moved {} detector feature{} since {}:",
                self.moved.len(),
                if self.moved.len() == 1 { "" } else { "s" },
                to_rfc3339(self.data_start_time)
            ),
        ];
        for m in &self.moved {
            let entity = m
                .entity
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            lines.push(format!(
                "  - {}{entity}: {} = {} (expected {:.1}), grade {:.2}",
                m.detector,
                m.feature,
                num(m.actual),
                m.expected,
                m.anomaly_grade
            ));
        }
        lines.join("\n")
    }

    fn join(&mut self, r: &AnomalyResult, mv: &Move) {
        self.data_start_time = self.data_start_time.min(r.data_start_time);
        self.data_end_time = self.data_end_time.max(r.data_end_time);
        self.anomalies = self.anomalies.saturating_add(1);
        let entity = crate::alert::entity_key(r);
        match self.moved.iter_mut().find(|m| {
            m.detector == r.detector_name && m.entity == entity && m.feature == mv.feature
        }) {
            Some(m) => {
                m.anomalies = m.anomalies.saturating_add(1);
                if r.anomaly_grade >= m.anomaly_grade {
                    m.actual = mv.actual;
                    m.expected = mv.expected;
                    m.anomaly_grade = r.anomaly_grade;
                    m.data_start_time = r.data_start_time;
                }
            }
            None => self.moved.push(Moved {
                detector: r.detector_name.clone(),
                entity,
                feature: mv.feature.clone(),
                actual: mv.actual,
                expected: mv.expected,
                anomaly_grade: r.anomaly_grade,
                data_start_time: r.data_start_time,
                anomalies: 1,
            }),
        }
    }
}

/// An incident as a line of the results output: `{"type":"incident", ...}` then
/// the incident's fields. Readers of results tell it from a result by its first
/// field ([`IncidentDocument::from_line`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentDocument {
    /// Always `incident`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
}

/// How an incident document's line starts.
pub const DOCUMENT_PREFIX: &str = r#"{"type":"incident""#;

impl IncidentDocument {
    /// The document of `incident`.
    pub fn new(incident: &Incident) -> IncidentDocument {
        IncidentDocument {
            kind: "incident".into(),
            incident: incident.clone(),
        }
    }

    /// `None` when `line` is not an incident document (a result, say);
    /// `Some(Err(..))` when it starts as one but does not parse.
    pub fn from_line(line: &[u8]) -> Option<Result<Incident, serde_json::Error>> {
        if !line
            .trim_ascii_start()
            .starts_with(DOCUMENT_PREFIX.as_bytes())
        {
            return None;
        }
        Some(serde_json::from_slice::<IncidentDocument>(line).map(|d| d.incident))
    }
}

/// The feature of a result that moved most.
struct Move {
    feature: String,
    actual: f64,
    expected: f64,
    /// `actual - expected`.
    excess: f64,
    /// The value equals the records of the interval: the request count.
    volume: bool,
}

fn top_move(r: &AnomalyResult) -> Option<Move> {
    let i = r
        .relevant_attribution
        .iter()
        .enumerate()
        .filter(|(_, a)| a.data.is_finite())
        .max_by(|a, b| a.1.data.total_cmp(&b.1.data))
        .map_or(0, |(i, _)| i);
    let f = r.feature_data.get(i)?;
    let expected = r
        .expected_values
        .first()?
        .value_list
        .iter()
        .find(|v| v.feature_id == f.feature_id)?
        .data;
    if !(f.data.is_finite() && expected.is_finite()) {
        return None;
    }
    Some(Move {
        feature: f.feature_name.clone(),
        actual: f.data,
        expected,
        excess: f.data - expected,
        // A count equal to the records, not an indicator's sum (a share of 1 of
        // `B_action` during an all-blocked episode is not the volume).
        volume: r.records > 0
            && (f.data - r.records as f64).abs() < 0.5
            && !crate::names::INDICATORS.contains(&f.feature_name.as_str()),
    })
}

/// The client contributors of a result: (client, count, excess over its baseline),
/// largest excess first.
fn clients(r: &AnomalyResult) -> Vec<(String, u64, f64)> {
    let mut v: Vec<(String, u64, f64)> = field_top(r, CLIENT_FIELD)
        .map(|c| {
            c.top
                .iter()
                .filter(|t| t.expected.is_finite())
                .map(|t| (t.value.clone(), t.count, t.count as f64 - t.expected))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    v
}

fn field_top<'a>(r: &'a AnomalyResult, field: &str) -> Option<&'a Contributors> {
    r.contributors.iter().flatten().find(|c| c.field == field)
}

/// The volume of one interval: its request count's rise and incident.
struct VolumeContext {
    start: i64,
    end: i64,
    ratio: f64,
    incident: String,
    clients: bool,
}

/// Groups anomalous results into incidents: see the module docs. Saved in the
/// `--state` file with the open incidents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Correlator {
    /// The open incidents, oldest first.
    #[serde(default)]
    open: Vec<Incident>,
    /// Incidents made so far (for their IDs).
    #[serde(default)]
    made: u64,
}

impl Correlator {
    /// A correlator with no incident.
    pub fn new() -> Correlator {
        Correlator::default()
    }

    /// The open incidents, oldest first.
    pub fn open(&self) -> &[Incident] {
        &self.open
    }

    /// The open incident `id`.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.open.iter().find(|i| i.incident_id == id)
    }

    /// Gives open incident `id` a responder's `label`; false when it is not open.
    pub fn label(&mut self, id: &str, label: super::label::Label) -> bool {
        match self.open.iter_mut().find(|i| i.incident_id == id) {
            Some(i) => {
                i.label = Some(label);
                true
            }
            None => false,
        }
    }

    /// Gives each anomalous result of `results` (the results of intervals that just
    /// closed, any detectors) its `incident_id`, and returns the incidents that
    /// closed: event time (the latest end among `results`) passed their last
    /// anomalous interval by [`QUIET_MS`].
    pub fn correlate(&mut self, results: &mut [AnomalyResult]) -> Vec<Incident> {
        // Request counts first: the other counts of their interval are read
        // against them.
        let mut order: Vec<(usize, Move)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_anomaly() && r.incident_id.is_none())
            .filter_map(|(i, r)| top_move(r).map(|m| (i, m)))
            .collect();
        order.sort_by_key(|(i, m)| (!m.volume, *i));
        let mut volumes: Vec<VolumeContext> = Vec::new();
        for (i, mv) in order {
            let Some(r) = results.get(i) else { continue };
            let id = self.place(r, &mv, &volumes);
            if mv.volume && mv.expected > 0.0 && mv.actual / mv.expected > 1.5 {
                let clients = self
                    .get(&id)
                    .is_some_and(|inc| matches!(inc.cause, Cause::Clients { .. }));
                volumes.push(VolumeContext {
                    start: r.data_start_time,
                    end: r.data_end_time,
                    ratio: mv.actual / mv.expected,
                    incident: id.clone(),
                    clients,
                });
            }
            if let Some(r) = results.get_mut(i) {
                r.incident_id = Some(id);
            }
        }
        let watermark = results.iter().map(|r| r.data_end_time).max();
        match watermark {
            Some(w) => self.close_before(w.saturating_sub(QUIET_MS)),
            None => Vec::new(),
        }
    }

    /// Closes every open incident (the end of the input) and returns them.
    pub fn close_all(&mut self) -> Vec<Incident> {
        self.close_before(i64::MAX)
    }

    fn close_before(&mut self, limit: i64) -> Vec<Incident> {
        let mut closed = Vec::new();
        let mut k = 0;
        while k < self.open.len() {
            // Oldest first: closed when quiet long enough, or while too many are
            // open.
            if self.open[k].data_end_time <= limit || self.open.len() > MAX_OPEN {
                let mut inc = self.open.remove(k);
                inc.state = IncidentState::Closed;
                closed.push(inc);
            } else {
                k += 1;
            }
        }
        closed
    }

    /// The incident of one anomalous result: joined or new; returns its ID.
    fn place(&mut self, r: &AnomalyResult, mv: &Move, volumes: &[VolumeContext]) -> String {
        let cl = clients(r);
        let rise = mv.excess > 0.0;
        // 1. Clients of an open client incident carry the excess.
        if rise {
            let carried = |inc: &Incident| -> f64 {
                let Cause::Clients { clients: known, .. } = &inc.cause else {
                    return 0.0;
                };
                cl.iter()
                    .filter(|(v, _, _)| known.iter().any(|k| &k.value == v))
                    .map(|(_, _, x)| x.max(0.0))
                    .sum()
            };
            if let Some(k) = self
                .open
                .iter()
                .rposition(|inc| carried(inc) >= (JOIN_SHARE * mv.excess).max(1.0))
            {
                if mv.volume {
                    // The request count names the clients best.
                    if let Some(c) = new_clients(&cl, mv) {
                        self.open[k].cause = c;
                        self.open[k].summary = self.open[k].cause.describe();
                    }
                }
                self.open[k].join(r, mv);
                return self.open[k].incident_id.clone();
            }
            if let Some(cause) = new_clients(&cl, mv) {
                return self.start(r, mv, cause);
            }
        }
        // 2. It moved with the volume of its interval.
        if rise && !mv.volume && mv.expected > 0.0 {
            let ratio = mv.actual / mv.expected;
            let along = volumes.iter().find(|v| {
                v.start < r.data_end_time
                    && r.data_start_time < v.end
                    && ratio >= v.ratio / 3.0
                    && ratio <= v.ratio * 2.0
            });
            if let Some(v) = along {
                let ok = !v.clients || mv.excess < SMALL_EXCESS || {
                    let ips = self.get(&v.incident).map(|inc| match &inc.cause {
                        Cause::Clients { clients, .. } => clients.clone(),
                        _ => Vec::new(),
                    });
                    ips.is_some_and(|ips| {
                        cl.iter()
                            .any(|(c, n, _)| *n > 0 && ips.iter().any(|k| &k.value == c))
                    })
                };
                if ok && let Some(k) = self.open.iter().position(|i| i.incident_id == v.incident) {
                    self.open[k].join(r, mv);
                    return self.open[k].incident_id.clone();
                }
            }
        }
        // The request count, not carried by few clients: a volume change.
        if mv.volume {
            if let Some(k) = self
                .open
                .iter()
                .rposition(|i| matches!(i.cause, Cause::Volume { .. }))
            {
                self.open[k].join(r, mv);
                return self.open[k].incident_id.clone();
            }
            let ratio = if mv.expected > 0.0 {
                mv.actual / mv.expected
            } else {
                f64::NAN
            };
            return self.start(r, mv, Cause::Volume { ratio });
        }
        // 3. A shift of this feature.
        let entity = crate::alert::entity_key(r);
        if let Some(k) = self.open.iter().rposition(|i| {
            matches!(&i.cause, Cause::Category { feature, entity: e, .. }
                if feature == &mv.feature && e == &entity)
        }) {
            self.open[k].join(r, mv);
            return self.open[k].incident_id.clone();
        }
        let (field, values) = shifted_values(r, mv);
        self.start(
            r,
            mv,
            Cause::Category {
                feature: mv.feature.clone(),
                entity,
                field,
                values,
            },
        )
    }

    fn start(&mut self, r: &AnomalyResult, mv: &Move, cause: Cause) -> String {
        self.made = self.made.saturating_add(1);
        let id = format!(
            "inc-{:012x}",
            crate::text::fnv1a(&[
                &self.made.to_le_bytes(),
                &r.data_start_time.to_le_bytes(),
                r.detector_name.as_bytes(),
                mv.feature.as_bytes(),
            ]) & 0xFFFF_FFFF_FFFF
        );
        let mut inc = Incident {
            incident_id: id.clone(),
            state: IncidentState::Open,
            summary: cause.describe(),
            cause,
            data_start_time: r.data_start_time,
            data_end_time: r.data_end_time,
            anomalies: 0,
            moved: Vec::new(),
            alert_id: None,
            label: None,
        };
        inc.join(r, mv);
        self.open.push(inc);
        id
    }
}

/// A client cause from the client contributors, if one to three of them carry
/// [`CLIENT_SHARE`] of the excess.
fn new_clients(cl: &[(String, u64, f64)], mv: &Move) -> Option<Cause> {
    if mv.excess <= 0.0 {
        return None;
    }
    let mut sum = 0.0;
    let mut chosen = Vec::new();
    for (value, count, x) in cl.iter().take(3) {
        if *x <= 0.0 || *x < 0.1 * mv.excess {
            break;
        }
        sum += x;
        chosen.push(ClientShare {
            value: value.clone(),
            share: (x / mv.excess).clamp(0.0, 1.0),
            count: *count,
        });
        if sum >= CLIENT_SHARE * mv.excess {
            break;
        }
    }
    (sum >= CLIENT_SHARE * mv.excess && sum >= MIN_CLIENT_RECORDS).then(|| Cause::Clients {
        field: CLIENT_FIELD.to_string(),
        clients: chosen,
    })
}

/// The record field an indicator is computed from (a feature that is not an
/// indicator is taken as a field path itself).
fn field_of(feature: &str) -> &str {
    use crate::names as n;
    match feature {
        n::K_COUNTRY | n::UNK_COUNTRY => "httpRequest.country",
        n::K_ACTION | n::B_ACTION => n::ACTION,
        n::O_HTTPSTATUS | n::B_HTTPSTATUS => n::HTTP_STATUS,
        n::COMMON_METHOD | n::UNCOMMON_METHOD => "httpRequest.httpMethod",
        n::K_SOURCE | n::UNK_SOURCE => n::HTTP_SOURCE_NAME,
        other => other,
    }
}

/// The values of the feature's own record field (`httpRequest.country` for
/// `UNK_country`) that carry half the excess, when its contributors name them.
fn shifted_values(r: &AnomalyResult, mv: &Move) -> (Option<String>, Vec<String>) {
    if mv.excess <= 0.0 {
        return (None, Vec::new());
    }
    let field = field_of(&mv.feature);
    for c in r.contributors.iter().flatten() {
        if c.field != field {
            continue;
        }
        let mut sum = 0.0;
        let mut values = Vec::new();
        for t in c.top.iter().take(3) {
            let x = t.count as f64 - t.expected;
            if !x.is_finite() || x <= 0.0 {
                break;
            }
            sum += x;
            values.push(t.value.clone());
            if sum >= 0.5 * mv.excess {
                return (Some(c.field.clone()), values);
            }
        }
    }
    (None, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Score;
    use crate::detect::result::Contributor;

    fn result(
        detector: &str,
        feature: &str,
        (actual, expected): (f64, f64),
        minute: i64,
        top: &[(&str, u64, f64)],
        records: u64,
    ) -> AnomalyResult {
        let score = Score {
            anomaly_score: 9.0,
            anomaly_grade: 0.9,
            confidence: 1.0,
            threshold: 5.0,
            expected: vec![expected],
            attribution: vec![1.0],
            shifted_categories: vec![],
            band: vec![],
        };
        let t0 = 1_700_000_000_000 / 60_000 * 60_000 + minute * 60_000;
        let mut r = AnomalyResult::from_score(
            detector,
            &[feature.into()],
            &[actual],
            &score,
            (t0, t0 + 60_000),
            t0 + 60_000,
        );
        r.records = records;
        r.contributors = Some(vec![Contributors {
            field: CLIENT_FIELD.into(),
            top: top
                .iter()
                .map(|(v, c, e)| Contributor {
                    value: (*v).into(),
                    count: *c,
                    expected: *e,
                })
                .collect(),
        }]);
        r
    }

    #[test]
    fn a_flood_is_one_incident_and_an_independent_shift_another() {
        let mut c = Correlator::new();
        let ip = "203.0.113.9";
        let mut batch = vec![
            result(
                "count",
                "request_count",
                (24_000.0, 1_200.0),
                0,
                &[(ip, 22_700, 0.0)],
                24_000,
            ),
            result(
                "blocks",
                "B_action",
                (24.0, 1.3),
                0,
                &[(ip, 21, 0.0)],
                24_000,
            ),
            // Few records, the flood's client not among them: moved with the volume.
            result(
                "methods",
                "uncommon_method",
                (8.0, 0.4),
                0,
                &[("198.51.100.1", 1, 0.0)],
                24_000,
            ),
            // An unknown-country episode from many clients: its own incident.
            result(
                "country",
                "UNK_country",
                (600.0, 12.0),
                0,
                &[("198.51.100.2", 2, 0.1)],
                24_000,
            ),
        ];
        assert!(c.correlate(&mut batch).is_empty());
        let ids: Vec<_> = batch
            .iter()
            .map(|r| r.incident_id.clone().unwrap())
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[0], ids[2]);
        assert_ne!(ids[0], ids[3]);
        let flood = c.get(&ids[0]).unwrap();
        assert_eq!(flood.moved.len(), 3);
        assert!(
            flood
                .summary
                .starts_with("one client carries most of the excess requests: 203.0.113.9 ("),
            "{}",
            flood.summary
        );
        assert!(
            flood
                .render()
                .contains("  - blocks: B_action = 24 (expected 1.3), grade 0.90")
        );
        // The next minute joins; 15 quiet minutes later both close.
        let mut next = vec![result(
            "blocks",
            "B_action",
            (20.0, 1.3),
            1,
            &[(ip, 19, 0.0)],
            24_000,
        )];
        c.correlate(&mut next);
        assert_eq!(next[0].incident_id.as_deref(), Some(ids[0].as_str()));
        let mut quiet = vec![result("blocks", "B_action", (1.0, 1.3), 17, &[], 1_200)];
        quiet[0].anomaly_grade = 0.0;
        let closed = c.correlate(&mut quiet);
        assert_eq!(closed.len(), 2);
        assert!(quiet[0].incident_id.is_none());
        assert!(closed.iter().all(|i| i.state == IncidentState::Closed));
        // A volume change with no dominant client.
        let mut surge = vec![
            result(
                "count",
                "request_count",
                (3_600.0, 1_200.0),
                30,
                &[("198.51.100.3", 30, 20.0)],
                3_600,
            ),
            result("blocks", "B_action", (4.0, 1.3), 30, &[], 3_600),
        ];
        c.correlate(&mut surge);
        assert_eq!(surge[0].incident_id, surge[1].incident_id);
        assert!(matches!(c.open()[0].cause, Cause::Volume { .. }));
        // The document round-trips, and is told from a result.
        let line = serde_json::to_vec(&IncidentDocument::new(&c.open()[0])).unwrap();
        let back = IncidentDocument::from_line(&line).unwrap().unwrap();
        assert_eq!(&back, &c.open()[0]);
        assert!(IncidentDocument::from_line(br#"{"detector_id":"x"}"#).is_none());
        // A result without expected values is left alone.
        let mut odd = vec![result("x", "f", (1.0, 0.0), 31, &[], 1)];
        odd[0].expected_values.clear();
        c.correlate(&mut odd);
        assert!(odd[0].incident_id.is_none());
    }
}
