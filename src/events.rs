//! Log records from the core (a watch reconnecting, a lease lost, the circuit opening),
//! queued for the Python side to hand to `logging` on its own thread: tokio threads never
//! touch Python. At most [`CAPACITY`] records wait; older ones are dropped and counted.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, OnceLock};

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

struct Queue {
    records: VecDeque<Record>,
    dropped: u64,
    pid: u32,
}

/// The records, how many were dropped, and the process they were queued in (a forked child
/// does not log its parent's records: the parent does).
static QUEUE: Mutex<Queue> = Mutex::new(Queue { records: VecDeque::new(), dropped: 0, pid: 0 });
static NOTIFY: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// The lock this module's tasks take, for the bindings to hold across forks (see `crate::process`).
pub fn fork_lock() -> &'static dyn crate::process::ForkLock {
    &QUEUE
}

/// The queue, emptied first if it holds another process's records.
fn queue() -> MutexGuard<'static, Queue> {
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let pid = crate::process::id();
    if queue.pid != pid {
        queue.records.clear();
        queue.dropped = 0;
        queue.pid = pid;
    }
    queue
}

/// Called after each record is queued (the bindings wake an event loop to drain them).
pub fn set_notifier(notify: Box<dyn Fn() + Send + Sync>) {
    let _ = NOTIFY.set(notify);
}

/// Queue a record.
pub fn emit(level: Level, message: impl Into<String>) {
    {
        let mut queue = queue();
        if queue.records.len() >= CAPACITY {
            queue.records.pop_front();
            queue.dropped += 1;
        }
        queue.records.push_back(Record { level, message: message.into() });
    }
    if let Some(notify) = NOTIFY.get() {
        notify();
    }
}

/// Take the queued records, and how many were dropped since the last drain.
pub fn drain() -> (Vec<Record>, u64) {
    let mut queue = queue();
    let dropped = std::mem::take(&mut queue.dropped);
    (queue.records.drain(..).collect(), dropped)
}
