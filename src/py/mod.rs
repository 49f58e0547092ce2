//! The PyO3 bindings: argument and result conversion, exceptions, async bridging. No
//! business logic lives here.

mod args;
mod backend;
mod bridge;
mod built;
mod client;
mod controller;
mod convert;
mod decode;
#[cfg(feature = "bench")]
mod decode_bench;
mod errors;
mod fence;
mod gc;
mod keys;
mod lease;
mod listing;
mod logs;
mod readonly;
mod ready;
mod repository;
mod runtime;
mod shared;
mod status;
mod stored;
mod text_backend;
mod trace;
pub(crate) mod typed;
mod watch;

use std::time::Duration;

use pyo3::prelude::*;

/// Prepare for interpreter exit (registered with `atexit` by the package): close every
/// client of this process, so calls in flight end and watches stop, then wait, without the
/// GIL, up to `timeout` seconds until every result has been delivered (see `bridge`): after
/// that no thread of ours touches Python. Returns whether that happened in time. In a forked
/// child, the clients and tasks inherited from the parent are not waited for (they are the
/// parent's).
#[pyfunction]
#[pyo3(signature = (timeout=2.0))]
fn _shutdown(py: Python<'_>, timeout: f64) -> bool {
    crate::client::close_all();
    bridge::quiesce(py, Duration::from_secs_f64(timeout.max(0.0)))
}

/// `prefix` as every class that takes a key prefix keeps it: ending in exactly one `/`
/// (`"/x"` -> `"/x/"`), so that one prefix never covers another's keys (`"/x-other/"`).
/// An empty prefix raises `InvalidArgumentError`.
#[pyfunction]
fn normalize_prefix(prefix: &str) -> PyResult<String> {
    Ok(crate::names::normalize_prefix(prefix)?)
}

/// Add the classes to the `_core` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::PyClient>()?;
    m.add_class::<backend::PyKvBackend>()?;
    m.add_class::<text_backend::PyTextBackend>()?;
    m.add_class::<repository::PyRepositoryCore>()?;
    m.add_class::<watch::PyWatchStream>()?;
    m.add_class::<listing::PyListStream>()?;
    m.add_class::<ready::Ready>()?;
    m.add_class::<lease::PyLease>()?;
    m.add_class::<typed::TypePlan>()?;
    m.add_class::<controller::PyControllerCore>()?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    #[cfg(feature = "bench")]
    {
        m.add_function(wrap_pyfunction!(decode_bench::_decode_bench, m)?)?;
        m.add_function(wrap_pyfunction!(trace::_trace, m)?)?;
        m.add_function(wrap_pyfunction!(trace::_trace_now, m)?)?;
        m.add_function(wrap_pyfunction!(trace::_trace_take, m)?)?;
    }
    m.add_function(wrap_pyfunction!(logs::flush_logs, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_prefix, m)?)?;
    m.add_function(wrap_pyfunction!(controller::shard_of, m)?)?;
    m.add_function(wrap_pyfunction!(fence::_use_fence_var, m)?)?;
    bridge::init();
    crate::events::set_notifier(Box::new(bridge::wake_last_loop));
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
