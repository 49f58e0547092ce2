//! Arguments shared by several methods: selectors, resource versions, and the report of
//! unreadable documents.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::Value;

use crate::error::Error;
use crate::py::typed::Shape;
use crate::py::{convert, stored};
use crate::selector::{FieldSelector, LabelSelector, Query};
use crate::store::KeyValue;

/// Parse a resource_version given as a string or an int.
pub fn revision_arg(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(i) = value.extract::<i64>() {
        return Ok(i);
    }
    if let Ok(s) = value.extract::<String>() {
        if let Ok(i) = s.trim().parse() {
            return Ok(i);
        }
    }
    Err(Error::invalid(format!("a resource_version is a revision number (str or int), got {value}")).into())
}

/// `None`, a selector string, or a `dict` (equality on each key; values may be enums or
/// numbers, compared as their stored text).
enum SelectorArg {
    Empty,
    Text(String),
    Pairs(Vec<(String, String)>),
}

fn selector_arg(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<SelectorArg> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(SelectorArg::Empty) };
    if let Ok(text) = obj.cast::<PyString>() {
        return Ok(SelectorArg::Text(text.to_str()?.to_owned()));
    }
    let Ok(d) = obj.cast::<PyDict>() else {
        let ty = obj.get_type().name()?;
        return Err(PyTypeError::new_err(format!("a {what} selector is a dict or a string, not {ty}")));
    };
    let mut pairs = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let (Ok(k), Ok(v)) = (k.extract::<String>(), convert::to_value(&v)) else {
            return Err(
                Error::invalid(format!("a {what} selector dict maps names (str) to values (str)")).into()
            );
        };
        let v = match v {
            Value::String(s) => s,
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            _ => {
                return Err(Error::invalid(format!("{what} {k:?}: a selector value must be a string")).into())
            }
        };
        pairs.push((k, v));
    }
    Ok(SelectorArg::Pairs(pairs))
}

/// A label selector from `None`, a `dict` (equality on each key) or a selector string.
pub fn label_selector(obj: Option<&Bound<'_, PyAny>>) -> PyResult<LabelSelector> {
    Ok(match selector_arg(obj, "label")? {
        SelectorArg::Empty => LabelSelector::default(),
        SelectorArg::Text(t) => LabelSelector::parse(&t)?,
        SelectorArg::Pairs(p) => LabelSelector::from_pairs(p),
    })
}

/// A field selector from `None`, a `dict` (equality on each path) or a selector string.
pub fn field_selector(obj: Option<&Bound<'_, PyAny>>) -> PyResult<FieldSelector> {
    Ok(match selector_arg(obj, "field")? {
        SelectorArg::Empty => FieldSelector::default(),
        SelectorArg::Text(t) => FieldSelector::parse(&t)?,
        SelectorArg::Pairs(p) => FieldSelector::from_pairs(p),
    })
}

/// The query of a list, page or count call.
pub fn query(
    namespace: Option<String>,
    labels: Option<&Bound<'_, PyAny>>,
    fields: Option<&Bound<'_, PyAny>>,
) -> PyResult<Query> {
    Ok(Query { namespace, labels: label_selector(labels)?, fields: field_selector(fields)? })
}

static WARN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Log, on the `etcd_resources` logger, each stored document a listing could not read: once
/// per key and revision (see [`crate::unreadable`]), counted every time.
pub fn report_unreadable(py: Python<'_>, errors: &[Error]) -> PyResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let warn = WARN.get_or_try_init(py, || {
        let logger = py.import("logging")?.call_method1("getLogger", ("etcd_resources",))?;
        Ok::<_, PyErr>(logger.getattr("warning")?.unbind())
    })?;
    for e in errors.iter().filter(|e| crate::unreadable::first(e)) {
        warn.call1(py, ("%s", crate::unreadable::warning(e)))?;
    }
    Ok(())
}

/// A listing handed to Python: the items as dicts (decoded from their bytes on the loop
/// thread), unreadable documents logged and skipped.
pub struct Listed {
    pub items: Vec<KeyValue>,
    pub unreadable: Vec<Error>,
    pub shape: Shape,
}

/// A page handed to Python: `(items, resource_version, continue_token)`.
pub struct Paged(pub crate::repository::Page, pub Shape);

impl<'py> IntoPyObject<'py> for Paged {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let page = self.0;
        let items =
            Listed { items: page.items, unreadable: page.unreadable, shape: self.1 }.into_pyobject(py)?;
        Ok((items, page.revision.to_string(), page.continue_token).into_pyobject(py)?.into_any())
    }
}

impl<'py> IntoPyObject<'py> for Listed {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(mut self, py: Python<'py>) -> PyResult<Self::Output> {
        let items = stored::stored_list(py, &self.items, &self.shape, &mut self.unreadable)?;
        report_unreadable(py, &self.unreadable)?;
        Ok(items)
    }
}
