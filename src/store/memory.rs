//! The embedded store behind `memory://`: an in-process MVCC map with etcd's semantics.
//!
//! Every write gets the next revision; each key keeps its versions (create/mod revision,
//! version, value or tombstone) so ranges can be served at older revisions; the event history
//! feeds watches that start in the past; `compact` forgets both before a revision, after which
//! older reads and watches fail with `Expired`, as etcd's do. Leases expire on their own (a
//! reaper task on the runtime, and a check before every operation).
//!
//! One `std::sync::Mutex` guards the state; it is never held across an await, and every
//! operation under it is a map lookup or a bounded copy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::fence;
use super::{in_range, prefix_end, EventKind, KeyValue, RangeRequest, RangeResponse, Store};
use super::{ProgressRequester, WatchBatch, WatchEvent, WatchStream};
use crate::error::{Error, Result};

/// How often the lease reaper looks for expired leases.
const REAP_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
struct Version {
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    /// `None` marks a delete (tombstone).
    value: Option<Arc<[u8]>>,
    lease: i64,
}

struct Lease {
    ttl: i64,
    deadline: Instant,
    keys: BTreeSet<Vec<u8>>,
}

struct Watcher {
    start: Vec<u8>,
    end: Vec<u8>,
    tx: mpsc::UnboundedSender<Result<WatchBatch>>,
}

#[derive(Default)]
struct State {
    revision: i64,
    compacted: i64,
    keys: BTreeMap<Vec<u8>, Vec<Version>>,
    /// Events by revision, for watches that start in the past.
    history: BTreeMap<i64, Vec<WatchEvent>>,
    watchers: Vec<Watcher>,
    leases: HashMap<i64, Lease>,
    next_lease: i64,
    reaper_running: bool,
}

/// The embedded MVCC store. Cloning shares the same data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        let store = MemoryStore::default();
        store.lock().revision = 1; // etcd starts at revision 1 too
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every mutation is completed
        // before anything can panic), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state, with expired leases reaped first.
    fn live(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.reap(Instant::now());
        state
    }

    fn spawn_reaper(&self, state: &mut State) {
        if state.reaper_running {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: leases are still reaped before every operation
        };
        state.reaper_running = true;
        let weak: Weak<Mutex<State>> = Arc::downgrade(&self.state);
        handle.spawn(async move {
            loop {
                tokio::time::sleep(REAP_INTERVAL).await;
                let Some(shared) = weak.upgrade() else { return };
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                state.reap(Instant::now());
                if state.leases.is_empty() {
                    state.reaper_running = false;
                    return;
                }
            }
        });
    }
}

impl State {
    fn latest(&self, key: &[u8]) -> Option<&Version> {
        self.keys.get(key).and_then(|v| v.last()).filter(|v| v.value.is_some())
    }

    fn kv(key: &[u8], v: &Version) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: v.value.as_deref().map(<[u8]>::to_vec).unwrap_or_default(),
            create_revision: v.create_revision,
            mod_revision: v.mod_revision,
            version: v.version,
            lease: v.lease,
        }
    }

    /// A fenced write (see `store::fence`) needs its holder's record on its lease.
    fn check_fence(&self, key: &[u8]) -> Result<()> {
        match fence::current() {
            Some(f) if self.latest(&f.key).is_none_or(|v| v.lease != f.lease) => Err(f.refused(key)),
            _ => Ok(()),
        }
    }

    fn check_lease(&self, lease: i64) -> Result<()> {
        if lease != 0 && !self.leases.contains_key(&lease) {
            return Err(Error::NotFound { key: format!("lease {lease:x}") });
        }
        Ok(())
    }

    /// Apply a batch of changes as one revision and tell the watchers.
    fn commit(&mut self, changes: Vec<(Vec<u8>, Option<Vec<u8>>, i64)>) -> i64 {
        self.revision += 1;
        let rev = self.revision;
        let mut events = Vec::with_capacity(changes.len());
        for (key, value, lease) in changes {
            let prev = self.latest(&key).cloned();
            if let Some(p) = &prev {
                if p.lease != 0 {
                    if let Some(l) = self.leases.get_mut(&p.lease) {
                        l.keys.remove(&key);
                    }
                }
            }
            let version = match (&value, &prev) {
                (Some(_), Some(p)) => Version {
                    create_revision: p.create_revision,
                    mod_revision: rev,
                    version: p.version + 1,
                    value: value.map(Arc::from),
                    lease,
                },
                (Some(_), None) => Version {
                    create_revision: rev,
                    mod_revision: rev,
                    version: 1,
                    value: value.map(Arc::from),
                    lease,
                },
                (None, _) => {
                    Version { create_revision: 0, mod_revision: rev, version: 0, value: None, lease: 0 }
                }
            };
            if version.lease != 0 {
                if let Some(l) = self.leases.get_mut(&version.lease) {
                    l.keys.insert(key.clone());
                }
            }
            let kind = if version.value.is_some() { EventKind::Put } else { EventKind::Delete };
            let kv = State::kv(&key, &version);
            let prev = prev.map(|p| State::kv(&key, &p));
            self.keys.entry(key).or_default().push(version);
            events.push(WatchEvent { kind, kv, prev });
        }
        self.watchers.retain(|w| {
            let mine: Vec<_> =
                events.iter().filter(|e| in_range(&e.kv.key, &w.start, &w.end)).cloned().collect();
            mine.is_empty()
                || w.tx.send(Ok(WatchBatch { events: mine, revision: rev, requested: false })).is_ok()
        });
        self.watchers.retain(|w| !w.tx.is_closed());
        self.history.insert(rev, events);
        rev
    }

    fn reap(&mut self, now: Instant) {
        let expired: Vec<i64> =
            self.leases.iter().filter(|(_, l)| l.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            self.revoke(id);
        }
    }

    fn revoke(&mut self, id: i64) -> bool {
        let Some(lease) = self.leases.remove(&id) else {
            return false;
        };
        let live: Vec<_> =
            lease.keys.into_iter().filter(|k| self.latest(k).is_some()).map(|k| (k, None, 0)).collect();
        if !live.is_empty() {
            self.commit(live);
        }
        true
    }

    fn check_revision(&self, revision: i64) -> Result<()> {
        if revision > 0 && revision < self.compacted {
            return Err(Error::Expired { requested: revision, compacted: self.compacted });
        }
        if revision > self.revision {
            return Err(Error::invalid(format!(
                "revision {revision} is in the future (current revision {})",
                self.revision
            )));
        }
        Ok(())
    }
}

/// Progress for a watch on the embedded store: sent under the store's lock, after every
/// event committed so far.
struct MemoryProgress {
    state: Weak<Mutex<State>>,
    tx: mpsc::UnboundedSender<Result<WatchBatch>>,
}

#[async_trait]
impl ProgressRequester for MemoryProgress {
    async fn request_progress(&self) -> Result<()> {
        let Some(state) = self.state.upgrade() else { return Err(Error::Closed) };
        let state = state.lock().unwrap_or_else(|p| p.into_inner());
        // A closed receiver means the watch is gone: nothing to report to.
        let _ =
            self.tx.send(Ok(WatchBatch { events: Vec::new(), revision: state.revision, requested: true }));
        Ok(())
    }
}

/// The version of a key visible at revision `at`, if the key existed then.
fn visible_at<'a>(
    at: i64,
    (key, versions): (&'a Vec<u8>, &'a Vec<Version>),
) -> Option<(&'a Vec<u8>, &'a Version)> {
    let idx = versions.partition_point(|v| v.mod_revision <= at);
    let v = versions[..idx].last()?;
    v.value.as_ref()?;
    Some((key, v))
}

#[async_trait]
impl Store for MemoryStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let state = self.live();
        state.check_revision(req.revision)?;
        let at = if req.revision > 0 { req.revision } else { state.revision };
        let mut resp = RangeResponse { revision: state.revision, ..Default::default() };
        let visible = |entry| visible_at(at, entry);
        let matching: Box<dyn Iterator<Item = (&Vec<u8>, &Version)>> = if req.range_end.is_empty() {
            Box::new(state.keys.get_key_value(&req.key).into_iter().filter_map(visible))
        } else if req.range_end == [0] {
            Box::new(state.keys.range(req.key.clone()..).filter_map(visible))
        } else if req.key < req.range_end {
            Box::new(state.keys.range(req.key.clone()..req.range_end.clone()).filter_map(visible))
        } else {
            Box::new(std::iter::empty())
        };
        for (key, v) in matching {
            resp.count += 1;
            if req.count_only {
                continue;
            }
            let mut kv = State::kv(key, v);
            if kv.mod_revision < req.min_mod_revision {
                continue;
            }
            if req.limit > 0 && resp.kvs.len() as i64 >= req.limit {
                resp.more = true;
                continue;
            }
            if req.keys_only {
                kv.value.clear();
            }
            resp.kvs.push(kv);
        }
        Ok(resp)
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        let mut state = self.live();
        state.check_fence(&key)?;
        state.check_lease(lease)?;
        Ok(state.commit(vec![(key, Some(value), lease)]))
    }

    async fn create(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        let mut state = self.live();
        state.check_fence(&key)?;
        state.check_lease(lease)?;
        if state.latest(&key).is_some() {
            return Err(Error::AlreadyExists { key: String::from_utf8_lossy(&key).into_owned() });
        }
        Ok(state.commit(vec![(key, Some(value), lease)]))
    }

    async fn compare_and_swap(&self, key: Vec<u8>, expected: i64, value: Vec<u8>, lease: i64) -> Result<i64> {
        let mut state = self.live();
        state.check_fence(&key)?;
        state.check_lease(lease)?;
        let actual = state.latest(&key).map(|v| v.mod_revision);
        if actual != Some(expected) {
            return Err(Error::Conflict {
                key: String::from_utf8_lossy(&key).into_owned(),
                expected,
                actual,
            });
        }
        Ok(state.commit(vec![(key, Some(value), lease)]))
    }

    async fn delete(&self, key: Vec<u8>, expected: Option<i64>) -> Result<Option<i64>> {
        let mut state = self.live();
        state.check_fence(&key)?;
        let actual = state.latest(&key).map(|v| v.mod_revision);
        match (expected, actual) {
            (Some(e), a) if a != Some(e) => Err(Error::Conflict {
                key: String::from_utf8_lossy(&key).into_owned(),
                expected: e,
                actual: a,
            }),
            (_, None) => Ok(None),
            (_, Some(_)) => Ok(Some(state.commit(vec![(key, None, 0)]))),
        }
    }

    async fn watch(&self, prefix: Vec<u8>, start_revision: i64) -> Result<WatchStream> {
        let mut state = self.live();
        if start_revision > 0 && start_revision < state.compacted {
            return Err(Error::Expired { requested: start_revision, compacted: state.compacted });
        }
        let end = prefix_end(&prefix);
        let (tx, rx) = mpsc::unbounded_channel();
        if start_revision > 0 {
            for (rev, events) in state.history.range(start_revision..) {
                let mine: Vec<_> =
                    events.iter().filter(|e| in_range(&e.kv.key, &prefix, &end)).cloned().collect();
                if !mine.is_empty() {
                    // The receiver is alive: we hold it.
                    let _ = tx.send(Ok(WatchBatch { events: mine, revision: *rev, requested: false }));
                }
            }
        }
        let progress = Arc::new(MemoryProgress { state: Arc::downgrade(&self.state), tx: tx.clone() });
        state.watchers.push(Watcher { start: prefix, end, tx });
        Ok(WatchStream { batches: UnboundedReceiverStream::new(rx).boxed(), progress })
    }

    async fn lease_grant(&self, ttl: i64) -> Result<i64> {
        if ttl <= 0 {
            return Err(Error::invalid(format!("a lease TTL must be positive, got {ttl}")));
        }
        let mut state = self.live();
        state.next_lease += 1;
        let id = 0x7e57_0000 + state.next_lease;
        let deadline = Instant::now() + Duration::from_secs(ttl as u64);
        state.leases.insert(id, Lease { ttl, deadline, keys: BTreeSet::new() });
        self.spawn_reaper(&mut state);
        Ok(id)
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        let mut state = self.live();
        let lease =
            state.leases.get_mut(&id).ok_or_else(|| Error::NotFound { key: format!("lease {id:x}") })?;
        lease.deadline = Instant::now() + Duration::from_secs(lease.ttl as u64);
        Ok(lease.ttl)
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        let mut state = self.live();
        if state.revoke(id) {
            Ok(())
        } else {
            Err(Error::NotFound { key: format!("lease {id:x}") })
        }
    }

    async fn current_revision(&self, _within: &[u8]) -> Result<i64> {
        // No permissions here: every key may be read.
        Ok(self.live().revision)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let mut state = self.live();
        if revision <= state.compacted {
            return Err(Error::Expired { requested: revision, compacted: state.compacted });
        }
        state.check_revision(revision)?;
        state.compacted = revision;
        state.history = state.history.split_off(&revision);
        state.keys.retain(|_, versions| {
            // Keep the newest version at or before the compact revision, and all after it.
            let idx = versions.partition_point(|v| v.mod_revision <= revision);
            if idx > 1 {
                versions.drain(..idx - 1);
            }
            !(versions.len() == 1 && versions[0].value.is_none())
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
