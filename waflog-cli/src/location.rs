//! Where data comes from or goes to: a path, `-` (stdin/stdout), `s3://bucket/prefix`,
//! `kinesis://stream-name` or `cloudwatch://log-group` (an input only). Every input
//! argument and `--output` takes one.

use std::fmt;
use std::path::PathBuf;

/// A parsed input or output location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Standard input or output (`-`).
    Stdio,
    /// A local file.
    File(PathBuf),
    /// Objects under `prefix` (may be empty) in an S3 bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, without a leading `/`.
        prefix: String,
    },
    /// A Kinesis data stream, by name.
    Kinesis {
        /// Stream name.
        stream: String,
    },
    /// A CloudWatch Logs log group (`cloudwatch://GROUP[?prefix=STREAM_PREFIX]`).
    CloudWatch {
        /// Log group name (`aws-waf-logs-...` for WAF).
        group: String,
        /// Only the log streams whose names start with this.
        prefix: Option<String>,
    },
    /// An index of an OpenSearch cluster.
    OpenSearch {
        /// `https://host:port/` (or `http://` when written `opensearch+http://`).
        url: String,
        /// Index name (the base name when time suffixes are added).
        index: String,
    },
}

impl Location {
    /// Parses `text`. Anything without a `scheme://` is a file path; an unknown
    /// scheme is an error that lists the known ones.
    pub fn parse(text: &str) -> anyhow::Result<Location> {
        if text == "-" {
            return Ok(Location::Stdio);
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(Location::File(PathBuf::from(text)));
        };
        match scheme {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if !valid_bucket(bucket) {
                    anyhow::bail!(
                        "`{text}`: `{bucket}` is not an S3 bucket name (3-63 characters: a-z, 0-9, `.`, `-`)"
                    );
                }
                Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.to_string(),
                })
            }
            "kinesis" => {
                let stream = rest.trim_end_matches('/');
                if stream.is_empty()
                    || stream.len() > 128
                    || !stream
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                {
                    anyhow::bail!(
                        "`{text}`: `{stream}` is not a Kinesis stream name (1-128 characters: a-z, A-Z, 0-9, `_`, `.`, `-`)"
                    );
                }
                Ok(Location::Kinesis {
                    stream: stream.to_string(),
                })
            }
            "cloudwatch" => cloudwatch(text, rest),
            "file" => Ok(Location::File(PathBuf::from(rest))),
            "opensearch" | "opensearch+https" | "opensearch+http" => {
                let (host, index) = rest.split_once('/').unwrap_or((rest, ""));
                let index = index.trim_end_matches('/');
                if host.is_empty() || index.is_empty() || index.contains('/') {
                    anyhow::bail!(
                        "`{text}`: expected opensearch://HOST[:PORT]/INDEX (opensearch+http:// for plain HTTP)"
                    );
                }
                Ok(Location::OpenSearch {
                    url: cluster_url(scheme, host),
                    index: index.to_string(),
                })
            }
            other => anyhow::bail!(
                "`{text}`: unknown scheme `{other}://` (use a path, `-`, s3://bucket/prefix, kinesis://stream, cloudwatch://log-group or opensearch://host:port/index)"
            ),
        }
    }
}

/// `cloudwatch://GROUP[?prefix=STREAM_PREFIX]` (`rest` after the scheme).
fn cloudwatch(text: &str, rest: &str) -> anyhow::Result<Location> {
    let (group, query) = rest.split_once('?').unwrap_or((rest, ""));
    // Log group names: 1-512 of a-z, A-Z, 0-9, `_`, `-`, `/`, `.`, `#`.
    if group.is_empty()
        || group.len() > 512
        || !group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b))
    {
        anyhow::bail!(
            "`{text}`: `{group}` is not a CloudWatch Logs group name (1-512 characters: a-z, A-Z, 0-9, `_`, `-`, `/`, `.`, `#`)"
        );
    }
    let prefix = match query {
        "" => None,
        q => match q.strip_prefix("prefix=") {
            Some(p) if !p.is_empty() && !p.contains('&') => Some(p.to_string()),
            _ => anyhow::bail!(
                "`{text}`: expected cloudwatch://LOG_GROUP or cloudwatch://LOG_GROUP?prefix=STREAM_PREFIX"
            ),
        },
    };
    Ok(Location::CloudWatch {
        group: group.to_string(),
        prefix,
    })
}

/// `https://host:port/` (`http://` for `opensearch+http`), port 9200 by default.
fn cluster_url(scheme: &str, host: &str) -> String {
    let http = if scheme == "opensearch+http" {
        "http"
    } else {
        "https"
    };
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:9200")
    };
    format!("{http}://{host}/")
}

/// A cluster without an index: `opensearch://HOST[:PORT][/]` (or
/// `opensearch+http://`), as `https://host:port/`.
pub fn parse_cluster(text: &str) -> anyhow::Result<String> {
    let err = || {
        anyhow::anyhow!(
            "`{text}`: expected opensearch://HOST[:PORT] (opensearch+http:// for plain HTTP)"
        )
    };
    let (scheme, rest) = text.split_once("://").ok_or_else(err)?;
    let host = rest.trim_end_matches('/');
    if !matches!(
        scheme,
        "opensearch" | "opensearch+https" | "opensearch+http"
    ) || host.is_empty()
        || host.contains('/')
    {
        return Err(err());
    }
    Ok(cluster_url(scheme, host))
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Stdio => f.write_str("-"),
            Location::File(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::Kinesis { stream } => write!(f, "kinesis://{stream}"),
            Location::CloudWatch {
                group,
                prefix: None,
            } => write!(f, "cloudwatch://{group}"),
            Location::CloudWatch {
                group,
                prefix: Some(p),
            } => write!(f, "cloudwatch://{group}?prefix={p}"),
            Location::OpenSearch { url, index } => write!(f, "{url}{index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(Location::parse("-").unwrap(), Location::Stdio);
        assert_eq!(
            Location::parse("logs/a.ndjson.gz").unwrap(),
            Location::File("logs/a.ndjson.gz".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::File("/tmp/x".into())
        );
        assert_eq!(
            Location::parse("s3://my-logs/AWSLogs/123/").unwrap(),
            Location::S3 {
                bucket: "my-logs".into(),
                prefix: "AWSLogs/123/".into()
            }
        );
        assert_eq!(
            Location::parse("s3://my-logs").unwrap(),
            Location::S3 {
                bucket: "my-logs".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Location::parse("kinesis://aws-waf-logs-x").unwrap(),
            Location::Kinesis {
                stream: "aws-waf-logs-x".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b-1/p").unwrap().to_string(),
            "s3://b-1/p"
        );
        assert_eq!(
            Location::parse("opensearch://search.example.com/waf-logs").unwrap(),
            Location::OpenSearch {
                url: "https://search.example.com:9200/".into(),
                index: "waf-logs".into()
            }
        );
        assert_eq!(
            Location::parse("cloudwatch://aws-waf-logs-shop").unwrap(),
            Location::CloudWatch {
                group: "aws-waf-logs-shop".into(),
                prefix: None
            }
        );
        assert_eq!(
            Location::parse("cloudwatch:///aws/waf#x?prefix=us-east-1_acl_").unwrap(),
            Location::CloudWatch {
                group: "/aws/waf#x".into(),
                prefix: Some("us-east-1_acl_".into())
            }
        );
        assert_eq!(
            parse_cluster("opensearch+http://127.0.0.1:9201/").unwrap(),
            "http://127.0.0.1:9201/"
        );
        assert!(parse_cluster("opensearch://h/idx").is_err());
        assert_eq!(
            Location::parse("opensearch+http://127.0.0.1:9201/r/").unwrap(),
            Location::OpenSearch {
                url: "http://127.0.0.1:9201/".into(),
                index: "r".into()
            }
        );
    }

    #[test]
    fn bad_locations_say_why() {
        for (text, needle) in [
            ("s3://", "not an S3 bucket"),
            ("s3://Upper/x", "not an S3 bucket"),
            ("kinesis://", "not a Kinesis stream"),
            ("kinesis://a b", "not a Kinesis stream"),
            ("ftp://host/x", "unknown scheme `ftp://`"),
            ("cloudwatch://", "not a CloudWatch Logs group"),
            ("cloudwatch://a b", "not a CloudWatch Logs group"),
            ("cloudwatch://g?stream=x", "expected cloudwatch://LOG_GROUP"),
            ("cloudwatch://g?prefix=", "expected cloudwatch://LOG_GROUP"),
            ("opensearch://host", "expected opensearch://HOST"),
            ("opensearch://host/a/b", "expected opensearch://HOST"),
        ] {
            let e = Location::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
