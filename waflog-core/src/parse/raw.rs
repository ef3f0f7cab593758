//! Borrowed raw JSON: an object's members as `(key, raw value)` pairs in their
//! order, and string values borrowed when they hold no escape. For writers that
//! turn a record into another shape (OCSF events, Parquet rows) without building a
//! `serde_json::Value` of it: values they do not map are copied as text.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::schema::KeySeed;

/// A JSON object's members, in their order (repeated keys kept as they come).
#[derive(Debug, Default)]
pub struct RawObject<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> RawObject<'a> {
    /// The object in `text`; `None` when it is not one.
    pub fn parse(text: &'a str) -> Option<RawObject<'a>> {
        serde_json::from_str(text).ok()
    }

    /// The raw value of the first member named `key`.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'a>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawObject(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The string in the raw JSON value `raw` (borrowed unless it has escapes);
/// `None` when `raw` is not a string.
pub fn str_of(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(raw) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_in_order_and_strings_borrowed_when_they_can_be() {
        let o = RawObject::parse(r#"{"b":1,"a":"x\"y","c":{"d":[1]},"b":2}"#).unwrap();
        let keys: Vec<&str> = o.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["b", "a", "c", "b"]);
        assert_eq!(o.get("b").unwrap().get(), "1");
        assert_eq!(o.get("c").unwrap().get(), r#"{"d":[1]}"#);
        assert_eq!(str_of(o.get("a").unwrap().get()).unwrap(), "x\"y");
        assert!(matches!(str_of(r#""plain""#), Some(Cow::Borrowed("plain"))));
        assert_eq!(str_of("12"), None);
        assert!(RawObject::parse("[1]").is_none());
    }
}
