"""GrowthBook's condition language compiled into Python closures, once per stored experiment.

`compile_condition` turns a condition (MongoDB-like JSON: `$eq` ... `$vgte`, `$and`,
`$or`, `$nor`, `$not`, `$inGroup`, dotted paths, implicit equality) into a function
`(attributes, groups) -> bool` that agrees with the `growthbook` package's
`evalCondition` on every valid condition (tests/unit/test_conditions.py checks >= 10k
generated pairs). The Assign path only calls the closure: nothing is parsed there.

Where GrowthBook is lenient with a malformed condition (an unknown operator, `$in`
with a non-list, a regex that does not compile: it evaluates to false at run time),
this compiler refuses it with a ConditionError naming the path inside the condition
(`$and[1].country.$regex: ...`), so that a typo is caught when the experiment is
stored rather than silently excluding everyone.

Regexes run on RE2 (google-re2): matching is linear in the input, so no pattern can
backtrack catastrophically and stall the server. RE2 refuses backreferences and
lookaround, which are reported at compile time; `\\d`, `\\w`, `\\s` and `\\b` are ASCII
only in RE2 (Unicode in Python's `re`, which GrowthBook's Python SDK uses). A pattern
that is plain text with an optional ^ or $ is answered by str methods instead (same
answer, ~10x cheaper than a call into RE2). Value semantics live in condition_values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import re2

from assignsvc.core.condition_values import (
    NUMBER,
    ORDER,
    compare_strings,
    get_type,
    getter,
    is_in,
    is_number,
    js_regex_for_re2,
    literal_search,
    padded_version,
    padded_version_text,
    segment,
    strict_deep_equal,
)
from assignsvc.core.scoping import DEFAULT_DATASOURCE, qualify


class GroupMembers(Protocol):
    """A saved group as the evaluator sees it: membership of a string id."""

    def __contains__(self, value: object) -> bool: ...


Attributes = Mapping[str, Any]
Groups = Mapping[str, GroupMembers]
Condition = Callable[[Any, Groups], bool]
_ValueTest = Callable[[Any, Groups], bool]

MAX_CONDITION_BYTES = 64 * 1024
MAX_CONDITION_DEPTH = 32
# Keys GrowthBook treats as conditions, not value operators (never match on a value).
_CONDITION_OPERATORS = ("$or", "$nor", "$and", "$savedGroup")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported to the caller, not logged by RE2
_RE2_OPTIONS.never_capture = True  # only whether it matches matters
_RE2_OPTIONS_I = re2.Options()
_RE2_OPTIONS_I.log_errors = False
_RE2_OPTIONS_I.never_capture = True
_RE2_OPTIONS_I.case_sensitive = False
_UNANCHORED = re2._Anchor.UNANCHORED
_NO_MATCH = (-1, -1)


class ConditionError(ValueError):
    """A condition that cannot be compiled; `path` locates the problem inside it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def parse_condition(text: str, datasource: str = DEFAULT_DATASOURCE) -> Condition | None:
    """Compile condition JSON text; None for no condition ("" or "{}"). Saved groups are
    named by their local ids and looked up as the datasource's (core.scoping)."""
    if not text.strip():
        return None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONDITION_BYTES:
        raise ConditionError("", f"must be at most {MAX_CONDITION_BYTES} bytes of JSON")
    try:
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except ValueError as exc:
        raise ConditionError("", f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConditionError("", "is nested too deeply") from None
    if document == {}:
        return None
    return compile_condition(document, datasource=datasource)


def _no_constant(name: str) -> float:
    """NaN and Infinity are not JSON: other languages could not read the stored condition back."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a finite number")
    return value


def canonical_text(text: str) -> str:
    """The stored form of a condition: compact JSON in the given key order ("" for none).

    Text that is not JSON is returned as is, for validation to report.
    """
    if not text.strip():
        return ""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return "" if document == {} else json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def referenced_groups(text: str) -> set[str]:
    """Ids named by $inGroup / $notInGroup anywhere in a (valid) condition."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$inGroup", "$notInGroup") and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    if text.strip():
        walk(json.loads(text))
    return found


def compile_condition(condition: object, path: str = "", datasource: str = DEFAULT_DATASOURCE) -> Condition:
    """A closure evaluating `condition` on an attributes object; ConditionError if invalid."""
    return _Compiler(datasource).condition(condition, path, 0)


# --- the compiler ----------------------------------------------------------------------


def _always(value: bool) -> _ValueTest:
    return lambda actual, groups: value


def _all_of(tests: list[Condition]) -> Condition:
    """Every test passes, first failure stops (a loop: cheaper than all() over a generator)."""
    if not tests:
        return _always(True)
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)

    def every(subject: Any, groups: Groups) -> bool:
        for test in frozen:  # noqa: SIM110 - a plain loop is cheaper than all() over a generator
            if not test(subject, groups):
                return False
        return True

    return every


def _negated(test: Condition) -> Condition:
    return lambda subject, groups: not test(subject, groups)


def _at_path(path: str, test: _ValueTest) -> Condition:
    if "." not in path:  # the common case, one call less
        return lambda attrs, groups: test(attrs.get(path) if type(attrs) is dict else segment(attrs, path), groups)
    get = getter(path)
    return lambda attrs, groups: test(get(attrs), groups)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Compiler:
    """Recursive descent over the condition; every node checked and compiled once."""

    def __init__(self, datasource: str) -> None:
        self.datasource = datasource  # whose saved groups $inGroup names

    def condition(self, node: object, path: str, depth: int) -> Condition:
        if depth > MAX_CONDITION_DEPTH:
            raise ConditionError(path, f"is nested deeper than {MAX_CONDITION_DEPTH} levels")
        if not isinstance(node, dict):
            raise ConditionError(path, f"must be an object, got {get_type(node)}")
        tests: list[Condition] = []
        for key, value in node.items():
            here = _join(path, key)
            if key in ("$or", "$nor", "$and"):
                tests.append(self._logical(key, value, here, depth))
            elif key == "$not":
                tests.append(_negated(self.condition(value, here, depth + 1)))
            elif key.startswith("$"):
                raise ConditionError(
                    here, "unknown operator (a condition's keys are attribute paths or $and, $or, $nor, $not)"
                )
            else:
                if not key or "" in key.split("."):
                    raise ConditionError(here, "attribute paths must not be empty or hold empty segments")
                tests.append(_at_path(key, self.value(value, here, depth + 1)))
        return _all_of(tests)

    def _logical(self, key: str, value: object, path: str, depth: int) -> Condition:
        if not isinstance(value, list):
            raise ConditionError(path, f"must be a list of conditions, got {get_type(value)}")
        parts = [self.condition(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        if key == "$and":
            return lambda attrs, groups: all(p(attrs, groups) for p in parts)
        if not parts:  # GrowthBook: an empty $or passes, so an empty $nor fails
            return lambda attrs, groups: key == "$or"
        if key == "$or":
            return lambda attrs, groups: any(p(attrs, groups) for p in parts)
        return lambda attrs, groups: not any(p(attrs, groups) for p in parts)

    def value(self, node: object, path: str, depth: int, insensitive: bool = False) -> _ValueTest:
        """A test of one attribute value: an operator object, else implicit equality."""
        if depth > MAX_CONDITION_DEPTH:
            raise ConditionError(path, f"is nested deeper than {MAX_CONDITION_DEPTH} levels")
        if isinstance(node, dict) and all(isinstance(k, str) and k.startswith("$") for k in node):
            return _all_of([self.operator(op, arg, _join(path, op), depth) for op, arg in node.items()])
        return self._literal(node, insensitive)

    @staticmethod
    def _literal(expected: Any, insensitive: bool) -> _ValueTest:
        if isinstance(expected, str):
            if insensitive:
                folded = expected.lower()
                return lambda actual, groups: type(actual) is str and actual.lower() == folded
            return lambda actual, groups: type(actual) is str and actual == expected
        if is_number(expected):
            return lambda actual, groups: type(actual) in NUMBER and actual == expected
        if expected is None:
            return lambda actual, groups: actual is None
        if isinstance(expected, bool):
            return lambda actual, groups: actual is expected
        return lambda actual, groups: strict_deep_equal(expected, actual)

    def operator(self, op: str, arg: Any, path: str, depth: int) -> _ValueTest:
        """The test of one operator on a value: comparisons here, the rest in _other."""
        if op in ("$eq", "$ne"):
            return self._equality(op, arg)
        if op in ("$lt", "$lte", "$gt", "$gte"):
            return self._order(op, arg)
        if op in ("$veq", "$vne", "$vlt", "$vlte", "$vgt", "$vgte"):
            return self._version(op, arg)
        if op in ("$in", "$nin", "$ini", "$nini"):
            values = self._list(arg, path)
            return self._membership(op, values)
        return self._other(op, arg, path, depth)

    def _other(self, op: str, arg: Any, path: str, depth: int) -> _ValueTest:  # noqa: PLR0911 - one return per operator
        """Operators on arrays, presence, type, negation, patterns and saved groups; split
        from operator() so that each stays one short table of branches."""
        if op in ("$all", "$alli"):
            items = self._list(arg, path)
            tests = [self.value(v, f"{path}[{i}]", depth + 1, op == "$alli") for i, v in enumerate(items)]
            return lambda actual, groups: type(actual) is list and all(any(t(a, groups) for a in actual) for t in tests)
        if op == "$elemMatch":
            return self._elem_match(arg, path, depth)
        if op == "$size":
            size_test = self.value(arg, path, depth + 1)
            return lambda actual, groups: type(actual) is list and size_test(len(actual), groups)
        if op == "$exists":
            if arg:
                return lambda actual, groups: actual is not None
            return lambda actual, groups: actual is None
        if op == "$type":
            return lambda actual, groups: get_type(actual) == arg
        if op == "$not":
            return _negated(self.value(arg, path, depth + 1))
        if op in ("$regex", "$regexi", "$notRegex", "$notRegexi"):
            return self._regex(op, arg, path)
        if op in ("$inGroup", "$notInGroup"):
            return self._group(op, arg, path)
        raise ConditionError(path, "unknown operator")

    @staticmethod
    def _list(arg: object, path: str) -> list[Any]:
        if not isinstance(arg, list):
            raise ConditionError(path, f"must be a list, got {get_type(arg)}")
        return arg

    @staticmethod
    def _equality(op: str, arg: Any) -> _ValueTest:
        kind = get_type(arg)
        if kind in ("array", "object"):  # `===` never holds between two parsed containers
            return _always(op == "$ne")
        if kind == "number":
            equal: _ValueTest = lambda actual, groups: type(actual) in NUMBER and actual == arg  # noqa: E731
        elif kind == "string":
            equal = lambda actual, groups: type(actual) is str and actual == arg  # noqa: E731
        else:  # true, false, null: singletons
            equal = lambda actual, groups: actual is arg  # noqa: E731
        if op == "$eq":
            return equal
        return _negated(equal)

    @staticmethod
    def _order(op: str, arg: Any) -> _ValueTest:
        compare = ORDER[op]
        if is_number(arg):  # NaN is unordered: every comparison with it is false, as in GrowthBook
            return lambda actual, groups: type(actual) in NUMBER and compare(actual, arg)
        if isinstance(arg, str):
            if arg.isascii():
                return lambda actual, groups: (
                    type(actual) is str
                    and (compare(actual, arg) if actual.isascii() else compare(compare_strings(actual, arg), 0))
                )
            return lambda actual, groups: type(actual) is str and compare(compare_strings(actual, arg), 0)
        return _always(False)  # booleans, null and containers are not ordered

    @staticmethod
    def _version(op: str, arg: Any) -> _ValueTest:
        compare = ORDER[op]
        mismatch = op == "$vne"  # not orderable: only $vne holds
        if not (is_number(arg) or isinstance(arg, str)):
            return _always(mismatch)
        expected = padded_version(arg)
        if isinstance(arg, str):
            return lambda actual, groups: (
                compare(padded_version_text(actual or "0"), expected) if type(actual) is str else mismatch
            )
        return lambda actual, groups: compare(padded_version(actual), expected) if is_number(actual) else mismatch

    @staticmethod
    def _membership(op: str, values: list[Any]) -> _ValueTest:
        insensitive = op in ("$ini", "$nini")
        negate = op in ("$nin", "$nini")
        strings = frozenset(v for v in values if type(v) is str)
        member: _ValueTest
        if insensitive:
            member = lambda actual, groups: is_in(values, actual, insensitive=True)  # noqa: E731
        else:  # a string attribute, the common case, is one set lookup
            member = lambda actual, groups: actual in strings if type(actual) is str else is_in(values, actual)  # noqa: E731
        return _negated(member) if negate else member

    def _elem_match(self, arg: object, path: str, depth: int) -> _ValueTest:
        if not isinstance(arg, dict):
            raise ConditionError(path, f"must be an object, got {get_type(arg)}")
        on_value = all(isinstance(k, str) and k.startswith("$") for k in arg) and not any(
            k in _CONDITION_OPERATORS for k in arg
        )
        test: _ValueTest = self.value(arg, path, depth + 1) if on_value else self.condition(arg, path, depth + 1)
        return lambda actual, groups: (
            type(actual) is list and any(test(item, groups) for item in actual if item is not None)
        )

    @staticmethod
    def _regex(op: str, arg: object, path: str) -> _ValueTest:
        if not isinstance(arg, str):
            raise ConditionError(path, f"must be a regular expression string, got {get_type(arg)}")
        options = _RE2_OPTIONS_I if op.endswith("i") else _RE2_OPTIONS
        try:
            # The compiled RE2 object's own Match(): re2's Python search() would also map
            # every span back to str offsets, which costs ~20x the match itself here.
            match = re2.compile(js_regex_for_re2(arg), options)._regexp.Match
        except re2.error as exc:
            detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise ConditionError(
                path, f"invalid regex {arg!r}: {detail} (RE2 syntax: no backreferences or lookaround)"
            ) from None
        found = literal_search(arg) if options is _RE2_OPTIONS else None
        if found is None:

            def found(text: str) -> bool:
                data = text.encode("utf-8", "surrogatepass")
                return bool(match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH)

        if op.startswith("$not"):  # a non-string never matches, so $notRegex holds for it
            return lambda actual, groups: type(actual) is not str or not found(actual)
        return lambda actual, groups: type(actual) is str and found(actual)

    def _group(self, op: str, arg: object, path: str) -> _ValueTest:
        if not isinstance(arg, str) or not arg:
            raise ConditionError(path, "must be a saved group id")
        empty: frozenset[str] = frozenset()
        group_id = qualify(self.datasource, arg)

        def member(actual: Any, groups: Groups) -> bool:
            ids = groups.get(group_id, empty)  # an unknown group is empty, as in GrowthBook
            if type(actual) is str:
                return actual in ids
            if type(actual) is list:  # an array attribute: any element in the group
                return any(type(a) is str and a in ids for a in actual)
            return False  # saved groups hold string ids only

        if op == "$inGroup":
            return member
        return lambda actual, groups: not member(actual, groups)
