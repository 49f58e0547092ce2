//! `KvBackend`: the native half of `EtcdStorageBackend` (the seed repository's backend API).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::py::bridge::spawn_call;

use crate::backend::Backend;
use crate::document::Format;
use crate::py::args::{label_selector, revision_arg, Listed};
use crate::py::client::PyClient;
use crate::py::convert::to_value;
use crate::py::stored::Stored;
use crate::py::typed::Shape;
use crate::py::watch::{Objects, PyWatchStream};

/// Documents at `prefix + name`. Every method returns an awaitable.
#[pyclass(frozen, name = "KvBackend", module = "etcd_resources._core")]
pub struct PyKvBackend {
    backend: Backend,
}

#[pymethods]
impl PyKvBackend {
    #[new]
    #[pyo3(signature = (client, prefix, *, format="json"))]
    fn new(client: &PyClient, prefix: String, format: &str) -> PyResult<Self> {
        client.client.check()?;
        Ok(PyKvBackend { backend: Backend::new(client.client.clone(), &prefix, Format::parse(format)?)? })
    }

    #[getter]
    fn prefix(&self) -> &str {
        self.backend.prefix()
    }

    fn exists<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move { b.exists(&name).await })
    }

    fn get<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move {
            Ok(b.get_stored(&name).await?.map(|kv| Stored(kv, Shape::Dicts)))
        })
    }

    fn set<'py>(
        &self,
        py: Python<'py>,
        name: String,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        let value = to_value(value)?;
        if !value.is_object() {
            return Err(PyTypeError::new_err("the value is a dict (or an object with attributes)"));
        }
        spawn_call(py, self.backend.client(), async move { b.set(&name, &value).await })
    }

    fn delete<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        spawn_call(py, self.backend.client(), async move { b.delete(&name).await })
    }

    #[pyo3(signature = (pattern=""))]
    fn keys<'py>(&self, py: Python<'py>, pattern: &str) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        let pattern = pattern.to_owned();
        spawn_call(py, self.backend.client(), async move { b.keys(&pattern).await })
    }

    #[pyo3(signature = (selector=None))]
    fn list_with_labels<'py>(
        &self,
        py: Python<'py>,
        selector: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        let selector = label_selector(selector)?;
        spawn_call(py, self.backend.client(), async move {
            let (items, unreadable) = b.list(&selector).await?;
            Ok(Listed { items, unreadable, shape: Shape::Dicts })
        })
    }

    fn compare_and_swap<'py>(
        &self,
        py: Python<'py>,
        name: String,
        expected_version: &Bound<'py, PyAny>,
        new_value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let b = self.backend.clone();
        let expected = revision_arg(expected_version)?;
        let value = to_value(new_value)?;
        spawn_call(
            py,
            self.backend.client(),
            async move { b.compare_and_swap(&name, expected, &value).await },
        )
    }

    /// Open a watch on the names starting with `key_prefix`, from `start_revision` (0: now),
    /// sharing the client's etcd watch on that prefix; `max_backlog` and `readonly` as for
    /// repositories.
    #[pyo3(signature = (key_prefix="", start_revision=0, *, max_backlog=None, readonly=false))]
    fn watch_stream<'py>(
        &self,
        py: Python<'py>,
        key_prefix: &str,
        start_revision: i64,
        max_backlog: Option<usize>,
        readonly: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::names::validate_name_prefix(key_prefix)?;
        let prefix = format!("{}{key_prefix}", self.backend.prefix());
        PyWatchStream::open(
            py,
            self.backend.client().clone(),
            prefix,
            start_revision,
            self.backend.prefix().len(),
            None,
            if readonly { Objects::Shared } else { Objects::Own(Shape::Dicts) },
            max_backlog,
        )
    }

    fn __repr__(&self) -> String {
        format!("KvBackend(prefix={:?})", self.backend.prefix())
    }
}
