//! A responder's verdict on an alert: feedback to the detectors (`waflog alerts ack
//! ID --not-anomaly`), kept on the alert, its incident and the results.

use serde::{Deserialize, Serialize};

/// A responder's verdict on an alert (feedback to the detectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// The intervals it fired on were normal: the alert (and the alerts merged into
    /// its incident) complete with this label, and the detector learns the level
    /// as normal at full weight (see [`crate::pipeline::Pipeline::acknowledge`]).
    NotAnomaly,
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Label::NotAnomaly => "not_anomaly",
        })
    }
}
