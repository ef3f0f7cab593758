//! What the core's integration tests share: an observer that keeps what the
//! pipeline hands on, and the loop that feeds a simulated scenario through a
//! whole [`Pipeline`] (engine, incidents, monitors), as `waflog detect --alerts`
//! runs it.

#![allow(dead_code, clippy::unwrap_used)]

use std::convert::Infallible;

use waflog_core::alert::{
    AlertBook, Channel, Evaluator, Incident, Monitor, Notification, WriteFormat, WriteNotifier,
};
use waflog_core::detect::{AnomalyResult, Engine};
use waflog_core::pipeline::{Feedback, Pipeline, ResultObserver};
use waflog_core::simulate::{Generator, Scenario};

/// 2024-05-01T00:00:00Z.
pub const START: i64 = 1_714_521_600_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;

/// What a pipeline handed on: every result, notification, closed incident and
/// responder's feedback.
#[derive(Default)]
pub struct Seen {
    pub results: Vec<AnomalyResult>,
    pub notes: Vec<Notification>,
    pub incidents: Vec<Incident>,
    pub feedback: Vec<Feedback>,
}

impl ResultObserver for Seen {
    type Error = Infallible;
    fn results(&mut self, r: &[AnomalyResult], _: Option<&AlertBook>) -> Result<(), Infallible> {
        self.results.extend_from_slice(r);
        Ok(())
    }
    fn notifications(&mut self, notes: &[Notification]) {
        self.notes.extend_from_slice(notes);
    }
    fn incidents(&mut self, incidents: &[Incident]) {
        self.incidents.extend_from_slice(incidents);
    }
    fn feedback(&mut self, f: &[Feedback]) {
        self.feedback.extend_from_slice(f);
    }
}

/// `engine` with `monitors` and the default channels (their text dropped),
/// handing on to a [`Seen`].
pub fn pipeline(engine: Engine, monitors: &[Monitor]) -> Pipeline<Seen> {
    let eval = Evaluator::new(monitors, &Channel::defaults()).unwrap();
    let stdout = WriteNotifier::new("stdout", std::io::sink(), WriteFormat::Text);
    Pipeline::new(engine)
        .with_alerting(eval, vec![Box::new(stdout)], || 1_700_000_000_000)
        .with_observer(Seen::default())
}

/// Feeds every record of `scenario` through `p` (calling `respond` after each
/// line: a responder may act on the pipeline), finishes it and returns what it
/// handed on.
pub fn run(
    mut p: Pipeline<Seen>,
    scenario: &Scenario,
    mut respond: impl FnMut(&mut Pipeline<Seen>),
) -> Seen {
    let mut generator = Generator::new(scenario).unwrap();
    let mut line = Vec::new();
    while generator.next_record(&mut line).is_some() {
        p.push_line(line.trim_ascii_end()).unwrap();
        line.clear();
        respond(&mut p);
    }
    p.finish().unwrap();
    std::mem::take(p.observer_mut())
}
