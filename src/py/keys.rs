//! Dict keys as Python strings, from a small cache: keys repeat from document to document
//! (`metadata`, `name`, `status`, ...), so they are made once. And the hash those maps use.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use pyo3::types::PyString;

/// Keys longer than this are not cached (they rarely repeat).
const KEY_CACHE_MAX_LEN: usize = 48;
/// Cached keys at most; a full cache stops taking new ones.
const KEY_CACHE_SIZE: usize = 1024;

/// FNV-1a: keys are short, and SipHash cost a tenth of a document's decoding here.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type KeyCache = HashMap<Box<str>, Py<PyString>, BuildHasherDefault<Fnv>>;

thread_local! {
    /// Python strings of recently seen dict keys. Thread-local: only threads holding the GIL
    /// use it, and it needs no lock.
    static KEYS: RefCell<KeyCache> = RefCell::new(KeyCache::default());
}

/// A dict key as a Python string, from the cache when it is a key seen before.
pub fn key<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyString> {
    if text.len() > KEY_CACHE_MAX_LEN {
        return PyString::new(py, text);
    }
    KEYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(s) = cache.get(text) {
            return s.bind(py).clone();
        }
        let s = PyString::intern(py, text);
        if cache.len() < KEY_CACHE_SIZE {
            cache.insert(text.into(), s.clone().unbind());
        }
        s
    })
}
