//! A progress notification that may run ahead of the events. A watch's progress notification
//! says "every change up to revision P has been sent", and a cache that takes one skips any
//! event at or below P that arrives after it. etcd before 3.4.31 and 3.5.13 answers a
//! *requested* progress notification at once, even for a watch that is still catching up
//! (one opened from a past revision, or one that fell behind): its events up to P come after
//! the notification (etcd#15220). Taken as is, those changes were lost to the informer cache
//! for good: writes made while a cache listed were missing from it after its first
//! linearizable read (`tests/test_cache.py`).
//!
//! Where the store does not order them ([`Store::progress_ordered`]), a requested notification
//! is taken only when the prefix provably did not change since the last change delivered
//! ([`unchanged`]); otherwise it is dropped, the events come, and the next request succeeds.

use crate::store::{RangeRequest, Store};

/// Whether no key under `prefix` changed in the revisions `(after, at]`: no key at `at` was
/// written after `after` (a put or a re-create would have) and the prefix holds as many keys
/// at `at` as at `after` (so none was deleted). Together they say the keys at `at` are exactly
/// those at `after`. Two reads, at fixed revisions, sent together; etcd filters the first by
/// reading the prefix's keys. `false` when either read fails (`after` compacted, say): a
/// notification that cannot be checked is not taken.
pub async fn unchanged(store: &dyn Store, prefix: &[u8], after: i64, at: i64) -> bool {
    if at <= after {
        return true;
    }
    let written = RangeRequest {
        revision: at,
        min_mod_revision: after + 1,
        keys_only: true,
        limit: 1,
        ..RangeRequest::prefix(prefix)
    };
    let before = RangeRequest { revision: after, count_only: true, ..RangeRequest::prefix(prefix) };
    let counted_before = async {
        // Revision 0 would read the newest: before the first revision there were no keys.
        if after < 1 {
            return Ok(0);
        }
        store.range(before).await.map(|r| r.count)
    };
    match futures::join!(store.range(written), counted_before) {
        (Ok(now), Ok(before)) => now.kvs.is_empty() && now.count == before,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    async fn put(store: &MemoryStore, key: &str) -> i64 {
        store.put(key.as_bytes().to_vec(), b"v".to_vec(), 0).await.unwrap()
    }

    #[tokio::test]
    async fn a_put_a_delete_or_a_re_create_under_the_prefix_is_a_change() {
        let store = MemoryStore::new();
        put(&store, "/p/a").await;
        let start = put(&store, "/p/b").await;
        // Elsewhere only: unchanged.
        let elsewhere = put(&store, "/q/a").await;
        assert!(unchanged(&store, b"/p/", start, elsewhere).await);
        // A put under the prefix.
        let written = put(&store, "/p/c").await;
        assert!(!unchanged(&store, b"/p/", start, written).await);
        assert!(unchanged(&store, b"/p/", written, written).await);
        // A delete (no key left with a newer revision: the count says it).
        let deleted = store.delete(b"/p/c".to_vec(), None).await.unwrap().unwrap();
        assert!(!unchanged(&store, b"/p/", written, deleted).await);
        // A delete and a create that leave as many keys.
        store.delete(b"/p/a".to_vec(), None).await.unwrap();
        let recreated = put(&store, "/p/a").await;
        assert!(!unchanged(&store, b"/p/", deleted, recreated).await);
        // From the first revision: no keys before it.
        assert!(!unchanged(&store, b"/p/", 0, start).await);
        assert!(unchanged(&store, b"/none/", 0, start).await);
    }

    #[tokio::test]
    async fn a_revision_that_cannot_be_read_is_not_unchanged() {
        let store = MemoryStore::new();
        let first = put(&store, "/p/a").await;
        let now = put(&store, "/q/a").await;
        store.compact(now).await.unwrap();
        assert!(!unchanged(&store, b"/p/", first, now).await);
    }
}
