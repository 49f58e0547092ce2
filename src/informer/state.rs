//! The cache's documents and their indexes: per label name and indexed field path, the keys
//! by value (text, for equality and sets) and by number (in order, for `>` and `<`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use crate::document;
use crate::selector::{lookup, Num, Op, Query};

/// Per label name or field path, the keys of the documents by value: by text for equality and
/// sets, by number (in order) for `>` and `<`.
type Index<V> = HashMap<String, BTreeMap<V, BTreeSet<String>>>;

#[derive(Default)]
pub(super) struct Indexes {
    /// Every value, as the selectors compare it (`scalar`).
    pub(super) text: Index<String>,
    /// The values that are numbers, as `>` and `<` read them (labels: integers).
    pub(super) numbers: Index<Num>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) docs: BTreeMap<String, Arc<Value>>,
    pub(super) labels: Indexes,
    pub(super) fields: Indexes,
}

fn scalar(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        // Absent, null, objects: the empty string, as field selectors compare them.
        _ => String::new(),
    }
}

/// Add `key` under `value` of `name`, or take it out.
fn apply<V: Ord>(index: &mut Index<V>, name: &str, value: V, key: &str, add: bool) {
    if add {
        let by_value = index.entry(name.to_owned()).or_default();
        by_value.entry(value).or_default().insert(key.to_owned());
    } else if let Some(by_value) = index.get_mut(name) {
        if let Some(keys) = by_value.get_mut(&value) {
            keys.remove(key);
            if keys.is_empty() {
                by_value.remove(&value);
            }
        }
        if by_value.is_empty() {
            index.remove(name);
        }
    }
}

/// The keys under the numbers a `>` or `<` allows.
fn in_range<'a>(
    by_number: Option<&'a BTreeMap<Num, BTreeSet<String>>>,
    op: &Op,
) -> impl Iterator<Item = &'a BTreeSet<String>> {
    let range = match op {
        Op::GreaterThan(n) => Some((Bound::Excluded(*n), Bound::Unbounded)),
        Op::LessThan(n) => Some((Bound::Unbounded, Bound::Excluded(*n))),
        _ => None,
    };
    by_number.zip(range).into_iter().flat_map(|(m, r)| m.range(r).map(|(_, keys)| keys))
}

impl Indexes {
    /// Keys an indexed requirement allows (`None`: the operator is not indexed).
    fn allowed(&self, name: &str, op: &Op) -> Option<BTreeSet<&String>> {
        let by_value = self.text.get(name);
        let keys_of = |v: &String| by_value.and_then(|m| m.get(v)).into_iter().flatten();
        match op {
            Op::Equals(v) => Some(keys_of(v).collect()),
            Op::In(vs) => Some(vs.iter().flat_map(keys_of).collect()),
            Op::GreaterThan(_) | Op::LessThan(_) => {
                Some(in_range(self.numbers.get(name), op).flatten().collect())
            }
            Op::NotEquals(_) | Op::NotIn(_) | Op::Exists | Op::NotExists => None,
        }
    }

    /// How many keys one indexed equality or comparison allows, without building a set
    /// (`None` for other operators). A document has one value per name, so the sets of
    /// different values are disjoint.
    fn count(&self, name: &str, op: &Op) -> Option<usize> {
        match op {
            Op::Equals(v) => Some(self.text.get(name).and_then(|m| m.get(v)).map_or(0, BTreeSet::len)),
            Op::GreaterThan(_) | Op::LessThan(_) => {
                Some(in_range(self.numbers.get(name), op).map(BTreeSet::len).sum())
            }
            Op::NotEquals(_) | Op::In(_) | Op::NotIn(_) | Op::Exists | Op::NotExists => None,
        }
    }
}

/// Whether the indexes answer `op` exactly.
pub(super) fn indexed_op(op: &Op) -> bool {
    matches!(op, Op::Equals(_) | Op::In(_) | Op::GreaterThan(_) | Op::LessThan(_))
}

impl State {
    fn index(&mut self, key: &str, doc: &Value, paths: &[String], add: bool) {
        if let Some(labels) = document::labels(doc) {
            for (name, value) in labels {
                let text = scalar(Some(value));
                if let Some(n) = Num::of_label(&text) {
                    apply(&mut self.labels.numbers, name, n, key, add);
                }
                apply(&mut self.labels.text, name, text, key, add);
            }
        }
        for path in paths {
            let value = lookup(doc, path);
            if let Some(n) = value.and_then(Num::of_json) {
                apply(&mut self.fields.numbers, path, n, key, add);
            }
            apply(&mut self.fields.text, path, scalar(value), key, add);
        }
    }

    pub(super) fn put(&mut self, key: String, doc: Value, paths: &[String]) {
        if let Some(old) = self.docs.remove(&key) {
            self.index(&key, &old, paths, false);
        }
        self.index(&key, &doc, paths, true);
        self.docs.insert(key, Arc::new(doc));
    }

    pub(super) fn delete(&mut self, key: &str, paths: &[String]) {
        if let Some(old) = self.docs.remove(key) {
            self.index(key, &old, paths, false);
        }
    }

    /// The keys the indexes allow for `query` (`None`: no indexed requirement, all keys).
    pub(super) fn candidates<'a>(&'a self, query: &Query, paths: &[String]) -> Option<BTreeSet<&'a String>> {
        let labels = query.labels.requirements.iter().filter_map(|r| self.labels.allowed(&r.key, &r.op));
        let fields = query
            .fields
            .requirements
            .iter()
            .filter(|r| paths.contains(&r.key))
            .filter_map(|r| self.fields.allowed(&r.key, &r.op));
        labels.chain(fields).reduce(|a, b| a.intersection(&b).copied().collect())
    }

    /// The size of the one indexed equality or comparison a query is made of, without
    /// building a set.
    pub(super) fn single_indexed(&self, query: &Query, paths: &[String]) -> Option<usize> {
        match (&query.labels.requirements[..], &query.fields.requirements[..]) {
            ([r], []) => self.labels.count(&r.key, &r.op),
            ([], [r]) if paths.contains(&r.key) => self.fields.count(&r.key, &r.op),
            _ => None,
        }
    }
}
