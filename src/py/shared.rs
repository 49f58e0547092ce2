//! Python objects of watch changes, built once and shared by every read-only watcher on this
//! thread (`watch(..., readonly=True)`).
//!
//! Every watcher of a prefix gets the same decoded change from the prefix's shared watch (an
//! `Arc<Change>`, see `crate::fanout`); a plain watcher builds its own dicts from it, so a
//! hundred watchers of every change build a hundred copies of each document on the one event
//! loop thread, and each gets a tenth of one watcher's rate. A read-only watcher takes the
//! change's objects from here: the first to read a change builds its documents as read-only
//! dicts and lists (`etcd_resources.readonly`, as the informer cache shares its documents:
//! `crate::py::built`), the others get the same objects. No watcher's edit can reach another:
//! none can edit.
//!
//! Kept on the thread that holds the GIL, the last [`KEPT`] changes, oldest first out; the
//! `Arc` is kept with its objects, so its address names that change alone while kept.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use serde_json::Value;

use crate::py::built::untrack;
use crate::py::convert::to_python_read_only;
use crate::watch::{Change, ChangeType};

/// Changes whose objects are kept, at most: watchers read a change within their backlog
/// (1,000 by default) of each other, or are ended. About 28 MB of objects at 2 KB LabWorkers
/// with their previous versions.
const KEPT: usize = 2048;

#[derive(Default)]
struct Shared {
    /// By the address of the change (which the `Arc` kept with it keeps unique): the event as
    /// a watcher's batch holds it, `(type, name, value, previous, revision)`, of the change's
    /// own type.
    events: HashMap<usize, (Arc<Change>, Py<PyTuple>)>,
    /// Addresses in the order they were kept.
    order: VecDeque<usize>,
}

thread_local! {
    static SHARED: RefCell<Shared> = RefCell::new(Shared::default());
}

/// A change type's name, one string object for all.
pub fn kind_name(py: Python<'_>, kind: ChangeType) -> Bound<'_, PyString> {
    PyString::intern(py, kind.name())
}

/// The event `(type, name, value, previous, revision)` of `change` for a watcher that sees it
/// as `kind` (a selector may make a change an `ADDED` or a `DELETED` for it): the documents,
/// and for the change's own type the whole tuple, shared with every other read-only watcher.
/// The name in it is the first reader's, which is every reader's: the watchers of one shared
/// watch cut names at the same length (a prefix ends with `/` and a storage backend's key
/// prefix holds none, so the watched prefix says where its names begin).
pub fn event<'py>(
    py: Python<'py>,
    change: &Arc<Change>,
    kind: ChangeType,
    name: &str,
) -> PyResult<Bound<'py, PyTuple>> {
    let id = Arc::as_ptr(change) as usize;
    let hit = SHARED.with(|shared| shared.borrow().events.get(&id).map(|(_, e)| e.clone_ref(py)));
    let shared = match hit {
        Some(event) => event.into_bound(py),
        None => {
            let event = build(py, change, name)?;
            keep(change, event.clone().unbind());
            event
        }
    };
    if kind == change.kind {
        return Ok(shared);
    }
    let item = |i| shared.get_item(i);
    PyTuple::new(py, [kind_name(py, kind).into_any(), item(1)?, item(2)?, item(3)?, item(4)?])
}

fn build<'py>(py: Python<'py>, change: &Change, name: &str) -> PyResult<Bound<'py, PyTuple>> {
    let document = |doc: &Option<Value>| -> PyResult<Bound<'py, PyAny>> {
        let Some(doc) = doc else { return Ok(py.None().into_bound(py)) };
        let obj = to_python_read_only(py, doc)?;
        untrack(&obj);
        Ok(obj)
    };
    PyTuple::new(
        py,
        [
            kind_name(py, change.kind).into_any(),
            PyString::new(py, name).into_any(),
            document(&change.value)?,
            document(&change.previous)?,
            change.revision.into_pyobject(py)?.into_any(),
        ],
    )
}

fn keep(change: &Arc<Change>, event: Py<PyTuple>) {
    let id = Arc::as_ptr(change) as usize;
    // Dropped after the borrow ends: freeing Python objects must not happen inside it.
    let evicted = SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        let mut evicted = Vec::new();
        while shared.order.len() >= KEPT {
            let Some(oldest) = shared.order.pop_front() else { break };
            evicted.extend(shared.events.remove(&oldest));
        }
        shared.events.insert(id, (change.clone(), event));
        shared.order.push_back(id);
        evicted
    });
    drop(evicted);
}
