//! Running a [`TypePlan`]: a serde seed per plan node, fed by any deserializer (JSON bytes,
//! YAML, a parsed `Value`, a Python object through `pythonize`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{ClassPlan, FieldDefault, Node, TypePlan};
use crate::document;
use crate::error::Error;
use crate::py::decode::Build;
use crate::py::keys;
use crate::store::KeyValue;

/// Where a build is, and what went wrong: the Python error a node met, and the path to it
/// (collected, innermost first, as the error travels out).
struct Ctx<'py> {
    py: Python<'py>,
    failed: RefCell<Option<PyErr>>,
    /// Why the value could not be read, when it was not a Python error.
    reason: RefCell<Option<String>>,
    path: RefCell<Vec<String>>,
}

impl<'py> Ctx<'py> {
    fn new(py: Python<'py>) -> Self {
        Ctx { py, failed: RefCell::new(None), reason: RefCell::new(None), path: RefCell::new(Vec::new()) }
    }

    /// Fail with a reason of ours.
    fn fail<E: serde::de::Error>(&self, reason: String) -> E {
        let e = E::custom(&reason);
        *self.reason.borrow_mut() = Some(reason);
        e
    }

    /// Fail with a Python error.
    fn fail_py<E: serde::de::Error>(&self, err: PyErr, reason: String) -> E {
        *self.failed.borrow_mut() = Some(err);
        self.fail(reason)
    }

    /// Note that the error in flight happened inside `segment`.
    fn at<'s, E>(&'s self, segment: impl FnOnce() -> String + 's) -> impl FnOnce(E) -> E + 's {
        move |e| {
            self.path.borrow_mut().push(segment());
            e
        }
    }

    /// The `SerializationError` for a failed build of `class` (from the document at `key`).
    fn error(self, class: &str, key: Option<&str>, err: impl fmt::Display) -> PyErr {
        let mut path = self.path.into_inner();
        path.reverse();
        let at = path.concat();
        let at = at.strip_prefix('.').unwrap_or(&at);
        let why = self.reason.into_inner().unwrap_or_else(|| err.to_string());
        let what = match key {
            Some(key) => format!("{key:?} cannot be read as a {class}"),
            None => format!("the document cannot be read as a {class}"),
        };
        let message = if at.is_empty() { format!("{what}: {why}") } else { format!("{what}: {at}: {why}") };
        let py_err: PyErr = Error::serialization(key, message).into();
        if let Some(cause) = self.failed.into_inner() {
            py_err.set_cause(self.py, Some(cause));
        }
        py_err
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

fn short_repr(v: &Bound<'_, PyAny>) -> String {
    let text = v.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into());
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

/// One node of a plan applied to one value.
#[derive(Clone, Copy)]
struct Typed<'a, 'py> {
    plan: &'a TypePlan,
    node: &'a Node,
    ctx: &'a Ctx<'py>,
}

impl<'a, 'py> Typed<'a, 'py> {
    fn with(self, node: &'a Node) -> Self {
        Typed { node, ..self }
    }

    fn generic(self) -> Build<'a, 'py> {
        Build { py: self.ctx.py, failed: &self.ctx.failed, read_only: false }
    }

    /// A decoded value through a Python step (an enum lookup, a parse).
    fn then<E: serde::de::Error>(self, value: Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, E> {
        let py = self.ctx.py;
        if value.is_none() {
            return Ok(value);
        }
        match self.node {
            Node::Float => match value.cast::<PyInt>() {
                Ok(i) if !value.is_instance_of::<pyo3::types::PyBool>() => {
                    let f: f64 = i.extract().map_err(|e| self.ctx.fail_py(e, "not a float".into()))?;
                    Ok(PyFloat::new(py, f).into_any())
                }
                _ => Ok(value),
            },
            Node::Enum { name, lookup } => match lookup.bind(py).get_item(&value) {
                Ok(Some(member)) => Ok(member),
                Ok(None) => Err(self.ctx.fail(format!("{} is not a {name}", short_repr(&value)))),
                Err(e) => Err(self.ctx.fail_py(e, format!("{} is not a {name}", short_repr(&value)))),
            },
            Node::Call { func, what } => func.bind(py).call1((&value,)).map_err(|e| {
                let why = e.value(py).to_string();
                self.ctx.fail_py(e, format!("cannot read {} as {what}: {why}", short_repr(&value)))
            }),
            Node::Union(options, what) => {
                let mut reasons = Vec::new();
                for option in options {
                    if matches!(option, Node::Any) {
                        return Ok(value);
                    }
                    let ctx = Ctx::new(py);
                    let seed = Typed { plan: self.plan, node: option, ctx: &ctx };
                    let mut de = pythonize::Depythonizer::from_object(&value);
                    match seed.deserialize(&mut de) {
                        Ok(v) => return Ok(v),
                        Err(e) => reasons.push(ctx.reason.into_inner().unwrap_or_else(|| e.to_string())),
                    }
                }
                Err(self.ctx.fail(format!("{} is no {what} ({})", short_repr(&value), reasons.join("; "))))
            }
            _ => Ok(value),
        }
    }
}

impl<'de, 'py> DeserializeSeed<'de> for Typed<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.node {
            Node::Any => self.generic().deserialize(d),
            Node::List(..) | Node::Dict(_) | Node::Object(_) => d.deserialize_any(self),
            _ => {
                let value = self.generic().deserialize(d)?;
                self.then(value)
            }
        }
    }
}

/// A map key, borrowed from the input where it can be.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de, 'py> Visitor<'de> for Typed<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Node::List(..) => f.write_str("a list"),
            Node::Dict(_) => f.write_str("an object"),
            Node::Object(i) => write!(f, "an object for {}", self.plan.classes[*i].name),
            _ => f.write_str("a value"),
        }
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.ctx.py.None().into_bound(self.ctx.py))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(self.mismatch(&v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(self.mismatch(&v.to_string()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(self.mismatch(&v.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(self.mismatch(&v.to_string()))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let text: String = v.chars().take(40).collect();
        Err(self.mismatch(&format!("{text:?}")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Node::List(item, make) = self.node else { return Err(self.mismatch("a list")) };
        let py = self.ctx.py;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        let seed = self.with(item);
        while let Some(v) =
            seq.next_element_seed(seed).map_err(self.ctx.at(|| format!("[{}]", items.len())))?
        {
            items.push(v);
        }
        let list =
            PyList::new(py, items).map_err(|e| self.ctx.fail_py(e, "a list could not be made".into()))?;
        match make {
            None => Ok(list.into_any()),
            Some(make) => make
                .bind(py)
                .call1((list,))
                .map_err(|e| self.ctx.fail_py(e, "a collection could not be made".into())),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        match self.node {
            Node::Dict(item) => self.dict(map, item),
            Node::Object(i) => self.object(map, &self.plan.classes[*i]),
            _ => Err(self.mismatch("an object")),
        }
    }
}

impl<'a, 'py> Typed<'a, 'py> {
    fn mismatch<E: serde::de::Error>(self, got: &str) -> E {
        let wanted = match self.node {
            Node::List(..) => "a list".to_owned(),
            Node::Dict(_) => "an object".to_owned(),
            Node::Object(i) => format!("an object for {}", self.plan.classes[*i].name),
            _ => "a value".to_owned(),
        };
        self.ctx.fail(format!("expected {wanted}, got {got}"))
    }

    fn dict<'de, A: MapAccess<'de>>(self, mut map: A, item: &'a Node) -> Result<Bound<'py, PyAny>, A::Error> {
        let py = self.ctx.py;
        let dict = PyDict::new(py);
        while let Some(k) = map.next_key_seed(KeyText)? {
            let v = map.next_value_seed(self.with(item)).map_err(self.ctx.at(|| format!("[{k:?}]")))?;
            dict.set_item(keys::key(py, &k), v)
                .map_err(|e| self.ctx.fail_py(e, "a dict could not be made".into()))?;
        }
        Ok(dict.into_any())
    }

    fn object<'de, A: MapAccess<'de>>(
        self,
        mut map: A,
        class: &'a ClassPlan,
    ) -> Result<Bound<'py, PyAny>, A::Error> {
        let py = self.ctx.py;
        let mut values: Vec<Option<Bound<'py, PyAny>>> = Vec::new();
        values.resize_with(class.fields.len(), || None);
        let mut extra = Vec::new();
        while let Some(k) = map.next_key_seed(KeyText)? {
            let found = class.by_key.get(k.as_ref()).copied().or_else(|| {
                k.bytes()
                    .any(|b| b.is_ascii_uppercase())
                    .then(|| class.by_key.get(&document::snake_case(&k)).copied())
                    .flatten()
            });
            match found {
                Some(i) => {
                    let field = &class.fields[i];
                    let v = map
                        .next_value_seed(self.with(&field.node))
                        .map_err(self.ctx.at(|| format!(".{}", field.name)))?;
                    values[i] = Some(v);
                }
                None => {
                    let v = map.next_value_seed(self.generic()).map_err(self.ctx.at(|| format!(".{k}")))?;
                    extra.push((keys::key(py, &k), v));
                }
            }
        }
        self.instance(class, values, extra)
    }

    /// Make the instance, then set what `__init__` did not take.
    fn instance<E: serde::de::Error>(
        self,
        class: &ClassPlan,
        mut values: Vec<Option<Bound<'py, PyAny>>>,
        extra: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)>,
    ) -> Result<Bound<'py, PyAny>, E> {
        let py = self.ctx.py;
        let cls = class.cls.bind(py);
        let instance = if let Some(fill) = &class.fill {
            // A generated dataclass `__init__` would set exactly these: set them ourselves.
            let fail = |e: PyErr| {
                let why = format!("{} could not be made: {}", class.name, e.value(py));
                self.ctx.fail_py::<E>(e, why)
            };
            let instance = cls.call_method1(pyo3::intern!(py, "__new__"), (cls,)).map_err(fail)?;
            let dict = instance.getattr(pyo3::intern!(py, "__dict__")).map_err(fail)?;
            let dict = dict.cast::<PyDict>().map_err(|e| fail(e.into()))?;
            for f in fill {
                let value = match f.field.and_then(|i| values[i].take()) {
                    Some(v) => v,
                    None => match &f.default {
                        FieldDefault::Required => py.None().into_bound(py),
                        FieldDefault::Value(v) => v.bind(py).clone(),
                        FieldDefault::Factory(make) => make.bind(py).call0().map_err(fail)?,
                    },
                };
                dict.set_item(f.attr.bind(py), value).map_err(fail)?;
            }
            instance
        } else if class.construct {
            let kwargs = PyDict::new(py);
            let fail = |e: PyErr| self.ctx.fail_py::<E>(e, "keyword arguments could not be made".into());
            for &i in &class.required {
                if values[i].is_none() {
                    kwargs.set_item(class.fields[i].attr.bind(py), py.None()).map_err(fail)?;
                }
            }
            for (field, value) in class.fields.iter().zip(values.iter_mut()) {
                if field.init {
                    if let Some(v) = value.take() {
                        kwargs.set_item(field.attr.bind(py), v).map_err(fail)?;
                    }
                }
            }
            cls.call((), Some(&kwargs)).map_err(|e| {
                let why = format!(
                    "{}(...) raised {}: {}",
                    class.name,
                    type_name(e.value(py).as_any()),
                    e.value(py)
                );
                self.ctx.fail_py(e, why)
            })?
        } else {
            cls.call_method1(pyo3::intern!(py, "__new__"), (cls,)).map_err(|e| {
                let why = format!("{}.__new__ raised {}", class.name, e.value(py));
                self.ctx.fail_py(e, why)
            })?
        };
        for (field, value) in class.fields.iter().zip(values) {
            if let Some(v) = value {
                instance.setattr(field.attr.bind(py), v).map_err(|e| {
                    let why = format!("cannot be set on {}: {}", class.name, e.value(py));
                    self.ctx.path.borrow_mut().push(format!(".{}", field.name));
                    self.ctx.fail_py(e, why)
                })?;
            }
        }
        for (key, value) in extra {
            // Undeclared keys are kept where the class lets them be set (not on a read-only
            // property or a slotted class).
            let _ = instance.setattr(key, value);
        }
        if class.has_id && !class.construct {
            if let Ok(uid) = instance
                .getattr(pyo3::intern!(py, "metadata"))
                .and_then(|m| m.getattr(pyo3::intern!(py, "uid")))
            {
                let _ = instance.setattr(pyo3::intern!(py, "id"), uid);
            }
        }
        Ok(instance)
    }
}

/// Build the root class of `plan` from `de`, then set `metadata.resource_version` to
/// `revision` when given.
fn root<'de, 'py, D: Deserializer<'de>>(
    py: Python<'py>,
    plan: &TypePlan,
    de: D,
    key: Option<&str>,
    revision: Option<i64>,
) -> PyResult<Result<Bound<'py, PyAny>, Error>> {
    let ctx = Ctx::new(py);
    let node = Node::Object(0);
    let seed = Typed { plan, node: &node, ctx: &ctx };
    let built = match seed.deserialize(de) {
        Ok(v) => v,
        Err(e) if ctx.reason.borrow().is_none() && ctx.failed.borrow().is_none() => {
            // Not ours: the input itself is broken (invalid JSON).
            return Ok(Err(Error::serialization(key, format!("invalid JSON: {e}"))));
        }
        Err(e) => return Err(ctx.error(&plan.classes[0].name, key, e)),
    };
    if let Some(revision) = revision {
        if let Ok(meta) = built.getattr(pyo3::intern!(py, "metadata")) {
            if !meta.is_none() {
                meta.setattr(pyo3::intern!(py, "resource_version"), revision.to_string())?;
            }
        }
    }
    Ok(Ok(built))
}

/// From a Python object (a dict), through `pythonize`.
pub fn from_python<'py>(
    py: Python<'py>,
    plan: &TypePlan,
    doc: &Bound<'py, PyAny>,
    key: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut de = pythonize::Depythonizer::from_object(doc);
    Ok(root(py, plan, &mut de, key, None)??)
}

/// From a parsed document (the cache's, a watch event's): it holds its `resource_version`.
pub fn from_value<'py>(
    py: Python<'py>,
    plan: &TypePlan,
    key: Option<&str>,
    doc: &Value,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(root(py, plan, doc, key, None)??)
}

/// From a stored key-value: straight from the bytes for JSON, through a `Value` for YAML.
pub fn from_stored<'py>(
    py: Python<'py>,
    plan: &TypePlan,
    kv: &KeyValue,
) -> PyResult<Result<Bound<'py, PyAny>, Error>> {
    let key = String::from_utf8_lossy(&kv.key);
    if !document::is_json_object(&kv.value) {
        return match document::read(&key, &kv.value, kv.mod_revision) {
            Ok(doc) => root(py, plan, &doc, Some(&key), None),
            Err(e) => Ok(Err(e)),
        };
    }
    // Invalid JSON is a document that cannot be read (as for dicts: listings skip it); a
    // document that cannot be rebuilt as the class raises.
    let mut de = serde_json::Deserializer::from_slice(&kv.value);
    let built = root(py, plan, &mut de, Some(&key), Some(kv.mod_revision))?;
    Ok(built.and_then(|v| {
        de.end().map(|()| v).map_err(|e| Error::serialization(Some(&key), format!("invalid JSON: {e}")))
    }))
}
