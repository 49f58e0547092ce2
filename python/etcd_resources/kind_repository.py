"""``KindRepository``: what the repositories of one kind of the Lab Resource Manager share (a
default prefix and resource type, fields the cache indexes, the service's factories), and
how a phase is written in a field selector."""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar, TypeVar

from . import _core
from .repository import ResourceRepository

__all__ = ["KindRepository", "phase_text"]

R = TypeVar("R", bound="KindRepository")

_DEFAULT: Any = object()


def phase_text(phase: Enum | str) -> str:
    """A phase as stored: an enum member's value (its name if the value is not text)."""
    if isinstance(phase, Enum):
        return phase.value if isinstance(phase.value, str) else phase.name
    if isinstance(phase, str):
        return phase
    raise TypeError(f"a phase is an Enum member or a str, not {type(phase).__name__}")


def text_argument(value: Any, what: str) -> str:
    """``value``, which must be a str (a query never matches everything by mistake)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} is a str, not {type(value).__name__}")
    return value


class KindRepository(ResourceRepository[Any]):
    """Resources of one kind: subclasses set ``DEFAULT_PREFIX``, ``DEFAULT_RESOURCE_TYPE`` (the
    class reads return; ``None``: dicts) and ``CACHE_FIELDS`` (indexed with ``cache=True``)."""

    DEFAULT_PREFIX: ClassVar[str]
    DEFAULT_RESOURCE_TYPE: ClassVar[type | None] = None
    CACHE_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        client: _core.EtcdClient,
        prefix: str | None = None,
        *,
        resource_type: type | None = _DEFAULT,
        format: str = "json",
        namespaced: bool = False,
        mediator: Any = None,
        cache: bool = False,
    ) -> None:
        """``cache=True`` answers the queries from the shared informer cache, indexed on
        ``CACHE_FIELDS`` and on labels."""
        super().__init__(
            client,
            self.DEFAULT_PREFIX if prefix is None else prefix,
            namespaced=namespaced,
            format=format,
            resource_type=self.DEFAULT_RESOURCE_TYPE
            if resource_type is _DEFAULT
            else resource_type,
            mediator=mediator,
            cache=list(self.CACHE_FIELDS) if cache else False,
        )

    # -- factories (sync, so a dependency-injection factory can call them) ------------------

    @classmethod
    def create_with_json_serializer(
        cls: type[R],
        etcd_client: _core.EtcdClient,
        prefix: str | None = None,
        *,
        resource_type: type | None = _DEFAULT,
        **options: Any,
    ) -> R:
        """A repository that writes JSON (and reads JSON or YAML)."""
        return cls(etcd_client, prefix, resource_type=resource_type, format="json", **options)

    @classmethod
    def create_with_yaml_serializer(
        cls: type[R],
        etcd_client: _core.EtcdClient,
        prefix: str | None = None,
        *,
        resource_type: type | None = _DEFAULT,
        **options: Any,
    ) -> R:
        """A repository that writes YAML (and reads JSON or YAML)."""
        return cls(etcd_client, prefix, resource_type=resource_type, format="yaml", **options)
