//! Where a call's time goes (benchmark builds only, cargo feature `bench`): the bridge stamps
//! each call at every hand-over, from the call into Rust on the event loop's thread to its
//! future's `set_result`, while `_trace(True)` is on. `benches/breakdown.py` reads them back
//! with `_trace_take()` and adds its own stamps before the call and after the `await`, taken
//! with `_trace_now()` on the same clock. Without the feature, [`Stamps`] is empty and every
//! method is a no-op the compiler removes.

#[cfg(feature = "bench")]
pub use on::*;

/// The stages stamped, in the order a call passes them.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
pub enum Stage {
    /// The bridge entered (the loop's thread), after the method parsed its arguments.
    Enter = 0,
    /// About to hand the task to tokio (the asyncio future made, its cancel callback added).
    Handing,
    /// The task's first poll on a tokio thread (the hand-over: tokio's queue, a worker woken).
    Started,
    /// The store's answer is in (gRPC and etcd done, bytes not yet decoded to Python).
    Answered,
    /// The loop's reader runs (the result queued, a wake-up byte written, `epoll` saw it).
    Woken,
    /// The Python value built (a document parsed into dicts).
    Built,
    /// `set_result` done: the awaiting task is scheduled.
    Set,
}

/// How many stages there are.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
pub const STAGES: usize = 7;

/// A call's stamps (nothing without the `bench` feature, or while tracing is off).
#[derive(Default)]
pub struct Stamps(#[cfg(feature = "bench")] Option<Box<[u64; STAGES]>>);

#[cfg(not(feature = "bench"))]
impl Stamps {
    #[inline(always)]
    pub fn start() -> Self {
        Stamps()
    }
    #[inline(always)]
    pub fn mark(&mut self, _stage: Stage) {}
    #[inline(always)]
    pub fn mark_all(&mut self, _stages: &[Stage]) {}
    #[inline(always)]
    pub fn finish(self) {}
}

#[cfg(feature = "bench")]
mod on {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;

    use pyo3::prelude::*;

    use super::{Stage, Stamps, STAGES};

    static ON: AtomicBool = AtomicBool::new(false);
    static RECORDS: Mutex<Vec<[u64; STAGES]>> = Mutex::new(Vec::new());
    static BASE: OnceLock<Instant> = OnceLock::new();

    fn now() -> u64 {
        BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }

    impl Stamps {
        /// Start stamping a call, if tracing is on.
        pub fn start() -> Self {
            if ON.load(Ordering::Relaxed) {
                let mut stamps = Box::new([0u64; STAGES]);
                stamps[Stage::Enter as usize] = now();
                Stamps(Some(stamps))
            } else {
                Stamps(None)
            }
        }

        pub fn mark(&mut self, stage: Stage) {
            if let Some(stamps) = self.0.as_mut() {
                stamps[stage as usize] = now();
            }
        }

        /// Stamp several stages with one instant (stages a call skipped).
        pub fn mark_all(&mut self, stages: &[Stage]) {
            if let Some(stamps) = self.0.as_mut() {
                let t = now();
                for &stage in stages {
                    stamps[stage as usize] = t;
                }
            }
        }

        /// Keep the call's stamps for `_trace_take`.
        pub fn finish(self) {
            if let Some(stamps) = self.0 {
                RECORDS.lock().unwrap_or_else(|p| p.into_inner()).push(*stamps);
            }
        }
    }

    /// Turn stamping on or off (and drop what was kept).
    #[pyfunction]
    pub fn _trace(on: bool) {
        RECORDS.lock().unwrap_or_else(|p| p.into_inner()).clear();
        ON.store(on, Ordering::Relaxed);
    }

    /// Nanoseconds on the stamps' clock.
    #[pyfunction]
    pub fn _trace_now() -> u64 {
        now()
    }

    /// The stamps of the calls finished since the last take, in the order they finished.
    #[pyfunction]
    pub fn _trace_take() -> Vec<[u64; STAGES]> {
        std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
