//! etcd going back in time under a watch: restored from a snapshot taken before the revisions
//! the watch has seen (`etcdutl snapshot restore` without `--bump-revision`). The restored etcd
//! would accept a watch from the next revision the watcher expects and stay silent until its
//! own revisions caught up: every change made meanwhile, and every key the restore took back,
//! would be a silent gap. So before a watch resumes, etcd's current revision (a linearizable
//! read, never behind what any client saw) is compared with the last one the watch saw: below
//! it, the watch cannot resume, and says so with `Expired`, as for a compacted revision (the
//! caller relists). A restore with `--bump-revision --mark-compacted` (Kubernetes' guidance)
//! needs no such check: etcd itself refuses the resume as compacted.

use crate::error::{Error, Result};
use crate::events::{self, Level};
use crate::store::Store;

/// `Ok` when etcd's current revision (asked under `prefix`) is not below `seen`; `Expired`
/// when etcd went back in time.
pub async fn check(store: &dyn Store, prefix: &[u8], seen: i64) -> Result<()> {
    let now = store.current_revision(prefix).await?;
    if now >= seen {
        return Ok(());
    }
    events::emit(
        Level::Warning,
        format!(
            "etcd's revision went back from {seen} to {now} under the watch on {:?} (restored from \
             a snapshot?): the watch cannot resume; list again",
            String::from_utf8_lossy(prefix)
        ),
    );
    Err(Error::Expired { requested: seen + 1, compacted: now })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_revision_below_the_one_seen_cannot_be_resumed() {
        let store = MemoryStore::new();
        let now = store.put(b"/p/a".to_vec(), b"v".to_vec(), 0).await.unwrap();
        assert_eq!(check(&store, b"/p/", now).await, Ok(()));
        assert_eq!(check(&store, b"/p/", now - 1).await, Ok(()));
        let rewound = check(&store, b"/p/", now + 5).await;
        assert_eq!(rewound, Err(Error::Expired { requested: now + 6, compacted: now }));
    }
}
