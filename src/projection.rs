//! Reading only the parts of a stored document a filter looks at.
//!
//! A listing filtered on `status.phase` does not need the rest of a 2 KB document as a tree of
//! values: the parser still scans every byte, but skips what no selector reads instead of
//! allocating it. The projected document keeps `metadata` whole (it is small, and its keys are
//! normalised like any read), `apiVersion`/`kind`, and every path a field selector names;
//! a path that reaches something other than an object keeps that value whole. So a query
//! gives the same answer on the projection as on the full document (tested against it).

use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::document;
use crate::error::{Error, Result};
use crate::selector::Query;

/// Top-level members every projection keeps.
const ALWAYS: [&str; 4] = ["metadata", "apiVersion", "api_version", "kind"];

/// The paths to keep: a tree of member names; a leaf keeps its value whole.
#[derive(Debug, Default, Clone)]
struct Node {
    children: HashMap<String, Node>,
}

/// Leaves are marked by a child named "" (no member of a path can be empty).
fn child_was_leaf(node: &Node) -> bool {
    node.children.contains_key("")
}

/// Which parts of documents a query reads.
#[derive(Debug, Clone)]
pub struct Projection {
    root: Node,
}

impl Projection {
    /// The projection of a query's filters; `None` when the query reads no document.
    pub fn of(query: &Query) -> Option<Projection> {
        if query.is_unfiltered() {
            return None;
        }
        Some(Self::of_paths(query.fields.requirements.iter().flat_map(|r| r.paths())))
    }

    /// The projection keeping the dotted `paths` (and what every projection keeps).
    pub fn of_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Projection {
        let mut root = Node::default();
        for name in ALWAYS {
            leaf(&mut root, std::iter::once(name));
        }
        for path in paths {
            leaf(&mut root, path.split('.'));
        }
        Projection { root }
    }

    /// The projected document in the normal shape, with its resource_version (what
    /// [`document::read`] gives, less the parts no filter reads). YAML is read whole.
    pub fn read(&self, key: &str, bytes: &[u8], mod_revision: i64) -> Result<Value> {
        if !document::is_json_object(bytes) {
            return document::read(key, bytes, mod_revision);
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let mut doc = Select(&self.root)
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| Error::serialization(Some(key), format!("invalid JSON: {e}")))?;
        if !doc.is_object() {
            return Err(Error::serialization(Some(key), "the stored document is not an object"));
        }
        document::normalize(&mut doc);
        document::set_resource_version(&mut doc, mod_revision);
        Ok(doc)
    }
}

/// Keep the value at `path` whole.
fn leaf<'a>(root: &mut Node, path: impl Iterator<Item = &'a str>) {
    let mut node = root;
    for segment in path {
        if child_was_leaf(node) {
            return;
        }
        node = node.children.entry(segment.to_owned()).or_default();
    }
    node.children.clear();
    node.children.insert(String::new(), Node::default());
}

/// Deserializes the parts of a value under a node.
struct Select<'a>(&'a Node);

impl<'de> DeserializeSeed<'de> for Select<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        if child_was_leaf(self.0) {
            return serde::Deserialize::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Select<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(kept) = map.next_key_seed(Member(self.0))? {
            match kept {
                Some((name, child)) => {
                    let v = map.next_value_seed(Select(child))?;
                    out.insert(name, v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    // Anything but an object on a kept path is kept whole.
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
}

/// Reads a member name: the name and its node when the projection keeps it (no allocation
/// for the members it skips).
struct Member<'a>(&'a Node);

impl<'de, 'a> DeserializeSeed<'de> for Member<'a> {
    type Value = Option<(String, &'a Node)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for Member<'a> {
    type Value = Option<(String, &'a Node)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(self.0.children.get(v).map(|node| (v.to_owned(), node)))
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn walk(node: &Node, prefix: &str, out: &mut Vec<String>) {
            if child_was_leaf(node) {
                out.push(prefix.to_owned());
                return;
            }
            for (k, child) in &node.children {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(child, &path, out);
            }
        }
        let mut paths = Vec::new();
        walk(&self.root, "", &mut paths);
        paths.sort();
        write!(f, "{}", paths.join(", "))
    }
}

#[cfg(test)]
mod tests;
