"""Jepsen-style testing support: record histories of operations run through the public API
(``Recorder``, ``run_workload``) and check them for linearizability against a per-key register
model with compare-and-swap (``check``). See docs/reliability.md, "Histories checked for
linearizability".

A fault harness for this repository's tests and ``make jepsen`` (``python -m jepsen.run`` from
the checkout), beside the package and not in its wheel: a service never imports it."""

from __future__ import annotations

from .checker import CheckResult, KeyResult, State, check, check_key
from .history import History, Kind, Operation, Outcome, Value
from .workload import DEFINITE, INDEFINITE, Recorder, counter_resource, run_workload

__all__ = [
    "DEFINITE",
    "INDEFINITE",
    "CheckResult",
    "History",
    "KeyResult",
    "Kind",
    "Operation",
    "Outcome",
    "Recorder",
    "State",
    "Value",
    "check",
    "check_key",
    "counter_resource",
    "run_workload",
]
