//! Kubernetes selectors, parsed once and evaluated in Rust on stored documents.
//!
//! - [`LabelSelector`]: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined
//!   by commas (AND), on `metadata.labels`. `!=` and `notin` hold when the label is absent.
//! - [`FieldSelector`]: the same operators on paths of the document (`status.phase=Ready`,
//!   `metadata.namespace!=labs`, `spec.lab_track in (ccna,ccnp)`). An absent or `null` field
//!   compares as the empty string, as in Kubernetes (`spec.node=` matches where it is unset);
//!   numbers and booleans compare as their JSON text.
//!
//! Malformed selectors fail with `InvalidSelector`, naming the position and what was expected.

mod parse;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::Result;

/// What a requirement asks of the value at its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
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

    /// Whether `value` (the value at the key, `None` when absent) satisfies the requirement,
    /// with `absent` as the value compared when there is none.
    fn test(&self, value: Option<&str>, absent: Option<&str>) -> bool {
        let v = value.or(absent);
        match &self.op {
            Op::Equals(want) => v == Some(want.as_str()),
            Op::NotEquals(want) => v != Some(want.as_str()),
            Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
            Op::NotIn(set) => !v.is_some_and(|v| set.iter().any(|s| s == v)),
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
        }
    }
}

/// Scalars as text; objects and arrays have none.
fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
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
            r.test(value.as_deref(), None)
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
            let value = lookup(doc, &r.key).and_then(scalar_text);
            r.test(value.as_deref(), Some(""))
        })
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
