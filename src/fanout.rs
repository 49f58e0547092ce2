//! Watchers that share: however many watchers a process opens on one prefix, one etcd watch
//! per (client, prefix) feeds them all.
//!
//! - **The shared watch** (a hub): one [`ChangeStream`] without a query (opened with previous
//!   values, resumed after failures with no event lost or repeated, as every `ChangeStream`
//!   is), read by one task. Each change is decoded once and held in an `Arc`; every
//!   subscriber applies its own selector to that one decoded document (the Kubernetes rule of
//!   [`Change::seen_by`]: `Added`/`Deleted` when a resource enters or leaves the selection)
//!   and builds its own Python objects from it (`src/py/watch.rs`): no JSON is parsed twice,
//!   and no document is shared mutably between watchers.
//! - **Starting revisions**: a subscriber joins the hub directly when no change at or after
//!   its start has gone through the hub yet (the hub's last change is older than its start),
//!   skipping what precedes its start; that covers "from now on" and every start the hub has
//!   not passed, even while the hub is still replaying older history. A subscriber whose start
//!   the hub has already passed gets **its own catch-up watch** from its start (so it gets
//!   every event from that revision, or `Expired` if etcd compacted it, exactly as an unshared
//!   watch would), and after each batch of it tries to hand over: once its catch-up has reached
//!   the hub's last change, it attaches to the hub from the next revision and its catch-up
//!   watch is closed. (No replay buffer: one would hold documents for watchers that may never
//!   come; the catch-up reads etcd's own history instead, and is correct even if it never
//!   meets the hub.) When no hub is running, a subscriber's own watch becomes the hub.
//! - **Replays**: a hub opened at a revision in the past (at or before etcd's revision when
//!   it opened: `replay_end`, asked by its task) *replays* history until its watch has passed
//!   that revision, at etcd's pace, which a reader doing any work per event cannot match. A
//!   subscriber that falls `max_backlog` behind a replay is not ended but *detached*: its
//!   queue is freed and it goes on from its own catch-up watch after the last change it read,
//!   at its own pace (etcd's history is the buffer), then joins the hub again as any catch-up
//!   does. Ended instead, a replay of more than `max_backlog` changes ended such readers part
//!   way through. The hub still never waits. A subscriber that starts after the replay (from
//!   now on) does not join a replaying hub either: it reads its own watch until the hub is
//!   live.
//! - **Bounded backlogs**: the hub never waits for a subscriber. Each has a queue of at most
//!   `max_backlog` events (default [`DEFAULT_MAX_BACKLOG`]); one more, and that subscriber is
//!   ended with [`Error::FellBehind`] (its queue freed at once), while the others go on.
//!   Kubernetes closes a watcher that cannot keep up too (its watch cache gives each watcher a
//!   bounded channel and a short time budget, then "forces watcher close due to
//!   unresponsiveness"); here there is no time budget: the shared stream is never held up.
//!   Consecutive bookmarks collapse into one.
//! - **Lifetime**: a hub lives while a subscriber holds it: the last one gone, its task stops
//!   and the etcd watch closes. It ends every subscriber when the client closes (`None`), or
//!   with the error that ended its `ChangeStream` (after delivering what was queued).
//! - **Fork safety**: hubs are [`Local`]: in a forked child they are never used or torn down
//!   (the child's client is another one, with hubs of its own); the registry's lock is held
//!   across forks, since the runtime's threads take it.
//!
//! Locks, in the order they may be nested: the registry, a hub's state, a subscriber's queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::metrics::WatchCounters;
pub use crate::metrics::WatchStats;
use crate::process::{self, Local};
use crate::selector::Query;
use crate::watch::{Change, ChangeStream, ChangeType};

mod slot;
#[cfg(test)]
use slot::containers;
pub use slot::MAX_BATCH;
use slot::{take_batch, Slot, Taken};

/// Events that may wait for one subscriber before it is ended as fallen behind. A subscriber
/// pins at most this many decoded events (shared with the other subscribers while they hold
/// them too): a LabWorker of ~2 KB of JSON, decoded with its previous version, takes tens of
/// KiB (docs/benchmarks.md, "Figures behind the code"). Kubernetes' watch cache ends slow watchers sooner (a small
/// channel per watcher, then at most 100 ms of waiting from a shared budget); resuming is cheap
/// here too (a catch-up watch from etcd's history).
pub const DEFAULT_MAX_BACKLOG: usize = 1_000;

/// How many times [`Subscription::open`] starts over when the hub it joined could not open
/// for a reason that is not its own (another subscriber's start was compacted).
const OPEN_ATTEMPTS: usize = 3;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One change as one subscriber sees it: its own kind, the shared decoded change.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: ChangeType,
    pub change: Arc<Change>,
}

/// Counts one open thing of a client while it lives.
struct Gauge {
    client: Client,
    which: fn(&WatchCounters) -> &AtomicUsize,
}

impl Gauge {
    fn new(client: &Client, which: fn(&WatchCounters) -> &AtomicUsize) -> Self {
        which(client.watch_counters()).fetch_add(1, Ordering::Relaxed);
        Gauge { client: client.clone(), which }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.which)(self.client.watch_counters()).fetch_sub(1, Ordering::Relaxed);
    }
}

/// An etcd watch of this module, counted as shared or catching up.
struct Upstream {
    stream: ChangeStream,
    _gauge: Gauge,
}

impl Upstream {
    fn catch_up(client: &Client, stream: ChangeStream) -> Self {
        Upstream { stream, _gauge: Gauge::new(client, |c| &c.catch_up) }
    }

    fn shared(client: &Client, stream: ChangeStream) -> Self {
        Upstream { stream, _gauge: Gauge::new(client, |c| &c.shared) }
    }
}

type Key = (usize, String);

/// The hubs alive, by (client, prefix).
static REGISTRY: LazyLock<Mutex<HashMap<Key, Weak<Local<Hub>>>>> = LazyLock::new(Default::default);

/// The lock this module's tasks take, for the bindings to hold across forks (see `crate::process`).
pub fn fork_lock() -> &'static dyn process::ForkLock {
    &*REGISTRY
}

/// Where a hub is.
struct HubState {
    /// The revision of the last change the hub delivered (its start - 1 before any).
    last_event: i64,
    /// The revision its watch has passed (`last_event`, or a later bookmark).
    position: i64,
    /// etcd's revision when it opened: it replays until it has passed it (`None` until its
    /// task has asked; nothing is delivered before).
    replay_end: Option<i64>,
    /// Whether its etcd watch is open (false while it opens).
    running: bool,
    /// Whether it ended (its watch failed, or the client closed): nobody joins it any more.
    ended: bool,
    slots: Vec<Weak<Slot>>,
}

/// One shared etcd watch on a prefix.
struct Hub {
    client: Client,
    key: Key,
    state: Mutex<HubState>,
    /// `Some(Ok)` once the etcd watch is open, `Some(Err)` if it could not be opened.
    opened: watch::Sender<Option<Result<()>>>,
    /// Cancelled when the last subscriber lets go: the task stops and the watch closes.
    stop: CancellationToken,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Hub {
    fn new(
        client: &Client,
        key: Key,
        last_event: i64,
        replay_end: Option<i64>,
        running: bool,
    ) -> Arc<Local<Hub>> {
        let position = last_event;
        let state = HubState { last_event, position, replay_end, running, ended: false, slots: Vec::new() };
        let opened = watch::Sender::new(running.then_some(Ok(())));
        let hub = Hub {
            client: client.clone(),
            key,
            state: Mutex::new(state),
            opened,
            stop: CancellationToken::new(),
        };
        Arc::new(Local::new(hub))
    }

    /// Attach a subscriber from revision `from` (and forget those gone since the last batch).
    fn attach(state: &mut HubState, query: Option<Query>, max_backlog: usize, from: i64) -> Arc<Slot> {
        state.slots.retain(|w| w.strong_count() > 0);
        let slot = Slot::new(query, max_backlog, from);
        state.slots.push(Arc::downgrade(&slot));
        slot
    }

    /// Whether it is still replaying history (see the module's doc).
    fn replaying(state: &HubState) -> bool {
        state.replay_end.is_none_or(|end| state.position < end)
    }

    /// Its subscribers still reading (and forget those gone).
    fn slots(state: &mut HubState) -> Vec<Arc<Slot>> {
        state.slots.retain(|w| w.upgrade().is_some_and(|s| !s.ended()));
        state.slots.iter().filter_map(Weak::upgrade).collect()
    }

    /// Hand a batch of the shared watch to every subscriber.
    fn deliver(&self, changes: Vec<Change>) {
        let changes: Vec<Arc<Change>> = changes.into_iter().map(Arc::new).collect();
        let (slots, replaying) = {
            let mut state = lock(&self.state);
            // A batch read while replaying is pushed as replay: its readers had room for it.
            let replaying = Self::replaying(&state);
            if let Some(last) =
                changes.iter().filter(|c| c.kind != ChangeType::Bookmark).map(|c| c.revision).max()
            {
                state.last_event = state.last_event.max(last);
            }
            if let Some(last) = changes.iter().map(|c| c.revision).max() {
                state.position = state.position.max(last);
            }
            (Self::slots(&mut state), replaying)
        };
        // Outside the hub's lock: a subscriber that joins now starts after `last_event`, so
        // none of these is its; one that leaves now is ended, so pushing to it does nothing.
        let counters = self.client.watch_counters();
        for slot in slots {
            slot.push(&changes, counters, replaying);
        }
    }

    /// End the hub and every subscriber with `result`; nobody joins it from now on.
    fn end(&self, result: Result<()>) {
        let slots: Vec<Arc<Slot>> = {
            let mut state = lock(&self.state);
            state.ended = true;
            state.slots.drain(..).filter_map(|w| w.upgrade()).collect()
        };
        for slot in slots {
            slot.end(result.clone());
        }
        // Whoever still waits for it to open learns that it never will.
        self.opened.send_if_modified(|opened| {
            let first = opened.is_none();
            if first {
                *opened = Some(Err(result.clone().err().unwrap_or(Error::Closed)));
            }
            first
        });
        let mut registry = lock(&REGISTRY);
        let mine = registry.get(&self.key).and_then(Weak::upgrade).is_some_and(|h| std::ptr::eq(&**h, self));
        if mine {
            registry.remove(&self.key);
        }
    }
}

/// What the hub's task starts from.
enum Source {
    /// Open the shared watch at this revision.
    Open(i64),
    /// A subscriber's own watch, which becomes the shared one.
    Stream(Upstream),
}

/// The hub's task: open the watch (unless given one), then deliver every batch until the last
/// subscriber goes, the client closes or the watch fails.
async fn run(
    weak: Weak<Local<Hub>>,
    client: Client,
    prefix: String,
    source: Source,
    stop: CancellationToken,
) {
    // Whether it replays: etcd's revision now, unless its first subscriber watches from now on.
    let known = weak.upgrade().and_then(|hub| lock(&hub.state).replay_end);
    let replay_end = async {
        match known {
            Some(end) => Ok(end),
            None => client.store()?.current_revision(prefix.as_bytes()).await,
        }
    };
    let mut upstream = match source {
        Source::Stream(upstream) => {
            let replay_end = tokio::select! {
                _ = stop.cancelled() => return,
                end = replay_end => end,
            };
            let Some(hub) = weak.upgrade() else { return };
            match replay_end {
                Ok(end) => lock(&hub.state).replay_end = Some(end),
                Err(e) => return hub.end(Err(e)),
            }
            upstream
        }
        Source::Open(start) => {
            let (opened, replay_end) = tokio::select! {
                _ = stop.cancelled() => return,
                both = async { tokio::join!(ChangeStream::open(client.clone(), &prefix, start, None), replay_end) } => both,
            };
            let opened = opened.and_then(|stream| Ok((stream, replay_end?)));
            let Some(hub) = weak.upgrade() else { return };
            match opened {
                Ok((stream, end)) => {
                    let mut state = lock(&hub.state);
                    state.replay_end = Some(end);
                    state.running = true;
                    drop(state);
                    hub.opened.send_replace(Some(Ok(())));
                    Upstream::shared(&client, stream)
                }
                Err(e) => {
                    hub.end(Err(e));
                    return;
                }
            }
        }
    };
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = upstream.stream.next_batch() => next,
        };
        let Some(hub) = weak.upgrade() else { return };
        match next {
            Ok(Some(changes)) => hub.deliver(changes),
            Ok(None) => return hub.end(Ok(())),
            Err(e) => return hub.end(Err(e)),
        }
    }
}

/// Where a subscription's events come from.
enum Feed {
    Shared {
        _hub: Arc<Local<Hub>>,
        slot: Arc<Slot>,
    },
    /// Its own watch, catching up with the hub.
    Own(Upstream),
    /// Handed over (transiently).
    None,
}

/// One watcher of a prefix: a subscriber of the prefix's shared watch (see the module's doc).
pub struct Subscription {
    client: Client,
    key: Key,
    query: Option<Query>,
    max_backlog: usize,
    /// A forked child leaves its parent's feed alone (see `crate::process`).
    feed: Local<Feed>,
    /// Events of the own watch not handed over yet (one of its batches may be larger than
    /// one of ours).
    pending: VecDeque<Event>,
    /// etcd's revision when it opened, for one that watches from now on (it never replays);
    /// `None` for one given a start, which may be in the past.
    now: Option<i64>,
    _gauge: Gauge,
}

/// What joining the registered hub gave.
enum Joined {
    /// Attached; wait until it is open.
    Attached(Arc<Local<Hub>>, Arc<Slot>),
    /// The hub has passed the start, or it replays and this subscriber watches from now on:
    /// catch up on an own watch first.
    Behind,
}

impl Subscription {
    /// Watch `prefix` from `start_revision` (0: from now on) for changes that matter to
    /// `query` (all, when `None`), through the prefix's shared watch; at most `max_backlog`
    /// events wait unread before the subscription is ended with `FellBehind`. Fails as
    /// [`ChangeStream::open`] does (`Expired` for a compacted start).
    pub async fn open(
        client: Client,
        prefix: &str,
        start_revision: i64,
        query: Option<Query>,
        max_backlog: usize,
    ) -> Result<Self> {
        if max_backlog == 0 {
            return Err(Error::invalid("max_backlog must be at least 1"));
        }
        let store = client.store()?;
        // "Now" as a revision, as `ChangeStream::open` does: a subscriber joining a hub that
        // already runs gets exactly the changes after it. A given start is joined without an
        // await (watchers opened together join one hub); the hub learns whether it replays.
        let now =
            if start_revision > 0 { None } else { Some(store.current_revision(prefix.as_bytes()).await?) };
        let start = now.map_or(start_revision, |now| now + 1);
        let key = (client.id(), prefix.to_owned());
        let gauge = Gauge::new(&client, |c| &c.watchers);
        let mut sub = Subscription {
            client,
            key,
            query,
            max_backlog,
            feed: Local::new(Feed::None),
            pending: VecDeque::new(),
            now,
            _gauge: gauge,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (hub, slot) = match sub.join(start)? {
                Joined::Attached(hub, slot) => (hub, slot),
                Joined::Behind => {
                    let stream = ChangeStream::open(sub.client.clone(), prefix, start, None).await?;
                    *sub.feed = Feed::Own(Upstream::catch_up(&sub.client, stream));
                    sub.hand_over();
                    return Ok(sub);
                }
            };
            let mut opened = hub.opened.subscribe();
            let result = match opened.wait_for(Option::is_some).await {
                Ok(opened) => opened.clone().unwrap_or(Err(Error::Closed)),
                Err(_) => Err(Error::Closed),
            };
            match result {
                Ok(()) => {
                    *sub.feed = Feed::Shared { _hub: hub, slot };
                    return Ok(sub);
                }
                // Another subscriber's start opened the hub, and was compacted; ours may not be.
                Err(Error::Expired { compacted, .. }) if start > compacted && attempts < OPEN_ATTEMPTS => {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Join the registered hub from `start`, or register a new one that opens at `start`.
    fn join(&self, start: i64) -> Result<Joined> {
        self.client.check()?;
        let mut registry = lock(&REGISTRY);
        registry.retain(|_, w| w.strong_count() > 0);
        if let Some(hub) = registry.get(&self.key).and_then(Weak::upgrade).filter(|h| h.is_here()) {
            let mut state = lock(&hub.state);
            if !state.ended {
                // Passed, or replaying while this one watches from now on: it does not wait
                // behind a replay.
                if start <= state.last_event || (self.now.is_some() && Hub::replaying(&state)) {
                    return Ok(Joined::Behind);
                }
                let slot = Hub::attach(&mut state, self.query.clone(), self.max_backlog, start);
                drop(state);
                return Ok(Joined::Attached(hub, slot));
            }
        }
        let hub = Hub::new(&self.client, self.key.clone(), start - 1, self.now, false);
        let slot = Hub::attach(&mut lock(&hub.state), self.query.clone(), self.max_backlog, start);
        registry.insert(self.key.clone(), Arc::downgrade(&hub));
        drop(registry);
        let task = run(
            Arc::downgrade(&hub),
            self.client.clone(),
            self.key.1.clone(),
            Source::Open(start),
            hub.stop.clone(),
        );
        tokio::spawn(task);
        Ok(Joined::Attached(hub, slot))
    }

    /// From an own watch: attach to the running hub if the own watch has reached the hub's
    /// last change and the hub is live, or make the own watch the hub if there is none.
    /// Otherwise keep catching up.
    fn hand_over(&mut self) {
        let Feed::Own(own) = &*self.feed else { return };
        let position = own.stream.last_revision;
        let mut registry = lock(&REGISTRY);
        if let Some(hub) = registry.get(&self.key).and_then(Weak::upgrade).filter(|h| h.is_here()) {
            let mut state = lock(&hub.state);
            if !state.ended {
                if !state.running || position < state.last_event || Hub::replaying(&state) {
                    return; // not there yet, or the hub is: try again after the next batch
                }
                let slot = Hub::attach(&mut state, self.query.clone(), self.max_backlog, position + 1);
                drop(state);
                drop(registry);
                // Dropping the own watch closes it.
                *self.feed = Feed::Shared { _hub: hub, slot };
                return;
            }
        }
        let Feed::Own(own) = std::mem::replace(&mut *self.feed, Feed::None) else { return };
        let hub = Hub::new(&self.client, self.key.clone(), position, self.now, true);
        let slot = Hub::attach(&mut lock(&hub.state), self.query.clone(), self.max_backlog, position + 1);
        registry.insert(self.key.clone(), Arc::downgrade(&hub));
        drop(registry);
        let upstream = Upstream::shared(&self.client, own.stream);
        let task = run(
            Arc::downgrade(&hub),
            self.client.clone(),
            self.key.1.clone(),
            Source::Stream(upstream),
            hub.stop.clone(),
        );
        tokio::spawn(task);
        *self.feed = Feed::Shared { _hub: hub, slot };
    }

    /// The next batch of events, in revision order, or `None` once the client is closed.
    /// `FellBehind` when this subscriber let more than its backlog wait; the errors of
    /// [`ChangeStream::next_batch`] otherwise. Cancel-safe: a batch is handed over whole or
    /// not at all. A batch's events make at most `max_containers` maps and lists when decoded
    /// (see [`take_batch`]).
    pub async fn next_batch(&mut self, max_containers: usize) -> Result<Option<Vec<Event>>> {
        loop {
            // First what the own watch brought (older than anything the hub will bring).
            if !self.pending.is_empty() {
                return Ok(Some(take_batch(&mut self.pending, max_containers)));
            }
            let own = match &mut *self.feed {
                Feed::Shared { slot, .. } => match slot.next(max_containers).await? {
                    Taken::Batch(batch) => return Ok(Some(batch)),
                    Taken::Closed => return Ok(None),
                    Taken::Detached(read) => {
                        // Fell behind a replay: on from etcd's history (see the module's doc).
                        // Cancelled while it opens, the slot says the same again next time.
                        let stream =
                            ChangeStream::open(self.client.clone(), &self.key.1, read + 1, None).await?;
                        *self.feed = Feed::Own(Upstream::catch_up(&self.client, stream));
                        continue;
                    }
                },
                Feed::Own(own) => own,
                Feed::None => return Ok(None),
            };
            let Some(changes) = own.stream.next_batch().await? else { return Ok(None) };
            let query = self.query.as_ref();
            let events = changes
                .into_iter()
                .filter_map(|c| Some(Event { kind: c.seen_by(query)?, change: Arc::new(c) }));
            self.pending.extend(events);
            self.hand_over();
        }
    }

    /// Whether this subscription reads the shared watch (false while it catches up).
    pub fn is_shared(&self) -> bool {
        matches!(*self.feed, Feed::Shared { .. })
    }
}

#[cfg(test)]
mod tests;
