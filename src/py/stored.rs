//! Stored documents handed to Python: one, or a list, as dicts or as instances of the
//! repository's class (its [`Shape`]).

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::error::Error;
use crate::py::gc::without_gc;
use crate::py::typed::Shape;
use crate::store::KeyValue;

/// A stored document handed to Python (decoded on the loop thread, straight from its bytes),
/// as a dict or as an instance of the repository's class.
pub struct Stored(pub KeyValue, pub Shape);

impl<'py> IntoPyObject<'py> for Stored {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        Ok(self.1.stored(py, &self.0)??)
    }
}

/// Stored documents as a Python list; those that cannot be read are added to `unreadable`.
pub fn stored_list<'py>(
    py: Python<'py>,
    items: &[KeyValue],
    shape: &Shape,
    unreadable: &mut Vec<Error>,
) -> PyResult<Bound<'py, PyList>> {
    let mut out = Vec::with_capacity(items.len());
    // Many new containers and instances, no cycles among them: see `without_gc`.
    without_gc(py, || {
        for kv in items {
            match shape.stored(py, kv)? {
                Ok(doc) => out.push(doc),
                Err(e) => unreadable.push(crate::unreadable::at(e, kv.mod_revision)),
            }
        }
        Ok::<_, PyErr>(())
    })?;
    PyList::new(py, out)
}
