//! Where records go: files and stdout ([`file::Output`], which also wraps the S3
//! and Kinesis sinks of `crate::aws`) and OpenSearch ([`opensearch`]).

pub mod file;
pub mod opensearch;
