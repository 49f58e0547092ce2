//! Fenced writes: a write made on behalf of a lease holder commits only while the holder's
//! record is still attached to its lease, in the same transaction (etcd's `Compare` on the
//! record's lease). A replica of a controller that was paused past its lease's expiry, and
//! resumes in the middle of a reconcile, has its writes refused with [`Error::Fenced`]
//! instead of overwriting the work of the replica that took its shard over (the fencing token
//! of Kleppmann's "How to do distributed locking", with etcd's lease as the token).
//!
//! The fence travels with the task making the write (a tokio task-local, set by the Python
//! bridge from the caller's context variable), so every write path of every store honours it
//! without each signature carrying it.

use std::future::Future;

use crate::error::Error;

/// The record a write depends on, and the lease it must still be attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: Vec<u8>,
    pub lease: i64,
}

tokio::task_local! {
    static FENCE: Fence;
}

/// The fence of the running task, if its writes are fenced.
pub fn current() -> Option<Fence> {
    FENCE.try_with(Clone::clone).ok()
}

/// Run `fut` with its writes fenced on `fence` (unfenced when `None`).
pub async fn scope<F: Future>(fence: Option<Fence>, fut: F) -> F::Output {
    match fence {
        Some(fence) => FENCE.scope(fence, fut).await,
        None => fut.await,
    }
}

impl Fence {
    /// The error for a write the fence refused.
    pub fn refused(&self, key: &[u8]) -> Error {
        Error::Fenced {
            key: String::from_utf8_lossy(key).into_owned(),
            fence: String::from_utf8_lossy(&self.key).into_owned(),
        }
    }
}
