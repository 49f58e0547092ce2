"""kubectl's JSONPath templates, the subset people use: ``-o jsonpath=TEMPLATE``,
``custom-columns`` and ``--sort-by``.

A template is text with ``{...}`` actions: a path (``{.metadata.name}``,
``{.items[*].metadata.name}``), a string literal (``{"\\n"}``), ``{range PATH}...{end}``
(the body once per result, paths inside relative to it; ``$`` is always the root). Paths:
``.field``, ``['field']`` (any key, ``lab-track``, ``a.b/c``), ``..field`` (at any depth),
``.*``, ``[*]``, ``[n]`` (negative from the end), ``[a:b]``, and filters
``[?(@.path == "x")]`` with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` or only ``@.path``
(present). Results are printed as kubectl does: text as it is, other values as JSON,
several results separated by a space; a path that finds nothing prints nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonPathError", "Template", "evaluate", "format_value", "parse_path"]


class JsonPathError(ValueError):
    """A template or path that does not parse."""


Step = Callable[[Any], Iterator[Any]]


@dataclass(frozen=True)
class Path:
    text: str
    absolute: bool
    steps: tuple[Step, ...]

    def find(self, current: Any, root: Any) -> list[Any]:
        values = [root if self.absolute else current]
        for step in self.steps:
            values = [found for value in values for found in step(value)]
        return values


def _field(name: str) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, dict) and name in value:
            yield value[name]

    return step


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.values()
    elif isinstance(value, list):
        yield from value


def _descendants(value: Any) -> Iterator[Any]:
    yield value
    for child in _children(value):
        yield from _descendants(child)


def _recursive(name: str) -> Step:
    def step(value: Any) -> Iterator[Any]:
        for node in _descendants(value):
            if isinstance(node, dict) and name in node:
                yield node[name]

    return step


def _index(i: int) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, list) and -len(value) <= i < len(value):
            yield value[i]

    return step


def _slice(start: int | None, stop: int | None) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, list):
            yield from value[start:stop]

    return step


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


def _filter(path: Path, op: str | None, literal: Any) -> Step:
    def step(value: Any) -> Iterator[Any]:
        for item in _children(value):
            found = path.find(item, item)
            if op is None:
                if found and found[0] is not None:
                    yield item
                continue
            if not found:
                continue
            left = found[0]
            if isinstance(literal, int | float) and not isinstance(left, bool):
                try:
                    left = float(left)
                except (TypeError, ValueError):
                    continue
            try:
                if _OPERATORS[op](left, literal):
                    yield item
            except TypeError:
                continue

    return step


_NAME = re.compile(r"(?:[^.\[\]{}()\s=!<>,\\'\"]|\\.)+")
_FILTER = re.compile(
    r"\?\(\s*(@[^=!<>)]*?)\s*(?:(==|!=|<=|>=|<|>)\s*('[^']*'|\"[^\"]*\"|[^)\s]+)\s*)?\)"
)


def _literal(text: str) -> Any:
    if text[:1] in ("'", '"'):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return text


def parse_path(text: str) -> Path:
    """A path: ``.a.b[*]``, ``$.items[0]``, ``{.a}`` (braces allowed, as in --sort-by)."""
    src = text.strip()
    if src.startswith("{") and src.endswith("}"):
        src = src[1:-1].strip()
    absolute = src.startswith("$")
    rest = src[1:] if absolute else src
    if rest and rest[0] not in ".[":
        rest = "." + rest  # kubectl takes "metadata.name" too
    steps: list[Step] = []
    i = 0
    while i < len(rest):
        if rest.startswith("..", i):
            match = _NAME.match(rest, i + 2)
            if match is None:
                raise JsonPathError(f"a field name must follow '..' at {i} in {text!r}")
            steps.append(_recursive(_unescape(match.group())))
            i = match.end()
        elif rest[i] == ".":
            if rest.startswith(".*", i):
                steps.append(_children)
                i += 2
                continue
            match = _NAME.match(rest, i + 1)
            if match is None:
                if i + 1 == len(rest):  # "." alone: the current object
                    i += 1
                    continue
                raise JsonPathError(f"a field name must follow '.' at {i} in {text!r}")
            steps.append(_field(_unescape(match.group())))
            i = match.end()
        elif rest[i] == "[":
            end = _closing_bracket(rest, i, text)
            inner = rest[i + 1 : end].strip()
            steps.append(_bracket(inner, text))
            i = end + 1
        else:
            raise JsonPathError(f"unexpected {rest[i]!r} at {i} in {text!r}")
    return Path(text, absolute, tuple(steps))


def _closing_bracket(rest: str, start: int, text: str) -> int:
    depth, quote = 0, ""
    for j in range(start, len(rest)):
        c = rest[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return j
    raise JsonPathError(f"unclosed '[' in {text!r}")


def _bracket(inner: str, text: str) -> Step:
    if inner == "*":
        return _children
    if inner[:1] in ("'", '"') and inner[-1:] == inner[:1] and len(inner) >= 2:
        return _field(inner[1:-1])
    if inner.startswith("?"):
        match = _FILTER.fullmatch(inner)
        if match is None:
            raise JsonPathError(f"cannot read the filter [{inner}] in {text!r}")
        path = (
            parse_path("$" + match.group(1)[1:]) if match.group(1) != "@" else Path("@", True, ())
        )
        literal = None if match.group(3) is None else _literal(match.group(3))
        return _filter(path, match.group(2), literal)
    try:
        if ":" in inner:
            a, b = (part.strip() for part in inner.split(":", 1))
            return _slice(int(a) if a else None, int(b) if b else None)
        return _index(int(inner))
    except ValueError:
        raise JsonPathError(f"cannot read [{inner}] in {text!r}") from None


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def format_value(value: Any) -> str:
    """One result as kubectl prints it."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def evaluate(path: str, document: Any) -> list[Any]:
    """The results of one path on a document."""
    return parse_path(path).find(document, document)


# -- templates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Value:
    path: Path


@dataclass(frozen=True)
class _Range:
    path: Path
    body: tuple[Any, ...]


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _string(literal: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), literal[1:-1])


class Template:
    """A parsed ``jsonpath=`` template."""

    def __init__(self, text: str) -> None:
        self.text = text
        nodes, rest = self._parse(self._tokens(text), top=True)
        assert not rest
        self.nodes = nodes

    @staticmethod
    def _tokens(text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        i = 0
        while i < len(text):
            start = text.find("{", i)
            if start < 0:
                tokens.append(("text", text[i:]))
                break
            if start > i:
                tokens.append(("text", text[i:start]))
            end, quote = start + 1, ""
            while end < len(text) and (quote or text[end] != "}"):
                if quote and text[end] == "\\":
                    end += 1
                elif text[end] in "'\"" and not quote:
                    quote = text[end]
                elif text[end] == quote:
                    quote = ""
                end += 1
            if end >= len(text):
                raise JsonPathError(f"unclosed '{{' at {start} in {text!r}")
            tokens.append(("action", text[start + 1 : end].strip()))
            i = end + 1
        return tokens

    def _parse(self, tokens: list[tuple[str, str]], top: bool) -> tuple[tuple[Any, ...], list[Any]]:
        nodes: list[Any] = []
        while tokens:
            kind, value = tokens.pop(0)
            if kind == "text":
                nodes.append(_Text(value))
            elif value == "end":
                if top:
                    raise JsonPathError(f"{{end}} without {{range}} in {self.text!r}")
                return tuple(nodes), tokens
            elif value.startswith("range ") or value == "range":
                body, tokens = self._parse(tokens, top=False)
                nodes.append(_Range(parse_path(value[5:].strip()), body))
            elif value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) >= 2:
                nodes.append(_Text(_string(value)))
            else:
                nodes.append(_Value(parse_path(value)))
        if not top:
            raise JsonPathError(f"{{range}} without {{end}} in {self.text!r}")
        return tuple(nodes), tokens

    def render(self, document: Any) -> str:
        out: list[str] = []
        self._render(self.nodes, document, document, out)
        return "".join(out)

    def _render(self, nodes: tuple[Any, ...], current: Any, root: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Value):
                out.append(" ".join(format_value(v) for v in node.path.find(current, root)))
            else:
                for item in node.path.find(current, root):
                    self._render(node.body, item, root, out)
