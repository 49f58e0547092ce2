"""Where to find etcd, as a service configures it.

``EtcdSettings.from_env()`` reads, in order of precedence:

- ``ETCD_ENDPOINTS``: comma separated (``http://etcd-0:2379,http://etcd-1:2379``);
- ``CONNECTION_STRINGS``: Neuroglia's JSON setting, its ``"etcd"`` entry
  (``CONNECTION_STRINGS='{"etcd": "http://etcd:2379"}'`` in a container);
- nothing: ``memory://``, the embedded store (local development and tests).

and ``ETCD_PREFIX`` (``/lab-workers/``), ``ETCD_TIMEOUT`` and ``ETCD_CONNECT_TIMEOUT`` (seconds),
``ETCD_FORMAT`` (``json`` or ``yaml``), ``ETCD_USERNAME`` / ``ETCD_PASSWORD``, and for TLS
``ETCD_CA_CERT``, ``ETCD_CLIENT_CERT``, ``ETCD_CLIENT_KEY`` (PEM files) and ``ETCD_TLS_DOMAIN``
(the name checked against etcd's certificate).
``EtcdSettings.from_app_settings(settings)`` reads the same from a Neuroglia application
settings object (``connection_strings`` and ``etcd_*`` attributes), the environment filling
what it lacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._core import EtcdClient
from .errors import InvalidArgumentError

__all__ = ["EtcdSettings"]

DEFAULT_PREFIX = "/lab-workers/"


def _split(endpoints: str) -> list[str]:
    return [e.strip() for e in endpoints.split(",") if e.strip()]


def _seconds(name: str, value: Any, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number of seconds, got {value!r}") from None


def _connection_string(raw: Any) -> str | None:
    """The ``etcd`` entry of Neuroglia's connection strings (a dict or its JSON)."""
    if not raw:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidArgumentError("CONNECTION_STRINGS is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise InvalidArgumentError("CONNECTION_STRINGS must be a JSON object of name: string")
    value = raw.get("etcd")
    return str(value) if value else None


@dataclass
class EtcdSettings:
    """How to reach etcd and where the resources live."""

    endpoints: list[str] = field(default_factory=lambda: ["memory://"])
    prefix: str = DEFAULT_PREFIX
    timeout: float = 5.0
    connect_timeout: float | None = None
    format: str = "json"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_domain: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EtcdSettings:
        """Settings from environment variables (see the module doc)."""
        env = os.environ if environ is None else environ
        endpoints = _split(env.get("ETCD_ENDPOINTS", ""))
        if not endpoints:
            endpoints = _split(_connection_string(env.get("CONNECTION_STRINGS")) or "memory://")
        return cls(
            endpoints=endpoints,
            prefix=env.get("ETCD_PREFIX") or DEFAULT_PREFIX,
            timeout=_seconds("ETCD_TIMEOUT", env.get("ETCD_TIMEOUT"), 5.0),
            connect_timeout=_seconds("ETCD_CONNECT_TIMEOUT", env.get("ETCD_CONNECT_TIMEOUT"), 0.0)
            or None,
            format=env.get("ETCD_FORMAT") or "json",
            username=env.get("ETCD_USERNAME") or None,
            password=env.get("ETCD_PASSWORD") or None,
            ca_cert=env.get("ETCD_CA_CERT") or None,
            client_cert=env.get("ETCD_CLIENT_CERT") or None,
            client_key=env.get("ETCD_CLIENT_KEY") or None,
            tls_domain=env.get("ETCD_TLS_DOMAIN") or None,
        )

    @classmethod
    def from_app_settings(
        cls, app_settings: Any, environ: Mapping[str, str] | None = None
    ) -> EtcdSettings:
        """Settings from a Neuroglia application settings object: ``etcd_endpoints`` (str or
        list), ``connection_strings["etcd"]``, ``etcd_prefix``, ``etcd_timeout``, ...; the
        environment fills the rest."""
        base = cls.from_env(environ)
        explicit = getattr(app_settings, "etcd_endpoints", None)
        if isinstance(explicit, str):
            explicit = _split(explicit)
        from_strings = _connection_string(getattr(app_settings, "connection_strings", None))
        env = os.environ if environ is None else environ
        if explicit:
            base.endpoints = list(explicit)
        elif from_strings and not env.get("ETCD_ENDPOINTS"):
            base.endpoints = _split(from_strings)
        for name in (
            "prefix",
            "timeout",
            "connect_timeout",
            "format",
            "username",
            "password",
            "ca_cert",
            "client_cert",
            "client_key",
            "tls_domain",
        ):
            value = getattr(app_settings, f"etcd_{name}", None)
            if value not in (None, ""):
                setattr(base, name, value)
        return base

    def create_client(self) -> EtcdClient:
        """A client for these settings (no I/O until the first call)."""
        return EtcdClient(
            self.endpoints,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            username=self.username,
            password=self.password,
            ca_cert=self.ca_cert,
            client_cert=self.client_cert,
            client_key=self.client_key,
            tls_domain=self.tls_domain,
        )
