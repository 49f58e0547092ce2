"""Documents in and out: YAML and JSON as ``get -o`` writes them and ``apply -f`` reads them,
kubectl ``List``s, and what ``apply`` and ``edit`` change in a stored resource."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import CommandError

__all__ = [
    "SERVER_FIELDS",
    "Source",
    "dump_json",
    "dump_yaml",
    "for_create",
    "kind_of",
    "load_files",
    "merged",
    "name_of",
    "namespace_of",
    "parse",
    "ref",
    "to_list",
    "version_of",
    "without_version",
]

Document = dict[str, Any]

# Metadata the store owns: never taken from a file or an edit (resource_version is the
# precondition of the compare-and-swap, not a value to write).
SERVER_FIELDS = (
    "uid",
    "resource_version",
    "generation",
    "creation_timestamp",
    "deletion_timestamp",
)
_CAMEL = {
    "resourceVersion": "resource_version",
    "creationTimestamp": "creation_timestamp",
    "deletionTimestamp": "deletion_timestamp",
}


class _Loader(yaml.SafeLoader):
    """YAML as JSON sees it: timestamps stay text (as stored), everything else as usual."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """Block style, keys in document order, multi-line text as ``|`` blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump_yaml(document: Any) -> str:
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,
    )


def dump_json(document: Any) -> str:
    return json.dumps(document, indent=4, ensure_ascii=False) + "\n"


def to_list(items: Sequence[Document]) -> Document:
    """Several resources as kubectl writes them (and ``apply -f`` reads them)."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def kind_of(doc: Document) -> str:
    kind = doc.get("kind")
    return kind if isinstance(kind, str) and kind else "Resource"


def name_of(doc: Document) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


def namespace_of(doc: Document) -> str | None:
    meta = doc.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return ns if isinstance(ns, str) and ns else None


def ref(doc: Document) -> str:
    """``labworker/worker-1``: what kubectl prints for ``-o name`` and after a change."""
    return f"{kind_of(doc).lower()}/{name_of(doc)}"


def _snake_metadata(doc: Document) -> Document:
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        return doc
    fixed = {_CAMEL.get(k, k): v for k, v in meta.items()}
    return {**doc, "metadata": fixed}


def parse(text: str, origin: str) -> list[Document]:
    """Every resource in a text: JSON (one value, or several one after the other) or YAML
    (several documents); a kubectl ``List`` gives its items."""
    docs: list[Any] = []
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            decoder = json.JSONDecoder()
            i = 0
            while i < len(stripped):
                value, i = decoder.raw_decode(stripped, i)
                docs.append(value)
                while i < len(stripped) and stripped[i].isspace():
                    i += 1
        else:
            docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except (ValueError, yaml.YAMLError) as e:
        raise CommandError(
            f"{origin}: not valid YAML or JSON: {e}", "fix the file; nothing was written"
        ) from None
    resources: list[Document] = []
    for position, doc in enumerate(_flatten(docs), 1):
        where = f"{origin}, document {position}"
        if not isinstance(doc, dict):
            raise CommandError(
                f"{where}: a resource is a mapping, not {type(doc).__name__}", "nothing was written"
            )
        doc = _snake_metadata(doc)
        if not name_of(doc):
            raise CommandError(
                f"{where}: metadata.name is missing",
                "every resource needs one; nothing was written",
            )
        resources.append(doc)
    return resources


def _flatten(docs: Iterable[Any]) -> Iterable[Any]:
    for doc in docs:
        if isinstance(doc, list):
            yield from _flatten(doc)
        elif isinstance(doc, dict) and doc.get("kind") == "List" and "items" in doc:
            items = doc["items"]
            yield from _flatten(items if isinstance(items, list) else [items])
        else:
            yield doc


@dataclass(frozen=True)
class Source:
    resource: Document
    origin: str


def load_files(paths: Sequence[str], recursive: bool) -> list[Source]:
    """The resources of files, directories (their ``.yaml``, ``.yml`` and ``.json`` files)
    and ``-`` (standard input), in order."""
    sources: list[Source] = []
    for given in paths:
        if given == "-":
            sources += [Source(d, "<stdin>") for d in parse(sys.stdin.read(), "<stdin>")]
            continue
        path = Path(given)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                p
                for p in path.glob(pattern)
                if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
            )
        else:
            files = [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as e:
                raise CommandError(f"cannot read {file}: {e.strerror}", "check the path") from None
            sources += [Source(d, str(file)) for d in parse(text, str(file))]
    return sources


def merged(current: Document, desired: Document) -> Document:
    """``current`` with what ``desired`` gives: each top-level section it has (``spec``,
    ``status``, ``apiVersion``, ...) and each metadata field it has (``labels``,
    ``annotations``, ``finalizers``, ...) replace the stored ones; what it omits stays. The
    fields the store owns (uid, versions, timestamps) stay as stored."""
    result = copy.deepcopy(current)
    for key, value in desired.items():
        if key == "metadata" and isinstance(value, dict):
            meta = result.setdefault("metadata", {})
            for field, v in value.items():
                if field not in SERVER_FIELDS:
                    meta[field] = copy.deepcopy(v)
        else:
            result[key] = copy.deepcopy(value)
    return result


def for_create(desired: Document) -> Document:
    """A document to create: without the fields the store sets."""
    result = copy.deepcopy(desired)
    meta = result.get("metadata")
    if isinstance(meta, dict):
        for field in SERVER_FIELDS:
            meta.pop(field, None)
    return result


def without_version(doc: Document) -> Document:
    """The document as compared for "unchanged": without its resource_version."""
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or "resource_version" not in meta:
        return doc
    return {**doc, "metadata": {k: v for k, v in meta.items() if k != "resource_version"}}


def version_of(doc: Document) -> str | None:
    meta = doc.get("metadata")
    version = meta.get("resource_version") if isinstance(meta, dict) else None
    return None if version in (None, "") else str(version)
