//! Running Rust futures for asyncio: [`spawn`] returns an `asyncio.Future` and runs the Rust
//! future on pyo3-async-runtimes' tokio runtime.
//!
//! We do not use `pyo3_async_runtimes::future_into_py` because it attaches to the interpreter
//! from tokio's blocking pool, where nothing can tell when the last such attach is done; at
//! interpreter exit, a tokio thread attaching while Python finalizes crashes the process (seen
//! here: 2 runs in 20 crashed). Here tokio threads never touch Python: a finished future sends
//! its result to one delivery thread, which attaches once per batch, builds the Python values
//! and hands them to each event loop with one `call_soon_threadsafe`. A count of futures not
//! yet delivered lets [`quiesce`] wait at exit until no thread will touch Python again.
//!
//! Cancelling the asyncio future drops the Rust future (a done-callback signals it).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;
use pyo3::IntoPyObjectExt;
use tokio::sync::oneshot;

use crate::error::Result;

/// Futures spawned and not yet delivered (or dropped).
static PENDING: AtomicUsize = AtomicUsize::new(0);
static DELIVERY: OnceLock<mpsc::Sender<Completion>> = OnceLock::new();
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SET_RESULTS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Counts one pending future while alive.
struct Pending;

impl Pending {
    fn new() -> Self {
        PENDING.fetch_add(1, Ordering::AcqRel);
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING.fetch_sub(1, Ordering::AcqRel);
    }
}

type MakeResult = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A finished future on its way to its event loop.
struct Completion {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    make: MakeResult,
    _pending: Pending,
}

fn delivery() -> &'static mpsc::Sender<Completion> {
    DELIVERY.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Completion>();
        std::thread::Builder::new()
            .name("etcd-resources-delivery".into())
            .spawn(move || deliver_forever(rx))
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("etcd-resources: cannot start the delivery thread: {e}"));
        tx
    })
}

fn deliver_forever(rx: mpsc::Receiver<Completion>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        Python::attach(|py| deliver(py, batch));
    }
}

/// Build the results and hand them to their loops: one `call_soon_threadsafe` per loop.
fn deliver(py: Python<'_>, batch: Vec<Completion>) {
    let mut by_loop: HashMap<usize, (Py<PyAny>, Vec<Bound<'_, PyAny>>)> = HashMap::new();
    let mut done = Vec::with_capacity(batch.len());
    for c in batch {
        let (ok, value) = match (c.make)(py) {
            Ok(v) => (true, v),
            Err(e) => (false, e.into_value(py).into_any()),
        };
        let key = c.event_loop.as_ptr() as usize;
        let entry = by_loop
            .entry(key)
            .or_insert_with(|| (c.event_loop.clone_ref(py), Vec::new()));
        if let Ok(item) = (c.future.clone_ref(py), ok, value).into_pyobject(py) {
            entry.1.push(item.into_any());
        }
        done.push(c._pending);
    }
    let Ok(setter) = SET_RESULTS.get_or_try_init(py, || {
        wrap_pyfunction!(_set_results, py).map(|f| f.into_any().unbind())
    }) else {
        return;
    };
    for (_, (event_loop, items)) in by_loop {
        let Ok(list) = PyList::new(py, items) else {
            continue;
        };
        // A closed loop refuses: its futures are gone with it, nothing is left to do.
        let _ = event_loop.call_method1(py, "call_soon_threadsafe", (setter, list));
    }
    drop(done);
}

/// Runs on the event loop: complete each future that is not cancelled.
#[pyfunction]
fn _set_results(items: &Bound<'_, PyList>) -> PyResult<()> {
    for item in items.iter() {
        let (future, ok, value): (Bound<'_, PyAny>, bool, Bound<'_, PyAny>) = item.extract()?;
        if future.call_method0("done")?.is_truthy()? {
            continue;
        }
        if ok {
            future.call_method1("set_result", (value,))?;
        } else {
            future.call_method1("set_exception", (value,))?;
        }
    }
    Ok(())
}

/// The done-callback of each asyncio future: on cancel, drop the Rust future.
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

/// Run `fut` on the runtime; return an `asyncio.Future` of its result on the running loop.
pub fn spawn<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let get_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
    })?;
    let event_loop = get_loop.call0(py)?;
    let future = event_loop.call_method0(py, "create_future")?;
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    future.call_method1(
        py,
        "add_done_callback",
        (CancelOnDone {
            tx: Mutex::new(Some(cancel_tx)),
        },),
    )?;
    let result_future = future.clone_ref(py).into_bound(py);
    let pending = Pending::new();
    pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
        let result = tokio::select! {
            result = fut => result,
            _ = cancel_rx => return, // cancelled in Python: `pending` and the handles drop here
        };
        let make: MakeResult = Box::new(move |py| match result {
            Ok(value) => value.into_py_any(py),
            Err(e) => Err(e.into()),
        });
        let completion = Completion {
            event_loop,
            future,
            make,
            _pending: pending,
        };
        // Fails only if the delivery thread could not start; the completion then drops.
        let _ = delivery().send(completion);
    });
    Ok(result_future)
}

/// Wait, without the GIL, until every spawned future has been delivered or dropped, up to
/// `timeout`. Returns whether that happened.
pub fn quiesce(py: Python<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    py.detach(|| loop {
        if PENDING.load(Ordering::Acquire) == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    })
}
