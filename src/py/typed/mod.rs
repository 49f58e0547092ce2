//! Typed reads: stored documents straight into the application's own classes.
//!
//! `typed.py` works out, once per class, which attribute gets which conversion and how an
//! instance is made (see its module doc); [`TypePlan`] holds that plan and runs it here, as a
//! serde [`DeserializeSeed`](serde::de::DeserializeSeed), so a document becomes instances
//! straight from its bytes (or the cache's parsed `Value`, or a Python dict through
//! `pythonize`), with no intermediate dict, as pydantic-core runs a validator compiled once
//! per schema.

mod build;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};
use serde_json::Value;

use crate::error::Error;
use crate::py::keys::Fnv;
use crate::store::KeyValue;

/// How a JSON value becomes the declared type of an attribute.
pub(crate) enum Node {
    /// As decoded: dicts, lists, strings, numbers.
    Any,
    /// An int becomes a float.
    Float,
    /// A list of items, then `make(list)` (a set, a tuple) when given.
    List(Box<Node>, Option<Py<PyAny>>),
    /// A dict of values.
    Dict(Box<Node>),
    /// A member of an enum, looked up by value (or by name) in a dict made once.
    Enum { name: String, lookup: Py<PyDict> },
    /// `func(value)` for a value that is not null (datetimes, UUIDs, decimals, ...).
    Call { func: Py<PyAny>, what: String },
    /// An instance of the class at this index of the plan.
    Object(usize),
    /// The first of several types that reads the value.
    Union(Vec<Node>, String),
}

/// One attribute of a class.
pub(crate) struct Field {
    pub attr: Py<PyString>,
    pub name: String,
    pub node: Node,
    /// Passed to `__init__` as a keyword argument.
    pub init: bool,
}

/// How documents become instances of one class.
pub(crate) struct ClassPlan {
    pub cls: Py<PyType>,
    pub name: String,
    pub fields: Vec<Field>,
    /// Field index by document key (the attribute's name, its camelCase spelling, aliases).
    pub by_key: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    /// Fields `__init__` requires (given as `None` when the document lacks them: the encoder
    /// leaves `None` values out).
    pub required: Vec<usize>,
    /// Made by calling the class (else by `cls.__new__(cls)`).
    pub construct: bool,
    /// A Neuroglia entity: its `id` is its `metadata.uid`.
    pub has_id: bool,
    /// For a dataclass whose `__init__` is the generated one: the fields it sets, in order,
    /// set straight into the instance's `__dict__` instead (see `typed._dataclass_fill`).
    pub fill: Option<Vec<Fill>>,
}

/// A field a generated dataclass `__init__` sets.
pub(crate) struct Fill {
    pub attr: Py<PyString>,
    /// The plan's field of that name, if it has one (not for `_private` fields).
    pub field: Option<usize>,
    pub default: FieldDefault,
}

/// What a field gets when the document lacks it.
pub(crate) enum FieldDefault {
    /// `None` (the encoder leaves `None` values out).
    Required,
    Value(Py<PyAny>),
    Factory(Py<PyAny>),
}

/// The plan of one class and of every class its attributes reach (the root is the first).
#[pyclass(frozen, name = "TypePlan", module = "etcd_resources._core")]
pub struct TypePlan {
    pub(crate) classes: Vec<ClassPlan>,
}

fn node(obj: &Bound<'_, PyAny>) -> PyResult<Node> {
    let t = obj.cast::<PyTuple>()?;
    let kind: String = t.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "any" => Node::Any,
        "float" => Node::Float,
        "list" => {
            let make = t.get_item(2)?;
            Node::List(Box::new(node(&t.get_item(1)?)?), (!make.is_none()).then(|| make.unbind()))
        }
        "dict" => Node::Dict(Box::new(node(&t.get_item(1)?)?)),
        "enum" => Node::Enum {
            name: t.get_item(1)?.getattr("__name__")?.extract()?,
            lookup: t.get_item(2)?.cast_into::<PyDict>()?.unbind(),
        },
        "call" => Node::Call { func: t.get_item(1)?.unbind(), what: t.get_item(2)?.extract()? },
        "object" => Node::Object(t.get_item(1)?.extract()?),
        "union" => {
            let options = t.get_item(1)?.cast_into::<PyList>()?;
            Node::Union(options.iter().map(|o| node(&o)).collect::<PyResult<_>>()?, t.get_item(2)?.extract()?)
        }
        other => return Err(PyValueError::new_err(format!("unknown plan node {other:?}"))),
    })
}

/// Every class a node names (however deep) is in the plan's table of `count` classes.
fn check_classes(node: &Node, count: usize) -> PyResult<()> {
    match node {
        Node::Object(j) if *j >= count => {
            Err(PyValueError::new_err("a plan node names a class the plan lacks"))
        }
        Node::List(item, _) | Node::Dict(item) => check_classes(item, count),
        Node::Union(options, _) => options.iter().try_for_each(|o| check_classes(o, count)),
        _ => Ok(()),
    }
}

/// A class's plan from `typed.py`'s `ClassPlan` (its `FieldPlan`s and `FillPlan`s), read by
/// attribute name.
fn class_plan(obj: &Bound<'_, PyAny>, count: usize) -> PyResult<ClassPlan> {
    let py = obj.py();
    let mut fields = Vec::new();
    let mut by_key = HashMap::default();
    for (i, f) in obj.getattr(intern!(py, "fields"))?.try_iter()?.enumerate() {
        let f = f?;
        let attr = f.getattr(intern!(py, "attr"))?.cast_into::<PyString>()?;
        for key in f.getattr(intern!(py, "keys"))?.try_iter()? {
            by_key.entry(key?.extract::<String>()?).or_insert(i);
        }
        let node = node(&f.getattr(intern!(py, "node"))?)?;
        check_classes(&node, count)?;
        fields.push(Field {
            name: attr.to_str()?.to_owned(),
            attr: attr.unbind(),
            node,
            init: f.getattr(intern!(py, "init"))?.extract()?,
        });
    }
    let mut required = Vec::new();
    for name in obj.getattr(intern!(py, "required"))?.try_iter()? {
        let name: String = name?.extract()?;
        if let Some(i) = fields.iter().position(|f| f.name == name) {
            required.push(i);
        }
    }
    let fill_spec = obj.getattr(intern!(py, "fill"))?;
    let fill = if fill_spec.is_none() {
        None
    } else {
        let mut fill = Vec::new();
        for entry in fill_spec.try_iter()? {
            let entry = entry?;
            let attr = entry.getattr(intern!(py, "attr"))?.cast_into::<PyString>()?;
            let name = attr.to_str()?.to_owned();
            let how: String = entry.getattr(intern!(py, "how"))?.extract()?;
            let default = match how.as_str() {
                "required" => FieldDefault::Required,
                "value" => FieldDefault::Value(entry.getattr(intern!(py, "default"))?.unbind()),
                "factory" => FieldDefault::Factory(entry.getattr(intern!(py, "default"))?.unbind()),
                other => return Err(PyValueError::new_err(format!("unknown field default {other:?}"))),
            };
            fill.push(Fill {
                attr: attr.unbind(),
                field: fields.iter().position(|f| f.name == name),
                default,
            });
        }
        Some(fill)
    };
    Ok(ClassPlan {
        fill,
        cls: obj.getattr(intern!(py, "cls"))?.cast_into::<PyType>()?.unbind(),
        name: obj.getattr(intern!(py, "name"))?.extract()?,
        fields,
        by_key,
        required,
        construct: obj.getattr(intern!(py, "construct"))?.extract()?,
        has_id: obj.getattr(intern!(py, "has_id"))?.extract()?,
    })
}

#[pymethods]
impl TypePlan {
    /// A plan from `typed.py`'s table of classes (`ClassPlan`s; see `_Planner` there).
    #[new]
    fn new(classes: &Bound<'_, PyList>) -> PyResult<Self> {
        let count = classes.len();
        let classes = classes.iter().map(|c| class_plan(&c, count)).collect::<PyResult<Vec<_>>>()?;
        if classes.is_empty() {
            return Err(PyValueError::new_err("a plan needs a class"));
        }
        Ok(TypePlan { classes })
    }

    /// An instance of the plan's class from a document (a dict, or any value `pythonize`
    /// reads). Raises `SerializationError` naming the attribute that cannot be read.
    fn build<'py>(&self, py: Python<'py>, doc: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        build::from_python(py, self, doc, None)
    }

    fn __repr__(&self) -> String {
        format!("TypePlan({})", self.classes[0].name)
    }
}

/// What reads hand to Python: dicts, or instances of a plan's class.
#[derive(Clone, Default)]
pub enum Shape {
    #[default]
    Dicts,
    Typed(Arc<Py<TypePlan>>),
}

impl Shape {
    /// From the optional plan a repository was made with.
    pub fn of(plan: Option<Py<TypePlan>>) -> Self {
        plan.map_or(Shape::Dicts, |p| Shape::Typed(Arc::new(p)))
    }

    /// A stored key-value as a Python object of this shape. The inner error is a document that
    /// cannot be read as JSON or YAML (listings report and skip those); the outer one, a
    /// document that cannot be rebuilt as the class, or Python's.
    pub fn stored<'py>(&self, py: Python<'py>, kv: &KeyValue) -> PyResult<Result<Bound<'py, PyAny>, Error>> {
        match self {
            Shape::Dicts => crate::py::decode::stored(py, kv),
            Shape::Typed(plan) => build::from_stored(py, plan.get(), kv),
        }
    }

    /// A parsed document (the cache's, a watch event's) as a Python object of this shape.
    pub fn value<'py>(&self, py: Python<'py>, key: Option<&str>, doc: &Value) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Shape::Dicts => crate::py::convert::to_python(py, doc),
            Shape::Typed(plan) => build::from_value(py, plan.get(), key, doc),
        }
    }
}
