//! Counts, errors and latencies of the calls a client makes to etcd, per operation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (the last bucket is everything above).
pub const BUCKETS: [f64; 11] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

#[derive(Default)]
struct Op {
    count: AtomicU64,
    errors: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len() + 1],
}

/// What one operation has done so far.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSnapshot {
    pub count: u64,
    pub errors: u64,
    pub seconds_total: f64,
    pub seconds_max: f64,
    /// Calls per latency bucket, by upper bound (`f64::INFINITY` for the last).
    pub buckets: Vec<(f64, u64)>,
}

/// Per-operation statistics, shared by every clone of a store.
#[derive(Default, Clone)]
pub struct Metrics {
    ops: Arc<Mutex<BTreeMap<&'static str, Arc<Op>>>>,
}

impl Metrics {
    fn op(&self, name: &'static str) -> Arc<Op> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).entry(name).or_default().clone()
    }

    /// Record one call.
    pub fn record(&self, name: &'static str, elapsed: Duration, ok: bool) {
        let op = self.op(name);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        op.count.fetch_add(1, Ordering::Relaxed);
        if !ok {
            op.errors.fetch_add(1, Ordering::Relaxed);
        }
        op.total_ns.fetch_add(ns, Ordering::Relaxed);
        op.max_ns.fetch_max(ns, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        op.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Every operation's figures.
    pub fn snapshot(&self) -> BTreeMap<&'static str, OpSnapshot> {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.iter()
            .map(|(name, op)| {
                let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
                let snapshot = OpSnapshot {
                    count: op.count.load(Ordering::Relaxed),
                    errors: op.errors.load(Ordering::Relaxed),
                    seconds_total: op.total_ns.load(Ordering::Relaxed) as f64 / 1e9,
                    seconds_max: op.max_ns.load(Ordering::Relaxed) as f64 / 1e9,
                    buckets: bounds.zip(op.buckets.iter().map(|b| b.load(Ordering::Relaxed))).collect(),
                };
                (*name, snapshot)
            })
            .collect()
    }
}

/// The watch figures of one client (every clone of it), kept by `fanout`.
#[derive(Debug, Default)]
pub struct WatchCounters {
    pub(crate) shared: AtomicUsize,
    pub(crate) catch_up: AtomicUsize,
    pub(crate) watchers: AtomicUsize,
    pub(crate) fell_behind: AtomicU64,
    pub(crate) detached: AtomicU64,
}

/// A snapshot of [`WatchCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchStats {
    /// Shared etcd watches open (one per watched prefix).
    pub shared: usize,
    /// Subscribers' own etcd watches, catching up from an older revision.
    pub catch_up: usize,
    /// Open subscriptions (watchers).
    pub watchers: usize,
    /// Subscribers ended so far because they fell behind.
    pub fell_behind: u64,
    /// Subscribers that fell behind a replay so far, and went on from their own watch.
    pub detached: u64,
}

impl WatchStats {
    /// etcd watches this client's watchers hold open.
    pub fn upstream(&self) -> usize {
        self.shared + self.catch_up
    }
}

impl WatchCounters {
    pub fn snapshot(&self) -> WatchStats {
        WatchStats {
            shared: self.shared.load(Ordering::Relaxed),
            catch_up: self.catch_up.load(Ordering::Relaxed),
            watchers: self.watchers.load(Ordering::Relaxed),
            fell_behind: self.fell_behind.load(Ordering::Relaxed),
            detached: self.detached.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_counts_errors_and_buckets() {
        let m = Metrics::default();
        m.record("range", Duration::from_micros(300), true);
        m.record("range", Duration::from_millis(30), false);
        let s = &m.snapshot()["range"];
        assert_eq!((s.count, s.errors), (2, 1));
        assert!((s.seconds_max - 0.03).abs() < 1e-9);
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 2);
        assert_eq!(s.buckets[2], (0.0005, 1));
    }
}
