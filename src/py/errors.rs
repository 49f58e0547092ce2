//! `impl From<Error> for PyErr`: each core error becomes the exception class named by
//! [`Error::kind`], defined in `etcd_resources/errors.py`, with its structured fields as
//! attributes. (Python classes, so they can have two standard bases, e.g. `ConflictError` is
//! also Neuroglia's `ResourceConflictError` when Neuroglia is installed.)

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

use crate::error::Error;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS.get_or_try_init(py, || Ok(py.import("etcd_resources.errors")?.unbind())).map(|m| m.bind(py))
}

/// The structured attributes of an error.
fn fields<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match e {
        Error::NotFound { key } | Error::AlreadyExists { key } => d.set_item("key", key)?,
        Error::Conflict { key, expected, actual } => {
            d.set_item("key", key)?;
            d.set_item("expected_version", expected.to_string())?;
            d.set_item("actual_version", actual.map(|a| a.to_string()))?;
        }
        Error::Fenced { key, fence } => {
            d.set_item("key", key)?;
            d.set_item("fence", fence)?;
        }
        Error::Unavailable { code, .. }
        | Error::QuotaExceeded { code, .. }
        | Error::PermissionDenied { code, .. }
        | Error::Etcd { code, .. } => d.set_item("code", code)?,
        Error::Timeout { operation, seconds } => {
            d.set_item("operation", operation)?;
            d.set_item("seconds", seconds)?;
        }
        Error::Expired { requested, compacted } => {
            d.set_item("requested_revision", requested)?;
            d.set_item("compacted_revision", compacted)?;
        }
        Error::FellBehind { revision, backlog } => {
            d.set_item("revision", revision)?;
            d.set_item("max_backlog", backlog)?;
        }
        Error::InvalidName { name, reason } => {
            d.set_item("name", name)?;
            d.set_item("reason", reason)?;
        }
        Error::InvalidSelector { selector, position, expected } => {
            d.set_item("selector", selector)?;
            d.set_item("position", position)?;
            d.set_item("expected", expected)?;
        }
        Error::TooLarge { key, size, limit } => {
            d.set_item("key", key)?;
            d.set_item("size", size)?;
            d.set_item("limit", limit)?;
        }
        Error::Serialization { key, .. } => d.set_item("key", key)?,
        Error::Forked { pid, here } => {
            d.set_item("pid", pid)?;
            d.set_item("current_pid", here)?;
        }
        Error::InvalidArgument { .. } | Error::Closed => {}
    }
    Ok(d)
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    // `_classes` maps each kind to the class to raise (integrations may put subclasses there).
    let class = errors_module(py)?.getattr("_classes")?.get_item(e.kind())?;
    let instance = class.call((e.to_string(),), Some(&fields(py, e)?))?;
    Ok(PyErr::from_value(instance))
}

/// The Python exception for an error.
pub fn exception(py: Python<'_>, e: &Error) -> PyErr {
    build(py, e).unwrap_or_else(|cause| {
        let err = PyRuntimeError::new_err(format!("{e} (and its exception could not be built)"));
        err.set_cause(py, Some(cause));
        err
    })
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| exception(py, &e))
    }
}
