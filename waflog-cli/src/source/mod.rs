//! Where records come from. Today: files and stdin; S3 and Kinesis land here next.

pub mod file;
