//! Python objects of the informer cache's documents, built once per version and handed out as
//! copies.
//!
//! A cached document is an `Arc<Value>` that the informer replaces (never changes) when the
//! resource changes, so the `Arc` is the version. The first read of a version builds its dicts
//! and lists and keeps them here; every read, the first included, gets a deep copy of the
//! containers (strings, numbers and booleans are immutable and shared). So callers may change
//! what they get, as with any read, and a copy costs a fraction of building from the `Value`.
//! Kept on the thread that holds the GIL (the event loop's), bounded: when full, entries whose
//! version the informer dropped go first; if none did, new versions are not kept.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;

use crate::py::convert::to_python;
use crate::py::typed::Shape;

/// Versions kept at most.
const CAPACITY: usize = 16_384;

type Built = HashMap<usize, (Arc<Value>, Py<PyAny>)>;

thread_local! {
    static BUILT: RefCell<Built> = RefCell::new(HashMap::new());
}

/// A fresh Python copy of a cached document.
pub fn cached_document<'py>(py: Python<'py>, doc: &Arc<Value>) -> PyResult<Bound<'py, PyAny>> {
    let id = Arc::as_ptr(doc) as usize;
    let hit = BUILT.with(|built| built.borrow().get(&id).map(|(_, obj)| obj.clone_ref(py)));
    let original = match hit {
        Some(obj) => obj.into_bound(py),
        None => {
            let obj = to_python(py, doc)?;
            untrack(&obj);
            BUILT.with(|built| {
                let mut built = built.borrow_mut();
                if built.len() >= CAPACITY {
                    built.retain(|_, (version, _)| Arc::strong_count(version) > 1);
                }
                if built.len() < CAPACITY {
                    built.insert(id, (doc.clone(), obj.clone().unbind()));
                }
            });
            obj
        }
    };
    deep_copy(&original)
}

/// A copy of the dicts and lists of a decoded JSON value; everything else is shared.
fn deep_copy<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(dict) = obj.cast_exact::<PyDict>() {
        let copy = dict.copy()?;
        for (k, v) in dict.iter() {
            if is_container(&v) {
                copy.set_item(k, deep_copy(&v)?)?;
            }
        }
        return Ok(copy.into_any());
    }
    if let Ok(list) = obj.cast_exact::<PyList>() {
        let items = list
            .iter()
            .map(|v| if is_container(&v) { deep_copy(&v) } else { Ok(v) })
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(PyList::new(obj.py(), items)?.into_any());
    }
    Ok(obj.clone())
}

/// Take a kept document's dicts and lists out of the cyclic garbage collector's sight: a
/// decoded JSON tree has no cycles, nothing but this module ever sees these objects (callers
/// get copies), and reference counting frees them. Otherwise every full collection walks every
/// cached document, which cost a third of a cached query here.
fn untrack(obj: &Bound<'_, PyAny>) {
    if !is_container(obj) {
        return;
    }
    if let Ok(dict) = obj.cast_exact::<PyDict>() {
        dict.iter().for_each(|(_, v)| untrack(&v));
    } else if let Ok(list) = obj.cast_exact::<PyList>() {
        list.iter().for_each(|v| untrack(&v));
    }
    // SAFETY: `obj` is a live exact dict or list (a GC object), we hold the GC, and untracking
    // an object is always memory-safe; it only means the collector will not look for cycles
    // through it, and there are none (see above).
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) };
}

fn is_container(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_exact_instance_of::<PyDict>() || obj.is_exact_instance_of::<PyList>()
}

/// Run `f`, which makes many containers and no cycles, with the cyclic garbage collector off.
///
/// Otherwise the collector runs every 700 new containers and walks the same young, live
/// documents again at each generation while a listing is being built (a third of a cached
/// query's time here). It is on again when `f` returns, so the objects are collected as usual
/// from then on. Python code may run inside `f` (a typed read calls the classes' `__init__`);
/// it only finds the collector paused for as long as the build takes.
pub fn without_gc<T>(_py: Python<'_>, f: impl FnOnce() -> T) -> T {
    /// Turns the collector back on however `f` ends (a panic included).
    struct Resume(bool);
    impl Drop for Resume {
        fn drop(&mut self) {
            if self.0 {
                // SAFETY: still on the thread holding the GIL; this flips the enabled flag.
                unsafe { pyo3::ffi::PyGC_Enable() };
            }
        }
    }
    // SAFETY: the GIL is held (`_py`); this only flips the collector's enabled flag.
    let _resume = Resume(unsafe { pyo3::ffi::PyGC_Disable() } != 0);
    f()
}

/// Cached documents handed to Python as a list of fresh copies (dicts), or of instances of the
/// repository's class built from the parsed documents.
pub struct CachedList(pub Vec<Arc<Value>>, pub Shape);

impl<'py> IntoPyObject<'py> for CachedList {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let items = without_gc(py, || match &self.1 {
            Shape::Dicts => self.0.iter().map(|doc| cached_document(py, doc)).collect::<PyResult<Vec<_>>>(),
            typed => self.0.iter().map(|doc| typed.value(py, None, doc)).collect::<PyResult<Vec<_>>>(),
        })?;
        PyList::new(py, items)
    }
}
