//! The cache's entries and their indexes.
//!
//! An [`Entry`] is a document held compactly: its stored bytes (decoded when a reader asks,
//! see `crate::py::built` for Python), and what selectors read most, already extracted: the
//! namespace, the labels, and the value of each indexed field path. Queries on those never
//! decode a document; one on another path reads just that path from the bytes
//! ([`Projection`]).
//!
//! The indexes map, per label name and indexed field path, each value (as text, for equality
//! and sets; as a number, in order, for `>` and `<`) to the entries holding it, in key order.
//! A query is answered from its narrowest indexed requirement: walk the entries under it and
//! test the rest of the query on what each entry holds, so its cost follows its matches, not
//! the number of documents.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::document;
use crate::error::Result;
use crate::projection::Projection;
use crate::selector::{lookup, scalar_text, Num, Op, Query, Requirement};
use crate::store::KeyValue;

/// The value of an indexed field path in one document, as selectors read it.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    /// Its text when it is a string, number or boolean (absent, `null` and containers: `None`).
    text: Option<Box<str>>,
    /// Its value when it is a JSON number.
    number: Option<Num>,
}

/// A label's name and its value as selectors read it (`None`: not a string, number or
/// boolean).
type Label = (Box<str>, Option<Box<str>>);

/// One cached document (see the module doc).
#[derive(Debug)]
pub struct Entry {
    key: Arc<str>,
    /// The key-value as stored: JSON bytes (a YAML document is held as its JSON), with its
    /// revisions; decoded on read.
    kv: KeyValue,
    namespace: Option<Box<str>>,
    /// Sorted by name.
    labels: Box<[Label]>,
    /// One per indexed path, in the informer's order.
    fields: Box<[Held]>,
}

/// What an entry built from stored bytes reads of them: `metadata` and the indexed `paths`.
pub(super) fn holding(paths: &[String]) -> Projection {
    Projection::of_paths(paths.iter().map(String::as_str))
}

/// Documents decoded to answer a query (for tests: queries on labels and indexed paths
/// decode none).
pub(super) static DECODED: AtomicU64 = AtomicU64::new(0);

impl Entry {
    /// An entry for a stored key-value; `paths` are the informer's indexed paths.
    /// `projection` is [`holding`]`(paths)`.
    pub(super) fn from_stored(kv: KeyValue, paths: &[String], projection: &Projection) -> Result<Entry> {
        let key: Arc<str> = String::from_utf8_lossy(&kv.key).into();
        if !document::is_json_object(&kv.value) {
            let doc = document::read(&key, &kv.value, kv.mod_revision)?;
            return Entry::from_document(key, &doc, kv, paths);
        }
        // What the entry holds, read without building the rest of the document.
        let held = projection.read(&key, &kv.value, kv.mod_revision)?;
        let mut entry = Entry::holding(key, &held, kv, paths);
        entry.kv.value.shrink_to_fit();
        Ok(entry)
    }

    /// An entry for a decoded document (a watch's change) stored at `kv`'s revisions; the
    /// bytes held are the document's JSON.
    pub(super) fn from_document(
        key: Arc<str>,
        doc: &Value,
        mut kv: KeyValue,
        paths: &[String],
    ) -> Result<Entry> {
        kv.value = document::encode(&key, doc, document::Format::Json)?;
        Ok(Entry::holding(key, doc, kv, paths))
    }

    fn holding(key: Arc<str>, doc: &Value, kv: KeyValue, paths: &[String]) -> Entry {
        let mut labels: Vec<Label> = document::labels(doc)
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.as_str().into(), scalar_text(value).map(|t| t.into())))
            .collect();
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let fields = paths
            .iter()
            .map(|path| {
                let value = lookup(doc, path);
                Held {
                    text: value.and_then(scalar_text).map(|t| t.into()),
                    number: value.and_then(Num::of_json),
                }
            })
            .collect();
        Entry {
            key,
            namespace: document::meta_str(doc, "namespace").map(Into::into),
            labels: labels.into(),
            fields,
            kv,
        }
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The stored key-value (JSON bytes, revisions).
    pub fn stored(&self) -> &KeyValue {
        &self.kv
    }

    /// The document in the normal shape with its `resource_version`.
    pub fn document(&self) -> Result<Value> {
        document::read(&self.key, &self.kv.value, self.kv.mod_revision)
    }

    fn label(&self, name: &str) -> Option<Option<&str>> {
        let i = self.labels.binary_search_by(|(n, _)| (**n).cmp(name)).ok()?;
        Some(self.labels[i].1.as_deref())
    }

    /// Whether the entry matches `query`, from what it holds; `None` when the query reads a
    /// path it does not hold.
    pub(super) fn test_held(&self, query: &Query, paths: &[String]) -> Option<bool> {
        if let Some(ns) = &query.namespace {
            if self.namespace.as_deref() != Some(ns.as_str()) {
                return Some(false);
            }
        }
        for r in &query.labels.requirements {
            let value = self.label(&r.key).flatten();
            if !r.test(value, None, || value.and_then(Num::of_label)) {
                return Some(false);
            }
        }
        let mut unheld = false;
        for r in &query.fields.requirements {
            // A time comparison reads the document (two paths, parsed timestamps).
            let held = if r.op.time().is_some() { None } else { paths.iter().position(|p| *p == r.key) };
            let Some(i) = held else {
                unheld = true;
                continue;
            };
            let held = &self.fields[i];
            if !r.test(held.text.as_deref(), Some(""), || held.number) {
                return Some(false);
            }
        }
        (!unheld).then_some(true)
    }

    /// Whether the entry matches `query`: from what it holds, or else by reading the paths
    /// the query names from the bytes.
    pub(super) fn matches(&self, query: &Query, paths: &[String]) -> bool {
        if let Some(answer) = self.test_held(query, paths) {
            return answer;
        }
        DECODED.fetch_add(1, Ordering::Relaxed);
        let Some(projection) = Projection::of(query) else { return true };
        projection.read(&self.key, &self.kv.value, self.kv.mod_revision).is_ok_and(|doc| query.matches(&doc))
    }
}

/// Entries by key.
type Keyed = BTreeMap<Arc<str>, Arc<Entry>>;

/// Per label name or field path, the entries by value.
type Index<V> = HashMap<String, BTreeMap<V, Keyed>>;

#[derive(Default)]
pub(super) struct Indexes {
    /// Every value as text (`""` for absent, `null` or containers), for equality and sets.
    pub(super) text: Index<Box<str>>,
    /// The values that are numbers, as `>` and `<` read them (labels: integers), in order.
    pub(super) numbers: Index<Num>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) docs: Keyed,
    pub(super) labels: Indexes,
    pub(super) fields: Indexes,
}

/// Add `entry` under `value` of `name`, or take it out.
fn apply<V: Ord>(index: &mut Index<V>, name: &str, value: V, entry: &Arc<Entry>, add: bool) {
    if add {
        let by_value = match index.get_mut(name) {
            Some(by_value) => by_value,
            None => index.entry(name.to_owned()).or_default(),
        };
        by_value.entry(value).or_default().insert(entry.key.clone(), entry.clone());
    } else if let Some(by_value) = index.get_mut(name) {
        if let Some(keyed) = by_value.get_mut(&value) {
            keyed.remove(&entry.key);
            if keyed.is_empty() {
                by_value.remove(&value);
            }
        }
        if by_value.is_empty() {
            index.remove(name);
        }
    }
}

fn range_of(op: &Op) -> Option<(Bound<Num>, Bound<Num>)> {
    match op {
        Op::GreaterThan(n) => Some((Bound::Excluded(*n), Bound::Unbounded)),
        Op::LessThan(n) => Some((Bound::Unbounded, Bound::Excluded(*n))),
        _ => None,
    }
}

impl Indexes {
    /// The groups of entries (each in key order, pairwise disjoint) an indexed requirement
    /// allows; `None`: the operator is not indexed.
    fn groups(&self, name: &str, op: &Op) -> Option<Vec<&Keyed>> {
        let by_value = self.text.get(name);
        let group = |v: &str| by_value.and_then(|m| m.get(v));
        match op {
            Op::Equals(v) => Some(group(v).into_iter().collect()),
            Op::In(vs) => {
                let mut vs: Vec<&String> = vs.iter().collect();
                vs.sort();
                vs.dedup();
                Some(vs.into_iter().filter_map(|v| group(v)).collect())
            }
            Op::GreaterThan(_) | Op::LessThan(_) => {
                let range = range_of(op)?;
                Some(
                    self.numbers.get(name).into_iter().flat_map(|m| m.range(range).map(|(_, k)| k)).collect(),
                )
            }
            Op::NotEquals(_) | Op::NotIn(_) | Op::Exists | Op::NotExists => None,
            Op::Before(_) | Op::After(_) => None,
        }
    }
}

/// How many entries some groups hold.
fn size(groups: &[&Keyed]) -> usize {
    groups.iter().map(|k| k.len()).sum()
}

/// Whether the indexes answer `op` exactly.
fn indexed_op(op: &Op) -> bool {
    matches!(op, Op::Equals(_) | Op::In(_) | Op::GreaterThan(_) | Op::LessThan(_))
}

/// The narrowest indexed requirement of a query: its groups, and whether it is the query's
/// only requirement (then its entries are exactly the matches).
pub(super) struct Narrowest<'a> {
    groups: Vec<&'a Keyed>,
    pub(super) exact: bool,
}

impl State {
    fn index(&mut self, entry: &Arc<Entry>, paths: &[String], add: bool) {
        for (name, value) in entry.labels.iter() {
            let text = value.as_deref().unwrap_or("");
            if let Some(n) = Num::of_label(text) {
                apply(&mut self.labels.numbers, name, n, entry, add);
            }
            apply(&mut self.labels.text, name, text.into(), entry, add);
        }
        for (path, held) in paths.iter().zip(entry.fields.iter()) {
            if let Some(n) = held.number {
                apply(&mut self.fields.numbers, path, n, entry, add);
            }
            apply(&mut self.fields.text, path, held.text.as_deref().unwrap_or("").into(), entry, add);
        }
    }

    pub(super) fn put(&mut self, entry: Entry, paths: &[String]) {
        let entry = Arc::new(entry);
        if let Some(old) = self.docs.remove(&entry.key) {
            self.index(&old, paths, false);
        }
        self.index(&entry, paths, true);
        self.docs.insert(entry.key.clone(), entry);
    }

    pub(super) fn delete(&mut self, key: &str, paths: &[String]) {
        if let Some(old) = self.docs.remove(key) {
            self.index(&old, paths, false);
        }
    }

    fn requirement_groups<'a>(
        &'a self,
        r: &Requirement,
        label: bool,
        paths: &[String],
    ) -> Option<Vec<&'a Keyed>> {
        if label {
            self.labels.groups(&r.key, &r.op)
        } else if paths.contains(&r.key) {
            self.fields.groups(&r.key, &r.op)
        } else {
            None
        }
    }

    /// The narrowest indexed requirement of `query` (`None`: it has none).
    pub(super) fn narrowest(&self, query: &Query, paths: &[String]) -> Option<Narrowest<'_>> {
        let labels = query.labels.requirements.iter().map(|r| (r, true));
        let fields = query.fields.requirements.iter().map(|r| (r, false));
        let best = labels
            .chain(fields)
            .filter(|(r, _)| indexed_op(&r.op))
            .filter_map(|(r, label)| self.requirement_groups(r, label, paths))
            .min_by_key(|groups| size(groups))?;
        let requirements = query.labels.requirements.len() + query.fields.requirements.len();
        Some(Narrowest { groups: best, exact: requirements == 1 && query.namespace.is_none() })
    }

    /// The entries matching `query`, in key order.
    pub(super) fn list(&self, query: &Query, paths: &[String]) -> Vec<Arc<Entry>> {
        let Some(Narrowest { groups, exact }) = self.narrowest(query, paths) else {
            return self.docs.values().filter(|e| e.matches(query, paths)).cloned().collect();
        };
        let mut out: Vec<Arc<Entry>> = Vec::with_capacity(size(&groups));
        for group in &groups {
            out.extend(group.values().filter(|e| exact || e.matches(query, paths)).cloned());
        }
        if groups.len() > 1 {
            out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }
        out
    }

    /// How many entries match `query`; one indexed requirement alone costs a lookup per
    /// value it allows.
    pub(super) fn count(&self, query: &Query, paths: &[String]) -> usize {
        match self.narrowest(query, paths) {
            Some(Narrowest { groups, exact: true }) => size(&groups),
            Some(Narrowest { groups, exact: false }) => {
                groups.iter().flat_map(|g| g.values()).filter(|e| e.matches(query, paths)).count()
            }
            None => self.docs.values().filter(|e| e.matches(query, paths)).count(),
        }
    }
}
