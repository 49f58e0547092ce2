//! Python values to JSON values and back, in Rust.
//!
//! Writing follows the encoder of the repository we replace (Neuroglia's `JsonEncoder`):
//! datetimes, dates and times as ISO text, enums as their values, UUIDs and decimals as text,
//! dataclasses and plain objects as their public attributes (names not starting with `_`,
//! values not `None`); dicts and lists as they are. Anything else is a `SerializationError`
//! naming where in the value it was.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde_json::{Map, Number, Value};

use crate::error::Error;

/// How deep a value may nest before we call it a cycle.
const MAX_DEPTH: usize = 128;

static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ENUM: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UUID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

struct ConvError {
    path: Vec<String>,
    message: String,
}

impl ConvError {
    fn new(message: impl Into<String>) -> Self {
        ConvError { path: Vec::new(), message: message.into() }
    }

    fn at(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }
}

type Conv<T> = Result<T, ConvError>;

fn py_err(e: PyErr) -> ConvError {
    ConvError::new(e.to_string())
}

/// Convert a Python value to JSON, for storing.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    convert(obj, 0).map_err(|e| {
        let mut path = e.path;
        path.reverse();
        let at = if path.is_empty() { String::new() } else { format!(" at {}", path.join("")) };
        Error::serialization(None, format!("cannot store the value{at}: {}", e.message)).into()
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

fn is_instance(
    obj: &Bound<'_, PyAny>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
) -> Conv<bool> {
    let ty = cell.import(obj.py(), module, name).map_err(py_err)?;
    obj.is_instance(ty).map_err(py_err)
}

fn key_string(key: &Bound<'_, PyAny>) -> Conv<String> {
    if let Ok(s) = key.cast::<PyString>() {
        return s.to_str().map(str::to_owned).map_err(py_err);
    }
    if is_instance(key, &ENUM, "enum", "Enum")? {
        return key_string(&key.getattr("value").map_err(py_err)?);
    }
    if key.is_instance_of::<PyInt>() || key.is_instance_of::<PyFloat>() || key.is_none() {
        // json.dumps writes these keys as text; so do we.
        return match convert(key, 0)? {
            Value::Null => Ok("null".into()),
            v => Ok(v.to_string()),
        };
    }
    Err(ConvError::new(format!("a dict key must be a string, got {}", type_name(key))))
}

fn convert(obj: &Bound<'_, PyAny>, depth: usize) -> Conv<Value> {
    if depth > MAX_DEPTH {
        return Err(ConvError::new(format!("nested deeper than {MAX_DEPTH} levels (a reference cycle?)")));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Ok(Value::String(s.to_str().map_err(py_err)?.to_owned()));
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = key_string(&k)?;
            let value = convert(&v, depth + 1).map_err(|e| e.at(format!("['{key}']")))?;
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return seq(l.iter(), depth);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return seq(t.iter(), depth);
    }
    // Enums before int/str: an IntEnum or a str-mixin enum is stored by its value.
    if is_instance(obj, &ENUM, "enum", "Enum")? {
        return convert(&obj.getattr("value").map_err(py_err)?, depth + 1);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.is_truthy().map_err(py_err)?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(ConvError::new("integer does not fit in 64 bits"));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract().map_err(py_err)?;
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| ConvError::new(format!("{f} is not a JSON number")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str().map_err(py_err)?.to_owned()));
    }
    if is_instance(obj, &DATE, "datetime", "date")? || is_instance(obj, &TIME, "datetime", "time")? {
        let text = obj.call_method0("isoformat").map_err(py_err)?;
        return Ok(Value::String(text.extract().map_err(py_err)?));
    }
    if is_instance(obj, &UUID, "uuid", "UUID")? || is_instance(obj, &DECIMAL, "decimal", "Decimal")? {
        return Ok(Value::String(obj.str().map_err(py_err)?.to_string()));
    }
    if let Ok(attrs) = obj.getattr("__dict__") {
        if let Ok(d) = attrs.cast::<PyDict>() {
            return public_attributes(d.iter(), depth);
        }
    }
    if let Ok(fields) = obj.getattr("__dataclass_fields__") {
        // A dataclass with __slots__: no __dict__, but its fields.
        let mut pairs = Vec::new();
        for name in fields.try_iter().map_err(py_err)? {
            let name = name.map_err(py_err)?;
            let value =
                obj.getattr(name.cast::<PyString>().map_err(|e| py_err(e.into()))?).map_err(py_err)?;
            pairs.push((name, value));
        }
        return public_attributes(pairs.into_iter(), depth);
    }
    Err(ConvError::new(format!("values of type {} cannot be stored", type_name(obj))))
}

fn seq<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> Conv<Value> {
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        out.push(convert(&item, depth + 1).map_err(|e| e.at(format!("[{i}]")))?);
    }
    Ok(Value::Array(out))
}

fn public_attributes<'py>(
    pairs: impl Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    depth: usize,
) -> Conv<Value> {
    let mut map = Map::new();
    for (k, v) in pairs {
        let key = key_string(&k)?;
        if key.starts_with('_') || v.is_none() {
            continue;
        }
        let value = convert(&v, depth + 1).map_err(|e| e.at(format!(".{key}")))?;
        map.insert(key, value);
    }
    Ok(Value::Object(map))
}

/// Convert a JSON value to Python objects (dict, list, str, int, float, bool, None).
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    build(py, value, false)
}

/// [`to_python`] with `etcd_resources.readonly` dicts and lists: objects to share.
pub fn to_python_read_only<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    build(py, value, true)
}

fn build<'py>(py: Python<'py>, value: &Value, read_only: bool) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                let f = n.as_f64().ok_or_else(|| PyValueError::new_err(format!("bad number {n}")))?;
                PyFloat::new(py, f).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let items = a.iter().map(|item| build(py, item, read_only)).collect::<PyResult<Vec<_>>>()?;
            if read_only {
                crate::py::readonly::list(py, items)?.into_any()
            } else {
                PyList::new(py, items)?.into_any()
            }
        }
        Value::Object(m) => {
            let dict = if read_only { crate::py::readonly::dict(py)? } else { PyDict::new(py) };
            for (k, v) in m {
                dict.set_item(crate::py::keys::key(py, k), build(py, v, read_only)?)?;
            }
            dict.into_any()
        }
    })
}

/// A JSON value handed to Python when a future completes.
pub struct Json(pub Value);

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        to_python(py, &self.0)
    }
}
