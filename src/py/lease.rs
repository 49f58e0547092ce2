//! `Lease`: a granted etcd lease, kept alive in Rust (see `crate::lease`).

use pyo3::prelude::*;

use crate::lease::Lease;
use crate::py::bridge::spawn;
use crate::py::errors::exception;

/// A lease. With keep-alive, renewed in the background every third of its TTL until
/// `cancel()` or `revoke()`; `wait_lost()` resolves (to the exception saying why) if etcd
/// drops it. In a process forked from the one that granted it, `revoke()` and `wait_lost()`
/// raise `ForkedError` and `cancel()` does nothing.
#[pyclass(frozen, name = "Lease", module = "etcd_resources._core")]
pub struct PyLease {
    pub(crate) lease: Lease,
}

#[pymethods]
impl PyLease {
    /// The lease id (pass it as `lease=` to writes).
    #[getter]
    fn id(&self) -> i64 {
        self.lease.id
    }

    /// Its time to live, in seconds.
    #[getter]
    fn ttl(&self) -> i64 {
        self.lease.ttl
    }

    /// Whether etcd dropped the lease (revoked, or expired during an outage).
    #[getter]
    fn lost(&self) -> bool {
        self.lease.is_lost()
    }

    /// Stop renewing; the lease (and its keys) expire after the TTL.
    fn cancel(&self) {
        self.lease.cancel();
    }

    /// Stop renewing and revoke now: its keys are deleted. Returns an awaitable.
    fn revoke<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.lease.client().check()?;
        let lease = self.lease.clone();
        spawn(py, async move { lease.revoke().await })
    }

    /// Wait until the lease is lost. Returns an awaitable of the exception saying why.
    fn wait_lost<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.lease.client().check()?;
        let lease = self.lease.clone();
        spawn(py, async move { Ok(Lost(lease.lost().await)) })
    }

    fn __repr__(&self) -> String {
        let state = if self.lease.is_lost() { ", lost" } else { "" };
        format!("Lease(id={:#x}, ttl={}{state})", self.lease.id, self.lease.ttl)
    }
}

/// The reason a lease was lost, handed to Python as an exception instance.
struct Lost(crate::error::Error);

impl<'py> IntoPyObject<'py> for Lost {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        Ok(exception(py, &self.0).into_value(py).into_bound(py).into_any())
    }
}
