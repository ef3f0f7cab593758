//! Metric CSV rows (`waflog detect --input-format csv`): `timestamp,value[,value...]`,
//! one row per interval. The first row may be a header (`timestamp,cpu,latency`)
//! naming the values. Timestamps are read like WAF timestamps (epoch numbers of any
//! unit, RFC 3339, or `YYYY-MM-DD HH:MM:SS` as UTC); values must be finite numbers.

use crate::error::SchemaError;

/// One CSV line, read.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricRow {
    /// An empty line (skipped).
    Blank,
    /// A header: the names of the value columns.
    Header(Vec<String>),
    /// A data row.
    Values {
        /// The row's time, epoch milliseconds.
        time_ms: i64,
        /// The value columns.
        values: Vec<f64>,
    },
}

/// Reads one CSV line. `header_allowed`: the line may be a header (the first row
/// of a series): a row whose first column is not a time and whose other columns
/// are not numbers.
pub fn metric_row(line: &str, header_allowed: bool) -> Result<MetricRow, SchemaError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(MetricRow::Blank);
    }
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 2 {
        return Err(SchemaError::InvalidField(format!(
            "expected timestamp,value[,value...], found {} field(s)",
            fields.len()
        )));
    }
    let time_ms = match crate::timestamp::from_str_series(fields[0].trim_matches('"')) {
        Ok(ts) => ts,
        Err(_) if header_allowed && fields[1..].iter().all(|f| f.parse::<f64>().is_err()) => {
            return Ok(MetricRow::Header(
                fields[1..]
                    .iter()
                    .map(|f| f.trim_matches('"').to_string())
                    .collect(),
            ));
        }
        Err(e) => return Err(e),
    };
    let values = fields[1..]
        .iter()
        .map(|f| {
            f.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| SchemaError::InvalidField(format!("`{f}` is not a number")))
        })
        .collect::<Result<Vec<f64>, _>>()?;
    Ok(MetricRow::Values { time_ms, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_headers_and_errors() {
        assert_eq!(metric_row("  ", true), Ok(MetricRow::Blank));
        assert_eq!(
            metric_row("timestamp,\"cpu\", mem", true),
            Ok(MetricRow::Header(vec!["cpu".into(), "mem".into()]))
        );
        assert!(metric_row("timestamp,cpu", false).is_err());
        assert_eq!(
            metric_row("1714521600000,1.5,2", false),
            Ok(MetricRow::Values {
                time_ms: 1_714_521_600_000,
                values: vec![1.5, 2.0]
            })
        );
        assert!(metric_row("1714521600000", false).is_err());
        assert!(metric_row("1714521600000,NaN", false).is_err());
        assert!(metric_row("1714521600000,x", true).is_err());
    }
}
