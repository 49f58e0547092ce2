//! The per-key queue: which key runs next, and when. A plain state machine (every call takes
//! `now`), driven by [`super::queue::Queue`].
//!
//! - **One running, at most one pending per key.** A trigger for a key already pending merges
//!   into it (the earliest time wins, the highest priority wins, the newest revision wins); a
//!   trigger for a running key waits beside it and is placed when the run finishes, so a key
//!   never runs twice at once and a change during a run is never lost.
//! - **Bounded concurrency**: [`Scheduler::pop`] hands out nothing while `max_concurrency`
//!   keys run.
//! - **Outcomes** ([`Outcome`]): `Done` and `Terminal` reset the key's failures; `RequeueAfter`
//!   resets them and runs the key again after the delay; `Retry` counts a failure and runs it
//!   again after the delay it asked for or, without one, after the key's backoff. A requested
//!   delay stands until the key runs again: only a new change (or an earlier request) runs it
//!   sooner, and that run's outcome decides what follows.
//! - **Priorities**: changes seen live go before the initial listing's keys; an initial key
//!   that has been ready for `aging` gets every other slot, so a startup listing of 100k keys
//!   delays a live change by at most one reconcile per slot and the listing still gets through
//!   while changes keep coming.
//! - **Debounce** (optional, live changes only): a key runs `debounce` after the last change
//!   of a burst, and no later than `debounce_max` after its first.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff::{Backoff, Jitter};
use crate::error::{Error, Result};

/// A resource's key (prefix included).
pub type Key = Arc<str>;

/// Where a trigger comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A change seen on the watch, or a delay a reconcile asked for.
    Live,
    /// A key of the initial listing (or of a relisting).
    Initial,
}

/// What a reconcile asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Nothing more until the next change.
    Done,
    /// Run again after this delay (a success).
    RequeueAfter(Duration),
    /// A failure: run again after this delay, or after the key's backoff when `None`.
    Retry(Option<Duration>),
    /// A failure that retrying will not fix: nothing more until the next change.
    Terminal,
}

impl Outcome {
    /// From a Python `Action`'s kind (`done`, `requeue`, `retry`, `terminal`) and delay in
    /// seconds (required for `requeue`, optional for `retry`).
    pub fn parse(kind: &str, after: Option<f64>) -> Result<Self> {
        let after = after.map(|s| seconds("after", s)).transpose()?;
        Ok(match (kind, after) {
            ("done", None) => Outcome::Done,
            ("terminal", None) => Outcome::Terminal,
            ("requeue", Some(delay)) => Outcome::RequeueAfter(delay),
            ("retry", after) => Outcome::Retry(after),
            _ => {
                return Err(Error::invalid(format!(
                    "no outcome {kind:?} with after={after:?}: done, requeue (with after), retry or terminal"
                )))
            }
        })
    }
}

/// `value` seconds as a duration; negative, infinite or NaN values are refused, naming `name`.
pub fn seconds(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Error::invalid(format!("{name} must be a finite number of seconds >= 0, not {value}")))
}

/// The queue's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub max_concurrency: usize,
    pub backoff: Backoff,
    /// Trailing-edge debounce of live changes (zero: none).
    pub debounce: Duration,
    /// The longest a burst of changes delays a key (with `debounce`).
    pub debounce_max: Duration,
    /// How long a ready key of the initial listing waits before it takes every other slot.
    pub aging: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_concurrency: 8,
            backoff: Backoff::default(),
            debounce: Duration::ZERO,
            debounce_max: Duration::ZERO,
            aging: Duration::from_secs(1),
        }
    }
}

/// A key handed out to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Popped {
    pub key: Key,
    /// The newest revision that triggered it: the cache must have applied it before the run.
    pub revision: i64,
    pub priority: Priority,
    /// Consecutive failures before this run.
    pub failures: u32,
    /// How long it waited, due, for a free slot (the queue's latency).
    pub waited: Duration,
}

/// What the queue did, for `stats()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Triggers accepted (changes, listed keys).
    pub triggers: u64,
    /// Runs handed out.
    pub started: u64,
    /// Runs finished, by outcome.
    pub done: u64,
    pub requeues: u64,
    pub retries: u64,
    pub terminal: u64,
    /// Keys waiting (due or not), running keys' pending triggers included.
    pub depth: usize,
    /// Keys running.
    pub running: usize,
    /// Initial-listing keys waiting to run.
    pub initial_depth: usize,
}

#[derive(Debug)]
struct Pending {
    /// A requested delay or a backoff.
    timer: Option<Instant>,
    /// First and last live change of the current burst (for the debounce).
    burst: Option<(Instant, Instant)>,
    priority: Priority,
    revision: i64,
    /// Where it is placed: (due, sequence number), in `waiting` or a ready set.
    placed: Option<(Instant, u64)>,
}

#[derive(Debug, Default)]
struct KeyState {
    running: bool,
    pending: Option<Pending>,
    failures: u32,
}

type Slots = BTreeSet<(Instant, u64, Key)>;

/// See the module doc.
#[derive(Debug)]
pub struct Scheduler {
    options: Options,
    keys: HashMap<Key, KeyState>,
    /// Pending keys not due yet, by due time.
    waiting: Slots,
    /// Due keys, by due time (oldest first).
    live: Slots,
    initial: Slots,
    seq: u64,
    last_was_initial: bool,
    jitter: Jitter,
    counts: Counts,
}

impl Scheduler {
    pub fn new(options: Options, jitter: Jitter) -> Self {
        Scheduler {
            options,
            keys: HashMap::new(),
            waiting: Slots::new(),
            live: Slots::new(),
            initial: Slots::new(),
            seq: 0,
            last_was_initial: false,
            jitter,
            counts: Counts::default(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &str) -> u32 {
        self.keys.get(key).map_or(0, |s| s.failures)
    }

    /// The earliest time a waiting key becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting.first().map(|(due, _, _)| *due)
    }

    /// `key` changed (at `revision`), or was listed.
    pub fn trigger(&mut self, key: Key, priority: Priority, revision: i64, now: Instant) {
        self.counts.triggers += 1;
        let options = self.options;
        let state = self.keys.entry(key.clone()).or_default();
        let pending = match &mut state.pending {
            Some(p) => p,
            None => {
                self.counts.depth += 1;
                if priority == Priority::Initial {
                    self.counts.initial_depth += 1;
                }
                state.pending.insert(Pending { timer: None, burst: None, priority, revision, placed: None })
            }
        };
        if priority == Priority::Live && pending.priority == Priority::Initial {
            pending.priority = Priority::Live;
            self.counts.initial_depth = self.counts.initial_depth.saturating_sub(1);
        }
        pending.revision = pending.revision.max(revision);
        if priority == Priority::Live && !options.debounce.is_zero() {
            let first = pending.burst.map_or(now, |(first, _)| first);
            pending.burst = Some((first, now));
        } else {
            pending.timer = Some(pending.timer.map_or(now, |t| t.min(now)));
        }
        if !state.running {
            self.place(key, now);
        }
    }

    /// When a pending key is due.
    fn due(options: &Options, pending: &Pending, now: Instant) -> Instant {
        let burst = pending.burst.map(|(first, last)| {
            let max = first + options.debounce_max.max(options.debounce);
            (last + options.debounce).min(max)
        });
        match (pending.timer, burst) {
            (Some(t), Some(b)) => t.min(b),
            (Some(t), None) => t,
            (None, Some(b)) => b,
            (None, None) => now, // not made: every pending has one of them
        }
    }

    /// (Re)place `key`'s pending trigger in `waiting` or a ready set.
    fn place(&mut self, key: Key, now: Instant) {
        let Some(state) = self.keys.get_mut(&key) else { return };
        let Some(pending) = &mut state.pending else { return };
        if let Some((due, seq)) = pending.placed.take() {
            let slot = (due, seq, key.clone());
            self.waiting.remove(&slot);
            self.live.remove(&slot);
            self.initial.remove(&slot);
        }
        let due = Self::due(&self.options, pending, now);
        self.seq += 1;
        pending.placed = Some((due, self.seq));
        let slot = (due, self.seq, key);
        if due > now {
            self.waiting.insert(slot);
        } else if pending.priority == Priority::Live {
            self.live.insert(slot);
        } else {
            self.initial.insert(slot);
        }
    }

    /// Move the keys that are due by `now` to the ready sets.
    fn promote(&mut self, now: Instant) {
        while let Some(first) = self.waiting.first() {
            if first.0 > now {
                break;
            }
            let Some(slot) = self.waiting.pop_first() else { break };
            let live = self
                .keys
                .get(&slot.2)
                .and_then(|s| s.pending.as_ref())
                .is_some_and(|p| p.priority == Priority::Live);
            if live {
                self.live.insert(slot);
            } else {
                self.initial.insert(slot);
            }
        }
    }

    /// The next key to run, if one is due and a slot is free. It is running from now until
    /// [`Scheduler::finish`].
    pub fn pop(&mut self, now: Instant) -> Option<Popped> {
        // First, so that `next_due` is in the future even when no slot is free.
        self.promote(now);
        if self.counts.running >= self.options.max_concurrency.max(1) {
            return None;
        }
        let aged = self.initial.first().is_some_and(|(due, _, _)| *due + self.options.aging <= now);
        let take_initial = match (self.live.is_empty(), self.initial.is_empty()) {
            (_, true) => false,
            (true, false) => true,
            (false, false) => aged && !self.last_was_initial,
        };
        let (due, _, key) = if take_initial { self.initial.pop_first()? } else { self.live.pop_first()? };
        self.last_was_initial = take_initial;
        let state = self.keys.get_mut(&key)?;
        let pending = state.pending.take()?;
        state.running = true;
        self.counts.running += 1;
        self.counts.started += 1;
        self.counts.depth = self.counts.depth.saturating_sub(1);
        if pending.priority == Priority::Initial {
            self.counts.initial_depth = self.counts.initial_depth.saturating_sub(1);
        }
        Some(Popped {
            key,
            revision: pending.revision,
            priority: pending.priority,
            failures: state.failures,
            waited: now.saturating_duration_since(due),
        })
    }

    /// `key`'s run ended with `outcome`. A key that is not running is left as it is.
    pub fn finish(&mut self, key: &str, outcome: Outcome, now: Instant) {
        let Some(key) = self.keys.get_key_value(key).map(|(k, _)| k.clone()) else { return };
        let Some(state) = self.keys.get_mut(&key).filter(|s| s.running) else { return };
        state.running = false;
        self.counts.running = self.counts.running.saturating_sub(1);
        let delay = match outcome {
            Outcome::Done => {
                self.counts.done += 1;
                state.failures = 0;
                None
            }
            Outcome::Terminal => {
                self.counts.terminal += 1;
                state.failures = 0;
                None
            }
            Outcome::RequeueAfter(delay) => {
                self.counts.requeues += 1;
                state.failures = 0;
                Some(delay)
            }
            Outcome::Retry(after) => {
                self.counts.retries += 1;
                state.failures = state.failures.saturating_add(1);
                Some(after.unwrap_or_else(|| self.options.backoff.delay(state.failures, self.jitter.draw())))
            }
        };
        if let Some(delay) = delay {
            let at = now + delay;
            if state.pending.is_none() {
                self.counts.depth += 1;
            }
            let pending = state.pending.get_or_insert(Pending {
                timer: None,
                burst: None,
                priority: Priority::Live,
                revision: 0,
                placed: None,
            });
            pending.timer = Some(pending.timer.map_or(at, |t| t.min(at)));
        }
        if state.pending.is_some() {
            self.place(key, now);
        } else if state.failures == 0 {
            self.keys.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests;
