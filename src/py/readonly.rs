//! Making the read-only dicts and lists of `etcd_resources.readonly` from Rust: the shared
//! documents of the informer cache (see `crate::py::built`).
//!
//! They are made the way `dict.__new__(ReadOnlyDict)` makes them (the base type's `tp_new`,
//! no `__init__`) and filled through the C API (`PyDict_SetItem`, `PyList_Append`), which
//! does not go through the Python-level methods that refuse changes.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

struct Types {
    dict: Py<PyType>,
    list: Py<PyType>,
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get_or_try_init(py, || {
        let module = py.import("etcd_resources.readonly")?;
        let dict = module.getattr("ReadOnlyDict")?.cast_into::<PyType>()?;
        let list = module.getattr("ReadOnlyList")?.cast_into::<PyType>()?;
        // Made with the base's `tp_new` below: the subclasses must add nothing to its layout.
        let same = |t: &Bound<'_, PyType>, base: *mut pyo3::ffi::PyTypeObject| {
            // SAFETY: both are live type objects; reading their basic size.
            unsafe { (*t.as_type_ptr()).tp_basicsize == (*base).tp_basicsize }
        };
        let dict_base = std::ptr::addr_of_mut!(pyo3::ffi::PyDict_Type);
        let list_base = std::ptr::addr_of_mut!(pyo3::ffi::PyList_Type);
        if !same(&dict, dict_base) || !same(&list, list_base) {
            return Err(PyTypeError::new_err("ReadOnlyDict and ReadOnlyList must declare __slots__ = ()"));
        }
        Ok(Types { dict: dict.unbind(), list: list.unbind() })
    })
}

/// A new, empty instance of `subtype` made by `base`'s `tp_new`.
fn make<'py>(
    py: Python<'py>,
    subtype: &Py<PyType>,
    base: *mut pyo3::ffi::PyTypeObject,
) -> PyResult<Bound<'py, PyAny>> {
    let args = PyTuple::empty(py);
    // SAFETY: `base` is dict's or list's static type object, whose `tp_new` is set;
    // `subtype` is a subclass of it with the same layout (checked in `types`); the GIL is
    // held. The result is a new reference or NULL with an exception set.
    unsafe {
        let new = (*base).tp_new.ok_or_else(|| PyTypeError::new_err("the base type has no tp_new"))?;
        let obj = new(subtype.as_ptr().cast(), args.as_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)
    }
}

/// A new, empty `ReadOnlyDict`, to fill with `set_item`.
pub fn dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let t = types(py)?;
    let base = std::ptr::addr_of_mut!(pyo3::ffi::PyDict_Type);
    Ok(make(py, &t.dict, base)?.cast_into::<PyDict>()?)
}

/// A `ReadOnlyList` of `items`.
pub fn list<'py>(py: Python<'py>, items: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyList>> {
    let t = types(py)?;
    let base = std::ptr::addr_of_mut!(pyo3::ffi::PyList_Type);
    let list = make(py, &t.list, base)?.cast_into::<PyList>()?;
    for item in items {
        list.append(item)?;
    }
    Ok(list)
}
