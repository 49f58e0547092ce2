//! etcd-resources: Kubernetes-style resources in etcd, for asyncio Python services.
//!
//! The core (every module but `py`) is plain Rust with its own tests; `py` holds the PyO3
//! bindings, compiled with the default `python` feature.
//!
//! # Floors
//!
//! The modules from the ground up (the top floor first, the ground floor last). A module
//! imports from its own floor or below, never from above, and never in a circle; a
//! submodule may use its parent's items, but siblings do not import each other in a circle;
//! test modules may use what sits above them to set a scene up.
//! A module belongs to the closest of itself and its ancestors named here; `*` marks a room
//! kept for a module to come. `tests/test_layering.py` checks every import against this
//! plan, and that `docs/development.md` shows the same plan.
//!
//! ```text
//! bindings    | py
//! py classes  | py::client py::lease py::watch py::listing py::repository py::backend py::text_backend py::controller
//! py bridge   | py::bridge py::args py::ready
//! py values   | py::status py::stored py::built py::shared py::typed py::decode py::convert
//! py leaves   | py::keys py::gc py::runtime py::logs py::errors py::readonly py::fence py::trace
//! controller  | controller
//! repository  | repository backend text_backend
//! cache       | lease fanout informer
//! reading     | listing watch rewind progress
//! client      | client
//! documents   | document selector projection
//! stores      | store::etcd store::memory
//! seam        | store
//! ground      | error metrics names process events jitter unreadable
//! ```

pub mod backend;
pub mod client;
pub mod controller;
pub mod document;
pub mod error;
pub mod events;
pub mod fanout;
pub mod informer;
pub mod jitter;
pub mod lease;
pub mod listing;
pub mod metrics;
pub mod names;
pub mod process;
pub mod progress;
pub mod projection;
pub mod repository;
pub mod rewind;
pub mod selector;
pub mod store;
pub mod text_backend;
pub mod unreadable;
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
