//! Where records and results go: files and stdout ([`file::Output`], which also
//! wraps the other sinks), S3 objects ([`s3`]), Kinesis streams ([`kinesis`]),
//! OpenSearch ([`opensearch`]), Parquet files and objects ([`parquet`]), with
//! gzip on worker threads ([`gzip`]); where
//! alerts go ([`notifiers`]: console, file, webhook, SNS); and the live dashboard of `waflog detect --dashboard` with the
//! offline page of `waflog report` ([`dashboard`]).

pub mod dashboard;
pub mod file;
pub mod gzip;
pub mod kinesis;
pub mod notifiers;
pub mod opensearch;
pub mod parquet;
pub mod s3;
