//! The JSON form of a filter, Qdrant's where it has one:
//!
//! ```text
//! {"must": [C, ...], "should": [C, ...], "must_not": [C, ...]}      (each part optional)
//! C = {"key": "a.b", "match": "en" | 3 | true}                       Match
//!   | {"key": "a.b", "match": {"value": V}}                           Match
//!   | {"key": "a.b", "match": {"any": [V, ...]}}  or  "in": [V, ...]  In
//!   | {"key": "a.b", "range": {"gt"|"gte"|"lt"|"lte": number, ...}}   Range
//!   | {"key": "a.b", "exists": true}                                  Exists
//!   | {"key": "a.b", "is_empty": true}                                IsEmpty
//!   | {"has_id": [1, 2, ...]}                                         HasId
//!   | {"must": ..., "should": ..., "must_not": ...}                   Nested
//! ```
//!
//! Anything else is a [`FilterError`] naming where it is (`must[1].range.gt`) and what was
//! expected; unknown keys are refused, not ignored.

use serde_json::{Map, Value as Json};

use super::{Condition, Filter, Range, Value};

/// Why a JSON text is not a filter: where (a path such as `must[0].range`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter{}: {message}", if path.is_empty() { String::new() } else { format!(" at {path}") })]
pub struct FilterError {
    /// Where in the filter (empty: the whole text).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_owned()
    } else {
        format!("{path}.{part}")
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    /// Parses the JSON form (module docs).
    fn from_str(text: &str) -> Result<Filter, FilterError> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| err("", format!("not JSON: {e}")))?;
        Filter::from_json(&json)
    }
}

impl Filter {
    /// Reads a filter from its JSON form (module docs of `filter/json.rs`).
    pub fn from_json(json: &Json) -> Result<Filter, FilterError> {
        filter_at(json, "")
    }
}

fn filter_at(json: &Json, path: &str) -> Result<Filter, FilterError> {
    let obj = json
        .as_object()
        .ok_or_else(|| err(path, "expected an object with must, should or must_not"))?;
    let mut filter = Filter::default();
    for (name, part) in obj {
        let list = match name.as_str() {
            "must" => &mut filter.must,
            "should" => &mut filter.should,
            "must_not" => &mut filter.must_not,
            other => {
                return Err(err(
                    path,
                    format!("unknown key {other:?} (expected must, should or must_not)"),
                ));
            }
        };
        let here = join(path, name);
        match part {
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    list.push(condition_at(item, &format!("{here}[{i}]"))?);
                }
            }
            Json::Object(_) => list.push(condition_at(part, &here)?),
            _ => return Err(err(&here, "expected a list of conditions")),
        }
    }
    Ok(filter)
}

fn condition_at(json: &Json, path: &str) -> Result<Condition, FilterError> {
    let obj = json
        .as_object()
        .ok_or_else(|| err(path, "expected a condition object"))?;
    if let Some(key) = obj.get("key") {
        let key = key
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| err(&join(path, "key"), "expected a non-empty string"))?
            .to_owned();
        return field_condition(obj, key, path);
    }
    if let Some(ids) = obj.get("has_id") {
        only(obj, &["has_id"], path)?;
        let here = join(path, "has_id");
        let ids = ids
            .as_array()
            .ok_or_else(|| err(&here, "expected a list of ids"))?
            .iter()
            .enumerate()
            .map(|(i, id)| {
                id.as_u64()
                    .ok_or_else(|| err(&format!("{here}[{i}]"), "expected an unsigned integer id"))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        return Ok(Condition::HasId(ids));
    }
    if ["must", "should", "must_not"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Ok(Condition::nested(filter_at(json, path)?));
    }
    Err(err(
        path,
        "expected a condition: key with match, in, range, exists or is_empty; has_id; or a \
         nested must/should/must_not",
    ))
}

/// Refuses keys of `obj` other than `allowed`.
fn only(obj: &Map<String, Json>, allowed: &[&str], path: &str) -> Result<(), FilterError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(
            path,
            format!("unexpected key {k:?} beside {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn field_condition(
    obj: &Map<String, Json>,
    key: String,
    path: &str,
) -> Result<Condition, FilterError> {
    const KINDS: [&str; 5] = ["match", "in", "range", "exists", "is_empty"];
    let kinds: Vec<&str> = KINDS.into_iter().filter(|k| obj.contains_key(*k)).collect();
    let [kind] = kinds[..] else {
        return Err(err(
            path,
            format!("expected exactly one of {} beside key", KINDS.join(", ")),
        ));
    };
    only(obj, &["key", kind], path)?;
    let here = join(path, kind);
    let body = &obj[kind];
    Ok(match kind {
        "match" => match body {
            Json::Object(m) if m.contains_key("any") => {
                only(m, &["any"], &here)?;
                Condition::In {
                    key,
                    values: values_at(&m["any"], &join(&here, "any"))?,
                }
            }
            Json::Object(m) => {
                only(m, &["value"], &here)?;
                let value = m
                    .get("value")
                    .ok_or_else(|| err(&here, "expected value or any"))?;
                Condition::Match {
                    key,
                    value: value_at(value, &join(&here, "value"))?,
                }
            }
            scalar => Condition::Match {
                key,
                value: value_at(scalar, &here)?,
            },
        },
        "in" => Condition::In {
            key,
            values: values_at(body, &here)?,
        },
        "range" => Condition::Range {
            key,
            range: range_at(body, &here)?,
        },
        "exists" | "is_empty" => {
            if body != &Json::Bool(true) {
                return Err(err(&here, "expected true"));
            }
            if kind == "exists" {
                Condition::Exists { key }
            } else {
                Condition::IsEmpty { key }
            }
        }
        _ => unreachable!("kind is one of KINDS"),
    })
}

fn value_at(json: &Json, path: &str) -> Result<Value, FilterError> {
    match json {
        Json::String(s) => Ok(Value::Keyword(s.clone())),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => n.as_i64().map(Value::Integer).ok_or_else(|| {
            err(
                path,
                format!("{n} is not an integer (use range for numbers)"),
            )
        }),
        _ => Err(err(path, "expected a string, an integer or a boolean")),
    }
}

fn values_at(json: &Json, path: &str) -> Result<Vec<Value>, FilterError> {
    json.as_array()
        .ok_or_else(|| err(path, "expected a list of values"))?
        .iter()
        .enumerate()
        .map(|(i, v)| value_at(v, &format!("{path}[{i}]")))
        .collect()
}

fn range_at(json: &Json, path: &str) -> Result<Range, FilterError> {
    let obj = json
        .as_object()
        .ok_or_else(|| err(path, "expected an object of gt, gte, lt, lte"))?;
    only(obj, &["gt", "gte", "lt", "lte"], path)?;
    if obj.is_empty() {
        return Err(err(path, "expected at least one of gt, gte, lt, lte"));
    }
    let bound = |name: &str| -> Result<Option<f64>, FilterError> {
        obj.get(name)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| err(&join(path, name), "expected a number"))
            })
            .transpose()
    };
    Ok(Range {
        gt: bound("gt")?,
        gte: bound("gte")?,
        lt: bound("lt")?,
        lte: bound("lte")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Filter, FilterError> {
        text.parse()
    }

    #[test]
    fn every_condition_form_parses_to_its_condition() {
        let f = parse(
            r#"{"must": [
                {"key": "lang", "match": "en"},
                {"key": "n", "match": {"value": 3}},
                {"key": "tag", "match": {"any": ["a", "b"]}},
                {"key": "ok", "in": [true]},
                {"key": "year", "range": {"gte": 2020, "lt": 2024.5}},
                {"key": "a.b", "exists": true},
                {"key": "c", "is_empty": true},
                {"has_id": [1, 2]},
                {"should": [{"key": "x", "match": false}]}
            ], "must_not": {"key": "lang", "match": "de"}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Filter::default()
                .must(Condition::matches("lang", "en"))
                .must(Condition::matches("n", 3))
                .must(Condition::one_of("tag", ["a", "b"]))
                .must(Condition::one_of("ok", [true]))
                .must(Condition::range(
                    "year",
                    Range {
                        gte: Some(2020.0),
                        lt: Some(2024.5),
                        ..Range::default()
                    }
                ))
                .must(Condition::exists("a.b"))
                .must(Condition::is_empty("c"))
                .must(Condition::has_id([1, 2]))
                .must(Condition::nested(
                    Filter::default().should(Condition::matches("x", false))
                ))
                .must_not(Condition::matches("lang", "de"))
        );
        assert_eq!(parse("{}").unwrap(), Filter::default());
    }

    #[test]
    fn a_malformed_filter_is_refused_naming_where() {
        let cases = [
            ("[1]", "", "expected an object"),
            ("{\"mus\": []}", "", "unknown key \"mus\""),
            (r#"{"must": 3}"#, "must", "expected a list"),
            (r#"{"must": [{"key": "a"}]}"#, "must[0]", "exactly one of"),
            (
                r#"{"must": [{"key": "a", "match": 1, "range": {}}]}"#,
                "must[0]",
                "exactly one",
            ),
            (
                r#"{"must": [{"key": "a", "match": 1.5}]}"#,
                "must[0].match",
                "not an integer",
            ),
            (
                r#"{"must": [{"key": "a", "range": {"gte": "x"}}]}"#,
                "must[0].range.gte",
                "number",
            ),
            (
                r#"{"must": [{"key": "a", "range": {}}]}"#,
                "must[0].range",
                "at least one",
            ),
            (
                r#"{"must": [{"key": "a", "range": {"ge": 1}}]}"#,
                "must[0].range",
                "\"ge\"",
            ),
            (
                r#"{"should": [{"has_id": [1, -2]}]}"#,
                "should[0].has_id[1]",
                "unsigned",
            ),
            (
                r#"{"must": [{"key": "", "exists": true}]}"#,
                "must[0].key",
                "non-empty",
            ),
            (
                r#"{"must": [{"key": "a", "exists": false}]}"#,
                "must[0].exists",
                "true",
            ),
            (
                r#"{"must": [{"key": "a", "match": 1, "extra": 2}]}"#,
                "must[0]",
                "\"extra\"",
            ),
            (
                r#"{"must": [{"nothing": 1}]}"#,
                "must[0]",
                "expected a condition",
            ),
            ("{", "", "not JSON"),
        ];
        for (text, path, message) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.path, path, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
    }
}
