"""Change predicates written in Python: ``predicates=["generation", changed_image]`` with
``changed_image(old, new) -> bool`` (controller-runtime's ``UpdateFunc``, kube-runtime's
predicate functions).

The named predicates are evaluated in Rust on the decoded documents, with no Python call per
change. A function needs both versions as Python objects, so it gets a feed of its own: the
prefix's shared watch (opened before the listing, like a relation's), where each modification
is built twice, as the repository's reads return it (dicts, or its class), and given to the
functions; one that returns true triggers the key, as a live change. A modification any named
predicate passes is triggered anyway (a predicate passes if any does); creations and deletions
always trigger. Functions run on the event loop: keep them cheap. One that raises ends
``run()`` with its error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ClosedError
from ..repository import _Repository
from .relations import _Feed

__all__ = ["ChangeFilter", "ChangePredicate", "split"]

ChangePredicate = Callable[[Any, Any], bool]
"""``predicate(old, new)``: whether a modification of a resource triggers a reconcile."""


def split(predicates: Sequence[str | ChangePredicate]) -> tuple[list[str], list[ChangePredicate]]:
    """The names (for the Rust feed) and the functions of ``predicates``."""
    if isinstance(predicates, str):
        raise TypeError(f"predicates= takes a list, not the string {predicates!r}")
    names: list[str] = []
    functions: list[ChangePredicate] = []
    for predicate in predicates:
        if isinstance(predicate, str):
            names.append(predicate)
        elif callable(predicate):
            functions.append(predicate)
        else:
            raise TypeError(
                f"a predicate is a name or a function (old, new) -> bool, not {predicate!r}"
            )
    return names, functions


class ChangeFilter(_Feed):
    """The controller's own prefix, for its predicate functions."""

    def __init__(self, repository: _Repository[Any], functions: list[ChangePredicate]) -> None:
        super().__init__(repository._core)
        self._repository = repository
        self._functions = functions
        self.passed = 0  # modifications a function let through

    async def run(self, trigger: Callable[[list[str]], None]) -> None:
        """Trigger each modified key a function passes, until the stream ends."""
        stream = self.stream()
        core = self._repository._core
        prefix = core.prefix
        build = self._repository._from_document
        while (batch := await stream.next_batch()) is not None:
            keys: list[str] = []
            for kind, name, value, previous, revision in batch:
                if kind != "MODIFIED" or not isinstance(value, Mapping):
                    continue
                if not isinstance(previous, Mapping):
                    continue  # the Rust feed triggers what it cannot compare
                old, new = build(previous), build(value)
                if any(function(old, new) for function in self._functions):
                    key = prefix + name
                    core.note_seen(key, revision)  # the run reads the cache once it has it
                    keys.append(key)
            if keys:
                self.passed += len(keys)
                trigger(list(dict.fromkeys(keys)))
        raise ClosedError("the watch of the controller's prefix ended")
