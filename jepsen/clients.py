"""Several client processes in one history: ``ClientProcesses`` starts N processes (``python -m
jepsen.clients``, a fresh interpreter each, so each has its own ``EtcdClient``,
runtime and connections), each running ``run_workload`` with its own asyncio tasks against
the same keys, and merges the JSON lines each wrote into one ``History``.

Times from different processes are comparable: every process records ``time.monotonic()``,
which on Linux is ``clock_gettime(CLOCK_MONOTONIC)``, one clock for the whole machine (not per
process), so one process's invocation can be ordered against another's completion.

A process's protocol, on its standard streams: it connects and reads once, prints ``ready``,
waits for a line ``go`` on its standard input (bounded; end of input or anything else ends
it without running), runs the workload, writes its history to the ``--out`` file as JSON
lines, prints ``done N`` and exits 0. Its standard error goes to ``--out`` + ``.log``. Task
``i`` of process ``p`` records as process ``p * 1000 + i`` (``p`` from 1; 0 is left to the
parent), so the merged history says who did what.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from .history import History

__all__ = ["ClientProcesses", "ClientSpec", "run_client_processes"]


def _env() -> dict[str, str]:
    """The environment of a client process: it imports this package (``python -m
    jepsen.clients``) from where it lies, whatever its working directory."""
    here = str(Path(__file__).resolve().parent.parent)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
    }


READY_WITHIN = 30.0
"""Seconds a process may take to start, import the package and read once."""


@dataclass(frozen=True)
class ClientSpec:
    """What one client process runs (``run_workload``'s arguments, and its client's)."""

    endpoints: Sequence[str]
    prefix: str
    process: int
    keys: Sequence[str] = ("a", "b", "c")
    tasks: int = 4
    duration: float = 2.0
    max_ops: int = 20_000
    seed: int = 0
    timeout: float = 2.0
    go_within: float = 60.0
    """Seconds to wait for ``go`` before giving up."""

    def to_json(self) -> str:
        d = asdict(self)
        d["endpoints"] = list(self.endpoints)
        d["keys"] = list(self.keys)
        return json.dumps(d)

    @staticmethod
    def from_json(text: str) -> ClientSpec:
        return ClientSpec(**json.loads(text))


class ClientProcesses:
    """``processes`` client processes, each running ``tasks`` asyncio tasks of
    ``run_workload`` on ``keys`` under ``prefix``, for ``duration`` seconds from the moment
    all of them are ready. ``await start()`` launches them and returns when every one has
    connected and been told to go (bounded); ``await join()`` waits for them (bounded:
    ``duration`` plus ``join_slack`` seconds; a process still running then is killed, by its
    pid) and returns the merged history. ``close()`` kills any still running. Also an async
    context manager (``start`` on entry, ``close`` on exit)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str,
        *,
        processes: int = 2,
        tasks: int = 4,
        keys: Sequence[str] = ("a", "b", "c"),
        duration: float = 2.0,
        max_ops: int = 20_000,
        seed: int = 0,
        timeout: float = 2.0,
        directory: str | Path | None = None,
        join_slack: float = 30.0,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.specs = [
            ClientSpec(
                endpoints=list(endpoints),
                prefix=prefix,
                process=p,
                keys=tuple(keys),
                tasks=tasks,
                duration=duration,
                max_ops=max_ops,
                seed=seed * 101 + p,
                timeout=timeout,
            )
            for p in range(1, processes + 1)
        ]
        self.join_slack = join_slack
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="etcd-resources-clients-")
            directory = self._tmp.name
        self.directory = Path(directory)
        self._procs: list[asyncio.subprocess.Process] = []
        self.started_at: float | None = None
        """``time.monotonic()`` when every process was told to go."""

    def out_path(self, spec: ClientSpec) -> Path:
        return self.directory / f"client-{spec.process}.jsonl"

    def _log_tail(self, spec: ClientSpec, lines: int = 15) -> str:
        try:
            text = Path(f"{self.out_path(spec)}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def start(self) -> float:
        """Launch every process, wait until each is ready, tell them all to go; returns the
        time (``time.monotonic()``) they were told. On failure every process is killed."""
        try:
            for spec in self.specs:
                log = await asyncio.to_thread(Path(f"{self.out_path(spec)}.log").open, "wb")
                with log:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "jepsen.clients",
                        "--spec", spec.to_json(), "--out", str(self.out_path(spec)),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=log,
                        env=_env(),
                    )  # fmt: skip
                self._procs.append(proc)
            for spec, proc in zip(self.specs, self._procs, strict=True):
                assert proc.stdout is not None
                try:
                    line = await asyncio.wait_for(proc.stdout.readline(), READY_WITHIN)
                except TimeoutError:
                    line = b"(nothing)"
                if line.strip() != b"ready":
                    raise RuntimeError(
                        f"client process {spec.process} said {line!r} instead of ready:\n"
                        + self._log_tail(spec)
                    )
            self.started_at = time.monotonic()
            for proc in self._procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            return self.started_at
        except BaseException:
            await self.close()
            raise

    async def join(self) -> History:
        """Wait for every process (bounded), read and merge their histories."""
        if not self._procs:
            raise RuntimeError("start() first")
        within = self.specs[0].duration + self.join_slack
        histories: list[History] = []
        try:
            for spec, proc in zip(self.specs, self._procs, strict=True):
                try:
                    code = await asyncio.wait_for(proc.wait(), within)
                except TimeoutError:
                    raise RuntimeError(
                        f"client process {spec.process} still running after {within:.0f}s:\n"
                        + self._log_tail(spec)
                    ) from None
                if code != 0:
                    raise RuntimeError(
                        f"client process {spec.process} exited with {code}:\n"
                        + self._log_tail(spec)
                    )
                text = await asyncio.to_thread(self.out_path(spec).read_text)
                histories.append(History.loads(text))
        finally:
            await self.close()
        return History.merge(histories)

    async def close(self) -> None:
        """Kill (by pid) every process still running and reap it; remove our directory."""
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
            if proc.stdin is not None:
                proc.stdin.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def run_client_processes(endpoints: Sequence[str], prefix: str, **options: Any) -> History:
    """Start ``ClientProcesses(endpoints, prefix, **options)``, wait for them, return the
    merged history."""
    clients = ClientProcesses(endpoints, prefix, **options)
    await clients.start()
    return await clients.join()


# --- the client process itself --------------------------------------------------------------


async def _first_read(repo: Any, within: float) -> None:
    """One read through the client (connecting it), retried until ``within`` seconds."""
    from etcd_resources.errors import EtcdTimeoutError, UnavailableError

    deadline = time.monotonic() + within
    while True:
        try:
            await repo.list_page_async(limit=1)
            return
        except (UnavailableError, EtcdTimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)  # retry interval


async def _child(spec: ClientSpec, out: Path) -> int:
    from etcd_resources._core import EtcdClient
    from etcd_resources.repository import ResourceRepository

    from .workload import run_workload

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    endpoints = list(spec.endpoints)
    async with EtcdClient(endpoints, timeout=spec.timeout, breaker_threshold=0) as client:
        repo: ResourceRepository[Any] = ResourceRepository(client, spec.prefix)
        await _first_read(repo, READY_WITHIN / 2)
        print("ready", flush=True)
        try:
            line = await asyncio.wait_for(stdin.readline(), spec.go_within)
        except TimeoutError:
            line = b""
        if line.strip() != b"go":
            print(f"no go ({line!r}): not running", file=sys.stderr)
            return 3
        history = await run_workload(
            repo,
            keys=spec.keys,
            tasks=spec.tasks,
            duration=spec.duration,
            max_ops=spec.max_ops,
            seed=spec.seed,
            process=spec.process,
        )
    await asyncio.to_thread(out.write_text, history.dumps())
    print(f"done {len(history)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one client process of ClientProcesses")
    parser.add_argument("--spec", required=True, help="a ClientSpec as JSON")
    parser.add_argument("--out", required=True, help="where to write the history (JSON lines)")
    args = parser.parse_args(argv)
    return asyncio.run(_child(ClientSpec.from_json(args.spec), Path(args.out)))


if __name__ == "__main__":
    sys.exit(main())
