"""Faults injected for real into a ``NetnsCluster`` (``netns``): each fault is an object with
``start()`` and ``stop()`` (``stop`` undoes it and is safe to call twice), and
``injected(fault)`` / ``inject_for(fault, seconds)`` run one as an async context manager that
always undoes it, however the block ends.

- ``Isolate(members)``: each member loses every packet to and from anyone (the other members
  and the client): a ``pfifo`` queue of length 0 on both ends of its veth pair drops
  everything silently, as a cut cable or a firewall does (no reset, no "unreachable").
  Isolating the leader makes the others elect a new one; isolating two of three leaves no
  quorum anywhere.
- ``CutFromPeers(member, peers)``: the member loses its peers but keeps the client: in its
  namespace, a blackhole route to each peer's address, so nothing it sends reaches them
  (what they send arrives, unanswered). It stays reachable from the client and, once it
  misses its leader's heartbeats, answers every request "no leader" (issue #22).
- ``Degrade(member, delay_ms, loss)``: packets to and from the member are delayed and dropped:
  ``tc netem delay ... loss ...`` where the kernel has netem; where it does not (``mechanism``
  says which), a token bucket (``tbf``) with a small rate and a short queue, so packets wait
  in the queue (delay) and are dropped when it is full (loss under load).
- ``Pause(member)``: SIGSTOP, then SIGCONT: a leader paused longer than an election timeout
  comes back believing it leads, in an old term.
- ``Crash(member)``: SIGKILL, then the member is started again on the same data directory
  (``stop`` waits until it is healthy).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal, Protocol, TypeVar

from .netns import NetnsMember, run_ip

__all__ = [
    "Crash",
    "CutFromPeers",
    "Degrade",
    "Fault",
    "Isolate",
    "Pause",
    "inject_for",
    "injected",
]


class Fault(Protocol):
    """Something done to the cluster and undone."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None:
        """Undo it; safe to call when it was never started or is already undone."""
        ...


F = TypeVar("F", bound=Fault)


def _ends(member: NetnsMember) -> list[tuple[str, str | None]]:
    """Both ends of the member's veth pair: (link, namespace)."""
    return [(member.ns_link, member.netns), (member.host_link, None)]


def _clear(member: NetnsMember) -> None:
    for link, netns in _ends(member):
        run_ip("tc", "qdisc", "del", "dev", link, "root", netns=netns, check=False)


class Isolate:
    """Every packet to and from each of ``members`` is dropped (see the module doc)."""

    def __init__(self, members: Sequence[NetnsMember]) -> None:
        self.members = list(members)

    @property
    def name(self) -> str:
        return f"isolate {', '.join(m.name for m in self.members)}"

    def start(self) -> None:
        for member in self.members:
            for link, netns in _ends(member):
                run_ip("tc", "qdisc", "replace", "dev", link, "root", "pfifo", "limit", "0",
                       netns=netns)  # fmt: skip

    def stop(self) -> None:
        for member in self.members:
            _clear(member)


class CutFromPeers:
    """``member`` cannot reach ``peers``; the client still reaches it (see the module doc)."""

    def __init__(self, member: NetnsMember, peers: Sequence[NetnsMember]) -> None:
        self.member = member
        self.peers = [p for p in peers if p is not member]
        self._routed: list[str] = []

    @property
    def name(self) -> str:
        return f"cut {self.member.name} from its peers"

    def start(self) -> None:
        for peer in self.peers:
            run_ip("route", "replace", "blackhole", f"{peer.host}/32", netns=self.member.netns)
            self._routed.append(peer.host)

    def stop(self) -> None:
        while self._routed:
            host = self._routed.pop()
            run_ip("route", "del", "blackhole", f"{host}/32", netns=self.member.netns, check=False)


class Degrade:
    """Packets to and from ``member`` delayed and dropped (see the module doc)."""

    def __init__(self, member: NetnsMember, *, delay_ms: int = 50, loss: float = 10.0) -> None:
        self.member = member
        self.delay_ms = delay_ms
        self.loss = loss
        self.mechanism: Literal["netem", "tbf", None] = None

    @property
    def name(self) -> str:
        return f"degrade {self.member.name} ({self.mechanism or 'not started'})"

    def start(self) -> None:
        netem = ["netem", "delay", f"{self.delay_ms}ms", "loss", f"{self.loss}%"]
        # ~2 full-size packets a delay: a burst waits up to the delay, the rest is dropped.
        tbf = ["tbf", "rate", "512kbit", "burst", "4kb", "latency", f"{self.delay_ms}ms"]
        for link, netns in _ends(self.member):
            if self.mechanism in (None, "netem"):
                try:
                    run_ip("tc", "qdisc", "replace", "dev", link, "root", *netem, netns=netns)
                    self.mechanism = "netem"
                    continue
                except subprocess.CalledProcessError:
                    if self.mechanism == "netem":
                        raise
            run_ip("tc", "qdisc", "replace", "dev", link, "root", *tbf, netns=netns)
            self.mechanism = "tbf"

    def stop(self) -> None:
        _clear(self.member)


class Pause:
    """The member's process stopped (SIGSTOP) and continued (SIGCONT)."""

    def __init__(self, member: NetnsMember) -> None:
        self.member = member
        self._pid: int | None = None

    @property
    def name(self) -> str:
        return f"pause {self.member.name}"

    def start(self) -> None:
        if not self.member.running or self.member.pid is None:
            raise RuntimeError(f"{self.member!r} is not running")
        self._pid = self.member.pid
        os.kill(self._pid, signal.SIGSTOP)

    def stop(self) -> None:
        if self._pid is not None and self.member.running and self.member.pid == self._pid:
            os.kill(self._pid, signal.SIGCONT)
        self._pid = None


class Crash:
    """The member killed (SIGKILL) and started again on the same data (``stop`` waits until
    it is healthy, up to ``restart_timeout`` seconds)."""

    def __init__(self, member: NetnsMember, *, restart_timeout: float = 30.0) -> None:
        self.member = member
        self.restart_timeout = restart_timeout
        self._killed = False

    @property
    def name(self) -> str:
        return f"crash {self.member.name}"

    def start(self) -> None:
        self.member.kill()
        self._killed = True

    def stop(self) -> None:
        if self._killed:
            self._killed = False
            self.member.start(self.restart_timeout)


@asynccontextmanager
async def injected(fault: F) -> AsyncIterator[F]:
    """Start ``fault``, run the block, and stop it, whatever happens in the block (the
    commands run in a worker thread, off the event loop)."""
    try:
        await asyncio.to_thread(fault.start)
        yield fault
    finally:
        await asyncio.to_thread(fault.stop)


async def inject_for(fault: Fault, seconds: float) -> None:
    """Hold ``fault`` for ``seconds``, then undo it."""
    async with injected(fault):
        await asyncio.sleep(seconds)
