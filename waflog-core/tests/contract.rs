//! The input contract (`waflog_core::record`): the transform and the detection
//! engine accept and refuse exactly the same lines.

use waflog_core::Config;
use waflog_core::detect::Engine;
use waflog_core::transform::Transformer;

const T: &str = "1714521600000";

fn corpus() -> Vec<(Vec<u8>, bool)> {
    let rec = |body: &str| format!(r#"{{"timestamp":{T},{body}}}"#).into_bytes();
    let mut c: Vec<(Vec<u8>, bool)> = vec![
        (rec(r#""action":"ALLOW""#), true),
        (rec(r#""httpStatus":502"#), true),
        (rec(r#""httpStatus":"502""#), true),
        (rec(r#""httpStatus":null,"responseCodeSent":403"#), true),
        (rec(r#""httpRequest":null"#), true),
        (
            rec(r#""httpRequest":{"country":"US","clientIp":"1.2.3.4"}"#),
            true,
        ),
        (rec(r#""labels":[{"name":"a"}],"x":1,"x":2"#), true),
        // A byte-order mark at the start of a file.
        (
            [b"\xef\xbb\xbf".as_slice(), &rec(r#""action":"BLOCK""#)].concat(),
            true,
        ),
        // Duplicated keys among the fields waflog reads.
        (rec(r#""action":"ALLOW","action":"BLOCK""#), false),
        (
            format!(r#"{{"timestamp":{T},"timestamp":{T}}}"#).into_bytes(),
            false,
        ),
        (rec(r#""httpStatus":200,"httpStatus":502"#), false),
        (
            rec(r#""httpRequest":{"country":"US","country":"FR"}"#),
            false,
        ),
        (
            rec(r#""httpRequest":{"httpMethod":"GET"},"httpRequest":{}"#),
            false,
        ),
        (rec(r#""UNK_country":1,"UNK_country":0"#), false),
        // Wrong types.
        (rec(r#""httpRequest":"GET / HTTP/1.1""#), false),
        (rec(r#""httpRequest":["GET"]"#), false),
        (rec(r#""httpRequest":7"#), false),
        (rec(r#""httpStatus":[502]"#), false),
        (rec(r#""httpStatus":true"#), false),
        (rec(r#""httpStatus":502.0"#), false),
        (rec(r#""responseCodeSent":{"code":403}"#), false),
        (rec(r#""action":3"#), false),
        (rec(r#""httpRequest":{"country":["US"]}"#), false),
        // Times outside 2000..9999 or in no unit.
        (br#"{"timestamp":0}"#.to_vec(), false),
        (br#"{"timestamp":1.5}"#.to_vec(), false),
        (br#"{"timestamp":"1970-01-01T00:00:00Z"}"#.to_vec(), false),
        (br#"{"timestamp":500000000000000}"#.to_vec(), false),
        (br#"{"timestamp":253402300740000}"#.to_vec(), true),
        (br#"{"timestamp":null}"#.to_vec(), false),
        (b"[1,2]".to_vec(), false),
        (b"{\"timestamp\":1714521600000".to_vec(), false),
        (b"\xff{}".to_vec(), false),
    ];
    // Valid records in other units (all 2024-05-01T00:00:00Z).
    for t in ["1714521600", "1714521600000000", "\"2024-05-01T00:00:00Z\""] {
        c.push((format!(r#"{{"timestamp":{t}}}"#).into_bytes(), true));
    }
    c
}

#[test]
fn transform_and_detect_accept_the_same_records() {
    let config = Config::default();
    let transformer = Transformer::new(config.feature_map().unwrap());
    for (line, expected) in corpus() {
        let shown = String::from_utf8_lossy(&line).into_owned();
        let mut out = Vec::new();
        let t = transformer.transform_line(&line, &mut out);
        // A fresh engine per line, so that time rules do not interfere.
        let mut engine =
            Engine::new(&config.detector_specs(), config.feature_map().unwrap()).unwrap();
        let d = engine.push_line(&line, &mut Vec::new());
        assert_eq!(t.is_ok(), expected, "transform on {shown}: {t:?}");
        assert_eq!(d.is_ok(), expected, "detect on {shown}: {d:?}");
        // A transformed record is a record too, and carries no byte-order mark.
        if let Ok(()) = t {
            assert!(!out.starts_with(b"\xef\xbb\xbf"), "{shown}");
            let mut again = Vec::new();
            transformer.transform_line(&out, &mut again).unwrap();
            engine.push_line(&out, &mut Vec::new()).unwrap();
        }
    }
}
