//! The informer cache: every document under a prefix held in memory, kept current by a
//! watch, with indexes, so that queries cost microseconds instead of a read of every document.
//!
//! - One informer per (client, prefix, indexed fields), shared by every repository that asks
//!   for it (the scoped repositories of many requests share one); it stops when the last
//!   handle is dropped or the client closes.
//! - It lists the prefix at one revision, then watches from the next one (a [`ChangeStream`],
//!   which resumes after failures); if etcd compacted past it, it lists again.
//! - Every label is indexed, and the configured field paths (`status.phase`): by value for
//!   equality and set requirements, and, where the value is a number, in numeric order for `>`
//!   and `<` (`status.active_lab_count<20` walks the counts below 20, not every document).
//!   An indexed requirement narrows the candidates before the full query runs; a query made
//!   only of indexed requirements needs no other test.
//! - Reads see this client's own work by default ([`Consistency::Session`]): the repositories
//!   tell the informers of their client the revision of every write and read under their
//!   prefix ([`note`]), and a read waits until the cache has applied it (the watch brings that
//!   change soon after; usually it is in already, and the read costs no round trip).
//!   [`Consistency::Linearizable`] ([`Informer::wait_fresh`]) learns etcd's current revision
//!   and waits until the cache has applied it (asking the watch for a progress report, since
//!   the last write may have been under another prefix): it also sees every other client's
//!   writes acknowledged before the read began, for one round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::listing::{self, AHEAD};
use crate::process::{self, Local};
use crate::selector::Query;
use crate::store::{prefix_end, KeyValue, ProgressRequester};
use crate::watch::{ChangeStream, ChangeType};

/// How fresh a read from the cache must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Whatever the cache holds now.
    Stale,
    /// At least every change this client wrote or read under the prefix (read-your-writes,
    /// monotonic reads); no round trip.
    Session,
    /// At least etcd's current revision when the read began (one round trip).
    Linearizable,
}

impl Consistency {
    /// From a caller's flag: `Some(true)` linearizable, `Some(false)` stale, `None` for the
    /// default (session).
    pub fn from_flag(consistent: Option<bool>) -> Self {
        match consistent {
            Some(true) => Consistency::Linearizable,
            Some(false) => Consistency::Stale,
            None => Consistency::Session,
        }
    }
}

/// How long a consistent read waits for one progress report before asking again.
const PROGRESS_RETRY: Duration = Duration::from_millis(100);

mod state;
#[cfg(test)]
mod tests;

pub use state::Entry;
use state::State;

struct Shared {
    client: Client,
    prefix: String,
    paths: Vec<String>,
    state: RwLock<State>,
    /// The revision the cache reflects (0 until the first list is in).
    applied: watch::Sender<i64>,
    /// The newest revision this client wrote or read under the prefix (see [`note`]).
    seen: AtomicI64,
    /// Why the cache stopped, if it did.
    failure: Mutex<Option<Error>>,
    progress: Mutex<Option<Arc<dyn ProgressRequester>>>,
    stop: CancellationToken,
}

impl Shared {
    /// Stop with `e`: every read from now on fails with it (waiting ones are woken).
    fn fail(&self, e: Error) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        self.applied.send_modify(|_| {});
    }

    fn has_failed(&self) -> bool {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A handle on a shared informer cache. It belongs to the process that started it: in a
/// forked child its reads fail with `Forked` and it is never torn down there (its watch and
/// task are the parent's; see `crate::process`).
#[derive(Clone)]
pub struct Informer {
    shared: Arc<Local<Shared>>,
}

/// Informers alive, by (client, prefix, paths).
type Registry = Mutex<HashMap<(usize, String, Vec<String>), Weak<Local<Shared>>>>;
static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::default);

/// The lock this module's tasks take, for the bindings to hold across forks (see `crate::process`).
pub fn fork_lock() -> &'static dyn process::ForkLock {
    &*REGISTRY
}

impl Informer {
    /// The informer of `prefix` (normalised to end in `/`) on `client` with `paths` indexed:
    /// the running one, or a new one (which starts listing and watching on the current tokio
    /// runtime).
    pub fn shared(client: &Client, prefix: &str, paths: &[String]) -> Result<Informer> {
        let prefix = crate::names::normalize_prefix(prefix)?;
        let prefix = prefix.as_str();
        let mut paths = paths.to_vec();
        paths.sort();
        paths.dedup();
        client.check()?;
        let key = (client.id(), prefix.to_owned(), paths.clone());
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|_, weak| weak.strong_count() > 0);
        if let Some(shared) = registry.get(&key).and_then(Weak::upgrade) {
            return Ok(Informer { shared });
        }
        client.store()?; // a closed client starts nothing
        let shared = Arc::new(Local::new(Shared {
            client: client.clone(),
            prefix: prefix.to_owned(),
            paths,
            state: RwLock::new(State::default()),
            applied: watch::channel(0).0,
            seen: AtomicI64::new(0),
            failure: Mutex::new(None),
            progress: Mutex::new(None),
            stop: CancellationToken::new(),
        }));
        registry.insert(key, Arc::downgrade(&shared));
        tokio::spawn(run(Arc::downgrade(&shared), shared.stop.clone()));
        Ok(Informer { shared })
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> i64 {
        *self.shared.applied.borrow()
    }

    /// How many documents are cached.
    pub fn len(&self) -> usize {
        self.read().docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self) -> Result<()> {
        match self.shared.failure.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Wait until the cache is as fresh as `consistency` asks, up to the client's request
    /// timeout. A cache still loading is waited for whatever is asked: its first listing
    /// first (as long as it takes: each of its requests has the request timeout, and a failed
    /// one fails the cache), then etcd's current revision.
    pub async fn wait(&self, consistency: Consistency) -> Result<()> {
        self.shared.check()?;
        if self.revision() == 0 {
            let mut applied = self.shared.applied.subscribe();
            let _ = applied.wait_for(|r| *r > 0 || self.shared.has_failed()).await;
            self.failed()?;
            return self.wait_fresh().await;
        }
        match consistency {
            Consistency::Stale => self.failed(),
            Consistency::Session => self.wait_applied(self.shared.seen.load(Ordering::Acquire)).await,
            Consistency::Linearizable => self.wait_fresh().await,
        }
    }

    /// Wait until the cache has applied `target`, a revision of a change under the prefix
    /// (so the watch brings it without being asked), up to the client's request timeout.
    pub async fn wait_applied(&self, target: i64) -> Result<()> {
        self.failed()?;
        let mut applied = self.shared.applied.subscribe();
        if *applied.borrow_and_update() >= target {
            return Ok(());
        }
        let timeout = self.shared.client.options().etcd.timeout;
        let reached = tokio::time::timeout(timeout, applied.wait_for(|r| *r >= target)).await.is_ok();
        if !reached {
            return Err(Error::Timeout {
                operation: "read of the cache after this client's writes".into(),
                seconds: timeout.as_secs_f64(),
            });
        }
        self.failed()
    }

    /// Wait until the cache has applied etcd's current revision (a linearizable read), up to
    /// the client's request timeout.
    pub async fn wait_fresh(&self) -> Result<()> {
        self.shared.check()?;
        let shared = &self.shared;
        let mut applied = shared.applied.subscribe();
        // Read before etcd's revision is asked: what the cache applied by then cannot be newer
        // than etcd's answer (a linearizable read), unless etcd went back in time. Read after,
        // a change applied while the answer travelled looked like that, and the read waited
        // for a relist that never came, until its timeout (seen under a steady write load).
        let before = *applied.borrow_and_update();
        // Asked through the prefix: a user whose role covers only it may ask.
        let target = shared.client.store()?.current_revision(shared.prefix.as_bytes()).await?;
        let timeout = shared.client.options().etcd.timeout;
        let deadline = Instant::now() + timeout;
        // etcd went back in time under the cache (restored from a snapshot, `crate::rewind`):
        // what it applied is newer than etcd, so wait for the relist, which applies less.
        let rewound_from = Some(before).filter(|a| *a > target);
        let fresh = |r: &i64| *r >= target && rewound_from.is_none_or(|before| *r < before);
        loop {
            self.failed()?;
            if fresh(&applied.borrow_and_update()) {
                return Ok(());
            }
            let requester = shared.progress.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(requester) = requester {
                // A failed request is retried below; the watch may be reconnecting.
                let _ = requester.request_progress().await;
            }
            let wait = PROGRESS_RETRY.min(deadline.saturating_duration_since(Instant::now()));
            let _ = tokio::time::timeout(wait, applied.wait_for(fresh)).await;
            if Instant::now() >= deadline && !fresh(&applied.borrow()) {
                return Err(Error::Timeout {
                    operation: "consistent read from the cache".into(),
                    seconds: timeout.as_secs_f64(),
                });
            }
        }
    }

    /// The cached document at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.read().docs.get(key).cloned()
    }

    /// The cached documents matching `query`, in key order (shared with the cache: an
    /// [`Entry`] never changes; a change to the resource replaces it).
    pub fn list(&self, query: &Query) -> Vec<Arc<Entry>> {
        self.read().list(query, &self.shared.paths)
    }

    /// How many cached documents match `query`; one indexed equality or comparison alone is
    /// a lookup per value it allows.
    pub fn count(&self, query: &Query) -> usize {
        self.read().count(query, &self.shared.paths)
    }
}

/// Tell the informers of `client` whose prefix holds `key` that this client wrote or read
/// it at `revision`, so their session reads wait for it.
pub fn note(client: &Client, key: &[u8], revision: i64) {
    let registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    for ((id, prefix, _), weak) in registry.iter() {
        if *id == client.id() && key.starts_with(prefix.as_bytes()) {
            if let Some(shared) = weak.upgrade() {
                shared.seen.fetch_max(revision, Ordering::AcqRel);
            }
        }
    }
}

/// [`follow`], then, if it ended without a failure (the client closed), fail later reads
/// with `Closed`, waking those waiting.
async fn run(weak: Weak<Local<Shared>>, stop: CancellationToken) {
    follow(&weak, stop).await;
    if let Some(shared) = weak.upgrade() {
        if !shared.has_failed() {
            shared.fail(Error::Closed);
        }
    }
}

/// List, then watch, applying every change; list again when etcd compacted past the watch.
async fn follow(weak: &Weak<Local<Shared>>, stop: CancellationToken) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let listed = tokio::select! {
            _ = stop.cancelled() => return,
            listed = list(&shared) => listed,
        };
        let revision = match listed {
            Ok(revision) => revision,
            Err(Error::Closed) => return,
            Err(e) => {
                shared.fail(e);
                return;
            }
        };
        let client = shared.client.clone();
        let prefix = shared.prefix.clone();
        drop(shared);
        let mut stream = match ChangeStream::open(client, &prefix, revision + 1, None).await {
            Ok(stream) => stream,
            Err(Error::Closed) => return,
            Err(Error::Expired { .. }) => continue,
            Err(e) => {
                if let Some(shared) = weak.upgrade() {
                    shared.fail(e);
                }
                return;
            }
        };
        loop {
            if let Some(shared) = weak.upgrade() {
                *shared.progress.lock().unwrap_or_else(|p| p.into_inner()) = stream.progress_requester();
            }
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.next_batch() => next,
            };
            let changes = match next {
                Ok(Some(changes)) => changes,
                Ok(None) => return,
                Err(Error::Expired { .. }) => break, // list again
                Err(e) => {
                    if let Some(shared) = weak.upgrade() {
                        shared.fail(e);
                    }
                    return;
                }
            };
            let Some(shared) = weak.upgrade() else { return };
            let mut last = *shared.applied.borrow();
            {
                let mut state = shared.state.write().unwrap_or_else(|p| p.into_inner());
                for change in changes {
                    match (change.kind, change.value) {
                        (ChangeType::Added | ChangeType::Modified, Some(doc)) => {
                            let kv = KeyValue {
                                key: change.key.as_bytes().to_vec(),
                                mod_revision: change.revision,
                                ..KeyValue::default()
                            };
                            match Entry::from_document(change.key.as_str().into(), &doc, kv, &shared.paths) {
                                Ok(entry) => state.put(entry, &shared.paths),
                                // Cannot happen for a decoded document; left out as unreadable.
                                Err(_) => state.delete(&change.key, &shared.paths),
                            }
                        }
                        (ChangeType::Added | ChangeType::Modified, None) | (ChangeType::Deleted, _) => {
                            if let Some(e) = change.error {
                                crate::unreadable::skipped(e, change.revision);
                            }
                            state.delete(&change.key, &shared.paths)
                        }
                        (ChangeType::Bookmark, _) => {}
                    }
                    last = last.max(change.revision);
                }
            }
            shared.applied.send_replace(last);
        }
    }
}

/// Load every document under the prefix at one revision into a fresh state. The entries are
/// made on a task of their own, so they are made on one thread while the next chunks are
/// received and decoded on another (the two take about as long as each other; in one task
/// they took turns: docs/benchmarks.md, "Figures behind the code").
async fn list(shared: &Shared) -> Result<i64> {
    let store = shared.client.store()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<KeyValue>>(AHEAD);
    let end = prefix_end(shared.prefix.as_bytes());
    let read = async move {
        let done = listing::scan_chunks(
            &**store,
            shared.prefix.as_bytes(),
            &end,
            0,
            listing::Chunks::SYNC,
            |kvs, _| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(kvs).await; // the receiver lives as long as this future
                    Ok(None)
                }
            },
        )
        .await;
        drop(tx);
        done
    };
    let paths = shared.paths.clone();
    // Ends when the sender is dropped: the read done, failed or dropped.
    let make = tokio::spawn(async move {
        let mut state = State::default();
        let projection = state::holding(&paths);
        while let Some(kvs) = rx.recv().await {
            for kv in kvs {
                // Unreadable documents are left out of the cache, as lists leave them out.
                let revision = kv.mod_revision;
                match Entry::from_stored(kv, &paths, &projection) {
                    Ok(entry) => state.put(entry, &paths),
                    Err(e) => crate::unreadable::skipped(e, revision),
                }
            }
        }
        state
    });
    let done = read.await?;
    let state = make.await.map_err(|e| Error::Unavailable {
        message: format!("the cache's first listing stopped: {e}"),
        code: None,
    })?;
    *shared.state.write().unwrap_or_else(|p| p.into_inner()) = state;
    shared.applied.send_replace(done.revision);
    Ok(done.revision)
}
