//! etcd-resources: Kubernetes-style resources in etcd, for asyncio Python services.
//!
//! The core (every module but `py`) is plain Rust with its own tests; `py` holds the PyO3
//! bindings, compiled with the default `python` feature.

pub mod backend;
pub mod client;
pub mod controller;
pub mod document;
pub mod error;
pub mod events;
pub mod fanout;
pub mod informer;
pub mod lease;
pub mod listing;
pub mod metrics;
pub mod names;
pub mod process;
pub mod projection;
pub mod repository;
pub mod selector;
pub mod store;
pub mod watch;

pub use error::{Error, Result};

#[cfg(feature = "python")]
mod py;

/// The extension's allocator. Documents become trees of small allocations (maps, strings) and
/// are freed soon after; glibc's malloc and free were a third of an update's CPU here.
#[cfg(feature = "python")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The native module `etcd_resources._core`.
#[cfg(feature = "python")]
#[pyo3::pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    py::register(m)
}
