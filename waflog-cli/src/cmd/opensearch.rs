//! `waflog opensearch setup|status`: the same detectors, monitors and channels as
//! `waflog.toml`, created in an OpenSearch cluster's Anomaly Detection, Alerting and
//! Notifications plugins (matched by name, so running it again updates them), the
//! index templates, and the Dashboards saved objects.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use opensearch::http::Method;
use serde_json::Value;
use waflog_core::detect::DetectorSpec;
use waflog_core::opensearch::{self as os, paths};

use crate::alerts;
use crate::aws::AwsContext;
use crate::cli::{GlobalArgs, OpenSearchAction, OpenSearchArgs};
use crate::exit::Finished;
use crate::sink::opensearch::Cluster;

/// One request of the setup.
struct Step {
    method: Method,
    path: String,
    body: Option<Value>,
}

/// Sends requests, or prints them (`--dry-run`).
struct Client {
    rt: tokio::runtime::Runtime,
    cluster: Option<Cluster>,
    out: Box<dyn Write>,
}

impl Client {
    /// Sends `step`; a dry run prints it and answers `dry` (a documented shape).
    fn call(&mut self, step: &Step, dry: &Value) -> anyhow::Result<(u16, Vec<u8>)> {
        let Some(cluster) = &self.cluster else {
            writeln!(self.out, "{} /{}", method_name(&step.method), step.path)?;
            if let Some(b) = &step.body {
                writeln!(self.out, "{}", serde_json::to_string_pretty(b)?)?;
            }
            writeln!(self.out)?;
            return Ok((200, serde_json::to_vec(dry)?));
        };
        let body = step.body.as_ref().map(serde_json::to_vec).transpose()?;
        let (status, bytes) = self
            .rt
            .block_on(cluster.request(step.method, &step.path, "application/json", body))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((status.as_u16(), bytes))
    }

    /// [`Client::call`], failing on a status other than 2xx (or `ok_404`).
    fn ok(&mut self, step: &Step, dry: &Value, ok_404: bool) -> anyhow::Result<Option<Vec<u8>>> {
        let (status, body) = self.call(step, dry)?;
        match status {
            200..=299 => Ok(Some(body)),
            404 if ok_404 => Ok(None),
            s => anyhow::bail!(
                "{} /{} answered HTTP {s}: {}",
                method_name(&step.method),
                step.path,
                os::error_reason(&body)
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
            ),
        }
    }
}

fn method_name(m: &Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

fn step(method: Method, path: String, body: Option<Value>) -> Step {
    Step { method, path, body }
}

/// Runs the subcommand.
pub fn run(global: &GlobalArgs, args: &OpenSearchArgs) -> anyhow::Result<Finished> {
    let config = super::load_config(global)?;
    let url = crate::location::parse_cluster(&args.url).context("invalid --url")?;
    let rt = crate::net::io_runtime("opensearch")?;
    let mut aws = AwsContext::new(global.aws_settings());
    let dry_run = matches!(args.action, OpenSearchAction::Setup { dry_run: true, .. });
    let cluster = if dry_run {
        None
    } else {
        let _guard = rt.enter();
        Some(Cluster::new(
            &url,
            &args.sink.options()?.opensearch,
            &mut aws,
        )?)
    };
    let mut client = Client {
        rt,
        cluster,
        out: Box::new(crate::term::Stdout),
    };
    match &args.action {
        OpenSearchAction::Setup {
            dashboards_file,
            dashboards_url,
            ..
        } => setup(
            &mut client,
            &config,
            args,
            dashboards_file,
            dashboards_url.as_deref(),
        ),
        OpenSearchAction::Status => status(&mut client, &config),
    }
}

/// `setup`: the index templates, the detectors, the notification channels, the
/// monitors and the Dashboards saved objects, in that order.
fn setup(
    client: &mut Client,
    config: &waflog_core::Config,
    args: &OpenSearchArgs,
    dashboards_file: &std::path::Path,
    dashboards_url: Option<&str>,
) -> anyhow::Result<Finished> {
    let specs = config.detector_specs();
    let logs_pattern = format!("{}*", args.logs_index);
    let results_pattern = format!("{}*", args.results_index);
    put_templates(client, args)?;
    let (detector_ids, skipped) = put_detectors(client, &specs, &logs_pattern)?;
    let channel_ids = put_channels(client, config)?;
    for monitor in alerts::monitors(config, true, None) {
        if !detector_ids.contains_key(monitor.detector()) {
            tracing::warn!(
                "monitor {}: skipped, its detector is not in the cluster",
                monitor.name
            );
            continue;
        }
        let body = os::monitor_body(
            &monitor,
            &specs,
            &detector_ids,
            &channel_ids,
            &results_pattern,
        )?;
        put_monitor(client, &monitor.name, body)?;
    }
    let ndjson = os::dashboards_ndjson(&logs_pattern, &results_pattern, &specs);
    write_dashboards(client, &ndjson, dashboards_file)?;
    if let Some(url) = dashboards_url {
        import_dashboards(client, url, &ndjson)?;
    }
    if !skipped.is_empty() {
        tracing::warn!(
            "{} detectors skipped (no Anomaly Detection equivalent): {}",
            skipped.len(),
            skipped.join(", ")
        );
    }
    Ok(Finished::Ok)
}

/// What a dry run answers a request that is acknowledged.
fn acknowledged() -> Value {
    serde_json::json!({ "acknowledged": true })
}

/// What a dry run answers a search.
fn no_hits() -> Value {
    serde_json::json!({ "hits": { "total": { "value": 0 }, "hits": [] } })
}

/// Setup step 1: the index templates of the logs and the results.
fn put_templates(client: &mut Client, args: &OpenSearchArgs) -> anyhow::Result<()> {
    for (name, body) in [
        (
            os::logs_template_name(&args.logs_index),
            os::logs_template(&args.logs_index),
        ),
        (
            os::results_template_name(&args.results_index),
            os::results_template(&args.results_index),
        ),
    ] {
        client.ok(
            &step(
                Method::Put,
                format!("{}/{name}", paths::INDEX_TEMPLATE),
                Some(body),
            ),
            &acknowledged(),
            false,
        )?;
        tracing::info!("index template {name}");
    }
    Ok(())
}

/// Setup step 2: the detectors, matched by name: created or updated, then started.
/// Their IDs by name, and the names of those skipped (no Anomaly Detection
/// equivalent).
fn put_detectors(
    client: &mut Client,
    specs: &[DetectorSpec],
    logs_pattern: &str,
) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut detector_ids = BTreeMap::new();
    let mut skipped = Vec::new();
    for spec in specs {
        let Some(body) = os::detector_body(spec, logs_pattern, "timestamp")? else {
            let why = os::ad_unsupported_reason(spec).unwrap_or_default();
            tracing::warn!(
                "detector {}: skipped, no Anomaly Detection equivalent ({why})",
                spec.name
            );
            skipped.push(spec.name.clone());
            continue;
        };
        let id = put_detector(client, &spec.name, body)?;
        client.ok(
            &step(
                Method::Post,
                format!("{}/{id}/_start", paths::AD_DETECTORS),
                None,
            ),
            &serde_json::json!({ "_id": id }),
            false,
        )?;
        detector_ids.insert(spec.name.clone(), id);
    }
    Ok((detector_ids, skipped))
}

/// The detector `name` with `body`: updated when one by that name exists
/// (stopped first: a running detector cannot be updated), else created. Its ID.
fn put_detector(client: &mut Client, name: &str, body: Value) -> anyhow::Result<String> {
    let found = client.ok(
        &step(
            Method::Post,
            format!("{}/_search", paths::AD_DETECTORS),
            Some(os::detector_search_by_name(name)),
        ),
        &no_hits(),
        true,
    )?;
    let found = match found {
        Some(b) => os::parse_detector_search(&b, name)?,
        None => None,
    };
    if let Some((id, _)) = found {
        client.call(
            &step(
                Method::Post,
                format!("{}/{id}/_stop", paths::AD_DETECTORS),
                None,
            ),
            &acknowledged(),
        )?;
        client.ok(
            &step(
                Method::Put,
                format!("{}/{id}", paths::AD_DETECTORS),
                Some(body),
            ),
            &serde_json::json!({ "_id": id }),
            false,
        )?;
        tracing::info!("detector {name} updated ({id})");
        return Ok(id);
    }
    let dry_id = format!("dry-run-{name}");
    let created = client
        .ok(
            &step(Method::Post, paths::AD_DETECTORS.to_string(), Some(body)),
            &serde_json::json!({ "_id": dry_id }),
            false,
        )?
        .unwrap_or_default();
    let id = os::parse_created_id(&created)?;
    tracing::info!("detector {name} created ({id})");
    Ok(id)
}

/// Setup step 3: the notification channels (webhook, SNS), by a stable config_id:
/// their IDs by name.
fn put_channels(
    client: &mut Client,
    config: &waflog_core::Config,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut channel_ids = BTreeMap::new();
    for channel in config.channel_specs() {
        let Some(body) = os::channel_config_body(&channel)? else {
            continue;
        };
        let id = os::channel_config_id(channel.name());
        let exists = client
            .ok(
                &step(
                    Method::Get,
                    format!("{}/{id}", paths::NOTIFICATIONS_CONFIGS),
                    None,
                ),
                &serde_json::json!({}),
                true,
            )?
            .is_some()
            && client.cluster.is_some();
        let (m, path) = if exists {
            (
                Method::Put,
                format!("{}/{id}", paths::NOTIFICATIONS_CONFIGS),
            )
        } else {
            (Method::Post, paths::NOTIFICATIONS_CONFIGS.to_string())
        };
        client.ok(
            &step(m, path, Some(body)),
            &serde_json::json!({ "config_id": id }),
            false,
        )?;
        tracing::info!("notification channel {} ({id})", channel.name());
        channel_ids.insert(channel.name().to_string(), id);
    }
    Ok(channel_ids)
}

/// Setup step 4: the monitor `name` with `body`, matched by name: updated or
/// created.
fn put_monitor(client: &mut Client, name: &str, body: Value) -> anyhow::Result<()> {
    let found = client.ok(
        &step(
            Method::Post,
            format!("{}/_search", paths::ALERTING_MONITORS),
            Some(os::monitor_search_by_name(name)),
        ),
        &no_hits(),
        true,
    )?;
    let found = match found {
        Some(b) => os::parse_monitor_search(&b, name)?,
        None => None,
    };
    match found {
        Some((id, _)) => {
            client.ok(
                &step(
                    Method::Put,
                    format!("{}/{id}", paths::ALERTING_MONITORS),
                    Some(body),
                ),
                &serde_json::json!({ "_id": id }),
                false,
            )?;
            tracing::info!("monitor {name} updated ({id})");
        }
        None => {
            client.ok(
                &step(
                    Method::Post,
                    paths::ALERTING_MONITORS.to_string(),
                    Some(body),
                ),
                &serde_json::json!({ "_id": "dry-run" }),
                false,
            )?;
            tracing::info!("monitor {name} created");
        }
    }
    Ok(())
}

/// Setup step 5: the Dashboards saved objects: a file to import (also printed by a
/// dry run).
fn write_dashboards(
    client: &mut Client,
    ndjson: &str,
    dashboards_file: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::write(dashboards_file, ndjson)
        .with_context(|| format!("cannot write {}", dashboards_file.display()))?;
    if client.cluster.is_none() {
        writeln!(
            client.out,
            "# Dashboards saved objects (the --dashboards-file; POST api/saved_objects/_import)\n{ndjson}"
        )?;
    }
    tracing::info!(
        "Dashboards saved objects written to {} (import: Dashboards Management > Saved objects > Import)",
        dashboards_file.display()
    );
    Ok(())
}

/// The saved objects imported into Dashboards at `url` (`--dashboards-url`).
fn import_dashboards(client: &mut Client, url: &str, ndjson: &str) -> anyhow::Result<()> {
    let (content_type, body) =
        os::saved_objects_multipart(ndjson, "waflog-boundary-7d1c", "waflog.ndjson")?;
    let path = format!("{}?overwrite=true", paths::DASHBOARDS_IMPORT);
    if client.cluster.is_none() {
        writeln!(
            client.out,
            "POST {url}/{path}\n(multipart: {} bytes of saved objects)\n",
            body.len()
        )?;
        return Ok(());
    }
    let full = format!("{}/{path}", url.trim_end_matches('/'));
    let resp = ureq::post(&full)
        .header("osd-xsrf", "true")
        .header("content-type", &content_type)
        .config()
        .http_status_as_error(false)
        .build()
        .send(&body[..])
        .map_err(|e| anyhow::anyhow!("POST {full}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_vec()
        .map_err(|e| anyhow::anyhow!("POST {full}: {e}"))?;
    if !(200..300).contains(&status) {
        anyhow::bail!(
            "POST {full} answered HTTP {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    let report = os::parse_import_response(&text)?;
    if !report.success {
        anyhow::bail!(
            "Dashboards import: {} imported, errors: {}",
            report.success_count,
            report.errors.join("; ")
        );
    }
    tracing::info!(
        "Dashboards: {} saved objects imported",
        report.success_count
    );
    Ok(())
}

fn status(client: &mut Client, config: &waflog_core::Config) -> anyhow::Result<Finished> {
    let empty = serde_json::json!({});
    for spec in config.detector_specs() {
        let found = client.ok(
            &step(
                Method::Post,
                format!("{}/_search", paths::AD_DETECTORS),
                Some(os::detector_search_by_name(&spec.name)),
            ),
            &empty,
            true,
        )?;
        let Some((id, _)) = found
            .map(|b| os::parse_detector_search(&b, &spec.name))
            .transpose()?
            .flatten()
        else {
            crate::term::out(&format!("{:<32} not in the cluster\n", spec.name))?;
            continue;
        };
        let profile = client
            .ok(
                &step(
                    Method::Get,
                    format!("{}/{id}/_profile", paths::AD_DETECTORS),
                    None,
                ),
                &empty,
                false,
            )?
            .unwrap_or_default();
        let p = os::parse_profile(&profile)?;
        crate::term::out(&format!(
            "{:<32} {:<9} {}{}\n",
            spec.name,
            p.state,
            p.init_progress
                .map(|x| format!("init {x:.0}%"))
                .unwrap_or_default(),
            p.error.map(|e| format!(" error: {e}")).unwrap_or_default()
        ))?;
    }
    let alerts = client
        .ok(
            &step(
                Method::Get,
                format!("{}/alerts", paths::ALERTING_MONITORS),
                None,
            ),
            &empty,
            false,
        )?
        .unwrap_or_default();
    for a in os::parse_alerts(&alerts)? {
        crate::term::out(&format!(
            "alert {} {:<12} severity {} {} / {}\n",
            a.id, a.state, a.severity, a.monitor_name, a.trigger_name
        ))?;
    }
    Ok(Finished::Ok)
}
