"""Where the command line finds etcd: ``EtcdSettings.from_env()`` (the service's own environment
variables), then the flags, which win. The flags are accepted before the verb and after it
(``etcd-resources --prefix /x/ get`` and ``etcd-resources get --prefix /x/``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from .. import EtcdSettings, ResourceRepository
from .errors import CommandError

__all__ = ["connection_options", "run", "settings_of"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_META = "etcd_resources.connection"
_ENDPOINTS_META = "etcd_resources.endpoints"

Repository = ResourceRepository[Any]


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a flag given at any level on the root context; a later (inner) one wins."""
    if value is not None and value is not False and param.name is not None:
        ctx.find_root().meta.setdefault(_META, {})[param.name] = value
    return value


def _option(*decls: str, help: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(
        *decls, help=help, callback=_remember, expose_value=False, is_eager=False, **kwargs
    )


_OPTIONS: list[Callable[[F], F]] = [
    _option(
        "--endpoints",
        metavar="URLS",
        help='etcd endpoints, comma separated [env: ETCD_ENDPOINTS, else the "etcd" entry of '
        "CONNECTION_STRINGS].",
    ),
    _option(
        "--prefix",
        metavar="PREFIX",
        help="Key prefix of the resources [env: ETCD_PREFIX; default: /lab-workers/].",
    ),
    _option(
        "--namespaced",
        is_flag=True,
        default=None,
        help="Keys are prefix + namespace/name (a repository made with namespaced=True).",
    ),
    _option(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        help="Deadline of each etcd request [env: ETCD_TIMEOUT; default: 5].",
    ),
    _option("--username", metavar="USER", help="etcd user [env: ETCD_USERNAME]."),
    _option("--password", metavar="PASSWORD", help="etcd password [env: ETCD_PASSWORD]."),
    _option("--ca-cert", metavar="FILE", help="CA certificate (PEM) [env: ETCD_CA_CERT]."),
    _option(
        "--client-cert", metavar="FILE", help="Client certificate (PEM) [env: ETCD_CLIENT_CERT]."
    ),
    _option("--client-key", metavar="FILE", help="Client key (PEM) [env: ETCD_CLIENT_KEY]."),
    _option(
        "--tls-server-name",
        metavar="NAME",
        help="Name checked against etcd's certificate [env: ETCD_TLS_DOMAIN].",
    ),
]


def connection_options(f: F) -> F:
    """The connection flags, on the group and on every command."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def settings_of(ctx: click.Context) -> tuple[EtcdSettings, bool]:
    """The settings (environment, then flags) and whether keys are namespaced."""
    flags: dict[str, Any] = ctx.find_root().meta.get(_META, {})
    settings = EtcdSettings.from_env()
    if flags.get("endpoints"):
        settings.endpoints = [e.strip() for e in flags["endpoints"].split(",") if e.strip()]
    for flag, field in (
        ("prefix", "prefix"),
        ("request_timeout", "timeout"),
        ("username", "username"),
        ("password", "password"),
        ("ca_cert", "ca_cert"),
        ("client_cert", "client_cert"),
        ("client_key", "client_key"),
        ("tls_server_name", "tls_domain"),
    ):
        if flags.get(flag) is not None:
            setattr(settings, field, flags[flag])
    if not settings.endpoints or any(e.startswith("memory://") for e in settings.endpoints):
        raise CommandError(
            "no etcd to talk to: memory:// is the embedded store of one process, empty for "
            "any other",
            "give etcd's address with --endpoints http://HOST:2379 or ETCD_ENDPOINTS",
        )
    ctx.find_root().meta[_ENDPOINTS_META] = ",".join(settings.endpoints)
    return settings, bool(flags.get("namespaced"))


def endpoints_of(ctx: click.Context) -> str:
    """The endpoints the command connected to (for messages), or ``""``."""
    return str(ctx.find_root().meta.get(_ENDPOINTS_META, ""))


def run(ctx: click.Context, work: Callable[[Repository], Awaitable[T]]) -> T:
    """Run ``work(repository)`` on a fresh client and event loop; close the client after."""
    settings, namespaced = settings_of(ctx)

    async def main() -> T:
        async with settings.create_client() as client:
            repository: Repository = ResourceRepository(
                client, settings.prefix, namespaced=namespaced, format=settings.format
            )
            return await work(repository)

    return asyncio.run(main())
