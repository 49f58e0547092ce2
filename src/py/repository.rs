//! `RepositoryCore`: the native half of the resource repositories (Python wraps it with
//! Neuroglia's method names and the mapping to resource classes).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;

use crate::py::bridge::{spawn, spawn_call};
use pyo3::types::PyDict;
use serde_json::Value;

use crate::document::Format;
use crate::error::Error;
use crate::informer::Consistency;
use crate::listing;
use crate::py::args::{query, revision_arg, Paged};
use crate::py::built::CachedList;
use crate::py::client::PyClient;
use crate::py::convert::{to_value, Json};
use crate::py::listing::{FirstChunk, PyListStream};
use crate::py::stored::Stored;
use crate::py::typed::{Shape, TypePlan};
use crate::py::watch::{Objects, PyWatchStream};
use crate::repository::{Removal, Repository, RepositoryConfig};

/// A resource as a JSON document: a dict as it is, an object through its `to_dict()` (or its
/// attributes). Anything that is not an object once converted is a `TypeError`.
fn resource_value(resource: &Bound<'_, PyAny>) -> PyResult<Value> {
    let value = match resource.getattr("to_dict") {
        Ok(to_dict) if !resource.is_instance_of::<PyDict>() => to_value(&to_dict.call0()?)?,
        _ => to_value(resource)?,
    };
    if !value.is_object() {
        let ty = resource.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "a resource is a dict or an object with to_dict(), not {ty}"
        )));
    }
    Ok(value)
}

/// Resources under one prefix with Kubernetes semantics. Every I/O method returns an
/// awaitable.
#[pyclass(frozen, name = "RepositoryCore", module = "etcd_resources._core")]
pub struct PyRepositoryCore {
    pub(crate) repo: Repository,
    /// What reads return: dicts, or instances of the repository's class.
    pub(crate) shape: Shape,
}

impl PyRepositoryCore {
    /// A list or count: answered at once from an informer cache (so polled here, with no
    /// thread hop: a cached count costs microseconds), else a call to the store.
    fn spawn_read<'py, F, T>(&self, py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: std::future::Future<Output = crate::error::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        if self.repo.config().cache_fields.is_some() {
            self.repo.client().check()?;
            spawn(py, fut)
        } else {
            spawn_call(py, self.repo.client(), fut)
        }
    }
}

#[pymethods]
impl PyRepositoryCore {
    #[new]
    #[pyo3(signature = (client, prefix, *, namespaced=false, format="json", default_namespace="default", cache_fields=None, type_plan=None))]
    fn new(
        client: &PyClient,
        prefix: String,
        namespaced: bool,
        format: &str,
        default_namespace: &str,
        cache_fields: Option<Vec<String>>,
        type_plan: Option<Py<TypePlan>>,
    ) -> PyResult<Self> {
        client.client.check()?;
        let config = RepositoryConfig {
            prefix,
            namespaced,
            format: Format::parse(format)?,
            default_namespace: default_namespace.to_owned(),
            cache_fields,
        };
        Ok(PyRepositoryCore {
            repo: Repository::new(client.client.clone(), config)?,
            shape: Shape::of(type_plan),
        })
    }

    #[getter]
    fn prefix(&self) -> &str {
        &self.repo.config().prefix
    }

    #[getter]
    fn namespaced(&self) -> bool {
        self.repo.config().namespaced
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.repo.config().format.name()
    }

    /// The same repository (its cache included) with reads that return dicts.
    fn as_dicts(&self) -> Self {
        PyRepositoryCore { repo: self.repo.clone(), shape: Shape::Dicts }
    }

    /// This client saw `key` at `revision` (a watch delivered it): the session reads of the
    /// prefix's cache wait until it has applied that revision, as after a read or a write.
    fn note_seen(&self, key: &str, revision: i64) -> PyResult<()> {
        if !key.starts_with(self.repo.config().prefix.as_str()) {
            return Err(crate::error::Error::invalid(format!(
                "{key:?} is not under this repository's prefix"
            ))
            .into());
        }
        crate::informer::note(self.repo.client(), key.as_bytes(), revision);
        Ok(())
    }

    /// The key a resource is stored at (validates the name).
    #[pyo3(signature = (name, namespace=None))]
    fn key(&self, name: &str, namespace: Option<&str>) -> PyResult<String> {
        Ok(self.repo.key(name, namespace)?)
    }

    #[pyo3(signature = (name, namespace=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        name: String,
        namespace: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        let shape = self.shape.clone();
        spawn_call(py, self.repo.client(), async move {
            Ok(repo.get_stored(&name, namespace.as_deref()).await?.map(|kv| Stored(kv, shape)))
        })
    }

    #[pyo3(signature = (name, namespace=None))]
    fn contains<'py>(
        &self,
        py: Python<'py>,
        name: String,
        namespace: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        spawn_call(py, self.repo.client(), async move { repo.contains(&name, namespace.as_deref()).await })
    }

    #[pyo3(signature = (resource, *, lease=0))]
    fn create<'py>(
        &self,
        py: Python<'py>,
        resource: &Bound<'py, PyAny>,
        lease: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        let doc = resource_value(resource)?;
        spawn_call(py, self.repo.client(), async move { Ok(Json(repo.create(doc, lease).await?)) })
    }

    fn update<'py>(&self, py: Python<'py>, resource: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        let doc = resource_value(resource)?;
        spawn_call(py, self.repo.client(), async move { Ok(Json(repo.update(doc).await?)) })
    }

    /// Delete; resolves to `None` when deleted, to the resource when finalizers hold it. A
    /// stored document that cannot be read is refused (`SerializationError`), or deleted at
    /// the revision read with `delete_unreadable=True`. With `expected_version`, only while
    /// the resource is at that version (`ConflictError` otherwise, nothing done).
    #[pyo3(signature = (name, namespace=None, *, delete_unreadable=false, expected_version=None))]
    fn remove<'py>(
        &self,
        py: Python<'py>,
        name: String,
        namespace: Option<String>,
        delete_unreadable: bool,
        expected_version: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let expected = expected_version.map(revision_arg).transpose()?;
        if expected.is_some() && delete_unreadable {
            return Err(Error::invalid("give delete_unreadable or expected_version, not both").into());
        }
        let repo = self.repo.clone();
        spawn_call(py, self.repo.client(), async move {
            let removal = match expected {
                Some(expected) => repo.remove_at(&name, namespace.as_deref(), expected).await?,
                None if delete_unreadable => {
                    repo.remove_allowing_unreadable(&name, namespace.as_deref()).await?
                }
                None => repo.remove(&name, namespace.as_deref()).await?,
            };
            Ok(match removal {
                Removal::Deleted => None,
                Removal::Finalizing(doc) => Some(Json(doc)),
            })
        })
    }

    /// Every matching resource, from one snapshot (from the informer cache when there is one;
    /// `consistent=False` skips waiting for it to be current). Resolves to
    /// `(dicts, rest)`: `rest` is `None`, or a `ListStream` of the other chunks' dicts.
    /// `streamed=True` keeps chunks smaller, for a consumer that holds one at a time.
    #[pyo3(signature = (namespace=None, label_selector=None, field_selector=None, *, consistent=None, streamed=false))]
    #[allow(clippy::too_many_arguments)]
    fn list<'py>(
        &self,
        py: Python<'py>,
        namespace: Option<String>,
        label_selector: Option<&Bound<'py, PyAny>>,
        field_selector: Option<&Bound<'py, PyAny>>,
        consistent: Option<bool>,
        streamed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        let query = query(namespace, label_selector, field_selector)?;
        let shape = self.shape.clone();
        self.spawn_read(py, async move {
            if let Some(cached) = repo.list_cached(&query, Consistency::from_flag(consistent)).await? {
                return Ok(Either::Cached((CachedList(cached, shape), None::<PyListStream>)));
            }
            let max_chunk = if streamed { listing::STREAM_MAX_CHUNK } else { listing::MAX_CHUNK };
            Ok(Either::Read(FirstChunk::read(repo.list_chunks(query, max_chunk), shape).await?))
        })
    }

    /// Whether lists and counts come from an informer cache.
    #[getter]
    fn cached(&self) -> bool {
        self.repo.config().cache_fields.is_some()
    }

    /// One page of at most `limit` matching resources. Resolves to
    /// `(items, resource_version, continue_token)`.
    #[pyo3(signature = (namespace=None, label_selector=None, field_selector=None, *, limit=500, continue_token=None))]
    #[allow(clippy::too_many_arguments)]
    fn list_page<'py>(
        &self,
        py: Python<'py>,
        namespace: Option<String>,
        label_selector: Option<&Bound<'py, PyAny>>,
        field_selector: Option<&Bound<'py, PyAny>>,
        limit: usize,
        continue_token: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        let query = query(namespace, label_selector, field_selector)?;
        let shape = self.shape.clone();
        spawn_call(py, self.repo.client(), async move {
            Ok(Paged(repo.list_page(&query, limit, continue_token.as_deref()).await?, shape))
        })
    }

    /// Every stored document under the prefix that cannot be read, as `(key, mod_revision,
    /// reason)` tuples (a full listing's cost). Resolves to a list.
    fn unreadable<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        self.spawn_read(py, async move {
            let found = repo.unreadable().await?;
            Ok(found.into_iter().map(|u| (u.key, u.mod_revision, u.reason)).collect::<Vec<_>>())
        })
    }

    /// How many resources match; builds no Python objects. Resolves to an int.
    #[pyo3(signature = (namespace=None, label_selector=None, field_selector=None, *, consistent=None))]
    fn count<'py>(
        &self,
        py: Python<'py>,
        namespace: Option<String>,
        label_selector: Option<&Bound<'py, PyAny>>,
        field_selector: Option<&Bound<'py, PyAny>>,
        consistent: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let repo = self.repo.clone();
        let query = query(namespace, label_selector, field_selector)?;
        self.spawn_read(py, async move {
            match repo.count_cached(&query, Consistency::from_flag(consistent)).await? {
                Some(count) => Ok(count),
                None => repo.count(&query).await,
            }
        })
    }

    /// Open a watch on this repository's resources from `start_revision` (0: now), keeping
    /// the changes that matter to the selectors. Resolves to a `WatchStream`.
    /// Resources are instances of the repository's class (`typed=False`: dicts). Every watch
    /// of the client on this prefix shares one etcd watch; `max_backlog` events may wait
    /// unread (`None`: 1,000) before this one raises `WatchFellBehindError`.
    /// With `readonly`, its events hold read-only dicts shared with the other read-only
    /// watchers of the thread (not the repository's class).
    #[pyo3(signature = (start_revision=0, namespace=None, label_selector=None, field_selector=None, *, typed=true, max_backlog=None, readonly=false))]
    #[allow(clippy::too_many_arguments)]
    fn watch_stream<'py>(
        &self,
        py: Python<'py>,
        start_revision: i64,
        namespace: Option<String>,
        label_selector: Option<&Bound<'py, PyAny>>,
        field_selector: Option<&Bound<'py, PyAny>>,
        typed: bool,
        max_backlog: Option<usize>,
        readonly: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query = query(namespace, label_selector, field_selector)?;
        let query = (!query.is_unfiltered()).then_some(query);
        let prefix = self.repo.config().prefix.clone();
        let len = prefix.len();
        let shape = match () {
            _ if readonly => Objects::Shared,
            _ if typed => Objects::Own(self.shape.clone()),
            _ => Objects::Own(Shape::Dicts),
        };
        PyWatchStream::open(
            py,
            self.repo.client().clone(),
            prefix,
            start_revision,
            len,
            query,
            shape,
            max_backlog,
        )
    }

    fn __repr__(&self) -> String {
        let c = self.repo.config();
        format!(
            "RepositoryCore(prefix={:?}, namespaced={}, format={:?})",
            c.prefix,
            c.namespaced,
            c.format.name()
        )
    }
}

/// One of two results, converted as whichever it is.
enum Either<A, B> {
    Cached(A),
    Read(B),
}

impl<'py, A: IntoPyObject<'py>, B: IntoPyObject<'py>> IntoPyObject<'py> for Either<A, B> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        match self {
            Either::Cached(a) => a.into_bound_py_any(py),
            Either::Read(b) => b.into_bound_py_any(py),
        }
    }
}
