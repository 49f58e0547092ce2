//! The PyO3 bindings: argument and result conversion, exceptions, async bridging. No
//! business logic lives here.

mod args;
mod backend;
mod client;
mod convert;
mod ready;
mod errors;
mod repository;
mod watch;

use pyo3::prelude::*;

/// Add the classes to the `_core` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::PyClient>()?;
    m.add_class::<backend::PyKvBackend>()?;
    m.add_class::<repository::PyRepositoryCore>()?;
    m.add_class::<watch::PyWatchStream>()?;
    m.add_class::<ready::Ready>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
