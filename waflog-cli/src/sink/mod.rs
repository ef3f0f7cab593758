//! Where records go. Today: files and stdout; S3, Kinesis and OpenSearch land here next.

pub mod file;
