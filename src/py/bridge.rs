//! Running Rust futures for asyncio: [`spawn`] returns an `asyncio.Future` of a Rust future's
//! result, run on this process's tokio runtime (`runtime.rs`).
//!
//! Tokio threads never touch Python. A finished future pushes its result onto the queue of
//! its event loop and writes one byte to a socket the loop watches (`loop.add_reader`); the
//! loop thread, which holds the GIL anyway, drains the queue, builds the Python values and
//! completes the futures. So:
//! - one cross-thread wake per batch of results, and no GIL hand-off between threads;
//! - nothing can attach to a finalizing interpreter: at exit there is no tokio thread that
//!   calls into Python (`pyo3_async_runtimes::future_into_py` completes futures from tokio's
//!   blocking pool, and crashed 2 exits in 20 here with a watch open; see docs/decisions.md);
//! - a future that is ready on its first poll (the embedded store, a closed client) runs on
//!   the calling thread and completes on the loop's next turn (`call_soon`), without a thread
//!   hop; the `await` still yields once, so other tasks are not starved.
//!
//! Cancelling the asyncio future drops the Rust future (a done-callback signals it).
//!
//! After a fork, the child's loop gets a queue and a socket pair of its own; the parent's (its
//! sockets are shared with the parent) are never written to, read or closed in the child.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::IntoPyObjectExt;
use tokio::sync::oneshot;

use crate::error::Result;
use crate::process::{self, Local};
use crate::py::runtime;
use crate::py::trace::{Stage, Stamps};

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static COMPLETE_SOON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `weakref.WeakKeyDictionary` from event loop to its `LoopQueue`.
static QUEUES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// The queue of the loop used last, with a strong reference to that loop so its address
/// cannot be reused by another loop while cached, and the process that used it.
static LAST: Mutex<Option<Last>> = Mutex::new(None);

struct Last {
    pid: u32,
    event_loop: Py<PyAny>,
    queue: Arc<Queue>,
}

/// Hold the locks runtime threads take across forks: the core's (log records, informers,
/// watch hubs, the process's shutdown token) and `LAST` (taken to wake the loop for log
/// records). Each module hands over its own lock; `process` lists none of them.
pub fn init() {
    process::init();
    for lock in [
        crate::events::fork_lock(),
        crate::informer::fork_lock(),
        crate::fanout::fork_lock(),
        crate::client::fork_lock(),
        crate::unreadable::fork_lock(),
    ] {
        process::lock_across_fork(lock);
    }
    process::lock_across_fork(&LAST);
}

type MakeResult = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A finished future waiting for its loop.
struct Completion {
    future: Py<PyAny>,
    make: MakeResult,
    stamps: Stamps,
}

/// The results waiting for one event loop, and the socket pair that wakes it.
struct Queue {
    items: Mutex<VecDeque<Completion>>,
    /// Set when a wake-up byte is on its way; cleared by the loop before it drains.
    notified: AtomicBool,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl Queue {
    fn new() -> std::io::Result<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Queue { items: Mutex::new(VecDeque::new()), notified: AtomicBool::new(false), wake_tx, wake_rx })
    }

    fn items(&self) -> MutexGuard<'_, VecDeque<Completion>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From any thread: queue a result and wake the loop if it is not already woken.
    fn push(&self, completion: Completion) {
        self.items().push_back(completion);
        self.wake();
    }

    /// From any thread: make the loop run its reader (to deliver results, or log records).
    fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // A full socket buffer means wake-ups are already pending: nothing is lost.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }
}

/// The reader callback registered on an event loop: completes the queued futures. In a
/// forked child (running a loop it inherited, which asyncio does not support) it does nothing:
/// the queue and its sockets are the parent's.
#[pyclass(frozen)]
struct LoopQueue {
    queue: Local<Arc<Queue>>,
}

#[pymethods]
impl LoopQueue {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        if !self.queue.is_here() {
            return Ok(());
        }
        let mut buf = [0u8; 256];
        loop {
            match (&self.queue.wake_rx).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: drained
            }
        }
        // Clear before draining: a push after this point sends a new wake-up.
        self.queue.notified.store(false, Ordering::Release);
        let batch: Vec<Completion> = self.queue.items().drain(..).collect();
        for mut c in batch {
            c.stamps.mark(Stage::Woken);
            let result = (c.make)(py);
            c.stamps.mark(Stage::Built);
            complete(py, c.future.bind(py), result)?;
            c.stamps.mark(Stage::Set);
            c.stamps.finish();
        }
        crate::py::logs::flush(py)
    }
}

/// Wake the event loop used last, so it logs the core's queued records (called by
/// `crate::events` from any thread; touches no Python).
pub fn wake_last_loop() {
    if let Ok(last) = LAST.try_lock() {
        if let Some(last) = last.as_ref().filter(|last| last.pid == process::id()) {
            last.queue.wake();
        }
    }
}

/// Set a future's result or exception, unless it is already done (cancelled).
fn complete(py: Python<'_>, future: &Bound<'_, PyAny>, result: PyResult<Py<PyAny>>) -> PyResult<()> {
    if future.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match result {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,))?,
        Err(err) => future.call_method1(pyo3::intern!(py, "set_exception"), (err.into_value(py),))?,
    };
    Ok(())
}

/// The queue of `event_loop`, registering its reader on first use.
fn queue_of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Queue>> {
    // The lock is never held across a call into Python: Python may switch threads there, and
    // another thread waiting for this lock while holding the GIL would deadlock us.
    let pid = process::id();
    {
        let last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = last.as_ref() {
            if last.pid == pid && last.event_loop.bind(py).is(event_loop) {
                return Ok(last.queue.clone());
            }
        }
    }
    let queues = QUEUES.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("weakref")?.getattr("WeakKeyDictionary")?.call0()?.unbind())
    })?;
    let queues = queues.bind(py);
    let found = queues.call_method1("get", (event_loop,))?;
    let found =
        if found.is_none() { None } else { Some(found.cast_into::<LoopQueue>().map_err(PyErr::from)?) };
    let queue = match found {
        Some(reader) if reader.get().queue.is_here() => (*reader.get().queue).clone(),
        // None yet, or the parent's (a loop inherited through a fork): a new one, whose reader
        // takes the parent's place in `QUEUES` (the parent's stays registered on the loop,
        // and idle: removing it would change the epoll set the child shares with the parent).
        _ => {
            let queue = Arc::new(Queue::new().map_err(|e| crate::error::Error::Unavailable {
                message: format!("cannot make a wake-up socket: {e}"),
                code: None,
            })?);
            let reader = Bound::new(py, LoopQueue { queue: Local::new(queue.clone()) })?;
            event_loop.call_method1("add_reader", (queue.wake_rx.as_raw_fd(), &reader))?;
            queues.set_item(event_loop, reader)?;
            queue
        }
    };
    let last = Last { pid, event_loop: event_loop.clone().unbind(), queue: queue.clone() };
    let previous = LAST.lock().unwrap_or_else(|p| p.into_inner()).replace(last);
    match previous {
        // The parent's, in a forked child: left as it is (see `crate::process`).
        Some(previous) if previous.pid != pid => std::mem::forget(previous),
        previous => drop(previous), // the old loop's reference goes outside the lock
    }
    Ok(queue)
}

/// Runs on the loop: complete a future (unless cancelled meanwhile).
#[pyfunction]
fn _complete_soon(future: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
    let py = future.py();
    let result = if ok { Ok(value.unbind()) } else { Err(PyErr::from_value(value)) };
    complete(py, future, result)
}

/// The done-callback of each pending asyncio future: on cancel, drop the Rust future.
#[pyclass]
struct CancelOnDone {
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            if let Some(tx) = self.tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(());
            }
        }
        Ok(())
    }
}

fn make_result<T>(result: Result<T>) -> MakeResult
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    Box::new(move |py| match result {
        Ok(value) => value.into_py_any(py),
        Err(e) => Err(e.into()),
    })
}

/// Run `fut` on the runtime; return an `asyncio.Future` of its result on the running loop.
/// The first poll happens here, on the calling thread: for futures that are often ready at
/// once (a batch already received, the embedded store).
pub fn spawn<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn_with(py, fut, true)
}

/// [`spawn`] for a call on `client`: polled here only on the embedded store. A client made
/// in another process (the parent of a fork) raises `ForkedError` here, at once. A call to etcd
/// is never ready at once, and its first poll (cloning the channel, encoding the request,
/// waking the connection's task) is better done on tokio's threads than on the event loop's,
/// which is the one thread all of Python's tasks share (concurrent gets take less time that
/// way: docs/benchmarks.md, "Figures behind the code").
pub fn spawn_call<'py, F, T>(
    py: Python<'py>,
    client: &crate::client::Client,
    fut: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    client.check()?;
    spawn_with(py, fut, client.is_memory())
}

fn spawn_with<'py, F, T>(py: Python<'py>, fut: F, poll_here: bool) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let mut stamps = Stamps::start();
    // Writes made for a shard's holder carry its fence (see `crate::store::fence`).
    let fut = crate::store::fence::scope(crate::py::fence::current(py)?, fut);
    let get_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
    })?;
    let event_loop = get_loop.bind(py).call0()?;
    let future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;

    // Poll once here: what is ready at once completes without a thread hop.
    let process_runtime = runtime::current()?;
    let runtime = &process_runtime.runtime;
    let mut fut = Box::pin(fut);
    let first = if poll_here {
        let _context = runtime.enter();
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    } else {
        Poll::Pending
    };
    if let Poll::Ready(result) = first {
        // Complete on the next turn of the loop, not now: an `await` then still yields, so a
        // tight loop of calls on the embedded store cannot starve the loop's other tasks.
        // Ready at once: no hand-over, no wake-up.
        stamps.mark_all(&[Stage::Handing, Stage::Started, Stage::Answered, Stage::Woken]);
        let value = match make_result(result)(py) {
            Ok(value) => (true, value),
            Err(err) => (false, err.into_value(py).into_any()),
        };
        stamps.mark(Stage::Built);
        stamps.mark(Stage::Set);
        stamps.finish();
        let setter = COMPLETE_SOON
            .get_or_try_init(py, || wrap_pyfunction!(_complete_soon, py).map(|f| f.into_any().unbind()))?;
        event_loop.call_method1(pyo3::intern!(py, "call_soon"), (setter, &future, value.0, value.1))?;
        return Ok(future);
    }

    let queue = queue_of(py, &event_loop)?;
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    future.call_method1("add_done_callback", (CancelOnDone { tx: Mutex::new(Some(cancel_tx)) },))?;
    let handle = future.clone().unbind();
    let running = process_runtime.count_running();
    stamps.mark(Stage::Handing);
    runtime.spawn(async move {
        let _running = running;
        stamps.mark(Stage::Started);
        let result = tokio::select! {
            result = fut => result,
            _ = cancel_rx => return, // cancelled in Python; `handle` is released without the GIL
        };
        stamps.mark(Stage::Answered);
        queue.push(Completion { future: handle, make: make_result(result), stamps });
    });
    Ok(future)
}

/// Wait, without the GIL, up to `timeout` until no task spawned in this process is running
/// (a forked child does not wait for its parent's). Returns whether that happened. (Tasks
/// never call into Python; this only lets closed calls wind down.)
pub fn quiesce(py: Python<'_>, timeout: Duration) -> bool {
    let Some(process_runtime) = runtime::existing() else { return true };
    let deadline = Instant::now() + timeout;
    py.detach(|| loop {
        if process_runtime.running() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    })
}
