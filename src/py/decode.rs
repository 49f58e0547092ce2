//! Stored JSON bytes straight into Python objects, on the thread that holds the GIL.
//!
//! No `serde_json::Value` in between: serde_json's parser drives a visitor that builds the
//! dicts, lists, strings and numbers Python will hold, so a document is parsed once and its
//! objects are made once. Dict keys that repeat from document to document (`metadata`,
//! `name`, `status`, ...) come from a small cache of Python strings instead of being made
//! again. Then the document gets the normal shape of [`crate::document::normalize`] and its
//! `resource_version`; YAML documents take the `Value` road.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::document;
use crate::error::Error;
use crate::py::built::without_gc;
use crate::py::convert::to_python;
use crate::py::readonly;
use crate::py::typed::Shape;
use crate::store::KeyValue;

/// Keys longer than this are not cached (they rarely repeat).
const KEY_CACHE_MAX_LEN: usize = 48;
/// Cached keys at most; a full cache stops taking new ones.
const KEY_CACHE_SIZE: usize = 1024;

/// FNV-1a: keys are short, and SipHash cost a tenth of a document's decoding here.
#[derive(Default)]
pub(crate) struct Fnv(u64);

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

/// The Python error a visitor met, carried through serde's error type.
struct Failed<'a>(&'a RefCell<Option<PyErr>>);

impl Failed<'_> {
    fn fail<E: serde::de::Error>(&self, err: PyErr) -> E {
        *self.0.borrow_mut() = Some(err);
        E::custom("a Python object could not be made")
    }
}

/// Builds one JSON value as a Python object.
#[derive(Clone, Copy)]
pub(crate) struct Build<'a, 'py> {
    pub(crate) py: Python<'py>,
    pub(crate) failed: &'a RefCell<Option<PyErr>>,
    /// Make read-only dicts and lists (`crate::py::readonly`) instead of plain ones.
    pub(crate) read_only: bool,
}

impl<'de, 'py> DeserializeSeed<'de> for Build<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Builds a dict key.
struct Key<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for Key<'py> {
    type Value = Bound<'py, PyString>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for Key<'py> {
    type Value = Bound<'py, PyString>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(key(self.0, v))
    }
}

impl<'de, 'py> Visitor<'de> for Build<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.py.None().into_bound(self.py))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyBool::new(self.py, v).to_owned().into_any())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(PyInt::new(self.py, v).into_any())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(PyInt::new(self.py, v).into_any())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.py, v).into_any())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.py, v).into_any())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        let list = if self.read_only { readonly::list(self.py, items) } else { PyList::new(self.py, items) };
        list.map(Bound::into_any).map_err(|e| Failed(self.failed).fail(e))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = new_dict(self.py, self.read_only).map_err(|e| Failed(self.failed).fail(e))?;
        while let Some(k) = map.next_key_seed(Key(self.py))? {
            let v = map.next_value_seed(self)?;
            dict.set_item(k, v).map_err(|e| Failed(self.failed).fail(e))?;
        }
        Ok(dict.into_any())
    }
}

/// An empty dict, read-only or not.
fn new_dict(py: Python<'_>, read_only: bool) -> PyResult<Bound<'_, PyDict>> {
    if read_only {
        readonly::dict(py)
    } else {
        Ok(PyDict::new(py))
    }
}

/// Parse JSON bytes into Python objects.
fn json<'py>(py: Python<'py>, bytes: &[u8], read_only: bool) -> Result<Bound<'py, PyAny>, JsonError> {
    let failed = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed =
        Build { py, failed: &failed, read_only }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match failed.into_inner() {
        Some(py_err) => JsonError::Python(py_err),
        None => JsonError::Invalid(e),
    })
}

/// Parse JSON bytes into Python objects, nothing else (for `decode_bench`).
pub(crate) fn parse<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    json(py, bytes, false).map_err(|e| match e {
        JsonError::Python(e) => e,
        JsonError::Invalid(e) => pyo3::exceptions::PyValueError::new_err(e.to_string()),
    })
}

/// Why bytes did not become Python objects.
enum JsonError {
    Invalid(serde_json::Error),
    Python(PyErr),
}

/// A stored key-value as a Python document in the normal shape with its `resource_version`:
/// what [`document::read`] then [`to_python`] make, in one pass for JSON. The inner error is a
/// document that cannot be read (listings report and skip those); the outer one, Python's.
pub fn stored<'py>(py: Python<'py>, kv: &KeyValue) -> PyResult<Result<Bound<'py, PyAny>, Error>> {
    stored_as(py, kv, false)
}

/// [`stored`] made of read-only dicts and lists (`crate::py::readonly`).
pub fn stored_read_only<'py>(py: Python<'py>, kv: &KeyValue) -> PyResult<Result<Bound<'py, PyAny>, Error>> {
    stored_as(py, kv, true)
}

fn stored_as<'py>(
    py: Python<'py>,
    kv: &KeyValue,
    read_only: bool,
) -> PyResult<Result<Bound<'py, PyAny>, Error>> {
    let key = || String::from_utf8_lossy(&kv.key).into_owned();
    if !document::is_json_object(&kv.value) {
        let doc = match document::read(&key(), &kv.value, kv.mod_revision) {
            Ok(doc) => doc,
            Err(e) => return Ok(Err(e)),
        };
        if !read_only {
            return to_python(py, &doc).map(Ok);
        }
        let json = match document::encode(&key(), &doc, document::Format::Json) {
            Ok(json) => json,
            Err(e) => return Ok(Err(e)),
        };
        return stored_as(py, &KeyValue { value: json, ..kv.clone() }, true);
    }
    let doc = match json(py, &kv.value, read_only) {
        Ok(doc) => doc,
        Err(JsonError::Python(e)) => return Err(e),
        Err(JsonError::Invalid(e)) => {
            return Ok(Err(Error::serialization(Some(&key()), format!("invalid JSON: {e}"))))
        }
    };
    let dict = doc.cast::<PyDict>()?;
    normalize(py, dict, read_only)?;
    let meta = match dict.get_item(pyo3::intern!(py, "metadata"))? {
        Some(meta) => meta,
        None => {
            let meta = new_dict(py, read_only)?.into_any();
            dict.set_item(pyo3::intern!(py, "metadata"), &meta)?;
            meta
        }
    };
    if let Ok(meta) = meta.cast::<PyDict>() {
        meta.set_item(pyo3::intern!(py, "resource_version"), kv.mod_revision.to_string())?;
    }
    Ok(Ok(doc))
}

/// A stored document handed to Python (decoded on the loop thread, straight from its bytes),
/// as a dict or as an instance of the repository's class.
pub struct Stored(pub KeyValue, pub Shape);

impl<'py> IntoPyObject<'py> for Stored {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        Ok(self.1.stored(py, &self.0)??)
    }
}

/// Stored documents as a Python list; those that cannot be read are added to `unreadable`.
pub fn stored_list<'py>(
    py: Python<'py>,
    items: &[KeyValue],
    shape: &Shape,
    unreadable: &mut Vec<Error>,
) -> PyResult<Bound<'py, PyList>> {
    let mut out = Vec::with_capacity(items.len());
    // Many new containers and instances, no cycles among them: see `without_gc`.
    without_gc(py, || {
        for kv in items {
            match shape.stored(py, kv)? {
                Ok(doc) => out.push(doc),
                Err(e) => unreadable.push(crate::unreadable::at(e, kv.mod_revision)),
            }
        }
        Ok::<_, PyErr>(())
    })?;
    PyList::new(py, out)
}

/// [`document::normalize`] on a Python dict: `api_version` -> `apiVersion`, camelCase
/// metadata keys -> snake_case (the first of two spellings wins).
fn normalize(py: Python<'_>, doc: &Bound<'_, PyDict>, read_only: bool) -> PyResult<()> {
    if !doc.contains(pyo3::intern!(py, "apiVersion"))? {
        if let Some(v) = doc.get_item(pyo3::intern!(py, "api_version"))? {
            doc.del_item(pyo3::intern!(py, "api_version"))?;
            doc.set_item(pyo3::intern!(py, "apiVersion"), v)?;
        }
    }
    let Some(meta) = doc.get_item(pyo3::intern!(py, "metadata"))? else { return Ok(()) };
    let Ok(meta) = meta.cast::<PyDict>() else { return Ok(()) };
    let mut camel = false;
    for k in meta.keys() {
        if let Ok(k) = k.cast::<PyString>() {
            camel |= k.to_str()?.bytes().any(|b| b.is_ascii_uppercase());
        }
    }
    if !camel {
        return Ok(());
    }
    let snake = new_dict(py, read_only)?;
    for (k, v) in meta.iter() {
        let name = document::snake_case(k.cast::<PyString>()?.to_str()?);
        if !snake.contains(&name)? {
            snake.set_item(name, v)?;
        }
    }
    doc.set_item(pyo3::intern!(py, "metadata"), snake)
}
