"""A TCP proxy between the client and etcd whose connections can be stalled, reset or
blackholed, and healed (``TcpProxy``), and those faults as ``faults.Fault`` objects
(``ProxyStall``, ``ProxyReset``, ``ProxyBlackhole``) for the histories of ``run``.

One listener per member, on a free port of 127.0.0.1, forwards bytes both ways to the
member's endpoint, untouched (the client speaks gRPC over HTTP/2 through it; the proxy
knows nothing of either). Give the client ``proxy.endpoints`` instead of the members'. It
works in front of a ``NetnsCluster``, an ``EtcdCluster`` or the single ``EtcdServer`` of
``etcd_resources.testing`` (no privileges needed). The proxy runs on an event loop of its own
in a thread of its own, so it keeps forwarding whatever the caller's event loop does, and
its methods can be called from any thread but the proxy's.

A listener is in one of four modes:

- ``forward``: bytes pass both ways.
- ``stall``: nothing is forwarded either way, but every connection stays open; new
  connections are accepted and stall too. Bytes the proxy holds are delivered when healed
  (so a request sent before the heal may reach etcd long after its client gave up on it).
- ``blackhole``: every byte from either side is read and dropped, nothing is answered,
  nothing is closed; new connections are accepted and blackholed too. A connection that lost
  bytes cannot carry on (its HTTP/2 stream is corrupt), so healing resets it (below).
- ``reset``: every connection is ended with a TCP RST on both sides (``SO_LINGER`` 0, then
  close), and so is every new one as soon as it is accepted.

``heal()`` returns to ``forward``: stalled connections resume, blackholed ones are reset
(the client sees the RST and reconnects; ``ProxyBlackhole(keep_dead=True)``, or
``heal(reset_dead=False)``, leaves them silent for good instead), new ones forward.

With ``mid_request=True`` a fault starts not at once but when the next response comes back
from etcd (a chunk of at least ``MID_REQUEST_BYTES`` from the member, more than any HTTP/2
control frame), before it is forwarded: the request reached etcd and was answered, and it is
the answer that is stalled, dropped or reset (the client cannot know whether a write
happened).

A TCP proxy accepts connections itself, so with it in the path a member that cannot be
reached (isolated, crashed) looks to the client like an accepted connection that is then
reset (the proxy resets the client's side when it cannot connect to the member within
``connect_timeout``) rather than a refused or silent connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Self, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "MID_REQUEST_BYTES",
    "Mode",
    "ProxyBlackhole",
    "ProxyFault",
    "ProxyReset",
    "ProxyStall",
    "ProxyStats",
    "TcpProxy",
]

Mode = Literal["forward", "stall", "blackhole", "reset"]

MID_REQUEST_BYTES = 64
"""A chunk from a member at least this long is a response (HTTP/2 control frames the server
sends unasked, SETTINGS, PING, WINDOW_UPDATE, are 9-17 bytes each)."""

CHUNK = 65536

T = TypeVar("T")


@dataclass
class ProxyStats:
    """What one listener did (counts since the proxy started)."""

    connections: int = 0
    """Connections accepted from clients."""
    resets: int = 0
    """Connections ended with an RST (by ``reset``, by healing a blackholed one, or because
    the member could not be reached)."""
    bytes_up: int = 0
    """Bytes forwarded from clients to the member."""
    bytes_down: int = 0
    """Bytes forwarded from the member to clients."""
    dropped: int = 0
    """Bytes read and dropped (blackhole)."""
    triggered: int = 0
    """Faults armed with ``mid_request=True`` that started on a response."""


def _target(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of an endpoint: ``http://host:port``, ``https://...``, ``host:port``
    (bytes pass untouched, so TLS passes through too; a certificate for 127.0.0.1 is
    needed then)."""
    parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"not an endpoint with a host and a port: {endpoint!r}")
    return parts.hostname, parts.port


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close ``writer``'s connection with an RST: ``SO_LINGER`` on with a timeout of 0."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One client connection and its connection to the member."""

    def __init__(
        self, listener: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.listener = listener
        self.client = (reader, writer)
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.tainted = False
        """Bytes were dropped: the streams cannot carry on."""
        self.ended = False

    def reset(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.listener.stats.resets += 1
        _rst(self.client[1])
        _rst(self.upstream[1] if self.upstream else None)

    def close(self) -> None:
        self.ended = True
        self.client[1].close()
        if self.upstream:
            self.upstream[1].close()

    async def run(self) -> None:
        listener = self.listener
        try:
            if listener.mode == "reset":
                self.reset()
                return
            try:
                host, port = listener.target
                self.upstream = await asyncio.wait_for(
                    asyncio.open_connection(host, port), listener.connect_timeout
                )
            except (OSError, TimeoutError):
                self.reset()
                return
            if self.ended:  # reset while connecting
                self.reset_upstream()
                return
            await asyncio.gather(
                self._pump(self.client[0], self.upstream[1], down=False),
                self._pump(self.upstream[0], self.client[1], down=True),
            )
        finally:
            listener.connections.discard(self)
            if not self.ended:
                self.close()

    def reset_upstream(self) -> None:
        _rst(self.upstream[1] if self.upstream else None)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, down: bool
    ) -> None:
        """Forward ``reader`` to ``writer`` as the listener's mode says, until either side
        ends (a side that fails ends the connection with an RST)."""
        try:
            await self._forward(reader, writer, down=down)
        except OSError:
            self.reset()

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, down: bool
    ) -> None:
        listener = self.listener
        stats = listener.stats
        while not self.ended:
            data = await reader.read(CHUNK)
            if self.ended:
                return
            if not data:  # end of stream: pass the FIN on, unless nothing may be answered
                if not self.tainted and listener.mode == "forward" and writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            if down and listener.armed is not None and len(data) >= MID_REQUEST_BYTES:
                stats.triggered += 1
                listener.set_mode(listener.armed)
            while listener.mode == "stall" and not self.ended:
                await listener.changed.wait()  # a fresh Event after every change
            mode = listener.mode
            if self.ended:
                return
            if mode == "reset":
                self.reset()
                return
            if mode == "blackhole" or self.tainted:
                self.tainted = True
                stats.dropped += len(data)
                continue
            writer.write(data)
            if down:
                stats.bytes_down += len(data)
            else:
                stats.bytes_up += len(data)
            await writer.drain()


class _Listener:
    """One member's listener, its mode and its connections."""

    def __init__(self, target: tuple[str, int], connect_timeout: float) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.mode: Mode = "forward"
        self.armed: Mode | None = None
        self.changed = asyncio.Event()
        self.connections: set[_Connection] = set()
        self.stats = ProxyStats()
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str) -> None:
        self.server = await asyncio.start_server(self._accept, host, 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        connection = _Connection(self, reader, writer)
        self.connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.run()
        except asyncio.CancelledError:
            # Only close() cancels these; ending normally keeps asyncio's stream callback
            # (which calls task.exception()) from raising on a cancelled task.
            connection.reset()
        finally:
            if task is not None:
                self._tasks.discard(task)

    def set_mode(self, mode: Mode, *, reset_dead: bool = True) -> None:
        self.armed = None
        self.mode = mode
        woken, self.changed = self.changed, asyncio.Event()
        woken.set()
        if mode == "reset":
            for c in list(self.connections):
                c.reset()
        elif mode == "forward" and reset_dead:
            for c in list(self.connections):
                if c.tainted:
                    c.reset()

    def arm(self, mode: Mode) -> None:
        """Start ``mode`` on the next response from the member (see the module doc)."""
        self.set_mode("forward")
        self.armed = mode

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.connections):
            c.reset()
        self.set_mode("forward")  # wakes stalled pumps, which see their connection ended
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()


class TcpProxy:
    """One listener per endpoint of ``endpoints`` (``http://host:port``), on free ports of
    ``host``, forwarding to it; faults injected by ``stall``, ``reset``, ``blackhole``,
    ``heal`` (see the module doc). ``start()`` (or ``with``) starts it, ``close()`` stops it
    and resets every connection. ``members`` arguments are indices into ``endpoints``
    (``None``: every one)."""

    def __init__(
        self, endpoints: Sequence[str], *, host: str = "127.0.0.1", connect_timeout: float = 5.0
    ) -> None:
        self.targets = [_target(e) for e in endpoints]
        self.upstream_endpoints = list(endpoints)
        self.host = host
        self.connect_timeout = connect_timeout
        self._listeners: list[_Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoints(self) -> list[str]:
        """The endpoints to give the client, one per member, in the same order."""
        return [
            f"{e.split('://')[0] if '://' in e else 'http'}://{self.host}:{listener.port}"
            for e, listener in zip(self.upstream_endpoints, self._listeners, strict=True)
        ]

    def index(self, endpoint: str) -> int:
        """The index of a member's endpoint (as given), for ``members`` arguments."""
        return self.upstream_endpoints.index(endpoint)

    def _run(self, make: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        """Run ``make()`` on the proxy's loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError("the proxy is not started")
        if threading.current_thread() is self._thread:
            raise RuntimeError("the proxy's methods are not for its own thread")

        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def start(self) -> Self:
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="etcd-resources-proxy", daemon=True
        )
        self._thread.start()

        async def listen() -> None:
            for target in self.targets:
                listener = _Listener(target, self.connect_timeout)
                await listener.start(self.host)
                self._listeners.append(listener)

        try:
            self._run(listen)
        except BaseException:
            self.close()
            raise
        return self

    def _select(self, members: Iterable[int] | None) -> list[_Listener]:
        if members is None:
            return list(self._listeners)
        return [self._listeners[i] for i in members]

    def _apply(
        self,
        mode: Mode,
        members: Iterable[int] | None,
        mid_request: bool = False,
        reset_dead: bool = True,
    ) -> None:
        chosen = self._select(members)

        async def apply() -> None:
            for listener in chosen:
                if mid_request:
                    listener.arm(mode)
                else:
                    listener.set_mode(mode, reset_dead=reset_dead)

        self._run(apply)

    def stall(self, members: Iterable[int] | None = None, *, mid_request: bool = False) -> None:
        """Stop forwarding (connections stay open; see the module doc)."""
        self._apply("stall", members, mid_request=mid_request)

    def blackhole(self, members: Iterable[int] | None = None, *, mid_request: bool = False) -> None:
        """Read and drop everything, answer nothing (see the module doc)."""
        self._apply("blackhole", members, mid_request=mid_request)

    def reset(self, members: Iterable[int] | None = None, *, mid_request: bool = False) -> None:
        """RST every connection, and every new one until healed (see the module doc)."""
        self._apply("reset", members, mid_request=mid_request)

    def heal(self, members: Iterable[int] | None = None, *, reset_dead: bool = True) -> None:
        """Forward again: stalled connections resume, blackholed ones are reset (with
        ``reset_dead=False`` they stay blackholed for good, silent: a middlebox that lost
        their state; the client has to notice by itself), new ones forward."""
        self._apply("forward", members, reset_dead=reset_dead)

    def modes(self) -> list[Mode]:
        """Each listener's mode now (an armed fault counts once it started)."""
        return [listener.mode for listener in self._listeners]

    def stats(self) -> list[ProxyStats]:
        """A copy of each listener's counts."""

        async def copy() -> list[ProxyStats]:
            return [ProxyStats(**vars(listener.stats)) for listener in self._listeners]

        return self._run(copy)

    def close(self) -> None:
        """Stop listening, reset every connection, stop the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._listeners:

            async def close_all() -> None:
                for listener in self._listeners:
                    await listener.close()

            with contextlib.suppress(TimeoutError, RuntimeError):
                self._run(close_all)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if not self._listeners:
            return f"TcpProxy({self.upstream_endpoints}, not started)"
        pairs = ", ".join(
            f"{listener.port}->{u} {listener.mode}"
            for listener, u in zip(self._listeners, self.upstream_endpoints, strict=True)
        )
        return f"TcpProxy({pairs})"


class ProxyFault:
    """A fault of ``TcpProxy`` as a ``faults.Fault``: ``start()`` puts the ``members``'
    listeners (every one by default) in ``mode`` (at once, or on the next response with
    ``mid_request``), ``stop()`` heals them."""

    mode: Mode = "forward"

    def __init__(
        self, proxy: TcpProxy, members: Sequence[int] | None = None, *, mid_request: bool = False
    ) -> None:
        self.proxy = proxy
        self.members = None if members is None else list(members)
        self.mid_request = mid_request
        self._started = False

    @property
    def name(self) -> str:
        which = "all" if self.members is None else ",".join(f"m{i}" for i in self.members)
        return f"proxy {self.mode} {which}" + (" mid-request" if self.mid_request else "")

    reset_dead = True

    def start(self) -> None:
        self.proxy._apply(self.mode, self.members, mid_request=self.mid_request)
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.proxy.heal(self.members, reset_dead=self.reset_dead)


class ProxyStall(ProxyFault):
    """Connections through the proxy stop moving bytes but stay open, then resume."""

    mode: Mode = "stall"


class ProxyBlackhole(ProxyFault):
    """Everything sent through the proxy is read and dropped, nothing answered. Healing
    resets the connections that lost bytes, or with ``keep_dead=True`` leaves them silent
    for good (the client must notice them by itself; new connections forward)."""

    mode: Mode = "blackhole"

    def __init__(
        self,
        proxy: TcpProxy,
        members: Sequence[int] | None = None,
        *,
        mid_request: bool = False,
        keep_dead: bool = False,
    ) -> None:
        super().__init__(proxy, members, mid_request=mid_request)
        self.reset_dead = not keep_dead

    @property
    def name(self) -> str:
        return super().name + ("" if self.reset_dead else " kept dead")


class ProxyReset(ProxyFault):
    """Every connection through the proxy is reset (RST), and every new one until healed."""

    mode: Mode = "reset"
