//! `Ready`: an awaitable that is already complete. Methods that finish their work before
//! returning (`close()`) return one, so they can be awaited with or without a running event
//! loop, and forgetting the `await` warns about nothing and loses nothing.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

#[pyclass(name = "Ready", module = "etcd_resources._core")]
pub struct Ready {
    value: Option<Py<PyAny>>,
}

impl Ready {
    pub fn new(value: Py<PyAny>) -> Self {
        Ready { value: Some(value) }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<()> {
        let value = self.value.take().unwrap_or_else(|| py.None());
        Err(PyStopIteration::new_err((value,)))
    }
}
