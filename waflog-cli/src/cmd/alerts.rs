//! `waflog alerts list|ack|test`: the alerts kept in a `waflog detect --state` file.

use std::path::Path;

use anyhow::Context;
use waflog_core::alert::{Alert, AlertBook, Evaluator, Label};
use waflog_core::timestamp::to_rfc3339;

use crate::alerts::{self, Ack};
use crate::aws::AwsContext;
use crate::cli::{AlertsAction, AlertsArgs, GlobalArgs};
use crate::exit::Finished;
use crate::sink::notifiers;

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &AlertsArgs) -> anyhow::Result<Finished> {
    match &args.action {
        AlertsAction::List { json, all } => list(args, *json, *all),
        AlertsAction::Ack { id, not_anomaly } => ack(args, id, *not_anomaly),
        AlertsAction::Test { channel } => test(global, channel),
    }
}

/// `list`: the open alerts (every one with `all`), as a table or JSON lines.
fn list(args: &AlertsArgs, json: bool, all: bool) -> anyhow::Result<Finished> {
    let state = need_state(args)?;
    let mut book = load_book(state)?;
    // Acknowledgements not yet taken in by detect show as applied (a label shows
    // once detect has taken it in).
    for ack in alerts::read_acks(&alerts::acks_path(state))? {
        let _ = book.acknowledge(&ack.id, ack.at);
    }
    let list: Vec<&Alert> = book
        .list()
        .into_iter()
        .filter(|a| all || a.is_open())
        .collect();
    if json {
        let mut out = Vec::new();
        for a in &list {
            waflog_core::text::to_json_writer(&mut out, a)?;
            out.push(b'\n');
        }
        crate::term::raw_out(&out)?;
    } else {
        crate::term::out(&table(&list))?;
    }
    Ok(Finished::Ok)
}

/// `ack ID [--not-anomaly]`: the acknowledgement appended to the state file's side
/// file, for `waflog detect` to take in.
fn ack(args: &AlertsArgs, id: &str, not_anomaly: bool) -> anyhow::Result<Finished> {
    let state = need_state(args)?;
    let book = load_book(state)?;
    let alert = book
        .get(id)
        .with_context(|| format!("cannot acknowledge {id}"))?;
    if !alert.is_open() {
        anyhow::bail!("alert {} is {} already", alert.id, alert.state());
    }
    let label = not_anomaly.then_some(Label::NotAnomaly);
    let mut line = serde_json::to_vec(&Ack {
        id: alert.id.clone(),
        at: alerts::now_ms(),
        label,
    })?;
    line.push(b'\n');
    let acks = alerts::acks_path(state);
    notifiers::append(&acks, &line).with_context(|| format!("cannot write {}", acks.display()))?;
    let how = if not_anomaly {
        " as not an anomaly"
    } else {
        ""
    };
    crate::term::err_line(&format!(
        "alert {} ({} / {}) acknowledged{how}; `waflog detect --state {}` takes it in at its next tick or start",
        alert.id,
        alert.monitor,
        alert.trigger,
        state.display()
    ));
    Ok(Finished::Ok)
}

/// `test CHANNEL`: a test notification sent through that channel alone.
fn test(global: &GlobalArgs, channel: &str) -> anyhow::Result<Finished> {
    let config = super::load_config(global)?;
    let monitors = alerts::monitors(&config, true, None);
    let channels = config.channel_specs();
    let eval = Evaluator::new(&monitors, &channels).context("invalid [[monitors]]")?;
    let note = eval.test_notification(channel, alerts::now_ms())?;
    // Only the channel tested is built: another one (an SNS topic without
    // AWS credentials at hand) neither fails the test nor loads the AWS
    // configuration (whose chain may try the EC2 metadata endpoint).
    let chosen: Vec<_> = channels
        .iter()
        .filter(|c| c.name() == channel)
        .cloned()
        .collect();
    let mut aws = AwsContext::new(global.aws_settings());
    let mut notifiers = notifiers::build(&chosen, &mut aws, false)?;
    let n = notifiers
        .iter_mut()
        .find(|n| n.name() == channel)
        .with_context(|| format!("no channel named {channel}"))?;
    n.send(&note)
        .map_err(|e| anyhow::anyhow!("test notification to channel {channel} failed: {e}"))?;
    crate::term::err_line(&format!("test notification sent to channel {channel}"));
    Ok(Finished::Ok)
}

fn need_state(args: &AlertsArgs) -> anyhow::Result<&Path> {
    args.state
        .as_deref()
        .context("--state FILE is needed: the state file of `waflog detect --state`")
}

/// The alert state in a `waflog detect --state` file (empty when it has none).
fn load_book(state: &Path) -> anyhow::Result<AlertBook> {
    // A missing file is an error here.
    let bytes = crate::files::read_capped(state, crate::files::STATE_CAP, "state file")?;
    Ok(super::parse_state(state, &bytes, "")?
        .alerts
        .unwrap_or_default())
}

/// The alerts as a text table.
fn table(list: &[&Alert]) -> String {
    let time = |t: Option<i64>| {
        t.map_or_else(
            || "-".to_string(),
            |t| to_rfc3339(t)[..19].replace('T', " "),
        )
    };
    let mut rows = vec![[
        "ID".to_string(),
        "STATE".into(),
        "SEV".into(),
        "MONITOR / TRIGGER".into(),
        "ENTITY".into(),
        "STARTED".into(),
        "LAST FIRED".into(),
        "PERIODS".into(),
        "LAST DELIVERY".into(),
        "FAILURES".into(),
    ]];
    let esc = |s: &str| waflog_core::text::escape_control(s).into_owned();
    for a in list {
        // An alert merged into its incident's alert, and a responder's label.
        let mut state = a.state().to_string();
        if let Some(lead) = &a.merged_into {
            state += &format!(" (in {})", esc(lead));
        }
        if let Some(label) = a.label {
            state += &format!(" ({label})");
        }
        rows.push([
            esc(&a.id),
            state,
            a.severity.to_string(),
            esc(&format!("{} / {}", a.monitor, a.trigger)),
            a.entity.as_deref().map_or_else(|| "-".into(), esc),
            time(Some(a.start_time)),
            time(a.last_fired),
            a.periods_active.to_string(),
            time(a.last_delivery),
            if a.lost > 0 {
                format!("{} ({} lost)", a.failures, a.lost)
            } else {
                a.failures.to_string()
            },
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if list.is_empty() {
        out.push_str("(no alerts)\n");
    }
    out
}
