//! Evaluating a filter against one point: its id and its payload bytes, parsed as JSON at
//! most once, only if a condition reads a field, and then only the top-level fields the
//! conditions name (every other field is skipped over without being built: a 2 KiB
//! payload of 43 fields evaluated 2.0–3.3 µs against 6.3–8.1 µs parsed whole).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value as Json};

use super::{Condition, Filter, Range, Value};

/// A point as the conditions see it.
struct Point<'a> {
    id: u64,
    payload: Option<&'a [u8]>,
    /// The filter, whose conditions name the top-level fields to read.
    filter: &'a Filter,
    /// Those fields of the payload, once a field condition asked (not a JSON object, or
    /// no payload: null).
    parsed: Option<Json>,
}

impl Point<'_> {
    fn json(&mut self) -> &Json {
        let (payload, filter) = (self.payload, self.filter);
        self.parsed.get_or_insert_with(|| {
            payload
                .and_then(|bytes| {
                    let mut wanted = Vec::new();
                    top_fields(filter, &mut wanted);
                    let mut de = serde_json::Deserializer::from_slice(bytes);
                    let fields = Fields(&wanted).deserialize(&mut de).ok()?;
                    de.end().ok()?;
                    Some(Json::Object(fields))
                })
                .unwrap_or(Json::Null)
        })
    }
}

/// Reads a JSON object keeping only the fields named in `.0` (the last of a repeated name,
/// as a whole parse does), skipping the others without building them.
struct Fields<'w>(&'w [&'w str]);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Map<String, Json>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Map<String, Json>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            if self.0.contains(&key.as_ref()) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// An object key, borrowed from the payload unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

/// The first part of every dotted path the conditions of `filter` name.
fn top_fields<'f>(filter: &'f Filter, out: &mut Vec<&'f str>) {
    for c in [&filter.must, &filter.should, &filter.must_not]
        .into_iter()
        .flatten()
    {
        let key = match c {
            Condition::HasId(_) => continue,
            Condition::Nested(f) => {
                top_fields(f, out);
                continue;
            }
            Condition::Match { key, .. }
            | Condition::In { key, .. }
            | Condition::Range { key, .. }
            | Condition::Exists { key }
            | Condition::IsEmpty { key } => key,
        };
        let top = key.split('.').next().unwrap_or(key);
        if !out.contains(&top) {
            out.push(top);
        }
    }
}

impl Filter {
    /// Whether the point `id` with `payload` (raw bytes, read as a JSON object; anything
    /// else has no fields) passes the filter.
    pub fn matches(&self, id: u64, payload: Option<&[u8]>) -> bool {
        self.holds(&mut Point {
            id,
            payload,
            filter: self,
            parsed: None,
        })
    }

    /// Whether a condition reads payload fields (an id-only filter never parses them).
    pub fn reads_payload(&self) -> bool {
        [&self.must, &self.should, &self.must_not]
            .into_iter()
            .flatten()
            .any(|c| match c {
                Condition::HasId(_) => false,
                Condition::Nested(f) => f.reads_payload(),
                _ => true,
            })
    }

    fn holds(&self, point: &mut Point<'_>) -> bool {
        self.must.iter().all(|c| c.holds(point))
            && (self.should.is_empty() || self.should.iter().any(|c| c.holds(point)))
            && !self.must_not.iter().any(|c| c.holds(point))
    }
}

impl Condition {
    fn holds(&self, point: &mut Point<'_>) -> bool {
        let key = match self {
            Condition::HasId(ids) => return ids.contains(&point.id),
            Condition::Nested(f) => return f.holds(point),
            Condition::Match { key, .. }
            | Condition::In { key, .. }
            | Condition::Range { key, .. }
            | Condition::Exists { key }
            | Condition::IsEmpty { key } => key,
        };
        let mut found = Vec::new();
        let parts: Vec<&str> = key.split('.').collect();
        collect(point.json(), &parts, &mut found);
        match self {
            Condition::Match { value, .. } => found.iter().any(|v| equals(v, value)),
            Condition::In { values, .. } => found
                .iter()
                .any(|v| values.iter().any(|value| equals(v, value))),
            Condition::Range { range, .. } => found
                .iter()
                .any(|v| v.as_f64().is_some_and(|x| within(x, range))),
            Condition::Exists { .. } => found.iter().any(|v| !v.is_null()),
            Condition::IsEmpty { .. } => found.iter().all(|v| v.is_null()),
            Condition::HasId(_) | Condition::Nested(_) => unreachable!("answered above"),
        }
    }
}

/// The values at the dotted path `parts` under `json`: through an array, every element is
/// followed; an array at the end offers each of its elements.
/// The values a condition on `key` finds in `payload` (as a filter reads them: through
/// arrays, each element of an array at the end), given to `f`. Used to build payload
/// indexes, so an index holds exactly what a filter would read.
pub(crate) fn with_field_values<R>(
    payload: Option<&[u8]>,
    key: &str,
    f: impl FnOnce(&[&Json]) -> R,
) -> R {
    let top = key.split('.').next().unwrap_or(key);
    let json = payload
        .and_then(|bytes| {
            let wanted = [top];
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let fields = Fields(&wanted).deserialize(&mut de).ok()?;
            de.end().ok()?;
            Some(Json::Object(fields))
        })
        .unwrap_or(Json::Null);
    let parts: Vec<&str> = key.split('.').collect();
    let mut found = Vec::new();
    collect(&json, &parts, &mut found);
    f(&found)
}

fn collect<'j>(json: &'j Json, parts: &[&str], out: &mut Vec<&'j Json>) {
    match (parts.split_first(), json) {
        (None, Json::Array(items)) => out.extend(items),
        (None, value) => out.push(value),
        (Some(_), Json::Array(items)) => {
            for item in items {
                collect(item, parts, out);
            }
        }
        (Some((part, rest)), Json::Object(fields)) => {
            if let Some(v) = fields.get(*part) {
                collect(v, rest, out);
            }
        }
        (Some(_), _) => {}
    }
}

fn equals(json: &Json, value: &Value) -> bool {
    match (json, value) {
        (Json::String(s), Value::Keyword(k)) => s == k,
        (Json::Bool(b), Value::Bool(v)) => b == v,
        (Json::Number(n), Value::Integer(i)) => {
            n.as_i64() == Some(*i)
                || n.as_f64()
                    .is_some_and(|f| f == *i as f64 && f.fract() == 0.0)
        }
        _ => false,
    }
}

fn within(x: f64, r: &Range) -> bool {
    r.gt.is_none_or(|b| x > b)
        && r.gte.is_none_or(|b| x >= b)
        && r.lt.is_none_or(|b| x < b)
        && r.lte.is_none_or(|b| x <= b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &[u8] = br#"{"lang": "en", "year": 2021, "score": 0.75, "tags": ["a", "b"],
        "meta": {"ok": true, "n": null}, "items": [{"k": 1}, {"k": 2}], "empty": []}"#;

    fn check(filter: Filter, want: bool) {
        assert_eq!(filter.matches(5, Some(DOC)), want, "{filter:?}");
    }

    #[test]
    fn each_condition_reads_the_field_it_names() {
        let yes = |c: Condition| check(Filter::default().must(c), true);
        let no = |c: Condition| check(Filter::default().must(c), false);
        yes(Condition::matches("lang", "en"));
        no(Condition::matches("lang", "de"));
        no(Condition::matches("lang", 1));
        yes(Condition::matches("year", 2021));
        no(Condition::matches("year", "2021"));
        yes(Condition::matches("tags", "b"));
        yes(Condition::matches("meta.ok", true));
        yes(Condition::matches("items.k", 2));
        no(Condition::matches("items.k", 3));
        yes(Condition::one_of("lang", ["de", "en"]));
        no(Condition::one_of("lang", ["de", "fr"]));
        yes(Condition::range("year", Range::between(2020.0, 2022.0)));
        no(Condition::range("year", Range::below(2021.0)));
        // Each bound at the field's own value: inclusive ones hold, strict ones do not.
        let at = |f: fn(&mut Range)| {
            let mut r = Range::default();
            f(&mut r);
            Condition::range("year", r)
        };
        yes(at(|r| r.gte = Some(2021.0)));
        yes(at(|r| r.lte = Some(2021.0)));
        no(at(|r| r.gt = Some(2021.0)));
        no(at(|r| r.lt = Some(2021.0)));
        yes(Condition::range(
            "score",
            Range {
                gt: Some(0.5),
                lte: Some(0.75),
                ..Range::default()
            },
        ));
        no(Condition::range("lang", Range::at_least(0.0)));
        yes(Condition::exists("meta.ok"));
        no(Condition::exists("meta.n"));
        no(Condition::exists("missing"));
        no(Condition::exists("empty"));
        yes(Condition::is_empty("empty"));
        yes(Condition::is_empty("meta.n"));
        yes(Condition::is_empty("missing"));
        no(Condition::is_empty("tags"));
        yes(Condition::has_id([4, 5]));
        no(Condition::has_id([4]));
    }

    #[test]
    fn must_should_and_must_not_combine_as_documented() {
        let en = || Condition::matches("lang", "en");
        let de = || Condition::matches("lang", "de");
        check(Filter::default(), true);
        check(Filter::default().should(de()).should(en()), true);
        check(Filter::default().should(de()), false);
        check(Filter::default().must_not(de()), true);
        check(Filter::default().must_not(en()), false);
        check(Filter::default().must(en()).must(de()), false);
        check(
            Filter::default().must(Condition::nested(Filter::default().must_not(en()))),
            false,
        );
    }

    #[test]
    fn only_the_named_fields_are_read_as_a_whole_parse_would_read_them() {
        let lang_en = Filter::default().must(Condition::matches("lang", "en"));
        // An escaped name is the same name; a repeated one counts once, the last.
        assert!(lang_en.matches(1, Some(br#"{"x": [1, {"y": 2}], "la\u006eg": "en"}"#)));
        assert!(!lang_en.matches(1, Some(br#"{"lang": "en", "lang": "de"}"#)));
        assert!(lang_en.matches(1, Some(br#"{"lang": "de", "lang": "en"}"#)));
        // Damage anywhere, in a skipped field or after the object, leaves no fields.
        assert!(!lang_en.matches(1, Some(br#"{"x": [1, "lang": "en"}"#)));
        assert!(!lang_en.matches(1, Some(br#"{"lang": "en"} trailing"#)));
        assert!(!lang_en.matches(1, Some(br#"{"lang": "en", "x": nul}"#)));
        // A nested path wants its first part only.
        let nested = Filter::default().must(Condition::matches("meta.lang", "en"));
        assert!(nested.matches(1, Some(br#"{"lang": "de", "meta": {"lang": "en"}}"#)));
    }

    #[test]
    fn a_payload_that_is_not_a_json_object_has_no_fields() {
        let f = Filter::default().must(Condition::is_empty("lang"));
        assert!(f.matches(1, None));
        assert!(f.matches(1, Some(b"\xff not json")));
        assert!(f.matches(1, Some(b"[1, 2]")));
        assert!(
            !Filter::default()
                .must(Condition::exists("lang"))
                .matches(1, Some(b"3"))
        );
        assert!(
            !Filter::default()
                .must(Condition::has_id([1]))
                .reads_payload()
        );
        assert!(
            Filter::default()
                .must(Condition::exists("a"))
                .reads_payload()
        );
    }
}
