"""The query engine: label and field selectors, pages and counts, on etcd and memory://."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcd_resources import (
    EtcdClient,
    ExpiredError,
    InvalidArgumentError,
    InvalidSelectorError,
    ResourceRepository,
)

from .helpers import worker

PHASES = ["Pending", "Ready", "Draining", "Failed"]
TRACKS = ["ccna", "ccnp", "devnet"]


@pytest.fixture
async def fleet(client: EtcdClient, prefix: str) -> ResourceRepository[dict[str, Any]]:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await asyncio.gather(
        *(
            repo.add_async(
                worker(
                    f"w{i:02}",
                    track=TRACKS[i % 3],
                    phase=PHASES[i % 4],
                    namespace="labs" if i < 12 else "other",
                )
            )
            for i in range(24)
        )
    )
    return repo


def names(items: list[dict[str, Any]]) -> list[str]:
    return [d["metadata"]["name"] for d in items]


def expected(pred: Any) -> list[str]:
    return [
        f"w{i:02}"
        for i in range(24)
        if pred(TRACKS[i % 3], PHASES[i % 4], "labs" if i < 12 else "other")
    ]


async def test_field_selectors(fleet: ResourceRepository[dict[str, Any]]) -> None:
    ready = await fleet.list_async(field_selector="status.phase=Ready")
    assert names(ready) == expected(lambda t, p, ns: p == "Ready")
    assert names(await fleet.list_async(field_selector={"status.phase": "Draining"})) == expected(
        lambda t, p, ns: p == "Draining"
    )
    assert names(
        await fleet.list_async(field_selector="spec.lab_track!=ccna,status.phase in (Ready,Failed)")
    ) == expected(lambda t, p, ns: t != "ccna" and p in ("Ready", "Failed"))
    assert names(await fleet.list_async(field_selector="metadata.namespace=labs")) == expected(
        lambda t, p, ns: ns == "labs"
    )
    both = await fleet.list_async(
        namespace="other",
        label_selector="lab-track=ccnp",
        field_selector="status.phase notin (Ready)",
    )
    assert names(both) == expected(lambda t, p, ns: ns == "other" and t == "ccnp" and p != "Ready")


async def test_counts_match_lists(fleet: ResourceRepository[dict[str, Any]]) -> None:
    for query in [
        {},
        {"namespace": "labs"},
        {"label_selector": "lab-track=devnet"},
        {"field_selector": "status.phase=Ready"},
        {"namespace": "other", "label_selector": {"lab-track": "ccna"}},
    ]:
        assert await fleet.count_async(**query) == len(await fleet.list_async(**query)), query


async def test_pages_are_one_snapshot(fleet: ResourceRepository[dict[str, Any]]) -> None:
    seen: list[str] = []
    versions = set()
    token = None
    pages = 0
    while True:
        page = await fleet.list_page_async(
            label_selector="lab-track in (ccna,ccnp)", limit=5, continue_token=token
        )
        pages += 1
        assert len(page.items) <= 5
        seen += names(page.items)
        versions.add(page.resource_version)
        # Writes between pages do not show up in this listing.
        await fleet.add_async(worker(f"late-{pages}", track="ccna"))
        if page.continue_token is None:
            break
        token = page.continue_token
    assert seen == expected(lambda t, p, ns: t in ("ccna", "ccnp"))
    assert len(versions) == 1
    assert pages >= 4
    fresh = await fleet.list_async(label_selector="lab-track=ccna")
    assert len(fresh) == len(expected(lambda t, p, ns: t == "ccna")) + pages


async def test_an_unfiltered_page_is_exact(fleet: ResourceRepository[dict[str, Any]]) -> None:
    first = await fleet.list_page_async(limit=24)
    assert len(first.items) == 24
    assert first.continue_token is None
    half = await fleet.list_page_async(limit=12)
    assert half.continue_token is not None
    rest = await fleet.list_page_async(limit=100, continue_token=half.continue_token)
    assert names(half.items) + names(rest.items) == names(first.items)


async def test_a_compacted_token_is_expired(
    client: EtcdClient, fleet: ResourceRepository[dict[str, Any]]
) -> None:
    page = await fleet.list_page_async(limit=5)
    assert page.continue_token is not None
    await fleet.add_async(worker("after"))
    await client.compact(await client.current_revision())
    with pytest.raises(ExpiredError):
        await fleet.list_page_async(limit=5, continue_token=page.continue_token)


async def test_bad_pages(fleet: ResourceRepository[dict[str, Any]], client: EtcdClient) -> None:
    with pytest.raises(InvalidArgumentError):
        await fleet.list_page_async(limit=0)
    with pytest.raises(InvalidArgumentError):
        await fleet.list_page_async(continue_token="not-a-token")
    other: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/elsewhere/")
    page = await fleet.list_page_async(limit=1)
    with pytest.raises(InvalidArgumentError, match="another listing"):
        await other.list_page_async(continue_token=page.continue_token)
    with pytest.raises(OverflowError):
        await fleet.list_page_async(limit=-1)


@pytest.mark.parametrize(
    ("selector", "position"),
    [("status.phase=", None), ("status..phase=x", 0), ("status.phase in Ready", 16), ("a=b c", 4)],
)
async def test_field_selector_errors(
    fleet: ResourceRepository[dict[str, Any]], selector: str, position: int | None
) -> None:
    if position is None:
        await fleet.list_async(field_selector=selector)  # valid: matches where absent or empty
        return
    with pytest.raises(InvalidSelectorError) as info:
        await fleet.list_async(field_selector=selector)
    assert info.value.position == position


# -- property-based: the engine against a reference in Python --------------------------------

KEYS = ["a", "b", "lab-track", "x.io/k"]
VALUES = ["", "v1", "v2", "ccna"]
labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4)
requirement_st = st.tuples(
    st.sampled_from(KEYS),
    st.integers(0, 5),
    st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
)


def render(req: tuple[str, int, list[str]]) -> str:
    key, op, values = req
    return [
        f"{key}={values[0]}",
        f"{key} != {values[0]}",
        f"{key} in ({', '.join(values)})",
        f"{key} notin ({','.join(values)})",
        key,
        f"!{key}",
    ][op]


def reference(labels: dict[str, str], reqs: list[tuple[str, int, list[str]]]) -> bool:
    def one(key: str, op: int, values: list[str]) -> bool:
        v = labels.get(key)
        return [
            v == values[0],
            v != values[0],
            v is not None and v in values,
            not (v is not None and v in values),
            v is not None,
            v is None,
        ][op]

    return all(one(*r) for r in reqs)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fleet_labels=st.lists(labels_st, min_size=1, max_size=8),
    reqs=st.lists(requirement_st, max_size=4),
)
def test_label_selectors_agree_with_a_reference(
    fleet_labels: list[dict[str, str]], reqs: list[tuple[str, int, list[str]]]
) -> None:
    async def run() -> tuple[list[str], int]:
        async with EtcdClient("memory://") as client:
            repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/p/")
            for i, labels in enumerate(fleet_labels):
                await repo.add_async({"metadata": {"name": f"r{i}", "labels": labels}, "spec": {}})
            selector = ",".join(render(r) for r in reqs)
            found = names(await repo.list_async(label_selector=selector))
            return found, await repo.count_async(label_selector=selector)

    found, count = asyncio.run(run())
    want = [f"r{i}" for i, labels in enumerate(fleet_labels) if reference(labels, reqs)]
    assert found == want
    assert count == len(want)
