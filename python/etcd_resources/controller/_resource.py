"""Reading a resource's metadata whatever its shape: a dict, or an object (a Neuroglia
``Resource``, the package's ``LabWorker``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def meta(resource: Any, field: str) -> Any:
    """``metadata.<field>`` of ``resource``, or ``None``."""
    metadata = (
        resource.get("metadata")
        if isinstance(resource, Mapping)
        else getattr(resource, "metadata", None)
    )
    if metadata is None:
        return None
    if isinstance(metadata, Mapping):
        return metadata.get(field)
    return getattr(metadata, field, None)


def generation(resource: Any) -> int | None:
    value = meta(resource, "generation")
    return value if isinstance(value, int) else None


def key_of(core: Any, resource: Any) -> str:
    """The key ``resource`` is stored at, by the repository core ``core``."""
    name = meta(resource, "name")
    if not isinstance(name, str):
        raise TypeError("a resource needs metadata.name (a string)")
    namespace = meta(resource, "namespace")
    return str(core.key(name, namespace if isinstance(namespace, str) else None))
