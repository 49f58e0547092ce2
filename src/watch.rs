//! Watching documents under a prefix: the store's raw events decoded and classified the
//! Kubernetes way, resumed after failures without losing or repeating an event.
//!
//! - Every change is `Added`, `Modified` or `Deleted`; with a [`Query`], a resource that
//!   stops matching arrives as `Deleted` and one that starts matching as `Added`. A progress
//!   notification from etcd arrives as `Bookmark`.
//! - The stream remembers the revision of the last change it delivered. When the connection
//!   breaks (etcd restarted, a leader change, a network cut), it reopens the watch from the
//!   next revision, with exponential backoff and jitter, for as long as the client is open.
//!   Events at or below the last delivered revision are dropped, so none is repeated.
//! - A start revision that etcd has compacted is an `Expired` error: relist, then watch from
//!   the list's revision. It never skips ahead silently.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::client::Client;
use crate::document;
use crate::error::{Error, Result};
use crate::events::{self, Level};
use crate::process::Local;
use crate::selector::Query;
use crate::store::{EventKind, WatchEvent, WatchStream};

/// The first pause before reopening a broken watch; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What a change did, from the watcher's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
    /// Nothing changed; everything up to `revision` has been delivered.
    Bookmark,
}

impl ChangeType {
    pub fn name(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
            ChangeType::Bookmark => "BOOKMARK",
        }
    }
}

/// One change to one document.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeType,
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

impl Change {
    /// What this change, taken from a stream opened without a query, means to a watcher with
    /// `query` (`None`: nothing): the rule a stream opened with that query applies. A stream
    /// without a query says `Added` exactly for a key's first version, so that is recovered.
    pub fn seen_by(&self, query: Option<&Query>) -> Option<ChangeType> {
        let kind = match self.kind {
            ChangeType::Bookmark => return Some(ChangeType::Bookmark),
            ChangeType::Deleted => EventKind::Delete,
            ChangeType::Added | ChangeType::Modified => EventKind::Put,
        };
        transition(
            query,
            kind,
            self.kind == ChangeType::Added,
            self.previous.as_ref(),
            self.value.as_ref(),
            self.error.is_some(),
        )
    }
}

/// The Kubernetes rule: without a query, the store's kind of change; with one, a resource
/// that starts matching is `Added`, one that stops matching (or is deleted while matching)
/// `Deleted`, and changes outside the selection are nothing (`None`).
fn transition(
    query: Option<&Query>,
    kind: EventKind,
    first_version: bool,
    previous: Option<&Value>,
    value: Option<&Value>,
    unreadable: bool,
) -> Option<ChangeType> {
    let Some(query) = query else {
        return Some(match kind {
            EventKind::Delete => ChangeType::Deleted,
            EventKind::Put if first_version => ChangeType::Added,
            EventKind::Put => ChangeType::Modified,
        });
    };
    let before = previous.is_some_and(|d| query.matches(d));
    let now = value.is_some_and(|d| query.matches(d));
    Some(match (kind, before, now) {
        (EventKind::Put, true, true) => ChangeType::Modified,
        (EventKind::Put, false, true) => ChangeType::Added,
        (EventKind::Put, true, false) | (EventKind::Delete, true, _) => ChangeType::Deleted,
        // Unreadable bytes are reported whatever the query.
        (EventKind::Put, false, false) if unreadable => ChangeType::Modified,
        (EventKind::Put, false, false) | (EventKind::Delete, false, _) => return None,
    })
}

/// A resumable stream of batches of changes.
pub struct ChangeStream {
    client: Client,
    prefix: String,
    query: Option<Query>,
    /// The store's stream; a forked child leaves its parent's alone (see `crate::process`).
    inner: Option<Local<WatchStream>>,
    /// The revision of the last change delivered; the watch resumes after it.
    pub last_revision: i64,
    /// How many times in a row reopening failed (for the backoff).
    failures: u32,
    /// How many times the watch was reopened after a failure.
    pub reconnects: u64,
}

impl ChangeStream {
    /// Watch `prefix` from `start_revision` (0: from now on), keeping only changes that
    /// matter to `query` (all, when `None`).
    pub async fn open(
        client: Client,
        prefix: &str,
        start_revision: i64,
        query: Option<Query>,
    ) -> Result<Self> {
        let store = client.store()?;
        // "Now" as a revision, so that a resume after a failure knows where to start.
        // Asked through the watched prefix, which the caller may read (an etcd role may cover
        // nothing else).
        let start = if start_revision > 0 {
            start_revision
        } else {
            store.current_revision(prefix.as_bytes()).await? + 1
        };
        let inner = store.watch(prefix.as_bytes().to_vec(), start).await?;
        Ok(ChangeStream {
            client,
            prefix: prefix.to_owned(),
            query,
            inner: Some(Local::new(inner)),
            last_revision: start - 1,
            failures: 0,
            reconnects: 0,
        })
    }

    fn backoff(&mut self) -> Duration {
        let exp = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(8)).min(MAX_BACKOFF);
        self.failures += 1;
        exp.mul_f64(crate::jitter::jitter())
    }

    /// Errors after which the watch is reopened rather than ended.
    fn resumable(e: &Error) -> bool {
        matches!(e, Error::Unavailable { .. } | Error::Timeout { .. })
    }

    /// The next batch, or `None` once the client is closed (`Forked` at once in a process
    /// forked from the one that opened it).
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Change>>> {
        let shutdown = self.client.shutdown()?.clone();
        loop {
            let Some(inner) = self.inner.as_mut() else {
                let pause = if self.failures == 0 { Duration::ZERO } else { self.backoff() };
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(pause) => {}
                }
                let store = match self.client.store() {
                    Ok(store) => store,
                    Err(Error::Closed) => return Ok(None),
                    Err(e) => return Err(e),
                };
                // etcd restored from an older snapshot cannot be resumed from: see `rewind`.
                let checked =
                    crate::rewind::check(&**store, self.prefix.as_bytes(), self.last_revision).await;
                let opened = match checked {
                    Ok(()) => store.watch(self.prefix.as_bytes().to_vec(), self.last_revision + 1).await,
                    Err(e) => Err(e),
                };
                match opened {
                    Ok(stream) => {
                        self.inner = Some(Local::new(stream));
                        self.reconnects += 1;
                        events::emit(
                            Level::Info,
                            format!(
                                "watch on {:?} resumed after revision {}",
                                self.prefix, self.last_revision
                            ),
                        );
                    }
                    Err(Error::Closed) => return Ok(None),
                    Err(e) if Self::resumable(&e) => {
                        self.failures = self.failures.max(1);
                    }
                    Err(e) => return Err(e),
                }
                continue;
            };
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                next = inner.batches.next() => next,
            };
            let batch = match next {
                Some(Ok(batch)) => batch,
                Some(Err(Error::Closed)) => return Ok(None),
                Some(Err(e)) if Self::resumable(&e) => {
                    events::emit(
                        Level::Warning,
                        format!(
                            "watch on {:?} broke ({e}); resuming after revision {}",
                            self.prefix, self.last_revision
                        ),
                    );
                    self.inner = None;
                    self.failures = self.failures.max(1);
                    continue;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    // The store ended the stream (etcd going away): reopen.
                    self.inner = None;
                    self.failures = self.failures.max(1);
                    continue;
                }
            };
            self.failures = 0;
            if batch.events.is_empty() {
                let holds = || {
                    Self::progress_holds(
                        self.client.clone(),
                        self.prefix.clone(),
                        self.last_revision,
                        batch.revision,
                    )
                };
                if batch.revision > self.last_revision && (!batch.requested || holds().await) {
                    self.last_revision = batch.revision;
                    let bookmark = Change {
                        kind: ChangeType::Bookmark,
                        key: String::new(),
                        value: None,
                        previous: None,
                        revision: batch.revision,
                        error: None,
                    };
                    return Ok(Some(vec![bookmark]));
                }
                continue;
            }
            let mut changes = Vec::with_capacity(batch.events.len());
            // Compared with the revision before this batch: one revision can hold several
            // events (a transaction of several writes, a lease revoked with several keys),
            // and each of them is new.
            let delivered = self.last_revision;
            for event in batch.events {
                let revision = event.kv.mod_revision;
                if revision <= delivered {
                    continue; // already delivered before a reconnect
                }
                if let Some(change) = self.classify(event) {
                    changes.push(change);
                }
                self.last_revision = revision;
            }
            if !changes.is_empty() {
                return Ok(Some(changes));
            }
        }
    }

    /// Whether a requested progress notification at `revision` may be taken: always from a
    /// store that orders them, else only when the prefix did not change after the last change
    /// delivered (see `crate::progress`). One not taken is dropped: the events it ran ahead of
    /// follow, and the next notification is checked again.
    async fn progress_holds(client: Client, prefix: String, last: i64, revision: i64) -> bool {
        let Ok(store) = client.store() else { return false };
        if store.progress_ordered().await
            || crate::progress::unchanged(&**store, prefix.as_bytes(), last, revision).await
        {
            return true;
        }
        events::emit(
            Level::Info,
            format!(
                "watch on {prefix:?}: a progress notification at revision {revision} came ahead of \
                 changes after {last} (etcd#15220); waiting for them"
            ),
        );
        false
    }

    /// Ask etcd for a progress report: a `Bookmark` at its current revision once every change
    /// up to it has been delivered. Does nothing while the watch is reconnecting.
    pub fn progress_requester(&self) -> Option<std::sync::Arc<dyn crate::store::ProgressRequester>> {
        self.inner.as_ref().map(|w| w.progress.clone())
    }

    /// Decode an event and decide what it means to this watch (`None`: nothing).
    fn classify(&self, event: WatchEvent) -> Option<Change> {
        let key = String::from_utf8_lossy(&event.kv.key).into_owned();
        let revision = event.kv.mod_revision;
        let previous = event.prev.as_ref().and_then(|p| document::read(&key, &p.value, p.mod_revision).ok());
        let (value, error) = match event.kind {
            EventKind::Delete => (None, None),
            EventKind::Put => match document::read(&key, &event.kv.value, revision) {
                Ok(doc) => (Some(doc), None),
                Err(e) => (None, Some(e)),
            },
        };
        let kind = transition(
            self.query.as_ref(),
            event.kind,
            event.kv.version == 1,
            previous.as_ref(),
            value.as_ref(),
            error.is_some(),
        )?;
        Some(Change { kind, key, value, previous, revision, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientOptions, MEMORY_ENDPOINT};
    use crate::selector::FieldSelector;

    fn client() -> Client {
        Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap()
    }

    async fn collect(w: &mut ChangeStream, n: usize) -> Vec<Change> {
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(w.next_batch().await.unwrap().unwrap());
        }
        got
    }

    #[tokio::test]
    async fn changes_are_decoded_and_closing_ends_the_stream() {
        let client = client();
        let store = client.store().unwrap().clone();
        let mut w = ChangeStream::open(client.clone(), "/p/", 0, None).await.unwrap();
        store.put(b"/p/a".to_vec(), br#"{"metadata":{"name":"a"}}"#.to_vec(), 0).await.unwrap();
        store.put(b"/p/a".to_vec(), br#"{"metadata":{"name":"a"},"x":1}"#.to_vec(), 0).await.unwrap();
        store.put(b"/p/b".to_vec(), b"{bad".to_vec(), 0).await.unwrap();
        store.delete(b"/p/a".to_vec(), None).await.unwrap();
        let got = collect(&mut w, 4).await;
        let kinds: Vec<_> = got.iter().map(|c| c.kind).collect();
        use ChangeType::*;
        assert_eq!(kinds, vec![Added, Modified, Added, Deleted]);
        assert_eq!(
            got[0].value.as_ref().unwrap()["metadata"]["resource_version"],
            got[0].revision.to_string()
        );
        assert!(matches!(got[2].error, Some(Error::Serialization { .. })));
        assert_eq!(got[3].previous.as_ref().unwrap()["x"], 1);
        assert_eq!(w.last_revision, got[3].revision);
        client.close();
        assert!(w.next_batch().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn every_event_of_one_revision_is_delivered() {
        // A lease revoked with three keys deletes them at one revision: three events.
        let client = client();
        let store = client.store().unwrap().clone();
        let mut w = ChangeStream::open(client.clone(), "/p/", 0, None).await.unwrap();
        let lease = store.lease_grant(30).await.unwrap();
        for name in ["a", "b", "c"] {
            store.create(format!("/p/{name}").into_bytes(), b"{}".to_vec(), lease).await.unwrap();
        }
        store.lease_revoke(lease).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), collect(&mut w, 6))
            .await
            .expect("the revoke's three deletions, each delivered");
        let deleted: Vec<_> = got
            .iter()
            .filter(|c| c.kind == ChangeType::Deleted)
            .map(|c| (c.key.as_str(), c.revision))
            .collect();
        let at = got[5].revision;
        assert_eq!(deleted, vec![("/p/a", at), ("/p/b", at), ("/p/c", at)]);
        client.close();
    }

    #[tokio::test]
    async fn selectors_turn_transitions_into_added_and_deleted() {
        let client = client();
        let store = client.store().unwrap().clone();
        let query =
            Query { fields: FieldSelector::parse("status.phase=Ready").unwrap(), ..Default::default() };
        let mut w = ChangeStream::open(client.clone(), "/p/", 0, Some(query)).await.unwrap();
        let put = |phase: &str| {
            format!(r#"{{"metadata":{{"name":"a"}},"status":{{"phase":"{phase}"}}}}"#).into_bytes()
        };
        store.put(b"/p/a".to_vec(), put("Pending"), 0).await.unwrap(); // not matching: nothing
        store.put(b"/p/a".to_vec(), put("Ready"), 0).await.unwrap(); // starts matching
        store.put(b"/p/a".to_vec(), put("Ready"), 0).await.unwrap(); // still matching
        store.put(b"/p/a".to_vec(), put("Draining"), 0).await.unwrap(); // stops matching
        store.put(b"/p/a".to_vec(), put("Ready"), 0).await.unwrap();
        store.delete(b"/p/a".to_vec(), None).await.unwrap();
        let kinds: Vec<_> = collect(&mut w, 5).await.iter().map(|c| c.kind).collect();
        use ChangeType::*;
        assert_eq!(kinds, vec![Added, Modified, Deleted, Added, Deleted]);
    }
}
