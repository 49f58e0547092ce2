"""The linearizability checker (``jepsen``): hand-written histories it must
accept and reject, a property test on histories of a sequential model with random overlaps,
and one recorded run against the session's etcd (no faults)."""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from etcd_resources import EtcdClient, ResourceRepository
from jepsen import History, Operation, check, run_workload


class H:
    """A history written by hand: ``h.op("cas", "a", 0, 2, "ok", expected=3, value=1, ...)``."""

    def __init__(self) -> None:
        self.history = History()

    def op(
        self, kind: Any, key: str, invoke: float, complete: float, outcome: Any = "ok", **kw: Any
    ) -> H:
        self.history.record(
            process=0,
            kind=kind,
            key=key,
            invoke=invoke,
            complete=complete,
            outcome=outcome,
            **kw,
        )
        return self

    def ok(self) -> bool:
        return check(self.history).linearizable


# --- histories that are linearizable --------------------------------------------------------


def test_sequential_history_is_linearizable() -> None:
    h = (
        H()
        .op("get", "a", 0, 1, read=None)
        .op("create", "a", 2, 3, value=0, version=5)
        .op("get", "a", 4, 5, read=(0, 5))
        .op("cas", "a", 6, 7, expected=5, value=1, version=8)
        .op("cas", "a", 8, 9, "fail", expected=5, value=1)
        .op("create", "a", 10, 11, "fail", value=0)
        .op("delete", "a", 12, 13)
        .op("delete", "a", 14, 15, "fail")
        .op("get", "a", 16, 17, read=None)
        .op("create", "a", 18, 19, value=0, version=12)
    )
    result = check(h.history)
    assert result.linearizable, result.explain()
    assert result.keys["a"].final == (0, 12, 12, 13)


def test_concurrent_operations_may_take_effect_in_either_order() -> None:
    # The get overlaps the CAS: it may read the old or the new value.
    base = H().op("create", "a", 0, 1, value=0, version=2)
    old = base.op("cas", "a", 2, 6, expected=2, value=1, version=3).op(
        "get", "a", 3, 4, read=(0, 2)
    )
    assert old.ok()
    new = H().op("create", "a", 0, 1, value=0, version=2)
    new.op("cas", "a", 2, 6, expected=2, value=1, version=3).op("get", "a", 3, 4, read=(1, 3))
    assert new.ok()


def test_two_cases_from_one_version_one_wins() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("cas", "a", 2, 5, expected=2, value=1, version=3)
        .op("cas", "a", 2, 5, "fail", expected=2, value=1)
    )
    assert h.ok()


def test_a_list_is_a_snapshot_at_its_revision() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("create", "b", 2, 3, value=0, version=3)
        .op("list", "", 4, 5, listing={"a": (0, 2), "b": (0, 3)}, revision=3)
        # concurrent with a write to b at 7: a list at 6 sees the old b
        .op("cas", "b", 6, 9, expected=3, value=1, version=7)
        .op("list", "", 6, 9, listing={"a": (0, 2), "b": (0, 3)}, revision=6)
        .op("list", "", 6, 9, listing={"a": (0, 2), "b": (1, 7)}, revision=7)
    )
    assert h.ok(), check(h.history).explain()


# --- histories that are not -----------------------------------------------------------------


def test_stale_read_after_a_completed_write_is_caught() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("cas", "a", 2, 3, expected=2, value=1, version=4)
        .op("get", "a", 4, 5, read=(0, 2))
    )
    result = check(h.history)
    assert not result.linearizable
    assert "get 'a'" in result.violations[0]


def test_two_cases_from_one_version_both_ok_is_caught() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("cas", "a", 2, 5, expected=2, value=1, version=3)
        .op("cas", "a", 2, 5, expected=2, value=1, version=4)
    )
    assert not h.ok()


def test_lost_acknowledged_write_is_caught() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("cas", "a", 2, 3, expected=2, value=1, version=3)
        .op("cas", "a", 4, 5, expected=3, value=2, version=4)
        .op("get", "a", 6, 7, read=(1, 3))  # the second write is gone
    )
    assert not h.ok()


def test_read_of_a_value_never_written_is_caught() -> None:
    h = H().op("create", "a", 0, 1, value=0, version=2).op("get", "a", 2, 3, read=(7, 2))
    assert not h.ok()
    assert not H().op("get", "a", 0, 1, read=(0, 2)).ok()


def test_a_create_over_a_present_key_is_caught() -> None:
    h = H().op("create", "a", 0, 1, value=0, version=2).op("create", "a", 2, 3, value=0, version=3)
    assert not h.ok()


def test_versions_that_go_back_are_caught() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=5)
        .op("cas", "a", 2, 3, expected=5, value=1, version=4)
    )
    assert not h.ok()
    # After a delete, a new create must still come at a later revision.
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=5)
        .op("delete", "a", 2, 3)
        .op("create", "a", 4, 5, value=0, version=5)
    )
    assert not h.ok()


def test_lists_that_are_not_snapshots_are_caught() -> None:
    # An item newer than the list's revision.
    h = H().op("create", "a", 0, 1, value=0, version=5)
    h.op("list", "", 2, 3, listing={"a": (0, 5)}, revision=4)
    assert not h.ok()
    assert "after the list's revision" in check(h.history).violations[0]
    # A list at revision 6 that misses the write at revision 5, completed before it began.
    h = H().op("create", "a", 0, 1, value=0, version=5)
    h.op("list", "", 2, 3, listing={}, revision=6)
    assert not h.ok()
    # Two keys at revision 7: b's write at 6 must be in it, even while a list is concurrent
    # with it, since the list's revision is past it.
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("create", "b", 2, 10, value=0, version=6)
        .op("list", "", 3, 9, listing={"a": (0, 2)}, revision=7)
    )
    assert not h.ok()
    # A list at 4 followed (in real time) by a write at revision 3 to a key it listed.
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("list", "", 2, 3, listing={"a": (0, 2)}, revision=4)
        .op("cas", "a", 5, 6, expected=2, value=1, version=3)
    )
    assert not h.ok()


# --- unknown outcomes -----------------------------------------------------------------------


def test_unknown_write_that_took_effect() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("cas", "a", 2, math.inf, "unknown", expected=2, value=1)
        .op("get", "a", 10, 11, read=(1, 9))  # it did, at revision 9
        .op("cas", "a", 12, 13, expected=9, value=2, version=10)
    )
    assert h.ok(), check(h.history).explain()


def test_unknown_write_that_did_not() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("cas", "a", 2, math.inf, "unknown", expected=2, value=1)
        .op("get", "a", 10, 11, read=(0, 2))
        .op("cas", "a", 12, 13, expected=2, value=5, version=14)
    )
    assert h.ok(), check(h.history).explain()


def test_unknown_write_takes_effect_at_most_once() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("cas", "a", 2, math.inf, "unknown", expected=2, value=1)
        .op("get", "a", 10, 11, read=(1, 9))
        .op("get", "a", 12, 13, read=(0, 2))  # undone?
    )
    assert not h.ok()


def test_unknown_write_cannot_take_effect_before_it_was_invoked() -> None:
    h = (
        H()
        .op("create", "a", 0, 1, value=0, version=2)
        .op("get", "a", 2, 3, read=(1, 9))
        .op("cas", "a", 4, math.inf, "unknown", expected=2, value=1)
    )
    assert not h.ok()


def test_unknown_create_and_delete() -> None:
    assert (
        H()
        .op("create", "a", 0, math.inf, "unknown", value=0)
        .op("get", "a", 5, 6, read=(0, 4))
        .ok()
    )
    h = H().op("create", "a", 0, 1, value=0, version=2).op("delete", "a", 2, math.inf, "unknown")
    assert h.op("get", "a", 5, 6, read=None).op("get", "a", 7, 8, read=None).ok()
    h = H().op("create", "a", 0, 1, value=0, version=2).op("delete", "a", 2, math.inf, "unknown")
    assert not h.op("get", "a", 5, 6, read=None).op("get", "a", 7, 8, read=(0, 2)).ok()


def test_a_history_round_trips_through_json() -> None:
    h = H().op("create", "a", 0, 1, value=0, version=2).op("cas", "a", 2, 9, "unknown", expected=2)
    h.op("list", "", 3, 4, listing={"a": (0, 2)}, revision=3)
    again = History.loads(h.history.dumps())
    assert again.operations == h.history.operations


# --- property: histories of a sequential model, with random overlaps --------------------------


@st.composite
def sequential_histories(draw: st.DrawFn) -> list[Operation]:
    """Operations run one at a time on a real register (revisions from a global counter) at
    times 10, 20, 30, ...; each is recorded with an interval around its moment that may
    overlap its neighbours', and some writes are recorded as unknown (applied or not)."""
    keys = ["a", "b"]
    state: dict[str, tuple[int, int]] = {}
    revision = 1
    history = History()
    steps = draw(st.integers(1, 24))
    for i in range(steps):
        at = 10.0 * (i + 1)
        invoke = at - draw(st.floats(0, 25))
        complete = at + draw(st.floats(0, 25))
        kind = draw(st.sampled_from(["get", "create", "cas", "delete", "list"]))
        key = draw(st.sampled_from(keys))
        unknown = kind != "get" and kind != "list" and draw(st.integers(0, 4)) == 0
        applied = not unknown or draw(st.booleans())
        rec: dict[str, Any] = {}
        outcome = "ok"
        current = state.get(key)
        if kind == "get":
            rec["read"] = current
        elif kind == "list":
            rec["listing"] = dict(state)
            rec["revision"] = revision
            key = ""
        elif kind == "create":
            rec["value"] = 0
            if current is not None:
                outcome = "fail"
            elif applied:
                revision += draw(st.integers(1, 3))  # other keys' writes too
                state[key] = (0, revision)
                rec["version"] = revision
        elif kind == "cas":
            expected = current[1] if current and draw(st.booleans()) else draw(st.integers(1, 9))
            n = (current[0] if current else 0) + 1
            rec.update(expected=expected, value=n)
            if current is None or current[1] != expected:
                outcome = "fail"
            elif applied:
                revision += draw(st.integers(1, 3))  # other keys' writes too
                state[key] = (n, revision)
                rec["version"] = revision
        else:
            if current is None:
                outcome = "fail"
            elif applied:
                revision += draw(st.integers(1, 3))  # other keys' writes too
                del state[key]
        if unknown and outcome == "ok":
            outcome = "unknown"
            rec.pop("version", None)
        history.record(
            process=i, kind=kind, key=key, invoke=invoke, complete=complete, outcome=outcome, **rec
        )
    return history.operations


@settings(max_examples=300, deadline=None)
@given(sequential_histories())
def test_histories_of_a_sequential_model_are_linearizable(ops: list[Operation]) -> None:
    result = check(ops, max_states=200_000)
    assert result.linearizable, "\n".join(op.describe() for op in ops) + "\n" + result.explain()


@settings(max_examples=200, deadline=None)
@given(sequential_histories(), st.data())
def test_a_read_of_a_value_never_written_is_always_caught(
    ops: list[Operation], data: st.DataObject
) -> None:
    reads = [i for i, op in enumerate(ops) if op.kind == "get"]
    if not reads:
        return
    i = data.draw(st.sampled_from(reads))
    bad = Operation(**{**_fields(ops[i]), "read": (10_000, 10_000)})
    assert not check([*ops[:i], bad, *ops[i + 1 :]], max_states=200_000).linearizable


def _fields(op: Operation) -> dict[str, Any]:
    return {name: getattr(op, name) for name in Operation.__slots__}


def test_many_unknown_outcomes_stay_tractable() -> None:
    """3,000 operations of a sequential model, a third of the writes unknown (half of those
    applied): unknown creates and deletes with the same effect are interchangeable, and the
    search tries only one of them at a time, so it ends in well under a second."""
    rng = random.Random(1)
    state: dict[str, tuple[int, int]] = {}
    revision = 1
    history = History()
    for i in range(3_000):
        at = 10.0 * (i + 1)
        kind = rng.choice(["get", "cas", "cas", "cas", "create", "delete", "list"])
        key = rng.choice("abc")
        unknown = kind in ("cas", "create", "delete") and rng.random() < 0.3
        applied = not unknown or rng.random() < 0.5
        rec: dict[str, Any] = {}
        outcome = "ok"
        current = state.get(key)
        if kind == "get":
            rec["read"] = current
        elif kind == "list":
            rec.update(listing=dict(state), revision=revision)
            key = ""
        elif current is None and kind in ("cas", "delete"):
            outcome = "fail"
            if kind == "cas":
                rec.update(expected=1, value=1)
        elif current is not None and kind == "create":
            outcome = "fail"
            rec["value"] = 0
        elif kind == "delete":
            if applied:
                revision += 1
                del state[key]
        else:
            n = 0 if current is None else current[0] + 1
            rec["value"] = n
            if current is not None:
                rec["expected"] = current[1]
            if applied:
                revision += 1
                state[key] = (n, revision)
                rec["version"] = revision
        if unknown and outcome == "ok":
            outcome = "unknown"
            rec.pop("version", None)
        history.record(
            process=i,
            kind=kind,
            key=key,
            invoke=at - rng.uniform(0, 25),
            complete=at + rng.uniform(0, 25),
            outcome=outcome,
            **rec,
        )
    assert history.count(outcome="unknown") > 200
    result = check(history, max_states=100_000)
    assert result.linearizable, result.explain()


# --- one recorded run against the session's etcd (no faults) --------------------------------


async def test_recorded_run_on_etcd_is_linearizable(
    etcd_endpoints: list[str], etcd_prefix: str
) -> None:
    keys = ("a", "b", "c")
    async with EtcdClient(etcd_endpoints) as client:
        repo: ResourceRepository[Any] = ResourceRepository(client, etcd_prefix)
        history = await run_workload(repo, keys=keys, tasks=8, duration=2.0, max_ops=3_000)
        final = {k: await repo.get_async(k) for k in keys}
    result = check(history, keys=keys)
    assert result.linearizable, "\n".join(result.violations)
    assert not result.inconclusive
    assert history.count("cas", "ok") > 50 and history.count("list", "ok") > 10
    assert history.count("create", "ok") >= 1 and history.count("delete", "ok") >= 1
    # The counter of each key, since its last create, equals the acknowledged increments of
    # that incarnation (give or take unknowns): each linearization's final state says it.
    for k in keys:
        end = result.keys[k].final
        assert end is not None
        doc = final[k]
        assert (end[0], end[1]) == (
            (None, None)
            if doc is None
            else (doc["status"]["n"], int(doc["metadata"]["resource_version"]))
        )
        if doc is not None:
            unknown = sum(1 for op in history if op.key == k and op.outcome == "unknown")
            born = max(
                op.version or 0
                for op in history
                if op.key == k and op.kind == "create" and op.outcome == "ok"
            )
            acked = sum(
                1
                for op in history
                if op.key == k
                and op.kind == "cas"
                and op.outcome == "ok"
                and (op.expected or 0) >= born
            )
            assert abs(doc["status"]["n"] - acked) <= unknown, (k, doc, acked, unknown)
    # The checker is not vacuous on this history: a read changed to a value nobody wrote, or
    # a list that misses an item, is caught.
    ops = history.operations
    i = max(j for j, op in enumerate(ops) if op.kind == "get" and op.read is not None)
    read = ops[i].read
    assert read is not None
    bad = Operation(**{**_fields(ops[i]), "read": (read[0] + 1000, read[1])})
    assert not check([*ops[:i], bad, *ops[i + 1 :]], keys=keys).linearizable

    def deleted_before(k: str, end: float) -> bool:
        return any(op.kind == "delete" and op.key == k and op.invoke < end for op in ops)

    j, k = next(
        (j, k)
        for j, op in enumerate(ops)
        if op.kind == "list" and op.listing
        for k in op.listing
        if not deleted_before(k, op.complete)  # else a delete could explain the gap
    )
    listing = dict(ops[j].listing or {})
    del listing[k]
    bad = Operation(**{**_fields(ops[j]), "listing": listing})
    assert not check([*ops[:j], bad, *ops[j + 1 :]], keys=keys).linearizable
    print(
        f"{len(history)} operations ({history.count(outcome='ok')} ok, "
        f"{history.count(outcome='fail')} failed, {history.count(outcome='unknown')} unknown), "
        f"{history.count('cas', 'ok')} increments, {history.count('list', 'ok')} lists; "
        f"states searched {sum(r.states for r in result.keys.values())}"
    )
