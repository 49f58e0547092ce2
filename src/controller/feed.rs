//! The feed: the prefix's shared watch, turned into triggers of the queue. When its start was
//! compacted, or it let more than its backlog of changes wait, it relists: every key in the
//! cache is queued again (merged with what is queued already) and it follows on from the
//! cache's revision; a reopened watch from its last revision would replay the same burst into
//! the same backlog, over and over. It fails the controller, never silently, when the watch
//! ends for good.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::Error;
use crate::fanout::Subscription;
use crate::watch::ChangeType;

use super::predicate::triggers;
use super::{Inner, Key, Priority};

/// Changes that may wait for the feed: it only moves them into the queue, which merges them
/// per key, so it falls behind only when starved of CPU.
pub(super) const MAX_BACKLOG: usize = 10_000;

/// How one subscription ended.
enum Ended {
    Stopped,
    /// The start was compacted, or the feed fell behind: relist.
    Relist,
    Failed(Error),
}

pub(super) async fn run(inner: Arc<Inner>, mut start: i64) {
    loop {
        match follow(&inner, start).await {
            Ended::Stopped => return,
            Ended::Relist => match relist(&inner).await {
                Ok(revision) => start = revision + 1,
                Err(e) => return inner.fail(e),
            },
            Ended::Failed(e) => return inner.fail(e),
        }
    }
}

/// Trigger the keys of the changes from `start` on, until the subscription ends.
async fn follow(inner: &Inner, start: i64) -> Ended {
    let stop = &inner.stop;
    let client = inner.repo.client().clone();
    let prefix = inner.repo.config().prefix.clone();
    let opened = tokio::select! {
        _ = stop.cancelled() => return Ended::Stopped,
        opened = Subscription::open(client, &prefix, start, None, inner.max_backlog) => opened,
    };
    let mut subscription = match opened {
        Ok(subscription) => subscription,
        Err(Error::Expired { .. }) => return Ended::Relist,
        Err(e) => return Ended::Failed(e),
    };
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return Ended::Stopped,
            // The feed makes no Python objects: a batch is whatever waits, unbounded.
            next = subscription.next_batch(usize::MAX) => next,
        };
        let events = match next {
            Ok(Some(events)) => {
                inner.heard();
                events
            }
            Ok(None) => return Ended::Failed(Error::Closed),
            // Resuming from `start` would replay the same burst into the same backlog: the
            // cache has it all, so queue every key from there instead.
            Err(Error::FellBehind { .. } | Error::Expired { .. }) => return Ended::Relist,
            Err(e) => return Ended::Failed(e),
        };
        let mut keys = Vec::with_capacity(events.len());
        for event in &events {
            let change = &event.change;
            if triggers(&inner.predicates, change) {
                keys.push((Key::from(change.key.as_str()), change.revision));
            } else if change.kind != ChangeType::Bookmark {
                inner.counters.filtered.fetch_add(1, Ordering::Relaxed);
            }
        }
        inner.counters.changes.fetch_add(keys.len() as u64, Ordering::Relaxed);
        inner.trigger_owned(keys, Priority::Live);
    }
}

/// Bring the cache up to etcd's current revision and queue every key in it.
async fn relist(inner: &Inner) -> crate::error::Result<i64> {
    inner.informer.wait_fresh().await?;
    inner.counters.relists.fetch_add(1, Ordering::Relaxed);
    Ok(inner.queue_all())
}
