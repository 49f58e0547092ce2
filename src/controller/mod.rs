//! The controller runtime's core: reconcile requests for the resources under a repository's
//! prefix, queued per key, with the documents read from the shared informer cache.
//!
//! Split as kube-runtime is: [`scheduler`] (the per-key queue: one running and one pending
//! per key, bounded concurrency, delays, backoff, priorities, debounce) and [`backoff`];
//! [`queue`] (the scheduler on tokio's clock); [`predicate`] (which changes trigger);
//! [`feed`] (the watch that triggers keys); this module wires them. The reconciler itself runs
//! in Python: it asks [`Controller::next`] for a key to run and reports with
//! [`Controller::finish`].
//!
//! - **Events**: the initial listing comes from the informer cache of the repository's prefix
//!   (the one every repository of the client shares; started here if none runs), changes
//!   from the prefix's shared watch (`crate::fanout`), filtered by the predicates.
//! - **Fresh reads**: before a key runs, the cache has applied the revision that triggered
//!   it and every revision this client wrote or read under the prefix (the informer's
//!   session rule), so a reconciler never sees the state its own last write replaced.
//! - **Failures are loud**: when the watch ends for good (the client closed, an error that is
//!   not retried) [`Controller::next`] fails with it. A compacted watch, or one that fell
//!   behind, queues every key of the cache again and follows on from there.

pub mod backoff;
mod feed;
pub mod persist;
pub mod predicate;
pub mod queue;
pub mod scheduler;
pub mod shards;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::informer::{Consistency, Informer};
use crate::repository::Repository;
use crate::selector::Query;
use crate::store::KeyValue;

pub use predicate::Predicate;
pub use scheduler::{seconds, Counts, Key, Options, Outcome, Popped, Priority};
pub use shards::{shard_of, Ownership};

/// How a controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub queue: Options,
    /// A change triggers when any of these passes (see [`predicate`]).
    pub predicates: Vec<Predicate>,
    /// Changes that may wait for the feed before its watch is reopened (see `feed`).
    pub max_backlog: usize,
    /// The shards this replica runs (shared with whoever sets them; see [`shards`]).
    pub ownership: Arc<Ownership>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue: Options::default(),
            predicates: vec![Predicate::Generation],
            max_backlog: feed::MAX_BACKLOG,
            ownership: Arc::default(),
        }
    }
}

/// A key to reconcile, with its document as the cache holds it.
#[derive(Debug, Clone)]
pub struct Work {
    pub key: Key,
    pub stored: KeyValue,
    /// Consecutive failures of this key before this run.
    pub failures: u32,
    pub priority: Priority,
    /// How long it waited, due, for a free slot.
    pub waited: std::time::Duration,
}

/// What a controller did (see `stats()` in Python).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub queue: Counts,
    /// Changes the predicates let through, and held back.
    pub changes: u64,
    pub filtered: u64,
    /// Keys that were gone from the cache when their turn came (deleted).
    pub gone: u64,
    /// Listings after the watch's start was compacted or it fell behind (every key queued
    /// again).
    pub relists: u64,
    /// Runs put back because the cache did not catch up within the request timeout.
    pub cache_timeouts: u64,
    /// Keys triggered by changes of related resources ([`Controller::trigger`]).
    pub related: u64,
    /// Keys dropped because another replica holds their shard.
    pub not_mine: u64,
    /// Since the feed last heard from the watch (a change or a progress notification), or
    /// since the listing.
    pub since_last_event: std::time::Duration,
}

#[derive(Default)]
struct Counters {
    changes: AtomicU64,
    filtered: AtomicU64,
    gone: AtomicU64,
    relists: AtomicU64,
    cache_timeouts: AtomicU64,
    related: AtomicU64,
    not_mine: AtomicU64,
    /// Microseconds from `Inner::started` to the feed's last event.
    last_event_us: AtomicU64,
}

struct Inner {
    repo: Repository,
    informer: Informer,
    queue: queue::Queue,
    predicates: Vec<Predicate>,
    max_backlog: usize,
    ownership: Arc<Ownership>,
    counters: Counters,
    /// Why the feed stopped, if it failed; `failed` is cancelled when it is set.
    failure: Mutex<Option<Error>>,
    failed: CancellationToken,
    stop: CancellationToken,
    started: std::time::Instant,
}

impl Inner {
    /// The feed heard from the watch now.
    fn heard(&self) {
        let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.last_event_us.fetch_max(us, Ordering::Relaxed);
    }

    fn fail(&self, e: Error) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        self.failed.cancel();
    }

    fn failure(&self) -> Error {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or(Error::Closed)
    }

    /// Queue every cached key of a held shard with the initial priority; returns the cache's
    /// revision.
    fn queue_all(&self) -> i64 {
        self.queue_where(|key| self.ownership.owns(key))
    }

    fn queue_where(&self, keep: impl Fn(&str) -> bool) -> i64 {
        let revision = self.informer.revision();
        let entries = self.informer.list(&Query::default());
        let keys =
            entries.iter().filter(|e| keep(e.key())).map(|e| (Key::from(e.key()), e.stored().mod_revision));
        self.queue.trigger_all(keys, Priority::Initial);
        revision
    }

    /// Queue `keys` unless another replica holds their shards.
    fn trigger_owned(&self, keys: Vec<(Key, i64)>, priority: Priority) {
        let before = keys.len();
        let keys: Vec<_> = keys.into_iter().filter(|(k, _)| self.ownership.owns(k)).collect();
        self.counters.not_mine.fetch_add((before - keys.len()) as u64, Ordering::Relaxed);
        self.queue.trigger_all(keys, priority);
    }
}

/// A running controller's queue and feed; dropping it (or [`Controller::stop`]) stops the
/// feed.
pub struct Controller {
    inner: Arc<Inner>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl Controller {
    /// Start on `repo`'s prefix: wait for the cache's first listing, queue every key in it,
    /// and follow the changes after it.
    pub async fn start(repo: Repository, settings: Settings) -> Result<Controller> {
        let informer = match repo.informer().await? {
            Some(informer) => informer.clone(),
            None => Informer::shared(repo.client(), &repo.config().prefix, &[])?,
        };
        informer.wait(Consistency::Stale).await?;
        let predicates =
            if settings.predicates.is_empty() { vec![Predicate::Generation] } else { settings.predicates };
        let inner = Arc::new(Inner {
            repo,
            informer,
            queue: queue::Queue::new(settings.queue),
            predicates,
            max_backlog: settings.max_backlog.max(1),
            ownership: settings.ownership,
            counters: Counters::default(),
            failure: Mutex::new(None),
            failed: CancellationToken::new(),
            stop: CancellationToken::new(),
            started: std::time::Instant::now(),
        });
        let revision = inner.queue_all();
        tokio::spawn(feed::run(inner.clone(), revision + 1));
        Ok(Controller { inner })
    }

    pub fn repository(&self) -> &Repository {
        &self.inner.repo
    }

    /// The next key to reconcile (it counts as running until [`Controller::finish`]), once
    /// the cache has caught up with it. Keys deleted meanwhile are skipped. Fails when the
    /// feed failed, or with `Closed` once stopped. Cancelling it loses the key it may have
    /// taken: cancel it only to stop.
    pub async fn next(&self) -> Result<Work> {
        let inner = &self.inner;
        loop {
            let popped = tokio::select! {
                popped = inner.queue.next() => popped,
                _ = inner.failed.cancelled() => return Err(inner.failure()),
                _ = inner.stop.cancelled() => return Err(Error::Closed),
            };
            if let Some(work) = self.ready(popped).await? {
                return Ok(work);
            }
        }
    }

    /// [`Controller::next`], then every other key that is due while slots are free (up to
    /// `max` in all), without waiting for more: one hand-over for a burst of keys.
    pub async fn next_batch(&self, max: usize) -> Result<Vec<Work>> {
        let mut batch = vec![self.next().await?];
        while batch.len() < max {
            let Some(popped) = self.inner.queue.try_next() else { break };
            match self.ready(popped).await {
                Ok(Some(work)) => batch.push(work),
                Ok(None) => {}
                // The key was put back; the next call meets the error again and raises it.
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// The work for a popped key once the cache has it; `None` (and the key finished) when it
    /// is gone or the cache did not catch up in time (run again).
    async fn ready(&self, popped: Popped) -> Result<Option<Work>> {
        let inner = &self.inner;
        if !inner.ownership.owns(&popped.key) {
            // Its shard went to another replica while it waited.
            inner.counters.not_mine.fetch_add(1, Ordering::Relaxed);
            inner.queue.finish(&popped.key, Outcome::Done);
            return Ok(None);
        }
        match self.load(popped.revision, &popped.key).await {
            Ok(Some(stored)) => Ok(Some(Work {
                key: popped.key,
                stored,
                failures: popped.failures,
                priority: popped.priority,
                waited: popped.waited,
            })),
            Ok(None) => {
                inner.counters.gone.fetch_add(1, Ordering::Relaxed);
                inner.queue.finish(&popped.key, Outcome::Done);
                Ok(None)
            }
            Err(Error::Timeout { .. }) => {
                inner.counters.cache_timeouts.fetch_add(1, Ordering::Relaxed);
                inner.queue.finish(&popped.key, Outcome::Retry(None));
                Ok(None)
            }
            Err(e) => {
                inner.queue.finish(&popped.key, Outcome::Retry(None));
                Err(e)
            }
        }
    }

    /// The key's document once the cache has applied `revision` and this client's own
    /// writes; `None` when it is gone.
    async fn load(&self, revision: i64, key: &str) -> Result<Option<KeyValue>> {
        let informer = &self.inner.informer;
        informer.wait_applied(revision).await?;
        informer.wait(Consistency::Session).await?;
        Ok(informer.get(key).map(|entry| entry.stored().clone()))
    }

    /// Queue `keys` as live changes, for a change of something related to them (an owned
    /// resource, a watched one): no cache revision to wait for beyond this client's session.
    pub fn trigger(&self, keys: impl IntoIterator<Item = Key>) {
        let mut n = 0;
        let keys = keys.into_iter().inspect(|_| n += 1).map(|key| (key, 0)).collect::<Vec<_>>();
        self.inner.trigger_owned(keys, Priority::Live);
        self.inner.counters.related.fetch_add(n, Ordering::Relaxed);
    }

    /// Queue every key of the cache again (as the feed's relist does): a feed of related
    /// changes fell behind, and what it missed may concern any key.
    pub fn relist(&self) {
        self.inner.counters.relists.fetch_add(1, Ordering::Relaxed);
        self.inner.queue_all();
    }

    /// Hold `held` of `count` shards from now on: keys of the others are no longer queued nor
    /// handed out, and every cached key of a newly held shard is queued (as an initial
    /// listing is: the replica that held it may have left work undone).
    pub fn set_shards(&self, count: u32, held: &[u32]) -> Result<()> {
        let gained = self.inner.ownership.set(count, held)?;
        if !gained.is_empty() {
            self.inner.queue_where(|key| gained.contains(&shard_of(key, count)));
        }
        Ok(())
    }

    /// `key`'s reconcile ended with `outcome`.
    pub fn finish(&self, key: &str, outcome: Outcome) {
        self.inner.queue.finish(key, outcome);
    }

    /// Stop following changes; [`Controller::next`] fails with `Closed` from now on.
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            queue: self.inner.queue.counts(),
            changes: c.changes.load(Ordering::Relaxed),
            filtered: c.filtered.load(Ordering::Relaxed),
            gone: c.gone.load(Ordering::Relaxed),
            relists: c.relists.load(Ordering::Relaxed),
            cache_timeouts: c.cache_timeouts.load(Ordering::Relaxed),
            related: c.related.load(Ordering::Relaxed),
            not_mine: c.not_mine.load(Ordering::Relaxed),
            since_last_event: self
                .inner
                .started
                .elapsed()
                .saturating_sub(std::time::Duration::from_micros(c.last_event_us.load(Ordering::Relaxed))),
        }
    }
}
