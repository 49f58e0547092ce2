"""Recorded histories: every operation a client ran, with when it was invoked and when it
completed (``time.monotonic()``, which on Linux is one clock for every process of the machine),
its arguments and its outcome.

Outcomes:

- ``ok``: it happened, with the value read or the ``resource_version`` written;
- ``fail``: a definite refusal (``ConflictError``, ``AlreadyExistsError``, ``NotFoundError``):
  it did not take effect;
- ``unknown``: a timeout or an unavailable error: it may or may not have taken effect. Its
  completion time is ``math.inf`` (it may take effect at any time after its invocation).

Every operation also has ``returned``: when the client got its answer (or gave up), for the
latency graphs (``plot``); the checker reads ``complete`` only.

The values are counters: a resource's ``status.n`` and its ``metadata.resource_version`` (etcd's
``mod_revision``), the pair a register model with compare-and-swap tracks.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["History", "Kind", "Operation", "Outcome", "Value"]

Outcome = Literal["ok", "fail", "unknown"]
Kind = Literal["get", "create", "cas", "delete", "list"]
Value = tuple[int, int] | None
"""A key's state as read: ``(counter, resource_version)``, or ``None`` for absent."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a history.

    - ``get``: ``read`` is what it returned.
    - ``create``: ``value`` is the counter written; ``version`` the resource_version it got.
    - ``cas``: ``expected`` is the resource_version it was conditional on, ``value`` the counter
      written, ``version`` the resource_version it got.
    - ``delete``: no arguments beyond the key.
    - ``list``: ``key`` is ``""``; ``listing`` maps each listed key to its ``(counter,
      resource_version)``, ``revision`` is the listing's revision.
    """

    id: int
    process: int
    kind: Kind
    key: str
    invoke: float
    complete: float
    outcome: Outcome
    value: int | None = None
    expected: int | None = None
    version: int | None = None
    read: Value = None
    listing: Mapping[str, tuple[int, int]] | None = None
    revision: int | None = None
    error: str | None = None
    returned: float | None = None
    """When the client got its answer (or gave up): ``complete`` but for unknown outcomes."""

    def describe(self) -> str:
        """A one-line description, for reports."""
        parts = [f"#{self.id} p{self.process} {self.kind}"]
        if self.key:
            parts.append(repr(self.key))
        if self.expected is not None:
            parts.append(f"if v={self.expected}")
        if self.value is not None:
            parts.append(f"n:={self.value}")
        parts.append(f"-> {self.outcome}")
        if self.kind == "get" and self.outcome == "ok":
            parts.append(f"{self.read}")
        if self.version is not None:
            parts.append(f"v={self.version}")
        if self.listing is not None:
            parts.append(f"{dict(self.listing)} @{self.revision}")
        if self.error:
            parts.append(f"({self.error})")
        end = "inf" if math.isinf(self.complete) else f"{self.complete:.6f}"
        parts.append(f"[{self.invoke:.6f}, {end}]")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "process": self.process,
            "kind": self.kind,
            "key": self.key,
            "invoke": self.invoke,
            "complete": None if math.isinf(self.complete) else self.complete,
            "outcome": self.outcome,
        }
        for name in ("value", "expected", "version", "revision", "error", "returned"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.read is not None:
            d["read"] = list(self.read)
        if self.listing is not None:
            d["listing"] = {k: list(v) for k, v in self.listing.items()}
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Operation:
        read = d.get("read")
        listing = d.get("listing")
        complete = d.get("complete")
        return Operation(
            id=int(d["id"]),
            process=int(d["process"]),
            kind=d["kind"],
            key=str(d["key"]),
            invoke=float(d["invoke"]),
            complete=math.inf if complete is None else float(complete),
            outcome=d["outcome"],
            value=d.get("value"),
            expected=d.get("expected"),
            version=d.get("version"),
            read=None if read is None else (int(read[0]), int(read[1])),
            listing=None
            if listing is None
            else {str(k): (int(v[0]), int(v[1])) for k, v in listing.items()},
            revision=d.get("revision"),
            error=d.get("error"),
            returned=d.get("returned"),
        )


@dataclass
class History:
    """The operations of one run, in the order they were recorded (several asyncio tasks may
    append to one history; histories of several processes are joined with ``merge``)."""

    operations: list[Operation] = field(default_factory=list)
    _next_id: int = 0

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def __len__(self) -> int:
        return len(self.operations)

    @staticmethod
    def now() -> float:
        """The clock invocations and completions are read from. ``time.monotonic()`` is
        ``clock_gettime(CLOCK_MONOTONIC)`` on Linux: one clock for the whole machine, so the
        times of client processes merged into one history are comparable."""
        return time.monotonic()

    def record(
        self,
        *,
        process: int,
        kind: Kind,
        key: str,
        invoke: float,
        outcome: Outcome,
        complete: float | None = None,
        **details: Any,
    ) -> Operation:
        """Append one completed (or given-up) operation. ``complete`` defaults to now, and is
        ``math.inf`` whatever is given when the outcome is ``unknown``."""
        returned = self.now() if complete is None else complete
        end = math.inf if outcome == "unknown" else returned
        op = Operation(
            id=self._next_id,
            process=process,
            kind=kind,
            key=key,
            invoke=invoke,
            complete=end,
            outcome=outcome,
            returned=returned,
            **details,
        )
        self._next_id += 1
        self.operations.append(op)
        return op

    def count(self, kind: Kind | None = None, outcome: Outcome | None = None) -> int:
        return sum(
            1
            for op in self.operations
            if (kind is None or op.kind == kind) and (outcome is None or op.outcome == outcome)
        )

    def dumps(self) -> str:
        """JSON lines, one operation a line (to hand a history from a client process back)."""
        return "".join(json.dumps(op.to_json()) + "\n" for op in self.operations)

    @staticmethod
    def loads(text: str) -> History:
        ops = [Operation.from_json(json.loads(line)) for line in text.splitlines() if line]
        return History(ops, max((op.id for op in ops), default=-1) + 1)

    @staticmethod
    def merge(histories: Iterable[History]) -> History:
        """One history of several (e.g. one per client process), ordered by invocation and
        renumbered. Their times must come from one clock (``now()`` is machine-wide on
        Linux); a process number found in two of them raises ``ValueError`` (two clients
        recorded as one would hide which operations were concurrent)."""
        histories = list(histories)
        owner: dict[int, int] = {}
        for i, h in enumerate(histories):
            for process in {op.process for op in h.operations}:
                if owner.setdefault(process, i) != i:
                    raise ValueError(f"process {process} is in histories {owner[process]} and {i}")
        ops = [op for h in histories for op in h.operations]
        ops.sort(key=lambda op: op.invoke)
        return History([replace(op, id=i) for i, op in enumerate(ops)], len(ops))
