//! The bridge's half of fenced writes (`crate::store::fence`): the Python context variable
//! that says which shard record a task's writes depend on. Read at each call only once a
//! sharded controller has registered it, so unsharded programs pay nothing.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::store::fence::Fence;

static FENCE_VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Register the `contextvars.ContextVar` holding `(record key, lease id)` or `None` (done by
/// `etcd_resources.controller.sharding`; the first registration stays).
#[pyfunction]
pub fn _use_fence_var(py: Python<'_>, var: Bound<'_, PyAny>) {
    let _ = FENCE_VAR.set(py, var.unbind());
}

/// The fence of the calling Python context, if any.
pub fn current(py: Python<'_>) -> PyResult<Option<Fence>> {
    let Some(var) = FENCE_VAR.get(py) else { return Ok(None) };
    let value = var.bind(py).call_method1(pyo3::intern!(py, "get"), (py.None(),))?;
    if value.is_none() {
        return Ok(None);
    }
    let (key, lease): (String, i64) = value.extract()?;
    Ok(Some(Fence { key: key.into_bytes(), lease }))
}
