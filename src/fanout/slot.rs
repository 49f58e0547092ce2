//! A subscriber's side of the shared watch: its bounded queue of events, its selector and
//! starting revision, and the batches its reader takes (see the parent module's doc).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{lock, Event};
use crate::error::{Error, Result};
use crate::metrics::WatchCounters;
use crate::selector::Query;
use crate::watch::{Change, ChangeType};

/// The most events one [`super::Subscription::next_batch`] hands over.
pub const MAX_BATCH: usize = 256;

/// The dicts and lists a decoded document becomes.
pub(super) fn containers(doc: &serde_json::Value) -> usize {
    match doc {
        serde_json::Value::Object(map) => 1 + map.values().map(containers).sum::<usize>(),
        serde_json::Value::Array(items) => 1 + items.iter().map(containers).sum::<usize>(),
        _ => 0,
    }
}

/// The first events of `items`, as many as fit in one batch: at most [`MAX_BATCH`], and
/// making at most `max_containers` containers (maps, lists, one per event) when decoded, as far
/// as a batch of more than one event goes (always at least one). The consumer chooses the
/// bound (the bindings': `src/py/watch.rs`).
pub(super) fn take_batch(items: &mut VecDeque<Event>, max_containers: usize) -> Vec<Event> {
    let mut made = 0;
    let mut n = 0;
    for event in items.iter().take(MAX_BATCH) {
        let change = &event.change;
        made +=
            1 + change.value.as_ref().map_or(0, containers) + change.previous.as_ref().map_or(0, containers);
        if n > 0 && made > max_containers {
            break;
        }
        n += 1;
    }
    items.drain(..n).collect()
}

/// What a reader takes from its slot.
pub(super) enum Taken {
    Batch(Vec<Event>),
    /// The client closed.
    Closed,
    /// It fell behind a replay: it goes on from its own watch after this revision.
    Detached(i64),
}

/// What waits for one subscriber.
pub(super) struct Queue {
    items: VecDeque<Event>,
    /// Set once nothing more will be queued: `Ok` when the client closed, else why it ended.
    /// What is queued is still delivered first (except after falling behind: then nothing).
    end: Option<Result<()>>,
    /// Set (to the last revision it read) when it fell behind while the hub replayed.
    detached: Option<i64>,
    /// The revision of the last event handed to the reader.
    read_upto: i64,
}

/// A subscriber, as the hub sees it.
pub(super) struct Slot {
    query: Option<Query>,
    /// Changes before this revision are not this subscriber's.
    from: i64,
    max_backlog: usize,
    queue: Mutex<Queue>,
    ready: Notify,
}

impl Slot {
    pub(super) fn new(query: Option<Query>, max_backlog: usize, from: i64) -> Arc<Slot> {
        let queue = Queue { items: VecDeque::new(), end: None, detached: None, read_upto: from - 1 };
        Arc::new(Slot { query, from, max_backlog, queue: Mutex::new(queue), ready: Notify::new() })
    }

    pub(super) fn ended(&self) -> bool {
        let q = lock(&self.queue);
        q.end.is_some() || q.detached.is_some()
    }

    /// Queue what of `changes` concerns this subscriber. If that overflows its backlog, end
    /// it as fallen behind, or, while the hub is `replaying`, detach it: its reader goes on
    /// from its own watch, at its own pace, after the last change it read (a replayed batch
    /// that finds room goes in whole: at most the backlog and one batch wait).
    pub(super) fn push(&self, changes: &[Arc<Change>], counters: &WatchCounters, replaying: bool) {
        let from = self.from;
        // The selector runs without the queue's lock, so the reader is not held up.
        let mine: Vec<Event> = changes
            .iter()
            .filter(|c| c.revision >= from)
            .filter_map(|c| Some(Event { kind: c.seen_by(self.query.as_ref())?, change: c.clone() }))
            .collect();
        if mine.is_empty() {
            return;
        }
        let mut q = lock(&self.queue);
        if q.end.is_some() || q.detached.is_some() {
            return;
        }
        let room = q.items.len() < self.max_backlog;
        for event in mine {
            let bookmark = event.kind == ChangeType::Bookmark;
            if bookmark && q.items.back().is_some_and(|e| e.kind == ChangeType::Bookmark) {
                if let Some(last) = q.items.back_mut() {
                    *last = event;
                }
                continue;
            }
            // While replaying, a batch goes in whole if the queue had room when it came (etcd
            // sends a replay in big batches: one should not detach a reader that keeps up).
            if q.items.len() >= self.max_backlog && !(replaying && room) {
                q.items = VecDeque::new(); // the memory goes now, not when the reader comes back
                if replaying {
                    q.detached = Some(q.read_upto);
                    counters.detached.fetch_add(1, Ordering::Relaxed);
                } else {
                    q.end = Some(Err(Error::FellBehind { revision: q.read_upto, backlog: self.max_backlog }));
                    counters.fell_behind.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
            q.items.push_back(event);
        }
        drop(q);
        self.ready.notify_one();
    }

    /// No more events: `result` once what is queued has been read.
    pub(super) fn end(&self, result: Result<()>) {
        let mut q = lock(&self.queue);
        if q.end.is_none() {
            q.end = Some(result);
        }
        drop(q);
        self.ready.notify_one();
    }

    /// The first queued events (a batch: see [`take_batch`]), or how the subscription ended
    /// or was detached (said again on every call); waits while there is neither.
    pub(super) async fn next(&self, max_containers: usize) -> Result<Taken> {
        loop {
            {
                let mut q = lock(&self.queue);
                if !q.items.is_empty() {
                    let batch = take_batch(&mut q.items, max_containers);
                    if let Some(last) = batch.last() {
                        q.read_upto = q.read_upto.max(last.change.revision);
                    }
                    return Ok(Taken::Batch(batch));
                }
                if let Some(revision) = q.detached {
                    return Ok(Taken::Detached(revision));
                }
                match &q.end {
                    Some(Ok(())) => return Ok(Taken::Closed),
                    Some(Err(e)) => return Err(e.clone()),
                    None => {}
                }
            }
            // A notification sent since the check above is kept as a permit: none is lost.
            self.ready.notified().await;
        }
    }
}
