//! The seam between the engine and the data: what the repository needs from a key-value store
//! with etcd's semantics. [`etcd::EtcdStore`] talks to a server; [`memory::MemoryStore`] is the
//! embedded MVCC map used by `memory://`, the demo and unit tests. The same conformance tests run
//! against both.

pub mod etcd;
pub mod fence;
pub mod known;
pub mod maintenance;
pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::Result;

/// One key as etcd reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the create that made this key (0 when absent).
    pub create_revision: i64,
    /// Revision of the last write of this key: the resource_version.
    pub mod_revision: i64,
    /// Number of writes since the create.
    pub version: i64,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// A range read. `range_end` empty means the single key `key`.
#[derive(Debug, Clone, Default)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// Maximum keys returned, 0 for no limit.
    pub limit: i64,
    /// Revision to read at, 0 for the newest.
    pub revision: i64,
    pub keys_only: bool,
    pub count_only: bool,
    /// Leave out keys last written before this revision (0: none), as etcd's
    /// `min_mod_revision`: the keys are filtered, `count` is not.
    pub min_mod_revision: i64,
}

impl RangeRequest {
    /// Every key starting with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        RangeRequest { key: prefix.to_vec(), range_end: prefix_end(prefix), ..Default::default() }
    }

    /// The single key `key`.
    pub fn key(key: &[u8]) -> Self {
        RangeRequest { key: key.to_vec(), ..Default::default() }
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Debug, Clone, Default)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// How many keys are in the range (regardless of `limit`).
    pub count: i64,
    /// Whether keys beyond `limit` remain.
    pub more: bool,
    /// The store's revision the read was served at.
    pub revision: i64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as a watch delivers it. For a delete, `kv` holds the key and the deleting
/// revision as `mod_revision`, with an empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev: Option<KeyValue>,
}

/// Events in revision order as the store delivers them. `revision` is the store's revision
/// when the batch was sent: every change up to it has been delivered (a batch with no events
/// is a progress notification), unless `requested` says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchBatch {
    pub events: Vec<WatchEvent>,
    pub revision: i64,
    /// A progress notification that answers [`ProgressRequester::request_progress`] (etcd
    /// sends those with watch id -1). An etcd that does not order them with the events
    /// ([`Store::progress_ordered`] false) may send one ahead of events up to its revision.
    pub requested: bool,
}

/// Asks a watch to report its progress: a batch with no events at the store's current
/// revision, once every event up to it has been sent.
#[async_trait]
pub trait ProgressRequester: Send + Sync {
    async fn request_progress(&self) -> Result<()>;
}

/// An open watch: the batches (an `Err` ends them) and a way to ask for progress.
pub struct WatchStream {
    pub batches: BoxStream<'static, Result<WatchBatch>>,
    pub progress: Arc<dyn ProgressRequester>,
}

/// A key-value store with etcd's semantics: revisions, transactions, watch, leases.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read a key or a range, possibly at an older revision.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Write unconditionally; returns the new revision.
    async fn put(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64>;

    /// Write only when the key is absent (`create_revision == 0`), atomically. Fails with
    /// `AlreadyExists`. Returns the new revision.
    async fn create(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64>;

    /// Write only when the key's mod_revision is `expected`, atomically. Fails with `Conflict`
    /// carrying the actual revision. Returns the new revision.
    async fn compare_and_swap(&self, key: Vec<u8>, expected: i64, value: Vec<u8>, lease: i64) -> Result<i64>;

    /// Delete a key, only when its mod_revision is `expected` if one is given (else `Conflict`).
    /// Returns the deleting revision, or `None` when the key was absent.
    async fn delete(&self, key: Vec<u8>, expected: Option<i64>) -> Result<Option<i64>>;

    /// Watch every key under `prefix` from `start_revision` (0: from now on), with previous
    /// values. A start revision that was compacted fails with `Expired`.
    async fn watch(&self, prefix: Vec<u8>, start_revision: i64) -> Result<WatchStream>;

    /// Grant a lease of `ttl` seconds; returns its id.
    async fn lease_grant(&self, ttl: i64) -> Result<i64>;

    /// Renew a lease once; returns the TTL left, `NotFound` when it has expired.
    async fn lease_keep_alive(&self, id: i64) -> Result<i64>;

    /// Revoke a lease, deleting its keys.
    async fn lease_revoke(&self, id: i64) -> Result<()>;

    /// The store's current revision (of the whole keyspace, whatever key it is asked through),
    /// learnt from a request on the one key `within`: pass the prefix the caller works under,
    /// so a user whose etcd role covers only that prefix may ask. An empty `within` means the
    /// key `"\0"`, outside every prefix (a user limited to prefixes may not read it).
    async fn current_revision(&self, within: &[u8]) -> Result<i64>;

    /// Forget history before `revision`.
    async fn compact(&self, revision: i64) -> Result<()>;

    /// Whether a requested progress notification always comes after the events up to its
    /// revision. etcd before 3.4.31 and 3.5.13 may answer a progress request ahead of the
    /// events of a watch that is still catching up (etcd#15220; Kubernetes requires those
    /// versions to trust it); see `crate::progress`. `false` when it cannot tell.
    async fn progress_ordered(&self) -> bool {
        true
    }

    /// Per-operation statistics of calls to a server (`None` for the embedded store).
    fn metrics(&self) -> Option<crate::metrics::Metrics> {
        None
    }

    /// Each endpoint's health and counters (empty for the embedded store).
    fn endpoints(&self) -> Vec<EndpointSnapshot> {
        Vec::new()
    }

    /// What each member says of itself (etcd's maintenance status and alarms), for the people
    /// on call; empty for the embedded store.
    async fn members(&self) -> Result<Vec<maintenance::MemberStatus>> {
        Ok(Vec::new())
    }
}

/// What one endpoint of a server has done so far (what a store reports of each endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSnapshot {
    pub endpoint: String,
    pub healthy: bool,
    /// Requests on it now.
    pub in_flight: u64,
    /// Attempts of requests sent to it (probes not counted).
    pub requests: u64,
    /// Attempts that got no answer or whose connection failed.
    pub failures: u64,
    /// Times it was ejected.
    pub ejections: u64,
    /// Probes sent to it while it was ejected.
    pub probes: u64,
    /// Watch streams open on it.
    pub watches: u64,
}

/// A shared store.
pub type SharedStore = Arc<dyn Store>;

/// The end of the range of keys that start with `prefix` (etcd's `WithPrefix`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An empty prefix, or all 0xff: everything from the key on.
    vec![0]
}

/// Whether `key` lies in `[start, end)`, with etcd's conventions: an empty end means the single
/// key `start`, an end of `[0]` means "to the end of the keyspace".
pub fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        return key == start;
    }
    key >= start && (end == [0] || key < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn ranges_follow_etcd_conventions() {
        assert!(in_range(b"/a/x", b"/a/", &prefix_end(b"/a/")));
        assert!(!in_range(b"/b", b"/a/", &prefix_end(b"/a/")));
        assert!(in_range(b"k", b"k", b""));
        assert!(!in_range(b"k2", b"k", b""));
        assert!(in_range(b"zzz", b"", &[0]));
    }
}
