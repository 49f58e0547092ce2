"""etcd's ``--quota-backend-bytes`` as its ``/metrics`` page reports it
(``etcd_server_quota_backend_bytes``): etcd's maintenance status says it only from 3.6 on."""

from __future__ import annotations

import re
import ssl
import urllib.error
import urllib.request

from ..config import EtcdSettings

__all__ = ["quota_from_metrics"]

_GAUGE = re.compile(rb"^etcd_server_quota_backend_bytes\s+([0-9.e+]+)\s*$", re.MULTILINE)


def _context(settings: EtcdSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_cert)
    if settings.client_cert and settings.client_key:
        context.load_cert_chain(settings.client_cert, settings.client_key)
    return context


def quota_from_metrics(endpoint: str, settings: EtcdSettings) -> int | None:
    """The quota the member at ``endpoint`` enforces, or ``None`` when its ``/metrics`` page
    cannot be read (metrics served elsewhere, a proxy in between)."""
    if "://" not in endpoint:
        scheme = "https" if settings.ca_cert or settings.client_cert else "http"
        endpoint = f"{scheme}://{endpoint}"
    context = _context(settings) if endpoint.startswith("https://") else None
    try:
        with urllib.request.urlopen(
            f"{endpoint.rstrip('/')}/metrics", timeout=settings.timeout, context=context
        ) as resp:
            found = _GAUGE.search(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return int(float(found.group(1))) if found else None
