//! `WatchStream`: batches of changes pulled by an `async for` in Python, from the prefix's
//! shared watch (`crate::fanout`). Each watcher builds its own Python objects from the one
//! decoded document (on the event loop's thread, which holds the GIL anyway): one JSON parse
//! per change, whatever the number of watchers, and no object shared between them.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::py::bridge::spawn;
use pyo3::types::{PyList, PyTuple};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::Error;
use crate::fanout::{Event, Subscription, DEFAULT_MAX_BACKLOG};
use crate::process::Local;
use crate::py::args::report_unreadable;
use crate::py::gc::without_gc;
use crate::py::shared;
use crate::py::typed::Shape;
use crate::selector::Query;

/// The most Python containers (dicts, lists, the event tuples) one batch's events make, as
/// far as a batch of more than one event goes: below CPython's threshold of 700 new
/// containers for a collection of the youngest generation. A batch is built with the
/// collector paused (`py::gc`); if it made more, the first collection after it would find the
/// whole batch alive, still being read, and promote it to the older generations, whose
/// collections then walk it again, and with a hundred watchers each holding a batch, full
/// collections come often (figures: docs/benchmarks.md, "Watch batches and the collector").
const BATCH_CONTAINERS: usize = 500;

/// What a watcher's events hold.
#[derive(Clone)]
pub enum Objects {
    /// Its own objects of this shape, built for it.
    Own(Shape),
    /// Read-only dicts shared with every other such watcher on the thread (`crate::py::shared`).
    Shared,
}

/// An open watch on a prefix. `next_batch()` returns the next list of
/// `(type, name, value, previous, revision)` tuples (type: `ADDED`, `MODIFIED`, `DELETED`,
/// `BOOKMARK`), or `None` once the watch has ended. It resumes by itself after connection
/// failures (see `watch.rs`). Every watch of a client on one prefix shares one etcd watch; one
/// that lets more than its backlog of events wait unread raises `WatchFellBehindError`.
///
/// In a process forked from the one that opened it, `next_batch()` raises `ForkedError` and
/// `close()` does nothing (the watch, and the task that may be waiting on it, are the
/// parent's).
#[pyclass(frozen, name = "WatchStream", module = "etcd_resources._core")]
pub struct PyWatchStream {
    /// `None` once closed: dropping the subscription leaves the shared watch (the last one
    /// to leave ends the etcd watch).
    stream: Arc<Mutex<Option<Subscription>>>,
    prefix: String,
    /// Length of the part of each key that is not the name.
    name_start: usize,
    /// Cancelled by `close()`; a pending `next_batch` waits on it.
    stop: Local<CancellationToken>,
    objects: Objects,
}

impl PyWatchStream {
    /// Open a watch on `prefix` from `start_revision` (0: every change after this call, however
    /// late the watch opens). Returns an awaitable, the opening already under way.
    /// Names are the keys without their first `name_start` bytes. At most `max_backlog` events
    /// (`None`: the default) wait unread before it is ended as fallen behind.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        py: Python<'_>,
        client: Client,
        prefix: String,
        start_revision: i64,
        name_start: usize,
        query: Option<Query>,
        objects: Objects,
        max_backlog: Option<usize>,
    ) -> PyResult<Bound<'_, PyAny>> {
        client.check()?;
        let max_backlog = max_backlog.unwrap_or(DEFAULT_MAX_BACKLOG);
        // "From now on" means from this call, not from when the watch opens: see
        // `Client::watch_start`. The hold (if any) ends with the opening, however it ends.
        let (start_revision, hold) =
            if start_revision > 0 { (start_revision, None) } else { client.watch_start() };
        spawn(py, async move {
            let opened = Subscription::open(client, &prefix, start_revision, query, max_backlog).await;
            drop(hold);
            let stream = opened?;
            let stop = Local::new(CancellationToken::new());
            Ok(PyWatchStream {
                stream: Arc::new(Mutex::new(Some(stream))),
                prefix,
                name_start,
                stop,
                objects,
            })
        })
    }
}

/// Holds the stream during a `next_batch`; when that call ends (returns, fails, or is
/// cancelled from Python) after `close()`, the stream is dropped with it.
struct DropWhenStopped<'a> {
    guard: tokio::sync::MutexGuard<'a, Option<Subscription>>,
    stop: CancellationToken,
}

impl Drop for DropWhenStopped<'_> {
    fn drop(&mut self) {
        if self.stop.is_cancelled() {
            self.guard.take();
        }
    }
}

struct Batch {
    prefix_len: usize,
    changes: Vec<Event>,
    objects: Objects,
}

impl<'py> IntoPyObject<'py> for Batch {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let list = PyList::empty(py);
        let mut unreadable = Vec::new();
        // Many new containers and no cycles (see `without_gc`): with a hundred watchers of one
        // prefix, each building its own objects of every change, the collector's passes over
        // the young documents cost more than building them.
        without_gc(py, || self.append_to(py, &list, &mut unreadable))?;
        report_unreadable(py, &unreadable)?;
        Ok(list.into_any())
    }
}

impl Batch {
    fn append_to(
        self,
        py: Python<'_>,
        list: &Bound<'_, PyList>,
        unreadable: &mut Vec<Error>,
    ) -> PyResult<()> {
        for Event { kind, change: c } in self.changes {
            if let Some(e) = &c.error {
                unreadable.push(crate::unreadable::at(e.clone(), c.revision));
                continue;
            }
            let name = c.key.get(self.prefix_len..).unwrap_or(&c.key);
            let shape = match &self.objects {
                Objects::Shared => {
                    list.append(shared::event(py, &c, kind, name)?)?;
                    continue;
                }
                Objects::Own(shape) => shape,
            };
            let own = |doc: &Option<serde_json::Value>| {
                doc.as_ref().map(|v| shape.value(py, Some(&c.key), v)).transpose()
            };
            list.append(PyTuple::new(
                py,
                [
                    shared::kind_name(py, kind).into_any(),
                    name.into_pyobject(py)?.into_any(),
                    own(&c.value)?.into_pyobject(py)?,
                    own(&c.previous)?.into_pyobject(py)?,
                    c.revision.into_pyobject(py)?.into_any(),
                ],
            )?)?;
        }
        Ok(())
    }
}

#[pymethods]
impl PyWatchStream {
    /// The next batch of changes, or `None` when the watch has ended (closed, or the client
    /// closed). Returns an awaitable; raises on a failure (e.g. `ExpiredError`, or
    /// `WatchFellBehindError` once more than its backlog waited unread).
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // Before anything else: in a forked child the parent's pending `next_batch` may hold
        // the stream's lock forever.
        self.stop.check()?;
        let stream = self.stream.clone();
        let stop = (*self.stop).clone();
        let prefix_len = self.name_start;
        let objects = self.objects.clone();
        spawn(py, async move {
            let mut guard = DropWhenStopped { guard: stream.lock().await, stop: stop.clone() };
            let Some(stream) = guard.guard.as_mut() else { return Ok(None) };
            let batch = tokio::select! {
                _ = stop.cancelled() => None,
                batch = stream.next_batch(BATCH_CONTAINERS) => batch?,
            };
            Ok(batch.map(|changes| Batch { prefix_len, changes, objects }))
        })
    }

    /// Stop the watch and end the etcd watch; a pending `next_batch()` returns `None`.
    fn close(&self) {
        if !self.stop.is_here() {
            return;
        }
        self.stop.cancel();
        // Free now if no `next_batch` holds the stream; otherwise that call frees it as it
        // ends (however it ends: see `DropWhenStopped`).
        if let Ok(mut stream) = self.stream.try_lock() {
            stream.take();
        }
    }

    fn __repr__(&self) -> String {
        let state = match self.stream.try_lock() {
            _ if self.stop.is_cancelled() => "closed",
            Ok(stream) => match stream.as_ref() {
                Some(s) if s.is_shared() => "open, shared",
                Some(_) => "open, catching up",
                None => "closed",
            },
            Err(_) => "open",
        };
        format!("WatchStream(prefix={:?}, {state})", self.prefix)
    }
}
