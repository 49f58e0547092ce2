//! The resource repository: Kubernetes semantics on top of a [`Store`].
//!
//! - key: `prefix + name`, or `prefix + namespace + "/" + name` when namespaced;
//! - create: one transaction on `create_revision == 0` (a second create fails atomically);
//! - update: compare-and-swap on `metadata.resource_version` (etcd's mod_revision);
//!   `generation` goes up by one when `spec` changes; `uid`, `creation_timestamp` and
//!   `deletion_timestamp` are kept from the stored object; the key's lease is kept;
//! - delete: with finalizers, sets `deletion_timestamp`; the object goes when an update removes
//!   the last finalizer.

use serde_json::Value;

use std::sync::Arc;

use crate::client::Client;
use crate::document::{self, Format};
use crate::error::{Error, Result};
use crate::informer::{self, Informer};
use crate::names;
use crate::projection::Projection;
use crate::store::{KeyValue, RangeRequest};
use memo::Memo;

/// How many times an unconditional write retries a compare-and-swap that lost a race.
const RACE_RETRIES: usize = 32;

/// Where a repository keeps its resources and how it writes them.
#[derive(Clone, Debug)]
pub struct RepositoryConfig {
    /// Where the keys start; [`Repository::new`] makes it end in `/`.
    pub prefix: String,
    pub namespaced: bool,
    pub format: Format,
    /// Namespace of resources that name none, in a namespaced repository.
    pub default_namespace: String,
    /// Answer lists and counts from a shared informer cache indexing these field paths
    /// (`None`: read etcd every time).
    pub cache_fields: Option<Vec<String>>,
}

impl RepositoryConfig {
    pub fn new(prefix: impl Into<String>) -> Self {
        RepositoryConfig {
            prefix: prefix.into(),
            namespaced: false,
            format: Format::Json,
            default_namespace: "default".into(),
            cache_fields: None,
        }
    }
}

/// What `remove` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Removal {
    /// The key is gone.
    Deleted,
    /// Finalizers remain: `deletion_timestamp` is set, the resource (returned) stays.
    Finalizing(Value),
}

/// The repository engine (no Python in here).
#[derive(Clone)]
pub struct Repository {
    client: Client,
    config: RepositoryConfig,
    /// The shared informer, started by the first cached read.
    informer: Arc<tokio::sync::OnceCell<Informer>>,
    /// What this repository read or wrote last (see [`memo`]).
    memo: Arc<Memo>,
}

impl Repository {
    /// A repository of `config`, its prefix normalised to end in `/` (see
    /// [`names::normalize_prefix`]; an empty one is refused).
    pub fn new(client: Client, mut config: RepositoryConfig) -> Result<Self> {
        config.prefix = names::normalize_prefix(&config.prefix)?;
        names::validate_namespace(&config.default_namespace)?;
        client.note_prefix(&config.prefix);
        Ok(Repository { client, config, informer: Arc::default(), memo: Arc::default() })
    }

    /// The informer cache, when this repository reads from one (started on first use).
    pub async fn informer(&self) -> Result<Option<&Informer>> {
        let Some(fields) = &self.config.cache_fields else { return Ok(None) };
        let informer = self
            .informer
            .get_or_try_init(|| async { Informer::shared(&self.client, &self.config.prefix, fields) })
            .await?;
        Ok(Some(informer))
    }

    pub fn config(&self) -> &RepositoryConfig {
        &self.config
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key of a resource. The name (and namespace) are validated first.
    pub fn key(&self, name: &str, namespace: Option<&str>) -> Result<String> {
        names::validate_name(name)?;
        if self.config.namespaced {
            let ns = namespace.unwrap_or(&self.config.default_namespace);
            names::validate_namespace(ns)?;
            Ok(format!("{}{ns}/{name}", self.config.prefix))
        } else {
            if let Some(ns) = namespace {
                names::validate_namespace(ns)?;
            }
            Ok(format!("{}{name}", self.config.prefix))
        }
    }

    fn doc_key(&self, doc: &Value) -> Result<String> {
        let name = document::meta_str(doc, "name")
            .ok_or_else(|| Error::invalid("a resource needs metadata.name (a string)"))?;
        self.key(name, document::meta_str(doc, "namespace"))
    }

    fn encode(&self, key: &str, doc: &Value) -> Result<Vec<u8>> {
        let bytes = document::encode(key, doc, self.config.format)?;
        let limit = self.client.options().max_document_bytes;
        if bytes.len() + key.len() > limit {
            return Err(Error::TooLarge { key: key.to_owned(), size: bytes.len() + key.len(), limit });
        }
        Ok(bytes)
    }

    async fn current(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self.client.store()?.range(RangeRequest::key(key.as_bytes())).await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// The resource, with its resource_version; `None` when absent.
    pub async fn get(&self, name: &str, namespace: Option<&str>) -> Result<Option<Value>> {
        self.get_stored(name, namespace).await?.as_ref().map(document::read_kv).transpose()
    }

    /// The stored key-value of the resource (decoded by the caller: for Python straight into
    /// Python objects); `None` when absent.
    pub async fn get_stored(&self, name: &str, namespace: Option<&str>) -> Result<Option<KeyValue>> {
        let key = self.key(name, namespace)?;
        let kv = self.current(&key).await?;
        if let Some(kv) = &kv {
            self.memo.remember(kv.clone());
            informer::note(&self.client, &kv.key, kv.mod_revision);
        }
        Ok(kv)
    }

    /// Whether the resource exists (reads no value).
    pub async fn contains(&self, name: &str, namespace: Option<&str>) -> Result<bool> {
        let key = self.key(name, namespace)?;
        let req = RangeRequest { count_only: true, ..RangeRequest::key(key.as_bytes()) };
        Ok(self.client.store()?.range(req).await?.count > 0)
    }

    /// Create the resource; `AlreadyExists` when the name is taken. `lease` 0 for none.
    pub async fn create(&self, mut doc: Value, lease: i64) -> Result<Value> {
        let key = self.doc_key(&doc)?;
        let namespaced = self.config.namespaced;
        let default_ns = self.config.default_namespace.clone();
        let meta = document::metadata_mut(&mut doc)?;
        meta.remove("resource_version");
        meta.remove("deletion_timestamp");
        if namespaced && meta.get("namespace").is_none_or(Value::is_null) {
            meta.insert("namespace".into(), Value::String(default_ns));
        }
        if meta.get("uid").and_then(Value::as_str).is_none_or(str::is_empty) {
            meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        }
        if meta.get("creation_timestamp").and_then(Value::as_str).is_none_or(str::is_empty) {
            meta.insert("creation_timestamp".into(), Value::String(document::now_iso()));
        }
        meta.insert("generation".into(), Value::from(1));
        let bytes = self.encode(&key, &doc)?;
        let key = key.into_bytes();
        let revision = self.client.store()?.create(key.clone(), bytes.clone(), lease).await?;
        informer::note(&self.client, &key, revision);
        self.memo.remember(KeyValue {
            key,
            value: bytes,
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease,
        });
        document::set_resource_version(&mut doc, revision);
        Ok(doc)
    }

    /// Replace the resource. With `metadata.resource_version`, only if it is still current
    /// (else `Conflict`); without, whatever the current version is. A version this repository
    /// read or wrote last is not read again (see [`memo`]): one compare-and-swap.
    pub async fn update(&self, doc: Value) -> Result<Value> {
        let key = self.doc_key(&doc)?;
        let expected = document::resource_version(&doc)?;
        if let Some(known) = expected.and_then(|e| self.memo.recall(key.as_bytes(), e)) {
            return match self.replace(&key, doc, known).await {
                Err(Error::Conflict { actual: None, .. }) => Err(Error::NotFound { key }),
                other => other,
            };
        }
        for _ in 0..RACE_RETRIES {
            let current = self.current(&key).await?.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if let Some(e) = expected {
                if e != current.mod_revision {
                    return Err(Error::Conflict { key, expected: e, actual: Some(current.mod_revision) });
                }
            }
            match self.replace(&key, doc.clone(), current).await {
                Err(Error::Conflict { .. }) if expected.is_none() => continue,
                other => return other,
            }
        }
        Err(Error::Conflict { key, expected: 0, actual: None })
    }

    /// Write `doc` over `current` (the key as etcd held it) with one compare-and-swap on its
    /// revision, keeping the fields the server owns; with no finalizer left on a resource being
    /// deleted, delete it.
    async fn replace(&self, key: &str, mut doc: Value, current: KeyValue) -> Result<Value> {
        let store = self.client.store()?;
        // The fields the server owns are in metadata; `generation` compares the spec.
        static OWNED: std::sync::LazyLock<Projection> =
            std::sync::LazyLock::new(|| Projection::of_paths(["spec"]));
        let stored = OWNED.read(key, &current.value, current.mod_revision)?;
        merge_managed_fields(&mut doc, &stored)?;
        let finalizing =
            stored.get("metadata").and_then(|m| m.get("deletion_timestamp")).is_some_and(|v| !v.is_null());
        let outcome = if finalizing && document::finalizers(&doc).is_empty() {
            self.memo.forget(key.as_bytes());
            store
                .delete(key.as_bytes().to_vec(), Some(current.mod_revision))
                .await
                .map(|_| current.mod_revision)
        } else {
            let bytes = self.encode(key, &doc)?;
            let written = store
                .compare_and_swap(key.as_bytes().to_vec(), current.mod_revision, bytes.clone(), current.lease)
                .await;
            if let Ok(revision) = written {
                self.memo.remember(KeyValue {
                    value: bytes,
                    mod_revision: revision,
                    version: current.version + 1,
                    ..current.clone()
                });
            }
            written
        };
        match outcome {
            Ok(revision) => {
                informer::note(&self.client, key.as_bytes(), revision);
                document::set_resource_version(&mut doc, revision);
                Ok(doc)
            }
            Err(Error::Conflict { actual, .. }) => {
                Err(Error::Conflict { key: key.to_owned(), expected: current.mod_revision, actual })
            }
            Err(e) => Err(e),
        }
    }

    /// Delete the resource, or mark it for deletion while finalizers remain.
    /// `NotFound` when absent; `Serialization` when its stored document cannot be read (see
    /// [`Repository::remove_allowing_unreadable`]).
    pub async fn remove(&self, name: &str, namespace: Option<&str>) -> Result<Removal> {
        self.removal(name, namespace, false, None).await
    }

    /// [`Repository::remove`], deleting a stored document that cannot be read instead of
    /// refusing (only at the revision read: a concurrent repair is not deleted).
    pub async fn remove_allowing_unreadable(&self, name: &str, namespace: Option<&str>) -> Result<Removal> {
        self.removal(name, namespace, true, None).await
    }

    /// [`Repository::remove`] only while the resource is at `expected` (its resource
    /// version, as Kubernetes' delete preconditions): `Conflict` once it changed, nothing done.
    pub async fn remove_at(&self, name: &str, namespace: Option<&str>, expected: i64) -> Result<Removal> {
        self.removal(name, namespace, false, Some(expected)).await
    }

    async fn removal(
        &self,
        name: &str,
        namespace: Option<&str>,
        delete_unreadable: bool,
        expected: Option<i64>,
    ) -> Result<Removal> {
        let key = self.key(name, namespace)?;
        let store = self.client.store()?;
        for _ in 0..RACE_RETRIES {
            let current = self.current(&key).await?.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if let Some(expected) = expected.filter(|e| *e != current.mod_revision) {
                return Err(Error::Conflict { key, expected, actual: Some(current.mod_revision) });
            }
            let mut doc = match document::read(&key, &current.value, current.mod_revision) {
                Ok(doc) => doc,
                Err(e) => return self.remove_unreadable(&key, &current, e, delete_unreadable).await,
            };
            let outcome = if document::finalizers(&doc).is_empty() {
                store.delete(key.clone().into_bytes(), Some(current.mod_revision)).await.map(|revision| {
                    if let Some(revision) = revision {
                        informer::note(&self.client, key.as_bytes(), revision);
                    }
                    Removal::Deleted
                })
            } else {
                let meta = document::metadata_mut(&mut doc)?;
                if meta.get("deletion_timestamp").is_some_and(|v| !v.is_null()) {
                    return Ok(Removal::Finalizing(doc));
                }
                meta.insert("deletion_timestamp".into(), Value::String(document::now_iso()));
                meta.remove("resource_version");
                let bytes = self.encode(&key, &doc)?;
                store
                    .compare_and_swap(key.clone().into_bytes(), current.mod_revision, bytes, current.lease)
                    .await
                    .map(|rev| {
                        informer::note(&self.client, key.as_bytes(), rev);
                        document::set_resource_version(&mut doc, rev);
                        Removal::Finalizing(doc)
                    })
            };
            match outcome {
                // Changed since read: read again, unless the caller asked for that version.
                Err(Error::Conflict { .. }) if expected.is_none() => continue,
                other => {
                    self.memo.forget(key.as_bytes());
                    return other;
                }
            }
        }
        Err(Error::Conflict { key, expected: 0, actual: None })
    }
}

/// Carry the fields the server owns from the stored object into the written one.
fn merge_managed_fields(doc: &mut Value, stored: &Value) -> Result<()> {
    let stored_meta = stored.get("metadata");
    let spec_changed = doc.get("spec") != stored.get("spec");
    let generation = stored_meta.and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(1);
    let meta = document::metadata_mut(doc)?;
    meta.remove("resource_version");
    for field in ["uid", "creation_timestamp", "deletion_timestamp"] {
        match stored_meta.and_then(|m| m.get(field)) {
            Some(v) if !v.is_null() => {
                meta.insert(field.into(), v.clone());
            }
            _ => {
                if field == "deletion_timestamp" {
                    meta.remove(field);
                }
            }
        }
    }
    meta.insert("generation".into(), Value::from(if spec_changed { generation + 1 } else { generation }));
    Ok(())
}

mod list;
pub mod memo;
#[cfg(test)]
mod tests;
mod unreadable;

pub use list::{Cached, Chunk, Listing, Page};
pub use unreadable::Unreadable;
