//! Several detectors on the same intervals, one score (`type = "ensemble"`).
//!
//! Each member is a detector of its own (`ewma_likelihood`, `artime`, or another
//! ensemble) whose `anomaly_score` lies in [0, 1]. A member *votes* its score times
//! its `weight` when the score reaches its `min_score` (0 otherwise); the ensemble's
//! `anomaly_score` is the largest vote, and the interval is anomalous when that
//! reaches the ensemble's `threshold` (grade `(score - threshold) / (1 - threshold)`,
//! as `ewma_likelihood` grades). Taking the largest vote keeps each member's
//! strength: complementary detectors (a pattern learner that flags a window of the
//! series never seen before, a likelihood that flags an unusual run of prediction
//! errors or a value outside the range seen so far) each catch what the other misses,
//! and a member whose ordinary scores are noise can be heard only at its extremes
//! (`min_score`). This is the score-level "max" combination of ensemble anomaly
//! detection (Aggarwal & Sathe 2017, *Outlier Ensembles*, section 5.2: maximum
//! combination favours the detector that sees the point as most anomalous).
//!
//! While a member is still warming up (confidence 0, e.g. `artime` before the end of
//! its warm-up), the other members vote without their `min_score`, so a series
//! shorter than the longest warm-up is still watched.
//!
//! The expected values and band come from the first member that reports them; the
//! attribution from the member with the largest vote. Every member learns every
//! interval, and the state is the members' states in order.

use serde::{Deserialize, Serialize};

use super::{Detector, IntervalFeatures, Score};

/// One member of an [`Ensemble`]: its model, its weight and the smallest score at
/// which it votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's model.
    pub model: MemberModel,
    /// Its vote is `weight * score`.
    pub weight: f64,
    /// Scores below this do not vote.
    pub min_score: f64,
}

/// The member models an ensemble can hold (those whose score lies in [0, 1]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MemberModel {
    /// See [`super::likelihood::EwmaLikelihood`].
    EwmaLikelihood(Box<super::likelihood::EwmaLikelihood>),
    /// See [`super::artime::ArTime`].
    Artime(super::artime::ArTime),
    /// See [`super::cad::Cad`].
    Cad(Box<super::cad::Cad>),
    /// A nested ensemble.
    Ensemble(Box<Ensemble>),
}

impl MemberModel {
    fn detector(&mut self) -> &mut dyn Detector {
        match self {
            MemberModel::EwmaLikelihood(m) => m.as_mut(),
            MemberModel::Artime(m) => m,
            MemberModel::Cad(m) => m.as_mut(),
            MemberModel::Ensemble(m) => m.as_mut(),
        }
    }
}

/// The ensemble detector (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    members: Vec<Member>,
    threshold: f64,
}

impl Ensemble {
    /// An ensemble of `members` grading scores at and above `threshold` (in (0, 1)).
    pub fn new(members: Vec<Member>, threshold: f64) -> Ensemble {
        Ensemble { members, threshold }
    }
}

impl Detector for Ensemble {
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        let scores: Vec<Score> = self
            .members
            .iter_mut()
            .map(|m| m.model.detector().process(interval))
            .collect();
        // While a member is still warming up (confidence 0), the others vote
        // without their `min_score`: a short series is not left unwatched.
        let all_warm = scores.iter().all(|s| s.confidence > 0.0);
        let mut best: Option<(f64, Score)> = None;
        let mut expected: Option<(Vec<f64>, Vec<f64>)> = None;
        let mut confidence = 0.0_f64;
        for (m, s) in self.members.iter().zip(scores) {
            let min_score = if all_warm { m.min_score } else { 0.0 };
            let vote = if s.anomaly_score >= min_score && s.anomaly_score.is_finite() {
                (m.weight * s.anomaly_score).clamp(0.0, 1.0)
            } else {
                0.0
            };
            confidence = confidence.max(s.confidence);
            if expected.is_none() && !s.band.is_empty() {
                expected = Some((s.expected.clone(), s.band.clone()));
            }
            if best.as_ref().is_none_or(|(v, _)| vote > *v) {
                best = Some((vote, s));
            }
        }
        let Some((score, top)) = best else {
            return Score {
                anomaly_score: 0.0,
                anomaly_grade: 0.0,
                confidence: 0.0,
                threshold: self.threshold,
                expected: interval.values.to_vec(),
                attribution: vec![1.0 / interval.values.len().max(1) as f64; interval.values.len()],
                shifted_categories: Vec::new(),
                band: Vec::new(),
            };
        };
        let grade = if confidence > 0.0 && score >= self.threshold && score > 0.0 {
            ((score - self.threshold) / (1.0 - self.threshold)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (expected, band) = expected.unwrap_or((top.expected, top.band));
        Score {
            anomaly_score: score,
            anomaly_grade: grade,
            confidence,
            threshold: self.threshold,
            expected,
            attribution: top.attribution,
            shifted_categories: Vec::new(),
            band,
        }
    }

    fn snapshot(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    /// Every member is told; true when one of them took it.
    fn learn_normal(&mut self, values: &[f64], end_ms: i64) -> bool {
        self.members.iter_mut().fold(false, |took, m| {
            m.model.detector().learn_normal(values, end_ms) | took
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::AlgorithmSpec;
    use crate::detect::testutil::feed;

    fn ensemble(spec: &AlgorithmSpec) -> Ensemble {
        match spec.member_model(1) {
            Some(MemberModel::Ensemble(e)) => *e,
            other => panic!("not an ensemble: {other:?}"),
        }
    }

    /// A series that repeats a 24-step pattern, with a level never seen before at
    /// step 700.
    fn series() -> Vec<f64> {
        (0..900)
            .map(|i| {
                if i == 700 {
                    250.0
                } else {
                    100.0 + 20.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()
                }
            })
            .collect()
    }

    #[test]
    fn the_score_is_the_largest_vote() {
        let xs = series();
        let members = [
            AlgorithmSpec::artime_default(),
            AlgorithmSpec::likelihood_default(),
        ];
        let alone: Vec<Vec<Score>> = members
            .iter()
            .map(|m| feed(m.build(1).as_mut(), &xs))
            .collect();
        let mut e = ensemble(&AlgorithmSpec::artime_likelihood_ensemble());
        let together = feed(&mut e, &xs);
        for (i, s) in together.iter().enumerate() {
            let a = alone[0][i].anomaly_score;
            let l = alone[1][i].anomaly_score;
            let warm = alone[0][i].confidence > 0.0 && alone[1][i].confidence > 0.0;
            let expected = a.max(if l >= 0.99 || !warm { l } else { 0.0 });
            assert_eq!(s.anomaly_score, expected, "row {i}");
            assert_eq!(
                s.anomaly_grade > 0.0,
                expected >= 0.44 && s.confidence > 0.0
            );
        }
        // The new level is flagged where it arrives, with the largest grade.
        assert!(together[700].anomaly_grade > 0.5, "{:?}", together[700]);
        // Expected values and band are the likelihood's (artime reports no band).
        assert_eq!(together[650].expected, alone[1][650].expected);
        assert_eq!(together[650].band, alone[1][650].band);
        // Weights scale a vote; min_score silences it.
        let half = AlgorithmSpec::Ensemble {
            members: vec![crate::detect::spec::EnsembleMember {
                weight: 0.5,
                min_score: 0.0,
                algorithm: AlgorithmSpec::likelihood_default(),
            }],
            threshold: 0.2,
        };
        let scores = feed(&mut ensemble(&half), &xs);
        for (s, l) in scores.iter().zip(&alone[1]) {
            assert_eq!(s.anomaly_score, 0.5 * l.anomaly_score);
        }
    }

    #[test]
    fn feedback_reaches_the_members_that_take_it() {
        let xs = series();
        // The default ensemble: its `ewma_likelihood` member takes the level.
        let mut e = ensemble(&AlgorithmSpec::artime_likelihood_ensemble());
        feed(&mut e, &xs[..600]);
        let mut told = e.clone();
        assert!(told.learn_normal(&[250.0], 600 * 60_000));
        // Its expected value (the likelihood's ewma baseline) moves toward the level,
        // by one interval learnt at full weight (the ewma holds no level here).
        let before = feed(&mut e, &[250.0])[0].expected[0];
        let after = feed(&mut told, &[250.0])[0].expected[0];
        assert!(
            before < 130.0 && after > before + 1.0,
            "{before} -> {after}"
        );
        // Models with no level to move say they did not take it.
        let no_level: AlgorithmSpec = toml::from_str(
            "type = \"ensemble\"\n[[members]]\ntype = \"cad\"\n[[members]]\ntype = \"artime\"",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut none = ensemble(&no_level);
        feed(&mut none, &xs[..100]);
        assert!(!none.learn_normal(&[250.0], 100 * 60_000));
        for alone in [
            AlgorithmSpec::artime_default(),
            AlgorithmSpec::likelihood_default(),
        ] {
            let mut d = alone.build(1);
            feed(d.as_mut(), &xs[..100]);
            let took = d.learn_normal(&[250.0], 100 * 60_000);
            assert_eq!(
                took,
                alone == AlgorithmSpec::likelihood_default(),
                "{alone:?}"
            );
        }
    }

    #[test]
    fn a_restored_ensemble_continues_identically() {
        let with_cad: AlgorithmSpec = toml::from_str(
            "type = \"ensemble\"\n[[members]]\ntype = \"cad\"\n[[members]]\ntype = \"artime\"",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for spec in [AlgorithmSpec::artime_likelihood_ensemble(), with_cad] {
            restored_continues(&spec);
        }
    }

    fn restored_continues(spec: &AlgorithmSpec) {
        let xs = series();
        let mut whole = spec.build(1);
        let expected = feed(whole.as_mut(), &xs);
        let mut first = spec.build(1);
        let head = feed(first.as_mut(), &xs[..450]);
        let state = first.snapshot().unwrap();
        let text = serde_json::to_string(&state).unwrap();
        let mut second = spec.restore(serde_json::from_str(&text).unwrap()).unwrap();
        let tail = feed(second.as_mut(), &xs[450..]);
        // `feed` numbers intervals from 0; scores do not depend on the times.
        let resumed: Vec<f64> = head.iter().chain(&tail).map(|s| s.anomaly_score).collect();
        let whole: Vec<f64> = expected.iter().map(|s| s.anomaly_score).collect();
        assert_eq!(resumed, whole);
        assert!(whole.iter().any(|&s| s > 0.44));
    }
}
