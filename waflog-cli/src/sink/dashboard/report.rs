//! The offline page of `waflog report`: the dashboard's page with its assets
//! and a snapshot inlined, loading nothing from the network.

use waflog_core::dashboard::Snapshot;

use super::{APP_CSS, APP_JS, CHART_JS, INDEX_HTML};

const CSS_LINK: &str = r#"<link rel="stylesheet" href="assets/app.css">"#;
const CHART_TAG: &str = r#"<script src="assets/chart.umd.min.js"></script>"#;
const APP_TAG: &str = r#"<script src="assets/app.js"></script>"#;

/// The report may run its two inline scripts (pinned by hash, see
/// [`report_csp`]) and styles, and load nothing at all.
fn report_csp(scripts: &[&str]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hashes: Vec<String> = scripts
        .iter()
        .map(|js| {
            let digest = sha2::Sha256::digest(js.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src data:; \
         base-uri 'none'; form-action 'none'",
        hashes.join(" ")
    )
}

/// The offline report: the page with its assets and `snapshot` inlined, loading
/// nothing from the network.
pub fn report_html(snapshot: &Snapshot) -> anyhow::Result<String> {
    let data = script_json(&serde_json::to_string(snapshot)?);
    // The exact text of each script element, as its CSP hash covers it.
    let chart = format!("\n{}\n", inline_script(CHART_JS)?);
    let app = format!("\n{}\n", inline_script(APP_JS)?);
    let mut html = INDEX_HTML.to_string();
    for tag in [CSS_LINK, CHART_TAG, APP_TAG] {
        anyhow::ensure!(html.contains(tag), "the page template lacks `{tag}`");
    }
    html = html.replacen(CSS_LINK, &format!("<style>\n{APP_CSS}\n</style>"), 1);
    html = html.replacen(
        CHART_TAG,
        &format!(
            "<script id=\"waflog-data\" type=\"application/json\">{data}</script>\n<script>{chart}</script>"
        ),
        1,
    );
    html = html.replacen(APP_TAG, &format!("<script>{app}</script>"), 1);
    html = html.replacen(
        "<head>",
        &format!(
            "<head>\n<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
            report_csp(&[&chart, &app])
        ),
        1,
    );
    Ok(html)
}

/// JSON made safe inside `<script>`: no `<`, `>` or `&` (nor the line separators
/// old parsers take for line ends) appears as such, so no `</script` or `<!--`
/// from the logs can end or change the element. JSON reads the escapes back.
fn script_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A script inlined as it is, once checked to hold nothing that would end or
/// change its element (`</script`, `<!--`, any case).
fn inline_script(js: &'static str) -> anyhow::Result<&'static str> {
    let lower = js.to_ascii_lowercase();
    anyhow::ensure!(
        !lower.contains("</script") && !lower.contains("<!--"),
        "a bundled script cannot be inlined as it is"
    );
    Ok(js)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waflog_core::dashboard::Board;

    #[test]
    fn the_report_inlines_everything_and_loads_nothing() {
        let mut board = Board::report("t");
        let score = waflog_core::detect::Score {
            anomaly_score: 9.0,
            anomaly_grade: 0.9,
            confidence: 0.9,
            threshold: 5.0,
            expected: vec![1.0],
            attribution: vec![1.0],
            shifted_categories: vec![],
            band: vec![1.0],
        };
        let mut r = waflog_core::detect::AnomalyResult::from_score(
            "d",
            &["f".into()],
            &[9.0],
            &score,
            (0, 60_000),
            0,
        );
        r.examples = Some(vec![waflog_core::detect::result::ExampleRecord {
            client_ip: None,
            uri: Some("/</script><script>alert(1)</script><!--<script>&\u{2028}".into()),
            country: None,
            action: None,
        }]);
        board.push(&r);
        let html = report_html(&board.snapshot()).unwrap();
        assert!(!html.contains("src=\"assets/"), "no asset is loaded");
        assert!(!html.contains("href=\"assets/"));
        assert!(html.contains("id=\"waflog-data\""));
        assert!(html.contains("Content-Security-Policy"));
        // Only the two bundled scripts may run: pinned by hash, no 'unsafe-inline'.
        let csp = html
            .split("script-src ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(!csp.contains("unsafe-inline"));
        // A URI from the logs can neither close the data element nor open a
        // comment or script inside it: the data holds no `<` at all.
        let data = html
            .split("<script id=\"waflog-data\" type=\"application/json\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap();
        assert!(!data.contains('<') && !data.contains('>') && !data.contains('&'));
        let back: Snapshot = serde_json::from_str(data).unwrap();
        assert_eq!(
            back.anomalies[0].examples[0].uri.as_deref(),
            Some("/</script><script>alert(1)</script><!--<script>&\u{2028}")
        );
        assert!(html.contains("Chart.js v4.6.1"));
    }
}
