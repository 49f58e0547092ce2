//! The tokio runtime that runs every Rust future of the extension: one per process, ours.
//!
//! Made on first use in each process: after a fork the child's first call makes its own (the
//! parent's has no threads in the child: its workers, blocking pool and timers stayed in the
//! parent). The parent's is left as it is, never dropped there (see `crate::process`). It is
//! never dropped at exit either: its threads never touch Python, and `_shutdown` lets them go
//! quiet first (see `bridge`). Why not pyo3-async-runtimes' global runtime: docs/decisions.md,
//! "One runtime per process".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::process;

/// The runtime of one process, and how many of the bridge's tasks run on it.
pub struct ProcessRuntime {
    pid: u32,
    pub runtime: Runtime,
    running: AtomicUsize,
}

/// The current process's runtime. Taken only by threads that hold the GIL (the one that forks
/// holds it too), so never held across a fork.
static CURRENT: Mutex<Option<&'static ProcessRuntime>> = Mutex::new(None);

/// This process's runtime, made on first use.
pub fn current() -> Result<&'static ProcessRuntime> {
    let pid = process::id();
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = *current {
        if rt.pid == pid {
            return Ok(rt);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("etcd-resources")
        .build()
        .map_err(|e| Error::Unavailable {
            message: format!("cannot start the tokio runtime: {e}"),
            code: None,
        })?;
    // Leaked: it lives as long as the process (a forked child leaves its parent's alone).
    let rt: &'static ProcessRuntime =
        Box::leak(Box::new(ProcessRuntime { pid, runtime, running: AtomicUsize::new(0) }));
    *current = Some(rt);
    Ok(rt)
}

/// This process's runtime, if it has made one.
pub fn existing() -> Option<&'static ProcessRuntime> {
    let current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    current.filter(|rt| rt.pid == process::id())
}

impl ProcessRuntime {
    /// Tasks of the bridge spawned on it and not finished.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Count one running task while the guard lives.
    pub fn count_running(&'static self) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(self)
    }
}

/// Counts one running task while alive.
pub struct Running(&'static ProcessRuntime);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}
