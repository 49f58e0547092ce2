//! The [`Scheduler`] shared between the feed (which triggers keys), the runner (which waits
//! for the next key) and the reconciles (which finish keys), on tokio's clock.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::backoff::Jitter;
use super::scheduler::{Counts, Key, Options, Outcome, Popped, Priority, Scheduler};

/// See the module doc.
pub struct Queue {
    scheduler: Mutex<Scheduler>,
    /// Woken when a key is triggered or finishes (a slot or a key may be free).
    changed: Notify,
}

impl Queue {
    pub fn new(options: Options) -> Self {
        Queue { scheduler: Mutex::new(Scheduler::new(options, Jitter::from_clock())), changed: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Scheduler> {
        self.scheduler.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn trigger(&self, key: Key, priority: Priority, revision: i64) {
        self.lock().trigger(key, priority, revision, Instant::now());
        self.changed.notify_one();
    }

    /// Trigger many keys under one lock (a listing).
    pub fn trigger_all(&self, keys: impl IntoIterator<Item = (Key, i64)>, priority: Priority) {
        let now = Instant::now();
        let mut scheduler = self.lock();
        for (key, revision) in keys {
            scheduler.trigger(key, priority, revision, now);
        }
        drop(scheduler);
        self.changed.notify_one();
    }

    pub fn finish(&self, key: &str, outcome: Outcome) {
        self.lock().finish(key, outcome, Instant::now());
        self.changed.notify_one();
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts()
    }

    /// The next key to run if one is due and a slot is free, without waiting.
    pub fn try_next(&self) -> Option<Popped> {
        self.lock().pop(Instant::now())
    }

    /// The next key to run, waiting until one is due and a slot is free. Cancel-safe: a key is
    /// taken only when this returns.
    pub async fn next(&self) -> Popped {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (popped, due) = {
                let mut scheduler = self.lock();
                (scheduler.pop(Instant::now()), scheduler.next_due())
            };
            if let Some(popped) = popped {
                // Another waiter may take the next one.
                self.changed.notify_one();
                return popped;
            }
            match due {
                Some(due) => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn next_waits_for_a_due_key_and_for_a_free_slot() {
        let queue = Arc::new(Queue::new(Options { max_concurrency: 1, ..Options::default() }));
        queue.trigger("a".into(), Priority::Live, 1);
        let a = queue.next().await;
        queue.trigger("b".into(), Priority::Live, 1);
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the only slot is taken");
        let started = Instant::now();
        queue.finish(&a.key, Outcome::RequeueAfter(Duration::from_secs(5)));
        let b = waiting.await.expect("the waiter ends");
        assert_eq!((b.key.as_ref(), Instant::now() - started), ("b", Duration::ZERO));
        queue.finish(&b.key, Outcome::Done);
        let again = queue.next().await;
        assert_eq!((again.key.as_ref(), Instant::now() - started), ("a", Duration::from_secs(5)));
    }
}
