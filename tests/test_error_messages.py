"""Every error kind is said once, with what to do: the command line adds a hint to the library's
message and never repeats its lead; an endpoint that is not etcd says so."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from etcd_resources import EtcdClient, ResourceRepository, UnavailableError, errors
from etcd_resources.cli.errors import explain

# One instance of each public error kind, with the message the library gives it.
SAMPLES = {
    "EtcdResourcesError": "etcd error: mvcc: required revision is a future revision",
    "NotFoundError": '"/lab-workers/w1" not found',
    "AlreadyExistsError": '"/lab-workers/w1" already exists',
    "ConflictError": 'conflict on "/lab-workers/w1": expected resource_version 4, found 7',
    "UnavailableError": 'etcd unavailable: tcp connect error (endpoints ["http://h:2379"])',
    "EtcdTimeoutError": "etcd did not answer range within 5s",
    "ExpiredError": "revision 3 was compacted (compact revision 9); relist and watch again",
    "WatchFellBehindError": "the watcher fell behind: more than 1000 events waited unread",
    "InvalidNameError": "invalid name \"Bad_Name\": 'B' is upper case; names are lower case",
    "InvalidSelectorError": "invalid selector \"tier in a,b\" at position 8: expected '('",
    "InvalidArgumentError": "timeouts must be positive",
    "TooLargeError": '"/lab-workers/w1" is 2000000 bytes encoded, over the limit of 1572864',
    "SerializationError": '"/lab-workers/w1": expected value at line 1 column 1',
    "PermissionDeniedError": "permission denied: etcdserver: permission denied",
    "ClosedError": "the client is closed",
    "QuotaExceededError": "etcd's database is full (NOSPACE alarm: etcdserver: mvcc: database "
    "space exceeded); writes are refused until an operator compacts and defragments etcd and "
    "disarms the alarm (`etcdctl alarm disarm`), or raises --quota-backend-bytes; reads, watches "
    "and deletes still work",
    "ForkedError": "EtcdClient made in process 1 before a fork, used in process 2",
}


def test_every_error_kind_has_a_sample() -> None:
    kinds = {n for n in errors.__all__ if isinstance(getattr(errors, n), type)}
    assert kinds == set(SAMPLES), "add the new kind to SAMPLES and a hint to cli/errors.py"


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_the_command_line_says_each_error_once_with_what_to_do(kind: str) -> None:
    error = getattr(errors, kind)(SAMPLES[kind])
    said = explain(error, "http://h:2379").format_message()
    assert "\n" not in said
    assert re.fullmatch(r".+ \([^()]*\)", said), f"no hint in {said!r}"
    words = re.findall(r"[a-z]+", said.lower())
    assert words[:2] != words[2:4], f"the lead is said twice in {said!r}"
    assert "unavailable: " not in said  # "cannot reach etcd at ..." says it


@pytest.fixture
def not_etcd() -> Iterator[str]:
    """A server that is not etcd: it answers the first bytes of every connection in HTTP/1.1,
    as a web server or a metrics port would, and keeps it open."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            conn.recv(1024)  # what gRPC sends first: HTTP/2's preface
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            connections.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in connections:
        conn.close()


NOT_ETCD = "this endpoint does not speak etcd's API (is it etcd's client port, 2379?)"


async def test_an_endpoint_that_is_not_etcd_says_so(not_etcd: str) -> None:
    async with EtcdClient(not_etcd, timeout=5.0) as client:
        with pytest.raises(UnavailableError, match=re.escape(NOT_ETCD)):
            await ResourceRepository(client, "/r/").get_async("a")


def test_the_command_line_says_an_endpoint_is_not_etcd(not_etcd: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "etcd_resources.cli", "--endpoints", not_etcd, "get"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and NOT_ETCD in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
