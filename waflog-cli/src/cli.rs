//! Command-line flags: parsed once into these raw values, validated by each command.

// Doc comments here are --help text, written for a terminal, not rustdoc markdown.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Real-time anomaly detection for AWS WAF logs.
///
/// Exit codes: 0 finished (bad records dead-lettered and counted, or stdout closed);
/// 1 finished but --strict and something was dead-lettered; 2 usage, configuration or
/// I/O error (an AWS call that still fails after its retries included); 3 finished
/// but alert notifications are undelivered (kept in --state); 130 interrupted by
/// Ctrl-C (state and checkpoints saved).
#[derive(Debug, Parser)]
#[command(name = "waflog", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (waflog.toml). Built-in defaults (the seed's vocabularies)
    /// when absent. Unknown keys are errors that name the key and line.
    #[arg(long, global = true, value_name = "FILE", env = "WAFLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Exit with code 1 (instead of 0) when any record was dead-lettered.
    #[arg(long, global = true)]
    pub strict: bool,
    /// More log output on stderr (-v debug, -vv trace). WAFLOG_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// AWS region for s3:// and kinesis:// locations (default: AWS_REGION, then the
    /// profile's region).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS credentials profile (default: AWS_PROFILE, then `default`); credentials
    /// come from the standard AWS provider chain and are never logged.
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Endpoint URL for the AWS services, e.g. a local S3 or Kinesis server
    /// (default: AWS_ENDPOINT_URL, then the service's public endpoint). S3 uses
    /// path-style addressing when it is set.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS calls: most time to open a connection (TCP and TLS) before the attempt
    /// fails and is retried.
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s")]
    pub connect_timeout: String,
    /// AWS calls: most time without a byte from the server (an answer, or the next
    /// part of an S3 object) before the attempt fails and is retried.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s")]
    pub read_timeout: String,
    /// AWS calls: most time for one whole call, retries included, before the run
    /// stops with exit code 2 (S3 object bodies are bounded by --read-timeout
    /// per read instead, so large objects are not cut short).
    #[arg(long, global = true, value_name = "DURATION", default_value = "2m")]
    pub operation_timeout: String,
}

impl GlobalArgs {
    /// The AWS settings these flags give.
    pub fn aws_settings(&self) -> crate::aws::AwsSettings {
        crate::aws::AwsSettings {
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: self.endpoint_url.clone(),
            connect_timeout: self.connect_timeout.clone(),
            read_timeout: self.read_timeout.clone(),
            operation_timeout: self.operation_timeout.clone(),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate AWS WAF traffic with injected anomalies (NDJSON, one record a line).
    ///
    /// Normal traffic follows the seed's weighted populations; each --inject episode
    /// draws one field from the anomalous population (or floods from one client) for a
    /// window of simulated time. The same --seed, --start and other flags give
    /// byte-identical output.
    ///
    /// Example: waflog generate --seed 7 --start 2024-05-01T00:00:00Z --duration 2h
    /// --inject country:30m:10m --inject flood:1h:5m:8 --truth truth.json -o logs.ndjson.gz
    Generate(GenerateArgs),
    /// Add the seed's 0/1 indicators (K_country, UNK_country, B_action, ...) to WAF logs.
    ///
    /// Reads NDJSON files (gzip detected automatically) or stdin, writes each record
    /// unchanged except for an integer epoch-millisecond timestamp and the appended
    /// indicators, in input order. Lines that are not records go to the dead-letter
    /// output with the reason; the run goes on. With --firehose it answers one Kinesis
    /// Data Firehose data-transformation event instead.
    ///
    /// Example: waflog transform logs.ndjson.gz --dead-letter bad.ndjson -o out.ndjson
    Transform(TransformArgs),
    /// Detect anomalies in WAF logs with the configured detectors.
    ///
    /// Reads raw WAF logs (the indicator mapping is applied in-process) or transformed
    /// ones, aggregates them into event-time intervals per detector, scores each closed
    /// interval and writes OpenSearch AD-shaped result documents (anomalies only unless
    /// --all); a one-line summary of each anomaly goes to stderr. Without --config the
    /// seed's five detectors plus a request-count detector run, on 1-minute intervals.
    ///
    /// Example: waflog generate --seed 1 --duration 6h --inject country:3h:10m |
    /// waflog detect
    Detect(DetectArgs),
    /// Score detection results against the simulator's ground truth.
    ///
    /// Per detector and overall: episodes detected (recall), precision of flagged
    /// intervals, false alarms per simulated day and detection delay. A flag matches an
    /// episode from its start until shingle_size intervals after its end. Run detect
    /// with --all so the span of simulated time is known.
    ///
    /// Example: waflog generate --seed 3 --duration 24h --inject country:6h:10m:0.05
    /// --truth truth.json | waflog detect --all -o results.ndjson; waflog eval --truth
    /// truth.json results.ndjson
    Eval(EvalArgs),
    /// List, acknowledge and test the alerts of a `waflog detect --state` file.
    ///
    /// Alerts live in the state file next to the detector models. An
    /// acknowledgement is handed to a running `waflog detect` through FILE.acks (and
    /// applied by the next run otherwise), so the two never overwrite each other.
    ///
    /// Example: waflog alerts --state waflog.state list; waflog alerts --state
    /// waflog.state ack 3fa2c41b07d9
    Alerts(AlertsArgs),
    /// Write the dashboard of a past run as one self-contained HTML file.
    ///
    /// Reads results written with `waflog detect --all` (every interval's feature
    /// values, expected values and band) and writes the dashboard's views: the
    /// series with their expected band and grade per detector, the anomalies with
    /// their explanation, counts per detector and entity over the last 24 hours
    /// and 7 days of the data, and the alerts of a --state file. The file carries
    /// its scripts, styles and data and loads nothing from the network.
    ///
    /// Example: waflog detect --all -o results.ndjson logs.ndjson.gz; waflog report
    /// results.ndjson --output report.html
    Report(ReportArgs),
    /// Set up an OpenSearch cluster for waflog, or show its detectors and alerts.
    ///
    /// `setup` puts the index templates in place and creates (or updates, matched
    /// by name) the configuration's detectors in Anomaly Detection (detectors with
    /// no AD equivalent are listed as skipped) and starts them, its webhook and SNS
    /// channels in Notifications (OpenSearch 2.0+) and its monitors in Alerting,
    /// and writes the Dashboards saved objects to a file (imported with
    /// --dashboards-url). `--dry-run` prints every request instead of sending it.
    ///
    /// Example: waflog opensearch --url opensearch://search.example.com:9200 setup
    /// --dry-run
    Opensearch(OpenSearchArgs),
}

/// Flags of `waflog opensearch`.
#[derive(Debug, Args)]
pub struct OpenSearchArgs {
    /// The cluster: opensearch://HOST[:PORT]/ (HTTPS) or opensearch+http://HOST[:PORT]/.
    #[arg(long, value_name = "URL", env = "WAFLOG_OPENSEARCH_URL")]
    pub url: String,
    /// Index (base name) of the WAF logs, as written by `--output opensearch://.../INDEX`.
    #[arg(long, value_name = "INDEX", default_value = "waf-logs")]
    pub logs_index: String,
    /// Index (base name) of waflog's detection results.
    #[arg(long, value_name = "INDEX", default_value = "waflog-results")]
    pub results_index: String,
    /// Authentication and TLS (the opensearch flags of the outputs).
    #[command(flatten)]
    pub sink: SinkArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: OpenSearchAction,
}

/// `waflog opensearch` actions.
#[derive(Debug, Subcommand)]
pub enum OpenSearchAction {
    /// Create or update the templates, detectors, channels and monitors.
    Setup {
        /// Print every request (method, path, body) instead of sending it.
        #[arg(long)]
        dry_run: bool,
        /// Where the Dashboards saved objects (NDJSON) are written.
        #[arg(long, value_name = "FILE", default_value = "waflog-dashboards.ndjson")]
        dashboards_file: PathBuf,
        /// Import them into OpenSearch Dashboards at this URL (saved-objects API).
        #[arg(long, value_name = "URL")]
        dashboards_url: Option<String>,
    },
    /// Each detector's state and initialisation progress, and the cluster's alerts.
    Status,
}

/// Flags of `waflog alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The state file of `waflog detect --state` (not needed by `test`).
    #[arg(long, value_name = "FILE", global = true)]
    pub state: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: AlertsAction,
}

/// `waflog alerts` actions.
#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Alerts with their state (ACTIVE, ACKNOWLEDGED, ERROR, COMPLETED), start, last
    /// firing, periods active, last delivery and failures; open ones first.
    List {
        /// One JSON document per alert (NDJSON) instead of a table.
        #[arg(long)]
        json: bool,
        /// Also the completed alerts (the last 1000 are kept).
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an open alert: no more re-notifications; it still completes.
    /// With --not-anomaly, tell the detector it was normal.
    Ack {
        /// The alert ID, or a unique prefix of at least 4 characters.
        id: String,
        /// The intervals it fired on were normal: the alert (and the alerts merged
        /// into its incident) complete now with the label `not_anomaly`, and each
        /// one's detector learns that level as normal at full weight (ewma
        /// detectors; the others keep their model). The label stays on the alert,
        /// its incident and a `feedback` document in the results (with --alerts),
        /// which `waflog eval` reports.
        #[arg(long)]
        not_anomaly: bool,
    },
    /// Send a test notification through one channel (a dry run of a trigger with no
    /// data); exit 0 when it was delivered, 2 when not.
    Test {
        /// The `[[channels]]` name.
        #[arg(long, value_name = "NAME")]
        channel: String,
    },
}

/// Flags of `waflog generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Random seed. Without it a seed is drawn from the clock and logged, so any run
    /// can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated start time: RFC 3339 (2024-05-01T00:00:00Z) or `now`.
    #[arg(long, default_value = "now")]
    pub start: String,
    /// Mean events per simulated second (Poisson arrivals).
    #[arg(long, default_value_t = waflog_core::simulate::DEFAULT_RATE)]
    pub rate: f64,
    /// Simulated time to cover, e.g. 90s, 15m, 24h (default 1h unless --count).
    #[arg(long, value_name = "DURATION", conflicts_with = "count")]
    pub duration: Option<String>,
    /// Stop after this many events instead of after a duration.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Daily cycle of the rate: amplitude in [0, 1] (rate x (1 ± A), peak 14:00 UTC).
    #[arg(long, value_name = "AMPLITUDE", default_value_t = 0.0)]
    pub diurnal: f64,
    /// Inject an anomaly episode (repeatable): FIELD:OFFSET:DURATION[:INTENSITY] with
    /// FIELD one of action, httpSourceName, httpStatus, country, httpMethod and
    /// INTENSITY in (0, 1] (default 1), or flood:OFFSET:DURATION[:MULTIPLIER] (one
    /// client IP multiplies the request rate, default 5). OFFSET is from --start.
    #[arg(long, value_name = "SPEC")]
    pub inject: Vec<String>,
    /// Write the ground truth (a JSON array of episodes with start/end in epoch ms and
    /// RFC 3339) to this file.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// TOML file with the populations and normal/anomalous weights of any of the five
    /// fields; fields it omits keep the seed's (see fixtures/profiles/).
    #[arg(long, value_name = "FILE")]
    pub traffic_profile: Option<PathBuf>,
    /// Pace output to the wall clock (for live demos). Ctrl-C or a closed pipe ends it
    /// cleanly.
    #[arg(long)]
    pub realtime: bool,
    /// With --realtime: run simulated time N times faster than the wall clock.
    #[arg(long, value_name = "N", default_value_t = 1.0, requires = "realtime")]
    pub speed: f64,
    /// Output: a file (stdout when absent or `-`; a `.gz` name is gzip-compressed),
    /// s3://bucket/prefix (gzip objects in the AWS WAF delivery layout),
    /// kinesis://stream (one record per log) or opensearch://host:port/index
    /// (opensearch+http:// for plain HTTP; bulk indexing). `--sink` is the same.
    #[arg(short, long, visible_alias = "sink", value_name = "LOCATION")]
    pub output: Option<PathBuf>,
    /// How S3 and Kinesis outputs are laid out.
    #[command(flatten)]
    pub sink: SinkArgs,
}

/// Inputs of the subcommands that read WAF logs.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Inputs (plain or gzip, detected by content): files, `-` or none for stdin,
    /// directories (every file below, in path order, skipping hidden files and
    /// folders and files that are not logs by name: .md, .html, .pdf, pictures,
    /// other archives, checksums, partial downloads, editor leftovers,
    /// aws-logs-write-test), glob patterns expanded by waflog when quoted
    /// ('logs/**/*.gz': `*` within a folder, `**` across folders; hidden files
    /// skipped), s3://bucket/prefix (every object under the prefix, in
    /// delivery-time order, gunzipped on the fly),
    /// cloudwatch://LOG_GROUP[?prefix=STREAM_PREFIX] (a CloudWatch Logs group's
    /// events, its streams interleaved in event time), or one kinesis://stream (every
    /// shard, followed until --idle-exit or Ctrl-C). Several local files are merged
    /// line by line in event time (each file opened when the merge reaches its
    /// first record), as the delivery folders of an S3 prefix are.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// An input given as a flag (repeatable), the same as a positional INPUT:
    /// `--source s3://bucket/prefix`, `--source kinesis://stream`.
    #[arg(long = "source", value_name = "INPUT")]
    pub sources: Vec<String>,
    /// S3 inputs, and files found in a directory or by a glob: skip objects
    /// delivered before this time (RFC 3339), by the date path of their key
    /// (WAF's YYYY/MM/dd/HH/mm/, or Firehose's YYYY/MM/dd/HH/, whose objects count
    /// for their whole hour). Keys without a date path are read. CloudWatch Logs
    /// inputs: events before this event time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// S3 inputs, and files found in a directory or by a glob: skip objects
    /// delivered at or after this time (RFC 3339), as --since. CloudWatch Logs
    /// inputs: events at or after this event time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Kinesis input: where shards without a checkpoint start: trim-horizon (the
    /// oldest record kept), latest, or at:<RFC 3339 time>. Shards created by a
    /// reshard always start at their beginning.
    #[arg(long, value_name = "POSITION", default_value = "trim-horizon")]
    pub kinesis_start: String,
    /// Kinesis input: read only part of the stream, as consumer K of N (0-based):
    /// the shards whose hash key range starts in the K-th of N equal parts of the
    /// key space. N consumers with K = 0..N-1 read every shard once between them,
    /// and all records of one partition key reach the same consumer.
    #[arg(long, value_name = "K/N")]
    pub kinesis_consumer: Option<String>,
    /// Kinesis input (and --follow): stop cleanly once every shard has been read to
    /// its tip and no new record has arrived for this long (e.g. 30s); without it
    /// the stream is followed until Ctrl-C.
    #[arg(long, value_name = "DURATION")]
    pub idle_exit: Option<String>,
    /// Where rejected lines go, as NDJSON {source, line, reason, raw | raw_base64}
    /// (stderr when absent).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Longest accepted line in bytes; longer lines are dead-lettered with their first
    /// part. Overrides [input] max_line_bytes (default 1 MiB).
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,
}

impl InputArgs {
    /// The positional inputs, then the `--source` ones.
    pub fn all(&self) -> Vec<String> {
        self.inputs.iter().chain(&self.sources).cloned().collect()
    }

    /// `--kinesis-consumer K/N`.
    pub fn consumer(&self) -> anyhow::Result<Option<(u32, u32)>> {
        let Some(text) = &self.kinesis_consumer else {
            return Ok(None);
        };
        let parsed = text.split_once('/').and_then(|(k, n)| {
            Some((k.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?))
        });
        match parsed {
            Some((k, n)) if n >= 1 && k < n => Ok(Some((k, n))),
            _ => anyhow::bail!("--kinesis-consumer {text}: expected K/N with 0 <= K < N, e.g. 0/2"),
        }
    }
}

/// How records are laid out in S3 and Kinesis outputs.
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// kinesis:// output: the dotted field whose value is each record's partition
    /// key (records without it get a hash of their text).
    #[arg(long, value_name = "FIELD", default_value = "httpRequest.clientIp")]
    pub partition_key: String,
    /// kinesis:// output: PutRecords calls under way at once, at most one per
    /// shard (each shard keeps the order records were given in; a reshard during
    /// the run is followed: the lanes are dealt the new shards). With 1, a run
    /// resumed after the sink gave up writes every record exactly once; with
    /// more, records of other shards that got through may be written again.
    #[arg(long, value_name = "N", default_value_t = crate::sink::kinesis::DEFAULT_IN_FLIGHT,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub kinesis_in_flight: u16,
    /// s3:// output: event time covered by one object per web ACL (AWS WAF: 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub object_span: String,
    /// s3:// output: objects larger than this are uploaded in parts of this size
    /// (multipart upload; at least 5 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub part_size: usize,
    /// opensearch:// output: basic-authentication user. The password comes from
    /// OPENSEARCH_PASSWORD or --opensearch-password-file, never the command line.
    #[arg(long, value_name = "USER", env = "OPENSEARCH_USERNAME")]
    pub opensearch_user: Option<String>,
    /// opensearch:// output: a file holding the password (first line).
    #[arg(long, value_name = "FILE")]
    pub opensearch_password_file: Option<PathBuf>,
    /// opensearch:// output: sign requests with AWS SigV4 for Amazon OpenSearch
    /// Service (`es`) or OpenSearch Serverless (`aoss`), with the credentials and
    /// region of --profile/--region.
    #[arg(long, value_name = "SERVICE", value_parser = ["es", "aoss"])]
    pub opensearch_sigv4: Option<String>,
    /// opensearch:// output: trust this PEM CA certificate (self-signed clusters).
    #[arg(long, value_name = "FILE")]
    pub opensearch_ca: Option<PathBuf>,
    /// opensearch:// output: do not verify TLS certificates (only when asked; a
    /// warning is logged).
    #[arg(long)]
    pub insecure: bool,
    /// opensearch:// output: time-based index names from each document's event
    /// time: INDEX-yyyy.MM.dd (daily) or INDEX-yyyy.MM (monthly).
    #[arg(long, value_name = "SUFFIX", default_value = "none", value_parser = ["none", "daily", "monthly"])]
    pub index_suffix: String,
    /// opensearch:// output: most documents per _bulk request.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub bulk_docs: usize,
    /// opensearch:// output: most bytes per _bulk request.
    #[arg(long, value_name = "BYTES", default_value_t = 5 << 20)]
    pub bulk_bytes: usize,
    /// opensearch:// output: _bulk requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub bulk_concurrency: usize,
}

impl SinkArgs {
    /// The options of the sinks.
    pub fn options(&self) -> anyhow::Result<crate::sink::file::SinkOptions> {
        let span = humantime::parse_duration(&self.object_span)
            .map_err(|e| anyhow::anyhow!("--object-span {}: {e}", self.object_span))?;
        let span_ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
        if span_ms < 1_000 {
            anyhow::bail!("--object-span {} must be at least 1s", self.object_span);
        }
        if self.part_size < 5 << 20 {
            anyhow::bail!(
                "--part-size {} must be at least 5 MiB (5242880)",
                self.part_size
            );
        }
        let password = match (
            &self.opensearch_password_file,
            std::env::var("OPENSEARCH_PASSWORD"),
        ) {
            (Some(f), _) => Some(
                crate::files::read_capped_string(
                    f,
                    crate::files::TEXT_CAP,
                    "--opensearch-password-file",
                )?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            ),
            (None, Ok(p)) => Some(p),
            (None, Err(_)) => None,
        };
        let suffix = match self.index_suffix.as_str() {
            "daily" => waflog_core::opensearch::IndexSuffix::Daily,
            "monthly" => waflog_core::opensearch::IndexSuffix::Monthly,
            _ => waflog_core::opensearch::IndexSuffix::None,
        };
        Ok(crate::sink::file::SinkOptions {
            opensearch: crate::sink::opensearch::OpenSearchOptions {
                user: self.opensearch_user.clone(),
                password,
                sigv4: self.opensearch_sigv4.clone(),
                ca_file: self.opensearch_ca.clone(),
                insecure: self.insecure,
                suffix,
                batch_docs: self.bulk_docs,
                batch_bytes: self.bulk_bytes,
                concurrency: self.bulk_concurrency,
                kind: crate::sink::opensearch::DocKind::Logs,
            },
            partition_key: self.partition_key.clone(),
            kinesis_in_flight: usize::from(self.kinesis_in_flight),
            object_span_ms: span_ms,
            part_size: self.part_size,
            append: false,
            parquet: None,
        })
    }
}

/// Flags of `waflog transform`.
#[derive(Debug, Args)]
pub struct TransformArgs {
    /// Kinesis Data Firehose data-transformation mode: read one transformation event
    /// (JSON {invocationId, deliveryStreamArn, records: [{recordId, data (base64)}]},
    /// from stdin or the one INPUT file) and write the response JSON {records:
    /// [{recordId, result, data}]} (for a Lambda custom runtime, or to test a delivery
    /// stream's transformation). Each record's lines are transformed as above and
    /// answered Ok; a bad record (or a record with any bad line) is answered
    /// ProcessingFailed with its data as received and dead-lettered with source
    /// firehose:RECORD_ID. --strict exits 1 when any record is ProcessingFailed. A
    /// malformed event (not JSON, no records, a record without recordId) exits 2.
    #[arg(long, conflicts_with = "max_line_bytes")]
    pub firehose: bool,
    /// With --firehose: largest response in bytes (Lambda's 6 MB limit). Records whose
    /// transformed data would not fit are answered ProcessingFailed with their data as
    /// received (Firehose keeps them in its processing-failed S3 prefix), with a warning.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = waflog_core::firehose::DEFAULT_MAX_RESPONSE_BYTES,
        requires = "firehose"
    )]
    pub firehose_max_response_bytes: usize,
    /// Inputs and dead letters.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output: a file (stdout when absent or `-`; a `.gz` name is gzip-compressed),
    /// s3://bucket/prefix (gzip objects in the AWS WAF delivery layout),
    /// kinesis://stream (one record per log) or opensearch://host:port/index
    /// (opensearch+http:// for plain HTTP; bulk indexing). `--sink` is the same.
    #[arg(short, long, visible_alias = "sink", value_name = "LOCATION")]
    pub output: Option<PathBuf>,
    /// How S3 and Kinesis outputs are laid out.
    #[command(flatten)]
    pub sink: SinkArgs,
    /// Record format of the output: `ndjson` (each WAF record with its indicators) or
    /// `ocsf` (each record as an OCSF 1.1.0 HTTP Activity event, class_uid 4002, for
    /// Amazon Security Lake and SIEMs; WAF fields OCSF has no attribute for, and the
    /// indicators, under `unmapped`; the mapping is in docs/ocsf.md; also applies to
    /// --firehose) or `parquet` (the records as Parquet rows, one typed column per
    /// field, nested parts as JSON text, fields without a column in `other`: to
    /// FILE.parquet or stdout one file, to a directory or s3://bucket/prefix one
    /// file per hour of event time under YYYY/MM/DD/HH/; the columns are in
    /// docs/parquet.md).
    #[arg(long, value_enum, default_value_t = OutputFormat::Ndjson)]
    pub output_format: OutputFormat,
    /// kinesis:// input: a checkpoint file (the last sequence number per shard
    /// whose records reached the output). Read at start, so a restart resumes after
    /// them; written atomically once the output holds those records (after each
    /// flush of a file or Kinesis output, at the end for S3). At-least-once: a
    /// crash may repeat the records after the last save, never lose any.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Worker threads that parse and rewrite the records of file, stdin and S3
    /// inputs while the main thread reads and writes (0: one per core, at most
    /// 4; 1: everything on the main thread). The output and the dead letters are
    /// byte for byte the same whatever the number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

/// Flags of `waflog detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Inputs and dead letters.
    #[command(flatten)]
    pub input: InputArgs,
    /// Where result documents go: a file (stdout when absent or `-`; `.gz`
    /// compresses), s3://bucket/prefix, kinesis://stream or
    /// opensearch://host:port/index (`--sink` is the same).
    #[arg(short, long, visible_alias = "sink", value_name = "LOCATION")]
    pub output: Option<PathBuf>,
    /// How S3 and Kinesis outputs are laid out.
    #[command(flatten)]
    pub sink: SinkArgs,
    /// Write every interval's result, not only anomalies (grade > 0).
    #[arg(long)]
    pub all: bool,
    /// Result format: `ndjson` (OpenSearch AD's result documents), `ocsf` (each
    /// anomaly as an OCSF 1.1.0 Detection Finding, class_uid 2004: evidence, the
    /// contributing values as observables, severity from the grade; results with
    /// grade 0 are not findings and are not written, even with --all; the mapping
    /// is in docs/ocsf.md) or `parquet` (result, incident and feedback documents as
    /// Parquet rows: to FILE.parquet or stdout one file, to a directory or
    /// s3://bucket/prefix one file per hour of data_start_time under
    /// YYYY/MM/DD/HH/; the columns are in docs/parquet.md).
    #[arg(long, value_enum, default_value_t = OutputFormat::Ndjson)]
    pub output_format: OutputFormat,
    /// Live input (a pipe from `waflog generate --realtime`, a growing file or
    /// stream): the watermark also advances with the wall clock while no record
    /// arrives, so an interval closes even when traffic stops, and results are
    /// flushed at once. A file is followed like `tail -F`: lines appended later are
    /// read, and when it is rotated (renamed or removed and created anew) or
    /// truncated, the new file is read from its start. A directory, a glob or
    /// several files are followed together: every file, the earliest line in event
    /// time first, new files (and new files at rotated paths) picked up every
    /// second, renamed ones not read again. A cloudwatch:// group is polled for new
    /// events every 2 s. Followed until --idle-exit or Ctrl-C. With --input-format csv
    /// each file is one series, followed in turn (each until --idle-exit).
    #[arg(long)]
    pub follow: bool,
    /// State file: the open intervals, models and baselines are restored from it at
    /// start (if it exists) and saved to it atomically as intervals close (at most
    /// once a second) and on exit, so a restart resumes without a cold start. With a
    /// state file the end of the input is not the end of the stream: intervals still
    /// open are kept for the next run instead of being scored. With `--input-format
    /// csv` each series (named after its file) keeps its model and last row: a later
    /// run continues it and skips the rows it has already scored.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Evaluate alerting monitors on the results and notify the channels
    /// (`[[monitors]]` and `[[channels]]` in the config). Configured monitors are
    /// always evaluated; with none configured this flag adds one per detector (the
    /// seed's UNK_source-Monitor for the source detector), or with `--input-format
    /// csv` one per series (`cpu-Monitor` for cpu.csv; a configured monitor may name
    /// the series as its detector). Without `[[channels]]`
    /// alerts are printed (on stderr when the results go to stdout). Alert state and
    /// undelivered notifications are kept in --state.
    #[arg(long)]
    pub alerts: bool,
    /// Ignore an existing state file and start over (it is overwritten).
    #[arg(long, requires = "state")]
    pub fresh: bool,
    /// Train on these logs first (repeatable; files or `-`), writing no results for
    /// them, so results on the inputs start warm instead of after a cold start.
    #[arg(long, value_name = "FILE")]
    pub history: Vec<String>,
    /// Input format: `waf` (NDJSON WAF logs, raw or transformed) or `csv` (generic
    /// metric series `timestamp,value[,value...]`, one row per interval as given, an
    /// optional header naming the features; each input is one series scored by the
    /// first configured detector's algorithm, or without [[detectors]] by the default
    /// metric detector, cad).
    #[arg(long, value_enum, default_value_t = InputFormat::Waf)]
    pub input_format: InputFormat,
    /// Most per-entity models kept per detector (detectors with a category_field);
    /// past it the least recently active entities are evicted and counted. Default:
    /// as many as fit in about 1 GiB for the detector's algorithm: 262144 for ewma
    /// and categorical (budgeted 4 KiB per model, about 1.9 KiB measured), about
    /// 7,400 for ewma_likelihood (its 8640-interval window), 3,226 for a one-feature
    /// rcf forest (333 KB budgeted, about 300 KB measured), about 9,700 for artime,
    /// 4,200 for the ensemble of artime and ewma_likelihood, and 107 for cad (10 MB
    /// budgeted at its context cap; 44 kB for the median NAB series).
    #[arg(long, value_name = "N")]
    pub max_entities: Option<usize>,
    /// How far ahead of the stream's event time a record may be (default 3h, or
    /// [input] horizon). A record further ahead is dead-lettered with the reason
    /// instead of moving the clock for every record after it; 8 such records in a
    /// row that agree with each other mean the stream really jumped (traffic resumed
    /// after a pause), and it is followed from the 8th. Records whose interval has
    /// closed for every detector are dead-lettered as late. Long gaps are
    /// zero-filled for at most a day of intervals (1,440), then skipped.
    #[arg(long, value_name = "DURATION")]
    pub horizon: Option<String>,
    /// Serve a live dashboard while detection runs, at ADDR (default
    /// 127.0.0.1:8080; loopback unless another address is given; port 0 picks a
    /// free port). The URL is logged at start. The page shows every detector's
    /// series with its expected band and anomaly grade, the anomalies with their
    /// explanation, anomaly counts per detector and entity over 24 hours and 7
    /// days, KPIs and the alerts with an acknowledge button; updates are pushed
    /// within a second. Read-only but for acknowledgements; requests with a
    /// foreign Host or Origin are refused. Before an input file name write
    /// `--dashboard=ADDR` (a bare `--dashboard FILE` takes FILE as the address).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::sink::dashboard::DEFAULT_ADDR)]
    pub dashboard: Option<String>,
    /// Another Host name the dashboard answers to (repeatable), e.g. the machine's
    /// name when it listens on 0.0.0.0. Only localhost and IP addresses are
    /// accepted otherwise.
    #[arg(long, value_name = "NAME", requires = "dashboard")]
    pub dashboard_host: Vec<String>,
    /// With --dashboard: how long the page stays up after the input ends (e.g.
    /// `10m`, `0s`). Default: until Ctrl-C. Acknowledgements still apply meanwhile.
    #[arg(long, value_name = "DURATION", requires = "dashboard")]
    pub linger: Option<String>,
    /// Worker threads that read the records of a file or S3 input (parse them,
    /// take out the detectors' fields and indicators) while the main thread
    /// aggregates and scores them in input order (0: one per core, at most 4; 1:
    /// everything on the main thread). Stdin, several inputs merged in event
    /// time, --follow, Kinesis and CSV series are read on the main thread. The
    /// results, alerts, state and dead letters are the same whatever the number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

/// Flags of `waflog report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results written by `waflog detect --all`: NDJSON files (`.gz` read
    /// transparently), `-` for stdin, or `s3://bucket/prefix/` (every object under
    /// it). Without --all only anomalies are there, and the charts show only them.
    #[arg(value_name = "RESULTS", required = true)]
    pub results: Vec<String>,
    /// The HTML file to write (stdout when `-`).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// A `waflog detect --state` file whose alerts the report lists.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The page's title (default: the result files' names).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// Where lines that are not result documents go, with the reason (stderr when
    /// absent).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
}

/// What `waflog transform` and `waflog detect` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON document per line: records (transform) or results (detect).
    Ndjson,
    /// OCSF 1.1.0 events, one per line: HTTP Activity (transform) or Detection
    /// Finding (detect).
    Ocsf,
    /// Parquet (Snappy): one typed column per field, for Athena and DuckDB. To a
    /// `.parquet` file or stdout: one file; to a directory or s3://bucket/prefix:
    /// one file per hour of event time under YYYY/MM/DD/HH/.
    Parquet,
}

/// What `waflog detect` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// NDJSON WAF logs.
    Waf,
    /// CSV metric series.
    Csv,
}

/// Flags of `waflog eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Results written by `waflog detect`: NDJSON files (`.gz` read
    /// transparently), `s3://bucket/prefix/` (every object under it), `-` or none
    /// for stdin.
    #[arg(value_name = "RESULTS")]
    pub results: Vec<String>,
    /// Ground truth written by `waflog generate --truth`.
    #[arg(long, value_name = "FILE")]
    pub truth: PathBuf,
    /// Intervals at the start ignored as warm-up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub warmup: i64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where lines that are not result documents go, with the reason (stderr when
    /// absent).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
}
