//! `TextBackend`: the native half of `NeurogliaStorageBackend` (Neuroglia's storage protocol).

use pyo3::prelude::*;

use crate::py::bridge::spawn_call;
use crate::py::client::PyClient;
use crate::text_backend::TextBackend;

/// Text at `prefix + key`; documents' versions are etcd revisions and their writes
/// compare-and-swaps (see `text_backend.rs`). Every method returns an awaitable.
#[pyclass(frozen, name = "TextBackend", module = "etcd_resources._core")]
pub struct PyTextBackend {
    backend: TextBackend,
}

#[pymethods]
impl PyTextBackend {
    #[new]
    fn new(client: &PyClient, prefix: String) -> PyResult<Self> {
        client.client.check()?;
        Ok(PyTextBackend { backend: TextBackend::new(client.client.clone(), &prefix)? })
    }

    #[getter]
    fn prefix(&self) -> &str {
        self.backend.prefix()
    }

    fn exists<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move { b.exists(&key).await })
    }

    fn get<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move { b.get(&key).await })
    }

    fn set<'py>(&self, py: Python<'py>, key: String, text: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move { b.set(&key, &text).await })
    }

    fn delete<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move { b.delete(&key).await })
    }

    fn keys<'py>(&self, py: Python<'py>, pattern: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move { b.keys(&pattern).await })
    }

    fn __repr__(&self) -> String {
        format!("TextBackend(prefix={:?})", self.backend.prefix())
    }
}
