//! Pulls the values of a set of dotted field paths out of one JSON line.
//!
//! Like the transform's [`crate::parse::view::RecordView`], this parses the whole line
//! (so it is validated) but keeps only what the detectors need, borrowed from the line
//! where possible; the set of paths is only known at run time, from the detector
//! configuration, so it is walked as a small trie instead of a derived struct.
//!
//! A path segment ending in `[]` walks into every element of an array: `labels[].name`
//! is the `name` of each element of `labels`, `oversizeFields[]` each string of
//! `oversizeFields`, `rateBasedRuleList[].customValues[].value` nests. Such a path
//! gives a [`Scalar::List`] of the values found (in record order; `None` when the
//! array is absent, `null` or has no such value).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::SchemaError;
use crate::parse::schema::KeySeed;

mod skim;

/// One extracted value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An object or array (present, but not a scalar).
    Composite,
    /// The values of an array path (`labels[].name`), in record order; never empty.
    /// Boxed, so that a `Scalar` stays three words like the `Cow` it mostly holds
    /// (an unboxed `Vec` makes every extracted value a word larger, and detection
    /// about a fifth slower).
    #[allow(clippy::box_collection)] // the point: one word instead of three
    List(Box<Vec<Scalar<'a>>>),
}

impl Scalar<'_> {
    /// The numeric value: numbers, booleans (0/1) and numeric strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as text, for filters and distinct counts (numbers as written by
    /// Rust's shortest round-trip formatting, so `200` and `"200"` compare equal). A
    /// list is its elements' texts joined by `,` (one category per combination, for
    /// the categorical detector, contributors and examples); category fields and
    /// filters use [`Scalar::texts`] instead.
    #[inline]
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Scalar::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            Scalar::Num(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            // Out of line, so that the scalar cases (every record) stay inlinable.
            Scalar::List(items) => list_text(items),
            _ => None,
        }
    }

    /// The value's texts: one for a scalar ([`Scalar::as_text`]), one per element
    /// for a list. A filter passes when any of them is accepted; a category field
    /// counts the record once under each distinct one.
    pub fn texts(&self) -> Vec<Cow<'_, str>> {
        match self {
            Scalar::List(items) => items.iter().filter_map(Scalar::as_text).collect(),
            other => other.as_text().into_iter().collect(),
        }
    }

    /// The scalar values: the elements of a list, else the value itself.
    pub fn items(&self) -> &[Scalar<'_>] {
        match self {
            Scalar::List(items) => items,
            other => std::slice::from_ref(other),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// (path segment, node); a segment may end in `[]`.
    children: Vec<(String, Node)>,
    /// The path segment ended in `[]`: the value is an array, walked element by
    /// element, and the leaves below collect into [`Scalar::List`].
    each: bool,
    /// The JSON key it reads: its segment without `[]` (`labels` and `labels[]` name
    /// the same key; kept apart so the per-key look-up is one comparison).
    key: String,
    leaf: Option<usize>,
    /// Part of the input contract ([`FieldSet::add_checked`]): a second occurrence
    /// of the key in its object is an error, and an interior node must be an object
    /// (or `null`).
    checked: bool,
    /// A status leaf ([`FieldSet::add_status`]): only an integer, a string or `null`.
    status: bool,
    /// The children's positions by key length (insertion order within a length): a
    /// record's key is compared only with the few children of its length.
    by_len: Vec<Vec<usize>>,
}

impl Node {
    /// The child that reads `key`: the first added, when `labels` and `labels[]`
    /// both are.
    #[inline]
    fn child(&self, key: &str) -> Option<(usize, &Node)> {
        let positions = self.by_len.get(key.len())?;
        positions.iter().find_map(|&p| {
            let child = &self.children[p].1;
            (child.key == key).then_some((p, child))
        })
    }

    /// Rebuilds [`Node::by_len`] here and below, after a path was added.
    fn index_keys(&mut self) {
        self.by_len.clear();
        for (p, (_, child)) in self.children.iter_mut().enumerate() {
            let len = child.key.len();
            if self.by_len.len() <= len {
                self.by_len.resize(len + 1, Vec::new());
            }
            self.by_len[len].push(p);
            child.index_keys();
        }
    }
}

/// A set of field paths to extract; each gets a stable index.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSet {
    paths: Vec<String>,
    root: Node,
    /// Some path walks an array (`labels[].name`).
    arrays: bool,
}

impl FieldSet {
    /// An empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Adds a dotted path (if new) and returns its index.
    pub fn add(&mut self, path: &str) -> usize {
        self.add_with(path, false)
    }

    /// Adds a path of the input contract (see [`crate::parse`]): a record that
    /// repeats one of its keys is rejected, and its parents must be objects.
    pub fn add_checked(&mut self, path: &str) -> usize {
        self.add_with(path, true)
    }

    /// Adds a checked status path: its value must be an integer, a string or `null`
    /// (`502.0`, `true`, `[502]` are rejected).
    pub fn add_status(&mut self, path: &str) -> usize {
        let id = self.add_with(path, true);
        let mut node = &mut self.root;
        for part in path.split('.') {
            let pos = node.children.iter().position(|(k, _)| k == part);
            match pos {
                Some(p) => node = &mut node.children[p].1,
                None => return id,
            }
        }
        node.status = true;
        id
    }

    fn add_with(&mut self, path: &str, checked: bool) -> usize {
        if checked {
            let mut node = &mut self.root;
            for part in path.split('.') {
                let Some(p) = node.children.iter().position(|(k, _)| k == part) else {
                    break;
                };
                node = &mut node.children[p].1;
                node.checked = true;
            }
        }
        if let Some(i) = self.index(path) {
            return i;
        }
        let id = self.paths.len();
        self.paths.push(path.to_string());
        let mut node = &mut self.root;
        for part in path.split('.') {
            let pos = match node.children.iter().position(|(k, _)| k == part) {
                Some(p) => p,
                None => {
                    let key = part.strip_suffix("[]").unwrap_or(part);
                    let child = Node {
                        each: part.len() != key.len(),
                        key: key.to_string(),
                        ..Node::default()
                    };
                    node.children.push((part.to_string(), child));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[pos].1;
            node.checked |= checked;
        }
        node.leaf = Some(id);
        self.arrays |= path.split('.').any(|part| part.ends_with("[]"));
        self.root.index_keys();
        id
    }

    /// The index of a path already added.
    pub fn index(&self, path: &str) -> Option<usize> {
        self.paths.iter().position(|p| p == path)
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Parses `line` (a JSON object) and fills `out[i]` with the value of path `i`
    /// (`None` when absent). The whole line is validated as JSON.
    ///
    /// Usual records take a byte-level fast path ([`skim`]); whatever it leaves
    /// (errors included) is read by serde_json, so values and errors are the same
    /// either way.
    pub fn extract<'a>(
        &self,
        line: &'a str,
        out: &mut Vec<Option<Scalar<'a>>>,
    ) -> Result<(), serde_json::Error> {
        out.clear();
        out.resize(self.paths.len(), None);
        if !self.arrays && skim::extract(&self.root, line, out).is_ok() {
            return Ok(());
        }
        self.extract_serde(line, out)
    }

    /// [`FieldSet::extract`] by serde_json alone.
    fn extract_serde<'a>(
        &self,
        line: &'a str,
        out: &mut Vec<Option<Scalar<'a>>>,
    ) -> Result<(), serde_json::Error> {
        out.clear();
        out.resize(self.paths.len(), None);
        let mut de = serde_json::Deserializer::from_str(line);
        // Without array paths (the default detectors) the walk compiles without
        // their branches: the per-key loop is the hottest code of detection.
        if self.arrays {
            NodeSeed::<true> {
                node: &self.root,
                out,
                collect: false,
            }
            .deserialize(&mut de)?;
        } else {
            NodeSeed::<false> {
                node: &self.root,
                out,
                collect: false,
            }
            .deserialize(&mut de)?;
        }
        de.end()
    }
}

/// [`Scalar::as_text`] of a list: its elements' texts joined by `,`.
#[inline(never)]
fn list_text<'s>(items: &'s [Scalar<'_>]) -> Option<Cow<'s, str>> {
    let texts: Vec<Cow<'_, str>> = items.iter().filter_map(Scalar::as_text).collect();
    match texts.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => Some(Cow::Owned(texts.join(","))),
    }
}

/// Stores a leaf value: replaces it, or appends it to the list under an array path.
fn put<'a>(slot: &mut Option<Scalar<'a>>, v: Scalar<'a>, collect: bool) {
    if !collect {
        *slot = Some(v);
        return;
    }
    if matches!(v, Scalar::Null) {
        return;
    }
    match slot {
        Some(Scalar::List(items)) => items.push(v),
        _ => *slot = Some(Scalar::List(Box::new(vec![v]))),
    }
}

/// The value of an array segment: each element goes to `node` (a leaf element is
/// collected; an object element is walked). `null` and non-arrays give nothing.
struct EachSeed<'n, 'o, 'a> {
    node: &'n Node,
    out: &'o mut Vec<Option<Scalar<'a>>>,
}

impl<'de, 'n, 'o> DeserializeSeed<'de> for EachSeed<'n, 'o, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'n, 'o> Visitor<'de> for EachSeed<'n, 'o, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(id) = self.node.leaf {
            while let Some(v) = seq.next_element_seed(ScalarSeed { status: false })? {
                put(&mut self.out[id], v, true);
            }
        } else {
            while seq
                .next_element_seed(NodeSeed::<true> {
                    node: self.node,
                    out: self.out,
                    collect: true,
                })?
                .is_some()
            {}
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Walks one node of the trie; `ARRAYS` is false when no path has an array segment.
struct NodeSeed<'n, 'o, 'a, const ARRAYS: bool> {
    node: &'n Node,
    out: &'o mut Vec<Option<Scalar<'a>>>,
    /// Inside an array path: leaves append to a list.
    collect: bool,
}

impl<'de, 'n, 'o, const ARRAYS: bool> DeserializeSeed<'de> for NodeSeed<'n, 'o, 'de, ARRAYS> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'n, 'o, const ARRAYS: bool> Visitor<'de> for NodeSeed<'n, 'o, 'de, ARRAYS> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Which checked children were seen in this object (duplicates are errors).
        let mut seen = 0u128;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.node.child(&key) {
                Some((pos, child)) => {
                    if child.checked && pos < 128 {
                        if seen & (1 << pos) != 0 {
                            return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                        }
                        seen |= 1 << pos;
                    }
                    if ARRAYS && child.each {
                        map.next_value_seed(EachSeed {
                            node: child,
                            out: self.out,
                        })?;
                    } else if let Some(id) = child.leaf {
                        let v = map.next_value_seed(ScalarSeed {
                            status: child.status,
                        })?;
                        if ARRAYS && self.collect {
                            put(&mut self.out[id], v, true);
                        } else {
                            self.out[id] = Some(v);
                        }
                    } else {
                        map.next_value_seed(NodeSeed::<ARRAYS> {
                            node: child,
                            out: self.out,
                            collect: self.collect,
                        })?;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.not_an_object::<A::Error>("an array")?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_an_object("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_an_object("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_an_object("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_an_object("a number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_an_object("a string")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

impl<const ARRAYS: bool> NodeSeed<'_, '_, '_, ARRAYS> {
    /// A checked interior node (such as `httpRequest`) holds an object or `null`.
    fn not_an_object<E: de::Error>(&self, found: &str) -> Result<(), E> {
        if self.node.checked {
            Err(E::custom(format_args!(
                "invalid type: {found}, expected an object"
            )))
        } else {
            Ok(())
        }
    }
}

/// Reads one leaf value; a status leaf takes only integers, strings and `null`.
struct ScalarSeed {
    status: bool,
}

impl ScalarSeed {
    fn wrong_status<E: de::Error>(&self, found: fmt::Arguments<'_>) -> Result<(), E> {
        if self.status {
            Err(E::custom(format_args!(
                "invalid type: {found}, expected an integer or a string status code"
            )))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    #[inline(always)]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.wrong_status(format_args!("boolean `{v}`"))?;
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.wrong_status(format_args!("floating point `{v}`"))?;
        Ok(Scalar::Num(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.wrong_status::<A::Error>(format_args!("map"))?;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.wrong_status::<A::Error>(format_args!("sequence"))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
}

/// Converts a record's `timestamp` value, as field extraction found it (`None` when
/// absent), to epoch milliseconds: a number of unknown unit
/// ([`crate::timestamp::from_f64`]) or a text ([`crate::timestamp::from_str`]).
/// Detection and the sinks' routing read the time this one way. (Here rather than in
/// `timestamp`, which the parsers below it use: no import circle.)
pub(crate) fn timestamp_ms(v: Option<&Scalar<'_>>) -> Result<i64, SchemaError> {
    match v {
        None | Some(Scalar::Null) => Err(SchemaError::MissingTimestamp),
        Some(Scalar::Num(n)) => crate::timestamp::from_f64(*n),
        Some(Scalar::Str(s)) => crate::timestamp::from_str(s),
        Some(_) => Err(SchemaError::InvalidTimestamp {
            value: "an object or boolean".into(),
            reason: "must be a number or a string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_nested_paths_and_skips_the_rest() {
        let mut f = FieldSet::new();
        let ts = f.add("timestamp");
        let country = f.add("httpRequest.country");
        let ip = f.add("httpRequest.clientIp");
        let status = f.add("httpStatus");
        let missing = f.add("labels.name");
        let headers = f.add("httpRequest.headers");
        assert_eq!(f.add("timestamp"), ts);
        let line = r#"{"timestamp":1714521600000,"labels":[{"name":"x"}],"httpRequest":{"clientIp":"1.2.3.4","country":"U\u0053","headers":[{"name":"a"}]},"httpStatus":"503","other":{"httpRequest":{"country":"no"}}}"#;
        let mut out = Vec::new();
        f.extract(line, &mut out).unwrap();
        assert_eq!(out[ts], Some(Scalar::Num(1_714_521_600_000.0)));
        assert_eq!(out[country], Some(Scalar::Str(Cow::Owned("US".into()))));
        assert_eq!(out[ip], Some(Scalar::Str(Cow::Borrowed("1.2.3.4"))));
        assert_eq!(out[status].as_ref().and_then(Scalar::as_f64), Some(503.0));
        assert_eq!(out[missing], None);
        assert_eq!(out[headers], Some(Scalar::Composite));
    }

    #[test]
    fn invalid_json_is_an_error_even_in_skipped_parts() {
        let mut f = FieldSet::new();
        f.add("timestamp");
        let mut out = Vec::new();
        assert!(f.extract(r#"{"timestamp":1,"x":[1,}"#, &mut out).is_err());
        assert!(f.extract(r#"{"timestamp":1} x"#, &mut out).is_err());
        assert!(
            f.extract(r#"{"timestamp":1,"httpRequest":null}"#, &mut out)
                .is_ok()
        );
    }

    #[test]
    fn checked_paths_reject_duplicates_wrong_parents_and_float_statuses() {
        let mut f = FieldSet::new();
        f.add_checked("timestamp");
        f.add_checked("httpRequest.country");
        f.add_status("httpStatus");
        let other = f.add("labels.name");
        let mut out = Vec::new();
        let err = |f: &FieldSet, line: &str| {
            let mut out = Vec::new();
            f.extract(line, &mut out).unwrap_err().to_string()
        };
        assert!(
            err(&f, r#"{"timestamp":1,"timestamp":2}"#).contains("duplicate field `timestamp`")
        );
        assert!(
            err(
                &f,
                r#"{"timestamp":1,"httpRequest":{"country":"US","country":"FR"}}"#
            )
            .contains("duplicate field `country`")
        );
        assert!(err(&f, r#"{"timestamp":1,"httpRequest":"GET /"}"#).contains("expected an object"));
        assert!(err(&f, r#"{"timestamp":1,"httpRequest":[1]}"#).contains("expected an object"));
        for bad in ["502.0", "true", "[502]", "{}"] {
            let line = format!(r#"{{"timestamp":1,"httpStatus":{bad}}}"#);
            assert!(err(&f, &line).contains("status code"), "{bad}");
        }
        for good in ["502", "\"502\"", "null"] {
            let line = format!(r#"{{"timestamp":1,"httpStatus":{good}}}"#);
            assert!(f.extract(&line, &mut Vec::new()).is_ok(), "{good}");
        }
        // Unchecked paths keep the old leniency: repeated keys, arrays as parents.
        let line = r#"{"timestamp":1,"httpRequest":null,"labels":[{"name":"a"}],"x":1,"x":2}"#;
        f.extract(line, &mut out).unwrap();
        assert_eq!(out[other], None);
    }

    #[test]
    fn array_paths_collect_every_element() {
        let mut f = FieldSet::new();
        let labels = f.add("labels[].name");
        let limit = f.add("rateBasedRuleList[].limitKey");
        let custom = f.add("rateBasedRuleList[].customValues[].value");
        let rates = f.add("rateBasedRuleList[].maxRateAllowed");
        let oversize = f.add("oversizeFields[]");
        let rules = f.add("ruleGroupList[].nonTerminatingMatchingRules[].ruleId");
        let ja4 = f.add("ja4Fingerprint");
        let asn = f.add("clientAsn");
        let whole = f.add("labels");
        let line = r#"{"timestamp":1,"labels":[{"name":"a:b"},{"other":1},{"name":null},{"name":"c\u0064"}],"rateBasedRuleList":[{"limitKey":"IP","maxRateAllowed":100},{"limitKey":"CUSTOMKEYS","maxRateAllowed":"50","customValues":[{"key":"HEADER","value":"k1"},{"value":"k2"}]}],"oversizeFields":["REQUEST_BODY"],"ruleGroupList":[{"nonTerminatingMatchingRules":[{"ruleId":"r1"}]},{"nonTerminatingMatchingRules":null},{"nonTerminatingMatchingRules":[{"ruleId":"r2"}]}],"ja4Fingerprint":"t13d1516h2_0a1b2c3d4e5f_f9e8d7c6b5a4","clientAsn":64496}"#;
        let mut out = Vec::new();
        f.extract(line, &mut out).unwrap();
        let texts = |i: usize| -> Vec<String> {
            out[i]
                .as_ref()
                .map(|v| v.texts().into_iter().map(Cow::into_owned).collect())
                .unwrap_or_default()
        };
        assert_eq!(texts(labels), ["a:b", "cd"]);
        assert_eq!(texts(limit), ["IP", "CUSTOMKEYS"]);
        assert_eq!(texts(custom), ["k1", "k2"]);
        assert_eq!(texts(oversize), ["REQUEST_BODY"]);
        assert_eq!(texts(rules), ["r1", "r2"]);
        assert_eq!(texts(ja4), ["t13d1516h2_0a1b2c3d4e5f_f9e8d7c6b5a4"]);
        assert_eq!(texts(asn), ["64496"]);
        let nums: Vec<f64> = out[rates]
            .as_ref()
            .unwrap()
            .items()
            .iter()
            .filter_map(Scalar::as_f64)
            .collect();
        assert_eq!(nums, [100.0, 50.0]);
        assert_eq!(
            out[labels].as_ref().and_then(Scalar::as_text).as_deref(),
            Some("a:b,cd")
        );
        // `labels` (without `[]`) names the same key as `labels[].name`: the first
        // path added is the one walked.
        assert_eq!(out[whole], None);

        // Absent, null, empty or non-array values give nothing.
        for line in [
            r#"{"timestamp":1}"#,
            r#"{"timestamp":1,"labels":null}"#,
            r#"{"timestamp":1,"labels":[]}"#,
            r#"{"timestamp":1,"labels":{"name":"x"}}"#,
            r#"{"timestamp":1,"labels":"x"}"#,
            r#"{"timestamp":1,"labels":[{"name":null}]}"#,
        ] {
            f.extract(line, &mut out).unwrap();
            assert_eq!(out[labels], None, "{line}");
        }
        // The rest of the record is still validated.
        assert!(
            f.extract(r#"{"timestamp":1,"labels":[{"name":"a"},]}"#, &mut out)
                .is_err()
        );
    }

    #[test]
    fn text_of_numbers_matches_strings() {
        assert_eq!(Scalar::Num(200.0).as_text().as_deref(), Some("200"));
        assert_eq!(Scalar::Str("200".into()).as_f64(), Some(200.0));
        assert_eq!(Scalar::Bool(true).as_f64(), Some(1.0));
    }
}
