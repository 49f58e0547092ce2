"""Owner references, as Kubernetes keeps them in ``metadata.ownerReferences``: a resource names
the resources it belongs to, and goes when they have all gone (``Controller(owns=...)``).

Stored as ``metadata.owner_references`` (the snake_case of the package's other metadata fields);
``metadata.ownerReferences``, as Kubernetes tools write it, is read too. Each reference is a
mapping with ``name`` (required), and optionally ``uid`` (the owner it was made for: an owner
deleted and created again under the same name is another owner), ``kind``, ``api_version``,
``namespace`` (default: the owned resource's own), ``controller`` and
``block_owner_deletion``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._resource import meta

__all__ = ["OwnerRef", "owner_reference", "owner_refs"]


@dataclass(frozen=True)
class OwnerRef:
    """One owner reference, read from a stored document."""

    name: str
    namespace: str | None
    uid: str | None
    kind: str | None


def _field(value: Any, *names: str) -> Any:
    if isinstance(value, Mapping):
        for name in names:
            if name in value:
                return value[name]
        return None
    for name in names:
        found = getattr(value, name, None)
        if found is not None:
            return found
    return None


def owner_reference(owner: Any, *, controller: bool = True) -> dict[str, Any]:
    """The reference to put in an owned resource's ``metadata.owner_references`` list: it names
    ``owner`` (a dict or a Neuroglia ``Resource``, as stored: it needs its ``uid``)."""
    name = meta(owner, "name")
    uid = meta(owner, "uid")
    if not isinstance(name, str) or not isinstance(uid, str) or not uid:
        raise TypeError("an owner needs metadata.name and metadata.uid: pass it as stored")
    reference: dict[str, Any] = {"name": name, "uid": uid}
    for field, names in (("api_version", ("api_version", "apiVersion")), ("kind", ("kind",))):
        value = _field(owner, *names)
        if isinstance(value, str):
            reference[field] = value
    namespace = meta(owner, "namespace")
    if isinstance(namespace, str):
        reference["namespace"] = namespace
    reference["controller"] = controller
    reference["block_owner_deletion"] = True
    return reference


def owner_refs(document: Any) -> list[OwnerRef]:
    """The owner references of a stored document (entries without a string ``name`` are
    ignored: they name nothing this package can find)."""
    metadata = document.get("metadata") if isinstance(document, Mapping) else None
    if not isinstance(metadata, Mapping):
        return []
    entries = metadata.get("owner_references", metadata.get("ownerReferences"))
    if not isinstance(entries, list):
        return []
    own_namespace = metadata.get("namespace")
    refs = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        namespace = entry.get("namespace", own_namespace)
        uid = entry.get("uid")
        kind = entry.get("kind")
        refs.append(
            OwnerRef(
                name=entry["name"],
                namespace=namespace if isinstance(namespace, str) else None,
                uid=uid if isinstance(uid, str) and uid else None,
                kind=kind if isinstance(kind, str) else None,
            )
        )
    return refs
