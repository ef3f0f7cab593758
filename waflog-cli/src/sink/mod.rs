//! Where records go: files and stdout ([`file::Output`], which also wraps the other
//! sinks), S3 objects ([`s3`]), Kinesis streams ([`kinesis`]) and OpenSearch
//! ([`opensearch`]).

pub mod file;
pub mod kinesis;
pub mod opensearch;
pub mod s3;
