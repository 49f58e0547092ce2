//! Neuroglia's storage protocol on etcd: text values at `prefix + key`, as Neuroglia's own
//! `ResourceRepository(storage_backend, serializer, resource_type)` uses them (`get(key) -> str`,
//! `set(key, text)`, `exists`, `delete`, `keys("resources:kind:*")`).
//!
//! Neuroglia keeps a counter in `metadata.resource_version`: its `update_async` reads the
//! resource, checks the version, writes it back with the version plus one; a new resource
//! holds `"1"`. Here the version a reader sees is the key's mod_revision (set in the text
//! `get` returns), and `set` of a document that holds version `n` writes only if the key's
//! mod_revision is still `n - 1` (one transaction; `n - 1 = 0`: only if the key is absent).
//! So Neuroglia's read-check-write runs as a compare-and-swap on etcd's revision, and a
//! concurrent write makes the `set` fail with a conflict instead of being overwritten. Text
//! that is not a document with an integer `metadata.resource_version` (a bookmark, a
//! document without one) is written unconditionally.

use serde_json::Value;

use crate::client::Client;
use crate::document;
use crate::error::{Error, Result};
use crate::names;
use crate::store::{prefix_end, RangeRequest};

/// Text values by key under one prefix.
#[derive(Clone)]
pub struct TextBackend {
    client: Client,
    prefix: String,
}

/// A stored document (JSON or YAML text of a mapping), if the text is one.
fn document_of(key: &str, text: &str) -> Option<Value> {
    document::decode(key, text.as_bytes()).ok()
}

impl TextBackend {
    /// Text under `prefix`, normalised to end in `/`.
    pub fn new(client: Client, prefix: &str) -> Result<Self> {
        let prefix = names::normalize_prefix(prefix)?;
        client.note_prefix(&prefix);
        Ok(TextBackend { client, prefix })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn key(&self, key: &str) -> Result<String> {
        if key.is_empty() || key.contains('\0') {
            return Err(Error::invalid(format!("a storage key is non-empty text without NUL, got {key:?}")));
        }
        Ok(format!("{}{key}", self.prefix))
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        let full = self.key(key)?;
        let req = RangeRequest { count_only: true, ..RangeRequest::key(full.as_bytes()) };
        Ok(self.client.store()?.range(req).await?.count > 0)
    }

    /// The text at `key`; a document's `metadata.resource_version` is the key's mod_revision
    /// (the document is written back in the encoding it is stored in).
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        let full = self.key(key)?;
        let resp = self.client.store()?.range(RangeRequest::key(full.as_bytes())).await?;
        let Some(kv) = resp.kvs.into_iter().next() else { return Ok(None) };
        let text = String::from_utf8(kv.value)
            .map_err(|_| Error::serialization(Some(&full), "the stored value is not UTF-8 text"))?;
        let Some(mut doc) =
            document_of(&full, &text).filter(|d| d.get("metadata").is_some_and(Value::is_object))
        else {
            return Ok(Some(text));
        };
        document::set_resource_version(&mut doc, kv.mod_revision);
        let format = if document::is_json_object(text.as_bytes()) {
            document::Format::Json
        } else {
            document::Format::Yaml
        };
        let bytes = document::encode(&full, &doc, format)?;
        String::from_utf8(bytes).map(Some).map_err(|e| Error::serialization(Some(&full), e))
    }

    /// Write `text`; for a document holding version `n`, only if the key's mod_revision is
    /// `n - 1` (`Conflict` otherwise; `AlreadyExists` for `n = 1` and a present key). Returns
    /// the new revision.
    pub async fn set(&self, key: &str, text: &str) -> Result<i64> {
        let full = self.key(key)?;
        let limit = self.client.options().max_document_bytes;
        let size = text.len() + full.len();
        if size > limit {
            return Err(Error::TooLarge { key: full, size, limit });
        }
        let held = match document_of(&full, text) {
            Some(doc) => document::resource_version(&doc)?,
            None => None,
        };
        let store = self.client.store()?;
        let value = text.as_bytes().to_vec();
        match held {
            None => store.put(full.into_bytes(), value, 0).await,
            Some(n) if n < 1 => {
                Err(Error::invalid(format!("resource_version {n} in {full:?}: Neuroglia's start at 1")))
            }
            Some(1) => store.create(full.into_bytes(), value, 0).await,
            Some(n) => store.compare_and_swap(full.into_bytes(), n - 1, value, 0).await,
        }
    }

    /// Whether a key was deleted.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let full = self.key(key)?;
        Ok(self.client.store()?.delete(full.into_bytes(), None).await?.is_some())
    }

    /// The keys (without the prefix) `pattern` names, in key order, from one snapshot: with a
    /// trailing `*`, every key starting with what comes before it; without, the key itself if
    /// present. Other wildcards are refused.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        let (start, exact) = match pattern.strip_suffix('*') {
            Some(p) => (p, false),
            None => (pattern, true),
        };
        if start.contains(['*', '?', '[']) {
            return Err(Error::invalid(format!("only a trailing '*' is a wildcard, got {pattern:?}")));
        }
        let from = format!("{}{start}", self.prefix);
        let req = if exact {
            RangeRequest { keys_only: true, ..RangeRequest::key(from.as_bytes()) }
        } else {
            let end = prefix_end(from.as_bytes());
            RangeRequest { key: from.into_bytes(), range_end: end, keys_only: true, ..Default::default() }
        };
        let resp = self.client.store()?.range(req).await?;
        let keys = resp.kvs.iter().filter_map(|kv| kv.key.strip_prefix(self.prefix.as_bytes()));
        Ok(keys.filter_map(|k| std::str::from_utf8(k).ok().map(str::to_owned)).collect())
    }
}

#[cfg(test)]
mod tests;
