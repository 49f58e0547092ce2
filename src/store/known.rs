//! [`Known`]: a store that remembers the newest revision its answers showed, so that a watch
//! asked for "from now on" can start where its caller's knowledge ends: every change made
//! after the call then has a newer revision and is delivered, however late the watch opens.
//!
//! A store that has answered nothing yet knows no revision. Then a watch holds this store's
//! writes back ([`Known::hold`]) until it is open, so that none of the caller's writes made
//! after the call lands before the watch's start.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;

use super::{RangeRequest, RangeResponse, SharedStore, Store, WatchStream};
use crate::error::Result;

/// A [`Store`] that records the newest revision of every answer it passes on.
pub struct Known {
    store: SharedStore,
    revision: Arc<AtomicI64>,
    /// How many watches opening with no known revision hold the writes back.
    holding: watch::Sender<usize>,
}

/// Held by an opening watch; dropping it lets the writes go.
pub struct Hold {
    holding: watch::Sender<usize>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.holding.send_modify(|n| *n -= 1);
    }
}

impl Known {
    pub fn new(store: SharedStore) -> Self {
        Known { store, revision: Arc::new(AtomicI64::new(0)), holding: watch::Sender::new(0) }
    }

    /// The newest revision an answer of this store showed (0: none yet).
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Where a watch asked for "from now on" starts: after the known revision; with none known,
    /// etcd's revision when the watch opens (0), the writes held back until the `Hold` drops.
    pub fn watch_start(&self) -> (i64, Option<Hold>) {
        match self.revision() {
            0 => {
                self.holding.send_modify(|n| *n += 1);
                (0, Some(Hold { holding: self.holding.clone() }))
            }
            known => (known + 1, None),
        }
    }

    fn note(&self, revision: i64) -> i64 {
        self.revision.fetch_max(revision, Ordering::AcqRel);
        revision
    }

    /// Before a write: wait while a watch opening with no known revision holds writes back.
    async fn wait_for_watches(&self) {
        if self.revision() == 0 && *self.holding.borrow() > 0 {
            let mut holding = self.holding.subscribe();
            // The sender lives as long as `self`: an error cannot happen while we wait.
            let _ = holding.wait_for(|n| *n == 0).await;
        }
    }
}

#[async_trait]
impl Store for Known {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let resp = self.store.range(req).await?;
        self.note(resp.revision);
        Ok(resp)
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        self.wait_for_watches().await;
        Ok(self.note(self.store.put(key, value, lease).await?))
    }

    async fn create(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        self.wait_for_watches().await;
        Ok(self.note(self.store.create(key, value, lease).await?))
    }

    async fn compare_and_swap(&self, key: Vec<u8>, expected: i64, value: Vec<u8>, lease: i64) -> Result<i64> {
        self.wait_for_watches().await;
        Ok(self.note(self.store.compare_and_swap(key, expected, value, lease).await?))
    }

    async fn delete(&self, key: Vec<u8>, expected: Option<i64>) -> Result<Option<i64>> {
        self.wait_for_watches().await;
        let deleted = self.store.delete(key, expected).await?;
        Ok(deleted.map(|revision| self.note(revision)))
    }

    async fn watch(&self, prefix: Vec<u8>, start_revision: i64) -> Result<WatchStream> {
        let WatchStream { batches, progress } = self.store.watch(prefix, start_revision).await?;
        let revision = self.revision.clone();
        let batches = batches
            .inspect(move |batch| {
                if let Ok(batch) = batch {
                    revision.fetch_max(batch.revision, Ordering::AcqRel);
                }
            })
            .boxed();
        Ok(WatchStream { batches, progress })
    }

    async fn lease_grant(&self, ttl: i64) -> Result<i64> {
        self.store.lease_grant(ttl).await
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.store.lease_keep_alive(id).await
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        self.wait_for_watches().await;
        self.store.lease_revoke(id).await
    }

    async fn current_revision(&self, within: &[u8]) -> Result<i64> {
        Ok(self.note(self.store.current_revision(within).await?))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.store.compact(revision).await
    }

    async fn progress_ordered(&self) -> bool {
        self.store.progress_ordered().await
    }

    fn metrics(&self) -> Option<crate::metrics::Metrics> {
        self.store.metrics()
    }

    fn endpoints(&self) -> Vec<super::EndpointSnapshot> {
        self.store.endpoints()
    }

    async fn members(&self) -> Result<Vec<super::maintenance::MemberStatus>> {
        self.store.members().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn answers_teach_the_revision_and_a_watch_starts_after_it() {
        let known = Known::new(Arc::new(MemoryStore::new()));
        assert_eq!(known.revision(), 0);
        let r1 = known.put(b"/a/x".to_vec(), b"{}".to_vec(), 0).await.unwrap();
        assert_eq!(known.revision(), r1);
        let (start, hold) = known.watch_start();
        assert_eq!((start, hold.is_none()), (r1 + 1, true));
    }

    #[tokio::test]
    async fn with_no_revision_known_writes_wait_for_the_opening_watch() {
        let known = Arc::new(Known::new(Arc::new(MemoryStore::new())));
        let (start, hold) = known.watch_start();
        assert_eq!(start, 0);
        let writer = {
            let known = known.clone();
            tokio::spawn(async move { known.put(b"/a/x".to_vec(), b"{}".to_vec(), 0).await })
        };
        tokio::task::yield_now().await;
        assert!(!writer.is_finished(), "the write went ahead of the opening watch");
        drop(hold);
        assert_eq!(writer.await.unwrap().unwrap(), known.revision());
    }
}
