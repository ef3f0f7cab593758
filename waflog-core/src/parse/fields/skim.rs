//! The fast path of [`FieldSet::extract`](super::FieldSet::extract): the field trie
//! walked over a [`Skim`] scan (see [`crate::parse::skim`] for what the scanner
//! accepts and when it bails). Besides the scanner's own cases, the walk bails on
//! everything the field contract rejects (a repeated checked key, a checked parent
//! that is not an object, a status that is not an integer, a string or `null`) and
//! on escaped strings it would keep, so that serde_json reads those lines. Array
//! paths (`labels[].name`) always take the serde_json path.

use std::borrow::Cow;

use super::{Node, Scalar};
use crate::parse::skim::{Bail, Skim, Step};

/// Fills `out` (already `None` for every path) from the object `text`; on a bail
/// `out` may hold some values and must be cleared by the caller.
pub(super) fn extract<'a>(root: &Node, text: &'a str, out: &mut [Option<Scalar<'a>>]) -> Step<()> {
    let mut s = Skim::new(text)?;
    object(&mut s, root, out, 1)?;
    s.end()
}

/// Walks the object at the position, keeping the values of `node`'s paths.
fn object<'a>(
    s: &mut Skim<'a>,
    node: &Node,
    out: &mut [Option<Scalar<'a>>],
    depth: usize,
) -> Step<()> {
    // Which checked children were seen (a repeat is serde_json's error to word).
    let mut seen = 0u128;
    s.members(depth, |s, key| {
        let Some((pos, child)) = node.child(key) else {
            return s.skip(depth);
        };
        if child.checked && pos < 128 {
            if seen & (1 << pos) != 0 {
                return Err(Bail);
            }
            seen |= 1 << pos;
        }
        if let Some(id) = child.leaf {
            let v = scalar(s, child.status, depth)?;
            *out.get_mut(id).ok_or(Bail)? = Some(v);
            Ok(())
        } else {
            interior(s, child, out, depth)
        }
    })
}

/// The value of an interior node: an object is walked, `null` is nothing, and
/// anything else is skipped unless the node is checked (then it is an error).
fn interior<'a>(
    s: &mut Skim<'a>,
    node: &Node,
    out: &mut [Option<Scalar<'a>>],
    depth: usize,
) -> Step<()> {
    match s.peek()? {
        b'{' => object(s, node, out, depth + 1),
        b'n' => s.literal(b"null"),
        _ if node.checked => Err(Bail),
        _ => s.skip(depth),
    }
}

/// A leaf value; a status leaf takes only an integer, a string or `null`.
fn scalar<'a>(s: &mut Skim<'a>, status: bool, depth: usize) -> Step<Scalar<'a>> {
    Ok(match s.peek()? {
        b'"' => Scalar::Str(Cow::Borrowed(s.string()?.ok_or(Bail)?)),
        b'n' => {
            s.literal(b"null")?;
            Scalar::Null
        }
        _ if status => {
            let (v, integer) = s.number()?;
            if !integer {
                return Err(Bail);
            }
            Scalar::Num(v)
        }
        b't' => {
            s.literal(b"true")?;
            Scalar::Bool(true)
        }
        b'f' => {
            s.literal(b"false")?;
            Scalar::Bool(false)
        }
        b'{' | b'[' => {
            s.skip(depth)?;
            Scalar::Composite
        }
        _ => Scalar::Num(s.number()?.0),
    })
}

#[cfg(test)]
mod tests {
    use super::super::FieldSet;
    use super::*;

    fn fields() -> FieldSet {
        let mut f = FieldSet::new();
        f.add_checked("timestamp");
        f.add_checked("action");
        f.add_checked("httpRequest.clientIp");
        f.add_checked("httpRequest.country");
        f.add("httpRequest.httpMethod");
        f.add_status("responseCodeSent");
        f.add("requestBodySize");
        f.add("labels");
        f.add("httpRequest.headers");
        f.add("flag");
        f
    }

    const LINE: &str = r#"{"timestamp":1714521600000,"formatVersion":1,"action":"ALLOW","terminatingRuleId":"Default_Action","ruleGroupList":[{"ruleGroupId":"AWS#AWSManagedRulesCommonRuleSet","terminatingRule":null,"excludedRules":null}],"rateBasedRuleList":[],"httpRequest":{"clientIp":"203.0.113.7","country":"US","headers":[{"name":"Host","value":"example.com"},{"name":"User-Agent","value":"Mozilla/5.0 \"x\""}],"uri":"/login","args":"a=1&b=2","httpVersion":"HTTP/1.1","httpMethod":"POST","requestId":"abc-123"},"responseCodeSent":403,"requestBodySize":-12.5e1,"labels":[{"name":"awswaf:clientip:geo:country:US"}],"flag":true,"n":[0,-0,1e-3,true,false,null,{},[]]}"#;

    /// The serde_json path alone.
    fn slow<'a>(f: &FieldSet, line: &'a str) -> Result<Vec<Option<Scalar<'a>>>, String> {
        let mut out = Vec::new();
        f.extract_serde(line, &mut out)
            .map(|()| out)
            .map_err(|e| e.to_string())
    }

    /// The fast path alone.
    fn fast<'a>(f: &FieldSet, line: &'a str) -> Step<Vec<Option<Scalar<'a>>>> {
        let mut out = vec![None; f.len()];
        extract(&f.root, line, &mut out).map(|()| out)
    }

    #[test]
    fn a_usual_record_takes_the_fast_path_with_the_same_values() {
        let f = fields();
        let quick = fast(&f, LINE).expect("the fast path reads a usual record");
        assert_eq!(Ok(quick.clone()), slow(&f, LINE));
        assert_eq!(quick[0], Some(Scalar::Num(1_714_521_600_000.0)));
        assert_eq!(quick[3], Some(Scalar::Str(Cow::Borrowed("US"))));
        assert_eq!(quick[5], Some(Scalar::Num(403.0)));
        assert_eq!(quick[6], Some(Scalar::Num(-125.0)));
        assert_eq!(quick[7], Some(Scalar::Composite));
        assert_eq!(quick[9], Some(Scalar::Bool(true)));
    }

    #[test]
    fn what_the_contract_rejects_is_left_to_serde_json() {
        let f = fields();
        for line in [
            r#"{"timestamp":1,"timestamp":2}"#,
            r#"{"timestamp":1,"httpRequest":[1]}"#,
            r#"{"timestamp":1,"responseCodeSent":502.0}"#,
            r#"{"timestamp":1,"responseCodeSent":-0}"#,
            r#"{"timestamp":1,"responseCodeSent":true}"#,
            r#"{"timestamp":1,"action":"A\u0042"}"#,
            r#"{"timestamp":1,"x":"\ud800"}"#,
            "{\"timestamp\":1,\"x\":\"a\tb\"}",
            r#"{"timestamp":1e999}"#,
            r#"{"timestamp":123456789012345678901}"#,
            r#"{"timestamp":1,}"#,
            r#"{"timestamp":01}"#,
            r#"{"timestamp":1} {}"#,
        ] {
            assert_eq!(fast(&f, line), Err(Bail), "{line}");
        }
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(fast(&f, &deep), Err(Bail));
    }

    /// Lines the fast path accepts are exactly lines serde_json accepts, with the
    /// same values: thousands of random edits of a record, fixed seed.
    #[test]
    fn random_edits_never_make_the_two_paths_disagree() {
        let f = fields();
        let alphabet = b"{}[]:,\"\\ -+.eE0123456789tfnulrsa/\t";
        let mut fast_hits = 0;
        crate::parse::skim::each_random_edit(LINE, alphabet, 7, 60_000, |line| {
            if let Ok(values) = fast(&f, line) {
                fast_hits += 1;
                assert_eq!(Ok(values), slow(&f, line), "{line}");
            }
        });
        eprintln!("{fast_hits} edits took the fast path");
        assert!(
            fast_hits > 1_000,
            "only {fast_hits} edits took the fast path"
        );
    }
}
