//! `ListStream`: the rest of a listing, chunk by chunk. `RepositoryCore.list` resolves to the
//! first chunk's documents and, when more follow, a stream of the others; the Python thread
//! makes the objects of one chunk while Rust reads and filters the next ones.

use std::sync::Arc;

use pyo3::prelude::*;
use tokio::sync::{mpsc, Mutex};

use crate::error::Result;
use crate::process::Local;
use crate::py::args::Listed;
use crate::py::bridge::spawn;
use crate::py::typed::Shape;
use crate::repository::Chunk;

type Chunks = mpsc::Receiver<Result<Chunk>>;

/// The chunks of a listing not yet handed over. `next()` resolves to the next chunk's
/// documents, or `None` after the last (`ForkedError` in a process forked from the one that
/// listed).
#[pyclass(frozen, name = "ListStream", module = "etcd_resources._core")]
pub struct PyListStream {
    /// The task that reads the chunks is the lister's: a forked child leaves it alone.
    rx: Local<Arc<Mutex<Chunks>>>,
    shape: Shape,
}

#[pymethods]
impl PyListStream {
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.rx.check()?;
        let rx = (*self.rx).clone();
        let shape = self.shape.clone();
        spawn(py, async move {
            match rx.lock().await.recv().await {
                Some(chunk) => Ok(Some(listed(chunk?, shape))),
                None => Ok(None),
            }
        })
    }
}

/// A chunk's documents for Python (unreadable ones logged and skipped).
fn listed(chunk: Chunk, shape: Shape) -> Listed {
    Listed { items: chunk.items, unreadable: chunk.unreadable, shape }
}

/// A listing's first chunk and, unless it was the last, the stream of the others.
pub struct FirstChunk {
    first: Chunk,
    rest: Option<Chunks>,
    shape: Shape,
}

impl FirstChunk {
    /// Wait for the first chunk of `rx`.
    pub async fn read(mut rx: Chunks, shape: Shape) -> Result<Self> {
        let first = rx.recv().await.unwrap_or_else(|| Ok(Chunk { last: true, ..Chunk::default() }))?;
        let rest = (!first.last).then_some(rx);
        Ok(FirstChunk { first, rest, shape })
    }
}

impl<'py> IntoPyObject<'py> for FirstChunk {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let items = listed(self.first, self.shape.clone()).into_pyobject(py)?;
        let rest =
            self.rest.map(|rx| PyListStream { rx: Local::new(Arc::new(Mutex::new(rx))), shape: self.shape });
        Ok((items, rest).into_pyobject(py)?.into_any())
    }
}
