//! Python objects of the informer cache's documents, built once per version and shared by
//! every reader.
//!
//! The cache holds documents compactly (their bytes, see `crate::informer`); a read builds
//! Python objects from the bytes. An [`Entry`] is replaced, never changed, when the resource
//! changes, so the `Arc` is the version: the first read of a version builds its dicts and
//! lists, read-only (`etcd_resources.readonly`: a `dict` and a `list` that refuse changes),
//! and keeps them here; every later read of that version gets the same objects, at the cost
//! of a reference. No reader's edit can reach another (they cannot edit), and nothing is
//! copied per reader: a copy of a document costs more than a whole indexed query of a
//! thousand documents should (figures: docs/benchmarks.md, "Figures behind the code").
//!
//! Kept on the thread that holds the GIL (the event loop's), bounded by the stored bytes of
//! the versions kept ([`BUDGET`]), oldest first out; so what the cache costs stays the
//! compact entries plus a bounded set of recently read documents, whatever the fleet's size.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::informer::Entry;
use crate::py::decode::stored_read_only;
use crate::py::gc::without_gc;
use crate::py::typed::Shape;

/// Stored bytes of the versions whose Python objects are kept, at most: ~4,000 LabWorkers of
/// 2 KB, whose objects take ~3.5 times their bytes (~28 MB).
const BUDGET: usize = 8 << 20;

#[derive(Default)]
struct Built {
    /// By the address of the entry (which the `Arc` kept with it keeps unique).
    objects: HashMap<usize, (Arc<Entry>, Py<PyAny>)>,
    /// Addresses in the order they were kept.
    order: VecDeque<usize>,
    /// Stored bytes of the entries kept.
    bytes: usize,
}

impl Built {
    fn keep(&mut self, entry: &Arc<Entry>, obj: Py<PyAny>) {
        let size = entry.stored().value.len();
        while self.bytes + size > BUDGET {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some((old, _)) = self.objects.remove(&oldest) {
                self.bytes -= old.stored().value.len();
            }
        }
        if self.bytes + size <= BUDGET {
            let id = Arc::as_ptr(entry) as usize;
            self.objects.insert(id, (entry.clone(), obj));
            self.order.push_back(id);
            self.bytes += size;
        }
    }
}

thread_local! {
    static BUILT: RefCell<Built> = RefCell::new(Built::default());
}

/// A cached document as read-only Python objects, shared with every other reader of its
/// version.
pub fn cached_document<'py>(py: Python<'py>, entry: &Arc<Entry>) -> PyResult<Bound<'py, PyAny>> {
    let id = Arc::as_ptr(entry) as usize;
    let hit = BUILT.with(|built| built.borrow().objects.get(&id).map(|(_, obj)| obj.clone_ref(py)));
    if let Some(obj) = hit {
        return Ok(obj.into_bound(py));
    }
    let obj = stored_read_only(py, entry.stored())??;
    untrack(&obj);
    BUILT.with(|built| built.borrow_mut().keep(entry, obj.clone().unbind()));
    Ok(obj)
}

/// Take a kept document's dicts and lists out of the cyclic garbage collector's sight: a
/// decoded JSON tree has no cycles, and read-only containers can never be made to hold one,
/// so reference counting frees them. Otherwise every full collection walks every
/// cached document, which cost a third of a cached query here.
pub(crate) fn untrack(obj: &Bound<'_, PyAny>) {
    if !is_container(obj) {
        return;
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        dict.iter().for_each(|(_, v)| untrack(&v));
    } else if let Ok(list) = obj.cast::<PyList>() {
        list.iter().for_each(|v| untrack(&v));
    }
    // SAFETY: `obj` is a live exact dict or list (a GC object), we hold the GC, and untracking
    // an object is always memory-safe; it only means the collector will not look for cycles
    // through it, and there are none (see above).
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) };
}

fn is_container(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyDict>() || obj.is_instance_of::<PyList>()
}

/// Cached documents handed to Python as a list of shared read-only documents (dicts), or of
/// new instances of the repository's class built from the stored bytes.
pub struct CachedList(pub Vec<Arc<Entry>>, pub Shape);

impl<'py> IntoPyObject<'py> for CachedList {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let items = without_gc(py, || match &self.1 {
            Shape::Dicts => self.0.iter().map(|e| cached_document(py, e)).collect::<PyResult<Vec<_>>>(),
            typed => self.0.iter().map(|e| Ok(typed.stored(py, e.stored())??)).collect::<PyResult<Vec<_>>>(),
        })?;
        PyList::new(py, items)
    }
}
