//! Watching documents under a prefix: the store's raw events decoded into changes, ending
//! cleanly when the client closes.

use futures::StreamExt;
use serde_json::Value;

use crate::client::Client;
use crate::document;
use crate::error::{Error, Result};
use crate::store::{EventKind, WatchStream};

/// One change to one document.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: EventKind,
    pub key: String,
    /// The document after the change (`None` for a delete, or when it could not be decoded).
    pub value: Option<Value>,
    /// The document before the change, where etcd gives it.
    pub previous: Option<Value>,
    /// The revision of the change.
    pub revision: i64,
    /// Why `value` is missing for a put whose bytes could not be decoded.
    pub error: Option<Error>,
}

/// A stream of batches of changes.
pub struct ChangeStream {
    client: Client,
    inner: WatchStream,
    /// The revision of the last change delivered (for resuming).
    pub last_revision: i64,
}

impl ChangeStream {
    /// Watch `prefix` from `start_revision` (0: from now on).
    pub async fn open(client: Client, prefix: &str, start_revision: i64) -> Result<Self> {
        let inner = client.store()?.watch(prefix.as_bytes().to_vec(), start_revision).await?;
        Ok(ChangeStream { client, inner, last_revision: start_revision.saturating_sub(1) })
    }

    /// The next batch, or `None` once the client is closed.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Change>>> {
        let shutdown = self.client.shutdown().clone();
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            batch = self.inner.next() => batch,
        };
        let Some(events) = batch.transpose()? else {
            return Ok(None);
        };
        let mut changes = Vec::with_capacity(events.len());
        for e in events {
            let key = String::from_utf8_lossy(&e.kv.key).into_owned();
            let revision = e.kv.mod_revision;
            let previous = e.prev.and_then(|p| document::read(&key, &p.value, p.mod_revision).ok());
            let (value, error) = match e.kind {
                EventKind::Delete => (None, None),
                EventKind::Put => match document::read(&key, &e.kv.value, revision) {
                    Ok(doc) => (Some(doc), None),
                    Err(err) => (None, Some(err)),
                },
            };
            self.last_revision = revision;
            changes.push(Change { kind: e.kind, key, value, previous, revision, error });
        }
        Ok(Some(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientOptions, MEMORY_ENDPOINT};

    #[tokio::test]
    async fn changes_are_decoded_and_closing_ends_the_stream() {
        let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
        let store = client.store().unwrap().clone();
        let mut w = ChangeStream::open(client.clone(), "/p/", 0).await.unwrap();
        store.put(b"/p/a".to_vec(), br#"{"metadata":{"name":"a"}}"#.to_vec(), 0).await.unwrap();
        store.put(b"/p/b".to_vec(), b"{bad".to_vec(), 0).await.unwrap();
        store.delete(b"/p/a".to_vec(), None).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            got.extend(w.next_batch().await.unwrap().unwrap());
        }
        assert_eq!(
            got[0].value.as_ref().unwrap()["metadata"]["resource_version"],
            got[0].revision.to_string()
        );
        assert!(matches!(got[1].error, Some(Error::Serialization { .. })));
        assert_eq!(got[2].kind, EventKind::Delete);
        assert_eq!(got[2].previous.as_ref().unwrap()["metadata"]["name"], "a");
        assert_eq!(w.last_revision, got[2].revision);
        client.close();
        assert!(w.next_batch().await.unwrap().is_none());
    }
}
