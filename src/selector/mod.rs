//! Kubernetes selectors, parsed once and evaluated in Rust on stored documents.
//!
//! - [`LabelSelector`]: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`,
//!   `a<7`, joined by commas (AND), on `metadata.labels`: Kubernetes' grammar. `!=` and `notin`
//!   hold when the label is absent; `>` and `<` take an integer and hold when the label's value
//!   is an integer (`strconv.ParseInt`) greater or less than it, never when it is absent.
//! - [`FieldSelector`]: the same operators on paths of the document (`status.phase=Ready`,
//!   `metadata.namespace!=labs`, `spec.lab_track in (ccna,ccnp)`). An absent or `null` field
//!   compares as the empty string, as in Kubernetes (`spec.node=` matches where it is unset);
//!   numbers and booleans compare as their JSON text. `>` and `<` (not in Kubernetes' field
//!   selectors) take a number, integer or decimal (`status.active_lab_count<20`,
//!   `spec.cpu>7.5`), and hold when the field is a JSON number greater or less than it
//!   (compared as numbers: `8 > 7.5`); an absent, `null` or non-number field never matches.
//!
//! Malformed selectors fail with `InvalidSelector`, naming the position and what was expected.

mod number;
mod parse;
#[cfg(test)]
mod tests;
pub mod time;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::Result;

pub use number::Num;
pub use time::TimeBound;

/// What a requirement asks of the value at its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    /// A number greater than this (an integer for labels).
    GreaterThan(Num),
    /// A number less than this (an integer for labels).
    LessThan(Num),
    /// A timestamp (plus a stored amount) earlier than this (fields only; see [`time`]).
    Before(Box<TimeBound>),
    /// A timestamp (plus a stored amount) later than this (fields only; see [`time`]).
    After(Box<TimeBound>),
}

impl Op {
    /// Whether `number` (the value at the key as a number, `None` when absent or not a
    /// number) satisfies a `>` or `<`; `None` for the other operators.
    pub fn compare(&self, number: Option<Num>) -> Option<bool> {
        let (bound, wanted) = match self {
            Op::GreaterThan(bound) => (bound, Ordering::Greater),
            Op::LessThan(bound) => (bound, Ordering::Less),
            _ => return None,
        };
        Some(number.is_some_and(|n| n.cmp(bound) == wanted))
    }

    /// A time comparison's bound and the order it wants; `None` for the other operators.
    pub fn time(&self) -> Option<(&TimeBound, Ordering)> {
        match self {
            Op::Before(bound) => Some((bound, Ordering::Less)),
            Op::After(bound) => Some((bound, Ordering::Greater)),
            _ => None,
        }
    }
}

/// One requirement on one key (a label name, or a dotted field path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

impl Requirement {
    pub fn new(key: impl Into<String>, op: Op) -> Self {
        Requirement { key: key.into(), op }
    }

    /// The paths of a document the requirement reads: its key, and a time's added amount.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        let extra = self.op.time().and_then(|(bound, _)| bound.extra_path());
        std::iter::once(self.key.as_str()).chain(extra)
    }

    /// Whether a document satisfies a time comparison; `None` for the other operators.
    pub fn test_time(&self, doc: &Value) -> Option<bool> {
        let (bound, wanted) = self.op.time()?;
        Some(bound.compare(doc, &self.key) == Some(wanted))
    }

    /// Whether `value` (the value at the key, `None` when absent) satisfies the requirement,
    /// with `absent` as the value compared when there is none; `number` reads the value as a
    /// number for `>` and `<`. A time comparison needs the document ([`Self::test_time`]):
    /// here it never holds.
    pub(crate) fn test(
        &self,
        value: Option<&str>,
        absent: Option<&str>,
        number: impl FnOnce() -> Option<Num>,
    ) -> bool {
        let v = value.or(absent);
        match &self.op {
            Op::Equals(want) => v == Some(want.as_str()),
            Op::NotEquals(want) => v != Some(want.as_str()),
            Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
            Op::NotIn(set) => !v.is_some_and(|v| set.iter().any(|s| s == v)),
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
            Op::GreaterThan(_) | Op::LessThan(_) => self.op.compare(number()).unwrap_or(false),
            Op::Before(_) | Op::After(_) => false,
        }
    }
}

/// Kubernetes' text of a requirement (`x in (a,b)`, `!x`, `x>1`); field values escape what
/// the grammar would read otherwise.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn value(f: &mut fmt::Formatter<'_>, v: &str) -> fmt::Result {
            for c in v.chars() {
                if matches!(c, '\\' | ',' | '(' | ')') || parse::is_space(c) {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            Ok(())
        }
        fn set(f: &mut fmt::Formatter<'_>, vs: &[String]) -> fmt::Result {
            f.write_str("(")?;
            for (i, v) in vs.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                value(f, v)?;
            }
            f.write_str(")")
        }
        let key = &self.key;
        match &self.op {
            Op::Equals(v) => write!(f, "{key}=").and_then(|()| value(f, v)),
            Op::NotEquals(v) => write!(f, "{key}!=").and_then(|()| value(f, v)),
            Op::In(vs) => write!(f, "{key} in ").and_then(|()| set(f, vs)),
            Op::NotIn(vs) => write!(f, "{key} notin ").and_then(|()| set(f, vs)),
            Op::Exists => write!(f, "{key}"),
            Op::NotExists => write!(f, "!{key}"),
            Op::GreaterThan(n) => write!(f, "{key}>{n}"),
            Op::LessThan(n) => write!(f, "{key}<{n}"),
            Op::Before(t) => write!(f, "{key}{t}<{}", t.text),
            Op::After(t) => write!(f, "{key}{t}>{}", t.text),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, requirements: &[Requirement]) -> fmt::Result {
    for (i, r) in requirements.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{r}")?;
    }
    Ok(())
}

/// Scalars as text; objects and arrays have none.
pub(crate) fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A label selector: a conjunction of requirements on `metadata.labels`; empty matches all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse Kubernetes' label selector grammar.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(LabelSelector { requirements: parse::parse(text, parse::Mode::Labels)? })
    }

    /// Equality on each pair (a Python `dict` selector).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        LabelSelector {
            requirements: pairs.into_iter().map(|(k, v)| Requirement::new(k, Op::Equals(v))).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether labels satisfy every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(scalar_text);
            r.test(value.as_deref(), None, || value.as_deref().and_then(Num::of_label))
        })
    }

    /// Whether a document's `metadata.labels` satisfy every requirement.
    pub fn matches_document(&self, doc: &Value) -> bool {
        self.is_empty() || self.matches(crate::document::labels(doc))
    }
}

/// A field selector: a conjunction of requirements on paths of the document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    pub requirements: Vec<Requirement>,
}

impl FieldSelector {
    /// Parse a field selector (`status.phase=Ready,spec.lab_track in (a,b)`).
    pub fn parse(text: &str) -> Result<Self> {
        Ok(FieldSelector { requirements: parse::parse(text, parse::Mode::Fields)? })
    }

    /// Equality on each path (a Python `dict` selector).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        FieldSelector {
            requirements: pairs.into_iter().map(|(k, v)| Requirement::new(k, Op::Equals(v))).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the document satisfies every requirement.
    pub fn matches(&self, doc: &Value) -> bool {
        self.requirements.iter().all(|r| {
            if let Some(holds) = r.test_time(doc) {
                return holds;
            }
            let found = lookup(doc, &r.key);
            let value = found.and_then(scalar_text);
            r.test(value.as_deref(), Some(""), || found.and_then(Num::of_json))
        })
    }
}

/// The selector's text, which parses back to it (`x=a,y in (b,c)`).
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(f, &self.requirements)
    }
}

/// The selector's text, which parses back to it (`status.phase=Ready`).
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(f, &self.requirements)
    }
}

/// The value at a dotted path (`status.phase`), if any.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, segment| v.get(segment))
}

/// Everything a listing filters on.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this namespace (`metadata.namespace`, and the key range when namespaced).
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Query {
    /// Whether a decoded document passes every filter.
    pub fn matches(&self, doc: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| {
            doc.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str) == Some(ns)
        });
        ns_ok && self.labels.matches_document(doc) && self.fields.matches(doc)
    }

    /// Whether nothing but the key range filters (so a count needs no values).
    pub fn is_unfiltered(&self) -> bool {
        self.namespace.is_none() && self.labels.is_empty() && self.fields.is_empty()
    }
}
