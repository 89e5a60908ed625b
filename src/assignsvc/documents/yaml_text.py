"""YAML as experiment files use it: YAML 1.2 scalars (only true/false are booleans, `1e-5`
is a number, `0123` and `12:30` are strings), values written quoted wherever a YAML 1.1
or 1.2 reader could take them for another type, JSON read strictly, every problem as an
InvalidArgumentError on the whole document (ROOT), and the line of each path for messages.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from assignsvc.errors import FieldViolation, InvalidArgumentError

ROOT = "document"  # the field of a violation about the whole file
MAX_DEPTH = 32

_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float"))
_VALUE, _MERGE = "tag:yaml.org,2002:value", "tag:yaml.org,2002:merge"
_RESOLVERS_1_2 = (
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), "-+0123456789"),  # no octal 0123, 1_000 or 1:20
    (
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+0123456789.",
    ),
)


class _Loader(yaml.SafeLoader):
    """SafeLoader reading YAML 1.2 booleans and numbers, refusing duplicate keys."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML looks resolvers up on the class
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _VALUE)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[tuple[str, str], int] = {}
        for key, _ in node.value:  # explicit keys only: overriding a `<<` merge is fine
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE:
                signature = (key.tag, key.value)
                if signature in first_line:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key.value!r} (first on line {first_line[signature]})",
                        key.start_mark,
                    )
                first_line[signature] = key.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> datetime.date:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:  # e.g. month 13: shaped like a time, but none
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a time: {exc}", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


class _Dumper(yaml.SafeDumper):
    """SafeDumper quoting every string a YAML 1.1 or 1.2 reader could take for another type."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key


class FlowMap(dict[str, Any]):
    """A mapping written on one line: `{id: control, weight: 0.5}`."""


_Dumper.add_representer(
    FlowMap, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)
for _tag, _pattern, _first in _RESOLVERS_1_2:
    _Loader.add_implicit_resolver(_tag, _pattern, list(_first))
    _Dumper.add_implicit_resolver(_tag, _pattern, list(_first))


def dump(data: object) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def load(text: str | bytes) -> tuple[list[object], dict[str, int]]:
    """The documents of a file and the line of each path in it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError.single(ROOT, f"is not UTF-8 text (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        if text.lstrip()[:1] in ("{", "["):  # JSON that YAML refuses (tabs): JSON's own reading
            return [_load_json(text)], {}
        raise InvalidArgumentError.single(ROOT, _yaml_problem(exc)) from None
    except RecursionError:
        raise InvalidArgumentError.single(ROOT, "is nested too deeply") from None
    lines: dict[str, int] = {}
    for k, node in enumerate(yaml.compose_all(text, Loader=_Loader)):
        _index_lines(node, f"documents[{k}]" if len(documents) > 1 else "", lines, 0)
    return documents, lines


def _load_json(text: str) -> object:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise InvalidArgumentError.single(ROOT, f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgumentError.single(ROOT, "is nested too deeply") from None


def not_unicode(value: object, path: str, depth: int) -> str | None:
    """The path of the first string (or key) that cannot be UTF-8 encoded, if any."""
    if depth > MAX_DEPTH:  # aliases can make a graph; files are shallow
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or ROOT
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = join_path(path, str(key)) if isinstance(key, str) and key.isprintable() else path
            found = not_unicode(key, child, depth + 1) or not_unicode(item, child, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = not_unicode(item, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"is not valid YAML{where}: {problem}" + (f" ({context})" if context else "")


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int], depth: int) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if depth > MAX_DEPTH:
        return
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                child = f"{path}[{key.value!r}]" if path.endswith("forced_arms") else join_path(path, key.value)
                lines.setdefault(child, key.start_mark.line + 1)
                _index_lines(value, child, lines, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, f"{path}[{i}]", lines, depth + 1)


_LAST_STEP = re.compile(r"(?:\.[^.\[\]]*|\[[^\[\]]*\])$")


def with_line(violation: FieldViolation, lines: Mapping[str, int]) -> tuple[FieldViolation, int]:
    """The violation with the line of its nearest enclosing path, and that line (0 if unknown)."""
    path = "" if violation.field == ROOT else violation.field
    while path not in lines:
        shorter = _LAST_STEP.sub("", path)
        if shorter == path:
            return violation, 0
        path = shorter
    line = lines[path]
    return FieldViolation(violation.field, f"{violation.description} (line {line})"), line


def join_path(path: str, name: str) -> str:
    """The path of key `name` under `path`: `a.b`, or `a['odd key']` when not an identifier."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is None:
        return f"{path}[{name!r}]"
    return f"{path}.{name}" if path else name
