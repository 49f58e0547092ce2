//! The key-value backend of the Python repository we replace (`EtcdStorageBackend`): plain
//! documents at `prefix + name`, with the same conveniences, done properly (one range request
//! per listing, compare-and-swap in one transaction, errors raised).

use serde_json::Value;

use crate::client::Client;
use crate::document::{self, Format};
use crate::error::{Error, Result};
use crate::listing;
use crate::names;
use crate::projection::Projection;
use crate::selector::{LabelSelector, Query};
use crate::store::{prefix_end, KeyValue, RangeRequest};

/// Documents by name under one prefix.
#[derive(Clone)]
pub struct Backend {
    client: Client,
    prefix: String,
    format: Format,
}

impl Backend {
    /// Documents under `prefix`, normalised to end in `/` (see [`names::normalize_prefix`];
    /// an empty one is refused).
    pub fn new(client: Client, prefix: &str, format: Format) -> Result<Self> {
        let prefix = names::normalize_prefix(prefix)?;
        client.note_prefix(&prefix);
        Ok(Backend { client, prefix, format })
    }

    /// The prefix, ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn key(&self, name: &str) -> Result<String> {
        names::validate_name(name)?;
        Ok(format!("{}{name}", self.prefix))
    }

    /// The name of a key under the prefix.
    pub fn name_of<'a>(&self, key: &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(key.strip_prefix(self.prefix.as_bytes())?).ok()
    }

    fn encode(&self, key: &str, value: &Value) -> Result<Vec<u8>> {
        let mut value = value.clone();
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resource_version");
        }
        let bytes = document::encode(key, &value, self.format)?;
        let limit = self.client.options().max_document_bytes;
        if bytes.len() + key.len() > limit {
            return Err(Error::TooLarge { key: key.to_owned(), size: bytes.len() + key.len(), limit });
        }
        Ok(bytes)
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        let key = self.key(name)?;
        let req = RangeRequest { count_only: true, ..RangeRequest::key(key.as_bytes()) };
        Ok(self.client.store()?.range(req).await?.count > 0)
    }

    pub async fn get(&self, name: &str) -> Result<Option<Value>> {
        self.get_stored(name).await?.as_ref().map(document::read_kv).transpose()
    }

    /// The stored key-value of `name` (decoded by the caller).
    pub async fn get_stored(&self, name: &str) -> Result<Option<KeyValue>> {
        let key = self.key(name)?;
        let resp = self.client.store()?.range(RangeRequest::key(key.as_bytes())).await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Write unconditionally; returns the new revision.
    pub async fn set(&self, name: &str, value: &Value) -> Result<i64> {
        let key = self.key(name)?;
        if !value.is_object() {
            return Err(Error::invalid("the value must be a dict"));
        }
        let bytes = self.encode(&key, value)?;
        self.client.store()?.put(key.into_bytes(), bytes, 0).await
    }

    /// Whether a key was deleted.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let key = self.key(name)?;
        Ok(self.client.store()?.delete(key.into_bytes(), None).await?.is_some())
    }

    /// Names starting with `pattern` (a name prefix), in key order, from one snapshot.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        names::validate_name_prefix(pattern)?;
        let start = format!("{}{pattern}", self.prefix);
        let end = prefix_end(start.as_bytes());
        let store = self.client.store()?;
        let mut names = Vec::new();
        let req =
            RangeRequest { key: start.into_bytes(), range_end: end, keys_only: true, ..Default::default() };
        for kv in store.range(req).await?.kvs {
            if let Some(name) = self.name_of(&kv.key) {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// Documents whose labels match (as stored, decoded by the caller), read at one revision
    /// in bounded chunks; keys whose bytes cannot be read are returned apart.
    pub async fn list(&self, selector: &LabelSelector) -> Result<(Vec<KeyValue>, Vec<Error>)> {
        let end = prefix_end(self.prefix.as_bytes());
        let store = self.client.store()?;
        let (mut items, mut unreadable) = (Vec::new(), Vec::new());
        let query = Query { labels: selector.clone(), ..Default::default() };
        let projection = Projection::of(&query);
        listing::scan(&**store, self.prefix.as_bytes(), &end, 0, listing::CHUNK, |kv| {
            if listing::matches(&query, projection.as_ref(), &kv, &mut unreadable) {
                items.push(kv);
            }
            Ok(true)
        })
        .await?;
        Ok((items, unreadable))
    }

    /// Write only if the key's mod_revision is `expected`: `Ok(false)` when it is not (or the
    /// key is gone), errors only for failures.
    pub async fn compare_and_swap(&self, name: &str, expected: i64, value: &Value) -> Result<bool> {
        let key = self.key(name)?;
        let bytes = self.encode(&key, value)?;
        match self.client.store()?.compare_and_swap(key.into_bytes(), expected, bytes, 0).await {
            Ok(_) => Ok(true),
            Err(Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::client::{ClientOptions, MEMORY_ENDPOINT};

    fn backend() -> Backend {
        let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
        Backend::new(client, "/kv", Format::Json).unwrap()
    }

    #[tokio::test]
    async fn the_seed_api_round_trips() {
        let b = backend();
        assert!(!b.exists("a").await.unwrap());
        let rev = b.set("a", &json!({"metadata": {"labels": {"t": "x"}}})).await.unwrap();
        b.set("ab", &json!({"metadata": {"labels": {"t": "y"}}})).await.unwrap();
        b.set("b", &json!({})).await.unwrap();
        let a = b.get("a").await.unwrap().unwrap();
        assert_eq!(a["metadata"]["resource_version"], rev.to_string());
        assert_eq!(b.keys("a").await.unwrap(), vec!["a", "ab"]);
        assert_eq!(b.keys("").await.unwrap().len(), 3);
        let (items, _) = b.list(&LabelSelector::from_pairs([("t".into(), "x".into())])).await.unwrap();
        assert_eq!(items.len(), 1);
        assert!(b.compare_and_swap("a", rev, &json!({"v": 2})).await.unwrap());
        assert!(!b.compare_and_swap("a", rev, &json!({"v": 3})).await.unwrap());
        assert!(!b.compare_and_swap("zz", rev, &json!({"v": 3})).await.unwrap());
        assert_eq!(b.get("a").await.unwrap().unwrap()["v"], 2);
        assert!(b.delete("a").await.unwrap());
        assert!(!b.delete("a").await.unwrap());
        assert!(b.get("a").await.unwrap().is_none());
    }
}
