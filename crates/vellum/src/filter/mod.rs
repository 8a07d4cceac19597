//! Typed filters over points: conditions on payload fields (a JSON object) and on ids,
//! combined with `must` / `should` / `must_not`, as users of Qdrant know them.
//!
//! A field is named by a dotted path (`"meta.lang"`); through an array on the way, every
//! element is looked at, and an array at the end offers each of its elements (a condition
//! holds if it holds for any). A payload that is not a JSON object has no fields.
//!
//! `json.rs` reads a filter from its JSON form (what `vellum search --filter` takes);
//! `eval.rs` evaluates one against a point. Conditions on fields with a payload index
//! (`Collection::create_payload_index`) are answered by the index, without reading payloads
//! (the planner is in `payloads/indexes.rs`); others read the payload.

mod eval;
mod json;

pub(crate) use eval::with_field_values;
pub use json::FilterError;

/// Which points a filter admits: every `must` condition holds, at least one `should`
/// condition holds (when there are any), and no `must_not` condition holds. The empty
/// filter admits every point.
///
/// ```
/// use vellum::filter::{Condition, Filter, Range};
///
/// let english_since_2020 = Filter::default()
///     .must(Condition::matches("lang", "en"))
///     .must(Condition::range("year", Range::at_least(2020.0)))
///     .must_not(Condition::has_id([7]));
/// let parsed: Filter = r#"{"must": [{"key": "lang", "match": "en"},
///                                   {"key": "year", "range": {"gte": 2020}}],
///                          "must_not": [{"has_id": [7]}]}"#
///     .parse()
///     .unwrap();
/// assert_eq!(parsed, english_since_2020);
/// assert!(parsed.matches(1, Some(br#"{"lang": "en", "year": 2023}"#)));
/// assert!(!parsed.matches(7, Some(br#"{"lang": "en", "year": 2023}"#)));
/// assert!(!parsed.matches(2, Some(br#"{"lang": "de", "year": 2023}"#)));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Conditions that must all hold.
    pub must: Vec<Condition>,
    /// Conditions of which at least one must hold (ignored when empty).
    pub should: Vec<Condition>,
    /// Conditions none of which may hold.
    pub must_not: Vec<Condition>,
}

/// One condition of a [`Filter`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The field equals the value (for an array field: one of its elements does).
    Match {
        /// Dotted path of the field.
        key: String,
        /// The value.
        value: Value,
    },
    /// The field equals one of the values.
    In {
        /// Dotted path of the field.
        key: String,
        /// The values.
        values: Vec<Value>,
    },
    /// The field is a number within the range.
    Range {
        /// Dotted path of the field.
        key: String,
        /// The bounds.
        range: Range,
    },
    /// The field is present and not null.
    Exists {
        /// Dotted path of the field.
        key: String,
    },
    /// The field is missing, null, or an empty array.
    IsEmpty {
        /// Dotted path of the field.
        key: String,
    },
    /// The point's id is one of these.
    HasId(Vec<u64>),
    /// A nested filter holds.
    Nested(Box<Filter>),
}

/// A value a [`Condition::Match`] or [`Condition::In`] compares a field with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value {
    /// A JSON string.
    Keyword(String),
    /// A JSON number with this integer value.
    Integer(i64),
    /// A JSON boolean.
    Bool(bool),
}

/// Bounds of a [`Condition::Range`]; a missing bound does not limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    /// Greater than.
    pub gt: Option<f64>,
    /// Greater than or equal.
    pub gte: Option<f64>,
    /// Less than.
    pub lt: Option<f64>,
    /// Less than or equal.
    pub lte: Option<f64>,
}

impl Range {
    /// `>= low`.
    pub fn at_least(low: f64) -> Range {
        Range {
            gte: Some(low),
            ..Range::default()
        }
    }

    /// `< high`.
    pub fn below(high: f64) -> Range {
        Range {
            lt: Some(high),
            ..Range::default()
        }
    }

    /// `low <= x < high`.
    pub fn between(low: f64, high: f64) -> Range {
        Range {
            gte: Some(low),
            lt: Some(high),
            ..Range::default()
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Keyword(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Keyword(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Integer(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl Condition {
    /// `key` equals `value`.
    pub fn matches(key: impl Into<String>, value: impl Into<Value>) -> Condition {
        Condition::Match {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `key` equals one of `values`.
    pub fn one_of<V: Into<Value>>(
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Condition {
        Condition::In {
            key: key.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// `key` is a number within `range`.
    pub fn range(key: impl Into<String>, range: Range) -> Condition {
        Condition::Range {
            key: key.into(),
            range,
        }
    }

    /// `key` is present and not null.
    pub fn exists(key: impl Into<String>) -> Condition {
        Condition::Exists { key: key.into() }
    }

    /// `key` is missing, null or an empty array.
    pub fn is_empty(key: impl Into<String>) -> Condition {
        Condition::IsEmpty { key: key.into() }
    }

    /// The id is one of `ids`.
    pub fn has_id(ids: impl IntoIterator<Item = u64>) -> Condition {
        Condition::HasId(ids.into_iter().collect())
    }

    /// `filter` holds.
    pub fn nested(filter: Filter) -> Condition {
        Condition::Nested(Box::new(filter))
    }
}

impl Filter {
    /// Adds a condition that must hold.
    pub fn must(mut self, condition: Condition) -> Filter {
        self.must.push(condition);
        self
    }

    /// Adds a condition of which at least one (of all `should`) must hold.
    pub fn should(mut self, condition: Condition) -> Filter {
        self.should.push(condition);
        self
    }

    /// Adds a condition that must not hold.
    pub fn must_not(mut self, condition: Condition) -> Filter {
        self.must_not.push(condition);
        self
    }
}
