//! Arguments shared by several methods: selectors, and the report of unreadable documents.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;

use crate::error::Error;
use crate::py::convert;
use crate::selector::LabelSelector;

/// A label selector from `None`, a `dict` (equality on each key) or a selector string.
pub fn label_selector(obj: Option<&Bound<'_, PyAny>>) -> PyResult<LabelSelector> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(LabelSelector::default());
    };
    if let Ok(text) = obj.cast::<PyString>() {
        return Ok(LabelSelector::parse(text.to_str()?)?);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut pairs = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let (Ok(k), Ok(v)) = (k.extract::<String>(), convert::to_value(&v)) else {
                return Err(
                    Error::invalid("a label selector dict maps label names (str) to values (str)").into()
                );
            };
            let v = match v {
                Value::String(s) => s,
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => {
                    return Err(
                        Error::invalid(format!("label {k:?}: a selector value must be a string")).into()
                    )
                }
            };
            pairs.push((k, v));
        }
        return Ok(LabelSelector::from_pairs(pairs));
    }
    let ty = obj.get_type().name()?;
    Err(Error::invalid(format!("a label selector is a dict or a string, not {ty}")).into())
}

static WARN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Log, on the `etcd_resources` logger, each stored document a listing could not read.
pub fn report_unreadable(py: Python<'_>, errors: &[Error]) -> PyResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let warn = WARN.get_or_try_init(py, || {
        let logger = py.import("logging")?.call_method1("getLogger", ("etcd_resources",))?;
        Ok::<_, PyErr>(logger.getattr("warning")?.unbind())
    })?;
    for e in errors {
        warn.call1(py, ("skipped an unreadable stored document: %s", e.to_string()))?;
    }
    Ok(())
}

/// A listing handed to Python: the items as dicts, unreadable documents logged.
pub struct Listed {
    pub items: Vec<Value>,
    pub unreadable: Vec<Error>,
}

impl<'py> IntoPyObject<'py> for Listed {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        report_unreadable(py, &self.unreadable)?;
        convert::JsonList(self.items).into_pyobject(py)
    }
}
