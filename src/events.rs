//! Log records from the core (a watch reconnecting, a lease lost, the circuit opening),
//! queued for the Python side to hand to `logging` on its own thread: tokio threads never
//! touch Python. At most [`CAPACITY`] records wait; older ones are dropped and counted.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

/// Records kept while nobody drains them.
pub const CAPACITY: usize = 1000;

/// How serious a record is (Python's logging levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info = 20,
    Warning = 30,
    Error = 40,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub level: Level,
    pub message: String,
}

static QUEUE: Mutex<(VecDeque<Record>, u64)> = Mutex::new((VecDeque::new(), 0));
static NOTIFY: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Called after each record is queued (the bindings wake an event loop to drain them).
pub fn set_notifier(notify: Box<dyn Fn() + Send + Sync>) {
    let _ = NOTIFY.set(notify);
}

/// Queue a record.
pub fn emit(level: Level, message: impl Into<String>) {
    {
        let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
        if queue.0.len() >= CAPACITY {
            queue.0.pop_front();
            queue.1 += 1;
        }
        queue.0.push_back(Record { level, message: message.into() });
    }
    if let Some(notify) = NOTIFY.get() {
        notify();
    }
}

/// Take the queued records, and how many were dropped since the last drain.
pub fn drain() -> (Vec<Record>, u64) {
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let dropped = std::mem::take(&mut queue.1);
    (queue.0.drain(..).collect(), dropped)
}
