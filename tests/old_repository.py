"""What the Python repository this package replaces did with documents, for the rolling
upgrade tests: how it wrote them (``resource.to_dict()`` through a ``json.JSONEncoder`` that
writes datetimes as ISO text, enums by value, dataclasses with ``dataclasses.asdict`` and other
objects as their ``__dict__``, ``None`` values included, the metadata's own
``resource_version`` inside) and how it read them back (``json.loads``, the metadata built by
hand from the dict, spec and status through Neuroglia's ``JsonSerializer`` with the expected
type, the resource made by its ``__init__``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import Enum
from typing import Any

from neuroglia.data.resources.abstractions import ResourceMetadata
from neuroglia.serialization.json import JsonSerializer


class OldEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        if isinstance(o, Enum):
            return o.value
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if hasattr(o, "__dict__"):
            return o.__dict__
        return super().default(o)


def old_bytes(resource: Any) -> bytes:
    """The bytes the old repository stored for ``resource``."""
    plain = json.loads(json.dumps(resource.to_dict(), cls=OldEncoder))
    return json.dumps(plain, ensure_ascii=False, cls=OldEncoder).encode()


def old_read(raw: bytes, resource_type: type, spec_type: type, status_type: type) -> Any:
    """A resource from stored bytes, the way the old repository's ``_dict_to_resource`` made
    it."""
    doc = json.loads(raw)
    meta = doc.get("metadata", {})
    metadata = ResourceMetadata(
        name=meta.get("name"),
        namespace=meta.get("namespace"),
        labels=meta.get("labels", {}),
        annotations=meta.get("annotations", {}),
        uid=meta.get("uid"),
        resource_version=meta.get("resource_version"),
        generation=meta.get("generation"),
        creation_timestamp=meta.get("creation_timestamp"),
        deletion_timestamp=meta.get("deletion_timestamp"),
    )
    serializer = JsonSerializer()
    spec = serializer.deserialize_from_text(json.dumps(doc.get("spec", {})), spec_type)
    status = serializer.deserialize_from_text(json.dumps(doc.get("status", {})), status_type)
    return resource_type(metadata=metadata, spec=spec, status=status)
