"""Stored documents to the application's own classes.

``from_document(cls, doc)`` rebuilds an instance of ``cls`` (a Neuroglia ``Resource``
subclass, or any class) with its nested dataclasses, enums, datetimes, ``Optional``s, lists of
dataclasses and dicts typed as declared. Repositories with ``resource_type=`` do the same for
every document they read (get, list, queries, pages, watch events, the cache).

**What a class declares.** The attributes of a class, and their types, come from every place
Python code declares them, along the MRO (the nearest class wins): dataclass fields, class
annotations, annotated assignments inside ``__init__`` (``self.phase: LabWorkerPhase =
LabWorkerPhase.PENDING``, as Neuroglia's ``ResourceStatus`` subclasses are written; Python does
not keep those at run time, so they are read from ``__init__``'s source with ``ast`` and each
annotation is evaluated in the class's module, as ``typing.get_type_hints`` does), and
parameters of ``__init__`` assigned to attributes (``self.lab_track = lab_track`` takes the
parameter's annotation). For ``Resource[Spec, Status]`` the type arguments type ``spec`` and
``status``.

**How an instance is made.** When every parameter ``__init__`` requires is an attribute the
class declares, the instance is made by calling the class with the attributes the document
holds for its parameters (so a resource's ``__init__(metadata, spec, status=None)`` builds its
state machine, and a dataclass its defaults); every other key of the document is then set as an
attribute. A status whose ``__init__`` takes no parameters is made by ``cls()`` and then gets
every stored attribute, a ``@dataclass`` with a hand-written ``__init__`` included. A class
whose ``__init__`` requires something that is no attribute is made without ``__init__``
(``cls.__new__``), and gets every stored attribute. Keys the class does not declare are kept as
their JSON values; camelCase keys (``creationTimestamp``) also fill the snake_case attribute.

**What cannot be rebuilt raises** :class:`~etcd_resources.SerializationError`, naming the
attribute (``status.conditions[0].type``) and why: a value that is not a member of its enum, a
text that is not a datetime, an object where a list is declared, a parameter ``__init__``
requires that the document lacks, an ``__init__`` that raised. Nothing is silently left at its
default.

The plan (which attribute gets which conversion, how the instance is made) is worked out once
per class, here; it runs in Rust (``_core.TypePlan``), building the instances straight from the
stored bytes (or the cache's parsed documents) with no intermediate dict.
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
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar, Union

from . import _core

__all__ = ["from_document", "plan_for", "type_hints"]

log = logging.getLogger("etcd_resources")

T = TypeVar("T")

_CLASSVAR: Any = typing.ClassVar

# The document keys of a Resource's attributes that are not their names.
_ALIASES = {"api_version": ("apiVersion",)}


def _init_function(cls: type) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    init = cls.__dict__.get("__init__")
    if init is None or not inspect.isfunction(init):
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError, SyntaxError):
        return None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return functions[0] if functions else None


def _init_annotations(cls: type) -> dict[str, str]:
    """``self.x: T`` annotations inside ``cls.__init__``, and ``self.x = x`` of a parameter
    ``x: T``, as source text."""
    function = _init_function(cls)
    if function is None:
        return {}
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


def _closure(cls: type) -> dict[str, Any]:
    """The names ``cls.__init__`` takes from enclosing functions (for classes defined inside a
    function: ``self.phase: Phase = Phase.PENDING`` uses ``Phase``, so it is there)."""
    init = cls.__dict__.get("__init__")
    code, cells = getattr(init, "__code__", None), getattr(init, "__closure__", None) or ()
    names: dict[str, Any] = {}
    for name, cell in zip(code.co_freevars if code else (), cells, strict=False):
        with contextlib.suppress(ValueError):  # a cell not filled yet
            names[name] = cell.cell_contents
    return names


def _evaluate(annotation: Any, cls: type) -> Any:
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(cls.__module__)
    namespace: dict[str, Any] = {
        **vars(typing),
        **(vars(module) if module else {}),
        **_closure(cls),
    }
    namespace.setdefault(cls.__name__, cls)
    try:
        return eval(annotation, namespace)  # annotations are code, like get_type_hints does
    except Exception:
        log.debug("cannot evaluate the annotation %r of %s", annotation, cls.__qualname__)
        return Any


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """Every attribute type ``cls`` declares: class annotations, dataclass fields, annotated
    assignments and assigned parameters in ``__init__``, along the MRO (the nearest class
    wins)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass.__module__ in ("typing", "abc", "builtins"):
            continue
        for name, annotation in _init_annotations(klass).items():
            hints[name] = _evaluate(annotation, klass)
        for name, annotation in inspect.get_annotations(klass).items():
            if typing.get_origin(annotation) is _CLASSVAR or annotation == "ClassVar":
                continue
            hints[name] = _evaluate(annotation, klass)
    return hints


def _generic_args(cls: type) -> tuple[Any, ...]:
    """The type arguments a class gave its generic base (``Resource[Spec, Status]``)."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            args = typing.get_args(base)
            if len(args) == 2 and all(isinstance(a, type) for a in args):
                return args
    return ()


def _init_parameters(cls: type) -> list[tuple[str, bool]] | None:
    """``(name, required)`` of each named parameter ``cls(...)`` takes (``None``: unknown).
    An ``__init__(self, *args, **kwargs)`` that hands its arguments on takes those of the next
    ``__init__`` along the MRO too."""
    found: dict[str, bool] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object or not inspect.isfunction(init):
            return list(found.items())
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        passes_on = False
        for param in parameters:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                passes_on = True
            else:
                found.setdefault(param.name, param.default is param.empty)
        if not passes_on:
            return list(found.items())
    return list(found.items())


# The plan as ``_core.TypePlan`` reads it, by attribute name: a table of ``ClassPlan``.


@dataclasses.dataclass(frozen=True, slots=True)
class FieldPlan:
    """How one attribute is read: from the first of ``keys`` the document has, through
    ``node`` (a tagged tuple, see ``_Planner.node``); ``init``: passed to ``__init__``."""

    attr: str
    keys: tuple[str, ...]
    node: tuple[Any, ...]
    init: bool


@dataclasses.dataclass(frozen=True, slots=True)
class FillPlan:
    """A dataclass field set straight into the instance: ``how`` is ``"required"``,
    ``"value"`` (``default``) or ``"factory"`` (``default()``)."""

    attr: str
    how: str
    default: Any


@dataclasses.dataclass(frozen=True, slots=True)
class ClassPlan:
    """How one class is built: its ``fields``; the ``__init__`` parameters it ``required``
    (when ``construct``: instances are made by calling the class); ``has_id`` (a Neuroglia
    entity); ``fill`` (a plain dataclass: its fields set without running ``__init__``)."""

    cls: type
    name: str
    fields: list[FieldPlan]
    required: tuple[str, ...]
    construct: bool
    has_id: bool
    fill: list[FillPlan] | None


def _dataclass_fill(cls: type) -> list[FillPlan] | None:
    """For a dataclass whose ``__init__`` is the one ``@dataclass`` generated (not one of its
    own, no ``__post_init__``, instances with a ``__dict__``): every field that ``__init__``
    sets, in its order, with its default. Such an ``__init__`` does nothing but set those
    fields, so the instance is made by setting them into its ``__dict__`` straight away (what a
    stored document lacks gets the field's default), without running Python code per field."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return None
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    generated = (
        code is not None
        and code.co_filename == "<string>"
        and getattr(init, "__qualname__", "") == f"{cls.__qualname__}.__init__"
    )
    if not generated or "__slots__" in cls.__dict__ or not hasattr(cls, "__dict__"):
        return None
    fill = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            fill.append(FillPlan(f.name, "value", f.default))
        elif f.default_factory is not dataclasses.MISSING:
            fill.append(FillPlan(f.name, "factory", f.default_factory))
        elif f.init:
            fill.append(FillPlan(f.name, "required", None))
    return fill


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _is_plain_class(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and tp.__module__ != "builtins"
        and not issubclass(tp, enum.Enum | datetime | date | time | uuid.UUID | Decimal)
    )


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected ISO 8601 text, got {type(value).__name__}")
    return datetime.fromisoformat(value)


def _from_text(kind: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"expected text, got {type(value).__name__}")
        return kind.fromisoformat(value)  # type: ignore[attr-defined]

    return parse


class _Planner:
    """Builds the plan of one root class: a table of the classes it reaches, and for each of
    their attributes a node saying how a JSON value becomes the declared type."""

    def __init__(self) -> None:
        self.classes: list[ClassPlan | None] = []
        self.index: dict[type, int] = {}

    def object_plan(self, cls: type) -> int:
        if cls in self.index:
            return self.index[cls]
        self.index[cls] = len(self.classes)
        self.classes.append(None)  # a place held for recursive types
        hints = dict(type_hints(cls))
        if generic := _generic_args(cls):
            hints.setdefault("spec", Any)
            hints.setdefault("status", Any)
            hints["spec"], hints["status"] = generic
        parameters = _init_parameters(cls)
        construct = parameters is not None and all(
            name in hints for name, required in parameters if required
        )
        init_names = {name for name, _ in parameters or ()} if construct else set()
        for name in init_names:
            hints.setdefault(name, Any)
        read_only = {
            name
            for name in hints
            if isinstance(inspect.getattr_static(cls, name, None), property)
            and getattr(inspect.getattr_static(cls, name), "fset", None) is None
        }
        fields = []
        for attr, tp in hints.items():
            if attr.startswith("_") or attr in read_only:
                continue
            keys = dict.fromkeys((attr, _camel(attr), *_ALIASES.get(attr, ())))
            fields.append(FieldPlan(attr, tuple(keys), self.node(tp), attr in init_names))
        required = tuple(name for name, req in parameters or () if req and construct)
        has_id = any(k.__name__ in ("Entity", "Identifiable") for k in cls.__mro__)
        self.classes[self.index[cls]] = ClassPlan(
            cls=cls,
            name=cls.__qualname__,
            fields=fields,
            required=required,
            construct=construct,
            has_id=has_id,
            fill=_dataclass_fill(cls),
        )
        return self.index[cls]

    def node(self, tp: Any) -> tuple[Any, ...]:
        if tp is Any or tp is None or tp is type(None) or isinstance(tp, TypeVar):
            return ("any",)
        if isinstance(tp, str | typing.ForwardRef):
            return ("any",)
        origin = typing.get_origin(tp)
        if origin is Union or origin is types.UnionType:
            options = [a for a in typing.get_args(tp) if a is not type(None)]
            nodes = [self.node(a) for a in options]
            if len(nodes) == 1:
                return nodes[0]
            if all(n == ("any",) for n in nodes):
                return ("any",)
            return ("union", nodes, _type_name(tp))
        if origin in (typing.Literal, typing.ClassVar, typing.Final) or origin is typing.Annotated:
            args = typing.get_args(tp)
            return self.node(args[0]) if origin is typing.Annotated and args else ("any",)
        if origin in (list, set, frozenset, tuple) or (
            isinstance(origin, type) and issubclass(origin, list | set | frozenset)
        ):
            items = [a for a in typing.get_args(tp) if a is not Ellipsis]
            item = self.node(items[0]) if len(items) == 1 or origin is not tuple else ("any",)
            make = None if origin is list else origin
            return ("list", item, make)
        if origin is dict or (isinstance(origin, type) and issubclass(origin, dict)):
            args = typing.get_args(tp)
            return ("dict", self.node(args[1]) if len(args) == 2 else ("any",))
        if origin is not None or not isinstance(tp, type):
            return ("any",)
        if issubclass(tp, enum.Enum):
            lookup: dict[Any, Any] = {m.value: m for m in tp}
            for m in tp:  # Neuroglia's JsonEncoder wrote enums by name
                lookup.setdefault(m.name, m)
            return ("enum", tp, lookup)
        if tp is datetime:
            return ("call", _parse_datetime, "a datetime")
        if tp in (date, time):
            return ("call", _from_text(tp), f"a {tp.__name__}")
        if tp in (uuid.UUID, Decimal):
            return ("call", tp, f"a {tp.__name__}")
        if tp is float:
            return ("float",)
        if tp in (set, frozenset, tuple):
            return ("list", ("any",), tp)
        if tp in (str, int, bool, dict, list, object, bytes) or not _is_plain_class(tp):
            return ("any",)
        return ("object", self.object_plan(tp))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


@functools.cache
def plan_for(cls: type) -> _core.TypePlan:
    """How documents become instances of ``cls``, worked out once per class."""
    if not isinstance(cls, type):
        raise TypeError(f"resource_type is a class, not {cls!r}")
    planner = _Planner()
    planner.object_plan(cls)
    return _core.TypePlan(planner.classes)


def from_document(cls: type[T], doc: dict[str, Any]) -> T:
    """An instance of ``cls`` from a stored document (see the module doc)."""
    return typing.cast(T, plan_for(typing.cast(Any, cls)).build(doc))
