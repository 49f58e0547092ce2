"""A linearizability checker for recorded histories (Wing & Gong's search with Lowe's
memoisation, as in Lowe's "Testing for linearizability" and porcupine), over a per-key register
model with compare-and-swap and etcd's revisions.

The model is per key, so a history is checked key by key (P-compositionality: a history is
linearizable iff each key's sub-history is). A key's state is a tuple

    (value, version, last, floor)

- ``value``: the counter, or ``None`` when the key is absent;
- ``version``: its ``resource_version`` (etcd's ``mod_revision``), or ``None`` when absent or
  when the write that made it had an unknown outcome (the next read of it binds it);
- ``last``: a lower bound on the revision of the key's last change (exact when known; for a
  delete or an unknown write, whose revisions the client never learns, only a bound);
- ``floor``: a lower bound on the revision of the key's next change.

Operations and when they are allowed:

- ``get`` returns the current value (or absent): it must equal the state's.
- ``create`` ok iff absent; fails iff present. ``cas(expected)`` ok iff present with version
  ``expected``; fails iff absent or another version. ``delete`` ok iff present; fails iff
  absent. A successful create/CAS returns its revision: it must be ``>= floor`` (revisions of a
  key increase along the linearization).
- An ``unknown`` write may or may not have taken effect: it is never required, and may be
  linearized anywhere after its invocation (no completion bound) when its precondition holds.
  Unknown reads are dropped (they change nothing).
- A ``list`` at revision ``R`` is, for every key, a read of the key as of ``R`` (a snapshot):
  each listed item's version is ``<= R``, and for each key the list is linearized at a point
  where the state equals what it listed, the last change was at a revision ``<= R``, and from
  which every later change has a revision ``> R`` (``floor`` becomes ``R + 1``). Revisions are
  one total order across keys (etcd's), so these per-key conditions with one ``R`` make the
  list one snapshot across keys. Every condition is implied by etcd's semantics (sound: no
  false alarms); the checker cannot see a delete's revision, so a list missing a delete is
  caught only through real-time order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .history import History, Operation, Value

__all__ = ["CheckResult", "KeyResult", "State", "check", "check_key"]

State = tuple[int | None, int | None, int, int]
"""``(value, version, last, floor)``: see the module doc."""

INITIAL: State = (None, None, 0, 1)
"""An absent key nothing was ever written to."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One operation of one key's sub-history (a list becomes one per key)."""

    op: Operation
    kind: str  # get, snapshot, create, cas, delete
    outcome: str
    invoke: float
    complete: float
    read: Value = None
    revision: int = 0


@dataclass(frozen=True)
class KeyResult:
    """The verdict on one key's sub-history."""

    key: str
    linearizable: bool | None
    """``None`` when the search gave up (``max_states``) without a verdict."""
    operations: int
    states: int
    linearized: int = 0
    """On a violation: how many of the required operations the longest partial linearization
    found held."""
    stuck: tuple[Operation, ...] = ()
    """On a violation: the operations none of which could come next after that prefix."""
    final: State | None = None
    """The state at the end of a linearization found (when linearizable)."""

    def explain(self) -> str:
        if self.linearizable:
            return f"{self.key!r}: linearizable ({self.operations} operations)"
        if self.linearizable is None:
            return f"{self.key!r}: no verdict after {self.states} states"
        lines = [
            f"{self.key!r}: not linearizable: after {self.linearized} operations, none of these"
            " can come next:"
        ]
        lines += [f"  {op.describe()}" for op in self.stuck]
        return "\n".join(lines)


@dataclass
class CheckResult:
    """The verdict on a history."""

    keys: dict[str, KeyResult] = field(default_factory=dict)
    list_violations: list[str] = field(default_factory=list)

    @property
    def linearizable(self) -> bool:
        """True iff every key is linearizable and every list is well formed."""
        return not self.list_violations and all(r.linearizable for r in self.keys.values())

    @property
    def violations(self) -> list[str]:
        out = list(self.list_violations)
        out += [r.explain() for r in self.keys.values() if r.linearizable is False]
        return out

    @property
    def inconclusive(self) -> list[str]:
        return [k for k, r in self.keys.items() if r.linearizable is None]

    def explain(self) -> str:
        return "\n".join([r.explain() for r in self.keys.values()] + self.list_violations)


def _observe(state: State, read: Value) -> State | None:
    """The state after a read that returned ``read``, or ``None`` if it cannot have."""
    value, version, last, floor = state
    if read is None:
        return state if value is None else None
    n, v = read
    if value is None or value != n:
        return None
    if version is None:  # written by an unknown write: its revision is now known
        return (value, v, v, max(floor, v + 1)) if v >= last else None
    return state if v == version else None


def _change(state: State, value: int | None, revision: int | None) -> State | None:
    """The state after a change to ``value`` at ``revision`` (``None``: not known)."""
    floor = state[3]
    if revision is None:
        return (value, None, floor, floor + 1)
    if revision < floor:
        return None
    return (value, revision, revision, revision + 1)


def _apply(state: State, s: _Step) -> State | None:
    """The model: the state after ``s`` (applied, for an unknown write), or ``None``."""
    value, version, last, floor = state
    present = value is not None
    op = s.op
    if s.kind == "get":
        return _observe(state, s.read)
    if s.kind == "snapshot":
        after = _observe(state, s.read)
        if after is None or after[2] > s.revision:
            return None
        return (after[0], after[1], after[2], max(after[3], s.revision + 1))
    if s.kind == "create":
        if s.outcome == "fail":
            return state if present else None
        return None if present else _change(state, op.value, op.version)
    if s.kind == "cas":
        expected = op.expected
        if s.outcome == "fail":
            return state if (not present or version is None or version != expected) else None
        if not present or expected is None:
            return None
        if version is None:
            if expected < last:
                return None
        elif version != expected:
            return None
        bound = (value, expected, expected, max(floor, expected + 1))
        return _change(bound, op.value, op.version)
    if s.kind == "delete":
        if s.outcome == "fail":
            return None if present else state
        return _change(state, None, None) if present else None
    raise ValueError(f"unknown operation kind {s.kind!r}")


def _steps_for(key: str, ops: Iterable[Operation]) -> list[_Step]:
    steps: list[_Step] = []
    for op in ops:
        if op.kind == "list":
            if op.outcome != "ok" or op.listing is None or op.revision is None:
                continue
            steps.append(
                _Step(
                    op,
                    "snapshot",
                    "ok",
                    op.invoke,
                    op.complete,
                    read=op.listing.get(key),
                    revision=op.revision,
                )
            )
        elif op.key == key:
            if op.kind == "get" and op.outcome != "ok":
                continue  # a read that did not complete changed nothing
            complete = math.inf if op.outcome == "unknown" else op.complete
            steps.append(_Step(op, op.kind, op.outcome, op.invoke, complete, read=op.read))
    return steps


def check_key(
    key: str, ops: Iterable[Operation], *, initial: State = INITIAL, max_states: int = 2_000_000
) -> KeyResult:
    """Search for a linearization of one key's operations (lists included, as reads of the
    key at their revision)."""
    steps = _steps_for(key, ops)
    required = sorted((s for s in steps if s.outcome != "unknown"), key=lambda s: s.invoke)
    optional = sorted((s for s in steps if s.outcome == "unknown"), key=lambda s: s.invoke)
    m = len(required)
    all_required = (1 << m) - 1
    start = (0, initial)
    seen: set[tuple[int, State]] = {start}
    stack = [start]
    best_count, best_mask, best_state = -1, 0, initial
    while stack:
        mask, state = stack.pop()
        if mask & all_required == all_required:
            return KeyResult(key, True, len(steps), len(seen), final=state)
        done = (mask & all_required).bit_count()
        if done > best_count:
            best_count, best_mask, best_state = done, mask, state
        if len(seen) > max_states:
            return KeyResult(key, None, len(steps), len(seen))
        successors: list[tuple[int, State]] = []
        min_complete = math.inf
        i = ((~mask) & (mask + 1)).bit_length() - 1  # the first required step not linearized
        while i < m:
            if not (mask >> i) & 1:
                s = required[i]
                if s.invoke > min_complete:
                    break  # a step not linearized completed before this one began
                after = _apply(state, s)
                if after is not None:
                    successors.append((mask | (1 << i), after))
                min_complete = min(min_complete, s.complete)
            i += 1
        tried: set[tuple[str, int | None, int | None]] = set()
        for j, s in enumerate(optional, start=m):
            if s.invoke > min_complete:
                break
            # Unknown writes with the same effect are interchangeable here (no completion
            # bound): trying the earliest invoked is enough (symmetry reduction).
            effect = (s.kind, s.op.value, s.op.expected)
            if not (mask >> j) & 1 and effect not in tried:
                tried.add(effect)
                after = _apply(state, s)
                if after is not None:
                    successors.append((mask | (1 << j), after))
        for nxt in reversed(successors):  # the earliest invoked is tried first
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    stuck = _candidates(required, optional, best_mask)
    return KeyResult(
        key,
        False,
        len(steps),
        len(seen),
        linearized=best_count,
        stuck=tuple(s.op for s in stuck),
        final=best_state,
    )


def _candidates(required: Sequence[_Step], optional: Sequence[_Step], mask: int) -> list[_Step]:
    """The steps that could have come next after ``mask`` by real time (for reports)."""
    out: list[_Step] = []
    min_complete = math.inf
    for i, s in enumerate(required):
        if (mask >> i) & 1:
            continue
        if s.invoke > min_complete:
            break
        out.append(s)
        min_complete = min(min_complete, s.complete)
    return out


def check(
    history: History | Iterable[Operation],
    *,
    keys: Iterable[str] = (),
    max_states: int = 2_000_000,
) -> CheckResult:
    """Check a history: each key (those of its operations and listings, and ``keys``: keys
    that start absent) for linearizability, and each list for its items' versions being at
    most its revision."""
    ops = list(history)
    all_keys = set(keys)
    result = CheckResult()
    for op in ops:
        if op.kind == "list":
            if op.outcome == "ok" and op.listing is not None:
                all_keys.update(op.listing)
                for k, (_n, v) in op.listing.items():
                    if op.revision is None or v > op.revision:
                        result.list_violations.append(
                            f"{op.describe()}: {k!r} at version {v}, after the list's revision"
                        )
        else:
            all_keys.add(op.key)
    for k in sorted(all_keys):
        key_ops = [op for op in ops if op.key == k or op.kind == "list"]
        result.keys[k] = check_key(k, key_ops, max_states=max_states)
    return result
