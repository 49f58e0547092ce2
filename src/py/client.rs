//! `EtcdClient`: the Python handle on a [`Client`].

use std::time::Duration;

use pyo3::prelude::*;

use crate::py::bridge::spawn_call;
use pyo3::types::PyString;

use crate::client::{Client, ClientOptions, DEFAULT_MAX_DOCUMENT_BYTES, MEMORY_ENDPOINT};
use crate::error::Error;
use crate::lease::Lease;
use crate::py::lease::PyLease;
use crate::py::ready::Ready;
use crate::store::etcd::{EtcdConfig, TlsConfig};

// The Python signature spells the default out; keep it equal to the core's.
const _: () = assert!(DEFAULT_MAX_DOCUMENT_BYTES == 1_572_864);

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    if !(value.is_finite() && value > 0.0) {
        return Err(
            Error::invalid(format!("{name} must be a positive number of seconds, got {value}")).into()
        );
    }
    Ok(Duration::from_secs_f64(value))
}

/// A key given as `str` or `bytes`.
fn key_bytes(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    key.extract().map_err(|_| Error::invalid("a key is str or bytes").into())
}

/// Bytes handed to Python as `bytes` (a `Vec<u8>` would become a list).
struct PyBytesOut(Vec<u8>);

impl<'py> IntoPyObject<'py> for PyBytesOut {
    type Target = pyo3::types::PyBytes;
    type Output = Bound<'py, pyo3::types::PyBytes>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        Ok(pyo3::types::PyBytes::new(py, &self.0))
    }
}

/// A connection to etcd (or, with `"memory://"`, an embedded store), shared by every
/// repository of the process. Constructing it does no I/O; the first call connects.
#[pyclass(frozen, name = "EtcdClient", module = "etcd_resources._core")]
pub struct PyClient {
    pub(crate) client: Client,
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (endpoints=None, *, timeout=5.0, connect_timeout=None, username=None, password=None, max_document_bytes=1_572_864, retries=2, breaker_threshold=5, breaker_reset=2.0, election_timeout=1.0, ca_cert=None, client_cert=None, client_key=None, tls_domain=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        endpoints: Option<&Bound<'_, PyAny>>,
        timeout: f64,
        connect_timeout: Option<f64>,
        username: Option<String>,
        password: Option<String>,
        max_document_bytes: usize,
        retries: u32,
        breaker_threshold: u32,
        breaker_reset: f64,
        election_timeout: f64,
        ca_cert: Option<std::path::PathBuf>,
        client_cert: Option<std::path::PathBuf>,
        client_key: Option<std::path::PathBuf>,
        tls_domain: Option<String>,
    ) -> PyResult<Self> {
        let read = |what: &str, path: Option<std::path::PathBuf>| -> PyResult<Option<Vec<u8>>> {
            path.map(|p| {
                std::fs::read(&p)
                    .map_err(|e| Error::invalid(format!("cannot read {what} {}: {e}", p.display())).into())
            })
            .transpose()
        };
        if client_cert.is_some() != client_key.is_some() {
            return Err(Error::invalid("give both client_cert and client_key, or neither").into());
        }
        let tls = if ca_cert.is_some() || client_cert.is_some() || tls_domain.is_some() {
            Some(TlsConfig {
                ca: read("ca_cert", ca_cert)?,
                client_cert: read("client_cert", client_cert)?,
                client_key: read("client_key", client_key)?,
                domain: tls_domain,
            })
        } else {
            None
        };
        let endpoints: Vec<String> = match endpoints {
            None => vec![MEMORY_ENDPOINT.to_owned()],
            Some(e) if e.is_instance_of::<PyString>() => vec![e.extract()?],
            Some(e) => e.extract().map_err(|_| {
                Error::invalid("endpoints is a string or a list of strings (\"host:port\" or \"memory://\")")
            })?,
        };
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err(Error::invalid("give both username and password, or neither").into()),
        };
        let etcd = EtcdConfig {
            timeout: seconds("timeout", timeout)?,
            connect_timeout: seconds("connect_timeout", connect_timeout.unwrap_or(timeout))?,
            credentials,
            tls,
            retries,
            breaker_threshold,
            breaker_reset: seconds("breaker_reset", breaker_reset)?,
            election_timeout: seconds("election_timeout", election_timeout)?,
        };
        let options = ClientOptions { etcd, max_document_bytes };
        Ok(PyClient { client: Client::new(endpoints, options)? })
    }

    /// The endpoints this client uses.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.client.endpoints().to_vec()
    }

    /// Whether `close()` was called (always true in a process forked from the one that made
    /// the client: there it refuses every call with `ForkedError`).
    #[getter]
    fn closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Request timeout in seconds.
    #[getter]
    fn timeout(&self) -> f64 {
        self.client.options().etcd.timeout.as_secs_f64()
    }

    /// The store's current revision (of the whole keyspace). Returns an awaitable.
    ///
    /// It is learnt from a count-only read of one key: `prefix` (normalised to end in `/`);
    /// without one, the prefix of the first repository or backend made on this client, so a
    /// user whose etcd role covers only its prefix gets it; before any, the key `"\0"`
    /// (which such a user may not read: `PermissionDeniedError`).
    #[pyo3(signature = (*, prefix=None))]
    fn current_revision<'py>(&self, py: Python<'py>, prefix: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let within = match prefix {
            Some(prefix) => crate::names::normalize_prefix(prefix)?,
            None => self.client.known_prefix().unwrap_or_default().to_owned(),
        };
        spawn_call(py, &self.client, async move { client.store()?.current_revision(within.as_bytes()).await })
    }

    /// Forget history before `revision` (etcd's compaction). Returns an awaitable.
    fn compact<'py>(&self, py: Python<'py>, revision: i64) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        spawn_call(py, &self.client, async move { client.store()?.compact(revision).await })
    }

    /// Write raw bytes at a key, outside any repository (for migrations and tests).
    /// Returns an awaitable of the new revision.
    fn put_raw<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        value: Vec<u8>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let key = key_bytes(key)?;
        spawn_call(py, &self.client, async move { client.store()?.put(key, value, 0).await })
    }

    /// Every key under `prefix` with its raw value, as `(revision, [(key, value,
    /// mod_revision, lease)])` in key order (for coordination records, not resources).
    /// Returns an awaitable.
    fn list_raw<'py>(&self, py: Python<'py>, prefix: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let prefix = key_bytes(prefix)?;
        spawn_call(py, &self.client, async move {
            let resp = client.store()?.range(crate::store::RangeRequest::prefix(&prefix)).await?;
            let kvs = resp
                .kvs
                .into_iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        PyBytesOut(kv.value),
                        kv.mod_revision,
                        kv.lease,
                    )
                })
                .collect::<Vec<_>>();
            Ok((resp.revision, kvs))
        })
    }

    /// The raw bytes at a key, or `None`. Returns an awaitable.
    fn get_raw<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let key = key_bytes(key)?;
        spawn_call(py, &self.client, async move {
            let resp = client.store()?.range(crate::store::RangeRequest::key(&key)).await?;
            Ok(resp.kvs.into_iter().next().map(|kv| PyBytesOut(kv.value)))
        })
    }

    /// Grant a lease of `ttl` seconds, renewed in the background (in Rust) when
    /// `keep_alive`. Returns an awaitable of a `Lease`.
    #[pyo3(signature = (ttl, *, keep_alive=true))]
    fn grant_lease<'py>(&self, py: Python<'py>, ttl: i64, keep_alive: bool) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        spawn_call(py, &self.client, async move {
            Ok(PyLease { lease: Lease::grant(&client, ttl, keep_alive).await? })
        })
    }

    /// Renew lease `id` once; resolves to the TTL left (`NotFoundError` when it is gone).
    fn keep_alive_once<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        spawn_call(py, &self.client, async move { client.store()?.lease_keep_alive(id).await })
    }

    /// Revoke lease `id`, deleting its keys. Returns an awaitable.
    fn revoke_lease<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        spawn_call(py, &self.client, async move { client.store()?.lease_revoke(id).await })
    }

    /// The key's `(value, mod_revision, lease)`, or `None`. Returns an awaitable.
    fn get_kv<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let key = key_bytes(key)?;
        spawn_call(py, &self.client, async move {
            let resp = client.store()?.range(crate::store::RangeRequest::key(&key)).await?;
            Ok(resp.kvs.into_iter().next().map(|kv| (PyBytesOut(kv.value), kv.mod_revision, kv.lease)))
        })
    }

    /// Write only if the key is absent (one transaction); resolves to the revision,
    /// `AlreadyExistsError` otherwise.
    #[pyo3(signature = (key, value, *, lease=0))]
    fn create_raw<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        value: Vec<u8>,
        lease: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let key = key_bytes(key)?;
        spawn_call(py, &self.client, async move { client.store()?.create(key, value, lease).await })
    }

    /// Delete a key, only if its mod_revision is `expected` when given (`ConflictError`
    /// otherwise); resolves to whether it existed.
    #[pyo3(signature = (key, *, expected=None))]
    fn delete_raw<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        expected: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let key = key_bytes(key)?;
        spawn_call(
            py,
            &self.client,
            async move { Ok(client.store()?.delete(key, expected).await?.is_some()) },
        )
    }

    /// Stored documents that could not be read and were skipped (by lists, pages, streams,
    /// counts with a selector, watches and caches) in this process: `{"skipped": every skip,
    /// "distinct": distinct (key, revision) pairs}`. Each pair is logged once, as a warning
    /// on the `etcd_resources` logger.
    fn unreadable_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let counts = crate::unreadable::counts();
        let out = pyo3::types::PyDict::new(py);
        out.set_item("skipped", counts.skipped)?;
        out.set_item("distinct", counts.distinct)?;
        Ok(out)
    }

    /// Counts, errors and latencies of the calls made to etcd, per operation:
    /// `{op: {"count", "errors", "seconds_total", "seconds_max", "buckets": {le: n}}}`
    /// (`le` the bucket's upper bound in seconds). Empty for the embedded store.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let out = pyo3::types::PyDict::new(py);
        let Some(metrics) = self.client.store()?.metrics() else { return Ok(out) };
        for (name, op) in metrics.snapshot() {
            let d = pyo3::types::PyDict::new(py);
            d.set_item("count", op.count)?;
            d.set_item("errors", op.errors)?;
            d.set_item("seconds_total", op.seconds_total)?;
            d.set_item("seconds_max", op.seconds_max)?;
            let buckets = pyo3::types::PyDict::new(py);
            for (le, n) in op.buckets {
                buckets.set_item(le, n)?;
            }
            d.set_item("buckets", buckets)?;
            out.set_item(name, d)?;
        }
        Ok(out)
    }

    /// What each member says of itself (for `etcd-resources status`): a list of dicts with
    /// `endpoint`, `error` (why it could not be asked, else `None`), `version`, `member_id`,
    /// `cluster_id`, `leader` (ids in hex), `is_leader`, `raft_term`, `revision`, `db_size`,
    /// `db_size_in_use`, `db_size_quota` (`None` before etcd 3.6), `errors`, `alarms`
    /// (`(member_id, "NOSPACE" | "CORRUPT")`). Empty for the embedded store. Returns an
    /// awaitable.
    fn members<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        spawn_call(py, &self.client, async move {
            Ok(crate::py::status::Members(client.store()?.members().await?))
        })
    }

    /// The revision etcd compacted to (0 when it never compacted), asked with a watch under
    /// `prefix` (so a role limited to the prefix may ask). Returns an awaitable.
    fn compacted_revision<'py>(&self, py: Python<'py>, prefix: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let mut probe = prefix.into_bytes();
        probe.push(0);
        spawn_call(py, &self.client, async move {
            crate::store::maintenance::compacted_revision(&**client.store()?, &probe).await
        })
    }

    /// Each endpoint's health and counters, by endpoint as given: `{endpoint: {"healthy",
    /// "in_flight", "requests", "failures", "ejections", "probes", "watches"}}`. An endpoint
    /// that stops answering is ejected (`healthy` false): requests go to the others until a
    /// background probe gets an answer from it. `requests` counts attempts sent to it,
    /// `failures` those that got no answer or lost their connection, `watches` the watch
    /// streams open on it. Empty for the embedded store.
    fn endpoint_health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let out = pyo3::types::PyDict::new(py);
        for e in self.client.store()?.endpoints() {
            let d = pyo3::types::PyDict::new(py);
            d.set_item("healthy", e.healthy)?;
            d.set_item("in_flight", e.in_flight)?;
            d.set_item("requests", e.requests)?;
            d.set_item("failures", e.failures)?;
            d.set_item("ejections", e.ejections)?;
            d.set_item("probes", e.probes)?;
            d.set_item("watches", e.watches)?;
            out.set_item(e.endpoint, d)?;
        }
        Ok(out)
    }

    /// The figures of this client's watches: `{"upstream": etcd watches open for them,
    /// "shared": of which shared (one per watched prefix), "catch_up": of which a watcher's
    /// own while it catches up from an older revision, "watchers": open watches,
    /// "fell_behind": watches ended so far because they left too many events unread,
    /// "detached": watches that fell behind a replay so far and went on from their own etcd
    /// watch}`. (The informer caches' watches are not counted.)
    fn watch_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let stats = self.client.watch_counters().snapshot();
        let out = pyo3::types::PyDict::new(py);
        out.set_item("upstream", stats.upstream())?;
        out.set_item("shared", stats.shared)?;
        out.set_item("catch_up", stats.catch_up)?;
        out.set_item("watchers", stats.watchers)?;
        out.set_item("fell_behind", stats.fell_behind)?;
        out.set_item("detached", stats.detached)?;
        Ok(out)
    }

    /// Close the client: later calls raise `ClosedError`, open watches end. Closes at once
    /// and returns a completed awaitable (so `await client.close()` and a bare
    /// `client.close()` both work); closing twice is harmless. In a process forked from the
    /// one that made the client it does nothing (the connections are the parent's).
    fn close(&self, py: Python<'_>) -> Ready {
        self.client.close();
        Ready::new(py.None())
    }

    fn __aenter__(slf: Bound<'_, Self>) -> Ready {
        Ready::new(slf.into_any().unbind())
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__(&self, py: Python<'_>, _args: &Bound<'_, PyAny>) -> Ready {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        let state = match self.client.check() {
            Err(_) => format!(", made in process {} before a fork", self.client.pid()),
            Ok(()) if self.client.is_closed() => ", closed".to_owned(),
            Ok(()) => String::new(),
        };
        let endpoints: Vec<String> = self.client.endpoints().iter().map(|e| format!("'{e}'")).collect();
        format!("EtcdClient(endpoints=[{}], timeout={:?}{state})", endpoints.join(", "), self.timeout())
    }
}
