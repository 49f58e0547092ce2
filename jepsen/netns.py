"""A three-member etcd cluster whose members run in network namespaces of their own, for fault
injection (``faults``). Needs ``ip`` (iproute2) and the right to make namespaces (root, or
CAP_NET_ADMIN + CAP_SYS_ADMIN); ``netns_available()`` says whether this process can.

Layout, for a cluster tagged ``erf-1a2b``:

- a bridge ``erf-1a2b-br`` in the root namespace holding ``10.X.Y.1/24`` (a /24 of 10.213/16
  that no route here uses yet), so the client in the root namespace reaches every member;
- per member ``i`` a namespace ``erf-1a2b-m{i}`` and a veth pair: ``erf-1a2b-h{i}`` in the root
  namespace, a port of the bridge, and ``erf-1a2b-n{i}`` in the member's namespace holding
  ``10.X.Y.(10+i)/24``; peers reach each other through the bridge;
- etcd runs as ``ip netns exec erf-1a2b-m{i} etcd ...`` (``ip netns exec`` execs etcd, so the
  process id is etcd's: SIGSTOP and SIGKILL reach it).

``close()`` kills the members by pid and deletes the namespaces, links and bridge, whatever
state faults left them in; so does leaving the ``with`` block.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from etcd_resources.testing import EtcdServer, EtcdServerError, find_etcd_binary

__all__ = ["NetnsCluster", "NetnsMember", "NetnsUnavailable", "netns_available", "run_ip"]

PREFIX = "erf-"
"""Every namespace, link and bridge the harness makes is named with this prefix."""


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (no ``ip``, or not privileged enough)."""


def run_ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (or ``tc``, when ``args[0] == "tc"``), in ``netns`` if given; return its
    output. Raises ``subprocess.CalledProcessError`` with its stderr on failure if ``check``."""
    if args and args[0] == "tc":
        command = list(args)
    else:
        command = ["ip", *args]
    if netns is not None:
        command = ["ip", "netns", "exec", netns, *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    if check and done.returncode != 0:
        raise subprocess.CalledProcessError(
            done.returncode, command, done.stdout, f"{' '.join(command)}: {done.stderr.strip()}"
        )
    return done.stdout


def netns_available() -> str | None:
    """``None`` if this process can make network namespaces and veth pairs, else why not."""
    if shutil.which("ip") is None:
        return "no 'ip' command (iproute2)"
    if shutil.which("tc") is None:
        return "no 'tc' command (iproute2)"
    name = f"{PREFIX}probe-{uuid.uuid4().hex[:6]}"
    try:
        run_ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError) as e:
        return f"cannot make a network namespace: {getattr(e, 'stderr', e)}"
    try:
        run_ip("link", "add", f"{name[:11]}a", "type", "veth", "peer", "name", f"{name[:11]}b")
        run_ip("link", "del", f"{name[:11]}a")
    except (subprocess.CalledProcessError, OSError) as e:
        return f"cannot make a veth pair: {getattr(e, 'stderr', e)}"
    finally:
        run_ip("netns", "del", name, check=False)
    return None


def _free_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that no route or address of the root namespace overlaps."""
    used = [
        ipaddress.ip_network(word, strict=False)
        for line in run_ip("-4", "route", "show", "table", "all").splitlines()
        for word in line.split()[:1]
        if word[0].isdigit()
    ]
    for _ in range(64):
        net = ipaddress.IPv4Network(f"10.213.{rng.randrange(1, 255)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsUnavailable("no free /24 in 10.213.0.0/16")


class NetnsMember(EtcdServer):
    """One etcd member in its own network namespace (see the module doc)."""

    def __init__(
        self,
        *,
        netns: str,
        host: str,
        host_link: str,
        ns_link: str,
        name: str,
        data_dir: Path,
        initial_cluster: str,
        binary: str,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.netns = netns
        self.host = host
        self.host_link = host_link
        """The veth end in the root namespace (a bridge port)."""
        self.ns_link = ns_link
        """The veth end in the member's namespace."""
        super().__init__(
            binary,
            data_dir=data_dir,
            name=name,
            client_port=2379,
            peer_port=2380,
            initial_cluster=initial_cluster,
            extra_args=extra_args,
        )

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    def _command(self) -> list[str]:
        return [
            "ip", "netns", "exec", self.netns,
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir / "data"),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "etcd-resources-netns",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"NetnsMember({self.name} in {self.netns} at {self.host}, {state})"


class NetnsCluster:
    """Three (``size``) etcd members, each in a network namespace of its own, joined by a
    bridge in the root namespace (see the module doc). ``start()`` builds the network and
    waits until every member is healthy; ``close()`` tears everything down."""

    def __init__(
        self,
        size: int = 3,
        *,
        data_dir: str | Path | None = None,
        binary: str | None = None,
        seed: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        rng = random.Random(seed)
        self.tag = f"{PREFIX}{uuid.uuid4().hex[:4]}"
        self.bridge = f"{self.tag}-br"
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="etcd-resources-netns-"))
        self.subnet = _free_subnet(rng)
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        binary = binary or find_etcd_binary()
        addresses = [str(hosts[9 + i]) for i in range(size)]
        initial = ",".join(f"m{i}=http://{a}:2380" for i, a in enumerate(addresses))
        self.members = [
            NetnsMember(
                netns=f"{self.tag}-m{i}",
                host=address,
                host_link=f"{self.tag}-h{i}",
                ns_link=f"{self.tag}-n{i}",
                name=f"m{i}",
                data_dir=self.data_dir / f"m{i}",
                initial_cluster=initial,
                binary=binary,
                extra_args=extra_args,
            )
            for i, address in enumerate(addresses)
        ]
        self._made: list[tuple[str, str]] = []  # ("netns" | "link", name), in creation order

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _network_up(self) -> None:
        prefix = self.subnet.prefixlen
        run_ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", self.bridge))
        run_ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        run_ip("link", "set", self.bridge, "up")
        for m in self.members:
            run_ip("netns", "add", m.netns)
            self._made.append(("netns", m.netns))
            run_ip("link", "set", "lo", "up", netns=m.netns)
            run_ip("link", "add", m.host_link, "type", "veth", "peer", "name", m.ns_link)
            self._made.append(("link", m.host_link))
            run_ip("link", "set", m.ns_link, "netns", m.netns)
            run_ip("link", "set", m.host_link, "master", self.bridge)
            run_ip("link", "set", m.host_link, "up")
            run_ip("addr", "add", f"{m.host}/{prefix}", "dev", m.ns_link, netns=m.netns)
            run_ip("link", "set", m.ns_link, "up", netns=m.netns)
            run_ip("route", "add", "default", "via", self.gateway, netns=m.netns)

    def start(self, timeout: float = 60.0) -> Self:
        """Build the network, launch every member, wait until each is healthy. On failure,
        everything made so far is torn down before the error propagates."""
        try:
            try:
                self._network_up()
            except subprocess.CalledProcessError as e:
                raise NetnsUnavailable(str(e.stderr)) from e
            for member in self.members:
                member.launch()
            for member in self.members:
                member.wait_healthy(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running member answers its health check."""
        for member in self.members:
            if member.running:
                member.wait_healthy(timeout)

    def leader(self, among: Sequence[NetnsMember] | None = None) -> NetnsMember:
        """The member that is the Raft leader now, asking ``among`` (every member by
        default; leave out one that is isolated or paused, which would not answer for 2 s).
        The member that says it leads with the highest term wins (one that was paused may
        still believe it leads, in an old term)."""
        best: tuple[int, NetnsMember] | None = None
        for member in self.members if among is None else among:
            term = member.leading_term()
            if term is not None and (best is None or term > best[0]):
                best = (term, member)
        if best is None:
            raise EtcdServerError("no member is the leader")
        return best[1]

    def followers(self) -> list[NetnsMember]:
        leader = self.leader()
        return [m for m in self.members if m is not leader]

    def close(self) -> None:
        """Kill every member (by pid), delete the namespaces, veth pairs and bridge made,
        remove the data directory (if it was ours). Safe to call more than once."""
        for member in self.members:
            member.kill()  # SIGKILL ends a stopped (paused) process too
        for kind, name in reversed(self._made):
            if kind == "netns":
                run_ip("netns", "del", name, check=False)
            else:
                run_ip("link", "del", name, check=False)
        self._made.clear()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        else:
            for member in self.members:
                with contextlib.suppress(FileNotFoundError):
                    member.log_path.unlink()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NetnsCluster({self.tag}, {self.subnet}, {self.members})"
