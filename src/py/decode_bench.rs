//! Bench-only (`benches/decode.py`): JSON bytes into Python objects by this package's decoder
//! (`decode.rs`: a serde visitor building the objects, dict keys from a cache of Python
//! strings) or by `pythonize`'s serializer fed straight from serde_json's parser by
//! `serde_transcode` (no intermediate value either), timed in Rust so that both pay the same
//! around them. DESIGN.md names `pythonize` for moving values between Rust and Python;
//! `docs/decisions.md` has the numbers behind keeping our own decoder.

use std::time::Instant;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::py::decode;

/// Decode `doc` `n` times with `how` (`"ours"` or `"pythonize"`); the seconds it took, and the
/// last object made (to check both make the same).
#[pyfunction]
pub fn _decode_bench<'py>(
    py: Python<'py>,
    doc: &[u8],
    how: &str,
    n: usize,
) -> PyResult<(f64, Bound<'py, PyAny>)> {
    let mut last = py.None().into_bound(py);
    let start = Instant::now();
    for _ in 0..n {
        last = match how {
            "ours" => decode::parse(py, doc)?,
            "pythonize" => {
                let mut de = serde_json::Deserializer::from_slice(doc);
                serde_transcode::transcode(&mut de, pythonize::Pythonizer::new(py))
                    .map_err(|e| PyValueError::new_err(e.to_string()))?
            }
            other => return Err(PyValueError::new_err(format!("no decoder {other:?}"))),
        };
    }
    Ok((start.elapsed().as_secs_f64(), last))
}
