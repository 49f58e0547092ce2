//! Pausing CPython's cyclic garbage collector while many new containers are made.

use pyo3::prelude::*;

/// Run `f`, which makes many containers and no cycles, with the cyclic garbage collector off.
///
/// Otherwise the collector runs every 700 new containers and walks the same young, live
/// documents again at each generation while a listing is being built (a large share of a
/// cached query's time: docs/benchmarks.md, "Figures behind the code"). It is on again when `f` returns, so the objects are collected as usual
/// from then on. Python code may run inside `f` (a typed read calls the classes' `__init__`);
/// it only finds the collector paused for as long as the build takes.
pub fn without_gc<T>(_py: Python<'_>, f: impl FnOnce() -> T) -> T {
    /// Turns the collector back on however `f` ends (a panic included).
    struct Resume(bool);
    impl Drop for Resume {
        fn drop(&mut self) {
            if self.0 {
                // SAFETY: still on the thread holding the GIL; this flips the enabled flag.
                unsafe { pyo3::ffi::PyGC_Enable() };
            }
        }
    }
    // SAFETY: the GIL is held (`_py`); this only flips the collector's enabled flag.
    let _resume = Resume(unsafe { pyo3::ffi::PyGC_Disable() } != 0);
    f()
}
