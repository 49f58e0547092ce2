//! Hands the core's log records (`crate::events`) to Python's `logging`, on the thread that
//! drains them: the event loop's (after delivering results, or woken for the purpose), or
//! whoever calls `flush_logs()`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::events::{self, Level};

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Log every queued record on the `etcd_resources` logger.
pub fn flush(py: Python<'_>) -> PyResult<()> {
    let (records, dropped) = events::drain();
    if records.is_empty() && dropped == 0 {
        return Ok(());
    }
    let logger = LOGGER.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("logging")?.call_method1("getLogger", ("etcd_resources",))?.unbind())
    })?;
    let logger = logger.bind(py);
    if dropped > 0 {
        logger.call_method1("warning", ("%d log records were dropped (nobody drained them)", dropped))?;
    }
    for record in records {
        let level = match record.level {
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error => 40,
        };
        logger.call_method1("log", (level, "%s", record.message))?;
    }
    Ok(())
}

/// Log the core's queued records now (they are also logged whenever results are delivered
/// to an event loop).
#[pyfunction]
pub fn flush_logs(py: Python<'_>) -> PyResult<()> {
    flush(py)
}
