"""Stored documents to the application's own classes.

``from_document(cls, doc)`` rebuilds an instance of ``cls`` (a Neuroglia ``Resource``
subclass, or any class) with its nested dataclasses, enums, datetimes, ``Optional``s, lists of
dataclasses and dicts typed as declared.

Where are the types declared? In dataclass fields and class annotations, which Python keeps;
and, for classes written like Neuroglia's ``ResourceStatus`` subclasses, in annotated
assignments inside ``__init__`` (``self.phase: LabWorkerPhase = LabWorkerPhase.PENDING``), which
Python does *not* keep at run time. Those are recovered by reading ``__init__``'s source with
``ast`` and evaluating each annotation in the namespace of the class's module, as
``typing.get_type_hints`` does for class annotations (forward references and
``from __future__ import annotations`` included). A class whose source cannot be read (defined
in a REPL) keeps those attributes as the JSON values.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import enum
import functools
import inspect
import logging
import sys
import textwrap
import types
import typing
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar, Union

__all__ = ["from_document", "type_hints"]

log = logging.getLogger("etcd_resources")

T = TypeVar("T")

# Attribute names of a Resource and the document keys they come from.
_RESOURCE_FIELDS = {
    "api_version": "apiVersion",
    "kind": "kind",
    "metadata": "metadata",
    "spec": "spec",
    "status": "status",
}


def _init_annotations(cls: type) -> dict[str, str]:
    """``self.x: T`` annotations inside ``cls.__init__``, as source text."""
    init = cls.__dict__.get("__init__")
    if init is None or not inspect.isfunction(init):
        return {}
    try:
        source = textwrap.dedent(inspect.getsource(init))
    except (OSError, TypeError):
        return {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        return {}
    function = functions[0]
    # `def __init__(self, lab_track: str)` + `self.lab_track = lab_track`: the parameter's type.
    params = {
        a.arg: ast.unparse(a.annotation)
        for a in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
        if a.annotation is not None
    }
    found: dict[str, str] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.AnnAssign) and (attr := _self_attribute(node.target)):
            found[attr] = ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            for target in node.targets:
                if (attr := _self_attribute(target)) and node.value.id in params:
                    found.setdefault(attr, params[node.value.id])
    return found


def _self_attribute(node: ast.expr) -> str | None:
    """``x`` for the target ``self.x``."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return node.attr
    return None


def _evaluate(annotation: Any, cls: type) -> Any:
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(cls.__module__)
    namespace: dict[str, Any] = {**vars(typing), **(vars(module) if module else {})}
    namespace.setdefault(cls.__name__, cls)
    try:
        return eval(annotation, namespace)  # annotations are code, like get_type_hints does
    except Exception:
        log.debug("cannot evaluate the annotation %r of %s", annotation, cls.__qualname__)
        return Any


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """Every attribute type ``cls`` declares: class annotations, dataclass fields and
    annotated assignments in ``__init__`` along the MRO (the nearest class wins)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass.__module__ in ("typing", "abc", "builtins"):
            continue
        for name, annotation in _init_annotations(klass).items():
            hints[name] = _evaluate(annotation, klass)
        for name, annotation in inspect.get_annotations(klass).items():
            hints[name] = _evaluate(annotation, klass)
    return hints


@functools.cache
def _generic_args(cls: type) -> tuple[Any, ...]:
    """The type arguments a class gave its generic base (``Resource[Spec, Status]``)."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            args = typing.get_args(base)
            if len(args) == 2 and all(isinstance(a, type) for a in args):
                return args
    return ()


def _parse_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)


# -- converters: a type's conversion worked out once, then applied to every value -------------

Converter = typing.Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def converter(tp: Any) -> Converter:
    """The function that turns decoded JSON into an instance of ``tp`` (``None`` stays
    ``None``), made once per type."""
    try:
        return _cached_converter(tp)
    except TypeError:  # an unhashable type expression: not cached
        return _make_converter(tp)


@functools.lru_cache(maxsize=4096)
def _cached_converter(tp: Any) -> Converter:
    return _make_converter(tp)


def _make_converter(tp: Any) -> Converter:
    if tp is Any or tp is None or isinstance(tp, TypeVar):
        return _identity
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        options = [converter(a) for a in typing.get_args(tp) if a is not type(None)]

        def union(value: Any) -> Any:
            if value is None:
                return None
            for convert in options:
                try:
                    return convert(value)
                except (TypeError, ValueError, KeyError):
                    continue
            return value

        return union
    if origin is typing.Literal or origin is typing.ClassVar:
        return _identity
    if origin in (list, set, frozenset, tuple) or (
        isinstance(origin, type) and issubclass(origin, (list, set, frozenset))
    ):
        args = typing.get_args(tp)
        item = converter(args[0]) if args else _identity
        make = origin

        def sequence(value: Any) -> Any:
            if not isinstance(value, list):
                return value
            items = [None if v is None else item(v) for v in value]
            return items if make is list else make(items)

        return sequence
    if origin is dict or (isinstance(origin, type) and issubclass(origin, dict)):
        args = typing.get_args(tp)
        item = converter(args[1]) if len(args) == 2 else _identity

        def mapping(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            return {k: None if v is None else item(v) for k, v in value.items()}

        return mapping
    if origin is not None or not isinstance(tp, type):
        return _identity
    if issubclass(tp, enum.Enum):
        members: type[enum.Enum] = tp

        def member(value: Any) -> Any:
            if value is None:
                return None
            try:
                return members(value)
            except ValueError:
                return members[value]  # Neuroglia's encoder wrote plain enums by name

        return member
    if tp in (datetime, date, time):
        parse = _parse_datetime if tp is datetime else tp.fromisoformat
        return lambda value: parse(value) if isinstance(value, str) else value
    if tp in (uuid.UUID, Decimal):
        return lambda value: None if value is None else tp(value)
    if tp is float:
        return lambda value: float(value) if isinstance(value, int) else value
    if tp in (str, int, bool, dict, list, object):
        return _identity
    return lambda value: from_document(tp, value) if isinstance(value, dict) else value


def build(tp: Any, value: Any) -> Any:
    """``value`` (decoded JSON) as an instance of the type ``tp``."""
    return None if value is None else converter(tp)(value)


def _bare(cls: Any) -> Any:
    """An instance without running ``__init__``."""
    return cls.__new__(cls)


@functools.cache
def _init_parameters(cls: type) -> tuple[tuple[str, bool], ...] | None:
    """``(name, required)`` of each named parameter of ``cls.__init__`` (``None``: unknown)."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    return tuple(
        (name, param.default is param.empty)
        for name, param in signature.parameters.items()
        if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    )


def _new_instance(cls: type, known: dict[str, Any]) -> Any:
    """An instance made by ``cls.__init__`` when its required parameters can all be given
    from ``known``; otherwise ``cls.__new__`` alone."""
    parameters = _init_parameters(cls)
    if parameters is None:
        return _bare(cls)
    kwargs = {}
    for name, required in parameters:
        if name in known:
            kwargs[name] = known[name]
        elif required:
            return _bare(cls)
    try:
        return cls(**kwargs)
    except Exception:
        log.debug("%s(**%s) failed; building it field by field", cls.__qualname__, list(kwargs))
        return _bare(cls)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How documents become instances of one class, worked out once."""

    hints: dict[str, Any]
    # Dataclasses: (attribute, document key, converter) of each init field.
    fields: tuple[tuple[str, str, Converter], ...] | None
    # Resources: (attribute, document key, converter).
    resource: tuple[tuple[str, str, Converter], ...]
    has_id: bool


@functools.cache
def _plan(cls: type) -> _Plan:
    hints = type_hints(cls)
    fields = None
    if dataclasses.is_dataclass(cls):
        fields = tuple(
            (f.name, f.name, converter(hints.get(f.name, Any)))
            for f in dataclasses.fields(cls)
            if f.init
        )
    spec_type, status_type = _generic_args(cls) or (Any, Any)
    resource = []
    for attr, key in _RESOURCE_FIELDS.items():
        # The type arguments of `Resource[Spec, Status]` win over the base's TypeVars.
        declared = {"spec": spec_type, "status": status_type}.get(attr, Any)
        tp = declared if declared is not Any else hints.get(attr, Any)
        resource.append((attr, key, converter(tp)))
    has_id = any(k.__name__ in ("Entity", "Identifiable") for k in cls.__mro__)
    return _Plan(hints, fields, tuple(resource), has_id)


def from_document(cls: type[T], doc: dict[str, Any]) -> T:
    """An instance of ``cls`` from a stored document (see the module doc)."""
    plan = _plan(cls)  # type: ignore[arg-type]
    if plan.fields is not None:
        init_args = {}
        for name, _, convert in plan.fields:
            key = name if name in doc else _RESOURCE_FIELDS.get(name, name)
            if key in doc:
                value = doc[key]
                init_args[name] = None if value is None else convert(value)
        try:
            instance = cls(**init_args)
        except TypeError:
            instance = _new_instance(cls, init_args)
            for name, value in init_args.items():
                object.__setattr__(instance, name, value)
        return instance

    is_resource = "metadata" in doc and ("spec" in doc or "kind" in doc)
    values: dict[str, Any] = {}
    if is_resource:
        for attr, key, convert in plan.resource:
            if key in doc:
                value = doc[key]
                values[attr] = None if value is None else convert(value)
        extra = {k: v for k, v in doc.items() if k not in _RESOURCE_FIELDS.values()}
    else:
        values = {name: build(plan.hints.get(name, Any), v) for name, v in doc.items()}
        extra = {}
    instance = _new_instance(cls, values)
    for name, value in {**values, **extra}.items():
        try:
            setattr(instance, name, value)
        except AttributeError:
            log.debug("cannot set %s.%s", cls.__qualname__, name)
    if is_resource and plan.has_id:
        uid = getattr(getattr(instance, "metadata", None), "uid", None)
        if uid is not None:
            with contextlib.suppress(AttributeError):
                instance.id = uid  # Neuroglia: a Resource's id is its metadata.uid
    return instance
