//! `ControllerCore`: the native half of `etcd_resources.controller.Controller` (the queue,
//! the feed, the cache reads; `crate::controller`). Python runs the reconciler and reports
//! each key's outcome.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;

use crate::controller::backoff::Backoff;
use crate::controller::persist::{self, Edited, Reconciled};
use crate::controller::{seconds, Controller, Key, Options, Outcome, Predicate, Priority, Settings, Work};
use crate::error::Error;
use crate::py::bridge::spawn;
use crate::py::convert::to_value;
use crate::py::repository::PyRepositoryCore;
use crate::py::typed::Shape;
use crate::repository::Repository;

/// The queue and feed of one controller on one repository's prefix. `start()` and `next()`
/// return awaitables.
#[pyclass(frozen, name = "ControllerCore", module = "etcd_resources._core")]
pub struct PyControllerCore {
    repo: Repository,
    shape: Shape,
    settings: Settings,
    core: Arc<tokio::sync::OnceCell<Controller>>,
}

impl PyControllerCore {
    fn started(&self) -> PyResult<&Controller> {
        Ok(self.core.get().ok_or_else(|| Error::invalid("the controller has not started"))?)
    }
}

/// The shard of `key` among `count` (FNV-1a, the same in every process).
#[pyfunction]
pub fn shard_of(key: &str, count: u32) -> PyResult<u32> {
    if count == 0 {
        return Err(Error::invalid("the number of shards must be at least 1").into());
    }
    Ok(crate::controller::shard_of(key, count))
}

/// A key to run, as Python gets it: `(key, resource, failures, priority, error, waited)`,
/// where `resource` is what the repository's reads return, or `None` with `error` the
/// exception that building it raised, and `waited` the seconds it waited, due, for a slot.
struct Next(Work, Shape);

impl<'py> IntoPyObject<'py> for Next {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let Next(work, shape) = self;
        let built = shape.stored(py, &work.stored).and_then(|r| r.map_err(PyErr::from));
        let (resource, error) = match built {
            Ok(resource) => (resource, py.None().into_bound(py)),
            Err(e) => (py.None().into_bound(py), e.into_value(py).into_any().into_bound(py)),
        };
        let priority = match work.priority {
            Priority::Live => "live",
            Priority::Initial => "initial",
        };
        let waited = work.waited.as_secs_f64();
        (work.key.as_ref(), resource, work.failures, priority, error, waited).into_bound_py_any(py)
    }
}

/// An edit's result as Python gets it: `(what, resource)`, `what` one of `written`,
/// `deleted`, `unchanged`, `gone`; `resource` the stored one (`None` when deleted or gone).
struct EditResult(Edited, Shape, String);

impl<'py> IntoPyObject<'py> for EditResult {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let EditResult(edited, shape, key) = self;
        let (what, resource) = match edited {
            Edited::Written(Some(doc)) => ("written", shape.value(py, Some(&key), &doc)?),
            Edited::Written(None) => ("deleted", py.None().into_bound(py)),
            Edited::Unchanged(doc) => ("unchanged", shape.value(py, Some(&key), &doc)?),
            Edited::Gone => ("gone", py.None().into_bound(py)),
        };
        (what, resource).into_bound_py_any(py)
    }
}

#[pymethods]
impl PyControllerCore {
    #[new]
    #[pyo3(signature = (repository, *, max_concurrency=8, backoff_base=0.05, backoff_max=300.0, debounce=0.0, debounce_max=0.0, aging=1.0, predicates=vec!["generation".to_owned()]))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        repository: &PyRepositoryCore,
        max_concurrency: usize,
        backoff_base: f64,
        backoff_max: f64,
        debounce: f64,
        debounce_max: f64,
        aging: f64,
        predicates: Vec<String>,
    ) -> PyResult<Self> {
        if max_concurrency == 0 {
            return Err(Error::invalid("max_concurrency must be at least 1").into());
        }
        let queue = Options {
            max_concurrency,
            backoff: Backoff {
                base: seconds("backoff_base", backoff_base)?,
                max: seconds("backoff_max", backoff_max)?,
            },
            debounce: seconds("debounce", debounce)?,
            debounce_max: seconds("debounce_max", debounce_max)?,
            aging: seconds("aging", aging)?,
        };
        let predicates = predicates.iter().map(|p| Predicate::parse(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(PyControllerCore {
            repo: repository.repo.clone(),
            shape: repository.shape.clone(),
            settings: Settings { queue, predicates, ..Settings::default() },
            core: Arc::default(),
        })
    }

    /// Load the cache, queue every key in it and follow changes (an awaitable; once).
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (core, repo, settings) = (self.core.clone(), self.repo.clone(), self.settings.clone());
        spawn(py, async move {
            core.get_or_try_init(|| Controller::start(repo, settings)).await?;
            Ok(())
        })
    }

    /// The next key to run (an awaitable of `(key, resource, failures, priority, error,
    /// waited)`); it
    /// runs until `finish(key, ...)`. Raises what stopped the feed, or `ClosedError`.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        let shape = self.shape.clone();
        self.started()?;
        spawn(py, async move {
            let controller = core.get().ok_or(Error::Closed)?;
            Ok(Next(controller.next().await?, shape))
        })
    }

    /// Queue `keys` (of this controller's prefix) as live changes: something they relate to
    /// changed.
    fn trigger(&self, keys: Vec<String>) -> PyResult<()> {
        let controller = self.started()?;
        let prefix = &self.repo.config().prefix;
        if let Some(stray) = keys.iter().find(|k| !k.starts_with(prefix.as_str())) {
            return Err(Error::invalid(format!("{stray:?} is not under the prefix {prefix:?}")).into());
        }
        controller.trigger(keys.into_iter().map(|k| Key::from(k.as_str())));
        Ok(())
    }

    /// Queue every key of the cache again (counted as a relist): a feed of related changes
    /// fell behind and was reopened.
    fn relist(&self) -> PyResult<()> {
        self.started()?.relist();
        Ok(())
    }

    /// The next keys to run (an awaitable of a list of what `next()` gives): the first once
    /// one is due, then every other due key while slots are free, up to `max`.
    #[pyo3(signature = (max=64))]
    fn next_batch<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        let shape = self.shape.clone();
        self.started()?;
        spawn(py, async move {
            let controller = core.get().ok_or(Error::Closed)?;
            let batch = controller.next_batch(max.max(1)).await?;
            Ok(batch.into_iter().map(|work| Next(work, shape.clone())).collect::<Vec<_>>())
        })
    }

    /// `key`'s reconcile ended: `outcome` is `done`, `requeue` (with `after` seconds), `retry`
    /// (`after`: the delay asked for; `None`: the key's backoff) or `terminal`.
    #[pyo3(signature = (key, outcome, after=None))]
    fn finish(&self, key: &str, outcome: &str, after: Option<f64>) -> PyResult<()> {
        let outcome = Outcome::parse(outcome, after)?;
        self.started()?.finish(key, outcome);
        Ok(())
    }

    /// Record a reconcile on `key`: `status.observed_generation` (when `ok`) and the
    /// `Reconciled` condition, with compare-and-swap (an awaitable of `(what, resource)`).
    #[pyo3(signature = (key, *, generation, ok, reason, message=None))]
    fn record<'py>(
        &self,
        py: Python<'py>,
        key: String,
        generation: Option<i64>,
        ok: bool,
        reason: String,
        message: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (repo, shape) = (self.repo.clone(), self.shape.clone());
        let reconciled = Reconciled { generation, ok, reason, message };
        spawn(py, async move { Ok(EditResult(persist::record(&repo, &key, &reconciled).await?, shape, key)) })
    }

    /// Add (`present=True`) or remove the finalizer `name` on `key`, with compare-and-swap (an
    /// awaitable of `(what, resource)`; `deleted` when the last finalizer of a resource being
    /// deleted went).
    fn set_finalizer<'py>(
        &self,
        py: Python<'py>,
        key: String,
        name: String,
        present: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (repo, shape) = (self.repo.clone(), self.shape.clone());
        spawn(py, async move {
            Ok(EditResult(persist::set_finalizer(&repo, &key, &name, present).await?, shape, key))
        })
    }

    /// Put `status` (a dict, or an object with `to_dict()`/attributes) onto `key`'s stored
    /// resource, with compare-and-swap (an awaitable of `(what, resource)`).
    fn write_status<'py>(
        &self,
        py: Python<'py>,
        key: String,
        status: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = match status.getattr("to_dict") {
            Ok(to_dict) if !status.is_instance_of::<PyDict>() => to_value(&to_dict.call0()?)?,
            _ => to_value(status)?,
        };
        let (repo, shape) = (self.repo.clone(), self.shape.clone());
        spawn(
            py,
            async move { Ok(EditResult(persist::write_status(&repo, &key, &status).await?, shape, key)) },
        )
    }

    /// Run only the keys of `held` among `count` shards (see `crate::controller::shards`): the
    /// others are dropped when queued or handed out, and the keys of a newly held shard are
    /// queued. Before `start()`, only what `start()` queues is limited.
    fn set_shards(&self, count: u32, held: Vec<u32>) -> PyResult<()> {
        match self.core.get() {
            Some(controller) => controller.set_shards(count, &held)?,
            None => {
                self.settings.ownership.set(count, &held)?;
            }
        }
        Ok(())
    }

    /// Stop following changes; `next()` raises `ClosedError` from now on.
    fn stop(&self) {
        if let Some(core) = self.core.get() {
            core.stop();
        }
    }

    /// Counters of the queue and the feed (zeros before `start()`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.get().map(Controller::stats).unwrap_or_default();
        let d = PyDict::new(py);
        let q = s.queue;
        d.set_item("started", q.started)?;
        d.set_item("done", q.done)?;
        d.set_item("requeues", q.requeues)?;
        d.set_item("retries", q.retries)?;
        d.set_item("terminal", q.terminal)?;
        d.set_item("queue_depth", q.depth)?;
        d.set_item("initial_depth", q.initial_depth)?;
        d.set_item("in_flight", q.running)?;
        d.set_item("triggers", q.triggers)?;
        d.set_item("changes", s.changes)?;
        d.set_item("filtered", s.filtered)?;
        d.set_item("gone", s.gone)?;
        d.set_item("relists", s.relists)?;
        d.set_item("cache_timeouts", s.cache_timeouts)?;
        d.set_item("related", s.related)?;
        d.set_item("not_mine", s.not_mine)?;
        d.set_item("since_last_event", s.since_last_event.as_secs_f64())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let q = &self.settings.queue;
        format!(
            "ControllerCore(prefix={:?}, max_concurrency={}, started={})",
            self.repo.config().prefix,
            q.max_concurrency,
            self.core.initialized()
        )
    }
}
