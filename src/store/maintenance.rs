//! What a store says of itself, for the people on call (`etcd-resources status`): each
//! member's maintenance status (version, leader, database size and quota, revision) and
//! alarms (asked by the etcd store, `etcd::members`), and the revision etcd compacted to.

use super::{RangeRequest, Store};
use crate::error::{Error, Result};

/// One member as it answers the maintenance calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberStatus {
    /// The endpoint as configured.
    pub endpoint: String,
    /// Why the member could not be asked (then the other fields are empty).
    pub error: Option<String>,
    pub version: String,
    pub member_id: u64,
    pub cluster_id: u64,
    /// The member it follows (its own id when it leads; 0 when it knows no leader).
    pub leader: u64,
    pub raft_term: u64,
    /// The store's revision as this member has applied it.
    pub revision: i64,
    /// The database file's size, and the part of it in use (the rest is freed by defragmenting).
    pub db_size: i64,
    pub db_size_in_use: i64,
    /// `--quota-backend-bytes` (0 when the member does not say: etcd before 3.6).
    pub db_size_quota: i64,
    /// The member's errors, as etcd lists them (an active alarm among them).
    pub errors: Vec<String>,
    /// The cluster's alarms: `(member id, "NOSPACE" | "CORRUPT")`.
    pub alarms: Vec<(u64, String)>,
}

/// The revision etcd compacted to (0 when it never compacted). etcd's status does not say,
/// and a watch from an old revision first answers "created" and only later "compacted"; a
/// read at a revision is refused exactly when the revision is below the compacted one, so a
/// binary search of count-only reads of the key `probe` (under the caller's prefix, so its
/// role may read it) finds it in about log2(revision) requests.
pub async fn compacted_revision(store: &dyn Store, probe: &[u8]) -> Result<i64> {
    let at = |revision: i64| {
        let req = RangeRequest { revision, count_only: true, ..RangeRequest::key(probe) };
        async move {
            match store.range(req).await {
                Ok(_) => Ok(true),
                Err(Error::Expired { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        }
    };
    // The smallest readable revision in (low, high]; `high` (the current one) always is.
    let (mut low, mut high) = (0, store.current_revision(probe).await?);
    if high <= 1 || at(1).await? {
        return Ok(0);
    }
    low = low.max(1);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if at(mid).await? {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn the_compacted_revision_is_found_by_reads_at_revisions() {
        let store = MemoryStore::new();
        assert_eq!(compacted_revision(&store, b"/p/\0").await.unwrap(), 0);
        let mut last = 0;
        for i in 0..37 {
            last = store.put(format!("/p/k{i}").into_bytes(), b"v".to_vec(), 0).await.unwrap();
        }
        assert_eq!(compacted_revision(&store, b"/p/\0").await.unwrap(), 0, "never compacted");
        for at in [2, 23, last] {
            store.compact(at).await.unwrap();
            assert_eq!(compacted_revision(&store, b"/p/\0").await.unwrap(), at);
        }
    }
}
