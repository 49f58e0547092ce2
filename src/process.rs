//! Fork safety: what belongs to one process.
//!
//! `fork()` copies the memory of a process but only the thread that called it. In the child,
//! the tokio runtime that ran the parent's calls has no threads, its timers never fire, and
//! etcd-client's connections are sockets shared with the parent, served by tasks that no longer
//! run. So:
//!
//! - [`id`] is the current process id, cached and forgotten in the child by a
//!   `pthread_atfork` handler (no system call per use);
//! - [`Local`] holds what a process made (a client's connection, a watch, a cache, a lease):
//!   in another process [`Local::check`] fails with [`Error::Forked`] at once, and dropping it
//!   leaks it, since its destructor could wake a task of the parent's runtime (writing to the
//!   parent's wake-up descriptors) or wait on a lock held by a thread the child does not have;
//! - the locks that runtime threads take ([`lock_across_fork`]) are held across every fork,
//!   as glibc does for `malloc`, so the child never inherits one held by a thread that is not
//!   there.

use std::any::Any;
use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use crate::error::{Error, Result};

/// This process's id; 0 until read (and again in a child after a fork).
static PID: AtomicU32 = AtomicU32::new(0);
static HOOKS: Once = Once::new();

/// A lock that is held across a fork.
pub trait ForkLock: Sync {
    /// Lock it; the returned guard unlocks when dropped.
    fn hold(&'static self) -> Box<dyn Any>;
}

impl<T: Send + 'static> ForkLock for Mutex<T> {
    fn hold(&'static self) -> Box<dyn Any> {
        Box::new(self.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Every lock held across a fork, in the order they are taken.
static LOCKS: Mutex<Vec<&'static dyn ForkLock>> = Mutex::new(Vec::new());

thread_local! {
    /// The guards taken before a fork, released after it (in the parent and in the child,
    /// by the thread that forked: the child's only thread).
    static HELD: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// The current process id.
pub fn id() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    init();
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// Register the fork handlers (once; done again does nothing). Call it before the process may
/// fork (the extension does, when it is imported). This module knows no lock of the modules
/// above it: each registers its own with [`lock_across_fork`] (the bindings register the
/// core's when the extension is imported, and their own).
pub fn init() {
    HOOKS.call_once(|| {
        #[cfg(unix)]
        // SAFETY: the handlers are plain functions that live as long as the program; they take
        // and release our own locks and store an atomic.
        unsafe {
            libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child));
        }
    });
}

/// Hold `lock` across every fork from now on. For locks that threads which do not survive a
/// fork (the runtime's) take; a lock they never take needs none. Locks are taken in the order
/// they were registered: never hold one of them while taking another.
pub fn lock_across_fork(lock: &'static dyn ForkLock) {
    LOCKS.lock().unwrap_or_else(|p| p.into_inner()).push(lock);
}

extern "C" fn before_fork() {
    let locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    let guards: Vec<Box<dyn Any>> = locks.iter().map(|lock| lock.hold()).collect();
    let _ = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        held.extend(guards);
        held.push(Box::new(locks));
    });
}

fn release() {
    let _ = HELD.try_with(|held| {
        // The list's own guard first, then the others in the reverse order of taking.
        while let Some(guard) = held.borrow_mut().pop() {
            drop(guard);
        }
    });
}

extern "C" fn after_fork_in_parent() {
    release();
}

extern "C" fn after_fork_in_child() {
    PID.store(0, Ordering::Relaxed);
    release();
}

/// A value that belongs to the process that made it (see the module's doc): usable there;
/// elsewhere (a child forked from that process) [`check`](Self::check) fails and dropping
/// leaks it.
pub struct Local<T> {
    pid: u32,
    value: ManuallyDrop<T>,
}

impl<T> Local<T> {
    pub fn new(value: T) -> Self {
        Local { pid: id(), value: ManuallyDrop::new(value) }
    }

    /// The process that made it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this is the process that made it.
    pub fn is_here(&self) -> bool {
        self.pid == id()
    }

    /// `Err(Error::Forked)` unless this is the process that made it.
    pub fn check(&self) -> Result<()> {
        if self.is_here() {
            Ok(())
        } else {
            Err(Error::Forked { pid: self.pid, here: id() })
        }
    }
}

/// The value, in any process: reading plain fields of it is harmless anywhere; what uses its
/// connections or tasks calls [`Local::check`] first.
impl<T> Deref for Local<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Local<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Drop for Local<T> {
    fn drop(&mut self) {
        if self.is_here() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
        // Elsewhere it is leaked: see the module's doc.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_value_is_usable_and_dropped_in_its_process() {
        use std::sync::Arc;
        let value = Arc::new(1);
        let local = Local::new(value.clone());
        assert!(local.is_here());
        assert_eq!(local.pid(), std::process::id());
        assert!(local.check().is_ok());
        assert_eq!(**local, 1);
        drop(local);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    #[test]
    fn elsewhere_it_fails_and_is_leaked() {
        use std::sync::Arc;
        let value = Arc::new(1);
        // As if made by the parent of a fork.
        let local = Local { pid: id().wrapping_add(1), value: ManuallyDrop::new(value.clone()) };
        assert_eq!(local.check(), Err(Error::Forked { pid: id().wrapping_add(1), here: id() }));
        drop(local);
        assert_eq!(Arc::strong_count(&value), 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_forked_child_knows_its_id_and_inherits_no_held_lock() {
        static LOCK: Mutex<u32> = Mutex::new(0);
        let parent = id();
        lock_across_fork(&LOCK);
        // A thread that keeps taking the lock while we fork: without the fork handlers the
        // child would now and then inherit it held, and hang on it.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    *LOCK.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
            })
        };
        for _ in 0..20 {
            // SAFETY: the child only takes a lock, reads its id and exits.
            let child = unsafe { libc::fork() };
            assert!(child >= 0, "fork failed");
            if child == 0 {
                let ok = id() != parent && id() == std::process::id() && LOCK.try_lock().is_ok();
                // SAFETY: ends the child without running the parent's destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            let waited = unsafe { libc::waitpid(child, &mut status, 0) };
            assert_eq!(waited, child);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status}");
        }
        stop.store(true, Ordering::Relaxed);
        let _ = busy.join();
        assert_eq!(id(), parent);
    }
}
