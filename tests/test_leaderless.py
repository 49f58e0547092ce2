"""A member without a leader leaves the rotation (issue #22): a follower of a three-member
cluster cut off from its peers but not from the client answers every request "no leader";
the client ejects it after an election timeout of such answers, sends the writes it refused
to the others (etcd refuses them before proposing them), and keeps at least half its
fault-free throughput, with no operation failed or of unknown outcome. Once the member has a
leader again, a probe re-admits it; and the history of a mixed workload under that fault,
writes resent included, is linearizable. Runs on ``NetnsCluster`` (skipped, saying why, where
namespaces cannot be made)."""

from __future__ import annotations

import asyncio
import time

import pytest

from etcd_resources import EtcdClient, UnavailableError
from jepsen.faults import CutFromPeers
from jepsen.netns import NetnsCluster, NetnsMember, netns_available

from .test_endpoint_health import under_fault
from .test_faults import run_with_fault, verify

WHY_NOT = netns_available()
needs_netns = pytest.mark.skipif(WHY_NOT is not None, reason=f"no network namespaces: {WHY_NOT}")

FRACTION = 0.5
"""The share of its fault-free ok throughput the workload keeps with one member leaderless."""
LEADERLESS_BOUND = 15.0
"""Seconds from cutting the member off until it answers "no leader" (an election timeout of
missed heartbeats, randomised up to twice that, plus scheduling)."""


async def until_leaderless(member: NetnsMember) -> str:
    """Until (bounded) ``member``, asked alone, answers "no leader"; says after how long."""
    started = time.monotonic()
    async with EtcdClient(member.endpoint, timeout=1.0, breaker_threshold=0) as alone:
        for _ in range(1000):
            try:
                await alone.current_revision()
            except UnavailableError as e:
                if "no leader" in str(e):
                    return f" (no leader after {time.monotonic() - started:.2f}s)"
            assert time.monotonic() - started < LEADERLESS_BOUND, f"{member} still has a leader"
            await asyncio.sleep(0.05)  # a pause between questions, bounded by the loop
    raise AssertionError("unreachable: the loop is bounded by LEADERLESS_BOUND")


@needs_netns
async def test_a_member_without_a_leader_leaves_the_rotation(
    healthy: NetnsCluster, etcd_prefix: str
) -> None:
    member = healthy.followers()[0]
    fault = CutFromPeers(member, healthy.members)
    run = await under_fault(healthy, etcd_prefix, member, fault, lambda: until_leaderless(member))
    assert not run.state["healthy"] and run.state["ejections"] >= 1, run.state
    assert run.during.failed == 0 and run.during.unknown == 0, run.during
    assert run.during.rate >= FRACTION * run.before.rate, run
    assert run.after.failed == 0, run.after


@needs_netns
async def test_writes_resent_from_a_leaderless_member_keep_the_history_linearizable(
    healthy: NetnsCluster, etcd_prefix: str
) -> None:
    """A write resent after "no leader" that had been applied after all would show here (a
    compare-and-swap applied twice, a create answered "already exists")."""
    member = healthy.followers()[0]
    run = await run_with_fault(
        healthy,
        etcd_prefix,
        lambda: CutFromPeers(member, healthy.members),
        faulted=lambda _: [member],
        hold=5.0,
    )
    verify(run)
    assert run.ok_per_second()[1] > 0, "the majority served no one during the fault"
